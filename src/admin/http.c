#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "admin/admin.h"
#include "admin/api.h"
#include "admin/assets.h"
#include "admin/http.h"
#include "common/log.h"
#include "common/util.h"

#define HTTP_MAX_SERVERS 8
#define HTTP_MAX_BODY (1U << 20)
#define HTTP_MAX_UPLOAD (16U << 20)

/*
 * No inline script or style anywhere, so the policy can forbid both: an
 * injected <script> does not run even if some text escapes escaping.
 */
const struct http_header http_security_headers[] = {
	{ "Content-Security-Policy",
	    "default-src 'none'; script-src 'self'; style-src 'self'; "
	    "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
	    "base-uri 'none'; frame-ancestors 'none'" },
	{ "X-Frame-Options", "DENY" },
	{ "X-Content-Type-Options", "nosniff" },
	{ "Referrer-Policy", "no-referrer" },
	{ "Cross-Origin-Opener-Policy", "same-origin" },
	{ "Cross-Origin-Resource-Policy", "same-origin" },
	{ "Strict-Transport-Security", "max-age=31536000" },
	{ "Permissions-Policy", "camera=(), microphone=(), geolocation=()" },
};
const size_t http_nsecurity_headers = nitems(http_security_headers);

struct http_server {
	struct admin *a;
	struct MHD_Daemon *d[HTTP_MAX_SERVERS];
	size_t n;
};

struct conn_ctx {
	size_t max;
	char *body;
	size_t len, cap;
	bool api;
	char addr[INET6_ADDRSTRLEN];
};

static const char *
conn_lookup(void *conn, enum api_lookup kind, const char *name)
{
	static const enum MHD_ValueKind kinds[] = {
		[API_HEADER] = MHD_HEADER_KIND,
		[API_QUERY] = MHD_GET_ARGUMENT_KIND,
		[API_COOKIE] = MHD_COOKIE_KIND,
	};

	return MHD_lookup_connection_value(conn, kinds[kind], name);
}

static void
client_addr(struct MHD_Connection *conn, char *buf, size_t size)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

	snprintf(buf, size, "unknown");
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    buf, (socklen_t)size);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		    (socklen_t)size);
}

static enum MHD_Result
send_response(struct MHD_Connection *conn, unsigned status, const char *ctype,
    const void *body, size_t len, bool api, const struct api_resp *extra)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(
	    len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	for (size_t i = 0; i < http_nsecurity_headers; i++)
		MHD_add_response_header(resp, http_security_headers[i].name,
		    http_security_headers[i].value);
	if (ctype != NULL && status != 204 && status != 304)
		MHD_add_response_header(resp, "Content-Type", ctype);
	if (api) {
		/* Answers of the API hold settings and keys: keep no copy. */
		MHD_add_response_header(resp, "Cache-Control", "no-store");
		MHD_add_response_header(resp, "Pragma", "no-cache");
	}
	for (size_t i = 0; extra != NULL && i < extra->nhdr; i++)
		MHD_add_response_header(
		    resp, extra->hname[i], extra->hvalue[i]);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
send_error(struct MHD_Connection *conn, unsigned status, const char *msg)
{
	char *body = xasprintf("{\"error\":\"%s\"}", msg);
	enum MHD_Result ret;

	ret = send_response(
	    conn, status, "application/json", body, strlen(body), true, NULL);
	free(body);
	return ret;
}

static enum MHD_Result
serve_asset(struct MHD_Connection *conn, const char *method, const char *url)
{
	const struct asset *as;
	struct api_resp extra = { 0 };
	const char *inm;
	enum MHD_Result ret;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_error(conn, 405, "method not allowed");
	if ((as = asset_find(url)) == NULL)
		return send_error(conn, 404, "not found");
	extra.hname[0] = (char *)(uintptr_t) "ETag";
	extra.hvalue[0] = (char *)(uintptr_t)as->etag;
	extra.hname[1] = (char *)(uintptr_t) "Cache-Control";
	extra.hvalue[1] = (char *)(uintptr_t) "no-cache";
	extra.nhdr = 2;
	inm =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
	if (inm != NULL && strcmp(inm, as->etag) == 0)
		ret = send_response(conn, 304, NULL, "", 0, false, &extra);
	else
		ret = send_response(
		    conn, 200, as->ctype, as->data, as->len, false, &extra);
	return ret;
}

static enum MHD_Result
serve_api(struct http_server *hs, struct MHD_Connection *conn,
    struct conn_ctx *cc, const char *method, const char *url)
{
	struct api_req r;
	enum MHD_Result ret;

	memset(&r, 0, sizeof(r));
	r.a = hs->a;
	r.method = method;
	r.path = url;
	r.client_addr = cc->addr;
	r.host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	r.body = cc->body != NULL ? cc->body : "";
	r.body_len = cc->len;
	r.lookup = conn_lookup;
	r.conn = conn;
	api_dispatch(&r);
	if (r.resp.status == 0)
		api_error(&r, 500, "no reply");
	ret = send_response(conn, r.resp.status, r.resp.ctype, r.resp.body,
	    r.resp.len, true, &r.resp);
	api_resp_free(&r.resp);
	return ret;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct http_server *hs = cls;
	struct conn_ctx *cc = *con_cls;

	if (cc == NULL) {
		struct route_params params;
		const struct route *rt;
		const char *cl;
		int status;

		cc = xcalloc(1, sizeof(*cc));
		*con_cls = cc;
		client_addr(conn, cc->addr, sizeof(cc->addr));
		cc->api = strncmp(url, "/api/", 5) == 0;
		rt = cc->api ? route_find(api_routes, api_nroutes, method, url,
				   &params, &status)
			     : NULL;
		cc->max = rt == NULL	     ? 0
		    : (rt->flags & R_UPLOAD) ? HTTP_MAX_UPLOAD
					     : HTTP_MAX_BODY;
		cl = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, "Content-Length");
		if (cl != NULL && strtoull(cl, NULL, 10) > cc->max &&
		    (rt != NULL || strtoull(cl, NULL, 10) > 0))
			return send_error(conn, 413, "request body too large");
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		if (n > cc->max - cc->len)
			return MHD_NO; /* closes the connection */
		if (cc->len + n + 1 > cc->cap) {
			cc->cap = (cc->len + n + 1) * 2;
			if (cc->cap > cc->max + 1)
				cc->cap = cc->max + 1;
			cc->body = xreallocarray(cc->body, cc->cap, 1);
		}
		memcpy(cc->body + cc->len, upload_data, n);
		cc->len += n;
		cc->body[cc->len] = '\0';
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (cc->api)
		return serve_api(hs, conn, cc, method, url);
	return serve_asset(conn, method, url);
}

static void
completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct conn_ctx *cc = *con_cls;

	if (cc == NULL)
		return;
	if (cc->body != NULL)
		xfree_secret(cc->body, cc->cap); /* may hold passwords */
	free(cc);
	*con_cls = NULL;
}

struct http_server *
http_start(struct admin *a, const int *fds, size_t nfds, const char *cert_pem,
    const char *key_pem, const char **error_r)
{
	struct http_server *hs;

	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		*error_r = "libmicrohttpd is built without TLS";
		return NULL;
	}
	hs = xcalloc(1, sizeof(*hs));
	hs->a = a;
	for (size_t i = 0; i < nfds && i < HTTP_MAX_SERVERS; i++) {
		hs->d[i] = MHD_start_daemon(MHD_USE_TLS |
			MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
			MHD_USE_ERROR_LOG,
		    0, NULL, NULL, access_cb, hs, MHD_OPTION_LISTEN_SOCKET,
		    fds[i], MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
		    MHD_OPTION_HTTPS_MEM_KEY, key_pem,
		    MHD_OPTION_HTTPS_PRIORITIES,
		    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
		    MHD_OPTION_THREAD_POOL_SIZE, 4, MHD_OPTION_CONNECTION_LIMIT,
		    256, MHD_OPTION_PER_IP_CONNECTION_LIMIT, 32,
		    MHD_OPTION_CONNECTION_TIMEOUT, 60,
		    MHD_OPTION_NOTIFY_COMPLETED, completed_cb, hs,
		    MHD_OPTION_END);
		if (hs->d[i] == NULL) {
			*error_r = "cannot start the HTTPS server (bad "
				   "certificate or key?)";
			http_stop(&hs);
			return NULL;
		}
		hs->n = i + 1;
	}
	return hs;
}

void
http_stop(struct http_server **hsp)
{
	struct http_server *hs = *hsp;

	if (hs == NULL)
		return;
	for (size_t i = 0; i < HTTP_MAX_SERVERS; i++)
		if (hs->d[i] != NULL)
			MHD_stop_daemon(hs->d[i]);
	free(hs);
	*hsp = NULL;
}
