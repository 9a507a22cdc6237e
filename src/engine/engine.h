/*
 * The S/MIME engine (DESIGN.md section 2): processes that take queued
 * messages from the dispatcher, decide per recipient what policy asks
 * (sign, encrypt, decrypt, verify, pass, refuse) and write one output
 * message per group of recipients. The dispatcher's side is a filter
 * (queue/filter.h); the two talk over queue_directory/private/engine
 * (engine_ipc.h). docs/architecture.md has the job's life and the
 * decision table.
 */
#ifndef MAILSEAL_ENGINE_H
#define MAILSEAL_ENGINE_H

struct config;
struct filter_ops;
struct role_env;

/* The engine role: "mailseald -x engine -i N". */
int engine_main(struct role_env *);

/* How many engines run: engine_processes, or the number of CPUs. */
int engine_count(const struct config *);

/* The dispatcher's side: the filter of the queue manager. */
extern const struct filter_ops filter_engine;

/* The socket and the lock file, under queue_directory/private. */
char *engine_socket_path(const struct config *);
char *engine_lock_path(const struct config *);

/* An engine that takes longer than this on one job is killed (s). */
#define ENGINE_JOB_TIMEOUT 600
/* A message on which engines died this often goes to corrupt/. */
#define ENGINE_MAX_DEATHS 3

#endif
