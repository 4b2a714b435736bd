// SPDX-License-Identifier: MIT
/*
 * test_calls.c — local and fork contexts, calls and their failures, as a
 * user sees them: values intact, CallError with the remote reason, dead
 * children, timeouts, size limits, start-up failures, no leaked fds or
 * processes.
 *
 * Nothing here depends on how fast the machine is: a call that must still
 * be running when a wait times out waits at a gate the test opens later
 * (mg_test_gate_new), a timeout is asserted as "no sooner than", and a
 * wait for something to happen has a generous bound (WAIT_S) that only a
 * broken guarantee reaches. What a test makes is freed through
 * mg_test_defer, so a failed assertion leaks nothing either.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "selftests/lib/harness.h"

/* How long a test waits for what must happen: reached only when it does
 * not (a loaded machine is slow, not 60 s slow). */
#define WAIT_S 60.0

/* --- functions the children run ---------------------------------------- */

static int echo(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const struct mg_value *v;

	if (mg_value_unpack(args, NULL, "v", &v) < 0)
		return mg_call_fail(call, EINVAL, "echo takes one argument");
	*ret = mg_value_copy(v);
	return *ret ? 0 : -ENOMEM;
}
MG_EXPORT(echo);

static int fail_with(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int e;
	const char *text;

	if (mg_value_unpack(args, NULL, "is", &e, &text) < 0)
		return mg_call_fail(call, EINVAL, "fail_with(errno, text)");
	return mg_call_fail(call, e, "%s", text);
}
MG_EXPORT(fail_with);

static int sleep_ms(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int ms;

	if (mg_value_unpack(args, NULL, "i", &ms) < 0)
		return mg_call_fail(call, EINVAL, "sleep_ms(ms)");
	usleep((useconds_t)ms * 1000);
	*ret = mg_int(ms);
	return 0;
}
MG_EXPORT(sleep_ms);

static int make_bytes(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int64_t n;
	void *p;

	if (mg_value_unpack(args, NULL, "l", &n) < 0 || n < 0)
		return mg_call_fail(call, EINVAL, "make_bytes(n)");
	p = calloc(1, (size_t)n + 1);
	if (!p)
		return mg_call_fail(call, ENOMEM, "out of memory");
	*ret = mg_bytes_take(p, (size_t)n);
	return 0;
}
MG_EXPORT(make_bytes);

static int whoami(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	*ret = mg_value_build("llb", (int64_t)mg_context_id(), (int64_t)mg_parent_id(),
			      (int)mg_is_master());
	return 0;
}
MG_EXPORT(whoami);

static int say(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const char *text;

	if (mg_value_unpack(args, NULL, "s", &text) < 0)
		return mg_call_fail(call, EINVAL, "say(text)");
	mg_log(MG_LOG_WARNING, "log:%s", text);
	printf("stdout:%s\n", text);
	fflush(stdout);
	fprintf(stderr, "stderr:%s\n", text);
	return 0;
}
MG_EXPORT(say);

/* Send count values of size bytes to a sender, then close it. */
static int produce(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const struct mg_value *sv;
	struct mg_sender *tx;
	int count, size;

	if (mg_value_unpack(args, NULL, "vii", &sv, &count, &size) < 0)
		return mg_call_fail(call, EINVAL, "produce(sender, count, size)");
	tx = mg_sender_from_value(mg_call_router(call), sv);
	if (!tx)
		return mg_call_fail(call, errno, "bad sender");
	for (int i = 0; i < count; i++) {
		void *p = malloc((size_t)size + 1);

		memset(p, 'a' + i % 26, (size_t)size);
		mg_sender_send(tx, mg_bytes_take(p, (size_t)size));
	}
	mg_sender_close(tx);
	mg_sender_free(tx);
	return 0;
}
MG_EXPORT(produce);

static int fork_flag;

static void on_fork(void *data)
{
	fork_flag = *(int *)data;
}

static int get_fork_flag(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	*ret = mg_int(fork_flag);
	return 0;
}
MG_EXPORT(get_fork_flag);

/* --- cleanups (mg_test_defer) ------------------------------------------ */

static void free_rx(void *rx)
{
	mg_receiver_free(rx);
}

static void free_value(void *v)
{
	mg_value_free(v);
}

static void stop_ctx(void *c)
{
	mg_context_shutdown(c, true);
	mg_context_unref(c);
}

static void unref_ctx(void *c)
{
	mg_context_unref(c);
}

static void free_router(void *r)
{
	mg_router_unref(r);
}

static void free_sender(void *tx)
{
	mg_sender_free(tx);
}

static void unlink_path(void *path)
{
	unlink(path);
	free(path);
}

/* A private file name in $TMPDIR (mkstemp), removed after the test. */
static char *temp_file(const char *stem)
{
	const char *base = getenv("TMPDIR");
	char *path;
	int fd;

	assert_true(asprintf(&path, "%s/%s-XXXXXX", base && *base ? base : "/tmp", stem) > 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	return mg_test_defer(unlink_path, path);
}

/* --- fixtures ---------------------------------------------------------- */

static struct mg_router *router;
static struct mg_context *child;

static int setup(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	MG_OPTS(mg_local_opts, lo, .remote_name = "calls");

	mg_test_log_capture_start();
	router = mg_router_new(NULL);
	if (!router)
		return -1;
	child = mg_local(router, &lo, &err);
	if (!child) {
		fprintf(stderr, "# mg_local: %s\n", err.message);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	mg_context_shutdown(child, true);
	mg_context_unref(child);
	mg_router_unref(router);
	mg_test_log_capture_stop();
	return 0;
}

static struct mg_value *call_echo(struct mg_context *ctx, struct mg_value *v)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *out = NULL;
	int ret = mg_call(ctx, "echo", MG_LIST(v), &out, &err);

	if (ret < 0)
		fprintf(stderr, "# echo: %s\n", err.message);
	assert_int_equal(ret, 0);
	return mg_test_defer(free_value, out);
}

/* --- tests ------------------------------------------------------------- */

/* (An MG_ERROR value is how a call fails, so it is not echoed here; the
 * value tests cover its encoding.) */
static void test_value_types_round_trip(void **state)
{
	struct mg_value *cases[] = {
		mg_nil(), mg_bool(true), mg_bool(false), mg_int(0), mg_int(-1),
		mg_int(INT64_MIN), mg_int(INT64_MAX), mg_float(3.25), mg_float(-0.0),
		mg_str(""), mg_str("héllo\n\"world\""), mg_bytes("\0\1\2\377", 4),
		mg_list(), MG_LIST(mg_int(1), mg_str("two"), MG_LIST(mg_nil())),
		mg_map(), mg_context_value(7), mg_sender_value(3, 1234),
		mg_secret("hunter2"),
	};
	struct mg_value *m = mg_test_defer(free_value, mg_map());

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		mg_test_defer(free_value, cases[i]);
	mg_map_set(m, "a", mg_int(1));
	mg_map_set(m, "b", MG_LIST(mg_str("x"), mg_float(2.5)));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mg_value *out = call_echo(child, mg_value_copy(cases[i]));

		assert_non_null(out);
		if (!mg_value_equal(cases[i], out))
			fail_msg("value %zu (%s) changed in transit", i, mg_type_name(cases[i]->type));
	}
	assert_true(mg_value_equal(m, call_echo(child, mg_value_copy(m))));
}

static void test_large_value_round_trip(void **state)
{
	size_t n = (size_t)3 << 20;	/* 3 MiB: many records each way */
	uint8_t *p = malloc(n);
	struct mg_value *in, *out;

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 9));
	in = mg_test_defer(free_value, mg_bytes_take(p, n));
	out = call_echo(child, mg_value_copy(in));
	assert_int_equal(out->type, MG_BYTES);
	assert_int_equal(out->len, n);
	assert_memory_equal(out->bytes, in->bytes, n);
}

static void test_remote_failure_is_call_error(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *out = NULL;
	int ret;

	ret = mg_call(child, "fail_with", mg_value_build("is", EACCES, "no entry for you"),
		      &out, &err);
	assert_int_equal(ret, -EREMOTEIO);
	assert_null(out);
	assert_int_equal(err.kind, MG_ERR_CALL);
	assert_int_equal(err.errnum, EACCES);
	assert_string_equal(err.function, "fail_with");
	assert_string_equal(err.context, "calls");
	assert_non_null(strstr(err.message, "no entry for you"));
}

static void test_unexported_name(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	int ret = mg_call(child, "system", mg_value_build("s", "id"), NULL, &err);

	assert_int_equal(ret, -EREMOTEIO);
	assert_int_equal(err.kind, MG_ERR_CALL);
	assert_int_equal(err.errnum, ENOENT);
	assert_non_null(strstr(err.message, "no exported function named 'system'"));
}

static void test_bad_arguments(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	assert_int_equal(mg_call(child, "sleep_ms", mg_value_build("s", "x"), NULL, &err),
			 -EREMOTEIO);
	assert_int_equal(err.errnum, EINVAL);
	/* Arguments must be a list. */
	assert_int_equal(mg_call(child, "echo", mg_int(1), NULL, &err), -EINVAL);
	assert_int_equal(mg_call(NULL, "echo", NULL, NULL, &err), -EINVAL);
}

static void test_100_concurrent_calls(void **state)
{
	struct mg_receiver *rx[100];

	for (int i = 0; i < 100; i++) {
		rx[i] = mg_test_defer(free_rx, mg_call_async(child, "echo", MG_LIST(mg_int(i * 3)),
							     NULL));
		assert_non_null(rx[i]);
	}
	for (int i = 99; i >= 0; i--) {
		struct mg_value *v = NULL;

		assert_int_equal(mg_receiver_get_data(rx[i], WAIT_S, &v, NULL), 0);
		mg_test_defer(free_value, v);
		assert_int_equal(v->type, MG_INT);
		assert_int_equal(v->i, i * 3);
	}
}

/*
 * Several threads call the same child at once. The first to wait reads
 * the child's stream itself (core/lend.c) and hands the others' replies
 * over; a timeout on the reader gives the stream back. Every result must
 * reach its own caller, with none lost or crossed, and nothing hangs.
 */
#define CC_THREADS 4
#define CC_CALLS 300

struct cc_arg {
	struct mg_context *ctx;
	int base;
	int bad;
	char gate[256];		/* where its slow calls wait */
};

static void *cc_thread(void *p)
{
	struct cc_arg *a = p;

	for (int i = 0; i < CC_CALLS; i++) {
		struct mg_error err = MG_ERROR_INIT;
		struct mg_value *v = NULL;
		int want = a->base + i;

		if (i % 50 == 7) {
			/* A call that cannot finish before its gate opens:
			 * TimeoutError, and once the gate is open its late
			 * reply must not reach the next call's receiver. */
			struct mg_receiver *rx = mg_call_async(a->ctx, "mg_test.gate",
							       mg_value_build("sl", a->gate,
									      (int64_t)want), NULL);

			if (!rx || mg_receiver_get_data(rx, 0.001, &v, &err) != -ETIMEDOUT ||
			    err.kind != MG_ERR_TIMEOUT)
				a->bad++;
			if (!mg_test_gate_open(a->gate, WAIT_S))
				a->bad++;
			mg_value_free(v);
			mg_receiver_free(rx);
			continue;
		}
		if (mg_call(a->ctx, "echo", MG_LIST(mg_int(want)), &v, &err) < 0 ||
		    v->type != MG_INT || v->i != want)
			a->bad++;
		mg_value_free(v);
	}
	return NULL;
}

static void test_threads_call_one_child(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *other = mg_test_defer(stop_ctx, mg_local(router, NULL, &err));
	struct cc_arg args[CC_THREADS + 1];
	pthread_t t[CC_THREADS + 1];
	int started = 0, bad = 0;

	assert_non_null(other);
	for (int i = 0; i <= CC_THREADS; i++) {
		/* The last thread calls another child meanwhile. */
		args[i] = (struct cc_arg){ .ctx = i < CC_THREADS ? child : other,
					   .base = i * 100000 };
		mg_test_gate_new(args[i].gate, sizeof(args[i].gate));
	}
	for (int i = 0; i <= CC_THREADS; i++)
		started += pthread_create(&t[i], NULL, cc_thread, &args[i]) == 0;
	/* Joined before any assertion: a failure leaves no thread running. */
	for (int i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		bad += args[i].bad;
	}
	assert_int_equal(started, CC_THREADS + 1);
	assert_int_equal(bad, 0);
}

static void test_receiver_timeout(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_receiver *rx;
	struct mg_value *v = NULL;
	char gate[256];
	double t0;

	mg_test_gate_new(gate, sizeof(gate));
	rx = mg_test_defer(free_rx, mg_call_async(child, "mg_test.gate",
						  mg_value_build("sl", gate, (int64_t)300), NULL));
	assert_non_null(rx);
	t0 = mg_test_now();
	assert_int_equal(mg_receiver_get_data(rx, 0.05, &v, &err), -ETIMEDOUT);
	assert_true(mg_test_now() - t0 >= 0.05);	/* no sooner */
	assert_int_equal(err.kind, MG_ERR_TIMEOUT);
	/* It names the time asked for, not what was left of it. */
	assert_non_null(strstr(err.message, "timed out after 0.050 s"));
	/* The reply still arrives afterwards. */
	assert_true(mg_test_gate_open(gate, WAIT_S));
	assert_int_equal(mg_receiver_get_data(rx, WAIT_S, &v, &err), 0);
	mg_test_defer(free_value, v);
	assert_int_equal(v->i, 300);
}

static void test_identity_in_child(void **state)
{
	struct mg_value *v = NULL;

	assert_true(mg_is_master());
	assert_int_equal(mg_context_id(), 0);
	assert_int_equal(mg_call(child, "whoami", NULL, &v, NULL), 0);
	assert_int_equal(v->items[0].i, mg_context_remote_id(child));
	assert_int_equal(v->items[1].i, 0);
	assert_false(v->items[2].b);
	mg_value_free(v);
}

static void test_sender_stream(void **state)
{
	struct mg_receiver *rx = mg_test_defer(free_rx, mg_receiver_new(router, NULL));
	struct mg_sender *tx = mg_test_defer(free_sender, mg_receiver_to_sender(rx));
	struct mg_message *msg;
	struct mg_error err = MG_ERROR_INIT;
	size_t got = 0, n = 0;
	int ret;

	assert_int_equal(mg_call(child, "produce",
				 mg_value_build("vii", mg_sender_to_value(tx), 20, 100000),
				 NULL, &err), 0);
	while ((ret = mg_receiver_get(rx, WAIT_S, &msg, &err)) == 0) {
		struct mg_value *v = NULL;

		assert_int_equal(mg_message_value(msg, true, &v, NULL), 0);
		assert_int_equal(v->type, MG_BYTES);
		assert_int_equal(v->bytes[0], 'a' + n % 26);
		got += v->len;
		n++;
		assert_ptr_equal(mg_message_receiver(msg), rx);
		mg_value_free(v);
		mg_message_free(msg);
	}
	assert_int_equal(ret, -EPIPE);	/* the sender's close */
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	assert_int_equal(n, 20);
	assert_int_equal(got, 20 * 100000);
}

static void test_child_output_and_log_reach_parent(void **state)
{
	assert_int_equal(mg_call(child, "say", mg_value_build("s", "zebra42"), NULL, NULL), 0);
	assert_true(mg_test_log_contains("calls: log:zebra42", WAIT_S));
	assert_true(mg_test_log_contains("calls: stdout:zebra42", WAIT_S));
	assert_true(mg_test_log_contains("calls: stderr:zebra42", WAIT_S));
}

static void test_invalid_handle_and_no_route(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_message *reply = NULL;
	struct mg_context *ghost = mg_test_defer(unref_ctx, mg_router_context_by_id(router, 999));

	assert_int_equal(mg_context_send_await(child, mg_message_new(0, 4242, mg_int(1)), 5,
					       &reply, &err), -EPIPE);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	assert_string_equal(err.message, "invalid handle");
	assert_int_equal(mg_context_send_await(ghost, mg_message_new(0, 4242, mg_int(1)), 5,
					       &reply, &err), -EPIPE);
	assert_string_equal(err.message, "no route to 999");
}

static void test_send_await_deadline(void **state)
{
	MG_OPTS(mg_receiver_opts, ro, .handle = 0);
	struct mg_receiver *sink = mg_test_defer(free_rx, mg_receiver_new(router, &ro));
	struct mg_context *self = mg_router_context_by_id(router, 0);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_message *reply = NULL;
	double t0 = mg_test_now();

	/* Nobody answers messages queued on sink: the deadline must fire. */
	assert_int_equal(mg_context_send_await(self, mg_message_new(0, mg_receiver_handle(sink),
								    mg_nil()),
					       0.2, &reply, &err), -ETIMEDOUT);
	assert_true(mg_test_now() - t0 >= 0.2);		/* no sooner */
	mg_context_unref(self);
	assert_int_equal(err.kind, MG_ERR_TIMEOUT);
}

static void test_killed_child_fails_pending_call(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_test_defer(stop_ctx, mg_local(router, NULL, &err));
	struct mg_receiver *rx;
	struct mg_value *v = NULL;
	char gate[256];

	assert_non_null(c);
	/* Whether the call has reached the child when it dies or not, the
	 * wait ends with ChannelError, long before its timeout. */
	mg_test_gate_new(gate, sizeof(gate));
	rx = mg_test_defer(free_rx, mg_call_async(c, "mg_test.gate",
						  mg_value_build("sl", gate, (int64_t)1), NULL));
	assert_non_null(rx);
	kill(mg_context_pid(c), SIGKILL);
	assert_int_equal(mg_receiver_get_data(rx, WAIT_S, &v, &err), -EPIPE);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	assert_non_null(strstr(err.message, "disconnected"));
	/* Calls to it now fail at once. */
	assert_int_equal(mg_call(c, "echo", MG_LIST(mg_nil()), NULL, &err), -EPIPE);
}


static void test_parent_sigkill_leaves_no_child(void **state)
{
	int pfd[2];
	pid_t master, grandchild = 0;
	double t0;

	assert_int_equal(pipe(pfd), 0);
	master = fork();
	if (master == 0) {
		struct mg_router *r = mg_router_new(NULL);
		struct mg_context *c = r ? mg_local(r, NULL, NULL) : NULL;
		pid_t p = c ? mg_context_pid(c) : 0;

		if (write(pfd[1], &p, sizeof(p)) != sizeof(p))
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &grandchild, sizeof(grandchild)), sizeof(grandchild));
	close(pfd[0]);
	assert_true(grandchild > 0);
	assert_false(mg_test_pid_gone(grandchild));
	kill(master, SIGKILL);
	waitpid(master, NULL, 0);
	t0 = mg_test_now();
	while (!mg_test_pid_gone(grandchild) && mg_test_now() - t0 < WAIT_S)
		usleep(5000);
	assert_true(mg_test_pid_gone(grandchild));
}

/* A command mg.run is waiting for goes too when the agent loses its parent. */
static void test_parent_sigkill_stops_running_command(void **state)
{
	const char *path = temp_file("mg-pid");
	char buf[32] = "";
	int pfd[2];
	pid_t master, agent = 0, cmd = 0;
	double t0;
	FILE *f;

	assert_int_equal(pipe(pfd), 0);
	master = fork();
	if (master == 0) {
		struct mg_router *r = mg_router_new(NULL);
		struct mg_context *c = r ? mg_local(r, NULL, NULL) : NULL;
		char script[512];
		pid_t p = c ? mg_context_pid(c) : 0;

		snprintf(script, sizeof(script), "echo $$ > %s; exec sleep 30", path);
		if (c)
			mg_call_async(c, "mg.run",
				      mg_value_build("v", MG_LIST(mg_str("sh"), mg_str("-c"),
								  mg_str(script))), NULL);
		if (write(pfd[1], &p, sizeof(p)) != sizeof(p))
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &agent, sizeof(agent)), sizeof(agent));
	close(pfd[0]);
	assert_true(agent > 0);
	t0 = mg_test_now();
	while (mg_test_now() - t0 < WAIT_S &&
	       (!(f = fopen(path, "r")) || !fgets(buf, sizeof(buf), f))) {
		if (f)
			fclose(f);
		f = NULL;
		usleep(10000);
	}
	if (f)
		fclose(f);
	cmd = atoi(buf);
	kill(master, SIGKILL);
	waitpid(master, NULL, 0);
	assert_true(cmd > 0);
	t0 = mg_test_now();
	while ((!mg_test_pid_gone(agent) || !mg_test_pid_gone(cmd)) && mg_test_now() - t0 < WAIT_S)
		usleep(5000);
	assert_true(mg_test_pid_gone(agent));
	assert_true(mg_test_pid_gone(cmd));
}

static void test_shutdown_reaps_and_leaks_nothing(void **state)
{
	int fds = mg_test_count_fds();
	int kids = mg_test_count_children(getpid());
	struct mg_context *c[10];

	for (int i = 0; i < 10; i++) {
		c[i] = i % 2 ? mg_fork(router, NULL, NULL) : mg_local(router, NULL, NULL);
		assert_non_null(mg_test_defer(stop_ctx, c[i]));
		assert_int_equal(mg_call(c[i], "echo", MG_LIST(mg_int(i)), NULL, NULL), 0);
	}
	assert_int_equal(mg_test_count_children(getpid()), kids + 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(mg_context_shutdown(c[i], true), 0);
		assert_true(mg_test_pid_gone(mg_context_pid(c[i])));
	}
	mg_test_cleanup();	/* the contexts' last references */
	/* Watchers are freed on the broker thread just after the reap. */
	for (double t0 = mg_test_now(); mg_test_count_fds() != fds && mg_test_now() - t0 < WAIT_S;)
		usleep(10000);
	assert_int_equal(mg_test_count_fds(), fds);
	assert_int_equal(mg_test_count_children(getpid()), kids);
}

static void test_fork_runs_on_fork(void **state)
{
	int flag = 77;
	MG_OPTS(mg_fork_opts, fo, .on_fork = on_fork, .on_fork_data = &flag);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_test_defer(stop_ctx, mg_fork(router, &fo, &err));
	struct mg_value *v = NULL;

	assert_non_null(c);
	assert_int_equal(mg_call(c, "get_fork_flag", NULL, &v, &err), 0);
	assert_int_equal(mg_test_defer(free_value, v) ? v->i : -1, 77);
	assert_int_equal(fork_flag, 0);
	assert_int_equal(mg_call(c, "mg.getpid", NULL, &v, &err), 0);
	assert_int_equal(mg_test_defer(free_value, v) ? v->i : -1, mg_context_pid(c));
}

static void test_remote_name_sets_argv0(void **state)
{
	MG_OPTS(mg_local_opts, lo, .remote_name = "web-7");
	struct mg_context *c = mg_test_defer(stop_ctx, mg_local(router, &lo, NULL));
	char path[64], buf[64] = "";
	FILE *f;

	assert_non_null(c);
	assert_string_equal(mg_context_name(c), "web-7");
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)mg_context_pid(c));
	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(buf, 1, sizeof(buf) - 1, f) > 0);
	fclose(f);
	assert_string_equal(buf, "mitogen:web-7");

	MG_OPTS(mg_local_opts, bad, .remote_name = "a/b");
	struct mg_error err = MG_ERROR_INIT;

	assert_null(mg_local(router, &bad, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
}

static char *write_script(const char *body)
{
	char *path = temp_file("mg-test");
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	fchmod(fd, 0700);
	close(fd);
	return path;
}

static void test_start_failures_are_stream_errors(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	int kids = mg_test_count_children(getpid());
	double t0;
	char *script;

	MG_OPTS(mg_local_opts, missing, .image = "/nonexistent/agent");
	assert_null(mg_local(router, &missing, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_int_equal(err.errnum, ENOENT);
	assert_non_null(strstr(err.message, "No such file"));

	script = write_script("#!/bin/sh\necho 'agent: cannot frobnicate' >&2\nexit 5\n");
	MG_OPTS(mg_local_opts, early, .image = script);
	assert_null(mg_local(router, &early, &err));
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, "exited with status 5"));
	assert_non_null(strstr(err.message, "cannot frobnicate"));

	script = write_script("#!/bin/sh\necho waiting\nexec sleep 30\n");
	MG_OPTS(mg_local_opts, slow, .image = script, .connect_timeout = 0.3);
	t0 = mg_test_now();
	assert_null(mg_local(router, &slow, &err));
	assert_true(mg_test_now() - t0 >= 0.3);		/* no sooner */
	assert_int_equal(err.kind, MG_ERR_STREAM);
	assert_non_null(strstr(err.message, "connect timeout"));
	assert_non_null(strstr(err.message, "waiting"));
	/* Every failed child was reaped. */
	assert_int_equal(mg_test_count_children(getpid()), kids);
}

static void test_message_size_limit(void **state)
{
	MG_OPTS(mg_router_opts, ro, .max_message_size = 1 << 20);
	struct mg_router *r = mg_test_defer(free_router, mg_router_new(&ro));
	struct mg_context *c = mg_test_defer(stop_ctx, mg_local(r, NULL, NULL));
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;

	assert_non_null(c);
	/* Request too large: refused before sending. */
	assert_int_equal(mg_call(c, "make_bytes", MG_LIST(mg_bytes_take(calloc(1, 2 << 20), 2 << 20)),
				 NULL, &err), -EPIPE);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	assert_string_equal(err.message, "message too large");
	/* Reply too large: the child inherited the limit and says so. */
	assert_int_equal(mg_call(c, "make_bytes", mg_value_build("l", (int64_t)(2 << 20)),
				 &v, &err), -EPIPE);
	assert_string_equal(err.message, "message too large");
	/* Under the limit still works, and the context is still alive. */
	assert_int_equal(mg_call(c, "make_bytes", mg_value_build("l", (int64_t)(512 << 10)),
				 &v, &err), 0);
	mg_test_defer(free_value, v);
	assert_int_equal(v->len, 512 << 10);
}

static int with_router_fn(struct mg_router *r, void *arg)
{
	struct mg_context *c = mg_local(r, NULL, NULL);
	struct mg_value *v = NULL;
	int ret;

	if (!c)
		return -1;
	ret = mg_call(c, "echo", MG_LIST(mg_int(5)), &v, NULL);
	if (ret == 0)
		ret = (int)v->i;
	mg_value_free(v);
	mg_context_unref(c);
	return ret;
}

static void test_run_with_router(void **state)
{
	int kids = mg_test_count_children(getpid());

	assert_int_equal(mg_run_with_router(with_router_fn, NULL), 5);
	/* Shutting the router down took its children with it. */
	assert_int_equal(mg_test_count_children(getpid()), kids);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_value_types_round_trip),
		cmocka_unit_test(test_large_value_round_trip),
		cmocka_unit_test(test_remote_failure_is_call_error),
		cmocka_unit_test(test_unexported_name),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_100_concurrent_calls),
		cmocka_unit_test(test_receiver_timeout),
		cmocka_unit_test(test_identity_in_child),
		cmocka_unit_test(test_sender_stream),
		cmocka_unit_test(test_child_output_and_log_reach_parent),
		cmocka_unit_test(test_invalid_handle_and_no_route),
		cmocka_unit_test(test_send_await_deadline),
		cmocka_unit_test(test_killed_child_fails_pending_call),
		cmocka_unit_test(test_parent_sigkill_leaves_no_child),
		cmocka_unit_test(test_parent_sigkill_stops_running_command),
		cmocka_unit_test(test_shutdown_reaps_and_leaks_nothing),
		cmocka_unit_test(test_fork_runs_on_fork),
		cmocka_unit_test(test_remote_name_sets_argv0),
		cmocka_unit_test(test_start_failures_are_stream_errors),
		cmocka_unit_test(test_message_size_limit),
		cmocka_unit_test(test_run_with_router),
		cmocka_unit_test(test_threads_call_one_child),
	};

	int ret;

	mg_main(argc, argv);
	if (setup(NULL) < 0) {
		printf("1..0 # SKIP cannot start a local context\n");
		return 1;
	}
	ret = MG_TEST_RUN("core/calls", tests);
	teardown(NULL);
	return ret;
}
