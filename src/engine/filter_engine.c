/*
 * The dispatcher's side of the engines: a filter (queue/filter.h). It
 * listens on queue_directory/private/engine (SOCK_SEQPACKET: message
 * boundaries, descriptor passing, and engines that reconnect by
 * themselves when either side restarts, with no plumbing through the
 * parent), queues jobs while every engine is busy, hands each job's
 * spool file over as a descriptor, and turns results into the filter's
 * done() calls.
 *
 * An engine writes its outputs into incoming/ and reports them (WRITTEN,
 * then RESULT STAGED); the job then leaves the engine, which takes the
 * next one. Its outputs are moved into queue/ as they are, not durable,
 * and go to delivery at once (qmgr_enqueue_volatile), while the original
 * stays queued. An output settles when it has left the queue (delivered
 * or bounced) or, with recipients still pending, has been made durable
 * by the group committer (queue/commit.c). When every output has
 * settled, the original is removed (the commit point). A crash before
 * brings the original back; the start-up scan removes outputs whose
 * original is still queued, and the transform runs again. So mail that
 * leaves at once costs no sync of its outputs; an output that cannot be
 * made durable is removed, and the message is transformed again later.
 *
 * An engine that dies during a job (end of file on its socket) loses
 * nothing: outputs it announced are removed while the original is still
 * in queue/, or handed to the queue manager when the original is gone
 * (quarantined by the engine). The job is then offered again; after
 * ENGINE_MAX_DEATHS deaths on one message, the message goes to corrupt/.
 * An engine that breaks the protocol, or takes longer than
 * ENGINE_JOB_TIMEOUT, is killed, and counted as dying when its socket
 * reaches end of file, that is when it can no longer touch the spool.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/engine_ipc.h"
#include "queue/filter.h"
#include "queue/qmgr.h"
#include "queue/spool.h"

struct ejob {
	struct efilter *f;
	char qid[QID_LEN + 1];
	uint64_t id; /* of the current attempt */
	filter_done_fn done;
	void *arg;
	unsigned deaths;
	struct strlist outputs; /* announced by the engine */
	struct strlist written; /* WRITTEN: queue IDs */
	struct strlist logs; /* and their log lines */
	size_t settling; /* outputs not settled yet */
	int settle_error; /* the first errno of an output not made durable */
	TAILQ_ENTRY(ejob) link; /* the queue, or the settling list */
};

struct econn {
	struct efilter *f;
	int fd;
	pid_t pid;
	int instance;
	bool hello; /* ready for jobs */
	bool dying; /* killed: waiting for its end of file */
	struct event *ev, *timer;
	struct ejob *job;
	TAILQ_ENTRY(econn) link;
};

TAILQ_HEAD(ejob_list, ejob);
TAILQ_HEAD(econn_list, econn);

struct efilter {
	struct event_base *base;
	struct config *cfg;
	struct spool *spool;
	struct qmgr *qmgr;
	char *path;
	int lfd;
	struct event *lev, *kick;
	struct econn_list conns;
	struct ejob_list queue;
	struct ejob_list settling; /* outputs delivered, original queued */
	uint64_t next_id;
};

static void efilter_kick(struct efilter *);

/* Jobs. */

static void
job_free(struct ejob *j)
{
	strlist_free(&j->outputs);
	strlist_free(&j->written);
	strlist_free(&j->logs);
	free(j);
}

static void
job_finish(struct ejob *j, enum filter_status st, const char *reason)
{
	j->done(j->arg, j->qid, st, reason);
	job_free(j);
}

static bool
strlist_contains(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

static bool
in_dir(struct efilter *f, enum spool_dir dir, const char *qid)
{
	return faccessat(f->spool->dfd[dir], qid, F_OK, AT_SYMLINK_NOFOLLOW) ==
	    0;
}

/* The outputs of a committed transform go to the queue manager. */
static void
job_enqueue_outputs(struct ejob *j)
{
	for (size_t i = 0; i < j->outputs.n; i++)
		if (in_dir(j->f, SPOOL_QUEUE, j->outputs.v[i]))
			qmgr_enqueue(
			    j->f->qmgr, j->outputs.v[i], SPOOL_FILTERED);
}

/* Removes what an engine that died left of its outputs. */
static void
job_remove_outputs(struct ejob *j)
{
	struct efilter *f = j->f;
	bool synced = false;

	for (size_t i = 0; i < j->outputs.n; i++) {
		const char *q = j->outputs.v[i];
		if (unlinkat(f->spool->dfd[SPOOL_QUEUE], q, 0) == 0) {
			msg_info("%s: removed %s: output of an interrupted "
				 "transform",
			    j->qid, q);
			synced = true;
		}
		(void)unlinkat(f->spool->dfd[SPOOL_INCOMING], q, 0);
	}
	if (synced && fsync(f->spool->dfd[SPOOL_QUEUE]) == -1)
		msg_warn("cannot sync the queue directory: %m");
	strlist_free(&j->outputs);
}

/* The engine of job j died (or was killed) before its RESULT. */
static void
job_engine_died(struct ejob *j, pid_t pid)
{
	struct efilter *f = j->f;
	char why[128];

	if (!in_dir(f, SPOOL_QUEUE, j->qid)) {
		/* After the commit point: the outputs are the message now. */
		msg_info("%s: the engine (pid %ld) ended after the transform: "
			 "its outputs go on",
		    j->qid, (long)pid);
		job_enqueue_outputs(j);
		job_finish(j, FILTER_GONE, NULL);
		return;
	}
	job_remove_outputs(j);
	if (++j->deaths >= ENGINE_MAX_DEATHS) {
		msg_warn("%s: engine processes died %u times on this message",
		    j->qid, j->deaths);
		snprintf(why, sizeof(why),
		    "engine processes died %u times on it", j->deaths);
		if (spool_quarantine(f->spool, SPOOL_QUEUE, j->qid, why) == 0)
			job_finish(j, FILTER_GONE, NULL);
		else
			job_finish(j, FILTER_DEFER, "cannot quarantine");
		return;
	}
	msg_warn("%s: the engine (pid %ld) died during the transform: tried "
		 "again",
	    j->qid, (long)pid);
	TAILQ_INSERT_HEAD(&f->queue, j, link);
	efilter_kick(f);
}

/* Engine connections. */

static void
conn_free(struct econn *c)
{
	struct efilter *f = c->f;

	TAILQ_REMOVE(&f->conns, c, link);
	event_free(c->ev);
	event_free(c->timer);
	close(c->fd);
	free(c);
}

/* Kills an engine; its job counts as died at its end of file. */
static void
conn_kill(struct econn *c, const char *why)
{
	if (c->dying)
		return;
	msg_warn("engine pid %ld: %s: killed", (long)c->pid, why);
	c->dying = true;
	evtimer_del(c->timer);
	if (c->pid > 0)
		kill(c->pid, SIGKILL);
}

static void
conn_eof(struct econn *c)
{
	struct ejob *j = c->job;
	struct efilter *f = c->f;
	pid_t pid = c->pid;

	c->job = NULL;
	conn_free(c);
	if (j != NULL)
		job_engine_died(j, pid);
	efilter_kick(f);
}

/* The commit point: the original goes, its outputs are the message now. */
static void
job_retire(struct ejob *j)
{
	/*
	 * Its directory sync comes with the committer's next group; a crash
	 * before can bring the original back, which repeats the transform
	 * (and what was delivered), never loses a message.
	 */
	if (spool_retire(j->f->spool, SPOOL_QUEUE, j->qid) == -1 &&
	    errno != ENOENT)
		msg_warn("%s: cannot remove after the transform: %m", j->qid);
	job_finish(j, FILTER_GONE, NULL);
}

/* Step 4 of engine.c: one output left the queue, or was made durable. */
static void
output_settled(void *arg, const char *qid, int error)
{
	struct ejob *j = arg;
	char why[160];

	if (error != 0 && j->settle_error == 0)
		j->settle_error = error;
	if (--j->settling > 0)
		return;
	TAILQ_REMOVE(&j->f->settling, j, link);
	if (j->settle_error != 0) {
		snprintf(why, sizeof(why), "cannot make an output durable: %s",
		    strerror(j->settle_error));
		job_finish(j, FILTER_DEFER, why);
		return;
	}
	job_retire(j);
}

/* Step 3: the outputs of a STAGED job go to delivery, not durable yet. */
static void
job_stage(struct ejob *j)
{
	struct efilter *f = j->f;
	char why[160];

	/* An output announced but not written was dropped by the engine. */
	for (size_t i = 0; i < j->outputs.n; i++)
		if (!strlist_contains(&j->written, j->outputs.v[i]))
			(void)unlinkat(
			    f->spool->dfd[SPOOL_INCOMING], j->outputs.v[i], 0);
	for (size_t i = 0; i < j->written.n; i++) {
		if (renameat2(f->spool->dfd[SPOOL_INCOMING], j->written.v[i],
			f->spool->dfd[SPOOL_QUEUE], j->written.v[i],
			RENAME_NOREPLACE) == -1) {
			int e = errno;

			msg_warn("%s: cannot queue the output %s: %s", j->qid,
			    j->written.v[i], strerror(e));
			snprintf(why, sizeof(why),
			    "cannot queue the outputs: %s", strerror(e));
			job_remove_outputs(j);
			job_finish(j, FILTER_DEFER, why);
			return;
		}
	}
	for (size_t i = 0; i < j->logs.n; i++)
		msg_info("%s: %s", j->qid, j->logs.v[i]);
	if (j->written.n == 0) {
		job_retire(j);
		return;
	}
	j->settling = j->written.n;
	TAILQ_INSERT_TAIL(&f->settling, j, link);
	for (size_t i = 0; i < j->written.n; i++)
		qmgr_enqueue_volatile(
		    f->qmgr, j->written.v[i], output_settled, j);
}

static void
conn_result(struct econn *c, const struct eng_msg *m)
{
	struct ejob *j = c->job;
	static const enum filter_status st[] = {
		[ENG_DONE] = FILTER_DONE,
		[ENG_GONE] = FILTER_GONE,
		[ENG_DEFER] = FILTER_DEFER,
	};

	c->job = NULL;
	evtimer_del(c->timer);
	efilter_kick(c->f);
	if (m->status == ENG_STAGED) {
		job_stage(j);
		return;
	}
	if (m->status == ENG_GONE)
		job_enqueue_outputs(j);
	job_finish(j, st[m->status], m->status == ENG_DEFER ? m->reason : NULL);
}

/* One message from an engine; -1 is a protocol error. */
static int
conn_handle(struct econn *c, const struct eng_msg *m, const char **why_r)
{
	if (!c->hello) {
		if (m->type != ENG_HELLO ||
		    m->version != ENG_PROTOCOL_VERSION) {
			*why_r = "no HELLO of this version";
			return -1;
		}
		c->hello = true;
		c->instance = (int)m->instance;
		efilter_kick(c->f);
		return 0;
	}
	if (m->type == ENG_HELLO || c->job == NULL || m->id != c->job->id) {
		*why_r = "a message for no job of it";
		return -1;
	}
	if (m->type == ENG_OUTPUT)
		strlist_add(&c->job->outputs, m->qid);
	else if (m->type == ENG_WRITTEN) {
		if (!strlist_contains(&c->job->outputs, m->qid) ||
		    strlist_contains(&c->job->written, m->qid)) {
			*why_r = "WRITTEN of an output not announced";
			return -1;
		}
		strlist_add(&c->job->written, m->qid);
		strlist_add(&c->job->logs, m->reason);
	} else
		conn_result(c, m);
	return 0;
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct econn *c = arg;
	struct eng_msg m;
	const char *why;
	int r;

	for (;;) {
		r = eng_recv(c->fd, ENG_TO_DISPATCHER, &m, &why);
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r == 0) {
			conn_eof(c);
			return;
		}
		if (c->dying)
			continue; /* what a killed engine said no longer counts */
		if (r == -1) {
			conn_kill(c, why);
			continue;
		}
		if (conn_handle(c, &m, &why) == -1)
			conn_kill(c, why);
	}
}

static void
conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct econn *c = arg;

	if (c->job != NULL)
		msg_warn("%s: the engine took longer than %d seconds",
		    c->job->qid, ENGINE_JOB_TIMEOUT);
	conn_kill(c, "job timeout");
}

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct efilter *f = arg;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct econn *c;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) !=
	    -1) {
		/* Only our own user's processes are engines. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) ==
			-1 ||
		    cred.uid != getuid()) {
			msg_warn("engine socket: a peer of another user: "
				 "refused");
			close(fd);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		c->f = f;
		c->fd = fd;
		c->pid = cred.pid;
		c->ev = event_new(
		    f->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
		c->timer = evtimer_new(f->base, conn_timeout_cb, c);
		event_add(c->ev, NULL);
		TAILQ_INSERT_TAIL(&f->conns, c, link);
	}
}

/* Dispatching. */

static struct econn *
idle_conn(struct efilter *f)
{
	struct econn *c;

	TAILQ_FOREACH(c, &f->conns, link)
	if (c->hello && !c->dying && c->job == NULL)
		return c;
	return NULL;
}

static void
dispatch_one(struct efilter *f, struct econn *c, struct ejob *j)
{
	struct timeval tv = { ENGINE_JOB_TIMEOUT, 0 };
	struct eng_msg m;
	const char *why;
	int fd;

	fd = openat(f->spool->dfd[SPOOL_QUEUE], j->qid,
	    O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1) {
		if (errno == ENOENT)
			job_finish(j, FILTER_GONE, NULL);
		else
			job_finish(j, FILTER_DEFER, strerror(errno));
		return;
	}
	memset(&m, 0, sizeof(m));
	m.type = ENG_JOB;
	m.id = j->id = ++f->next_id;
	memcpy(m.qid, j->qid, sizeof(m.qid));
	m.fd = fd;
	if (eng_send(c->fd, &m, &why) == -1) {
		close(fd);
		TAILQ_INSERT_HEAD(&f->queue, j, link);
		conn_kill(c, why);
		return;
	}
	/* The engine holds the file now; ours would keep its locks alive. */
	close(fd);
	c->job = j;
	evtimer_add(c->timer, &tv);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct efilter *f = arg;
	struct econn *c;
	struct ejob *j;

	while ((j = TAILQ_FIRST(&f->queue)) != NULL &&
	    (c = idle_conn(f)) != NULL) {
		TAILQ_REMOVE(&f->queue, j, link);
		dispatch_one(f, c, j);
	}
}

static void
efilter_kick(struct efilter *f)
{
	struct timeval now = { 0, 0 };

	if (!evtimer_pending(f->kick, NULL))
		evtimer_add(f->kick, &now);
}

/* Start. */

/*
 * Engines of an earlier dispatcher may still be at work (this one
 * restarted after a crash, or the parent was killed): they hold read
 * locks on engine.lock. They are killed, and the write lock taken,
 * before the queue is looked at, so that no old engine commits while
 * the start-up scan sorts the queue.
 */
static void
take_over(const struct config *cfg)
{
	char *path = engine_lock_path(cfg);
	struct timespec ts = { 0, 10000000 };
	struct flock fl;
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		msg_fatal("%s: %m", path);
	for (int tries = 0;; tries++) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_SETLK, &fl) == 0)
			break;
		if (errno != EAGAIN && errno != EACCES)
			msg_fatal("%s: lock: %m", path);
		if (tries > 1000)
			msg_fatal("%s: engines of an earlier start do not go "
				  "away",
			    path);
		if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK &&
		    fl.l_pid > 0) {
			msg_warn("killing engine pid %ld of an earlier start",
			    (long)fl.l_pid);
			kill(fl.l_pid, SIGKILL);
		}
		nanosleep(&ts, NULL);
	}
	/* Closing the descriptor drops the lock: new engines may come. */
	close(fd);
	free(path);
}

static int
listen_at(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy_ms(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		msg_fatal("%s: path too long for a socket", path);
	(void)unlink(path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(path, 0600) == -1 || listen(fd, 128) == -1)
		msg_fatal("engine socket %s: %m", path);
	return fd;
}

static void *
efilter_create(const struct filter_env *fe)
{
	struct efilter *f = xcalloc(1, sizeof(*f));

	f->base = fe->base;
	f->cfg = config_ref(fe->cfg);
	f->spool = fe->spool;
	f->qmgr = fe->qmgr;
	TAILQ_INIT(&f->conns);
	TAILQ_INIT(&f->queue);
	TAILQ_INIT(&f->settling);
	take_over(f->cfg);
	f->path = engine_socket_path(f->cfg);
	f->lfd = listen_at(f->path);
	f->lev = event_new(f->base, f->lfd, EV_READ | EV_PERSIST, accept_cb, f);
	event_add(f->lev, NULL);
	f->kick = evtimer_new(f->base, kick_cb, f);
	return f;
}

static void
efilter_submit(void *ctx, const char *qid, filter_done_fn done, void *arg)
{
	struct efilter *f = ctx;
	struct ejob *j = xcalloc(1, sizeof(*j));

	j->f = f;
	strlcpy_ms(j->qid, qid, sizeof(j->qid));
	j->done = done;
	j->arg = arg;
	TAILQ_INSERT_TAIL(&f->queue, j, link);
	/* done() comes later, from the loop, never from here. */
	efilter_kick(f);
}

static void
efilter_set_config(void *ctx, struct config *cfg)
{
	struct efilter *f = ctx;

	config_unref(&f->cfg);
	f->cfg = config_ref(cfg);
}

/*
 * At the end: engines see the end of file and exit; a job in progress
 * is finished by its engine (the next start picks up its outputs) or
 * killed with it.
 */
static void
efilter_destroy(void *ctx)
{
	struct efilter *f = ctx;
	struct econn *c;
	struct ejob *j;

	while ((c = TAILQ_FIRST(&f->conns)) != NULL) {
		if (c->job != NULL)
			job_free(c->job);
		conn_free(c);
	}
	while ((j = TAILQ_FIRST(&f->queue)) != NULL) {
		TAILQ_REMOVE(&f->queue, j, link);
		job_free(j);
	}
	/* Their outputs are left to the start-up scan. */
	while ((j = TAILQ_FIRST(&f->settling)) != NULL) {
		TAILQ_REMOVE(&f->settling, j, link);
		job_free(j);
	}
	event_free(f->lev);
	event_free(f->kick);
	close(f->lfd);
	(void)unlink(f->path);
	free(f->path);
	config_unref(&f->cfg);
	free(f);
}

const struct filter_ops filter_engine = {
	.name = "engine",
	.create = efilter_create,
	.submit = efilter_submit,
	.set_config = efilter_set_config,
	.destroy = efilter_destroy,
};
