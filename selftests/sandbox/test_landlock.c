// SPDX-License-Identifier: MIT
/*
 * test_landlock.c — Landlock path lists (mg_sandbox_opts.ro/rw/exec) as a
 * user sees them: a ro path can be read and not written, a rw path both,
 * anything else neither, and the refusal names the path ("denied by
 * landlock: PATH"); a program run with mg.run inherits the rules, and one
 * outside the exec list cannot be started (the path is named); a path
 * that does not exist, or is not absolute, fails the creation with a
 * StreamError naming it. Skipped (with the reason) on a kernel without
 * Landlock.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/landlock.h>

#include "selftests/lib/harness.h"
#include "selftests/lib/probes.h"

static struct mg_router *router;
static char tmpdir[PATH_MAX - 64], ro_dir[PATH_MAX], rw_dir[PATH_MAX], other[PATH_MAX];

static bool landlock_missing(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
			   LANDLOCK_CREATE_RULESET_VERSION);

	if (abi >= 0)
		return false;
	print_message("# skip: this kernel has no Landlock (%s)\n", strerror(errno));
	return true;
}

static int setup(void **state)
{
	char path[PATH_MAX + 16];

	mg_test_tmpdir(tmpdir, sizeof(tmpdir), "mg-landlock");
	snprintf(ro_dir, sizeof(ro_dir), "%s/ro", tmpdir);
	snprintf(rw_dir, sizeof(rw_dir), "%s/rw", tmpdir);
	snprintf(other, sizeof(other), "%s/other", tmpdir);
	assert_int_equal(mkdir(ro_dir, 0755), 0);
	assert_int_equal(mkdir(rw_dir, 0755), 0);
	assert_int_equal(mkdir(other, 0755), 0);
	snprintf(path, sizeof(path), "%s/data", ro_dir);
	mg_test_write_text(path, "read me");
	snprintf(path, sizeof(path), "%s/secret", other);
	mg_test_write_text(path, "not for you");
	router = mg_router_new(NULL);
	assert_non_null(router);
	return 0;
}

static int teardown(void **state)
{
	mg_router_unref(router);
	assert_int_equal(mg_test_rm_rf(tmpdir), 0);
	return 0;
}

/* mg.<fn>(args) must fail with EACCES and "denied by landlock: path". */
static void assert_denied(struct mg_context *ctx, const char *fn, struct mg_value *args,
			  const char *path)
{
	struct mg_error err = MG_ERROR_INIT;
	char want[PATH_MAX + 32];

	assert_int_equal(mg_call(ctx, fn, args, NULL, &err), -EREMOTEIO);
	assert_int_equal(err.kind, MG_ERR_CALL);
	snprintf(want, sizeof(want), "denied by landlock: %s", path);
	if (!strstr(err.message, want))
		print_error("%s: '%s', want '%s'\n", fn, err.message, want);
	assert_int_equal(err.errnum, EACCES);
	assert_non_null(strstr(err.message, want));
}

static void test_ro_rw_other(void **state)
{
	const char *ro[] = { ro_dir, NULL }, *rw[] = { rw_dir, NULL };
	/* No capabilities: file modes hold for root too. */
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .ro = ro, .rw = rw, .caps = "" };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;
	struct mg_context *ctx;
	char path[PATH_MAX + 16], path2[PATH_MAX + 16];

	if (landlock_missing()) {
		skip();
		return;
	}
	ctx = mg_test_start_ok(router, &sb, NULL);
	/* ro: read works, write is refused and names the path. */
	snprintf(path, sizeof(path), "%s/data", ro_dir);
	if (mg_call(ctx, "mg.read_file", MG_LIST(mg_str(path)), &res, &err) < 0)
		fail_msg("read ro: %s", err.message);
	assert_int_equal(res->type, MG_BYTES);
	assert_memory_equal(res->bytes, "read me", 7);
	mg_value_free(res);
	snprintf(path2, sizeof(path2), "%s/new", ro_dir);
	assert_denied(ctx, "mg.write_file", MG_LIST(mg_str(path2), mg_bytes("x", 1)), path2);
	/* rw: write then read back. */
	snprintf(path, sizeof(path), "%s/out", rw_dir);
	if (mg_call(ctx, "mg.write_file", MG_LIST(mg_str(path), mg_bytes("hello", 5)), NULL,
		    &err) < 0)
		fail_msg("write rw: %s", err.message);
	res = NULL;
	assert_int_equal(mg_call(ctx, "mg.read_file", MG_LIST(mg_str(path)), &res, &err), 0);
	assert_int_equal(res->len, 5);
	mg_value_free(res);
	/* Elsewhere: neither read nor write. */
	snprintf(path, sizeof(path), "%s/secret", other);
	assert_denied(ctx, "mg.read_file", MG_LIST(mg_str(path)), path);
	snprintf(path, sizeof(path), "%s/new", other);
	assert_denied(ctx, "mg.write_file", MG_LIST(mg_str(path), mg_bytes("x", 1)), path);
	/* Not even for root: the master itself can still write there. */
	mg_test_write_text(path, "fine out here");
	/* A plain EACCES (file modes) is not blamed on Landlock. */
	snprintf(path, sizeof(path), "%s/locked", rw_dir);
	mg_test_write_text(path, "mode 0");
	assert_int_equal(chmod(path, 0), 0);
	assert_int_equal(mg_call(ctx, "mg.read_file", MG_LIST(mg_str(path)), NULL, &err),
			 -EREMOTEIO);
	assert_int_equal(err.errnum, EACCES);
	if (strstr(err.message, "denied by landlock"))
		print_error("%s\n", err.message);
	assert_null(strstr(err.message, "denied by landlock"));
	assert_non_null(strstr(err.message, "open \""));
	mg_test_stop(ctx);
}

static void test_run_inherits(void **state)
{
	const char *rw[] = { rw_dir, NULL };
	const char *ex[] = { "/bin", "/usr", "/lib", "/lib64", "/etc", NULL };
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .rw = rw, .exec = ex };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;
	struct mg_context *ctx;
	char script[PATH_MAX * 2 + 64];
	const struct mg_value *status;

	if (landlock_missing()) {
		skip();
		return;
	}
	ctx = mg_test_start_ok(router, &sb, NULL);
	snprintf(script, sizeof(script), "echo ok > %s/a && echo no > %s/b", rw_dir, other);
	if (mg_call(ctx, "mg.run", MG_LIST(MG_LIST(mg_str("/bin/sh"), mg_str("-c"),
						    mg_str(script))), &res, &err) < 0)
		fail_msg("mg.run: %s", err.message);
	status = mg_map_get(res, "status");
	assert_non_null(status);
	assert_int_not_equal(status->i, 0);	/* the second write failed */
	mg_value_free(res);
	snprintf(script, sizeof(script), "%s/a", rw_dir);
	assert_int_equal(access(script, F_OK), 0);
	snprintf(script, sizeof(script), "%s/b", other);
	assert_int_equal(access(script, F_OK), -1);
	/* A program outside the exec list cannot be run: the path is named. */
	snprintf(script, sizeof(script), "%s/prog", other);
	{
		FILE *f = fopen(script, "w");

		assert_non_null(f);
		fputs("#!/bin/sh\necho hi\n", f);
		fclose(f);
		assert_int_equal(chmod(script, 0755), 0);
	}
	mg_error_clear(&err);
	assert_int_equal(mg_call(ctx, "mg.run", MG_LIST(MG_LIST(mg_str(script))), NULL, &err),
			 -EREMOTEIO);
	if (!strstr(err.message, "denied by landlock: "))
		print_error("%s\n", err.message);
	assert_int_equal(err.errnum, EACCES);
	assert_non_null(strstr(err.message, "denied by landlock: "));
	assert_non_null(strstr(err.message, "/other/prog"));
	mg_test_stop(ctx);
}

static void test_bad_paths(void **state)
{
	const char *missing[] = { "/nonexistent-mg-landlock", NULL };
	const char *relative[] = { "relative/dir", NULL };
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .ro = missing };
	struct mg_error err = MG_ERROR_INIT;
	int before = mg_test_count_children(0);

	if (landlock_missing()) {
		skip();
		return;
	}
	/* Missing: found by the child, which exits 122 with the reason. */
	assert_null(mg_test_start(router, &sb, NULL, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	if (!strstr(err.message, "landlock: /nonexistent-mg-landlock: No such file"))
		print_error("%s\n", err.message);
	assert_non_null(strstr(err.message, "landlock: /nonexistent-mg-landlock: No such file"));
	/* Relative: refused by the parent, nothing started. */
	sb.ro = relative;
	mg_error_clear(&err);
	assert_null(mg_test_start(router, &sb, NULL, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, "'relative/dir' is not absolute"));
	assert_int_equal(mg_test_count_children(0), before);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ro_rw_other, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_inherits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
	};
	return MG_TEST_RUN("sandbox/landlock", tests);
}
