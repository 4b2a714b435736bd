// SPDX-License-Identifier: MIT
/*
 * latch.c — a thread-safe FIFO that puts consumers to sleep (mg_latch).
 * Receivers and selects are built on it. Owns only its queue and lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <mitogen/router.h>
#include "core/latch.h"

struct mg_latch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	void **items;		/* ring buffer */
	size_t head, count, cap;
	unsigned waiters;
	bool closed;
	void (*free_fn)(void *item);
};

struct mg_latch *mg_latch_new(void)
{
	struct mg_latch *l = calloc(1, sizeof(*l));
	pthread_condattr_t attr;

	if (!l)
		return NULL;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &attr);
	pthread_condattr_destroy(&attr);
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
	pthread_cond_destroy(&l->cond);
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

int mg_latch_put(struct mg_latch *l, void *item)
{
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
		if (l->waiters)
			pthread_cond_signal(&l->cond);
	}
	pthread_mutex_unlock(&l->lock);
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

int mg_latch_get(struct mg_latch *l, double timeout, void **ret_item)
{
	struct timespec deadline;
	int ret = 0;

	if (!l || !ret_item)
		return -EINVAL;
	if (timeout >= 0)
		latch_deadline(&deadline, timeout);
	pthread_mutex_lock(&l->lock);
	while (!l->count && !l->closed) {
		l->waiters++;
		if (timeout < 0)
			pthread_cond_wait(&l->cond, &l->lock);
		else
			ret = pthread_cond_timedwait(&l->cond, &l->lock, &deadline);
		l->waiters--;
		if (ret == ETIMEDOUT && !l->count && !l->closed) {
			pthread_mutex_unlock(&l->lock);
			return -ETIMEDOUT;
		}
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
	pthread_mutex_lock(&l->lock);
	l->closed = true;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

bool latch_closed(struct mg_latch *l)
{
	bool c;

	pthread_mutex_lock(&l->lock);
	c = l->closed;
	pthread_mutex_unlock(&l->lock);
	return c;
}
