#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/util.h"
#include "crypto/certs.h"
#include "store/masterkey.h"
#include "store/store.h"
#include "testcerts.h"

struct fx {
	char dir[64];
	struct store *st;
	struct certs *cs;
	struct masterkey *mk;
	X509 *root, *inter;
	EVP_PKEY *root_key, *inter_key;
};

static const char *
fail_why(const char *why)
{
	return why != NULL ? why : "(no reason)";
}

/* Imports PEM or DER text through the parser, as the CLI does. */
static int
import_data(struct fx *f, const void *data, size_t len, const char *password,
    enum certs_import_as as, const char *bind, struct certs_import_result *r,
    const char **why)
{
	struct certs_bundle b;
	struct certs_import_result local;
	int rc;

	if (certs_parse(data, len, password, &b, why) == -1)
		return -1;
	rc = certs_import(f->st, f->mk, &b, as, bind, r ? r : &local, why);
	certs_bundle_free(&b);
	if (rc == 0 && r == NULL)
		certs_import_result_free(&local);
	return rc;
}

static void
import_x509(struct fx *f, X509 *x, enum certs_import_as as)
{
	char *pem = tc_pem(x);
	const char *why = NULL;

	if (import_data(f, pem, strlen(pem), NULL, as, NULL, NULL, &why) != 0)
		fail_msg("import: %s", fail_why(why));
	free(pem);
}

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct tc_cert_opts ro = {
		.cn = "Test Root CA", .ca = true, .to_days = 3650
	};
	struct tc_cert_opts io = {
		.cn = "Test Intermediate CA", .ca = true, .to_days = 1000
	};
	unsigned char k[MASTERKEY_LEN];
	const char *why = NULL;
	char uri[128];

	strcpy(f->dir, "/tmp/mailseal-certs-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(uri, sizeof(uri), "sqlite:%s/store.db", f->dir);
	if (store_open(uri, STORE_CREATE, &f->st, &why) != 0)
		fail_msg("%s", fail_why(why));
	memset(k, 0x5a, sizeof(k));
	f->mk = masterkey_from_bytes(k);
	assert_int_equal(certs_open(f->st, &f->cs, &why), 0);
	f->root_key = tc_key_rsa(0);
	f->inter_key = tc_key_rsa(1);
	f->root = tc_cert(&ro, f->root_key, NULL, NULL);
	f->inter = tc_cert(&io, f->inter_key, f->root, f->root_key);
	import_x509(f, f->root, CERTS_AS_ROOTS);
	import_x509(f, f->inter, CERTS_AS_CERTS);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char *cmd = xasprintf("rm -rf %s", f->dir);

	certs_close(&f->cs);
	store_close(&f->st);
	masterkey_free(&f->mk);
	X509_free(f->root);
	X509_free(f->inter);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f);
	return 0;
}

/*
 * A leaf of the intermediate, for an address, with the usual usage:
 * keyEncipherment for RSA, keyAgreement for EC (RFC 8550 4.4.2).
 */
static X509 *
leaf(struct fx *f, const char *email, EVP_PKEY *key, long from, long to)
{
	struct tc_cert_opts o = { .cn = email,
		.email = email,
		.from_days = from,
		.to_days = to,
		.ku = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC
		    ? "critical,digitalSignature,keyAgreement"
		    : "critical,digitalSignature,keyEncipherment",
		.eku = "emailProtection" };

	return tc_cert(&o, key, f->inter, f->inter_key);
}

static struct cert_verdict
check(struct fx *f, X509 *x, enum cert_purpose purpose)
{
	struct cert_verdict v;
	const char *why = NULL;

	if (certs_validate(
		f->cs, x, NULL, purpose, time(NULL), &v, NULL, &why) != 0)
		fail_msg("certs_validate: %s", fail_why(why));
	return v;
}

static void
expect(struct fx *f, X509 *x, enum cert_purpose purpose, enum cert_status want,
    const char *detail)
{
	struct cert_verdict v = check(f, x, purpose);

	if (v.status != want)
		fail_msg("got %s (%s), want %s", certs_status_name(v.status),
		    v.detail, certs_status_name(want));
	if (detail != NULL && strstr(v.detail, detail) == NULL)
		fail_msg("detail '%s' lacks '%s'", v.detail, detail);
}

static void
valid_path(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f, "alice@remote.test", tc_key_rsa(2), -1, 365);
	STACK_OF(X509) *chain = NULL;
	struct cert_verdict v;
	const char *why;

	assert_int_equal(certs_validate(f->cs, x, NULL, CERT_PURPOSE_ENCRYPT,
			     time(NULL), &v, &chain, &why),
	    0);
	assert_int_equal(v.status, CERT_VALID);
	assert_false(v.whitelisted);
	assert_int_equal(sk_X509_num(chain), 3);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), x), 0);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 2), f->root), 0);
	sk_X509_pop_free(chain, X509_free);
	expect(f, x, CERT_PURPOSE_SIGN, CERT_VALID, NULL);
	X509_free(x);
}

static void
validity_period(void **state)
{
	struct fx *f = *state;
	X509 *old = leaf(f, "old@remote.test", tc_key_rsa(2), -30, -1);
	X509 *early = leaf(f, "early@remote.test", tc_key_rsa(2), 5, 30);

	expect(f, old, CERT_PURPOSE_ENCRYPT, CERT_EXPIRED, "expired 20");
	expect(f, early, CERT_PURPOSE_SIGN, CERT_NOT_YET_VALID,
	    "not valid before");
	/* The time of the check is the caller's. */
	struct cert_verdict v;
	const char *why;
	assert_int_equal(certs_validate(f->cs, early, NULL, CERT_PURPOSE_SIGN,
			     time(NULL) + 10 * 86400, &v, NULL, &why),
	    0);
	assert_int_equal(v.status, CERT_VALID);
	X509_free(old);
	X509_free(early);
}

static X509 *
leaf_usage(struct fx *f, EVP_PKEY *key, const char *ku, const char *eku)
{
	struct tc_cert_opts o = {
		.cn = "u", .email = "u@remote.test", .ku = ku, .eku = eku
	};

	return tc_cert(&o, key, f->inter, f->inter_key);
}

static void
key_usage(void **state)
{
	struct fx *f = *state;
	X509 *sign_only = leaf_usage(
	    f, tc_key_rsa(2), "critical,digitalSignature", "emailProtection");
	X509 *enc_only = leaf_usage(
	    f, tc_key_rsa(2), "critical,keyEncipherment", "emailProtection");
	X509 *nonrep = leaf_usage(f, tc_key_rsa(2), "nonRepudiation", NULL);
	X509 *server = leaf_usage(
	    f, tc_key_rsa(2), "digitalSignature,keyEncipherment", "serverAuth");
	X509 *any = leaf_usage(f, tc_key_rsa(2),
	    "digitalSignature,keyEncipherment", "anyExtendedKeyUsage");
	X509 *none = leaf_usage(f, tc_key_rsa(2), NULL, NULL);
	X509 *ec_agree = leaf_usage(f, tc_key_ec(0),
	    "digitalSignature,keyAgreement", "emailProtection");
	X509 *ec_encipher = leaf_usage(f, tc_key_ec(0),
	    "digitalSignature,keyEncipherment", "emailProtection");

	expect(f, sign_only, CERT_PURPOSE_ENCRYPT, CERT_BAD_KEY_USAGE,
	    "keyEncipherment");
	expect(f, sign_only, CERT_PURPOSE_SIGN, CERT_VALID, NULL);
	expect(f, enc_only, CERT_PURPOSE_SIGN, CERT_BAD_KEY_USAGE,
	    "digitalSignature");
	expect(f, enc_only, CERT_PURPOSE_ENCRYPT, CERT_VALID, NULL);
	expect(f, nonrep, CERT_PURPOSE_SIGN, CERT_VALID, NULL);
	expect(f, server, CERT_PURPOSE_ENCRYPT, CERT_BAD_KEY_USAGE,
	    "emailProtection");
	expect(f, server, CERT_PURPOSE_SIGN, CERT_BAD_KEY_USAGE,
	    "emailProtection");
	expect(f, server, CERT_PURPOSE_ANY, CERT_VALID, NULL);
	expect(f, any, CERT_PURPOSE_ENCRYPT, CERT_VALID, NULL);
	expect(f, none, CERT_PURPOSE_ENCRYPT, CERT_VALID, NULL);
	expect(f, none, CERT_PURPOSE_SIGN, CERT_VALID, NULL);
	expect(f, ec_agree, CERT_PURPOSE_ENCRYPT, CERT_VALID, NULL);
	expect(f, ec_encipher, CERT_PURPOSE_ENCRYPT, CERT_BAD_KEY_USAGE,
	    "keyAgreement");
	X509_free(sign_only);
	X509_free(enc_only);
	X509_free(nonrep);
	X509_free(server);
	X509_free(any);
	X509_free(none);
	X509_free(ec_agree);
	X509_free(ec_encipher);
}

static void
import_crl(struct fx *f, X509_CRL *crl, bool want_ok, const char *why_part)
{
	char *pem = tc_crl_pem(crl);
	struct certs_crl_imported *v = NULL;
	const char *why = NULL;
	size_t n;
	int rc;

	rc = certs_import_crls(f->st, pem, strlen(pem), &v, &n, &why);
	free(pem);
	if (want_ok && rc != 0)
		fail_msg("CRL import: %s", fail_why(why));
	if (!want_ok) {
		assert_int_equal(rc, -1);
		assert_non_null(strstr(why, why_part));
	}
	certs_crl_imported_free(v, n);
}

static void
revocation(void **state)
{
	struct fx *f = *state;
	X509 *bad = leaf(f, "bad@remote.test", tc_key_rsa(2), -1, 365);
	X509 *good = leaf(f, "good@remote.test", tc_key_rsa(2), -1, 365);
	X509 *crl_list[] = { bad };
	X509_CRL *crl = tc_crl(f->inter, f->inter_key, crl_list, 1);

	/* A CRL signed by an impostor (the same name, another key). */
	struct tc_cert_opts io = { .cn = "Test Intermediate CA", .ca = true };
	X509 *fake = tc_cert(&io, tc_key_rsa(3), NULL, NULL);
	X509_CRL *forged = tc_crl(fake, tc_key_rsa(3), crl_list, 1);
	X509 *good_list[] = { good };
	X509_CRL *forged_good = tc_crl(fake, tc_key_rsa(3), good_list, 1);

	import_crl(f, forged, false, "not signed by a stored certificate");
	expect(f, bad, CERT_PURPOSE_ENCRYPT, CERT_VALID, NULL);
	import_crl(f, crl, true, NULL);
	expect(f, bad, CERT_PURPOSE_ENCRYPT, CERT_REVOKED, "keyCompromise");
	expect(f, bad, CERT_PURPOSE_ANY, CERT_REVOKED, "Test Intermediate");
	expect(f, good, CERT_PURPOSE_ENCRYPT, CERT_VALID, NULL);

	/* Even stored behind import's back, a forged CRL revokes nothing. */
	struct store_crl c;
	unsigned char *der = NULL;
	const char *why;
	bool added;
	memset(&c, 0, sizeof(c));
	c.der_len = (size_t)i2d_X509_CRL(forged_good, &der);
	c.der = der;
	memset(c.fpr, 'f', STORE_FPR_LEN);
	c.issuer = (char *)"CN=forged";
	strcpy(c.issuer_hash, "00000000");
	c.this_update = time(NULL);
	assert_int_equal(store_crl_put(f->st, &c, &added, &why), 0);
	OPENSSL_free(der);
	expect(f, good, CERT_PURPOSE_ENCRYPT, CERT_VALID, NULL);

	/* The root revokes the intermediate: its leaves go with it. */
	X509 *inter_list[] = { f->inter };
	X509_CRL *root_crl = tc_crl(f->root, f->root_key, inter_list, 1);
	import_crl(f, root_crl, true, NULL);
	expect(f, good, CERT_PURPOSE_SIGN, CERT_REVOKED, "its issuer is");

	X509_CRL_free(crl);
	X509_CRL_free(forged);
	X509_CRL_free(forged_good);
	X509_CRL_free(root_crl);
	X509_free(fake);
	X509_free(bad);
	X509_free(good);
}

static void
trust_list(void **state)
{
	struct fx *f = *state;
	struct tc_cert_opts ro = { .cn = "Other Root", .ca = true };
	X509 *other_root = tc_cert(&ro, tc_key_rsa(3), NULL, NULL);
	struct tc_cert_opts lo = { .cn = "Stranger",
		.email = "stranger@else.test",
		.ku = "digitalSignature,keyEncipherment" };
	X509 *stranger = tc_cert(&lo, tc_key_rsa(2), other_root, tc_key_rsa(3));
	X509 *old = tc_cert(
	    &(struct tc_cert_opts){
		.cn = "Old", .from_days = -20, .to_days = -2 },
	    tc_key_rsa(2), other_root, tc_key_rsa(3));
	X509 *alice = leaf(f, "alice@remote.test", tc_key_rsa(2), -1, 365);
	char fpr[STORE_FPR_LEN + 1];
	STACK_OF(X509) *chain = NULL;
	struct cert_verdict v;
	const char *why;

	/* Untrusted root: its CA certificate stored, but not as a root. */
	import_x509(f, other_root, CERTS_AS_CERTS);
	expect(f, stranger, CERT_PURPOSE_ENCRYPT, CERT_UNTRUSTED,
	    "no path to a trusted root");

	/* Untrusted but whitelisted: valid, with only itself as chain. */
	certs_fpr(stranger, fpr);
	assert_int_equal(
	    store_ctl_set(f->st, fpr, STORE_CTL_WHITELISTED, &why), 0);
	assert_int_equal(
	    certs_validate(f->cs, stranger, NULL, CERT_PURPOSE_ENCRYPT,
		time(NULL), &v, &chain, &why),
	    0);
	assert_int_equal(v.status, CERT_VALID);
	assert_true(v.whitelisted);
	assert_int_equal(sk_X509_num(chain), 1);
	sk_X509_pop_free(chain, X509_free);
	/* Whitelisting does not make an expired certificate valid. */
	certs_fpr(old, fpr);
	assert_int_equal(
	    store_ctl_set(f->st, fpr, STORE_CTL_WHITELISTED, &why), 0);
	expect(f, old, CERT_PURPOSE_ANY, CERT_EXPIRED, NULL);

	/* Blacklisted: never valid, the leaf or an issuer. */
	certs_fpr(alice, fpr);
	assert_int_equal(
	    store_ctl_set(f->st, fpr, STORE_CTL_BLACKLISTED, &why), 0);
	expect(f, alice, CERT_PURPOSE_ENCRYPT, CERT_BLACKLISTED, "trust list");
	assert_int_equal(store_ctl_set(f->st, fpr, STORE_CTL_NONE, &why), 0);
	expect(f, alice, CERT_PURPOSE_ENCRYPT, CERT_VALID, NULL);
	certs_fpr(f->inter, fpr);
	assert_int_equal(
	    store_ctl_set(f->st, fpr, STORE_CTL_BLACKLISTED, &why), 0);
	expect(f, alice, CERT_PURPOSE_ENCRYPT, CERT_BLACKLISTED,
	    "its issuer CN=Test Intermediate CA is blacklisted");

	X509_free(other_root);
	X509_free(stranger);
	X509_free(old);
	X509_free(alice);
}

/* The context notices a change of the store: no stale trust. */
static void
cache_follows_store(void **state)
{
	struct fx *f = *state;
	struct tc_cert_opts ro = { .cn = "Late Root", .ca = true };
	X509 *late = tc_cert(&ro, tc_key_rsa(3), NULL, NULL);
	X509 *x =
	    tc_cert(&(struct tc_cert_opts){ .cn = "x", .email = "x@late.test" },
		tc_key_rsa(2), late, tc_key_rsa(3));

	expect(f, x, CERT_PURPOSE_ENCRYPT, CERT_UNTRUSTED, NULL);
	import_x509(f, late, CERTS_AS_ROOTS);
	expect(f, x, CERT_PURPOSE_ENCRYPT, CERT_VALID, NULL);
	X509_free(late);
	X509_free(x);
}

static const struct cert_choice *
find_choice(const struct cert_choice *v, size_t n, X509 *x)
{
	for (size_t i = 0; i < n; i++)
		if (X509_cmp(v[i].cert, x) == 0)
			return &v[i];
	return NULL;
}

static void
select_encrypt(void **state)
{
	struct fx *f = *state;
	X509 *newest = leaf(f, "alice@remote.test", tc_key_rsa(2), -1, 365);
	X509 *older = leaf(f, "Alice@Remote.test", tc_key_ec(0), -100, 300);
	X509 *expired = leaf(f, "alice@remote.test", tc_key_rsa(2), -50, -1);
	X509 *revoked = leaf(f, "alice@remote.test", tc_key_rsa(2), -2, 100);
	X509 *wrong_ku = tc_cert(&(struct tc_cert_opts){ .cn = "Alice sig",
				     .email = "alice@remote.test",
				     .ku = "digitalSignature" },
	    tc_key_rsa(2), f->inter, f->inter_key);
	X509 *by_subject = tc_cert(&(struct tc_cert_opts){ .cn = "Carol",
				       .subject_email = "Carol@Remote.test" },
	    tc_key_rsa(2), f->inter, f->inter_key);
	X509 *gateway = leaf(f, "gw@partner.test", tc_key_rsa(3), -1, 365);
	X509 *crl_list[] = { revoked };
	X509_CRL *crl = tc_crl(f->inter, f->inter_key, crl_list, 1);
	X509 *all[] = { newest, older, expired, revoked, wrong_ku, by_subject,
		gateway };
	struct cert_selection sel;
	const struct cert_choice *ch;
	char fpr[STORE_FPR_LEN + 1];
	const char *why = NULL;

	for (size_t i = 0; i < nitems(all); i++)
		import_x509(f, all[i], CERTS_AS_CERTS);
	import_crl(f, crl, true, NULL);

	if (certs_select_encrypt(
		f->cs, "ALICE@remote.test", time(NULL), &sel, &why) != 0)
		fail_msg("%s", fail_why(why));
	/* Every valid one, the newest first. */
	assert_int_equal(sel.n, 2);
	assert_int_equal(X509_cmp(sel.v[0].cert, newest), 0);
	assert_int_equal(X509_cmp(sel.v[1].cert, older), 0);
	assert_true(sel.v[0].by_address);
	assert_false(sel.v[0].by_binding);
	assert_int_equal(sk_X509_num(sel.v[0].chain), 3);
	/* The others, with the reason. */
	assert_int_equal(sel.nrejected, 3);
	ch = find_choice(sel.rejected, sel.nrejected, expired);
	assert_non_null(ch);
	assert_int_equal(ch->verdict.status, CERT_EXPIRED);
	ch = find_choice(sel.rejected, sel.nrejected, revoked);
	assert_int_equal(ch->verdict.status, CERT_REVOKED);
	ch = find_choice(sel.rejected, sel.nrejected, wrong_ku);
	assert_int_equal(ch->verdict.status, CERT_BAD_KEY_USAGE);
	certs_selection_free(&sel);

	/* Name mismatch: nothing of Alice's for Bob. */
	assert_int_equal(certs_select_encrypt(
			     f->cs, "bob@remote.test", time(NULL), &sel, &why),
	    0);
	assert_int_equal(sel.n, 0);
	assert_int_equal(sel.nrejected, 0);
	certs_selection_free(&sel);
	/* The subject's emailAddress counts as well. */
	assert_int_equal(certs_select_encrypt(f->cs, "carol@remote.test",
			     time(NULL), &sel, &why),
	    0);
	assert_int_equal(sel.n, 1);
	assert_int_equal(X509_cmp(sel.v[0].cert, by_subject), 0);
	certs_selection_free(&sel);

	/* Bound to the domain: used for every address there. */
	certs_fpr(gateway, fpr);
	assert_int_equal(store_bind(f->st, fpr, "remote.test", &why), 0);
	assert_int_equal(certs_select_encrypt(
			     f->cs, "bob@remote.test", time(NULL), &sel, &why),
	    0);
	assert_int_equal(sel.n, 1);
	assert_true(sel.v[0].by_binding);
	assert_false(sel.v[0].by_address);
	certs_selection_free(&sel);
	/* Bound to a wildcard: the domains below it. */
	assert_int_equal(store_unbind(f->st, fpr, "remote.test", &why), 0);
	assert_int_equal(store_bind(f->st, fpr, "*.partner.test", &why), 0);
	assert_int_equal(certs_select_encrypt(f->cs, "x@mail.partner.test",
			     time(NULL), &sel, &why),
	    0);
	assert_int_equal(sel.n, 1);
	certs_selection_free(&sel);
	assert_int_equal(certs_select_encrypt(
			     f->cs, "bob@remote.test", time(NULL), &sel, &why),
	    0);
	assert_int_equal(sel.n, 0);
	certs_selection_free(&sel);

	/*
	 * A user's self-signed certificate with the CA flag (as "openssl
	 * req -x509" makes them), whitelisted and bound: used.
	 */
	X509 *self = tc_cert(&(struct tc_cert_opts){ .cn = "Self",
				 .email = "self@else.test",
				 .ca = true,
				 .ku = "digitalSignature,keyEncipherment" },
	    tc_key_rsa(3), NULL, NULL);
	struct certs_import_result r;
	char *pem = tc_pem(self);
	if (import_data(f, pem, strlen(pem), NULL, CERTS_AS_CERTS, "else.test",
		&r, &why) != 0)
		fail_msg("%s", fail_why(why));
	assert_true(r.v[0].bound);
	assert_int_equal(r.v[0].kind, STORE_CERT_INTERMEDIATE);
	certs_import_result_free(&r);
	free(pem);
	assert_int_equal(certs_select_encrypt(
			     f->cs, "self@else.test", time(NULL), &sel, &why),
	    0);
	assert_int_equal(sel.n, 0);
	assert_int_equal(sel.rejected[0].verdict.status, CERT_UNTRUSTED);
	certs_selection_free(&sel);
	certs_fpr(self, fpr);
	assert_int_equal(
	    store_ctl_set(f->st, fpr, STORE_CTL_WHITELISTED, &why), 0);
	assert_int_equal(certs_select_encrypt(
			     f->cs, "other@else.test", time(NULL), &sel, &why),
	    0);
	assert_int_equal(sel.n, 1);
	assert_true(sel.v[0].by_binding && sel.v[0].verdict.whitelisted);
	certs_selection_free(&sel);
	X509_free(self);

	X509_CRL_free(crl);
	for (size_t i = 0; i < nitems(all); i++)
		X509_free(all[i]);
}

/* Imports a certificate with its key as PKCS#12. */
static void
import_with_key(struct fx *f, X509 *x, EVP_PKEY *k)
{
	size_t len;
	unsigned char *p12 = tc_p12(x, k, NULL, "pw", &len);
	const char *why = NULL;

	if (import_data(f, p12, len, "pw", CERTS_AS_CERTS, NULL, NULL, &why) !=
	    0)
		fail_msg("%s", fail_why(why));
	free(p12);
}

static void
select_sign_decrypt(void **state)
{
	struct fx *f = *state;
	X509 *keyed_new = leaf(f, "me@corp.test", tc_key_rsa(2), -1, 365);
	X509 *keyed_old = leaf(f, "me@corp.test", tc_key_ec(0), -10, 365);
	X509 *keyless = leaf(f, "me@corp.test", tc_key_rsa(3), 0, 400);
	X509 *expired = leaf(f, "me@corp.test", tc_key_ec(1), -20, -1);
	X509 *someone = leaf(f, "someone@corp.test", tc_key_ec(2), -1, 365);
	struct cert_selection sel;
	EVP_PKEY *k = NULL;
	const char *why = NULL;

	import_with_key(f, keyed_new, tc_key_rsa(2));
	import_with_key(f, keyed_old, tc_key_ec(0));
	import_with_key(f, expired, tc_key_ec(1));
	import_with_key(f, someone, tc_key_ec(2));
	import_x509(f, keyless, CERTS_AS_CERTS);

	if (certs_select_sign(f->cs, "me@corp.test", time(NULL), &sel, &why) !=
	    0)
		fail_msg("%s", fail_why(why));
	assert_int_equal(sel.n, 2);
	assert_int_equal(X509_cmp(sel.v[0].cert, keyed_new), 0);
	assert_true(sel.v[0].has_key);
	assert_int_equal(sel.nrejected, 1); /* the expired one */
	assert_int_equal(sel.rejected[0].verdict.status, CERT_EXPIRED);
	/* The chosen key loads and is the certificate's. */
	assert_int_equal(
	    certs_load_key(f->cs, f->mk, sel.v[0].fpr, &k, &why), 0);
	assert_int_equal(EVP_PKEY_eq(k, tc_key_rsa(2)), 1);
	EVP_PKEY_free(k);
	certs_selection_free(&sel);

	/* Strict: valid, the recipient's, with a key. */
	assert_int_equal(certs_select_decrypt(f->cs, "me@corp.test", true,
			     time(NULL), &sel, &why),
	    0);
	assert_int_equal(sel.n, 2);
	certs_selection_free(&sel);
	/* Not strict: every stored key. */
	assert_int_equal(certs_select_decrypt(f->cs, "me@corp.test", false,
			     time(NULL), &sel, &why),
	    0);
	assert_int_equal(sel.n, 4);
	certs_selection_free(&sel);

	X509_free(keyed_new);
	X509_free(keyed_old);
	X509_free(keyless);
	X509_free(expired);
	X509_free(someone);
}

static size_t
count_certs(struct fx *f)
{
	struct store_cert_query q = { .kind = -1 };
	struct store_certs found;
	const char *why;
	size_t n;

	assert_int_equal(store_cert_find(f->st, &q, &found, &why), 0);
	n = found.n;
	store_certs_free(&found);
	return n;
}

static void
import_formats(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k = tc_key_ec(1);
	X509 *a = leaf(f, "a@fmt.test", k, -1, 365);
	X509 *b = leaf(f, "b@fmt.test", tc_key_ec(2), -1, 365);
	X509 *chain[] = { a, f->inter };
	struct certs_import_result r;
	size_t len, before;
	unsigned char *der, *p7, *p12, *blob, *keyder;
	char *pem, *keypem, *both, fpr[STORE_FPR_LEN + 1];
	const char *why = NULL;
	EVP_PKEY *loaded = NULL;
	struct masterkey *wrong;
	unsigned char wk[MASTERKEY_LEN];

	/* DER certificate. */
	der = tc_der(a, &len);
	assert_int_equal(
	    import_data(f, der, len, NULL, CERTS_AS_CERTS, NULL, &r, &why), 0);
	assert_int_equal(r.n, 1);
	assert_true(r.v[0].added);
	assert_false(r.v[0].key);
	assert_int_equal(r.v[0].kind, STORE_CERT_END);
	certs_import_result_free(&r);
	free(der);

	/* PKCS#7 bundle: the leaf, and the intermediate as intermediate. */
	p7 = tc_p7(chain, 2, &len);
	assert_int_equal(
	    import_data(f, p7, len, NULL, CERTS_AS_CERTS, NULL, &r, &why), 0);
	assert_int_equal(r.n, 2);
	assert_false(r.v[0].added); /* stored above */
	assert_int_equal(r.v[1].kind, STORE_CERT_INTERMEDIATE);
	certs_import_result_free(&r);
	free(p7);

	/* PEM PKCS#8 key alone: it finds its stored certificate. */
	keypem = tc_key_pem(k, NULL);
	assert_int_equal(import_data(f, keypem, strlen(keypem), NULL,
			     CERTS_AS_CERTS, NULL, &r, &why),
	    0);
	assert_int_equal(r.nkeys, 1);
	certs_import_result_free(&r);
	certs_fpr(a, fpr);
	assert_int_equal(certs_load_key(f->cs, f->mk, fpr, &loaded, &why), 0);
	assert_int_equal(EVP_PKEY_eq(loaded, k), 1);
	EVP_PKEY_free(loaded);
	/* The sealed blob does not hold the key in clear. */
	keyder = tc_key_der(k, &len);
	assert_int_equal(store_key_get(f->st, fpr, &blob, &len, &why), 0);
	assert_null(memmem(blob, len, keyder + len / 2, 16));
	free(blob);
	free(keyder);
	/* Another master key does not open it. */
	memset(wk, 1, sizeof(wk));
	wrong = masterkey_from_bytes(wk);
	assert_int_equal(certs_load_key(f->cs, wrong, fpr, &loaded, &why), -1);
	masterkey_free(&wrong);
	free(keypem);

	/* Encrypted PKCS#8 with its certificate in one PEM file. */
	keypem = tc_key_pem(tc_key_ec(2), "s3cret");
	pem = tc_pem(b);
	both = xasprintf("%s%s", pem, keypem);
	assert_int_equal(import_data(f, both, strlen(both), NULL,
			     CERTS_AS_CERTS, NULL, &r, &why),
	    -1);
	assert_non_null(strstr(why, "password"));
	assert_int_equal(import_data(f, both, strlen(both), "wrong",
			     CERTS_AS_CERTS, NULL, &r, &why),
	    -1);
	assert_int_equal(import_data(f, both, strlen(both), "s3cret",
			     CERTS_AS_CERTS, "b-alias@fmt.test", &r, &why),
	    0);
	assert_int_equal(r.n, 1);
	assert_true(r.v[0].key);
	certs_import_result_free(&r);
	free(both);
	free(pem);
	free(keypem);

	/* PKCS#12 with a password; the wrong one is refused. */
	p12 = tc_p12(a, k, f->inter, "p12pass", &len);
	assert_int_equal(
	    import_data(f, p12, len, "nope", CERTS_AS_CERTS, NULL, &r, &why),
	    -1);
	assert_non_null(strstr(why, "password"));
	assert_int_equal(
	    import_data(f, p12, len, "p12pass", CERTS_AS_CERTS, NULL, &r, &why),
	    0);
	assert_int_equal(r.nkeys, 1);
	certs_import_result_free(&r);
	free(p12);

	/* A key with no certificate anywhere: an error, nothing stored. */
	before = count_certs(f);
	X509 *c = leaf(f, "c@fmt.test", tc_key_rsa(2), -1, 365);
	pem = tc_pem(c);
	keypem = tc_key_pem(tc_key_rsa(3), NULL);
	both = xasprintf("%s%s", pem, keypem);
	assert_int_equal(import_data(f, both, strlen(both), NULL,
			     CERTS_AS_CERTS, NULL, &r, &why),
	    -1);
	assert_non_null(strstr(why, "matches no certificate"));
	assert_int_equal(count_certs(f), before);
	free(both);
	free(pem);
	free(keypem);
	X509_free(c);

	/* Roots: self-signed CAs only, no keys. */
	pem = tc_pem(a);
	assert_int_equal(import_data(f, pem, strlen(pem), NULL, CERTS_AS_ROOTS,
			     NULL, &r, &why),
	    -1);
	free(pem);
	pem = tc_pem(f->inter);
	assert_int_equal(import_data(f, pem, strlen(pem), NULL, CERTS_AS_ROOTS,
			     NULL, &r, &why),
	    -1);
	assert_non_null(strstr(why, "not self-signed"));
	free(pem);
	/* Nothing to bind: a CA certificate only. */
	pem = tc_pem(f->inter);
	assert_int_equal(import_data(f, pem, strlen(pem), NULL, CERTS_AS_CERTS,
			     "x@fmt.test", &r, &why),
	    -1);
	assert_non_null(strstr(why, "nothing to bind"));
	free(pem);

	/* A key encrypted with a billion PBKDF2 rounds: refused at once. */
	{
		X509_ALGOR *alg = PKCS5_pbe2_set_iv(
		    EVP_aes_256_cbc(), 1000000000, NULL, 0, NULL, -1);
		X509_SIG *sig = X509_SIG_new();
		X509_ALGOR *sa;
		ASN1_OCTET_STRING *digest;
		unsigned char *sder = NULL, junk[64] = { 0 };
		int slen;
		BIO *bio = BIO_new(BIO_s_mem());
		char *text;
		long tlen;
		time_t t0 = time(NULL);

		X509_SIG_getm(sig, &sa, &digest);
		assert_int_equal(X509_ALGOR_copy(sa, alg), 1);
		ASN1_OCTET_STRING_set(digest, junk, sizeof(junk));
		slen = i2d_X509_SIG(sig, &sder);
		PEM_write_bio(bio, "ENCRYPTED PRIVATE KEY", "", sder, slen);
		tlen = BIO_get_mem_data(bio, &text);
		assert_int_equal(import_data(f, text, (size_t)tlen, "pw",
				     CERTS_AS_CERTS, NULL, &r, &why),
		    -1);
		assert_non_null(strstr(why, "absurd effort"));
		assert_true(time(NULL) - t0 < 5);
		BIO_free(bio);
		OPENSSL_free(sder);
		X509_SIG_free(sig);
		X509_ALGOR_free(alg);
	}

	/* Garbage and the traditional key format. */
	assert_int_equal(
	    import_data(f, "hello", 5, NULL, CERTS_AS_CERTS, NULL, &r, &why),
	    -1);
	const char trad[] = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n"
			    "-----END RSA PRIVATE KEY-----\n";
	assert_int_equal(import_data(f, trad, strlen(trad), NULL,
			     CERTS_AS_CERTS, NULL, &r, &why),
	    -1);
	assert_non_null(strstr(why, "PKCS#8"));
	X509_free(a);
	X509_free(b);
}

/* A description of a certificate, as the store keeps it. */
static void
describe(void **state)
{
	X509 *x = tc_cert(&(struct tc_cert_opts){ .cn = "Dora",
			      .email = "Dora@Example.test",
			      .subject_email = "dora@example.test",
			      .ku = "digitalSignature,keyAgreement",
			      .eku = "emailProtection",
			      .serial = 0x1234 },
	    tc_key_ec(0), NULL, NULL);
	struct store_cert c;
	const char *why;

	assert_int_equal(certs_describe(x, &c, &why), 0);
	assert_int_equal(c.emails.n, 1);
	assert_string_equal(c.emails.v[0], "dora@example.test");
	assert_string_equal(c.serial, "1234");
	assert_string_equal(
	    c.subject, "emailAddress=dora@example.test,CN=Dora");
	assert_int_equal(strlen(c.fpr), STORE_FPR_LEN);
	assert_true(c.key_usage & KU_KEY_AGREEMENT);
	assert_false(c.is_ca);
	assert_true(c.not_after > c.not_before);
	certs_describe_free(&c);
	X509_free(x);
}

static int
group_teardown(void **state)
{
	tc_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(describe),
		cmocka_unit_test_setup_teardown(valid_path, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    validity_period, setup, teardown),
		cmocka_unit_test_setup_teardown(key_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(revocation, setup, teardown),
		cmocka_unit_test_setup_teardown(trust_list, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    cache_follows_store, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    select_encrypt, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    select_sign_decrypt, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    import_formats, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, group_teardown);
}
