/* SPDX-License-Identifier: MIT */
/*
 * selftests/containers/ctr.h: what the container tests share (header-only,
 * included once by each test program): the fixture script
 * (selftests/fixtures/containers.sh) run with a command line, names of
 * this test run's own (mgtest-PID-...), a router per test, mg.run in a
 * context with its result, and waiting for a host process by its
 * command line (the hand-off for "the call is running now").
 */
#ifndef MITOGEN_SELFTESTS_CONTAINERS_CTR_H
#define MITOGEN_SELFTESTS_CONTAINERS_CTR_H

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "selftests/lib/harness.h"

static struct mg_router *router;
static char ctr_tmp[PATH_MAX];		/* this run's own directory */
static char ctr_skip[512];		/* why nothing can run, or "" */

static inline double ctr_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run the fixture with args (a shell-quoted tail). Its exit status. */
static inline int ctr_fixture(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int ctr_fixture(const char *fmt, ...)
{
	const char *src = getenv("MG_TEST_SRC_DIR");
	char cmd[PATH_MAX * 3], args[PATH_MAX * 2];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "sh %s/selftests/fixtures/containers.sh %s >&2",
		 src ? src : ".", args);
	st = system(cmd);
	return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* out: first line the shell command prints (trailing newline cut). */
static inline int ctr_sh_line(char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline int ctr_sh_line(char *out, size_t size, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	out[0] = '\0';
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (!fgets(out, (int)size, p))
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static inline bool ctr_have(const char *prog)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

/* This run's own directory and the rootfs tarball in it (0, or skip set). */
static inline int ctr_tmp_up(void)
{
	const char *t = getenv("TMPDIR");

	if (geteuid() != 0) {
		snprintf(ctr_skip, sizeof(ctr_skip), "needs root (rootful containers, setns)");
		return -1;
	}
	if (!ctr_have("busybox") || access("/bin/busybox", X_OK) < 0) {
		snprintf(ctr_skip, sizeof(ctr_skip), "no /bin/busybox (make deps: busybox-static)");
		return -1;
	}
	snprintf(ctr_tmp, sizeof(ctr_tmp), "%s/mgctr.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(ctr_tmp)) {
		snprintf(ctr_skip, sizeof(ctr_skip), "mkdtemp: %s", strerror(errno));
		return -1;
	}
	if (ctr_fixture("rootfs %s", ctr_tmp) || ctr_fixture("rootfs %s/nosh nosh", ctr_tmp) < 0) {
		snprintf(ctr_skip, sizeof(ctr_skip), "the fixture could not build the rootfs");
		return -1;
	}
	return 0;
}

static inline void ctr_tmp_down(void)
{
	char cmd[PATH_MAX + 16];

	if (!ctr_tmp[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ctr_tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", ctr_tmp);
}

#define NEED_CTR()							\
	do {								\
		if (ctr_skip[0]) {					\
			fprintf(stderr, "# skip: %s\n", ctr_skip);	\
			skip();						\
		}							\
	} while (0)

static inline int ctr_setup(void **state)
{
	router = mg_router_new(NULL);
	return router ? 0 : -1;
}

static inline int ctr_teardown(void **state)
{
	mg_test_cleanup();
	mg_router_unref(router);
	router = NULL;
	return 0;
}

#define CTR_TEST(fn) cmocka_unit_test_setup_teardown(fn, ctr_setup, ctr_teardown)

/* A started context, or the test fails printing err. */
static inline struct mg_context *must(struct mg_context *ctx, const struct mg_error *err)
{
	if (!ctx)
		fprintf(stderr, "# %s: %s\n", mg_error_kind_name(err->kind), err->message);
	assert_non_null(ctx);
	return ctx;
}

static inline void finish(struct mg_context *ctx)
{
	assert_int_equal(mg_context_shutdown(ctx, true), 0);
	mg_context_unref(ctx);
}

/* The result of mg.run: status, stdout and stderr as strings. */
struct ctr_run {
	int64_t status;
	char out[4096];
	char err[4096];
};

/* mg.run of `sh -c script` in ctx with stdin (NULL: none). */
static inline void ctr_run_sh(struct mg_context *ctx, const char *script, const char *in,
		       struct ctr_run *res)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	const struct mg_value *f;

	struct mg_value *args = MG_LIST(MG_LIST(mg_str("/bin/sh"), mg_str("-c"), mg_str(script)),
					mg_nil(), mg_nil(), in ? mg_str(in) : mg_nil());
	if (mg_call(ctx, "mg.run", args, &v, &err) < 0) {
		fprintf(stderr, "# mg.run: %s: %s\n", mg_error_kind_name(err.kind), err.message);
		fail();
	}
	assert_int_equal(v->type, MG_MAP);
	f = mg_map_get(v, "status");
	assert_non_null(f);
	res->status = f->i;
	f = mg_map_get(v, "stdout");
	assert_non_null(f);
	snprintf(res->out, sizeof(res->out), "%.*s", (int)f->len, (const char *)f->bytes);
	f = mg_map_get(v, "stderr");
	assert_non_null(f);
	snprintf(res->err, sizeof(res->err), "%.*s", (int)f->len, (const char *)f->bytes);
	mg_value_free(v);
}

/* Strip one trailing newline. */
static inline char *chomp(char *s)
{
	s[strcspn(s, "\n")] = '\0';
	return s;
}

/* Wait (up to max_s) for a host process whose command line contains
 * needle. Its pid, or 0. */
static inline pid_t ctr_wait_process(const char *needle, double max_s)
{
	double end = ctr_now() + max_s;

	do {
		DIR *d = opendir("/proc");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char path[300], buf[512];
			FILE *f;
			size_t n;

			if (e->d_name[0] < '1' || e->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			for (size_t i = 0; i < n; i++)
				if (!buf[i])
					buf[i] = ' ';
			buf[n] = '\0';
			if (strstr(buf, needle) && !strstr(buf, "mitogen")) {
				pid_t pid = (pid_t)atoi(e->d_name);

				closedir(d);
				return pid;
			}
		}
		if (d)
			closedir(d);
		usleep(20000);
	} while (ctr_now() < end);
	return 0;
}

#endif
