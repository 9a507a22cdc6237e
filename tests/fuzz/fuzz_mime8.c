/* The 8BITMIME downgrade: any message, fed in pieces of any size. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp/mime8.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static size_t out_len;

static void
sink(void *arg, const char *p, size_t len)
{
	out_len += len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime8 *m;
	size_t step, off;

	if (size < 1)
		return 0;
	/* The first byte chooses how the input is cut up. */
	step = (size_t)data[0] + 1;
	data++;
	size--;
	m = mime8_new(sink, NULL);
	for (off = 0; off < size; off += step)
		mime8_feed(m, (const char *)data + off,
		    size - off < step ? size - off : step);
	mime8_finish(m);
	mime8_free(&m);
	return 0;
}
