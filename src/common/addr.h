/*
 * Envelope addresses (RFC 5321 4.1.2) and the relay decision: who may
 * send to which recipient through this gateway.
 */
#ifndef MAILSEAL_ADDR_H
#define MAILSEAL_ADDR_H

#include <stdbool.h>

#include "common/cidr.h"
#include "common/config.h"

struct mailaddr {
	char *addr; /* local@domain as it goes on, source route removed */
	char *local; /* the local part as written (quotes included) */
	char *domain; /* lowercase, no trailing dot; "" when none */
	bool literal; /* the domain is an address literal [...] */
	bool routed; /* the local part routes elsewhere: % ! or quoted @ */
	char *route_domain; /* the destination that the local part names */
};

/*
 * Parses the argument of MAIL FROM: or RCPT TO: (from the '<', or a bare
 * address as lenient clients send it). *end_r points after the path, at
 * the ESMTP parameters. An empty path "<>" gives addr "". 0 on success,
 * -1 with a reason.
 */
int addr_parse_path(
    const char *s, const char **end_r, struct mailaddr *, const char **error_r);
void addr_free(struct mailaddr *);
/* The domain part of local@domain, lowercased into buf. */
const char *addr_domain(const char *addr, char *buf, size_t size);

enum relay_verdict {
	RELAY_DENY = 0,
	RELAY_DOMAIN, /* the recipient is in a relay domain */
	RELAY_NETWORK, /* the client is in mynetworks */
};

/* Whether a domain is a relay domain (match_subdomains honoured). */
bool relay_domain_match(const struct config *, const char *domain);

/*
 * The relay decision at RCPT TO. A recipient in a relay domain is
 * accepted from anyone, unless its local part routes elsewhere (the
 * percent hack, bang paths, a quoted '@') to a place that is not a relay
 * domain itself, or its domain is an address literal. Anything else is
 * accepted only from clients in mynetworks.
 */
enum relay_verdict relay_check(
    const struct config *, bool client_trusted, const struct mailaddr *rcpt);

#endif
