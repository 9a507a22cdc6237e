/* The SMTP client's reply parser: server replies, line by line. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r = { 0 };
	const char *p = (const char *)data, *why;
	size_t off = 0;
	char dsn[12];

	while (off < size) {
		const char *lf = memchr(p + off, '\n', size - off);
		size_t len = lf != NULL ? (size_t)(lf - (p + off)) : size - off;
		size_t l = len > 0 && p[off + len - 1] == '\r' ? len - 1 : len;
		if (smtp_reply_add_line(&r, p + off, l, &why) == SMTP_REPLY_BAD)
			smtp_reply_reset(&r);
		off += len + 1;
	}
	if (r.nlines > 0)
		(void)smtp_reply_parse_dsn(
		    r.lines[0], r.code, dsn, sizeof(dsn));
	smtp_reply_reset(&r);
	return 0;
}
