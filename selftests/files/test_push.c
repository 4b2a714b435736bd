// SPDX-License-Identifier: MIT
/*
 * selftests/files/test_push.c — mg_files_push and mg_files_pull through
 * real local contexts (files/): a file, a tree (modes, symlinks, one out
 * of the tree, an empty directory, an empty file), 100 MiB to 8 contexts
 * in a two-level tree with each link carrying the data once, a hop killed
 * mid-transfer then resumed, a destination on a full tmpfs, pulls from
 * four contexts, colliding pull names.
 *
 * All contexts run on this host, so each is first sent into its own
 * working directory (t.chdir) and the destination is a relative path.
 *
 * Owns: a mkdtemp directory (and tmpfs mounts in it, unmounted at the
 * end), its router and contexts. Must not touch: library internals.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <nettle/sha2.h>
#include <mitogen/mitogen.h>

#include "selftests/lib/harness.h"

/* Paths here are a mkdtemp directory plus short names. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static char tmpdir[PATH_MAX];
static struct mg_router *router;

/* --- run in the children -------------------------------------------------- */

static int t_chdir(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	if (args->len != 1 || args->items[0].type != MG_STR)
		return mg_call_fail(call, EINVAL, "want a path");
	if (chdir(args->items[0].str) < 0)
		return mg_call_fail(call, errno, "chdir %s", args->items[0].str);
	return 0;
}
MG_EXPORT_AS("t.chdir", t_chdir);

/* Data bytes this context sent down to each child: [[child, bytes]...]. */
static int t_stats(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_router_stats *st = NULL;
	struct mg_value *l = mg_list();

	if (mg_router_stats(mg_call_router(call), &st) < 0)
		return mg_call_fail(call, EIO, "stats");
	for (size_t i = 0; i < st->nrows; i++) {
		const struct mg_stats_row *row = &st->rows[i];

		if (row->context_id != MG_STATS_CHANNEL || !row->channel)
			continue;
		mg_list_append(l, MG_LIST(mg_int(row->child_id),
					  mg_int((int64_t)row->dir[MG_STATS_DOWN]
							 .bytes[MG_STATS_DATA])));
	}
	mg_router_stats_free(st);
	*ret = l;
	return 0;
}
MG_EXPORT_AS("t.stats", t_stats);

/* --- helpers ------------------------------------------------------------------ */

static struct mg_context *start(struct mg_context *via, const char *dir)
{
	MG_OPTS(mg_local_opts, o, .via = via);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_local(router, &o, &err);
	char buf[1400];

	if (!c)
		fail_msg("mg_local: %s", mg_error_str(&err, buf, sizeof(buf)));
	if (dir) {
		mkdir(dir, 0755);
		if (mg_call(c, "t.chdir", MG_LIST(mg_str(dir)), NULL, &err) < 0)
			fail_msg("chdir: %s", mg_error_str(&err, buf, sizeof(buf)));
	}
	return c;
}

static void stop(struct mg_context *c)
{
	mg_context_shutdown(c, true);
	mg_context_unref(c);
}

static void path_of(char *buf, size_t n, const char *a, const char *b)
{
	snprintf(buf, n, "%s/%s", a, b);
}

/* Fill path with len pseudo-random bytes (seeded), mode. */
static void make_file(const char *path, size_t len, unsigned seed, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char *buf = malloc(1 << 20);
	uint64_t x = seed * 2654435761u + 1;

	assert_true(fd >= 0);
	assert_non_null(buf);
	while (len) {
		size_t n = len < (1 << 20) ? len : (1 << 20);

		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = (char)x;
		}
		assert_int_equal(write(fd, buf, n), (ssize_t)n);
		len -= n;
	}
	fchmod(fd, mode);
	close(fd);
	free(buf);
}

static void sha_file(const char *path, uint8_t out[32])
{
	struct sha256_ctx c;
	char buf[65536];
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	sha256_init(&c);
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		sha256_update(&c, (size_t)r, (uint8_t *)buf);
	close(fd);
	sha256_digest(&c, 32, out);
}

static void same_file(const char *a, const char *b)
{
	uint8_t x[32], y[32];
	struct stat sa, sb;

	assert_int_equal(lstat(a, &sa), 0);
	if (lstat(b, &sb) < 0)
		fail_msg("%s: %s", b, strerror(errno));
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sa.st_size, sb.st_size);
	assert_int_equal(sa.st_mode & 07777, sb.st_mode & 07777);
	sha_file(a, x);
	sha_file(b, y);
	assert_memory_equal(x, y, 32);
}

/* No ".mgpart" file left in dir (and below). */
static int count_parts_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return strstr(p + f->base, ".mgpart") ? 1 : 0;
}

static bool has_parts(const char *dir)
{
	return nftw(dir, count_parts_cb, 16, FTW_PHYS) == 1;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static void expect_ok(const struct mg_files_result *res, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (res[i].error)
			fail_msg("destination %zu: %s", i, res[i].message);
}

/* --- fixture -------------------------------------------------------------------- */

static int setup(void **state)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/mg-files-XXXXXX", t && *t ? t : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
	router = mg_router_new(NULL);
	assert_non_null(router);
	return 0;
}

static int teardown(void **state)
{
	mg_test_cleanup();
	mg_router_unref(router);
	router = NULL;
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	rmdir(tmpdir);
	return 0;
}

static void umount_cb(void *dir)
{
	umount2(dir, MNT_DETACH);
	free(dir);
}

/* A private tmpfs of size at dir; false when this machine will not. */
static bool tmpfs_at(const char *dir, const char *size)
{
	char opts[64];

	mkdir(dir, 0755);
	snprintf(opts, sizeof(opts), "size=%s,mode=0755", size);
	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return false;
	mg_test_defer(umount_cb, strdup(dir));
	return true;
}

/* --- tests ------------------------------------------------------------------------ */

static void test_push_file(void **state)
{
	char src[PATH_MAX], d1[PATH_MAX], out[PATH_MAX];
	struct mg_files_result res[1];
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c;
	struct stat st;

	path_of(src, sizeof(src), tmpdir, "src.bin");
	path_of(d1, sizeof(d1), tmpdir, "d1");
	make_file(src, 3 * 1000 * 1000 + 17, 1, 0640);
	c = start(NULL, d1);
	assert_int_equal(mg_files_push(router, src, "copy.bin", &c, 1, NULL, res, &err), 0);
	expect_ok(res, 1);
	assert_int_equal(res[0].bytes, 3 * 1000 * 1000 + 17);
	path_of(out, sizeof(out), d1, "copy.bin");
	same_file(src, out);
	/* Again: already there, nothing written. */
	assert_int_equal(mg_files_push(router, src, "copy.bin", &c, 1, NULL, res, &err), 0);
	assert_int_equal(res[0].bytes, 0);
	/* Into a directory: takes the source's name (cp). */
	mkdir(d1, 0755);
	path_of(out, sizeof(out), d1, "sub");
	mkdir(out, 0755);
	assert_int_equal(mg_files_push(router, src, "sub", &c, 1, NULL, res, &err), 0);
	path_of(out, sizeof(out), d1, "sub/src.bin");
	same_file(src, out);
	/* exact: a directory at the name is an error, and stays. */
	{
		MG_OPTS(mg_files_opts, o, .exact = true);

		assert_int_equal(mg_files_push(router, src, "sub", &c, 1, &o, res, &err), 1);
		print_message("# %s\n", res[0].message);
		assert_int_equal(res[0].error, -EISDIR);
		assert_non_null(strstr(res[0].message, "sub: is a directory"));
		path_of(out, sizeof(out), d1, "sub");
		assert_int_equal(stat(out, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
	}
	/* mode and preserve. */
	{
		MG_OPTS(mg_files_opts, o, .mode = 0604, .preserve = true);
		struct stat ss;

		assert_int_equal(mg_files_push(router, src, "m.bin", &c, 1, &o, res, &err), 0);
		path_of(out, sizeof(out), d1, "m.bin");
		assert_int_equal(stat(out, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0604);
		assert_int_equal(stat(src, &ss), 0);
		assert_int_equal(st.st_mtim.tv_sec, ss.st_mtim.tv_sec);
		assert_int_equal(st.st_mtim.tv_nsec, ss.st_mtim.tv_nsec);
	}
	/* A missing source: nothing sent, a clear error. */
	path_of(out, sizeof(out), tmpdir, "nosuch");
	assert_int_equal(mg_files_push(router, out, "x", &c, 1, NULL, res, &err), -ENOENT);
	assert_non_null(strstr(err.message, "nosuch: no such file or directory"));
	assert_false(has_parts(d1));
	stop(c);
}

/* A tree: modes, symlinks (one leaving the tree), an empty directory and
 * an empty file; to a context and to one below it. */
static void test_push_tree(void **state)
{
	char src[PATH_MAX], p[PATH_MAX], q[PATH_MAX], d1[PATH_MAX], d2[PATH_MAX], link[PATH_MAX];
	MG_OPTS(mg_files_opts, o, .recursive = true, .preserve = true);
	struct mg_files_result res[2];
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c[2];
	struct stat st;
	ssize_t n;

	path_of(src, sizeof(src), tmpdir, "tree");
	mkdir(src, 0750);
	path_of(p, sizeof(p), src, "a.txt");
	make_file(p, 70000, 2, 0600);
	path_of(p, sizeof(p), src, "sub");
	mkdir(p, 0755);
	path_of(p, sizeof(p), src, "sub/run.sh");
	make_file(p, 300000, 3, 0755);
	path_of(p, sizeof(p), src, "sub/empty.file");
	make_file(p, 0, 4, 0644);
	path_of(p, sizeof(p), src, "empty.dir");
	mkdir(p, 0700);
	path_of(p, sizeof(p), src, "in.link");
	assert_int_equal(symlink("sub/run.sh", p), 0);
	path_of(p, sizeof(p), src, "out.link");
	assert_int_equal(symlink("/etc/passwd", p), 0);
	chmod(src, 0750);

	path_of(d1, sizeof(d1), tmpdir, "t1");
	path_of(d2, sizeof(d2), tmpdir, "t2");
	c[0] = start(NULL, d1);
	c[1] = start(c[0], d2);
	assert_int_equal(mg_files_push(router, src, "copy", c, 2, &o, res, &err), 0);
	expect_ok(res, 2);
	for (int i = 0; i < 2; i++) {
		const char *d = i ? d2 : d1;

		snprintf(p, sizeof(p), "%s/copy", d);
		assert_int_equal(lstat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0750);
		snprintf(p, sizeof(p), "%s/a.txt", src);
		snprintf(q, sizeof(q), "%s/copy/a.txt", d);
		same_file(p, q);
		snprintf(p, sizeof(p), "%s/sub/run.sh", src);
		snprintf(q, sizeof(q), "%s/copy/sub/run.sh", d);
		same_file(p, q);
		snprintf(p, sizeof(p), "%s/sub/empty.file", src);
		snprintf(q, sizeof(q), "%s/copy/sub/empty.file", d);
		same_file(p, q);
		snprintf(q, sizeof(q), "%s/copy/empty.dir", d);
		assert_int_equal(lstat(q, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0700);
		/* Links as links; the one leaving the tree never followed. */
		snprintf(q, sizeof(q), "%s/copy/in.link", d);
		assert_int_equal(lstat(q, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		n = readlink(q, link, sizeof(link) - 1);
		assert_true(n > 0);
		link[n] = '\0';
		assert_string_equal(link, "sub/run.sh");
		snprintf(q, sizeof(q), "%s/copy/out.link", d);
		assert_int_equal(lstat(q, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		n = readlink(q, link, sizeof(link) - 1);
		assert_true(n > 0);
		link[n] = '\0';
		assert_string_equal(link, "/etc/passwd");
		assert_false(has_parts(d));
	}
	/* Without -r a directory is refused. */
	assert_int_equal(mg_files_push(router, src, "x", c, 1, NULL, res, &err), -EISDIR);
	stop(c[1]);
	stop(c[0]);
}

/* Data bytes ctx sent down to child id. */
static int64_t down_bytes(struct mg_context *ctx, uint32_t child)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	int64_t b = -1;

	assert_int_equal(mg_call(ctx, "t.stats", NULL, &v, &err), 0);
	for (size_t i = 0; i < v->len; i++)
		if ((uint32_t)v->items[i].items[0].i == child)
			b = v->items[i].items[1].i;
	mg_value_free(v);
	return b;
}

static int64_t master_down_bytes(uint32_t child)
{
	struct mg_router_stats *st = NULL;
	int64_t b = -1;

	assert_int_equal(mg_router_stats(router, &st), 0);
	for (size_t i = 0; i < st->nrows; i++)
		if (st->rows[i].context_id == MG_STATS_CHANNEL && st->rows[i].channel &&
		    st->rows[i].child_id == child)
			b = (int64_t)st->rows[i].dir[MG_STATS_DOWN].bytes[MG_STATS_DATA];
	mg_router_stats_free(st);
	return b;
}

/* 100 MiB to 8 contexts, two relays of four: each link carries it once. */
static void test_push_tree_of_8(void **state)
{
	const size_t size = 100u << 20;
	char src[PATH_MAX], d[PATH_MAX], out[PATH_MAX], fs[PATH_MAX];
	struct mg_files_result res[8];
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *relay[2], *leaf[8];
	double t0;

	path_of(fs, sizeof(fs), tmpdir, "fs");
	if (!tmpfs_at(fs, "1200m"))
		print_message("# no tmpfs here (%s): on disk\n", strerror(errno));
	path_of(src, sizeof(src), fs, "big.bin");
	make_file(src, size, 5, 0644);
	for (int r = 0; r < 2; r++) {
		relay[r] = start(NULL, NULL);
		for (int k = 0; k < 4; k++) {
			snprintf(d, sizeof(d), "%s/leaf%d", fs, r * 4 + k);
			leaf[r * 4 + k] = start(relay[r], d);
		}
	}
	t0 = mg_test_now();
	assert_int_equal(mg_files_push(router, src, "big.bin", leaf, 8, NULL, res, &err), 0);
	print_message("# 100 MiB to 8 contexts: %.2f s\n", mg_test_now() - t0);
	expect_ok(res, 8);
	for (int i = 0; i < 8; i++) {
		snprintf(out, sizeof(out), "%s/leaf%d/big.bin", fs, i);
		same_file(src, out);
		assert_int_equal(res[i].bytes, size);
	}
	/* Each link carried the data once (plus framing): not 4 times. */
	for (int r = 0; r < 2; r++) {
		int64_t b = master_down_bytes(mg_context_remote_id(relay[r]));

		print_message("# master -> relay %d: %lld data bytes\n", r, (long long)b);
		assert_true(b >= (int64_t)size);
		assert_true(b < (int64_t)size * 11 / 10);
		for (int k = 0; k < 4; k++) {
			b = down_bytes(relay[r], mg_context_remote_id(leaf[r * 4 + k]));
			print_message("# relay %d -> leaf %d: %lld data bytes\n", r, k, (long long)b);
			assert_true(b >= (int64_t)size);
			assert_true(b < (int64_t)size * 11 / 10);
		}
	}
	for (int i = 0; i < 8; i++)
		stop(leaf[i]);
	stop(relay[0]);
	stop(relay[1]);
}

struct killer {
	struct mg_context *victim;
	uint64_t at;
	bool done;
};

/*
 * Below the mark, hold the pushing thread for PACE_S at every progress
 * report: reports come at least every 0.1 s, and a pushing thread held
 * that long reports again at its next turn, after sending at most one
 * window more. So the mark is seen with at most a window past it, never
 * after the end, however fast the machine copies (a 48 MiB push through
 * a relay took less than the 0.1 s between two reports once chunks were
 * no longer copied at the relay, and test_resume found it done).
 */
#define PACE_S 0.1

static void pace(void)
{
	struct timespec ts = { 0, (long)(PACE_S * 1e9) };

	nanosleep(&ts, NULL);
}

static void kill_at(const struct mg_files_progress *p, void *ud)
{
	struct killer *k = ud;

	if (!k->done && p->bytes >= k->at) {
		k->done = true;
		kill(mg_context_pid(k->victim), SIGKILL);
	} else if (!k->done) {
		pace();
	}
}

/* A hop killed mid-transfer: a clean error, no file at the name; the next
 * push sends only what is missing. */
static void test_resume(void **state)
{
	const size_t size = 48u << 20;
	char src[PATH_MAX], d[PATH_MAX], out[PATH_MAX];
	struct killer k = { .at = 16u << 20 };
	MG_OPTS(mg_files_opts, o, .window = 2u << 20, .progress = kill_at, .progress_data = &k);
	struct mg_files_result res[1];
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *hop, *dest;
	struct stat st;
	int64_t b;

	path_of(src, sizeof(src), tmpdir, "r.bin");
	make_file(src, size, 6, 0644);
	path_of(d, sizeof(d), tmpdir, "r");
	hop = start(NULL, NULL);
	dest = start(hop, d);
	k.victim = hop;
	assert_int_equal(mg_files_push(router, src, "r.bin", &dest, 1, &o, res, &err), 1);
	print_message("# interrupted: %s\n", res[0].message);
	assert_true(k.done);
	assert_int_equal(res[0].error, -EPIPE);
	path_of(out, sizeof(out), d, "r.bin");
	assert_int_equal(lstat(out, &st), -1);
	assert_true(has_parts(d));
	mg_context_unref(dest);
	mg_context_unref(hop);

	/* Again, through a new hop: only the rest crosses the links. */
	hop = start(NULL, NULL);
	dest = start(hop, d);
	assert_int_equal(mg_files_push(router, src, "r.bin", &dest, 1, NULL, res, &err), 0);
	expect_ok(res, 1);
	same_file(src, out);
	b = master_down_bytes(mg_context_remote_id(hop));
	print_message("# resumed: %llu bytes written, %lld data bytes on the link\n",
		      (unsigned long long)res[0].bytes, (long long)b);
	assert_true(res[0].bytes <= size - (8u << 20));
	assert_true(b < (int64_t)(size - (8u << 20)));
	assert_false(has_parts(d));
	stop(dest);
	stop(hop);
}

/* One destination stopped (SIGSTOP) mid-push, the other not: the other
 * gets the whole file while the first is stopped (each has its own
 * window); once let go, the stopped one finishes too. */
struct stopper {
	struct mg_context *victim;
	char fast_out[PATH_MAX];
	uint64_t at;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopped, stalled;
};

static void stop_at(const struct mg_files_progress *p, void *ud)
{
	struct stopper *st = ud;

	bool below;

	pthread_mutex_lock(&st->lock);
	if (!st->stopped && p->bytes >= st->at) {
		kill(mg_context_pid(st->victim), SIGSTOP);
		st->stopped = true;
		pthread_cond_signal(&st->cond);
	}
	below = !st->stopped;
	pthread_mutex_unlock(&st->lock);
	if (below)
		pace();	/* the mark is seen before the end (kill_at) */
}

/* Lets the victim go once the fast destination's file is at its name;
 * after 120 s without it (the push stalled on the stopped one), lets it
 * go anyway and says so. */
static void *stopper_watch(void *arg)
{
	struct stopper *st = arg;
	struct stat sb;
	double t0;

	pthread_mutex_lock(&st->lock);
	while (!st->stopped)
		pthread_cond_wait(&st->cond, &st->lock);
	pthread_mutex_unlock(&st->lock);
	t0 = mg_test_now();
	while (lstat(st->fast_out, &sb) < 0) {
		if (mg_test_now() - t0 > 120) {
			st->stalled = true;
			break;
		}
		usleep(20000);
	}
	kill(mg_context_pid(st->victim), SIGCONT);
	return NULL;
}

static void test_slow_destination(void **state)
{
	const size_t size = 12u << 20;
	char src[PATH_MAX], d[2][PATH_MAX], out[PATH_MAX];
	struct stopper st = { .at = 3u << 20, .lock = PTHREAD_MUTEX_INITIALIZER,
			      .cond = PTHREAD_COND_INITIALIZER };
	MG_OPTS(mg_files_opts, o, .window = 1u << 20, .progress = stop_at, .progress_data = &st);
	struct mg_files_result res[2];
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c[2];
	pthread_t th;
	int ret;

	path_of(src, sizeof(src), tmpdir, "slow.bin");
	make_file(src, size, 9, 0644);
	for (int i = 0; i < 2; i++) {
		snprintf(d[i], sizeof(d[i]), "%s/slow%d", tmpdir, i);
		c[i] = start(NULL, d[i]);
	}
	st.victim = c[0];
	path_of(st.fast_out, sizeof(st.fast_out), d[1], "slow.bin");
	assert_int_equal(pthread_create(&th, NULL, stopper_watch, &st), 0);
	ret = mg_files_push(router, src, "slow.bin", c, 2, &o, res, &err);
	pthread_join(th, NULL);
	assert_true(st.stopped);
	if (st.stalled)
		fail_msg("the push waited on the stopped destination: the other had not its "
			 "file 120 s after the stop (push: %d; %s; %s)", ret, res[0].message,
			 res[1].message);
	if (ret)
		fail_msg("push: %d: the stopped one: %s; the other: %s", ret, res[0].message,
			 res[1].message);
	expect_ok(res, 2);
	for (int i = 0; i < 2; i++) {
		path_of(out, sizeof(out), d[i], "slow.bin");
		same_file(src, out);
	}
	stop(c[0]);
	stop(c[1]);
}

/* A full small tmpfs: "no space" there, the partial file removed; the
 * other destination gets its copy. */
static void test_no_space(void **state)
{
	char src[PATH_MAX], full[PATH_MAX], ok[PATH_MAX], out[PATH_MAX];
	struct mg_files_result res[2];
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c[2];

	path_of(full, sizeof(full), tmpdir, "small");
	if (!tmpfs_at(full, "1m"))
		skip();
	path_of(src, sizeof(src), tmpdir, "4m.bin");
	make_file(src, 4u << 20, 7, 0644);
	path_of(ok, sizeof(ok), tmpdir, "roomy");
	c[0] = start(NULL, full);
	c[1] = start(NULL, ok);
	assert_int_equal(mg_files_push(router, src, "f.bin", c, 2, NULL, res, &err), 1);
	print_message("# %s\n", res[0].message);
	assert_int_equal(res[0].error, -ENOSPC);
	assert_non_null(strstr(res[0].message, "no space left on device"));
	assert_int_equal(res[1].error, 0);
	path_of(out, sizeof(out), ok, "f.bin");
	same_file(src, out);
	path_of(out, sizeof(out), full, "f.bin");
	assert_int_equal(access(out, F_OK), -1);
	assert_false(has_parts(full));
	stop(c[0]);
	stop(c[1]);
}

/* Pull from four contexts (one without the file) into DESTDIR/<name>/. */
static void test_pull(void **state)
{
	char d[4][PATH_MAX], p[PATH_MAX], q[PATH_MAX], destdir[PATH_MAX];
	const char *names[4] = { "web1", "web2", "ssh:web3", "web4" };
	struct mg_files_result res[4];
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c[4];

	path_of(destdir, sizeof(destdir), tmpdir, "fetched");
	mkdir(destdir, 0755);
	for (int i = 0; i < 4; i++) {
		snprintf(d[i], sizeof(d[i]), "%s/src%d", tmpdir, i);
		c[i] = start(i == 3 ? NULL : NULL, d[i]);
		if (i != 2) {
			snprintf(p, sizeof(p), "%s/app.log", d[i]);
			make_file(p, 100000u * (unsigned)(i + 1), 10 + (unsigned)i, 0640);
		}
	}
	names[2] = "web3";
	assert_int_equal(mg_files_pull(router, "app.log", destdir, c, names, 4, NULL, res, &err),
			 1);
	for (int i = 0; i < 4; i++) {
		if (i == 2) {
			print_message("# %s\n", res[i].message);
			assert_int_equal(res[i].error, -ENOENT);
			assert_non_null(strstr(res[i].message, "app.log: no such file"));
			continue;
		}
		if (res[i].error)
			fail_msg("%s: %s", names[i], res[i].message);
		snprintf(p, sizeof(p), "%s/app.log", d[i]);
		snprintf(q, sizeof(q), "%s/%s/app.log", destdir, names[i]);
		same_file(p, q);
	}
	assert_false(has_parts(destdir));
	/* Colliding names: refused before anything is asked. */
	names[1] = "web1";
	assert_int_equal(mg_files_pull(router, "app.log", destdir, c, names, 4, NULL, res, &err),
			 -EEXIST);
	print_message("# %s\n", err.message);
	assert_non_null(strstr(err.message, "targets 1 and 2"));
	for (int i = 0; i < 4; i++)
		stop(c[i]);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_push_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_tree_of_8, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_destination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pull, setup, teardown),
	};
	return MG_TEST_RUN("files/push", tests);
}
