/* SPDX-License-Identifier: MIT */
/*
 * spin.h — wait a little before sleeping, where waiting has paid off.
 *
 * On a machine with more than one CPU, the reply to a call often comes
 * within a few microseconds; sleeping for it costs two context switches
 * and, when the other CPU has gone idle, an inter-processor wake-up that
 * costs far more than the reply itself (tens of microseconds on a VM).
 * So a waiter first checks for a short while, yielding the CPU between
 * checks so that a thread with work to do is never kept off it, and
 * sleeps only when that did not pay off. Each waiter remembers whether
 * its recent spins found anything: an agent idle between calls, or a
 * child whose next call is far off, soon goes straight to sleep, and
 * tries again ever more rarely while that stays so.
 *
 * The window is MITOGEN_SPIN_US microseconds (default 500, 0: never
 * spin), read once per process; a process allowed to run on one CPU only
 * never spins (its peer could not run meanwhile).
 */
#ifndef CORE_SPIN_H
#define CORE_SPIN_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>

struct spin {
	uint8_t misses;		/* spins in a row that ended with nothing */
	uint8_t backoff;	/* tries since that found nothing too */
	uint16_t skipped;	/* waits since the last try */
	bool seen;		/* waited before (spin_start_cold) */
};

/*
 * Before sleeping: unless this waiter's last 3 spins all found nothing
 * (then only on one wait in 16 to notice when things change, one in 32
 * after such a try found nothing too, and so on down to one in 1,024),
 * call ready(arg) between sched_yield()s until it returns true or the
 * window ends. Returns true when ready() said so; false: sleep as usual.
 */
bool spin_wait(struct spin *sp, bool (*ready)(void *arg), void *arg);
/* spin_wait for a div-th of the window (div >= 1). */
bool spin_wait_for(struct spin *sp, bool (*ready)(void *arg), void *arg, unsigned div);
/* spin_wait for at most max_ns, for a wait with a timeout shorter than the
 * window: the spin must not outlast it. */
bool spin_wait_max(struct spin *sp, bool (*ready)(void *arg), void *arg, uint64_t max_ns);
/*
 * From now on, a waiter's first wait finds it as if its last 3 spins had
 * found nothing: it sleeps, tries on one wait in 16 (then 32, ...) and
 * spins as usual once a try found something. For a process whose first
 * waits are far apart: an agent a first stage started (its messages
 * come over ssh, sudo, ...), which would otherwise spend a whole window
 * on each of its first waits, ~3 ms of the target's CPU per start on an
 * idle machine (docs/scale.md). Call before any thread waits.
 */
void spin_start_cold(void);
/* The window in nanoseconds (0: spinning is off in this process). */
uint32_t spin_window_ns(void);
/*
 * A mutex that spins a little on contention before sleeping (glibc's
 * adaptive type): the locks on the call path are held for a few hundred
 * nanoseconds, far less than a sleep and a wake-up cost.
 */
void spin_mutex_init(pthread_mutex_t *m);

#endif
