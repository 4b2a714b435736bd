// SPDX-License-Identifier: MIT
/*
 * selftests/attacks/test_secrets.c — the password handed to the tool in
 * MITOGEN_PASSWORD answers prompts and reaches nothing else. Each test is
 * the attack: something that should not see the password looks for it
 * where it used to be found.
 *
 *  - a command run by mg.run in a local child prints its environment;
 *  - a local child (its agent) reports its environment (mg.environ), also
 *    when --password-file gave the password and the variable was unused;
 *  - a command of the same uid reads the tool's own /proc/PID/environ,
 *    the block execve left in its memory, which unsetenv does not touch;
 *  - the target user of su, started by a normal user (mgtest) with the
 *    password in MITOGEN_PASSWORD: su keeps the caller's environment;
 *  - a program using the library with MITOGEN_PASSWORD in its own
 *    environment starts a local child, a sudo -E child and a su child.
 *
 * Owns: nothing outside its own temporary directory. Test users come from
 * selftests/fixtures/sshd.sh (root only; the tests that need them skip
 * otherwise, saying so).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "selftests/transports/fixture.h"

/* A password no one else uses: found anywhere, it leaked. */
static char mark[64];
/* This test's own directory (scripts, password files). */
static char tmpdir[64];

static const char *build_dir(void)
{
	const char *bd = getenv("MG_TEST_BUILD_DIR");

	return bd ? bd : "build";
}

/*
 * Run `env MITOGEN_PASSWORD=pw TOOL ARGS` (as user, through runuser, when
 * user is not NULL), from /, under a generous timeout. Its stdout goes to
 * out; returns pclose()'s status.
 */
static int tool_as(const char *user, const char *pw, char *out, size_t size,
		   const char *fmt, ...)
{
	char args[1024], cmd[2048], as[64] = "";
	size_t n = 0;
	va_list ap;
	FILE *p;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	if (user)
		snprintf(as, sizeof(as), "runuser -u %s -- ", user);
	snprintf(cmd, sizeof(cmd), "cd / && %senv MITOGEN_PASSWORD='%s' timeout 120 %s/mitogen %s",
		 as, pw, build_dir(), args);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (n < size - 1) {
		size_t k = fread(out + n, 1, size - 1 - n, p);

		if (!k)
			break;
		n += k;
	}
	out[n] = '\0';
	return pclose(p);
}

/*
 * Whether text holds the password: its value, or (by_name) the variable.
 * Says where on stderr when it does.
 */
static bool leaked(const char *what, const char *text, const char *pw, bool by_name)
{
	const char *at = by_name ? strstr(text, "MITOGEN_PASSWORD") : NULL;
	const char *from;

	if (!at)
		at = strstr(text, pw);
	if (!at)
		return false;
	from = at - text > 20 ? at - 20 : text;
	fprintf(stderr, "# %s holds the password: ...", what);
	for (int i = 0; i < 80 && from[i]; i++)	/* one TAP comment line */
		fputc(from[i] == '\n' ? '|' : from[i], stderr);
	fprintf(stderr, "...\n");
	return true;
}

/* A command run by mg.run in a local child prints its environment. */
static void test_run_command_env(void **state)
{
	static char out[1 << 16];

	assert_int_equal(tool_as(NULL, mark, out, sizeof(out), "run -t local -- env"), 0);
	assert_non_null(strstr(out, "PATH="));	/* it did print its environment */
	assert_false(leaked("env run by mg.run", out, mark, true));
}

/*
 * A local child's agent reports its environment, once with the password
 * in MITOGEN_PASSWORD, once with it in a file while MITOGEN_PASSWORD is
 * set too: read or not, the variable goes.
 */
static void test_local_child_env(void **state)
{
	static char out[1 << 16];
	char pwfile[128];
	FILE *f;

	assert_int_equal(tool_as(NULL, mark, out, sizeof(out), "call -t local mg.environ"), 0);
	assert_non_null(strstr(out, "\"PATH\""));
	assert_false(leaked("a local child's mg.environ", out, mark, true));

	snprintf(pwfile, sizeof(pwfile), "%s/pw", tmpdir);
	f = fopen(pwfile, "w");
	assert_non_null(f);
	fputs("from-the-file\n", f);
	fclose(f);
	assert_int_equal(tool_as(NULL, mark, out, sizeof(out),
				 "call --password-file %s -t local/local mg.environ", pwfile), 0);
	assert_non_null(strstr(out, "\"PATH\""));
	assert_false(leaked("a grandchild's mg.environ (--password-file)", out, mark, true));
	assert_null(strstr(out, "from-the-file"));
	unlink(pwfile);
}

/*
 * A command of the tool's own uid reads the tool's /proc/PID/environ
 * (the agent's parent is the tool): the block execve wrote, which
 * unsetenv() leaves as it was. The password's bytes there are zeroed.
 */
static void test_tool_proc_environ(void **state)
{
	static char out[1 << 16];
	char script[128];
	FILE *f;

	snprintf(script, sizeof(script), "%s/peek.sh", tmpdir);
	f = fopen(script, "w");
	assert_non_null(f);
	/* $PPID is the agent; field 4 of its stat is its parent, the tool. */
	fputs("tool=$(cut -d' ' -f4 /proc/$PPID/stat)\n"
	      "tr '\\0' '\\n' < /proc/$tool/environ\n", f);
	fclose(f);
	assert_int_equal(tool_as(NULL, mark, out, sizeof(out), "run -t local -- sh %s", script), 0);
	assert_non_null(strstr(out, "PATH="));	/* it could read the block */
	/* The name may stay there, followed by zeros. */
	assert_false(leaked("the tool's /proc/PID/environ", out, mark, false));
	unlink(script);
}

/*
 * A normal user (mgtest) becomes mgsu with su, the password in
 * MITOGEN_PASSWORD. su keeps its caller's environment: the target user's
 * agent, and the commands it runs, must not find the password there. The
 * start succeeding shows the password was read and typed.
 */
static void test_su_target_env(void **state)
{
	static char out[1 << 16];
	int n;

	NEED_ROOT();
	assert_int_equal(tool_as("mgtest", "mgsu-pw", out, sizeof(out),
				 "call -t su:mgsu mg.environ"), 0);
	assert_non_null(strstr(out, "\"USER\":\"mgsu\""));
	n = leaked("su target's mg.environ", out, "mgsu-pw", true);
	assert_int_equal(tool_as("mgtest", "mgsu-pw", out, sizeof(out),
				 "run -t su:mgsu -- env"), 0);
	assert_non_null(strstr(out, "USER=mgsu"));
	n += leaked("env run as the su target", out, "mgsu-pw", true);
	assert_int_equal(n, 0);
}

/* ctx's environment (mg.environ) as "KEY=VALUE\n" lines, in out. */
static void remote_env(struct mg_context *ctx, char *out, size_t size)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	size_t n = 0;

	if (mg_call(ctx, "mg.environ", NULL, &v, &err) < 0) {
		fprintf(stderr, "# mg.environ: %s\n", err.message);
		fail();
	}
	assert_int_equal(v->type, MG_MAP);
	out[0] = '\0';
	for (uint32_t i = 0; i < v->len && n < size; i++) {
		const struct mg_value *k = &v->items[2 * i], *e = &v->items[2 * i + 1];

		if (k->type == MG_STR && e->type == MG_STR)
			n += (size_t)snprintf(out + n, size - n, "%s=%s\n", k->str, e->str);
	}
	mg_value_free(v);
}

/*
 * A program using the library has MITOGEN_PASSWORD in its environment
 * (its own convention, or the tool's parent): no context the library
 * starts inherits it — a local child, sudo -E (which passes our
 * environment through), su (which keeps it).
 */
static void test_library_children_env(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	static char env[1 << 16];
	int n;

	setenv("MITOGEN_PASSWORD", mark, 1);
	setenv("MG_TEST_SECRETS_KEPT", "yes", 1);	/* what does pass, to compare */
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 30);
	ctx = must(mg_local(router, &lo, &err), &err);
	remote_env(ctx, env, sizeof(env));
	assert_non_null(strstr(env, "MG_TEST_SECRETS_KEPT=yes\n"));
	n = leaked("a local child's environment", env, mark, true);
	finish(ctx);
	if (fx.users) {
		MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgsudo",
			.preserve_env = true);
		MG_OPTS(mg_su_opts, suo, .local = &lo, .username = "mgsu");

		ctx = must(mg_sudo(router, &so, &err), &err);
		remote_env(ctx, env, sizeof(env));
		assert_non_null(strstr(env, "MG_TEST_SECRETS_KEPT=yes\n"));
		n += leaked("a sudo -E child's environment", env, mark, true);
		finish(ctx);
		ctx = must(mg_su(router, &suo, &err), &err);
		remote_env(ctx, env, sizeof(env));
		assert_non_null(strstr(env, "MG_TEST_SECRETS_KEPT=yes\n"));
		n += leaked("a su child's environment", env, mark, true);
		finish(ctx);
	} else {
		fprintf(stderr, "# sudo and su part not run: %s\n", fx.skip);
	}
	unsetenv("MITOGEN_PASSWORD");
	unsetenv("MG_TEST_SECRETS_KEPT");
	assert_int_equal(n, 0);
}

int main(int argc, char **argv)
{
	int ret;

	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		FIXTURE_TEST(test_run_command_env),
		FIXTURE_TEST(test_local_child_env),
		FIXTURE_TEST(test_tool_proc_environ),
		FIXTURE_TEST(test_su_target_env),
		FIXTURE_TEST(test_library_children_env),
	};

	snprintf(mark, sizeof(mark), "mg-secret-%d-%ld", (int)getpid(), (long)time(NULL));
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mg-secrets.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	chmod(tmpdir, 0755);	/* the scripts are read by our children */
	if (fixture_up(false) < 0)
		return 1;
	ret = MG_TEST_RUN("attacks/secrets", tests);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "# could not remove %s\n", tmpdir);
	}
	return ret;
}
