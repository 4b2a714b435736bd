/* SPDX-License-Identifier: MIT */
/*
 * selftests/tools/toolrun.h — running the `mitogen` tool as a separate
 * program from a test: to the end (outputs in files), or in the
 * background with its stdout on a pipe read as it comes.
 *
 * The tool is $MITOGEN_BIN, else $MG_TEST_BUILD_DIR/mitogen, else
 * build/mitogen. Files go in one mkdtemp directory per test binary.
 */
#ifndef SELFTESTS_TOOLS_TOOLRUN_H
#define SELFTESTS_TOOLS_TOOLRUN_H

#include <stdbool.h>
#include <sys/types.h>

/* Seconds one run of the tool may take before it is killed: only a hang
 * reaches it (test_tool asserts its timeouts end runs well before). */
#define TOOLRUN_TIMEOUT 300

struct toolrun {
	int exit_code;		/* exit status, or 128+N when killed by N */
	double seconds;
	long maxrss_kb;		/* the tool's and its waited children's peak */
	char *out;		/* stdout, NUL-terminated */
	char *err;		/* stderr without "[source] LEVEL" log lines */
	char *err_raw;
};

/* Find the tool and make the directory; 0 or -1 (said why). For a
 * cmocka group setup. */
int toolrun_setup(void);
/* Remove the directory. */
int toolrun_teardown(void);
/* The test's own directory (valid after toolrun_setup). */
const char *toolrun_dir(void);
/* A monotonic clock in seconds. */
double toolrun_now(void);

/*
 * Run the tool with args (NULL-terminated, without argv[0]); stdin from
 * stdin_path (NULL: /dev/null), stderr on a pseudo-terminal when
 * tty_stderr (its output is read back into err). Fills r (freed by the
 * next call on it or toolrun_free). Fails the test if it does not finish
 * within TOOLRUN_TIMEOUT.
 */
void toolrun(struct toolrun *r, const char *stdin_path, bool tty_stderr,
	     const char *const *args);
#define TOOLRUN(r, ...) toolrun((r), NULL, false, (const char *const[]){ __VA_ARGS__, NULL })
void toolrun_free(struct toolrun *r);

/* Start the tool in the background, stdout on a pipe (*ret_fd, to read;
 * close it), stderr in the directory's "bg-stderr". Returns its pid. */
pid_t toolrun_start(const char *const *args, int *ret_fd);
/* Read fd until what was read holds want, or EOF, or the timeout; what
 * was read is appended to *buf (malloc'd, NUL-terminated). Returns true
 * when want came; want NULL: read to EOF, true when EOF came. */
bool toolrun_read_until(int fd, char **buf, const char *want, double timeout);
/* The whole of the file at path, NUL-terminated (malloc'd); the test
 * fails when it cannot be read. */
char *toolrun_slurp(const char *path);
/* What the tool toolrun_start started wrote to stderr so far (malloc'd). */
char *toolrun_bg_stderr(void);
/* Wait for pid (killing it after timeout); its exit status. */
int toolrun_wait(pid_t pid, double timeout);

/* buf has a line that is exactly line. */
bool toolrun_has_line(const char *buf, const char *line);
int toolrun_count_lines(const char *buf);

#endif
