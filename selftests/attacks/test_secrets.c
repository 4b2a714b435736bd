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
 * And the private socket a sudo/su/doas agent connects back to: another
 * user floods it with connections during a start; every one is refused,
 * the start succeeds and the log gets one line, not one per connection.
 *
 * Owns: nothing outside its own temporary directory. Test users come from
 * selftests/fixtures/sshd.sh (root only; the tests that need them skip
 * otherwise, saying so).
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

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

/* --- refusal floods on the connect-back socket ------------------------ */

/* Connections the attacker makes during one sudo start. */
#define FLOOD 300

/* Our own log lines that mention a refusal, counted (any thread). */
static pthread_mutex_t flood_lock = PTHREAD_MUTEX_INITIALIZER;
static int flood_lines;
static char flood_last[1024];

static void flood_log(enum mg_log_level level, const char *source, const char *line,
		      void *userdata)
{
	if (!strstr(line, "refused"))
		return;
	pthread_mutex_lock(&flood_lock);
	flood_lines++;
	snprintf(flood_last, sizeof(flood_last), "%s", line);
	pthread_mutex_unlock(&flood_lock);
}

struct flood_start {
	struct mg_context *ctx;
	struct mg_error err;
	const char *sudo_path;
};

static void *flood_start_sudo(void *arg)
{
	struct flood_start *fs = arg;

	MG_OPTS(mg_local_opts, lo, .connect_timeout = 120);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgsudo",
		.sudo_path = fs->sudo_path);
	fs->ctx = mg_sudo(router, &so, &fs->err);
	return NULL;
}

/* The inode of our listening "@mitogen-..." socket (from /proc/self/fd
 * and /proc/net/unix), or 0. */
static unsigned long our_connect_back_inode(void)
{
	char line[512], path[300];
	unsigned long found = 0;
	FILE *f = fopen("/proc/net/unix", "r");

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long ino, flags;
		char link[64], want[64];
		struct dirent *de;
		DIR *d;

		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %lu %299s", &flags, &ino, path) != 3 ||
		    strncmp(path, "@mitogen-", 9) || !(flags & 0x10000 /* __SO_ACCEPTCON */))
			continue;
		snprintf(want, sizeof(want), "socket:[%lu]", ino);
		d = opendir("/proc/self/fd");
		assert_non_null(d);
		while ((de = readdir(d))) {
			char fdpath[300];
			ssize_t n;

			snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%s", de->d_name);
			n = readlink(fdpath, link, sizeof(link) - 1);
			if (n > 0) {
				link[n] = '\0';
				if (!strcmp(link, want))
					found = ino;
			}
		}
		closedir(d);
	}
	fclose(f);
	return found;
}

/*
 * The attacker, as user uid: told the socket's inode, finds its name in
 * /proc/net/unix (readable by anyone; the sudo command line in
 * /proc/PID/cmdline names it too), connects FLOOD times and reports how
 * many connects went through.
 */
static void flood_attacker(uid_t uid, gid_t gid, int in, int out)
{
	unsigned long ino = 0;
	char line[512], path[300], name[128] = "";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int ok = 0;
	FILE *f;

	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		_exit(100);
	if (read(in, &ino, sizeof(ino)) != sizeof(ino))
		_exit(101);
	f = fopen("/proc/net/unix", "r");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long i;

		if (sscanf(line, "%*s %*s %*s %*s %*s %*s %lu %299s", &i, path) == 2 && i == ino)
			snprintf(name, sizeof(name), "%.120s", path);
	}
	if (f)
		fclose(f);
	if (name[0] != '@')
		_exit(102);
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	for (int i = 0; i < FLOOD; i++) {
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, len) == 0)
			ok++;
		if (fd >= 0)
			close(fd);
	}
	if (write(out, &ok, sizeof(ok)) != sizeof(ok))
		_exit(103);
	_exit(0);
}

/*
 * Another user (mgtest) floods the connect-back socket of a sudo start
 * with connections while sudo waits (a sudo that starts when told, so the
 * flood is all in before the agent connects): the start succeeds, every
 * connection was refused, and the log says so once, with the count and
 * the uid, not once per connection.
 */
static void test_connect_back_flood(void **state)
{
	char sudo[128], go[128], started[128], want[128];
	struct flood_start fs = { .err = MG_ERROR_INIT };
	int to_att[2], from_att[2], connects = 0, status;
	unsigned long ino = 0;
	struct passwd *pw;
	pthread_t th;
	double t0;
	pid_t att;
	FILE *f;

	NEED_ROOT();
	pw = getpwnam("mgtest");
	assert_non_null(pw);
	snprintf(sudo, sizeof(sudo), "%s/sudo", tmpdir);
	snprintf(go, sizeof(go), "%s/go", tmpdir);
	snprintf(started, sizeof(started), "%s/started", tmpdir);
	f = fopen(sudo, "w");
	assert_non_null(f);
	/* Waits for go (at most ~2 min: a failed test leaves nothing behind). */
	fprintf(f, "#!/bin/sh\n: > %s\nn=0\nuntil [ -e %s ] || [ $n -ge 2400 ]; do\n"
		"sleep 0.05; n=$((n + 1))\ndone\nexec sudo \"$@\"\n", started, go);
	fclose(f);
	assert_int_equal(chmod(sudo, 0755), 0);
	assert_int_equal(pipe(to_att), 0);
	assert_int_equal(pipe(from_att), 0);
	att = fork();
	assert_true(att >= 0);
	if (att == 0) {
		close(to_att[1]);
		close(from_att[0]);
		flood_attacker(pw->pw_uid, pw->pw_gid, to_att[0], from_att[1]);
	}
	close(to_att[0]);
	close(from_att[1]);

	flood_lines = 0;
	mg_log_set_callback(flood_log, NULL);
	fs.sudo_path = sudo;
	assert_int_equal(pthread_create(&th, NULL, flood_start_sudo, &fs), 0);
	/* Our "sudo" runs: the socket listens (made before it starts). */
	t0 = mg_test_now();
	while (access(started, F_OK) < 0 && mg_test_now() - t0 < 120)
		usleep(10000);
	ino = our_connect_back_inode();
	assert_true(ino != 0);
	assert_int_equal(write(to_att[1], &ino, sizeof(ino)), sizeof(ino));
	/* All its connects are through (queued or refused) before sudo goes on. */
	assert_int_equal(read(from_att[0], &connects, sizeof(connects)), sizeof(connects));
	assert_int_equal(waitpid(att, &status, 0), att);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	f = fopen(go, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(pthread_join(th, NULL), 0);
	mg_log_set_callback(NULL, NULL);
	close(to_att[1]);
	close(from_att[0]);
	unlink(sudo);
	unlink(go);
	unlink(started);

	fprintf(stderr, "# %d connects by uid %u; %d log lines about refusals; last: %s\n",
		connects, (unsigned)pw->pw_uid, flood_lines, flood_last);
	if (!fs.ctx)
		fprintf(stderr, "# %s: %s\n", mg_error_kind_name(fs.err.kind), fs.err.message);
	assert_non_null(fs.ctx);
	assert_int_equal(call_int(fs.ctx, "mg.getuid"), user_uid("mgsudo"));
	finish(fs.ctx);
	assert_int_equal(connects, FLOOD);
	assert_int_equal(flood_lines, 1);
	snprintf(want, sizeof(want), "refused %d connection", FLOOD);
	assert_non_null(strstr(flood_last, want));
	snprintf(want, sizeof(want), "uid %u", (unsigned)pw->pw_uid);
	assert_non_null(strstr(flood_last, want));
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
		FIXTURE_TEST(test_connect_back_flood),
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
