/* A small hash table of strings to pointers (chained, growing). */
#ifndef MAILSEAL_HTAB_H
#define MAILSEAL_HTAB_H

#include <stddef.h>

struct htab;

struct htab *htab_new(void);
/* Frees the table; free_value (may be NULL) is called for each value. */
void htab_free(struct htab **, void (*free_value)(void *));
/* The value of key, or NULL. */
void *htab_get(const struct htab *, const char *key);
/* Adds or replaces; the key is copied. */
void htab_put(struct htab *, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *htab_del(struct htab *, const char *key);
size_t htab_count(const struct htab *);
/* Calls fn for each entry; fn must not change the table. */
void htab_walk(
    const struct htab *, void (*fn)(const char *, void *, void *), void *arg);
/* The values, in no order (the caller frees the array). */
void **htab_values(const struct htab *, size_t *n_r);

#endif
