#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "smtp/sasl_client.h"

/* Parses "user:password"; the password may hold ':' but not be empty. */
static int
cred_split(const char *v, struct sasl_cred *c, const char **error_r)
{
	const char *colon = strchr(v, ':');

	if (colon == NULL || colon == v || colon[1] == '\0') {
		*error_r = "expected user:password";
		return -1;
	}
	c->user = xstrndup(v, (size_t)(colon - v));
	c->pass = xstrdup(colon + 1);
	return 0;
}

/* One line: "key user:password", blank, or a '#' comment. */
static int
sasl_map_line(struct sasl_map *m, char *line, const char **error_r)
{
	struct sasl_cred c;
	struct nexthop nh;
	char *key, *val;

	line = str_trim(line);
	if (*line == '\0' || *line == '#')
		return 0;
	key = line;
	val = line + strcspn(line, " \t");
	if (*val == '\0') {
		*error_r = "expected 'next-hop user:password'";
		return -1;
	}
	*val++ = '\0';
	val = str_trim(val);
	if (nexthop_parse(key, 25, &nh, error_r) == -1)
		return -1;
	memset(&c, 0, sizeof(c));
	if (cred_split(val, &c, error_r) == -1) {
		nexthop_free(&nh);
		return -1;
	}
	c.host = nh.host;
	c.port = nh.port;
	c.mx = nh.mx;
	m->v = xreallocarray(m->v, m->n + 1, sizeof(*m->v));
	m->v[m->n++] = c;
	return 0;
}

struct sasl_map *
sasl_map_parse(
    const char *name, const char *text, size_t len, struct strlist *errors)
{
	struct sasl_map *m = xcalloc(1, sizeof(*m));
	size_t off = 0;
	int lineno = 0;

	while (off < len) {
		const char *eol = memchr(text + off, '\n', len - off);
		size_t l =
		    eol != NULL ? (size_t)(eol - (text + off)) : len - off;
		/* l + 1 bytes, all wiped below: the line may hold a password. */
		char *line = xmalloc(l + 1);
		const char *why;

		memcpy(line, text + off, l);
		line[l] = '\0';
		lineno++;
		if (strlen(line) != l)
			strlist_addf(
			    errors, "%s:%d: NUL byte in line", name, lineno);
		else if (sasl_map_line(m, line, &why) == -1)
			strlist_addf(errors, "%s:%d: %s", name, lineno, why);
		xfree_secret(line, l + 1);
		off += l + 1;
	}
	return m;
}

struct sasl_map *
sasl_map_load(const char *path, struct strlist *errors, const char **error_r)
{
	struct sasl_map *m;
	struct stat st;
	char *text;
	size_t len;

	if (file_read_all(path, &text, &len) == -1) {
		*error_r = strerror(errno);
		return NULL;
	}
	if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
		strlist_addf(errors,
		    "%s: holds passwords but is readable by others (chmod "
		    "600)",
		    path);
	m = sasl_map_parse(path, text, len, errors);
	xfree_secret(text, len + 1);
	return m;
}

void
sasl_map_free(struct sasl_map **mp)
{
	struct sasl_map *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].host);
		xfree_secret(m->v[i].user, strlen(m->v[i].user) + 1);
		xfree_secret(m->v[i].pass, strlen(m->v[i].pass) + 1);
	}
	free(m->v);
	free(m);
}

const struct sasl_cred *
sasl_map_lookup(const struct sasl_map *m, const char *host, int port, bool mx)
{
	const struct sasl_cred *loose = NULL;

	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < m->n; i++) {
		const struct sasl_cred *c = &m->v[i];
		if (c->port != port || strcasecmp(c->host, host) != 0)
			continue;
		if (c->mx == mx)
			return c;
		if (loose == NULL)
			loose = c;
	}
	return loose;
}

static char *
b64(const unsigned char *p, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, (int)len);
	return out;
}

char *
sasl_plain_response(const char *user, const char *pass)
{
	size_t ul = strlen(user), pl = strlen(pass), len = ul + pl + 2;
	unsigned char *buf = xmalloc(len);
	char *out;

	/* RFC 4616 2: [authzid] NUL authcid NUL passwd. */
	buf[0] = '\0';
	memcpy(buf + 1, user, ul);
	buf[1 + ul] = '\0';
	memcpy(buf + 2 + ul, pass, pl);
	out = b64(buf, len);
	xfree_secret(buf, len);
	return out;
}

char *
sasl_base64(const char *s)
{
	return b64((const unsigned char *)s, strlen(s));
}

char *
sasl_unbase64(const char *s)
{
	size_t len = strlen(s);
	unsigned char *out;
	int n;

	if (len % 4 != 0)
		return NULL;
	out = xmalloc(len / 4 * 3 + 1);
	n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (n < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as data. */
	if (len >= 1 && s[len - 1] == '=')
		n--;
	if (len >= 2 && s[len - 2] == '=')
		n--;
	out[n] = '\0';
	return (char *)out;
}

void
sasl_secret_free(char *s)
{
	if (s != NULL)
		xfree_secret(s, strlen(s) + 1);
}
