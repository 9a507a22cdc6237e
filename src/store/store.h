/*
 * The policy and key store: domains, users, their properties, X.509
 * certificates, sealed private keys, bindings, trusted roots and
 * intermediates, CRLs, the certificate trust list, admins.
 *
 * One interface, several backends (store_backend.h): "sqlite:/path" now,
 * "postgresql://..." later. No SQL lives outside src/store/; callers see
 * records. A handle is not thread safe: open one per thread.
 *
 * Names are canonical in the store: domains lowercase ("*.example.com"
 * for a wildcard), email addresses lowercase as a whole (as CipherMail
 * does), fingerprints the lowercase hex SHA-256 of the DER. The store
 * checks the syntax of names; the meaning of property names and values
 * is policy's business (src/policy/), which callers use to set them.
 *
 * Every function returns 0 or -1 with a reason in *error_r (a static
 * buffer: valid until the next call on any store); "get" functions that
 * find nothing return 0 and a NULL result.
 */
#ifndef MAILSEAL_STORE_H
#define MAILSEAL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

#define STORE_FPR_LEN 64 /* hex digits of a SHA-256 */
#define STORE_NAME_MAX 254

struct store;

/* store_open() flags */
#define STORE_CREATE 0x01 /* make the file and the schema if missing */

int store_open(
    const char *uri, int flags, struct store **st_r, const char **error_r);
void store_close(struct store **);
/* The file behind a sqlite store (NULL for others): for chown at start. */
const char *store_path(const struct store *);
/* The schema version of the open store. */
int store_schema_version(struct store *);

/*
 * A counter that every write to the store (by any process) increases.
 * Cheap: engines read it before each use of a cache, and drop the cache
 * when it changed. Always >= 1; 0 means it could not be read, and a
 * caller must then not trust any cache.
 */
uint64_t store_generation(struct store *);

/*
 * A transaction around several calls (a certificate with its key and
 * bindings). Without one, each call is its own transaction. Nesting is
 * not supported.
 */
int store_begin(struct store *, const char **error_r);
int store_commit(struct store *, const char **error_r);
void store_rollback(struct store *);

/* Small named values of the store itself (masterkey_id). */
int store_meta_get(
    struct store *, const char *key, char **value_r, const char **error_r);
int store_meta_set(
    struct store *, const char *key, const char *value, const char **error_r);

/*
 * Canonical names. Each copies and lowercases s into a new string; NULL
 * with a reason when s is not a domain ("example.com", or a wildcard
 * "*.example.com" where allowed), an email address (local@domain), or a
 * fingerprint (64 hex digits; colons and a "sha256:" prefix allowed).
 */
char *store_canon_domain(const char *s, bool wildcard_ok, const char **error_r);
char *store_canon_email(const char *s, const char **error_r);
int store_canon_fpr(
    const char *s, char fpr[STORE_FPR_LEN + 1], const char **error_r);
/* A binding target: an email address, a domain or a wildcard domain. */
char *store_canon_target(const char *s, const char **error_r);

/* Property levels below the factory default. */
enum store_level {
	STORE_GLOBAL,
	STORE_DOMAIN, /* a domain, or a wildcard domain */
	STORE_USER,
};

struct store_prop {
	char *name;
	char *value;
};

struct store_props {
	struct store_prop *v;
	size_t n;
};

/* Domains ("example.com", "*.example.com") and users (email). */
int store_domain_add(struct store *, const char *name, const char **error_r);
int store_domain_delete(struct store *, const char *name, const char **error_r);
int store_domain_exists(
    struct store *, const char *name, bool *exists_r, const char **error_r);
int store_domain_list(struct store *, struct strlist *, const char **error_r);
int store_user_add(struct store *, const char *email, const char **error_r);
int store_user_delete(struct store *, const char *email, const char **error_r);
int store_user_exists(
    struct store *, const char *email, bool *exists_r, const char **error_r);
/* All users, or those containing the text (search), sorted. */
int store_user_list(
    struct store *, const char *search, struct strlist *, const char **error_r);

/*
 * The properties set at one level: owner is NULL for global, the domain
 * or the email address. A property that is not in the list inherits.
 * Setting needs the domain or user to exist.
 */
int store_props_get(struct store *, enum store_level, const char *owner,
    struct store_props *, const char **error_r);
int store_prop_set(struct store *, enum store_level, const char *owner,
    const char *name, const char *value, const char **error_r);
/* Back to inherit; not an error when it was not set. */
int store_prop_unset(struct store *, enum store_level, const char *owner,
    const char *name, const char **error_r);
void store_props_free(struct store_props *);
/* The value of name in a list, or NULL. */
const char *store_props_find(const struct store_props *, const char *name);

/* Certificates. */
enum store_cert_kind {
	STORE_CERT_END, /* an end entity: a user's or a domain's */
	STORE_CERT_INTERMEDIATE, /* a CA certificate, not trusted by itself */
	STORE_CERT_ROOT, /* a trusted root */
};

#define STORE_KU_ABSENT UINT32_MAX /* no keyUsage extension */

struct store_cert {
	char fpr[STORE_FPR_LEN + 1];
	enum store_cert_kind kind;
	unsigned char *der; /* NULL unless asked for */
	size_t der_len;
	char *subject; /* RFC 2253 */
	char *issuer;
	char *serial; /* hex */
	char subject_hash[9]; /* X509_NAME_hash_ex, hex: an index only */
	char issuer_hash[9];
	char spki_sha256[STORE_FPR_LEN + 1]; /* of the public key */
	int64_t not_before, not_after; /* Unix time */
	uint32_t key_usage; /* X509_get_key_usage() bits, or KU_ABSENT */
	uint32_t ext_key_usage; /* X509_get_extended_key_usage() bits */
	bool is_ca;
	bool has_key; /* a private key is stored for it */
	struct strlist emails; /* SAN rfc822Name and subject emailAddress */
	int64_t created;
};

struct store_certs {
	struct store_cert *v;
	size_t n;
};

/* What store_cert_find() matches; every field set must match. */
struct store_cert_query {
	int kind; /* enum store_cert_kind, or -1 for all */
	const char *email; /* in the certificate's addresses */
	const char *bound_to; /* bound to this target */
	const char *subject_hash;
	const char *spki_sha256;
	const char *fpr_prefix;
	bool with_key; /* only those with a private key */
	bool expired_at_set; /* only those expired at expired_at */
	int64_t expired_at;
	bool with_der;
};

/*
 * Adds a certificate, or when it is already stored, raises its kind to
 * STORE_CERT_ROOT if asked (a root import of a stored intermediate) and
 * otherwise leaves it. *added_r tells whether it was new.
 */
int store_cert_put(struct store *, const struct store_cert *, bool *added_r,
    const char **error_r);
int store_cert_get(struct store *, const char *fpr, bool with_der,
    struct store_cert **cert_r, const char **error_r);
/* Sorted by not_before, newest first, then fingerprint. */
int store_cert_find(struct store *, const struct store_cert_query *,
    struct store_certs *, const char **error_r);
/* Removes it with its key and bindings; -1 when it is not stored. */
int store_cert_delete(struct store *, const char *fpr, const char **error_r);
/* The one certificate whose fingerprint starts with prefix (>= 8 hex). */
int store_cert_resolve(struct store *, const char *prefix,
    char fpr[STORE_FPR_LEN + 1], const char **error_r);
void store_cert_free(struct store_cert **);
void store_certs_free(struct store_certs *);

/*
 * Sealed private keys (masterkey_seal; the store never sees a clear
 * key), one per certificate, which must be stored.
 */
int store_key_put(struct store *, const char *fpr, const unsigned char *blob,
    size_t len, const char **error_r);
/* *blob_r is NULL when no key is stored for fpr. */
int store_key_get(struct store *, const char *fpr, unsigned char **blob_r,
    size_t *len_r, const char **error_r);

/* Bindings of certificates to users or domains (store_canon_target). */
int store_bind(
    struct store *, const char *fpr, const char *target, const char **error_r);
int store_unbind(
    struct store *, const char *fpr, const char *target, const char **error_r);
int store_bindings(struct store *, const char *fpr, struct strlist *targets,
    const char **error_r);

/* Certificate revocation lists. */
struct store_crl {
	char fpr[STORE_FPR_LEN + 1];
	char *issuer; /* RFC 2253 */
	char issuer_hash[9];
	char *number; /* cRLNumber in hex, or NULL */
	int64_t this_update, next_update; /* next_update 0: none */
	unsigned char *der;
	size_t der_len;
	int64_t created;
};

struct store_crls {
	struct store_crl *v;
	size_t n;
};

/* Adds a CRL and removes the older ones of the same issuer. */
int store_crl_put(struct store *, const struct store_crl *, bool *added_r,
    const char **error_r);
/* All CRLs, or those of one issuer hash; DER only when asked. */
int store_crl_list(struct store *, const char *issuer_hash, bool with_der,
    struct store_crls *, const char **error_r);
int store_crl_delete(struct store *, const char *fpr, const char **error_r);
void store_crls_free(struct store_crls *);

/* The certificate trust list: a verdict per fingerprint. */
enum store_ctl_status {
	STORE_CTL_NONE,
	STORE_CTL_WHITELISTED, /* trusted even without a path to a root */
	STORE_CTL_BLACKLISTED, /* never valid */
};

struct store_ctl_entry {
	char fpr[STORE_FPR_LEN + 1];
	enum store_ctl_status status;
	int64_t created;
};

/* STORE_CTL_NONE removes the entry. The certificate need not be stored. */
int store_ctl_set(struct store *, const char *fpr, enum store_ctl_status,
    const char **error_r);
int store_ctl_get(struct store *, const char *fpr,
    enum store_ctl_status *status_r, const char **error_r);
int store_ctl_list(struct store *, struct store_ctl_entry **v_r, size_t *n_r,
    const char **error_r);
const char *store_ctl_status_name(enum store_ctl_status);

/*
 * Admins of the console. The hash is an opaque string (the admin code
 * hashes with scrypt); the store only keeps it.
 */
struct store_admin {
	char *name;
	char *password_hash;
	int64_t created;
};

int store_admin_add(
    struct store *, const char *name, const char *hash, const char **error_r);
int store_admin_get(struct store *, const char *name,
    struct store_admin **admin_r, const char **error_r);
int store_admin_list(struct store *, struct store_admin **v_r, size_t *n_r,
    const char **error_r);
int store_admin_delete(struct store *, const char *name, const char **error_r);
int store_admin_set_password(
    struct store *, const char *name, const char *hash, const char **error_r);
void store_admin_free(struct store_admin *v, size_t n);

const char *store_cert_kind_name(enum store_cert_kind);

#endif
