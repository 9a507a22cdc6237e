#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "admin/password.h"
#include "common/util.h"

/*
 * N = 2^15, r = 8, p = 1: 32 MiB and some 50 ms per hash, the
 * interactive-login parameters of RFC 7914 section 2's discussion.
 */
#define SCRYPT_LN 15
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SALT_LEN 16
#define KEY_LEN 32

static int
scrypt_derive(const char *password, const unsigned char *salt, size_t saltlen,
    unsigned ln, unsigned r, unsigned p, unsigned char *out, size_t outlen)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *ctx;
	OSSL_PARAM params[6], *q = params;
	uint64_t n = (uint64_t)1 << ln;
	uint32_t rr = r, pp = p;
	int rc = -1;

	if ((kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL)) == NULL)
		return -1;
	ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (ctx == NULL)
		return -1;
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
	    (void *)(uintptr_t)password, strlen(password));
	*q++ = OSSL_PARAM_construct_octet_string(
	    OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)salt, saltlen);
	*q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &pp);
	*q = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, outlen, params) == 1)
		rc = 0;
	EVP_KDF_CTX_free(ctx);
	return rc;
}

static void
hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int
hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen)
{
	if (inlen != 2 * outlen)
		return -1;
	for (size_t i = 0; i < outlen; i++) {
		unsigned v = 0;
		for (size_t k = 0; k < 2; k++) {
			char c = in[2 * i + k];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				return -1;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

int
password_hash(const char *password, char **hash_r, const char **error_r)
{
	unsigned char salt[SALT_LEN], key[KEY_LEN];
	char salthex[2 * SALT_LEN + 1], keyhex[2 * KEY_LEN + 1];

	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		*error_r = "no random bytes";
		return -1;
	}
	if (scrypt_derive(password, salt, sizeof(salt), SCRYPT_LN, SCRYPT_R,
		SCRYPT_P, key, sizeof(key)) == -1) {
		*error_r = "scrypt failed";
		return -1;
	}
	hex_encode(salt, sizeof(salt), salthex);
	hex_encode(key, sizeof(key), keyhex);
	OPENSSL_cleanse(key, sizeof(key));
	*hash_r = xasprintf("$scrypt$ln=%d,r=%d,p=%d$%s$%s", SCRYPT_LN,
	    SCRYPT_R, SCRYPT_P, salthex, keyhex);
	OPENSSL_cleanse(keyhex, sizeof(keyhex));
	return 0;
}

bool
password_verify(const char *password, const char *hash)
{
	unsigned char salt[SALT_LEN], want[KEY_LEN], got[KEY_LEN];
	unsigned ln, r, p;
	int used = 0;
	const char *s, *k;
	bool ok;

	if (sscanf(hash, "$scrypt$ln=%u,r=%u,p=%u$%n", &ln, &r, &p, &used) !=
		3 ||
	    used == 0)
		return false;
	/* Bounds keep a tampered hash from costing gigabytes. */
	if (ln < 10 || ln > 20 || r < 1 || r > 16 || p < 1 || p > 4)
		return false;
	s = hash + used;
	if ((k = strchr(s, '$')) == NULL)
		return false;
	if (hex_decode(s, (size_t)(k - s), salt, sizeof(salt)) == -1 ||
	    hex_decode(k + 1, strlen(k + 1), want, sizeof(want)) == -1)
		return false;
	if (scrypt_derive(
		password, salt, sizeof(salt), ln, r, p, got, sizeof(got)) == -1)
		return false;
	ok = CRYPTO_memcmp(got, want, sizeof(got)) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

void
password_random(char *buf, size_t len)
{
	/* No 0/O, 1/l/I: the first password is read off a terminal. */
	static const char alphabet[] = "abcdefghijkmnopqrstuvwxyz"
				       "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	const size_t n = sizeof(alphabet) - 1;
	unsigned char b;

	if (len == 0)
		return;
	for (size_t i = 0; i + 1 < len;) {
		if (RAND_bytes(&b, 1) != 1)
			abort();
		/* Rejection sampling: no bias toward the first letters. */
		if (b >= 256 - 256 % n)
			continue;
		buf[i++] = alphabet[b % n];
	}
	buf[len - 1] = '\0';
}

int
password_check_new(const char *password, const char **error_r)
{
	size_t len = strlen(password);

	if (len < 10) {
		*error_r = "must be at least 10 characters long";
		return -1;
	}
	if (len > 1024) {
		*error_r = "must be at most 1024 characters long";
		return -1;
	}
	for (const char *c = password; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			*error_r = "must not contain control characters";
			return -1;
		}
	return 0;
}
