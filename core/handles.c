// SPDX-License-Identifier: MIT
/*
 * handles.c — reply handles: the handles of receivers that wait for one
 * message from one respondent (a call's reply), MG_HANDLE_REPLY_MIN up.
 *
 * Two things rest on them (README, Security):
 *  - nobody can guess one: 17 of the 30 free bits are random, so a
 *    context that wants to answer a call made to another cannot aim at
 *    it, even before the router's check that a reply comes from its
 *    respondent (core/router.c) throws the attempt away;
 *  - the kernel can check them without a table that forgets: the low
 *    HANDLE_REPLY_SLOT_BITS bits are a slot that no other live reply
 *    handle of this process holds, and bpf/channel.bpf.c remembers each
 *    reply handle sent down a channel in that slot (WIRE_REPLY_SLOTS of
 *    them), so a live handle is never evicted and a record up to a reply
 *    handle the slot does not hold for that channel can be dropped.
 * When every slot is live (8,192 calls waiting in one process) a reply
 * receiver gets an ordinary handle instead: still bound to its respondent
 * by the router, not checked by the kernel.
 *
 * Owns: the process-wide slot bitmap and its random source. One mutex,
 * taken once per call and once per reply (~20 ns uncontended).
 */
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include <mitogen/router.h>
#include "core/handles.h"
#include "core/wire.h"

_Static_assert(MG_HANDLE_REPLY_MIN == WIRE_REPLY_MIN, "reply handles");
_Static_assert((WIRE_REPLY_SLOTS & (WIRE_REPLY_SLOTS - 1)) == 0, "slots: a power of 2");

#define WORDS (WIRE_REPLY_SLOTS / 64)
#define RANDOM_BITS 17		/* 30 - log2(WIRE_REPLY_SLOTS) */
_Static_assert((1u << (30 - RANDOM_BITS)) == WIRE_REPLY_SLOTS, "bits");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t live[WORDS];
static uint32_t next_word;
static uint64_t rng;		/* xorshift64*, seeded from getrandom */
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* A forked child starts with no live handles and its own sequence. */
static void after_fork(void)
{
	pthread_mutex_init(&lock, NULL);
	for (unsigned i = 0; i < WORDS; i++)
		live[i] = 0;
	rng = 0;
}

static void init(void)
{
	pthread_atfork(NULL, NULL, after_fork);
}

static uint64_t next_random(void)
{
	if (!rng) {
		struct timespec ts;

		if (getrandom(&rng, sizeof(rng), GRND_NONBLOCK) != sizeof(rng)) {
			/* No entropy yet (early boot): still not a counter. */
			clock_gettime(CLOCK_MONOTONIC, &ts);
			rng = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^
			      ((uint64_t)getpid() << 16);
		}
		rng |= 1;
	}
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

uint32_t handle_reply_take(void)
{
	uint32_t slot = 0, handle;
	unsigned w;
	bool found = false;

	pthread_once(&once, init);
	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < WORDS; i++) {
		w = (next_word + i) % WORDS;
		if (~live[w]) {
			slot = w * 64 + (uint32_t)__builtin_ctzll(~live[w]);
			live[w] |= 1ull << (slot % 64);
			/* Stay in this word while it has room: neighbours in
			 * time share cache lines, here and in the kernel. */
			next_word = w;
			found = true;
			break;
		}
	}
	handle = found ? MG_HANDLE_REPLY_MIN |
			 (uint32_t)(next_random() >> (64 - RANDOM_BITS)) << (30 - RANDOM_BITS) |
			 slot
		       : 0;
	pthread_mutex_unlock(&lock);
	return handle;
}

void handle_reply_put(uint32_t handle)
{
	uint32_t slot;

	if (handle < MG_HANDLE_REPLY_MIN)
		return;
	slot = handle & (WIRE_REPLY_SLOTS - 1);
	pthread_mutex_lock(&lock);
	live[slot / 64] &= ~(1ull << (slot % 64));
	pthread_mutex_unlock(&lock);
}
