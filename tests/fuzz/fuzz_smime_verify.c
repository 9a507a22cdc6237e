/*
 * libFuzzer: what the engine does with mail from outside. The MIME
 * scanner, the canonical writer, the S/MIME inspection, verification
 * (multipart/signed and signed-data, through the CMS splitter and
 * OpenSSL) and decryption up to the key lookup, on any octets.
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/bio.h>

#include "common/util.h"
#include "crypto/smime.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* No keys: decryption stops after the RecipientInfos are read. */
static int
no_keys(void *ctx, const struct smime_rid *rids, size_t nrids, size_t i,
    struct smime_key *key_r)
{
	for (size_t j = 0; j < nrids; j++)
		if (rids[j].issuer == NULL && rids[j].keyid == NULL)
			abort();
	return 0;
}

static void
canonical(const struct mime_src *src, BIO *sink)
{
	struct mime_tree *t;
	struct mime_out *o;
	const char *why;

	if (mime_scan(src, &t, &why) == -1)
		return;
	for (size_t i = 0; i < t->nparts; i++) {
		const struct mime_part *p = &t->part[i];
		/* The offsets a scan gives are ordered and inside the file. */
		if (p->start > p->hdr_end || p->hdr_end > p->body ||
		    p->body > p->end || p->end > src->len || p->type == NULL)
			abort();
		if (p->parent >= 0 &&
		    (p->start < t->part[p->parent].body ||
			p->end > t->part[p->parent].end))
			abort();
	}
	o = xmalloc(sizeof(*o));
	mime_out_init(o, sink);
	if (mime_write_entity(t, 0, MIME_CANON_7BIT, true, o) == -1 ||
	    mime_write_entity(t, 0, MIME_CANON_8BIT, false, o) == -1 ||
	    mime_write_outer_header(t, o, &why) == -1 ||
	    mime_out_flush(o) == -1)
		abort();
	free(o);
	mime_tree_free(&t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct mime_src src;
	struct smime_verify_result vr;
	struct smime_decrypt_result dr;
	struct smime_info info;
	const char *why;
	BIO *sink = BIO_new(BIO_s_null());
	int fd = memfd_create("msg", 0);

	if (!init) {
		if (smime_init(NULL, &why) == -1)
			abort();
		init = true;
	}
	if (fd == -1 || sink == NULL || write_full(fd, data, size) == -1)
		abort();
	src.fd = fd;
	src.off = 0;
	src.len = size;
	canonical(&src, sink);
	(void)smime_inspect(&src, &info, &why);
	if (smime_verify(&src, NULL, sink, &vr, &why) == 0) {
		if (vr.valid && vr.signers == NULL)
			abort();
		smime_verify_result_clear(&vr);
	}
	if (smime_decrypt(&src, sink, no_keys, NULL, &dr, &why) == 0)
		abort(); /* nothing can decrypt without a key */
	smime_decrypt_result_clear(&dr);
	BIO_free(sink);
	close(fd);
	return 0;
}
