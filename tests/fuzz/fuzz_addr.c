/* libFuzzer: envelope addresses and the relay decision. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config *cfg;
	struct strlist errors = { 0 };
	struct mailaddr a;
	const char *end, *why;
	char *s;

	if (cfg == NULL &&
	    config_load_string("fuzz",
		"relay_domains = example.com\n"
		"match_subdomains = yes\n",
		&cfg, &errors) == -1)
		abort();
	s = xstrndup((const char *)data, size);
	if (addr_parse_path(s, &end, &a, &why) == 0) {
		/* end lies within the input, after the parsed path. */
		if (end < s || end > s + strlen(s))
			abort();
		(void)relay_check(cfg, false, &a);
		(void)relay_check(cfg, true, &a);
		addr_free(&a);
	}
	free(s);
	return 0;
}
