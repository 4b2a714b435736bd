// SPDX-License-Identifier: MIT
/*
 * selftests/core/test_value.c: struct mg_value — constructors, containers,
 * copy/equal, msgpack round trips and hostile decode input, the format
 * letters, JSON, and the struct mg_error helpers. TAP output via cmocka.
 */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <mitogen/context.h>
#include <mitogen/value.h>

#include "core/value.h"

/*
 * Decode p[0..n), and check that value_check() (what a stream runs on
 * receipt) gives the same answer as the decoder.
 */
static int decode_bytes(const void *p, size_t n, struct mg_value **ret)
{
	int r = mg_value_decode(p, n, ret);

	assert_int_equal(value_check(p, n), r);
	return r;
}
/* Encode v (taken), check the size when want_len > 0, decode, compare. */
static void roundtrip_len(struct mg_value *v, size_t want_len)
{
	struct mg_value *back = NULL;
	void *buf = NULL;
	size_t len = 0;

	assert_non_null(v);
	assert_int_equal(mg_value_encode(v, &buf, &len), 0);
	if (want_len)
		assert_int_equal(len, want_len);
	assert_int_equal(decode_bytes(buf, len, &back), 0);
	assert_true(mg_value_equal(v, back));
	assert_true(mg_value_equal(back, v));
	free(buf);
	mg_value_free(back);
	mg_value_free(v);
}

static void roundtrip(struct mg_value *v)
{
	roundtrip_len(v, 0);
}

#define DECODE(ret, ...)                               \
	decode_bytes((const uint8_t[]){ __VA_ARGS__ }, \
		     sizeof((const uint8_t[]){ __VA_ARGS__ }), ret)

static void test_scalars(void **state)
{
	static const struct {
		int64_t i;
		size_t len;
	} ints[] = {
		{ 0, 1 },	   { 1, 1 },
		{ 127, 1 },	   { 128, 2 },
		{ 255, 2 },	   { 256, 3 },
		{ 65535, 3 },	   { 65536, 5 },
		{ UINT32_MAX, 5 }, { (int64_t)UINT32_MAX + 1, 9 },
		{ INT64_MAX, 9 },  { -1, 1 },
		{ -32, 1 },	   { -33, 2 },
		{ -128, 2 },	   { -129, 3 },
		{ -32768, 3 },	   { -32769, 5 },
		{ INT32_MIN, 5 },  { (int64_t)INT32_MIN - 1, 9 },
		{ INT64_MIN, 9 },
	};
	static const double floats[] = { 0.0,	  -0.0,	   1.5,	 -2.25,
					 DBL_MAX, DBL_MIN, 1e300 };
	struct mg_value *v;
	size_t i;

	roundtrip_len(mg_nil(), 1);
	roundtrip_len(mg_bool(true), 1);
	roundtrip_len(mg_bool(false), 1);
	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		v = mg_int(ints[i].i);
		assert_int_equal(v->type, MG_INT);
		assert_true(v->i == ints[i].i);
		roundtrip_len(v, ints[i].len);
	}
	for (i = 0; i < sizeof(floats) / sizeof(floats[0]); i++)
		roundtrip_len(mg_float(floats[i]), 9);
	roundtrip_len(mg_float(NAN), 9);
	roundtrip_len(mg_float(INFINITY), 9);
	roundtrip_len(mg_float(-INFINITY), 9);

	/* A float32 on the wire (from another encoder) reads as a double. */
	assert_int_equal(DECODE(&v, 0xca, 0x3f, 0xc0, 0x00, 0x00), 0);
	assert_int_equal(v->type, MG_FLOAT);
	assert_true(v->f == 1.5);
	mg_value_free(v);
	/* Wider forms than needed are accepted. */
	assert_int_equal(DECODE(&v, 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				0xff, 0xfe),
			 0);
	assert_true(v->type == MG_INT && v->i == -2);
	mg_value_free(v);
	assert_int_equal(DECODE(&v, 0xd1, 0x80, 0x00), 0);
	assert_true(v->i == -32768);
	mg_value_free(v);
	assert_int_equal(DECODE(&v, 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff,
				0xff, 0xff),
			 0);
	assert_true(v->i == INT64_MAX);
	mg_value_free(v);
	/* uint64 past INT64_MAX does not fit an mg_value int. */
	assert_int_equal(DECODE(&v, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0), -EBADMSG);
}

static void test_strings(void **state)
{
	static const size_t lens[] = { 0, 1, 31, 32, 255, 256, 65535, 65536 };
	struct mg_value *v, *back;
	size_t i, hdr;
	char *s;
	void *buf;
	size_t len;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		s = malloc(lens[i] + 1);
		assert_non_null(s);
		memset(s, 'a' + (int)(i % 26), lens[i]);
		s[lens[i]] = '\0';
		hdr = lens[i] < 32    ? 1 :
		      lens[i] < 256   ? 2 :
		      lens[i] < 65536 ? 3 :
					5;
		v = mg_str(s);
		assert_int_equal(v->len, lens[i]);
		assert_string_equal(v->str, s);
		roundtrip_len(v, lens[i] + hdr);
		hdr = lens[i] < 256 ? 2 : lens[i] < 65536 ? 3 : 5;
		roundtrip_len(mg_bytes(s, lens[i]), lens[i] + hdr);
		roundtrip(mg_secret(s));
		free(s);
	}

	/* A NUL inside a str is kept; the text is still NUL-terminated. */
	v = mg_strn("a\0b", 3);
	assert_int_equal(v->len, 3);
	assert_int_equal(v->str[3], '\0');
	assert_int_equal(mg_value_encode(v, &buf, &len), 0);
	assert_int_equal(decode_bytes(buf, len, &back), 0);
	assert_int_equal(back->type, MG_STR);
	assert_int_equal(back->len, 3);
	assert_memory_equal(back->str, "a\0b", 4);
	free(buf);
	mg_value_free(back);
	mg_value_free(v);

	v = mg_strf("%s-%d", "x", 42);
	assert_string_equal(v->str, "x-42");
	assert_int_equal(v->len, 4);
	mg_value_free(v);

	/* NULL strings give nil. */
	v = mg_str(NULL);
	assert_int_equal(v->type, MG_NIL);
	mg_value_free(v);
	v = mg_strn(NULL, 3);
	assert_int_equal(v->type, MG_NIL);
	mg_value_free(v);

	s = malloc(3);
	memcpy(s, "xyz", 3);
	v = mg_bytes_take(s, 3);
	assert_int_equal(v->type, MG_BYTES);
	assert_ptr_equal(v->bytes, s);
	roundtrip(mg_value_copy(v));
	mg_value_free(v);
	v = mg_bytes_take(NULL, 0);
	assert_int_equal(v->len, 0);
	mg_value_free(v);
	errno = 0;
	assert_null(mg_bytes(NULL, 4));
	assert_int_equal(errno, EINVAL);
}

static void test_ext(void **state)
{
	struct mg_value *v;
	struct mg_error err = MG_ERROR_INIT;
	void *buf;
	size_t len;

	v = mg_context_value(42);
	assert_int_equal(mg_value_encode(v, &buf, &len), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(buf, ((const uint8_t[]){ 0xd6, 1, 0, 0, 0, 42 }),
			    6);
	free(buf);
	roundtrip(v);

	v = mg_sender_value(0x01020304, 0xffffffff);
	assert_int_equal(mg_value_encode(v, &buf, &len), 0);
	assert_memory_equal(buf,
			    ((const uint8_t[]){ 0xd7, 2, 1, 2, 3, 4, 0xff, 0xff,
						0xff, 0xff }),
			    10);
	free(buf);
	roundtrip(v);

	v = mg_secret("hunter2");
	assert_int_equal(v->type, MG_SECRET);
	assert_string_equal(v->str, "hunter2");
	assert_int_equal(mg_value_encode(v, &buf, &len), 0);
	assert_memory_equal(
		buf, ((const uint8_t[]){ 0xc7, 7, 4, 'h', 'u', 'n' }), 6);
	free(buf);
	roundtrip(v);
	roundtrip(mg_secret(""));

	v = mg_error_value(MG_ERR_CALL, ENOENT, "web1", "mg.read",
			   "no such file");
	assert_int_equal(v->err.kind, MG_ERR_CALL);
	assert_string_equal(v->err.function, "mg.read");
	assert_int_equal(mg_value_to_error(v, &err), 0);
	assert_int_equal(err.kind, MG_ERR_CALL);
	assert_int_equal(err.errnum, ENOENT);
	assert_string_equal(err.context, "web1");
	assert_string_equal(err.function, "mg.read");
	assert_string_equal(err.message, "no such file");
	roundtrip(v);

	v = mg_error_value(MG_ERR_TIMEOUT, -7, NULL, NULL, NULL);
	assert_string_equal(v->err.context, "");
	assert_string_equal(v->err.message, "");
	roundtrip(v);

	/* An error kind this library does not know reads as MG_ERR_NONE. */
	v = mg_error_value((enum mg_error_kind)99, 1, "c", "f", "m");
	assert_int_equal(v->err.kind, MG_ERR_NONE);
	mg_value_free(v);
	assert_int_equal(DECODE(&v, 0xc7, 9, 3, 0x95, 99, 1, 0xa1, 'c', 0xa1,
				'f', 0xa1, 'm'),
			 0);
	assert_int_equal(v->err.kind, MG_ERR_NONE);
	assert_string_equal(v->err.message, "m");
	mg_value_free(v);

	v = mg_int(1);
	assert_int_equal(mg_value_to_error(v, &err), -EINVAL);
	assert_int_equal(mg_value_to_error(v, NULL), -EINVAL);
	mg_value_free(v);
	assert_int_equal(mg_value_to_error(NULL, &err), -ENOMEM);
}

static struct mg_value *make_tree(void)
{
	struct mg_value *m = mg_map(), *inner = mg_map();

	assert_int_equal(mg_map_set(inner, "deep",
				    MG_LIST(mg_list(), mg_map(), mg_nil())),
			 0);
	assert_int_equal(
		mg_map_set(m, "args",
			   MG_LIST(mg_int(2), mg_str("x"), mg_float(0.5))),
		0);
	assert_int_equal(mg_map_set(m, "blob", mg_bytes("\x00\xff", 2)), 0);
	assert_int_equal(mg_map_set(m, "pw", mg_secret("s3cret")), 0);
	assert_int_equal(mg_map_set(m, "ctx", mg_context_value(7)), 0);
	assert_int_equal(mg_map_set(m, "reply", mg_sender_value(7, 1001)), 0);
	assert_int_equal(mg_map_set(m, "err",
				    mg_error_value(MG_ERR_CHANNEL, EPIPE, "a",
						   "b", "gone")),
			 0);
	assert_int_equal(mg_map_set(m, "inner", inner), 0);
	assert_int_equal(mg_map_set(m, "yes", mg_bool(true)), 0);
	return m;
}

static void test_containers(void **state)
{
	struct mg_value *v, *w, *list;
	const struct mg_value *got;
	int i;

	roundtrip_len(mg_list(), 1);
	roundtrip_len(mg_map(), 1);
	roundtrip(make_tree());
	roundtrip(MG_LIST(MG_LIST(MG_LIST(mg_str("nested")))));

	v = make_tree();
	w = mg_value_copy(v);
	assert_non_null(w);
	assert_ptr_not_equal(v, w);
	assert_true(mg_value_equal(v, w));
	got = mg_map_get(w, "args");
	assert_non_null(got);
	assert_int_equal(got->type, MG_LIST);
	assert_int_equal(got->len, 3);
	assert_string_equal(mg_list_get(got, 1)->str, "x");
	assert_null(mg_list_get(got, 3));
	assert_null(mg_list_get(w, 0));
	assert_int_equal(mg_map_get(w, "inner")->len, 1);
	assert_null(mg_map_get(w, "nope"));
	assert_null(mg_map_get(got, "args"));
	assert_null(mg_map_get(w, NULL));

	/* Replacing a key keeps one pair. */
	assert_int_equal(mg_map_set(w, "yes", mg_str("replaced")), 0);
	assert_int_equal(w->len, v->len);
	assert_string_equal(mg_map_get(w, "yes")->str, "replaced");
	assert_false(mg_value_equal(v, w));
	mg_value_free(w);
	mg_value_free(v);

	/* Maps compare in any order. */
	v = mg_map();
	w = mg_map();
	mg_map_set(v, "a", mg_int(1));
	mg_map_set(v, "b", mg_int(2));
	mg_map_set(w, "b", mg_int(2));
	mg_map_set(w, "a", mg_int(1));
	assert_true(mg_value_equal(v, w));
	mg_map_set(w, "a", mg_int(3));
	assert_false(mg_value_equal(v, w));
	mg_value_free(v);
	mg_value_free(w);

	/* Types differ even when the bytes agree. */
	v = mg_str("x");
	w = mg_bytes("x", 1);
	assert_false(mg_value_equal(v, w));
	mg_value_free(w);
	w = mg_secret("x");
	assert_false(mg_value_equal(v, w));
	mg_value_free(w);
	mg_value_free(v);
	assert_true(mg_value_equal(NULL, NULL));
	v = mg_nil();
	assert_false(mg_value_equal(v, NULL));
	assert_false(mg_value_equal(NULL, v));
	mg_value_free(v);

	/* Appending many grows the items; the moved strings stay valid. */
	list = mg_list();
	for (i = 0; i < 1000; i++)
		assert_int_equal(mg_list_append(list, mg_strf("item %d", i)),
				 0);
	assert_int_equal(list->len, 1000);
	assert_string_equal(list->items[999].str, "item 999");
	roundtrip(list);

	/* Ownership on failure: every item is taken, even the good ones. */
	errno = 0;
	assert_null(MG_LIST(mg_int(1), NULL, mg_str("leak?")));
	assert_int_equal(errno, ENOMEM);
	assert_null(mg_list_of(NULL, 2));
	v = mg_list_of(NULL, 0);
	assert_int_equal(v->len, 0);
	mg_value_free(v);

	v = mg_map();
	assert_int_equal(mg_list_append(v, mg_str("taken")), -EINVAL);
	assert_int_equal(mg_list_append(NULL, mg_str("taken")), -ENOMEM);
	assert_int_equal(mg_list_append(v, NULL), -ENOMEM);
	assert_int_equal(mg_list_append(v, v), -EINVAL);
	assert_int_equal(mg_map_set(v, NULL, mg_str("taken")), -EINVAL);
	assert_int_equal(mg_map_set(NULL, "k", mg_str("taken")), -ENOMEM);
	assert_int_equal(mg_map_set(v, "k", NULL), -ENOMEM);
	assert_int_equal(mg_map_set(v, "k", v), -EINVAL);
	w = mg_list();
	assert_int_equal(mg_map_set(w, "k", mg_str("taken")), -EINVAL);
	assert_int_equal(mg_list_append(w, w), -EINVAL);
	assert_int_equal(v->len, 0);
	assert_int_equal(w->len, 0);
	mg_value_free(w);
	mg_value_free(v);

	assert_null(mg_value_copy(NULL));
	mg_value_free(NULL);
	assert_string_equal(mg_type_name(MG_SECRET), "secret");
	assert_string_equal(mg_type_name(MG_NIL), "nil");
	assert_string_equal(mg_type_name((enum mg_type)1234), "unknown");
}

static void test_big_bytes(void **state)
{
	const size_t n = 1 << 20;
	struct mg_value *v, *back;
	uint8_t *p = malloc(n);
	void *buf;
	size_t len, i;

	assert_non_null(p);
	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7);
	v = mg_bytes_take(p, n);
	assert_int_equal(mg_value_encode(v, &buf, &len), 0);
	assert_int_equal(len, n + 5);
	assert_int_equal(decode_bytes(buf, len, &back), 0);
	assert_int_equal(back->len, n);
	assert_memory_equal(back->bytes, p, n);
	free(buf);
	mg_value_free(back);
	mg_value_free(v);
}

static struct mg_value *nested_lists(int depth)
{
	struct mg_value *v = mg_list();
	int i;

	for (i = 1; i < depth; i++)
		v = MG_LIST(v);
	return v;
}

static void test_depth(void **state)
{
	uint8_t buf[MG_VALUE_MAX_DEPTH + 2], maps[3 * MG_VALUE_MAX_DEPTH];
	struct mg_value *v;
	void *enc;
	size_t len;
	int i;

	/* MG_VALUE_MAX_DEPTH nested lists go both ways. */
	roundtrip_len(nested_lists(MG_VALUE_MAX_DEPTH), MG_VALUE_MAX_DEPTH);
	memset(buf, 0x91, sizeof(buf));
	buf[MG_VALUE_MAX_DEPTH - 1] = 0x90;
	assert_int_equal(decode_bytes(buf, MG_VALUE_MAX_DEPTH, &v), 0);
	mg_value_free(v);

	/* One more is refused on both sides. */
	buf[MG_VALUE_MAX_DEPTH - 1] = 0x91;
	buf[MG_VALUE_MAX_DEPTH] = 0x90;
	assert_int_equal(decode_bytes(buf, MG_VALUE_MAX_DEPTH + 1, &v), -E2BIG);
	/* An empty innermost map counts as a level too. */
	buf[MG_VALUE_MAX_DEPTH] = 0x80;
	assert_int_equal(decode_bytes(buf, MG_VALUE_MAX_DEPTH + 1, &v), -E2BIG);
	v = nested_lists(MG_VALUE_MAX_DEPTH + 1);
	assert_int_equal(mg_value_encode(v, &enc, &len), -E2BIG);
	mg_value_free(v);
	/* Maps count too (as keys here), given bytes enough to get that deep. */
	memset(maps, 0xc0, sizeof(maps));
	for (i = 0; i <= MG_VALUE_MAX_DEPTH; i++)
		maps[i] = 0x81;
	assert_int_equal(decode_bytes(maps, sizeof(maps), &v), -E2BIG);
}

/* buf[at..] = an array32 or map32 header of count, then nils up to len. */
static size_t put_nils(uint8_t *buf, size_t at, uint8_t head, uint32_t count,
		       size_t len)
{
	buf[at] = head;
	buf[at + 1] = count >> 24;
	buf[at + 2] = count >> 16;
	buf[at + 3] = count >> 8;
	buf[at + 4] = count;
	memset(buf + at + 5, 0xc0, len - at - 5);
	return len;
}

/*
 * VALUE_MAX_NODES bounds what one decode builds, root included, whatever
 * the input's size: payloads whose bytes back every item are still refused
 * (-E2BIG) by the decoder and by value_check alike.
 */
static void test_node_cap(void **state)
{
	const uint32_t cap = VALUE_MAX_NODES;
	size_t size = 2 * 5 + 1 + (size_t)cap + 1, n;
	struct mg_value *v = NULL;
	uint8_t *buf, *owned;

	buf = malloc(size);
	assert_non_null(buf);

	/* A list of cap + 1 nils: 16 MiB of input that has all its bytes. */
	n = put_nils(buf, 0, 0xdd, cap + 1, 5 + (size_t)cap + 1);
	assert_int_equal(decode_bytes(buf, n, &v), -E2BIG);
	/* cap items plus the list itself is one node too many... */
	n = put_nils(buf, 0, 0xdd, cap, 5 + (size_t)cap);
	assert_int_equal(decode_bytes(buf, n, &v), -E2BIG);
	/* ...and cap - 1 items is exactly the cap (checked without building
	 * the 16 Mi nodes: value_check counts the same way, header by
	 * header, as the decoder). */
	n = put_nils(buf, 0, 0xdd, cap - 1, 5 + (size_t)cap - 1);
	assert_int_equal(value_check(buf, n), 0);

	/* A map's pairs count twice (key and value). */
	n = put_nils(buf, 0, 0xdf, cap / 2, 5 + (size_t)cap);
	assert_int_equal(decode_bytes(buf, n, &v), -E2BIG);

	/* The count is over the whole decode, not per container: a list of
	 * half the cap whose first item is another such list. */
	n = 5 + 5 + (size_t)cap - 1;
	put_nils(buf, 0, 0xdd, cap / 2, n);
	put_nils(buf, 5, 0xdd, cap / 2, n);
	assert_int_equal(decode_bytes(buf, n, &v), -E2BIG);
	/* value_decode_owned (a stream's receive path) refuses it too. */
	owned = malloc(n);
	assert_non_null(owned);
	memcpy(owned, buf, n);
	assert_int_equal(value_decode_owned(owned, n, &v), -E2BIG);
	/* One item fewer in the inner list, and it is within the cap. */
	put_nils(buf, 5, 0xdd, cap / 2 - 1, --n);
	assert_int_equal(value_check(buf, n), 0);

	/* Small nested containers are far from it. */
	assert_int_equal(DECODE(&v, 0x92, 0x91, 0xc0, 0x81, 0xc0, 0x90), 0);
	mg_value_free(v);
	free(buf);
}

static void test_decode_truncated(void **state)
{
	struct mg_value *v = make_tree(), *back;
	uint8_t *copy;
	void *buf;
	size_t len, i;

	assert_int_equal(mg_value_encode(v, &buf, &len), 0);
	/* Every strict prefix fails; each in its own allocation so ASan sees
	 * any read past the end. */
	for (i = 0; i < len; i++) {
		copy = malloc(i ? i : 1);
		memcpy(copy, buf, i);
		assert_int_equal(decode_bytes(copy, i, &back), -EBADMSG);
		free(copy);
	}
	/* Trailing bytes fail. */
	copy = malloc(len + 1);
	memcpy(copy, buf, len);
	copy[len] = 0xc0;
	assert_int_equal(decode_bytes(copy, len + 1, &back), -EBADMSG);
	free(copy);
	free(buf);
	mg_value_free(v);
}

static void test_decode_hostile(void **state)
{
	struct mg_value *v = NULL;

	/* Counts and lengths that the bytes cannot back: refused up front. */
	assert_int_equal(DECODE(&v, 0xdd, 0xff, 0xff, 0xff, 0xff), -EBADMSG);
	assert_int_equal(DECODE(&v, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0),
			 -EBADMSG);
	assert_int_equal(DECODE(&v, 0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0),
			 -EBADMSG);
	assert_int_equal(DECODE(&v, 0xdc, 0xff, 0xff), -EBADMSG);
	assert_int_equal(DECODE(&v, 0x92, 0xc0), -EBADMSG);
	/* A map of one pair needs two items. */
	assert_int_equal(DECODE(&v, 0x81, 0xc0), -EBADMSG);
	assert_int_equal(DECODE(&v, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'),
			 -EBADMSG);
	assert_int_equal(DECODE(&v, 0xc6, 0x7f, 0xff, 0xff, 0xff, 'a'),
			 -EBADMSG);
	assert_int_equal(DECODE(&v, 0xc9, 0xff, 0xff, 0xff, 0xff, 4, 'a'),
			 -EBADMSG);
	/* Never-used byte, trailing bytes. */
	assert_int_equal(DECODE(&v, 0xc1), -EBADMSG);
	assert_int_equal(DECODE(&v, 0xc0, 0xc0), -EBADMSG);
	assert_int_equal(DECODE(&v, 0x90, 0x00), -EBADMSG);
	assert_int_equal(decode_bytes("", 0, &v), -EBADMSG);

	/* Unknown ext types, timestamp included. */
	assert_int_equal(DECODE(&v, 0xd4, 5, 0), -EBADMSG);
	assert_int_equal(DECODE(&v, 0xd6, 0xff, 0, 0, 0, 0), -EBADMSG);
	assert_int_equal(DECODE(&v, 0xd4, 0, 0), -EBADMSG);
	/* Context and sender refs of the wrong size. */
	assert_int_equal(DECODE(&v, 0xd5, 1, 0, 1), -EBADMSG);
	assert_int_equal(DECODE(&v, 0xc7, 3, 1, 0, 0, 1), -EBADMSG);
	assert_int_equal(DECODE(&v, 0xd6, 2, 0, 0, 0, 1), -EBADMSG);
	assert_int_equal(DECODE(&v, 0xc7, 7, 2, 0, 0, 0, 1, 0, 0, 1), -EBADMSG);
	/* ...but any ext form with the right size is fine. */
	assert_int_equal(DECODE(&v, 0xc7, 4, 1, 0, 0, 0, 9), 0);
	assert_int_equal(v->type, MG_CONTEXT);
	assert_int_equal(v->ref.context_id, 9);
	mg_value_free(v);

	/* Error payloads. Good: [1, 2, "c", "f", "m"]. */
	assert_int_equal(DECODE(&v, 0xc7, 9, 3, 0x95, 1, 2, 0xa1, 'c', 0xa1,
				'f', 0xa1, 'm'),
			 0);
	assert_true(v->type == MG_ERROR && v->err.kind == MG_ERR_CALL &&
		    v->err.errnum == 2);
	mg_value_free(v);
	/* Empty, not a list, short list, long list. */
	assert_int_equal(DECODE(&v, 0xd4, 3, 0xc0), -EBADMSG);
	assert_int_equal(DECODE(&v, 0xc7, 0, 3), -EBADMSG);
	assert_int_equal(
		DECODE(&v, 0xc7, 7, 3, 0x94, 1, 2, 0xa1, 'c', 0xa1, 'f'),
		-EBADMSG);
	assert_int_equal(DECODE(&v, 0xc7, 10, 3, 0x96, 1, 2, 0xa1, 'c', 0xa1,
				'f', 0xa1, 'm', 0xc0),
			 -EBADMSG);
	/* Kind not an int; errnum out of int range; a field not a str. */
	assert_int_equal(DECODE(&v, 0xc7, 9, 3, 0x95, 0xc0, 2, 0xa1, 'c', 0xa1,
				'f', 0xa1, 'm'),
			 -EBADMSG);
	assert_int_equal(DECODE(&v, 0xc7, 13, 3, 0x95, 1, 0xce, 0x80, 0, 0, 0,
				0xa1, 'c', 0xa1, 'f', 0xa1, 'm'),
			 -EBADMSG);
	assert_int_equal(DECODE(&v, 0xc7, 9, 3, 0x95, 1, 2, 0xa1, 'c', 0xc4, 1,
				'f', 0xa1),
			 -EBADMSG);
	/* A NUL inside a field; bytes after the list inside the payload. */
	assert_int_equal(DECODE(&v, 0xc7, 9, 3, 0x95, 1, 2, 0xa1, 0, 0xa1, 'f',
				0xa1, 'm'),
			 -EBADMSG);
	assert_int_equal(DECODE(&v, 0xc7, 10, 3, 0x95, 1, 2, 0xa1, 'c', 0xa1,
				'f', 0xa1, 'm', 0),
			 -EBADMSG);
	/* Payload that claims more than the ext holds. */
	assert_int_equal(DECODE(&v, 0xc7, 8, 3, 0x95, 1, 2, 0xa1, 'c', 0xa1,
				'f', 0xa1, 'm'),
			 -EBADMSG);
	assert_int_equal(DECODE(&v, 0xc7, 5, 3, 0xdd, 0xff, 0xff, 0xff, 0xff),
			 -EBADMSG);

	/* Map keys of any type are kept; mg_map_get matches str keys only. */
	assert_int_equal(DECODE(&v, 0x82, 1, 0xa1, 'x', 0xa1, '1', 0xa1, 'y'),
			 0);
	assert_int_equal(v->len, 2);
	assert_string_equal(mg_map_get(v, "1")->str, "y");
	mg_value_free(v);
	/* A repeated key: the last one wins, as in a Python dict. */
	assert_int_equal(DECODE(&v, 0x82, 0xa1, 'k', 1, 0xa1, 'k', 2), 0);
	assert_int_equal(mg_map_get(v, "k")->i, 2);
	mg_value_free(v);

	assert_int_equal(decode_bytes(NULL, 1, &v), -EINVAL);
	assert_int_equal(mg_value_decode("\xc0", 1, NULL), -EINVAL);
}

static void test_encode_args(void **state)
{
	struct mg_value *v = mg_nil();
	void *buf = NULL;
	size_t len = 0;

	assert_int_equal(mg_value_encode(NULL, &buf, &len), -ENOMEM);
	assert_int_equal(mg_value_encode(v, NULL, &len), -EINVAL);
	assert_int_equal(mg_value_encode(v, &buf, NULL), -EINVAL);
	assert_null(buf);
	mg_value_free(v);
}

static void test_build_unpack(void **state)
{
	struct mg_value *list, *any = mg_map();
	const struct mg_value *got_v = NULL;
	const char *s = NULL, *sec = NULL, *snil = "untouched";
	const void *y = NULL;
	size_t ylen = 0;
	bool b = false;
	int i = 0;
	int64_t l = 0;
	double d = 0;
	struct mg_error err = MG_ERROR_INIT;

	list = mg_value_build("nbildsSyvs", 1, -5, (int64_t)INT64_MIN, 2.5,
			      "str", "pw", "by", (size_t)2, any, NULL);
	assert_non_null(list);
	assert_int_equal(list->len, 10);
	assert_int_equal(list->items[0].type, MG_NIL);
	assert_int_equal(list->items[6].type, MG_SECRET);
	assert_int_equal(list->items[9].type, MG_NIL);
	assert_int_equal(mg_value_unpack(list, &err, "nbildsSyvs", &b, &i, &l,
					 &d, &s, &sec, &y, &ylen, &got_v,
					 &snil),
			 0);
	assert_true(b);
	assert_int_equal(i, -5);
	assert_true(l == INT64_MIN);
	assert_true(d == 2.5);
	assert_string_equal(s, "str");
	assert_string_equal(sec, "pw");
	assert_int_equal(ylen, 2);
	assert_memory_equal(y, "by", 2);
	assert_int_equal(got_v->type, MG_MAP);
	assert_null(snil);
	roundtrip(mg_value_copy(list));

	mg_value_free(list);

	/* 'd' takes an int, 'y' a str, 'S' a str. */
	list = mg_value_build("isS", 7, "x", "y");
	assert_int_equal(
		mg_value_unpack(list, &err, "dyS", &d, &y, &ylen, &sec), 0);
	assert_true(d == 7.0);
	assert_int_equal(ylen, 1);
	assert_string_equal(sec, "y");

	/* Optional arguments: missing ones are left alone. */
	i = 99;
	s = "keep";
	assert_int_equal(
		mg_value_unpack(list, &err, "i|sSis", &i, &s, &sec, &i, &s), 0);
	assert_int_equal(i, 7);
	assert_string_equal(s, "x");
	i = 99;
	assert_int_equal(mg_value_unpack(list, &err, "lsS|i", &l, &s, &sec, &i),
			 0);
	assert_true(l == 7);
	assert_int_equal(i, 99);

	/* Wrong counts. */
	assert_int_equal(mg_value_unpack(list, &err, "is", &i, &s), -EINVAL);
	assert_int_equal(err.kind, MG_ERR_CALL);
	assert_int_equal(err.errnum, EINVAL);
	assert_string_equal(err.message, "expected 2 arguments, got 3");
	assert_int_equal(mg_value_unpack(list, &err, "isSi", &i, &s, &sec, &i),
			 -EINVAL);
	assert_string_equal(err.message, "expected 4 arguments, got 3");
	assert_int_equal(mg_value_unpack(list, &err, "i|s", &i, &s), -EINVAL);
	assert_string_equal(err.message, "expected 1 to 2 arguments, got 3");
	assert_int_equal(mg_value_unpack(list, &err, "v", &got_v), -EINVAL);
	assert_string_equal(err.message, "expected 1 argument, got 3");
	/* Wrong types; nothing is written when one is wrong. */
	i = 99;
	assert_int_equal(mg_value_unpack(list, &err, "iiS", &i, &i, &sec),
			 -EINVAL);
	assert_string_equal(err.message, "argument 2: expected int, got str");
	assert_int_equal(i, 99);
	assert_int_equal(mg_value_unpack(list, &err, "isb", &i, &s, &b),
			 -EINVAL);
	assert_string_equal(err.message,
			    "argument 3: expected bool, got secret");
	assert_int_equal(mg_value_unpack(list, NULL, "iss", &i, &s, &s),
			 -EINVAL);
	assert_int_equal(mg_value_unpack(list, &err, "ns|S", &s, &sec),
			 -EINVAL);
	assert_string_equal(err.message, "argument 1: expected nil, got int");
	/* Bad formats. */
	assert_int_equal(mg_value_unpack(list, &err, "isx", &i, &s), -EINVAL);
	assert_string_equal(err.message, "bad format character 'x'");
	assert_int_equal(mg_value_unpack(list, &err, "i|s|S", &i, &s, &sec),
			 -EINVAL);
	assert_int_equal(mg_value_unpack(list, &err, NULL), -EINVAL);
	assert_int_equal(mg_value_unpack(NULL, &err, "i", &i), -ENOMEM);
	assert_int_equal(mg_value_unpack(list->items, &err, "i", &i), -EINVAL);
	assert_string_equal(err.message,
			    "expected a list of arguments, got int");
	mg_value_free(list);

	/* 'i' is range-checked, 'l' is not. */
	list = mg_value_build("ll", (int64_t)INT_MAX + 1, (int64_t)INT_MIN);
	assert_int_equal(mg_value_unpack(list, &err, "ii", &i, &i), -EINVAL);
	assert_string_equal(err.message,
			    "argument 1: int 2147483648 out of range");
	assert_int_equal(mg_value_unpack(list, &err, "li", &l, &i), 0);
	assert_int_equal(i, INT_MIN);
	mg_value_free(list);

	list = mg_value_build("");
	assert_int_equal(list->len, 0);
	assert_int_equal(mg_value_unpack(list, &err, ""), 0);
	assert_int_equal(mg_value_unpack(list, &err, "|ii", &i, &i), 0);
	mg_value_free(list);

	/* Build failures still take every 'v' value. */
	errno = 0;
	assert_null(mg_value_build("vvv", mg_str("a"), (struct mg_value *)NULL,
				   mg_str("b")));
	assert_int_equal(errno, ENOMEM);
	errno = 0;
	/* Values before a bad letter are taken; after it the arguments cannot
	 * be walked, so callers must not pass any there. */
	assert_null(mg_value_build("vq", mg_str("a")));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(mg_value_build("yv", NULL, (size_t)3, mg_str("a")));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(mg_value_build(NULL));
	assert_int_equal(errno, EINVAL);
	list = mg_value_build("yS", NULL, (size_t)0, NULL);
	assert_int_equal(list->items[0].type, MG_BYTES);
	assert_int_equal(list->items[0].len, 0);
	assert_int_equal(list->items[1].type, MG_NIL);
	mg_value_free(list);
}

static void assert_json(struct mg_value *v, const char *want)
{
	char *s = mg_value_to_json_alloc(v);
	char small[8];
	int n;

	assert_non_null(s);
	assert_string_equal(s, want);
	n = mg_value_to_json(v, NULL, 0);
	assert_int_equal(n, strlen(want));
	n = mg_value_to_json(v, small, sizeof(small));
	assert_int_equal(n, strlen(want));
	assert_int_equal(strlen(small), n < 7 ? n : 7);
	assert_memory_equal(small, want, strlen(small));
	free(s);
	mg_value_free(v);
}

static void test_json(void **state)
{
	uint8_t bomb[2 * MG_VALUE_MAX_DEPTH + 2];
	char buf[4];
	struct mg_value *v;
	int i;

	assert_json(mg_nil(), "null");
	assert_json(mg_bool(true), "true");
	assert_json(mg_bool(false), "false");
	assert_json(mg_int(INT64_MIN), "-9223372036854775808");
	assert_json(mg_int(42), "42");
	assert_json(mg_float(1.0), "1.0");
	assert_json(mg_float(-0.0), "-0.0");
	assert_json(mg_float(0.5), "0.5");
	assert_json(mg_float(0.1), "0.10000000000000001");
	assert_json(mg_float(1e300), "1.0000000000000001e+300");
	assert_json(mg_float(NAN), "null");
	assert_json(mg_float(-INFINITY), "null");
	assert_json(mg_str("a\"b\\c\n\t\r\b\f\x01\x1f\x7f/é"),
		    "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f/é\"");
	assert_json(mg_strn("a\0b", 3), "\"a\\u0000b\"");
	assert_json(mg_str("bad \xff\xc3 utf8 \xed\xa0\x80"),
		    "\"bad \\ufffd\\ufffd utf8 \\ufffd\\ufffd\\ufffd\"");
	assert_json(mg_bytes("text ☃", strlen("text ☃")), "\"text ☃\"");
	assert_json(mg_bytes("", 0), "\"\"");
	assert_json(mg_bytes("\xff", 1), "{\"$bytes\":\"/w==\"}");
	assert_json(mg_bytes("\x00\xff\xfe", 3), "{\"$bytes\":\"AP/+\"}");
	assert_json(mg_bytes("\xc0\x80xy", 4), "{\"$bytes\":\"wIB4eQ==\"}");
	assert_json(mg_secret("hunter2"), "\"<secret>\"");
	assert_json(mg_context_value(7), "{\"$context\":7}");
	assert_json(mg_sender_value(7, 4294967295u),
		    "{\"$sender\":[7,4294967295]}");
	assert_json(
		mg_error_value(MG_ERR_CALL, 2, "web\"1", "mg.read", "no\nfile"),
		"{\"$error\":{\"kind\":\"CallError\",\"errno\":2,\"context\":\"web\\\"1\","
		"\"function\":\"mg.read\",\"message\":\"no\\nfile\"}}");
	assert_json(mg_list(), "[]");
	assert_json(mg_map(), "{}");
	assert_json(MG_LIST(mg_int(1), mg_secret("x"), MG_LIST(mg_nil())),
		    "[1,\"<secret>\",[null]]");

	v = mg_map();
	mg_map_set(v, "a", mg_int(1));
	mg_map_set(v, "pw", mg_secret("hunter2"));
	mg_map_set(v, "q\"", mg_list());
	assert_json(v, "{\"a\":1,\"pw\":\"<secret>\",\"q\\\"\":[]}");

	/* Keys that are not strings become strings. */
	assert_int_equal(DECODE(&v, 0x84, 1, 0xc0, 0xc3, 0xc0, 0x91, 0xa2, 'a',
				'"', 0xc0, 0x81, 0x91, 0xa1, '\\', 0xc0, 0xc0),
			 0);
	assert_json(v, "{\"1\":null,\"true\":null,\"[\\\"a\\\\\\\"\\\"]\":null,"
		       "\"{\\\"<list>\\\":null}\":null}");

	/* Maps nested as keys: the text stays small (it would double per
	 * level if each level were escaped again). */
	memset(bomb, 0xc0, sizeof(bomb));
	for (i = 0; i < MG_VALUE_MAX_DEPTH; i++)
		bomb[i] = 0x81;
	bomb[i] = 0xa1;
	bomb[i + 1] = '"';
	assert_int_equal(decode_bytes(bomb, 2 * MG_VALUE_MAX_DEPTH + 2, &v), 0);
	assert_json(v, "{\"{\\\"<map>\\\":null}\":null}");

	/* snprintf semantics. */
	v = mg_str("hello");
	assert_int_equal(mg_value_to_json(v, buf, sizeof(buf)), 7);
	assert_string_equal(buf, "\"he");
	assert_int_equal(mg_value_to_json(v, buf, 1), 7);
	assert_string_equal(buf, "");
	assert_int_equal(mg_value_to_json(v, NULL, 4), -EINVAL);
	mg_value_free(v);
	assert_int_equal(mg_value_to_json(NULL, buf, sizeof(buf)), -ENOMEM);
	errno = 0;
	assert_null(mg_value_to_json_alloc(NULL));
	assert_int_equal(errno, ENOMEM);

	/* A decimal comma locale does not leak into JSON. */
	if (setlocale(LC_NUMERIC, "de_DE.UTF-8") ||
	    setlocale(LC_NUMERIC, "fr_FR.UTF-8")) {
		assert_json(mg_float(0.5), "0.5");
		setlocale(LC_NUMERIC, "C");
	} else {
		print_message(
			"# skip: decimal comma check, no de_DE/fr_FR locale\n");
	}
}

static void test_error(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char buf[256];

	assert_string_equal(mg_error_kind_name(MG_ERR_NONE), "Error");
	assert_string_equal(mg_error_kind_name(MG_ERR_CALL), "CallError");
	assert_string_equal(mg_error_kind_name(MG_ERR_CHANNEL), "ChannelError");
	assert_string_equal(mg_error_kind_name(MG_ERR_LATCH), "LatchError");
	assert_string_equal(mg_error_kind_name(MG_ERR_STREAM), "StreamError");
	assert_string_equal(mg_error_kind_name(MG_ERR_TIMEOUT), "TimeoutError");
	assert_string_equal(mg_error_kind_name(MG_ERR_PASSWORD),
			    "PasswordError");
	assert_string_equal(mg_error_kind_name(MG_ERR_HOSTKEY), "HostKeyError");
	assert_string_equal(mg_error_kind_name((enum mg_error_kind)77),
			    "Error");

	assert_string_equal(mg_error_str(NULL, buf, sizeof(buf)), "no error");
	assert_string_equal(mg_error_str(&err, buf, sizeof(buf)), "no error");
	err.kind = MG_ERR_CALL;
	snprintf(err.context, sizeof(err.context), "web1");
	snprintf(err.function, sizeof(err.function), "mg.read");
	snprintf(err.message, sizeof(err.message), "no such file");
	assert_string_equal(mg_error_str(&err, buf, sizeof(buf)),
			    "CallError: web1: mg.read: no such file");
	assert_string_equal(mg_error_str(&err, buf, 10), "CallError");
	assert_string_equal(mg_error_str(&err, NULL, 0), "");
	mg_error_clear(&err);
	assert_int_equal(err.kind, MG_ERR_NONE);
	assert_string_equal(err.context, "");
	mg_error_clear(NULL);
	err.kind = MG_ERR_TIMEOUT;
	snprintf(err.message, sizeof(err.message), "deadline passed");
	assert_string_equal(mg_error_str(&err, buf, sizeof(buf)),
			    "TimeoutError: deadline passed");
	/* Fields without their NUL are read only up to their size. */
	memset(err.message, 'x', sizeof(err.message));
	assert_int_equal(strlen(mg_error_str(&err, buf, sizeof(buf))),
			 sizeof(buf) - 1);

	assert_string_equal(mg_version(), "0.1.0");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_ext),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_big_bytes),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_node_cap),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_decode_hostile),
		cmocka_unit_test(test_encode_args),
		cmocka_unit_test(test_build_unpack),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_error),
	};

	mg_main(argc, argv);
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
