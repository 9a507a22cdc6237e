/*
 * Messages that the daemon writes itself (bounces, send-test): into the
 * spool through the group committer, like a received message.
 */
#ifndef MAILSEAL_INJECT_H
#define MAILSEAL_INJECT_H

struct spool;
struct spool_env;
struct spool_writer;
struct committer;

typedef void (*inject_done_fn)(int error, const char *qid, void *arg);

/* A new file in incoming/ (its queue ID is w->qid); NULL with errno. */
struct spool_writer *inject_begin(struct spool *);
/*
 * Writes the envelope and hands the file to the committer; done is
 * called from the loop once it is in queue/ (error 0) or failed (an
 * errno value). Returns -1, with the writer freed and done never called,
 * when the file cannot be finished.
 */
int inject_commit(struct committer *, struct spool_writer *, struct spool_env *,
    inject_done_fn, void *arg);

#endif
