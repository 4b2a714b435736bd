/* SPDX-License-Identifier: MIT */
/*
 * router.h — the router's internals shared inside the library: streams
 * register here, contexts are looked up here, and master/ and agent/ use
 * the hooks below. core/ knows nothing of how a stream's fd was made.
 */
#ifndef CORE_ROUTER_H
#define CORE_ROUTER_H

#include <pthread.h>
#include <mitogen/context.h>
#include <mitogen/router.h>
#include "core/broker.h"
#include "core/idmap.h"
#include "core/message.h"

struct stream;

struct mg_router {
	int refs;
	bool dying;			/* refs reached 0 once: being destroyed */
	struct mg_broker *broker;
	bool own_broker;
	struct broker_client client;
	uint32_t id;
	bool booting;			/* child waiting for BOOT: id unknown */
	bool debug;			/* children get debug logs too */
	bool audited;			/* calls served here are recorded, and
					 * every child is audited too */
	int audit_fd;			/* master: the JSON-lines file, or -1 */
	struct audit_chain *audit_chain; /* its chain and key (core/audit.c) */
	uint64_t audit_refused;		/* records from unaudited contexts */
	size_t max_message_size;
	/* stream.c, broker thread: bytes the child streams hold in unfinished
	 * messages, and the most they may (0: MG_DEFAULT_REASSEMBLY_BUDGET) */
	size_t rx_held;
	size_t rx_budget;

	pthread_mutex_t lock;		/* everything below */
	struct idmap handlers;		/* handle -> struct handler */
	uint32_t next_handle;
	struct idmap routes;		/* context id -> struct stream (broker thread writes) */
	struct idmap contexts;		/* context id -> struct mg_context (ref held) */
	struct stream *parent;		/* upstream, NULL in the master */
	struct stream *streams;		/* every stream, linked */
	size_t nchildren;		/* child streams open */
	uint32_t next_id;		/* master: next context id */
	/* id -> 1 + the context it was allocated for: every id in the master,
	 * those of contexts below us elsewhere (routes_note_allocation) */
	struct idmap allocations;
	/* routes.c, master: id -> 1 + the remote id of the child stream it
	 * was allocated through (charged to that stream's ids_held) */
	struct idmap alloc_charge;
	bool shutting_down;
	/* the handlers were failed at shutdown (router_fail_handlers): one
	 * registered later gets its dead message at once */
	bool handlers_closed;

	pthread_mutex_t qlock;		/* messages routed from other threads */
	/*
	 * Read-held by a thread writing straight to a stream it found under
	 * lock (route_direct), write-held while closed streams are freed: the
	 * write (a syscall that may wake the reader and be preempted by it)
	 * then holds no lock the broker thread needs to dispatch.
	 */
	pthread_rwlock_t life;
	struct mg_message *q_head, *q_tail;
	bool q_scheduled;

	uint8_t *scratch;		/* broker thread: one record */

	struct router_acct *acct;	/* acct.c: channel accounting, made on first use */

	/* routes.c, broker role: ids lost lately, to tell the children in one
	 * DEL_ROUTE each when down_timer fires */
	struct lost_id *down;
	size_t ndown, down_cap;
	struct broker_timer down_timer;

	/* heartbeat.c: seconds between pings, silence that means lost (0, 0:
	 * off); the children's tick, the parent's check, the tick's list */
	double hb_interval, hb_limit;
	struct broker_timer hb_tick, hb_parent;
	struct stream **hb_snap;
	size_t hb_snap_cap;

	/* agent hook: the parent stream went away */
	void (*on_parent_lost)(struct mg_router *r, void *arg);
	void *on_parent_lost_arg;
};

/*
 * While a forwarded log line is being emitted on this thread (the log
 * callback runs inside), the context that verifiably logged it and the
 * source it claimed (borrowed, for the call's duration): a child passes
 * both on with the line, so that the next router judges the claim
 * itself. False otherwise.
 */
bool router_log_origin(uint32_t *ret_id, const char **ret_source);
/* Create the router of a child whose parent is on `fd` (agent). */
struct mg_router *router_new_child(struct mg_broker *b, size_t max_message_size);
/* Broker thread: a complete message arrived on stream s (taken). */
void router_receive(struct mg_router *r, struct stream *s, struct mg_message *msg);
/* Broker thread: stream s closed; forget its routes, tell respondents. */
void router_stream_closed(struct mg_router *r, struct stream *s, const char *reason);
/* Read again the child streams held back for dst's backlog (stream_hold):
 * dst has drained or closed. Any thread; takes r->lock, then each held
 * stream's wlock. */
void router_release_waiters(struct mg_router *r, const struct stream *dst);
/* Broker thread: route msg (taken) that originated here or was forwarded. */
void router_dispatch(struct mg_router *r, struct mg_message *msg, struct stream *in);
/* Queue msg (taken) for the broker thread even when called on it: for
 * log forwarding, which must never re-enter a stream mid-operation. */
int router_route_later(struct mg_router *r, struct mg_message *msg);
/* Broker thread: route what is queued now (last words before a close). */
void router_flush_queue(struct mg_router *r);
/*
 * Allocate a fresh context id on behalf of context `owner` (whose stream
 * alone may later announce it with ADD_ROUTE). The master counts; a child
 * asks the master (ALLOCATE_ID) and waits. Returns 0 with errno on failure.
 */
uint32_t router_alloc_id(struct mg_router *r, uint32_t owner);
/*
 * The handler at handle also gets a dead message when context id is lost
 * (as a respondent's would), without a respondent's filter: a channel
 * whose peer went away (mg_channel_set_peer). At once (deferred) when id
 * is already unreachable from the master. 0 or -ENOENT.
 */
int router_watch(struct mg_router *r, uint32_t handle, uint32_t id);
/* Contexts ids were lost: mark them, tell respondents (dead messages). */
void router_lost(struct mg_router *r, const uint32_t *ids, size_t n, bool all_upstream,
		 const char *why);
/*
 * The most ids the master keeps allocated at once for the contexts behind
 * one child stream (that child and everything below it): each is a live
 * context or one about to start. Past it ALLOCATE_ID is answered with a
 * CallError; ids go back when their context is lost, and all of them
 * when the stream closes (docs/limits.md).
 */
#define ROUTES_MAX_IDS 16384

/* routes.c: register the ALLOCATE_ID handler. */
void routes_init(struct mg_router *r);
/* routes.c, broker thread: ADD_ROUTE / DEL_ROUTE addressed to us from s. */
void routes_on_message(struct mg_router *r, struct stream *s, struct mg_message *msg);
/* routes.c, broker thread: the master's ADD_ROUTE coming down on its way
 * to the owner of a new id; remember whose it is. */
void routes_note_allocation(struct mg_router *r, struct mg_message *msg);
/* routes.c, broker thread: announce a new child stream's id upwards. */
void routes_announce(struct mg_router *r, struct stream *s);
/* routes.c, broker thread: ids behind `from` are gone: DEL_ROUTE up and down. */
void routes_propagate_lost(struct mg_router *r, struct stream *from, const uint32_t *ids,
			   size_t n);
/* routes.c, broker role: the router closes: nothing more goes down. */
void routes_stop(struct mg_router *r);
/* Register a stream with the router and broker (any thread, waits). */
int router_add_stream(struct mg_router *r, struct stream *s);
/* The stream a message to context id leaves by: the route to it, else the
 * parent stream (NULL in the master). Takes r->lock. */
struct stream *router_next_hop(struct mg_router *r, uint32_t id);
/*
 * Wait until latch l has something or is closed, handling the input of
 * the stream toward dst_id on this thread (lend.c). *timeout (seconds, <0:
 * no limit) is reduced by the time spent. Returns 0, -ETIMEDOUT, or
 * -EAGAIN when this thread cannot do that now (it is the broker's, or the
 * stream is lent already): then wait on the latch for what is left.
 */
int router_wait_lent(struct mg_router *r, uint32_t dst_id, struct mg_latch *l, double *timeout);
/* Broker thread: route id through s (ADD_ROUTE). */
int router_route_add(struct mg_router *r, uint32_t id, struct stream *s);
/* The context object for id, creating it; reference returned. */
struct mg_context *router_context(struct mg_router *r, uint32_t id, const char *name);
/* Handlers registered with a release function get it called (on the broker
 * thread, after any delivery in progress) when they are removed. */
int router_add_handler_release(struct mg_router *r, mg_handler_fn fn, void *userdata,
			       void (*release)(void *userdata),
			       const struct mg_handler_opts *opts);
/* Send a CallError reply to a refused message (when it has a reply_to). */
void router_refuse(struct mg_router *r, struct mg_message *msg, struct stream *in,
		   const char *why);
/* Set the identity a child learns at BOOT. */
void router_set_id(struct mg_router *r, uint32_t id);

#endif
