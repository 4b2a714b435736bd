// SPDX-License-Identifier: MIT
/*
 * test_tool_sandbox.c — the tool's sandbox flags, run as a user would:
 * `mitogen run --no-net` sees only lo and a program opening an inet
 * socket is killed by SIGSYS (exit 159); `--ro`/`--rw` let it read and
 * write only there (and run system programs); `--tenant`/`--pids-max`
 * put it in mitogen/<tenant>; bad values are usage errors (exit 2).
 * The tool is $MITOGEN_BIN, else $MG_TEST_BUILD_DIR/mitogen, else
 * build/mitogen.
 */
#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "selftests/lib/harness.h"
#include "selftests/lib/probes.h"

static char tool[PATH_MAX], tmpdir[256], out[16384];

/* Run "TOOL ARGS" through sh; stdout+stderr in out; the exit code. */
static int tool_run(const char *args)
{
	char cmd[PATH_MAX * 3], path[PATH_MAX];
	FILE *f;
	size_t n;
	int st;

	snprintf(path, sizeof(path), "%s/out", tmpdir);
	snprintf(cmd, sizeof(cmd), "'%s' %s >'%s' 2>&1 </dev/null", tool, args, path);
	st = system(cmd);
	f = fopen(path, "re");
	assert_non_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state)
{
	const char *bin = getenv("MITOGEN_BIN"), *dir = getenv("MG_TEST_BUILD_DIR");

	if (bin && *bin)
		snprintf(tool, sizeof(tool), "%s", bin);
	else
		snprintf(tool, sizeof(tool), "%s/mitogen", dir && *dir ? dir : "build");
	if (access(tool, X_OK) < 0) {
		print_error("%s: %s (set MITOGEN_BIN)\n", tool, strerror(errno));
		return -1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mg-toolsb-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_no_net(void **state)
{
	int lines = 0;

	if (mg_test_ns_missing(CLONE_NEWNET | CLONE_NEWUTS)) {
		skip();
		return;
	}
	/* /proc/net/dev: two header lines, then one per interface. */
	assert_int_equal(tool_run("run --sandbox default --no-net -- cat /proc/net/dev"), 0);
	for (char *p = out; (p = strchr(p, '\n')); p++)
		lines++;
	assert_non_null(strstr(out, "lo:"));
	assert_int_equal(lines, 3);
	/* An inet socket: the program is killed by SIGSYS (128 + 31). */
	if (access("/usr/bin/python3", X_OK) == 0) {
		assert_int_equal(tool_run("run --no-net -- /usr/bin/python3 -c "
					  "'import socket; socket.socket()'"), 128 + 31);
		/* Without --no-net the same program is fine. */
		assert_int_equal(tool_run("run -- /usr/bin/python3 -c "
					  "'import socket; socket.socket()'"), 0);
	}
}

static void test_ro_rw(void **state)
{
	char args[PATH_MAX * 4], path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/ro", tmpdir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/rw", tmpdir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/ro/f", tmpdir);
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fputs("from ro\n", f);
		fclose(f);
	}
	snprintf(args, sizeof(args),
		 "run --sandbox strict --ro %s/ro --rw %s/rw -- /bin/sh -c "
		 "'cat %s/ro/f && echo x > %s/rw/g && echo y > %s/ro/h'",
		 tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);
	assert_int_not_equal(tool_run(args), 0);	/* the last write fails */
	assert_non_null(strstr(out, "from ro"));
	snprintf(path, sizeof(path), "%s/rw/g", tmpdir);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/ro/h", tmpdir);
	assert_int_equal(stat(path, &st), -1);
	/* A relative path is a usage error. */
	assert_int_equal(tool_run("run --ro etc -- true"), 2);
	assert_non_null(strstr(out, "--ro wants an absolute path"));
}

static void test_tenant(void **state)
{
	char args[256], want[64];
	int rc;

	snprintf(want, sizeof(want), "0::/mitogen/mgtool-%d", (int)getpid());
	snprintf(args, sizeof(args), "run --tenant mgtool-%d --pids-max 16 -- cat /proc/self/cgroup",
		 (int)getpid());
	rc = tool_run(args);
	if (rc == 255 && strstr(out, "cgroup: ")) {
		print_message("# skip: no tenant cgroups here: %s", out);
		skip();
		return;
	}
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, want));
	snprintf(args, sizeof(args),
		 "find /sys/fs/cgroup /run/mitogen/cgroup2 -depth -type d -path '*/mitogen/mgtool-%d' "
		 "-exec rmdir {} + 2>/dev/null", (int)getpid());
	if (system(args) < 0)
		print_error("rmdir tenant groups failed\n");
	assert_int_equal(tool_run("run --pids-max 0 -- true"), 2);
	assert_int_equal(tool_run("run --tenant 'a/b' -- true"), 255);	/* cannot start */
	assert_non_null(strstr(out, "is not 1-64 letters"));
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_net, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ro_rw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant, setup, teardown),
	};
	return MG_TEST_RUN("sandbox/tool", tests);
}
