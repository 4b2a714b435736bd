/* SPDX-License-Identifier: MIT */
/*
 * wire.h — the record format (DESIGN §3), the one definition shared by the
 * router and by the eBPF programs that read record headers in the kernel.
 *
 * A record is a fixed 28-byte header (network byte order) followed by at
 * most WIRE_PAYLOAD_MAX payload bytes. A message larger than one record is
 * sent as consecutive records of the same header, the first flagged FIRST,
 * the last flagged LAST (a one-record message carries both). Records of one
 * message are never interleaved with another message's on one stream.
 *
 * This header must stay usable from BPF C: fixed-width types only, no libc.
 */
#ifndef CORE_WIRE_H
#define CORE_WIRE_H

#ifndef __bpf__
/* BPF C gets the fixed-width types from vmlinux.h (bpf/channel.bpf.c). */
#include <stdint.h>
#include <stddef.h>
#endif

#define WIRE_MAGIC0		'M'
#define WIRE_MAGIC1		'G'
#define WIRE_VERSION		1
#define WIRE_FLAG_FIRST		0x01
#define WIRE_FLAG_LAST		0x02
#define WIRE_FLAGS_KNOWN	(WIRE_FLAG_FIRST | WIRE_FLAG_LAST)

#define WIRE_OFF_MAGIC		0
#define WIRE_OFF_VERSION	2
#define WIRE_OFF_FLAGS		3
#define WIRE_OFF_DST_ID		4
#define WIRE_OFF_SRC_ID		8
#define WIRE_OFF_AUTH_ID	12
#define WIRE_OFF_HANDLE		16
#define WIRE_OFF_REPLY_TO	20
#define WIRE_OFF_LENGTH		24
#define WIRE_HDR_SIZE		28

/*
 * Reply handles (core/handles.c, MG_HANDLE_REPLY_MIN): from WIRE_REPLY_MIN
 * up, the low bits a slot among WIRE_REPLY_SLOTS that no other live reply
 * handle of the process holds; the kernel filter remembers them by slot.
 */
#define WIRE_REPLY_MIN		0x40000000u
#define WIRE_REPLY_SLOTS	8192u

/* A record, header included, is at most 64 KiB. */
#define WIRE_RECORD_MAX		65536
#define WIRE_PAYLOAD_MAX	(WIRE_RECORD_MAX - WIRE_HDR_SIZE)

struct wire_hdr {
	uint8_t magic[2];
	uint8_t version;
	uint8_t flags;
	uint32_t dst_id;	/* big-endian on the wire */
	uint32_t src_id;
	uint32_t auth_id;
	uint32_t handle;
	uint32_t reply_to;
	uint32_t length;	/* payload bytes in this record */
} __attribute__((packed));

_Static_assert(sizeof(struct wire_hdr) == WIRE_HDR_SIZE, "wire header size");
_Static_assert(__builtin_offsetof(struct wire_hdr, dst_id) == WIRE_OFF_DST_ID, "dst_id");
_Static_assert(__builtin_offsetof(struct wire_hdr, src_id) == WIRE_OFF_SRC_ID, "src_id");
_Static_assert(__builtin_offsetof(struct wire_hdr, auth_id) == WIRE_OFF_AUTH_ID, "auth_id");
_Static_assert(__builtin_offsetof(struct wire_hdr, handle) == WIRE_OFF_HANDLE, "handle");
_Static_assert(__builtin_offsetof(struct wire_hdr, reply_to) == WIRE_OFF_REPLY_TO, "reply_to");
_Static_assert(__builtin_offsetof(struct wire_hdr, length) == WIRE_OFF_LENGTH, "length");

#ifndef __bpf__
#include <stdbool.h>

/* Routing fields of a message, host byte order. */
struct wire_meta {
	uint32_t dst_id;
	uint32_t src_id;
	uint32_t auth_id;
	uint32_t handle;
	uint32_t reply_to;
};

/* Fill hdr for one record of a message. */
void wire_hdr_pack(struct wire_hdr *hdr, const struct wire_meta *meta,
		   uint8_t flags, uint32_t length);

/*
 * Check and unpack a received header. Returns 0, or -EBADMSG with *why set
 * to a short reason ("bad magic", "bad version 7", ...).
 */
int wire_hdr_parse(const struct wire_hdr *hdr, struct wire_meta *meta,
		   uint8_t *ret_flags, uint32_t *ret_length, const char **why);

/* Records needed for a payload of len bytes (at least 1). */
static inline size_t wire_records(size_t len)
{
	return len == 0 ? 1 : (len + WIRE_PAYLOAD_MAX - 1) / WIRE_PAYLOAD_MAX;
}

/*
 * Messages to these handles must fit in one record (FIRST|LAST, at most
 * WIRE_PAYLOAD_MAX = 65,508 bytes of payload): log lines, audit records
 * and the route messages, which their handlers decode on the broker
 * thread. What honest senders put there is a few KiB at most (a log line
 * is cut at 2 KiB, DEL_ROUTE carries at most 1,024 ids). A longer one is
 * dropped record by record as it arrives — never stored, never decoded —
 * and the stream carries on (docs/limits.md).
 */
static inline bool wire_handle_capped(uint32_t handle)
{
	/* FORWARD_LOG 102, ADD_ROUTE 103, DEL_ROUTE 104, ALLOCATE_ID 105,
	 * SHUTDOWN 106, DETACHING 109, AUDIT 112 (include/mitogen/router.h) */
	return (handle >= 102 && handle <= 106) || handle == 109 || handle == 112;
}

/*
 * Reassembly of one stream's records into messages. Feed each record's
 * header and payload; when a message is complete, *ret_done is set and the
 * caller takes buf/len (wire_rx_take). Errors are protocol violations that
 * must close the stream: -EBADMSG (unexpected FIRST/continuation, header
 * fields changing inside a message) or -EMSGSIZE (beyond max).
 *
 * Memory follows what arrived, never what a header claims: buf starts at
 * the first record's size and at most doubles when a record needs room,
 * so cap <= 2 * len + 2 * WIRE_PAYLOAD_MAX while a message is unfinished.
 */
struct wire_rx {
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t max;		/* largest message accepted */
	bool in_msg;		/* between FIRST and LAST */
	/*
	 * Split mode: the message is one large str/bytes (its first record
	 * starts with a msgpack str32/bin32 header). The 5 header bytes are
	 * kept in prefix and buf holds just the body (plus one spare byte at
	 * the end), growing with what arrives up to the size the header
	 * declares (body), so the finished buffer can become the value's
	 * storage as is.
	 */
	bool split;
	/*
	 * Dropping: the message is refused as it arrives (wire_handle_capped
	 * and longer than one record). Its records are checked like any
	 * other's and counted in len, but not stored; buf stays NULL. Set
	 * from its FIRST record until the next message's FIRST.
	 */
	bool dropping;
	uint8_t prefix[5];
	size_t body;		/* split: body bytes the header declares */
	struct wire_meta meta;
};

void wire_rx_init(struct wire_rx *rx, size_t max);
void wire_rx_reset(struct wire_rx *rx);
/*
 * Make room for n more payload bytes at buf + len, growing buf to at
 * least twice its size when it must grow. Split mode: room for n more
 * body bytes, -EMSGSIZE when that passes the size the header declared.
 * Dropping: nothing to do. Returns 0, -EMSGSIZE or -ENOMEM.
 */
int wire_rx_reserve(struct wire_rx *rx, size_t n);
/* The cap wire_rx_reserve(rx, n) would leave (rx->cap: no growth). */
size_t wire_rx_grow_size(const struct wire_rx *rx, size_t n);
/*
 * Account for a record whose payload (length bytes) is already at
 * rx->buf + rx->len (when rx->in_msg and not dropping) or at `payload`
 * (otherwise: copied, or ignored when dropping).
 */
int wire_rx_record(struct wire_rx *rx, const struct wire_meta *meta, uint8_t flags,
		   const uint8_t *payload, uint32_t length, bool *ret_done,
		   const char **why);
/* Hand the completed message's buffer to the caller; for a split message
 * also its header bytes (*ret_prefix_len 5), else *ret_prefix_len 0. */
uint8_t *wire_rx_take(struct wire_rx *rx, size_t *ret_len, uint8_t *ret_prefix,
		      uint8_t *ret_prefix_len);
#endif

#endif
