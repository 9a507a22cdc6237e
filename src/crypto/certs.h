/*
 * X.509 certificates and their private keys: import, validation and the
 * choice of certificates for encryption, signing and decryption.
 *
 * Import takes PEM (certificates, PKCS#7, PKCS#8 keys with or without a
 * password), DER (a certificate, PKCS#7, PKCS#8) and PKCS#12 with a
 * password. A key is stored, sealed under the master key, with every
 * certificate whose public key it matches, in the file or already in the
 * store; a key that matches none is an error.
 *
 * Validation of a certificate, in this order (the first failure is the
 * verdict):
 *   1. the trust list: blacklisted is never valid;
 *   2. the validity period (notBefore, notAfter);
 *   3. key usage for the purpose: encryption needs keyEncipherment for
 *      RSA or keyAgreement for EC, signing digitalSignature or
 *      nonRepudiation; no keyUsage extension allows all (RFC 5280
 *      4.2.1.3); the extendedKeyUsage, when present, must hold
 *      emailProtection or anyExtendedKeyUsage (RFC 8550 4.4.4);
 *   4. whitelisted in the trust list: valid, even without a path;
 *   5. a path to a stored root through stored intermediates (and those
 *      the caller adds, such as a signature's certificates), every
 *      certificate on it within its validity period, none blacklisted;
 *   6. revocation: each certificate on the path is looked up in the
 *      stored CRLs of its issuer whose signature that issuer's key
 *      verifies. A missing or outdated CRL does not make a certificate
 *      invalid (CRLs are imported by hand in this version); a listed
 *      serial always does.
 *
 * Selection:
 *   encryption to an address: the certificates (of any kind: a user's
 *     self-signed certificate may carry the CA flag) whose
 *     subjectAltName rfc822Name or subject emailAddress is the address
 *     (case-insensitive), plus those bound to the address, its domain or
 *     a wildcard covering the domain. ALL valid ones are used, as
 *     CipherMail does: the message gets one RecipientInfo per
 *     certificate, so whichever of the recipient's keys (a new and an
 *     old one, several devices) is at hand opens it. Newest first.
 *   signing for an address: among the same candidates, those with a
 *     private key and valid for signing; the first is the one to use:
 *     the newest (latest notBefore, then latest notAfter, then the
 *     lowest fingerprint, so that the choice is stable).
 *   decryption for an address: with smime_strict, the encryption
 *     candidates that are valid and have a key; without, every stored
 *     certificate with a key (not validated).
 *
 * The rejected candidates come back with their reason, for the log and
 * the DSN ("encryption is mandatory but no valid certificate ...").
 */
#ifndef MAILSEAL_CERTS_H
#define MAILSEAL_CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "store/store.h"

struct masterkey;
struct certs;

/* The largest file that import takes. */
#define CERTS_IMPORT_MAX (16 * 1024 * 1024)

enum cert_purpose {
	CERT_PURPOSE_ANY, /* trust only: no key usage check */
	CERT_PURPOSE_ENCRYPT,
	CERT_PURPOSE_SIGN,
};

enum cert_status {
	CERT_VALID,
	CERT_EXPIRED,
	CERT_NOT_YET_VALID,
	CERT_REVOKED,
	CERT_UNTRUSTED,
	CERT_BAD_KEY_USAGE,
	CERT_BLACKLISTED,
};

struct cert_verdict {
	enum cert_status status;
	bool whitelisted;
	char detail[256]; /* for the log and the DSN */
};

/* "valid", "expired", "not yet valid", "revoked", "untrusted", ... */
const char *certs_status_name(enum cert_status);

/* Parsing: what a file holds. */
struct certs_bundle {
	STACK_OF(X509) * certs;
	EVP_PKEY **keys;
	size_t nkeys;
};

/*
 * Parses a file of certificates and keys (the formats above). password
 * may be NULL. Keys are decrypted here; their buffers are wiped.
 */
int certs_parse(const void *data, size_t len, const char *password,
    struct certs_bundle *, const char **error_r);
void certs_bundle_free(struct certs_bundle *);
/* Parses CRLs: PEM (X509 CRL blocks) or one DER CRL. */
int certs_parse_crls(const void *data, size_t len, STACK_OF(X509_CRL) * *crls_r,
    const char **error_r);

/* RFC 2253 text of a name (UTF-8 kept); the caller frees it. */
char *certs_name_text(const X509_NAME *);
/* OpenSSL's canonical name hash, 8 hex digits: an index, not an identity. */
void certs_name_hash(const X509_NAME *, char out[9]);
/* An ASN.1 time as Unix time; 0 when it cannot be read. */
int64_t certs_time(const ASN1_TIME *);
/* The SHA-256 fingerprint of the DER, lowercase hex. */
void certs_fpr(X509 *, char fpr[STORE_FPR_LEN + 1]);
/* Fills a store record from a certificate (DER included). */
int certs_describe(X509 *, struct store_cert *, const char **error_r);
void certs_describe_free(struct store_cert *);

/* Import into the store, in one transaction: all or nothing. */
enum certs_import_as {
	CERTS_AS_CERTS, /* end entities; CA certificates as intermediates */
	CERTS_AS_ROOTS, /* self-signed CA certificates, trusted */
};

struct certs_imported {
	char fpr[STORE_FPR_LEN + 1];
	enum store_cert_kind kind;
	bool added; /* not stored before */
	bool key; /* a key was stored with it */
	bool bound; /* bound to the import's target */
	char *subject;
};

struct certs_import_result {
	struct certs_imported *v;
	size_t n;
	size_t nkeys; /* keys in the file */
};

/*
 * mk may be NULL when the bundle holds no key. bind (an address, domain
 * or wildcard) binds every end-entity or self-signed certificate of the
 * bundle.
 */
int certs_import(struct store *, const struct masterkey *,
    const struct certs_bundle *, enum certs_import_as, const char *bind,
    struct certs_import_result *, const char **error_r);
/* The same for X509 objects (a signature's certificates: auto import). */
int certs_import_x509(struct store *, STACK_OF(X509) *,
    struct certs_import_result *, const char **error_r);
void certs_import_result_free(struct certs_import_result *);

struct certs_crl_imported {
	char fpr[STORE_FPR_LEN + 1];
	char *issuer;
	bool added;
};

/*
 * Imports CRLs; each must be signed by a stored certificate of its
 * issuer (checked here, and again at each use).
 */
int certs_import_crls(struct store *, const void *data, size_t len,
    struct certs_crl_imported **v_r, size_t *n_r, const char **error_r);
void certs_crl_imported_free(struct certs_crl_imported *, size_t);

/*
 * A validation context over a store: the roots, intermediates, CRLs and
 * trust list, loaded at first use and again whenever the store's
 * generation changes. One per thread, like the store handle.
 */
int certs_open(struct store *, struct certs **cs_r, const char **error_r);
void certs_close(struct certs **);

/*
 * Validates a certificate at time now. extra: more untrusted
 * certificates for the path (may be NULL). chain_r (may be NULL) gets
 * the path, leaf first, for a valid certificate (just the leaf when it
 * is whitelisted). -1 only when the store fails; otherwise the verdict.
 */
int certs_validate(struct certs *, X509 *, STACK_OF(X509) * extra,
    enum cert_purpose, time_t now, struct cert_verdict *,
    STACK_OF(X509) * *chain_r, const char **error_r);

struct cert_choice {
	X509 *cert;
	char fpr[STORE_FPR_LEN + 1];
	bool has_key;
	bool by_address; /* its addresses hold the address */
	bool by_binding; /* bound to the address, its domain or a wildcard */
	struct cert_verdict verdict;
	STACK_OF(X509) * chain; /* valid ones: the path, leaf first */
	int64_t not_before, not_after;
};

struct cert_selection {
	struct cert_choice *v; /* to use, in order */
	size_t n;
	struct cert_choice *rejected; /* candidates that failed, why */
	size_t nrejected;
};

int certs_select_encrypt(struct certs *, const char *email, time_t now,
    struct cert_selection *, const char **error_r);
int certs_select_sign(struct certs *, const char *email, time_t now,
    struct cert_selection *, const char **error_r);
int certs_select_decrypt(struct certs *, const char *email, bool strict,
    time_t now, struct cert_selection *, const char **error_r);
void certs_selection_free(struct cert_selection *);

/* A stored certificate (additional_certificates); *x_r NULL if none. */
int certs_get(
    struct certs *, const char *fpr, X509 **x_r, const char **error_r);
/*
 * The private key stored with a certificate, unsealed. The caller frees
 * it with EVP_PKEY_free (OpenSSL wipes key material when it frees).
 */
int certs_load_key(struct certs *, const struct masterkey *, const char *fpr,
    EVP_PKEY **key_r, const char **error_r);

#endif
