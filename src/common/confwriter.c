#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/confwriter.h"
#include "common/log.h"
#include "common/util.h"

#define CONFWRITER_MAX_REQUEST 65536
#define CONFWRITER_MAX_CHANGES 64

static char *
reply_errors(const struct strlist *errors)
{
	json_t *r = json_pack("{s:b,s:[]}", "ok", 0, "errors");
	json_t *a = json_object_get(r, "errors");
	char *text;

	for (size_t i = 0; i < errors->n; i++)
		json_array_append_new(a, json_string(errors->v[i]));
	text = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	return text;
}

char *
confwriter_handle(const char *config_path, const char *req, size_t len)
{
	struct config_change ch[CONFWRITER_MAX_CHANGES];
	struct strlist errors = { 0 };
	json_error_t jerr;
	json_t *doc, *changes, *c;
	size_t i, n = 0;
	char *text;

	doc = json_loadb(req, len, JSON_REJECT_DUPLICATES, &jerr);
	changes = json_object_get(doc, "changes");
	if (!json_is_array(changes) ||
	    json_array_size(changes) > CONFWRITER_MAX_CHANGES) {
		strlist_add(&errors, "error: malformed request");
		goto out;
	}
	json_array_foreach(changes, i, c)
	{
		const char *name =
		    json_string_value(json_object_get(c, "name"));
		const char *value =
		    json_string_value(json_object_get(c, "value"));
		int id;
		if (name == NULL || value == NULL) {
			strlist_add(&errors, "error: malformed request");
			goto out;
		}
		if ((id = param_lookup(name)) < 0 ||
		    !config_console_settable(id)) {
			/* Not on the console's list: root must change it. */
			strlist_addf(&errors,
			    "error: %.100s cannot be changed from the console",
			    name);
			goto out;
		}
		ch[n].name = name;
		ch[n].value = value;
		ch[n].unset = json_is_true(json_object_get(c, "unset"));
		n++;
	}
	if (n > 0 && config_file_change(config_path, ch, n, &errors) == 0)
		msg_info("changed %zu parameter%s of %s", n, n == 1 ? "" : "s",
		    config_path);
out:
	text = errors.n == 0 ? xstrdup("{\"ok\":true}") : reply_errors(&errors);
	strlist_free(&errors);
	json_decref(doc);
	return text;
}

static void __attribute__((noreturn))
confwriter_loop(const char *config_path, int fd)
{
	char *buf = xmalloc(CONFWRITER_MAX_REQUEST);

	log_init("mailseal/confwriter");
	for (;;) {
		ssize_t n = recv(fd, buf, CONFWRITER_MAX_REQUEST, 0);
		char *reply;
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0); /* the parent and its children are gone */
		reply = confwriter_handle(config_path, buf, (size_t)n);
		if (send(fd, reply, strlen(reply), MSG_NOSIGNAL) == -1)
			msg_warn("cannot answer: %m");
		free(reply);
	}
}

int
confwriter_start(const char *self, const char *config_path, int log_fd,
    int *fd_r, const char **error_r)
{
	char logbuf[16];
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		*error_r = strerror(errno);
		return -1;
	}
	if ((pid = fork()) == -1) {
		*error_r = strerror(errno);
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		/* A fresh image: nothing of the parent's memory stays. */
		int s = fcntl(sv[1], F_DUPFD_CLOEXEC, 64);
		int l = log_fd != -1 ? fcntl(log_fd, F_DUPFD_CLOEXEC, 64) : -1;
		if (s == -1 || dup2(s, 3) == -1 ||
		    (l != -1 && dup2(l, 4) == -1))
			_exit(127);
		snprintf(logbuf, sizeof(logbuf), "%d", log_fd != -1 ? 4 : -1);
		setenv(CONFWRITER_ENV, "3", 1);
		setenv("MAILSEAL_LOG_FD", logbuf, 1);
		execl(self, "mailseald", "-x", "confwriter", "-c", config_path,
		    (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	*fd_r = sv[0];
	return 0;
}

void
confwriter_main(const char *config_path)
{
	const char *s = getenv(CONFWRITER_ENV);
	int fd;

	if (s == NULL || (fd = atoi(s)) < 3)
		msg_fatal("confwriter: no socket (started by hand?)");
	if ((s = getenv("MAILSEAL_LOG_FD")) != NULL && atoi(s) > 2)
		log_set_fd(atoi(s));
	unsetenv(CONFWRITER_ENV);
	unsetenv("MAILSEAL_LOG_FD");
	for (int i = 3; i < 1024; i++)
		if (i != fd && i != log_get_fd())
			close(i);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	confwriter_loop(config_path, fd);
}

int
confwriter_change(int fd, const char *config_path,
    const struct config_change *ch, size_t n, struct strlist *errors)
{
	json_t *req, *a, *reply, *errs, *e;
	json_error_t jerr;
	char *text, buf[16384];
	ssize_t len;
	size_t i;
	int rc = -1;

	if (fd == -1)
		return config_file_change(config_path, ch, n, errors);
	req = json_pack("{s:[]}", "changes");
	a = json_object_get(req, "changes");
	for (i = 0; i < n; i++)
		json_array_append_new(a,
		    json_pack("{s:s,s:s,s:b}", "name", ch[i].name, "value",
			ch[i].value != NULL ? ch[i].value : "", "unset",
			ch[i].unset));
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (strlen(text) >= CONFWRITER_MAX_REQUEST ||
	    send(fd, text, strlen(text), MSG_NOSIGNAL) == -1) {
		free(text);
		strlist_add(errors,
		    "error: the configuration writer is not "
		    "available");
		return -1;
	}
	free(text);
	do
		len = recv(fd, buf, sizeof(buf), 0);
	while (len == -1 && errno == EINTR);
	if (len <= 0 ||
	    (reply = json_loadb(buf, (size_t)len, 0, &jerr)) == NULL) {
		strlist_add(errors,
		    "error: no answer from the configuration "
		    "writer");
		return -1;
	}
	if (json_is_true(json_object_get(reply, "ok")))
		rc = 0;
	else if (json_is_array(errs = json_object_get(reply, "errors"))) {
		json_array_foreach(errs, i, e)
		{
			if (json_is_string(e))
				strlist_add(errors, json_string_value(e));
		}
	}
	if (rc == -1 && errors->n == 0)
		strlist_add(errors,
		    "error: the configuration writer refused "
		    "the change");
	json_decref(reply);
	return rc;
}
