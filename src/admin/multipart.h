/*
 * multipart/form-data (RFC 7578, RFC 2046 section 5.1) for uploads: the
 * parts of a body held in memory. Part data points into the body.
 */
#ifndef MAILSEAL_MULTIPART_H
#define MAILSEAL_MULTIPART_H

#include <stddef.h>

#define MULTIPART_MAX_PARTS 8

struct mp_part {
	char *name; /* the form field */
	char *filename; /* NULL for a plain field */
	const char *data;
	size_t len;
};

struct mp_form {
	struct mp_part v[MULTIPART_MAX_PARTS];
	size_t n;
};

/* Parses body by the boundary of content_type. 0, or -1 with a reason. */
int multipart_parse(const char *content_type, const char *body, size_t len,
    struct mp_form *, const char **error_r);
void multipart_free(struct mp_form *);
/* The part of a field, or NULL. */
const struct mp_part *multipart_get(const struct mp_form *, const char *name);

#endif
