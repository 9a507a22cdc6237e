/*
 * smime-tool: drives src/crypto/smime.c from the command line for the
 * integration tests and the measurements. Not installed.
 *
 *   smime-tool sign --signer CERT --key KEY [--chain PEM] [--md sha256]
 *   smime-tool encrypt --rcpt CERT [--rcpt CERT...] [--cipher aes256-cbc]
 *       [--oaep]
 *   smime-tool sign-encrypt (the options of both)
 *   smime-tool decrypt --key CERT,KEY [--key CERT,KEY...]
 *   smime-tool verify [--certs PEM] [--unwrap]
 *   smime-tool inspect
 *   smime-tool info [--add FIELD...]
 *   smime-tool canon [--8bit]
 *   smime-tool scan
 *
 * The message comes on stdin, the result goes to stdout only when the
 * operation succeeded; a report of key=value lines goes to stderr. Exit
 * status: 0 success, 1 error, 2 no key, 3 corrupt, 4 not encrypted, 5 an
 * encrypted part below the top, 6 unsupported, 7 limit.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/util.h"
#include "crypto/cms_stream.h"
#include "crypto/smime.h"

struct opts {
	const char *signer, *key, *chain, *md, *cipher, *certs;
	const char *rcpt[16];
	size_t nrcpt;
	const char *keys[16];
	size_t nkeys;
	const char *add[16];
	size_t nadd;
	bool oaep, unwrap, eight;
};

static void die(const char *, const char *) __attribute__((noreturn));

static void
die(const char *what, const char *why)
{
	fprintf(stderr, "error=%s: %s\n", what, why);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static X509 *
load_cert(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	if (x == NULL)
		die(path, "cannot read the certificate");
	return x;
}

static EVP_PKEY *
load_key(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	EVP_PKEY *k =
	    b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	if (k == NULL)
		die(path, "cannot read the key");
	return k;
}

static STACK_OF(X509) * load_certs(const char *path)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = BIO_new_file(path, "r");
	X509 *x;

	if (b == NULL)
		die(path, "cannot open");
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(b);
	return sk;
}

/* The message: stdin itself when it is a file, else a copy. */
static void
input(struct mime_src *src)
{
	struct stat st;
	char buf[65536];
	ssize_t n;
	int fd;

	if (fstat(0, &st) == 0 && S_ISREG(st.st_mode)) {
		src->fd = 0;
		src->off = 0;
		src->len = (uint64_t)st.st_size;
		return;
	}
	if ((fd = mime_tmpfile(NULL)) == -1)
		die("input", strerror(errno));
	while ((n = read(0, buf, sizeof(buf))) > 0)
		if (write_full(fd, buf, (size_t)n) == -1)
			die("input", strerror(errno));
	if (n == -1 || fstat(fd, &st) == -1)
		die("input", strerror(errno));
	src->fd = fd;
	src->off = 0;
	src->len = (uint64_t)st.st_size;
}

/* Copies the output file to stdout. */
static void
emit(int fd)
{
	char buf[65536];
	ssize_t n;

	if (lseek(fd, 0, SEEK_SET) == -1)
		die("output", strerror(errno));
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write_full(1, buf, (size_t)n) == -1)
			die("output", strerror(errno));
}

/*
 * The peak resident set of this program: VmHWM of /proc/self/status.
 * getrusage() would count the parent's memory when the parent forked
 * with vfork (Python's subprocess does).
 */
static void
report_peak(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0)
			fprintf(stderr, "maxrss_kb=%ld\n",
			    strtol(line + 6, NULL, 10));
	if (f != NULL)
		fclose(f);
}

static int
cmd_protect(
    struct opts *o, const struct mime_src *src, BIO *out, bool sign, bool enc)
{
	struct smime_signer s = { NULL, NULL, NULL, NULL };
	struct smime_recipients r = { NULL, SMIME_AES256_CBC, o->oaep };
	const char *why;
	int rc;

	if (sign) {
		if (o->signer == NULL || o->key == NULL)
			die("sign", "--signer and --key are needed");
		s.cert = load_cert(o->signer);
		s.key = load_key(o->key);
		s.chain = o->chain != NULL ? load_certs(o->chain) : NULL;
		if (o->md != NULL && (s.md = smime_digest_parse(o->md)) == NULL)
			die(o->md, "unknown digest");
	}
	if (enc) {
		if (o->nrcpt == 0)
			die("encrypt", "--rcpt is needed");
		r.certs = sk_X509_new_null();
		for (size_t i = 0; i < o->nrcpt; i++)
			sk_X509_push(r.certs, load_cert(o->rcpt[i]));
		if (o->cipher != NULL &&
		    smime_cipher_parse(o->cipher, &r.cipher) == -1)
			die(o->cipher, "unknown cipher");
	}
	rc = smime_protect(src, out, sign ? &s : NULL, enc ? &r : NULL, &why);
	if (rc == -1)
		fprintf(stderr, "error=%s\n", why);
	X509_free(s.cert);
	EVP_PKEY_free(s.key);
	sk_X509_pop_free(s.chain, X509_free);
	sk_X509_pop_free(r.certs, X509_free);
	return rc == 0 ? 0 : 1;
}

struct keylist {
	struct smime_key k[16];
	size_t n;
	size_t asked;
};

static int
key_cb(void *ctx, const struct smime_rid *rids, size_t nrids, size_t i,
    struct smime_key *key_r)
{
	struct keylist *kl = ctx;

	if (i == 0)
		for (size_t j = 0; j < nrids; j++)
			fprintf(stderr, "rid=%s,%s\n",
			    rids[j].keyid != NULL ? "keyid" : "issuer",
			    rids[j].agreement ? "kari" : "ktri");
	kl->asked = nrids;
	if (i >= kl->n)
		return 0;
	*key_r = kl->k[i];
	return 1;
}

static const int status_exit[] = {
	[SMIME_OK] = 0,
	[SMIME_NOT_ENCRYPTED] = 4,
	[SMIME_NESTED] = 5,
	[SMIME_NO_KEY] = 2,
	[SMIME_CORRUPT] = 3,
	[SMIME_UNSUPPORTED] = 6,
	[SMIME_LIMIT] = 7,
	[SMIME_ERROR] = 1,
};

static const char *const status_names[] = {
	[SMIME_OK] = "ok",
	[SMIME_NOT_ENCRYPTED] = "not-encrypted",
	[SMIME_NESTED] = "nested",
	[SMIME_NO_KEY] = "no-key",
	[SMIME_CORRUPT] = "corrupt",
	[SMIME_UNSUPPORTED] = "unsupported",
	[SMIME_LIMIT] = "limit",
	[SMIME_ERROR] = "error",
};

static int
cmd_decrypt(struct opts *o, const struct mime_src *src, BIO *out)
{
	struct keylist kl;
	struct smime_decrypt_result res;
	const char *why = "";
	char *sep, *path;
	int rc;

	memset(&kl, 0, sizeof(kl));
	for (size_t i = 0; i < o->nkeys; i++) {
		path = xstrdup(o->keys[i]);
		if ((sep = strchr(path, ',')) == NULL)
			die(o->keys[i], "--key CERT,KEY");
		*sep = '\0';
		kl.k[kl.n].cert = load_cert(path);
		kl.k[kl.n++].key = load_key(sep + 1);
		free(path);
	}
	rc = smime_decrypt(src, out, key_cb, &kl, &res, &why);
	fprintf(stderr, "status=%s\nrecipients=%zu\n", status_names[res.status],
	    kl.asked);
	if (rc == 0) {
		char *subj =
		    X509_NAME_oneline(X509_get_subject_name(res.cert), NULL, 0);
		fprintf(stderr,
		    "cipher=%s\nkey_alg=%s\nauth=%d\nkey=%zu\n"
		    "cert=%s\n",
		    res.cipher, res.key_alg, res.auth, res.key_index, subj);
		OPENSSL_free(subj);
	} else
		fprintf(stderr, "error=%s\n", why);
	for (size_t i = 0; i < kl.n; i++) {
		X509_free(kl.k[i].cert);
		EVP_PKEY_free(kl.k[i].key);
	}
	rc = status_exit[res.status];
	smime_decrypt_result_clear(&res);
	return rc;
}

static const char *const scope_names[] = { "unsigned", "whole", "partial" };

static int
cmd_verify(struct opts *o, const struct mime_src *src, BIO *out, int ofd)
{
	struct smime_verify_result res;
	STACK_OF(X509) *certs = o->certs != NULL ? load_certs(o->certs) : NULL;
	const char *why;
	int rc;

	rc = smime_verify(src, certs, o->unwrap ? out : NULL, &res, &why);
	sk_X509_pop_free(certs, X509_free);
	if (rc == -1) {
		fprintf(stderr, "error=%s\n", why);
		return 1;
	}
	fprintf(stderr,
	    "scope=%s\nvalid=%d\nopaque=%d\nunwrapped=%d\nreason=%s\n"
	    "digest=%s\nfrom=%s\nfrom_match=%d\nsenders=%d\nsigners=%d\n"
	    "certs=%d\n",
	    scope_names[res.scope], res.valid, res.opaque, res.unwrapped,
	    res.reason != NULL ? res.reason : "", res.digest,
	    res.from != NULL ? res.from : "", res.from_match,
	    smime_verify_is_senders(&res), sk_X509_num(res.signers),
	    sk_X509_num(res.certs));
	for (size_t i = 0; i < res.nemails; i++)
		fprintf(stderr, "email=%s\n", res.emails[i]);
	/* smime.h: without unwrapped, what reached out is discarded. */
	if (!res.unwrapped && ftruncate(ofd, 0) == -1)
		die("output", strerror(errno));
	smime_verify_result_clear(&res);
	return 0;
}

static const char *const form_names[] = { "none", "signed", "signed-data",
	"enveloped-data", "authEnveloped-data", "other" };

static int
cmd_inspect(const struct mime_src *src)
{
	struct smime_info info;
	const char *why;

	if (smime_inspect(src, &info, &why) == -1) {
		fprintf(stderr, "error=%s\n", why);
		return 1;
	}
	fprintf(stderr, "form=%s\nnested_signed=%d\nnested_encrypted=%d\n",
	    form_names[info.form], info.nested_signed, info.nested_encrypted);
	return 0;
}

static int
cmd_canon(struct opts *o, const struct mime_src *src, BIO *out)
{
	struct mime_tree *t;
	struct mime_out *mo;
	const char *why;
	int rc;

	if (mime_scan(src, &t, &why) == -1) {
		fprintf(stderr, "error=%s\n", why);
		return 7;
	}
	mo = xmalloc(sizeof(*mo));
	mime_out_init(mo, out);
	rc = mime_write_entity(
	    t, 0, o->eight ? MIME_CANON_8BIT : MIME_CANON_7BIT, true, mo);
	if (mime_out_flush(mo) == -1)
		rc = -1;
	fprintf(stderr, "parts=%zu\n", t->nparts);
	free(mo);
	mime_tree_free(&t);
	return rc == 0 ? 0 : 1;
}

/* The part table, one line per part, for tests of the scanner. */
static int
cmd_scan(const struct mime_src *src)
{
	struct mime_tree *t;
	const char *why;

	if (mime_scan(src, &t, &why) == -1) {
		fprintf(stderr, "error=%s\n", why);
		return 7;
	}
	for (size_t i = 0; i < t->nparts; i++) {
		const struct mime_part *p = &t->part[i];
		printf("%zu parent=%d depth=%d type=%s kind=%d cte=%d "
		       "start=%llu hdr_end=%llu body=%llu end=%llu "
		       "flags=0x%x\n",
		    i, p->parent, p->depth, p->type, p->kind, p->cte,
		    (unsigned long long)p->start,
		    (unsigned long long)p->hdr_end, (unsigned long long)p->body,
		    (unsigned long long)p->end, p->flags);
	}
	mime_tree_free(&t);
	return 0;
}

static int
cmd_info(struct opts *o, const struct mime_src *src, BIO *out)
{
	const char *why;

	if (smime_info_rewrite(src, out, o->add, o->nadd, &why) == -1) {
		fprintf(stderr, "error=%s\n", why);
		return 1;
	}
	return 0;
}

static void
parse_opts(int argc, char **argv, struct opts *o)
{
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = true;
		if (strcmp(a, "--oaep") == 0)
			o->oaep = true, takes = false;
		else if (strcmp(a, "--unwrap") == 0)
			o->unwrap = true, takes = false;
		else if (strcmp(a, "--8bit") == 0)
			o->eight = true, takes = false;
		else if (v == NULL)
			die(a, "needs a value");
		else if (strcmp(a, "--signer") == 0)
			o->signer = v;
		else if (strcmp(a, "--key") == 0 && o->nkeys < 16 &&
		    strchr(v, ',') != NULL)
			o->keys[o->nkeys++] = v;
		else if (strcmp(a, "--key") == 0)
			o->key = v;
		else if (strcmp(a, "--chain") == 0)
			o->chain = v;
		else if (strcmp(a, "--md") == 0)
			o->md = v;
		else if (strcmp(a, "--cipher") == 0)
			o->cipher = v;
		else if (strcmp(a, "--certs") == 0)
			o->certs = v;
		else if (strcmp(a, "--rcpt") == 0 && o->nrcpt < 16)
			o->rcpt[o->nrcpt++] = v;
		else if (strcmp(a, "--add") == 0 && o->nadd < 16)
			o->add[o->nadd++] = v;
		else
			die(a, "unknown option");
		if (takes)
			i++;
	}
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct mime_src src;
	const char *cmd, *why;
	BIO *out;
	int ofd, rc;

	if (argc < 2)
		die("usage", "smime-tool COMMAND [options] < in > out");
	cmd = argv[1];
	memset(&o, 0, sizeof(o));
	parse_opts(argc, argv, &o);
	if (smime_init(getenv("SMIME_TMPDIR"), &why) == -1)
		die("init", why);
	input(&src);
	if ((ofd = mime_tmpfile(NULL)) == -1 ||
	    (out = BIO_new_fd(ofd, BIO_NOCLOSE)) == NULL)
		die("output", "cannot create a temporary file");
	if (strcmp(cmd, "sign") == 0)
		rc = cmd_protect(&o, &src, out, true, false);
	else if (strcmp(cmd, "encrypt") == 0)
		rc = cmd_protect(&o, &src, out, false, true);
	else if (strcmp(cmd, "sign-encrypt") == 0)
		rc = cmd_protect(&o, &src, out, true, true);
	else if (strcmp(cmd, "decrypt") == 0)
		rc = cmd_decrypt(&o, &src, out);
	else if (strcmp(cmd, "verify") == 0)
		rc = cmd_verify(&o, &src, out, ofd);
	else if (strcmp(cmd, "inspect") == 0)
		rc = cmd_inspect(&src);
	else if (strcmp(cmd, "info") == 0)
		rc = cmd_info(&o, &src, out);
	else if (strcmp(cmd, "scan") == 0)
		rc = cmd_scan(&src);
	else if (strcmp(cmd, "canon") == 0)
		rc = cmd_canon(&o, &src, out);
	else
		die(cmd, "unknown command");
	/* Output only for a success (smime.h: discard it on failure). */
	if (rc == 0)
		emit(ofd);
	BIO_free(out);
	close(ofd);
	report_peak();
	return rc;
}
