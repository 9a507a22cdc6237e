/*
 * libFuzzer: multipart/form-data uploads (certificate, root and CRL
 * imports). The first line is the Content-Type, the rest the body; every
 * part found must lie inside the body. Part data also goes through the
 * UTF-8 sanitiser that file and log text pass before it becomes JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/multipart.h"
#include "admin/text.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	struct mp_form form;
	const char *why;
	char *ctype, *body;
	size_t blen;

	if (nl == NULL)
		return 0;
	ctype = xstrndup((const char *)data, (size_t)(nl - (const char *)data));
	blen = size - (size_t)(nl - (const char *)data) - 1;
	/* An exact-size copy, so that a read past the body is caught. */
	body = xmalloc(blen + 1);
	memcpy(body, nl + 1, blen);
	if (multipart_parse(ctype, body, blen, &form, &why) == 0) {
		if (form.n > MULTIPART_MAX_PARTS)
			abort();
		for (size_t i = 0; i < form.n; i++) {
			const struct mp_part *p = &form.v[i];
			if (p->name == NULL || p->data < body ||
			    p->data + p->len > body + blen)
				abort();
			if (multipart_get(&form, p->name) == NULL)
				abort();
			json_t *j = text_json(p->data, p->len);
			if (!json_is_string(j))
				abort();
			json_decref(j);
		}
		multipart_free(&form);
	} else if (why == NULL || form.n != 0)
		abort();
	free(ctype);
	free(body);
	return 0;
}
