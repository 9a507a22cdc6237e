/*
 * The MIME scanner: one pass over a message on disk, a table of parts with
 * offsets. Delimiter lines follow RFC 2046 5.1.1: "--" boundary, "--" for
 * the close delimiter, optional linear white space, the line end; a
 * delimiter of any enclosing multipart ends every part inside it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gmime/gmime.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/util.h"
#include "crypto/mime.h"

#define MIME_F_CLOSED 0x8000 /* scanner state: close delimiter seen */

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_init_once(void)
{
	g_mime_init();
}

int
mime_src_read(const struct mime_src *src, uint64_t off, void *buf, size_t n)
{
	unsigned char *p = buf;
	ssize_t r;

	if (off > src->len || n > src->len - off)
		return -1;
	while (n > 0) {
		r = pread(src->fd, p, n, (off_t)(src->off + off));
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	return 0;
}

void
mime_reader_init(struct mime_reader *r, const struct mime_src *src,
    uint64_t off, uint64_t len)
{
	r->src = src;
	r->pos = off > src->len ? src->len : off;
	r->end = len > src->len - r->pos ? src->len : r->pos + len;
	r->rpos = r->rlen = 0;
	r->error = 0;
}

static int
reader_fill(struct mime_reader *r)
{
	size_t n = sizeof(r->buf);

	if (r->end - r->pos < n)
		n = (size_t)(r->end - r->pos);
	if (n == 0)
		return 0;
	if (mime_src_read(r->src, r->pos, r->buf, n) == -1) {
		r->error = EIO;
		return -1;
	}
	r->pos += n;
	r->rpos = 0;
	r->rlen = n;
	return 1;
}

long
mime_reader_read(struct mime_reader *r, void *buf, size_t n)
{
	size_t k;
	int rc;

	if (r->rpos == r->rlen && (rc = reader_fill(r)) <= 0)
		return rc;
	k = r->rlen - r->rpos;
	if (k > n)
		k = n;
	memcpy(buf, r->buf + r->rpos, k);
	r->rpos += k;
	return (long)k;
}

/* Base64 decoding. */

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	if (c == '=')
		return -2;
	return -1;
}

void
mime_b64_reader_init(struct mime_b64_reader *b, const struct mime_src *src,
    uint64_t off, uint64_t len, bool raw)
{
	mime_reader_init(&b->r, src, off, len);
	b->raw = raw;
	b->done = false;
	b->acc = b->nacc = 0;
}

long
mime_b64_reader_read(struct mime_b64_reader *b, void *buf, size_t n)
{
	struct mime_reader *r = &b->r;
	unsigned char *out = buf;
	size_t k = 0;
	int v, rc;

	if (b->raw)
		return mime_reader_read(r, buf, n);
	if (n < 3)
		return -1; /* callers read in blocks */
	/* Up to two octets may be pending in acc, so keep room for three. */
	while (k + 3 <= n && !b->done) {
		if (r->rpos == r->rlen) {
			if ((rc = reader_fill(r)) == -1)
				return -1;
			if (rc == 0)
				break;
		}
		v = b64_value(r->buf[r->rpos++]);
		if (v == -1)
			continue;
		if (v == -2) {
			/* RFC 2045 6.8: '=' ends the data. */
			b->done = true;
			break;
		}
		b->acc = (b->acc << 6) | (unsigned)v;
		if (++b->nacc == 4) {
			out[k++] = (unsigned char)(b->acc >> 16);
			out[k++] = (unsigned char)(b->acc >> 8);
			out[k++] = (unsigned char)b->acc;
			b->acc = b->nacc = 0;
		}
	}
	if ((b->done || (r->rpos == r->rlen && r->pos == r->end)) &&
	    b->nacc > 1 && k + 2 <= n) {
		/* The final quantum: 2 or 3 characters give 1 or 2 octets. */
		if (b->nacc == 2)
			out[k++] = (unsigned char)(b->acc >> 4);
		else if (b->nacc == 3) {
			out[k++] = (unsigned char)(b->acc >> 10);
			out[k++] = (unsigned char)(b->acc >> 2);
		}
		b->acc = b->nacc = 0;
	}
	return (long)k;
}

/* Header fields. */

static bool
is_ftext(unsigned char c)
{
	/* RFC 5322 3.6.8: printable US-ASCII except colon. */
	return c >= 33 && c <= 126 && c != ':';
}

/* The length of a field name at p, if the line starts a field; else 0. */
static size_t
field_name_len(const char *p, size_t len)
{
	size_t i = 0, n;

	while (i < len && is_ftext((unsigned char)p[i]))
		i++;
	if (i == 0)
		return 0;
	n = i;
	/* RFC 5322 4.5.3: obsolete white space before the colon. */
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < len && p[i] == ':' ? n : 0;
}

static size_t
line_len(const char *p, size_t len)
{
	const char *nl = memchr(p, '\n', len);

	return nl == NULL ? len : (size_t)(nl - p) + 1;
}

int
mime_field_next(const char *hdr, size_t len, size_t *pos, struct mime_field *f)
{
	size_t p = *pos, n, name_len, colon;

	while (p < len) {
		n = line_len(hdr + p, len - p);
		name_len = field_name_len(hdr + p, len - p);
		if (name_len > 0)
			break;
		/* Not a field: a stray line, skipped (it cannot be one). */
		p += n;
	}
	if (p >= len)
		return 0;
	f->name = hdr + p;
	f->name_len = name_len;
	colon = name_len;
	while (hdr[p + colon] != ':')
		colon++;
	f->raw = hdr + p;
	f->value = hdr + p + colon + 1;
	p += line_len(hdr + p, len - p);
	/* Continuation lines start with white space (RFC 5322 2.2.3). */
	while (p < len && (hdr[p] == ' ' || hdr[p] == '\t'))
		p += line_len(hdr + p, len - p);
	f->raw_len = (size_t)(hdr + p - f->raw);
	f->value_len = (size_t)(hdr + p - f->value);
	*pos = p;
	return 1;
}

bool
mime_field_is(const struct mime_field *f, const char *name)
{
	return strlen(name) == f->name_len &&
	    strncasecmp(f->name, name, f->name_len) == 0;
}

bool
mime_field_has_prefix(const struct mime_field *f, const char *prefix)
{
	size_t n = strlen(prefix);

	return f->name_len >= n && strncasecmp(f->name, prefix, n) == 0;
}

bool
mime_is_info_field(const struct mime_field *f)
{
	return mime_field_has_prefix(f, "X-Mailseal-Info-");
}

char *
mime_field_value(const struct mime_field *f)
{
	char *v = xmalloc(f->value_len + 1), *s;
	size_t n = 0;

	for (size_t i = 0; i < f->value_len; i++)
		if (f->value[i] != '\r' && f->value[i] != '\n')
			v[n++] = f->value[i];
	v[n] = '\0';
	s = str_trim(v);
	memmove(v, s, strlen(s) + 1);
	return v;
}

/*
 * The plain forms of a From value: "local@domain", "<local@domain>" and
 * either after a display name of words or one quoted string, with the
 * conservative characters below. These take no GMime parse (GObjects for
 * every message); the rest go to internet_address_list_parse. The result
 * is the same either way (test_mime compares the two).
 */
static bool
simple_addr_char(int c, bool domain)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-')
		return true;
	return !domain && (c == '_' || c == '+');
}

/* Dot-separated runs of simple characters up to end; no "xn--" label. */
static bool
simple_dot_atom(const char *p, const char *end, bool domain)
{
	const char *run = p;

	if (p == end)
		return false;
	for (; p <= end; p++) {
		if (p < end && simple_addr_char((unsigned char)*p, domain))
			continue;
		if (p < end && *p != '.')
			return false;
		if (p == run)
			return false; /* empty run: a leading, double or last dot */
		if (domain && p - run >= 4 && strncasecmp(run, "xn--", 4) == 0)
			return false; /* IDN: GMime decodes it */
		run = p + 1;
	}
	return true;
}

static char *
simple_addr(const char *p, const char *end)
{
	const char *at = memchr(p, '@', (size_t)(end - p));
	char *addr;

	if (at == NULL || !simple_dot_atom(p, at, false) ||
	    !simple_dot_atom(at + 1, end, true))
		return NULL;
	addr = xstrndup(p, (size_t)(end - p));
	str_lower(addr);
	return addr;
}

static bool
simple_phrase(const char *p, const char *end)
{
	if (p < end && *p == '"') {
		for (p++; p < end - 1; p++)
			if (*p == '"' || *p == '\\' || *p < 0x20 || *p > 0x7e)
				return false;
		return end - p == 1 && *p == '"';
	}
	for (; p < end; p++)
		if (!simple_addr_char((unsigned char)*p, false) && *p != ' ' &&
		    *p != '\'')
			return false;
	return true;
}

static char *
simple_mailbox(const char *v)
{
	const char *end = v + strlen(v), *lt, *ne;

	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	if (end == v)
		return NULL;
	if (end[-1] != '>')
		return simple_addr(v, end);
	if ((lt = memchr(v, '<', (size_t)(end - v))) == NULL)
		return NULL;
	/* The display name, white space before the bracket trimmed. */
	ne = lt;
	while (ne > v && (ne[-1] == ' ' || ne[-1] == '\t'))
		ne--;
	if (!simple_phrase(v, ne))
		return NULL;
	return simple_addr(lt + 1, end - 1);
}

char *
mime_from_mailbox_gmime(const char *value)
{
	InternetAddressList *l;
	InternetAddress *a;
	char *addr = NULL;

	pthread_once(&gmime_once, gmime_init_once);
	if (strlen(value) > MIME_MAX_VALUE ||
	    (l = internet_address_list_parse(NULL, value)) == NULL)
		return NULL;
	if (internet_address_list_length(l) == 1 &&
	    INTERNET_ADDRESS_IS_MAILBOX(
		a = internet_address_list_get_address(l, 0))) {
		const char *s = internet_address_mailbox_get_addr(
		    INTERNET_ADDRESS_MAILBOX(a));
		if (s != NULL && *s != '\0') {
			addr = xstrdup(s);
			str_lower(addr);
		}
	}
	g_object_unref(l);
	return addr;
}

char *
mime_from_mailbox(const char *value)
{
	char *addr;

	if (strlen(value) > MIME_MAX_VALUE)
		return NULL; /* as GMime's path answers */
	addr = simple_mailbox(value);
	return addr != NULL ? addr : mime_from_mailbox_gmime(value);
}

int
mime_part_header(const struct mime_tree *t, size_t idx, char **buf_r,
    size_t *len_r, const char **error_r)
{
	const struct mime_part *p = &t->part[idx];
	size_t len = (size_t)(p->hdr_end - p->start);
	char *buf;

	if (len > MIME_MAX_HEADER) {
		*error_r = "header too large";
		return -1;
	}
	buf = xmalloc(len + 1);
	if (mime_src_read(&t->src, p->start, buf, len) == -1) {
		free(buf);
		*error_r = "read error";
		return -1;
	}
	buf[len] = '\0';
	*buf_r = buf;
	*len_r = len;
	return 0;
}

char *
mime_part_field(const struct mime_tree *t, size_t idx, const char *name)
{
	struct mime_field f;
	const char *why;
	char *hdr, *v = NULL;
	size_t len, pos = 0;

	if (mime_part_header(t, idx, &hdr, &len, &why) == -1)
		return NULL;
	while (mime_field_next(hdr, len, &pos, &f))
		if (mime_field_is(&f, name)) {
			v = mime_field_value(&f);
			break;
		}
	free(hdr);
	return v;
}

/* The scanner. */

struct scan_line {
	uint64_t off; /* of the piece in the region */
	const unsigned char *p;
	size_t len; /* line end included */
	size_t eol; /* 2 for CRLF, 1 for LF, 0 when the line goes on */
	bool bol; /* the piece starts a line */
	bool last; /* the piece ends the region */
};

struct scan {
	struct mime_tree *t;
	struct mime_reader r;
	bool in_header;
	bool have_field;
	int cur; /* the innermost open part */
	size_t prev_eol; /* line end of the previous line */
	uint64_t col; /* length of the current line so far */
	bool next_bol;
	char *hbuf;
	size_t hlen, hcap;
	const char *error;
};

/* Moves what is left to the front of the buffer and reads behind it. */
static int
scan_refill(struct scan *s)
{
	struct mime_reader *r = &s->r;
	size_t avail = r->rlen - r->rpos, n;

	memmove(r->buf, r->buf + r->rpos, avail);
	r->rpos = 0;
	r->rlen = avail;
	n = sizeof(r->buf) - avail;
	if (n > r->end - r->pos)
		n = (size_t)(r->end - r->pos);
	if (n == 0)
		return 0;
	if (mime_src_read(r->src, r->pos, r->buf + avail, n) == -1) {
		s->error = "read error";
		return -1;
	}
	r->pos += n;
	r->rlen += n;
	return 0;
}

/* The next piece of a line; 0 at the end, -1 on error. */
static int
scan_next_line(struct scan *s, struct scan_line *l)
{
	struct mime_reader *r = &s->r;
	unsigned char *nl;
	size_t avail = r->rlen - r->rpos;

	nl = avail > 0 ? memchr(r->buf + r->rpos, '\n', avail) : NULL;
	/* A line that goes on past the buffer: read more first. */
	if (nl == NULL && r->pos < r->end) {
		if (scan_refill(s) == -1)
			return -1;
		avail = r->rlen - r->rpos;
		nl = avail > 0 ? memchr(r->buf + r->rpos, '\n', avail) : NULL;
	}
	if (avail == 0)
		return 0;
	l->off = r->pos - r->rlen + r->rpos;
	l->p = r->buf + r->rpos;
	l->bol = s->next_bol;
	if (nl != NULL) {
		l->len = (size_t)(nl - l->p) + 1;
		l->eol = l->len >= 2 && nl[-1] == '\r' ? 2 : 1;
	} else {
		l->len = avail;
		l->eol = 0;
		/* A CR at the end of a full buffer may start a CRLF. */
		if (r->pos < r->end && l->len > 1 && l->p[l->len - 1] == '\r')
			l->len--;
	}
	r->rpos += l->len;
	l->last = r->rpos == r->rlen && r->pos == r->end;
	s->next_bol = l->eol > 0;
	return 1;
}

static bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Whether a line is a delimiter for boundary b; *close_r for "--b--". */
static bool
delimiter_match(const struct scan_line *l, const char *b, bool *close_r)
{
	size_t bl = strlen(b), i, n = l->len - l->eol;

	if (!l->bol || n < bl + 2 || l->p[0] != '-' || l->p[1] != '-' ||
	    memcmp(l->p + 2, b, bl) != 0)
		return false;
	i = bl + 2;
	*close_r = n >= i + 2 && l->p[i] == '-' && l->p[i + 1] == '-';
	if (*close_r)
		i += 2;
	while (i < n && is_wsp(l->p[i]))
		i++;
	/* The whole line must be seen: a cut line is not a delimiter. */
	return i == n && (l->eol > 0 || l->last);
}

static int
new_part(struct scan *s, int parent, uint64_t start)
{
	struct mime_tree *t = s->t;
	struct mime_part *p;
	int idx = (int)t->nparts, depth = 0;

	if (t->nparts >= MIME_MAX_PARTS) {
		s->error = "too many MIME parts";
		return -1;
	}
	if (parent >= 0) {
		depth = t->part[parent].depth + 1;
		if (depth > MIME_MAX_DEPTH) {
			s->error = "MIME parts nested too deep";
			return -1;
		}
	}
	if (t->nparts % 16 == 0)
		t->part = xreallocarray(t->part, t->nparts + 16, sizeof(*p));
	p = &t->part[t->nparts++];
	memset(p, 0, sizeof(*p));
	p->start = p->hdr_end = p->body = p->end = start;
	p->parent = parent;
	p->child = p->next = -1;
	p->depth = depth;
	p->type = NULL;
	if (parent >= 0) {
		struct mime_part *par = &t->part[parent];
		if (par->child < 0)
			par->child = idx;
		else {
			int c = par->child;
			while (t->part[c].next >= 0)
				c = t->part[c].next;
			t->part[c].next = idx;
		}
	}
	s->cur = idx;
	s->in_header = true;
	s->have_field = false;
	s->hlen = 0;
	return 0;
}

static int
header_append(struct scan *s, const struct scan_line *l)
{
	if (s->hlen + l->len > MIME_MAX_HEADER) {
		s->error = "header too large";
		return -1;
	}
	if (s->hlen + l->len > s->hcap) {
		s->hcap = (s->hlen + l->len) * 2;
		if (s->hcap > MIME_MAX_HEADER)
			s->hcap = MIME_MAX_HEADER;
		s->hbuf = xreallocarray(s->hbuf, s->hcap, 1);
	}
	memcpy(s->hbuf + s->hlen, l->p, l->len);
	s->hlen += l->len;
	return 0;
}

static char *
lower_dup(const char *v)
{
	char *s;

	if (v == NULL)
		return NULL;
	s = xstrdup(v);
	str_lower(s);
	return s;
}

static const struct {
	const char *name;
	int cte;
} cte_names[] = {
	{ "7bit", MIME_CTE_7BIT },
	{ "8bit", MIME_CTE_8BIT },
	{ "binary", MIME_CTE_BINARY },
	{ "quoted-printable", MIME_CTE_QP },
	{ "base64", MIME_CTE_BASE64 },
};

static int
cte_parse(const char *v)
{
	char *s = xstrdup(v), *c;
	int cte = MIME_CTE_OTHER;

	/* A comment may follow (RFC 2045 6.1 allows it). */
	if ((c = strpbrk(s, " \t(;")) != NULL)
		*c = '\0';
	for (size_t i = 0; i < nitems(cte_names); i++)
		if (strcasecmp(s, cte_names[i].name) == 0)
			cte = cte_names[i].cte;
	free(s);
	return cte;
}

static void
content_type_set(struct mime_part *p, const char *value)
{
	GMimeContentType *ct = g_mime_content_type_parse(NULL, value);
	char *mt = g_mime_content_type_get_mime_type(ct);
	const char *b;

	p->type = lower_dup(mt);
	g_free(mt);
	b = g_mime_content_type_get_parameter(ct, "boundary");
	if (b != NULL && *b != '\0' && strlen(b) <= MIME_MAX_BOUNDARY)
		p->boundary = xstrdup(b);
	p->protocol =
	    lower_dup(g_mime_content_type_get_parameter(ct, "protocol"));
	p->smime_type =
	    lower_dup(g_mime_content_type_get_parameter(ct, "smime-type"));
	if (p->name == NULL &&
	    (b = g_mime_content_type_get_parameter(ct, "name")) != NULL)
		p->name = xstrdup(b);
	g_object_unref(ct);
}

static void
disposition_set(struct mime_part *p, const char *value)
{
	GMimeContentDisposition *cd =
	    g_mime_content_disposition_parse(NULL, value);
	const char *fn;

	fn = g_mime_content_disposition_get_parameter(cd, "filename");
	if (fn != NULL) {
		free(p->name);
		p->name = xstrdup(fn);
	}
	g_object_unref(cd);
}

/* Parses the header block held in s->hbuf into part idx. */
static void
header_parse(struct scan *s, int idx)
{
	struct mime_part *p = &s->t->part[idx];
	struct mime_field f;
	size_t pos = 0;
	int nct = 0, ncte = 0;
	char *v;

	for (size_t i = 0; i < s->hlen; i++)
		if ((unsigned char)s->hbuf[i] >= 0x80)
			p->flags |= MIME_F_HDR_8BIT;
	while (mime_field_next(s->hbuf, s->hlen, &pos, &f)) {
		/*
		 * GMime makes an object per parameter: a huge value would
		 * cost many times its size. No real one comes near this.
		 */
		if (f.value_len > MIME_MAX_VALUE) {
			if (mime_field_is(&f, "Content-Type"))
				nct++;
			continue;
		}
		if (mime_field_is(&f, "Content-Type") && nct++ == 0) {
			v = mime_field_value(&f);
			content_type_set(p, v);
			free(v);
		} else if (mime_field_is(&f, "Content-Transfer-Encoding") &&
		    ncte++ == 0) {
			v = mime_field_value(&f);
			p->cte = cte_parse(v);
			free(v);
		} else if (mime_field_is(&f, "Content-Disposition")) {
			v = mime_field_value(&f);
			disposition_set(p, v);
			free(v);
		}
	}
	if (pos == 0)
		p->flags |= MIME_F_NO_FIELDS;
	if (nct > 1 || ncte > 1)
		p->flags |= MIME_F_DUP_CT;
	if (nct > 0 && p->type == NULL)
		p->type = xstrdup("application/octet-stream");
	if (nct == 0) {
		/* RFC 2046 5.1.5: the default in a digest is a message. */
		const struct mime_part *par =
		    p->parent >= 0 ? &s->t->part[p->parent] : NULL;
		p->flags |= MIME_F_NO_CT;
		p->type = xstrdup(par != NULL && par->kind == MIME_MULTIPART &&
			    strcmp(par->type, "multipart/digest") == 0
			? "message/rfc822"
			: "text/plain");
	}
	if (strncmp(p->type, "multipart/", 10) == 0 && p->boundary != NULL)
		p->kind = MIME_MULTIPART;
	else if ((strcmp(p->type, "message/rfc822") == 0 ||
		     strcmp(p->type, "message/global") == 0) &&
	    (p->cte == MIME_CTE_7BIT || p->cte == MIME_CTE_8BIT ||
		p->cte == MIME_CTE_BINARY))
		p->kind = MIME_MESSAGE;
	else
		p->kind = MIME_LEAF;
}

/*
 * Ends the header block of the current part at off; body starts at body.
 * With open, an embedded message's header block starts there too; a part
 * cut short (by a delimiter, or the end) opens nothing.
 */
static int
header_end(struct scan *s, uint64_t off, uint64_t body, bool blank, bool open)
{
	int idx = s->cur;
	struct mime_part *p = &s->t->part[idx];

	p->hdr_end = off;
	p->body = p->end = body;
	if (!blank)
		p->flags |= MIME_F_NO_BLANK;
	header_parse(s, idx);
	s->in_header = false;
	s->col = 0;
	if (open && s->t->part[idx].kind == MIME_MESSAGE)
		return new_part(s, idx, body);
	return 0;
}

/* Closes the open parts inside multipart m at a delimiter at off. */
static void
close_inside(struct scan *s, int m, uint64_t end)
{
	int c = s->cur;

	while (c != m) {
		struct mime_part *p = &s->t->part[c];
		if (end < p->start)
			end = p->start;
		p->end = end;
		if (p->body > end) {
			p->body = end;
			p->flags |= MIME_F_NO_BLANK;
		}
		if (p->hdr_end > end)
			p->hdr_end = end;
		c = p->parent;
	}
	s->cur = m;
}

/* Handles a delimiter line if l is one; 1 if it was, 0 if not, -1. */
static int
scan_delimiter(struct scan *s, const struct scan_line *l)
{
	bool close = false;
	int m;

	if (!l->bol || l->len < 3 || l->p[0] != '-' || l->p[1] != '-')
		return 0;
	for (m = s->cur; m >= 0; m = s->t->part[m].parent) {
		struct mime_part *p = &s->t->part[m];
		if (p->kind != MIME_MULTIPART || (p->flags & MIME_F_CLOSED))
			continue;
		if (delimiter_match(l, p->boundary, &close))
			break;
	}
	if (m < 0)
		return 0;
	if (s->in_header) {
		/* A part cut short in its header: what came is its header. */
		if (header_end(s, l->off, l->off, false, false) == -1)
			return -1;
	}
	close_inside(s, m, l->off >= s->prev_eol ? l->off - s->prev_eol : 0);
	if (close) {
		s->t->part[m].flags |= MIME_F_CLOSED;
		s->in_header = false;
		return 1;
	}
	return new_part(s, m, l->off + l->len) == -1 ? -1 : 1;
}

/* Whether a byte of w is zero (exact as a whole, SWAR). */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define HAS_ZERO(w) ((((w)-ONES) & ~(w)&HIGHS) != 0)

/* 8-bit, NUL and bare CR octets of a line's text: a word at a time. */
static void
body_bytes(struct mime_part *p, const unsigned char *b, size_t n)
{
	const unsigned want = MIME_F_8BIT | MIME_F_NUL | MIME_F_BARE_CR;
	size_t i = 0;
	uint64_t w;

#ifdef __SSE2__
	/* Sixteen octets at a time (SSE2 is part of x86-64), then eight. */
	__m128i high = _mm_setzero_si128(), nul = high, cr = high;
	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(b + i));
		high = _mm_or_si128(high, v);
		nul = _mm_or_si128(nul, _mm_cmpeq_epi8(v, _mm_setzero_si128()));
		cr = _mm_or_si128(cr, _mm_cmpeq_epi8(v, _mm_set1_epi8('\r')));
	}
	if (_mm_movemask_epi8(high) != 0)
		p->flags |= MIME_F_8BIT;
	if (_mm_movemask_epi8(nul) != 0)
		p->flags |= MIME_F_NUL;
	if (_mm_movemask_epi8(cr) != 0)
		p->flags |= MIME_F_BARE_CR;
#endif
	for (; i + 8 <= n && (p->flags & want) != want; i += 8) {
		memcpy(&w, b + i, 8);
		if (w & HIGHS)
			p->flags |= MIME_F_8BIT;
		if (HAS_ZERO(w))
			p->flags |= MIME_F_NUL;
		if (HAS_ZERO(w ^ (ONES * '\r')))
			p->flags |= MIME_F_BARE_CR;
	}
	for (; i < n; i++) {
		unsigned char c = b[i];
		if (c >= 0x80)
			p->flags |= MIME_F_8BIT;
		else if (c == '\0')
			p->flags |= MIME_F_NUL;
		else if (c == '\r')
			p->flags |= MIME_F_BARE_CR;
	}
}

static void
body_stats(struct scan *s, const struct scan_line *l)
{
	struct mime_part *p = &s->t->part[s->cur];
	size_t n = l->len - l->eol;

	if (l->bol)
		s->col = 0;
	s->col += n;
	if (s->col > 998)
		p->flags |= MIME_F_LONG;
	if (l->eol == 1)
		p->flags |= MIME_F_BARE_LF;
	body_bytes(p, l->p, n);
}

/* A header line; 1 when the line was consumed, 0 when it ends the block. */
static int
scan_header_line(struct scan *s, const struct scan_line *l, int *consumed_r)
{
	*consumed_r = 1;
	if (!l->bol)
		return header_append(s, l);
	if (l->len == l->eol && l->eol > 0)
		return header_end(s, l->off, l->off + l->len, true, true);
	if ((is_wsp(l->p[0]) && s->have_field) ||
	    field_name_len((const char *)l->p, l->len - l->eol) > 0) {
		s->have_field = true;
		return header_append(s, l);
	}
	/* Not a header line: the body starts here, without a blank line. */
	*consumed_r = 0;
	return header_end(s, l->off, l->off, false, true);
}

static int
scan_line(struct scan *s, const struct scan_line *l)
{
	int rc, consumed;

	if ((rc = scan_delimiter(s, l)) != 0)
		return rc == 1 ? 0 : -1;
	while (s->in_header) {
		if (scan_header_line(s, l, &consumed) == -1)
			return -1;
		if (consumed)
			return 0;
	}
	body_stats(s, l);
	return 0;
}

static void
scan_finish(struct scan *s)
{
	uint64_t end = s->t->src.len;

	if (s->in_header)
		(void)header_end(s, end, end, false, false);
	close_inside(s, -1, end);
	for (size_t i = 0; i < s->t->nparts; i++) {
		struct mime_part *p = &s->t->part[i];
		if (p->kind == MIME_MULTIPART && !(p->flags & MIME_F_CLOSED))
			p->flags |= MIME_F_UNCLOSED;
		p->flags &= ~MIME_F_CLOSED;
	}
}

int
mime_scan(
    const struct mime_src *src, struct mime_tree **tree_r, const char **error_r)
{
	struct scan s;
	struct scan_line l;
	int rc;

	pthread_once(&gmime_once, gmime_init_once);
	memset(&s, 0, sizeof(s));
	s.t = xcalloc(1, sizeof(*s.t));
	s.t->src = *src;
	s.next_bol = true;
	mime_reader_init(&s.r, &s.t->src, 0, src->len);
	rc = new_part(&s, -1, 0);
	while (rc == 0 && (rc = scan_next_line(&s, &l)) > 0) {
		rc = scan_line(&s, &l);
		if (l.eol > 0)
			s.prev_eol = l.eol;
	}
	if (rc == 0 && s.cur >= 0)
		scan_finish(&s);
	free(s.hbuf);
	if (rc == -1) {
		*error_r = s.error != NULL ? s.error : "scan error";
		mime_tree_free(&s.t);
		return -1;
	}
	*tree_r = s.t;
	return 0;
}

void
mime_tree_free(struct mime_tree **tp)
{
	struct mime_tree *t = *tp;

	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nparts; i++) {
		struct mime_part *p = &t->part[i];
		free(p->type);
		free(p->boundary);
		free(p->protocol);
		free(p->smime_type);
		free(p->name);
	}
	free(t->part);
	free(t);
	*tp = NULL;
}

size_t
mime_part_nchildren(const struct mime_tree *t, size_t idx)
{
	size_t n = 0;

	for (int c = t->part[idx].child; c >= 0; c = t->part[c].next)
		n++;
	return n;
}

bool
mime_part_is_pkcs7_mime(const struct mime_part *p)
{
	/* RFC 8551 3.2.1: and application/octet-stream named *.p7m. */
	if (strcmp(p->type, "application/pkcs7-mime") == 0 ||
	    strcmp(p->type, "application/x-pkcs7-mime") == 0)
		return true;
	return strcmp(p->type, "application/octet-stream") == 0 &&
	    p->name != NULL && str_has_suffix_ci(p->name, ".p7m");
}

bool
mime_part_is_pkcs7_signature(const struct mime_part *p)
{
	return strcmp(p->type, "application/pkcs7-signature") == 0 ||
	    strcmp(p->type, "application/x-pkcs7-signature") == 0;
}
