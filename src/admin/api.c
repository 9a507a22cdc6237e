/*
 * The API pipeline: route, session, CSRF, content type, body, handler.
 * Checks run in that order, so a request learns no more than its
 * credentials allow: 401 before 403 before 415 before 400.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin.h"
#include "admin/admin_store.h"
#include "admin/api.h"
#include "admin/session.h"
#include "common/config.h"
#include "common/util.h"
#include "store/store.h"

#define SESSION_COOKIE "mailseal_session"

const struct route api_routes[] = {
	{ "POST", "/api/v1/login", api_login, R_PUBLIC | R_JSON },
	{ "POST", "/api/v1/logout", api_logout, 0 },
	{ "GET", "/api/v1/session", api_session, 0 },
	{ "GET", "/api/v1/mta", api_mta_get, 0 },
	{ "PUT", "/api/v1/mta", api_mta_put, R_JSON },
	{ "GET", "/api/v1/mta/sasl", api_sasl_get, 0 },
	{ "PUT", "/api/v1/mta/sasl", api_sasl_put, R_JSON },
	{ "POST", "/api/v1/apply", api_apply, 0 },
	{ "GET", "/api/v1/logs", api_logs, 0 },
	{ "GET", "/api/v1/network", api_network_get, 0 },
	{ "PUT", "/api/v1/network/dns", api_network_dns_put, R_JSON },
	{ "GET", "/api/v1/queue", api_queue_list, 0 },
	{ "GET", "/api/v1/queue/:id", api_queue_show, 0 },
	{ "POST", "/api/v1/queue/:action", api_queue_action, R_JSON },
	{ "POST", "/api/v1/send-test", api_send_test, R_JSON },
	{ "GET", "/api/v1/admins", api_admins_list, 0 },
	{ "POST", "/api/v1/admins", api_admins_add, R_JSON },
	{ "DELETE", "/api/v1/admins/:name", api_admins_delete, 0 },
	{ "PUT", "/api/v1/admins/:name/password", api_admins_password, R_JSON },
	{ "GET", "/api/v1/properties", api_properties, 0 },
	{ "GET", "/api/v1/domains", api_domains_list, 0 },
	{ "POST", "/api/v1/domains", api_domains_add, R_JSON },
	{ "GET", "/api/v1/domains/:name", api_domains_get, 0 },
	{ "PUT", "/api/v1/domains/:name", api_domains_put, R_JSON },
	{ "DELETE", "/api/v1/domains/:name", api_domains_delete, 0 },
	{ "GET", "/api/v1/users", api_users_list, 0 },
	{ "POST", "/api/v1/users", api_users_add, R_JSON },
	{ "GET", "/api/v1/users/:email", api_users_get, 0 },
	{ "PUT", "/api/v1/users/:email", api_users_put, R_JSON },
	{ "DELETE", "/api/v1/users/:email", api_users_delete, 0 },
	{ "GET", "/api/v1/settings", api_settings_get, 0 },
	{ "PUT", "/api/v1/settings", api_settings_put, R_JSON },
	{ "GET", "/api/v1/certificates", api_certs_list, 0 },
	{ "POST", "/api/v1/certificates", api_certs_import, R_UPLOAD },
	{ "GET", "/api/v1/certificates/:fpr", api_certs_get, 0 },
	{ "GET", "/api/v1/certificates/:fpr/pem", api_certs_pem, 0 },
	{ "DELETE", "/api/v1/certificates/:fpr", api_certs_delete, 0 },
	{ "GET", "/api/v1/roots", api_roots_list, 0 },
	{ "POST", "/api/v1/roots", api_roots_import, R_UPLOAD },
	{ "DELETE", "/api/v1/roots/:fpr", api_roots_delete, 0 },
	{ "GET", "/api/v1/crls", api_crls_list, 0 },
	{ "POST", "/api/v1/crls", api_crls_import, R_UPLOAD },
	{ "DELETE", "/api/v1/crls/:fpr", api_crls_delete, 0 },
	{ "GET", "/api/v1/ctl", api_ctl_list, 0 },
	{ "PUT", "/api/v1/ctl/:fpr", api_ctl_put, R_JSON },
	{ "DELETE", "/api/v1/ctl/:fpr", api_ctl_delete, 0 },
};
const size_t api_nroutes = nitems(api_routes);

void
api_resp_free(struct api_resp *resp)
{
	free(resp->body);
	for (size_t i = 0; i < resp->nhdr; i++) {
		free(resp->hname[i]);
		free(resp->hvalue[i]);
	}
	memset(resp, 0, sizeof(*resp));
}

void
api_raw(struct api_req *r, unsigned status, const char *ctype, const void *body,
    size_t len)
{
	free(r->resp.body);
	r->resp.status = status;
	r->resp.ctype = ctype;
	r->resp.body = xmalloc(len + 1);
	memcpy(r->resp.body, body, len);
	r->resp.body[len] = '\0';
	r->resp.len = len;
}

void
api_json(struct api_req *r, unsigned status, json_t *json)
{
	char *text = json_dumps(json, JSON_COMPACT | JSON_ENSURE_ASCII);

	json_decref(json);
	if (text == NULL) {
		api_raw(r, 500, "application/json",
		    "{\"error\":\"cannot encode the reply\"}", 35);
		return;
	}
	api_raw(r, status, "application/json", text, strlen(text));
	free(text);
}

void
api_error(struct api_req *r, unsigned status, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	api_json(r, status, json_pack("{s:s}", "error", msg));
	free(msg);
}

void
api_field_errors(struct api_req *r, json_t *errors)
{
	api_json(r, 400, json_pack("{s:o}", "errors", errors));
}

void
api_no_content(struct api_req *r)
{
	api_raw(r, 204, "application/json", "", 0);
}

void
api_header(struct api_req *r, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (r->resp.nhdr == API_MAX_HEADERS)
		return;
	va_start(ap, fmt);
	r->resp.hvalue[r->resp.nhdr] = xvasprintf(fmt, ap);
	va_end(ap);
	r->resp.hname[r->resp.nhdr++] = xstrdup(name);
}

const char *
api_query(struct api_req *r, const char *name)
{
	return r->lookup(r->conn, API_QUERY, name);
}

const char *
api_request_header(struct api_req *r, const char *name)
{
	return r->lookup(r->conn, API_HEADER, name);
}

void
errors_set(json_t *errors, const char *field, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	/* The first problem of a field is the one shown. */
	if (json_object_get(errors, field) != NULL)
		return;
	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	json_object_set_new(errors, field, json_string(msg));
	free(msg);
}

static bool
text_ok(const char *s, size_t len)
{
	/* No control characters: values end up in files and logs. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

int
json_get_string(json_t *obj, const char *key, bool required, size_t maxlen,
    const char **out, json_t *errors)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (!required)
			return 0;
		errors_set(errors, key, "is required");
		return -1;
	}
	if (!json_is_string(v)) {
		errors_set(errors, key, "must be a string");
		return -1;
	}
	if (json_string_length(v) > maxlen) {
		errors_set(
		    errors, key, "must be at most %zu characters", maxlen);
		return -1;
	}
	if (strlen(json_string_value(v)) != json_string_length(v) ||
	    !text_ok(json_string_value(v), json_string_length(v))) {
		errors_set(errors, key, "must not contain control characters");
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

int
json_get_bool(
    json_t *obj, const char *key, bool required, int *out, json_t *errors)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		if (!required)
			return 0;
		errors_set(errors, key, "is required");
		return -1;
	}
	if (!json_is_boolean(v)) {
		errors_set(errors, key, "must be true or false");
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

int
json_get_strings(json_t *obj, const char *key, bool required, size_t maxitems,
    size_t maxlen, json_t **out, json_t *errors)
{
	json_t *v = json_object_get(obj, key), *item;
	size_t i;

	*out = NULL;
	if (v == NULL) {
		if (!required)
			return 0;
		errors_set(errors, key, "is required");
		return -1;
	}
	if (!json_is_array(v)) {
		errors_set(errors, key, "must be a list");
		return -1;
	}
	if (json_array_size(v) > maxitems) {
		errors_set(
		    errors, key, "must have at most %zu entries", maxitems);
		return -1;
	}
	json_array_foreach(v, i, item)
	{
		if (!json_is_string(item) ||
		    json_string_length(item) > maxlen ||
		    json_string_length(item) == 0 ||
		    strlen(json_string_value(item)) !=
			json_string_length(item) ||
		    !text_ok(
			json_string_value(item), json_string_length(item))) {
			errors_set(errors, key,
			    "entry %zu must be a non-empty string of at most "
			    "%zu characters",
			    i + 1, maxlen);
			return -1;
		}
	}
	*out = v;
	return 0;
}

void
json_reject_unknown(json_t *obj, const char *const *allowed, json_t *errors)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		bool known = false;
		for (size_t i = 0; allowed[i] != NULL && !known; i++)
			known = strcmp(allowed[i], key) == 0;
		if (!known)
			errors_set(errors, key, "unknown field");
	}
}

/* "application/json" or "application/json; charset=utf-8" */
static bool
ctype_is(const char *ctype, const char *want)
{
	size_t n = strlen(want);

	if (ctype == NULL || strncasecmp(ctype, want, n) != 0)
		return false;
	return ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ';
}

/*
 * A browser sends Origin with every cross-site POST; ours must be this
 * very console. Requests without Origin (curl, scripts) pass on to the
 * CSRF token check.
 */
static bool
origin_ok(struct api_req *r)
{
	const char *origin = api_request_header(r, "Origin");

	if (origin == NULL)
		return true;
	if (r->host == NULL || strncmp(origin, "https://", 8) != 0)
		return false;
	return strcasecmp(origin + 8, r->host) == 0;
}

static bool
body_parse(struct api_req *r)
{
	json_error_t jerr;

	if (r->body_len == 0) {
		r->json = json_object();
		return true;
	}
	r->json =
	    json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (r->json == NULL) {
		json_t *e = json_object();
		errors_set(e, "_body", "not valid JSON: %s (at %d:%d)",
		    jerr.text, jerr.line, jerr.column);
		api_field_errors(r, e);
		return false;
	}
	if (!json_is_object(r->json)) {
		json_t *e = json_object();
		errors_set(e, "_body", "must be a JSON object");
		api_field_errors(r, e);
		return false;
	}
	return true;
}

/* The session's admin still exists, with the password of the login. */
static bool
session_current(struct api_req *r)
{
	struct store_admin *adm = NULL;
	const char *why;
	bool ok;

	if (r->a->test_mode)
		return true;
	if (store_admin_get(admin_st(r->a), r->session->username, &adm, &why) ==
	    -1)
		return false;
	ok = adm != NULL && session_pw_tag_ok(r->session, adm->password_hash);
	if (adm != NULL)
		store_admin_free(adm, 1);
	return ok;
}

static void
api_dispatch_locked(struct api_req *r)
{
	struct admin *a = r->a;
	uint64_t idle =
	    (uint64_t)cfg_int(a->cfg, P_ADMIN_SESSION_TIMEOUT) * 1000000;
	const char *ctype = api_request_header(r, "Content-Type");
	bool unsafe = route_method_unsafe(r->method);

	r->session = sessions_find(&a->sessions,
	    r->lookup(r->conn, API_COOKIE, SESSION_COOKIE), clock_mono_us(),
	    idle);
	if (r->session != NULL && !session_current(r)) {
		sessions_remove(&a->sessions, r->session);
		r->session = NULL;
	}
	if (!(r->route->flags & R_PUBLIC) && r->session == NULL) {
		api_error(r, 401, "authentication required");
		return;
	}
	if (unsafe && !origin_ok(r)) {
		api_error(r, 403, "cross-origin request refused");
		return;
	}
	if (unsafe && !(r->route->flags & R_PUBLIC) &&
	    !session_csrf_ok(
		r->session, api_request_header(r, "X-CSRF-Token"))) {
		api_error(r, 403, "CSRF token missing or wrong");
		return;
	}
	/*
	 * A cross-site form cannot send application/json without a CORS
	 * preflight, which this server never grants: that guards the
	 * login, which has no session and so no CSRF token yet.
	 */
	if ((r->route->flags & R_JSON) && (r->body_len > 0 || unsafe) &&
	    !ctype_is(ctype, "application/json")) {
		api_error(r, 415, "the body must be application/json");
		return;
	}
	if ((r->route->flags & R_UPLOAD) &&
	    !ctype_is(ctype, "multipart/form-data")) {
		api_error(r, 415, "the body must be multipart/form-data");
		return;
	}
	if ((r->route->flags & R_JSON) && !body_parse(r))
		return;
	r->route->fn(r);
}

void
api_dispatch(struct api_req *r)
{
	int status;

	r->route = route_find(
	    api_routes, api_nroutes, r->method, r->path, &r->params, &status);
	if (r->route == NULL) {
		api_error(r, (unsigned)status,
		    status == 405 ? "method not allowed" : "no such API path");
		return;
	}
	pthread_mutex_lock(&r->a->lock);
	api_dispatch_locked(r);
	pthread_mutex_unlock(&r->a->lock);
	json_decref(r->json);
	r->json = NULL;
}
