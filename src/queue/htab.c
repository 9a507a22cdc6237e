#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "queue/htab.h"

struct hent {
	struct hent *next;
	char *key;
	void *value;
	uint32_t hash;
};

struct htab {
	struct hent **b;
	size_t nb, n;
};

static uint32_t
hash_str(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

struct htab *
htab_new(void)
{
	struct htab *t = xcalloc(1, sizeof(*t));

	t->nb = 64;
	t->b = xcalloc(t->nb, sizeof(*t->b));
	return t;
}

void
htab_free(struct htab **tp, void (*free_value)(void *))
{
	struct htab *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	for (size_t i = 0; i < t->nb; i++) {
		struct hent *e, *next;
		for (e = t->b[i]; e != NULL; e = next) {
			next = e->next;
			if (free_value != NULL)
				free_value(e->value);
			free(e->key);
			free(e);
		}
	}
	free(t->b);
	free(t);
}

static void
htab_grow(struct htab *t)
{
	size_t nb = t->nb * 2;
	struct hent **b = xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < t->nb; i++) {
		struct hent *e, *next;
		for (e = t->b[i]; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

void *
htab_get(const struct htab *t, const char *key)
{
	uint32_t h = hash_str(key);

	for (struct hent *e = t->b[h & (t->nb - 1)]; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e->value;
	return NULL;
}

void
htab_put(struct htab *t, const char *key, void *value)
{
	uint32_t h = hash_str(key);
	struct hent *e;

	for (e = t->b[h & (t->nb - 1)]; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0) {
			e->value = value;
			return;
		}
	if (t->n >= t->nb)
		htab_grow(t);
	e = xmalloc(sizeof(*e));
	e->key = xstrdup(key);
	e->value = value;
	e->hash = h;
	e->next = t->b[h & (t->nb - 1)];
	t->b[h & (t->nb - 1)] = e;
	t->n++;
}

void *
htab_del(struct htab *t, const char *key)
{
	uint32_t h = hash_str(key);
	struct hent **pp = &t->b[h & (t->nb - 1)], *e;
	void *v;

	for (; (e = *pp) != NULL; pp = &e->next)
		if (e->hash == h && strcmp(e->key, key) == 0) {
			*pp = e->next;
			v = e->value;
			free(e->key);
			free(e);
			t->n--;
			return v;
		}
	return NULL;
}

size_t
htab_count(const struct htab *t)
{
	return t->n;
}

void
htab_walk(
    const struct htab *t, void (*fn)(const char *, void *, void *), void *arg)
{
	for (size_t i = 0; i < t->nb; i++)
		for (struct hent *e = t->b[i]; e != NULL; e = e->next)
			fn(e->key, e->value, arg);
}

void **
htab_values(const struct htab *t, size_t *n_r)
{
	void **v = xcalloc(t->n + 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i < t->nb; i++)
		for (struct hent *e = t->b[i]; e != NULL; e = e->next)
			v[n++] = e->value;
	*n_r = n;
	return v;
}
