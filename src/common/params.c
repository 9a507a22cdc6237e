#include <string.h>

#include "common/params.h"

const struct param_def param_table[P__COUNT] = {
#define PARAM(id, name, type, def, min, max, choices, help)                    \
	{ name, type, def, min, max, choices, help },
#include "common/params.def"
#undef PARAM
};

int
param_lookup(const char *name)
{
	for (int i = 0; i < P__COUNT; i++)
		if (strcmp(param_table[i].name, name) == 0)
			return i;
	return -1;
}

const char *
param_type_name(enum param_type t)
{
	static const char *names[] = {
		[PT_STR] = "text",
		[PT_HOST] = "hostname",
		[PT_BOOL] = "yes | no",
		[PT_INT] = "integer",
		[PT_SIZE] = "bytes",
		[PT_TIME] = "time (s, m, h, d, w)",
		[PT_ENUM] = "word",
		[PT_DOMAINS] = "list of domains",
		[PT_CIDRS] = "list of networks (CIDR)",
		[PT_NEXTHOP] = "[host]:port or host:port",
		[PT_LISTEN] = "list of host:port",
		[PT_PATH] = "absolute path",
		[PT_STORE] = "sqlite:PATH",
	};

	return names[t];
}
