/* SPDX-License-Identifier: MIT */
/* idmap.h — a small hash map from uint32 ids (handles, context ids) to pointers. */
#ifndef CORE_IDMAP_H
#define CORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_entry {
	uint32_t key;
	void *val;
	struct idmap_entry *next;
};

struct idmap {
	struct idmap_entry **buckets;
	size_t nbuckets;	/* power of two */
	size_t count;
};

void idmap_init(struct idmap *m);
void idmap_free(struct idmap *m);
void *idmap_get(const struct idmap *m, uint32_t key);
/* Insert or replace. Returns 0 or -ENOMEM. */
int idmap_put(struct idmap *m, uint32_t key, void *val);
/* Remove; returns the old value or NULL. */
void *idmap_del(struct idmap *m, uint32_t key);
/* Call fn for each entry; fn may not modify the map. */
void idmap_each(const struct idmap *m, void (*fn)(uint32_t key, void *val, void *arg), void *arg);
/* Collect up to n values into out; returns how many. */
size_t idmap_values(const struct idmap *m, void **out, size_t n);

#endif
