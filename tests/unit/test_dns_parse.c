#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dns/dns.h"

static void
names(void **state)
{
	static const unsigned char mx1[] = "\3mx1\6Remote\4test";
	static const unsigned char root[] = "";
	static const unsigned char bad_char[] = "\3m x\4test";
	static const unsigned char pointer[] = "\3mx1\xc0\x0c";
	static const unsigned char truncated[] = { 5, 'a', 'b' };
	char out[DNS_NAME_MAX];

	assert_int_equal(dns_name_decode(mx1, sizeof(mx1), out, sizeof(out)),
	    (int)sizeof(mx1));
	assert_string_equal(out, "mx1.remote.test");
	assert_int_equal(dns_name_decode(root, 1, out, sizeof(out)), 1);
	assert_string_equal(out, "");
	assert_int_equal(
	    dns_name_decode(bad_char, sizeof(bad_char), out, sizeof(out)), -1);
	assert_int_equal(
	    dns_name_decode(pointer, sizeof(pointer), out, sizeof(out)), -1);
	assert_int_equal(
	    dns_name_decode(truncated, sizeof(truncated), out, sizeof(out)),
	    -1);
	/* The output buffer is too small. */
	assert_int_equal(dns_name_decode(mx1, sizeof(mx1), out, 8), -1);
}

static void
mx_records(void **state)
{
	static const unsigned char rd[] = "\0\x0a\3mx1\6remote\4test";
	static const unsigned char null_mx[] = { 0, 0, 0 };
	static const unsigned char trailing[] = "\0\x0a\3mx1\0junk";
	struct dns_mx mx;

	assert_int_equal(dns_mx_parse(rd, sizeof(rd), &mx), 0);
	assert_int_equal(mx.pref, 10);
	assert_string_equal(mx.host, "mx1.remote.test");
	assert_int_equal(dns_mx_parse(null_mx, sizeof(null_mx), &mx), 0);
	assert_int_equal(mx.pref, 0);
	assert_string_equal(mx.host, "");
	assert_true(dns_mx_is_null(&mx, 1));
	assert_int_equal(dns_mx_parse(trailing, sizeof(trailing), &mx), -1);
	assert_int_equal(dns_mx_parse(rd, 2, &mx), -1);
}

static uint32_t seq_state;

static uint32_t
seq_rand(void)
{
	return seq_state++;
}

static void
ordering(void **state)
{
	struct dns_mx mx[5];
	const char *names[] = { "c", "a", "b", "a", "d" };
	unsigned prefs[] = { 20, 10, 10, 30, 5 };
	bool seen_b_first = false, seen_a_first = false;

	for (uint32_t round = 0; round < 20; round++) {
		for (int i = 0; i < 5; i++) {
			mx[i].pref = prefs[i];
			strcpy(mx[i].host, names[i]);
		}
		seq_state = round * 7;
		size_t n = dns_mx_sort(mx, 5, seq_rand);
		/* "a" twice: kept once, with its best preference. */
		assert_int_equal(n, 4);
		assert_string_equal(mx[0].host, "d");
		assert_int_equal(mx[1].pref, 10);
		assert_int_equal(mx[2].pref, 10);
		assert_string_equal(mx[3].host, "c");
		seen_a_first |= strcmp(mx[1].host, "a") == 0;
		seen_b_first |= strcmp(mx[1].host, "b") == 0;
	}
	/* Equal preferences come in either order. */
	assert_true(seen_a_first && seen_b_first);
	assert_false(dns_mx_is_null(mx, 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names),
		cmocka_unit_test(mx_records),
		cmocka_unit_test(ordering),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
