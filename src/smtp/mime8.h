/*
 * 8BITMIME downgrade (RFC 6152 3, RFC 2045 6.7): a streaming converter
 * that rewrites a message with 8-bit bodies for a server that does not
 * offer 8BITMIME. Each leaf part whose Content-Transfer-Encoding is 7bit,
 * 8bit, binary or absent is sent quoted-printable; multipart and
 * message/rfc822 containers are walked into and declared 7bit; headers
 * are left as they are. Input and output are CRLF lines; the input may
 * arrive in pieces of any size.
 */
#ifndef MAILSEAL_MIME8_H
#define MAILSEAL_MIME8_H

#include <stdbool.h>
#include <stddef.h>

struct mime8;

typedef void (*mime8_out_fn)(void *arg, const char *p, size_t len);

struct mime8 *mime8_new(mime8_out_fn, void *arg);
void mime8_feed(struct mime8 *, const char *p, size_t len);
/* Ends the input: a last line without CRLF is finished. */
void mime8_finish(struct mime8 *);
void mime8_free(struct mime8 **);

/* Whether a buffer holds a byte with the high bit set. */
bool mime8_has_8bit(const void *, size_t);

#endif
