// SPDX-License-Identifier: MIT
/*
 * test_select.c — mg_select: arrival order over many receivers, oneshot
 * iteration, nesting, remove, empty/count, close waking a waiter with
 * LatchError, timeouts, and mg_select_all gathering parallel calls: from
 * several threads at once over the same children, and when a child dies.
 *
 * Order comes from hand-offs, never from sleep lengths: replies a test
 * orders wait at gates (mg_test_gate_new) opened one after the other, and
 * a waiter is woken once it is known to sleep (mg_test_wait_sleeping).
 * Timeouts are asserted as "no sooner than"; waits for what must happen
 * have a generous bound (WAIT_S). What a test makes is freed through
 * mg_test_defer, so a failed assertion leaks nothing either.
 */
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "selftests/lib/harness.h"

/* Reached only when what must happen does not. */
#define WAIT_S 60.0

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

static void free_rx(void *rx)
{
	mg_receiver_free(rx);
}

static void free_sel(void *sel)
{
	mg_select_free(sel);
}

static void free_value(void *v)
{
	mg_value_free(v);
}

static void stop_ctx(void *c)
{
	mg_context_shutdown(c, true);
	mg_context_unref(c);
}

/* A receiver on router, freed after the test. */
static struct mg_receiver *new_rx(void)
{
	return mg_test_defer(free_rx, mg_receiver_new(router, NULL));
}

/* A select freed after the test: make it after its members (cleanups run
 * last first, and a select goes before its receivers). */
static struct mg_select *new_sel(bool oneshot)
{
	return mg_test_defer(free_sel, mg_select_new(oneshot));
}

static struct mg_context *new_ctx(void)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_test_defer(stop_ctx, mg_local(router, NULL, &err));

	if (!c)
		fail_msg("mg_local: %s", err.message);
	return c;
}

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
	struct mg_select *sel;
	struct mg_message *msg;
	int order[50], n = 0;

	for (int i = 0; i < 50; i++)
		rx[i] = new_rx();
	sel = new_sel(true);
	for (int i = 0; i < 50; i++) {
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
	while (mg_select_get(sel, WAIT_S, &msg, NULL) == 0) {
		assert_ptr_equal(mg_message_receiver(msg), rx[order[n]]);
		assert_int_equal(msg_int(msg), n);
		n++;
	}
	assert_int_equal(n, 50);		/* oneshot: ends when all answered */
	assert_int_equal(mg_select_count(sel), 0);
}

static void test_not_oneshot_and_remove(void **state)
{
	struct mg_receiver *a = new_rx(), *b = new_rx();
	struct mg_select *sel = new_sel(false);
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
	assert_int_equal(mg_select_get(sel, WAIT_S, &msg, NULL), 0);
	assert_int_equal(msg_int(msg), 1);
	assert_int_equal(mg_select_get(sel, WAIT_S, &msg, NULL), 0);
	assert_int_equal(msg_int(msg), 2);
	assert_int_equal(mg_select_count(sel), 2);	/* not oneshot */
	assert_int_equal(mg_select_get(sel, WAIT_S, &msg, NULL), 0);
	assert_int_equal(msg_int(msg), 3);
	assert_int_equal(mg_select_remove(sel, b), 0);
	assert_int_equal(mg_select_remove(sel, b), -ENOENT);
	post(b, 4);
	/* b's message is queued (its receiver says so) but not selected. */
	assert_int_equal(mg_select_get(sel, 0.05, &msg, &err), -ETIMEDOUT);
	assert_int_equal(err.kind, MG_ERR_TIMEOUT);
	assert_false(mg_receiver_empty(b));
}

/*
 * Several messages queued before the receiver (or a nested select holding
 * them) joins: every one is returned. The select once put a receiver on
 * its latch once for all it held, and a get takes one message per put:
 * the rest stayed unseen until something else came (the tool lost a
 * command's last output line when its chunks came in before the channel
 * was added: mitogen run printed 21 of 24 lines).
 */
static void test_queued_before_add(void **state)
{
	struct mg_receiver *a = new_rx(), *b = new_rx(), *mark = new_rx();
	struct mg_select *sub = new_sel(false), *sel = new_sel(false);
	struct mg_message *msg;

	/* The broker delivers in order: once mark has its message, a has
	 * all three. */
	for (int i = 1; i <= 3; i++)
		post(a, i);
	post(mark, 0);
	assert_int_equal(mg_receiver_get(mark, WAIT_S, &msg, NULL), 0);
	mg_message_free(msg);
	assert_int_equal(mg_select_add(sel, a), 0);
	for (int i = 1; i <= 3; i++) {
		/* all are there: no wait */
		assert_int_equal(mg_select_get(sel, 0, &msg, NULL), 0);
		assert_int_equal(msg_int(msg), i);
	}
	/* the same through a nested select */
	assert_int_equal(mg_select_add(sub, b), 0);
	for (int i = 4; i <= 6; i++)
		post(b, i);
	post(mark, 0);
	assert_int_equal(mg_receiver_get(mark, WAIT_S, &msg, NULL), 0);
	mg_message_free(msg);
	assert_int_equal(mg_select_add_select(sel, sub), 0);
	for (int i = 4; i <= 6; i++) {
		assert_int_equal(mg_select_get(sel, 0, &msg, NULL), 0);
		assert_int_equal(msg_int(msg), i);
	}
}

/*
 * A member removed with messages queued: the select returns none of them
 * (they stay in the receiver, the caller's to take), and it never reads
 * the receiver again, which its owner may free once it is removed.
 */
static void test_removed_member_not_returned(void **state)
{
	struct mg_receiver *a = new_rx(), *mark = new_rx();
	struct mg_select *sel = new_sel(false);
	struct mg_message *msg;

	assert_int_equal(mg_select_add(sel, a), 0);
	assert_int_equal(mg_select_add(sel, mark), 0);
	post(a, 1);
	post(a, 2);
	post(mark, 0);
	assert_int_equal(mg_select_get(sel, WAIT_S, &msg, NULL), 0);
	if (msg_int(msg) != 1)
		fail_msg("the first message was not a's first");
	assert_int_equal(mg_select_remove(sel, a), 0);
	assert_int_equal(mg_select_get(sel, WAIT_S, &msg, NULL), 0);
	assert_int_equal(msg_int(msg), 0);	/* mark's, not a's second */
	assert_int_equal(mg_select_get(sel, 0, &msg, NULL), -ETIMEDOUT);
	assert_int_equal(mg_receiver_get(a, 0, &msg, NULL), 0);
	assert_int_equal(msg_int(msg), 2);
}

static void test_nested(void **state)
{
	struct mg_receiver *rx[4];
	struct mg_select *top, *s1, *s2, *s3;
	struct mg_message *msg;

	for (int i = 0; i < 4; i++)
		rx[i] = new_rx();
	/* Freed last first: the nested ones after top, which holds them. */
	s3 = new_sel(true);
	s2 = new_sel(true);
	s1 = new_sel(true);
	top = new_sel(true);
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
	assert_int_equal(mg_select_get(top, WAIT_S, &msg, NULL), 0);
	assert_ptr_equal(mg_message_receiver(msg), rx[2]);
	assert_int_equal(msg_int(msg), 2);
	post(rx[0], 0);
	assert_int_equal(mg_select_get(top, WAIT_S, &msg, NULL), 0);
	assert_int_equal(msg_int(msg), 0);
	/* Both nested selects were removed from the oneshot top. */
	assert_int_equal(mg_select_count(top), 0);
}

struct waiter {
	struct mg_select *sel;
	pid_t tid;
	int ret;
	struct mg_error err;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct mg_message *msg;

	__atomic_store_n(&w->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	/* Only the close can end this wait before its long timeout. */
	w->ret = mg_select_get(w->sel, WAIT_S, &msg, &w->err);
	return NULL;
}

static void test_close_wakes_waiter(void **state)
{
	struct mg_receiver *rx = new_rx();
	struct waiter w = { .sel = new_sel(true), .err = MG_ERROR_INIT };
	pthread_t t;
	double t0 = mg_test_now();

	assert_int_equal(mg_select_add(w.sel, rx), 0);
	assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
	/* Hand-off: close once the waiter is asleep in its get. */
	while (!__atomic_load_n(&w.tid, __ATOMIC_ACQUIRE) && mg_test_now() - t0 < WAIT_S)
		usleep(1000);
	if (w.tid)
		mg_test_wait_sleeping(w.tid, WAIT_S);
	mg_select_close(w.sel);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, -EPIPE);
	assert_int_equal(w.err.kind, MG_ERR_LATCH);
}

static void test_dead_message_returned(void **state)
{
	struct mg_receiver *rx = new_rx();
	struct mg_sender *tx = mg_receiver_to_sender(rx);
	struct mg_select *sel = new_sel(true);
	struct mg_message *msg;
	struct mg_value *v = NULL;
	struct mg_error err = MG_ERROR_INIT;
	bool dead;

	mg_select_add(sel, rx);
	mg_sender_close(tx);
	mg_sender_free(tx);
	assert_int_equal(mg_select_get(sel, WAIT_S, &msg, NULL), 0);
	dead = mg_message_is_dead(msg);
	assert_int_equal(mg_message_value(msg, true, &v, &err), -EPIPE);
	mg_message_free(msg);
	assert_true(dead);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
}

/*
 * Opens the gates of test_all_gathers_in_arrival_order in the order it is
 * given, each only once the reply let through before it has reached the
 * gather: a second call to the same child returns after that reply, which
 * the child's stream carries first (and its delivery puts it on the
 * select at once).
 */
struct releaser {
	struct mg_context **c;
	char (*gate)[256];
	const int *order;
	pid_t gatherer;
	int bad;		/* counted here: cmocka asserts on the main thread */
};

static void *release_thread(void *arg)
{
	struct releaser *rl = arg;

	/* The gather listens once the main thread sleeps in it. */
	if (!mg_test_wait_sleeping(rl->gatherer, WAIT_S))
		rl->bad++;
	for (int k = 0; k < 3; k++) {
		int i = rl->order[k];
		struct mg_value *v = NULL;

		if (!mg_test_gate_open(rl->gate[i], WAIT_S) ||
		    mg_call(rl->c[i], "slow_echo", mg_value_build("ii", 0, 0), &v, NULL) < 0)
			rl->bad++;
		mg_value_free(v);
	}
	return NULL;
}

static void test_all_gathers_in_arrival_order(void **state)
{
	static const int order[3] = { 1, 2, 0 };
	struct mg_context *c[3];
	struct mg_receiver *rx[3];
	struct mg_value *vals[3];
	char gate[3][256];
	size_t got[3];
	struct releaser rl = { .c = c, .gate = gate, .order = order,
			       .gatherer = (pid_t)syscall(SYS_gettid) };
	struct mg_error err = MG_ERROR_INIT;
	pthread_t t;
	double t0;
	int ret;

	for (int i = 0; i < 3; i++)
		c[i] = new_ctx();
	/* After the contexts: cleanups open the gates before stopping them. */
	for (int i = 0; i < 3; i++) {
		mg_test_gate_new(gate[i], sizeof(gate[i]));
		rx[i] = mg_test_defer(free_rx, mg_call_async(c[i], "mg_test.gate",
							     mg_value_build("sl", gate[i],
									    (int64_t)i), NULL));
		assert_non_null(rx[i]);
	}
	assert_int_equal(pthread_create(&t, NULL, release_thread, &rl), 0);
	ret = mg_select_all(rx, 3, WAIT_S, vals, got, &err);
	pthread_join(t, NULL);
	for (int i = 0; i < 3 && ret == 0; i++)
		mg_test_defer(free_value, vals[i]);
	assert_int_equal(rl.bad, 0);
	assert_int_equal(ret, 0);
	/* In the order the replies came, not the order of rx. */
	for (int k = 0; k < 3; k++) {
		assert_int_equal(got[k], (size_t)order[k]);
		assert_int_equal(vals[k]->i, (int64_t)order[k]);
	}

	/* A failure stops the gather with its error. */
	rx[0] = mg_test_defer(free_rx, mg_call_async(c[0], "slow_echo",
						     mg_value_build("ii", 0, 1), NULL));
	rx[1] = mg_test_defer(free_rx, mg_call_async(c[1], "no_such_function", NULL, NULL));
	assert_int_equal(mg_select_all(rx, 2, WAIT_S, vals, NULL, &err), -EREMOTEIO);
	assert_int_equal(err.kind, MG_ERR_CALL);

	/* A reply that cannot come before its gate opens: TimeoutError, no
	 * sooner than asked. */
	mg_test_gate_new(gate[0], sizeof(gate[0]));
	rx[0] = mg_test_defer(free_rx, mg_call_async(c[0], "mg_test.gate",
						     mg_value_build("sl", gate[0], (int64_t)1),
						     NULL));
	t0 = mg_test_now();
	assert_int_equal(mg_select_all(rx, 1, 0.1, vals, NULL, &err), -ETIMEDOUT);
	assert_true(mg_test_now() - t0 >= 0.1);
	assert_int_equal(err.kind, MG_ERR_TIMEOUT);
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

		struct mg_error err = MG_ERROR_INIT;
		int made = 0;

		for (; made < g->n; made++) {
			rx[made] = mg_call_async(g->ctx[made], "slow_echo",
						 mg_value_build("ii", 0, base + made), &err);
			if (!rx[made]) {
				fprintf(stderr, "# thread %d round %d: call %d: %s\n", g->id, r,
					made, err.message);
				g->bad++;
				break;
			}
		}
		if (made == g->n &&
		    mg_select_all(rx, (size_t)g->n, WAIT_S, vals, order, &err) < 0) {
			fprintf(stderr, "# thread %d round %d: gather: %s\n", g->id, r,
				err.message);
			g->bad++;
		} else if (made == g->n) {
			for (int k = 0; k < g->n; k++) {
				if (vals[k]->i != base + (int64_t)order[k]) {
					fprintf(stderr, "# thread %d round %d: reply %d of receiver "
						"%zu is %lld\n", g->id, r, k, order[k],
						(long long)vals[k]->i);
					g->bad++;
				}
				mg_value_free(vals[k]);
			}
		}
		/* What this round made is freed, failed or not. */
		for (int i = 0; i < made; i++)
			mg_receiver_free(rx[i]);
		if (g->bad)
			return NULL;
	}
	return NULL;
}

static void test_all_from_many_threads(void **state)
{
	enum { NCTX = 6, NTHREADS = 4 };
	struct mg_context *c[NCTX];
	struct gather g[NTHREADS];
	pthread_t t[NTHREADS];
	int started = 0, bad = 0;

	for (int i = 0; i < NCTX; i++)
		c[i] = new_ctx();
	for (int k = 0; k < NTHREADS; k++) {
		g[k] = (struct gather){ .ctx = c, .n = NCTX, .id = k + 1, .rounds = 200 };
		started += pthread_create(&t[started], NULL, gather_thread, &g[k]) == 0;
	}
	/* Joined before any assertion: a failure leaves no thread running. */
	for (int k = 0; k < started; k++) {
		pthread_join(t[k], NULL);
		bad += g[k].bad;
	}
	assert_int_equal(started, NTHREADS);
	assert_int_equal(bad, 0);
}

/* A child killed while a gather waits on it: the gather ends at once with
 * ChannelError, whichever thread handled the closed stream. */
static void test_all_child_killed(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c[2];
	struct mg_receiver *rx[2];
	struct mg_value *vals[2], *pid = NULL;
	char gate[256];

	for (int i = 0; i < 2; i++)
		c[i] = new_ctx();
	assert_int_equal(mg_call(c[1], "mg.getpid", NULL, &pid, NULL), 0);
	mg_test_defer(free_value, pid);
	mg_test_gate_new(gate, sizeof(gate));
	rx[0] = mg_test_defer(free_rx, mg_call_async(c[0], "slow_echo",
						     mg_value_build("ii", 0, 0), NULL));
	/* Never let through: only the kill can end the gather (long before
	 * its timeout). */
	rx[1] = mg_test_defer(free_rx, mg_call_async(c[1], "mg_test.gate",
						     mg_value_build("sl", gate, (int64_t)1), NULL));
	assert_non_null(rx[0]);
	assert_non_null(rx[1]);
	assert_int_equal(kill((pid_t)pid->i, SIGKILL), 0);
	assert_int_equal(mg_select_all(rx, 2, WAIT_S, vals, NULL, &err), -EPIPE);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arrival_order_50),
		cmocka_unit_test(test_not_oneshot_and_remove),
		cmocka_unit_test(test_queued_before_add),
		cmocka_unit_test(test_removed_member_not_returned),
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
