/*
 * mailseald: the parent binds the listeners as root, drops privileges to
 * mail_owner, and starts each role as a re-executed child ("-x ROLE").
 */
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "build_config.h"
#include "common/config.h"
#include "common/confwriter.h"
#include "common/log.h"
#include "common/util.h"
#include "admin/admin_store.h"
#include "daemon/daemon.h"
#include "daemon/privsep.h"
#include "engine/engine.h"
#include "queue/spool.h"
#include "smtp/tls.h"
#include "store/masterkey.h"
#include "store/store.h"

static int
role_one(const struct config *cfg)
{
	return 1;
}

/* The console runs when admin_listen names an address. */
static int
role_admin_count(const struct config *cfg)
{
	size_t n;

	cfg_listen(cfg, P_ADMIN_LISTEN, &n);
	return n > 0 ? 1 : 0;
}

const struct role daemon_roles[] = {
	/* The dispatcher holds no private keys: no master key. */
	{ "dispatcher", dispatcher_main, role_one, P_SMTPD_LISTEN, false,
	    false },
	/* The admin seals the private keys it imports, and changes the
	 * MTA settings through the configuration writer. */
	{ "admin", admin_main, role_admin_count, P_ADMIN_LISTEN, true, true },
	/* Engines unseal private keys: they get the master key. */
	{ "engine", engine_main, engine_count, -1, true, false },
};
const size_t daemon_nroles = nitems(daemon_roles);

struct child {
	const struct role *role;
	int instance;
	pid_t pid;
	uint64_t started_us;
	int backoff; /* seconds before the next restart */
	struct event *restart;
	struct parent *parent;
};

struct parent {
	struct event_base *base;
	const char *config_path;
	struct config *cfg;
	bool foreground;
	char self[4096];
	int *fds[16]; /* listeners per role */
	size_t nfds[16];
	struct child *children;
	size_t nchildren;
	bool stopping;
	int pid_fd;
	char *pid_path;
	struct masterkey *mk; /* for the roles that get it */
	int confwriter_fd; /* -1 when the daemon never had root */
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: mailseald [-fnv] [-c config_file]\n"
	    "  -c FILE  configuration file (default %s)\n"
	    "  -f       stay in the foreground, log to stderr too\n"
	    "  -n       check the configuration and exit\n"
	    "  -v       verbose logging\n"
	    "  -V       print the version and exit\n",
	    config_default_path());
	exit(2);
}

static int
bind_one(const struct hostport *hp, const char **error_r)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16];
	int fd = -1, on = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", hp->port);
	if ((rc = getaddrinfo(hp->host, port, &hints, &res)) != 0) {
		*error_r = gai_strerror(rc);
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (ai->ai_family == AF_INET6)
			setsockopt(
			    fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 4096) == 0)
			break;
		*error_r = strerror(errno);
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static void
bind_listeners(struct parent *p)
{
	for (size_t r = 0; r < daemon_nroles; r++) {
		const struct hostport *hp;
		size_t n;
		if (daemon_roles[r].listen_param < 0 ||
		    daemon_roles[r].count(p->cfg) == 0)
			continue;
		hp = cfg_listen(p->cfg, daemon_roles[r].listen_param, &n);
		p->fds[r] = xcalloc(n, sizeof(int));
		for (size_t i = 0; i < n; i++) {
			const char *why = "unknown error";
			int fd = bind_one(&hp[i], &why);
			if (fd == -1) {
				/* A host without IPv6 still serves IPv4. */
				if (strchr(hp[i].host, ':') != NULL && n > 1) {
					msg_warn("cannot listen on [%s]:%d: %s",
					    hp[i].host, hp[i].port, why);
					continue;
				}
				msg_fatal("cannot listen on %s:%d: %s",
				    hp[i].host, hp[i].port, why);
			}
			p->fds[r][p->nfds[r]++] = fd;
		}
		if (p->nfds[r] == 0)
			msg_fatal("%s: no address to listen on",
			    daemon_roles[r].name);
	}
}

static void
prepare_dirs(struct parent *p, uid_t uid, gid_t gid)
{
	const char *qd = cfg_str(p->cfg, P_QUEUE_DIRECTORY);
	const char *dd = cfg_str(p->cfg, P_DATA_DIRECTORY);
	const char *why;
	struct spool *sp;
	char *path;

	if (mkdir_p(qd, 0700) == -1)
		msg_fatal("cannot create queue_directory %s: %m", qd);
	if (spool_open(qd, true, 0, &sp, &why) == -1)
		msg_fatal("%s: %s: %m", qd, why);
	spool_close(&sp);
	privsep_chown(qd, uid, gid);
	for (size_t i = 0; i < SPOOL__NDIRS; i++) {
		path = xasprintf("%s/%s", qd, spool_dir_names[i]);
		privsep_chown(path, uid, gid);
		free(path);
	}
	path = xasprintf("%s/private", qd);
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		msg_fatal("cannot create %s: %m", path);
	privsep_chown(path, uid, gid);
	free(path);
	path = xasprintf("%s/pid", qd);
	if (mkdir(path, 0755) == -1 && errno != EEXIST)
		msg_fatal("cannot create %s: %m", path);
	free(path);
	if (mkdir_p(dd, 0750) == -1)
		msg_fatal("cannot create data_directory %s: %m", dd);
	privsep_chown(dd, uid, gid);
}

static void
chown_store_file(const char *path, const char *suffix, uid_t uid, gid_t gid)
{
	char *f = xasprintf("%s%s", path, suffix);

	if (access(f, F_OK) == 0 && privsep_chown(f, uid, gid) == -1)
		msg_fatal("cannot chown %s: %m", f);
	free(f);
}

/*
 * The store is made (and migrated) here, as root, then handed to
 * mail_owner, whose children open it; the master key stays root's.
 */
static void
prepare_store(struct parent *p, uid_t uid, gid_t gid)
{
	const char *uri = cfg_str(p->cfg, P_STORE), *why;
	char *kpath = masterkey_path(p->cfg), *dir;
	struct store *st;
	bool created;

	if (strncmp(uri, "sqlite:", 7) == 0) {
		dir = xstrdup(uri + 7);
		*strrchr(dir, '/') = '\0';
		if (*dir != '\0' && access(dir, F_OK) == -1) {
			if (mkdir_p(dir, 0750) == -1)
				msg_fatal("cannot create %s: %m", dir);
			privsep_chown(dir, uid, gid);
		}
		free(dir);
	}
	if (store_open(uri, STORE_CREATE, &st, &why) == -1)
		msg_fatal("%s", why);
	if (masterkey_setup(st, kpath, &p->mk, &created, &why) == -1)
		msg_fatal("%s", why);
	if (created)
		msg_info("made a new master key in %s: keep a backup of it "
			 "in a safe place",
		    kpath);
	if (role_admin_count(p->cfg) > 0 && admin_first_setup(st, &why) == -1)
		msg_fatal("cannot make the first admin: %s", why);
	if (store_path(st) != NULL) {
		chown_store_file(store_path(st), "", uid, gid);
		chown_store_file(store_path(st), "-wal", uid, gid);
		chown_store_file(store_path(st), "-shm", uid, gid);
	}
	store_close(&st);
	free(kpath);
}

static void
prepare_tls(struct parent *p, uid_t uid, gid_t gid)
{
	const char *dd = cfg_str(p->cfg, P_DATA_DIRECTORY), *why;
	char *cert, *key;

	if (strcmp(cfg_str(p->cfg, P_SMTPD_TLS_SECURITY_LEVEL), "none") == 0 ||
	    *cfg_str(p->cfg, P_SMTPD_TLS_CERT_FILE) != '\0')
		return;
	cert = xasprintf("%s/smtpd-cert.pem", dd);
	key = xasprintf("%s/smtpd-key.pem", dd);
	if (access(cert, F_OK) != 0)
		msg_info("making a self-signed certificate for %s in %s",
		    cfg_myhostname(p->cfg), dd);
	if (tls_make_selfsigned(cert, key, cfg_myhostname(p->cfg), &why) == -1)
		msg_fatal("cannot make a TLS certificate: %s", why);
	privsep_chown(cert, uid, gid);
	privsep_chown(key, uid, gid);
	free(cert);
	free(key);
}

/* The console's certificate: self-signed at first start, as for SMTP. */
static void
prepare_admin_tls(struct parent *p, uid_t uid, gid_t gid)
{
	char *cert, *key;
	const char *why;

	if (role_admin_count(p->cfg) == 0 ||
	    *cfg_str(p->cfg, P_ADMIN_TLS_CERT_FILE) != '\0')
		return;
	admin_tls_paths(p->cfg, &cert, &key);
	if (access(cert, F_OK) != 0)
		msg_info("making a self-signed certificate for the admin "
			 "console in %s",
		    cert);
	if (tls_make_selfsigned(cert, key, cfg_myhostname(p->cfg), &why) == -1)
		msg_fatal(
		    "cannot make the admin console's certificate: %s", why);
	privsep_chown(cert, uid, gid);
	privsep_chown(key, uid, gid);
	free(cert);
	free(key);
}

static void
write_pid_file(struct parent *p, uid_t uid, gid_t gid)
{
	char buf[32];
	int fd;

	p->pid_path = daemon_pid_path(p->cfg);
	fd = open(p->pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1)
		msg_fatal("cannot open %s: %m", p->pid_path);
	if (flock(fd, LOCK_EX | LOCK_NB) == -1)
		msg_fatal(
		    "mailseald is already running (%s is locked)", p->pid_path);
	snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || write_full(fd, buf, strlen(buf)) == -1)
		msg_fatal("cannot write %s: %m", p->pid_path);
	privsep_chown(p->pid_path, uid, gid);
	p->pid_fd = fd;
}

static void child_start(struct parent *, struct child *);

static void
child_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;

	if (!c->parent->stopping)
		child_start(c->parent, c);
}

static void
child_start(struct parent *p, struct child *c)
{
	size_t r = (size_t)(c->role - daemon_roles);
	char inst[16], nfds[16], logfd[16], keyfd[16];
	const char *why;
	int kfd = -1;
	pid_t pid;

	if (c->role->master_key && masterkey_pass(p->mk, &kfd, &why) == -1) {
		msg_warn("%s: %s", c->role->name, why);
		return;
	}
	if ((pid = fork()) == -1) {
		msg_warn("fork: %m");
		if (kfd != -1)
			close(kfd);
		return;
	}
	if (pid > 0) {
		c->pid = pid;
		c->started_us = clock_mono_us();
		if (kfd != -1)
			close(kfd);
		return;
	}
	/* The child: listeners become fds 3.., then exec. */
	int *fds = p->fds[r];
	size_t n = p->nfds[r];
	int logf = log_get_fd();
	int *tmp = xcalloc(n + 1, sizeof(int));
	for (size_t i = 0; i < n; i++)
		if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64)) == -1)
			_exit(1);
	if (logf != -1 && (logf = fcntl(logf, F_DUPFD_CLOEXEC, 64)) == -1)
		_exit(1);
	if (kfd != -1 && (kfd = fcntl(kfd, F_DUPFD_CLOEXEC, 64)) == -1)
		_exit(1);
	int cwfd = -1;
	if (c->role->confwriter && p->confwriter_fd != -1 &&
	    (cwfd = fcntl(p->confwriter_fd, F_DUPFD_CLOEXEC, 64)) == -1)
		_exit(1);
	for (size_t i = 0; i < n; i++) {
		if (dup2(tmp[i], (int)(3 + i)) == -1)
			_exit(1);
	}
	if (logf != -1) {
		if (dup2(logf, (int)(3 + n)) == -1)
			_exit(1);
		logf = (int)(3 + n);
	}
	if (kfd != -1) {
		int to = (int)(3 + n + (logf != -1));
		if (dup2(kfd, to) == -1)
			_exit(1);
		snprintf(keyfd, sizeof(keyfd), "%d", to);
		setenv(MASTERKEY_ENV, keyfd, 1);
	}
	if (cwfd != -1) {
		char cwbuf[16];
		int to = (int)(3 + n + (logf != -1) + (kfd != -1));
		if (dup2(cwfd, to) == -1)
			_exit(1);
		snprintf(cwbuf, sizeof(cwbuf), "%d", to);
		setenv(CONFWRITER_ENV, cwbuf, 1);
	}
	snprintf(inst, sizeof(inst), "%d", c->instance);
	snprintf(nfds, sizeof(nfds), "%zu", n);
	snprintf(logfd, sizeof(logfd), "%d", logf);
	setenv("MAILSEAL_LISTEN_FDS", nfds, 1);
	setenv("MAILSEAL_LOG_FD", logfd, 1);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	execl(p->self, "mailseald", "-x", c->role->name, "-i", inst, "-c",
	    p->config_path, p->foreground ? "-f" : (char *)NULL, (char *)NULL);
	_exit(127);
}

static void
sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct parent *p = arg;
	int status;
	pid_t pid;
	size_t alive = 0;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < p->nchildren; i++) {
			struct child *c = &p->children[i];
			if (c->pid != pid)
				continue;
			c->pid = 0;
			if (p->stopping)
				break;
			if (WIFSIGNALED(status))
				msg_warn("process %s pid %ld killed by signal "
					 "%d",
				    c->role->name, (long)pid, WTERMSIG(status));
			else
				msg_warn("process %s pid %ld exit status %d",
				    c->role->name, (long)pid,
				    WEXITSTATUS(status));
			/* A child that dies at once is restarted slower. */
			if (clock_mono_us() - c->started_us < 10000000)
				c->backoff = c->backoff == 0 ? 1
				    : c->backoff >= 60	     ? 60
							     : c->backoff * 2;
			else
				c->backoff = 0;
			struct timeval tv = { c->backoff, 0 };
			evtimer_add(c->restart, &tv);
		}
	}
	if (p->stopping) {
		for (size_t i = 0; i < p->nchildren; i++)
			if (p->children[i].pid != 0)
				alive++;
		if (alive == 0)
			event_base_loopexit(p->base, NULL);
	}
}

static void
sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct parent *p = arg;
	struct strlist errors = { 0 };
	struct config *ncfg;

	if (config_load(p->config_path, &ncfg, &errors) == -1) {
		for (size_t i = 0; i < errors.n; i++)
			msg_warn("reload refused: %s", errors.v[i]);
		msg_warn("reload refused: the running configuration stays in "
			 "force");
		strlist_free(&errors);
		return;
	}
	config_unref(&p->cfg);
	p->cfg = ncfg;
	msg_info("reload -- version %s, configuration %s", MAILSEAL_VERSION,
	    p->config_path);
	for (size_t i = 0; i < p->nchildren; i++)
		if (p->children[i].pid != 0)
			kill(p->children[i].pid, SIGHUP);
}

static void
stop_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct parent *p = arg;

	for (size_t i = 0; i < p->nchildren; i++)
		if (p->children[i].pid != 0) {
			msg_warn("process %s pid %ld did not stop: killing it",
			    p->children[i].role->name,
			    (long)p->children[i].pid);
			kill(p->children[i].pid, SIGKILL);
		}
}

static void
sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	struct parent *p = arg;
	struct timeval tv = { 15, 0 };
	size_t alive = 0;

	if (p->stopping)
		return;
	p->stopping = true;
	msg_info("terminating on signal %d", (int)sig);
	for (size_t i = 0; i < p->nchildren; i++) {
		evtimer_del(p->children[i].restart);
		if (p->children[i].pid != 0) {
			kill(p->children[i].pid, SIGTERM);
			alive++;
		}
	}
	if (alive == 0)
		event_base_loopexit(p->base, NULL);
	else
		event_base_once(p->base, -1, EV_TIMEOUT, stop_kill_cb, p, &tv);
}

static void
daemonize(void)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) == -1)
		msg_fatal("fork: %m");
	if (pid > 0)
		_exit(0);
	setsid();
	if ((pid = fork()) == -1)
		msg_fatal("fork: %m");
	if (pid > 0)
		_exit(0);
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > 2)
			close(fd);
	}
	log_set_stderr(false);
}

static int
parent_main(struct parent *p)
{
	struct event *ev[5];
	const char *why;
	uid_t uid = getuid();
	gid_t gid = getgid();
	const char *logfile = cfg_str(p->cfg, P_MAILLOG_FILE);
	ssize_t n;
	size_t k = 0;

	if ((n = readlink("/proc/self/exe", p->self, sizeof(p->self) - 1)) <= 0)
		msg_fatal("readlink /proc/self/exe: %m");
	p->self[n] = '\0';
	if (geteuid() == 0 &&
	    privsep_owner(
		cfg_str(p->cfg, P_MAIL_OWNER), true, &uid, &gid, &why) == -1)
		msg_fatal("%s", why);
	if (*logfile != '\0') {
		if (log_open_file(logfile) == -1)
			msg_fatal("cannot open maillog_file %s: %m", logfile);
		privsep_chown(logfile, uid, gid);
	}
	prepare_dirs(p, uid, gid);
	prepare_store(p, uid, gid);
	prepare_tls(p, uid, gid);
	prepare_admin_tls(p, uid, gid);
	bind_listeners(p);
	privsep_raise_nofile();
	if (!p->foreground)
		daemonize();
	write_pid_file(p, uid, gid);
	p->confwriter_fd = -1;
	if (geteuid() == 0 &&
	    confwriter_start(p->self, p->config_path, log_get_fd(),
		&p->confwriter_fd, &why) == -1)
		msg_fatal("cannot start the configuration writer: %s", why);
	if (privsep_drop(uid, gid, &why) == -1)
		msg_fatal("cannot drop privileges: %s", why);
	msg_info("daemon started -- version %s, configuration %s",
	    MAILSEAL_VERSION, p->config_path);

	p->base = event_base_new();
	for (size_t r = 0; r < daemon_nroles; r++) {
		int cnt = daemon_roles[r].count(p->cfg);
		for (int i = 0; i < cnt; i++) {
			p->children = xreallocarray(p->children,
			    p->nchildren + 1, sizeof(*p->children));
			struct child *c = &p->children[p->nchildren++];
			memset(c, 0, sizeof(*c));
			c->role = &daemon_roles[r];
			c->instance = i;
			c->parent = p;
		}
	}
	for (size_t i = 0; i < p->nchildren; i++)
		p->children[i].restart =
		    evtimer_new(p->base, child_restart_cb, &p->children[i]);
	ev[k++] = evsignal_new(p->base, SIGCHLD, sigchld_cb, p);
	ev[k++] = evsignal_new(p->base, SIGHUP, sighup_cb, p);
	ev[k++] = evsignal_new(p->base, SIGTERM, sigterm_cb, p);
	ev[k++] = evsignal_new(p->base, SIGINT, sigterm_cb, p);
	for (size_t i = 0; i < k; i++)
		event_add(ev[i], NULL);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < p->nchildren; i++)
		child_start(p, &p->children[i]);
	event_base_dispatch(p->base);

	unlink(p->pid_path);
	msg_info("daemon stopped");
	for (size_t i = 0; i < k; i++)
		event_free(ev[i]);
	for (size_t i = 0; i < p->nchildren; i++)
		event_free(p->children[i].restart);
	free(p->children);
	event_base_free(p->base);
	masterkey_free(&p->mk);
	for (size_t r = 0; r < daemon_nroles; r++) {
		for (size_t i = 0; i < p->nfds[r]; i++)
			close(p->fds[r][i]);
		free(p->fds[r]);
	}
	free(p->pid_path);
	close(p->pid_fd);
	config_unref(&p->cfg);
	return 0;
}

static int
child_main(const char *rolename, int instance, const char *config_path,
    bool foreground)
{
	const struct role *role = NULL;
	struct role_env env;
	struct strlist errors = { 0 };
	const char *s;
	char tag[64];
	int rc;

	for (size_t i = 0; i < daemon_nroles; i++)
		if (strcmp(daemon_roles[i].name, rolename) == 0)
			role = &daemon_roles[i];
	if (role == NULL)
		msg_fatal("unknown role: %s", rolename);
	snprintf(tag, sizeof(tag), "mailseal/%s", rolename);
	log_init(tag);
	log_set_stderr(foreground);
	if ((s = getenv("MAILSEAL_LOG_FD")) != NULL && atoi(s) > 2)
		log_set_fd(atoi(s));
	memset(&env, 0, sizeof(env));
	env.config_path = config_path;
	env.instance = instance;
	env.foreground = foreground;
	if (config_load(config_path, &env.cfg, &errors) == -1) {
		for (size_t i = 0; i < errors.n; i++)
			msg_warn("%s", errors.v[i]);
		msg_fatal("%s: invalid configuration", rolename);
	}
	if ((s = getenv("MAILSEAL_LISTEN_FDS")) != NULL) {
		env.nlisten = (size_t)atoi(s);
		env.listen_fds = xcalloc(env.nlisten + 1, sizeof(int));
		for (size_t i = 0; i < env.nlisten; i++) {
			env.listen_fds[i] = (int)(3 + i);
			fd_set_cloexec(env.listen_fds[i], true);
		}
	}
	unsetenv("MAILSEAL_LISTEN_FDS");
	unsetenv("MAILSEAL_LOG_FD");
	signal(SIGPIPE, SIG_IGN);
	rc = role->main(&env);
	config_unref(&env.cfg);
	free(env.listen_fds);
	return rc;
}

int
main(int argc, char **argv)
{
	struct parent p;
	struct strlist errors = { 0 };
	const char *config_path = config_default_path(), *role = NULL;
	bool check = false, foreground = false;
	int ch, instance = 0;

	memset(&p, 0, sizeof(p));
	log_init("mailseal/master");
	while ((ch = getopt(argc, argv, "c:fi:nvVx:")) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'i':
			instance = atoi(optarg);
			break;
		case 'n':
			check = true;
			break;
		case 'v':
			log_set_verbose(1);
			break;
		case 'V':
			printf("mailseald %s\n", MAILSEAL_VERSION);
			return 0;
		case 'x':
			role = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	/* The one process that keeps root: see common/confwriter.h. */
	if (role != NULL && strcmp(role, "confwriter") == 0) {
		log_init("mailseal/confwriter");
		log_set_stderr(foreground);
		confwriter_main(config_path);
	}
	if (role != NULL)
		return child_main(role, instance, config_path, foreground);

	if (config_load(config_path, &p.cfg, &errors) == -1) {
		for (size_t i = 0; i < errors.n; i++)
			fprintf(stderr, "%s\n", errors.v[i]);
		strlist_free(&errors);
		if (!check)
			fprintf(stderr,
			    "mailseald: refusing to start with an "
			    "invalid configuration\n");
		return 1;
	}
	if (check) {
		printf("configuration OK\n");
		config_unref(&p.cfg);
		return 0;
	}
	p.config_path = config_path;
	p.foreground = foreground;
	return parent_main(&p);
}
