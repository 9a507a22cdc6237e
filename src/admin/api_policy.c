/*
 * Domains, users and global settings, with the seed's Figure 12 control:
 * each property either has a value at this level or inherits, and the
 * page shows what it would inherit. Writes go through policy_set and
 * policy_inherit (the property table checks them) in one transaction.
 */
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/admin_store.h"
#include "admin/api.h"
#include "common/log.h"
#include "common/util.h"
#include "policy/policy.h"
#include "store/store.h"

#define PROP_VALUE_MAX 4096
#define LIST_MAX 5000

static const char *
prop_type_word(enum prop_type t)
{
	static const char *const names[] = {
		[PROPT_BOOL] = "bool",
		[PROPT_ENUM] = "enum",
		[PROPT_TEXT] = "text",
		[PROPT_NONEMPTY] = "text",
		[PROPT_FPRLIST] = "fingerprints",
	};

	return names[t];
}

static json_t *
choices_json(const struct prop_def *d)
{
	json_t *arr = json_array();
	struct strlist l = { 0 };
	char *c;

	if (d->type == PROPT_BOOL) {
		json_array_append_new(arr, json_string("yes"));
		json_array_append_new(arr, json_string("no"));
		return arr;
	}
	if (d->choices == NULL)
		return arr;
	c = xstrdup(d->choices);
	for (char *p = c; *p != '\0'; p++)
		if (*p == '|')
			*p = ' ';
	strlist_split(&l, c);
	for (size_t i = 0; i < l.n; i++)
		json_array_append_new(arr, json_string(l.v[i]));
	strlist_free(&l);
	free(c);
	return arr;
}

void
api_properties(struct api_req *r)
{
	json_t *list = json_array();

	for (int i = 0; i < PROP__COUNT; i++) {
		const struct prop_def *d = &prop_table[i];
		json_array_append_new(list,
		    json_pack("{s:s,s:s,s:s,s:o,s:s}", "name", d->name, "type",
			prop_type_word(d->type), "default", d->def, "choices",
			choices_json(d), "help", d->help));
	}
	api_json(r, 200, json_pack("{s:o}", "properties", list));
}

/*
 * What a level would inherit: for a user its domain's view; for a domain
 * (or wildcard) the wildcards above it, then global; for global the
 * factory defaults (NULL).
 */
static int
inherited_policy(struct store *st, enum store_level level, const char *name,
    struct policy **pol_r, const char **error_r)
{
	const char *dot;
	char *parent;
	int rc;

	*pol_r = NULL;
	switch (level) {
	case STORE_GLOBAL:
		return 0;
	case STORE_USER:
		return policy_resolve(
		    st, STORE_DOMAIN, strrchr(name, '@') + 1, pol_r, error_r);
	case STORE_DOMAIN:
		if (strncmp(name, "*.", 2) == 0)
			name += 2;
		if ((dot = strchr(name, '.')) == NULL)
			return policy_resolve(
			    st, STORE_GLOBAL, NULL, pol_r, error_r);
		parent = xasprintf("*%s", dot);
		rc = policy_resolve(st, STORE_DOMAIN, parent, pol_r, error_r);
		free(parent);
		return rc;
	}
	return -1;
}

static json_t *
level_json(struct api_req *r, enum store_level level, const char *name)
{
	struct store *st = admin_st(r->a);
	struct store_props own = { 0 };
	struct policy *inh = NULL;
	json_t *props;
	const char *why;

	if (store_props_get(st, level, name, &own, &why) == -1 ||
	    inherited_policy(st, level, name, &inh, &why) == -1) {
		store_props_free(&own);
		api_error(r, 500, "store: %s", why);
		return NULL;
	}
	props = json_array();
	for (int i = 0; i < PROP__COUNT; i++) {
		const struct prop_def *d = &prop_table[i];
		const char *v = store_props_find(&own, d->name);
		json_t *from;
		if (inh != NULL)
			from = json_pack("{s:s,s:s,s:s?}", "value",
			    inh->v[i].value, "level",
			    policy_level_name(inh->v[i].level), "source",
			    inh->v[i].source);
		else
			from = json_pack("{s:s,s:s,s:n}", "value", d->def,
			    "level", "default", "source");
		json_array_append_new(props,
		    json_pack("{s:s,s:s,s:o,s:s,s:b,s:s?,s:o}", "name", d->name,
			"type", prop_type_word(d->type), "choices",
			choices_json(d), "help", d->help, "inherit", v == NULL,
			"value", v, "inherited", from));
	}
	store_props_free(&own);
	policy_free(&inh);
	return json_pack("{s:s?,s:o}", "name", name, "properties", props);
}

/*
 * {"properties": {NAME: VALUE | null}}: null inherits. Every value is
 * checked before anything is written; then all are written at once.
 */
static void
level_put(struct api_req *r, enum store_level level, const char *name)
{
	static const char *const keys[] = { "properties", NULL };
	struct store *st = admin_st(r->a);
	struct store_props own = { 0 };
	json_t *errors = json_object(), *props, *v;
	const char *key, *why;
	int n = 0;

	json_reject_unknown(r->json, keys, errors);
	props = json_object_get(r->json, "properties");
	if (!json_is_object(props))
		errors_set(errors, "properties",
		    "must be an object of property: value or null");
	json_object_foreach(json_is_object(props) ? props : NULL, key, v)
	{
		int id = prop_lookup(key);
		char *c;
		if (id < 0) {
			errors_set(errors, key, "unknown property");
			continue;
		}
		if (json_is_null(v))
			continue;
		if (!json_is_string(v) ||
		    json_string_length(v) > PROP_VALUE_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			errors_set(errors, key, "must be a string or null");
			continue;
		}
		if ((c = prop_canon(id, json_string_value(v), &why)) == NULL)
			errors_set(errors, key, "%s", why);
		free(c);
	}
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	if (store_begin(st, &why) == -1)
		goto fail;
	if (store_props_get(st, level, name, &own, &why) == -1) {
		store_rollback(st);
		goto fail;
	}
	json_object_foreach(props, key, v)
	{
		const char *cur = store_props_find(&own, key);
		char *c = json_is_null(v)
		    ? NULL
		    : prop_canon(prop_lookup(key), json_string_value(v), &why);
		bool same = c == NULL ? cur == NULL
				      : cur != NULL && strcmp(cur, c) == 0;
		int rc;
		free(c);
		/* Only what changes is written (and counted in the log). */
		if (same)
			continue;
		rc = json_is_null(v)
		    ? policy_inherit(st, level, name, key, &why)
		    : policy_set(
			  st, level, name, key, json_string_value(v), &why);
		if (rc == -1) {
			store_rollback(st);
			goto fail;
		}
		n++;
	}
	if (store_commit(st, &why) == -1)
		goto fail;
	store_props_free(&own);
	msg_info("admin %s changed %d propert%s of %s%s", r->session->username,
	    n, n == 1 ? "y" : "ies",
	    level == STORE_GLOBAL	? "the global settings"
		: level == STORE_DOMAIN ? "domain "
					: "user ",
	    name != NULL ? name : "");
	if ((v = level_json(r, level, name)) != NULL)
		api_json(r, 200, v);
	return;
fail:
	store_props_free(&own);
	api_error(r, 500, "store: %s", why);
}

/* Domains and users: the same, apart from names and store calls. */
struct owner_kind {
	enum store_level level;
	const char *what; /* "domain", "user" */
	char *(*canon)(const char *, const char **);
	int (*add)(struct store *, const char *, const char **);
	int (*del)(struct store *, const char *, const char **);
	int (*exists)(struct store *, const char *, bool *, const char **);
};

static char *
canon_domain(const char *s, const char **error_r)
{
	return store_canon_domain(s, true, error_r);
}

static const struct owner_kind domains = { STORE_DOMAIN, "domain", canon_domain,
	store_domain_add, store_domain_delete, store_domain_exists };
static const struct owner_kind users = { STORE_USER, "user", store_canon_email,
	store_user_add, store_user_delete, store_user_exists };

/* The canonical name of the path's owner, or NULL after a 404. */
static char *
owner_lookup(struct api_req *r, const struct owner_kind *k)
{
	const char *why;
	bool exists = false;
	char *name = k->canon(r->params.v[0], &why);

	if (name == NULL ||
	    k->exists(admin_st(r->a), name, &exists, &why) == -1 || !exists) {
		api_error(r, 404, "no such %s: %s", k->what, r->params.v[0]);
		free(name);
		return NULL;
	}
	return name;
}

static void
owner_list(struct api_req *r, const struct owner_kind *k)
{
	struct strlist names = { 0 };
	const char *q = api_query(r, "q"), *why;
	json_t *list, *e;
	size_t shown = 0;
	int rc;

	if (q != NULL && strlen(q) > 254) {
		e = json_object();
		errors_set(e, "q", "must be at most 254 characters");
		api_field_errors(r, e);
		return;
	}
	rc = k->level == STORE_USER
	    ? store_user_list(admin_st(r->a), q, &names, &why)
	    : store_domain_list(admin_st(r->a), &names, &why);
	if (rc == -1) {
		api_error(r, 500, "store: %s", why);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < names.n && shown < LIST_MAX; i++) {
		struct policy *pol = NULL;
		if (q != NULL && k->level == STORE_DOMAIN &&
		    strstr(names.v[i], q) == NULL)
			continue;
		if (policy_resolve(admin_st(r->a), k->level, names.v[i], &pol,
			&why) == -1) {
			json_array_append_new(list,
			    json_pack(
				"{s:s,s:s}", "name", names.v[i], "error", why));
			shown++;
			continue;
		}
		json_array_append_new(list,
		    json_pack("{s:s,s:s,s:s,s:s}", "name", names.v[i],
			"locality", policy_get(pol, PROP_LOCALITY),
			"encrypt_mode", policy_get(pol, PROP_ENCRYPT_MODE),
			"comment", policy_get(pol, PROP_COMMENT)));
		policy_free(&pol);
		shown++;
	}
	api_json(r, 200,
	    json_pack("{s:o,s:I,s:b}", "items", list, "total",
		(json_int_t)names.n, "truncated", names.n > LIST_MAX));
	strlist_free(&names);
}

static void
owner_add(struct api_req *r, const struct owner_kind *k)
{
	static const char *const keys[] = { "name", NULL };
	json_t *errors = json_object(), *detail;
	const char *name, *why;
	char *c = NULL;
	bool exists = false;

	json_reject_unknown(r->json, keys, errors);
	if (json_get_string(r->json, "name", true, 254, &name, errors) == 0 &&
	    (c = k->canon(name, &why)) == NULL)
		errors_set(errors, "name", "%s", why);
	if (c != NULL && k->exists(admin_st(r->a), c, &exists, &why) == 0 &&
	    exists)
		errors_set(errors, "name", "%s already exists", c);
	if (json_object_size(errors) > 0) {
		free(c);
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	if (k->add(admin_st(r->a), c, &why) == -1) {
		api_error(r, 500, "store: %s", why);
		free(c);
		return;
	}
	msg_info("admin %s added %s %s", r->session->username, k->what, c);
	if ((detail = level_json(r, k->level, c)) != NULL)
		api_json(r, 201, detail);
	free(c);
}

static void
owner_get(struct api_req *r, const struct owner_kind *k)
{
	char *name = owner_lookup(r, k);
	json_t *detail;

	if (name == NULL)
		return;
	if ((detail = level_json(r, k->level, name)) != NULL)
		api_json(r, 200, detail);
	free(name);
}

static void
owner_put(struct api_req *r, const struct owner_kind *k)
{
	char *name = owner_lookup(r, k);

	if (name == NULL)
		return;
	level_put(r, k->level, name);
	free(name);
}

static void
owner_delete(struct api_req *r, const struct owner_kind *k)
{
	char *name = owner_lookup(r, k);
	const char *why;

	if (name == NULL)
		return;
	if (k->del(admin_st(r->a), name, &why) == -1)
		api_error(r, 500, "store: %s", why);
	else {
		msg_info("admin %s deleted %s %s", r->session->username,
		    k->what, name);
		api_no_content(r);
	}
	free(name);
}

void
api_domains_list(struct api_req *r)
{
	owner_list(r, &domains);
}

void
api_domains_add(struct api_req *r)
{
	owner_add(r, &domains);
}

void
api_domains_get(struct api_req *r)
{
	owner_get(r, &domains);
}

void
api_domains_put(struct api_req *r)
{
	owner_put(r, &domains);
}

void
api_domains_delete(struct api_req *r)
{
	owner_delete(r, &domains);
}

void
api_users_list(struct api_req *r)
{
	owner_list(r, &users);
}

void
api_users_add(struct api_req *r)
{
	owner_add(r, &users);
}

void
api_users_get(struct api_req *r)
{
	owner_get(r, &users);
}

void
api_users_put(struct api_req *r)
{
	owner_put(r, &users);
}

void
api_users_delete(struct api_req *r)
{
	owner_delete(r, &users);
}

void
api_settings_get(struct api_req *r)
{
	json_t *detail = level_json(r, STORE_GLOBAL, NULL);

	if (detail != NULL)
		api_json(r, 200, detail);
}

void
api_settings_put(struct api_req *r)
{
	level_put(r, STORE_GLOBAL, NULL);
}
