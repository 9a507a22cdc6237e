#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/spool.h"

const char *const spool_dir_names[SPOOL__NDIRS] = {
	[SPOOL_INCOMING] = "incoming",
	[SPOOL_QUEUE] = "queue",
	[SPOOL_HOLD] = "hold",
	[SPOOL_CORRUPT] = "corrupt",
	[SPOOL_SPARE] = "spare",
};

static const char magic[8] = { 'M', 'A', 'I', 'L', 'S', 'E', 'A', 'L' };

/* Crockford's base32: ASCII order is numeric order. */
static const char qid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Envelope record types. */
enum {
	ER_QID = 'Q',
	ER_PARENT = 'P',
	ER_STAGE = 'G',
	ER_FLAGS = 'F',
	ER_TIME = 'T',
	ER_SENDER = 'S',
	ER_RCPT = 'R',
	ER_CLIENT_NAME = 'c',
	ER_CLIENT_ADDR = 'a',
	ER_HELO = 'h',
	ER_PROTO = 'p',
	ER_END = 'E',
};

/* Tail record types. */
enum {
	TR_RCPT = 'D', /* u32 index, u8 state, dsn, reason */
	TR_DEFER = 'd', /* u32 index, dsn, reason */
	TR_SCHEDULE = 'N', /* u32 attempts, u64 next try */
	TR_STAGE = 'G', /* u8 stage */
	TR_WARNED = 'W', /* no payload */
};

#define SPOOL_MAX_ENVELOPE (16U << 20)
#define SPOOL_MAX_TAIL (64U << 20)

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint64_t
get64(const unsigned char *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

int
spool_open(const char *path, bool create, int slot, struct spool **sp_r,
    const char **error_r)
{
	struct spool *sp;
	int root;

	if (create && mkdir_p(path, 0700) == -1) {
		*error_r = "cannot create queue_directory";
		return -1;
	}
	if ((root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		*error_r = "cannot open queue_directory";
		return -1;
	}
	sp = xcalloc(1, sizeof(*sp));
	sp->path = xstrdup(path);
	sp->slot = slot & 31;
	for (int i = 0; i < SPOOL__NDIRS; i++) {
		if (create && mkdirat(root, spool_dir_names[i], 0700) == -1 &&
		    errno != EEXIST) {
			*error_r = "cannot create a spool directory";
			goto fail;
		}
		sp->dfd[i] = openat(root, spool_dir_names[i],
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		/* A queue made by an older version has no spare/ yet. */
		if (sp->dfd[i] == -1 && i == SPOOL_SPARE && errno == ENOENT)
			continue;
		if (sp->dfd[i] == -1) {
			*error_r = "cannot open a spool directory";
			goto fail;
		}
	}
	close(root);
	*sp_r = sp;
	return 0;
fail:
	close(root);
	for (int i = 0; i < SPOOL__NDIRS; i++)
		if (sp->dfd[i] > 0)
			close(sp->dfd[i]);
	free(sp->path);
	free(sp);
	return -1;
}

void
spool_close(struct spool **spp)
{
	struct spool *sp = *spp;

	if (sp == NULL)
		return;
	for (int i = 0; i < SPOOL__NDIRS; i++)
		if (sp->dfd[i] != -1)
			close(sp->dfd[i]);
	free(sp->spare);
	free(sp->path);
	free(sp);
	*spp = NULL;
}

void
spool_new_qid(struct spool *sp, char qid[QID_LEN + 1])
{
	uint64_t now = clock_wall_us();

	/* Strictly increasing within a process, even if the clock is not. */
	if (now <= sp->last_us)
		now = sp->last_us + 1;
	sp->last_us = now;
	for (int i = QID_LEN - 2; i >= 0; i--) {
		qid[i] = qid_alphabet[now & 31];
		now >>= 5;
	}
	qid[QID_LEN - 1] = qid_alphabet[sp->slot & 31];
	qid[QID_LEN] = '\0';
}

bool
spool_qid_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= QID_LEN || strchr(qid_alphabet, s[i]) == NULL)
			return false;
	return i == QID_LEN;
}

uint64_t
spool_qid_time(const char *qid)
{
	uint64_t v = 0;

	for (int i = 0; i < QID_LEN - 1; i++)
		v = v << 5 |
		    (uint64_t)(strchr(qid_alphabet, qid[i]) - qid_alphabet);
	return v;
}

/* Writing. */

/* Pieces at least this large are written without the buffer. */
#define SPOOL_WRITE_DIRECT (8 * 1024)

static void
writer_flush(struct spool_writer *w)
{
	if (w->buflen == 0)
		return;
	if (w->error == 0 && write_full(w->fd, w->buf, w->buflen) == -1)
		w->error = errno;
	w->buflen = 0;
}

/* Lists spare/ (one pass, at most SPOOL_SPARE_MAX names). */
static void
spare_list(struct spool *sp)
{
	struct dirent *de;
	size_t own = 0;
	DIR *d;
	int fd;

	sp->nspare = 0;
	if ((fd = dup(sp->dfd[SPOOL_SPARE])) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	rewinddir(d);
	if (sp->spare == NULL)
		sp->spare =
		    xreallocarray(NULL, SPOOL_SPARE_MAX, sizeof(*sp->spare));
	while (sp->nspare < SPOOL_SPARE_MAX && (de = readdir(d)) != NULL)
		if (spool_qid_valid(de->d_name))
			memcpy(
			    sp->spare[sp->nspare++], de->d_name, QID_LEN + 1);
	closedir(d);
	if (sp->nspare < SPOOL_SPARE_MAX)
		sp->spare_est = sp->nspare; /* the whole directory */
	/*
	 * A file goes back to the process that made it: the last character
	 * of its name is that process's slot (the dispatcher receives, the
	 * engines write outputs, and each gets back as many as it used).
	 * Others' files are taken only when there is none of one's own, so
	 * processes seldom reach for the same name.
	 */
	for (size_t i = 0; i < sp->nspare; i++)
		if (sp->spare[i][QID_LEN - 1] == qid_alphabet[sp->slot & 31])
			memmove(sp->spare[own++], sp->spare[i], QID_LEN + 1);
	if (own > 0)
		sp->nspare = own;
}

/*
 * Processes that list spare/ at about the same time would try the same
 * names in the same order: each list is shuffled (xorshift, seeded by the
 * process and the clock).
 */
static void
spare_shuffle(struct spool *sp)
{
	static uint64_t x;

	if (x == 0)
		x = ((uint64_t)getpid() << 32 ^ clock_mono_us()) | 1;
	for (size_t i = sp->nspare; i > 1; i--) {
		char t[QID_LEN + 1];
		size_t k;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = (size_t)(x % i);
		memcpy(t, sp->spare[i - 1], sizeof(t));
		memcpy(sp->spare[i - 1], sp->spare[k], sizeof(t));
		memcpy(sp->spare[k], t, sizeof(t));
	}
}

/* A spare file renamed to incoming/qid and opened, or -1. */
static int
spare_take(struct spool *sp, const char *qid)
{
	bool listed = false;
	int fd;

	if (sp->dfd[SPOOL_SPARE] == -1)
		return -1;
	for (;;) {
		if (sp->nspare == 0) {
			/* Names all taken by others since: listed once more. */
			if (listed)
				return -1;
			/*
			 * An empty spare/ is listed again a millisecond later
			 * at the soonest, unless this process put files there.
			 */
			if (sp->spare_est == 0 &&
			    clock_mono_us() - sp->spare_empty_us < 1000)
				return -1;
			spare_list(sp);
			listed = true;
			if (sp->nspare == 0) {
				sp->spare_empty_us = clock_mono_us();
				return -1;
			}
			spare_shuffle(sp);
		}
		while (sp->nspare > 0) {
			const char *name = sp->spare[--sp->nspare];
			if (renameat2(sp->dfd[SPOOL_SPARE], name,
				sp->dfd[SPOOL_INCOMING], qid,
				RENAME_NOREPLACE) == -1) {
				if (errno != ENOENT)
					return -1;
				/* Another process took it. */
				if (sp->spare_est > 0)
					sp->spare_est--;
				continue;
			}
			if (sp->spare_est > 0)
				sp->spare_est--;
			fd = openat(sp->dfd[SPOOL_INCOMING], qid,
			    O_RDWR | O_CLOEXEC | O_NOFOLLOW);
			if (fd == -1)
				(void)unlinkat(sp->dfd[SPOOL_INCOMING], qid, 0);
			return fd;
		}
	}
}

int
spool_retire(struct spool *sp, enum spool_dir dir, const char *qid)
{
	struct stat st;

	if (!spool_qid_valid(qid)) {
		errno = EINVAL;
		return -1;
	}
	/*
	 * The estimate counts only what this process put there and took:
	 * others take files too. When it says full, spare/ is counted again
	 * (at most every 10 ms) before a file is unlinked.
	 */
	if (sp->dfd[SPOOL_SPARE] != -1 && sp->spare_est >= SPOOL_SPARE_MAX &&
	    clock_mono_us() - sp->spare_counted_us >= 10000) {
		sp->spare_counted_us = clock_mono_us();
		spare_list(sp);
	}
	if (sp->dfd[SPOOL_SPARE] != -1 && sp->spare_est < SPOOL_SPARE_MAX &&
	    fstatat(sp->dfd[dir], qid, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && st.st_size <= SPOOL_SPARE_SIZE &&
	    renameat2(sp->dfd[dir], qid, sp->dfd[SPOOL_SPARE], qid,
		RENAME_NOREPLACE) == 0) {
		sp->spare_est++;
		return 0;
	}
	return unlinkat(sp->dfd[dir], qid, 0);
}

int
spool_writer_create(struct spool *sp, struct spool_writer **w_r)
{
	struct spool_writer *w;
	int fd;

	w = xmalloc(sizeof(*w));
	memset(w, 0, offsetof(struct spool_writer, buf));
	w->sp = sp;
	w->last = '\n'; /* the content starts a line */
	spool_new_qid(sp, w->qid);
	if ((fd = spare_take(sp, w->qid)) != -1)
		w->reused = true;
	for (int tries = 0; fd == -1; tries++) {
		if (tries > 0)
			spool_new_qid(sp, w->qid);
		fd = openat(sp->dfd[SPOOL_INCOMING], w->qid,
		    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1 && (errno != EEXIST || tries > 100)) {
			free(w);
			return -1;
		}
	}
	w->fd = fd;
	/* The header is written last, when the offsets are known. */
	memset(w->buf, 0, SPOOL_HEADER_SIZE);
	w->buflen = SPOOL_HEADER_SIZE;
	*w_r = w;
	return 0;
}

void
spool_writer_write(struct spool_writer *w, const void *data, size_t len)
{
	const unsigned char *p = data;

	w->content_len += len;
	if (len > 0 && !w->dot_line) {
		/* A '.' at the start of the content or after an LF. */
		const unsigned char *d = p;

		while ((d = memchr(d, '.', len - (size_t)(d - p))) != NULL) {
			if ((d == p ? w->last : d[-1]) == '\n') {
				w->dot_line = true;
				break;
			}
			if (++d == p + len)
				break;
		}
	}
	if (len > 0)
		w->last = p[len - 1];
	if (w->error != 0)
		return;
	/*
	 * A large piece (the engine hands over 64 KB at a time) goes to the
	 * file at once, after what is buffered: not copied through the buffer.
	 */
	if (len >= SPOOL_WRITE_DIRECT) {
		writer_flush(w);
		if (w->error == 0 && write_full(w->fd, p, len) == -1)
			w->error = errno;
		return;
	}
	while (len > 0) {
		size_t n = sizeof(w->buf) - w->buflen;
		if (n == 0) {
			writer_flush(w);
			if (w->error != 0)
				return;
			continue;
		}
		if (n > len)
			n = len;
		memcpy(w->buf + w->buflen, p, n);
		w->buflen += n;
		p += n;
		len -= n;
	}
}

struct rec {
	unsigned char *p;
	size_t len, cap;
};

static void
rec_put(struct rec *r, int type, const void *data, size_t len)
{
	if (r->cap - r->len < len + 5) {
		r->cap = (r->cap + len + 5) * 2;
		r->p = xreallocarray(r->p, r->cap, 1);
	}
	r->p[r->len] = (unsigned char)type;
	put32(r->p + r->len + 1, (uint32_t)len);
	if (len > 0)
		memcpy(r->p + r->len + 5, data, len);
	r->len += len + 5;
}

static void
rec_str(struct rec *r, int type, const char *s)
{
	if (s != NULL)
		rec_put(r, type, s, strlen(s));
}

static void
rec_u64(struct rec *r, int type, uint64_t v)
{
	unsigned char b[8];

	put64(b, v);
	rec_put(r, type, b, 8);
}

/* Encodes the envelope records, ending with the CRC record. */
static void
env_encode(const struct spool_env *env, struct rec *r)
{
	unsigned char b[4];

	rec_str(r, ER_QID, env->qid);
	if (env->parent[0] != '\0')
		rec_str(r, ER_PARENT, env->parent);
	b[0] = (unsigned char)env->stage;
	rec_put(r, ER_STAGE, b, 1);
	put32(b, env->flags);
	rec_put(r, ER_FLAGS, b, 4);
	rec_u64(r, ER_TIME, env->arrival_us);
	rec_str(r, ER_SENDER, env->sender != NULL ? env->sender : "");
	rec_str(r, ER_CLIENT_NAME, env->client_name);
	rec_str(r, ER_CLIENT_ADDR, env->client_addr);
	rec_str(r, ER_HELO, env->helo);
	rec_str(r, ER_PROTO, env->proto);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct spool_rcpt *rc = &env->rcpt[i];
		size_t al = strlen(rc->addr);
		size_t ol = rc->orcpt != NULL ? strlen(rc->orcpt) : 0;
		unsigned char *p = xmalloc(12 + al + ol);
		put32(p, rc->flags);
		put32(p + 4, (uint32_t)al);
		memcpy(p + 8, rc->addr, al);
		put32(p + 8 + al, (uint32_t)ol);
		if (ol > 0)
			memcpy(p + 12 + al, rc->orcpt, ol);
		rec_put(r, ER_RCPT, p, 12 + al + ol);
		free(p);
	}
	put32(b, crc32_update(0, r->p, r->len));
	rec_put(r, ER_END, b, 4);
}

static int
writer_finish(struct spool_writer *w, struct spool_env *env, bool cut_now)
{
	unsigned char hdr[SPOOL_HEADER_SIZE];
	struct rec r = { 0 };
	uint64_t env_off = SPOOL_HEADER_SIZE + w->content_len;
	uint32_t flags = 0;

	if (!w->dot_line)
		flags |= SPOOL_CONTENT_NO_DOT_LINE;
	if (w->content_len > 0 && w->last == '\n')
		flags |= SPOOL_CONTENT_ENDS_LF;
	memcpy(env->qid, w->qid, sizeof(env->qid));
	env_encode(env, &r);
	spool_writer_write(w, r.p, r.len);
	w->content_len -= r.len;
	writer_flush(w);
	free(r.p);

	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, magic, 8);
	put32(hdr + 8, SPOOL_VERSION);
	put64(hdr + 16, SPOOL_HEADER_SIZE);
	put64(hdr + 24, w->content_len);
	put64(hdr + 32, env_off);
	put64(hdr + 40, r.len);
	put32(hdr + 48, flags);
	put32(hdr + 60, crc32_update(0, hdr, 60));
	if (w->error == 0 &&
	    pwrite(w->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		w->error = errno != 0 ? errno : EIO;
	/* What a spare file held beyond the new message must go. */
	if (w->reused) {
		w->cut_to = env_off + r.len;
		if (cut_now)
			spool_writer_cut(w);
	}
	env->content_off = SPOOL_HEADER_SIZE;
	env->content_len = w->content_len;
	env->content_flags = flags;
	env->tail_end = env->file_size = env_off + r.len;
	if (w->error != 0) {
		errno = w->error;
		return -1;
	}
	return 0;
}

int
spool_writer_finish(struct spool_writer *w, struct spool_env *env)
{
	return writer_finish(w, env, true);
}

int
spool_writer_finish_uncut(struct spool_writer *w, struct spool_env *env)
{
	return writer_finish(w, env, false);
}

void
spool_writer_cut(struct spool_writer *w)
{
	if (w->cut_to != 0 && w->error == 0 &&
	    ftruncate(w->fd, (off_t)w->cut_to) == -1)
		w->error = errno;
	w->cut_to = 0;
}

int
spool_writer_sync(struct spool_writer *w)
{
	spool_writer_cut(w);
	if (w->error == 0 && fsync(w->fd) == -1)
		w->error = errno;
	if (w->error != 0) {
		errno = w->error;
		return -1;
	}
	return 0;
}

int
spool_writer_publish(struct spool_writer *w, enum spool_dir to)
{
	if (w->in_place) {
		w->error = -1;
		return 0;
	}
	/* Never into the queue with a spare file's old tail. */
	if (w->cut_to != 0) {
		spool_writer_cut(w);
		if (w->error != 0) {
			errno = w->error;
			return -1;
		}
	}
	/* RENAME_NOREPLACE: a queue ID is never reused over a live file. */
	if (renameat2(w->sp->dfd[SPOOL_INCOMING], w->qid, w->sp->dfd[to],
		w->qid, RENAME_NOREPLACE) == -1) {
		w->error = errno;
		return -1;
	}
	w->error = -1; /* published: nothing to remove at free */
	return 0;
}

int
spool_writer_commit(struct spool_writer *w, struct spool_env *env)
{
	if (spool_writer_finish(w, env) == -1 || spool_writer_sync(w) == -1 ||
	    spool_writer_publish(w, SPOOL_QUEUE) == -1)
		return -1;
	if (fsync(w->sp->dfd[SPOOL_QUEUE]) == -1)
		return -1;
	return 0;
}

void
spool_writer_free(struct spool_writer **wp)
{
	struct spool_writer *w = *wp;

	if (w == NULL)
		return;
	if (w->error != -1 && !w->in_place)
		unlinkat(w->sp->dfd[SPOOL_INCOMING], w->qid, 0);
	close(w->fd);
	free(w);
	*wp = NULL;
}

void
spool_writer_release(struct spool_writer **wp)
{
	if (*wp != NULL)
		(*wp)->error = -1;
	spool_writer_free(wp);
}

int
spool_writer_adopt(struct spool *sp, const char *qid, struct spool_writer **w_r)
{
	struct spool_writer *w;
	int fd;

	if (!spool_qid_valid(qid)) {
		errno = EINVAL;
		return -1;
	}
	fd = openat(sp->dfd[SPOOL_QUEUE], qid, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return -1;
	w = xmalloc(sizeof(*w));
	memset(w, 0, offsetof(struct spool_writer, buf));
	w->sp = sp;
	w->fd = fd;
	w->in_place = true;
	strlcpy_ms(w->qid, qid, sizeof(w->qid));
	*w_r = w;
	return 0;
}

/* Reading. */

void
spool_env_add_rcpt(
    struct spool_env *env, const char *addr, const char *orcpt, uint32_t flags)
{
	struct spool_rcpt *rc;

	env->rcpt =
	    xreallocarray(env->rcpt, env->nrcpt + 1, sizeof(*env->rcpt));
	rc = &env->rcpt[env->nrcpt++];
	memset(rc, 0, sizeof(*rc));
	rc->addr = xstrdup(addr);
	rc->orcpt = orcpt != NULL ? xstrdup(orcpt) : NULL;
	rc->flags = flags;
}

void
spool_env_free(struct spool_env **envp)
{
	struct spool_env *env = *envp;

	if (env == NULL)
		return;
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].addr);
		free(env->rcpt[i].orcpt);
		free(env->rcpt[i].dsn);
		free(env->rcpt[i].reason);
	}
	free(env->rcpt);
	free(env->sender);
	free(env->client_name);
	free(env->client_addr);
	free(env->helo);
	free(env->proto);
	free(env);
	*envp = NULL;
}

static int
read_at(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n;
	size_t done = 0;

	while (done < len) {
		n = pread(
		    fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static char *
dupfield(const unsigned char *p, size_t len)
{
	char *s = xstrndup((const char *)p, len);

	/* Record strings never hold NUL bytes; a file that has one is bad. */
	if (strlen(s) != len) {
		free(s);
		return NULL;
	}
	return s;
}

static int
env_decode(struct spool_env *env, const unsigned char *p, size_t len,
    const char **error_r)
{
	size_t off = 0;
	bool ended = false;
	char **target;

	while (off < len) {
		int type;
		uint32_t rl;
		const unsigned char *v;

		if (ended || len - off < 5) {
			*error_r = "truncated envelope record";
			return -1;
		}
		type = p[off];
		rl = get32(p + off + 1);
		if (rl > len - off - 5) {
			*error_r = "truncated envelope record";
			return -1;
		}
		v = p + off + 5;
		target = NULL;
		switch (type) {
		case ER_QID:
		case ER_PARENT: {
			char *dst = type == ER_QID ? env->qid : env->parent;
			if (rl != QID_LEN) {
				*error_r = "bad queue ID record";
				return -1;
			}
			memcpy(dst, v, QID_LEN);
			dst[QID_LEN] = '\0';
			break;
		}
		case ER_STAGE:
			if (rl != 1 ||
			    (v[0] != SPOOL_RECEIVED &&
				v[0] != SPOOL_FILTERED)) {
				*error_r = "bad stage record";
				return -1;
			}
			env->stage = v[0];
			break;
		case ER_FLAGS:
			if (rl != 4) {
				*error_r = "bad flags record";
				return -1;
			}
			env->flags = get32(v);
			break;
		case ER_TIME:
			if (rl != 8) {
				*error_r = "bad time record";
				return -1;
			}
			env->arrival_us = get64(v);
			break;
		case ER_SENDER:
			target = &env->sender;
			break;
		case ER_CLIENT_NAME:
			target = &env->client_name;
			break;
		case ER_CLIENT_ADDR:
			target = &env->client_addr;
			break;
		case ER_HELO:
			target = &env->helo;
			break;
		case ER_PROTO:
			target = &env->proto;
			break;
		case ER_RCPT: {
			uint32_t al, ol;
			char *a, *o = NULL;
			if (rl < 12 || (al = get32(v + 4)) > rl - 12 ||
			    (ol = get32(v + 8 + al)) != rl - 12 - al) {
				*error_r = "bad recipient record";
				return -1;
			}
			if ((a = dupfield(v + 8, al)) == NULL ||
			    (ol > 0 &&
				(o = dupfield(v + 12 + al, ol)) == NULL)) {
				free(a);
				*error_r = "bad recipient record";
				return -1;
			}
			spool_env_add_rcpt(env, a, o, get32(v));
			free(a);
			free(o);
			break;
		}
		case ER_END:
			if (rl != 4 || get32(v) != crc32_update(0, p, off)) {
				*error_r = "envelope checksum mismatch";
				return -1;
			}
			ended = true;
			break;
		default:
			*error_r = "unknown envelope record";
			return -1;
		}
		if (target != NULL) {
			free(*target);
			if ((*target = dupfield(v, rl)) == NULL) {
				*error_r = "bad text record";
				return -1;
			}
		}
		off += 5 + rl;
	}
	if (!ended) {
		*error_r = "envelope without end record";
		return -1;
	}
	if (env->qid[0] == '\0' || env->stage == 0 || env->sender == NULL ||
	    env->nrcpt == 0) {
		*error_r = "incomplete envelope";
		return -1;
	}
	return 0;
}

/* Applies one tail record; -1 if it makes no sense (then it is ignored). */
static int
tail_apply(struct spool_env *env, int type, const unsigned char *v, size_t rl)
{
	size_t idx;
	uint32_t dl;

	switch (type) {
	case TR_RCPT:
	case TR_DEFER: {
		size_t hl = type == TR_RCPT ? 9 : 8;
		if (rl < hl || (idx = get32(v)) >= env->nrcpt)
			return -1;
		dl = get32(v + hl - 4);
		if (dl > rl - hl)
			return -1;
		struct spool_rcpt *rc = &env->rcpt[idx];
		free(rc->dsn);
		free(rc->reason);
		rc->dsn = xstrndup((const char *)v + hl, dl);
		rc->reason = xstrndup((const char *)v + hl + dl, rl - hl - dl);
		if (type == TR_RCPT) {
			rc->state = v[4];
			rc->done_us = clock_wall_us();
		}
		return 0;
	}
	case TR_SCHEDULE:
		if (rl != 12)
			return -1;
		env->attempts = get32(v);
		env->next_try_us = get64(v + 4);
		return 0;
	case TR_STAGE:
		if (rl != 1)
			return -1;
		env->stage = v[0];
		return 0;
	case TR_WARNED:
		env->warned = true;
		return 0;
	}
	return -1;
}

int
spool_read_fd(int fd, struct spool_env **env_r, const char **error_r)
{
	unsigned char hdr[SPOOL_HEADER_SIZE], *ebuf = NULL, *tbuf = NULL;
	struct spool_env *env;
	uint64_t coff, clen, eoff, elen, tlen, off;
	struct stat st;

	if (fstat(fd, &st) == -1 || read_at(fd, hdr, sizeof(hdr), 0) == -1) {
		*error_r = "short file";
		return -1;
	}
	if (memcmp(hdr, magic, 8) != 0) {
		*error_r = "bad magic";
		return -1;
	}
	if (get32(hdr + 8) != SPOOL_VERSION) {
		*error_r = "unknown spool version";
		return -1;
	}
	if (get32(hdr + 60) != crc32_update(0, hdr, 60)) {
		*error_r = "header checksum mismatch";
		return -1;
	}
	coff = get64(hdr + 16);
	clen = get64(hdr + 24);
	eoff = get64(hdr + 32);
	elen = get64(hdr + 40);
	if (coff != SPOOL_HEADER_SIZE || clen > (uint64_t)st.st_size ||
	    eoff != coff + clen || elen > SPOOL_MAX_ENVELOPE ||
	    eoff + elen > (uint64_t)st.st_size) {
		*error_r = "bad offsets in header";
		return -1;
	}
	env = xcalloc(1, sizeof(*env));
	ebuf = xmalloc(elen);
	if (read_at(fd, ebuf, elen, eoff) == -1) {
		*error_r = "short file";
		goto fail;
	}
	if (env_decode(env, ebuf, elen, error_r) == -1)
		goto fail;
	env->content_off = coff;
	env->content_len = clen;
	env->content_flags = get32(hdr + 48);
	env->file_size = (uint64_t)st.st_size;

	/* The tail: records up to the first torn one. */
	off = eoff + elen;
	tlen = (uint64_t)st.st_size - off;
	if (tlen > SPOOL_MAX_TAIL) {
		*error_r = "tail too long";
		goto fail;
	}
	tbuf = xmalloc(tlen + 1);
	if (tlen > 0 && read_at(fd, tbuf, tlen, off) == -1) {
		*error_r = "short file";
		goto fail;
	}
	size_t t = 0;
	while (tlen - t >= 9) {
		uint32_t rl = get32(tbuf + t + 1);
		if (rl > tlen - t - 9)
			break;
		if (get32(tbuf + t + 5 + rl) !=
		    crc32_update(0, tbuf + t, 5 + rl))
			break;
		(void)tail_apply(env, tbuf[t], tbuf + t + 5, rl);
		t += 9 + rl;
	}
	env->tail_end = off + t;
	free(ebuf);
	free(tbuf);
	*env_r = env;
	return 0;
fail:
	free(ebuf);
	free(tbuf);
	spool_env_free(&env);
	return -1;
}

int
spool_read(struct spool *sp, enum spool_dir dir, const char *qid, bool writable,
    struct spool_env **env_r, int *fd_r, const char **error_r)
{
	int fd;

	if (!spool_qid_valid(qid)) {
		*error_r = "bad queue ID";
		errno = EINVAL;
		return -1;
	}
	fd = openat(sp->dfd[dir], qid,
	    (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1) {
		*error_r = strerror(errno);
		return -1;
	}
	if (spool_read_fd(fd, env_r, error_r) == -1) {
		close(fd);
		errno = EBADMSG;
		return -1;
	}
	if (strcmp((*env_r)->qid, qid) != 0) {
		*error_r = "queue ID in file does not match its name";
		spool_env_free(env_r);
		close(fd);
		errno = EBADMSG;
		return -1;
	}
	if (fd_r != NULL)
		*fd_r = fd;
	else
		close(fd);
	return 0;
}

long
spool_read_content(
    int fd, const struct spool_env *env, uint64_t off, void *buf, size_t len)
{
	ssize_t n;

	if (off >= env->content_len)
		return 0;
	if (len > env->content_len - off)
		len = (size_t)(env->content_len - off);
	do
		n = pread(fd, buf, len, (off_t)(env->content_off + off));
	while (n == -1 && errno == EINTR);
	return (long)n;
}

/* Tail appends. */

static int
tail_append(int fd, struct spool_env *env, int type, const void *payload,
    size_t len, bool sync)
{
	unsigned char *rec = xmalloc(len + 9);
	int rc = 0;

	rec[0] = (unsigned char)type;
	put32(rec + 1, (uint32_t)len);
	if (len > 0)
		memcpy(rec + 5, payload, len);
	put32(rec + 5 + len, crc32_update(0, rec, 5 + len));
	/* Cut off a torn record that a crash left behind. */
	if (env->file_size > env->tail_end &&
	    ftruncate(fd, (off_t)env->tail_end) == -1)
		rc = -1;
	if (rc == 0) {
		ssize_t n = pwrite(fd, rec, len + 9, (off_t)env->tail_end);
		if (n != (ssize_t)(len + 9)) {
			if (n >= 0)
				errno = ENOSPC;
			env->file_size =
			    env->tail_end + (n > 0 ? (size_t)n : 0);
			rc = -1;
		} else {
			env->tail_end += len + 9;
			env->file_size = env->tail_end;
		}
	}
	if (rc == 0 && sync && fdatasync(fd) == -1)
		rc = -1;
	if (rc == 0)
		(void)tail_apply(env, type, rec + 5, len);
	free(rec);
	return rc;
}

static int
mark_text(int fd, struct spool_env *env, int type, size_t idx, int state,
    const char *dsn, const char *reason, bool sync)
{
	size_t dl = dsn != NULL ? strlen(dsn) : 0;
	size_t rl = reason != NULL ? strlen(reason) : 0;
	size_t hl = type == TR_RCPT ? 9 : 8;
	unsigned char *p = xmalloc(hl + dl + rl);
	int rc;

	if (idx >= env->nrcpt)
		msg_panic("spool mark: recipient %zu of %zu", idx, env->nrcpt);
	put32(p, (uint32_t)idx);
	if (type == TR_RCPT)
		p[4] = (unsigned char)state;
	put32(p + hl - 4, (uint32_t)dl);
	memcpy(p + hl, dsn != NULL ? dsn : "", dl);
	memcpy(p + hl + dl, reason != NULL ? reason : "", rl);
	rc = tail_append(fd, env, type, p, hl + dl + rl, sync);
	free(p);
	return rc;
}

int
spool_mark_rcpt(int fd, struct spool_env *env, size_t idx, int state,
    const char *dsn, const char *reason, bool sync)
{
	return mark_text(fd, env, TR_RCPT, idx, state, dsn, reason, sync);
}

int
spool_mark_defer(int fd, struct spool_env *env, size_t idx, const char *dsn,
    const char *reason)
{
	return mark_text(fd, env, TR_DEFER, idx, 0, dsn, reason, false);
}

int
spool_mark_schedule(
    int fd, struct spool_env *env, uint32_t attempts, uint64_t next_try_us)
{
	unsigned char p[12];

	put32(p, attempts);
	put64(p + 4, next_try_us);
	return tail_append(fd, env, TR_SCHEDULE, p, sizeof(p), false);
}

int
spool_mark_stage(int fd, struct spool_env *env, int stage, bool sync)
{
	unsigned char p = (unsigned char)stage;

	return tail_append(fd, env, TR_STAGE, &p, 1, sync);
}

int
spool_mark_warned(int fd, struct spool_env *env)
{
	return tail_append(fd, env, TR_WARNED, NULL, 0, false);
}

bool
spool_env_pending(const struct spool_env *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == RCPT_PENDING)
			return true;
	return false;
}

/* Directories. */

int
spool_move(
    struct spool *sp, const char *qid, enum spool_dir from, enum spool_dir to)
{
	if (!spool_qid_valid(qid)) {
		errno = EINVAL;
		return -1;
	}
	if (renameat2(sp->dfd[from], qid, sp->dfd[to], qid, RENAME_NOREPLACE) ==
	    -1)
		return -1;
	if (fsync(sp->dfd[to]) == -1 || fsync(sp->dfd[from]) == -1)
		return -1;
	return 0;
}

int
spool_remove(struct spool *sp, enum spool_dir dir, const char *qid)
{
	if (!spool_qid_valid(qid)) {
		errno = EINVAL;
		return -1;
	}
	return unlinkat(sp->dfd[dir], qid, 0);
}

int
spool_quarantine(
    struct spool *sp, enum spool_dir dir, const char *qid, const char *why)
{
	if (spool_move(sp, qid, dir, SPOOL_CORRUPT) == -1) {
		msg_warn("%s: cannot move to corrupt: %m", qid);
		return -1;
	}
	msg_warn("%s: corrupt queue file (%s): moved to corrupt", qid, why);
	return 0;
}

struct check_ctx {
	struct spool *sp;
	enum spool_dir dir;
	int moved;
};

static void
check_one(const char *qid, void *arg)
{
	struct check_ctx *c = arg;
	struct spool_env *env;
	const char *why;

	if (spool_read(c->sp, c->dir, qid, false, &env, NULL, &why) == 0) {
		spool_env_free(&env);
		return;
	}
	if (errno == EBADMSG && spool_quarantine(c->sp, c->dir, qid, why) == 0)
		c->moved++;
}

int
spool_check_all(struct spool *sp)
{
	struct check_ctx c = { sp, SPOOL_QUEUE, 0 };

	spool_scan(sp, SPOOL_QUEUE, check_one, &c);
	c.dir = SPOOL_HOLD;
	spool_scan(sp, SPOOL_HOLD, check_one, &c);
	return c.moved;
}

static int
qid_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
spool_scan(struct spool *sp, enum spool_dir dir,
    void (*cb)(const char *, void *), void *arg)
{
	struct dirent *de;
	char **ids = NULL;
	size_t n = 0;
	DIR *d;
	int fd;

	if ((fd = dup(sp->dfd[dir])) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (!spool_qid_valid(de->d_name))
			continue;
		ids = xreallocarray(ids, n + 1, sizeof(*ids));
		ids[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(ids, n, sizeof(*ids), qid_cmp);
	for (size_t i = 0; i < n; i++) {
		cb(ids[i], arg);
		free(ids[i]);
	}
	free(ids);
	return 0;
}

int
spool_clean_incoming(struct spool *sp)
{
	struct dirent *de;
	int n = 0, fd;
	DIR *d;

	if ((fd = dup(sp->dfd[SPOOL_INCOMING])) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(sp->dfd[SPOOL_INCOMING], de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}
