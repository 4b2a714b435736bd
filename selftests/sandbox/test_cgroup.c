// SPDX-License-Identifier: MIT
/*
 * test_cgroup.c — tenant cgroups (mg_sandbox_opts.tenant, .pids_max,
 * .memory_max): a tenant child is in <cgroup2 mount>/mitogen/<tenant>
 * (the directory sandbox_tenant_cgroup() returns, where eBPF programs will
 * hang), its pids limit holds (fork fails with EAGAIN once the tenant has
 * pids_max tasks), its memory limit is set where the memory controller is
 * (cgroup2, or v1 on hybrid machines), two children of one tenant share
 * the group, and a bad tenant name fails creation with a StreamError.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "selftests/lib/harness.h"
#include "selftests/lib/probes.h"
#include "sandbox/sandbox.h"

/* The children run my_cgroups and fork_until_fail: selftests/lib/probes.c. */

/* --- helpers ---------------------------------------------------------------- */

static struct mg_router *router;
static char tenant[64];

static int setup(void **state)
{
	snprintf(tenant, sizeof(tenant), "mgtest-%d", (int)getpid());
	router = mg_router_new(NULL);
	assert_non_null(router);
	return 0;
}

/* Remove the tenant's groups (cgroup2 and any v1 one) once empty. */
static int teardown(void **state)
{
	char cmd[512];

	mg_router_unref(router);
	snprintf(cmd, sizeof(cmd),
		 "find /sys/fs/cgroup /run/mitogen/cgroup2 -depth -type d -path '*/mitogen/%s' "
		 "-exec rmdir {} + 2>/dev/null; true", tenant);
	return system(cmd) == 0 ? 0 : -1;
}

/*
 * The first start of a tenant child: NULL with the reason printed when
 * this machine cannot give tenants cgroups (read-only cgroupfs in a
 * container, no such controller): the test skips.
 */
static struct mg_context *start_or_skip(const struct mg_sandbox_opts *sb, bool *skipped)
{
	static const char *const missing[] = { "no pids controller", "no memory controller",
					       "Read-only file system", "Permission denied" };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx = mg_test_start(router, sb, NULL, &err);

	*skipped = false;
	if (ctx)
		return ctx;
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
		if (strstr(err.message, "cgroup") && strstr(err.message, missing[i])) {
			print_message("# skip: %s\n", err.message);
			*skipped = true;
			return NULL;
		}
	fail_msg("mg_local: %s", err.message);
	return NULL;
}

/* The line of /proc/self/cgroup text for hierarchy key ("" for cgroup2,
 * "pids", "memory"), its path part copied to out. */
static bool cgroup_of(const char *text, const char *key, char *out, size_t n)
{
	char copy[4096], *save = NULL;

	snprintf(copy, sizeof(copy), "%s", text);
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *a = strchr(l, ':'), *b = a ? strchr(a + 1, ':') : NULL;

		if (!b)
			continue;
		*b = '\0';
		if (!strcmp(a + 1, key)) {
			snprintf(out, n, "%s", b + 1);
			return true;
		}
	}
	return false;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && !strcmp(s + a - b, tail);
}

/* --- tests ------------------------------------------------------------------- */

static void test_tenant_pids_limit(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .tenant = tenant, .pids_max = 8 };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *text = NULL, *res = NULL;
	struct mg_context *ctx, *ctx2;
	char dir[PATH_MAX], path[PATH_MAX], want[128];
	bool skipped;

	ctx = start_or_skip(&sb, &skipped);
	if (skipped) {
		skip();
		return;
	}
	/* In <cgroup2>/mitogen/<tenant>: the directory the library names. */
	snprintf(want, sizeof(want), "/mitogen/%s", tenant);
	assert_int_equal(sandbox_tenant_cgroup(tenant, dir, sizeof(dir)), 0);
	assert_true(ends_with(dir, want));
	assert_int_equal(access(dir, F_OK), 0);
	if (mg_call(ctx, "my_cgroups", NULL, &text, &err) < 0)
		fail_msg("my_cgroups: %s", err.message);
	assert_true(cgroup_of(text->str, "", path, sizeof(path)));
	assert_string_equal(path, want);
	/* The pids limit holds, wherever the controller lives. */
	if (!cgroup_of(text->str, "pids", path, sizeof(path)))
		assert_true(cgroup_of(text->str, "", path, sizeof(path)));
	assert_true(ends_with(path, want));
	mg_value_free(text);
	if (mg_call(ctx, "fork_until_fail", MG_LIST(mg_int(32)), &res, &err) < 0)
		fail_msg("fork_until_fail: %s", err.message);
	/* main + broker thread + forks <= 8 */
	assert_true(res->items[0].i >= 1 && res->items[0].i <= 6);
	assert_int_equal(res->items[1].i, EAGAIN);
	mg_value_free(res);
	/* A second child of the tenant shares the limit: the first's two
	 * threads leave it fewer forks. */
	ctx2 = mg_test_start(router, &sb, NULL, &err);
	if (!ctx2)
		fail_msg("mg_local 2: %s", err.message);
	res = NULL;
	assert_int_equal(mg_call(ctx2, "fork_until_fail", MG_LIST(mg_int(32)), &res, &err), 0);
	assert_true(res->items[0].i <= 4);
	assert_int_equal(res->items[1].i, EAGAIN);
	mg_value_free(res);
	mg_test_stop(ctx2);
	mg_test_stop(ctx);
	/* Without a tenant: forks are not limited to 8. */
	struct mg_sandbox_opts plain = { .sz = sizeof(plain), .seccomp = "default" };

	ctx = mg_test_start(router, &plain, NULL, &err);
	assert_non_null(ctx);
	res = NULL;
	assert_int_equal(mg_call(ctx, "fork_until_fail", MG_LIST(mg_int(16)), &res, &err), 0);
	assert_int_equal(res->items[0].i, 16);
	mg_value_free(res);
	mg_test_stop(ctx);
}

static void test_tenant_memory_limit(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .tenant = tenant,
				      .memory_max = 256 << 20 };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *text = NULL;
	char path[PATH_MAX], file[PATH_MAX + 64], want[128];
	struct mg_context *ctx;
	long long v = 0;
	bool skipped;
	FILE *f;

	ctx = start_or_skip(&sb, &skipped);
	if (skipped) {
		skip();
		return;
	}
	snprintf(want, sizeof(want), "/mitogen/%s", tenant);
	assert_int_equal(mg_call(ctx, "my_cgroups", NULL, &text, &err), 0);
	if (cgroup_of(text->str, "memory", path, sizeof(path))) {
		/* v1 (hybrid machine): the same-named group in the memory tree. */
		assert_true(ends_with(path, want));
		snprintf(file, sizeof(file), "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", path);
	} else {
		assert_int_equal(sandbox_tenant_cgroup(tenant, path, sizeof(path)), 0);
		snprintf(file, sizeof(file), "%s/memory.max", path);
	}
	mg_value_free(text);
	f = fopen(file, "re");
	if (!f)
		fail_msg("%s: %s", file, strerror(errno));
	assert_int_equal(fscanf(f, "%lld", &v), 1);
	fclose(f);
	assert_int_equal(v, 256 << 20);
	mg_test_stop(ctx);
}

static void test_bad_tenant(void **state)
{
	static const char *const bad[] = { "", "..", "a/b", "x y",
		"0123456789012345678901234567890123456789012345678901234567890123456789" };
	struct mg_sandbox_opts sb = { .sz = sizeof(sb) };
	struct mg_error err = MG_ERROR_INIT;
	char dir[PATH_MAX];
	int before = mg_test_count_children(0);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sb.tenant = bad[i];
		mg_error_clear(&err);
		assert_null(mg_test_start(router, &sb, NULL, &err));
		assert_int_equal(err.kind, MG_ERR_STREAM);
		assert_non_null(strstr(err.message, "is not 1-64 letters"));
		assert_int_equal(sandbox_tenant_cgroup(bad[i], dir, sizeof(dir)), -EINVAL);
	}
	/* Limits without a tenant. */
	sb.tenant = NULL;
	sb.pids_max = 4;
	mg_error_clear(&err);
	assert_null(mg_test_start(router, &sb, NULL, &err));
	assert_non_null(strstr(err.message, "pids_max and memory_max need a tenant"));
	assert_int_equal(mg_test_count_children(0), before);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tenant_pids_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_memory_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_tenant, setup, teardown),
	};
	return MG_TEST_RUN("sandbox/cgroup", tests);
}
