// SPDX-License-Identifier: MIT
/*
 * selftests/transports/test_sudo_sandbox.c — sandboxes of contexts that
 * sudo, su and doas start (the real programs, the test users of
 * selftests/fixtures/sshd.sh), as a user sees them: the default seccomp
 * profile refuses mount, ptrace and bpf naming the syscall; the strict one
 * runs the built-ins; a root child keeping only cap_net_bind_service binds
 * port 80 but cannot chown or open a raw socket; Landlock refuses writes
 * outside rw naming the path; rlimits and a tenant's pids_max hold; and
 * namespaces, which the agent enters itself (the program starts it, not
 * us): only lo, up, no AF_INET (--no-net), a private /tmp, its own
 * hostname, for root and (in a user namespace) for another user, through
 * su, doas, ssh->sudo and the tool's `run --no-net -t sudo:USER` too. A
 * pid namespace is refused unless best effort; an agent's "ns_in" is what
 * it entered, not what its parent claims. Skipped (saying why) where the
 * machine lacks the feature.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "selftests/transports/fixture.h"
#include "selftests/lib/probes.h"
#include "sandbox/sandbox.h"

/* --- functions the children run ------------------------------------------
 * try_syscall, open_many, bind_port, chown_file, raw_socket, net_info,
 * inet_socket, my_cgroups, fork_until_fail: selftests/lib/probes.c; and: */

/* ns_info() -> [inode of the net namespace, of the mount namespace, hostname] */
static int ns_info(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct stat net, mnt;
	char host[256] = "";

	if (stat("/proc/self/ns/net", &net) < 0 || stat("/proc/self/ns/mnt", &mnt) < 0)
		return mg_call_fail(call, errno, "/proc/self/ns: %s", strerror(errno));
	gethostname(host, sizeof(host) - 1);
	*ret = mg_value_build("iis", (int64_t)net.st_ino, (int64_t)mnt.st_ino, host);
	return 0;
}
MG_EXPORT(ns_info);

/* --- helpers ------------------------------------------------------------ */

static char tmpdir[PATH_MAX - 64], tenant[64];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mg-sudosb-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(tenant, sizeof(tenant), "mgsudo-%d", (int)getpid());
	return fixture_setup(state);
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 256];

	fixture_teardown(state);
	snprintf(cmd, sizeof(cmd),
		 "rm -rf '%s'; find /sys/fs/cgroup /run/mitogen/cgroup2 -depth -type d "
		 "-path '*/mitogen/%s' -exec rmdir {} + 2>/dev/null; true", tmpdir, tenant);
	return system(cmd) == 0 ? 0 : -1;
}

/* A sandboxed context as user, started by sudo (from root: no password). */
static struct mg_context *sudo_sb(const char *user, const struct mg_sandbox_opts *sb,
				  struct mg_context *via, struct mg_error *err)
{
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 120, .sandbox = sb, .via = via);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = user);

	return mg_sudo(router, &so, err);
}

static struct mg_context *sudo_ok(const char *user, const struct mg_sandbox_opts *sb)
{
	struct mg_error err = MG_ERROR_INIT;

	return must(sudo_sb(user, sb, NULL, &err), &err);
}

static struct mg_value *call_ok(struct mg_context *ctx, const char *fn, struct mg_value *args)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;

	if (mg_call(ctx, fn, args, &res, &err) < 0)
		fail_msg("%s: %s", fn, err.message);
	return res ? res : mg_nil();
}

static void assert_refused(struct mg_context *ctx, const char *profile)
{
	static const char *const what[] = { "mount", "ptrace_attach", "bpf" };
	static const char *const name[] = { "mount", "ptrace", "bpf" };

	mg_test_assert_refused(ctx, profile, what, name, sizeof(what) / sizeof(what[0]));
}

static int64_t getuid_of(struct mg_context *ctx)
{
	struct mg_value *v = call_ok(ctx, "mg.getuid", NULL);
	int64_t uid = v->i;

	mg_value_free(v);
	return uid;
}

/* The uid ctx runs as, seen from here (in its user namespace it is 0). */
static uid_t host_uid_of(struct mg_context *ctx)
{
	struct mg_value *v = call_ok(ctx, "mg.getpid", NULL);
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", (int)v->i);
	mg_value_free(v);
	assert_int_equal(stat(path, &st), 0);
	return st.st_uid;
}

/* Namespaces as root (what a root agent unshares), or as uid in a user
 * namespace; a reason is printed when this machine cannot (containers,
 * unprivileged user namespaces turned off). */
static bool ns_missing(uid_t uid)
{
	int flags = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
	int st = 0;
	pid_t pid;

	pid = fork();
	if (pid == 0) {
		struct passwd *pw = uid ? getpwuid(uid) : NULL;

		if (uid && (!pw || setgid(pw->pw_gid) < 0 || setuid(uid) < 0))
			_exit(errno);
		_exit(unshare(flags | (uid ? CLONE_NEWUSER : 0)) < 0 ? errno : 0);
	}
	assert_true(pid > 0);
	waitpid(pid, &st, 0);
	st = WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
	if (st)
		print_message("# skip: cannot create namespaces here%s: %s\n",
			      uid ? " as a user (user namespace)" : "", strerror(st));
	return st != 0;
}

#define NS_REQUIRED(uid)			\
	do {					\
		if (ns_missing(uid)) {		\
			skip();			\
			return;			\
		}				\
	} while (0)

/* Only lo, up; AF_INET refused by the no-net filter, naming socket. */
static void assert_no_net(struct mg_context *ctx)
{
	struct mg_value *res = call_ok(ctx, "net_info", NULL);
	char msg[MG_ERROR_MSG_MAX];

	assert_int_equal(res->items[0].len, 1);
	assert_string_equal(res->items[0].items[0].str, "lo");
	assert_true(res->items[1].i & IFF_UP);
	mg_value_free(res);
	assert_int_equal(mg_test_call_err(ctx, "inet_socket", NULL, msg, sizeof(msg)), EPERM);
	if (!strstr(msg, "blocked by seccomp (no-net: no inet sockets): socket"))
		print_error("%s\n", msg);
	assert_non_null(strstr(msg, "blocked by seccomp (no-net: no inet sockets): socket"));
}

/* Net, mount, uts namespaces of ctx differ from ours; hostname "mitogen". */
static void assert_own_namespaces(struct mg_context *ctx)
{
	struct mg_value *res = call_ok(ctx, "ns_info", NULL);
	struct stat net, mnt;

	assert_int_equal(stat("/proc/self/ns/net", &net), 0);
	assert_int_equal(stat("/proc/self/ns/mnt", &mnt), 0);
	assert_int_not_equal(res->items[0].i, (int64_t)net.st_ino);
	assert_int_not_equal(res->items[1].i, (int64_t)mnt.st_ino);
	assert_string_equal(res->items[2].str, "mitogen");
	mg_value_free(res);
}

/* A file the master puts in /tmp is not in ctx's, and the reverse. */
static void assert_private_tmp(struct mg_context *ctx)
{
	struct mg_error err = MG_ERROR_INIT;
	char mine[64], theirs[64];
	struct stat st;

	snprintf(mine, sizeof(mine), "/tmp/mg-sudosb-master-%d", (int)getpid());
	mg_test_write_text(mine, "x");
	assert_int_equal(mg_call(ctx, "mg.stat", MG_LIST(mg_str(mine)), NULL, &err), -EREMOTEIO);
	assert_int_equal(err.errnum, ENOENT);
	unlink(mine);
	snprintf(theirs, sizeof(theirs), "/tmp/mg-sudosb-child-%d", (int)getpid());
	mg_value_free(call_ok(ctx, "mg.write_file", MG_LIST(mg_str(theirs), mg_bytes("y", 1))));
	mg_value_free(call_ok(ctx, "mg.stat", MG_LIST(mg_str(theirs))));
	assert_int_equal(stat(theirs, &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* --- tests -------------------------------------------------------------- */

static void test_default_refuses(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default" };
	struct mg_context *ctx;

	NEED_ROOT();
	ctx = sudo_ok("root", &sb);
	assert_int_equal(getuid_of(ctx), 0);
	assert_refused(ctx, "default");
	finish(ctx);
	/* Another user: the same. */
	ctx = sudo_ok("mgsudo", &sb);
	assert_int_equal(getuid_of(ctx), user_uid("mgsudo"));
	assert_refused(ctx, "default");
	finish(ctx);
}

static void test_strict_runs_builtins(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "strict" };
	struct mg_value *res;
	struct mg_context *ctx;
	char path[PATH_MAX], msg[MG_ERROR_MSG_MAX];

	NEED_ROOT();
	ctx = sudo_ok("root", &sb);
	res = call_ok(ctx, "mg.run", MG_LIST(MG_LIST(mg_str("/bin/true"))));
	assert_int_equal(mg_map_get(res, "status")->i, 0);
	mg_value_free(res);
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	mg_value_free(call_ok(ctx, "mg.write_file", MG_LIST(mg_str(path), mg_bytes("hello", 5))));
	res = call_ok(ctx, "mg.read_file", MG_LIST(mg_str(path)));
	assert_int_equal(res->type, MG_BYTES);
	assert_memory_equal(res->bytes, "hello", 5);
	mg_value_free(res);
	mg_value_free(call_ok(ctx, "mg.stat", MG_LIST(mg_str(path))));
	mg_value_free(call_ok(ctx, "mg.unlink", MG_LIST(mg_str(path))));
	assert_int_equal(getuid_of(ctx), 0);
	mg_value_free(call_ok(ctx, "mg.uname", NULL));
	mg_value_free(call_ok(ctx, "mg.environ", NULL));
	assert_int_equal(mg_test_call_err(ctx, "try_syscall", MG_LIST(mg_str("mount")), msg,
				  sizeof(msg)), EPERM);
	assert_non_null(strstr(msg, "blocked by seccomp (profile strict): mount"));
	finish(ctx);
}

static void test_root_keeps_one_cap(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .caps = "cap_net_bind_service" };
	struct mg_context *ctx;
	struct mg_value *res;
	char path[PATH_MAX], msg[MG_ERROR_MSG_MAX];

	NEED_ROOT();
	if (!mg_test_have_cap(CAP_SETPCAP) || !mg_test_have_cap(CAP_NET_BIND_SERVICE) ||
	    !mg_test_have_cap(CAP_CHOWN) || !mg_test_have_cap(CAP_NET_RAW)) {
		print_message("# skip: this root lacks the capabilities the test drops\n");
		skip();
		return;
	}
	ctx = sudo_ok("root", &sb);
	snprintf(path, sizeof(path), "%s/owned", tmpdir);
	mg_test_write_text(path, "x");
	/* 80, or the next free one below 1024 if the host uses it. */
	res = call_ok(ctx, "bind_port", MG_LIST(mg_int(80)));
	assert_true(res->i >= 80 && res->i < 1024);
	mg_value_free(res);
	assert_int_equal(mg_test_call_err(ctx, "raw_socket", NULL, msg, sizeof(msg)), EPERM);
	assert_int_equal(mg_test_call_err(ctx, "chown_file", MG_LIST(mg_str(path)), msg,
					  sizeof(msg)), EPERM);
	/* The unsandboxed master can (sanity of the test). */
	assert_int_equal(chown(path, 1, 1), 0);
	finish(ctx);
}

static void test_landlock(void **state)
{
	char ro_dir[PATH_MAX], rw_dir[PATH_MAX], path[PATH_MAX + 16], want[PATH_MAX + 64];
	const char *ro[] = { ro_dir, NULL }, *rw[] = { rw_dir, NULL };
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .ro = ro, .rw = rw, .caps = "" };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct mg_value *res;

	NEED_ROOT();
	if (syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) < 0) {
		print_message("# skip: this kernel has no Landlock (%s)\n", strerror(errno));
		skip();
		return;
	}
	snprintf(ro_dir, sizeof(ro_dir), "%s/ro", tmpdir);
	snprintf(rw_dir, sizeof(rw_dir), "%s/rw", tmpdir);
	assert_int_equal(mkdir(ro_dir, 0755), 0);
	assert_int_equal(mkdir(rw_dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/data", ro_dir);
	mg_test_write_text(path, "read me");
	ctx = sudo_ok("root", &sb);
	res = call_ok(ctx, "mg.read_file", MG_LIST(mg_str(path)));
	assert_int_equal(res->len, 7);
	mg_value_free(res);
	snprintf(path, sizeof(path), "%s/new", rw_dir);
	mg_value_free(call_ok(ctx, "mg.write_file", MG_LIST(mg_str(path), mg_bytes("w", 1))));
	/* Outside rw (the tmpdir itself, writable by modes): refused, named. */
	snprintf(path, sizeof(path), "%s/outside", tmpdir);
	assert_int_equal(mg_call(ctx, "mg.write_file", MG_LIST(mg_str(path), mg_bytes("w", 1)),
				 NULL, &err), -EREMOTEIO);
	snprintf(want, sizeof(want), "denied by landlock: %s", path);
	if (!strstr(err.message, want))
		print_error("'%s', want '%s'\n", err.message, want);
	assert_int_equal(err.errnum, EACCES);
	assert_non_null(strstr(err.message, want));
	assert_int_equal(access(path, F_OK), -1);
	finish(ctx);
}

static void test_rlimit_nofile(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .rlimits.nofile = 64 };
	struct mg_context *ctx;
	char msg[MG_ERROR_MSG_MAX];

	NEED_ROOT();
	ctx = sudo_ok("root", &sb);
	assert_int_equal(mg_test_call_err(ctx, "open_many", MG_LIST(mg_int(100)), msg, sizeof(msg)),
			 EMFILE);
	mg_value_free(call_ok(ctx, "open_many", MG_LIST(mg_int(10))));
	finish(ctx);
}

static void test_tenant_pids_max(void **state)
{
	static const char *const missing[] = { "no pids controller", "Read-only file system",
					       "Permission denied" };
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .tenant = tenant, .pids_max = 8 };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct mg_value *res;
	char want[128];

	NEED_ROOT();
	ctx = sudo_sb("root", &sb, NULL, &err);
	for (size_t i = 0; !ctx && i < sizeof(missing) / sizeof(missing[0]); i++)
		if (strstr(err.message, "cgroup") && strstr(err.message, missing[i])) {
			print_message("# skip: %s\n", err.message);
			skip();
			return;
		}
	must(ctx, &err);
	res = call_ok(ctx, "my_cgroups", NULL);
	snprintf(want, sizeof(want), "/mitogen/%s\n", tenant);
	if (!strstr(res->str, want))
		print_error("cgroups: %s\n", res->str);
	assert_non_null(strstr(res->str, want));
	mg_value_free(res);
	res = call_ok(ctx, "fork_until_fail", MG_LIST(mg_int(32)));
	/* main + broker thread + forks <= 8 */
	assert_true(res->items[0].i >= 1 && res->items[0].i <= 6);
	assert_int_equal(res->items[1].i, EAGAIN);
	mg_value_free(res);
	finish(ctx);
}

/* The tool's --no-net, and the other namespaces, as root. */
static void test_no_net_root(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default",
				      .namespaces = MG_NS_NET | MG_NS_MOUNT | MG_NS_UTS |
						    MG_NS_IPC, .no_inet = true };
	struct mg_context *ctx;
	char host[256] = "";

	NEED_ROOT();
	NS_REQUIRED(0);
	ctx = sudo_ok("root", &sb);
	assert_int_equal(getuid_of(ctx), 0);
	assert_no_net(ctx);
	assert_own_namespaces(ctx);
	assert_private_tmp(ctx);
	assert_refused(ctx, "default");
	finish(ctx);
	/* Ours are untouched. */
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	assert_string_not_equal(host, "mitogen");
}

/* Another user: the agent makes a user namespace to hold the others. */
static void test_no_net_user(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default",
				      .namespaces = MG_NS_NET | MG_NS_MOUNT | MG_NS_UTS,
				      .no_inet = true };
	struct mg_context *ctx;

	NEED_ROOT();
	NS_REQUIRED(user_uid("mgsudo"));
	ctx = sudo_ok("mgsudo", &sb);
	assert_int_equal(host_uid_of(ctx), user_uid("mgsudo"));
	assert_int_equal(getuid_of(ctx), 0);	/* root of its user namespace */
	assert_no_net(ctx);
	assert_own_namespaces(ctx);
	assert_private_tmp(ctx);
	finish(ctx);
}

/* A net namespace alone: inet works there, on lo only. */
static void test_net_ns_inet(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .namespaces = MG_NS_NET };
	struct mg_context *ctx;
	struct mg_value *res;

	NEED_ROOT();
	NS_REQUIRED(0);
	ctx = sudo_ok("root", &sb);
	res = call_ok(ctx, "net_info", NULL);
	assert_int_equal(res->items[0].len, 1);
	assert_true(res->items[1].i & IFF_UP);
	mg_value_free(res);
	/* Port 80 of its own lo: free whatever the host listens on. */
	res = call_ok(ctx, "bind_port", MG_LIST(mg_int(80)));
	assert_int_equal(res->i, 80);
	mg_value_free(res);
	finish(ctx);
}

/*
 * A pid namespace through sudo: the agent unshares it and forks once more
 * (sandbox/namespaces.c), so it is pid 1 in there, and what it runs gets
 * low pids; as root, and as another user (inside its user namespace).
 */
static void assert_pid_ns(struct mg_context *ctx)
{
	struct mg_value *res = call_ok(ctx, "mg.getpid", NULL);

	assert_int_equal(res->i, 1);
	mg_value_free(res);
	res = call_ok(ctx, "mg.run", MG_LIST(MG_LIST(mg_str("/bin/sh"), mg_str("-c"),
						      mg_str("echo $$"))));
	assert_true(atoi((const char *)mg_map_get(res, "stdout")->bytes) < 10);
	mg_value_free(res);
}

static void test_pid_ns(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb),
				      .namespaces = MG_NS_PID | MG_NS_MOUNT | MG_NS_NET | MG_NS_UTS };
	struct mg_context *ctx;

	NEED_ROOT();
	NS_REQUIRED(0);
	ctx = sudo_ok("root", &sb);
	assert_pid_ns(ctx);
	assert_own_namespaces(ctx);
	finish(ctx);
	NS_REQUIRED(user_uid("mgsudo"));
	ctx = sudo_ok("mgsudo", &sb);
	assert_int_equal(getuid_of(ctx), 0);	/* root of its user namespace */
	assert_pid_ns(ctx);
	finish(ctx);
}

/* Through an unsandboxed intermediate (mgsudo), then sudo to root, su, doas. */
static void test_via_su_doas(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default",
				      .namespaces = MG_NS_NET | MG_NS_MOUNT, .no_inet = true };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;

	NEED_ROOT();
	NS_REQUIRED(0);
	mid = sudo_ok("mgsudo", NULL);
	ctx = must(sudo_sb("root", &sb, mid, &err), &err);
	assert_int_equal(getuid_of(ctx), 0);
	assert_no_net(ctx);
	assert_private_tmp(ctx);
	finish(ctx);
	if (access("/usr/bin/doas", X_OK) == 0) {
		MG_OPTS(mg_local_opts, lo, .via = mid, .sandbox = &sb, .connect_timeout = 120);
		MG_OPTS(mg_doas_opts, dopts, .local = &lo);

		ctx = must(mg_doas(router, &dopts, &err), &err);
		assert_int_equal(getuid_of(ctx), 0);
		assert_no_net(ctx);
		finish(ctx);
	} else {
		print_message("# doas part skipped: doas is not installed (opendoas)\n");
	}
	finish(mid);
	/* su from root to mgsu (no password asked of root): a user namespace. */
	if (!ns_missing(user_uid("mgsu"))) {
		MG_OPTS(mg_local_opts, lo, .sandbox = &sb, .connect_timeout = 120);
		MG_OPTS(mg_su_opts, so, .local = &lo, .username = "mgsu", .password = "mgsu-pw");

		ctx = must(mg_su(router, &so, &err), &err);
		assert_int_equal(host_uid_of(ctx), user_uid("mgsu"));
		assert_int_equal(getuid_of(ctx), 0);	/* root of its user namespace */
		assert_no_net(ctx);
		finish(ctx);
	}
}

static void test_ssh_sudo(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default",
				      .namespaces = MG_NS_NET | MG_NS_MOUNT | MG_NS_UTS,
				      .no_inet = true };
	const char *args[] = { "-o", fx.known, NULL };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *host, *ctx;

	NEED_SSHD();
	NS_REQUIRED(0);
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 120);
	MG_OPTS(mg_ssh_opts, o, .local = &lo, .hostname = "127.0.0.1", .port = fx.port,
		.username = "mgsudo", .identity_file = fx.key, .ssh_args = args);
	host = must(mg_ssh(router, &o, &err), &err);
	ctx = must(sudo_sb("root", &sb, host, &err), &err);
	assert_int_equal(getuid_of(ctx), 0);
	assert_no_net(ctx);
	assert_own_namespaces(ctx);
	assert_refused(ctx, "default");
	finish(ctx);
	finish(host);
}

/* The tool: `mitogen run --no-net -t sudo:mgsudo` sees only lo. */
static void test_tool_no_net(void **state)
{
	const char *bd = getenv("MG_TEST_BUILD_DIR");
	char cmd[PATH_MAX + 128], out[4096];
	size_t n;
	FILE *p;

	NEED_ROOT();
	NS_REQUIRED(user_uid("mgsudo"));
	snprintf(cmd, sizeof(cmd), "timeout 60 %s/mitogen run --no-net -t sudo:mgsudo -- "
		 "sed -n 's/^ *\\([^ ]*\\):.*/\\1/p' /proc/net/dev", bd ? bd : "build");
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	assert_string_equal(out, "lo\n");
}

/*
 * What a first-stage agent does, in a forked (single-threaded) child of
 * ours: it enters the bits it was given, and after BOOT "ns_in" says what
 * it entered, whatever the parent claimed there. Exit 0: as expected.
 */
static int enter_self_child(unsigned given, unsigned claimed)
{
	struct mg_value *sb = mg_map();
	char why[512] = "";
	struct stat mine, now;
	const struct mg_value *in;
	int ret;

	if (stat("/proc/self/ns/net", &mine) < 0)
		return 10;
	sandbox_ns_enter_self(given);
	mg_map_set(sb, "ns", mg_int(MG_NS_NET));
	mg_map_set(sb, "ns_in", mg_int(claimed));
	sandbox_ns_record_self(sb);
	in = mg_map_get(sb, "ns_in");
	if (!in || in->i != (int64_t)given)
		return 11;
	ret = sandbox_apply(sb, why, sizeof(why));
	mg_value_free(sb);
	if (stat("/proc/self/ns/net", &now) < 0)
		return 12;
	if (given) {
		/* Entered for real, set up (lo up) without complaint. */
		return ret == 0 && now.st_ino != mine.st_ino ? 0 : 13;
	}
	/* Claimed but not entered: fails closed, saying so. */
	if (ret != -EOPNOTSUPP || !strstr(why, "started without them"))
		return 14;
	return now.st_ino == mine.st_ino ? 0 : 15;
}

static void test_ns_in_not_taken_from_parent(void **state)
{
	for (int i = 0; i < 2; i++) {
		unsigned given = i ? MG_NS_NET : 0;
		int st = 0;
		pid_t pid;

		if (given && ns_missing(0))
			continue;
		pid = fork();
		if (pid == 0)
			_exit(enter_self_child(given, MG_NS_NET));
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		if (WEXITSTATUS(st))
			print_error("given %#x: child exit %d\n", given, WEXITSTATUS(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strict_runs_builtins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_keeps_one_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_landlock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rlimit_nofile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_pids_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_net_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_net_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_ns_inet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pid_ns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_via_su_doas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssh_sudo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_no_net, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ns_in_not_taken_from_parent, setup, teardown),
	};
	return FIXTURE_TEST_RUN("transports/sudo_sandbox", tests);
}
