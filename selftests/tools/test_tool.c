// SPDX-License-Identifier: MIT
/*
 * selftests/tools/test_tool.c — the `mitogen` command, run for real as a
 * separate program: what it relays, what it prints, its exit codes.
 *
 * The tool is run by selftests/tools/toolrun.c (its path, the timeout,
 * stdout and stderr in files of a mkdtemp directory).
 * Must not touch: library internals.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
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

/* Result of the last run; freed by the next run and by test_teardown. */
static struct toolrun last;

#define RUN_TOOL(...) TOOLRUN(&last, __VA_ARGS__)

/* The exit code was `code`; show what the tool said otherwise. */
static void assert_exit(int code)
{
	if (last.exit_code != code)
		fail_msg("exit code %d, expected %d; stdout: %s; stderr: %s",
			 last.exit_code, code, last.out, last.err_raw);
}

/* --- run ------------------------------------------------------------------ */

static void test_run_relays_local(void **state)
{
	RUN_TOOL("run", "--", "sh", "-c", "echo out; echo err >&2; exit 7");
	assert_exit(7);
	assert_string_equal(last.out, "out\n");
	assert_string_equal(last.err, "err\n");
}

static void test_run_relays_fork(void **state)
{
	RUN_TOOL("run", "-t", "fork", "--", "sh", "-c",
		 "echo out; echo err >&2; exit 7");
	assert_exit(7);
	assert_string_equal(last.out, "out\n");
	assert_string_equal(last.err, "err\n");
}

static void test_run_without_dashes(void **state)
{
	/* options after CMD belong to CMD */
	RUN_TOOL("run", "-t", "local", "echo", "-n", "-v", "x");
	assert_exit(0);
	assert_string_equal(last.out, "-v x");
}

static void test_run_success_and_signal(void **state)
{
	RUN_TOOL("run", "--", "true");
	assert_exit(0);
	assert_string_equal(last.out, "");
	RUN_TOOL("run", "--", "sh", "-c", "kill -TERM $$");
	assert_exit(128 + SIGTERM);
}

static void test_run_missing_program(void **state)
{
	RUN_TOOL("run", "--", "mg-no-such-program-x7");
	assert_exit(252);
	assert_non_null(strstr(last.err_raw, "mg-no-such-program-x7"));
}

static void test_run_no_command(void **state)
{
	RUN_TOOL("run");
	assert_exit(2);
	RUN_TOOL("run", "--");
	assert_exit(2);
	RUN_TOOL("run", "-t", "fork");
	assert_exit(2);
}

/*
 * A command that never ends by itself but does not outlive the agent that
 * runs it (the tool stops a target that timed out by killing its chain):
 * no test leaves a process behind.
 */
#define UNTIL_AGENT_GOES "exec tail --pid=$PPID -f /dev/null"

static void test_run_timeout(void **state)
{
	/* --timeout: --connect-timeout and --command-timeout, 5 s each */
	RUN_TOOL("run", "--timeout", "5", "--", "sh", "-c", UNTIL_AGENT_GOES);
	assert_exit(253);
	/* ended by the timeout (plus shutting the child down), not by sleep:
	 * no sooner than the timeout; the upper bound only a hang reaches */
	assert_true(last.seconds >= 5);
	assert_true(last.seconds < 300);
}

/* --- call ----------------------------------------------------------------- */

static void test_call_getuid(void **state)
{
	char expect[32];

	snprintf(expect, sizeof(expect), "%u\n", (unsigned)getuid());
	RUN_TOOL("call", "mg.getuid");
	assert_exit(0);
	assert_string_equal(last.out, expect);
	RUN_TOOL("call", "-t", "fork", "mg.getuid");
	assert_exit(0);
	assert_string_equal(last.out, expect);
}

static void test_call_stat_missing(void **state)
{
	RUN_TOOL("call", "mg.stat", "/nonexistent");
	assert_exit(1);
	assert_string_equal(last.out, "");
	assert_true(strstr(last.err_raw, "ENOENT") ||
		    strstr(last.err_raw, "No such file"));
	assert_non_null(strstr(last.err_raw, "mitogen: "));
}

static void test_call_json_args(void **state)
{
	/* a JSON list, a plain string and null, in one call */
	RUN_TOOL("call", "mg.run",
		 "[\"sh\",\"-c\",\"printf %s \\\"$0\\\"\",\"json-ok\"]",
		 "null");
	assert_exit(0);
	assert_non_null(strstr(last.out, "json-ok"));
	assert_non_null(strstr(last.out, "\"status\""));
	assert_true(last.out[strlen(last.out) - 1] == '\n');

	RUN_TOOL("call", "mg.noop");
	assert_exit(0);
	assert_string_equal(last.out, "null\n");

	/* a wrong argument type is the function's CallError */
	RUN_TOOL("call", "mg.stat", "42");
	assert_exit(1);
}

static void test_call_unknown_function(void **state)
{
	RUN_TOOL("call", "mg.no_such_function");
	assert_exit(1);
	assert_non_null(strstr(last.err_raw, "mitogen: "));
}

/* --- targets: chains (-t a/b/c) and several at once (-t a,b) --------------- */

/* Number of lines in text (a last line without '\n' counts). */
static int count_lines(const char *text)
{
	size_t len = strlen(text);
	int n = 0;

	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	return n + (len > 0 && text[len - 1] != '\n');
}

/* text has a line that is exactly `line`. */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

#define assert_line(text, line)                                             \
	do {                                                                \
		if (!has_line((text), (line)))                              \
			fail_msg("no line \"%s\" in:\n%s", (line), (text)); \
	} while (0)

/*
 * A command whose behaviour depends on the target: it runs in the last
 * hop, whose argv is "mitogen:<remote name>" for a local hop ("t1.local1"
 * is the second hop of the second target); a fork hop keeps the tool's
 * argv, which holds this text too, so the pattern is anchored. Without '"' or '\', so that it
 * can go into JSON as it is.
 */
#define IF_TARGET(pattern, then)                                             \
	"case $(tr -d '[:cntrl:]' </proc/$PPID/cmdline) in mitogen:" pattern \
	") " then ";; esac; "

static void test_chain_call_getpid(void **state)
{
	long pid;
	char *end;

	RUN_TOOL("call", "-t", "local/fork/local", "mg.getpid");
	assert_exit(0);
	/* one target: no prefix, as without -t */
	pid = strtol(last.out, &end, 10);
	assert_string_equal(end, "\n");
	assert_true(pid > 1);
	assert_true(pid != getpid());
	assert_string_equal(last.err, "");
}

static void test_chain_run_three_deep(void **state)
{
	RUN_TOOL("run", "-t", "local/fork/local", "--", "sh", "-c",
		 "tr '\\0' '\\n' </proc/$PPID/cmdline; echo err >&2; exit 6");
	assert_exit(6);
	/* the command ran in the last hop, named after its target and hop */
	assert_string_equal(last.out, "mitogen:t0.local2\n");
	assert_string_equal(last.err, "err\n");

	RUN_TOOL("run", "-t", "fork/local/fork", "--", "sh", "-c", "echo deep");
	assert_exit(0);
	assert_string_equal(last.out, "deep\n");
}

static void test_targets_run_prefixed(void **state)
{
	RUN_TOOL("run", "-t", "local,fork,local/local", "--", "sh", "-c",
		 "echo hi; echo err >&2");
	assert_exit(0);
	assert_int_equal(count_lines(last.out), 3);
	assert_line(last.out, "local: hi");
	assert_line(last.out, "fork: hi");
	assert_line(last.out, "local/local: hi");
	assert_int_equal(count_lines(last.err), 3);
	assert_line(last.err, "local: err");
	assert_line(last.err, "fork: err");
	assert_line(last.err, "local/local: err");

	/* every line is prefixed; a last line without '\n' gets one */
	RUN_TOOL("run", "-t", "local,fork", "--", "printf", "a\\n\\nb");
	assert_exit(0);
	assert_int_equal(count_lines(last.out), 6);
	assert_line(last.out, "local: a");
	assert_line(last.out, "local: ");
	assert_line(last.out, "local: b");
	assert_line(last.out, "fork: b");
}

static void test_targets_repeated_option(void **state)
{
	char line[64];

	/* -t given twice: the targets add up */
	RUN_TOOL("call", "-t", "local", "--target", "fork/local", "mg.getuid");
	assert_exit(0);
	assert_int_equal(count_lines(last.out), 2);
	snprintf(line, sizeof(line), "local: %u", (unsigned)getuid());
	assert_line(last.out, line);
	snprintf(line, sizeof(line), "fork/local: %u", (unsigned)getuid());
	assert_line(last.out, line);
}

/*
 * Each target waits (up to 2 s) until 4 targets are inside the command at
 * once, then prints how many were: -f bounds that number.
 */
static void run_fanout(const char *width, const char *dir)
{
	char script[512];

	snprintf(script, sizeof(script),
		 "d=%s; touch $d/$$; i=0; "
		 "while [ $(ls $d | wc -l) -lt 4 ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done; "
		 "ls $d | wc -l; sleep 0.3; rm $d/$$",
		 dir);
	RUN_TOOL("run", "-f", width, "-t", "local,local,fork,local", "--", "sh",
		 "-c", script);
	assert_exit(0);
	assert_int_equal(count_lines(last.out), 4);
}

static void test_targets_fanout(void **state)
{
	char dir[PATH_MAX + 16];
	const char *p;

	snprintf(dir, sizeof(dir), "%s/inside", toolrun_dir());
	assert_int_equal(mkdir(dir, 0700), 0);

	/* wide enough: all four are inside together */
	run_fanout("4", dir);
	for (p = last.out; (p = strstr(p, ": ")); p += 2)
		assert_int_equal(atoi(p + 2), 4);

	/* -f 2: never more than two at once, and each is still run */
	run_fanout("2", dir);
	for (p = last.out; (p = strstr(p, ": ")); p += 2) {
		assert_true(atoi(p + 2) >= 1);
		assert_true(atoi(p + 2) <= 2);
	}

	RUN_TOOL("run", "-f", "0", "--", "true");
	assert_exit(2);
	assert_non_null(strstr(last.err, "-f wants a number of targets from 1 to 1024, not '0'"));
}

static void test_tenant_deny_flags(void **state)
{
	RUN_TOOL("run", "--tenant-deny", "smtp", "--", "true");
	assert_exit(2);
	assert_non_null(strstr(last.err, "--tenant-deny wants a list of inet, netlink, packet, not 'smtp'"));
	RUN_TOOL("run", "--tenant-deny", "inet,", "--", "true");
	assert_exit(2);
	RUN_TOOL("run", "--tenant-deny", "inet", "--", "true");
	assert_exit(255);
	assert_non_null(strstr(last.err, "tenant_deny needs a tenant"));
}

/* A port on 127.0.0.1 that nothing listens on: bound, then closed. */
static int closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void test_targets_host_ranges(void **state)
{
	char port[16];

	/* ranges expand before hops are read: local[1-2] names the hosts
	 * local1 and local2 (plain hosts are ssh hosts), each failing on
	 * its own; HostName keeps ssh on 127.0.0.1, where nothing listens */
	snprintf(port, sizeof(port), "%d", closed_port());
	RUN_TOOL("run", "-t", "local[1-2]", "-p", port, "--ssh-option",
		 "HostName=127.0.0.1", "--", "true");
	assert_exit(255);
	assert_non_null(strstr(last.err, "mitogen: local1: StreamError: "));
	assert_non_null(strstr(last.err, "mitogen: local2: StreamError: "));
	assert_null(strstr(last.err, ".ssh"));
	RUN_TOOL("run", "-t", "local[2-1]", "--", "true");
	assert_exit(2);
	assert_non_null(strstr(last.err, "range 2-1 goes backwards"));
	RUN_TOOL("run", "-t", "x[1-2000]", "--", "true");
	assert_exit(2);
	assert_non_null(strstr(last.err, "names more than 1024 hosts"));
}

static void test_targets_worst_status(void **state)
{
	RUN_TOOL("run", "-t", "local,fork", "--", "sh", "-c", "exit 3");
	assert_exit(3);

	/* the highest status wins, whichever target has it */
	RUN_TOOL("run", "-t", "local,local/local,fork", "--", "sh", "-c",
		 IF_TARGET("t1.*", "exit 5") "exit 2");
	assert_exit(5);
	RUN_TOOL("run", "-t", "local,local/local", "--", "sh", "-c",
		 IF_TARGET("t0.*", "exit 0") "exit 1");
	assert_exit(1);

	/* killed by a signal: 128+N, above any exit status below it */
	RUN_TOOL("run", "-t", "local/local,local", "--", "sh", "-c",
		 IF_TARGET("t0.*", "kill -TERM $$") "echo alive; exit 7");
	assert_exit(128 + SIGTERM);
	assert_string_equal(last.out, "local: alive\n");

	/* a target that cannot run the command: 252, not a status of its own */
	RUN_TOOL("run", "-t", "local,fork", "--", "mg-no-such-program-x7");
	assert_exit(252);
	assert_non_null(strstr(last.err, "mitogen: local: CallError"));
	assert_non_null(strstr(last.err, "mitogen: fork: CallError"));
}

static void test_targets_call_results(void **state)
{
	RUN_TOOL("call", "-t", "local,fork/fork", "mg.noop");
	assert_exit(0);
	assert_int_equal(count_lines(last.out), 2);
	assert_line(last.out, "local: null");
	assert_line(last.out, "fork/fork: null");

	/* each target's error on its own prefixed line; the worst code */
	RUN_TOOL("call", "-t", "local,local", "mg.stat", "/nonexistent");
	assert_exit(1);
	assert_string_equal(last.out, "");
	assert_int_equal(count_lines(last.err), 2);
	for (const char *p = last.err; *p; p = strchr(p, '\n') + 1) {
		assert_true(strncmp(p, "mitogen: local: CallError: ", 27) == 0);
		assert_true(strstr(p, "No such file") < strchr(p, '\n'));
	}
	/* never the tool's internal names of its contexts */
	assert_null(strstr(last.err, "t0.local"));
	assert_null(strstr(last.err, "t1.local"));

	/* one target's context dies (ChannelError, 254), the other answers */
	RUN_TOOL("call", "-t", "local,fork", "mg.run",
		 "[\"sh\",\"-c\",\"" IF_TARGET(
			 "t0.*", "kill -KILL $PPID") "echo ok\"]");
	assert_exit(254);
	assert_int_equal(count_lines(last.out), 1);
	assert_true(strncmp(last.out, "fork: {", 7) == 0);
	assert_non_null(strstr(last.out, "ok"));
	assert_non_null(strstr(last.err, "mitogen: local: ChannelError: "));

	RUN_TOOL("run", "-t", "local/local,fork", "--", "sh", "-c",
		 IF_TARGET("t0.*", "kill -KILL $PPID") "echo ok; exit 3");
	assert_exit(254);
	assert_string_equal(last.out, "fork: ok\n");
	assert_non_null(
		strstr(last.err, "mitogen: local/local: ChannelError: "));
}

static void test_targets_timeout(void **state)
{
	/*
	 * The second target does not answer in time; the first still counts.
	 * The timeout is generous: the first target's answer must come
	 * before it however loaded the machine (a 2 s one failed under ASan
	 * at load 20), and the second never answers, so the test proves the
	 * same at any length. Upper bounds only a hang reaches.
	 */
	RUN_TOOL("run", "--command-timeout", "20", "-t", "local,local/local", "--", "sh",
		 "-c", IF_TARGET("t1.*", UNTIL_AGENT_GOES) "echo fast");
	assert_exit(253);
	assert_string_equal(last.out, "local: fast\n");
	assert_non_null(
		strstr(last.err, "mitogen: local/local: TimeoutError: "));
	assert_null(strstr(last.err, "mitogen: local: "));
	assert_true(last.seconds >= 20);
	assert_true(last.seconds < 300);

	/* none answers, chains included: no hang on the busy hops */
	RUN_TOOL("run", "--command-timeout", "1", "-t", "local/fork/local,fork", "--",
		 "sh", "-c", UNTIL_AGENT_GOES);
	assert_exit(253);
	assert_string_equal(last.out, "");
	assert_non_null(
		strstr(last.err, "mitogen: local/fork/local: TimeoutError: "));
	assert_non_null(strstr(last.err, "mitogen: fork: TimeoutError: "));
	assert_true(last.seconds < 300);

	/* a call's status goes with the timeout too */
	RUN_TOOL("call", "--command-timeout", "1", "-t", "local/local", "mg.run",
		 "[\"sh\",\"-c\",\"" UNTIL_AGENT_GOES "\"]");
	assert_exit(253);
	assert_non_null(strstr(last.err, "mitogen: TimeoutError: "));
	assert_true(last.seconds < 300);
}

static void assert_bad_spec(const char *spec, const char *what)
{
	RUN_TOOL("run", "-t", spec, "--", "true");
	assert_exit(2);
	assert_string_equal(last.out, "");
	if (!strstr(last.err, what))
		fail_msg("-t '%s': no \"%s\" in: %s", spec, what, last.err);
	assert_non_null(strstr(last.err, "mitogen --help"));
}

static void test_targets_bad_specs(void **state)
{
	char deep[256] = "local", *many;

	assert_bad_spec("", "no target given");
	assert_bad_spec("local//fork", "empty hop in target 'local//fork'");
	assert_bad_spec("/local", "empty hop");
	assert_bad_spec("local/", "empty hop");
	assert_bad_spec("ssh", "'ssh' in target 'ssh' needs an argument (ssh:[USER@]HOST[:PORT])");
	assert_bad_spec("telnet:x", "(supported: local, fork, ssh, sudo, su, doas, podman, docker, docker-image, buildah, lxc, lxd, incus, kubectl, machinectl, setns)");
	assert_bad_spec("local/telnet:root@host", "unsupported hop kind 'telnet'");
	assert_bad_spec("local,", "empty target");
	assert_bad_spec(",local", "empty target");
	assert_bad_spec("local,,fork", "empty target");
	assert_bad_spec("local:x", "'local' takes no argument");
	assert_bad_spec("Local:x", "unsupported hop kind 'Local'");
	assert_bad_spec("-oProxyCommand=x", "unsupported hop kind");
	for (int i = 1; i < 17; i++)
		strcat(deep, "/fork");
	assert_bad_spec(deep, "at most 16");
	many = malloc(1025 * 6);
	assert_non_null(many);
	many[0] = '\0';
	for (int i = 0; i < 1025; i++)
		strcat(many, i ? ",fork" : "fork");
	assert_bad_spec(many, "too many targets (at most 1024)");
	free(many);

	/* a bad -t after a good one is still an error */
	RUN_TOOL("call", "-t", "local", "-t", "fork,,", "mg.noop");
	assert_exit(2);
}

/* --- usage ---------------------------------------------------------------- */

static void test_usage_errors(void **state)
{
	RUN_TOOL("run", "-t", "bogus:x", "--", "true");
	assert_exit(2);
	assert_non_null(strstr(last.err, "bogus"));
	RUN_TOOL("call", "-t", "ssh", "mg.noop");
	assert_exit(2);
	RUN_TOOL("call");
	assert_exit(2);
	RUN_TOOL("frobnicate");
	assert_exit(2);
	RUN_TOOL("run", "--timeout", "soon", "--", "true");
	assert_exit(2);
	RUN_TOOL("run", "--no-such-option", "--", "true");
	assert_exit(2);
	RUN_TOOL("run", "-t");
	assert_exit(2);
	toolrun(&last, NULL, false, (const char *const[]){ NULL });
	assert_exit(2);
}

static void test_help_and_version(void **state)
{
	RUN_TOOL("--help");
	assert_exit(0);
	assert_non_null(strstr(last.out, "usage: mitogen"));
	assert_non_null(strstr(last.out, "-t local/fork/local"));
	assert_non_null(strstr(last.out, "worst"));
	RUN_TOOL("-h");
	assert_exit(0);
	RUN_TOOL("run", "--help");
	assert_exit(0);
	assert_non_null(strstr(last.out, "usage: mitogen"));
	RUN_TOOL("--version");
	assert_exit(0);
	assert_true(strncmp(last.out, "mitogen ", 8) == 0);
}

/* --- fixture -------------------------------------------------------------- */

static int test_teardown(void **state)
{
	toolrun_free(&last);
	return 0;
}

static int group_setup(void **state)
{
	return toolrun_setup();
}

static int group_teardown(void **state)
{
	return toolrun_teardown();
}

/* --sandbox, --caps, --nofile: the last hop runs sandboxed. */
static void test_run_sandboxed(void **state)
{
	RUN_TOOL("run", "--nofile", "16", "--", "sh", "-c", "ulimit -n");
	assert_exit(0);
	assert_string_equal(last.out, "16\n");

	RUN_TOOL("run", "-t", "local/fork", "--caps", "", "--", "sh", "-c",
		 "grep CapEff /proc/self/status");
	assert_exit(0);
	assert_string_equal(last.out, "CapEff:\t0000000000000000\n");

	/* The default profile refuses mount(2): the program dies of SIGSYS. */
	RUN_TOOL("run", "--sandbox", "default", "--", "mount", "-t", "tmpfs", "none",
		 "/mnt");
	assert_exit(128 + SIGSYS);

	RUN_TOOL("call", "--caps", "cap_foo", "mg.getpid");
	assert_exit(255);
	assert_non_null(strstr(last.err, "unknown capability 'cap_foo'"));

	RUN_TOOL("run", "--sandbox", "/nonexistent/rules", "--", "true");
	assert_exit(255);
	assert_non_null(strstr(last.err, "/nonexistent/rules"));

	RUN_TOOL("run", "--nofile", "lots", "--", "true");
	assert_exit(2);
}

int main(int argc, char **argv)
{
	/* Every selftest starts so (this one starts no context itself). */
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_run_relays_local, test_teardown),
		cmocka_unit_test_teardown(test_run_relays_fork, test_teardown),
		cmocka_unit_test_teardown(test_run_without_dashes,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_success_and_signal,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_missing_program,
					  test_teardown),
		cmocka_unit_test_teardown(test_run_no_command, test_teardown),
		cmocka_unit_test_teardown(test_run_timeout, test_teardown),
		cmocka_unit_test_teardown(test_call_getuid, test_teardown),
		cmocka_unit_test_teardown(test_call_stat_missing,
					  test_teardown),
		cmocka_unit_test_teardown(test_call_json_args, test_teardown),
		cmocka_unit_test_teardown(test_call_unknown_function,
					  test_teardown),
		cmocka_unit_test_teardown(test_chain_call_getpid,
					  test_teardown),
		cmocka_unit_test_teardown(test_chain_run_three_deep,
					  test_teardown),
		cmocka_unit_test_teardown(test_targets_run_prefixed,
					  test_teardown),
		cmocka_unit_test_teardown(test_targets_repeated_option,
					  test_teardown),
		cmocka_unit_test_teardown(test_targets_fanout, test_teardown),
		cmocka_unit_test_teardown(test_targets_host_ranges, test_teardown),
		cmocka_unit_test_teardown(test_tenant_deny_flags, test_teardown),
		cmocka_unit_test_teardown(test_targets_worst_status,
					  test_teardown),
		cmocka_unit_test_teardown(test_targets_call_results,
					  test_teardown),
		cmocka_unit_test_teardown(test_targets_timeout, test_teardown),
		cmocka_unit_test_teardown(test_targets_bad_specs,
					  test_teardown),
		cmocka_unit_test_teardown(test_usage_errors, test_teardown),
		cmocka_unit_test_teardown(test_run_sandboxed, test_teardown),
		cmocka_unit_test_teardown(test_help_and_version, test_teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
