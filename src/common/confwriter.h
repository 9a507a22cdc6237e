/*
 * The configuration writer: the one process that keeps root after the
 * parent drops its privileges, so that mailseal.conf can stay owned by
 * root while the admin console (which runs as mail_owner) changes the
 * settings of the seed guide's MTA page. It does nothing else: it takes
 * small requests over a SOCK_SEQPACKET socketpair, refuses any parameter
 * that is not on the console's allow-list (config_console_settable()),
 * checks the value and the whole resulting file, and rewrites the file
 * atomically. A parameter that names files, users or listeners can only
 * be changed by root (mailsealctl), never through the console: otherwise
 * a compromised mail_owner could steer what the root parent opens at
 * the next start.
 */
#ifndef MAILSEAL_CONFWRITER_H
#define MAILSEAL_CONFWRITER_H

#include <stddef.h>

#include "common/config.h"

#define CONFWRITER_ENV "MAILSEAL_CONFWRITER_FD"

/*
 * Starts the writer (as root): self re-executed as "mailseald -x
 * confwriter". Returns the descriptor of its socket.
 */
int confwriter_start(const char *self, const char *config_path, int log_fd,
    int *fd_r, const char **error_r);
/* The writer's main loop; never returns. */
void confwriter_main(const char *config_path) __attribute__((noreturn));

/*
 * Applies changes to the configuration file: through the writer when fd
 * is not -1, else directly (a daemon that never had root). Errors are
 * those of config_file_change().
 */
int confwriter_change(int fd, const char *config_path,
    const struct config_change *, size_t n, struct strlist *errors);

/* The request handler, for the fuzz harness and the writer itself. */
char *confwriter_handle(const char *config_path, const char *req, size_t len);

#endif
