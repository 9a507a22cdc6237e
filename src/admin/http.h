/*
 * The HTTPS server of the admin process: libmicrohttpd with GnuTLS on the
 * sockets the parent bound, a small pool of threads, static assets and
 * the API behind one set of security headers.
 */
#ifndef MAILSEAL_HTTP_H
#define MAILSEAL_HTTP_H

#include <stddef.h>

struct admin;
struct http_server;

/*
 * Serves on each listening socket fds[i] with the PEM certificate chain
 * and key given as text. NULL with a reason on failure.
 */
struct http_server *http_start(struct admin *, const int *fds, size_t nfds,
    const char *cert_pem, const char *key_pem, const char **error_r);
void http_stop(struct http_server **);

/* The headers every response carries (see docs/architecture.md). */
struct http_header {
	const char *name, *value;
};
extern const struct http_header http_security_headers[];
extern const size_t http_nsecurity_headers;

#endif
