/*
 * The SMTP server (smtp-in): RFC 5321 sessions on libevent, the relay
 * decision at RCPT TO, message data streamed into the spool, and "250
 * queued as" only after the group commit made the message durable.
 */
#ifndef MAILSEAL_SMTP_SERVER_H
#define MAILSEAL_SMTP_SERVER_H

#include <stdbool.h>

#include <openssl/ssl.h>

struct event_base;
struct config;
struct spool;
struct committer;
struct smtpd;

/*
 * Recipient verification (reject_unverified_recipient), provided by the
 * delivery side. done() is called exactly once, possibly before verify
 * returns: code 0 accepts, otherwise code and text are the SMTP reply.
 */
typedef void (*smtpd_verify_done)(int code, const char *reply, void *arg);
typedef void (*smtpd_verify_fn)(
    void *ctx, const char *rcpt, smtpd_verify_done done, void *arg);

struct smtpd_hooks {
	void *ctx;
	smtpd_verify_fn verify;
	/* A message is in queue/ (called after the 250 reply is sent). */
	void (*queued)(void *ctx, const char *qid);
};

struct smtpd *smtpd_new(struct event_base *, struct config *, struct spool *,
    struct committer *, SSL_CTX *tls);
void smtpd_set_hooks(struct smtpd *, const struct smtpd_hooks *);
/* Starts a session on a connected socket from addr (tests, fuzzing). */
int smtpd_accept_fd(struct smtpd *, int fd, const char *addr);
/* Starts accepting on a bound, listening socket. */
int smtpd_listen_fd(struct smtpd *, int fd);
/* New sessions use the new configuration; sessions in progress keep theirs. */
void smtpd_set_config(struct smtpd *, struct config *, SSL_CTX *tls);
/* Stops accepting and closes idle sessions (421). */
void smtpd_shutdown(struct smtpd *);
unsigned smtpd_session_count(const struct smtpd *);
void smtpd_free(struct smtpd **);

#endif
