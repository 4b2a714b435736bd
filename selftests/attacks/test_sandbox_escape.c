// SPDX-License-Identifier: MIT
/*
 * test_sandbox_escape.c — a hostile sandboxed child trying to get out of
 * its sandbox, as an attacker would (issue 15, items 2, 3 and 4). Each
 * test performs the attack and asserts that it fails:
 *
 *  - namespaces through clone: clone() and clone3() with
 *    CLONE_NEWUSER|CLONE_NEWNET from a `default` or `strict` child with
 *    every capability dropped (the new process would hold every
 *    capability in its own user namespace, and netlink there); and the
 *    same through the library: a `default` intermediate starting a child
 *    in a new net namespace. Ordinary fork, pthread_create, posix_spawn
 *    and mg.run still work in both profiles.
 *  - io_uring around the socket rules: IORING_OP_SOCKET opens an AF_INET
 *    socket without the socket syscall, then connects to a listener of
 *    this test on 127.0.0.1: from `default`, from `no_inet`, and from a
 *    tenant with tenant_deny inet whose eBPF policy cannot be attached
 *    (this test's master runs under a filter making bpf() fail, as on a
 *    machine without eBPF) so the no_inet seccomp filter stands in. With
 *    the eBPF policy attached, the cgroup program refuses the io_uring
 *    socket too (a control: this held before). A program mg.run starts
 *    that merely probes io_uring gets EPERM and lives.
 *  - commands taking over their agent: a command run by mg.run (this very
 *    binary, with --esc-attack) takes the agent's channel with
 *    pidfd_getfd(), or opens the agent's /proc/PID/mem for writing, from
 *    `default`, `strict` and a sandbox of dropped capabilities only.
 *  - commands taking over the keeper (agent/keeper.c): the unsandboxed
 *    process above a sudo agent, which holds a duplicate of the agent's
 *    channel. A command of that agent (the same user) takes that channel
 *    with pidfd_getfd(), or opens the keeper's /proc/PID/mem for writing,
 *    with no seccomp filter and with `default`.
 *
 * eBPF: the channel filters change nothing here (they filter records on a
 * channel, not syscalls); the namespace and takeover attacks run with them
 * on and off all the same. For io_uring the tenant's eBPF socket policy is
 * what matters, on and off as said above.
 */
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <seccomp.h>

#include "selftests/lib/harness.h"
#include "selftests/lib/probes.h"
#include "bpf/loader.h"

extern char **environ;

/* --- the attacks a sandboxed child runs (MG_EXPORTs) ----------------------- */

/*
 * esc_clone(how) -> the exit code of a process made by clone ("clone") or
 * clone3 ("clone3") with CLONE_NEWUSER|CLONE_NEWNET: 0x40, | 1 when it
 * held CAP_SYS_ADMIN (in its new user namespace), | 2 when it could open a
 * netlink socket. Or a CallError with the errno of the refusal.
 */
static int esc_clone(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const unsigned long flags = CLONE_NEWUSER | CLONE_NEWNET;
	const char *how;
	long pid;
	int st = 0;

	if (mg_value_unpack(args, NULL, "s", &how) < 0)
		return mg_call_fail(call, EINVAL, "esc_clone(how)");
	if (!strcmp(how, "clone")) {
		/* x86_64 and aarch64: flags, stack, parent_tid, child_tid, tls. */
		pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
	} else if (!strcmp(how, "clone3")) {
		struct clone_args ca = { .flags = flags, .exit_signal = SIGCHLD };

		pid = syscall(SYS_clone3, &ca, sizeof(ca));
	} else {
		return mg_call_fail(call, EINVAL, "esc_clone: unknown '%s'", how);
	}
	if (pid < 0)
		return mg_call_fail(call, errno, "%s(CLONE_NEWUSER|CLONE_NEWNET): %s", how,
				    strerror(errno));
	if (pid == 0) {
		/* The new process: raw syscalls only (a copy of a threaded
		 * process), then out. */
		struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct data[2] = { 0 };
		int code = 0x40;

		if (syscall(SYS_capget, &hdr, data) == 0 &&
		    (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))))
			code |= 1;
		if (syscall(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) >= 0)
			code |= 2;
		syscall(SYS_exit_group, code);
	}
	if (waitpid((pid_t)pid, &st, 0) < 0)
		return mg_call_fail(call, errno, "waitpid: %s", strerror(errno));
	*ret = mg_int(WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
	return 0;
}
MG_EXPORT(esc_clone);

static void *thread_42(void *arg)
{
	return (void *)42L;
}

/*
 * esc_spawn() -> [fork child's exit code (7), pthread result (42),
 * posix_spawn of /bin/true exit code (0)]: the ordinary uses of clone and
 * clone3, still allowed.
 */
static int esc_spawn(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	char *const argv[] = { "true", NULL };
	pthread_t t;
	void *tret = NULL;
	pid_t pid;
	int st = 0, st2 = 0, e;

	pid = fork();
	if (pid == 0)
		_exit(7);
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return mg_call_fail(call, errno, "fork: %s", strerror(errno));
	e = pthread_create(&t, NULL, thread_42, NULL);
	if (e || (e = pthread_join(t, &tret)))
		return mg_call_fail(call, e, "pthread_create: %s", strerror(e));
	e = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
	if (!e && waitpid(pid, &st2, 0) < 0)
		e = errno;
	if (e)
		return mg_call_fail(call, e, "posix_spawn: %s", strerror(e));
	*ret = mg_value_build("iii", WIFEXITED(st) ? WEXITSTATUS(st) : -1, (int)(long)tret,
			      WIFEXITED(st2) ? WEXITSTATUS(st2) : -1);
	return 0;
}
MG_EXPORT(esc_spawn);

/*
 * esc_uring_socket(port) -> "connected": an AF_INET TCP socket opened by
 * IORING_OP_SOCKET (no socket syscall), connected to 127.0.0.1:port. Or
 * "no IORING_OP_SOCKET" where the kernel lacks the operation, or a
 * CallError: "io_uring_setup: ..." (refused before any ring exists),
 * "IORING_OP_SOCKET: ..." (the kernel refused the socket), "connect: ...".
 */
static int esc_uring_socket(struct mg_call *call, const struct mg_value *args,
			    struct mg_value **ret)
{
	struct io_uring_params p = { 0 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	size_t sq_len, cq_len, sqe_len;
	void *sq = MAP_FAILED, *cq = MAP_FAILED;
	struct io_uring_sqe *sqes = MAP_FAILED;
	struct io_uring_cqe *cqe;
	unsigned *tail, idx;
	int port, ring, fd = -1, res, e = 0;
	const char *what = NULL;

	if (mg_value_unpack(args, NULL, "i", &port) < 0 || port <= 0 || port > 65535)
		return mg_call_fail(call, EINVAL, "esc_uring_socket(port)");
	ring = (int)syscall(SYS_io_uring_setup, 4, &p);
	if (ring < 0)
		return mg_call_fail(call, errno, "io_uring_setup: %s", strerror(errno));
	sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP)
		sq_len = cq_len = sq_len > cq_len ? sq_len : cq_len;
	sqe_len = p.sq_entries * sizeof(struct io_uring_sqe);
	sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
		  IORING_OFF_SQ_RING);
	if (sq != MAP_FAILED)
		cq = (p.features & IORING_FEAT_SINGLE_MMAP) ? sq :
			mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			     ring, IORING_OFF_CQ_RING);
	if (cq != MAP_FAILED)
		sqes = mmap(NULL, sqe_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			    ring, IORING_OFF_SQES);
	if (sqes == MAP_FAILED) {
		e = errno;
		what = "mmap";
		goto out;
	}
	tail = (unsigned *)((char *)sq + p.sq_off.tail);
	idx = *tail & *(unsigned *)((char *)sq + p.sq_off.ring_mask);
	memset(&sqes[idx], 0, sizeof(sqes[idx]));
	sqes[idx].opcode = IORING_OP_SOCKET;
	sqes[idx].fd = AF_INET;
	sqes[idx].off = SOCK_STREAM;
	sqes[idx].len = 0;		/* protocol */
	((unsigned *)((char *)sq + p.sq_off.array))[idx] = idx;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
		e = errno;
		what = "io_uring_enter";
		goto out;
	}
	cqe = (struct io_uring_cqe *)((char *)cq + p.cq_off.cqes) +
	      (__atomic_load_n((unsigned *)((char *)cq + p.cq_off.head), __ATOMIC_ACQUIRE) &
	       *(unsigned *)((char *)cq + p.cq_off.ring_mask));
	res = cqe->res;
	if (res == -EINVAL || res == -EOPNOTSUPP) {
		*ret = mg_str("no IORING_OP_SOCKET");
		goto out;
	}
	if (res < 0) {
		e = -res;
		what = "IORING_OP_SOCKET";
		goto out;
	}
	fd = res;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		e = errno;
		what = "connect";
		goto out;
	}
	*ret = mg_str("connected");
out:
	if (fd >= 0)
		close(fd);
	if (sqes != MAP_FAILED)
		munmap(sqes, sqe_len);
	if (cq != MAP_FAILED && cq != sq)
		munmap(cq, cq_len);
	if (sq != MAP_FAILED)
		munmap(sq, sq_len);
	close(ring);
	if (what)
		return mg_call_fail(call, e, "%s: %s", what, strerror(e));
	return 0;
}
MG_EXPORT(esc_uring_socket);

/* esc_dumpable() -> prctl(PR_GET_DUMPABLE) of the agent. */
static int esc_dumpable(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	*ret = mg_int(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	return 0;
}
MG_EXPORT(esc_dumpable);

/* Open the master's /proc/PID/mem read-write: "opened", or the refusal. */
static int esc_master_mem(struct mg_call *call, const struct mg_value *args,
			  struct mg_value **ret)
{
	char path[64];
	int64_t pid;
	int fd;

	if (mg_value_unpack(args, NULL, "l", &pid) < 0)
		return mg_call_fail(call, EINVAL, "esc_master_mem(pid)");
	snprintf(path, sizeof(path), "/proc/%lld/mem", (long long)pid);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		*ret = mg_str("opened");
	} else {
		*ret = mg_str(strerror(errno));
	}
	return 0;
}
MG_EXPORT(esc_master_mem);

/* --- the command that attacks its agent (this binary, --esc-attack) -------- */

/*
 * Run as a command by mg.run: its parent is the agent. "pidfd_getfd":
 * take each of the agent's fds 0-63 with pidfd_getfd() until one is its
 * channel (an AF_UNIX SOCK_SEQPACKET socket). "proc_mem": open the
 * agent's /proc/PID/mem read-write and write back the first bytes of its
 * code. Prints what it got and exits 0 when the attack worked, prints the
 * refusal and exits 1 when not. "io_uring_setup" (no attack): prints
 * what io_uring_setup() answered and exits 0. _exit: no atexit work
 * (LeakSanitizer's would need ptrace, which a sandbox may refuse).
 */
/* The parent of pid, from /proc/<pid>/stat; 0 when it cannot be read. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f && fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 1, " %*c %d", &ppid);
	if (f)
		fclose(f);
	return (pid_t)ppid;
}

static __attribute__((noreturn)) void attack_agent(const char *how)
{
	pid_t agent = getppid();
	const char *whose = "agent";

	/* "keeper_*": the same attacks on the agent's parent, its keeper. */
	if (!strncmp(how, "keeper_", 7)) {
		agent = parent_of(agent);
		whose = "keeper";
		how += 7;
	}

	if (!strcmp(how, "pidfd_getfd")) {
		int pidfd = (int)syscall(SYS_pidfd_open, agent, 0), e = 0;

		if (pidfd < 0) {
			printf("pidfd_open(%d): %s\n", (int)agent, strerror(errno));
			fflush(stdout);
			_exit(1);
		}
		for (int fd = 0; fd < 64; fd++) {
			int got = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0), type = 0;
			socklen_t len = sizeof(type);
			struct sockaddr_storage ss;
			socklen_t slen = sizeof(ss);

			if (got < 0) {
				if (errno != EBADF)
					e = errno;
				if (errno == EPERM)
					break;
				continue;
			}
			if (getsockopt(got, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
			    getsockname(got, (struct sockaddr *)&ss, &slen) == 0 &&
			    ss.ss_family == AF_UNIX && type == SOCK_SEQPACKET) {
				printf("took the %s's channel: its fd %d (AF_UNIX "
				       "SOCK_SEQPACKET)\n", whose, fd);
				fflush(stdout);
				_exit(0);
			}
			close(got);
		}
		printf("pidfd_getfd(%s %d): %s\n", whose, (int)agent,
		       e ? strerror(e) : "no channel among fds 0-63");
		fflush(stdout);
		_exit(1);
	}
	if (!strcmp(how, "proc_mem")) {
		char path[64], maps[64], line[512];
		unsigned long lo = 0;
		unsigned char code[16];
		FILE *f;
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/mem", (int)agent);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			printf("open %s O_RDWR: %s\n", path, strerror(errno));
			fflush(stdout);
			_exit(1);
		}
		/* The first executable mapping: write its bytes back as they
		 * are (proves write access, changes nothing). */
		snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)agent);
		f = fopen(maps, "re");
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, " r-xp ") && sscanf(line, "%lx-", &lo) == 1)
				break;
		if (f)
			fclose(f);
		if (lo && pread(fd, code, sizeof(code), (off_t)lo) == (ssize_t)sizeof(code) &&
		    pwrite(fd, code, sizeof(code), (off_t)lo) == (ssize_t)sizeof(code))
			printf("opened %s read-write; wrote %zu bytes of its code at %#lx\n",
			       path, sizeof(code), lo);
		else
			printf("opened %s read-write\n", path);
		fflush(stdout);
		_exit(0);
	}
	if (!strcmp(how, "io_uring_setup")) {
		/* Not an attack: what a runtime does before falling back. */
		struct io_uring_params p = { 0 };
		int fd = (int)syscall(SYS_io_uring_setup, 4, &p);

		printf("io_uring_setup: %s\n", fd < 0 ? strerror(errno) : "a ring");
		fflush(stdout);
		_exit(0);
	}
	printf("unknown attack '%s'\n", how);
	fflush(stdout);
	_exit(2);
}

/* --- helpers ---------------------------------------------------------------- */

static struct mg_router *router;
static char self_exe[PATH_MAX];

static int setup(void **state)
{
	router = mg_router_new(NULL);
	assert_non_null(router);
	return 0;
}

static int teardown(void **state)
{
	mg_router_unref(router);
	router = NULL;
	return 0;
}

/* "": drop every capability (root only: needs CAP_SETPCAP); an
 * unprivileged user has none to drop. */
static const char *no_caps(void)
{
	return geteuid() == 0 ? "" : NULL;
}

/* Start a child with sandbox sb, the channel eBPF filters on or off. */
static struct mg_context *start(const struct mg_sandbox_opts *sb, bool bpf)
{
	struct mg_context *ctx;

	bpfload_set_enabled(bpf);
	ctx = mg_test_start_ok(router, sb, NULL);
	bpfload_set_enabled(true);
	return ctx;
}

static struct mg_value *call_ok(struct mg_context *ctx, const char *fn, struct mg_value *args)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;

	if (mg_call(ctx, fn, args, &res, &err) < 0)
		fail_msg("%s: %s", fn, err.message);
	return res;
}

/* A listener on 127.0.0.1, any port: fd, port in *port. */
static int listen_lo(int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Did a connection reach the listener? (Looked at once: a probe's connect
 * has returned, so it is queued if it happened.) */
static bool accepted(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* mg.run this binary with --esc-attack how in ctx: status, stdout in out. */
static int run_attack(struct mg_context *ctx, const char *how, char *out, size_t n)
{
	struct mg_value *res = call_ok(ctx, "mg.run", MG_LIST(MG_LIST(mg_str(self_exe),
						mg_str("--esc-attack"), mg_str(how))));
	const struct mg_value *st = mg_map_get(res, "status"), *o = mg_map_get(res, "stdout");
	int status;

	assert_non_null(st);
	assert_non_null(o);
	snprintf(out, n, "%.*s", (int)o->len, (const char *)o->bytes);
	status = (int)st->i;
	mg_value_free(res);
	return status;
}

/* --- 2. namespaces through clone ------------------------------------------ */

/* esc_clone(how) in ctx: 0 and the new process's exit code in *code, or
 * the errno of the CallError and its message in msg. */
static int clone_attack(struct mg_context *ctx, const char *how, int *code, char *msg, size_t n)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;

	*code = -1;
	snprintf(msg, n, "(it worked)");
	if (mg_call(ctx, "esc_clone", MG_LIST(mg_str(how)), &res, &err) == 0) {
		*code = (int)res->i;
		mg_value_free(res);
		return 0;
	}
	assert_int_equal(err.kind, MG_ERR_CALL);
	snprintf(msg, n, "%s", err.message);
	return err.errnum;
}

/*
 * From `default` and `strict`, every capability dropped, eBPF channel
 * filters on and off: clone() with CLONE_NEWUSER|CLONE_NEWNET is refused
 * by the filter (EPERM, the CallError names clone), clone3() fails with
 * ENOSYS whatever its flags (seccomp cannot read its struct).
 */
static void test_clone_new_namespaces_refused(void **state)
{
	static const char *const profiles[] = { "default", "strict" };
	char msg[MG_ERROR_MSG_MAX], want[128];
	int code;

	for (size_t i = 0; i < 2; i++)
		for (int bpf = 1; bpf >= 0; bpf--) {
			struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = profiles[i],
						      .caps = no_caps() };
			struct mg_context *ctx = start(&sb, bpf);
			int e;

			e = clone_attack(ctx, "clone", &code, msg, sizeof(msg));
			snprintf(want, sizeof(want), "blocked by seccomp (profile %s): clone",
				 profiles[i]);
			if (e != EPERM || !strstr(msg, want))
				print_error("%s, eBPF %s: clone: errno %d '%s' (new process: "
					    "%#x), want EPERM '%s'\n", profiles[i],
					    bpf ? "on" : "off", e, msg, code, want);
			assert_int_equal(e, EPERM);
			assert_non_null(strstr(msg, want));

			e = clone_attack(ctx, "clone3", &code, msg, sizeof(msg));
			if (e != ENOSYS)
				print_error("%s, eBPF %s: clone3: errno %d '%s' (new process: "
					    "%#x), want ENOSYS\n", profiles[i],
					    bpf ? "on" : "off", e, msg, code);
			assert_int_equal(e, ENOSYS);
			mg_test_stop(ctx);
		}
}

/*
 * What uses clone and clone3 without CLONE_NEW* still works in both
 * profiles: fork, pthread_create, posix_spawn (glibc falls back from
 * clone3 to clone), and mg.run of a shell pipeline.
 */
static void test_clone_ordinary_uses_work(void **state)
{
	static const char *const profiles[] = { "default", "strict" };

	for (size_t i = 0; i < 2; i++) {
		struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = profiles[i],
					      .caps = no_caps() };
		struct mg_context *ctx = start(&sb, true);
		struct mg_value *res = call_ok(ctx, "esc_spawn", NULL);
		const struct mg_value *st, *out;

		assert_int_equal(res->items[0].i, 7);
		assert_int_equal(res->items[1].i, 42);
		assert_int_equal(res->items[2].i, 0);
		mg_value_free(res);
		res = call_ok(ctx, "mg.run", MG_LIST(MG_LIST(mg_str("/bin/sh"), mg_str("-c"),
					mg_str("echo one two | (read a b; echo $b)"))));
		st = mg_map_get(res, "status");
		out = mg_map_get(res, "stdout");
		assert_non_null(st);
		assert_non_null(out);
		if (st->i != 0)
			print_error("%s: mg.run status %lld\n", profiles[i], (long long)st->i);
		assert_int_equal(st->i, 0);
		assert_int_equal(out->len, 4);
		assert_memory_equal(out->bytes, "two\n", 4);
		mg_value_free(res);
		mg_test_stop(ctx);
	}
}

/*
 * Through the library: a `default` intermediate cannot start a child in a
 * new net namespace (the namespaces are made with clone in the
 * intermediate, with a user namespace when not root); the same child
 * through an unsandboxed intermediate can.
 */
static void test_default_intermediate_makes_no_namespaces(void **state)
{
	/* Capabilities kept: a root intermediate could make namespaces but
	 * for the filter. */
	struct mg_sandbox_opts mid_sb = { .sz = sizeof(mid_sb), .seccomp = "default" };
	struct mg_sandbox_opts ns = { .sz = sizeof(ns), .namespaces = MG_NS_NET };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;

	/* Not root: the library adds a user namespace (as clone flags too). */
	if (mg_test_ns_missing(CLONE_NEWNET | (geteuid() ? CLONE_NEWUSER : 0))) {
		skip();
		return;
	}
	mid = start(&mid_sb, true);
	ctx = mg_test_start(router, &ns, mid, &err);
	if (ctx)
		print_error("a default intermediate started a child in a new net namespace\n");
	else
		print_message("# refused: %s\n", err.message);
	assert_null(ctx);
	assert_non_null(strstr(err.message, "namespaces: cannot create "));
	assert_non_null(strstr(err.message, "net: Operation not permitted"));
	mg_test_stop(mid);
	/* Control: the child itself is fine through an unsandboxed one. */
	mid = start(NULL, true);
	mg_test_stop(mg_test_start_ok(router, &ns, mid));
	mg_test_stop(mid);
}

/* --- 3. io_uring around the socket rules -------------------------------------- */

/* The io_uring attack from ctx must fail at io_uring_setup with EPERM,
 * with want in the message; no connection arrives. */
static void assert_uring_refused(struct mg_context *ctx, int lfd, int port, const char *want,
				 const char *what)
{
	char msg[MG_ERROR_MSG_MAX];
	int e = mg_test_call_err(ctx, "esc_uring_socket", MG_LIST(mg_int(port)), msg,
				 sizeof(msg));

	if (e != EPERM || !strstr(msg, want))
		print_error("%s: io_uring attack: errno %d '%s', want EPERM '%s'\n", what, e,
			    e ? msg : "(it worked)", want);
	assert_false(accepted(lfd));
	assert_int_equal(e, EPERM);
	assert_non_null(strstr(msg, want));
}

/* Can an unsandboxed child of ours use io_uring (the kernel has it, and
 * io_uring_disabled allows it)? Else the refusals would prove nothing:
 * prints why and returns false. */
static bool uring_works(int lfd, int port)
{
	struct mg_context *ctx = start(NULL, true);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;
	bool ok = mg_call(ctx, "esc_uring_socket", MG_LIST(mg_int(port)), &res, &err) == 0;

	if (!ok) {
		print_message("# skip: io_uring does not work here without a sandbox: %s\n",
			      err.message);
	} else if (!strcmp(res->str, "no IORING_OP_SOCKET")) {
		print_message("# this kernel has no IORING_OP_SOCKET: the refusal of "
			      "io_uring_setup itself is what is shown\n");
	} else {
		/* The probe works: it connected, unsandboxed. */
		assert_string_equal(res->str, "connected");
		assert_true(accepted(lfd));
	}
	mg_value_free(res);
	mg_test_stop(ctx);
	return ok;
}

/*
 * `default` (io_uring allowed before), `no_inet` alone (the filter the
 * tenant fallback uses), both, and `strict` (a control: refused already):
 * io_uring_setup itself is refused. EPERM from the filter in `default` and
 * `no_inet` (not a trap: a program mg.run starts that probes io_uring
 * gets the error and lives; see test_io_uring_probe_survives), a trap in
 * `strict`.
 */
static void test_io_uring_refused(void **state)
{
	static const struct {
		const char *what;
		const char *seccomp;
		bool no_inet;
		const char *want;
	} cases[] = {
		{ "default", "default", false, "io_uring_setup: Operation not permitted" },
		{ "no_inet", NULL, true, "io_uring_setup: Operation not permitted" },
		{ "default + no_inet", "default", true, "io_uring_setup: Operation not permitted" },
		{ "strict", "strict", false,
		  "blocked by seccomp (profile strict): io_uring_setup" },
	};
	int port, lfd = listen_lo(&port);

	if (!uring_works(lfd, port)) {
		close(lfd);
		skip();
		return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = cases[i].seccomp,
					      .no_inet = cases[i].no_inet, .caps = no_caps() };
		struct mg_context *ctx = start(&sb, true);

		assert_uring_refused(ctx, lfd, port, cases[i].want, cases[i].what);
		/* The plain socket call stays refused where it was. */
		if (cases[i].no_inet || !strcmp(cases[i].what, "strict")) {
			char msg[MG_ERROR_MSG_MAX];

			assert_int_equal(mg_test_call_err(ctx, "inet_socket", NULL, msg,
							  sizeof(msg)), EPERM);
		}
		mg_test_stop(ctx);
	}
	close(lfd);
}

/*
 * A program mg.run starts in `default` or `no_inet` that tries io_uring
 * (as runtimes do before falling back to plain syscalls) gets EPERM and
 * goes on: it is not killed.
 */
static void test_io_uring_probe_survives(void **state)
{
	static const struct mg_sandbox_opts sbs[] = {
		{ .sz = sizeof(sbs[0]), .seccomp = "default" },
		{ .sz = sizeof(sbs[0]), .no_inet = true },
	};
	char out[1024];

	for (size_t i = 0; i < 2; i++) {
		struct mg_context *ctx = start(&sbs[i], true);
		int status = run_attack(ctx, "io_uring_setup", out, sizeof(out));

		if (status != 0 || !strstr(out, "io_uring_setup: Operation not permitted"))
			print_error("%s: status %d, output '%s'\n", i ? "no_inet" : "default",
				    status, out);
		assert_int_equal(status, 0);
		assert_non_null(strstr(out, "io_uring_setup: Operation not permitted"));
		mg_test_stop(ctx);
	}
}

/* Tenant runs: where the tenant's cgroups are, to remove them after. */
static char tenant_off[64], tenant_on[64];

static void tenant_rmdir(const char *tenant)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "find /sys/fs/cgroup /run/mitogen/cgroup2 -depth -type d -path '*/mitogen/%s' "
		 "-exec rmdir {} + 2>/dev/null; true", tenant);
	if (system(cmd) != 0)
		print_message("# could not remove tenant %s's cgroup\n", tenant);
}

struct tenant_run {
	int lfd, port;
};

/* Exit codes of the master run under a filter refusing bpf(). */
enum { T_OK = 0, T_FILTER = 10, T_START, T_NO_FALLBACK, T_ATTACK, T_CONNECTED };

/*
 * A master on a machine without eBPF (bpf() fails with EPERM, for it and
 * the agents it starts) starts a tenant child with tenant_deny inet: the
 * policy falls back to the no_inet seccomp filter, and the io_uring attack
 * must fail there too.
 */
static void tenant_without_ebpf(void *arg)
{
	struct tenant_run *t = arg;
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	struct mg_error err = MG_ERROR_INIT;
	char msg[MG_ERROR_MSG_MAX];
	struct mg_router *r;
	struct mg_context *ctx;
	int e;

	if (!f || seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(bpf), 0) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_load(f) < 0)
		_exit(T_FILTER);
	seccomp_release(f);
	r = mg_router_new(NULL);
	mg_test_log_capture_start();
	{
		MG_OPTS(mg_sandbox_opts, sb, .tenant = tenant_off, .tenant_deny = MG_TENANT_NO_INET,
			.caps = no_caps());
		MG_OPTS(mg_local_opts, lo, .sandbox = &sb, .connect_timeout = 20);

		ctx = mg_local(r, &lo, &err);
		if (!ctx) {
			fprintf(stderr, "# start: %s\n", err.message);
			_exit(T_START);
		}
	}
	if (!mg_test_log_contains("inet sockets are refused by a seccomp filter", 5.0)) {
		mg_test_log_print();
		_exit(T_NO_FALLBACK);
	}
	e = mg_test_call_err(ctx, "esc_uring_socket", MG_LIST(mg_int(t->port)), msg, sizeof(msg));
	if (accepted(t->lfd)) {
		fprintf(stderr, "# tenant without eBPF: io_uring socket connected: '%s'\n", msg);
		_exit(T_CONNECTED);
	}
	if (e != EPERM || !strstr(msg, "io_uring_setup: Operation not permitted")) {
		fprintf(stderr, "# tenant without eBPF: errno %d '%s'\n", e, e ? msg : "(worked)");
		_exit(T_ATTACK);
	}
	mg_context_shutdown(ctx, true);
	mg_context_unref(ctx);
	mg_test_log_capture_stop();
	mg_router_unref(r);
	_exit(T_OK);
}

static void test_io_uring_tenant_without_ebpf(void **state)
{
	struct tenant_run t;
	int st = 0;

	if (geteuid() != 0) {
		print_message("# skip: tenant cgroups need root\n");
		skip();
		return;
	}
	t.lfd = listen_lo(&t.port);
	snprintf(tenant_off, sizeof(tenant_off), "mgesc-off-%d", (int)getpid());
	assert_int_equal(mg_test_in_child(tenant_without_ebpf, &t, 60, &st), 0);
	tenant_rmdir(tenant_off);
	close(t.lfd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != T_OK)
		fail_msg("tenant without eBPF: child status %#x (exit %d)", st,
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/*
 * Control, eBPF on: with the tenant's cgroup program attached and no
 * seccomp profile at all, io_uring runs but its socket is refused by the
 * program (EPERM on the completion, not a seccomp trap).
 */
static void test_io_uring_tenant_with_ebpf(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char msg[MG_ERROR_MSG_MAX];
	int port, lfd, e;

	if (geteuid() != 0) {
		print_message("# skip: tenant cgroups need root\n");
		skip();
		return;
	}
	snprintf(tenant_on, sizeof(tenant_on), "mgesc-on-%d", (int)getpid());
	lfd = listen_lo(&port);
	mg_test_log_capture_start();
	{
		MG_OPTS(mg_sandbox_opts, sb, .tenant = tenant_on, .tenant_deny = MG_TENANT_NO_INET,
			.caps = no_caps());

		ctx = mg_test_start(router, &sb, NULL, &err);
	}
	if (!ctx)
		fail_msg("start: %s", err.message);
	if (mg_test_log_contains("inet sockets are refused by a seccomp filter", 0)) {
		print_message("# skip: the tenant's eBPF policy cannot be attached here\n");
		mg_test_log_capture_stop();
		mg_test_stop(ctx);
		tenant_rmdir(tenant_on);
		close(lfd);
		skip();
		return;
	}
	mg_test_log_capture_stop();
	e = mg_test_call_err(ctx, "esc_uring_socket", MG_LIST(mg_int(port)), msg, sizeof(msg));
	if (e != EPERM || !strstr(msg, "IORING_OP_SOCKET"))
		print_error("tenant with eBPF: errno %d '%s'\n", e, e ? msg : "(worked)");
	assert_false(accepted(lfd));
	assert_int_equal(e, EPERM);
	assert_non_null(strstr(msg, "IORING_OP_SOCKET: "));
	assert_null(strstr(msg, "seccomp"));
	mg_test_stop(ctx);
	tenant_rmdir(tenant_on);
	close(lfd);
}

/* --- 4. commands taking over their agent ------------------------------------ */

/*
 * A command run by mg.run attacks its agent, which must still serve calls
 * afterwards. The sandboxes: `default`, `strict` (no Landlock), and no
 * seccomp at all with every capability dropped (the agent's not being
 * dumpable is then the only guard); eBPF channel filters on and off.
 *  - pidfd_getfd: under `default` the filter refuses it (the command,
 *    which has no SIGSYS handler, dies of SIGSYS); under `strict` too
 *    (refused there already); without seccomp the kernel refuses it
 *    (EPERM: the agent is not dumpable).
 *  - /proc/PID/mem read-write: refused by the kernel in every sandbox
 *    (EACCES: the agent is not dumpable).
 */
static void test_command_cannot_take_over_agent(void **state)
{
	static const struct {
		const char *what;
		const char *seccomp;
		const char *how;
		int status;		/* mg.run's status */
		const char *want;	/* in the command's output, or NULL */
	} cases[] = {
		{ "default", "default", "pidfd_getfd", -SIGSYS, NULL },
		{ "default", "default", "proc_mem", 1, "Permission denied" },
		{ "strict", "strict", "proc_mem", 1, "Permission denied" },
		{ "strict", "strict", "pidfd_getfd", -SIGSYS, NULL },
		{ "caps only", NULL, "pidfd_getfd", 1, "Operation not permitted" },
		{ "caps only", NULL, "proc_mem", 1, "Permission denied" },
	};
	char out[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (int bpf = 1; bpf >= 0; bpf--) {
			struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = cases[i].seccomp,
						      .caps = no_caps() };
			struct mg_context *ctx = start(&sb, bpf);
			struct mg_value *res;
			int status = run_attack(ctx, cases[i].how, out, sizeof(out));

			if (status != cases[i].status ||
			    (cases[i].want && !strstr(out, cases[i].want)))
				print_error("%s, eBPF %s, %s: status %d, output '%s'; want status "
					    "%d and '%s'\n", cases[i].what, bpf ? "on" : "off",
					    cases[i].how, status, out, cases[i].status,
					    cases[i].want ? cases[i].want : "");
			assert_null(strstr(out, "took the agent's channel"));
			assert_null(strstr(out, "opened /proc/"));
			assert_int_equal(status, cases[i].status);
			if (cases[i].want)
				assert_non_null(strstr(out, cases[i].want));
			/* The agent is intact, and not dumpable. */
			res = call_ok(ctx, "esc_dumpable", NULL);
			assert_int_equal(res->i, 0);
			mg_value_free(res);
			mg_test_stop(ctx);
		}
}

/*
 * The keeper above a sudo agent (agent/keeper.c) is not sandboxed and
 * holds a duplicate of the agent's channel (the connect-back socket): a
 * command of that agent, the same user, takes it with pidfd_getfd() (it
 * could then speak to the master as the context) or opens the keeper's
 * memory read-write (and runs its code outside the sandbox). The keeper
 * is not dumpable, so the kernel refuses both, with no seccomp filter;
 * under `default` the filter refuses pidfd_getfd first. Against a keeper
 * left dumpable, both attacks worked (docs/reliability.md, "The keeper").
 */
static void test_command_cannot_take_over_keeper(void **state)
{
	static const struct {
		const char *seccomp;
		const char *how;
		int status;
		const char *want;
	} cases[] = {
		{ NULL, "keeper_pidfd_getfd", 1, "Operation not permitted" },
		{ NULL, "keeper_proc_mem", 1, "Permission denied" },
		{ "default", "keeper_pidfd_getfd", -SIGSYS, NULL },
		{ "default", "keeper_proc_mem", 1, "Permission denied" },
	};
	char out[1024];

	if (geteuid() != 0 || getpwnam("mgsudo") == NULL || access("/usr/bin/sudo", X_OK) < 0) {
		fprintf(stderr, "# SKIP: needs root, sudo and the test user mgsudo "
			"(selftests/fixtures/sshd.sh users)\n");
		skip();
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = cases[i].seccomp };
		MG_OPTS(mg_local_opts, lo, .sandbox = cases[i].seccomp ? &sb : NULL,
			.connect_timeout = 60);
		MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgsudo");
		struct mg_error err = MG_ERROR_INIT;
		struct mg_context *ctx = mg_sudo(router, &so, &err);
		struct mg_value *res;
		int status;

		if (!ctx)
			fail_msg("sudo to mgsudo: %s", err.message);
		status = run_attack(ctx, cases[i].how, out, sizeof(out));
		if (status != cases[i].status || (cases[i].want && !strstr(out, cases[i].want)))
			print_error("seccomp %s, %s: status %d, output '%s'; want status %d and "
				    "'%s'\n", cases[i].seccomp ? cases[i].seccomp : "none",
				    cases[i].how, status, out, cases[i].status,
				    cases[i].want ? cases[i].want : "");
		assert_null(strstr(out, "took the keeper's channel"));
		assert_null(strstr(out, "opened /proc/"));
		assert_int_equal(status, cases[i].status);
		if (cases[i].want)
			assert_non_null(strstr(out, cases[i].want));
		/* The context still serves. */
		res = call_ok(ctx, "mg.getpid", NULL);
		assert_int_equal(res->type, MG_INT);
		mg_value_free(res);
		mg_context_shutdown(ctx, true);
		mg_context_unref(ctx);
	}
}

/*
 * --esc-master-mem: be a master (run as a normal user by the test below),
 * start a child with the default seccomp profile, have it open our
 * memory, print what it got.
 */
static int master_mem_probe(void)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default" };
	MG_OPTS(mg_local_opts, lo, .sandbox = &sb, .connect_timeout = 60);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = mg_router_new(NULL);
	struct mg_context *ctx = r ? mg_local(r, &lo, &err) : NULL;
	struct mg_value *res = NULL;

	if (!ctx || mg_call(ctx, "esc_master_mem", MG_LIST(mg_int(getpid())), &res, &err) < 0) {
		printf("error: %s\n", err.message);
		return 1;
	}
	printf("%s\n", res->str);
	mg_value_free(res);
	mg_context_shutdown(ctx, true);
	mg_context_unref(ctx);
	mg_router_unref(r);
	return 0;
}

/* Run the probe above as mgtest; its output in out. */
static void master_mem_as_mgtest(const char *env, char *out, size_t size)
{
	char cmd[PATH_MAX + 128];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "runuser -u mgtest -- env %s %s --esc-master-mem 2>&1",
		 env, self_exe);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	pclose(p);
}

/*
 * A sandboxed child of the master's own uid opens the master's memory
 * read-write: against e454782 it could, under any seccomp profile (as a
 * normal user: a root master has capabilities its children dropped, and
 * the kernel refuses them for that), and could then rewrite the master.
 * The master is not dumpable (mg_main), so the kernel refuses. With
 * MITOGEN_DUMPABLE=1 (the old behaviour) the attack works: the control.
 */
static void test_child_cannot_open_master_memory(void **state)
{
	char out[512];

	if (geteuid() != 0 || getpwnam("mgtest") == NULL) {
		fprintf(stderr, "# SKIP: needs root and the test user mgtest "
			"(selftests/fixtures/sshd.sh users)\n");
		skip();
	}
	master_mem_as_mgtest("MITOGEN_DUMPABLE=0", out, sizeof(out));
	if (strcmp(out, "Permission denied\n") != 0)
		fail_msg("a default-sandboxed child of mgtest's master got: %s", out);
	master_mem_as_mgtest("MITOGEN_DUMPABLE=1", out, sizeof(out));
	if (strcmp(out, "opened\n") != 0)
		fail_msg("control: with the master dumpable the child got: %s", out);
}

int main(int argc, char **argv)
{
	/* A command this test runs through mg.run, attacking its agent. */
	if (argc == 3 && !strcmp(argv[1], "--esc-attack"))
		attack_agent(argv[2]);
	mg_main(argc, argv);
	if (argc == 2 && !strcmp(argv[1], "--esc-master-mem"))
		return master_mem_probe();
	if (!realpath("/proc/self/exe", self_exe)) {
		perror("realpath /proc/self/exe");
		return 1;
	}

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clone_new_namespaces_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clone_ordinary_uses_work, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_intermediate_makes_no_namespaces,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_uring_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_uring_probe_survives, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_uring_tenant_without_ebpf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_uring_tenant_with_ebpf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_cannot_take_over_agent, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_command_cannot_take_over_keeper, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_child_cannot_open_master_memory, setup,
						teardown),
	};
	return MG_TEST_RUN("attacks/sandbox_escape", tests);
}
