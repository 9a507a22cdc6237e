/* What the admin process holds of the store: one handle, the master key. */
#ifndef MAILSEAL_ADMIN_STORE_H
#define MAILSEAL_ADMIN_STORE_H

struct admin;
struct config;
struct store;
struct masterkey;
struct certs;

struct admin_store {
	struct store *st;
	struct masterkey *mk; /* to seal imported private keys */
	struct certs *cs; /* validation, for the certificate lists */
};

/* Opens the store and receives the master key from the parent. */
int admin_store_open(struct admin *, const char **error_r);
void admin_store_close(struct admin *);
struct store *admin_st(struct admin *);

/* The console's certificate files (data_directory when not configured). */
void admin_tls_paths(const struct config *, char **cert_r, char **key_r);

/*
 * The first admin, made by the parent at first start: when the store has
 * no admin, "admin" with a random password, which is printed once on
 * standard error (never logged). 0, or -1 with a reason.
 */
int admin_first_setup(struct store *, const char **error_r);

#endif
