/*
 * Writing MIME: the CRLF normaliser, the transfer encoders and the
 * canonical form of a scanned message (RFC 8551 3.1.1 and 3.1.2, RFC 2045
 * 6.7 and 6.8, RFC 2046 4.1.1).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "common/util.h"
#include "crypto/mime.h"

/* The output. */

void
mime_out_init(struct mime_out *o, BIO *bio)
{
	memset(o, 0, sizeof(*o) - sizeof(o->buf));
	o->bio = bio;
}

static int
bio_write_all(BIO *bio, const unsigned char *p, size_t n)
{
	size_t done;

	while (n > 0) {
		if (BIO_write_ex(bio, p, n, &done) != 1 || done == 0)
			return -1;
		p += done;
		n -= done;
	}
	return 0;
}

static void
out_drain(struct mime_out *o)
{
	if (o->len == 0)
		return;
	if (o->error == 0 &&
	    (bio_write_all(o->bio, o->buf, o->len) == -1 ||
		(o->tee != NULL &&
		    bio_write_all(o->tee, o->buf, o->len) == -1)))
		o->error = EIO;
	o->written += o->len;
	o->len = 0;
}

static void
out_raw(struct mime_out *o, const unsigned char *p, size_t n)
{
	size_t k;

	while (n > 0) {
		if (o->len == sizeof(o->buf))
			out_drain(o);
		k = sizeof(o->buf) - o->len;
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, p, k);
		o->len += k;
		o->last = p[k - 1];
		p += k;
		n -= k;
	}
}

void
mime_out_write(struct mime_out *o, const void *data, size_t n)
{
	const unsigned char *p = data, *end = p + n, *q, *lim, *cr = NULL;
	static const unsigned char crlf[2] = { '\r', '\n' };
	bool cr_known = false;

	if (o->raw) {
		out_raw(o, p, n);
		return;
	}
	while (p < end) {
		if (o->pending_cr) {
			/* RFC 5322 2.3: CR and LF only together. */
			o->pending_cr = false;
			out_raw(o, crlf, 2);
			if (*p == '\n') {
				p++;
				continue;
			}
		}
		/* The next CR (looked for again once passed), then the first
		 * LF before it: memchr, not a loop over bytes. */
		if (!cr_known || (cr != NULL && cr < p)) {
			cr = memchr(p, '\r', (size_t)(end - p));
			cr_known = true;
		}
		lim = cr != NULL ? cr : end;
		if ((q = memchr(p, '\n', (size_t)(lim - p))) == NULL)
			q = lim;
		out_raw(o, p, (size_t)(q - p));
		if (q == end)
			break;
		if (*q == '\r')
			o->pending_cr = true;
		else
			out_raw(o, crlf, 2);
		p = q + 1;
	}
}

/* Text known to hold no lone CR or LF (base64, a CRLF): no scan. */
static void
out_clean(struct mime_out *o, const void *data, size_t n)
{
	static const unsigned char crlf[2] = { '\r', '\n' };

	if (o->pending_cr) {
		o->pending_cr = false;
		out_raw(o, crlf, 2);
	}
	out_raw(o, data, n);
}

void
mime_out_puts(struct mime_out *o, const char *s)
{
	mime_out_write(o, s, strlen(s));
}

void
mime_out_copy(
    struct mime_out *o, const struct mime_src *src, uint64_t off, uint64_t len)
{
	unsigned char buf[65536];
	size_t k;

	while (len > 0 && o->error == 0) {
		k = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		if (mime_src_read(src, off, buf, k) == -1) {
			o->error = EIO;
			return;
		}
		mime_out_write(o, buf, k);
		off += k;
		len -= k;
	}
}

int
mime_out_flush(struct mime_out *o)
{
	static const unsigned char crlf[2] = { '\r', '\n' };

	if (o->pending_cr) {
		o->pending_cr = false;
		out_raw(o, crlf, 2);
	}
	out_drain(o);
	return o->error == 0 ? 0 : -1;
}

/* The encoders. */

static const char hexdigits[] = "0123456789ABCDEF";

void
mime_enc_init(struct mime_enc *e, int cte)
{
	memset(e, 0, sizeof(*e));
	e->cte = cte;
	e->first_line = true;
	e->pending_cr = e->pending_ws = -1;
}

/*
 * Base64 (RFC 2045 6.8): two characters at a time from a table of the
 * 4096 pairs, half as fast again as EVP_EncodeBlock (one at a time); on
 * x86-64 with SSSE3, sixteen at a time from twelve octets (the shuffle
 * and multiply method of Mula and Lemire, "Faster Base64 Encoding and
 * Decoding using AVX2 Instructions", 2018).
 */
static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static char b64_pairs[4096][2];
static bool b64_simd;
static pthread_once_t b64_pairs_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) && defined(__GNUC__)
/* Groups of twelve octets while sixteen can be loaded; returns the count. */
__attribute__((target("ssse3"))) static size_t
b64_encode_ssse3(char *out, const unsigned char *in, size_t n)
{
	/* Octets 1 0 2 1 of each group of three, one group per 32 bits. */
	const __m128i spread =
	    _mm_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
	/* Added to a sextet by its range: A-Z, a-z, 0-9, + and /. */
	const __m128i offsets = _mm_setr_epi8(
	    65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0);
	size_t done = 0;

	for (; n - done >= 16; done += 12, out += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(in + done));
		__m128i a, b, idx, range;

		v = _mm_shuffle_epi8(v, spread);
		/* The four sextets of each group into the four octets. */
		a = _mm_mulhi_epu16(
		    _mm_and_si128(v, _mm_set1_epi32(0x0fc0fc00)),
		    _mm_set1_epi32(0x04000040));
		b = _mm_mullo_epi16(
		    _mm_and_si128(v, _mm_set1_epi32(0x003f03f0)),
		    _mm_set1_epi32(0x01000010));
		idx = _mm_or_si128(a, b);
		/* 0-25 -> 0, 26-51 -> 1, 52-61 -> 2-11, 62 -> 12, 63 -> 13. */
		range = _mm_subs_epu8(idx, _mm_set1_epi8(51));
		range =
		    _mm_sub_epi8(range, _mm_cmpgt_epi8(idx, _mm_set1_epi8(25)));
		_mm_storeu_si128((__m128i *)out,
		    _mm_add_epi8(idx, _mm_shuffle_epi8(offsets, range)));
	}
	return done;
}
#endif

static void
b64_pairs_init(void)
{
	for (unsigned i = 0; i < 4096; i++) {
		b64_pairs[i][0] = b64_alphabet[i >> 6];
		b64_pairs[i][1] = b64_alphabet[i & 63];
	}
#if defined(__x86_64__) && defined(__GNUC__)
	b64_simd = __builtin_cpu_supports("ssse3");
#endif
}

size_t
mime_b64_encode(char *out, const unsigned char *in, size_t n)
{
	char *o = out;
	uint32_t v;

	(void)pthread_once(&b64_pairs_once, b64_pairs_init);
#if defined(__x86_64__) && defined(__GNUC__)
	if (b64_simd && n >= 16) {
		size_t k = b64_encode_ssse3(o, in, n);
		o += k / 3 * 4;
		in += k;
		n -= k;
	}
#endif
	for (; n >= 3; n -= 3, in += 3, o += 4) {
		v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
		memcpy(o, b64_pairs[v >> 12], 2);
		memcpy(o + 2, b64_pairs[v & 0xfff], 2);
	}
	if (n > 0) {
		v = (uint32_t)in[0] << 16 | (n == 2 ? (uint32_t)in[1] << 8 : 0);
		o[0] = b64_alphabet[v >> 18];
		o[1] = b64_alphabet[(v >> 12) & 63];
		o[2] = n == 2 ? b64_alphabet[(v >> 6) & 63] : '=';
		o[3] = '=';
		o += 4;
	}
	return (size_t)(o - out);
}

static void
b64_line(struct mime_enc *e, struct mime_out *o)
{
	char line[80];
	size_t n;

	if (e->nin == 0)
		return;
	n = mime_b64_encode(line, e->in, e->nin);
	/* The line end comes before each line, so the last has none. */
	if (!e->first_line)
		out_clean(o, "\r\n", 2);
	out_clean(o, line, n);
	e->first_line = false;
	e->nin = 0;
}

/*
 * Whole lines of input encoded straight into the output buffer, not
 * copied through e->in and a line buffer first; returns what it took.
 */
static size_t
b64_whole_lines(
    struct mime_enc *e, struct mime_out *o, const unsigned char *p, size_t n)
{
	const size_t in = sizeof(e->in), width = 4 * ((sizeof(e->in) + 2) / 3);
	size_t done = 0;
	char *d;

	out_clean(o, NULL, 0); /* a CR held back goes out first */
	for (; n - done >= in; done += in) {
		if (sizeof(o->buf) - o->len < width + 2)
			out_drain(o);
		d = (char *)o->buf + o->len;
		if (!e->first_line) {
			*d++ = '\r';
			*d++ = '\n';
		}
		d += mime_b64_encode(d, p + done, in);
		o->len = (size_t)(d - (char *)o->buf);
		o->last = (unsigned char)d[-1];
		e->first_line = false;
	}
	return done;
}

/* RFC 2045 6.7: a token of width w, after a soft break if needed. */
static void
qp_token(struct mime_enc *e, struct mime_out *o, const char *s, size_t w)
{
	if (e->col + w > 75) {
		mime_out_write(o, "=\r\n", 3);
		e->col = 0;
	}
	mime_out_write(o, s, w);
	e->col += (unsigned)w;
}

static void
qp_encoded(struct mime_enc *e, struct mime_out *o, unsigned char c)
{
	char t[3] = { '=', hexdigits[c >> 4], hexdigits[c & 15] };

	qp_token(e, o, t, 3);
}

/* White space held back is literal unless a line break follows it. */
static void
qp_flush_ws(struct mime_enc *e, struct mime_out *o, bool at_break)
{
	char c;

	if (e->pending_ws < 0)
		return;
	c = (char)e->pending_ws;
	e->pending_ws = -1;
	if (at_break)
		qp_encoded(e, o, (unsigned char)c);
	else
		qp_token(e, o, &c, 1);
}

static void
qp_break(struct mime_enc *e, struct mime_out *o)
{
	qp_flush_ws(e, o, true);
	mime_out_write(o, "\r\n", 2);
	e->col = 0;
}

/*
 * Quoted-printable of text: CRLF, and a lone CR or LF, are line breaks
 * (RFC 2046 4.1.1 allows no other use of them in text).
 */
static void
qp_octet(struct mime_enc *e, struct mime_out *o, unsigned char c)
{
	char lit;

	if (e->pending_cr >= 0) {
		e->pending_cr = -1;
		qp_break(e, o);
		if (c == '\n')
			return;
	}
	if (c == '\r') {
		e->pending_cr = 1;
		return;
	}
	if (c == '\n') {
		qp_break(e, o);
		return;
	}
	qp_flush_ws(e, o, false);
	if (c == ' ' || c == '\t') {
		e->pending_ws = c;
		return;
	}
	/*
	 * Literal: 33-60 and 62-126. "From " and "." at the start of a line
	 * are encoded too, so that mbox and SMTP leave the line alone.
	 */
	if (c >= 33 && c <= 126 && c != '=' &&
	    !(e->col == 0 && (c == '.' || c == 'F'))) {
		lit = (char)c;
		qp_token(e, o, &lit, 1);
	} else
		qp_encoded(e, o, c);
}

void
mime_enc_write(
    struct mime_enc *e, struct mime_out *o, const void *data, size_t n)
{
	const unsigned char *p = data;

	if (e->cte == MIME_CTE_BASE64) {
		while (n > 0) {
			size_t k;
			if (e->nin == 0 && n >= sizeof(e->in)) {
				k = b64_whole_lines(e, o, p, n);
				p += k;
				n -= k;
				continue;
			}
			k = sizeof(e->in) - e->nin;
			if (k > n)
				k = n;
			memcpy(e->in + e->nin, p, k);
			e->nin += k;
			p += k;
			n -= k;
			if (e->nin == sizeof(e->in))
				b64_line(e, o);
		}
		return;
	}
	for (size_t i = 0; i < n; i++)
		qp_octet(e, o, p[i]);
}

void
mime_enc_final(struct mime_enc *e, struct mime_out *o)
{
	if (e->cte == MIME_CTE_BASE64) {
		b64_line(e, o);
		return;
	}
	if (e->pending_cr >= 0) {
		e->pending_cr = -1;
		qp_break(e, o);
	}
	/* White space at the very end is followed by the delimiter's CRLF. */
	qp_flush_ws(e, o, true);
}

/* A BIO that base64-encodes what CMS writes. */

struct b64_bio {
	struct mime_enc enc;
	struct mime_out *o;
};

static BIO_METHOD *b64_method;
static pthread_once_t b64_once = PTHREAD_ONCE_INIT;

static int
b64_bio_write(BIO *bio, const char *data, size_t n, size_t *written)
{
	struct b64_bio *b = BIO_get_data(bio);

	mime_enc_write(&b->enc, b->o, data, n);
	*written = n;
	return b->o->error == 0 ? 1 : 0;
}

static long
b64_bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
b64_bio_destroy(BIO *bio)
{
	free(BIO_get_data(bio));
	BIO_set_data(bio, NULL);
	return 1;
}

static void
b64_method_init(void)
{
	b64_method = BIO_meth_new(
	    BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mime base64");
	if (b64_method == NULL ||
	    !BIO_meth_set_write_ex(b64_method, b64_bio_write) ||
	    !BIO_meth_set_ctrl(b64_method, b64_bio_ctrl) ||
	    !BIO_meth_set_destroy(b64_method, b64_bio_destroy))
		b64_method = NULL;
}

BIO *
mime_b64_bio_new(struct mime_out *o)
{
	struct b64_bio *b;
	BIO *bio;

	pthread_once(&b64_once, b64_method_init);
	if (b64_method == NULL || (bio = BIO_new(b64_method)) == NULL)
		return NULL;
	b = xmalloc(sizeof(*b));
	mime_enc_init(&b->enc, MIME_CTE_BASE64);
	b->o = o;
	BIO_set_data(bio, b);
	BIO_set_init(bio, 1);
	return bio;
}

void
mime_b64_bio_final(BIO *bio)
{
	struct b64_bio *b = BIO_get_data(bio);

	mime_enc_final(&b->enc, b->o);
}

/* The canonical form. */

enum action {
	ACT_KEEP,
	ACT_QP,
	ACT_BASE64,
};

static bool
is_signed_multipart(const struct mime_part *p)
{
	return p->kind == MIME_MULTIPART &&
	    strcmp(p->type, "multipart/signed") == 0;
}

/* Whether a part lies inside a multipart/signed: it must not change. */
static bool
part_frozen(const struct mime_tree *t, size_t idx)
{
	for (int i = t->part[idx].parent; i >= 0; i = t->part[i].parent)
		if (is_signed_multipart(&t->part[i]))
			return true;
	return false;
}

static bool
cte_identity(int cte)
{
	return cte == MIME_CTE_7BIT || cte == MIME_CTE_8BIT ||
	    cte == MIME_CTE_BINARY;
}

/* What to do with a leaf body, and the label it gets (-1: unchanged). */
static int
leaf_plan(const struct mime_part *p, int canon, int *cte_r)
{
	bool text = strncmp(p->type, "text/", 5) == 0;
	bool eight = (p->flags & MIME_F_8BIT) != 0;
	/* In text a lone CR is a line break (normalised); elsewhere, data. */
	unsigned binary =
	    p->flags & (MIME_F_NUL | MIME_F_LONG | (text ? 0 : MIME_F_BARE_CR));

	*cte_r = -1;
	if (!cte_identity(p->cte))
		return ACT_KEEP;
	if (binary || (eight && canon == MIME_CANON_7BIT)) {
		if (text && !(p->flags & MIME_F_NUL)) {
			*cte_r = MIME_CTE_QP;
			return ACT_QP;
		}
		*cte_r = MIME_CTE_BASE64;
		return ACT_BASE64;
	}
	if (canon == MIME_CANON_7BIT && p->cte != MIME_CTE_7BIT)
		*cte_r = MIME_CTE_7BIT;
	else if (canon == MIME_CANON_8BIT && p->cte == MIME_CTE_BINARY)
		*cte_r = eight ? MIME_CTE_8BIT : MIME_CTE_7BIT;
	return ACT_KEEP;
}

/* Whether a part's output will be 7-bit. */
static bool
part_clean7(const struct mime_tree *t, size_t idx, int canon, bool frozen)
{
	const struct mime_part *p = &t->part[idx];
	int cte;

	if (p->flags & MIME_F_HDR_8BIT)
		return false;
	if (p->kind == MIME_LEAF) {
		if (frozen || leaf_plan(p, canon, &cte) == ACT_KEEP)
			return !(p->flags & (MIME_F_8BIT | MIME_F_NUL));
		return true;
	}
	if (p->flags & MIME_F_8BIT)
		return false;
	frozen = frozen || is_signed_multipart(p);
	for (int c = p->child; c >= 0; c = t->part[c].next)
		if (!part_clean7(t, (size_t)c, canon, frozen))
			return false;
	return true;
}

static int
composite_plan(const struct mime_tree *t, size_t idx, int canon)
{
	const struct mime_part *p = &t->part[idx];

	if (is_signed_multipart(p) || !cte_identity(p->cte))
		return -1;
	if (canon == MIME_CANON_7BIT && p->cte != MIME_CTE_7BIT &&
	    part_clean7(t, idx, canon, false))
		return MIME_CTE_7BIT;
	if (canon == MIME_CANON_8BIT && p->cte == MIME_CTE_BINARY)
		return part_clean7(t, idx, canon, false) ? MIME_CTE_7BIT
							 : MIME_CTE_8BIT;
	return -1;
}

static const char *const cte_labels[] = {
	[MIME_CTE_7BIT] = "7bit",
	[MIME_CTE_8BIT] = "8bit",
	[MIME_CTE_BINARY] = "binary",
	[MIME_CTE_QP] = "quoted-printable",
	[MIME_CTE_BASE64] = "base64",
};

void
mime_out_field(struct mime_out *o, const struct mime_field *f)
{
	mime_out_write(o, f->raw, f->raw_len);
	if (f->raw_len == 0 || f->raw[f->raw_len - 1] != '\n')
		mime_out_write(o, "\r\n", 2);
}

static void
blank_line(struct mime_out *o, const struct mime_part *p)
{
	if (!(p->flags & MIME_F_NO_BLANK) || p->body < p->end)
		mime_out_write(o, "\r\n", 2);
}

void
mime_out_body(struct mime_out *o, const struct mime_tree *t, size_t idx)
{
	const struct mime_part *p = &t->part[idx];

	blank_line(o, p);
	mime_out_copy(o, &t->src, p->body, p->end - p->body);
}

static int
write_fields(const struct mime_tree *t, size_t idx, bool content_only,
    int new_cte, struct mime_out *o)
{
	struct mime_field f;
	const char *why;
	char *hdr;
	size_t len, pos = 0;

	if (mime_part_header(t, idx, &hdr, &len, &why) == -1)
		return -1;
	while (mime_field_next(hdr, len, &pos, &f)) {
		if (content_only && !mime_field_has_prefix(&f, "Content-"))
			continue;
		if (new_cte >= 0 &&
		    mime_field_is(&f, "Content-Transfer-Encoding"))
			continue;
		mime_out_field(o, &f);
	}
	free(hdr);
	if (new_cte >= 0) {
		mime_out_puts(o, "Content-Transfer-Encoding: ");
		mime_out_puts(o, cte_labels[new_cte]);
		mime_out_puts(o, "\r\n");
	}
	return 0;
}

static int
write_encoded(const struct mime_tree *t, const struct mime_part *p, int cte,
    struct mime_out *o)
{
	struct mime_reader *r = xmalloc(sizeof(*r));
	struct mime_enc e;
	unsigned char buf[16384];
	long n;

	mime_enc_init(&e, cte);
	mime_reader_init(r, &t->src, p->body, p->end - p->body);
	while ((n = mime_reader_read(r, buf, sizeof(buf))) > 0)
		mime_enc_write(&e, o, buf, (size_t)n);
	mime_enc_final(&e, o);
	free(r);
	if (n == -1)
		o->error = EIO;
	return n == -1 ? -1 : 0;
}

static int
write_entity(const struct mime_tree *t, size_t idx, int canon,
    bool content_only, bool frozen, struct mime_out *o)
{
	const struct mime_part *p = &t->part[idx];
	int act = ACT_KEEP, cte = -1;
	uint64_t pos;

	if (!frozen) {
		if (p->kind == MIME_LEAF)
			act = leaf_plan(p, canon, &cte);
		else
			cte = composite_plan(t, idx, canon);
	}
	if (write_fields(t, idx, content_only, cte, o) == -1)
		return -1;
	blank_line(o, p);
	if (act != ACT_KEEP)
		return write_encoded(
		    t, p, act == ACT_QP ? MIME_CTE_QP : MIME_CTE_BASE64, o);
	if (p->kind == MIME_LEAF || frozen || is_signed_multipart(p)) {
		mime_out_copy(o, &t->src, p->body, p->end - p->body);
		return o->error == 0 ? 0 : -1;
	}
	pos = p->body;
	for (int c = p->child; c >= 0; c = t->part[c].next) {
		const struct mime_part *cp = &t->part[c];
		mime_out_copy(o, &t->src, pos, cp->start - pos);
		if (write_entity(t, (size_t)c, canon, false, false, o) == -1)
			return -1;
		pos = cp->end;
	}
	mime_out_copy(o, &t->src, pos, p->end - pos);
	return o->error == 0 ? 0 : -1;
}

int
mime_write_entity(const struct mime_tree *t, size_t idx, int canon,
    bool content_only, struct mime_out *o)
{
	return write_entity(
	    t, idx, canon, content_only, part_frozen(t, idx), o);
}

int
mime_write_outer_header(
    const struct mime_tree *t, struct mime_out *o, const char **error_r)
{
	struct mime_field f;
	char *hdr;
	size_t len, pos = 0;

	if (mime_part_header(t, 0, &hdr, &len, error_r) == -1)
		return -1;
	while (mime_field_next(hdr, len, &pos, &f)) {
		if (mime_field_has_prefix(&f, "Content-") ||
		    mime_field_is(&f, "MIME-Version") || mime_is_info_field(&f))
			continue;
		mime_out_field(o, &f);
	}
	free(hdr);
	return 0;
}

int
mime_tmpfile(const char *dir)
{
	char *path;
	int fd;

	if (dir == NULL || *dir == '\0')
		dir = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd != -1 ||
	    (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	path = xasprintf("%s/mailseal.XXXXXX", dir);
	if ((fd = mkostemp(path, O_CLOEXEC)) != -1)
		unlink(path);
	free(path);
	return fd;
}
