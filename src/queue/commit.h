/*
 * Group commit. Sessions that finish DATA at about the same time share
 * the cost of making their messages durable: a thread takes every
 * message waiting, starts write-back of all of them, fsyncs each (the
 * first fsync commits the journal for all), renames them into queue/,
 * and syncs the directory once for the whole group. The event loop never
 * blocks on the disk; it learns of each result through a callback.
 */
#ifndef MAILSEAL_COMMIT_H
#define MAILSEAL_COMMIT_H

#include <stdint.h>

#include "queue/spool.h"

struct event_base;
struct committer;

/* error is 0 on success, or an errno value; the writer is freed after. */
typedef void (*commit_cb)(int error, struct spool_writer *, void *arg);

struct committer *committer_new(struct event_base *, struct spool *);
void committer_free(struct committer **);
/* The writer must be finished (spool_writer_finish) already. */
void committer_submit(
    struct committer *, struct spool_writer *, commit_cb, void *arg);

/* Counters for the benchmark: messages committed, directory fsyncs. */
struct commit_stats {
	uint64_t messages;
	uint64_t batches;
};
void committer_stats(struct committer *, struct commit_stats *);

#endif
