// SPDX-License-Identifier: MIT
/*
 * test_via_concurrent.c — starts through an intermediate (via=) run at
 * once there (master/via.c: mg.via.start on the service workers), and a
 * start that hangs there does not stop the intermediate from serving
 * others.
 *
 * Owns: its temporary directory (a fake ssh, its FIFO), the local
 * contexts it starts. Ordered by hand-offs only: the fake ssh blocks on a
 * FIFO the test holds open, and the test knows it is there because it
 * could open the FIFO's other end; every wait is bounded by a generous
 * timeout that only a hang reaches.
 */
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
#include <mitogen/service.h>

#include "core/router.h"
#include "selftests/lib/harness.h"

#define HANG_LIMIT_S 60.0	/* only a hang takes this long */

/* --- a service of the test program (its children offer it too) ---------- */

static int ping(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		void *ud)
{
	*ret = mg_int(getpid());
	return 0;
}

/* Wait at the FIFO args[0] until the test opens and closes its other end. */
static int wait_fifo(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		     void *ud)
{
	char c;
	int fd = open(args->items[0].str, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return mg_call_fail(call, errno, "open %s", args->items[0].str);
	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	close(fd);
	*ret = mg_int(1);
	return 0;
}

static const struct mg_service_method viatest_methods[] = {
	{ "ping", ping, MG_SERVICE_PARENTS, "" },
	{ "wait", wait_fifo, MG_SERVICE_PARENTS, "s" },
};

/* --- helpers -------------------------------------------------------------- */

static struct mg_router *router;
static char tmpdir[256];

static void remove_tmpdir(void *arg)
{
	char path[PATH_MAX + 32];
	const char *const names[] = { "fake-ssh", "gate", "gate1", "gate2", "gate3" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	tmpdir[0] = '\0';
}

static void make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/mg-viaconc-XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
	mg_test_defer(remove_tmpdir, NULL);
}

static void make_fifo(char *path, size_t n, const char *name)
{
	snprintf(path, n, "%s/%s", tmpdir, name);
	assert_int_equal(mkfifo(path, 0600), 0);
}

/*
 * The writing end of the FIFO path, once a reader waits there (then it is
 * blocked in read() until we close it), or -1 after max_s seconds.
 */
static int fifo_hold(const char *path, double max_s)
{
	double deadline = mg_test_now() + max_s;
	int fd;

	while ((fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
		if (errno != ENXIO || mg_test_now() >= deadline)
			return -1;
		usleep(2000);
	}
	return fd;
}

static void stop_ctx(void *arg)
{
	struct mg_context *c = arg;

	mg_context_shutdown(c, true);
	mg_context_unref(c);
}

static struct mg_context *start_local(struct mg_context *via, const char *name)
{
	MG_OPTS(mg_local_opts, lo, .via = via, .remote_name = name,
		.connect_timeout = HANG_LIMIT_S);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_local(router, &lo, &err);
	char buf[1400];

	if (!c)
		fail_msg("start %s: %s", name, mg_error_str(&err, buf, sizeof(buf)));
	return mg_test_defer(stop_ctx, c);
}

/* A job on a thread of the test, with a latch: done once it returned. */
struct job {
	pthread_t t;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	/* in */
	struct mg_context *via;
	const char *host;		/* ssh: the target as written */
	const char *ssh_path;
	/* out */
	struct mg_context *ctx;
	long pid;
	char error[1400];
};

static void job_done(struct job *j)
{
	pthread_mutex_lock(&j->lock);
	j->done = true;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

/* Wait up to max_s seconds; true once the job returned. */
static bool job_wait(struct job *j, double max_s)
{
	struct timespec ts;
	bool done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)max_s;
	pthread_mutex_lock(&j->lock);
	while (!j->done && pthread_cond_timedwait(&j->cond, &j->lock, &ts) == 0)
		;
	done = j->done;
	pthread_mutex_unlock(&j->lock);
	return done;
}

static void *ssh_job(void *arg)
{
	struct job *j = arg;
	MG_OPTS(mg_local_opts, lo, .via = j->via, .connect_timeout = 3 * HANG_LIMIT_S);
	MG_OPTS(mg_ssh_opts, so, .local = &lo, .hostname = j->host, .ssh_path = j->ssh_path);
	struct mg_error err = MG_ERROR_INIT;

	j->ctx = mg_ssh(router, &so, &err);
	if (!j->ctx)
		mg_error_str(&err, j->error, sizeof(j->error));
	job_done(j);
	return NULL;
}

static void *local_job(void *arg)
{
	struct job *j = arg;
	MG_OPTS(mg_local_opts, lo, .via = j->via, .remote_name = "second",
		.connect_timeout = HANG_LIMIT_S);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;

	j->ctx = mg_local(router, &lo, &err);
	if (!j->ctx)
		mg_error_str(&err, j->error, sizeof(j->error));
	else if (mg_call(j->ctx, "mg.getpid", NULL, &v, &err) == 0 && v->type == MG_INT)
		j->pid = (long)v->i;
	mg_value_free(v);
	job_done(j);
	return NULL;
}

/* A call on the intermediate itself (CALL_FUNCTION: its main thread). */
static void *call_job(void *arg)
{
	struct job *j = arg;
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;

	if (mg_call(j->via, "mg.getpid", NULL, &v, &err) == 0 && v->type == MG_INT)
		j->pid = (long)v->i;
	else
		mg_error_str(&err, j->error, sizeof(j->error));
	mg_value_free(v);
	job_done(j);
	return NULL;
}

static void job_start(struct job *j, void *(*fn)(void *))
{
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	assert_int_equal(pthread_create(&j->t, NULL, fn, j), 0);
}

static void job_join(struct job *j)
{
	pthread_join(j->t, NULL);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
}

/* --- tests ---------------------------------------------------------------- */

/*
 * Through one intermediate R: an ssh start whose ssh blocks until the
 * test lets it go; while it is blocked, a second start through R (a local
 * one) and a call on R itself both complete. Then the first is let go:
 * its ssh fails, and the error names the target. Before (mg._proxy_start
 * on R's main thread, one call at a time) the second start and the call
 * waited behind the first.
 */
static void test_start_blocked_others_served(void **state)
{
	struct mg_context *r;
	struct job first = { 0 }, second = { 0 }, call = { 0 };
	char script[PATH_MAX], gate[PATH_MAX];
	FILE *f;
	int hold;

	make_tmpdir();
	make_fifo(gate, sizeof(gate), "gate");
	snprintf(script, sizeof(script), "%s/fake-ssh", tmpdir);
	f = fopen(script, "w");
	assert_non_null(f);
	/* Blocks until the test closes the gate; then fails as ssh does. */
	fprintf(f, "#!/bin/sh\nread x < '%s'\n"
		"echo 'ssh: Could not resolve hostname mg-blocked.invalid: released by the test' >&2\n"
		"exit 255\n", gate);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(script, 0755), 0);

	r = start_local(NULL, "R");
	first.via = r;
	first.host = "mg-blocked.invalid";
	first.ssh_path = script;
	job_start(&first, ssh_job);
	/* The hand-off: R runs the fake ssh, which now waits at the gate. */
	hold = fifo_hold(gate, HANG_LIMIT_S);
	if (hold < 0) {
		job_wait(&first, 0);
		fail_msg("the fake ssh never reached its gate (start: %s)",
			 first.done ? first.error : "still running");
	}

	second.via = r;
	job_start(&second, local_job);
	call.via = r;
	job_start(&call, call_job);
	if (!job_wait(&second, HANG_LIMIT_S) || !job_wait(&call, HANG_LIMIT_S)) {
		print_message("# while one start was blocked: second start %s, call on R %s\n",
			      second.done ? "done" : "still waiting",
			      call.done ? "done" : "still waiting");
		close(hold);	/* let everything finish before we fail */
		job_join(&second);
		job_join(&call);
		job_join(&first);
		if (second.ctx)
			stop_ctx(second.ctx);
		if (first.ctx)
			stop_ctx(first.ctx);
		fail_msg("a start blocked in R held up other calls to R");
	}
	job_join(&second);
	job_join(&call);
	if (!second.ctx)
		fail_msg("second start: %s", second.error);
	mg_test_defer(stop_ctx, second.ctx);
	assert_true(second.pid > 0);
	assert_true(call.pid > 0);
	assert_int_equal(call.pid, (long)mg_context_pid(r));
	/* The first is still where we hold it. */
	assert_false(job_wait(&first, 0));

	close(hold);
	assert_true(job_wait(&first, 3 * HANG_LIMIT_S));
	job_join(&first);
	if (first.ctx) {
		stop_ctx(first.ctx);
		fail_msg("the fake ssh's start succeeded");
	}
	print_message("# first start: %s\n", first.error);
	assert_non_null(strstr(first.error, "via R"));
	assert_non_null(strstr(first.error, "mg-blocked.invalid"));
}

/*
 * The exported function stays, unchanged: a caller of the old protocol (a
 * master from before mg.via, whose intermediate runs a newer image) asks
 * mg._proxy_start in R, with an id allocated to R as the master does
 * (router_alloc_id: the library's own; ADD_ROUTE for any other id is
 * refused), and gets a child of R it can call.
 */
static void test_proxy_start_kept(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *r = start_local(NULL, "R2"), *c;
	struct mg_value *res = NULL, *v = NULL;
	uint32_t id = router_alloc_id(router, mg_context_remote_id(r));
	const struct mg_value *pid;
	char buf[1400];

	assert_true(id > 0);
	if (mg_call(r, "mg._proxy_start",
		    mg_value_build("slsdbb", "local", (int64_t)id, "R2.old", 60.0, 0, 0), &res,
		    &err) < 0)
		fail_msg("mg._proxy_start: %s", mg_error_str(&err, buf, sizeof(buf)));
	assert_int_equal(res->type, MG_MAP);
	pid = mg_map_get(res, "pid");
	assert_non_null(pid);
	c = mg_router_context_by_id(router, id);
	assert_non_null(c);
	mg_test_defer(stop_ctx, c);
	if (mg_call(c, "mg.getpid", NULL, &v, &err) < 0)
		fail_msg("call the child R2 started: %s", mg_error_str(&err, buf, sizeof(buf)));
	assert_int_equal(v->i, pid->i);
	mg_value_free(v);
	mg_value_free(res);
	/* What master/via.c falls back on: a service R does not offer is
	 * refused with exactly these words (an agent from before mg.via). */
	mg_error_clear(&err);
	assert_int_equal(mg_call_service(r, "mg.no-such", "start", NULL, NULL, &err), -EREMOTEIO);
	assert_int_equal(err.errnum, ENOENT);
	assert_string_equal(err.message, "no service named 'mg.no-such'");
}

/*
 * A fork made through R runs on one of R's service workers while others
 * sit idle; the child has none of those threads and must still serve
 * services (and so via= starts through it). Before agent/service.c reset
 * its pool in a fork's child, the child counted R's idle workers as its
 * own, and every service call to it waited for ever.
 */
static void test_fork_via_busy_pool(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *r = start_local(NULL, "R3"), *fk, *below;
	struct mg_receiver *rx[3];
	struct mg_value *v = NULL;
	char gates[3][PATH_MAX], buf[1400];
	int hold[3];

	make_tmpdir();
	/* Three calls blocked at once in R: three workers. */
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "gate%d", i + 1);
		make_fifo(gates[i], sizeof(gates[i]), name);
		rx[i] = mg_call_service_async(r, "viatest", "wait", MG_LIST(mg_str(gates[i])),
					      &err);
		assert_non_null(rx[i]);
		hold[i] = fifo_hold(gates[i], HANG_LIMIT_S);
		assert_true(hold[i] >= 0);
	}
	for (int i = 0; i < 3; i++) {
		close(hold[i]);
		assert_int_equal(mg_receiver_get_data(rx[i], HANG_LIMIT_S, &v, &err), 0);
		mg_value_free(v);
		v = NULL;
		mg_receiver_free(rx[i]);
	}
	/* Now the fork, on one of them, the others idle. */
	{
		MG_OPTS(mg_local_opts, lo, .via = r, .remote_name = "forked",
			.connect_timeout = HANG_LIMIT_S);
		MG_OPTS(mg_fork_opts, fo, .local = &lo);

		fk = mg_fork(router, &fo, &err);
		if (!fk)
			fail_msg("fork via R3: %s", mg_error_str(&err, buf, sizeof(buf)));
		mg_test_defer(stop_ctx, fk);
	}
	/* A service call to the fork, bounded. */
	rx[0] = mg_call_service_async(fk, "viatest", "ping", NULL, &err);
	assert_non_null(rx[0]);
	if (mg_receiver_get_data(rx[0], HANG_LIMIT_S, &v, &err) < 0)
		fail_msg("service call in the fork: %s", mg_error_str(&err, buf, sizeof(buf)));
	{
		struct mg_value *p = NULL;

		/* Served by the fork itself (its pid lives in R). */
		assert_int_equal(mg_call(fk, "mg.getpid", NULL, &p, &err), 0);
		assert_int_equal(v->i, p->i);
		mg_value_free(p);
	}
	mg_value_free(v);
	mg_receiver_free(rx[0]);
	/* And a start through it. */
	below = start_local(fk, "below-fork");
	assert_int_equal(mg_call(below, "mg.getpid", NULL, &v, &err), 0);
	assert_true(v->i > 0);
	mg_value_free(v);
}

int main(int argc, char **argv)
{
	int failed;

	/* Before mg_main: the children (this program) offer it too. */
	if (mg_service_register("viatest", viatest_methods,
				sizeof(viatest_methods) / sizeof(viatest_methods[0]), NULL) < 0)
		return 1;
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_blocked_others_served),
		cmocka_unit_test(test_proxy_start_kept),
		cmocka_unit_test(test_fork_via_busy_pool),
	};
	router = mg_router_new(NULL);
	if (!router)
		return 1;
	failed = MG_TEST_RUN("transports/via_concurrent", tests);
	mg_router_unref(router);
	return failed;
}
