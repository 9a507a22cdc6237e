/*
 * spool-fill: writes COUNT copies of a message (standard input, CRLF) into
 * a stopped gateway's queue_directory, as if received: the benchmark's
 * preloaded queue for the engine-only figure. Not installed.
 *
 *   spool-fill QUEUE_DIRECTORY COUNT SENDER RECIPIENT < message
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "queue/spool.h"

int
main(int argc, char **argv)
{
	struct spool *sp;
	struct spool_env env;
	long long count;
	const char *why;
	char *msg = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	if (argc != 5 || parse_ll(argv[2], 1, 10000000, &count) == -1) {
		fprintf(stderr,
		    "usage: spool-fill QUEUE_DIRECTORY COUNT SENDER "
		    "RECIPIENT < message\n");
		return 2;
	}
	for (;;) {
		if (cap - len < 65536) {
			cap = cap == 0 ? 65536 * 2 : cap * 2;
			msg = xreallocarray(msg, cap, 1);
		}
		if ((n = read(0, msg + len, cap - len)) <= 0)
			break;
		len += (size_t)n;
	}
	if (spool_open(argv[1], false, 30, &sp, &why) == -1) {
		fprintf(stderr, "spool-fill: %s: %s\n", argv[1], why);
		return 1;
	}
	for (long long i = 0; i < count; i++) {
		struct spool_writer *w;

		memset(&env, 0, sizeof(env));
		env.stage = SPOOL_RECEIVED;
		env.arrival_us = clock_wall_us();
		env.sender = argv[3];
		env.client_name = "localhost";
		env.client_addr = "127.0.0.1";
		env.helo = "spool-fill";
		env.proto = "ESMTP";
		spool_env_add_rcpt(&env, argv[4], NULL, 0);
		if (spool_writer_create(sp, &w) == -1) {
			perror("spool-fill: create");
			return 1;
		}
		spool_writer_write(w, msg, len);
		if (spool_writer_commit(w, &env) == -1) {
			perror("spool-fill: commit");
			return 1;
		}
		spool_writer_free(&w);
		free(env.rcpt[0].addr);
		free(env.rcpt);
	}
	spool_close(&sp);
	free(msg);
	return 0;
}
