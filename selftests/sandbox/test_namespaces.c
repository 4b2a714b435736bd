// SPDX-License-Identifier: MIT
/*
 * test_namespaces.c — namespaces of a sandboxed child (mg_sandbox_opts
 * .namespaces, .no_inet) as a user sees them: with a new net namespace and
 * no_inet (the tool's --no-net) the child sees only lo, up, and cannot open
 * an AF_INET socket (CallError naming the syscall); with a new mount
 * namespace its /tmp is its own (neither side sees the other's files);
 * with a pid namespace it is pid 1 and its /proc shows only its own
 * processes; a UTS namespace gives it its own hostname; an IPC namespace
 * its own System V IPC. A fork context gets a pid namespace too (through
 * a keeper process).
 * Through via= too. The namespaces go away with the child.
 */
#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <grp.h>

#include "selftests/lib/harness.h"
#include "selftests/lib/probes.h"

/* --- functions the children run ------------------------------------------ */

/* net_info, inet_socket: selftests/lib/probes.c */

/* proc_info() -> [getpid(), number of numeric /proc entries, hostname,
 * number of System V message queues] */
static int proc_info(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	char host[256] = "", line[256];
	DIR *d = opendir("/proc");
	struct dirent *de;
	int nproc = 0, nq = -1;
	FILE *f;

	while (d && (de = readdir(d)))
		nproc += de->d_name[0] >= '0' && de->d_name[0] <= '9';
	if (d)
		closedir(d);
	gethostname(host, sizeof(host) - 1);
	f = fopen("/proc/sysvipc/msg", "re");
	while (f && fgets(line, sizeof(line), f))
		nq++;
	if (f)
		fclose(f);
	*ret = mg_value_build("iisi", (int)getpid(), nproc, host, nq);
	return 0;
}
MG_EXPORT(proc_info);

/* --- helpers --------------------------------------------------------------- */

static struct mg_router *router;

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* Skip the test (with the reason, once) where namespaces cannot be made. */
#define NS_ALL (CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC)
#define NS_REQUIRED()				\
	do {					\
		if (mg_test_ns_missing(NS_ALL)) {	\
			skip();			\
			return;			\
		}				\
	} while (0)

static int setup(void **state)
{
	router = mg_router_new(NULL);
	assert_non_null(router);
	return 0;
}

static int teardown(void **state)
{
	mg_router_unref(router);
	return 0;
}

static struct mg_value *call_ok(struct mg_context *ctx, const char *fn, struct mg_value *args)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;

	if (mg_call(ctx, fn, args, &res, &err) < 0)
		fail_msg("%s: %s", fn, err.message);
	return res;
}

static void assert_no_net(struct mg_context *ctx)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = call_ok(ctx, "net_info", NULL);

	/* Only lo, and it is up. */
	assert_int_equal(res->items[0].len, 1);
	assert_string_equal(res->items[0].items[0].str, "lo");
	assert_true(res->items[1].i & IFF_UP);
	mg_value_free(res);
	assert_int_equal(mg_call(ctx, "inet_socket", NULL, NULL, &err), -EREMOTEIO);
	assert_int_equal(err.kind, MG_ERR_CALL);
	assert_int_equal(err.errnum, EPERM);
	if (!strstr(err.message, "blocked by seccomp (no-net: no inet sockets): socket"))
		print_error("%s\n", err.message);
	assert_non_null(strstr(err.message, "blocked by seccomp (no-net: no inet sockets): socket"));
}

/* --- tests ------------------------------------------------------------------ */

static void test_no_net(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default",
				      .namespaces = MG_NS_NET, .no_inet = true };
	struct mg_context *ctx, *via;
	struct mg_value *res;

	NS_REQUIRED();
	ctx = mg_test_start_ok(router, &sb, NULL);

	assert_no_net(ctx);
	mg_test_stop(ctx);
	/* Through via= (an unsandboxed intermediate: a `default` one may not
	 * make namespaces, selftests/attacks/test_sandbox_escape.c). */
	via = mg_test_start_ok(router, NULL, NULL);
	ctx = mg_test_start_ok(router, &sb, via);
	assert_no_net(ctx);
	mg_test_stop(ctx);
	/* The intermediate still sees the host's interfaces, inet allowed. */
	res = call_ok(via, "net_info", NULL);
	assert_non_null(res);
	mg_value_free(res);
	mg_value_free(call_ok(via, "inet_socket", NULL));
	mg_test_stop(via);
}

/* net_ns() -> the inode of this process's net namespace */
static int net_ns(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st) < 0)
		return mg_call_fail(call, errno, "/proc/self/ns/net: %s", strerror(errno));
	*ret = mg_int((int64_t)st.st_ino);
	return 0;
}
MG_EXPORT(net_ns);

static void test_net_ns_only(void **state)
{
	/* A net namespace alone: inet sockets work, but only lo is there;
	 * each child has its own (the first made in clone(), the others
	 * from the pool). */
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .namespaces = MG_NS_NET };
	struct mg_context *ctx[4];
	int64_t ino[4];
	struct stat st;

	NS_REQUIRED();

	assert_int_equal(stat("/proc/self/ns/net", &st), 0);
	for (int i = 0; i < 4; i++) {
		struct mg_value *res;

		ctx[i] = mg_test_start_ok(router, &sb, NULL);
		res = call_ok(ctx[i], "net_info", NULL);
		assert_int_equal(res->items[0].len, 1);
		assert_true(res->items[1].i & IFF_UP);
		mg_value_free(res);
		mg_value_free(call_ok(ctx[i], "inet_socket", NULL));
		res = call_ok(ctx[i], "net_ns", NULL);
		ino[i] = res->i;
		mg_value_free(res);
		assert_int_not_equal(ino[i], (int64_t)st.st_ino);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(ino[i], ino[j]);
	}
	for (int i = 0; i < 4; i++)
		mg_test_stop(ctx[i]);
}

static void test_private_tmp(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .namespaces = MG_NS_MOUNT };
	struct mg_error err = MG_ERROR_INIT;
	char mine[64], theirs[64];
	struct mg_context *ctx;
	struct stat st;

	NS_REQUIRED();
	ctx = mg_test_start_ok(router, &sb, NULL);

	/* The master's /tmp file is not in the child's /tmp... */
	snprintf(mine, sizeof(mine), "/tmp/mg-ns-master-%d", (int)getpid());
	assert_int_equal(write_text(mine, "x"), 0);
	assert_int_equal(mg_call(ctx, "mg.stat", MG_LIST(mg_str(mine)), NULL, &err),
			 -EREMOTEIO);
	assert_int_equal(err.errnum, ENOENT);
	/* ...and what the child writes in /tmp stays there. */
	snprintf(theirs, sizeof(theirs), "/tmp/mg-ns-child-%d", (int)getpid());
	mg_error_clear(&err);
	if (mg_call(ctx, "mg.write_file", MG_LIST(mg_str(theirs), mg_bytes("y", 1)), NULL,
		    &err) < 0)
		fail_msg("write_file: %s", err.message);
	mg_value_free(call_ok(ctx, "mg.stat", MG_LIST(mg_str(theirs))));
	assert_int_equal(stat(theirs, &st), -1);
	assert_int_equal(unlink(mine), 0);
	mg_test_stop(ctx);
}

static void test_pid_uts_ipc(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .namespaces = MG_NS_PID | MG_NS_MOUNT |
				      MG_NS_UTS | MG_NS_IPC };
	struct mg_context *ctx;
	struct mg_value *res, *run;
	char host[256] = "";
	int qid;

	NS_REQUIRED();
	ctx = mg_test_start_ok(router, &sb, NULL);
	res = call_ok(ctx, "proc_info", NULL);
	qid = msgget(IPC_PRIVATE, 0600);

	assert_true(qid >= 0);
	assert_int_equal(res->items[0].i, 1);		/* pid 1 */
	assert_int_equal(res->items[1].i, 1);		/* /proc: only itself */
	assert_string_equal(res->items[2].str, "mitogen");
	assert_int_equal(res->items[3].i, 0);		/* not our queue */
	mg_value_free(res);
	gethostname(host, sizeof(host) - 1);
	assert_string_not_equal(host, "mitogen");
	/* A program it runs gets a low pid in there. */
	run = call_ok(ctx, "mg.run", MG_LIST(MG_LIST(mg_str("/bin/sh"), mg_str("-c"),
						  mg_str("echo $$"))));
	assert_true(atoi((const char *)mg_map_get(run, "stdout")->bytes) < 10);
	mg_value_free(run);
	assert_int_equal(msgctl(qid, IPC_RMID, NULL), 0);
	mg_test_stop(ctx);
}

/*
 * A fork context in a pid namespace: unshare() only moves a process's
 * children, so the fork forks once more and stays outside as the agent's
 * keeper (sandbox/namespaces.c). The agent is pid 1 and sees only itself;
 * the pid the master knows is the keeper's, and killing it takes the
 * agent down (its channel closes); nothing is left behind.
 */
static void test_fork_pid_ns(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb),
				      .namespaces = MG_NS_PID | MG_NS_MOUNT | MG_NS_NET };
	MG_OPTS(mg_local_opts, lo, .sandbox = &sb);
	MG_OPTS(mg_fork_opts, fo, .local = &lo);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct mg_value *res;
	pid_t keeper;
	double t0;
	int ret;

	NS_REQUIRED();
	ctx = mg_fork(router, &fo, &err);
	if (!ctx)
		fail_msg("mg_fork: %s", err.message);
	res = call_ok(ctx, "proc_info", NULL);
	assert_int_equal(res->items[0].i, 1);		/* pid 1 */
	assert_int_equal(res->items[1].i, 1);		/* /proc: only itself */
	mg_value_free(res);
	res = call_ok(ctx, "net_info", NULL);
	assert_int_equal(res->items[0].len, 1);		/* only lo */
	mg_value_free(res);
	/* A clean shutdown ends the keeper too (the master reaps it). */
	keeper = mg_context_pid(ctx);
	assert_true(keeper > 0);
	mg_test_stop(ctx);
	assert_true(mg_test_pid_gone(keeper));

	/* SIGKILL of the pid the master knows ends the context. */
	ctx = mg_fork(router, &fo, &err);
	if (!ctx)
		fail_msg("mg_fork: %s", err.message);
	keeper = mg_context_pid(ctx);
	assert_int_equal(kill(keeper, SIGKILL), 0);
	/* The agent's SIGKILL follows the keeper's death (asynchronously). */
	t0 = mg_test_now();
	while ((ret = mg_call(ctx, "proc_info", NULL, NULL, &err)) == 0 &&
	       mg_test_now() - t0 < 60.0)
		usleep(5000);
	/* within a bound only a context that lives on reaches */
	assert_int_equal(ret, -EPIPE);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	assert_int_equal(mg_context_shutdown(ctx, true), 0);
	mg_context_unref(ctx);
}

/* As uid 65534: the master gets a user namespace for its child. */
static void unprivileged(void *arg)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .namespaces = MG_NS_NET | MG_NS_MOUNT,
				      .no_inet = true };
	struct mg_context *ctx;
	struct mg_value *res;

	(void)arg;
	if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
		_exit(10);
	router = mg_router_new(NULL);
	ctx = mg_test_start_ok(router, &sb, NULL);
	assert_no_net(ctx);
	res = call_ok(ctx, "mg.getuid", NULL);
	if (res->i != 0)	/* root in its own user namespace */
		_exit(11);
	mg_value_free(res);
	mg_test_stop(ctx);
	mg_router_unref(router);
	_exit(0);
}

static void test_unprivileged_master(void **state)
{
	int st = 0;

	NS_REQUIRED();
	if (geteuid() != 0) {
		print_message("# skip: needs root to become uid 65534\n");
		skip();
		return;
	}
	/* Unprivileged user namespaces may be off (sysctl, LSM policy). */
	{
		pid_t pid = fork();

		if (pid == 0)
			_exit(setgid(65534) < 0 || setuid(65534) < 0 ? EPERM
			      : unshare(CLONE_NEWUSER) < 0 ? errno : 0);
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			print_message("# skip: uid 65534 cannot make a user namespace: %s\n",
				      strerror(WIFEXITED(st) ? WEXITSTATUS(st) : EIO));
			skip();
			return;
		}
	}
	assert_int_equal(mg_test_in_child(unprivileged, NULL, 30, &st), 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("unprivileged master: status %#x", st);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_net, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_ns_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_private_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pid_uts_ipc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_pid_ns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unprivileged_master, setup, teardown),
	};
	return MG_TEST_RUN("sandbox/namespaces", tests);
}
