// SPDX-License-Identifier: MIT
/*
 * selftests/agent/test_builtins.c — the built-in "mg." functions
 * (agent/builtins.c), called for real through mg_call in a local child
 * context started from this very binary.
 *
 * Owns: its group fixture (a router, one local child, a mkdtemp directory)
 * and the tests below. Must not touch: library internals.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <mitogen/mitogen.h>

/* cmocka.h needs these first. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define TEST_MARK_NAME "MG_TEST_BUILTINS_MARK"
#define TEST_MARK_VALUE "inherited-by-the-child"

static struct mg_router *router;
static struct mg_context *ctx;
static char tmpdir[PATH_MAX];
/* Result of the last call; freed by the next call and by test_teardown. */
static struct mg_value *res;

/* --- helpers ----------------------------------------------------------- */

/* Call fn(args) in the child (args taken); the result lands in res. */
static int call(const char *fn, struct mg_value *args, struct mg_error *err)
{
	mg_value_free(res);
	res = NULL;
	mg_error_clear(err);
	return mg_call(ctx, fn, args, &res, err);
}

/* Call that must succeed; prints the error otherwise. */
#define CALL_OK(fn, args)                                               \
	do {                                                            \
		struct mg_error e_ = MG_ERROR_INIT;                     \
		char b_[MG_ERROR_MSG_MAX + 2 * MG_ERROR_NAME_MAX + 64]; \
		if (call((fn), (args), &e_) != 0)                       \
			fail_msg("%s failed: %s", (fn),                 \
				 mg_error_str(&e_, b_, sizeof(b_)));    \
	} while (0)

/* Call that must fail with a CallError carrying errnum, raised by fn. */
static void call_fails(const char *fn, struct mg_value *args, int errnum,
		       struct mg_error *err)
{
	assert_int_equal(call(fn, args, err), -EREMOTEIO);
	assert_int_equal(err->kind, MG_ERR_CALL);
	assert_int_equal(err->errnum, errnum);
	assert_string_equal(err->function, fn);
}

/* Field key of the map res, of the given type. */
static const struct mg_value *field(const char *key, enum mg_type type)
{
	const struct mg_value *v;

	assert_non_null(res);
	assert_int_equal(res->type, MG_MAP);
	v = mg_map_get(res, key);
	if (!v)
		fail_msg("no \"%s\" in the result", key);
	assert_int_equal(v->type, type);
	return v;
}

/* The bytes field key of a mg.run result equals (p, n). */
static void assert_output(const char *key, const void *p, size_t n)
{
	const struct mg_value *v = field(key, MG_BYTES);

	assert_int_equal(v->len, n);
	assert_memory_equal(v->bytes, p, n);
}

static void assert_status(int64_t status)
{
	assert_int_equal(field("status", MG_INT)->i, status);
}

static void tmp_path(char *buf, size_t size, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", tmpdir, name);

	assert_true(n > 0 && (size_t)n < size);
}

/* Entries in tmpdir, "." and ".." excluded. */
static int tmpdir_entries(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* --- mg.run ------------------------------------------------------------- */

static void test_run_argv_env_cwd_stdin(void **state)
{
	struct mg_value *env = mg_map();
	char real[PATH_MAX], expect[PATH_MAX + 64];
	int n;

	assert_non_null(realpath(tmpdir, real));
	assert_int_equal(mg_map_set(env, "FOO", mg_str("bar baz")), 0);
	assert_int_equal(mg_map_set(env, "PATH", mg_str("/usr/bin:/bin")), 0);
	CALL_OK("mg.run",
		MG_LIST(MG_LIST(mg_str("sh"), mg_str("-c"),
				mg_str("printf '%s|%s|%s|' \"$FOO\" \"$(pwd -P)\" \"$1\"; cat"),
				mg_str("sh"), mg_str("arg one")),
			env, mg_str(tmpdir), mg_str("from stdin")));
	n = snprintf(expect, sizeof(expect), "bar baz|%s|arg one|from stdin",
		     real);
	assert_output("stdout", expect, n);
	assert_output("stderr", "", 0);
	assert_status(0);
}

static void test_run_env_nil_inherits(void **state)
{
	CALL_OK("mg.run",
		MG_LIST(MG_LIST(mg_str("sh"), mg_str("-c"),
				mg_str("printf %s \"$" TEST_MARK_NAME "\"")),
			mg_nil(), mg_nil(), mg_nil()));
	assert_output("stdout", TEST_MARK_VALUE, strlen(TEST_MARK_VALUE));
	assert_status(0);
}

static void test_run_env_map_replaces(void **state)
{
	struct mg_value *env = mg_map();

	assert_int_equal(mg_map_set(env, "A", mg_str("1")), 0);
	/* env(1) prints exactly its environment: only A, nothing inherited */
	CALL_OK("mg.run", MG_LIST(MG_LIST(mg_str("env")), env));
	assert_output("stdout", "A=1\n", 4);
	assert_status(0);
}

static void test_run_stdin_nil_is_dev_null(void **state)
{
	/* cat must see EOF at once, not the agent's own stdin */
	CALL_OK("mg.run", MG_LIST(MG_LIST(mg_str("cat"))));
	assert_output("stdout", "", 0);
	assert_status(0);
}

static void test_run_only_stdio_fds(void **state)
{
	const struct mg_value *out;
	char *copy, *line, *save = NULL;

	/* ls opens one fd of its own (3) to read the directory */
	CALL_OK("mg.run",
		MG_LIST(MG_LIST(mg_str("ls"), mg_str("/proc/self/fd"))));
	assert_status(0);
	out = field("stdout", MG_BYTES);
	copy = strndup((const char *)out->bytes, out->len);
	assert_non_null(copy);
	for (line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (atoi(line) > 3) {
			free(copy);
			fail_msg("the program inherited fd %s", line);
		}
	}
	free(copy);
}

static void test_run_large_both_ways(void **state)
{
	const size_t n = 8u << 20;
	uint8_t *in = malloc(n);
	const struct mg_value *out, *err;

	assert_non_null(in);
	for (size_t i = 0; i < n; i++)
		in[i] = (uint8_t)(i * 7 + i / 4096);
	/* 8 MiB in and out through cat while 8 MiB more go to stderr at the
	 * same time: only a loop serving all three pipes finishes this */
	CALL_OK("mg.run",
		MG_LIST(MG_LIST(mg_str("sh"), mg_str("-c"),
				mg_str("head -c 8388608 /dev/zero >&2 & cat; wait")),
			mg_nil(), mg_nil(), mg_bytes(in, n)));
	assert_status(0);
	out = field("stdout", MG_BYTES);
	err = field("stderr", MG_BYTES);
	assert_int_equal(out->len, n);
	assert_true(memcmp(out->bytes, in, n) == 0);
	assert_int_equal(err->len, n);
	for (size_t i = 0; i < n; i++)
		if (err->bytes[i] != 0)
			fail_msg("stderr byte %zu is %u", i, err->bytes[i]);
	free(in);
}

static void test_run_stdin_not_read(void **state)
{
	const size_t n = 4u << 20;
	uint8_t *in = calloc(1, n);

	assert_non_null(in);
	/* the program exits without reading: feeding stops, no SIGPIPE kills
	 * the agent, the status is the program's */
	CALL_OK("mg.run",
		MG_LIST(MG_LIST(mg_str("sh"), mg_str("-c"), mg_str("exit 5")),
			mg_nil(), mg_nil(), mg_bytes(in, n)));
	free(in);
	assert_status(5);
	CALL_OK("mg.noop", NULL);
}

static void test_run_exit_status(void **state)
{
	CALL_OK("mg.run",
		MG_LIST(MG_LIST(mg_str("sh"), mg_str("-c"),
				mg_str("echo out; echo err >&2; exit 7"))));
	assert_output("stdout", "out\n", 4);
	assert_output("stderr", "err\n", 4);
	assert_status(7);
}

static void test_run_killed_by_signal(void **state)
{
	CALL_OK("mg.run", MG_LIST(MG_LIST(mg_str("sh"), mg_str("-c"),
					  mg_str("kill -KILL $$"))));
	assert_status(-SIGKILL);
	CALL_OK("mg.run", MG_LIST(MG_LIST(mg_str("sh"), mg_str("-c"),
					  mg_str("kill -TERM $$"))));
	assert_status(-SIGTERM);
}

static void test_run_missing_program(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	call_fails("mg.run", MG_LIST(MG_LIST(mg_str("mg-no-such-program-x7"))),
		   ENOENT, &err);
	assert_non_null(strstr(err.message, "mg-no-such-program-x7"));
	call_fails("mg.run", MG_LIST(MG_LIST(mg_str("/nonexistent/mg-prog"))),
		   ENOENT, &err);
	assert_non_null(strstr(err.message, "/nonexistent/mg-prog"));
	/* a missing cwd fails the same way, naming it */
	call_fails("mg.run",
		   MG_LIST(MG_LIST(mg_str("true")), mg_nil(),
			   mg_str("/nonexistent-dir")),
		   ENOENT, &err);
	assert_non_null(strstr(err.message, "/nonexistent-dir"));
}

static void test_run_bad_args(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *env = mg_map();

	call_fails("mg.run", MG_LIST(mg_str("echo hi")), EINVAL, &err);
	call_fails("mg.run", MG_LIST(mg_list()), EINVAL, &err);
	call_fails("mg.run", MG_LIST(MG_LIST(mg_str("true"), mg_int(1))),
		   EINVAL, &err);
	call_fails("mg.run", NULL, EINVAL, &err);
	assert_int_equal(mg_map_set(env, "A=B", mg_str("1")), 0);
	call_fails("mg.run", MG_LIST(MG_LIST(mg_str("true")), env), EINVAL,
		   &err);
	call_fails(
		"mg.run",
		MG_LIST(MG_LIST(mg_str("true")), mg_nil(), mg_nil(), mg_int(3)),
		EINVAL, &err);
}

/* --- files ---------------------------------------------------------------- */

static void test_file_round_trip(void **state)
{
	static const char data[] = "binary\0data\n\xff";
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX], link[PATH_MAX];
	const struct mg_value *v;

	tmp_path(path, sizeof(path), "file");
	CALL_OK("mg.write_file",
		MG_LIST(mg_str(path), mg_bytes(data, sizeof(data)),
			mg_int(0600)));
	assert_true(res == NULL || res->type == MG_NIL);

	CALL_OK("mg.read_file", MG_LIST(mg_str(path)));
	assert_non_null(res);
	assert_int_equal(res->type, MG_BYTES);
	assert_int_equal(res->len, sizeof(data));
	assert_memory_equal(res->bytes, data, sizeof(data));

	CALL_OK("mg.stat", MG_LIST(mg_str(path)));
	assert_int_equal(field("size", MG_INT)->i, sizeof(data));
	assert_int_equal(field("mode", MG_INT)->i, 0600);
	assert_int_equal(field("uid", MG_INT)->i, getuid());
	assert_int_equal(field("gid", MG_INT)->i, getegid());
	assert_string_equal(field("type", MG_STR)->str, "file");
	v = field("mtime", MG_FLOAT);
	assert_true(v->f > 1e9);

	/* replace, as a str, with the default mode; no temporary file stays */
	CALL_OK("mg.write_file", MG_LIST(mg_str(path), mg_str("text")));
	CALL_OK("mg.read_file", MG_LIST(mg_str(path)));
	assert_int_equal(res->len, 4);
	assert_memory_equal(res->bytes, "text", 4);
	CALL_OK("mg.stat", MG_LIST(mg_str(path)));
	assert_int_equal(field("mode", MG_INT)->i, 0644);
	assert_int_equal(field("size", MG_INT)->i, 4);
	assert_int_equal(tmpdir_entries(), 1);

	CALL_OK("mg.stat", MG_LIST(mg_str(tmpdir)));
	assert_string_equal(field("type", MG_STR)->str, "dir");
	tmp_path(link, sizeof(link), "link");
	assert_int_equal(symlink(path, link), 0);
	CALL_OK("mg.stat", MG_LIST(mg_str(link)));
	assert_string_equal(field("type", MG_STR)->str, "symlink");
	CALL_OK("mg.unlink", MG_LIST(mg_str(link)));
	CALL_OK("mg.stat", MG_LIST(mg_str("/dev/null")));
	assert_string_equal(field("type", MG_STR)->str, "other");

	CALL_OK("mg.unlink", MG_LIST(mg_str(path)));
	assert_true(res == NULL || res->type == MG_NIL);
	call_fails("mg.stat", MG_LIST(mg_str(path)), ENOENT, &err);
	call_fails("mg.unlink", MG_LIST(mg_str(path)), ENOENT, &err);
	assert_non_null(strstr(err.message, path));
	assert_int_equal(tmpdir_entries(), 0);
}

static void test_write_file_errors(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX];

	call_fails("mg.write_file",
		   MG_LIST(mg_str("/nonexistent-dir/f"), mg_str("x")), ENOENT,
		   &err);
	assert_non_null(strstr(err.message, "/nonexistent-dir/f"));
	tmp_path(path, sizeof(path), "f");
	call_fails("mg.write_file",
		   MG_LIST(mg_str(path), mg_str("x"), mg_int(010000)), EINVAL,
		   &err);
	call_fails("mg.write_file", MG_LIST(mg_str(path)), EINVAL, &err);
	assert_int_equal(tmpdir_entries(), 0);
}

static void test_stat_missing(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	assert_int_equal(
		call("mg.stat", MG_LIST(mg_str("/nonexistent/mg-stat")), &err),
		-EREMOTEIO);
	assert_int_equal(err.kind, MG_ERR_CALL);
	assert_int_equal(err.errnum, ENOENT);
	assert_string_equal(err.function, "mg.stat");
	assert_non_null(strstr(err.message, "/nonexistent/mg-stat"));
}

static void test_read_file_errors(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	call_fails("mg.read_file", MG_LIST(mg_str("/nonexistent/mg-read")),
		   ENOENT, &err);
	assert_non_null(strstr(err.message, "/nonexistent/mg-read"));
	call_fails("mg.read_file", MG_LIST(mg_str(tmpdir)), EISDIR, &err);
	call_fails("mg.read_file", MG_LIST(mg_int(1)), EINVAL, &err);
	/* /proc files say size 0 but have content */
	CALL_OK("mg.read_file", MG_LIST(mg_str("/proc/self/stat")));
	assert_true(res->len > 0);
}

/* --- process identity ----------------------------------------------------- */

static void test_getpid(void **state)
{
	CALL_OK("mg.getpid", NULL);
	assert_int_equal(res->type, MG_INT);
	assert_int_not_equal(res->i, getpid());
	assert_int_equal(res->i, mg_context_pid(ctx));
}

static void test_getuid(void **state)
{
	CALL_OK("mg.getuid", NULL);
	assert_int_equal(res->type, MG_INT);
	assert_int_equal(res->i, getuid());
}

static void test_uname(void **state)
{
	struct utsname u;

	assert_int_equal(uname(&u), 0);
	CALL_OK("mg.uname", NULL);
	assert_string_equal(field("machine", MG_STR)->str, u.machine);
	assert_string_equal(field("sysname", MG_STR)->str, u.sysname);
	assert_string_equal(field("release", MG_STR)->str, u.release);
	field("nodename", MG_STR);
	field("version", MG_STR);
}

static void test_environ(void **state)
{
	CALL_OK("mg.environ", NULL);
	assert_string_equal(field(TEST_MARK_NAME, MG_STR)->str,
			    TEST_MARK_VALUE);
}

static void test_noop_and_extra_args(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	CALL_OK("mg.noop", NULL);
	assert_true(res == NULL || res->type == MG_NIL);
	call_fails("mg.noop", MG_LIST(mg_int(1)), EINVAL, &err);
	call_fails("mg.getpid", MG_LIST(mg_str("x")), EINVAL, &err);
}

/* --- fixture -------------------------------------------------------------- */

static int test_teardown(void **state)
{
	mg_value_free(res);
	res = NULL;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

static int group_setup(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char buf[MG_ERROR_MSG_MAX + 2 * MG_ERROR_NAME_MAX + 64];

	/* TAP lines must not sit in a buffer a forked process could copy. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(tmpdir, sizeof(tmpdir), "%s/mg-builtins-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		print_error("mkdtemp %s: %s\n", tmpdir, strerror(errno));
		return -1;
	}
	/* the child inherits our environment: test_environ looks for this */
	setenv(TEST_MARK_NAME, TEST_MARK_VALUE, 1);
	router = mg_router_new(NULL);
	if (!router) {
		print_error("mg_router_new: %s\n", strerror(errno));
		return -1;
	}
	ctx = mg_local(router, NULL, &err);
	if (!ctx) {
		print_error("mg_local: %s\n",
			    mg_error_str(&err, buf, sizeof(buf)));
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	if (ctx)
		mg_context_shutdown(ctx, true);
	ctx = mg_context_unref(ctx);
	router = mg_router_unref(router);
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

int main(int argc, char **argv)
{
	/* A context started by these tests execs this binary: it becomes an
	 * agent here and never runs the tests. */
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_run_argv_env_cwd_stdin,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_env_nil_inherits,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_env_map_replaces,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_stdin_nil_is_dev_null,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_only_stdio_fds,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_large_both_ways,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_stdin_not_read,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_exit_status, test_teardown),
		cmocka_unit_test_teardown(test_run_killed_by_signal,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_missing_program,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_bad_args, test_teardown),
		cmocka_unit_test_teardown(test_file_round_trip, test_teardown),
		cmocka_unit_test_teardown(test_write_file_errors,
					  test_teardown),
		cmocka_unit_test_teardown(test_stat_missing, test_teardown),
		cmocka_unit_test_teardown(test_read_file_errors, test_teardown),
		cmocka_unit_test_teardown(test_getpid, test_teardown),
		cmocka_unit_test_teardown(test_getuid, test_teardown),
		cmocka_unit_test_teardown(test_uname, test_teardown),
		cmocka_unit_test_teardown(test_environ, test_teardown),
		cmocka_unit_test_teardown(test_noop_and_extra_args,
					  test_teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
