// SPDX-License-Identifier: MIT
/*
 * test_idmap.c — the id map under the router's tables (core/idmap.h):
 * every key put is found with its latest value, deleted keys are gone
 * and the rest stay reachable (deletion shifts entries back along their
 * probe run, including runs that wrap past the end of the array), the
 * map grows and shrinks back (but not below IDMAP_KEEP_SLOTS, so that
 * one filled and emptied on every round keeps its array), NULL is refused, and each/values see exactly
 * the live entries. Checked against a plain array over random work.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "selftests/lib/harness.h"
#include "core/idmap.h"

#define NKEYS 4096

/* The reference: val[k] for key keys[k], 0 when absent. */
struct model {
	uint32_t keys[NKEYS];
	uintptr_t val[NKEYS];
	size_t live;
};

static void check_all(const struct idmap *m, const struct model *md)
{
	assert_int_equal(m->count, md->live);
	for (size_t k = 0; k < NKEYS; k++)
		assert_ptr_equal(idmap_get(m, md->keys[k]), (void *)md->val[k]);
}

static void sum_each(uint32_t key, void *val, void *arg)
{
	uintptr_t *sum = arg;

	sum[0]++;
	sum[1] += key ^ (uintptr_t)val;
}

static void test_random_against_model(void **state)
{
	static struct model md;
	struct idmap m;
	uint32_t seed = 12345;

	(void)state;
	idmap_init(&m);
	/*
	 * Distinct keys: multiples of 16 (they crowd few home slots while
	 * the map is small), random odd ones, and 0.
	 */
	for (size_t k = 0; k < NKEYS; k++) {
		bool dup;

		do {
			md.keys[k] = k < NKEYS / 2 ? (uint32_t)(k + 1) * 16
						   : (uint32_t)rand_r(&seed) * 2 + 1;
			dup = false;
			for (size_t j = NKEYS / 2; j < k; j++)
				dup |= md.keys[j] == md.keys[k];
		} while (dup);
	}
	md.keys[NKEYS - 1] = 0;
	for (int step = 0; step < 200000; step++) {
		size_t k = (size_t)rand_r(&seed) % NKEYS;
		/* Phases: mostly filling, then mostly emptying, then mixed. */
		int phase = step / 50000, put = rand_r(&seed) % 4;
		bool do_put = phase == 0 ? put != 0 : phase == 1 ? put == 0 : put < 2;

		if (do_put) {
			uintptr_t v = (uintptr_t)step + 1;

			assert_int_equal(idmap_put(&m, md.keys[k], (void *)v), 0);
			md.live += !md.val[k];
			md.val[k] = v;
		} else {
			assert_ptr_equal(idmap_del(&m, md.keys[k]), (void *)md.val[k]);
			md.live -= !!md.val[k];
			md.val[k] = 0;
		}
		if (step % 5000 == 0)
			check_all(&m, &md);
	}
	check_all(&m, &md);

	/* each and values: exactly the live entries, once each. */
	uintptr_t want[2] = { 0, 0 }, got[2] = { 0, 0 };
	void **vals = calloc(NKEYS, sizeof(*vals));

	assert_non_null(vals);
	for (size_t k = 0; k < NKEYS; k++) {
		if (md.val[k]) {
			want[0]++;
			want[1] += md.keys[k] ^ md.val[k];
		}
	}
	idmap_each(&m, sum_each, got);
	assert_int_equal(got[0], want[0]);
	assert_int_equal(got[1], want[1]);
	assert_int_equal(idmap_values(&m, vals, NKEYS), md.live);
	if (md.live > 2)
		assert_int_equal(idmap_values(&m, vals, 2), 2);
	free(vals);

	/* Emptied: every key gone, and the array shrank back. */
	assert_true(m.nslots > IDMAP_KEEP_SLOTS);
	for (size_t k = 0; k < NKEYS; k++)
		idmap_del(&m, md.keys[k]);
	assert_int_equal(m.count, 0);
	assert_int_equal(m.nslots, IDMAP_KEEP_SLOTS);
	for (size_t k = 0; k < NKEYS; k++)
		assert_null(idmap_get(&m, md.keys[k]));
	idmap_free(&m);
	memset(&md, 0, sizeof(md));
}

/* Keys whose home is the last slot: their run wraps to slot 0, and
 * deleting from the middle of it must keep the wrapped ones found. */
static void test_wrapping_run(void **state)
{
	struct idmap m;
	uint32_t keys[6];
	size_t n = 0;

	(void)state;
	idmap_init(&m);
	assert_int_equal(idmap_put(&m, 1, (void *)1), 0);	/* 16 slots now */
	idmap_del(&m, 1);
	for (uint32_t k = 0; n < 6; k++)
		if (((k * 2654435761u) & 15) == 15)
			keys[n++] = k;
	/* 6 of 16 slots: no growth, the run covers slots 15, 0, 1, ... */
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(idmap_put(&m, keys[i], (void *)(uintptr_t)(i + 1)), 0);
	assert_int_equal(m.nslots, 16);
	assert_ptr_equal(idmap_del(&m, keys[1]), (void *)2);
	assert_ptr_equal(idmap_del(&m, keys[4]), (void *)5);
	for (size_t i = 0; i < 6; i++)
		assert_ptr_equal(idmap_get(&m, keys[i]),
				 i == 1 || i == 4 ? NULL : (void *)(uintptr_t)(i + 1));
	assert_int_equal(m.count, 4);
	idmap_free(&m);
}

/* 100 handles put and deleted on every round, as a fan-out's calls are:
 * after the first round the map is neither grown nor shrunk again. */
static void test_round_keeps_array(void **state)
{
	struct idmap m;
	struct idmap_slot *slots = NULL;
	size_t nslots = 0;

	(void)state;
	idmap_init(&m);
	assert_int_equal(idmap_put(&m, 1, (void *)1), 0);	/* a standing entry */
	for (uint32_t round = 0; round < 50; round++) {
		for (uint32_t i = 0; i < 100; i++)
			assert_int_equal(idmap_put(&m, 1000 + round * 100 + i, (void *)2), 0);
		for (uint32_t i = 0; i < 100; i++)
			assert_non_null(idmap_del(&m, 1000 + round * 100 + i));
		assert_int_equal(m.count, 1);
		if (round == 0) {
			slots = m.slots;
			nslots = m.nslots;
			assert_true(nslots >= 256);
		}
		assert_ptr_equal(m.slots, slots);
		assert_int_equal(m.nslots, nslots);
	}
	assert_ptr_equal(idmap_get(&m, 1), (void *)1);
	idmap_free(&m);
}

static void test_null_refused(void **state)
{
	struct idmap m;

	(void)state;
	idmap_init(&m);
	assert_int_equal(idmap_put(&m, 7, NULL), -EINVAL);
	assert_int_equal(m.count, 0);
	assert_null(idmap_get(&m, 7));
	assert_null(idmap_del(&m, 7));
	assert_int_equal(idmap_put(&m, 7, (void *)3), 0);
	assert_int_equal(idmap_put(&m, 7, (void *)4), 0);	/* replace */
	assert_int_equal(m.count, 1);
	assert_ptr_equal(idmap_get(&m, 7), (void *)4);
	idmap_free(&m);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_wrapping_run),
		cmocka_unit_test(test_round_keeps_array),
		cmocka_unit_test(test_null_refused),
	};
	return MG_TEST_RUN("core/idmap", tests);
}
