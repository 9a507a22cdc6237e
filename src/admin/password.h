/*
 * Admin passwords: scrypt (RFC 7914) through OpenSSL 3's EVP_KDF, with a
 * random salt and the cost parameters kept in the hash string:
 *
 *   $scrypt$ln=15,r=8,p=1$<salt, 32 hex digits>$<key, 64 hex digits>
 *
 * so that the cost can be raised later without breaking old hashes.
 */
#ifndef MAILSEAL_PASSWORD_H
#define MAILSEAL_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

/* Hashes a password with fresh salt; the caller frees *hash_r. */
int password_hash(const char *password, char **hash_r, const char **error_r);
/*
 * Whether password matches hash (constant-time compare). A malformed
 * hash, or cost parameters out of bounds, never match.
 */
bool password_verify(const char *password, const char *hash);
/* A random password of len-1 characters from an unambiguous alphabet. */
void password_random(char *buf, size_t len);
/* Checks a new password's strength: 0, or -1 with a reason. */
int password_check_new(const char *password, const char **error_r);

#endif
