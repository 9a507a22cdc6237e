/*
 * The control socket: newline-delimited JSON requests and replies over a
 * Unix stream socket in queue_directory/private (mode 0700, so only the
 * mail owner and root reach it). A request is {"cmd": NAME, ...}; a
 * reply is {"ok": true, ...} or {"ok": false, "error": TEXT}.
 */
#ifndef MAILSEAL_CONTROL_H
#define MAILSEAL_CONTROL_H

#include <jansson.h>

struct event_base;
struct control;
struct control_req;

typedef void (*control_handler)(struct control_req *, json_t *req, void *ctx);

struct control *control_new(
    struct event_base *, const char *path, const char **error_r);
void control_free(struct control **);
void control_register(
    struct control *, const char *cmd, control_handler, void *ctx);
/* Answers a request (now or later); takes the reference to reply. */
void control_reply(struct control_req *, json_t *reply);
/* Shorthands: {"ok": true} merged with extra (may be NULL), or an error. */
void control_reply_ok(struct control_req *, json_t *extra);
void control_reply_error(struct control_req *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The client side: one request, one reply; blocking, with a timeout. */
int control_call(const char *path, json_t *req, json_t **reply_r,
    int timeout_ms, const char **error_r);

#endif
