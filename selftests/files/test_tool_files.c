// SPDX-License-Identifier: MIT
/*
 * selftests/files/test_tool_files.c — `mitogen copy` and `mitogen fetch`
 * run as a program: copies and fetches on local chains, the progress line
 * on a terminal only, a failed destination named in the summary and the
 * exit status, colliding fetch names refused before anything starts, no
 * ssh compression unless asked for, fsync before the rename unless
 * --no-fsync.
 *
 * Owns: the toolrun directory. Must not touch: library internals.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "selftests/lib/harness.h"
#include "selftests/tools/toolrun.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

static struct toolrun tr;

static void make_file(const char *path, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	char buf[4096];

	assert_true(fd >= 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 3);
	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);

		assert_int_equal(write(fd, buf, n), (ssize_t)n);
		len -= n;
	}
	close(fd);
}

static bool same(const char *a, const char *b)
{
	char cmd[2 * PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
	return system(cmd) == 0;
}

static void test_copy(void **state)
{
	char src[PATH_MAX], dst[PATH_MAX], out[PATH_MAX];

	snprintf(src, sizeof(src), "%s/c.bin", toolrun_dir());
	snprintf(dst, sizeof(dst), "%s/cdest", toolrun_dir());
	make_file(src, 3u << 20);
	mkdir(dst, 0755);
	/* Three targets, two of them through one shared first hop. */
	TOOLRUN(&tr, "copy", "-t", "local,local/local,local/fork", src, dst);
	if (tr.exit_code)
		fail_msg("copy: %d: %s", tr.exit_code, tr.err);
	snprintf(out, sizeof(out), "%s/c.bin", dst);
	assert_true(same(src, out));
	/* In a pipe: nothing on stderr at all. */
	assert_string_equal(tr.err, "");
	/* On a terminal: a progress line. */
	toolrun(&tr, NULL, true, (const char *const[]){ "copy", "-t", "local,fork", src, dst,
							 NULL });
	assert_int_equal(tr.exit_code, 0);
	assert_non_null(strstr(tr.err_raw, "copy: "));
	assert_non_null(strstr(tr.err_raw, "done, 0 failed of 2"));
}

static void test_copy_fails(void **state)
{
	char src[PATH_MAX], dst[PATH_MAX];

	snprintf(src, sizeof(src), "%s/f.bin", toolrun_dir());
	make_file(src, 1000);
	snprintf(dst, sizeof(dst), "%s/no/such/dir/f.bin", toolrun_dir());
	TOOLRUN(&tr, "copy", "-t", "local,fork", src, dst);
	assert_int_equal(tr.exit_code, 1);
	assert_non_null(strstr(tr.err, "mitogen: local: "));
	assert_non_null(strstr(tr.err, "no/such/dir/f.bin: no such file or directory"));
	assert_non_null(strstr(tr.err, "mitogen: copy: 2 of 2 targets failed"));
	/* A missing source: said once, before anything. */
	snprintf(src, sizeof(src), "%s/nosuch", toolrun_dir());
	TOOLRUN(&tr, "copy", src, toolrun_dir());
	assert_int_equal(tr.exit_code, 1);
	assert_non_null(strstr(tr.err, "nosuch: no such file or directory"));
	/* Usage. */
	TOOLRUN(&tr, "copy", src);
	assert_int_equal(tr.exit_code, 2);
	TOOLRUN(&tr, "copy", "--mode", "999", src, src);
	assert_int_equal(tr.exit_code, 2);
}

/* strace LOG of `mitogen copy [EXTRA] -t local SRC DST`: true when it ran. */
static bool copy_traced(const char *log, const char *extra, const char *src, const char *dst)
{
	const char *bin = getenv("MITOGEN_BIN"), *dir = getenv("MG_TEST_BUILD_DIR");
	char tool[PATH_MAX], cmd[4 * PATH_MAX + 200];

	if (bin && *bin)
		snprintf(tool, sizeof(tool), "%s", bin);
	else
		snprintf(tool, sizeof(tool), "%s/mitogen", dir && *dir ? dir : "build");
	snprintf(cmd, sizeof(cmd),
		 "strace -f -qq -e trace=fsync,fdatasync,rename,renameat,renameat2 -o '%s' "
		 "'%s' copy -q %s -t local '%s' '%s' >/dev/null 2>&1",
		 log, tool, extra, src, dst);
	return system(cmd) == 0;
}

/* The log's lines: how many call fsync or fdatasync, and the line number
 * of the rename of the temporary file (-1: none). Lines before/after it
 * that sync: *before, *after. */
static void trace_syncs(const char *log, int *before, int *after, int *rename_line)
{
	FILE *fp = fopen(log, "r");
	char line[1024];
	int n = 0;

	assert_non_null(fp);
	*before = *after = 0;
	*rename_line = -1;
	while (fgets(line, sizeof(line), fp)) {
		n++;
		if (strstr(line, "rename") && strstr(line, ".mgpart-") && strstr(line, "= 0"))
			*rename_line = n;
		else if ((strstr(line, "fsync(") || strstr(line, "fdatasync(")) &&
			 strstr(line, "= 0"))
			*(*rename_line < 0 ? before : after) += 1;
	}
	fclose(fp);
}

/*
 * A crash of the destination host must not leave an empty or partial
 * file under the final name: the temporary file is synced before the
 * rename and its directory after (seen with strace, the calls the
 * agent makes); --no-fsync makes neither.
 */
static void test_copy_fsync(void **state)
{
	char src[PATH_MAX], dst[PATH_MAX], log[PATH_MAX], out[PATH_MAX];
	int before, after, ren;

	if (access("/usr/bin/strace", X_OK) < 0) {
		printf("# SKIP test_copy_fsync: no /usr/bin/strace\n");
		skip();
	}
	snprintf(src, sizeof(src), "%s/s.bin", toolrun_dir());
	snprintf(log, sizeof(log), "%s/strace.log", toolrun_dir());
	make_file(src, 700000);
	snprintf(dst, sizeof(dst), "%s/sync1", toolrun_dir());
	mkdir(dst, 0755);
	if (!copy_traced(log, "", src, dst)) {
		printf("# SKIP test_copy_fsync: the copy does not run under strace here\n");
		skip();
	}
	snprintf(out, sizeof(out), "%s/s.bin", dst);
	assert_true(same(src, out));
	trace_syncs(log, &before, &after, &ren);
	if (ren < 0 || before < 1 || after < 1)
		fail_msg("default copy: rename at line %d, %d syncs before it, %d after", ren,
			 before, after);
	snprintf(dst, sizeof(dst), "%s/sync2", toolrun_dir());
	mkdir(dst, 0755);
	assert_true(copy_traced(log, "--no-fsync", src, dst));
	snprintf(out, sizeof(out), "%s/s.bin", dst);
	assert_true(same(src, out));
	trace_syncs(log, &before, &after, &ren);
	if (ren < 0 || before || after)
		fail_msg("--no-fsync: rename at line %d, %d syncs before it, %d after", ren, before,
			 after);
}

static void test_fetch(void **state)
{
	char src[PATH_MAX], dst[PATH_MAX], out[PATH_MAX];
	struct stat st;

	snprintf(src, sizeof(src), "%s/log.txt", toolrun_dir());
	snprintf(dst, sizeof(dst), "%s/fetched", toolrun_dir());
	make_file(src, 200000);
	mkdir(dst, 0755);
	TOOLRUN(&tr, "fetch", "-t", "local,fork", src, dst);
	if (tr.exit_code)
		fail_msg("fetch: %d: %s", tr.exit_code, tr.err);
	snprintf(out, sizeof(out), "%s/local/log.txt", dst);
	assert_true(same(src, out));
	snprintf(out, sizeof(out), "%s/fork/log.txt", dst);
	assert_true(same(src, out));
	/* Two targets into one directory: refused, nothing started. */
	snprintf(dst, sizeof(dst), "%s/fetched2", toolrun_dir());
	mkdir(dst, 0755);
	TOOLRUN(&tr, "fetch", "-t", "local,local/fork,local", src, dst);
	assert_int_equal(tr.exit_code, 2);
	assert_non_null(strstr(tr.err, "targets local and local would both be fetched"));
	snprintf(out, sizeof(out), "%s/local", dst);
	assert_int_equal(stat(out, &st), -1);
	/* A missing file on the target. */
	snprintf(src, sizeof(src), "%s/nosuch.log", toolrun_dir());
	TOOLRUN(&tr, "fetch", "-t", "local", src, dst);
	assert_int_equal(tr.exit_code, 1);
	assert_non_null(strstr(tr.err, "nosuch.log: no such file or directory"));
}

/* The whole of a small file, NUL-terminated ("" when it is missing). */
static char *slurp(const char *path)
{
	char *buf = calloc(1, 65536);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = 0;

	assert_non_null(buf);
	if (fd >= 0) {
		n = read(fd, buf, 65535);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/*
 * ssh compression is off for the file commands unless -o Compression=...
 * says (docs/files.md: zlib is slower than the link for bulk data). An
 * `ssh` of ours first on PATH records its arguments and fails, as an
 * unreachable host does.
 */
static void test_copy_no_compression(void **state)
{
	char bin[PATH_MAX], ssh[PATH_MAX], args[PATH_MAX], src[PATH_MAX], path[8192];
	const char *old = getenv("PATH");
	char *saved = strdup(old ? old : "/usr/bin:/bin"), *got;
	FILE *f;

	snprintf(bin, sizeof(bin), "%s/fakebin", toolrun_dir());
	snprintf(ssh, sizeof(ssh), "%s/ssh", bin);
	snprintf(args, sizeof(args), "%s/ssh.args", toolrun_dir());
	snprintf(src, sizeof(src), "%s/z.bin", toolrun_dir());
	make_file(src, 1000);
	assert_int_equal(mkdir(bin, 0755), 0);
	f = fopen(ssh, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\nprintf '%%s\\n' \"$@\" >>%s\necho 'ssh: no such host' >&2\nexit 255\n",
		args);
	fclose(f);
	assert_int_equal(chmod(ssh, 0755), 0);
	snprintf(path, sizeof(path), "%s:%s", bin, saved);
	setenv("PATH", path, 1);

	TOOLRUN(&tr, "copy", "-t", "ssh:mg-nohost", src, toolrun_dir());
	assert_int_equal(tr.exit_code, 255);
	got = slurp(args);
	assert_true(toolrun_has_line(got, "Compression=no"));
	free(got);
	unlink(args);
	/* The user's choice stands. */
	TOOLRUN(&tr, "copy", "-o", "Compression=yes", "-t", "ssh:mg-nohost", src, toolrun_dir());
	assert_int_equal(tr.exit_code, 255);
	got = slurp(args);
	assert_true(toolrun_has_line(got, "Compression=yes"));
	assert_false(toolrun_has_line(got, "Compression=no"));
	free(got);
	setenv("PATH", saved, 1);
	free(saved);
}

/*
 * The same when ssh.c cannot write its -F file and puts its defaults on
 * the command line (the master is not dumpable, so no memfd; a full table
 * of temporary files, or no usable TMPDIR: here TMPDIR names no
 * directory). There its "-C" beat our "-o Compression=no" wherever it
 * stood (ssh: -C sets compression outright, -o only when unset): a
 * 32-host copy started 8 ssh with a -F file and 24 with -C, whose ssh
 * clients spent some 65 s deflating random data (docs/files.md). The
 * `ssh` first on PATH asks the real one what it would do (ssh -G).
 */
static void test_copy_no_compression_fallback(void **state)
{
	char bin[PATH_MAX], ssh[PATH_MAX], args[PATH_MAX], src[PATH_MAX], path[8192];
	char notmp[PATH_MAX];
	const char *old = getenv("PATH"), *oldtmp = getenv("TMPDIR");
	char *saved = strdup(old ? old : "/usr/bin:/bin");
	char *savedtmp = oldtmp ? strdup(oldtmp) : NULL, *got;
	FILE *f;

	snprintf(bin, sizeof(bin), "%s/fakebin-g", toolrun_dir());
	snprintf(ssh, sizeof(ssh), "%s/ssh", bin);
	snprintf(args, sizeof(args), "%s/ssh-g.out", toolrun_dir());
	snprintf(src, sizeof(src), "%s/zg.bin", toolrun_dir());
	snprintf(notmp, sizeof(notmp), "%s/no-such-tmpdir", toolrun_dir());
	make_file(src, 1000);
	assert_int_equal(mkdir(bin, 0755), 0);
	f = fopen(ssh, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\nPATH='%s' ssh -G \"$@\" 2>&1 | grep -i '^compression ' >>%s\n"
		"echo 'ssh: no such host' >&2\nexit 255\n", saved, args);
	fclose(f);
	assert_int_equal(chmod(ssh, 0755), 0);
	snprintf(path, sizeof(path), "%s:%s", bin, saved);
	setenv("PATH", path, 1);

	for (int fallback = 0; fallback < 2; fallback++) {
		if (fallback)
			setenv("TMPDIR", notmp, 1);
		TOOLRUN(&tr, "copy", "-t", "ssh:mg-nohost", src, toolrun_dir());
		assert_int_equal(tr.exit_code, 255);
		got = slurp(args);
		if (!toolrun_has_line(got, "compression no"))
			fprintf(stderr, "# %s: ssh -G says: %s\n",
				fallback ? "command-line defaults" : "-F file", got);
		assert_true(toolrun_has_line(got, "compression no"));
		assert_int_equal(toolrun_count_lines(got), 1);
		free(got);
		unlink(args);
		/* The user's choice stands there too. */
		TOOLRUN(&tr, "copy", "-o", "Compression=yes", "-t", "ssh:mg-nohost", src,
			toolrun_dir());
		assert_int_equal(tr.exit_code, 255);
		got = slurp(args);
		assert_true(toolrun_has_line(got, "compression yes"));
		free(got);
		unlink(args);
	}
	if (savedtmp)
		setenv("TMPDIR", savedtmp, 1);
	else
		unsetenv("TMPDIR");
	setenv("PATH", saved, 1);
	free(saved);
	free(savedtmp);
}

static int setup(void **state)
{
	return toolrun_setup();
}

static int teardown(void **state)
{
	toolrun_free(&tr);
	return toolrun_teardown();
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_copy_fails),
		cmocka_unit_test(test_copy_fsync),
		cmocka_unit_test(test_fetch),
		cmocka_unit_test(test_copy_no_compression),
		cmocka_unit_test(test_copy_no_compression_fallback),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
