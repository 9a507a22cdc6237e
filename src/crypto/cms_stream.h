/*
 * A CMS ContentInfo (RFC 5652) read as a stream: the content (the
 * encapsulated content of SignedData, the encrypted content of
 * EnvelopedData and AuthEnvelopedData, RFC 5083) goes to a file, and the
 * rest, the "skeleton", stays in memory with the content left out, as if
 * it were detached. OpenSSL then works on the skeleton with the content
 * given as a BIO (CMS_verify, CMS_decrypt with dcont), which it streams:
 * its d2i would otherwise hold the whole content in memory, several times.
 *
 * BER as RFC 5652 allows it: indefinite lengths, constructed OCTET
 * STRINGs. The nodes on the path to the content are re-encoded with
 * definite lengths; everything else is copied octet for octet.
 */
#ifndef MAILSEAL_CMS_STREAM_H
#define MAILSEAL_CMS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMS_MAX_SKELETON (1024 * 1024) /* certificates, recipients */
#define CMS_MAX_NESTING 32

enum cms_type {
	CMS_T_UNKNOWN,
	CMS_T_DATA,
	CMS_T_SIGNED,
	CMS_T_ENVELOPED,
	CMS_T_AUTH_ENVELOPED,
	CMS_T_COMPRESSED,
};

/* Why a split failed. */
enum cms_fail {
	CMS_FAIL_FORMAT, /* not valid BER or not the expected structure */
	CMS_FAIL_UNSUPPORTED, /* a content type without a content path */
	CMS_FAIL_LIMIT, /* CMS_MAX_SKELETON or CMS_MAX_NESTING */
	CMS_FAIL_IO, /* reading the input, writing the content file */
};

/* Reads up to n octets: 0 at the end, -1 on error (as read(2)). */
typedef long cms_read_fn(void *ctx, void *buf, size_t n);

struct cms_split {
	int type; /* enum cms_type */
	unsigned char *skel; /* the ContentInfo without its content */
	size_t skel_len;
	bool has_content;
	uint64_t content_len; /* octets written to the content file */
	unsigned char *alg; /* the content's AlgorithmIdentifier (DER) */
	size_t alg_len;
	int fail; /* after a failure: enum cms_fail */
};

/*
 * Reads a ContentInfo of type SignedData, EnvelopedData or
 * AuthEnvelopedData and writes its content octets to content_fd. Other
 * types are reported in split->type and fail with "unsupported".
 */
int cms_split(cms_read_fn *, void *ctx, int content_fd, struct cms_split *,
    const char **error_r);
void cms_split_clear(struct cms_split *);

/* Reads only as far as the content type; CMS_T_UNKNOWN if not CMS. */
int cms_peek_type(cms_read_fn *, void *ctx);

/* The name of a type, for logs: "signed-data", "enveloped-data", ... */
const char *cms_type_name(int);

#endif
