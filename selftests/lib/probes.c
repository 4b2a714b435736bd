// SPDX-License-Identifier: MIT
/*
 * selftests/lib/probes.c: the probes sandboxed children run, exported by
 * name, and the machine checks the sandbox tests share (see probes.h).
 *
 * Owns: the one copy of each probe and shared sandbox-test helper; linked into every selftest binary, so
 * a context any test starts (it execs that binary) can run them. Must not
 * touch: anything but the public API of the library.
 */
#include "selftests/lib/probes.h"
#include "selftests/lib/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* --- functions the children run ------------------------------------------ */

/* try_syscall(name) -> 0, or a CallError with errno and strerror. */
static int try_syscall(struct mg_call *call, const struct mg_value *args,
		       struct mg_value **ret)
{
	static char image[64];	/* not an ELF module: ENOEXEC if it gets that far */
	const char *what;
	long rc;

	if (mg_value_unpack(args, NULL, "s", &what) < 0)
		return mg_call_fail(call, EINVAL, "try_syscall(name)");
	errno = 0;
	if (!strcmp(what, "mount"))
		rc = mount("none", "/nonexistent-mg-sandbox", "mg-no-such-fs", 0, NULL);
	else if (!strcmp(what, "ptrace_traceme"))
		rc = ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	else if (!strcmp(what, "ptrace_attach"))
		rc = ptrace(PTRACE_ATTACH, (pid_t)0x3ffffff0, NULL, NULL);	/* no such pid */
	else if (!strcmp(what, "init_module"))
		rc = syscall(SYS_init_module, image, sizeof(image), "");
	else if (!strcmp(what, "bpf"))
		rc = syscall(SYS_bpf, -1, NULL, 0);	/* no such command */
	else
		return mg_call_fail(call, EINVAL, "unknown syscall test '%s'", what);
	if (rc < 0)
		return mg_call_fail(call, errno, "%s: %s", what, strerror(errno));
	*ret = mg_int(rc);
	return 0;
}
MG_EXPORT(try_syscall);

/* open_many(n) -> n, or a CallError with the errno of the first failure. */
static int open_many(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int fds[256], n, i, e = 0;

	if (mg_value_unpack(args, NULL, "i", &n) < 0 || n < 0 || n > 256)
		return mg_call_fail(call, EINVAL, "open_many(n <= 256)");
	for (i = 0; i < n; i++) {
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			e = errno;
			break;
		}
	}
	for (int j = 0; j < i; j++)
		close(fds[j]);
	if (e)
		return mg_call_fail(call, e, "open #%d: %s", i + 1, strerror(e));
	*ret = mg_int(n);
	return 0;
}
MG_EXPORT(open_many);

/* bind_port(port) -> the first port from port up (< 1024) it could bind on
 * 127.0.0.1 (one in use is skipped). */
static int bind_port(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int port, e = EADDRINUSE;

	if (mg_value_unpack(args, NULL, "i", &port) < 0 || port <= 0 || port >= 1024)
		return mg_call_fail(call, EINVAL, "bind_port(port < 1024)");
	for (; port < 1024 && e == EADDRINUSE; port++) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return mg_call_fail(call, errno, "socket: %s", strerror(errno));
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
			close(fd);
			*ret = mg_int(port);
			return 0;
		}
		e = errno;
		close(fd);
	}
	return mg_call_fail(call, e, "bind 127.0.0.1:<1024: %s", strerror(e));
}
MG_EXPORT(bind_port);

/* chown_file(path): give it to uid/gid 1. */
static int chown_file(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const char *path;

	if (mg_value_unpack(args, NULL, "s", &path) < 0)
		return mg_call_fail(call, EINVAL, "chown_file(path)");
	if (chown(path, 1, 1) < 0)
		return mg_call_fail(call, errno, "chown %s: %s", path, strerror(errno));
	return 0;
}
MG_EXPORT(chown_file);

/* raw_socket() -> nil, or the socket(SOCK_RAW) failure. */
static int raw_socket(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);

	if (fd < 0)
		return mg_call_fail(call, errno, "raw socket: %s", strerror(errno));
	close(fd);
	return 0;
}
MG_EXPORT(raw_socket);

/* net_info() -> [names of interfaces..., lo flags] */
static int net_info(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	struct ifreq ifr = { 0 };
	struct mg_value *names = mg_list();
	int fd, flags = -1;

	if (!ifs) {
		mg_value_free(names);
		return mg_call_fail(call, errno, "if_nameindex: %s", strerror(errno));
	}
	for (i = ifs; i->if_index; i++)
		mg_list_append(names, mg_str(i->if_name));
	if_freenameindex(ifs);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0)
		flags = ifr.ifr_flags;
	if (fd >= 0)
		close(fd);
	*ret = mg_list();
	mg_list_append(*ret, names);
	mg_list_append(*ret, mg_int(flags));
	return 0;
}
MG_EXPORT(net_info);

/* inet_socket() -> 0, or the socket() failure. */
static int inet_socket(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return mg_call_fail(call, errno, "socket(AF_INET): %s", strerror(errno));
	close(fd);
	return 0;
}
MG_EXPORT(inet_socket);

/* my_cgroups() -> text of /proc/self/cgroup */
static int my_cgroups(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	char buf[4096];
	FILE *f = fopen("/proc/self/cgroup", "re");
	size_t n;

	if (!f)
		return mg_call_fail(call, errno, "/proc/self/cgroup: %s", strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	*ret = mg_str(buf);
	return 0;
}
MG_EXPORT(my_cgroups);

/* fork_until_fail(max) -> [forks that worked, errno of the first failure] */
static int fork_until_fail(struct mg_call *call, const struct mg_value *args,
			   struct mg_value **ret)
{
	pid_t pids[64];
	int max, n = 0, e = 0;

	if (mg_value_unpack(args, NULL, "i", &max) < 0 || max < 1 || max > 64)
		return mg_call_fail(call, EINVAL, "fork_until_fail(max <= 64)");
	while (n < max) {
		pid_t pid = fork();

		if (pid == 0) {
			pause();
			_exit(0);
		}
		if (pid < 0) {
			e = errno;
			break;
		}
		pids[n++] = pid;
	}
	for (int i = 0; i < n; i++) {
		kill(pids[i], SIGKILL);
		waitpid(pids[i], NULL, 0);
	}
	*ret = mg_value_build("ii", n, e);
	return 0;
}
MG_EXPORT(fork_until_fail);

/* --- calling them ------------------------------------------------------- */

int mg_test_call_err(struct mg_context *ctx, const char *fn, struct mg_value *args,
		     char *msg, size_t n)
{
	struct mg_error err = MG_ERROR_INIT;
	int ret = mg_call(ctx, fn, args, NULL, &err);

	snprintf(msg, n, "%s", err.message);
	if (ret == 0)
		return 0;
	assert_int_equal(ret, -EREMOTEIO);
	assert_int_equal(err.kind, MG_ERR_CALL);
	return err.errnum;
}

void mg_test_assert_refused(struct mg_context *ctx, const char *profile,
			    const char *const what[], const char *const name[], size_t n)
{
	char msg[MG_ERROR_MSG_MAX], want[128];

	for (size_t i = 0; i < n; i++) {
		int e = mg_test_call_err(ctx, "try_syscall", MG_LIST(mg_str(what[i])), msg,
					 sizeof(msg));

		snprintf(want, sizeof(want), "blocked by seccomp (profile %s): %s", profile,
			 name[i]);
		if (e != EPERM || !strstr(msg, want))
			print_error("%s: errno %d, message '%s', want '%s'\n", what[i], e, msg,
				    want);
		assert_int_equal(e, EPERM);
		assert_non_null(strstr(msg, want));
	}
}

struct mg_context *mg_test_start(struct mg_router *r, const struct mg_sandbox_opts *sb,
				 struct mg_context *via, struct mg_error *err)
{
	/* A bound on a start, not a speed: sandboxed starts under ASan on a
	 * loaded machine took more than 20 s. */
	MG_OPTS(mg_local_opts, lo, .sandbox = sb, .connect_timeout = 120, .via = via);

	return mg_local(r, &lo, err);
}

struct mg_context *mg_test_start_ok(struct mg_router *r, const struct mg_sandbox_opts *sb,
				    struct mg_context *via)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx = mg_test_start(r, sb, via, &err);

	if (!ctx)
		fail_msg("mg_local: %s", err.message);
	return ctx;
}

void mg_test_stop(struct mg_context *ctx)
{
	assert_int_equal(mg_context_shutdown(ctx, true), 0);
	mg_context_unref(ctx);
}

/* --- scratch files and checks of this machine ---------------------------------------------- */

bool mg_test_ns_missing(int flags)
{
	static int tried = -1, missing;
	pid_t pid;
	int st = 0;

	if (tried == flags)
		return missing != 0;
	pid = fork();
	if (pid == 0)
		_exit(unshare(flags) < 0 ? errno : 0);
	waitpid(pid, &st, 0);
	missing = WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
	tried = flags;
	if (missing)
		print_message("# skip: cannot create namespaces here: %s\n", strerror(missing));
	return missing != 0;
}

bool mg_test_have_cap(int cap)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	return data[cap / 32].effective & (1u << (cap % 32));
}

void mg_test_tmpdir(char *dir, size_t n, const char *name)
{
	const char *base = getenv("TMPDIR");

	snprintf(dir, n, "%s/%s-XXXXXX", base && *base ? base : "/tmp", name);
	assert_non_null(mkdtemp(dir));
}

int mg_test_rm_rf(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

void mg_test_write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

void mg_test_sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0) {
		fprintf(stderr, "# failed: %s\n", cmd);
		fail();
	}
}
