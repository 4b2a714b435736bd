/* SPDX-License-Identifier: MIT */
/*
 * hooks.h — what the router tells an optional kernel-assistance module
 * (bpf/loader.c) about child channels and routes, and asks it for stats.
 * core/ knows nothing of eBPF: a NULL table, or NULL entries, cost nothing.
 * Registered once per process, before the first channel (master/local.c
 * calls bpfload_register()); the table itself is never freed.
 *
 * Every hook may be called from any thread; they must not call back into
 * the router with its lock held.
 */
#ifndef CORE_HOOKS_H
#define CORE_HOOKS_H

#include <stdbool.h>
#include <stdint.h>

struct mg_router;
struct mg_router_stats;

struct router_hooks {
	/*
	 * A child channel was made: parent_fd stays here, child_fd is the
	 * child's end. Called before the child runs (before fork/exec), so
	 * that whatever is attached to child_fd is in place (and locked)
	 * before the child can touch it. child_fd -1: the child made its end
	 * itself (a connect-back, e.g. after sudo): only the parent's end is
	 * filtered (checks and counts up; nothing enforced down in the
	 * kernel). Returns 0 or -errno (logged; the channel is used anyway,
	 * with user-space checks only).
	 */
	int (*child_channel)(struct mg_router *r, uint32_t child_id, int parent_fd,
			     int child_fd);
	/* The channel on parent_fd closes (fd still open). */
	void (*channel_closed)(struct mg_router *r, int parent_fd);
	/* Context id is now routed through the child channel on fd / is no
	 * longer (routes of a closing channel go with channel_closed). */
	void (*route_add)(struct mg_router *r, uint32_t id, int fd);
	void (*route_del)(struct mg_router *r, uint32_t id, int fd);
	/* Fill *ret from the kernel's counters; -ENOENT when r has none
	 * (the router then answers from its own). */
	int (*stats)(struct mg_router *r, struct mg_router_stats **ret);
	/* r is being destroyed. */
	void (*router_free)(struct mg_router *r);
};

void hooks_register(const struct router_hooks *h);
extern const struct router_hooks *router_hooks;

static inline int hooks_child_channel(struct mg_router *r, uint32_t child_id, int parent_fd,
				      int child_fd)
{
	const struct router_hooks *h = __atomic_load_n(&router_hooks, __ATOMIC_ACQUIRE);

	return h && h->child_channel ? h->child_channel(r, child_id, parent_fd, child_fd) : 0;
}

static inline void hooks_channel_closed(struct mg_router *r, int parent_fd)
{
	const struct router_hooks *h = __atomic_load_n(&router_hooks, __ATOMIC_ACQUIRE);

	if (h && h->channel_closed)
		h->channel_closed(r, parent_fd);
}

static inline void hooks_route(struct mg_router *r, uint32_t id, int fd, bool add)
{
	const struct router_hooks *h = __atomic_load_n(&router_hooks, __ATOMIC_ACQUIRE);

	if (h && (add ? h->route_add : h->route_del))
		(add ? h->route_add : h->route_del)(r, id, fd);
}

static inline void hooks_router_free(struct mg_router *r)
{
	const struct router_hooks *h = __atomic_load_n(&router_hooks, __ATOMIC_ACQUIRE);

	if (h && h->router_free)
		h->router_free(r);
}

/*
 * acct.c: the router's own accounting of child channels (always on; what
 * mg_router_stats() returns when the kernel does not count), the denial
 * callback, and the test-only switch that turns off the user-space source
 * checks (so tests can show the kernel alone drops forged records).
 */
struct stream;
struct wire_meta;
struct mg_denial;

/* A message about to go down a child stream, before its first record is
 * written: its reply_to is remembered now, so that a reply read by another
 * thread before the send returns counts as one. */
void acct_tx_note(struct stream *s, const struct wire_meta *meta);
/* Records sent down a child stream (stream.c, one per record written). */
void acct_tx_record(struct stream *s, const struct wire_meta *meta, uint8_t flags,
		    size_t bytes);
/* A message that came up a child stream: accepted, or refused (reason
 * enum mg_stats_drop). */
void acct_rx(struct stream *s, const struct wire_meta *meta, size_t len);
void acct_rx_drop(struct stream *s, int reason);
/* s closes: its counters join the closed-channels row. */
void acct_stream_closed(struct stream *s);
void acct_router_free(struct mg_router *r);
/* The router's own counters, whatever mg_router_stats() would answer. */
int acct_snapshot(struct mg_router *r, struct mg_router_stats **ret_stats);
/* The router's denial callback, for bpf/loader.c (broker thread). */
void acct_denial(struct mg_router *r, const struct mg_denial *denial);

/* Test only: with true, router_receive skips the src_id/auth_id checks. */
extern bool router_test_unchecked;

#endif
