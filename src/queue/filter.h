/*
 * The filter stage between receiving and delivery. A message at stage
 * SPOOL_RECEIVED goes through the filter before the queue manager
 * delivers it; the S/MIME engine (DESIGN.md section 2, src/engine) is
 * such a filter.
 *
 * The contract:
 * - submit() gets the queue ID of a message in queue/ at stage
 *   SPOOL_RECEIVED. It must call done() exactly once, later, from the
 *   event loop (never from inside submit()).
 * - FILTER_DONE: the message, same queue ID, is now SPOOL_FILTERED in
 *   queue/ (spool_mark_stage) and the queue manager delivers it.
 * - FILTER_GONE: the queue ID is no longer in queue/. Either the filter
 *   wrote outputs (new messages, stage SPOOL_FILTERED, parent set) and
 *   gave each to qmgr_enqueue() once durable, or to
 *   qmgr_enqueue_volatile() before, keeping the original until each has
 *   settled; then it removed the original. Or it moved the message to
 *   corrupt/ with a log line. Outputs carry SPOOL_F_OUTPUT: while their
 *   parent is still in queue/ (a transform that did not finish), only
 *   the volatile ones handed over by the filter are delivered, and the
 *   start-up scan removes any it finds.
 * - FILTER_DEFER: nothing changed; the queue manager offers the message
 *   again after minimal_backoff_time. reason goes to the log.
 * A filter may be asked for many messages at once; it queues them itself.
 */
#ifndef MAILSEAL_FILTER_H
#define MAILSEAL_FILTER_H

struct event_base;
struct config;
struct spool;
struct qmgr;

enum filter_status {
	FILTER_DONE,
	FILTER_GONE,
	FILTER_DEFER,
};

typedef void (*filter_done_fn)(
    void *arg, const char *qid, enum filter_status, const char *reason);

/* What a filter gets when it is made. */
struct filter_env {
	struct event_base *base;
	struct config *cfg; /* config_ref() it to keep it; set_config() */
	struct spool *spool;
	struct qmgr *qmgr; /* for qmgr_enqueue[_volatile]() of outputs */
};

struct filter_ops {
	const char *name;
	void *(*create)(const struct filter_env *);
	void (*submit)(void *ctx, const char *qid, filter_done_fn, void *arg);
	void (*set_config)(void *ctx, struct config *);
	void (*destroy)(void *ctx);
};

#endif
