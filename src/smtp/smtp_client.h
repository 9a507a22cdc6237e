/*
 * The SMTP client (smtp-out): one connection to a next hop on libevent.
 * It tries the addresses of the next hop in order until one greets and
 * completes EHLO (HELO when EHLO is refused), STARTTLS (RFC 3207, as
 * smtp_tls_security_level says) and AUTH (RFC 4954); then it carries
 * transactions, pipelined where the server offers PIPELINING (RFC 2920),
 * with SIZE (RFC 1870) and BODY=8BITMIME (RFC 6152, or the message is
 * converted to quoted-printable for a server without it). A server that
 * greets with our own myhostname is a mail loop.
 */
#ifndef MAILSEAL_SMTP_CLIENT_H
#define MAILSEAL_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

struct event_base;
struct config;
struct spool_env;
struct sasl_cred;
struct smtpc_ctx;
struct smtpc;

enum smtpc_tls_level {
	SMTPC_TLS_NONE,
	SMTPC_TLS_MAY,
	SMTPC_TLS_ENCRYPT,
};

/* The outcome of a connection attempt or of one recipient. */
struct smtpc_status {
	int code; /* the server's reply code; 0 when it said nothing */
	char dsn[12]; /* enhanced status code; '2', '4' or '5' first */
	char *text; /* for the log and the bounce (Postfix's wording) */
	char *diag; /* the server's reply as it was, or NULL */
};

void smtpc_status_set(struct smtpc_status *, int code, const char *dsn,
    const char *diag, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void smtpc_status_clear(struct smtpc_status *);

struct smtpc_opts {
	enum smtpc_tls_level tls;
	const struct sasl_cred *sasl; /* copied; NULL: no AUTH */
	const char *nexthop; /* named in "mail for %s loops back to myself" */
};

struct smtpc_txn {
	const char *sender;
	const char *const *rcpts;
	size_t nrcpt;
	/* The content: a spool file (ignored for a probe). */
	int fd;
	const struct spool_env *env;
	bool body_8bit;
	/* A probe (address verification): MAIL and RCPT, no DATA. */
	bool probe;
	/* Filled in, one per recipient: 2xx sent, 4xx deferred, 5xx bounced. */
	struct smtpc_status *rs;
};

typedef void (*smtpc_ready_cb)(
    struct smtpc *, bool ok, const struct smtpc_status *fail, void *arg);
typedef void (*smtpc_done_cb)(struct smtpc *, struct smtpc_txn *, void *arg);

/* What every connection shares: the loop, the configuration, TLS. */
struct smtpc_ctx *smtpc_ctx_new(
    struct event_base *, struct config *, const char **error_r);
void smtpc_ctx_set_config(struct smtpc_ctx *, struct config *);
/* Closes every connection, also those saying QUIT. */
void smtpc_ctx_free(struct smtpc_ctx **);

/*
 * Connects to the first of the targets that works. ready is called once,
 * from the loop: ok, or the failure of the last target tried (a 5xx DSN
 * means permanent, as a loop is).
 */
struct smtpc *smtpc_connect(struct smtpc_ctx *, const struct smtpc_opts *,
    const struct dns_target *, size_t n, smtpc_ready_cb, void *arg);
/* One transaction on a ready connection; done is called once, later. */
void smtpc_send(struct smtpc *, struct smtpc_txn *, smtpc_done_cb, void *arg);
/* Whether the connection can carry another transaction. */
bool smtpc_usable(const struct smtpc *);
/* Says QUIT (in the background) and lets go; NULLs the pointer. */
void smtpc_quit(struct smtpc **);
/* Closes at once; NULLs the pointer. */
void smtpc_free(struct smtpc **);

/* "mx.remote.test[192.0.2.7]:25", or "none" before a connection. */
const char *smtpc_peer(const struct smtpc *);
/* "mx.remote.test" (for Remote-MTA). */
const char *smtpc_host(const struct smtpc *);
/* When the connection became ready (monotonic microseconds). */
uint64_t smtpc_ready_time(const struct smtpc *);
unsigned smtpc_ctx_count(const struct smtpc_ctx *);

#endif
