/*
 * Certificates and keys in: parsing of the import formats, the store
 * record of a certificate, and the import itself. Validation and
 * selection are in certs_select.c.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "crypto/certs.h"
#include "store/masterkey.h"

/* A file with more objects than this is not a certificate bundle. */
#define PARSE_MAX_OBJECTS 1000
/*
 * Password-based key derivation that costs more than this is a denial of
 * service, not a key file: PBKDF2 and PKCS#12 iterations, scrypt N.
 * (Real files use 2,000 to 600,000 iterations, N up to 2^20.)
 */
#define PBE_MAX_ITER 2000000
#define SCRYPT_MAX_N (1 << 20)

static char errbuf[512];

static int fail(const char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	*error_r = errbuf;
	ERR_clear_error();
	return -1;
}

const char *
certs_status_name(enum cert_status s)
{
	static const char *const names[] = {
		[CERT_VALID] = "valid",
		[CERT_EXPIRED] = "expired",
		[CERT_NOT_YET_VALID] = "not yet valid",
		[CERT_REVOKED] = "revoked",
		[CERT_UNTRUSTED] = "untrusted",
		[CERT_BAD_KEY_USAGE] = "wrong key usage",
		[CERT_BLACKLISTED] = "blacklisted",
	};

	return (size_t)s < nitems(names) ? names[s] : "?";
}

/* Parsing. */

static void
bundle_add_cert(struct certs_bundle *b, X509 *x)
{
	if (b->certs == NULL && (b->certs = sk_X509_new_null()) == NULL)
		msg_fatal("out of memory");
	if (!sk_X509_push(b->certs, x))
		msg_fatal("out of memory");
}

static void
bundle_add_key(struct certs_bundle *b, EVP_PKEY *k)
{
	b->keys = xreallocarray(b->keys, b->nkeys + 1, sizeof(*b->keys));
	b->keys[b->nkeys++] = k;
}

static size_t
bundle_count(const struct certs_bundle *b)
{
	return (b->certs != NULL ? (size_t)sk_X509_num(b->certs) : 0) +
	    b->nkeys;
}

void
certs_bundle_free(struct certs_bundle *b)
{
	sk_X509_pop_free(b->certs, X509_free);
	for (size_t i = 0; i < b->nkeys; i++)
		EVP_PKEY_free(b->keys[i]);
	free(b->keys);
	memset(b, 0, sizeof(*b));
}

/* A DER object of one type that must fill the whole buffer. */
static X509 *
der_cert(const unsigned char *der, long len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, len);

	if (x != NULL && p != der + len) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static int
add_p7(struct certs_bundle *b, const unsigned char *der, long len,
    const char **error_r)
{
	const unsigned char *p = der;
	STACK_OF(X509) *certs = NULL;
	PKCS7 *p7;

	if ((p7 = d2i_PKCS7(NULL, &p, len)) == NULL || p != der + len) {
		PKCS7_free(p7);
		return fail(error_r, "not a PKCS#7 structure");
	}
	/* RFC 2315 9.1: a certificate bundle is a degenerate signedData. */
	if (PKCS7_type_is_signed(p7) && p7->d.sign != NULL)
		certs = p7->d.sign->cert;
	else if (PKCS7_type_is_signedAndEnveloped(p7) &&
	    p7->d.signed_and_enveloped != NULL)
		certs = p7->d.signed_and_enveloped->cert;
	else {
		PKCS7_free(p7);
		return fail(error_r,
		    "a PKCS#7 file that holds no "
		    "certificates");
	}
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		X509_up_ref(x);
		bundle_add_cert(b, x);
	}
	PKCS7_free(p7);
	return 0;
}

static int
add_p8(struct certs_bundle *b, const unsigned char *der, long len,
    const char **error_r)
{
	const unsigned char *p = der;
	PKCS8_PRIV_KEY_INFO *p8;
	EVP_PKEY *k;

	if ((p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, len)) == NULL ||
	    p != der + len) {
		PKCS8_PRIV_KEY_INFO_free(p8);
		return fail(error_r, "not a PKCS#8 private key");
	}
	k = EVP_PKCS82PKEY(p8);
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (k == NULL)
		return fail(error_r, "an unsupported or damaged PKCS#8 key");
	bundle_add_key(b, k);
	return 0;
}

static bool
asn1_int_in(const ASN1_INTEGER *i, long max)
{
	long v = i != NULL ? ASN1_INTEGER_get(i) : -1;

	return v >= 0 && v <= max;
}

/*
 * Whether a password-based encryption algorithm (RFC 8018 6.1, 6.2, RFC
 * 7914 7) costs a bounded effort, checked before any derivation runs.
 */
static bool
pbe_bounded(const X509_ALGOR *alg)
{
	int nid = OBJ_obj2nid(alg->algorithm);
	PBE2PARAM *p2;
	bool ok = false;

	if (nid != NID_pbes2) {
		PBEPARAM *p1 = ASN1_TYPE_unpack_sequence(
		    ASN1_ITEM_rptr(PBEPARAM), alg->parameter);
		ok = p1 != NULL && asn1_int_in(p1->iter, PBE_MAX_ITER);
		PBEPARAM_free(p1);
		return ok;
	}
	p2 = ASN1_TYPE_unpack_sequence(
	    ASN1_ITEM_rptr(PBE2PARAM), alg->parameter);
	if (p2 == NULL || p2->keyfunc == NULL)
		goto out;
	nid = OBJ_obj2nid(p2->keyfunc->algorithm);
	if (nid == NID_id_pbkdf2) {
		PBKDF2PARAM *k = ASN1_TYPE_unpack_sequence(
		    ASN1_ITEM_rptr(PBKDF2PARAM), p2->keyfunc->parameter);
		ok = k != NULL && asn1_int_in(k->iter, PBE_MAX_ITER);
		PBKDF2PARAM_free(k);
	} else if (nid == NID_id_scrypt) {
		SCRYPT_PARAMS *k = ASN1_TYPE_unpack_sequence(
		    ASN1_ITEM_rptr(SCRYPT_PARAMS), p2->keyfunc->parameter);
		ok = k != NULL && asn1_int_in(k->costParameter, SCRYPT_MAX_N) &&
		    asn1_int_in(k->blockSize, 64) &&
		    asn1_int_in(k->parallelizationParameter, 64);
		SCRYPT_PARAMS_free(k);
	}
out:
	PBE2PARAM_free(p2);
	return ok;
}

static bool
p8_bounded(const X509_SIG *sig)
{
	const X509_ALGOR *alg = NULL;

	X509_SIG_get0(sig, &alg, NULL);
	return alg != NULL && pbe_bounded(alg);
}

static bool
bags_bounded(const STACK_OF(PKCS12_SAFEBAG) * bags, int depth)
{
	for (int i = 0; i < sk_PKCS12_SAFEBAG_num(bags); i++) {
		const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, i);
		int nid = PKCS12_SAFEBAG_get_nid(bag);
		if (nid == NID_pkcs8ShroudedKeyBag &&
		    !p8_bounded(PKCS12_SAFEBAG_get0_pkcs8(bag)))
			return false;
		if (nid == NID_safeContentsBag &&
		    (depth > 3 ||
			!bags_bounded(
			    PKCS12_SAFEBAG_get0_safes(bag), depth + 1)))
			return false;
	}
	return true;
}

/* Every derivation a PKCS#12 file asks for (RFC 7292) is bounded. */
static bool
p12_bounded(PKCS12 *p12, const char *password)
{
	const ASN1_INTEGER *iter = NULL;
	STACK_OF(PKCS7) * safes;
	bool ok = true;

	if (PKCS12_mac_present(p12)) {
		PKCS12_get0_mac(NULL, NULL, NULL, &iter, p12);
		/* An absent iteration count means 1 (RFC 7292 4). */
		if (iter != NULL && !asn1_int_in(iter, PBE_MAX_ITER))
			return false;
	}
	if ((safes = PKCS12_unpack_authsafes(p12)) == NULL)
		return false;
	for (int i = 0; i < sk_PKCS7_num(safes) && ok; i++) {
		PKCS7 *p7 = sk_PKCS7_value(safes, i);
		STACK_OF(PKCS12_SAFEBAG) *bags = NULL;
		int nid = OBJ_obj2nid(p7->type);
		if (nid == NID_pkcs7_data)
			bags = PKCS12_unpack_p7data(p7);
		else if (nid == NID_pkcs7_encrypted) {
			ok = p7->d.encrypted != NULL &&
			    p7->d.encrypted->enc_data != NULL &&
			    pbe_bounded(p7->d.encrypted->enc_data->algorithm);
			if (ok)
				bags = PKCS12_unpack_p7encdata(p7, password,
				    password ? (int)strlen(password) : 0);
		}
		if (ok && bags != NULL)
			ok = bags_bounded(bags, 0);
		sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	}
	sk_PKCS7_pop_free(safes, PKCS7_free);
	ERR_clear_error();
	return ok;
}

static int
add_p8_encrypted(struct certs_bundle *b, const unsigned char *der, long len,
    const char *password, const char **error_r)
{
	const unsigned char *p = der;
	PKCS8_PRIV_KEY_INFO *p8;
	X509_SIG *sig;
	EVP_PKEY *k;

	if ((sig = d2i_X509_SIG(NULL, &p, len)) == NULL || p != der + len) {
		X509_SIG_free(sig);
		return fail(error_r, "not an encrypted PKCS#8 private key");
	}
	if (password == NULL) {
		X509_SIG_free(sig);
		return fail(error_r,
		    "the private key is encrypted: a "
		    "password is needed");
	}
	if (!p8_bounded(sig)) {
		X509_SIG_free(sig);
		return fail(error_r,
		    "the private key's encryption is "
		    "unsupported or asks for an absurd effort");
	}
	p8 = PKCS8_decrypt(sig, password, (int)strlen(password));
	X509_SIG_free(sig);
	if (p8 == NULL)
		return fail(error_r,
		    "cannot decrypt the private key: wrong "
		    "password?");
	k = EVP_PKCS82PKEY(p8);
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (k == NULL)
		return fail(error_r, "an unsupported or damaged PKCS#8 key");
	bundle_add_key(b, k);
	return 0;
}

static int
add_p12(struct certs_bundle *b, const unsigned char *der, long len,
    const char *password, const char **error_r)
{
	const unsigned char *p = der;
	STACK_OF(X509) *ca = NULL;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	PKCS12 *p12;
	int ok;

	if ((p12 = d2i_PKCS12(NULL, &p, len)) == NULL || p != der + len) {
		PKCS12_free(p12);
		return fail(error_r, "not a PKCS#12 file");
	}
	/* Before any key derivation runs. */
	if (!p12_bounded(p12, password)) {
		PKCS12_free(p12);
		return fail(error_r,
		    "a PKCS#12 file whose encryption is "
		    "unsupported or asks for an absurd effort");
	}
	if (PKCS12_mac_present(p12)) {
		if (!PKCS12_verify_mac(
			p12, password, password ? (int)strlen(password) : 0)) {
			PKCS12_free(p12);
			return fail(error_r,
			    "wrong password for the PKCS#12 "
			    "file (or a damaged file)");
		}
	}
	ok = PKCS12_parse(p12, password, &k, &x, &ca);
	PKCS12_free(p12);
	if (!ok)
		return fail(error_r,
		    "cannot read the PKCS#12 file: wrong "
		    "password or unsupported encryption");
	if (x != NULL)
		bundle_add_cert(b, x);
	if (k != NULL)
		bundle_add_key(b, k);
	for (int i = 0; i < sk_X509_num(ca); i++) {
		X509 *c = sk_X509_value(ca, i);
		X509_up_ref(c);
		bundle_add_cert(b, c);
	}
	sk_X509_pop_free(ca, X509_free);
	return 0;
}

typedef int pem_handler(struct certs_bundle *, const unsigned char *, long,
    const char *, const char **);

static int
pem_cert(struct certs_bundle *b, const unsigned char *der, long len,
    const char *password, const char **error_r)
{
	X509 *x = der_cert(der, len);

	if (x == NULL)
		return fail(error_r, "a damaged certificate");
	bundle_add_cert(b, x);
	return 0;
}

static int
pem_trusted_cert(struct certs_bundle *b, const unsigned char *der, long len,
    const char *password, const char **error_r)
{
	const unsigned char *p = der;
	/* OpenSSL's "TRUSTED CERTIFICATE": a certificate, then trust. */
	X509 *x = d2i_X509_AUX(NULL, &p, len);

	if (x == NULL || p != der + len) {
		X509_free(x);
		return fail(error_r, "a damaged certificate");
	}
	bundle_add_cert(b, x);
	return 0;
}

static int
pem_p7(struct certs_bundle *b, const unsigned char *der, long len,
    const char *password, const char **error_r)
{
	return add_p7(b, der, len, error_r);
}

static int
pem_p8(struct certs_bundle *b, const unsigned char *der, long len,
    const char *password, const char **error_r)
{
	return add_p8(b, der, len, error_r);
}

static int
pem_p8_encrypted(struct certs_bundle *b, const unsigned char *der, long len,
    const char *password, const char **error_r)
{
	return add_p8_encrypted(b, der, len, password, error_r);
}

static int
pem_traditional(struct certs_bundle *b, const unsigned char *der, long len,
    const char *password, const char **error_r)
{
	return fail(error_r,
	    "a key in the traditional OpenSSL format: "
	    "convert it to PKCS#8 (openssl pkcs8 -topk8)");
}

/* RFC 7468 labels. */
static const struct {
	const char *label;
	pem_handler *handle;
} pem_types[] = {
	{ "CERTIFICATE", pem_cert },
	{ "X509 CERTIFICATE", pem_cert },
	{ "TRUSTED CERTIFICATE", pem_trusted_cert },
	{ "PKCS7", pem_p7 },
	{ "CMS", pem_p7 },
	{ "PRIVATE KEY", pem_p8 },
	{ "ENCRYPTED PRIVATE KEY", pem_p8_encrypted },
	{ "RSA PRIVATE KEY", pem_traditional },
	{ "EC PRIVATE KEY", pem_traditional },
	{ "DSA PRIVATE KEY", pem_traditional },
};

static int
pem_block(struct certs_bundle *b, const char *name, const char *header,
    const unsigned char *der, long len, const char *password,
    const char **error_r)
{
	for (size_t i = 0; i < nitems(pem_types); i++) {
		if (strcmp(name, pem_types[i].label) != 0)
			continue;
		/* RFC 1421 encapsulation (Proc-Type): legacy encryption. */
		if (header != NULL && *header != '\0')
			return fail(error_r,
			    "a PEM block with RFC 1421 "
			    "headers: convert it to PKCS#8");
		return pem_types[i].handle(b, der, len, password, error_r);
	}
	return fail(error_r, "an unsupported PEM block '%.60s'", name);
}

static int
parse_pem(const void *data, size_t len, const char *password,
    struct certs_bundle *b, const char **error_r)
{
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long dlen = 0;
	int rc = 0;

	if (bio == NULL)
		msg_fatal("out of memory");
	while (rc == 0 && PEM_read_bio(bio, &name, &header, &der, &dlen) == 1) {
		rc = pem_block(b, name, header, der, dlen, password, error_r);
		/* The block may have been a key: wipe it. */
		OPENSSL_cleanse(der, (size_t)dlen);
		OPENSSL_free(der);
		OPENSSL_free(name);
		OPENSSL_free(header);
		if (rc == 0 && bundle_count(b) > PARSE_MAX_OBJECTS)
			rc = fail(error_r, "more than %d objects in one file",
			    PARSE_MAX_OBJECTS);
	}
	ERR_clear_error();
	BIO_free(bio);
	return rc;
}

static int
parse_der(const unsigned char *der, long len, const char *password,
    struct certs_bundle *b, const char **error_r)
{
	const unsigned char *p;
	X509_SIG *sig;
	PKCS7 *p7;
	PKCS12 *p12;
	X509 *x;

	if ((x = der_cert(der, len)) != NULL) {
		bundle_add_cert(b, x);
		return 0;
	}
	p = der;
	if ((p7 = d2i_PKCS7(NULL, &p, len)) != NULL) {
		PKCS7_free(p7);
		return add_p7(b, der, len, error_r);
	}
	p = der;
	if ((p12 = d2i_PKCS12(NULL, &p, len)) != NULL) {
		PKCS12_free(p12);
		return add_p12(b, der, len, password, error_r);
	}
	p = der;
	if ((sig = d2i_X509_SIG(NULL, &p, len)) != NULL) {
		X509_SIG_free(sig);
		return add_p8_encrypted(b, der, len, password, error_r);
	}
	if (add_p8(b, der, len, error_r) == 0)
		return 0;
	return fail(error_r,
	    "not a certificate, PKCS#7, PKCS#12 or PKCS#8 "
	    "file (PEM or DER)");
}

static bool
looks_pem(const void *data, size_t len)
{
	return memmem(data, len, "-----BEGIN ", 11) != NULL;
}

int
certs_parse(const void *data, size_t len, const char *password,
    struct certs_bundle *b, const char **error_r)
{
	int rc;

	memset(b, 0, sizeof(*b));
	if (len == 0 || len > CERTS_IMPORT_MAX)
		return fail(error_r,
		    "the file is empty or larger than %d "
		    "bytes",
		    CERTS_IMPORT_MAX);
	if (looks_pem(data, len))
		rc = parse_pem(data, len, password, b, error_r);
	else
		rc = parse_der(data, (long)len, password, b, error_r);
	ERR_clear_error();
	if (rc == 0 && bundle_count(b) == 0)
		rc = fail(error_r, "no certificate or key in the file");
	if (rc == -1)
		certs_bundle_free(b);
	return rc;
}

int
certs_parse_crls(const void *data, size_t len, STACK_OF(X509_CRL) * *crls_r,
    const char **error_r)
{
	STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
	X509_CRL *crl;
	BIO *bio;

	if (crls == NULL)
		msg_fatal("out of memory");
	*crls_r = NULL;
	if (len == 0 || len > CERTS_IMPORT_MAX) {
		sk_X509_CRL_free(crls);
		return fail(error_r, "the file is empty or too large");
	}
	if (!looks_pem(data, len)) {
		const unsigned char *p = data;
		crl = d2i_X509_CRL(NULL, &p, (long)len);
		if (crl == NULL || p != (const unsigned char *)data + len) {
			X509_CRL_free(crl);
			sk_X509_CRL_free(crls);
			return fail(error_r, "not a CRL (PEM or DER)");
		}
		sk_X509_CRL_push(crls, crl);
		*crls_r = crls;
		return 0;
	}
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL)
		msg_fatal("out of memory");
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL &&
	    sk_X509_CRL_num(crls) < PARSE_MAX_OBJECTS)
		sk_X509_CRL_push(crls, crl);
	X509_CRL_free(crl); /* past the limit */
	BIO_free(bio);
	ERR_clear_error();
	if (sk_X509_CRL_num(crls) == 0) {
		sk_X509_CRL_free(crls);
		return fail(error_r, "no CRL in the file");
	}
	*crls_r = crls;
	return 0;
}

/* The store record of a certificate. */

static void
hex(const unsigned char *p, size_t n, char *out)
{
	static const char digit[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digit[p[i] >> 4];
		out[2 * i + 1] = digit[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/*
 * A certificate's fingerprint is asked for several times per message
 * (the policy, the plan's key, the log line), mostly of the same parsed
 * X509 kept in the engine's caches: it is computed once and kept with the
 * X509 (ex_data, freed with it). The admin's threads may share an X509:
 * the lock.
 */
static int fpr_index = -1;
static pthread_once_t fpr_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t fpr_lock = PTHREAD_MUTEX_INITIALIZER;

static void
fpr_free(
    void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	free(ptr);
}

static void
fpr_index_new(void)
{
	fpr_index = X509_get_ex_new_index(0, NULL, NULL, NULL, fpr_free);
}

void
certs_fpr(X509 *x, char fpr[STORE_FPR_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char *kept = NULL;

	pthread_once(&fpr_once, fpr_index_new);
	if (fpr_index >= 0) {
		pthread_mutex_lock(&fpr_lock);
		if ((kept = X509_get_ex_data(x, fpr_index)) != NULL)
			memcpy(fpr, kept, STORE_FPR_LEN + 1);
		pthread_mutex_unlock(&fpr_lock);
		if (kept != NULL)
			return;
	}
	if (!X509_digest(x, EVP_sha256(), md, &n) || n != 32)
		msg_panic("certs_fpr: SHA-256 failed");
	hex(md, 32, fpr);
	if (fpr_index >= 0) {
		kept = xstrdup(fpr);
		pthread_mutex_lock(&fpr_lock);
		if (X509_get_ex_data(x, fpr_index) != NULL ||
		    !X509_set_ex_data(x, fpr_index, kept))
			free(kept);
		pthread_mutex_unlock(&fpr_lock);
	}
}

static void
sha256_hex(const unsigned char *p, size_t n, char out[STORE_FPR_LEN + 1])
{
	unsigned char md[32];

	if (!EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL))
		msg_panic("SHA-256 failed");
	hex(md, 32, out);
}

/* SHA-256 of a SubjectPublicKeyInfo: finds a key's certificates. */
static int
spki_hash(EVP_PKEY *k, char out[STORE_FPR_LEN + 1])
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k, &der);

	if (n <= 0)
		return -1;
	sha256_hex(der, (size_t)n, out);
	OPENSSL_free(der);
	return 0;
}

void
certs_name_hash(const X509_NAME *name, char out[9])
{
	int ok = 0;
	unsigned long h = X509_NAME_hash_ex(name, NULL, NULL, &ok);

	snprintf(out, 9, "%08lx", ok ? h & 0xffffffffUL : 0UL);
}

/* RFC 2253 text, UTF-8 kept, control characters escaped. */
char *
certs_name_text(const X509_NAME *name)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *s;
	long n;

	if (bio == NULL)
		msg_fatal("out of memory");
	X509_NAME_print_ex(
	    bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	n = BIO_get_mem_data(bio, &data);
	s = xstrndup(data != NULL ? data : "", n > 0 ? (size_t)n : 0);
	BIO_free(bio);
	return s;
}

int64_t
certs_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

static void
add_email(struct strlist *l, const unsigned char *s, int len)
{
	const char *why;
	char *raw, *c;

	/* An address with a NUL inside is an attack, not an address. */
	if (len <= 0 || memchr(s, '\0', (size_t)len) != NULL || len > 320)
		return;
	raw = xstrndup((const char *)s, (size_t)len);
	if ((c = store_canon_email(raw, &why)) != NULL &&
	    !strlist_contains_ci(l, c))
		strlist_add(l, c);
	free(c);
	free(raw);
}

/* subjectAltName rfc822Name (RFC 8550 3) and subject emailAddress. */
static void
cert_emails(X509 *x, struct strlist *out)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const X509_NAME *subj = X509_get_subject_name(x);
	int pos = -1;

	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_EMAIL)
			add_email(out, ASN1_STRING_get0_data(g->d.rfc822Name),
			    ASN1_STRING_length(g->d.rfc822Name));
	}
	GENERAL_NAMES_free(gens);
	while ((pos = X509_NAME_get_index_by_NID(
		    subj, NID_pkcs9_emailAddress, pos)) >= 0) {
		ASN1_STRING *v =
		    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, pos));
		unsigned char *u = NULL;
		int n = ASN1_STRING_to_UTF8(&u, v);
		if (n > 0)
			add_email(out, u, n);
		OPENSSL_free(u);
	}
	ERR_clear_error();
}

int
certs_describe(X509 *x, struct store_cert *c, const char **error_r)
{
	const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
	BIGNUM *bn;
	char *h;
	unsigned char *der = NULL;
	int n;

	memset(c, 0, sizeof(*c));
	/* Caches the extensions; an inconsistent set is refused. */
	if (X509_check_purpose(x, -1, 0) != 1 ||
	    (X509_get_extension_flags(x) & EXFLAG_INVALID))
		return fail(error_r, "a certificate with invalid extensions");
	if ((n = i2d_X509(x, &der)) <= 0)
		return fail(error_r, "cannot encode the certificate");
	c->der = xmalloc((size_t)n);
	memcpy(c->der, der, (size_t)n);
	c->der_len = (size_t)n;
	OPENSSL_free(der);
	certs_fpr(x, c->fpr);
	c->subject = certs_name_text(X509_get_subject_name(x));
	c->issuer = certs_name_text(X509_get_issuer_name(x));
	if ((bn = ASN1_INTEGER_to_BN(serial, NULL)) == NULL ||
	    (h = BN_bn2hex(bn)) == NULL) {
		BN_free(bn);
		certs_describe_free(c);
		return fail(error_r, "a certificate without a serial number");
	}
	c->serial = xstrdup(h);
	OPENSSL_free(h);
	BN_free(bn);
	certs_name_hash(X509_get_subject_name(x), c->subject_hash);
	certs_name_hash(X509_get_issuer_name(x), c->issuer_hash);
	if (X509_get0_pubkey(x) == NULL ||
	    spki_hash(X509_get0_pubkey(x), c->spki_sha256) == -1) {
		certs_describe_free(c);
		return fail(error_r,
		    "a certificate with an unsupported "
		    "public key");
	}
	c->not_before = certs_time(X509_get0_notBefore(x));
	c->not_after = certs_time(X509_get0_notAfter(x));
	c->key_usage = X509_get_key_usage(x);
	c->ext_key_usage = X509_get_extended_key_usage(x);
	c->is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
	cert_emails(x, &c->emails);
	ERR_clear_error();
	return 0;
}

void
certs_describe_free(struct store_cert *c)
{
	free(c->der);
	free(c->subject);
	free(c->issuer);
	free(c->serial);
	strlist_free(&c->emails);
	memset(c, 0, sizeof(*c));
}

/* Import. */

/* Issued by itself: its own name as issuer, its own key signed it. */
static bool
self_signed(X509 *x)
{
	bool ok = X509_NAME_cmp(
		      X509_get_subject_name(x), X509_get_issuer_name(x)) == 0 &&
	    X509_verify(x, X509_get0_pubkey(x)) == 1;

	ERR_clear_error();
	return ok;
}

/* A trust anchor: self-signed, and its key usage allows signing certs. */
static bool
root_capable(X509 *x)
{
	bool ok = self_signed(x) && X509_check_issued(x, x) == X509_V_OK;

	ERR_clear_error();
	return ok;
}

static struct certs_imported *
result_add(
    struct certs_import_result *r, const struct store_cert *c, bool added)
{
	struct certs_imported *e;

	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].fpr, c->fpr) == 0)
			return &r->v[i];
	r->v = xreallocarray(r->v, r->n + 1, sizeof(*r->v));
	e = &r->v[r->n++];
	memset(e, 0, sizeof(*e));
	memcpy(e->fpr, c->fpr, sizeof(e->fpr));
	e->kind = c->kind;
	e->added = added;
	e->subject = xstrdup(c->subject);
	return e;
}

static int
import_cert(struct store *st, X509 *x, enum certs_import_as as,
    const char *bind, struct certs_import_result *r, const char **error_r)
{
	struct store_cert c, *have = NULL;
	struct certs_imported *e;
	bool added;
	int rc = -1;

	if (certs_describe(x, &c, error_r) == -1)
		return -1;
	if (as == CERTS_AS_ROOTS) {
		/* Only a self-signed CA can be a trust anchor here. */
		if (!c.is_ca && X509_get_version(x) != X509_VERSION_1) {
			fail(error_r, "%s is not a CA certificate", c.subject);
			goto out;
		}
		if (!root_capable(x)) {
			fail(error_r,
			    "%s is not self-signed, or may not sign "
			    "certificates: import it with cert import",
			    c.subject);
			goto out;
		}
		c.kind = STORE_CERT_ROOT;
	} else
		c.kind = c.is_ca ? STORE_CERT_INTERMEDIATE : STORE_CERT_END;
	if (store_cert_get(st, c.fpr, false, &have, error_r) == -1 ||
	    store_cert_put(st, &c, &added, error_r) == -1)
		goto out;
	/*
	 * A stored root stays a root: report what the store holds. An
	 * intermediate that a root import trusts now counts as added.
	 */
	if (have != NULL) {
		added =
		    have->kind != STORE_CERT_ROOT && c.kind == STORE_CERT_ROOT;
		if (have->kind == STORE_CERT_ROOT)
			c.kind = STORE_CERT_ROOT;
	}
	e = result_add(r, &c, added);
	/* A user's self-signed certificate may carry the CA flag. */
	if (bind != NULL && (c.kind == STORE_CERT_END || self_signed(x))) {
		if (store_bind(st, c.fpr, bind, error_r) == -1)
			goto out;
		e->bound = true;
	}
	rc = 0;
out:
	store_cert_free(&have);
	certs_describe_free(&c);
	return rc;
}

/* Seals a key under the master key, bound to its certificate. */
static int
store_sealed_key(struct store *st, const struct masterkey *mk, const char *fpr,
    EVP_PKEY *k, const char **error_r)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
	unsigned char *der = NULL, *blob = NULL;
	char aad[128];
	size_t blen = 0;
	int n, rc;

	if (p8 == NULL || (n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der)) <= 0) {
		PKCS8_PRIV_KEY_INFO_free(p8);
		return fail(error_r, "cannot encode the private key");
	}
	PKCS8_PRIV_KEY_INFO_free(p8);
	snprintf(aad, sizeof(aad), "mailseal private key v1 %s", fpr);
	rc = masterkey_seal(mk, aad, der, (size_t)n, &blob, &blen, error_r);
	OPENSSL_cleanse(der, (size_t)n);
	OPENSSL_free(der);
	if (rc == 0)
		rc = store_key_put(st, fpr, blob, blen, error_r);
	free(blob);
	return rc;
}

static void
mark_key(struct certs_import_result *r, const char *fpr)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].fpr, fpr) == 0)
			r->v[i].key = true;
}

/*
 * Stores a key with every certificate that has its public key: those of
 * the file (by comparing keys) and those already stored (by the SHA-256
 * of the SubjectPublicKeyInfo).
 */
static int
import_key(struct store *st, const struct masterkey *mk, EVP_PKEY *k,
    const struct certs_bundle *b, struct certs_import_result *r,
    const char **error_r)
{
	struct store_cert_query q = { .kind = -1 };
	struct store_certs found;
	char spki[STORE_FPR_LEN + 1], fpr[STORE_FPR_LEN + 1];
	size_t matched = 0;

	for (int i = 0; i < sk_X509_num(b->certs); i++) {
		X509 *x = sk_X509_value(b->certs, i);
		if (EVP_PKEY_eq(X509_get0_pubkey(x), k) != 1)
			continue;
		certs_fpr(x, fpr);
		if (store_sealed_key(st, mk, fpr, k, error_r) == -1)
			return -1;
		mark_key(r, fpr);
		matched++;
	}
	ERR_clear_error();
	if (spki_hash(k, spki) == -1)
		return fail(error_r, "a private key of an unsupported type");
	q.spki_sha256 = spki;
	q.with_der = true;
	if (store_cert_find(st, &q, &found, error_r) == -1)
		return -1;
	for (size_t i = 0; i < found.n; i++) {
		const unsigned char *p = found.v[i].der;
		bool done = false;
		/* Stored with a certificate of this file already. */
		for (size_t j = 0; j < r->n; j++)
			done |= r->v[j].key &&
			    strcmp(r->v[j].fpr, found.v[i].fpr) == 0;
		if (done)
			continue;
		X509 *x = d2i_X509(NULL, &p, (long)found.v[i].der_len);
		bool same =
		    x != NULL && EVP_PKEY_eq(X509_get0_pubkey(x), k) == 1;
		X509_free(x);
		if (same &&
		    store_sealed_key(st, mk, found.v[i].fpr, k, error_r) ==
			-1) {
			store_certs_free(&found);
			return -1;
		}
		matched += same;
	}
	store_certs_free(&found);
	ERR_clear_error();
	if (matched == 0)
		return fail(error_r,
		    "a private key matches no certificate in "
		    "the file or in the store: import its "
		    "certificate with it");
	return 0;
}

static int
import_all(struct store *st, const struct masterkey *mk,
    const struct certs_bundle *b, enum certs_import_as as, const char *bind,
    struct certs_import_result *r, const char **error_r)
{
	size_t bound = 0;

	if (b->nkeys > 0 && as == CERTS_AS_ROOTS)
		return fail(error_r,
		    "a root import takes certificates only, "
		    "not private keys");
	if (b->nkeys > 0 && mk == NULL)
		return fail(error_r,
		    "the master key is needed to store "
		    "private keys");
	for (int i = 0; i < sk_X509_num(b->certs); i++)
		if (import_cert(st, sk_X509_value(b->certs, i), as, bind, r,
			error_r) == -1)
			return -1;
	for (size_t i = 0; i < r->n; i++)
		bound += r->v[i].bound;
	if (bind != NULL && bound == 0)
		return fail(error_r,
		    "nothing to bind: the file has no end-entity or "
		    "self-signed certificate");
	for (size_t i = 0; i < b->nkeys; i++)
		if (import_key(st, mk, b->keys[i], b, r, error_r) == -1)
			return -1;
	r->nkeys = b->nkeys;
	return 0;
}

int
certs_import(struct store *st, const struct masterkey *mk,
    const struct certs_bundle *b, enum certs_import_as as, const char *bind,
    struct certs_import_result *r, const char **error_r)
{
	char *target = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	if (bind != NULL &&
	    (target = store_canon_target(bind, error_r)) == NULL)
		return -1;
	if (store_begin(st, error_r) == -1) {
		free(target);
		return -1;
	}
	rc = import_all(st, mk, b, as, target, r, error_r);
	free(target);
	if (rc == 0 && store_commit(st, error_r) == 0)
		return 0;
	store_rollback(st);
	certs_import_result_free(r);
	return -1;
}

int
certs_import_x509(struct store *st, STACK_OF(X509) * certs,
    struct certs_import_result *r, const char **error_r)
{
	struct certs_bundle b = { .certs = certs };

	return certs_import(st, NULL, &b, CERTS_AS_CERTS, NULL, r, error_r);
}

void
certs_import_result_free(struct certs_import_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].subject);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* CRLs. */

/* A stored certificate of the CRL's issuer whose key verifies it. */
static int
crl_issuer_verifies(
    struct store *st, X509_CRL *crl, bool *ok_r, const char **error_r)
{
	struct store_cert_query q = { .kind = -1, .with_der = true };
	struct store_certs found;
	char h[9];

	*ok_r = false;
	certs_name_hash(X509_CRL_get_issuer(crl), h);
	q.subject_hash = h;
	if (store_cert_find(st, &q, &found, error_r) == -1)
		return -1;
	for (size_t i = 0; i < found.n && !*ok_r; i++) {
		const unsigned char *p = found.v[i].der;
		X509 *x = d2i_X509(NULL, &p, (long)found.v[i].der_len);
		*ok_r = x != NULL &&
		    X509_NAME_cmp(X509_get_subject_name(x),
			X509_CRL_get_issuer(crl)) == 0 &&
		    X509_CRL_verify(crl, X509_get0_pubkey(x)) == 1;
		X509_free(x);
	}
	store_certs_free(&found);
	ERR_clear_error();
	return 0;
}

static char *
crl_number(X509_CRL *crl)
{
	ASN1_INTEGER *num =
	    X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	BIGNUM *bn = num != NULL ? ASN1_INTEGER_to_BN(num, NULL) : NULL;
	char *h = bn != NULL ? BN_bn2hex(bn) : NULL, *s;

	s = h != NULL ? xstrdup(h) : NULL;
	OPENSSL_free(h);
	BN_free(bn);
	ASN1_INTEGER_free(num);
	ERR_clear_error();
	return s;
}

static int
import_crl(struct store *st, X509_CRL *crl, struct certs_crl_imported *out,
    const char **error_r)
{
	struct store_crl c;
	unsigned char *der = NULL;
	bool ok;
	int n, rc;

	memset(&c, 0, sizeof(c));
	memset(out, 0, sizeof(*out));
	c.issuer = certs_name_text(X509_CRL_get_issuer(crl));
	out->issuer = xstrdup(c.issuer);
	if (crl_issuer_verifies(st, crl, &ok, error_r) == -1) {
		free(c.issuer);
		return -1;
	}
	if (!ok) {
		fail(error_r,
		    "the CRL of %s is not signed by a stored certificate of "
		    "its issuer: import the issuer first",
		    c.issuer);
		free(c.issuer);
		return -1;
	}
	if ((n = i2d_X509_CRL(crl, &der)) <= 0) {
		free(c.issuer);
		return fail(error_r, "cannot encode the CRL");
	}
	sha256_hex(der, (size_t)n, c.fpr);
	memcpy(out->fpr, c.fpr, sizeof(out->fpr));
	c.der = der;
	c.der_len = (size_t)n;
	certs_name_hash(X509_CRL_get_issuer(crl), c.issuer_hash);
	c.number = crl_number(crl);
	c.this_update = certs_time(X509_CRL_get0_lastUpdate(crl));
	c.next_update = certs_time(X509_CRL_get0_nextUpdate(crl));
	rc = store_crl_put(st, &c, &out->added, error_r);
	OPENSSL_free(der);
	free(c.issuer);
	free(c.number);
	return rc;
}

int
certs_import_crls(struct store *st, const void *data, size_t len,
    struct certs_crl_imported **v_r, size_t *n_r, const char **error_r)
{
	STACK_OF(X509_CRL) * crls;
	struct certs_crl_imported *v;
	size_t n;
	int rc = 0;

	*v_r = NULL;
	*n_r = 0;
	if (certs_parse_crls(data, len, &crls, error_r) == -1)
		return -1;
	n = (size_t)sk_X509_CRL_num(crls);
	v = xcalloc(n, sizeof(*v));
	if (store_begin(st, error_r) == -1)
		rc = -1;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = import_crl(
		    st, sk_X509_CRL_value(crls, (int)i), &v[i], error_r);
	if (rc == 0 && store_commit(st, error_r) == 0) {
		*v_r = v;
		*n_r = n;
	} else {
		store_rollback(st);
		certs_crl_imported_free(v, n);
		rc = -1;
	}
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	return rc;
}

void
certs_crl_imported_free(struct certs_crl_imported *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].issuer);
	free(v);
}
