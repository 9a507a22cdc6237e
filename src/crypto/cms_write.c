#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "crypto/cms_write.h"

/* DER pieces. */

#define TAG_INTEGER 0x02
#define TAG_OCTET_STRING 0x04
#define TAG_NULL 0x05
#define TAG_UTC_TIME 0x17
#define TAG_GENERALIZED_TIME 0x18
#define TAG_SEQUENCE 0x30
#define TAG_SET 0x31
#define TAG_CONTEXT_0 0xa0 /* [0], constructed */

struct der {
	unsigned char *p;
	size_t len, cap;
};

static void
der_reserve(struct der *d, size_t n)
{
	if (d->cap - d->len >= n)
		return;
	while (d->cap - d->len < n)
		d->cap = d->cap == 0 ? 256 : d->cap * 2;
	d->p = xreallocarray(d->p, d->cap, 1);
}

static void
der_put(struct der *d, const void *p, size_t n)
{
	if (n == 0)
		return;
	der_reserve(d, n);
	memcpy(d->p + d->len, p, n);
	d->len += n;
}

/* A definite length (X.690 8.1.3); returns its size. */
static size_t
length_octets(unsigned char *out, size_t len)
{
	size_t n = 0;

	if (len < 0x80) {
		out[0] = (unsigned char)len;
		return 1;
	}
	for (size_t l = len; l > 0; l >>= 8)
		n++;
	out[0] = (unsigned char)(0x80 | n);
	for (size_t i = 0; i < n; i++)
		out[n - i] = (unsigned char)(len >> (8 * i));
	return n + 1;
}

static void
der_tlv(struct der *d, unsigned char tag, const void *v, size_t n)
{
	unsigned char h[1 + 9];
	size_t hl;

	h[0] = tag;
	hl = 1 + length_octets(h + 1, n);
	der_put(d, h, hl);
	der_put(d, v, n);
}

/* Makes what was put since from the content of a TLV of tag. */
static void
der_wrap(struct der *d, unsigned char tag, size_t from)
{
	unsigned char h[1 + 9];
	size_t hl, n = d->len - from;

	h[0] = tag;
	hl = 1 + length_octets(h + 1, n);
	der_reserve(d, hl);
	memmove(d->p + from + hl, d->p + from, n);
	memcpy(d->p + from, h, hl);
	d->len += hl;
}

/* A constructed TLV of indefinite length (X.690 8.1.3.6), opened. */
static void
der_indefinite(struct der *d, unsigned char tag)
{
	unsigned char h[2] = { tag, 0x80 };

	der_put(d, h, sizeof(h));
}

static void
der_oid(struct der *d, int nid)
{
	const ASN1_OBJECT *o = OBJ_nid2obj(nid);
	unsigned char *p;
	int n;

	if (o == NULL || (n = i2d_ASN1_OBJECT(o, NULL)) <= 0)
		msg_panic("cms_write: no object for nid %d", nid);
	der_reserve(d, (size_t)n);
	p = d->p + d->len;
	if (i2d_ASN1_OBJECT(o, &p) != n)
		msg_panic("cms_write: cannot encode nid %d", nid);
	d->len += (size_t)n;
}

/* The DER of an OpenSSL object, by its i2d function. */
#define DER_I2D(d, fn, obj)                                                    \
	do {                                                                   \
		int n_ = fn(obj, NULL);                                        \
		unsigned char *p_;                                             \
		if (n_ <= 0)                                                   \
			return -1;                                             \
		der_reserve(d, (size_t)n_);                                    \
		p_ = (d)->p + (d)->len;                                        \
		if (fn(obj, &p_) != n_)                                        \
			return -1;                                             \
		(d)->len += (size_t)n_;                                        \
	} while (0)

/* IssuerAndSerialNumber (RFC 5652 10.2.4) of a certificate. */
static int
der_issuer_serial(struct der *d, X509 *cert)
{
	size_t start = d->len;

	DER_I2D(d, i2d_X509_NAME, X509_get_issuer_name(cert));
	DER_I2D(d, i2d_ASN1_INTEGER, X509_get0_serialNumber(cert));
	der_wrap(d, TAG_SEQUENCE, start);
	return 0;
}

/* An element of a SET OF, kept apart for sorting. */
struct elem {
	unsigned char *p;
	size_t len;
};

/* X.690 11.6: ascending, as octet strings, the shorter one first on a tie. */
static int
elem_cmp(const void *a, const void *b)
{
	const struct elem *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->p, y->p, n);

	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

/* A SET OF (or an IMPLICIT one, by tag) of the elements, in DER order. */
static void
der_set_of(struct der *d, unsigned char tag, struct elem *e, size_t n)
{
	size_t start = d->len;

	qsort(e, n, sizeof(*e), elem_cmp);
	for (size_t i = 0; i < n; i++)
		der_put(d, e[i].p, e[i].len);
	der_wrap(d, tag, start);
}

static void
elems_free(struct elem *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].p);
	free(e);
}

/* Key operations, set up once per key. */

enum kop { KOP_SIGN, KOP_ENCRYPT };

#define KCTX_MAX 16

static struct {
	EVP_PKEY *key; /* a reference of ours */
	enum kop op;
	int md_nid;
	EVP_PKEY_CTX *ctx;
} kctx[KCTX_MAX];
static unsigned kctx_next;
static pthread_mutex_t kctx_lock = PTHREAD_MUTEX_INITIALIZER;

static void
kctx_clear(size_t i)
{
	EVP_PKEY_CTX_free(kctx[i].ctx);
	EVP_PKEY_free(kctx[i].key);
	memset(&kctx[i], 0, sizeof(kctx[i]));
}

/*
 * The operation on key, set up (RSA, PKCS #1 v1.5 padding). Called, and
 * the context used, with kctx_lock held. The reference kept makes the
 * pointer a safe key: the key cannot be freed and another one take its
 * place while it is here.
 */
static EVP_PKEY_CTX *
kctx_get(EVP_PKEY *key, enum kop op, const EVP_MD *md)
{
	int md_nid = md != NULL ? EVP_MD_get_type(md) : NID_undef;
	EVP_PKEY_CTX *ctx;
	size_t i;

	for (i = 0; i < KCTX_MAX; i++)
		if (kctx[i].key == key && kctx[i].op == op &&
		    kctx[i].md_nid == md_nid)
			return kctx[i].ctx;
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL)
		return NULL;
	if (op == KOP_SIGN ? EVP_PKEY_sign_init(ctx) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0
			   : EVP_PKEY_encrypt_init(ctx) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	if (!EVP_PKEY_up_ref(key)) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	i = kctx_next++ % KCTX_MAX;
	kctx_clear(i);
	kctx[i].key = key;
	kctx[i].op = op;
	kctx[i].md_nid = md_nid;
	kctx[i].ctx = ctx;
	return ctx;
}

void
cmsw_forget_keys(void)
{
	pthread_mutex_lock(&kctx_lock);
	for (size_t i = 0; i < KCTX_MAX; i++)
		kctx_clear(i);
	pthread_mutex_unlock(&kctx_lock);
}

bool
cmsw_rsa_key(const EVP_PKEY *key)
{
	return key != NULL && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
}

/* SignedData. */

/*
 * The SMIMECapabilities attribute's value (RFC 8551 2.5.2): the list
 * OpenSSL's CMS_add_standard_smimecap() makes, asking the providers for
 * each cipher, made and encoded once.
 */
static unsigned char *smimecap_der;
static int smimecap_len;
static pthread_once_t smimecap_once = PTHREAD_ONCE_INIT;

static void
smimecap_init(void)
{
	STACK_OF(X509_ALGOR) *algs = NULL;

	if (CMS_add_standard_smimecap(&algs))
		smimecap_len = ASN1_item_i2d((ASN1_VALUE *)algs, &smimecap_der,
		    ASN1_ITEM_rptr(X509_ALGORS));
	sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
	if (smimecap_len <= 0) {
		smimecap_der = NULL;
		smimecap_len = 0;
	}
}

const unsigned char *
cmsw_smimecap(size_t *len_r)
{
	pthread_once(&smimecap_once, smimecap_init);
	*len_r = (size_t)smimecap_len;
	return smimecap_der;
}

/* An AlgorithmIdentifier of a SHA-2 digest: no parameters (RFC 5754 2). */
static void
der_digest_alg(struct der *d, int nid)
{
	size_t start = d->len;

	der_oid(d, nid);
	der_wrap(d, TAG_SEQUENCE, start);
}

/* Attribute ::= SEQUENCE { attrType, SET { value } }, value DER given. */
static void
attr_elem(struct elem *e, int nid, const unsigned char *v, size_t n)
{
	struct der d = { 0 };
	size_t start;

	der_oid(&d, nid);
	start = d.len;
	der_put(&d, v, n);
	der_wrap(&d, TAG_SET, start);
	der_wrap(&d, TAG_SEQUENCE, 0);
	e->p = d.p;
	e->len = d.len;
}

/* signingTime: UTCTime through 2049, GeneralizedTime after (RFC 5652 11.3). */
static int
time_value(struct der *d, time_t now)
{
	struct tm tm;
	char s[24];
	int n;

	if (gmtime_r(&now, &tm) == NULL)
		return -1;
	if (tm.tm_year >= 50 && tm.tm_year < 150) {
		n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ",
		    tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		der_tlv(d, TAG_UTC_TIME, s, (size_t)n);
	} else {
		n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		der_tlv(d, TAG_GENERALIZED_TIME, s, (size_t)n);
	}
	return 0;
}

/* The signed attributes, each an element, in no order yet. */
static int
signed_attrs(
    struct elem *a, const unsigned char *digest, size_t digest_len, time_t now)
{
	struct der v = { 0 };
	size_t caplen;
	const unsigned char *cap = cmsw_smimecap(&caplen);

	der_oid(&v, NID_pkcs7_data);
	attr_elem(&a[0], NID_pkcs9_contentType, v.p, v.len);
	v.len = 0;
	if (time_value(&v, now) == -1) {
		free(v.p);
		return -1;
	}
	attr_elem(&a[1], NID_pkcs9_signingTime, v.p, v.len);
	v.len = 0;
	der_tlv(&v, TAG_OCTET_STRING, digest, digest_len);
	attr_elem(&a[2], NID_pkcs9_messageDigest, v.p, v.len);
	attr_elem(&a[3], NID_SMIMECapabilities, cap, caplen);
	free(v.p);
	return 0;
}

/*
 * The signature over the DER of the signed attributes with the SET OF
 * tag (RFC 5652 5.4): what the [0] IMPLICIT field carries, retagged.
 */
static int
sign_attrs(EVP_PKEY *key, const EVP_MD *md, const unsigned char *set,
    size_t set_len, struct der *sig)
{
	unsigned char h[EVP_MAX_MD_SIZE];
	unsigned int hl;
	EVP_PKEY_CTX *ctx;
	size_t sl = 0;
	int rc = -1;

	if (EVP_Digest(set, set_len, h, &hl, md, NULL) != 1)
		return -1;
	pthread_mutex_lock(&kctx_lock);
	if ((ctx = kctx_get(key, KOP_SIGN, md)) != NULL &&
	    EVP_PKEY_sign(ctx, NULL, &sl, h, hl) > 0) {
		der_reserve(sig, sl);
		if (EVP_PKEY_sign(ctx, sig->p + sig->len, &sl, h, hl) > 0) {
			sig->len += sl;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&kctx_lock);
	return rc;
}

/* The certificates: the signer's, then the chain, each once. */
static int
cert_elems(X509 *cert, STACK_OF(X509) * chain, struct elem **e_r, size_t *n_r)
{
	int nchain = chain != NULL ? sk_X509_num(chain) : 0;
	struct elem *e = xcalloc((size_t)nchain + 1, sizeof(*e));
	X509 **have = xcalloc((size_t)nchain + 1, sizeof(*have));
	size_t n = 0;
	int len;

	for (int i = -1; i < nchain; i++) {
		X509 *c = i < 0 ? cert : sk_X509_value(chain, i);
		bool dup = false;

		for (size_t k = 0; k < n && !dup; k++)
			dup = X509_cmp(have[k], c) == 0;
		if (dup)
			continue;
		e[n].p = NULL;
		if ((len = i2d_X509(c, &e[n].p)) <= 0) {
			free(have);
			elems_free(e, n);
			return -1;
		}
		e[n].len = (size_t)len;
		have[n++] = c;
	}
	free(have);
	*e_r = e;
	*n_r = n;
	return 0;
}

/* The length of a DER header (tag and definite length) at p. */
static size_t
header_len(const unsigned char *p)
{
	return 2 + ((p[1] & 0x80) != 0 ? (size_t)(p[1] & 0x7f) : 0);
}

int
cmsw_signed(X509 *cert, EVP_PKEY *key, STACK_OF(X509) * chain, const EVP_MD *md,
    const unsigned char *digest, size_t digest_len, time_t now,
    unsigned char **der_r, size_t *len_r)
{
	struct elem attrs[4] = { 0 }, *certs = NULL;
	struct der set = { 0 }, sig = { 0 }, d = { 0 };
	int md_nid = EVP_MD_get_type(md);
	size_t ncerts = 0, caplen, sd, si, start, hl;
	int rc = -1;

	if (cmsw_smimecap(&caplen) == NULL || !cmsw_rsa_key(key) ||
	    signed_attrs(attrs, digest, digest_len, now) == -1)
		goto out;
	der_set_of(&set, TAG_SET, attrs, nitems(attrs));
	if (sign_attrs(key, md, set.p, set.len, &sig) == -1 ||
	    cert_elems(cert, chain, &certs, &ncerts) == -1)
		goto out;

	/* ContentInfo ::= SEQUENCE { signedData, [0] EXPLICIT SignedData } */
	der_oid(&d, NID_pkcs7_signed);
	sd = d.len;
	/* version 1: issuerAndSerialNumber, id-data (RFC 5652 5.1) */
	der_tlv(&d, TAG_INTEGER, "\x01", 1);
	start = d.len;
	der_digest_alg(&d, md_nid);
	der_wrap(&d, TAG_SET, start);
	/* encapContentInfo: id-data, no eContent (detached) */
	start = d.len;
	der_oid(&d, NID_pkcs7_data);
	der_wrap(&d, TAG_SEQUENCE, start);
	der_set_of(&d, TAG_CONTEXT_0, certs, ncerts);

	/* SignerInfo */
	si = d.len;
	der_tlv(&d, TAG_INTEGER, "\x01", 1);
	if (der_issuer_serial(&d, cert) == -1)
		goto out;
	der_digest_alg(&d, md_nid);
	/* signedAttrs [0] IMPLICIT: the SET signed, retagged */
	hl = header_len(set.p);
	der_tlv(&d, TAG_CONTEXT_0, set.p + hl, set.len - hl);
	/* signatureAlgorithm: rsaEncryption, NULL (RFC 3370 3.2) */
	start = d.len;
	der_oid(&d, NID_rsaEncryption);
	der_tlv(&d, TAG_NULL, NULL, 0);
	der_wrap(&d, TAG_SEQUENCE, start);
	der_tlv(&d, TAG_OCTET_STRING, sig.p, sig.len);
	der_wrap(&d, TAG_SEQUENCE, si);
	der_wrap(&d, TAG_SET, si);

	der_wrap(&d, TAG_SEQUENCE, sd);
	der_wrap(&d, TAG_CONTEXT_0, sd);
	der_wrap(&d, TAG_SEQUENCE, 0);
	*der_r = d.p;
	*len_r = d.len;
	d.p = NULL;
	rc = 0;
out:
	for (size_t i = 0; i < nitems(attrs); i++)
		free(attrs[i].p);
	elems_free(certs, ncerts);
	free(set.p);
	free(sig.p);
	free(d.p);
	return rc;
}

/* EnvelopedData. */

#define ENV_PIECE 4096 /* plaintext octets per OCTET STRING piece */

/* The ends of the five indefinite lengths the header opens. */
static const unsigned char env_trailer[10] = { 0 };

struct env {
	EVP_CIPHER_CTX *cctx;
	struct der head; /* written before the first piece */
	bool head_done, finished;
	size_t n; /* plaintext in buf */
	unsigned char buf[ENV_PIECE];
	unsigned char out[ENV_PIECE + EVP_MAX_BLOCK_LENGTH * 2 + 8];
};

/* KeyTransRecipientInfo (RFC 5652 6.2.1), version 0, PKCS #1 v1.5. */
static int
ktri_elem(X509 *cert, const unsigned char *key, size_t keylen, struct elem *e)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	struct der ek = { 0 }, d = { 0 };
	EVP_PKEY_CTX *ctx;
	size_t ekl = 0, start;
	int ok = 0;

	if (!cmsw_rsa_key(pk))
		return -1;
	pthread_mutex_lock(&kctx_lock);
	if ((ctx = kctx_get(pk, KOP_ENCRYPT, NULL)) != NULL &&
	    EVP_PKEY_encrypt(ctx, NULL, &ekl, key, keylen) > 0) {
		der_reserve(&ek, ekl);
		ok = EVP_PKEY_encrypt(ctx, ek.p, &ekl, key, keylen) > 0;
	}
	pthread_mutex_unlock(&kctx_lock);
	if (!ok) {
		free(ek.p);
		return -1;
	}
	der_tlv(&d, TAG_INTEGER, "\x00", 1);
	if (der_issuer_serial(&d, cert) == -1) {
		free(ek.p);
		free(d.p);
		return -1;
	}
	start = d.len;
	der_oid(&d, NID_rsaEncryption);
	der_tlv(&d, TAG_NULL, NULL, 0);
	der_wrap(&d, TAG_SEQUENCE, start);
	der_tlv(&d, TAG_OCTET_STRING, ek.p, ekl);
	der_wrap(&d, TAG_SEQUENCE, 0);
	free(ek.p);
	e->p = d.p;
	e->len = d.len;
	return 0;
}

/*
 * The header, up to the first piece of the encrypted content:
 *
 *   ContentInfo { envelopedData, [0] { EnvelopedData {
 *     version 0, recipientInfos SET OF KeyTransRecipientInfo,
 *     EncryptedContentInfo { id-data, AlgorithmIdentifier { cipher, iv },
 *       [0] IMPLICIT OCTET STRING, constructed: the pieces ...
 */
static int
env_header(struct env *e, STACK_OF(X509) * certs, const EVP_CIPHER *cipher,
    const unsigned char *key, size_t keylen, const unsigned char *iv,
    size_t ivlen)
{
	int ncerts = sk_X509_num(certs);
	struct elem *ri;
	struct der *d = &e->head;
	size_t start;

	if (ncerts <= 0)
		return -1;
	ri = xcalloc((size_t)ncerts, sizeof(*ri));
	for (int i = 0; i < ncerts; i++)
		if (ktri_elem(sk_X509_value(certs, i), key, keylen, &ri[i]) ==
		    -1) {
			elems_free(ri, (size_t)ncerts);
			return -1;
		}
	der_indefinite(d, TAG_SEQUENCE); /* ContentInfo */
	der_oid(d, NID_pkcs7_enveloped);
	der_indefinite(d, TAG_CONTEXT_0);
	der_indefinite(d, TAG_SEQUENCE); /* EnvelopedData */
	der_tlv(d, TAG_INTEGER, "\x00", 1);
	der_set_of(d, TAG_SET, ri, (size_t)ncerts);
	elems_free(ri, (size_t)ncerts);
	der_indefinite(d, TAG_SEQUENCE); /* EncryptedContentInfo */
	der_oid(d, NID_pkcs7_data);
	start = d->len;
	der_oid(d, EVP_CIPHER_get_type(cipher));
	der_tlv(d, TAG_OCTET_STRING, iv, ivlen);
	der_wrap(d, TAG_SEQUENCE, start);
	der_indefinite(d, TAG_CONTEXT_0); /* encryptedContent, pieces */
	return 0;
}

/* Encrypts what buf holds (and the padding when last) into one piece. */
static int
env_piece(BIO *bio, struct env *e, bool last)
{
	unsigned char h[1 + 9];
	int n = 0, m = 0;
	size_t hl, len;

	if (EVP_EncryptUpdate(e->cctx, e->out, &n, e->buf, (int)e->n) != 1 ||
	    (last && EVP_EncryptFinal_ex(e->cctx, e->out + n, &m) != 1))
		return -1;
	e->n = 0;
	len = (size_t)n + (size_t)m;
	if (len == 0)
		return 0;
	h[0] = TAG_OCTET_STRING;
	hl = 1 + length_octets(h + 1, len);
	if (BIO_write(BIO_next(bio), h, (int)hl) != (int)hl ||
	    BIO_write(BIO_next(bio), e->out, (int)len) != (int)len)
		return -1;
	return 0;
}

static int
env_head(BIO *bio, struct env *e)
{
	if (e->head_done)
		return 0;
	if (BIO_write(BIO_next(bio), e->head.p, (int)e->head.len) !=
	    (int)e->head.len)
		return -1;
	e->head_done = true;
	return 0;
}

static int
env_write(BIO *bio, const char *data, size_t len, size_t *done)
{
	struct env *e = BIO_get_data(bio);
	size_t k;

	*done = 0;
	if (e->finished || env_head(bio, e) == -1)
		return 0;
	while (*done < len) {
		k = len - *done;
		if (k > ENV_PIECE - e->n)
			k = ENV_PIECE - e->n;
		memcpy(e->buf + e->n, data + *done, k);
		e->n += k;
		*done += k;
		if (e->n == ENV_PIECE && env_piece(bio, e, false) == -1)
			return 0;
	}
	return 1;
}

static long
env_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	struct env *e = BIO_get_data(bio);

	if (cmd == BIO_CTRL_FLUSH) {
		if (!e->finished) {
			if (env_head(bio, e) == -1 ||
			    env_piece(bio, e, true) == -1 ||
			    BIO_write(BIO_next(bio), env_trailer,
				sizeof(env_trailer)) != sizeof(env_trailer))
				return 0;
			e->finished = true;
		}
		return BIO_flush(BIO_next(bio));
	}
	return BIO_next(bio) != NULL ? BIO_ctrl(BIO_next(bio), cmd, num, ptr)
				     : 0;
}

static int
env_destroy(BIO *bio)
{
	struct env *e = BIO_get_data(bio);

	if (e != NULL) {
		EVP_CIPHER_CTX_free(e->cctx); /* wipes the key schedule */
		free(e->head.p);
		OPENSSL_cleanse(e->buf, sizeof(e->buf));
		free(e);
	}
	BIO_set_data(bio, NULL);
	return 1;
}

static BIO_METHOD *env_method;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void
env_method_init(void)
{
	env_method =
	    BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "cms envelope");
	if (env_method == NULL ||
	    !BIO_meth_set_write_ex(env_method, env_write) ||
	    !BIO_meth_set_ctrl(env_method, env_ctrl) ||
	    !BIO_meth_set_destroy(env_method, env_destroy))
		env_method = NULL;
}

BIO *
cmsw_enveloped_new(BIO *next, STACK_OF(X509) * certs, const EVP_CIPHER *cipher)
{
	unsigned char key[EVP_MAX_KEY_LENGTH], iv[EVP_MAX_IV_LENGTH];
	int keylen = EVP_CIPHER_get_key_length(cipher);
	int ivlen = EVP_CIPHER_get_iv_length(cipher);
	struct env *e;
	BIO *bio;

	pthread_once(&env_once, env_method_init);
	if (env_method == NULL ||
	    EVP_CIPHER_get_mode(cipher) != EVP_CIPH_CBC_MODE || keylen <= 0 ||
	    keylen > (int)sizeof(key) || ivlen <= 0 || ivlen > (int)sizeof(iv))
		return NULL;
	e = xcalloc(1, sizeof(*e));
	if ((e->cctx = EVP_CIPHER_CTX_new()) == NULL ||
	    RAND_priv_bytes(key, keylen) != 1 || RAND_bytes(iv, ivlen) != 1 ||
	    EVP_EncryptInit_ex(e->cctx, cipher, NULL, key, iv) != 1 ||
	    env_header(e, certs, cipher, key, (size_t)keylen, iv,
		(size_t)ivlen) == -1 ||
	    (bio = BIO_new(env_method)) == NULL) {
		OPENSSL_cleanse(key, sizeof(key));
		EVP_CIPHER_CTX_free(e->cctx);
		free(e->head.p);
		free(e);
		return NULL;
	}
	OPENSSL_cleanse(key, sizeof(key));
	BIO_set_data(bio, e);
	BIO_set_init(bio, 1);
	BIO_push(bio, next);
	return bio;
}
