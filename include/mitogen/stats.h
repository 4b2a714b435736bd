/* SPDX-License-Identifier: MIT */
/*
 * Channel accounting and denial events (DESIGN §6).
 *
 * Every child channel of a router (local and fork children, on AF_UNIX
 * SOCK_SEQPACKET) is counted in both directions: up (records the child
 * sends to this process) and down (records this process sends to the
 * child). Where eBPF is available the counting and the authority checks
 * run in the kernel, in a socket filter locked onto both ends of the
 * channel before the child runs, and the counters live in BPF maps pinned
 * at /sys/fs/bpf/mitogen/<pid>/ (readable by `bpftool map dump pinned` and
 * `mitogen stats`). Otherwise the router counts in user space and
 * mg_router_stats() says so (kernel false). The user-space checks run in
 * both cases.
 *
 * Counting rules: a message is counted once (on its first record), bytes
 * are record bytes on the wire (28-byte headers included), drops are
 * records. A reply is a message to a handle that an earlier message the
 * other way on the same channel named as its reply_to, or a dead message
 * (the kernel remembers 8192 such handles per process, the router 256 per
 * channel and direction, both direct-mapped: a handle evicted by a newer
 * one in its slot has its replies counted as data).
 */
#ifndef MITOGEN_STATS_H
#define MITOGEN_STATS_H

#include <mitogen/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mg_router;

enum mg_stats_class {
	MG_STATS_CALL = 0,	/* CALL_FUNCTION, CALL_SERVICE, BOOT, SHUTDOWN */
	MG_STATS_REPLY = 1,	/* replies and dead messages */
	MG_STATS_LOG = 2,	/* FORWARD_LOG, AUDIT */
	MG_STATS_ROUTE = 3,	/* ADD_ROUTE, DEL_ROUTE, ALLOCATE_ID, DETACHING,
				 * HEARTBEAT */
	MG_STATS_DATA = 4,	/* every other handle: user data */
	MG_STATS_NCLASS = 5,
};

enum mg_stats_drop {
	/* Kernel: records with a malformed header. Counted but passed on, so
	 * that the router closes the channel with its reason (DESIGN §3). */
	MG_DROP_MALFORMED = 0,
	MG_DROP_SRC_ID = 1,	/* up: src_id not behind the channel */
	MG_DROP_AUTH_ID = 2,	/* up: auth_id not behind the channel */
	MG_DROP_PRIV_UP = 3,	/* up: privileged handle to the parent or its parents */
	MG_DROP_NO_AUTHORITY = 4, /* down: privileged handle without parent authority */
	MG_DROP_UNKNOWN = 5,	/* kernel: a filtered socket with no channel entry */
	/* up: a reply that does not come from the call's respondent (the
	 * router), or to a reply handle never sent down this channel (the
	 * kernel). README, Security: replies are bound to their respondent. */
	MG_DROP_REPLY = 6,
	MG_STATS_NDROP = 7,
};

enum mg_stats_dir {
	MG_STATS_UP = 0,	/* from the child towards this process */
	MG_STATS_DOWN = 1,	/* from this process towards the child */
};

struct mg_stats_counts {
	uint64_t msgs[MG_STATS_NCLASS];
	uint64_t bytes[MG_STATS_NCLASS];
	uint64_t drops[MG_STATS_NDROP];
};

/*
 * One row: a channel's totals (context_id MG_STATS_CHANNEL), or one
 * context's share of a channel (the context that sent up, or was sent to
 * down; drops are charged to the channel's child).
 */
#define MG_STATS_CHANNEL 0xffffffffu

struct mg_stats_row {
	uint32_t channel;	/* channel number (0: channels closed so far) */
	uint32_t child_id;	/* context id of the channel's child */
	uint32_t context_id;	/* MG_STATS_CHANNEL or a context id */
	struct mg_stats_counts dir[2];	/* indexed by enum mg_stats_dir */
};

struct mg_router_stats {
	/* true: counted by the kernel (eBPF); false: by the router itself. */
	bool kernel;
	/* bpffs directory of the pinned maps ("" when not kernel-backed). */
	char pin_path[128];
	size_t nrows;
	struct mg_stats_row *rows;	/* channel rows first, then contexts */
};

/*
 * Snapshot the accounting of r's child channels. *ret_stats (written on
 * success) is freed by the caller with mg_router_stats_free(). Safe from
 * any thread. Returns 0, -EINVAL (NULL argument) or -ENOMEM.
 */
MG_API int mg_router_stats(struct mg_router *r, struct mg_router_stats **ret_stats);
/* NULL-safe. */
MG_API void mg_router_stats_free(struct mg_router_stats *stats);

/* Names for logs and tables: "calls", "replies", ...; "src_id", ... */
MG_API const char *mg_stats_class_name(enum mg_stats_class c);
MG_API const char *mg_stats_drop_name(enum mg_stats_drop d);

/* A record the kernel dropped on one of r's channels. */
struct mg_denial {
	uint64_t time_ns;	/* CLOCK_MONOTONIC */
	uint32_t channel;
	uint32_t child_id;	/* the channel's child context */
	enum mg_stats_dir dir;
	enum mg_stats_drop reason;
	uint32_t dst_id, src_id, auth_id, handle, reply_to;
	uint32_t len;		/* record bytes */
};

typedef void (*mg_denial_fn)(const struct mg_denial *d, void *userdata);

/*
 * Call fn(denial, userdata) on the broker thread for every record the
 * kernel drops on r's channels (each is also logged as an error, and a
 * dropped request with a reply_to is answered with a CallError "refused
 * by policy", as the router answers the requests it refuses). One
 * callback per router; NULL removes it. fn must not block. Returns 0 or
 * -EINVAL. Denials only exist where the filter runs in the kernel. Events
 * beyond the ring buffer's room (256 KiB, ~6,500 denials not yet read) are
 * lost; the drop counters never are.
 */
MG_API int mg_router_on_denial(struct mg_router *r, mg_denial_fn fn, void *userdata);

#ifdef __cplusplus
}
#endif

#endif
