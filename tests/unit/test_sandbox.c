/*
 * The engine's seccomp filter (engine/sandbox.c): in a child process,
 * after sandbox_no_network(), no socket but AF_UNIX can be made.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "engine/sandbox.h"

/* Exit codes of the child: 0 all as expected, else the failed check. */
static int
child_checks(void)
{
	const char *why;
	int sv[2], fd;

	/* Before: a TCP socket can be made. */
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return 1;
	close(fd);
	if (sandbox_no_network(&why) == -1)
		return 2;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 3;
	errno = 0;
	if (socket(AF_INET, SOCK_STREAM, 0) != -1 || errno != EPERM)
		return 4;
	if (socket(AF_INET6, SOCK_DGRAM, 0) != -1 || errno != EPERM)
		return 5;
	if (socket(AF_NETLINK, SOCK_RAW, 0) != -1 || errno != EPERM)
		return 6;
	if (socket(AF_PACKET, SOCK_RAW, 0) != -1 || errno != EPERM)
		return 7;
	if (socketpair(AF_INET, SOCK_STREAM, 0, sv) != -1 || errno != EPERM)
		return 8;
	/* Unix sockets still work: the way to the dispatcher. */
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET, 0)) == -1)
		return 9;
	close(fd);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return 10;
	close(sv[0]);
	close(sv[1]);
	/* io_uring could make sockets on its own: closed. */
	if (syscall(__NR_io_uring_setup, 1, NULL) != -1 || errno != ENOSYS)
		return 11;
	/* Other system calls are untouched. */
	if (getpid() <= 0 || sandbox_no_dump(&why) == -1 ||
	    prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		return 12;
	return 0;
}

static void
no_network(void **state)
{
	int status;
	pid_t pid = fork();

	assert_int_not_equal(pid, -1);
	if (pid == 0)
		_exit(child_checks());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

#ifdef __x86_64__
/* An i386 system call (int 0x80) of socket(2) kills the process. */
static void
other_abi_killed(void **state)
{
	int status;
	pid_t pid = fork();

	assert_int_not_equal(pid, -1);
	if (pid == 0) {
		const char *why;
		long ret;
		if (sandbox_no_network(&why) == -1)
			_exit(2);
		/* i386 socketcall(SYS_SOCKET, args): number 102. */
		__asm__ volatile("int $0x80"
				 : "=a"(ret)
				 : "a"(102L), "b"(1L), "c"(0L)
				 : "memory");
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	/* SIGSEGV: a kernel without i386 emulation has no such call. */
	assert_true(WTERMSIG(status) == SIGSYS || WTERMSIG(status) == SIGSEGV);
}
#endif

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_network),
#ifdef __x86_64__
		cmocka_unit_test(other_abi_killed),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
