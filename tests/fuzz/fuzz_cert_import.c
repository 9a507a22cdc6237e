/*
 * libFuzzer: the certificate import parser (PEM, DER, PKCS#7, PKCS#8,
 * PKCS#12), the description of what it finds for the store, and CRLs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "crypto/certs.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct certs_bundle b;
	STACK_OF(X509_CRL) *crls = NULL;
	const char *why = NULL;

	/* The seeds' PKCS#12 and encrypted keys use this password. */
	if (certs_parse(data, size, "fuzz", &b, &why) == 0) {
		/* sk_X509_num(NULL) is -1. */
		if ((b.certs != NULL ? sk_X509_num(b.certs) : 0) + b.nkeys == 0)
			abort(); /* success means something was found */
		for (int i = 0; i < sk_X509_num(b.certs); i++) {
			struct store_cert c;
			if (certs_describe(
				sk_X509_value(b.certs, i), &c, &why) == 0) {
				if (strlen(c.fpr) != STORE_FPR_LEN ||
				    c.der_len == 0)
					abort();
				for (size_t k = 0; k < c.emails.n; k++)
					if (strchr(c.emails.v[k], '@') == NULL)
						abort();
				certs_describe_free(&c);
			} else if (why == NULL)
				abort();
		}
		certs_bundle_free(&b);
	} else if (why == NULL)
		abort(); /* a refusal always says why */
	why = NULL;
	if (certs_parse_crls(data, size, &crls, &why) == 0) {
		for (int i = 0; i < sk_X509_CRL_num(crls); i++) {
			X509_CRL *crl = sk_X509_CRL_value(crls, i);
			char *issuer =
			    certs_name_text(X509_CRL_get_issuer(crl));
			free(issuer);
			(void)certs_time(X509_CRL_get0_lastUpdate(crl));
		}
		sk_X509_CRL_pop_free(crls, X509_CRL_free);
	} else if (why == NULL)
		abort();
	return 0;
}
