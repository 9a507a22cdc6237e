/* TLS contexts and self-signed certificates (OpenSSL 3). */
#ifndef MAILSEAL_TLS_H
#define MAILSEAL_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/*
 * Makes a self-signed certificate (EC P-256, 10 years, CN and DNS name
 * cn) unless both files exist. The key file gets mode 0600.
 */
int tls_make_selfsigned(const char *cert_path, const char *key_path,
    const char *cn, const char **error_r);
/* A server context with the certificate chain and key of the files. */
SSL_CTX *tls_server_ctx(
    const char *cert_path, const char *key_path, const char **error_r);
/* A client context: TLS 1.2 or newer, no verification (opportunistic). */
SSL_CTX *tls_client_ctx(const char **error_r);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" */
void tls_describe(SSL *, char *, size_t);

#endif
