#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "queue/spool.h"

static char tmpdir[64];

static int
setup(void **state)
{
	struct spool *sp;
	const char *why;

	strcpy(tmpdir, "/tmp/mailseal-spool-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(spool_open(tmpdir, true, 3, &sp, &why), 0);
	*state = sp;
	return 0;
}

static int
teardown(void **state)
{
	struct spool *sp = *state;
	char *cmd = xasprintf("rm -rf %s", tmpdir);

	spool_close(&sp);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	return 0;
}

/* An envelope of a received message with one recipient, a@example.com. */
static void
env_init(struct spool_env *env)
{
	memset(env, 0, sizeof(*env));
	env->stage = SPOOL_RECEIVED;
	env->arrival_us = 1700000000000000ULL;
	env->sender = "sender@example.com";
	env->client_addr = "192.0.2.1";
	env->client_name = "unknown";
	env->helo = "client.test";
	env->proto = "ESMTP";
	spool_env_add_rcpt(env, "a@example.com", NULL, 0);
}

/* Writes and commits a message; returns its queue ID. */
static void
write_msg(struct spool *sp, const char *body, char qid[QID_LEN + 1])
{
	struct spool_writer *w;
	struct spool_env env;

	env_init(&env);
	spool_env_add_rcpt(&env, "b@remote.test", "rfc822;b@remote.test", 7);
	assert_int_equal(spool_writer_create(sp, &w), 0);
	spool_writer_write(w, body, strlen(body));
	assert_int_equal(spool_writer_commit(w, &env), 0);
	memcpy(qid, w->qid, QID_LEN + 1);
	spool_writer_free(&w);
	for (size_t i = 0; i < env.nrcpt; i++) {
		free(env.rcpt[i].addr);
		free(env.rcpt[i].orcpt);
	}
	free(env.rcpt);
}

static void
roundtrip(void **state)
{
	struct spool *sp = *state;
	struct spool_env *env;
	char qid[QID_LEN + 1], buf[64];
	const char *why;
	int fd;

	write_msg(sp, "Subject: hi\r\n\r\nbody\r\n", qid);
	assert_true(spool_qid_valid(qid));
	assert_int_equal(qid[QID_LEN - 1], '3');
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, true, &env, &fd, &why), 0);
	assert_string_equal(env->qid, qid);
	assert_string_equal(env->sender, "sender@example.com");
	assert_int_equal(env->nrcpt, 2);
	assert_string_equal(env->rcpt[1].addr, "b@remote.test");
	assert_string_equal(env->rcpt[1].orcpt, "rfc822;b@remote.test");
	assert_int_equal(env->rcpt[1].flags, 7);
	assert_string_equal(env->helo, "client.test");
	assert_int_equal(env->stage, SPOOL_RECEIVED);
	assert_int_equal(env->arrival_us, 1700000000000000ULL);
	assert_int_equal(env->content_len, 21);
	assert_int_equal(spool_read_content(fd, env, 0, buf, sizeof(buf)), 21);
	assert_memory_equal(buf, "Subject: hi\r\n\r\nbody\r\n", 21);
	assert_int_equal(spool_read_content(fd, env, 15, buf, 4), 4);
	assert_memory_equal(buf, "body", 4);

	/* Tail records survive a re-read. */
	assert_int_equal(
	    spool_mark_rcpt(fd, env, 0, RCPT_SENT, "2.0.0", "250 ok", true), 0);
	assert_int_equal(spool_mark_defer(fd, env, 1, "4.4.1", "timeout"), 0);
	assert_int_equal(spool_mark_schedule(fd, env, 2, 12345), 0);
	assert_int_equal(spool_mark_stage(fd, env, SPOOL_FILTERED, true), 0);
	spool_env_free(&env);
	close(fd);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, false, &env, NULL, &why), 0);
	assert_int_equal(env->rcpt[0].state, RCPT_SENT);
	assert_string_equal(env->rcpt[0].reason, "250 ok");
	assert_int_equal(env->rcpt[1].state, RCPT_PENDING);
	assert_string_equal(env->rcpt[1].dsn, "4.4.1");
	assert_int_equal(env->attempts, 2);
	assert_int_equal(env->next_try_us, 12345);
	assert_int_equal(env->stage, SPOOL_FILTERED);
	assert_true(spool_env_pending(env));
	spool_env_free(&env);
}

static void
qids_ordered_unique(void **state)
{
	struct spool *sp = *state;
	char prev[QID_LEN + 1] = "", qid[QID_LEN + 1];

	for (int i = 0; i < 10000; i++) {
		spool_new_qid(sp, qid);
		assert_true(strcmp(prev, qid) < 0);
		memcpy(prev, qid, sizeof(qid));
	}
	assert_false(spool_qid_valid("short"));
	assert_false(spool_qid_valid("../../etc/pw"));
	assert_false(spool_qid_valid("0123456789ABCD"));
	assert_false(spool_qid_valid("0123456789AI"));
}

/* Helpers that damage a committed file in one way. */
static void
damage(
    struct spool *sp, const char *qid, off_t off, const char *bytes, size_t n)
{
	int fd = openat(sp->dfd[SPOOL_QUEUE], qid, O_RDWR);

	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, bytes, n, off), (ssize_t)n);
	close(fd);
}

static void
truncate_to(const char *qid, off_t size)
{
	char *path = xasprintf("%s/queue/%s", tmpdir, qid);

	assert_int_equal(truncate(path, size), 0);
	free(path);
}

static off_t
file_size(struct spool *sp, const char *qid)
{
	struct stat st;

	assert_int_equal(fstatat(sp->dfd[SPOOL_QUEUE], qid, &st, 0), 0);
	return st.st_size;
}

static void
refuses_damage(void **state)
{
	struct spool *sp = *state;
	struct spool_env *env;
	char qid[QID_LEN + 1];
	const char *why;

	/* Bad magic. */
	write_msg(sp, "x\r\n", qid);
	damage(sp, qid, 0, "X", 1);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, false, &env, NULL, &why), -1);
	assert_string_equal(why, "bad magic");

	/* An unknown version. */
	write_msg(sp, "x\r\n", qid);
	damage(sp, qid, 11, "\x02", 1);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, false, &env, NULL, &why), -1);
	assert_string_equal(why, "unknown spool version");

	/* A flipped bit in the envelope. */
	write_msg(sp, "x\r\n", qid);
	damage(sp, qid, 64 + 3 + 5 + 2, "Z", 1);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, false, &env, NULL, &why), -1);
	assert_string_equal(why, "envelope checksum mismatch");

	/* Truncated: the envelope is incomplete. */
	write_msg(sp, "x\r\n", qid);
	truncate_to(qid, file_size(sp, qid) - 3);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, false, &env, NULL, &why), -1);
	assert_string_equal(why, "bad offsets in header");

	/* An unknown envelope record (with a valid checksum) is refused. */
	write_msg(sp, "x\r\n", qid);
	damage(sp, qid, 64 + 3, "q", 1);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, false, &env, NULL, &why), -1);
}

static void
torn_tail_is_ignored(void **state)
{
	struct spool *sp = *state;
	struct spool_env *env;
	char qid[QID_LEN + 1];
	const char *why;
	off_t size;
	int fd;

	write_msg(sp, "x\r\n", qid);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, true, &env, &fd, &why), 0);
	assert_int_equal(
	    spool_mark_rcpt(fd, env, 0, RCPT_SENT, "2.0.0", "ok", false), 0);
	size = file_size(sp, qid);
	assert_int_equal(
	    spool_mark_rcpt(fd, env, 1, RCPT_BOUNCED, "5.0.0", "no", false), 0);
	spool_env_free(&env);
	close(fd);
	/* A crash in the middle of the second append. */
	truncate_to(qid, size + 7);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, true, &env, &fd, &why), 0);
	assert_int_equal(env->rcpt[0].state, RCPT_SENT);
	assert_int_equal(env->rcpt[1].state, RCPT_PENDING);
	assert_int_equal(env->tail_end, (uint64_t)size);
	/* The next append cuts the torn record off first. */
	assert_int_equal(
	    spool_mark_rcpt(fd, env, 1, RCPT_SENT, "2.0.0", "ok", true), 0);
	spool_env_free(&env);
	close(fd);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, false, &env, NULL, &why), 0);
	assert_int_equal(env->rcpt[1].state, RCPT_SENT);
	assert_false(spool_env_pending(env));
	spool_env_free(&env);
}

static void
incoming_cleanup_and_moves(void **state)
{
	struct spool *sp = *state;
	struct spool_writer *w;
	struct spool_env *env;
	char qid[QID_LEN + 1];
	const char *why;

	/* An uncommitted file never shows up in queue/. */
	assert_int_equal(spool_writer_create(sp, &w), 0);
	spool_writer_write(w, "partial", 7);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, w->qid, false, &env, NULL, &why), -1);
	assert_int_equal(errno, ENOENT);
	close(w->fd);
	free(w); /* as a crash would leave it */
	assert_int_equal(spool_clean_incoming(sp), 1);
	assert_int_equal(spool_clean_incoming(sp), 0);

	write_msg(sp, "x\r\n", qid);
	assert_int_equal(spool_move(sp, qid, SPOOL_QUEUE, SPOOL_HOLD), 0);
	assert_int_equal(
	    spool_read(sp, SPOOL_HOLD, qid, false, &env, NULL, &why), 0);
	spool_env_free(&env);
	assert_int_equal(spool_move(sp, qid, SPOOL_HOLD, SPOOL_QUEUE), 0);
	assert_int_equal(spool_remove(sp, SPOOL_QUEUE, qid), 0);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, false, &env, NULL, &why), -1);
}

static void
check_all_quarantines(void **state)
{
	struct spool *sp = *state;
	struct spool_env *env;
	char good[QID_LEN + 1], bad[QID_LEN + 1];
	const char *why;

	write_msg(sp, "x\r\n", good);
	write_msg(sp, "y\r\n", bad);
	damage(sp, bad, 8, "\x07", 1);
	assert_int_equal(spool_check_all(sp), 1);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, good, false, &env, NULL, &why), 0);
	spool_env_free(&env);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, bad, false, &env, NULL, &why), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(
	    spool_read(sp, SPOOL_CORRUPT, bad, false, &env, NULL, &why), -1);
	assert_string_equal(why, "unknown spool version");
	assert_int_equal(spool_check_all(sp), 0);
}

/* A removed message's file is reused, cut to the new message's size. */
static void
spare_files_are_reused(void **state)
{
	struct spool *sp = *state;
	struct spool_env *env;
	struct stat st, st2;
	char big[4096], qid[QID_LEN + 1], qid2[QID_LEN + 1], buf[64];
	char *path;
	const char *why;
	int fd;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	write_msg(sp, big, qid);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, true, &env, &fd, &why), 0);
	/* A tail record, that must not come back with the next message. */
	assert_int_equal(
	    spool_mark_rcpt(fd, env, 0, RCPT_SENT, "2.0.0", "250 ok", true), 0);
	spool_env_free(&env);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	assert_int_equal(spool_retire(sp, SPOOL_QUEUE, qid), 0);
	path = xasprintf("%s/spare/%s", tmpdir, qid);
	assert_int_equal(access(path, F_OK), 0);
	free(path);

	write_msg(sp, "Subject: small\r\n\r\nx\r\n", qid2);
	path = xasprintf("%s/spare/%s", tmpdir, qid);
	assert_int_equal(access(path, F_OK), -1); /* taken */
	free(path);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid2, false, &env, &fd, &why), 0);
	assert_int_equal(fstat(fd, &st2), 0);
	assert_int_equal(st2.st_ino, st.st_ino); /* the same file */
	assert_int_equal((uint64_t)st2.st_size, env->file_size);
	assert_true(st2.st_size < st.st_size);
	assert_int_equal(env->rcpt[0].state, RCPT_PENDING);
	assert_int_equal(env->content_len, 21);
	assert_int_equal(spool_read_content(fd, env, 0, buf, sizeof(buf)), 21);
	assert_memory_equal(buf, "Subject: small\r\n\r\nx\r\n", 21);
	spool_env_free(&env);
	close(fd);

	/* No spare file: a new one, as before. */
	write_msg(sp, "Subject: new\r\n\r\n", qid);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, false, &env, &fd, &why), 0);
	assert_int_equal(fstat(fd, &st2), 0);
	assert_true(st2.st_ino != st.st_ino);
	spool_env_free(&env);
	close(fd);
}

/*
 * finish_uncut leaves a spare file's old octets until the sync (the
 * committer's) or the publish cuts them: never read with the old tail.
 */
static void
spare_file_cut_by_sync_or_publish(void **state)
{
	struct spool *sp = *state;
	char big[8192], qid[QID_LEN + 1];
	const char *why;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int round = 0; round < 2; round++) {
		struct spool_writer *w;
		struct spool_env env, *got;
		struct stat st;
		int fd;

		write_msg(sp, big, qid);
		assert_int_equal(
		    spool_read(sp, SPOOL_QUEUE, qid, true, &got, &fd, &why), 0);
		assert_int_equal(spool_mark_rcpt(fd, got, 0, RCPT_SENT, "2.0.0",
				     "250 ok", true),
		    0);
		spool_env_free(&got);
		close(fd);
		assert_int_equal(spool_retire(sp, SPOOL_QUEUE, qid), 0);

		env_init(&env);
		assert_int_equal(spool_writer_create(sp, &w), 0);
		assert_true(w->reused);
		spool_writer_write(w, "x\r\n", 3);
		assert_int_equal(spool_writer_finish_uncut(w, &env), 0);
		assert_int_equal(fstat(w->fd, &st), 0);
		assert_true((uint64_t)st.st_size > env.file_size); /* not yet */
		if (round == 0)
			assert_int_equal(spool_writer_sync(w), 0);
		assert_int_equal(spool_writer_publish(w, SPOOL_QUEUE), 0);
		assert_int_equal(fstat(w->fd, &st), 0);
		assert_int_equal((uint64_t)st.st_size, env.file_size);
		memcpy(qid, w->qid, sizeof(qid));
		spool_writer_free(&w);
		free(env.rcpt[0].addr);
		free(env.rcpt);
		assert_int_equal(
		    spool_read(sp, SPOOL_QUEUE, qid, false, &got, NULL, &why),
		    0);
		assert_int_equal(got->rcpt[0].state, RCPT_PENDING);
		assert_int_equal(got->content_len, 3);
		spool_env_free(&got);
		assert_int_equal(spool_retire(sp, SPOOL_QUEUE, qid), 0);
	}
}

static ino_t
queue_ino(const char *qid)
{
	struct stat st;
	char *path = xasprintf("%s/queue/%s", tmpdir, qid);

	assert_int_equal(stat(path, &st), 0);
	free(path);
	return st.st_ino;
}

/* Each process gets back the files it made; others' when it has none. */
static void
spare_files_go_back_to_their_maker(void **state)
{
	struct spool *sp = *state, *other;
	char a[QID_LEN + 1], b[QID_LEN + 1], q[QID_LEN + 1];
	const char *why;
	ino_t ia, ib;

	assert_int_equal(spool_open(tmpdir, false, 5, &other, &why), 0);
	write_msg(sp, "Subject: a\r\n\r\n", a);
	write_msg(other, "Subject: b\r\n\r\n", b);
	ia = queue_ino(a);
	ib = queue_ino(b);
	assert_int_equal(spool_retire(sp, SPOOL_QUEUE, b), 0);
	assert_int_equal(spool_retire(sp, SPOOL_QUEUE, a), 0);
	/* other found spare/ empty: it looks again a millisecond later. */
	usleep(2000);
	write_msg(other, "Subject: c\r\n\r\n", q);
	assert_int_equal(queue_ino(q), ib);
	write_msg(sp, "Subject: d\r\n\r\n", q);
	assert_int_equal(queue_ino(q), ia);
	/* Only another's file left: taken all the same. */
	write_msg(sp, "Subject: e\r\n\r\n", a);
	ia = queue_ino(a);
	assert_int_equal(spool_retire(sp, SPOOL_QUEUE, a), 0);
	usleep(2000);
	write_msg(other, "Subject: f\r\n\r\n", q);
	assert_int_equal(queue_ino(q), ia);
	spool_close(&other);
}

/*
 * A process's count of spare/ misses what others took: when it says
 * full, spare/ is counted again before a file is unlinked.
 */
static void
spare_full_is_counted_again(void **state)
{
	struct spool *sp = *state;
	char qid[QID_LEN + 1];
	char *path;

	write_msg(sp, "Subject: a\r\n\r\n", qid);
	sp->spare_est = SPOOL_SPARE_MAX; /* others took what it put there */
	sp->spare_counted_us = 0;
	assert_int_equal(spool_retire(sp, SPOOL_QUEUE, qid), 0);
	path = xasprintf("%s/spare/%s", tmpdir, qid);
	assert_int_equal(access(path, F_OK), 0);
	free(path);
	assert_true(sp->spare_est < SPOOL_SPARE_MAX);

	/* Counted a moment ago: the estimate stands, the file goes. */
	write_msg(sp, "Subject: b\r\n\r\n", qid);
	sp->spare_est = SPOOL_SPARE_MAX;
	assert_int_equal(spool_retire(sp, SPOOL_QUEUE, qid), 0);
	path = xasprintf("%s/spare/%s", tmpdir, qid);
	assert_int_equal(access(path, F_OK), -1);
	free(path);
}

/*
 * Content written in pieces small and large (large ones bypass the
 * writer's buffer) comes back whole and in order, the header too.
 */
static void
pieces_small_and_large(void **state)
{
	struct spool *sp = *state;
	static const size_t sizes[] = { 13, 20000, 1, 8192, 8191, 65536, 70000,
		5, 65535, 3 };
	struct spool_writer *w;
	struct spool_env env, *back;
	char qid[QID_LEN + 1];
	unsigned char *content, *got;
	size_t total = 0, off = 0;
	const char *why;
	int fd;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		total += sizes[i];
	content = xmalloc(total);
	got = xmalloc(total);
	for (size_t i = 0; i < total; i++)
		content[i] = (unsigned char)(i * 7 + i / 251);
	memset(&env, 0, sizeof(env));
	env.stage = SPOOL_RECEIVED;
	env.sender = "sender@example.com";
	spool_env_add_rcpt(&env, "a@example.com", NULL, 0);
	assert_int_equal(spool_writer_create(sp, &w), 0);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		spool_writer_write(w, content + off, sizes[i]);
		off += sizes[i];
	}
	assert_int_equal(spool_writer_commit(w, &env), 0);
	memcpy(qid, w->qid, QID_LEN + 1);
	spool_writer_free(&w);
	free(env.rcpt[0].addr);
	free(env.rcpt);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, true, &back, &fd, &why), 0);
	assert_int_equal(back->content_len, total);
	assert_int_equal(spool_read_content(fd, back, 0, got, total), total);
	assert_memory_equal(got, content, total);
	spool_env_free(&back);
	close(fd);
	free(content);
	free(got);
}

/* The content flags in the header: dot lines and the last octet. */
static uint32_t
flags_of(struct spool *sp, const char *const *pieces)
{
	struct spool_writer *w;
	struct spool_env env, *back;
	char qid[QID_LEN + 1];
	const char *why;
	uint32_t flags;

	memset(&env, 0, sizeof(env));
	env.stage = SPOOL_RECEIVED;
	env.sender = "";
	spool_env_add_rcpt(&env, "a@example.com", NULL, 0);
	assert_int_equal(spool_writer_create(sp, &w), 0);
	for (; *pieces != NULL; pieces++)
		spool_writer_write(w, *pieces, strlen(*pieces));
	assert_int_equal(spool_writer_commit(w, &env), 0);
	memcpy(qid, w->qid, QID_LEN + 1);
	spool_writer_free(&w);
	assert_int_equal(env.content_flags & 3, env.content_flags);
	free(env.rcpt[0].addr);
	free(env.rcpt);
	assert_int_equal(
	    spool_read(sp, SPOOL_QUEUE, qid, false, &back, NULL, &why), 0);
	flags = back->content_flags;
	assert_int_equal(flags, env.content_flags);
	spool_env_free(&back);
	return flags;
}

static void
content_flags(void **state)
{
	struct spool *sp = *state;
	const uint32_t none = SPOOL_CONTENT_NO_DOT_LINE,
		       lf = SPOOL_CONTENT_ENDS_LF;

	assert_int_equal(
	    flags_of(sp, (const char *[]){ "a.b\r\n. c", NULL }), 0);
	assert_int_equal(
	    flags_of(sp, (const char *[]){ "a.b.\r\nc.\r\n", NULL }),
	    none | lf);
	assert_int_equal(flags_of(sp, (const char *[]){ ".a\r\n", NULL }), lf);
	/* A line that starts across two pieces. */
	assert_int_equal(
	    flags_of(sp, (const char *[]){ "a\r\n", ".\r\n", NULL }), lf);
	assert_int_equal(
	    flags_of(sp, (const char *[]){ "a.", "b\r\n", "c", NULL }), none);
	assert_int_equal(flags_of(sp, (const char *[]){ "", NULL }), none);
	/* The dot after the last LF of a large piece. */
	{
		char *big = xmalloc(20001);
		memset(big, 'x', 20000);
		big[19997] = '\n';
		big[19998] = '.';
		big[20000] = '\0';
		assert_int_equal(
		    flags_of(sp, (const char *[]){ big, NULL }), 0);
		big[19998] = 'y';
		big[19999] = '\n';
		assert_int_equal(
		    flags_of(sp, (const char *[]){ big, NULL }), none | lf);
		free(big);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    pieces_small_and_large, setup, teardown),
		cmocka_unit_test_setup_teardown(content_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    qids_ordered_unique, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    spare_files_go_back_to_their_maker, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    spare_full_is_counted_again, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    refuses_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    torn_tail_is_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    incoming_cleanup_and_moves, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    check_all_quarantines, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    spare_files_are_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    spare_file_cut_by_sync_or_publish, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
