/* libFuzzer: the spool file reader (a damaged file must be refused). */
#include <sys/mman.h>

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/util.h"
#include "queue/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_env *env;
	const char *why;
	char buf[4096];
	int fd = memfd_create("spool", 0);

	if (fd == -1 || write_full(fd, data, size) == -1)
		abort();
	if (spool_read_fd(fd, &env, &why) == 0) {
		if (env->content_off + env->content_len > size ||
		    env->tail_end > size)
			abort();
		for (uint64_t off = 0; off < env->content_len;
		     off += sizeof(buf))
			if (spool_read_content(fd, env, off, buf, sizeof(buf)) <
			    0)
				abort();
		/* Appending to what was read works, torn tail or not. */
		if (env->nrcpt > 0)
			(void)spool_mark_rcpt(
			    fd, env, 0, RCPT_SENT, "2.0.0", "fuzz", false);
		spool_env_free(&env);
	}
	close(fd);
	return 0;
}
