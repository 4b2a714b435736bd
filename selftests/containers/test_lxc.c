// SPDX-License-Identifier: MIT
/*
 * selftests/containers/test_lxc.c: lxc and setns:lxc contexts in a real
 * LXC container (lxc-create -t busybox from Debian's busybox-static, no
 * network: lxc.net.0.type = empty; the template binds the host's
 * libraries read-only). The container is this run's own and destroyed at
 * the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selftests/containers/ctr.h"

static char name[64];
static bool lxc_up;

#define NEED_LXC()							\
	do {								\
		NEED_CTR();						\
		if (!lxc_up) {						\
			fprintf(stderr, "# skip: %s\n", ctr_skip);	\
			skip();						\
		}							\
	} while (0)

static void test_lxc_run(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char want[128];

	NEED_LXC();
	MG_OPTS(mg_lxc_opts, o, .container = name);
	ctx = must(mg_lxc(router, &o, &err), &err);
	ctr_run_sh(ctx, "hostname; cat; echo e >&2; exit 5", "in\n", &res);
	snprintf(want, sizeof(want), "%s\nin\n", name);
	assert_string_equal(res.out, want);
	assert_string_equal(res.err, "e\n");
	assert_int_equal(res.status, 5);
	finish(ctx);
}

static void test_lxc_missing(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char missing[96];

	NEED_LXC();
	snprintf(missing, sizeof(missing), "%s-nosuch", name);
	MG_OPTS(mg_lxc_opts, o, .container = missing);
	assert_null(mg_lxc(router, &o, &err));
	fprintf(stderr, "# %s\n", err.message);
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, missing));
}

static void test_setns_lxc(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char want[128];

	NEED_LXC();
	MG_OPTS(mg_setns_opts, o, .kind = "lxc", .container = name);
	ctx = must(mg_setns(router, &o, &err), &err);
	ctr_run_sh(ctx, "hostname", NULL, &res);
	snprintf(want, sizeof(want), "%s\n", name);
	assert_string_equal(res.out, want);
	finish(ctx);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		CTR_TEST(test_lxc_run),
		CTR_TEST(test_lxc_missing),
		CTR_TEST(test_setns_lxc),
	};
	int ret;

	snprintf(name, sizeof(name), "mgtest-%d-lxc", (int)getpid());
	if (ctr_tmp_up() == 0) {
		if (!ctr_have("lxc-create") || !ctr_have("lxc-attach"))
			snprintf(ctr_skip, sizeof(ctr_skip), "no lxc (make deps)");
		else if (ctr_fixture("lxc-make %s", name))
			snprintf(ctr_skip, sizeof(ctr_skip), "lxc-create/lxc-start failed here");
		else
			lxc_up = true;
	}
	ret = mg_test_run("containers/lxc", tests, sizeof(tests) / sizeof(tests[0]));
	ctr_fixture("lxc-rm %s", name);
	ctr_tmp_down();
	return ret;
}
