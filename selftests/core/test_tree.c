// SPDX-License-Identifier: MIT
/*
 * test_tree.c — trees of contexts (via=): calls three hops deep, ids from
 * the master, ADD_ROUTE on intermediates, authority along the tree,
 * disconnects (SIGKILL of a middle hop, far siblings), size limits
 * inherited by grandchildren, shutdown at any depth.
 *
 * A context is killed only once whoever watches it says it is watching (a
 * message on a sender, not a pause), and how soon a loss is seen is never
 * asserted: only that it is seen, within a generous bound (WAIT_S) that a
 * broken guarantee alone reaches. Contexts are shut down after each test
 * through mg_test_defer, so a failed assertion leaves none behind.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "selftests/lib/harness.h"
#include "core/message.h"

/* Reached only when what must happen does not. */
#define WAIT_S 60.0
#define WAIT_MS 60000

/* --- run in children --------------------------------------------------- */

static int whoami(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	uint32_t ids[16];
	size_t n = mg_parent_ids(ids, 16);
	struct mg_value *l = mg_list();

	mg_list_append(l, mg_int(mg_context_id()));
	for (size_t i = 0; i < n && i < 16; i++)
		mg_list_append(l, mg_int(ids[i]));
	*ret = l;
	return 0;
}
MG_EXPORT(whoami);

static int sleep_ms(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int ms;

	if (mg_value_unpack(args, NULL, "i", &ms) < 0)
		return mg_call_fail(call, EINVAL, "sleep_ms(ms)");
	usleep((useconds_t)ms * 1000);
	return 0;
}
MG_EXPORT(sleep_ms);

static int alloc_ids(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int a = mg_router_allocate_id(mg_call_router(call));
	int b = mg_router_allocate_id(mg_call_router(call));

	if (a < 0 || b < 0)
		return mg_call_fail(call, -(a < 0 ? a : b), "allocate_id");
	*ret = mg_value_build("ii", a, b);
	return 0;
}
MG_EXPORT(alloc_ids);

/* The id of the stream messages for `id` leave this context on. */
static int stream_for(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int64_t id;

	if (mg_value_unpack(args, NULL, "l", &id) < 0)
		return mg_call_fail(call, EINVAL, "stream_for(id)");
	*ret = mg_int(mg_stream_remote_id(mg_router_stream_by_id(mg_call_router(call),
								 (uint32_t)id)));
	return 0;
}
MG_EXPORT(stream_for);

/* Start a local child from here (ids from the master), return its id. */
static int spawn_local(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_local(mg_call_router(call), NULL, &err);

	if (!c)
		return mg_call_fail(call, err.errnum, "%s", err.message);
	*ret = mg_int(mg_context_remote_id(c));
	mg_context_unref(c);
	return 0;
}
MG_EXPORT(spawn_local);

/* Send CALL_FUNCTION(mg.getpid) to dst with the given auth_id. */
static int forge(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_router *r = mg_call_router(call);
	struct mg_receiver *rx = mg_receiver_new(r, NULL);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_message *msg;
	struct mg_value *v = NULL;
	int64_t dst, auth;

	if (mg_value_unpack(args, NULL, "ll", &dst, &auth) < 0)
		return mg_call_fail(call, EINVAL, "forge(dst, auth)");
	msg = mg_message_new((uint32_t)dst, MG_HANDLE_CALL_FUNCTION,
			     MG_LIST(mg_str("mg.getpid"), mg_list()));
	msg->meta.auth_id = (uint32_t)auth;
	msg->meta.reply_to = mg_receiver_handle(rx);
	mg_router_route(r, msg);
	if (mg_receiver_get_data(rx, WAIT_S, &v, &err) == 0)
		*ret = mg_str("ok");
	else
		*ret = mg_strf("%s: %s", mg_error_kind_name(err.kind), err.message);
	mg_value_free(v);
	mg_receiver_free(rx);
	return 0;
}
MG_EXPORT(forge);

/* Claim to our parent that context `id` lives behind us. */
static int forge_route(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_router *r = mg_call_router(call);
	struct mg_message *msg;
	uint32_t parents[64];
	int64_t id;

	if (mg_value_unpack(args, NULL, "l", &id) < 0 || mg_parent_ids(parents, 64) < 1)
		return mg_call_fail(call, EINVAL, "forge_route(id)");
	msg = mg_message_new(parents[0], MG_HANDLE_ADD_ROUTE,
			     MG_LIST(mg_int(id), mg_str("impostor")));
	mg_router_route(r, msg);
	*ret = mg_int(1);
	return 0;
}
MG_EXPORT(forge_route);

/* Tell the test we are watching now: send nil to the sender value `ready`. */
static void say_ready(struct mg_router *r, const struct mg_value *ready)
{
	struct mg_sender *tx = mg_sender_from_value(r, ready);

	mg_sender_send(tx, mg_nil());
	mg_sender_free(tx);
}

/*
 * watch(id, ms, ready): wait up to ms for context id to disconnect,
 * saying on `ready` once watching; "dead: ..." or "alive".
 */
static int watch(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_router *r = mg_call_router(call);
	const struct mg_value *ready;
	int64_t id;
	int ms;
	struct mg_context *ctx;
	struct mg_receiver *rx;
	struct mg_message *msg;
	struct mg_error err = MG_ERROR_INIT;

	if (mg_value_unpack(args, NULL, "liv", &id, &ms, &ready) < 0)
		return mg_call_fail(call, EINVAL, "watch(id, ms, ready)");
	ctx = mg_router_context_by_id(r, (uint32_t)id);
	MG_OPTS(mg_receiver_opts, ro, .respondent = ctx);
	rx = mg_receiver_new(r, &ro);
	say_ready(r, ready);
	if (mg_receiver_get(rx, ms / 1000.0, &msg, &err) == -EPIPE)
		*ret = mg_strf("dead: %s", err.message);
	else
		*ret = mg_str("alive");
	mg_receiver_free(rx);
	mg_context_unref(ctx);
	return 0;
}
MG_EXPORT(watch);

/* watch_many([id, ...], ms, ready): watch each as a respondent, say so on
 * `ready`; how many died. */
static int watch_many(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_router *r = mg_call_router(call);
	const struct mg_value *ids;
	struct mg_receiver *rx[16];
	struct mg_context *ctx[16];
	int64_t dead = 0;
	size_t n;

	if (args->type != MG_LIST || args->len != 3 || (ids = &args->items[0])->type != MG_LIST ||
	    ids->len > 16 || args->items[1].type != MG_INT || args->items[2].type != MG_SENDER)
		return mg_call_fail(call, EINVAL, "watch_many([id, ...], ms, ready)");
	n = ids->len;
	for (size_t i = 0; i < n; i++) {
		MG_OPTS(mg_receiver_opts, ro);

		ctx[i] = mg_router_context_by_id(r, (uint32_t)ids->items[i].i);
		ro.respondent = ctx[i];
		rx[i] = mg_receiver_new(r, &ro);
	}
	say_ready(r, &args->items[2]);
	for (size_t i = 0; i < n; i++) {
		struct mg_message *msg;
		struct mg_error err = MG_ERROR_INIT;

		if (mg_receiver_get(rx[i], args->items[1].i / 1000.0, &msg, &err) == -EPIPE)
			dead++;
		mg_receiver_free(rx[i]);
		mg_context_unref(ctx[i]);
	}
	*ret = mg_int(dead);
	return 0;
}
MG_EXPORT(watch_many);

static int make_bytes(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int64_t n;

	if (mg_value_unpack(args, NULL, "l", &n) < 0 || n < 0)
		return mg_call_fail(call, EINVAL, "make_bytes(n)");
	*ret = mg_bytes_take(calloc(1, (size_t)n + 1), (size_t)n);
	return 0;
}
MG_EXPORT(make_bytes);

/* chan_echo(peer, n): open the other end, announce it, echo n values. */
static int chan_echo(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const struct mg_value *peer;
	struct mg_channel *ch;
	struct mg_value *v = NULL;
	int n, i;

	if (mg_value_unpack(args, NULL, "vi", &peer, &n) < 0)
		return mg_call_fail(call, EINVAL, "chan_echo(peer, n)");
	ch = mg_channel_from_value(mg_call_router(call), peer);
	if (!ch)
		return mg_call_fail(call, errno, "mg_channel_from_value");
	mg_channel_send(ch, mg_channel_to_value(ch));
	for (i = 0; i < n && mg_channel_get_data(ch, WAIT_S, &v, NULL) == 0; i++)
		mg_channel_send(ch, MG_LIST(v, mg_int(mg_context_id())));
	/* Wait for the master to hang up: its close reaches us as dead. */
	if (mg_channel_get_data(ch, WAIT_S, &v, NULL) != -EPIPE)
		i = -1;
	mg_channel_free(ch);
	*ret = mg_int(i);
	return 0;
}
MG_EXPORT(chan_echo);

/* --- helpers ----------------------------------------------------------- */

static struct mg_router *router;

static void stop_ctx(void *c)
{
	mg_context_shutdown(c, true);
	mg_context_unref(c);
}

static void free_rx(void *rx)
{
	mg_receiver_free(rx);
}

static void free_router(void *r)
{
	mg_router_unref(r);
}

static void free_channel(void *ch)
{
	mg_channel_free(ch);
}

/* Started via `via`; shut down after the test (the deepest first). */
static struct mg_context *start_via(struct mg_router *r, struct mg_context *via,
				    const char *name, bool fork_)
{
	struct mg_error err = MG_ERROR_INIT;
	MG_OPTS(mg_local_opts, lo, .remote_name = name, .via = via);
	MG_OPTS(mg_fork_opts, fo, .local = &lo);
	struct mg_context *c = fork_ ? mg_fork(r, &fo, &err) : mg_local(r, &lo, &err);

	if (!c)
		fail_msg("start %s: %s", name, err.message);
	return mg_test_defer(stop_ctx, c);
}

/* A receiver for "watching now" messages, and its sender as a value. */
static struct mg_receiver *ready_rx(struct mg_value **ret_sender)
{
	struct mg_receiver *rx = mg_test_defer(free_rx, mg_receiver_new(router, NULL));
	struct mg_sender *tx;

	assert_non_null(rx);
	tx = mg_receiver_to_sender(rx);
	assert_non_null(tx);
	*ret_sender = mg_sender_to_value(tx);
	mg_sender_free(tx);
	return rx;
}

/* Wait for `n` watchers to say they watch. */
static void wait_ready(struct mg_receiver *rx, int n)
{
	struct mg_message *msg;

	for (int i = 0; i < n; i++) {
		assert_int_equal(mg_receiver_get(rx, WAIT_S, &msg, NULL), 0);
		mg_message_free(msg);
	}
}

static int64_t call_int(struct mg_context *c, const char *fn, struct mg_value *args)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	int64_t i;

	if (mg_call(c, fn, args, &v, &err) < 0)
		fail_msg("%s in %s: %s", fn, mg_context_name(c), err.message);
	assert_int_equal(v->type, MG_INT);
	i = v->i;
	mg_value_free(v);
	return i;
}

static char *call_str(struct mg_context *c, const char *fn, struct mg_value *args)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	char *s;

	if (mg_call(c, fn, args, &v, &err) < 0)
		fail_msg("%s in %s: %s", fn, mg_context_name(c), err.message);
	s = strdup(v->str);
	mg_value_free(v);
	return s;
}


/* --- tests ------------------------------------------------------------- */

static void test_three_hops_deep(void **state)
{
	struct mg_context *c[4];
	struct mg_value *v = NULL;
	uint32_t id[4];

	c[0] = start_via(router, NULL, "hop0", false);
	c[1] = start_via(router, c[0], "hop1", false);
	c[2] = start_via(router, c[1], "hop2", true);
	c[3] = start_via(router, c[2], "hop3", false);
	for (int i = 0; i < 4; i++)
		id[i] = mg_context_remote_id(c[i]);
	/* The master calls the deepest one directly; parent_ids reach it. */
	assert_int_equal(mg_call(c[3], "whoami", NULL, &v, NULL), 0);
	assert_int_equal(v->len, 5);
	assert_int_equal(v->items[0].i, id[3]);
	assert_int_equal(v->items[1].i, id[2]);
	assert_int_equal(v->items[2].i, id[1]);
	assert_int_equal(v->items[3].i, id[0]);
	assert_int_equal(v->items[4].i, 0);
	mg_value_free(v);
	/* The reply came straight back: 100 more calls in a row work. */
	for (int i = 0; i < 100; i++)
		assert_true(call_int(c[3], "mg.getpid", NULL) > 0);
	/* ADD_ROUTE reached every router on the path. */
	assert_int_equal(call_int(c[0], "stream_for", mg_value_build("l", (int64_t)id[3])), id[1]);
	assert_int_equal(call_int(c[1], "stream_for", mg_value_build("l", (int64_t)id[3])), id[2]);
	assert_int_equal(mg_stream_remote_id(mg_router_stream_by_id(router, id[3])), id[0]);
}

static void test_ids_come_from_master(void **state)
{
	struct mg_context *a = start_via(router, NULL, "alloc", false);
	struct mg_value *v = NULL;
	int64_t grandchild, mine;

	assert_int_equal(mg_call(a, "alloc_ids", NULL, &v, NULL), 0);
	mine = mg_router_allocate_id(router);
	assert_true(v->items[0].i < v->items[1].i);
	assert_true(v->items[1].i < mine);	/* one counter, at the master */
	mg_value_free(v);
	/* A child starting its own child gets the id from the master too. */
	grandchild = call_int(a, "spawn_local", NULL);
	assert_true(grandchild > mine);
	assert_true(grandchild < mg_router_allocate_id(router));
	/* ... and the master can route to it (ADD_ROUTE came up). */
	struct mg_context *g = mg_router_context_by_id(router, (uint32_t)grandchild);

	mg_test_defer(stop_ctx, g);
	assert_true(call_int(g, "mg.getpid", NULL) > 0);
}

static void test_authority_along_the_tree(void **state)
{
	struct mg_context *c[4];
	char *s;

	c[0] = start_via(router, NULL, "top", false);
	c[1] = start_via(router, c[0], "kid1", false);
	c[2] = start_via(router, c[0], "kid2", false);
	c[3] = start_via(router, c[1], "grandkid", false);
	uint32_t top = mg_context_remote_id(c[0]), k1 = mg_context_remote_id(c[1]),
		 k2 = mg_context_remote_id(c[2]), g = mg_context_remote_id(c[3]);

	/* A grandchild calling its sibling... refused by the sibling. */
	s = call_str(c[1], "forge", mg_value_build("ll", (int64_t)k2, (int64_t)k1));
	assert_string_equal(s, "CallError: refused by policy: caller lacks authority");
	free(s);
	/* ... its parent: refused. */
	s = call_str(c[1], "forge", mg_value_build("ll", (int64_t)top, (int64_t)k1));
	assert_string_equal(s, "CallError: refused by policy: caller lacks authority");
	free(s);
	/* ... a cousin through two hops: refused. */
	s = call_str(c[3], "forge", mg_value_build("ll", (int64_t)k2, (int64_t)g));
	assert_string_equal(s, "CallError: refused by policy: caller lacks authority");
	free(s);
	/* Borrowing an ancestor's authority is caught at the first hop. */
	s = call_str(c[3], "forge", mg_value_build("ll", (int64_t)k2, (int64_t)top));
	assert_string_equal(s, "CallError: refused by policy: bad auth_id");
	free(s);
	s = call_str(c[3], "forge", mg_value_build("ll", (int64_t)k2, (int64_t)0));
	assert_string_equal(s, "CallError: refused by policy: bad auth_id");
	free(s);
	/* A parent calling down works. */
	s = call_str(c[1], "forge", mg_value_build("ll", (int64_t)g, (int64_t)k1));
	assert_string_equal(s, "ok");
	free(s);
}

/*
 * A grandchild claims, to the intermediate above it, a context that lives
 * elsewhere (its parent's sibling): the intermediate refuses, and keeps
 * sending that context's traffic up. (Believed, the claim would draw every
 * message for that context passing the intermediate to the impostor.)
 */
static void test_forged_route_on_intermediate(void **state)
{
	struct mg_context *c[3];
	char needle[96];
	uint32_t mid, other;

	c[0] = start_via(router, NULL, "fr-mid", false);
	c[1] = start_via(router, c[0], "fr-leaf", false);
	c[2] = start_via(router, NULL, "fr-other", false);
	mid = mg_context_remote_id(c[0]);
	other = mg_context_remote_id(c[2]);
	assert_int_equal(call_int(c[0], "stream_for", mg_value_build("l", (int64_t)other)), 0);

	mg_test_log_capture_start();
	call_int(c[1], "forge_route", mg_value_build("l", (int64_t)other));
	snprintf(needle, sizeof(needle), "refused ADD_ROUTE for context %u: it was not allocated",
		 other);
	if (!mg_test_log_contains(needle, WAIT_S)) {
		mg_test_log_print();
		fail_msg("no refusal logged in context %u", mid);
	}
	mg_test_log_capture_stop();
	/* still routed upwards, and still reachable from the master */
	assert_int_equal(call_int(c[0], "stream_for", mg_value_build("l", (int64_t)other)), 0);
	assert_true(call_int(c[2], "mg.getpid", NULL) > 0);
	/* a real grandchild of the leaf is still believed on the way up */
	assert_true(call_int(c[1], "spawn_local", NULL) > 0);
}

static void test_kill_middle_hop(void **state)
{
	struct mg_context *c[3];
	struct mg_receiver *rx[2];
	struct mg_value *v = NULL;
	struct mg_error err = MG_ERROR_INIT;
	pid_t mid, leaf;
	double t0;

	c[0] = start_via(router, NULL, "m0", false);
	c[1] = start_via(router, c[0], "m1", false);
	c[2] = start_via(router, c[1], "m2", false);
	mid = (pid_t)call_int(c[1], "mg.getpid", NULL);
	leaf = (pid_t)call_int(c[2], "mg.getpid", NULL);
	/* Calls that never finish by themselves: whether they reached their
	 * contexts yet or not, the kill ends them with ChannelError. */
	rx[0] = mg_test_defer(free_rx, mg_call_async(c[1], "sleep_ms",
						     mg_value_build("i", 600000), NULL));
	rx[1] = mg_test_defer(free_rx, mg_call_async(c[2], "sleep_ms",
						     mg_value_build("i", 600000), NULL));
	kill(mid, SIGKILL);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(mg_receiver_get_data(rx[i], WAIT_S, &v, &err), -EPIPE);
		assert_int_equal(err.kind, MG_ERR_CHANNEL);
	}
	/* DEL_ROUTE reached the master: no route to the leaf any more. */
	assert_null(mg_router_stream_by_id(router, mg_context_remote_id(c[2])));
	assert_int_equal(mg_call(c[2], "mg.getpid", NULL, &v, &err), -EPIPE);
	/* The leaf lost its parent and exited. */
	t0 = mg_test_now();
	while (!mg_test_pid_gone(leaf) && mg_test_now() - t0 < WAIT_S)
		usleep(5000);
	assert_true(mg_test_pid_gone(leaf));
	/* The first hop lives on. */
	assert_true(call_int(c[0], "mg.getpid", NULL) > 0);
}

static void test_far_sibling_disconnect_seen(void **state)
{
	struct mg_context *c[5];
	struct mg_receiver *rx;
	struct mg_value *v = NULL;

	c[0] = start_via(router, NULL, "fs0", false);
	c[1] = start_via(router, c[0], "fs-left", false);
	c[2] = start_via(router, c[0], "fs-right", false);
	c[3] = start_via(router, c[2], "fs-far", false);
	c[4] = start_via(router, NULL, "fs-other", false);
	pid_t far = (pid_t)call_int(c[3], "mg.getpid", NULL);

	struct mg_value *ready;
	struct mg_receiver *rdy = ready_rx(&ready);

	/* fs-left watches fs-far (its far sibling's child); fs-other (a
	 * cousin in another subtree of the master) watches it too. */
	rx = mg_test_defer(free_rx, mg_call_async(c[1], "watch",
		mg_value_build("liv", (int64_t)mg_context_remote_id(c[3]), WAIT_MS,
			       mg_value_copy(ready)), NULL));
	struct mg_receiver *rx2 = mg_test_defer(free_rx, mg_call_async(c[4], "watch",
		mg_value_build("liv", (int64_t)mg_context_remote_id(c[3]), WAIT_MS, ready), NULL));
	wait_ready(rdy, 2);
	kill(far, SIGKILL);
	assert_int_equal(mg_receiver_get_data(rx, WAIT_S, &v, NULL), 0);
	assert_non_null(strstr(v->str, "dead: respondent context"));
	mg_value_free(v);
	assert_int_equal(mg_receiver_get_data(rx2, WAIT_S, &v, NULL), 0);
	assert_non_null(strstr(v->str, "dead: respondent context"));
	mg_value_free(v);
}

/*
 * Siblings lost together reach a watching sibling in one DEL_ROUTE
 * carrying all their ids (routes.c batches what goes down): every one of
 * them is seen dead.
 */
static void test_siblings_lost_together_seen(void **state)
{
	struct mg_context *w, *x[4];
	struct mg_value *ids = mg_list(), *v = NULL, *ready;
	struct mg_receiver *rx, *rdy = ready_rx(&ready);
	pid_t pid[4];

	w = start_via(router, NULL, "lt-watcher", false);
	for (int i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "lt-%d", i);
		x[i] = start_via(router, NULL, name, false);
		pid[i] = (pid_t)call_int(x[i], "mg.getpid", NULL);
		mg_list_append(ids, mg_int(mg_context_remote_id(x[i])));
	}
	rx = mg_test_defer(free_rx, mg_call_async(w, "watch_many",
						  MG_LIST(ids, mg_int(WAIT_MS), ready), NULL));
	assert_non_null(rx);
	wait_ready(rdy, 1);
	for (int i = 0; i < 4; i++)
		kill(pid[i], SIGKILL);
	assert_int_equal(mg_receiver_get_data(rx, WAIT_S, &v, NULL), 0);
	assert_int_equal(v->i, 4);
	mg_value_free(v);
}

static void test_limit_inherited_and_shutdown_deep(void **state)
{
	MG_OPTS(mg_router_opts, ro, .max_message_size = 1 << 20);
	struct mg_router *r = mg_test_defer(free_router, mg_router_new(&ro));
	struct mg_context *c[3];
	struct mg_error err = MG_ERROR_INIT;
	pid_t leaf;

	c[0] = start_via(r, NULL, "lim0", false);
	c[1] = start_via(r, c[0], "lim1", false);
	c[2] = start_via(r, c[1], "lim2", false);
	assert_int_equal(mg_call(c[2], "make_bytes", mg_value_build("l", (int64_t)(2 << 20)),
				 NULL, &err), -EPIPE);
	assert_string_equal(err.message, "message too large");
	leaf = (pid_t)call_int(c[2], "mg.getpid", NULL);
	/* Shut the leaf down from the master, three levels up. */
	assert_int_equal(mg_context_shutdown(c[2], true), 0);
	for (double t0 = mg_test_now(); !mg_test_pid_gone(leaf) && mg_test_now() - t0 < WAIT_S;)
		usleep(10000);
	assert_true(mg_test_pid_gone(leaf));
	assert_true(call_int(c[1], "mg.getpid", NULL) > 0);
}

static void test_channel_two_hops(void **state)
{
	struct mg_context *c[3];
	struct mg_channel *ch;
	struct mg_receiver *call;
	struct mg_value *v = NULL;

	c[0] = start_via(router, NULL, "ch0", false);
	c[1] = start_via(router, c[0], "ch1", false);
	c[2] = start_via(router, c[1], "ch2", true);
	ch = mg_test_defer(free_channel, mg_channel_new(router, NULL));
	assert_int_equal(mg_channel_send(ch, mg_int(1)), -ENOTCONN);
	call = mg_test_defer(free_rx, mg_call_async(c[2], "chan_echo",
						    mg_value_build("vi", mg_channel_to_value(ch), 20),
						    NULL));
	/* Its first message names its end: wire ours to it. */
	assert_int_equal(mg_channel_get_data(ch, WAIT_S, &v, NULL), 0);
	assert_int_equal(mg_channel_set_peer(ch, v), 0);
	mg_value_free(v);
	for (int i = 0; i < 20; i++) {
		char want[32];

		snprintf(want, sizeof(want), "ping %d", i);
		assert_int_equal(mg_channel_send(ch, mg_str(want)), 0);
		assert_int_equal(mg_channel_get_data(ch, WAIT_S, &v, NULL), 0);
		assert_string_equal(v->items[0].str, want);
		assert_int_equal(v->items[1].i, mg_context_remote_id(c[2]));
		mg_value_free(v);
	}
	assert_int_equal(mg_channel_close(ch), 0);
	assert_int_equal(mg_receiver_get_data(call, WAIT_S, &v, NULL), 0);
	assert_int_equal(v->i, 20);
	mg_value_free(v);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_hops_deep),
		cmocka_unit_test(test_ids_come_from_master),
		cmocka_unit_test(test_authority_along_the_tree),
		cmocka_unit_test(test_forged_route_on_intermediate),
		cmocka_unit_test(test_kill_middle_hop),
		cmocka_unit_test(test_far_sibling_disconnect_seen),
		cmocka_unit_test(test_siblings_lost_together_seen),
		cmocka_unit_test(test_limit_inherited_and_shutdown_deep),
		cmocka_unit_test(test_channel_two_hops),
	};
	int ret, kids;

	mg_main(argc, argv);
	router = mg_router_new(NULL);
	kids = mg_test_count_children(getpid());
	ret = MG_TEST_RUN("core/tree", tests);
	mg_router_unref(router);
	/* Freeing the router took every child it started with it. */
	if (mg_test_count_children(getpid()) != kids) {
		printf("# %d children left behind after mg_router_unref\n",
		       mg_test_count_children(getpid()) - kids);
		ret = 1;
	}
	return ret;
}
