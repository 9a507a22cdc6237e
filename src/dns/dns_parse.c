/* Parsing of DNS answer data: domain names and MX records. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/dns.h"

int
dns_name_decode(const unsigned char *p, size_t len, char *out, size_t size)
{
	size_t off = 0, o = 0;

	if (size == 0)
		return -1;
	for (;;) {
		size_t l;

		if (off >= len)
			return -1;
		l = p[off++];
		if (l == 0)
			break;
		/* RFC 1035 4.1.4: 0xC0 starts a pointer; none here. */
		if (l > 63 || l > len - off)
			return -1;
		if (o + l + 1 >= size)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++) {
			unsigned char c = p[off + i];
			if (!isalnum(c) && c != '-' && c != '_')
				return -1;
			out[o++] = (char)tolower(c);
		}
		off += l;
	}
	out[o] = '\0';
	/* RFC 1035 2.3.4: 255 octets on the wire. */
	return off > 255 ? -1 : (int)off;
}

int
dns_mx_parse(const unsigned char *rdata, size_t len, struct dns_mx *mx)
{
	int n;

	if (len < 3)
		return -1;
	mx->pref = (unsigned)rdata[0] << 8 | rdata[1];
	n = dns_name_decode(rdata + 2, len - 2, mx->host, sizeof(mx->host));
	/* The name must fill the rdata exactly. */
	if (n < 0 || (size_t)n != len - 2)
		return -1;
	return 0;
}

bool
dns_mx_is_null(const struct dns_mx *mx, size_t n)
{
	return n == 1 && mx[0].host[0] == '\0';
}

size_t
dns_mx_sort(struct dns_mx *mx, size_t n, uint32_t (*rnd)(void))
{
	size_t out = 0;

	/* A random shuffle, then a stable sort by preference. */
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd() % i;
		struct dns_mx t = mx[i - 1];
		mx[i - 1] = mx[j];
		mx[j] = t;
	}
	for (size_t i = 1; i < n; i++) {
		struct dns_mx t = mx[i];
		size_t j = i;
		while (j > 0 && mx[j - 1].pref > t.pref) {
			mx[j] = mx[j - 1];
			j--;
		}
		mx[j] = t;
	}
	/* A host named twice keeps its best preference. */
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t k = 0; k < out && !dup; k++)
			dup = strcasecmp(mx[k].host, mx[i].host) == 0;
		if (!dup)
			mx[out++] = mx[i];
	}
	return out;
}
