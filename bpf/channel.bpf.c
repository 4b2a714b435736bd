// SPDX-License-Identifier: MIT
/*
 * channel.bpf.c — the socket filter on both ends of every SEQPACKET child
 * channel (DESIGN §5, §6). sk_filter() runs it in the sender's sendmsg on
 * the receiving socket, once per record (one record per packet); a drop
 * tosses the record before the receiver can read it, and the sender is
 * told nothing.
 *
 * At the parent's end (records coming up from child C): src_id and auth_id
 * must be routed through this channel (C's subtree, the routes map the
 * router keeps and that ADD_ROUTE records teach at once), a privileged
 * handle may not be addressed to the parent or one of its parents, and a
 * record to one of the parent's reply handles (WIRE_REPLY_MIN up) must go
 * to a handle that the parent named as a reply_to down this channel
 * (where the child's end is filtered too: a connect-back channel's is not,
 * and there the router's check stands alone).
 * At the child's end (records going down to C): a privileged handle
 * addressed to C must carry auth_id = C's parent or one of its parent ids.
 * Every record, passed or dropped, is counted per channel and per context;
 * every drop also goes to the events ring buffer.
 *
 * The channel is found by the SO_COOKIE of the socket the filter runs
 * for (bpf_get_socket_cookie(skb) gives the receiving end's here); a
 * socket of ours with no entry fails closed. This file owns no policy beyond what bpf/loader.c writes in the
 * maps; it must not trust anything in the record but its header.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

typedef __u8 uint8_t;
#include "core/wire.h"
#include "bpf/shared.h"

/* Handle numbers of include/mitogen/router.h (loader.c checks they agree). */
#define H_CALL_FUNCTION	101
#define H_FORWARD_LOG	102
#define H_ADD_ROUTE	103
#define H_DEL_ROUTE	104
#define H_ALLOCATE_ID	105
#define H_SHUTDOWN	106
#define H_DETACHING	109
#define H_CALL_SERVICE	110
#define H_BOOT		111
#define H_AUDIT		112
#define H_HEARTBEAT	113
#define H_IS_DEAD	999
#define H_USER_MIN	1000

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);	/* ~410 bytes an entry per CPU */
	__type(key, __u64);
	__type(value, struct mgb_chan);
} chans SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mgb_route_key);
	__type(value, __u32);
} routes SEC(".maps");

/*
 * Reply handles named by reply_to, direct-mapped (slot from a hash of the
 * key, a newer handle evicts an older one in its slot): a lookup and an
 * insert cost an array access, where an LRU hash update costs ~0.8 us per
 * call. An evicted handle's replies count as user data.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MGB_PENDING_SLOTS);
	__type(key, __u32);
	__type(value, struct mgb_pending_key);
} pending SEC(".maps");

static __always_inline __u32 pending_slot(__u32 chan, __u32 dir, __u32 handle)
{
	return ((handle * 2654435761u) ^ (chan * 40503u) ^ dir) & (MGB_PENDING_SLOTS - 1);
}

/*
 * The process's own reply handles, by slot: core/handles.c gives out a
 * reply handle only in a slot no other live one holds, so an entry is
 * never evicted while its call waits. A slot holds the channel the handle
 * was last sent down (as a reply_to of a message from this process), and
 * the handle; stale entries are overwritten when the slot is reused.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WIRE_REPLY_SLOTS);
	__type(key, __u32);
	__type(value, struct mgb_pending_key);
} replies SEC(".maps");

/* Up, to the parent itself: was handle sent down this channel? */
static __always_inline bool reply_expected(const struct mgb_chan *ch, __u32 handle)
{
	__u32 slot = handle & (WIRE_REPLY_SLOTS - 1);
	struct mgb_pending_key *pk = bpf_map_lookup_elem(&replies, &slot);

	return pk && pk->chan == ch->chan && pk->handle == handle;
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mgb_count_key);
	__type(value, struct mgb_counts);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* The last MGB_RECENT denials, for readers from outside (mitogen stats):
 * the ring buffer belongs to the process that consumes it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MGB_RECENT);
	__type(key, __u32);
	__type(value, struct mgb_event);
} recent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} recent_seq SEC(".maps");

static __always_inline bool in_auth(const struct mgb_chan *ch, __u32 id)
{
	for (int i = 0; i < MGB_MAX_AUTH; i++) {
		if (i >= ch->nauth)
			break;
		if (ch->auth[i] == id)
			return true;
	}
	return false;
}

/*
 * The channel's own child is routed through it for as long as the
 * channel lives (the loader writes both together): most records come
 * from or go to it, and skip the lookup.
 */
static __always_inline bool routed_here(const struct mgb_chan *ch, __u32 id)
{
	struct mgb_route_key k = { .rkey = ch->rkey, .id = id };
	__u32 *chan;

	if (id == ch->child_id)
		return true;
	chan = bpf_map_lookup_elem(&routes, &k);
	return chan && *chan == ch->chan;
}

static __always_inline struct mgb_counts *counts_of(__u32 chan, __u32 ctx, __u32 dir)
{
	struct mgb_count_key k = { .chan = chan, .ctx = ctx, .dir = dir };
	struct mgb_counts *c = bpf_map_lookup_elem(&counts, &k);

	if (!c) {
		struct mgb_counts zero = {};

		bpf_map_update_elem(&counts, &k, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&counts, &k);
	}
	return c;
}

/*
 * Counting: this CPU's copy of a chans entry with plain adds (the program
 * runs with migration off; another sender on this CPU could interleave
 * only by preempting it mid-add, the usual price of per-CPU statistics),
 * or a counts entry, shared by every CPU, with atomic ones.
 */
static __always_inline void add_pass(struct mgb_counts *c, __u32 cls, __u32 bytes, bool first,
				     bool percpu)
{
	if (!c || cls >= MGB_NCLASS)
		return;
	if (percpu) {
		c->msgs[cls] += first;
		c->bytes[cls] += bytes;
		return;
	}
	if (first)
		__sync_fetch_and_add(&c->msgs[cls], 1);
	__sync_fetch_and_add(&c->bytes[cls], bytes);
}

static __always_inline void add_drop(struct mgb_counts *c, __u32 reason, bool percpu)
{
	if (!c || reason >= MGB_NDROP)
		return;
	if (percpu)
		c->drops[reason]++;
	else
		__sync_fetch_and_add(&c->drops[reason], 1);
}

/*
 * A malformed record is counted but passed on: the router closes the
 * channel on it with its reason and fails what waits on it (DESIGN §3),
 * which a silent drop here would turn into a hang.
 */
static __always_inline int malformed(struct mgb_chan *ch, __u32 len)
{
	add_drop(&ch->total, MGB_DROP_MALFORMED, true);
	return len;
}

static __always_inline int deny(struct mgb_chan *ch, const struct wire_hdr *h,
				__u32 reason, __u32 len)
{
	struct mgb_event ev, *e;
	__u32 zero = 0, slot;
	__u64 *seq;

	add_drop(&ch->total, reason, true);
	add_drop(&ch->child, reason, true);
	ev.time_ns = bpf_ktime_get_ns();
	ev.chan = ch->chan;
	ev.child_id = ch->child_id;
	ev.dir = ch->dir;
	ev.reason = reason;
	ev.dst_id = bpf_ntohl(h->dst_id);
	ev.src_id = bpf_ntohl(h->src_id);
	ev.auth_id = bpf_ntohl(h->auth_id);
	ev.handle = bpf_ntohl(h->handle);
	ev.len = len;
	ev.reply_to = bpf_ntohl(h->reply_to);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		__builtin_memcpy(e, &ev, sizeof(ev));
		bpf_ringbuf_submit(e, 0);
	}
	seq = bpf_map_lookup_elem(&recent_seq, &zero);
	if (seq) {
		slot = (__u32)(__sync_fetch_and_add(seq, 1) % MGB_RECENT);
		bpf_map_update_elem(&recent, &slot, &ev, BPF_ANY);
	}
	return 0;
}

/* Handles that act on the receiving context with its parents' authority. */
static __always_inline bool privileged(__u32 handle)
{
	return handle == H_CALL_FUNCTION || handle == H_CALL_SERVICE ||
	       handle == H_SHUTDOWN || handle == H_BOOT;
}

static __always_inline __u32 class_of(const struct mgb_chan *ch, __u32 dst, __u32 handle,
				      __u32 reply_to)
{
	struct mgb_pending_key *pk;
	__u32 slot;

	switch (handle) {
	case H_CALL_FUNCTION:
	case H_CALL_SERVICE:
	case H_SHUTDOWN:
	case H_BOOT:
		return MGB_CLASS_CALL;
	case H_FORWARD_LOG:
	case H_AUDIT:
		return MGB_CLASS_LOG;
	case H_ADD_ROUTE:
	case H_DEL_ROUTE:
	case H_ALLOCATE_ID:
	case H_DETACHING:
	case H_HEARTBEAT:
		return MGB_CLASS_ROUTE;
	}
	if (reply_to == H_IS_DEAD)
		return MGB_CLASS_REPLY;
	/* Checked by the caller: one of the parent's reply handles. */
	if (ch->dir == MGB_UP && handle >= WIRE_REPLY_MIN && (ch->flags & MGB_CHAN_BOTH_ENDS) &&
	    ch->nauth && dst == ch->auth[0])
		return MGB_CLASS_REPLY;
	slot = pending_slot(ch->chan, ch->dir, handle);
	pk = bpf_map_lookup_elem(&pending, &slot);
	if (pk && pk->chan == ch->chan && pk->dir == ch->dir && pk->handle == handle)
		return MGB_CLASS_REPLY;
	return MGB_CLASS_DATA;
}

/*
 * ADD_ROUTE [id, name] from C to its parent: route id through C at once,
 * so that the new context's first records (already on their way behind
 * the ADD_ROUTE) pass. Never an id of the parent's line, never one routed
 * elsewhere (BPF_NOEXIST); the router still checks it (the master's
 * allocation rule) and removes the entry when it refuses.
 */
static __always_inline void learn_route(struct __sk_buff *skb, const struct mgb_chan *ch)
{
	struct mgb_route_key k = { .rkey = ch->rkey };
	__u8 b[5] = {};
	__u32 id;

	if (bpf_skb_load_bytes(skb, WIRE_HDR_SIZE, b, 2) < 0 || (b[0] != 0x91 && b[0] != 0x92))
		return;
	if (b[1] <= 0x7f) {
		id = b[1];
	} else if (b[1] == 0xcc) {
		if (bpf_skb_load_bytes(skb, WIRE_HDR_SIZE + 2, b, 1) < 0)
			return;
		id = b[0];
	} else if (b[1] == 0xcd) {
		if (bpf_skb_load_bytes(skb, WIRE_HDR_SIZE + 2, b, 2) < 0)
			return;
		id = (__u32)b[0] << 8 | b[1];
	} else if (b[1] == 0xce) {
		if (bpf_skb_load_bytes(skb, WIRE_HDR_SIZE + 2, b, 4) < 0)
			return;
		id = (__u32)b[0] << 24 | (__u32)b[1] << 16 | (__u32)b[2] << 8 | b[3];
	} else {
		return;
	}
	if (!id || in_auth(ch, id))
		return;
	k.id = id;
	bpf_map_update_elem(&routes, &k, &ch->chan, BPF_NOEXIST);
}

SEC("socket")
int mg_channel(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct mgb_chan *ch = bpf_map_lookup_elem(&chans, &cookie);
	__u32 len = skb->len;
	struct wire_hdr h;
	__u32 dst, src, auth, handle, reply_to, ctx;
	bool first;

	if (!ch) {
		add_drop(counts_of(MGB_CHAN_CLOSED, MGB_CTX_TOTAL, MGB_UP), MGB_DROP_UNKNOWN, false);
		return 0;
	}
	if (len < WIRE_HDR_SIZE || bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0)
		return malformed(ch, len);
	if (h.magic[0] != WIRE_MAGIC0 || h.magic[1] != WIRE_MAGIC1 ||
	    h.version != WIRE_VERSION || (h.flags & ~WIRE_FLAGS_KNOWN) ||
	    bpf_ntohl(h.length) != len - WIRE_HDR_SIZE)
		return malformed(ch, len);
	dst = bpf_ntohl(h.dst_id);
	src = bpf_ntohl(h.src_id);
	auth = bpf_ntohl(h.auth_id);
	handle = bpf_ntohl(h.handle);
	reply_to = bpf_ntohl(h.reply_to);
	first = h.flags & WIRE_FLAG_FIRST;

	if (ch->dir == MGB_UP) {
		if (!routed_here(ch, src))
			return deny(ch, &h, MGB_DROP_SRC, len);
		if (auth != src && !routed_here(ch, auth))
			return deny(ch, &h, MGB_DROP_AUTH, len);
		if (privileged(handle) && in_auth(ch, dst))
			return deny(ch, &h, MGB_DROP_PRIV_UP, len);
		/* Replies are bound to their respondent: a context can only
		 * answer, on this channel, a call that went down it. */
		if (handle >= WIRE_REPLY_MIN && (ch->flags & MGB_CHAN_BOTH_ENDS) && ch->nauth &&
		    dst == ch->auth[0] && !reply_expected(ch, handle))
			return deny(ch, &h, MGB_DROP_REPLY, len);
		if (handle == H_ADD_ROUTE && first && ch->nauth && dst == ch->auth[0])
			learn_route(skb, ch);
		ctx = src;
	} else {
		if ((privileged(handle) || handle == H_ADD_ROUTE || handle == H_DEL_ROUTE) &&
		    dst == ch->child_id && !in_auth(ch, auth))
			return deny(ch, &h, MGB_DROP_NO_AUTHORITY, len);
		ctx = routed_here(ch, dst) ? dst : ch->child_id;
	}

	__u32 cls = class_of(ch, dst, handle, reply_to);

	if (first && reply_to >= WIRE_REPLY_MIN && ch->dir == MGB_DOWN && ch->nauth &&
	    src == ch->auth[0]) {
		/* A call of the parent's own: its reply may come up. */
		__u32 slot = reply_to & (WIRE_REPLY_SLOTS - 1);
		struct mgb_pending_key *pk = bpf_map_lookup_elem(&replies, &slot);

		if (pk) {
			pk->chan = ch->chan;
			pk->dir = MGB_UP;
			pk->handle = reply_to;
		}
	} else if (first && reply_to >= H_USER_MIN) {
		__u32 slot = pending_slot(ch->chan, !ch->dir, reply_to);
		struct mgb_pending_key *pk = bpf_map_lookup_elem(&pending, &slot);

		if (pk) {
			pk->chan = ch->chan;
			pk->dir = !ch->dir;
			pk->handle = reply_to;
		}
	}
	add_pass(&ch->total, cls, len, first, true);
	if (ctx == ch->child_id)
		add_pass(&ch->child, cls, len, first, true);
	else
		add_pass(counts_of(ch->chan, ctx, ch->dir), cls, len, first, false);
	return len;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
