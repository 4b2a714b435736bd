// SPDX-License-Identifier: MIT
/*
 * idmap.c — uint32 -> pointer map, open addressing (see idmap.h). Not
 * locked. Kept at most half full; a deletion shifts the entries of its
 * probe run back, so there are no tombstones and lookups stay short.
 */
#include <errno.h>
#include <stdlib.h>

#include "core/idmap.h"

#define IDMAP_MIN_SLOTS 16

static size_t home(uint32_t key, size_t nslots)
{
	return (key * 2654435761u) & (nslots - 1);
}

void idmap_init(struct idmap *m)
{
	m->slots = NULL;
	m->nslots = 0;
	m->count = 0;
}

void idmap_free(struct idmap *m)
{
	free(m->slots);
	idmap_init(m);
}

/* The slot holding key, or the free slot where it would go. */
static struct idmap_slot *find(const struct idmap *m, uint32_t key)
{
	size_t mask = m->nslots - 1, i = home(key, m->nslots);

	while (m->slots[i].val && m->slots[i].key != key)
		i = (i + 1) & mask;
	return &m->slots[i];
}

void *idmap_get(const struct idmap *m, uint32_t key)
{
	return m->nslots ? find(m, key)->val : NULL;
}

static int resize(struct idmap *m, size_t n)
{
	struct idmap old = *m;

	m->slots = calloc(n, sizeof(*m->slots));
	if (!m->slots) {
		*m = old;
		return -ENOMEM;
	}
	m->nslots = n;
	for (size_t i = 0; i < old.nslots; i++)
		if (old.slots[i].val)
			*find(m, old.slots[i].key) = old.slots[i];
	free(old.slots);
	return 0;
}

int idmap_put(struct idmap *m, uint32_t key, void *val)
{
	struct idmap_slot *s;

	if (!val)
		return -EINVAL;
	if (m->nslots) {
		s = find(m, key);
		if (s->val) {
			s->val = val;
			return 0;
		}
	}
	if ((m->count + 1) * 2 > m->nslots &&
	    resize(m, m->nslots ? m->nslots * 2 : IDMAP_MIN_SLOTS) < 0)
		return -ENOMEM;
	s = find(m, key);
	s->key = key;
	s->val = val;
	m->count++;
	return 0;
}

void *idmap_del(struct idmap *m, uint32_t key)
{
	size_t mask, i, j;
	void *val;

	if (!m->nslots)
		return NULL;
	mask = m->nslots - 1;
	i = (size_t)(find(m, key) - m->slots);
	val = m->slots[i].val;
	if (!val)
		return NULL;
	/*
	 * Backward shift: move up each later entry of the run whose home
	 * does not lie cyclically in (i, j], so that every entry stays
	 * reachable from its home without passing a free slot.
	 */
	for (j = (i + 1) & mask; m->slots[j].val; j = (j + 1) & mask) {
		size_t h = home(m->slots[j].key, m->nslots);

		if (((j - h) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].val = NULL;
	m->count--;
	/* Shrink a big map that emptied out (10,000 contexts gone, say). */
	if (m->nslots > IDMAP_KEEP_SLOTS && m->count * 8 < m->nslots)
		resize(m, m->nslots / 2);	/* on ENOMEM: stays as it is */
	return val;
}

void idmap_each(const struct idmap *m, void (*fn)(uint32_t key, void *val, void *arg), void *arg)
{
	for (size_t i = 0; i < m->nslots; i++)
		if (m->slots[i].val)
			fn(m->slots[i].key, m->slots[i].val, arg);
}

size_t idmap_values(const struct idmap *m, void **out, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < m->nslots && k < n; i++)
		if (m->slots[i].val)
			out[k++] = m->slots[i].val;
	return k;
}
