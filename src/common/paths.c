#include <sys/file.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/config.h"
#include "common/paths.h"
#include "common/util.h"

char *
daemon_control_path(const struct config *cfg)
{
	return xasprintf("%s/private/control", cfg_str(cfg, P_QUEUE_DIRECTORY));
}

char *
daemon_pid_path(const struct config *cfg)
{
	return xasprintf("%s/pid/master.pid", cfg_str(cfg, P_QUEUE_DIRECTORY));
}

long
daemon_running_pid(const struct config *cfg)
{
	char *path = daemon_pid_path(cfg), buf[32];
	long pid = -1;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd == -1)
		return -1;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		/* Nobody holds the lock: no daemon runs. */
		close(fd);
		return -1;
	}
	if ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		pid = strtol(buf, NULL, 10);
	}
	close(fd);
	return pid > 0 ? pid : -1;
}
