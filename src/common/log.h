/*
 * Logging in the manner of Postfix: one line per event, syslog-style
 * prefix, the queue ID first in the text. Three error tiers: msg_warn()
 * for a problem of one session or message, msg_fatal() for the
 * environment (exit 1), msg_panic() for a broken invariant (abort).
 */
#ifndef MAILSEAL_LOG_H
#define MAILSEAL_LOG_H

#include <stdarg.h>
#include <stdbool.h>

/* Sets the program tag ("mailseal/dispatcher"); logs to stderr until set. */
void log_init(const char *tag);
/* Adds a file descriptor that receives every line (O_APPEND file). */
void log_set_fd(int fd);
/* Whether lines also go to stderr. */
void log_set_stderr(bool);
/* Opens (creating, mode 0640) the log file for appending; -1 on error. */
int log_open_file(const char *path);
int log_get_fd(void);
void log_set_verbose(int);
extern int msg_verbose;

void msg_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void msg_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void msg_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void msg_fatal(const char *, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void msg_panic(const char *, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void msg_vlog(const char *, const char *, va_list)
    __attribute__((format(printf, 2, 0)));

#endif
