/*
 * The route table of the JSON API: a method, a path pattern whose ":name"
 * segments match one path segment each, a handler and what it needs.
 */
#ifndef MAILSEAL_ROUTER_H
#define MAILSEAL_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#define ROUTE_MAX_PARAMS 4
#define ROUTE_MAX_SEGMENT 320 /* an email address fits */

struct api_req;

/* What a route needs. */
#define R_PUBLIC 0x01 /* no session needed (login, the session probe) */
#define R_JSON 0x02 /* a JSON object body */
#define R_UPLOAD 0x04 /* a multipart/form-data body (file uploads) */

struct route {
	const char *method;
	const char *pattern;
	void (*fn)(struct api_req *);
	unsigned flags;
};

struct route_params {
	char v[ROUTE_MAX_PARAMS][ROUTE_MAX_SEGMENT + 1];
	size_t n;
};

/*
 * Finds the route of method and path. Returns it with the values of its
 * ":name" segments, or NULL with *status_r 404 (no such path) or 405
 * (the path exists with other methods).
 */
const struct route *route_find(const struct route *table, size_t n,
    const char *method, const char *path, struct route_params *params,
    int *status_r);
/* Whether a method changes state (everything but GET and HEAD). */
bool route_method_unsafe(const char *method);

#endif
