// SPDX-License-Identifier: MIT
/*
 * selftests/bench/bench_podman.c — `bench podman CONTAINER`: the container
 * rows of make bench (scripts/bench.sh starts the container from the
 * fixture's busybox rootfs; this program is static, so it is the image):
 *   podman_exec_true_ms        bare `podman exec -i CTR true` (median of 5)
 *   podman_create_call_ms      create + call + shutdown, image cached (median of 5)
 *   podman_call_rtt_us         1000 calls over one podman context
 *   podman_relay_rtt_us        1000 round trips of 29 bytes (a call's reply)
 *                              through `podman exec -i CTR cat`: podman's and
 *                              conmon's relay alone, the floor of any call
 *                              (best of 3: a floor)
 *   setns_create_call_ms       setns:podman:CTR create + call + shutdown (median of 5)
 *   setnspid_create_call_ms    setns:pid:N (N: the container's init, asked of podman
 *                              once) create + call + shutdown (median of 5)
 *   setns_call_rtt_us          1000 calls over one setns context
 *   local_create_call_ms       a local child, for the setns ratio (median of 5)
 *   local_call_rtt_us          1000 calls to a local child
 */
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

static const char *ctr;
static int ctr_pid;		/* the container's init, for setns:pid:N */

static double bp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bp_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double bp_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bp_cmp);
	return v[n / 2];
}

static double exec_true(void)
{
	char *argv[] = { "podman", "exec", "-i", (char *)ctr, "true", NULL };
	posix_spawn_file_actions_t fa;
	double t0 = bp_now();
	int st;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", 0, 0);
	if (posix_spawnp(&pid, "podman", &fa, NULL, argv, environ)) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return (bp_now() - t0) * 1e3;
}

/* Round trips of 29 bytes through `podman exec -i CTR cat`, in us. */
static double relay_rtt(int n)
{
	char *argv[] = { "podman", "exec", "-i", (char *)ctr, "cat", NULL };
	posix_spawn_file_actions_t fa;
	int in[2], out[2], st;
	char buf[64], msg[29];
	double t0 = 0;
	pid_t pid;

	memset(msg, 'x', sizeof(msg));
	if (pipe(in) < 0 || pipe(out) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addclose(&fa, in[1]);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	st = posix_spawnp(&pid, "podman", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (st) {
		close(in[1]);
		close(out[0]);
		return -1;
	}
	for (int i = -200; i < n; i++) {
		size_t got = 0;

		if (i == 0)
			t0 = bp_now();
		if (write(in[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
			break;
		while (got < sizeof(msg)) {
			ssize_t r = read(out[0], buf, sizeof(buf));

			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got < sizeof(msg)) {
			t0 = -1;
			break;
		}
	}
	t0 = t0 < 0 ? -1 : (bp_now() - t0) / n * 1e6;
	close(in[1]);
	close(out[0]);
	waitpid(pid, &st, 0);
	return t0;
}

enum kind { K_PODMAN, K_SETNS, K_SETNS_PID, K_LOCAL };

/* `podman inspect --format {{.State.Pid}} CTR`, once. */
static int inspect_pid(void)
{
	char cmd[256], line[64] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "podman inspect --format '{{.State.Pid}}' '%s'", ctr);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	pclose(p);
	return atoi(line) > 0 ? atoi(line) : -1;
}

static struct mg_context *start(struct mg_router *r, enum kind k, struct mg_error *err)
{
	MG_OPTS(mg_podman_opts, po, .container = ctr);
	MG_OPTS(mg_setns_opts, so, .kind = "podman", .container = ctr);
	MG_OPTS(mg_setns_opts, sp, .pid = ctr_pid);

	switch (k) {
	case K_PODMAN:
		return mg_podman(r, &po, err);
	case K_SETNS:
		return mg_setns(r, &so, err);
	case K_SETNS_PID:
		return mg_setns(r, &sp, err);
	default:
		return mg_local(r, NULL, err);
	}
}

static double create_call(struct mg_router *r, enum kind k)
{
	struct mg_error err = MG_ERROR_INIT;
	double t0 = bp_now();
	struct mg_context *c = start(r, k, &err);

	if (!c || mg_call(c, "mg.noop", NULL, NULL, &err) < 0) {
		fprintf(stderr, "bench podman: %s\n", err.message);
		mg_context_unref(c);
		return -1;
	}
	mg_context_shutdown(c, true);
	mg_context_unref(c);
	return (bp_now() - t0) * 1e3;
}

static double rtt(struct mg_router *r, enum kind k, int n)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = start(r, k, &err);
	double t0;

	if (!c) {
		fprintf(stderr, "bench podman: %s\n", err.message);
		return -1;
	}
	for (int i = 0; i < 50; i++)
		mg_call(c, "mg.noop", NULL, NULL, &err);
	t0 = bp_now();
	for (int i = 0; i < n; i++)
		if (mg_call(c, "mg.noop", NULL, NULL, &err) < 0) {
			fprintf(stderr, "bench podman: %s\n", err.message);
			return -1;
		}
	t0 = (bp_now() - t0) / n * 1e6;
	mg_context_shutdown(c, true);
	mg_context_unref(c);
	return t0;
}

int bench_podman_main(int argc, char **argv);

int bench_podman_main(int argc, char **argv)
{
	static const struct {
		enum kind k;
		const char *create, *rtt;
	} rows[] = {
		{ K_PODMAN, "podman_create_call_ms", "podman_call_rtt_us" },
		{ K_SETNS, "setns_create_call_ms", "setns_call_rtt_us" },
		{ K_SETNS_PID, "setnspid_create_call_ms", NULL },
		{ K_LOCAL, "local_create_call_ms", "local_call_rtt_us" },
	};
	struct mg_router *r;
	double v[REPS], x;

	if (argc != 2) {
		fprintf(stderr, "usage: bench podman CONTAINER\n");
		return 2;
	}
	ctr = argv[1];
	ctr_pid = inspect_pid();
	if (ctr_pid < 0)
		return fprintf(stderr, "bench podman: podman inspect %s failed\n", ctr), 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = mg_router_new(NULL);
	if (!r)
		return 1;
	for (int i = 0; i < REPS; i++)
		if ((v[i] = exec_true()) < 0)
			return fprintf(stderr, "bench podman: podman exec %s true failed\n", ctr), 1;
	printf("podman_exec_true_ms %.1f\n", bp_median(v, REPS));
	for (int i = 0; i < 3; i++)
		if ((v[i] = relay_rtt(1000)) < 0)
			return fprintf(stderr, "bench podman: podman exec -i %s cat failed\n", ctr), 1;
	x = v[0] < v[1] ? v[0] : v[1];
	printf("podman_relay_rtt_us %.1f\n", x < v[2] ? x : v[2]);
	for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
		/* the first one fills the container's cache */
		if (create_call(r, rows[k].k) < 0)
			return 1;
		for (int i = 0; i < REPS; i++)
			if ((v[i] = create_call(r, rows[k].k)) < 0)
				return 1;
		printf("%s %.1f\n", rows[k].create, bp_median(v, REPS));
		if (!rows[k].rtt)	/* the same context as the row before */
			continue;
		if ((x = rtt(r, rows[k].k, 1000)) < 0)
			return 1;
		printf("%s %.1f\n", rows[k].rtt, x);
	}
	mg_router_unref(r);
	return 0;
}
