/*
 * The queue commands of the control socket (the seed guide's "Queues"
 * page and its "send email" tool), answered by the running queue
 * manager so that it stays consistent with the files:
 *
 *   {"cmd": "queue.hold" | "queue.release" | "queue.delete" |
 *           "queue.requeue" | "queue.flush", "ids": [ID...] | "all": true}
 *     -> {"ok": true, "done": [ID...], "missing": [ID...]}
 *   {"cmd": "send-test", "from": A, "to": B, "subject": S}
 *     -> {"ok": true, "queue_id": ID} once the message is durable
 *
 * A message being filtered or delivered is held, deleted or requeued
 * when its round ends; deliveries in progress are not cut off.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/control.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/htab.h"
#include "queue/inject.h"
#include "queue/qmgr_int.h"

/*
 * Busy: at the filter, active, or a volatile output (its parent waits for
 * it); a request waits for the end of its round.
 */
static bool
qmsg_busy(const struct qmsg *m)
{
	return m->state == QM_FILTER || m->state == QM_ACTIVE ||
	    m->settle != NULL;
}

static bool
op_hold(struct qmgr *qm, struct qmsg *m)
{
	if (m->state == QM_HOLD)
		return true;
	if (qmsg_busy(m)) {
		m->want_hold = true;
		return true;
	}
	/* Waiting or ready. */
	if (m->state == QM_READY)
		TAILQ_REMOVE(&qm->ready, m, ready_link);
	evtimer_del(m->timer);
	m->state = QM_WAIT;
	if (spool_move(qm->spool, m->qid, SPOOL_QUEUE, SPOOL_HOLD) == -1) {
		msg_warn("%s: cannot move to hold: %m", m->qid);
		qmgr_make_ready(qm, m);
		return false;
	}
	m->state = QM_HOLD;
	msg_info("%s: placed on hold", m->qid);
	return true;
}

static bool
op_release(struct qmgr *qm, struct qmsg *m)
{
	if (m->state != QM_HOLD) {
		bool was = m->want_hold;
		m->want_hold = false;
		return was;
	}
	if (spool_move(qm->spool, m->qid, SPOOL_HOLD, SPOOL_QUEUE) == -1) {
		msg_warn("%s: cannot move from hold: %m", m->qid);
		return false;
	}
	msg_info("%s: released from hold", m->qid);
	m->state = QM_WAIT;
	/* Held before the filter or after: activation tells them apart. */
	qmgr_make_ready(qm, m);
	return true;
}

static bool
op_delete(struct qmgr *qm, struct qmsg *m)
{
	enum spool_dir dir = m->state == QM_HOLD ? SPOOL_HOLD : SPOOL_QUEUE;

	if (qmsg_busy(m)) {
		m->want_delete = true;
		return true;
	}
	if (spool_remove(qm->spool, dir, m->qid) == -1 && errno != ENOENT) {
		msg_warn("%s: cannot remove: %m", m->qid);
		return false;
	}
	msg_info("%s: removed", m->qid);
	qmgr_forget(qm, m);
	return true;
}

static bool
op_requeue(struct qmgr *qm, struct qmsg *m)
{
	if (qmsg_busy(m)) {
		m->want_requeue = true;
		return true;
	}
	if (m->state == QM_READY) {
		TAILQ_REMOVE(&qm->ready, m, ready_link);
		m->state = QM_WAIT;
	}
	evtimer_del(m->timer);
	return qmgr_requeue(qm, m) == 0;
}

static bool
op_flush(struct qmgr *qm, struct qmsg *m)
{
	if (m->state == QM_HOLD)
		return false;
	if (m->state == QM_WAIT)
		qmgr_make_ready(qm, m);
	return true;
}

struct qop {
	const char *cmd;
	bool (*fn)(struct qmgr *, struct qmsg *);
	/* Whether --all takes a message in this state. */
	bool (*all)(const struct qmsg *);
};

static bool
all_not_held(const struct qmsg *m)
{
	return m->state != QM_HOLD;
}

static bool
all_held(const struct qmsg *m)
{
	return m->state == QM_HOLD;
}

static bool
all_any(const struct qmsg *m)
{
	return true;
}

static bool
all_waiting(const struct qmsg *m)
{
	return m->state == QM_WAIT;
}

static const struct qop qops[] = {
	{ "queue.hold", op_hold, all_not_held },
	{ "queue.release", op_release, all_held },
	{ "queue.delete", op_delete, all_any },
	{ "queue.requeue", op_requeue, all_any },
	{ "queue.flush", op_flush, all_waiting },
};

static int
qid_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The queue IDs a request names: "ids", or every message for "all". */
static char **
request_ids(struct qmgr *qm, json_t *req, const struct qop *op, size_t *n_r)
{
	json_t *ids = json_object_get(req, "ids"), *v;
	char **out;
	size_t n = 0, i;

	if (json_is_true(json_object_get(req, "all"))) {
		void **all = htab_values(qm->msgs, &n);
		size_t k = 0;
		out = xcalloc(n + 1, sizeof(*out));
		for (i = 0; i < n; i++)
			if (op->all(all[i]))
				out[k++] =
				    xstrdup(((struct qmsg *)all[i])->qid);
		free(all);
		qsort(out, k, sizeof(*out), qid_cmp);
		*n_r = k;
		return out;
	}
	out = xcalloc(json_array_size(ids) + 1, sizeof(*out));
	json_array_foreach(ids, i, v)
	{
		if (json_is_string(v))
			out[n++] = xstrdup(json_string_value(v));
	}
	*n_r = n;
	return out;
}

static void
ctl_queue_op(struct control_req *r, json_t *req, void *ctx)
{
	struct qmgr *qm = ctx;
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	const struct qop *op = NULL;
	json_t *done = json_array(), *missing = json_array();
	char **ids;
	size_t n;

	for (size_t i = 0; i < nitems(qops); i++)
		if (strcmp(qops[i].cmd, cmd) == 0)
			op = &qops[i];
	if (op == NULL)
		msg_panic("ctl_queue_op: %s", cmd);
	if (!json_is_true(json_object_get(req, "all")) &&
	    !json_is_array(json_object_get(req, "ids"))) {
		json_decref(done);
		json_decref(missing);
		control_reply_error(r, "%s: give queue IDs or all", cmd);
		return;
	}
	ids = request_ids(qm, req, op, &n);
	/* Mail sent on its way now must not wait for a destination's pause. */
	if (op->fn == op_flush || op->fn == op_release || op->fn == op_requeue)
		deliver_flush(qm);
	for (size_t i = 0; i < n; i++) {
		struct qmsg *m =
		    spool_qid_valid(ids[i]) ? qmgr_lookup(qm, ids[i]) : NULL;
		json_array_append_new(
		    m != NULL && op->fn(qm, m) ? done : missing,
		    json_string(ids[i]));
		free(ids[i]);
	}
	free(ids);
	if (op->fn == op_flush)
		msg_info("flush: %zu message%s", json_array_size(done),
		    json_array_size(done) == 1 ? "" : "s");
	control_reply_ok(
	    r, json_pack("{s:o,s:o}", "done", done, "missing", missing));
}

/* send-test: a message made here, through the normal path. */

struct sendtest {
	struct qmgr *qm;
	struct control_req *r;
	char *from;
	uint64_t size;
};

static bool
header_text_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* "<addr>" parsed as SMTP would; empty is the null sender. */
static int
check_addr(const char *s, bool empty_ok, const char **error_r)
{
	struct mailaddr a;
	const char *end;
	char *path;
	int rc = 0;

	if (!header_text_ok(s) || strlen(s) > 512) {
		*error_r = "not an address";
		return -1;
	}
	if (*s == '\0')
		return empty_ok ? 0 : -1;
	path = xasprintf("<%s>", s);
	if (addr_parse_path(path, &end, &a, error_r) == -1)
		rc = -1;
	else {
		if (*end != '\0' || a.addr[0] == '\0' || a.domain[0] == '\0') {
			*error_r = "not an address with a domain";
			rc = -1;
		}
		addr_free(&a);
	}
	free(path);
	return rc;
}

static void
sendtest_done_cb(int error, const char *qid, void *arg)
{
	struct sendtest *st = arg;
	struct qmgr *qm = st->qm;

	qm->pending_ops--;
	if (error != 0) {
		msg_warn("%s: cannot commit the test message: %s", qid,
		    strerror(error));
		control_reply_error(st->r, "cannot queue the test message: %s",
		    strerror(error));
	} else {
		msg_info("%s: from=<%s>, size=%llu, nrcpt=1 (queue active)",
		    qid, st->from, (unsigned long long)st->size);
		control_reply_ok(st->r, json_pack("{s:s}", "queue_id", qid));
		qmgr_enqueue(qm, qid, SPOOL_RECEIVED);
	}
	free(st->from);
	free(st);
}

static char *
sendtest_text(struct qmgr *qm, const char *qid, const char *from,
    const char *to, const char *subject)
{
	const char *host = cfg_myhostname(qm->cfg);
	char date[64], stamp[32];
	time_t t = time(NULL);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	return xasprintf("Received: by %s (mailseal) with local (send-test) "
			 "id %s;\r\n\t%s\r\n"
			 "From: <%s>\r\n"
			 "To: <%s>\r\n"
			 "Subject: %s\r\n"
			 "Date: %s\r\n"
			 "Message-ID: <%s.%s@%s>\r\n"
			 "MIME-Version: 1.0\r\n"
			 "Content-Type: text/plain; charset=us-ascii\r\n"
			 "Content-Transfer-Encoding: 7bit\r\n"
			 "\r\n"
			 "This is a test message from the mail gateway %s,\r\n"
			 "sent with \"mailsealctl send-test\" on %s.\r\n",
	    host, qid, date, from[0] != '\0' ? from : "MAILER-DAEMON", to,
	    subject, date, stamp, qid, host, host, date);
}

static void
ctl_send_test(struct control_req *r, json_t *req, void *ctx)
{
	struct qmgr *qm = ctx;
	const char *from = json_string_value(json_object_get(req, "from"));
	const char *to = json_string_value(json_object_get(req, "to"));
	const char *subject =
	    json_string_value(json_object_get(req, "subject"));
	struct spool_writer *w;
	struct spool_env env;
	struct sendtest *st;
	const char *why = "";
	char *text;

	if (subject == NULL || *subject == '\0')
		subject = "mailseal test message";
	if (from == NULL || check_addr(from, true, &why) == -1) {
		control_reply_error(r, "bad --from address: %s", why);
		return;
	}
	if (to == NULL || check_addr(to, false, &why) == -1) {
		control_reply_error(r, "bad --to address: %s", why);
		return;
	}
	if (!header_text_ok(subject) || strlen(subject) > 900) {
		control_reply_error(r, "the subject must be printable ASCII");
		return;
	}
	if ((w = inject_begin(qm->spool)) == NULL) {
		control_reply_error(
		    r, "cannot create a queue file: %s", strerror(errno));
		return;
	}
	msg_info("%s: client=localhost[127.0.0.1], send-test", w->qid);
	text = sendtest_text(qm, w->qid, from, to, subject);
	spool_writer_write(w, text, strlen(text));
	st = xcalloc(1, sizeof(*st));
	st->qm = qm;
	st->r = r;
	st->from = xstrdup(from);
	st->size = strlen(text);
	free(text);
	memset(&env, 0, sizeof(env));
	env.stage = SPOOL_RECEIVED;
	env.flags = SPOOL_F_TEST;
	env.arrival_us = clock_wall_us();
	env.sender = st->from;
	env.client_name = "localhost";
	env.client_addr = "127.0.0.1";
	env.helo = "localhost";
	env.proto = "send-test";
	spool_env_add_rcpt(&env, to, NULL, 0);
	if (inject_commit(qm->committer, w, &env, sendtest_done_cb, st) == -1) {
		control_reply_error(
		    r, "cannot write the queue file: %s", strerror(errno));
		free(st->from);
		free(st);
	} else
		qm->pending_ops++;
	free(env.rcpt[0].addr);
	free(env.rcpt);
}

void
qmgr_ctl_register(struct qmgr *qm, struct control *ctl)
{
	for (size_t i = 0; i < nitems(qops); i++)
		control_register(ctl, qops[i].cmd, ctl_queue_op, qm);
	control_register(ctl, "send-test", ctl_send_test, qm);
}
