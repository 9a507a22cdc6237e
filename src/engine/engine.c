/*
 * The engine process: connects to the dispatcher, gives up the network
 * (sandbox.h), then takes one job at a time. A job reads the spool file
 * it was given, decides (engine_decide.c), writes one output per group
 * (engine_transform.c) and hands the outputs over:
 *
 *   1. each output is created in incoming/ and announced (OUTPUT) first,
 *      so that the dispatcher can clean up after an engine that dies;
 *   2. each output is written whole and reported (WRITTEN, with its log
 *      line), then RESULT STAGED: the engine takes the next job;
 *   3. the dispatcher moves the outputs into queue/ and delivers them at
 *      once; an output whose recipients are not all done is made durable
 *      by the group committer (queue/commit.c);
 *   4. once every output has left the queue or is durable, the
 *      dispatcher removes the original (the commit point;
 *      filter_engine.c).
 *
 * The engine never waits for the disk. A crash before 4 leaves the
 * original in queue/: its outputs are removed (by the dispatcher, or at
 * the next start) and it is done again, which can repeat a delivery,
 * never lose one. A message that changes for nobody is only marked
 * SPOOL_FILTERED (RESULT DONE): no copy.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/smime.h"
#include "daemon/daemon.h"
#include "engine/engine.h"
#include "engine/engine_int.h"
#include "engine/engine_ipc.h"
#include "engine/sandbox.h"
#include "queue/bounce.h"
#include "store/masterkey.h"
#include "store/store.h"

static volatile sig_atomic_t engine_stop, engine_reload;

char *
engine_socket_path(const struct config *cfg)
{
	return xasprintf("%s/private/engine", cfg_str(cfg, P_QUEUE_DIRECTORY));
}

char *
engine_lock_path(const struct config *cfg)
{
	return xasprintf(
	    "%s/private/engine.lock", cfg_str(cfg, P_QUEUE_DIRECTORY));
}

int
engine_count(const struct config *cfg)
{
	long n = (long)cfg_int(cfg, P_ENGINE_PROCESSES);

	/* Two per CPU: one computes while the other waits for its next job. */
	if (n == 0 && (n = 2 * sysconf(_SC_NPROCESSORS_ONLN)) < 2)
		n = 2;
	return (int)n;
}

/* Outputs. */

static void
output_env_clear(struct spool_env *env)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].addr);
		free(env->rcpt[i].orcpt);
	}
	free(env->rcpt);
	free(env->sender);
	free(env->client_name);
	free(env->client_addr);
	free(env->helo);
	free(env->proto);
	memset(env, 0, sizeof(*env));
}

int
engine_output_new(struct job *j, struct output *o, const char **error_r)
{
	struct eng_msg m;

	memset(o, 0, sizeof(*o));
	if (spool_writer_create(j->e->sp, &o->w) == -1) {
		*error_r = "cannot create a file in incoming";
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.type = ENG_OUTPUT;
	m.id = j->id;
	m.fd = -1;
	memcpy(m.qid, o->w->qid, sizeof(m.qid));
	/* Without the dispatcher nothing may be committed: stop here. */
	if (eng_send(j->e->sock, &m, error_r) == -1)
		msg_fatal("cannot talk to the dispatcher: %s", *error_r);
	return 0;
}

void
engine_output_discard(struct output *o)
{
	spool_writer_free(&o->w); /* unpublished: removed from incoming */
	output_env_clear(&o->env);
	free(o->log);
	o->log = NULL;
}

static void
outputs_free(struct job *j)
{
	for (size_t i = 0; i < j->nouts; i++)
		engine_output_discard(&j->outs[i]);
	free(j->outs);
	j->outs = NULL;
	j->nouts = 0;
}

static struct output *
output_add(struct job *j)
{
	j->outs = xreallocarray(j->outs, j->nouts + 1, sizeof(*j->outs));
	return &j->outs[j->nouts++];
}

/*
 * Steps 1 and 2 (see the top of this file): every output is finished
 * and reported; the files stay in incoming/ for the dispatcher.
 */
static int
stage(struct job *j, const char **error_r)
{
	struct eng_msg m;
	int n;

	for (size_t i = 0; i < j->nouts; i++)
		if (spool_writer_finish(j->outs[i].w, &j->outs[i].env) == -1) {
			*error_r = "cannot write an output";
			return -1;
		}
	for (size_t i = 0; i < j->nouts; i++) {
		struct output *o = &j->outs[i];
		memset(&m, 0, sizeof(m));
		m.type = ENG_WRITTEN;
		m.id = j->id;
		m.fd = -1;
		memcpy(m.qid, o->w->qid, sizeof(m.qid));
		n = snprintf(m.reason, sizeof(m.reason), "engine=smime %s%s %s",
		    o->log, o->env.flags & SPOOL_F_BOUNCE ? ":" : " queued as",
		    o->w->qid);
		if (n < 0 || (size_t)n >= sizeof(m.reason))
			/* The queue ID stays at the end of a long line. */
			snprintf(m.reason, sizeof(m.reason),
			    "engine=smime %.*s... queued as %s",
			    (int)(sizeof(m.reason) - 64), o->log, o->w->qid);
		if (eng_send(j->e->sock, &m, error_r) == -1)
			msg_fatal(
			    "cannot talk to the dispatcher: %s", *error_r);
	}
	/* The dispatcher owns the files now. */
	for (size_t i = 0; i < j->nouts; i++)
		spool_writer_release(&j->outs[i].w);
	return 0;
}

/* Recipients without a copy. */

struct bounces {
	struct bounce_rcpt *v;
	size_t n;
	struct strlist reasons;
};

static void
bounce_add(struct job *j, struct bounces *b, size_t idx, const char *dsn,
    const char *reason)
{
	const struct spool_rcpt *r = &j->env->rcpt[idx];

	strlist_add(&b->reasons, reason);
	b->v = xreallocarray(b->v, b->n + 1, sizeof(*b->v));
	memset(&b->v[b->n], 0, sizeof(b->v[0]));
	b->v[b->n].idx = idx;
	b->v[b->n].addr = r->addr;
	b->v[b->n].orcpt = r->orcpt;
	b->v[b->n].dsn = dsn;
	b->v[b->n].reason = b->reasons.v[b->reasons.n - 1];
	b->n++;
	msg_info("%s: engine=smime action=bounce to=<%s>, dsn=%s, "
		 "status=bounced (%s)",
	    j->qid, r->addr, dsn, reason);
}

static void
bounce_group(struct job *j, struct bounces *b, const struct group *g,
    const char *dsn, const char *reason)
{
	for (size_t i = 0; i < g->n; i++)
		bounce_add(j, b, g->rcpt[i], dsn, reason);
}

static bool
job_expired(const struct job *j)
{
	uint64_t life =
	    (uint64_t)cfg_int(j->e->cfg, P_MAXIMAL_QUEUE_LIFETIME) * 1000000;

	return clock_wall_us() - j->env->arrival_us >= life;
}

/* One output per group; -1 defers the message. */
static int
make_outputs(struct job *j, struct bounces *b, const char **error_r)
{
	uint64_t limit =
	    (uint64_t)cfg_int(j->e->cfg, P_AFTER_FILTER_MESSAGE_SIZE_LIMIT);
	const char *why;
	char *r;
	int rc;

	for (size_t k = 0; k < j->ngroups; k++) {
		struct group *g = &j->groups[k];
		struct output o;
		if (g->plan->kind == PLAN_BOUNCE) {
			for (size_t i = 0; i < g->n; i++)
				bounce_add(j, b, g->rcpt[i],
				    j->plans[g->rcpt[i]].dsn,
				    j->plans[g->rcpt[i]].reason);
			continue;
		}
		rc = engine_transform(j, g, &o, &why);
		if (rc == 0) {
			*output_add(j) = o;
			continue;
		}
		if (rc == 1) {
			r = xasprintf("message too large after filtering "
				      "(after_filter_message_size_limit is "
				      "%llu bytes)",
			    (unsigned long long)limit);
			bounce_group(j, b, g, "5.3.4", r);
			free(r);
			continue;
		}
		/* Fail closed: never in clear; given up at the lifetime. */
		if (!job_expired(j)) {
			*error_r = why;
			return -1;
		}
		r = xasprintf("the message cannot be processed: %s", why);
		bounce_group(j, b, g, "5.3.0", r);
		free(r);
	}
	return 0;
}

/* Whether the message goes on unchanged for every recipient. */
static bool
unchanged(const struct job *j)
{
	return j->ngroups == 0 ||
	    (j->ngroups == 1 && j->groups[0].plan->kind == PLAN_PASS &&
		!j->top.info_fields);
}

static void
log_pass(struct job *j)
{
	char *to = engine_group_rcpts(j, &j->groups[0]);
	char *note = engine_group_note(j, &j->groups[0]);

	msg_info("%s: engine=smime action=none to=%s (%s)", j->qid, to, note);
	free(to);
	free(note);
}

static bool
form_signed(int form)
{
	return form == SMIME_FORM_SIGNED || form == SMIME_FORM_SIGNED_DATA;
}

/* The job's work; the status for RESULT. */
static enum eng_status
job_process(struct job *j, const char **reason_r)
{
	struct bounces b = { NULL, 0, { 0 } };
	struct output *o;
	const char *why;
	enum eng_status st = ENG_DEFER;

	if (spool_read_fd(j->fd, &j->env, &why) == -1 ||
	    strcmp(j->env->qid, j->qid) != 0) {
		if (j->env != NULL)
			why = "queue ID in file does not match its name";
		if (spool_quarantine(j->e->sp, SPOOL_QUEUE, j->qid, why) ==
		    -1) {
			*reason_r = "cannot move a corrupt file";
			return ENG_DEFER;
		}
		return ENG_GONE;
	}
	if (j->env->stage != SPOOL_RECEIVED)
		return ENG_DONE;
	j->src.fd = j->fd;
	j->src.off = j->env->content_off;
	j->src.len = j->env->content_len;
	if (engine_read_top(j, reason_r) == -1)
		return ENG_DEFER;
	if (engine_decide(j, &why) == -1) {
		/* Fail closed: a policy that cannot be read sends nothing. */
		msg_warn("%s: engine: policy lookup failed: %s", j->qid, why);
		*reason_r = "policy lookup failed";
		return ENG_DEFER;
	}
	if (unchanged(j)) {
		if (j->import && form_signed(j->top.form))
			engine_import_only(j);
		if (spool_mark_stage(j->fd, j->env, SPOOL_FILTERED, false) ==
		    -1) {
			*reason_r = "cannot write the queue file";
			return ENG_DEFER;
		}
		if (j->ngroups > 0)
			log_pass(j);
		return ENG_DONE;
	}
	if (make_outputs(j, &b, reason_r) == -1)
		goto out;
	if (j->import && !j->imported && form_signed(j->top.form))
		engine_import_only(j);
	if (b.n > 0 && j->env->sender[0] == '\0')
		msg_info("%s: engine=smime undeliverable notification "
			 "discarded: the message has a null sender",
		    j->qid);
	else if (b.n > 0 &&
	    engine_write_dsn(j, b.v, b.n, (o = output_add(j)), reason_r) ==
		-1) {
		j->nouts--;
		goto out;
	}
	if (stage(j, reason_r) == -1)
		goto out;
	st = ENG_STAGED;
out:
	free(b.v);
	strlist_free(&b.reasons);
	return st;
}

static void
job_run(struct engine *e, const struct eng_msg *m)
{
	struct job j;
	struct eng_msg r;
	const char *reason = "", *why;

	memset(&j, 0, sizeof(j));
	j.e = e;
	j.id = m->id;
	memcpy(j.qid, m->qid, sizeof(j.qid));
	j.fd = m->fd;
	msg_info("%s: engine=smime processing (engine %d)", j.qid, e->instance);
	engine_cache_begin(e);
	memset(&r, 0, sizeof(r));
	r.status = job_process(&j, &reason);
	r.type = ENG_RESULT;
	r.id = j.id;
	r.fd = -1;
	strlcpy_ms(r.reason, reason != NULL ? reason : "", sizeof(r.reason));
	if (eng_send(e->sock, &r, &why) == -1)
		msg_fatal("cannot talk to the dispatcher: %s", why);
	outputs_free(&j);
	if (j.env != NULL)
		engine_plans_free(&j);
	free(j.top.from);
	free(j.top.subject);
	spool_env_free(&j.env);
	close(j.fd);
}

/* The process. */

/*
 * SIGTERM and SIGHUP only set a flag. They are blocked while a job runs
 * and let through only while the engine waits for the next one
 * (ppoll), so that a job is never cut off by them and the flags are
 * seen at once.
 */
static void
sig_term(int sig)
{
	engine_stop = 1;
}

static void
sig_hup(int sig)
{
	engine_reload = 1;
}

static void
engine_signals(sigset_t *waiting)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = sig_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = sig_hup;
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, waiting);
	sigdelset(waiting, SIGTERM);
	sigdelset(waiting, SIGINT);
	sigdelset(waiting, SIGHUP);
}

/* Waits for the next message: 1 readable, 0 a signal came first. */
static int
engine_wait(int sock, const sigset_t *waiting)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };

	if (ppoll(&pfd, 1, NULL, waiting) == -1) {
		if (errno != EINTR)
			msg_fatal("poll: %m");
		return 0;
	}
	return 1;
}

static void
engine_do_reload(struct engine *e)
{
	struct strlist errors = { 0 };
	struct config *ncfg;

	engine_reload = 0;
	if (config_load(e->config_path, &ncfg, &errors) == -1) {
		for (size_t i = 0; i < errors.n; i++)
			msg_warn("reload refused: %s", errors.v[i]);
		strlist_free(&errors);
		return;
	}
	config_unref(&e->cfg);
	e->cfg = ncfg;
}

/* The dispatcher may not be up yet, or restarting: try until it is. */
static int
engine_connect(const struct config *cfg)
{
	char *path = engine_socket_path(cfg);
	struct sockaddr_un sun;
	struct timespec ts = { 0, 100000000 };
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy_ms(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		msg_fatal("%s: path too long for a socket", path);
	for (unsigned tries = 0;; tries++) {
		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fd == -1)
			msg_fatal("socket: %m");
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		if (errno != ENOENT && errno != ECONNREFUSED)
			msg_fatal("connect %s: %m", path);
		close(fd);
		if (tries == 100)
			msg_warn("waiting for the dispatcher at %s", path);
		nanosleep(&ts, NULL);
	}
	free(path);
	return fd;
}

/*
 * A read lock for as long as the process lives: a dispatcher that starts
 * takes the write lock, and kills the engines of its predecessor that
 * still hold theirs, before it looks at the queue (filter_engine.c).
 */
static int
engine_lock(const struct config *cfg)
{
	char *path = engine_lock_path(cfg);
	struct flock fl;
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		msg_fatal("%s: %m", path);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_RDLCK;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_SETLKW, &fl) == -1)
		if (errno != EINTR)
			msg_fatal("%s: lock: %m", path);
	free(path);
	return fd;
}

static void
engine_open(struct engine *e)
{
	const char *qdir = cfg_str(e->cfg, P_QUEUE_DIRECTORY), *why;

	if (masterkey_receive(&e->mk, &why) == -1)
		msg_fatal("master key: %s", why);
	if (sandbox_no_dump(&why) == -1)
		msg_fatal("%s", why);
	g_mime_init();
	if (spool_open(qdir, false, 1 + e->instance % 31, &e->sp, &why) == -1)
		msg_fatal("%s: %s: %m", qdir, why);
	e->tmpdir = xasprintf("%s/incoming", qdir);
	if (smime_init(e->tmpdir, &why) == -1)
		msg_fatal("%s: %s", e->tmpdir, why);
	if (store_open(cfg_str(e->cfg, P_STORE), 0, &e->st, &why) == -1)
		msg_fatal("store: %s", why);
	if (certs_open(e->st, &e->cs, &why) == -1)
		msg_fatal("store: %s", why);
	e->cache = engine_cache_new();
}

static void
engine_close(struct engine *e)
{
	engine_cache_free(&e->cache);
	certs_close(&e->cs);
	store_close(&e->st);
	spool_close(&e->sp);
	masterkey_free(&e->mk);
	free(e->tmpdir);
	config_unref(&e->cfg);
}

int
engine_main(struct role_env *renv)
{
	struct engine e;
	struct eng_msg m;
	sigset_t waiting;
	const char *why;
	int lockfd, r;

	memset(&e, 0, sizeof(e));
	e.config_path = renv->config_path;
	e.cfg = config_ref(renv->cfg);
	e.instance = renv->instance;
	engine_open(&e);
	e.sock = engine_connect(e.cfg);
	lockfd = engine_lock(e.cfg);
	memset(&m, 0, sizeof(m));
	m.type = ENG_HELLO;
	m.version = ENG_PROTOCOL_VERSION;
	m.instance = (uint32_t)e.instance;
	m.fd = -1;
	if (eng_send(e.sock, &m, &why) == -1)
		msg_fatal("cannot talk to the dispatcher: %s", why);
	/* From here on, no network (sandbox.h). */
	if (sandbox_no_network(&why) == -1)
		msg_fatal("%s", why);
	engine_signals(&waiting);
	while (!engine_stop) {
		if (engine_reload)
			engine_do_reload(&e);
		if (engine_wait(e.sock, &waiting) == 0)
			continue;
		r = eng_recv(e.sock, ENG_TO_ENGINE, &m, &why);
		if (r == 0)
			break; /* the dispatcher went away */
		if (r == -1)
			msg_fatal("from the dispatcher: %s", why);
		job_run(&e, &m);
	}
	close(e.sock);
	close(lockfd);
	engine_close(&e);
	return 0;
}
