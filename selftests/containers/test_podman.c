// SPDX-License-Identifier: MIT
/*
 * selftests/containers/test_podman.c: podman and setns contexts in real
 * rootful podman containers (selftests/fixtures/containers.sh builds the
 * image from a busybox-static rootfs; no registry). Each test makes its
 * own containers (mgtest-PID-...) and removes them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "selftests/containers/ctr.h"

static char image[96], image_nosh[96];
static bool podman_up;

/* Container NAME of this run (mgtest-PID-what). */
static const char *cname(char *buf, size_t size, const char *what)
{
	snprintf(buf, size, "mgtest-%d-%s", (int)getpid(), what);
	return buf;
}

static void rm_container(void *name)
{
	ctr_fixture("podman-rm %s", (char *)name);
	free(name);
}

/* Start a container of img with extra podman run args; removed at the end. */
static const char *start_ctr(const char *what, const char *img, const char *args)
{
	char name[128];

	cname(name, sizeof(name), what);
	ctr_fixture("podman-rm %s", name);
	if (ctr_fixture("podman-run %s %s %s", name, img, args ? args : "")) {
		fprintf(stderr, "# podman run %s failed\n", name);
		fail();
	}
	return mg_test_defer(rm_container, strdup(name));
}

static struct mg_context *podman_ctx(const char *container, const char *user,
				     const struct mg_local_opts *lo, struct mg_error *err)
{
	MG_OPTS(mg_podman_opts, o, .local = lo, .container = container, .username = user);
	return mg_podman(router, &o, err);
}

#define NEED_PODMAN()							\
	do {								\
		NEED_CTR();						\
		if (!podman_up) {					\
			fprintf(stderr, "# skip: %s\n", ctr_skip);	\
			skip();						\
		}							\
	} while (0)

/* Socket type (SOCK_SEQPACKET: 5) of a unix socket inode, or -1. */
static int unix_type(unsigned long ino)
{
	FILE *f = fopen("/proc/net/unix", "r");
	char line[512];
	int type = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long i;
		unsigned t;

		if (sscanf(line, "%*s %*s %*s %*s %x %*s %lu", &t, &i) == 2 && i == ino) {
			type = (int)t;
			break;
		}
	}
	fclose(f);
	return type;
}

/* How many of pid's fds are SEQPACKET sockets. */
static int seqpacket_fds(pid_t pid)
{
	char path[64], link[128];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d))) {
		char p2[400];
		ssize_t k;

		snprintf(p2, sizeof(p2), "/proc/%d/fd/%s", (int)pid, e->d_name);
		k = readlink(p2, link, sizeof(link) - 1);
		if (k <= 0)
			continue;
		link[k] = '\0';
		if (!strncmp(link, "socket:[", 8) && unix_type(strtoul(link + 8, NULL, 10)) == 5)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * The host pid of the agent serving ctx: the parent of a command it runs
 * (found by its command line, then killed; the call ends with it).
 */
static pid_t agent_by_call(struct mg_context *ctx)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_message *msg = NULL;
	struct mg_receiver *rx;
	char num[16], needle[32], path[64], line[256];
	pid_t cmd, agent = 0;
	FILE *f;

	snprintf(num, sizeof(num), "8%06d", (int)getpid() % 1000000);
	snprintf(needle, sizeof(needle), "sleep %s", num);
	rx = mg_call_async(ctx, "mg.run", MG_LIST(MG_LIST(mg_str("/bin/sleep"), mg_str(num))),
			   &err);
	assert_non_null(rx);
	cmd = ctr_wait_process(needle, 60);
	assert_true(cmd > 0);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)cmd);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "PPid: %d", &agent) == 1)
			break;
	fclose(f);
	kill(cmd, SIGKILL);
	assert_int_equal(mg_receiver_get(rx, 60, &msg, &err), 0);
	mg_message_free(msg);
	mg_receiver_free(rx);
	assert_true(agent > 0);
	return agent;
}

/* The kernel (eBPF channel filter) counts what ctx's agent sends up its
 * channel: at least n replies or data records. */
static void assert_kernel_counts(struct mg_context *ctx, int n)
{
	struct mg_router_stats *st = NULL;
	struct ctr_run res;
	bool found = false;

	for (int i = 0; i < n; i++)
		ctr_run_sh(ctx, "true", NULL, &res);
	assert_int_equal(mg_router_stats(router, &st), 0);
	if (st->kernel) {
		for (size_t i = 0; i < st->nrows; i++) {
			const struct mg_stats_row *row = &st->rows[i];

			if (row->child_id != mg_context_remote_id(ctx) ||
			    row->context_id != MG_STATS_CHANNEL)
				continue;
			found = true;
			assert_true(row->dir[MG_STATS_UP].msgs[MG_STATS_REPLY] +
				    row->dir[MG_STATS_UP].msgs[MG_STATS_DATA] >= (uint64_t)n + 1);
		}
		assert_true(found);
	} else {
		fprintf(stderr, "# counters are not kernel-backed here: filter not checked\n");
	}
	mg_router_stats_free(st);
}

/* create + call + mg.run: exit status, stdout and stderr apart, stdin's
 * end of file reaching the command. */
static void test_podman_run(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	const char *name;

	NEED_PODMAN();
	name = start_ctr("run", image, NULL);
	ctx = must(podman_ctx(name, NULL, NULL, &err), &err);
	assert_int_equal(strncmp(mg_context_name(ctx), "podman.", 7), 0);
	ctr_run_sh(ctx, "echo out; echo err >&2; cat; echo \"[$(hostname)]\"; exit 3", "in\n",
		   &res);
	assert_int_equal(res.status, 3);
	assert_string_equal(res.err, "err\n");
	{
		char want[256];

		snprintf(want, sizeof(want), "out\nin\n[%s]\n", name);
		assert_string_equal(res.out, want);
	}
	/* wc sees the end of its stdin (no hang: the call returns) */
	ctr_run_sh(ctx, "wc -c", "12345", &res);
	assert_int_equal(atoi(res.out), 5);
	finish(ctx);
}

/*
 * The channel is not podman's stdio: podman handed the agent a SEQPACKET
 * socket of ours (--preserve-fds), and the eBPF filter counts what
 * crosses it; the agent's stdin is /dev/null, and no command it runs
 * inherits the socket.
 */
static void test_podman_channel_passed(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char path[64], link[128];
	const char *name;
	ssize_t n;
	pid_t agent;

	NEED_PODMAN();
	name = start_ctr("chan", image, NULL);
	ctx = must(podman_ctx(name, NULL, NULL, &err), &err);
	agent = agent_by_call(ctx);
	assert_int_equal(seqpacket_fds(agent), 1);
	snprintf(path, sizeof(path), "/proc/%d/fd/0", (int)agent);
	n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, "/dev/null");
	/* A command's fds: 0, 1, 2 and the one ls opens, nothing of ours. */
	ctr_run_sh(ctx, "ls /proc/self/fd | tr '\\n' ' '; env | grep -c MITOGEN_ || true", NULL,
		   &res);
	assert_string_equal(res.out, "0 1 2 3 0\n");
	assert_kernel_counts(ctx, 5);
	finish(ctx);
}

/* Write an executable script at dir/name; its path (static buffer). */
static const char *script_at(const char *dir, const char *name, const char *body)
{
	static char path[PATH_MAX * 2 + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", ctr_tmp, dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%s/%s", ctr_tmp, dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(body, f);
	fclose(f);
	assert_int_equal(chmod(path, 0700), 0);
	return path;
}

/* A context whose agent's channel is podman's stdio: no SEQPACKET fd,
 * and a call works. */
static void assert_on_stdio(struct mg_context *ctx, const char *name)
{
	struct ctr_run res;

	assert_int_equal(seqpacket_fds(agent_by_call(ctx)), 0);
	ctr_run_sh(ctx, "hostname", NULL, &res);
	assert_string_equal(chomp(res.out), name);
}

/* podman-remote cannot hand the agent our fd: stdio, said in the log. */
static void test_podman_remote_stdio(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char real[PATH_MAX], path[PATH_MAX + 64];
	const char *name;

	NEED_PODMAN();
	name = start_ctr("remote", image, NULL);
	assert_int_equal(ctr_sh_line(real, sizeof(real), "command -v podman"), 0);
	snprintf(path, sizeof(path), "%s/podman-remote", ctr_tmp);
	unlink(path);
	assert_int_equal(symlink(real, path), 0);
	mg_test_log_capture_start();
	MG_OPTS(mg_podman_opts, o, .container = name, .podman_path = path);
	ctx = must(mg_podman(router, &o, &err), &err);
	assert_true(mg_test_log_contains("is remote (it cannot hand a process our fd)", 60));
	mg_test_log_capture_stop();
	assert_on_stdio(ctx, name);
	finish(ctx);
}

/* podman took --preserve-fds but the fd did not reach the first stage
 * (here a wrapper drops the option): stdio, said in the log. */
static void test_podman_fd_not_arriving(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char real[PATH_MAX], body[PATH_MAX + 256];
	const char *name, *path;

	NEED_PODMAN();
	name = start_ctr("nofd", image, NULL);
	assert_int_equal(ctr_sh_line(real, sizeof(real), "command -v podman"), 0);
	snprintf(body, sizeof(body),
		 "#!/bin/sh\nn=0\nfor a; do shift\n"
		 "[ $n = 1 ] && { n=0; continue; }\n"
		 "[ \"$a\" = --preserve-fds ] && { n=1; continue; }\n"
		 "set -- \"$@\" \"$a\"; done\nexec 3<&-\nexec %s \"$@\"\n", real);
	path = script_at("nofd", "podman", body);
	mg_test_log_capture_start();
	MG_OPTS(mg_podman_opts, o, .container = name, .podman_path = path);
	ctx = must(mg_podman(router, &o, &err), &err);
	assert_true(mg_test_log_contains("did not get the socket its CLI was to hand it", 60));
	mg_test_log_capture_stop();
	assert_on_stdio(ctx, name);
	finish(ctx);
}

/*
 * A podman without --preserve-fds ("unknown flag"): started again
 * without it, said in the log, and not asked again in this process (the
 * wrapper logs each run). Last of the podman tests: it leaves this
 * process's podman marked as one without the option.
 */
static void test_podman_old_no_preserve_fds(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char real[PATH_MAX], body[PATH_MAX * 4], log[PATH_MAX + 64], runs[256];
	const char *name, *path;

	NEED_PODMAN();
	name = start_ctr("old", image, NULL);
	assert_int_equal(ctr_sh_line(real, sizeof(real), "command -v podman"), 0);
	snprintf(log, sizeof(log), "%s/old.log", ctr_tmp);
	snprintf(body, sizeof(body),
		 "#!/bin/sh\nfor a; do [ \"$a\" = --preserve-fds ] && "
		 "{ echo fds >>%s; echo 'Error: unknown flag: --preserve-fds' >&2; exit 125; }; done\n"
		 "[ \"$1\" = exec ] && echo plain >>%s\nexec %s \"$@\"\n", log, log, real);
	path = script_at("old", "podman", body);
	mg_test_log_capture_start();
	MG_OPTS(mg_podman_opts, o, .container = name, .podman_path = path);
	ctx = must(mg_podman(router, &o, &err), &err);
	assert_true(mg_test_log_contains("it has no --preserve-fds", 60));
	mg_test_log_capture_stop();
	assert_on_stdio(ctx, name);
	finish(ctx);
	ctx = must(mg_podman(router, &o, &err), &err);
	finish(ctx);
	assert_int_equal(ctr_sh_line(runs, sizeof(runs), "tr '\\n' ' ' <%s", log), 0);
	assert_string_equal(runs, "fds plain plain ");
}

/* --user: the agent runs as that user, whose $HOME does not exist (the
 * cache falls back to /tmp). */
static void test_podman_user_no_home(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	const char *name;

	NEED_PODMAN();
	name = start_ctr("user", image, NULL);
	ctx = must(podman_ctx(name, "nobody", NULL, &err), &err);
	ctr_run_sh(ctx, "id -u; echo $HOME", NULL, &res);
	assert_string_equal(res.out, "65534\n/nonexistent\n");
	finish(ctx);
}

/* A read-only root: the first stage finds a writable tmpfs. */
static void test_podman_read_only_root(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	const char *name;

	NEED_PODMAN();
	name = start_ctr("ro", image, "--read-only");
	ctx = must(podman_ctx(name, NULL, NULL, &err), &err);
	ctr_run_sh(ctx, "touch /x 2>/dev/null && echo writable || echo read-only", NULL, &res);
	assert_string_equal(res.out, "read-only\n");
	finish(ctx);
}

/* A missing container, a stopped one: StreamError naming it, in podman's
 * own words. */
static void test_podman_missing_and_stopped(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char name[128];
	const char *stopped;

	NEED_PODMAN();
	cname(name, sizeof(name), "nosuch");
	assert_null(podman_ctx(name, NULL, NULL, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	fprintf(stderr, "# missing: %s\n", err.message);
	assert_non_null(strstr(err.message, name));
	assert_non_null(strstr(err.message, "no such container"));

	stopped = start_ctr("stopped", image, NULL);
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "podman stop -t 0 %s >/dev/null 2>&1", stopped);
		assert_int_equal(system(cmd), 0);
	}
	mg_error_clear(&err);
	assert_null(podman_ctx(stopped, NULL, NULL, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	fprintf(stderr, "# stopped: %s\n", err.message);
	assert_non_null(strstr(err.message, stopped));
	assert_non_null(strstr(err.message, "running"));
}

/* No /bin/sh in the container: a StreamError that says so. */
static void test_podman_no_sh(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	const char *name;

	NEED_PODMAN();
	name = start_ctr("nosh", image_nosh, NULL);
	assert_null(podman_ctx(name, NULL, NULL, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	fprintf(stderr, "# no sh: %s\n", err.message);
	assert_non_null(strstr(err.message, "/bin/sh"));
	assert_non_null(strstr(err.message, name));
}

/* Bad options fail before podman runs, naming what is wrong. */
static void test_podman_bad_options(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	assert_null(podman_ctx("-rf", NULL, NULL, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, "container '-rf'"));
	mg_error_clear(&err);
	assert_null(podman_ctx(NULL, NULL, NULL, &err));
	assert_non_null(strstr(err.message, "podman: container"));
	mg_error_clear(&err);
	assert_null(podman_ctx("x", "a b", NULL, &err));
	assert_non_null(strstr(err.message, "username 'a b'"));
}

/* The container dies while a call runs in it: ChannelError, soon. */
static void test_podman_killed_mid_call(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_receiver *rx;
	struct mg_message *msg = NULL;
	struct mg_context *ctx;
	char cmd[256], marker[64];
	const char *name;
	double t0;
	int ret;

	NEED_PODMAN();
	name = start_ctr("kill", image, NULL);
	ctx = must(podman_ctx(name, NULL, NULL, &err), &err);
	snprintf(marker, sizeof(marker), "sleep 9%06d", (int)getpid() % 1000000);
	rx = mg_call_async(ctx, "mg.run",
			   MG_LIST(MG_LIST(mg_str("/bin/sh"), mg_str("-c"), mg_str(marker))), &err);
	assert_non_null(rx);
	/* The hand-off: the command runs (we see it from the host). */
	assert_true(ctr_wait_process(marker, 60) > 0);
	snprintf(cmd, sizeof(cmd), "podman kill %s >/dev/null 2>&1", name);
	t0 = ctr_now();
	assert_int_equal(system(cmd), 0);
	ret = mg_receiver_get(rx, 60, &msg, &err);
	fprintf(stderr, "# call failed %.3f s after podman kill: %s: %s\n", ctr_now() - t0,
		mg_error_kind_name(err.kind), err.message);
	assert_true(ret < 0);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	mg_receiver_free(rx);
	mg_context_shutdown(ctx, true);
	mg_context_unref(ctx);
}

/* Eight containers, a context in each, started in parallel. */
struct par {
	const char *name;
	struct mg_context *ctx;
	struct mg_error err;
	char host[128];
};

static void *par_start(void *arg)
{
	struct par *p = arg;

	p->err = (struct mg_error)MG_ERROR_INIT;
	p->ctx = podman_ctx(p->name, NULL, NULL, &p->err);
	return NULL;
}

static void test_podman_parallel(void **state)
{
	struct par ps[8];
	pthread_t th[8];

	NEED_PODMAN();
	for (int i = 0; i < 8; i++) {
		char what[16];

		snprintf(what, sizeof(what), "par%d", i);
		ps[i].name = start_ctr(what, image, NULL);
	}
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&th[i], NULL, par_start, &ps[i]), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 8; i++) {
		struct ctr_run res;

		must(ps[i].ctx, &ps[i].err);
		ctr_run_sh(ps[i].ctx, "hostname", NULL, &res);
		assert_string_equal(chomp(res.out), ps[i].name);
	}
	for (int i = 0; i < 8; i++)
		finish(ps[i].ctx);
}

/* local/podman:x: the podman context started through a local one. */
static void test_podman_via_local(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *ctx;
	struct ctr_run res;
	const char *name;

	NEED_PODMAN();
	name = start_ctr("via", image, NULL);
	mid = must(mg_local(router, NULL, &err), &err);
	MG_OPTS(mg_local_opts, lo, .via = mid);
	ctx = must(podman_ctx(name, NULL, &lo, &err), &err);
	ctr_run_sh(ctx, "hostname", NULL, &res);
	assert_string_equal(chomp(res.out), name);
	finish(ctx);
	finish(mid);
}

static void sshd_stop(void *dir)
{
	ctr_sh_line((char[8]){ 0 }, 8, "sh %s/selftests/fixtures/sshd.sh stop %s >&2",
		    getenv("MG_TEST_SRC_DIR") ? getenv("MG_TEST_SRC_DIR") : ".", (char *)dir);
	free(dir);
}

/* ssh:root@127.0.0.1/podman:x: the podman CLI runs on the far side of a
 * real ssh hop (selftests/fixtures/sshd.sh). */
static void test_podman_via_ssh(void **state)
{
	const char *src = getenv("MG_TEST_SRC_DIR") ? getenv("MG_TEST_SRC_DIR") : ".";
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *hop, *ctx;
	char dir[PATH_MAX + 16], line[128], key[PATH_MAX + 32], known[PATH_MAX + 64];
	struct ctr_run res;
	const char *name;
	int port = 0, pid = 0;

	NEED_PODMAN();
	if (access("/usr/sbin/sshd", X_OK) < 0) {
		fprintf(stderr, "# skip: no /usr/sbin/sshd (make deps)\n");
		skip();
	}
	name = start_ctr("ssh", image, NULL);
	snprintf(dir, sizeof(dir), "%s/sshd", ctr_tmp);
	if (ctr_sh_line(line, sizeof(line), "sh %s/selftests/fixtures/sshd.sh start %s", src,
			dir) || sscanf(line, "%d %d", &port, &pid) != 2)
		fail_msg("sshd fixture did not start: %s", line);
	mg_test_defer(sshd_stop, strdup(dir));
	snprintf(key, sizeof(key), "%s/id_ed25519", dir);
	snprintf(known, sizeof(known), "UserKnownHostsFile=%s/known_hosts", dir);
	const char *args[] = { "-o", known, NULL };
	MG_OPTS(mg_ssh_opts, so, .hostname = "127.0.0.1", .port = port, .username = "root",
		.identity_file = key, .ssh_args = args);
	hop = must(mg_ssh(router, &so, &err), &err);
	MG_OPTS(mg_local_opts, lo, .via = hop);
	ctx = must(podman_ctx(name, NULL, &lo, &err), &err);
	ctr_run_sh(ctx, "hostname", NULL, &res);
	assert_string_equal(chomp(res.out), name);
	/* The socketpair was made by the agent across the hop, and handed
	 * to the container's agent there: its channel is not stdio. */
	assert_int_equal(seqpacket_fds(agent_by_call(ctx)), 1);
	finish(ctx);
	finish(hop);
}

/* The tool's targets: podman:NAME with a pdsh range, setns:podman:NAME,
 * and a chain local/podman:NAME; a bad name is refused, as written. */
static void test_tool_targets(void **state)
{
	const char *b = getenv("MG_TEST_BUILD_DIR");
	char tool[PATH_MAX], cmd[PATH_MAX * 2], out[4096] = "", want[1024];
	char base[64];
	size_t n;
	FILE *p;

	NEED_PODMAN();
	snprintf(tool, sizeof(tool), "%s/mitogen", b ? b : "build");
	start_ctr("t1", image, NULL);
	start_ctr("t2", image, NULL);
	snprintf(base, sizeof(base), "mgtest-%d-t", (int)getpid());
	snprintf(cmd, sizeof(cmd),
		 "%s run -t 'podman:%s[1-2],setns:podman:%s1,local/podman:%s2' hostname 2>&1 | sort",
		 tool, base, base, base);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	snprintf(want, sizeof(want),
		 "local/podman:%s2: %s2\npodman:%s1: %s1\npodman:%s2: %s2\n"
		 "setns:podman:%s1: %s1\n", base, base, base, base, base, base, base, base);
	assert_string_equal(out, want);

	snprintf(cmd, sizeof(cmd), "%s run -t 'podman:-rf' hostname 2>&1", tool);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_not_equal(pclose(p), 0);
	assert_non_null(strstr(out, "container '-rf' is missing or invalid"));
}

/* --- setns ---------------------------------------------------------------- */

static pid_t ctr_pid(const char *name)
{
	char line[64];

	assert_int_equal(ctr_sh_line(line, sizeof(line),
				     "podman inspect --format '{{.State.Pid}}' %s", name), 0);
	return (pid_t)atoi(line);
}

static void ns_link(pid_t pid, const char *ns, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, ns);
	n = readlink(path, buf, size - 1);
	assert_true(n > 0);
	buf[n] = '\0';
}

static void slurp(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* The agent's pid on the host: the context's own process (setns.c makes
 * it our child), running the image's sealed copy. */
static pid_t agent_of(struct mg_context *ctx)
{
	char path[64], link[128];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)mg_context_pid(ctx));
	n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_non_null(strstr(link, "memfd:mitogen"));
	return mg_context_pid(ctx);
}

static void test_setns_podman(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char a[128], b[128], cga[2048], cgb[2048], path[64], link[128];
	const char *name;
	pid_t init, agent;

	NEED_PODMAN();
	name = start_ctr("setns", image, NULL);
	init = ctr_pid(name);
	MG_OPTS(mg_setns_opts, o, .kind = "podman", .container = name);
	ctx = must(mg_setns(router, &o, &err), &err);
	ctr_run_sh(ctx, "hostname; id -u; pwd; ls /bin/busybox", NULL, &res);
	snprintf(a, sizeof(a), "%s\n0\n/\n/bin/busybox\n", name);
	assert_string_equal(res.out, a);
	agent = agent_of(ctx);
	/* Its namespaces are the container's (net, uts, mnt, pid, ipc: not
	 * ours; cgroup and time: whatever podman gave it here). */
	for (const char *const *ns = (const char *const[]){ "net", "uts", "mnt", "pid", "ipc",
							  "cgroup", "time", NULL };
	     *ns; ns++) {
		ns_link(init, *ns, a, sizeof(a));
		ns_link(agent, *ns, b, sizeof(b));
		assert_string_equal(a, b);
		ns_link(getpid(), *ns, b, sizeof(b));
		if (strcmp(*ns, "cgroup") && strcmp(*ns, "time"))
			assert_string_not_equal(a, b);
	}
	/* Its cgroups are the container's. */
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)init);
	slurp(path, cga, sizeof(cga));
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)agent);
	slurp(path, cgb, sizeof(cgb));
	assert_string_equal(cga, cgb);
	/* Its channel is a SEQPACKET socket (fd 3 in the agent), and the
	 * kernel counts what crosses it at our end. */
	snprintf(path, sizeof(path), "/proc/%d/fd/3", (int)agent);
	assert_true(readlink(path, link, sizeof(link) - 1) > 0);
	assert_int_equal(strncmp(link, "socket:[", 8), 0);
	assert_int_equal(unix_type(strtoul(link + 8, NULL, 10)), 5);
	assert_kernel_counts(ctx, 5);
	finish(ctx);
}

/* setns by pid, and setns of a stopped container: its name and why. */
static void test_setns_pid_and_errors(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char cmd[256], want[160];
	const char *name;

	NEED_PODMAN();
	name = start_ctr("setnspid", image, NULL);
	MG_OPTS(mg_setns_opts, o, .pid = ctr_pid(name));
	ctx = must(mg_setns(router, &o, &err), &err);
	ctr_run_sh(ctx, "hostname", NULL, &res);
	snprintf(want, sizeof(want), "%s\n", name);
	assert_string_equal(res.out, want);
	finish(ctx);

	snprintf(cmd, sizeof(cmd), "podman stop -t 0 %s >/dev/null 2>&1", name);
	assert_int_equal(system(cmd), 0);
	MG_OPTS(mg_setns_opts, o2, .kind = "podman", .container = name);
	assert_null(mg_setns(router, &o2, &err));
	fprintf(stderr, "# %s\n", err.message);
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, name));
	assert_non_null(strstr(err.message, "not running"));
	mg_error_clear(&err);
	MG_OPTS(mg_setns_opts, o3, .kind = "rkt", .container = name);
	assert_null(mg_setns(router, &o3, &err));
	assert_non_null(strstr(err.message, "kind 'rkt'"));
}

/* The holder of test_setns_time_namespace: a time namespace of its own
 * (boot time 10^6 s later), a child in it that says its pid and waits. */
static void __attribute__((noreturn)) timens_holder(int wfd)
{
	static const char off[] = "boottime 1000000 0";
	pid_t t;
	int fd;

	if (unshare(CLONE_NEWTIME) < 0)
		_exit(2);
	/* Before any process is in it (after, the kernel refuses). */
	fd = open("/proc/self/timens_offsets", O_WRONLY);
	if (fd < 0 || write(fd, off, sizeof(off) - 1) != (ssize_t)(sizeof(off) - 1))
		_exit(3);
	close(fd);
	t = fork();
	if (t == 0) {
		t = getpid();
		if (write(wfd, &t, sizeof(t)) != (ssize_t)sizeof(t))
			_exit(4);
		for (;;)
			pause();
	}
	close(wfd);
	waitpid(t, NULL, 0);
	_exit(0);
}

/*
 * A target in a time namespace (one made here; podman makes none). The
 * agent's process shares the waiter's memory until its exec (setns.c):
 * since Linux 6.0 the kernel moves it into the time namespace at that
 * exec; older kernels refuse CLONE_VM across a time namespace and setns.c
 * forks it instead. Either way the agent must land in it: its time
 * namespace is the target's and it sees the target's boot time, 10^6 s
 * ahead of ours.
 */
static void test_setns_time_namespace(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char a[128], b[128];
	pid_t holder, target = 0, agent;
	int pfd[2];

	if (access("/proc/self/ns/time", F_OK) < 0) {
		fprintf(stderr, "# skip: no time namespaces in this kernel\n");
		skip();
	}
	assert_int_equal(pipe(pfd), 0);
	holder = fork();
	assert_true(holder >= 0);
	if (holder == 0) {
		close(pfd[0]);
		timens_holder(pfd[1]);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &target, sizeof(target)), (ssize_t)sizeof(target));
	close(pfd[0]);
	MG_OPTS(mg_setns_opts, o, .pid = target);
	ctx = mg_setns(router, &o, &err);
	if (ctx) {
		agent = agent_of(ctx);
		ns_link(target, "time", a, sizeof(a));
		ns_link(agent, "time", b, sizeof(b));
		assert_string_equal(a, b);
		ns_link(getpid(), "time", b, sizeof(b));
		assert_string_not_equal(a, b);
		ctr_run_sh(ctx, "cut -d. -f1 /proc/uptime", NULL, &res);
		fprintf(stderr, "# uptime in the context: %s", res.out);
		assert_true(atol(res.out) >= 1000000);
		finish(ctx);
	} else {
		fprintf(stderr, "# %s\n", err.message);
	}
	kill(target, SIGKILL);
	assert_int_equal(waitpid(holder, NULL, 0), holder);
	assert_non_null(ctx);
}

/* How many processes are in pid's pids cgroup, once it is down to want
 * (or 60 s have gone by: then what it is). */
static int ctr_procs_settle(pid_t pid, int want)
{
	char path[64], line[1024], procs[1200] = "";
	double end = mg_test_now() + 60;
	FILE *f;
	int n = -1;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *c = strstr(line, ":pids:");

		if (c) {
			c[strcspn(c, "\n")] = '\0';
			snprintf(procs, sizeof(procs), "/sys/fs/cgroup/pids%s/cgroup.procs", c + 6);
		}
	}
	fclose(f);
	if (!*procs) {
		fprintf(stderr, "# no pids hierarchy here: not counted\n");
		return want;
	}
	do {
		f = fopen(procs, "r");
		assert_non_null(f);
		for (n = 0; fgets(line, sizeof(line), f);)
			n++;
		fclose(f);
		if (n == want)
			break;
		usleep(50000);
	} while (mg_test_now() < end);
	return n;
}

/*
 * A container paused (podman pause: its cgroup frozen) when a setns
 * context is started into it: the process that joins its cgroups is
 * frozen there. mg_setns must fail with a timeout naming the target,
 * within the connect timeout, not wait for ever (with the agent's pid
 * read from that process without a bound, it hung until the container
 * was unpaused); and once the container runs again, nothing of ours is
 * left behind in it.
 */
static void test_setns_paused_container(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char cmd[256];
	const char *name;
	double t0;

	NEED_PODMAN();
	name = start_ctr("paused", image, NULL);
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 3);
	MG_OPTS(mg_setns_opts, o, .local = &lo, .pid = ctr_pid(name));
	snprintf(cmd, sizeof(cmd), "podman pause %s >/dev/null 2>&1", name);
	assert_int_equal(system(cmd), 0);
	t0 = mg_test_now();
	ctx = mg_setns(router, &o, &err);
	fprintf(stderr, "# after %.1f s: %s\n", mg_test_now() - t0, err.message);
	snprintf(cmd, sizeof(cmd), "podman unpause %s >/dev/null 2>&1", name);
	assert_int_equal(system(cmd), 0);
	assert_null(ctx);
	assert_true(mg_test_now() - t0 >= 3.0);
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_int_equal(err.errnum, ETIMEDOUT);
	assert_non_null(strstr(err.message, "setns.pid"));
	/* Running again: the frozen process of ours got its SIGKILL and is
	 * gone from the container's cgroup (its init alone is left). */
	assert_int_equal(ctr_procs_settle(ctr_pid(name), 1), 1);
	/* And a context starts and works. */
	MG_OPTS(mg_setns_opts, o2, .pid = ctr_pid(name));
	ctx = must(mg_setns(router, &o2, &err), &err);
	finish(ctx);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		CTR_TEST(test_podman_bad_options),
		CTR_TEST(test_podman_run),
		CTR_TEST(test_podman_channel_passed),
		CTR_TEST(test_podman_remote_stdio),
		CTR_TEST(test_podman_fd_not_arriving),
		CTR_TEST(test_podman_user_no_home),
		CTR_TEST(test_podman_read_only_root),
		CTR_TEST(test_podman_missing_and_stopped),
		CTR_TEST(test_podman_no_sh),
		CTR_TEST(test_podman_killed_mid_call),
		CTR_TEST(test_podman_parallel),
		CTR_TEST(test_podman_via_local),
		CTR_TEST(test_podman_via_ssh),
		CTR_TEST(test_tool_targets),
		CTR_TEST(test_setns_podman),
		CTR_TEST(test_setns_pid_and_errors),
		CTR_TEST(test_setns_time_namespace),
		CTR_TEST(test_setns_paused_container),
		/* last: it marks this process's podman as one without --preserve-fds */
		CTR_TEST(test_podman_old_no_preserve_fds),
	};
	int ret;

	if (ctr_tmp_up() == 0) {
		snprintf(image, sizeof(image), "localhost/mgtest-%d:latest", (int)getpid());
		snprintf(image_nosh, sizeof(image_nosh), "localhost/mgtest-%d-nosh:latest",
			 (int)getpid());
		if (!ctr_have("podman"))
			snprintf(ctr_skip, sizeof(ctr_skip), "no podman (make deps)");
		else if (ctr_fixture("podman-image %s/rootfs.tar %s", ctr_tmp, image) ||
			 ctr_fixture("podman-image %s/nosh/rootfs.tar %s", ctr_tmp, image_nosh))
			snprintf(ctr_skip, sizeof(ctr_skip), "podman import failed");
		else
			podman_up = true;
	}
	ret = mg_test_run("containers/podman", tests, sizeof(tests) / sizeof(tests[0]));
	if (podman_up)
		ctr_fixture("podman-rmi %s %s", image, image_nosh);
	ctr_tmp_down();
	return ret;
}
