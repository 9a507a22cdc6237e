/*
 * The effective policy of an address: each property comes from the
 * first level that sets it, in this order (DESIGN.md section 4):
 *
 *   user (the address)                      a@sub.example.com
 *   domain (the address's own domain)       sub.example.com
 *   wildcard domains, most specific first   *.example.com, then *.com
 *   global
 *   factory default                         (properties.def)
 *
 * A wildcard "*.example.com" covers every domain below example.com, at
 * any depth (sub.example.com, a.sub.example.com), but not example.com
 * itself. When several wildcards cover a domain, the most specific (the
 * longest) that sets the property wins; one that inherits passes the
 * question on to the next. A level with no record (no user added, no
 * domain added) simply sets nothing, so every address has a policy.
 *
 * A stored value that the property table does not accept (a value
 * written by hand, or by a later version) makes the lookup fail rather
 * than guess: callers fail closed (tempfail, hold).
 */
#ifndef MAILSEAL_POLICY_H
#define MAILSEAL_POLICY_H

#include <stdbool.h>

#include "common/config.h"
#include "policy/properties.h"
#include "store/store.h"

enum policy_level {
	POLICY_DEFAULT, /* the factory default */
	POLICY_GLOBAL,
	POLICY_WILDCARD,
	POLICY_DOMAIN,
	POLICY_USER,
};

struct policy_value {
	const char *value; /* canonical (prop_canon) */
	enum policy_level level; /* where it came from */
	const char *source; /* that level's name; NULL for global, default */
};

struct policy {
	char *name; /* the address or domain, canonical; NULL: global */
	enum store_level from;
	bool has_record; /* the user (or domain) was added */
	bool domain_has_record; /* for an address: its domain was added */
	struct policy_value v[PROP__COUNT];
	struct strlist strings; /* owns the values and sources */
};

/*
 * The effective values seen from a level: STORE_USER with an address
 * (the engine's question), STORE_DOMAIN with a domain or wildcard (what
 * a user of that domain inherits), STORE_GLOBAL with NULL (what a domain
 * inherits).
 */
int policy_resolve(struct store *, enum store_level from, const char *name,
    struct policy **pol_r, const char **error_r);
void policy_free(struct policy **);

const char *policy_get(const struct policy *, enum prop_id);
/* For PROPT_BOOL properties. */
bool policy_bool(const struct policy *, enum prop_id);
/* For PROPT_FPRLIST properties: the fingerprints, added to out. */
void policy_list(const struct policy *, enum prop_id, struct strlist *out);
/* "user", "domain", "wildcard", "global", "default". */
const char *policy_level_name(enum policy_level);

/*
 * Sets a property at a level after checking the name and the value
 * against the table (the one way to write properties: the CLI and the
 * admin console use it). owner is NULL for global.
 */
int policy_set(struct store *, enum store_level, const char *owner,
    const char *prop, const char *value, const char **error_r);
/* Back to inherit. */
int policy_inherit(struct store *, enum store_level, const char *owner,
    const char *prop, const char **error_r);

#endif
