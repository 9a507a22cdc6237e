/*
 * The engine's insides, shared by engine.c (the process, a job's life
 * and commit), engine_decide.c (the decision per recipient),
 * engine_transform.c (the outputs) and engine_cache.c (policy and
 * certificates kept between jobs).
 */
#ifndef MAILSEAL_ENGINE_INT_H
#define MAILSEAL_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crypto/certs.h"
#include "crypto/mime.h"
#include "policy/policy.h"
#include "queue/spool.h"

struct config;
struct store;
struct masterkey;
struct ecache;
struct bounce_rcpt;

struct engine {
	const char *config_path;
	struct config *cfg;
	struct store *st;
	struct certs *cs;
	struct masterkey *mk;
	struct spool *sp;
	struct ecache *cache;
	char *tmpdir; /* queue_directory/incoming: unlinked temporary files */
	int sock; /* to the dispatcher */
	int instance;
};

/* What the decisions need from the top of a message, read cheaply. */
struct msg_top {
	char *from; /* the single From mailbox, lower case, or NULL */
	char *subject; /* the Subject value, unfolded, still encoded, or NULL */
	bool info_fields; /* X-Mailseal-Info-* fields came with it */
	int form; /* enum smime_form of the top-level entity */
};

enum plan_kind {
	PLAN_SKIP, /* not pending: sent, bounced or dropped before */
	PLAN_PASS, /* as it came (X-Mailseal-Info-* removed) */
	PLAN_PROTECT, /* outgoing: sign and/or encrypt */
	PLAN_INCOMING, /* incoming: decrypt and/or verify */
	PLAN_BOUNCE, /* no copy: the sender gets a DSN */
};

/* The decision for one recipient. */
struct plan {
	enum plan_kind kind;
	char *key; /* recipients with equal keys share one output */
	char *note; /* why, for the log line */
	/* PLAN_PROTECT */
	bool encrypt, sign, remove_trigger;
	STACK_OF(X509) * certs; /* recipient's valid ones + additional */
	int cipher; /* enum smime_cipher */
	bool oaep;
	/* PLAN_INCOMING */
	bool decrypt, verify, add_info, strict;
	bool import; /* auto_import_certificates */
	const char *rcpt; /* for smime_strict: whose keys */
	/* PLAN_BOUNCE */
	const char *dsn;
	char *reason;
};

/* The sender's signing key, looked up once per message when needed. */
struct signer {
	bool looked_up, ok;
	X509 *cert;
	STACK_OF(X509) * chain;
	EVP_PKEY *key; /* borrowed from the cache */
	const EVP_MD *md;
	char fpr[STORE_FPR_LEN + 1];
	char *why; /* why there is none */
};

struct group {
	struct plan *plan; /* its first recipient's */
	size_t *rcpt; /* indexes into the envelope */
	size_t n;
};

/* A new message being written into incoming/. */
struct output {
	struct spool_writer *w;
	struct spool_env env;
	char *log; /* the decision line, "queued as" follows */
};

struct job {
	struct engine *e;
	uint64_t id;
	char qid[QID_LEN + 1];
	int fd; /* the spool file, from the dispatcher */
	struct spool_env *env;
	struct mime_src src; /* the content of the spool file */
	struct msg_top top;
	const char *sender; /* From mailbox, else envelope sender, or NULL */
	const struct policy *sender_pol;
	bool trigger; /* the subject trigger is in the subject */
	struct signer signer;
	struct plan *plans; /* one per envelope recipient */
	struct group *groups;
	size_t ngroups;
	struct output *outs;
	size_t nouts;
	bool import; /* an internal recipient has auto_import_certificates */
	bool imported; /* the signer's certificates were imported */
	char *defer; /* why the job is deferred */
};

/* engine_cache.c: valid for one job (engine_cache_begin before each). */
struct ecache *engine_cache_new(void);
void engine_cache_free(struct ecache **);
/* Drops everything when the store changed, or when the time is up. */
void engine_cache_begin(struct engine *);
/* NULL addr: the global level. The result lives until the next begin. */
int engine_policy(struct engine *, const char *addr,
    const struct policy **pol_r, const char **error_r);
int engine_select_encrypt(struct engine *, const char *addr,
    const struct cert_selection **sel_r, const char **error_r);
int engine_select_sign(struct engine *, const char *addr,
    const struct cert_selection **sel_r, const char **error_r);
int engine_select_decrypt(struct engine *, const char *addr, bool strict,
    const struct cert_selection **sel_r, const char **error_r);
/* A stored certificate by fingerprint (additional_certificates). */
int engine_cert(
    struct engine *, const char *fpr, X509 **x_r, const char **error_r);
/* The unsealed private key of a certificate (borrowed). */
int engine_key(
    struct engine *, const char *fpr, EVP_PKEY **key_r, const char **error_r);

/* engine_decide.c */
int engine_read_top(struct job *, const char **error_r);
int engine_decide(struct job *, const char **error_r);
void engine_plans_free(struct job *);
/* "sha256:" and the first 16 hex digits. */
void engine_fpr_short(const char *fpr, char out[24]);

/* engine_transform.c */
/*
 * Writes the output of a group. 0 written; 1 the output is larger than
 * after_filter_message_size_limit (nothing kept; *reason_r says so);
 * -1 an error (the job is deferred).
 */
int engine_transform(
    struct job *, struct group *, struct output *, const char **reason_r);
/* The recipients of a group for a log line: "<a>,<b>". */
char *engine_group_rcpts(const struct job *, const struct group *);
/* Why a group goes as it came, per recipient when they differ. */
char *engine_group_note(const struct job *, const struct group *);
/* Verifies a signed message for auto_import_certificates only. */
void engine_import_only(struct job *);
/* The DSN for the recipients that get no copy. */
int engine_write_dsn(struct job *, const struct bounce_rcpt *, size_t n,
    struct output *, const char **error_r);

/* engine.c */
/* A new output file in incoming/, announced to the dispatcher. */
int engine_output_new(struct job *, struct output *, const char **error_r);
void engine_output_discard(struct output *);

#endif
