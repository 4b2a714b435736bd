// SPDX-License-Identifier: MIT
/*
 * selftests/packaging/test_packaging.c — what a user of the installed
 * library relies on, each part a script beside this file run from the
 * source tree:
 *   - abi.sh: the library's ABI against the released baseline
 *     (packaging/abi/, abidiff), in the tree under test;
 *   - doc_blocks.sh: every C block of README.md and of the pages in
 *     docs/ compiles with nothing but `pkg-config --cflags --libs
 *     mitogen` (against the build tree) and runs;
 *   - install.sh: the Debian packages are built, installed, used (an
 *     example compiled with pkg-config, shared and --static; man -w;
 *     the completion; versions agree) and removed.
 * A script exits 0 (passed), 77 (skipped: its last line on stdout says
 * why) or anything else (failed). doc_blocks and install run in the
 * normal tree only: their programs are built by the system compiler
 * without sanitizers, and installing the packages twice proves nothing
 * more.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <mitogen/mitogen.h>

#include "selftests/lib/harness.h"

/* Is this the sanitizer tree (MG_TEST_BUILD_DIR .../build/asan)? */
static bool in_asan_tree(void)
{
	const char *b = getenv("MG_TEST_BUILD_DIR");
	size_t n = b ? strlen(b) : 0;

	return n >= 5 && !strcmp(b + n - 5, "/asan");
}

/*
 * Run selftests/packaging/SCRIPT from the source tree with its output
 * passed through as TAP comments; assert it passed, or skip when it says
 * it cannot run here (exit 77, the reason printed).
 */
static void run_script(const char *script)
{
	const char *src = getenv("MG_TEST_SRC_DIR");
	const char *build = getenv("MG_TEST_BUILD_DIR");
	char cmd[PATH_MAX * 2 + 128], line[4096], last[4096] = "";
	FILE *p;
	int st;

	assert_non_null(src);
	assert_non_null(build);
	snprintf(cmd, sizeof(cmd), "cd '%s' && bash selftests/packaging/%s '%s' 2>&1",
		 src, script, build);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		printf("# %s", line);
		snprintf(last, sizeof(last), "%s", line);
	}
	st = pclose(p);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77) {
		printf("# %s skipped: %s", script, last);
		skip();
	}
	if (WEXITSTATUS(st) != 0)
		fail_msg("%s exited %d: %s", script, WEXITSTATUS(st), last);
}

static void test_abi(void **state)
{
	run_script("abi.sh");
}

static void test_doc_blocks(void **state)
{
	if (in_asan_tree()) {
		printf("# doc_blocks: runs in build/ only (plain cc, no sanitizers)\n");
		skip();
	}
	run_script("doc_blocks.sh");
}

static void test_install_debs(void **state)
{
	if (in_asan_tree()) {
		printf("# install: runs in build/ only (the packages build their own tree)\n");
		skip();
	}
	run_script("install.sh");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abi),
		cmocka_unit_test(test_doc_blocks),
		cmocka_unit_test(test_install_debs),
	};

	mg_main(argc, argv);
	return MG_TEST_RUN("packaging", tests);
}
