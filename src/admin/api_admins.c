/* Admin → admins: who may log in to the console. */
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/admin_store.h"
#include "admin/api.h"
#include "admin/password.h"
#include "common/log.h"
#include "common/util.h"
#include "store/store.h"

void
api_admins_list(struct api_req *r)
{
	struct store_admin *v = NULL;
	size_t n = 0;
	const char *why;
	json_t *list;

	if (store_admin_list(admin_st(r->a), &v, &n, &why) == -1) {
		api_error(r, 500, "store: %s", why);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list,
		    json_pack("{s:s,s:I,s:b}", "username", v[i].name, "created",
			(json_int_t)v[i].created, "you",
			strcmp(v[i].name, r->session->username) == 0));
	store_admin_free(v, n);
	api_json(r, 200, json_pack("{s:o}", "admins", list));
}

static bool
name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64)
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || strchr("._@-", *p) != NULL))
			return false;
	return true;
}

void
api_admins_add(struct api_req *r)
{
	static const char *const keys[] = { "username", "password", NULL };
	struct store_admin *old = NULL;
	json_t *errors = json_object();
	const char *user, *pw, *why;
	char *hash;

	json_reject_unknown(r->json, keys, errors);
	if (json_get_string(r->json, "username", true, 64, &user, errors) ==
		0 &&
	    !name_ok(user))
		errors_set(errors, "username",
		    "must be 1 to 64 letters, digits and . _ @ -");
	if (json_get_string(r->json, "password", true, 1024, &pw, errors) ==
		0 &&
	    password_check_new(pw, &why) == -1)
		errors_set(errors, "password", "%s", why);
	if (json_object_size(errors) == 0) {
		if (store_admin_get(admin_st(r->a), user, &old, &why) == -1) {
			json_decref(errors);
			api_error(r, 500, "store: %s", why);
			return;
		}
		if (old != NULL) {
			errors_set(errors, "username", "already exists");
			store_admin_free(old, 1);
		}
	}
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	if (password_hash(pw, &hash, &why) == -1 ||
	    store_admin_add(admin_st(r->a), user, hash, &why) == -1) {
		api_error(r, 500, "%s", why);
		return;
	}
	free(hash);
	msg_info("admin %s added admin %s", r->session->username, user);
	api_json(r, 201, json_pack("{s:s}", "username", user));
}

void
api_admins_delete(struct api_req *r)
{
	const char *name = r->params.v[0], *why;
	struct store_admin *v = NULL;
	size_t n = 0;
	bool found = false;

	if (strcmp(name, r->session->username) == 0) {
		json_t *e = json_object();
		errors_set(e, "username",
		    "you cannot delete yourself: log in as another admin");
		api_field_errors(r, e);
		return;
	}
	if (store_admin_list(admin_st(r->a), &v, &n, &why) == -1) {
		api_error(r, 500, "store: %s", why);
		return;
	}
	for (size_t i = 0; i < n; i++)
		found |= strcmp(v[i].name, name) == 0;
	store_admin_free(v, n);
	if (!found) {
		api_error(r, 404, "no such admin: %s", name);
		return;
	}
	if (store_admin_delete(admin_st(r->a), name, &why) == -1) {
		api_error(r, 500, "store: %s", why);
		return;
	}
	sessions_remove_user(&r->a->sessions, name, NULL);
	msg_info("admin %s deleted admin %s", r->session->username, name);
	api_no_content(r);
}

void
api_admins_password(struct api_req *r)
{
	static const char *const keys[] = { "password", "current_password",
		NULL };
	const char *name = r->params.v[0], *pw, *cur = NULL, *why;
	bool self = strcmp(name, r->session->username) == 0;
	struct store_admin *adm = NULL;
	json_t *errors = json_object();
	char *hash;

	json_reject_unknown(r->json, keys, errors);
	if (json_get_string(r->json, "password", true, 1024, &pw, errors) ==
		0 &&
	    password_check_new(pw, &why) == -1)
		errors_set(errors, "password", "%s", why);
	/* One's own password needs the current one: a left-open browser. */
	json_get_string(r->json, "current_password", self, 1024, &cur, errors);
	if (!name_ok(name) ||
	    store_admin_get(admin_st(r->a), name, &adm, &why) == -1 ||
	    adm == NULL) {
		json_decref(errors);
		api_error(r, 404, "no such admin: %s", name);
		return;
	}
	if (self && cur != NULL && !password_verify(cur, adm->password_hash))
		errors_set(errors, "current_password", "is wrong");
	store_admin_free(adm, 1);
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	if (password_hash(pw, &hash, &why) == -1 ||
	    store_admin_set_password(admin_st(r->a), name, hash, &why) == -1) {
		api_error(r, 500, "%s", why);
		return;
	}
	/* Other sessions of that admin end; this one goes on. */
	sessions_remove_user(&r->a->sessions, name, r->session);
	if (self)
		session_set_pw_tag(r->session, hash);
	free(hash);
	msg_info(
	    "admin %s changed the password of %s", r->session->username, name);
	api_no_content(r);
}
