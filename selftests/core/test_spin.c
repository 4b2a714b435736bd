// SPDX-License-Identifier: MIT
/*
 * test_spin.c — waiting a little before sleeping (core/spin.h): the
 * window read from MITOGEN_SPIN_US (bad values, the cap, off on one CPU),
 * the shorter window of the broker thread (spin_wait_for), the rule that
 * stops a waiter spinning after spins that found nothing and tries now
 * and then, less often each time, a process that starts cold (no spin
 * before a try has found something), and what users see: calls made at a slow
 * pace cost the agent no spinning CPU, and calls still return right.
 *
 * The window is read once per process, so each case that sets the
 * environment runs in a forked child (mg_test_in_child) before anything
 * in it has waited.
 *
 * On a busy machine a spinning thread is preempted for whole time slices
 * (and sched_yield hands the CPU to whatever else runs), so what a spin
 * costs is measured as the CPU time of the spinning thread, which only
 * spinning spends, not as the time it took; durations are asserted only
 * as "no sooner than". A check that found something on its first look
 * after a yield does not depend on timing either.
 */
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "selftests/lib/harness.h"
#include "core/spin.h"

/* MITOGEN_SPIN_US as set in the child (NULL: unset), and what it must give. */
struct window_case {
	const char *env;
	uint32_t want_ns;
	bool one_cpu;
};

static void check_window(void *arg)
{
	const struct window_case *c = arg;

	if (c->env)
		setenv("MITOGEN_SPIN_US", c->env, 1);
	else
		unsetenv("MITOGEN_SPIN_US");
	if (c->one_cpu) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(sched_getcpu(), &set);
		assert_int_equal(sched_setaffinity(0, sizeof(set), &set), 0);
	}
	if (spin_window_ns() != c->want_ns) {
		fprintf(stderr, "MITOGEN_SPIN_US=%s: window %u ns, want %u\n",
			c->env ? c->env : "(unset)", spin_window_ns(), c->want_ns);
		abort();
	}
}

static bool two_cpus(void)
{
	cpu_set_t set;

	return sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) >= 2;
}

/* Skip the test, saying why, unless this process may use two CPUs. */
static void need_two_cpus(const char *why)
{
	if (!two_cpus()) {
		print_message("# skip: this process may run on one CPU only: %s\n", why);
		skip();
	}
}

/* Run fn in a forked child (its own window); it must exit 0. */
static void in_spinning_child(void (*fn)(void *))
{
	int st;

	need_two_cpus("it never spins");
	assert_int_equal(mg_test_in_child(fn, NULL, 10, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_window_from_environment(void **state)
{
	const struct window_case cases[] = {
		{ NULL, 500000, false },		/* the default */
		{ "50", 50000, false },
		{ "0", 0, false },			/* off */
		{ "abc", 500000, false },		/* not a number: default */
		{ "-5", 500000, false },
		{ "12x", 500000, false },
		{ "99999999", 10000000, false },	/* capped at 10 ms */
		{ "50", 0, true },			/* one CPU: never */
	};
	int st;

	need_two_cpus("the window is always 0");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(mg_test_in_child(check_window, (void *)&cases[i], 10, &st), 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			fail_msg("case %zu (MITOGEN_SPIN_US=%s) failed", i,
				 cases[i].env ? cases[i].env : "(unset)");
	}
}

/* A check that counts how often it was asked, and says yes on call `yes_at`
 * (0: never). */
struct probe {
	unsigned calls;
	unsigned yes_at;
};

static bool probe_ready(void *arg)
{
	struct probe *p = arg;

	return ++p->calls == p->yes_at;
}

static void check_miss_rule(void *arg)
{
	struct spin sp = { 0 };
	struct probe p = { 0 };

	(void)arg;
	setenv("MITOGEN_SPIN_US", "100", 1);
	/* Nothing comes: the first three waits spin the whole window... */
	for (int i = 0; i < 3; i++) {
		p.calls = 0;
		assert_false(spin_wait(&sp, probe_ready, &p));
		assert_true(p.calls > 1);
	}
	/*
	 * ...then 15 waits in 16 go straight to sleep and the 16th tries;
	 * each try that finds nothing doubles that: 1 in 32, 1 in 64...
	 */
	for (unsigned every = 16; every <= 128; every *= 2) {
		unsigned spun = 0, last = 0;

		for (unsigned i = 1; i <= every; i++) {
			p.calls = 0;
			assert_false(spin_wait(&sp, probe_ready, &p));
			if (p.calls > 0) {
				spun++;
				last = i;
			}
		}
		assert_int_equal(spun, 1);
		assert_int_equal(last, every);
	}
	/*
	 * A try that finds something starts the spinning again at once. It
	 * finds it on its second look, the first after a sched_yield: a look
	 * the spin always takes, however long the yield lasted (a later one
	 * could fall outside the window on a busy machine).
	 */
	for (int i = 0; i < 256; i++) {
		p.calls = 0;
		p.yes_at = 2;
		if (spin_wait(&sp, probe_ready, &p))
			break;
	}
	assert_int_equal(p.calls, 2);
	p.calls = 0;
	p.yes_at = 2;
	assert_true(spin_wait(&sp, probe_ready, &p));
	assert_int_equal(p.calls, 2);
}

static void test_misses_stop_spinning(void **state)
{
	in_spinning_child(check_miss_rule);
}

/*
 * A process that starts cold (spin_start_cold: an agent a first stage
 * started): a new waiter's first 15 waits sleep at once and the 16th
 * tries; once a try finds something, it spins on every wait again.
 */
static void check_cold_start(void *arg)
{
	struct spin sp = { 0 };
	struct probe p = { 0 };
	unsigned spun = 0, last = 0;

	(void)arg;
	setenv("MITOGEN_SPIN_US", "100", 1);
	spin_start_cold();
	for (unsigned i = 1; i <= 16; i++) {
		p.calls = 0;
		assert_false(spin_wait(&sp, probe_ready, &p));
		if (p.calls > 0) {
			spun++;
			last = i;
		}
	}
	assert_int_equal(spun, 1);
	assert_int_equal(last, 16);
	for (int i = 0; i < 256; i++) {
		p.calls = 0;
		p.yes_at = 2;
		if (spin_wait(&sp, probe_ready, &p))
			break;
	}
	assert_int_equal(p.calls, 2);
	p.calls = 0;
	p.yes_at = 2;
	assert_true(spin_wait(&sp, probe_ready, &p));
	assert_int_equal(p.calls, 2);
}

static void test_cold_start(void **state)
{
	in_spinning_child(check_cold_start);
}

static double mono_ms(void)
{
	return mg_test_now() * 1e3;
}

/* CPU time of the calling thread, in ms. */
static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * What a wait cost the waiting thread: its duration (ms) and the CPU it
 * spent (ms). A spin that stops when it should spends no more CPU than
 * its bound, however busy the machine; one that runs on spends more on
 * an idle machine (on a busy one it may spend less and go unnoticed:
 * nothing here fails because the machine is busy).
 */
struct cost {
	double ms, cpu_ms;
};

static struct cost cost_start(void)
{
	return (struct cost){ mono_ms(), cpu_ms() };
}

static struct cost cost_end(struct cost c)
{
	return (struct cost){ mono_ms() - c.ms, cpu_ms() - c.cpu_ms };
}

/* A spin that finds nothing lasts the window, or a div-th of it. */
static void check_window_div(void *arg)
{
	struct spin a = { 0 }, b = { 0 };
	struct probe p = { 0 };
	struct cost full, tenth;

	(void)arg;
	setenv("MITOGEN_SPIN_US", "10000", 1);
	full = cost_start();
	assert_false(spin_wait(&a, probe_ready, &p));
	full = cost_end(full);
	tenth = cost_start();
	assert_false(spin_wait_for(&b, probe_ready, &p, 10));
	tenth = cost_end(tenth);
	/* No sooner than the window, or its tenth; the tenth spends at most
	 * half the window's CPU (~1 ms of it when it works). */
	if (full.ms < 10 || tenth.ms < 1 || tenth.cpu_ms >= 5) {
		fprintf(stderr, "spins took %.2f ms (window) and %.2f ms, %.2f ms CPU (a tenth)\n",
			full.ms, tenth.ms, tenth.cpu_ms);
		abort();
	}
}

static void test_window_divided(void **state)
{
	in_spinning_child(check_window_div);
}

/* A call that does not finish while the test runs (it kills the child). */
static int nap(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	sleep(600);
	*ret = NULL;
	return 0;
}
MG_EXPORT(nap);

/*
 * A wait with a timeout shorter than the window spins no longer than the
 * timeout: with a 10 ms window, a latch get, a select get and a call's
 * receiver get (which reads the child's stream itself, lend.c) of 0.2 ms
 * on nothing time out no sooner than that, having spent about that much
 * CPU (the call's wait polls in whole ms: ~1), not the window's 10: less
 * than 2.5 ms.
 */
#define TIMEOUT_S 0.0002
#define CPU_MAX_MS 2.5

static void check_timeout_bounds_spin(void *arg)
{
	struct mg_router *r;
	struct mg_receiver *rx, *call;
	struct mg_context *ctx;
	struct mg_select *sel;
	struct mg_latch *l;
	struct mg_message *msg;
	void *item;
	struct cost latch, select, call_cost;

	(void)arg;
	setenv("MITOGEN_SPIN_US", "10000", 1);
	l = mg_latch_new();
	r = mg_router_new(NULL);
	rx = mg_receiver_new(r, NULL);
	sel = mg_select_new(false);
	if (!l || !r || !rx || !sel || mg_select_add(sel, rx) < 0)
		abort();
	latch = cost_start();
	if (mg_latch_get(l, TIMEOUT_S, &item) != -ETIMEDOUT)
		abort();
	latch = cost_end(latch);
	select = cost_start();
	if (mg_select_get(sel, TIMEOUT_S, &msg, NULL) != -ETIMEDOUT)
		abort();
	select = cost_end(select);
	ctx = mg_local(r, NULL, NULL);
	if (!ctx || !(call = mg_call_async(ctx, "nap", NULL, NULL)))
		abort();
	call_cost = cost_start();
	if (mg_receiver_get(call, TIMEOUT_S, &msg, NULL) != -ETIMEDOUT)
		abort();
	call_cost = cost_end(call_cost);
	if (latch.ms < TIMEOUT_S * 1e3 || select.ms < TIMEOUT_S * 1e3 ||
	    call_cost.ms < TIMEOUT_S * 1e3 || latch.cpu_ms >= CPU_MAX_MS ||
	    select.cpu_ms >= CPU_MAX_MS || call_cost.cpu_ms >= CPU_MAX_MS) {
		fprintf(stderr, "0.2 ms timeouts took %.2f ms, %.2f ms CPU (latch), %.2f ms, "
			"%.2f ms CPU (select), %.2f ms, %.2f ms CPU (call)\n", latch.ms,
			latch.cpu_ms, select.ms, select.cpu_ms, call_cost.ms, call_cost.cpu_ms);
		abort();
	}
	kill(mg_context_pid(ctx), SIGKILL);
	mg_receiver_free(call);
	mg_context_shutdown(ctx, true);
	mg_context_unref(ctx);
	mg_select_free(sel);
	mg_receiver_free(rx);
	mg_router_unref(r);
	mg_latch_free(l);
}

static void test_timeout_bounds_spin(void **state)
{
	in_spinning_child(check_timeout_bounds_spin);
}

static int noop(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	*ret = mg_int(getpid());
	return 0;
}
MG_EXPORT(noop);

/* CPU time of every thread of pid so far, in ns (schedstat), or -1. */
static long long cpu_ns(pid_t pid)
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
		unsigned long long run;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, d->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;	/* thread gone meanwhile */
		if (fgets(line, sizeof(line), f) && sscanf(line, "%llu", &run) == 1)
			sum += (long long)run;
		fclose(f);
	}
	closedir(dir);
	return sum;
}

/*
 * A fresh child's CPU over `calls` calls made `gap_us` apart, in ns, after
 * 20 back-to-back calls (where spinning pays). MITOGEN_SPIN_US is set to
 * spin_us for the child only (-1: left unset); its window is its own.
 */
static long long child_cpu_over_calls(int spin_us, int calls, long gap_us)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = mg_router_new(NULL);
	const char *old = getenv("MITOGEN_SPIN_US");
	char *saved = old ? strdup(old) : NULL, buf[16];
	struct mg_context *c;
	long long cpu0, cpu1;
	pid_t pid;

	assert_non_null(r);
	if (spin_us >= 0) {
		snprintf(buf, sizeof(buf), "%d", spin_us);
		setenv("MITOGEN_SPIN_US", buf, 1);
	}
	c = mg_local(r, NULL, &err);
	if (saved)
		setenv("MITOGEN_SPIN_US", saved, 1);
	else
		unsetenv("MITOGEN_SPIN_US");
	free(saved);
	assert_non_null(c);
	pid = mg_context_pid(c);
	for (int i = 0; i < 20; i++) {
		struct mg_value *v = NULL;

		assert_int_equal(mg_call(c, "noop", NULL, &v, &err), 0);
		mg_value_free(v);
	}
	cpu0 = cpu_ns(pid);
	assert_true(cpu0 >= 0);
	for (int i = 0; i < calls; i++) {
		struct timespec gap = { 0, gap_us * 1000 };
		struct mg_value *v = NULL;

		nanosleep(&gap, NULL);
		assert_int_equal(mg_call(c, "noop", NULL, &v, &err), 0);
		assert_int_equal(v->i, pid);
		mg_value_free(v);
	}
	cpu1 = cpu_ns(pid);
	assert_true(cpu1 >= cpu0);
	mg_context_shutdown(c, true);
	mg_context_unref(c);
	mg_router_unref(r);
	return cpu1 - cpu0;
}

/*
 * A child called every 2 ms: each wait for the next call is far longer
 * than the window, so after a few spins that found nothing it sleeps at
 * once, and only tries a spin now and then. Spinning every time costs it
 * a window (500 us) per call: ~510 us a call measured with the rule
 * broken, plainly and under ASan. What it spends is measured against a
 * child that never spins (MITOGEN_SPIN_US=0) making the same calls, since
 * the calls themselves cost 17-47 us a call on a slow VM (ASan, cold
 * caches after each sleep); measured, the spinning child spent 5-22 us a
 * call more. It may spend at most 100 us a call more.
 */
static void test_slow_calls_cost_no_spinning(void **state)
{
	const int calls = 400;
	long long base, spun;

	need_two_cpus("it never spins");
	base = child_cpu_over_calls(0, calls, 2000);
	spun = child_cpu_over_calls(-1, calls, 2000);
	printf("# child CPU a call, %d calls 2 ms apart: %.1f us spinning, %.1f us never spinning\n",
	       calls, spun / 1e3 / calls, base / 1e3 / calls);
	assert_true(spun <= base + 100000LL * calls);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_from_environment),
		cmocka_unit_test(test_misses_stop_spinning),
		cmocka_unit_test(test_cold_start),
		cmocka_unit_test(test_window_divided),
		cmocka_unit_test(test_timeout_bounds_spin),
		cmocka_unit_test(test_slow_calls_cost_no_spinning),
	};
	return MG_TEST_RUN("core/spin", tests);
}
