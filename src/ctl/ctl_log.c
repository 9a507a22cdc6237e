#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/util.h"
#include "ctl/ctl.h"

/* Prints the complete lines of buf that contain pattern; returns used. */
static size_t
print_matching(const char *buf, size_t len, const char *pattern)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		char *line = xstrndup(buf + start, i - start);
		if (pattern == NULL || strstr(line, pattern) != NULL)
			printf("%s\n", line);
		free(line);
		start = i + 1;
	}
	fflush(stdout);
	return start;
}

int
ctl_log_main(struct ctl *ctl, int argc, char **argv)
{
	const char *path, *pattern = NULL;
	bool follow = false;
	long long last = 0;
	char *buf;
	size_t cap = 1 << 16, len = 0;
	off_t pos = 0;
	int ch, fd;

	while ((ch = getopt(argc, argv, "fn:")) != -1) {
		switch (ch) {
		case 'f':
			follow = true;
			break;
		case 'n':
			if (parse_ll(optarg, 1, 1000000000, &last) == -1)
				return ctl_usage("log");
			break;
		default:
			return ctl_usage("log");
		}
	}
	if (optind < argc)
		pattern = argv[optind++];
	if (optind != argc)
		return ctl_usage("log");
	path = cfg_str(ctl_config(ctl), P_MAILLOG_FILE);
	if (*path == '\0')
		ctl_die("maillog_file is not set");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		ctl_die("%s: %s", path, strerror(errno));
	if (last > 0) {
		/* Start far enough back for the last N lines (approximately). */
		off_t end = lseek(fd, 0, SEEK_END);
		off_t want = (off_t)last * 400;
		pos = end > want ? end - want : 0;
	}
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n = pread(fd, buf + len, cap - len, pos);
		if (n > 0) {
			pos += n;
			len += (size_t)n;
			size_t used = print_matching(buf, len, pattern);
			memmove(buf, buf + used, len - used);
			len -= used;
			if (len == cap) {
				cap *= 2;
				buf = xreallocarray(buf, cap, 1);
			}
			continue;
		}
		if (!follow)
			break;
		/* A rotated file: start over with the new one. */
		int nfd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat a, b;
		if (nfd != -1 && fstat(fd, &a) == 0 && fstat(nfd, &b) == 0 &&
		    a.st_ino != b.st_ino) {
			close(fd);
			fd = nfd;
			pos = 0;
			len = 0;
		} else if (nfd != -1)
			close(nfd);
		usleep(200000);
	}
	free(buf);
	close(fd);
	return 0;
}
