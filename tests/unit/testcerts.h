/*
 * Certificates for tests, made with the OpenSSL API: keys, CAs,
 * intermediates, leaves with chosen key usage, extended key usage,
 * validity and addresses, CRLs, and the files that import reads (PEM,
 * DER, PKCS#7, PKCS#8, PKCS#12). Failures abort the test.
 */
#ifndef MAILSEAL_TESTCERTS_H
#define MAILSEAL_TESTCERTS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Keys are made once per process and shared (RSA keygen is slow). */
EVP_PKEY *tc_key_rsa(int which);
EVP_PKEY *tc_key_ec(int which);
/* Frees the shared keys (at the end of a test program). */
void tc_cleanup(void);

struct tc_cert_opts {
	const char *cn;
	const char *email; /* subjectAltName rfc822Name, or NULL */
	const char *subject_email; /* subject emailAddress, or NULL */
	long from_days, to_days; /* validity relative to now (0, 0: -1, 365) */
	const char *ku; /* e.g. "critical,digitalSignature,keyEncipherment" */
	const char *eku; /* e.g. "emailProtection"; NULL: no extension */
	bool ca;
	long serial; /* 0: a counter */
};

/* A certificate signed by issuer (NULL: self-signed with key). */
X509 *tc_cert(const struct tc_cert_opts *, EVP_PKEY *key, X509 *issuer,
    EVP_PKEY *issuer_key);
/* A CRL of issuer revoking the given certificates. */
X509_CRL *tc_crl(X509 *issuer, EVP_PKEY *issuer_key, X509 **revoked, size_t n);

/* Encodings; the caller frees with free(). */
unsigned char *tc_der(X509 *, size_t *len_r);
char *tc_pem(X509 *);
char *tc_crl_pem(X509_CRL *);
/* PKCS#8 PEM, encrypted with AES-256-CBC when password is not NULL. */
char *tc_key_pem(EVP_PKEY *, const char *password);
/* The unencrypted PKCS#8 DER of a key. */
unsigned char *tc_key_der(EVP_PKEY *, size_t *len_r);
/* A degenerate PKCS#7 signedData holding the certificates. */
unsigned char *tc_p7(X509 **, size_t n, size_t *len_r);
unsigned char *tc_p12(
    X509 *, EVP_PKEY *, X509 *ca, const char *password, size_t *len_r);

#endif
