/*
 * MTA → sasl: the credentials for relay hosts, in the file that
 * smtp_sasl_password_maps names ("[relay.example]:587 user:password"
 * lines, issue 3). Passwords go in and never come back out: the page
 * sees the user name and whether a password is set. Without a file yet,
 * data_directory/sasl_passwd is made and named in mailseal.conf.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/api.h"
#include "common/config.h"
#include "common/confwriter.h"
#include "common/log.h"
#include "common/util.h"
#include "smtp/sasl_client.h"

#define SASL_MAX_ENTRIES 200

static char *
sasl_path(struct admin *a, bool *configured_r)
{
	struct strlist errs = { 0 };
	struct config *file = NULL;
	char *path;

	/* The file's setting, which may not be applied yet. */
	if (config_load(a->config_path, &file, &errs) == -1)
		file = config_ref(a->cfg);
	strlist_free(&errs);
	*configured_r = *cfg_str(file, P_SMTP_SASL_PASSWORD_MAPS) != '\0';
	path = *configured_r
	    ? xstrdup(cfg_str(file, P_SMTP_SASL_PASSWORD_MAPS))
	    : xasprintf("%s/sasl_passwd", cfg_str(file, P_DATA_DIRECTORY));
	config_unref(&file);
	return path;
}

static char *
nexthop_key(const struct sasl_cred *c)
{
	return c->mx ? xasprintf("%s:%d", c->host, c->port)
		     : xasprintf("[%s]:%d", c->host, c->port);
}

static struct sasl_map *
load(const char *path, bool *missing_r)
{
	struct strlist errs = { 0 };
	struct sasl_map *m;
	const char *why;

	*missing_r = access(path, F_OK) != 0 && errno == ENOENT;
	m = *missing_r ? NULL : sasl_map_load(path, &errs, &why);
	strlist_free(&errs);
	return m;
}

void
api_sasl_get(struct api_req *r)
{
	bool configured, missing;
	char *path = sasl_path(r->a, &configured);
	struct sasl_map *m = load(path, &missing);
	json_t *list = json_array();

	if (m == NULL && !missing) {
		api_error(r, 500, "cannot read %s", path);
		free(path);
		return;
	}
	for (size_t i = 0; m != NULL && i < m->n; i++) {
		char *key = nexthop_key(&m->v[i]);
		json_array_append_new(list,
		    json_pack("{s:s,s:s,s:b}", "nexthop", key, "username",
			m->v[i].user, "has_password", m->v[i].pass[0] != '\0'));
		free(key);
	}
	api_json(r, 200,
	    json_pack("{s:s,s:b,s:o}", "file", path, "configured", configured,
		"entries", list));
	sasl_map_free(&m);
	free(path);
}

static bool
user_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s == ':' || *s == ' ' || *s == '\t')
			return false;
	return true;
}

/* Writes text to path atomically with mode 0600. */
static int
write_secret_file(const char *path, const char *text, const char **error_r)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd, rc = -1;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		*error_r = strerror(errno);
		free(tmp);
		return -1;
	}
	if (write_full(fd, text, strlen(text)) == 0 && fsync(fd) == 0 &&
	    rename(tmp, path) == 0)
		rc = 0;
	else
		*error_r = strerror(errno);
	close(fd);
	if (rc == -1)
		unlink(tmp);
	free(tmp);
	return rc;
}

void
api_sasl_put(struct api_req *r)
{
	static const char *const keys[] = { "entries", NULL };
	static const char *const ekeys[] = { "nexthop", "username", "password",
		NULL };
	struct strlist out = { 0 }, perrs = { 0 };
	bool configured, missing;
	char *path = sasl_path(r->a, &configured);
	struct sasl_map *old = load(path, &missing), *check;
	json_t *errors = json_object(), *entries, *e;
	size_t i, total = 0;
	const char *why;
	char *text;

	json_reject_unknown(r->json, keys, errors);
	entries = json_object_get(r->json, "entries");
	if (!json_is_array(entries) ||
	    json_array_size(entries) > SASL_MAX_ENTRIES)
		errors_set(errors, "sasl",
		    "entries must be a list of at most %d", SASL_MAX_ENTRIES);
	json_array_foreach(json_is_array(entries) ? entries : NULL, i, e)
	{
		json_t *sub = json_object();
		const char *nh = NULL, *user = NULL, *pw = NULL;
		struct nexthop parsed;
		const struct sasl_cred *prev = NULL;
		if (!json_is_object(e)) {
			errors_set(errors, "sasl", "entry %zu is not an object",
			    i + 1);
			json_decref(sub);
			continue;
		}
		json_reject_unknown(e, ekeys, sub);
		json_get_string(e, "nexthop", true, 255, &nh, sub);
		json_get_string(e, "username", true, 255, &user, sub);
		json_get_string(e, "password", false, 255, &pw, sub);
		if (nh != NULL &&
		    (*nh == '\0' || nexthop_parse(nh, 25, &parsed, &why) == -1))
			errors_set(sub, "nexthop",
			    "is not a relay host ([host]:port)");
		else if (nh != NULL) {
			prev = old != NULL ? sasl_map_lookup(old, parsed.host,
						 parsed.port, parsed.mx)
					   : NULL;
			nexthop_free(&parsed);
		}
		if (user != NULL && !user_ok(user))
			errors_set(sub, "username",
			    "must not be empty or hold ':' or blanks");
		if (pw != NULL &&
		    (*pw == '\0' || pw[0] == ' ' || pw[strlen(pw) - 1] == ' '))
			errors_set(sub, "password",
			    "must not be empty or start or end with a blank");
		if (pw == NULL && prev == NULL && json_object_size(sub) == 0)
			errors_set(sub, "password",
			    "is required for a new relay host");
		if (json_object_size(sub) > 0) {
			const char *k;
			json_t *v;
			json_object_foreach(sub, k, v)
			{
				errors_set(errors, "sasl", "entry %zu: %s %s",
				    i + 1, k, json_string_value(v));
				break;
			}
		} else
			strlist_addf(&out, "%s %s:%s\n", nh, user,
			    pw != NULL ? pw : prev->pass);
		json_decref(sub);
	}
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		goto out;
	}
	for (i = 0; i < out.n; i++)
		total += strlen(out.v[i]);
	text = xmalloc(total + 64);
	snprintf(text, 64, "# SASL credentials, written by the console\n");
	for (i = 0; i < out.n; i++)
		strcat(text, out.v[i]);
	check = sasl_map_parse(path, text, strlen(text), &perrs);
	sasl_map_free(&check);
	if (perrs.n > 0) {
		errors_set(errors, "sasl", "%s", perrs.v[0]);
		api_field_errors(r, errors);
		xfree_secret(text, total + 64);
		goto out;
	}
	if (write_secret_file(path, text, &why) == -1) {
		xfree_secret(text, total + 64);
		json_decref(errors);
		api_error(r, 500, "cannot write %s: %s", path, why);
		goto out;
	}
	xfree_secret(text, total + 64);
	if (!configured) {
		struct strlist cerrs = { 0 };
		struct config_change ch = { "smtp_sasl_password_maps", path,
			false };
		if (confwriter_change(r->a->confwriter_fd, r->a->config_path,
			&ch, 1, &cerrs) == -1) {
			errors_set(errors, "sasl", "%s",
			    cerrs.n > 0 ? cerrs.v[0] : "cannot name the file");
			strlist_free(&cerrs);
			api_field_errors(r, errors);
			goto out;
		}
	}
	json_decref(errors);
	msg_info("admin %s wrote %zu SASL credential%s to %s",
	    r->session->username, out.n, out.n == 1 ? "" : "s", path);
	api_sasl_get(r);
out:
	for (i = 0; i < out.n; i++)
		xfree_secret(out.v[i], strlen(out.v[i]));
	free(out.v);
	strlist_free(&perrs);
	sasl_map_free(&old);
	free(path);
}
