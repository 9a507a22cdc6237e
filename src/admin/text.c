#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "admin/text.h"
#include "common/util.h"

/* The length of a valid UTF-8 sequence at s (RFC 3629), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	size_t n;
	unsigned c = s[0];
	unsigned long cp;

	if (c < 0x80)
		return c == 0 ? 0 : 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

json_t *
text_json(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = xmalloc(len * 3 + 1);
	size_t o = 0;
	json_t *j;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0) {
			/* U+FFFD REPLACEMENT CHARACTER */
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, p + i, n);
		o += n;
		i += n;
	}
	j = json_stringn(out, o);
	free(out);
	return j != NULL ? j : json_string("");
}

bool
text_contains_ci(const char *s, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return true;
	for (size_t i = 0; i + n <= len; i++) {
		size_t k = 0;
		while (k < n &&
		    tolower((unsigned char)s[i + k]) ==
			tolower((unsigned char)needle[k]))
			k++;
		if (k == n)
			return true;
	}
	return false;
}
