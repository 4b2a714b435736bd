// SPDX-License-Identifier: MIT
/* add.c — the README's example, built so that it stays true. */
#include <errno.h>
#include <stdio.h>
#include <mitogen/mitogen.h>

/* Runs in the child: args is the list the caller passed. */
static int add(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int64_t a, b;

	if (mg_value_unpack(args, NULL, "ll", &a, &b) < 0)
		return mg_call_fail(call, EINVAL, "add(int, int)");
	*ret = mg_int(a + b);
	return 0;
}
MG_EXPORT(add);

int main(int argc, char **argv)
{
	mg_main(argc, argv);		/* a child never returns from here */
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *router = mg_router_new(NULL);
	struct mg_context *child = mg_local(router, NULL, &err);
	struct mg_value *sum = NULL;

	if (child && mg_call(child, "add", mg_value_build("ll", 2LL, 40LL), &sum, &err) == 0)
		printf("2 + 40 = %lld\n", (long long)sum->i);
	else
		fprintf(stderr, "%s\n", err.message);
	mg_value_free(sum);
	mg_context_shutdown(child, true);
	mg_context_unref(child);
	mg_router_unref(router);
}
