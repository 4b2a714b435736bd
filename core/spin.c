// SPDX-License-Identifier: MIT
/*
 * spin.c — wait a little before sleeping, where waiting has paid off
 * (see spin.h for why and when).
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "core/spin.h"

#define SPIN_DEFAULT_US 500
#define SPIN_MAX_US 10000
#define SPIN_MISSES 3		/* spins in a row that found nothing: stop */
#define SPIN_PROBE_EVERY 16	/* then spin on one wait in this many, */
#define SPIN_BACKOFF_MAX 6	/* doubled per empty try, up to 1 in 1,024 */

static uint32_t window_ns;
static bool cold;		/* spin_start_cold() */
static pthread_once_t window_once = PTHREAD_ONCE_INIT;

static void window_init(void)
{
	const char *e = getenv("MITOGEN_SPIN_US");
	long us = SPIN_DEFAULT_US;
	cpu_set_t set;

	if (e && *e) {
		char *end;

		us = strtol(e, &end, 10);
		if (*end || us < 0)
			us = SPIN_DEFAULT_US;
		else if (us > SPIN_MAX_US)
			us = SPIN_MAX_US;
	}
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) < 2)
		us = 0;
	window_ns = (uint32_t)us * 1000;
}

void spin_start_cold(void)
{
	cold = true;
}

uint32_t spin_window_ns(void)
{
	pthread_once(&window_once, window_init);
	return window_ns;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool spin(struct spin *sp, bool (*ready)(void *arg), void *arg, uint64_t window)
{
	uint64_t t0, t;

	if (!sp->seen) {
		sp->seen = true;
		if (cold)
			sp->misses = SPIN_MISSES;
	}
	/*
	 * Out of luck lately: sleep, but try again now and then, half as
	 * often after each try that found nothing too, so that a waiter
	 * whose waits stay long spends ever less on trying.
	 */
	if (sp->misses >= SPIN_MISSES) {
		if (++sp->skipped < (SPIN_PROBE_EVERY << sp->backoff))
			return false;
		sp->skipped = 0;
	}
	/*
	 * Ready already: no clock read. After a context switch one costs a
	 * few hundred ns on a VM (measured: an agent's CPU per call in a
	 * fan-out, -0.35 us for one read less).
	 */
	if (ready(arg))
		goto found;
	if (window) {
		t0 = now_ns();
		do {
			sched_yield();
			if (ready(arg))
				goto found;
			t = now_ns();
		} while (t - t0 < window);
	}
	if (sp->misses < SPIN_MISSES)
		sp->misses++;
	else if (sp->backoff < SPIN_BACKOFF_MAX)
		sp->backoff++;
	return false;
found:
	sp->misses = 0;
	sp->backoff = 0;
	return true;
}

bool spin_wait(struct spin *sp, bool (*ready)(void *arg), void *arg)
{
	return spin_wait_for(sp, ready, arg, 1);
}

bool spin_wait_for(struct spin *sp, bool (*ready)(void *arg), void *arg, unsigned div)
{
	return spin_wait_max(sp, ready, arg, spin_window_ns() / (div ? div : 1));
}

bool spin_wait_max(struct spin *sp, bool (*ready)(void *arg), void *arg, uint64_t max_ns)
{
	if (!spin_window_ns())
		return false;
	return spin(sp, ready, arg, max_ns < window_ns ? max_ns : window_ns);
}

void spin_mutex_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t ma;

	pthread_mutexattr_init(&ma);
	if (spin_window_ns())
		pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(m, &ma);
	pthread_mutexattr_destroy(&ma);
}
