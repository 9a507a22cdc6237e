#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include "testcerts.h"

static void
tc_die(const char *what)
{
	fprintf(stderr, "testcerts: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	abort();
}

static EVP_PKEY *rsa_keys[4], *ec_keys[4];

EVP_PKEY *
tc_key_rsa(int which)
{
	if (rsa_keys[which] == NULL &&
	    (rsa_keys[which] = EVP_RSA_gen(2048)) == NULL)
		tc_die("RSA keygen");
	return rsa_keys[which];
}

EVP_PKEY *
tc_key_ec(int which)
{
	if (ec_keys[which] == NULL &&
	    (ec_keys[which] = EVP_EC_gen("P-256")) == NULL)
		tc_die("EC keygen");
	return ec_keys[which];
}

void
tc_cleanup(void)
{
	for (size_t i = 0; i < 4; i++) {
		EVP_PKEY_free(rsa_keys[i]);
		EVP_PKEY_free(ec_keys[i]);
		rsa_keys[i] = ec_keys[i] = NULL;
	}
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	if ((e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		tc_die(value);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

X509 *
tc_cert(const struct tc_cert_opts *o, EVP_PKEY *key, X509 *issuer,
    EVP_PKEY *issuer_key)
{
	static long counter = 1000;
	X509 *x = X509_new();
	X509_NAME *name;
	long from = o->from_days, to = o->to_days;
	char san[300];

	if (from == 0 && to == 0) {
		from = -1;
		to = 365;
	}
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(
	    X509_get_serialNumber(x), o->serial != 0 ? o->serial : counter++);
	X509_time_adj_ex(X509_getm_notBefore(x), (int)from, 0, NULL);
	X509_time_adj_ex(X509_getm_notAfter(x), (int)to, 0, NULL);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(
	    name, "CN", MBSTRING_UTF8, (const unsigned char *)o->cn, -1, -1, 0);
	if (o->subject_email != NULL)
		X509_NAME_add_entry_by_NID(name, NID_pkcs9_emailAddress,
		    MBSTRING_ASC, (const unsigned char *)o->subject_email, -1,
		    -1, 0);
	X509_set_issuer_name(
	    x, issuer != NULL ? X509_get_subject_name(issuer) : name);
	X509_set_pubkey(x, key);
	if (issuer == NULL) {
		issuer = x;
		issuer_key = key;
	}
	add_ext(x, issuer, NID_basic_constraints,
	    o->ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(x, issuer, NID_subject_key_identifier, "hash");
	add_ext(x, issuer, NID_authority_key_identifier, "keyid");
	if (o->ku != NULL)
		add_ext(x, issuer, NID_key_usage, o->ku);
	else if (o->ca)
		add_ext(
		    x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (o->eku != NULL)
		add_ext(x, issuer, NID_ext_key_usage, o->eku);
	if (o->email != NULL) {
		snprintf(san, sizeof(san), "email:%s", o->email);
		add_ext(x, issuer, NID_subject_alt_name, san);
	}
	if (!X509_sign(x, issuer_key, EVP_sha256()))
		tc_die("X509_sign");
	return x;
}

X509_CRL *
tc_crl(X509 *issuer, EVP_PKEY *issuer_key, X509 **revoked, size_t n)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();

	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
	X509_gmtime_adj(t, -3600);
	X509_CRL_set1_lastUpdate(crl, t);
	X509_gmtime_adj(t, 7 * 86400);
	X509_CRL_set1_nextUpdate(crl, t);
	for (size_t i = 0; i < n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_ENUMERATED *reason = ASN1_ENUMERATED_new();
		X509_REVOKED_set_serialNumber(
		    r, X509_get_serialNumber(revoked[i]));
		X509_gmtime_adj(t, -1800);
		X509_REVOKED_set_revocationDate(r, t);
		ASN1_ENUMERATED_set(reason, 1); /* keyCompromise */
		X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, reason, 0, 0);
		ASN1_ENUMERATED_free(reason);
		X509_CRL_add0_revoked(crl, r);
	}
	ASN1_TIME_free(t);
	X509_CRL_sort(crl);
	if (!X509_CRL_sign(crl, issuer_key, EVP_sha256()))
		tc_die("X509_CRL_sign");
	return crl;
}

static char *
bio_text(BIO *bio)
{
	char *data, *s;
	long n = BIO_get_mem_data(bio, &data);

	s = malloc((size_t)n + 1);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	BIO_free(bio);
	return s;
}

static unsigned char *
copy_out(unsigned char *der, int n, size_t *len_r)
{
	unsigned char *c;

	if (n <= 0)
		tc_die("encoding");
	c = malloc((size_t)n);
	memcpy(c, der, (size_t)n);
	OPENSSL_free(der);
	*len_r = (size_t)n;
	return c;
}

unsigned char *
tc_der(X509 *x, size_t *len_r)
{
	unsigned char *der = NULL;

	return copy_out(der, i2d_X509(x, &der), len_r);
}

char *
tc_pem(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());

	PEM_write_bio_X509(bio, x);
	return bio_text(bio);
}

char *
tc_crl_pem(X509_CRL *crl)
{
	BIO *bio = BIO_new(BIO_s_mem());

	PEM_write_bio_X509_CRL(bio, crl);
	return bio_text(bio);
}

char *
tc_key_pem(EVP_PKEY *k, const char *password)
{
	BIO *bio = BIO_new(BIO_s_mem());

	if (!PEM_write_bio_PKCS8PrivateKey(bio, k,
		password ? EVP_aes_256_cbc() : NULL, password,
		password ? (int)strlen(password) : 0, NULL, NULL))
		tc_die("PEM_write_bio_PKCS8PrivateKey");
	return bio_text(bio);
}

unsigned char *
tc_key_der(EVP_PKEY *k, size_t *len_r)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
	unsigned char *der = NULL;
	int n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);

	PKCS8_PRIV_KEY_INFO_free(p8);
	return copy_out(der, n, len_r);
}

unsigned char *
tc_p7(X509 **certs, size_t n, size_t *len_r)
{
	PKCS7 *p7 = PKCS7_new();
	unsigned char *der = NULL;
	int len;

	PKCS7_set_type(p7, NID_pkcs7_signed);
	PKCS7_content_new(p7, NID_pkcs7_data);
	for (size_t i = 0; i < n; i++)
		PKCS7_add_certificate(p7, certs[i]);
	len = i2d_PKCS7(p7, &der);
	PKCS7_free(p7);
	return copy_out(der, len, len_r);
}

unsigned char *
tc_p12(X509 *x, EVP_PKEY *k, X509 *ca, const char *password, size_t *len_r)
{
	STACK_OF(X509) *cas = sk_X509_new_null();
	unsigned char *der = NULL;
	PKCS12 *p12;
	int n;

	if (ca != NULL)
		sk_X509_push(cas, ca);
	p12 = PKCS12_create(password, "test", k, x, cas, 0, 0, 0, 0, 0);
	sk_X509_free(cas);
	if (p12 == NULL)
		tc_die("PKCS12_create");
	n = i2d_PKCS12(p12, &der);
	PKCS12_free(p12);
	return copy_out(der, n, len_r);
}
