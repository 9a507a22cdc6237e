/*
 * Recipient verification (reject_unverified_recipient, seed guide 4.5):
 * before a recipient in relay_domains is accepted, the internal relay
 * host is asked (EHLO, MAIL FROM:<>, RCPT TO:<addr>, QUIT). Its answer is
 * cached in data_directory/verify.cache: accepted addresses for
 * address_verify_positive_expire_time, rejected ones for
 * address_verify_negative_expire_time. Probes for one address are
 * shared; a temporary failure is not cached.
 */
#ifndef MAILSEAL_VERIFY_H
#define MAILSEAL_VERIFY_H

#include "smtp/smtp_server.h"

struct event_base;
struct config;
struct dns;
struct verify;

struct verify *verify_new(
    struct event_base *, struct config *, struct dns *, const char **error_r);
void verify_set_config(struct verify *, struct config *);
/* Frees; pending callers are not answered (their sessions are gone). */
void verify_free(struct verify **);
/* The verify hook of the SMTP server (smtpd_verify_fn). */
void verify_rcpt(void *ctx, const char *rcpt, smtpd_verify_done, void *arg);

#endif
