/*
 * The spool: one file per message in queue_directory, the only copy of
 * mail in flight. A file is written in incoming/, made durable (fsync),
 * then renamed into queue/ and the directory synced; a file in queue/ or
 * hold/ is therefore always complete. Its layout (version 1):
 *
 *   header    64 bytes: magic "MAILSEAL", version, offsets, content
 *             flags (at 48; 0 in files of older writers), CRC
 *   content   the message as received, CRLF line ends, dot-unstuffed
 *   envelope  typed records (type, u32 length, bytes), ended by an 'E'
 *             record with the CRC-32 of the envelope
 *   tail      records appended later (type, length, bytes, CRC-32):
 *             recipient results, retry schedule, stage changes
 *
 * A reader refuses a file with a bad magic, an unknown version, an
 * unknown envelope record or a bad CRC; the caller moves it to corrupt/.
 * A torn tail record (a crash while appending) is ignored and cut off at
 * the next append: its effect is lost, never invented.
 */
#ifndef MAILSEAL_SPOOL_H
#define MAILSEAL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QID_LEN 12
#define SPOOL_VERSION 1
#define SPOOL_HEADER_SIZE 64

/*
 * Content flags in the header, set by the writer from what it was given.
 * No flag is also right: a reader that needs to know looks itself.
 */
#define SPOOL_CONTENT_NO_DOT_LINE 0x1 /* no line starts with '.' */
#define SPOOL_CONTENT_ENDS_LF 0x2 /* the last octet is LF */

enum spool_dir {
	SPOOL_INCOMING,
	SPOOL_QUEUE,
	SPOOL_HOLD,
	SPOOL_CORRUPT,
	SPOOL_SPARE, /* files of removed messages, reused for new ones */
	SPOOL__NDIRS
};

/*
 * At most this many files wait in spare/, none larger than this: enough
 * for the files of a burst (20 sessions of 100 KB mail to sign and encrypt
 * kept up to 206 files in incoming/ and queue/), so that its end does not
 * unlink most of them and the next burst make them anew.
 */
#define SPOOL_SPARE_MAX 512
#define SPOOL_SPARE_SIZE (256 * 1024)

enum spool_stage {
	SPOOL_RECEIVED = 1, /* waits for the engine */
	SPOOL_FILTERED = 2, /* waits for delivery */
};

enum rcpt_state {
	RCPT_PENDING = 0,
	RCPT_SENT = 1,
	RCPT_BOUNCED = 2,
	RCPT_DROPPED = 3, /* handled otherwise: split into another message */
};

/* Envelope flags. */
#define SPOOL_F_BOUNCE 0x01 /* a delivery status notification */
#define SPOOL_F_8BIT 0x02 /* BODY=8BITMIME */
#define SPOOL_F_TEST 0x04 /* injected by the send-test tool */
/*
 * Written by the filter from its parent (env.parent). The filter removes
 * the parent only after every output is durable, so an output whose
 * parent is still queued is the trace of an interrupted transform: the
 * queue manager removes it at start, and never delivers it.
 */
#define SPOOL_F_OUTPUT 0x08

struct spool_rcpt {
	char *addr;
	char *orcpt; /* the original recipient, or NULL */
	uint32_t flags;
	int state; /* enum rcpt_state */
	char *dsn; /* the last enhanced status code, or NULL */
	char *reason; /* the last result text, or NULL */
	uint64_t done_us;
};

struct spool_env {
	char qid[QID_LEN + 1];
	char parent[QID_LEN + 1]; /* the message this one was made from */
	int stage;
	uint32_t flags;
	uint64_t arrival_us;
	char *sender;
	char *client_name, *client_addr, *helo, *proto;
	struct spool_rcpt *rcpt;
	size_t nrcpt;
	/* Filled in by the reader. */
	uint64_t content_off, content_len;
	uint32_t content_flags; /* SPOOL_CONTENT_* */
	uint32_t attempts;
	uint64_t next_try_us;
	bool warned;
	uint64_t file_size, tail_end;
};

struct spool {
	char *path;
	int dfd[SPOOL__NDIRS];
	int slot; /* distinguishes processes in queue IDs */
	uint64_t last_us;
	/* spare/: names last listed, and what this process believes is
	 * there (other processes take files too) */
	char (*spare)[QID_LEN + 1];
	size_t nspare;
	size_t spare_est;
	uint64_t spare_counted_us; /* when a full spare_est was last checked */
	uint64_t spare_empty_us; /* when spare/ was last found empty */
};

struct spool_writer {
	struct spool *sp;
	int fd;
	char qid[QID_LEN + 1];
	uint64_t content_len;
	bool dot_line; /* a line of the content starts with '.' */
	unsigned char last; /* the last octet of the content so far */
	bool reused; /* a spare file: cut to its new size before it is read */
	uint64_t cut_to; /* that size, while the cut is still to be made */
	bool in_place; /* adopted in queue/: publishing leaves it there */
	int error; /* errno of the first failure, 0 if none */
	size_t buflen;
	unsigned char buf[65536];
};

extern const char *const spool_dir_names[SPOOL__NDIRS];

/*
 * Opens queue_directory and its subdirectories (creating them when asked).
 * slot (0..31) is the process's share of the queue ID space.
 */
int spool_open(const char *path, bool create, int slot, struct spool **sp_r,
    const char **error_r);
void spool_close(struct spool **);

/* A new queue ID: unique, 12 characters, ordered by time of creation. */
void spool_new_qid(struct spool *, char qid[QID_LEN + 1]);
/* Whether text looks like a queue ID. */
bool spool_qid_valid(const char *);
/* The arrival time encoded in a queue ID, in microseconds. */
uint64_t spool_qid_time(const char *);

/* Writing a message. */
int spool_writer_create(struct spool *, struct spool_writer **w_r);
void spool_writer_write(struct spool_writer *, const void *, size_t);
/* Writes the envelope and header; the file is not yet durable. */
int spool_writer_finish(struct spool_writer *, struct spool_env *);
/*
 * The same, but a spare file's old octets past the new end are cut off
 * later, by spool_writer_sync() (or spool_writer_cut()): with the
 * committer, off the event loop. Shrinking a file frees blocks, which on
 * a file system mounted with "discard" waits for the device (0.1 to
 * 0.3 ms measured). Nothing may read the file before the cut: its old
 * tail records would be read as the new message's.
 */
int spool_writer_finish_uncut(struct spool_writer *, struct spool_env *);
void spool_writer_cut(struct spool_writer *);
/*
 * Cuts (if still to be done) and fsyncs the file. Thread-safe: the
 * committer calls it off the loop.
 */
int spool_writer_sync(struct spool_writer *);
/* Moves a synced file from incoming/ into queue/ (the commit point). */
int spool_writer_publish(struct spool_writer *, enum spool_dir to);
/* finish + sync + publish + sync of the directory, for one message. */
int spool_writer_commit(struct spool_writer *, struct spool_env *);
/* Closes; an unpublished file is removed. */
void spool_writer_free(struct spool_writer **);
/*
 * Removes a message's file. Up to SPOOL_SPARE_MAX files of at most
 * SPOOL_SPARE_SIZE bytes (128 MB of disk at most) are moved to spare/
 * instead, and spool_writer_create() writes new messages into them: no
 * inode is allocated or freed per message, which costs more than the
 * message itself on some file systems (ext4 without a journal scans
 * every recently freed inode). Only the mail_owner reads the spool, old
 * contents included.
 */
int spool_retire(struct spool *, enum spool_dir, const char *qid);
/* Closes and leaves the file in incoming/ to another process. */
void spool_writer_release(struct spool_writer **);
/*
 * Takes over queue/qid, written but not yet synced (a volatile output of
 * the engines), for committer_submit(): it is synced where it is.
 */
int spool_writer_adopt(
    struct spool *, const char *qid, struct spool_writer **w_r);

/* Reading. fd is opened O_RDWR when writable (tail appends). */
int spool_read(struct spool *, enum spool_dir, const char *qid, bool writable,
    struct spool_env **env_r, int *fd_r, const char **error_r);
int spool_read_fd(int fd, struct spool_env **env_r, const char **error_r);
void spool_env_free(struct spool_env **);
/* Reads up to len bytes of content at off; returns bytes or -1. */
long spool_read_content(
    int fd, const struct spool_env *, uint64_t off, void *, size_t len);

/* Tail records. sync forces them to disk before returning. */
int spool_mark_rcpt(int fd, struct spool_env *, size_t idx, int state,
    const char *dsn, const char *reason, bool sync);
int spool_mark_defer(int fd, struct spool_env *, size_t idx, const char *dsn,
    const char *reason);
int spool_mark_schedule(
    int fd, struct spool_env *, uint32_t attempts, uint64_t next_try_us);
int spool_mark_stage(int fd, struct spool_env *, int stage, bool sync);
int spool_mark_warned(int fd, struct spool_env *);
/* Whether any recipient is still pending. */
bool spool_env_pending(const struct spool_env *);

/* Moves a message between directories, durably. */
int spool_move(
    struct spool *, const char *qid, enum spool_dir from, enum spool_dir to);
int spool_remove(struct spool *, enum spool_dir, const char *qid);
/*
 * Moves a message that failed its checks to corrupt/, with a log line.
 * It is kept for the administrator, never retried and never deleted.
 */
int spool_quarantine(
    struct spool *, enum spool_dir, const char *qid, const char *why);
/*
 * Checks every message in queue/ and hold/ at start: a file that a
 * reader refuses goes to corrupt/. Returns the number moved.
 */
int spool_check_all(struct spool *);
/* Calls cb for each queue ID in a directory, in queue ID order. */
int spool_scan(struct spool *, enum spool_dir,
    void (*cb)(const char *qid, void *), void *);
/* Removes what a crash left in incoming/. Returns the count. */
int spool_clean_incoming(struct spool *);

/* The sizes in the envelope encoding, for tests. */
void spool_env_add_rcpt(
    struct spool_env *, const char *addr, const char *orcpt, uint32_t flags);

#endif
