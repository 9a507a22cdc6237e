/* Memory and string helpers that abort on allocation failure. */
#ifndef MAILSEAL_UTIL_H
#define MAILSEAL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
char *xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *, va_list) __attribute__((format(printf, 1, 0)));
/* Frees and clears a secret of the given length. */
void xfree_secret(void *, size_t);

size_t strlcpy_ms(char *, const char *, size_t);
void str_lower(char *);
char *str_trim(char *);
bool str_has_prefix_ci(const char *, const char *);
bool str_has_suffix_ci(const char *, const char *);

/* Parses a decimal integer in [min, max]; 0 on success, -1 otherwise. */
int parse_ll(const char *, long long, long long, long long *);

/* Monotonic and wall clocks in microseconds. */
uint64_t clock_mono_us(void);
uint64_t clock_wall_us(void);

int fd_set_nonblock(int);
int fd_set_cloexec(int, bool);
/* write(2) that retries on EINTR and short writes. */
int write_full(int, const void *, size_t);
/* fsync(2) of a directory given by path. */
int fsync_dir(const char *);
/* Reads a whole file into a NUL-terminated buffer. */
int file_read_all(const char *, char **, size_t *);
/* mkdir -p with a mode for the last component. */
int mkdir_p(const char *, int);

#endif
