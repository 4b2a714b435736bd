// SPDX-License-Identifier: MIT
/*
 * selftests/attacks/test_tmpfiles.c — debug logs and profiles written by a
 * root process, against another local user (mgtest) who plants things
 * where they will be written. Each test forks a root process (this
 * test's uid), which forks the attacker (setuid mgtest) to plant, waits
 * for it, then turns on debug logging (mg_router_enable_debug) or
 * profiling (mg_profiling_enable, a router's broker thread) exactly as a
 * program would. The attacks:
 *
 *  - a FIFO at the old debug log path, /tmp/mitogen.<pid>.log: open()
 *    blocked the root process forever;
 *  - a FIFO at the old profile path, /tmp/mitogen.stats.<pid>.<thread>.folded
 *    (the thread id read from /proc/<pid>/task, as anyone can): the
 *    broker thread blocked at exit, and the router's release with it;
 *  - a file of the attacker's at the old profile path: the root process
 *    wrote its profile into it (no owner check);
 *  - a symlink to a root file at the old paths: never written through;
 *  - the private directory itself taken first: a FIFO, a symlink to the
 *    attacker's directory, or a directory of the attacker's (with a FIFO
 *    inside) at ${TMPDIR}/mitogen-debug-<uid>; and an XDG_RUNTIME_DIR
 *    that belongs to the attacker (as su passes it on).
 *
 * Every root process runs under a generous alarm: a hang is a failure,
 * not a stuck test. The new private directory lives under this test's own
 * TMPDIR (a sticky, world-writable directory like /tmp); the old paths
 * are in /tmp itself, named after this test's own processes, and removed
 * after each test.
 *
 * Owns: its TMPDIR; the /tmp names of its own pids.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "selftests/transports/fixture.h"

/* Far above what opening a file takes, even on a loaded machine. */
#define ROOT_TIMEOUT_S 120

static char tmpdir[64];		/* plays /tmp: root-owned, 1777 */
static uid_t mgtest_uid;
static gid_t mgtest_gid;

/* What the attacker makes at a path. */
enum plant_kind {
	PLANT_FIFO,
	PLANT_SYMLINK,		/* to target */
	PLANT_DIR,		/* 0777, the attacker's */
	PLANT_FILE,		/* 0666, empty, the attacker's */
};

struct plant {
	enum plant_kind kind;
	char path[384];
	char target[256];
};

/* The list of what was planted outside our TMPDIR, for run_root to
 * remove even when the root process was killed. */
static void note_planted(const struct plant *p, size_t n)
{
	char list[128];
	FILE *f;

	snprintf(list, sizeof(list), "%s/.planted", tmpdir);
	f = fopen(list, "a");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		if (strncmp(p[i].path, tmpdir, strlen(tmpdir)))
			fprintf(f, "%s\n", p[i].path);
	fclose(f);
}

static void remove_planted(void)
{
	char list[128], line[512];
	FILE *f;

	snprintf(list, sizeof(list), "%s/.planted", tmpdir);
	f = fopen(list, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "/tmp/mitogen.", 13))
			unlink(line);
	}
	fclose(f);
	unlink(list);
}

/* As mgtest, in a forked process: make every plant (asserted). */
static void plant_as_attacker(const struct plant *p, size_t n)
{
	int status;
	pid_t pid;

	note_planted(p, n);
	pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(mgtest_gid) < 0 || setuid(mgtest_uid) < 0)
			_exit(100);
		umask(0);
		for (size_t i = 0; i < n; i++) {
			int r = -1;

			switch (p[i].kind) {
			case PLANT_FIFO:
				r = mkfifo(p[i].path, 0666);
				break;
			case PLANT_SYMLINK:
				r = symlink(p[i].target, p[i].path);
				break;
			case PLANT_DIR:
				r = mkdir(p[i].path, 0777);
				break;
			case PLANT_FILE:
				r = open(p[i].path, O_WRONLY | O_CREAT | O_EXCL, 0666);
				if (r >= 0)
					r = close(r);
				break;
			}
			if (r < 0) {
				fprintf(stderr, "# attacker: cannot plant %s: %s\n", p[i].path,
					strerror(errno));
				_exit(101);
			}
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Where the private directory of uid 0 is under our TMPDIR. */
static void private_dir(char *buf, size_t size)
{
	snprintf(buf, size, "%s/mitogen-debug-%u", tmpdir, (unsigned)geteuid());
}

/* Size of path (following nothing), or -1 when it is not a regular file. */
static off_t file_size(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	return st.st_size;
}

/* Entries in directory path, or -1. */
static int dir_entries(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* A root-owned file the attacker would like us to write into. */
static void make_victim(char *path, size_t size)
{
	FILE *f;

	snprintf(path, size, "%s/victim", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("victim\n", f);
	fclose(f);
	chmod(path, 0644);
}

/* The new debug log of the calling process: a regular file of ours,
 * 0600, in our 0700 directory, holding the line we logged. */
static void check_private_log(const char *dir, const char *marker)
{
	char path[512], text[8192] = "";
	struct stat st;
	ssize_t n;
	int fd;

	assert_int_equal(lstat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(path, sizeof(path), "%s/mitogen.%d.log", dir, (int)getpid());
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_mode & 07777, 0600);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n > 0);
	assert_non_null(strstr(text, marker));
}

/* --- the root side of each attack (in a forked child, under alarm) ---- */

/* Our TMPDIR, no XDG_RUNTIME_DIR: where the private directory goes. */
static void root_env(void)
{
	setenv("TMPDIR", tmpdir, 1);
	unsetenv("XDG_RUNTIME_DIR");
}

static void old_log_path(char *buf, size_t size)
{
	snprintf(buf, size, "/tmp/mitogen.%d.log", (int)getpid());
}

/* A FIFO at the old log path: turning debug on returns, and logs to the
 * private directory. */
static void root_debug_fifo_old(void *arg)
{
	struct plant p = { .kind = PLANT_FIFO };
	struct mg_router *r;
	char dir[256];

	root_env();
	old_log_path(p.path, sizeof(p.path));
	plant_as_attacker(&p, 1);
	r = mg_router_new(NULL);
	assert_non_null(r);
	assert_int_equal(mg_router_enable_debug(r), 0);
	mg_log(MG_LOG_WARNING, "marker-fifo-old");
	private_dir(dir, sizeof(dir));
	check_private_log(dir, "marker-fifo-old");
	mg_router_unref(r);
	unlink(p.path);
}

/* A symlink to a root file at the old log path: the file is untouched. */
static void root_debug_symlink_old(void *arg)
{
	struct plant p = { .kind = PLANT_SYMLINK };
	struct mg_router *r;
	char dir[256];

	root_env();
	old_log_path(p.path, sizeof(p.path));
	make_victim(p.target, sizeof(p.target));
	plant_as_attacker(&p, 1);
	r = mg_router_new(NULL);
	assert_non_null(r);
	mg_router_enable_debug(r);
	mg_log(MG_LOG_WARNING, "marker-symlink-old");
	assert_int_equal(file_size(p.target), 7);	/* "victim\n" */
	private_dir(dir, sizeof(dir));
	check_private_log(dir, "marker-symlink-old");
	mg_router_unref(r);
	unlink(p.path);
	unlink(p.target);
}

/*
 * The private directory's name taken first (arg: the plant kind): turning
 * debug on fails at once, saying which path and why, and nothing is
 * written to or through what the attacker made.
 */
static void root_debug_dir_taken(void *arg)
{
	enum plant_kind kind = *(enum plant_kind *)arg;
	struct plant p[2] = { { .kind = kind } };
	const char *reason = kind == PLANT_FIFO ? "not a directory"
			     : kind == PLANT_SYMLINK ? "a symlink" : "owned by uid";
	struct mg_router *r;
	char attacker[128], want[512];
	size_t n = 1;
	int ret;

	root_env();
	mg_test_log_capture_start();
	private_dir(p[0].path, sizeof(p[0].path));
	snprintf(attacker, sizeof(attacker), "%s/attacker", tmpdir);
	if (kind == PLANT_SYMLINK) {
		/* to a directory of the attacker's */
		struct plant d = { .kind = PLANT_DIR };

		snprintf(d.path, sizeof(d.path), "%s", attacker);
		plant_as_attacker(&d, 1);
		snprintf(p[0].target, sizeof(p[0].target), "%s", attacker);
	} else if (kind == PLANT_DIR) {
		/* with a FIFO where our log would go */
		p[1].kind = PLANT_FIFO;
		snprintf(p[1].path, sizeof(p[1].path), "%.300s/mitogen.%d.log", p[0].path,
			 (int)getpid());
		n = 2;
	}
	plant_as_attacker(p, n);
	r = mg_router_new(NULL);
	assert_non_null(r);
	ret = mg_router_enable_debug(r);
	mg_log(MG_LOG_WARNING, "marker-dir-taken");
	if (ret == 0 || !mg_test_log_contains(p[0].path, 0) ||
	    !mg_test_log_contains(reason, 0)) {
		fprintf(stderr, "# enable_debug returned %d; wanted a refusal naming %s (%s)\n",
			ret, p[0].path, reason);
		mg_test_log_print();
		fail();
	}
	snprintf(want, sizeof(want), "refusing %s", p[0].path);
	assert_true(mg_test_log_contains(want, 0));
	if (kind == PLANT_SYMLINK)
		assert_int_equal(dir_entries(attacker), 0);
	if (kind == PLANT_DIR)
		assert_int_equal(dir_entries(p[0].path), 1);	/* its FIFO only */
	mg_router_unref(r);
	mg_test_log_capture_stop();
}

/*
 * XDG_RUNTIME_DIR pointing at the attacker's own 0700 directory (su keeps
 * the caller's): not used; the private directory under TMPDIR is. And
 * one of ours is.
 */
static void root_debug_xdg(void *arg)
{
	struct plant p = { .kind = PLANT_DIR };
	struct mg_router *r;
	char dir[512], ours[256];

	root_env();
	snprintf(p.path, sizeof(p.path), "%s/xdg-attacker", tmpdir);
	plant_as_attacker(&p, 1);
	chmod(p.path, 0700);	/* root may: as systemd makes /run/user/UID */
	setenv("XDG_RUNTIME_DIR", p.path, 1);
	r = mg_router_new(NULL);
	assert_non_null(r);
	assert_int_equal(mg_router_enable_debug(r), 0);
	mg_log(MG_LOG_WARNING, "marker-xdg");
	assert_int_equal(dir_entries(p.path), 0);
	private_dir(dir, sizeof(dir));
	check_private_log(dir, "marker-xdg");
	mg_router_unref(r);

	/* Ours (owned by us, 0700): $XDG_RUNTIME_DIR/mitogen-debug. */
	snprintf(ours, sizeof(ours), "%s/xdg-ours", tmpdir);
	assert_int_equal(mkdir(ours, 0700), 0);
	setenv("XDG_RUNTIME_DIR", ours, 1);
	if (fork() == 0) {
		/* a new pid, a new log; the parent's stays open here */
		int ok;

		r = mg_router_new(NULL);
		ok = r && mg_router_enable_debug(r) == 0;
		mg_log(MG_LOG_WARNING, "marker-xdg-ours");
		snprintf(dir, sizeof(dir), "%s/mitogen-debug", ours);
		check_private_log(dir, "marker-xdg-ours");
		mg_router_unref(r);
		_exit(ok ? 0 : 1);
	}
	{
		int status;

		assert_true(wait(&status) > 0);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}

/* Thread ids of process pid (anyone may list them). */
static int task_ids(pid_t pid, pid_t *ids, int max)
{
	struct dirent *de;
	char path[64];
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)) && n < max)
		if (de->d_name[0] != '.')
			ids[n++] = (pid_t)atoi(de->d_name);
	closedir(d);
	return n;
}

/*
 * A profiled root child (mg_local_opts.profiling) serves calls, so its
 * main thread has CPU time to sample. The attacker then plants kind (arg)
 * at the old profile paths of its main and broker threads, and the child
 * is shut down: on the way out it writes its profiles. The shutdown must
 * end, nothing be written into or through what the attacker made, and
 * the profiles be in the private directory.
 */
static void root_profile_old(void *arg)
{
	enum plant_kind kind = *(enum plant_kind *)arg;
	struct plant p[17];
	pid_t ids[16], cpid;
	struct mg_router *r;
	struct mg_context *c;
	char dir[256], victim[256], path[512];
	struct stat st;
	int n;

	root_env();
	mg_test_log_capture_start();
	r = mg_router_new(NULL);
	assert_non_null(r);
	MG_OPTS(mg_local_opts, lo, .profiling = true);
	c = mg_local(r, &lo, NULL);
	assert_non_null(c);
	for (int i = 0; i < 2000; i++)
		assert_int_equal(mg_call(c, "mg.noop", NULL, NULL, NULL), 0);
	cpid = mg_context_pid(c);
	n = task_ids(cpid, ids, 16);
	if (kind == PLANT_SYMLINK)
		make_victim(victim, sizeof(victim));
	memset(p, 0, sizeof(p));
	for (int i = 0; i <= n; i++) {
		p[i].kind = kind;
		if (i < n)
			snprintf(p[i].path, sizeof(p[i].path),
				 "/tmp/mitogen.stats.%d.broker.%d.folded", (int)cpid, (int)ids[i]);
		else
			snprintf(p[i].path, sizeof(p[i].path), "/tmp/mitogen.stats.%d.main.folded",
				 (int)cpid);
		if (kind == PLANT_SYMLINK)
			snprintf(p[i].target, sizeof(p[i].target), "%s", victim);
	}
	plant_as_attacker(p, (size_t)n + 1);
	assert_int_equal(mg_context_shutdown(c, true), 0);	/* it writes, exits */
	if (mg_test_log_contains("did not shut down", 0)) {
		/* blocked writing its profile, until killed */
		mg_test_log_print();
		fail();
	}
	mg_context_unref(c);
	mg_router_unref(r);
	mg_test_log_capture_stop();
	/* Nothing written into or through what the attacker made... */
	for (int i = 0; i <= n; i++) {
		if (kind == PLANT_FILE && file_size(p[i].path) != 0) {
			fprintf(stderr, "# root wrote %lld bytes into the attacker's %s\n",
				(long long)file_size(p[i].path), p[i].path);
			fail();
		}
		unlink(p[i].path);
	}
	if (kind == PLANT_SYMLINK) {
		assert_int_equal(file_size(victim), 7);
		unlink(victim);
	}
	/* ... and the main thread's profile is in the private directory. */
	private_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/mitogen.stats.%d.main.folded", dir, (int)cpid);
	if (lstat(path, &st) < 0) {
		fprintf(stderr, "# no profile at %s\n", path);
		fail();
	}
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(st.st_size > 0);
}

/* Profiling with the private directory's name taken by a symlink to the
 * attacker's directory: refused, said, nothing written there. */
static void root_profile_dir_taken(void *arg)
{
	struct plant d = { .kind = PLANT_DIR }, l = { .kind = PLANT_SYMLINK };
	struct mg_router *r;
	char want[512];

	root_env();
	mg_test_log_capture_start();
	snprintf(d.path, sizeof(d.path), "%s/attacker", tmpdir);
	private_dir(l.path, sizeof(l.path));
	snprintf(l.target, sizeof(l.target), "%.200s", d.path);
	plant_as_attacker(&d, 1);
	plant_as_attacker(&l, 1);
	mg_profiling_enable(true);
	r = mg_router_new(NULL);
	assert_non_null(r);
	mg_router_unref(r);
	snprintf(want, sizeof(want), "refusing %s", l.path);
	if (!mg_test_log_contains(want, 0) || !mg_test_log_contains("a symlink", 0)) {
		mg_test_log_print();
		fail();
	}
	assert_int_equal(dir_entries(d.path), 0);
	mg_test_log_capture_stop();
}

/* --- the tests: each root side in a child, bounded ---------------------- */

#define NEED_MGTEST()								\
	do {									\
		if (!fx.users || !mgtest_uid) {					\
			fprintf(stderr, "# skip: %s\n",				\
				fx.skip[0] ? fx.skip : "no user mgtest");	\
			skip();							\
		}								\
	} while (0)

/* Empty our TMPDIR (what the last test and its attacker made). */
static void reset_tmpdir(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'/* '%s'/.[!.]*", tmpdir, tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not empty %s\n", tmpdir);
}

static void run_root(void (*fn)(void *), void *arg)
{
	double t0 = mg_test_now();
	int st = 0, ret;

	reset_tmpdir();
	ret = mg_test_in_child(fn, arg, ROOT_TIMEOUT_S, &st);
	remove_planted();
	if (ret == -ETIMEDOUT)
		fprintf(stderr, "# the root process hung: killed after %.0f s\n",
			mg_test_now() - t0);
	assert_int_equal(ret, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "# the root process failed (status 0x%x)\n", st);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_debug_log_fifo_at_old_path(void **state)
{
	NEED_MGTEST();
	run_root(root_debug_fifo_old, NULL);
}

static void test_debug_log_symlink_at_old_path(void **state)
{
	NEED_MGTEST();
	run_root(root_debug_symlink_old, NULL);
}

static void test_debug_dir_is_fifo(void **state)
{
	enum plant_kind k = PLANT_FIFO;

	NEED_MGTEST();
	run_root(root_debug_dir_taken, &k);
}

static void test_debug_dir_is_symlink(void **state)
{
	enum plant_kind k = PLANT_SYMLINK;

	NEED_MGTEST();
	run_root(root_debug_dir_taken, &k);
}

static void test_debug_dir_of_another_user(void **state)
{
	enum plant_kind k = PLANT_DIR;

	NEED_MGTEST();
	run_root(root_debug_dir_taken, &k);
}

static void test_debug_xdg_runtime_dir_of_another_user(void **state)
{
	NEED_MGTEST();
	run_root(root_debug_xdg, NULL);
}

static void test_profile_fifo_at_old_path(void **state)
{
	enum plant_kind k = PLANT_FIFO;

	NEED_MGTEST();
	run_root(root_profile_old, &k);
}

static void test_profile_file_of_another_user_at_old_path(void **state)
{
	enum plant_kind k = PLANT_FILE;

	NEED_MGTEST();
	run_root(root_profile_old, &k);
}

static void test_profile_symlink_at_old_path(void **state)
{
	enum plant_kind k = PLANT_SYMLINK;

	NEED_MGTEST();
	run_root(root_profile_old, &k);
}

static void test_profile_dir_is_symlink(void **state)
{
	NEED_MGTEST();
	run_root(root_profile_dir_taken, NULL);
}

int main(int argc, char **argv)
{
	struct passwd *pw;
	int ret;

	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_debug_log_fifo_at_old_path),
		cmocka_unit_test(test_debug_log_symlink_at_old_path),
		cmocka_unit_test(test_debug_dir_is_fifo),
		cmocka_unit_test(test_debug_dir_is_symlink),
		cmocka_unit_test(test_debug_dir_of_another_user),
		cmocka_unit_test(test_debug_xdg_runtime_dir_of_another_user),
		cmocka_unit_test(test_profile_fifo_at_old_path),
		cmocka_unit_test(test_profile_file_of_another_user_at_old_path),
		cmocka_unit_test(test_profile_symlink_at_old_path),
		cmocka_unit_test(test_profile_dir_is_symlink),
	};

	if (fixture_up(false) < 0)
		return 1;
	pw = fx.users ? getpwnam("mgtest") : NULL;
	if (pw) {
		mgtest_uid = pw->pw_uid;
		mgtest_gid = pw->pw_gid;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mg-tmpfiles.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	chmod(tmpdir, 01777);	/* like /tmp: anyone may plant, sticky */
	ret = MG_TEST_RUN("attacks/tmpfiles", tests);
	reset_tmpdir();
	rmdir(tmpdir);
	return ret;
}
