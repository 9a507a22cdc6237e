/*
 * The dispatcher process: SMTP sessions, the spool and its committer,
 * the control socket; later the queue manager, smtp-out and DNS. One
 * libevent loop, no private keys.
 */
#ifndef MAILSEAL_DISPATCHER_H
#define MAILSEAL_DISPATCHER_H

#include <stdbool.h>

#include <openssl/ssl.h>

struct event;
struct event_base;
struct config;
struct spool;
struct committer;
struct smtpd;
struct control;

struct dispatcher {
	struct event_base *base;
	const char *config_path;
	struct config *cfg;
	struct spool *spool;
	struct committer *committer;
	struct smtpd *smtpd;
	struct control *control;
	SSL_CTX *tls;
	bool stopping;
	struct event *stop_check;
};

#endif
