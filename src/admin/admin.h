/*
 * The admin process (DESIGN.md section 2): the HTTPS console and its JSON
 * API at /api/v1. It runs as mail_owner; it reads and writes
 * mailseal.conf, reads the spool and the mail log, asks the dispatcher
 * over the control socket to act on the queue, and signals the parent to
 * reload. One lock serialises the API: admin traffic is light, and it
 * keeps the sessions, the configuration and the store consistent.
 */
#ifndef MAILSEAL_ADMIN_H
#define MAILSEAL_ADMIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "admin/session.h"

struct config;
struct role_env;

struct admin {
	pthread_mutex_t lock;
	pthread_cond_t reloaded; /* signalled when cfg_generation moves */
	const char *config_path;
	struct config *cfg; /* the running configuration */
	uint64_t cfg_generation;
	struct sessions sessions;
	struct ratelimit *rl;
	void *store; /* the policy and key store (admin_store.c) */
	int confwriter_fd; /* the root writer of mailseal.conf, or -1 */
	bool test_mode; /* fuzzing: no signals, no files */
};

int admin_main(struct role_env *);

#endif
