/*
 * libFuzzer: JSON bodies of the console. A body is parsed as the API
 * does, then every member is checked as the MTA page's field of that
 * name, and through the generic getters; what passes must be a value the
 * configuration accepts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin/api.h"
#include "admin/api_config.h"
#include "common/config.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *body, *errors, *v, *list;
	const char *key, *s, *why;
	int b;

	body =
	    json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (body == NULL)
		return 0;
	errors = json_object();
	if (json_is_object(body)) {
		json_object_foreach(body, key, v)
		{
			for (const struct console_field *f = mta_fields;
			     f->key != NULL; f++) {
				char *text = NULL;
				size_t before = json_object_size(errors);
				int rc =
				    console_field_text(f, v, &text, errors);
				if (rc == 0 &&
				    (text == NULL ||
					json_object_size(errors) != before))
					abort();
				if (rc == -1 &&
				    (text != NULL ||
					json_object_get(errors, f->key) ==
					    NULL))
					abort();
				/* Accepted text is accepted by the config. */
				if (rc == 0 &&
				    config_check_value(f->id, text, &why) == -1)
					abort();
				free(text);
				json_object_clear(errors);
			}
			json_get_string(body, key, false, 64, &s, errors);
			json_get_bool(body, key, false, &b, errors);
			json_get_strings(
			    body, key, false, 10, 64, &list, errors);
		}
		static const char *const allowed[] = { "a", "b", NULL };
		json_reject_unknown(body, allowed, errors);
	}
	json_decref(errors);
	json_decref(body);
	return 0;
}
