#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "smtp/sasl_client.h"

static void
parse_and_lookup(void **state)
{
	const char text[] = "# the relays\n"
			    "[relay.example]:587 user:pass:word\n"
			    "\n"
			    "mx.example:25   other:secret\r\n"
			    "[10.0.0.5] plain:pw\n"
			    "bad line\n"
			    "lonely\n"
			    "[unterminated:25 u:p\n"
			    "[host.example]:587 nopassword:\n";
	struct strlist errors = { 0 };
	struct sasl_map *m =
	    sasl_map_parse("sasl", text, sizeof(text) - 1, &errors);
	const struct sasl_cred *c;

	assert_int_equal(m->n, 3);
	assert_int_equal(errors.n, 4);
	assert_string_equal(errors.v[0], "sasl:6: expected user:password");
	assert_string_equal(
	    errors.v[1], "sasl:7: expected 'next-hop user:password'");
	assert_true(strncmp(errors.v[2], "sasl:8: ", 8) == 0);
	assert_string_equal(errors.v[3], "sasl:9: expected user:password");
	/* No error message repeats what the line holds. */
	for (size_t i = 0; i < errors.n; i++) {
		assert_null(strstr(errors.v[i], "u:p"));
		assert_null(strstr(errors.v[i], "lonely"));
		assert_null(strstr(errors.v[i], "nopassword"));
	}

	c = sasl_map_lookup(m, "relay.example", 587, false);
	assert_non_null(c);
	assert_string_equal(c->user, "user");
	assert_string_equal(c->pass, "pass:word");
	/* Written with brackets, looked up as host:port: still found. */
	assert_non_null(sasl_map_lookup(m, "RELAY.example", 587, true));
	assert_null(sasl_map_lookup(m, "relay.example", 25, false));
	c = sasl_map_lookup(m, "mx.example", 25, true);
	assert_string_equal(c->pass, "secret");
	c = sasl_map_lookup(m, "10.0.0.5", 25, false);
	assert_string_equal(c->user, "plain");
	assert_null(sasl_map_lookup(NULL, "x", 25, false));
	sasl_map_free(&m);
	strlist_free(&errors);
}

static void
responses(void **state)
{
	char *s = sasl_plain_response("user", "pass");
	char *d;

	/* base64 of "\0user\0pass" (RFC 4616). */
	assert_string_equal(s, "AHVzZXIAcGFzcw==");
	sasl_secret_free(s);
	s = sasl_base64("user");
	assert_string_equal(s, "dXNlcg==");
	d = sasl_unbase64(s);
	assert_string_equal(d, "user");
	free(d);
	sasl_secret_free(s);
	assert_null(sasl_unbase64("abc"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_and_lookup),
		cmocka_unit_test(responses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
