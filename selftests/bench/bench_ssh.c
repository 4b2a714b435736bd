// SPDX-License-Identifier: MIT
/*
 * selftests/bench/bench_ssh.c — `bench ssh HOST PORT USER KEY`: the ssh
 * rows of make bench (scripts/bench.sh starts the fixture sshd), the same
 * work as selftests/bench/ref/mitogen_ssh.py:
 *   ssh_true_ms            bare `ssh HOST true` with our ssh options (median)
 *   ssh_first_connect_ms   create + call + shutdown, cache emptied first
 *   ssh_create_call_ms     create + call + shutdown, image cached (median)
 *   ssh_call_rtt_us        1000 calls over one ssh context
 *   ssh_pipe_rtt_us        the raw floor under it: 1000 records of a
 *                          call's size (128 bytes) ping-ponged through
 *                          `ssh -T HOST cat` (same options, same sshd)
 *   ssh_local_call_rtt_us  500 calls to a local child of the ssh context
 *   ssh_sudo_call_rtt_us   500 calls to a sudo context via the ssh context
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <mitogen/mitogen.h>

extern char **environ;

#define REPS 5

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return v[n / 2];
}

static const char *host, *user, *key;
static int port;
static const char *ssh_args[] = { NULL };

static struct mg_context *ssh_ctx(struct mg_router *r, struct mg_error *err)
{
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 30);
	MG_OPTS(mg_ssh_opts, o, .local = &lo, .hostname = host, .port = port, .username = user,
		.identity_file = key, .check_host_keys = MG_HOST_KEYS_IGNORE,
		.ssh_args = ssh_args);
	return mg_ssh(r, &o, err);
}

/* ssh with the options mg_ssh gives it, running `true`. */
static double ssh_true(void)
{
	char portbuf[16], dest[128];
	char *argv[] = { "ssh", "-T", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30",
			 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			 "-o", "GlobalKnownHostsFile=/dev/null", "-i", (char *)key,
			 "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
			 "-o", "NumberOfPasswordPrompts=1", "-C", "-p", portbuf, dest, "true",
			 NULL };
	posix_spawn_file_actions_t fa;
	double t0 = now();
	pid_t pid;
	int st;

	snprintf(portbuf, sizeof(portbuf), "%d", port);
	snprintf(dest, sizeof(dest), "%s@%s", user, host);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", 0, 0);
	if (posix_spawnp(&pid, "ssh", &fa, NULL, argv, environ) != 0)
		return -1;
	posix_spawn_file_actions_destroy(&fa);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return (now() - t0) * 1e3;
}

/* The ssh command line of ssh_true, running cmd. */
#define SSH_ARGV(cmd)                                                              \
	{ "ssh", "-T", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30",             \
	  "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",     \
	  "-o", "GlobalKnownHostsFile=/dev/null", "-i", (char *)key,                  \
	  "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",                     \
	  "-o", "NumberOfPasswordPrompts=1", "-C", "-p", portbuf, dest, cmd, NULL }

/* Microseconds per round trip of a 128-byte record through ssh's channel
 * to `cat` and back: what a call over ssh costs at the least. */
static double ssh_pipe_rtt(int n)
{
	char portbuf[16], dest[128], rec[128];
	char *argv[] = SSH_ARGV("cat");
	posix_spawn_file_actions_t fa;
	int in[2], out[2], st;
	double t0 = 0, ret = -1;
	pid_t pid;

	snprintf(portbuf, sizeof(portbuf), "%d", port);
	snprintf(dest, sizeof(dest), "%s@%s", user, host);
	memset(rec, 'x', sizeof(rec));
	if (pipe(in) < 0 || pipe(out) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addclose(&fa, in[1]);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	if (posix_spawnp(&pid, "ssh", &fa, NULL, argv, environ) != 0)
		return -1;
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	/* 50 to warm up, then n timed */
	for (int i = 0; i < n + 50; i++) {
		size_t got = 0;

		if (i == 50)
			t0 = now();
		if (write(in[1], rec, sizeof(rec)) != (ssize_t)sizeof(rec))
			goto out;
		while (got < sizeof(rec)) {
			ssize_t k = read(out[0], rec + got, sizeof(rec) - got);

			if (k <= 0)
				goto out;
			got += (size_t)k;
		}
	}
	ret = (now() - t0) / n * 1e6;
out:
	close(in[1]);
	close(out[0]);
	waitpid(pid, &st, 0);
	return ret;
}

static double create_call(struct mg_router *r)
{
	struct mg_error err = MG_ERROR_INIT;
	double t0 = now();
	struct mg_context *c = ssh_ctx(r, &err);

	if (!c || mg_call(c, "mg.noop", NULL, NULL, &err) < 0) {
		fprintf(stderr, "bench ssh: %s\n", err.message);
		mg_context_unref(c);
		return -1;
	}
	mg_context_shutdown(c, true);
	mg_context_unref(c);
	return (now() - t0) * 1e3;
}

static double rtt(struct mg_context *c, int n)
{
	struct mg_error err = MG_ERROR_INIT;
	double t0 = now();

	for (int i = 0; i < n; i++)
		if (mg_call(c, "mg.noop", NULL, NULL, &err) < 0) {
			fprintf(stderr, "bench ssh: %s\n", err.message);
			return -1;
		}
	return (now() - t0) / n * 1e6;
}

int bench_ssh_main(int argc, char **argv);

int bench_ssh_main(int argc, char **argv)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r;
	struct mg_context *c, *s;
	double v[REPS], x;
	char cmd[256];

	if (argc != 5) {
		fprintf(stderr, "usage: bench ssh HOST PORT USER KEY\n");
		return 2;
	}
	host = argv[1];
	port = atoi(argv[2]);
	user = argv[3];
	key = argv[4];
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = mg_router_new(NULL);
	if (!r)
		return 1;
	for (int i = 0; i < REPS; i++)
		if ((v[i] = ssh_true()) < 0)
			return fprintf(stderr, "bench ssh: ssh %s true failed\n", host), 1;
	printf("ssh_true_ms %.1f\n", median(v, REPS));
	/* Uncached: this user's cache emptied (the first candidate only:
	 * that is where a fresh machine stores it). */
	snprintf(cmd, sizeof(cmd), "rm -rf ~%s/.cache/mitogen", user);
	if (system(cmd) != 0)
		return 1;
	if ((x = create_call(r)) < 0)
		return 1;
	printf("ssh_first_connect_ms %.1f\n", x);
	for (int i = 0; i < REPS; i++)
		if ((v[i] = create_call(r)) < 0)
			return 1;
	printf("ssh_create_call_ms %.1f\n", median(v, REPS));
	c = ssh_ctx(r, &err);
	if (!c)
		return fprintf(stderr, "bench ssh: %s\n", err.message), 1;
	rtt(c, 50);
	if ((x = rtt(c, 1000)) < 0)
		return 1;
	printf("ssh_call_rtt_us %.1f\n", x);
	if ((x = ssh_pipe_rtt(1000)) < 0)
		return fprintf(stderr, "bench ssh: ssh %s cat failed\n", host), 1;
	printf("ssh_pipe_rtt_us %.1f\n", x);
	MG_OPTS(mg_local_opts, lo, .via = c, .connect_timeout = 30);
	s = mg_local(r, &lo, &err);
	if (!s)
		return fprintf(stderr, "bench ssh: local: %s\n", err.message), 1;
	rtt(s, 50);
	if ((x = rtt(s, 500)) < 0)
		return 1;
	printf("ssh_local_call_rtt_us %.1f\n", x);
	mg_context_shutdown(s, true);
	mg_context_unref(s);
	MG_OPTS(mg_sudo_opts, so, .local = &lo);
	s = mg_sudo(r, &so, &err);
	if (!s)
		return fprintf(stderr, "bench ssh: sudo: %s\n", err.message), 1;
	rtt(s, 50);
	if ((x = rtt(s, 500)) < 0)
		return 1;
	printf("ssh_sudo_call_rtt_us %.1f\n", x);
	mg_context_shutdown(s, true);
	mg_context_unref(s);
	mg_context_shutdown(c, true);
	mg_context_unref(c);
	mg_router_unref(r);
	return 0;
}
