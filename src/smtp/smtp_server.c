#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <openssl/err.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/commit.h"
#include "queue/spool.h"
#include "smtp/smtp_server.h"
#include "smtp/tls.h"

/* Postfix's smtpd_hard_error_limit. */
#define SMTPD_HARD_ERROR_LIMIT 20
/* At most this much unread input is buffered per session. */
#define SMTPD_READ_HIGHWATER (256 * 1024)
#define SMTPD_READ_AHEAD (64 * 1024)

enum session_state {
	S_CMD,
	S_DATA,
	S_CLOSING,
};

struct client_count {
	struct client_count *next;
	unsigned n;
	char addr[INET6_ADDRSTRLEN];
};

#define CLIENT_BUCKETS 1024

struct listener {
	struct listener *next;
	struct evconnlistener *l;
};

struct smtpd {
	struct event_base *base;
	struct config *cfg;
	struct spool *spool;
	struct committer *committer;
	SSL_CTX *tls;
	struct smtpd_hooks hooks;
	struct listener *listeners;
	struct client_count *clients[CLIENT_BUCKETS];
	unsigned nsessions;
	struct smtp_session *sessions;
	bool shutting_down;
	/* Sessions with replies to send once the current callbacks are done. */
	struct smtp_session *flush_head;
	struct event *flush_ev;
};

struct smtp_session {
	struct smtp_session *next, *prev;
	struct smtpd *srv;
	struct config *cfg;
	SSL_CTX *tls_ctx;
	struct bufferevent *bev;
	char addr[INET6_ADDRSTRLEN];
	char name[64];
	enum session_state state;
	char *helo;
	bool esmtp;
	bool trusted; /* the client is in mynetworks */
	bool tls;
	char tls_info[160];
	int errors;
	int pending; /* callbacks outstanding (commit, verify) */
	bool waiting; /* no input is processed until a callback */
	bool dead; /* the client is gone; free when nothing is pending */
	bool skip_line;
	bool starttls; /* switch to TLS once the 220 reply is out */
	bool flush_queued;
	struct smtp_session *flush_next;
	evutil_socket_t fd;
	/* The transaction. */
	char *sender;
	bool body_8bit;
	struct strlist rcpts;
	struct spool_writer *w;
	uint64_t data_size;
	bool too_big, too_long, in_headers, long_line;
	int hops;
	/* Counters for the disconnect line. */
	unsigned c_helo, c_ehlo, c_mail, c_rcpt, c_data, c_rset, c_quit,
	    c_starttls, c_other;
	/* A recipient being verified. */
	char *verify_rcpt;
	int verify_code;
	char *verify_reply;
};

static void session_process(struct smtp_session *);
static void session_close(struct smtp_session *);
static void session_read_cb(struct bufferevent *, void *);
static void session_write_cb(struct bufferevent *, void *);
static void session_event_cb(struct bufferevent *, short, void *);
static void session_written(struct smtp_session *);

/* Clients and their connection counts. */

static unsigned
client_hash(const char *addr)
{
	unsigned h = 5381;

	while (*addr != '\0')
		h = h * 33 + (unsigned char)*addr++;
	return h % CLIENT_BUCKETS;
}

static unsigned
client_inc(struct smtpd *srv, const char *addr)
{
	struct client_count **pp = &srv->clients[client_hash(addr)], *c;

	for (c = *pp; c != NULL; c = c->next)
		if (strcmp(c->addr, addr) == 0)
			return ++c->n;
	c = xcalloc(1, sizeof(*c));
	strlcpy_ms(c->addr, addr, sizeof(c->addr));
	c->n = 1;
	c->next = *pp;
	*pp = c;
	return 1;
}

static void
client_dec(struct smtpd *srv, const char *addr)
{
	struct client_count **pp = &srv->clients[client_hash(addr)], *c;

	for (; (c = *pp) != NULL; pp = &c->next)
		if (strcmp(c->addr, addr) == 0) {
			if (--c->n == 0) {
				*pp = c->next;
				free(c);
			}
			return;
		}
}

/* Replies. */

/*
 * Replies to a clear-text client are written by the session itself, once
 * the callbacks of this turn of the event loop are done (the replies to a
 * pipelined group so leave in one write, as Postfix flushes when no
 * command waits): the bufferevent's write event is enabled only for what
 * the socket did not take at once. Left to the bufferevent, every reply
 * cost two epoll_ctl calls (EPOLLOUT on, then off) and a turn of the loop.
 */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd *srv = arg;
	struct smtp_session *s;

	while ((s = srv->flush_head) != NULL) {
		struct evbuffer *out;

		srv->flush_head = s->flush_next;
		s->flush_queued = false;
		if (s->dead || s->tls || s->fd == -1)
			continue;
		out = bufferevent_get_output(s->bev);
		/* The bufferevent freezes the start of its output but while
		 * it writes. */
		(void)evbuffer_unfreeze(out, 1);
		while (evbuffer_get_length(out) > 0 &&
		    evbuffer_write(out, s->fd) > 0)
			;
		(void)evbuffer_freeze(out, 1);
		/* The rest, or the error, is the bufferevent's to meet. */
		if (evbuffer_get_length(out) > 0)
			bufferevent_enable(s->bev, EV_WRITE);
		else
			session_written(s);
	}
}

static void
flush_later(struct smtp_session *s)
{
	struct smtpd *srv = s->srv;

	if (s->tls || s->fd == -1 || s->flush_queued)
		return;
	s->flush_queued = true;
	s->flush_next = srv->flush_head;
	srv->flush_head = s;
	event_active(srv->flush_ev, 0, 0);
}

static void
flush_forget(struct smtp_session *s)
{
	struct smtp_session **pp = &s->srv->flush_head;

	for (; s->flush_queued && *pp != NULL; pp = &(*pp)->flush_next)
		if (*pp == s) {
			*pp = s->flush_next;
			s->flush_queued = false;
			return;
		}
}

static void __attribute__((format(printf, 2, 3)))
reply(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	flush_later(s);
}

/* A reply that ends the session: the connection closes once it is sent. */
static void
reply_close(struct smtp_session *s, const char *text)
{
	reply(s, "%s", text);
	s->state = S_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		session_close(s);
}

static const char *
client_id(struct smtp_session *s, char *buf, size_t size)
{
	snprintf(buf, size, "%s[%s]", s->name, s->addr);
	return buf;
}

static void
log_reject(
    struct smtp_session *s, const char *cmd, const char *text, const char *rcpt)
{
	char id[128];

	msg_info("NOQUEUE: reject: %s from %s: %s; from=<%s> to=<%s> "
		 "proto=%s helo=<%s>",
	    cmd, client_id(s, id, sizeof(id)), text,
	    s->sender != NULL ? s->sender : "", rcpt != NULL ? rcpt : "",
	    s->esmtp ? "ESMTP" : "SMTP", s->helo != NULL ? s->helo : "");
}

static void
error_reply(struct smtp_session *s, const char *text)
{
	reply(s, "%s", text);
	if (++s->errors >= SMTPD_HARD_ERROR_LIMIT) {
		char buf[300];
		snprintf(buf, sizeof(buf),
		    "421 4.7.0 %s Error: too many errors",
		    cfg_myhostname(s->cfg));
		reply_close(s, buf);
	}
}

/* The transaction. */

static void
txn_reset(struct smtp_session *s)
{
	free(s->sender);
	s->sender = NULL;
	s->body_8bit = false;
	strlist_free(&s->rcpts);
	spool_writer_free(&s->w);
	s->data_size = 0;
	s->too_big = s->too_long = s->long_line = false;
	s->in_headers = false;
	s->hops = 0;
}

/* Commands. */

#define NEED_HELO 0x01
#define NEED_MAIL 0x02
#define NEED_RCPT 0x04

struct smtp_cmd {
	const char *name;
	int needs;
	void (*run)(struct smtp_session *, char *args);
	unsigned *(*counter)(struct smtp_session *);
};

static void
cmd_helo_common(struct smtp_session *s, char *args, bool esmtp)
{
	const char *host = cfg_myhostname(s->cfg);

	args = str_trim(args);
	if (*args == '\0') {
		error_reply(s,
		    esmtp ? "501 Syntax: EHLO hostname"
			  : "501 Syntax: HELO hostname");
		return;
	}
	txn_reset(s);
	free(s->helo);
	s->helo = xstrndup(args, 255);
	s->esmtp = esmtp;
	if (!esmtp) {
		reply(s, "250 %s", host);
		return;
	}
	reply(s, "250-%s", host);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %lld",
	    cfg_int(s->cfg, P_BEFORE_FILTER_MESSAGE_SIZE_LIMIT));
	reply(s, "250-VRFY");
	if (s->tls_ctx != NULL && !s->tls)
		reply(s, "250-STARTTLS");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250 8BITMIME");
}

static void
cmd_helo(struct smtp_session *s, char *args)
{
	cmd_helo_common(s, args, false);
}

static void
cmd_ehlo(struct smtp_session *s, char *args)
{
	cmd_helo_common(s, args, true);
}

/* Matches "FROM:" or "TO:" case-insensitively; returns what follows. */
static char *
match_keyword(char *args, const char *kw)
{
	size_t n = strlen(kw);

	if (strncasecmp(args, kw, n) != 0)
		return NULL;
	args += n;
	while (*args == ' ')
		args++;
	return args;
}

static void
cmd_mail(struct smtp_session *s, char *args)
{
	struct mailaddr a;
	const char *end, *why;
	char *p, *param;
	long long limit = cfg_int(s->cfg, P_BEFORE_FILTER_MESSAGE_SIZE_LIMIT);
	bool body8 = false;

	if (s->sender != NULL) {
		error_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if ((p = match_keyword(args, "FROM:")) == NULL) {
		error_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (addr_parse_path(p, &end, &a, &why) == -1) {
		error_reply(s, "501 5.1.7 Bad sender address syntax");
		return;
	}
	/* ESMTP parameters (RFC 1870 SIZE, RFC 6152 BODY). */
	p = args + (end - args);
	while ((param = strsep(&p, " ")) != NULL) {
		long long size;
		if (*param == '\0')
			continue;
		if (!s->esmtp) {
			addr_free(&a);
			error_reply(s,
			    "555 5.5.4 Unsupported option: "
			    "parameters need EHLO");
			return;
		}
		if (str_has_prefix_ci(param, "SIZE=")) {
			if (parse_ll(param + 5, 0, 1LL << 62, &size) == -1) {
				addr_free(&a);
				error_reply(s, "501 5.5.4 Bad SIZE syntax");
				return;
			}
			if (size > limit) {
				addr_free(&a);
				log_reject(s, "MAIL",
				    "552 5.3.4 Message size exceeds fixed "
				    "limit",
				    NULL);
				error_reply(s,
				    "552 5.3.4 Message size exceeds "
				    "fixed limit");
				return;
			}
		} else if (strcasecmp(param, "BODY=8BITMIME") == 0)
			body8 = true;
		else if (strcasecmp(param, "BODY=7BIT") == 0)
			body8 = false;
		else {
			char buf[300];
			snprintf(buf, sizeof(buf),
			    "555 5.5.4 Unsupported option: %.200s", param);
			addr_free(&a);
			error_reply(s, buf);
			return;
		}
	}
	s->sender = xstrdup(a.addr);
	s->body_8bit = body8;
	addr_free(&a);
	reply(s, "250 2.1.0 Ok");
}

static void
rcpt_accept(struct smtp_session *s, const char *rcpt)
{
	if (!strlist_contains_ci(&s->rcpts, rcpt))
		strlist_add(&s->rcpts, rcpt);
	reply(s, "250 2.1.5 Ok");
}

static void
verify_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	s->pending--;
	if (s->dead) {
		free(s->verify_rcpt);
		free(s->verify_reply);
		s->verify_rcpt = s->verify_reply = NULL;
		if (s->pending == 0)
			session_close(s);
		return;
	}
	s->waiting = false;
	if (s->verify_code == 0)
		rcpt_accept(s, s->verify_rcpt);
	else {
		log_reject(s, "RCPT", s->verify_reply, s->verify_rcpt);
		error_reply(s, s->verify_reply);
	}
	free(s->verify_rcpt);
	free(s->verify_reply);
	s->verify_rcpt = s->verify_reply = NULL;
	if (s->state != S_CLOSING) {
		bufferevent_enable(s->bev, EV_READ);
		session_process(s);
	}
}

static void
verify_done(int code, const char *text, void *arg)
{
	struct smtp_session *s = arg;

	s->verify_code = code;
	s->verify_reply = code != 0 ? xstrdup(text) : NULL;
	/* Resume from the loop, whether the answer came now or later. */
	event_base_once(
	    s->srv->base, -1, EV_TIMEOUT, verify_resume_cb, s, NULL);
}

static void
cmd_rcpt(struct smtp_session *s, char *args)
{
	struct mailaddr a;
	const char *end, *why;
	char *p, buf[700];
	enum relay_verdict v;
	int code = (int)cfg_int(s->cfg, P_RELAY_REJECT_CODE);

	if ((p = match_keyword(args, "TO:")) == NULL) {
		error_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (addr_parse_path(p, &end, &a, &why) == -1 || a.addr[0] == '\0') {
		if (a.addr != NULL)
			addr_free(&a);
		error_reply(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	while (*end == ' ')
		end++;
	if (*end != '\0') {
		snprintf(buf, sizeof(buf),
		    "555 5.5.4 Unsupported option: %.200s", end);
		addr_free(&a);
		error_reply(s, buf);
		return;
	}
	if (s->rcpts.n >= (size_t)cfg_int(s->cfg, P_SMTPD_RECIPIENT_LIMIT)) {
		addr_free(&a);
		reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	v = relay_check(s->cfg, s->trusted, &a);
	if (v == RELAY_DENY) {
		snprintf(buf, sizeof(buf),
		    "%d %s <%.512s>: Relay access denied", code,
		    code >= 500 ? "5.7.1" : "4.7.1", a.addr);
		log_reject(s, "RCPT", buf, a.addr);
		error_reply(s, buf);
		addr_free(&a);
		return;
	}
	if (v == RELAY_DOMAIN && s->srv->hooks.verify != NULL &&
	    cfg_bool(s->cfg, P_REJECT_UNVERIFIED_RECIPIENT)) {
		s->verify_rcpt = xstrdup(a.addr);
		s->waiting = true;
		s->pending++;
		bufferevent_disable(s->bev, EV_READ);
		s->srv->hooks.verify(s->srv->hooks.ctx, a.addr, verify_done, s);
		addr_free(&a);
		return;
	}
	rcpt_accept(s, a.addr);
	addr_free(&a);
}

static void
write_received(struct smtp_session *s)
{
	char date[64], *hdr;
	const char *proto;
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
	proto = !s->esmtp ? "SMTP" : s->tls ? "ESMTPS" : "ESMTP";
	hdr = xasprintf("Received: from %s (%s [%s])\r\n"
			"%s%s%s"
			"\tby %s (mailseal) with %s id %s%s%s%s;\r\n"
			"\t%s\r\n",
	    s->helo, s->name, s->addr, s->tls ? "\t(using " : "",
	    s->tls ? s->tls_info : "", s->tls ? ")\r\n" : "",
	    cfg_myhostname(s->cfg), proto, s->w->qid,
	    s->rcpts.n == 1 ? "\r\n\tfor <" : "",
	    s->rcpts.n == 1 ? s->rcpts.v[0] : "", s->rcpts.n == 1 ? ">" : "",
	    date);
	spool_writer_write(s->w, hdr, strlen(hdr));
	s->data_size += strlen(hdr);
	free(hdr);
}

static void
cmd_data(struct smtp_session *s, char *args)
{
	char id[128];

	if (*str_trim(args) != '\0') {
		error_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (spool_writer_create(s->srv->spool, &s->w) == -1) {
		msg_warn("cannot create queue file: %m");
		reply(s,
		    errno == ENOSPC || errno == EDQUOT
			? "452 4.3.1 Insufficient system storage"
			: "451 4.3.0 Error: queue file write error");
		return;
	}
	msg_info("%s: client=%s", s->w->qid, client_id(s, id, sizeof(id)));
	write_received(s);
	s->hops = 1; /* ours counts too, as in Postfix */
	s->in_headers = true;
	s->state = S_DATA;
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_rset(struct smtp_session *s, char *args)
{
	txn_reset(s);
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, char *args)
{
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_vrfy(struct smtp_session *s, char *args)
{
	/* RFC 5321 3.5.3: 252 discloses nothing about the mailbox. */
	if (*str_trim(args) == '\0') {
		error_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	reply(s,
	    "252 2.0.0 Cannot VRFY user, but will accept message and "
	    "attempt delivery");
}

static void
cmd_help(struct smtp_session *s, char *args)
{
	reply(s,
	    "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP "
	    "VRFY HELP QUIT%s",
	    s->tls_ctx != NULL && !s->tls ? " STARTTLS" : "");
}

static void
cmd_quit(struct smtp_session *s, char *args)
{
	reply_close(s, "221 2.0.0 Bye");
}

static void
cmd_starttls(struct smtp_session *s, char *args)
{
	if (s->tls_ctx == NULL) {
		error_reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (s->tls) {
		error_reply(s, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (*str_trim(args) != '\0') {
		error_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	/*
	 * RFC 3207 and CVE-2011-0411: whatever the client sent after
	 * STARTTLS in clear text is discarded, never read as commands
	 * inside TLS. The handshake starts once the reply is sent: see
	 * starttls_begin().
	 */
	evbuffer_drain(bufferevent_get_input(s->bev),
	    evbuffer_get_length(bufferevent_get_input(s->bev)));
	bufferevent_disable(s->bev, EV_READ);
	/*
	 * What the socket holds now was sent before our 220: discard it too.
	 * Not later: once the 220 is out, the client's TLS handshake may
	 * arrive at any moment, and draining then would eat its ClientHello
	 * (a hang). Clear text that slips in between goes to OpenSSL as
	 * handshake bytes and fails the handshake; it is never a command.
	 */
	{
		char junk[4096];
		while (recv(s->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	s->starttls = true;
	s->waiting = true;
}

/* The 220 reply to STARTTLS is sent: the socket now speaks TLS. */
static void
starttls_begin(struct smtp_session *s)
{
	struct timeval tv = { cfg_int(s->cfg, P_SMTPD_TIMEOUT), 0 };
	evutil_socket_t fd = bufferevent_getfd(s->bev);
	SSL *ssl;

	s->starttls = false;
	s->waiting = false;
	/* Plain text was discarded when STARTTLS came: see cmd_starttls(). */
	bufferevent_free(s->bev);
	s->bev = NULL;
	if ((ssl = SSL_new(s->tls_ctx)) == NULL ||
	    (s->bev = bufferevent_openssl_socket_new(s->srv->base, fd, ssl,
		 BUFFEREVENT_SSL_ACCEPTING,
		 BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)) == NULL) {
		SSL_free(ssl);
		msg_warn("cannot start TLS with %s", s->addr);
		s->state = S_CLOSING;
		session_close(s);
		return;
	}
	s->fd = -1; /* the TLS bufferevent closes it */
	s->tls = true;
	/* RFC 3207 4.2: the client starts over with EHLO. */
	txn_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	bufferevent_setcb(
	    s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTPD_READ_HIGHWATER);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static unsigned *
cnt_helo(struct smtp_session *s)
{
	return &s->c_helo;
}

static unsigned *
cnt_ehlo(struct smtp_session *s)
{
	return &s->c_ehlo;
}

static unsigned *
cnt_mail(struct smtp_session *s)
{
	return &s->c_mail;
}

static unsigned *
cnt_rcpt(struct smtp_session *s)
{
	return &s->c_rcpt;
}

static unsigned *
cnt_data(struct smtp_session *s)
{
	return &s->c_data;
}

static unsigned *
cnt_rset(struct smtp_session *s)
{
	return &s->c_rset;
}

static unsigned *
cnt_quit(struct smtp_session *s)
{
	return &s->c_quit;
}

static unsigned *
cnt_starttls(struct smtp_session *s)
{
	return &s->c_starttls;
}

static const struct smtp_cmd smtp_cmds[] = {
	{ "HELO", 0, cmd_helo, cnt_helo },
	{ "EHLO", 0, cmd_ehlo, cnt_ehlo },
	{ "MAIL", NEED_HELO, cmd_mail, cnt_mail },
	{ "RCPT", NEED_HELO | NEED_MAIL, cmd_rcpt, cnt_rcpt },
	{ "DATA", NEED_HELO | NEED_MAIL | NEED_RCPT, cmd_data, cnt_data },
	{ "RSET", 0, cmd_rset, cnt_rset },
	{ "NOOP", 0, cmd_noop, NULL },
	{ "VRFY", 0, cmd_vrfy, NULL },
	{ "HELP", 0, cmd_help, NULL },
	{ "QUIT", 0, cmd_quit, cnt_quit },
	{ "STARTTLS", 0, cmd_starttls, cnt_starttls },
};

static void
smtp_command(struct smtp_session *s, char *line)
{
	const struct smtp_cmd *c = NULL;
	char *args;
	size_t n;

	n = strcspn(line, " ");
	args = line[n] != '\0' ? line + n + 1 : line + n;
	line[n] = '\0';
	for (size_t i = 0; i < nitems(smtp_cmds); i++)
		if (strcasecmp(line, smtp_cmds[i].name) == 0)
			c = &smtp_cmds[i];
	if (c == NULL) {
		s->c_other++;
		error_reply(s,
		    *line == '\0' ? "500 5.5.2 Error: bad syntax"
				  : "502 5.5.2 Error: command not "
				    "recognized");
		return;
	}
	if (c->counter != NULL)
		(*c->counter(s))++;
	else
		s->c_other++;
	if ((c->needs & NEED_HELO) && s->helo == NULL) {
		error_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if ((c->needs & NEED_MAIL) && s->sender == NULL) {
		error_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if ((c->needs & NEED_RCPT) && s->rcpts.n == 0) {
		error_reply(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	c->run(s, args);
}

/* Message data. */

static void
commit_done_cb(int error, struct spool_writer *w, void *arg)
{
	struct smtp_session *s = arg;
	struct smtpd *srv = s->srv;
	char qid[QID_LEN + 1];

	s->pending--;
	memcpy(qid, w->qid, sizeof(qid));
	/* The writer is freed by the committer after this returns. */
	s->w = NULL;
	if (error != 0) {
		msg_warn(
		    "%s: cannot commit queue file: %s", qid, strerror(error));
		if (!s->dead)
			reply(s,
			    error == ENOSPC || error == EDQUOT
				? "452 4.3.1 Insufficient system storage"
				: "451 4.3.0 Error: queue file write error");
	} else {
		msg_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)",
		    qid, s->sender, (unsigned long long)s->data_size,
		    s->rcpts.n);
		if (!s->dead)
			reply(s, "250 2.0.0 Ok: queued as %s", qid);
	}
	txn_reset(s);
	if (error == 0 && srv->hooks.queued != NULL)
		srv->hooks.queued(srv->hooks.ctx, qid);
	if (s->dead) {
		if (s->pending == 0)
			session_close(s);
		return;
	}
	s->waiting = false;
	s->state = S_CMD;
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);
}

static void
data_end(struct smtp_session *s)
{
	struct spool_env env;
	int limit = (int)cfg_int(s->cfg, P_SMTPD_HOPCOUNT_LIMIT);
	const char *fail = NULL;

	s->state = S_CMD;
	if (s->too_big)
		fail = "552 5.3.4 Message size exceeds fixed limit";
	else if (s->too_long)
		fail = "552 5.6.0 Error: message has a line longer than "
		       "smtpd_line_length_limit";
	else if (s->hops > limit)
		fail = "554 5.4.0 Error: too many hops";
	else if (s->w->error != 0)
		fail = s->w->error == ENOSPC || s->w->error == EDQUOT
		    ? "452 4.3.1 Insufficient system storage"
		    : "451 4.3.0 Error: queue file write error";
	if (fail == NULL) {
		memset(&env, 0, sizeof(env));
		env.stage = SPOOL_RECEIVED;
		env.flags = s->body_8bit ? SPOOL_F_8BIT : 0;
		env.arrival_us = clock_wall_us();
		env.sender = s->sender;
		env.client_name = s->name;
		env.client_addr = s->addr;
		env.helo = s->helo;
		env.proto = !s->esmtp ? "SMTP" : s->tls ? "ESMTPS" : "ESMTP";
		for (size_t i = 0; i < s->rcpts.n; i++)
			spool_env_add_rcpt(&env, s->rcpts.v[i], NULL, 0);
		/* The committer cuts a spare file, off the loop. */
		int rc = spool_writer_finish_uncut(s->w, &env);
		for (size_t i = 0; i < env.nrcpt; i++)
			free(env.rcpt[i].addr);
		free(env.rcpt);
		if (rc == -1) {
			msg_warn("%s: cannot write queue file: %m", s->w->qid);
			fail = errno == ENOSPC || errno == EDQUOT
			    ? "452 4.3.1 Insufficient system storage"
			    : "451 4.3.0 Error: queue file write error";
		}
	}
	if (fail != NULL) {
		if (fail[0] == '5')
			log_reject(s, "END-OF-MESSAGE", fail, NULL);
		reply(s, "%s", fail);
		txn_reset(s);
		return;
	}
	/* 250 only once the message is durable: see commit_done_cb(). */
	s->waiting = true;
	s->pending++;
	bufferevent_disable(s->bev, EV_READ);
	committer_submit(s->srv->committer, s->w, commit_done_cb, s);
}

/* A line of data (CRLF included, already checked). */
static void
data_line(struct smtp_session *s, const unsigned char *p, size_t len)
{
	long long limit = cfg_int(s->cfg, P_BEFORE_FILTER_MESSAGE_SIZE_LIMIT);

	/* RFC 5321 4.5.2: a leading dot is doubled by the client. */
	if (p[0] == '.') {
		p++;
		len--;
	}
	if (s->in_headers) {
		if (len == 2)
			s->in_headers = false;
		else if (len >= 9 &&
		    strncasecmp((const char *)p, "Received:", 9) == 0)
			s->hops++;
	}
	s->data_size += len;
	if (s->data_size > (uint64_t)limit)
		s->too_big = true;
	if (!s->too_big && !s->too_long)
		spool_writer_write(s->w, p, len);
}

static void
bare_newline(struct smtp_session *s, const char *what)
{
	char buf[300], id[128];

	/* CVE-2023-51764: never guess where a message ends. */
	msg_info("disconnect: bare %s received from %s", what,
	    client_id(s, id, sizeof(id)));
	snprintf(buf, sizeof(buf), "521 5.5.2 %s Error: bare %s received",
	    cfg_myhostname(s->cfg), what);
	txn_reset(s);
	reply_close(s, buf);
}

/*
 * Processes the complete lines in the input buffer. Returns false when
 * more input is needed or the session stopped.
 */
static bool
process_lines(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t avail = evbuffer_get_length(in), off = 0;
	size_t limit = (size_t)cfg_int(s->cfg, P_SMTPD_LINE_LENGTH_LIMIT);
	unsigned char *p;
	bool more = true;

	if (avail == 0)
		return false;
	p = evbuffer_pullup(in, (ev_ssize_t)avail);
	while (off < avail && !s->waiting && s->state != S_CLOSING) {
		unsigned char *line = p + off, *lf;
		size_t len;

		lf = memchr(line, '\n', avail - off);
		if (lf == NULL) {
			/* An incomplete line: wait, unless it is too long. */
			if (avail - off > limit + 2) {
				if (s->state == S_DATA) {
					s->too_long = true;
					s->long_line = true;
				} else if (!s->skip_line) {
					error_reply(s,
					    "500 5.5.2 Error: line "
					    "too long");
					s->skip_line = true;
				}
				/* Keep one byte: it may be the CR of CRLF. */
				off = avail - 1;
			}
			more = false;
			break;
		}
		len = (size_t)(lf - line) + 1;
		off += len;
		if (len < 2 || line[len - 2] != '\r') {
			bare_newline(s, "<LF>");
			return false;
		}
		if (memchr(line, '\r', len - 2) != NULL) {
			bare_newline(s, "<CR>");
			return false;
		}
		if (s->state == S_DATA) {
			if (s->long_line) {
				/* The end of a line that was too long. */
				s->long_line = false;
				continue;
			}
			if (len > limit + 2)
				s->too_long = true;
			if (len == 3 && line[0] == '.') {
				data_end(s);
				continue;
			}
			data_line(s, line, len);
			continue;
		}
		if (s->skip_line) {
			s->skip_line = false;
			continue;
		}
		if (len > limit + 2) {
			error_reply(s, "500 5.5.2 Error: line too long");
			continue;
		}
		char *cmd = xstrndup((const char *)line, len - 2);
		smtp_command(s, cmd);
		free(cmd);
		/* STARTTLS drained the input: nothing more to read here. */
		if (s->starttls)
			return false;
	}
	if (s->state == S_CLOSING)
		return false;
	evbuffer_drain(in, off);
	return more && !s->waiting && evbuffer_get_length(in) > 0;
}

static void
session_process(struct smtp_session *s)
{
	while (s->state != S_CLOSING && !s->waiting && process_lines(s))
		;
}

/* Events. */

/*
 * libevent 2.1's evbuffer_read() takes at most 4 KB from a socket per call
 * (EVBUFFER_MAX_READ), whatever bufferevent_set_max_single_read() says: a
 * 100 KB message would cost 25 turns of the event loop, each with its
 * epoll_wait, FIONREAD and readv. During DATA, what else the socket holds
 * is read here at once (up to SMTPD_READ_AHEAD). An end of file or an
 * error is left for the bufferevent to find: the socket stays readable.
 * TLS records are read by OpenSSL, not here.
 */
static void
read_ahead(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	ssize_t r = -1;
	int n;

	if (s->tls || s->state != S_DATA ||
	    evbuffer_get_length(in) > SMTPD_READ_HIGHWATER - SMTPD_READ_AHEAD)
		return;
	/* The bufferevent freezes the end of its input but while it reads. */
	(void)evbuffer_unfreeze(in, 0);
	if ((n = evbuffer_reserve_space(in, SMTPD_READ_AHEAD, v, 2)) > 0) {
		for (int i = 0; i < n; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		r = readv(s->fd, iov, n);
	}
	if (r > 0) {
		int used = 0;

		for (; used < n && r > 0; used++) {
			if ((size_t)r < v[used].iov_len)
				v[used].iov_len = (size_t)r;
			r -= (ssize_t)v[used].iov_len;
		}
		(void)evbuffer_commit_space(in, v, used);
	}
	(void)evbuffer_freeze(in, 0);
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == S_CLOSING || s->waiting)
		return;
	read_ahead(s);
	session_process(s);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (evbuffer_get_length(bufferevent_get_output(s->bev)) != 0)
		return;
	/* In clear text, the next replies are written by flush_cb(). */
	if (!s->tls)
		bufferevent_disable(s->bev, EV_WRITE);
	session_written(s);
}

/* Every reply so far is out. */
static void
session_written(struct smtp_session *s)
{
	if (s->state == S_CLOSING)
		session_close(s);
	else if (s->starttls)
		starttls_begin(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char buf[300], id[128];

	if (what & BEV_EVENT_TIMEOUT) {
		msg_info("timeout after %s from %s",
		    s->state == S_DATA ? "DATA" : "command",
		    client_id(s, id, sizeof(id)));
		snprintf(buf, sizeof(buf),
		    "421 4.4.2 %s Error: timeout exceeded",
		    cfg_myhostname(s->cfg));
		if (s->pending > 0) {
			s->dead = true;
			bufferevent_disable(s->bev, EV_READ | EV_WRITE);
			return;
		}
		txn_reset(s);
		reply_close(s, buf);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e;
		while (
		    s->tls && (e = bufferevent_get_openssl_error(bev)) != 0) {
			char ebuf[256];
			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			msg_info("TLS error from %s: %s",
			    client_id(s, id, sizeof(id)), ebuf);
		}
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (s->state == S_DATA || s->w != NULL)
			msg_info("lost connection after DATA from %s",
			    client_id(s, id, sizeof(id)));
		if (s->pending > 0) {
			s->dead = true;
			bufferevent_disable(s->bev, EV_READ | EV_WRITE);
			return;
		}
		s->state = S_CLOSING;
		session_close(s);
	}
	if ((what & BEV_EVENT_CONNECTED) && s->tls) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		tls_describe(ssl, s->tls_info, sizeof(s->tls_info));
		msg_info("TLS connection established from %s: %s",
		    client_id(s, id, sizeof(id)), s->tls_info);
	}
}

static void
session_close(struct smtp_session *s)
{
	struct smtpd *srv = s->srv;
	char id[128];

	if (s->pending > 0) {
		s->dead = true;
		return;
	}
	msg_info("disconnect from %s ehlo=%u helo=%u starttls=%u mail=%u "
		 "rcpt=%u data=%u rset=%u quit=%u other=%u",
	    client_id(s, id, sizeof(id)), s->c_ehlo, s->c_helo, s->c_starttls,
	    s->c_mail, s->c_rcpt, s->c_data, s->c_rset, s->c_quit, s->c_other);
	txn_reset(s);
	flush_forget(s);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->fd != -1)
		close(s->fd);
	client_dec(srv, s->addr);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->nsessions--;
	config_unref(&s->cfg);
	if (s->tls_ctx != NULL)
		SSL_CTX_free(s->tls_ctx);
	free(s->helo);
	free(s);
}

int
smtpd_accept_fd(struct smtpd *srv, int fd, const char *addr)
{
	struct smtp_session *s;
	struct timeval tv;
	long long max = cfg_int(srv->cfg, P_SMTPD_CLIENT_CONNECTION_LIMIT);
	unsigned n;

	n = client_inc(srv, addr);
	if (srv->shutting_down || (max > 0 && n > (unsigned)max)) {
		char buf[300];
		int len = snprintf(buf, sizeof(buf),
		    "421 4.7.0 %s Error: too many connections from %s\r\n",
		    cfg_myhostname(srv->cfg), addr);
		if (!srv->shutting_down)
			msg_warn("too many connections from unknown[%s]: %u",
			    addr, n);
		(void)!write(fd, buf, (size_t)len);
		close(fd);
		client_dec(srv, addr);
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->cfg = config_ref(srv->cfg);
	if (srv->tls != NULL) {
		SSL_CTX_up_ref(srv->tls);
		s->tls_ctx = srv->tls;
	}
	strlcpy_ms(s->addr, addr, sizeof(s->addr));
	strlcpy_ms(s->name, "unknown", sizeof(s->name));
	s->trusted = cidr_list_contains(cfg_cidrs(s->cfg, P_MYNETWORKS), addr);
	/* The session owns the socket: STARTTLS changes its bufferevent. */
	s->fd = fd;
	s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_DEFER_CALLBACKS);
	if (s->bev == NULL) {
		close(fd);
		client_dec(srv, addr);
		config_unref(&s->cfg);
		if (s->tls_ctx != NULL)
			SSL_CTX_free(s->tls_ctx);
		free(s);
		return -1;
	}
	s->next = srv->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	bufferevent_setcb(
	    s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTPD_READ_HIGHWATER);
	tv.tv_sec = cfg_int(s->cfg, P_SMTPD_TIMEOUT);
	tv.tv_usec = 0;
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	/* Writes: see flush_cb() (a bufferevent starts with EV_WRITE on). */
	bufferevent_disable(s->bev, EV_WRITE);
	bufferevent_enable(s->bev, EV_READ);
	msg_info("connect from %s[%s]", s->name, s->addr);
	reply(s, "220 %s ESMTP mailseal", cfg_myhostname(s->cfg));
	return 0;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	char addr[INET6_ADDRSTRLEN] = "unknown";

	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, addr,
		    sizeof(addr));
	else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr,
		    addr, sizeof(addr));
		if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr, '.'))
			memmove(addr, addr + 7, strlen(addr + 7) + 1);
	}
	fd_set_nonblock(fd);
	(void)smtpd_accept_fd(arg, fd, addr);
}

static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	evconnlistener_enable(arg);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: pause a moment rather than spin. */
	msg_warn("accept: %s", evutil_socket_error_to_string(e));
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		struct timeval tv = { 1, 0 };
		evconnlistener_disable(l);
		event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT,
		    accept_resume_cb, l, &tv);
	}
}

struct smtpd *
smtpd_new(struct event_base *base, struct config *cfg, struct spool *sp,
    struct committer *c, SSL_CTX *tls)
{
	struct smtpd *srv = xcalloc(1, sizeof(*srv));

	srv->base = base;
	srv->cfg = config_ref(cfg);
	srv->spool = sp;
	srv->committer = c;
	if ((srv->flush_ev = event_new(base, -1, 0, flush_cb, srv)) == NULL)
		msg_fatal("out of memory");
	if (tls != NULL) {
		SSL_CTX_up_ref(tls);
		srv->tls = tls;
	}
	return srv;
}

void
smtpd_set_hooks(struct smtpd *srv, const struct smtpd_hooks *h)
{
	srv->hooks = *h;
}

int
smtpd_listen_fd(struct smtpd *srv, int fd)
{
	struct listener *l = xcalloc(1, sizeof(*l));

	fd_set_nonblock(fd);
	l->l = evconnlistener_new(srv->base, accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l->l == NULL) {
		free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->l, accept_error_cb);
	l->next = srv->listeners;
	srv->listeners = l;
	return 0;
}

void
smtpd_set_config(struct smtpd *srv, struct config *cfg, SSL_CTX *tls)
{
	config_unref(&srv->cfg);
	srv->cfg = config_ref(cfg);
	if (srv->tls != NULL)
		SSL_CTX_free(srv->tls);
	srv->tls = NULL;
	if (tls != NULL) {
		SSL_CTX_up_ref(tls);
		srv->tls = tls;
	}
}

unsigned
smtpd_session_count(const struct smtpd *srv)
{
	return srv->nsessions;
}

void
smtpd_shutdown(struct smtpd *srv)
{
	struct smtp_session *s, *next;
	char buf[300];

	srv->shutting_down = true;
	for (struct listener *l = srv->listeners; l != NULL; l = l->next)
		evconnlistener_disable(l->l);
	snprintf(buf, sizeof(buf), "421 4.3.2 %s Service shutting down",
	    cfg_myhostname(srv->cfg));
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->state == S_CMD && !s->waiting && s->pending == 0)
			reply_close(s, buf);
	}
}

void
smtpd_free(struct smtpd **srvp)
{
	struct smtpd *srv = *srvp;
	struct listener *l;

	if (srv == NULL)
		return;
	while ((l = srv->listeners) != NULL) {
		srv->listeners = l->next;
		evconnlistener_free(l->l);
		free(l);
	}
	while (srv->sessions != NULL) {
		srv->sessions->pending = 0;
		session_close(srv->sessions);
	}
	for (int i = 0; i < CLIENT_BUCKETS; i++)
		while (srv->clients[i] != NULL) {
			struct client_count *c = srv->clients[i];
			srv->clients[i] = c->next;
			free(c);
		}
	event_free(srv->flush_ev);
	config_unref(&srv->cfg);
	if (srv->tls != NULL)
		SSL_CTX_free(srv->tls);
	free(srv);
	*srvp = NULL;
}
