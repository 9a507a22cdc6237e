/*
 * libFuzzer: a datagram from the other side of the engine socket. The
 * first byte picks the direction and whether a descriptor came with it;
 * the rest is the datagram. What decodes must encode to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ipc.h"
#include "engine/engine_ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char wire[IPC_MAX];
	struct ipc_msg m, again;
	struct eng_msg e;
	const char *why;
	size_t n;

	if (size < 1)
		return 0;
	if (ipc_decode(data + 1, size - 1, &m, &why) == -1)
		return 0;
	/* A descriptor number that is never used: decoding only checks it. */
	m.fd = (data[0] & 2) ? 1000 : -1;
	if (eng_decode(&m, (data[0] & 1) ? ENG_TO_ENGINE : ENG_TO_DISPATCHER,
		&e, &why) == -1)
		return 0;
	if (e.fd != m.fd || strlen(e.qid) > QID_LEN ||
	    strlen(e.reason) >= sizeof(e.reason))
		abort();
	if (eng_encode(&e, &again) == -1)
		abort();
	n = ipc_encode(&again, wire);
	if (n != size - 1 || memcmp(wire, data + 1, n) != 0)
		abort();
	return 0;
}
