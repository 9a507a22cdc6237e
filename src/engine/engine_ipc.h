/*
 * The protocol between the dispatcher and the engines, over the
 * SOCK_SEQPACKET socket queue_directory/private/engine (ipc.h codec):
 *
 *   engine -> dispatcher  HELLO  version, instance      once, first
 *   dispatcher -> engine  JOB    id, queue ID + the     one at a time
 *                                spool file (fd)
 *   engine -> dispatcher  OUTPUT id, queue ID           before each output
 *                                                       file is created
 *   engine -> dispatcher  WRITTEN id, queue ID, log     each output file is
 *                                 line                  whole (in incoming/)
 *   engine -> dispatcher  RESULT id, status, reason     the job is over
 *
 * Each type has one direction, one layout, and either always or never a
 * descriptor; anything else is a protocol error and the peer is dropped.
 */
#ifndef MAILSEAL_ENGINE_IPC_H
#define MAILSEAL_ENGINE_IPC_H

#include <stdint.h>

#include "common/ipc.h"
#include "queue/spool.h"

#define ENG_PROTOCOL_VERSION 2
#define ENG_REASON_MAX 512

enum eng_type {
	ENG_HELLO = 1,
	ENG_JOB,
	ENG_OUTPUT,
	ENG_RESULT,
	ENG_WRITTEN,
};

enum eng_dir {
	ENG_TO_ENGINE,
	ENG_TO_DISPATCHER,
};

/* RESULT status: the filter contract of queue/filter.h. */
enum eng_status {
	ENG_DONE, /* unchanged, marked SPOOL_FILTERED */
	ENG_GONE, /* replaced by the announced outputs, or quarantined */
	ENG_DEFER, /* nothing changed: try again later */
	ENG_STAGED, /* outputs WRITTEN, not yet durable: the dispatcher
		       delivers them and removes the original after */
};

struct eng_msg {
	uint32_t type;
	uint64_t id; /* JOB, OUTPUT, RESULT */
	uint32_t version, instance; /* HELLO */
	uint32_t status; /* RESULT */
	char qid[QID_LEN + 1]; /* JOB, OUTPUT, WRITTEN */
	char reason[ENG_REASON_MAX]; /* RESULT; WRITTEN: the log line */
	int fd; /* JOB: the spool file; else -1 */
};

/* The name of a type, for log lines; "unknown" for others. */
const char *eng_type_name(uint32_t);
/* Checks and decodes a received message sent towards dir. */
int eng_decode(
    struct ipc_msg *, enum eng_dir, struct eng_msg *, const char **error_r);
/* Encodes (without the descriptor); -1 for a message that is not one. */
int eng_encode(const struct eng_msg *, struct ipc_msg *);
/* Encodes and sends (m->fd goes along for JOB). */
int eng_send(int sock, const struct eng_msg *, const char **error_r);
/*
 * Receives and decodes one message sent towards dir: 1, 0 at end of
 * file, -1 on an error or a protocol error (a received descriptor is
 * closed then).
 */
int eng_recv(int sock, enum eng_dir, struct eng_msg *, const char **error_r);

#endif
