#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/util.h"
#include "crypto/mime.h"
#include "crypto/smime.h"

/* A message in an unlinked temporary file. */
static struct mime_src
src_of(const char *text, size_t len)
{
	struct mime_src src;
	int fd = mime_tmpfile(NULL);

	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, text, len), 0);
	src.fd = fd;
	src.off = 0;
	src.len = len;
	return src;
}

static struct mime_tree *
scan(const char *text)
{
	struct mime_src src = src_of(text, strlen(text));
	struct mime_tree *t;
	const char *why;

	if (mime_scan(&src, &t, &why) == -1)
		fail_msg("scan: %s", why);
	return t;
}

static void
tree_free(struct mime_tree *t)
{
	close(t->src.fd);
	mime_tree_free(&t);
}

/* The octets [from, to) of the scanned message. */
static char *
slice(const struct mime_tree *t, uint64_t from, uint64_t to)
{
	char *s = xmalloc((size_t)(to - from) + 1);

	assert_true(from <= to);
	assert_int_equal(
	    mime_src_read(&t->src, from, s, (size_t)(to - from)), 0);
	s[to - from] = '\0';
	return s;
}

static void
assert_entity(const struct mime_tree *t, size_t idx, const char *want)
{
	char *got = slice(t, t->part[idx].start, t->part[idx].end);

	assert_string_equal(got, want);
	free(got);
}

static void
assert_body(const struct mime_tree *t, size_t idx, const char *want)
{
	char *got = slice(t, t->part[idx].body, t->part[idx].end);

	assert_string_equal(got, want);
	free(got);
}

/* The canonical entity of part idx, as a string. */
static char *
canon(struct mime_tree *t, size_t idx, int mode, bool content_only)
{
	BIO *mem = BIO_new(BIO_s_mem());
	struct mime_out *o = xmalloc(sizeof(*o));
	BUF_MEM *bm;
	char *s;

	mime_out_init(o, mem);
	assert_int_equal(mime_write_entity(t, idx, mode, content_only, o), 0);
	assert_int_equal(mime_out_flush(o), 0);
	BIO_get_mem_ptr(mem, &bm);
	s = xstrndup(bm->data, bm->length);
	BIO_free(mem);
	free(o);
	return s;
}

static char *
canon_text(const char *text, int mode)
{
	struct mime_tree *t = scan(text);
	char *s = canon(t, 0, mode, true);

	tree_free(t);
	return s;
}

static void
scan_simple(void **state)
{
	struct mime_tree *t = scan("Subject: hi\r\nFrom: a@b\r\n\r\nbody\r\n");

	assert_int_equal(t->nparts, 1);
	assert_string_equal(t->part[0].type, "text/plain");
	assert_true(t->part[0].flags & MIME_F_NO_CT);
	assert_int_equal(t->part[0].hdr_end, 24);
	assert_int_equal(t->part[0].body, 26);
	assert_body(t, 0, "body\r\n");
	assert_int_equal(t->part[0].flags & ~MIME_F_NO_CT, 0);
	tree_free(t);
}

static const char nested[] =
    "From: a@b\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "plain\r\n"
    "--inner \t\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<p>html</p>\r\n"
    "--inner--\r\n"
    "inner epilogue\r\n"
    "--outer\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAEC\r\n"
    "--outerx\r\n"
    "--outer--\r\n"
    "epilogue\r\n";

static void
scan_nested(void **state)
{
	struct mime_tree *t = scan(nested);

	assert_int_equal(t->nparts, 5);
	assert_string_equal(t->part[0].type, "multipart/mixed");
	assert_string_equal(t->part[0].boundary, "outer");
	assert_int_equal(t->part[0].kind, MIME_MULTIPART);
	assert_int_equal(mime_part_nchildren(t, 0), 2);
	assert_string_equal(t->part[1].type, "multipart/alternative");
	assert_int_equal(t->part[1].parent, 0);
	assert_int_equal(t->part[2].parent, 1);
	assert_int_equal(t->part[2].depth, 2);
	/* RFC 2046 5.1.1: the CRLF before a delimiter is the delimiter's. */
	assert_entity(t, 2, "Content-Type: text/plain\r\n\r\nplain");
	assert_entity(t, 3, "Content-Type: text/html\r\n\r\n<p>html</p>");
	/* The inner epilogue belongs to the alternative. */
	assert_body(t, 1,
	    "--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
	    "--inner \t\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
	    "--inner--\r\ninner epilogue");
	/* "--outerx" is not a delimiter of "outer". */
	assert_body(t, 4, "AAEC\r\n--outerx");
	assert_int_equal(t->part[4].cte, MIME_CTE_BASE64);
	assert_int_equal(t->part[4].next, -1);
	assert_int_equal(t->part[1].next, 4);
	assert_false(t->part[0].flags & MIME_F_UNCLOSED);
	tree_free(t);
}

static void
scan_outer_closes_inner(void **state)
{
	/* An enclosing delimiter ends the inner multipart and its part. */
	struct mime_tree *t =
	    scan("Content-Type: multipart/mixed; boundary=a\r\n\r\n"
		 "--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
		 "--b\r\n\r\ninner\r\n"
		 "--a\r\n\r\nsecond\r\n"
		 "--a--\r\n");

	assert_int_equal(t->nparts, 4);
	assert_int_equal(t->part[2].parent, 1);
	assert_entity(t, 2, "\r\ninner");
	assert_true(t->part[1].flags & MIME_F_UNCLOSED);
	assert_int_equal(t->part[3].parent, 0);
	assert_entity(t, 3, "\r\nsecond");
	assert_false(t->part[0].flags & MIME_F_UNCLOSED);
	tree_free(t);
}

static void
scan_unclosed(void **state)
{
	struct mime_tree *t = scan(
	    "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\r\nx\r\n");

	assert_int_equal(t->nparts, 2);
	assert_true(t->part[0].flags & MIME_F_UNCLOSED);
	assert_body(t, 1, "x\r\n");
	tree_free(t);
}

static void
scan_message_rfc822(void **state)
{
	struct mime_tree *t =
	    scan("Content-Type: multipart/mixed; boundary=a\r\n\r\n"
		 "--a\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
		 "--a\r\nContent-Type: message/rfc822\r\n\r\n"
		 "From: c@d\r\nContent-Type: multipart/signed; boundary=s;"
		 " protocol=\"application/pkcs7-signature\"\r\n\r\n"
		 "--s\r\n\r\nsigned\r\n--s\r\n"
		 "Content-Type: application/pkcs7-signature\r\n\r\nAA==\r\n"
		 "--s--\r\n"
		 "--a--\r\n");

	assert_int_equal(t->nparts, 6);
	assert_int_equal(t->part[2].kind, MIME_MESSAGE);
	assert_int_equal(t->part[3].parent, 2);
	assert_string_equal(t->part[3].type, "multipart/signed");
	assert_string_equal(t->part[3].protocol, "application/pkcs7-signature");
	assert_int_equal(t->part[3].depth, 2);
	assert_true(mime_part_is_pkcs7_signature(&t->part[5]));
	assert_entity(t, 4, "\r\nsigned");
	tree_free(t);
}

static void
scan_digest_default(void **state)
{
	/* RFC 2046 5.1.5: in a digest the default type is a message. */
	struct mime_tree *t =
	    scan("Content-Type: multipart/digest; boundary=d\r\n\r\n"
		 "--d\r\n\r\nSubject: one\r\n\r\nfirst\r\n--d--\r\n");

	assert_string_equal(t->part[1].type, "message/rfc822");
	assert_int_equal(t->part[1].kind, MIME_MESSAGE);
	assert_int_equal(t->part[2].parent, 1);
	assert_body(t, 2, "first");
	tree_free(t);
}

static void
scan_headers(void **state)
{
	struct mime_tree *t =
	    scan("Content-Type: text/plain;\r\n\tcharset=utf-8\r\n"
		 "Content-Type: text/html\r\n"
		 "Content-Transfer-Encoding: 8BIT (a comment)\r\n"
		 "Content-Disposition: attachment;\r\n filename=\"a b.p7m\"\r\n"
		 "\r\nx");
	char *v;

	assert_string_equal(t->part[0].type, "text/plain");
	assert_true(t->part[0].flags & MIME_F_DUP_CT);
	assert_int_equal(t->part[0].cte, MIME_CTE_8BIT);
	assert_string_equal(t->part[0].name, "a b.p7m");
	v = mime_part_field(t, 0, "content-type");
	assert_string_equal(v, "text/plain;\tcharset=utf-8");
	free(v);
	tree_free(t);

	/* No blank line: the first line that is no field starts the body. */
	t = scan("Subject: x\r\nnot a header\r\nmore\r\n");
	assert_true(t->part[0].flags & MIME_F_NO_BLANK);
	assert_body(t, 0, "not a header\r\nmore\r\n");
	tree_free(t);

	t = scan("\r\nbody only\r\n");
	assert_true(t->part[0].flags & MIME_F_NO_FIELDS);
	assert_body(t, 0, "body only\r\n");
	tree_free(t);

	/* A value too long for GMime's parser is not parsed. */
	{
		char *big = xmalloc(MIME_MAX_VALUE + 200);
		int n = sprintf(big,
		    "Content-Type: multipart/mixed; "
		    "boundary=b; x=\"");
		memset(big + n, 'a', MIME_MAX_VALUE);
		strcpy(big + n + MIME_MAX_VALUE, "\"\r\n\r\n--b\r\n\r\nx\r\n");
		t = scan(big);
		assert_string_equal(
		    t->part[0].type, "application/octet-stream");
		assert_int_equal(t->part[0].kind, MIME_LEAF);
		assert_int_equal(t->nparts, 1);
		tree_free(t);
		free(big);
	}
}

static void
scan_body_flags(void **state)
{
	struct mime_tree *t;
	char *text;
	size_t n;

	t = scan("\r\n\xc3\xa9\r\n");
	assert_int_equal(
	    t->part[0].flags & ~MIME_F_NO_FIELDS, MIME_F_8BIT | MIME_F_NO_CT);
	tree_free(t);
	t = scan("\r\na\rb\r\nc\nd");
	assert_true(t->part[0].flags & MIME_F_BARE_CR);
	assert_true(t->part[0].flags & MIME_F_BARE_LF);
	assert_false(t->part[0].flags & MIME_F_8BIT);
	tree_free(t);

	/* A 998-octet line is allowed, 999 is not (RFC 5322 2.1.1). */
	text = xmalloc(2000);
	memcpy(text, "\r\n", 2);
	memset(text + 2, 'x', 998);
	memcpy(text + 1000, "\r\n", 3);
	t = scan(text);
	assert_false(t->part[0].flags & MIME_F_LONG);
	tree_free(t);
	memset(text + 2, 'x', 999);
	memcpy(text + 1001, "\r\n", 3);
	t = scan(text);
	assert_true(t->part[0].flags & MIME_F_LONG);
	tree_free(t);
	free(text);

	/* Each kind of octet found wherever it is in a longer line. */
	{
		static const struct {
			char c;
			unsigned flag;
		} odd[] = { { '\xc3', MIME_F_8BIT }, { '\0', MIME_F_NUL },
			{ '\r', MIME_F_BARE_CR } };
		char line[48];
		for (size_t k = 0; k < nitems(odd); k++)
			for (size_t at = 0; at < 41; at++) {
				struct mime_src src;
				const char *why;
				memcpy(line, "\r\n", 2);
				memset(line + 2, 'x', 41);
				line[2 + at] = odd[k].c;
				memcpy(line + 43, "\r\n", 2);
				src = src_of(line, 45);
				assert_int_equal(mime_scan(&src, &t, &why), 0);
				assert_int_equal(t->part[0].flags &
					(MIME_F_8BIT | MIME_F_NUL |
					    MIME_F_BARE_CR),
				    odd[k].flag);
				tree_free(t);
			}
	}

	/* NUL inside a body. */
	{
		static const char nul[] = "\r\na\0b\r\n";
		struct mime_src src = src_of(nul, sizeof(nul) - 1);
		const char *why;
		assert_int_equal(mime_scan(&src, &t, &why), 0);
		assert_true(t->part[0].flags & MIME_F_NUL);
		tree_free(t);
	}

	/* Each octet in long lines, where words of 8 are looked at. */
	{
		static const char *const one[] = { "\x80", "\0", "\r" };
		static const unsigned flag[] = { MIME_F_8BIT, MIME_F_NUL,
			MIME_F_BARE_CR };
		char line[40];
		for (size_t k = 0; k < 3; k++)
			for (size_t at = 2; at < 37; at++) {
				struct mime_src src;
				const char *why;
				memset(line, 'y', sizeof(line));
				memcpy(line, "\r\n", 2);
				line[at] = one[k][0];
				memcpy(line + 37, "\r\nz", 3);
				src = src_of(line, sizeof(line));
				assert_int_equal(mime_scan(&src, &t, &why), 0);
				assert_int_equal(t->part[0].flags &
					(MIME_F_8BIT | MIME_F_NUL |
					    MIME_F_BARE_CR),
				    flag[k]);
				tree_free(t);
			}
	}

	/* A line longer than the read buffer, and a delimiter after it. */
	n = 200000;
	text = xmalloc(n + 200);
	strcpy(text,
	    "Content-Type: multipart/mixed; boundary=q\r\n\r\n"
	    "--q\r\n\r\n");
	memset(text + strlen(text), 'y', n);
	strcpy(text +
		strlen("Content-Type: multipart/mixed; boundary=q\r\n"
		       "\r\n--q\r\n\r\n") +
		n,
	    "\r\n--q--\r\n");
	t = scan(text);
	assert_int_equal(t->nparts, 2);
	assert_true(t->part[1].flags & MIME_F_LONG);
	assert_int_equal(t->part[1].end - t->part[1].body, n);
	tree_free(t);
	free(text);
}

static void
scan_limits(void **state)
{
	size_t n = (MIME_MAX_PARTS + 1) * 8 + 100;
	char *text = xmalloc(n), *p;
	struct mime_src src;
	struct mime_tree *t;
	const char *why = NULL;

	p = text +
	    sprintf(text,
		"Content-Type: multipart/mixed; "
		"boundary=b\r\n\r\n");
	for (int i = 0; i < MIME_MAX_PARTS; i++)
		p += sprintf(p, "--b\r\n\r\n");
	src = src_of(text, (size_t)(p - text));
	assert_int_equal(mime_scan(&src, &t, &why), -1);
	assert_string_equal(why, "too many MIME parts");
	close(src.fd);

	/* Nesting by message/rfc822. */
	p = text;
	for (int i = 0; i <= MIME_MAX_DEPTH; i++)
		p += sprintf(p, "Content-Type: message/rfc822\r\n\r\n");
	src = src_of(text, (size_t)(p - text));
	assert_int_equal(mime_scan(&src, &t, &why), -1);
	assert_string_equal(why, "MIME parts nested too deep");
	close(src.fd);
	free(text);

	/* One header block over the limit. */
	n = MIME_MAX_HEADER + 100;
	text = xmalloc(n + 10);
	for (size_t i = 0; i < n; i += 10)
		memcpy(text + i, "X-A: 1234\n", 10);
	src = src_of(text, n);
	assert_int_equal(mime_scan(&src, &t, &why), -1);
	assert_string_equal(why, "header too large");
	close(src.fd);
	free(text);
}

static void
header_split(void **state)
{
	struct mime_tree *t =
	    scan("Received: from a\r\n\tby b\r\n"
		 "From: a@b\r\n"
		 "MIME-Version: 1.0\r\n"
		 "Content-Type: text/plain;\r\n charset=us-ascii\r\n"
		 "X-Mailseal-Info-Signer-Verified: yes\r\n"
		 "Subject: s\r\n"
		 "content-transfer-encoding: 7bit\r\n"
		 "\r\nbody\r\n");
	BIO *mem = BIO_new(BIO_s_mem());
	struct mime_out *o = xmalloc(sizeof(*o));
	const char *why;
	BUF_MEM *bm;
	char *s;

	mime_out_init(o, mem);
	assert_int_equal(mime_write_outer_header(t, o, &why), 0);
	assert_int_equal(mime_out_flush(o), 0);
	BIO_get_mem_ptr(mem, &bm);
	s = xstrndup(bm->data, bm->length);
	assert_string_equal(
	    s, "Received: from a\r\n\tby b\r\nFrom: a@b\r\nSubject: s\r\n");
	free(s);
	BIO_free(mem);
	free(o);

	/* The inner entity: the Content-* fields, in their order. */
	s = canon(t, 0, MIME_CANON_7BIT, true);
	assert_string_equal(s,
	    "Content-Type: text/plain;\r\n charset=us-ascii\r\n"
	    "content-transfer-encoding: 7bit\r\n\r\nbody\r\n");
	free(s);
	tree_free(t);
}

/* Line ends made CRLF, also when a CR and its LF come in two writes. */
static void
out_line_ends(void **state)
{
	static const char *const parts[] = { "a\rb\nc\r\nd\r", "\ne\n\r",
		"\r\n", "f\n\ng", "\r", "" };
	struct mime_out o;
	BIO *mem = BIO_new(BIO_s_mem());
	const char *exp;
	char *p;
	long n;

	mime_out_init(&o, mem);
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		mime_out_write(&o, parts[i], strlen(parts[i]));
	mime_out_write(&o, "h", 1);
	assert_int_equal(mime_out_flush(&o), 0);
	n = BIO_get_mem_data(mem, &p);
	/* e LF, then a lone CR, then CR LF: three line ends. */
	exp = "a\r\nb\r\nc\r\nd\r\ne\r\n\r\n\r\nf\r\n\r\ng\r\nh";
	assert_int_equal(n, (long)strlen(exp));
	assert_memory_equal(p, exp, (size_t)n);
	BIO_free(mem);
}

static void
canon_qp(void **state)
{
	char *s = canon_text("Content-Type: text/plain; charset=utf-8\r\n"
			     "Content-Transfer-Encoding: 8bit\r\n\r\n"
			     "Gr\xc3\xbc\xc3\x9f"
			     "e = \"x\"\r\nFrom me\r\n.\r\ntail \t\r\n"
			     "bare\nlf",
	    MIME_CANON_7BIT);

	/* RFC 2045 6.7: =XX for 8-bit and '=', white space at line end. */
	assert_string_equal(s,
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "Gr=C3=BC=C3=9Fe =3D \"x\"\r\n=46rom me\r\n=2E\r\ntail =09\r\n"
	    "bare\r\nlf");
	free(s);
}

static void
canon_qp_soft_breaks(void **state)
{
	char text[400], *s, *line, *save;

	strcpy(text, "Content-Transfer-Encoding: 8bit\r\n\r\n");
	for (int i = 0; i < 100; i++)
		strcat(text, "\xe9");
	strcat(text, "\r\n");
	s = canon_text(text, MIME_CANON_7BIT);
	/* Lines of at most 76 octets; soft breaks end in '='. */
	line = strtok_r(strstr(s, "\r\n\r\n") + 4, "\r\n", &save);
	for (int n = 0; line != NULL; n++) {
		assert_true(strlen(line) <= 76);
		if (n < 3)
			assert_int_equal(line[strlen(line) - 1], '=');
		line = strtok_r(NULL, "\r\n", &save);
	}
	free(s);
}

static void
canon_base64(void **state)
{
	static const char msg[] = "Content-Type: application/octet-stream\r\n"
				  "Content-Transfer-Encoding: binary\r\n\r\n"
				  "\x00\x01\xff\r\n";
	struct mime_src src = src_of(msg, sizeof(msg) - 1);
	struct mime_tree *t;
	const char *why;
	char *s;

	assert_int_equal(mime_scan(&src, &t, &why), 0);
	s = canon(t, 0, MIME_CANON_8BIT, true);
	assert_string_equal(s,
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nAAH/DQo=");
	free(s);
	tree_free(t);

	/* Base64 lines of 76 characters. */
	{
		char big[300];
		strcpy(big,
		    "Content-Type: image/png\r\n"
		    "Content-Transfer-Encoding: 8bit\r\n\r\n");
		memset(big + strlen(big), 0x80, 100);
		big[strlen("Content-Type: image/png\r\n"
			   "Content-Transfer-Encoding: 8bit\r\n\r\n") +
		    100] = '\0';
		s = canon_text(big, MIME_CANON_7BIT);
		assert_non_null(strstr(s, "base64\r\n\r\n"));
		assert_int_equal(strcspn(strstr(s, "\r\n\r\n") + 4, "\r"), 76);
		free(s);
	}
}

static void
canon_labels(void **state)
{
	char *s;

	/* A 7-bit body labelled 8bit is relabelled, not encoded. */
	s = canon_text("Content-Transfer-Encoding: 8bit\r\n\r\nascii\r\n",
	    MIME_CANON_7BIT);
	assert_string_equal(s,
	    "Content-Transfer-Encoding: 7bit\r\n\r\n"
	    "ascii\r\n");
	free(s);
	/* For delivery, 8bit stays. */
	s = canon_text(
	    "Content-Transfer-Encoding: 8bit\r\n\r\n\xe9\r\n", MIME_CANON_8BIT);
	assert_string_equal(s,
	    "Content-Transfer-Encoding: 8bit\r\n\r\n"
	    "\xe9\r\n");
	free(s);
	/* Encoded bodies are left alone, even when 8-bit inside. */
	s = canon_text("Content-Transfer-Encoding: base64\r\n\r\nAA\xe9=\r\n",
	    MIME_CANON_7BIT);
	assert_string_equal(s,
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    "AA\xe9=\r\n");
	free(s);
	/* Line ends are made CRLF. */
	s = canon_text(
	    "Content-Type: text/plain\n\nline\nline\rx", MIME_CANON_8BIT);
	assert_string_equal(s,
	    "Content-Type: text/plain\r\n\r\n"
	    "line\r\nline\r\nx");
	free(s);
}

static void
canon_multipart(void **state)
{
	char *s = canon_text(
	    "Content-Type: multipart/mixed; boundary=m\r\n\r\n"
	    "pre\r\n--m\r\nContent-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n\xe9\r\n"
	    "--m\r\nContent-Type: multipart/signed; boundary=s\r\n\r\n"
	    "--s\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xe9\r\n"
	    "--s\r\nContent-Type: application/pkcs7-signature\r\n\r\nAA\r\n"
	    "--s--\r\n"
	    "--m\r\nContent-Type: message/rfc822\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n"
	    "Subject: inner\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xe9\r\n"
	    "--m--\r\n",
	    MIME_CANON_7BIT);

	/* The signed part keeps its 8-bit octets: it must not change. */
	assert_string_equal(s,
	    "Content-Type: multipart/mixed; boundary=m\r\n\r\n"
	    "pre\r\n--m\r\nContent-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n"
	    "--m\r\nContent-Type: multipart/signed; boundary=s\r\n\r\n"
	    "--s\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xe9\r\n"
	    "--s\r\nContent-Type: application/pkcs7-signature\r\n\r\nAA\r\n"
	    "--s--\r\n"
	    "--m\r\nContent-Type: message/rfc822\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n"
	    "Subject: inner\r\nContent-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n=E9\r\n"
	    "--m--\r\n");
	free(s);
}

static void
b64_reader(void **state)
{
	static const char text[] = "aGVs\r\n bG8g\td29y\r\nbGQ=\r\nIGNORED";
	struct mime_src src = src_of(text, sizeof(text) - 1);
	struct mime_b64_reader b;
	char out[64];
	long n;

	mime_b64_reader_init(&b, &src, 0, src.len, false);
	n = mime_b64_reader_read(&b, out, sizeof(out));
	assert_int_equal(n, 11);
	assert_memory_equal(out, "hello world", 11);
	assert_int_equal(mime_b64_reader_read(&b, out, sizeof(out)), 0);
	close(src.fd);
}

/* The pair-table encoder writes what OpenSSL's does, at every length. */
static void
b64_encode_as_openssl(void **state)
{
	unsigned char in[2000];
	char ours[2700], theirs[2700];

	assert_int_equal(RAND_bytes(in, sizeof(in)), 1);
	in[0] = 0x00, in[1] = 0xff,
	in[2] = 0xfb; /* the first and last sextets */
	/* Every octet value, so that every sextet comes in every place. */
	for (size_t i = 0; i < 3 * 256; i++)
		in[3 + i] = (unsigned char)(i / 3 + (i % 3) * 85);
	for (size_t n = 0; n <= sizeof(in); n++) {
		size_t k = mime_b64_encode(ours, in, n);
		int m = EVP_EncodeBlock((unsigned char *)theirs, in, (int)n);
		assert_int_equal(k, (size_t)m);
		assert_int_equal(k, 4 * ((n + 2) / 3));
		assert_memory_equal(ours, theirs, k);
	}
}

/*
 * Base64 through the BIO in pieces of every size: whole lines go straight
 * to the output, the rest through the line buffer; the result is one
 * encoding of the whole, in 76-character lines (RFC 2045 6.8).
 */
static void
b64_bio_pieces(void **state)
{
	enum { N = 100000 };
	unsigned char *in = xmalloc(N);
	BIO *mem = BIO_new(BIO_s_mem()), *b64;
	struct mime_out *o = xmalloc(sizeof(*o));
	char *want = xmalloc(2 * N), *w;
	unsigned seed = 1;
	BUF_MEM *bm;

	(void)state;
	assert_int_equal(RAND_bytes(in, N), 1);
	/* "hdr\r" leaves a CR held back: it must come out before the lines. */
	w = want + sprintf(want, "hdr\r\n");
	for (size_t i = 0; i < N; i += 57) {
		if (i > 0)
			w += sprintf(w, "\r\n");
		w += EVP_EncodeBlock(
		    (unsigned char *)w, in + i, (int)(N - i < 57 ? N - i : 57));
	}
	for (int round = 0; round < 3; round++) {
		(void)BIO_reset(mem);
		mime_out_init(o, mem);
		mime_out_write(o, "hdr\r", 4);
		assert_non_null(b64 = mime_b64_bio_new(o));
		for (size_t i = 0, k; i < N; i += k) {
			/* Pieces of 1 octet, of whole lines, and of anything. */
			seed = seed * 1103515245 + 12345;
			k = round == 0	 ? 1
			    : round == 1 ? 57 * (1 + seed % 40)
					 : 1 + (seed >> 8) % 9000;
			if (k > N - i)
				k = N - i;
			assert_int_equal(
			    BIO_write(b64, in + i, (int)k), (int)k);
		}
		mime_b64_bio_final(b64);
		assert_int_equal(mime_out_flush(o), 0);
		BIO_get_mem_ptr(mem, &bm);
		assert_int_equal(bm->length, (size_t)(w - want));
		assert_memory_equal(bm->data, want, bm->length);
		BIO_free(b64);
	}
	BIO_free(mem);
	free(o);
	free(want);
	free(in);
}

static void
info_rewrite(void **state)
{
	static const char text[] =
	    "From: a@b\r\n"
	    "X-Mailseal-Info-Signer-Verified: yes\r\n"
	    "x-mailseal-info-smime-encrypted:\r\n yes\r\n"
	    "Subject: s\r\n\r\nbody\r\n";
	const char *fields[] = { "X-Mailseal-Info-SMIME-Encrypted: no" };
	const char *bad[] = { "X-Mailseal-Info-A: b\r\nBcc: x@y",
		"Subject: forged", "X-Mailseal-Info-A b" };
	struct mime_src src = src_of(text, sizeof(text) - 1);
	BIO *mem = BIO_new(BIO_s_mem());
	const char *why;
	BUF_MEM *bm;

	assert_int_equal(smime_info_rewrite(&src, mem, fields, 1, &why), 0);
	BIO_get_mem_ptr(mem, &bm);
	assert_int_equal(bm->length,
	    strlen("From: a@b\r\nSubject: s\r\n"
		   "X-Mailseal-Info-SMIME-Encrypted: no\r\n\r\nbody\r\n"));
	assert_memory_equal(bm->data,
	    "From: a@b\r\nSubject: s\r\n"
	    "X-Mailseal-Info-SMIME-Encrypted: no\r\n\r\nbody\r\n",
	    bm->length);
	for (size_t i = 0; i < nitems(bad); i++)
		assert_int_equal(
		    smime_info_rewrite(&src, mem, &bad[i], 1, &why), -1);
	BIO_free(mem);
	close(src.fd);
}

static void
from_mailbox(void **state)
{
	/* Plain forms (no GMime parse) and ones that go to GMime. */
	static const char *const values[] = {
		"alice@example.com",
		"<Alice@Example.COM>",
		"  <alice@example.com>  ",
		"Alice <alice@example.com>",
		"Alice Smith\t<alice.smith+tag@mail.example.com>",
		"\"Smith, Alice\" <alice@example.com>",
		"\"=?utf-8?q?Al=C3=AFce?=\" <alice@example.com>",
		"=?utf-8?q?Al=C3=AFce?= <alice@example.com>",
		"O'Neil <o_neil@example.com>",
		"alice@xn--bcher-kva.example",
		"<alice@XN--bcher-kva.example>",
		"alice@example.com (Alice)",
		"Alice <alice@example.com>, bob@example.com",
		"alice@example.com, bob@example.com",
		"undisclosed-recipients:;",
		"Team: alice@example.com;",
		"alice",
		"<>",
		"",
		"   ",
		"alice@",
		"@example.com",
		"a..b@example.com",
		".a@example.com",
		"a.@example.com",
		"a@example..com",
		"a@example.com.",
		"a@-example.com",
		"a@[192.0.2.1]",
		"\"a b\"@example.com",
		"Alice <alice@example.com",
		"Alice alice@example.com>",
		"Alice <<alice@example.com>>",
		"<alice@example.com> Alice",
		"\"Alice <alice@example.com>",
		"\"Al\\\"ice\" <alice@example.com>",
		"Alice\xc3\xaf <alice@example.com>",
		"<alice@ex\xc3\xa4mple.com>",
		"a@b",
		"A-B_C+D@x-y.z",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char *got = mime_from_mailbox(values[i]);
		char *want = mime_from_mailbox_gmime(values[i]);
		if ((got == NULL) != (want == NULL) ||
		    (got != NULL && strcmp(got, want) != 0))
			fail_msg("From: %s: mailseal \"%s\", GMime \"%s\"",
			    values[i], got != NULL ? got : "(none)",
			    want != NULL ? want : "(none)");
		free(got);
		free(want);
	}
	/* A value longer than GMime is given: none, either way. */
	{
		char *v = xmalloc(MIME_MAX_VALUE + 16), *got, *want;
		memset(v, 'a', MIME_MAX_VALUE);
		strcpy(v + MIME_MAX_VALUE, " <a@b.c>");
		got = mime_from_mailbox(v);
		want = mime_from_mailbox_gmime(v);
		assert_null(got);
		assert_null(want);
		free(v);
	}
	/* The plain forms give what was asked for, not just GMime's. */
	char *a = mime_from_mailbox("Alice <Alice@Example.COM>");
	assert_string_equal(a, "alice@example.com");
	free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(scan_simple),
		cmocka_unit_test(scan_nested),
		cmocka_unit_test(scan_outer_closes_inner),
		cmocka_unit_test(scan_unclosed),
		cmocka_unit_test(scan_message_rfc822),
		cmocka_unit_test(scan_digest_default),
		cmocka_unit_test(scan_headers),
		cmocka_unit_test(scan_body_flags),
		cmocka_unit_test(scan_limits),
		cmocka_unit_test(header_split),
		cmocka_unit_test(out_line_ends),
		cmocka_unit_test(canon_qp),
		cmocka_unit_test(canon_qp_soft_breaks),
		cmocka_unit_test(canon_base64),
		cmocka_unit_test(canon_labels),
		cmocka_unit_test(canon_multipart),
		cmocka_unit_test(b64_reader),
		cmocka_unit_test(b64_encode_as_openssl),
		cmocka_unit_test(b64_bio_pieces),
		cmocka_unit_test(info_rewrite),
		cmocka_unit_test(from_mailbox),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
