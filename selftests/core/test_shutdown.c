// SPDX-License-Identifier: MIT
/*
 * test_shutdown.c — the reference's shutdown promises (issue 19, §3): when
 * the broker shuts down or the router goes, every handler still registered
 * gets a dead message, and every thread waiting on a receiver (directly,
 * on a select, or on a call's reply) wakes with ChannelError, before
 * mg_broker_join returns; later waits and later handlers fail at once.
 *
 * No test here waits for a length of time: a waiter is known to be asleep
 * from /proc (mg_test_wait_sleeping), and a broken promise shows as a
 * wait that comes back with the wrong error (they all have long timeouts,
 * never MG_FOREVER, so a regression fails instead of hanging the suite).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "selftests/lib/harness.h"

/* Long enough never to pass on a loaded machine, short enough to fail a
 * regression in reasonable time. */
#define LONG_WAIT 60.0

static int sleep_ms(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int ms;

	if (mg_value_unpack(args, NULL, "i", &ms) < 0)
		return mg_call_fail(call, EINVAL, "sleep_ms(ms)");
	usleep((useconds_t)ms * 1000);
	*ret = mg_int(ms);
	return 0;
}
MG_EXPORT(sleep_ms);

/* --- cleanups (run by the harness after each test, passed or failed) ---- */

static void free_broker(void *b)
{
	mg_broker_unref(b);
}

static void free_router(void *r)
{
	mg_router_unref(r);
}

static void free_receiver(void *rx)
{
	mg_receiver_free(rx);
}

static void free_select(void *sel)
{
	mg_select_free(sel);
}

static void stop_context(void *ctx)
{
	mg_context_shutdown(ctx, true);
	mg_context_unref(ctx);
}

/*
 * A broker and a router on it, both freed after the test. A child busy in
 * a call does not close its channel when asked to shut down: the broker
 * gives it 0.5 s (not 5) before it closes it itself.
 */
static struct mg_router *new_router(struct mg_broker **ret_b)
{
	MG_OPTS(mg_broker_opts, bo, .shutdown_timeout = 0.5);
	struct mg_broker *b = mg_test_defer(free_broker, mg_broker_new(&bo));
	MG_OPTS(mg_router_opts, ro, .broker = b);
	struct mg_router *r;

	assert_non_null(b);
	r = mg_test_defer(free_router, mg_router_new(&ro));
	assert_non_null(r);
	*ret_b = b;
	return r;
}

/* --- a handler that records what it got --------------------------------- */

struct seen {
	pthread_mutex_t lock;
	int calls;
	int dead;
	char reason[sizeof(((struct mg_error *)0)->message)];
};

static void record(struct mg_message *msg, void *userdata)
{
	struct seen *s = userdata;
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;

	pthread_mutex_lock(&s->lock);
	s->calls++;
	if (mg_message_is_dead(msg)) {
		s->dead++;
		mg_message_value(msg, true, &v, &err);
		snprintf(s->reason, sizeof(s->reason), "%s", err.message);
	}
	pthread_mutex_unlock(&s->lock);
	mg_value_free(v);
	mg_message_free(msg);
}

/* --- a thread that waits ------------------------------------------------- */

enum wait_kind { WAIT_RECEIVER, WAIT_SELECT, WAIT_CALL };

struct waiter {
	enum wait_kind kind;
	struct mg_receiver *rx;
	struct mg_select *sel;
	pid_t tid;
	struct mg_latch *started;	/* the thread's tid is known */
	int ret;
	bool dead;			/* select: the message it got was dead */
	struct mg_error err;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct mg_message *msg = NULL;
	struct mg_value *v = NULL;

	w->tid = (pid_t)syscall(SYS_gettid);
	mg_latch_put(w->started, w);
	switch (w->kind) {
	case WAIT_RECEIVER:
		w->ret = mg_receiver_get(w->rx, LONG_WAIT, &msg, &w->err);
		break;
	case WAIT_SELECT:
		w->ret = mg_select_get(w->sel, LONG_WAIT, &msg, &w->err);
		if (w->ret == 0) {
			w->dead = mg_message_is_dead(msg);
			w->ret = mg_message_value(msg, true, &v, &w->err);
		}
		break;
	case WAIT_CALL:
		w->ret = mg_receiver_get_data(w->rx, LONG_WAIT, &v, &w->err);
		break;
	}
	mg_value_free(v);
	mg_message_free(msg);
	return NULL;
}

static void free_latch(void *l)
{
	mg_latch_free(l);
}

/*
 * Start w's thread and return once it sleeps in its wait (or has
 * returned: then the test's assertions say what it got).
 */
static void start_waiter(struct waiter *w, pthread_t *t)
{
	void *item;

	w->err = (struct mg_error)MG_ERROR_INIT;
	w->started = mg_test_defer(free_latch, mg_latch_new());
	assert_int_equal(pthread_create(t, NULL, wait_thread, w), 0);
	assert_int_equal(mg_latch_get(w->started, LONG_WAIT, &item), 0);
	assert_true(mg_test_wait_sleeping(w->tid, LONG_WAIT));
}

/* --- tests --------------------------------------------------------------- */

/* router.h: "A dead message is delivered when ... the router shuts down":
 * a handler still registered when the broker stops has it once
 * mg_broker_join has returned. */
static void test_handler_gets_dead_message_at_broker_shutdown(void **state)
{
	struct seen seen = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mg_broker *b;
	struct mg_router *r = new_router(&b);
	int h = mg_router_add_handler(r, record, &seen, NULL);

	assert_true(h >= MG_HANDLE_USER_MIN);
	mg_broker_shutdown(b);
	assert_int_equal(mg_broker_join(b), 0);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.dead, 1);
	assert_string_equal(seen.reason, "broker shut down");
	/* Taken out of the table: nothing more, and nothing to remove. */
	assert_int_equal(mg_router_del_handler(r, (uint32_t)h), -ENOENT);
}

/* A handler registered after the shutdown is told at once, not never. */
static void test_handler_added_after_shutdown_gets_dead_message(void **state)
{
	struct seen seen = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mg_broker *b;
	struct mg_router *r = new_router(&b);

	mg_broker_shutdown(b);
	assert_int_equal(mg_broker_join(b), 0);
	assert_true(mg_router_add_handler(r, record, &seen, NULL) >= MG_HANDLE_USER_MIN);
	assert_int_equal(seen.dead, 1);
	assert_string_equal(seen.reason, "router shut down");
}

/* A router on a shared broker, dropped: its handlers hear of it before
 * mg_router_unref returns (the broker carries on). */
static void test_handler_gets_dead_message_when_router_goes(void **state)
{
	struct seen seen = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mg_broker *b = mg_test_defer(free_broker, mg_broker_new(NULL));
	MG_OPTS(mg_router_opts, ro, .broker = b);
	struct mg_router *r;

	assert_non_null(b);
	r = mg_router_new(&ro);
	assert_non_null(r);
	assert_true(mg_router_add_handler(r, record, &seen, NULL) >= MG_HANDLE_USER_MIN);
	mg_router_unref(r);
	assert_int_equal(seen.dead, 1);
	assert_string_equal(seen.reason, "router shut down");
}

/* Receiver.get raises ChannelError when communication is lost: a thread
 * asleep on a receiver nobody will answer wakes when the broker stops, and
 * every later get fails at once. */
static void test_receiver_waiter_wakes_with_channel_error(void **state)
{
	struct mg_broker *b;
	struct mg_router *r = new_router(&b);
	struct waiter w = { .kind = WAIT_RECEIVER };
	struct mg_message *msg;
	struct mg_error err = MG_ERROR_INIT;
	pthread_t t;
	double t0;

	w.rx = mg_test_defer(free_receiver, mg_receiver_new(r, NULL));
	assert_non_null(w.rx);
	start_waiter(&w, &t);
	mg_broker_shutdown(b);
	assert_int_equal(mg_broker_join(b), 0);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, -EPIPE);
	assert_int_equal(w.err.kind, MG_ERR_CHANNEL);
	assert_string_equal(w.err.message, "broker shut down");
	/* Nothing can come any more: a later get does not wait its timeout. */
	t0 = mg_test_now();
	assert_int_equal(mg_receiver_get(w.rx, LONG_WAIT, &msg, &err), -EPIPE);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	assert_true(mg_test_now() - t0 < LONG_WAIT / 2);
}

/* The same for a thread waiting on a select over two such receivers. */
static void test_select_waiter_wakes_with_channel_error(void **state)
{
	struct mg_broker *b;
	struct mg_router *r = new_router(&b);
	struct waiter w = { .kind = WAIT_SELECT };
	struct mg_receiver *rx[2];
	pthread_t t;

	for (int i = 0; i < 2; i++) {
		rx[i] = mg_test_defer(free_receiver, mg_receiver_new(r, NULL));
		assert_non_null(rx[i]);
	}
	/* Freed first (cleanups run last first): a select before its members. */
	w.sel = mg_test_defer(free_select, mg_select_new(false));
	for (int i = 0; i < 2; i++)
		assert_int_equal(mg_select_add(w.sel, rx[i]), 0);
	start_waiter(&w, &t);
	mg_broker_shutdown(b);
	assert_int_equal(mg_broker_join(b), 0);
	pthread_join(t, NULL);
	assert_true(w.dead);
	assert_int_equal(w.ret, -EPIPE);
	assert_int_equal(w.err.kind, MG_ERR_CHANNEL);
	assert_string_equal(w.err.message, "broker shut down");
}

/* A call in progress: the thread waiting for its reply (reading the
 * child's stream itself, lend.c) gets ChannelError too. */
static void test_call_waiter_wakes_with_channel_error(void **state)
{
	struct mg_broker *b;
	struct mg_router *r = new_router(&b);
	struct waiter w = { .kind = WAIT_CALL };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c;
	pthread_t t;

	c = mg_test_defer(stop_context, mg_local(r, NULL, &err));
	if (!c)
		fail_msg("mg_local: %s", err.message);
	w.rx = mg_test_defer(free_receiver,
			     mg_call_async(c, "sleep_ms", mg_value_build("i", 600000), &err));
	assert_non_null(w.rx);
	start_waiter(&w, &t);
	mg_broker_shutdown(b);
	assert_int_equal(mg_broker_join(b), 0);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, -EPIPE);
	assert_int_equal(w.err.kind, MG_ERR_CHANNEL);
}

/* A receiver made after the shutdown fails at once. */
static void test_receiver_after_shutdown_fails_at_once(void **state)
{
	struct mg_broker *b;
	struct mg_router *r = new_router(&b);
	struct mg_receiver *rx;
	struct mg_message *msg;
	struct mg_error err = MG_ERROR_INIT;
	double t0;

	mg_broker_shutdown(b);
	assert_int_equal(mg_broker_join(b), 0);
	rx = mg_test_defer(free_receiver, mg_receiver_new(r, NULL));
	assert_non_null(rx);
	t0 = mg_test_now();
	assert_int_equal(mg_receiver_get(rx, LONG_WAIT, &msg, &err), -EPIPE);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	assert_true(mg_test_now() - t0 < LONG_WAIT / 2);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handler_gets_dead_message_at_broker_shutdown),
		cmocka_unit_test(test_handler_added_after_shutdown_gets_dead_message),
		cmocka_unit_test(test_handler_gets_dead_message_when_router_goes),
		cmocka_unit_test(test_receiver_waiter_wakes_with_channel_error),
		cmocka_unit_test(test_select_waiter_wakes_with_channel_error),
		cmocka_unit_test(test_call_waiter_wakes_with_channel_error),
		cmocka_unit_test(test_receiver_after_shutdown_fails_at_once),
	};
	return MG_TEST_RUN("core/shutdown", tests);
}
