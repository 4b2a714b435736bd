// SPDX-License-Identifier: MIT
/*
 * latch.c — a thread-safe FIFO that puts consumers to sleep (mg_latch).
 * Receivers and selects are built on it. Owns only its queue and lock.
 *
 * Sleeping uses a futex on a wake-up sequence number rather than a
 * condition variable: one FUTEX_WAKE per put with a sleeper and one
 * FUTEX_WAIT per sleep, woken after the lock is dropped, so the woken
 * thread never contends for it (a condvar costs about twice the futex
 * calls on the call round trip). Before sleeping, a waiter whose recent
 * spins paid off watches the sequence number for a while (spin.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include <mitogen/router.h>
#include "core/latch.h"
#include "core/spin.h"

struct mg_latch {
	pthread_mutex_t lock;
	uint32_t seq;		/* bumped by every put and close; futex word */
	void **items;		/* ring buffer */
	size_t head, count, cap;
	unsigned waiters;
	int wake_fd;		/* a waiter in poll() (latch_arm_wake), or -1 */
	bool closed;
	void (*free_fn)(void *item);
};

struct mg_latch *mg_latch_new(void)
{
	struct mg_latch *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->wake_fd = -1;
	spin_mutex_init(&l->lock);
	return l;
}

void mg_latch_set_free(struct mg_latch *l, void (*free_fn)(void *item))
{
	if (l)
		l->free_fn = free_fn;
}

void mg_latch_free(struct mg_latch *l)
{
	if (!l)
		return;
	while (l->count) {
		void *it = l->items[l->head];

		l->head = (l->head + 1) % l->cap;
		l->count--;
		if (l->free_fn)
			l->free_fn(it);
	}
	free(l->items);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static int latch_grow(struct mg_latch *l)
{
	size_t cap = l->cap ? l->cap * 2 : 8;
	void **items = malloc(cap * sizeof(*items));

	if (!items)
		return -ENOMEM;
	for (size_t i = 0; i < l->count; i++)
		items[i] = l->items[(l->head + i) % l->cap];
	free(l->items);
	l->items = items;
	l->head = 0;
	l->cap = cap;
	return 0;
}

static void futex_wake(uint32_t *word, int n)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

#define DEFER_MAX 4
static __thread bool tls_deferring;
static __thread unsigned tls_ndeferred;
static __thread uint32_t *tls_deferred[DEFER_MAX];

void latch_defer_wakes(bool on)
{
	tls_deferring = on;
	if (on)
		return;
	for (unsigned i = 0; i < tls_ndeferred; i++)
		futex_wake(tls_deferred[i], 1);
	tls_ndeferred = 0;
}

/* Wake one sleeper on word now, or at latch_defer_wakes(false). */
static void wake_one(uint32_t *word)
{
	if (tls_deferring && tls_ndeferred < DEFER_MAX)
		tls_deferred[tls_ndeferred++] = word;
	else
		futex_wake(word, 1);
}

/* Wake a waiter that sleeps in poll() instead of on the futex. */
static void fd_wake(int fd)
{
	uint64_t one = 1;

	if (fd >= 0)
		while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
}

bool latch_arm_wake(struct mg_latch *l, int fd)
{
	bool armed = false;

	pthread_mutex_lock(&l->lock);
	if (fd < 0) {
		l->wake_fd = -1;
	} else if (!l->count && !l->closed && l->wake_fd < 0) {
		l->wake_fd = fd;
		armed = true;
	}
	pthread_mutex_unlock(&l->lock);
	return armed;
}

/* Sleep while *word == val, until the absolute monotonic deadline (NULL:
 * forever). Spurious returns are fine: callers re-check. */
static void futex_wait(uint32_t *word, uint32_t val, const struct timespec *deadline)
{
	syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, val, deadline, NULL,
		FUTEX_BITSET_MATCH_ANY);
}

int mg_latch_put(struct mg_latch *l, void *item)
{
	bool wake = false;
	int ret = 0;

	if (!l)
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	if (l->closed) {
		ret = -EPIPE;
	} else if (l->count == l->cap && (ret = latch_grow(l)) < 0) {
		/* ret set */
	} else {
		l->items[(l->head + l->count) % l->cap] = item;
		l->count++;
		__atomic_add_fetch(&l->seq, 1, __ATOMIC_RELEASE);
		wake = l->waiters > 0;
		/* Under the lock: once disarmed, the fd is never written. */
		fd_wake(l->wake_fd);
	}
	pthread_mutex_unlock(&l->lock);
	if (wake)
		wake_one(&l->seq);
	return ret;
}

void latch_deadline(struct timespec *ts, double timeout)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)timeout;
	ts->tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* This thread's history of waits on latches (spin.h). */
static __thread struct spin tls_spin;

struct seq_check {
	const uint32_t *word;
	uint32_t val;
};

/* spin_wait's check: has a put or close bumped the sequence? */
static bool seq_moved(void *arg)
{
	const struct seq_check *c = arg;

	return __atomic_load_n(c->word, __ATOMIC_ACQUIRE) != c->val;
}

static int latch_get(struct mg_latch *l, double timeout, void **ret_item, bool spin)
{
	struct timespec deadline, now;
	uint64_t max_ns;
	int ret;

	if (!l || !ret_item)
		return -EINVAL;
	if (timeout > 0)
		latch_deadline(&deadline, timeout);
	pthread_mutex_lock(&l->lock);
	while (!l->count && !l->closed) {
		uint32_t seq = l->seq;

		if (timeout == 0) {
			pthread_mutex_unlock(&l->lock);
			return -ETIMEDOUT;
		}
		max_ns = UINT64_MAX;
		if (timeout > 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > deadline.tv_sec ||
			    (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
				pthread_mutex_unlock(&l->lock);
				return -ETIMEDOUT;
			}
			/* The spin must not outlast the timeout. */
			max_ns = (uint64_t)(deadline.tv_sec - now.tv_sec) * 1000000000u +
				 (uint64_t)deadline.tv_nsec - (uint64_t)now.tv_nsec;
		}
		pthread_mutex_unlock(&l->lock);
		if (spin && spin_wait_max(&tls_spin, seq_moved, &(struct seq_check){ &l->seq, seq },
					  max_ns)) {
			pthread_mutex_lock(&l->lock);
			continue;
		}
		pthread_mutex_lock(&l->lock);
		l->waiters++;
		pthread_mutex_unlock(&l->lock);
		futex_wait(&l->seq, seq, timeout > 0 ? &deadline : NULL);
		pthread_mutex_lock(&l->lock);
		l->waiters--;
	}
	if (l->count) {
		*ret_item = l->items[l->head];
		l->head = (l->head + 1) % l->cap;
		l->count--;
		ret = 0;
	} else {
		ret = -EPIPE;
	}
	pthread_mutex_unlock(&l->lock);
	return ret;
}

int mg_latch_get(struct mg_latch *l, double timeout, void **ret_item)
{
	return latch_get(l, timeout, ret_item, true);
}

int latch_get_nospin(struct mg_latch *l, double timeout, void **ret_item)
{
	return latch_get(l, timeout, ret_item, false);
}

bool mg_latch_empty(struct mg_latch *l)
{
	bool empty;

	if (!l)
		return true;
	pthread_mutex_lock(&l->lock);
	empty = l->count == 0;
	pthread_mutex_unlock(&l->lock);
	return empty;
}

size_t latch_count(struct mg_latch *l)
{
	size_t n;

	pthread_mutex_lock(&l->lock);
	n = l->count;
	pthread_mutex_unlock(&l->lock);
	return n;
}

void mg_latch_close(struct mg_latch *l)
{
	if (!l)
		return;
	bool wake;

	pthread_mutex_lock(&l->lock);
	l->closed = true;
	__atomic_add_fetch(&l->seq, 1, __ATOMIC_RELEASE);
	wake = l->waiters > 0;
	fd_wake(l->wake_fd);
	pthread_mutex_unlock(&l->lock);
	if (wake)
		futex_wake(&l->seq, INT32_MAX);
}

bool latch_closed(struct mg_latch *l)
{
	bool c;

	pthread_mutex_lock(&l->lock);
	c = l->closed;
	pthread_mutex_unlock(&l->lock);
	return c;
}
