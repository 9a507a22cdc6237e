/*
 * The SQLite backend: one file, WAL mode so that readers (engines, the
 * dispatcher) never wait for a writer (the admin, mailsealctl), a busy
 * timeout for writers that meet, and a schema that migrations bring up to
 * date at open. Every table but the bookkeeping ones has triggers that
 * increase the generation row, so that no write can forget to.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/log.h"
#include "common/util.h"
#include "store/store_backend.h"

/* Writers wait this long for each other before giving up. */
#define SQ_BUSY_TIMEOUT_MS 30000

struct sq {
	sqlite3 *db;
	int version;
	sqlite3_stmt *data_version;
	int64_t last_dv, last_changes;
	uint64_t gen;
	bool gen_valid;
};

#define SQ(st) ((struct sq *)(st)->impl)

#define GEN_TRIGGERS(t)                                                        \
	"CREATE TRIGGER " t "_gen_insert AFTER INSERT ON " t                   \
	" BEGIN UPDATE generation SET value = value + 1; END;\n"               \
	"CREATE TRIGGER " t "_gen_update AFTER UPDATE ON " t                   \
	" BEGIN UPDATE generation SET value = value + 1; END;\n"               \
	"CREATE TRIGGER " t "_gen_delete AFTER DELETE ON " t                   \
	" BEGIN UPDATE generation SET value = value + 1; END;\n"

/*
 * The migrations, in order: migrations[i] brings the schema from
 * version i to i + 1. A released migration is never edited; a change is
 * a new entry at the end.
 */
/* clang-format off */
static const char *const migrations[] = {
	/* 1: the first schema. */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
	"CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 1),"
	" value INTEGER NOT NULL);\n"
	"INSERT INTO generation VALUES (1, 1);\n"
	"CREATE TABLE domains (name TEXT PRIMARY KEY,"
	" created INTEGER NOT NULL);\n"
	"CREATE TABLE users (email TEXT PRIMARY KEY,"
	" created INTEGER NOT NULL);\n"
	"CREATE TABLE global_properties (name TEXT PRIMARY KEY,"
	" value TEXT NOT NULL);\n"
	"CREATE TABLE domain_properties ("
	" domain TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,"
	" name TEXT NOT NULL, value TEXT NOT NULL,"
	" PRIMARY KEY (domain, name));\n"
	"CREATE TABLE user_properties ("
	" email TEXT NOT NULL REFERENCES users (email) ON DELETE CASCADE,"
	" name TEXT NOT NULL, value TEXT NOT NULL,"
	" PRIMARY KEY (email, name));\n"
	"CREATE TABLE certificates ("
	" fingerprint TEXT PRIMARY KEY,"
	" kind TEXT NOT NULL CHECK (kind IN ('end', 'intermediate', 'root')),"
	" der BLOB NOT NULL,"
	" subject TEXT NOT NULL, issuer TEXT NOT NULL, serial TEXT NOT NULL,"
	" subject_hash TEXT NOT NULL, issuer_hash TEXT NOT NULL,"
	" spki_sha256 TEXT NOT NULL,"
	" not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
	" key_usage INTEGER NOT NULL, ext_key_usage INTEGER NOT NULL,"
	" is_ca INTEGER NOT NULL, created INTEGER NOT NULL);\n"
	"CREATE INDEX certificates_kind ON certificates (kind);\n"
	"CREATE INDEX certificates_subject ON certificates (subject_hash);\n"
	"CREATE INDEX certificates_spki ON certificates (spki_sha256);\n"
	"CREATE TABLE certificate_emails ("
	" fingerprint TEXT NOT NULL"
	"  REFERENCES certificates (fingerprint) ON DELETE CASCADE,"
	" email TEXT NOT NULL, PRIMARY KEY (fingerprint, email));\n"
	"CREATE INDEX certificate_emails_email ON certificate_emails (email);\n"
	"CREATE TABLE private_keys ("
	" fingerprint TEXT PRIMARY KEY"
	"  REFERENCES certificates (fingerprint) ON DELETE CASCADE,"
	" blob BLOB NOT NULL, created INTEGER NOT NULL);\n"
	"CREATE TABLE bindings ("
	" fingerprint TEXT NOT NULL"
	"  REFERENCES certificates (fingerprint) ON DELETE CASCADE,"
	" target TEXT NOT NULL, created INTEGER NOT NULL,"
	" PRIMARY KEY (fingerprint, target));\n"
	"CREATE INDEX bindings_target ON bindings (target);\n"
	"CREATE TABLE crls (fingerprint TEXT PRIMARY KEY,"
	" issuer TEXT NOT NULL, issuer_hash TEXT NOT NULL, number TEXT,"
	" this_update INTEGER NOT NULL, next_update INTEGER NOT NULL,"
	" der BLOB NOT NULL, created INTEGER NOT NULL);\n"
	"CREATE INDEX crls_issuer ON crls (issuer_hash);\n"
	"CREATE TABLE ctl (fingerprint TEXT PRIMARY KEY,"
	" status TEXT NOT NULL CHECK (status IN ('whitelisted', "
	"'blacklisted')),"
	" created INTEGER NOT NULL);\n"
	"CREATE TABLE admins (name TEXT PRIMARY KEY,"
	" password_hash TEXT NOT NULL, created INTEGER NOT NULL);\n"
	GEN_TRIGGERS("domains")
	GEN_TRIGGERS("users")
	GEN_TRIGGERS("global_properties")
	GEN_TRIGGERS("domain_properties")
	GEN_TRIGGERS("user_properties")
	GEN_TRIGGERS("certificates")
	GEN_TRIGGERS("certificate_emails")
	GEN_TRIGGERS("private_keys")
	GEN_TRIGGERS("bindings")
	GEN_TRIGGERS("crls")
	GEN_TRIGGERS("ctl")
	GEN_TRIGGERS("admins"),
};
/* clang-format on */

#define SQ_VERSION ((int)nitems(migrations))

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

static int
sq_fail(struct store *st, const char *what, const char **error_r)
{
	return store_error(error_r, "store %s: %s: %s", st->path, what,
	    sqlite3_errmsg(SQ(st)->db));
}

/*
 * Binds by a format: 's' text (NULL binds NULL), 'i' int64_t, 'b' a blob
 * (pointer, then size_t).
 */
static int
sq_bindv(sqlite3_stmt *stmt, const char *fmt, va_list ap)
{
	int rc = SQLITE_OK;

	for (int i = 1; *fmt != '\0' && rc == SQLITE_OK; fmt++, i++) {
		switch (*fmt) {
		case 's':
			rc = sqlite3_bind_text(stmt, i,
			    va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
			break;
		case 'i':
			rc = sqlite3_bind_int64(stmt, i, va_arg(ap, int64_t));
			break;
		case 'b': {
			const void *p = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);
			rc = sqlite3_bind_blob64(
			    stmt, i, p, n, SQLITE_TRANSIENT);
			break;
		}
		default:
			msg_panic("sq_bindv: bad format '%c'", *fmt);
		}
	}
	return rc;
}

/* Prepares and binds a statement; NULL with a reason. */
static sqlite3_stmt *
sq_prep(struct store *st, const char **error_r, const char *sql,
    const char *fmt, ...)
{
	sqlite3_stmt *stmt;
	va_list ap;
	int rc;

	if (sqlite3_prepare_v2(SQ(st)->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		sq_fail(st, "prepare", error_r);
		return NULL;
	}
	va_start(ap, fmt);
	rc = sq_bindv(stmt, fmt, ap);
	va_end(ap);
	if (rc != SQLITE_OK) {
		sq_fail(st, "bind", error_r);
		sqlite3_finalize(stmt);
		return NULL;
	}
	return stmt;
}

/*
 * Runs a statement that returns no rows. Returns the number of rows it
 * changed, or -1; *code_r gets SQLite's extended result code.
 */
static int
sq_exec(struct store *st, int *code_r, const char **error_r, const char *sql,
    const char *fmt, ...)
{
	sqlite3_stmt *stmt;
	va_list ap;
	int rc, code;

	if (code_r != NULL)
		*code_r = SQLITE_ERROR;
	if (sqlite3_prepare_v2(SQ(st)->db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return sq_fail(st, "prepare", error_r);
	va_start(ap, fmt);
	rc = sq_bindv(stmt, fmt, ap);
	va_end(ap);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
			;
	}
	code = sqlite3_extended_errcode(SQ(st)->db);
	if (code_r != NULL)
		*code_r = rc == SQLITE_DONE ? SQLITE_OK : code;
	if (rc != SQLITE_DONE) {
		sq_fail(st, "write", error_r);
		sqlite3_finalize(stmt);
		return -1;
	}
	sqlite3_finalize(stmt);
	return sqlite3_changes(SQ(st)->db);
}

/* The end of a row loop: finalizes; -1 unless the loop reached DONE. */
static int
sq_done(struct store *st, sqlite3_stmt *stmt, int rc, const char **error_r)
{
	if (rc != SQLITE_DONE) {
		sq_fail(st, "read", error_r);
		sqlite3_finalize(stmt);
		return -1;
	}
	sqlite3_finalize(stmt);
	return 0;
}

static char *
col_str(sqlite3_stmt *stmt, int i)
{
	const unsigned char *s = sqlite3_column_text(stmt, i);

	return s != NULL ? xstrdup((const char *)s) : NULL;
}

static void
col_copy(sqlite3_stmt *stmt, int i, char *buf, size_t size)
{
	const unsigned char *s = sqlite3_column_text(stmt, i);

	strlcpy_ms(buf, s != NULL ? (const char *)s : "", size);
}

static unsigned char *
col_blob(sqlite3_stmt *stmt, int i, size_t *len_r)
{
	const void *p = sqlite3_column_blob(stmt, i);
	int n = sqlite3_column_bytes(stmt, i);
	unsigned char *b;

	*len_r = 0;
	if (p == NULL || n <= 0)
		return NULL;
	b = xmalloc((size_t)n);
	memcpy(b, p, (size_t)n);
	*len_r = (size_t)n;
	return b;
}

/*
 * Savepoints make one operation of several statements atomic, inside or
 * outside a caller's transaction.
 */
static int
sq_savepoint(struct store *st, const char **error_r)
{
	if (sqlite3_exec(SQ(st)->db, "SAVEPOINT op", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return sq_fail(st, "savepoint", error_r);
	return 0;
}

static int
sq_release(struct store *st, int rc, const char **error_r)
{
	sqlite3 *db = SQ(st)->db;

	if (rc == 0) {
		if (sqlite3_exec(db, "RELEASE op", NULL, NULL, NULL) ==
		    SQLITE_OK)
			return 0;
		sq_fail(st, "commit", error_r);
	}
	(void)sqlite3_exec(db, "ROLLBACK TO op", NULL, NULL, NULL);
	(void)sqlite3_exec(db, "RELEASE op", NULL, NULL, NULL);
	return -1;
}

/* Opening and migrations. */

static int
sq_read_version(struct store *st, int *version_r)
{
	sqlite3_stmt *stmt;
	int rc;

	*version_r = 0;
	if (sqlite3_prepare_v2(SQ(st)->db,
		"SELECT coalesce(max(version), 0) FROM schema_version", -1,
		&stmt, NULL) != SQLITE_OK)
		return -1; /* no table yet */
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*version_r = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int
sq_migrate(struct store *st, const char **error_r)
{
	struct sq *q = SQ(st);
	int version;
	char *err = NULL;

	/* The common case reads only, and takes no write lock. */
	if (sq_read_version(st, &version) == 0 && version == SQ_VERSION) {
		q->version = version;
		return 0;
	}
	if (sqlite3_exec(q->db,
		"BEGIN IMMEDIATE;"
		"CREATE TABLE IF NOT EXISTS schema_version ("
		" version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
		NULL, NULL, NULL) != SQLITE_OK)
		return sq_fail(st, "begin migration", error_r);
	/* Another process may have migrated while we waited for the lock. */
	if (sq_read_version(st, &version) == -1) {
		sq_fail(st, "schema_version", error_r);
		goto fail;
	}
	if (version > SQ_VERSION) {
		store_error(error_r,
		    "store %s: schema version %d is newer than this program's "
		    "(%d): upgrade mailseal",
		    st->path, version, SQ_VERSION);
		goto fail;
	}
	for (int v = version; v < SQ_VERSION; v++) {
		if (sqlite3_exec(q->db, migrations[v], NULL, NULL, &err) !=
		    SQLITE_OK) {
			store_error(error_r,
			    "store %s: migration to version "
			    "%d: %s",
			    st->path, v + 1, err != NULL ? err : "failed");
			sqlite3_free(err);
			goto fail;
		}
		if (sq_exec(st, NULL, error_r,
			"INSERT INTO schema_version VALUES (?, ?)", "ii",
			(int64_t)(v + 1), now_s()) == -1)
			goto fail;
	}
	if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sq_fail(st, "commit migration", error_r);
		goto fail;
	}
	q->version = SQ_VERSION;
	return 0;
fail:
	(void)sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int
sq_pragmas(struct store *st, const char **error_r)
{
	static const char *const pragmas[] = {
		/* Readers do not block the writer, nor it them. */
		"PRAGMA journal_mode = WAL",
		/* A commit is on disk when it returns: keys, policy. */
		"PRAGMA synchronous = FULL",
		"PRAGMA foreign_keys = ON",
		/* Deleted rows are overwritten, not left in free pages. */
		"PRAGMA secure_delete = ON",
	};

	struct timespec ts = { 0, 10000000 };
	int rc;

	for (size_t i = 0; i < nitems(pragmas); i++) {
		/*
		 * Switching a new file to WAL while another process does the
		 * same answers BUSY at once, without the busy handler (the
		 * engines, the admin and the dispatcher open the store
		 * together at the first start): try again for a while.
		 */
		for (int tries = 0;; tries++) {
			rc = sqlite3_exec(
			    SQ(st)->db, pragmas[i], NULL, NULL, NULL);
			if ((rc & 0xff) != SQLITE_BUSY ||
			    tries >= SQ_BUSY_TIMEOUT_MS / 10)
				break;
			nanosleep(&ts, NULL);
		}
		if (rc != SQLITE_OK)
			return sq_fail(st, pragmas[i], error_r);
	}
	return 0;
}

static int
sq_open(struct store *st, const char *location, int flags, const char **error_r)
{
	struct sq *q;
	int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

	if (location[0] != '/')
		return store_error(error_r,
		    "store sqlite:%s: the path must "
		    "be absolute",
		    location);
	st->path = xstrdup(location);
	if (flags & STORE_CREATE) {
		/* Made here so that it is never readable by others. */
		int fd = open(location, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd == -1)
			return store_error(error_r,
			    "cannot create store %s: %s", location,
			    strerror(errno));
		close(fd);
	} else if (access(location, F_OK) == -1)
		return store_error(
		    error_r, "store %s: %s", location, strerror(errno));
	q = xcalloc(1, sizeof(*q));
	st->impl = q;
	if (sqlite3_open_v2(location, &q->db, oflags, NULL) != SQLITE_OK) {
		store_error(error_r, "cannot open store %s: %s", location,
		    q->db != NULL ? sqlite3_errmsg(q->db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_busy_timeout(q->db, SQ_BUSY_TIMEOUT_MS);
	if (sq_pragmas(st, error_r) == -1 || sq_migrate(st, error_r) == -1)
		goto fail;
	if (sqlite3_prepare_v3(q->db, "PRAGMA data_version", -1,
		SQLITE_PREPARE_PERSISTENT, &q->data_version,
		NULL) != SQLITE_OK) {
		sq_fail(st, "data_version", error_r);
		goto fail;
	}
	return 0;
fail:
	sqlite3_close_v2(q->db);
	free(q);
	st->impl = NULL;
	return -1;
}

static void
sq_close(struct store *st)
{
	struct sq *q = SQ(st);

	if (q == NULL)
		return;
	sqlite3_finalize(q->data_version);
	sqlite3_close_v2(q->db);
	free(q);
	st->impl = NULL;
}

static int
sq_schema_version(struct store *st)
{
	return SQ(st)->version;
}

/*
 * The generation row is read again only when this connection wrote
 * (total_changes moved) or another committed (data_version moved): both
 * come from memory, so the usual call costs no I/O.
 */
static int
sq_generation(struct store *st, uint64_t *gen_r)
{
	struct sq *q = SQ(st);
	sqlite3_stmt *stmt;
	int64_t dv, changes;
	int rc;

	if (sqlite3_step(q->data_version) != SQLITE_ROW) {
		sqlite3_reset(q->data_version);
		return -1;
	}
	dv = sqlite3_column_int64(q->data_version, 0);
	sqlite3_reset(q->data_version);
	changes = sqlite3_total_changes64(q->db);
	if (!q->gen_valid || dv != q->last_dv || changes != q->last_changes) {
		if (sqlite3_prepare_v2(q->db,
			"SELECT value FROM generation WHERE id = 1", -1, &stmt,
			NULL) != SQLITE_OK)
			return -1;
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_ROW)
			q->gen = (uint64_t)sqlite3_column_int64(stmt, 0);
		sqlite3_finalize(stmt);
		if (rc != SQLITE_ROW)
			return -1;
		q->gen_valid = true;
		q->last_dv = dv;
		q->last_changes = changes;
	}
	*gen_r = q->gen;
	return 0;
}

static int
sq_begin(struct store *st, const char **error_r)
{
	/* IMMEDIATE: take the write lock now, never fail at the upgrade. */
	if (sqlite3_exec(SQ(st)->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return sq_fail(st, "begin", error_r);
	return 0;
}

static int
sq_commit(struct store *st, const char **error_r)
{
	if (sqlite3_exec(SQ(st)->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return sq_fail(st, "commit", error_r);
	return 0;
}

static void
sq_rollback(struct store *st)
{
	(void)sqlite3_exec(SQ(st)->db, "ROLLBACK", NULL, NULL, NULL);
}

static int
sq_meta_get(
    struct store *st, const char *key, char **value_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	*value_r = NULL;
	if ((stmt = sq_prep(st, error_r, "SELECT value FROM meta WHERE key = ?",
		 "s", key)) == NULL)
		return -1;
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		*value_r = col_str(stmt, 0);
		rc = sqlite3_step(stmt);
	}
	return sq_done(st, stmt, rc, error_r);
}

static int
sq_meta_set(
    struct store *st, const char *key, const char *value, const char **error_r)
{
	return sq_exec(st, NULL, error_r,
		   "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT "
		   "(key) DO UPDATE SET value = excluded.value",
		   "ss", key, value) == -1
	    ? -1
	    : 0;
}

/* Domains and users: the same operations on two tables. */

struct level_sql {
	const char *what;
	const char *add, *del, *exists, *list, *search;
	const char *props_get, *prop_set, *prop_unset;
};

static const struct level_sql level_sql[] = {
	[STORE_GLOBAL] = {
	    .what = "global",
	    .props_get = "SELECT name, value FROM global_properties "
			 "WHERE ? IS NOT NULL ORDER BY name",
	    /* ?1, the owner, is bound but unused at this level. */
	    .prop_set = "INSERT INTO global_properties (name, value) "
			"VALUES (?2, ?3) ON CONFLICT (name) DO UPDATE SET "
			"value = excluded.value",
	    .prop_unset = "DELETE FROM global_properties WHERE name = ?2",
	},
	[STORE_DOMAIN] = {
	    .what = "domain",
	    .add = "INSERT INTO domains (name, created) VALUES (?, ?)",
	    .del = "DELETE FROM domains WHERE name = ?",
	    .exists = "SELECT 1 FROM domains WHERE name = ?",
	    .list = "SELECT name FROM domains ORDER BY name",
	    .props_get = "SELECT name, value FROM domain_properties "
			 "WHERE domain = ? ORDER BY name",
	    .prop_set = "INSERT INTO domain_properties (domain, name, value) "
			"VALUES (?1, ?2, ?3) ON CONFLICT (domain, name) DO "
			"UPDATE SET value = excluded.value",
	    .prop_unset = "DELETE FROM domain_properties WHERE domain = ?1 "
			  "AND name = ?2",
	},
	[STORE_USER] = {
	    .what = "user",
	    .add = "INSERT INTO users (email, created) VALUES (?, ?)",
	    .del = "DELETE FROM users WHERE email = ?",
	    .exists = "SELECT 1 FROM users WHERE email = ?",
	    .list = "SELECT email FROM users ORDER BY email",
	    .search = "SELECT email FROM users WHERE instr(email, ?) > 0 "
		      "ORDER BY email",
	    .props_get = "SELECT name, value FROM user_properties "
			 "WHERE email = ? ORDER BY name",
	    .prop_set = "INSERT INTO user_properties (email, name, value) "
			"VALUES (?1, ?2, ?3) ON CONFLICT (email, name) DO "
			"UPDATE SET value = excluded.value",
	    .prop_unset = "DELETE FROM user_properties WHERE email = ?1 "
			  "AND name = ?2",
	},
};

static int
sq_name_add(struct store *st, enum store_level level, const char *name,
    const char **error_r)
{
	const struct level_sql *l = &level_sql[level];
	int code;

	if (sq_exec(st, &code, error_r, l->add, "si", name, now_s()) == -1) {
		if ((code & 0xff) == SQLITE_CONSTRAINT)
			return store_error(
			    error_r, "%s %s already exists", l->what, name);
		return -1;
	}
	return 0;
}

static int
sq_name_delete(struct store *st, enum store_level level, const char *name,
    const char **error_r)
{
	const struct level_sql *l = &level_sql[level];
	int n;

	if ((n = sq_exec(st, NULL, error_r, l->del, "s", name)) == -1)
		return -1;
	if (n == 0)
		return store_error(error_r, "no such %s: %s", l->what, name);
	return 0;
}

static int
sq_name_exists(struct store *st, enum store_level level, const char *name,
    bool *exists_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	*exists_r = false;
	if ((stmt = sq_prep(st, error_r, level_sql[level].exists, "s", name)) ==
	    NULL)
		return -1;
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		*exists_r = true;
		rc = sqlite3_step(stmt);
	}
	return sq_done(st, stmt, rc, error_r);
}

static int
sq_name_list(struct store *st, enum store_level level, const char *search,
    struct strlist *out, const char **error_r)
{
	const struct level_sql *l = &level_sql[level];
	sqlite3_stmt *stmt;
	int rc;

	if (search != NULL && l->search != NULL)
		stmt = sq_prep(st, error_r, l->search, "s", search);
	else
		stmt = sq_prep(st, error_r, l->list, "");
	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		strlist_add(out, (const char *)sqlite3_column_text(stmt, 0));
	return sq_done(st, stmt, rc, error_r);
}

/* Properties. The global level binds a dummy owner (the empty string). */

static int
sq_props_get(struct store *st, enum store_level level, const char *owner,
    struct store_props *out, const char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if ((stmt = sq_prep(
		 st, error_r, level_sql[level].props_get, "s", owner)) == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
		out->v[out->n].name = col_str(stmt, 0);
		out->v[out->n].value = col_str(stmt, 1);
		out->n++;
	}
	return sq_done(st, stmt, rc, error_r);
}

static int
sq_prop_set(struct store *st, enum store_level level, const char *owner,
    const char *name, const char *value, const char **error_r)
{
	const struct level_sql *l = &level_sql[level];
	int code;

	if (sq_exec(st, &code, error_r, l->prop_set, "sss", owner, name,
		value) == -1) {
		if (code == SQLITE_CONSTRAINT_FOREIGNKEY)
			return store_error(
			    error_r, "no such %s: %s", l->what, owner);
		return -1;
	}
	return 0;
}

static int
sq_prop_unset(struct store *st, enum store_level level, const char *owner,
    const char *name, const char **error_r)
{
	bool exists = true;
	int n;

	n = sq_exec(
	    st, NULL, error_r, level_sql[level].prop_unset, "ss", owner, name);
	if (n == -1)
		return -1;
	if (n == 0 && level != STORE_GLOBAL &&
	    sq_name_exists(st, level, owner, &exists, error_r) == -1)
		return -1;
	if (!exists)
		return store_error(
		    error_r, "no such %s: %s", level_sql[level].what, owner);
	return 0;
}

/* Certificates. */

static const char *const kind_names[] = {
	[STORE_CERT_END] = "end",
	[STORE_CERT_INTERMEDIATE] = "intermediate",
	[STORE_CERT_ROOT] = "root",
};

static int
kind_from_name(const char *s)
{
	for (size_t i = 0; i < nitems(kind_names); i++)
		if (s != NULL && strcmp(s, kind_names[i]) == 0)
			return (int)i;
	return STORE_CERT_END;
}

static int
sq_cert_insert(struct store *st, const struct store_cert *c, bool *added_r,
    const char **error_r)
{
	int n;

	n = sq_exec(st, NULL, error_r,
	    "INSERT INTO certificates (fingerprint, kind, der, subject, "
	    "issuer, serial, subject_hash, issuer_hash, spki_sha256, "
	    "not_before, not_after, key_usage, ext_key_usage, is_ca, created) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
	    "ON CONFLICT (fingerprint) DO NOTHING",
	    "ssbssssssiiiiii", c->fpr, kind_names[c->kind], c->der, c->der_len,
	    c->subject, c->issuer, c->serial, c->subject_hash, c->issuer_hash,
	    c->spki_sha256, c->not_before, c->not_after, (int64_t)c->key_usage,
	    (int64_t)c->ext_key_usage, (int64_t)c->is_ca, now_s());
	if (n == -1)
		return -1;
	*added_r = n == 1;
	if (!*added_r) {
		if (c->kind == STORE_CERT_ROOT &&
		    sq_exec(st, NULL, error_r,
			"UPDATE certificates SET kind = 'root' WHERE "
			"fingerprint = ? AND kind != 'root'",
			"s", c->fpr) == -1)
			return -1;
		return 0;
	}
	for (size_t i = 0; i < c->emails.n; i++)
		if (sq_exec(st, NULL, error_r,
			"INSERT OR IGNORE INTO certificate_emails "
			"(fingerprint, email) VALUES (?, ?)",
			"ss", c->fpr, c->emails.v[i]) == -1)
			return -1;
	return 0;
}

static int
sq_cert_put(struct store *st, const struct store_cert *c, bool *added_r,
    const char **error_r)
{
	bool added = false;

	if (sq_savepoint(st, error_r) == -1)
		return -1;
	if (sq_release(st, sq_cert_insert(st, c, &added, error_r), error_r) ==
	    -1)
		return -1;
	if (added_r != NULL)
		*added_r = added;
	return 0;
}

#define CERT_COLUMNS                                                           \
	"c.fingerprint, c.kind, c.subject, c.issuer, c.serial, "               \
	"c.subject_hash, c.issuer_hash, c.spki_sha256, c.not_before, "         \
	"c.not_after, c.key_usage, c.ext_key_usage, c.is_ca, c.created, "      \
	"EXISTS (SELECT 1 FROM private_keys k WHERE k.fingerprint = "          \
	"c.fingerprint), "                                                     \
	"(SELECT group_concat(email, ' ') FROM (SELECT email FROM "            \
	"certificate_emails e WHERE e.fingerprint = c.fingerprint ORDER BY "   \
	"email)), "

static void
cert_from_row(sqlite3_stmt *stmt, struct store_cert *c)
{
	memset(c, 0, sizeof(*c));
	col_copy(stmt, 0, c->fpr, sizeof(c->fpr));
	c->kind = kind_from_name((const char *)sqlite3_column_text(stmt, 1));
	c->subject = col_str(stmt, 2);
	c->issuer = col_str(stmt, 3);
	c->serial = col_str(stmt, 4);
	col_copy(stmt, 5, c->subject_hash, sizeof(c->subject_hash));
	col_copy(stmt, 6, c->issuer_hash, sizeof(c->issuer_hash));
	col_copy(stmt, 7, c->spki_sha256, sizeof(c->spki_sha256));
	c->not_before = sqlite3_column_int64(stmt, 8);
	c->not_after = sqlite3_column_int64(stmt, 9);
	c->key_usage = (uint32_t)sqlite3_column_int64(stmt, 10);
	c->ext_key_usage = (uint32_t)sqlite3_column_int64(stmt, 11);
	c->is_ca = sqlite3_column_int(stmt, 12) != 0;
	c->created = sqlite3_column_int64(stmt, 13);
	c->has_key = sqlite3_column_int(stmt, 14) != 0;
	if (sqlite3_column_text(stmt, 15) != NULL)
		strlist_split(
		    &c->emails, (const char *)sqlite3_column_text(stmt, 15));
	c->der = col_blob(stmt, 16, &c->der_len);
}

/* One condition of a certificate query and its argument, if any. */
struct cond {
	const char *sql;
	char type; /* 's' text, 'i' int64, 0 none */
	const char *s;
	int64_t i;
	bool on;
};

static char *
cert_query_sql(const struct cond *conds, size_t n, bool with_der)
{
	char *sql, *t;

	sql = xasprintf("SELECT " CERT_COLUMNS "%s FROM certificates c WHERE 1",
	    with_der ? "c.der" : "NULL");
	for (size_t i = 0; i < n; i++) {
		if (!conds[i].on)
			continue;
		t = xasprintf("%s AND (%s)", sql, conds[i].sql);
		free(sql);
		sql = t;
	}
	t = xasprintf("%s ORDER BY c.not_before DESC, c.fingerprint", sql);
	free(sql);
	return t;
}

static int
sq_cert_find(struct store *st, const struct store_cert_query *qu,
    const char *fpr, struct store_certs *out, const char **error_r)
{
	char *like =
	    qu->fpr_prefix != NULL ? xasprintf("%s%%", qu->fpr_prefix) : NULL;
	const struct cond conds[] = {
		{ "c.fingerprint = ?", 's', fpr, 0, fpr != NULL },
		{ "c.kind = ?", 's',
		    qu->kind >= 0 ? kind_names[qu->kind] : NULL, 0,
		    qu->kind >= 0 },
		{ "c.fingerprint IN (SELECT fingerprint FROM "
		  "certificate_emails WHERE email = ?)",
		    's', qu->email, 0, qu->email != NULL },
		{ "c.fingerprint IN (SELECT fingerprint FROM bindings WHERE "
		  "target = ?)",
		    's', qu->bound_to, 0, qu->bound_to != NULL },
		{ "c.subject_hash = ?", 's', qu->subject_hash, 0,
		    qu->subject_hash != NULL },
		{ "c.spki_sha256 = ?", 's', qu->spki_sha256, 0,
		    qu->spki_sha256 != NULL },
		/* The prefix is hex digits only: no LIKE wildcards in it. */
		{ "c.fingerprint LIKE ?", 's', like, 0, like != NULL },
		{ "EXISTS (SELECT 1 FROM private_keys k WHERE k.fingerprint "
		  "= c.fingerprint)",
		    0, NULL, 0, qu->with_key },
		{ "c.not_after < ?", 'i', NULL, qu->expired_at,
		    qu->expired_at_set },
	};
	sqlite3_stmt *stmt;
	char *sql;
	int rc, k = 0;

	sql = cert_query_sql(conds, nitems(conds), qu->with_der);
	rc = sqlite3_prepare_v2(SQ(st)->db, sql, -1, &stmt, NULL);
	free(sql);
	if (rc != SQLITE_OK) {
		free(like);
		return sq_fail(st, "prepare", error_r);
	}
	for (size_t i = 0; i < nitems(conds) && rc == SQLITE_OK; i++) {
		if (!conds[i].on || conds[i].type == 0)
			continue;
		k++;
		if (conds[i].type == 's')
			rc = sqlite3_bind_text(
			    stmt, k, conds[i].s, -1, SQLITE_TRANSIENT);
		else
			rc = sqlite3_bind_int64(stmt, k, conds[i].i);
	}
	free(like);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(stmt);
		return sq_fail(st, "bind", error_r);
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
		cert_from_row(stmt, &out->v[out->n++]);
	}
	if (sq_done(st, stmt, rc, error_r) == -1) {
		store_certs_free(out);
		return -1;
	}
	return 0;
}

static int
sq_cert_delete(struct store *st, const char *fpr, const char **error_r)
{
	int n;

	n = sq_exec(st, NULL, error_r,
	    "DELETE FROM certificates WHERE fingerprint = ?", "s", fpr);
	if (n == 0)
		return store_error(error_r, "no certificate %s", fpr);
	return n == -1 ? -1 : 0;
}

/* Keys and bindings. */

static int
sq_key_put(struct store *st, const char *fpr, const unsigned char *blob,
    size_t len, const char **error_r)
{
	int code;

	if (sq_exec(st, &code, error_r,
		"INSERT INTO private_keys (fingerprint, blob, created) "
		"VALUES (?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET "
		"blob = excluded.blob",
		"sbi", fpr, blob, len, now_s()) == -1) {
		if (code == SQLITE_CONSTRAINT_FOREIGNKEY)
			return store_error(
			    error_r, "no certificate %s for this key", fpr);
		return -1;
	}
	return 0;
}

static int
sq_key_get(struct store *st, const char *fpr, unsigned char **blob_r,
    size_t *len_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if ((stmt = sq_prep(st, error_r,
		 "SELECT blob FROM private_keys WHERE fingerprint = ?", "s",
		 fpr)) == NULL)
		return -1;
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		*blob_r = col_blob(stmt, 0, len_r);
		rc = sqlite3_step(stmt);
	}
	return sq_done(st, stmt, rc, error_r);
}

static int
sq_bind(
    struct store *st, const char *fpr, const char *target, const char **error_r)
{
	int code;

	if (sq_exec(st, &code, error_r,
		"INSERT OR IGNORE INTO bindings (fingerprint, target, "
		"created) VALUES (?, ?, ?)",
		"ssi", fpr, target, now_s()) == -1) {
		if (code == SQLITE_CONSTRAINT_FOREIGNKEY)
			return store_error(error_r, "no certificate %s", fpr);
		return -1;
	}
	return 0;
}

static int
sq_unbind(
    struct store *st, const char *fpr, const char *target, const char **error_r)
{
	int n;

	n = sq_exec(st, NULL, error_r,
	    "DELETE FROM bindings WHERE fingerprint = ? AND target = ?", "ss",
	    fpr, target);
	if (n == 0)
		return store_error(
		    error_r, "certificate %s is not bound to %s", fpr, target);
	return n == -1 ? -1 : 0;
}

static int
sq_bindings(struct store *st, const char *fpr, struct strlist *out,
    const char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if ((stmt = sq_prep(st, error_r,
		 "SELECT target FROM bindings WHERE fingerprint = ? ORDER BY "
		 "target",
		 "s", fpr)) == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		strlist_add(out, (const char *)sqlite3_column_text(stmt, 0));
	return sq_done(st, stmt, rc, error_r);
}

/* CRLs: the newest of each issuer is kept. */

static int
sq_crl_insert(struct store *st, const struct store_crl *c, bool *added_r,
    const char **error_r)
{
	sqlite3_stmt *stmt;
	int64_t newest = INT64_MIN;
	bool same = false;
	int rc;

	if ((stmt = sq_prep(st, error_r,
		 "SELECT fingerprint, this_update FROM crls WHERE "
		 "issuer_hash = ? AND issuer = ?",
		 "ss", c->issuer_hash, c->issuer)) == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		int64_t t = sqlite3_column_int64(stmt, 1);
		if (strcmp((const char *)sqlite3_column_text(stmt, 0),
			c->fpr) == 0)
			same = true;
		if (t > newest)
			newest = t;
	}
	if (sq_done(st, stmt, rc, error_r) == -1)
		return -1;
	*added_r = false;
	if (same)
		return 0;
	if (newest > c->this_update)
		return store_error(
		    error_r, "a newer CRL of %s is stored already", c->issuer);
	if (sq_exec(st, NULL, error_r,
		"DELETE FROM crls WHERE issuer_hash = ? AND issuer = ?", "ss",
		c->issuer_hash, c->issuer) == -1)
		return -1;
	if (sq_exec(st, NULL, error_r,
		"INSERT INTO crls (fingerprint, issuer, issuer_hash, number, "
		"this_update, next_update, der, created) VALUES (?, ?, ?, ?, "
		"?, ?, ?, ?)",
		"ssssiibi", c->fpr, c->issuer, c->issuer_hash, c->number,
		c->this_update, c->next_update, c->der, c->der_len,
		now_s()) == -1)
		return -1;
	*added_r = true;
	return 0;
}

static int
sq_crl_put(struct store *st, const struct store_crl *c, bool *added_r,
    const char **error_r)
{
	bool added = false;

	if (sq_savepoint(st, error_r) == -1)
		return -1;
	if (sq_release(st, sq_crl_insert(st, c, &added, error_r), error_r) ==
	    -1)
		return -1;
	if (added_r != NULL)
		*added_r = added;
	return 0;
}

static int
sq_crl_list(struct store *st, const char *issuer_hash, bool with_der,
    struct store_crls *out, const char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	stmt = sq_prep(st, error_r,
	    "SELECT fingerprint, issuer, issuer_hash, number, this_update, "
	    "next_update, created, CASE WHEN ?1 THEN der END FROM crls "
	    "WHERE ?2 IS NULL OR issuer_hash = ?2 ORDER BY issuer, "
	    "this_update DESC",
	    "is", (int64_t)with_der, issuer_hash);
	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_crl *c;
		out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
		c = &out->v[out->n++];
		memset(c, 0, sizeof(*c));
		col_copy(stmt, 0, c->fpr, sizeof(c->fpr));
		c->issuer = col_str(stmt, 1);
		col_copy(stmt, 2, c->issuer_hash, sizeof(c->issuer_hash));
		c->number = col_str(stmt, 3);
		c->this_update = sqlite3_column_int64(stmt, 4);
		c->next_update = sqlite3_column_int64(stmt, 5);
		c->created = sqlite3_column_int64(stmt, 6);
		c->der = col_blob(stmt, 7, &c->der_len);
	}
	if (sq_done(st, stmt, rc, error_r) == -1) {
		store_crls_free(out);
		return -1;
	}
	return 0;
}

static int
sq_crl_delete(struct store *st, const char *fpr, const char **error_r)
{
	int n;

	n = sq_exec(st, NULL, error_r, "DELETE FROM crls WHERE fingerprint = ?",
	    "s", fpr);
	if (n == 0)
		return store_error(error_r, "no CRL %s", fpr);
	return n == -1 ? -1 : 0;
}

/* The trust list. */

static int
sq_ctl_set(struct store *st, const char *fpr, enum store_ctl_status status,
    const char **error_r)
{
	int n;

	if (status == STORE_CTL_NONE) {
		n = sq_exec(st, NULL, error_r,
		    "DELETE FROM ctl WHERE fingerprint = ?", "s", fpr);
		if (n == 0)
			return store_error(error_r,
			    "%s is not in the trust "
			    "list",
			    fpr);
		return n == -1 ? -1 : 0;
	}
	n = sq_exec(st, NULL, error_r,
	    "INSERT INTO ctl (fingerprint, status, created) VALUES (?, ?, ?) "
	    "ON CONFLICT (fingerprint) DO UPDATE SET status = "
	    "excluded.status",
	    "ssi", fpr, store_ctl_status_name(status), now_s());
	return n == -1 ? -1 : 0;
}

static enum store_ctl_status
ctl_status_from(const unsigned char *s)
{
	if (s != NULL && strcmp((const char *)s, "whitelisted") == 0)
		return STORE_CTL_WHITELISTED;
	if (s != NULL && strcmp((const char *)s, "blacklisted") == 0)
		return STORE_CTL_BLACKLISTED;
	return STORE_CTL_NONE;
}

static int
sq_ctl_get(struct store *st, const char *fpr, enum store_ctl_status *status_r,
    const char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if ((stmt = sq_prep(st, error_r,
		 "SELECT status FROM ctl WHERE fingerprint = ?", "s", fpr)) ==
	    NULL)
		return -1;
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		*status_r = ctl_status_from(sqlite3_column_text(stmt, 0));
		rc = sqlite3_step(stmt);
	}
	return sq_done(st, stmt, rc, error_r);
}

static int
sq_ctl_list(struct store *st, struct store_ctl_entry **v_r, size_t *n_r,
    const char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if ((stmt = sq_prep(st, error_r,
		 "SELECT fingerprint, status, created FROM ctl ORDER BY "
		 "fingerprint",
		 "")) == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_ctl_entry *e;
		*v_r = xreallocarray(*v_r, *n_r + 1, sizeof(**v_r));
		e = &(*v_r)[(*n_r)++];
		col_copy(stmt, 0, e->fpr, sizeof(e->fpr));
		e->status = ctl_status_from(sqlite3_column_text(stmt, 1));
		e->created = sqlite3_column_int64(stmt, 2);
	}
	return sq_done(st, stmt, rc, error_r);
}

/* Admins. */

static int
sq_admin_add(
    struct store *st, const char *name, const char *hash, const char **error_r)
{
	int code;

	if (sq_exec(st, &code, error_r,
		"INSERT INTO admins (name, password_hash, created) VALUES "
		"(?, ?, ?)",
		"ssi", name, hash, now_s()) == -1) {
		if ((code & 0xff) == SQLITE_CONSTRAINT)
			return store_error(
			    error_r, "admin %s already exists", name);
		return -1;
	}
	return 0;
}

static int
sq_admin_query(struct store *st, const char *name, struct store_admin **v_r,
    size_t *n_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if ((stmt = sq_prep(st, error_r,
		 "SELECT name, password_hash, created FROM admins WHERE ? IS "
		 "NULL OR name = ?1 ORDER BY name",
		 "s", name)) == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_admin *a;
		*v_r = xreallocarray(*v_r, *n_r + 1, sizeof(**v_r));
		a = &(*v_r)[(*n_r)++];
		a->name = col_str(stmt, 0);
		a->password_hash = col_str(stmt, 1);
		a->created = sqlite3_column_int64(stmt, 2);
	}
	if (sq_done(st, stmt, rc, error_r) == -1) {
		store_admin_free(*v_r, *n_r);
		*v_r = NULL;
		*n_r = 0;
		return -1;
	}
	return 0;
}

static int
sq_admin_get(struct store *st, const char *name, struct store_admin **admin_r,
    const char **error_r)
{
	size_t n = 0;

	return sq_admin_query(st, name, admin_r, &n, error_r);
}

static int
sq_admin_list(struct store *st, struct store_admin **v_r, size_t *n_r,
    const char **error_r)
{
	return sq_admin_query(st, NULL, v_r, n_r, error_r);
}

static int
sq_admin_delete(struct store *st, const char *name, const char **error_r)
{
	int n;

	n = sq_exec(
	    st, NULL, error_r, "DELETE FROM admins WHERE name = ?", "s", name);
	if (n == 0)
		return store_error(error_r, "no such admin: %s", name);
	return n == -1 ? -1 : 0;
}

static int
sq_admin_set_password(
    struct store *st, const char *name, const char *hash, const char **error_r)
{
	int n;

	n = sq_exec(st, NULL, error_r,
	    "UPDATE admins SET password_hash = ? WHERE name = ?", "ss", hash,
	    name);
	if (n == 0)
		return store_error(error_r, "no such admin: %s", name);
	return n == -1 ? -1 : 0;
}

const struct store_backend store_sqlite_backend = {
	.scheme = "sqlite:",
	.open = sq_open,
	.close = sq_close,
	.schema_version = sq_schema_version,
	.generation = sq_generation,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.meta_get = sq_meta_get,
	.meta_set = sq_meta_set,
	.name_add = sq_name_add,
	.name_delete = sq_name_delete,
	.name_exists = sq_name_exists,
	.name_list = sq_name_list,
	.props_get = sq_props_get,
	.prop_set = sq_prop_set,
	.prop_unset = sq_prop_unset,
	.cert_put = sq_cert_put,
	.cert_find = sq_cert_find,
	.cert_delete = sq_cert_delete,
	.key_put = sq_key_put,
	.key_get = sq_key_get,
	.bind = sq_bind,
	.unbind = sq_unbind,
	.bindings = sq_bindings,
	.crl_put = sq_crl_put,
	.crl_list = sq_crl_list,
	.crl_delete = sq_crl_delete,
	.ctl_set = sq_ctl_set,
	.ctl_get = sq_ctl_get,
	.ctl_list = sq_ctl_list,
	.admin_add = sq_admin_add,
	.admin_get = sq_admin_get,
	.admin_list = sq_admin_list,
	.admin_delete = sq_admin_delete,
	.admin_set_password = sq_admin_set_password,
};
