// SPDX-License-Identifier: MIT
/*
 * selftests/files/test_service.c — services (agent/service.c): a test
 * service registered before mg_main, so every child started from this
 * binary offers it; calls, argument checks, unknown names, the worker
 * pool (a call blocked in one method while another runs, and while the
 * main thread serves mg_call), call_no_reply.
 *
 * Owns: its router, one local child, the test service. Must not touch:
 * library internals.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mitogen/mitogen.h>
#include <mitogen/service.h>

#include "selftests/lib/harness.h"

static struct mg_router *router;
static struct mg_context *ctx;

/* --- the test service (runs in the child) -------------------------------- */

static pthread_mutex_t t_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t t_cond = PTHREAD_COND_INITIALIZER;
static bool t_released;
static int64_t t_value;

static int t_echo(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		  void *ud)
{
	*ret = mg_strf("%s:%s", (const char *)ud, args->items[0].str);
	return 0;
}

/* Blocks until "release" runs: only possible when two workers exist. */
static int t_wait(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		  void *ud)
{
	pthread_mutex_lock(&t_lock);
	while (!t_released)
		pthread_cond_wait(&t_cond, &t_lock);
	t_released = false;
	pthread_mutex_unlock(&t_lock);
	*ret = mg_str("released");
	return 0;
}

static int t_release(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		     void *ud)
{
	pthread_mutex_lock(&t_lock);
	t_released = true;
	pthread_cond_broadcast(&t_cond);
	pthread_mutex_unlock(&t_lock);
	return 0;
}

static int t_set(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		 void *ud)
{
	pthread_mutex_lock(&t_lock);
	t_value = args->items[0].i;
	pthread_mutex_unlock(&t_lock);
	return 0;
}

static int t_get(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		 void *ud)
{
	pthread_mutex_lock(&t_lock);
	*ret = mg_int(t_value);
	pthread_mutex_unlock(&t_lock);
	return 0;
}

static int t_fail(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		  void *ud)
{
	return mg_call_fail(call, ENOTSUP, "this method always fails");
}

static const struct mg_service_method t_methods[] = {
	{ "echo", t_echo, MG_SERVICE_PARENTS, "s" },
	{ "wait", t_wait, MG_SERVICE_PARENTS, "" },
	{ "release", t_release, MG_SERVICE_PARENTS, "" },
	{ "set", t_set, MG_SERVICE_PARENTS, "i" },
	{ "get", t_get, MG_SERVICE_ANY, NULL },
	{ "fail", t_fail, MG_SERVICE_PARENTS, NULL },
};

/* --- fixture -------------------------------------------------------------- */

static int setup(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char buf[1200];

	router = mg_router_new(NULL);
	assert_non_null(router);
	ctx = mg_local(router, NULL, &err);
	if (!ctx)
		fail_msg("mg_local: %s", mg_error_str(&err, buf, sizeof(buf)));
	return 0;
}

static int teardown(void **state)
{
	mg_context_shutdown(ctx, true);
	mg_context_unref(ctx);
	mg_router_unref(router);
	return 0;
}

/* --- tests ----------------------------------------------------------------- */

static void test_call(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;

	assert_int_equal(mg_call_service(ctx, "test", "echo", MG_LIST(mg_str("hi")), &v, &err),
			 0);
	assert_int_equal(v->type, MG_STR);
	/* The userdata given at registration reaches the method. */
	assert_string_equal(v->str, "ud:hi");
	mg_value_free(v);
}

static void test_errors(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	/* Wrong type, wrong count: refused before the method runs. */
	assert_int_equal(mg_call_service(ctx, "test", "echo", MG_LIST(mg_int(1)), NULL, &err),
			 -EREMOTEIO);
	assert_int_equal(err.kind, MG_ERR_CALL);
	assert_int_equal(err.errnum, EINVAL);
	assert_string_equal(err.function, "test.echo");
	assert_non_null(strstr(err.message, "wrong type"));
	assert_int_equal(mg_call_service(ctx, "test", "echo", NULL, NULL, &err), -EREMOTEIO);
	assert_non_null(strstr(err.message, "number of arguments"));
	/* Unknown names say which. */
	assert_int_equal(mg_call_service(ctx, "nosuch", "echo", NULL, NULL, &err), -EREMOTEIO);
	assert_int_equal(err.errnum, ENOENT);
	assert_non_null(strstr(err.message, "no service named 'nosuch'"));
	assert_int_equal(mg_call_service(ctx, "test", "nosuch", NULL, NULL, &err), -EREMOTEIO);
	assert_non_null(strstr(err.message, "has no method 'nosuch'"));
	/* A failing method: its errno and text. */
	assert_int_equal(mg_call_service(ctx, "test", "fail", NULL, NULL, &err), -EREMOTEIO);
	assert_int_equal(err.errnum, ENOTSUP);
	assert_string_equal(err.message, "this method always fails");
	/* Bad arguments on our side. */
	assert_int_equal(mg_call_service(NULL, "test", "get", NULL, NULL, &err), -EINVAL);
	assert_int_equal(mg_call_service(ctx, "test", "get", mg_int(1), NULL, &err), -EINVAL);
	/* Registration checks. */
	assert_int_equal(mg_service_register("test", t_methods, 1, NULL), -EEXIST);
	assert_int_equal(mg_service_register(NULL, t_methods, 1, NULL), -EINVAL);
}

/* A method blocked on a worker does not block other methods, nor mg_call
 * on the main thread. */
static void test_pool(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_receiver *rx;
	struct mg_message *m = NULL;
	struct mg_value *v = NULL;

	rx = mg_call_service_async(ctx, "test", "wait", NULL, &err);
	assert_non_null(rx);
	/* Still waiting: the main thread answers. */
	assert_int_equal(mg_call(ctx, "mg.getpid", NULL, &v, &err), 0);
	mg_value_free(v);
	v = NULL;
	assert_int_equal(mg_receiver_get(rx, 0, &m, NULL), -ETIMEDOUT);
	/* Another worker releases the first. */
	assert_int_equal(mg_call_service(ctx, "test", "release", NULL, NULL, &err), 0);
	assert_int_equal(mg_receiver_get_data(rx, 60, &v, &err), 0);
	assert_string_equal(v->str, "released");
	mg_value_free(v);
	mg_receiver_free(rx);
}

static void test_no_reply(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	double until = mg_test_now() + 60;

	assert_int_equal(mg_call_service_no_reply(ctx, "test", "set", MG_LIST(mg_int(42))), 0);
	/* Its effect shows; it runs on a worker, so poll with "get". */
	for (;;) {
		assert_int_equal(mg_call_service(ctx, "test", "get", NULL, &v, &err), 0);
		if (v->i == 42 || mg_test_now() > until)
			break;
		mg_value_free(v);
		usleep(1000);
	}
	assert_int_equal(v->i, 42);
	mg_value_free(v);
}

int main(int argc, char **argv)
{
	mg_service_register("test", t_methods, sizeof(t_methods) / sizeof(t_methods[0]),
			    (void *)"ud");
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_reply, setup, teardown),
	};
	return MG_TEST_RUN("files/service", tests);
}
