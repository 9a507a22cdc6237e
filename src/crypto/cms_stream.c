#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "crypto/cms_stream.h"

/* BER identifier octets (X.690 8.1.2). */
#define BER_CLASS_UNIVERSAL 0
#define BER_CLASS_CONTEXT 2
#define BER_OID 6
#define BER_OCTET_STRING 4
#define BER_SEQUENCE 16

struct ber {
	cms_read_fn *read;
	void *ctx;
	int fd;
	uint64_t off; /* octets consumed */
	uint64_t content_len;
	const char *error;
	int fail; /* enum cms_fail */
	size_t pos, len;
	unsigned char buf[16384];
};

struct tlv {
	unsigned char hdr[16]; /* identifier and length octets */
	size_t idlen, hlen;
	int cls;
	bool cons;
	uint32_t num;
	bool indef;
	uint64_t len;
};

struct dbuf {
	unsigned char *p;
	size_t len, cap;
};

/* DER of the content type OIDs (RFC 5652 4-7, RFC 5083 1, RFC 3274 1.1). */
static const struct {
	int type;
	size_t len;
	unsigned char der[11];
} cms_oids[] = {
	{ CMS_T_DATA, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 1 } },
	{ CMS_T_SIGNED, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 2 } },
	{ CMS_T_ENVELOPED, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 3 } },
	{ CMS_T_AUTH_ENVELOPED, 11,
	    { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 9, 16, 1, 23 } },
	{ CMS_T_COMPRESSED, 11,
	    { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 9, 16, 1, 9 } },
};

static const char *const type_names[] = {
	[CMS_T_UNKNOWN] = "unknown",
	[CMS_T_DATA] = "data",
	[CMS_T_SIGNED] = "signed-data",
	[CMS_T_ENVELOPED] = "enveloped-data",
	[CMS_T_AUTH_ENVELOPED] = "authEnveloped-data",
	[CMS_T_COMPRESSED] = "compressed-data",
};

const char *
cms_type_name(int type)
{
	if (type < 0 || (size_t)type >= nitems(type_names))
		return "unknown";
	return type_names[type];
}

static int
ber_fill(struct ber *b)
{
	long n;

	if (b->pos < b->len)
		return 0;
	n = b->read(b->ctx, b->buf, sizeof(b->buf));
	if (n <= 0) {
		b->error = n == 0 ? "truncated CMS structure" : "read error";
		b->fail = n == 0 ? CMS_FAIL_FORMAT : CMS_FAIL_IO;
		return -1;
	}
	b->pos = 0;
	b->len = (size_t)n;
	return 0;
}

static int
ber_byte(struct ber *b, unsigned char *c)
{
	if (ber_fill(b) == -1)
		return -1;
	*c = b->buf[b->pos++];
	b->off++;
	return 0;
}

static int
dbuf_add(struct ber *b, struct dbuf *d, const void *p, size_t n)
{
	if (d == NULL)
		return 0;
	if (n > CMS_MAX_SKELETON - d->len) {
		b->error = "CMS structure too large";
		b->fail = CMS_FAIL_LIMIT;
		return -1;
	}
	if (d->len + n > d->cap) {
		d->cap = d->len + n < 4096 ? 4096 : (d->len + n) * 2;
		if (d->cap > CMS_MAX_SKELETON)
			d->cap = CMS_MAX_SKELETON;
		d->p = xreallocarray(d->p, d->cap, 1);
	}
	memcpy(d->p + d->len, p, n);
	d->len += n;
	return 0;
}

/* Reads n octets into d (when not NULL) or into the content file. */
static int
ber_take(struct ber *b, uint64_t n, struct dbuf *d, bool to_file)
{
	size_t k;

	while (n > 0) {
		if (ber_fill(b) == -1)
			return -1;
		k = b->len - b->pos;
		if (k > n)
			k = (size_t)n;
		if (to_file) {
			if (write_full(b->fd, b->buf + b->pos, k) == -1) {
				b->error = "cannot write a temporary file";
				b->fail = CMS_FAIL_IO;
				return -1;
			}
			b->content_len += k;
		} else if (dbuf_add(b, d, b->buf + b->pos, k) == -1)
			return -1;
		b->pos += k;
		b->off += k;
		n -= k;
	}
	return 0;
}

/* Identifier and length octets (X.690 8.1.2, 8.1.3). */
static int
ber_header(struct ber *b, struct tlv *t)
{
	unsigned char c;
	size_t n;

	t->hlen = 0;
	if (ber_byte(b, &c) == -1)
		return -1;
	t->hdr[t->hlen++] = c;
	t->cls = c >> 6;
	t->cons = (c & 0x20) != 0;
	t->num = c & 0x1f;
	if (t->num == 0x1f) {
		t->num = 0;
		do {
			if (t->hlen >= 5 || ber_byte(b, &c) == -1) {
				b->error = "bad BER tag";
				return -1;
			}
			t->hdr[t->hlen++] = c;
			t->num = (t->num << 7) | (c & 0x7f);
		} while (c & 0x80);
	}
	t->idlen = t->hlen;
	if (ber_byte(b, &c) == -1)
		return -1;
	t->hdr[t->hlen++] = c;
	t->indef = c == 0x80;
	t->len = 0;
	if (c < 0x80)
		t->len = c;
	else if (c > 0x80) {
		n = c & 0x7f;
		if (n > 6) {
			b->error = "bad BER length";
			return -1;
		}
		while (n-- > 0) {
			if (ber_byte(b, &c) == -1)
				return -1;
			t->hdr[t->hlen++] = c;
			t->len = (t->len << 8) | c;
		}
	}
	if (t->indef && !t->cons) {
		b->error = "indefinite length of a primitive";
		return -1;
	}
	return 0;
}

static bool
is_eoc(const struct tlv *t)
{
	return t->hlen == 2 && t->hdr[0] == 0 && t->hdr[1] == 0;
}

static bool
is_universal(const struct tlv *t, uint32_t num)
{
	return t->cls == BER_CLASS_UNIVERSAL && t->num == num;
}

/* Whether a child of a definite node fits; end is the node's end. */
static int
child_fits(struct ber *b, const struct tlv *c, uint64_t end)
{
	if (b->off > end || (!c->indef && c->len > end - b->off)) {
		b->error = "BER length overruns its container";
		return -1;
	}
	return 0;
}

/* Copies a TLV whose header has been read (d NULL: skips it). */
static int
copy_tlv(struct ber *b, const struct tlv *t, struct dbuf *d, int depth)
{
	struct tlv c;

	if (dbuf_add(b, d, t->hdr, t->hlen) == -1)
		return -1;
	if (!t->indef)
		return ber_take(b, t->len, d, false);
	if (depth >= CMS_MAX_NESTING) {
		b->error = "BER nested too deep";
		b->fail = CMS_FAIL_LIMIT;
		return -1;
	}
	for (;;) {
		if (ber_header(b, &c) == -1)
			return -1;
		if (is_eoc(&c))
			return dbuf_add(b, d, c.hdr, c.hlen);
		if (copy_tlv(b, &c, d, depth + 1) == -1)
			return -1;
	}
}

/*
 * The content octets: a primitive's contents, or the primitive OCTET
 * STRINGs inside a constructed one (X.690 8.7.3), to the file.
 */
static int
extract(struct ber *b, const struct tlv *t, int depth, bool explicit_tag)
{
	uint64_t end = b->off + t->len;
	struct tlv c;
	int n = 0;

	if (!t->cons)
		return ber_take(b, t->len, NULL, true);
	if (depth >= CMS_MAX_NESTING) {
		b->error = "BER nested too deep";
		b->fail = CMS_FAIL_LIMIT;
		return -1;
	}
	for (;;) {
		if (!t->indef && b->off == end)
			break;
		if (ber_header(b, &c) == -1)
			return -1;
		if (t->indef && is_eoc(&c))
			break;
		if (!t->indef && child_fits(b, &c, end) == -1)
			return -1;
		/* [0] EXPLICIT OCTET STRING holds exactly one. */
		if (!is_universal(&c, BER_OCTET_STRING) ||
		    (explicit_tag && n > 0)) {
			b->error = "bad CMS content encoding";
			return -1;
		}
		if (extract(b, &c, depth + 1, false) == -1)
			return -1;
		n++;
	}
	if (explicit_tag && n != 1) {
		b->error = "bad CMS content encoding";
		return -1;
	}
	return 0;
}

enum step {
	STEP_COPY,
	STEP_DESCEND,
	STEP_EXTRACT,
};

struct walk {
	struct cms_split *sp;
	bool descended; /* at the level of the content's container */
};

/* The type named by an OID's contents octets. */
static int
oid_type(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < nitems(cms_oids); i++)
		if (cms_oids[i].len == n && memcmp(cms_oids[i].der, p, n) == 0)
			return cms_oids[i].type;
	return CMS_T_UNKNOWN;
}

static bool
type_has_path(int type)
{
	return type == CMS_T_SIGNED || type == CMS_T_ENVELOPED ||
	    type == CMS_T_AUTH_ENVELOPED;
}

/* What to do with child idx of a node at level (0: ContentInfo). */
static int
walk_step(struct walk *w, int level, int idx, const struct tlv *c)
{
	int type = w->sp->type;

	switch (level) {
	case 0: /* ContentInfo: contentType, [0] EXPLICIT content */
		return idx == 1 && c->cls == BER_CLASS_CONTEXT && c->num == 0 &&
			type_has_path(type)
		    ? STEP_DESCEND
		    : STEP_COPY;
	case 1:
		return idx == 0 && is_universal(c, BER_SEQUENCE) ? STEP_DESCEND
								 : STEP_COPY;
	case 2:
		/* The first SEQUENCE: (Encapsulated|Encrypted)ContentInfo. */
		if (!w->descended && is_universal(c, BER_SEQUENCE)) {
			w->descended = true;
			return STEP_DESCEND;
		}
		return STEP_COPY;
	default: /* the content info: type, [alg,] [0] content */
		if (c->cls == BER_CLASS_CONTEXT && c->num == 0 &&
		    idx == (type == CMS_T_SIGNED ? 1 : 2))
			return STEP_EXTRACT;
		return STEP_COPY;
	}
}

static void
put_length(struct dbuf *d, uint64_t len, struct ber *b)
{
	unsigned char l[9];
	size_t n = 0;

	if (len < 0x80) {
		l[0] = (unsigned char)len;
		(void)dbuf_add(b, d, l, 1);
		return;
	}
	for (uint64_t v = len; v > 0; v >>= 8)
		n++;
	l[0] = (unsigned char)(0x80 | n);
	for (size_t i = 0; i < n; i++)
		l[1 + i] = (unsigned char)(len >> (8 * (n - 1 - i)));
	(void)dbuf_add(b, d, l, n + 1);
}

static int
walk_node(struct ber *b, struct walk *w, const struct tlv *t, int level,
    struct dbuf *out)
{
	struct dbuf in = { NULL, 0, 0 };
	uint64_t end = b->off + t->len;
	struct tlv c;
	size_t at;
	int idx, rc = -1;

	if (!t->cons || level > 3) {
		b->error = "unexpected CMS structure";
		return -1;
	}
	for (idx = 0;; idx++) {
		if (!t->indef && b->off == end)
			break;
		if (ber_header(b, &c) == -1)
			goto out;
		if (t->indef && is_eoc(&c))
			break;
		if (!t->indef && child_fits(b, &c, end) == -1)
			goto out;
		at = in.len;
		switch (walk_step(w, level, idx, &c)) {
		case STEP_DESCEND:
			if (walk_node(b, w, &c, level + 1, &in) == -1)
				goto out;
			break;
		case STEP_EXTRACT:
			if (extract(b, &c, 0, w->sp->type == CMS_T_SIGNED) ==
			    -1)
				goto out;
			w->sp->has_content = true;
			break;
		default:
			if (copy_tlv(b, &c, &in, 0) == -1)
				goto out;
			if (level == 0 && idx == 0 && is_universal(&c, BER_OID))
				w->sp->type = oid_type(
				    in.p + at + c.hlen, in.len - at - c.hlen);
			if (level == 3 && idx == 1 &&
			    w->sp->type != CMS_T_SIGNED) {
				w->sp->alg_len = in.len - at;
				w->sp->alg = xmalloc(w->sp->alg_len);
				memcpy(w->sp->alg, in.p + at, w->sp->alg_len);
			}
		}
	}
	/* Re-encoded with a definite length (X.690 8.1.3.3). */
	if (dbuf_add(b, out, t->hdr, t->idlen) == -1)
		goto out;
	put_length(out, in.len, b);
	if (b->error == NULL && in.len > 0)
		(void)dbuf_add(b, out, in.p, in.len);
	rc = b->error == NULL ? 0 : -1;
out:
	free(in.p);
	return rc;
}

int
cms_split(cms_read_fn *read, void *ctx, int content_fd, struct cms_split *sp,
    const char **error_r)
{
	struct ber *b = xcalloc(1, sizeof(*b));
	struct walk w = { sp, false };
	struct dbuf out = { NULL, 0, 0 };
	struct tlv t;
	int rc = -1;

	memset(sp, 0, sizeof(*sp));
	b->read = read;
	b->ctx = ctx;
	b->fd = content_fd;
	if (ber_header(b, &t) == -1)
		goto out;
	if (!is_universal(&t, BER_SEQUENCE) || !t.cons) {
		b->error = "not a CMS ContentInfo";
		goto out;
	}
	if (walk_node(b, &w, &t, 0, &out) == -1)
		goto out;
	if (!type_has_path(sp->type)) {
		b->error = "unsupported CMS content type";
		b->fail = CMS_FAIL_UNSUPPORTED;
		goto out;
	}
	sp->skel = out.p;
	sp->skel_len = out.len;
	sp->content_len = b->content_len;
	out.p = NULL;
	rc = 0;
out:
	if (rc == -1) {
		*error_r = b->error != NULL ? b->error : "bad CMS structure";
		sp->fail = b->fail;
		free(sp->alg);
		sp->alg = NULL;
	}
	free(out.p);
	free(b);
	return rc;
}

void
cms_split_clear(struct cms_split *sp)
{
	free(sp->skel);
	free(sp->alg);
	memset(sp, 0, sizeof(*sp));
}

int
cms_peek_type(cms_read_fn *read, void *ctx)
{
	struct ber *b = xcalloc(1, sizeof(*b));
	struct dbuf d = { NULL, 0, 0 };
	struct tlv t;
	int type = CMS_T_UNKNOWN;

	b->read = read;
	b->ctx = ctx;
	if (ber_header(b, &t) == 0 && is_universal(&t, BER_SEQUENCE) &&
	    t.cons && ber_header(b, &t) == 0 && is_universal(&t, BER_OID) &&
	    t.len < 32 && copy_tlv(b, &t, &d, 0) == 0)
		type = oid_type(d.p + t.hlen, d.len - t.hlen);
	free(d.p);
	free(b);
	return type;
}
