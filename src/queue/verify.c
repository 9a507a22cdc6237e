#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "dns/dns.h"
#include "queue/htab.h"
#include "queue/verify.h"
#include "queue/verify_cache.h"
#include "smtp/smtp_client.h"

enum probe_result {
	PROBE_OK,
	PROBE_BAD,
	PROBE_TEMP,
};

struct verify {
	struct event_base *base;
	struct config *cfg;
	struct dns *dns;
	struct smtpc_ctx *smtpc;
	struct vcache *cache;
	struct htab *probes; /* address -> struct probe */
};

struct probe;

struct waiter {
	struct waiter *next;
	struct probe *p;
	char *rcpt; /* as the client wrote it */
	smtpd_verify_done done;
	void *arg;
	struct event *tmo;
};

struct probe {
	struct verify *v;
	char *addr; /* lowercase */
	struct waiter *waiters;
	struct dns_req *dnsq;
	struct smtpc *c;
	struct smtpc_txn txn;
	struct smtpc_status rs;
	const char *rcpts[1];
	uint64_t start_us;
	char relay[DNS_NAME_MAX + 80];
};

static uint64_t
now_s(void)
{
	return clock_wall_us() / 1000000;
}

/* The SMTP reply for a rejected recipient (Postfix's wording). */
static char *
reply_bad(struct verify *v, const char *rcpt, const char *reason)
{
	int code = (int)cfg_int(v->cfg, P_UNVERIFIED_RECIPIENT_REJECT_CODE);

	return xasprintf("%d %s <%s>: Recipient address rejected: "
			 "undeliverable address: %s",
	    code, code >= 500 ? "5.1.1" : "4.1.1", rcpt, reason);
}

static char *
reply_temp(const char *rcpt, const char *reason)
{
	return xasprintf("450 4.1.1 <%s>: Recipient address rejected: "
			 "unverified address: %s",
	    rcpt, reason);
}

static void
waiter_free(struct waiter *w)
{
	if (w->tmo != NULL)
		event_free(w->tmo);
	free(w->rcpt);
	free(w);
}

static void
waiter_answer(struct waiter *w, enum probe_result r, const char *reason)
{
	char *text = NULL;

	if (r == PROBE_BAD)
		text = reply_bad(w->p->v, w->rcpt, reason);
	else if (r == PROBE_TEMP)
		text = reply_temp(w->rcpt, reason);
	w->done(r == PROBE_OK ? 0 : atoi(text), text, w->arg);
	free(text);
	waiter_free(w);
}

static void
probe_free(struct probe *p)
{
	struct waiter *w;

	while ((w = p->waiters) != NULL) {
		p->waiters = w->next;
		waiter_free(w);
	}
	dns_cancel(&p->dnsq);
	smtpc_free(&p->c);
	smtpc_status_clear(&p->rs);
	free(p->addr);
	free(p);
}

static void
probe_finish(
    struct probe *p, enum probe_result r, const char *dsn, const char *reason)
{
	struct verify *v = p->v;
	uint64_t now = now_s();
	struct waiter *w;
	static const char *const status[] = {
		[PROBE_OK] = "deliverable",
		[PROBE_BAD] = "undeliverable",
		[PROBE_TEMP] = "deferred",
	};

	msg_info("NOQUEUE: verify: to=<%s>, relay=%s, delay=%.2f, dsn=%s, "
		 "status=%s (%s)",
	    p->addr, p->relay, (double)(clock_wall_us() - p->start_us) / 1e6,
	    dsn, status[r], reason);
	if (r == PROBE_OK)
		vcache_put(v->cache, p->addr, true,
		    now +
			(uint64_t)cfg_int(
			    v->cfg, P_ADDRESS_VERIFY_POSITIVE_EXPIRE_TIME),
		    reason, now);
	else if (r == PROBE_BAD)
		vcache_put(v->cache, p->addr, false,
		    now +
			(uint64_t)cfg_int(
			    v->cfg, P_ADDRESS_VERIFY_NEGATIVE_EXPIRE_TIME),
		    reason, now);
	htab_del(v->probes, p->addr);
	while ((w = p->waiters) != NULL) {
		p->waiters = w->next;
		waiter_answer(w, r, reason);
	}
	probe_free(p);
}

static void
probe_done_cb(struct smtpc *s, struct smtpc_txn *txn, void *arg)
{
	struct probe *p = arg;
	char dsn[12];
	char *reason;
	enum probe_result r;

	strlcpy_ms(
	    dsn, p->rs.dsn[0] != '\0' ? p->rs.dsn : "4.0.0", sizeof(dsn));
	reason = xstrdup(p->rs.text != NULL ? p->rs.text : "no reply");
	/* A 5xx to MAIL FROM:<> says nothing of the address: temporary. */
	if (p->rs.code / 100 == 2)
		r = PROBE_OK;
	else if (p->rs.code / 100 == 5 &&
	    strstr(reason, "(in reply to RCPT TO command)") != NULL)
		r = PROBE_BAD;
	else
		r = PROBE_TEMP;
	smtpc_quit(&p->c);
	probe_finish(p, r, dsn, reason);
	free(reason);
}

static void
probe_ready_cb(
    struct smtpc *s, bool ok, const struct smtpc_status *fail, void *arg)
{
	struct probe *p = arg;

	strlcpy_ms(p->relay, smtpc_peer(s), sizeof(p->relay));
	if (!ok) {
		char dsn[12];
		strlcpy_ms(dsn, fail->dsn, sizeof(dsn));
		char *reason = xstrdup(fail->text);
		smtpc_free(&p->c);
		probe_finish(p, PROBE_TEMP, dsn, reason);
		free(reason);
		return;
	}
	memset(&p->txn, 0, sizeof(p->txn));
	p->rcpts[0] = p->addr;
	p->txn.sender = "";
	p->txn.rcpts = p->rcpts;
	p->txn.nrcpt = 1;
	p->txn.fd = -1;
	p->txn.probe = true;
	p->txn.rs = &p->rs;
	smtpc_send(s, &p->txn, probe_done_cb, p);
}

static void
probe_dns_cb(const struct dns_answer *ans, void *arg)
{
	struct probe *p = arg;
	struct verify *v = p->v;
	const struct nexthop *nh = cfg_nexthop(v->cfg, P_INTERNAL_RELAY_HOST);
	const char *lvl = cfg_str(v->cfg, P_SMTP_TLS_SECURITY_LEVEL);
	struct smtpc_opts o;
	char name[DNS_NAME_MAX + 16];

	p->dnsq = NULL;
	if (ans->status != DNS_OK) {
		probe_finish(p, PROBE_TEMP, ans->dsn, ans->why);
		return;
	}
	snprintf(name, sizeof(name), nh->mx ? "%s:%d" : "[%s]:%d",
	    nh->host != NULL ? nh->host : "", nh->port);
	memset(&o, 0, sizeof(o));
	o.tls = strcmp(lvl, "encrypt") == 0 ? SMTPC_TLS_ENCRYPT
	    : strcmp(lvl, "none") == 0	    ? SMTPC_TLS_NONE
					    : SMTPC_TLS_MAY;
	o.nexthop = name;
	p->c = smtpc_connect(v->smtpc, &o, ans->t, ans->n, probe_ready_cb, p);
}

static struct probe *
probe_start(struct verify *v, const char *addr)
{
	const struct nexthop *nh = cfg_nexthop(v->cfg, P_INTERNAL_RELAY_HOST);
	struct probe *p = xcalloc(1, sizeof(*p));

	p->v = v;
	p->addr = xstrdup(addr);
	p->start_us = clock_wall_us();
	strlcpy_ms(p->relay, "none", sizeof(p->relay));
	htab_put(v->probes, p->addr, p);
	p->dnsq = dns_resolve_nexthop(v->dns, nh->host, nh->port, nh->mx,
	    (size_t)cfg_int(v->cfg, P_SMTP_MX_ADDRESS_LIMIT), probe_dns_cb, p);
	return p;
}

static void
waiter_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg, **pp;

	/* The probe goes on; its result is cached for the next try. */
	for (pp = &w->p->waiters; *pp != NULL; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	waiter_answer(w, PROBE_TEMP, "Address verification in progress");
}

void
verify_rcpt(void *ctx, const char *rcpt, smtpd_verify_done done, void *arg)
{
	struct verify *v = ctx;
	char *key = xstrdup(rcpt);
	const struct vc_entry *e;
	struct probe *p;
	struct waiter *w;
	struct timeval tv = { (time_t)cfg_int(v->cfg, P_ADDRESS_VERIFY_TIMEOUT),
		0 };

	str_lower(key);
	if ((e = vcache_get(v->cache, key, now_s())) != NULL) {
		if (e->ok)
			done(0, NULL, arg);
		else {
			char *text = reply_bad(v, rcpt, e->reason);
			done(atoi(text), text, arg);
			free(text);
		}
		free(key);
		return;
	}
	if (cfg_nexthop(v->cfg, P_INTERNAL_RELAY_HOST)->host == NULL) {
		char *text = reply_temp(rcpt, "no internal_relay_host to ask");
		done(450, text, arg);
		free(text);
		free(key);
		return;
	}
	if ((p = htab_get(v->probes, key)) == NULL)
		p = probe_start(v, key);
	free(key);
	w = xcalloc(1, sizeof(*w));
	w->p = p;
	w->rcpt = xstrdup(rcpt);
	w->done = done;
	w->arg = arg;
	w->tmo = evtimer_new(v->base, waiter_timeout_cb, w);
	evtimer_add(w->tmo, &tv);
	w->next = p->waiters;
	p->waiters = w;
}

struct verify *
verify_new(struct event_base *base, struct config *cfg, struct dns *dns,
    const char **error_r)
{
	struct verify *v = xcalloc(1, sizeof(*v));
	char *path;

	v->base = base;
	v->cfg = config_ref(cfg);
	v->dns = dns;
	v->probes = htab_new();
	path = xasprintf("%s/verify.cache", cfg_str(cfg, P_DATA_DIRECTORY));
	v->cache = vcache_open(path, error_r);
	free(path);
	if (v->cache == NULL ||
	    (v->smtpc = smtpc_ctx_new(base, cfg, error_r)) == NULL) {
		verify_free(&v);
		return NULL;
	}
	return v;
}

void
verify_set_config(struct verify *v, struct config *cfg)
{
	config_unref(&v->cfg);
	v->cfg = config_ref(cfg);
	smtpc_ctx_set_config(v->smtpc, cfg);
}

static void
probe_free_cb(void *p)
{
	probe_free(p);
}

void
verify_free(struct verify **vp)
{
	struct verify *v = *vp;

	if (v == NULL)
		return;
	*vp = NULL;
	htab_free(&v->probes, probe_free_cb);
	smtpc_ctx_free(&v->smtpc);
	vcache_close(&v->cache);
	config_unref(&v->cfg);
	free(v);
}
