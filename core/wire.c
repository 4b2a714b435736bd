// SPDX-License-Identifier: MIT
/*
 * wire.c — packing and checking record headers, and reassembling records
 * into messages. Knows nothing of fds or routing: callers feed it records.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "core/wire.h"

void wire_hdr_pack(struct wire_hdr *hdr, const struct wire_meta *meta,
		   uint8_t flags, uint32_t length)
{
	hdr->magic[0] = WIRE_MAGIC0;
	hdr->magic[1] = WIRE_MAGIC1;
	hdr->version = WIRE_VERSION;
	hdr->flags = flags;
	hdr->dst_id = htonl(meta->dst_id);
	hdr->src_id = htonl(meta->src_id);
	hdr->auth_id = htonl(meta->auth_id);
	hdr->handle = htonl(meta->handle);
	hdr->reply_to = htonl(meta->reply_to);
	hdr->length = htonl(length);
}

int wire_hdr_parse(const struct wire_hdr *hdr, struct wire_meta *meta,
		   uint8_t *ret_flags, uint32_t *ret_length, const char **why)
{
	uint32_t length;

	if (hdr->magic[0] != WIRE_MAGIC0 || hdr->magic[1] != WIRE_MAGIC1) {
		*why = "bad magic";
		return -EBADMSG;
	}
	if (hdr->version != WIRE_VERSION) {
		*why = "bad version";
		return -EBADMSG;
	}
	if (hdr->flags & ~WIRE_FLAGS_KNOWN) {
		*why = "unknown flags";
		return -EBADMSG;
	}
	length = ntohl(hdr->length);
	if (length > WIRE_PAYLOAD_MAX) {
		*why = "oversize record";
		return -EBADMSG;
	}
	meta->dst_id = ntohl(hdr->dst_id);
	meta->src_id = ntohl(hdr->src_id);
	meta->auth_id = ntohl(hdr->auth_id);
	meta->handle = ntohl(hdr->handle);
	meta->reply_to = ntohl(hdr->reply_to);
	*ret_flags = hdr->flags;
	*ret_length = length;
	return 0;
}

void wire_rx_init(struct wire_rx *rx, size_t max)
{
	memset(rx, 0, sizeof(*rx));
	rx->max = max;
}

void wire_rx_reset(struct wire_rx *rx)
{
	free(rx->buf);
	rx->buf = NULL;
	rx->len = rx->cap = 0;
	rx->in_msg = false;
	rx->split = false;
	rx->dropping = false;
}

size_t wire_rx_grow_size(const struct wire_rx *rx, size_t n)
{
	size_t want = rx->len + n, cap;

	if (rx->dropping || (rx->split && n > rx->body - rx->len))
		return rx->cap;		/* nothing to grow, or an error */
	if (rx->split)
		want++;			/* the spare byte the value's NUL goes in */
	if (want <= rx->cap)
		return rx->cap;
	/*
	 * At least double: a message of n bytes costs log2(n / 64 KiB)
	 * reallocations, and never more room than twice what arrived plus
	 * the record asked for (a header's claim is not believed).
	 */
	cap = rx->cap * 2 > want ? rx->cap * 2 : want;
	if (rx->split && cap > rx->body + 1)
		cap = rx->body + 1;
	return cap;
}

int wire_rx_reserve(struct wire_rx *rx, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (rx->split && !rx->dropping && n > rx->body - rx->len)
		return -EMSGSIZE;
	cap = wire_rx_grow_size(rx, n);
	if (cap == rx->cap)
		return 0;
	p = realloc(rx->buf, cap);
	if (!p)
		return -ENOMEM;
	rx->buf = p;
	rx->cap = cap;
	return 0;
}

static bool meta_equal(const struct wire_meta *a, const struct wire_meta *b)
{
	return a->dst_id == b->dst_id && a->src_id == b->src_id &&
	       a->auth_id == b->auth_id && a->handle == b->handle &&
	       a->reply_to == b->reply_to;
}

int wire_rx_record(struct wire_rx *rx, const struct wire_meta *meta, uint8_t flags,
		   const uint8_t *payload, uint32_t length, bool *ret_done,
		   const char **why)
{
	*ret_done = false;
	if (!rx->in_msg) {
		if (!(flags & WIRE_FLAG_FIRST)) {
			*why = "continuation record without FIRST";
			return -EBADMSG;
		}
		if (length > rx->max) {
			*why = "message too large";
			return -EMSGSIZE;
		}
		rx->len = 0;
		rx->split = false;
		rx->dropping = false;
		if (!(flags & WIRE_FLAG_LAST) && wire_handle_capped(meta->handle)) {
			/* Longer than one record where one is the most: drop it. */
			rx->len = length;
			rx->dropping = true;
		} else if (!(flags & WIRE_FLAG_LAST) && length > 5 &&
			   (payload[0] == 0xc6 || payload[0] == 0xdb)) {
			/* str32/bin32: the header says how big the body is. */
			size_t body = (size_t)payload[1] << 24 | (size_t)payload[2] << 16 |
				      (size_t)payload[3] << 8 | payload[4];

			if (body + 5 > rx->max) {
				*why = "message too large";
				return -EMSGSIZE;
			}
			if (body + 5 < length) {
				*why = "payload longer than its header says";
				return -EBADMSG;
			}
			/* What arrived and the spare byte; it grows as the rest comes. */
			free(rx->buf);
			rx->buf = malloc(length - 5 + 1);
			if (!rx->buf) {
				rx->cap = 0;
				*why = "out of memory";
				return -ENOMEM;
			}
			rx->cap = length - 5 + 1;
			rx->body = body;
			memcpy(rx->prefix, payload, 5);
			memcpy(rx->buf, payload + 5, length - 5);
			rx->len = length - 5;
			rx->split = true;
		} else {
			if (wire_rx_reserve(rx, length ? length : 1) < 0) {
				*why = "out of memory";
				return -ENOMEM;
			}
			if (length)
				memcpy(rx->buf, payload, length);
			rx->len = length;
		}
		rx->meta = *meta;
		rx->in_msg = true;
	} else {
		if (flags & WIRE_FLAG_FIRST) {
			*why = "FIRST record inside a message";
			return -EBADMSG;
		}
		if (!meta_equal(meta, &rx->meta)) {
			*why = "header changed inside a message";
			return -EBADMSG;
		}
		/* The payload was received in place at buf + len (or dropped). */
		if (rx->len + length + (rx->split ? 5 : 0) > rx->max) {
			*why = "message too large";
			return -EMSGSIZE;
		}
		if (rx->split && length > rx->body - rx->len) {
			*why = "payload longer than its header says";
			return -EBADMSG;
		}
		rx->len += length;
	}
	if (flags & WIRE_FLAG_LAST) {
		if (rx->split && rx->len != rx->body) {
			*why = "payload shorter than its header says";
			return -EBADMSG;
		}
		rx->in_msg = false;
		*ret_done = true;
	}
	return 0;
}

uint8_t *wire_rx_take(struct wire_rx *rx, size_t *ret_len, uint8_t *ret_prefix,
		      uint8_t *ret_prefix_len)
{
	uint8_t *p = rx->buf;

	*ret_prefix_len = 0;
	if (rx->split) {
		memcpy(ret_prefix, rx->prefix, 5);
		*ret_prefix_len = 5;
		rx->split = false;
	}
	*ret_len = rx->len;
	rx->buf = NULL;
	rx->len = rx->cap = 0;
	return p;
}
