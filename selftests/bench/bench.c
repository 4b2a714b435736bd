// SPDX-License-Identifier: MIT
/*
 * selftests/bench/bench.c — the work of selftests/bench/ref/mitogen_local.py
 * (python3-mitogen), done with libmitogen, printing the same `name value`
 * lines so scripts/bench.sh can put both side by side (`make bench`).
 *
 * Work, as in the reference script:
 *   local_create_call_ms  N=10 local contexts created one after another,
 *                         each with a first call; average per context
 *   child_rss_kb          VmRSS of ctxs[0] right after that
 *   call_rtt_us           2000 sequential no-op calls on ctxs[0]
 *   fanout10_calls_per_s  100 rounds of one no-op call on each of the 10
 *                         contexts, gathered with mg_select_all as they
 *                         arrive (the reference uses Select.all)
 *   stream_MBps           200 x 1 MiB bytes sent ctxs[0] -> us through a
 *                         sender, received and decoded until the close
 *   audit_call_rtt_us     2000 no-op calls on an audited local child (its
 *                         log, syslog, the master's chained file) against
 *                         a plain one, pinned pairs (audit_call_rtt_ratio)
 *   audit_2cpu_call_rtt_us  the same, not pinned (every CPU this process
 *                         may use): the record's work free to run on
 *                         another CPU than the round trip's
 *                         (audit_2cpu_call_rtt_ratio)
 *   audit_checkpoint_sign_us  one checkpoint signed (tlog_checkpoint_sign:
 *                         ed25519 over the note), the key the bench's
 *                         own, 200 a run, in this thread's CPU time; what
 *                         the agent and the master each pay every
 *                         TLOG_CHECKPOINT_RECORDS records
 *   fork_create_call_ms   10 fork contexts each created and called once
 *                         (only that is timed; each is shut down after)
 *   via1_call_rtt_us      500 sequential no-op calls to a local context
 *                         started via ctxs[0] (after one untimed first
 *                         call); when mg_local(.via) fails (a library
 *                         without via=) a `# via1_call_rtt_us n/a` comment
 *                         is printed instead and the table says n/a
 *
 * and the work of selftests/bench/ref/mitogen_tree.py (many children):
 *   create_n, create_total_s, create_per_child_ms
 *                         N_MANY=1000 local contexts created one after
 *                         another (no call), all held at once; then shut
 *                         down together (untimed). The reference creates
 *                         100 (see its docstring): compare per child.
 *   parent_kb_per_child   VmRSS growth of this process over that creation,
 *                         divided by N_MANY (first run only: later runs
 *                         find the router's tables already grown); both
 *                         sides call malloc_trim(0) before each reading
 *   fanout100_calls_per_s 100 fresh local contexts, one untimed call on
 *                         each, then 50 rounds of one no-op call on each,
 *                         gathered with mg_select_all (Select.all)
 *
 * RLIMIT_NOFILE's soft limit is raised to the hard limit first: each child
 * holds about 3 fds here (channel, output pipe, pidfd).
 *
 * Every figure except child_rss_kb is measured BENCH_REPS times (default
 * 5) and the median printed; each run's figures go on a `# runs` comment
 * line. Extra runs of local_create_call_ms use fresh sets of 10 contexts
 * (shut down after timing); ctxs[] from the first run serve the rest.
 * Each run of create_per_child_ms starts a fresh set of 1000.
 *
 * Usage: bench [-v]   (-v: progress on stderr)
 * BENCH_ONLY=call_rtt_us (a figure's name, or several separated by commas)
 * measures only those, for profiling one path (perf, strace); the N_CTX
 * local contexts are always started.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <malloc.h>
#include <sys/resource.h>

#include <mitogen/mitogen.h>
#include "bpf/loader.h"		/* bpfload_set_enabled: eBPF on and off in one run */
#include "audit/tlog.h"		/* tlog_checkpoint_sign: the signing cost */

#define N_CTX 10
#define N_CALLS 2000
#define N_ROUNDS 100
#define STREAM_COUNT 200
#define STREAM_SIZE (1 << 20)
#define N_FORK 10
#define N_VIA_CALLS 500
#define N_MANY 1000
#define N_FAN 100
#define N_FAN_ROUNDS 50
#define MAX_REPS 50
/*
 * eBPF on/off: at least this many back-to-back pairs for the round trip
 * and the stream. A 5 % question needs more than 5 pairs on a shared VM,
 * where single pairs range over +-40 %.
 */
#define BPF_PAIRS 15

/*
 * Put every thread of this process on the CPUs of set (the eBPF on/off
 * rows; children started meanwhile inherit it). On this VM a round trip
 * takes ~25 or ~55 us depending on whether the scheduler put the two
 * threads that ping-pong on one CPU or on two, and it keeps either
 * placement for a while: a 5 % question drowns in that unless both sides
 * of every pair run placed alike.
 */
static void pin_threads(const cpu_set_t *set)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			sched_setaffinity(atoi(e->d_name), sizeof(*set), set);
	if (d)
		closedir(d);
}

/* Pin to the first CPU we may use; *all keeps the old set for pin_end.
 * Returns false (nothing changed) when the set cannot be read. */
static bool pin_begin(cpu_set_t *all)
{
	cpu_set_t one;
	int cpu = 0;

	if (sched_getaffinity(0, sizeof(*all), all) < 0)
		return false;
	while (cpu < CPU_SETSIZE - 1 && !CPU_ISSET(cpu, all))
		cpu++;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	pin_threads(&one);
	return true;
}

static void pin_end(bool pinned, const cpu_set_t *all)
{
	if (pinned)
		pin_threads(all);
}


/* --- exported functions (run in the children) ------------------------ */

static int noop(struct mg_call *call, const struct mg_value *args,
		struct mg_value **ret_result)
{
	*ret_result = NULL;
	return 0;
}
MG_EXPORT(noop);

static int rss_kb(struct mg_call *call, const struct mg_value *args,
		  struct mg_value **ret_result)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return mg_call_fail(call, errno, "open /proc/self/status");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	if (kb < 0)
		return mg_call_fail(call, ENOENT, "no VmRSS in /proc/self/status");
	*ret_result = mg_int(kb);
	return *ret_result ? 0 : mg_call_fail(call, ENOMEM, "out of memory");
}
MG_EXPORT(rss_kb);

/* produce(sender, count, size): send count bytes values of size bytes,
 * then close the sender. Like the reference, which builds b'x' * size once
 * and sends that object count times, the buffer is filled once; each send
 * copies it into a fresh value (mg_sender_send takes the value). */
static int produce(struct mg_call *call, const struct mg_value *args,
		   struct mg_value **ret_result)
{
	struct mg_error err = MG_ERROR_INIT;
	const struct mg_value *sv;
	struct mg_sender *tx;
	int64_t count, size;
	int ret = 0;

	if (mg_value_unpack(args, &err, "vll", &sv, &count, &size) < 0)
		return mg_call_fail(call, EINVAL, "%s", err.message);
	if (count < 0 || size < 0 || size > (1 << 30))
		return mg_call_fail(call, EINVAL, "bad count or size");
	tx = mg_sender_from_value(mg_call_router(call), sv);
	if (!tx)
		return mg_call_fail(call, errno, "not a sender");
	void *buf = malloc(size ? (size_t)size : 1);

	if (!buf)
		ret = -ENOMEM;
	else
		memset(buf, 'x', (size_t)size);
	for (int64_t i = 0; i < count && ret == 0; i++)
		ret = mg_sender_send(tx, mg_bytes(buf, (size_t)size));
	free(buf);
	mg_sender_close(tx);
	mg_sender_free(tx);
	if (ret < 0)
		return mg_call_fail(call, -ret, "send: %s", strerror(-ret));
	*ret_result = NULL;
	return 0;
}
MG_EXPORT(produce);

/* --- master side ----------------------------------------------------- */

static bool verbose;
static int reps = 5;
static const char *only;

/* Measure this figure? (BENCH_ONLY) */
static bool want(const char *name)
{
	size_t n = strlen(name);

	for (const char *p = only; p && *p; p += strcspn(p, ","), p += *p == ',')
		if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == '\0'))
			return true;
	return !only || !*only;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void progress(const char *fmt, const char *what)
{
	if (verbose)
		fprintf(stderr, fmt, what);
}

static void die(const char *what, const struct mg_error *err)
{
	char buf[2048];

	fprintf(stderr, "bench: %s: %s\n", what, mg_error_str(err, buf, sizeof(buf)));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Print "name median" and "# runs name v1 v2 ...". */
static void report(const char *name, const char *fmt, double *v, int n)
{
	double s[MAX_REPS];

	printf("# runs %s", name);
	for (int i = 0; i < n; i++) {
		putchar(' ');
		printf(fmt, v[i]);
	}
	putchar('\n');
	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp_double);
	printf("%s ", name);
	printf(fmt, n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2);
	putchar('\n');
	fflush(stdout);
}

static void call_noop(struct mg_context *ctx, const char *what)
{
	struct mg_error err = MG_ERROR_INIT;

	if (mg_call(ctx, "noop", NULL, NULL, &err) < 0)
		die(what, &err);
}

static void stop(struct mg_context *ctx)
{
	mg_context_shutdown(ctx, true);
	mg_context_unref(ctx);
}

/* N_CTX local contexts one after another, each with a first call.
 * Returns ms per context. */
static double local_create_call_sb(struct mg_router *r, struct mg_context **ctxs,
				  const struct mg_sandbox_opts *sb)
{
	struct mg_error err = MG_ERROR_INIT;
	MG_OPTS(mg_local_opts, opts, .remote_name = "bench", .sandbox = sb);
	double t = now();

	for (int i = 0; i < N_CTX; i++) {
		ctxs[i] = mg_local(r, &opts, &err);
		if (!ctxs[i])
			die("mg_local", &err);
		call_noop(ctxs[i], "first call");
	}
	return (now() - t) / N_CTX * 1e3;
}

static double local_create_call(struct mg_router *r, struct mg_context **ctxs)
{
	return local_create_call_sb(r, ctxs, NULL);
}

static double call_rtt(struct mg_context *ctx)
{
	double t = now();

	for (int i = 0; i < N_CALLS; i++)
		call_noop(ctx, "noop call");
	return (now() - t) / N_CALLS * 1e6;
}

/*
 * pairs back-to-back round trips on ctx_a and ctx_b, which goes first
 * alternating; a[] and b[] get the figures, ratio[] a/b of each pair.
 */
static void paired_rtt(struct mg_context *ctx_a, struct mg_context *ctx_b, int pairs,
		       double *a, double *b, double *ratio)
{
	for (int k = 0; k < pairs; k++) {
		if (k % 2)
			b[k] = call_rtt(ctx_b);
		a[k] = call_rtt(ctx_a);
		if (!(k % 2))
			b[k] = call_rtt(ctx_b);
		ratio[k] = a[k] / b[k];
	}
}

/* One no-op call on each of the n contexts, all in flight at once,
 * gathered with mg_select_all (Select.all). */
static void fanout_round(struct mg_context **ctxs, int n, struct mg_receiver **rx,
			 struct mg_value **vals)
{
	struct mg_error err = MG_ERROR_INIT;

	for (int i = 0; i < n; i++) {
		rx[i] = mg_call_async(ctxs[i], "noop", NULL, &err);
		if (!rx[i])
			die("mg_call_async noop", &err);
	}
	if (mg_select_all(rx, (size_t)n, MG_FOREVER, vals, NULL, &err) < 0)
		die("fan-out replies", &err);
	for (int i = 0; i < n; i++) {
		mg_value_free(vals[i]);
		mg_receiver_free(rx[i]);
	}
}

/* rounds fan-out rounds over n contexts. Returns calls per second. */
static double fanout(struct mg_context **ctxs, int n, int rounds)
{
	struct mg_receiver **rx = calloc((size_t)n, sizeof(*rx));
	struct mg_value **vals = calloc((size_t)n, sizeof(*vals));
	double t;

	if (!rx || !vals) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	t = now();
	for (int round = 0; round < rounds; round++)
		fanout_round(ctxs, n, rx, vals);
	t = now() - t;
	free(vals);
	free(rx);
	return rounds * n / t;
}

static double stream(struct mg_router *r, struct mg_context *ctx)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_receiver *rx, *call_rx;
	struct mg_sender *tx;
	struct mg_message *msg;
	struct mg_value *v;
	size_t got = 0;
	double t, dt;
	int ret;

	rx = mg_receiver_new(r, NULL);
	tx = rx ? mg_receiver_to_sender(rx) : NULL;
	if (!tx) {
		fprintf(stderr, "bench: receiver/sender: %s\n", strerror(errno));
		exit(1);
	}
	t = now();
	call_rx = mg_call_async(ctx, "produce",
				MG_LIST(mg_sender_to_value(tx), mg_int(STREAM_COUNT),
					mg_int(STREAM_SIZE)), &err);
	if (!call_rx)
		die("mg_call_async produce", &err);
	while ((ret = mg_receiver_get(rx, MG_FOREVER, &msg, &err)) == 0) {
		v = NULL;
		if (mg_message_value(msg, true, &v, &err) < 0)
			die("stream item", &err);
		got += v && v->type == MG_BYTES ? v->len : 0;
		mg_value_free(v);
		mg_message_free(msg);
	}
	dt = now() - t;
	if (ret != -EPIPE || strcmp(err.message, "sender closed"))
		die("stream end", &err);
	if (got != (size_t)STREAM_COUNT * STREAM_SIZE) {
		fprintf(stderr, "bench: stream: got %zu bytes, expected %zu\n", got,
			(size_t)STREAM_COUNT * STREAM_SIZE);
		exit(1);
	}
	v = NULL;
	if (mg_receiver_get_data(call_rx, MG_FOREVER, &v, &err) < 0)
		die("produce", &err);
	mg_value_free(v);
	mg_receiver_free(call_rx);
	mg_sender_free(tx);
	mg_receiver_free(rx);
	return (double)got / dt / 1e6;
}

/* 500 no-op calls to a context started via ctxs[0]. Returns us per call,
 * or -1 when the context cannot be started (err says why). */
static double via1_call_rtt(struct mg_router *r, struct mg_context *via,
			    struct mg_error *err)
{
	MG_OPTS(mg_local_opts, opts, .remote_name = "bench-via", .via = via);
	struct mg_context *ctx = mg_local(r, &opts, err);
	double t;

	if (!ctx)
		return -1;
	call_noop(ctx, "via first call");
	t = now();
	for (int i = 0; i < N_VIA_CALLS; i++)
		call_noop(ctx, "via call");
	t = (now() - t) / N_VIA_CALLS * 1e6;
	stop(ctx);
	return t;
}

/* VmRSS of this process in kB, after handing free heap pages back (so
 * that it counts memory held, not memory waiting in free lists). */
static long self_rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f;

	malloc_trim(0);
	f = fopen("/proc/self/status", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* n local contexts, one after another, no call. */
static void start_many(struct mg_router *r, struct mg_context **ctxs, int n, const char *name)
{
	struct mg_error err = MG_ERROR_INIT;
	MG_OPTS(mg_local_opts, opts, .remote_name = name);

	for (int i = 0; i < n; i++) {
		ctxs[i] = mg_local(r, &opts, &err);
		if (!ctxs[i]) {
			char buf[2048];

			fprintf(stderr, "bench: mg_local #%d of %d: %s\n", i + 1, n,
				mg_error_str(&err, buf, sizeof(buf)));
			exit(1);
		}
	}
}

/* Shut n contexts down together: ask each, then wait until each has
 * disconnected (a receiver with it as respondent gets a dead message). */
static void stop_many(struct mg_router *r, struct mg_context **ctxs, int n)
{
	struct mg_receiver **rx = calloc((size_t)n, sizeof(*rx));
	struct mg_message *msg;

	if (!rx) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	for (int i = 0; i < n; i++) {
		MG_OPTS(mg_receiver_opts, ro, .respondent = ctxs[i]);

		rx[i] = mg_receiver_new(r, &ro);
		if (!rx[i]) {
			fprintf(stderr, "bench: receiver: %s\n", strerror(errno));
			exit(1);
		}
	}
	for (int i = 0; i < n; i++)
		mg_context_shutdown(ctxs[i], false);
	for (int i = 0; i < n; i++) {
		struct mg_error err = MG_ERROR_INIT;
		int ret;

		while ((ret = mg_receiver_get(rx[i], 30.0, &msg, &err)) == 0)
			mg_message_free(msg);	/* anything but the dead message */
		if (ret == -ETIMEDOUT)
			die("waiting for a child to disconnect", &err);
		mg_receiver_free(rx[i]);
		mg_context_unref(ctxs[i]);
	}
	free(rx);
}

/* N_MANY local contexts held at once. Returns ms per context; *ret_kb
 * gets this process's VmRSS growth per context in kB. */
static double create_many(struct mg_router *r, double *ret_kb)
{
	struct mg_context **ctxs = calloc(N_MANY, sizeof(*ctxs));
	long rss0, rss1;
	double t;

	if (!ctxs) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	rss0 = self_rss_kb();
	t = now();
	start_many(r, ctxs, N_MANY, "bench-many");
	t = now() - t;
	rss1 = self_rss_kb();
	*ret_kb = rss0 > 0 && rss1 > 0 ? (double)(rss1 - rss0) / N_MANY : -1;
	stop_many(r, ctxs, N_MANY);
	free(ctxs);
	return t / N_MANY * 1e3;
}

/* Soft RLIMIT_NOFILE := hard (N_MANY children need ~3 fds each here). */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			fprintf(stderr, "bench: setrlimit(RLIMIT_NOFILE): %s\n",
				strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < 3 * N_MANY + 100)
		fprintf(stderr, "bench: RLIMIT_NOFILE %llu may be too low for %d children\n",
			(unsigned long long)rl.rlim_cur, N_MANY);
}

/* N_FORK fork contexts, each created and called once. Only create+call is
 * timed; each is shut down (untimed) before the next fork. */
static double fork_create_call(struct mg_router *r)
{
	struct mg_error err = MG_ERROR_INIT;
	MG_OPTS(mg_local_opts, lo, .remote_name = "bench-fork");
	MG_OPTS(mg_fork_opts, opts, .local = &lo);
	double total = 0, t;

	for (int i = 0; i < N_FORK; i++) {
		t = now();
		struct mg_context *ctx = mg_fork(r, &opts, &err);

		if (!ctx)
			die("mg_fork", &err);
		call_noop(ctx, "fork call");
		total += now() - t;
		stop(ctx);
	}
	return total / N_FORK * 1e3;
}

int bench_ssh_main(int argc, char **argv);
int bench_podman_main(int argc, char **argv);

int main(int argc, char **argv)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctxs[N_CTX], *extra[N_CTX];
	struct mg_value *v = NULL;
	double runs[MAX_REPS];
	const char *e;
	int ret;

	/* In a child this never returns: it serves calls. */
	ret = mg_main(argc, argv);
	if (ret < 0) {
		fprintf(stderr, "bench: mg_main: %s\n", strerror(-ret));
		return 1;
	}
	/* bench ssh HOST PORT USER KEY: the ssh rows (bench_ssh.c). */
	if (argc > 1 && !strcmp(argv[1], "ssh"))
		return bench_ssh_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "podman"))
		return bench_podman_main(argc - 1, argv + 1);
	verbose = argc > 1 && !strcmp(argv[1], "-v");
	e = getenv("BENCH_REPS");
	if (e && *e) {
		reps = atoi(e);
		if (reps < 1 || reps > MAX_REPS) {
			fprintf(stderr, "bench: BENCH_REPS must be 1..%d\n", MAX_REPS);
			return 2;
		}
	}
	only = getenv("BENCH_ONLY");
	setvbuf(stdout, NULL, _IOLBF, 0);
	raise_nofile();

	struct mg_router *r = mg_router_new(NULL);

	if (!r) {
		fprintf(stderr, "bench: mg_router_new: %s\n", strerror(errno));
		return 1;
	}
	printf("reps %d\n", reps);

	progress("bench: %s\n", "local create + first call");
	runs[0] = local_create_call(r, ctxs);

	/* RSS of a fresh child, before it did anything but one call. */
	if (mg_call(ctxs[0], "rss_kb", NULL, &v, &err) < 0 || !v || v->type != MG_INT)
		die("rss_kb", &err);
	printf("child_rss_kb %lld\n", (long long)v->i);
	mg_value_free(v);

	if (want("local_create_call_ms")) {
		for (int k = 1; k < reps; k++) {
			runs[k] = local_create_call(r, extra);
			for (int i = 0; i < N_CTX; i++)
				stop(extra[i]);
		}
		report("local_create_call_ms", "%.2f", runs, reps);
	}

	/*
	 * Forks first, while this master is small, as a program starting
	 * forks is: fork() copies the page tables, and later rows (the 200
	 * MiB stream, sandboxes, eBPF maps) leave this process several times
	 * bigger, which would be measured as fork cost.
	 */
	if (want("fork_create_call_ms")) {
		progress("bench: %s\n", "fork create + call");
		for (int k = 0; k < reps; k++)
			runs[k] = fork_create_call(r);
		report("fork_create_call_ms", "%.2f", runs, reps);
	}

	if (want("call_rtt_us")) {
		progress("bench: %s\n", "call round trip");
		for (int k = 0; k < reps; k++)
			runs[k] = call_rtt(ctxs[0]);
		report("call_rtt_us", "%.1f", runs, reps);
	}

	/* Issue 5: the strict sandbox (seccomp strict + every capability
	 * dropped + no_new_privs + Landlock + a net namespace with lo up) on
	 * creation, a seccomp filter on calls. */
	if (want("sandbox_create_call_ms")) {
		static const char *const ro[] = { "/", NULL }, *rw[] = { "/tmp", NULL };
		MG_OPTS(mg_sandbox_opts, strict, .seccomp = "strict", .caps = "", .ro = ro,
			.rw = rw, .namespaces = MG_NS_NET);

		double plain[MAX_REPS], ratio[MAX_REPS];

		/* Each against a plain create right before or after it: two
		 * medians taken minutes apart compare two states of the VM. */
		progress("bench: %s\n", "sandboxed create");
		for (int k = 0; k < reps; k++) {
			for (int j = 0; j < 2; j++) {
				bool sandboxed = (j == 0) == (k % 2 == 0);
				double t = local_create_call_sb(r, extra, sandboxed ? &strict : NULL);

				*(sandboxed ? &runs[k] : &plain[k]) = t;
				for (int i = 0; i < N_CTX; i++)
					stop(extra[i]);
			}
			ratio[k] = runs[k] / plain[k];
		}
		report("sandbox_create_call_ms", "%.2f", runs, reps);
		report("sandbox_plain_create_call_ms", "%.2f", plain, reps);
		report("sandbox_create_ratio", "%.3f", ratio, reps);
	}
	if (want("sandbox_call_rtt_us")) {
		MG_OPTS(mg_sandbox_opts, dflt, .seccomp = "default");
		MG_OPTS(mg_local_opts, lo, .remote_name = "bench-sandboxed", .sandbox = &dflt);
		struct mg_error err2 = MG_ERROR_INIT;
		struct mg_context *sbx = mg_local(r, &lo, &err2);

		if (!sbx)
			die("mg_local (sandboxed)", &err2);
		struct mg_context *plain_ctx;
		double plain[MAX_REPS], ratio[MAX_REPS];
		int pairs = reps < BPF_PAIRS ? BPF_PAIRS : reps;
		cpu_set_t all;
		bool pinned;

		/* Pinned pairs against a plain child, as for eBPF below. */
		stop(sbx);
		pinned = pin_begin(&all);
		sbx = mg_local(r, &lo, &err2);
		plain_ctx = mg_local(r, NULL, &err2);
		if (!sbx || !plain_ctx)
			die("mg_local (sandboxed pair)", &err2);
		call_noop(sbx, "first call");
		call_noop(plain_ctx, "first call");
		progress("bench: %s\n", "sandboxed round trip");
		paired_rtt(sbx, plain_ctx, pairs, runs, plain, ratio);
		report("sandbox_call_rtt_us", "%.1f", runs, pairs);
		report("sandbox_plain_call_rtt_us", "%.1f", plain, pairs);
		report("sandbox_call_rtt_ratio", "%.3f", ratio, pairs);
		stop(sbx);
		stop(plain_ctx);
		pin_end(pinned, &all);
	}

	/*
	 * Issue 18: an audited call (a local child with .audit: its chained
	 * log and syslog on this host, the records and checkpoints up to
	 * the master, which chains them into its own file) against a plain
	 * one, pinned pairs as above. The logs, the key and the master's
	 * file go to a directory of our own (BENCH_AUDIT_DIR, default a
	 * fresh one under TMPDIR), removed after.
	 */
	if (want("audit_call_rtt_us")) {
		MG_OPTS(mg_local_opts, alo, .remote_name = "bench-audited", .audit = true);
		struct mg_error err4 = MG_ERROR_INIT;
		struct mg_context *aud, *plain_ctx;
		double plain[MAX_REPS], ratio[MAX_REPS];
		int pairs = reps < BPF_PAIRS ? BPF_PAIRS : reps;
		char tmpl[4096], path[4200], cmd[4300];
		const char *tmp = getenv("TMPDIR");
		cpu_set_t all;
		bool pinned;

		snprintf(tmpl, sizeof(tmpl), "%s/bench-audit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(tmpl)) {
			perror("bench: mkdtemp");
			return 1;
		}
		snprintf(path, sizeof(path), "%s/key", tmpl);
		setenv("MITOGEN_AUDIT_KEY", path, 1);
		snprintf(path, sizeof(path), "%s/logs", tmpl);
		setenv("MITOGEN_AUDIT_DIR", path, 1);
		snprintf(path, sizeof(path), "%s/master.jsonl", tmpl);
		if (mg_router_audit_to_file(r, path, &err4) < 0)
			die("mg_router_audit_to_file", &err4);
		pinned = pin_begin(&all);
		aud = mg_local(r, &alo, &err4);
		plain_ctx = mg_local(r, NULL, &err4);
		if (!aud || !plain_ctx)
			die("mg_local (audited pair)", &err4);
		call_noop(aud, "first call");
		call_noop(plain_ctx, "first call");
		progress("bench: %s\n", "audited round trip");
		paired_rtt(aud, plain_ctx, pairs, runs, plain, ratio);
		report("audit_call_rtt_us", "%.1f", runs, pairs);
		report("audit_plain_call_rtt_us", "%.1f", plain, pairs);
		report("audit_call_rtt_ratio", "%.3f", ratio, pairs);
		/*
		 * The same pairs, not pinned: the writer's and the master's
		 * record work may run on another CPU while the round trip
		 * goes on. Noisier (the scheduler puts the two ends on one
		 * CPU or two), and not the measure: the pinned row
		 * above is, where every cycle of the record counts.
		 */
		pin_end(pinned, &all);
		progress("bench: %s\n", "audited round trip, not pinned");
		paired_rtt(aud, plain_ctx, pairs, runs, plain, ratio);
		report("audit_2cpu_call_rtt_us", "%.1f", runs, pairs);
		report("audit_2cpu_plain_call_rtt_us", "%.1f", plain, pairs);
		report("audit_2cpu_call_rtt_ratio", "%.3f", ratio, pairs);
		stop(aud);
		stop(plain_ctx);
		{
			struct tlog_key key;
			struct tlog_tree tree = { 0 };
			uint8_t leaf[TLOG_HASH] = { 0 };
			char name[TLOG_NAME_MAX + 1], why[512], note[TLOG_NOTE_MAX];

			tlog_key_name(name);
			if (tlog_key_load(&key, name, why, sizeof(why)) < 0) {
				fprintf(stderr, "bench: audit key: %s\n", why);
				return 1;
			}
			for (int i = 0; i < 1000; i++) {
				leaf[0] = (uint8_t)i;
				leaf[1] = (uint8_t)(i >> 8);
				tlog_tree_append(&tree, leaf);
			}
			progress("bench: %s\n", "checkpoint signature");
			/* CPU time of this thread: the cost, not the machine's
			 * load (a busy machine stretches the wall clock). */
			for (int k = 0; k < reps; k++) {
				struct timespec t0, t1;

				clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
				for (int i = 0; i < 200; i++)
					tlog_checkpoint_sign(&key, "bench/mitogen/0/bench", &tree,
							     false, note);
				clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
				runs[k] = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
					   (double)(t1.tv_nsec - t0.tv_nsec)) / 200 / 1e3;
			}
			report("audit_checkpoint_sign_us", "%.1f", runs, reps);
			explicit_bzero(&key, sizeof(key));
		}
		unsetenv("MITOGEN_AUDIT_KEY");
		unsetenv("MITOGEN_AUDIT_DIR");
		if (!getenv("BENCH_KEEP_AUDIT")) {
			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
			if (system(cmd) != 0)
				fprintf(stderr, "bench: could not remove %s\n", tmpl);
		} else {
			printf("# audit trail kept in %s\n", tmpl);
		}
	}

	if (want("fanout10_calls_per_s")) {
		progress("bench: %s\n", "fan-out");
		for (int k = 0; k < reps; k++)
			runs[k] = fanout(ctxs, N_CTX, N_ROUNDS);
		report("fanout10_calls_per_s", "%.0f", runs, reps);
	}

	if (want("stream_MBps")) {
		progress("bench: %s\n", "stream");
		for (int k = 0; k < reps; k++)
			runs[k] = stream(r, ctxs[0]);
		report("stream_MBps", "%.0f", runs, reps);
	}

	if (want("via1_call_rtt_us")) {
		progress("bench: %s\n", "call via 1 hop");
		for (int k = 0; k < reps; k++) {
			runs[k] = via1_call_rtt(r, ctxs[0], &err);
			if (runs[k] < 0) {
				char buf[2048];

				printf("# via1_call_rtt_us n/a: %s\n",
				       mg_error_str(&err, buf, sizeof(buf)));
				break;
			}
			if (k == reps - 1)
				report("via1_call_rtt_us", "%.1f", runs, reps);
		}
	}

	/* Issue 6: eBPF channel filters on versus off, same run, runs
	 * interleaved, which goes first alternating from one run to the next;
	 * contexts made while off have no filter. */
	if (want("bpf_on_call_rtt_us") || want("bpf_on_stream_MBps") ||
	    want("bpf_on_create_call_ms")) {
		struct mg_error err3 = MG_ERROR_INIT;
		struct mg_context *c_on, *c_off;
		double off[MAX_REPS], ratio[MAX_REPS];
		cpu_set_t all;
		bool pinned;

		progress("bench: %s\n", "eBPF on vs off");
		/* On the first CPU we may use, we and both children. */
		pinned = pin_begin(&all);
		bpfload_set_enabled(true);
		c_on = mg_local(r, NULL, &err3);
		bpfload_set_enabled(false);
		c_off = mg_local(r, NULL, &err3);
		bpfload_set_enabled(true);
		if (!c_on || !c_off)
			die("mg_local (eBPF on/off)", &err3);
		printf("# bpf %s\n", bpfload_active() ? "on" : "unavailable: both rows run without it");
		call_noop(c_on, "first call");
		call_noop(c_off, "first call");
		if (want("bpf_on_call_rtt_us")) {
			int pairs = reps < BPF_PAIRS ? BPF_PAIRS : reps;

			paired_rtt(c_on, c_off, pairs, runs, off, ratio);
			report("bpf_on_call_rtt_us", "%.1f", runs, pairs);
			report("bpf_off_call_rtt_us", "%.1f", off, pairs);
			/* Each pair ran back to back: their ratio cancels the drift
			 * of a shared machine better than two medians. */
			report("bpf_call_rtt_ratio", "%.3f", ratio, pairs);
		}
		if (want("bpf_on_stream_MBps")) {
			int pairs = reps < BPF_PAIRS ? BPF_PAIRS : reps;

			for (int k = 0; k < pairs; k++) {
				if (k % 2)
					off[k] = stream(r, c_off);
				runs[k] = stream(r, c_on);
				if (!(k % 2))
					off[k] = stream(r, c_off);
			}
			report("bpf_on_stream_MBps", "%.0f", runs, pairs);
			report("bpf_off_stream_MBps", "%.0f", off, pairs);
			for (int k = 0; k < pairs; k++)
				off[k] = runs[k] / off[k];
			report("bpf_stream_ratio", "%.3f", off, pairs);
		}
		if (want("bpf_on_create_call_ms")) {
			for (int k = 0; k < reps; k++) {
				runs[k] = local_create_call(r, extra);
				for (int i = 0; i < N_CTX; i++)
					stop(extra[i]);
				bpfload_set_enabled(false);
				off[k] = local_create_call(r, extra);
				bpfload_set_enabled(true);
				for (int i = 0; i < N_CTX; i++)
					stop(extra[i]);
			}
			report("bpf_on_create_call_ms", "%.3f", runs, reps);
			report("bpf_off_create_call_ms", "%.3f", off, reps);
		}
		stop(c_on);
		stop(c_off);
		pin_end(pinned, &all);
	}

	if (want("fanout100_calls_per_s")) {
		struct mg_context *fan[N_FAN];
		struct mg_receiver *rx[N_FAN];
		struct mg_value *vals[N_FAN];

		progress("bench: %s\n", "fan-out, 100 children");
		start_many(r, fan, N_FAN, "bench-fan");
		fanout_round(fan, N_FAN, rx, vals);	/* untimed first call */
		for (int k = 0; k < reps; k++)
			runs[k] = fanout(fan, N_FAN, N_FAN_ROUNDS);
		report("fanout100_calls_per_s", "%.0f", runs, reps);
		stop_many(r, fan, N_FAN);
	}

	if (want("create_per_child_ms") || want("parent_kb_per_child")) {
		double kb[MAX_REPS];

		progress("bench: %s\n", "create 1000 children");
		for (int k = 0; k < reps; k++)
			runs[k] = create_many(r, &kb[k]);
		printf("create_n %d\n", N_MANY);
		report("create_per_child_ms", "%.2f", runs, reps);
		/* The total, from the median per child. */
		qsort(runs, (size_t)reps, sizeof(double), cmp_double);
		printf("create_total_s %.2f\n", (reps % 2 ? runs[reps / 2]
				: (runs[reps / 2 - 1] + runs[reps / 2]) / 2) * N_MANY / 1e3);
		printf("# runs parent_kb_per_child");
		for (int k = 0; k < reps; k++)
			printf(" %.1f", kb[k]);
		printf("\nparent_kb_per_child %.1f\n", kb[0]);
	}

	for (int i = 0; i < N_CTX; i++)
		stop(ctxs[i]);
	mg_router_unref(r);
	return 0;
}
