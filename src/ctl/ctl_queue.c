#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/util.h"
#include "ctl/ctl.h"
#include "daemon/daemon.h"
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

	/* The list is always of every message; --all is accepted as well. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			ql.json = true;
		else if (strcmp(argv[i], "--all") != 0)
			return ctl_usage("queue");
	}
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

static const enum spool_dir show_dirs[] = { SPOOL_QUEUE, SPOOL_HOLD,
	SPOOL_CORRUPT };

/* Prints one message's envelope and headers; -1 if it cannot. */
static int
show_one(struct spool *sp, const char *qid)
{
	struct spool_env *env = NULL;
	const char *why = "not found";
	char when[64], buf[8192];
	enum spool_dir dir = SPOOL_QUEUE;
	uint64_t off = 0;
	bool bol = true;
	int fd = -1;

	for (size_t i = 0; i < nitems(show_dirs) && env == NULL; i++) {
		dir = show_dirs[i];
		if (spool_read(sp, dir, qid, false, &env, &fd, &why) == -1 &&
		    errno != ENOENT) {
			fprintf(stderr, "mailsealctl: %s: %s\n", qid, why);
			return -1;
		}
	}
	if (env == NULL) {
		fprintf(stderr, "mailsealctl: %s: no such message\n", qid);
		return -1;
	}
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
	return 0;
}

struct show_all {
	struct spool *sp;
	int rc;
	unsigned n;
};

static void
show_all_cb(const char *qid, void *arg)
{
	struct show_all *sa = arg;

	if (sa->n++ > 0)
		printf("\n");
	if (show_one(sa->sp, qid) == -1)
		sa->rc = 1;
}

static int
queue_show(struct ctl *ctl, int argc, char **argv)
{
	struct show_all sa = { NULL, 0, 0 };

	if (argc < 2)
		return ctl_usage("queue");
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--all") != 0 && !spool_qid_valid(argv[i]))
			ctl_die("not a queue ID: %s", argv[i]);
	sa.sp = open_spool(ctl);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") != 0) {
			show_all_cb(argv[i], &sa);
			continue;
		}
		for (size_t d = 0; d < nitems(show_dirs); d++)
			spool_scan(sa.sp, show_dirs[d], show_all_cb, &sa);
	}
	spool_close(&sa.sp);
	return sa.rc;
}

/* Changing the queue: through the daemon, or on the files when it is down. */

struct qchange {
	const char *name; /* the subcommand */
	const char *verb; /* "ID: placed on hold" */
	/* The change on the files, when no daemon runs: 1 done, 0 missing. */
	int (*offline)(struct spool *, const char *qid);
	/* The directories that --all takes, when no daemon runs. */
	enum spool_dir all_dir;
	bool all_hold_too;
};

static int
off_hold(struct spool *sp, const char *qid)
{
	if (spool_move(sp, qid, SPOOL_QUEUE, SPOOL_HOLD) == 0)
		return 1;
	return errno == ENOENT &&
	    faccessat(sp->dfd[SPOOL_HOLD], qid, F_OK, 0) == 0;
}

static int
off_release(struct spool *sp, const char *qid)
{
	return spool_move(sp, qid, SPOOL_HOLD, SPOOL_QUEUE) == 0;
}

static int
off_delete(struct spool *sp, const char *qid)
{
	return spool_remove(sp, SPOOL_QUEUE, qid) == 0 ||
	    spool_remove(sp, SPOOL_HOLD, qid) == 0;
}

/* Appends tail records: the stage goes back, or the next try is now. */
static int
off_mark(struct spool *sp, const char *qid, bool rewind)
{
	enum spool_dir dir = SPOOL_QUEUE;
	struct spool_env *env;
	const char *why;
	int fd, rc = 1;

	if (spool_read(sp, dir, qid, true, &env, &fd, &why) == -1) {
		if (errno != ENOENT || !rewind)
			return 0;
		dir = SPOOL_HOLD;
		if (spool_read(sp, dir, qid, true, &env, &fd, &why) == -1)
			return 0;
	}
	if ((rewind &&
		(spool_mark_stage(fd, env, SPOOL_RECEIVED, false) == -1 ||
		    spool_mark_schedule(fd, env, 0, 0) == -1)) ||
	    (!rewind && spool_mark_schedule(fd, env, env->attempts, 0) == -1) ||
	    fdatasync(fd) == -1) {
		fprintf(stderr, "mailsealctl: %s: cannot update: %s\n", qid,
		    strerror(errno));
		rc = 0;
	}
	close(fd);
	spool_env_free(&env);
	if (rc == 1 && dir == SPOOL_HOLD &&
	    spool_move(sp, qid, SPOOL_HOLD, SPOOL_QUEUE) == -1)
		rc = 0;
	return rc;
}

static int
off_requeue(struct spool *sp, const char *qid)
{
	return off_mark(sp, qid, true);
}

static int
off_flush(struct spool *sp, const char *qid)
{
	return off_mark(sp, qid, false);
}

static const struct qchange qchanges[] = {
	{ "hold", "placed on hold", off_hold, SPOOL_QUEUE, false },
	{ "release", "released from hold", off_release, SPOOL_HOLD, false },
	{ "delete", "deleted", off_delete, SPOOL_QUEUE, true },
	{ "requeue", "requeued", off_requeue, SPOOL_QUEUE, true },
	{ "flush", "flushed", off_flush, SPOOL_QUEUE, false },
};

struct idlist {
	json_t *ids;
};

static void
collect_id(const char *qid, void *arg)
{
	json_array_append_new(((struct idlist *)arg)->ids, json_string(qid));
}

static int
report(const struct qchange *qc, json_t *done, json_t *missing)
{
	size_t i;
	json_t *v;

	json_array_foreach(done, i, v)
	    printf("%s: %s\n", json_string_value(v), qc->verb);
	json_array_foreach(missing, i, v) fprintf(stderr,
	    "mailsealctl: %s: no such message%s\n", json_string_value(v),
	    strcmp(qc->name, "release") == 0 ? " on hold" : "");
	printf("%s: %zu message%s\n", qc->name, json_array_size(done),
	    json_array_size(done) == 1 ? "" : "s");
	return json_array_size(missing) > 0 ? 1 : 0;
}

static int
queue_change_offline(
    struct ctl *ctl, const struct qchange *qc, json_t *ids, bool all)
{
	struct spool *sp = open_spool(ctl);
	json_t *done = json_array(), *missing = json_array(), *v;
	struct idlist il = { ids };
	size_t i;
	int rc;

	if (all) {
		spool_scan(sp, qc->all_dir, collect_id, &il);
		if (qc->all_hold_too)
			spool_scan(sp, SPOOL_HOLD, collect_id, &il);
	}
	json_array_foreach(ids, i, v)
	{
		const char *qid = json_string_value(v);
		json_array_append_new(
		    qc->offline(sp, qid) ? done : missing, json_string(qid));
	}
	/* The directory entries must last: a held message stays held. */
	fsync(sp->dfd[SPOOL_QUEUE]);
	fsync(sp->dfd[SPOOL_HOLD]);
	rc = report(qc, done, missing);
	json_decref(done);
	json_decref(missing);
	spool_close(&sp);
	return rc;
}

static int
queue_change(struct ctl *ctl, const struct qchange *qc, int argc, char **argv)
{
	json_t *ids = json_array(), *req, *reply;
	bool all = false;
	char cmd[32];
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0)
			all = true;
		else if (spool_qid_valid(argv[i]))
			json_array_append_new(ids, json_string(argv[i]));
		else
			ctl_die("not a queue ID: %s", argv[i]);
	}
	/* "flush" alone is every deferred message, as postqueue -f. */
	if (strcmp(qc->name, "flush") == 0 && argc == 1)
		all = true;
	if (all == (json_array_size(ids) > 0)) {
		json_decref(ids);
		return ctl_usage("queue");
	}
	if (daemon_running_pid(ctl_config(ctl)) == -1) {
		rc = queue_change_offline(ctl, qc, ids, all);
		json_decref(ids);
		return rc;
	}
	snprintf(cmd, sizeof(cmd), "queue.%s", qc->name);
	req = json_pack("{s:s,s:b,s:o}", "cmd", cmd, "all", all, "ids", ids);
	reply = ctl_call(ctl, req);
	rc = report(qc, json_object_get(reply, "done"),
	    json_object_get(reply, "missing"));
	json_decref(reply);
	return rc;
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
	for (size_t i = 0; i < nitems(qchanges); i++)
		if (strcmp(argv[1], qchanges[i].name) == 0)
			return queue_change(
			    ctl, &qchanges[i], argc - 1, argv + 1);
	return ctl_usage("queue");
}

int
ctl_send_test_main(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "subject", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *from = NULL, *to = NULL, *subject = "";
	json_t *reply;
	int ch;

	while ((ch = getopt_long(argc, argv, "f:t:s:", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			from = optarg;
			break;
		case 't':
			to = optarg;
			break;
		case 's':
			subject = optarg;
			break;
		default:
			return ctl_usage("send-test");
		}
	}
	if (from == NULL || to == NULL || optind != argc)
		return ctl_usage("send-test");
	if (daemon_running_pid(ctl_config(ctl)) == -1)
		ctl_die("mailseald is not running: the test message goes "
			"through the running gateway");
	reply = ctl_call(ctl,
	    json_pack("{s:s,s:s,s:s,s:s}", "cmd", "send-test", "from", from,
		"to", to, "subject", subject));
	printf("%s\n", json_string_value(json_object_get(reply, "queue_id")));
	json_decref(reply);
	return 0;
}
