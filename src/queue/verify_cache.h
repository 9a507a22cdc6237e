/*
 * The address verification cache: what the internal relay host said of
 * each recipient, kept in data_directory/verify.cache so that it
 * survives restarts. The file is an append log of lines
 *
 *   CRC32 STATUS EXPIRES UPDATED ADDRESS<TAB>REASON
 *
 * (CRC32 in hex over the rest of the line, STATUS "ok" or "bad", times
 * in seconds since 1970). A line with a bad checksum or no line end (a
 * crash while appending) is ignored; the last line for an address wins.
 * The log is rewritten without stale lines (tmp file, fsync, rename) at
 * start and when it has grown to more than twice its live lines.
 */
#ifndef MAILSEAL_VERIFY_CACHE_H
#define MAILSEAL_VERIFY_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vcache;

struct vc_entry {
	bool ok;
	uint64_t expires; /* seconds */
	uint64_t updated;
	char *reason;
};

/* Opens (creating) and loads the file; NULL with a reason. */
struct vcache *vcache_open(const char *path, const char **error_r);
void vcache_close(struct vcache **);
/* The live entry of an address (lowercase), or NULL. */
const struct vc_entry *vcache_get(
    struct vcache *, const char *addr, uint64_t now);
/* Records a result (appended to the file at once). */
void vcache_put(struct vcache *, const char *addr, bool ok, uint64_t expires,
    const char *reason, uint64_t now);
size_t vcache_count(const struct vcache *);

/* Parsing, for the tests and the fuzz harness. */

struct vc_record {
	bool ok;
	uint64_t expires, updated;
	char addr[512];
	char reason[1024];
};

/* One line without its line end; 0, or -1 if it is not valid. */
int vcache_parse_line(const char *line, size_t len, struct vc_record *);
/* Formats a record as a line with its line end; returns the length. */
size_t vcache_format_line(const struct vc_record *, char *buf, size_t size);
/*
 * Loads a whole file's text into an (unopened) cache; returns the number
 * of valid lines. A cache made with vcache_new_memory() has no file.
 */
struct vcache *vcache_new_memory(void);
size_t vcache_load_text(
    struct vcache *, const char *text, size_t len, uint64_t now);

#endif
