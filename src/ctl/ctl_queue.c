#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/util.h"
#include "ctl/ctl.h"
#include "queue/spool.h"

struct qlist {
	struct spool *sp;
	enum spool_dir dir;
	bool json;
	json_t *items;
	unsigned count;
};

/* The state a message is in, as the queue list shows it. */
static const char *
queue_state(enum spool_dir dir, const struct spool_env *env)
{
	if (dir == SPOOL_HOLD)
		return "hold";
	if (dir == SPOOL_CORRUPT)
		return "corrupt";
	if (env->stage == SPOOL_RECEIVED)
		return "incoming";
	return env->attempts > 0 ? "deferred" : "active";
}

static void
format_time(uint64_t us, char *buf, size_t size)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, size, "%a %b %e %H:%M:%S", &tm);
}

static void
list_one(const char *qid, void *arg)
{
	struct qlist *ql = arg;
	struct spool_env *env;
	const char *why;
	char when[64];

	if (spool_read(ql->sp, ql->dir, qid, false, &env, NULL, &why) == -1) {
		if (errno == ENOENT)
			return; /* delivered while we looked */
		if (ql->json)
			json_array_append_new(ql->items,
			    json_pack("{s:s,s:s,s:s}", "id", qid, "state",
				"corrupt", "error", why));
		else
			printf("%-12s  %-8s  unreadable: %s\n", qid, "corrupt",
			    why);
		ql->count++;
		return;
	}
	format_time(env->arrival_us, when, sizeof(when));
	if (ql->json) {
		json_t *rcpts = json_array();
		for (size_t i = 0; i < env->nrcpt; i++) {
			const struct spool_rcpt *r = &env->rcpt[i];
			json_array_append_new(rcpts,
			    json_pack("{s:s,s:s,s:s?,s:s?}", "address", r->addr,
				"state",
				r->state == RCPT_PENDING       ? "pending"
				    : r->state == RCPT_SENT    ? "sent"
				    : r->state == RCPT_BOUNCED ? "bounced"
							       : "split",
				"dsn", r->dsn, "reason", r->reason));
		}
		json_array_append_new(ql->items,
		    json_pack("{s:s,s:s,s:I,s:I,s:s,s:o,s:I,s:I,s:s?}", "id",
			qid, "state", queue_state(ql->dir, env), "size",
			(json_int_t)env->content_len, "arrival",
			(json_int_t)(env->arrival_us / 1000000), "sender",
			env->sender, "recipients", rcpts, "attempts",
			(json_int_t)env->attempts, "next_try",
			(json_int_t)(env->next_try_us / 1000000), "parent",
			env->parent[0] ? env->parent : NULL));
	} else {
		printf("%-12s  %-8s  %9llu  %s  %s\n", qid,
		    queue_state(ql->dir, env),
		    (unsigned long long)env->content_len, when,
		    env->sender[0] ? env->sender : "<>");
		for (size_t i = 0; i < env->nrcpt; i++) {
			const struct spool_rcpt *r = &env->rcpt[i];
			if (r->state != RCPT_PENDING)
				continue;
			if (r->reason != NULL && r->reason[0] != '\0')
				printf("%58s(%s)\n", "", r->reason);
			printf("%58s%s\n", "", r->addr);
		}
	}
	ql->count++;
	spool_env_free(&env);
}

static struct spool *
open_spool(struct ctl *ctl)
{
	struct spool *sp;
	const char *why;

	if (spool_open(cfg_str(ctl_config(ctl), P_QUEUE_DIRECTORY), false, 31,
		&sp, &why) == -1)
		ctl_die("%s: %s: %s",
		    cfg_str(ctl_config(ctl), P_QUEUE_DIRECTORY), why,
		    strerror(errno));
	return sp;
}

static int
queue_list(struct ctl *ctl, int argc, char **argv)
{
	struct qlist ql = { 0 };
	static const enum spool_dir dirs[] = { SPOOL_QUEUE, SPOOL_HOLD,
		SPOOL_CORRUPT };

	if (argc == 2 && strcmp(argv[1], "--json") == 0)
		ql.json = true;
	else if (argc != 1)
		return ctl_usage("queue");
	ql.sp = open_spool(ctl);
	ql.items = json_array();
	if (!ql.json)
		printf("%-12s  %-8s  %9s  %-19s  %s\n", "Queue ID", "State",
		    "Size", "Arrival", "Sender/Recipient");
	for (size_t i = 0; i < nitems(dirs); i++) {
		ql.dir = dirs[i];
		spool_scan(ql.sp, dirs[i], list_one, &ql);
	}
	if (ql.json) {
		char *s = json_dumps(ql.items, JSON_INDENT(1));
		printf("%s\n", s);
		free(s);
	} else
		printf("-- %u message%s\n", ql.count, ql.count == 1 ? "" : "s");
	json_decref(ql.items);
	spool_close(&ql.sp);
	return 0;
}

static int
queue_show(struct ctl *ctl, int argc, char **argv)
{
	static const enum spool_dir dirs[] = { SPOOL_QUEUE, SPOOL_HOLD,
		SPOOL_CORRUPT };
	struct spool *sp;
	struct spool_env *env = NULL;
	const char *why = "not found";
	char when[64], buf[8192];
	enum spool_dir dir = SPOOL_QUEUE;
	uint64_t off = 0;
	bool bol = true;
	int fd = -1;

	if (argc != 2)
		return ctl_usage("queue");
	if (!spool_qid_valid(argv[1]))
		ctl_die("not a queue ID: %s", argv[1]);
	sp = open_spool(ctl);
	for (size_t i = 0; i < nitems(dirs) && env == NULL; i++) {
		dir = dirs[i];
		if (spool_read(sp, dir, argv[1], false, &env, &fd, &why) ==
			-1 &&
		    errno != ENOENT)
			ctl_die("%s: %s", argv[1], why);
	}
	if (env == NULL)
		ctl_die("%s: no such message", argv[1]);
	format_time(env->arrival_us, when, sizeof(when));
	printf("queue_id: %s\nstate: %s\narrival: %s\nsize: %llu\n", env->qid,
	    queue_state(dir, env), when, (unsigned long long)env->content_len);
	if (env->parent[0] != '\0')
		printf("parent: %s\n", env->parent);
	printf("sender: <%s>\n", env->sender);
	if (env->client_addr != NULL)
		printf("client: %s[%s] helo=%s proto=%s\n",
		    env->client_name ? env->client_name : "unknown",
		    env->client_addr, env->helo ? env->helo : "",
		    env->proto ? env->proto : "");
	if (env->attempts > 0)
		printf("attempts: %u\n", env->attempts);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct spool_rcpt *r = &env->rcpt[i];
		printf("recipient: <%s> %s%s%s%s\n", r->addr,
		    r->state == RCPT_PENDING	   ? "pending"
			: r->state == RCPT_SENT	   ? "sent"
			: r->state == RCPT_BOUNCED ? "bounced"
						   : "split",
		    r->reason ? " (" : "", r->reason ? r->reason : "",
		    r->reason ? ")" : "");
	}
	printf("\n");
	/* The header section: up to the first empty line. */
	for (;;) {
		long n = spool_read_content(fd, env, off, buf, sizeof(buf));
		long i, start = 0;
		bool done = false;
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				if (bol) {
					done = true;
					break;
				}
				bol = true;
			} else if (buf[i] != '\r')
				bol = false;
		}
		for (long k = start; k < i; k++)
			if (buf[k] != '\r')
				putchar(buf[k]);
		if (done)
			break;
		off += (uint64_t)n;
	}
	close(fd);
	spool_env_free(&env);
	spool_close(&sp);
	return 0;
}

int
ctl_queue_main(struct ctl *ctl, int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage("queue");
	if (strcmp(argv[1], "list") == 0)
		return queue_list(ctl, argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return queue_show(ctl, argc - 1, argv + 1);
	return ctl_usage("queue");
}
