/*
 * The queue manager: every message in queue/ passes the filter (the
 * engine) and is then delivered, recipients grouped per destination, one
 * transaction per destination and message. Temporary failures are
 * retried with back-off (minimal_backoff_time, doubling, up to
 * maximal_backoff_time) until maximal_queue_lifetime; permanent failures
 * and expired recipients are returned to the sender in a DSN (RFC 3464).
 * A file leaves the queue when no recipient is pending.
 */
#ifndef MAILSEAL_QMGR_H
#define MAILSEAL_QMGR_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct config;
struct spool;
struct committer;
struct control;
struct dns;
struct filter_ops;
struct qmgr;

struct qmgr *qmgr_new(struct event_base *, struct config *, struct spool *,
    struct committer *, struct dns *, const struct filter_ops *,
    const char **error_r);
void qmgr_set_config(struct qmgr *, struct config *);
/* Scans queue/ and hold/ and starts delivering. */
void qmgr_start(struct qmgr *);
/*
 * A new message in queue/: from the SMTP server (SPOOL_RECEIVED), or an
 * output of the filter, a bounce (SPOOL_FILTERED).
 */
void qmgr_enqueue(struct qmgr *, const char *qid, int stage);
/*
 * An output of the filter in queue/ that is not durable yet (SPOOL_FILTERED):
 * it is delivered while its parent stays queued. settle(arg, qid, error)
 * comes once, from the loop: error 0 when the output has left the queue
 * (delivered, bounced, deleted) or was made durable with recipients still
 * pending; an errno value when it could not be made durable (it is then
 * removed, and the parent must be transformed again). Until then a crash
 * brings the parent back and the start-up scan removes the output.
 */
typedef void (*qmgr_settle_fn)(void *arg, const char *qid, int error);
void qmgr_enqueue_volatile(
    struct qmgr *, const char *qid, qmgr_settle_fn, void *arg);
/* The queue commands of the control socket (queue.*, send-test). */
void qmgr_control_register(struct qmgr *, struct control *);
/* Starts no more deliveries; idle connections are closed. */
void qmgr_shutdown(struct qmgr *);
/* Whether no delivery is in progress. */
bool qmgr_idle(const struct qmgr *);
void qmgr_free(struct qmgr **);

/* The wait before attempt n+1 after n failed ones (seconds). */
uint64_t qmgr_backoff(unsigned attempts, uint64_t min, uint64_t max);

#endif
