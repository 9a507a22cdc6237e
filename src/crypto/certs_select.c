/*
 * Validation of certificates against the store (roots, intermediates,
 * CRLs, trust list) and the choice of certificates for encryption,
 * signing and decryption. The rules are in certs.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "crypto/certs.h"
#include "store/masterkey.h"

struct crl_entry {
	X509_CRL *crl;
	EVP_PKEY *verified_by; /* the issuer key that verified it once */
};

struct certs {
	struct store *st;
	uint64_t gen; /* of what is loaded; 0: nothing */
	X509_STORE *roots;
	STACK_OF(X509) * intermediates;
	struct crl_entry *crls;
	size_t ncrls;
	struct store_ctl_entry *ctl; /* sorted by fingerprint */
	size_t nctl;
};

static char errbuf[512];

static void
certs_unload(struct certs *cs)
{
	X509_STORE_free(cs->roots);
	cs->roots = NULL;
	sk_X509_pop_free(cs->intermediates, X509_free);
	cs->intermediates = NULL;
	for (size_t i = 0; i < cs->ncrls; i++) {
		X509_CRL_free(cs->crls[i].crl);
		EVP_PKEY_free(cs->crls[i].verified_by);
	}
	free(cs->crls);
	cs->crls = NULL;
	cs->ncrls = 0;
	free(cs->ctl);
	cs->ctl = NULL;
	cs->nctl = 0;
	cs->gen = 0;
}

static X509 *
der_to_x509(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	ERR_clear_error();
	return x;
}

static int
load_certs(struct certs *cs, enum store_cert_kind kind, const char **error_r)
{
	struct store_cert_query q = { .kind = (int)kind, .with_der = true };
	struct store_certs found;

	if (store_cert_find(cs->st, &q, &found, error_r) == -1)
		return -1;
	for (size_t i = 0; i < found.n; i++) {
		X509 *x = der_to_x509(found.v[i].der, found.v[i].der_len);
		if (x == NULL) {
			msg_warn("store: certificate %s does not parse: "
				 "skipped",
			    found.v[i].fpr);
			continue;
		}
		if (kind == STORE_CERT_ROOT) {
			X509_STORE_add_cert(cs->roots, x); /* takes a ref */
			X509_free(x);
		} else if (sk_X509_push(cs->intermediates, x) == 0)
			msg_fatal("out of memory");
	}
	store_certs_free(&found);
	ERR_clear_error();
	return 0;
}

static int
load_crls(struct certs *cs, const char **error_r)
{
	struct store_crls found;

	if (store_crl_list(cs->st, NULL, true, &found, error_r) == -1)
		return -1;
	cs->crls = xcalloc(found.n, sizeof(*cs->crls));
	for (size_t i = 0; i < found.n; i++) {
		const unsigned char *p = found.v[i].der;
		X509_CRL *crl =
		    d2i_X509_CRL(NULL, &p, (long)found.v[i].der_len);
		if (crl == NULL) {
			msg_warn("store: CRL %s does not parse: skipped",
			    found.v[i].fpr);
			continue;
		}
		cs->crls[cs->ncrls++].crl = crl;
	}
	store_crls_free(&found);
	ERR_clear_error();
	return 0;
}

/* Loads what validation needs, again when the store changed. */
static int
certs_refresh(struct certs *cs, const char **error_r)
{
	uint64_t gen = store_generation(cs->st);

	if (gen != 0 && gen == cs->gen)
		return 0;
	certs_unload(cs);
	if ((cs->roots = X509_STORE_new()) == NULL ||
	    (cs->intermediates = sk_X509_new_null()) == NULL)
		msg_fatal("out of memory");
	if (load_certs(cs, STORE_CERT_ROOT, error_r) == -1 ||
	    load_certs(cs, STORE_CERT_INTERMEDIATE, error_r) == -1 ||
	    load_crls(cs, error_r) == -1 ||
	    store_ctl_list(cs->st, &cs->ctl, &cs->nctl, error_r) == -1) {
		certs_unload(cs);
		return -1;
	}
	cs->gen = gen;
	return 0;
}

int
certs_open(struct store *st, struct certs **cs_r, const char **error_r)
{
	struct certs *cs = xcalloc(1, sizeof(*cs));

	cs->st = st;
	*cs_r = cs;
	return 0;
}

void
certs_close(struct certs **csp)
{
	struct certs *cs = *csp;

	if (cs == NULL)
		return;
	*csp = NULL;
	certs_unload(cs);
	free(cs);
}

static int
ctl_cmp(const void *a, const void *b)
{
	return strcmp(a, ((const struct store_ctl_entry *)b)->fpr);
}

static enum store_ctl_status
ctl_status(const struct certs *cs, X509 *x)
{
	char fpr[STORE_FPR_LEN + 1];
	const struct store_ctl_entry *e;

	if (cs->nctl == 0)
		return STORE_CTL_NONE;
	certs_fpr(x, fpr);
	e = bsearch(fpr, cs->ctl, cs->nctl, sizeof(*cs->ctl), ctl_cmp);
	return e != NULL ? e->status : STORE_CTL_NONE;
}

static void verdict_set(struct cert_verdict *v, enum cert_status s,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
verdict_set(struct cert_verdict *v, enum cert_status s, const char *fmt, ...)
{
	va_list ap;

	v->status = s;
	va_start(ap, fmt);
	vsnprintf(v->detail, sizeof(v->detail), fmt, ap);
	va_end(ap);
}

static void
fmt_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static bool
check_period(X509 *x, time_t now, struct cert_verdict *v)
{
	char when[64];

	if (X509_cmp_time(X509_get0_notBefore(x), &now) == 0 ||
	    X509_cmp_time(X509_get0_notAfter(x), &now) == 0) {
		verdict_set(v, CERT_UNTRUSTED, "an unreadable validity period");
		return false;
	}
	if (X509_cmp_time(X509_get0_notBefore(x), &now) > 0) {
		fmt_time(
		    certs_time(X509_get0_notBefore(x)), when, sizeof(when));
		verdict_set(v, CERT_NOT_YET_VALID, "not valid before %s", when);
		return false;
	}
	if (X509_cmp_time(X509_get0_notAfter(x), &now) < 0) {
		fmt_time(certs_time(X509_get0_notAfter(x)), when, sizeof(when));
		verdict_set(v, CERT_EXPIRED, "expired %s", when);
		return false;
	}
	return true;
}

/*
 * RFC 8550 4.4.2 and RFC 5280 4.2.1.3: keyUsage, when present, must
 * allow the use; RFC 8550 4.4.4: extendedKeyUsage, when present, must
 * allow email protection.
 */
static bool
check_usage(X509 *x, enum cert_purpose purpose, struct cert_verdict *v)
{
	uint32_t ku = X509_get_key_usage(x);
	uint32_t xku = X509_get_extended_key_usage(x);
	int type = EVP_PKEY_get_base_id(X509_get0_pubkey(x));

	if (purpose == CERT_PURPOSE_ANY)
		return true;
	if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) &&
	    !(xku & (XKU_SMIME | XKU_ANYEKU))) {
		verdict_set(v, CERT_BAD_KEY_USAGE,
		    "extendedKeyUsage does not allow emailProtection");
		return false;
	}
	if (purpose == CERT_PURPOSE_SIGN) {
		if (!(ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION))) {
			verdict_set(v, CERT_BAD_KEY_USAGE,
			    "keyUsage allows neither digitalSignature nor "
			    "nonRepudiation");
			return false;
		}
		return true;
	}
	if (type == EVP_PKEY_RSA || type == EVP_PKEY_RSA_PSS) {
		if (!(ku & KU_KEY_ENCIPHERMENT)) {
			verdict_set(v, CERT_BAD_KEY_USAGE,
			    "keyUsage does not allow keyEncipherment");
			return false;
		}
		return true;
	}
	if (type == EVP_PKEY_EC) {
		if (!(ku & KU_KEY_AGREEMENT)) {
			verdict_set(v, CERT_BAD_KEY_USAGE,
			    "keyUsage does not allow keyAgreement");
			return false;
		}
		return true;
	}
	verdict_set(
	    v, CERT_BAD_KEY_USAGE, "a %s key cannot encrypt", OBJ_nid2sn(type));
	return false;
}

/* Builds the path to a stored root; the chain on success. */
static bool
check_path(struct certs *cs, X509 *x, STACK_OF(X509) * extra, time_t now,
    struct cert_verdict *v, STACK_OF(X509) * *chain_r)
{
	STACK_OF(X509) *untrusted = sk_X509_dup(cs->intermediates);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int err, depth;
	bool ok = false;

	if (untrusted == NULL || ctx == NULL)
		msg_fatal("out of memory");
	for (int i = 0; i < sk_X509_num(extra); i++)
		if (!sk_X509_push(untrusted, sk_X509_value(extra, i)))
			msg_fatal("out of memory");
	if (!X509_STORE_CTX_init(ctx, cs->roots, x, untrusted))
		msg_fatal("X509_STORE_CTX_init failed");
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
	X509_VERIFY_PARAM_set_flags(
	    X509_STORE_CTX_get0_param(ctx), X509_V_FLAG_CHECK_SS_SIGNATURE);
	if (X509_verify_cert(ctx) == 1) {
		*chain_r = X509_STORE_CTX_get1_chain(ctx);
		ok = true;
		goto out;
	}
	err = X509_STORE_CTX_get_error(ctx);
	depth = X509_STORE_CTX_get_error_depth(ctx);
	if (err == X509_V_ERR_CERT_HAS_EXPIRED)
		verdict_set(v, CERT_EXPIRED,
		    "a certificate of its path (depth %d) expired", depth);
	else if (err == X509_V_ERR_CERT_NOT_YET_VALID)
		verdict_set(v, CERT_NOT_YET_VALID,
		    "a certificate of its path (depth %d) is not yet valid",
		    depth);
	else
		verdict_set(v, CERT_UNTRUSTED, "no path to a trusted root: %s",
		    X509_verify_cert_error_string(err));
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	ERR_clear_error();
	return ok;
}

static const char *
crl_reason(const X509_REVOKED *rev)
{
	ASN1_ENUMERATED *e =
	    X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, NULL, NULL);
	static const char *const names[] = { "unspecified", "keyCompromise",
		"cACompromise", "affiliationChanged", "superseded",
		"cessationOfOperation", "certificateHold", "7", "removeFromCRL",
		"privilegeWithdrawn", "aACompromise" };
	long r = e != NULL ? ASN1_ENUMERATED_get(e) : 0;

	ASN1_ENUMERATED_free(e);
	return r >= 0 && (size_t)r < nitems(names) ? names[r] : "unspecified";
}

/* Whether a CRL is signed by issuer; remembered per CRL. */
static bool
crl_signed_by(struct crl_entry *e, X509 *issuer)
{
	EVP_PKEY *key = X509_get0_pubkey(issuer);

	if (key == NULL ||
	    X509_NAME_cmp(X509_CRL_get_issuer(e->crl),
		X509_get_subject_name(issuer)) != 0)
		return false;
	if (e->verified_by != NULL && EVP_PKEY_eq(e->verified_by, key) == 1)
		return true;
	if (X509_CRL_verify(e->crl, key) != 1) {
		ERR_clear_error();
		return false;
	}
	EVP_PKEY_free(e->verified_by);
	EVP_PKEY_up_ref(key);
	e->verified_by = key;
	return true;
}

/* RFC 5280 6.3: each certificate of the path against its issuer's CRL. */
static bool
check_revocation(
    struct certs *cs, STACK_OF(X509) * chain, struct cert_verdict *v)
{
	for (int i = 0; i + 1 < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		X509 *issuer = sk_X509_value(chain, i + 1);
		for (size_t k = 0; k < cs->ncrls; k++) {
			X509_REVOKED *rev = NULL;
			char when[64], *iss;
			if (!crl_signed_by(&cs->crls[k], issuer) ||
			    X509_CRL_get0_by_cert(cs->crls[k].crl, &rev, x) !=
				1)
				continue;
			fmt_time(
			    certs_time(X509_REVOKED_get0_revocationDate(rev)),
			    when, sizeof(when));
			iss = certs_name_text(X509_get_subject_name(issuer));
			verdict_set(v, CERT_REVOKED,
			    "%srevoked %s (%s) by the CRL of %s",
			    i == 0 ? "" : "its issuer is ", when,
			    crl_reason(rev), iss);
			free(iss);
			ERR_clear_error();
			return false;
		}
	}
	ERR_clear_error();
	return true;
}

static bool
check_chain_ctl(
    const struct certs *cs, STACK_OF(X509) * chain, struct cert_verdict *v)
{
	for (int i = 1; i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);
		if (ctl_status(cs, c) == STORE_CTL_BLACKLISTED) {
			char *s = certs_name_text(X509_get_subject_name(c));
			verdict_set(v, CERT_BLACKLISTED,
			    "its issuer %s is blacklisted", s);
			free(s);
			return false;
		}
	}
	return true;
}

int
certs_validate(struct certs *cs, X509 *x, STACK_OF(X509) * extra,
    enum cert_purpose purpose, time_t now, struct cert_verdict *v,
    STACK_OF(X509) * *chain_r, const char **error_r)
{
	STACK_OF(X509) *chain = NULL;
	enum store_ctl_status ctl;

	memset(v, 0, sizeof(*v));
	if (chain_r != NULL)
		*chain_r = NULL;
	if (certs_refresh(cs, error_r) == -1)
		return -1;
	/* Caches the extensions; an inconsistent set fails here. */
	if (X509_check_purpose(x, -1, 0) != 1 ||
	    (X509_get_extension_flags(x) & EXFLAG_INVALID)) {
		ERR_clear_error();
		verdict_set(v, CERT_UNTRUSTED, "invalid extensions");
		return 0;
	}
	ctl = ctl_status(cs, x);
	if (ctl == STORE_CTL_BLACKLISTED) {
		verdict_set(v, CERT_BLACKLISTED,
		    "blacklisted in the trust "
		    "list");
		return 0;
	}
	if (!check_period(x, now, v) || !check_usage(x, purpose, v))
		return 0;
	if (ctl == STORE_CTL_WHITELISTED) {
		v->whitelisted = true;
		verdict_set(v, CERT_VALID, "whitelisted in the trust list");
		if (chain_r != NULL) {
			if ((*chain_r = sk_X509_new_null()) == NULL ||
			    !sk_X509_push(*chain_r, x))
				msg_fatal("out of memory");
			X509_up_ref(x);
		}
		return 0;
	}
	if (!check_path(cs, x, extra, now, v, &chain))
		return 0;
	if (check_chain_ctl(cs, chain, v) && check_revocation(cs, chain, v)) {
		verdict_set(v, CERT_VALID, "valid");
		if (chain_r != NULL) {
			*chain_r = chain;
			chain = NULL;
		}
	}
	sk_X509_pop_free(chain, X509_free);
	return 0;
}

/* Selection. */

struct candidates {
	struct store_cert *v;
	bool *by_address, *by_binding;
	size_t n;
};

static void
cand_add(struct candidates *c, struct store_certs *found, bool by_address)
{
	for (size_t i = 0; i < found->n; i++) {
		size_t k;
		for (k = 0; k < c->n; k++)
			if (strcmp(c->v[k].fpr, found->v[i].fpr) == 0)
				break;
		if (k == c->n) {
			c->v = xreallocarray(c->v, c->n + 1, sizeof(*c->v));
			c->by_address = xreallocarray(
			    c->by_address, c->n + 1, sizeof(bool));
			c->by_binding = xreallocarray(
			    c->by_binding, c->n + 1, sizeof(bool));
			c->v[k] = found->v[i];
			c->by_address[k] = c->by_binding[k] = false;
			c->n++;
			/* Moved into c: not freed with found. */
			memset(&found->v[i], 0, sizeof(found->v[i]));
		}
		if (by_address)
			c->by_address[k] = true;
		else
			c->by_binding[k] = true;
	}
	store_certs_free(found);
}

static void
cand_free(struct candidates *c)
{
	struct store_certs all = { c->v, c->n };

	store_certs_free(&all);
	free(c->by_address);
	free(c->by_binding);
	memset(c, 0, sizeof(*c));
}

static int
cand_query(struct certs *cs, struct candidates *c, const char *email,
    const char *bound_to, bool with_key, const char **error_r)
{
	/*
	 * Any kind: a self-signed certificate made as a CA (the default of
	 * "openssl req -x509") may be a user's; validation decides.
	 */
	struct store_cert_query q = {
		.kind = -1, .with_der = true, .with_key = with_key
	};
	struct store_certs found;

	q.email = email;
	q.bound_to = bound_to;
	if (store_cert_find(cs->st, &q, &found, error_r) == -1)
		return -1;
	cand_add(c, &found, email != NULL);
	return 0;
}

/*
 * The candidates of an address: by its addresses, then bound to the
 * address, its domain and each wildcard that covers the domain.
 */
static int
candidates_of(struct certs *cs, const char *email, bool with_key,
    struct candidates *c, const char **error_r)
{
	char *addr = store_canon_email(email, error_r);
	const char *domain, *p;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	if (addr == NULL)
		return -1;
	domain = strrchr(addr, '@') + 1;
	if (cand_query(cs, c, addr, NULL, with_key, error_r) == -1 ||
	    cand_query(cs, c, NULL, addr, with_key, error_r) == -1 ||
	    cand_query(cs, c, NULL, domain, with_key, error_r) == -1)
		goto out;
	for (p = domain; (p = strchr(p, '.')) != NULL; p++) {
		char *w = xasprintf("*%s", p);
		int r = cand_query(cs, c, NULL, w, with_key, error_r);
		free(w);
		if (r == -1)
			goto out;
	}
	rc = 0;
out:
	free(addr);
	if (rc == -1)
		cand_free(c);
	return rc;
}

static void
choice_add(struct cert_choice **v, size_t *n, struct cert_choice *ch)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = *ch;
}

static int
choice_cmp(const void *a, const void *b)
{
	const struct cert_choice *x = a, *y = b;

	if (x->not_before != y->not_before)
		return x->not_before > y->not_before ? -1 : 1;
	if (x->not_after != y->not_after)
		return x->not_after > y->not_after ? -1 : 1;
	return strcmp(x->fpr, y->fpr);
}

static int
select_from(struct certs *cs, struct candidates *c, enum cert_purpose purpose,
    time_t now, struct cert_selection *sel, const char **error_r)
{
	for (size_t i = 0; i < c->n; i++) {
		struct cert_choice ch;
		memset(&ch, 0, sizeof(ch));
		memcpy(ch.fpr, c->v[i].fpr, sizeof(ch.fpr));
		ch.has_key = c->v[i].has_key;
		ch.by_address = c->by_address[i];
		ch.by_binding = c->by_binding[i];
		ch.not_before = c->v[i].not_before;
		ch.not_after = c->v[i].not_after;
		if ((ch.cert = der_to_x509(c->v[i].der, c->v[i].der_len)) ==
		    NULL) {
			verdict_set(&ch.verdict, CERT_UNTRUSTED,
			    "the stored certificate does not parse");
			choice_add(&sel->rejected, &sel->nrejected, &ch);
			continue;
		}
		if (certs_validate(cs, ch.cert, NULL, purpose, now, &ch.verdict,
			&ch.chain, error_r) == -1) {
			X509_free(ch.cert);
			return -1;
		}
		if (ch.verdict.status == CERT_VALID)
			choice_add(&sel->v, &sel->n, &ch);
		else
			choice_add(&sel->rejected, &sel->nrejected, &ch);
	}
	if (sel->n > 1)
		qsort(sel->v, sel->n, sizeof(*sel->v), choice_cmp);
	return 0;
}

static int
select_for(struct certs *cs, const char *email, bool with_key,
    enum cert_purpose purpose, time_t now, struct cert_selection *sel,
    const char **error_r)
{
	struct candidates c;
	int rc;

	memset(sel, 0, sizeof(*sel));
	if (certs_refresh(cs, error_r) == -1 ||
	    candidates_of(cs, email, with_key, &c, error_r) == -1)
		return -1;
	rc = select_from(cs, &c, purpose, now, sel, error_r);
	cand_free(&c);
	if (rc == -1)
		certs_selection_free(sel);
	return rc;
}

int
certs_select_encrypt(struct certs *cs, const char *email, time_t now,
    struct cert_selection *sel, const char **error_r)
{
	return select_for(
	    cs, email, false, CERT_PURPOSE_ENCRYPT, now, sel, error_r);
}

int
certs_select_sign(struct certs *cs, const char *email, time_t now,
    struct cert_selection *sel, const char **error_r)
{
	return select_for(
	    cs, email, true, CERT_PURPOSE_SIGN, now, sel, error_r);
}

int
certs_select_decrypt(struct certs *cs, const char *email, bool strict,
    time_t now, struct cert_selection *sel, const char **error_r)
{
	struct store_cert_query q = {
		.kind = -1, .with_der = true, .with_key = true
	};
	struct store_certs found;

	if (strict)
		return select_for(
		    cs, email, true, CERT_PURPOSE_ENCRYPT, now, sel, error_r);
	memset(sel, 0, sizeof(*sel));
	if (store_cert_find(cs->st, &q, &found, error_r) == -1)
		return -1;
	for (size_t i = 0; i < found.n; i++) {
		struct cert_choice ch;
		memset(&ch, 0, sizeof(ch));
		memcpy(ch.fpr, found.v[i].fpr, sizeof(ch.fpr));
		ch.has_key = true;
		ch.not_before = found.v[i].not_before;
		ch.not_after = found.v[i].not_after;
		if ((ch.cert = der_to_x509(
			 found.v[i].der, found.v[i].der_len)) == NULL)
			continue;
		verdict_set(&ch.verdict, CERT_VALID,
		    "not validated (smime_strict = no)");
		choice_add(&sel->v, &sel->n, &ch);
	}
	store_certs_free(&found);
	return 0;
}

static void
choices_free(struct cert_choice *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		X509_free(v[i].cert);
		sk_X509_pop_free(v[i].chain, X509_free);
	}
	free(v);
}

void
certs_selection_free(struct cert_selection *sel)
{
	choices_free(sel->v, sel->n);
	choices_free(sel->rejected, sel->nrejected);
	memset(sel, 0, sizeof(*sel));
}

int
certs_get(struct certs *cs, const char *fpr, X509 **x_r, const char **error_r)
{
	struct store_cert *c = NULL;

	*x_r = NULL;
	if (store_cert_get(cs->st, fpr, true, &c, error_r) == -1)
		return -1;
	if (c != NULL)
		*x_r = der_to_x509(c->der, c->der_len);
	store_cert_free(&c);
	return 0;
}

int
certs_load_key(struct certs *cs, const struct masterkey *mk, const char *fpr,
    EVP_PKEY **key_r, const char **error_r)
{
	unsigned char *blob = NULL, *der = NULL;
	const unsigned char *p;
	PKCS8_PRIV_KEY_INFO *p8;
	size_t blen = 0, dlen = 0;
	char aad[128];
	X509 *x = NULL;
	int rc;

	*key_r = NULL;
	if (store_key_get(cs->st, fpr, &blob, &blen, error_r) == -1)
		return -1;
	if (blob == NULL) {
		snprintf(errbuf, sizeof(errbuf), "no private key for %s", fpr);
		*error_r = errbuf;
		return -1;
	}
	snprintf(aad, sizeof(aad), "mailseal private key v1 %s", fpr);
	rc = masterkey_unseal(mk, aad, blob, blen, &der, &dlen, error_r);
	free(blob);
	if (rc == -1)
		return -1;
	p = der;
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)dlen);
	*key_r = p8 != NULL ? EVP_PKCS82PKEY(p8) : NULL;
	PKCS8_PRIV_KEY_INFO_free(p8);
	xfree_secret(der, dlen);
	/* The key must be the certificate's: a sealed blob is no proof. */
	if (*key_r != NULL &&
	    (certs_get(cs, fpr, &x, error_r) == -1 || x == NULL ||
		EVP_PKEY_eq(X509_get0_pubkey(x), *key_r) != 1)) {
		EVP_PKEY_free(*key_r);
		*key_r = NULL;
	}
	X509_free(x);
	ERR_clear_error();
	if (*key_r == NULL) {
		snprintf(errbuf, sizeof(errbuf),
		    "the stored key of %s does not load or does not match",
		    fpr);
		*error_r = errbuf;
		return -1;
	}
	return 0;
}
