#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/util.h"
#include "policy/properties.h"
#include "store/store.h"

const struct prop_def prop_table[PROP__COUNT] = {
#define PROP(id, name, type, def, choices, help)                               \
	{ name, type, def, choices, help },
#include "policy/properties.def"
#undef PROP
};

static char errbuf[256];

int
prop_lookup(const char *name)
{
	for (int i = 0; i < PROP__COUNT; i++)
		if (strcmp(prop_table[i].name, name) == 0)
			return i;
	return -1;
}

const char *
prop_type_name(enum prop_type t)
{
	static const char *const names[] = {
		[PROPT_BOOL] = "yes | no",
		[PROPT_ENUM] = "word",
		[PROPT_TEXT] = "text",
		[PROPT_NONEMPTY] = "text, not empty",
		[PROPT_FPRLIST] = "list of SHA-256 fingerprints",
	};

	return names[t];
}

/* The choice that matches value case-insensitively, copied, or NULL. */
static char *
choice_match(const char *choices, const char *value)
{
	size_t vlen = strlen(value);
	const char *p = choices, *bar;

	for (;;) {
		bar = strchr(p, '|');
		size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		if (len == vlen && strncasecmp(p, value, len) == 0)
			return xstrndup(p, len);
		if (bar == NULL)
			return NULL;
		p = bar + 1;
	}
}

static const char *
bad_choice(const struct prop_def *d)
{
	char *o = errbuf;
	size_t left = sizeof(errbuf);
	int n = snprintf(o, left, "must be one of ");

	for (const char *p = d->choices;
	     *p != '\0' && n > 0 && (size_t)n < left - 3; p++) {
		o += n;
		left -= (size_t)n;
		n = *p == '|' ? snprintf(o, left, ", ")
			      : snprintf(o, left, "%c", *p);
	}
	return errbuf;
}

static char *
canon_fprlist(const char *value, const char **error_r)
{
	struct strlist items = { 0 }, out = { 0 };
	char fpr[STORE_FPR_LEN + 1], *joined = xstrdup(""), *t;

	strlist_split(&items, value);
	for (size_t i = 0; i < items.n; i++) {
		if (store_canon_fpr(items.v[i], fpr, error_r) == -1) {
			free(joined);
			joined = NULL;
			break;
		}
		if (strlist_contains_ci(&out, fpr))
			continue;
		strlist_add(&out, fpr);
		t = xasprintf("%s%s%s", joined, *joined ? ", " : "", fpr);
		free(joined);
		joined = t;
	}
	strlist_free(&items);
	strlist_free(&out);
	return joined;
}

char *
prop_canon(int id, const char *value, const char **error_r)
{
	const struct prop_def *d;
	char *c;

	if (id < 0 || id >= PROP__COUNT) {
		*error_r = "unknown property";
		return NULL;
	}
	d = &prop_table[id];
	for (const char *p = value; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f) {
			*error_r = "a value cannot hold control characters";
			return NULL;
		}
	if (strlen(value) > 4096) {
		*error_r = "a value is limited to 4096 bytes";
		return NULL;
	}
	switch (d->type) {
	case PROPT_BOOL:
		if ((c = choice_match("yes|no", value)) == NULL)
			*error_r = "must be yes or no";
		return c;
	case PROPT_ENUM:
		if ((c = choice_match(d->choices, value)) == NULL)
			*error_r = bad_choice(d);
		return c;
	case PROPT_NONEMPTY:
		if (*value == '\0') {
			*error_r = "must not be empty";
			return NULL;
		}
		return xstrdup(value);
	case PROPT_TEXT:
		return xstrdup(value);
	case PROPT_FPRLIST:
		return canon_fprlist(value, error_r);
	}
	*error_r = "bad property type";
	return NULL;
}
