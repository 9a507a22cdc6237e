#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "policy/policy.h"

static char errbuf[512];

const char *
policy_level_name(enum policy_level l)
{
	static const char *const names[] = {
		[POLICY_DEFAULT] = "default",
		[POLICY_GLOBAL] = "global",
		[POLICY_WILDCARD] = "wildcard",
		[POLICY_DOMAIN] = "domain",
		[POLICY_USER] = "user",
	};

	return names[l];
}

/* Copies s into the policy's own strings. */
static const char *
pol_keep(struct policy *pol, const char *s)
{
	if (s == NULL)
		return NULL;
	strlist_add(&pol->strings, s);
	return pol->strings.v[pol->strings.n - 1];
}

/*
 * Takes from one level's stored properties every value that a more
 * specific level has not set yet.
 */
static int
pol_apply(struct policy *pol, const struct store_props *props,
    enum policy_level level, const char *source, const char **error_r)
{
	for (size_t i = 0; i < props->n; i++) {
		int id = prop_lookup(props->v[i].name);
		const char *why;
		char *c;

		/* A property this version does not know (yet): ignored. */
		if (id < 0 || pol->v[id].value != NULL)
			continue;
		if ((c = prop_canon(id, props->v[i].value, &why)) == NULL) {
			snprintf(errbuf, sizeof(errbuf),
			    "stored value '%.100s' of %s at %s%s%.100s is "
			    "invalid: %s",
			    props->v[i].value, props->v[i].name,
			    policy_level_name(level), source ? " " : "",
			    source ? source : "", why);
			*error_r = errbuf;
			return -1;
		}
		pol->v[id].value = pol_keep(pol, c);
		pol->v[id].level = level;
		pol->v[id].source = pol_keep(pol, source);
		free(c);
	}
	return 0;
}

static int
pol_level(struct policy *pol, struct store *st, enum store_level slevel,
    const char *owner, enum policy_level level, const char **error_r)
{
	struct store_props props;
	int rc;

	if (store_props_get(st, slevel, owner, &props, error_r) == -1)
		return -1;
	rc = pol_apply(pol, &props, level, owner, error_r);
	store_props_free(&props);
	return rc;
}

/*
 * The wildcards that cover a domain, most specific first: for
 * a.b.example.com (or *.a.b.example.com) they are *.b.example.com,
 * *.example.com, *.com.
 */
static int
pol_wildcards(struct policy *pol, struct store *st, const char *domain,
    const char **error_r)
{
	const char *p = domain;

	if (strncmp(p, "*.", 2) == 0)
		p += 2;
	while ((p = strchr(p, '.')) != NULL) {
		char *w = xasprintf("*%s", p);
		int rc = pol_level(
		    pol, st, STORE_DOMAIN, w, POLICY_WILDCARD, error_r);
		free(w);
		if (rc == -1)
			return -1;
		p++;
	}
	return 0;
}

static int
pol_fill(struct policy *pol, struct store *st, const char **error_r)
{
	const char *domain = NULL;

	if (pol->from == STORE_USER) {
		domain = strrchr(pol->name, '@') + 1;
		if (store_user_exists(
			st, pol->name, &pol->has_record, error_r) == -1 ||
		    store_domain_exists(
			st, domain, &pol->domain_has_record, error_r) == -1 ||
		    pol_level(pol, st, STORE_USER, pol->name, POLICY_USER,
			error_r) == -1)
			return -1;
	} else if (pol->from == STORE_DOMAIN) {
		domain = pol->name;
		if (store_domain_exists(
			st, domain, &pol->has_record, error_r) == -1)
			return -1;
		pol->domain_has_record = pol->has_record;
	}
	if (domain != NULL &&
	    (pol_level(pol, st, STORE_DOMAIN, domain,
		 strncmp(domain, "*.", 2) == 0 ? POLICY_WILDCARD
					       : POLICY_DOMAIN,
		 error_r) == -1 ||
		pol_wildcards(pol, st, domain, error_r) == -1))
		return -1;
	if (pol_level(pol, st, STORE_GLOBAL, NULL, POLICY_GLOBAL, error_r) ==
	    -1)
		return -1;
	for (int i = 0; i < PROP__COUNT; i++) {
		if (pol->v[i].value != NULL)
			continue;
		pol->v[i].value = prop_table[i].def;
		pol->v[i].level = POLICY_DEFAULT;
	}
	return 0;
}

int
policy_resolve(struct store *st, enum store_level from, const char *name,
    struct policy **pol_r, const char **error_r)
{
	struct policy *pol = xcalloc(1, sizeof(*pol));

	pol->from = from;
	if (from == STORE_USER)
		pol->name = store_canon_email(name, error_r);
	else if (from == STORE_DOMAIN)
		pol->name = store_canon_domain(name, true, error_r);
	if (from != STORE_GLOBAL && pol->name == NULL) {
		policy_free(&pol);
		return -1;
	}
	if (pol_fill(pol, st, error_r) == -1) {
		policy_free(&pol);
		return -1;
	}
	*pol_r = pol;
	return 0;
}

void
policy_free(struct policy **polp)
{
	struct policy *pol = *polp;

	if (pol == NULL)
		return;
	*polp = NULL;
	free(pol->name);
	strlist_free(&pol->strings);
	free(pol);
}

const char *
policy_get(const struct policy *pol, enum prop_id id)
{
	return pol->v[id].value;
}

bool
policy_bool(const struct policy *pol, enum prop_id id)
{
	if (prop_table[id].type != PROPT_BOOL)
		msg_panic("policy_bool: %s is not yes|no", prop_table[id].name);
	return strcmp(pol->v[id].value, "yes") == 0;
}

void
policy_list(const struct policy *pol, enum prop_id id, struct strlist *out)
{
	strlist_split(out, pol->v[id].value);
}

static int
policy_prop(const char *prop, const char **error_r)
{
	int id;

	if ((id = prop_lookup(prop)) < 0) {
		snprintf(errbuf, sizeof(errbuf),
		    "unknown property '%.100s' (mailsealctl property list "
		    "shows them)",
		    prop);
		*error_r = errbuf;
	}
	return id;
}

/* Each fingerprint of a list must name a stored certificate. */
static int
fprs_stored(struct store *st, const char *list, const char **error_r)
{
	struct strlist fprs = { 0 };
	struct store_cert *c = NULL;
	int rc = 0;

	strlist_split(&fprs, list);
	for (size_t i = 0; i < fprs.n && rc == 0; i++) {
		if ((rc = store_cert_get(st, fprs.v[i], false, &c, error_r)) ==
			0 &&
		    c == NULL) {
			snprintf(errbuf, sizeof(errbuf),
			    "no certificate %s is stored", fprs.v[i]);
			*error_r = errbuf;
			rc = -1;
		}
		store_cert_free(&c);
	}
	strlist_free(&fprs);
	return rc;
}

int
policy_set(struct store *st, enum store_level level, const char *owner,
    const char *prop, const char *value, const char **error_r)
{
	const char *why;
	char *c;
	int id, rc;

	if ((id = policy_prop(prop, error_r)) < 0)
		return -1;
	if ((c = prop_canon(id, value, &why)) == NULL) {
		snprintf(errbuf, sizeof(errbuf),
		    "bad value '%.200s' for %s: %s", value, prop, why);
		*error_r = errbuf;
		return -1;
	}
	if (prop_table[id].type == PROPT_FPRLIST &&
	    fprs_stored(st, c, error_r) == -1) {
		free(c);
		return -1;
	}
	rc = store_prop_set(st, level, owner, prop, c, error_r);
	free(c);
	return rc;
}

int
policy_inherit(struct store *st, enum store_level level, const char *owner,
    const char *prop, const char **error_r)
{
	if (policy_prop(prop, error_r) < 0)
		return -1;
	return store_prop_unset(st, level, owner, prop, error_r);
}
