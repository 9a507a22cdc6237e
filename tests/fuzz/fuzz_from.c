/*
 * libFuzzer: the From mailbox (mime_from_mailbox). Its plain forms skip
 * GMime's address parser; whatever the input, the answer must be the one
 * GMime's parser gives (mime_from_mailbox_gmime).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "crypto/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, *got, *want;

	/* A field value: no NUL, no line end (mime_field_value unfolds). */
	if (memchr(data, '\0', size) != NULL ||
	    memchr(data, '\n', size) != NULL ||
	    memchr(data, '\r', size) != NULL)
		return 0;
	s = xstrndup((const char *)data, size);
	got = mime_from_mailbox(s);
	want = mime_from_mailbox_gmime(s);
	if ((got == NULL) != (want == NULL) ||
	    (got != NULL && strcmp(got, want) != 0))
		abort();
	free(got);
	free(want);
	free(s);
	return 0;
}
