/* The IPC codec (common/ipc.c) and the engine protocol (engine_ipc.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc.h"
#include "engine/engine_ipc.h"

static void
fields_roundtrip(void **state)
{
	unsigned char wire[IPC_MAX];
	struct ipc_msg m, r;
	const char *why;
	uint32_t a;
	uint64_t b;
	char s[16];
	size_t n;

	ipc_init(&m, 42);
	ipc_put_u32(&m, 0xdeadbeef);
	ipc_put_u64(&m, 0x0102030405060708ULL);
	ipc_put_str(&m, "hello");
	ipc_put_str(&m, "");
	assert_false(m.error);
	n = ipc_encode(&m, wire);
	assert_int_equal(n, IPC_HEADER + 4 + 8 + 4 + 5 + 4);
	assert_int_equal(ipc_decode(wire, n, &r, &why), 0);
	assert_int_equal(r.type, 42);
	assert_int_equal(r.fd, -1);
	assert_int_equal(ipc_get_u32(&r, &a), 0);
	assert_int_equal(a, 0xdeadbeef);
	assert_int_equal(ipc_get_u64(&r, &b), 0);
	assert_true(b == 0x0102030405060708ULL);
	assert_int_equal(ipc_get_str(&r, s, sizeof(s)), 0);
	assert_string_equal(s, "hello");
	/* Not the end yet: one string is left. */
	assert_int_equal(ipc_end(&r), -1);
	assert_int_equal(ipc_get_str(&r, s, sizeof(s)), 0);
	assert_string_equal(s, "");
	assert_int_equal(ipc_end(&r), 0);
	/* Reading past the end is an error, and stays one. */
	assert_int_equal(ipc_get_u32(&r, &a), -1);
	assert_int_equal(ipc_end(&r), -1);
}

static void
malformed(void **state)
{
	unsigned char wire[IPC_MAX + 8];
	struct ipc_msg m, r;
	const char *why;
	char s[4];
	size_t n;

	/* The header's length must be the datagram's. */
	ipc_init(&m, 1);
	ipc_put_u32(&m, 7);
	n = ipc_encode(&m, wire);
	assert_int_equal(ipc_decode(wire, n - 1, &r, &why), -1);
	wire[7]++;
	assert_int_equal(ipc_decode(wire, n, &r, &why), -1);
	assert_int_equal(ipc_decode(wire, 3, &r, &why), -1);
	memset(wire, 0, sizeof(wire));
	assert_int_equal(ipc_decode(wire, sizeof(wire), &r, &why), -1);
	/* A string longer than the buffer, or with a NUL. */
	ipc_init(&m, 1);
	ipc_put_str(&m, "abcd");
	n = ipc_encode(&m, wire);
	assert_int_equal(ipc_decode(wire, n, &r, &why), 0);
	assert_int_equal(ipc_get_str(&r, s, sizeof(s)), -1);
	wire[IPC_HEADER + 5] = '\0';
	assert_int_equal(ipc_decode(wire, n, &r, &why), 0);
	assert_int_equal(ipc_get_str(&r, s, 8), -1);
	/* A length that points past the end. */
	ipc_init(&m, 1);
	ipc_put_u32(&m, 1000);
	n = ipc_encode(&m, wire);
	assert_int_equal(ipc_decode(wire, n, &r, &why), 0);
	assert_int_equal(ipc_get_str(&r, s, sizeof(s)), -1);
	/* Too much to put: the message is refused whole. */
	ipc_init(&m, 1);
	for (int i = 0; i < 2000; i++)
		ipc_put_u32(&m, (uint32_t)i);
	assert_true(m.error);
	assert_int_equal(ipc_send(-1, &m, -1, &why), -1);
}

/* Engine messages over a real socket pair, descriptors included. */
static void
engine_protocol(void **state)
{
	struct eng_msg out, in;
	const char *why;
	int sv[2], fd;

	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	memset(&out, 0, sizeof(out));
	out.type = ENG_JOB;
	out.id = 77;
	strcpy(out.qid, "1K19QTSP7J80");
	out.fd = fd;
	assert_int_equal(eng_send(sv[0], &out, &why), 0);
	close(fd);
	assert_int_equal(eng_recv(sv[1], ENG_TO_ENGINE, &in, &why), 1);
	assert_int_equal(in.type, ENG_JOB);
	assert_true(in.id == 77);
	assert_string_equal(in.qid, "1K19QTSP7J80");
	assert_true(in.fd > 2);
	assert_true(fcntl(in.fd, F_GETFD) & FD_CLOEXEC);
	close(in.fd);

	/* A JOB sent the wrong way is a protocol error. */
	out.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(eng_send(sv[0], &out, &why), 0);
	close(out.fd);
	assert_int_equal(eng_recv(sv[1], ENG_TO_DISPATCHER, &in, &why), -1);
	assert_int_equal(errno, EPROTO);

	/* A JOB without its descriptor cannot even be sent... */
	out.fd = -1;
	assert_int_equal(eng_send(sv[0], &out, &why), -1);
	/* ...and a RESULT with one is refused on receipt. */
	{
		struct ipc_msg m;
		ipc_init(&m, ENG_RESULT);
		ipc_put_u64(&m, 1);
		ipc_put_u32(&m, ENG_DONE);
		ipc_put_str(&m, "");
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_int_equal(ipc_send(sv[0], &m, fd, &why), 0);
		close(fd);
		assert_int_equal(
		    eng_recv(sv[1], ENG_TO_DISPATCHER, &in, &why), -1);
		assert_string_equal(why, "unexpected descriptor");
		/* A status out of range, and leftover bytes. */
		ipc_init(&m, ENG_RESULT);
		ipc_put_u64(&m, 1);
		ipc_put_u32(&m, 9);
		ipc_put_str(&m, "");
		assert_int_equal(ipc_send(sv[0], &m, -1, &why), 0);
		assert_int_equal(
		    eng_recv(sv[1], ENG_TO_DISPATCHER, &in, &why), -1);
		ipc_init(&m, ENG_RESULT);
		ipc_put_u64(&m, 1);
		ipc_put_u32(&m, ENG_GONE);
		ipc_put_str(&m, "ok");
		ipc_put_u32(&m, 0);
		assert_int_equal(ipc_send(sv[0], &m, -1, &why), 0);
		assert_int_equal(
		    eng_recv(sv[1], ENG_TO_DISPATCHER, &in, &why), -1);
		assert_string_equal(why, "malformed message");
		/* An OUTPUT whose queue ID is not one. */
		ipc_init(&m, ENG_OUTPUT);
		ipc_put_u64(&m, 1);
		ipc_put_str(&m, "../../etc/x");
		assert_int_equal(ipc_send(sv[0], &m, -1, &why), 0);
		assert_int_equal(
		    eng_recv(sv[1], ENG_TO_DISPATCHER, &in, &why), -1);
	}

	/* WRITTEN carries an output's queue ID and its log line. */
	memset(&out, 0, sizeof(out));
	out.type = ENG_WRITTEN;
	out.id = 5;
	strcpy(out.qid, "1K1A3TX4W1E1");
	strcpy(
	    out.reason, "engine=smime action=encrypt queued as 1K1A3TX4W1E1");
	out.fd = -1;
	assert_int_equal(eng_send(sv[0], &out, &why), 0);
	assert_int_equal(eng_recv(sv[1], ENG_TO_DISPATCHER, &in, &why), 1);
	assert_int_equal(in.type, ENG_WRITTEN);
	assert_string_equal(in.qid, "1K1A3TX4W1E1");
	assert_string_equal(in.reason, out.reason);
	/* ...and goes only towards the dispatcher. */
	assert_int_equal(eng_send(sv[0], &out, &why), 0);
	assert_int_equal(eng_recv(sv[1], ENG_TO_ENGINE, &in, &why), -1);
	assert_string_equal(why, "unexpected message type");

	/* A good RESULT; then the end of file. */
	memset(&out, 0, sizeof(out));
	out.type = ENG_RESULT;
	out.id = 5;
	out.status = ENG_STAGED;
	out.fd = -1;
	assert_int_equal(eng_send(sv[0], &out, &why), 0);
	assert_int_equal(eng_recv(sv[1], ENG_TO_DISPATCHER, &in, &why), 1);
	assert_int_equal(in.status, ENG_STAGED);
	out.status = ENG_DEFER;
	strcpy(out.reason, "policy lookup failed");
	out.fd = -1;
	assert_int_equal(eng_send(sv[0], &out, &why), 0);
	assert_int_equal(eng_recv(sv[1], ENG_TO_DISPATCHER, &in, &why), 1);
	assert_int_equal(in.status, ENG_DEFER);
	assert_string_equal(in.reason, "policy lookup failed");
	close(sv[0]);
	assert_int_equal(eng_recv(sv[1], ENG_TO_DISPATCHER, &in, &why), 0);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fields_roundtrip),
		cmocka_unit_test(malformed),
		cmocka_unit_test(engine_protocol),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
