// SPDX-License-Identifier: MIT
/*
 * selftests/tools/test_tool.c — the `mitogen` command, run for real as a
 * separate program: what it relays, what it prints, its exit codes.
 *
 * Owns: running the tool (path from $MITOGEN_BIN, else
 * $MG_TEST_BUILD_DIR/mitogen, else build/mitogen) with posix_spawn under a
 * timeout, capturing its stdout and stderr in files of a mkdtemp directory.
 * Must not touch: library internals.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <mitogen/mitogen.h>

/* cmocka.h needs these first. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

extern char **environ;

/* Seconds one run of the tool may take before it is killed. */
#define TOOL_TEST_TIMEOUT 60

static char tool_bin[PATH_MAX];
static char tmpdir[PATH_MAX];

struct tool_result {
	int exit_code; /* exit status, or 128+N when killed by N */
	double seconds;
	char *out; /* NUL-terminated stdout */
	char *err; /* stderr with the tool's "[source] LEVEL" log
				 * lines removed */
	char *err_raw; /* all of stderr */
};

/* Result of the last run; freed by the next run and by test_teardown. */
static struct tool_result last;

static void result_clear(void)
{
	free(last.out);
	free(last.err);
	free(last.err_raw);
	memset(&last, 0, sizeof(last));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	assert_non_null(f);
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* Lines of text that are not the tool's own log lines ("[source] ..."). */
static char *strip_log_lines(const char *text)
{
	char *out = malloc(strlen(text) + 1), *o = out;

	assert_non_null(out);
	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) + 1 : strlen(text);

		if (text[0] != '[') {
			memcpy(o, text, n);
			o += n;
		}
		text += n;
	}
	*o = '\0';
	return out;
}

/*
 * Run the tool with the given arguments (NULL-terminated, without argv[0]),
 * stdin on /dev/null; fills `last`.
 */
static void run_tool(const char *const *args)
{
	const char *argv[64] = { "mitogen" };
	char out_path[PATH_MAX + 16], err_path[PATH_MAX + 16];
	posix_spawn_file_actions_t fa;
	double start, deadline;
	pid_t pid, w;
	int status, i;

	result_clear();
	for (i = 0; args[i]; i++) {
		assert_true(i + 2 < 64);
		argv[i + 1] = args[i];
	}
	argv[i + 1] = NULL;
	snprintf(out_path, sizeof(out_path), "%s/stdout", tmpdir);
	snprintf(err_path, sizeof(err_path), "%s/stderr", tmpdir);

	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	assert_int_equal(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
							  O_RDONLY, 0),
			 0);
	assert_int_equal(
		posix_spawn_file_actions_addopen(
			&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
		0);
	assert_int_equal(
		posix_spawn_file_actions_addopen(
			&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
		0);
	start = now();
	fflush(stdout);
	i = posix_spawn(&pid, tool_bin, &fa, NULL, (char *const *)argv,
			environ);
	posix_spawn_file_actions_destroy(&fa);
	if (i != 0)
		fail_msg("cannot run %s: %s", tool_bin, strerror(i));

	deadline = start + TOOL_TEST_TIMEOUT;
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		assert_true(w == 0 || errno == EINTR);
		if (now() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("%s %s did not finish in %d s", tool_bin,
				 args[0], TOOL_TEST_TIMEOUT);
		}
		usleep(10000);
	}
	last.seconds = now() - start;
	last.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) :
					     128 + WTERMSIG(status);
	last.out = slurp(out_path);
	last.err_raw = slurp(err_path);
	last.err = strip_log_lines(last.err_raw);
}

#define RUN_TOOL(...) run_tool((const char *const[]){ __VA_ARGS__, NULL })

/* The exit code was `code`; show what the tool said otherwise. */
static void assert_exit(int code)
{
	if (last.exit_code != code)
		fail_msg("exit code %d, expected %d; stdout: %s; stderr: %s",
			 last.exit_code, code, last.out, last.err_raw);
}

/* --- run ------------------------------------------------------------------ */

static void test_run_relays_local(void **state)
{
	RUN_TOOL("run", "--", "sh", "-c", "echo out; echo err >&2; exit 7");
	assert_exit(7);
	assert_string_equal(last.out, "out\n");
	assert_string_equal(last.err, "err\n");
}

static void test_run_relays_fork(void **state)
{
	RUN_TOOL("run", "-t", "fork", "--", "sh", "-c",
		 "echo out; echo err >&2; exit 7");
	assert_exit(7);
	assert_string_equal(last.out, "out\n");
	assert_string_equal(last.err, "err\n");
}

static void test_run_without_dashes(void **state)
{
	/* options after CMD belong to CMD */
	RUN_TOOL("run", "-t", "local", "echo", "-n", "-v", "x");
	assert_exit(0);
	assert_string_equal(last.out, "-v x");
}

static void test_run_success_and_signal(void **state)
{
	RUN_TOOL("run", "--", "true");
	assert_exit(0);
	assert_string_equal(last.out, "");
	RUN_TOOL("run", "--", "sh", "-c", "kill -TERM $$");
	assert_exit(128 + SIGTERM);
}

static void test_run_missing_program(void **state)
{
	RUN_TOOL("run", "--", "mg-no-such-program-x7");
	assert_exit(1);
	assert_non_null(strstr(last.err_raw, "mg-no-such-program-x7"));
}

static void test_run_no_command(void **state)
{
	RUN_TOOL("run");
	assert_exit(2);
	RUN_TOOL("run", "--");
	assert_exit(2);
	RUN_TOOL("run", "-t", "fork");
	assert_exit(2);
}

static void test_run_timeout(void **state)
{
	RUN_TOOL("run", "--timeout", "1", "--", "sleep", "10");
	assert_exit(3);
	/* bounded by the timeout plus shutting the child down, not by sleep */
	assert_true(last.seconds < 8);
}

/* --- call ----------------------------------------------------------------- */

static void test_call_getuid(void **state)
{
	char expect[32];

	snprintf(expect, sizeof(expect), "%u\n", (unsigned)getuid());
	RUN_TOOL("call", "mg.getuid");
	assert_exit(0);
	assert_string_equal(last.out, expect);
	RUN_TOOL("call", "-t", "fork", "mg.getuid");
	assert_exit(0);
	assert_string_equal(last.out, expect);
}

static void test_call_stat_missing(void **state)
{
	RUN_TOOL("call", "mg.stat", "/nonexistent");
	assert_exit(1);
	assert_string_equal(last.out, "");
	assert_true(strstr(last.err_raw, "ENOENT") ||
		    strstr(last.err_raw, "No such file"));
	assert_non_null(strstr(last.err_raw, "mitogen: "));
}

static void test_call_json_args(void **state)
{
	/* a JSON list, a plain string and null, in one call */
	RUN_TOOL("call", "mg.run",
		 "[\"sh\",\"-c\",\"printf %s \\\"$0\\\"\",\"json-ok\"]",
		 "null");
	assert_exit(0);
	assert_non_null(strstr(last.out, "json-ok"));
	assert_non_null(strstr(last.out, "\"status\""));
	assert_true(last.out[strlen(last.out) - 1] == '\n');

	RUN_TOOL("call", "mg.noop");
	assert_exit(0);
	assert_string_equal(last.out, "null\n");

	/* a wrong argument type is the function's CallError */
	RUN_TOOL("call", "mg.stat", "42");
	assert_exit(1);
}

static void test_call_unknown_function(void **state)
{
	RUN_TOOL("call", "mg.no_such_function");
	assert_exit(1);
	assert_non_null(strstr(last.err_raw, "mitogen: "));
}

/* --- usage ---------------------------------------------------------------- */

static void test_usage_errors(void **state)
{
	RUN_TOOL("run", "-t", "bogus", "--", "true");
	assert_exit(2);
	assert_non_null(strstr(last.err, "bogus"));
	RUN_TOOL("call", "-t", "ssh", "mg.noop");
	assert_exit(2);
	RUN_TOOL("call");
	assert_exit(2);
	RUN_TOOL("frobnicate");
	assert_exit(2);
	RUN_TOOL("run", "--timeout", "soon", "--", "true");
	assert_exit(2);
	RUN_TOOL("run", "--no-such-option", "--", "true");
	assert_exit(2);
	RUN_TOOL("run", "-t");
	assert_exit(2);
	run_tool((const char *const[]){ NULL });
	assert_exit(2);
}

static void test_help_and_version(void **state)
{
	RUN_TOOL("--help");
	assert_exit(0);
	assert_non_null(strstr(last.out, "usage: mitogen"));
	RUN_TOOL("-h");
	assert_exit(0);
	RUN_TOOL("run", "--help");
	assert_exit(0);
	assert_non_null(strstr(last.out, "usage: mitogen"));
	RUN_TOOL("--version");
	assert_exit(0);
	assert_true(strncmp(last.out, "mitogen ", 8) == 0);
}

/* --- fixture -------------------------------------------------------------- */

static int test_teardown(void **state)
{
	result_clear();
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

static int group_setup(void **state)
{
	const char *bin = getenv("MITOGEN_BIN"),
		   *dir = getenv("MG_TEST_BUILD_DIR");

	/* TAP lines must not sit in a buffer a spawned process could copy. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (bin && *bin)
		snprintf(tool_bin, sizeof(tool_bin), "%s", bin);
	else if (dir && *dir)
		snprintf(tool_bin, sizeof(tool_bin), "%s/mitogen", dir);
	else
		snprintf(tool_bin, sizeof(tool_bin), "build/mitogen");
	if (access(tool_bin, X_OK) < 0) {
		print_error("%s: %s (set MITOGEN_BIN)\n", tool_bin,
			    strerror(errno));
		return -1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/mg-tool-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		print_error("mkdtemp %s: %s\n", tmpdir, strerror(errno));
		tmpdir[0] = '\0';
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

int main(int argc, char **argv)
{
	/* Every selftest starts so (this one starts no context itself). */
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_run_relays_local, test_teardown),
		cmocka_unit_test_teardown(test_run_relays_fork, test_teardown),
		cmocka_unit_test_teardown(test_run_without_dashes,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_success_and_signal,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_missing_program,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_no_command, test_teardown),
		cmocka_unit_test_teardown(test_run_timeout, test_teardown),
		cmocka_unit_test_teardown(test_call_getuid, test_teardown),
		cmocka_unit_test_teardown(test_call_stat_missing,
					  test_teardown),
		cmocka_unit_test_teardown(test_call_json_args, test_teardown),
		cmocka_unit_test_teardown(test_call_unknown_function,
					  test_teardown),
		cmocka_unit_test_teardown(test_usage_errors, test_teardown),
		cmocka_unit_test_teardown(test_help_and_version, test_teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
