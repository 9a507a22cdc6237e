/*
 * Certificates, Roots, CRLs and the trust list: the seed's certificate
 * menus on src/crypto/certs.c and the store. Imports are uploads
 * (multipart/form-data: "file", and "password" for PKCS#12 or an
 * encrypted PKCS#8 key); a key is sealed under the master key on the way
 * in, all or nothing.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "admin/admin.h"
#include "admin/admin_store.h"
#include "admin/api.h"
#include "admin/multipart.h"
#include "admin/text.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/certs.h"
#include "store/store.h"

#define CERT_LIST_MAX 2000

static struct admin_store *
as_of(struct api_req *r)
{
	return r->a->store;
}

static X509 *
cert_x509(const struct store_cert *c)
{
	const unsigned char *p = c->der;

	return c->der != NULL ? d2i_X509(NULL, &p, (long)c->der_len) : NULL;
}

static json_t *
strlist_json(const struct strlist *l)
{
	json_t *a = json_array();

	for (size_t i = 0; i < l->n; i++)
		json_array_append_new(a, json_string(l->v[i]));
	return a;
}

/* The trust status for a purpose, as the lists show it. */
static json_t *
verdict_json(struct api_req *r, X509 *x, enum cert_purpose purpose)
{
	struct cert_verdict v;
	const char *why;

	if (x == NULL ||
	    certs_validate(as_of(r)->cs, x, NULL, purpose, time(NULL), &v, NULL,
		&why) == -1)
		return json_pack("{s:s,s:s}", "status", "unknown", "detail",
		    x == NULL ? "cannot parse" : why);
	return json_pack("{s:s,s:s}", "status",
	    v.whitelisted ? "whitelisted" : certs_status_name(v.status),
	    "detail", v.detail);
}

static json_t *
cert_json(struct api_req *r, const struct store_cert *c)
{
	X509 *x = cert_x509(c);
	json_t *j;

	j = json_pack("{s:s,s:s,s:o,s:o,s:s,s:I,s:I,s:o,s:b,s:b,s:b,s:o}",
	    "fingerprint", c->fpr, "kind", store_cert_kind_name(c->kind),
	    "subject", text_json(c->subject, strlen(c->subject)), "issuer",
	    text_json(c->issuer, strlen(c->issuer)), "serial", c->serial,
	    "not_before", (json_int_t)c->not_before, "not_after",
	    (json_int_t)c->not_after, "emails", strlist_json(&c->emails),
	    "has_key", c->has_key, "is_ca", c->is_ca, "expired",
	    c->not_after < (int64_t)time(NULL), "trust",
	    verdict_json(r, x, CERT_PURPOSE_ANY));
	X509_free(x);
	return j;
}

static bool
query_flag(struct api_req *r, const char *name, json_t *errors)
{
	const char *v = api_query(r, name);

	if (v == NULL || strcmp(v, "0") == 0 || *v == '\0')
		return false;
	if (strcmp(v, "1") != 0)
		errors_set(errors, name, "must be 0 or 1");
	return true;
}

static void
cert_list_kind(struct api_req *r, int kind)
{
	struct store_cert_query q;
	struct store_certs found;
	json_t *errors = json_object(), *list;
	const char *why, *email = api_query(r, "email");
	const char *k = api_query(r, "kind");
	char *canon = NULL;

	memset(&q, 0, sizeof(q));
	q.kind = kind;
	q.with_der = true;
	if (email != NULL && *email != '\0') {
		/* A part of an address is a search, a whole one a match. */
		if (strlen(email) > 254)
			errors_set(errors, "email", "is too long");
		else if ((canon = store_canon_email(email, &why)) == NULL)
			errors_set(errors, "email", "%s", why);
		q.email = canon;
	}
	if (query_flag(r, "expired", errors)) {
		q.expired_at_set = true;
		q.expired_at = (int64_t)time(NULL);
	}
	q.with_key = query_flag(r, "key", errors);
	if (kind == -1 && k != NULL && *k != '\0') {
		if (strcmp(k, "end") == 0)
			q.kind = STORE_CERT_END;
		else if (strcmp(k, "intermediate") == 0)
			q.kind = STORE_CERT_INTERMEDIATE;
		else if (strcmp(k, "root") == 0)
			q.kind = STORE_CERT_ROOT;
		else
			errors_set(errors, "kind",
			    "must be end, intermediate or root");
	}
	if (json_object_size(errors) > 0) {
		free(canon);
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	if (store_cert_find(as_of(r)->st, &q, &found, &why) == -1) {
		free(canon);
		api_error(r, 500, "store: %s", why);
		return;
	}
	free(canon);
	list = json_array();
	for (size_t i = 0; i < found.n && i < CERT_LIST_MAX; i++)
		json_array_append_new(list, cert_json(r, &found.v[i]));
	api_json(r, 200,
	    json_pack("{s:o,s:I,s:b}", "certificates", list, "total",
		(json_int_t)found.n, "truncated", found.n > CERT_LIST_MAX));
	store_certs_free(&found);
}

void
api_certs_list(struct api_req *r)
{
	/* Roots have their own page; here the rest unless asked. */
	cert_list_kind(r, -1);
}

void
api_roots_list(struct api_req *r)
{
	cert_list_kind(r, STORE_CERT_ROOT);
}

/* The stored certificate of the path, with DER; NULL after a 404. */
static struct store_cert *
cert_lookup(struct api_req *r, int kind)
{
	struct store_cert *c = NULL;
	char fpr[STORE_FPR_LEN + 1];
	const char *why;

	if (store_canon_fpr(r->params.v[0], fpr, &why) == -1 ||
	    store_cert_get(as_of(r)->st, fpr, true, &c, &why) == -1 ||
	    c == NULL || (kind != -1 && (int)c->kind != kind)) {
		store_cert_free(&c);
		api_error(r, 404, "no such certificate: %s", r->params.v[0]);
		return NULL;
	}
	return c;
}

void
api_certs_get(struct api_req *r)
{
	struct store_cert *c = cert_lookup(r, -1);
	struct strlist binds = { 0 };
	enum store_ctl_status ctl = STORE_CTL_NONE;
	const char *why;
	json_t *j;
	X509 *x;

	if (c == NULL)
		return;
	if (store_bindings(as_of(r)->st, c->fpr, &binds, &why) == -1 ||
	    store_ctl_get(as_of(r)->st, c->fpr, &ctl, &why) == -1) {
		store_cert_free(&c);
		strlist_free(&binds);
		api_error(r, 500, "store: %s", why);
		return;
	}
	x = cert_x509(c);
	j = cert_json(r, c);
	json_object_set_new(j, "bindings", strlist_json(&binds));
	json_object_set_new(j, "ctl",
	    json_string(
		ctl == STORE_CTL_NONE ? "none" : store_ctl_status_name(ctl)));
	json_object_set_new(
	    j, "for_encryption", verdict_json(r, x, CERT_PURPOSE_ENCRYPT));
	json_object_set_new(
	    j, "for_signing", verdict_json(r, x, CERT_PURPOSE_SIGN));
	X509_free(x);
	strlist_free(&binds);
	store_cert_free(&c);
	api_json(r, 200, j);
}

/* The public certificate as PEM; never the key. */
void
api_certs_pem(struct api_req *r)
{
	struct store_cert *c = cert_lookup(r, -1);
	X509 *x;
	BIO *b;
	char *pem;
	long len;

	if (c == NULL)
		return;
	x = cert_x509(c);
	b = BIO_new(BIO_s_mem());
	if (x == NULL || b == NULL || !PEM_write_bio_X509(b, x)) {
		api_error(r, 500, "cannot encode the certificate");
	} else {
		len = BIO_get_mem_data(b, &pem);
		api_raw(r, 200, "application/x-pem-file", pem, (size_t)len);
		api_header(r, "Content-Disposition",
		    "attachment; filename=\"%.16s.pem\"", c->fpr);
	}
	BIO_free(b);
	X509_free(x);
	store_cert_free(&c);
}

static void
cert_delete_kind(struct api_req *r, int kind)
{
	struct store_cert *c = cert_lookup(r, kind);
	const char *why;

	if (c == NULL)
		return;
	if (store_cert_delete(as_of(r)->st, c->fpr, &why) == -1)
		api_error(r, 500, "store: %s", why);
	else {
		msg_info("admin %s deleted certificate %s",
		    r->session->username, c->fpr);
		api_no_content(r);
	}
	store_cert_free(&c);
}

void
api_certs_delete(struct api_req *r)
{
	cert_delete_kind(r, -1);
}

void
api_roots_delete(struct api_req *r)
{
	cert_delete_kind(r, STORE_CERT_ROOT);
}

/* The upload form: "file" (required), text fields by name. */
static int
upload_form(struct api_req *r, struct mp_form *form, const char *const *fields,
    json_t *errors)
{
	const char *why;

	if (multipart_parse(api_request_header(r, "Content-Type"), r->body,
		r->body_len, form, &why) == -1) {
		errors_set(errors, "_body", "%s", why);
		return -1;
	}
	for (size_t i = 0; i < form->n; i++) {
		bool known = false;
		for (size_t k = 0; fields[k] != NULL && !known; k++)
			known = strcmp(fields[k], form->v[i].name) == 0;
		if (!known)
			errors_set(errors, form->v[i].name, "unknown field");
	}
	const struct mp_part *f = multipart_get(form, "file");
	if (f == NULL || f->len == 0)
		errors_set(errors, "file", "choose a file to upload");
	return json_object_size(errors) > 0 ? -1 : 0;
}

/* A text field of the form as a C string (NULL when absent or empty). */
static char *
form_text(const struct mp_form *form, const char *name, json_t *errors)
{
	const struct mp_part *p = multipart_get(form, name);

	if (p == NULL || p->len == 0)
		return NULL;
	if (p->len > 1024 || memchr(p->data, '\0', p->len) != NULL) {
		errors_set(errors, name, "must be text of at most 1024 bytes");
		return NULL;
	}
	return xstrndup(p->data, p->len);
}

static void
cert_import_as(struct api_req *r, enum certs_import_as as)
{
	static const char *const fields[] = { "file", "password", "bind",
		NULL };
	struct certs_import_result res;
	struct certs_bundle b;
	struct mp_form form;
	json_t *errors = json_object(), *list;
	const struct mp_part *f;
	char *password = NULL, *bind = NULL, *canon = NULL;
	const char *why;

	memset(&b, 0, sizeof(b));
	memset(&res, 0, sizeof(res));
	if (upload_form(r, &form, fields, errors) == -1)
		goto bad;
	password = form_text(&form, "password", errors);
	bind = form_text(&form, "bind", errors);
	if (bind != NULL && (canon = store_canon_target(bind, &why)) == NULL)
		errors_set(errors, "bind", "%s", why);
	if (json_object_size(errors) > 0)
		goto bad;
	f = multipart_get(&form, "file");
	if (certs_parse(f->data, f->len, password, &b, &why) == -1) {
		errors_set(errors,
		    strstr(why, "password") != NULL ? "password" : "file", "%s",
		    why);
		goto bad;
	}
	if (as == CERTS_AS_ROOTS && b.nkeys > 0) {
		errors_set(
		    errors, "file", "a root import takes no private keys");
		goto bad;
	}
	if (certs_import(
		as_of(r)->st, as_of(r)->mk, &b, as, canon, &res, &why) == -1) {
		errors_set(errors, "file", "%s (nothing imported)", why);
		goto bad;
	}
	list = json_array();
	for (size_t i = 0; i < res.n; i++)
		json_array_append_new(list,
		    json_pack("{s:s,s:s,s:b,s:b,s:o}", "fingerprint",
			res.v[i].fpr, "kind",
			store_cert_kind_name(res.v[i].kind), "added",
			res.v[i].added, "key", res.v[i].key, "subject",
			text_json(res.v[i].subject, strlen(res.v[i].subject))));
	msg_info(
	    "admin %s imported %zu certificate%s and %zu key%s from %.100s",
	    r->session->username, res.n, res.n == 1 ? "" : "s", res.nkeys,
	    res.nkeys == 1 ? "" : "s",
	    multipart_get(&form, "file")->filename
		? multipart_get(&form, "file")->filename
		: "an upload");
	api_json(r, 200,
	    json_pack(
		"{s:o,s:I}", "imported", list, "keys", (json_int_t)res.nkeys));
	json_decref(errors);
	goto out;
bad:
	api_field_errors(r, errors);
out:
	certs_import_result_free(&res);
	certs_bundle_free(&b);
	multipart_free(&form);
	if (password != NULL)
		xfree_secret(password, strlen(password));
	free(bind);
	free(canon);
}

void
api_certs_import(struct api_req *r)
{
	cert_import_as(r, CERTS_AS_CERTS);
}

void
api_roots_import(struct api_req *r)
{
	cert_import_as(r, CERTS_AS_ROOTS);
}

/* CRLs. */

void
api_crls_list(struct api_req *r)
{
	struct store_crls crls;
	const char *why;
	json_t *list;

	if (store_crl_list(as_of(r)->st, NULL, false, &crls, &why) == -1) {
		api_error(r, 500, "store: %s", why);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < crls.n; i++) {
		const struct store_crl *c = &crls.v[i];
		json_array_append_new(list,
		    json_pack("{s:s,s:o,s:s?,s:I,s:I}", "fingerprint", c->fpr,
			"issuer", text_json(c->issuer, strlen(c->issuer)),
			"number", c->number, "this_update",
			(json_int_t)c->this_update, "next_update",
			(json_int_t)c->next_update));
	}
	store_crls_free(&crls);
	api_json(r, 200, json_pack("{s:o}", "crls", list));
}

void
api_crls_import(struct api_req *r)
{
	static const char *const fields[] = { "file", NULL };
	struct certs_crl_imported *v = NULL;
	struct mp_form form;
	json_t *errors = json_object(), *list;
	const struct mp_part *f;
	const char *why;
	size_t n = 0;

	if (upload_form(r, &form, fields, errors) == -1) {
		api_field_errors(r, errors);
		multipart_free(&form);
		return;
	}
	f = multipart_get(&form, "file");
	if (certs_import_crls(as_of(r)->st, f->data, f->len, &v, &n, &why) ==
	    -1) {
		errors_set(errors, "file", "%s (nothing imported)", why);
		api_field_errors(r, errors);
		multipart_free(&form);
		return;
	}
	json_decref(errors);
	list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list,
		    json_pack("{s:s,s:o,s:b}", "fingerprint", v[i].fpr,
			"issuer", text_json(v[i].issuer, strlen(v[i].issuer)),
			"added", v[i].added));
	msg_info("admin %s imported %zu CRL%s", r->session->username, n,
	    n == 1 ? "" : "s");
	certs_crl_imported_free(v, n);
	multipart_free(&form);
	api_json(r, 200, json_pack("{s:o}", "imported", list));
}

void
api_crls_delete(struct api_req *r)
{
	char fpr[STORE_FPR_LEN + 1];
	const char *why;

	if (store_canon_fpr(r->params.v[0], fpr, &why) == -1 ||
	    store_crl_delete(as_of(r)->st, fpr, &why) == -1) {
		api_error(r, 404, "no such CRL: %s", r->params.v[0]);
		return;
	}
	msg_info("admin %s deleted CRL %s", r->session->username, fpr);
	api_no_content(r);
}

/* The certificate trust list. */

void
api_ctl_list(struct api_req *r)
{
	struct store_ctl_entry *v = NULL;
	size_t n = 0;
	const char *why;
	json_t *list;

	if (store_ctl_list(as_of(r)->st, &v, &n, &why) == -1) {
		api_error(r, 500, "store: %s", why);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < n; i++) {
		struct store_cert *c = NULL;
		const char *w2;
		store_cert_get(as_of(r)->st, v[i].fpr, false, &c, &w2);
		json_array_append_new(list,
		    json_pack("{s:s,s:s,s:I,s:o}", "fingerprint", v[i].fpr,
			"status", store_ctl_status_name(v[i].status), "created",
			(json_int_t)v[i].created, "subject",
			c != NULL ? text_json(c->subject, strlen(c->subject))
				  : json_null()));
		store_cert_free(&c);
	}
	free(v);
	api_json(r, 200, json_pack("{s:o}", "entries", list));
}

void
api_ctl_put(struct api_req *r)
{
	static const char *const keys[] = { "status", NULL };
	json_t *errors = json_object();
	char fpr[STORE_FPR_LEN + 1];
	enum store_ctl_status st = STORE_CTL_NONE;
	const char *status, *why;

	json_reject_unknown(r->json, keys, errors);
	if (store_canon_fpr(r->params.v[0], fpr, &why) == -1)
		errors_set(errors, "fingerprint", "%s", why);
	if (json_get_string(r->json, "status", true, 20, &status, errors) ==
	    0) {
		if (strcmp(status, "whitelisted") == 0)
			st = STORE_CTL_WHITELISTED;
		else if (strcmp(status, "blacklisted") == 0)
			st = STORE_CTL_BLACKLISTED;
		else
			errors_set(errors, "status",
			    "must be whitelisted or blacklisted");
	}
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	if (store_ctl_set(as_of(r)->st, fpr, st, &why) == -1) {
		api_error(r, 500, "store: %s", why);
		return;
	}
	msg_info(
	    "admin %s: trust list: %s %s", r->session->username, fpr, status);
	api_json(r, 200,
	    json_pack("{s:s,s:s}", "fingerprint", fpr, "status", status));
}

void
api_ctl_delete(struct api_req *r)
{
	char fpr[STORE_FPR_LEN + 1];
	enum store_ctl_status st = STORE_CTL_NONE;
	const char *why;

	if (store_canon_fpr(r->params.v[0], fpr, &why) == -1 ||
	    store_ctl_get(as_of(r)->st, fpr, &st, &why) == -1 ||
	    st == STORE_CTL_NONE) {
		api_error(r, 404, "not in the trust list: %s", r->params.v[0]);
		return;
	}
	if (store_ctl_set(as_of(r)->st, fpr, STORE_CTL_NONE, &why) == -1) {
		api_error(r, 500, "store: %s", why);
		return;
	}
	msg_info("admin %s: trust list: removed %s", r->session->username, fpr);
	api_no_content(r);
}
