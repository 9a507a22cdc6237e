#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "smtp/smtp_reply.h"

void
smtp_reply_reset(struct smtp_reply *r)
{
	for (size_t i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	free(r->lines);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

/* One to three digits; returns how many, or 0. */
static size_t
dsn_number(const char *p, size_t max)
{
	size_t n = 0;

	while (n < max && isdigit((unsigned char)p[n]))
		n++;
	return n;
}

size_t
smtp_reply_parse_dsn(const char *text, int code, char *dsn, size_t size)
{
	const char *p = text;
	size_t n, len;

	/* RFC 3463 2: class "." subject "." detail; the class is 2, 4, 5. */
	if (p[0] != '0' + code / 100 || p[1] != '.')
		return 0;
	p += 2;
	if ((n = dsn_number(p, 3)) == 0 || p[n] != '.')
		return 0;
	p += n + 1;
	if ((n = dsn_number(p, 3)) == 0)
		return 0;
	p += n;
	if (*p != '\0' && *p != ' ')
		return 0;
	len = (size_t)(p - text);
	if (len >= size)
		return 0;
	memcpy(dsn, text, len);
	dsn[len] = '\0';
	return len;
}

static void
reply_append_text(struct smtp_reply *r, const char *line, size_t len)
{
	size_t need = r->len + len + 2;

	r->text = xreallocarray(r->text, need, 1);
	if (r->len > 0)
		r->text[r->len++] = ' ';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		r->text[r->len++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	r->text[r->len] = '\0';
}

int
smtp_reply_add_line(
    struct smtp_reply *r, const char *line, size_t len, const char **error_r)
{
	int code;
	char sep;

	if (r->done)
		smtp_reply_reset(r);
	/* RFC 5321 4.2: Reply-code [ SP textstring ] CRLF, or "-" between. */
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2])) {
		*error_r = "malformed server reply";
		return SMTP_REPLY_BAD;
	}
	sep = len > 3 ? line[3] : ' ';
	if (sep != ' ' && sep != '-') {
		*error_r = "malformed server reply";
		return SMTP_REPLY_BAD;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->code != 0 && code != r->code) {
		*error_r = "server reply lines with different codes";
		return SMTP_REPLY_BAD;
	}
	if (len > SMTP_REPLY_LINE_MAX || r->len + len > SMTP_REPLY_TEXT_MAX ||
	    r->nlines >= SMTP_REPLY_LINES_MAX) {
		*error_r = "server reply too long";
		return SMTP_REPLY_BAD;
	}
	r->code = code;
	reply_append_text(r, line, len);
	r->lines = xreallocarray(r->lines, r->nlines + 1, sizeof(*r->lines));
	/* The line's text, after "250-": the tail of what was appended. */
	r->lines[r->nlines] =
	    xstrdup(r->text + r->len - (len > 4 ? len - 4 : 0));
	if (r->nlines == 0) {
		r->has_dsn = smtp_reply_parse_dsn(
				 r->lines[0], code, r->dsn, sizeof(r->dsn)) > 0;
		if (!r->has_dsn)
			snprintf(r->dsn, sizeof(r->dsn), "%d.0.0", code / 100);
	}
	r->nlines++;
	if (sep == '-')
		return SMTP_REPLY_MORE;
	r->done = true;
	return SMTP_REPLY_DONE;
}
