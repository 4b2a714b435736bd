// SPDX-License-Identifier: MIT
/*
 * test_audit_services.c — acting in an audited context without leaving a
 * record (README, Audit; docs/audit.md, "Service calls").
 *
 * README promises that every call an audited (privileged) context serves
 * is recorded. Exported functions were; service methods (CALL_SERVICE)
 * were not, and they act with the context's privileges: mg.fakessh.exec
 * runs a shell command, mg.files.recv writes files, mg.files.send reads
 * them. So `mitogen rsync -t sudo`, `mitogen copy -t sudo` and `mitogen
 * fetch -t sudo` ran a root command, wrote a root file and read one with
 * nothing in the trail but "log opened" and a checkpoint. Each attack
 * here does one of those through an audited local child (the record path
 * is the same as for sudo: audit=true asks for it) and looks for the
 * record in the master's audit file, after the context has ended (its
 * last batch is sent before it exits: no waiting on a clock).
 *
 * Against the old code: no line with "mg.fakessh.exec", "mg.files.recv"
 * or "mg.files.send" at all (every test below failed at its first
 * record lookup). Also checked: a relay's record, a method that is not
 * there and one called with the wrong arguments (recorded as errors, as
 * a missing function is), and the path of mg.write_file / mg.read_file in
 * clear (before: only the digest of the arguments).
 *
 * Owns: a mkdtemp directory (the audit file, the agents' logs and key,
 * the files written), its router and contexts.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <mitogen/mitogen.h>
#include <mitogen/fakessh.h>
#include <mitogen/files.h>
#include <mitogen/service.h>

#include "selftests/lib/harness.h"
#include "selftests/tools/toolrun.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

static char dir[PATH_MAX];
static char audit_path[PATH_MAX];
static struct mg_router *router;

static struct mg_context *start(struct mg_context *via)
{
	MG_OPTS(mg_local_opts, lo, .audit = true, .via = via, .connect_timeout = 60);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_local(router, &lo, &err);

	if (!c)
		fprintf(stderr, "# mg_local: %s\n", err.message);
	assert_non_null(c);
	assert_true(mg_context_is_audited(c));
	return c;
}

/* Ends ctx: its last batch of records reaches the master before it
 * exits. Returns its id, for find_record. */
static uint32_t finish(struct mg_context *c)
{
	uint32_t id = mg_context_remote_id(c);

	mg_context_shutdown(c, true);
	mg_context_unref(c);
	return id;
}

/*
 * The record line of the master's file for ctx serving function (the
 * n-th such, from 0), copied into line; false when there is none (for
 * the first, the file is printed).
 */
static bool find_record(uint32_t ctx, const char *function, int nth, char *line, size_t size)
{
	char *text = toolrun_slurp(audit_path), *p = text, fn[160], id[48];
	bool found = false;

	snprintf(fn, sizeof(fn), "\"function\":\"%s\"", function);
	snprintf(id, sizeof(id), "\"context_id\":%u,", ctx);
	while (*p) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *rec = memmem(p, len, "\"claimed\":{", 11);

		/* The agent's own record (claimed), not the master's wrapper. */
		if (rec && memmem(rec, len - (size_t)(rec - p), fn, strlen(fn)) &&
		    memmem(rec, len - (size_t)(rec - p), id, strlen(id)) && nth-- == 0) {
			snprintf(line, size, "%.*s", (int)len, p);
			found = true;
			break;
		}
		p += len + (nl ? 1 : 0);
	}
	if (!found && nth == 0) {
		fprintf(stderr, "# no record of %s by context %u in %s, which says:\n", function,
			ctx, audit_path);
		for (p = strtok(text, "\n"); p; p = strtok(NULL, "\n"))
			fprintf(stderr, "#   %.300s\n", p);
	}
	free(text);
	return found;
}

static void expect_in(const char *line, const char *needle)
{
	if (!strstr(line, needle))
		fprintf(stderr, "# want %s in: %s\n", needle, line);
	assert_non_null(strstr(line, needle));
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* The attack: a shell command run through fakessh (mitogen rsync's way
 * in), expected in the trail with its command line, as mg.run's is. */
static void test_fakessh_command_recorded(void **state)
{
	struct mg_context *c = start(NULL);
	uint32_t id;
	struct mg_error err = MG_ERROR_INIT;
	char cmd[PATH_MAX + 64], marker[PATH_MAX], line[8192], want[PATH_MAX + 64];
	char *const argv[] = { "sh", "-c", cmd, NULL };
	int status = -1;
	struct stat st;

	(void)state;
	snprintf(marker, sizeof(marker), "%s/ran-unrecorded", dir);
	snprintf(cmd, sizeof(cmd), "ssh anyhost 'echo pwned > %s'", marker);
	assert_int_equal(mg_fakessh_run(c, router, argv, NULL, &status, &err), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(stat(marker, &st), 0);		/* it ran */
	id = finish(c);

	assert_true(find_record(id, "mg.fakessh.exec", 0, line, sizeof(line)));
	snprintf(want, sizeof(want), "\"argv\":[\"sh\",\"-c\",\"echo pwned > %s\"]", marker);
	expect_in(line, want);
	expect_in(line, "\"status\":\"ok\"");
}

struct fk_run {
	struct mg_context *c;
	char *const *argv;
	int status, ret;
};

static void *fk_thread(void *arg)
{
	struct fk_run *f = arg;
	struct mg_error err = MG_ERROR_INIT;

	f->ret = mg_fakessh_run(f->c, router, f->argv, NULL, &f->status, &err);
	return NULL;
}

/*
 * The command is still running when the context is told to go (an
 * interrupted `mitogen rsync`): what it did so far must not go
 * unrecorded. It says it started, then waits on a FIFO nobody opens.
 */
static void test_running_command_recorded(void **state)
{
	struct mg_context *c = start(NULL);
	char cmd[2 * PATH_MAX + 64], marker[PATH_MAX], fifo[PATH_MAX], line[8192];
	char want[PATH_MAX + 16];
	char *const argv[] = { "sh", "-c", cmd, NULL };
	struct fk_run f = { .c = c, .argv = argv, .status = -1 };
	struct stat st;
	pthread_t t;
	uint32_t id;
	int tries;

	(void)state;
	snprintf(marker, sizeof(marker), "%s/started", dir);
	snprintf(fifo, sizeof(fifo), "%s/never", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* SIGTERM ignored (cat inherits that): the context's end sends the
	 * tree SIGTERM at once and SIGKILL only after TREE_GRACE_S, so the
	 * command is still running when the end records what is running. */
	snprintf(cmd, sizeof(cmd), "ssh anyhost 'trap \"\" TERM; echo > %s; cat %s'", marker,
		 fifo);
	assert_int_equal(pthread_create(&t, NULL, fk_thread, &f), 0);
	/* The hand-off: the command has started (bounded generously). */
	for (tries = 0; tries < 6000 && stat(marker, &st) < 0; tries++)
		usleep(10000);
	assert_int_equal(stat(marker, &st), 0);
	id = finish(c);
	pthread_join(t, NULL);
	assert_int_equal(f.ret, 0);
	assert_true(WIFEXITED(f.status) && WEXITSTATUS(f.status) == 255);

	assert_true(find_record(id, "mg.fakessh.exec", 0, line, sizeof(line)));
	snprintf(want, sizeof(want), "cat %s\"]", fifo);
	expect_in(line, want);
	/* Only a main thread held up past the grace (a very busy machine)
	 * lets the SIGKILL end the command first: then its own end is the
	 * record, and it is there all the same. */
	if (!strstr(line, "\"error\":\"still running when the context ended\""))
		print_message("# the command ended before the context did: %s\n", line);
	/* Once: whichever came second adds no second record. */
	assert_false(find_record(id, "mg.fakessh.exec", 1, line, sizeof(line)));
}

/* A file written (mitogen copy), then read back (mitogen fetch). */
static void test_push_and_pull_recorded(void **state)
{
	struct mg_context *c = start(NULL);
	uint32_t id;
	struct mg_error err = MG_ERROR_INIT;
	struct mg_files_result res[1];
	char src[PATH_MAX], dst[PATH_MAX], pulled[PATH_MAX], line[8192], want[PATH_MAX + 32];
	const char *names[] = { "c" };

	(void)state;
	snprintf(src, sizeof(src), "%s/payload", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	snprintf(pulled, sizeof(pulled), "%s/pulled", dir);
	mkdir(dst, 0755);
	mkdir(pulled, 0755);
	write_file(src, "twelve bytes");
	assert_int_equal(mg_files_push(router, src, dst, &c, 1, NULL, res, &err), 0);
	snprintf(dst, sizeof(dst), "%s/dst/payload", dir);
	assert_int_equal(mg_files_pull(router, dst, pulled, &c, names, 1, NULL, res, &err), 0);
	id = finish(c);

	/* Into the directory dst: the record names the file it became. */
	assert_true(find_record(id, "mg.files.recv", 0, line, sizeof(line)));
	snprintf(want, sizeof(want), "\"detail\":{\"path\":\"%s\",\"entries\":1,\"bytes\":12}",
		 dst);
	expect_in(line, want);
	expect_in(line, "\"status\":\"ok\"");
	assert_true(find_record(id, "mg.files.send", 0, line, sizeof(line)));
	snprintf(want, sizeof(want), "\"detail\":{\"path\":\"%s\"}", dst);
	expect_in(line, want);
}

/* Through a relay: the relay's record says it relayed (and wrote
 * nothing), the destination's names the path. */
static void test_relay_recorded(void **state)
{
	struct mg_context *relay = start(NULL), *below = start(relay);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_files_result res[1];
	char src[PATH_MAX], dst[PATH_MAX], line[8192], want[PATH_MAX + 32];
	uint32_t below_id, relay_id;

	(void)state;
	snprintf(src, sizeof(src), "%s/relayed", dir);
	snprintf(dst, sizeof(dst), "%s/relayed-copy", dir);
	write_file(src, "abc");
	assert_int_equal(mg_files_push(router, src, dst, &below, 1, NULL, res, &err), 0);
	below_id = finish(below);
	relay_id = finish(relay);

	assert_true(find_record(relay_id, "mg.files.recv", 0, line, sizeof(line)));
	expect_in(line, "\"detail\":{\"relayed_to\":1}");
	assert_true(find_record(below_id, "mg.files.recv", 0, line, sizeof(line)));
	snprintf(want, sizeof(want), "\"path\":\"%s\"", dst);
	expect_in(line, want);
}

/* Calls that never reached a method are recorded as errors, as a call
 * of a function that is not there is. */
static void test_refused_methods_recorded(void **state)
{
	struct mg_context *c = start(NULL);
	uint32_t id;
	struct mg_error err = MG_ERROR_INIT;
	char line[8192];

	(void)state;
	assert_true(mg_call_service(c, "mg.files", "nope", mg_list(), NULL, &err) < 0);
	assert_true(mg_call_service(c, "mg.no_such_service", "x", mg_list(), NULL, &err) < 0);
	assert_true(mg_call_service(c, "mg.fakessh", "exec", MG_LIST(mg_int(1)), NULL, &err) < 0);
	id = finish(c);

	assert_true(find_record(id, "mg.files.nope", 0, line, sizeof(line)));
	expect_in(line, "\"status\":\"error\"");
	expect_in(line, "has no method 'nope'");
	assert_true(find_record(id, "mg.no_such_service.x", 0, line, sizeof(line)));
	expect_in(line, "no service named 'mg.no_such_service'");
	assert_true(find_record(id, "mg.fakessh.exec", 0, line, sizeof(line)));
	expect_in(line, "\"error\":\"wrong number of arguments\"");
}

/* The library's file functions name their path in clear. */
static void test_builtin_paths_recorded(void **state)
{
	struct mg_context *c = start(NULL);
	uint32_t id;
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX], line[8192], want[PATH_MAX + 32];

	(void)state;
	snprintf(path, sizeof(path), "%s/written", dir);
	assert_int_equal(mg_call(c, "mg.write_file",
				 MG_LIST(mg_str(path), mg_bytes("x", 1)), NULL, &err), 0);
	assert_int_equal(mg_call(c, "mg.read_file", MG_LIST(mg_str(path)), NULL, &err), 0);
	assert_int_equal(mg_call(c, "mg.unlink", MG_LIST(mg_str(path)), NULL, &err), 0);
	id = finish(c);

	snprintf(want, sizeof(want), "\"detail\":{\"path\":\"%s\"}", path);
	assert_true(find_record(id, "mg.write_file", 0, line, sizeof(line)));
	expect_in(line, want);
	assert_true(find_record(id, "mg.read_file", 0, line, sizeof(line)));
	expect_in(line, want);
	assert_true(find_record(id, "mg.unlink", 0, line, sizeof(line)));
	expect_in(line, want);
}

static int setup(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	(void)state;
	router = mg_router_new(NULL);
	assert_non_null(router);
	snprintf(audit_path, sizeof(audit_path), "%s/master.jsonl", dir);
	unlink(audit_path);
	if (mg_router_audit_to_file(router, audit_path, &err) < 0) {
		fprintf(stderr, "# audit file: %s\n", err.message);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	mg_test_cleanup();
	mg_router_unref(router);
	router = NULL;
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fakessh_command_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_running_command_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_and_pull_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_methods_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builtin_paths_recorded, setup, teardown),
	};
	char env[PATH_MAX + 16], cmd[PATH_MAX + 16];
	const char *tmp = getenv("TMPDIR");
	int ret;

	mg_main(argc, argv);
	snprintf(dir, sizeof(dir), "%s/mg-auditsvc.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return 1;
	/* Our master's key and our children's logs in our own directory. */
	snprintf(env, sizeof(env), "%s/key", dir);
	setenv("MITOGEN_AUDIT_KEY", env, 1);
	snprintf(env, sizeof(env), "%s/logs", dir);
	setenv("MITOGEN_AUDIT_DIR", env, 1);
	ret = mg_test_run("attacks/audit_services", tests, sizeof(tests) / sizeof(tests[0]));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		ret = 1;
	return ret;
}
