// SPDX-License-Identifier: MIT
/*
 * core/value.c: struct mg_value itself — constructors, containers, getters,
 * free, copy, equality and type names.
 *
 * Owns the storage rules of a value (see "Storage" below) and the helpers
 * that apply them, which core/value.h shares with value_msgpack.c. Must not
 * know the wire form: msgpack encode/decode and the checks on received
 * payloads live in value_msgpack.c, the format letters in value_format.c,
 * JSON in value_json.c; nothing here knows about messages or the framing
 * around a payload.
 *
 * Storage. A list or map holds its children by value in one `items` array,
 * so a node costs no allocation of its own once it sits in a container. A
 * string, bytes, secret or error keeps its bytes in one "blob" (for an error,
 * the three strings back to back). cap_ says where the blob lives:
 *
 *   VALUE_BLOB_SHELL  the blob follows a struct mg_value header in a single
 *                     allocation (how standalone values are built: one
 *                     malloc per value). When such a value is moved into a
 *                     container its struct is copied into the array and the
 *                     old allocation stays alive as the blob's home, so the
 *                     bytes are neither copied nor allocated again.
 *   VALUE_BLOB_OWN    the blob is its own malloc'd block (decoded or copied
 *                     children of a container, mg_bytes_take).
 *
 * For lists and maps cap_ is the capacity of items, in nodes.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/value.h>
#include "core/value.h"

/* --- storage ---------------------------------------------------------- */

static bool value_has_blob(enum mg_type type)
{
	return type == MG_STR || type == MG_SECRET || type == MG_BYTES ||
	       type == MG_ERROR;
}

static void *value_blob(const struct mg_value *v)
{
	switch (v->type) {
	case MG_STR:
	case MG_SECRET:
		return (void *)v->str;
	case MG_BYTES:
		return (void *)v->bytes;
	case MG_ERROR:
		return (void *)v->err.context;
	default:
		return NULL;
	}
}

/* The allocation that holds v's blob, or NULL when v has none. */
static void *value_blob_block(const struct mg_value *v)
{
	char *blob = value_blob(v);

	if (!blob)
		return NULL;
	if (v->cap_ == VALUE_BLOB_SHELL)
		return blob - sizeof(struct mg_value);
	return blob;
}

void value_set_blob(struct mg_value *v, char *blob)
{
	switch (v->type) {
	case MG_STR:
	case MG_SECRET:
		v->str = blob;
		break;
	case MG_BYTES:
		v->bytes = (const uint8_t *)blob;
		break;
	case MG_ERROR:
		v->err.context = blob;
		break;
	default:
		assert(0);
	}
}

/* A secret's bytes (a password on its way to a prompt) do not outlive it
 * in freed memory. Out of line: value_clear stays as cheap as it was. */
static __attribute__((cold, noinline)) void value_forget_secret(struct mg_value *v)
{
	if (v->str)
		explicit_bzero((char *)v->str, v->len);
}

/*
 * Free everything v owns except the allocation v itself lives in: the
 * contents of an items element, or of a standalone node before free(v).
 */
void value_clear(struct mg_value *v)
{
	uint32_t n, i;
	void *block;

	switch (v->type) {
	case MG_LIST:
	case MG_MAP:
		n = v->type == MG_MAP ? 2 * v->len : v->len;
		for (i = 0; i < n; i++)
			value_clear(&v->items[i]);
		free(v->items);
		break;
	default:
		if (__builtin_expect(v->type == MG_SECRET, 0))
			value_forget_secret(v);
		block = value_blob_block(v);
		if (block != v)
			free(block);
		break;
	}
}

/*
 * A zeroed node of the given type: slot itself (an items element) or, with
 * slot NULL, a new standalone node. NULL on ENOMEM.
 */
struct mg_value *value_node(struct mg_value *slot, enum mg_type type)
{
	struct mg_value *v = slot;

	if (v)
		memset(v, 0, sizeof(*v));
	else if (!(v = calloc(1, sizeof(*v))))
		return NULL;
	v->type = type;
	return v;
}

/*
 * A node of a blob type with room for n bytes plus a NUL (written). With
 * slot NULL the node is standalone and the blob shares its allocation;
 * otherwise slot is filled and the blob gets its own block. The blob is
 * returned in *ret_blob. NULL with errno set on failure.
 */
struct mg_value *value_blob_node(struct mg_value *slot, enum mg_type type,
				 size_t n, char **ret_blob)
{
	struct mg_value *v;
	char *blob;

	assert(value_has_blob(type));
	if (n > UINT32_MAX || n > SIZE_MAX - sizeof(*v) - 1) {
		errno = E2BIG;
		return NULL;
	}
	if (slot) {
		if (!(blob = malloc(n + 1)))
			return NULL;
		v = value_node(slot, type);
		v->cap_ = VALUE_BLOB_OWN;
	} else {
		if (!(v = malloc(sizeof(*v) + n + 1)))
			return NULL;
		memset(v, 0, sizeof(*v));
		v->type = type;
		blob = (char *)(v + 1);
		v->cap_ = VALUE_BLOB_SHELL;
	}
	blob[n] = '\0';
	if (type != MG_ERROR)
		v->len = (uint32_t)n;
	value_set_blob(v, blob);
	*ret_blob = blob;
	return v;
}

/*
 * Move the standalone value item into slot: copy its struct and free its
 * shell, unless the shell is where its blob lives (then it stays, owned by
 * slot from now on).
 */
static void value_move(struct mg_value *slot, struct mg_value *item)
{
	*slot = *item;
	if (value_blob_block(item) != item)
		free(item);
}

/* Room for extra more nodes in the items of a list or map. */
static int value_reserve(struct mg_value *v, size_t extra)
{
	size_t used = v->type == MG_MAP ? 2 * (size_t)v->len : v->len;
	size_t cap;
	struct mg_value *items;

	if (used + extra <= v->cap_)
		return 0;
	if (used + extra > UINT32_MAX)
		return -E2BIG;
	cap = v->cap_ ? 2 * (size_t)v->cap_ : 4;
	if (cap < used + extra)
		cap = used + extra;
	if (cap > UINT32_MAX)
		cap = UINT32_MAX;
	items = realloc(v->items, cap * sizeof(*items));
	if (!items)
		return -ENOMEM;
	v->items = items;
	v->cap_ = (uint32_t)cap;
	return 0;
}

/* --- scalars ---------------------------------------------------------- */

struct mg_value *mg_nil(void)
{
	return value_node(NULL, MG_NIL);
}

struct mg_value *mg_bool(bool b)
{
	struct mg_value *v = value_node(NULL, MG_BOOL);

	if (v)
		v->b = b;
	return v;
}

struct mg_value *mg_int(int64_t i)
{
	struct mg_value *v = value_node(NULL, MG_INT);

	if (v)
		v->i = i;
	return v;
}

struct mg_value *mg_float(double f)
{
	struct mg_value *v = value_node(NULL, MG_FLOAT);

	if (v)
		v->f = f;
	return v;
}

static struct mg_value *value_new_blob_copy(enum mg_type type, const void *p,
					    size_t n)
{
	struct mg_value *v;
	char *blob;

	v = value_blob_node(NULL, type, n, &blob);
	if (v && n)
		memcpy(blob, p, n);
	return v;
}

struct mg_value *mg_str(const char *s)
{
	if (!s)
		return mg_nil();
	return value_new_blob_copy(MG_STR, s, strlen(s));
}

struct mg_value *mg_strn(const char *s, size_t n)
{
	if (!s)
		return mg_nil();
	return value_new_blob_copy(MG_STR, s, n);
}

struct mg_value *mg_strf(const char *fmt, ...)
{
	struct mg_value *v;
	va_list ap;
	char *blob;
	int n;

	if (!fmt)
		return mg_nil();
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		errno = EINVAL;
		return NULL;
	}
	v = value_blob_node(NULL, MG_STR, (size_t)n, &blob);
	if (!v)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(blob, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return v;
}

struct mg_value *mg_bytes(const void *p, size_t n)
{
	if (!p && n) {
		errno = EINVAL;
		return NULL;
	}
	return value_new_blob_copy(MG_BYTES, p, n);
}

struct mg_value *mg_bytes_take(void *p, size_t n)
{
	struct mg_value *v;

	if (!p) {
		if (n) {
			errno = EINVAL;
			return NULL;
		}
		return mg_bytes(NULL, 0);
	}
	if (n > UINT32_MAX) {
		free(p);
		errno = E2BIG;
		return NULL;
	}
	v = value_node(NULL, MG_BYTES);
	if (!v) {
		free(p);
		return NULL;
	}
	v->bytes = p;
	v->len = (uint32_t)n;
	v->cap_ = VALUE_BLOB_OWN;
	return v;
}

struct mg_value *mg_secret(const char *s)
{
	if (!s)
		return mg_nil();
	return value_new_blob_copy(MG_SECRET, s, strlen(s));
}

struct mg_value *mg_context_value(uint32_t context_id)
{
	struct mg_value *v = value_node(NULL, MG_CONTEXT);

	if (v)
		v->ref.context_id = context_id;
	return v;
}

struct mg_value *mg_sender_value(uint32_t context_id, uint32_t handle)
{
	struct mg_value *v = value_node(NULL, MG_SENDER);

	if (v) {
		v->ref.context_id = context_id;
		v->ref.handle = handle;
	}
	return v;
}

/* A kind this library knows, or MG_ERR_NONE (a newer peer's new kind). */
static enum mg_error_kind value_error_kind(int64_t kind)
{
	if (kind < MG_ERR_NONE || kind > MG_ERR_HOSTKEY)
		return MG_ERR_NONE;
	return (enum mg_error_kind)kind;
}

/* Fill an error node (slot, or standalone with slot NULL). */
struct mg_value *value_error_node(struct mg_value *slot, int64_t kind,
				  int errnum, const char *c, size_t clen,
				  const char *f, size_t flen, const char *m,
				  size_t mlen)
{
	struct mg_value *v;
	char *blob;

	v = value_blob_node(slot, MG_ERROR, clen + flen + mlen + 2, &blob);
	if (!v)
		return NULL;
	v->err.kind = value_error_kind(kind);
	v->err.errnum = errnum;
	memcpy(blob, c, clen);
	blob[clen] = '\0';
	v->err.function = blob + clen + 1;
	memcpy(blob + clen + 1, f, flen);
	blob[clen + 1 + flen] = '\0';
	v->err.message = blob + clen + flen + 2;
	memcpy(blob + clen + flen + 2, m, mlen);
	return v;
}

struct mg_value *mg_error_value(enum mg_error_kind kind, int errnum,
				const char *context, const char *function,
				const char *message)
{
	context = context ? context : "";
	function = function ? function : "";
	message = message ? message : "";
	return value_error_node(NULL, kind, errnum, context, strlen(context),
				function, strlen(function), message,
				strlen(message));
}

int mg_value_to_error(const struct mg_value *v, struct mg_error *err)
{
	if (!v)
		return -ENOMEM;
	if (!err || v->type != MG_ERROR)
		return -EINVAL;
	mg_error_clear(err);
	err->kind = v->err.kind;
	err->errnum = v->err.errnum;
	snprintf(err->context, sizeof(err->context), "%s", v->err.context);
	snprintf(err->function, sizeof(err->function), "%s", v->err.function);
	snprintf(err->message, sizeof(err->message), "%s", v->err.message);
	return 0;
}

/* --- containers ------------------------------------------------------- */

struct mg_value *mg_list(void)
{
	return value_node(NULL, MG_LIST);
}

struct mg_value *mg_list_of(struct mg_value *const *items, size_t n)
{
	struct mg_value *list = NULL;
	size_t i;
	int err = 0;

	if (!items && n) {
		errno = EINVAL;
		return NULL;
	}
	for (i = 0; i < n && !err; i++)
		if (!items[i])
			err = ENOMEM;
	if (!err && n > UINT32_MAX)
		err = E2BIG;
	if (!err && !(list = mg_list()))
		err = ENOMEM;
	if (!err && n && !(list->items = malloc(n * sizeof(*list->items))))
		err = ENOMEM;
	if (err) {
		for (i = 0; i < n; i++)
			mg_value_free(items[i]);
		mg_value_free(list);
		errno = err;
		return NULL;
	}
	for (i = 0; i < n; i++)
		value_move(&list->items[i], items[i]);
	list->len = (uint32_t)n;
	list->cap_ = (uint32_t)n;
	return list;
}

int mg_list_append(struct mg_value *list, struct mg_value *item)
{
	int r;

	/* Taking a list into itself would free the list: refuse, keep both. */
	if (list && list == item)
		return -EINVAL;
	if (!list || !item)
		r = -ENOMEM;
	else if (list->type != MG_LIST)
		r = -EINVAL;
	else
		r = value_reserve(list, 1);
	if (r < 0) {
		mg_value_free(item);
		return r;
	}
	value_move(&list->items[list->len++], item);
	return 0;
}

struct mg_value *mg_map(void)
{
	return value_node(NULL, MG_MAP);
}

static bool value_is_key(const struct mg_value *k, const char *key, size_t len)
{
	return k->type == MG_STR && k->len == len && !memcmp(k->str, key, len);
}

/*
 * Index of the pair whose key is the string key, or -1. The last one wins
 * when a decoded map repeats a key, as it does for a Python dict.
 */
static int64_t value_map_find(const struct mg_value *map, const char *key)
{
	size_t len = strlen(key);
	int64_t k;

	for (k = (int64_t)map->len - 1; k >= 0; k--)
		if (value_is_key(&map->items[2 * k], key, len))
			return k;
	return -1;
}

int mg_map_set(struct mg_value *map, const char *key, struct mg_value *value)
{
	struct mg_value *slot;
	int64_t k;
	size_t len;
	char *blob;
	int r;

	if (map && map == value)
		return -EINVAL;
	if (!map || !value)
		r = -ENOMEM;
	else if (!key || map->type != MG_MAP)
		r = -EINVAL;
	else
		r = 0;
	if (r < 0)
		goto fail;

	k = value_map_find(map, key);
	if (k >= 0) {
		slot = &map->items[2 * k + 1];
		value_clear(slot);
		value_move(slot, value);
		return 0;
	}
	len = strlen(key);
	r = value_reserve(map, 2);
	if (r < 0)
		goto fail;
	slot = &map->items[2 * map->len];
	if (!value_blob_node(slot, MG_STR, len, &blob)) {
		r = errno == E2BIG ? -E2BIG : -ENOMEM;
		goto fail;
	}
	memcpy(blob, key, len);
	value_move(slot + 1, value);
	map->len++;
	return 0;
fail:
	mg_value_free(value);
	return r;
}

const struct mg_value *mg_map_get(const struct mg_value *map, const char *key)
{
	int64_t k;

	if (!map || !key || map->type != MG_MAP) {
		errno = EINVAL;
		return NULL;
	}
	k = value_map_find(map, key);
	if (k < 0) {
		errno = ENOENT;
		return NULL;
	}
	return &map->items[2 * k + 1];
}

const struct mg_value *mg_list_get(const struct mg_value *list, size_t i)
{
	if (!list || list->type != MG_LIST) {
		errno = EINVAL;
		return NULL;
	}
	if (i >= list->len) {
		errno = ERANGE;
		return NULL;
	}
	return &list->items[i];
}

/* --- general ---------------------------------------------------------- */

void mg_value_free(struct mg_value *v)
{
	if (!v)
		return;
	value_clear(v);
	free(v);
}

/* Deep copy of src into slot (or a new standalone node). NULL on ENOMEM. */
static struct mg_value *value_copy(const struct mg_value *src,
				   struct mg_value *slot)
{
	struct mg_value *v;
	uint32_t n, i;
	char *blob;

	switch (src->type) {
	case MG_STR:
	case MG_SECRET:
	case MG_BYTES:
		v = value_blob_node(slot, src->type, src->len, &blob);
		if (v && src->len)
			memcpy(blob, value_blob(src), src->len);
		return v;
	case MG_ERROR:
		return value_error_node(
			slot, src->err.kind, src->err.errnum, src->err.context,
			strlen(src->err.context), src->err.function,
			strlen(src->err.function), src->err.message,
			strlen(src->err.message));
	case MG_LIST:
	case MG_MAP:
		n = src->type == MG_MAP ? 2 * src->len : src->len;
		v = value_node(slot, src->type);
		if (!v)
			return NULL;
		if (n && !(v->items = malloc(n * sizeof(*v->items))))
			goto fail;
		for (i = 0; i < n; i++) {
			if (!value_copy(&src->items[i], &v->items[i])) {
				while (i--)
					value_clear(&v->items[i]);
				free(v->items);
				goto fail;
			}
		}
		v->len = src->len;
		v->cap_ = n;
		return v;
	default:
		v = value_node(slot, src->type);
		if (v)
			*v = *src;
		return v;
	}
fail:
	if (!slot)
		free(v);
	return NULL;
}

struct mg_value *mg_value_copy(const struct mg_value *v)
{
	if (!v) {
		errno = ENOMEM;
		return NULL;
	}
	return value_copy(v, NULL);
}

static bool value_equal(const struct mg_value *a, const struct mg_value *b);

/*
 * Maps compare like dicts: same pairs in any order. The common case (same
 * order, e.g. after a round trip) is linear; otherwise each key of a is
 * looked up in b.
 */
static bool value_map_equal(const struct mg_value *a, const struct mg_value *b)
{
	uint32_t i, j;

	if (a->len != b->len)
		return false;
	for (i = 0; i < a->len; i++)
		if (!value_equal(&a->items[2 * i], &b->items[2 * i]) ||
		    !value_equal(&a->items[2 * i + 1], &b->items[2 * i + 1]))
			break;
	if (i == a->len)
		return true;
	for (i = 0; i < a->len; i++) {
		for (j = 0; j < b->len; j++)
			if (value_equal(&a->items[2 * i], &b->items[2 * j]))
				break;
		if (j == b->len ||
		    !value_equal(&a->items[2 * i + 1], &b->items[2 * j + 1]))
			return false;
	}
	return true;
}

static bool value_equal(const struct mg_value *a, const struct mg_value *b)
{
	uint32_t i;

	if (a->type != b->type)
		return false;
	switch (a->type) {
	case MG_NIL:
		return true;
	case MG_BOOL:
		return a->b == b->b;
	case MG_INT:
		return a->i == b->i;
	case MG_FLOAT:
		/* NaN equals NaN here, so a value equals its own round trip. */
		return a->f == b->f || (isnan(a->f) && isnan(b->f));
	case MG_STR:
	case MG_SECRET:
	case MG_BYTES:
		return a->len == b->len &&
		       (!a->len ||
			!memcmp(value_blob(a), value_blob(b), a->len));
	case MG_LIST:
		if (a->len != b->len)
			return false;
		for (i = 0; i < a->len; i++)
			if (!value_equal(&a->items[i], &b->items[i]))
				return false;
		return true;
	case MG_MAP:
		return value_map_equal(a, b);
	case MG_CONTEXT:
		return a->ref.context_id == b->ref.context_id;
	case MG_SENDER:
		return a->ref.context_id == b->ref.context_id &&
		       a->ref.handle == b->ref.handle;
	case MG_ERROR:
		return a->err.kind == b->err.kind &&
		       a->err.errnum == b->err.errnum &&
		       !strcmp(a->err.context, b->err.context) &&
		       !strcmp(a->err.function, b->err.function) &&
		       !strcmp(a->err.message, b->err.message);
	}
	return false;
}

bool mg_value_equal(const struct mg_value *a, const struct mg_value *b)
{
	if (a == b)
		return true;
	if (!a || !b)
		return false;
	return value_equal(a, b);
}

const char *mg_type_name(enum mg_type type)
{
	static const char *const names[] = {
		[MG_NIL] = "nil",	  [MG_BOOL] = "bool",
		[MG_INT] = "int",	  [MG_FLOAT] = "float",
		[MG_STR] = "str",	  [MG_BYTES] = "bytes",
		[MG_LIST] = "list",	  [MG_MAP] = "map",
		[MG_CONTEXT] = "context", [MG_SENDER] = "sender",
		[MG_ERROR] = "error",	  [MG_SECRET] = "secret",
	};

	if ((unsigned)type >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[type];
}
