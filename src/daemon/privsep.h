/* Users, privileges and resource limits. */
#ifndef MAILSEAL_PRIVSEP_H
#define MAILSEAL_PRIVSEP_H

#include <stdbool.h>
#include <sys/types.h>

/* Looks up (and as root creates, as a system user) the mail owner. */
int privsep_owner(const char *user, bool create, uid_t *uid_r, gid_t *gid_r,
    const char **error_r);
/* Drops to uid/gid for good; a no-op when not root. */
int privsep_drop(uid_t, gid_t, const char **error_r);
/* Raises the open file limit as far as allowed. */
void privsep_raise_nofile(void);
/* chown when root; -1 on error. */
int privsep_chown(const char *path, uid_t, gid_t);

#endif
