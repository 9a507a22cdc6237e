/*
 * The JSON API: requests as the HTTP layer hands them over, replies as
 * handlers make them, and the helpers they share. Every reply is JSON
 * except downloads; bad input is a 400 with {"errors": {FIELD: TEXT}}.
 */
#ifndef MAILSEAL_API_H
#define MAILSEAL_API_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "admin/router.h"

struct admin;
struct session;

enum api_lookup { API_HEADER, API_QUERY, API_COOKIE };

#define API_MAX_HEADERS 8

struct api_resp {
	unsigned status;
	char *body;
	size_t len;
	const char *ctype;
	char *hname[API_MAX_HEADERS], *hvalue[API_MAX_HEADERS];
	size_t nhdr;
};

struct api_req {
	struct admin *a;
	const char *method, *path;
	const struct route *route;
	struct route_params params;
	const char *client_addr;
	const char *host; /* the Host header, for the Origin check */
	const char *body;
	size_t body_len;
	json_t *json; /* the body of an R_JSON route */
	struct session *session;
	/* Header, query argument or cookie of the request, or NULL. */
	const char *(*lookup)(void *conn, enum api_lookup, const char *name);
	void *conn;
	struct api_resp resp;
};

/* The route table (api.c) and the whole pipeline for one request. */
extern const struct route api_routes[];
extern const size_t api_nroutes;
void api_dispatch(struct api_req *);
void api_resp_free(struct api_resp *);

/* Replies. json is stolen. */
void api_json(struct api_req *, unsigned status, json_t *json);
void api_error(struct api_req *, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 400 {"errors": errors}; errors is stolen. */
void api_field_errors(struct api_req *, json_t *errors);
void api_raw(struct api_req *, unsigned status, const char *ctype,
    const void *body, size_t len);
void api_header(struct api_req *, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void api_no_content(struct api_req *);

const char *api_query(struct api_req *, const char *name);
const char *api_request_header(struct api_req *, const char *name);

/*
 * Body fields. Each records a message in errors under key when the field
 * is missing (if required), of the wrong type or too long, and returns
 * -1; 0 otherwise (*out NULL when absent and optional).
 */
int json_get_string(json_t *obj, const char *key, bool required, size_t maxlen,
    const char **out, json_t *errors);
int json_get_bool(
    json_t *obj, const char *key, bool required, int *out, json_t *errors);
/* A list of strings (or NULL when absent and optional). */
int json_get_strings(json_t *obj, const char *key, bool required,
    size_t maxitems, size_t maxlen, json_t **out, json_t *errors);
void errors_set(json_t *errors, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Rejects keys of obj not in allowed (NULL-terminated). */
void json_reject_unknown(
    json_t *obj, const char *const *allowed, json_t *errors);

/* Handlers, one file per area. */
void api_login(struct api_req *);
void api_logout(struct api_req *);
void api_session(struct api_req *);
void api_mta_get(struct api_req *);
void api_mta_put(struct api_req *);
void api_apply(struct api_req *);
void api_sasl_get(struct api_req *);
void api_sasl_put(struct api_req *);
void api_logs(struct api_req *);
void api_network_get(struct api_req *);
void api_network_dns_put(struct api_req *);
void api_queue_list(struct api_req *);
void api_queue_show(struct api_req *);
void api_queue_action(struct api_req *);
void api_send_test(struct api_req *);
void api_admins_list(struct api_req *);
void api_admins_add(struct api_req *);
void api_admins_delete(struct api_req *);
void api_admins_password(struct api_req *);
void api_properties(struct api_req *);
void api_domains_list(struct api_req *);
void api_domains_add(struct api_req *);
void api_domains_get(struct api_req *);
void api_domains_put(struct api_req *);
void api_domains_delete(struct api_req *);
void api_users_list(struct api_req *);
void api_users_add(struct api_req *);
void api_users_get(struct api_req *);
void api_users_put(struct api_req *);
void api_users_delete(struct api_req *);
void api_settings_get(struct api_req *);
void api_settings_put(struct api_req *);
void api_certs_list(struct api_req *);
void api_certs_import(struct api_req *);
void api_certs_get(struct api_req *);
void api_certs_pem(struct api_req *);
void api_certs_delete(struct api_req *);
void api_roots_list(struct api_req *);
void api_roots_import(struct api_req *);
void api_roots_delete(struct api_req *);
void api_crls_list(struct api_req *);
void api_crls_import(struct api_req *);
void api_crls_delete(struct api_req *);
void api_ctl_list(struct api_req *);
void api_ctl_put(struct api_req *);
void api_ctl_delete(struct api_req *);

#endif
