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

#endif
