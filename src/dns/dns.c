#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <unbound.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "dns/dns.h"

#define RR_A 1
#define RR_MX 15
#define RR_AAAA 28
#define RCODE_NXDOMAIN 3

/* At most this many MX hosts are looked up for one domain. */
#define DNS_MAX_MX_HOSTS 10

enum lookup_result {
	LR_PENDING,
	LR_DATA,
	LR_NODATA,
	LR_NXDOMAIN,
	LR_TEMP,
};

struct dns {
	struct event_base *base;
	struct ub_ctx *ub;
	struct event *ev;
	char *servers; /* the dns_servers text the context was made for */
	struct dns_req *reqs;
};

struct dns_sub {
	struct dns_req *req;
	int async_id;
	bool active;
	int rrtype;
	size_t host; /* index in req->hosts (A and AAAA lookups) */
};

struct dns_host {
	char name[DNS_NAME_MAX];
	unsigned pref;
	int res[2]; /* enum lookup_result of the A and AAAA lookups */
	struct dns_target *addrs;
	size_t naddrs;
};

struct dns_req {
	struct dns *dns;
	struct dns_req *next, *prev;
	char name[DNS_NAME_MAX];
	int port;
	bool mx;
	size_t max;
	dns_nexthop_cb cb;
	void *arg;
	struct dns_sub mxsub;
	struct dns_host *hosts;
	size_t nhosts;
	struct dns_sub *hsubs; /* 2 per host: A, AAAA */
	unsigned outstanding;
	struct event *later; /* completes a request that needed no lookup */
	/* A failure found on the way. */
	enum dns_status status;
	char dsn[12];
	char why[512];
};

static const char *
rr_name(int rrtype)
{
	return rrtype == RR_MX ? "MX" : rrtype == RR_A ? "A" : "AAAA";
}

static uint32_t
dns_random(void)
{
	return arc4random();
}

/* The context. */

static void
dns_process_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	int rc;

	if ((rc = ub_process(dns->ub)) != 0)
		msg_warn("DNS: ub_process: %s", ub_strerror(rc));
}

static int
dns_ctx_set(
    struct ub_ctx *ub, const char *opt, const char *val, const char **error_r)
{
	int rc;

	if ((rc = ub_ctx_set_option(ub, opt, val)) != 0) {
		*error_r = ub_strerror(rc);
		return -1;
	}
	return 0;
}

static struct ub_ctx *
dns_ctx_new(const struct config *cfg, const char **error_r)
{
	const struct hostport *hp;
	struct ub_ctx *ub;
	size_t n;
	int rc;

	if ((ub = ub_ctx_create()) == NULL) {
		*error_r = "cannot create a libunbound context";
		return NULL;
	}
	/*
	 * Servers on loopback (a local resolver, dnsmasq in the tests) must
	 * be asked; names under "test." (RFC 6761) are looked up like any
	 * other, not answered by unbound's built-in empty zone.
	 */
	if (dns_ctx_set(ub, "do-not-query-localhost:", "no", error_r) == -1 ||
	    dns_ctx_set(ub, "local-zone:", "test. transparent", error_r) == -1)
		goto fail;
	hp = cfg_listen(cfg, P_DNS_SERVERS, &n);
	for (size_t i = 0; i < n; i++) {
		char fwd[300];
		snprintf(fwd, sizeof(fwd), "%s@%d", hp[i].host, hp[i].port);
		if ((rc = ub_ctx_set_fwd(ub, fwd)) != 0) {
			*error_r = ub_strerror(rc);
			goto fail;
		}
	}
	/* Without a resolv.conf, unbound resolves from the root itself. */
	if (n == 0 && (rc = ub_ctx_resolvconf(ub, NULL)) != 0)
		msg_warn("DNS: cannot use /etc/resolv.conf (%s): resolving "
			 "from the root servers",
		    ub_strerror(rc));
	/* Threads, not a forked process: the dispatcher never forks. */
	if ((rc = ub_ctx_async(ub, 1)) != 0) {
		*error_r = ub_strerror(rc);
		goto fail;
	}
	return ub;
fail:
	ub_ctx_delete(ub);
	return NULL;
}

static int
dns_ctx_install(struct dns *dns, const struct config *cfg, const char **error_r)
{
	struct ub_ctx *ub;
	int fd;

	if ((ub = dns_ctx_new(cfg, error_r)) == NULL)
		return -1;
	if ((fd = ub_fd(ub)) == -1) {
		ub_ctx_delete(ub);
		*error_r = "libunbound has no file descriptor";
		return -1;
	}
	if (dns->ev != NULL)
		event_free(dns->ev);
	if (dns->ub != NULL)
		ub_ctx_delete(dns->ub);
	dns->ub = ub;
	dns->ev =
	    event_new(dns->base, fd, EV_READ | EV_PERSIST, dns_process_cb, dns);
	event_add(dns->ev, NULL);
	free(dns->servers);
	dns->servers = xstrdup(cfg_str(cfg, P_DNS_SERVERS));
	return 0;
}

struct dns *
dns_new(struct event_base *base, const struct config *cfg, const char **error_r)
{
	struct dns *dns = xcalloc(1, sizeof(*dns));

	dns->base = base;
	if (dns_ctx_install(dns, cfg, error_r) == -1) {
		free(dns);
		return NULL;
	}
	return dns;
}

/* Requests. */

static void
req_unlink(struct dns_req *r)
{
	struct dns *dns = r->dns;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		dns->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
}

static void
sub_cancel(struct dns *dns, struct dns_sub *s)
{
	if (s->active) {
		ub_cancel(dns->ub, s->async_id);
		s->active = false;
	}
}

static void
req_free(struct dns_req *r)
{
	sub_cancel(r->dns, &r->mxsub);
	for (size_t i = 0; i < r->nhosts * 2; i++)
		sub_cancel(r->dns, &r->hsubs[i]);
	for (size_t i = 0; i < r->nhosts; i++)
		free(r->hosts[i].addrs);
	free(r->hosts);
	free(r->hsubs);
	if (r->later != NULL)
		event_free(r->later);
	free(r);
}

void
dns_cancel(struct dns_req **rp)
{
	struct dns_req *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	req_unlink(r);
	req_free(r);
}

static void req_fail(struct dns_req *, enum dns_status, const char *,
    const char *, ...) __attribute__((format(printf, 4, 5)));

static void
req_fail(struct dns_req *r, enum dns_status st, const char *dsn,
    const char *fmt, ...)
{
	va_list ap;

	/* The first failure of a kind is kept; a temporary one wins. */
	if (r->status == DNS_TEMPFAIL)
		return;
	r->status = st;
	strlcpy_ms(r->dsn, dsn, sizeof(r->dsn));
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

static void
host_add_addr(
    struct dns_req *r, struct dns_host *h, int family, const void *addr)
{
	struct dns_target *t;

	h->addrs = xreallocarray(h->addrs, h->naddrs + 1, sizeof(*h->addrs));
	t = &h->addrs[h->naddrs++];
	memset(t, 0, sizeof(*t));
	strlcpy_ms(t->host, h->name, sizeof(t->host));
	t->pref = h->pref;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&t->sa;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)r->port);
		memcpy(&sin->sin_addr, addr, 4);
		t->salen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->sa;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)r->port);
		memcpy(&sin6->sin6_addr, addr, 16);
		t->salen = sizeof(*sin6);
	}
}

/* All lookups are done: the answer goes to the caller. */
static void
req_complete(struct dns_req *r)
{
	struct dns_target *all = NULL;
	struct dns_answer ans;
	size_t n = 0;

	for (size_t i = 0; i < r->nhosts; i++) {
		struct dns_host *h = &r->hosts[i];
		for (size_t k = 0; k < h->naddrs; k++) {
			if (r->max > 0 && n >= r->max)
				break;
			all = xreallocarray(all, n + 1, sizeof(*all));
			all[n++] = h->addrs[k];
		}
	}
	memset(&ans, 0, sizeof(ans));
	if (n > 0) {
		ans.status = DNS_OK;
		ans.t = all;
		ans.n = n;
	} else {
		if (r->status == DNS_OK)
			req_fail(r, DNS_TEMPFAIL, "4.4.3",
			    "no address found for %s", r->name);
		ans.status = r->status;
		strlcpy_ms(ans.dsn, r->dsn, sizeof(ans.dsn));
		ans.why = r->why;
	}
	req_unlink(r);
	r->cb(&ans, r->arg);
	free(all);
	req_free(r);
}

static enum lookup_result
classify(struct dns_req *r, int err, struct ub_result *res, int rrtype,
    const char *name)
{
	if (err != 0 || res == NULL) {
		req_fail(r, DNS_TEMPFAIL, "4.4.3",
		    "Host or domain name not found. Name service error for "
		    "name=%s type=%s: Host not found, try again (%s)",
		    name, rr_name(rrtype), ub_strerror(err));
		return LR_TEMP;
	}
	if (res->rcode == RCODE_NXDOMAIN)
		return LR_NXDOMAIN;
	if (res->rcode != 0 || res->bogus) {
		req_fail(r, DNS_TEMPFAIL, "4.4.3",
		    "Host or domain name not found. Name service error for "
		    "name=%s type=%s: Host not found, try again",
		    name, rr_name(rrtype));
		return LR_TEMP;
	}
	return res->havedata ? LR_DATA : LR_NODATA;
}

static void host_sub_cb(void *, int, struct ub_result *);

static void
sub_start(struct dns_req *r, struct dns_sub *s, const char *name, int rrtype,
    ub_callback_type cb)
{
	int rc;

	s->req = r;
	s->rrtype = rrtype;
	rc = ub_resolve_async(r->dns->ub, name, rrtype, 1, s, cb, &s->async_id);
	if (rc != 0) {
		req_fail(r, DNS_TEMPFAIL, "4.4.3",
		    "Host or domain name not found. Name service error for "
		    "name=%s type=%s: %s",
		    name, rr_name(rrtype), ub_strerror(rc));
		return;
	}
	s->active = true;
	r->outstanding++;
}

/* Looks up the addresses of every host (A and AAAA, side by side). */
static void
req_lookup_hosts(struct dns_req *r)
{
	unsigned char a[16];

	r->hsubs = xcalloc(r->nhosts * 2, sizeof(*r->hsubs));
	for (size_t i = 0; i < r->nhosts; i++) {
		struct dns_host *h = &r->hosts[i];
		if (inet_pton(AF_INET, h->name, a) == 1) {
			host_add_addr(r, h, AF_INET, a);
			continue;
		}
		if (inet_pton(AF_INET6, h->name, a) == 1) {
			host_add_addr(r, h, AF_INET6, a);
			continue;
		}
		r->hsubs[2 * i].host = r->hsubs[2 * i + 1].host = i;
		sub_start(r, &r->hsubs[2 * i], h->name, RR_A, host_sub_cb);
		sub_start(
		    r, &r->hsubs[2 * i + 1], h->name, RR_AAAA, host_sub_cb);
	}
	if (r->outstanding == 0)
		req_complete(r);
}

static void
host_sub_cb(void *arg, int err, struct ub_result *res)
{
	struct dns_sub *s = arg;
	struct dns_req *r = s->req;
	struct dns_host *h = &r->hosts[s->host];
	int slot = s->rrtype == RR_A ? 0 : 1;
	enum lookup_result lr;

	s->active = false;
	r->outstanding--;
	lr = classify(r, err, res, s->rrtype, h->name);
	h->res[slot] = lr;
	if (lr == LR_DATA) {
		size_t want = s->rrtype == RR_A ? 4 : 16;
		for (int i = 0; res->data[i] != NULL; i++)
			if (res->len[i] == (int)want)
				host_add_addr(r, h,
				    s->rrtype == RR_A ? AF_INET : AF_INET6,
				    res->data[i]);
	}
	/* Both lookups of the host are in and neither found anything. */
	if (h->res[0] != LR_PENDING && h->res[1] != LR_PENDING &&
	    h->naddrs == 0 && h->res[0] != LR_TEMP && h->res[1] != LR_TEMP) {
		bool nx = h->res[0] == LR_NXDOMAIN || h->res[1] == LR_NXDOMAIN;
		req_fail(r, DNS_NOTFOUND, "5.4.4",
		    "Host or domain name not found. Name service error for "
		    "name=%s type=%s: %s",
		    h->name, nx ? "A" : "AAAA",
		    nx ? "Host not found"
		       : "Host found but no data record of requested type");
	}
	if (res != NULL)
		ub_resolve_free(res);
	/* IPv6 first, as getaddrinfo orders them (RFC 6724). */
	if (h->res[0] != LR_PENDING && h->res[1] != LR_PENDING) {
		size_t k = 0;
		for (size_t i = 0; i < h->naddrs; i++)
			if (h->addrs[i].sa.ss_family == AF_INET6) {
				struct dns_target t = h->addrs[i];
				memmove(&h->addrs[k + 1], &h->addrs[k],
				    (i - k) * sizeof(t));
				h->addrs[k++] = t;
			}
	}
	if (r->outstanding == 0)
		req_complete(r);
}

static void
req_add_host(struct dns_req *r, const char *name, unsigned pref)
{
	struct dns_host *h;

	r->hosts = xreallocarray(r->hosts, r->nhosts + 1, sizeof(*r->hosts));
	h = &r->hosts[r->nhosts++];
	memset(h, 0, sizeof(*h));
	strlcpy_ms(h->name, name, sizeof(h->name));
	h->pref = pref;
	h->res[0] = h->res[1] = LR_PENDING;
}

static void
mx_sub_cb(void *arg, int err, struct ub_result *res)
{
	struct dns_sub *s = arg;
	struct dns_req *r = s->req;
	struct dns_mx mx[64];
	size_t n = 0, bad = 0;

	s->active = false;
	r->outstanding--;
	switch (classify(r, err, res, RR_MX, r->name)) {
	case LR_TEMP:
		break;
	case LR_NXDOMAIN:
		req_fail(r, DNS_NOTFOUND, "5.4.4",
		    "Host or domain name not found. Name service error for "
		    "name=%s type=MX: Host not found",
		    r->name);
		break;
	case LR_NODATA:
		/* RFC 5321 5.1: no MX record, the domain is its own host. */
		req_add_host(r, r->name, 0);
		break;
	default:
		for (int i = 0; res->data[i] != NULL && n < nitems(mx); i++) {
			if (dns_mx_parse((const unsigned char *)res->data[i],
				(size_t)res->len[i], &mx[n]) == 0)
				n++;
			else
				bad++;
		}
		if (dns_mx_is_null(mx, n) && bad == 0) {
			req_fail(r, DNS_NULLMX, "5.1.10",
			    "Domain %s does not accept mail (nullMX)", r->name);
			break;
		}
		n = dns_mx_sort(mx, n, dns_random);
		for (size_t i = 0; i < n && r->nhosts < DNS_MAX_MX_HOSTS; i++)
			if (mx[i].host[0] != '\0')
				req_add_host(r, mx[i].host, mx[i].pref);
		if (r->nhosts == 0)
			req_fail(r, DNS_TEMPFAIL, "4.4.3",
			    "malformed MX record for %s", r->name);
	}
	if (res != NULL)
		ub_resolve_free(res);
	if (r->nhosts > 0)
		req_lookup_hosts(r);
	else
		req_complete(r);
}

static void
req_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req *r = arg;

	if (r->mx)
		sub_start(r, &r->mxsub, r->name, RR_MX, mx_sub_cb);
	else {
		req_add_host(r, r->name, 0);
		req_lookup_hosts(r);
		return;
	}
	if (r->outstanding == 0)
		req_complete(r);
}

struct dns_req *
dns_resolve_nexthop(struct dns *dns, const char *host, int port, bool mx,
    size_t max_addrs, dns_nexthop_cb cb, void *arg)
{
	struct dns_req *r = xcalloc(1, sizeof(*r));
	struct timeval now = { 0, 0 };
	size_t len = strlen(host);

	r->dns = dns;
	/* A trailing dot (an absolute name) changes nothing here. */
	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len >= sizeof(r->name))
		len = sizeof(r->name) - 1;
	memcpy(r->name, host, len);
	r->name[len] = '\0';
	r->port = port;
	r->mx = mx;
	r->max = max_addrs;
	r->cb = cb;
	r->arg = arg;
	r->status = DNS_OK;
	r->next = dns->reqs;
	if (r->next != NULL)
		r->next->prev = r;
	dns->reqs = r;
	/* Even the lookups start from the loop: callers get a handle first. */
	r->later = evtimer_new(dns->base, req_later_cb, r);
	evtimer_add(r->later, &now);
	return r;
}

/* Ends every request in progress with a temporary failure. */
static void
dns_abort_all(struct dns *dns, const char *why)
{
	struct dns_req *r;

	while ((r = dns->reqs) != NULL) {
		struct dns_answer ans;
		memset(&ans, 0, sizeof(ans));
		ans.status = DNS_TEMPFAIL;
		strlcpy_ms(ans.dsn, "4.4.3", sizeof(ans.dsn));
		ans.why = why;
		req_unlink(r);
		r->cb(&ans, r->arg);
		req_free(r);
	}
}

int
dns_set_config(struct dns *dns, const struct config *cfg, const char **error_r)
{
	if (strcmp(dns->servers, cfg_str(cfg, P_DNS_SERVERS)) == 0)
		return 0;
	dns_abort_all(dns, "DNS servers changed: lookup abandoned");
	return dns_ctx_install(dns, cfg, error_r);
}

void
dns_free(struct dns **dnsp)
{
	struct dns *dns = *dnsp;
	struct dns_req *r;

	if (dns == NULL)
		return;
	*dnsp = NULL;
	while ((r = dns->reqs) != NULL) {
		req_unlink(r);
		req_free(r);
	}
	event_free(dns->ev);
	ub_ctx_delete(dns->ub);
	free(dns->servers);
	free(dns);
}
