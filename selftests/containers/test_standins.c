// SPDX-License-Identifier: MIT
/*
 * selftests/containers/test_standins.c: kubectl, lxd, incus, buildah and
 * machinectl contexts through stand-in CLIs (selftests/containers/
 * standin.sh: checks the argv it gets, logs it, runs the first stage
 * here), as Mitogen's own tests do: these need a cluster or a daemon we
 * cannot run. Each test owns a directory with the symlinks and the log.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "selftests/lib/harness.h"
#include "selftests/tools/toolrun.h"

static struct mg_router *router;
static char dir[PATH_MAX], argv_log[PATH_MAX + 16];

static int setup(void **state)
{
	const char *t = getenv("TMPDIR"), *src = getenv("MG_TEST_SRC_DIR");
	const char *clis[] = { "kubectl", "lxc", "incus", "buildah", "machinectl" };
	char standin[PATH_MAX], link[PATH_MAX + 32];

	snprintf(dir, sizeof(dir), "%s/mgstandin.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	if (!src && !(src = getcwd(link, sizeof(link))))
		return -1;
	snprintf(standin, sizeof(standin), "%s/selftests/containers/standin.sh", src);
	for (size_t i = 0; i < sizeof(clis) / sizeof(clis[0]); i++) {
		snprintf(link, sizeof(link), "%s/%s", dir, clis[i]);
		if (symlink(standin, link) < 0)
			return -1;
	}
	snprintf(argv_log, sizeof(argv_log), "%s/argv.log", dir);
	setenv("MG_STANDIN_LOG", argv_log, 1);
	router = mg_router_new(NULL);
	return router ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	mg_test_cleanup();
	mg_router_unref(router);
	router = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void cli(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
}

/* The stand-in's log: one line, the argv without the script. */
static void assert_logged(const char *want)
{
	char buf[1024] = "";
	FILE *f = fopen(argv_log, "r");

	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
	assert_string_equal(buf, want);
	unlink(argv_log);
}

/* One call and mg.run (status, stdout and stderr apart, stdin EOF). */
static void exercise(struct mg_context *ctx, const struct mg_error *err)
{
	struct mg_error e2 = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	const struct mg_value *f;

	if (!ctx)
		fprintf(stderr, "# %s: %s\n", mg_error_kind_name(err->kind), err->message);
	assert_non_null(ctx);
	assert_int_equal(mg_call(ctx, "mg.run",
				 MG_LIST(MG_LIST(mg_str("/bin/sh"), mg_str("-c"),
						 mg_str("cat; echo e >&2; exit 4")),
					 mg_nil(), mg_nil(), mg_str("in")),
				 &v, &e2), 0);
	f = mg_map_get(v, "status");
	assert_int_equal(f->i, 4);
	f = mg_map_get(v, "stdout");
	assert_int_equal(f->len, 2);
	assert_memory_equal(f->bytes, "in", 2);
	f = mg_map_get(v, "stderr");
	assert_int_equal(f->len, 2);
	assert_memory_equal(f->bytes, "e\n", 2);
	mg_value_free(v);
	assert_int_equal(mg_context_shutdown(ctx, true), 0);
	mg_context_unref(ctx);
}

static void test_kubectl(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX + 32];
	const char *args[] = { "--context", "kind-test", NULL };

	cli(path, sizeof(path), "kubectl");
	MG_OPTS(mg_kubectl_opts, o, .pod = "web-0", .container = "app",
		.kubectl_namespace = "prod", .kubectl_path = path, .kubectl_args = args);
	exercise(mg_kubectl(router, &o, &err), &err);
	assert_logged("kubectl --context kind-test exec -i -n prod web-0 -c app --");
	MG_OPTS(mg_kubectl_opts, o2, .pod = "web-1", .kubectl_path = path);
	exercise(mg_kubectl(router, &o2, &err), &err);
	assert_logged("kubectl exec -i web-1 --");
}

static void test_lxd_incus(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX + 32];

	cli(path, sizeof(path), "lxc");
	MG_OPTS(mg_lxd_opts, o, .container = "remote:c1", .lxc_path = path);
	exercise(mg_lxd(router, &o, &err), &err);
	assert_logged("lxc exec --mode=non-interactive remote:c1 --");
	cli(path, sizeof(path), "incus");
	MG_OPTS(mg_lxd_opts, o2, .container = "c2", .lxc_path = path);
	exercise(mg_incus(router, &o2, &err), &err);
	assert_logged("incus exec --mode=non-interactive c2 --");
}

static void test_buildah(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX + 32];

	cli(path, sizeof(path), "buildah");
	MG_OPTS(mg_buildah_opts, o, .container = "wc1", .username = "root", .buildah_path = path);
	exercise(mg_buildah(router, &o, &err), &err);
	assert_logged("buildah run --user root wc1 --");
}

static void test_machinectl(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX + 32];

	cli(path, sizeof(path), "machinectl");
	MG_OPTS(mg_machinectl_opts, o, .machine = "m1", .machinectl_path = path);
	exercise(mg_machinectl(router, &o, &err), &err);
	assert_logged("machinectl shell -q m1");
}

/* The method is found by name in a via= message: kubectl below a local
 * context (the intermediate runs the stand-in). */
static void test_kubectl_via_local(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid;
	char path[PATH_MAX + 32];

	cli(path, sizeof(path), "kubectl");
	mid = mg_local(router, NULL, &err);
	assert_non_null(mid);
	MG_OPTS(mg_local_opts, lo, .via = mid);
	MG_OPTS(mg_kubectl_opts, o, .local = &lo, .pod = "p", .kubectl_path = path);
	exercise(mg_kubectl(router, &o, &err), &err);
	assert_logged("kubectl exec -i p --");
	assert_int_equal(mg_context_shutdown(mid, true), 0);
	mg_context_unref(mid);
}

/* A CLI that fails: StreamError with its words and the name. */
static void test_cli_fails(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	MG_OPTS(mg_kubectl_opts, o, .pod = "p0", .kubectl_path = "/bin/false");
	assert_null(mg_kubectl(router, &o, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, "kubectl.p0"));
	mg_error_clear(&err);
	MG_OPTS(mg_kubectl_opts, o2, .pod = "p0", .kubectl_namespace = "a b");
	assert_null(mg_kubectl(router, &o2, &err));
	assert_non_null(strstr(err.message, "namespace 'a b'"));
}

/* The tool with the stand-in first in PATH; its result in *r. */
static void tool_run(struct toolrun *r, const char *spec)
{
	char path[PATH_MAX * 2];
	const char *old = getenv("PATH");

	snprintf(path, sizeof(path), "%s:%s", dir, old ? old : "/usr/bin:/bin");
	setenv("PATH", path, 1);
	TOOLRUN(r, "run", "-t", spec, "--", "sh", "-c", "echo in-pod");
	if (old)
		setenv("PATH", old, 1);
}

/* The tool's kubectl:[NAMESPACE/]POD[:CONTAINER]: the namespace and the
 * container reach kubectl as -n and -c; a '/' followed by a kind of hop
 * is the next hop; bad forms are refused, as written, before kubectl
 * runs. */
static void test_tool_kubectl_target(void **state)
{
	static const struct {
		const char *spec, *argv;
	} good[] = {
		{ "kubectl:prod/web-0:app", "kubectl exec -i -n prod web-0 -c app --" },
		{ "kubectl:web-1:side", "kubectl exec -i web-1 -c side --" },
		{ "kubectl:kube-system/dns-2", "kubectl exec -i -n kube-system dns-2 --" },
		{ "kubectl:web-3/local", "kubectl exec -i web-3 --" },
		{ "kubectl:ops/web-4/local", "kubectl exec -i -n ops web-4 --" },
	};
	static const struct {
		const char *spec, *why;
	} bad[] = {
		{ "kubectl:/pod", "hop 'kubectl:/pod' in target 'kubectl:/pod': the namespace is empty" },
		{ "kubectl:ns/", "hop 'kubectl:ns/' in target 'kubectl:ns/': the pod is empty" },
		{ "kubectl:-n/pod", "hop 'kubectl:-n/pod' in target 'kubectl:-n/pod': the namespace starts with '-'" },
		{ "kubectl:ns/-it", "hop 'kubectl:ns/-it' in target 'kubectl:ns/-it': the pod starts with '-'" },
		{ "kubectl:--help", "hop 'kubectl:--help' in target 'kubectl:--help': the pod starts with '-'" },
		{ "kubectl:ns/pod:-c", "hop 'kubectl:ns/pod:-c' in target 'kubectl:ns/pod:-c': the container starts with '-'" },
		{ "kubectl:ns/pod:", "hop 'kubectl:ns/pod:' in target 'kubectl:ns/pod:': the container is empty" },
		{ "local/kubectl:ns//sudo", "in target 'local/kubectl:ns//sudo': the pod is empty" },
	};
	struct toolrun r = { 0 };
	struct stat st;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		tool_run(&r, good[i].spec);
		if (r.exit_code != 0)
			fail_msg("-t %s: exit %d: %s", good[i].spec, r.exit_code, r.err_raw);
		assert_string_equal(r.out, "in-pod\n");
		assert_logged(good[i].argv);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tool_run(&r, bad[i].spec);
		assert_int_equal(r.exit_code, 2);
		if (!strstr(r.err, bad[i].why))
			fail_msg("-t %s: no \"%s\" in: %s", bad[i].spec, bad[i].why, r.err);
		/* refused before kubectl ran */
		assert_int_equal(stat(argv_log, &st), -1);
	}
	TOOLRUN(&r, "--help");
	assert_int_equal(r.exit_code, 0);
	assert_non_null(strstr(r.out, "kubectl:[NAMESPACE/]POD[:CONTAINER]"));
	toolrun_free(&r);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kubectl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lxd_incus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buildah, setup, teardown),
		cmocka_unit_test_setup_teardown(test_machinectl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kubectl_via_local, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_kubectl_target, setup, teardown),
	};
	int ret;

	if (toolrun_setup() < 0)
		return 1;
	ret = mg_test_run("containers/standins", tests, sizeof(tests) / sizeof(tests[0]));
	toolrun_teardown();
	return ret;
}
