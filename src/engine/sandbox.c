/* The engine's sandbox: see sandbox.h. */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "engine/sandbox.h"

#if defined(__x86_64__)
#define SANDBOX_ARCH AUDIT_ARCH_X86_64
/* x32 system calls are x86_64's with this bit set. */
#define SANDBOX_X32_BIT 0x40000000U
#elif defined(__aarch64__)
#define SANDBOX_ARCH AUDIT_ARCH_AARCH64
#else
#error "sandbox.c: the seccomp filter knows x86_64 and aarch64 only"
#endif

#define LOAD(field)                                                            \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))

/*
 * The first argument is a 64-bit register; socket(2) takes an int, so
 * the kernel looks only at its low half (args[0] on a little-endian
 * machine starts with it).
 */
static struct sock_filter filter[] = {
	/* [0] Another ABI could name socket(2) by another number. */
	LOAD(arch),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SANDBOX_ARCH, 1, 0),
	RET(SECCOMP_RET_KILL_PROCESS),
	LOAD(nr),
#ifdef SANDBOX_X32_BIT
	BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, SANDBOX_X32_BIT, 0, 1),
	RET(SECCOMP_RET_KILL_PROCESS),
#endif
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 3, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socketpair, 2, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 5, 0),
	RET(SECCOMP_RET_ALLOW),
	/* socket, socketpair: the domain. */
	LOAD(args[0]),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 1),
	RET(SECCOMP_RET_ALLOW),
	RET(SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
	/* io_uring_setup */
	RET(SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
};

int
sandbox_no_network(const char **error_r)
{
	struct sock_fprog prog = {
		.len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
		.filter = filter,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		*error_r = "PR_SET_NO_NEW_PRIVS failed";
		return -1;
	}
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == -1) {
		*error_r = "cannot install the seccomp filter";
		return -1;
	}
	return 0;
}

int
sandbox_no_dump(const char **error_r)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
		*error_r = "PR_SET_DUMPABLE failed";
		return -1;
	}
	return 0;
}
