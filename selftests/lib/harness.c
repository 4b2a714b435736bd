// SPDX-License-Identifier: MIT
/*
 * selftests/lib/harness.c: helpers for the cmocka selftests (see harness.h).
 *
 * Owns: TAP set-up, the cleanups deferred to the end of each test, the
 * fork+timeout wrapper, fd and child counting, and the
 * log capture buffer. Must not touch: anything but the public API of the
 * library; it is linked into every selftest and must stay small.
 */
#include "selftests/lib/harness.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHILD_TIMEOUT_DEFAULT 30
/* How long the parent waits past the child's own alarm before SIGKILL. */
#define CHILD_KILL_GRACE 5
/* A runaway logger must not eat the machine: lines past this are dropped. */
#define LOG_CAPTURE_MAX (16u << 20)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = {
		.tv_sec = (time_t)s,
		.tv_nsec = (long)((s - (time_t)s) * 1e9),
	};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* --- log capture -------------------------------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_buf;		/* NUL-terminated; NULL when empty */
static size_t log_len, log_cap;
static bool log_capturing;
static bool log_echo;		/* MG_TEST_LOG=1: also print to stderr */

static void log_echo_line(const char *source, const char *line)
{
	fprintf(stderr, "# %s: %s\n", source ? source : "?", line ? line : "");
}

static void log_echo_cb(enum mg_log_level level, const char *source,
			const char *line, void *userdata)
{
	log_echo_line(source, line);
}

/* Append "source: line\n"; called with log_lock held. */
static void log_append(const char *source, const char *line)
{
	size_t need = strlen(source) + 2 + strlen(line) + 2;
	char *p;

	if (log_len + need > LOG_CAPTURE_MAX)
		return;
	if (log_len + need > log_cap) {
		size_t cap = log_cap ? log_cap : 4096;

		while (cap < log_len + need)
			cap *= 2;
		p = realloc(log_buf, cap);
		if (!p)
			return;
		log_buf = p;
		log_cap = cap;
	}
	log_len += (size_t)snprintf(log_buf + log_len, log_cap - log_len,
				    "%s: %s\n", source, line);
}

static void log_capture_cb(enum mg_log_level level, const char *source,
			   const char *line, void *userdata)
{
	if (!source)
		source = "?";
	if (!line)
		line = "";
	pthread_mutex_lock(&log_lock);
	if (log_capturing)
		log_append(source, line);
	pthread_mutex_unlock(&log_lock);
	if (log_echo)
		log_echo_line(source, line);
}

void mg_test_log_capture_start(void)
{
	pthread_mutex_lock(&log_lock);
	log_len = 0;
	if (log_buf)
		log_buf[0] = '\0';
	log_capturing = true;
	pthread_mutex_unlock(&log_lock);
	mg_log_set_callback(log_capture_cb, NULL);
}

void mg_test_log_capture_stop(void)
{
	mg_log_set_callback(log_echo ? log_echo_cb : NULL, NULL);
	pthread_mutex_lock(&log_lock);
	log_capturing = false;
	free(log_buf);
	log_buf = NULL;
	log_len = log_cap = 0;
	pthread_mutex_unlock(&log_lock);
}

bool mg_test_log_contains(const char *needle, double wait_s)
{
	double deadline = now_s() + (wait_s > 0 ? wait_s : 0);
	double pause = 0.001;
	bool found;

	if (!needle)
		return false;
	for (;;) {
		pthread_mutex_lock(&log_lock);
		found = log_capturing && log_buf && strstr(log_buf, needle);
		pthread_mutex_unlock(&log_lock);
		if (found || now_s() >= deadline)
			return found;
		sleep_s(pause);
		if (pause < 0.02)
			pause *= 2;
	}
}

void mg_test_log_print(void)
{
	const char *line, *end;

	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "# captured log (%zu bytes):\n", log_len);
	for (line = log_buf; line && *line; line = end + 1) {
		end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		fprintf(stderr, "#   %.*s\n", (int)(end - line), line);
		if (!*end)
			break;
	}
	pthread_mutex_unlock(&log_lock);
}

/* --- cleanups after each test ------------------------------------------ */

struct deferred {
	void (*fn)(void *);
	void *arg;
	struct deferred *next;
};

static struct deferred *deferred_head;	/* main thread only, as cmocka */

void *mg_test_defer(void (*fn)(void *), void *arg)
{
	struct deferred *d = malloc(sizeof(*d));

	if (!d) {
		fn(arg);	/* no memory: cannot wait; should not happen */
		return arg;
	}
	*d = (struct deferred){ fn, arg, deferred_head };
	deferred_head = d;
	return arg;
}

void mg_test_cleanup(void)
{
	while (deferred_head) {
		struct deferred *d = deferred_head;

		deferred_head = d->next;
		d->fn(d->arg);
		free(d);
	}
}

static int cleanup_teardown(void **state)
{
	mg_test_cleanup();
	return 0;
}

bool mg_test_wait_sleeping(pid_t tid, double max_s)
{
	double deadline = now_s() + max_s, pause = 0.0005;
	char path[64], buf[256], *p;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	for (;;) {
		FILE *f = fopen(path, "re");

		p = f && fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		if (f)
			fclose(f);
		if (p && (p[2] == 'S' || p[2] == 'D'))
			return true;
		if (now_s() >= deadline)
			return false;
		sleep_s(pause);
		if (pause < 0.01)
			pause *= 2;
	}
}

/* --- gates -------------------------------------------------------------- */

/* Runs in a child: wait until the test opens the gate, then answer value. */
static int gate_wait(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const char *path;
	int64_t value;
	char c;
	int fd;

	if (mg_value_unpack(args, NULL, "sl", &path, &value) < 0)
		return mg_call_fail(call, EINVAL, "mg_test.gate(path, value)");
	/* Blocks until the test opens the other end (mg_test_gate_open). */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mg_call_fail(call, errno, "open %s", path);
	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	close(fd);
	*ret = mg_int(value);
	return 0;
}
MG_EXPORT_AS("mg_test.gate", gate_wait);

bool mg_test_gate_open(const char *path, double max_s)
{
	double deadline = now_s() + max_s, pause = 0.0005;
	int fd;

	/* ENXIO: nobody waits at it yet. */
	while ((fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
		if (errno != ENXIO || now_s() >= deadline)
			return false;
		sleep_s(pause);
		if (pause < 0.01)
			pause *= 2;
	}
	if (write(fd, "", 1) != 1) {
		close(fd);
		return false;
	}
	close(fd);
	return true;
}

static void gate_remove(void *path)
{
	char *p = path, *slash;

	mg_test_gate_open(p, 0);	/* a child still waiting goes on */
	unlink(p);
	slash = strrchr(p, '/');
	if (slash) {
		*slash = '\0';
		rmdir(p);
	}
	free(p);
}

void mg_test_gate_new(char *path, size_t n)
{
	const char *base = getenv("TMPDIR");
	char *copy;

	snprintf(path, n, "%s/mg-gate-XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(path));
	assert_true(strlen(path) + 6 < n);
	strcat(path, "/gate");
	assert_int_equal(mkfifo(path, 0600), 0);
	copy = strdup(path);
	assert_non_null(copy);
	mg_test_defer(gate_remove, copy);
}

/* --- running tests ------------------------------------------------------ */

int mg_test_run(const char *name, const struct CMUnitTest *tests, size_t n)
{
	const char *env = getenv("MG_TEST_LOG");
	struct CMUnitTest *own = malloc(n * sizeof(*own));
	int ret;

	/* A test that forks (mg_fork, mg_test_in_child) must not duplicate
	 * TAP lines still sitting in a full stdout buffer. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	cmocka_set_message_output(CM_OUTPUT_TAP);
	if (env && *env && strcmp(env, "0") != 0) {
		log_echo = true;
		mg_log_set_callback(log_echo_cb, NULL);
	}
	if (!own)
		return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
	/* Every test without a teardown gets mg_test_cleanup as its own. */
	for (size_t i = 0; i < n; i++) {
		own[i] = tests[i];
		if (!own[i].teardown_func)
			own[i].teardown_func = cleanup_teardown;
	}
	ret = _cmocka_run_group_tests(name, own, n, NULL, NULL);
	mg_test_cleanup();
	free(own);
	return ret;
}

static void child_run(void (*fn)(void *), void *arg, int timeout_s)
{
	struct sigaction sa;
	sigset_t set;
	int sig;

	/* A failed assertion would otherwise longjmp into this process's
	 * copy of the cmocka runner and go on running the other tests. */
	setenv("CMOCKA_TEST_ABORT", "1", 1);
	/* stdout is the TAP stream: it belongs to the parent. */
	dup2(STDERR_FILENO, STDOUT_FILENO);
	/* cmocka catches SIGSEGV, SIGSYS... to report them as failures, and
	 * would longjmp out of fn: a death by signal is the child's result. */
	for (sig = 1; sig < NSIG; sig++) {
		if (sigaction(sig, NULL, &sa) == 0 &&
		    sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN)
			signal(sig, SIG_DFL);
	}
	signal(SIGALRM, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	alarm((unsigned)timeout_s);
	fn(arg);
	fflush(NULL);
	_exit(0);
}

int mg_test_in_child(void (*fn)(void *), void *arg, int timeout_s,
		     int *ret_status)
{
	double deadline, pause = 0.0005;
	bool killed = false;
	int status;
	pid_t pid, r;

	if (!fn)
		return -EINVAL;
	if (timeout_s <= 0)
		timeout_s = CHILD_TIMEOUT_DEFAULT;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		child_run(fn, arg, timeout_s);

	deadline = now_s() + timeout_s + CHILD_KILL_GRACE;
	for (;;) {
		r = waitpid(pid, &status, killed ? 0 : WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			int e = errno;

			if (!killed) {
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
			}
			return -e;
		}
		if (r == 0 && now_s() >= deadline) {
			kill(pid, SIGKILL);
			killed = true;
			continue;
		}
		if (r == 0) {
			sleep_s(pause);
			if (pause < 0.01)
				pause *= 2;
		}
	}
	if (ret_status)
		*ret_status = status;
	if (killed || (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM))
		return -ETIMEDOUT;
	return 0;
}

/* --- leak accounting ---------------------------------------------------- */

int mg_test_count_fds(void)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

/* Parent pid from /proc/<pid>/stat, or -1. The comm field may hold spaces
 * and parentheses, so parse from its last ')'. */
static pid_t stat_ppid(const char *pid)
{
	char path[64], buf[512], *p;
	int ppid = -1;
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -1;
	buf[len] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

int mg_test_count_children(pid_t parent)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	if (parent <= 0)
		parent = getpid();
	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (stat_ppid(de->d_name) == parent)
			n++;
	}
	closedir(d);
	return n;
}

bool mg_test_pid_gone(pid_t pid)
{
	char path[64], buf[256];
	FILE *f;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	p = p ? strrchr(buf, ')') : NULL;
	return p && (p[2] == 'Z' || p[2] == 'X');
}

double mg_test_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
