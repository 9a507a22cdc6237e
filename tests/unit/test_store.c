#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/util.h"
#include "store/store.h"

static char tmpdir[64];
static char uri[128];

static int
setup(void **state)
{
	struct store *st;
	const char *why;

	strcpy(tmpdir, "/tmp/mailseal-store-XXXXXX");
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

#define OK(call)                                                               \
	do {                                                                   \
		const char *why_ = "";                                         \
		const char **error_r = &why_;                                  \
		if ((call) != 0)                                               \
			fail_msg("%s: %s", #call, why_);                       \
	} while (0)

/* Expects an error whose text contains want. */
#define FAILS(call, want)                                                      \
	do {                                                                   \
		const char *why_ = "";                                         \
		const char **error_r = &why_;                                  \
		if ((call) != -1)                                              \
			fail_msg("%s succeeded", #call);                       \
		if (strstr(why_, want) == NULL)                                \
			fail_msg("%s: '%s' lacks '%s'", #call, why_, want);    \
	} while (0)

static void
schema_from_empty(void **state)
{
	struct store *st = *state, *again;
	const char *why;
	sqlite3 *db;
	char path[128];

	assert_int_equal(store_schema_version(st), 1);
	/* A second open finds the schema made and does nothing. */
	OK(store_open(uri, 0, &again, error_r));
	assert_int_equal(store_schema_version(again), 1);
	store_close(&again);

	/* A store from a newer version is refused, not damaged. */
	snprintf(path, sizeof(path), "%s/store.db", tmpdir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "INSERT INTO schema_version VALUES (99, 0)", NULL,
		NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(uri, 0, &again, &why), -1);
	assert_non_null(strstr(why, "schema version 99 is newer"));
}

static void
open_missing_and_bad(void **state)
{
	struct store *st;
	const char *why;

	assert_int_equal(
	    store_open("sqlite:/nonexistent/dir/x.db", 0, &st, &why), -1);
	assert_int_equal(
	    store_open("sqlite:relative.db", STORE_CREATE, &st, &why), -1);
	assert_non_null(strstr(why, "absolute"));
	assert_int_equal(store_open("postgresql://db/x", 0, &st, &why), -1);
	assert_non_null(strstr(why, "not available"));
	assert_int_equal(store_open("mysql:x", 0, &st, &why), -1);
}

/* Several processes open a new store at once: one migrates, all work. */
static void
concurrent_first_open(void **state)
{
	char u[160];
	pid_t pids[6];
	int status;
	struct store *st;

	snprintf(u, sizeof(u), "sqlite:%s/race.db", tmpdir);
	for (size_t i = 0; i < nitems(pids); i++) {
		if ((pids[i] = fork()) == 0) {
			const char *why;
			struct store *s;
			if (store_open(u, STORE_CREATE, &s, &why) != 0) {
				fprintf(stderr, "child: %s\n", why);
				_exit(1);
			}
			char *d = xasprintf("d%zu.example", i);
			int rc = store_domain_add(s, d, &why);
			free(d);
			store_close(&s);
			_exit(rc == 0 ? 0 : 2);
		}
	}
	for (size_t i = 0; i < nitems(pids); i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	OK(store_open(u, 0, &st, error_r));
	struct strlist l = { 0 };
	OK(store_domain_list(st, &l, error_r));
	assert_int_equal(l.n, nitems(pids));
	strlist_free(&l);
	store_close(&st);
}

static void
canonical_names(void **state)
{
	char fpr[STORE_FPR_LEN + 1], *s;
	const char *why;

	s = store_canon_domain("Example.COM.", false, &why);
	assert_string_equal(s, "example.com");
	free(s);
	s = store_canon_domain("*.Example.com", true, &why);
	assert_string_equal(s, "*.example.com");
	free(s);
	assert_null(store_canon_domain("*.example.com", false, &why));
	assert_null(store_canon_domain("a.*.example.com", true, &why));
	assert_null(store_canon_domain("*", true, &why));
	assert_null(store_canon_domain("exa mple.com", true, &why));
	s = store_canon_email("Alice.Smith@Example.COM", &why);
	assert_string_equal(s, "alice.smith@example.com");
	free(s);
	assert_null(store_canon_email("alice", &why));
	assert_null(store_canon_email("@example.com", &why));
	assert_null(store_canon_email("a b@example.com", &why));
	s = store_canon_email("\"John Doe\"@Example.com", &why);
	assert_string_equal(s, "\"john doe\"@example.com");
	free(s);
	assert_null(store_canon_email("a@exa_mple..com", &why));
	s = store_canon_target("*.example.com", &why);
	assert_string_equal(s, "*.example.com");
	free(s);
	assert_int_equal(store_canon_fpr("sha256:AB:cd:"
					 "0123456789abcdef"
					 "0123456789abcdef0123456789abcdef"
					 "0123456789ab",
			     fpr, &why),
	    0);
	assert_string_equal(fpr,
	    "abcd0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789ab");
	assert_int_equal(store_canon_fpr("abc", fpr, &why), -1);
	assert_int_equal(store_canon_fpr("zz"
					 "0123456789abcdef0123456789abcdef"
					 "0123456789abcdef0123456789ab",
			     fpr, &why),
	    -1);
}

static void
domains_users_props(void **state)
{
	struct store *st = *state;
	struct store_props props;
	struct strlist l = { 0 };
	bool exists;

	OK(store_domain_add(st, "Example.com", error_r));
	OK(store_domain_add(st, "*.example.com", error_r));
	FAILS(store_domain_add(st, "example.COM", error_r), "already exists");
	FAILS(store_domain_add(st, "not a domain", error_r), "not a domain");
	OK(store_domain_list(st, &l, error_r));
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0], "*.example.com");
	assert_string_equal(l.v[1], "example.com");
	strlist_free(&l);
	OK(store_domain_exists(st, "EXAMPLE.com", &exists, error_r));
	assert_true(exists);
	OK(store_domain_exists(st, "other.test", &exists, error_r));
	assert_false(exists);

	OK(store_prop_set(
	    st, STORE_DOMAIN, "example.com", "locality", "internal", error_r));
	OK(store_prop_set(st, STORE_DOMAIN, "example.com", "locality",
	    "external", error_r)); /* replaces */
	FAILS(store_prop_set(st, STORE_DOMAIN, "other.test", "locality",
		  "internal", error_r),
	    "no such domain: other.test");
	FAILS(store_prop_set(
		  st, STORE_DOMAIN, "example.com", "Bad-Name", "x", error_r),
	    "bad property name");
	FAILS(store_prop_set(
		  st, STORE_DOMAIN, "example.com", "comment", "a\nb", error_r),
	    "control characters");
	OK(store_props_get(st, STORE_DOMAIN, "example.com", &props, error_r));
	assert_int_equal(props.n, 1);
	assert_string_equal(store_props_find(&props, "locality"), "external");
	store_props_free(&props);

	OK(store_user_add(st, "Bob@Example.com", error_r));
	FAILS(store_user_add(st, "bob@example.com", error_r), "already exists");
	OK(store_user_add(st, "carol@other.test", error_r));
	OK(store_user_list(st, "EXAMPLE", &l, error_r));
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0], "bob@example.com");
	strlist_free(&l);
	OK(store_prop_set(
	    st, STORE_USER, "bob@example.com", "sign_mode", "always", error_r));
	FAILS(store_prop_set(st, STORE_USER, "nobody@example.com", "sign_mode",
		  "always", error_r),
	    "no such user");
	OK(store_prop_set(
	    st, STORE_GLOBAL, NULL, "encrypt_mode", "mandatory", error_r));
	OK(store_props_get(st, STORE_GLOBAL, NULL, &props, error_r));
	assert_string_equal(
	    store_props_find(&props, "encrypt_mode"), "mandatory");
	store_props_free(&props);

	/* Unset: back to inherit; unknown owner is an error. */
	OK(store_prop_unset(
	    st, STORE_USER, "bob@example.com", "sign_mode", error_r));
	OK(store_prop_unset(
	    st, STORE_USER, "bob@example.com", "sign_mode", error_r));
	FAILS(store_prop_unset(
		  st, STORE_USER, "x@example.com", "sign_mode", error_r),
	    "no such user");
	OK(store_props_get(st, STORE_USER, "bob@example.com", &props, error_r));
	assert_int_equal(props.n, 0);
	store_props_free(&props);

	/* Deleting removes the properties with the record. */
	OK(store_domain_delete(st, "example.com", error_r));
	FAILS(
	    store_domain_delete(st, "example.com", error_r), "no such domain");
	OK(store_domain_add(st, "example.com", error_r));
	OK(store_props_get(st, STORE_DOMAIN, "example.com", &props, error_r));
	assert_int_equal(props.n, 0);
	store_props_free(&props);
	OK(store_user_delete(st, "BOB@example.com", error_r));
	FAILS(
	    store_user_delete(st, "bob@example.com", error_r), "no such user");
}

static void
fill_cert(struct store_cert *c, char fill, int64_t nb, int64_t na)
{
	static unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };

	memset(c, 0, sizeof(*c));
	memset(c->fpr, fill, STORE_FPR_LEN);
	c->fpr[STORE_FPR_LEN] = '\0';
	c->kind = STORE_CERT_END;
	c->der = der;
	c->der_len = sizeof(der);
	c->subject = (char *)"CN=Test";
	c->issuer = (char *)"CN=CA";
	c->serial = (char *)"01";
	strcpy(c->subject_hash, "00000001");
	strcpy(c->issuer_hash, "00000002");
	memset(c->spki_sha256, 'f', STORE_FPR_LEN);
	c->not_before = nb;
	c->not_after = na;
	c->key_usage = STORE_KU_ABSENT;
}

static void
certs_keys_bindings(void **state)
{
	struct store *st = *state;
	struct store_cert c, *got;
	struct store_cert_query q = { .kind = -1 };
	struct store_certs found;
	struct strlist l = { 0 };
	unsigned char blob[] = "sealed-blob", *b;
	char fpr[STORE_FPR_LEN + 1];
	size_t blen;
	bool added;

	fill_cert(&c, 'a', 100, 200);
	strlist_add(&c.emails, "alice@example.com");
	strlist_add(&c.emails, "al@example.com");
	OK(store_cert_put(st, &c, &added, error_r));
	assert_true(added);
	OK(store_cert_put(st, &c, &added, error_r));
	assert_false(added);
	strlist_free(&c.emails);
	strlist_add(&c.emails, "Upper@Example.com");
	FAILS(store_cert_put(st, &c, &added, error_r), "not canonical");
	strlist_free(&c.emails);
	fill_cert(&c, 'b', 150, 300);
	c.kind = STORE_CERT_INTERMEDIATE;
	OK(store_cert_put(st, &c, &added, error_r));
	/* A root import raises an intermediate to a root. */
	c.kind = STORE_CERT_ROOT;
	OK(store_cert_put(st, &c, &added, error_r));
	assert_false(added);

	memset(fpr, 'a', STORE_FPR_LEN);
	fpr[STORE_FPR_LEN] = '\0';
	OK(store_cert_get(st, fpr, true, &got, error_r));
	assert_non_null(got);
	assert_int_equal(got->der_len, 5);
	assert_int_equal(got->emails.n, 2);
	assert_string_equal(got->emails.v[0], "al@example.com");
	assert_int_equal(got->not_after, 200);
	assert_int_equal(got->key_usage, STORE_KU_ABSENT);
	assert_false(got->has_key);
	store_cert_free(&got);
	fpr[0] = 'c';
	OK(store_cert_get(st, fpr, false, &got, error_r));
	assert_null(got);

	q.email = "ALICE@example.com";
	OK(store_cert_find(st, &q, &found, error_r));
	assert_int_equal(found.n, 1);
	assert_null(found.v[0].der);
	store_certs_free(&found);
	q.email = NULL;
	q.kind = STORE_CERT_ROOT;
	OK(store_cert_find(st, &q, &found, error_r));
	assert_int_equal(found.n, 1);
	assert_int_equal(found.v[0].fpr[0], 'b');
	store_certs_free(&found);
	q.kind = -1;
	q.expired_at_set = true;
	q.expired_at = 250;
	OK(store_cert_find(st, &q, &found, error_r));
	assert_int_equal(found.n, 1);
	assert_int_equal(found.v[0].fpr[0], 'a');
	store_certs_free(&found);
	q.expired_at_set = false;
	/* Sorted newest first. */
	OK(store_cert_find(st, &q, &found, error_r));
	assert_int_equal(found.n, 2);
	assert_int_equal(found.v[0].fpr[0], 'b');
	store_certs_free(&found);
	OK(store_cert_resolve(st, "aaaaaaaa", fpr, error_r));
	assert_int_equal(fpr[1], 'a');
	FAILS(store_cert_resolve(st, "aaaa", fpr, error_r), "at least 8");
	FAILS(
	    store_cert_resolve(st, "cccccccc", fpr, error_r), "no certificate");

	/* Keys: only for stored certificates. */
	memset(fpr, 'a', STORE_FPR_LEN);
	OK(store_key_put(st, fpr, blob, sizeof(blob), error_r));
	OK(store_key_get(st, fpr, &b, &blen, error_r));
	assert_int_equal(blen, sizeof(blob));
	assert_memory_equal(b, blob, blen);
	free(b);
	q.with_key = true;
	OK(store_cert_find(st, &q, &found, error_r));
	assert_int_equal(found.n, 1);
	assert_true(found.v[0].has_key);
	store_certs_free(&found);
	q.with_key = false;
	fpr[0] = 'c';
	FAILS(store_key_put(st, fpr, blob, sizeof(blob), error_r),
	    "no certificate");
	OK(store_key_get(st, fpr, &b, &blen, error_r));
	assert_null(b);

	/* Bindings. */
	memset(fpr, 'a', STORE_FPR_LEN);
	OK(store_bind(st, fpr, "Partner.example", error_r));
	OK(store_bind(st, fpr, "x@partner.example", error_r));
	OK(store_bind(st, fpr, "x@partner.example", error_r));
	FAILS(store_bind(st, fpr, "bad target!", error_r), "not a domain");
	OK(store_bindings(st, fpr, &l, error_r));
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0], "partner.example");
	strlist_free(&l);
	q.bound_to = "partner.example";
	OK(store_cert_find(st, &q, &found, error_r));
	assert_int_equal(found.n, 1);
	store_certs_free(&found);
	q.bound_to = NULL;
	OK(store_unbind(st, fpr, "partner.example", error_r));
	FAILS(store_unbind(st, fpr, "partner.example", error_r), "not bound");

	/* Deleting a certificate takes its key and bindings along. */
	OK(store_cert_delete(st, fpr, error_r));
	FAILS(store_cert_delete(st, fpr, error_r), "no certificate");
	OK(store_key_get(st, fpr, &b, &blen, error_r));
	assert_null(b);
	OK(store_bindings(st, fpr, &l, error_r));
	assert_int_equal(l.n, 0);
}

static void
crls_ctl_admins_meta(void **state)
{
	struct store *st = *state;
	struct store_crl crl;
	struct store_crls list;
	struct store_ctl_entry *ctl;
	struct store_admin *adm, *admins;
	enum store_ctl_status cs;
	unsigned char der[] = { 1, 2, 3 };
	char fpr[STORE_FPR_LEN + 1], *v;
	size_t n;
	bool added;

	memset(&crl, 0, sizeof(crl));
	memset(crl.fpr, '1', STORE_FPR_LEN);
	crl.issuer = (char *)"CN=CA";
	strcpy(crl.issuer_hash, "00000002");
	crl.this_update = 1000;
	crl.next_update = 2000;
	crl.der = der;
	crl.der_len = sizeof(der);
	OK(store_crl_put(st, &crl, &added, error_r));
	assert_true(added);
	OK(store_crl_put(st, &crl, &added, error_r));
	assert_false(added);
	/* A newer CRL replaces the older; an older one is refused. */
	memset(crl.fpr, '2', STORE_FPR_LEN);
	crl.this_update = 1500;
	OK(store_crl_put(st, &crl, &added, error_r));
	assert_true(added);
	memset(crl.fpr, '3', STORE_FPR_LEN);
	crl.this_update = 1200;
	FAILS(store_crl_put(st, &crl, &added, error_r), "newer CRL");
	OK(store_crl_list(st, NULL, true, &list, error_r));
	assert_int_equal(list.n, 1);
	assert_int_equal(list.v[0].fpr[0], '2');
	assert_int_equal(list.v[0].der_len, 3);
	assert_int_equal(list.v[0].next_update, 2000);
	store_crls_free(&list);
	OK(store_crl_list(st, "ffffffff", false, &list, error_r));
	assert_int_equal(list.n, 0);
	store_crls_free(&list);
	memset(fpr, '2', STORE_FPR_LEN);
	fpr[STORE_FPR_LEN] = '\0';
	OK(store_crl_delete(st, fpr, error_r));
	FAILS(store_crl_delete(st, fpr, error_r), "no CRL");

	/* The trust list needs no stored certificate. */
	memset(fpr, 'e', STORE_FPR_LEN);
	OK(store_ctl_set(st, fpr, STORE_CTL_WHITELISTED, error_r));
	OK(store_ctl_get(st, fpr, &cs, error_r));
	assert_int_equal(cs, STORE_CTL_WHITELISTED);
	OK(store_ctl_set(st, fpr, STORE_CTL_BLACKLISTED, error_r));
	OK(store_ctl_list(st, &ctl, &n, error_r));
	assert_int_equal(n, 1);
	assert_int_equal(ctl[0].status, STORE_CTL_BLACKLISTED);
	free(ctl);
	OK(store_ctl_set(st, fpr, STORE_CTL_NONE, error_r));
	FAILS(store_ctl_set(st, fpr, STORE_CTL_NONE, error_r), "not in the");
	OK(store_ctl_get(st, fpr, &cs, error_r));
	assert_int_equal(cs, STORE_CTL_NONE);

	/* Admins: the hash is kept as given. */
	OK(store_admin_add(
	    st, "admin", "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA", error_r));
	FAILS(store_admin_add(st, "admin", "x", error_r), "already exists");
	FAILS(store_admin_add(st, "bad name", "x", error_r), "admin name");
	FAILS(store_admin_add(st, "other", "", error_r), "password hash");
	OK(store_admin_get(st, "admin", &adm, error_r));
	assert_non_null(adm);
	assert_string_equal(
	    adm->password_hash, "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA");
	assert_true(adm->created > 0);
	store_admin_free(adm, 1);
	OK(store_admin_set_password(st, "admin", "$scrypt$new", error_r));
	FAILS(store_admin_set_password(st, "nobody", "$x", error_r), "no such");
	OK(store_admin_add(st, "second", "$h", error_r));
	OK(store_admin_list(st, &admins, &n, error_r));
	assert_int_equal(n, 2);
	assert_string_equal(admins[0].name, "admin");
	assert_string_equal(admins[0].password_hash, "$scrypt$new");
	store_admin_free(admins, n);
	OK(store_admin_delete(st, "second", error_r));
	FAILS(store_admin_delete(st, "second", error_r), "no such admin");
	OK(store_admin_get(st, "second", &adm, error_r));
	assert_null(adm);

	OK(store_meta_get(st, "masterkey_id", &v, error_r));
	assert_null(v);
	OK(store_meta_set(st, "masterkey_id", "abc", error_r));
	OK(store_meta_get(st, "masterkey_id", &v, error_r));
	assert_string_equal(v, "abc");
	free(v);
}

static void
generation_counter(void **state)
{
	struct store *st = *state, *other;
	struct strlist l = { 0 };
	struct store_cert c;
	uint64_t g0, g1, g2, g3;
	bool added;

	OK(store_open(uri, 0, &other, error_r));
	g0 = store_generation(st);
	assert_true(g0 >= 1);
	/* Reads leave it; it is the same through every handle. */
	OK(store_domain_list(st, &l, error_r));
	assert_int_equal(store_generation(st), g0);
	assert_int_equal(store_generation(other), g0);
	/* Each kind of write moves it, seen by this and the other handle. */
	OK(store_domain_add(st, "gen.example", error_r));
	g1 = store_generation(st);
	assert_true(g1 > g0);
	assert_int_equal(store_generation(other), g1);
	OK(store_prop_set(other, STORE_GLOBAL, NULL, "comment", "x", error_r));
	g2 = store_generation(st);
	assert_true(g2 > g1);
	fill_cert(&c, 'd', 1, 2);
	OK(store_cert_put(st, &c, &added, error_r));
	g3 = store_generation(other);
	assert_true(g3 > g2);
	OK(store_admin_add(other, "gen", "$h", error_r));
	assert_true(store_generation(st) > g3);
	g3 = store_generation(st);
	/* A rolled back transaction leaves no trace. */
	OK(store_begin(st, error_r));
	OK(store_domain_add(st, "rolled.example", error_r));
	store_rollback(st);
	assert_int_equal(store_generation(st), g3);
	assert_int_equal(store_generation(other), g3);
	OK(store_begin(st, error_r));
	FAILS(store_begin(st, error_r), "already");
	OK(store_domain_add(st, "committed.example", error_r));
	OK(store_commit(st, error_r));
	assert_true(store_generation(other) > g3);
	store_close(&other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    schema_from_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    open_missing_and_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    concurrent_first_open, setup, teardown),
		cmocka_unit_test(canonical_names),
		cmocka_unit_test_setup_teardown(
		    domains_users_props, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    certs_keys_bindings, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    crls_ctl_admins_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    generation_counter, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
