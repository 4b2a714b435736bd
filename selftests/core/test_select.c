// SPDX-License-Identifier: MIT
/*
 * test_select.c — mg_select: arrival order over many receivers, oneshot
 * iteration, nesting, remove, empty/count, close waking a waiter with
 * LatchError, timeouts, and mg_select_all gathering parallel calls: from
 * several threads at once over the same children, and when a child dies.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "selftests/lib/harness.h"

static int slow_echo(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int ms, v;

	if (mg_value_unpack(args, NULL, "ii", &ms, &v) < 0)
		return mg_call_fail(call, EINVAL, "slow_echo(ms, v)");
	usleep((useconds_t)ms * 1000);
	*ret = mg_int(v);
	return 0;
}
MG_EXPORT(slow_echo);

static struct mg_router *router;

static void post(struct mg_receiver *rx, int v)
{
	assert_int_equal(mg_router_route(router, mg_message_new(0, mg_receiver_handle(rx),
								 mg_int(v))), 0);
}

static int msg_int(struct mg_message *msg)
{
	struct mg_value *v = NULL;
	int i;

	assert_int_equal(mg_message_value(msg, true, &v, NULL), 0);
	i = (int)v->i;
	mg_value_free(v);
	mg_message_free(msg);
	return i;
}

static void test_arrival_order_50(void **state)
{
	struct mg_receiver *rx[50];
	struct mg_select *sel = mg_select_new(true);
	struct mg_message *msg;
	int order[50], n = 0;

	for (int i = 0; i < 50; i++) {
		rx[i] = mg_receiver_new(router, NULL);
		assert_int_equal(mg_select_add(sel, rx[i]), 0);
		order[i] = i;
	}
	assert_int_equal(mg_select_count(sel), 50);
	/* Shuffle, then post in that order: value = position in the order. */
	srand(42);
	for (int i = 49; i > 0; i--) {
		int j = rand() % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (int k = 0; k < 50; k++)
		post(rx[order[k]], k);
	while (mg_select_get(sel, 5, &msg, NULL) == 0) {
		assert_ptr_equal(mg_message_receiver(msg), rx[order[n]]);
		assert_int_equal(msg_int(msg), n);
		n++;
	}
	assert_int_equal(n, 50);		/* oneshot: ends when all answered */
	assert_int_equal(mg_select_count(sel), 0);
	mg_select_free(sel);
	for (int i = 0; i < 50; i++)
		mg_receiver_free(rx[i]);
}

static void test_not_oneshot_and_remove(void **state)
{
	struct mg_receiver *a = mg_receiver_new(router, NULL), *b = mg_receiver_new(router, NULL);
	struct mg_select *sel = mg_select_new(false);
	struct mg_message *msg;
	struct mg_error err = MG_ERROR_INIT;

	assert_true(mg_select_empty(sel));
	assert_int_equal(mg_select_count(sel), 0);
	assert_int_equal(mg_select_get(sel, 0.01, &msg, &err), -ENOENT);
	post(a, 1);			/* queued before being added: still seen */
	assert_int_equal(mg_select_add(sel, a), 0);
	assert_int_equal(mg_select_add(sel, a), -EBUSY);
	assert_int_equal(mg_select_add(sel, b), 0);
	post(a, 2);
	post(b, 3);
	assert_int_equal(mg_select_get(sel, 5, &msg, NULL), 0);
	assert_int_equal(msg_int(msg), 1);
	assert_int_equal(mg_select_get(sel, 5, &msg, NULL), 0);
	assert_int_equal(msg_int(msg), 2);
	assert_int_equal(mg_select_count(sel), 2);	/* not oneshot */
	assert_int_equal(mg_select_get(sel, 5, &msg, NULL), 0);
	assert_int_equal(msg_int(msg), 3);
	assert_int_equal(mg_select_remove(sel, b), 0);
	assert_int_equal(mg_select_remove(sel, b), -ENOENT);
	post(b, 4);
	assert_int_equal(mg_select_get(sel, 0.05, &msg, &err), -ETIMEDOUT);
	assert_int_equal(err.kind, MG_ERR_TIMEOUT);
	mg_select_free(sel);
	mg_receiver_free(a);
	mg_receiver_free(b);
}

static void test_nested(void **state)
{
	struct mg_receiver *rx[4];
	struct mg_select *top = mg_select_new(true), *s1 = mg_select_new(true),
			 *s2 = mg_select_new(true), *s3 = mg_select_new(true);
	struct mg_message *msg;
	int seen = 0;

	for (int i = 0; i < 4; i++)
		rx[i] = mg_receiver_new(router, NULL);
	mg_select_add(s1, rx[0]);
	mg_select_add(s1, rx[1]);
	mg_select_add(s3, rx[2]);
	mg_select_add(s2, rx[3]);
	assert_int_equal(mg_select_add_select(s2, s3), 0);
	assert_int_equal(mg_select_add_select(top, s1), 0);
	assert_int_equal(mg_select_add_select(top, s2), 0);
	assert_int_equal(mg_select_add_select(s3, top), -EINVAL);	/* a cycle */
	assert_int_equal(mg_select_add_select(top, top), -EINVAL);
	post(rx[2], 2);
	assert_int_equal(mg_select_get(top, 5, &msg, NULL), 0);
	assert_ptr_equal(mg_message_receiver(msg), rx[2]);
	assert_int_equal(msg_int(msg), 2);
	post(rx[0], 0);
	assert_int_equal(mg_select_get(top, 5, &msg, NULL), 0);
	assert_int_equal(msg_int(msg), 0);
	/* Both nested selects were removed from the oneshot top. */
	assert_int_equal(mg_select_count(top), 0);
	(void)seen;
	mg_select_free(top);
	mg_select_free(s1);
	mg_select_free(s2);
	mg_select_free(s3);
	for (int i = 0; i < 4; i++)
		mg_receiver_free(rx[i]);
}

struct waiter {
	struct mg_select *sel;
	int ret;
	struct mg_error err;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct mg_message *msg;

	w->ret = mg_select_get(w->sel, 10, &msg, &w->err);
	return NULL;
}

static void test_close_wakes_waiter(void **state)
{
	struct mg_receiver *rx = mg_receiver_new(router, NULL);
	struct waiter w = { .sel = mg_select_new(true), .err = MG_ERROR_INIT };
	pthread_t t;
	struct timespec t0, t1;

	mg_select_add(w.sel, rx);
	pthread_create(&t, NULL, wait_thread, &w);
	usleep(50000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	mg_select_close(w.sel);
	pthread_join(t, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(w.ret, -EPIPE);
	assert_int_equal(w.err.kind, MG_ERR_LATCH);
	assert_true(t1.tv_sec - t0.tv_sec < 2);
	mg_select_free(w.sel);
	mg_receiver_free(rx);
}

static void test_dead_message_returned(void **state)
{
	struct mg_receiver *rx = mg_receiver_new(router, NULL);
	struct mg_sender *tx = mg_receiver_to_sender(rx);
	struct mg_select *sel = mg_select_new(true);
	struct mg_message *msg;
	struct mg_value *v = NULL;
	struct mg_error err = MG_ERROR_INIT;

	mg_select_add(sel, rx);
	mg_sender_close(tx);
	assert_int_equal(mg_select_get(sel, 5, &msg, NULL), 0);
	assert_true(mg_message_is_dead(msg));
	assert_int_equal(mg_message_value(msg, true, &v, &err), -EPIPE);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	mg_message_free(msg);
	mg_select_free(sel);
	mg_sender_free(tx);
	mg_receiver_free(rx);
}

static void test_all_gathers_in_arrival_order(void **state)
{
	struct mg_context *c[3];
	struct mg_receiver *rx[3];
	struct mg_value *vals[3];
	size_t order[3];
	static const int delay[3] = { 300, 10, 150 };

	for (int i = 0; i < 3; i++) {
		c[i] = mg_local(router, NULL, NULL);
		assert_non_null(c[i]);
		rx[i] = mg_call_async(c[i], "slow_echo", mg_value_build("ii", delay[i], i), NULL);
	}
	assert_int_equal(mg_select_all(rx, 3, 10, vals, order, NULL), 0);
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vals[i]->i, (int64_t)order[i]);
		mg_value_free(vals[i]);
		mg_receiver_free(rx[i]);
	}
	/* A failure stops the gather with its error. */
	struct mg_error err = MG_ERROR_INIT;

	rx[0] = mg_call_async(c[0], "slow_echo", mg_value_build("ii", 0, 1), NULL);
	rx[1] = mg_call_async(c[1], "no_such_function", NULL, NULL);
	assert_int_equal(mg_select_all(rx, 2, 10, vals, NULL, &err), -EREMOTEIO);
	assert_int_equal(err.kind, MG_ERR_CALL);
	mg_receiver_free(rx[0]);
	mg_receiver_free(rx[1]);
	rx[0] = mg_call_async(c[0], "slow_echo", mg_value_build("ii", 2000, 1), NULL);
	assert_int_equal(mg_select_all(rx, 1, 0.1, vals, NULL, &err), -ETIMEDOUT);
	assert_int_equal(err.kind, MG_ERR_TIMEOUT);
	mg_receiver_free(rx[0]);
	for (int i = 0; i < 3; i++) {
		mg_context_shutdown(c[i], false);
		mg_context_unref(c[i]);
	}
}

/*
 * Threads gathering at once over the same children: a waiting select
 * handles replies itself while it spins (broker_help), several of them
 * and the broker thread taking turns, and each reply must still reach the
 * receiver it answers, once.
 */
struct gather {
	struct mg_context **ctx;
	int n, id, rounds;
	int bad;		/* counted here: cmocka asserts on the main thread */
};

static void *gather_thread(void *arg)
{
	struct gather *g = arg;
	struct mg_receiver *rx[8];
	struct mg_value *vals[8];
	size_t order[8];

	for (int r = 0; r < g->rounds; r++) {
		int base = g->id * 1000000 + r * 100;

		for (int i = 0; i < g->n; i++) {
			rx[i] = mg_call_async(g->ctx[i], "slow_echo",
					      mg_value_build("ii", 0, base + i), NULL);
			g->bad += !rx[i];
		}
		if (g->bad)
			return NULL;
		if (mg_select_all(rx, (size_t)g->n, 10, vals, order, NULL) < 0) {
			g->bad++;
		} else {
			for (int k = 0; k < g->n; k++) {
				g->bad += vals[k]->i != base + (int64_t)order[k];
				mg_value_free(vals[k]);
			}
		}
		for (int i = 0; i < g->n; i++)
			mg_receiver_free(rx[i]);
	}
	return NULL;
}

static void test_all_from_many_threads(void **state)
{
	enum { NCTX = 6, NTHREADS = 4 };
	struct mg_context *c[NCTX];
	struct gather g[NTHREADS];
	pthread_t t[NTHREADS];

	for (int i = 0; i < NCTX; i++) {
		c[i] = mg_local(router, NULL, NULL);
		assert_non_null(c[i]);
	}
	for (int k = 0; k < NTHREADS; k++) {
		g[k] = (struct gather){ .ctx = c, .n = NCTX, .id = k + 1, .rounds = 200 };
		assert_int_equal(pthread_create(&t[k], NULL, gather_thread, &g[k]), 0);
	}
	for (int k = 0; k < NTHREADS; k++) {
		pthread_join(t[k], NULL);
		assert_int_equal(g[k].bad, 0);
	}
	for (int i = 0; i < NCTX; i++) {
		mg_context_shutdown(c[i], false);
		mg_context_unref(c[i]);
	}
}

/* A child killed while a gather waits on it: the gather ends at once with
 * ChannelError, whichever thread handled the closed stream. */
static void test_all_child_killed(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c[2];
	struct mg_receiver *rx[2];
	struct mg_value *vals[2], *pid = NULL;
	struct timespec t0, t1;

	for (int i = 0; i < 2; i++) {
		c[i] = mg_local(router, NULL, NULL);
		assert_non_null(c[i]);
	}
	assert_int_equal(mg_call(c[1], "mg.getpid", NULL, &pid, NULL), 0);
	rx[0] = mg_call_async(c[0], "slow_echo", mg_value_build("ii", 0, 0), NULL);
	rx[1] = mg_call_async(c[1], "slow_echo", mg_value_build("ii", 5000, 1), NULL);
	assert_non_null(rx[0]);
	assert_non_null(rx[1]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(kill((pid_t)pid->i, SIGKILL), 0);
	assert_int_equal(mg_select_all(rx, 2, 10, vals, NULL, &err), -EPIPE);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	assert_true((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9 < 1.0);
	mg_value_free(pid);
	for (int i = 0; i < 2; i++) {
		mg_receiver_free(rx[i]);
		mg_context_shutdown(c[i], false);
		mg_context_unref(c[i]);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arrival_order_50),
		cmocka_unit_test(test_not_oneshot_and_remove),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_close_wakes_waiter),
		cmocka_unit_test(test_dead_message_returned),
		cmocka_unit_test(test_all_gathers_in_arrival_order),
		cmocka_unit_test(test_all_from_many_threads),
		cmocka_unit_test(test_all_child_killed),
	};
	int ret;

	mg_main(argc, argv);
	router = mg_router_new(NULL);
	ret = MG_TEST_RUN("core/select", tests);
	mg_router_unref(router);
	return ret;
}
