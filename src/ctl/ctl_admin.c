/*
 * mailsealctl admin: the admin console's users, in the store. Run as root
 * on the gateway, it writes the store directly (as the other store
 * commands do); the console's own Admin page does the same over HTTPS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "admin/password.h"
#include "common/util.h"
#include "ctl/ctl.h"
#include "store/store.h"

/* One line of standard input, without echo on a terminal. */
static char *
read_secret(const char *prompt)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO);
	char buf[1100];
	size_t len;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	if (fgets(buf, sizeof(buf), stdin) == NULL)
		buf[0] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	char *s = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return s;
}

/*
 * The new password: -r makes a random one (printed once), otherwise it is
 * read from standard input (asked twice on a terminal).
 */
static char *
new_password(bool random, bool *printed_r)
{
	char *pw, *again;
	const char *why;

	*printed_r = false;
	if (random) {
		pw = xmalloc(21);
		password_random(pw, 21);
		*printed_r = true;
		return pw;
	}
	pw = read_secret("New password: ");
	if (isatty(STDIN_FILENO)) {
		again = read_secret("Again: ");
		if (strcmp(pw, again) != 0)
			ctl_die("the passwords differ");
		xfree_secret(again, strlen(again));
	}
	if (password_check_new(pw, &why) == -1)
		ctl_die("the password %s", why);
	return pw;
}

static int
admin_set(struct ctl *ctl, int argc, char **argv, bool add)
{
	struct store_admin *old = NULL;
	bool random = false, printed;
	char *pw, *hash;
	const char *why;

	if (argc == 3 && strcmp(argv[1], "-r") == 0) {
		random = true;
		argv++;
		argc--;
	}
	if (argc != 2)
		return ctl_usage("admin");
	if (store_admin_get(ctl_store(ctl), argv[1], &old, &why) == -1)
		ctl_die("%s", why);
	if (add && old != NULL)
		ctl_die("admin %s exists (use admin passwd)", argv[1]);
	if (!add && old == NULL)
		ctl_die("no such admin: %s", argv[1]);
	if (old != NULL)
		store_admin_free(old, 1);
	pw = new_password(random, &printed);
	if (password_hash(pw, &hash, &why) == -1)
		ctl_die("%s", why);
	if ((add ? store_admin_add(ctl_store(ctl), argv[1], hash, &why)
		 : store_admin_set_password(
		       ctl_store(ctl), argv[1], hash, &why)) == -1)
		ctl_die("%s", why);
	free(hash);
	if (printed)
		printf("%s password: %s\n", argv[1], pw);
	else
		printf("%s admin %s\n", add ? "added" : "new password for",
		    argv[1]);
	xfree_secret(pw, strlen(pw));
	return 0;
}

static int
admin_list(struct ctl *ctl, int argc, char **argv)
{
	struct store_admin *v = NULL;
	size_t n = 0;
	const char *why;
	char when[32];

	if (argc != 1)
		return ctl_usage("admin");
	if (store_admin_list(ctl_store(ctl), &v, &n, &why) == -1)
		ctl_die("%s", why);
	for (size_t i = 0; i < n; i++) {
		time_t t = (time_t)v[i].created;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
		printf("%-32s created %s\n", v[i].name, when);
	}
	store_admin_free(v, n);
	return 0;
}

static int
admin_delete(struct ctl *ctl, int argc, char **argv)
{
	const char *why;

	if (argc != 2)
		return ctl_usage("admin");
	if (store_admin_delete(ctl_store(ctl), argv[1], &why) == -1)
		ctl_die("%s", why);
	printf(
	    "deleted admin %s (sessions end at the next request)\n", argv[1]);
	return 0;
}

int
ctl_admin_main(struct ctl *ctl, int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage("admin");
	argc--;
	argv++;
	if (strcmp(argv[0], "add") == 0)
		return admin_set(ctl, argc, argv, true);
	if (strcmp(argv[0], "passwd") == 0)
		return admin_set(ctl, argc, argv, false);
	if (strcmp(argv[0], "list") == 0)
		return admin_list(ctl, argc, argv);
	if (strcmp(argv[0], "delete") == 0)
		return admin_delete(ctl, argc, argv);
	return ctl_usage("admin");
}
