/*
 * libFuzzer: the From mailbox (mime_from_mailbox). Its plain forms skip
 * GMime's address parser; whatever the input, the answer must be the one
 * GMime's parser gives.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "common/util.h"
#include "crypto/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char *
gmime_from(const char *v)
{
	InternetAddressList *l;
	InternetAddress *a;
	char *addr = NULL;

	if (strlen(v) > MIME_MAX_VALUE ||
	    (l = internet_address_list_parse(NULL, v)) == NULL)
		return NULL;
	if (internet_address_list_length(l) == 1 &&
	    INTERNET_ADDRESS_IS_MAILBOX(
		a = internet_address_list_get_address(l, 0))) {
		const char *s = internet_address_mailbox_get_addr(
		    INTERNET_ADDRESS_MAILBOX(a));
		if (s != NULL && *s != '\0') {
			addr = xstrdup(s);
			str_lower(addr);
		}
	}
	g_object_unref(l);
	return addr;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	char *s, *got, *want;

	if (!init) {
		g_mime_init();
		init = true;
	}
	/* A field value: no NUL, no line end (mime_field_value unfolds). */
	if (memchr(data, '\0', size) != NULL ||
	    memchr(data, '\n', size) != NULL ||
	    memchr(data, '\r', size) != NULL)
		return 0;
	s = xstrndup((const char *)data, size);
	got = mime_from_mailbox(s);
	want = gmime_from(s);
	if ((got == NULL) != (want == NULL) ||
	    (got != NULL && strcmp(got, want) != 0))
		abort();
	free(got);
	free(want);
	free(s);
	return 0;
}
