/*
 * Policy properties: the settings that can differ per recipient or
 * sender. The table is in properties.def.
 */
#ifndef MAILSEAL_PROPERTIES_H
#define MAILSEAL_PROPERTIES_H

enum prop_type {
	PROPT_BOOL, /* yes or no */
	PROPT_ENUM, /* one word of the choices */
	PROPT_TEXT, /* any text, or empty */
	PROPT_NONEMPTY, /* any text, not empty */
	PROPT_FPRLIST, /* SHA-256 fingerprints, or empty */
};

enum prop_id {
#define PROP(id, name, type, def, choices, help) PROP_##id,
#include "policy/properties.def"
#undef PROP
	PROP__COUNT
};

struct prop_def {
	const char *name;
	enum prop_type type;
	const char *def;
	const char *choices;
	const char *help;
};

extern const struct prop_def prop_table[PROP__COUNT];

/* The property called name, or -1. */
int prop_lookup(const char *name);
const char *prop_type_name(enum prop_type);
/*
 * Checks a value of a property and returns its canonical form (words
 * lowercased, fingerprints as lowercase hex separated by ", "), which the
 * caller frees; NULL with a reason.
 */
char *prop_canon(int id, const char *value, const char **error_r);

#endif
