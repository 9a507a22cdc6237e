/*
 * The admin role's process: the HTTPS server in libmicrohttpd's threads,
 * and this thread waiting for signals (SIGHUP reloads the configuration,
 * SIGTERM stops).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "admin/admin.h"
#include "common/confwriter.h"
#include "admin/admin_store.h"
#include "admin/http.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/daemon.h"

/* The certificate and key files of the console (see prepare_tls). */
void
admin_tls_paths(const struct config *cfg, char **cert_r, char **key_r)
{
	const char *cert = cfg_str(cfg, P_ADMIN_TLS_CERT_FILE);
	const char *key = cfg_str(cfg, P_ADMIN_TLS_KEY_FILE);

	if (*cert == '\0') {
		*cert_r = xasprintf(
		    "%s/admin-cert.pem", cfg_str(cfg, P_DATA_DIRECTORY));
		*key_r = xasprintf(
		    "%s/admin-key.pem", cfg_str(cfg, P_DATA_DIRECTORY));
		return;
	}
	*cert_r = xstrdup(cert);
	*key_r = xstrdup(*key != '\0' ? key : cert);
}

static void
admin_reload(struct admin *a)
{
	struct strlist errors = { 0 };
	struct config *ncfg;

	if (config_load(a->config_path, &ncfg, &errors) == -1) {
		for (size_t i = 0; i < errors.n; i++)
			msg_warn("reload refused: %s", errors.v[i]);
		strlist_free(&errors);
		return;
	}
	pthread_mutex_lock(&a->lock);
	config_unref(&a->cfg);
	a->cfg = ncfg;
	a->cfg_generation++;
	pthread_cond_broadcast(&a->reloaded);
	pthread_mutex_unlock(&a->lock);
	msg_info("configuration reloaded");
}

static struct http_server *
admin_serve(struct admin *a, struct role_env *env)
{
	struct http_server *hs;
	char *cert_path, *key_path, *cert = NULL, *key = NULL;
	size_t keylen = 0;
	const char *why;

	admin_tls_paths(a->cfg, &cert_path, &key_path);
	if (file_read_all(cert_path, &cert, NULL) == -1)
		msg_fatal("cannot read admin_tls_cert_file %s: %m", cert_path);
	if (file_read_all(key_path, &key, &keylen) == -1)
		msg_fatal("cannot read admin_tls_key_file %s: %m", key_path);
	for (size_t i = 0; i < env->nlisten; i++)
		fd_set_nonblock(env->listen_fds[i]);
	hs = http_start(a, env->listen_fds, env->nlisten, cert, key, &why);
	/* libmicrohttpd has its own copy now (GnuTLS credentials). */
	xfree_secret(key, keylen);
	free(cert);
	if (hs == NULL)
		msg_fatal("%s: %s", cert_path, why);
	free(cert_path);
	free(key_path);
	return hs;
}

int
admin_main(struct role_env *env)
{
	struct admin a;
	struct http_server *hs;
	sigset_t set;
	const char *why;
	int sig;

	memset(&a, 0, sizeof(a));
	pthread_mutex_init(&a.lock, NULL);
	pthread_cond_init(&a.reloaded, NULL);
	a.config_path = env->config_path;
	a.cfg = config_ref(env->cfg);
	/* The root configuration writer, when the daemon started as root. */
	a.confwriter_fd = -1;
	if ((why = getenv(CONFWRITER_ENV)) != NULL) {
		a.confwriter_fd = atoi(why);
		fd_set_cloexec(a.confwriter_fd, true);
		unsetenv(CONFWRITER_ENV);
	}
	a.rl = xcalloc(1, sizeof(*a.rl));
	if (admin_store_open(&a, &why) == -1)
		msg_fatal("%s", why);

	/* Signals come to this thread only: the server threads inherit. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	hs = admin_serve(&a, env);
	msg_info("admin console ready");
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP)
			admin_reload(&a);
		else
			break;
	}
	http_stop(&hs);
	sessions_clear(&a.sessions);
	ratelimit_clear(a.rl);
	free(a.rl);
	admin_store_close(&a);
	config_unref(&a.cfg);
	pthread_cond_destroy(&a.reloaded);
	pthread_mutex_destroy(&a.lock);
	msg_info("admin console stopped");
	return 0;
}
