#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "smtp/mime8.h"

/* Deeper multipart nesting is copied as it is. */
#define MIME8_MAX_DEPTH 32
/* A header block larger than this is copied as it is (and its part). */
#define MIME8_MAX_HEADER (256 * 1024)
/* Longer input lines are handled in pieces. */
#define MIME8_MAX_LINE (64 * 1024)
/* RFC 2045 6.7 (5): encoded lines are at most 76 characters. */
#define QP_LINE_MAX 76

enum mime8_state {
	M_HEADERS, /* collecting the header block of an entity */
	M_COPY, /* a body copied as it is (preamble, epilogue, encoded) */
	M_QP, /* a leaf body being encoded quoted-printable */
};

struct mime8 {
	mime8_out_fn out;
	void *arg;
	enum mime8_state state;
	bool top; /* the header block is the message's own */
	bool broken; /* gave up on structure: copy the rest */
	char *bounds[MIME8_MAX_DEPTH];
	size_t depth;
	/* The header block being collected. */
	char *hdr;
	size_t hdrlen, hdrcap;
	/* The input line being assembled. */
	char *line;
	size_t linelen;
	bool line_cont; /* the previous piece of this line was handled */
};

bool
mime8_has_8bit(const void *p, size_t len)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < len; i++)
		if (s[i] & 0x80)
			return true;
	return false;
}

struct mime8 *
mime8_new(mime8_out_fn out, void *arg)
{
	struct mime8 *m = xcalloc(1, sizeof(*m));

	m->out = out;
	m->arg = arg;
	m->state = M_HEADERS;
	m->top = true;
	m->line = xmalloc(MIME8_MAX_LINE);
	return m;
}

void
mime8_free(struct mime8 **mp)
{
	struct mime8 *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	for (size_t i = 0; i < m->depth; i++)
		free(m->bounds[i]);
	free(m->hdr);
	free(m->line);
	free(m);
}

static void
emit(struct mime8 *m, const char *p, size_t len)
{
	if (len > 0)
		m->out(m->arg, p, len);
}

/* Header analysis. */

struct entity {
	char type[64]; /* "text/plain", lowercase; "" when absent */
	char *boundary;
	char cte[32]; /* lowercase; "" when absent */
	bool has_mime_version;
	bool cte_found;
};

/* Skips white space and RFC 5322 comments. */
static const char *
skip_cfws(const char *p)
{
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p != '(')
			return p;
		for (int depth = 0; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
}

static bool
is_tspecial_or_end(char c)
{
	return c == '\0' || strchr("()<>@,;:\\\"/[]?= \t\r\n", c) != NULL ||
	    (unsigned char)c < 0x20;
}

/* A token (RFC 2045 5.1) into buf, lowercased; returns the end. */
static const char *
get_token(const char *p, char *buf, size_t size)
{
	size_t n = 0;

	while (!is_tspecial_or_end(*p)) {
		if (n + 1 < size)
			buf[n++] = (char)tolower((unsigned char)*p);
		p++;
	}
	buf[n] = '\0';
	return p;
}

/* A token or quoted-string value, as written (quotes removed). */
static char *
get_value(const char **pp)
{
	const char *p = *pp;
	char *v = xmalloc(strlen(p) + 1);
	size_t n = 0;

	if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			v[n++] = *p;
		}
		if (*p == '"')
			p++;
	} else {
		while (!is_tspecial_or_end(*p))
			v[n++] = *p++;
	}
	v[n] = '\0';
	*pp = p;
	return v;
}

static void
parse_content_type(const char *p, struct entity *e)
{
	char t[32], sub[32], name[64];

	p = skip_cfws(p);
	p = get_token(p, t, sizeof(t));
	p = skip_cfws(p);
	if (*p != '/')
		return;
	p = get_token(skip_cfws(p + 1), sub, sizeof(sub));
	snprintf(e->type, sizeof(e->type), "%s/%s", t, sub);
	for (;;) {
		p = skip_cfws(p);
		if (*p != ';')
			return;
		p = get_token(skip_cfws(p + 1), name, sizeof(name));
		p = skip_cfws(p);
		if (*p != '=')
			return;
		p = skip_cfws(p + 1);
		char *v = get_value(&p);
		if (strcmp(name, "boundary") == 0 && e->boundary == NULL &&
		    *v != '\0' && strlen(v) <= 200)
			e->boundary = v;
		else
			free(v);
	}
}

/* The field name of a header line, or NULL for a continuation. */
static bool
field_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* Unfolds the field that starts at off into a string. */
static char *
field_value(const char *h, size_t len, size_t off, size_t *end_r)
{
	const char *colon = memchr(h + off, ':', len - off);
	size_t start = colon != NULL ? (size_t)(colon - h) + 1 : len;
	size_t end = off;

	/* The field runs until a line that does not start with WSP. */
	for (;;) {
		const char *lf = memchr(h + end, '\n', len - end);
		end = lf != NULL ? (size_t)(lf - h) + 1 : len;
		if (end >= len || (h[end] != ' ' && h[end] != '\t'))
			break;
	}
	*end_r = end;
	if (start > end)
		start = end;
	char *v = xstrndup(h + start, end - start);
	/* Embedded NUL bytes end the value; line breaks become spaces. */
	for (char *q = v; *q != '\0'; q++)
		if (*q == '\r' || *q == '\n')
			*q = ' ';
	return v;
}

static void
analyze_headers(const char *h, size_t len, struct entity *e)
{
	size_t off = 0, end;

	memset(e, 0, sizeof(*e));
	while (off < len) {
		const char *line = h + off;
		char *v;
		if (field_is(line, len - off, "Content-Type")) {
			v = field_value(h, len, off, &end);
			free(e->boundary);
			e->boundary = NULL;
			e->type[0] = '\0';
			parse_content_type(v, e);
			free(v);
		} else if (field_is(
			       line, len - off, "Content-Transfer-Encoding")) {
			v = field_value(h, len, off, &end);
			get_token(skip_cfws(v), e->cte, sizeof(e->cte));
			e->cte_found = true;
			free(v);
		} else {
			if (field_is(line, len - off, "MIME-Version"))
				e->has_mime_version = true;
			const char *lf = memchr(line, '\n', len - off);
			end = lf != NULL ? (size_t)(lf - h) + 1 : len;
		}
		off = end;
	}
}

/*
 * Writes the header block with its Content-Transfer-Encoding replaced
 * by cte (and MIME-Version added to the message's own block when
 * missing), then the empty line.
 */
static void
emit_headers(struct mime8 *m, const struct entity *e, const char *cte)
{
	const char *h = m->hdr;
	size_t len = m->hdrlen, off = 0, end;
	char buf[80];

	while (off < len) {
		const char *lf = memchr(h + off, '\n', len - off);
		end = lf != NULL ? (size_t)(lf - h) + 1 : len;
		if (cte != NULL &&
		    field_is(h + off, len - off, "Content-Transfer-Encoding")) {
			free(field_value(h, len, off, &end));
			snprintf(buf, sizeof(buf),
			    "Content-Transfer-Encoding: %s\r\n", cte);
			emit(m, buf, strlen(buf));
		} else
			emit(m, h + off, end - off);
		off = end;
	}
	if (cte != NULL && !e->cte_found) {
		if (m->top && !e->has_mime_version)
			emit(m, "MIME-Version: 1.0\r\n", 19);
		snprintf(
		    buf, sizeof(buf), "Content-Transfer-Encoding: %s\r\n", cte);
		emit(m, buf, strlen(buf));
	}
	emit(m, "\r\n", 2);
}

static bool
cte_is_8bit_or_unencoded(const struct entity *e)
{
	return e->cte[0] == '\0' || strcmp(e->cte, "7bit") == 0 ||
	    strcmp(e->cte, "8bit") == 0 || strcmp(e->cte, "binary") == 0;
}

/* The header block is complete: decide how its body goes out. */
static void
header_block_end(struct mime8 *m)
{
	struct entity e;
	const char *cte = NULL;
	bool multipart, message;

	analyze_headers(m->hdr, m->hdrlen, &e);
	multipart = strncmp(e.type, "multipart/", 10) == 0 &&
	    e.boundary != NULL && m->depth < MIME8_MAX_DEPTH;
	message = strcmp(e.type, "message/rfc822") == 0;
	if (multipart || message) {
		/* RFC 2045 6.4: a container is 7bit once its parts are. */
		if (strcmp(e.cte, "8bit") == 0 || strcmp(e.cte, "binary") == 0)
			cte = "7bit";
		emit_headers(m, &e, cte);
		if (multipart) {
			m->bounds[m->depth++] = e.boundary;
			e.boundary = NULL;
			m->state = M_COPY;
		} else {
			m->state = M_HEADERS;
			m->top = false;
		}
	} else if (cte_is_8bit_or_unencoded(&e)) {
		emit_headers(m, &e, "quoted-printable");
		m->state = M_QP;
	} else {
		emit_headers(m, &e, NULL);
		m->state = M_COPY;
	}
	free(e.boundary);
	m->hdrlen = 0;
	if (!message)
		m->top = false;
}

static void
hdr_append(struct mime8 *m, const char *p, size_t len)
{
	if (m->hdrlen + len > m->hdrcap) {
		m->hdrcap = (m->hdrlen + len) * 2;
		m->hdr = xreallocarray(m->hdr, m->hdrcap, 1);
	}
	memcpy(m->hdr + m->hdrlen, p, len);
	m->hdrlen += len;
}

/* Quoted-printable. */

struct qp {
	char buf[QP_LINE_MAX + 8];
	size_t n;
};

static void
qp_soft_break(struct mime8 *m, struct qp *q)
{
	q->buf[q->n++] = '=';
	emit(m, q->buf, q->n);
	emit(m, "\r\n", 2);
	q->n = 0;
}

static void
qp_put(struct mime8 *m, struct qp *q, unsigned char c, bool last)
{
	static const char hex[] = "0123456789ABCDEF";
	bool lit = (c >= 33 && c <= 126 && c != '=') ||
	    ((c == ' ' || c == '\t') && !last);
	size_t need = lit ? 1 : 3;

	/* A new output line never starts with '-': no fake boundary. */
	if (q->n == 0 && c == '-' && m->line_cont)
		lit = false, need = 3;
	/* Room for the character and, unless it ends the line, a '='. */
	if (q->n + need > QP_LINE_MAX - (last ? 0 : 1)) {
		qp_soft_break(m, q);
		m->line_cont = true;
		if (c == '-')
			lit = false, need = 3;
	}
	if (lit)
		q->buf[q->n++] = (char)c;
	else {
		q->buf[q->n++] = '=';
		q->buf[q->n++] = hex[c >> 4];
		q->buf[q->n++] = hex[c & 15];
	}
}

/* Encodes a piece of a line; eol says whether the line ends here. */
static void
qp_line(struct mime8 *m, const char *p, size_t len, bool eol)
{
	struct qp q = { .n = 0 };

	for (size_t i = 0; i < len; i++)
		qp_put(m, &q, (unsigned char)p[i], eol && i + 1 == len);
	if (eol) {
		emit(m, q.buf, q.n);
		emit(m, "\r\n", 2);
		m->line_cont = false;
	} else {
		/* The line goes on in the next piece: a soft break here. */
		qp_soft_break(m, &q);
		m->line_cont = true;
	}
}

/* Boundaries (RFC 2046 5.1.1). */

/* The depth (1-based) of the boundary the line is, or 0; *close_r. */
static size_t
boundary_match(struct mime8 *m, const char *p, size_t len, bool *close_r)
{
	if (len < 3 || p[0] != '-' || p[1] != '-')
		return 0;
	for (size_t d = m->depth; d > 0; d--) {
		const char *b = m->bounds[d - 1];
		size_t bl = strlen(b), i;
		if (len - 2 < bl || memcmp(p + 2, b, bl) != 0)
			continue;
		i = 2 + bl;
		*close_r = len - i >= 2 && p[i] == '-' && p[i + 1] == '-';
		if (*close_r)
			i += 2;
		/* Only white space may follow (transport padding). */
		while (i < len && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == len)
			return d;
	}
	return 0;
}

static void
pop_to(struct mime8 *m, size_t depth)
{
	while (m->depth > depth)
		free(m->bounds[--m->depth]);
}

/* One complete line, without its line end. */
static void
handle_line(struct mime8 *m, const char *p, size_t len)
{
	bool close = false;
	size_t d;

	if (m->broken) {
		emit(m, p, len);
		emit(m, "\r\n", 2);
		return;
	}
	if (m->state == M_HEADERS) {
		if (len == 0) {
			header_block_end(m);
			return;
		}
		if (m->hdrlen + len + 2 > MIME8_MAX_HEADER) {
			/* Too much to hold: copy the rest unchanged. */
			emit(m, m->hdr, m->hdrlen);
			m->hdrlen = 0;
			m->broken = true;
			handle_line(m, p, len);
			return;
		}
		hdr_append(m, p, len);
		hdr_append(m, "\r\n", 2);
		return;
	}
	if ((d = boundary_match(m, p, len, &close)) > 0) {
		emit(m, p, len);
		emit(m, "\r\n", 2);
		if (close) {
			pop_to(m, d - 1);
			m->state = M_COPY; /* the epilogue */
		} else {
			pop_to(m, d);
			m->state = M_HEADERS;
		}
		return;
	}
	if (m->state == M_QP)
		qp_line(m, p, len, true);
	else {
		emit(m, p, len);
		emit(m, "\r\n", 2);
	}
}

/* A piece of a line too long to hold; the line goes on. */
static void
handle_piece(struct mime8 *m, const char *p, size_t len)
{
	if (!m->broken && m->state == M_HEADERS) {
		emit(m, m->hdr, m->hdrlen);
		m->hdrlen = 0;
		m->broken = true;
	}
	if (!m->broken && m->state == M_QP)
		qp_line(m, p, len, false);
	else
		emit(m, p, len);
}

void
mime8_feed(struct mime8 *m, const char *p, size_t len)
{
	while (len > 0) {
		const char *lf = memchr(p, '\n', len);
		size_t n = lf != NULL ? (size_t)(lf - p) : len;

		if (m->linelen + n > MIME8_MAX_LINE) {
			/* Keep the CR of a CRLF that may follow. */
			size_t take = MIME8_MAX_LINE - m->linelen;
			memcpy(m->line + m->linelen, p, take);
			m->linelen += take;
			size_t keep = m->line[m->linelen - 1] == '\r' ? 1 : 0;
			handle_piece(m, m->line, m->linelen - keep);
			m->linelen = keep;
			if (keep)
				m->line[0] = '\r';
			p += take;
			len -= take;
			continue;
		}
		memcpy(m->line + m->linelen, p, n);
		m->linelen += n;
		p += n;
		len -= n;
		if (lf == NULL)
			break;
		p++;
		len--;
		if (m->linelen > 0 && m->line[m->linelen - 1] == '\r')
			m->linelen--;
		handle_line(m, m->line, m->linelen);
		m->linelen = 0;
	}
}

void
mime8_finish(struct mime8 *m)
{
	if (m->linelen > 0) {
		handle_line(m, m->line, m->linelen);
		m->linelen = 0;
	}
	/* A message that ends inside its header block. */
	if (m->state == M_HEADERS && m->hdrlen > 0) {
		emit(m, m->hdr, m->hdrlen);
		m->hdrlen = 0;
	}
}
