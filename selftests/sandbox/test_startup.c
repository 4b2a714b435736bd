// SPDX-License-Identifier: MIT
/*
 * test_startup.c — the short cuts of a sandboxed start (sandbox/sandbox.c,
 * sandbox/caps.c) keep every guarantee:
 *
 *  - the seccomp filter the parent compiles travels with a SHA-256 binding
 *    it to its policy: a child given the intact filter refuses what the
 *    profile refuses; a child given a stale one (another policy's program)
 *    or a damaged one (a flipped byte, a bad sum) does not load it, says
 *    so, and compiles the policy itself, so the profile is still in force;
 *  - the capabilities a child keeps reach it early (SANDBOX_BSET_ENV) so it
 *    drops the rest from its bounding set before its first thread: every
 *    thread ends with exactly the keep set, the variable is gone from the
 *    child's environment, a stray one in the master's environment changes
 *    nothing, and a bad value drops nothing (the step after BOOT does it);
 *  - the net namespace pool, drained by a burst and refilled in a pause,
 *    never hands one namespace to two children, and lo is up in each.
 *
 * Uses library internals (sandbox_to_value, local_start): the tests build
 * the BOOT "sandbox" map themselves to damage it.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "selftests/lib/harness.h"
#include "selftests/lib/probes.h"
#include "master/master.h"
#include "sandbox/sandbox.h"

/* --- functions the children run ---------------------------------------- */

/* The hex value of "KEY:" in /proc/self/task/TID/status, for each thread:
 * cap_bnd("CapBnd:") -> [values...] */
static int status_field(struct mg_call *call, const struct mg_value *args,
			struct mg_value **ret)
{
	const char *key = args && args->type == MG_LIST && args->len == 1 &&
			  args->items[0].type == MG_STR ? args->items[0].str : NULL;
	struct mg_value *l = mg_list();
	char path[64], line[256];
	struct dirent *de;
	DIR *d;

	if (!key)
		return mg_call_fail(call, EINVAL, "status_field(KEY)");
	d = opendir("/proc/self/task");
	if (!d)
		return mg_call_fail(call, errno, "/proc/self/task: %s", strerror(errno));
	while ((de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%.16s/status", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, key, strlen(key)))
				mg_list_append(l, mg_int((int64_t)strtoull(line + strlen(key), NULL,
									   16)));
		fclose(f);
	}
	closedir(d);
	*ret = l;
	return 0;
}
MG_EXPORT(status_field);

/* net_ns_ino() -> inode of this process's net namespace */
static int net_ns_ino(struct mg_call *call, const struct mg_value *args,
		      struct mg_value **ret)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st) < 0)
		return mg_call_fail(call, errno, "/proc/self/ns/net: %s", strerror(errno));
	*ret = mg_int((int64_t)st.st_ino);
	return 0;
}
MG_EXPORT(net_ns_ino);

/* --- helpers ------------------------------------------------------------ */

static struct mg_router *router;
static char tmpdir[PATH_MAX];

static int setup(void **state)
{
	mg_test_tmpdir(tmpdir, sizeof(tmpdir), "mg-startup");
	router = mg_router_new(NULL);
	assert_non_null(router);
	return 0;
}

static int teardown(void **state)
{
	mg_router_unref(router);
	router = NULL;
	unsetenv(SANDBOX_BSET_ENV);
	assert_int_equal(mg_test_rm_rf(tmpdir), 0);
	return 0;
}

static struct mg_value *map_of(const struct mg_sandbox_opts *o)
{
	char why[512] = "";
	struct mg_value *v = sandbox_to_value(o, why, sizeof(why));

	if (!v)
		fail_msg("sandbox_to_value: %s", why);
	return v;
}

/* A local child started with the prepared map v (freed here). */
static struct mg_context *start_map(struct mg_value *v)
{
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 120);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx = local_start(router, &lo, 0, v, &err);

	mg_value_free(v);
	if (!ctx)
		fail_msg("local_start: %s", err.message);
	return ctx;
}

static const char *const refused[] = { "mount", "ptrace_attach", "init_module", "bpf" };
static const char *const refused_name[] = { "mount", "ptrace", "init_module", "bpf" };
#define NREFUSED (sizeof(refused) / sizeof(refused[0]))

/* ctx runs the default profile: refuses, names the syscall, works otherwise. */
static void assert_default_profile(struct mg_context *ctx)
{
	struct mg_value *res = NULL;
	struct mg_error err = MG_ERROR_INIT;

	mg_test_assert_refused(ctx, "default", refused, refused_name, NREFUSED);
	if (mg_call(ctx, "mg.uname", NULL, &res, &err) < 0)
		fail_msg("mg.uname: %s", err.message);
	mg_value_free(res);
}

/* --- tests -------------------------------------------------------------- */

static void test_compiled_filter_refuses(void **state)
{
	MG_OPTS(mg_sandbox_opts, sb, .seccomp = "default");
	struct mg_value *v = map_of(&sb);
	const struct mg_value *bpf = mg_map_get(v, "bpf"), *sum = mg_map_get(v, "bpf_sum");
	struct mg_context *ctx;

	/* The parent compiled it and bound it to the policy. */
	assert_non_null(bpf);
	assert_int_equal(bpf->type, MG_BYTES);
	assert_true(bpf->len > 0 && bpf->len % 8 == 0);
	assert_non_null(sum);
	assert_int_equal(sum->len, 32);
	mg_test_log_capture_start();
	ctx = start_map(v);
	assert_default_profile(ctx);
	/* Loaded as compiled: no complaint. */
	assert_false(mg_test_log_contains("does not match policy", 0));
	mg_test_stop(ctx);
	mg_test_log_capture_stop();
}

/* Start with the default profile's map after damage(v); the child must
 * say so and still run the default profile. */
static void check_rejected(void (*damage)(struct mg_value *v))
{
	MG_OPTS(mg_sandbox_opts, sb, .seccomp = "default");
	struct mg_value *v = map_of(&sb);
	struct mg_context *ctx;

	damage(v);
	mg_test_log_capture_start();
	ctx = start_map(v);
	assert_default_profile(ctx);
	if (!mg_test_log_contains("compiled filter does not match policy 'default'", 60)) {
		mg_test_log_print();
		fail_msg("no warning about the rejected filter");
	}
	mg_test_stop(ctx);
	mg_test_log_capture_stop();
}

static struct mg_value *stale_bpf;

/* Another policy's program (refuses only uname), with default's sum. */
static void make_stale(struct mg_value *v)
{
	mg_map_set(v, "bpf", mg_value_copy(stale_bpf));
}

static void flip_byte(struct mg_value *v)
{
	const struct mg_value *bpf = mg_map_get(v, "bpf");
	uint8_t *copy = malloc(bpf->len);

	assert_non_null(copy);
	memcpy(copy, bpf->bytes, bpf->len);
	copy[bpf->len / 2] ^= 0x01;
	mg_map_set(v, "bpf", mg_bytes(copy, bpf->len));
	free(copy);
}

static void bad_sum(struct mg_value *v)
{
	mg_map_set(v, "bpf_sum", mg_bytes("short", 5));
}

static void wrong_arch(struct mg_value *v)
{
	const struct mg_value *arch = mg_map_get(v, "bpf_arch");

	mg_map_set(v, "bpf_arch", mg_int(arch->i ^ 1));
}

static void test_stale_or_damaged_filter_rejected(void **state)
{
	char path[PATH_MAX + 16];
	MG_OPTS(mg_sandbox_opts, other, .seccomp = path);
	struct mg_value *v;

	snprintf(path, sizeof(path), "%s/other.policy", tmpdir);
	mg_test_write_text(path, "uname errno:1\n");
	v = map_of(&other);
	stale_bpf = mg_value_copy(mg_map_get(v, "bpf"));
	assert_non_null(stale_bpf);
	mg_value_free(v);

	check_rejected(make_stale);
	check_rejected(flip_byte);
	check_rejected(bad_sum);
	check_rejected(wrong_arch);
	mg_value_free(stale_bpf);
	stale_bpf = NULL;
}

/* Every thread of ctx has CapBnd == want. */
static void assert_bset(struct mg_context *ctx, uint64_t want)
{
	struct mg_value *res = NULL;
	struct mg_error err = MG_ERROR_INIT;

	if (mg_call(ctx, "status_field", MG_LIST(mg_str("CapBnd:")), &res, &err) < 0)
		fail_msg("status_field: %s", err.message);
	assert_true(res->len >= 2);		/* main + broker at least */
	for (size_t i = 0; i < res->len; i++)
		assert_int_equal((uint64_t)res->items[i].i, want);
	mg_value_free(res);
}

static bool can_drop_caps(void)
{
	if (geteuid() != 0 || !mg_test_have_cap(CAP_SETPCAP) ||
	    prctl(PR_CAPBSET_READ, CAP_NET_BIND_SERVICE, 0, 0, 0) != 1) {
		print_message("# skip: needs root with CAP_SETPCAP and a full bounding set\n");
		return false;
	}
	return true;
}

static void test_early_bset(void **state)
{
	const uint64_t keep = 1ull << CAP_NET_BIND_SERVICE;
	MG_OPTS(mg_sandbox_opts, sb, .caps = "cap_net_bind_service");
	MG_OPTS(mg_fork_opts, fo);
	MG_OPTS(mg_local_opts, lo, .sandbox = &sb);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;
	struct mg_context *ctx;

	if (!can_drop_caps()) {
		skip();
		return;
	}
	/* A stray hint in the master's environment: replaced for a sandboxed
	 * child, left out for an unsandboxed one. */
	setenv(SANDBOX_BSET_ENV, "0", 1);
	ctx = mg_test_start_ok(router, &sb, NULL);
	assert_bset(ctx, keep);
	if (mg_call(ctx, "mg.environ", NULL, &res, &err) < 0)
		fail_msg("mg.environ: %s", err.message);
	assert_null(mg_map_get(res, SANDBOX_BSET_ENV));
	assert_null(mg_map_get(res, "MITOGEN_AGENT_FD"));
	mg_value_free(res);
	mg_test_stop(ctx);

	ctx = mg_test_start_ok(router, NULL, NULL);
	res = NULL;
	if (mg_call(ctx, "status_field", MG_LIST(mg_str("CapBnd:")), &res, &err) < 0)
		fail_msg("status_field: %s", err.message);
	assert_true(((uint64_t)res->items[0].i & keep) && ((uint64_t)res->items[0].i & ~keep));
	mg_value_free(res);
	res = NULL;
	if (mg_call(ctx, "mg.environ", NULL, &res, &err) < 0)
		fail_msg("mg.environ: %s", err.message);
	assert_null(mg_map_get(res, SANDBOX_BSET_ENV));
	mg_value_free(res);
	mg_test_stop(ctx);
	unsetenv(SANDBOX_BSET_ENV);

	/* A fork context drops it from its map, before its threads too. */
	fo.local = &lo;
	ctx = mg_fork(router, &fo, &err);
	if (!ctx)
		fail_msg("mg_fork: %s", err.message);
	assert_bset(ctx, keep);
	mg_test_stop(ctx);

	/* Every capability dropped (the bench's strict sandbox). */
	sb.caps = "";
	ctx = mg_test_start_ok(router, &sb, NULL);
	assert_bset(ctx, 0);
	mg_test_stop(ctx);
}

/* In a forked child: a hint drops exactly what it does not keep, a bad
 * one drops nothing; both are unset. */
static void early_child(void *arg)
{
	static const char *const bad[] = { "", "zz", "12 ", "-", "1ffffffffffffffffff" };

	(void)arg;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv(SANDBOX_BSET_ENV, bad[i], 1);
		sandbox_early_from_env();
		assert_null(getenv(SANDBOX_BSET_ENV));
		assert_int_equal(prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0), 1);
	}
	setenv(SANDBOX_BSET_ENV, "400", 1);	/* CAP_NET_BIND_SERVICE (10) */
	sandbox_early_from_env();
	assert_null(getenv(SANDBOX_BSET_ENV));
	assert_int_equal(prctl(PR_CAPBSET_READ, CAP_NET_BIND_SERVICE, 0, 0, 0), 1);
	assert_int_equal(prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0), 0);
	assert_int_equal(prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0), 0);
	/* Only the bounding set: what the process holds now is unchanged. */
	assert_true(mg_test_have_cap(CAP_SYS_ADMIN));
}

static void test_early_hint_values(void **state)
{
	int st = 0;

	if (!can_drop_caps() || !mg_test_have_cap(CAP_SYS_ADMIN)) {
		skip();
		return;
	}
	assert_int_equal(mg_test_in_child(early_child, NULL, 60, &st), 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/*
 * More children at once than the namespace pool holds (16), then a pause
 * (the pool refills in the quiet), then more: each child is in a net
 * namespace of its own, never one another child had, with lo up.
 */
#define BURST 20
#define AFTER 6

static void start_net_children(struct mg_context **ctx, int64_t *ino, int n)
{
	MG_OPTS(mg_sandbox_opts, sb, .caps = "", .namespaces = MG_NS_NET);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;

	for (int i = 0; i < n; i++) {
		ctx[i] = mg_test_start_ok(router, &sb, NULL);
		if (mg_call(ctx[i], "net_ns_ino", NULL, &res, &err) < 0)
			fail_msg("net_ns_ino: %s", err.message);
		ino[i] = res->i;
		mg_value_free(res);
		res = NULL;
		if (mg_call(ctx[i], "net_info", NULL, &res, &err) < 0)
			fail_msg("net_info: %s", err.message);
		assert_int_equal(res->items[0].len, 1);
		assert_string_equal(res->items[0].items[0].str, "lo");
		assert_true(res->items[1].i & IFF_UP);
		mg_value_free(res);
		res = NULL;
	}
}

static void test_pool_burst_then_pause(void **state)
{
	struct mg_context *ctx[BURST + AFTER];
	int64_t ino[BURST + AFTER];
	struct stat mine;

	if (geteuid() != 0 || mg_test_ns_missing(CLONE_NEWNET)) {
		skip();
		return;
	}
	assert_int_equal(stat("/proc/self/ns/net", &mine), 0);
	start_net_children(ctx, ino, BURST);
	usleep(100 * 1000);
	start_net_children(ctx + BURST, ino + BURST, AFTER);
	for (int i = 0; i < BURST + AFTER; i++) {
		assert_true(ino[i] != (int64_t)mine.st_ino);
		for (int j = 0; j < i; j++)
			assert_true(ino[i] != ino[j]);
	}
	for (int i = 0; i < BURST + AFTER; i++)
		mg_test_stop(ctx[i]);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_compiled_filter_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_or_damaged_filter_rejected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_early_bset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_early_hint_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_burst_then_pause, setup, teardown),
	};
	return MG_TEST_RUN("sandbox/startup", tests);
}
