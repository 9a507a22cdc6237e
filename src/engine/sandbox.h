/*
 * The engine's sandbox. An engine holds private keys and parses mail
 * from the Internet; it needs the spool, the store and its Unix socket to
 * the dispatcher, never the network. After it has connected to the
 * dispatcher it loses the ability to make any other kind of socket, so
 * that a parser bug cannot turn into a key sent out over the network.
 */
#ifndef MAILSEAL_SANDBOX_H
#define MAILSEAL_SANDBOX_H

/*
 * PR_SET_NO_NEW_PRIVS, then a seccomp-BPF filter (hand-written):
 *   socket(2) and socketpair(2) fail with EPERM unless the domain is
 *     AF_UNIX;
 *   io_uring_setup(2) fails with ENOSYS (IORING_OP_SOCKET would go
 *     around the socket(2) rule);
 *   a system call of another ABI (i386, x32) kills the process;
 *   everything else is allowed.
 * Irreversible for the process and its children.
 */
int sandbox_no_network(const char **error_r);

/*
 * Not dumpable: no core file, and processes of the same user (the
 * dispatcher) cannot ptrace it or read its memory through /proc.
 */
int sandbox_no_dump(const char **error_r);

#endif
