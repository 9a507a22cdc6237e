/*
 * mailseal.conf: "name = value" lines in the manner of Postfix's main.cf.
 * '#' starts a comment line; a line that starts with white space
 * continues the previous one; lists are separated by commas or spaces.
 */
#ifndef MAILSEAL_CONFIG_H
#define MAILSEAL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/cidr.h"
#include "common/params.h"

struct strlist {
	char **v;
	size_t n;
};

struct nexthop {
	char *host; /* NULL when empty */
	int port;
	bool mx; /* host:port (look up MX) rather than [host]:port */
};

struct hostport {
	char *host;
	int port;
};

struct pvalue {
	char *raw; /* the text as written or the default */
	bool set; /* set in the file */
	int line;
	long long i;
	struct strlist list;
	struct cidr_list cidrs;
	struct nexthop nh;
	struct hostport *hp; /* PT_LISTEN */
	size_t nhp;
};

struct config {
	int refs;
	char *path;
	struct pvalue v[P__COUNT];
	char *hostname; /* myhostname, or the system's */
};

/*
 * Loads and checks a file. On error returns -1 with every problem in
 * errors ("FILE:LINE: error: ..."); the caller frees the list.
 */
int config_load(
    const char *path, struct config **cfg_r, struct strlist *errors);
/* The same from text; name is used in the messages. */
int config_load_string(const char *name, const char *text,
    struct config **cfg_r, struct strlist *errors);
struct config *config_ref(struct config *);
void config_unref(struct config **);

const char *cfg_str(const struct config *, enum param_id);
long long cfg_int(const struct config *, enum param_id);
bool cfg_bool(const struct config *, enum param_id);
const struct strlist *cfg_list(const struct config *, enum param_id);
const struct cidr_list *cfg_cidrs(const struct config *, enum param_id);
const struct nexthop *cfg_nexthop(const struct config *, enum param_id);
const struct hostport *cfg_listen(
    const struct config *, enum param_id, size_t *n_r);
/* myhostname, or the system hostname when it is empty. */
const char *cfg_myhostname(const struct config *);
/* smtp_helo_name, or myhostname. */
const char *cfg_helo_name(const struct config *);

/* Checks one value of a parameter; 0 or -1 with a reason. */
int config_check_value(int param, const char *value, const char **error_r);

/*
 * Sets name = value in the file: the line that sets it is replaced, or
 * one is appended; comments and other lines stay as they are. The result
 * is checked as a whole before it atomically replaces the file. An empty
 * value with unset removes the line (back to the default).
 */
int config_file_set(const char *path, const char *name, const char *value,
    bool unset, struct strlist *errors);
/* Several changes at once: all of them are made, or none. */
struct config_change {
	const char *name;
	const char *value;
	bool unset;
};
int config_file_change(const char *path, const struct config_change *, size_t n,
    struct strlist *errors);

/*
 * Whether the admin console may change a parameter: the settings of the
 * seed guide's MTA and DNS pages. Parameters that name files, users,
 * listeners or the store are for root alone.
 */
bool config_console_settable(int param);

/* The default configuration file. */
const char *config_default_path(void);

void strlist_add(struct strlist *, const char *);
void strlist_addf(struct strlist *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void strlist_free(struct strlist *);
bool strlist_contains_ci(const struct strlist *, const char *);
/* Splits on commas and white space. */
void strlist_split(struct strlist *, const char *);

/* Parses "[host]:port", "host:port", "host" or "[host]"; port default. */
int nexthop_parse(
    const char *, int defport, struct nexthop *, const char **error_r);
void nexthop_free(struct nexthop *);
/* Checks a DNS hostname (letters, digits, hyphens, dots). */
bool hostname_valid(const char *);
/* Formats a boolean, time or size the way the file writes it. */
const char *config_bool_str(bool);

#endif
