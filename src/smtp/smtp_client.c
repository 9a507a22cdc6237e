#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/spool.h"
#include "smtp/mime8.h"
#include "smtp/sasl_client.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_reply.h"
#include "smtp/tls.h"

/* Message content is read in pieces of this size... */
#define SMTPC_CHUNK 65536
/* ...while less than this waits in the output buffer. */
#define SMTPC_OUT_HIGH (256 * 1024)

enum smtpc_cmd {
	C_GREETING,
	C_EHLO,
	C_HELO,
	C_STARTTLS,
	C_AUTH,
	C_MAIL,
	C_RCPT,
	C_DATA,
	C_DOT,
	C_RSET,
	C_QUIT,
};

enum smtpc_phase {
	PH_CONNECT, /* TCP connect in progress */
	PH_HANDSHAKE, /* greeting, EHLO, STARTTLS, AUTH */
	PH_TLS, /* TLS handshake */
	PH_READY, /* idle, ready for a transaction */
	PH_TXN, /* commands of a transaction */
	PH_BODY, /* sending message content */
	PH_QUIT,
	PH_DEAD,
};

struct expect {
	enum smtpc_cmd cmd;
	size_t idx;
};

struct smtpc_ctx {
	struct event_base *base;
	struct config *cfg;
	SSL_CTX *tls;
	struct smtpc *list;
};

struct smtpc {
	struct smtpc_ctx *ctx;
	struct smtpc *next, *prev;
	struct config *cfg;
	enum smtpc_tls_level tls_level;
	char *nexthop;
	char *sasl_user, *sasl_pass;
	struct dns_target *targets;
	size_t ntargets, cur;
	bool no_tls; /* this target again, without TLS (level may) */
	smtpc_ready_cb ready_cb;
	void *ready_arg;
	bool ready_once; /* the handshake finished: ready_cb was called */
	bool detached; /* QUIT said: nobody waits for this connection */
	bool dirty; /* a probe left a transaction open: QUIT only */
	int busy; /* callbacks running: freeing waits for them */
	bool zombie; /* freed while busy */

	enum smtpc_phase phase;
	int fd;
	struct event *conn_ev;
	struct event *timer;
	struct bufferevent *bev;
	bool tls_active;
	char peer[DNS_NAME_MAX + 80]; /* host[addr]:port */
	char hostaddr[DNS_NAME_MAX + 64]; /* host[addr] */

	/* What the server offers (EHLO). */
	bool esmtp, pipelining, starttls, eightbit, auth, auth_plain,
	    auth_login;
	uint64_t size_limit;
	bool size;

	struct smtp_reply reply;
	struct expect *ex;
	size_t exhead, exn, excap;

	/* The transaction. */
	struct smtpc_txn *txn;
	smtpc_done_cb done_cb;
	void *done_arg;
	size_t accepted;
	bool mail_ok, need_rset;
	uint64_t body_off;
	bool bol;
	struct mime8 *m8;
	char *chunk;
};

struct smtpc_cmd_def {
	const char *name; /* "(in reply to %s)" */
	const char *doing; /* "lost connection with %s while %s" */
	int timeout; /* the parameter */
	void (*on_reply)(struct smtpc *, size_t idx);
};

static void on_greeting(struct smtpc *, size_t);
static void on_ehlo(struct smtpc *, size_t);
static void on_helo(struct smtpc *, size_t);
static void on_starttls(struct smtpc *, size_t);
static void on_auth(struct smtpc *, size_t);
static void on_mail(struct smtpc *, size_t);
static void on_rcpt(struct smtpc *, size_t);
static void on_data(struct smtpc *, size_t);
static void on_dot(struct smtpc *, size_t);
static void on_rset(struct smtpc *, size_t);
static void on_quit(struct smtpc *, size_t);

static const struct smtpc_cmd_def cmds[] = {
	[C_GREETING] = { "initial server greeting",
	    "receiving the initial server greeting", P_SMTP_HELO_TIMEOUT,
	    on_greeting },
	[C_EHLO] = { "EHLO command", "performing the EHLO handshake",
	    P_SMTP_HELO_TIMEOUT, on_ehlo },
	[C_HELO] = { "HELO command", "performing the HELO handshake",
	    P_SMTP_HELO_TIMEOUT, on_helo },
	[C_STARTTLS] = { "STARTTLS command", "sending STARTTLS",
	    P_SMTP_STARTTLS_TIMEOUT, on_starttls },
	[C_AUTH] = { "AUTH command", "performing the SASL authentication",
	    P_SMTP_MAIL_TIMEOUT, on_auth },
	[C_MAIL] = { "MAIL FROM command", "sending MAIL FROM",
	    P_SMTP_MAIL_TIMEOUT, on_mail },
	[C_RCPT] = { "RCPT TO command", "sending RCPT TO", P_SMTP_RCPT_TIMEOUT,
	    on_rcpt },
	[C_DATA] = { "DATA command", "sending DATA command",
	    P_SMTP_DATA_INIT_TIMEOUT, on_data },
	[C_DOT] = { "end of DATA command",
	    "sending end of data -- message may be sent more than once",
	    P_SMTP_DATA_DONE_TIMEOUT, on_dot },
	[C_RSET] = { "RSET command", "sending RSET", P_SMTP_MAIL_TIMEOUT,
	    on_rset },
	[C_QUIT] = { "QUIT command", "sending QUIT", P_SMTP_QUIT_TIMEOUT,
	    on_quit },
};

static void try_target(struct smtpc *);
static void conn_close(struct smtpc *);
static void txn_fail_all(struct smtpc *, int code, const char *dsn,
    const char *diag, const char *text);
static void txn_finish(struct smtpc *);
static void body_pump(struct smtpc *);

/* Status values. */

void
smtpc_status_clear(struct smtpc_status *st)
{
	free(st->text);
	free(st->diag);
	memset(st, 0, sizeof(*st));
}

void
smtpc_status_set(struct smtpc_status *st, int code, const char *dsn,
    const char *diag, const char *fmt, ...)
{
	va_list ap;

	smtpc_status_clear(st);
	st->code = code;
	strlcpy_ms(st->dsn, dsn, sizeof(st->dsn));
	va_start(ap, fmt);
	st->text = xvasprintf(fmt, ap);
	va_end(ap);
	st->diag = diag != NULL ? xstrdup(diag) : NULL;
}

/* The context. */

struct smtpc_ctx *
smtpc_ctx_new(struct event_base *base, struct config *cfg, const char **error_r)
{
	struct smtpc_ctx *ctx = xcalloc(1, sizeof(*ctx));

	ctx->base = base;
	ctx->cfg = config_ref(cfg);
	if ((ctx->tls = tls_client_ctx(error_r)) == NULL) {
		config_unref(&ctx->cfg);
		free(ctx);
		return NULL;
	}
	return ctx;
}

void
smtpc_ctx_set_config(struct smtpc_ctx *ctx, struct config *cfg)
{
	config_unref(&ctx->cfg);
	ctx->cfg = config_ref(cfg);
}

void
smtpc_ctx_free(struct smtpc_ctx **ctxp)
{
	struct smtpc_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	*ctxp = NULL;
	while (ctx->list != NULL) {
		struct smtpc *s = ctx->list;
		smtpc_free(&s);
	}
	SSL_CTX_free(ctx->tls);
	config_unref(&ctx->cfg);
	free(ctx);
}

/* Small helpers. */

static struct timeval
tv_of(struct smtpc *s, int param)
{
	struct timeval tv = { (time_t)cfg_int(s->cfg, param), 0 };

	return tv;
}

static void
expect_push(struct smtpc *s, enum smtpc_cmd cmd, size_t idx)
{
	if (s->exhead + s->exn == s->excap) {
		if (s->exhead > 0) {
			memmove(
			    s->ex, s->ex + s->exhead, s->exn * sizeof(*s->ex));
			s->exhead = 0;
		}
		if (s->exn == s->excap) {
			s->excap = s->excap == 0 ? 8 : s->excap * 2;
			s->ex = xreallocarray(s->ex, s->excap, sizeof(*s->ex));
		}
	}
	s->ex[s->exhead + s->exn].cmd = cmd;
	s->ex[s->exhead + s->exn].idx = idx;
	s->exn++;
}

/* Reads wait as long as the command at the head of the queue allows. */
static void
arm_timeouts(struct smtpc *s)
{
	struct timeval tv;

	if (s->bev == NULL)
		return;
	if (s->phase == PH_BODY) {
		tv = tv_of(s, P_SMTP_DATA_XFER_TIMEOUT);
		bufferevent_set_timeouts(s->bev, NULL, &tv);
	} else if (s->exn > 0) {
		tv = tv_of(s, cmds[s->ex[s->exhead].cmd].timeout);
		bufferevent_set_timeouts(s->bev, &tv, &tv);
	} else
		bufferevent_set_timeouts(s->bev, NULL, NULL);
}

static void __attribute__((format(printf, 4, 5)))
send_cmd(struct smtpc *s, enum smtpc_cmd cmd, size_t idx, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	expect_push(s, cmd, idx);
	arm_timeouts(s);
}

static void
secret_cleanup(const void *data, size_t len, void *arg)
{
	xfree_secret(arg, len);
}

/* A command that holds a secret: its copy is wiped once it is sent. */
static void
send_secret(struct smtpc *s, size_t idx, const char *prefix, char *secret)
{
	size_t len = strlen(prefix) + strlen(secret) + 2;
	char *line = xmalloc(len + 1);

	snprintf(line, len + 1, "%s%s\r\n", prefix, secret);
	sasl_secret_free(secret);
	evbuffer_add_reference(
	    bufferevent_get_output(s->bev), line, len, secret_cleanup, line);
	expect_push(s, C_AUTH, idx);
	arm_timeouts(s);
}

/* The reply text "host x[a] said: 550 ... (in reply to RCPT TO command)". */
static void
status_from_reply(struct smtpc *s, struct smtpc_status *st, enum smtpc_cmd cmd)
{
	smtpc_status_set(st, s->reply.code, s->reply.dsn, s->reply.text,
	    "host %s said: %s (in reply to %s)", s->hostaddr, s->reply.text,
	    cmds[cmd].name);
}

/* Connection-level failures. */

/*
 * The connection failed before it was ready: try the next address, or
 * tell the owner. A loop or a failure with next = false ends the list.
 */
static void
session_fail(struct smtpc *s, bool next, struct smtpc_status *st)
{
	conn_close(s);
	if (next && s->cur + 1 < s->ntargets) {
		msg_info("%s", st->text);
		smtpc_status_clear(st);
		s->cur++;
		s->no_tls = false;
		try_target(s);
		return;
	}
	s->phase = PH_DEAD;
	s->ready_once = true;
	s->ready_cb(s, false, st, s->ready_arg);
	smtpc_status_clear(st);
}

static void fail_local(struct smtpc *, bool, const char *, const char *,
    const char *, ...) __attribute__((format(printf, 5, 6)));

static void
fail_local(struct smtpc *s, bool next, const char *dsn, const char *diag,
    const char *fmt, ...)
{
	struct smtpc_status st = { 0 };
	va_list ap;

	st.code = 0;
	strlcpy_ms(st.dsn, dsn, sizeof(st.dsn));
	va_start(ap, fmt);
	st.text = xvasprintf(fmt, ap);
	va_end(ap);
	st.diag = diag != NULL ? xstrdup(diag) : NULL;
	session_fail(s, next, &st);
}

/* The connection broke: what was going on fails. */
static void
conn_broken(struct smtpc *s, const char *dsn, const char *text)
{
	if (s->detached) {
		smtpc_free(&s);
		return;
	}
	if (!s->ready_once) {
		fail_local(s, true, dsn, NULL, "%s", text);
		return;
	}
	if (s->txn != NULL) {
		conn_close(s);
		s->phase = PH_DEAD;
		txn_fail_all(s, 0, dsn, NULL, text);
		txn_finish(s);
		return;
	}
	/* An idle connection: the owner sees it is not usable. */
	conn_close(s);
	s->phase = PH_DEAD;
}

static const char *
doing_now(struct smtpc *s)
{
	if (s->phase == PH_BODY)
		return "sending message body";
	if (s->phase == PH_TLS)
		return "performing the TLS handshake";
	if (s->exn > 0)
		return cmds[s->ex[s->exhead].cmd].doing;
	return "waiting for a command";
}

static void
conn_lost(struct smtpc *s)
{
	char text[600];

	snprintf(text, sizeof(text), "lost connection with %s while %s",
	    s->hostaddr, doing_now(s));
	conn_broken(s, "4.4.2", text);
}

static void
conn_timeout(struct smtpc *s)
{
	char text[600];

	snprintf(text, sizeof(text), "conversation with %s timed out while %s",
	    s->hostaddr, doing_now(s));
	conn_broken(s, "4.4.2", text);
}

static void
conn_close(struct smtpc *s)
{
	if (s->conn_ev != NULL) {
		event_free(s->conn_ev);
		s->conn_ev = NULL;
	}
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
	s->tls_active = false;
	s->exhead = s->exn = 0;
	smtp_reply_reset(&s->reply);
	mime8_free(&s->m8);
}

/*
 * Entry points from libevent hold the connection: an owner that frees it
 * from a callback only marks it, and it goes when the entry point ends.
 */
static void smtpc_destroy(struct smtpc *);

static void
hold(struct smtpc *s)
{
	s->busy++;
}

static void
release(struct smtpc *s)
{
	if (--s->busy == 0 && s->zombie)
		smtpc_destroy(s);
}

/* Reading replies. */

static void
dispatch_reply(struct smtpc *s)
{
	struct expect e;

	if (s->exn == 0) {
		/* Unsolicited, such as a 421 of an idle timeout. */
		if (s->phase == PH_QUIT || s->detached) {
			smtpc_free(&s);
			return;
		}
		conn_broken(s, "4.4.2", "unexpected server reply");
		return;
	}
	e = s->ex[s->exhead];
	s->exhead++;
	s->exn--;
	arm_timeouts(s);
	cmds[e.cmd].on_reply(s, e.idx);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct smtpc *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const char *why;
	size_t len;
	char *line;

	hold(s);
	while (!s->zombie && s->bev == bev && s->phase != PH_TLS &&
	    (line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		int rc = smtp_reply_add_line(&s->reply, line, len, &why);
		free(line);
		if (rc == SMTP_REPLY_BAD) {
			char text[600];
			snprintf(
			    text, sizeof(text), "%s from %s", why, s->hostaddr);
			conn_broken(s, "4.5.0", text);
			break;
		}
		if (rc == SMTP_REPLY_DONE)
			dispatch_reply(s);
	}
	if (!s->zombie && s->bev == bev &&
	    evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX)
		conn_broken(s, "4.5.0", "server reply line too long");
	release(s);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct smtpc *s = arg;

	hold(s);
	if (s->phase == PH_BODY)
		body_pump(s);
	release(s);
}

static void
tls_connected(struct smtpc *s)
{
	char info[200];

	s->phase = PH_HANDSHAKE;
	s->tls_active = true;
	tls_describe(bufferevent_openssl_get_ssl(s->bev), info, sizeof(info));
	msg_info(
	    "Untrusted TLS connection established to %s: %s", s->peer, info);
	/* RFC 3207 4.2: forget what the server said before; ask again. */
	s->esmtp = s->pipelining = s->starttls = s->eightbit = false;
	s->auth = s->auth_plain = s->auth_login = s->size = false;
	send_cmd(s, C_EHLO, 0, "EHLO %s", cfg_helo_name(s->cfg));
}

static void
tls_failed(struct smtpc *s)
{
	unsigned long e = bufferevent_get_openssl_error(s->bev);
	char ebuf[256] = "handshake failure";

	if (e != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	while (bufferevent_get_openssl_error(s->bev) != 0)
		;
	if (s->tls_level == SMTPC_TLS_MAY) {
		/* Opportunistic TLS: the same server again, in clear text. */
		msg_info("%s: Cannot start TLS: %s; trying again without TLS",
		    s->peer, ebuf);
		conn_close(s);
		s->no_tls = true;
		try_target(s);
		return;
	}
	fail_local(s, true, "4.7.5", NULL, "Cannot start TLS: %s with %s", ebuf,
	    s->hostaddr);
}

static void event_cb_held(struct smtpc *, short);

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtpc *s = arg;

	hold(s);
	event_cb_held(s, what);
	release(s);
}

static void
event_cb_held(struct smtpc *s, short what)
{
	if ((what & BEV_EVENT_CONNECTED) && s->phase == PH_TLS) {
		tls_connected(s);
		return;
	}
	if (s->phase == PH_TLS && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
		tls_failed(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->phase == PH_QUIT || s->detached) {
			smtpc_free(&s);
			return;
		}
		if (s->phase == PH_TLS) {
			fail_local(s, true, "4.4.2", NULL,
			    "conversation with %s timed out while performing "
			    "the TLS handshake",
			    s->hostaddr);
			return;
		}
		conn_timeout(s);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (s->phase == PH_QUIT || s->detached) {
			smtpc_free(&s);
			return;
		}
		conn_lost(s);
	}
}

/* Connecting. */

static void
format_peer(struct smtpc *s, const struct dns_target *t)
{
	char addr[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (t->sa.ss_family == AF_INET) {
		const struct sockaddr_in *sin =
		    (const struct sockaddr_in *)&t->sa;
		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		port = ntohs(sin->sin_port);
	} else if (t->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)&t->sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		port = ntohs(sin6->sin6_port);
	}
	snprintf(s->hostaddr, sizeof(s->hostaddr), "%s[%s]", t->host, addr);
	snprintf(s->peer, sizeof(s->peer), "%s:%d", s->hostaddr, port);
}

static void
connected(struct smtpc *s)
{
	s->bev = bufferevent_socket_new(
	    s->ctx->base, s->fd, BEV_OPT_DEFER_CALLBACKS);
	if (s->bev == NULL) {
		fail_local(s, true, "4.3.0", NULL, "cannot make a buffer");
		return;
	}
	/* A body goes out in a few large writes, not 16 KB each. */
	(void)bufferevent_set_max_single_write(s->bev, SMTPC_OUT_HIGH);
	s->phase = PH_HANDSHAKE;
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	expect_push(s, C_GREETING, 0);
	arm_timeouts(s);
}

static void
connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *s = arg;
	socklen_t len = sizeof(int);
	int err = 0;

	hold(s);
	event_free(s->conn_ev);
	s->conn_ev = NULL;
	if (what & EV_TIMEOUT)
		fail_local(s, true, "4.4.1", NULL,
		    "connect to %s: Connection timed out", s->peer);
	else {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0)
			fail_local(s, true, "4.4.1", NULL, "connect to %s: %s",
			    s->peer, strerror(err));
		else
			connected(s);
	}
	release(s);
}

static void
try_target(struct smtpc *s)
{
	const struct dns_target *t = &s->targets[s->cur];
	struct timeval tv = tv_of(s, P_SMTP_CONNECT_TIMEOUT);
	int one = 1;

	format_peer(s, t);
	s->phase = PH_CONNECT;
	s->fd = socket(
	    t->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd == -1) {
		fail_local(s, true, "4.4.1", NULL, "connect to %s: %s", s->peer,
		    strerror(errno));
		return;
	}
	/*
	 * The body goes out in large writes of its own; without Nagle the
	 * small last one (".") does not wait for the peer's delayed ACK.
	 */
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (const struct sockaddr *)&t->sa, t->salen) == 0) {
		connected(s);
		return;
	}
	if (errno != EINPROGRESS) {
		fail_local(s, true, "4.4.1", NULL, "connect to %s: %s", s->peer,
		    strerror(errno));
		return;
	}
	s->conn_ev = event_new(s->ctx->base, s->fd, EV_WRITE, connect_cb, s);
	event_add(s->conn_ev, &tv);
}

static void
start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *s = arg;

	hold(s);
	if (s->ntargets == 0)
		fail_local(s, false, "4.4.1", NULL, "no address to connect to");
	else
		try_target(s);
	release(s);
}

struct smtpc *
smtpc_connect(struct smtpc_ctx *ctx, const struct smtpc_opts *o,
    const struct dns_target *t, size_t n, smtpc_ready_cb cb, void *arg)
{
	struct smtpc *s = xcalloc(1, sizeof(*s));
	struct timeval now = { 0, 0 };

	s->ctx = ctx;
	s->cfg = config_ref(ctx->cfg);
	s->tls_level = o->tls;
	s->nexthop = xstrdup(o->nexthop);
	if (o->sasl != NULL) {
		s->sasl_user = xstrdup(o->sasl->user);
		s->sasl_pass = xstrdup(o->sasl->pass);
	}
	s->targets = xcalloc(n, sizeof(*t));
	memcpy(s->targets, t, n * sizeof(*t));
	s->ntargets = n;
	s->ready_cb = cb;
	s->ready_arg = arg;
	s->fd = -1;
	strlcpy_ms(s->peer, "none", sizeof(s->peer));
	strlcpy_ms(s->hostaddr, "none", sizeof(s->hostaddr));
	s->next = ctx->list;
	if (s->next != NULL)
		s->next->prev = s;
	ctx->list = s;
	s->timer = evtimer_new(ctx->base, start_cb, s);
	evtimer_add(s->timer, &now);
	return s;
}

/* The handshake. */

/* Whether a greeting or EHLO names our own host: a mail loop. */
static bool
is_loop(struct smtpc *s)
{
	const char *first = s->reply.nlines > 0 ? s->reply.lines[0] : "";
	size_t n = strcspn(first, " ");
	const char *me = cfg_myhostname(s->cfg);

	return n == strlen(me) && strncasecmp(first, me, n) == 0;
}

static void
fail_loop(struct smtpc *s)
{
	/* Seed guide 4.2: no other MX host is tried; it is our own. */
	fail_local(s, false, "5.4.6", NULL, "mail for %s loops back to myself",
	    s->nexthop);
}

static void
fail_reply(struct smtpc *s, enum smtpc_cmd cmd)
{
	struct smtpc_status st = { 0 };

	status_from_reply(s, &st, cmd);
	session_fail(s, true, &st);
}

static void
ready(struct smtpc *s)
{
	s->phase = PH_READY;
	arm_timeouts(s);
	if (!s->ready_once) {
		s->ready_once = true;
		s->ready_cb(s, true, NULL, s->ready_arg);
	}
}

static void
on_greeting(struct smtpc *s, size_t idx)
{
	if (is_loop(s)) {
		fail_loop(s);
		return;
	}
	if (s->reply.code != 220) {
		struct smtpc_status st = { 0 };
		/* Next MX: RFC 5321 5.1, and Postfix's smtp_skip_5xx_greeting. */
		smtpc_status_set(&st, s->reply.code, s->reply.dsn,
		    s->reply.text, "host %s refused to talk to me: %s",
		    s->hostaddr, s->reply.text);
		session_fail(s, true, &st);
		return;
	}
	send_cmd(s, C_EHLO, 0, "EHLO %s", cfg_helo_name(s->cfg));
}

static void
ehlo_keyword(struct smtpc *s, const char *line)
{
	char word[32];
	size_t n = strcspn(line, " =");
	const char *arg = line[n] != '\0' ? line + n + 1 : "";

	if (n >= sizeof(word))
		return;
	memcpy(word, line, n);
	word[n] = '\0';
	if (strcasecmp(word, "PIPELINING") == 0)
		s->pipelining = true;
	else if (strcasecmp(word, "8BITMIME") == 0)
		s->eightbit = true;
	else if (strcasecmp(word, "STARTTLS") == 0)
		s->starttls = true;
	else if (strcasecmp(word, "SIZE") == 0) {
		long long v = 0;
		s->size = true;
		if (*arg != '\0' && parse_ll(arg, 0, 1LL << 62, &v) == 0)
			s->size_limit = (uint64_t)v;
	} else if (strcasecmp(word, "AUTH") == 0) {
		char *mechs = xstrdup(arg), *p = mechs, *m;
		s->auth = true;
		while ((m = strsep(&p, " ")) != NULL) {
			if (strcasecmp(m, "PLAIN") == 0)
				s->auth_plain = true;
			else if (strcasecmp(m, "LOGIN") == 0)
				s->auth_login = true;
		}
		free(mechs);
	}
}

static void
auth_start(struct smtpc *s)
{
	if (s->sasl_user == NULL || !s->auth) {
		ready(s);
		return;
	}
	if (!s->tls_active && cfg_bool(s->cfg, P_SMTP_SASL_TLS_ONLY)) {
		fail_local(s, true, "4.7.0", NULL,
		    "SASL authentication failed; cannot authenticate to "
		    "server %s: credentials go only over TLS "
		    "(smtp_sasl_tls_only), and TLS is not active",
		    s->hostaddr);
		return;
	}
	if (s->auth_plain)
		send_secret(s, 0, "AUTH PLAIN ",
		    sasl_plain_response(s->sasl_user, s->sasl_pass));
	else if (s->auth_login)
		send_cmd(s, C_AUTH, 1, "AUTH LOGIN");
	else
		fail_local(s, true, "4.7.0", NULL,
		    "SASL authentication failed; cannot authenticate to "
		    "server %s: no mechanism available (PLAIN or LOGIN)",
		    s->hostaddr);
}

/* After EHLO or HELO: STARTTLS, or TLS is required and missing, or AUTH. */
static void
handshake_next(struct smtpc *s)
{
	if (!s->tls_active && s->starttls && !s->no_tls &&
	    s->tls_level != SMTPC_TLS_NONE) {
		send_cmd(s, C_STARTTLS, 0, "STARTTLS");
		return;
	}
	if (!s->tls_active && s->tls_level == SMTPC_TLS_ENCRYPT) {
		/* Never in clear: the mail waits for a server that can. */
		fail_local(s, true, "4.7.4", NULL,
		    "TLS is required, but was not offered by host %s",
		    s->hostaddr);
		return;
	}
	auth_start(s);
}

static void
on_ehlo(struct smtpc *s, size_t idx)
{
	if (s->reply.code / 100 == 5 && !s->tls_active) {
		/* RFC 5321 4.1.4: fall back to HELO. */
		send_cmd(s, C_HELO, 0, "HELO %s", cfg_helo_name(s->cfg));
		return;
	}
	if (s->reply.code / 100 != 2) {
		fail_reply(s, C_EHLO);
		return;
	}
	if (is_loop(s)) {
		fail_loop(s);
		return;
	}
	s->esmtp = true;
	for (size_t i = 1; i < s->reply.nlines; i++)
		ehlo_keyword(s, s->reply.lines[i]);
	handshake_next(s);
}

static void
on_helo(struct smtpc *s, size_t idx)
{
	if (s->reply.code / 100 != 2) {
		fail_reply(s, C_HELO);
		return;
	}
	if (is_loop(s)) {
		fail_loop(s);
		return;
	}
	handshake_next(s);
}

static void
on_starttls(struct smtpc *s, size_t idx)
{
	SSL *ssl;
	const struct dns_target *t = &s->targets[s->cur];
	struct in6_addr a;

	if (s->reply.code != 220) {
		if (s->tls_level == SMTPC_TLS_ENCRYPT) {
			struct smtpc_status st = { 0 };
			smtpc_status_set(&st, s->reply.code, "4.7.5",
			    s->reply.text,
			    "TLS is required, but host %s refused to start "
			    "TLS: %s",
			    s->hostaddr, s->reply.text);
			session_fail(s, true, &st);
			return;
		}
		auth_start(s);
		return;
	}
	/*
	 * RFC 3207 and CVE-2011-0411 seen from the client: whatever the
	 * server sent after its 220 in clear text is dropped.
	 */
	bufferevent_free(s->bev);
	s->bev = NULL;
	if ((ssl = SSL_new(s->ctx->tls)) == NULL) {
		fail_local(s, true, "4.7.5", NULL, "Cannot start TLS: %s",
		    "cannot make a TLS session");
		return;
	}
	if (inet_pton(AF_INET, t->host, &a) != 1 &&
	    inet_pton(AF_INET6, t->host, &a) != 1) {
		/* SNI (RFC 6066 3): the name, never an address. */
		char sni[DNS_NAME_MAX];
		strlcpy_ms(sni, t->host, sizeof(sni));
		SSL_set_tlsext_host_name(ssl, sni);
	}
	s->bev = bufferevent_openssl_socket_new(s->ctx->base, s->fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (s->bev == NULL) {
		SSL_free(ssl);
		fail_local(s, true, "4.7.5", NULL, "Cannot start TLS: %s",
		    "cannot make a TLS buffer");
		return;
	}
	s->fd = -1; /* the TLS buffer closes it */
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	s->phase = PH_TLS;
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	struct timeval tv = tv_of(s, P_SMTP_STARTTLS_TIMEOUT);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void
on_auth(struct smtpc *s, size_t step)
{
	if (s->reply.code == 235) {
		ready(s);
		return;
	}
	/* AUTH LOGIN: 334 asks for the user name (1), the password (2). */
	if (s->reply.code == 334 && step == 1) {
		send_secret(s, 2, "", sasl_base64(s->sasl_user));
		return;
	}
	if (s->reply.code == 334 && step == 2) {
		send_secret(s, 3, "", sasl_base64(s->sasl_pass));
		return;
	}
	/* A failed login is temporary: the password may be fixed meanwhile. */
	struct smtpc_status st = { 0 };
	char dsn[12];
	snprintf(dsn, sizeof(dsn), "4%s", s->reply.dsn + 1);
	smtpc_status_set(&st, s->reply.code, dsn, s->reply.text,
	    "SASL authentication failed; server %s said: %s", s->hostaddr,
	    s->reply.text);
	session_fail(s, true, &st);
}

/* Transactions. */

static void
txn_fail_all(struct smtpc *s, int code, const char *dsn, const char *diag,
    const char *text)
{
	struct smtpc_txn *t = s->txn;

	/* Open: not answered yet, or accepted until the end of DATA. */
	for (size_t i = 0; i < t->nrcpt; i++)
		if (t->rs[i].dsn[0] == '\0' || t->rs[i].dsn[0] == '2')
			smtpc_status_set(
			    &t->rs[i], code, dsn, diag, "%s", text);
}

/* Every recipient still open gets the reply to cmd. */
static void
txn_fail_reply(struct smtpc *s, enum smtpc_cmd cmd)
{
	struct smtpc_status st = { 0 };

	status_from_reply(s, &st, cmd);
	txn_fail_all(s, st.code, st.dsn, st.diag, st.text);
	smtpc_status_clear(&st);
}

static void
txn_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *s = arg;
	struct smtpc_txn *t = s->txn;

	s->txn = NULL;
	mime8_free(&s->m8);
	if (s->phase != PH_DEAD)
		s->phase = PH_READY;
	arm_timeouts(s);
	hold(s);
	s->done_cb(s, t, s->done_arg);
	release(s);
}

/* The transaction is over; RSET first when it ended half-way. */
static void
txn_finish(struct smtpc *s)
{
	struct timeval now = { 0, 0 };

	if (s->need_rset && s->phase != PH_DEAD) {
		s->need_rset = false;
		s->phase = PH_TXN;
		send_cmd(s, C_RSET, 0, "RSET");
		return;
	}
	/* The owner hears of it from the loop, never from inside smtpc_send. */
	evtimer_assign(s->timer, s->ctx->base, txn_done_cb, s);
	evtimer_add(s->timer, &now);
}

static void
send_rcpt(struct smtpc *s, size_t i)
{
	send_cmd(s, C_RCPT, i, "RCPT TO:<%s>", s->txn->rcpts[i]);
}

static void
send_mail(struct smtpc *s)
{
	struct smtpc_txn *t = s->txn;
	char size[48] = "";

	if (s->size && !t->probe)
		snprintf(size, sizeof(size), " SIZE=%llu",
		    (unsigned long long)t->env->content_len);
	send_cmd(s, C_MAIL, 0, "MAIL FROM:<%s>%s%s", t->sender, size,
	    t->body_8bit && s->eightbit && !t->probe ? " BODY=8BITMIME" : "");
	if (!s->pipelining)
		return;
	/* RFC 2920 3.1: MAIL, RCPT and DATA go in one group. */
	for (size_t i = 0; i < t->nrcpt; i++)
		send_rcpt(s, i);
	if (!t->probe)
		send_cmd(s, C_DATA, 0, "DATA");
}

void
smtpc_send(struct smtpc *s, struct smtpc_txn *t, smtpc_done_cb cb, void *arg)
{
	if (s->phase != PH_READY || s->txn != NULL)
		msg_panic("smtpc_send: connection to %s is not ready", s->peer);
	s->txn = t;
	s->done_cb = cb;
	s->done_arg = arg;
	s->accepted = 0;
	s->mail_ok = false;
	s->need_rset = false;
	s->phase = PH_TXN;
	for (size_t i = 0; i < t->nrcpt; i++)
		smtpc_status_clear(&t->rs[i]);
	if (!t->probe && s->size && s->size_limit > 0 &&
	    t->env->content_len > s->size_limit) {
		char text[600];
		snprintf(text, sizeof(text),
		    "message size %llu exceeds size limit %llu of server %s",
		    (unsigned long long)t->env->content_len,
		    (unsigned long long)s->size_limit, s->hostaddr);
		txn_fail_all(s, 0, "5.3.4", NULL, text);
		txn_finish(s);
		return;
	}
	send_mail(s);
}

static void
on_mail(struct smtpc *s, size_t idx)
{
	if (s->reply.code / 100 == 2) {
		s->mail_ok = true;
		if (!s->pipelining)
			send_rcpt(s, 0);
		return;
	}
	txn_fail_reply(s, C_MAIL);
	s->need_rset = true;
	/* Pipelined RCPT and DATA replies are still to come. */
	if (!s->pipelining)
		txn_finish(s);
}

/* The RCPT replies are all in: DATA, or the end. */
static void
rcpts_done(struct smtpc *s)
{
	struct smtpc_txn *t = s->txn;

	if (t->probe || s->accepted == 0) {
		/* A probe ends with QUIT, not RSET (its owner hangs up). */
		if (s->mail_ok && !t->probe)
			s->need_rset = true;
		s->dirty = s->dirty || (s->mail_ok && t->probe);
		/* Pipelined, the reply to DATA is still to come. */
		if (!s->pipelining || t->probe)
			txn_finish(s);
		return;
	}
	if (!s->pipelining)
		send_cmd(s, C_DATA, 0, "DATA");
}

static void
on_rcpt(struct smtpc *s, size_t i)
{
	struct smtpc_txn *t = s->txn;

	if (!s->mail_ok) {
		/* MAIL failed; the recipients have their answer already. */
	} else if (s->reply.code / 100 == 2) {
		s->accepted++;
		/* Accepted for now; the end of DATA decides. */
		smtpc_status_set(&t->rs[i], s->reply.code, s->reply.dsn,
		    s->reply.text, "%s", s->reply.text);
	} else
		status_from_reply(s, &t->rs[i], C_RCPT);
	if (i + 1 < t->nrcpt) {
		if (!s->pipelining && s->mail_ok)
			send_rcpt(s, i + 1);
		return;
	}
	rcpts_done(s);
}

static void
data_put(void *arg, const char *p, size_t len)
{
	struct smtpc *s = arg;
	struct evbuffer *out = bufferevent_get_output(s->bev);
	size_t start = 0, i = 0;

	/* RFC 5321 4.5.2: a line that starts with '.' gets another. */
	while (i < len) {
		if (s->bol && p[i] == '.') {
			evbuffer_add(out, p + start, i - start);
			evbuffer_add(out, ".", 1);
			start = i;
		}
		const char *lf = memchr(p + i, '\n', len - i);
		if (lf == NULL) {
			s->bol = false;
			break;
		}
		i = (size_t)(lf - p) + 1;
		s->bol = true;
	}
	evbuffer_add(out, p + start, len - start);
}

/* Whether the content has 8-bit bytes (and a downgrade is needed). */
static int
content_8bit(struct smtpc *s, bool *yes_r)
{
	const struct smtpc_txn *t = s->txn;
	uint64_t off = 0;

	*yes_r = false;
	while (off < t->env->content_len) {
		long n = spool_read_content(
		    t->fd, t->env, off, s->chunk, SMTPC_CHUNK);
		if (n <= 0)
			return -1;
		if (mime8_has_8bit(s->chunk, (size_t)n)) {
			*yes_r = true;
			return 0;
		}
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * Whether sendfile(2) works from the queue's file system: most do, some
 * (FUSE without splice) refuse with EINVAL, which libevent would report as
 * a failed write on every delivery. Tried once, with the first queue file
 * to send, into a socket pair.
 */
static bool
sendfile_works(int fd)
{
	static int works = -1;
	int sv[2];

	if (works == -1) {
		off_t off = 0;

		works = 0;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ==
		    0) {
			works = sendfile(sv[0], fd, &off, 1) == 1;
			close(sv[0]);
			close(sv[1]);
		}
		if (!works)
			msg_info(
			    "sendfile(2) from the queue directory does not "
			    "work: message bodies are copied");
	}
	return works == 1;
}

/*
 * In clear text, content that has no line to dot-stuff and ends a line
 * (the spool writer noted both) goes from the queue file to the socket
 * without passing through this process: libevent sends a file segment
 * with sendfile(2). Anything else is pumped through data_put().
 */
static void
body_sendfile(struct smtpc *s)
{
	const struct spool_env *env = s->txn->env;
	const uint32_t need = SPOOL_CONTENT_NO_DOT_LINE | SPOOL_CONTENT_ENDS_LF;
	int fd;

	if ((env->content_flags & need) != need || env->content_len == 0 ||
	    !sendfile_works(s->txn->fd) || (fd = dup(s->txn->fd)) == -1)
		return;
	if (evbuffer_add_file(bufferevent_get_output(s->bev), fd,
		(ev_off_t)env->content_off, (ev_off_t)env->content_len) == -1) {
		close(fd);
		return;
	}
	s->body_off = env->content_len;
	s->bol = true;
}

static void
body_start(struct smtpc *s)
{
	struct smtpc_txn *t = s->txn;
	bool eight;

	s->body_off = 0;
	s->bol = true;
	if (s->chunk == NULL)
		s->chunk = xmalloc(SMTPC_CHUNK);
	if (t->body_8bit && !s->eightbit) {
		if (content_8bit(s, &eight) == -1) {
			txn_fail_all(s, 0, "4.3.0", NULL,
			    "error reading the queue file");
			conn_close(s);
			s->phase = PH_DEAD;
			txn_finish(s);
			return;
		}
		/* RFC 6152 3: no 8-bit data to a server without 8BITMIME. */
		if (eight)
			s->m8 = mime8_new(data_put, s);
	}
	s->phase = PH_BODY;
	if (s->m8 == NULL && !s->tls_active)
		body_sendfile(s);
	bufferevent_setwatermark(s->bev, EV_WRITE, SMTPC_OUT_HIGH / 4, 0);
	arm_timeouts(s);
	body_pump(s);
}

static void
body_pump(struct smtpc *s)
{
	struct smtpc_txn *t = s->txn;
	struct evbuffer *out = bufferevent_get_output(s->bev);

	while (evbuffer_get_length(out) < SMTPC_OUT_HIGH &&
	    s->body_off < t->env->content_len) {
		long n = spool_read_content(
		    t->fd, t->env, s->body_off, s->chunk, SMTPC_CHUNK);
		if (n <= 0) {
			msg_warn(
			    "%s: cannot read the queue file: %m", t->env->qid);
			/* The transaction cannot end well: drop the line. */
			txn_fail_all(s, 0, "4.3.0", NULL,
			    "error reading the queue file");
			conn_close(s);
			s->phase = PH_DEAD;
			txn_finish(s);
			return;
		}
		if (s->m8 != NULL)
			mime8_feed(s->m8, s->chunk, (size_t)n);
		else
			data_put(s, s->chunk, (size_t)n);
		s->body_off += (uint64_t)n;
	}
	if (s->body_off < t->env->content_len)
		return;
	if (s->m8 != NULL) {
		mime8_finish(s->m8);
		mime8_free(&s->m8);
	}
	if (!s->bol)
		evbuffer_add(out, "\r\n", 2);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	s->phase = PH_TXN;
	send_cmd(s, C_DOT, 0, ".");
}

static void
on_data(struct smtpc *s, size_t idx)
{
	if (s->reply.code == 354 && s->accepted > 0) {
		body_start(s);
		return;
	}
	if (s->reply.code == 354) {
		/* No recipient, yet the server waits for data: end it. */
		s->phase = PH_TXN;
		send_cmd(s, C_DOT, 1, ".");
		return;
	}
	if (s->accepted > 0)
		txn_fail_reply(s, C_DATA);
	s->need_rset = true;
	txn_finish(s);
}

static void
on_dot(struct smtpc *s, size_t empty)
{
	struct smtpc_txn *t = s->txn;

	if (empty) {
		s->need_rset = true;
		txn_finish(s);
		return;
	}
	for (size_t i = 0; i < t->nrcpt; i++) {
		if (t->rs[i].code / 100 != 2)
			continue;
		if (s->reply.code / 100 == 2)
			smtpc_status_set(&t->rs[i], s->reply.code, s->reply.dsn,
			    s->reply.text, "%s", s->reply.text);
		else
			status_from_reply(s, &t->rs[i], C_DOT);
	}
	txn_finish(s);
}

static void
on_rset(struct smtpc *s, size_t idx)
{
	if (s->reply.code / 100 != 2) {
		/* The server is confused: do not use it again. */
		conn_close(s);
		s->phase = PH_DEAD;
	}
	txn_finish(s);
}

static void
on_quit(struct smtpc *s, size_t idx)
{
	smtpc_free(&s);
}

/* Owners. */

static bool
can_quit(const struct smtpc *s)
{
	return s->phase == PH_READY && s->bev != NULL && s->txn == NULL;
}

bool
smtpc_usable(const struct smtpc *s)
{
	return can_quit(s) && !s->dirty && !s->zombie;
}

void
smtpc_free(struct smtpc **sp)
{
	struct smtpc *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->busy > 0) {
		conn_close(s);
		evtimer_del(s->timer);
		s->zombie = true;
		return;
	}
	smtpc_destroy(s);
}

static void
smtpc_destroy(struct smtpc *s)
{
	conn_close(s);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		s->ctx->list = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	event_free(s->timer);
	free(s->ex);
	free(s->chunk);
	free(s->targets);
	free(s->nexthop);
	if (s->sasl_user != NULL)
		sasl_secret_free(s->sasl_user);
	if (s->sasl_pass != NULL)
		sasl_secret_free(s->sasl_pass);
	config_unref(&s->cfg);
	free(s);
}

void
smtpc_quit(struct smtpc **sp)
{
	struct smtpc *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (!can_quit(s) || s->zombie) {
		smtpc_free(&s);
		return;
	}
	/* The connection lives on alone until the server answers. */
	s->detached = true;
	s->phase = PH_QUIT;
	evtimer_del(s->timer);
	send_cmd(s, C_QUIT, 0, "QUIT");
}

const char *
smtpc_peer(const struct smtpc *s)
{
	return s->peer;
}

const char *
smtpc_host(const struct smtpc *s)
{
	return s->cur < s->ntargets ? s->targets[s->cur].host : "";
}
