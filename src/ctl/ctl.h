/* mailsealctl: the administration command. */
#ifndef MAILSEAL_CTL_H
#define MAILSEAL_CTL_H

#include <jansson.h>

struct config;

struct ctl {
	const char *config_path;
	struct config *cfg; /* loaded on first use */
};

struct ctl_command {
	const char *name;
	int (*run)(struct ctl *, int argc, char **argv);
	const char *usage;
};

/* Loads the configuration or exits with its errors. */
struct config *ctl_config(struct ctl *);
/* Sends a request to the running daemon; exits with a message on error. */
json_t *ctl_call(struct ctl *, json_t *req);
/* Prints usage of a command and returns 2. */
int ctl_usage(const char *name);
void ctl_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

int ctl_config_main(struct ctl *, int, char **);
int ctl_reload_main(struct ctl *, int, char **);
int ctl_status_main(struct ctl *, int, char **);
int ctl_queue_main(struct ctl *, int, char **);
int ctl_send_test_main(struct ctl *, int, char **);
int ctl_log_main(struct ctl *, int, char **);

/* Writes docs/configuration.md's text to stdout. */
void ctl_config_doc(void);

#endif
