// SPDX-License-Identifier: MIT
/*
 * selftests/transports/test_ssh.c — mg_ssh() against a real sshd on
 * 127.0.0.1 (selftests/fixtures/sshd.sh): calls, passwords, keys, host
 * keys, refused and silent ports, the image cache, architecture checks,
 * and losing ssh mid-call.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <dirent.h>
#include <sys/stat.h>

#include "core/hooks.h"
#include "selftests/lib/probes.h"
#include "selftests/transports/fixture.h"
#include "transports/transport.h"

/* Options for user@127.0.0.1 with the fixture's known_hosts. */
struct ssh_case {
	const char *args[8];
	struct mg_local_opts lo;
	struct mg_ssh_opts o;
};

static void ssh_case_init(struct ssh_case *c, const char *user, bool key)
{
	memset(c, 0, sizeof(*c));
	c->args[0] = "-o";
	c->args[1] = fx.known;
	c->args[2] = "-o";
	c->args[3] = "GlobalKnownHostsFile=/dev/null";
	c->lo.sz = sizeof(c->lo);
	c->lo.connect_timeout = 20;
	c->o.sz = sizeof(c->o);
	c->o.local = &c->lo;
	c->o.hostname = "127.0.0.1";
	c->o.port = fx.port;
	c->o.username = user;
	c->o.identity_file = key ? fx.key : NULL;
	c->o.ssh_args = c->args;
}

/*
 * The router's own counters cover an ssh channel (a byte stream the
 * kernel does not filter): at least calls calls went down, and their
 * replies came up as replies.
 */
static void ssh_counted(struct mg_context *ctx, uint64_t calls)
{
	struct mg_router_stats *st = NULL;
	uint32_t id = mg_context_remote_id(ctx);
	bool found = false;

	assert_int_equal(acct_snapshot(router, &st), 0);
	for (size_t i = 0; i < st->nrows; i++) {
		const struct mg_stats_row *row = &st->rows[i];

		if (row->child_id != id || row->context_id != MG_STATS_CHANNEL)
			continue;
		found = true;
		assert_true(row->dir[MG_STATS_DOWN].msgs[MG_STATS_CALL] >= calls);
		assert_true(row->dir[MG_STATS_UP].msgs[MG_STATS_REPLY] >= calls);
		assert_true(row->dir[MG_STATS_DOWN].bytes[MG_STATS_CALL] > 0);
	}
	mg_router_stats_free(st);
	assert_true(found);
}

static void test_ssh_call(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct ssh_case c;
	struct mg_context *ctx;

	NEED_SSHD();
	ssh_case_init(&c, "root", true);
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), 0);
	/* A real remote process: not us, not ssh. */
	assert_int_not_equal(call_int(ctx, "mg.getpid"), getpid());
	assert_int_not_equal(call_int(ctx, "mg.getpid"), mg_context_pid(ctx));
	assert_true(mg_context_is_privileged(ctx));	/* root on the other side */
	ssh_counted(ctx, 3);
	finish(ctx);
}


static struct mg_context *ssh_expect_fail(struct ssh_case *c, enum mg_error_kind kind,
					  const char *needle, double *secs)
{
	struct mg_error err = MG_ERROR_INIT;
	double t0 = mg_test_now();
	struct mg_context *ctx = mg_ssh(router, &c->o, &err);

	if (secs)
		*secs = mg_test_now() - t0;
	if (ctx) {
		fprintf(stderr, "# expected %s, got a context\n", mg_error_kind_name(kind));
		finish(ctx);
		fail();
	}
	fprintf(stderr, "# %s: %s\n", mg_error_kind_name(err.kind), err.message);
	assert_int_equal(err.kind, kind);
	if (needle && !strstr(err.message, needle)) {
		fprintf(stderr, "# '%s' not in the message\n", needle);
		fail();
	}
	return NULL;
}

static void test_ssh_password(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct ssh_case c;
	struct mg_context *ctx;

	NEED_SSHD();
	ssh_case_init(&c, "mgtest", false);
	c.args[4] = "-o";
	c.args[5] = "PubkeyAuthentication=no";
	c.o.password = "mgtest-pw";
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgtest"));
	assert_false(mg_context_is_privileged(ctx));
	finish(ctx);

	/* Wrong, then none: PasswordError, and the password is not in it. */
	c.o.password = "not-the-password";
	ssh_expect_fail(&c, MG_ERR_PASSWORD, "password", NULL);
	assert_null(strstr(err.message, "not-the-password"));
	c.o.password = NULL;
	ssh_expect_fail(&c, MG_ERR_PASSWORD, NULL, NULL);
}

static void keygen(const char *path)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -f %s %s.pub; ssh-keygen -q -t ed25519 -N '' -f %s", path,
		 path, path);
	assert_int_equal(system(cmd), 0);
}

static void test_ssh_identity_file(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char other[128];
	struct ssh_case c;
	struct mg_context *ctx;

	NEED_SSHD();
	ssh_case_init(&c, "mgtest", true);
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgtest"));
	finish(ctx);

	/* Another key, not authorized: refused, though the good key sits in
	 * the fixture directory (only identity_file is offered). */
	snprintf(other, sizeof(other), "%s/other_key", fx.dir);
	keygen(other);
	c.o.identity_file = other;
	ssh_expect_fail(&c, MG_ERR_PASSWORD, NULL, NULL);
}

static void test_ssh_host_keys(void **state)
{
	char known[128], opt[160], key[128], cmd[1024];
	struct mg_error err = MG_ERROR_INIT;
	struct ssh_case c;
	struct mg_context *ctx;
	struct stat st;

	NEED_SSHD();
	ssh_case_init(&c, "root", true);
	snprintf(known, sizeof(known), "%s/changed_known_hosts", fx.dir);
	snprintf(key, sizeof(key), "%s/impostor", fx.dir);
	keygen(key);
	/* A known_hosts that says the host has another key. */
	snprintf(cmd, sizeof(cmd), "printf '[127.0.0.1]:%d %%s\\n' \"$(cut -d' ' -f1,2 %s.pub)\" > %s",
		 fx.port, key, known);
	assert_int_equal(system(cmd), 0);
	snprintf(opt, sizeof(opt), "UserKnownHostsFile=%s", known);
	c.args[1] = opt;
	ssh_expect_fail(&c, MG_ERR_HOSTKEY, NULL, NULL);
	c.o.check_host_keys = MG_HOST_KEYS_ACCEPT_NEW;	/* changed: still refused */
	ssh_expect_fail(&c, MG_ERR_HOSTKEY, NULL, NULL);

	/* Unknown under enforcement: refused; accept-new: added. */
	snprintf(cmd, sizeof(cmd), ": > %s", known);
	assert_int_equal(system(cmd), 0);
	c.o.check_host_keys = MG_HOST_KEYS_ENFORCE;
	ssh_expect_fail(&c, MG_ERR_HOSTKEY, NULL, NULL);
	c.o.check_host_keys = MG_HOST_KEYS_ACCEPT_NEW;
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	finish(ctx);
	assert_int_equal(stat(known, &st), 0);
	assert_true(st.st_size > 0);

	/* ignore: a wrong key does not matter. */
	c.args[1] = "UserKnownHostsFile=/dev/null";
	c.o.check_host_keys = MG_HOST_KEYS_IGNORE;
	ctx = mg_ssh(router, &c.o, &err);
	assert_non_null(ctx);
	finish(ctx);
}

/* A port nobody listens on (bound, then closed). */
static int dead_port(int *keep_fd, bool listen_it)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	if (listen_it) {
		assert_int_equal(listen(fd, 16), 0);
		*keep_fd = fd;
	} else {
		close(fd);
	}
	return ntohs(sa.sin_port);
}

static void test_ssh_refused(void **state)
{
	struct ssh_case c;
	double secs;

	NEED_SSHD();
	ssh_case_init(&c, "root", true);
	c.o.port = dead_port(NULL, false);
	/* Fails at once, not at the connect timeout: a long one, and a
	 * bound far below it (never a speed). */
	c.lo.connect_timeout = 600;
	ssh_expect_fail(&c, MG_ERR_STREAM, "Connection refused", &secs);
	assert_true(secs < 300);
	/* An unknown host: ssh's own words. */
	ssh_case_init(&c, "root", true);
	c.o.hostname = "no-such-host.invalid";
	ssh_expect_fail(&c, MG_ERR_STREAM, "no-such-host.invalid", NULL);
}

static void test_ssh_connect_timeout(void **state)
{
	struct ssh_case c;
	double secs;
	char fake[160];
	int fd = -1;

	NEED_SSHD();
	ssh_case_init(&c, "root", true);
	/* Accepts TCP (backlog) but never says a word. */
	c.o.port = dead_port(&fd, true);
	c.lo.connect_timeout = 1.5;
	ssh_expect_fail(&c, MG_ERR_STREAM, "connect timeout", &secs);
	fprintf(stderr, "# gave up after %.2f s\n", secs);
	/* No sooner than the timeout; the upper bound only a hang reaches. */
	assert_true(secs >= 1.5 && secs < 120);
	close(fd);

	/* ssh's own ConnectTimeout (ours, rounded up) can beat our deadline
	 * by a hair on a busy machine: what it then says is the same connect
	 * timeout and must be called so, not "ssh exited". (An ssh that
	 * says what OpenSSH says then: a real one cannot be made to lose
	 * the race on purpose.) */
	snprintf(fake, sizeof(fake), "%s/fake-ssh-timeout", fx.dir);
	mg_test_sh("printf '#!/bin/sh\\necho \"Connection timed out during banner exchange\" >&2\\n"
		   "exit 255\\n' > %s && chmod 755 %s", fake, fake);
	ssh_case_init(&c, "root", true);
	c.o.ssh_path = fake;
	ssh_expect_fail(&c, MG_ERR_STREAM, "connect timeout: ssh gave up waiting for the host", NULL);
}

/* Bytes the ssh process of ctx has read (its stdin: what we sent). */
static long ssh_rchar(struct mg_context *ctx)
{
	char path[64], line[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/io", (int)mg_context_pid(ctx));
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "rchar: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/*
 * The image a first stage receives: this program without its debug
 * sections (image_strip_debug), its size and name (SHA-256).
 */
static long image_size;
static char image_name[65];

static void image_load_self(void)
{
	FILE *f = fopen("/proc/self/exe", "rb");
	struct stat st;
	uint8_t *d;
	size_t n, len;

	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	d = malloc((size_t)st.st_size);
	assert_non_null(d);
	assert_int_equal(fread(d, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	len = image_strip_debug(d, (size_t)st.st_size);
	/* Built with -g: the image ships without it, and strips to itself. */
	assert_true(len < (size_t)st.st_size);
	n = image_strip_debug(d, len);
	assert_int_equal(n, len);
	image_size = (long)len;
	sha256_hex(d, len, image_name);
	free(d);
}

static void image_sha(char *sha)
{
	if (!image_size)
		image_load_self();
	memcpy(sha, image_name, 65);
}

static long exe_size(void)
{
	char sha[65];

	image_sha(sha);
	return image_size;
}

/*
 * Plant a file as the cached image of mgcache's ssh context: owner, mode,
 * size (bytes, padded) and a script that leaves a mark when it runs.
 */
static void plant(const char *path, const char *owner, unsigned mode, long size,
		  const char *marker)
{
	mg_test_sh("printf '#!/bin/sh\\ntouch %s\\nexit 1\\n' > %s && truncate -s %ld %s && "
		   "chown %s %s && chmod %o %s", marker, path, size, path, owner, path, mode, path);
}

static void test_ssh_cache(void **state)
{
	static const struct {
		const char *owner;
		unsigned mode;
		long extra;	/* bytes more than the image */
		const char *what;
	} others[] = {
		{ "nobody", 0755, 0, "owned by another user" },
		{ "mgcache", 0702, 0, "writable by others" },
		{ "mgcache", 0720, 0, "writable by its group" },
		{ "mgcache", 0700, -1, "of another size (a cut-short write)" },
	};
	struct mg_error err = MG_ERROR_INIT;
	struct ssh_case c;
	struct mg_context *ctx;
	char sha[65], path[160], marker[128];
	long first, second;
	struct stat st;

	NEED_SSHD();
	image_sha(sha);
	assert_int_equal(system("rm -rf ~mgcache/.cache/mitogen"), 0);
	ssh_case_init(&c, "mgcache", true);

	ctx = mg_ssh(router, &c.o, &err);
	assert_non_null(ctx);
	first = ssh_rchar(ctx);
	finish(ctx);
	ctx = mg_ssh(router, &c.o, &err);
	assert_non_null(ctx);
	second = ssh_rchar(ctx);
	finish(ctx);
	fprintf(stderr, "# ssh read %ld bytes from us, then %ld (image %ld)\n", first, second,
		exe_size());
	/* The first carried the (compressed) image, the second did not. */
	assert_true(first > exe_size() / 4);
	assert_true(second < 64 * 1024);
	/* What is cached is the image without debug information. */
	snprintf(path, sizeof(path), "/home/mgcache/.cache/mitogen/%s", sha);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, exe_size());

	/*
	 * A cache hit is not hashed: the user's own image, in the user's own
	 * directory, is trusted (docs/firststage.md). So a file of the right
	 * name that anyone else could have written (another owner, writable
	 * by group or others), or of the wrong size, is neither executed nor
	 * kept: the image is sent again and replaces it.
	 */
	/* Where a planted file that runs (as mgcache) leaves its mark. */
	mg_test_sh("mkdir -p %s/marks && chmod 01777 %s/marks", fx.dir, fx.dir);
	snprintf(marker, sizeof(marker), "%s/marks/planted-ran", fx.dir);
	mg_test_sh("rm -f %s", marker);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		fprintf(stderr, "# planted: %s\n", others[i].what);
		plant(path, others[i].owner, others[i].mode, exe_size() + others[i].extra, marker);
		ctx = must(mg_ssh(router, &c.o, &err), &err);
		assert_true(ssh_rchar(ctx) > exe_size() / 4);	/* sent again */
		assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgcache"));
		finish(ctx);
		assert_int_equal(access(marker, F_OK), -1);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, exe_size());
		assert_int_equal(st.st_uid, user_uid("mgcache"));
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	assert_int_equal(stat("/home/mgcache/.cache/mitogen", &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	/* The same in a directory others can write to: not run. */
	plant(path, "mgcache", 0700, exe_size(), marker);
	mg_test_sh("chmod 0777 /home/mgcache/.cache/mitogen");
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	finish(ctx);
	assert_int_equal(access(marker, F_OK), -1);

	/* The user's own file, the image's size, only the user could write:
	 * what the decision trusts, it runs unhashed (here: fails the start). */
	mg_test_sh("chmod 0700 /home/mgcache/.cache/mitogen");
	plant(path, "mgcache", 0700, exe_size(), marker);
	ctx = mg_ssh(router, &c.o, &err);
	mg_test_sh("rm -f %s", path);
	if (ctx)
		finish(ctx);
	assert_null(ctx);
	fprintf(stderr, "# own file: %s\n", err.message);
	assert_int_equal(access(marker, F_OK), 0);
	mg_test_sh("rm -f %s", marker);
}

/* Run a shell command line (printf-style); the test fails if it does. */
/* A name like an image's: 64 hex digits, from a seed. */
static void fake_sha(char *out, unsigned seed)
{
	for (int i = 0; i < 64; i++)
		out[i] = "0123456789abcdef"[(seed * 2654435761u + (unsigned)i * 40503u) >> 7 & 15];
	out[64] = '\0';
}

/* Seconds since mtime of path (not following a symlink), or -1. */
static long age_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return -1;
	return (long)(time(NULL) - st.st_mtime);
}

/*
 * When a new image arrives, the first stage prunes the directory it stores
 * into: of our images (64 hex digits, regular files owned by the user) it
 * keeps the 4 most recently used (the new one included) and any used in
 * the last hour, and removes stale leftovers of interrupted transfers;
 * everything else (other names, other owners, symlinks, directories) stays.
 * A cache hit refreshes the image's mtime (its "last used"). User mgprune:
 * no other test (nor another worktree's run at the same time) uses its
 * cache.
 */
static void test_ssh_cache_prune(void **state)
{
	static const struct {
		unsigned seed;
		long minutes;		/* age */
		bool kept;
	} imgs[] = {
		{ 1, 5, true },		/* the newest 3 others: kept */
		{ 2, 10, true },
		{ 3, 20, true },
		{ 4, 30, true },	/* 4th, but used in the last hour: kept */
		{ 5, 2 * 1440, false },	/* beyond the newest 3, stale: removed */
		{ 6, 30 * 1440, false },
	};
	const char *dir = "/home/mgprune/.cache/mitogen";
	struct mg_error err = MG_ERROR_INIT;
	char sha[65], name[65], path[256], other[256];
	struct ssh_case c;
	struct mg_context *ctx;

	NEED_SSHD();
	image_sha(sha);
	mg_test_sh("rm -rf %s", dir);
	ssh_case_init(&c, "mgprune", true);
	finish(must(mg_ssh(router, &c.o, &err), &err));	/* makes the directory */
	for (size_t i = 0; i < sizeof(imgs) / sizeof(imgs[0]); i++) {
		fake_sha(name, imgs[i].seed);
		mg_test_sh("cd %s && printf 'old build %u' > %s && chmod 700 %s && chown mgprune %s && "
		   "touch -d '%ld minutes ago' %s", dir, imgs[i].seed, name, name, name,
		   imgs[i].minutes, name);
	}
	/* Not ours: another owner, a symlink (and its old target outside),
	 * a directory, other names (one a 60-digit prefix of the image's
	 * name), a hidden file that is not a leftover. Newer than the stale
	 * images, older than the fresh ones. */
	fake_sha(name, 100);
	mg_test_sh("cd %s && echo root > %s && touch -d '1 day ago' %s", dir, name, name);
	fake_sha(name, 101);
	snprintf(other, sizeof(other), "%s/link-target", fx.dir);
	mg_test_sh("echo target > %s && chown mgprune %s && touch -d '40 days ago' %s && cd %s && "
	   "ln -s %s %s && chown -h mgprune %s && touch -h -d '1 day ago' %s",
	   other, other, other, dir, other, name, name, name);
	fake_sha(name, 102);
	mg_test_sh("cd %s && mkdir %s && chown mgprune %s && touch -d '1 day ago' %s", dir, name, name,
	   name);
	mg_test_sh("cd %s && for f in notes.txt .notes %.60s; do echo x > $f; chown mgprune $f; "
	   "touch -d '40 days ago' $f; done", dir, sha);
	/* Leftovers of interrupted transfers: stale go, fresh (in flight) stay. */
	mg_test_sh("cd %s && for f in .%s.123 .p456; do echo x > $f; chown mgprune $f; "
	   "touch -d '2 days ago' $f; done && echo x > .p789 && chown mgprune .p789", dir, sha);

	/* A cache hit marks the image used and prunes nothing. */
	mg_test_sh("touch -d '3 days ago' %s/%s", dir, sha);
	finish(must(mg_ssh(router, &c.o, &err), &err));
	snprintf(path, sizeof(path), "%s/%s", dir, sha);
	assert_true(age_of(path) >= 0 && age_of(path) < 120);
	fake_sha(name, 6);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(access(path, F_OK), 0);

	/* A new image arrives (here: the same one, removed first): prune. */
	mg_test_sh("rm -f %s/%s", dir, sha);
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgprune"));
	finish(ctx);
	snprintf(path, sizeof(path), "%s/%s", dir, sha);
	assert_int_equal(access(path, X_OK), 0);	/* the image in use */
	for (size_t i = 0; i < sizeof(imgs) / sizeof(imgs[0]); i++) {
		fake_sha(name, imgs[i].seed);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		fprintf(stderr, "# image %u, %ld min old: %s\n", imgs[i].seed, imgs[i].minutes,
			access(path, F_OK) == 0 ? "kept" : "removed");
		assert_int_equal(access(path, F_OK) == 0, imgs[i].kept);
	}
	for (unsigned seed = 100; seed <= 102; seed++) {
		fake_sha(name, seed);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		assert_true(age_of(path) > 86000);
	}
	assert_true(age_of(other) > 39 * 86400);
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	assert_true(age_of(path) > 0);
	snprintf(path, sizeof(path), "%s/.notes", dir);
	assert_true(age_of(path) > 0);
	snprintf(path, sizeof(path), "%s/%.60s", dir, sha);
	assert_true(age_of(path) > 0);
	snprintf(path, sizeof(path), "%s/.%s.123", dir, sha);
	assert_int_equal(age_of(path), -1);
	snprintf(path, sizeof(path), "%s/.p456", dir);
	assert_int_equal(age_of(path), -1);
	snprintf(path, sizeof(path), "%s/.p789", dir);
	assert_true(age_of(path) >= 0);

	/* Once stale, the 4th goes; the newest 3 stay however old. */
	fake_sha(name, 4);
	mg_test_sh("touch -d '4 days ago' %s/%s", dir, name);
	for (unsigned seed = 1; seed <= 3; seed++) {
		fake_sha(name, seed);
		mg_test_sh("touch -d '%u days ago' %s/%s", seed, dir, name);
	}
	mg_test_sh("rm -f %s/%s", dir, sha);
	finish(must(mg_ssh(router, &c.o, &err), &err));
	for (unsigned seed = 1; seed <= 4; seed++) {
		fake_sha(name, seed);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		assert_int_equal(access(path, F_OK) == 0, seed <= 3);
	}
}

/*
 * test_ssh_config's bound on each start-up: generous, reached only when a
 * start fails (through sudo, then ssh with an image to send, on a machine
 * at load 100, 20 s was not enough).
 */
#define CONFIG_START_S 300

/* A context as user through sudo (from root: no password). */
static struct mg_context *sudo_as(const char *user)
{
	struct mg_error err = MG_ERROR_INIT;

	MG_OPTS(mg_local_opts, lo, .connect_timeout = CONFIG_START_S);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = user);
	return must(mg_sudo(router, &so, &err), &err);
}

/* Runs in a context: make dir its TMPDIR (where ssh.c writes its -F file). */
static int set_tmpdir(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const char *dir;

	if (mg_value_unpack(args, NULL, "s", &dir) < 0)
		return mg_call_fail(call, EINVAL, "set_tmpdir(dir)");
	setenv("TMPDIR", dir, 1);
	return 0;
}
MG_EXPORT(set_tmpdir);

/*
 * Our temporary -F files left in dir (there must be none): the test's own
 * TMPDIR, never /tmp, where other programs (and other runs of this test)
 * have theirs.
 */
static int conf_leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strncmp(de->d_name, "mitogen-ssh-", 12) == 0;
	closedir(d);
	return n;
}

/* test_ssh_config's own TMPDIR, and the caller's to put back. */
static char config_tmp[160];
static char *config_old_tmp;

static int ssh_config_teardown(void **state)
{
	if (system("rm -rf /home/mgcache/.ssh") != 0)
		fprintf(stderr, "# could not remove mgcache's ~/.ssh\n");
	if (config_old_tmp)
		setenv("TMPDIR", config_old_tmp, 1);
	else
		unsetenv("TMPDIR");
	free(config_old_tmp);
	config_old_tmp = NULL;
	if (config_tmp[0] && mg_test_rm_rf(config_tmp) < 0)
		fprintf(stderr, "# could not remove %s\n", config_tmp);
	config_tmp[0] = '\0';
	mg_test_cleanup();
	return fixture_teardown(state);
}

/*
 * The user's ~/.ssh/config is read (ssh runs as mgcache here, through a
 * sudo context: ssh finds ~ in /etc/passwd, so this leaves root's alone):
 * a Host alias gives host, port, user, key and known_hosts. What the
 * configuration sets beats our defaults (StrictHostKeyChecking=yes), what
 * the caller asks for beats the configuration, and a caller's own -F
 * file is read with our defaults still under it.
 */
static void test_ssh_config(void **state)
{
	const char *ssh = "/home/mgcache/.ssh";
	struct mg_error err = MG_ERROR_INIT;
	char conf[160], *hosts = NULL;
	struct mg_context *mid, *ctx;
	struct ssh_case c;
	struct stat st;
	FILE *f;
	size_t n = 0;

	NEED_SSHD();
	/* Our own TMPDIR (mgtest's too, below): where leftovers are counted. */
	if (getenv("TMPDIR"))
		config_old_tmp = strdup(getenv("TMPDIR"));
	mg_test_tmpdir(config_tmp, sizeof(config_tmp), "mg-ssh-config");
	mg_test_sh("chown mgcache: %s", config_tmp);
	setenv("TMPDIR", config_tmp, 1);
	snprintf(conf, sizeof(conf), "%s/config", ssh);
	mg_test_sh("rm -rf %s && mkdir -m 700 %s && cp %s %s/mg_id && cp %s/known_hosts %s/mg_known && "
	   ": > %s/mg_new_known && : > %s/mg_new2_known && : > %s/mg_strict_known",
	   ssh, ssh, fx.key, ssh, fx.dir, ssh, ssh, ssh, ssh);
	f = open_memstream(&hosts, &n);
	assert_non_null(f);
	fprintf(f, "Host mgalias\n  User mgtest\n  UserKnownHostsFile ~/.ssh/mg_known\n");
	fprintf(f, "Host mgalias-new\n  User mgsudo\n  UserKnownHostsFile ~/.ssh/mg_new_known\n"
		   "  StrictHostKeyChecking accept-new\n");
	fprintf(f, "Host mgalias-new2\n  UserKnownHostsFile ~/.ssh/mg_new2_known\n"
		   "  StrictHostKeyChecking accept-new\n");
	fprintf(f, "Host mgalias-strict\n  UserKnownHostsFile ~/.ssh/mg_strict_known\n"
		   "  StrictHostKeyChecking yes\n");
	fprintf(f, "Host mgalias*\n  HostName 127.0.0.1\n  Port %d\n  IdentityFile ~/.ssh/mg_id\n"
		   "  IdentitiesOnly yes\n  GlobalKnownHostsFile /dev/null\n  User mgtest\n",
		fx.port);
	fclose(f);
	f = fopen(conf, "w");
	assert_non_null(f);
	fputs(hosts, f);
	fclose(f);
	free(hosts);
	mg_test_sh("chown -R mgcache: %s && chmod 600 %s/*", ssh, ssh);

	mid = sudo_as("mgcache");
	/* (sudo resets the environment: tell the context itself.) */
	assert_int_equal(mg_call(mid, "set_tmpdir", mg_value_build("s", config_tmp), NULL, &err),
			 0);
	MG_OPTS(mg_local_opts, lo, .via = mid, .connect_timeout = CONFIG_START_S);
	MG_OPTS(mg_ssh_opts, o, .local = &lo, .hostname = "mgalias");
	ctx = must(mg_ssh(router, &o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgtest"));
	finish(ctx);

	/* The configuration's accept-new beats our default enforcement. */
	o.hostname = "mgalias-new";
	ctx = must(mg_ssh(router, &o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgsudo"));
	finish(ctx);
	assert_int_equal(stat("/home/mgcache/.ssh/mg_new_known", &st), 0);
	assert_true(st.st_size > 0);

	/* The caller's explicit choice beats the configuration, both ways. */
	o.hostname = "mgalias-strict";
	o.check_host_keys = MG_HOST_KEYS_ACCEPT_NEW;
	ctx = must(mg_ssh(router, &o, &err), &err);
	finish(ctx);
	{
		const char *strict[] = { "-o", "StrictHostKeyChecking=yes", NULL };

		o.hostname = "mgalias-new2";
		o.check_host_keys = MG_HOST_KEYS_ENFORCE;
		o.ssh_args = strict;
		assert_null(mg_ssh(router, &o, &err));
		fprintf(stderr, "# %s: %s\n", mg_error_kind_name(err.kind), err.message);
		assert_int_equal(err.kind, MG_ERR_HOSTKEY);
	}
	finish(mid);

	/* A caller's -F (root's own configuration untouched): its alias
	 * works, and our defaults still apply under it (enforcement). */
	snprintf(conf, sizeof(conf), "%s/caller_config", fx.dir);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "Host mgf\n  UserKnownHostsFile %s/known_hosts\n"
		   "Host mgf-unknown\n  UserKnownHostsFile /dev/null\n"
		   "Host mgf*\n  HostName 127.0.0.1\n  Port %d\n  User mgtest\n  IdentityFile %s\n"
		   "  IdentitiesOnly yes\n  GlobalKnownHostsFile /dev/null\n",
		fx.dir, fx.port, fx.key);
	fclose(f);
	ssh_case_init(&c, NULL, false);
	c.lo.connect_timeout = CONFIG_START_S;
	c.args[0] = "-F";
	c.args[1] = conf;
	c.args[2] = NULL;
	c.o.port = 0;
	c.o.hostname = "mgf";
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgtest"));
	finish(ctx);
	c.o.hostname = "mgf-unknown";
	ssh_expect_fail(&c, MG_ERR_HOSTKEY, NULL, NULL);
	assert_int_equal(conf_leftovers(config_tmp), 0);

	/* No file of ours possible: the defaults go on the command line. */
	setenv("TMPDIR", "/nonexistent/mitogen-test", 1);
	ssh_case_init(&c, "mgtest", true);
	c.lo.connect_timeout = CONFIG_START_S;
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgtest"));
	finish(ctx);
	c.args[1] = "UserKnownHostsFile=/dev/null";	/* enforced: unknown key */
	ssh_expect_fail(&c, MG_ERR_HOSTKEY, NULL, NULL);
	/* (ssh_config_teardown puts the caller's TMPDIR back.) */
}

static void test_ssh_arch_mismatch(void **state)
{
	struct ssh_case c;

	NEED_SSHD();
	ssh_case_init(&c, "root", true);
	setenv("MITOGEN_TEST_ARCH", "sparc64", 1);
	ssh_expect_fail(&c, MG_ERR_STREAM, "sparc64", NULL);
	unsetenv("MITOGEN_TEST_ARCH");
}

static void test_ssh_killed_mid_call(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct ssh_case c;
	struct mg_context *ctx;
	struct mg_receiver *rx;
	struct mg_value *v = NULL;
	double t0;
	pid_t agent;

	NEED_SSHD();
	ssh_case_init(&c, "root", true);
	ctx = mg_ssh(router, &c.o, &err);
	assert_non_null(ctx);
	agent = (pid_t)call_int(ctx, "mg.getpid");	/* 127.0.0.1: this host */
	rx = mg_call_async(ctx, "mg.run",
			   mg_value_build("v", MG_LIST(mg_str("sleep"), mg_str("30"))), &err);
	assert_non_null(rx);
	/* The hand-off: the call runs (its sleep is the agent's child). */
	t0 = mg_test_now();
	while (mg_test_count_children(agent) < 1 && mg_test_now() - t0 < 60)
		usleep(5000);
	assert_true(mg_test_count_children(agent) >= 1);
	t0 = mg_test_now();
	assert_int_equal(kill(mg_context_pid(ctx), SIGKILL), 0);
	/* ChannelError, not the 30 s sleep's end: a bound below it. */
	assert_true(mg_receiver_get_data(rx, 25.0, &v, &err) < 0);
	fprintf(stderr, "# %s after %.3f s: %s\n", mg_error_kind_name(err.kind),
		mg_test_now() - t0, err.message);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	mg_receiver_free(rx);
	mg_context_shutdown(ctx, true);
	mg_context_unref(ctx);
}

static void test_ssh_via_local(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;
	struct ssh_case c;

	NEED_SSHD();
	mid = mg_local(router, NULL, &err);
	assert_non_null(mid);
	ssh_case_init(&c, "mgtest", true);
	c.lo.via = mid;
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), user_uid("mgtest"));
	finish(ctx);
	/* Errors keep their kind across the hop. */
	c.o.identity_file = NULL;
	c.args[4] = "-o";
	c.args[5] = "PubkeyAuthentication=no";
	ssh_expect_fail(&c, MG_ERR_PASSWORD, NULL, NULL);
	finish(mid);
}

static void test_ssh_bad_options(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct ssh_case c;

	ssh_case_init(&c, "root", true);
	c.o.hostname = "-oProxyCommand=evil";
	assert_null(mg_ssh(router, &c.o, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	c.o.hostname = NULL;
	assert_null(mg_ssh(router, &c.o, &err));
	assert_null(mg_ssh(router, NULL, &err));
	c.o.hostname = "127.0.0.1";
	c.o.port = 70000;
	assert_null(mg_ssh(router, &c.o, &err));
	assert_non_null(strstr(err.message, "port"));
}

/* Multi-record messages both ways over the byte stream (partial reads and
 * writes on every hop: socketpair, ssh, sshd's pipes). */
static void test_ssh_large_payloads(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct ssh_case c;
	struct mg_context *ctx;
	struct mg_value *v = NULL;
	size_t n = 3 * 1024 * 1024 + 17;
	char *data = malloc(n), path[128];

	NEED_SSHD();
	assert_non_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 7 + i / 251);
	ssh_case_init(&c, "root", true);
	ctx = mg_ssh(router, &c.o, &err);
	assert_non_null(ctx);
	snprintf(path, sizeof(path), "%s/big", fx.dir);
	assert_int_equal(mg_call(ctx, "mg.write_file",
				 mg_value_build("sy", path, data, n), NULL, &err), 0);
	assert_int_equal(mg_call(ctx, "mg.read_file", mg_value_build("s", path), &v, &err), 0);
	assert_non_null(v);
	assert_int_equal(v->len, n);
	assert_memory_equal(v->bytes, data, n);
	mg_value_free(v);
	/* Many small calls still fine after that. */
	for (int i = 0; i < 200; i++)
		assert_int_equal(mg_call(ctx, "mg.noop", NULL, NULL, &err), 0);
	finish(ctx);
	free(data);
}

/* A "remote" that greets and then sends garbage: the stream closes with a
 * protocol error, the start fails with StreamError, nothing hangs. */
static void test_ssh_garbage_stream(void **state)
{
	struct ssh_case c;
	char fake[128], cmd[512];
	double secs;

	NEED_SSHD();
	snprintf(fake, sizeof(fake), "%s/fake-ssh", fx.dir);
	snprintf(cmd, sizeof(cmd),
		 "printf '#!/bin/sh\\necho MGREADY\\nsleep 1\\nprintf \"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\"\\nsleep 30\\n' > %s && chmod 755 %s",
		 fake, fake);
	assert_int_equal(system(cmd), 0);
	ssh_case_init(&c, "root", true);
	c.o.ssh_path = fake;
	/* Fails on the bytes, not at the connect timeout: a long one, and a
	 * bound far below it. */
	c.lo.connect_timeout = 600;
	ssh_expect_fail(&c, MG_ERR_STREAM, "protocol error: bad magic", &secs);
	assert_true(secs < 300);
	/* Bytes before the greeting are refused too. */
	snprintf(cmd, sizeof(cmd),
		 "printf '#!/bin/sh\\nprintf \"MGREADY\\\\\\\\nMG\"\\nsleep 30\\n' > %s", fake);
	assert_int_equal(system(cmd), 0);
	ssh_expect_fail(&c, MG_ERR_STREAM, "unexpected bytes", &secs);
	assert_true(secs < 300);
}

/*
 * The command line works under every login shell it may meet, and POSIX
 * login shells of known names run the first stage themselves: no second
 * shell (firststage_command). A stand-in ssh runs the command as sshd
 * does (`SHELL -c COMMAND`, argv[0] the shell's base name) with a home of
 * the test's own, `sh` first in PATH being a wrapper that notes each run.
 * Each shell starts twice: the image sent (or, after the first, found),
 * then found. A shell not installed here is said and not tried; dash and
 * bash must be. Not csh or tcsh: they expand `!` (history) inside single
 * quotes, before and after this command line (docs/firststage.md).
 */
static void test_ssh_login_shells(void **state)
{
	static const struct {
		const char *path, *name;	/* the login shell, its $0 */
		const char *env;		/* extra environment, or "" */
		bool direct;			/* runs the first stage itself */
		bool required;
	} shells[] = {
		{ "/bin/dash", "dash", "", true, true },
		{ "/bin/dash", "sh", "", true, true },
		{ "/bin/bash", "bash", "", false, true },	/* ~/.bashrc: via sh */
		{ "/bin/mksh", "mksh", "", true, false },
		{ "/bin/busybox", "ash", "", true, false },
		{ "/bin/zsh", "zsh", "", false, false },
		{ "/usr/bin/fish", "fish", "", false, false },
		/* A POSIX shell under a name not known to be one, and one
		 * whose environment says status: both hand it to sh. */
		{ "/bin/dash", "posh", "", false, true },
		{ "/bin/dash", "dash", "status=0", false, true },
	};
	char fake[160], log[160], bin[160], home[192];

	NEED_SSHD();
	snprintf(fake, sizeof(fake), "%s/fake-login", fx.dir);
	snprintf(log, sizeof(log), "%s/sh-runs", fx.dir);
	snprintf(bin, sizeof(bin), "%s/shbin", fx.dir);
	mg_test_sh("mkdir -p %s && printf '#!/bin/dash\\necho \"$$\" >>%s\\nexec /bin/sh \"$@\"\\n' "
		   ">%s/sh && chmod 755 %s/sh", bin, log, bin, bin);
	/* The last argument is the command (ssh_build puts it there). */
	mg_test_sh("printf '#!/bin/bash\\nfor c; do :; done\\ncd \"$MG_HOME\" || exit 1\\n"
		   "exec env -i HOME=\"$MG_HOME\" PATH=%s:/usr/bin:/bin $MG_ENV "
		   "bash -c '\\''exec -a \"$0\" \"$1\" -c \"$2\"'\\'' \"$MG_NAME\" \"$MG_SHELL\" \"$c\"\\n' "
		   ">%s && chmod 755 %s", bin, fake, fake);
	for (size_t i = 0; i < sizeof(shells) / sizeof(shells[0]); i++) {
		struct mg_error err = MG_ERROR_INIT;
		struct mg_context *ctx;
		struct ssh_case c;
		struct stat st;

		if (access(shells[i].path, X_OK) < 0) {
			fprintf(stderr, "# %s: not installed, not tried\n", shells[i].path);
			assert_false(shells[i].required);
			continue;
		}
		snprintf(home, sizeof(home), "%s/home%zu", fx.dir, i);
		assert_int_equal(mkdir(home, 0700), 0);
		setenv("MG_HOME", home, 1);
		setenv("MG_SHELL", shells[i].path, 1);
		setenv("MG_NAME", shells[i].name, 1);
		setenv("MG_ENV", shells[i].env, 1);
		for (int run = 0; run < 2; run++) {
			unlink(log);
			ssh_case_init(&c, "root", true);
			c.o.ssh_path = fake;
			ctx = mg_ssh(router, &c.o, &err);
			if (!ctx)
				fprintf(stderr, "# %s as %s: %s\n", shells[i].path, shells[i].name,
					err.message);
			assert_non_null(ctx);
			assert_int_equal(call_int(ctx, "mg.getuid"), 0);
			finish(ctx);
			fprintf(stderr, "# %s as %s %s, start %d: %s\n", shells[i].path,
				shells[i].name, shells[i].env, run + 1,
				stat(log, &st) == 0 ? "through sh" : "itself");
			assert_int_equal(stat(log, &st) == 0, !shells[i].direct);
		}
	}
	unsetenv("MG_HOME");
	unsetenv("MG_SHELL");
	unsetenv("MG_NAME");
	unsetenv("MG_ENV");
}

/*
 * A password is typed only at a prompt ssh itself writes to the terminal;
 * the same words on stderr (where the remote side's stderr arrives) get
 * nothing. The fake ssh records what it read from its terminal.
 */
static void fake_prompt(const char *where, const char *got, char *out, size_t size)
{
	struct ssh_case c;
	char fake[128], cmd[768];
	FILE *f;
	size_t n;

	snprintf(fake, sizeof(fake), "%s/fake-prompt", fx.dir);
	snprintf(cmd, sizeof(cmd),
		 "rm -f %s; printf '#!/bin/sh\\nprintf \"root@h'\"'\"'s password: \" >%s\\n"
		 "read -r line </dev/tty\\necho \"got:$line\" >%s\\nsleep 30\\n' > %s && chmod 755 %s",
		 got, where, got, fake, fake);
	assert_int_equal(system(cmd), 0);
	ssh_case_init(&c, "root", true);
	c.o.ssh_path = fake;
	c.o.password = "s3cret";
	c.lo.connect_timeout = 2;
	ssh_expect_fail(&c, MG_ERR_STREAM, NULL, NULL);
	f = fopen(got, "r");
	n = f ? fread(out, 1, size - 1, f) : 0;
	out[n] = '\0';
	if (f)
		fclose(f);
}

static void test_ssh_prompt_only_from_tty(void **state)
{
	char got[128], out[64];

	NEED_SSHD();
	snprintf(got, sizeof(got), "%s/fake-got", fx.dir);
	fake_prompt("/dev/tty", got, out, sizeof(out));
	assert_string_equal(out, "got:s3cret\n");	/* the control */
	fake_prompt("&2", got, out, sizeof(out));
	assert_null(strstr(out, "s3cret"));
}

static const char *const noexec_dirs[] = {
	"/home/mgcache/.cache/mitogen", "/dev/shm/mitogen-%u", "/var/tmp/mitogen-%u",
	"/tmp/mitogen-%u",
};

/* Mount a noexec tmpfs owned by uid on dir (made first). 0 or -1. */
static int mount_noexec(const char *fmt, uid_t uid)
{
	char dir[128], cmd[1024];

	snprintf(dir, sizeof(dir), fmt, (unsigned)uid);
	snprintf(cmd, sizeof(cmd),
		 "umount %s 2>/dev/null; rm -rf %s && mkdir -p %s && chown %u %s && "
		 "mount -t tmpfs -o noexec,nosuid,nodev,mode=0700,uid=%u,size=64m tmpfs %s",
		 dir, dir, dir, (unsigned)uid, dir, (unsigned)uid, dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int noexec_teardown(void **state)
{
	uid_t uid = user_uid("mgcache");
	char dir[128], cmd[320];

	for (size_t i = 0; i < sizeof(noexec_dirs) / sizeof(noexec_dirs[0]); i++) {
		snprintf(dir, sizeof(dir), noexec_dirs[i], (unsigned)uid);
		snprintf(cmd, sizeof(cmd), "umount %s 2>/dev/null; rm -rf %s", dir, dir);
		if (system(cmd) != 0)
			fprintf(stderr, "# cleanup of %s failed\n", dir);
	}
	return fixture_teardown(state);
}

static void test_ssh_noexec(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	uid_t uid;
	struct ssh_case c;
	struct mg_context *ctx;
	char sha[65], path[160];

	NEED_SSHD();
	uid = user_uid("mgcache");
	image_sha(sha);
	if (mount_noexec(noexec_dirs[0], uid) < 0) {
		fprintf(stderr, "# skip: cannot mount a noexec tmpfs (no CAP_SYS_ADMIN?)\n");
		skip();
	}
	/* The cache is noexec: the next candidate (no XDG_RUNTIME_DIR under
	 * this sshd) takes the image. */
	ssh_case_init(&c, "mgcache", true);
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), uid);
	finish(ctx);
	snprintf(path, sizeof(path), "/dev/shm/mitogen-%u/%s", (unsigned)uid, sha);
	assert_int_equal(access(path, X_OK), 0);
	snprintf(path, sizeof(path), "/home/mgcache/.cache/mitogen/%s", sha);
	assert_int_equal(access(path, F_OK), -1);

	/* Every candidate noexec: the image runs from a private directory
	 * (in /dev/shm, which allows exec), is cached nowhere, and the log
	 * says why. */
	for (size_t i = 1; i < sizeof(noexec_dirs) / sizeof(noexec_dirs[0]); i++)
		assert_int_equal(mount_noexec(noexec_dirs[i], uid), 0);
	mg_test_log_capture_start();
	ctx = must(mg_ssh(router, &c.o, &err), &err);
	assert_int_equal(call_int(ctx, "mg.getuid"), uid);
	finish(ctx);
	mg_test_log_print();
	assert_true(mg_test_log_contains("/tmp/mitogen-", 0));
	assert_true(mg_test_log_contains("noexec; ", 0));
	assert_true(mg_test_log_contains("runs from a private directory", 0));
	mg_test_log_capture_stop();
	for (size_t i = 1; i < sizeof(noexec_dirs) / sizeof(noexec_dirs[0]); i++) {
		char dir[64], file[160];

		snprintf(dir, sizeof(dir), noexec_dirs[i], (unsigned)uid);
		snprintf(file, sizeof(file), "%s/%s", dir, sha);
		assert_int_equal(access(file, F_OK), -1);
	}
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		FIXTURE_TEST(test_ssh_call),
		FIXTURE_TEST(test_ssh_password),
		FIXTURE_TEST(test_ssh_identity_file),
		FIXTURE_TEST(test_ssh_host_keys),
		FIXTURE_TEST(test_ssh_refused),
		FIXTURE_TEST(test_ssh_connect_timeout),
		FIXTURE_TEST(test_ssh_cache),
		FIXTURE_TEST(test_ssh_cache_prune),
		cmocka_unit_test_setup_teardown(test_ssh_config, fixture_setup, ssh_config_teardown),
		FIXTURE_TEST(test_ssh_arch_mismatch),
		FIXTURE_TEST(test_ssh_killed_mid_call),
		FIXTURE_TEST(test_ssh_via_local),
		FIXTURE_TEST(test_ssh_bad_options),
		FIXTURE_TEST(test_ssh_large_payloads),
		FIXTURE_TEST(test_ssh_garbage_stream),
		FIXTURE_TEST(test_ssh_prompt_only_from_tty),
		FIXTURE_TEST(test_ssh_login_shells),
		cmocka_unit_test_setup_teardown(test_ssh_noexec, fixture_setup, noexec_teardown),
	};
	return FIXTURE_TEST_RUN("transports/ssh", tests);
}
