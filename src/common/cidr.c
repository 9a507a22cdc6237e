#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cidr.h"
#include "common/util.h"

int
cidr_parse_addr(const char *s, int *family_r, uint8_t addr_r[16])
{
	memset(addr_r, 0, 16);
	if (inet_pton(AF_INET, s, addr_r) == 1) {
		*family_r = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, addr_r) == 1) {
		/* An IPv4-mapped client matches IPv4 networks. */
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
			0, 0xff, 0xff };
		if (memcmp(addr_r, mapped, 12) == 0) {
			memmove(addr_r, addr_r + 12, 4);
			memset(addr_r + 4, 0, 12);
			*family_r = AF_INET;
		} else
			*family_r = AF_INET6;
		return 0;
	}
	return -1;
}

int
cidr_parse(const char *s, struct cidr *c, const char **error_r)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *slash, *end;
	long long prefix;
	size_t len;
	int maxbits;

	memset(c, 0, sizeof(*c));
	slash = strchr(s, '/');
	end = slash != NULL ? slash : s + strlen(s);
	if (*s == '[') {
		if (end - s < 2 || end[-1] != ']') {
			*error_r = "missing ']'";
			return -1;
		}
		s++;
		end--;
	}
	len = (size_t)(end - s);
	if (len == 0 || len >= sizeof(host)) {
		*error_r = "bad address";
		return -1;
	}
	memcpy(host, s, len);
	host[len] = '\0';
	memset(c->addr, 0, sizeof(c->addr));
	if (inet_pton(AF_INET, host, c->addr) == 1)
		c->family = AF_INET;
	else if (inet_pton(AF_INET6, host, c->addr) == 1)
		c->family = AF_INET6;
	else {
		*error_r = "bad address";
		return -1;
	}
	maxbits = c->family == AF_INET ? 32 : 128;
	if (slash == NULL)
		c->prefix = maxbits;
	else {
		if (parse_ll(slash + 1, 0, maxbits, &prefix) == -1) {
			*error_r = "bad prefix length";
			return -1;
		}
		c->prefix = (int)prefix;
	}
	for (int bit = c->prefix; bit < maxbits; bit++)
		if (c->addr[bit / 8] & (0x80 >> (bit % 8))) {
			*error_r = "non-zero host bits";
			return -1;
		}
	return 0;
}

bool
cidr_contains(const struct cidr *c, int family, const uint8_t addr[16])
{
	int full, rest;

	if (family != c->family)
		return false;
	full = c->prefix / 8;
	rest = c->prefix % 8;
	if (memcmp(c->addr, addr, (size_t)full) != 0)
		return false;
	if (rest != 0) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((c->addr[full] & mask) != (addr[full] & mask))
			return false;
	}
	return true;
}

bool
cidr_list_contains(const struct cidr_list *l, const char *addr)
{
	uint8_t a[16];
	int family;

	if (cidr_parse_addr(addr, &family, a) == -1)
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (cidr_contains(&l->v[i], family, a))
			return true;
	return false;
}

void
cidr_format(const struct cidr *c, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	inet_ntop(c->family, c->addr, host, sizeof(host));
	if (c->family == AF_INET6)
		snprintf(buf, size, "[%s]/%d", host, c->prefix);
	else
		snprintf(buf, size, "%s/%d", host, c->prefix);
}
