/* The mailseald process roles (DESIGN.md section 2). */
#ifndef MAILSEAL_DAEMON_H
#define MAILSEAL_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

struct config;

struct role_env {
	const char *config_path;
	struct config *cfg;
	int *listen_fds; /* bound sockets the parent handed over */
	size_t nlisten;
	int instance; /* 0..count-1 */
	bool foreground;
};

struct role {
	const char *name;
	int (*main)(struct role_env *);
	/* How many processes of this role run (0: none). */
	int (*count)(const struct config *);
	/* The parameter of listen addresses this role gets, or -1. */
	int listen_param;
	/*
	 * Whether it gets the store master key (engines, admin): a pipe
	 * whose number is in MAILSEAL_KEY_FD, read with masterkey_receive().
	 */
	bool master_key;
	/* Whether it gets the configuration writer's socket. */
	bool confwriter;
};

extern const struct role daemon_roles[];
extern const size_t daemon_nroles;

int dispatcher_main(struct role_env *);
int admin_main(struct role_env *);

#include "common/paths.h"

#endif
