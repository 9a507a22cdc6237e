#include <string.h>

#include "admin/router.h"

/* Matches path against pattern segment by segment. */
static bool
route_match(const char *pattern, const char *path, struct route_params *p)
{
	const char *a = pattern, *b = path;

	p->n = 0;
	while (*a != '\0' && *b != '\0') {
		if (*a != '/' || *b != '/')
			return false;
		a++;
		b++;
		size_t alen = strcspn(a, "/"), blen = strcspn(b, "/");
		if (*a == ':') {
			/* A parameter: one non-empty segment, never "." or "..". */
			if (blen == 0 || blen > ROUTE_MAX_SEGMENT ||
			    p->n == ROUTE_MAX_PARAMS)
				return false;
			if ((blen == 1 && b[0] == '.') ||
			    (blen == 2 && b[0] == '.' && b[1] == '.'))
				return false;
			memcpy(p->v[p->n], b, blen);
			p->v[p->n][blen] = '\0';
			p->n++;
		} else if (alen != blen || memcmp(a, b, alen) != 0)
			return false;
		a += alen;
		b += blen;
	}
	return *a == '\0' && *b == '\0';
}

const struct route *
route_find(const struct route *table, size_t n, const char *method,
    const char *path, struct route_params *params, int *status_r)
{
	bool path_known = false;

	*status_r = 404;
	params->n = 0;
	if (path[0] != '/' || strlen(path) > 2048)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!route_match(table[i].pattern, path, params))
			continue;
		if (strcmp(table[i].method, method) == 0 ||
		    (strcmp(method, "HEAD") == 0 &&
			strcmp(table[i].method, "GET") == 0))
			return &table[i];
		path_known = true;
	}
	params->n = 0;
	if (path_known)
		*status_r = 405;
	return NULL;
}

bool
route_method_unsafe(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}
