/*
 * The Queues page. Listing and showing read the spool directly (the
 * admin runs as mail_owner, who owns it); every change goes through the
 * dispatcher's control socket, which owns the queue in memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/api.h"
#include "admin/text.h"
#include "common/addr.h"
#include "common/config.h"
#include "common/control.h"
#include "common/log.h"
#include "common/paths.h"
#include "common/util.h"
#include "queue/spool.h"

#define QUEUE_LIST_MAX 1000
#define HEADERS_MAX (64U << 10)
#define CONTROL_TIMEOUT_MS 30000

static const enum spool_dir queue_dirs[] = { SPOOL_QUEUE, SPOOL_HOLD,
	SPOOL_CORRUPT };

struct qlist {
	struct spool *sp;
	enum spool_dir dir;
	const char *q, *state;
	json_t *items;
	size_t total;
};

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

static const char *
rcpt_state(int state)
{
	return state == RCPT_PENDING ? "pending"
	    : state == RCPT_SENT     ? "sent"
	    : state == RCPT_BOUNCED  ? "bounced"
				     : "split";
}

static bool
env_matches(const struct spool_env *env, const char *q)
{
	if (q == NULL || *q == '\0')
		return true;
	if (text_contains_ci(env->qid, strlen(env->qid), q) ||
	    text_contains_ci(env->sender, strlen(env->sender), q))
		return true;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (text_contains_ci(
			env->rcpt[i].addr, strlen(env->rcpt[i].addr), q))
			return true;
	return false;
}

static json_t *
env_json(const struct spool_env *env, enum spool_dir dir)
{
	json_t *rcpts = json_array();

	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct spool_rcpt *rc = &env->rcpt[i];
		json_array_append_new(rcpts,
		    json_pack("{s:o,s:s,s:o,s:o}", "address",
			text_json(rc->addr, strlen(rc->addr)), "state",
			rcpt_state(rc->state), "dsn",
			rc->dsn ? text_json(rc->dsn, strlen(rc->dsn))
				: json_null(),
			"reason",
			rc->reason ? text_json(rc->reason, strlen(rc->reason))
				   : json_null()));
	}
	return json_pack("{s:s,s:s,s:I,s:I,s:o,s:o,s:I,s:I,s:b}", "id",
	    env->qid, "state", queue_state(dir, env), "size",
	    (json_int_t)env->content_len, "arrival",
	    (json_int_t)(env->arrival_us / 1000000), "sender",
	    text_json(env->sender, strlen(env->sender)), "recipients", rcpts,
	    "attempts", (json_int_t)env->attempts, "next_try",
	    (json_int_t)(env->next_try_us / 1000000), "test",
	    (env->flags & SPOOL_F_TEST) != 0);
}

static void
list_one(const char *qid, void *arg)
{
	struct qlist *ql = arg;
	struct spool_env *env;
	const char *why;

	if (spool_read(ql->sp, ql->dir, qid, false, &env, NULL, &why) == -1) {
		if (errno == ENOENT)
			return; /* delivered while we looked */
		if (ql->state == NULL || strcmp(ql->state, "corrupt") == 0) {
			ql->total++;
			if (json_array_size(ql->items) < QUEUE_LIST_MAX)
				json_array_append_new(ql->items,
				    json_pack("{s:s,s:s,s:s}", "id", qid,
					"state", "corrupt", "error", why));
		}
		return;
	}
	if (env_matches(env, ql->q) &&
	    (ql->state == NULL ||
		strcmp(ql->state, queue_state(ql->dir, env)) == 0)) {
		ql->total++;
		if (json_array_size(ql->items) < QUEUE_LIST_MAX)
			json_array_append_new(
			    ql->items, env_json(env, ql->dir));
	}
	spool_env_free(&env);
}

static struct spool *
open_spool(struct api_req *r)
{
	struct spool *sp;
	const char *why;

	if (spool_open(cfg_str(r->a->cfg, P_QUEUE_DIRECTORY), false, 30, &sp,
		&why) == -1) {
		api_error(r, 500, "cannot open the queue: %s", why);
		return NULL;
	}
	return sp;
}

void
api_queue_list(struct api_req *r)
{
	static const char *const states[] = { "incoming", "active", "deferred",
		"hold", "corrupt", NULL };
	struct qlist ql = { 0 };
	json_t *errors = json_object();
	bool known = false;

	ql.q = api_query(r, "q");
	ql.state = api_query(r, "state");
	if (ql.state != NULL && *ql.state == '\0')
		ql.state = NULL;
	for (size_t i = 0; ql.state != NULL && states[i] != NULL; i++)
		known |= strcmp(states[i], ql.state) == 0;
	if (ql.state != NULL && !known)
		errors_set(errors, "state",
		    "must be incoming, active, deferred, hold or corrupt");
	if (ql.q != NULL && strlen(ql.q) > 320)
		errors_set(errors, "q", "must be at most 320 characters");
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	if ((ql.sp = open_spool(r)) == NULL)
		return;
	ql.items = json_array();
	for (size_t i = 0; i < nitems(queue_dirs); i++) {
		ql.dir = queue_dirs[i];
		spool_scan(ql.sp, queue_dirs[i], list_one, &ql);
	}
	spool_close(&ql.sp);
	api_json(r, 200,
	    json_pack("{s:o,s:I,s:b}", "messages", ql.items, "total",
		(json_int_t)ql.total, "truncated", ql.total > QUEUE_LIST_MAX));
}

/* The header section of a message: up to the first empty line. */
static json_t *
read_headers(int fd, const struct spool_env *env)
{
	size_t len =
	    env->content_len < HEADERS_MAX ? env->content_len : HEADERS_MAX;
	char *buf = xmalloc(len + 1), *end;
	long n = spool_read_content(fd, env, 0, buf, len);
	json_t *j;

	if (n < 0)
		n = 0;
	buf[n] = '\0';
	if ((end = memmem(buf, (size_t)n, "\r\n\r\n", 4)) != NULL)
		n = end - buf + 2;
	j = text_json(buf, (size_t)n);
	free(buf);
	return j;
}

void
api_queue_show(struct api_req *r)
{
	const char *qid = r->params.v[0], *why = "not found";
	struct spool_env *env = NULL;
	enum spool_dir dir = SPOOL_QUEUE;
	struct spool *sp;
	json_t *j;
	int fd = -1;

	if (!spool_qid_valid(qid)) {
		json_t *e = json_object();
		errors_set(e, "id", "is not a queue ID");
		api_field_errors(r, e);
		return;
	}
	if ((sp = open_spool(r)) == NULL)
		return;
	for (size_t i = 0; i < nitems(queue_dirs) && env == NULL; i++) {
		dir = queue_dirs[i];
		if (spool_read(sp, dir, qid, false, &env, &fd, &why) == -1 &&
		    errno != ENOENT) {
			spool_close(&sp);
			api_error(r, 500, "%s: %s", qid, why);
			return;
		}
	}
	spool_close(&sp);
	if (env == NULL) {
		api_error(r, 404, "%s: no such message", qid);
		return;
	}
	j = env_json(env, dir);
	json_object_set_new(j, "client",
	    json_pack("{s:o,s:o,s:o,s:o}", "name",
		text_json(env->client_name ? env->client_name : "",
		    env->client_name ? strlen(env->client_name) : 0),
		"address",
		text_json(env->client_addr ? env->client_addr : "",
		    env->client_addr ? strlen(env->client_addr) : 0),
		"helo",
		text_json(env->helo ? env->helo : "",
		    env->helo ? strlen(env->helo) : 0),
		"proto",
		text_json(env->proto ? env->proto : "",
		    env->proto ? strlen(env->proto) : 0)));
	json_object_set_new(j, "parent", json_string(env->parent));
	json_object_set_new(j, "headers", read_headers(fd, env));
	close(fd);
	spool_env_free(&env);
	api_json(r, 200, j);
}

/* Sends one request to the dispatcher; replies with its error or NULL. */
static json_t *
control(struct api_req *r, json_t *req)
{
	char *path = daemon_control_path(r->a->cfg);
	json_t *reply = NULL;
	const char *why;

	if (control_call(path, req, &reply, CONTROL_TIMEOUT_MS, &why) == -1) {
		free(path);
		json_decref(req);
		api_error(r, 503, "%s", why);
		return NULL;
	}
	free(path);
	json_decref(req);
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *e =
		    json_string_value(json_object_get(reply, "error"));
		api_error(r, 409, "%s", e != NULL ? e : "the daemon refused");
		json_decref(reply);
		return NULL;
	}
	return reply;
}

/* The queue actions and their control socket commands (issue 3). */
static const struct {
	const char *action, *cmd;
	bool ids; /* takes queue IDs (or "all") */
} queue_actions[] = {
	{ "hold", "queue.hold", true },
	{ "release", "queue.release", true },
	{ "delete", "queue.delete", true },
	{ "requeue", "queue.requeue", true },
	{ "flush", "queue.flush", false },
};

void
api_queue_action(struct api_req *r)
{
	static const char *const keys[] = { "ids", "all", NULL };
	const char *action = r->params.v[0];
	json_t *errors = json_object(), *ids = NULL, *req, *reply, *item;
	int all = 0;
	size_t i, k;

	for (k = 0; k < nitems(queue_actions); k++)
		if (strcmp(queue_actions[k].action, action) == 0)
			break;
	if (k == nitems(queue_actions)) {
		json_decref(errors);
		api_error(r, 404, "no such queue action: %s", action);
		return;
	}
	json_reject_unknown(r->json, keys, errors);
	json_get_strings(r->json, "ids", false, 10000, QID_LEN, &ids, errors);
	json_get_bool(r->json, "all", false, &all, errors);
	json_array_foreach(ids, i, item)
	{
		if (!spool_qid_valid(json_string_value(item))) {
			errors_set(errors, "ids", "'%s' is not a queue ID",
			    json_string_value(item));
			break;
		}
	}
	if (queue_actions[k].ids && json_object_size(errors) == 0 &&
	    !all == (ids == NULL || json_array_size(ids) == 0))
		errors_set(errors, "ids", "give queue IDs, or all: true");
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	req = json_pack("{s:s}", "cmd", queue_actions[k].cmd);
	/* Flush takes every deferred message: "all" is implied. */
	if (all || !queue_actions[k].ids)
		json_object_set_new(req, "all", json_true());
	else
		json_object_set(req, "ids", ids);
	if ((reply = control(r, req)) == NULL)
		return;
	msg_info("admin %s: queue %s%s", r->session->username, action,
	    all ? " (all)" : "");
	json_object_del(reply, "ok");
	api_json(r, 200, reply);
}

static int
address_field(json_t *body, const char *key, const char **out, json_t *errors)
{
	struct mailaddr ma;
	const char *why, *end;
	char *path;
	int rc = 0;

	if (json_get_string(body, key, true, 320, out, errors) == -1)
		return -1;
	path = xasprintf("<%s>", *out);
	if (**out == '\0' || addr_parse_path(path, &end, &ma, &why) == -1) {
		errors_set(errors, key, "is not an email address");
		rc = -1;
	} else {
		if (*end != '\0' || ma.domain[0] == '\0') {
			errors_set(errors, key,
			    "is not an email address (user@domain)");
			rc = -1;
		}
		addr_free(&ma);
	}
	free(path);
	return rc;
}

/* Admin → other → send email (seed 4.10). */
void
api_send_test(struct api_req *r)
{
	static const char *const keys[] = { "from", "to", "subject", NULL };
	const char *from, *to, *subject = NULL;
	json_t *errors = json_object(), *req, *reply;

	json_reject_unknown(r->json, keys, errors);
	address_field(r->json, "from", &from, errors);
	address_field(r->json, "to", &to, errors);
	json_get_string(r->json, "subject", false, 200, &subject, errors);
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	req = json_pack(
	    "{s:s,s:s,s:s}", "cmd", "send-test", "from", from, "to", to);
	if (subject != NULL && *subject != '\0')
		json_object_set_new(req, "subject", json_string(subject));
	if ((reply = control(r, req)) == NULL)
		return;
	msg_info("admin %s: test message from=<%s> to=<%s>",
	    r->session->username, from, to);
	json_object_del(reply, "ok");
	api_json(r, 200, reply);
}
