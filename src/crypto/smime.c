#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <gmime/gmime.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "crypto/cms_stream.h"
#include "crypto/cms_write.h"
#include "crypto/smime.h"

static char *smime_tmpdir;

int
smime_init(const char *tmpdir, const char **error_r)
{
	int fd;

	free(smime_tmpdir);
	smime_tmpdir = tmpdir != NULL ? xstrdup(tmpdir) : NULL;
	if ((fd = mime_tmpfile(smime_tmpdir)) == -1) {
		*error_r = "cannot create a temporary file";
		return -1;
	}
	close(fd);
	return 0;
}

/* Names and algorithms. */

static const struct {
	const char *name;
	int cipher;
	const char *evp;
	bool auth;
} ciphers[] = {
	{ "aes128-cbc", SMIME_AES128_CBC, "AES-128-CBC", false },
	{ "aes256-cbc", SMIME_AES256_CBC, "AES-256-CBC", false },
	{ "aes128-gcm", SMIME_AES128_GCM, "AES-128-GCM", true },
	{ "aes256-gcm", SMIME_AES256_GCM, "AES-256-GCM", true },
};

static const struct {
	const char *name;
	const char *micalg; /* RFC 5751 3.4.3.2, RFC 8551 3.5.3.2 */
} digests[] = {
	{ "sha256", "sha-256" },
	{ "sha384", "sha-384" },
	{ "sha512", "sha-512" },
};

int
smime_cipher_parse(const char *name, int *cipher_r)
{
	for (size_t i = 0; i < nitems(ciphers); i++)
		if (strcasecmp(name, ciphers[i].name) == 0) {
			*cipher_r = ciphers[i].cipher;
			return 0;
		}
	return -1;
}

const char *
smime_cipher_name(int cipher)
{
	for (size_t i = 0; i < nitems(ciphers); i++)
		if (ciphers[i].cipher == cipher)
			return ciphers[i].name;
	return "unknown";
}

const EVP_MD *
smime_digest_parse(const char *name)
{
	for (size_t i = 0; i < nitems(digests); i++)
		if (strcasecmp(name, digests[i].name) == 0)
			return EVP_get_digestbyname(digests[i].name);
	return NULL;
}

static const char *
micalg_name(const EVP_MD *md)
{
	for (size_t i = 0; i < nitems(digests); i++)
		if (EVP_MD_is_a(md, digests[i].name))
			return digests[i].micalg;
	return NULL;
}

/* The reason of the last OpenSSL error, static text, for error_r. */
static const char *
ssl_reason(const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : fallback;
}

/* Reading S/MIME parts. */

static long
b64_read_cb(void *ctx, void *buf, size_t n)
{
	return mime_b64_reader_read(ctx, buf, n);
}

/* A reader of an application/pkcs7-* body: base64 unless binary. */
static struct mime_b64_reader *
part_reader(const struct mime_tree *t, size_t idx)
{
	const struct mime_part *p = &t->part[idx];
	struct mime_b64_reader *b = xmalloc(sizeof(*b));
	bool raw = p->cte == MIME_CTE_BINARY || p->cte == MIME_CTE_8BIT;

	mime_b64_reader_init(b, &t->src, p->body, p->end - p->body, raw);
	return b;
}

static int
part_cms_type(const struct mime_tree *t, size_t idx)
{
	struct mime_b64_reader *b = part_reader(t, idx);
	int type = cms_peek_type(b64_read_cb, b);

	free(b);
	return type;
}

/* A BIO reading a region of the message (signed content, in place). */

struct region_bio {
	struct mime_reader r;
};

static BIO_METHOD *region_method;
static pthread_once_t region_once = PTHREAD_ONCE_INIT;

static int
region_read(BIO *bio, char *buf, size_t n, size_t *done)
{
	struct region_bio *rb = BIO_get_data(bio);
	long k = mime_reader_read(&rb->r, buf, n);

	*done = k > 0 ? (size_t)k : 0;
	return k > 0 ? 1 : 0;
}

static long
region_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	struct region_bio *rb = BIO_get_data(bio);

	if (cmd == BIO_CTRL_EOF)
		return rb->r.rpos == rb->r.rlen && rb->r.pos == rb->r.end;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
region_destroy(BIO *bio)
{
	free(BIO_get_data(bio));
	BIO_set_data(bio, NULL);
	return 1;
}

static void
region_method_init(void)
{
	region_method = BIO_meth_new(
	    BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mime region");
	if (region_method == NULL ||
	    !BIO_meth_set_read_ex(region_method, region_read) ||
	    !BIO_meth_set_ctrl(region_method, region_ctrl) ||
	    !BIO_meth_set_destroy(region_method, region_destroy))
		region_method = NULL;
}

static BIO *
region_bio_new(const struct mime_src *src, uint64_t off, uint64_t len)
{
	struct region_bio *rb;
	BIO *bio;

	pthread_once(&region_once, region_method_init);
	if (region_method == NULL || (bio = BIO_new(region_method)) == NULL)
		return NULL;
	rb = xmalloc(sizeof(*rb));
	mime_reader_init(&rb->r, src, off, len);
	BIO_set_data(bio, rb);
	BIO_set_init(bio, 1);
	return bio;
}

/* A BIO over a temporary file, from its start. */
static BIO *
tmp_bio(int fd)
{
	if (lseek(fd, 0, SEEK_SET) == -1)
		return NULL;
	return BIO_new_fd(fd, BIO_NOCLOSE);
}

static int
tmp_reset(int fd)
{
	return ftruncate(fd, 0) == -1 || lseek(fd, 0, SEEK_SET) == -1 ? -1 : 0;
}

static int
tmp_src(int fd, struct mime_src *src)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return -1;
	src->fd = fd;
	src->off = 0;
	src->len = (uint64_t)st.st_size;
	return 0;
}

/* Signing. */

static void
random_boundary(char *buf, size_t size)
{
	unsigned char r[16];
	size_t n;

	if (RAND_bytes(r, sizeof(r)) != 1)
		msg_fatal("RAND_bytes failed");
	/* "=_" cannot occur in base64 or quoted-printable (RFC 2045 6.7). */
	n = (size_t)snprintf(buf, size, "=_ms_");
	for (size_t i = 0; i < sizeof(r) && n + 2 < size; i++, n += 2)
		snprintf(buf + n, size - n, "%02x", r[i]);
}

static int
add_chain(CMS_ContentInfo *cms, const struct smime_signer *s)
{
	for (int i = 0; s->chain != NULL && i < sk_X509_num(s->chain); i++) {
		X509 *c = sk_X509_value(s->chain, i);
		if (X509_cmp(c, s->cert) == 0)
			continue;
		if (!CMS_add1_cert(cms, c)) {
			/* Already present is fine (RFC 5652 5.1: a set). */
			if (ERR_GET_REASON(ERR_peek_last_error()) !=
			    CMS_R_CERTIFICATE_ALREADY_PRESENT)
				return -1;
			ERR_clear_error();
		}
	}
	return 0;
}

/* The signature part: the SignedData as OpenSSL's CMS object, or as DER. */
static int
write_signature(CMS_ContentInfo *cms, const unsigned char *der, size_t len,
    const char *boundary, struct mime_out *o)
{
	BIO *b64;
	int ok;

	mime_out_puts(o, "\r\n--");
	mime_out_puts(o, boundary);
	mime_out_puts(o,
	    "\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=smime.p7s\r\n"
	    "Content-Description: S/MIME Cryptographic Signature\r\n\r\n");
	if ((b64 = mime_b64_bio_new(o)) == NULL)
		return -1;
	if (cms != NULL)
		ok = i2d_CMS_bio(b64, cms);
	else
		ok = BIO_write(b64, der, (int)len) == (int)len;
	mime_b64_bio_final(b64);
	BIO_free(b64);
	mime_out_puts(o, "\r\n--");
	mime_out_puts(o, boundary);
	mime_out_puts(o, "--\r\n");
	return ok ? 0 : -1;
}

/*
 * CMS_add1_signer() would make the SMIMECapabilities attribute (RFC 8551
 * 2.5.2) anew for every signature, asking the providers for each cipher:
 * the value cms_write.c made once goes in instead, as CMS_add_smimecap()
 * adds it.
 */
static CMS_SignerInfo *
add_signer(CMS_ContentInfo *cms, const struct smime_signer *s, const EVP_MD *md)
{
	const unsigned char *cap;
	CMS_SignerInfo *si;
	size_t len;

	if ((cap = cmsw_smimecap(&len)) == NULL)
		return CMS_add1_signer(cms, s->cert, s->key, md, 0);
	if ((si = CMS_add1_signer(cms, s->cert, s->key, md, CMS_NOSMIMECAP)) ==
		NULL ||
	    !CMS_signed_add1_attr_by_NID(
		si, NID_SMIMECapabilities, V_ASN1_SEQUENCE, cap, (int)len))
		return NULL;
	return si;
}

/* A BIO that digests what is written to it, by md. */
static BIO *
digest_bio_new(const EVP_MD *md)
{
	BIO *null = BIO_new(BIO_s_null()), *dbio = BIO_new(BIO_f_md());

	if (null == NULL || dbio == NULL || !BIO_set_md(dbio, md)) {
		BIO_free(null);
		BIO_free(dbio);
		return NULL;
	}
	return BIO_push(dbio, null);
}

/*
 * The multipart/signed entity (RFC 8551 3.5.3, RFC 1847 2.1): the
 * canonical inner entity is written and digested in one pass, then the
 * detached SignedData follows. An RSA key's SignedData is written by
 * cms_write.c from the digest; any other key's by OpenSSL's CMS code.
 */
static int
write_signed(const struct mime_tree *t, const struct smime_signer *s,
    struct mime_out *o, const char **error_r)
{
	const EVP_MD *md = s->md != NULL ? s->md : EVP_sha256();
	const char *micalg = micalg_name(md);
	bool direct = cmsw_rsa_key(s->key);
	CMS_ContentInfo *cms = NULL;
	unsigned char digest[EVP_MAX_MD_SIZE], *der = NULL;
	size_t der_len = 0;
	BIO *dbio = NULL;
	char boundary[64];
	int rc = -1, dl;

	if (micalg == NULL) {
		*error_r = "unsupported signing digest";
		return -1;
	}
	if (direct) {
		/* As CMS_add1_signer() checks it. */
		if (X509_check_private_key(s->cert, s->key) != 1) {
			*error_r = "cannot sign with this key";
			goto out;
		}
		if ((dbio = digest_bio_new(md)) == NULL) {
			*error_r = ssl_reason("cannot set up signing");
			goto out;
		}
	} else {
		cms = CMS_sign(NULL, NULL, NULL, NULL,
		    CMS_DETACHED | CMS_PARTIAL | CMS_BINARY);
		if (cms == NULL || add_signer(cms, s, md) == NULL) {
			*error_r = ssl_reason("cannot sign with this key");
			goto out;
		}
		if (add_chain(cms, s) == -1 ||
		    (dbio = CMS_dataInit(cms, NULL)) == NULL) {
			*error_r = ssl_reason("cannot set up signing");
			goto out;
		}
	}
	random_boundary(boundary, sizeof(boundary));
	mime_out_puts(o,
	    "Content-Type: multipart/signed;\r\n"
	    "\tprotocol=\"application/pkcs7-signature\";\r\n"
	    "\tmicalg=");
	mime_out_puts(o, micalg);
	mime_out_puts(o, "; boundary=\"");
	mime_out_puts(o, boundary);
	mime_out_puts(o,
	    "\"\r\n\r\nThis is an S/MIME signed message.\r\n"
	    "\r\n--");
	mime_out_puts(o, boundary);
	mime_out_puts(o, "\r\n");
	if (mime_out_flush(o) == -1)
		goto write_error;
	o->tee = dbio;
	if (mime_write_entity(t, 0, MIME_CANON_7BIT, true, o) == -1 ||
	    mime_out_flush(o) == -1)
		goto write_error;
	o->tee = NULL;
	if (direct) {
		dl = BIO_gets(dbio, (char *)digest, sizeof(digest));
		if (dl <= 0 ||
		    cmsw_signed(s->cert, s->key, s->chain, md, digest,
			(size_t)dl, time(NULL), &der, &der_len) == -1) {
			*error_r = ssl_reason("signing failed");
			goto out;
		}
	} else if (!CMS_dataFinal(cms, dbio)) {
		*error_r = ssl_reason("signing failed");
		goto out;
	}
	if (write_signature(cms, der, der_len, boundary, o) == -1)
		goto write_error;
	rc = 0;
	goto out;
write_error:
	*error_r = "write error";
out:
	o->tee = NULL;
	BIO_free_all(dbio);
	CMS_ContentInfo_free(cms);
	free(der);
	return rc;
}

/* Encryption. */

static const EVP_CIPHER *
cipher_evp(int cipher, bool *auth_r)
{
	for (size_t i = 0; i < nitems(ciphers); i++)
		if (ciphers[i].cipher == cipher) {
			*auth_r = ciphers[i].auth;
			return EVP_get_cipherbyname(ciphers[i].evp);
		}
	return NULL;
}

static int
add_recipient(CMS_ContentInfo *cms, X509 *cert, bool oaep)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	bool rsa = pk != NULL && EVP_PKEY_is_a(pk, "RSA");
	CMS_RecipientInfo *ri;
	EVP_PKEY_CTX *pctx;

	ri =
	    CMS_add1_recipient_cert(cms, cert, rsa && oaep ? CMS_KEY_PARAM : 0);
	if (ri == NULL)
		return -1;
	if (!(rsa && oaep))
		return 0;
	/* RFC 8551 2.3, RFC 4055 4: OAEP with SHA-256 and MGF1-SHA-256. */
	pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
	if (pctx == NULL ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)
		return -1;
	return 0;
}

struct inner {
	const struct mime_tree *t;
	const struct smime_signer *signer;
};

static int
write_inner(const struct inner *in, struct mime_out *o, const char **error_r)
{
	if (in->signer != NULL)
		return write_signed(in->t, in->signer, o, error_r);
	if (mime_write_entity(in->t, 0, MIME_CANON_7BIT, true, o) == -1) {
		*error_r = "write error";
		return -1;
	}
	return 0;
}

/* Frees the filters that BIO_new_NDEF pushed on top of out. */
static void
ndef_free(BIO *bio, BIO *out)
{
	BIO *next;

	while (bio != NULL && bio != out) {
		next = BIO_pop(bio);
		BIO_free(bio);
		bio = next;
	}
}

/* Every recipient's key is RSA: cms_write.c can write it. */
static bool
all_rsa(STACK_OF(X509) * certs)
{
	for (int i = 0; i < sk_X509_num(certs); i++)
		if (!cmsw_rsa_key(X509_get0_pubkey(sk_X509_value(certs, i))))
			return false;
	return true;
}

/*
 * The application/pkcs7-mime entity (RFC 8551 3.3, 3.4). The inner entity
 * is written into a streaming encoder: indefinite-length BER, the
 * ciphertext in constructed OCTET STRING pieces, base64 on the fly.
 * AES-CBC to RSA keys with PKCS #1 v1.5 is cms_write.c's; anything else
 * (OAEP, EC keys, GCM) goes through OpenSSL's (BIO_new_NDEF).
 * AuthEnvelopedData's tag follows the content (RFC 5083 2.1).
 */
static int
write_enveloped(const struct inner *in, const struct smime_recipients *r,
    struct mime_out *o, const char **error_r)
{
	bool auth = false;
	const EVP_CIPHER *c = cipher_evp(r->cipher, &auth);
	CMS_ContentInfo *cms = NULL;
	struct mime_out *io = NULL;
	BIO *b64 = NULL, *nd = NULL;
	bool direct;
	int rc = -1;

	if (c == NULL || r->certs == NULL || sk_X509_num(r->certs) == 0) {
		*error_r = c == NULL ? "unsupported cipher" : "no recipients";
		return -1;
	}
	direct = !auth && !r->rsa_oaep && all_rsa(r->certs);
	if (!direct) {
		cms = auth ? CMS_AuthEnvelopedData_create(c)
			   : CMS_EnvelopedData_create(c);
		if (cms == NULL) {
			*error_r = ssl_reason("cannot set up encryption");
			return -1;
		}
		for (int i = 0; i < sk_X509_num(r->certs); i++)
			if (add_recipient(cms, sk_X509_value(r->certs, i),
				r->rsa_oaep) == -1) {
				*error_r = ssl_reason(
				    "unusable recipient certificate");
				goto out;
			}
	}
	mime_out_puts(
	    o, "Content-Type: application/pkcs7-mime;\r\n\tsmime-type=");
	mime_out_puts(o, auth ? "authEnveloped-data" : "enveloped-data");
	mime_out_puts(o,
	    "; name=smime.p7m\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=smime.p7m\r\n"
	    "Content-Description: S/MIME Encrypted Message\r\n"
	    "\r\n");
	if ((b64 = mime_b64_bio_new(o)) == NULL ||
	    (nd = direct ? cmsw_enveloped_new(b64, r->certs, c)
			 : BIO_new_NDEF(b64, (ASN1_VALUE *)cms,
			       ASN1_ITEM_rptr(CMS_ContentInfo))) == NULL) {
		*error_r = ssl_reason("cannot set up encryption");
		goto out;
	}
	io = xmalloc(sizeof(*io));
	mime_out_init(io, nd);
	if (write_inner(in, io, error_r) == -1)
		goto out;
	if (mime_out_flush(io) == -1 || BIO_flush(nd) <= 0) {
		*error_r = ssl_reason("encryption failed");
		goto out;
	}
	mime_b64_bio_final(b64);
	mime_out_puts(o, "\r\n");
	rc = 0;
out:
	ndef_free(nd, b64);
	BIO_free(b64);
	free(io);
	CMS_ContentInfo_free(cms);
	return rc;
}

int
smime_protect(const struct mime_src *src, BIO *out,
    const struct smime_signer *signer, const struct smime_recipients *rcpts,
    const char **error_r)
{
	struct mime_tree *t = NULL;
	struct mime_out *o;
	struct inner in;
	int rc = -1;

	if (signer == NULL && rcpts == NULL) {
		*error_r = "neither signing nor encryption asked for";
		return -1;
	}
	if (mime_scan(src, &t, error_r) == -1)
		return -1;
	o = xmalloc(sizeof(*o));
	mime_out_init(o, out);
	in.t = t;
	in.signer = signer;
	if (mime_write_outer_header(t, o, error_r) == -1)
		goto out;
	mime_out_puts(o, "MIME-Version: 1.0\r\n");
	if (rcpts != NULL)
		rc = write_enveloped(&in, rcpts, o, error_r);
	else
		rc = write_signed(t, signer, o, error_r);
	if (rc == 0 && mime_out_flush(o) == -1) {
		*error_r = "write error";
		rc = -1;
	}
out:
	free(o);
	mime_tree_free(&t);
	return rc;
}

/* Finding S/MIME entities. */

static bool
is_signed_multipart(const struct mime_part *p)
{
	return p->kind == MIME_MULTIPART &&
	    strcmp(p->type, "multipart/signed") == 0;
}

static int
form_of(const struct mime_tree *t, size_t idx)
{
	const struct mime_part *p = &t->part[idx];

	if (is_signed_multipart(p))
		return SMIME_FORM_SIGNED;
	if (p->kind != MIME_LEAF || !mime_part_is_pkcs7_mime(p))
		return SMIME_FORM_NONE;
	if (p->smime_type != NULL && strcmp(p->smime_type, "certs-only") == 0)
		return SMIME_FORM_OTHER;
	/* The CMS content type decides, not the smime-type label. */
	switch (part_cms_type(t, idx)) {
	case CMS_T_SIGNED:
		return SMIME_FORM_SIGNED_DATA;
	case CMS_T_ENVELOPED:
		return SMIME_FORM_ENVELOPED;
	case CMS_T_AUTH_ENVELOPED:
		return SMIME_FORM_AUTH_ENVELOPED;
	default:
		return SMIME_FORM_OTHER;
	}
}

static bool
form_signed(int form)
{
	return form == SMIME_FORM_SIGNED || form == SMIME_FORM_SIGNED_DATA;
}

static bool
form_encrypted(int form)
{
	return form == SMIME_FORM_ENVELOPED ||
	    form == SMIME_FORM_AUTH_ENVELOPED;
}

int
smime_inspect(
    const struct mime_src *src, struct smime_info *info, const char **error_r)
{
	struct mime_tree *t;
	int form;

	memset(info, 0, sizeof(*info));
	if (mime_scan(src, &t, error_r) == -1)
		return -1;
	info->form = form_of(t, 0);
	for (size_t i = 1; i < t->nparts; i++) {
		form = form_of(t, i);
		info->nested_signed |= form_signed(form) ||
		    mime_part_is_pkcs7_signature(&t->part[i]);
		info->nested_encrypted |= form_encrypted(form);
	}
	mime_tree_free(&t);
	return 0;
}

/* Rebuilding a message around decrypted or unwrapped content. */

static int
write_rebuilt(const struct mime_tree *outer, const struct mime_tree *inner,
    size_t idx, BIO *out, const char **error_r)
{
	struct mime_out *o = xmalloc(sizeof(*o));
	int rc = -1;

	mime_out_init(o, out);
	if (mime_write_outer_header(outer, o, error_r) == -1)
		goto out;
	mime_out_puts(o, "MIME-Version: 1.0\r\n");
	if (mime_write_entity(inner, idx, MIME_CANON_8BIT, true, o) == -1) {
		*error_r = "write error";
		goto out;
	}
	/* A signed entity ends without its last CRLF (RFC 2046 5.1.1). */
	if (o->last != '\n' && !o->pending_cr)
		mime_out_puts(o, "\r\n");
	if (mime_out_flush(o) == -1) {
		*error_r = "write error";
		goto out;
	}
	rc = 0;
out:
	free(o);
	return rc;
}

/* Reads a CMS part into a temporary file and the skeleton. */
static int
split_part(const struct mime_tree *t, size_t idx, int *fd_r,
    struct cms_split *sp, const char **error_r)
{
	struct mime_b64_reader *b = part_reader(t, idx);
	int fd, rc;

	if ((fd = mime_tmpfile(smime_tmpdir)) == -1) {
		free(b);
		*error_r = "cannot create a temporary file";
		sp->fail = CMS_FAIL_IO;
		return -1;
	}
	rc = cms_split(b64_read_cb, b, fd, sp, error_r);
	free(b);
	if (rc == -1) {
		close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

static CMS_ContentInfo *
skeleton_cms(const struct cms_split *sp)
{
	const unsigned char *p = sp->skel;

	return d2i_CMS_ContentInfo(NULL, &p, (long)sp->skel_len);
}

/* Decryption. */

struct rids {
	struct smime_rid *v;
	size_t n;
};

static void
rid_add(struct rids *r, ASN1_OCTET_STRING *keyid, X509_NAME *issuer,
    ASN1_INTEGER *serial, bool agreement)
{
	struct smime_rid *d;

	r->v = xreallocarray(r->v, r->n + 1, sizeof(*r->v));
	d = &r->v[r->n++];
	d->issuer = issuer;
	d->serial = serial;
	d->keyid = keyid;
	d->agreement = agreement;
}

static void
rids_collect(CMS_ContentInfo *cms, struct rids *r)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
	ASN1_OCTET_STRING *keyid;
	X509_NAME *issuer;
	ASN1_INTEGER *serial;

	for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
		STACK_OF(CMS_RecipientEncryptedKey) * reks;
		switch (CMS_RecipientInfo_type(ri)) {
		case CMS_RECIPINFO_TRANS:
			keyid = NULL, issuer = NULL, serial = NULL;
			if (CMS_RecipientInfo_ktri_get0_signer_id(
				ri, &keyid, &issuer, &serial))
				rid_add(r, keyid, issuer, serial, false);
			break;
		case CMS_RECIPINFO_AGREE:
			reks = CMS_RecipientInfo_kari_get0_reks(ri);
			for (int j = 0;
			     j < sk_CMS_RecipientEncryptedKey_num(reks); j++) {
				keyid = NULL, issuer = NULL, serial = NULL;
				if (CMS_RecipientEncryptedKey_get0_id(
					sk_CMS_RecipientEncryptedKey_value(
					    reks, j),
					&keyid, NULL, NULL, &issuer, &serial))
					rid_add(r, keyid, issuer, serial, true);
			}
			break;
		}
	}
}

/* A RecipientInfo, and for key agreement the key that names a cert. */
struct ri_ref {
	CMS_RecipientInfo *ri;
	CMS_RecipientEncryptedKey *rek;
};

static bool
ri_match(CMS_ContentInfo *cms, X509 *cert, struct ri_ref *r)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
	STACK_OF(CMS_RecipientEncryptedKey) * reks;

	for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		r->ri = sk_CMS_RecipientInfo_value(ris, i);
		r->rek = NULL;
		switch (CMS_RecipientInfo_type(r->ri)) {
		case CMS_RECIPINFO_TRANS:
			if (CMS_RecipientInfo_ktri_cert_cmp(r->ri, cert) == 0)
				return true;
			break;
		case CMS_RECIPINFO_AGREE:
			reks = CMS_RecipientInfo_kari_get0_reks(r->ri);
			for (int j = 0;
			     j < sk_CMS_RecipientEncryptedKey_num(reks); j++) {
				r->rek =
				    sk_CMS_RecipientEncryptedKey_value(reks, j);
				if (CMS_RecipientEncryptedKey_cert_cmp(
					r->rek, cert) == 0)
					return true;
			}
			break;
		}
	}
	return false;
}

/*
 * Recovers the content-encryption key with one private key. Done here
 * rather than by CMS_decrypt() so that a failure is reported as such
 * (CMS_decrypt would go on with a random key, the countermeasure against
 * Bleichenbacher's attack for interactive use: the gateway gives a sender
 * no answer to learn from, docs/smime.md).
 */
static int
ri_decrypt_key(CMS_ContentInfo *cms, const struct ri_ref *r, EVP_PKEY *key)
{
	int ok;

	if (r->rek == NULL) {
		/* set0 takes the reference that set0(NULL) gives back. */
		EVP_PKEY_up_ref(key);
		CMS_RecipientInfo_set0_pkey(r->ri, key);
		ok = CMS_RecipientInfo_decrypt(cms, r->ri);
		CMS_RecipientInfo_set0_pkey(r->ri, NULL);
		return ok == 1 ? 0 : -1;
	}
	ok = CMS_RecipientInfo_kari_set0_pkey_and_peer(r->ri, key, NULL) &&
	    CMS_RecipientInfo_kari_decrypt(cms, r->ri, r->rek) == 1;
	CMS_RecipientInfo_kari_set0_pkey(r->ri, NULL);
	return ok ? 0 : -1;
}

/*
 * Streams the ciphertext through OpenSSL's cipher BIO into the plaintext
 * file. CMS_decrypt() would hold all of an AuthEnvelopedData's plaintext
 * in memory until the tag is checked; here it waits in the file, which is
 * looked at only when the final block and the tag have been accepted.
 */
static int
content_decrypt(CMS_ContentInfo *cms, int cfd, int pfd)
{
	unsigned char buf[16384];
	BIO *in, *cont, *next;
	int n, ok = 0;

	if (tmp_reset(pfd) == -1 || (in = tmp_bio(cfd)) == NULL)
		return -1;
	if ((cont = CMS_dataInit(cms, in)) == NULL) {
		BIO_free(in);
		return -1;
	}
	for (;;) {
		if ((n = BIO_read(cont, buf, sizeof(buf))) <= 0) {
			/* The cipher BIO is at the top of the chain. */
			ok = n == 0 && BIO_get_cipher_status(cont) == 1;
			break;
		}
		if (write_full(pfd, buf, (size_t)n) == -1)
			break;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	while (cont != NULL && cont != in) {
		next = BIO_pop(cont);
		BIO_free(cont);
		cont = next;
	}
	BIO_free(in);
	return ok ? 0 : -1;
}

static void
alg_name(const X509_ALGOR *alg, char *buf, size_t size)
{
	const ASN1_OBJECT *obj;
	const char *n;

	X509_ALGOR_get0(&obj, NULL, NULL, alg);
	n = OBJ_nid2ln(OBJ_obj2nid(obj));
	if (n != NULL)
		strlcpy_ms(buf, n, size);
	else
		OBJ_obj2txt(buf, (int)size, obj, 1);
}

static void
ri_alg_name(CMS_RecipientInfo *ri, char *buf, size_t size)
{
	X509_ALGOR *alg = NULL;

	if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS)
		CMS_RecipientInfo_ktri_get0_algs(ri, NULL, NULL, &alg);
	else
		CMS_RecipientInfo_kari_get0_alg(ri, &alg, NULL);
	if (alg != NULL)
		alg_name(alg, buf, size);
}

static void
content_alg_name(const struct cms_split *sp, char *buf, size_t size)
{
	const unsigned char *p = sp->alg;
	X509_ALGOR *alg;

	if (p == NULL ||
	    (alg = d2i_X509_ALGOR(NULL, &p, (long)sp->alg_len)) == NULL)
		return;
	alg_name(alg, buf, size);
	X509_ALGOR_free(alg);
}

struct decrypt {
	const struct cms_split *sp;
	int cfd; /* the ciphertext */
	int pfd; /* the plaintext */
	struct smime_decrypt_result *res;
	const char *error;
};

/* One attempt with one key; the structure is read afresh for each. */
static int
decrypt_with(struct decrypt *d, const struct smime_key *k, size_t i)
{
	CMS_ContentInfo *cms = skeleton_cms(d->sp);
	struct ri_ref r;
	int rc = 2;

	if (cms == NULL)
		return -1;
	if (!ri_match(cms, k->cert, &r)) {
		CMS_ContentInfo_free(cms);
		return 0;
	}
	if (ri_decrypt_key(cms, &r, k->key) == -1)
		d->error = "the private key does not decrypt the message key";
	else if (content_decrypt(cms, d->cfd, d->pfd) == -1)
		d->error = ssl_reason("content decryption failed");
	else {
		d->res->cert = k->cert;
		X509_up_ref(k->cert);
		d->res->key_index = i;
		ri_alg_name(r.ri, d->res->key_alg, sizeof(d->res->key_alg));
		rc = 1;
	}
	ERR_clear_error();
	CMS_ContentInfo_free(cms);
	return rc;
}

static int
decrypt_keys(
    struct decrypt *d, smime_key_cb *cb, void *ctx, const char **error_r)
{
	CMS_ContentInfo *cms = skeleton_cms(d->sp);
	struct rids rids = { NULL, 0 };
	struct smime_key k;
	bool matched = false;
	int rc = -1, r;

	if (cms == NULL) {
		d->res->status = SMIME_CORRUPT;
		*error_r = ssl_reason("bad CMS structure");
		ERR_clear_error();
		return -1;
	}
	rids_collect(cms, &rids);
	for (size_t i = 0;; i++) {
		if ((r = cb(ctx, rids.v, rids.n, i, &k)) <= 0) {
			if (r == -1) {
				d->res->status = SMIME_ERROR;
				*error_r = "key lookup failed";
				goto out;
			}
			break;
		}
		if ((r = decrypt_with(d, &k, i)) == 1) {
			rc = 0;
			goto out;
		}
		matched |= r != 0;
	}
	d->res->status = matched ? SMIME_CORRUPT : SMIME_NO_KEY;
	*error_r = matched ? d->error : "no private key for any recipient";
out:
	free(rids.v);
	CMS_ContentInfo_free(cms);
	return rc;
}

static const int split_status[] = {
	[CMS_FAIL_FORMAT] = SMIME_CORRUPT,
	[CMS_FAIL_UNSUPPORTED] = SMIME_UNSUPPORTED,
	[CMS_FAIL_LIMIT] = SMIME_LIMIT,
	[CMS_FAIL_IO] = SMIME_ERROR,
};

static int
decrypt_top(const struct mime_tree *t, BIO *out, smime_key_cb *cb, void *ctx,
    struct smime_decrypt_result *res, const char **error_r)
{
	struct decrypt d = { NULL, -1, -1, res, NULL };
	struct cms_split sp;
	struct mime_tree *inner = NULL;
	struct mime_src psrc;
	int rc = -1;

	memset(&sp, 0, sizeof(sp));
	if (split_part(t, 0, &d.cfd, &sp, error_r) == -1) {
		res->status = split_status[sp.fail];
		return -1;
	}
	d.sp = &sp;
	res->auth = sp.type == CMS_T_AUTH_ENVELOPED;
	if (sp.type != CMS_T_ENVELOPED && sp.type != CMS_T_AUTH_ENVELOPED) {
		res->status = SMIME_NOT_ENCRYPTED;
		*error_r = "not encrypted";
		goto out;
	}
	if (!sp.has_content) {
		res->status = SMIME_UNSUPPORTED;
		*error_r = "no encrypted content";
		goto out;
	}
	content_alg_name(&sp, res->cipher, sizeof(res->cipher));
	if ((d.pfd = mime_tmpfile(smime_tmpdir)) == -1) {
		res->status = SMIME_ERROR;
		*error_r = "cannot create a temporary file";
		goto out;
	}
	if (decrypt_keys(&d, cb, ctx, error_r) == -1)
		goto out;
	/* Only authenticated, complete plaintext is looked at. */
	if (tmp_src(d.pfd, &psrc) == -1 ||
	    mime_scan(&psrc, &inner, error_r) == -1) {
		res->status = SMIME_LIMIT;
		goto out;
	}
	if (write_rebuilt(t, inner, 0, out, error_r) == -1) {
		res->status = SMIME_ERROR;
		goto out;
	}
	res->status = SMIME_OK;
	rc = 0;
out:
	mime_tree_free(&inner);
	cms_split_clear(&sp);
	if (d.cfd != -1)
		close(d.cfd);
	if (d.pfd != -1)
		close(d.pfd);
	return rc;
}

int
smime_decrypt(const struct mime_src *src, BIO *out, smime_key_cb *cb, void *ctx,
    struct smime_decrypt_result *res, const char **error_r)
{
	struct mime_tree *t;
	int form, rc = -1;

	memset(res, 0, sizeof(*res));
	res->status = SMIME_ERROR;
	if (mime_scan(src, &t, error_r) == -1) {
		res->status = SMIME_LIMIT;
		return -1;
	}
	form = form_of(t, 0);
	if (form_encrypted(form))
		rc = decrypt_top(t, out, cb, ctx, res, error_r);
	else {
		res->status = SMIME_NOT_ENCRYPTED;
		*error_r = "not encrypted";
		for (size_t i = 1; i < t->nparts; i++)
			if (form_encrypted(form_of(t, i))) {
				/* EFAIL: see docs/smime.md. */
				res->status = SMIME_NESTED;
				*error_r = "an encrypted part inside the "
					   "message is not decrypted";
				break;
			}
	}
	mime_tree_free(&t);
	return rc;
}

void
smime_decrypt_result_clear(struct smime_decrypt_result *res)
{
	X509_free(res->cert);
	memset(res, 0, sizeof(*res));
}

/* Verification. */

static void
email_add(struct smime_verify_result *res, const char *addr, size_t len)
{
	char *e = xstrndup(addr, len);

	str_lower(e);
	for (size_t i = 0; i < res->nemails; i++)
		if (strcmp(res->emails[i], e) == 0) {
			free(e);
			return;
		}
	res->emails =
	    xreallocarray(res->emails, res->nemails + 1, sizeof(char *));
	res->emails[res->nemails++] = e;
}

/* RFC 8550 3: subjectAltName rfc822Name, and the subject emailAddress. */
static void
cert_emails(struct smime_verify_result *res, X509 *cert)
{
	GENERAL_NAMES *gens;
	X509_NAME *subj = X509_get_subject_name(cert);
	int i = -1;

	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int j = 0; j < sk_GENERAL_NAME_num(gens); j++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, j);
		if (g->type == GEN_EMAIL)
			email_add(res,
			    (const char *)ASN1_STRING_get0_data(
				g->d.rfc822Name),
			    (size_t)ASN1_STRING_length(g->d.rfc822Name));
	}
	GENERAL_NAMES_free(gens);
	while ((i = X509_NAME_get_index_by_NID(
		    subj, NID_pkcs9_emailAddress, i)) >= 0) {
		ASN1_STRING *s =
		    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		email_add(res, (const char *)ASN1_STRING_get0_data(s),
		    (size_t)ASN1_STRING_length(s));
	}
}

/* The From address the reader sees: one mailbox, else none. */
static char *
from_address(const struct mime_tree *t)
{
	InternetAddressList *l;
	InternetAddress *a;
	char *v = mime_part_field(t, 0, "From"), *addr = NULL;

	if (v == NULL || strlen(v) > MIME_MAX_VALUE) {
		free(v);
		return NULL;
	}
	l = internet_address_list_parse(NULL, v);
	free(v);
	if (l == NULL)
		return NULL;
	if (internet_address_list_length(l) == 1 &&
	    INTERNET_ADDRESS_IS_MAILBOX(
		a = internet_address_list_get_address(l, 0))) {
		addr = xstrdup(internet_address_mailbox_get_addr(
		    INTERNET_ADDRESS_MAILBOX(a)));
		str_lower(addr);
	}
	g_object_unref(l);
	return addr;
}

/* Verifies a SignedData over its content; fills the result. */
static void
verify_cms(CMS_ContentInfo *cms, BIO *dcont, STACK_OF(X509) * certs,
    struct smime_verify_result *res)
{
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	STACK_OF(X509) * signers;
	X509_ALGOR *dig = NULL;
	const ASN1_OBJECT *obj;

	if (sk_CMS_SignerInfo_num(sis) <= 0) {
		res->reason = "no signer";
		return;
	}
	res->valid = CMS_verify(cms, certs, NULL, dcont, NULL,
			 CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) == 1;
	if (!res->valid)
		res->reason = ssl_reason("signature does not verify");
	ERR_clear_error();
	/* Signers are looked up even when verification failed early. */
	(void)CMS_set1_signers_certs(cms, certs, 0);
	ERR_clear_error();
	signers = CMS_get0_signers(cms);
	res->signers =
	    signers != NULL ? X509_chain_up_ref(signers) : sk_X509_new_null();
	sk_X509_free(signers);
	res->certs = CMS_get1_certs(cms);
	if (res->certs == NULL)
		res->certs = sk_X509_new_null();
	for (int i = 0; i < sk_X509_num(res->signers); i++)
		cert_emails(res, sk_X509_value(res->signers, i));
	CMS_SignerInfo_get0_algs(
	    sk_CMS_SignerInfo_value(sis, 0), NULL, NULL, &dig, NULL);
	if (dig != NULL) {
		X509_ALGOR_get0(&obj, NULL, NULL, dig);
		strlcpy_ms(res->digest, OBJ_nid2sn(OBJ_obj2nid(obj)),
		    sizeof(res->digest));
		str_lower(res->digest);
	}
	if (res->valid && sk_X509_num(res->signers) == 0) {
		res->valid = false;
		res->reason = "signer certificate not found";
	}
}

/* Reads a detached signature part into memory (it is small). */
static CMS_ContentInfo *
read_signature(const struct mime_tree *t, size_t idx)
{
	struct mime_b64_reader *b = part_reader(t, idx);
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0, cap = 0;
	CMS_ContentInfo *cms = NULL;
	long n;

	for (;;) {
		if (cap - len < 4096) {
			if (cap >= CMS_MAX_SKELETON)
				goto out;
			cap = cap == 0 ? 16384 : cap * 2;
			der = xreallocarray(der, cap, 1);
		}
		if ((n = mime_b64_reader_read(b, der + len, cap - len)) <= 0)
			break;
		len += (size_t)n;
	}
	p = der;
	if (n == 0)
		cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
out:
	free(der);
	free(b);
	return cms;
}

static int
verify_multipart(const struct mime_tree *t, size_t idx, STACK_OF(X509) * certs,
    struct smime_verify_result *res)
{
	const struct mime_part *p = &t->part[idx];
	int c0 = p->child, c1 = c0 >= 0 ? t->part[c0].next : -1;
	CMS_ContentInfo *cms;
	BIO *dcont;

	/* RFC 1847 2.1: exactly two parts, the second the signature. */
	if (c1 < 0 || t->part[c1].next >= 0 ||
	    !mime_part_is_pkcs7_signature(&t->part[c1])) {
		res->reason = "malformed multipart/signed";
		return 0;
	}
	if ((cms = read_signature(t, (size_t)c1)) == NULL ||
	    OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
	    CMS_is_detached(cms) != 1) {
		ERR_clear_error();
		CMS_ContentInfo_free(cms);
		res->reason = "unreadable signature";
		return 0;
	}
	dcont = region_bio_new(
	    &t->src, t->part[c0].start, t->part[c0].end - t->part[c0].start);
	if (dcont == NULL) {
		CMS_ContentInfo_free(cms);
		return -1;
	}
	verify_cms(cms, dcont, certs, res);
	BIO_free(dcont);
	CMS_ContentInfo_free(cms);
	return 0;
}

/* Opaque signed-data: the content goes to a temporary file, *fd_r. */
static int
verify_opaque(const struct mime_tree *t, size_t idx, STACK_OF(X509) * certs,
    struct smime_verify_result *res, int *fd_r, const char **error_r)
{
	struct cms_split sp;
	CMS_ContentInfo *cms = NULL;
	BIO *dcont = NULL;
	int fd = -1;

	res->opaque = true;
	memset(&sp, 0, sizeof(sp));
	if (split_part(t, idx, &fd, &sp, error_r) == -1) {
		res->reason = *error_r;
		return sp.fail == CMS_FAIL_IO ? -1 : 0;
	}
	if (sp.type != CMS_T_SIGNED || !sp.has_content ||
	    (cms = skeleton_cms(&sp)) == NULL) {
		ERR_clear_error();
		res->reason = "unreadable signed-data";
	} else if ((dcont = tmp_bio(fd)) != NULL)
		verify_cms(cms, dcont, certs, res);
	BIO_free(dcont);
	CMS_ContentInfo_free(cms);
	cms_split_clear(&sp);
	*fd_r = fd;
	return 0;
}

/* The signed entity: the top one, else the first one inside. */
static int
find_signed(const struct mime_tree *t, int *form_r)
{
	for (size_t i = 0; i < t->nparts; i++) {
		int form = form_of(t, i);
		if (form_signed(form) ||
		    mime_part_is_pkcs7_signature(&t->part[i])) {
			*form_r = form;
			return (int)i;
		}
	}
	return -1;
}

/*
 * Writes the signed entity with the outer fields. A failure here (a limit
 * of the scan of opaque content) leaves unwrapped false: the caller then
 * discards the output and delivers the message as it is.
 */
static void
verify_unwrap(const struct mime_tree *t, size_t idx, int fd, BIO *out,
    struct smime_verify_result *res)
{
	struct mime_tree *inner = NULL;
	struct mime_src csrc;
	const char *why;
	int rc = -1;

	if (!res->opaque)
		rc = write_rebuilt(t, t, (size_t)t->part[idx].child, out, &why);
	else if (tmp_src(fd, &csrc) == 0 &&
	    mime_scan(&csrc, &inner, &why) == 0) {
		rc = write_rebuilt(t, inner, 0, out, &why);
		mime_tree_free(&inner);
	}
	res->unwrapped = rc == 0;
}

int
smime_verify(const struct mime_src *src, STACK_OF(X509) * certs, BIO *out,
    struct smime_verify_result *res, const char **error_r)
{
	struct mime_tree *t;
	int idx, form = SMIME_FORM_NONE, fd = -1, rc = 0;

	memset(res, 0, sizeof(*res));
	if (mime_scan(src, &t, error_r) == -1)
		return -1;
	res->from = from_address(t);
	if ((idx = find_signed(t, &form)) < 0) {
		res->scope = SMIME_UNSIGNED;
		goto out;
	}
	/* Only the top-level entity is the message that the reader sees. */
	res->scope = idx == 0 ? SMIME_WHOLE : SMIME_PARTIAL;
	if (form == SMIME_FORM_SIGNED)
		rc = verify_multipart(t, (size_t)idx, certs, res);
	else if (form == SMIME_FORM_SIGNED_DATA)
		rc = verify_opaque(t, (size_t)idx, certs, res, &fd, error_r);
	else
		res->reason = "a signature outside multipart/signed";
	if (rc == 0 && res->valid && idx == 0 &&
	    (t->part[0].flags & (MIME_F_DUP_CT | MIME_F_UNCLOSED))) {
		/* Readers may disagree on what this message is. */
		res->valid = false;
		res->reason = "ambiguous message structure";
	}
	for (size_t i = 0; res->from != NULL && i < res->nemails; i++)
		if (strcmp(res->from, res->emails[i]) == 0)
			res->from_match = true;
	if (rc == 0 && out != NULL && res->valid && idx == 0)
		verify_unwrap(t, (size_t)idx, fd, out, res);
out:
	if (fd != -1)
		close(fd);
	mime_tree_free(&t);
	return rc;
}

void
smime_verify_result_clear(struct smime_verify_result *res)
{
	sk_X509_pop_free(res->signers, X509_free);
	sk_X509_pop_free(res->certs, X509_free);
	for (size_t i = 0; i < res->nemails; i++)
		free(res->emails[i]);
	free(res->emails);
	free(res->from);
	memset(res, 0, sizeof(*res));
}

bool
smime_verify_is_senders(const struct smime_verify_result *res)
{
	return res->scope == SMIME_WHOLE && res->valid && res->from_match;
}

/* Info header fields. */

static bool
info_field_ok(const char *f)
{
	const char *colon = strchr(f, ':');
	size_t len = strlen(f);

	if (!str_has_prefix_ci(f, "X-Mailseal-Info-") || colon == NULL ||
	    len > 998)
		return false;
	for (const char *p = f; p < colon; p++)
		if (*p <= 32 || *p == 127)
			return false;
	for (const char *p = f; *p != '\0'; p++)
		if ((*p >= 0 && *p < 32 && *p != '\t') || *p == 127)
			return false;
	return true;
}

int
smime_info_rewrite(const struct mime_src *src, BIO *out,
    const char *const *fields, size_t nfields, const char **error_r)
{
	struct mime_tree *t;
	struct mime_out *o;
	struct mime_field f;
	char *hdr = NULL;
	size_t len, pos = 0;
	int rc = -1;

	for (size_t i = 0; i < nfields; i++)
		if (!info_field_ok(fields[i])) {
			*error_r = "bad info header field";
			return -1;
		}
	if (mime_scan(src, &t, error_r) == -1)
		return -1;
	o = xmalloc(sizeof(*o));
	mime_out_init(o, out);
	if (mime_part_header(t, 0, &hdr, &len, error_r) == -1)
		goto out;
	while (mime_field_next(hdr, len, &pos, &f))
		if (!mime_is_info_field(&f))
			mime_out_field(o, &f);
	for (size_t i = 0; i < nfields; i++) {
		mime_out_puts(o, fields[i]);
		mime_out_puts(o, "\r\n");
	}
	mime_out_body(o, t, 0);
	if (mime_out_flush(o) == -1) {
		*error_r = "write error";
		goto out;
	}
	rc = 0;
out:
	free(hdr);
	free(o);
	mime_tree_free(&t);
	return rc;
}
