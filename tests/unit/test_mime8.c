#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "smtp/mime8.h"

struct out {
	char *p;
	size_t len;
};

static void
collect(void *arg, const char *p, size_t len)
{
	struct out *o = arg;

	o->p = realloc(o->p, o->len + len + 1);
	memcpy(o->p + o->len, p, len);
	o->len += len;
	o->p[o->len] = '\0';
}

/* Runs the converter, feeding the input in pieces of size step. */
static char *
convert(const char *in, size_t step)
{
	struct out o = { calloc(1, 1), 0 };
	struct mime8 *m = mime8_new(collect, &o);
	size_t len = strlen(in);

	for (size_t off = 0; off < len; off += step)
		mime8_feed(m, in + off, len - off < step ? len - off : step);
	mime8_finish(m);
	mime8_free(&m);
	return o.p;
}

static void
simple_message(void **state)
{
	const char *in = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve = x \r\n";
	const char *want = "Subject: caf\xc3\xa9\r\n"
			   "MIME-Version: 1.0\r\n"
			   "Content-Transfer-Encoding: quoted-printable\r\n"
			   "\r\n"
			   "na=C3=AFve =3D x=20\r\n";

	for (size_t step = 1; step < 40; step += 7) {
		char *out = convert(in, step);
		assert_string_equal(out, want);
		free(out);
	}
}

static void
replaces_cte(void **state)
{
	const char *in = "MIME-Version: 1.0\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "Content-Transfer-Encoding:\r\n 8bit\r\n"
			 "X-Other: yes\r\n\r\n\xe2\x82\xac\r\n";
	char *out = convert(in, 1000);

	assert_string_equal(out,
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "X-Other: yes\r\n\r\n=E2=82=AC\r\n");
	free(out);
}

static void
multipart(void **state)
{
	const char *in = "Content-Type: multipart/mixed; boundary=\"b 1\"\r\n"
			 "Content-Transfer-Encoding: 8bit\r\n\r\n"
			 "preamble\r\n"
			 "--b 1\r\n"
			 "Content-Type: text/plain\r\n\r\n"
			 "\xc3\xbc\r\n"
			 "--b 1\r\n"
			 "Content-Type: application/octet-stream\r\n"
			 "Content-Transfer-Encoding: base64\r\n\r\n"
			 "AAEC\r\n"
			 "--b 1\r\n"
			 "Content-Type: message/rfc822\r\n\r\n"
			 "Subject: inner\r\n\r\n"
			 "\xc3\xa4\r\n"
			 "--b 1--\r\n"
			 "epilogue\r\n";
	char *out = convert(in, 3);

	assert_string_equal(out,
	    "Content-Type: multipart/mixed; boundary=\"b 1\"\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n"
	    "preamble\r\n"
	    "--b 1\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "=C3=BC\r\n"
	    "--b 1\r\n"
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    "AAEC\r\n"
	    "--b 1\r\n"
	    "Content-Type: message/rfc822\r\n\r\n"
	    "Subject: inner\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "=C3=A4\r\n"
	    "--b 1--\r\n"
	    "epilogue\r\n");
	free(out);
}

static void
long_lines(void **state)
{
	char in[400], *out, *line;
	size_t n;

	strcpy(in, "Subject: x\r\n\r\n");
	n = strlen(in);
	/* 70 x then "-" at the wrap point: never a line starting "--". */
	memset(in + n, 'x', 75);
	n += 75;
	memcpy(in + n, "--boundary\xc3\xa9\r\n", 15);
	in[n + 15] = '\0';
	out = convert(in, 5);
	line = strstr(out, "\r\n\r\n") + 4;
	for (char *p = line; *p != '\0';) {
		char *e = strstr(p, "\r\n");
		assert_non_null(e);
		assert_true(e - p <= 76);
		assert_true(strncmp(p, "--", 2) != 0);
		p = e + 2;
	}
	for (char *p = out; *p != '\0'; p++)
		assert_true((unsigned char)*p < 0x80 || p < line);
	free(out);
}

static void
has_8bit(void **state)
{
	assert_false(mime8_has_8bit("plain text", 10));
	assert_true(mime8_has_8bit("caf\xc3\xa9", 5));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(simple_message),
		cmocka_unit_test(replaces_cte),
		cmocka_unit_test(multipart),
		cmocka_unit_test(long_lines),
		cmocka_unit_test(has_8bit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
