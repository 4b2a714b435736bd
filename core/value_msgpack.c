// SPDX-License-Identifier: MIT
/*
 * core/value_msgpack.c: the msgpack wire form of struct mg_value —
 * mg_value_encode() (with msgpack-c), mg_value_decode() (with the
 * bounds-checked reader below), and the internal entry points of
 * core/value.h that streams and messages use on received payloads:
 * value_check(), value_decode_owned(), value_split_check() and
 * value_take_blob().
 *
 * Owns the byte format: the msgpack forms picked, the ext type codes, the
 * error ext payload, and the limits a decode enforces (MG_VALUE_MAX_DEPTH,
 * VALUE_MAX_NODES). Must not touch value storage directly: nodes and blobs
 * are made, filled and released only through the storage helpers of
 * core/value.h (value.c owns those rules), and a finished value is read
 * through its public fields like any other caller's.
 *
 * Decoding does not use msgpack-c's unpacker, for two reasons found with
 * msgpack-c 4.0.0: it allocates count * sizeof(msgpack_object) as soon as it
 * reads an array or map header (a 5-byte payload claiming 2^32-1 items asks
 * for ~100 GB), and its C unpacker stops at 32 levels of nesting
 * (MSGPACK_EMBED_STACK_SIZE, compiled into the library), below
 * MG_VALUE_MAX_DEPTH. value_next() checks every length and count against
 * the bytes that remain before anything is allocated, so an allocation is
 * never larger than a small multiple of the input; and it counts the nodes
 * that container headers promise, so one decode never builds more than
 * VALUE_MAX_NODES of them whatever the input's size. A decode also adds up
 * what it allocates, before allocating, and stops at VALUE_DECODE_FACTOR
 * times its input plus VALUE_DECODE_SLACK (value_charge): what a peer's
 * bytes can make us hold is a documented multiple of their number.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <mitogen/value.h>
#include "core/value.h"

/* msgpack ext type codes of the four extension types. */
enum {
	VALUE_EXT_CONTEXT = 1,
	VALUE_EXT_SENDER = 2,
	VALUE_EXT_ERROR = 3,
	VALUE_EXT_SECRET = 4,
};

/* Error ext payload: [kind, errnum, context, function, message]. */
#define VALUE_ERROR_FIELDS 5

/* --- encode ----------------------------------------------------------- */

/*
 * Encoded sizes, mirroring the forms msgpack-c picks (smallest int form;
 * str8 for 32..255 bytes; fixext for 1/2/4/8/16 bytes), so the output buffer
 * is allocated once at its final size.
 */
static size_t value_int_size(int64_t i)
{
	if (i >= 0)
		return i < 128	       ? 1 :
		       i < 256	       ? 2 :
		       i < 65536       ? 3 :
		       i <= UINT32_MAX ? 5 :
					 9;
	return i >= -32	      ? 1 :
	       i >= -128      ? 2 :
	       i >= -32768    ? 3 :
	       i >= INT32_MIN ? 5 :
				9;
}

static size_t value_str_size(size_t n)
{
	return n + (n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5);
}

static size_t value_bin_size(size_t n)
{
	return n + (n < 256 ? 2 : n < 65536 ? 3 : 5);
}

static size_t value_ext_size(size_t n)
{
	if (n == 1 || n == 2 || n == 4 || n == 8 || n == 16)
		return n + 2;
	return n + (n < 256 ? 3 : n < 65536 ? 4 : 6);
}

static size_t value_container_size(size_t n)
{
	return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

static size_t value_error_payload_size(const struct mg_value *v)
{
	return value_container_size(VALUE_ERROR_FIELDS) +
	       value_int_size(v->err.kind) + value_int_size(v->err.errnum) +
	       value_str_size(strlen(v->err.context)) +
	       value_str_size(strlen(v->err.function)) +
	       value_str_size(strlen(v->err.message));
}

/* Add v's encoded size to *size; -E2BIG past MG_VALUE_MAX_DEPTH. */
static int value_encoded_size(const struct mg_value *v, unsigned depth,
			      size_t *size)
{
	uint32_t n, i;
	int r;

	switch (v->type) {
	case MG_NIL:
	case MG_BOOL:
		*size += 1;
		return 0;
	case MG_INT:
		*size += value_int_size(v->i);
		return 0;
	case MG_FLOAT:
		*size += 9;
		return 0;
	case MG_STR:
		*size += value_str_size(v->len);
		return 0;
	case MG_BYTES:
		*size += value_bin_size(v->len);
		return 0;
	case MG_SECRET:
		*size += value_ext_size(v->len);
		return 0;
	case MG_CONTEXT:
		*size += value_ext_size(4);
		return 0;
	case MG_SENDER:
		*size += value_ext_size(8);
		return 0;
	case MG_ERROR:
		*size += value_ext_size(value_error_payload_size(v));
		return 0;
	case MG_LIST:
	case MG_MAP:
		if (depth >= MG_VALUE_MAX_DEPTH)
			return -E2BIG;
		*size += value_container_size(v->len);
		n = v->type == MG_MAP ? 2 * v->len : v->len;
		for (i = 0; i < n; i++) {
			r = value_encoded_size(&v->items[i], depth + 1, size);
			if (r < 0)
				return r;
		}
		return 0;
	}
	return -EINVAL;
}

static void value_store_be32(uint8_t *p, uint32_t x)
{
	p[0] = x >> 24;
	p[1] = x >> 16;
	p[2] = x >> 8;
	p[3] = x;
}

/* Pack v; -ENOMEM when the buffer cannot grow. Depth was checked by sizing. */
static int value_pack(msgpack_packer *pk, const struct mg_value *v)
{
	uint8_t ref[8];
	uint32_t i;
	int r = 0;

	switch (v->type) {
	case MG_NIL:
		r = msgpack_pack_nil(pk);
		break;
	case MG_BOOL:
		r = v->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
		break;
	case MG_INT:
		r = msgpack_pack_int64(pk, v->i);
		break;
	case MG_FLOAT:
		r = msgpack_pack_double(pk, v->f);
		break;
	case MG_STR:
		r = msgpack_pack_str_with_body(pk, v->str, v->len);
		break;
	case MG_BYTES:
		r = msgpack_pack_bin_with_body(pk, v->bytes, v->len);
		break;
	case MG_SECRET:
		r = msgpack_pack_ext_with_body(pk, v->str, v->len,
					       VALUE_EXT_SECRET);
		break;
	case MG_CONTEXT:
		value_store_be32(ref, v->ref.context_id);
		r = msgpack_pack_ext_with_body(pk, ref, 4, VALUE_EXT_CONTEXT);
		break;
	case MG_SENDER:
		value_store_be32(ref, v->ref.context_id);
		value_store_be32(ref + 4, v->ref.handle);
		r = msgpack_pack_ext_with_body(pk, ref, 8, VALUE_EXT_SENDER);
		break;
	case MG_ERROR:
		/* The ext body is itself msgpack: pack it straight after the header. */
		r = msgpack_pack_ext(pk, value_error_payload_size(v),
				     VALUE_EXT_ERROR);
		r = r ?: msgpack_pack_array(pk, VALUE_ERROR_FIELDS);
		r = r ?: msgpack_pack_int64(pk, v->err.kind);
		r = r ?: msgpack_pack_int64(pk, v->err.errnum);
		r = r	  ?:
			    msgpack_pack_str_with_body(pk, v->err.context,
						       strlen(v->err.context));
		r = r	  ?:
			    msgpack_pack_str_with_body(pk, v->err.function,
						       strlen(v->err.function));
		r = r	  ?:
			    msgpack_pack_str_with_body(pk, v->err.message,
						       strlen(v->err.message));
		break;
	case MG_LIST:
		r = msgpack_pack_array(pk, v->len);
		for (i = 0; i < v->len && !r; i++)
			r = value_pack(pk, &v->items[i]);
		break;
	case MG_MAP:
		r = msgpack_pack_map(pk, v->len);
		for (i = 0; i < 2 * v->len && !r; i++)
			r = value_pack(pk, &v->items[i]);
		break;
	}
	return r ? -ENOMEM : 0;
}

int mg_value_encode(const struct mg_value *v, void **ret_buf, size_t *ret_len)
{
	msgpack_sbuffer sb = { 0 };
	msgpack_packer pk;
	size_t size = 0;
	int r;

	if (!v)
		return -ENOMEM;
	if (!ret_buf || !ret_len)
		return -EINVAL;
	r = value_encoded_size(v, 0, &size);
	if (r < 0)
		return r;
	sb.data = malloc(size);
	if (!sb.data)
		return -ENOMEM;
	sb.alloc = size;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	r = value_pack(&pk, v);
	if (r < 0) {
		msgpack_sbuffer_destroy(&sb);
		return r;
	}
	assert(sb.size == size);
	*ret_len = sb.size;
	*ret_buf = msgpack_sbuffer_release(&sb);
	return 0;
}

/* --- decode ----------------------------------------------------------- */

struct value_reader {
	const uint8_t *p;
	const uint8_t *end;
	/* Nodes promised by the container headers read so far (root not
	 * counted): at most VALUE_MAX_NODES - 1. */
	uint32_t nodes;
	/* Decoding: bytes allocated so far, and the most allowed. */
	size_t cost, budget;
};

/*
 * What a decode allocates, counted where it is cheap to: each node costs
 * its 48-byte struct mg_value (in its container's items array, or alone:
 * the root) plus, if it holds a str, bytes, secret or error, its blob: the
 * blob's bytes, which come from the input (all blobs together: at most
 * len) and up to 32 bytes of glibc chunk (8-byte header, 16-byte steps,
 * 32 at least). So a decode charges VALUE_NODE_COST a node and one chunk
 * header an items array, when it reads a container's header, against
 * the budget less len (value_budget): one check per container, none per
 * scalar.
 */
#define VALUE_NODE_COST (sizeof(struct mg_value) + 32)
#define VALUE_CHUNK_COST 32

/*
 * The decode budget of an input of len bytes (VALUE_DECODE_FACTOR * len +
 * slack), less what its blobs' bytes may take (len) and the root node.
 */
static size_t value_budget(size_t len, size_t slack)
{
	size_t b;

	if (len > (SIZE_MAX - slack) / VALUE_DECODE_FACTOR)
		return SIZE_MAX;
	b = (VALUE_DECODE_FACTOR - 1) * len + slack;
	return b > VALUE_NODE_COST ? b - VALUE_NODE_COST : 0;
}

/* Count c bytes of allocation against r's budget: 0, or -E2BIG. */
static inline int value_charge(struct value_reader *r, size_t c)
{
	if (c > r->budget - r->cost)
		return -E2BIG;
	r->cost += c;
	return 0;
}

/*
 * One msgpack item header, with its payload bytes for str/bin/ext. type is
 * the mg_type it decodes to; for MG_LIST and MG_MAP, len is the count.
 */
struct value_token {
	enum mg_type type;
	uint32_t len;
	const uint8_t *data;
	union {
		bool b;
		int64_t i;
		double f;
	};
};

static uint64_t value_load_be(const uint8_t *p, unsigned n)
{
	uint64_t x = 0;

	while (n--)
		x = x << 8 | *p++;
	return x;
}

/* Take n bytes from r; NULL when fewer remain. */
static const uint8_t *value_take(struct value_reader *r, size_t n)
{
	const uint8_t *p = r->p;

	if ((size_t)(r->end - r->p) < n)
		return NULL;
	r->p += n;
	return p;
}

/* Take an n-byte big-endian length or number into *ret. */
static int value_take_be(struct value_reader *r, unsigned n, uint64_t *ret)
{
	const uint8_t *p = value_take(r, n);

	if (!p)
		return -EBADMSG;
	*ret = value_load_be(p, n);
	return 0;
}

/* A length-prefixed payload (str, bin, ext after its type byte). */
static int value_take_data(struct value_reader *r, struct value_token *t,
			   uint64_t n)
{
	if (n > UINT32_MAX || !(t->data = value_take(r, n)))
		return -EBADMSG;
	t->len = (uint32_t)n;
	return 0;
}

/*
 * A container header: each item needs at least one byte, so a count larger
 * than the bytes left is a lie, refused before anything is allocated. A
 * count the bytes can back still may not take the nodes of this read past
 * VALUE_MAX_NODES (root included): -E2BIG, also before any allocation.
 */
static int value_take_count(struct value_reader *r, struct value_token *t,
			    uint64_t n)
{
	uint64_t need = t->type == MG_MAP ? 2 * n : n;

	if (need > (uint64_t)(r->end - r->p) || need > UINT32_MAX)
		return -EBADMSG;
	if (need > VALUE_MAX_NODES - 1 - r->nodes)
		return -E2BIG;
	r->nodes += (uint32_t)need;
	t->len = (uint32_t)n;
	return 0;
}

static int value_take_ext(struct value_reader *r, struct value_token *t,
			  uint64_t n)
{
	const uint8_t *code = value_take(r, 1);
	int err;

	if (!code)
		return -EBADMSG;
	err = value_take_data(r, t, n);
	if (err < 0)
		return err;
	switch ((int8_t)*code) {
	case VALUE_EXT_CONTEXT:
		t->type = MG_CONTEXT;
		return n == 4 ? 0 : -EBADMSG;
	case VALUE_EXT_SENDER:
		t->type = MG_SENDER;
		return n == 8 ? 0 : -EBADMSG;
	case VALUE_EXT_ERROR:
		t->type = MG_ERROR;
		return 0;
	case VALUE_EXT_SECRET:
		t->type = MG_SECRET;
		return 0;
	default:
		return -EBADMSG;
	}
}

/* Read the next item header (and its payload, for str/bin/ext) from r. */
static int value_next(struct value_reader *r, struct value_token *t)
{
	const uint8_t *p = value_take(r, 1);
	uint64_t x;
	uint32_t f32;
	uint8_t c;
	int err;

	if (!p)
		return -EBADMSG;
	c = *p;
	memset(t, 0, sizeof(*t));
	if (c <= 0x7f || c >= 0xe0) {
		t->type = MG_INT;
		t->i = (int8_t)c;
		return 0;
	}
	if (c >= 0xa0 && c <= 0xbf) {
		t->type = MG_STR;
		return value_take_data(r, t, c & 0x1f);
	}
	if (c >= 0x90 && c <= 0x9f) {
		t->type = MG_LIST;
		return value_take_count(r, t, c & 0x0f);
	}
	if (c >= 0x80 && c <= 0x8f) {
		t->type = MG_MAP;
		return value_take_count(r, t, c & 0x0f);
	}
	switch (c) {
	case 0xc0:
		t->type = MG_NIL;
		return 0;
	case 0xc2:
	case 0xc3:
		t->type = MG_BOOL;
		t->b = c == 0xc3;
		return 0;
	case 0xcc: /* uint 8/16/32/64 */
	case 0xcd:
	case 0xce:
	case 0xcf:
		t->type = MG_INT;
		err = value_take_be(r, 1u << (c - 0xcc), &x);
		if (err < 0 || x > INT64_MAX)
			return -EBADMSG;
		t->i = (int64_t)x;
		return 0;
	case 0xd0: /* int 8/16/32/64 */
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		unsigned bits = 8u << (c - 0xd0);

		t->type = MG_INT;
		err = value_take_be(r, bits / 8, &x);
		if (err < 0)
			return err;
		/* Sign-extend from the field width. */
		if (bits < 64 && (x >> (bits - 1)) & 1)
			x |= ~(uint64_t)0 << bits;
		t->i = (int64_t)x;
		return 0;
	}
	case 0xca:
		t->type = MG_FLOAT;
		err = value_take_be(r, 4, &x);
		if (err < 0)
			return err;
		f32 = (uint32_t)x;
		{
			float f;

			memcpy(&f, &f32, sizeof(f));
			t->f = f;
		}
		return 0;
	case 0xcb:
		t->type = MG_FLOAT;
		err = value_take_be(r, 8, &x);
		if (err < 0)
			return err;
		memcpy(&t->f, &x, sizeof(t->f));
		return 0;
	case 0xd9: /* str 8/16/32 */
	case 0xda:
	case 0xdb:
		t->type = MG_STR;
		err = value_take_be(r, 1u << (c - 0xd9), &x);
		return err < 0 ? err : value_take_data(r, t, x);
	case 0xc4: /* bin 8/16/32 */
	case 0xc5:
	case 0xc6:
		t->type = MG_BYTES;
		err = value_take_be(r, 1u << (c - 0xc4), &x);
		return err < 0 ? err : value_take_data(r, t, x);
	case 0xdc: /* array 16/32 */
	case 0xdd:
		t->type = MG_LIST;
		err = value_take_be(r, c == 0xdc ? 2 : 4, &x);
		return err < 0 ? err : value_take_count(r, t, x);
	case 0xde: /* map 16/32 */
	case 0xdf:
		t->type = MG_MAP;
		err = value_take_be(r, c == 0xde ? 2 : 4, &x);
		return err < 0 ? err : value_take_count(r, t, x);
	case 0xd4: /* fixext 1/2/4/8/16 */
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		return value_take_ext(r, t, 1u << (c - 0xd4));
	case 0xc7: /* ext 8/16/32 */
	case 0xc8:
	case 0xc9:
		err = value_take_be(r, 1u << (c - 0xc7), &x);
		return err < 0 ? err : value_take_ext(r, t, x);
	default: /* 0xc1: never used */
		return -EBADMSG;
	}
}

/* An int token from r within [min, max]. */
static int value_next_int(struct value_reader *r, int64_t min, int64_t max,
			  int64_t *ret)
{
	struct value_token t;
	int err = value_next(r, &t);

	if (err < 0)
		return err;
	if (t.type != MG_INT || t.i < min || t.i > max)
		return -EBADMSG;
	*ret = t.i;
	return 0;
}

/* A str token from r usable as a C string (no NUL inside). */
static int value_next_cstr(struct value_reader *r, struct value_token *t)
{
	int err = value_next(r, t);

	if (err < 0)
		return err;
	if (t->type != MG_STR || memchr(t->data, '\0', t->len))
		return -EBADMSG;
	return 0;
}

/* The error ext payload: exactly [kind, errnum, context, function, message]. */
static int value_read_error(const struct value_token *ext,
			    struct mg_value *slot, struct mg_value **ret)
{
	struct value_reader r = { .p = ext->data, .end = ext->data + ext->len };
	struct value_token t, s[3];
	int64_t kind, errnum;
	int err, i;

	err = value_next(&r, &t);
	if (err < 0)
		return err;
	if (t.type != MG_LIST || t.len != VALUE_ERROR_FIELDS)
		return -EBADMSG;
	err = value_next_int(&r, INT32_MIN, INT32_MAX, &kind);
	if (err < 0)
		return err;
	err = value_next_int(&r, INT_MIN, INT_MAX, &errnum);
	if (err < 0)
		return err;
	for (i = 0; i < 3; i++) {
		err = value_next_cstr(&r, &s[i]);
		if (err < 0)
			return err;
	}
	if (r.p != r.end)
		return -EBADMSG;
	*ret = value_error_node(slot, kind, (int)errnum,
				(const char *)s[0].data, s[0].len,
				(const char *)s[1].data, s[1].len,
				(const char *)s[2].data, s[2].len);
	return *ret ? 0 : -ENOMEM;
}

static int value_read(struct value_reader *r, unsigned depth,
		      struct mg_value *slot, struct mg_value **ret);

static int value_read_items(struct value_reader *r, unsigned depth,
			    const struct value_token *t, struct mg_value *slot,
			    struct mg_value **ret)
{
	uint32_t n = t->type == MG_MAP ? 2 * t->len : t->len;
	struct mg_value *v, *item;
	uint32_t i;
	int err;

	if (depth >= MG_VALUE_MAX_DEPTH)
		return -E2BIG;
	/* n nodes, counted before the array is allocated. */
	if (n && value_charge(r, (size_t)n * VALUE_NODE_COST + VALUE_CHUNK_COST) < 0)
		return -E2BIG;
	v = value_node(slot, t->type);
	if (!v)
		return -ENOMEM;
	if (n && !(v->items = malloc(n * sizeof(*v->items)))) {
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < n; i++) {
		err = value_read(r, depth + 1, &v->items[i], &item);
		if (err < 0) {
			while (i--)
				value_clear(&v->items[i]);
			free(v->items);
			goto fail;
		}
	}
	v->len = t->len;
	v->cap_ = n;
	*ret = v;
	return 0;
fail:
	if (!slot)
		free(v);
	return err;
}

/*
 * Read one item into slot, or into a new standalone node when slot is NULL
 * (a str, bytes or secret then shares the node's allocation). *ret is the
 * node filled.
 */
static int value_read(struct value_reader *r, unsigned depth,
		      struct mg_value *slot, struct mg_value **ret)
{
	struct value_token t;
	struct mg_value *v;
	char *blob;
	int err;

	err = value_next(r, &t);
	if (err < 0)
		return err;
	switch (t.type) {
	case MG_LIST:
	case MG_MAP:
		return value_read_items(r, depth, &t, slot, ret);
	case MG_ERROR:
		return value_read_error(&t, slot, ret);
	case MG_STR:
	case MG_BYTES:
	case MG_SECRET:
		v = value_blob_node(slot, t.type, t.len, &blob);
		if (!v)
			return -ENOMEM;
		if (t.len)
			memcpy(blob, t.data, t.len);
		break;
	default:
		v = value_node(slot, t.type);
		if (!v)
			return -ENOMEM;
		if (t.type == MG_BOOL)
			v->b = t.b;
		else if (t.type == MG_INT)
			v->i = t.i;
		else if (t.type == MG_FLOAT)
			v->f = t.f;
		else if (t.type == MG_CONTEXT || t.type == MG_SENDER)
			v->ref.context_id = (uint32_t)value_load_be(t.data, 4);
		if (t.type == MG_SENDER)
			v->ref.handle = (uint32_t)value_load_be(t.data + 4, 4);
		break;
	}
	*ret = v;
	return 0;
}

int value_decode_limited(const void *buf, size_t len, size_t slack,
			 struct mg_value **ret_value)
{
	struct value_reader r = { 0 };
	struct mg_value *v;
	int err;

	if (!buf || !ret_value)
		return -EINVAL;
	r.p = buf;
	r.end = r.p + len;
	r.budget = value_budget(len, slack);
	err = value_read(&r, 0, NULL, &v);
	if (err < 0)
		return err;
	if (r.p != r.end) {
		mg_value_free(v);
		return -EBADMSG;
	}
	*ret_value = v;
	return 0;
}

int mg_value_decode(const void *buf, size_t len, struct mg_value **ret_value)
{
	return value_decode_limited(buf, len, VALUE_DECODE_SLACK, ret_value);
}

/*
 * value_check — is buf exactly one well-formed value within the limits?
 * The same checks as mg_value_decode without building anything, so a
 * stream can refuse an undecodable payload on receipt at the cost of one
 * pass over the headers (str/bin/ext bodies are skipped, not copied).
 * value_next() counts the nodes against VALUE_MAX_NODES here as it does
 * for the decoder, header by header in the same order.
 */
int value_check(const void *buf, size_t len)
{
	struct value_reader r = { 0 };
	uint64_t left[MG_VALUE_MAX_DEPTH + 1];
	struct value_token t;
	struct mg_value *e;
	int top = 0, err;

	if (!buf && len)
		return -EINVAL;
	r.p = buf;
	r.end = r.p + len;
	left[0] = 1;
	while (top >= 0) {
		if (left[top] == 0) {
			top--;
			continue;
		}
		left[top]--;
		err = value_next(&r, &t);
		if (err < 0)
			return err;
		if (t.type == MG_ERROR) {
			err = value_read_error(&t, NULL, &e);
			if (err < 0)
				return err;
			mg_value_free(e);
		} else if (t.type == MG_LIST || t.type == MG_MAP) {
			/* Empty ones count too, as in value_read_items(). */
			if (top + 1 > MG_VALUE_MAX_DEPTH)
				return -E2BIG;
			if (t.len)
				left[++top] = t.type == MG_MAP ?
						      2 * (uint64_t)t.len :
						      t.len;
		}
	}
	return r.p == r.end ? 0 : -EBADMSG;
}

/*
 * value_decode_owned — decode buf (malloc'd, len bytes), taking it. When
 * the whole payload is one str or bytes (a sender streaming data, a file
 * read), the bytes are moved to the front of buf in place and the value
 * keeps buf as its block: no second allocation of the payload's size and
 * no page faults for one. Otherwise as mg_value_decode, then buf is freed.
 */
int value_decode_owned(void *buf, size_t len, struct mg_value **ret_value)
{
	struct value_reader r = { 0 };
	struct value_token t;
	struct mg_value *v;
	int err;

	if (!buf || !ret_value) {
		free(buf);	/* taken, whatever happens */
		return -EINVAL;
	}
	r.p = buf;
	r.end = r.p + len;
	if (len > 4096 && value_next(&r, &t) == 0 && r.p == r.end &&
	    (t.type == MG_BYTES || t.type == MG_STR)) {
		v = value_node(NULL, t.type);
		if (!v) {
			free(buf);
			return -ENOMEM;
		}
		/* The item header is at least one byte: room for the NUL. */
		memmove(buf, t.data, t.len);
		((char *)buf)[t.len] = '\0';
		v->len = t.len;
		v->cap_ = VALUE_BLOB_OWN;
		value_set_blob(v, buf);
		*ret_value = v;
		return 0;
	}
	err = mg_value_decode(buf, len, ret_value);
	free(buf);
	return err;
}

int value_split_check(const uint8_t *prefix, size_t prefix_len, size_t body_len)
{
	if (prefix_len != 5 || (prefix[0] != 0xc6 && prefix[0] != 0xdb) ||
	    value_load_be(prefix + 1, 4) != body_len)
		return -EBADMSG;
	return 0;
}

int value_take_blob(const uint8_t *prefix, size_t prefix_len, void *body,
		    size_t body_len, struct mg_value **ret_value)
{
	struct mg_value *v;

	if (value_split_check(prefix, prefix_len, body_len) < 0) {
		free(body);
		return -EBADMSG;
	}
	v = value_node(NULL, prefix[0] == 0xc6 ? MG_BYTES : MG_STR);
	if (!v) {
		free(body);
		return -ENOMEM;
	}
	((char *)body)[body_len] = '\0'; /* the buffer has a spare byte */
	v->len = (uint32_t)body_len;
	v->cap_ = VALUE_BLOB_OWN;
	value_set_blob(v, body);
	*ret_value = v;
	return 0;
}
