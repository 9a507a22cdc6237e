/* Where the running daemon keeps its control socket and pid file. */
#ifndef MAILSEAL_PATHS_H
#define MAILSEAL_PATHS_H

struct config;

/* The control socket and pid file, under queue_directory. */
char *daemon_control_path(const struct config *);
char *daemon_pid_path(const struct config *);
/* The pid of the running daemon, or -1 when none holds the lock. */
long daemon_running_pid(const struct config *);

#endif
