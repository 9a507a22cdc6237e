/*
 * The resolver: libunbound in the dispatcher's libevent loop (ub_fd and
 * ub_process), asking the servers of dns_servers, or those of
 * /etc/resolv.conf when it is empty. It turns a next hop into the list of
 * addresses to try, in order: the MX hosts by preference, random among
 * equal preferences (RFC 5321 5.1); the domain's own A/AAAA records when
 * it has no MX record (the implicit MX); a null MX (RFC 7505) is final.
 */
#ifndef MAILSEAL_DNS_H
#define MAILSEAL_DNS_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct config;
struct dns;
struct dns_req;

#define DNS_NAME_MAX 256

struct dns_target {
	char host[DNS_NAME_MAX]; /* the MX host, or the host itself */
	unsigned pref;
	struct sockaddr_storage sa; /* address and port */
	socklen_t salen;
};

enum dns_status {
	DNS_OK,
	DNS_TEMPFAIL, /* try again later */
	DNS_NOTFOUND, /* the name or its addresses do not exist */
	DNS_NULLMX, /* the domain accepts no mail (RFC 7505) */
};

struct dns_answer {
	enum dns_status status;
	char dsn[12]; /* for a failure: 4.4.3, 5.4.4, 5.1.10 */
	const char *why; /* for a failure, Postfix's wording */
	const struct dns_target *t;
	size_t n;
};

typedef void (*dns_nexthop_cb)(const struct dns_answer *, void *arg);

/* A resolver for the DNS servers of the configuration. */
struct dns *dns_new(
    struct event_base *, const struct config *, const char **error_r);
/*
 * Takes a new configuration. When dns_servers changed, lookups in
 * progress end with DNS_TEMPFAIL and new ones use the new servers.
 */
int dns_set_config(struct dns *, const struct config *, const char **error_r);
void dns_free(struct dns **);

/*
 * The addresses to try for host:port. With mx, host is a domain whose MX
 * records name the hosts; without, host is a host name or an IP address.
 * max_addrs caps the list (0: no cap). The callback runs from the event
 * loop, never before this returns; the request is freed after it.
 */
struct dns_req *dns_resolve_nexthop(struct dns *, const char *host, int port,
    bool mx, size_t max_addrs, dns_nexthop_cb, void *arg);
/* Abandons a request: its callback is not called. */
void dns_cancel(struct dns_req **);

/* Parsing, exposed for the tests and the fuzz harness. */

struct dns_mx {
	unsigned pref;
	char host[DNS_NAME_MAX]; /* "" for the root: a null MX */
};

/*
 * Decodes an uncompressed domain name in wire format (RFC 1035 3.1) from
 * p[0..len) into "a.b.c" (no trailing dot; "" for the root). Labels must
 * be host names (letters, digits, '-', '_'). Returns the bytes read or -1.
 */
int dns_name_decode(const unsigned char *p, size_t len, char *out, size_t size);
/* The rdata of an MX record (RFC 1035 3.3.9); 0 or -1. */
int dns_mx_parse(const unsigned char *rdata, size_t len, struct dns_mx *);
/*
 * Sorts MX records by preference, equal preferences in random order (rnd
 * gives random numbers), and drops duplicate hosts. Returns the count.
 */
size_t dns_mx_sort(struct dns_mx *, size_t n, uint32_t (*rnd)(void));
/* RFC 7505 3: a single MX record whose exchange is the root. */
bool dns_mx_is_null(const struct dns_mx *, size_t n);

#endif
