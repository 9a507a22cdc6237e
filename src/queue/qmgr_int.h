/*
 * The queue manager's insides, shared by qmgr.c (messages, schedule,
 * filter, the end of a delivery round), deliver.c (routes, destinations,
 * connections) and qmgr_ctl.c (the control commands).
 */
#ifndef MAILSEAL_QMGR_INT_H
#define MAILSEAL_QMGR_INT_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stdint.h>

#include "queue/qmgr.h"
#include "queue/spool.h"

struct htab;
struct smtpc_ctx;
struct smtpc_status;
struct sasl_map;

enum qm_state {
	QM_WAIT, /* in queue/, waiting for its next try */
	QM_READY, /* in queue/, waiting for a delivery slot */
	QM_FILTER, /* with the filter */
	QM_ACTIVE, /* being delivered */
	QM_HOLD, /* in hold/ */
};

/* The outcome of one recipient in this round. */
enum rr_outcome {
	RR_NONE,
	RR_SENT,
	RR_DEFER,
	RR_BOUNCE,
};

struct rres {
	enum rr_outcome outcome;
	char *remote_mta; /* the server that answered, or NULL */
	char *diag; /* its reply, or NULL */
};

struct qmsg {
	struct qmgr *qm;
	char qid[QID_LEN + 1];
	enum qm_state state;
	uint64_t next_try_us;
	struct event *timer;
	TAILQ_ENTRY(qmsg) ready_link;
	/* Requests that wait until the message is idle again. */
	bool want_hold, want_delete, want_requeue;
	/* While active. */
	struct spool_env *env;
	int fd;
	uint64_t active_us;
	unsigned jobs;
	struct rres *rr;
	bool expired; /* older than maximal_queue_lifetime */
	bool returned; /* recipients bounced because it expired */
	bool finishing; /* the end of the round is in progress */
	/* A volatile output (qmgr_enqueue_volatile) until it settles. */
	qmgr_settle_fn settle;
	void *settle_arg;
};

TAILQ_HEAD(qmsg_list, qmsg);
TAILQ_HEAD(dest_jobs, job);
TAILQ_HEAD(conn_list, conn);

struct qmgr {
	struct event_base *base;
	struct config *cfg;
	struct spool *spool;
	struct committer *committer;
	struct dns *dns;
	struct smtpc_ctx *smtpc;
	struct sasl_map *sasl;
	const struct filter_ops *filter;
	void *filter_ctx;
	struct htab *msgs; /* queue ID -> struct qmsg */
	struct qmsg_list ready;
	unsigned nactive, nfilter;
	unsigned fd_cap; /* a quarter of the file descriptors */
	struct event *kick;
	/* deliver.c */
	struct htab *dests; /* key -> struct dest */
	struct conn_list conns;
	unsigned nbusy; /* connections carrying or opening for a job */
	bool stopping;
	unsigned pending_ops; /* bounces and control writes in flight */
};

/* qmgr.c */
struct qmsg *qmgr_lookup(struct qmgr *, const char *qid);
/* Every job of the message is over: end the round. */
void qmgr_message_done(struct qmgr *, struct qmsg *);
/* Runs the ready list soon. */
void qmgr_kick(struct qmgr *);
void qmgr_make_ready(struct qmgr *, struct qmsg *);
void qmgr_forget(struct qmgr *, struct qmsg *);
void qmgr_to_filter(struct qmgr *, struct qmsg *);
struct qmsg *qmgr_add(struct qmgr *, const char *qid, enum qm_state);
/* Sends an idle message (in queue/ or hold/) through the filter again. */
int qmgr_requeue(struct qmgr *, struct qmsg *);

/* deliver.c */
void deliver_init(struct qmgr *);
/* Routes the pending recipients of an active message and queues jobs. */
void deliver_message(struct qmgr *, struct qmsg *);
/* Forgets that destinations failed (flush). */
void deliver_flush(struct qmgr *);
/* Closes idle connections. */
void deliver_shutdown(struct qmgr *);
void deliver_free(struct qmgr *);

/* qmgr_ctl.c */
void qmgr_ctl_register(struct qmgr *, struct control *);

#endif
