/* libFuzzer: mailseal.conf parsing and checking. */
#include <stdint.h>
#include <stdlib.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strlist errors = { 0 };
	struct config *cfg = NULL;
	char *s = xstrndup((const char *)data, size);

	if (config_load_string("fuzz", s, &cfg, &errors) == 0) {
		if (errors.n != 0)
			abort();
		(void)cfg_myhostname(cfg);
		(void)cfg_helo_name(cfg);
		config_unref(&cfg);
	} else if (errors.n == 0)
		abort(); /* a refusal always says why */
	strlist_free(&errors);
	free(s);
	return 0;
}
