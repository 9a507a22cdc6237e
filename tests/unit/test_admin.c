/* Unit tests of the admin console's building blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/api.h"
#include "admin/multipart.h"
#include "admin/password.h"
#include "admin/router.h"
#include "admin/session.h"
#include "admin/text.h"

static void
test_password_roundtrip(void **state)
{
	char *h1, *h2;
	const char *why;

	assert_int_equal(password_hash("correct horse", &h1, &why), 0);
	assert_int_equal(password_hash("correct horse", &h2, &why), 0);
	assert_true(strncmp(h1, "$scrypt$ln=15,r=8,p=1$", 22) == 0);
	/* Fresh salt: the same password hashes differently. */
	assert_string_not_equal(h1, h2);
	assert_true(password_verify("correct horse", h1));
	assert_true(password_verify("correct horse", h2));
	assert_false(password_verify("correct horsE", h1));
	assert_false(password_verify("", h1));
	/* A changed byte of the key or salt never matches. */
	char *t = strdup(h1);
	t[strlen(t) - 1] = t[strlen(t) - 1] == '0' ? '1' : '0';
	assert_false(password_verify("correct horse", t));
	free(t);
	free(h1);
	free(h2);
}

static void
test_password_bad_hashes(void **state)
{
	static const char *const bad[] = {
		"",
		"plain",
		"$scrypt$ln=15,r=8,p=1$00$00",
		/* Costs out of bounds are refused, not computed. */
		"$scrypt$ln=30,r=8,p=1$00000000000000000000000000000000$"
		"0000000000000000000000000000000000000000000000000000000000000000",
		"$scrypt$ln=15,r=99,p=1$00000000000000000000000000000000$"
		"0000000000000000000000000000000000000000000000000000000000000000",
		"$scrypt$ln=15,r=8,p=1$0000000000000000000000000000000g$"
		"0000000000000000000000000000000000000000000000000000000000000000",
		"$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(password_verify("x", bad[i]));
}

static void
test_password_random_and_strength(void **state)
{
	char a[21], b[21];
	const char *why;

	password_random(a, sizeof(a));
	password_random(b, sizeof(b));
	assert_int_equal(strlen(a), 20);
	assert_string_not_equal(a, b);
	assert_null(strpbrk(a, "0O1lI"));
	assert_int_equal(password_check_new("short", &why), -1);
	assert_int_equal(password_check_new("long enough\x01", &why), -1);
	assert_int_equal(password_check_new("long enough", &why), 0);
}

static void
test_sessions(void **state)
{
	struct sessions ss = { 0 };
	char id[SESSION_ID_HEX + 1], id2[SESSION_ID_HEX + 1];
	struct session *s, *s2;
	const uint64_t idle = 60 * 1000000ULL;

	s = sessions_create(&ss, "admin", 1000, id);
	assert_int_equal(strlen(id), 64);
	assert_ptr_equal(sessions_find(&ss, id, 2000, idle), s);
	assert_null(sessions_find(&ss, "ab", 2000, idle));
	id2[0] = '\0';
	assert_null(sessions_find(&ss, NULL, 2000, idle));
	/* The CSRF token is its own secret, not the ID. */
	assert_string_not_equal(s->csrf, id);
	assert_true(session_csrf_ok(s, s->csrf));
	assert_false(session_csrf_ok(s, id));
	assert_false(session_csrf_ok(s, NULL));
	session_set_pw_tag(s, "$scrypt$hash1");
	assert_true(session_pw_tag_ok(s, "$scrypt$hash1"));
	assert_false(session_pw_tag_ok(s, "$scrypt$hash2"));
	/* Idle too long: gone for good. */
	assert_null(sessions_find(&ss, id, 2000 + idle + 1, idle));
	assert_null(sessions_find(&ss, id, 2001, idle));
	s = sessions_create(&ss, "alice", 1000, id);
	s2 = sessions_create(&ss, "alice", 1000, id2);
	sessions_remove_user(&ss, "alice", s2);
	assert_null(sessions_find(&ss, id, 1001, idle));
	assert_ptr_equal(sessions_find(&ss, id2, 1001, idle), s2);
	sessions_clear(&ss);
	assert_int_equal(ss.n, 0);
}

static void
test_ratelimit(void **state)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	uint64_t t = 10 * 1000000ULL;

	for (int i = 0; i < RATELIMIT_FREE - 1; i++) {
		ratelimit_fail(rl, "user:a", t);
		assert_int_equal(ratelimit_blocked(rl, "user:a", t), 0);
	}
	ratelimit_fail(rl, "user:a", t);
	assert_int_equal(ratelimit_blocked(rl, "user:a", t), 30);
	assert_int_equal(ratelimit_blocked(rl, "user:b", t), 0);
	ratelimit_fail(rl, "user:a", t);
	assert_int_equal(ratelimit_blocked(rl, "user:a", t), 60);
	for (int i = 0; i < 10; i++)
		ratelimit_fail(rl, "user:a", t);
	assert_int_equal(ratelimit_blocked(rl, "user:a", t), 900);
	assert_int_equal(ratelimit_blocked(rl, "user:a", t + 900000000ULL), 0);
	ratelimit_reset(rl, "user:a");
	ratelimit_fail(rl, "user:a", t);
	assert_int_equal(ratelimit_blocked(rl, "user:a", t), 0);
	ratelimit_clear(rl);
	free(rl);
}

static void
nop(struct api_req *r)
{
}

static void
test_router(void **state)
{
	static const struct route t[] = {
		{ "GET", "/api/v1/domains", nop, 0 },
		{ "GET", "/api/v1/domains/:name", nop, 0 },
		{ "PUT", "/api/v1/domains/:name", nop, R_JSON },
		{ "GET", "/api/v1/certificates/:fpr/pem", nop, 0 },
	};
	struct route_params p;
	int status;

	assert_ptr_equal(
	    route_find(t, 4, "GET", "/api/v1/domains", &p, &status), &t[0]);
	assert_ptr_equal(
	    route_find(t, 4, "HEAD", "/api/v1/domains", &p, &status), &t[0]);
	assert_ptr_equal(
	    route_find(t, 4, "PUT", "/api/v1/domains/a.example", &p, &status),
	    &t[2]);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.v[0], "a.example");
	assert_ptr_equal(
	    route_find(t, 4, "GET", "/api/v1/certificates/ab/pem", &p, &status),
	    &t[3]);
	assert_string_equal(p.v[0], "ab");
	assert_null(
	    route_find(t, 4, "DELETE", "/api/v1/domains/x", &p, &status));
	assert_int_equal(status, 405);
	assert_int_equal(p.n, 0);
	static const char *const nf[] = { "/api/v1/domains/",
		"/api/v1/domains/..", "/api/v1/domains/.",
		"/api/v1/domains/a/b", "/api/v1/domain", "api/v1/domains", "",
		"/api/v1/domains//" };
	for (size_t i = 0; i < sizeof(nf) / sizeof(nf[0]); i++) {
		assert_null(route_find(t, 4, "GET", nf[i], &p, &status));
		assert_int_equal(status, 404);
	}
	assert_true(route_method_unsafe("POST"));
	assert_false(route_method_unsafe("GET"));
}

static void
test_multipart(void **state)
{
	static const char body[] =
	    "preamble\r\n"
	    "--b1\r\n"
	    "Content-Disposition: form-data; name=\"file\"; "
	    "filename=\"a \\\"x\\\".pem\"\r\n"
	    "Content-Type: application/octet-stream\r\n"
	    "\r\n"
	    "line1\r\n-b1 not a boundary\r\nline3\r\n"
	    "--b1\r\n"
	    "content-disposition: form-data; name=password\r\n"
	    "\r\n"
	    "pw\r\n"
	    "--b1--\r\n"
	    "epilogue";
	struct mp_form form;
	const struct mp_part *f;
	const char *why;

	assert_int_equal(multipart_parse("multipart/form-data; boundary=b1",
			     body, sizeof(body) - 1, &form, &why),
	    0);
	assert_int_equal(form.n, 2);
	f = multipart_get(&form, "file");
	assert_non_null(f);
	assert_string_equal(f->filename, "a \"x\".pem");
	assert_int_equal(
	    f->len, strlen("line1\r\n-b1 not a boundary\r\nline3"));
	assert_memory_equal(f->data, "line1\r\n-b1 ", 11);
	f = multipart_get(&form, "password");
	assert_null(f->filename);
	assert_int_equal(f->len, 2);
	assert_null(multipart_get(&form, "other"));
	multipart_free(&form);

	static const char *const bad[] = {
		"--b1\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nno end",
		"--b1\r\nContent-Disposition: attachment; name=\"f\"\r\n\r\nx\r\n--b1--",
		"--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n--b1--",
		"no boundary at all", "--b1junk"
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    multipart_parse("multipart/form-data; boundary=b1", bad[i],
			strlen(bad[i]), &form, &why),
		    -1);
		assert_int_equal(form.n, 0);
	}
	assert_int_equal(
	    multipart_parse("multipart/form-data", "x", 1, &form, &why), -1);
	assert_int_equal(multipart_parse(NULL, "x", 1, &form, &why), -1);
}

static void
test_text_json(void **state)
{
	json_t *j = text_json("a\xff"
			      "b\xc3\xa9\xed\xa0\x80",
	    8);

	/* Bad bytes and surrogates become U+FFFD; good UTF-8 stays. */
	assert_string_equal(json_string_value(j),
	    "a\xef\xbf\xbd"
	    "b\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	json_decref(j);
	j = text_json("nul\0x", 5);
	assert_string_equal(json_string_value(j), "nul\xef\xbf\xbdx");
	json_decref(j);
	assert_true(text_contains_ci("Hello World", 11, "WORLD"));
	assert_false(text_contains_ci("Hello", 5, "hello!"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password_roundtrip),
		cmocka_unit_test(test_password_bad_hashes),
		cmocka_unit_test(test_password_random_and_strength),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test(test_router),
		cmocka_unit_test(test_multipart),
		cmocka_unit_test(test_text_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
