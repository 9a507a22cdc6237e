#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/addr.h"
#include "common/util.h"

/* RFC 5321 4.1.2: atext of a Dot-string. */
static bool
is_atext(int c)
{
	/* strchr() finds the terminating NUL too: exclude it first. */
	return c != 0 && (isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c));
}

void
addr_free(struct mailaddr *a)
{
	free(a->addr);
	free(a->local);
	free(a->domain);
	free(a->route_domain);
	memset(a, 0, sizeof(*a));
}

const char *
addr_domain(const char *addr, char *buf, size_t size)
{
	const char *at = strrchr(addr, '@');

	strlcpy_ms(buf, at != NULL ? at + 1 : "", size);
	str_lower(buf);
	return buf;
}

/* Parses a domain or address literal at s; returns its length or -1. */
static int
parse_domain(const char *s, bool *literal_r)
{
	const char *p = s;

	*literal_r = false;
	if (*p == '[') {
		while (*p != '\0' && *p != ']') {
			if ((unsigned char)*p < 33 || (unsigned char)*p > 126)
				return -1;
			p++;
		}
		if (*p != ']')
			return -1;
		*literal_r = true;
		return (int)(p + 1 - s);
	}
	for (;;) {
		if (!isalnum((unsigned char)*p) && *p != '_')
			return -1;
		while (isalnum((unsigned char)*p) || *p == '-' || *p == '_')
			p++;
		if (p[-1] == '-')
			return -1;
		if (*p != '.')
			break;
		p++;
		/* A trailing dot ends the domain. */
		if (!isalnum((unsigned char)*p))
			break;
	}
	return (int)(p - s);
}

/* Where the local part routes mail to, if it does: the last hop wins. */
static char *
local_route(const char *local)
{
	char unq[512], *o = unq;
	const char *p, *sep;

	/* Unquote, so that "user@remote" and user@remote look alike. */
	for (p = local; *p != '\0' && o < unq + sizeof(unq) - 1; p++) {
		if (*p == '"')
			continue;
		if (*p == '\\' && p[1] != '\0')
			p++;
		*o++ = *p;
	}
	*o = '\0';
	if ((sep = strrchr(unq, '@')) != NULL ||
	    (sep = strrchr(unq, '%')) != NULL)
		return xstrdup(sep + 1);
	if ((sep = strchr(unq, '!')) != NULL)
		return xstrndup(unq, (size_t)(sep - unq));
	return NULL;
}

int
addr_parse_path(
    const char *s, const char **end_r, struct mailaddr *a, const char **error_r)
{
	const char *p = s, *lstart, *lend;
	bool bracket = false;
	int n;

	memset(a, 0, sizeof(*a));
	while (*p == ' ')
		p++;
	if (*p == '<') {
		bracket = true;
		p++;
	}
	if (bracket && *p == '>') {
		a->addr = xstrdup("");
		a->local = xstrdup("");
		a->domain = xstrdup("");
		*end_r = p + 1;
		return 0;
	}
	/* A source route "@a,@b:" is ignored (RFC 5321 C, 4.1.1.3). */
	if (*p == '@') {
		for (;;) {
			bool lit;
			if (*p != '@')
				goto bad;
			p++;
			if ((n = parse_domain(p, &lit)) < 0)
				goto bad;
			p += n;
			if (*p == ',') {
				p++;
				continue;
			}
			if (*p != ':')
				goto bad;
			p++;
			break;
		}
	}
	lstart = p;
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\\' && p[1] >= 32 && p[1] <= 126)
				p++;
			else if ((unsigned char)*p < 32 ||
			    (unsigned char)*p > 126)
				goto bad;
		}
		p++;
	} else {
		for (;;) {
			const char *atom = p;
			while (is_atext((unsigned char)*p))
				p++;
			if (p == atom)
				goto bad;
			if (*p != '.')
				break;
			p++;
		}
	}
	lend = p;
	a->local = xstrndup(lstart, (size_t)(lend - lstart));
	if (*p == '@') {
		p++;
		if ((n = parse_domain(p, &a->literal)) < 0)
			goto bad;
		a->domain = xstrndup(p, (size_t)n);
		p += n;
		str_lower(a->domain);
		size_t dl = strlen(a->domain);
		if (dl > 0 && a->domain[dl - 1] == '.')
			a->domain[dl - 1] = '\0';
		if (strlen(a->domain) > 255)
			goto bad;
		a->addr = xasprintf("%s@%s", a->local, a->domain);
	} else {
		/* Only "postmaster" may go without a domain (RFC 5321 4.5.1). */
		if (strcasecmp(a->local, "postmaster") != 0)
			goto bad;
		a->domain = xstrdup("");
		a->addr = xstrdup(a->local);
	}
	if (bracket) {
		if (*p != '>')
			goto bad;
		p++;
	} else if (*p != '\0' && *p != ' ')
		goto bad;
	if (strlen(a->addr) > 512)
		goto bad;
	a->route_domain = local_route(a->local);
	if (a->route_domain != NULL) {
		size_t rl;
		a->routed = true;
		str_lower(a->route_domain);
		rl = strlen(a->route_domain);
		if (rl > 0 && a->route_domain[rl - 1] == '.')
			a->route_domain[rl - 1] = '\0';
	}
	*end_r = p;
	return 0;
bad:
	addr_free(a);
	*error_r = "bad address syntax";
	return -1;
}

bool
relay_domain_match(const struct config *cfg, const char *domain)
{
	const struct strlist *rd = cfg_list(cfg, P_RELAY_DOMAINS);
	bool sub = cfg_bool(cfg, P_MATCH_SUBDOMAINS);
	size_t dl = strlen(domain);

	if (dl == 0)
		return false;
	for (size_t i = 0; i < rd->n; i++) {
		size_t rl = strlen(rd->v[i]);
		if (strcasecmp(domain, rd->v[i]) == 0)
			return true;
		if (sub && dl > rl + 1 && domain[dl - rl - 1] == '.' &&
		    strcasecmp(domain + dl - rl, rd->v[i]) == 0)
			return true;
	}
	return false;
}

enum relay_verdict
relay_check(
    const struct config *cfg, bool client_trusted, const struct mailaddr *rcpt)
{
	bool ok;

	if (client_trusted)
		return RELAY_NETWORK;
	/* RFC 5321 4.5.1: <postmaster> must be accepted; it goes inside. */
	if (rcpt->domain[0] == '\0')
		return strcasecmp(rcpt->local, "postmaster") == 0 ? RELAY_DOMAIN
								  : RELAY_DENY;
	if (rcpt->literal)
		return RELAY_DENY;
	ok = relay_domain_match(cfg, rcpt->domain);
	if (ok && rcpt->routed)
		ok = relay_domain_match(cfg, rcpt->route_domain);
	return ok ? RELAY_DOMAIN : RELAY_DENY;
}
