#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>

#include "common/cidr.h"

static void
parse_ok(void **state)
{
	struct cidr c;
	const char *why;
	char buf[64];

	assert_int_equal(cidr_parse("10.0.0.0/8", &c, &why), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	cidr_format(&c, buf, sizeof(buf));
	assert_string_equal(buf, "10.0.0.0/8");
	assert_int_equal(cidr_parse("192.0.2.7", &c, &why), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(cidr_parse("[::1]/128", &c, &why), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(cidr_parse("2001:db8::/32", &c, &why), 0);
	assert_int_equal(cidr_parse("[2001:db8::]/32", &c, &why), 0);
	cidr_format(&c, buf, sizeof(buf));
	assert_string_equal(buf, "[2001:db8::]/32");
	assert_int_equal(cidr_parse("0.0.0.0/0", &c, &why), 0);
}

static void
parse_bad(void **state)
{
	struct cidr c;
	const char *why;

	assert_int_equal(cidr_parse("10.0.0.1/8", &c, &why), -1);
	assert_string_equal(why, "non-zero host bits");
	assert_int_equal(cidr_parse("10.0.0.0/33", &c, &why), -1);
	assert_int_equal(cidr_parse("10.0.0.0/", &c, &why), -1);
	assert_int_equal(cidr_parse("10.0.0/8", &c, &why), -1);
	assert_int_equal(cidr_parse("[::1/128", &c, &why), -1);
	assert_int_equal(cidr_parse("::/129", &c, &why), -1);
	assert_int_equal(cidr_parse("example.com", &c, &why), -1);
	assert_int_equal(cidr_parse("", &c, &why), -1);
}

static void
contains(void **state)
{
	struct cidr v[3];
	struct cidr_list l = { v, 3 };
	const char *why;

	assert_int_equal(cidr_parse("127.0.0.0/8", &v[0], &why), 0);
	assert_int_equal(cidr_parse("192.168.10.0/23", &v[1], &why), 0);
	assert_int_equal(cidr_parse("[2001:db8:1::]/48", &v[2], &why), 0);
	assert_true(cidr_list_contains(&l, "127.0.0.2"));
	assert_true(cidr_list_contains(&l, "127.255.255.255"));
	assert_false(cidr_list_contains(&l, "128.0.0.1"));
	assert_true(cidr_list_contains(&l, "192.168.11.200"));
	assert_false(cidr_list_contains(&l, "192.168.12.1"));
	assert_false(cidr_list_contains(&l, "192.168.9.255"));
	assert_true(cidr_list_contains(&l, "2001:db8:1:ffff::1"));
	assert_false(cidr_list_contains(&l, "2001:db8:2::1"));
	/* An IPv4-mapped IPv6 client is an IPv4 client. */
	assert_true(cidr_list_contains(&l, "::ffff:127.0.0.3"));
	assert_false(cidr_list_contains(&l, "::1"));
	assert_false(cidr_list_contains(&l, "garbage"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_ok),
		cmocka_unit_test(parse_bad),
		cmocka_unit_test(contains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
