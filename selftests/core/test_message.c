// SPDX-License-Identifier: MIT
/*
 * test_message.c — mg_message_new_shared: a payload that messages share
 * instead of a copy each is released exactly once per message, however
 * the message ends: freed unsent, refused by the router, or delivered to
 * a receiver here and decoded (its payload copied out first, so the owner
 * may reuse the buffer at once). Bad arguments are refused without a
 * release. Written to a stream and read at the other end: files/test_push
 * (a source's chunks to a relay and its leaves, every copy compared).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "selftests/lib/harness.h"

struct owner {
	int released;
};

static void release(void *arg)
{
	struct owner *o = arg;

	__atomic_add_fetch(&o->released, 1, __ATOMIC_SEQ_CST);
}

static int released(struct owner *o)
{
	return __atomic_load_n(&o->released, __ATOMIC_SEQ_CST);
}

/* A chunk as files/fanout.c encodes one: ["d", 7, 0, BYTES]. */
static void *chunk(size_t *len)
{
	struct mg_value *v = MG_LIST(mg_str("d"), mg_int(7), mg_int(0), mg_bytes("abc", 3));
	void *raw = NULL;

	assert_int_equal(mg_value_encode(v, &raw, len), 0);
	mg_value_free(v);
	return raw;
}

static void test_shared_freed_unsent(void **state)
{
	struct owner o = { 0 };
	struct mg_message *m;
	size_t len;
	void *raw = chunk(&len);

	(void)state;
	m = mg_message_new_shared(1, 100, raw, len, release, &o);
	assert_non_null(m);
	assert_ptr_equal(mg_message_data(m, &len), raw);	/* not a copy */
	assert_int_equal(released(&o), 0);
	mg_message_free(m);
	assert_int_equal(released(&o), 1);

	errno = 0;
	assert_null(mg_message_new_shared(1, 100, NULL, 4, release, &o));
	assert_int_equal(errno, EINVAL);
	assert_null(mg_message_new_shared(1, 100, raw, len, NULL, &o));
	assert_int_equal(released(&o), 1);
	free(raw);
}

static void test_shared_delivered_here(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = mg_router_new(NULL);
	struct mg_receiver *rx;
	struct mg_message *m;
	struct mg_value *v = NULL;
	struct owner o = { 0 };
	size_t len;
	void *raw = chunk(&len);

	(void)state;
	assert_non_null(r);
	rx = mg_receiver_new(r, NULL);
	assert_non_null(rx);
	m = mg_message_new_shared(mg_router_id(r), mg_receiver_handle(rx), raw, len, release, &o);
	assert_non_null(m);
	assert_int_equal(mg_router_route(r, m), 0);
	assert_int_equal(mg_receiver_get_data(rx, 60, &v, &err), 0);
	/* decoded from a copy: the share is done with, the owner may reuse it */
	assert_int_equal(released(&o), 1);
	memset(raw, 0, len);
	assert_int_equal(v->type, MG_LIST);
	assert_int_equal(v->len, 4);
	assert_string_equal(v->items[0].str, "d");
	assert_int_equal(v->items[1].i, 7);
	assert_int_equal(v->items[3].len, 3);
	assert_memory_equal(v->items[3].bytes, "abc", 3);
	mg_value_free(v);

	/* read without taking (mg_message_value, no throw): released on free */
	free(raw);
	raw = chunk(&len);
	m = mg_message_new_shared(mg_router_id(r), mg_receiver_handle(rx), raw, len, release, &o);
	assert_int_equal(mg_router_route(r, m), 0);
	assert_int_equal(mg_receiver_get(rx, 60, &m, &err), 0);
	assert_int_equal(mg_message_value(m, false, &v, &err), 0);
	assert_int_equal(v->items[1].i, 7);
	mg_value_free(v);
	assert_int_equal(released(&o), 1);
	mg_message_free(m);
	assert_int_equal(released(&o), 2);

	/* to a context that does not exist: dropped (on the broker thread,
	 * so maybe not at once), and released */
	m = mg_message_new_shared(0x7fff0000, 100, raw, len, release, &o);
	assert_non_null(m);
	(void)mg_router_route(r, m);
	for (int i = 0; i < 60000 && released(&o) < 3; i++)
		usleep(1000);
	assert_int_equal(released(&o), 3);
	free(raw);
	mg_receiver_free(rx);
	mg_router_unref(r);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_freed_unsent),
		cmocka_unit_test(test_shared_delivered_here),
	};
	return MG_TEST_RUN("core/message", tests);
}
