// SPDX-License-Identifier: MIT
/*
 * selftests/tools/toolrun.c — see toolrun.h. Owns its temporary
 * directory and the processes it starts (each waited for or killed).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* cmocka.h needs these first. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "selftests/tools/toolrun.h"

extern char **environ;

static char tool_bin[PATH_MAX];
static char tmpdir[PATH_MAX];

const char *toolrun_dir(void)
{
	return tmpdir;
}

double toolrun_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int toolrun_setup(void)
{
	const char *bin = getenv("MITOGEN_BIN"), *dir = getenv("MG_TEST_BUILD_DIR");

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (bin && *bin)
		snprintf(tool_bin, sizeof(tool_bin), "%s", bin);
	else if (dir && *dir)
		snprintf(tool_bin, sizeof(tool_bin), "%s/mitogen", dir);
	else
		snprintf(tool_bin, sizeof(tool_bin), "build/mitogen");
	if (access(tool_bin, X_OK) < 0) {
		fprintf(stderr, "# %s: %s (set MITOGEN_BIN)\n", tool_bin, strerror(errno));
		return -1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/mg-toolrun-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "# mkdtemp %s: %s\n", tmpdir, strerror(errno));
		tmpdir[0] = '\0';
		return -1;
	}
	/* sshd (run as root) reads files in here as other users */
	chmod(tmpdir, 0755);
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int toolrun_teardown(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

char *toolrun_slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	assert_non_null(f);
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static char *strip_log_lines(const char *text)
{
	char *out = malloc(strlen(text) + 1), *o = out;

	assert_non_null(out);
	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) + 1 : strlen(text);

		if (text[0] != '[') {
			memcpy(o, text, n);
			o += n;
		}
		text += n;
	}
	*o = '\0';
	return out;
}

void toolrun_free(struct toolrun *r)
{
	free(r->out);
	free(r->err);
	free(r->err_raw);
	memset(r, 0, sizeof(*r));
}

static const char **make_argv(const char *const *args)
{
	static const char *argv[128];
	int i;

	argv[0] = "mitogen";
	for (i = 0; args[i]; i++) {
		assert_true(i + 2 < 128);
		argv[i + 1] = args[i];
	}
	argv[i + 1] = NULL;
	return argv;
}

/* Copy what the pty master has to fd; all: until the child's side is
 * closed, else only what is there now. */
static void pty_drain(int master, int fd, bool all)
{
	for (;;) {
		struct pollfd p = { .fd = master, .events = POLLIN };
		char buf[4096];
		ssize_t n;

		if (poll(&p, 1, all ? 100 : 0) <= 0 || !(p.revents & (POLLIN | POLLHUP)))
			return;
		n = read(master, buf, sizeof(buf));
		if (n <= 0)
			return;
		assert_int_equal(write(fd, buf, (size_t)n), n);
	}
}

void toolrun(struct toolrun *r, const char *stdin_path, bool tty_stderr,
	     const char *const *args)
{
	char out_path[PATH_MAX + 16], err_path[PATH_MAX + 16], *slave = NULL;
	posix_spawn_file_actions_t fa;
	struct rusage ru;
	double start, deadline;
	int status, master = -1, tty_copy = -1, rc;
	pid_t pid, w;

	toolrun_free(r);
	snprintf(out_path, sizeof(out_path), "%s/stdout", tmpdir);
	snprintf(err_path, sizeof(err_path), "%s/stderr", tmpdir);
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	assert_int_equal(posix_spawn_file_actions_addopen(&fa, 0,
			 stdin_path ? stdin_path : "/dev/null", O_RDONLY, 0), 0);
	assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, out_path,
			 O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	if (tty_stderr) {
		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		assert_true(master >= 0);
		assert_int_equal(grantpt(master), 0);
		assert_int_equal(unlockpt(master), 0);
		slave = ptsname(master);
		assert_non_null(slave);
		assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, slave,
				 O_RDWR | O_NOCTTY, 0), 0);
	} else {
		assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, err_path,
				 O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	}
	start = toolrun_now();
	fflush(stdout);
	rc = posix_spawn(&pid, tool_bin, &fa, NULL, (char *const *)make_argv(args), environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		fail_msg("cannot run %s: %s", tool_bin, strerror(rc));
	deadline = start + TOOLRUN_TIMEOUT;
	if (master >= 0) {
		tty_copy = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		assert_true(tty_copy >= 0);
	}
	for (;;) {
		/* a pty whose buffer fills would block the tool: keep reading */
		if (master >= 0)
			pty_drain(master, tty_copy, false);
		w = wait4(pid, &status, WNOHANG, &ru);
		if (w == pid)
			break;
		assert_true(w == 0 || errno == EINTR);
		if (toolrun_now() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("%s %s did not finish in %d s", tool_bin, args[0],
				 TOOLRUN_TIMEOUT);
		}
		usleep(5000);
	}
	r->seconds = toolrun_now() - start;
	r->maxrss_kb = ru.ru_maxrss;
	r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (master >= 0) {
		pty_drain(master, tty_copy, true);
		close(tty_copy);
		close(master);
	}
	r->err_raw = toolrun_slurp(err_path);
	r->out = toolrun_slurp(out_path);
	r->err = strip_log_lines(r->err_raw);
}

pid_t toolrun_start(const char *const *args, int *ret_fd)
{
	char err_path[PATH_MAX + 16];
	posix_spawn_file_actions_t fa;
	int p[2], rc;
	pid_t pid;

	snprintf(err_path, sizeof(err_path), "%s/bg-stderr", tmpdir);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	assert_int_equal(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0), 0);
	assert_int_equal(posix_spawn_file_actions_adddup2(&fa, p[1], 1), 0);
	assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, err_path,
			 O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	fflush(stdout);
	rc = posix_spawn(&pid, tool_bin, &fa, NULL, (char *const *)make_argv(args), environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0)
		fail_msg("cannot run %s: %s", tool_bin, strerror(rc));
	*ret_fd = p[0];
	return pid;
}

bool toolrun_read_until(int fd, char **buf, const char *want, double timeout)
{
	size_t len = *buf ? strlen(*buf) : 0;
	double deadline = toolrun_now() + timeout;

	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char chunk[4096];
		ssize_t n;
		int left = (int)((deadline - toolrun_now()) * 1000);

		if (want && *buf && strstr(*buf, want))
			return true;
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			return false;
		n = read(fd, chunk, sizeof(chunk));
		if (n <= 0)
			return !want && n == 0;
		*buf = realloc(*buf, len + (size_t)n + 1);
		assert_non_null(*buf);
		memcpy(*buf + len, chunk, (size_t)n);
		len += (size_t)n;
		(*buf)[len] = '\0';
	}
}

char *toolrun_bg_stderr(void)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/bg-stderr", tmpdir);
	return toolrun_slurp(path);
}

int toolrun_wait(pid_t pid, double timeout)
{
	double deadline = toolrun_now() + timeout;
	int status;

	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (toolrun_now() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("the tool did not finish in %g s", timeout);
		}
		usleep(5000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool toolrun_has_line(const char *buf, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = buf; (p = strstr(p, line)); p++)
		if ((p == buf || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\r'))
			return true;
	return false;
}

int toolrun_count_lines(const char *buf)
{
	size_t len = strlen(buf);
	int n = 0;

	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\n';
	return n + (len > 0 && buf[len - 1] != '\n');
}
