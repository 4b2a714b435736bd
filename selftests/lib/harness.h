/* SPDX-License-Identifier: MIT */
/*
 * selftests/lib/harness.h: small helpers shared by the cmocka selftests.
 *
 * Owns: running one cmocka group with TAP output (and what each test
 * deferred to its end, mg_test_defer), running a piece of a test
 * in a forked child under a timeout, counting fds and child processes (for
 * "nothing leaked" checks), and capturing the library's log lines.
 * Must not touch: library internals; it uses the public API only.
 *
 * A selftest is one program, selftests/<area>/<name>.c, listed in Kbuild as
 * `selftests-y += selftests/<area>/<name>.c`; `make check` builds it into
 * build/selftests/<area>/<name> (and build/asan/...) and runs it under
 * prove. Its main() looks like this:
 *
 *	int main(int argc, char **argv)
 *	{
 *		// First: a context started by this test execs this very
 *		// binary, and must become an agent here, not run the tests.
 *		mg_main(argc, argv);
 *
 *		const struct CMUnitTest tests[] = {
 *			cmocka_unit_test(test_round_trip),
 *		};
 *		return MG_TEST_RUN("core/value", tests);
 *	}
 *
 * Run exactly one group per program: cmocka prints one TAP plan per group,
 * and prove rejects a second plan.
 */
#ifndef MITOGEN_SELFTESTS_HARNESS_H
#define MITOGEN_SELFTESTS_HARNESS_H

#include <mitogen/mitogen.h>

#include <errno.h>		/* -ETIMEDOUT and friends, returned below */
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/wait.h>		/* WIFSIGNALED() etc. for mg_test_in_child */

/* cmocka.h needs these first, in this order. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/*
 * Run the group `name` with TAP output (whatever CMOCKA_MESSAGE_OUTPUT
 * says, scripts/run-tests.sh sets it to TAP too) and return the number of
 * failed tests: return it from main(). Also makes stdout line-buffered, so
 * that a process forked by a test never carries TAP lines it did not write.
 * With MG_TEST_LOG=1 in the environment, the library's log lines are
 * printed to stderr as "# source: line" while the tests run.
 */
int mg_test_run(const char *name, const struct CMUnitTest *tests, size_t n);

/*
 * Run fn(arg) when the current test ends, whether it passed or failed: a
 * failed assertion jumps out of the test, and what it made would be left
 * for LeakSanitizer to report. mg_test_run runs them (last deferred, first
 * run) after every test that has no teardown of its own; a test with its
 * own teardown calls mg_test_cleanup() there. Returns arg.
 */
void *mg_test_defer(void (*fn)(void *), void *arg);
/* Run the deferred functions now, last first, and forget them. */
void mg_test_cleanup(void);
/*
 * Wait until thread tid of this process sleeps (state S or D in
 * /proc/self/task/TID/stat): the hand-off "it is blocked now" for a test
 * that wakes a waiter. Returns true, or false after max_s seconds.
 */
bool mg_test_wait_sleeping(pid_t tid, double max_s);

/*
 * Gates: the hand-off for a call that must not finish before the test says
 * so (instead of a call that sleeps "long enough"). A gate is a FIFO in a
 * private directory under $TMPDIR; a child (any context of this test
 * program) waits at it by running the exported function
 *
 *	mg_test.gate(path, value) -> value, once the test opened the gate
 *
 * mg_test_gate_new makes one (its path in path[n]) and defers its removal
 * to the end of the test (which first opens it, should a child still wait
 * there). mg_test_gate_open lets through the one call waiting at it,
 * waiting up to max_s seconds for that call to get there; returns true,
 * or false if none came.
 */
void mg_test_gate_new(char *path, size_t n);
bool mg_test_gate_open(const char *path, double max_s);

/* mg_test_run for an array whose size the compiler knows. */
#define MG_TEST_RUN(name, tests) \
	mg_test_run((name), (tests), sizeof(tests) / sizeof((tests)[0]))

/*
 * Run fn(arg) in a forked child and wait for it. For tests that change
 * process state (seccomp, capabilities, namespaces, rlimits, signal
 * dispositions) or that are expected to die.
 *
 * The child: has alarm(timeout_s) armed (timeout_s <= 0 means 30 s), has
 * every caught signal reset to its default action (cmocka catches SIGSEGV,
 * SIGSYS...: in the child a death by signal is the result), writes
 * its stdout to stderr (stdout is the TAP stream), turns a failed cmocka
 * assertion into abort() (SIGABRT) instead of unwinding into its copy of
 * the test runner, and _exit(0)s when fn returns. Do not call skip() in the
 * child. The parent kills the child with SIGKILL if it is still there a few
 * seconds after the timeout.
 *
 * Returns 0 when the child ended on its own, -ETIMEDOUT when it was stopped
 * by the timeout (SIGALRM or SIGKILL), -EINVAL for a NULL fn, or -errno if
 * fork() or waitpid() failed (-ECHILD: someone else reaped it). *ret_status
 * (may be NULL) gets the waitpid() status whenever the child was reaped:
 *
 *	assert_int_equal(mg_test_in_child(apply_filter, NULL, 5, &st), 0);
 *	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
 */
int mg_test_in_child(void (*fn)(void *), void *arg, int timeout_s,
		     int *ret_status);

/* Number of open fds of this process, or -errno. */
int mg_test_count_fds(void);

/*
 * Number of processes whose parent is `parent` (<= 0: this process),
 * zombies included (an unreaped child is a leak too), or -errno.
 */
int mg_test_count_children(pid_t parent);

/* True when pid no longer runs: gone, or a zombie (exited, not reaped). */
bool mg_test_pid_gone(pid_t pid);
/* Monotonic seconds. */
double mg_test_now(void);

/*
 * Capture the library's log lines (mg_log_set_callback) into a buffer, one
 * "source: line" per line. start clears the buffer and installs the
 * capture; stop uninstalls it (no callback, or the MG_TEST_LOG printer) and
 * frees the buffer. Thread-safe: lines may arrive from any thread.
 */
void mg_test_log_capture_start(void);
/*
 * True once a captured line contains needle; waits up to wait_s seconds
 * for it (0: look once). False if capture is not running.
 */
bool mg_test_log_contains(const char *needle, double wait_s);
/* Print what was captured to stderr as TAP comments (for failures). */
void mg_test_log_print(void);
void mg_test_log_capture_stop(void);

#endif
