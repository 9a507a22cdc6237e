#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

int msg_verbose;

static char log_tag[64] = "mailseal";
static char log_host[256];
static int log_fd = -1;
static bool log_stderr = true;
/* getpid() once per process, not once per line; forks reset it. */
static pid_t log_pid;
static pthread_once_t log_atfork_once = PTHREAD_ONCE_INIT;

static void
log_pid_reset(void)
{
	log_pid = 0;
}

static void
log_atfork_init(void)
{
	pthread_atfork(NULL, NULL, log_pid_reset);
}

void
log_init(const char *tag)
{
	char *dot;

	pthread_once(&log_atfork_once, log_atfork_init);
	strlcpy_ms(log_tag, tag, sizeof(log_tag));
	if (gethostname(log_host, sizeof(log_host) - 1) == -1)
		strlcpy_ms(log_host, "localhost", sizeof(log_host));
	if ((dot = strchr(log_host, '.')) != NULL)
		*dot = '\0';
}

void
log_set_fd(int fd)
{
	log_fd = fd;
}

int
log_get_fd(void)
{
	return log_fd;
}

void
log_set_stderr(bool on)
{
	log_stderr = on;
}

void
log_set_verbose(int v)
{
	msg_verbose = v;
}

int
log_open_file(const char *path)
{
	int fd;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1)
		return -1;
	log_fd = fd;
	return 0;
}

/*
 * One write(2) per line, so that lines of several processes appending
 * to one O_APPEND file do not interleave.
 */
void
msg_vlog(const char *level, const char *fmt, va_list ap)
{
	char line[4096], stamp[32];
	struct timeval tv;
	struct tm tm;
	int saved = errno, n, m;

	if (log_host[0] == '\0')
		log_init(log_tag);
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s%s", stamp, log_host,
	    log_tag, (long)(log_pid != 0 ? log_pid : (log_pid = getpid())),
	    level, level[0] ? ": " : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	errno = saved;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	/* A log line never carries a line break from its arguments. */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	if (log_fd != -1)
		(void)!write(log_fd, line, (size_t)n);
	if (log_stderr || log_fd == -1)
		(void)!write(STDERR_FILENO, line, (size_t)n);
	errno = saved;
}

void
msg_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vlog("", fmt, ap);
	va_end(ap);
}

void
msg_debug(const char *fmt, ...)
{
	va_list ap;

	if (!msg_verbose)
		return;
	va_start(ap, fmt);
	msg_vlog("debug", fmt, ap);
	va_end(ap);
}

void
msg_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vlog("warning", fmt, ap);
	va_end(ap);
}

void
msg_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vlog("fatal", fmt, ap);
	va_end(ap);
	exit(1);
}

void
msg_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vlog("panic", fmt, ap);
	va_end(ap);
	abort();
}
