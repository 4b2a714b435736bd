// SPDX-License-Identifier: MIT
/*
 * selftests/reliability/test_trees.c — issue 19 §1 (docs/reliability.md):
 * a timeout, a lost hop, a signal to the tool or mg_context_shutdown
 * leaves nothing running, and the tool leaves nothing on disk.
 *
 * Every case runs, on a target, a command with a background child, a
 * double-forked daemon (a new session, its parent gone: it leaves the
 * command's session and process group) and a foreground child:
 *
 *	sh -c 'sleep BG & (setsid sleep DM </dev/null >/dev/null 2>&1 &);
 *	       sleep FG'
 *
 * BG, DM and FG are numbers this test makes up (its pid, a sequence
 * number): it finds the processes by those arguments in /proc/<pid>/
 * cmdline, and looks at nothing else. A case first waits until all three
 * run (that, not a sleep, orders it), then makes the event happen, then
 * asserts that none of the three is left within a generous bound. The
 * tool runs with its own TMPDIR (checked empty at the end), as root or as
 * a test user (no cgroup of its own: the fallback), locally, through fork,
 * via= chains, ssh (the fixture's sshd) and sudo.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "selftests/transports/fixture.h"

/* Upper bounds, never expected: a loaded machine under ASan. */
#define GONE_WITHIN_S 30.0
#define UP_WITHIN_S 60.0
#define TOOL_EXIT_WITHIN_S 120.0

static char tool_bin[PATH_MAX];
/* This test's own directory; tool_tmp in it is the tool's TMPDIR. */
static char workdir[64];
static char tool_tmp[PATH_MAX];
/* In the tool's environment: the agents it starts inherit it. */
static char mark_env[64];

/* --- the marked processes ------------------------------------------------ */

struct marks {
	char tok[3][32];	/* BG, DM, FG */
	char cmd[256];
};

/* What a failed test leaves for its teardown to end: the last marks
 * made, the tool started and not yet waited for. */
static struct marks last_marks;
static pid_t tool_running;

static void marks_make(struct marks *m)
{
	static unsigned seq;

	seq++;
	for (int k = 0; k < 3; k++)
		snprintf(m->tok[k], sizeof(m->tok[k]), "%u%02u%u", 900000000u + (unsigned)getpid(),
			 seq % 100, k);
	snprintf(m->cmd, sizeof(m->cmd),
		 "sleep %s & (setsid sleep %s </dev/null >/dev/null 2>&1 &); sleep %s",
		 m->tok[0], m->tok[1], m->tok[2]);
	last_marks = *m;
}

/* Read a /proc/<pid>/ file (NULs kept); bytes read, or -1. */
static ssize_t proc_read(const char *pid, const char *file, char *buf, size_t size)
{
	char path[300];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/%s", pid, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* Does NUL-separated list buf[0..n) hold item? */
static bool has_item(const char *buf, ssize_t n, const char *item)
{
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		if (!strcmp(buf + i, item))
			return true;
	return false;
}

/*
 * Each live (not zombie) `sleep TOKEN` of m: counted, shown when show,
 * sent sig when sig. Only sleep itself counts: `setsid sleep TOKEN` also
 * has the token in its arguments, and setsid(1) forks when it leads its
 * process group, so counting it would count one mark twice, or one that
 * is about to go, and a hand-off on the count would be a race.
 */
static int marked_scan(const struct marks *m, bool show, int sig)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int count = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char buf[4096], *p;
		ssize_t n;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		if (proc_read(e->d_name, "stat", buf, sizeof(buf)) <= 0 ||
		    !(p = strrchr(buf, ')')) || p[2] == 'Z')
			continue;
		n = proc_read(e->d_name, "cmdline", buf, sizeof(buf));
		if (n <= 0 || strcmp(buf, "sleep") || (size_t)n <= strlen(buf) + 1)
			continue;
		for (int k = 0; k < 3; k++) {
			if (strcmp(buf + strlen(buf) + 1, m->tok[k]))
				continue;
			count++;
			if (show)
				fprintf(stderr, "# still running: pid %s: sleep %s\n", e->d_name,
					m->tok[k]);
			if (sig)
				kill((pid_t)atoi(e->d_name), sig);
		}
	}
	closedir(d);
	return count;
}

static int marked_count(const struct marks *m, bool show)
{
	return marked_scan(m, show, 0);
}

/* Has pid exited (not reaped)? */
static bool exited(pid_t pid)
{
	siginfo_t si = { 0 };

	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       si.si_pid == pid;
}

static void pause_ms(int ms)
{
	poll(NULL, 0, ms);
}

/* Wait until all three of m run; false when tool (> 0) exited first or
 * the bound passed. */
static bool marked_up(const struct marks *m, pid_t tool)
{
	double until = mg_test_now() + UP_WITHIN_S;

	while (mg_test_now() < until) {
		if (marked_count(m, false) == 3)
			return true;
		if (tool > 0 && exited(tool))
			return marked_count(m, false) == 3;
		pause_ms(10);
	}
	return false;
}

/* None of m is left within GONE_WITHIN_S (the test fails, naming them). */
static void assert_gone(const struct marks *m)
{
	double until = mg_test_now() + GONE_WITHIN_S;

	while (marked_count(m, false) > 0 && mg_test_now() < until)
		pause_ms(20);
	if (marked_count(m, true) > 0)
		fail_msg("processes of the command are still running");
}

/* --- the tool -------------------------------------------------------------- */

/*
 * Start the tool with args (NULL-terminated, without argv[0]) and every
 * signal at its default action (a shell's background job would ignore
 * SIGINT), TMPDIR the test's own, MG_TREES_MARK in the environment, its
 * output in workdir/out and err. As user (not NULL) when given.
 */
static pid_t tool_start(const char *const *args, const char *user)
{
	char *argv[40], *envp[8], tmpenv[PATH_MAX + 8], out[96], err[96];
	static char path[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	extern char **environ;
	uid_t uid = 0;
	gid_t gid = 0;
	size_t n = 0;
	pid_t pid;

	argv[n++] = tool_bin;
	for (size_t i = 0; args[i]; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	snprintf(tmpenv, sizeof(tmpenv), "TMPDIR=%s", tool_tmp);
	n = 0;
	envp[n++] = tmpenv;
	envp[n++] = mark_env;
	envp[n++] = path;
	for (char **e = environ; *e && n < 7; e++)
		if (!strncmp(*e, "ASAN_OPTIONS=", 13) || !strncmp(*e, "UBSAN_OPTIONS=", 14) ||
		    !strncmp(*e, "LSAN_OPTIONS=", 13))
			envp[n++] = *e;
	envp[n] = NULL;
	snprintf(out, sizeof(out), "%s/out", workdir);
	snprintf(err, sizeof(err), "%s/err", workdir);
	if (user) {
		char cmd[96];
		unsigned g = 0;
		FILE *p;

		uid = user_uid(user);
		snprintf(cmd, sizeof(cmd), "id -g %s", user);
		p = popen(cmd, "r");
		assert_non_null(p);
		assert_int_equal(fscanf(p, "%u", &g), 1);
		pclose(p);
		gid = (gid_t)g;
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		sigset_t none;
		int fd;

		for (int sig = 1; sig < NSIG; sig++)
			sigaction(sig, &dfl, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		fd = open("/dev/null", O_RDONLY);
		dup2(fd, 0);
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 2);
		if (user && (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0))
			_exit(126);
		execve(tool_bin, argv, envp);
		_exit(127);
	}
	tool_running = pid;
	return pid;
}

/* Wait for the tool to exit; its wait status. Killed (and failed) past
 * TOOL_EXIT_WITHIN_S. */
static int tool_wait(pid_t pid)
{
	double until = mg_test_now() + TOOL_EXIT_WITHIN_S;
	char buf[2048];
	int status = 0, fd;
	ssize_t n;

	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (mg_test_now() > until) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("the tool did not exit within %.0f s", TOOL_EXIT_WITHIN_S);
		}
		pause_ms(20);
	}
	tool_running = 0;
	snprintf(buf, sizeof(buf), "%s/err", workdir);
	fd = open(buf, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
	if (fd >= 0)
		close(fd);
	if (n > 0) {
		buf[n] = '\0';
		for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
			fprintf(stderr, "# tool: %s\n", l);
	}
	return status;
}

/* The tool's TMPDIR holds nothing (it made nothing, or removed it). */
static void assert_tmp_empty(void)
{
	DIR *d = opendir(tool_tmp);
	struct dirent *e;
	int left = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))) {
			fprintf(stderr, "# left in the tool's TMPDIR: %s\n", e->d_name);
			left++;
		}
	closedir(d);
	assert_int_equal(left, 0);
}

/* The ssh hop's options: the fixture's key and known_hosts. */
static const char *ssh_opts[7];
static char ssh_target[64];

static void ssh_setup(void)
{
	static char ident[PATH_MAX];

	snprintf(ident, sizeof(ident), "IdentityFile=%s", fx.key);
	ssh_opts[0] = "--ssh-option";
	ssh_opts[1] = fx.known;
	ssh_opts[2] = "--ssh-option";
	ssh_opts[3] = ident;
	ssh_opts[4] = "--ssh-option";
	ssh_opts[5] = "IdentitiesOnly=yes";
	ssh_opts[6] = NULL;
	snprintf(ssh_target, sizeof(ssh_target), "ssh:mgtest@127.0.0.1:%d", fx.port);
}

/* "run [--timeout T] OPTS -t TARGET -- sh -c CMD" into args. */
static void run_args(const char **args, const char *timeout, const char *const *opts,
		     const char *target, const char *cmd)
{
	size_t n = 0;

	args[n++] = "run";
	if (timeout) {
		args[n++] = "--timeout";
		args[n++] = timeout;
	}
	for (size_t i = 0; opts && opts[i]; i++)
		args[n++] = opts[i];
	args[n++] = "-t";
	args[n++] = target;
	args[n++] = "--";
	args[n++] = "sh";
	args[n++] = "-c";
	args[n++] = cmd;
	args[n] = NULL;
}

/* The first child of pid (its first hop), or 0. */
static pid_t first_child(pid_t pid)
{
	char name[32], buf[256];
	int child = 0;

	snprintf(name, sizeof(name), "%d", (int)pid);
	snprintf(buf, sizeof(buf), "/proc/%d/task", (int)pid);
	{
		DIR *d = opendir(buf);
		struct dirent *e;

		while (d && !child && (e = readdir(d))) {
			char file[300], list[256];

			if (e->d_name[0] == '.')
				continue;
			snprintf(file, sizeof(file), "task/%s/children", e->d_name);
			if (proc_read(name, file, list, sizeof(list)) > 0)
				child = atoi(list);
		}
		if (d)
			closedir(d);
	}
	return child;
}

/* This test's cgroup2 directory (the tool's too), or "" where none. */
static void own_cgroup(char *out, size_t size)
{
	char buf[4096], mnt[PATH_MAX] = "";
	FILE *f = fopen("/proc/self/mountinfo", "re");

	out[0] = '\0';
	while (f && fgets(buf, sizeof(buf), f)) {
		char root[PATH_MAX], point[PATH_MAX], type[32], *sep = strstr(buf, " - ");

		if (sep && sscanf(buf, "%*s %*s %*s %4095s %4095s", root, point) == 2 &&
		    sscanf(sep + 3, "%31s", type) == 1 && !strcmp(type, "cgroup2") &&
		    !strcmp(root, "/")) {
			snprintf(mnt, sizeof(mnt), "%s", point);
			break;
		}
	}
	if (f)
		fclose(f);
	if (!mnt[0] || proc_read("self", "cgroup", buf, sizeof(buf)) <= 0)
		return;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		if (!strncmp(l, "0::/", 4))
			snprintf(out, size, "%s%s", mnt, strcmp(l + 3, "/") ? l + 3 : "");
}

/*
 * `mitogen run --timeout T -t target -- sh -c <marked command>` (as user):
 * once all three processes were seen running, the tool exits with 3
 * (TimeoutError) and none of them is left. A machine so loaded that the
 * command had not started within T gets a longer T, up to 48 s.
 */
static void timeout_case(const char *target, const char *const *opts, const char *user)
{
	for (int t = 3; t <= 48; t *= 2) {
		const char *args[40];
		char tstr[16], cg[PATH_MAX], hopcg[PATH_MAX + 32] = "";
		struct marks m;
		bool up;
		pid_t pid, hop;
		int st;

		marks_make(&m);
		snprintf(tstr, sizeof(tstr), "%d", t);
		run_args(args, tstr, opts, target, m.cmd);
		pid = tool_start(args, user);
		up = marked_up(&m, pid);
		/* Local first hops live in a cgroup of their own, where
		 * cgroups are writable (root here): it goes with them. */
		own_cgroup(cg, sizeof(cg));
		hop = up && !user ? first_child(pid) : 0;
		if (hop > 0 && cg[0] && strncmp(target, "ssh", 3) && strncmp(target, "sudo", 4))
			snprintf(hopcg, sizeof(hopcg), "%s/mg.%d", cg, (int)hop);
		if (hopcg[0] && access(hopcg, F_OK) < 0)
			hopcg[0] = '\0';	/* not writable here: the fallback */
		st = tool_wait(pid);
		if (!up) {
			fprintf(stderr, "# %s: not up within --timeout %d; again, longer\n", target, t);
			assert_gone(&m);
			continue;
		}
		fprintf(stderr, "# %s: tool exit status %#x%s\n", target, st,
			hopcg[0] ? ", the first hop had a cgroup" : "");
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 253);	/* command timeout (docs/tool.md) */
		assert_gone(&m);
		if (hopcg[0] && access(hopcg, F_OK) == 0)
			fail_msg("%s was left behind", hopcg);
		assert_tmp_empty();
		return;
	}
	fail_msg("%s: the command never started within the timeout", target);
}

static void test_timeout_local(void **state)
{
	timeout_case("local", NULL, NULL);
}

static void test_timeout_fork(void **state)
{
	timeout_case("fork", NULL, NULL);
}

static void test_timeout_via(void **state)
{
	timeout_case("local/local", NULL, NULL);
	timeout_case("fork/local/fork", NULL, NULL);
}

static void test_timeout_ssh(void **state)
{
	NEED_SSHD();
	ssh_setup();
	timeout_case(ssh_target, ssh_opts, NULL);
}

static void test_timeout_sudo(void **state)
{
	NEED_ROOT();
	timeout_case("sudo:mgtest", NULL, NULL);
	timeout_case("local/sudo:mgtest/local", NULL, NULL);
}

/* As a user who may write no cgroup: the session and the agent's own
 * walk end the tree. */
static void test_timeout_unprivileged(void **state)
{
	NEED_ROOT();
	assert_int_equal(chmod(workdir, 0755), 0);
	assert_int_equal(chmod(tool_tmp, 01777), 0);
	timeout_case("local", NULL, "mgtest");
	timeout_case("fork/local", NULL, "mgtest");
}

/*
 * SIGTERM, SIGINT, SIGHUP to the tool: it ends every target's tree first,
 * then exits with 128 + the signal. "late": the signal comes no sooner
 * than TOOL_SIG_GRACE_S after the tool started (the tool's grace before
 * SIGKILL was once counted from its start: a signal after 5 s was SIGKILL
 * to every first hop at once, and a local one's commands were left).
 */
#define TOOL_SIG_GRACE_S 5.0	/* tools/runner.c TOOL_SIG_GRACE */

static void test_tool_signals(void **state)
{
	static const struct { int sig; const char *target; bool late; } cases[] = {
		{ SIGTERM, "local", false }, { SIGINT, "fork", false },
		{ SIGHUP, "local/local", false }, { SIGTERM, "local,fork/local", false },
		{ SIGTERM, "local", true }, { SIGINT, "local,fork/local", true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[40];
		struct marks m;
		double t0 = mg_test_now();
		pid_t pid;
		int st;

		marks_make(&m);
		run_args(args, NULL, NULL, cases[i].target, m.cmd);
		pid = tool_start(args, NULL);
		if (!strchr(cases[i].target, ',')) {
			assert_true(marked_up(&m, pid));
		} else {
			/* two targets, the same command: six processes */
			double until = mg_test_now() + UP_WITHIN_S;

			while (marked_count(&m, false) < 6 && mg_test_now() < until)
				pause_ms(10);
			assert_int_equal(marked_count(&m, false), 6);
		}
		while (cases[i].late && mg_test_now() < t0 + TOOL_SIG_GRACE_S + 1)
			pause_ms(100);
		assert_int_equal(kill(pid, cases[i].sig), 0);
		st = tool_wait(pid);
		fprintf(stderr, "# %s, %s%s: tool wait status %#x\n", cases[i].target,
			strsignal(cases[i].sig), cases[i].late ? " (late)" : "", st);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 128 + cases[i].sig);
		assert_gone(&m);
		assert_tmp_empty();
	}
}

/* The agent of a hop (argv[0] mitogen:NAME) the tool at tool started. */
static pid_t find_hop(const char *name, pid_t tool)
{
	char want[64], buf[8192];
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	snprintf(want, sizeof(want), "mitogen:%s", name);
	while (d && !found && (e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
		    proc_read(e->d_name, "cmdline", buf, sizeof(buf)) <= 0 || strcmp(buf, want))
			continue;
		/* Ours: the mark the tool we started passed down. */
		n = proc_read(e->d_name, "environ", buf, sizeof(buf));
		if (n > 0 && has_item(buf, n, mark_env))
			found = (pid_t)atoi(e->d_name);
	}
	if (d)
		closedir(d);
	(void)tool;
	return found;
}

/*
 * -t target running the marks; hop (argv[0] mitogen:HOP) is killed
 * (SIGKILL: it can do nothing about it); the marks end all the same, the
 * tool exits 254 (connection lost, docs/tool.md). hopcg (or NULL): the
 * hop's cgroup directory, with %d for its pid: made before, gone after.
 */
static void hop_killed_case(const char *target, const char *hop_name, const char *hopcg_fmt)
{
	const char *args[40];
	char hopcg[PATH_MAX + 32] = "";
	struct marks m;
	pid_t pid, hop;
	int st;

	marks_make(&m);
	run_args(args, NULL, NULL, target, m.cmd);
	pid = tool_start(args, NULL);
	assert_true(marked_up(&m, pid));
	hop = find_hop(hop_name, pid);
	assert_true(hop > 0);
	if (hopcg_fmt) {
		snprintf(hopcg, sizeof(hopcg), hopcg_fmt, (int)hop);
		if (access(hopcg, F_OK) < 0)
			fail_msg("the command runs, but %s was not made", hopcg);
	}
	assert_int_equal(kill(hop, SIGKILL), 0);
	assert_gone(&m);
	st = tool_wait(pid);
	fprintf(stderr, "# %s killed: tool wait status %#x\n", hop_name, st);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 254);
	if (hopcg[0] && access(hopcg, F_OK) == 0)
		fail_msg("%s was left behind", hopcg);
	assert_tmp_empty();
}

/*
 * -t local: the agent is killed (SIGKILL) while its command runs. It can
 * do nothing; its cgroup, which its command was born in, is ended by the
 * tool's library when it reaps the agent (mg.run_stream's commands were
 * once started before the agent had made its cgroup: they were left).
 * Without a writable cgroup v2 this is the case docs/reliability.md says
 * cannot be covered.
 */
static void test_first_hop_killed(void **state)
{
	char cg[PATH_MAX], fmt[PATH_MAX + 32];

	own_cgroup(cg, sizeof(cg));
	snprintf(fmt, sizeof(fmt), "%s/mg.test", cg);
	if (!cg[0] || mkdir(fmt, 0755) < 0 || rmdir(fmt) < 0) {
		fprintf(stderr, "# skip: no writable cgroup v2 here: the uncovered case\n");
		skip();
	}
	snprintf(fmt, sizeof(fmt), "%s/mg.%%d", cg);
	hop_killed_case("local", "t0.local", fmt);
}

/* local/local/local: the middle hop is killed mid-call; the last hop's
 * command goes all the same. */
static void test_middle_hop_killed(void **state)
{
	hop_killed_case("local/local/local", "t0.local1", NULL);
}

/*
 * mg_context_shutdown of a context busy in mg.run: the tree gets SIGTERM
 * (SIGKILL after the grace), shutdown returns once it is gone, the agent's
 * last log line says it ended the 4 processes (sh and the three), and the
 * call that was cut short ends with ChannelError, not a hang.
 */
static void shutdown_case(struct mg_context *ctx, struct mg_context *top, const char *line)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_message *msg = NULL;
	struct mg_receiver *rx;
	struct marks m;

	mg_test_log_capture_start();
	marks_make(&m);
	rx = mg_call_async(ctx, "mg.run",
			   MG_LIST(MG_LIST(mg_str("sh"), mg_str("-c"), mg_str(m.cmd))), &err);
	assert_non_null(rx);
	assert_true(marked_up(&m, 0));
	assert_int_equal(mg_context_shutdown(top, true), 0);
	assert_gone(&m);
	if (!mg_test_log_contains(line, GONE_WITHIN_S)) {
		mg_test_log_print();
		fail_msg("no '%s' log line", line);
	}
	assert_true(mg_receiver_get(rx, GONE_WITHIN_S, &msg, &err) < 0);
	fprintf(stderr, "# the cut call: %s: %s\n", mg_error_kind_name(err.kind), err.message);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	mg_receiver_free(rx);
	mg_test_log_capture_stop();
}

static void test_context_shutdown(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *a, *b;

	MG_OPTS(mg_local_opts, lo, .remote_name = "trees-local");
	a = must(mg_local(router, &lo, &err), &err);
	shutdown_case(a, a, "trees-local: exiting: ended 4 processes");
	mg_context_unref(a);

	MG_OPTS(mg_local_opts, flo, .remote_name = "trees-fork");
	MG_OPTS(mg_fork_opts, fo, .local = &flo);
	a = must(mg_fork(router, &fo, &err), &err);
	shutdown_case(a, a, "trees-fork: exiting: ended 4 processes");
	mg_context_unref(a);

	/* via=: shutting down the top ends the tree below it too. Both
	 * agents signal what they find alive, so how many each counts
	 * depends on who was first: each says a number. */
	MG_OPTS(mg_local_opts, lo2, .remote_name = "trees-top");
	a = must(mg_local(router, &lo2, &err), &err);
	MG_OPTS(mg_local_opts, lo3, .remote_name = "trees-below", .via = a);
	b = must(mg_local(router, &lo3, &err), &err);
	shutdown_case(b, a, "trees-top: exiting: ended ");
	mg_context_unref(b);
	mg_context_unref(a);
}

/*
 * The ssh transport's start-up, cut short every way a process can notice:
 * SIGINT, SIGTERM, --timeout, a refused connection. The tool's own TMPDIR
 * is empty afterwards (ssh's -F file was never on disk, or was removed).
 * ssh connects to a socket of ours that never answers: the connection in
 * its backlog says ssh runs.
 */
static void test_ssh_startup_leaves_no_file(void **state)
{
	static const char *const ways[] = { "SIGINT", "SIGTERM", "timeout", "refused" };

	for (size_t i = 0; i < 4; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(sa);
		int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool refused = !strcmp(ways[i], "refused");
		const char *args[20];
		char target[64];
		size_t n = 0;
		pid_t pid;
		int st;

		assert_true(lfd >= 0);
		assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
		if (refused)
			close(lfd);	/* the port is free: refused */
		else
			assert_int_equal(listen(lfd, 4), 0);
		snprintf(target, sizeof(target), "ssh:root@127.0.0.1:%d", ntohs(sa.sin_port));
		args[n++] = "run";
		if (!strcmp(ways[i], "timeout")) {
			args[n++] = "--timeout";
			args[n++] = "2";
		}
		args[n++] = "-t";
		args[n++] = target;
		args[n++] = "--";
		args[n++] = "true";
		args[n] = NULL;
		pid = tool_start(args, NULL);
		if (!refused) {
			struct pollfd p = { .fd = lfd, .events = POLLIN };

			/* ssh has connected: its configuration is written. */
			assert_int_equal(poll(&p, 1, (int)(UP_WITHIN_S * 1000)), 1);
			if (!strcmp(ways[i], "SIGINT"))
				kill(pid, SIGINT);
			else if (!strcmp(ways[i], "SIGTERM"))
				kill(pid, SIGTERM);
		}
		st = tool_wait(pid);
		fprintf(stderr, "# ssh start-up, %s: tool wait status %#x\n", ways[i], st);
		if (!refused)
			close(lfd);
		assert_tmp_empty();
	}
}

/*
 * After each test, even a failed one: a tool still running gets SIGTERM
 * (it ends its targets' trees), SIGKILL past the bound; any mark left
 * gets SIGKILL. Then the fixture's own teardown.
 */
static int trees_teardown(void **state)
{
	if (tool_running > 0) {
		double until = mg_test_now() + TOOL_EXIT_WITHIN_S;
		int status;
		pid_t got;

		kill(tool_running, SIGTERM);
		while ((got = waitpid(tool_running, &status, WNOHANG)) == 0 && mg_test_now() < until)
			pause_ms(20);
		if (got == 0) {
			kill(tool_running, SIGKILL);
			waitpid(tool_running, &status, 0);
		}
		tool_running = 0;
	}
	if (last_marks.tok[0][0] && marked_scan(&last_marks, false, SIGKILL) > 0)
		fprintf(stderr, "# teardown: killed what the test left running\n");
	return fixture_teardown(state);
}

#define TREES_TEST(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, trees_teardown)

static int group_setup(void **state)
{
	const char *dir = getenv("MG_TEST_BUILD_DIR");

	snprintf(tool_bin, sizeof(tool_bin), "%s/mitogen", dir ? dir : "build");
	snprintf(workdir, sizeof(workdir), "/tmp/mg-trees.XXXXXX");
	if (!mkdtemp(workdir))
		return -1;
	snprintf(tool_tmp, sizeof(tool_tmp), "%s/tmp", workdir);
	snprintf(mark_env, sizeof(mark_env), "MG_TREES_MARK=%d", (int)getpid());
	return mkdir(tool_tmp, 0700);
}

static int group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", workdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		TREES_TEST(test_timeout_local),
		TREES_TEST(test_timeout_fork),
		TREES_TEST(test_timeout_via),
		TREES_TEST(test_timeout_ssh),
		TREES_TEST(test_timeout_sudo),
		TREES_TEST(test_timeout_unprivileged),
		TREES_TEST(test_tool_signals),
		TREES_TEST(test_first_hop_killed),
		TREES_TEST(test_middle_hop_killed),
		TREES_TEST(test_context_shutdown),
		TREES_TEST(test_ssh_startup_leaves_no_file),
	};
	int ret;

	if (group_setup(NULL) < 0)
		return 1;
	ret = FIXTURE_TEST_RUN("reliability/trees", tests);
	group_teardown(NULL);
	return ret;
}
