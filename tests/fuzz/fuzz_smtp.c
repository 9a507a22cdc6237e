/*
 * libFuzzer: an SMTP session of the real server, fed the input as the
 * client's bytes over a socketpair. Messages that get through are
 * committed to a spool in /dev/shm.
 */
#include <sys/socket.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/commit.h"
#include "queue/spool.h"
#include "smtp/smtp_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct event_base *base;
static struct smtpd *srv;
static struct spool *sp;

static void
fuzz_init(void)
{
	struct strlist errors = { 0 };
	struct config *cfg;
	char dir[] = "/dev/shm/mailseal-fuzz-XXXXXX";
	const char *why;

	log_set_stderr(false);
	log_set_fd(open("/dev/null", O_WRONLY));
	if (mkdtemp(dir) == NULL || spool_open(dir, true, 1, &sp, &why) == -1)
		abort();
	if (config_load_string("fuzz",
		"myhostname = gw.example.com\n"
		"relay_domains = example.com\n"
		"mynetworks = 192.0.2.0/24\n"
		"smtpd_recipient_limit = 5\n"
		"before_filter_message_size_limit = 4096\n"
		"after_filter_message_size_limit = 4096\n"
		"smtpd_line_length_limit = 512\n",
		&cfg, &errors) == -1)
		abort();
	base = event_base_new();
	srv = smtpd_new(base, cfg, sp, committer_new(base, sp), NULL);
	config_unref(&cfg);
}

static void
remove_cb(const char *qid, void *arg)
{
	spool_remove(sp, SPOOL_QUEUE, qid);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char junk[65536];
	int sv[2];

	if (base == NULL)
		fuzz_init();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		abort();
	if (smtpd_accept_fd(
		srv, sv[0], size % 2 ? "192.0.2.1" : "198.51.100.1") == -1)
		abort();
	for (size_t off = 0; off < size;) {
		ssize_t n = write(sv[1], data + off, size - off);
		if (n > 0)
			off += (size_t)n;
		event_base_loop(base, EVLOOP_NONBLOCK);
		while (read(sv[1], junk, sizeof(junk)) > 0)
			;
	}
	shutdown(sv[1], SHUT_WR);
	/* Run until the server has closed the session. */
	for (int i = 0; i < 10000 && smtpd_session_count(srv) > 0; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		while (read(sv[1], junk, sizeof(junk)) > 0)
			;
		if (i > 100)
			usleep(100);
	}
	if (smtpd_session_count(srv) > 0)
		abort(); /* a session that never ends on EOF */
	close(sv[1]);
	/* Keep the spool small. */
	spool_scan(sp, SPOOL_QUEUE, remove_cb, NULL);
	return 0;
}
