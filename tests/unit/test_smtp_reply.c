#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "smtp/smtp_reply.h"

static int
add(struct smtp_reply *r, const char *line, const char **why)
{
	return smtp_reply_add_line(r, line, strlen(line), why);
}

static void
single_line(void **state)
{
	struct smtp_reply r = { 0 };
	const char *why;

	assert_int_equal(add(&r, "250 2.1.5 Ok", &why), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 250);
	assert_true(r.has_dsn);
	assert_string_equal(r.dsn, "2.1.5");
	assert_string_equal(r.text, "250 2.1.5 Ok");
	assert_int_equal(r.nlines, 1);
	assert_string_equal(r.lines[0], "2.1.5 Ok");
	/* The next line starts a new reply. */
	assert_int_equal(add(&r, "354 go ahead", &why), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 354);
	assert_false(r.has_dsn);
	assert_string_equal(r.dsn, "3.0.0");
	smtp_reply_reset(&r);
}

static void
multi_line(void **state)
{
	struct smtp_reply r = { 0 };
	const char *why;

	assert_int_equal(
	    add(&r, "250-mx.remote.test Hello", &why), SMTP_REPLY_MORE);
	assert_int_equal(add(&r, "250-PIPELINING", &why), SMTP_REPLY_MORE);
	assert_int_equal(add(&r, "250-SIZE 1000", &why), SMTP_REPLY_MORE);
	assert_int_equal(add(&r, "250 8BITMIME", &why), SMTP_REPLY_DONE);
	assert_int_equal(r.nlines, 4);
	assert_string_equal(r.lines[0], "mx.remote.test Hello");
	assert_string_equal(r.lines[2], "SIZE 1000");
	assert_string_equal(r.text,
	    "250-mx.remote.test Hello 250-PIPELINING "
	    "250-SIZE 1000 250 8BITMIME");
	smtp_reply_reset(&r);
	/* A bare code ends a reply (RFC 5321 4.2: the text is optional). */
	assert_int_equal(add(&r, "221", &why), SMTP_REPLY_DONE);
	assert_string_equal(r.lines[0], "");
	smtp_reply_reset(&r);
}

static void
enhanced_codes(void **state)
{
	char dsn[12];

	assert_int_equal(
	    smtp_reply_parse_dsn("5.1.1 <x>: unknown", 550, dsn, sizeof(dsn)),
	    5);
	assert_string_equal(dsn, "5.1.1");
	assert_int_equal(
	    smtp_reply_parse_dsn("4.7.10", 451, dsn, sizeof(dsn)), 6);
	/* The class must match the reply code. */
	assert_int_equal(
	    smtp_reply_parse_dsn("5.1.1 x", 450, dsn, sizeof(dsn)), 0);
	assert_int_equal(
	    smtp_reply_parse_dsn("5.1.1x", 550, dsn, sizeof(dsn)), 0);
	assert_int_equal(
	    smtp_reply_parse_dsn("5.1234.1 x", 550, dsn, sizeof(dsn)), 0);
	assert_int_equal(
	    smtp_reply_parse_dsn("5..1 x", 550, dsn, sizeof(dsn)), 0);
}

static void
malformed(void **state)
{
	struct smtp_reply r = { 0 };
	const char *why;

	assert_int_equal(add(&r, "25", &why), SMTP_REPLY_BAD);
	assert_int_equal(add(&r, "hello", &why), SMTP_REPLY_BAD);
	assert_int_equal(add(&r, "650 no", &why), SMTP_REPLY_BAD);
	assert_int_equal(add(&r, "250x", &why), SMTP_REPLY_BAD);
	assert_int_equal(add(&r, "250-first", &why), SMTP_REPLY_MORE);
	assert_int_equal(add(&r, "550 other code", &why), SMTP_REPLY_BAD);
	assert_string_equal(why, "server reply lines with different codes");
	smtp_reply_reset(&r);
}

static void
sanitized(void **state)
{
	struct smtp_reply r = { 0 };
	const char *why;
	const char line[] = "550 bad\tbyte\xc3\xa9\x01";

	assert_int_equal(smtp_reply_add_line(&r, line, sizeof(line) - 1, &why),
	    SMTP_REPLY_DONE);
	assert_string_equal(r.text, "550 bad?byte???");
	smtp_reply_reset(&r);
}

static void
too_many_lines(void **state)
{
	struct smtp_reply r = { 0 };
	const char *why;
	int rc = SMTP_REPLY_MORE;

	for (int i = 0; i < SMTP_REPLY_LINES_MAX + 5 && rc == SMTP_REPLY_MORE;
	     i++)
		rc = add(&r, "250-more", &why);
	assert_int_equal(rc, SMTP_REPLY_BAD);
	smtp_reply_reset(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(single_line),
		cmocka_unit_test(multi_line),
		cmocka_unit_test(enhanced_codes),
		cmocka_unit_test(malformed),
		cmocka_unit_test(sanitized),
		cmocka_unit_test(too_many_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
