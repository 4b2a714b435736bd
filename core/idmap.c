// SPDX-License-Identifier: MIT
/* idmap.c — chained hash map keyed by uint32 (see idmap.h). Not locked. */
#include <errno.h>
#include <stdlib.h>

#include "core/idmap.h"

static size_t slot(const struct idmap *m, uint32_t key)
{
	return (key * 2654435761u) & (m->nbuckets - 1);
}

void idmap_init(struct idmap *m)
{
	m->buckets = NULL;
	m->nbuckets = 0;
	m->count = 0;
}

void idmap_free(struct idmap *m)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct idmap_entry *e = m->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->buckets);
	idmap_init(m);
}

void *idmap_get(const struct idmap *m, uint32_t key)
{
	if (!m->nbuckets)
		return NULL;
	for (struct idmap_entry *e = m->buckets[slot(m, key)]; e; e = e->next)
		if (e->key == key)
			return e->val;
	return NULL;
}

static int grow(struct idmap *m)
{
	size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
	struct idmap_entry **b = calloc(n, sizeof(*b));
	struct idmap old = *m;

	if (!b)
		return -ENOMEM;
	m->buckets = b;
	m->nbuckets = n;
	for (size_t i = 0; i < old.nbuckets; i++) {
		struct idmap_entry *e = old.buckets[i], *next;

		for (; e; e = next) {
			size_t s = slot(m, e->key);

			next = e->next;
			e->next = b[s];
			b[s] = e;
		}
	}
	free(old.buckets);
	return 0;
}

int idmap_put(struct idmap *m, uint32_t key, void *val)
{
	struct idmap_entry *e;
	size_t s;

	if (m->nbuckets) {
		for (e = m->buckets[slot(m, key)]; e; e = e->next) {
			if (e->key == key) {
				e->val = val;
				return 0;
			}
		}
	}
	if (m->count >= m->nbuckets && grow(m) < 0)
		return -ENOMEM;
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	s = slot(m, key);
	e->key = key;
	e->val = val;
	e->next = m->buckets[s];
	m->buckets[s] = e;
	m->count++;
	return 0;
}

void *idmap_del(struct idmap *m, uint32_t key)
{
	struct idmap_entry **pp, *e;
	void *val;

	if (!m->nbuckets)
		return NULL;
	for (pp = &m->buckets[slot(m, key)]; (e = *pp); pp = &e->next) {
		if (e->key == key) {
			*pp = e->next;
			val = e->val;
			free(e);
			m->count--;
			return val;
		}
	}
	return NULL;
}

void idmap_each(const struct idmap *m, void (*fn)(uint32_t key, void *val, void *arg), void *arg)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct idmap_entry *e = m->buckets[i]; e; e = e->next)
			fn(e->key, e->val, arg);
}

size_t idmap_values(const struct idmap *m, void **out, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct idmap_entry *e = m->buckets[i]; e && k < n; e = e->next)
			out[k++] = e->val;
	return k;
}
