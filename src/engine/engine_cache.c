/*
 * What an engine keeps between jobs: effective policies, certificate
 * selections and unsealed private keys. Everything is dropped when the
 * store's generation changes (any write by any process), and the
 * selections also after ECACHE_TTL, because validity depends on the time.
 * The check is made once at the start of each job, so that what a job
 * borrows stays valid until it ends.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "common/log.h"
#include "common/util.h"
#include "crypto/cms_write.h"
#include "engine/engine_int.h"
#include "queue/htab.h"
#include "store/store.h"

#define ECACHE_TTL_US (60ULL * 1000000) /* certificate selections */
#define ECACHE_MAX 10000 /* entries of one table before it is emptied */

struct ecache {
	uint64_t gen;
	uint64_t since_us; /* when the selections were started */
	struct policy *global;
	struct htab *pol; /* address -> struct policy */
	struct htab *enc; /* address -> struct cert_selection */
	struct htab *sign;
	struct htab *dec; /* "s:address" or "*" -> struct cert_selection */
	struct htab *certs; /* fingerprint -> X509 */
	struct htab *keys; /* fingerprint -> EVP_PKEY */
};

static void
pol_free(void *p)
{
	struct policy *pol = p;

	policy_free(&pol);
}

static void
sel_free(void *p)
{
	certs_selection_free(p);
	free(p);
}

static void
x509_free(void *p)
{
	X509_free(p);
}

static void
key_free(void *p)
{
	EVP_PKEY_free(p); /* OpenSSL wipes key material when it frees */
}

static void
tables_free(struct ecache *c, bool selections_only)
{
	htab_free(&c->enc, sel_free);
	htab_free(&c->sign, sel_free);
	htab_free(&c->dec, sel_free);
	c->enc = htab_new();
	c->sign = htab_new();
	c->dec = htab_new();
	if (selections_only)
		return;
	policy_free(&c->global);
	htab_free(&c->pol, pol_free);
	htab_free(&c->certs, x509_free);
	htab_free(&c->keys, key_free);
	cmsw_forget_keys(); /* its references to the keys dropped */
	c->pol = htab_new();
	c->certs = htab_new();
	c->keys = htab_new();
}

struct ecache *
engine_cache_new(void)
{
	struct ecache *c = xcalloc(1, sizeof(*c));

	c->pol = htab_new();
	c->enc = htab_new();
	c->sign = htab_new();
	c->dec = htab_new();
	c->certs = htab_new();
	c->keys = htab_new();
	return c;
}

void
engine_cache_free(struct ecache **cp)
{
	struct ecache *c = *cp;

	if (c == NULL)
		return;
	policy_free(&c->global);
	htab_free(&c->pol, pol_free);
	htab_free(&c->enc, sel_free);
	htab_free(&c->sign, sel_free);
	htab_free(&c->dec, sel_free);
	htab_free(&c->certs, x509_free);
	htab_free(&c->keys, key_free);
	cmsw_forget_keys();
	free(c);
	*cp = NULL;
}

void
engine_cache_begin(struct engine *e)
{
	struct ecache *c = e->cache;
	uint64_t gen = store_generation(e->st), now = clock_mono_us();

	/* 0: the generation cannot be read, so nothing kept is trusted. */
	if (gen == 0 || gen != c->gen || htab_count(c->pol) > ECACHE_MAX ||
	    htab_count(c->keys) > ECACHE_MAX) {
		tables_free(c, false);
		c->gen = gen;
		c->since_us = now;
		return;
	}
	if (now - c->since_us > ECACHE_TTL_US ||
	    htab_count(c->enc) + htab_count(c->sign) + htab_count(c->dec) >
		ECACHE_MAX) {
		tables_free(c, true);
		c->since_us = now;
	}
}

/* The lower-case key of an address. */
static char *
addr_key(const char *prefix, const char *addr)
{
	char *k = xasprintf("%s%s", prefix, addr);

	str_lower(k);
	return k;
}

int
engine_policy(struct engine *e, const char *addr, const struct policy **pol_r,
    const char **error_r)
{
	struct ecache *c = e->cache;
	struct policy *pol;
	const char *why;
	char *k = addr != NULL ? store_canon_email(addr, &why) : NULL;

	if (k == NULL) {
		/*
		 * No address (a null sender), or none that the store can
		 * hold (bare "postmaster", an address literal): global.
		 */
		if (c->global == NULL &&
		    policy_resolve(
			e->st, STORE_GLOBAL, NULL, &c->global, error_r) == -1)
			return -1;
		*pol_r = c->global;
		return 0;
	}
	if ((pol = htab_get(c->pol, k)) == NULL) {
		if (policy_resolve(e->st, STORE_USER, k, &pol, error_r) == -1) {
			free(k);
			return -1;
		}
		htab_put(c->pol, k, pol);
	}
	free(k);
	*pol_r = pol;
	return 0;
}

static bool
addr_storable(const char *addr)
{
	const char *why;
	char *c = store_canon_email(addr, &why);

	free(c);
	return c != NULL;
}

typedef int select_fn(struct certs *, const char *, time_t,
    struct cert_selection *, const char **);

static int
select_cached(struct engine *e, struct htab *h, const char *prefix,
    const char *addr, select_fn *fn, bool strict,
    const struct cert_selection **sel_r, const char **error_r)
{
	struct cert_selection *sel;
	char *k = addr_key(prefix, addr);
	int rc;

	if ((sel = htab_get(h, k)) != NULL) {
		free(k);
		*sel_r = sel;
		return 0;
	}
	sel = xcalloc(1, sizeof(*sel));
	if (*addr != '\0' && !addr_storable(addr))
		rc = 0; /* no certificate can be stored for it */
	else if (fn != NULL)
		rc = fn(e->cs, addr, time(NULL), sel, error_r);
	else
		rc = certs_select_decrypt(
		    e->cs, addr, strict, time(NULL), sel, error_r);
	if (rc == -1) {
		free(sel);
		free(k);
		return -1;
	}
	htab_put(h, k, sel);
	free(k);
	*sel_r = sel;
	return 0;
}

int
engine_select_encrypt(struct engine *e, const char *addr,
    const struct cert_selection **sel_r, const char **error_r)
{
	return select_cached(e, e->cache->enc, "", addr, certs_select_encrypt,
	    false, sel_r, error_r);
}

int
engine_select_sign(struct engine *e, const char *addr,
    const struct cert_selection **sel_r, const char **error_r)
{
	return select_cached(e, e->cache->sign, "", addr, certs_select_sign,
	    false, sel_r, error_r);
}

int
engine_select_decrypt(struct engine *e, const char *addr, bool strict,
    const struct cert_selection **sel_r, const char **error_r)
{
	/* Without smime_strict every stored key is a candidate: one entry. */
	if (!strict)
		return select_cached(
		    e, e->cache->dec, "*", "", NULL, false, sel_r, error_r);
	return select_cached(
	    e, e->cache->dec, "s:", addr, NULL, true, sel_r, error_r);
}

int
engine_cert(struct engine *e, const char *fpr, X509 **x_r, const char **error_r)
{
	X509 *x;

	if ((x = htab_get(e->cache->certs, fpr)) == NULL) {
		if (certs_get(e->cs, fpr, &x, error_r) == -1)
			return -1;
		if (x == NULL) {
			*x_r = NULL;
			return 0;
		}
		htab_put(e->cache->certs, fpr, x);
	}
	*x_r = x;
	return 0;
}

int
engine_key(
    struct engine *e, const char *fpr, EVP_PKEY **key_r, const char **error_r)
{
	EVP_PKEY *k;

	if ((k = htab_get(e->cache->keys, fpr)) == NULL) {
		if (certs_load_key(e->cs, e->mk, fpr, &k, error_r) == -1)
			return -1;
		htab_put(e->cache->keys, fpr, k);
	}
	*key_r = k;
	return 0;
}
