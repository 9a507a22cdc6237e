/*
 * Delivery status notifications (RFC 3464, RFC 6522): a multipart/report
 * with a human-readable part, message/delivery-status and the headers of
 * the original (text/rfc822-headers), from MAILER-DAEMON@myhostname with
 * a null sender, written into the spool as a new message.
 */
#ifndef MAILSEAL_BOUNCE_H
#define MAILSEAL_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct spool;
struct spool_env;
struct committer;

enum bounce_kind {
	BOUNCE_FAILED, /* Action: failed */
	BOUNCE_DELAYED, /* Action: delayed (a warning) */
};

struct bounce_rcpt {
	size_t idx; /* in the envelope (for the caller) */
	const char *addr;
	const char *orcpt; /* or NULL */
	const char *dsn; /* the enhanced status code */
	const char *reason; /* the text of the log line */
	const char *remote_mta; /* the server that answered, or NULL */
	const char *diag; /* its reply, or NULL */
};

typedef void (*bounce_done_fn)(int error, const char *qid, void *arg);

/*
 * The text of a DSN for the recipients of a message (CRLF lines). fd is
 * the message's spool file: its headers are returned. *eightbit_r says
 * whether the text holds 8-bit bytes (from those headers).
 */
char *bounce_compose(const struct config *, const struct spool_env *, int fd,
    const char *new_qid, enum bounce_kind, const struct bounce_rcpt *, size_t n,
    size_t *len_r, bool *eightbit_r);

/*
 * Writes a DSN to the message's sender into the spool (stage filtered,
 * SPOOL_F_BOUNCE); done is called once it is durable. -1 (done not
 * called) when no file can be made.
 */
int bounce_send(struct spool *, struct committer *, const struct config *,
    const struct spool_env *, int fd, enum bounce_kind,
    const struct bounce_rcpt *, size_t n, bounce_done_fn, void *arg);

#endif
