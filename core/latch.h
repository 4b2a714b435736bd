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

#endif
