/*
 * SASL credentials for the SMTP client (RFC 4954): the password file of
 * smtp_sasl_password_maps, one "[relay.example]:587 user:password" line
 * per next hop, as Postfix's smtp_sasl_password_maps, and the AUTH PLAIN
 * (RFC 4616) and LOGIN responses. Passwords are wiped when freed and
 * never logged.
 */
#ifndef MAILSEAL_SASL_CLIENT_H
#define MAILSEAL_SASL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct strlist;

struct sasl_cred {
	char *host; /* lowercase */
	int port;
	bool mx; /* written host:port rather than [host]:port */
	char *user;
	char *pass;
};

struct sasl_map {
	struct sasl_cred *v;
	size_t n;
};

/*
 * Parses the text of a password file. Lines that are not valid are
 * skipped, each with a message "NAME:LINE: ..." in errors.
 */
struct sasl_map *sasl_map_parse(
    const char *name, const char *text, size_t len, struct strlist *errors);
/* Reads a file; NULL with a reason when it cannot be read. */
struct sasl_map *sasl_map_load(
    const char *path, struct strlist *errors, const char **error_r);
void sasl_map_free(struct sasl_map **);

/*
 * The credentials for a next hop: first the entry written exactly as the
 * next hop (host, port, and brackets or not), then one for the host and
 * port in either form. NULL when none.
 */
const struct sasl_cred *sasl_map_lookup(
    const struct sasl_map *, const char *host, int port, bool mx);

/* base64 of "\0user\0pass" (AUTH PLAIN); free with sasl_secret_free. */
char *sasl_plain_response(const char *user, const char *pass);
/* base64 of a string (the AUTH LOGIN steps). */
char *sasl_base64(const char *s);
/* Decodes base64 text into a string; NULL if it is not base64. */
char *sasl_unbase64(const char *s);
void sasl_secret_free(char *);

#endif
