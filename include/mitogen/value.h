/* SPDX-License-Identifier: MIT */
/*
 * mg_value: the values that travel between contexts.
 *
 * A value is a tree: nil, bool, int (int64), float (double), str (UTF-8,
 * NUL-terminated), bytes, list, map, plus four extension types: a reference
 * to a context, a reference to a sender (context id + handle), an error, and
 * a secret (a string that is never written to a log: every formatter in the
 * library prints it as "<secret>").
 *
 * On the wire values are msgpack (msgpack-c); decoding enforces a depth
 * limit (MG_VALUE_MAX_DEPTH) and never trusts a length it has not seen the
 * bytes for.
 *
 * Ownership: constructors return a new value the caller owns and frees with
 * mg_value_free(). Container constructors (mg_list_of, MG_LIST, mg_map_set,
 * mg_list_append) take ownership of the values passed in, even on failure,
 * so nested expressions never leak:
 *
 *	struct mg_value *args = MG_LIST(mg_int(2), mg_str("x"));
 *
 * Constructors return NULL only when memory runs out; every function that
 * takes a value treats NULL as "out of memory" and fails with -ENOMEM, so
 * callers may check once, at the end.
 *
 * The struct is a read-only view: read its fields directly, build and change
 * values only through the functions below. Values are not thread-safe;
 * hand a value to one thread at a time.
 */
#ifndef MITOGEN_VALUE_H
#define MITOGEN_VALUE_H

#include <mitogen/common.h>
#include <mitogen/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MG_VALUE_MAX_DEPTH 64

enum mg_type {
	MG_NIL = 0,
	MG_BOOL,
	MG_INT,
	MG_FLOAT,
	MG_STR,
	MG_BYTES,
	MG_LIST,
	MG_MAP,
	MG_CONTEXT,	/* ref.context_id */
	MG_SENDER,	/* ref.context_id, ref.handle */
	MG_ERROR,	/* err */
	MG_SECRET,	/* str, len: never logged */
};

struct mg_value {
	enum mg_type type;
	/* MG_STR/MG_SECRET/MG_BYTES: byte length; MG_LIST: items; MG_MAP: pairs */
	uint32_t len;
	union {
		bool b;
		int64_t i;
		double f;
		/* MG_STR, MG_SECRET: NUL-terminated (NUL not counted in len) */
		const char *str;
		const uint8_t *bytes;
		/* MG_LIST: items[0..len); MG_MAP: items[2k] key, items[2k+1] value */
		struct mg_value *items;
		struct {
			uint32_t context_id;
			uint32_t handle;
		} ref;
		struct {
			enum mg_error_kind kind;
			int errnum;
			const char *context;	/* never NULL once built */
			const char *function;	/* never NULL once built */
			const char *message;	/* never NULL once built */
		} err;
	};
	/* private: capacity of items (list, map) */
	uint32_t cap_;
};

/* --- scalars ---------------------------------------------------------- */
MG_API struct mg_value *mg_nil(void);
MG_API struct mg_value *mg_bool(bool b);
MG_API struct mg_value *mg_int(int64_t i);
MG_API struct mg_value *mg_float(double f);
/* Copies the NUL-terminated s. s == NULL gives nil. */
MG_API struct mg_value *mg_str(const char *s);
/* Copies n bytes of s (need not be NUL-terminated; a NUL is appended). */
MG_API struct mg_value *mg_strn(const char *s, size_t n);
/* printf-style string. */
MG_API struct mg_value *mg_strf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* Copies n bytes. */
MG_API struct mg_value *mg_bytes(const void *p, size_t n);
/* Takes ownership of p, which must come from malloc(); no copy. On failure
 * p is freed. */
MG_API struct mg_value *mg_bytes_take(void *p, size_t n);
/* A secret string: sent like a str, printed as "<secret>" everywhere. */
MG_API struct mg_value *mg_secret(const char *s);
MG_API struct mg_value *mg_context_value(uint32_t context_id);
MG_API struct mg_value *mg_sender_value(uint32_t context_id, uint32_t handle);
/* An error value (what a failed call returns across the wire). */
MG_API struct mg_value *mg_error_value(enum mg_error_kind kind, int errnum,
				       const char *context, const char *function,
				       const char *message);
/* Copy the error value v into err. Returns 0 or -EINVAL if v is not MG_ERROR. */
MG_API int mg_value_to_error(const struct mg_value *v, struct mg_error *err);

/* --- containers ------------------------------------------------------- */
MG_API struct mg_value *mg_list(void);
/* A list of the n values in items, taking each (NULL items make it fail). */
MG_API struct mg_value *mg_list_of(struct mg_value *const *items, size_t n);
#define MG_LIST(...)							\
	mg_list_of((struct mg_value *const[]){ __VA_ARGS__ },		\
		   sizeof((struct mg_value *const[]){ __VA_ARGS__ }) /	\
			   sizeof(struct mg_value *))
/* Append item to list, taking it. Returns 0, -EINVAL or -ENOMEM. */
MG_API int mg_list_append(struct mg_value *list, struct mg_value *item);
MG_API struct mg_value *mg_map(void);
/* Set key (a string, copied) to value (taken), replacing an existing key.
 * Returns 0, -EINVAL or -ENOMEM. */
MG_API int mg_map_set(struct mg_value *map, const char *key, struct mg_value *value);
/* Borrowed value for string key, or NULL. */
MG_API const struct mg_value *mg_map_get(const struct mg_value *map, const char *key);
/* Borrowed item i of a list, or NULL when out of range / not a list. */
MG_API const struct mg_value *mg_list_get(const struct mg_value *list, size_t i);

/* --- build and read with a format ------------------------------------ */
/*
 * Format letters (shared by mg_value_build and mg_value_unpack):
 *   n  nil                      (build: no argument)
 *   b  bool                     (build: int; unpack: bool *)
 *   i  int                      (build: int; unpack: int *, range-checked)
 *   l  int64_t                  (build: int64_t; unpack: int64_t *)
 *   d  double                   (build: double; unpack: double *, ints accepted)
 *   s  string                   (build: const char *, NULL gives nil;
 *                                unpack: const char **, borrowed; nil gives NULL)
 *   S  secret                   (build: const char *; unpack like s)
 *   y  bytes                    (build: const void *, size_t;
 *                                unpack: const void **, size_t *, borrowed; str accepted)
 *   v  any value                (build: struct mg_value *, taken;
 *                                unpack: const struct mg_value **, borrowed)
 *   |  (unpack only) the rest are optional: missing ones are left untouched
 */
/* Build a list from fmt. Returns NULL (errno EINVAL/ENOMEM) on failure; any
 * 'v' values passed are taken even then. */
MG_API struct mg_value *mg_value_build(const char *fmt, ...);
/* Read list items by fmt. Returns 0, or -EINVAL when list is not a list,
 * has the wrong number of items or an item has the wrong type; err (may be
 * NULL) then says which argument. */
MG_API int mg_value_unpack(const struct mg_value *list, struct mg_error *err,
			   const char *fmt, ...);

/* --- general ---------------------------------------------------------- */
MG_API void mg_value_free(struct mg_value *v);
/* Deep copy; NULL on ENOMEM. */
MG_API struct mg_value *mg_value_copy(const struct mg_value *v);
MG_API bool mg_value_equal(const struct mg_value *a, const struct mg_value *b);
/* "nil", "bool", ... */
MG_API const char *mg_type_name(enum mg_type type);

/* Encode v as msgpack into a new malloc'd buffer. Returns 0 or -errno. */
MG_API int mg_value_encode(const struct mg_value *v, void **ret_buf, size_t *ret_len);
/*
 * Decode exactly one msgpack value filling buf[0..len). Fails with -EBADMSG
 * on malformed, truncated or trailing data, -E2BIG past MG_VALUE_MAX_DEPTH,
 * past 16 Mi nodes, or when the value would take more memory than 16 times
 * len plus 64 MiB (refused before allocating it; a node takes 48 bytes).
 * The value owns its memory (it does not point into buf).
 */
MG_API int mg_value_decode(const void *buf, size_t len, struct mg_value **ret_value);

/*
 * Write v as JSON to buf (always NUL-terminated when size > 0). Bytes that
 * are valid UTF-8 print as strings, others as {"$bytes": "<base64>"};
 * secrets print as "<secret>"; context/sender/error refs as small objects.
 * Returns the length the full text needs (like snprintf), or -errno.
 */
MG_API int mg_value_to_json(const struct mg_value *v, char *buf, size_t size);
/* Same, into a new malloc'd string the caller frees; NULL on ENOMEM. */
MG_API char *mg_value_to_json_alloc(const struct mg_value *v);

#ifdef __cplusplus
}
#endif
#endif
