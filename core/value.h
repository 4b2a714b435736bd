/* SPDX-License-Identifier: MIT */
/*
 * core/value.h — internal value helpers shared inside core/.
 *
 * Two parts: the entry points of value_msgpack.c that streams and messages
 * use on received payloads, and the few storage helpers of value.c that
 * value_msgpack.c builds decoded values with (value.c's opening comment
 * gives the storage rules they apply). Nothing here is exported.
 */
#ifndef CORE_VALUE_H
#define CORE_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include <mitogen/value.h>

/*
 * The most nodes one decode (or value_check) may build, root included;
 * every item of a list and every key and value of a map is a node. Past it
 * both fail with -E2BIG, at the container header that would cross it and
 * before allocating for it. Byte checks alone let a payload of nils cost
 * ~48x its size (a struct mg_value per input byte: 6 GiB for a 128 MiB
 * message); with the cap one decode holds at most 16 Mi nodes (768 MiB on
 * 64-bit), plus the blobs of its str/bytes/secret/error nodes, which the
 * input's bytes bound (each a malloc of its length + 1 in a container).
 */
#define VALUE_MAX_NODES (16u << 20)

/*
 * What one decode of len bytes may allocate: VALUE_DECODE_FACTOR * len +
 * VALUE_DECODE_SLACK bytes, counted as glibc's malloc spends them at
 * worst (a node: its 48-byte struct mg_value and 32 bytes of a blob's
 * chunk header; blobs' bytes: at most len; an items array: one more
 * header), when a container's header is read. Past it the decode fails
 * with -E2BIG before allocating the array that would cross it. Without
 * it N bytes of nils become N nodes, 48N bytes (16 MiB of nils: 768 MiB).
 * Typical payloads cost 1x (one large str/bytes) to ~16x (maps of short
 * keys and small ints: a stat result is ~14x); only trees of tiny scalars
 * cost more, and those still decode up to the slack (a list of about a
 * million small ints). docs/limits.md.
 */
#define VALUE_DECODE_FACTOR 16
#define VALUE_DECODE_SLACK ((size_t)64 << 20)

/*
 * The JSON text of v (as mg_value_to_json writes it: secrets as
 * "<secret>") handed to sink in pieces of at most 4 KiB, with no
 * allocation whatever its size (the audit digest of a call's arguments).
 * Returns the text's length.
 */
size_t value_json_stream(const struct mg_value *v, void (*sink)(void *arg, const char *s, size_t n),
			 void *arg);

/* --- payloads (value_msgpack.c) --------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left: ASCII is 1),
 * or 0: no overlong forms, no surrogates, nothing past U+10FFFF. */
size_t value_utf8_len(const uint8_t *s, size_t n);

/*
 * 0 when buf holds exactly one well-formed value within MG_VALUE_MAX_DEPTH
 * and VALUE_MAX_NODES, else the error mg_value_decode would give
 * (-EBADMSG/-E2BIG).
 */
int value_check(const void *buf, size_t len);

/*
 * mg_value_decode with another slack than VALUE_DECODE_SLACK (the fuzz
 * target checks the factor alone with 0). Same errors.
 */
int value_decode_limited(const void *buf, size_t len, size_t slack,
			 struct mg_value **ret_value);

/* Decode buf, taking it (see value_msgpack.c). Same errors as mg_value_decode. */
int value_decode_owned(void *buf, size_t len, struct mg_value **ret_value);

/*
 * The split form of a large str/bytes payload (core/message.h): prefix is
 * its 5-byte msgpack str32/bin32 header, body its bytes. Check that the
 * header declares exactly body_len bytes: 0 or -EBADMSG.
 */
int value_split_check(const uint8_t *prefix, size_t prefix_len,
		      size_t body_len);
/* Make a value of the split form, taking body (malloc'd, body_len + 1
 * bytes); body is freed on failure. */
int value_take_blob(const uint8_t *prefix, size_t prefix_len, void *body,
		    size_t body_len, struct mg_value **ret_value);

/* --- storage (value.c) ------------------------------------------------ */

/* Where the blob of a str/bytes/secret/error lives, kept in cap_. */
enum {
	VALUE_BLOB_SHELL = 0, /* after the node, in the node's allocation */
	VALUE_BLOB_OWN = 1, /* its own malloc'd block */
};

/*
 * A zeroed node of the given type: slot itself (an items element) or, with
 * slot NULL, a new standalone node. NULL on ENOMEM.
 */
struct mg_value *value_node(struct mg_value *slot, enum mg_type type);
/*
 * A node of a blob type with room for n bytes plus a NUL (written), the
 * blob returned in *ret_blob: standalone with its blob in the same
 * allocation when slot is NULL, else slot with a VALUE_BLOB_OWN blob.
 * NULL with errno set (E2BIG, ENOMEM) on failure.
 */
struct mg_value *value_blob_node(struct mg_value *slot, enum mg_type type,
				 size_t n, char **ret_blob);
/* Point v (of a blob type) at blob; cap_ is the caller's to set. */
void value_set_blob(struct mg_value *v, char *blob);
/*
 * An error node (slot, or standalone with slot NULL) from the three strings
 * c, f, m of the given lengths (no NUL inside). An unknown kind becomes
 * MG_ERR_NONE. NULL on failure.
 */
struct mg_value *value_error_node(struct mg_value *slot, int64_t kind,
				  int errnum, const char *c, size_t clen,
				  const char *f, size_t flen, const char *m,
				  size_t mlen);
/*
 * Free everything v owns but not v itself: for an items element, or a
 * standalone node before free(v) (mg_value_free does both).
 */
void value_clear(struct mg_value *v);

#endif
