/*
 * The queue manager: messages, their schedule, the filter stage, and the
 * end of each delivery round (bounces, delay warnings, back-off).
 */
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/bounce.h"
#include "queue/commit.h"
#include "queue/filter.h"
#include "queue/htab.h"
#include "queue/qmgr_int.h"
#include "smtp/sasl_client.h"
#include "smtp/smtp_client.h"

static void qmsg_timer_cb(evutil_socket_t, short, void *);
static bool output_orphaned(struct qmgr *, const struct spool_env *);
static void round_warn(struct qmgr *, struct qmsg *);
static void round_end(struct qmgr *, struct qmsg *);
static void round_rest(struct qmgr *, struct qmsg *);
static void volatile_commit(struct qmgr *, struct qmsg *);

uint64_t
qmgr_backoff(unsigned attempts, uint64_t min, uint64_t max)
{
	uint64_t d = min;

	for (unsigned i = 1; i < attempts && d < max; i++)
		d *= 2;
	return d > max ? max : d;
}

/* Messages. */

struct qmsg *
qmgr_lookup(struct qmgr *qm, const char *qid)
{
	return htab_get(qm->msgs, qid);
}

struct qmsg *
qmgr_add(struct qmgr *qm, const char *qid, enum qm_state state)
{
	struct qmsg *m = xcalloc(1, sizeof(*m));

	m->qm = qm;
	strlcpy_ms(m->qid, qid, sizeof(m->qid));
	m->state = state;
	m->fd = -1;
	m->timer = evtimer_new(qm->base, qmsg_timer_cb, m);
	htab_put(qm->msgs, m->qid, m);
	return m;
}

static void
qmsg_release(struct qmsg *m)
{
	if (m->fd != -1) {
		close(m->fd);
		m->fd = -1;
	}
	if (m->rr != NULL && m->env != NULL)
		for (size_t i = 0; i < m->env->nrcpt; i++) {
			free(m->rr[i].remote_mta);
			free(m->rr[i].diag);
		}
	free(m->rr);
	m->rr = NULL;
	spool_env_free(&m->env);
}

static void
qmsg_free(void *p)
{
	struct qmsg *m = p;

	qmsg_release(m);
	event_free(m->timer);
	free(m);
}

void
qmgr_forget(struct qmgr *qm, struct qmsg *m)
{
	if (m->state == QM_READY)
		TAILQ_REMOVE(&qm->ready, m, ready_link);
	htab_del(qm->msgs, m->qid);
	qmsg_free(m);
}

/* Tells the filter once what became of a volatile output. */
static void
qmsg_settle(struct qmsg *m, int error)
{
	qmgr_settle_fn settle = m->settle;

	if (settle == NULL)
		return;
	m->settle = NULL;
	settle(m->settle_arg, m->qid, error);
}

static void
qmsg_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qmsg *m = arg;

	qmgr_make_ready(m->qm, m);
}

void
qmgr_make_ready(struct qmgr *qm, struct qmsg *m)
{
	evtimer_del(m->timer);
	if (m->state == QM_READY)
		return;
	m->state = QM_READY;
	TAILQ_INSERT_TAIL(&qm->ready, m, ready_link);
	qmgr_kick(qm);
}

static void
qmsg_schedule(struct qmgr *qm, struct qmsg *m, uint64_t when_us)
{
	uint64_t now = clock_wall_us(), d;
	struct timeval tv;

	m->next_try_us = when_us;
	if (when_us <= now) {
		qmgr_make_ready(qm, m);
		return;
	}
	m->state = QM_WAIT;
	d = when_us - now;
	tv.tv_sec = (time_t)(d / 1000000);
	tv.tv_usec = (suseconds_t)(d % 1000000);
	evtimer_add(m->timer, &tv);
}

/* Moves a message file between queue/ and hold/. */
static int
qmsg_move(
    struct qmgr *qm, struct qmsg *m, enum spool_dir from, enum spool_dir to)
{
	if (spool_move(qm->spool, m->qid, from, to) == -1) {
		msg_warn("%s: cannot move from %s to %s: %m", m->qid,
		    spool_dir_names[from], spool_dir_names[to]);
		return -1;
	}
	return 0;
}

static void
qmsg_hold(struct qmgr *qm, struct qmsg *m)
{
	m->want_hold = false;
	if (qmsg_move(qm, m, SPOOL_QUEUE, SPOOL_HOLD) == -1) {
		qmsg_schedule(qm, m, m->next_try_us);
		return;
	}
	m->state = QM_HOLD;
	msg_info("%s: placed on hold", m->qid);
}

static void
qmsg_remove(struct qmgr *qm, struct qmsg *m, enum spool_dir dir)
{
	if (spool_retire(qm->spool, dir, m->qid) == -1 && errno != ENOENT)
		msg_warn("%s: cannot remove: %m", m->qid);
	else
		msg_info("%s: removed", m->qid);
	qmsg_settle(m, 0);
	qmgr_forget(qm, m);
}

/* The filter stage. */

static void
filter_done_cb(
    void *arg, const char *qid, enum filter_status st, const char *reason)
{
	struct qmgr *qm = arg;
	struct qmsg *m = qmgr_lookup(qm, qid);
	uint64_t min = (uint64_t)cfg_int(qm->cfg, P_MINIMAL_BACKOFF_TIME);

	if (m == NULL || m->state != QM_FILTER)
		msg_panic(
		    "%s: filter result for a message not at the filter", qid);
	qm->nfilter--;
	if (st == FILTER_GONE) {
		qmgr_forget(qm, m);
		return;
	}
	if (m->want_delete) {
		qmsg_remove(qm, m, SPOOL_QUEUE);
		return;
	}
	if (st == FILTER_DEFER) {
		msg_info("%s: deferred by the filter: %s", qid,
		    reason != NULL ? reason : "temporary failure");
		qmsg_schedule(qm, m, clock_wall_us() + min * 1000000);
		return;
	}
	if (m->want_requeue) {
		m->want_requeue = false;
		qmgr_to_filter(qm, m);
		return;
	}
	if (m->want_hold) {
		qmsg_hold(qm, m);
		return;
	}
	qmgr_make_ready(qm, m);
}

void
qmgr_to_filter(struct qmgr *qm, struct qmsg *m)
{
	evtimer_del(m->timer);
	if (m->state == QM_READY)
		TAILQ_REMOVE(&qm->ready, m, ready_link);
	m->state = QM_FILTER;
	qm->nfilter++;
	qm->filter->submit(qm->filter_ctx, m->qid, filter_done_cb, qm);
}

/* Delivery rounds. */

static void
qmsg_activate(struct qmgr *qm, struct qmsg *m)
{
	uint64_t life = (uint64_t)cfg_int(qm->cfg, P_MAXIMAL_QUEUE_LIFETIME);
	struct spool_env *env;
	const char *why;
	int fd;

	if (spool_read(qm->spool, SPOOL_QUEUE, m->qid, true, &env, &fd, &why) ==
	    -1) {
		int e = errno;

		if (e == ENOENT)
			msg_warn("%s: the queue file is gone", m->qid);
		else if (e == EBADMSG)
			(void)spool_quarantine(
			    qm->spool, SPOOL_QUEUE, m->qid, why);
		else {
			/* Out of descriptors, an I/O error: try again later. */
			msg_warn(
			    "%s: cannot read the queue file: %s", m->qid, why);
			qmsg_schedule(qm, m,
			    clock_wall_us() +
				(uint64_t)cfg_int(
				    qm->cfg, P_MINIMAL_BACKOFF_TIME) *
				    1000000);
			return;
		}
		/* A volatile output lost: its parent is transformed again. */
		qmsg_settle(m, e);
		qmgr_forget(qm, m);
		return;
	}
	if (env->stage == SPOOL_RECEIVED) {
		close(fd);
		spool_env_free(&env);
		qmgr_to_filter(qm, m);
		return;
	}
	if (m->settle == NULL && output_orphaned(qm, env)) {
		/* Only the start-up scan may decide which one goes. */
		msg_warn("%s: not delivered: its parent %s is still queued",
		    m->qid, env->parent);
		close(fd);
		spool_env_free(&env);
		qmsg_schedule(qm, m,
		    clock_wall_us() +
			(uint64_t)cfg_int(qm->cfg, P_MINIMAL_BACKOFF_TIME) *
			    1000000);
		return;
	}
	m->env = env;
	m->fd = fd;
	m->state = QM_ACTIVE;
	m->active_us = clock_wall_us();
	m->expired = m->active_us - env->arrival_us >= life * 1000000;
	m->returned = false;
	m->rr = xcalloc(env->nrcpt, sizeof(*m->rr));
	qm->nactive++;
	/* Asked for while it was volatile: first settled, not delivered. */
	if (m->settle != NULL &&
	    (m->want_delete || m->want_hold || m->want_requeue)) {
		round_end(qm, m);
		return;
	}
	deliver_message(qm, m);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *qm = arg;
	unsigned limit =
	    (unsigned)cfg_int(qm->cfg, P_QMGR_MESSAGE_ACTIVE_LIMIT);
	struct qmsg *m;

	/* An active message holds its queue file open: leave room. */
	if (limit > qm->fd_cap)
		limit = qm->fd_cap;

	while (!qm->stopping && qm->nactive < limit &&
	    (m = TAILQ_FIRST(&qm->ready)) != NULL) {
		TAILQ_REMOVE(&qm->ready, m, ready_link);
		m->state = QM_WAIT;
		qmsg_activate(qm, m);
	}
}

void
qmgr_kick(struct qmgr *qm)
{
	struct timeval now = { 0, 0 };

	if (!evtimer_pending(qm->kick, NULL))
		evtimer_add(qm->kick, &now);
}

/* Recipients that bounced in this round and are not yet returned. */
static size_t
round_bounced(struct qmsg *m, struct bounce_rcpt **out_r, bool pending_only)
{
	struct spool_env *env = m->env;
	struct bounce_rcpt *b = xcalloc(env->nrcpt, sizeof(*b));
	size_t n = 0;

	for (size_t i = 0; i < env->nrcpt; i++) {
		struct spool_rcpt *r = &env->rcpt[i];
		if (r->state != RCPT_PENDING)
			continue;
		if (!pending_only && m->rr[i].outcome != RR_BOUNCE)
			continue;
		if (pending_only && m->rr[i].outcome == RR_BOUNCE)
			continue;
		b[n].idx = i;
		b[n].addr = r->addr;
		b[n].orcpt = r->orcpt;
		b[n].dsn = r->dsn != NULL ? r->dsn : "4.0.0";
		b[n].reason = r->reason != NULL ? r->reason : "unknown reason";
		b[n].remote_mta = m->rr[i].remote_mta;
		b[n].diag = m->rr[i].diag;
		n++;
	}
	*out_r = b;
	return n;
}

struct round_op {
	struct qmgr *qm;
	char qid[QID_LEN + 1];
	struct bounce_rcpt *b;
	size_t n;
};

static void
mark_bounced(struct qmsg *m, const struct bounce_rcpt *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct spool_rcpt *r = &m->env->rcpt[b[i].idx];
		char *dsn = xstrdup(r->dsn != NULL ? r->dsn : "5.0.0");
		char *why = xstrdup(r->reason != NULL ? r->reason : "");
		if (spool_mark_rcpt(m->fd, m->env, b[i].idx, RCPT_BOUNCED, dsn,
			why, i + 1 == n) == -1)
			msg_warn(
			    "%s: cannot update the queue file: %m", m->qid);
		free(dsn);
		free(why);
	}
}

static void
bounce_done_cb(int error, const char *nqid, void *arg)
{
	struct round_op *op = arg;
	struct qmgr *qm = op->qm;
	struct qmsg *m = qmgr_lookup(qm, op->qid);

	qm->pending_ops--;
	if (m == NULL)
		msg_panic("%s: bounce for a message that is gone", op->qid);
	if (error != 0)
		msg_warn("%s: cannot write the non-delivery notification: %s; "
			 "the recipients stay queued",
		    m->qid, strerror(error));
	else {
		msg_info(
		    "%s: sender non-delivery notification: %s", m->qid, nqid);
		mark_bounced(m, op->b, op->n);
		qmgr_enqueue(qm, nqid, SPOOL_FILTERED);
	}
	free(op->b);
	free(op);
	round_warn(qm, m);
}

/* The first step at the end of a round: return what bounced. */
static void
round_bounce(struct qmgr *qm, struct qmsg *m)
{
	struct bounce_rcpt *b;
	struct round_op *op;
	size_t n;

	if (m->want_delete || (n = round_bounced(m, &b, false)) == 0) {
		if (!m->want_delete)
			free(b);
		round_warn(qm, m);
		return;
	}
	/* A bounce of a bounce goes nowhere: RFC 3464 2, RFC 5321 6.1. */
	if (m->env->sender[0] == '\0' || (m->env->flags & SPOOL_F_BOUNCE)) {
		msg_info("%s: undeliverable notification discarded: the "
			 "message has a null sender (a bounce of a bounce)",
		    m->qid);
		mark_bounced(m, b, n);
		free(b);
		round_warn(qm, m);
		return;
	}
	op = xcalloc(1, sizeof(*op));
	op->qm = qm;
	strlcpy_ms(op->qid, m->qid, sizeof(op->qid));
	op->b = b;
	op->n = n;
	if (bounce_send(qm->spool, qm->committer, qm->cfg, m->env, m->fd,
		BOUNCE_FAILED, b, n, bounce_done_cb, op) == -1) {
		msg_warn("%s: cannot write the non-delivery notification: %m; "
			 "the recipients stay queued",
		    m->qid);
		free(b);
		free(op);
		round_warn(qm, m);
		return;
	}
	qm->pending_ops++;
}

static void
warn_done_cb(int error, const char *nqid, void *arg)
{
	struct round_op *op = arg;
	struct qmgr *qm = op->qm;
	struct qmsg *m = qmgr_lookup(qm, op->qid);

	qm->pending_ops--;
	if (m == NULL)
		msg_panic("%s: warning for a message that is gone", op->qid);
	if (error != 0)
		msg_warn("%s: cannot write the delay notification: %s", m->qid,
		    strerror(error));
	else {
		msg_info("%s: sender delay notification: %s", m->qid, nqid);
		if (spool_mark_warned(m->fd, m->env) == -1)
			msg_warn(
			    "%s: cannot update the queue file: %m", m->qid);
		qmgr_enqueue(qm, nqid, SPOOL_FILTERED);
	}
	free(op->b);
	free(op);
	round_end(qm, m);
}

/* The second step: warn the sender once that delivery is delayed. */
static void
round_warn(struct qmgr *qm, struct qmsg *m)
{
	uint64_t dwt = (uint64_t)cfg_int(qm->cfg, P_DELAY_WARNING_TIME);
	uint64_t age = clock_wall_us() - m->env->arrival_us;
	struct round_op *op;
	struct bounce_rcpt *b;
	size_t n;

	if (dwt == 0 || m->env->warned || m->want_delete ||
	    age < dwt * 1000000 || m->env->sender[0] == '\0' ||
	    (m->env->flags & SPOOL_F_BOUNCE) ||
	    (n = round_bounced(m, &b, true)) == 0) {
		round_end(qm, m);
		return;
	}
	op = xcalloc(1, sizeof(*op));
	op->qm = qm;
	strlcpy_ms(op->qid, m->qid, sizeof(op->qid));
	op->b = b;
	op->n = n;
	if (bounce_send(qm->spool, qm->committer, qm->cfg, m->env, m->fd,
		BOUNCE_DELAYED, b, n, warn_done_cb, op) == -1) {
		msg_warn("%s: cannot write the delay notification: %m", m->qid);
		free(b);
		free(op);
		round_end(qm, m);
		return;
	}
	qm->pending_ops++;
}

/* Marks a message to go through the filter again from the start. */
static int
qmsg_rewind(struct qmgr *qm, const char *qid, enum spool_dir dir)
{
	struct spool_env *env;
	const char *why;
	int fd, rc = 0;

	if (spool_read(qm->spool, dir, qid, true, &env, &fd, &why) == -1) {
		msg_warn("%s: cannot requeue: %s", qid, why);
		return -1;
	}
	if (spool_mark_stage(fd, env, SPOOL_RECEIVED, false) == -1 ||
	    spool_mark_schedule(fd, env, 0, 0) == -1 || fdatasync(fd) == -1) {
		msg_warn("%s: cannot requeue: %m", qid);
		rc = -1;
	}
	close(fd);
	spool_env_free(&env);
	if (rc == 0 && dir == SPOOL_HOLD &&
	    spool_move(qm->spool, qid, SPOOL_HOLD, SPOOL_QUEUE) == -1) {
		msg_warn("%s: cannot move from hold to queue: %m", qid);
		rc = -1;
	}
	if (rc == 0)
		msg_info("%s: requeued", qid);
	return rc;
}

/* Requeues an idle message (in queue/ or hold/). */
int
qmgr_requeue(struct qmgr *qm, struct qmsg *m)
{
	enum spool_dir dir = m->state == QM_HOLD ? SPOOL_HOLD : SPOOL_QUEUE;

	if (qmsg_rewind(qm, m->qid, dir) == -1)
		return -1;
	qmgr_to_filter(qm, m);
	return 0;
}

/* The last step: remove the file, or schedule the next try. */
static void
round_end(struct qmgr *qm, struct qmsg *m)
{
	uint64_t min = (uint64_t)cfg_int(qm->cfg, P_MINIMAL_BACKOFF_TIME);
	uint64_t max = (uint64_t)cfg_int(qm->cfg, P_MAXIMAL_BACKOFF_TIME);
	uint64_t next;
	unsigned attempts;
	bool tried = false;

	qm->nactive--;
	m->finishing = false;
	qmgr_kick(qm);
	if (m->want_delete) {
		qmsg_remove(qm, m, SPOOL_QUEUE);
		return;
	}
	if (m->returned)
		msg_info("%s: from=<%s>, status=expired, returned to sender",
		    m->qid, m->env->sender);
	if (!spool_env_pending(m->env)) {
		qmsg_remove(qm, m, SPOOL_QUEUE);
		return;
	}
	/*
	 * A pending recipient that was tried counts as an attempt, also one
	 * whose bounce could not be written (it is tried again later).
	 */
	for (size_t i = 0; i < m->env->nrcpt; i++)
		tried = tried ||
		    (m->env->rcpt[i].state == RCPT_PENDING &&
			(m->rr[i].outcome == RR_DEFER ||
			    m->rr[i].outcome == RR_BOUNCE));
	attempts = m->env->attempts + (tried ? 1 : 0);
	next = clock_wall_us() +
	    (tried ? qmgr_backoff(attempts, min, max) * 1000000 : 0);
	if (spool_mark_schedule(m->fd, m->env, attempts, next) == -1)
		msg_warn("%s: cannot update the queue file: %m", m->qid);
	m->next_try_us = next;
	if (m->settle != NULL) {
		volatile_commit(qm, m);
		return;
	}
	round_rest(qm, m);
}

/*
 * A volatile output with recipients still pending is made durable
 * before its parent goes; the round ends when that is done.
 */
static void
volatile_commit_cb(int error, struct spool_writer *w, void *arg)
{
	struct qmsg *m = arg;
	struct qmgr *qm = m->qm;

	qm->pending_ops--;
	if (error != 0) {
		msg_warn("%s: cannot make the queue file durable: %s; "
			 "removed, its parent %s is transformed again",
		    m->qid, strerror(error),
		    m->env->parent[0] != '\0' ? m->env->parent : "?");
		(void)spool_remove(qm->spool, SPOOL_QUEUE, m->qid);
		qmsg_settle(m, error);
		qmgr_forget(qm, m);
		return;
	}
	qmsg_settle(m, 0);
	round_rest(qm, m);
}

static void
volatile_commit(struct qmgr *qm, struct qmsg *m)
{
	struct spool_writer *w;

	qm->pending_ops++;
	if (spool_writer_adopt(qm->spool, m->qid, &w) == -1) {
		volatile_commit_cb(errno != 0 ? errno : EIO, NULL, m);
		return;
	}
	committer_submit(qm->committer, w, volatile_commit_cb, m);
}

/* The rest of round_end, for a message with recipients pending. */
static void
round_rest(struct qmgr *qm, struct qmsg *m)
{
	qmsg_release(m);
	m->state = QM_WAIT;
	if (m->want_delete) {
		/* Asked for while the file was made durable. */
		qmsg_remove(qm, m, SPOOL_QUEUE);
		return;
	}
	if (m->want_requeue) {
		m->want_requeue = false;
		if (qmgr_requeue(qm, m) == 0)
			return;
	}
	if (m->want_hold) {
		qmsg_hold(qm, m);
		return;
	}
	qmsg_schedule(qm, m, m->next_try_us);
}

void
qmgr_message_done(struct qmgr *qm, struct qmsg *m)
{
	m->finishing = true;
	round_bounce(qm, m);
}

/* New messages and the start. */

void
qmgr_enqueue(struct qmgr *qm, const char *qid, int stage)
{
	struct qmsg *m;

	if (qmgr_lookup(qm, qid) != NULL)
		return;
	m = qmgr_add(qm, qid, QM_WAIT);
	if (stage == SPOOL_RECEIVED)
		qmgr_to_filter(qm, m);
	else
		qmgr_make_ready(qm, m);
}

void
qmgr_enqueue_volatile(
    struct qmgr *qm, const char *qid, qmgr_settle_fn settle, void *arg)
{
	struct qmsg *m;

	if (qmgr_lookup(qm, qid) != NULL)
		msg_panic("%s: a volatile output with a queue ID in use", qid);
	m = qmgr_add(qm, qid, QM_WAIT);
	m->settle = settle;
	m->settle_arg = arg;
	qmgr_make_ready(qm, m);
}

struct scan {
	struct qmgr *qm;
	unsigned n;
};

static void
scan_queue_cb(const char *qid, void *arg)
{
	struct scan *sc = arg;
	struct qmgr *qm = sc->qm;
	struct spool_env *env;
	struct qmsg *m;
	const char *why;

	if (qmgr_lookup(qm, qid) != NULL)
		return;
	if (spool_read(qm->spool, SPOOL_QUEUE, qid, false, &env, NULL, &why) ==
	    -1) {
		if (errno == EBADMSG)
			(void)spool_quarantine(
			    qm->spool, SPOOL_QUEUE, qid, why);
		else if (errno != ENOENT) {
			/* Unreadable now: activation tries again later. */
			msg_warn(
			    "%s: cannot read the queue file: %s", qid, why);
			qmsg_schedule(qm, qmgr_add(qm, qid, QM_WAIT),
			    clock_wall_us() +
				(uint64_t)cfg_int(
				    qm->cfg, P_MINIMAL_BACKOFF_TIME) *
				    1000000);
			sc->n++;
		}
		return;
	}
	m = qmgr_add(qm, qid, QM_WAIT);
	if (env->stage == SPOOL_RECEIVED)
		qmgr_to_filter(qm, m);
	else
		qmsg_schedule(qm, m, env->next_try_us);
	spool_env_free(&env);
	sc->n++;
}

static void
scan_hold_cb(const char *qid, void *arg)
{
	struct scan *sc = arg;

	if (qmgr_lookup(sc->qm, qid) == NULL) {
		qmgr_add(sc->qm, qid, QM_HOLD);
		sc->n++;
	}
}

/*
 * Outputs of the filter whose parent is still queued are the traces of a
 * transform that did not reach its commit point (the parent is removed
 * only after every output is durable): they go, and the parent is
 * filtered again. A filter output is never delivered beside its parent.
 */
static bool
output_orphaned(struct qmgr *qm, const struct spool_env *env)
{
	return (env->flags & SPOOL_F_OUTPUT) && env->parent[0] != '\0' &&
	    (faccessat(qm->spool->dfd[SPOOL_QUEUE], env->parent, F_OK,
		 AT_SYMLINK_NOFOLLOW) == 0 ||
		faccessat(qm->spool->dfd[SPOOL_HOLD], env->parent, F_OK,
		    AT_SYMLINK_NOFOLLOW) == 0);
}

static void
scan_traces_cb(const char *qid, void *arg)
{
	struct scan *sc = arg;
	struct qmgr *qm = sc->qm;
	struct spool_env *env;
	const char *why;

	if (spool_read(qm->spool, SPOOL_QUEUE, qid, false, &env, NULL, &why) ==
	    -1)
		return;
	if (output_orphaned(qm, env)) {
		if (spool_remove(qm->spool, SPOOL_QUEUE, qid) == -1)
			msg_warn("%s: cannot remove: %m", qid);
		else {
			msg_info("%s: removed: output of an interrupted "
				 "transform of %s",
			    qid, env->parent);
			sc->n++;
		}
	}
	spool_env_free(&env);
}

void
qmgr_start(struct qmgr *qm)
{
	struct scan q = { qm, 0 }, h = { qm, 0 }, t = { qm, 0 };

	if (spool_scan(qm->spool, SPOOL_QUEUE, scan_traces_cb, &t) == -1)
		msg_warn("cannot scan the queue: %m");
	if (t.n > 0 && fsync(qm->spool->dfd[SPOOL_QUEUE]) == -1)
		msg_warn("cannot sync the queue directory: %m");
	if (spool_scan(qm->spool, SPOOL_QUEUE, scan_queue_cb, &q) == -1 ||
	    spool_scan(qm->spool, SPOOL_HOLD, scan_hold_cb, &h) == -1)
		msg_warn("cannot scan the queue: %m");
	if (q.n > 0 || h.n > 0)
		msg_info("queue scan: %u message%s queued, %u on hold", q.n,
		    q.n == 1 ? "" : "s", h.n);
}

/* Set-up. */

static void
qmgr_load_sasl(struct qmgr *qm)
{
	const char *path = cfg_str(qm->cfg, P_SMTP_SASL_PASSWORD_MAPS);
	struct strlist errors = { 0 };
	const char *why;

	sasl_map_free(&qm->sasl);
	if (*path == '\0')
		return;
	if ((qm->sasl = sasl_map_load(path, &errors, &why)) == NULL)
		msg_warn("cannot read smtp_sasl_password_maps %s: %s; no SASL "
			 "authentication",
		    path, why);
	for (size_t i = 0; i < errors.n; i++)
		msg_warn("%s", errors.v[i]);
	strlist_free(&errors);
}

struct qmgr *
qmgr_new(struct event_base *base, struct config *cfg, struct spool *sp,
    struct committer *c, struct dns *dns, const struct filter_ops *filter,
    const char **error_r)
{
	struct qmgr *qm = xcalloc(1, sizeof(*qm));
	struct filter_env fe;
	struct rlimit rl;

	qm->base = base;
	qm->cfg = config_ref(cfg);
	qm->spool = sp;
	qm->committer = c;
	qm->dns = dns;
	if ((qm->smtpc = smtpc_ctx_new(base, cfg, error_r)) == NULL) {
		config_unref(&qm->cfg);
		free(qm);
		return NULL;
	}
	qm->msgs = htab_new();
	TAILQ_INIT(&qm->ready);
	qm->fd_cap = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < 1000000
	    ? (unsigned)(rl.rlim_cur / 4)
	    : 1000000;
	if (qm->fd_cap < 16)
		qm->fd_cap = 16;
	qm->kick = evtimer_new(base, kick_cb, qm);
	qmgr_load_sasl(qm);
	deliver_init(qm);
	memset(&fe, 0, sizeof(fe));
	fe.base = base;
	fe.cfg = cfg;
	fe.spool = sp;
	fe.qmgr = qm;
	qm->filter = filter;
	qm->filter_ctx = filter->create(&fe);
	return qm;
}

void
qmgr_set_config(struct qmgr *qm, struct config *cfg)
{
	config_unref(&qm->cfg);
	qm->cfg = config_ref(cfg);
	smtpc_ctx_set_config(qm->smtpc, cfg);
	qmgr_load_sasl(qm);
	qm->filter->set_config(qm->filter_ctx, cfg);
	qmgr_kick(qm);
}

void
qmgr_control_register(struct qmgr *qm, struct control *ctl)
{
	qmgr_ctl_register(qm, ctl);
}

void
qmgr_shutdown(struct qmgr *qm)
{
	qm->stopping = true;
	deliver_shutdown(qm);
}

bool
qmgr_idle(const struct qmgr *qm)
{
	return qm->nbusy == 0 && qm->pending_ops == 0;
}

void
qmgr_free(struct qmgr **qmp)
{
	struct qmgr *qm = *qmp;

	if (qm == NULL)
		return;
	*qmp = NULL;
	deliver_free(qm);
	smtpc_ctx_free(&qm->smtpc);
	htab_free(&qm->msgs, qmsg_free);
	qm->filter->destroy(qm->filter_ctx);
	sasl_map_free(&qm->sasl);
	event_free(qm->kick);
	config_unref(&qm->cfg);
	free(qm);
}
