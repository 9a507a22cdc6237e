/* The SASL password file (smtp_sasl_password_maps). */
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "smtp/sasl_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strlist errors = { 0 };
	struct sasl_map *m;

	m = sasl_map_parse("fuzz", (const char *)data, size, &errors);
	(void)sasl_map_lookup(m, "relay.example", 587, false);
	for (size_t i = 0; i < m->n; i++)
		(void)sasl_map_lookup(m, m->v[i].host, m->v[i].port, true);
	sasl_map_free(&m);
	strlist_free(&errors);
	return 0;
}
