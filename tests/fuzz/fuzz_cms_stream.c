/*
 * libFuzzer: the streaming CMS splitter on raw BER. What it keeps must be
 * readable by OpenSSL's d2i, or be refused; the content must fit in what
 * was read.
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/err.h>

#include "crypto/cms_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct mem {
	const uint8_t *p;
	size_t len, pos;
};

static long
mem_read(void *ctx, void *buf, size_t n)
{
	struct mem *m = ctx;
	size_t k = m->len - m->pos;

	/* Odd-sized reads, to cross every buffer boundary. */
	if (k > n)
		k = n;
	if (k > 333)
		k = 333;
	memcpy(buf, m->p + m->pos, k);
	m->pos += k;
	return (long)k;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem m = { data, size, 0 };
	struct cms_split sp;
	const unsigned char *p;
	CMS_ContentInfo *cms;
	const char *why;
	int fd = memfd_create("content", 0);

	if (fd == -1)
		abort();
	if (cms_split(mem_read, &m, fd, &sp, &why) == 0) {
		if (sp.content_len > size || sp.skel_len > CMS_MAX_SKELETON ||
		    lseek(fd, 0, SEEK_END) != (off_t)sp.content_len)
			abort();
		p = sp.skel;
		cms = d2i_CMS_ContentInfo(NULL, &p, (long)sp.skel_len);
		CMS_ContentInfo_free(cms);
		ERR_clear_error();
		cms_split_clear(&sp);
	}
	m.pos = 0;
	(void)cms_peek_type(mem_read, &m);
	close(fd);
	return 0;
}
