/* mailsealctl: the administration command. */
#ifndef MAILSEAL_CTL_H
#define MAILSEAL_CTL_H

#include <jansson.h>

struct config;
struct masterkey;
struct store;

struct ctl {
	const char *config_path;
	struct config *cfg; /* loaded on first use */
	struct store *store; /* opened on first use */
	struct masterkey *mk; /* loaded on first use */
};

struct ctl_command {
	const char *name;
	int (*run)(struct ctl *, int argc, char **argv);
	const char *usage;
};

/* Loads the configuration or exits with its errors. */
struct config *ctl_config(struct ctl *);
/* Opens (creating) the store of the configuration, or exits. */
struct store *ctl_store(struct ctl *);
/*
 * The store master key, read from master_key_file (made when missing and
 * the store holds no key yet), or exits: run as root.
 */
struct masterkey *ctl_masterkey(struct ctl *);
/* Prints a JSON value (indented) and releases it. */
void ctl_json_print(json_t *);
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
int ctl_domain_main(struct ctl *, int, char **);
int ctl_user_main(struct ctl *, int, char **);
int ctl_global_main(struct ctl *, int, char **);
int ctl_property_main(struct ctl *, int, char **);
int ctl_cert_main(struct ctl *, int, char **);
int ctl_root_main(struct ctl *, int, char **);
int ctl_crl_main(struct ctl *, int, char **);
int ctl_ctl_main(struct ctl *, int, char **);
int ctl_admin_main(struct ctl *, int, char **);

/* Writes docs/configuration.md's text to stdout. */
void ctl_config_doc(void);
/* Writes docs/properties.md's text to stdout. */
void ctl_property_doc(void);

#endif
