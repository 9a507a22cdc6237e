/*
 * libFuzzer: the console's request routing. The first byte picks the
 * method, the rest is the (decoded) path; whatever matches must be a real
 * route with well-formed parameters.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api.h"
#include "admin/assets.h"
#include "admin/router.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE",
		"HEAD", "OPTIONS", "get", "" };
	struct route_params params;
	const struct route *rt;
	char *path;
	int status;

	if (size == 0)
		return 0;
	path = xstrndup((const char *)data + 1, size - 1);
	rt = route_find(api_routes, api_nroutes, methods[data[0] % 8], path,
	    &params, &status);
	if (rt == NULL) {
		if ((status != 404 && status != 405) || params.n != 0)
			abort();
	} else {
		if (rt < api_routes || rt >= api_routes + api_nroutes)
			abort();
		if (params.n > ROUTE_MAX_PARAMS)
			abort();
		for (size_t i = 0; i < params.n; i++) {
			size_t n = strlen(params.v[i]);
			if (n == 0 || n > ROUTE_MAX_SEGMENT ||
			    strchr(params.v[i], '/') != NULL ||
			    strcmp(params.v[i], "..") == 0 ||
			    strcmp(params.v[i], ".") == 0)
				abort();
		}
	}
	(void)asset_find(path);
	(void)route_method_unsafe(methods[data[0] % 8]);
	free(path);
	return 0;
}
