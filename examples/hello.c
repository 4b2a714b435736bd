// SPDX-License-Identifier: MIT
/*
 * examples/hello.c — the smallest libmitogen program: start a copy of
 * ourselves as a child context, call a function there, print the answer.
 *
 *	$ build/examples/hello
 *	hello, world from pid 12345
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include <mitogen/mitogen.h>

/* Runs in the child. args is the list the caller passed: here, one name. */
static int greet(struct mg_call *call, const struct mg_value *args,
		 struct mg_value **ret_result)
{
	struct mg_error err = MG_ERROR_INIT;
	const char *name;

	if (mg_value_unpack(args, &err, "s", &name) < 0)
		return mg_call_fail(call, EINVAL, "%s", err.message);
	*ret_result = mg_strf("hello, %s from pid %d", name ? name : "nobody",
			      (int)getpid());
	return *ret_result ? 0 : mg_call_fail(call, ENOMEM, "out of memory");
}
/* Only exported functions can be called from another context. */
MG_EXPORT(greet);

int main(int argc, char **argv)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *result = NULL;
	char buf[2048];
	int status = 1;

	/* First line of main. In a child it never returns: it serves calls. */
	mg_main(argc, argv);

	struct mg_router *router = mg_router_new(NULL);
	MG_OPTS(mg_local_opts, opts, .remote_name = "hello");
	/* A copy of this program, running as a subprocess, ready for calls. */
	struct mg_context *child =
		router ? mg_local(router, &opts, &err) : NULL;

	/* Arguments are a list of values; the call takes ownership of it. */
	if (child && mg_call(child, "greet", MG_LIST(mg_str("world")), &result,
			     &err) == 0) {
		printf("%s\n", result->str);
		status = 0;
	} else {
		fprintf(stderr, "hello: %s\n",
			mg_error_str(&err, buf, sizeof(buf)));
	}

	mg_value_free(result);
	/* Ask the child to exit, and wait for it. */
	if (child)
		mg_context_shutdown(child, true);
	mg_context_unref(child);
	mg_router_unref(router);
	return status;
}
