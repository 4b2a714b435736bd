/* SPDX-License-Identifier: MIT */
/* idmap.h — a small hash map from uint32 ids (handles, context ids) to pointers. */
#ifndef CORE_IDMAP_H
#define CORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

/*
 * An emptied map shrinks back to this many slots (16 KiB), never below:
 * one that fills and empties on every round (100 calls in flight, then
 * none) would otherwise be rebuilt several times a round.
 */
#define IDMAP_KEEP_SLOTS 1024

/*
 * Open addressing with linear probing in one array: no allocation per
 * entry (a call puts and deletes a handle or two on every round trip).
 * A slot is free when its val is NULL, so NULL cannot be stored.
 */
struct idmap_slot {
	uint32_t key;
	void *val;
};

struct idmap {
	struct idmap_slot *slots;
	size_t nslots;		/* power of two, or 0 */
	size_t count;
};

void idmap_init(struct idmap *m);
void idmap_free(struct idmap *m);
void *idmap_get(const struct idmap *m, uint32_t key);
/* Insert or replace; val must not be NULL. Returns 0, -EINVAL or -ENOMEM. */
int idmap_put(struct idmap *m, uint32_t key, void *val);
/* Remove; returns the old value or NULL. */
void *idmap_del(struct idmap *m, uint32_t key);
/* Call fn for each entry; fn may not modify the map. */
void idmap_each(const struct idmap *m, void (*fn)(uint32_t key, void *val, void *arg), void *arg);
/* Collect up to n values into out; returns how many. */
size_t idmap_values(const struct idmap *m, void **out, size_t n);

#endif
