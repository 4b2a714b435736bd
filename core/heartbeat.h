/* SPDX-License-Identifier: MIT */
/*
 * heartbeat.h — liveness of every stream (heartbeat.c): a parent pings
 * each child every interval and treats a child it has heard nothing from
 * for the limit as lost; a child treats a parent it has heard nothing
 * from for the limit as lost. Everything here runs in the broker's role
 * unless it says otherwise.
 */
#ifndef CORE_HEARTBEAT_H
#define CORE_HEARTBEAT_H

#include <mitogen/router.h>

struct stream;

/* Any thread, at creation: defaults, and the HEARTBEAT handler. */
void heartbeat_init(struct mg_router *r);
/* Any thread, at creation: the interval and limit of opts (mg_router_new). */
void heartbeat_set_opts(struct mg_router *r, const struct mg_router_opts *opts);
/* A child stream was registered: start pinging (once per router). */
void heartbeat_child_added(struct mg_router *r);
/* Any thread: the interval and limit in force (0, 0: off). */
void heartbeat_get(const struct mg_router *r, double *ret_interval, double *ret_limit);
/* The router stops: no more timers. */
void heartbeat_stop(struct mg_router *r);
/* Master side of BOOT: put this router's interval and limit in boot (a map). */
void heartbeat_boot_args(struct mg_router *r, struct mg_value *boot);
/*
 * Child side of BOOT, any thread but the broker's: take the interval and
 * limit the parent sent (its own, for our children too) and start
 * watching the parent stream.
 */
void heartbeat_boot(struct mg_router *r, const struct mg_value *boot);

#endif
