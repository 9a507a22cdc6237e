#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "queue/qmgr.h"
#include "queue/verify_cache.h"

static void
lines(void **state)
{
	struct vc_record r = { .ok = false, .expires = 2000, .updated = 1000 },
			 back;
	char buf[2048];
	size_t n;

	strcpy(r.addr, "nobody@example.com");
	strcpy(r.reason, "host x said: 550 5.1.1 unknown");
	n = vcache_format_line(&r, buf, sizeof(buf));
	assert_true(n > 0 && buf[n - 1] == '\n');
	assert_int_equal(vcache_parse_line(buf, n - 1, &back), 0);
	assert_false(back.ok);
	assert_int_equal(back.expires, 2000);
	assert_string_equal(back.addr, r.addr);
	assert_string_equal(back.reason, r.reason);
	/* One changed byte breaks the checksum. */
	buf[20] ^= 1;
	assert_int_equal(vcache_parse_line(buf, n - 1, &back), -1);
	assert_int_equal(vcache_parse_line("", 0, &back), -1);
	assert_int_equal(
	    vcache_parse_line("zzzzzzzz ok 1 1 a\tb", 20, &back), -1);
}

static void
load_text(void **state)
{
	struct vcache *vc = vcache_new_memory();
	struct vc_record r = { .ok = true, .expires = 500, .updated = 1 };
	char text[8192];
	size_t off = 0;

	strcpy(r.addr, "a@example.com");
	strcpy(r.reason, "250 ok");
	off += vcache_format_line(&r, text + off, sizeof(text) - off);
	strcpy(r.addr, "old@example.com");
	r.expires = 50; /* expired at now = 100 */
	off += vcache_format_line(&r, text + off, sizeof(text) - off);
	/* A later line for a@ wins: now it is bad. */
	strcpy(r.addr, "a@example.com");
	r.ok = false;
	r.expires = 900;
	off += vcache_format_line(&r, text + off, sizeof(text) - off);
	memcpy(text + off, "garbage line\n", 13);
	off += 13;
	/* A torn last line (no line end) is ignored. */
	strcpy(r.addr, "torn@example.com");
	off += vcache_format_line(&r, text + off, sizeof(text) - off) - 1;
	assert_int_equal(vcache_load_text(vc, text, off, 100), 3);
	assert_int_equal(vcache_count(vc), 1);
	const struct vc_entry *e = vcache_get(vc, "a@example.com", 100);
	assert_non_null(e);
	assert_false(e->ok);
	assert_null(vcache_get(vc, "old@example.com", 100));
	assert_null(vcache_get(vc, "torn@example.com", 100));
	/* Entries expire. */
	assert_null(vcache_get(vc, "a@example.com", 900));
	vcache_close(&vc);
}

static void
file_survives(void **state)
{
	char dir[] = "/tmp/vcache-XXXXXX", path[64];
	const char *why;
	struct vcache *vc;
	uint64_t now = clock_wall_us() / 1000000;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/verify.cache", dir);
	vc = vcache_open(path, &why);
	assert_non_null(vc);
	vcache_put(vc, "ok@example.com", true, now + 100, "250 ok", now);
	vcache_put(vc, "bad@example.com", false, now + 100, "550\tno\r\n", now);
	vcache_close(&vc);
	/* A crash while appending leaves half a line. */
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "deadbeef ok 9", 13), 13);
	close(fd);
	vc = vcache_open(path, &why);
	assert_non_null(vc);
	assert_true(vcache_get(vc, "ok@example.com", now)->ok);
	assert_string_equal(
	    vcache_get(vc, "bad@example.com", now)->reason, "550 no  ");
	/* Appends after the torn line are readable again. */
	vcache_put(vc, "new@example.com", true, now + 100, "250 ok", now);
	vcache_close(&vc);
	vc = vcache_open(path, &why);
	assert_int_equal(vcache_count(vc), 3);
	vcache_close(&vc);
	unlink(path);
	rmdir(dir);
}

static void
backoff(void **state)
{
	assert_int_equal(qmgr_backoff(1, 300, 14400), 300);
	assert_int_equal(qmgr_backoff(2, 300, 14400), 600);
	assert_int_equal(qmgr_backoff(5, 300, 14400), 4800);
	assert_int_equal(qmgr_backoff(6, 300, 14400), 9600);
	assert_int_equal(qmgr_backoff(7, 300, 14400), 14400);
	assert_int_equal(qmgr_backoff(1000, 300, 14400), 14400);
	assert_int_equal(qmgr_backoff(0, 1, 2), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lines),
		cmocka_unit_test(load_text),
		cmocka_unit_test(file_survives),
		cmocka_unit_test(backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
