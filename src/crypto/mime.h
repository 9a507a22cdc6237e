/*
 * MIME structure of a message on disk, in one pass and without copies.
 *
 * A message (a spool file's content: RFC 5322, CRLF line ends) is scanned
 * once; what is kept is a table of parts with offsets into the file and a
 * few parsed header values. Bodies stay on disk and are streamed when
 * written out. GMime parses the header values (Content-Type parameters,
 * RFC 2231, addresses); its message parser is not used because it keeps
 * an object per header field and per part: 25 MB of short header lines
 * or empty parts took 2.4 GB in it (measured, docs/smime.md). Here the
 * memory of a scan is bounded by MIME_MAX_PARTS and MIME_MAX_HEADER.
 *
 * The writing half turns a part into its canonical form for S/MIME
 * (RFC 8551 3.1.1, 3.1.2): CRLF line ends, and bodies that are not 7-bit
 * (or, for delivery, not 8-bit) transfer-encoded.
 */
#ifndef MAILSEAL_MIME_H
#define MAILSEAL_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bio.h>

/* Limits of a scan: a message beyond them is refused, not truncated. */
#define MIME_MAX_PARTS 2048
#define MIME_MAX_DEPTH 32
#define MIME_MAX_HEADER (1024 * 1024) /* one header block */
#define MIME_MAX_BOUNDARY 200 /* RFC 2046 5.1.1 says 70 */
#define MIME_MAX_VALUE 16384 /* a field value given to GMime's parsers */

/* A message: a region of a seekable file, read with pread(2). */
struct mime_src {
	int fd;
	uint64_t off;
	uint64_t len;
};

enum mime_cte {
	MIME_CTE_7BIT, /* also when absent (RFC 2045 6.1) */
	MIME_CTE_8BIT,
	MIME_CTE_BINARY,
	MIME_CTE_QP,
	MIME_CTE_BASE64,
	MIME_CTE_OTHER, /* x-uuencode and the like: left alone */
};

enum mime_kind {
	MIME_LEAF,
	MIME_MULTIPART,
	MIME_MESSAGE, /* message/rfc822 or message/global, parsed inside */
};

/* Part flags. The body flags describe the raw body octets. */
#define MIME_F_8BIT 0x0001 /* octets >= 128 */
#define MIME_F_NUL 0x0002
#define MIME_F_BARE_CR 0x0004 /* a CR not followed by LF */
#define MIME_F_BARE_LF 0x0008 /* an LF not preceded by CR */
#define MIME_F_LONG 0x0010 /* a line over 998 octets (RFC 5322 2.1.1) */
#define MIME_F_HDR_8BIT 0x0020 /* octets >= 128 in the header fields */
#define MIME_F_DUP_CT 0x0040 /* two Content-Type or CTE fields */
#define MIME_F_NO_BLANK 0x0080 /* header fields not ended by a blank line */
#define MIME_F_UNCLOSED 0x0100 /* a multipart without its close delimiter */
#define MIME_F_NO_CT 0x0200 /* no Content-Type field: the default */
#define MIME_F_NO_FIELDS 0x0400 /* no header field at all */

/*
 * One entity. Offsets are relative to the region: [start, hdr_end) are the
 * header fields, [hdr_end, body) the blank line, [body, end) the body.
 * For a part of a multipart, end is where the CRLF before the next
 * delimiter line starts (RFC 2046 5.1.1: that CRLF belongs to the
 * delimiter), so [start, end) is exactly what RFC 1847 signs.
 */
struct mime_part {
	uint64_t start, hdr_end, body, end;
	char *type; /* "text/plain", lower case, never NULL */
	char *boundary; /* multipart only */
	char *protocol; /* multipart/signed: the protocol parameter */
	char *smime_type; /* the smime-type parameter, lower case */
	char *name; /* Content-Type name or Content-Disposition filename */
	int cte; /* enum mime_cte */
	int kind; /* enum mime_kind */
	int parent, child, next; /* indexes; -1 when none */
	int depth;
	unsigned flags;
};

struct mime_tree {
	struct mime_src src;
	struct mime_part *part; /* part[0] is the message itself */
	size_t nparts;
};

/*
 * Scans a message. Fails (-1 with a reason) only on a read error or when a
 * limit is exceeded; any octets make some structure, as they do for a
 * mail reader.
 */
int mime_scan(
    const struct mime_src *, struct mime_tree **tree_r, const char **error_r);
void mime_tree_free(struct mime_tree **);
/* The number of children of a part. */
size_t mime_part_nchildren(const struct mime_tree *, size_t idx);
/* Whether type is "application/pkcs7-mime" or its x- form, or a .p7m. */
bool mime_part_is_pkcs7_mime(const struct mime_part *);
/* Whether type is "application/pkcs7-signature" or its x- form. */
bool mime_part_is_pkcs7_signature(const struct mime_part *);

/* Reads [off, off + len) of the region; 0, or -1 on a short read. */
int mime_src_read(const struct mime_src *, uint64_t off, void *, size_t);

/* A buffered sequential reader of part of a region. */
struct mime_reader {
	const struct mime_src *src;
	uint64_t pos, end;
	size_t rpos, rlen;
	int error;
	unsigned char buf[65536];
};

void mime_reader_init(
    struct mime_reader *, const struct mime_src *, uint64_t off, uint64_t len);
/* Up to n octets; 0 at the end, -1 on a read error. */
long mime_reader_read(struct mime_reader *, void *, size_t n);

/*
 * A base64 decoder (RFC 2045 6.8) over a reader: characters outside the
 * alphabet are skipped, decoding stops at the first '='. Used for the
 * S/MIME parts, whose content is DER.
 */
struct mime_b64_reader {
	struct mime_reader r;
	bool raw; /* no decoding: the part is binary */
	bool done;
	unsigned acc, nacc;
};

void mime_b64_reader_init(struct mime_b64_reader *, const struct mime_src *,
    uint64_t off, uint64_t len, bool raw);
long mime_b64_reader_read(struct mime_b64_reader *, void *, size_t);

/* Header fields of a header block held in memory. */
struct mime_field {
	const char *name;
	size_t name_len;
	const char *raw; /* the whole field, line ends included */
	size_t raw_len;
	const char *value; /* after the colon, still folded */
	size_t value_len;
};

/* The next field at *pos; 1 with f filled in, 0 at the end. */
int mime_field_next(
    const char *hdr, size_t len, size_t *pos, struct mime_field *f);
bool mime_field_is(const struct mime_field *, const char *name);
bool mime_field_has_prefix(const struct mime_field *, const char *prefix);
/* The value unfolded and trimmed, NUL-terminated (xmalloc). */
char *mime_field_value(const struct mime_field *);
/*
 * The address of a From value holding one mailbox, lower case (xmalloc);
 * NULL if it holds none or more than one (RFC 5322 3.6.2).
 */
char *mime_from_mailbox(const char *value);
/* The same through GMime's address parser alone (the reference). */
char *mime_from_mailbox_gmime(const char *value);
/* Reads a part's header fields into memory (xmalloc, NUL-terminated). */
int mime_part_header(const struct mime_tree *, size_t idx, char **buf_r,
    size_t *len_r, const char **error_r);
/* The value of the first field called name in a part's header, or NULL. */
char *mime_part_field(const struct mime_tree *, size_t idx, const char *name);

/*
 * The output side: every octet goes through a line-end normaliser (CR,
 * LF and CRLF all become CRLF, RFC 5322 2.3), is buffered, and is
 * written to bio and, when set, to tee (a digest being computed).
 */
struct mime_out {
	BIO *bio;
	BIO *tee;
	bool pending_cr;
	bool raw; /* no normalising: base64 and QP output is CRLF already */
	int error;
	unsigned char last; /* the last octet written */
	uint64_t written;
	size_t len;
	unsigned char buf[65536];
};

void mime_out_init(struct mime_out *, BIO *bio);
void mime_out_write(struct mime_out *, const void *, size_t);
void mime_out_puts(struct mime_out *, const char *);
/* Copies [off, off + len) of the region. */
void mime_out_copy(
    struct mime_out *, const struct mime_src *, uint64_t off, uint64_t len);
/* Writes what is buffered; -1 if any write has failed. */
int mime_out_flush(struct mime_out *);
/* One header field as it came, ending in CRLF. */
void mime_out_field(struct mime_out *, const struct mime_field *);
/* Part idx's blank line (when it had one or has a body) and body, as
 * they are. */
void mime_out_body(struct mime_out *, const struct mime_tree *, size_t idx);

/* Streaming transfer encoders writing CRLF lines of at most 76 octets. */
struct mime_enc {
	int cte; /* MIME_CTE_QP or MIME_CTE_BASE64 */
	unsigned col;
	bool first_line;
	int pending_cr, pending_ws; /* QP: held back until the next octet */
	size_t nin;
	unsigned char in[57];
};

void mime_enc_init(struct mime_enc *, int cte);
/* Base64 of n octets, padded, no line break: 4 * ((n + 2) / 3) chars. */
size_t mime_b64_encode(char *out, const unsigned char *in, size_t n);
void mime_enc_write(struct mime_enc *, struct mime_out *, const void *, size_t);
void mime_enc_final(struct mime_enc *, struct mime_out *);

/* A write-only BIO that base64-encodes into a mime_out (for CMS DER). */
BIO *mime_b64_bio_new(struct mime_out *);
/* Writes the last partial line; the BIO is then freed by the caller. */
void mime_b64_bio_final(BIO *);

/*
 * Canonical forms. MIME_CANON_7BIT is for signing and encrypting: every
 * body that holds 8-bit or binary octets is transfer-encoded
 * (quoted-printable for text types, base64 otherwise), and 8bit/binary
 * labels of bodies that are 7-bit are corrected. MIME_CANON_8BIT is for
 * delivery of decrypted content: only bodies that SMTP cannot carry (NUL,
 * bare CR, long lines) are encoded. Both leave a multipart/signed and all
 * inside it untouched (apart from line ends), since changing it would
 * break its signature.
 */
enum mime_canon {
	MIME_CANON_7BIT,
	MIME_CANON_8BIT,
};

/*
 * Writes part idx as an entity: header fields (for content_only, only the
 * Content-* fields: the header split of RFC 8551 3.1), the blank line and
 * the body. Returns -1 when writing failed.
 */
int mime_write_entity(const struct mime_tree *, size_t idx, int canon,
    bool content_only, struct mime_out *);

/*
 * Writes the fields of the top-level header that stay outside an S/MIME
 * entity: all but Content-*, MIME-Version (the writer adds its own) and
 * X-Mailseal-Info-* (which must not come from outside). Fields are copied
 * as they are, folding included.
 */
int mime_write_outer_header(
    const struct mime_tree *, struct mime_out *, const char **error_r);

/* Whether a field name is one of ours, X-Mailseal-Info-*. */
bool mime_is_info_field(const struct mime_field *);

/*
 * An unlinked temporary file in dir (O_TMPFILE, else mkstemp + unlink);
 * -1 on error.
 */
int mime_tmpfile(const char *dir);

#endif
