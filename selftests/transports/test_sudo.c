// SPDX-License-Identifier: MIT
/*
 * selftests/transports/test_sudo.c — mg_sudo(), mg_su(), mg_doas() with
 * the real programs and the test users of selftests/fixtures/sshd.sh:
 * with and without passwords, wrong passwords, sudo_args, via another
 * user and via ssh, the SEQPACKET channel after bootstrap, and the
 * privileged mark.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "selftests/lib/probes.h"
#include "selftests/transports/fixture.h"

/* A context as user (sudo from root: no password). */
static struct mg_context *as_user(const char *user)
{
	struct mg_error err = MG_ERROR_INIT;

	MG_OPTS(mg_local_opts, lo, .connect_timeout = 120);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = user);
	return must(mg_sudo(router, &so, &err), &err);
}

static void test_sudo_root(void **state)
{
	struct mg_context *ctx;

	NEED_ROOT();
	ctx = as_user("mgsudo");
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgsudo"));
	assert_true(mg_context_is_privileged(ctx));
	finish(ctx);
}

static void test_sudo_nopasswd(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;

	NEED_ROOT();
	mid = as_user("mgsudo");
	MG_OPTS(mg_local_opts, lo, .via = mid, .connect_timeout = 120);
	MG_OPTS(mg_sudo_opts, so, .local = &lo);
	ctx = must(mg_sudo(router, &so, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), 0);
	assert_true(mg_context_is_privileged(ctx));
	finish(ctx);
	finish(mid);
}

static void test_sudo_password(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;
	double t0;

	NEED_ROOT();
	mid = as_user("mgsudopw");
	/* A long connect_timeout, and bounds far below it: a wrong or a
	 * missing password fails on sudo's answer, never by the timeout
	 * (and never asserted to be fast: a loaded machine is slow). */
	MG_OPTS(mg_local_opts, lo, .via = mid, .connect_timeout = 600);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .password = "mgsudopw-pw");
	ctx = must(mg_sudo(router, &so, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), 0);
	finish(ctx);

	/* Wrong: PasswordError well within connect_timeout, no hang. */
	so.password = "wrong-password";
	t0 = mg_test_now();
	assert_null(mg_sudo(router, &so, &err));
	fprintf(stderr, "# %.2f s: %s: %s\n", mg_test_now() - t0, mg_error_kind_name(err.kind),
		err.message);
	assert_int_equal(err.kind, MG_ERR_PASSWORD);
	assert_null(strstr(err.message, "wrong-password"));
	assert_true(mg_test_now() - t0 < 300);
	/* None given: PasswordError at once. */
	so.password = NULL;
	t0 = mg_test_now();
	assert_null(mg_sudo(router, &so, &err));
	assert_int_equal(err.kind, MG_ERR_PASSWORD);
	assert_true(mg_test_now() - t0 < 300);
	finish(mid);
}

static void test_sudo_args(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	const char *good[] = { "-H", "-u", "mgsudo", NULL };
	const char *bad[] = { "-k", NULL };
	const char *bad2[] = { "--login", NULL };

	NEED_ROOT();
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 20);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .sudo_args = good);
	ctx = must(mg_sudo(router, &so, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgsudo"));
	finish(ctx);
	so.sudo_args = bad;
	assert_null(mg_sudo(router, &so, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, "-k"));
	so.sudo_args = bad2;
	assert_null(mg_sudo(router, &so, &err));
	assert_non_null(strstr(err.message, "--login"));
}

/* $NAME in ctx's environment (mg.environ), copied into buf; NULL if unset. */
static const char *remote_env(struct mg_context *ctx, const char *name, char *buf, size_t size)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	const struct mg_value *e;
	const char *ret = NULL;

	assert_int_equal(mg_call(ctx, "mg.environ", NULL, &v, &err), 0);
	e = mg_map_get(v, name);
	if (e && e->type == MG_STR) {
		snprintf(buf, size, "%s", e->str);
		ret = buf;
	}
	mg_value_free(v);
	return ret;
}

static void test_sudo_set_home_preserve_env(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char buf[256];

	NEED_ROOT();
	setenv("MG_TEST_SUDO_MARK", "kept", 1);
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 20);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgsudo", .set_home = true);
	ctx = must(mg_sudo(router, &so, &err), &err);
	assert_string_equal(remote_env(ctx, "HOME", buf, sizeof(buf)), "/home/mgsudo");
	assert_null(remote_env(ctx, "MG_TEST_SUDO_MARK", buf, sizeof(buf)));
	finish(ctx);
	so.set_home = false;
	so.preserve_env = true;
	ctx = must(mg_sudo(router, &so, &err), &err);
	assert_string_equal(remote_env(ctx, "MG_TEST_SUDO_MARK", buf, sizeof(buf)), "kept");
	finish(ctx);
	unsetenv("MG_TEST_SUDO_MARK");
}

/* Socket type of inode from /proc/net/unix, or -1. */
static int unix_type(unsigned long ino)
{
	FILE *f = fopen("/proc/net/unix", "r");
	char line[512];
	int type = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long i;
		unsigned t;

		if (sscanf(line, "%*s %*s %*s %*s %x %*s %lu", &t, &i) == 2 && i == ino) {
			type = (int)t;
			break;
		}
	}
	fclose(f);
	return type;
}

/*
 * The connect-back channel of a sudo context is checked and counted by
 * the kernel at our end: the greeting and the 5 replies coming up show in
 * the eBPF counters (root masters only; elsewhere the counters are the
 * router's and say so).
 */
/*
 * The agent a first stage started is named as its context where top and
 * pgrep look: comm "mitogen:NAME" (15 bytes), not "3", the last part of
 * the /proc/self/fd/3 it was exec'd as.
 */
static void test_sudo_agent_named(void **state)
{
	struct mg_context *ctx;
	char path[64], comm[32] = "", want[16];
	FILE *f;
	int pid;

	NEED_ROOT();
	ctx = as_user("mgsudo");
	pid = call_int(ctx, "mg.getpid");
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	assert_non_null(f);
	assert_non_null(fgets(comm, sizeof(comm), f));
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';
	snprintf(want, sizeof(want), "mitogen:%s", mg_context_name(ctx));
	print_message("# agent %d: comm %s\n", pid, comm);
	assert_string_equal(comm, want);
	finish(ctx);
}

/*
 * The first stage execs the agent as /proc/self/fd/3; the agent closes that
 * fd, so it holds no descriptor on its image (a removed cache entry would
 * otherwise keep its disk, and every fd a program could inherit is one to
 * account for). The test is root, so it can read the agent's fd table.
 */
static void test_sudo_image_fd_closed(void **state)
{
	struct mg_context *ctx;
	struct stat exe, st;
	char path[320], dir[64];
	struct dirent *de;
	int pid, nfds = 0;
	DIR *d;

	NEED_ROOT();
	ctx = as_user("mgsudo");
	pid = call_int(ctx, "mg.getpid");
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	assert_int_equal(stat(path, &exe), 0);
	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) < 0)
			continue;
		nfds++;
		if (st.st_dev == exe.st_dev && st.st_ino == exe.st_ino)
			fail_msg("agent %d holds fd %s on its own image", pid, de->d_name);
	}
	closedir(d);
	assert_true(nfds >= 3);		/* we did read its table */
	finish(ctx);
}

static void test_sudo_channel_in_kernel(void **state)
{
	struct mg_router_stats *st = NULL;
	struct mg_context *ctx;
	uint32_t id;
	bool found = false;

	NEED_ROOT();
	ctx = as_user("mgsudo");
	id = mg_context_remote_id(ctx);
	for (int i = 0; i < 5; i++)
		call_int(ctx, "mg.getuid");
	assert_int_equal(mg_router_stats(router, &st), 0);
	if (!st->kernel) {
		fprintf(stderr, "# skip: counters are not kernel-backed here\n");
		mg_router_stats_free(st);
		finish(ctx);
		skip();
	}
	for (size_t i = 0; i < st->nrows; i++) {
		const struct mg_stats_row *row = &st->rows[i];

		if (row->child_id != id || row->context_id != MG_STATS_CHANNEL)
			continue;
		found = true;
		/* Only our end is filtered (the child made its own end), so the
		 * kernel sees no requests go down and cannot tell the replies
		 * coming up from other data: count them together. */
		assert_true(row->dir[MG_STATS_UP].msgs[MG_STATS_REPLY] +
			    row->dir[MG_STATS_UP].msgs[MG_STATS_DATA] >= 6);
	}
	mg_router_stats_free(st);
	assert_true(found);
	finish(ctx);
}

static void test_sudo_seqpacket(void **state)
{
	struct mg_context *ctx;
	char path[64], link[256];
	int seqpackets = 0, streams = 0;
	struct dirent *d;
	DIR *dir;
	pid_t pid;

	NEED_ROOT();
	ctx = as_user("mgsudo");
	pid = (pid_t)call_int(ctx, "mg.getpid");
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	assert_non_null(dir);
	while ((d = readdir(dir))) {
		char fdp[320];
		ssize_t n;
		unsigned long ino;

		if (d->d_name[0] == '.')
			continue;
		snprintf(fdp, sizeof(fdp), "%s/%s", path, d->d_name);
		n = readlink(fdp, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		fprintf(stderr, "# fd %s -> %s\n", d->d_name, link);
		if (!strcmp(d->d_name, "0"))
			assert_string_equal(link, "/dev/null");
		if (sscanf(link, "socket:[%lu]", &ino) == 1) {
			int t = unix_type(ino);

			seqpackets += t == 5;
			streams += t == 1;
		}
	}
	closedir(dir);
	/* The channel is SEQPACKET; the stdio socketpair is gone. */
	assert_int_equal(seqpackets, 1);
	assert_int_equal(streams, 0);
	finish(ctx);
}

static void test_su(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;

	NEED_ROOT();
	mid = as_user("mgtest");
	MG_OPTS(mg_local_opts, lo, .via = mid, .connect_timeout = 15);
	MG_OPTS(mg_su_opts, so, .local = &lo, .username = "mgsu", .password = "mgsu-pw");
	ctx = must(mg_su(router, &so, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgsu"));
	assert_true(mg_context_is_privileged(ctx));
	finish(ctx);
	so.password = "wrong";
	assert_null(mg_su(router, &so, &err));
	fprintf(stderr, "# %s: %s\n", mg_error_kind_name(err.kind), err.message);
	assert_int_equal(err.kind, MG_ERR_PASSWORD);
	finish(mid);
}

/* Run a shell command line (printf-style); the test fails if it does. */
/* What file holds (empty if it does not exist). */
static void slurp(const char *file, char *out, size_t size)
{
	FILE *f = fopen(file, "r");
	size_t n = f ? fread(out, 1, size - 1, f) : 0;

	out[n] = '\0';
	if (f)
		fclose(f);
}

static int restore_mgshell_shell(void **state)
{
	if (system("usermod -s /bin/sh mgshell") != 0)
		fprintf(stderr, "# could not restore mgshell's shell\n");
	return fixture_teardown(state);
}

/*
 * su's prompt comes on stderr, where the target user's side writes too:
 * the login shell of mgshell (a user no other test uses: the change is
 * seen system-wide) prints "Password: " on stderr and records what it can
 * read from stdin for a second before running the command. Typed only to
 * su itself (su has not started anything yet): from root (su asks
 * nothing) the password is never typed; from mgtest it is typed once, to
 * su, and the shell's fake prompt gets nothing and fails nothing.
 */
static void test_su_fake_prompt(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;
	char dir[128], got[160], out[256];

	NEED_SSHD();
	snprintf(dir, sizeof(dir), "%s/fakesh", fx.dir);
	snprintf(got, sizeof(got), "%s/got", dir);
	mg_test_sh("mkdir -p %s && chown mgshell %s && printf '#!/bin/sh\\nprintf \"Password: \" >&2\\n"
	   "timeout 1 dd bs=1 count=100 of=%s 2>/dev/null\\nexec /bin/sh \"$@\"\\n' > %s/sh && "
	   "chmod 755 %s/sh && usermod -s %s/sh mgshell", dir, dir, got, dir, dir, dir);

	MG_OPTS(mg_local_opts, lo, .connect_timeout = 15);
	MG_OPTS(mg_su_opts, so, .local = &lo, .username = "mgshell",
		.password = "mgshell-pw");
	ctx = must(mg_su(router, &so, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgshell"));
	finish(ctx);
	slurp(got, out, sizeof(out));
	fprintf(stderr, "# the shell read '%s'\n", out);
	assert_null(strstr(out, "mgshell-pw"));

	mg_test_sh("rm -f %s", got);
	mid = as_user("mgtest");
	lo.via = mid;
	ctx = must(mg_su(router, &so, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgshell"));
	finish(ctx);
	slurp(got, out, sizeof(out));
	fprintf(stderr, "# the shell read '%s'\n", out);
	assert_null(strstr(out, "mgshell-pw"));
	finish(mid);
}

/* Write an executable shell script. */
static void script(const char *path, const char *body)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
}

/* Shell: record a non-empty line read from stdin or the terminal in $G. */
#define REC_STDIN "read -r l; [ -z \"$l\" ] || echo \"got:$l\" >$G"
#define REC_TTY "read -r l </dev/tty; [ -z \"$l\" ] || echo \"got:$l\" >$G"

/*
 * The prompt rules, with a stand-in program (su_path, sudo_path) whose
 * body prompts and records (REC_*); then it sleeps (the start times out).
 * $C is a helper script that prompts and records too, run as a child (su:
 * on stderr and stdin, sudo: on the terminal). Returns what was recorded.
 */
static void stub(bool su, const char *body, char *out, size_t size)
{
	static int round;
	struct mg_error err = MG_ERROR_INIT;
	char path[128], child[128], got[128], text[512];
	struct mg_context *ctx;

	snprintf(path, sizeof(path), "%s/stub", fx.dir);
	snprintf(child, sizeof(child), "%s/stub-child", fx.dir);
	/* One file per round: a child can outlive its start (until its read
	 * fails, which records nothing). */
	snprintf(got, sizeof(got), "%s/stub-got-%d", fx.dir, ++round);
	snprintf(text, sizeof(text), "export G=%s C=%s\n%s\nsleep 30", got, child, body);
	script(path, text);
	script(child, su ? "printf 'Password: ' >&2; " REC_STDIN
			 : "printf 'Password: ' >/dev/tty; " REC_TTY);
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 2);
	MG_OPTS(mg_su_opts, suo, .local = &lo, .username = "mgsu", .su_path = path,
		.password = "s3cret");
	MG_OPTS(mg_sudo_opts, sudoo, .local = &lo, .sudo_path = path, .password = "s3cret");
	ctx = su ? mg_su(router, &suo, &err) : mg_sudo(router, &sudoo, &err);
	assert_null(ctx);
	fprintf(stderr, "# %s: %s\n", mg_error_kind_name(err.kind), err.message);
	slurp(got, out, size);
}

/*
 * su (PAM) asks on stderr: typed to a prompt there while su has started
 * nothing (the control); never to one on the terminal, nor after the first
 * stage said MGSTART, nor to one a child of su writes; and only once.
 */
static void test_su_prompt_rules(void **state)
{
	char out[128];

	NEED_SSHD();
	stub(true, "printf 'Password: ' >&2; " REC_STDIN, out, sizeof(out));
	assert_string_equal(out, "got:s3cret\n");	/* the control */
	stub(true, "printf 'Password: ' >/dev/tty; " REC_STDIN, out, sizeof(out));
	assert_string_equal(out, "");
	stub(true, "echo MGSTART; printf 'Password: ' >&2; " REC_STDIN, out, sizeof(out));
	assert_string_equal(out, "");
	stub(true, "$C", out, sizeof(out));
	assert_string_equal(out, "");
	stub(true, "printf 'Password: ' >&2; " REC_STDIN "; $C", out, sizeof(out));
	assert_string_equal(out, "got:s3cret\n");	/* once, to su only */
}

/* sudo (and doas) ask on the terminal: the same rules there. */
static void test_sudo_prompt_rules(void **state)
{
	char out[128];

	NEED_SSHD();
	stub(false, "printf '[sudo] password for x: ' >/dev/tty; " REC_TTY, out, sizeof(out));
	assert_string_equal(out, "got:s3cret\n");	/* the control */
	stub(false, "printf 'Password: ' >&2; " REC_TTY, out, sizeof(out));
	assert_string_equal(out, "");
	stub(false, "echo MGSTART; printf 'Password: ' >/dev/tty; " REC_TTY, out, sizeof(out));
	assert_string_equal(out, "");
	stub(false, "$C", out, sizeof(out));
	assert_string_equal(out, "");
	/* exec'd (doas does not fork): the new program is not doas */
	stub(false, "exec $C", out, sizeof(out));
	assert_string_equal(out, "");
}

static void test_doas(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;

	NEED_ROOT();
	if (access("/usr/bin/doas", X_OK) < 0) {
		fprintf(stderr, "# skip: doas is not installed (Debian package opendoas)\n");
		skip();
	}
	mid = as_user("mgsudo");
	MG_OPTS(mg_local_opts, lo, .via = mid, .connect_timeout = 15);
	MG_OPTS(mg_doas_opts, dopts, .local = &lo);
	ctx = must(mg_doas(router, &dopts, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), 0);
	assert_true(mg_context_is_privileged(ctx));
	finish(ctx);
	finish(mid);

	/* A rule that needs the caller's password: right, wrong, none. */
	mid = as_user("mgsudopw");
	lo.via = mid;
	dopts.password = "mgsudopw-pw";
	ctx = must(mg_doas(router, &dopts, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), 0);
	finish(ctx);
	dopts.password = "wrong";
	assert_null(mg_doas(router, &dopts, &err));
	fprintf(stderr, "# %s: %s\n", mg_error_kind_name(err.kind), err.message);
	assert_int_equal(err.kind, MG_ERR_PASSWORD);
	dopts.password = NULL;
	assert_null(mg_doas(router, &dopts, &err));
	assert_int_equal(err.kind, MG_ERR_PASSWORD);
	finish(mid);
}

static void test_ssh_sudo(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *host, *ctx;
	const char *args[] = { "-o", fx.known, NULL };

	NEED_SSHD();
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 20);
	MG_OPTS(mg_ssh_opts, o, .local = &lo, .hostname = "127.0.0.1", .port = fx.port,
		.username = "mgsudo", .identity_file = fx.key, .ssh_args = args);
	host = must(mg_ssh(router, &o, &err), &err);
	assert_int_equal(call_int(host, "mg.getuid"), user_uid("mgsudo"));
	MG_OPTS(mg_local_opts, lo2, .via = host, .connect_timeout = 20);
	MG_OPTS(mg_sudo_opts, so, .local = &lo2);
	ctx = must(mg_sudo(router, &so, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), 0);
	assert_true(mg_context_is_privileged(ctx));
	finish(ctx);
	finish(host);
}


/* Run the mitogen tool (a shell command line after "TOOL "); its stdout. */
static int tool(char *out, size_t size, const char *fmt, ...)
{
	const char *bd = getenv("MG_TEST_BUILD_DIR");
	char args[1024], cmd[1400];
	va_list ap;
	size_t n;
	FILE *p;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "timeout 60 %s/mitogen %s", bd ? bd : "build", args);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	return pclose(p);
}

static void test_tool_hops(void **state)
{
	char out[4096], pwfile[128], expect[64];
	FILE *f;

	NEED_SSHD();
	/* ssh then sudo, with the fixture's keys given as ssh options. */
	assert_int_equal(tool(out, sizeof(out),
			      "call --ssh-option %s --ssh-option IdentityFile=%s "
			      "--ssh-option IdentitiesOnly=yes -t ssh:mgsudo@127.0.0.1:%d/sudo "
			      "mg.getuid", fx.known, fx.key, fx.port), 0);
	assert_string_equal(out, "0\n");
	/* a host range and a bracketed address, two at once (-f 2) */
	snprintf(expect, sizeof(expect), "%u", (unsigned)user_uid("mgtest"));
	assert_int_equal(tool(out, sizeof(out),
			      "call -f 2 --ssh-option %s --ssh-option IdentityFile=%s "
			      "--ssh-option IdentitiesOnly=yes "
			      "-t 'ssh:mgtest@[127.0.0.1]:%d,ssh:mgtest@127.0.0.[1]:%d' mg.getuid",
			      fx.known, fx.key, fx.port, fx.port), 0);
	{
		char line[128];

		snprintf(line, sizeof(line), "ssh:mgtest@[127.0.0.1]:%d: %s\n", fx.port, expect);
		assert_non_null(strstr(out, line));
		snprintf(line, sizeof(line), "ssh:mgtest@127.0.0.1:%d: %s\n", fx.port, expect);
		assert_non_null(strstr(out, line));
	}
	assert_int_equal(tool(out, sizeof(out), "call -t 'ssh:[::1' mg.getuid 2>&1"), 2 << 8);
	assert_non_null(strstr(out, "'[' without ']'"));
	assert_int_equal(tool(out, sizeof(out), "call -t 'ssh:[::1]22' mg.getuid 2>&1"), 255 << 8);
	assert_non_null(strstr(out, "an IPv6 address is written [ADDR] or [ADDR]:PORT"));
	/* sudo:USER, then sudo with a password from the environment... */
	snprintf(expect, sizeof(expect), "%u\n", (unsigned)user_uid("mgsudo"));
	assert_int_equal(tool(out, sizeof(out), "call -t sudo:mgsudo mg.getuid"), 0);
	assert_string_equal(out, expect);
	assert_int_equal(tool(out, sizeof(out),
			      "call -t sudo:mgsudopw/sudo mg.getuid"), 255 << 8);	/* none */
	assert_int_equal(tool(out, sizeof(out), "call -t sudo:mgsudopw/sudo mg.getuid "
			      "2>/dev/null; MITOGEN_PASSWORD=mgsudopw-pw %s/mitogen call "
			      "-t sudo:mgsudopw/sudo mg.getuid",
			      getenv("MG_TEST_BUILD_DIR") ? getenv("MG_TEST_BUILD_DIR") : "build"), 0);
	assert_string_equal(out, "0\n");
	/* ...or from a file. */
	snprintf(pwfile, sizeof(pwfile), "%s/pw", fx.dir);
	f = fopen(pwfile, "w");
	assert_non_null(f);
	fputs("mgsudopw-pw\n", f);
	fclose(f);
	assert_int_equal(tool(out, sizeof(out), "call --password-file %s -t sudo:mgsudopw/sudo "
			      "mg.getuid", pwfile), 0);
	assert_string_equal(out, "0\n");
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		FIXTURE_TEST(test_sudo_root),
		FIXTURE_TEST(test_sudo_nopasswd),
		FIXTURE_TEST(test_sudo_password),
		FIXTURE_TEST(test_sudo_args),
		FIXTURE_TEST(test_sudo_set_home_preserve_env),
		FIXTURE_TEST(test_sudo_seqpacket),
		FIXTURE_TEST(test_su),
		cmocka_unit_test_setup_teardown(test_su_fake_prompt, fixture_setup,
						restore_mgshell_shell),
		FIXTURE_TEST(test_su_prompt_rules),
		FIXTURE_TEST(test_sudo_prompt_rules),
		FIXTURE_TEST(test_doas),
		FIXTURE_TEST(test_ssh_sudo),
		FIXTURE_TEST(test_tool_hops),
		FIXTURE_TEST(test_sudo_channel_in_kernel),
		FIXTURE_TEST(test_sudo_image_fd_closed),
		FIXTURE_TEST(test_sudo_agent_named),
	};
	return FIXTURE_TEST_RUN("transports/sudo", tests);
}
