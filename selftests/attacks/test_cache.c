// SPDX-License-Identifier: MIT
/*
 * selftests/attacks/test_cache.c — the cached image (issue 15, item 5),
 * attacked by another local user: the first stage (transports/firststage.c)
 * of a root context started through sudo or su must neither use nor create
 * anything in the calling user's home when sudo -H -E or su carry that
 * user's XDG_CACHE_HOME (or sudo -E its HOME) over; a user who swaps
 * directories (renameat2 RENAME_EXCHANGE, in a tight loop) while root's
 * first stage checks and execs the cached image must never get a file of
 * theirs run as root; and when another user has pre-created every
 * candidate cache directory of a service user, sudo to that user still
 * starts (from a private directory, not cached) and the log says why.
 *
 * The calling user is mgsudo (NOPASSWD sudo), its "home" a directory of
 * this test (owned by mgsudo) that XDG_CACHE_HOME or HOME point at; the
 * service user is mgsvc (no home), the other user mgtest; all are made by
 * selftests/fixtures/sshd.sh. Owns nothing outside its scratch directory
 * but mgsvc's candidate cache directories, which no other test uses.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selftests/lib/probes.h"
#include "selftests/transports/fixture.h"

/* Root contexts the race test starts while the user swaps directories. */
#define RACE_ATTEMPTS 60

/*
 * cache_setenv(name, value): set name in this agent's environment (value
 * nil: unset it). The calling user's environment, which the sudo or su
 * this agent runs next may carry over.
 */
static int cache_setenv(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const char *name = NULL, *value = NULL;

	if (mg_value_unpack(args, NULL, "s|s", &name, &value) < 0 || !name)
		return mg_call_fail(call, EINVAL, "cache_setenv(name, value)");
	if (value ? setenv(name, value, 1) : unsetenv(name))
		return mg_call_fail(call, errno, "setenv %s", name);
	*ret = mg_nil();
	return 0;
}
MG_EXPORT(cache_setenv);

/* This test's scratch directory and the calling user. */
static struct {
	char dir[64];		/* /tmp/mg-cache.XXXXXX, root's, 0755 */
	char home[96];		/* dir/home: the calling user's (mgsudo), 0755 */
	char marks[96];		/* dir/marks: 01777, where a planted file writes */
	char image[96];		/* dir/image: this program, made unique */
	char sha[65];		/* its SHA-256: its name in a cache */
	uid_t uid;		/* mgsudo */
	gid_t gid;
	pid_t racer;		/* the race test's user process, while it runs */
	int stop;		/* ...and our end of its stop pipe */
	char planted[3][64];	/* what the last test planted outside dir */
} sc = { .stop = -1 };

/*
 * A copy of this program with random bytes appended: an image no cache
 * holds yet, so the first start of each test stores it (a cache hit left
 * by an earlier run would hide what a first start does).
 */
static int make_image(void)
{
	char cmd[512];
	FILE *p;
	int ok;

	snprintf(sc.image, sizeof(sc.image), "%s/image", sc.dir);
	snprintf(cmd, sizeof(cmd), "cp /proc/%d/exe %s && head -c 64 /dev/urandom >> %s && "
		 "chmod 0755 %s && sha256sum %s", (int)getpid(), sc.image, sc.image, sc.image,
		 sc.image);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	ok = fscanf(p, "%64s", sc.sha) == 1;
	return pclose(p) == 0 && ok ? 0 : -1;
}

/* Remove the unique image from the caches of uid (it is no use to anyone). */
static void forget_image(uid_t uid, const char *home)
{
	char cmd[640];

	snprintf(cmd, sizeof(cmd), "rm -f %s/.cache/mitogen/%s /dev/shm/mitogen-%u/%s "
		 "/var/tmp/mitogen-%u/%s /tmp/mitogen-%u/%s", home, sc.sha, (unsigned)uid, sc.sha,
		 (unsigned)uid, sc.sha, (unsigned)uid, sc.sha);
	if (system(cmd) != 0)
		fprintf(stderr, "# failed: %s\n", cmd);
}

static void user_ids(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(user);

	if (!pw)
		fprintf(stderr, "# no user %s\n", user);
	assert_non_null(pw);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
}

static int cache_setup(void **state)
{
	if (!fx.users)
		return fixture_setup(state);
	user_ids("mgsudo", &sc.uid, &sc.gid);
	snprintf(sc.dir, sizeof(sc.dir), "/tmp/mg-cache.XXXXXX");
	if (!mkdtemp(sc.dir) || chmod(sc.dir, 0755) < 0)
		return -1;
	snprintf(sc.home, sizeof(sc.home), "%s/home", sc.dir);
	snprintf(sc.marks, sizeof(sc.marks), "%s/marks", sc.dir);
	if (mkdir(sc.home, 0755) < 0 || chown(sc.home, sc.uid, sc.gid) < 0 ||
	    mkdir(sc.marks, 0755) < 0 || chmod(sc.marks, 01777) < 0 || make_image() < 0)
		return -1;
	return fixture_setup(state);
}

/* Undo what a test left when it failed half-way (done on success too). */
static int cache_teardown(void **state)
{
	if (sc.racer > 0) {
		kill(sc.racer, SIGKILL);
		waitpid(sc.racer, NULL, 0);
	}
	sc.racer = 0;
	if (sc.stop >= 0)
		close(sc.stop);
	sc.stop = -1;
	for (int i = 0; i < 3; i++)
		if (sc.planted[i][0])
			mg_test_rm_rf(sc.planted[i]);
	memset(sc.planted, 0, sizeof(sc.planted));
	unsetenv("XDG_CACHE_HOME");
	mg_test_log_capture_stop();
	if (sc.sha[0])
		forget_image(0, "/root");
	sc.sha[0] = '\0';
	if (sc.dir[0] && mg_test_rm_rf(sc.dir) < 0)
		fprintf(stderr, "# could not remove %s\n", sc.dir);
	sc.dir[0] = '\0';
	return fixture_teardown(state);
}

#define CACHE_TEST(fn) cmocka_unit_test_setup_teardown(fn, cache_setup, cache_teardown)

/*
 * fork() a process of another user (uid/gid, no supplementary groups)
 * that runs fn(arg) and exits; it dies with us. fn may use system calls
 * only (we have threads: no malloc, no cmocka in the child).
 */
static pid_t as_user(uid_t uid, gid_t gid, void (*fn)(void *), void *arg)
{
	pid_t parent = getpid(), pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(126);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(125);
		fn(arg);
		_exit(0);
	}
	return pid;
}

/* Wait for pid; its exit status (the test fails if it died of a signal). */
static int reap(pid_t pid)
{
	int st = 0;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* --- what root left behind ------------------------------------------- */

static int root_entries;

static int count_root(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	if (st->st_uid == 0) {
		fprintf(stderr, "# root owns %s (mode %o) in the user's home\n", path,
			st->st_mode & 07777);
		root_entries++;
	}
	return 0;
}

/* Entries under dir owned by root (printed). */
static int root_owned(const char *dir)
{
	root_entries = 0;
	assert_int_equal(nftw(dir, count_root, 16, FTW_PHYS), 0);
	return root_entries;
}

/*
 * ctx runs as uid 0 from an image outside the user's home, exec'd from the
 * fd the first stage checked and hashed (argv[0] /proc/self/fd/3), not
 * from a path looked up again: what would stop a swap that the directory
 * rules did not.
 */
static void assert_root_outside_home(struct mg_context *ctx)
{
	char path[64], exe[PATH_MAX], argv0[64] = "";
	pid_t pid;
	ssize_t n;
	FILE *f;

	assert_int_equal(call_int(ctx, "mg.getuid"), 0);
	pid = (pid_t)call_int(ctx, "mg.getpid");
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	fprintf(stderr, "# root's agent runs %s\n", exe);
	assert_true(strncmp(exe, sc.home, strlen(sc.home)) != 0);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	n = (ssize_t)fread(argv0, 1, sizeof(argv0) - 1, f);
	fclose(f);
	argv0[n > 0 ? n : 0] = '\0';
	assert_string_equal(argv0, "/proc/self/fd/3");
}

/* --- contexts -------------------------------------------------------- */

/* The calling user's context (sudo -u mgsudo), with name=value set in its
 * environment (value NULL: nothing set). */
static struct mg_context *calling_user(const char *name, const char *value)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid;

	MG_OPTS(mg_local_opts, lo, .connect_timeout = 30);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgsudo");
	mid = must(mg_sudo(router, &so, &err), &err);
	if (name)
		assert_int_equal(mg_call(mid, "cache_setenv", mg_value_build("ss", name, value),
					 NULL, &err), 0);
	return mid;
}

/* root through `sudo [-H] -E` run by the calling user's context mid. */
static struct mg_context *root_via(struct mg_context *mid, bool set_home, struct mg_error *err)
{
	MG_OPTS(mg_local_opts, lo, .via = mid, .connect_timeout = 30, .image = sc.image);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .set_home = set_home, .preserve_env = true);
	return mg_sudo(router, &so, err);
}

/* XDG_CACHE_HOME as the calling user has it: in their home. */
static const char *user_xdg(void)
{
	static char xdg[128];

	snprintf(xdg, sizeof(xdg), "%s/.cache", sc.home);
	return xdg;
}

/* --- (a) the caller's environment --------------------------------------- */

/*
 * sudo -H -E: HOME is root's, XDG_CACHE_HOME the caller's. Two starts (the
 * second would be a cache hit): root uses and creates nothing in the
 * caller's home.
 */
static void test_sudo_H_E_ignores_caller_xdg(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;

	NEED_ROOT();
	mid = calling_user("XDG_CACHE_HOME", user_xdg());
	for (int i = 0; i < 2; i++) {
		ctx = must(root_via(mid, true, &err), &err);
		assert_root_outside_home(ctx);
		finish(ctx);
	}
	finish(mid);
	assert_int_equal(root_owned(sc.home), 0);
}

/* sudo -E without -H: HOME and XDG_CACHE_HOME both the caller's. */
static void test_sudo_E_ignores_caller_home(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;

	NEED_ROOT();
	mid = calling_user("HOME", sc.home);
	assert_int_equal(mg_call(mid, "cache_setenv",
				 mg_value_build("ss", "XDG_CACHE_HOME", user_xdg()), NULL, &err), 0);
	for (int i = 0; i < 2; i++) {
		ctx = must(root_via(mid, false, &err), &err);
		assert_root_outside_home(ctx);
		finish(ctx);
	}
	finish(mid);
	assert_int_equal(root_owned(sc.home), 0);
}

/*
 * su keeps XDG_CACHE_HOME (it resets HOME). The caller's environment is
 * ours here (su to root asks root's password of anyone else).
 */
static void test_su_ignores_caller_xdg(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;

	NEED_ROOT();
	setenv("XDG_CACHE_HOME", user_xdg(), 1);
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 30, .image = sc.image);
	MG_OPTS(mg_su_opts, so, .local = &lo, .username = "root");
	for (int i = 0; i < 2; i++) {
		ctx = must(mg_su(router, &so, &err), &err);
		assert_root_outside_home(ctx);
		finish(ctx);
	}
	unsetenv("XDG_CACHE_HOME");
	assert_int_equal(root_owned(sc.home), 0);
}

/* --- (b) the race ------------------------------------------------------- */

struct race {
	char cache[160];	/* home/.cache: the user's */
	char real[192];		/* home/.cache/mitogen: where root would cache */
	char evil[192];		/* home/.cache/evil: the user's stand-in */
	char planted[320];	/* evil/<sha256 of the image> */
	char script[512];	/* what the planted file says */
	int ready;		/* write end: "R" once planted and looping */
	int stop;		/* read end: readable (EOF) when we want it to stop */
	int report;		/* write end: "tries swaps" at the end */
	int ours[3];		/* the test's ends, closed in the user's process */
};

/*
 * Plant the file in whichever of the two directories is the user's now
 * (the other is root's), unless it is there already: root's first stage
 * may have stored the real image over it. 0, or -1 on failure.
 */
static int plant(struct race *r)
{
	const char *dirs[2] = { r->real, r->evil };
	char path[sizeof(r->planted)];
	struct stat st;
	int fd;

	for (int i = 0; i < 2; i++) {
		if (stat(dirs[i], &st) < 0 || st.st_uid != getuid())
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirs[i], strrchr(r->planted, '/') + 1);
		if (lstat(path, &st) == 0 && st.st_uid == getuid())
			continue;
		unlink(path);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
		if (fd < 0 || write(fd, r->script, strlen(r->script)) != (ssize_t)strlen(r->script) ||
		    close(fd) < 0)
			return -1;
	}
	return 0;
}

/* The user, first: their cache directory and the planted file. */
static void plant_first(void *arg)
{
	struct race *r = arg;

	if (mkdir(r->cache, 0755) < 0 || mkdir(r->evil, 0755) < 0 || plant(r) < 0)
		_exit(1);
}

/*
 * The user, then: swap the directory root caches in with the one holding
 * the planted file, as fast as possible, until told to stop; re-plant
 * whenever root's first stage stored the real image over it.
 */
static void race_user(void *arg)
{
	struct race *r = arg;
	struct pollfd p = { .fd = r->stop, .events = POLLIN };
	unsigned long tries = 0, swaps = 0;
	char msg[64];
	int n;

	for (int i = 0; i < 3; i++)
		close(r->ours[i]);	/* else the stop pipe never reads EOF */
	if (write(r->ready, "R", 1) != 1)
		_exit(2);
	for (;;) {
		if (renameat2(AT_FDCWD, r->real, AT_FDCWD, r->evil, RENAME_EXCHANGE) == 0)
			swaps++;
		else
			sched_yield();	/* nothing to swap yet: let root run */
		if (++tries % 64 == 0 && plant(r) < 0)
			_exit(2);
		if (tries % 256 == 0 && poll(&p, 1, 0) != 0)
			break;
	}
	n = snprintf(msg, sizeof(msg), "%lu %lu", tries, swaps);
	if (write(r->report, msg, (size_t)n) != n)
		_exit(3);
}

/*
 * The user (mgsudo) has a cache directory and a file named like the image
 * in a directory of theirs; root contexts are started through `sudo -H -E`
 * from the user's context (XDG_CACHE_HOME in the user's home): once with
 * no attack (what root did with that cache before), then RACE_ATTEMPTS
 * times (bounded, whatever the timing) while the user swaps directories
 * between the first stage's checks and its exec. The planted file never
 * runs (it would write its uid into marks/ran), and root owns nothing in
 * the user's home.
 */
static void test_race_swapped_directory(void **state)
{
	static struct race r;
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;
	char ran[160], buf[64] = "", uid[32] = "";
	int ready[2], stop[2], report[2], started = 0, attempts = 0;
	bool planted_ran;
	ssize_t n;
	FILE *f;

	NEED_ROOT();
	snprintf(r.cache, sizeof(r.cache), "%s", user_xdg());
	snprintf(r.real, sizeof(r.real), "%s/mitogen", r.cache);
	snprintf(r.evil, sizeof(r.evil), "%s/evil", r.cache);
	snprintf(r.planted, sizeof(r.planted), "%s/%s", r.evil, sc.sha);
	snprintf(ran, sizeof(ran), "%s/ran", sc.marks);
	snprintf(r.script, sizeof(r.script), "#!/bin/sh\nid -u >>%s\nexit 1\n", ran);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
	assert_int_equal(pipe2(report, O_CLOEXEC), 0);
	r.ready = ready[1];
	r.stop = stop[0];
	r.report = report[1];
	r.ours[0] = ready[0];
	r.ours[1] = stop[1];
	r.ours[2] = report[0];

	mid = calling_user("XDG_CACHE_HOME", user_xdg());
	assert_int_equal(reap(as_user(sc.uid, sc.gid, plant_first, &r)), 0);
	ctx = must(root_via(mid, true, &err), &err);
	finish(ctx);
	sc.racer = as_user(sc.uid, sc.gid, race_user, &r);
	sc.stop = stop[1];
	close(ready[1]);
	close(stop[0]);
	close(report[1]);
	/* Hand-off: planted and swapping (EOF here: it failed). */
	assert_int_equal(read(ready[0], buf, 1), 1);

	for (attempts = 1; attempts <= RACE_ATTEMPTS; attempts++) {
		ctx = root_via(mid, true, &err);
		if (ctx) {
			started++;
			assert_int_equal(call_int(ctx, "mg.getuid"), 0);
			finish(ctx);
		} else {
			fprintf(stderr, "# attempt %d: %s\n", attempts, err.message);
		}
		if (access(ran, F_OK) == 0)
			break;
	}
	close(sc.stop);
	sc.stop = -1;
	n = read(report[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	assert_int_equal(reap(sc.racer), 0);
	sc.racer = 0;
	close(ready[0]);
	close(report[0]);
	finish(mid);
	fprintf(stderr, "# %d root starts (%d started); the user tried/swapped: %s\n",
		attempts > RACE_ATTEMPTS ? RACE_ATTEMPTS : attempts, started, buf);
	f = fopen(ran, "r");
	planted_ran = f != NULL;
	if (f) {
		if (!fgets(uid, sizeof(uid), f))
			uid[0] = '\0';
		fclose(f);
		fprintf(stderr, "# the planted file ran as uid %s at attempt %d\n",
			strtok(uid, "\n") ? uid : "?", attempts);
	}
	assert_false(planted_ran);
	assert_int_equal(root_owned(sc.home), 0);
}

/* --- (c) every candidate taken by another user --------------------------- */

struct plant {
	char dirs[3][64];	/* /dev/shm, /var/tmp, /tmp: mitogen-<uid> */
	char link_to[160];	/* the symlink's target: a directory of the target's */
};

/* Another user (mgtest): a 0700 directory, a symlink to a directory of the
 * target user's, and a world-writable directory. */
static void plant_user(void *arg)
{
	struct plant *p = arg;

	if (mkdir(p->dirs[0], 0700) < 0 || symlink(p->link_to, p->dirs[1]) < 0 ||
	    mkdir(p->dirs[2], 0777) < 0 || chmod(p->dirs[2], 0777) < 0)
		_exit(1);
}

/* Entries named "mitogen-<uid>.*" (a private directory) in dir. */
static int privates_in(const char *dir, uid_t uid)
{
	char prefix[32];
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	snprintf(prefix, sizeof(prefix), "mitogen-%u.", (unsigned)uid);
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix))) {
			fprintf(stderr, "# left behind: %s/%s\n", dir, e->d_name);
			n++;
		}
	closedir(d);
	return n;
}

/* Is dir an empty directory? */
static bool empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool empty = true;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

/*
 * mgsvc (a service user: its home does not exist) has no usable cache
 * directory: mgtest made /dev/shm/mitogen-UID (0700), /var/tmp/mitogen-UID
 * (a symlink to a directory mgsvc owns) and /tmp/mitogen-UID (0777). sudo
 * to mgsvc still starts, from a private directory that is gone by the time
 * the agent runs, and the log says why ("owned by another user").
 */
static void test_precreated_candidates(void **state)
{
	static const char *const parents[] = { "/dev/shm", "/var/tmp", "/tmp" };
	static struct plant p;
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	uid_t svc, other;
	gid_t svc_gid, other_gid;
	struct stat st;

	NEED_ROOT();
	user_ids("mgsvc", &svc, &svc_gid);
	user_ids("mgtest", &other, &other_gid);
	memset(&p, 0, sizeof(p));
	for (int i = 0; i < 3; i++) {
		snprintf(p.dirs[i], sizeof(p.dirs[i]), "%s/mitogen-%u", parents[i], (unsigned)svc);
		snprintf(sc.planted[i], sizeof(sc.planted[i]), "%s", p.dirs[i]);
		mg_test_rm_rf(p.dirs[i]);
	}
	snprintf(p.link_to, sizeof(p.link_to), "%s/svc", sc.dir);
	assert_int_equal(mkdir(p.link_to, 0700), 0);
	assert_int_equal(chown(p.link_to, svc, svc_gid), 0);
	assert_int_equal(reap(as_user(other, other_gid, plant_user, &p)), 0);

	mg_test_log_capture_start();
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 30);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgsvc");
	for (int i = 0; i < 2; i++) {
		ctx = mg_sudo(router, &so, &err);
		if (!ctx)
			mg_test_log_print();
		ctx = must(ctx, &err);
		assert_int_equal(call_int(ctx, "mg.getuid"), svc);
		/* The private directory went before the agent ran. */
		for (int j = 0; j < 3; j++)
			assert_int_equal(privates_in(parents[j], svc), 0);
		finish(ctx);
	}
	mg_test_log_print();
	assert_true(mg_test_log_contains("owned by another user", 0));
	assert_true(mg_test_log_contains("private directory", 0));
	mg_test_log_capture_stop();
	/* What mgtest made is as it was: nothing stored in it. */
	assert_int_equal(lstat(p.dirs[0], &st), 0);
	assert_int_equal(st.st_uid, other);
	assert_int_equal(lstat(p.dirs[1], &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(lstat(p.dirs[2], &st), 0);
	assert_int_equal(st.st_mode & 07777, 0777);
	for (int i = 0; i < 3; i++)
		assert_true(empty_dir(p.dirs[i]));
}

/* --- (d) a cache hit is not hashed ----------------------------------- */

/* What the other user writes over the cached image, and where. */
static struct rewrite {
	char path[160];		/* the cached image */
	char script[256];	/* "#!/bin/sh" that leaves a mark */
} rw;

/* The other user (mgtest): overwrite the start of the image, size kept. */
static void rewrite_user(void *arg)
{
	struct rewrite *w = arg;
	int fd = open(w->path, O_WRONLY);
	size_t n = strlen(w->script);

	if (fd < 0)
		_exit(2);
	if (pwrite(fd, w->script, n, 0) != (ssize_t)n)
		_exit(3);
	close(fd);
}

/*
 * A POSIX ACL on path giving uid perm (r 4, w 2, x 1) and the owner rwx;
 * the mask is perm. 0, or -errno (no ACLs on this filesystem).
 */
static int acl_grant(const char *path, uid_t uid, unsigned perm)
{
	struct { uint16_t tag, perm; uint32_t id; } e[] = {
		{ 0x01, 7, UINT32_MAX },	/* ACL_USER_OBJ */
		{ 0x02, (uint16_t)perm, uid },	/* ACL_USER */
		{ 0x04, 0, UINT32_MAX },	/* ACL_GROUP_OBJ */
		{ 0x10, (uint16_t)perm, UINT32_MAX },	/* ACL_MASK */
		{ 0x20, 0, UINT32_MAX },	/* ACL_OTHER */
	};
	uint8_t buf[4 + sizeof(e)];
	uint32_t version = 2;

	memcpy(buf, &version, 4);
	memcpy(buf + 4, e, sizeof(e));
	return setxattr(path, "system.posix_acl_access", buf, sizeof(buf), 0) < 0 ? -errno : 0;
}

/*
 * A cache hit runs the cached image without hashing it, trusting that only
 * its owner (the target) and root can have written it. Another user who
 * can write into it (mgtest, given write by the mode's group or other
 * bits, or by an ACL entry with the directory searchable by an ACL too)
 * overwrites its start with a script; the next sudo to mgsvc must not run
 * it: the image is sent again and replaces it.
 */
static void test_writable_image(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char dir[64], marker[160];
	uid_t svc, other;
	gid_t svc_gid, other_gid;
	struct stat st;
	int acl = 0;

	NEED_ROOT();
	user_ids("mgsvc", &svc, &svc_gid);
	user_ids("mgtest", &other, &other_gid);
	snprintf(dir, sizeof(dir), "/dev/shm/mitogen-%u", (unsigned)svc);
	snprintf(sc.planted[0], sizeof(sc.planted[0]), "%s", dir);
	mg_test_rm_rf(dir);
	snprintf(rw.path, sizeof(rw.path), "%s/%s", dir, sc.sha);
	snprintf(marker, sizeof(marker), "%s/ran-as-mgsvc", sc.marks);
	snprintf(rw.script, sizeof(rw.script), "#!/bin/sh\ntouch %s\nexit 1\n", marker);

	MG_OPTS(mg_local_opts, lo, .connect_timeout = 30, .image = sc.image);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgsvc");
	for (int round = 0; round < 3; round++) {
		/* Stored (the first time) or put back (after an attack). */
		ctx = must(mg_sudo(router, &so, &err), &err);
		assert_int_equal(call_int(ctx, "mg.getuid"), svc);
		finish(ctx);
		assert_int_equal(access(marker, F_OK), -1);
		assert_int_equal(stat(rw.path, &st), 0);
		assert_int_equal(st.st_uid, svc);
		assert_int_equal(st.st_mode & 0777, 0700);
		if (round == 0) {
			/* group and others may write; the directory searchable */
			assert_int_equal(chmod(dir, 0711), 0);
			assert_int_equal(chmod(rw.path, 0722), 0);
			fprintf(stderr, "# mgtest writes the image: mode 0722\n");
		} else if (round == 1) {
			/* mgtest alone, by ACLs: mode 0700 for everyone else */
			acl = acl_grant(dir, other, 1);
			if (acl == 0)
				acl = acl_grant(rw.path, other, 6);
			if (acl < 0) {
				fprintf(stderr, "# no POSIX ACLs in /dev/shm (%s): not tried\n",
					strerror(-acl));
				break;
			}
			fprintf(stderr, "# mgtest writes the image: ACL user:mgtest:rw-\n");
		} else {
			break;
		}
		assert_int_equal(reap(as_user(other, other_gid, rewrite_user, &rw)), 0);
	}
	/* The last start of the loop put the image back: it runs. */
	ctx = must(mg_sudo(router, &so, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), svc);
	finish(ctx);
	assert_int_equal(access(marker, F_OK), -1);
}

int main(int argc, char **argv)
{
	int ret;

	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		CACHE_TEST(test_sudo_H_E_ignores_caller_xdg),
		CACHE_TEST(test_sudo_E_ignores_caller_home),
		CACHE_TEST(test_su_ignores_caller_xdg),
		CACHE_TEST(test_race_swapped_directory),
		CACHE_TEST(test_precreated_candidates),
		CACHE_TEST(test_writable_image),
	};
	if (getenv("MG_TEST_ONLY"))
		cmocka_set_test_filter(getenv("MG_TEST_ONLY"));
	if (fixture_up(false) < 0)
		return 1;
	ret = MG_TEST_RUN("attacks/cache", tests);
	fixture_down();
	return ret;
}
