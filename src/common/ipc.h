/*
 * Typed messages between mailseal processes (OpenSMTPD's mproc habit):
 * each message is one datagram of a SOCK_SEQPACKET socket, an 8-byte
 * header (type, payload length) and fields written and read in the same
 * order by both sides. A reader that finds too few bytes, a string with
 * a NUL, a field longer than it allows, or bytes left over after the
 * last field it expects has a protocol error: the peer is dropped.
 * A descriptor may travel with a message (SCM_RIGHTS).
 */
#ifndef MAILSEAL_IPC_H
#define MAILSEAL_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPC_HEADER 8
#define IPC_MAX 4096 /* a whole datagram, header included */

struct ipc_msg {
	uint32_t type;
	size_t len; /* payload bytes in buf */
	size_t pos; /* the read position */
	bool error; /* a put overflowed or a get failed */
	int fd; /* the descriptor that came with it, or -1 */
	unsigned char buf[IPC_MAX - IPC_HEADER];
};

/* Writing. An overflow sets error; ipc_send() then refuses the message. */
void ipc_init(struct ipc_msg *, uint32_t type);
void ipc_put_u32(struct ipc_msg *, uint32_t);
void ipc_put_u64(struct ipc_msg *, uint64_t);
/* A string: u32 length and the bytes, no NUL. */
void ipc_put_str(struct ipc_msg *, const char *);

/* Reading: 0, or -1 (and error set) when the field is not there. */
int ipc_get_u32(struct ipc_msg *, uint32_t *);
int ipc_get_u64(struct ipc_msg *, uint64_t *);
/* Into buf of size bytes (NUL-terminated); longer or with a NUL: -1. */
int ipc_get_str(struct ipc_msg *, char *buf, size_t size);
/* 0 when every field was read and nothing is left, else -1. */
int ipc_end(struct ipc_msg *);

/* The wire form. */
size_t ipc_encode(const struct ipc_msg *, unsigned char *out);
/* Parses one datagram into m (fd set to -1); -1 with a reason. */
int ipc_decode(
    const void *data, size_t len, struct ipc_msg *, const char **error_r);

/*
 * Sends one message, with fd (or -1). A full socket buffer is an error:
 * the protocol keeps a few small messages in flight, never more.
 */
int ipc_send(int sock, const struct ipc_msg *, int fd, const char **error_r);
/*
 * Receives one message: 1, 0 at end of file, -1 on an error (errno
 * EAGAIN when nothing is waiting on a non-blocking socket) or a
 * malformed datagram (a truncated one, more than one descriptor).
 * A received descriptor is close-on-exec; the caller owns it.
 */
int ipc_recv(int sock, struct ipc_msg *, const char **error_r);

#endif
