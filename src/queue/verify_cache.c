#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/htab.h"
#include "queue/verify_cache.h"

/* The log is rewritten once it has this many more lines than entries. */
#define VCACHE_SLACK 1000

struct vcache {
	char *path;
	int fd; /* -1 for a cache in memory */
	struct htab *t;
	size_t lines; /* in the file */
};

static void
entry_free(void *p)
{
	struct vc_entry *e = p;

	free(e->reason);
	free(e);
}

struct vcache *
vcache_new_memory(void)
{
	struct vcache *vc = xcalloc(1, sizeof(*vc));

	vc->fd = -1;
	vc->t = htab_new();
	return vc;
}

/* Fields are separated by one space; the address ends at a tab. */
static const char *
parse_u64(const char *p, const char *end, uint64_t *v)
{
	uint64_t n = 0;
	const char *start = p;

	while (p < end && isdigit((unsigned char)*p) && p - start < 20)
		n = n * 10 + (uint64_t)(*p++ - '0');
	if (p == start || p >= end || *p != ' ')
		return NULL;
	*v = n;
	return p + 1;
}

int
vcache_parse_line(const char *line, size_t len, struct vc_record *rec)
{
	const char *end = line + len, *p, *tab;
	uint32_t crc = 0;
	size_t al, rl;

	if (len < 10 || line[8] != ' ')
		return -1;
	for (int i = 0; i < 8; i++) {
		int c = tolower((unsigned char)line[i]);
		if (!isxdigit(c))
			return -1;
		crc =
		    crc << 4 | (uint32_t)(isdigit(c) ? c - '0' : c - 'a' + 10);
	}
	if (crc != crc32_update(0, line + 9, len - 9))
		return -1;
	p = line + 9;
	if (end - p > 3 && memcmp(p, "ok ", 3) == 0) {
		rec->ok = true;
		p += 3;
	} else if (end - p > 4 && memcmp(p, "bad ", 4) == 0) {
		rec->ok = false;
		p += 4;
	} else
		return -1;
	if ((p = parse_u64(p, end, &rec->expires)) == NULL ||
	    (p = parse_u64(p, end, &rec->updated)) == NULL)
		return -1;
	if ((tab = memchr(p, '\t', (size_t)(end - p))) == NULL)
		return -1;
	al = (size_t)(tab - p);
	rl = (size_t)(end - tab - 1);
	if (al == 0 || al >= sizeof(rec->addr) || rl >= sizeof(rec->reason))
		return -1;
	memcpy(rec->addr, p, al);
	rec->addr[al] = '\0';
	memcpy(rec->reason, tab + 1, rl);
	rec->reason[rl] = '\0';
	/* No NUL bytes or line ends inside; no tab in the address. */
	if (strlen(rec->addr) != al || strlen(rec->reason) != rl ||
	    strpbrk(rec->addr, " \r\n") != NULL ||
	    strpbrk(rec->reason, "\r\n\t") != NULL)
		return -1;
	return 0;
}

size_t
vcache_format_line(const struct vc_record *rec, char *buf, size_t size)
{
	int n;

	n = snprintf(buf, size, "00000000 %s %" PRIu64 " %" PRIu64 " %s\t%s\n",
	    rec->ok ? "ok" : "bad", rec->expires, rec->updated, rec->addr,
	    rec->reason);
	if (n < 0 || (size_t)n >= size)
		return 0;
	char crc[9];
	snprintf(
	    crc, sizeof(crc), "%08x", crc32_update(0, buf + 9, (size_t)n - 10));
	memcpy(buf, crc, 8);
	return (size_t)n;
}

static void
cache_set(struct vcache *vc, const struct vc_record *rec)
{
	struct vc_entry *e = htab_get(vc->t, rec->addr);

	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		htab_put(vc->t, rec->addr, e);
	}
	e->ok = rec->ok;
	e->expires = rec->expires;
	e->updated = rec->updated;
	free(e->reason);
	e->reason = xstrdup(rec->reason);
}

size_t
vcache_load_text(struct vcache *vc, const char *text, size_t len, uint64_t now)
{
	size_t off = 0, good = 0;
	struct vc_record rec;

	while (off < len) {
		const char *lf = memchr(text + off, '\n', len - off);
		/* A last line without its end is a torn append. */
		if (lf == NULL)
			break;
		size_t l = (size_t)(lf - (text + off));
		if (vcache_parse_line(text + off, l, &rec) == 0) {
			good++;
			struct vc_entry *old;
			if (rec.expires > now)
				cache_set(vc, &rec);
			else if ((old = htab_del(vc->t, rec.addr)) != NULL)
				entry_free(old);
		}
		off += l + 1;
	}
	return good;
}

struct rewrite {
	int fd;
	int error;
	size_t n;
};

static void
rewrite_one(const char *addr, void *value, void *arg)
{
	struct rewrite *rw = arg;
	struct vc_entry *e = value;
	struct vc_record rec;
	char line[2048];
	size_t n;

	memset(&rec, 0, sizeof(rec));
	rec.ok = e->ok;
	rec.expires = e->expires;
	rec.updated = e->updated;
	strlcpy_ms(rec.addr, addr, sizeof(rec.addr));
	strlcpy_ms(rec.reason, e->reason, sizeof(rec.reason));
	n = vcache_format_line(&rec, line, sizeof(line));
	if (n > 0 && rw->error == 0 && write_full(rw->fd, line, n) == -1)
		rw->error = errno;
	rw->n++;
}

/* Writes the live entries to a new file that replaces the log. */
static int
vcache_compact(struct vcache *vc)
{
	char *tmp = xasprintf("%s.tmp", vc->path), *dir, *slash;
	struct rewrite rw = { -1, 0, 0 };
	int fd;

	rw.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (rw.fd == -1) {
		msg_warn("cannot create %s: %m", tmp);
		free(tmp);
		return -1;
	}
	htab_walk(vc->t, rewrite_one, &rw);
	if (rw.error != 0 || fsync(rw.fd) == -1 ||
	    rename(tmp, vc->path) == -1) {
		msg_warn("cannot rewrite %s: %s", vc->path,
		    strerror(rw.error != 0 ? rw.error : errno));
		close(rw.fd);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	dir = xstrdup(vc->path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		(void)fsync_dir(*dir != '\0' ? dir : "/");
	}
	free(dir);
	fd = open(vc->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	close(rw.fd);
	if (fd == -1) {
		msg_warn("cannot open %s: %m", vc->path);
		return -1;
	}
	if (vc->fd != -1)
		close(vc->fd);
	vc->fd = fd;
	vc->lines = rw.n;
	return 0;
}

struct vcache *
vcache_open(const char *path, const char **error_r)
{
	struct vcache *vc = vcache_new_memory();
	char *text = NULL;
	size_t len = 0, good;

	vc->path = xstrdup(path);
	if (file_read_all(path, &text, &len) == -1 && errno != ENOENT) {
		*error_r = strerror(errno);
		vcache_close(&vc);
		return NULL;
	}
	good = text != NULL ? vcache_load_text(vc, text, len,
				  (uint64_t)(clock_wall_us() / 1000000))
			    : 0;
	free(text);
	vc->lines = good;
	/* The file starts clean: no torn, stale or expired lines. */
	if (vcache_compact(vc) == -1) {
		*error_r = "cannot write the cache file";
		vcache_close(&vc);
		return NULL;
	}
	return vc;
}

void
vcache_close(struct vcache **vcp)
{
	struct vcache *vc = *vcp;

	if (vc == NULL)
		return;
	*vcp = NULL;
	if (vc->fd != -1)
		close(vc->fd);
	htab_free(&vc->t, entry_free);
	free(vc->path);
	free(vc);
}

const struct vc_entry *
vcache_get(struct vcache *vc, const char *addr, uint64_t now)
{
	struct vc_entry *e = htab_get(vc->t, addr);

	if (e == NULL)
		return NULL;
	if (e->expires <= now) {
		entry_free(htab_del(vc->t, addr));
		return NULL;
	}
	return e;
}

void
vcache_put(struct vcache *vc, const char *addr, bool ok, uint64_t expires,
    const char *reason, uint64_t now)
{
	struct vc_record rec;
	char line[2048];
	size_t n;

	memset(&rec, 0, sizeof(rec));
	rec.ok = ok;
	rec.expires = expires;
	rec.updated = now;
	if (strlcpy_ms(rec.addr, addr, sizeof(rec.addr)) >= sizeof(rec.addr) ||
	    strpbrk(addr, " \t\r\n") != NULL)
		return; /* not an address this cache can hold */
	strlcpy_ms(rec.reason, reason, sizeof(rec.reason));
	for (char *p = rec.reason; *p != '\0'; p++)
		if (*p == '\t' || *p == '\r' || *p == '\n')
			*p = ' ';
	cache_set(vc, &rec);
	if (vc->fd == -1)
		return;
	/* No fsync: a lost line only costs another probe. */
	n = vcache_format_line(&rec, line, sizeof(line));
	if (n > 0 && write_full(vc->fd, line, n) == -1)
		msg_warn("cannot write %s: %m", vc->path);
	vc->lines++;
	if (vc->lines > 2 * htab_count(vc->t) + VCACHE_SLACK)
		(void)vcache_compact(vc);
}

size_t
vcache_count(const struct vcache *vc)
{
	return htab_count(vc->t);
}
