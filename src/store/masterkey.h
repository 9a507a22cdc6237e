/*
 * The store master key: 32 random bytes in a file that only root can read
 * (master_key_file, mode 0600), kept outside the store. Private keys are
 * stored sealed under it with AES-256-GCM.
 *
 * Its path through the processes: the parent (root) makes the file at
 * first start and reads it; children run as mail_owner and cannot read
 * the file, so the parent writes the key into a pipe for each child that
 * needs it and hands over the read end, its number in MAILSEAL_KEY_FD
 * (masterkey_pass, masterkey_receive). mailsealctl, run as root, reads
 * the file itself. The key is never logged; every copy is wiped.
 */
#ifndef MAILSEAL_MASTERKEY_H
#define MAILSEAL_MASTERKEY_H

#include <stdbool.h>
#include <stddef.h>

#define MASTERKEY_LEN 32
#define MASTERKEY_ID_LEN 32 /* hex digits */
#define MASTERKEY_ENV "MAILSEAL_KEY_FD"

struct config;
struct masterkey;
struct store;

/* master_key_file, or data_directory/master.key. */
char *masterkey_path(const struct config *);

/*
 * Reads the key file; with create, makes it first if it is missing
 * (*created_r tells). The file must be a regular file of 32 bytes, owned
 * by the effective user and closed to group and others.
 */
int masterkey_load(const char *path, bool create, struct masterkey **mk_r,
    bool *created_r, const char **error_r);
/* A key from bytes (tests, and the receiving side). */
struct masterkey *masterkey_from_bytes(const unsigned char *key);
/* Wipes and frees; NULLs the pointer. */
void masterkey_free(struct masterkey **);

/*
 * Writes the key into a new pipe and returns its read end (close-on-exec
 * set; the caller dups it into the child and closes its copy).
 */
int masterkey_pass(const struct masterkey *, int *fd_r, const char **error_r);
/*
 * In a child: reads the key from the descriptor named by MAILSEAL_KEY_FD,
 * closes it and removes the variable. Exactly 32 bytes, then end of file.
 */
int masterkey_receive(struct masterkey **mk_r, const char **error_r);
int masterkey_receive_fd(int fd, struct masterkey **mk_r, const char **error_r);

/*
 * A public identifier of the key (an HMAC under it, not the key): the
 * store records it so that a wrong or newly made key file is noticed
 * before anything is sealed under it.
 */
void masterkey_id(const struct masterkey *, char id[MASTERKEY_ID_LEN + 1]);
/*
 * Checks the key against the one the store records, and records it when
 * the store has none yet. A mismatch is an error: the store's keys were
 * sealed under another master key.
 */
int masterkey_check_store(
    const struct masterkey *, struct store *, const char **error_r);

/*
 * The master key of a store, as root: loads the file, or makes it when
 * it is missing and the store holds nothing sealed yet (a store that
 * records a key id never gets a new key silently: the file must be
 * restored). Then checks or records the id (masterkey_check_store).
 */
int masterkey_setup(struct store *, const char *path, struct masterkey **mk_r,
    bool *created_r, const char **error_r);

/*
 * AES-256-GCM with a random 96-bit nonce; aad binds the blob to its use
 * (e.g. the certificate fingerprint), so that a blob moved to another row
 * does not open. Blob: version byte 1, nonce, ciphertext, 16-byte tag.
 */
int masterkey_seal(const struct masterkey *, const char *aad,
    const unsigned char *in, size_t len, unsigned char **out_r,
    size_t *outlen_r, const char **error_r);
/* The reverse; the caller frees the plaintext with xfree_secret(). */
int masterkey_unseal(const struct masterkey *, const char *aad,
    const unsigned char *in, size_t len, unsigned char **out_r,
    size_t *outlen_r, const char **error_r);

#endif
