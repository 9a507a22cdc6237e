#include <errno.h>
#include <signal.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"
#include "common/config.h"
#include "common/control.h"
#include "common/log.h"
#include "common/util.h"
#include "ctl/ctl.h"
#include "daemon/daemon.h"
#include "store/masterkey.h"
#include "store/store.h"

static const struct ctl_command commands[] = {
	{ "config", ctl_config_main,
	    "config show [-d | -n] [NAME...]\n"
	    "       config set NAME=VALUE...\n"
	    "       config unset NAME...\n"
	    "       config check\n"
	    "       config doc" },
	{ "reload", ctl_reload_main, "reload" },
	{ "status", ctl_status_main, "status" },
	{ "queue", ctl_queue_main,
	    "queue list [--json] [--all]\n"
	    "       queue show ID... | --all\n"
	    "       queue hold ID... | --all\n"
	    "       queue release ID... | --all\n"
	    "       queue delete ID... | --all\n"
	    "       queue requeue ID... | --all\n"
	    "       queue flush [ID... | --all]" },
	{ "send-test", ctl_send_test_main,
	    "send-test --from ADDRESS --to ADDRESS [--subject TEXT]" },
	{ "log", ctl_log_main, "log [-f] [-n LINES] [PATTERN]" },
	{ "domain", ctl_domain_main,
	    "domain add | delete NAME\n"
	    "       domain list [--json]\n"
	    "       domain show NAME [--json]\n"
	    "       domain set NAME PROPERTY VALUE\n"
	    "       domain inherit NAME PROPERTY" },
	{ "user", ctl_user_main,
	    "user add | delete EMAIL\n"
	    "       user list [--json] [TEXT]\n"
	    "       user show EMAIL [--json]\n"
	    "       user set EMAIL PROPERTY VALUE\n"
	    "       user inherit EMAIL PROPERTY" },
	{ "global", ctl_global_main,
	    "global show [--json]\n"
	    "       global set PROPERTY VALUE\n"
	    "       global inherit PROPERTY" },
	{ "property", ctl_property_main,
	    "property list [--json]\n"
	    "       property doc" },
	{ "cert", ctl_cert_main,
	    "cert import FILE [--password-file F] [--bind EMAIL|DOMAIN] "
	    "[--json]\n"
	    "       cert list [--email X] [--expired] [--with-key] [--json]\n"
	    "       cert show FPR [--json]\n"
	    "       cert export FPR\n"
	    "       cert delete FPR\n"
	    "       cert bind | unbind FPR EMAIL|DOMAIN" },
	{ "root", ctl_root_main,
	    "root import FILE [--json]\n"
	    "       root list [--json]\n"
	    "       root delete FPR" },
	{ "crl", ctl_crl_main,
	    "crl import FILE [--json]\n"
	    "       crl list [--json]\n"
	    "       crl delete FPR" },
	{ "ctl", ctl_ctl_main,
	    "ctl set FPR whitelisted | blacklisted\n"
	    "       ctl unset FPR\n"
	    "       ctl list [--json]" },
	{ "admin", ctl_admin_main,
	    "admin add [-r] NAME       (password from stdin; -r: random)\n"
	    "       admin passwd [-r] NAME\n"
	    "       admin list\n"
	    "       admin delete NAME" },
};

void
ctl_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mailsealctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

struct config *
ctl_config(struct ctl *ctl)
{
	struct strlist errors = { 0 };

	if (ctl->cfg != NULL)
		return ctl->cfg;
	if (config_load(ctl->config_path, &ctl->cfg, &errors) == -1) {
		for (size_t i = 0; i < errors.n; i++)
			fprintf(stderr, "%s\n", errors.v[i]);
		exit(1);
	}
	return ctl->cfg;
}

struct store *
ctl_store(struct ctl *ctl)
{
	const char *why, *uri;

	if (ctl->store != NULL)
		return ctl->store;
	uri = cfg_str(ctl_config(ctl), P_STORE);
	/* Before the first start of the daemon: make the directory too. */
	if (strncmp(uri, "sqlite:/", 8) == 0) {
		char *dir = xstrdup(uri + 7);
		*strrchr(dir, '/') = '\0';
		if (*dir != '\0' && access(dir, F_OK) == -1 &&
		    mkdir_p(dir, 0750) == -1)
			ctl_die("cannot create %s: %s", dir, strerror(errno));
		free(dir);
	}
	if (store_open(uri, STORE_CREATE, &ctl->store, &why) == -1)
		ctl_die("%s%s", why,
		    geteuid() != 0 ? " (run mailsealctl as root)" : "");
	return ctl->store;
}

struct masterkey *
ctl_masterkey(struct ctl *ctl)
{
	char *path;
	const char *why;
	bool created;

	if (ctl->mk != NULL)
		return ctl->mk;
	path = masterkey_path(ctl_config(ctl));
	if (masterkey_setup(ctl_store(ctl), path, &ctl->mk, &created, &why) ==
	    -1)
		ctl_die("%s%s", why,
		    geteuid() != 0 ? " (run mailsealctl as root)" : "");
	if (created)
		fprintf(stderr,
		    "mailsealctl: made a new master key in %s: keep a backup "
		    "of it in a safe place\n",
		    path);
	free(path);
	return ctl->mk;
}

void
ctl_json_print(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);

	printf("%s\n", s);
	free(s);
	json_decref(j);
}

json_t *
ctl_call(struct ctl *ctl, json_t *req)
{
	char *path = daemon_control_path(ctl_config(ctl));
	json_t *reply;
	const char *why;

	if (control_call(path, req, &reply, 60000, &why) == -1)
		ctl_die("%s", why);
	free(path);
	json_decref(req);
	if (!json_is_true(json_object_get(reply, "ok")))
		ctl_die("%s",
		    json_string_value(json_object_get(reply, "error"))
			? json_string_value(json_object_get(reply, "error"))
			: "the daemon refused the request");
	return reply;
}

int
ctl_usage(const char *name)
{
	for (size_t i = 0; i < nitems(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			fprintf(stderr, "usage: mailsealctl [-c FILE] %s\n",
			    commands[i].usage);
	return 2;
}

static void
usage(void)
{
	fprintf(stderr, "usage: mailsealctl [-c config_file] COMMAND ...\n\n");
	for (size_t i = 0; i < nitems(commands); i++)
		fprintf(stderr, "       %s\n", commands[i].usage);
	exit(2);
}

int
ctl_reload_main(struct ctl *ctl, int argc, char **argv)
{
	struct strlist errors = { 0 };
	struct config *cfg;
	long pid;

	if (argc != 1)
		return ctl_usage("reload");
	/* An invalid file is refused here, and again by the daemon. */
	if (config_load(ctl->config_path, &cfg, &errors) == -1) {
		for (size_t i = 0; i < errors.n; i++)
			fprintf(stderr, "%s\n", errors.v[i]);
		fprintf(stderr,
		    "mailsealctl: reload refused: the running "
		    "configuration stays in force\n");
		return 1;
	}
	if ((pid = daemon_running_pid(cfg)) == -1)
		ctl_die("mailseald is not running");
	if (kill((pid_t)pid, SIGHUP) == -1)
		ctl_die("cannot signal mailseald (pid %ld): %s", pid,
		    strerror(errno));
	printf("mailseald (pid %ld): reloading %s\n", pid, ctl->config_path);
	config_unref(&cfg);
	return 0;
}

int
ctl_status_main(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply;
	long pid;

	if (argc != 1)
		return ctl_usage("status");
	if ((pid = daemon_running_pid(ctl_config(ctl))) == -1) {
		printf("mailseald is not running\n");
		return 1;
	}
	reply = ctl_call(ctl, json_pack("{s:s}", "cmd", "status"));
	printf("mailseald is running (pid %ld), version %s, %lld SMTP "
	       "session(s)\n",
	    pid, json_string_value(json_object_get(reply, "version")),
	    json_integer_value(json_object_get(reply, "sessions")));
	printf("spool commits: %lld messages in %lld group(s)\n",
	    json_integer_value(json_object_get(reply, "commit_messages")),
	    json_integer_value(json_object_get(reply, "commit_batches")));
	json_decref(reply);
	return 0;
}

int
main(int argc, char **argv)
{
	struct ctl ctl = { 0 };
	int ch, rc;

	log_init("mailsealctl");
	ctl.config_path = config_default_path();
	while ((ch = getopt(argc, argv, "+c:hV")) != -1) {
		switch (ch) {
		case 'c':
			ctl.config_path = optarg;
			break;
		case 'V':
			printf("mailsealctl %s\n", MAILSEAL_VERSION);
			return 0;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage();
	for (size_t i = 0; i < nitems(commands); i++) {
		if (strcmp(commands[i].name, argv[0]) == 0) {
			optind = 1;
			rc = commands[i].run(&ctl, argc, argv);
			masterkey_free(&ctl.mk);
			store_close(&ctl.store);
			config_unref(&ctl.cfg);
			return rc;
		}
	}
	fprintf(stderr, "mailsealctl: unknown command: %s\n", argv[0]);
	usage();
}
