// SPDX-License-Identifier: MIT
/*
 * test_heartbeat.c — no silent hangs (issue 19 §2): a child that stops
 * answering (SIGSTOP here, as a wedged peer) is treated as lost once
 * nothing was heard from it for the router's heartbeat limit: whoever
 * waits on it gets ChannelError, and the other children carry on. A child
 * that is merely busy is not lost; a child whose parent stops answering
 * exits by itself; an idle child wakes about once per interval and once
 * per limit, no more.
 *
 * Intervals here are short (a fraction of a second) so that the tests are
 * quick, limits long enough that a starved but healthy child still
 * answers on a loaded machine. Losses are asserted "no sooner than the
 * limit", with a generous bound after it (WAIT_S) that only a missing
 * heartbeat reaches.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/wait.h>

#include "selftests/lib/harness.h"

#define WAIT_S 60.0
#define INTERVAL 0.25
#define LIMIT 4.0

static int busy_ms(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int ms;

	if (mg_value_unpack(args, NULL, "i", &ms) < 0)
		return mg_call_fail(call, EINVAL, "busy_ms(ms)");
	usleep((useconds_t)ms * 1000);
	*ret = mg_int(ms);
	return 0;
}
MG_EXPORT(busy_ms);

/* --- cleanups ------------------------------------------------------------ */

static void free_router(void *r)
{
	mg_router_unref(r);
}

static void free_rx(void *rx)
{
	mg_receiver_free(rx);
}

/* A context the test may have stopped: kill it, then shut it down. */
static void kill_ctx(void *c)
{
	kill(mg_context_pid(c), SIGKILL);
	mg_context_shutdown(c, true);
	mg_context_unref(c);
}

static struct mg_router *new_router(double interval, double limit)
{
	MG_OPTS(mg_router_opts, ro, .heartbeat_interval = interval, .heartbeat_limit = limit);
	struct mg_router *r = mg_test_defer(free_router, mg_router_new(&ro));

	assert_non_null(r);
	return r;
}

static struct mg_context *new_child(struct mg_router *r, const char *name)
{
	MG_OPTS(mg_local_opts, lo, .remote_name = name);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_test_defer(kill_ctx, mg_local(r, &lo, &err));

	if (!c)
		fail_msg("mg_local %s: %s", name, err.message);
	return c;
}

static int64_t getpid_of(struct mg_context *c)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	int64_t pid;

	if (mg_call(c, "mg.getpid", NULL, &v, &err) < 0)
		fail_msg("mg.getpid in %s: %s", mg_context_name(c), err.message);
	pid = v->i;
	mg_value_free(v);
	return pid;
}

/* --- tests ----------------------------------------------------------------- */

/*
 * SIGSTOP a child and call it: the call (whose own timeout, WAIT_S, is
 * far past the limit) fails with ChannelError naming the heartbeat, no
 * sooner than the limit after the child's last answer, and a sibling
 * answers throughout.
 */
static void test_stopped_child_is_lost(void **state)
{
	struct mg_router *r = new_router(INTERVAL, LIMIT);
	struct mg_context *victim = new_child(r, "hb-victim");
	struct mg_context *other = new_child(r, "hb-other");
	struct mg_error err = MG_ERROR_INIT;
	struct mg_receiver *rx;
	struct mg_value *v = NULL;
	double alive, lost;

	/* Its last sign of life: an answer, read after this moment. */
	alive = mg_test_now();
	assert_int_equal(getpid_of(victim), mg_context_pid(victim));
	assert_int_equal(kill(mg_context_pid(victim), SIGSTOP), 0);
	rx = mg_test_defer(free_rx, mg_call_async(victim, "mg.getpid", NULL, NULL));
	assert_non_null(rx);
	assert_int_equal(mg_receiver_get_data(rx, WAIT_S, &v, &err), -EPIPE);
	lost = mg_test_now();
	printf("# lost %.2f s after its last answer (limit %.1f s, interval %.2f s): %s\n",
	       lost - alive, LIMIT, INTERVAL, err.message);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	assert_non_null(strstr(err.message, "no heartbeat for 4 s"));
	assert_true(lost - alive >= LIMIT);	/* no sooner */
	/* Calls to it fail at once; the sibling was never in doubt. */
	assert_int_equal(mg_call(victim, "mg.getpid", NULL, &v, &err), -EPIPE);
	assert_int_equal(getpid_of(other), mg_context_pid(other));
}

/*
 * A child busy in a call for several limits is not lost: its broker
 * thread answers the pings while the call runs.
 */
static void test_busy_child_is_not_lost(void **state)
{
	struct mg_router *r = new_router(INTERVAL, 2.0);
	struct mg_context *c = new_child(r, "hb-busy");
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	int ret;

	ret = mg_call(c, "busy_ms", mg_value_build("i", 6000), &v, &err);
	if (ret < 0)
		fail_msg("busy_ms: %s", err.message);
	assert_int_equal(v->i, 6000);
	mg_value_free(v);
	assert_int_equal(getpid_of(c), mg_context_pid(c));
}

/*
 * A master that stops answering: its child notices (nothing from the
 * parent for the limit) and exits, though the channel stays open.
 */
static void test_child_leaves_stopped_parent(void **state)
{
	int pfd[2];
	pid_t master, child = 0;
	double t0;

	assert_int_equal(pipe(pfd), 0);
	master = fork();
	if (master == 0) {
		MG_OPTS(mg_router_opts, ro, .heartbeat_interval = INTERVAL,
			.heartbeat_limit = 1.0);
		struct mg_router *mr = mg_router_new(&ro);
		struct mg_context *c = mr ? mg_local(mr, NULL, NULL) : NULL;
		pid_t p = c ? mg_context_pid(c) : 0;

		close(pfd[0]);
		if (write(pfd[1], &p, sizeof(p)) != sizeof(p))
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &child, sizeof(child)), sizeof(child));
	close(pfd[0]);
	if (child <= 0) {
		kill(master, SIGKILL);
		waitpid(master, NULL, 0);
		fail_msg("the forked master could not start a child");
	}
	kill(master, SIGSTOP);
	t0 = mg_test_now();
	while (!mg_test_pid_gone(child) && mg_test_now() - t0 < WAIT_S)
		usleep(10000);
	printf("# the child left %.2f s after its parent stopped (limit 1 s)\n",
	       mg_test_now() - t0);
	kill(master, SIGKILL);
	waitpid(master, NULL, 0);
	assert_true(mg_test_pid_gone(child));
}

/* Voluntary context switches of every thread of pid so far (wake-ups). */
static long long wakeups(pid_t pid)
{
	char path[320], line[128];
	long long sum = 0;
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		long long n;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, d->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "voluntary_ctxt_switches: %lld", &n) == 1)
				sum += n;
		fclose(f);
	}
	closedir(dir);
	return sum;
}

/*
 * An idle child wakes for the heartbeat about once per interval (the
 * ping) and once per limit (its check of the parent): at the defaults
 * (20 s, 60 s) 4 times a minute. Measured here over 16 intervals of
 * 0.25 s: at most 3 wake-ups per event (a wake-up can take a lock the
 * other thread holds), and not the hundreds a timer gone wrong makes.
 */
static void test_idle_child_wakes_rarely(void **state)
{
	struct mg_router *r = new_router(INTERVAL, 1.0);
	struct mg_context *c = new_child(r, "hb-idle");
	pid_t pid = mg_context_pid(c);
	long long w0, w1, events;
	double t0, t1;

	assert_int_equal(getpid_of(c), pid);
	w0 = wakeups(pid);
	t0 = mg_test_now();
	usleep((useconds_t)(16 * INTERVAL * 1e6));
	w1 = wakeups(pid);
	t1 = mg_test_now();
	/* The time it really took (a loaded machine sleeps longer). */
	events = (long long)((t1 - t0) / INTERVAL + (t1 - t0) / 1.0) + 2;
	printf("# idle child: %lld wake-ups in %.2f s (%lld heartbeat events)\n", w1 - w0,
	       t1 - t0, events);
	assert_true(w0 >= 0 && w1 >= w0);
	assert_true(w1 - w0 <= 3 * events);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stopped_child_is_lost),
		cmocka_unit_test(test_busy_child_is_not_lost),
		cmocka_unit_test(test_child_leaves_stopped_parent),
		cmocka_unit_test(test_idle_child_wakes_rarely),
	};
	return MG_TEST_RUN("core/heartbeat", tests);
}
