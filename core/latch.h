/* SPDX-License-Identifier: MIT */
/* latch.h — internal latch helpers. */
#ifndef CORE_LATCH_H
#define CORE_LATCH_H

#include <time.h>
#include <mitogen/router.h>

/* Absolute CLOCK_MONOTONIC time timeout seconds from now. */
void latch_deadline(struct timespec *ts, double timeout);
size_t latch_count(struct mg_latch *l);
bool latch_closed(struct mg_latch *l);
/*
 * For a waiter that sleeps in poll() (router_wait_lent): with fd >= 0,
 * every later put and the close also write 1 to the eventfd fd. Returns
 * false, arming nothing, when there is something to take already, the
 * latch is closed, or another waiter armed it. fd < 0 disarms.
 */
bool latch_arm_wake(struct mg_latch *l, int fd);
/*
 * Between latch_defer_wakes(true) and latch_defer_wakes(false), puts on
 * this thread wake their sleepers only at the end: for a put made under a
 * lock that the woken thread takes next (a receiver's, while it notifies
 * its select), so that it does not wake only to sleep again on the lock.
 * The wake may then reach a latch freed meanwhile; a FUTEX_WAKE touches
 * no memory and waiters re-check, so that costs at most a spurious wake.
 */
void latch_defer_wakes(bool on);
/* mg_latch_get without its spin: for a waiter that has spun already. */
int latch_get_nospin(struct mg_latch *l, double timeout, void **ret_item);

#endif
