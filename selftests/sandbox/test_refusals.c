// SPDX-License-Identifier: MIT
/*
 * test_refusals.c — a sandbox part the kernel cannot provide fails the
 * context's creation with a StreamError naming the part, unless the caller
 * marked that part best effort, in which case the child starts and the log
 * says what was skipped. "The kernel cannot" is made real, not pretended:
 * each case runs a master in a child process under a seccomp filter that
 * makes the kernel refuse that one thing (landlock_create_ruleset ->
 * ENOSYS, as on a kernel built without Landlock; clone/unshare with
 * CLONE_NEWNET -> EPERM, as in a container without CAP_SYS_ADMIN), and the
 * filter is inherited by the agent it starts.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <seccomp.h>

#include "selftests/lib/harness.h"
#include "selftests/lib/probes.h"

/* Child exit codes: which step went wrong. */
enum { OK = 0, E_FILTER = 10, E_STRICT_STARTED, E_STRICT_MSG, E_BEST_FAILED, E_BEST_LOG };

static void deny(scmp_filter_ctx f, const char *what)
{
	if (!strcmp(what, "landlock")) {
		seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(landlock_create_ruleset), 0);
		return;
	}
	/* Any clone or unshare asking for a new net namespace. */
	seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
			 SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWNET, CLONE_NEWNET));
	seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
			 SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWNET, CLONE_NEWNET));
	/* clone3 hides its flags in memory: make glibc fall back to clone. */
	seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
}

struct refusal {
	const char *what;		/* "landlock" or "netns" */
	struct mg_sandbox_opts sb;	/* asks for that part */
	unsigned best;			/* its MG_SANDBOX_* bit */
	const char *want;		/* in the StreamError */
	const char *want_log;		/* in the log with best effort */
};

static void master_under_filter(void *arg)
{
	struct refusal *r = arg;
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *router;
	struct mg_context *ctx;

	if (!f)
		_exit(E_FILTER);
	deny(f, r->what);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_load(f) < 0)
		_exit(E_FILTER);
	seccomp_release(f);
	router = mg_router_new(NULL);
	mg_test_log_capture_start();
	{
		MG_OPTS(mg_local_opts, lo, .sandbox = &r->sb, .connect_timeout = 20);

		ctx = mg_local(router, &lo, &err);
		if (ctx)
			_exit(E_STRICT_STARTED);
		if (err.kind != MG_ERR_STREAM || !strstr(err.message, r->want)) {
			fprintf(stderr, "%s: got '%s', want '%s'\n", r->what, err.message, r->want);
			_exit(E_STRICT_MSG);
		}
		r->sb.best_effort = r->best;
		mg_error_clear(&err);
		ctx = mg_local(router, &lo, &err);
		if (!ctx) {
			fprintf(stderr, "%s best effort: %s\n", r->what, err.message);
			_exit(E_BEST_FAILED);
		}
		if (!mg_test_log_contains(r->want_log, 5.0)) {
			mg_test_log_print();
			_exit(E_BEST_LOG);
		}
		mg_context_shutdown(ctx, true);
		mg_context_unref(ctx);
	}
	mg_test_log_capture_stop();
	mg_router_unref(router);
	_exit(OK);
}

static void run_case(struct refusal *r)
{
	int st = 0;

	assert_int_equal(mg_test_in_child(master_under_filter, r, 60, &st), 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != OK)
		fail_msg("%s: child status %#x (exit %d)", r->what, st,
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void test_no_landlock(void **state)
{
	static const char *const ro[] = { "/usr", NULL };
	struct refusal r = {
		.what = "landlock",
		.sb = { .sz = sizeof(r.sb), .ro = ro },
		.best = MG_SANDBOX_LANDLOCK,
		.want = "sandbox: landlock: not built into this kernel",
		.want_log = "skipped (best effort): landlock: not built into this kernel",
	};

	run_case(&r);
}

static void test_no_netns(void **state)
{
	struct refusal r = {
		.what = "netns",
		.sb = { .sz = sizeof(r.sb), .namespaces = MG_NS_NET | MG_NS_UTS },
		.best = MG_SANDBOX_NAMESPACES,
		.want = "sandbox: namespaces: cannot create net,uts: Operation not permitted",
		.want_log = "skipped (best effort): namespaces net:",
	};

	if (geteuid() != 0) {
		print_message("# skip: needs root (namespaces without a user namespace)\n");
		skip();
		return;
	}
	if (mg_test_ns_missing(CLONE_NEWNET | CLONE_NEWUTS)) {
		skip();
		return;
	}
	run_case(&r);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_landlock),
		cmocka_unit_test(test_no_netns),
	};
	return MG_TEST_RUN("sandbox/refusals", tests);
}
