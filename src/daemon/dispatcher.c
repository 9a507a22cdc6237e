#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "build_config.h"
#include "common/config.h"
#include "common/control.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "daemon/dispatcher.h"
#include "dns/dns.h"
#include "engine/engine.h"
#include "queue/commit.h"
#include "queue/filter.h"
#include "queue/qmgr.h"
#include "queue/spool.h"
#include "queue/verify.h"
#include "smtp/smtp_server.h"
#include "smtp/tls.h"

/* The server TLS context of a configuration, or NULL without TLS. */
static SSL_CTX *
dispatcher_tls(const struct config *cfg)
{
	const char *cert = cfg_str(cfg, P_SMTPD_TLS_CERT_FILE);
	const char *key = cfg_str(cfg, P_SMTPD_TLS_KEY_FILE);
	char *c = NULL, *k = NULL;
	const char *why;
	SSL_CTX *ctx;

	if (strcmp(cfg_str(cfg, P_SMTPD_TLS_SECURITY_LEVEL), "none") == 0)
		return NULL;
	if (*cert == '\0') {
		c = xasprintf(
		    "%s/smtpd-cert.pem", cfg_str(cfg, P_DATA_DIRECTORY));
		k = xasprintf(
		    "%s/smtpd-key.pem", cfg_str(cfg, P_DATA_DIRECTORY));
		cert = c;
		key = k;
	} else if (*key == '\0')
		key = cert;
	ctx = tls_server_ctx(cert, key, &why);
	if (ctx == NULL)
		msg_warn("TLS is off: cannot load %s: %s", cert, why);
	free(c);
	free(k);
	return ctx;
}

static void
dispatcher_reload(struct dispatcher *d)
{
	struct strlist errors = { 0 };
	struct config *ncfg;
	const char *why;
	SSL_CTX *tls;

	if (config_load(d->config_path, &ncfg, &errors) == -1) {
		for (size_t i = 0; i < errors.n; i++)
			msg_warn("reload refused: %s", errors.v[i]);
		strlist_free(&errors);
		return;
	}
	if (dns_set_config(d->dns, ncfg, &why) == -1)
		msg_warn(
		    "reload: DNS: %s: the old DNS servers stay in use", why);
	tls = dispatcher_tls(ncfg);
	smtpd_set_config(d->smtpd, ncfg, tls);
	qmgr_set_config(d->qmgr, ncfg);
	verify_set_config(d->verify, ncfg);
	if (d->tls != NULL)
		SSL_CTX_free(d->tls);
	d->tls = tls;
	config_unref(&d->cfg);
	d->cfg = ncfg;
	msg_info("configuration reloaded");
}

static void
sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	dispatcher_reload(arg);
}

static void
stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dispatcher *d = arg;

	/* Sessions and deliveries in progress end first. */
	if (smtpd_session_count(d->smtpd) == 0 && qmgr_idle(d->qmgr))
		event_base_loopexit(d->base, NULL);
}

static void
sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	struct dispatcher *d = arg;
	struct timeval tick = { 0, 100000 }, grace = { 10, 0 };

	if (d->stopping)
		return;
	d->stopping = true;
	smtpd_shutdown(d->smtpd);
	qmgr_shutdown(d->qmgr);
	d->stop_check = event_new(d->base, -1, EV_PERSIST, stop_check_cb, d);
	event_add(d->stop_check, &tick);
	event_base_loopexit(d->base, &grace);
}

static void
ctl_status(struct control_req *r, json_t *req, void *ctx)
{
	struct dispatcher *d = ctx;
	struct commit_stats cs;

	committer_stats(d->committer, &cs);
	control_reply_ok(r,
	    json_pack("{s:s,s:i,s:i,s:I,s:I}", "version", MAILSEAL_VERSION,
		"pid", (int)getpid(), "sessions",
		(int)smtpd_session_count(d->smtpd), "commit_messages",
		(json_int_t)cs.messages, "commit_batches",
		(json_int_t)cs.batches));
}

/* The hooks of the SMTP server: accepted mail goes to the queue manager. */
static void
queued_hook(void *ctx, const char *qid)
{
	struct dispatcher *d = ctx;

	qmgr_enqueue(d->qmgr, qid, SPOOL_RECEIVED);
}

static void
verify_hook(void *ctx, const char *rcpt, smtpd_verify_done done, void *arg)
{
	struct dispatcher *d = ctx;

	verify_rcpt(d->verify, rcpt, done, arg);
}

int
dispatcher_main(struct role_env *env)
{
	struct dispatcher d;
	struct event *ev_hup, *ev_term, *ev_int;
	struct smtpd_hooks hooks;
	const char *why;
	char *cpath;
	int n;

	/*
	 * Message bodies pass through 64 KB to 256 KB buffers, allocated and
	 * freed all the time: glibc would map each (past its threshold) or
	 * give the top of the heap back, and every reuse then faults its
	 * pages in again (6% of this process at 100 KB messages). Freed
	 * memory is kept instead, up to 16 MB.
	 */
	(void)mallopt(M_MMAP_THRESHOLD, 4 << 20);
	(void)mallopt(M_TRIM_THRESHOLD, 16 << 20);
	memset(&d, 0, sizeof(d));
	d.config_path = env->config_path;
	d.cfg = config_ref(env->cfg);
	d.base = event_base_new();
	if (spool_open(cfg_str(d.cfg, P_QUEUE_DIRECTORY), false, 0, &d.spool,
		&why) == -1)
		msg_fatal("%s: %s: %m (is every parent directory searchable "
			  "by the mail_owner?)",
		    cfg_str(d.cfg, P_QUEUE_DIRECTORY), why);
	if ((n = spool_clean_incoming(d.spool)) > 0)
		msg_info("removed %d incomplete message file%s from incoming",
		    n, n == 1 ? "" : "s");
	if ((n = spool_check_all(d.spool)) > 0)
		msg_warn(
		    "%d queue file%s moved to corrupt", n, n == 1 ? "" : "s");
	d.committer = committer_new(d.base, d.spool);
	d.tls = dispatcher_tls(d.cfg);
	if ((d.dns = dns_new(d.base, d.cfg, &why)) == NULL)
		msg_fatal("DNS: %s", why);
	/* Messages pass the engines (src/engine) before delivery. */
	d.qmgr = qmgr_new(
	    d.base, d.cfg, d.spool, d.committer, d.dns, &filter_engine, &why);
	if (d.qmgr == NULL)
		msg_fatal("queue manager: %s", why);
	if ((d.verify = verify_new(d.base, d.cfg, d.dns, &why)) == NULL)
		msg_fatal("address verification: %s", why);
	d.smtpd = smtpd_new(d.base, d.cfg, d.spool, d.committer, d.tls);
	hooks.ctx = &d;
	hooks.verify = verify_hook;
	hooks.queued = queued_hook;
	smtpd_set_hooks(d.smtpd, &hooks);
	for (size_t i = 0; i < env->nlisten; i++)
		if (smtpd_listen_fd(d.smtpd, env->listen_fds[i]) == -1)
			msg_fatal("cannot listen on fd %d", env->listen_fds[i]);
	cpath = daemon_control_path(d.cfg);
	if ((d.control = control_new(d.base, cpath, &why)) == NULL)
		msg_fatal("control socket %s: %s", cpath, why);
	free(cpath);
	control_register(d.control, "status", ctl_status, &d);
	qmgr_control_register(d.qmgr, d.control);

	ev_hup = evsignal_new(d.base, SIGHUP, sighup_cb, &d);
	ev_term = evsignal_new(d.base, SIGTERM, sigterm_cb, &d);
	ev_int = evsignal_new(d.base, SIGINT, sigterm_cb, &d);
	event_add(ev_hup, NULL);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	qmgr_start(d.qmgr);
	msg_info("dispatcher ready");
	event_base_dispatch(d.base);

	/*
	 * Commits still in flight answer their sessions (and reach the
	 * queue manager) before those go.
	 */
	committer_free(&d.committer);
	smtpd_free(&d.smtpd);
	verify_free(&d.verify);
	qmgr_free(&d.qmgr);
	dns_free(&d.dns);
	if (d.stop_check != NULL)
		event_free(d.stop_check);
	control_free(&d.control);
	event_free(ev_hup);
	event_free(ev_term);
	event_free(ev_int);
	if (d.tls != NULL)
		SSL_CTX_free(d.tls);
	spool_close(&d.spool);
	config_unref(&d.cfg);
	event_base_free(d.base);
	return 0;
}
