/* Text from files and the spool, made safe for JSON. */
#ifndef MAILSEAL_TEXT_H
#define MAILSEAL_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* A JSON string of bytes that may not be UTF-8 (bad bytes become U+FFFD). */
json_t *text_json(const char *, size_t);
/* Whether s (len bytes) contains needle, ASCII case-insensitively. */
bool text_contains_ci(const char *s, size_t len, const char *needle);

#endif
