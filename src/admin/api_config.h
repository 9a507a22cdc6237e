/*
 * The console's view of mailseal.conf: a field is a parameter shown with
 * a JSON type (a list as an array, a next hop as {host, port, mx}); a
 * page is a table of fields. Used by the MTA and network pages.
 */
#ifndef MAILSEAL_API_CONFIG_H
#define MAILSEAL_API_CONFIG_H

#include <jansson.h>

#include "common/params.h"

struct admin;
struct api_req;
struct config;

enum console_kind { CF_TEXT, CF_BOOL, CF_INT, CF_LIST, CF_NEXTHOP };

struct console_field {
	const char *key; /* the parameter's name */
	enum param_id id;
	enum console_kind kind;
};

extern const struct console_field mta_fields[];

/* The value of a field in a configuration, as JSON. */
json_t *console_field_json(const struct config *, const struct console_field *);
/*
 * The config text of a field's JSON value: 0, or -1 with a message in
 * errors under the field's key. The caller frees *text_r.
 */
int console_field_text(
    const struct console_field *, json_t *value, char **text_r, json_t *errors);
/* {"fields", "running", "pending", "file", "file_errors"} of a page. */
json_t *console_fields_state(struct admin *, const struct console_field *);
/* Checks and writes a PUT body of fields; replies with the new state. */
void console_fields_put(struct api_req *, const struct console_field *);

#endif
