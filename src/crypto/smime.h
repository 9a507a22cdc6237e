/*
 * S/MIME (RFC 8551) on whole messages: sign, encrypt, decrypt, verify.
 *
 * Input is a message as the spool keeps it (RFC 5322, CRLF line ends), a
 * region of a seekable file (struct mime_src); output goes to a BIO. The
 * message is never held in memory: bodies are streamed from the file,
 * CMS content is streamed through OpenSSL, and what must be looked at
 * twice goes to unlinked temporary files in the directory given to
 * smime_init(). The peak memory of every operation is bounded
 * independently of the message size (docs/smime.md has the bound and the
 * measurements).
 *
 * Certificates and keys are plain OpenSSL objects; this module neither
 * looks them up nor judges their trust, validity or policy. That is the
 * caller's (the engine's) work, with the store.
 *
 * Output contract: on -1, whatever was written to the output BIO must be
 * discarded. smime_decrypt() writes nothing at all unless the content
 * decrypted and authenticated (EFAIL: no partial plaintext).
 */
#ifndef MAILSEAL_SMIME_H
#define MAILSEAL_SMIME_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crypto/mime.h"

/* Process setup: where temporary files go (NULL: $TMPDIR or /tmp). */
int smime_init(const char *tmpdir, const char **error_r);

/* Content encryption (RFC 8551 2.7). GCM gives authEnveloped-data. */
enum smime_cipher {
	SMIME_AES128_CBC,
	SMIME_AES256_CBC,
	SMIME_AES128_GCM,
	SMIME_AES256_GCM,
};

/* Names as the smime_encryption_algorithm property spells them. */
int smime_cipher_parse(const char *name, int *cipher_r);
const char *smime_cipher_name(int cipher);
/* "sha256", "sha384", "sha512" (smime_signing_algorithm); NULL if not. */
const EVP_MD *smime_digest_parse(const char *name);

struct smime_signer {
	X509 *cert;
	EVP_PKEY *key;
	STACK_OF(X509) * chain; /* certificates to include; may be NULL */
	const EVP_MD *md; /* SHA-256, -384 or -512; NULL for SHA-256 */
};

struct smime_recipients {
	STACK_OF(X509) * certs; /* one RecipientInfo each */
	int cipher; /* enum smime_cipher */
	bool rsa_oaep; /* RSAES-OAEP, SHA-256 (RFC 8017, RFC 4055) */
};

/*
 * Signs and/or encrypts a message (either may be NULL, not both):
 *
 *   signer only:  multipart/signed; protocol="application/pkcs7-signature";
 *                 micalg=sha-256, the signer's certificate and chain in
 *                 the detached SignedData (RFC 8551 3.5.3);
 *   recipients:   application/pkcs7-mime; smime-type=enveloped-data (CBC)
 *                 or authEnveloped-data (GCM), base64 (3.3, 3.4);
 *   both:         the multipart/signed entity, encrypted (3.6).
 *
 * The header is split (3.1): the Content-* fields move into the signed or
 * encrypted entity; all other fields stay outside, in their order, with a
 * new MIME-Version and the S/MIME Content-* fields after them. The inner
 * entity is canonical (mime.h MIME_CANON_7BIT). X-Mailseal-Info-* fields
 * are dropped. RSA recipients get key transport (PKCS#1 v1.5 unless
 * rsa_oaep), EC recipients ECDH key agreement (RFC 5753, OpenSSL's
 * defaults).
 */
int smime_protect(const struct mime_src *in, BIO *out,
    const struct smime_signer *, const struct smime_recipients *,
    const char **error_r);

/* How a RecipientInfo names its certificate (RFC 5652 6.2.1). */
struct smime_rid {
	const X509_NAME *issuer; /* with serial; NULL for a key identifier */
	const ASN1_INTEGER *serial;
	const ASN1_OCTET_STRING *keyid; /* subjectKeyIdentifier, or NULL */
	bool agreement; /* key agreement (kari), else key transport */
};

/* A candidate key: borrowed; the library takes no reference. */
struct smime_key {
	X509 *cert;
	EVP_PKEY *key;
};

/*
 * Yields candidate number i (0, 1, ...): 1 with *key_r set, 0 when there
 * are no more, -1 on error. rids lists the message's recipients, so that
 * the caller can fetch just the keys that may match. The library tries
 * only candidates whose certificate matches a RecipientInfo (issuer and
 * serial, or subject key identifier), in the order given.
 */
typedef int smime_key_cb(void *ctx, const struct smime_rid *rids, size_t nrids,
    size_t i, struct smime_key *key_r);

enum smime_status {
	SMIME_OK,
	SMIME_NOT_ENCRYPTED, /* the message is not encrypted at its top */
	SMIME_NESTED, /* only a part below the top is encrypted: left alone */
	SMIME_NO_KEY, /* no candidate matches any RecipientInfo */
	SMIME_CORRUPT, /* a key matches, but decryption fails */
	SMIME_UNSUPPORTED, /* compressed-data, no content, ... */
	SMIME_LIMIT, /* beyond a limit of mime.h or cms_stream.h */
	SMIME_ERROR, /* reading, writing, or out of temporary space */
};

struct smime_decrypt_result {
	int status; /* enum smime_status */
	bool auth; /* authEnveloped-data: the content is authenticated */
	char cipher[32]; /* "aes-256-gcm" */
	char key_alg[48]; /* "rsaEncryption", "rsaesOaep", "dhSinglePass-..." */
	X509 *cert; /* whose key decrypted (a reference, freed by _clear) */
	size_t key_index; /* the candidate number */
};

/*
 * Decrypts a message whose top-level entity is S/MIME enveloped-data or
 * authEnveloped-data (application/pkcs7-mime, application/x-pkcs7-mime, or
 * application/octet-stream named *.p7m). The output is the outer header
 * fields of the message (as for smime_protect: no Content-*, no
 * X-Mailseal-Info-*), MIME-Version, and the decrypted entity's Content-*
 * fields and body, canonical (MIME_CANON_8BIT). Header fields inside the
 * encrypted entity other than Content-* are not taken over. Nothing of
 * the original's other parts is ever added (EFAIL: docs/smime.md).
 * Returns 0 with status SMIME_OK, or -1 with the status and a reason.
 */
int smime_decrypt(const struct mime_src *in, BIO *out, smime_key_cb *,
    void *ctx, struct smime_decrypt_result *, const char **error_r);
void smime_decrypt_result_clear(struct smime_decrypt_result *);

enum smime_scope {
	SMIME_UNSIGNED, /* no signature anywhere */
	SMIME_WHOLE, /* the signed entity is the whole message body */
	SMIME_PARTIAL, /* a signature covers only a part (or is nested) */
};

struct smime_verify_result {
	int scope; /* enum smime_scope */
	bool valid; /* every signature verifies over the content */
	bool opaque; /* signed-data rather than multipart/signed */
	bool unwrapped; /* the content was written to out */
	const char *reason; /* why not valid (static text), else NULL */
	STACK_OF(X509) * signers; /* the signing certificates */
	STACK_OF(X509) * certs; /* every certificate the message carries */
	char **emails; /* the signers' addresses, lower case */
	size_t nemails;
	char *from; /* the single From address, lower case, or NULL */
	bool from_match; /* from is one of emails */
	char digest[16]; /* "sha256" */
};

/*
 * Verifies the signature of a message: of the top-level entity when it is
 * multipart/signed or signed-data (scope SMIME_WHOLE), else of the first
 * signed part found below it (SMIME_PARTIAL). Certificate trust is not
 * judged (CMS_NO_SIGNER_CERT_VERIFY): the caller validates the signers
 * with certs and its store. certs (may be NULL) helps find signers that
 * the message does not carry. With out, a valid whole-message signature
 * is removed: out gets the outer header fields and the signed entity, and
 * unwrapped is set. Without unwrapped, whatever reached out is discarded.
 * Returns 0 when the message was examined (valid or not), -1 on an error.
 */
int smime_verify(const struct mime_src *in, STACK_OF(X509) * certs, BIO *out,
    struct smime_verify_result *, const char **error_r);
void smime_verify_result_clear(struct smime_verify_result *);

/*
 * The rule of docs/smime.md: a signature may be shown as the sender's
 * only if it covers the whole message, verifies, and names the From
 * address. The caller must add: and the signer's certificate is trusted.
 */
bool smime_verify_is_senders(const struct smime_verify_result *);

enum smime_form {
	SMIME_FORM_NONE, /* no S/MIME at the top */
	SMIME_FORM_SIGNED, /* multipart/signed */
	SMIME_FORM_SIGNED_DATA, /* application/pkcs7-mime signed-data */
	SMIME_FORM_ENVELOPED,
	SMIME_FORM_AUTH_ENVELOPED,
	SMIME_FORM_OTHER, /* compressed-data, certs-only, unreadable */
};

struct smime_info {
	int form; /* of the top-level entity: enum smime_form */
	bool nested_signed; /* a signed part below the top */
	bool nested_encrypted; /* an encrypted part below the top */
};

/* What a message is, read from its structure and the CMS content type. */
int smime_inspect(
    const struct mime_src *, struct smime_info *, const char **error_r);

/*
 * Copies a message with every X-Mailseal-Info-* field of its top-level
 * header removed (they must not come from outside) and the given fields
 * added at the end of the header. Each field is "X-Mailseal-Info-Name:
 * value" without a line end; one with a CR, LF or NUL, another name, or
 * over 998 octets is refused.
 */
int smime_info_rewrite(const struct mime_src *in, BIO *out,
    const char *const *fields, size_t nfields, const char **error_r);

#endif
