/* SPDX-License-Identifier: MIT */
/*
 * selftests/transports/fixture.h: the real sshd and test users of
 * selftests/fixtures/sshd.sh, for the transport tests, and the helpers
 * those tests share: a router for each test, skipping without root, int
 * calls, finishing a context, a test user's uid, running the group between
 * fixture_up and fixture_down (header-only: each test program includes it
 * once; helpers a program may not use are static inline).
 */
#ifndef MITOGEN_SELFTESTS_TRANSPORT_FIXTURE_H
#define MITOGEN_SELFTESTS_TRANSPORT_FIXTURE_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "selftests/lib/harness.h"

struct sshd_fixture {
	char dir[64];
	char key[96];
	char known[128];	/* "UserKnownHostsFile=..." */
	int port;
	int pid;
	bool up;
	bool users;			/* test users exist */
	char skip[256];			/* why there is none */
};

static struct sshd_fixture fx;

/* The router each test starts its contexts on (fixture_setup's). */
static struct mg_router *router;

static const char *fixture_script(void)
{
	static char path[PATH_MAX];
	const char *src = getenv("MG_TEST_SRC_DIR");

	snprintf(path, sizeof(path), "%s/selftests/fixtures/sshd.sh", src ? src : ".");
	return path;
}

/* Users always; sshd when want_sshd. Sets fx.skip when impossible. */
static int fixture_up(bool want_sshd)
{
	char cmd[PATH_MAX * 2 + 64], line[128];
	FILE *p;

	if (geteuid() != 0) {
		snprintf(fx.skip, sizeof(fx.skip), "needs root (test users, sshd)");
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "%s users >&2", fixture_script());
	if (system(cmd) != 0) {
		snprintf(fx.skip, sizeof(fx.skip), "cannot create the test users (%.200s)", cmd);
		return 0;
	}
	fx.users = true;
	if (!want_sshd)
		return 0;
	if (access("/usr/sbin/sshd", X_OK) < 0) {
		snprintf(fx.skip, sizeof(fx.skip), "no /usr/sbin/sshd (make deps)");
		return 0;
	}
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/mg-sshd.XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	snprintf(cmd, sizeof(cmd), "%s start %s", fixture_script(), fx.dir);
	p = popen(cmd, "r");
	if (!p || !fgets(line, sizeof(line), p) || sscanf(line, "%d %d", &fx.port, &fx.pid) != 2) {
		if (p)
			pclose(p);
		snprintf(fx.skip, sizeof(fx.skip), "sshd fixture did not start");
		return 0;
	}
	pclose(p);
	snprintf(fx.key, sizeof(fx.key), "%s/id_ed25519", fx.dir);
	snprintf(fx.known, sizeof(fx.known), "UserKnownHostsFile=%s/known_hosts", fx.dir);
	fx.up = true;
	return 0;
}

static void fixture_down(void)
{
	char cmd[PATH_MAX * 2 + 64];

	if (!fx.dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "%s stop %s", fixture_script(), fx.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# sshd fixture: stop failed\n");
	fx.dir[0] = '\0';
	fx.up = false;
}

#define NEED_SSHD()							\
	do {								\
		if (!fx.up) {						\
			fprintf(stderr, "# skip: %s\n", fx.skip);	\
			skip();						\
		}							\
	} while (0)

#define NEED_ROOT()							\
	do {								\
		if (!fx.users) {					\
			fprintf(stderr, "# skip: %s\n", fx.skip);	\
			skip();						\
		}							\
	} while (0)

/* cmocka set-up and tear-down: a fresh router for each test. */
static inline int fixture_setup(void **state)
{
	router = mg_router_new(NULL);
	return router ? 0 : -1;
}

static inline int fixture_teardown(void **state)
{
	mg_router_unref(router);
	router = NULL;
	return 0;
}

/* One test of the group, between fixture_setup and fixture_teardown. */
#define FIXTURE_TEST(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

/* main()'s tail: the fixture up (with sshd), the group run, the fixture down. */
#define FIXTURE_TEST_RUN(name, tests) \
	fixture_test_run((name), (tests), sizeof(tests) / sizeof((tests)[0]))

static inline int fixture_test_run(const char *name, const struct CMUnitTest *tests, size_t n)
{
	int ret;

	if (fixture_up(true) < 0)
		return 1;
	ret = mg_test_run(name, tests, n);
	fixture_down();
	return ret;
}

/* fn() in ctx, which must return an int: that int (the test fails else). */
static inline int64_t call_int(struct mg_context *ctx, const char *fn)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	int64_t i;

	if (mg_call(ctx, fn, NULL, &v, &err) < 0) {
		fprintf(stderr, "# %s: %s\n", fn, err.message);
		fail();
	}
	assert_non_null(v);
	assert_int_equal(v->type, MG_INT);
	i = v->i;
	mg_value_free(v);
	return i;
}

/* Shut ctx down cleanly (asserted) and drop it. */
static inline void finish(struct mg_context *ctx)
{
	assert_int_equal(mg_context_shutdown(ctx, true), 0);
	mg_context_unref(ctx);
}

/* A started context, or the test fails printing err. */
static inline struct mg_context *must(struct mg_context *ctx, const struct mg_error *err)
{
	if (!ctx)
		fprintf(stderr, "# %s: %s\n", mg_error_kind_name(err->kind), err->message);
	assert_non_null(ctx);
	return ctx;
}

/* The uid of a test user, from `id -u`. */
static inline uid_t user_uid(const char *user)
{
	char cmd[128];
	unsigned uid = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "id -u %s", user);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%u", &uid), 1);
	pclose(p);
	return (uid_t)uid;
}

#endif
