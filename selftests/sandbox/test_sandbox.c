// SPDX-License-Identifier: MIT
/*
 * test_sandbox.c — sandboxed contexts (mitogen/sandbox.h) as a user sees
 * them: the default seccomp profile refuses mount, ptrace, module loading
 * and bpf with a CallError naming the syscall (and the same calls are not
 * refused by seccomp without a sandbox); the strict profile still runs
 * every built-in; rule files with errors fail mg_local with FILE:LINE;
 * rlimits hold; a root child keeping only CAP_NET_BIND_SERVICE can bind a
 * low port but not chown or open a raw socket, and cannot undo any of it.
 * Also through mg_fork and via=.
 *
 * Every sandbox here is applied in a child context, never in this
 * process, so no test needs mg_test_in_child.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <dirent.h>

#include "selftests/lib/harness.h"
#include "selftests/lib/probes.h"

/* --- functions the children run ---------------------------------------- */

/* try_syscall, open_many, bind_port, chown_file, raw_socket: selftests/lib/probes.c */

/* undo() -> [nnp_clear_errno, nnp_still_set, capset_errno, capset_bound_errno] */
static int undo(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	int e1 = 0, e2 = 0, e3 = 0, nnp;

	if (prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0) < 0)
		e1 = errno;
	nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	if (syscall(SYS_capget, &hdr, data) < 0)
		return mg_call_fail(call, errno, "capget: %s", strerror(errno));
	/* Regain CAP_CHOWN in the permitted and effective sets. */
	data[0].permitted |= 1u << CAP_CHOWN;
	data[0].effective |= 1u << CAP_CHOWN;
	if (syscall(SYS_capset, &hdr, data) < 0)
		e2 = errno;
	/* Or through the inheritable set. */
	syscall(SYS_capget, &hdr, data);
	data[0].inheritable |= 1u << CAP_CHOWN;
	if (syscall(SYS_capset, &hdr, data) < 0)
		e3 = errno;
	*ret = mg_value_build("iiii", e1, nnp, e2, e3);
	return 0;
}
MG_EXPORT(undo);

/*
 * thread_states() -> number of distinct (CapEff, CapPrm, CapBnd, CapAmb,
 * NoNewPrivs, Seccomp) tuples over this process's threads: 1 when every
 * thread got the sandbox.
 */
static int thread_states(struct mg_call *call, const struct mg_value *args,
			 struct mg_value **ret)
{
	static const char *const keys[] = { "CapEff:", "CapPrm:", "CapBnd:", "CapAmb:",
					     "NoNewPrivs:", "Seccomp:" };
	char seen[16][512];
	int nseen = 0, nthreads = 0;
	struct dirent *de;
	DIR *d = opendir("/proc/self/task");

	if (!d)
		return mg_call_fail(call, errno, "/proc/self/task: %s", strerror(errno));
	while ((de = readdir(d)) && nseen < 16) {
		char path[300], line[256], state[512] = "";
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
				if (!strncmp(line, keys[k], strlen(keys[k])) &&
				    strlen(state) + strlen(line) < sizeof(state))
					strcat(state, line);
		fclose(f);
		nthreads++;
		int i;

		for (i = 0; i < nseen && strcmp(seen[i], state); i++)
			;
		if (i == nseen)
			strcpy(seen[nseen++], state);
	}
	closedir(d);
	*ret = mg_value_build("ii", nseen, nthreads);
	return 0;
}
MG_EXPORT(thread_states);

static void assert_threads_alike(struct mg_context *ctx)
{
	struct mg_value *res = NULL;
	struct mg_error err = MG_ERROR_INIT;

	if (mg_call(ctx, "thread_states", NULL, &res, &err) < 0)
		fail_msg("thread_states: %s", err.message);
	assert_true(res->items[1].i >= 2);	/* main + broker at least */
	assert_int_equal(res->items[0].i, 1);
	mg_value_free(res);
}

/* --- helpers ------------------------------------------------------------ */

static struct mg_router *router;
static char tmpdir[PATH_MAX];

static int setup(void **state)
{
	mg_test_tmpdir(tmpdir, sizeof(tmpdir), "mg-sandbox");
	router = mg_router_new(NULL);
	assert_non_null(router);
	return 0;
}

static int teardown(void **state)
{
	mg_router_unref(router);
	router = NULL;
	assert_int_equal(mg_test_rm_rf(tmpdir), 0);
	return 0;
}

static const char *const refused[] = {
	"mount", "ptrace_traceme", "ptrace_attach", "init_module", "bpf",
};
static const char *const refused_name[] = {
	"mount", "ptrace", "ptrace", "init_module", "bpf",
};
#define NREFUSED (sizeof(refused) / sizeof(refused[0]))

/* --- tests -------------------------------------------------------------- */

static void test_default_refuses(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default" };
	struct mg_context *ctx = mg_test_start_ok(router, &sb, NULL);
	struct mg_value *res = NULL;
	struct mg_error err = MG_ERROR_INIT;

	mg_test_assert_refused(ctx, "default", refused, refused_name, NREFUSED);
	assert_threads_alike(ctx);
	/* Still a working context after the refusals. */
	assert_int_equal(mg_call(ctx, "mg.getpid", NULL, &res, &err), 0);
	mg_value_free(res);
	mg_test_stop(ctx);
}

static void test_unsandboxed_not_refused(void **state)
{
	struct mg_context *ctx = mg_test_start_ok(router, NULL, NULL);
	char msg[MG_ERROR_MSG_MAX];

	/* Not ptrace_traceme: it would really make the child traced. */
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (!strcmp(refused[i], "ptrace_traceme"))
			continue;
		mg_test_call_err(ctx, "try_syscall", MG_LIST(mg_str(refused[i])), msg, sizeof(msg));
		/* The kernel answers (ENODEV, ESRCH, ENOEXEC, EINVAL, or EPERM
		 * where this root lacks the capability): seccomp says nothing. */
		assert_null(strstr(msg, "seccomp"));
	}
	mg_test_stop(ctx);
}

static void test_fork_and_via_sandboxed(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default" };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid = mg_test_start_ok(router, NULL, NULL), *ctx;

	/* via=: the intermediate is not sandboxed, the child it starts is. */
	MG_OPTS(mg_local_opts, lo, .sandbox = &sb, .via = mid, .connect_timeout = 20);
	ctx = mg_local(router, &lo, &err);
	if (!ctx)
		print_error("via: %s\n", err.message);
	assert_non_null(ctx);
	mg_test_assert_refused(ctx, "default", refused, refused_name, NREFUSED);
	mg_test_stop(ctx);

	MG_OPTS(mg_fork_opts, fo, .local = &lo);
	lo.via = NULL;
	ctx = mg_fork(router, &fo, &err);
	if (!ctx)
		print_error("fork: %s\n", err.message);
	assert_non_null(ctx);
	mg_test_assert_refused(ctx, "default", refused, refused_name, NREFUSED);
	mg_test_stop(ctx);
	mg_test_stop(mid);
}

static void test_strict_runs_builtins(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "strict" };
	struct mg_context *ctx = mg_test_start_ok(router, &sb, NULL);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;
	const struct mg_value *st;
	char path[PATH_MAX + 16], msg[MG_ERROR_MSG_MAX];

#define OK(fn, args)							\
	do {								\
		mg_value_free(res);					\
		res = NULL;						\
		if (mg_call(ctx, fn, args, &res, &err) < 0)		\
			fail_msg("%s: %s", fn, err.message);		\
	} while (0)

	OK("mg.run", MG_LIST(MG_LIST(mg_str("/bin/true"))));
	st = mg_map_get(res, "status");
	assert_non_null(st);
	assert_int_equal(st->i, 0);
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	OK("mg.write_file", MG_LIST(mg_str(path), mg_bytes("hello", 5)));
	OK("mg.read_file", MG_LIST(mg_str(path)));
	assert_int_equal(res->type, MG_BYTES);
	assert_int_equal(res->len, 5);
	OK("mg.stat", MG_LIST(mg_str(path)));
	OK("mg.unlink", MG_LIST(mg_str(path)));
	OK("mg.getpid", NULL);
	assert_int_equal(res->i, mg_context_pid(ctx));
	OK("mg.getuid", NULL);
	OK("mg.uname", NULL);
	OK("mg.environ", NULL);
	OK("mg.noop", NULL);
	mg_value_free(res);
	/* And what strict does not allow is still named. */
	assert_int_equal(mg_test_call_err(ctx, "try_syscall", MG_LIST(mg_str("mount")), msg,
				  sizeof(msg)), EPERM);
	assert_non_null(strstr(msg, "blocked by seccomp (profile strict): mount"));
	mg_test_stop(ctx);
#undef OK
}

static void test_bad_rule_files(void **state)
{
	static const struct {
		const char *text;
		const char *where;	/* ":LINE: reason" expected after the path */
	} cases[] = {
		{ "# fine so far\n@default trap\nread allow\nno_such_syscall trap\n",
		  ":4: unknown syscall 'no_such_syscall'" },
		{ "mount frobnicate\n", ":1: unknown action 'frobnicate'" },
		{ "mount trap arg9==1\n", ":1: bad argument condition 'arg9==1'" },
		{ "mount trap arg0=~1\n", ":1: bad argument condition" },
		{ "mount allow\n", ":1: action 'allow' is the @default action" },
		{ "mount trap\n@default trap\n", ":2: @default must come before" },
		{ "@default\n", ":1: expected '@default ACTION'" },
		{ "@defualt trap\n", ":1: unknown directive '@defualt'" },
		{ "mount\n", ":1: expected 'SYSCALL ACTION" },
		{ "mount trap\n mount errno:5000\n", ":2: unknown action 'errno:5000'" },
	};
	char path[PATH_MAX + 16], want[PATH_MAX + 128];
	int before = mg_test_count_children(0);

	snprintf(path, sizeof(path), "%s/rules.policy", tmpdir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = path };
		struct mg_error err = MG_ERROR_INIT;
		struct mg_context *ctx;

		mg_test_write_text(path, cases[i].text);
		ctx = mg_test_start(router, &sb, NULL, &err);
		assert_null(ctx);
		assert_int_equal(err.kind, MG_ERR_STREAM);
		snprintf(want, sizeof(want), "%s%s", path, cases[i].where);
		if (!strstr(err.message, want))
			print_error("case %zu: '%s', want '%s'\n", i, err.message, want);
		assert_non_null(strstr(err.message, want));
	}
	/* Refused in the parent: no child was ever started. */
	assert_int_equal(mg_test_count_children(0), before);

	{
		struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "/nonexistent/x.policy" };
		struct mg_error err = MG_ERROR_INIT;

		assert_null(mg_test_start(router, &sb, NULL, &err));
		assert_non_null(strstr(err.message, "/nonexistent/x.policy: No such file"));
	}
}

static void test_good_rule_file(void **state)
{
	char path[PATH_MAX + 16], msg[MG_ERROR_MSG_MAX];
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = path };
	struct mg_context *ctx;

	snprintf(path, sizeof(path), "%s/ok.policy", tmpdir);
	mg_test_write_text(path, "# refuse mount; uname only with a NULL buffer\n"
			 "@default allow\n"
			 "mount trap\n"
			 "bpf errno:22 arg0==0xffffffff\n"
			 "bpf trap arg0&0xff==0x5\n");
	ctx = mg_test_start_ok(router, &sb, NULL);
	assert_int_equal(mg_test_call_err(ctx, "try_syscall", MG_LIST(mg_str("mount")), msg,
				  sizeof(msg)), EPERM);
	snprintf(path + strlen(path), 1, "%s", "");	/* keep -Wformat quiet */
	assert_non_null(strstr(msg, "blocked by seccomp (profile "));
	assert_non_null(strstr(msg, "ok.policy): mount"));
	/* bpf(-1): errno:22 from the filter, not a trap. */
	assert_int_equal(mg_test_call_err(ctx, "try_syscall", MG_LIST(mg_str("bpf")), msg,
					  sizeof(msg)), EINVAL);
	assert_null(strstr(msg, "seccomp"));
	mg_test_stop(ctx);
}

static void test_rlimit_nofile(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .rlimits.nofile = 64 };
	struct mg_context *ctx = mg_test_start_ok(router, &sb, NULL);
	struct mg_value *res = NULL;
	struct mg_error err = MG_ERROR_INIT;
	char msg[MG_ERROR_MSG_MAX];

	assert_int_equal(mg_test_call_err(ctx, "open_many", MG_LIST(mg_int(100)), msg, sizeof(msg)),
			 EMFILE);
	/* A few are fine. */
	assert_int_equal(mg_call(ctx, "open_many", MG_LIST(mg_int(10)), &res, &err), 0);
	mg_value_free(res);
	mg_test_stop(ctx);
}

static void test_caps_keep_one(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .caps = "cap_net_bind_service" };
	struct mg_context *ctx;
	struct mg_value *res = NULL;
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX + 16], msg[MG_ERROR_MSG_MAX];

	if (geteuid() != 0 || !mg_test_have_cap(CAP_SETPCAP) ||
	    !mg_test_have_cap(CAP_NET_BIND_SERVICE) || !mg_test_have_cap(CAP_CHOWN) ||
	    !mg_test_have_cap(CAP_NET_RAW)) {
		skip();
		return;
	}
	ctx = mg_test_start_ok(router, &sb, NULL);
	assert_threads_alike(ctx);
	snprintf(path, sizeof(path), "%s/owned", tmpdir);
	mg_test_write_text(path, "x");
	if (mg_call(ctx, "bind_port", MG_LIST(mg_int(80)), &res, &err) < 0)
		fail_msg("bind_port: %s", err.message);
	assert_true(res->i > 0 && res->i < 1024);
	mg_value_free(res);
	assert_int_equal(mg_test_call_err(ctx, "chown_file", MG_LIST(mg_str(path)), msg,
					  sizeof(msg)), EPERM);
	assert_int_equal(mg_test_call_err(ctx, "raw_socket", NULL, msg, sizeof(msg)), EPERM);
	/* No undoing it. */
	res = NULL;
	if (mg_call(ctx, "undo", NULL, &res, &err) < 0)
		fail_msg("undo: %s", err.message);
	assert_int_equal(res->items[0].i, EINVAL);	/* PR_SET_NO_NEW_PRIVS, 0 */
	assert_int_equal(res->items[1].i, 1);		/* still set */
	assert_int_equal(res->items[2].i, EPERM);	/* capset +chown (ep) */
	assert_int_equal(res->items[3].i, EPERM);	/* capset +chown (i): not in bounding */
	mg_value_free(res);
	/* The unsandboxed master can still chown (sanity of the test). */
	assert_int_equal(chown(path, 1, 1), 0);
	mg_test_stop(ctx);
}

static void test_caps_unknown(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .caps = "cap_net_bind_service,cap_foo" };
	struct mg_error err = MG_ERROR_INIT;
	int before = mg_test_count_children(0);

	assert_null(mg_test_start(router, &sb, NULL, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, "unknown capability 'cap_foo'"));
	assert_int_equal(mg_test_count_children(0), before);
}

static void test_apply_failure_is_stream_error(void **state)
{
	/* Raising the hard RLIMIT_NOFILE beyond nr_open fails in the child:
	 * exit 122 and the reason in the StreamError. */
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .rlimits.nofile = (int64_t)1 << 40 };
	struct mg_error err = MG_ERROR_INIT;

	assert_null(mg_test_start(router, &sb, NULL, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	if (!strstr(err.message, "sandbox: rlimits: nofile="))
		print_error("%s\n", err.message);
	assert_non_null(strstr(err.message, "mitogen agent: sandbox: rlimits: nofile="));
	assert_non_null(strstr(err.message, "122"));

	/* Best effort: the same limit is skipped, the child starts. */
	sb.best_effort = MG_SANDBOX_RLIMITS;
	mg_test_stop(mg_test_start_ok(router, &sb, NULL));
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsandboxed_not_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_and_via_sandboxed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strict_runs_builtins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_rule_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_good_rule_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rlimit_nofile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caps_keep_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caps_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_failure_is_stream_error, setup, teardown),
	};
	return MG_TEST_RUN("sandbox", tests);
}
