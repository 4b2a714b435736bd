// SPDX-License-Identifier: MIT
/*
 * selftests/tools/test_run.c — the mitogen tool running real local
 * targets: output streamed while the command runs (ordered by a FIFO
 * hand-off, not by sleeps), memory bounded while a target prints a lot,
 * -I broadcast of standard input, per-target --command-timeout with -f 2
 * over 16 targets, held steps (CMD1 \; CMD2 and `mitogen script`) over
 * one start-up per target, a hop several targets share started once,
 * -x and --hostfile, the progress line on a
 * terminal only, and --json from a real run.
 *
 * Owns: its directory (toolrun.c) and the FIFOs and files in it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <mitogen/mitogen.h>

/* cmocka.h needs these first. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "selftests/tools/toolrun.h"

static struct toolrun r;
/* a tool started in the background, killed by teardown if still there */
static pid_t bg = -1;

#define assert_exit(code)                                                     \
	do {                                                                  \
		if (r.exit_code != (code))                                    \
			fail_msg("exit code %d, expected %d; stdout: %s; stderr: %s", \
				 r.exit_code, (code), r.out, r.err_raw);      \
	} while (0)

#define assert_line(text, line)                                               \
	do {                                                                  \
		if (!toolrun_has_line((text), (line)))                        \
			fail_msg("no line \"%s\" in:\n%s", (line), (text));   \
	} while (0)

/* A path in the test's directory. */
static const char *path(const char *name)
{
	static char buf[4][PATH_MAX];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", toolrun_dir(), name);
	return buf[k];
}

/* Files in a directory. */
static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* --- streaming --------------------------------------------------------- */

/*
 * The command prints a line, then waits until the test opens a FIFO, then
 * prints another. The first line must reach us while the command still
 * waits: it cannot end before the hand-off, so nothing here depends on
 * how fast anything is.
 */
static void stream_check(const char *mode, const char *const first[2],
			 const char *const second[2])
{
	char script[PATH_MAX + 128];
	char *got = NULL;
	int fd, fifo, code;
	pid_t pid;

	unlink(path("fifo"));
	assert_int_equal(mkfifo(path("fifo"), 0600), 0);
	/* One read(2) of 3 bytes each, not sh's read: sh reads byte by
	 * byte, so two targets reading the FIFO at once could interleave
	 * ("g" and "ogo") and neither print "second go". */
	snprintf(script, sizeof(script),
		 "echo first; x=$(dd bs=3 count=1 <%s 2>/dev/null); echo second $x", path("fifo"));
	pid = bg = toolrun_start((const char *const[]){ "run", "-t", "local,fork", mode,
							"--", "sh", "-c", script, NULL },
				 &fd);
	/* both targets' first lines, before either can go on */
	for (int i = 0; i < 2; i++)
		assert_true(toolrun_read_until(fd, &got, first[i], 60));
	assert_null(strstr(got, "second"));
	/* the tool is still running: it has not waited for the end */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
	/* a line for each target's read, in one write (a pipe's reads of
	 * it are whole), the FIFO held open until both have read theirs */
	fifo = open(path("fifo"), O_WRONLY | O_CLOEXEC);
	assert_true(fifo >= 0);
	assert_int_equal(write(fifo, "go\ngo\n", 6), 6);
	for (int i = 0; i < 2; i++)
		assert_true(toolrun_read_until(fd, &got, second[i], 60));
	close(fifo);
	code = toolrun_wait(pid, 60);
	bg = -1;
	close(fd);
	assert_int_equal(code, 0);
	free(got);
}

static void test_stream_prefixed(void **state)
{
	(void)state;
	stream_check("-q", (const char *const[]){ "local: first\n", "fork: first\n" },
		     (const char *const[]){ "local: second go\n", "fork: second go\n" });
}

static void test_stream_json(void **state)
{
	(void)state;
	stream_check("--json",
		     (const char *const[]){ "\"index\":0,\"step\":0,\"data\":\"first\\n\"",
					    "\"index\":1,\"step\":0,\"data\":\"first\\n\"" },
		     (const char *const[]){ "\"index\":0,\"step\":0,\"data\":\"second go\\n\"",
					    "\"index\":1,\"step\":0,\"data\":\"second go\\n\"" });
}

/*
 * 64 MiB from one target through the tool: all of it arrives, and the
 * tool's peak memory stays far below it (mg.run kept it all, twice).
 */
static void test_stream_memory_bounded(void **state)
{
	char in[PATH_MAX + 64];
	long limit_kb = 48 * 1024;

	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	/* freed chunks wait in ASan's quarantine: keep it small here, and
	 * allow for the shadow memory */
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:quarantine_size_mb=4", 1);
	limit_kb = 96 * 1024;
#endif
	snprintf(in, sizeof(in), "head -c 67108864 /dev/zero | tr '\\0' x; echo");
	TOOLRUN(&r, "run", "-t", "local", "--", "sh", "-c", in);
	assert_exit(0);
	assert_int_equal(strlen(r.out), 67108864 + 1);
	for (size_t i = 0; i < 67108864; i += 4096)
		assert_int_equal(r.out[i], 'x');
	if (r.maxrss_kb >= limit_kb)
		fail_msg("peak RSS %ld KiB for 64 MiB of output (limit %ld KiB)",
			 r.maxrss_kb, limit_kb);
	print_message("# 64 MiB relayed, peak RSS of the tool and its children %ld KiB\n",
		      r.maxrss_kb);
}

/* --- stdin ------------------------------------------------------------- */

static void test_stdin_broadcast(void **state)
{
	FILE *f = fopen(path("input"), "we");

	(void)state;
	assert_non_null(f);
	fputs("one\ntwo\n", f);
	fclose(f);
	toolrun(&r, path("input"), false,
		(const char *const[]){ "run", "-I", "-t", "local,fork,local/local",
				       "--", "cat", NULL });
	assert_exit(0);
	assert_int_equal(toolrun_count_lines(r.out), 6);
	assert_line(r.out, "local: one");
	assert_line(r.out, "local: two");
	assert_line(r.out, "fork: one");
	assert_line(r.out, "fork: two");
	assert_line(r.out, "local/local: two");

	/* without -I the command reads nothing */
	toolrun(&r, path("input"), false,
		(const char *const[]){ "run", "-t", "local", "--", "cat", NULL });
	assert_exit(0);
	assert_string_equal(r.out, "");
}

/* --- timeouts ------------------------------------------------------------ */

/*
 * -f 2 over 16 targets, each command 1 s, --command-timeout 5: the run
 * takes 8 rounds, longer than one timeout, and no target fails, because
 * each target's time counts from when its command started.
 */
static void test_timeout_per_target(void **state)
{
	char targets[256] = "";

	(void)state;
	for (int i = 0; i < 16; i++)
		strcat(targets, i ? ",local" : "local");
	TOOLRUN(&r, "run", "-q", "-f", "2", "--command-timeout", "5", "-t", targets,
		"--", "sh", "-c", "sleep 1; echo done");
	assert_exit(0);
	assert_int_equal(toolrun_count_lines(r.out), 16);
	assert_true(r.seconds >= 5);
	assert_string_equal(r.err, "");
}

/* What a command printed before its timeout is shown; the others finish. */
static void test_timeout_keeps_output(void **state)
{
	char script[PATH_MAX + 128];

	(void)state;
	/* the second target waits until its agent goes (the timeout) */
	snprintf(script, sizeof(script),
		 "echo started; case $(tr -d '[:cntrl:]' </proc/$PPID/cmdline) in "
		 "mitogen:t1.*) tail --pid=$PPID -f /dev/null;; esac; echo finished");
	TOOLRUN(&r, "run", "--command-timeout", "2", "-t", "local,local/local",
		"--", "sh", "-c", script);
	assert_exit(253);
	assert_line(r.out, "local: started");
	assert_line(r.out, "local: finished");
	assert_line(r.out, "local/local: started");
	assert_null(strstr(r.out, "local/local: finished"));
	assert_non_null(strstr(r.err, "mitogen: local/local: TimeoutError: "));
	assert_true(r.seconds >= 2);
	assert_true(r.seconds < 60);
}

static void test_timeout_options(void **state)
{
	(void)state;
	TOOLRUN(&r, "run", "--connect-timeout", "0", "--", "true");
	assert_exit(2);
	assert_non_null(strstr(r.err, "--connect-timeout wants a positive number"));
	TOOLRUN(&r, "run", "--command-timeout", "x", "--", "true");
	assert_exit(2);
	TOOLRUN(&r, "--help");
	assert_non_null(strstr(r.out, "--connect-timeout S"));
	assert_non_null(strstr(r.out, "(default 30)"));
	assert_non_null(strstr(r.out, "--command-timeout S"));
}

/* --- hops shared by targets ------------------------------------------------ */

/* What follows "PREFIX: " on the line that starts so (a copy). */
static const char *after(const char *text, const char *prefix)
{
	static char buf[2][128];
	static int k;

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, prefix, strlen(prefix))) {
			k = !k;
			snprintf(buf[k], sizeof(buf[k]), "%.*s",
				 (int)strcspn(p + strlen(prefix), "\n"), p + strlen(prefix));
			return buf[k];
		}
	fail_msg("no line starting \"%s\" in:\n%s", prefix, text);
	return "";
}

/* The parent of the command's agent: the hop before the last. */
#define GRANDPARENT "cut -d' ' -f4 /proc/$PPID/stat"

/*
 * Targets that reach their last hop through the same hop share it: -t
 * local/local,local/fork starts that first `local` once, and both
 * targets' agents are its children (before, each target started its
 * own). A target's last hop stays its own: -t local,local/local is two
 * first hops. With -f 1 the targets run one after the other: the first
 * one's command outlives --command-timeout, its own hop is stopped by
 * force, and the second still gets the shared hop, alive. Nothing is
 * left when the tool is done.
 */
static void test_shared_hop(void **state)
{
	char shared[64], cmd[256];
	pid_t pid;
	double t0;

	(void)state;
	TOOLRUN(&r, "run", "-t", "local/local,local/fork", "--", "sh", "-c", GRANDPARENT);
	assert_exit(0);
	snprintf(shared, sizeof(shared), "%s", after(r.out, "local/local: "));
	assert_string_equal(after(r.out, "local/fork: "), shared);

	TOOLRUN(&r, "run", "-t", "local,local/local", "--", "sh", "-c",
		"echo $PPID; " GRANDPARENT);
	assert_exit(0);
	assert_true(strcmp(after(r.out, "local: "), after(r.out, "local/local: ")) != 0);

	snprintf(cmd, sizeof(cmd),
		 GRANDPARENT "; case $(tr -d '[:cntrl:]' </proc/$PPID/cmdline) in "
		 "mitogen:t0.local1) tail --pid=$PPID -f /dev/null;; esac");
	TOOLRUN(&r, "run", "-f", "1", "--command-timeout", "3", "-t",
		"local/local,local/fork", "--", "sh", "-c", cmd);
	assert_exit(253);
	snprintf(shared, sizeof(shared), "%s", after(r.out, "local/local: "));
	assert_string_equal(after(r.out, "local/fork: "), shared);
	assert_non_null(strstr(r.err, "mitogen: local/local: TimeoutError: "));
	assert_null(strstr(r.err, "mitogen: local/fork: "));
	assert_true(r.seconds < 120);
	/* the shared hop is gone too (reaped by the tool, or by init after) */
	pid = (pid_t)atoi(shared);
	assert_true(pid > 1);
	t0 = toolrun_now();
	for (;;) {
		char st[64], buf[512], *p;
		FILE *f;

		snprintf(st, sizeof(st), "/proc/%d/stat", (int)pid);
		f = fopen(st, "re");
		p = f && fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		if (f)
			fclose(f);
		/* gone, or a zombie its new parent has yet to reap */
		if (!p || p[2] == 'Z')
			break;
		if (toolrun_now() - t0 > 60)
			fail_msg("the shared hop (pid %d) still runs after the tool", (int)pid);
		usleep(50 * 1000);
	}
}

/* --- held steps ---------------------------------------------------------- */

/*
 * Two steps on three targets: the first leaves a file named after the
 * agent's pid ($PPID of the command), the second finds it. Three files
 * in all: one agent (one start-up) per target served both steps.
 */
static void test_steps_one_startup(void **state)
{
	char one[PATH_MAX + 64], two[PATH_MAX + 64];

	(void)state;
	mkdir(path("agents"), 0700);
	snprintf(one, sizeof(one), "echo x >%s/$PPID; echo one", path("agents"));
	snprintf(two, sizeof(two), "test -f %s/$PPID && echo two-sees-one", path("agents"));
	TOOLRUN(&r, "run", "-t", "local,fork,local/local", "--", "sh", "-c", one, ";",
		"sh", "-c", two);
	assert_exit(0);
	assert_int_equal(toolrun_count_lines(r.out), 6);
	assert_line(r.out, "local: two-sees-one");
	assert_line(r.out, "fork: two-sees-one");
	assert_line(r.out, "local/local: two-sees-one");
	assert_int_equal(count_files(path("agents")), 3);
}

#define IF_T1(then) \
	"case $(tr -d '[:cntrl:]' </proc/$PPID/cmdline) in mitogen:t1.*) " then ";; esac; "

static void test_steps_stop_at_failure(void **state)
{
	(void)state;
	/* t1 fails its first step and runs no more; the others go on */
	TOOLRUN(&r, "run", "-t", "local,local/local,local", "--", "sh", "-c",
		IF_T1("exit 4") "echo a", ";", "echo", "b");
	assert_exit(4);
	assert_line(r.out, "local: b");
	assert_null(strstr(r.out, "local/local: b"));
	assert_non_null(strstr(r.err, "mitogen: local/local: exit status 4"));

	/* -k: it goes on */
	TOOLRUN(&r, "run", "-k", "-t", "local,local/local,local", "--", "sh", "-c",
		IF_T1("exit 4") "echo a", ";", "echo", "b");
	assert_exit(4);
	assert_line(r.out, "local/local: b");

	TOOLRUN(&r, "run", "--", "true", ";");
	assert_exit(2);
	assert_non_null(strstr(r.err, "empty step"));
}

static void test_script(void **state)
{
	FILE *f = fopen(path("steps"), "we");
	char uid[32];

	(void)state;
	assert_non_null(f);
	fprintf(f, "# a comment, then a blank line\n\n"
		   "run echo 'two words' \"and \\\"quoted\\\"\"\n"
		   "call mg.getuid\n"
		   "run -- sh -c 'echo $0' from-script\n");
	fclose(f);
	TOOLRUN(&r, "script", "-t", "local,fork", path("steps"));
	assert_exit(0);
	snprintf(uid, sizeof(uid), "local: %u", (unsigned)getuid());
	assert_line(r.out, "local: two words and \"quoted\"");
	assert_line(r.out, uid);
	assert_line(r.out, "fork: from-script");
	assert_int_equal(toolrun_count_lines(r.out), 6);

	f = fopen(path("bad-steps"), "we");
	assert_non_null(f);
	fprintf(f, "run true\nfrobnicate x\n");
	fclose(f);
	TOOLRUN(&r, "script", path("bad-steps"));
	assert_exit(2);
	assert_non_null(strstr(r.err, "bad-steps:2: unknown step 'frobnicate'"));

	f = fopen(path("unclosed"), "we");
	assert_non_null(f);
	fprintf(f, "run echo 'oops\n");
	fclose(f);
	TOOLRUN(&r, "script", path("unclosed"));
	assert_exit(2);
	assert_non_null(strstr(r.err, "unclosed:1: unclosed ' quote"));
}

/* --- selecting targets --------------------------------------------------- */

static void test_exclude_and_hostfile(void **state)
{
	FILE *f = fopen(path("hosts"), "we");

	(void)state;
	TOOLRUN(&r, "call", "-t", "local,fork,local/local", "-x", "fork", "mg.noop");
	assert_exit(0);
	assert_int_equal(toolrun_count_lines(r.out), 2);
	assert_null(strstr(r.out, "fork"));

	TOOLRUN(&r, "call", "-t", "local", "-x", "local", "mg.noop");
	assert_exit(2);
	assert_non_null(strstr(r.err, "no target left"));

	assert_non_null(f);
	fprintf(f, "# targets\nlocal\n  fork , local/local  # two more\n\n");
	fclose(f);
	TOOLRUN(&r, "call", "--hostfile", path("hosts"), "mg.noop");
	assert_exit(0);
	assert_int_equal(toolrun_count_lines(r.out), 3);
	{
		char caret[PATH_MAX + 2];

		snprintf(caret, sizeof(caret), "^%s", path("hosts"));
		TOOLRUN(&r, "call", "-t", caret, "-x", "local/local", "mg.noop");
		assert_exit(0);
		assert_int_equal(toolrun_count_lines(r.out), 2);
	}
	TOOLRUN(&r, "call", "--hostfile", path("no-such-file"), "mg.noop");
	assert_exit(2);
	assert_non_null(strstr(r.err, "no-such-file: No such file"));
}

/* --- progress, summary, json ---------------------------------------------- */

static void test_progress_on_terminal_only(void **state)
{
	(void)state;
	/* stderr a terminal, several targets: progress and a summary */
	toolrun(&r, NULL, true,
		(const char *const[]){ "run", "-t", "local,fork,local", "--", "sh", "-c",
				       "exit 0", NULL });
	assert_exit(0);
	assert_non_null(strstr(r.err_raw, "\r\033[K["));
	assert_non_null(strstr(r.err_raw, "/3 done, "));
	assert_non_null(strstr(r.err_raw, "mitogen: 3 targets: 3 ok, 0 failed"));
	/* -q: neither */
	toolrun(&r, NULL, true,
		(const char *const[]){ "run", "-q", "-t", "local,fork", "--", "true", NULL });
	assert_exit(0);
	assert_null(strstr(r.err_raw, "done, "));
	assert_null(strstr(r.err_raw, "targets:"));
	/* a file: neither; --json: neither, on a terminal too */
	TOOLRUN(&r, "run", "-t", "local,fork", "--", "true");
	assert_string_equal(r.err_raw, "");
	toolrun(&r, NULL, true,
		(const char *const[]){ "run", "--json", "-t", "local,fork", "--", "true", NULL });
	assert_null(strstr(r.err_raw, "done, "));
	assert_null(strstr(r.err_raw, "targets:"));
}

static void test_gather_real(void **state)
{
	(void)state;
	TOOLRUN(&r, "run", "-b", "--summary", "-t", "local,local/local,local", "--",
		"sh", "-c", IF_T1("echo different; exit 3") "echo same");
	assert_exit(3);
	assert_non_null(strstr(r.out, "local (2)\n----------------\nsame\n"));
	assert_non_null(strstr(r.out, "local/local (1): exit status 3\n"));
	assert_non_null(strstr(r.err, "mitogen: 3 targets: 2 ok, 1 failed (exit status 3)\n"
				      "mitogen:   local/local (1): exit status 3\n"));
	TOOLRUN(&r, "run", "--json", "-b", "--", "true");
	assert_exit(2);
}

static void test_json_real(void **state)
{
	(void)state;
	TOOLRUN(&r, "call", "--json", "-t", "local,local/local", "mg.stat", "/nonexistent");
	assert_exit(1);
	assert_non_null(strstr(r.out, "\"event\":\"error\""));
	assert_non_null(strstr(r.out, "\"kind\":\"call\",\"error\":\"CallError\",\"errno\":2,"));
	assert_non_null(strstr(r.out, "\"hop\":2,\"hop_spec\":\"local\""));
	assert_null(strstr(r.out, "t0.local"));
	assert_non_null(strstr(r.out, "\"event\":\"end\""));
	assert_string_equal(r.err, "");
	TOOLRUN(&r, "run", "--json", "--", "sh", "-c", "kill -TERM $$");
	assert_exit(128 + SIGTERM);
	assert_non_null(strstr(r.out, "\"status\":null,\"signal\":15"));
}

/* Every option the tool takes is in --help. */
static void test_help_documents_every_option(void **state)
{
	static const char *const opts[] = {
		"-t, -w, --target", "-t ^FILE", "--type", "--hostfile", "-x, --exclude",
		"-l, --user", "-i, --identity", "-p, --port", "--ssh-option", "--ssh-config",
		"--password-file", "MITOGEN_PASSWORD", "-f, --fanout", "--connect-timeout",
		"--command-timeout", "--timeout", "-I, --stdin", "-k, --keep-going",
		"-b, --gather", "--diff", "--json", "--summary", "-q, --quiet",
		"-v, --verbose", "--sandbox", "--caps", "--nofile", "--no-net", "--ro",
		"--rw", "--exec", "--tenant", "--pids-max", "--tenant-deny", "--help",
		"--version", "mitogen run", "mitogen call", "mitogen script", "mitogen stats",
		"252", "253", "254", "255",
	};

	(void)state;
	TOOLRUN(&r, "--help");
	assert_exit(0);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (!strstr(r.out, opts[i]))
			fail_msg("--help does not mention %s", opts[i]);
}

static int teardown(void **state)
{
	(void)state;
	toolrun_free(&r);
	if (bg > 0) {
		/* a failed test left it waiting on its FIFO: the tool and
		 * what it started go (the chain's agents end with it) */
		unlink(path("fifo"));
		kill(bg, SIGKILL);
		waitpid(bg, NULL, 0);
		bg = -1;
	}
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	return toolrun_setup();
}

static int group_teardown(void **state)
{
	(void)state;
	return toolrun_teardown();
}

int main(int argc, char **argv)
{
	/* Every selftest starts so (this one starts no context itself). */
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_stream_prefixed, teardown),
		cmocka_unit_test_teardown(test_stream_json, teardown),
		cmocka_unit_test_teardown(test_stream_memory_bounded, teardown),
		cmocka_unit_test_teardown(test_stdin_broadcast, teardown),
		cmocka_unit_test_teardown(test_timeout_per_target, teardown),
		cmocka_unit_test_teardown(test_timeout_keeps_output, teardown),
		cmocka_unit_test_teardown(test_timeout_options, teardown),
		cmocka_unit_test_teardown(test_shared_hop, teardown),
		cmocka_unit_test_teardown(test_steps_one_startup, teardown),
		cmocka_unit_test_teardown(test_steps_stop_at_failure, teardown),
		cmocka_unit_test_teardown(test_script, teardown),
		cmocka_unit_test_teardown(test_exclude_and_hostfile, teardown),
		cmocka_unit_test_teardown(test_progress_on_terminal_only, teardown),
		cmocka_unit_test_teardown(test_gather_real, teardown),
		cmocka_unit_test_teardown(test_json_real, teardown),
		cmocka_unit_test_teardown(test_help_documents_every_option, teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
