/*
 * The decision for each recipient of a message (docs/architecture.md,
 * "The decision table"). The recipient's locality chooses the path;
 * recipient properties decide encryption and decryption, the sender's
 * decide signing and the subject trigger (DESIGN.md section 4).
 * Recipients whose decisions are equal share one output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "common/log.h"
#include "common/util.h"
#include "crypto/smime.h"
#include "engine/engine_int.h"

/* The top of the message. */

/* The header block of the content: up to the blank line (or all). */
static int
read_header(const struct mime_src *src, char **buf_r, size_t *len_r)
{
	size_t cap = 16384, len = 0, want;
	char *buf = xmalloc(cap + 1), *end;

	for (;;) {
		want = cap - len;
		if (want > src->len - len)
			want = (size_t)(src->len - len);
		if (want > 0 &&
		    mime_src_read(src, len, buf + len, want) == -1) {
			free(buf);
			return -1;
		}
		len += want;
		buf[len] = '\0';
		if ((end = memmem(buf, len, "\r\n\r\n", 4)) != NULL) {
			len = (size_t)(end - buf) + 2;
			break;
		}
		if (len == src->len || cap >= MIME_MAX_HEADER)
			break;
		cap *= 2;
		buf = xreallocarray(buf, cap + 1, 1);
	}
	/* A message that starts with its blank line has no fields. */
	if (len >= 2 && buf[0] == '\r' && buf[1] == '\n')
		len = 0;
	buf[len] = '\0';
	*buf_r = buf;
	*len_r = len;
	return 0;
}

/* Whether a top-level Content-Type can be S/MIME (RFC 8551 3.2.1). */
static bool
maybe_smime(const char *ctype)
{
	return strcasestr(ctype, "multipart/signed") != NULL ||
	    strcasestr(ctype, "pkcs7-mime") != NULL ||
	    (strcasestr(ctype, "octet-stream") != NULL &&
		strcasestr(ctype, ".p7m") != NULL);
}

int
engine_read_top(struct job *j, const char **error_r)
{
	struct msg_top *top = &j->top;
	struct mime_field f;
	struct smime_info info;
	bool smime = false;
	size_t len, pos = 0;
	char *hdr, *v;

	if (read_header(&j->src, &hdr, &len) == -1) {
		*error_r = "cannot read the message";
		return -1;
	}
	while (mime_field_next(hdr, len, &pos, &f)) {
		if (mime_is_info_field(&f))
			top->info_fields = true;
		else if (mime_field_is(&f, "From") && top->from == NULL) {
			v = mime_field_value(&f);
			top->from = mime_from_mailbox(v);
			free(v);
		} else if (mime_field_is(&f, "Subject") &&
		    top->subject == NULL) {
			v = mime_field_value(&f);
			if (strlen(v) <= MIME_MAX_VALUE)
				top->subject = v;
			else
				free(v);
		} else if (mime_field_is(&f, "Content-Type")) {
			v = mime_field_value(&f);
			smime |= maybe_smime(v);
			free(v);
		}
	}
	free(hdr);
	top->form = SMIME_FORM_NONE;
	/* Only what may be S/MIME is scanned as a whole: the hot path. */
	if (smime) {
		if (smime_inspect(&j->src, &info, error_r) == -1)
			top->form = SMIME_FORM_OTHER;
		else
			top->form = info.form;
	}
	return 0;
}

/* Plans. */

void
engine_fpr_short(const char *fpr, char out[24])
{
	snprintf(out, 24, "sha256:%.16s", fpr);
}

static void
plan_set(struct plan *p, enum plan_kind kind, const char *key, char *note)
{
	p->kind = kind;
	free(p->key);
	p->key = xstrdup(key);
	free(p->note);
	p->note = note;
}

/* Why a selection found no valid certificate, for the log and the DSN. */
static char *
rejections(const struct cert_selection *sel)
{
	char *s = NULL, *n, fs[24];

	if (sel == NULL || sel->nrejected == 0)
		return xstrdup("no certificate");
	for (size_t i = 0; i < sel->nrejected && i < 8; i++) {
		const struct cert_choice *c = &sel->rejected[i];
		engine_fpr_short(c->fpr, fs);
		n = xasprintf("%s%s%s %s%s%s%s", s != NULL ? s : "",
		    s != NULL ? "; " : "", fs,
		    certs_status_name(c->verdict.status),
		    c->verdict.detail[0] != '\0' ? " (" : "", c->verdict.detail,
		    c->verdict.detail[0] != '\0' ? ")" : "");
		free(s);
		s = n;
	}
	return s;
}

/*
 * The sender's signing key, looked up once, when a recipient needs it:
 * 1 found, 0 none (logged: the message goes unsigned), -1 the store
 * failed (the message is deferred: what policy asks is not dropped
 * because a lookup failed).
 */
static int
signer_get(struct job *j, const char **error_r)
{
	struct signer *s = &j->signer;
	const struct cert_selection *sel = NULL;
	const char *md;
	char *r;

	if (s->looked_up)
		return s->ok ? 1 : 0;
	md = policy_get(j->sender_pol, PROP_SMIME_SIGNING_ALGORITHM);
	if (j->sender == NULL)
		s->why = xstrdup("the message has no sender address");
	else if (!policy_bool(j->sender_pol, PROP_SMIME_ENABLED))
		s->why = xstrdup("S/MIME is disabled for the sender");
	else if (engine_select_sign(j->e, j->sender, &sel, error_r) == -1)
		return -1;
	else if (sel->n == 0) {
		r = rejections(sel);
		s->why = xasprintf("no valid signing certificate with a key: "
				   "%s",
		    r);
		free(r);
	} else {
		if (engine_key(j->e, sel->v[0].fpr, &s->key, error_r) == -1)
			return -1;
		s->cert = sel->v[0].cert;
		s->chain = sel->v[0].chain;
		s->md = smime_digest_parse(md);
		memcpy(s->fpr, sel->v[0].fpr, sizeof(s->fpr));
		s->ok = true;
	}
	s->looked_up = true;
	if (!s->ok)
		msg_info("%s: engine=smime signing skipped for <%s>: %s",
		    j->qid, j->sender != NULL ? j->sender : "", s->why);
	return s->ok ? 1 : 0;
}

/*
 * additional_certificates of the recipient (key escrow). One that is no
 * longer stored is left out with a warning (setting the property checks
 * that they are); a store that fails defers the message.
 */
static int
add_additional(struct job *j, const struct policy *pol, struct plan *p,
    const char **error_r)
{
	struct strlist fprs = { 0 };
	X509 *x;
	int rc = 0;

	policy_list(pol, PROP_ADDITIONAL_CERTIFICATES, &fprs);
	for (size_t i = 0; i < fprs.n && rc == 0; i++) {
		bool dup = false;
		if (engine_cert(j->e, fprs.v[i], &x, error_r) == -1) {
			rc = -1;
			break;
		}
		if (x == NULL) {
			msg_warn("%s: additional certificate %s is not in the "
				 "store: left out",
			    j->qid, fprs.v[i]);
			continue;
		}
		for (int k = 0; k < sk_X509_num(p->certs); k++)
			dup |= X509_cmp(sk_X509_value(p->certs, k), x) == 0;
		if (!dup) {
			X509_up_ref(x);
			sk_X509_push(p->certs, x);
		}
	}
	strlist_free(&fprs);
	return rc;
}

/* The fingerprints of a plan's certificates, for its key. */
static char *
certs_key(const struct plan *p)
{
	char fpr[STORE_FPR_LEN + 1], *s = xstrdup(""), *n;

	for (int i = 0; i < sk_X509_num(p->certs); i++) {
		certs_fpr(sk_X509_value(p->certs, i), fpr);
		n = xasprintf("%s%s,", s, fpr);
		free(s);
		s = n;
	}
	return s;
}

static bool
form_encrypted(int form)
{
	return form == SMIME_FORM_ENVELOPED ||
	    form == SMIME_FORM_AUTH_ENVELOPED;
}

static bool
form_signed(int form)
{
	return form == SMIME_FORM_SIGNED || form == SMIME_FORM_SIGNED_DATA;
}

/*
 * Encryption to an external recipient: 1 with p->certs filled, 0 when
 * there is no usable certificate (*why_r says why), -1 on a store error.
 */
static int
outgoing_certs(struct job *j, const char *rcpt, const struct policy *pol,
    struct plan *p, char **why_r, const char **error_r)
{
	const struct cert_selection *sel;

	/* PGP comes later: without S/MIME there is no certificate. */
	if (!policy_bool(pol, PROP_SMIME_ENABLED)) {
		*why_r = xstrdup("S/MIME is disabled for the recipient");
		return 0;
	}
	if (engine_select_encrypt(j->e, rcpt, &sel, error_r) == -1)
		return -1;
	if (sel->n == 0) {
		*why_r = rejections(sel);
		return 0;
	}
	p->certs = sk_X509_new_null();
	for (size_t i = 0; i < sel->n; i++) {
		X509_up_ref(sel->v[i].cert);
		sk_X509_push(p->certs, sel->v[i].cert);
	}
	return add_additional(j, pol, p, error_r) == -1 ? -1 : 1;
}

static int
plan_outgoing(struct job *j, const char *rcpt, const struct policy *pol,
    struct plan *p, const char **error_r)
{
	const char *mode = policy_get(pol, PROP_ENCRYPT_MODE);
	const char *sign_mode = policy_get(j->sender_pol, PROP_SIGN_MODE);
	bool mandatory = strcmp(mode, "mandatory") == 0 || j->trigger;
	bool want = strcmp(mode, "no_encryption") != 0 || j->trigger;
	char *why = NULL, *ck;
	int r = 0;

	if (form_encrypted(j->top.form)) {
		plan_set(p, PLAN_PASS, "pass",
		    xstrdup("encrypted by the sender already"));
		return 0;
	}
	if (want && (r = outgoing_certs(j, rcpt, pol, p, &why, error_r)) == -1)
		return -1;
	p->encrypt = r == 1;
	if (want && !p->encrypt && mandatory) {
		p->dsn = "5.7.5";
		p->reason = xasprintf("encryption is mandatory but no valid "
				      "certificate was found for <%s>%s%s%s",
		    rcpt, strcmp(why, "no certificate") != 0 ? " (" : "",
		    strcmp(why, "no certificate") != 0 ? why : "",
		    strcmp(why, "no certificate") != 0 ? ")" : "");
		plan_set(p, PLAN_BOUNCE, "bounce",
		    xstrdup(j->trigger ? "subject trigger" : "mandatory"));
		free(why);
		return 0;
	}
	if (!form_signed(j->top.form) &&
	    (strcmp(sign_mode, "always") == 0 ||
		(strcmp(sign_mode, "when_encrypting") == 0 && p->encrypt))) {
		if ((r = signer_get(j, error_r)) == -1) {
			free(why);
			return -1;
		}
		p->sign = r == 1;
	}
	if (!p->encrypt && !p->sign) {
		plan_set(p, PLAN_PASS, "pass",
		    !want ? xstrdup("encrypt_mode no_encryption")
			  : xasprintf("encrypt_mode %s: %s", mode, why));
		free(why);
		return 0;
	}
	free(why);
	if (p->encrypt) {
		(void)smime_cipher_parse(
		    policy_get(pol, PROP_SMIME_ENCRYPTION_ALGORITHM),
		    &p->cipher);
		p->oaep = policy_bool(pol, PROP_RSA_OAEP);
		p->remove_trigger = j->trigger &&
		    policy_bool(j->sender_pol, PROP_SUBJECT_TRIGGER_REMOVE);
	}
	ck = certs_key(p);
	free(p->key);
	p->key = xasprintf("protect|e=%s|c=%d|o=%d|s=%d|t=%d", ck, p->cipher,
	    p->oaep, p->sign, p->remove_trigger);
	free(ck);
	p->kind = PLAN_PROTECT;
	p->note = xstrdup(j->trigger ? "subject trigger" : mode);
	return 0;
}

static int
plan_incoming(struct job *j, const char *rcpt, const struct policy *pol,
    struct plan *p, const char **error_r)
{
	const struct cert_selection *sel;
	bool info = policy_bool(pol, PROP_ADD_SECURITY_INFO);
	bool import = policy_bool(pol, PROP_AUTO_IMPORT_CERTIFICATES);
	char *dk = NULL;

	if (!policy_bool(pol, PROP_SMIME_ENABLED) ||
	    (!form_encrypted(j->top.form) && !form_signed(j->top.form))) {
		plan_set(p, PLAN_PASS, "pass",
		    xstrdup(policy_bool(pol, PROP_SMIME_ENABLED)
			    ? "not S/MIME"
			    : "S/MIME is disabled for the recipient"));
		return 0;
	}
	p->add_info = info;
	p->import = import;
	p->verify = info || import;
	if (form_encrypted(j->top.form)) {
		p->decrypt = true;
		p->verify = true; /* what is inside may be signed */
		p->strict = policy_bool(pol, PROP_SMIME_STRICT);
		p->rcpt = rcpt;
		if (p->strict) {
			if (engine_select_decrypt(
				j->e, rcpt, true, &sel, error_r) == -1)
				return -1;
			dk = xstrdup("");
			for (size_t i = 0; i < sel->n; i++) {
				char *n = xasprintf("%s%s,", dk, sel->v[i].fpr);
				free(dk);
				dk = n;
			}
		}
	}
	if (!p->decrypt && !info) {
		/* Verified for the import only; delivered as it came. */
		plan_set(p, PLAN_PASS, "pass", xstrdup("signed"));
		return 0;
	}
	free(p->key);
	p->key = xasprintf(
	    "in|d=%d|k=%s|i=%d", p->decrypt, dk != NULL ? dk : "*", info);
	free(dk);
	p->kind = PLAN_INCOMING;
	return 0;
}

/* The subject trigger of the sender (RFC 2047 words decoded). */
static bool
trigger_in_subject(const struct job *j)
{
	const char *t = policy_get(j->sender_pol, PROP_SUBJECT_TRIGGER);
	char *subject;
	bool found;

	if (!policy_bool(j->sender_pol, PROP_SUBJECT_TRIGGER_ENABLED) ||
	    j->top.subject == NULL || *t == '\0')
		return false;
	/* Decoded here, not for every message: GMime's decoder is costly. */
	subject = g_mime_utils_header_decode_text(NULL, j->top.subject);
	found = subject != NULL && strcasestr(subject, t) != NULL;
	g_free(subject);
	return found;
}

static void
group_add(struct job *j, size_t i)
{
	struct plan *p = &j->plans[i];
	struct group *g = NULL;

	for (size_t k = 0; k < j->ngroups; k++)
		if (strcmp(j->groups[k].plan->key, p->key) == 0)
			g = &j->groups[k];
	if (g == NULL) {
		j->groups = xreallocarray(
		    j->groups, j->ngroups + 1, sizeof(*j->groups));
		g = &j->groups[j->ngroups++];
		memset(g, 0, sizeof(*g));
		g->plan = p;
	}
	g->rcpt = xreallocarray(g->rcpt, g->n + 1, sizeof(*g->rcpt));
	g->rcpt[g->n++] = i;
}

int
engine_decide(struct job *j, const char **error_r)
{
	struct spool_env *env = j->env;
	const struct policy *pol;
	const char *loc;

	j->sender = j->top.from != NULL ? j->top.from
	    : env->sender[0] != '\0'	? env->sender
					: NULL;
	if (engine_policy(j->e, j->sender, &j->sender_pol, error_r) == -1)
		return -1;
	j->trigger = trigger_in_subject(j);
	j->plans = xcalloc(env->nrcpt, sizeof(*j->plans));
	for (size_t i = 0; i < env->nrcpt; i++) {
		const char *rcpt = env->rcpt[i].addr;
		struct plan *p = &j->plans[i];
		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		if (engine_policy(j->e, rcpt, &pol, error_r) == -1)
			return -1;
		loc = policy_get(pol, PROP_LOCALITY);
		if ((strcmp(loc, "internal") == 0
			    ? plan_incoming(j, rcpt, pol, p, error_r)
			    : plan_outgoing(j, rcpt, pol, p, error_r)) == -1)
			return -1;
		j->import |= p->import;
		group_add(j, i);
	}
	return 0;
}

void
engine_plans_free(struct job *j)
{
	for (size_t i = 0; j->plans != NULL && i < j->env->nrcpt; i++) {
		struct plan *p = &j->plans[i];
		free(p->key);
		free(p->note);
		free(p->reason);
		sk_X509_pop_free(p->certs, X509_free);
	}
	free(j->plans);
	j->plans = NULL;
	for (size_t k = 0; k < j->ngroups; k++)
		free(j->groups[k].rcpt);
	free(j->groups);
	j->groups = NULL;
	j->ngroups = 0;
	free(j->signer.why);
	memset(&j->signer, 0, sizeof(j->signer));
}
