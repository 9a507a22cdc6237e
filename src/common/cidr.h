/* CIDR networks, IPv4 and IPv6, as mynetworks lists them. */
#ifndef MAILSEAL_CIDR_H
#define MAILSEAL_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int prefix;
};

struct cidr_list {
	struct cidr *v;
	size_t n;
};

/*
 * Parses "192.0.2.0/24", "192.0.2.7", "[2001:db8::]/32", "2001:db8::/32"
 * or "[::1]". Host bits beyond the prefix must be zero, as Postfix
 * insists. 0 on success; -1 with a reason otherwise.
 */
int cidr_parse(const char *, struct cidr *, const char **error_r);
/* Parses the textual address of a client (no prefix, no brackets). */
int cidr_parse_addr(const char *, int *family_r, uint8_t addr_r[16]);
bool cidr_contains(const struct cidr *, int family, const uint8_t addr[16]);
bool cidr_list_contains(const struct cidr_list *, const char *addr);
void cidr_format(const struct cidr *, char *, size_t);

#endif
