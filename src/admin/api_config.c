#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/api.h"
#include "admin/api_config.h"
#include "common/config.h"
#include "common/confwriter.h"
#include "common/log.h"
#include "common/paths.h"
#include "common/util.h"

#define FIELD_MAXLEN 255
#define LIST_MAX 1000

json_t *
console_field_json(const struct config *cfg, const struct console_field *f)
{
	const struct strlist *l;
	const struct nexthop *nh;
	json_t *arr;

	switch (f->kind) {
	case CF_TEXT:
		return json_string(cfg_str(cfg, f->id));
	case CF_BOOL:
		return json_boolean(cfg_bool(cfg, f->id));
	case CF_INT:
		return json_integer(cfg_int(cfg, f->id));
	case CF_LIST:
		l = cfg_list(cfg, f->id);
		arr = json_array();
		for (size_t i = 0; i < l->n; i++)
			json_array_append_new(arr, json_string(l->v[i]));
		return arr;
	case CF_NEXTHOP:
		nh = cfg_nexthop(cfg, f->id);
		return json_pack("{s:s,s:i,s:b}", "host",
		    nh->host != NULL ? nh->host : "", "port", nh->port, "mx",
		    nh->host != NULL && nh->mx);
	}
	return json_null();
}

static int
check_text(const struct console_field *f, const char *text, json_t *errors)
{
	const char *why;

	if (config_check_value(f->id, text, &why) == -1) {
		errors_set(errors, f->key, "%s", why);
		return -1;
	}
	return 0;
}

static int
list_text(
    const struct console_field *f, json_t *value, char **text_r, json_t *errors)
{
	json_t *wrap = json_pack("{s:O}", f->key, value), *list, *item;
	size_t i, len = 0;
	char *text;

	if (json_get_strings(wrap, f->key, true, LIST_MAX, FIELD_MAXLEN, &list,
		errors) == -1) {
		json_decref(wrap);
		return -1;
	}
	json_array_foreach(list, i, item)
	{
		const char *s = json_string_value(item);
		/* One entry is one word: the file separates them by these. */
		if (strpbrk(s, " \t,") != NULL) {
			errors_set(errors, f->key,
			    "'%s' holds a blank or comma: give one entry at a "
			    "time",
			    s);
			goto fail;
		}
		if (check_text(f, s, errors) == -1)
			goto fail;
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(s,
				json_string_value(json_array_get(list, j))) ==
			    0) {
				errors_set(
				    errors, f->key, "'%s' is listed twice", s);
				goto fail;
			}
		len += strlen(s) + 2;
	}
	text = xmalloc(len + 1);
	text[0] = '\0';
	json_array_foreach(list, i, item)
	{
		if (i > 0)
			strcat(text, ", ");
		strcat(text, json_string_value(item));
	}
	json_decref(wrap);
	*text_r = text;
	return 0;
fail:
	json_decref(wrap);
	return -1;
}

/* {host, port, mx} as "[host]:port" or "host:port" (look up MX). */
static int
nexthop_text(
    const struct console_field *f, json_t *value, char **text_r, json_t *errors)
{
	static const char *const keys[] = { "host", "port", "mx", NULL };
	json_t *sub = json_object(), *port;
	const char *host;
	int mx = 0;
	long long p = 25;

	if (!json_is_object(value)) {
		errors_set(
		    errors, f->key, "must be an object {host, port, mx}");
		goto fail;
	}
	json_reject_unknown(value, keys, sub);
	if (json_get_string(value, "host", true, FIELD_MAXLEN, &host, sub) ==
		-1 ||
	    json_get_bool(value, "mx", false, &mx, sub) == -1)
		goto fail;
	if ((port = json_object_get(value, "port")) != NULL &&
	    !json_is_null(port)) {
		if (!json_is_integer(port) || json_integer_value(port) < 1 ||
		    json_integer_value(port) > 65535) {
			errors_set(sub, "port", "must be from 1 to 65535");
			goto fail;
		}
		p = json_integer_value(port);
	}
	if (json_object_size(sub) > 0)
		goto fail;
	if (*host == '\0') {
		*text_r = xstrdup("");
		json_decref(sub);
		return 0;
	}
	if (strchr(host, '[') != NULL || strchr(host, ']') != NULL) {
		errors_set(errors, f->key,
		    "give the host without brackets; untick mx instead");
		json_decref(sub);
		return -1;
	}
	if (mx && strchr(host, ':') != NULL) {
		errors_set(errors, f->key,
		    "an IP address has no MX records: untick mx");
		json_decref(sub);
		return -1;
	}
	*text_r = mx ? xasprintf("%s:%lld", host, p)
		     : xasprintf("[%s]:%lld", host, p);
	json_decref(sub);
	if (check_text(f, *text_r, errors) == -1) {
		free(*text_r);
		*text_r = NULL;
		return -1;
	}
	return 0;
fail:
	if (json_object_size(sub) > 0) {
		const char *k;
		json_t *v;
		json_object_foreach(sub, k, v)
		{
			errors_set(
			    errors, f->key, "%s %s", k, json_string_value(v));
			break;
		}
	}
	json_decref(sub);
	return -1;
}

int
console_field_text(
    const struct console_field *f, json_t *value, char **text_r, json_t *errors)
{
	*text_r = NULL;
	switch (f->kind) {
	case CF_TEXT:
		if (!json_is_string(value) ||
		    json_string_length(value) > FIELD_MAXLEN) {
			errors_set(errors, f->key,
			    "must be a string of at most %d characters",
			    FIELD_MAXLEN);
			return -1;
		}
		if (strlen(json_string_value(value)) !=
		    json_string_length(value)) {
			errors_set(errors, f->key, "must not hold a NUL");
			return -1;
		}
		if (check_text(f, json_string_value(value), errors) == -1)
			return -1;
		*text_r = xstrdup(json_string_value(value));
		return 0;
	case CF_BOOL:
		if (!json_is_boolean(value)) {
			errors_set(errors, f->key, "must be true or false");
			return -1;
		}
		*text_r = xstrdup(config_bool_str(json_is_true(value)));
		return 0;
	case CF_INT:
		if (!json_is_integer(value)) {
			errors_set(errors, f->key, "must be a whole number");
			return -1;
		}
		*text_r =
		    xasprintf("%lld", (long long)json_integer_value(value));
		if (check_text(f, *text_r, errors) == -1) {
			free(*text_r);
			*text_r = NULL;
			return -1;
		}
		return 0;
	case CF_LIST:
		return list_text(f, value, text_r, errors);
	case CF_NEXTHOP:
		return nexthop_text(f, value, text_r, errors);
	}
	return -1;
}

/*
 * Whether the console can change the file: always through the root
 * configuration writer; a daemon that never had root needs the file
 * writable by its own user.
 */
static bool
config_writable(const struct admin *a)
{
	const char *path = a->config_path;
	char *copy;

	if (a->confwriter_fd != -1)
		return true;
	copy = xstrdup(path);
	bool ok = access(dirname(copy), W_OK) == 0 &&
	    (access(path, W_OK) == 0 || errno == ENOENT);

	free(copy);
	return ok;
}

json_t *
console_fields_state(struct admin *a, const struct console_field *fields)
{
	struct strlist errors = { 0 };
	struct config *file = NULL;
	json_t *st, *fj, *rj, *pending, *ferr, *other;

	fj = json_object();
	rj = json_object();
	pending = json_array();
	other = json_array();
	ferr = json_array();
	if (config_load(a->config_path, &file, &errors) == -1) {
		for (size_t i = 0; i < errors.n; i++)
			json_array_append_new(ferr, json_string(errors.v[i]));
		strlist_free(&errors);
	}
	for (const struct console_field *f = fields; f->key != NULL; f++) {
		json_t *run = console_field_json(a->cfg, f);
		json_t *cur = file != NULL ? console_field_json(file, f)
					   : json_incref(run);
		if (!json_equal(run, cur))
			json_array_append_new(pending, json_string(f->key));
		json_object_set_new(fj, f->key, cur);
		json_object_set_new(rj, f->key, run);
	}
	/* Changes elsewhere in the file (mailsealctl, an editor) count too. */
	for (int i = 0; file != NULL && i < P__COUNT; i++)
		if (strcmp(cfg_str(file, i), cfg_str(a->cfg, i)) != 0)
			json_array_append_new(
			    other, json_string(param_table[i].name));
	st = json_pack("{s:o,s:o,s:o,s:o,s:o,s:s,s:b}", "fields", fj, "running",
	    rj, "pending", pending, "changed_parameters", other, "file_errors",
	    ferr, "file", a->config_path, "writable", config_writable(a));
	config_unref(&file);
	return st;
}

static const struct console_field *
field_find(const struct console_field *fields, const char *key)
{
	for (const struct console_field *f = fields; f->key != NULL; f++)
		if (strcmp(f->key, key) == 0)
			return f;
	return NULL;
}

/*
 * "FILE:LINE: error: after_filter... must not be smaller than ..." goes
 * to the field named first in the text, or to "_form".
 */
static void
errors_from_file(json_t *errors, const struct strlist *msgs,
    const struct console_field *fields)
{
	for (size_t i = 0; i < msgs->n; i++) {
		const char *m = msgs->v[i], *e = strstr(m, "error: ");
		const char *best = NULL, *best_at = NULL;
		if (e != NULL)
			m = e + 7;
		for (const struct console_field *f = fields; f->key != NULL;
		     f++) {
			const char *at = strstr(m, f->key);
			if (at != NULL && (best_at == NULL || at < best_at)) {
				best = f->key;
				best_at = at;
			}
		}
		errors_set(errors, best != NULL ? best : "_form", "%s", m);
	}
}

void
console_fields_put(struct api_req *r, const struct console_field *fields)
{
	struct config_change ch[32];
	struct strlist msgs = { 0 };
	struct config *file = NULL;
	json_t *errors = json_object(), *v;
	char *texts[32];
	const char *key;
	size_t n = 0;

	json_object_foreach(r->json, key, v)
	{
		const struct console_field *f = field_find(fields, key);
		char *text;
		if (f == NULL) {
			errors_set(errors, key, "unknown field");
			continue;
		}
		if (console_field_text(f, v, &text, errors) == -1)
			continue;
		if (n == nitems(ch)) {
			free(text);
			errors_set(errors, key, "too many fields");
			continue;
		}
		texts[n] = text;
		ch[n].name = f->key;
		ch[n].value = text;
		/* The default needs no line of its own. */
		ch[n].unset = strcmp(text, param_table[f->id].def) == 0;
		n++;
	}
	if (json_object_size(errors) == 0 && !config_writable(r->a))
		errors_set(errors, "_form",
		    "%s cannot be changed: it or its directory is not "
		    "writable by the user the daemon runs as",
		    r->a->config_path);
	/* Fields whose value the file already has are left alone. */
	if (json_object_size(errors) == 0 &&
	    config_load(r->a->config_path, &file, &msgs) == 0) {
		for (size_t i = 0; i < n;) {
			const struct console_field *f =
			    field_find(fields, ch[i].name);
			json_t *cur = console_field_json(file, f);
			bool same =
			    json_equal(cur, json_object_get(r->json, f->key));
			json_decref(cur);
			if (!same) {
				i++;
				continue;
			}
			free(texts[i]);
			texts[i] = texts[n - 1];
			ch[i] = ch[n - 1];
			n--;
		}
		config_unref(&file);
	}
	strlist_free(&msgs);
	if (json_object_size(errors) == 0 && n > 0 &&
	    confwriter_change(
		r->a->confwriter_fd, r->a->config_path, ch, n, &msgs) == -1)
		errors_from_file(errors, &msgs, fields);
	strlist_free(&msgs);
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	if (n > 0)
		msg_info("admin %s changed %zu parameter%s of %s",
		    r->session->username, n, n == 1 ? "" : "s",
		    r->a->config_path);
	api_json(r, 200, console_fields_state(r->a, fields));
}

/* "Apply": the parent checks the file and passes SIGHUP to every child. */
void
api_apply(struct api_req *r)
{
	struct admin *a = r->a;
	struct strlist msgs = { 0 };
	struct config *file = NULL;
	struct timespec deadline;
	uint64_t gen = a->cfg_generation;
	pid_t parent = getppid();
	long running;

	if (config_load(a->config_path, &file, &msgs) == -1) {
		json_t *errors = json_object();
		errors_from_file(errors, &msgs, mta_fields);
		strlist_free(&msgs);
		api_field_errors(r, errors);
		return;
	}
	config_unref(&file);
	running = daemon_running_pid(a->cfg);
	if (running == -1 || (pid_t)running != parent) {
		api_error(
		    r, 503, "the mailseald parent process is not running");
		return;
	}
	if (kill(parent, SIGHUP) == -1) {
		api_error(
		    r, 503, "cannot signal mailseald: %s", strerror(errno));
		return;
	}
	msg_info("admin %s: apply: reloading %s", r->session->username,
	    a->config_path);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	while (a->cfg_generation == gen)
		if (pthread_cond_timedwait(&a->reloaded, &a->lock, &deadline) ==
		    ETIMEDOUT)
			break;
	if (a->cfg_generation == gen) {
		api_error(r, 504,
		    "mailseald did not confirm the reload; see the log");
		return;
	}
	api_json(r, 200,
	    json_pack("{s:b,s:o}", "reloaded", 1, "mta",
		console_fields_state(a, mta_fields)));
}
