#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "policy/policy.h"
#include "store/store.h"

static char tmpdir[64];

static int
setup(void **state)
{
	struct store *st;
	const char *why = "";
	char uri[128];

	strcpy(tmpdir, "/tmp/mailseal-policy-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(uri, sizeof(uri), "sqlite:%s/store.db", tmpdir);
	if (store_open(uri, STORE_CREATE, &st, &why) != 0)
		fail_msg("store_open: %s", why);
	*state = st;
	return 0;
}

static int
teardown(void **state)
{
	struct store *st = *state;
	char *cmd = xasprintf("rm -rf %s", tmpdir);

	store_close(&st);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	return 0;
}

/* ok(f(..., &why), &why): a pointer, since argument order is free. */
static void
ok(int rc, const char *const *why)
{
	if (rc != 0)
		fail_msg("%s", *why);
}

static void
set(struct store *st, enum store_level level, const char *owner,
    const char *prop, const char *value)
{
	const char *why = "";

	ok(policy_set(st, level, owner, prop, value, &why), &why);
}

static struct policy *
resolve(struct store *st, enum store_level level, const char *name)
{
	struct policy *pol = NULL;
	const char *why = "";

	ok(policy_resolve(st, level, name, &pol, &why), &why);
	return pol;
}

/* Asserts the value of a property and the level it came from. */
static void
expect(const struct policy *pol, enum prop_id id, const char *value,
    enum policy_level level, const char *source)
{
	const struct policy_value *v = &pol->v[id];

	if (strcmp(v->value, value) != 0 || v->level != level ||
	    (source == NULL) != (v->source == NULL) ||
	    (source != NULL && strcmp(source, v->source) != 0))
		fail_msg("%s of %s: got '%s' from %s %s, want '%s' from %s %s",
		    prop_table[id].name, pol->name ? pol->name : "(global)",
		    v->value, policy_level_name(v->level),
		    v->source ? v->source : "", value, policy_level_name(level),
		    source ? source : "");
}

/* The table is consistent: every default passes its own check. */
static void
table_defaults(void **state)
{
	for (int i = 0; i < PROP__COUNT; i++) {
		const char *why = "";
		char *c = prop_canon(i, prop_table[i].def, &why);
		if (c == NULL)
			fail_msg("default of %s: %s", prop_table[i].name, why);
		assert_string_equal(c, prop_table[i].def);
		free(c);
		assert_int_equal(prop_lookup(prop_table[i].name), i);
		assert_non_null(prop_table[i].help);
	}
	assert_int_equal(prop_lookup("no_such_property"), -1);
	assert_string_equal(prop_table[PROP_ENCRYPT_MODE].def, "allow");
	assert_string_equal(
	    prop_table[PROP_SMIME_ENCRYPTION_ALGORITHM].def, "aes256-cbc");
	assert_string_equal(prop_table[PROP_SUBJECT_TRIGGER].def, "[encrypt]");
	assert_string_equal(prop_table[PROP_RSA_OAEP].def, "no");
}

static void
factory_defaults(void **state)
{
	struct policy *pol = resolve(*state, STORE_USER, "a@nowhere.test");

	assert_false(pol->has_record);
	assert_false(pol->domain_has_record);
	for (int i = 0; i < PROP__COUNT; i++)
		expect(pol, i, prop_table[i].def, POLICY_DEFAULT, NULL);
	assert_false(policy_bool(pol, PROP_SUBJECT_TRIGGER_ENABLED));
	assert_true(policy_bool(pol, PROP_SMIME_ENABLED));
	policy_free(&pol);
}

/* Each level in turn overrides the one above it. */
static void
every_level(void **state)
{
	struct store *st = *state;
	struct policy *pol;
	const char *why = "";

	set(st, STORE_GLOBAL, NULL, "encrypt_mode", "mandatory");
	set(st, STORE_GLOBAL, NULL, "sign_mode", "always");
	set(st, STORE_GLOBAL, NULL, "comment", "global");
	ok(store_domain_add(st, "*.example.com", &why), &why);
	set(st, STORE_DOMAIN, "*.example.com", "sign_mode", "when_encrypting");
	set(st, STORE_DOMAIN, "*.example.com", "comment", "wild");
	ok(store_domain_add(st, "sub.example.com", &why), &why);
	set(st, STORE_DOMAIN, "sub.example.com", "comment", "domain");
	set(st, STORE_DOMAIN, "sub.example.com", "locality", "internal");
	ok(store_user_add(st, "alice@sub.example.com", &why), &why);
	set(st, STORE_USER, "alice@sub.example.com", "comment", "user");

	pol = resolve(st, STORE_USER, "Alice@SUB.example.com");
	assert_true(pol->has_record);
	assert_true(pol->domain_has_record);
	assert_string_equal(pol->name, "alice@sub.example.com");
	expect(pol, PROP_COMMENT, "user", POLICY_USER, "alice@sub.example.com");
	expect(
	    pol, PROP_LOCALITY, "internal", POLICY_DOMAIN, "sub.example.com");
	expect(pol, PROP_SIGN_MODE, "when_encrypting", POLICY_WILDCARD,
	    "*.example.com");
	expect(pol, PROP_ENCRYPT_MODE, "mandatory", POLICY_GLOBAL, NULL);
	expect(pol, PROP_SMIME_STRICT, "no", POLICY_DEFAULT, NULL);
	policy_free(&pol);

	/* Another user of the domain, with no record: from the domain on. */
	pol = resolve(st, STORE_USER, "bob@sub.example.com");
	assert_false(pol->has_record);
	expect(pol, PROP_COMMENT, "domain", POLICY_DOMAIN, "sub.example.com");
	policy_free(&pol);

	/* What the domain's users inherit; what every domain inherits. */
	pol = resolve(st, STORE_DOMAIN, "sub.example.com");
	assert_true(pol->has_record);
	expect(pol, PROP_COMMENT, "domain", POLICY_DOMAIN, "sub.example.com");
	policy_free(&pol);
	pol = resolve(st, STORE_GLOBAL, NULL);
	expect(pol, PROP_COMMENT, "global", POLICY_GLOBAL, NULL);
	expect(pol, PROP_LOCALITY, "external", POLICY_DEFAULT, NULL);
	policy_free(&pol);
}

/* The inherit flag: unsetting a level passes the question up. */
static void
inherit_flag(void **state)
{
	struct store *st = *state;
	struct policy *pol;
	const char *why = "";

	ok(store_domain_add(st, "example.com", &why), &why);
	ok(store_user_add(st, "a@example.com", &why), &why);
	set(st, STORE_DOMAIN, "example.com", "locality", "internal");
	set(st, STORE_USER, "a@example.com", "locality", "external");
	pol = resolve(st, STORE_USER, "a@example.com");
	expect(pol, PROP_LOCALITY, "external", POLICY_USER, "a@example.com");
	policy_free(&pol);

	ok(policy_inherit(st, STORE_USER, "a@example.com", "locality", &why),
	    &why);
	pol = resolve(st, STORE_USER, "a@example.com");
	expect(pol, PROP_LOCALITY, "internal", POLICY_DOMAIN, "example.com");
	policy_free(&pol);

	ok(policy_inherit(st, STORE_DOMAIN, "example.com", "locality", &why),
	    &why);
	pol = resolve(st, STORE_USER, "a@example.com");
	expect(pol, PROP_LOCALITY, "external", POLICY_DEFAULT, NULL);
	policy_free(&pol);

	/* A value equal to the default is still set at its level. */
	set(st, STORE_GLOBAL, NULL, "locality", "external");
	pol = resolve(st, STORE_USER, "a@example.com");
	expect(pol, PROP_LOCALITY, "external", POLICY_GLOBAL, NULL);
	policy_free(&pol);
	/* An empty text is a value, not inherit. */
	set(st, STORE_GLOBAL, NULL, "comment", "global note");
	set(st, STORE_USER, "a@example.com", "comment", "");
	pol = resolve(st, STORE_USER, "a@example.com");
	expect(pol, PROP_COMMENT, "", POLICY_USER, "a@example.com");
	policy_free(&pol);
	assert_int_equal(
	    policy_inherit(st, STORE_USER, "a@example.com", "no_such", &why),
	    -1);
	assert_int_equal(policy_inherit(st, STORE_USER, "nobody@example.com",
			     "comment", &why),
	    -1);
}

/*
 * Wildcards: *.example.com covers sub.example.com and deeper, not
 * example.com; the most specific wildcard that sets a property wins, one
 * that inherits passes to the next.
 */
static void
wildcards(void **state)
{
	struct store *st = *state;
	struct policy *pol;
	const char *why = "";

	ok(store_domain_add(st, "*.example.com", &why), &why);
	ok(store_domain_add(st, "*.b.example.com", &why), &why);
	ok(store_domain_add(st, "*.com", &why), &why);
	set(st, STORE_DOMAIN, "*.com", "smime_strict", "yes");
	set(st, STORE_DOMAIN, "*.example.com", "locality", "internal");
	set(st, STORE_DOMAIN, "*.example.com", "sign_mode", "always");
	set(st, STORE_DOMAIN, "*.b.example.com", "locality", "external");

	pol = resolve(st, STORE_USER, "x@a.b.example.com");
	expect(
	    pol, PROP_LOCALITY, "external", POLICY_WILDCARD, "*.b.example.com");
	expect(pol, PROP_SIGN_MODE, "always", POLICY_WILDCARD, "*.example.com");
	expect(pol, PROP_SMIME_STRICT, "yes", POLICY_WILDCARD, "*.com");
	policy_free(&pol);

	/* b.example.com itself is below *.example.com, not *.b.example.com. */
	pol = resolve(st, STORE_USER, "x@b.example.com");
	expect(
	    pol, PROP_LOCALITY, "internal", POLICY_WILDCARD, "*.example.com");
	policy_free(&pol);

	/* example.com is not covered by *.example.com, but by *.com. */
	pol = resolve(st, STORE_USER, "x@example.com");
	expect(pol, PROP_LOCALITY, "external", POLICY_DEFAULT, NULL);
	expect(pol, PROP_SMIME_STRICT, "yes", POLICY_WILDCARD, "*.com");
	policy_free(&pol);
	pol = resolve(st, STORE_USER, "x@other.test");
	expect(pol, PROP_SMIME_STRICT, "no", POLICY_DEFAULT, NULL);
	policy_free(&pol);

	/* A domain record beats the wildcards that cover it. */
	ok(store_domain_add(st, "a.b.example.com", &why), &why);
	set(st, STORE_DOMAIN, "a.b.example.com", "locality", "internal");
	pol = resolve(st, STORE_USER, "x@a.b.example.com");
	expect(
	    pol, PROP_LOCALITY, "internal", POLICY_DOMAIN, "a.b.example.com");
	policy_free(&pol);

	/* A wildcard's own view: itself, then the wildcards above it. */
	pol = resolve(st, STORE_DOMAIN, "*.b.example.com");
	expect(
	    pol, PROP_LOCALITY, "external", POLICY_WILDCARD, "*.b.example.com");
	expect(pol, PROP_SIGN_MODE, "always", POLICY_WILDCARD, "*.example.com");
	policy_free(&pol);
}

#define REST62 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* A minimal certificate record whose fingerprint is 64 times c. */
static void
put_cert(struct store *st, char c)
{
	static unsigned char der[] = { 0x30, 0x00 };
	struct store_cert rec;
	const char *why = "";
	bool added;

	memset(&rec, 0, sizeof(rec));
	memset(rec.fpr, c, STORE_FPR_LEN);
	memset(rec.spki_sha256, 'f', STORE_FPR_LEN);
	strcpy(rec.subject_hash, "00000000");
	strcpy(rec.issuer_hash, "00000000");
	rec.der = der;
	rec.der_len = sizeof(der);
	rec.subject = rec.issuer = rec.serial = (char *)"x";
	ok(store_cert_put(st, &rec, &added, &why), &why);
}

static void
bad_input(void **state)
{
	struct store *st = *state;
	struct policy *pol = NULL;
	const char *why = "";
	struct strlist l = { 0 };

	ok(store_domain_add(st, "example.com", &why), &why);
	assert_int_equal(
	    policy_set(st, STORE_GLOBAL, NULL, "colour", "red", &why), -1);
	assert_non_null(strstr(why, "unknown property 'colour'"));
	assert_int_equal(policy_set(st, STORE_DOMAIN, "example.com",
			     "encrypt_mode", "sometimes", &why),
	    -1);
	assert_string_equal(why,
	    "bad value 'sometimes' for encrypt_mode: "
	    "must be one of no_encryption, allow, "
	    "mandatory");
	assert_int_equal(
	    policy_set(st, STORE_GLOBAL, NULL, "smime_strict", "maybe", &why),
	    -1);
	assert_non_null(strstr(why, "must be yes or no"));
	assert_int_equal(
	    policy_set(st, STORE_GLOBAL, NULL, "subject_trigger", "", &why),
	    -1);
	assert_int_equal(policy_set(st, STORE_GLOBAL, NULL,
			     "additional_certificates", "abcd", &why),
	    -1);
	assert_non_null(strstr(why, "fingerprint"));
	assert_int_equal(policy_set(st, STORE_DOMAIN, "nowhere.test",
			     "locality", "internal", &why),
	    -1);
	assert_non_null(strstr(why, "no such domain"));
	assert_int_equal(
	    policy_resolve(st, STORE_USER, "not-an-address", &pol, &why), -1);
	assert_null(pol);

	/* Fingerprints must name stored certificates. */
	assert_int_equal(policy_set(st, STORE_GLOBAL, NULL,
			     "additional_certificates", "aa" REST62, &why),
	    -1);
	assert_non_null(strstr(why, "no certificate aa"));
	put_cert(st, 'a');
	put_cert(st, 'b');

	/* Values are stored in canonical form. */
	set(st, STORE_GLOBAL, NULL, "smime_strict", "YES");
	set(st, STORE_GLOBAL, NULL, "encrypt_mode", "Mandatory");
	set(st, STORE_GLOBAL, NULL, "additional_certificates",
	    "SHA256:"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAAAAA, "
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	    " bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	pol = resolve(st, STORE_USER, "a@example.com");
	expect(pol, PROP_SMIME_STRICT, "yes", POLICY_GLOBAL, NULL);
	expect(pol, PROP_ENCRYPT_MODE, "mandatory", POLICY_GLOBAL, NULL);
	policy_list(pol, PROP_ADDITIONAL_CERTIFICATES, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0],
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaa");
	strlist_free(&l);
	policy_free(&pol);

	/* A bad stored value fails the lookup: fail closed, never guess. */
	ok(store_prop_set(st, STORE_DOMAIN, "example.com", "encrypt_mode",
	       "sometimes", &why),
	    &why);
	assert_int_equal(
	    policy_resolve(st, STORE_USER, "a@example.com", &pol, &why), -1);
	assert_non_null(strstr(why,
	    "stored value 'sometimes' of "
	    "encrypt_mode at domain example.com"));
	/* A property this version does not know is ignored. */
	ok(store_prop_unset(
	       st, STORE_DOMAIN, "example.com", "encrypt_mode", &why),
	    &why);
	ok(store_prop_set(
	       st, STORE_DOMAIN, "example.com", "future_thing", "x", &why),
	    &why);
	pol = resolve(st, STORE_USER, "a@example.com");
	policy_free(&pol);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table_defaults),
		cmocka_unit_test_setup_teardown(
		    factory_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(every_level, setup, teardown),
		cmocka_unit_test_setup_teardown(inherit_flag, setup, teardown),
		cmocka_unit_test_setup_teardown(wildcards, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_input, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
