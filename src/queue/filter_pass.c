/* The pass-through filter: marks each message filtered, unchanged. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/filter.h"
#include "queue/spool.h"

struct pass {
	struct event_base *base;
	struct spool *spool;
};

struct pass_job {
	struct pass *p;
	char qid[QID_LEN + 1];
	filter_done_fn done;
	void *arg;
};

static void *
pass_create(const struct filter_env *fe)
{
	struct pass *p = xcalloc(1, sizeof(*p));

	p->base = fe->base;
	p->spool = fe->spool;
	return p;
}

static void
pass_run_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pass_job *j = arg;
	struct spool_env *env;
	const char *why;
	enum filter_status st = FILTER_DONE;
	int qfd;

	if (spool_read(j->p->spool, SPOOL_QUEUE, j->qid, true, &env, &qfd,
		&why) == -1) {
		if (errno == EBADMSG)
			(void)spool_quarantine(
			    j->p->spool, SPOOL_QUEUE, j->qid, why);
		else if (errno != ENOENT) {
			/* Out of descriptors, an I/O error: try again later. */
			msg_warn(
			    "%s: cannot read the queue file: %s", j->qid, why);
			j->done(j->arg, j->qid, FILTER_DEFER, why);
			free(j);
			return;
		}
		j->done(j->arg, j->qid, FILTER_GONE, why);
		free(j);
		return;
	}
	/*
	 * No fsync: if the mark is lost in a crash the message passes
	 * again, which changes nothing.
	 */
	if (env->stage != SPOOL_FILTERED &&
	    spool_mark_stage(qfd, env, SPOOL_FILTERED, false) == -1) {
		msg_warn("%s: cannot mark the queue file: %m", j->qid);
		st = FILTER_DEFER;
	} else
		msg_info("%s: engine=none action=pass (no engine: delivered as "
			 "received)",
		    j->qid);
	close(qfd);
	spool_env_free(&env);
	j->done(j->arg, j->qid, st,
	    st == FILTER_DONE ? NULL : "cannot write the queue file");
	free(j);
}

static void
pass_submit(void *ctx, const char *qid, filter_done_fn done, void *arg)
{
	struct pass *p = ctx;
	struct pass_job *j = xcalloc(1, sizeof(*j));

	j->p = p;
	strlcpy_ms(j->qid, qid, sizeof(j->qid));
	j->done = done;
	j->arg = arg;
	event_base_once(p->base, -1, EV_TIMEOUT, pass_run_cb, j, NULL);
}

static void
pass_set_config(void *ctx, struct config *cfg)
{
}

static void
pass_destroy(void *ctx)
{
	free(ctx);
}

const struct filter_ops filter_passthrough = {
	.name = "pass-through",
	.create = pass_create,
	.submit = pass_submit,
	.set_config = pass_set_config,
	.destroy = pass_destroy,
};
