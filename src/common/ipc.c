/* Typed messages over SOCK_SEQPACKET sockets: see ipc.h. */
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc.h"

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

void
ipc_init(struct ipc_msg *m, uint32_t type)
{
	m->type = type;
	m->len = 0;
	m->pos = 0;
	m->error = false;
	m->fd = -1;
}

static void
put_bytes(struct ipc_msg *m, const void *p, size_t n)
{
	if (m->error || n > sizeof(m->buf) - m->len) {
		m->error = true;
		return;
	}
	memcpy(m->buf + m->len, p, n);
	m->len += n;
}

void
ipc_put_u32(struct ipc_msg *m, uint32_t v)
{
	unsigned char b[4];

	put32(b, v);
	put_bytes(m, b, 4);
}

void
ipc_put_u64(struct ipc_msg *m, uint64_t v)
{
	ipc_put_u32(m, (uint32_t)(v >> 32));
	ipc_put_u32(m, (uint32_t)v);
}

void
ipc_put_str(struct ipc_msg *m, const char *s)
{
	size_t n = strlen(s);

	if (n > UINT32_MAX) {
		m->error = true;
		return;
	}
	ipc_put_u32(m, (uint32_t)n);
	put_bytes(m, s, n);
}

static const unsigned char *
get_bytes(struct ipc_msg *m, size_t n)
{
	const unsigned char *p;

	if (m->error || n > m->len - m->pos) {
		m->error = true;
		return NULL;
	}
	p = m->buf + m->pos;
	m->pos += n;
	return p;
}

int
ipc_get_u32(struct ipc_msg *m, uint32_t *v)
{
	const unsigned char *p = get_bytes(m, 4);

	if (p == NULL)
		return -1;
	*v = get32(p);
	return 0;
}

int
ipc_get_u64(struct ipc_msg *m, uint64_t *v)
{
	uint32_t hi, lo;

	if (ipc_get_u32(m, &hi) == -1 || ipc_get_u32(m, &lo) == -1)
		return -1;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

int
ipc_get_str(struct ipc_msg *m, char *buf, size_t size)
{
	const unsigned char *p;
	uint32_t n;

	if (ipc_get_u32(m, &n) == -1)
		return -1;
	if (size == 0 || n > size - 1 || (p = get_bytes(m, n)) == NULL ||
	    memchr(p, '\0', n) != NULL) {
		m->error = true;
		return -1;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	return 0;
}

int
ipc_end(struct ipc_msg *m)
{
	return m->error || m->pos != m->len ? -1 : 0;
}

size_t
ipc_encode(const struct ipc_msg *m, unsigned char *out)
{
	put32(out, m->type);
	put32(out + 4, (uint32_t)m->len);
	memcpy(out + IPC_HEADER, m->buf, m->len);
	return IPC_HEADER + m->len;
}

int
ipc_decode(
    const void *data, size_t len, struct ipc_msg *m, const char **error_r)
{
	const unsigned char *p = data;

	if (len < IPC_HEADER || len > IPC_MAX) {
		*error_r = "bad message size";
		return -1;
	}
	if (get32(p + 4) != len - IPC_HEADER) {
		*error_r = "message length does not match its header";
		return -1;
	}
	ipc_init(m, get32(p));
	m->len = len - IPC_HEADER;
	memcpy(m->buf, p + IPC_HEADER, m->len);
	return 0;
}

int
ipc_send(int sock, const struct ipc_msg *m, int fd, const char **error_r)
{
	unsigned char wire[IPC_MAX];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov;
	struct msghdr mh;
	ssize_t n;

	if (m->error) {
		*error_r = "message too long";
		errno = EMSGSIZE;
		return -1;
	}
	iov.iov_base = wire;
	iov.iov_len = ipc_encode(m, wire);
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd != -1) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		cm.h.cmsg_level = SOL_SOCKET;
		cm.h.cmsg_type = SCM_RIGHTS;
		cm.h.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&cm.h), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		*error_r = strerror(errno);
		return -1;
	}
	if ((size_t)n != iov.iov_len) {
		*error_r = "short send";
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

/* The descriptors of a control message; -1 when there is more than one. */
static int
recv_fds(struct msghdr *mh, int *fd_r)
{
	int rc = 0;

	*fd_r = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL;
	     c = CMSG_NXTHDR(mh, c)) {
		size_t n;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(
			    &fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*fd_r == -1)
				*fd_r = fd;
			else {
				close(fd);
				rc = -1;
			}
		}
	}
	if (rc == -1 && *fd_r != -1) {
		close(*fd_r);
		*fd_r = -1;
	}
	return rc;
}

int
ipc_recv(int sock, struct ipc_msg *m, const char **error_r)
{
	unsigned char wire[IPC_MAX];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct iovec iov = { wire, sizeof(wire) };
	struct msghdr mh;
	ssize_t n;
	int fd;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		*error_r = strerror(errno);
		return -1;
	}
	if (recv_fds(&mh, &fd) == -1) {
		*error_r = "more than one descriptor";
		errno = EPROTO;
		return -1;
	}
	if (n == 0 && fd == -1)
		return 0;
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    ipc_decode(wire, (size_t)n, m, error_r) == -1) {
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
			*error_r = "truncated message";
		if (fd != -1)
			close(fd);
		errno = EPROTO;
		return -1;
	}
	m->fd = fd;
	return 1;
}
