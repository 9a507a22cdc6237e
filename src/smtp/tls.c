#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "smtp/tls.h"

static const char *
ssl_error(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

int
tls_make_selfsigned(const char *cert_path, const char *key_path, const char *cn,
    const char **error_r)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	FILE *f = NULL;
	char *san = NULL;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	int rc = -1, fd;

	if (access(cert_path, F_OK) == 0 && access(key_path, F_OK) == 0)
		return 0;
	if ((pkey = EVP_EC_gen("P-256")) == NULL)
		goto ssl_fail;
	if ((x = X509_new()) == NULL)
		goto ssl_fail;
	X509_set_version(x, 2);
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto ssl_fail;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(
	    name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	san = xasprintf("DNS:%s", cn);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san)) ==
	    NULL)
		goto ssl_fail;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (X509_sign(x, pkey, EVP_sha256()) == 0)
		goto ssl_fail;

	fd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		*error_r = "cannot create the key file";
		goto out;
	}
	if (!PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) ||
	    fclose(f) != 0) {
		f = NULL;
		*error_r = "cannot write the key file";
		goto out;
	}
	if ((f = fopen(cert_path, "w")) == NULL) {
		*error_r = "cannot create the certificate file";
		goto out;
	}
	if (!PEM_write_X509(f, x) || fclose(f) != 0) {
		f = NULL;
		*error_r = "cannot write the certificate file";
		goto out;
	}
	f = NULL;
	rc = 0;
	goto out;
ssl_fail:
	*error_r = ssl_error();
out:
	if (f != NULL)
		fclose(f);
	free(san);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

SSL_CTX *
tls_server_ctx(
    const char *cert_path, const char *key_path, const char **error_r)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx,
	    SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
		SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(
	    ctx, (const unsigned char *)"mailseal", 8);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	return ctx;
fail:
	*error_r = ssl_error();
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_client_ctx(const char **error_r)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		*error_r = ssl_error();
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

void
tls_describe(SSL *ssl, char *buf, size_t size)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int alg = 0, bits = SSL_CIPHER_get_bits(c, &alg);

	snprintf(buf, size, "%s with cipher %s (%d/%d bits)",
	    SSL_get_version(ssl), SSL_CIPHER_get_name(c), bits, alg);
}
