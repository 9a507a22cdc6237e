/* The parameter table: see params.def. */
#ifndef MAILSEAL_PARAMS_H
#define MAILSEAL_PARAMS_H

enum param_type {
	PT_STR, /* any text */
	PT_HOST, /* a hostname, or empty */
	PT_BOOL, /* yes or no */
	PT_INT, /* an integer within bounds */
	PT_SIZE, /* a byte count within bounds */
	PT_TIME, /* a time with unit s, m, h, d or w (default s) */
	PT_ENUM, /* one word of the choices */
	PT_DOMAINS, /* a list of domain names */
	PT_CIDRS, /* a list of CIDR networks */
	PT_NEXTHOP, /* [host]:port or host:port, or empty */
	PT_LISTEN, /* a list of host:port */
	PT_PATH, /* an absolute path, or empty */
	PT_STORE, /* sqlite:PATH or postgresql://... */
};

enum param_id {
#define PARAM(id, name, type, def, min, max, choices, help) P_##id,
#include "common/params.def"
#undef PARAM
	P__COUNT
};

struct param_def {
	const char *name;
	enum param_type type;
	const char *def;
	long long min, max;
	const char *choices;
	const char *help;
};

extern const struct param_def param_table[P__COUNT];

/* The parameter called name, or -1. */
int param_lookup(const char *name);
const char *param_type_name(enum param_type);

#endif
