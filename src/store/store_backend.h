/*
 * What a store backend implements (private to src/store/). store.c
 * checks and canonicalises every argument, then calls these with
 * canonical names only; a backend stores and finds records, nothing more.
 * A new backend (postgres.c) fills in one struct store_backend and adds
 * itself to the table in store.c; no caller changes.
 *
 * Conventions: 0 or -1 with a complete message in *error_r (made with
 * store_error()); "already exists" and "no such ..." are errors of the
 * add and delete operations; every write increases the generation.
 */
#ifndef MAILSEAL_STORE_BACKEND_H
#define MAILSEAL_STORE_BACKEND_H

#include "store/store.h"

struct store {
	const struct store_backend *be;
	void *impl; /* the backend's state */
	char *path; /* a file, when there is one */
	bool in_txn;
};

struct store_backend {
	const char *scheme; /* "sqlite:" */
	int (*open)(struct store *, const char *location, int flags,
	    const char **error_r);
	void (*close)(struct store *);
	int (*schema_version)(struct store *);
	int (*generation)(struct store *, uint64_t *gen_r);
	int (*begin)(struct store *, const char **error_r);
	int (*commit)(struct store *, const char **error_r);
	void (*rollback)(struct store *);

	int (*meta_get)(struct store *, const char *key, char **value_r,
	    const char **error_r);
	int (*meta_set)(struct store *, const char *key, const char *value,
	    const char **error_r);

	/* Domains (STORE_DOMAIN) and users (STORE_USER). */
	int (*name_add)(struct store *, enum store_level, const char *name,
	    const char **error_r);
	int (*name_delete)(struct store *, enum store_level, const char *name,
	    const char **error_r);
	int (*name_exists)(struct store *, enum store_level, const char *name,
	    bool *exists_r, const char **error_r);
	int (*name_list)(struct store *, enum store_level, const char *search,
	    struct strlist *, const char **error_r);

	int (*props_get)(struct store *, enum store_level, const char *owner,
	    struct store_props *, const char **error_r);
	int (*prop_set)(struct store *, enum store_level, const char *owner,
	    const char *name, const char *value, const char **error_r);
	int (*prop_unset)(struct store *, enum store_level, const char *owner,
	    const char *name, const char **error_r);

	int (*cert_put)(struct store *, const struct store_cert *,
	    bool *added_r, const char **error_r);
	int (*cert_find)(struct store *, const struct store_cert_query *,
	    const char *fpr, struct store_certs *, const char **error_r);
	int (*cert_delete)(
	    struct store *, const char *fpr, const char **error_r);

	int (*key_put)(struct store *, const char *fpr,
	    const unsigned char *blob, size_t len, const char **error_r);
	int (*key_get)(struct store *, const char *fpr, unsigned char **blob_r,
	    size_t *len_r, const char **error_r);

	int (*bind)(struct store *, const char *fpr, const char *target,
	    const char **error_r);
	int (*unbind)(struct store *, const char *fpr, const char *target,
	    const char **error_r);
	int (*bindings)(struct store *, const char *fpr, struct strlist *,
	    const char **error_r);

	int (*crl_put)(struct store *, const struct store_crl *, bool *added_r,
	    const char **error_r);
	int (*crl_list)(struct store *, const char *issuer_hash, bool with_der,
	    struct store_crls *, const char **error_r);
	int (*crl_delete)(
	    struct store *, const char *fpr, const char **error_r);

	int (*ctl_set)(struct store *, const char *fpr, enum store_ctl_status,
	    const char **error_r);
	int (*ctl_get)(struct store *, const char *fpr, enum store_ctl_status *,
	    const char **error_r);
	int (*ctl_list)(struct store *, struct store_ctl_entry **, size_t *,
	    const char **error_r);

	int (*admin_add)(struct store *, const char *name, const char *hash,
	    const char **error_r);
	int (*admin_get)(struct store *, const char *name,
	    struct store_admin **, const char **error_r);
	int (*admin_list)(struct store *, struct store_admin **, size_t *,
	    const char **error_r);
	int (*admin_delete)(
	    struct store *, const char *name, const char **error_r);
	int (*admin_set_password)(struct store *, const char *name,
	    const char *hash, const char **error_r);
};

extern const struct store_backend store_sqlite_backend;

/* Formats a message into the store's error buffer; returns -1. */
int store_error(const char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
