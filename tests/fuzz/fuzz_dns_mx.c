/* DNS answer data: MX rdata and domain names, then MX ordering. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dns/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static uint32_t counter;

static uint32_t
fixed_rand(void)
{
	return counter++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_mx mx[16];
	size_t n = 0, off = 0;
	char name[DNS_NAME_MAX];

	(void)dns_name_decode(data, size, name, sizeof(name));
	/* Records: a length byte, then that much rdata. */
	while (off < size && n < 16) {
		size_t len = data[off++];
		if (len > size - off)
			len = size - off;
		if (dns_mx_parse(data + off, len, &mx[n]) == 0)
			n++;
		off += len;
	}
	(void)dns_mx_is_null(mx, n);
	n = dns_mx_sort(mx, n, fixed_rand);
	for (size_t i = 1; i < n; i++)
		if (mx[i - 1].pref > mx[i].pref)
			__builtin_trap();
	return 0;
}
