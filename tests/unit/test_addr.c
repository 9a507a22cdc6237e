#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/config.h"

static void
parse_paths(void **state)
{
	struct mailaddr a;
	const char *end, *why;

	assert_int_equal(
	    addr_parse_path("<user@Example.COM>", &end, &a, &why), 0);
	assert_string_equal(a.addr, "user@example.com");
	assert_string_equal(a.local, "user");
	assert_string_equal(a.domain, "example.com");
	assert_false(a.routed);
	assert_string_equal(end, "");
	addr_free(&a);

	assert_int_equal(addr_parse_path("<> SIZE=10", &end, &a, &why), 0);
	assert_string_equal(a.addr, "");
	assert_string_equal(end, " SIZE=10");
	addr_free(&a);

	/* Lenient clients: a space, no brackets. */
	assert_int_equal(addr_parse_path(" a.b@c.d", &end, &a, &why), 0);
	assert_string_equal(a.addr, "a.b@c.d");
	addr_free(&a);

	/* A source route is removed (RFC 5321 C). */
	assert_int_equal(addr_parse_path("<@relay.test,@b.test:u@remote.test>",
			     &end, &a, &why),
	    0);
	assert_string_equal(a.addr, "u@remote.test");
	addr_free(&a);

	assert_int_equal(
	    addr_parse_path("<\"john doe\"@example.com>", &end, &a, &why), 0);
	assert_string_equal(a.local, "\"john doe\"");
	assert_false(a.routed);
	addr_free(&a);

	assert_int_equal(addr_parse_path("<u@[192.0.2.1]>", &end, &a, &why), 0);
	assert_true(a.literal);
	addr_free(&a);

	assert_int_equal(addr_parse_path("<Postmaster>", &end, &a, &why), 0);
	assert_string_equal(a.domain, "");
	addr_free(&a);

	assert_int_equal(
	    addr_parse_path("<u@example.com.>", &end, &a, &why), 0);
	assert_string_equal(a.domain, "example.com");
	addr_free(&a);
}

static void
parse_bad(void **state)
{
	static const char *bad[] = { "<user@>", "<@>", "<user>", "<a@b",
		"<a b@c>", "<a@b c>", "<a@-b.c>", "<a@b-.c>",
		"<\"unterminated@b>", "<a@[1.2.3.4>", "<a..b@c>", "<.a@c>",
		"<\xc3\xa9@example.com>", "" };
	struct mailaddr a;
	const char *end, *why;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = addr_parse_path(bad[i], &end, &a, &why);
		if (rc == 0)
			fail_msg("accepted: %s", bad[i]);
	}
}

static struct config *
cfg_with(const char *text)
{
	struct strlist errors = { 0 };
	struct config *cfg;

	if (config_load_string("test", text, &cfg, &errors) != 0)
		fail_msg("config: %s", errors.v[0]);
	return cfg;
}

static enum relay_verdict
verdict(struct config *cfg, bool trusted, const char *path)
{
	struct mailaddr a;
	const char *end, *why;
	enum relay_verdict v;

	if (addr_parse_path(path, &end, &a, &why) != 0)
		fail_msg("cannot parse %s", path);
	v = relay_check(cfg, trusted, &a);
	addr_free(&a);
	return v;
}

/* The relay decision table, with the classic open-relay tricks. */
static void
relay_table(void **state)
{
	struct config *cfg = cfg_with("relay_domains = example.com\n");
	static const struct {
		const char *rcpt;
		enum relay_verdict outside, inside;
	} t[] = {
		{ "<u@example.com>", RELAY_DOMAIN, RELAY_NETWORK },
		{ "<U@EXAMPLE.COM>", RELAY_DOMAIN, RELAY_NETWORK },
		{ "<u@example.com.>", RELAY_DOMAIN, RELAY_NETWORK },
		{ "<u@remote.test>", RELAY_DENY, RELAY_NETWORK },
		{ "<u@remote.test.>", RELAY_DENY, RELAY_NETWORK },
		{ "<u@sub.example.com>", RELAY_DENY, RELAY_NETWORK },
		{ "<u@notexample.com>", RELAY_DENY, RELAY_NETWORK },
		{ "<u@example.com.evil.test>", RELAY_DENY, RELAY_NETWORK },
		/* The percent hack, bang paths, quoted '@'. */
		{ "<u%remote.test@example.com>", RELAY_DENY, RELAY_NETWORK },
		{ "<remote.test!u@example.com>", RELAY_DENY, RELAY_NETWORK },
		{ "<\"u@remote.test\"@example.com>", RELAY_DENY,
		    RELAY_NETWORK },
		{ "<\"u%remote.test\"@example.com>", RELAY_DENY,
		    RELAY_NETWORK },
		{ "<u%example.com@example.com>", RELAY_DOMAIN, RELAY_NETWORK },
		/* Source routes name the real destination last. */
		{ "<@example.com:u@remote.test>", RELAY_DENY, RELAY_NETWORK },
		{ "<@remote.test:u@example.com>", RELAY_DOMAIN, RELAY_NETWORK },
		/* Address literals are never a relay domain. */
		{ "<u@[127.0.0.1]>", RELAY_DENY, RELAY_NETWORK },
		{ "<postmaster>", RELAY_DOMAIN, RELAY_NETWORK },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum relay_verdict o = verdict(cfg, false, t[i].rcpt);
		enum relay_verdict n = verdict(cfg, true, t[i].rcpt);
		if (o != t[i].outside || n != t[i].inside)
			fail_msg(
			    "%s: outside %d (want %d), inside %d (want %d)",
			    t[i].rcpt, o, t[i].outside, n, t[i].inside);
	}
	config_unref(&cfg);
}

static void
relay_subdomains(void **state)
{
	struct config *cfg = cfg_with("relay_domains = example.com\n"
				      "match_subdomains = yes\n");

	assert_int_equal(
	    verdict(cfg, false, "<u@sub.example.com>"), RELAY_DOMAIN);
	assert_int_equal(
	    verdict(cfg, false, "<u@a.b.example.com>"), RELAY_DOMAIN);
	assert_int_equal(verdict(cfg, false, "<u@example.com>"), RELAY_DOMAIN);
	assert_int_equal(verdict(cfg, false, "<u@badexample.com>"), RELAY_DENY);
	config_unref(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_paths),
		cmocka_unit_test(parse_bad),
		cmocka_unit_test(relay_table),
		cmocka_unit_test(relay_subdomains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
