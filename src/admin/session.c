#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "admin/session.h"
#include "common/log.h"
#include "common/util.h"

static void
random_hex(char out[SESSION_ID_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char b[SESSION_ID_HEX / 2];

	if (RAND_bytes(b, sizeof(b)) != 1)
		msg_fatal("no random bytes for a session");
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[SESSION_ID_HEX] = '\0';
	OPENSSL_cleanse(b, sizeof(b));
}

static void
id_digest(const char *id, unsigned char out[32])
{
	unsigned int len = 32;

	if (EVP_Digest(id, strlen(id), out, &len, EVP_sha256(), NULL) != 1)
		msg_fatal("SHA-256 failed");
}

static void
session_free(struct session *s)
{
	free(s->username);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

static void
sessions_remove_at(struct sessions *ss, size_t i)
{
	session_free(ss->v[i]);
	ss->v[i] = ss->v[--ss->n];
	ss->v[ss->n] = NULL;
}

struct session *
sessions_create(struct sessions *ss, const char *username, uint64_t now_us,
    char id_r[SESSION_ID_HEX + 1])
{
	struct session *s;

	if (ss->n == SESSIONS_MAX) {
		/* Full: the least recently used session goes. */
		size_t old = 0;
		for (size_t i = 1; i < ss->n; i++)
			if (ss->v[i]->last_us < ss->v[old]->last_us)
				old = i;
		sessions_remove_at(ss, old);
	}
	s = xcalloc(1, sizeof(*s));
	random_hex(id_r);
	id_digest(id_r, s->id_hash);
	random_hex(s->csrf);
	s->username = xstrdup(username);
	s->created_us = s->last_us = now_us;
	ss->v[ss->n++] = s;
	return s;
}

static bool
id_syntax_ok(const char *id)
{
	if (strlen(id) != SESSION_ID_HEX)
		return false;
	for (const char *c = id; *c != '\0'; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

struct session *
sessions_find(
    struct sessions *ss, const char *id_hex, uint64_t now_us, uint64_t idle_us)
{
	unsigned char h[32];

	if (id_hex == NULL || !id_syntax_ok(id_hex))
		return NULL;
	id_digest(id_hex, h);
	for (size_t i = 0; i < ss->n; i++) {
		struct session *s = ss->v[i];
		if (CRYPTO_memcmp(s->id_hash, h, sizeof(h)) != 0)
			continue;
		if (now_us - s->last_us > idle_us) {
			sessions_remove_at(ss, i);
			return NULL;
		}
		s->last_us = now_us;
		return s;
	}
	return NULL;
}

void
session_set_pw_tag(struct session *s, const char *password_hash)
{
	id_digest(password_hash, s->pw_tag);
}

bool
session_pw_tag_ok(const struct session *s, const char *password_hash)
{
	unsigned char h[32];

	id_digest(password_hash, h);
	return CRYPTO_memcmp(h, s->pw_tag, sizeof(h)) == 0;
}

bool
session_csrf_ok(const struct session *s, const char *token)
{
	if (token == NULL || strlen(token) != SESSION_ID_HEX)
		return false;
	return CRYPTO_memcmp(s->csrf, token, SESSION_ID_HEX) == 0;
}

void
sessions_remove(struct sessions *ss, struct session *s)
{
	for (size_t i = 0; i < ss->n; i++)
		if (ss->v[i] == s) {
			sessions_remove_at(ss, i);
			return;
		}
}

void
sessions_remove_user(
    struct sessions *ss, const char *username, const struct session *keep)
{
	for (size_t i = 0; i < ss->n;) {
		if (ss->v[i] != keep &&
		    strcmp(ss->v[i]->username, username) == 0)
			sessions_remove_at(ss, i);
		else
			i++;
	}
}

void
sessions_clear(struct sessions *ss)
{
	while (ss->n > 0)
		sessions_remove_at(ss, ss->n - 1);
}

/* The rate limiter. */

#define RL_FORGET_US (3600ULL * 1000000)
#define RL_BASE_S 30
#define RL_MAX_S 900

static struct rl_entry *
rl_lookup(struct ratelimit *rl, const char *key, uint64_t now, bool create)
{
	size_t oldest = 0;

	for (size_t i = 0; i < rl->n;) {
		struct rl_entry *e = &rl->v[i];
		if (strcmp(e->key, key) == 0)
			return e;
		/* Entries quiet for an hour are forgotten on the way. */
		if (now - e->last_us > RL_FORGET_US && now >= e->until_us) {
			free(e->key);
			rl->v[i] = rl->v[--rl->n];
			continue;
		}
		if (e->last_us < rl->v[oldest].last_us)
			oldest = i;
		i++;
	}
	if (!create)
		return NULL;
	if (rl->n == RATELIMIT_MAX) {
		free(rl->v[oldest].key);
		rl->v[oldest] = rl->v[--rl->n];
	}
	struct rl_entry *e = &rl->v[rl->n++];
	memset(e, 0, sizeof(*e));
	e->key = xstrdup(key);
	return e;
}

unsigned
ratelimit_blocked(struct ratelimit *rl, const char *key, uint64_t now)
{
	struct rl_entry *e = rl_lookup(rl, key, now, false);

	if (e == NULL || now >= e->until_us)
		return 0;
	return (unsigned)((e->until_us - now + 999999) / 1000000);
}

void
ratelimit_fail(struct ratelimit *rl, const char *key, uint64_t now)
{
	struct rl_entry *e = rl_lookup(rl, key, now, true);
	uint64_t secs;

	e->fails++;
	e->last_us = now;
	if (e->fails < RATELIMIT_FREE)
		return;
	secs = RL_BASE_S;
	for (unsigned i = RATELIMIT_FREE; i < e->fails && secs < RL_MAX_S; i++)
		secs *= 2;
	if (secs > RL_MAX_S)
		secs = RL_MAX_S;
	e->until_us = now + secs * 1000000;
}

void
ratelimit_reset(struct ratelimit *rl, const char *key)
{
	for (size_t i = 0; i < rl->n; i++)
		if (strcmp(rl->v[i].key, key) == 0) {
			free(rl->v[i].key);
			rl->v[i] = rl->v[--rl->n];
			return;
		}
}

void
ratelimit_clear(struct ratelimit *rl)
{
	for (size_t i = 0; i < rl->n; i++)
		free(rl->v[i].key);
	rl->n = 0;
}
