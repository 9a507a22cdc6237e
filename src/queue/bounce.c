#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/bounce.h"
#include "queue/inject.h"
#include "queue/spool.h"
#include "smtp/mime8.h"

/* The headers of the original are returned up to this size. */
#define BOUNCE_HEADERS_MAX (64 * 1024)
/* Lines of the report are wrapped at this width. */
#define BOUNCE_WIDTH 76

struct sbuf {
	char *p;
	size_t len, cap;
};

static void
sb_add(struct sbuf *b, const char *s, size_t len)
{
	if (b->cap - b->len < len + 1) {
		b->cap = (b->cap + len + 1) * 2;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void __attribute__((format(printf, 2, 3)))
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	sb_add(b, s, strlen(s));
	free(s);
}

static void
rfc5322_date(uint64_t us, char *buf, size_t size)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/*
 * Adds text as lines of at most BOUNCE_WIDTH characters where it can,
 * folded as headers are (RFC 5322 2.2.3): a line break goes in before a
 * space, so that unfolding gives the text back. Control characters and
 * 8-bit bytes become '?': every line is 7-bit text.
 */
static void
sb_wrap(struct sbuf *b, const char *first, const char *text)
{
	size_t col = strlen(first), len = strlen(text), i = 0;

	sb_add(b, first, col);
	while (i < len) {
		size_t room = col < BOUNCE_WIDTH ? BOUNCE_WIDTH - col : 1;
		size_t n = len - i;
		if (n > room) {
			/* The last space that fits, but not the first char. */
			size_t k = room;
			while (k > 1 && text[i + k] != ' ')
				k--;
			if (text[i + k] != ' ') {
				/* No space that fits: the next one, if any. */
				k = room;
				while (i + k < len && text[i + k] != ' ')
					k++;
			}
			n = k;
		}
		for (size_t j = 0; j < n; j++) {
			unsigned char c = (unsigned char)text[i + j];
			char o = c < 0x20 || c >= 0x7f ? '?' : (char)c;
			sb_add(b, &o, 1);
		}
		i += n;
		if (i < len)
			sb_add(b, "\r\n", 2);
		col = 0;
	}
	sb_add(b, "\r\n", 2);
}

/* The header section of the original, without the empty line. */
static void
add_original_headers(struct sbuf *b, const struct spool_env *env, int fd)
{
	char buf[8192];
	uint64_t off = 0;
	size_t start = b->len;
	bool bol = true;

	while (off < BOUNCE_HEADERS_MAX) {
		long n = spool_read_content(fd, env, off, buf, sizeof(buf));
		long i;
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				if (bol)
					break;
				bol = true;
			} else if (buf[i] != '\r')
				bol = false;
		}
		sb_add(b, buf, (size_t)(i < n ? i + 1 : n));
		if (i < n)
			break;
		off += (uint64_t)n;
	}
	/* A piece of a line cut off by the cap goes. */
	while (b->len > start && b->p[b->len - 1] != '\n')
		b->len--;
	/* So does the empty line that ends the header section. */
	if (b->len - start == 2 ||
	    (b->len - start >= 4 &&
		memcmp(b->p + b->len - 4, "\r\n\r\n", 4) == 0))
		b->len -= 2;
	if (b->p != NULL)
		b->p[b->len] = '\0';
}

static const char notice_failed[] =
    "I'm sorry to have to inform you that your message could not\r\n"
    "be delivered to one or more recipients. It's attached below.\r\n";

static const char notice_delayed[] =
    "####################################################################"
    "\r\n"
    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #"
    "\r\n"
    "####################################################################"
    "\r\n";

static const char notice_help[] =
    "For further assistance, please send mail to postmaster.\r\n"
    "\r\n"
    "If you do so, please include this problem report. You can\r\n"
    "delete your own text from the attached returned message.\r\n"
    "\r\n"
    "                   The mail system\r\n"
    "\r\n";

static void
add_human_part(struct sbuf *b, const struct config *cfg,
    const struct spool_env *env, enum bounce_kind kind,
    const struct bounce_rcpt *r, size_t n)
{
	long long life = cfg_int(cfg, P_MAXIMAL_QUEUE_LIFETIME);
	double age = (double)(clock_wall_us() - env->arrival_us) / 3.6e9;

	sb_printf(b,
	    "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "This is the mail system at host %s.\r\n\r\n",
	    cfg_myhostname(cfg));
	if (kind == BOUNCE_FAILED)
		sb_add(b, notice_failed, strlen(notice_failed));
	else {
		sb_add(b, notice_delayed, strlen(notice_delayed));
		sb_printf(b,
		    "\r\nYour message could not be delivered for %.1f "
		    "hour(s).\r\nIt will be retried until it is %.1f day(s) "
		    "old.\r\n",
		    age, (double)life / 86400.0);
	}
	sb_add(b, "\r\n", 2);
	sb_add(b, notice_help, strlen(notice_help));
	for (size_t i = 0; i < n; i++) {
		char *first = xasprintf("<%s>: ", r[i].addr);
		sb_wrap(b, first, r[i].reason);
		free(first);
		sb_add(b, "\r\n", 2);
	}
}

static void
add_status_part(struct sbuf *b, const struct config *cfg,
    const struct spool_env *env, enum bounce_kind kind,
    const struct bounce_rcpt *r, size_t n)
{
	long long life = cfg_int(cfg, P_MAXIMAL_QUEUE_LIFETIME);
	char date[64];

	/* RFC 3464 2.2: the per-message fields. */
	rfc5322_date(env->arrival_us, date, sizeof(date));
	sb_printf(b,
	    "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; %s\r\n"
	    "X-Mailseal-Queue-ID: %s\r\n"
	    "X-Mailseal-Sender: rfc822; %s\r\n"
	    "Arrival-Date: %s\r\n",
	    cfg_myhostname(cfg), env->qid, env->sender, date);
	/* RFC 3464 2.3: one block per recipient. */
	for (size_t i = 0; i < n; i++) {
		sb_printf(b, "\r\nFinal-Recipient: rfc822; %s\r\n", r[i].addr);
		if (r[i].orcpt != NULL)
			sb_printf(b, "Original-Recipient: rfc822; %s\r\n",
			    r[i].orcpt);
		sb_printf(b, "Action: %s\r\nStatus: %s\r\n",
		    kind == BOUNCE_FAILED ? "failed" : "delayed", r[i].dsn);
		if (r[i].remote_mta != NULL)
			sb_printf(
			    b, "Remote-MTA: dns; %s\r\n", r[i].remote_mta);
		if (r[i].diag != NULL)
			sb_wrap(b, "Diagnostic-Code: smtp; ", r[i].diag);
		else
			sb_wrap(
			    b, "Diagnostic-Code: X-Mailseal; ", r[i].reason);
		if (kind == BOUNCE_DELAYED) {
			rfc5322_date(env->arrival_us + (uint64_t)life * 1000000,
			    date, sizeof(date));
			sb_printf(b, "Will-Retry-Until: %s\r\n", date);
		}
	}
}

char *
bounce_compose(const struct config *cfg, const struct spool_env *env, int fd,
    const char *new_qid, enum bounce_kind kind, const struct bounce_rcpt *r,
    size_t n, size_t *len_r, bool *eightbit_r)
{
	const char *host = cfg_myhostname(cfg);
	struct sbuf b = { 0 }, hdrs = { 0 };
	uint64_t now = clock_wall_us();
	char date[64], stamp[32], boundary[200];
	time_t t = (time_t)(now / 1000000);
	struct tm tm;

	add_original_headers(&hdrs, env, fd);
	*eightbit_r = mime8_has_8bit(hdrs.p, hdrs.len);
	rfc5322_date(now, date, sizeof(date));
	localtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	snprintf(boundary, sizeof(boundary), "%s.%lld/%s", new_qid,
	    (long long)t, host);
	sb_printf(&b,
	    "Date: %s\r\n"
	    "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n"
	    "Subject: %s\r\n"
	    "To: <%s>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "Message-ID: <%s.%s@%s>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n%s",
	    date, host,
	    kind == BOUNCE_FAILED ? "Undelivered Mail Returned to Sender"
				  : "Delayed Mail (still being retried)",
	    env->sender, stamp, new_qid, host, boundary,
	    *eightbit_r ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	sb_printf(&b,
	    "\r\nThis is a MIME-encapsulated message.\r\n\r\n--%s\r\n",
	    boundary);
	add_human_part(&b, cfg, env, kind, r, n);
	sb_printf(&b, "--%s\r\n", boundary);
	add_status_part(&b, cfg, env, kind, r, n);
	sb_printf(&b,
	    "\r\n--%s\r\n"
	    "Content-Description: %s\r\n"
	    "Content-Type: text/rfc822-headers\r\n%s\r\n",
	    boundary,
	    kind == BOUNCE_FAILED ? "Undelivered Message Headers"
				  : "Delayed Message Headers",
	    /* Raw 8-bit header text (RFC 6152): the part says so. */
	    *eightbit_r ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	if (hdrs.len > 0)
		sb_add(&b, hdrs.p, hdrs.len);
	free(hdrs.p);
	sb_printf(&b, "\r\n--%s--\r\n", boundary);
	*len_r = b.len;
	return b.p;
}

int
bounce_send(struct spool *sp, struct committer *c, const struct config *cfg,
    const struct spool_env *orig, int fd, enum bounce_kind kind,
    const struct bounce_rcpt *r, size_t n, bounce_done_fn done, void *arg)
{
	struct spool_writer *w;
	struct spool_env env;
	size_t len;
	bool eight;
	char *text;
	int rc;

	if ((w = inject_begin(sp)) == NULL)
		return -1;
	text = bounce_compose(cfg, orig, fd, w->qid, kind, r, n, &len, &eight);
	spool_writer_write(w, text, len);
	free(text);
	memset(&env, 0, sizeof(env));
	memcpy(env.parent, orig->qid, sizeof(env.parent));
	env.stage = SPOOL_FILTERED;
	env.flags = SPOOL_F_BOUNCE | (eight ? SPOOL_F_8BIT : 0);
	env.arrival_us = clock_wall_us();
	env.sender = "";
	env.client_name = "localhost";
	env.client_addr = "127.0.0.1";
	env.proto = "bounce";
	spool_env_add_rcpt(&env, orig->sender, NULL, 0);
	rc = inject_commit(c, w, &env, done, arg);
	free(env.rcpt[0].addr);
	free(env.rcpt);
	return rc;
}
