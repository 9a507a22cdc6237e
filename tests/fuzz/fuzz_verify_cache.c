/* The verification cache file (data_directory/verify.cache). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "queue/verify_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcache *vc = vcache_new_memory();
	struct vc_record rec;
	char line[2048];

	(void)vcache_load_text(vc, (const char *)data, size, 1000);
	/* A line that parses formats back to a line that parses. */
	if (vcache_parse_line((const char *)data, size, &rec) == 0) {
		size_t n = vcache_format_line(&rec, line, sizeof(line));
		struct vc_record again;
		if (n > 0 &&
		    (vcache_parse_line(line, n - 1, &again) != 0 ||
			strcmp(again.addr, rec.addr) != 0))
			__builtin_trap();
	}
	vcache_close(&vc);
	return 0;
}
