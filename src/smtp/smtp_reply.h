/*
 * Replies of an SMTP server (RFC 5321 4.2), as the SMTP client reads them
 * line by line, with the enhanced status code of RFC 3463 (RFC 2034).
 */
#ifndef MAILSEAL_SMTP_REPLY_H
#define MAILSEAL_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1.5 allows 512 octets; servers send more. */
#define SMTP_REPLY_LINE_MAX 4096
#define SMTP_REPLY_LINES_MAX 200
#define SMTP_REPLY_TEXT_MAX 65536

struct smtp_reply {
	int code; /* 200..599 once a line is read */
	char dsn[12]; /* "5.1.1", or "5.0.0" made from the code */
	bool has_dsn; /* the server sent an enhanced status code */
	bool done; /* the last line ("250 ...") was read */
	char *text; /* the lines joined by spaces, codes kept, printable */
	size_t len;
	char **lines; /* each line's text after "250-" or "250 " */
	size_t nlines;
};

enum {
	SMTP_REPLY_BAD = -1, /* not a reply line: the connection is unusable */
	SMTP_REPLY_MORE = 0, /* a continuation line ("250-"): read on */
	SMTP_REPLY_DONE = 1, /* the reply is complete */
};

/*
 * Adds one line (without its CRLF) to a reply. Returns SMTP_REPLY_MORE,
 * SMTP_REPLY_DONE, or SMTP_REPLY_BAD with a reason. Control characters
 * and 8-bit bytes of the text become '?', so that the text can go into
 * logs and delivery status notifications as it is.
 */
int smtp_reply_add_line(
    struct smtp_reply *, const char *line, size_t len, const char **error_r);
/* Forgets a reply, ready for the next. */
void smtp_reply_reset(struct smtp_reply *);

/*
 * The enhanced status code at the start of text ("5.1.1 ..."), if its
 * class matches the reply code. Copies it to dsn and returns its length,
 * or 0.
 */
size_t smtp_reply_parse_dsn(const char *text, int code, char *dsn, size_t size);

#endif
