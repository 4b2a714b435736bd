/* SPDX-License-Identifier: MIT */
/*
 * bpf/shared.h — the one definition of every struct, key and constant the
 * eBPF programs (bpf/NAME.bpf.c) and their user-space side (bpf/loader.c,
 * bpf/tenant.c, tools/stats.c) share. Usable from BPF C: fixed-width types
 * only, no libc. The record layout itself comes from core/wire.h.
 *
 * Maps of one process are pinned under MGB_PIN_ROOT/<pid>/ (README "eBPF").
 */
#ifndef BPF_SHARED_H
#define BPF_SHARED_H

#ifdef __bpf__
/* vmlinux.h (generated from the running kernel's BTF) gives the __uN types. */
#else
#include <linux/types.h>
#endif

#define MGB_PIN_ROOT		"/sys/fs/bpf/mitogen"

/* Direction of a record on a child channel. */
enum mgb_dir {
	MGB_UP = 0,		/* child -> parent: checked at the parent's end */
	MGB_DOWN = 1,		/* parent -> child: checked at the child's end */
	MGB_NDIR = 2,
};

/*
 * Handle classes (kept equal to enum mg_stats_class in mitogen/stats.h):
 * a reply is a message to a handle that an earlier message the other way
 * on the same channel named as its reply_to (or a dead message).
 */
enum mgb_class {
	MGB_CLASS_CALL = 0,	/* CALL_FUNCTION, CALL_SERVICE, BOOT, SHUTDOWN */
	MGB_CLASS_REPLY = 1,
	MGB_CLASS_LOG = 2,	/* FORWARD_LOG */
	MGB_CLASS_ROUTE = 3,	/* ADD_ROUTE, DEL_ROUTE, ALLOCATE_ID, DETACHING,
				 * HEARTBEAT */
	MGB_CLASS_DATA = 4,	/* everything else */
	MGB_NCLASS = 5,
};

/* Why a record was dropped (kept equal to enum mg_stats_drop). */
enum mgb_drop {
	MGB_DROP_MALFORMED = 0,	/* malformed: counted, passed on for the router to close */
	MGB_DROP_SRC = 1,	/* up: src_id not behind this channel */
	MGB_DROP_AUTH = 2,	/* up: auth_id not behind this channel */
	MGB_DROP_PRIV_UP = 3,	/* up: privileged handle to the parent or its parents */
	MGB_DROP_NO_AUTHORITY = 4, /* down: privileged handle without parent authority */
	MGB_DROP_UNKNOWN = 5,	/* a socket of ours with no channel entry */
	MGB_DROP_REPLY = 6,	/* up: to a reply handle never sent down this channel */
	MGB_NDROP = 7,
};

/* Most parent ids a channel entry carries (the tree's depth limit here). */
#define MGB_MAX_AUTH		32

/* The counts of one {channel, context, direction} (see counts below). */
struct mgb_counts {
	__u64 msgs[MGB_NCLASS];	/* messages (counted on their FIRST record) */
	__u64 bytes[MGB_NCLASS]; /* record bytes, headers included */
	__u64 drops[MGB_NDROP];	/* records dropped */
};

/*
 * chans (per CPU): SO_COOKIE of a receiving end -> what it checks (the
 * same in every CPU's copy), and the counts of the records that end
 * receives (direction dir) on this CPU: the channel's totals and its
 * child's own. They live here because the filter has this entry at hand
 * already (a lookup in counts costs ~55 ns a record here), and per CPU
 * so that counting needs no atomic operation (~16 ns each) and no cache
 * line moves between CPUs. Readers sum the copies (bpfload_chan_read).
 * Other contexts behind the channel are counted in counts.
 */
struct mgb_chan {
	__u32 chan;		/* channel number, unique in this process */
	__u32 rkey;		/* router number (keys of the routes map) */
	__u32 dir;		/* enum mgb_dir of records sent from that end */
	__u32 child_id;		/* the child context of the channel */
	__u32 nauth;		/* used entries of auth */
	__u32 auth[MGB_MAX_AUTH]; /* the parent's id, then its parent ids */
	__u32 flags;		/* MGB_CHAN_* */
	struct mgb_counts total; /* {chan, MGB_CTX_TOTAL, dir} */
	struct mgb_counts child; /* {chan, child_id, dir} */
};

/* The child's end is filtered too (not a connect-back channel): the
 * parent's reply handles sent down are seen, and replies can be checked. */
#define MGB_CHAN_BOTH_ENDS	1u

/* routes: {router, context id} -> channel the id is routed through. */
struct mgb_route_key {
	__u32 rkey;
	__u32 id;
};

/* pending: a reply handle some message named as its reply_to, stored in
 * slot pending_slot() of a direct-mapped array (channel.bpf.c). */
#define MGB_PENDING_SLOTS	8192
struct mgb_pending_key {
	__u32 chan;
	__u32 dir;		/* direction the reply will travel */
	__u32 handle;
};

/* Context id of a channel's totals in counts. */
#define MGB_CTX_TOTAL		0xffffffffu
/* Channel number of the totals of every channel closed so far. */
#define MGB_CHAN_CLOSED		0

/*
 * counts: {channel, context (or MGB_CTX_TOTAL), direction} for the
 * contexts behind a channel other than its child (whose counts, and the
 * channel's totals, are in its chans entries), records of sockets with
 * no entry, and the totals of closed channels ({MGB_CHAN_CLOSED,
 * MGB_CTX_TOTAL, dir}).
 */
struct mgb_count_key {
	__u32 chan;
	__u32 ctx;
	__u32 dir;
	__u32 pad;
};

/* events: one denial. */
struct mgb_event {
	__u64 time_ns;		/* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u32 chan;
	__u32 child_id;		/* the channel's child context */
	__u32 dir;
	__u32 reason;		/* enum mgb_drop */
	__u32 dst_id;
	__u32 src_id;
	__u32 auth_id;
	__u32 handle;
	__u32 len;		/* record bytes */
	__u32 reply_to;
};

/* recent: the last MGB_RECENT events, slot = sequence % MGB_RECENT. */
#define MGB_RECENT		16

/* tenant_counts: per-tenant bytes and packets, index 0 ingress, 1 egress. */
struct mgb_tenant_counts {
	__u64 bytes;
	__u64 packets;
	__u64 denied_sockets;	/* sock_create refused (index 0 only) */
};

#endif
