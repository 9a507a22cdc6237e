/*
 * The output of each group of recipients (engine_decide.c made the
 * groups): a copy without spoofed info fields, a signed and/or
 * encrypted message (smime_protect), a decrypted and/or verified one
 * with X-Mailseal-Info-* fields, or a DSN. Outputs stream from the spool
 * file into a new spool file; what must be read twice (decrypted text,
 * a subject without its trigger) goes to unlinked temporary files.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <gmime/gmime.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/smime.h"
#include "engine/engine_int.h"
#include "queue/bounce.h"

/* A write-only BIO into an output file, stopping at the size limit. */
struct wbio {
	struct spool_writer *w;
	uint64_t limit;
	bool over;
};

static BIO_METHOD *wbio_method;

static int
wbio_write(BIO *b, const char *buf, int len)
{
	struct wbio *o = BIO_get_data(b);

	if (len <= 0)
		return 0;
	if (o->w->content_len + (uint64_t)len > o->limit) {
		o->over = true;
		return -1;
	}
	spool_writer_write(o->w, buf, (size_t)len);
	return o->w->error != 0 ? -1 : len;
}

static long
wbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO *
wbio_new(struct wbio *o)
{
	BIO *b;

	if (wbio_method == NULL) {
		wbio_method = BIO_meth_new(
		    BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "spool output");
		if (wbio_method == NULL ||
		    !BIO_meth_set_write(wbio_method, wbio_write) ||
		    !BIO_meth_set_ctrl(wbio_method, wbio_ctrl))
			msg_fatal("cannot make a BIO method");
	}
	if ((b = BIO_new(wbio_method)) == NULL)
		msg_fatal("out of memory");
	BIO_set_data(b, o);
	BIO_set_init(b, 1);
	return b;
}

/* Temporary files. */

struct tmp {
	int fd;
	BIO *bio;
	struct mime_src src;
};

static int
tmp_open(struct job *j, struct tmp *t)
{
	t->bio = NULL;
	if ((t->fd = mime_tmpfile(j->e->tmpdir)) == -1)
		return -1;
	if ((t->bio = BIO_new_fd(t->fd, BIO_NOCLOSE)) == NULL)
		msg_fatal("out of memory");
	return 0;
}

/* The written file as a message source. */
static int
tmp_done(struct tmp *t)
{
	struct stat st;

	if (BIO_flush(t->bio) <= 0 || fstat(t->fd, &st) == -1)
		return -1;
	t->src.fd = t->fd;
	t->src.off = 0;
	t->src.len = (uint64_t)st.st_size;
	return 0;
}

static void
tmp_close(struct tmp *t)
{
	BIO_free(t->bio);
	t->bio = NULL;
	if (t->fd != -1)
		close(t->fd);
	t->fd = -1;
}

/* The log line's recipient list: to=<a>,<b> */
char *
engine_group_rcpts(const struct job *j, const struct group *g)
{
	char *s = xstrdup(""), *n;

	for (size_t i = 0; i < g->n; i++) {
		n = xasprintf("%s%s<%s>", s, i > 0 ? "," : "",
		    j->env->rcpt[g->rcpt[i]].addr);
		free(s);
		s = n;
	}
	return s;
}

/*
 * Why a group goes as it came: its recipients' notes, each recipient
 * named when they differ ("<a>: encrypt_mode allow: no certificate;
 * <b>: not S/MIME").
 */
char *
engine_group_note(const struct job *j, const struct group *g)
{
	const char *first = g->plan->note != NULL ? g->plan->note : "";
	char *s = NULL, *n;
	bool same = true;

	for (size_t i = 0; i < g->n; i++) {
		const char *note = j->plans[g->rcpt[i]].note;
		same &= note != NULL && strcmp(note, first) == 0;
	}
	if (same)
		return xstrdup(first);
	for (size_t i = 0; i < g->n; i++) {
		const char *note = j->plans[g->rcpt[i]].note;
		n = xasprintf("%s%s<%s>: %s", s != NULL ? s : "",
		    s != NULL ? "; " : "", j->env->rcpt[g->rcpt[i]].addr,
		    note != NULL ? note : "");
		free(s);
		s = n;
	}
	return s;
}

/* Removing the subject trigger. */

/* s without every case-insensitive occurrence of t, spaces squeezed. */
static char *
remove_ci(const char *s, const char *t)
{
	size_t tl = strlen(t), n = 0;
	char *out = xmalloc(strlen(s) + 1);
	const char *p = s, *hit;

	while ((hit = strcasestr(p, t)) != NULL) {
		memcpy(out + n, p, (size_t)(hit - p));
		n += (size_t)(hit - p);
		p = hit + tl;
	}
	strcpy(out + n, p);
	/* "a [encrypt] b" -> "a b", "[encrypt] hi" -> "hi" */
	for (size_t i = 0, k = 0;; i++) {
		if (out[i] == ' ' && (k == 0 || out[k - 1] == ' '))
			continue;
		out[k++] = out[i];
		if (out[i] == '\0') {
			if (k >= 2 && out[k - 2] == ' ')
				out[k - 2] = '\0';
			break;
		}
	}
	return out;
}

/* The new Subject value: the trigger removed, RFC 2047 words respected. */
static char *
subject_without(const char *value, const char *trigger)
{
	char *dec, *cut, *enc;

	if (strcasestr(value, trigger) != NULL)
		return remove_ci(value, trigger);
	/* Only in the decoded text: decode, remove, encode again. */
	dec = g_mime_utils_header_decode_text(NULL, value);
	cut = remove_ci(dec, trigger);
	enc = g_mime_utils_header_encode_text(NULL, cut, "utf-8");
	g_free(dec);
	free(cut);
	cut = xstrdup(enc);
	g_free(enc);
	return cut;
}

/* A copy of the message with the trigger removed from its Subject. */
static int
write_without_trigger(
    struct job *j, const struct mime_src *src, BIO *out, const char **error_r)
{
	const char *trigger = policy_get(j->sender_pol, PROP_SUBJECT_TRIGGER);
	struct mime_tree *t;
	struct mime_out *o;
	struct mime_field f;
	char *hdr = NULL, *v, *nv;
	size_t len, pos = 0;
	int rc = -1;

	if (mime_scan(src, &t, error_r) == -1)
		return -1;
	o = xmalloc(sizeof(*o));
	mime_out_init(o, out);
	if (mime_part_header(t, 0, &hdr, &len, error_r) == -1)
		goto out;
	while (mime_field_next(hdr, len, &pos, &f)) {
		if (mime_field_is(&f, "Subject")) {
			v = mime_field_value(&f);
			nv = subject_without(v, trigger);
			mime_out_puts(o, "Subject: ");
			mime_out_puts(o, nv);
			mime_out_puts(o, "\r\n");
			free(v);
			free(nv);
			continue;
		}
		mime_out_field(o, &f);
	}
	mime_out_body(o, t, 0);
	if (mime_out_flush(o) == -1) {
		*error_r = "write error";
		goto out;
	}
	rc = 0;
out:
	free(hdr);
	free(o);
	mime_tree_free(&t);
	return rc;
}

/* Outgoing: sign and/or encrypt. */

static int
transform_protect(struct job *j, struct group *g, BIO *out, char **log_r,
    const char **error_r)
{
	struct plan *p = g->plan;
	struct smime_signer s;
	struct smime_recipients r;
	const struct mime_src *src = &j->src;
	struct tmp t = { -1, NULL, { 0 } };
	char *certs = xstrdup(""), *n, fpr[STORE_FPR_LEN + 1], fs[24];
	int rc = -1;

	if (p->remove_trigger) {
		if (tmp_open(j, &t) == -1) {
			*error_r = "cannot create a temporary file";
			goto out;
		}
		if (write_without_trigger(j, src, t.bio, error_r) == -1 ||
		    tmp_done(&t) == -1)
			goto out;
		src = &t.src;
	}
	memset(&s, 0, sizeof(s));
	s.cert = j->signer.cert;
	s.key = j->signer.key;
	s.chain = j->signer.chain;
	s.md = j->signer.md;
	r.certs = p->certs;
	r.cipher = p->cipher;
	r.rsa_oaep = p->oaep;
	if (smime_protect(src, out, p->sign ? &s : NULL, p->encrypt ? &r : NULL,
		error_r) == -1)
		goto out;
	for (int i = 0; p->encrypt && i < sk_X509_num(p->certs); i++) {
		certs_fpr(sk_X509_value(p->certs, i), fpr);
		engine_fpr_short(fpr, fs);
		n = xasprintf("%s%s%s", certs, i > 0 ? "," : "", fs);
		free(certs);
		certs = n;
	}
	engine_fpr_short(j->signer.fpr, fs);
	*log_r = xasprintf("action=%s%s%s%s%s%s%s%s%s",
	    p->sign && p->encrypt ? "sign+encrypt"
		: p->sign	  ? "sign"
				  : "encrypt",
	    p->encrypt ? " cert=" : "", certs, p->encrypt ? " cipher=" : "",
	    p->encrypt ? smime_cipher_name(p->cipher) : "",
	    p->encrypt && p->oaep ? " rsa_oaep=yes" : "",
	    p->sign ? " signer=" : "", p->sign ? fs : "",
	    p->remove_trigger ? " subject_trigger=removed" : "");
	rc = 0;
out:
	free(certs);
	tmp_close(&t);
	return rc;
}

/* Incoming: decrypt and verify. */

struct keys {
	struct job *j;
	const struct cert_selection *sel;
	size_t next; /* the next candidate of sel to look at */
};

/* Whether a certificate is the one a RecipientInfo names. */
static bool
rid_match(const struct smime_rid *r, X509 *x)
{
	const ASN1_OCTET_STRING *ski;

	if (r->keyid != NULL) {
		ski = X509_get0_subject_key_id(x);
		return ski != NULL && ASN1_OCTET_STRING_cmp(ski, r->keyid) == 0;
	}
	return r->issuer != NULL && r->serial != NULL &&
	    X509_NAME_cmp(r->issuer, X509_get_issuer_name(x)) == 0 &&
	    ASN1_INTEGER_cmp(r->serial, X509_get0_serialNumber(x)) == 0;
}

/*
 * The candidates, in the selection's order; only those that a
 * RecipientInfo names are unsealed (the others are never offered).
 */
static int
key_cb(void *ctx, const struct smime_rid *rids, size_t nrids, size_t i,
    struct smime_key *key_r)
{
	struct keys *k = ctx;
	const char *why;

	while (k->next < k->sel->n) {
		const struct cert_choice *c = &k->sel->v[k->next++];
		bool match = false;
		for (size_t r = 0; r < nrids && !match; r++)
			match = rid_match(&rids[r], c->cert);
		if (!match)
			continue;
		/* A key that cannot be read: tried again later, not skipped. */
		if (engine_key(k->j->e, c->fpr, &key_r->key, &why) == -1) {
			msg_warn("%s: key of %s: %s", k->j->qid, c->fpr, why);
			return -1;
		}
		key_r->cert = c->cert;
		return 1;
	}
	return 0;
}

/* The info fields and log text of an incoming group. */
struct info {
	struct strlist fields;
	char *action; /* "decrypt+verify" */
	char *log; /* details */
};

static void
action_add(struct info *in, const char *a)
{
	char *n = xasprintf("%s%s%s", in->action != NULL ? in->action : "",
	    in->action != NULL ? "+" : "", a);

	free(in->action);
	in->action = n;
}

static void __attribute__((format(printf, 2, 3)))
info_add(struct info *in, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	strlist_add(&in->fields, s);
	free(s);
}

static void __attribute__((format(printf, 2, 3)))
log_add(struct info *in, const char *fmt, ...)
{
	va_list ap;
	char *s, *n;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	n = xasprintf("%s%s%s", in->log != NULL ? in->log : "",
	    in->log != NULL ? " " : "", s);
	free(in->log);
	free(s);
	in->log = n;
}

/* Info text: one line, no control characters. */
static char *
clean(const char *s)
{
	char *c = xstrdup(s != NULL ? s : "");

	for (char *p = c; *p != '\0'; p++)
		if ((unsigned char)*p < 32 || *p == 127)
			*p = ' ';
	if (strlen(c) > 200)
		c[200] = '\0';
	return c;
}

/* -1: an error that defers the message; 0 otherwise (status in res). */
static int
incoming_decrypt(struct job *j, struct plan *p, const struct mime_src *src,
    struct tmp *t, struct info *in, bool *decrypted_r, const char **error_r)
{
	struct smime_decrypt_result res;
	struct keys k = { j, NULL, 0 };
	const char *why = "";
	char fpr[STORE_FPR_LEN + 1], fs[24], *c;

	*decrypted_r = false;
	if (engine_select_decrypt(j->e, p->rcpt, p->strict, &k.sel, error_r) ==
	    -1)
		return -1;
	if (tmp_open(j, t) == -1) {
		*error_r = "cannot create a temporary file";
		return -1;
	}
	if (smime_decrypt(src, t->bio, key_cb, &k, &res, &why) == 0) {
		if (tmp_done(t) == -1) {
			smime_decrypt_result_clear(&res);
			*error_r = "cannot write a temporary file";
			return -1;
		}
		certs_fpr(res.cert, fpr);
		engine_fpr_short(fpr, fs);
		info_add(in, "X-Mailseal-Info-SMIME-Encrypted: yes");
		info_add(in, "X-Mailseal-Info-Encryption-Algorithm: %s%s",
		    res.cipher, res.auth ? " (authenticated)" : "");
		action_add(in, "decrypt");
		log_add(in, "key=%s cipher=%s", fs, res.cipher);
		*decrypted_r = true;
		smime_decrypt_result_clear(&res);
		return 0;
	}
	if (res.status == SMIME_ERROR) {
		smime_decrypt_result_clear(&res);
		*error_r = "decryption: cannot read or write";
		return -1;
	}
	/* Delivered as it came, with the reason. */
	c = clean(why);
	info_add(in, "X-Mailseal-Info-SMIME-Encrypted: yes");
	if (res.status == SMIME_NO_KEY)
		info_add(in, "X-Mailseal-Info-Decryption-Key-Not-Found: yes");
	else
		info_add(in, "X-Mailseal-Info-Decryption-Failed: %s", c);
	action_add(in, "decrypt-failed");
	log_add(in, "(%s: delivered as received)", c);
	free(c);
	smime_decrypt_result_clear(&res);
	tmp_close(t);
	return 0;
}

/* Whether every signer's certificate is valid and trusted. */
static bool
signers_trusted(
    struct job *j, const struct smime_verify_result *vr, char **why_r)
{
	struct cert_verdict v;
	const char *err;

	*why_r = NULL;
	if (sk_X509_num(vr->signers) == 0) {
		*why_r = xstrdup("no signer certificate");
		return false;
	}
	for (int i = 0; i < sk_X509_num(vr->signers); i++) {
		if (certs_validate(j->e->cs, sk_X509_value(vr->signers, i),
			vr->certs, CERT_PURPOSE_SIGN, time(NULL), &v, NULL,
			&err) == -1) {
			*why_r = xasprintf("validation failed: %s", err);
			return false;
		}
		if (v.status != CERT_VALID) {
			*why_r = xasprintf(
			    "%s (%s)", certs_status_name(v.status), v.detail);
			return false;
		}
	}
	return true;
}

static void
import_signers(struct job *j, const struct smime_verify_result *vr)
{
	struct certs_import_result ir;
	const char *why;
	size_t added = 0;

	j->imported = true;
	if (certs_import_x509(j->e->st, vr->certs, &ir, &why) == -1) {
		msg_warn("%s: auto-import of the signer's certificates: %s",
		    j->qid, why);
		return;
	}
	for (size_t i = 0; i < ir.n; i++)
		added += ir.v[i].added;
	if (added > 0)
		msg_info("%s: engine=smime imported %zu certificate%s of the "
			 "signer",
		    j->qid, added, added == 1 ? "" : "s");
	certs_import_result_free(&ir);
}

/*
 * The rule of docs/smime.md: a signature is the sender's only when it
 * covers the whole message, verifies, names the From address, and its
 * certificate is trusted. A signature of a part is never reported as
 * anybody's but "partial".
 */
static void
incoming_verify(struct job *j, const struct mime_src *src, struct info *in)
{
	struct smime_verify_result vr;
	struct smime_info si;
	const char *why;
	char *tw = NULL, *emails = NULL, *n;
	bool trusted, senders;

	if (smime_inspect(src, &si, &why) == -1 ||
	    (si.form != SMIME_FORM_SIGNED && si.form != SMIME_FORM_SIGNED_DATA))
		return;
	if (smime_verify(src, NULL, NULL, &vr, &why) == -1) {
		n = clean(why);
		info_add(in, "X-Mailseal-Info-SMIME-Signed: yes");
		info_add(in, "X-Mailseal-Info-Signer-Verified: no (%s)", n);
		action_add(in, "verify");
		log_add(in, "verified=no (%s)", n);
		free(n);
		return;
	}
	if (vr.scope != SMIME_WHOLE) {
		info_add(in, "X-Mailseal-Info-SMIME-Signed: partial");
		action_add(in, "verify");
		log_add(in, "signed=partial");
		smime_verify_result_clear(&vr);
		return;
	}
	trusted = vr.valid && signers_trusted(j, &vr, &tw);
	senders = smime_verify_is_senders(&vr) && trusted;
	for (size_t i = 0; i < vr.nemails; i++) {
		n = xasprintf("%s%s%s", emails != NULL ? emails : "",
		    emails != NULL ? ", " : "", vr.emails[i]);
		free(emails);
		emails = n;
	}
	info_add(in, "X-Mailseal-Info-SMIME-Signed: yes");
	if (vr.valid && emails != NULL)
		info_add(in, "X-Mailseal-Info-Signer-Email: %s", emails);
	why = !vr.valid	     ? (vr.reason != NULL ? vr.reason : "invalid")
	    : !vr.from_match ? "the signer is not the From address"
	    : !trusted	     ? "the signer's certificate is not trusted"
			     : NULL;
	if (senders)
		info_add(in, "X-Mailseal-Info-Signer-Verified: yes");
	else
		info_add(in, "X-Mailseal-Info-Signer-Verified: no (%s)", why);
	if (vr.valid) {
		n = clean(tw);
		if (trusted)
			info_add(in, "X-Mailseal-Info-Signer-Trusted: yes");
		else
			info_add(
			    in, "X-Mailseal-Info-Signer-Trusted: no (%s)", n);
		free(n);
	}
	action_add(in, "verify");
	log_add(in, "signer=<%s> verified=%s trusted=%s",
	    emails != NULL ? emails : "", senders ? "yes" : "no",
	    trusted ? "yes" : "no");
	if (j->import && !j->imported && vr.valid)
		import_signers(j, &vr);
	free(emails);
	free(tw);
	smime_verify_result_clear(&vr);
}

static int
transform_incoming(struct job *j, struct group *g, BIO *out, char **log_r,
    const char **error_r)
{
	struct plan *p = g->plan;
	struct info in = { { 0 }, NULL, NULL };
	struct tmp t = { -1, NULL, { 0 } };
	const struct mime_src *src = &j->src;
	bool dec = false;
	int rc = -1;

	if (p->decrypt) {
		if (incoming_decrypt(j, p, src, &t, &in, &dec, error_r) == -1)
			goto out;
		if (dec)
			src = &t.src;
	}
	/* A message that could not be decrypted is not looked into. */
	if (p->verify && (!p->decrypt || dec))
		incoming_verify(j, src, &in);
	if (smime_info_rewrite(src, out,
		p->add_info ? (const char *const *)in.fields.v : NULL,
		p->add_info ? in.fields.n : 0, error_r) == -1)
		goto out;
	*log_r =
	    xasprintf("action=%s%s%s", in.action != NULL ? in.action : "none",
		in.log != NULL ? " " : "", in.log != NULL ? in.log : "");
	rc = 0;
out:
	tmp_close(&t);
	strlist_free(&in.fields);
	free(in.action);
	free(in.log);
	return rc;
}

/* The signature is looked at for the auto-import only. */
void
engine_import_only(struct job *j)
{
	struct info in = { { 0 }, NULL, NULL };

	incoming_verify(j, &j->src, &in);
	strlist_free(&in.fields);
	free(in.action);
	free(in.log);
}

/* Outputs. */

static void
output_env(struct job *j, struct group *g, struct output *o)
{
	const struct spool_env *env = j->env;

	memcpy(o->env.parent, j->qid, sizeof(o->env.parent));
	o->env.stage = SPOOL_FILTERED;
	o->env.flags = (env->flags & ~SPOOL_F_BOUNCE) | SPOOL_F_OUTPUT;
	/* Decrypted text may be 8-bit (MIME_CANON_8BIT). */
	if (g->plan->kind == PLAN_INCOMING)
		o->env.flags |= SPOOL_F_8BIT;
	o->env.arrival_us = env->arrival_us;
	o->env.sender = xstrdup(env->sender);
	o->env.client_name =
	    env->client_name != NULL ? xstrdup(env->client_name) : NULL;
	o->env.client_addr =
	    env->client_addr != NULL ? xstrdup(env->client_addr) : NULL;
	o->env.helo = env->helo != NULL ? xstrdup(env->helo) : NULL;
	o->env.proto = env->proto != NULL ? xstrdup(env->proto) : NULL;
	for (size_t i = 0; i < g->n; i++) {
		const struct spool_rcpt *r = &env->rcpt[g->rcpt[i]];
		spool_env_add_rcpt(&o->env, r->addr, r->orcpt, r->flags);
	}
}

int
engine_transform(
    struct job *j, struct group *g, struct output *o, const char **reason_r)
{
	uint64_t limit =
	    (uint64_t)cfg_int(j->e->cfg, P_AFTER_FILTER_MESSAGE_SIZE_LIMIT);
	struct wbio wb;
	char *log = NULL, *to, *sp, *note;
	const char *why = "write error";
	BIO *bio;
	int rc;

	if (engine_output_new(j, o, reason_r) == -1)
		return -1;
	output_env(j, g, o);
	wb.w = o->w;
	wb.limit = limit;
	wb.over = false;
	bio = wbio_new(&wb);
	switch (g->plan->kind) {
	case PLAN_PROTECT:
		rc = transform_protect(j, g, bio, &log, &why);
		break;
	case PLAN_INCOMING:
		rc = transform_incoming(j, g, bio, &log, &why);
		break;
	default:
		rc = smime_info_rewrite(&j->src, bio, NULL, 0, &why);
		note = engine_group_note(j, g);
		log = xasprintf("action=none (%s%s)", note,
		    j->top.info_fields ? "; X-Mailseal-Info fields removed"
				       : "");
		free(note);
		break;
	}
	BIO_free(bio);
	ERR_clear_error();
	if (rc == 0 && o->w->error != 0) {
		rc = -1;
		why = strerror(o->w->error);
	}
	if (rc == -1) {
		free(log);
		engine_output_discard(o);
		if (wb.over) {
			*reason_r = "message too large after filtering";
			return 1;
		}
		*reason_r = why;
		return -1;
	}
	/* "action=X to=<...> details" (DESIGN.md section 7). */
	to = engine_group_rcpts(j, g);
	sp = strchr(log, ' ');
	o->log = xasprintf("%.*s to=%s%s",
	    (int)(sp != NULL ? sp - log : (long)strlen(log)), log, to,
	    sp != NULL ? sp : "");
	free(to);
	free(log);
	return 0;
}

int
engine_write_dsn(struct job *j, const struct bounce_rcpt *b, size_t n,
    struct output *o, const char **error_r)
{
	size_t len;
	bool eight;
	char *text;

	if (engine_output_new(j, o, error_r) == -1)
		return -1;
	text = bounce_compose(j->e->cfg, j->env, j->fd, o->w->qid,
	    BOUNCE_FAILED, b, n, &len, &eight);
	spool_writer_write(o->w, text, len);
	free(text);
	memcpy(o->env.parent, j->qid, sizeof(o->env.parent));
	o->env.stage = SPOOL_FILTERED;
	o->env.flags =
	    SPOOL_F_BOUNCE | SPOOL_F_OUTPUT | (eight ? SPOOL_F_8BIT : 0);
	o->env.arrival_us = clock_wall_us();
	o->env.sender = xstrdup("");
	o->env.client_name = xstrdup("localhost");
	o->env.client_addr = xstrdup("127.0.0.1");
	o->env.proto = xstrdup("bounce");
	spool_env_add_rcpt(&o->env, j->env->sender, NULL, 0);
	o->log = xstrdup("sender non-delivery notification");
	return 0;
}
