/* The dispatcher-engine protocol: one table row per message type. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_ipc.h"

struct eng_type_def {
	uint32_t type;
	const char *name;
	enum eng_dir dir;
	bool fd; /* a descriptor always comes with it, never otherwise */
	void (*put)(struct ipc_msg *, const struct eng_msg *);
	int (*get)(struct ipc_msg *, struct eng_msg *);
};

static void
put_hello(struct ipc_msg *m, const struct eng_msg *e)
{
	ipc_put_u32(m, e->version);
	ipc_put_u32(m, e->instance);
}

static int
get_hello(struct ipc_msg *m, struct eng_msg *e)
{
	return ipc_get_u32(m, &e->version) == -1 ||
		ipc_get_u32(m, &e->instance) == -1
	    ? -1
	    : 0;
}

/* JOB and OUTPUT: a job id and a queue ID. */
static void
put_id_qid(struct ipc_msg *m, const struct eng_msg *e)
{
	ipc_put_u64(m, e->id);
	ipc_put_str(m, e->qid);
}

static int
get_id_qid(struct ipc_msg *m, struct eng_msg *e)
{
	if (ipc_get_u64(m, &e->id) == -1 ||
	    ipc_get_str(m, e->qid, sizeof(e->qid)) == -1 ||
	    !spool_qid_valid(e->qid))
		return -1;
	return 0;
}

static void
put_result(struct ipc_msg *m, const struct eng_msg *e)
{
	ipc_put_u64(m, e->id);
	ipc_put_u32(m, e->status);
	ipc_put_str(m, e->reason);
}

static int
get_result(struct ipc_msg *m, struct eng_msg *e)
{
	if (ipc_get_u64(m, &e->id) == -1 || ipc_get_u32(m, &e->status) == -1 ||
	    e->status > ENG_STAGED ||
	    ipc_get_str(m, e->reason, sizeof(e->reason)) == -1)
		return -1;
	return 0;
}

/* WRITTEN: a job id, a queue ID and the output's log line. */
static void
put_written(struct ipc_msg *m, const struct eng_msg *e)
{
	put_id_qid(m, e);
	ipc_put_str(m, e->reason);
}

static int
get_written(struct ipc_msg *m, struct eng_msg *e)
{
	if (get_id_qid(m, e) == -1 ||
	    ipc_get_str(m, e->reason, sizeof(e->reason)) == -1)
		return -1;
	return 0;
}

static const struct eng_type_def types[] = {
	{ ENG_HELLO, "HELLO", ENG_TO_DISPATCHER, false, put_hello, get_hello },
	{ ENG_JOB, "JOB", ENG_TO_ENGINE, true, put_id_qid, get_id_qid },
	{ ENG_OUTPUT, "OUTPUT", ENG_TO_DISPATCHER, false, put_id_qid,
	    get_id_qid },
	{ ENG_RESULT, "RESULT", ENG_TO_DISPATCHER, false, put_result,
	    get_result },
	{ ENG_WRITTEN, "WRITTEN", ENG_TO_DISPATCHER, false, put_written,
	    get_written },
};

static const struct eng_type_def *
type_def(uint32_t type)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].type == type)
			return &types[i];
	return NULL;
}

const char *
eng_type_name(uint32_t type)
{
	const struct eng_type_def *d = type_def(type);

	return d != NULL ? d->name : "unknown";
}

int
eng_decode(struct ipc_msg *m, enum eng_dir dir, struct eng_msg *e,
    const char **error_r)
{
	const struct eng_type_def *d = type_def(m->type);

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	if (d == NULL || d->dir != dir) {
		*error_r = "unexpected message type";
		return -1;
	}
	if (d->fd != (m->fd != -1)) {
		*error_r = d->fd ? "message without its descriptor"
				 : "unexpected descriptor";
		return -1;
	}
	e->type = m->type;
	if (d->get(m, e) == -1 || ipc_end(m) == -1) {
		*error_r = "malformed message";
		return -1;
	}
	e->fd = m->fd;
	return 0;
}

int
eng_encode(const struct eng_msg *e, struct ipc_msg *m)
{
	const struct eng_type_def *d = type_def(e->type);

	if (d == NULL || d->fd != (e->fd != -1))
		return -1;
	ipc_init(m, e->type);
	d->put(m, e);
	return m->error ? -1 : 0;
}

int
eng_send(int sock, const struct eng_msg *e, const char **error_r)
{
	struct ipc_msg m;

	if (eng_encode(e, &m) == -1) {
		*error_r = "bad message to send";
		return -1;
	}
	return ipc_send(sock, &m, e->fd, error_r);
}

int
eng_recv(int sock, enum eng_dir dir, struct eng_msg *e, const char **error_r)
{
	struct ipc_msg m;
	int r;

	if ((r = ipc_recv(sock, &m, error_r)) <= 0)
		return r;
	if (eng_decode(&m, dir, e, error_r) == -1) {
		if (m.fd != -1)
			close(m.fd);
		errno = EPROTO;
		return -1;
	}
	return 1;
}
