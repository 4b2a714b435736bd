// SPDX-License-Identifier: MIT
/*
 * selftests/files/test_fakessh.c — mg_fakessh_run with the real rsync and
 * scp, through a local context, an ssh context (the sshd fixture, as
 * mgtest) and ssh then sudo (mgsudo, then root; and mgtty, whose sudo
 * has `requiretty`, then root): a tree with modes,
 * symlinks (one out of the tree) and an empty directory; both
 * directions; exit statuses and stderr as ssh gives them; several
 * sessions at once; and a push that its user may not write (EACCES).
 *
 * Owns: a mkdtemp directory (mode 0755, so that mgtest can read the
 * source), the sshd fixture, its router and contexts.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <mitogen/mitogen.h>

#include "selftests/transports/fixture.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

static char top[128];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("failed: %s", cmd);
}

/* The source tree: modes, links in and out of it, an empty directory. */
static void make_tree(void)
{
	snprintf(top, sizeof(top), "/tmp/mg-fakessh-XXXXXX");
	assert_non_null(mkdtemp(top));
	chmod(top, 0755);
	sh("cd %s && mkdir -p src/sub src/empty && printf 'hello\\n' > src/a && "
	   "head -c 300000 /dev/urandom > src/sub/big && printf '#!/bin/sh\\n' > src/sub/run && "
	   "ln -s sub/run src/in.link && ln -s /etc/passwd src/out.link && chmod -R o+rX src && "
	   "chmod 0751 src/sub/run && chmod 0640 src/a && chmod 0700 src/empty", top);
}

static void remove_tree(void)
{
	if (top[0])
		sh("rm -rf %s", top);
	top[0] = '\0';
}

/* Run argv through ctx; its exit status (or 128+signal). stderr of the
 * program goes to errfile when not NULL. */
static int run(struct mg_context *ctx, char *const argv[], const char *errfile)
{
	struct mg_error err = MG_ERROR_INIT;
	int status = -1, saved = -1, fd;

	if (errfile) {
		fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		fflush(stderr);
		saved = dup(2);
		dup2(fd, 2);
		close(fd);
	}
	if (mg_fakessh_run(ctx, router, argv, NULL, &status, &err) < 0)
		status = -1000;
	if (errfile) {
		dup2(saved, 2);
		close(saved);
	}
	if (status == -1000)
		fail_msg("mg_fakessh_run: %s", err.message);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* rsync there and back, scp there, through ctx writing as owner. */
static void round_trip(struct mg_context *ctx, const char *name, const char *owner)
{
	char dst[256], back[256], dst2[256];

	snprintf(dst, sizeof(dst), "mitogen:%s/%s/", top, name);
	snprintf(back, sizeof(back), "%s/%s.back/", top, name);
	snprintf(dst2, sizeof(dst2), "mitogen:%s/%s.scp", top, name);
	sh("mkdir -p %s/%s %s/%s.scp && chown %s %s/%s %s/%s.scp", top, name, top, name, owner, top,
	   name, top, name);
	{
		char src[256];

		snprintf(src, sizeof(src), "%s/src/", top);
		char *const argv[] = { "rsync", "-a", src, dst, NULL };

		assert_int_equal(run(ctx, argv, NULL), 0);
	}
	/* Same tree: modes, links as links (the outside one too), empty dir. */
	sh("diff -r --no-dereference %s/src %s/%s", top, top, name);
	sh("test \"$(stat -c %%a %s/%s/sub/run)\" = 751 && test -d %s/%s/empty && "
	   "test \"$(readlink %s/%s/out.link)\" = /etc/passwd", top, name, top, name, top, name);
	{
		char from[256];

		snprintf(from, sizeof(from), "mitogen:%s/%s/", top, name);
		char *const argv[] = { "rsync", "-a", from, back, NULL };

		assert_int_equal(run(ctx, argv, NULL), 0);
	}
	sh("diff -r --no-dereference %s/src %s/%s.back", top, top, name);
	{
		char src[256];

		snprintf(src, sizeof(src), "%s/src/sub/big", top);
		char *const argv[] = { "scp", "-S", "ssh", src, dst2, NULL };

		assert_int_equal(run(ctx, argv, NULL), 0);
	}
	sh("cmp %s/src/sub/big %s/%s.scp/big", top, top, name);
}

static struct mg_context *ssh_ctx(const char *user, struct mg_context *via)
{
	struct mg_error err = MG_ERROR_INIT;
	const char *args[] = { "-o", fx.known, "-o", "GlobalKnownHostsFile=/dev/null", NULL };

	MG_OPTS(mg_local_opts, lo, .connect_timeout = 60, .via = via);
	MG_OPTS(mg_ssh_opts, o, .local = &lo, .hostname = "127.0.0.1", .port = fx.port,
		.username = user, .identity_file = fx.key, .ssh_args = args);
	return must(mg_ssh(router, &o, &err), &err);
}

static void test_local(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = must(mg_local(router, NULL, &err), &err);

	make_tree();
	round_trip(c, "local", "root");
	finish(c);
	remove_tree();
}

static void test_ssh(void **state)
{
	struct mg_context *c;

	NEED_SSHD();
	c = ssh_ctx("mgtest", NULL);
	make_tree();
	round_trip(c, "ssh", "mgtest");
	/* It ran as mgtest. */
	sh("test \"$(stat -c %%U %s/ssh/a)\" = mgtest", top);
	finish(c);
	remove_tree();
}

static void test_ssh_sudo(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *s, *c;

	NEED_SSHD();
	s = ssh_ctx("mgsudo", NULL);
	{
		MG_OPTS(mg_local_opts, lo, .connect_timeout = 60, .via = s);
		MG_OPTS(mg_sudo_opts, so, .local = &lo);
		c = must(mg_sudo(router, &so, &err), &err);
	}
	make_tree();
	round_trip(c, "sudo", "root");
	sh("test \"$(stat -c %%U %s/sudo/a)\" = root", top);
	finish(c);
	finish(s);
	remove_tree();
}

/* The sudoers drop-in of test_ssh_sudo_requiretty (no '.' in the name:
 * sudo's includedir skips such files). */
static char tty_dropin[64];

static int tty_teardown(void **state)
{
	if (tty_dropin[0])
		unlink(tty_dropin);
	tty_dropin[0] = '\0';
	return fixture_teardown(state);
}

/* ssh as mgtty, then sudo to root, where sudoers says (a drop-in of this
 * test's, removed at its end) `Defaults:mgtty requiretty`, as RHEL's old
 * default did: sudo refuses a command without a terminal (checked first,
 * so that the test cannot pass where the setting does nothing), and
 * fakessh's rsync and scp still go through, as our sudo hop runs sudo
 * under a pty. */
static void test_ssh_sudo_requiretty(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *s, *c;
	char out[128], cmd[512];

	NEED_SSHD();
	snprintf(tty_dropin, sizeof(tty_dropin), "/etc/sudoers.d/mg-fakessh-tty-%d", (int)getpid());
	sh("umask 0337 && printf 'Defaults:mgtty requiretty\\nmgtty ALL=(ALL:ALL) NOPASSWD: ALL\\n' "
	   ">%s.new && visudo -cq -f %s.new && mv -f %s.new %s", tty_dropin, tty_dropin,
	   tty_dropin, tty_dropin);
	/* Without a terminal (setsid: none to inherit), sudo says no, and
	 * says why. */
	snprintf(out, sizeof(out), "/tmp/mg-fakessh-tty.%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "setsid -w runuser -u mgtty -- sudo -n true </dev/null "
		 ">%s 2>&1; test $? -ne 0 && grep -q 'must have a tty' %s", out, out);
	if (system(cmd) != 0)
		fail_msg("sudo as mgtty without a tty did not fail for want of a tty "
			 "(requiretty not in force?): see %s", out);
	unlink(out);
	s = ssh_ctx("mgtty", NULL);
	{
		MG_OPTS(mg_local_opts, lo, .connect_timeout = 60, .via = s);
		MG_OPTS(mg_sudo_opts, so, .local = &lo);
		c = must(mg_sudo(router, &so, &err), &err);
	}
	make_tree();
	round_trip(c, "tty", "root");
	sh("test \"$(stat -c %%U %s/tty/a)\" = root", top);
	finish(c);
	finish(s);
	remove_tree();
}

/* Exit statuses and stderr as ssh gives them. */
static void test_status(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = must(mg_local(router, NULL, &err), &err);
	char errfile[256], buf[512] = "";
	int fd;
	ssize_t n;

	make_tree();
	snprintf(errfile, sizeof(errfile), "%s/stderr", top);
	{
		char *const argv[] = { "sh", "-c", "ssh somehost 'echo to-stderr >&2; exit 7'", NULL };

		assert_int_equal(run(c, argv, errfile), 7);
	}
	fd = open(errfile, O_RDONLY | O_CLOEXEC);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	assert_string_equal(buf, "to-stderr\n");
	{
		/* Killed by a signal: 255, as ssh. */
		char *const argv[] = { "sh", "-c", "ssh h 'kill -9 $$'", NULL };

		assert_int_equal(run(c, argv, NULL), 255);
	}
	{
		/* stdin goes through, and its end. */
		char *const argv[] = { "sh", "-c", "test \"$(echo abc | ssh h 'cat; echo done')\" = "
				       "\"$(printf 'abc\\ndone')\"", NULL };

		assert_int_equal(run(c, argv, NULL), 0);
	}
	{
		/* scp of a missing file: scp's status and words. */
		char from[256];

		snprintf(from, sizeof(from), "mitogen:%s/nosuch", top);
		char *const argv[] = { "scp", "-S", "ssh", from, top, NULL };

		assert_int_equal(run(c, argv, errfile), 1);
		fd = open(errfile, O_RDONLY | O_CLOEXEC);
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		assert_non_null(strstr(buf, "No such file or directory"));
	}
	finish(c);
	remove_tree();
}

struct par {
	struct mg_context *c;
	char dst[256];
	int status;
};

static void *par_run(void *arg)
{
	struct par *p = arg;
	char src[256];

	snprintf(src, sizeof(src), "%s/src/", top);
	char *const argv[] = { "rsync", "-a", src, p->dst, NULL };
	struct mg_error err = MG_ERROR_INIT;
	int st = -1;

	if (mg_fakessh_run(p->c, router, argv, NULL, &st, &err) < 0)
		st = -1;
	p->status = st;
	return NULL;
}

/* Several sessions at once, to one context. */
static void test_parallel(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = must(mg_local(router, NULL, &err), &err);
	struct par p[4];
	pthread_t th[4];

	make_tree();
	for (int i = 0; i < 4; i++) {
		p[i].c = c;
		snprintf(p[i].dst, sizeof(p[i].dst), "mitogen:%s/par%d/", top, i);
		assert_int_equal(pthread_create(&th[i], NULL, par_run, &p[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_true(WIFEXITED(p[i].status) && WEXITSTATUS(p[i].status) == 0);
		sh("diff -r --no-dereference %s/src %s/par%d", top, top, i);
	}
	finish(c);
	remove_tree();
}

/* A destination its user may not write: "permission denied" there only. */
static void test_push_denied(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_files_result res[2];
	struct mg_context *c[2];
	char src[256], dest[256];

	NEED_ROOT();
	make_tree();
	sh("mkdir -p %s/closed && chmod 0755 %s/closed", top, top);
	{
		MG_OPTS(mg_local_opts, lo, .connect_timeout = 60);
		MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgtest");

		c[0] = must(mg_sudo(router, &so, &err), &err);
	}
	c[1] = must(mg_local(router, NULL, &err), &err);
	snprintf(src, sizeof(src), "%s/src/a", top);
	snprintf(dest, sizeof(dest), "%s/closed/a", top);
	assert_int_equal(mg_files_push(router, src, dest, c, 2, NULL, res, &err), 1);
	fprintf(stderr, "# as mgtest: %s\n", res[0].message);
	assert_int_equal(res[0].error, -EACCES);
	assert_non_null(strstr(res[0].message, "closed/a: permission denied"));
	assert_int_equal(res[1].error, 0);
	sh("cmp %s %s", src, dest);
	finish(c[0]);
	finish(c[1]);
	remove_tree();
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		FIXTURE_TEST(test_local),
		FIXTURE_TEST(test_status),
		FIXTURE_TEST(test_parallel),
		FIXTURE_TEST(test_ssh),
		FIXTURE_TEST(test_ssh_sudo),
		cmocka_unit_test_setup_teardown(test_ssh_sudo_requiretty, fixture_setup, tty_teardown),
		FIXTURE_TEST(test_push_denied),
	};
	return FIXTURE_TEST_RUN("files/fakessh", tests);
}
