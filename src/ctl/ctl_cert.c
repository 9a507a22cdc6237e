/*
 * mailsealctl cert | root | crl | ctl: certificates and keys, trusted
 * roots, revocation lists and the trust list (src/crypto/certs.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/config.h"
#include "common/util.h"
#include "crypto/certs.h"
#include "ctl/ctl.h"
#include "store/masterkey.h"
#include "store/store.h"

struct opts {
	bool json, expired, with_key;
	const char *password_file, *bind, *email;
};

enum {
	OPT_JSON = 1,
	OPT_PASSWORD_FILE,
	OPT_BIND,
	OPT_EMAIL,
	OPT_EXPIRED,
	OPT_WITH_KEY
};

static const struct option long_opts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE },
	{ "bind", required_argument, NULL, OPT_BIND },
	{ "email", required_argument, NULL, OPT_EMAIL },
	{ "expired", no_argument, NULL, OPT_EXPIRED },
	{ "with-key", no_argument, NULL, OPT_WITH_KEY },
	{ NULL, 0, NULL, 0 },
};

/*
 * Parses the options a subcommand allows (a string of OPT_ values);
 * returns the index of the first operand, or -1 on a bad option.
 */
static int
opts_parse(int argc, char **argv, const char *allowed, struct opts *o)
{
	int ch;

	memset(o, 0, sizeof(*o));
	optind = 0; /* glibc: start over, permuting operands to the end */
	while ((ch = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		if (ch == '?' || strchr(allowed, ch) == NULL)
			return -1;
		switch (ch) {
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_PASSWORD_FILE:
			o->password_file = optarg;
			break;
		case OPT_BIND:
			o->bind = optarg;
			break;
		case OPT_EMAIL:
			o->email = optarg;
			break;
		case OPT_EXPIRED:
			o->expired = true;
			break;
		case OPT_WITH_KEY:
			o->with_key = true;
			break;
		}
	}
	return optind;
}

static const char A_JSON[] = { OPT_JSON, 0 };

/* Reads a file, "-" for standard input; the caller wipes and frees it. */
static char *
read_input(const char *path, size_t *len_r)
{
	char *data = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	if (strcmp(path, "-") != 0) {
		if (file_read_all(path, &data, len_r) == -1)
			ctl_die("%s: %s", path, strerror(errno));
		return data;
	}
	for (;;) {
		if (cap - len < 4096) {
			char *bigger = xmalloc(cap * 2 + 8192);
			if (data != NULL) {
				memcpy(bigger, data, len);
				xfree_secret(data, cap);
			}
			data = bigger;
			cap = cap * 2 + 8192;
		}
		if ((n = read(STDIN_FILENO, data + len, cap - len - 1)) <= 0)
			break;
		len += (size_t)n;
	}
	data[len] = '\0';
	*len_r = len;
	return data;
}

/* The first line of a file: the password, wiped by the caller. */
static char *
read_password(const char *path, size_t *len_r)
{
	size_t len;
	char *pw;

	if (file_read_all(path, &pw, &len) == -1)
		ctl_die("%s: %s", path, strerror(errno));
	*len_r = len;
	pw[strcspn(pw, "\r\n")] = '\0';
	return pw;
}

static void
fmt_date(int64_t t, char *buf, size_t size, bool full)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, size, full ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d", &tm);
}

/* A fingerprint, or a prefix of 8+ hex digits of a stored certificate. */
static void
fpr_arg(struct ctl *ctl, const char *s, char fpr[STORE_FPR_LEN + 1])
{
	const char *why;

	if (store_canon_fpr(s, fpr, &why) == 0)
		return;
	if (store_cert_resolve(ctl_store(ctl), s, fpr, &why) == -1)
		ctl_die("%s", why);
}

static struct store_cert *
cert_arg(struct ctl *ctl, const char *s)
{
	struct store_cert *c = NULL;
	char fpr[STORE_FPR_LEN + 1];
	const char *why;

	fpr_arg(ctl, s, fpr);
	if (store_cert_get(ctl_store(ctl), fpr, true, &c, &why) == -1)
		ctl_die("%s", why);
	if (c == NULL)
		ctl_die("no certificate %s", fpr);
	return c;
}

static X509 *
cert_x509(const struct store_cert *c)
{
	const unsigned char *p = c->der;
	X509 *x = d2i_X509(NULL, &p, (long)c->der_len);

	if (x == NULL)
		ctl_die("certificate %s: stored DER does not parse", c->fpr);
	return x;
}

static struct certs *
open_certs(struct ctl *ctl)
{
	struct certs *cs;
	const char *why;

	if (certs_open(ctl_store(ctl), &cs, &why) == -1)
		ctl_die("%s", why);
	return cs;
}

/* The trust status of a certificate as lists show it. */
static void
trust_of(struct certs *cs, const struct store_cert *c,
    enum cert_purpose purpose, struct cert_verdict *v)
{
	X509 *x = cert_x509(c);
	const char *why;

	if (certs_validate(cs, x, NULL, purpose, time(NULL), v, NULL, &why) ==
	    -1)
		ctl_die("%s", why);
	X509_free(x);
}

static const char *
trust_word(const struct cert_verdict *v)
{
	return v->whitelisted ? "whitelisted" : certs_status_name(v->status);
}

static json_t *
emails_json(const struct strlist *l)
{
	json_t *a = json_array();

	for (size_t i = 0; i < l->n; i++)
		json_array_append_new(a, json_string(l->v[i]));
	return a;
}

static json_t *
cert_json(const struct store_cert *c, const struct cert_verdict *v)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:o,s:b,s:b,s:s,s:s}",
	    "fingerprint", c->fpr, "kind", store_cert_kind_name(c->kind),
	    "subject", c->subject, "issuer", c->issuer, "serial", c->serial,
	    "not_before", (json_int_t)c->not_before, "not_after",
	    (json_int_t)c->not_after, "emails", emails_json(&c->emails),
	    "has_key", c->has_key, "is_ca", c->is_ca, "status", trust_word(v),
	    "status_detail", v->detail);
}

static void
cert_line(const struct store_cert *c, const struct cert_verdict *v)
{
	char nb[32], na[32];

	fmt_date(c->not_before, nb, sizeof(nb), false);
	fmt_date(c->not_after, na, sizeof(na), false);
	printf("%s %-12s %-3s %-13s %s..%s %s", c->fpr,
	    store_cert_kind_name(c->kind), c->has_key ? "key" : "-",
	    trust_word(v), nb, na, c->subject);
	for (size_t i = 0; i < c->emails.n; i++)
		printf("%s%s", i == 0 ? " <" : ", ", c->emails.v[i]);
	printf("%s\n", c->emails.n > 0 ? ">" : "");
}

static int
print_import(const struct certs_import_result *r, bool json)
{
	json_t *a = json_array();

	for (size_t i = 0; i < r->n; i++) {
		const struct certs_imported *e = &r->v[i];
		if (json)
			json_array_append_new(a,
			    json_pack("{s:s,s:s,s:b,s:b,s:s}", "fingerprint",
				e->fpr, "kind", store_cert_kind_name(e->kind),
				"added", e->added, "key", e->key, "subject",
				e->subject));
		else
			printf("%s %s %s%s: %s\n",
			    e->added ? "added" : "exists",
			    store_cert_kind_name(e->kind), e->fpr,
			    e->key ? " with private key" : "", e->subject);
	}
	if (json)
		ctl_json_print(a);
	else
		json_decref(a);
	return 0;
}

/* Imports a file of certificates (and keys) as certificates or roots. */
static int
import_file(struct ctl *ctl, const char *path, const struct opts *o,
    enum certs_import_as as)
{
	struct certs_import_result r;
	struct certs_bundle b;
	char *data, *pw = NULL;
	size_t len, pwlen = 0;
	const char *why;
	int rc;

	data = read_input(path, &len);
	if (o->password_file != NULL)
		pw = read_password(o->password_file, &pwlen);
	rc = certs_parse(data, len, pw, &b, &why);
	xfree_secret(data, len);
	xfree_secret(pw, pwlen);
	if (rc == -1)
		ctl_die("%s: %s", path, why);
	rc = certs_import(ctl_store(ctl),
	    b.nkeys > 0 ? ctl_masterkey(ctl) : NULL, &b, as, o->bind, &r, &why);
	certs_bundle_free(&b);
	if (rc == -1)
		ctl_die("%s: %s (nothing imported)", path, why);
	print_import(&r, o->json);
	certs_import_result_free(&r);
	return 0;
}

static int
cert_import(struct ctl *ctl, int argc, char **argv)
{
	static const char allowed[] = { OPT_JSON, OPT_PASSWORD_FILE, OPT_BIND,
		0 };
	struct opts o;
	int k = opts_parse(argc, argv, allowed, &o);

	if (k < 0 || argc - k != 1)
		return ctl_usage("cert");
	return import_file(ctl, argv[k], &o, CERTS_AS_CERTS);
}

static int
list_kind(
    struct ctl *ctl, const struct store_cert_query *q, bool roots, bool json)
{
	struct store_certs found;
	struct certs *cs = open_certs(ctl);
	json_t *a = json_array();
	const char *why;

	if (store_cert_find(ctl_store(ctl), q, &found, &why) == -1)
		ctl_die("%s", why);
	for (size_t i = 0; i < found.n; i++) {
		struct store_cert *c = &found.v[i];
		struct cert_verdict v;
		if ((c->kind == STORE_CERT_ROOT) != roots)
			continue;
		trust_of(cs, c, CERT_PURPOSE_ANY, &v);
		if (json)
			json_array_append_new(a, cert_json(c, &v));
		else
			cert_line(c, &v);
	}
	if (json)
		ctl_json_print(a);
	else
		json_decref(a);
	store_certs_free(&found);
	certs_close(&cs);
	return 0;
}

static int
cert_list(struct ctl *ctl, int argc, char **argv)
{
	static const char allowed[] = { OPT_JSON, OPT_EMAIL, OPT_EXPIRED,
		OPT_WITH_KEY, 0 };
	struct store_cert_query q = { .kind = -1, .with_der = true };
	struct opts o;
	int k = opts_parse(argc, argv, allowed, &o);

	if (k < 0 || k != argc)
		return ctl_usage("cert");
	q.email = o.email;
	q.with_key = o.with_key;
	q.expired_at_set = o.expired;
	q.expired_at = (int64_t)time(NULL);
	return list_kind(ctl, &q, false, o.json);
}

static const struct {
	uint32_t bit;
	const char *name;
} ku_names[] = {
	{ KU_DIGITAL_SIGNATURE, "digitalSignature" },
	{ KU_NON_REPUDIATION, "nonRepudiation" },
	{ KU_KEY_ENCIPHERMENT, "keyEncipherment" },
	{ KU_DATA_ENCIPHERMENT, "dataEncipherment" },
	{ KU_KEY_AGREEMENT, "keyAgreement" },
	{ KU_KEY_CERT_SIGN, "keyCertSign" },
	{ KU_CRL_SIGN, "cRLSign" },
	{ KU_ENCIPHER_ONLY, "encipherOnly" },
	{ KU_DECIPHER_ONLY, "decipherOnly" },
};

static json_t *
ku_json(uint32_t ku)
{
	json_t *a = json_array();

	if (ku == STORE_KU_ABSENT)
		return json_null();
	for (size_t i = 0; i < nitems(ku_names); i++)
		if (ku & ku_names[i].bit)
			json_array_append_new(a, json_string(ku_names[i].name));
	return a;
}

static void
print_ku(uint32_t ku)
{
	bool first = true;

	if (ku == STORE_KU_ABSENT) {
		printf("(no extension: any)");
		return;
	}
	for (size_t i = 0; i < nitems(ku_names); i++)
		if (ku & ku_names[i].bit) {
			printf("%s%s", first ? "" : ", ", ku_names[i].name);
			first = false;
		}
}

static int
cert_show(struct ctl *ctl, int argc, char **argv)
{
	struct store_cert *c;
	struct cert_verdict any, enc, sig;
	struct strlist binds = { 0 };
	enum store_ctl_status ctl_st;
	struct certs *cs;
	struct opts o;
	const char *why;
	char nb[64], na[64];
	int k = opts_parse(argc, argv, A_JSON, &o);

	if (k < 0 || argc - k != 1)
		return ctl_usage("cert");
	c = cert_arg(ctl, argv[k]);
	cs = open_certs(ctl);
	trust_of(cs, c, CERT_PURPOSE_ANY, &any);
	trust_of(cs, c, CERT_PURPOSE_ENCRYPT, &enc);
	trust_of(cs, c, CERT_PURPOSE_SIGN, &sig);
	if (store_bindings(ctl_store(ctl), c->fpr, &binds, &why) == -1 ||
	    store_ctl_get(ctl_store(ctl), c->fpr, &ctl_st, &why) == -1)
		ctl_die("%s", why);
	if (o.json) {
		json_t *j = cert_json(c, &any);
		json_object_set_new(j, "bindings", emails_json(&binds));
		json_object_set_new(j, "key_usage", ku_json(c->key_usage));
		json_object_set_new(j, "trust_list",
		    json_string(store_ctl_status_name(ctl_st)));
		json_object_set_new(j, "encrypt",
		    json_pack("{s:s,s:s}", "status", trust_word(&enc), "detail",
			enc.detail));
		json_object_set_new(j, "sign",
		    json_pack("{s:s,s:s}", "status", trust_word(&sig), "detail",
			sig.detail));
		ctl_json_print(j);
	} else {
		fmt_date(c->not_before, nb, sizeof(nb), true);
		fmt_date(c->not_after, na, sizeof(na), true);
		printf("fingerprint: %s\nkind: %s\nsubject: %s\nissuer: %s\n"
		       "serial: %s\nnot before: %s\nnot after: %s\n",
		    c->fpr, store_cert_kind_name(c->kind), c->subject,
		    c->issuer, c->serial, nb, na);
		printf("addresses:");
		for (size_t i = 0; i < c->emails.n; i++)
			printf(" %s", c->emails.v[i]);
		printf("\nbound to:");
		for (size_t i = 0; i < binds.n; i++)
			printf(" %s", binds.v[i]);
		printf("\nkey usage: ");
		print_ku(c->key_usage);
		printf("\nprivate key: %s\ntrust list: %s\n",
		    c->has_key ? "held (sealed)" : "no",
		    store_ctl_status_name(ctl_st));
		printf("status: %s (%s)\nfor encryption: %s (%s)\n"
		       "for signing: %s (%s)\n",
		    trust_word(&any), any.detail, trust_word(&enc), enc.detail,
		    trust_word(&sig), sig.detail);
	}
	strlist_free(&binds);
	certs_close(&cs);
	store_cert_free(&c);
	return 0;
}

static int
cert_export(struct ctl *ctl, int argc, char **argv)
{
	struct store_cert *c;
	X509 *x;

	if (argc != 2)
		return ctl_usage("cert");
	c = cert_arg(ctl, argv[1]);
	x = cert_x509(c);
	PEM_write_X509(stdout, x);
	X509_free(x);
	store_cert_free(&c);
	return 0;
}

/* Deletes a certificate that must (roots) or must not be a root. */
static int
delete_kind(struct ctl *ctl, int argc, char **argv, bool root, const char *cmd)
{
	struct store_cert *c;
	const char *why;

	if (argc != 2)
		return ctl_usage(cmd);
	c = cert_arg(ctl, argv[1]);
	if ((c->kind == STORE_CERT_ROOT) != root)
		ctl_die("%s is %s: use %s delete", c->fpr,
		    root ? "not a root" : "a root", root ? "cert" : "root");
	if (store_cert_delete(ctl_store(ctl), c->fpr, &why) == -1)
		ctl_die("%s", why);
	printf(
	    "deleted %s%s\n", c->fpr, c->has_key ? " and its private key" : "");
	store_cert_free(&c);
	return 0;
}

static int
cert_delete(struct ctl *ctl, int argc, char **argv)
{
	return delete_kind(ctl, argc, argv, false, "cert");
}

static int
cert_bind_op(struct ctl *ctl, int argc, char **argv, bool bind)
{
	char fpr[STORE_FPR_LEN + 1];
	const char *why;

	if (argc != 3)
		return ctl_usage("cert");
	fpr_arg(ctl, argv[1], fpr);
	if ((bind ? store_bind : store_unbind)(
		ctl_store(ctl), fpr, argv[2], &why) == -1)
		ctl_die("%s", why);
	return 0;
}

static int
cert_bind(struct ctl *ctl, int argc, char **argv)
{
	return cert_bind_op(ctl, argc, argv, true);
}

static int
cert_unbind(struct ctl *ctl, int argc, char **argv)
{
	return cert_bind_op(ctl, argc, argv, false);
}

struct subcmd {
	const char *name;
	int (*run)(struct ctl *, int, char **);
};

static int
dispatch(
    struct ctl *ctl, const struct subcmd *cmds, size_t n, int argc, char **argv)
{
	if (argc >= 2)
		for (size_t i = 0; i < n; i++)
			if (strcmp(argv[1], cmds[i].name) == 0)
				return cmds[i].run(ctl, argc - 1, argv + 1);
	return ctl_usage(argv[0]);
}

int
ctl_cert_main(struct ctl *ctl, int argc, char **argv)
{
	static const struct subcmd cmds[] = {
		{ "import", cert_import },
		{ "list", cert_list },
		{ "show", cert_show },
		{ "export", cert_export },
		{ "delete", cert_delete },
		{ "bind", cert_bind },
		{ "unbind", cert_unbind },
	};

	return dispatch(ctl, cmds, nitems(cmds), argc, argv);
}

/* Roots. */

static int
root_import(struct ctl *ctl, int argc, char **argv)
{
	struct opts o;
	int k = opts_parse(argc, argv, A_JSON, &o);

	if (k < 0 || argc - k != 1)
		return ctl_usage("root");
	return import_file(ctl, argv[k], &o, CERTS_AS_ROOTS);
}

static int
root_list(struct ctl *ctl, int argc, char **argv)
{
	struct store_cert_query q = { .kind = STORE_CERT_ROOT,
		.with_der = true };
	struct opts o;
	int k = opts_parse(argc, argv, A_JSON, &o);

	if (k < 0 || k != argc)
		return ctl_usage("root");
	return list_kind(ctl, &q, true, o.json);
}

static int
root_delete(struct ctl *ctl, int argc, char **argv)
{
	return delete_kind(ctl, argc, argv, true, "root");
}

int
ctl_root_main(struct ctl *ctl, int argc, char **argv)
{
	static const struct subcmd cmds[] = {
		{ "import", root_import },
		{ "list", root_list },
		{ "delete", root_delete },
	};

	return dispatch(ctl, cmds, nitems(cmds), argc, argv);
}

/* CRLs. */

static int
crl_import(struct ctl *ctl, int argc, char **argv)
{
	struct certs_crl_imported *v;
	json_t *a = json_array();
	struct opts o;
	const char *why;
	char *data;
	size_t len, n;
	int k = opts_parse(argc, argv, A_JSON, &o);

	if (k < 0 || argc - k != 1)
		return ctl_usage("crl");
	data = read_input(argv[k], &len);
	if (certs_import_crls(ctl_store(ctl), data, len, &v, &n, &why) == -1)
		ctl_die("%s: %s (nothing imported)", argv[k], why);
	free(data);
	for (size_t i = 0; i < n; i++) {
		if (o.json)
			json_array_append_new(a,
			    json_pack("{s:s,s:s,s:b}", "fingerprint", v[i].fpr,
				"issuer", v[i].issuer, "added", v[i].added));
		else
			printf("%s CRL %s: %s\n",
			    v[i].added ? "added" : "exists", v[i].fpr,
			    v[i].issuer);
	}
	if (o.json)
		ctl_json_print(a);
	else
		json_decref(a);
	certs_crl_imported_free(v, n);
	return 0;
}

static int
crl_list(struct ctl *ctl, int argc, char **argv)
{
	struct store_crls crls;
	json_t *a = json_array();
	struct opts o;
	const char *why;
	char tu[32], nu[32];
	int k = opts_parse(argc, argv, A_JSON, &o);

	if (k < 0 || k != argc)
		return ctl_usage("crl");
	if (store_crl_list(ctl_store(ctl), NULL, false, &crls, &why) == -1)
		ctl_die("%s", why);
	for (size_t i = 0; i < crls.n; i++) {
		const struct store_crl *c = &crls.v[i];
		if (o.json) {
			json_array_append_new(a,
			    json_pack("{s:s,s:s,s:s?,s:I,s:I}", "fingerprint",
				c->fpr, "issuer", c->issuer, "number",
				c->number, "this_update",
				(json_int_t)c->this_update, "next_update",
				(json_int_t)c->next_update));
			continue;
		}
		fmt_date(c->this_update, tu, sizeof(tu), false);
		if (c->next_update != 0)
			fmt_date(c->next_update, nu, sizeof(nu), false);
		else
			strlcpy_ms(nu, "-", sizeof(nu));
		printf("%s %s..%s%s%s %s\n", c->fpr, tu, nu,
		    c->number ? " #" : "", c->number ? c->number : "",
		    c->issuer);
	}
	if (o.json)
		ctl_json_print(a);
	else
		json_decref(a);
	store_crls_free(&crls);
	return 0;
}

static int
crl_delete(struct ctl *ctl, int argc, char **argv)
{
	const char *why;

	if (argc != 2)
		return ctl_usage("crl");
	if (store_crl_delete(ctl_store(ctl), argv[1], &why) == -1)
		ctl_die("%s", why);
	return 0;
}

int
ctl_crl_main(struct ctl *ctl, int argc, char **argv)
{
	static const struct subcmd cmds[] = {
		{ "import", crl_import },
		{ "list", crl_list },
		{ "delete", crl_delete },
	};

	return dispatch(ctl, cmds, nitems(cmds), argc, argv);
}

/* The trust list. */

static int
ctl_set(struct ctl *ctl, int argc, char **argv)
{
	enum store_ctl_status st;
	char fpr[STORE_FPR_LEN + 1];
	const char *why;

	if (argc != 3)
		return ctl_usage("ctl");
	if (strcmp(argv[2], "whitelisted") == 0)
		st = STORE_CTL_WHITELISTED;
	else if (strcmp(argv[2], "blacklisted") == 0)
		st = STORE_CTL_BLACKLISTED;
	else
		ctl_die(
		    "'%s': the status is whitelisted or blacklisted", argv[2]);
	fpr_arg(ctl, argv[1], fpr);
	if (store_ctl_set(ctl_store(ctl), fpr, st, &why) == -1)
		ctl_die("%s", why);
	return 0;
}

static int
ctl_unset(struct ctl *ctl, int argc, char **argv)
{
	char fpr[STORE_FPR_LEN + 1];
	const char *why;

	if (argc != 2)
		return ctl_usage("ctl");
	fpr_arg(ctl, argv[1], fpr);
	if (store_ctl_set(ctl_store(ctl), fpr, STORE_CTL_NONE, &why) == -1)
		ctl_die("%s", why);
	return 0;
}

static int
ctl_list(struct ctl *ctl, int argc, char **argv)
{
	struct store_ctl_entry *v;
	json_t *a = json_array();
	struct opts o;
	const char *why;
	size_t n;
	int k = opts_parse(argc, argv, A_JSON, &o);

	if (k < 0 || k != argc)
		return ctl_usage("ctl");
	if (store_ctl_list(ctl_store(ctl), &v, &n, &why) == -1)
		ctl_die("%s", why);
	for (size_t i = 0; i < n; i++) {
		if (o.json)
			json_array_append_new(a,
			    json_pack("{s:s,s:s}", "fingerprint", v[i].fpr,
				"status", store_ctl_status_name(v[i].status)));
		else
			printf("%s %s\n", v[i].fpr,
			    store_ctl_status_name(v[i].status));
	}
	if (o.json)
		ctl_json_print(a);
	else
		json_decref(a);
	free(v);
	return 0;
}

int
ctl_ctl_main(struct ctl *ctl, int argc, char **argv)
{
	static const struct subcmd cmds[] = {
		{ "set", ctl_set },
		{ "unset", ctl_unset },
		{ "list", ctl_list },
	};

	return dispatch(ctl, cmds, nitems(cmds), argc, argv);
}
