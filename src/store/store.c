/*
 * The backend-independent half of the store: the choice of backend by
 * URI, the syntax of names, and the argument checks that every backend
 * would otherwise repeat.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "store/store.h"
#include "store/store_backend.h"

static const struct store_backend *const backends[] = {
	&store_sqlite_backend,
};

static char errbuf[512];

int
store_error(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	*error_r = errbuf;
	return -1;
}

int
store_open(
    const char *uri, int flags, struct store **st_r, const char **error_r)
{
	struct store *st;

	for (size_t i = 0; i < nitems(backends); i++) {
		const struct store_backend *be = backends[i];
		size_t n = strlen(be->scheme);
		if (strncmp(uri, be->scheme, n) != 0)
			continue;
		st = xcalloc(1, sizeof(*st));
		st->be = be;
		if (be->open(st, uri + n, flags, error_r) == -1) {
			free(st->path);
			free(st);
			return -1;
		}
		*st_r = st;
		return 0;
	}
	if (strncmp(uri, "postgresql:", 11) == 0)
		return store_error(error_r,
		    "the postgresql store is not available in this version");
	return store_error(error_r, "store %s: must be sqlite:/path", uri);
}

void
store_close(struct store **stp)
{
	struct store *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	if (st->in_txn)
		st->be->rollback(st);
	st->be->close(st);
	free(st->path);
	free(st);
}

const char *
store_path(const struct store *st)
{
	return st->path;
}

int
store_schema_version(struct store *st)
{
	return st->be->schema_version(st);
}

uint64_t
store_generation(struct store *st)
{
	uint64_t gen;

	if (st->be->generation(st, &gen) == -1)
		return 0;
	return gen;
}

int
store_begin(struct store *st, const char **error_r)
{
	if (st->in_txn)
		return store_error(error_r,
		    "store_begin: already in a "
		    "transaction");
	if (st->be->begin(st, error_r) == -1)
		return -1;
	st->in_txn = true;
	return 0;
}

int
store_commit(struct store *st, const char **error_r)
{
	if (!st->in_txn)
		return store_error(error_r, "store_commit: no transaction");
	if (st->be->commit(st, error_r) == -1) {
		st->be->rollback(st);
		st->in_txn = false;
		return -1;
	}
	st->in_txn = false;
	return 0;
}

void
store_rollback(struct store *st)
{
	if (!st->in_txn)
		return;
	st->be->rollback(st);
	st->in_txn = false;
}

/* Names. */

static bool
meta_key_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (; *s != '\0'; s++)
		if (!islower((unsigned char)*s) &&
		    !isdigit((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

int
store_meta_get(
    struct store *st, const char *key, char **value_r, const char **error_r)
{
	if (!meta_key_valid(key))
		return store_error(error_r, "bad store meta key");
	return st->be->meta_get(st, key, value_r, error_r);
}

int
store_meta_set(
    struct store *st, const char *key, const char *value, const char **error_r)
{
	if (!meta_key_valid(key))
		return store_error(error_r, "bad store meta key");
	return st->be->meta_set(st, key, value, error_r);
}

char *
store_canon_domain(const char *s, bool wildcard_ok, const char **error_r)
{
	const char *host = s;
	char *c;
	size_t n;

	if (s[0] == '*') {
		if (!wildcard_ok || s[1] != '.') {
			store_error(error_r, "'%.100s' is not a domain name%s",
			    s, wildcard_ok ? " (a wildcard is *.domain)" : "");
			return NULL;
		}
		host = s + 2;
	}
	c = xstrdup(host);
	n = strlen(c);
	if (n > 1 && c[n - 1] == '.')
		c[n - 1] = '\0';
	if (!hostname_valid(c) || strchr(c, '*') != NULL) {
		store_error(error_r, "'%.100s' is not a domain name", s);
		free(c);
		return NULL;
	}
	str_lower(c);
	if (host != s) {
		char *w = xasprintf("*.%s", c);
		free(c);
		c = w;
	}
	return c;
}

/*
 * RFC 5321 4.1.2 and 4.5.3.1: a local part of up to 64 octets, then a
 * domain. Quoted local parts are taken as they are written; the address
 * is split at its last '@'. Lowercased as a whole, as CipherMail does:
 * mail systems treat local parts case-insensitively in practice.
 */
char *
store_canon_email(const char *s, const char **error_r)
{
	const char *at = strrchr(s, '@');
	char *dom, *c;
	size_t llen;
	bool quoted;

	if (at == NULL || at == s) {
		store_error(error_r, "'%.100s' is not an email address", s);
		return NULL;
	}
	llen = (size_t)(at - s);
	if (llen > 64) {
		store_error(error_r,
		    "'%.100s': local part longer than 64 "
		    "octets",
		    s);
		return NULL;
	}
	/* RFC 5321 4.1.2: a quoted string may hold spaces, nothing else. */
	quoted = llen >= 2 && s[0] == '"' && at[-1] == '"';
	for (const char *p = s; p < at; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch < ' ' || ch == 0x7f || (ch == ' ' && !quoted) ||
		    (!quoted && (ch == '<' || ch == '>' || ch == ','))) {
			store_error(
			    error_r, "'%.100s' is not an email address", s);
			return NULL;
		}
	}
	if ((dom = store_canon_domain(at + 1, false, error_r)) == NULL) {
		store_error(error_r, "'%.100s' is not an email address", s);
		return NULL;
	}
	c = xasprintf("%.*s@%s", (int)llen, s, dom);
	free(dom);
	str_lower(c);
	return c;
}

int
store_canon_fpr(
    const char *s, char fpr[STORE_FPR_LEN + 1], const char **error_r)
{
	size_t n = 0;

	if (str_has_prefix_ci(s, "sha256:"))
		s += 7;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == ':')
			continue;
		if (!isxdigit((unsigned char)*p) || n == STORE_FPR_LEN)
			return store_error(error_r,
			    "'%.100s' is not a SHA-256 fingerprint (64 hex "
			    "digits)",
			    s);
		fpr[n++] = (char)tolower((unsigned char)*p);
	}
	fpr[n] = '\0';
	if (n != STORE_FPR_LEN)
		return store_error(error_r,
		    "'%.100s' is not a SHA-256 fingerprint (64 hex digits)", s);
	return 0;
}

char *
store_canon_target(const char *s, const char **error_r)
{
	if (strchr(s, '@') != NULL)
		return store_canon_email(s, error_r);
	return store_canon_domain(s, true, error_r);
}

static char *
canon_owner(enum store_level level, const char *owner, const char **error_r)
{
	switch (level) {
	case STORE_GLOBAL:
		return xstrdup("");
	case STORE_DOMAIN:
		return store_canon_domain(owner, true, error_r);
	case STORE_USER:
		return store_canon_email(owner, error_r);
	}
	store_error(error_r, "bad property level");
	return NULL;
}

/* Domains and users. */

typedef int name_op(
    struct store *, enum store_level, const char *, const char **);

static int
name_call(struct store *st, enum store_level level, const char *name,
    name_op *op, const char **error_r)
{
	char *c;
	int rc;

	if ((c = canon_owner(level, name, error_r)) == NULL)
		return -1;
	rc = op(st, level, c, error_r);
	free(c);
	return rc;
}

int
store_domain_add(struct store *st, const char *name, const char **error_r)
{
	return name_call(st, STORE_DOMAIN, name, st->be->name_add, error_r);
}

int
store_domain_delete(struct store *st, const char *name, const char **error_r)
{
	return name_call(st, STORE_DOMAIN, name, st->be->name_delete, error_r);
}

int
store_user_add(struct store *st, const char *email, const char **error_r)
{
	return name_call(st, STORE_USER, email, st->be->name_add, error_r);
}

int
store_user_delete(struct store *st, const char *email, const char **error_r)
{
	return name_call(st, STORE_USER, email, st->be->name_delete, error_r);
}

static int
name_exists(struct store *st, enum store_level level, const char *name,
    bool *exists_r, const char **error_r)
{
	char *c;
	int rc;

	if ((c = canon_owner(level, name, error_r)) == NULL)
		return -1;
	rc = st->be->name_exists(st, level, c, exists_r, error_r);
	free(c);
	return rc;
}

int
store_domain_exists(
    struct store *st, const char *name, bool *exists_r, const char **error_r)
{
	return name_exists(st, STORE_DOMAIN, name, exists_r, error_r);
}

int
store_user_exists(
    struct store *st, const char *email, bool *exists_r, const char **error_r)
{
	return name_exists(st, STORE_USER, email, exists_r, error_r);
}

int
store_domain_list(struct store *st, struct strlist *out, const char **error_r)
{
	return st->be->name_list(st, STORE_DOMAIN, NULL, out, error_r);
}

int
store_user_list(struct store *st, const char *search, struct strlist *out,
    const char **error_r)
{
	char *s = NULL;
	int rc;

	if (search != NULL) {
		s = xstrdup(search);
		str_lower(s);
	}
	rc = st->be->name_list(st, STORE_USER, s, out, error_r);
	free(s);
	return rc;
}

/* Properties. */

static int
prop_check(const char *name, const char *value, const char **error_r)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64)
		return store_error(error_r, "bad property name");
	for (const char *p = name; *p != '\0'; p++)
		if (!islower((unsigned char)*p) &&
		    !isdigit((unsigned char)*p) && *p != '_')
			return store_error(error_r, "bad property name");
	if (value == NULL)
		return 0;
	if (strlen(value) > 4096)
		return store_error(error_r,
		    "a property value is limited to "
		    "4096 bytes");
	for (const char *p = value; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			return store_error(error_r,
			    "a property value cannot hold control "
			    "characters");
	return 0;
}

int
store_props_get(struct store *st, enum store_level level, const char *owner,
    struct store_props *out, const char **error_r)
{
	char *c;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((c = canon_owner(level, owner, error_r)) == NULL)
		return -1;
	rc = st->be->props_get(st, level, c, out, error_r);
	free(c);
	return rc;
}

int
store_prop_set(struct store *st, enum store_level level, const char *owner,
    const char *name, const char *value, const char **error_r)
{
	char *c;
	int rc;

	if (prop_check(name, value, error_r) == -1)
		return -1;
	if ((c = canon_owner(level, owner, error_r)) == NULL)
		return -1;
	rc = st->be->prop_set(st, level, c, name, value, error_r);
	free(c);
	return rc;
}

int
store_prop_unset(struct store *st, enum store_level level, const char *owner,
    const char *name, const char **error_r)
{
	char *c;
	int rc;

	if (prop_check(name, NULL, error_r) == -1)
		return -1;
	if ((c = canon_owner(level, owner, error_r)) == NULL)
		return -1;
	rc = st->be->prop_unset(st, level, c, name, error_r);
	free(c);
	return rc;
}

void
store_props_free(struct store_props *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].name);
		free(p->v[i].value);
	}
	free(p->v);
	memset(p, 0, sizeof(*p));
}

const char *
store_props_find(const struct store_props *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].name, name) == 0)
			return p->v[i].value;
	return NULL;
}

/* Certificates. */

const char *
store_cert_kind_name(enum store_cert_kind k)
{
	static const char *const names[] = {
		[STORE_CERT_END] = "end",
		[STORE_CERT_INTERMEDIATE] = "intermediate",
		[STORE_CERT_ROOT] = "root",
	};

	return (size_t)k < nitems(names) ? names[k] : "?";
}

static bool
fpr_valid(const char *fpr)
{
	if (strlen(fpr) != STORE_FPR_LEN)
		return false;
	for (; *fpr != '\0'; fpr++)
		if (!isxdigit((unsigned char)*fpr) ||
		    isupper((unsigned char)*fpr))
			return false;
	return true;
}

int
store_cert_put(struct store *st, const struct store_cert *c, bool *added_r,
    const char **error_r)
{
	if (!fpr_valid(c->fpr) || c->der == NULL || c->der_len == 0 ||
	    c->subject == NULL || c->issuer == NULL || c->serial == NULL)
		return store_error(error_r,
		    "store_cert_put: incomplete "
		    "certificate record");
	for (size_t i = 0; i < c->emails.n; i++) {
		char *e = store_canon_email(c->emails.v[i], error_r);
		bool same = e != NULL && strcmp(e, c->emails.v[i]) == 0;
		free(e);
		if (!same)
			return store_error(error_r,
			    "store_cert_put: address '%.100s' is not "
			    "canonical",
			    c->emails.v[i]);
	}
	return st->be->cert_put(st, c, added_r, error_r);
}

static int
fpr_arg(const char *s, char fpr[STORE_FPR_LEN + 1], const char **error_r)
{
	return store_canon_fpr(s, fpr, error_r);
}

int
store_cert_get(struct store *st, const char *s, bool with_der,
    struct store_cert **cert_r, const char **error_r)
{
	struct store_cert_query q = { .kind = -1, .with_der = with_der };
	struct store_certs found = { 0 };
	char fpr[STORE_FPR_LEN + 1];

	*cert_r = NULL;
	if (fpr_arg(s, fpr, error_r) == -1)
		return -1;
	if (st->be->cert_find(st, &q, fpr, &found, error_r) == -1)
		return -1;
	if (found.n == 1) {
		*cert_r = xmalloc(sizeof(**cert_r));
		**cert_r = found.v[0];
		found.n = 0;
	}
	store_certs_free(&found);
	return 0;
}

int
store_cert_find(struct store *st, const struct store_cert_query *q,
    struct store_certs *out, const char **error_r)
{
	struct store_cert_query cq = *q;
	char *email = NULL, *target = NULL, prefix[STORE_FPR_LEN + 1];
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (q->email != NULL &&
	    (cq.email = email = store_canon_email(q->email, error_r)) == NULL)
		goto out;
	if (q->bound_to != NULL &&
	    (cq.bound_to = target = store_canon_target(q->bound_to, error_r)) ==
		NULL)
		goto out;
	if (q->fpr_prefix != NULL) {
		size_t n = 0;
		for (const char *p = q->fpr_prefix; *p != '\0'; p++) {
			if (*p == ':')
				continue;
			if (!isxdigit((unsigned char)*p) ||
			    n == STORE_FPR_LEN) {
				store_error(error_r,
				    "'%.100s' is not a fingerprint",
				    q->fpr_prefix);
				goto out;
			}
			prefix[n++] = (char)tolower((unsigned char)*p);
		}
		prefix[n] = '\0';
		cq.fpr_prefix = prefix;
	}
	rc = st->be->cert_find(st, &cq, NULL, out, error_r);
out:
	free(email);
	free(target);
	return rc;
}

int
store_cert_delete(struct store *st, const char *s, const char **error_r)
{
	char fpr[STORE_FPR_LEN + 1];

	if (fpr_arg(s, fpr, error_r) == -1)
		return -1;
	return st->be->cert_delete(st, fpr, error_r);
}

int
store_cert_resolve(struct store *st, const char *prefix,
    char fpr[STORE_FPR_LEN + 1], const char **error_r)
{
	struct store_cert_query q = { .kind = -1 };
	struct store_certs found;
	const char *p = prefix;
	size_t digits = 0;

	if (str_has_prefix_ci(p, "sha256:"))
		p += 7;
	for (const char *s = p; *s != '\0'; s++)
		digits += *s != ':';
	if (digits < 8)
		return store_error(error_r,
		    "'%.100s': give at least 8 hex digits of the fingerprint",
		    prefix);
	q.fpr_prefix = p;
	if (store_cert_find(st, &q, &found, error_r) == -1)
		return -1;
	if (found.n != 1) {
		store_error(error_r,
		    found.n == 0 ? "no certificate %.100s"
				 : "%.100s is ambiguous",
		    prefix);
		store_certs_free(&found);
		return -1;
	}
	memcpy(fpr, found.v[0].fpr, STORE_FPR_LEN + 1);
	store_certs_free(&found);
	return 0;
}

static void
store_cert_clear(struct store_cert *c)
{
	free(c->der);
	free(c->subject);
	free(c->issuer);
	free(c->serial);
	strlist_free(&c->emails);
}

void
store_cert_free(struct store_cert **cp)
{
	if (*cp == NULL)
		return;
	store_cert_clear(*cp);
	free(*cp);
	*cp = NULL;
}

void
store_certs_free(struct store_certs *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		store_cert_clear(&cs->v[i]);
	free(cs->v);
	memset(cs, 0, sizeof(*cs));
}

/* Keys and bindings. */

int
store_key_put(struct store *st, const char *s, const unsigned char *blob,
    size_t len, const char **error_r)
{
	char fpr[STORE_FPR_LEN + 1];

	if (fpr_arg(s, fpr, error_r) == -1)
		return -1;
	if (blob == NULL || len == 0)
		return store_error(error_r, "store_key_put: empty blob");
	return st->be->key_put(st, fpr, blob, len, error_r);
}

int
store_key_get(struct store *st, const char *s, unsigned char **blob_r,
    size_t *len_r, const char **error_r)
{
	char fpr[STORE_FPR_LEN + 1];

	*blob_r = NULL;
	*len_r = 0;
	if (fpr_arg(s, fpr, error_r) == -1)
		return -1;
	return st->be->key_get(st, fpr, blob_r, len_r, error_r);
}

typedef int bind_op(struct store *, const char *, const char *, const char **);

static int
bind_call(struct store *st, const char *s, const char *target, bind_op *op,
    const char **error_r)
{
	char fpr[STORE_FPR_LEN + 1], *t;
	int rc;

	if (fpr_arg(s, fpr, error_r) == -1)
		return -1;
	if ((t = store_canon_target(target, error_r)) == NULL)
		return -1;
	rc = op(st, fpr, t, error_r);
	free(t);
	return rc;
}

int
store_bind(
    struct store *st, const char *fpr, const char *target, const char **error_r)
{
	return bind_call(st, fpr, target, st->be->bind, error_r);
}

int
store_unbind(
    struct store *st, const char *fpr, const char *target, const char **error_r)
{
	return bind_call(st, fpr, target, st->be->unbind, error_r);
}

int
store_bindings(
    struct store *st, const char *s, struct strlist *out, const char **error_r)
{
	char fpr[STORE_FPR_LEN + 1];

	if (fpr_arg(s, fpr, error_r) == -1)
		return -1;
	return st->be->bindings(st, fpr, out, error_r);
}

/* CRLs. */

int
store_crl_put(struct store *st, const struct store_crl *c, bool *added_r,
    const char **error_r)
{
	if (!fpr_valid(c->fpr) || c->der == NULL || c->issuer == NULL)
		return store_error(error_r,
		    "store_crl_put: incomplete CRL "
		    "record");
	return st->be->crl_put(st, c, added_r, error_r);
}

int
store_crl_list(struct store *st, const char *issuer_hash, bool with_der,
    struct store_crls *out, const char **error_r)
{
	memset(out, 0, sizeof(*out));
	return st->be->crl_list(st, issuer_hash, with_der, out, error_r);
}

int
store_crl_delete(struct store *st, const char *s, const char **error_r)
{
	char fpr[STORE_FPR_LEN + 1];

	if (fpr_arg(s, fpr, error_r) == -1)
		return -1;
	return st->be->crl_delete(st, fpr, error_r);
}

void
store_crls_free(struct store_crls *cs)
{
	for (size_t i = 0; i < cs->n; i++) {
		free(cs->v[i].issuer);
		free(cs->v[i].number);
		free(cs->v[i].der);
	}
	free(cs->v);
	memset(cs, 0, sizeof(*cs));
}

/* The trust list. */

const char *
store_ctl_status_name(enum store_ctl_status s)
{
	static const char *const names[] = {
		[STORE_CTL_NONE] = "none",
		[STORE_CTL_WHITELISTED] = "whitelisted",
		[STORE_CTL_BLACKLISTED] = "blacklisted",
	};

	return (size_t)s < nitems(names) ? names[s] : "?";
}

int
store_ctl_set(struct store *st, const char *s, enum store_ctl_status status,
    const char **error_r)
{
	char fpr[STORE_FPR_LEN + 1];

	if (fpr_arg(s, fpr, error_r) == -1)
		return -1;
	if (status != STORE_CTL_NONE && status != STORE_CTL_WHITELISTED &&
	    status != STORE_CTL_BLACKLISTED)
		return store_error(error_r, "bad trust list status");
	return st->be->ctl_set(st, fpr, status, error_r);
}

int
store_ctl_get(struct store *st, const char *s, enum store_ctl_status *status_r,
    const char **error_r)
{
	char fpr[STORE_FPR_LEN + 1];

	*status_r = STORE_CTL_NONE;
	if (fpr_arg(s, fpr, error_r) == -1)
		return -1;
	return st->be->ctl_get(st, fpr, status_r, error_r);
}

int
store_ctl_list(struct store *st, struct store_ctl_entry **v_r, size_t *n_r,
    const char **error_r)
{
	*v_r = NULL;
	*n_r = 0;
	return st->be->ctl_list(st, v_r, n_r, error_r);
}

/* Admins. */

static int
admin_check(const char *name, const char *hash, const char **error_r)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64)
		return store_error(error_r,
		    "an admin name has 1 to 64 "
		    "characters");
	for (const char *p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr("._@-", *p) == NULL)
			return store_error(error_r,
			    "an admin name has letters, digits and . _ @ - "
			    "only");
	if (hash == NULL)
		return 0;
	n = strlen(hash);
	if (n == 0 || n > 1024)
		return store_error(error_r, "bad password hash");
	for (const char *p = hash; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return store_error(error_r, "bad password hash");
	return 0;
}

int
store_admin_add(
    struct store *st, const char *name, const char *hash, const char **error_r)
{
	if (admin_check(name, hash, error_r) == -1)
		return -1;
	return st->be->admin_add(st, name, hash, error_r);
}

int
store_admin_get(struct store *st, const char *name,
    struct store_admin **admin_r, const char **error_r)
{
	*admin_r = NULL;
	if (admin_check(name, NULL, error_r) == -1)
		return -1;
	return st->be->admin_get(st, name, admin_r, error_r);
}

int
store_admin_list(struct store *st, struct store_admin **v_r, size_t *n_r,
    const char **error_r)
{
	*v_r = NULL;
	*n_r = 0;
	return st->be->admin_list(st, v_r, n_r, error_r);
}

int
store_admin_delete(struct store *st, const char *name, const char **error_r)
{
	if (admin_check(name, NULL, error_r) == -1)
		return -1;
	return st->be->admin_delete(st, name, error_r);
}

int
store_admin_set_password(
    struct store *st, const char *name, const char *hash, const char **error_r)
{
	if (admin_check(name, hash, error_r) == -1)
		return -1;
	return st->be->admin_set_password(st, name, hash, error_r);
}

void
store_admin_free(struct store_admin *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		if (v[i].password_hash != NULL)
			xfree_secret(
			    v[i].password_hash, strlen(v[i].password_hash));
	}
	free(v);
}
