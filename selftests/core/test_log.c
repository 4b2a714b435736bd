// SPDX-License-Identifier: MIT
/*
 * test_log.c — logging across the tree: mg_log_to_file (format, mode,
 * symlink refusal, environment overrides, io lines), debug logs written by
 * every descendant after mg_router_enable_debug, and a grandchild's log
 * lines reaching the master under its own name. Its own binary: logging
 * is process-wide state.
 */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "selftests/lib/harness.h"

/* Where debug logs and profiles go: main() sets TMPDIR to a directory of
 * this run's, so ${TMPDIR}/mitogen-debug-<euid>. */
static char debug_dir[128];

static int say(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const char *text;

	if (mg_value_unpack(args, NULL, "s", &text) < 0)
		return mg_call_fail(call, EINVAL, "say(text)");
	mg_log(MG_LOG_WARNING, "said:%s", text);
	*ret = mg_int(getpid());
	return 0;
}
MG_EXPORT(say);

/* Spend ms of CPU in a function the profile must name. */
static __attribute__((noinline)) int burn_cpu(struct mg_call *call, const struct mg_value *args,
					       struct mg_value **ret)
{
	struct timespec t0, t;
	volatile uint64_t x = 0;
	int ms;

	if (mg_value_unpack(args, NULL, "i", &ms) < 0)
		return mg_call_fail(call, EINVAL, "burn_cpu(ms)");
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	do {
		for (int i = 0; i < 100000; i++)
			x += (uint64_t)i * 7;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
	*ret = mg_int(getpid());
	return 0;
}
MG_EXPORT(burn_cpu);

static char *slurp(const char *path)
{
	static char buf[1 << 16];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_log_to_file(void **state)
{
	char path[] = "/tmp/mg-log-XXXXXX";
	struct stat st;
	int fd = mkstemp(path);
	char *text;

	close(fd);
	chmod(path, 0644);
	assert_int_equal(mg_log_to_file(path, false, true, "INFO"), 0);
	mg_log(MG_LOG_WARNING, "zebra %d", 42);
	mg_log(MG_LOG_DEBUG, "hidden");
	text = slurp(path);
	assert_non_null(text);
	/* "2026-11-25 12:00:00.123456 WARNING master: zebra 42" */
	assert_non_null(strstr(text, " WARNING master: zebra 42\n"));
	assert_true(strlen(text) > 27 && text[19] == '.' && text[26] == ' ');
	assert_null(strstr(text, "hidden"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(mg_log_to_file(path, false, false, "LOUD"), -EINVAL);
	unlink(path);
}

static void test_log_refuses_symlink_and_env_overrides(void **state)
{
	char path[] = "/tmp/mg-log-XXXXXX";
	int fd = mkstemp(path);

	close(fd);
	unlink(path);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_true(mg_log_to_file(path, false, false, "INFO") < 0);
	unlink(path);

	setenv("MITOGEN_LOG_LEVEL", "ERROR", 1);
	assert_int_equal(mg_log_to_file(NULL, false, false, "DEBUG"), 0);
	assert_int_equal(mg_log_get_level(), MG_LOG_ERROR);
	unsetenv("MITOGEN_LOG_LEVEL");
	setenv("MITOGEN_LOG_LEVEL", "nonsense", 1);
	assert_int_equal(mg_log_to_file(NULL, false, false, "DEBUG"), -EINVAL);
	unsetenv("MITOGEN_LOG_LEVEL");
	mg_log_set_level(MG_LOG_INFO);
}

static void test_debug_logs_in_descendants(void **state)
{
	struct mg_router *r = mg_router_new(NULL);
	struct mg_context *a, *g;
	struct mg_value *v = NULL;
	char path[256], *text;
	struct stat st;
	pid_t gpid;

	mg_test_log_capture_start();
	assert_int_equal(mg_router_enable_debug(r), 0);
	MG_OPTS(mg_local_opts, lo, .remote_name = "dbg-child");
	a = mg_local(r, &lo, NULL);
	assert_non_null(a);
	MG_OPTS(mg_local_opts, lg, .remote_name = "dbg-grandchild", .via = a);
	g = mg_local(r, &lg, NULL);
	assert_non_null(g);
	assert_int_equal(mg_call(g, "say", mg_value_build("s", "hello"), &v, NULL), 0);
	gpid = (pid_t)v->i;
	mg_value_free(v);
	/* The grandchild's line reached the master under its name... */
	/* (The bound is generous: reached only when the line never comes.) */
	assert_true(mg_test_log_contains("dbg-grandchild: said:hello", 60));
	/* ... and its own debug log, private to its user. */
	snprintf(path, sizeof(path), "%s/mitogen.%d.log", debug_dir, (int)gpid);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	text = slurp(path);
	assert_non_null(strstr(text, " DEBUG dbg-grandchild: "));
	assert_non_null(strstr(text, "said:hello"));
	unlink(path);
	snprintf(path, sizeof(path), "%s/mitogen.%d.log", debug_dir, (int)mg_context_pid(a));
	assert_int_equal(stat(path, &st), 0);
	unlink(path);
	snprintf(path, sizeof(path), "%s/mitogen.%d.log", debug_dir, (int)getpid());
	assert_int_equal(stat(path, &st), 0);
	mg_context_shutdown(g, true);
	mg_context_shutdown(a, true);
	mg_context_unref(g);
	mg_context_unref(a);
	mg_router_unref(r);
	unlink(path);
	mg_test_log_capture_stop();
}

static void test_io_lines(void **state)
{
	char path[] = "/tmp/mg-log-XXXXXX";
	int fd = mkstemp(path);
	struct mg_router *r = mg_router_new(NULL);
	struct mg_context *c = mg_local(r, NULL, NULL);

	close(fd);
	assert_int_equal(mg_log_to_file(path, true, false, "DEBUG"), 0);
	assert_int_equal(mg_call(c, "mg.getpid", NULL, NULL, NULL), 0);
	mg_context_shutdown(c, true);
	char *text = slurp(path), want[64];

	/* The call went out and its reply came back, both logged. */
	snprintf(want, sizeof(want), "io: 0 -> %u handle 101 ", mg_context_remote_id(c));
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), "io: %u -> 0 handle ", mg_context_remote_id(c));
	assert_non_null(strstr(text, want));
	mg_context_unref(c);
	mg_router_unref(r);
	mg_log_to_file(NULL, false, false, "INFO");
	unlink(path);
}

static void test_profiling_writes_folded_stacks(void **state)
{
	struct mg_router *r = mg_router_new(NULL);
	MG_OPTS(mg_local_opts, lo, .remote_name = "prof", .profiling = true);
	struct mg_context *c = mg_local(r, &lo, NULL);
	struct mg_value *v = NULL;
	char path[256], *text, *line;
	struct stat st;
	pid_t pid;

	assert_non_null(c);
	assert_int_equal(mg_call(c, "burn_cpu", mg_value_build("i", 300), &v, NULL), 0);
	pid = (pid_t)v->i;
	mg_value_free(v);
	assert_int_equal(mg_context_shutdown(c, true), 0);	/* graceful exit */
	snprintf(path, sizeof(path), "%s/mitogen.stats.%d.main.folded", debug_dir, (int)pid);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	text = slurp(path);
	/* "main;...;serve;burn_cpu N" with N samples of 1 ms CPU each. */
	line = strstr(text, ";burn_cpu");
	assert_non_null(line);
	assert_int_equal(strncmp(text, "main;", 5), 0);
	unlink(path);
	mg_context_unref(c);
	mg_router_unref(r);
	/* The broker thread wrote its own. */
	glob_t g;

	snprintf(path, sizeof(path), "%s/mitogen.stats.%d.broker.*.folded", debug_dir, (int)pid);
	assert_int_equal(glob(path, 0, NULL, &g), 0);
	assert_int_equal(g.gl_pathc, 1);
	unlink(g.gl_pathv[0]);
	globfree(&g);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_to_file),
		cmocka_unit_test(test_log_refuses_symlink_and_env_overrides),
		cmocka_unit_test(test_debug_logs_in_descendants),
		cmocka_unit_test(test_io_lines),
		cmocka_unit_test(test_profiling_writes_folded_stacks),
	};

	char tmp[] = "/tmp/mg-test-log.XXXXXX", cmd[64];
	int ret;

	mg_main(argc, argv);
	/* Debug logs and profiles go to the private directory under TMPDIR:
	 * ours, for this run (children inherit it). */
	if (!mkdtemp(tmp))
		return 1;
	setenv("TMPDIR", tmp, 1);
	unsetenv("XDG_RUNTIME_DIR");
	snprintf(debug_dir, sizeof(debug_dir), "%s/mitogen-debug-%u", tmp, (unsigned)geteuid());
	ret = MG_TEST_RUN("core/log", tests);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", tmp);
	return ret;
}
