#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/privsep.h"

int
privsep_owner(const char *user, bool create, uid_t *uid_r, gid_t *gid_r,
    const char **error_r)
{
	struct passwd *pw;

	if ((pw = getpwnam(user)) == NULL && create && geteuid() == 0) {
		pid_t pid;
		int status;

		msg_info("creating system user %s", user);
		if ((pid = fork()) == 0) {
			execlp("useradd", "useradd", "--system",
			    "--no-create-home", "--home-dir", "/nonexistent",
			    "--shell", "/usr/sbin/nologin", "--user-group",
			    user, (char *)NULL);
			_exit(127);
		}
		if (pid == -1 || waitpid(pid, &status, 0) == -1 ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			*error_r = "cannot create the mail_owner user (useradd "
				   "failed)";
			return -1;
		}
		pw = getpwnam(user);
	}
	if (pw == NULL) {
		*error_r = "no such user: mail_owner";
		return -1;
	}
	if (pw->pw_uid == 0) {
		*error_r = "mail_owner must not be root";
		return -1;
	}
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return 0;
}

int
privsep_drop(uid_t uid, gid_t gid, const char **error_r)
{
	if (geteuid() != 0)
		return 0;
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		*error_r = strerror(errno);
		return -1;
	}
	if (setuid(0) != -1) {
		*error_r = "privileges could be regained";
		return -1;
	}
	return 0;
}

void
privsep_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (geteuid() == 0 && rl.rlim_max < 65536)
		rl.rlim_max = 65536;
	rl.rlim_cur = rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

int
privsep_chown(const char *path, uid_t uid, gid_t gid)
{
	if (geteuid() != 0)
		return 0;
	return chown(path, uid, gid);
}
