/*
 * The two CMS structures (RFC 5652) that outgoing mail needs in the common
 * case, written from DER pieces rather than through OpenSSL's CMS objects:
 *
 *   - a detached SignedData by an RSA key (RSASSA-PKCS1-v1_5), with the
 *     signed attributes OpenSSL's CMS_sign() gives (contentType,
 *     signingTime, messageDigest, SMIMECapabilities);
 *   - an EnvelopedData in AES-CBC to RSA keys (key transport,
 *     RSAES-PKCS1-v1_5), streamed: BER with indefinite lengths, the
 *     ciphertext in 4096-octet OCTET STRING pieces, as OpenSSL's
 *     streaming encoder writes it.
 *
 * The octets are those OpenSSL writes for the same input, up to the
 * random values and the time (tests/integration/test_smime_lib.py sets
 * the two side by side, and OpenSSL and gpgsm read ours). What changes is
 * the work per message: no CMS object is built, copied and encoded, and
 * the key operations use EVP_PKEY_CTXs set up once per key and kept here
 * (with OpenSSL 3.0, setting one up walks the whole algorithm name table).
 * Everything else (EC keys, RSA-PSS, RSAES-OAEP, AES-GCM) stays with
 * OpenSSL's CMS code in smime.c.
 */
#ifndef MAILSEAL_CMS_WRITE_H
#define MAILSEAL_CMS_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* An RSA key (not RSA-PSS): what both writers take. */
bool cmsw_rsa_key(const EVP_PKEY *);

/*
 * The ContentInfo of a detached SignedData (DER, *der_r allocated) over a
 * content whose digest by md is given; the signer's certificate and the
 * chain (may be NULL) go in its certificates, once each. The caller has
 * checked that key is the certificate's (X509_check_private_key).
 */
int cmsw_signed(X509 *cert, EVP_PKEY *key, STACK_OF(X509) * chain,
    const EVP_MD *md, const unsigned char *digest, size_t digest_len,
    time_t now, unsigned char **der_r, size_t *len_r);

/*
 * A filter BIO on top of next: what is written to it leaves, as the
 * ContentInfo of an EnvelopedData in cipher (AES-128-CBC or AES-256-CBC)
 * to every certificate's RSA key, to next. BIO_flush() writes the end;
 * BIO_pop() and BIO_free() take it off. NULL if it cannot be set up.
 */
BIO *cmsw_enveloped_new(
    BIO *next, STACK_OF(X509) * certs, const EVP_CIPHER *cipher);

/*
 * The DER of the SMIMECapabilities attribute's value (the list of
 * CMS_add_standard_smimecap), made once; NULL if it cannot be made.
 */
const unsigned char *cmsw_smimecap(size_t *len_r);

/* Frees the key operations kept, and their references to the keys. */
void cmsw_forget_keys(void);

#endif
