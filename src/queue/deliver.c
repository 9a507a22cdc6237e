/*
 * Delivery: recipients are routed to a destination (internal_relay_host
 * for relay_domains, else external_relay_host, else the MX hosts of the
 * recipient's domain); each message becomes one job per destination (up
 * to smtp_destination_recipient_limit recipients). A destination has at
 * most smtp_destination_concurrency_limit connections and reuses them
 * for the next job. When a destination cannot be reached, the jobs that
 * wait for it are deferred together ("delivery temporarily suspended").
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "dns/dns.h"
#include "queue/htab.h"
#include "queue/qmgr_int.h"
#include "smtp/sasl_client.h"
#include "smtp/smtp_client.h"

struct dest {
	char *key, *host, *name;
	int port;
	bool mx;
	struct dest_jobs jobs;
	unsigned nconn;
	unsigned nready; /* connections that got through the handshake */
	struct conn_list idle;
	uint64_t dead_until;
	struct smtpc_status dead; /* why the destination is unreachable */
};

struct job {
	TAILQ_ENTRY(job) link;
	struct qmsg *m;
	struct dest *d;
	size_t *idx;
	size_t n;
	uint64_t start_us; /* it left the destination queue */
	uint64_t conn_us; /* its connection was ready */
};

struct conn {
	TAILQ_ENTRY(conn) all_link;
	TAILQ_ENTRY(conn) idle_link;
	struct qmgr *qm;
	struct dest *d;
	struct smtpc *c;
	struct dns_req *dnsq;
	struct job *job;
	struct event *idle_ev;
	uint64_t born_us;
	bool idle;
	bool ready;
	struct smtpc_txn txn;
	const char **rcpts;
	struct smtpc_status *rs;
};

struct route {
	char host[DNS_NAME_MAX];
	int port;
	bool mx;
	char key[DNS_NAME_MAX + 16];
	char name[DNS_NAME_MAX + 16];
	const char *err; /* no route */
};

static void dest_run(struct qmgr *, struct dest *);

/* Routing. */

static void
route_set(struct route *rt, const char *host, int port, bool mx)
{
	strlcpy_ms(rt->host, host, sizeof(rt->host));
	str_lower(rt->host);
	rt->port = port;
	rt->mx = mx;
	snprintf(
	    rt->key, sizeof(rt->key), mx ? "%s:%d" : "[%s]:%d", rt->host, port);
	/* The next hop as Postfix names it: "example.com", "[10.0.0.5]". */
	if (port == 25)
		snprintf(
		    rt->name, sizeof(rt->name), mx ? "%s" : "[%s]", rt->host);
	else
		strlcpy_ms(rt->name, rt->key, sizeof(rt->name));
}

static void
route_rcpt(struct qmgr *qm, const char *addr, struct route *rt)
{
	const char *at = strrchr(addr, '@');
	const char *domain = at != NULL ? at + 1 : "";
	int port = (int)cfg_int(qm->cfg, P_SMTP_TCP_PORT);
	const struct nexthop *nh;

	memset(rt, 0, sizeof(*rt));
	/* "postmaster" without a domain is ours too (RFC 5321 4.5.1). */
	if (*domain == '\0' || relay_domain_match(qm->cfg, domain)) {
		nh = cfg_nexthop(qm->cfg, P_INTERNAL_RELAY_HOST);
		if (nh->host == NULL) {
			rt->err = "no internal_relay_host is set for mail to "
				  "the relay_domains";
			return;
		}
		route_set(rt, nh->host, nh->port, nh->mx);
		return;
	}
	nh = cfg_nexthop(qm->cfg, P_EXTERNAL_RELAY_HOST);
	if (nh->host != NULL) {
		route_set(rt, nh->host, nh->port, nh->mx);
		return;
	}
	if (*domain == '[') {
		/* An address literal (RFC 5321 4.1.3): no MX lookup. */
		char lit[DNS_NAME_MAX];
		strlcpy_ms(lit, domain + 1, sizeof(lit));
		lit[strcspn(lit, "]")] = '\0';
		route_set(rt, str_has_prefix_ci(lit, "IPv6:") ? lit + 5 : lit,
		    port, false);
		return;
	}
	route_set(rt, domain, port, true);
}

/* Destinations. */

static struct dest *
dest_get(struct qmgr *qm, const struct route *rt)
{
	struct dest *d = htab_get(qm->dests, rt->key);

	if (d != NULL)
		return d;
	d = xcalloc(1, sizeof(*d));
	d->key = xstrdup(rt->key);
	d->host = xstrdup(rt->host);
	d->name = xstrdup(rt->name);
	d->port = rt->port;
	d->mx = rt->mx;
	TAILQ_INIT(&d->jobs);
	TAILQ_INIT(&d->idle);
	htab_put(qm->dests, d->key, d);
	return d;
}

static void
dest_free(void *p)
{
	struct dest *d = p;

	smtpc_status_clear(&d->dead);
	free(d->key);
	free(d->host);
	free(d->name);
	free(d);
}

/* A destination with nothing to do and nothing to remember goes. */
static void
dest_maybe_free(struct qmgr *qm, struct dest *d)
{
	if (!TAILQ_EMPTY(&d->jobs) || d->nconn > 0 ||
	    d->dead_until > clock_wall_us())
		return;
	htab_del(qm->dests, d->key);
	dest_free(d);
}

/* Logging and recording a result. */

/* Postfix's format of delays: two significant digits, "0" below 10 ms. */
static const char *
fmt_delay(double v, char *buf, size_t size)
{
	if (v < 0.01)
		snprintf(buf, size, "0");
	else if (v >= 10)
		snprintf(buf, size, "%.0f", v);
	else
		snprintf(buf, size, "%.2g", v);
	return buf;
}

struct timing {
	uint64_t arrival, active, start, conn, now;
};

static void
record(struct qmgr *qm, struct qmsg *m, size_t idx,
    const struct smtpc_status *st, const char *relay, const char *remote,
    const struct timing *t)
{
	struct spool_rcpt *r = &m->env->rcpt[idx];
	struct rres *rr = &m->rr[idx];
	const char *dsn = st->dsn[0] != '\0' ? st->dsn : "4.0.0";
	const char *text = st->text != NULL ? st->text : "unknown error";
	const char *status;
	char a[16], b[16], c[16], d[16], all[16];
	int rc;

	if (dsn[0] == '2') {
		rr->outcome = RR_SENT;
		status = "sent";
	} else if (dsn[0] == '5' || m->expired) {
		/* An expired message has had its last try. */
		rr->outcome = RR_BOUNCE;
		status = "bounced";
		m->returned = m->returned || dsn[0] != '5';
	} else {
		rr->outcome = RR_DEFER;
		status = "deferred";
	}
	msg_info("%s: to=<%s>, relay=%s, delay=%s, delays=%s/%s/%s/%s, "
		 "dsn=%s, status=%s (%s)",
	    m->qid, r->addr, relay,
	    fmt_delay((double)(t->now - t->arrival) / 1e6, all, sizeof(all)),
	    fmt_delay((double)(t->active - t->arrival) / 1e6, a, sizeof(a)),
	    fmt_delay((double)(t->start - t->active) / 1e6, b, sizeof(b)),
	    fmt_delay((double)(t->conn - t->start) / 1e6, c, sizeof(c)),
	    fmt_delay((double)(t->now - t->conn) / 1e6, d, sizeof(d)), dsn,
	    status, text);
	if (rr->outcome == RR_SENT)
		rc = spool_mark_rcpt(
		    m->fd, m->env, idx, RCPT_SENT, dsn, text, false);
	else
		rc = spool_mark_defer(m->fd, m->env, idx, dsn, text);
	if (rc == -1)
		msg_warn("%s: cannot update the queue file: %m", m->qid);
	free(rr->remote_mta);
	free(rr->diag);
	rr->remote_mta =
	    remote != NULL && st->code != 0 ? xstrdup(remote) : NULL;
	rr->diag = st->diag != NULL ? xstrdup(st->diag) : NULL;
}

static void
job_timing(const struct qmsg *m, const struct job *j, struct timing *t)
{
	t->now = clock_wall_us();
	t->arrival = m->env->arrival_us;
	t->active = m->active_us;
	t->start = j != NULL && j->start_us != 0 ? j->start_us : t->now;
	t->conn = j != NULL && j->conn_us != 0 ? j->conn_us : t->now;
	if (t->active < t->arrival)
		t->active = t->arrival;
}

/* Jobs. */

static void
job_finish(struct qmgr *qm, struct job *j)
{
	struct qmsg *m = j->m;

	free(j->idx);
	free(j);
	if (--m->jobs == 0)
		qmgr_message_done(qm, m);
}

static void
job_fail(struct qmgr *qm, struct job *j, const struct smtpc_status *st)
{
	struct timing t;

	job_timing(j->m, j, &t);
	for (size_t i = 0; i < j->n; i++)
		record(qm, j->m, j->idx[i], st, "none", NULL, &t);
	job_finish(qm, j);
}

/* Connections. */

static void conn_idle_cb(evutil_socket_t, short, void *);

static void
conn_free(struct qmgr *qm, struct conn *c)
{
	struct dest *d = c->d;

	if (c->idle)
		TAILQ_REMOVE(&d->idle, c, idle_link);
	else
		qm->nbusy--;
	d->nconn--;
	if (c->ready)
		d->nready--;
	TAILQ_REMOVE(&qm->conns, c, all_link);
	dns_cancel(&c->dnsq);
	smtpc_quit(&c->c);
	event_free(c->idle_ev);
	free(c->rcpts);
	free(c->rs);
	free(c);
}

static void conn_done_cb(struct smtpc *, struct smtpc_txn *, void *);

static void
conn_start(struct qmgr *qm, struct conn *c, struct job *j)
{
	struct qmsg *m = j->m;

	c->job = j;
	c->rcpts = xcalloc(j->n, sizeof(*c->rcpts));
	c->rs = xcalloc(j->n, sizeof(*c->rs));
	for (size_t i = 0; i < j->n; i++)
		c->rcpts[i] = m->env->rcpt[j->idx[i]].addr;
	memset(&c->txn, 0, sizeof(c->txn));
	c->txn.sender = m->env->sender;
	c->txn.rcpts = c->rcpts;
	c->txn.nrcpt = j->n;
	c->txn.fd = m->fd;
	c->txn.env = m->env;
	c->txn.body_8bit = (m->env->flags & SPOOL_F_8BIT) != 0;
	c->txn.rs = c->rs;
	smtpc_send(c->c, &c->txn, conn_done_cb, c);
}

/* The connection is free again: the next job, the cache, or QUIT. */
static void
conn_next(struct qmgr *qm, struct conn *c)
{
	struct dest *d = c->d;
	uint64_t now = clock_wall_us();
	long long cache = cfg_int(qm->cfg, P_SMTP_CONNECTION_CACHE_TIME_LIMIT);
	long long reuse = cfg_int(qm->cfg, P_SMTP_CONNECTION_REUSE_TIME_LIMIT);

	if (!smtpc_usable(c->c) || qm->stopping ||
	    now - c->born_us > (uint64_t)reuse * 1000000) {
		conn_free(qm, c);
		dest_run(qm, d);
		dest_maybe_free(qm, d);
		return;
	}
	c->idle = true;
	TAILQ_INSERT_HEAD(&d->idle, c, idle_link);
	qm->nbusy--;
	dest_run(qm, d);
	if (!c->idle)
		return;
	if (cache == 0) {
		conn_free(qm, c);
		dest_maybe_free(qm, d);
		return;
	}
	struct timeval tv = { (time_t)cache, 0 };
	evtimer_add(c->idle_ev, &tv);
}

static void
conn_done_cb(struct smtpc *s, struct smtpc_txn *txn, void *arg)
{
	struct conn *c = arg;
	struct qmgr *qm = c->qm;
	struct job *j = c->job;
	struct timing t;

	c->job = NULL;
	job_timing(j->m, j, &t);
	for (size_t i = 0; i < j->n; i++) {
		record(qm, j->m, j->idx[i], &c->rs[i], smtpc_peer(s),
		    smtpc_host(s), &t);
		smtpc_status_clear(&c->rs[i]);
	}
	free(c->rcpts);
	free(c->rs);
	c->rcpts = NULL;
	c->rs = NULL;
	job_finish(qm, j);
	conn_next(qm, c);
}

/*
 * A connection failed. If no other connection to the destination works,
 * the destination cannot be reached: this job fails, and so do the jobs
 * waiting for it, until minimal_backoff_time has passed or a flush. If
 * others work, only this job fails (a server that is busy for a moment).
 */
static void
dest_failed(struct qmgr *qm, struct conn *c, const struct smtpc_status *st)
{
	struct dest *d = c->d;
	struct job *j = c->job;
	long long min = cfg_int(qm->cfg, P_MINIMAL_BACKOFF_TIME);

	c->job = NULL;
	if (d->nready > 0) {
		conn_free(qm, c);
		job_fail(qm, j, st);
		dest_run(qm, d);
		return;
	}
	d->dead_until = clock_wall_us() + (uint64_t)min * 1000000;
	if (st->dsn[0] == '5')
		smtpc_status_set(
		    &d->dead, st->code, st->dsn, st->diag, "%s", st->text);
	else
		smtpc_status_set(&d->dead, st->code, st->dsn, st->diag,
		    "delivery temporarily suspended: %s", st->text);
	conn_free(qm, c);
	job_fail(qm, j, st);
	dest_run(qm, d);
	dest_maybe_free(qm, d);
}

static void
conn_ready_cb(
    struct smtpc *s, bool ok, const struct smtpc_status *fail, void *arg)
{
	struct conn *c = arg;

	if (!ok) {
		dest_failed(c->qm, c, fail);
		return;
	}
	c->ready = true;
	c->d->nready++;
	c->job->conn_us = clock_wall_us();
	conn_start(c->qm, c, c->job);
}

static enum smtpc_tls_level
tls_level(const struct config *cfg)
{
	const char *l = cfg_str(cfg, P_SMTP_TLS_SECURITY_LEVEL);

	if (strcmp(l, "encrypt") == 0)
		return SMTPC_TLS_ENCRYPT;
	return strcmp(l, "none") == 0 ? SMTPC_TLS_NONE : SMTPC_TLS_MAY;
}

static void
conn_dns_cb(const struct dns_answer *ans, void *arg)
{
	struct conn *c = arg;
	struct qmgr *qm = c->qm;
	struct dest *d = c->d;
	struct smtpc_opts o;

	c->dnsq = NULL;
	if (ans->status != DNS_OK) {
		struct smtpc_status st = { 0 };
		smtpc_status_set(&st, 0, ans->dsn, NULL, "%s", ans->why);
		dest_failed(qm, c, &st);
		smtpc_status_clear(&st);
		return;
	}
	memset(&o, 0, sizeof(o));
	o.tls = tls_level(qm->cfg);
	o.sasl = sasl_map_lookup(qm->sasl, d->host, d->port, d->mx);
	o.nexthop = d->name;
	c->c = smtpc_connect(qm->smtpc, &o, ans->t, ans->n, conn_ready_cb, c);
}

static void
conn_open(struct qmgr *qm, struct dest *d, struct job *j)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	long long lim = cfg_int(qm->cfg, P_SMTP_MX_ADDRESS_LIMIT);

	c->qm = qm;
	c->d = d;
	c->job = j;
	c->born_us = clock_wall_us();
	c->idle_ev = evtimer_new(qm->base, conn_idle_cb, c);
	d->nconn++;
	qm->nbusy++;
	TAILQ_INSERT_TAIL(&qm->conns, c, all_link);
	c->dnsq = dns_resolve_nexthop(
	    qm->dns, d->host, d->port, d->mx, (size_t)lim, conn_dns_cb, c);
}

static void
conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct dest *d = c->d;

	conn_free(c->qm, c);
	dest_maybe_free(c->qm, d);
}

/* Starts what can start at a destination. */
static void
dest_run(struct qmgr *qm, struct dest *d)
{
	long long limit =
	    cfg_int(qm->cfg, P_SMTP_DESTINATION_CONCURRENCY_LIMIT);
	uint64_t now = clock_wall_us();
	struct job *j;
	struct conn *c;

	while ((j = TAILQ_FIRST(&d->jobs)) != NULL) {
		if (d->dead_until > now) {
			TAILQ_REMOVE(&d->jobs, j, link);
			job_fail(qm, j, &d->dead);
			continue;
		}
		if (j->m->want_delete || j->m->want_hold ||
		    j->m->want_requeue) {
			/* Not delivered now; the recipients stay pending. */
			TAILQ_REMOVE(&d->jobs, j, link);
			job_finish(qm, j);
			continue;
		}
		if ((c = TAILQ_FIRST(&d->idle)) != NULL) {
			TAILQ_REMOVE(&d->idle, c, idle_link);
			c->idle = false;
			qm->nbusy++;
			evtimer_del(c->idle_ev);
			if (!smtpc_usable(c->c)) {
				conn_free(qm, c);
				continue;
			}
			TAILQ_REMOVE(&d->jobs, j, link);
			/* A connection ready at once: no set-up delay. */
			j->start_us = j->conn_us = now;
			conn_start(qm, c, j);
			continue;
		}
		if (qm->stopping || d->nconn >= (unsigned)limit)
			break;
		TAILQ_REMOVE(&d->jobs, j, link);
		j->start_us = now;
		conn_open(qm, d, j);
	}
}

/* Messages. */

struct mjob {
	char key[DNS_NAME_MAX + 16];
	struct job *job;
};

void
deliver_message(struct qmgr *qm, struct qmsg *m)
{
	size_t limit =
	    (size_t)cfg_int(qm->cfg, P_SMTP_DESTINATION_RECIPIENT_LIMIT);
	struct spool_env *env = m->env;
	struct mjob *mj = xcalloc(env->nrcpt, sizeof(*mj));
	struct dest **touched = xcalloc(env->nrcpt, sizeof(*touched));
	size_t nmj = 0, ntouched = 0;
	struct route rt;

	/* Held while jobs are made: a job that ends at once finishes none. */
	m->jobs++;
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct job *j = NULL;
		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		route_rcpt(qm, env->rcpt[i].addr, &rt);
		if (rt.err != NULL) {
			struct smtpc_status st = { 0 };
			struct timing t;
			smtpc_status_set(&st, 0, "4.3.5", NULL, "%s", rt.err);
			job_timing(m, NULL, &t);
			record(qm, m, i, &st, "none", NULL, &t);
			smtpc_status_clear(&st);
			continue;
		}
		for (size_t k = 0; k < nmj && j == NULL; k++)
			if (strcmp(mj[k].key, rt.key) == 0 &&
			    mj[k].job->n < limit)
				j = mj[k].job;
		if (j == NULL) {
			struct dest *d = dest_get(qm, &rt);
			j = xcalloc(1, sizeof(*j));
			j->m = m;
			j->d = d;
			j->idx =
			    xcalloc(limit < env->nrcpt ? limit : env->nrcpt,
				sizeof(*j->idx));
			strlcpy_ms(mj[nmj].key, rt.key, sizeof(mj[nmj].key));
			mj[nmj++].job = j;
			bool seen = false;
			for (size_t k = 0; k < ntouched; k++)
				seen = seen || touched[k] == d;
			if (!seen)
				touched[ntouched++] = d;
		}
		j->idx[j->n++] = i;
	}
	/* One transaction per destination: the jobs queue, then run. */
	for (size_t k = 0; k < nmj; k++) {
		m->jobs++;
		TAILQ_INSERT_TAIL(&mj[k].job->d->jobs, mj[k].job, link);
	}
	for (size_t k = 0; k < ntouched; k++)
		dest_run(qm, touched[k]);
	free(mj);
	free(touched);
	if (--m->jobs == 0)
		qmgr_message_done(qm, m);
}

/* Flush, shutdown, free. */

static void
dest_revive(const char *key, void *value, void *arg)
{
	struct dest *d = value;

	d->dead_until = 0;
	smtpc_status_clear(&d->dead);
}

void
deliver_flush(struct qmgr *qm)
{
	htab_walk(qm->dests, dest_revive, qm);
}

void
deliver_init(struct qmgr *qm)
{
	qm->dests = htab_new();
	TAILQ_INIT(&qm->conns);
}

void
deliver_shutdown(struct qmgr *qm)
{
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&qm->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, all_link);
		if (c->idle)
			conn_free(qm, c);
	}
}

static void
dest_drop_jobs(const char *key, void *value, void *arg)
{
	struct dest *d = value;
	struct job *j;

	while ((j = TAILQ_FIRST(&d->jobs)) != NULL) {
		TAILQ_REMOVE(&d->jobs, j, link);
		free(j->idx);
		free(j);
	}
}

void
deliver_free(struct qmgr *qm)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&qm->conns)) != NULL) {
		if (c->job != NULL) {
			free(c->job->idx);
			free(c->job);
			c->job = NULL;
		}
		conn_free(qm, c);
	}
	htab_walk(qm->dests, dest_drop_jobs, NULL);
	htab_free(&qm->dests, dest_free);
}
