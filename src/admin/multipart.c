#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/multipart.h"
#include "common/util.h"

#define BOUNDARY_MAX 70 /* RFC 2046 5.1.1 */
#define HEADERS_MAX 8192

/*
 * The value of parameter name in a header value such as
 * 'form-data; name="file"; filename="a.pem"', or NULL. Quoted strings
 * may hold '\' escapes (RFC 2045 5.1, RFC 822 quoted-pair).
 */
static char *
header_param(const char *v, size_t len, const char *name)
{
	size_t nlen = strlen(name), i = 0;

	while (i < len) {
		/* To the next ';' outside quotes. */
		bool q = false;
		while (i < len && (q || v[i] != ';')) {
			if (v[i] == '"')
				q = !q;
			else if (q && v[i] == '\\')
				i++;
			i++;
		}
		if (i >= len)
			return NULL;
		i++;
		while (i < len && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (len - i <= nlen || strncasecmp(v + i, name, nlen) != 0 ||
		    v[i + nlen] != '=')
			continue;
		i += nlen + 1;
		char *out = xmalloc(len - i + 1);
		size_t o = 0;
		if (i < len && v[i] == '"') {
			for (i++; i < len && v[i] != '"'; i++) {
				if (v[i] == '\\' && i + 1 < len)
					i++;
				out[o++] = v[i];
			}
			if (i >= len) {
				free(out);
				return NULL; /* unterminated */
			}
		} else
			while (i < len && v[i] != ';' && v[i] != ' ' &&
			    v[i] != '\t')
				out[o++] = v[i++];
		out[o] = '\0';
		return out;
	}
	return NULL;
}

static int
part_headers(const char *h, size_t len, struct mp_part *p, const char **error_r)
{
	size_t i = 0;

	while (i < len) {
		const char *eol = memmem(h + i, len - i, "\r\n", 2);
		size_t llen = eol != NULL ? (size_t)(eol - (h + i)) : len - i;
		const char *line = h + i;
		static const char cd[] = "content-disposition:";
		if (llen >= sizeof(cd) - 1 &&
		    strncasecmp(line, cd, sizeof(cd) - 1) == 0) {
			const char *v = line + sizeof(cd) - 1;
			size_t vlen = llen - (sizeof(cd) - 1);
			while (vlen > 0 && (*v == ' ' || *v == '\t'))
				v++, vlen--;
			if (vlen < 9 || strncasecmp(v, "form-data", 9) != 0) {
				*error_r = "a part is not form-data";
				return -1;
			}
			free(p->name);
			free(p->filename);
			p->name = header_param(v, vlen, "name");
			p->filename = header_param(v, vlen, "filename");
		}
		i += llen + 2;
	}
	if (p->name == NULL) {
		*error_r = "a part has no name";
		return -1;
	}
	return 0;
}

int
multipart_parse(const char *ctype, const char *body, size_t len,
    struct mp_form *form, const char **error_r)
{
	char *boundary = NULL, delim[BOUNDARY_MAX + 5];
	const char *p, *end = body + len;
	size_t dlen;
	int rc = -1;

	memset(form, 0, sizeof(*form));
	if (ctype == NULL ||
	    (boundary = header_param(ctype, strlen(ctype), "boundary")) ==
		NULL ||
	    boundary[0] == '\0' || strlen(boundary) > BOUNDARY_MAX) {
		*error_r = "no usable boundary in Content-Type";
		goto out;
	}
	/* "\r\n--boundary": the body starts with it, CRLF not included. */
	dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	if (len < dlen - 2 || memcmp(body, delim + 2, dlen - 2) != 0) {
		/* A preamble: skip to the first delimiter. */
		if ((p = memmem(body, len, delim, dlen)) == NULL) {
			*error_r = "no boundary in the body";
			goto out;
		}
		p += dlen;
	} else
		p = body + dlen - 2;
	for (;;) {
		const char *hend, *next;
		struct mp_part *part;

		if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
			rc =
			    0; /* the close delimiter; an epilogue is ignored */
			break;
		}
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
			*error_r = "bad text after a boundary";
			break;
		}
		p += 2;
		if (form->n == MULTIPART_MAX_PARTS) {
			*error_r = "too many parts";
			break;
		}
		part = &form->v[form->n++];
		/* Headers end at an empty line (the part may have none). */
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
			hend = p;
		else if ((hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4)) ==
		    NULL) {
			*error_r = "a part's headers do not end";
			break;
		} else
			hend += 2;
		if (hend - p > HEADERS_MAX) {
			*error_r = "a part's headers are too long";
			break;
		}
		if (part_headers(p, (size_t)(hend - p), part, error_r) == -1)
			break;
		p = hend + 2;
		if ((next = memmem(p, (size_t)(end - p), delim, dlen)) ==
		    NULL) {
			*error_r = "the last part does not end";
			break;
		}
		part->data = p;
		part->len = (size_t)(next - p);
		p = next + dlen;
	}
out:
	free(boundary);
	if (rc == -1)
		multipart_free(form);
	return rc;
}

void
multipart_free(struct mp_form *form)
{
	for (size_t i = 0; i < form->n; i++) {
		free(form->v[i].name);
		free(form->v[i].filename);
	}
	memset(form, 0, sizeof(*form));
}

const struct mp_part *
multipart_get(const struct mp_form *form, const char *name)
{
	for (size_t i = 0; i < form->n; i++)
		if (strcmp(form->v[i].name, name) == 0)
			return &form->v[i];
	return NULL;
}
