#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/control.h"
#include "common/log.h"
#include "common/util.h"

#define CONTROL_MAX_REQUEST (1 << 20)

struct control_cmd {
	char *name;
	control_handler fn;
	void *ctx;
};

struct control {
	struct event_base *base;
	struct evconnlistener *l;
	char *path;
	struct control_cmd *cmds;
	size_t ncmds;
};

struct control_req {
	struct control *c;
	struct bufferevent *bev;
	bool busy; /* a request is being answered */
	bool gone; /* the client hung up while busy */
	bool closing;
};

static void
req_free(struct control_req *r)
{
	bufferevent_free(r->bev);
	free(r);
}

static void
req_write_cb(struct bufferevent *bev, void *arg)
{
	struct control_req *r = arg;

	if (r->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		req_free(r);
}

static void req_read_cb(struct bufferevent *, void *);

void
control_reply(struct control_req *r, json_t *reply)
{
	char *text;

	r->busy = false;
	if (r->gone) {
		json_decref(reply);
		req_free(r);
		return;
	}
	text = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	if (text == NULL)
		text = xstrdup("{\"ok\":false,\"error\":\"cannot encode "
			       "reply\"}");
	evbuffer_add_printf(bufferevent_get_output(r->bev), "%s\n", text);
	free(text);
	/* One request per connection keeps the protocol simple. */
	r->closing = true;
	bufferevent_disable(r->bev, EV_READ);
}

void
control_reply_ok(struct control_req *r, json_t *extra)
{
	json_t *reply = json_object();

	json_object_set_new(reply, "ok", json_true());
	if (extra != NULL) {
		json_object_update(reply, extra);
		json_decref(extra);
	}
	control_reply(r, reply);
}

void
control_reply_error(struct control_req *r, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	control_reply(r, json_pack("{s:b,s:s}", "ok", 0, "error", text));
	free(text);
}

static void
req_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_req *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	json_error_t jerr;
	json_t *req;
	const char *cmd;
	char *line;
	size_t len;

	if (r->busy || r->closing)
		return;
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_MAX_REQUEST) {
			r->closing = true;
			req_free(r);
		}
		return;
	}
	req = json_loadb(line, len, 0, &jerr);
	free(line);
	if (req == NULL || !json_is_object(req) ||
	    (cmd = json_string_value(json_object_get(req, "cmd"))) == NULL) {
		json_decref(req);
		control_reply_error(r, "malformed request");
		return;
	}
	for (size_t i = 0; i < r->c->ncmds; i++) {
		if (strcmp(r->c->cmds[i].name, cmd) == 0) {
			r->busy = true;
			r->c->cmds[i].fn(r, req, r->c->cmds[i].ctx);
			json_decref(req);
			return;
		}
	}
	control_reply_error(r, "unknown command: %s", cmd);
	json_decref(req);
}

static void
req_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct control_req *r = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (r->busy) {
			r->gone = true;
			bufferevent_disable(bev, EV_READ | EV_WRITE);
			return;
		}
		req_free(r);
	}
}

static void
control_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control *c = arg;
	struct control_req *r = xcalloc(1, sizeof(*r));

	r->c = c;
	r->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(r->bev, req_read_cb, req_write_cb, req_event_cb, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
}

struct control *
control_new(struct event_base *base, const char *path, const char **error_r)
{
	struct sockaddr_un sun;
	struct control *c;
	mode_t old;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy_ms(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		*error_r = "control socket path too long";
		return NULL;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		*error_r = strerror(errno);
		return NULL;
	}
	unlink(path);
	old = umask(0077);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 64) == -1) {
		umask(old);
		*error_r = strerror(errno);
		close(fd);
		return NULL;
	}
	umask(old);
	c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->path = xstrdup(path);
	fd_set_nonblock(fd);
	c->l = evconnlistener_new(base, control_accept_cb, c,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	return c;
}

void
control_free(struct control **cp)
{
	struct control *c = *cp;

	if (c == NULL)
		return;
	evconnlistener_free(c->l);
	unlink(c->path);
	for (size_t i = 0; i < c->ncmds; i++)
		free(c->cmds[i].name);
	free(c->cmds);
	free(c->path);
	free(c);
	*cp = NULL;
}

void
control_register(
    struct control *c, const char *cmd, control_handler fn, void *ctx)
{
	c->cmds = xreallocarray(c->cmds, c->ncmds + 1, sizeof(*c->cmds));
	c->cmds[c->ncmds].name = xstrdup(cmd);
	c->cmds[c->ncmds].fn = fn;
	c->cmds[c->ncmds].ctx = ctx;
	c->ncmds++;
}

int
control_call(const char *path, json_t *req, json_t **reply_r, int timeout_ms,
    const char **error_r)
{
	static char errbuf[256];
	struct sockaddr_un sun;
	json_error_t jerr;
	char *text, *buf = NULL;
	size_t len = 0, cap = 0;
	uint64_t deadline = clock_mono_us() + (uint64_t)timeout_ms * 1000;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy_ms(sun.sun_path, path, sizeof(sun.sun_path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(errbuf, sizeof(errbuf),
		    "cannot connect to %s: %s (is mailseald running?)", path,
		    strerror(errno));
		*error_r = errbuf;
		if (fd != -1)
			close(fd);
		return -1;
	}
	text = json_dumps(req, JSON_COMPACT);
	if (write_full(fd, text, strlen(text)) == -1 ||
	    write_full(fd, "\n", 1) == -1) {
		free(text);
		close(fd);
		*error_r = "cannot send the request";
		return -1;
	}
	free(text);
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		uint64_t now = clock_mono_us();
		ssize_t n;
		if (now >= deadline) {
			*error_r = "timeout waiting for the daemon";
			goto fail;
		}
		if (poll(&pfd, 1, (int)((deadline - now) / 1000) + 1) == -1) {
			if (errno == EINTR)
				continue;
			*error_r = "poll failed";
			goto fail;
		}
		if (pfd.revents == 0)
			continue;
		if (cap - len < 4096) {
			cap = cap == 0 ? 8192 : cap * 2;
			buf = xreallocarray(buf, cap, 1);
		}
		if ((n = read(fd, buf + len, cap - len - 1)) == -1) {
			if (errno == EINTR)
				continue;
			*error_r = "read failed";
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (memchr(buf, '\n', len) != NULL)
			break;
	}
	close(fd);
	if (len == 0 || (*reply_r = json_loadb(buf, len, 0, &jerr)) == NULL) {
		free(buf);
		*error_r = "malformed reply from the daemon";
		return -1;
	}
	free(buf);
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}
