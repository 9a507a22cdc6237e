/*
 * Admin console sessions and the login rate limiter, in the memory of the
 * admin process (a restart logs everyone out).
 *
 * A session ID is 256 random bits, sent to the browser once in an
 * HttpOnly cookie; the table keeps only its SHA-256, so neither a memory
 * dump nor a timing difference in the lookup gives a usable ID away. Each
 * session has its own CSRF token, compared in constant time.
 */
#ifndef MAILSEAL_SESSION_H
#define MAILSEAL_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SESSION_ID_HEX 64
#define SESSIONS_MAX 256

struct session {
	unsigned char id_hash[32];
	char csrf[SESSION_ID_HEX + 1];
	char *username;
	unsigned char pw_tag[32]; /* SHA-256 of the password hash at login */
	uint64_t created_us, last_us;
};

struct sessions {
	struct session *v[SESSIONS_MAX];
	size_t n;
};

/* Makes a session for username; writes its ID (hex) to id_r. */
struct session *sessions_create(struct sessions *, const char *username,
    uint64_t now_us, char id_r[SESSION_ID_HEX + 1]);
/*
 * The live session of a cookie value, its idle time refreshed; NULL when
 * unknown or idle for longer than idle_us (it is then removed).
 */
struct session *sessions_find(
    struct sessions *, const char *id_hex, uint64_t now_us, uint64_t idle_us);
/*
 * The password a session was opened with: a session ends when its admin
 * is deleted or gets a new password, by whatever means.
 */
void session_set_pw_tag(struct session *, const char *password_hash);
bool session_pw_tag_ok(const struct session *, const char *password_hash);
/* Whether token is the session's CSRF token. */
bool session_csrf_ok(const struct session *, const char *token);
void sessions_remove(struct sessions *, struct session *);
/* Ends every session of a user, except keep (may be NULL). */
void sessions_remove_user(
    struct sessions *, const char *username, const struct session *keep);
void sessions_clear(struct sessions *);

/*
 * Failed logins, per client address and per user name. After
 * RATELIMIT_FREE failures in a row a key is blocked for 30 s, doubling
 * with each further failure up to 15 minutes; a success clears it.
 */
#define RATELIMIT_FREE 5
#define RATELIMIT_MAX 4096

struct rl_entry {
	char *key;
	unsigned fails;
	uint64_t last_us, until_us;
};

struct ratelimit {
	struct rl_entry v[RATELIMIT_MAX];
	size_t n;
};

/* Seconds a key stays blocked (0: not blocked). */
unsigned ratelimit_blocked(struct ratelimit *, const char *key, uint64_t now);
void ratelimit_fail(struct ratelimit *, const char *key, uint64_t now);
void ratelimit_reset(struct ratelimit *, const char *key);
void ratelimit_clear(struct ratelimit *);

#endif
