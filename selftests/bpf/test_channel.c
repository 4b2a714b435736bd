// SPDX-License-Identifier: MIT
/*
 * selftests/bpf/test_channel.c: the eBPF channel filter, for real in the
 * kernel (root, as CI is). With the router's own source checks switched
 * off (router_test_unchecked), forged records from a child never reach
 * the parent and the kernel's drop counters equal the attempts; a forged
 * auth_id going down is dropped at the child's end; counters equal a
 * known workload both ways (and the router's own counts), replies stay
 * replies over thousands of calls in flight; denial events
 * carry the record's fields; the filter cannot be detached once locked;
 * the pinned maps are readable by bpftool; and without privilege the
 * library says once that it falls back, and still refuses forgeries.
 *
 * Where the kernel cannot load the programs at all (no BTF, not root),
 * the kernel tests skip saying why.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "selftests/lib/harness.h"
#include "bpf/loader.h"
#include "core/hooks.h"
#include "core/message.h"
#include "core/wire.h"

#define CHILD_FD 3
/* What must happen happens within this; only a broken guarantee reaches it. */
#define WAIT_S 60.0

/* --- in the child ------------------------------------------------------ */

/*
 * forge(dst, src, auth, handle, count): write count raw one-record
 * messages (payload nil) straight onto the channel to the parent, past the
 * child's own router. Returns how many the socket accepted.
 */
static int forge(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int64_t dst, src, auth, handle, count, sent = 0;
	struct wire_meta m = { 0 };
	uint8_t rec[WIRE_HDR_SIZE + 1];

	if (mg_value_unpack(args, NULL, "lllll", &dst, &src, &auth, &handle, &count) < 0)
		return mg_call_fail(call, EINVAL, "forge(dst, src, auth, handle, count)");
	m.dst_id = (uint32_t)dst;
	m.src_id = (uint32_t)src;
	m.auth_id = (uint32_t)auth;
	m.handle = (uint32_t)handle;
	wire_hdr_pack((struct wire_hdr *)rec, &m, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, 1);
	rec[WIRE_HDR_SIZE] = 0xc0;	/* msgpack nil */
	for (int64_t i = 0; i < count; i++)
		if (send(CHILD_FD, rec, sizeof(rec), MSG_NOSIGNAL) == (ssize_t)sizeof(rec))
			sent++;
	*ret = mg_value_build("l", sent);
	return 0;
}
MG_EXPORT(forge);

/* try_detach(): errno of SO_DETACH_BPF on the child's end (0: detached). */
static int try_detach(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int dummy = 0;
	int e = setsockopt(CHILD_FD, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof(dummy)) < 0
		? errno : 0;

	*ret = mg_value_build("l", (int64_t)e);
	return 0;
}
MG_EXPORT(try_detach);

/* call_parent(): call echo in the parent; the error it fails with. */
static int call_parent(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *p = mg_router_context_by_id(mg_call_router(call), mg_parent_id());
	char text[1200];
	int r;

	r = mg_call(p, "echo", NULL, NULL, &err);
	mg_context_unref(p);
	snprintf(text, sizeof(text), "%s: %s", r == 0 ? "ok" : mg_error_kind_name(err.kind),
		 err.message);
	*ret = mg_value_build("s", text);
	return 0;
}
MG_EXPORT(call_parent);

/* send_up(handle, size, count): count messages of `size` bytes to the parent. */
static int send_up(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int64_t handle, size, count;
	struct mg_router *r = mg_call_router(call);

	if (mg_value_unpack(args, NULL, "lll", &handle, &size, &count) < 0)
		return mg_call_fail(call, EINVAL, "send_up(handle, size, count)");
	for (int64_t i = 0; i < count; i++) {
		void *p = calloc(1, (size_t)size + 1);

		mg_router_route(r, mg_message_new(mg_parent_id(), (uint32_t)handle,
						  mg_bytes_take(p, (size_t)size)));
	}
	return 0;
}
MG_EXPORT(send_up);

/* --- helpers ----------------------------------------------------------- */

static struct mg_router *router;
static struct mg_context *child;

static int setup(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	mg_test_log_capture_start();
	router = mg_router_new(NULL);
	if (!router)
		return -1;
	child = mg_local(router, NULL, &err);
	if (!child) {
		fprintf(stderr, "# mg_local: %s\n", err.message);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	router_test_unchecked = false;
	mg_context_shutdown(child, true);
	mg_context_unref(child);
	mg_router_unref(router);
	mg_test_log_capture_stop();
	return 0;
}

static void need_kernel(void)
{
	if (!bpfload_active()) {
		fprintf(stderr, "# SKIP: eBPF filters are off here: %s\n", bpfload_off_reason());
		skip();
	}
}

/* Row of the channel of context id (context MG_STATS_CHANNEL: totals). */
static const struct mg_stats_row *row_of(const struct mg_router_stats *st, uint32_t child_id,
					 uint32_t ctx)
{
	for (size_t i = 0; i < st->nrows; i++)
		if (st->rows[i].child_id == child_id && st->rows[i].context_id == ctx &&
		    st->rows[i].channel != 0)
			return &st->rows[i];
	return NULL;
}

static uint64_t sum(const uint64_t *v, int n)
{
	uint64_t s = 0;

	for (int i = 0; i < n; i++)
		s += v[i];
	return s;
}

/* Messages the parent process itself read from the child (user space). */
static uint64_t user_rx_msgs(uint32_t id)
{
	struct mg_router_stats *st = NULL;
	const struct mg_stats_row *row;
	uint64_t n;

	assert_int_equal(acct_snapshot(router, &st), 0);
	row = row_of(st, id, MG_STATS_CHANNEL);
	n = row ? sum(row->dir[MG_STATS_UP].msgs, MG_STATS_NCLASS) : 0;
	mg_router_stats_free(st);
	return n;
}

static int64_t call_forge(uint32_t dst, uint32_t src, uint32_t auth, uint32_t handle, int n)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *out = NULL;
	int64_t sent = -1;

	assert_int_equal(mg_call(child, "forge", mg_value_build("lllll", (int64_t)dst,
			 (int64_t)src, (int64_t)auth, (int64_t)handle, (int64_t)n), &out, &err), 0);
	assert_int_equal(mg_value_unpack(out, NULL, "l", &sent), 0);
	mg_value_free(out);
	return sent;
}

/* --- tests ------------------------------------------------------------- */

/*
 * Forged src_id, forged auth_id, CALL_FUNCTION to the parent: with the
 * router's checks off only the kernel stands in the way. The parent reads
 * nothing of them (its own receive count moves by the forge call's reply
 * alone) and the drop counters equal the attempts.
 */
static void test_forged_up_dropped_in_kernel(void **state)
{
	uint32_t id = mg_context_remote_id(child);
	struct mg_router_stats *st = NULL;
	const struct mg_stats_row *row;
	uint64_t before;

	need_kernel();
	router_test_unchecked = true;
	before = user_rx_msgs(id);
	assert_int_equal(call_forge(0, 4000, id, 5000, 3), 3);		/* src_id */
	assert_int_equal(call_forge(0, id, 4001, 5000, 4), 4);		/* auth_id */
	assert_int_equal(call_forge(0, id, id, MG_HANDLE_CALL_FUNCTION, 5), 5);
	/* Three calls, three replies: nothing else came up. */
	assert_int_equal(user_rx_msgs(id) - before, 3);

	assert_int_equal(mg_router_stats(router, &st), 0);
	assert_true(st->kernel);
	row = row_of(st, id, MG_STATS_CHANNEL);
	assert_non_null(row);
	assert_int_equal(row->dir[MG_STATS_UP].drops[MG_DROP_SRC_ID], 3);
	assert_int_equal(row->dir[MG_STATS_UP].drops[MG_DROP_AUTH_ID], 4);
	assert_int_equal(row->dir[MG_STATS_UP].drops[MG_DROP_PRIV_UP], 5);
	assert_int_equal(row->dir[MG_STATS_UP].drops[MG_DROP_MALFORMED], 0);
	assert_int_equal(row->dir[MG_STATS_DOWN].drops[MG_DROP_NO_AUTHORITY], 0);
	/* Drops are charged to the channel's child. */
	row = row_of(st, id, id);
	assert_non_null(row);
	assert_int_equal(sum(row->dir[MG_STATS_UP].drops, MG_STATS_NDROP), 12);
	mg_router_stats_free(st);
}

/* Control: the same forgery with the kernel filter off does reach the
 * parent (so the test above can fail), and the router's checks refuse it. */
static void test_forged_up_without_kernel_reaches_router(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c;
	struct mg_context *saved = child;
	struct mg_router_stats *st = NULL;
	const struct mg_stats_row *row;
	uint32_t id;

	bpfload_set_enabled(false);
	c = mg_local(router, NULL, &err);
	bpfload_set_enabled(true);
	assert_non_null(c);
	child = c;
	id = mg_context_remote_id(c);
	assert_int_equal(call_forge(0, 4000, id, 5000, 3), 3);
	assert_int_equal(call_forge(0, id, 4001, 5000, 4), 4);
	assert_int_equal(mg_router_stats(router, &st), 0);
	/* Not a kernel channel: its row, if any, is from the kernel of the
	 * first child only; the router's own counts tell what happened. */
	mg_router_stats_free(st);
	assert_int_equal(acct_snapshot(router, &st), 0);
	row = row_of(st, id, MG_STATS_CHANNEL);
	assert_non_null(row);
	assert_int_equal(row->dir[MG_STATS_UP].drops[MG_DROP_SRC_ID], 3);
	assert_int_equal(row->dir[MG_STATS_UP].drops[MG_DROP_AUTH_ID], 4);
	mg_router_stats_free(st);
	assert_true(mg_test_log_contains("spoofed src_id 4000", 2.0));
	child = saved;
	mg_context_shutdown(c, true);
	mg_context_unref(c);
}

struct denials {
	pthread_mutex_t lock;
	struct mg_denial d[16];
	int n;
};

static void on_denial(const struct mg_denial *d, void *userdata)
{
	struct denials *ds = userdata;

	pthread_mutex_lock(&ds->lock);
	if (ds->n < 16)
		ds->d[ds->n++] = *d;
	pthread_mutex_unlock(&ds->lock);
}

static int wait_denials(struct denials *ds, int n, double secs)
{
	double end = mg_test_now() + secs;
	int got;

	for (;;) {
		pthread_mutex_lock(&ds->lock);
		got = ds->n;
		pthread_mutex_unlock(&ds->lock);
		if (got >= n || mg_test_now() > end)
			return got;
		usleep(2000);
	}
}

/*
 * A CALL_FUNCTION from the parent with a forged auth_id never reaches the
 * child: dropped at the child's end, counted, reported through the ring
 * buffer with the record's fields, and answered by the parent (src_id 0,
 * where the child's own policy would answer from the child) with the
 * refusal the router gives.
 */
static void test_forged_auth_down_dropped_at_child(void **state)
{
	uint32_t id = mg_context_remote_id(child);
	struct denials ds = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mg_receiver *rx;
	struct mg_message *msg, *reply = NULL;
	struct mg_router_stats *st = NULL;
	const struct mg_stats_row *row;
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	uint64_t t0 = 0;
	struct timespec ts;

	need_kernel();
	assert_int_equal(mg_router_on_denial(router, on_denial, &ds), 0);
	rx = mg_receiver_new(router, NULL);
	assert_non_null(rx);
	msg = mg_message_new(id, MG_HANDLE_CALL_FUNCTION, MG_LIST(mg_str("echo"), mg_list()));
	assert_non_null(msg);
	msg->meta.src_id = 0;
	msg->meta.auth_id = 4242;
	msg->meta.reply_to = mg_receiver_handle(rx);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	assert_int_equal(mg_router_route(router, msg), 0);
	assert_int_equal(mg_receiver_get(rx, 5.0, &reply, NULL), 0);
	mg_receiver_free(rx);
	assert_int_equal(mg_message_src_id(reply), 0);
	assert_int_equal(mg_message_value(reply, true, &v, &err), -EREMOTEIO);
	assert_non_null(strstr(err.message, "refused by policy: caller lacks authority"));
	mg_message_free(reply);

	assert_int_equal(mg_router_stats(router, &st), 0);
	row = row_of(st, id, MG_STATS_CHANNEL);
	assert_non_null(row);
	assert_int_equal(row->dir[MG_STATS_DOWN].drops[MG_DROP_NO_AUTHORITY], 1);
	mg_router_stats_free(st);

	assert_int_equal(wait_denials(&ds, 1, 2.0), 1);
	assert_int_equal(ds.d[0].dir, MG_STATS_DOWN);
	assert_int_equal(ds.d[0].reason, MG_DROP_NO_AUTHORITY);
	assert_int_equal(ds.d[0].child_id, id);
	assert_int_equal(ds.d[0].dst_id, id);
	assert_int_equal(ds.d[0].src_id, 0);
	assert_int_equal(ds.d[0].auth_id, 4242);
	assert_int_equal(ds.d[0].handle, MG_HANDLE_CALL_FUNCTION);
	assert_true(ds.d[0].len > WIRE_HDR_SIZE);
	assert_true(ds.d[0].time_ns >= t0);
	assert_true(mg_test_log_contains("down: kernel refused handle 101 to context", 2.0));

	/* Events up too: a forged src_id. */
	router_test_unchecked = true;
	assert_int_equal(call_forge(0, 4000, 4001, 5000, 1), 1);
	assert_int_equal(wait_denials(&ds, 2, 2.0), 2);
	assert_int_equal(ds.d[1].dir, MG_STATS_UP);
	assert_int_equal(ds.d[1].reason, MG_DROP_SRC_ID);
	assert_int_equal(ds.d[1].src_id, 4000);
	assert_int_equal(ds.d[1].auth_id, 4001);
	assert_int_equal(ds.d[1].handle, 5000);
	assert_int_equal(ds.d[1].len, WIRE_HDR_SIZE + 1);
	mg_router_on_denial(router, NULL, NULL);
}

/*
 * Requests the kernel drops on their way up are still answered as the
 * router answers the ones it refuses: a CallError naming the rule, sent to
 * the child that really sent them (DESIGN §5), with the router's own
 * checks off.
 */
static void test_refusals_still_answered(void **state)
{
	uint32_t id = mg_context_remote_id(child);
	struct mg_router_stats *st = NULL;
	const struct mg_stats_row *row;
	struct mg_value *out = NULL;
	const char *text = NULL;
	uint64_t before;

	need_kernel();
	router_test_unchecked = true;
	before = user_rx_msgs(id);
	assert_int_equal(mg_call(child, "call_parent", NULL, &out, NULL), 0);
	assert_int_equal(mg_value_unpack(out, NULL, "s", &text), 0);
	assert_string_equal(text, "CallError: refused by policy: caller lacks authority");
	mg_value_free(out);
	/* Only the call_parent reply came up: the call to the parent did not. */
	assert_int_equal(user_rx_msgs(id) - before, 1);
	assert_int_equal(mg_router_stats(router, &st), 0);
	row = row_of(st, id, MG_STATS_CHANNEL);
	assert_non_null(row);
	assert_int_equal(row->dir[MG_STATS_UP].drops[MG_DROP_PRIV_UP], 1);
	mg_router_stats_free(st);
}

/*
 * Two routers on one broker, each with a child: a denial on the second
 * router's channel reaches the second router's callback (and only it),
 * also after the first router is gone.
 */
static void test_denials_two_routers_one_broker(void **state)
{
	struct denials d1 = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct denials d2 = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_broker *b = mg_broker_new(NULL);
	MG_OPTS(mg_router_opts, ro, .broker = b);
	struct mg_router *r1 = mg_router_new(&ro), *r2 = mg_router_new(&ro);
	struct mg_context *c1, *c2, *saved = child;
	uint32_t id2;

	need_kernel();
	assert_non_null(r1);
	assert_non_null(r2);
	c1 = mg_local(r1, NULL, &err);
	c2 = mg_local(r2, NULL, &err);
	assert_non_null(c1);
	assert_non_null(c2);
	id2 = mg_context_remote_id(c2);
	mg_router_on_denial(r1, on_denial, &d1);
	mg_router_on_denial(r2, on_denial, &d2);
	router_test_unchecked = true;
	child = c2;
	assert_int_equal(call_forge(0, 4000, id2, 5000, 1), 1);
	assert_int_equal(wait_denials(&d2, 1, 2.0), 1);
	assert_int_equal(d2.d[0].child_id, id2);
	/* The first router goes; the second still hears its denials. */
	mg_context_shutdown(c1, true);
	mg_context_unref(c1);
	mg_router_unref(r1);
	assert_int_equal(call_forge(0, 4000, id2, 5000, 1), 1);
	assert_int_equal(wait_denials(&d2, 2, 2.0), 2);
	assert_int_equal(d1.n, 0);
	child = saved;
	mg_context_shutdown(c2, true);
	mg_context_unref(c2);
	mg_router_unref(r2);
	mg_broker_unref(b);
}

static void count_denial(const struct mg_denial *d, void *userdata)
{
	__atomic_add_fetch((int *)userdata, 1, __ATOMIC_RELAXED);
}

static void stall(void *arg)
{
	usleep(300000);
}

/* A burst of 300 denials while the broker is busy (more than one read of
 * the ring buffer takes): every one reaches the callback. */
static void test_denial_burst_all_reported(void **state)
{
	uint32_t id = mg_context_remote_id(child);
	int n = 0;

	need_kernel();
	router_test_unchecked = true;
	assert_int_equal(mg_router_on_denial(router, count_denial, &n), 0);
	assert_int_equal(mg_broker_defer(mg_router_broker(router), stall, NULL), 0);
	assert_int_equal(call_forge(0, 4000, id, 5000, 300), 300);
	for (double end = mg_test_now() + WAIT_S; __atomic_load_n(&n, __ATOMIC_RELAXED) < 300 &&
	     mg_test_now() < end;)
		usleep(2000);
	mg_router_on_denial(router, NULL, NULL);
	assert_int_equal(n, 300);
}

static void on_data(struct mg_message *msg, void *userdata)
{
	int *n = userdata;

	__atomic_add_fetch(n, 1, __ATOMIC_RELAXED);
	mg_message_free(msg);
}

/* Wire bytes of one message of a bytes value of n bytes. */
static uint64_t wire_bytes(size_t n)
{
	size_t hdr = n < 256 ? 2 : n < 65536 ? 3 : 5;
	size_t len = n + hdr;

	return len + WIRE_HDR_SIZE * wire_records(len);
}

/*
 * A known workload, both ways: 3 x 100000 bytes and 5 x 10 bytes of user
 * data each way. The kernel's data counters equal it exactly, per channel
 * and per context, and every counter equals what the router counted itself.
 */
/* Do the kernel's and the router's rows for channel child_id agree? */
static bool rows_agree(const struct mg_router_stats *k, const struct mg_router_stats *u,
		       uint32_t child_id)
{
	const struct mg_stats_row *a = row_of(k, child_id, MG_STATS_CHANNEL);
	const struct mg_stats_row *b = row_of(u, child_id, MG_STATS_CHANNEL);

	if (!a || !b)
		return false;
	for (int d = 0; d < 2; d++)
		for (int c = 0; c < MG_STATS_NCLASS; c++)
			if (a->dir[d].msgs[c] != b->dir[d].msgs[c] ||
			    a->dir[d].bytes[c] != b->dir[d].bytes[c])
				return false;
	return true;
}

/*
 * The kernel's and the router's counts of channel child_id, taken once
 * they agree (at most 5 s): the kernel counts a record as it is sent, the
 * router as it handles it, so a record in flight (a log line the child
 * forwards late on a loaded machine) shows in one and not yet the other.
 * Returns the last pair taken either way; the caller asserts.
 */
static void settled_snapshots(uint32_t child_id, struct mg_router_stats **ret_k,
			      struct mg_router_stats **ret_u)
{
	double end = mg_test_now() + WAIT_S;

	for (;;) {
		assert_int_equal(mg_router_stats(router, ret_k), 0);
		assert_int_equal(acct_snapshot(router, ret_u), 0);
		if (rows_agree(*ret_k, *ret_u, child_id) || mg_test_now() >= end)
			return;
		mg_router_stats_free(*ret_k);
		mg_router_stats_free(*ret_u);
		usleep(10000);
	}
}

static void test_counters_exact(void **state)
{
	uint32_t id = mg_context_remote_id(child);
	struct mg_router_stats *k0 = NULL, *k1 = NULL, *u1 = NULL;
	const struct mg_stats_row *a, *b, *u;
	uint64_t want_bytes = 3 * wire_bytes(100000) + 5 * wire_bytes(10);
	int got = 0, handle;
	MG_OPTS(mg_handler_opts, ho, .handle = 0);

	need_kernel();
	handle = mg_router_add_handler(router, on_data, &got, &ho);
	assert_true(handle > 0);
	assert_int_equal(mg_router_stats(router, &k0), 0);
	a = row_of(k0, id, MG_STATS_CHANNEL);
	assert_non_null(a);

	for (int i = 0; i < 3; i++)
		assert_int_equal(mg_context_send(child, mg_message_new(id, 7000,
				 mg_bytes_take(calloc(1, 100001), 100000))), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(mg_context_send(child, mg_message_new(id, 7000,
				 mg_bytes("0123456789", 10))), 0);
	assert_int_equal(mg_call(child, "send_up", mg_value_build("lll", (int64_t)handle,
			 (int64_t)100000, (int64_t)3), NULL, NULL), 0);
	assert_int_equal(mg_call(child, "send_up", mg_value_build("lll", (int64_t)handle,
			 (int64_t)10, (int64_t)5), NULL, NULL), 0);
	for (double end = mg_test_now() + WAIT_S; __atomic_load_n(&got, __ATOMIC_RELAXED) < 8 &&
	     mg_test_now() < end;)
		usleep(1000);
	assert_int_equal(got, 8);
	/* The child logs its "invalid handle 7000" warnings: let them come. */
	assert_true(mg_test_log_contains("invalid handle 7000", WAIT_S));
	settled_snapshots(id, &k1, &u1);
	assert_true(k1->kernel);
	assert_false(u1->kernel);
	b = row_of(k1, id, MG_STATS_CHANNEL);
	u = row_of(u1, id, MG_STATS_CHANNEL);
	assert_non_null(b);
	assert_non_null(u);
	for (int d = 0; d < 2; d++) {
		assert_int_equal(b->dir[d].msgs[MG_STATS_DATA] - a->dir[d].msgs[MG_STATS_DATA], 8);
		assert_int_equal(b->dir[d].bytes[MG_STATS_DATA] - a->dir[d].bytes[MG_STATS_DATA],
				 want_bytes);
		/* The kernel and the router agree on everything that passed. */
		for (int c = 0; c < MG_STATS_NCLASS; c++) {
			assert_int_equal(b->dir[d].msgs[c], u->dir[d].msgs[c]);
			assert_int_equal(b->dir[d].bytes[c], u->dir[d].bytes[c]);
		}
	}
	/* Two calls down, their two replies up (plus earlier traffic). */
	assert_int_equal(b->dir[MG_STATS_DOWN].msgs[MG_STATS_CALL] -
			 a->dir[MG_STATS_DOWN].msgs[MG_STATS_CALL], 2);
	assert_int_equal(b->dir[MG_STATS_UP].msgs[MG_STATS_REPLY] -
			 a->dir[MG_STATS_UP].msgs[MG_STATS_REPLY], 2);
	/* Per context: the child is the only context behind its channel. */
	b = row_of(k1, id, id);
	assert_non_null(b);
	assert_true(b->dir[MG_STATS_UP].bytes[MG_STATS_DATA] >= want_bytes);
	mg_router_stats_free(k0);
	mg_router_stats_free(k1);
	mg_router_stats_free(u1);
	mg_router_del_handler(router, (uint32_t)handle);
}

/*
 * Reply accounting stays exact over a long run with many calls in flight:
 * 20 rounds of 250 calls at once on one channel (5,000 calls, past where
 * the router used to forget every reply handle it had noted), and every
 * reply counts as a reply, and a message to handle 0 as data, in the
 * router and in the kernel alike.
 */
static void test_replies_counted_past_many_calls(void **state)
{
	enum { ROUNDS = 20, INFLIGHT = 250 };
	struct mg_error err = MG_ERROR_INIT;
	uint32_t id = mg_context_remote_id(child);
	struct mg_router_stats *u0 = NULL, *k1 = NULL, *u1 = NULL;
	struct mg_receiver *rx[INFLIGHT];
	struct mg_value *vals[INFLIGHT];
	const struct mg_stats_row *a, *u, *k;

	assert_int_equal(acct_snapshot(router, &u0), 0);
	a = row_of(u0, id, MG_STATS_CHANNEL);
	assert_non_null(a);
	/* One message up to handle 0 (no handle at all): data, not a reply
	 * (0 also marks a free slot of the router's table). */
	assert_int_equal(mg_call(child, "send_up", mg_value_build("lll", (int64_t)0,
			 (int64_t)10, (int64_t)1), NULL, NULL), 0);
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < INFLIGHT; i++) {
			rx[i] = mg_call_async(child, "mg.getpid", NULL, &err);
			assert_non_null(rx[i]);
		}
		assert_int_equal(mg_select_all(rx, INFLIGHT, 10.0, vals, NULL, &err), 0);
		for (int i = 0; i < INFLIGHT; i++) {
			mg_value_free(vals[i]);
			mg_receiver_free(rx[i]);
		}
	}
	settled_snapshots(id, &k1, &u1);
	u = row_of(u1, id, MG_STATS_CHANNEL);
	assert_non_null(u);
	/* The calls' replies, and send_up's own. */
	assert_int_equal(u->dir[MG_STATS_UP].msgs[MG_STATS_REPLY] -
			 a->dir[MG_STATS_UP].msgs[MG_STATS_REPLY], ROUNDS * INFLIGHT + 1);
	assert_int_equal(u->dir[MG_STATS_UP].msgs[MG_STATS_DATA] -
			 a->dir[MG_STATS_UP].msgs[MG_STATS_DATA], 1);
	if (k1->kernel) {
		k = row_of(k1, id, MG_STATS_CHANNEL);
		assert_non_null(k);
		for (int c = 0; c < MG_STATS_NCLASS; c++)
			assert_int_equal(k->dir[MG_STATS_UP].msgs[c], u->dir[MG_STATS_UP].msgs[c]);
	} else {
		fprintf(stderr, "# kernel side not compared: %s\n", bpfload_off_reason());
	}
	mg_router_stats_free(u0);
	mg_router_stats_free(k1);
	mg_router_stats_free(u1);
}

/*
 * A tree through the child (via=), debug on: nothing honest is dropped
 * anywhere on the way (the filter learns the grandchild's ADD_ROUTE as it
 * passes), and the grandchild's traffic is counted under its own id on the
 * child's channel.
 */
static void test_via_tree_nothing_dropped(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	uint32_t id = mg_context_remote_id(child), gid;
	MG_OPTS(mg_local_opts, lo, .via = child, .debug = true);
	struct mg_context *g;
	struct mg_router_stats *st = NULL;
	const struct mg_stats_row *row;
	uint64_t drops = 0;

	need_kernel();
	g = mg_local(router, &lo, &err);
	assert_non_null(g);
	gid = mg_context_remote_id(g);
	for (int i = 0; i < 20; i++)
		assert_int_equal(mg_call(g, "mg.getpid", NULL, NULL, NULL), 0);
	assert_int_equal(mg_router_stats(router, &st), 0);
	for (size_t i = 0; i < st->nrows; i++)
		for (int d = 0; d < 2; d++)
			drops += sum(st->rows[i].dir[d].drops, MG_STATS_NDROP);
	assert_int_equal(drops, 0);
	row = row_of(st, id, gid);
	assert_non_null(row);
	assert_true(row->dir[MG_STATS_DOWN].msgs[MG_STATS_CALL] >= 20);
	assert_true(row->dir[MG_STATS_UP].msgs[MG_STATS_REPLY] >= 20);
	mg_router_stats_free(st);
	mg_context_shutdown(g, true);
	mg_context_unref(g);
}

/*
 * A child forges a DEL_ROUTE to its sibling (honest src_id and auth_id):
 * the parent relays it down, and the filter at the sibling's end drops it
 * (no parent authority). With the filter off, the sibling's router
 * refuses it itself.
 */
static void test_sibling_del_route_dropped(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	uint32_t id = mg_context_remote_id(child), sid;
	struct mg_context *sib, *off;
	struct mg_router_stats *st = NULL;
	const struct mg_stats_row *row;

	need_kernel();
	sib = mg_local(router, NULL, &err);
	assert_non_null(sib);
	sid = mg_context_remote_id(sib);
	assert_int_equal(call_forge(sid, id, id, MG_HANDLE_DEL_ROUTE, 2), 2);
	assert_int_equal(mg_call(sib, "mg.getpid", NULL, NULL, NULL), 0);
	assert_int_equal(mg_router_stats(router, &st), 0);
	row = row_of(st, sid, MG_STATS_CHANNEL);
	assert_non_null(row);
	assert_int_equal(row->dir[MG_STATS_DOWN].drops[MG_DROP_NO_AUTHORITY], 2);
	row = row_of(st, id, MG_STATS_CHANNEL);
	assert_int_equal(sum(row->dir[MG_STATS_UP].drops, MG_STATS_NDROP), 0);
	mg_router_stats_free(st);

	bpfload_set_enabled(false);
	off = mg_local(router, NULL, &err);
	bpfload_set_enabled(true);
	assert_non_null(off);
	assert_int_equal(call_forge(mg_context_remote_id(off), id, id, MG_HANDLE_DEL_ROUTE, 1),
			 1);
	assert_true(mg_test_log_contains("refused DEL_ROUTE from", 3.0));
	mg_context_shutdown(off, true);
	mg_context_unref(off);
	mg_context_shutdown(sib, true);
	mg_context_unref(sib);
}

/*
 * The hook on a bare socket pair, parent's end only (child_fd -1, as for a
 * connect-back): a forged record never becomes readable on the parent's
 * end, an honest one does, and the drop is counted on that channel.
 */
static void test_parent_end_only_bare_socketpair(void **state)
{
	struct wire_meta m = { .dst_id = 0, .src_id = 777, .auth_id = 777, .handle = 5000 };
	struct mg_router_stats *st = NULL;
	const struct mg_stats_row *row;
	uint8_t rec[WIRE_HDR_SIZE + 1], buf[64];
	int sv[2];

	need_kernel();
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(hooks_child_channel(router, 777, sv[0], -1), 0);
	rec[WIRE_HDR_SIZE] = 0xc0;
	m.src_id = 778;		/* not behind this channel */
	wire_hdr_pack((struct wire_hdr *)rec, &m, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, 1);
	assert_int_equal(send(sv[1], rec, sizeof(rec), 0), (ssize_t)sizeof(rec));
	assert_int_equal(recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	m.src_id = 777;
	wire_hdr_pack((struct wire_hdr *)rec, &m, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, 1);
	assert_int_equal(send(sv[1], rec, sizeof(rec), 0), (ssize_t)sizeof(rec));
	assert_int_equal(recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT), (ssize_t)sizeof(rec));
	assert_int_equal(mg_router_stats(router, &st), 0);
	row = row_of(st, 777, MG_STATS_CHANNEL);
	assert_non_null(row);
	assert_int_equal(row->dir[MG_STATS_UP].drops[MG_DROP_SRC_ID], 1);
	assert_int_equal(row->dir[MG_STATS_UP].msgs[MG_STATS_DATA], 1);
	mg_router_stats_free(st);
	hooks_channel_closed(router, sv[0]);
	close(sv[0]);
	close(sv[1]);
}

/* SO_LOCK_FILTER: the child cannot take the filter off its end. */
static void test_filter_locked(void **state)
{
	struct mg_value *out = NULL;
	int64_t e = -1;

	need_kernel();
	assert_int_equal(mg_call(child, "try_detach", NULL, &out, NULL), 0);
	assert_int_equal(mg_value_unpack(out, NULL, "l", &e), 0);
	mg_value_free(out);
	assert_int_equal(e, EPERM);
}

/* bpftool reads the pinned maps from outside the process. */
static void test_pinned_maps_bpftool(void **state)
{
	char cmd[512], buf[65536];
	size_t n;
	FILE *f;
	int rc;

	need_kernel();
	assert_true(bpfload_pin_path()[0] != '\0');
	snprintf(cmd, sizeof(cmd), "bpftool map dump pinned %s/chans 2>&1", bpfload_pin_path());
	f = popen(cmd, "r");
	if (!f) {
		fprintf(stderr, "# SKIP: cannot run bpftool\n");
		skip();
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	rc = pclose(f);
	if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127) {
		fprintf(stderr, "# SKIP: no bpftool\n");
		skip();
	}
	assert_int_equal(rc, 0);
	/*
	 * BTF-formatted: field names of struct mgb_chan and of the counts it
	 * holds (a channel's totals and its child's) appear, per CPU.
	 */
	assert_non_null(strstr(buf, "\"child_id\""));
	assert_non_null(strstr(buf, "\"total\""));
	assert_non_null(strstr(buf, "\"msgs\""));
	assert_non_null(strstr(buf, "\"drops\""));
	assert_non_null(strstr(buf, "\"cpu\""));
	snprintf(cmd, sizeof(cmd), "bpftool map show pinned %s/counts >/dev/null 2>&1",
		 bpfload_pin_path());
	assert_int_equal(system(cmd), 0);
}

static const char *tool_path(char *buf, size_t size)
{
	const char *p = getenv("MITOGEN_BIN");

	if (p)
		return p;
	p = getenv("MG_TEST_BUILD_DIR");
	snprintf(buf, size, "%s/mitogen", p ? p : "build");
	return buf;
}

/*
 * `mitogen stats --pid N` reads this process's pinned maps from outside:
 * the channel's row shows the messages the kernel counted, and the last
 * denials list the forged record.
 */
static void test_tool_stats(void **state)
{
	uint32_t id = mg_context_remote_id(child);
	struct mg_router_stats *st = NULL;
	const struct mg_stats_row *row;
	char cmd[512], tool[256], buf[8192], want[160];
	size_t n;
	FILE *f;

	need_kernel();
	if (access(tool_path(tool, sizeof(tool)), X_OK) < 0) {
		fprintf(stderr, "# SKIP: no tool at %s\n", tool);
		skip();
	}
	router_test_unchecked = true;
	assert_int_equal(call_forge(0, 4000, id, 5000, 2), 2);
	assert_int_equal(mg_router_stats(router, &st), 0);
	row = row_of(st, id, MG_STATS_CHANNEL);
	assert_non_null(row);
	snprintf(want, sizeof(want), " %llu ",
		 (unsigned long long)sum(row->dir[MG_STATS_DOWN].bytes, MG_STATS_NCLASS));
	mg_router_stats_free(st);
	snprintf(cmd, sizeof(cmd), "%s stats --pid %d 2>&1", tool, (int)getpid());
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	assert_int_equal(pclose(f), 0);
	assert_non_null(strstr(buf, "(kernel-backed: "));
	assert_non_null(strstr(buf, "(channel)"));
	/* Down bytes of the channel: nothing moved down since the snapshot. */
	if (!strstr(buf, want)) {
		fprintf(stderr, "%s", buf);
		fail_msg("no '%s' in the table", want);
	}
	assert_non_null(strstr(buf, "src_id        dst_id 0 src_id 4000"));
	/* A pid with no maps: exit 3 and a reason. */
	snprintf(cmd, sizeof(cmd), "%s stats --pid 1 >/dev/null 2>&1", tool);
	assert_int_equal(WEXITSTATUS(system(cmd)), 3);
	snprintf(cmd, sizeof(cmd), "%s stats --bogus >/dev/null 2>&1", tool);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
}

/* A process's pins exist while it has channels and go with its last router. */
static void pins_lifetime(void *arg)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = mg_router_new(NULL);
	struct mg_context *c;
	char dir[128];

	assert_non_null(r);
	c = mg_fork(r, NULL, &err);
	assert_non_null(c);
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/mitogen/%d", (int)getpid());
	assert_string_equal(bpfload_pin_path(), dir);
	assert_int_equal(access(dir, F_OK), 0);
	assert_int_equal(mg_call(c, "mg.getpid", NULL, NULL, NULL), 0);
	mg_context_shutdown(c, true);
	mg_context_unref(c);
	mg_router_unref(r);
	assert_int_equal(access(dir, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_pins_removed_with_last_router(void **state)
{
	int status = 0;

	need_kernel();
	assert_int_equal(mg_test_in_child(pins_lifetime, NULL, 30, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* --- unprivileged ------------------------------------------------------ */

static int fallback_lines;

static void count_fallback(enum mg_log_level level, const char *source, const char *line,
			   void *userdata)
{
	if (strstr(line, "eBPF channel filters off"))
		__atomic_add_fetch(&fallback_lines, 1, __ATOMIC_RELAXED);
	if (strstr(line, "eBPF channel filters off: no CAP_BPF"))
		__atomic_add_fetch((int *)userdata, 1, __ATOMIC_RELAXED);
}

/*
 * `mitogen stats --pid <self>`, run as the same unprivileged user, shows
 * this process's own counters, not kernel-backed, with the 3 refused
 * records as drops up on the channel of context id.
 */
static void tool_sees_user_counters(uint32_t id)
{
	char cmd[512], tool[256], line[512];
	unsigned long long up_msgs, up_bytes, up_drops;
	bool header = false, row = false;
	unsigned chan;
	char ctx[32];
	FILE *f;

	if (access(tool_path(tool, sizeof(tool)), X_OK) < 0) {
		fprintf(stderr, "# no tool at %s: not checked\n", tool);
		return;
	}
	snprintf(cmd, sizeof(cmd), "%s stats --pid %d 2>&1", tool, (int)getpid());
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "(user-space counters, not kernel-backed"))
			header = true;
		if (sscanf(line, "%u %31s %llu %llu %llu", &chan, ctx, &up_msgs, &up_bytes,
			   &up_drops) == 5 && chan == id && !strcmp(ctx, "(channel)")) {
			row = true;
			assert_int_equal(up_drops, 3);
			assert_true(up_msgs > 0 && up_bytes > up_msgs * WIRE_HDR_SIZE);
		}
	}
	assert_int_equal(pclose(f), 0);
	assert_true(header);
	assert_true(row);
}

static void unprivileged(void *arg)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r;
	struct mg_context *a, *b;
	struct mg_router_stats *st = NULL;
	struct mg_value *out = NULL;
	int caps_line = 0;
	int64_t sent = 0;

	if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
	    setresuid(65534, 65534, 65534) < 0)
		abort();
	/* As a process started by that user is: changing uid cleared it, and
	 * /proc/<pid>/fd would stay root's. */
	prctl(PR_SET_DUMPABLE, 1);
	mg_log_set_callback(count_fallback, &caps_line);
	r = mg_router_new(NULL);
	assert_non_null(r);
	a = mg_fork(r, NULL, &err);
	assert_non_null(a);
	b = mg_fork(r, NULL, &err);
	assert_non_null(b);
	assert_false(bpfload_active());
	assert_int_equal(fallback_lines, 1);
	assert_int_equal(caps_line, 1);
	/* The router's own checks refuse the forgery. */
	assert_int_equal(mg_call(a, "forge", mg_value_build("lllll", (int64_t)0, (int64_t)4000,
			 (int64_t)mg_context_remote_id(a), (int64_t)5000, (int64_t)3), &out, &err), 0);
	assert_int_equal(mg_value_unpack(out, NULL, "l", &sent), 0);
	assert_int_equal(sent, 3);
	mg_value_free(out);
	/* Until the three drops are counted (not a sleep "long enough"). */
	for (double end = mg_test_now() + WAIT_S;;) {
		int64_t left = sent;

		assert_int_equal(mg_router_stats(r, &st), 0);
		assert_false(st->kernel);
		for (size_t i = 0; i < st->nrows; i++)
			if (st->rows[i].context_id == MG_STATS_CHANNEL &&
			    st->rows[i].child_id == mg_context_remote_id(a))
				left -= (int64_t)st->rows[i].dir[MG_STATS_UP].drops[MG_DROP_SRC_ID];
		mg_router_stats_free(st);
		if (left == 0 || mg_test_now() >= end) {
			sent = left;
			break;
		}
		usleep(10000);
	}
	assert_int_equal(sent, 0);
	tool_sees_user_counters(mg_context_remote_id(a));
	mg_context_shutdown(a, true);
	mg_context_shutdown(b, true);
	mg_context_unref(a);
	mg_context_unref(b);
	mg_router_unref(r);
}

static void test_unprivileged_falls_back_once(void **state)
{
	int status = 0;

	assert_int_equal(mg_test_in_child(unprivileged, NULL, 30, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_forged_up_dropped_in_kernel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_up_without_kernel_reaches_router,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_auth_down_dropped_at_child, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refusals_still_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_denial_burst_all_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_denials_two_routers_one_broker, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_counters_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replies_counted_past_many_calls, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_filter_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parent_end_only_bare_socketpair, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sibling_del_route_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_via_tree_nothing_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pinned_maps_bpftool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pins_removed_with_last_router, setup, teardown),
		cmocka_unit_test(test_unprivileged_falls_back_once),
	};
	return MG_TEST_RUN("bpf/channel", tests);
}
