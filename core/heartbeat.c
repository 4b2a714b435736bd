// SPDX-License-Identifier: MIT
/*
 * heartbeat.c — liveness of every stream (issue 19 §2; docs/reliability-
 * liveness.md). A child that stops answering (SIGSTOP, a black-holed
 * network, a wedged sshd) must not hang whoever waits on it.
 *
 * - A parent pings each child stream every interval (HEARTBEAT with
 *   reply_to HEARTBEAT); the child answers with a HEARTBEAT. Anything
 *   heard on a stream counts (stream.c sets `heard` on input and when the
 *   peer made room for our output), so a busy stream needs no answer in
 *   time, and pings cost a stream no more than one small message each way
 *   per interval.
 * - One timer per router ticks every interval while it has children: a
 *   child stream silent for ceil(limit / interval) ticks in a row (so for
 *   at least the limit, at most limit + interval) is closed as lost, which
 *   fails every waiter on it with ChannelError (router_stream_closed).
 * - A child checks its parent stream every limit (one timer, armed at
 *   BOOT): nothing heard since the last check means the parent is lost,
 *   and the stream is closed (the agent then exits).
 *
 * So an idle child wakes once per interval (the ping) and once per limit
 * (its check): 4 times a minute at the defaults (20 s, 60 s). Owns the
 * HEARTBEAT handler and the router's two heartbeat timers; touches
 * streams only in the broker's role.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/heartbeat.h"
#include "core/log.h"
#include "core/router.h"
#include "core/stream.h"

/* Defaults: interval, and limit as a multiple of it. */
#define HB_INTERVAL 20.0
#define HB_LIMIT_TIMES 3
/* Shortest interval accepted (a shorter one is raised to it). */
#define HB_INTERVAL_MIN 0.05

/* interval <= 0 given as negative: off; 0: default; limit fixed up. */
static void hb_normalise(double *interval, double *limit)
{
	if (isnan(*interval) || *interval == 0)
		*interval = HB_INTERVAL;
	if (*interval < 0) {
		*interval = *limit = 0;
		return;
	}
	if (*interval < HB_INTERVAL_MIN)
		*interval = HB_INTERVAL_MIN;
	if (isnan(*limit) || *limit <= 0)
		*limit = HB_LIMIT_TIMES * *interval;
	/* One missed answer is never enough: a ping and its answer take a
	 * tick of their own. */
	if (*limit < 2 * *interval)
		*limit = 2 * *interval;
}

/* Silent ticks in a row that make a child lost. */
static unsigned hb_misses(const struct mg_router *r)
{
	return (unsigned)ceil(r->hb_limit / r->hb_interval - 1e-9);
}

/*
 * HEARTBEAT: a ping (reply_to HEARTBEAT) is answered, an answer needs
 * nothing (hearing it was the point). Anyone may ping: the answer is one
 * small message to the sender, whose src_id the router has checked (a
 * child cannot make us answer someone else); it grants nothing.
 */
static void on_heartbeat(struct mg_message *msg, void *userdata)
{
	struct mg_router *r = userdata;
	struct mg_message *pong;

	if (!mg_message_is_dead(msg) && msg->meta.reply_to == MG_HANDLE_HEARTBEAT) {
		pong = mg_message_new(msg->meta.src_id, MG_HANDLE_HEARTBEAT, NULL);
		if (pong) {
			pong->meta.src_id = pong->meta.auth_id = r->id;
			router_dispatch(r, pong, NULL);
		}
	}
	mg_message_free(msg);
}

void heartbeat_init(struct mg_router *r)
{
	MG_OPTS(mg_handler_opts, ho, .handle = MG_HANDLE_HEARTBEAT);

	r->hb_interval = HB_INTERVAL;
	r->hb_limit = HB_LIMIT_TIMES * HB_INTERVAL;
	mg_router_add_handler(r, on_heartbeat, r, &ho);
}

void heartbeat_set_opts(struct mg_router *r, const struct mg_router_opts *opts)
{
	double interval = 0, limit = 0;

	if (opts && opts->sz >= offsetof(struct mg_router_opts, heartbeat_interval) +
				sizeof(double))
		interval = opts->heartbeat_interval;
	if (opts && opts->sz >= offsetof(struct mg_router_opts, heartbeat_limit) +
				sizeof(double))
		limit = opts->heartbeat_limit;
	hb_normalise(&interval, &limit);
	r->hb_interval = interval;
	r->hb_limit = limit;
}

/* A stream is lost: say so once, and close it (waiters get ChannelError). */
static void hb_lost(struct mg_router *r, struct stream *s, const char *whose)
{
	char why[128];

	snprintf(why, sizeof(why), "no heartbeat for %.3g s", r->hb_limit);
	LOG_WARN("%s %u (%s): nothing heard for %.3g s (a heartbeat every %.3g s): "
		 "treating it as lost", whose, s->remote_id, s->name, r->hb_limit,
		 r->hb_interval);
	stream_close(s, why);
}

static void hb_ping(struct mg_router *r, struct stream *s)
{
	struct mg_message *m = mg_message_new(s->remote_id, MG_HANDLE_HEARTBEAT, NULL);

	if (!m)
		return;
	m->meta.src_id = m->meta.auth_id = r->id;
	m->meta.reply_to = MG_HANDLE_HEARTBEAT;
	stream_send(s, m);
}

/* Every interval while there are children: count silences, ping. */
static void hb_tick(void *arg)
{
	struct mg_router *r = arg;
	unsigned misses = hb_misses(r);
	size_t n = 0;

	/*
	 * Closing a stream, or writing to one that fails, unlinks streams
	 * from the list: take the children first. A stream closed meanwhile
	 * is freed only after this turn of the broker (router.c), so the
	 * pointers stay good; its `closed` says to leave it.
	 */
	for (struct stream *s = r->streams; s; s = s->next) {
		if (s->role != STREAM_CHILD || s->closed)
			continue;
		if (n == r->hb_snap_cap) {
			size_t cap = r->hb_snap_cap ? r->hb_snap_cap * 2 : 64;
			struct stream **p = realloc(r->hb_snap, cap * sizeof(*p));

			if (!p)
				break;	/* the rest next time */
			r->hb_snap = p;
			r->hb_snap_cap = cap;
		}
		r->hb_snap[n++] = s;
	}
	for (size_t i = 0; i < n; i++) {
		struct stream *s = r->hb_snap[i];

		if (s->closed)
			continue;
		/*
		 * Not before its greeting (heard means BOOT went out before):
		 * a ping ahead of BOOT would reach a child that has no id yet.
		 * Its start-up is bounded by its connect timeout instead.
		 */
		if (!s->spoke && !(s->spoke = s->heard))
			continue;
		/* Held back for another stream's backlog, it is not read: its
		 * silence is ours (stream_hold). */
		if (s->heard || __atomic_load_n(&s->waiting, __ATOMIC_RELAXED)) {
			s->heard = false;
			s->silent = 0;
		} else if (++s->silent >= misses) {
			hb_lost(r, s, "context");
			continue;
		}
		hb_ping(r, s);
	}
	if (n && !r->shutting_down)
		broker_timer_arm(r->broker, &r->hb_tick, r->hb_interval, hb_tick, r);
}

void heartbeat_child_added(struct mg_router *r)
{
	if (r->hb_interval > 0 && !r->hb_tick.armed && !r->shutting_down)
		broker_timer_arm(r->broker, &r->hb_tick, r->hb_interval, hb_tick, r);
}

/* Every limit in a child: has the parent said anything since last time? */
static void hb_parent_check(void *arg)
{
	struct mg_router *r = arg;
	struct stream *s = r->parent;

	if (!s || s->closed || r->hb_interval <= 0)
		return;
	if (!s->heard) {
		hb_lost(r, s, "parent context");
		return;
	}
	s->heard = false;
	broker_timer_arm(r->broker, &r->hb_parent, r->hb_limit, hb_parent_check, r);
}

static void hb_parent_start(void *arg)
{
	struct mg_router *r = arg;

	if (!r->parent || r->parent->closed || r->hb_interval <= 0 || r->shutting_down)
		return;
	r->parent->heard = true;	/* BOOT itself */
	broker_timer_arm(r->broker, &r->hb_parent, r->hb_limit, hb_parent_check, r);
}

void heartbeat_stop(struct mg_router *r)
{
	broker_timer_cancel(r->broker, &r->hb_tick);
	broker_timer_cancel(r->broker, &r->hb_parent);
	free(r->hb_snap);
	r->hb_snap = NULL;
	r->hb_snap_cap = 0;
}

void heartbeat_get(const struct mg_router *r, double *ret_interval, double *ret_limit)
{
	*ret_interval = r->hb_interval;
	*ret_limit = r->hb_limit;
}

void heartbeat_boot_args(struct mg_router *r, struct mg_value *boot)
{
	mg_map_set(boot, "heartbeat", MG_LIST(mg_float(r->hb_interval), mg_float(r->hb_limit)));
}

void heartbeat_boot(struct mg_router *r, const struct mg_value *boot)
{
	const struct mg_value *hb = mg_map_get(boot, "heartbeat");
	double interval = HB_INTERVAL, limit = 0;

	/* Off in the parent ([0, 0]): off here too (negative interval). */
	if (hb && hb->type == MG_LIST && hb->len == 2 && hb->items[0].type == MG_FLOAT &&
	    hb->items[1].type == MG_FLOAT) {
		interval = hb->items[0].f > 0 ? hb->items[0].f : -1;
		limit = hb->items[1].f;
	}
	hb_normalise(&interval, &limit);
	r->hb_interval = interval;
	r->hb_limit = limit;
	broker_call(r->broker, hb_parent_start, r, false);
}
