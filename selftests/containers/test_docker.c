// SPDX-License-Identifier: MIT
/*
 * selftests/containers/test_docker.c: docker and setns:docker contexts
 * against a real dockerd that the fixture starts for this run alone (its
 * own socket, data and exec roots under our TMPDIR; --iptables=false
 * --bridge=none) and stops at the end, with an image imported from the
 * busybox-static rootfs (no registry: nothing is ever pulled).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selftests/containers/ctr.h"

static char image[96], dockdir[PATH_MAX + 16];
static bool docker_up;

#define NEED_DOCKER()							\
	do {								\
		NEED_CTR();						\
		if (!docker_up) {					\
			fprintf(stderr, "# skip: %s\n", ctr_skip);	\
			skip();						\
		}							\
	} while (0)

static void rm_container(void *name)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "docker rm -f %s >/dev/null 2>&1", (char *)name);
	if (system(cmd) != 0)
		fprintf(stderr, "# docker rm %s failed\n", (char *)name);
	free(name);
}

static const char *start_ctr(const char *what)
{
	char name[128], out[128];

	snprintf(name, sizeof(name), "mgtest-%d-%s", (int)getpid(), what);
	if (ctr_sh_line(out, sizeof(out),
			"docker run -d --pull=never --network none --hostname %s --name %s "
			"--ulimit nofile=1024:1024 -v /usr/lib:/usr/lib:ro "
			"-v /usr/lib64:/usr/lib64:ro %s /bin/sleep 1000000 2>&1", name, name,
			image)) {
		fprintf(stderr, "# docker run: %s\n", out);
		fail();
	}
	return mg_test_defer(rm_container, strdup(name));
}

static void test_docker_exec(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char want[160];
	const char *name;

	NEED_DOCKER();
	name = start_ctr("exec");
	MG_OPTS(mg_docker_opts, o, .container = name);
	ctx = must(mg_docker(router, &o, &err), &err);
	ctr_run_sh(ctx, "echo out; echo err >&2; cat; hostname; exit 7", "in\n", &res);
	snprintf(want, sizeof(want), "out\nin\n%s\n", name);
	assert_string_equal(res.out, want);
	assert_string_equal(res.err, "err\n");
	assert_int_equal(res.status, 7);
	ctr_run_sh(ctx, "wc -c", "123", &res);
	assert_int_equal(atoi(res.out), 3);
	finish(ctx);
}

/* docker-image: a new container with the context, gone after it. */
static void test_docker_image(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char line[128];

	NEED_DOCKER();
	MG_OPTS(mg_docker_opts, o, .image = image);
	/* busybox alone: the image is our static tool, when this tree has one */
	{
		const char *b = getenv("MG_TEST_BUILD_DIR");
		char tool[PATH_MAX];

		snprintf(tool, sizeof(tool), "%s/mitogen", b ? b : "build");
		if (b && !strstr(b, "asan") && access(tool, X_OK) == 0) {
			MG_OPTS(mg_local_opts, lo, .image = tool);
			o.local = &lo;
			ctx = must(mg_docker(router, &o, &err), &err);
		} else {
			fprintf(stderr, "# not the static tree: no busybox-only check\n");
			ctx = NULL;
		}
	}
	if (ctx) {
		ctr_run_sh(ctx, "ls /usr/lib | wc -l", NULL, &res);
		assert_string_equal(res.out, "0\n");
		finish(ctx);
		assert_int_equal(ctr_sh_line(line, sizeof(line),
					     "docker ps -aq --filter ancestor=%s | wc -l", image), 0);
		assert_string_equal(line, "0");
	}
	mg_error_clear(&err);
	MG_OPTS(mg_docker_opts, bad, .image = "mgtest-no-such-image:latest");
	assert_null(mg_docker(router, &bad, &err));
	fprintf(stderr, "# %s\n", err.message);
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, "No such image"));
}

static void test_docker_stopped(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char cmd[256];
	const char *name;

	NEED_DOCKER();
	name = start_ctr("stopped");
	snprintf(cmd, sizeof(cmd), "docker stop -t 0 %s >/dev/null", name);
	assert_int_equal(system(cmd), 0);
	MG_OPTS(mg_docker_opts, o, .container = name);
	assert_null(mg_docker(router, &o, &err));
	fprintf(stderr, "# %s\n", err.message);
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, name));
	assert_non_null(strstr(err.message, "is not running"));
}

static void test_setns_docker(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char want[160];
	const char *name;

	NEED_DOCKER();
	name = start_ctr("setns");
	MG_OPTS(mg_setns_opts, o, .kind = "docker", .container = name);
	ctx = must(mg_setns(router, &o, &err), &err);
	ctr_run_sh(ctx, "hostname; ls /proc/1/cmdline && cat /proc/1/cmdline | tr '\\0' ' '", NULL,
		   &res);
	snprintf(want, sizeof(want), "%s\n/proc/1/cmdline\n/bin/sleep 1000000 ", name);
	assert_string_equal(res.out, want);
	finish(ctx);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		CTR_TEST(test_docker_exec),
		CTR_TEST(test_docker_image),
		CTR_TEST(test_docker_stopped),
		CTR_TEST(test_setns_docker),
	};
	int ret;

	if (ctr_tmp_up() == 0) {
		char sock[PATH_MAX + 16];

		snprintf(dockdir, sizeof(dockdir), "%s/docker", ctr_tmp);
		snprintf(image, sizeof(image), "mgtest-%d:latest", (int)getpid());
		if (!ctr_have("dockerd") || !ctr_have("docker")) {
			snprintf(ctr_skip, sizeof(ctr_skip), "no dockerd (make deps: docker.io)");
		} else if (ctr_sh_line(sock, sizeof(sock),
				       "sh %s/selftests/fixtures/containers.sh docker-up %s",
				       getenv("MG_TEST_SRC_DIR") ? getenv("MG_TEST_SRC_DIR") : ".",
				       dockdir) || strncmp(sock, "unix://", 7)) {
			snprintf(ctr_skip, sizeof(ctr_skip), "dockerd did not start here (%.200s)",
				 sock);
			docker_up = true;	/* stop what may have started */
		} else {
			setenv("DOCKER_HOST", sock, 1);
			docker_up = true;
			if (ctr_fixture("docker-import %s/rootfs.tar %s", ctr_tmp, image))
				snprintf(ctr_skip, sizeof(ctr_skip), "docker import failed");
		}
	}
	ret = mg_test_run("containers/docker", tests, sizeof(tests) / sizeof(tests[0]));
	if (docker_up)
		ctr_fixture("docker-down %s", dockdir);
	ctr_tmp_down();
	return ret;
}
