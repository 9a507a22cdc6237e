/*
 * The dispatcher process: SMTP sessions, the spool and its committer,
 * the queue manager with the filter stage and smtp-out, DNS, recipient
 * verification and the control socket. One libevent loop, no private
 * keys.
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
struct dns;
struct qmgr;
struct verify;

struct dispatcher {
	struct event_base *base;
	const char *config_path;
	struct config *cfg;
	struct spool *spool;
	struct committer *committer;
	struct smtpd *smtpd;
	struct control *control;
	struct dns *dns;
	struct qmgr *qmgr;
	struct verify *verify;
	SSL_CTX *tls;
	bool stopping;
	struct event *stop_check;
};

#endif
