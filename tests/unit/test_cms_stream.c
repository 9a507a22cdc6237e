#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/util.h"
#include "crypto/cms_stream.h"
#include "crypto/mime.h"

static const char content[] = "Content-Type: text/plain\r\n\r\nhello\r\n";

static EVP_PKEY *key;
static X509 *cert;

/* An EC P-256 key and a self-signed certificate, made here. */
static int
setup(void **state)
{
	X509_NAME *n;

	key = EVP_EC_gen("P-256");
	cert = X509_new();
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, key);
	n = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(
	    n, "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
	X509_set_issuer_name(cert, n);
	return X509_sign(cert, key, EVP_sha256()) > 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	X509_free(cert);
	EVP_PKEY_free(key);
	return 0;
}

struct membuf {
	const unsigned char *p;
	size_t len, pos, chunk;
};

/* Reads in small chunks, so that every boundary case is crossed. */
static long
mem_read(void *ctx, void *buf, size_t n)
{
	struct membuf *m = ctx;
	size_t k = m->len - m->pos;

	if (k > n)
		k = n;
	if (k > m->chunk)
		k = m->chunk;
	memcpy(buf, m->p + m->pos, k);
	m->pos += k;
	return (long)k;
}

/* DER (or streamed BER) of a CMS structure. */
static unsigned char *
encode(CMS_ContentInfo *cms, bool stream, size_t *len_r)
{
	BIO *mem = BIO_new(BIO_s_mem()), *in;
	unsigned char *p, *d;
	long n;

	if (stream) {
		in = BIO_new_mem_buf(content, sizeof(content) - 1);
		assert_int_equal(
		    i2d_CMS_bio_stream(mem, cms, in, CMS_STREAM | CMS_BINARY),
		    1);
		BIO_free(in);
	} else
		assert_int_equal(i2d_CMS_bio(mem, cms), 1);
	n = BIO_get_mem_data(mem, &p);
	d = xmalloc((size_t)n);
	memcpy(d, p, (size_t)n);
	*len_r = (size_t)n;
	BIO_free(mem);
	return d;
}

static int
split(const unsigned char *der, size_t len, size_t chunk, struct cms_split *sp,
    int *fd_r, const char **why)
{
	struct membuf m = { der, len, 0, chunk };
	int fd = mime_tmpfile(NULL);

	assert_true(fd >= 0);
	*fd_r = fd;
	return cms_split(mem_read, &m, fd, sp, why);
}

static char *
file_text(int fd)
{
	char *s = xmalloc(4096);
	ssize_t n = pread(fd, s, 4095, 0);

	assert_true(n >= 0);
	s[n] = '\0';
	return s;
}

static void
signed_data(void **state)
{
	int flags = CMS_BINARY | CMS_NOSMIMECAP;

	for (int stream = 0; stream < 2; stream++) {
		BIO *in = BIO_new_mem_buf(content, sizeof(content) - 1);
		CMS_ContentInfo *cms = CMS_sign(
		    cert, key, NULL, in, flags | (stream ? CMS_STREAM : 0));
		struct cms_split sp;
		const unsigned char *p;
		const char *why;
		unsigned char *der;
		size_t len;
		char *text;
		int fd;
		BIO *dcont;

		assert_non_null(cms);
		BIO_free(in);
		der = encode(cms, stream, &len);
		CMS_ContentInfo_free(cms);
		for (size_t chunk = 1; chunk <= 4096; chunk *= 64) {
			assert_int_equal(
			    split(der, len, chunk, &sp, &fd, &why), 0);
			assert_int_equal(sp.type, CMS_T_SIGNED);
			assert_true(sp.has_content);
			text = file_text(fd);
			assert_string_equal(text, content);
			free(text);
			/* The skeleton is a detached signature. */
			p = sp.skel;
			cms = d2i_CMS_ContentInfo(NULL, &p, (long)sp.skel_len);
			assert_non_null(cms);
			assert_int_equal(CMS_is_detached(cms), 1);
			dcont = BIO_new_mem_buf(content, sizeof(content) - 1);
			assert_int_equal(
			    CMS_verify(cms, NULL, NULL, dcont, NULL,
				CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY),
			    1);
			BIO_free(dcont);
			CMS_ContentInfo_free(cms);
			cms_split_clear(&sp);
			close(fd);
		}
		free(der);
	}
}

static void
enveloped(void **state)
{
	static const char *const ciphers[] = { "AES-128-CBC", "AES-256-GCM" };
	static const char *const names[] = { "aes-128-cbc", "aes-256-gcm" };

	for (size_t c = 0; c < nitems(ciphers); c++) {
		STACK_OF(X509) *rcpts = sk_X509_new_null();
		BIO *in = BIO_new_mem_buf(content, sizeof(content) - 1);
		CMS_ContentInfo *cms;
		struct cms_split sp;
		const unsigned char *p;
		X509_ALGOR *alg;
		const ASN1_OBJECT *obj;
		const char *why;
		unsigned char *der;
		size_t len;
		int fd;
		BIO *dcont, *out;
		char *plain;
		long n;

		sk_X509_push(rcpts, cert);
		cms = CMS_encrypt(rcpts, in, EVP_get_cipherbyname(ciphers[c]),
		    CMS_BINARY | CMS_STREAM);
		assert_non_null(cms);
		BIO_free(in);
		der = encode(cms, true, &len);
		CMS_ContentInfo_free(cms);
		sk_X509_free(rcpts);

		assert_int_equal(split(der, len, 7, &sp, &fd, &why), 0);
		assert_int_equal(
		    sp.type, c == 0 ? CMS_T_ENVELOPED : CMS_T_AUTH_ENVELOPED);
		assert_true(sp.has_content);
		/* CBC pads to the block; GCM does not. */
		assert_int_equal(sp.content_len,
		    c == 0 ? (sizeof(content) - 1) / 16 * 16 + 16
			   : sizeof(content) - 1);
		p = sp.alg;
		alg = d2i_X509_ALGOR(NULL, &p, (long)sp.alg_len);
		X509_ALGOR_get0(&obj, NULL, NULL, alg);
		assert_string_equal(OBJ_nid2ln(OBJ_obj2nid(obj)), names[c]);
		X509_ALGOR_free(alg);

		/* OpenSSL decrypts the skeleton with the file as content. */
		p = sp.skel;
		cms = d2i_CMS_ContentInfo(NULL, &p, (long)sp.skel_len);
		assert_non_null(cms);
		lseek(fd, 0, SEEK_SET);
		dcont = BIO_new_fd(fd, BIO_NOCLOSE);
		out = BIO_new(BIO_s_mem());
		assert_int_equal(CMS_decrypt(cms, key, cert, dcont, out, 0), 1);
		n = BIO_get_mem_data(out, &plain);
		assert_int_equal(n, sizeof(content) - 1);
		assert_memory_equal(plain, content, (size_t)n);
		BIO_free(out);
		BIO_free(dcont);
		CMS_ContentInfo_free(cms);
		cms_split_clear(&sp);
		close(fd);
		free(der);
	}
}

static void
malformed(void **state)
{
	/* A ContentInfo holding data: well formed, but not for us. */
	static const unsigned char data[] = { 0x30, 0x16, 0x06, 0x09, 0x2a,
		0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0xa0, 0x09,
		0x04, 0x07, 'c', 'o', 'n', 't', 'e', 'n', 't' };
	/* Inner length larger than its container. */
	static const unsigned char overrun[] = { 0x30, 0x05, 0x06, 0x09, 0x2a,
		0x86, 0x48 };
	static const unsigned char notcms[] = { 0x04, 0x02, 'h', 'i' };
	static const unsigned char badlen[] = { 0x30, 0x89, 1, 2, 3, 4, 5, 6, 7,
		8, 9 };
	unsigned char deep[2 * 64 + 16];
	struct cms_split sp;
	const char *why;
	int fd;

	assert_int_equal(split(data, sizeof(data), 64, &sp, &fd, &why), -1);
	assert_int_equal(sp.type, CMS_T_DATA);
	assert_string_equal(why, "unsupported CMS content type");
	close(fd);
	assert_int_equal(
	    split(overrun, sizeof(overrun), 64, &sp, &fd, &why), -1);
	close(fd);
	assert_int_equal(split(data, sizeof(data) - 3, 64, &sp, &fd, &why), -1);
	assert_string_equal(why, "truncated CMS structure");
	close(fd);
	assert_int_equal(split(notcms, sizeof(notcms), 64, &sp, &fd, &why), -1);
	assert_string_equal(why, "not a CMS ContentInfo");
	close(fd);
	assert_int_equal(split(badlen, sizeof(badlen), 64, &sp, &fd, &why), -1);
	assert_string_equal(why, "bad BER length");
	close(fd);

	/* Signed data whose certificates nest without end. */
	{
		static const unsigned char head[] = { 0x30, 0x80, 0x06, 0x09,
			0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
			0xa0, 0x80, 0x30, 0x80 };
		size_t n = sizeof(head);
		memcpy(deep, head, n);
		while (n + 2 <= sizeof(deep)) {
			deep[n++] = 0x31;
			deep[n++] = 0x80;
		}
		assert_int_equal(split(deep, n, 64, &sp, &fd, &why), -1);
		assert_string_equal(why, "BER nested too deep");
		close(fd);
	}
}

static void
peek(void **state)
{
	static const unsigned char env[] = { 0x30, 0x80, 0x06, 0x09, 0x2a, 0x86,
		0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0 };
	static const unsigned char auth[] = { 0x30, 0x82, 0x01, 0x00, 0x06,
		0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10,
		0x01, 0x17 };
	struct membuf m = { env, sizeof(env), 0, 3 };

	assert_int_equal(cms_peek_type(mem_read, &m), CMS_T_ENVELOPED);
	m = (struct membuf){ auth, sizeof(auth), 0, 100 };
	assert_int_equal(cms_peek_type(mem_read, &m), CMS_T_AUTH_ENVELOPED);
	m = (struct membuf){ auth, 5, 0, 100 };
	assert_int_equal(cms_peek_type(mem_read, &m), CMS_T_UNKNOWN);
	assert_string_equal(
	    cms_type_name(CMS_T_AUTH_ENVELOPED), "authEnveloped-data");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(signed_data),
		cmocka_unit_test(enveloped),
		cmocka_unit_test(malformed),
		cmocka_unit_test(peek),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
