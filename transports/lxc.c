// SPDX-License-Identifier: MIT
/*
 * lxc.c — mg_lxc(): a context in a running LXC container,
 * `lxc-attach --clear-env -n NAME -- /bin/sh -c SCRIPT` (container.c).
 * --clear-env: none of our environment (HOME, XDG_*) leaks in; lxc-attach
 * sets a PATH of its own.
 */
#include <string.h>

#include <mitogen/transport.h>

#include "transports/transport.h"

static int lxc_build(const struct transport_req *req, const char *command, const char *script,
		     struct argv_buf *ab, char *why, size_t why_size)
{
	const struct ctr_opts *co = req->opts;

	argv_add(ab, "%s", co->path ? co->path : "lxc-attach");
	argv_add(ab, "--clear-env");
	argv_add(ab, "-n");
	argv_add(ab, "%s", co->container);
	argv_add(ab, "--");
	container_argv_sh(ab, script);
	return 0;
}

static const char *const no_prompts[] = { NULL };

/* The lxc row of the method table (transports/methods.c). */
const struct transport lxc_transport = {
	.kind = "lxc", .remote = true, .c_locale = true, .prompts = no_prompts,
	.build = lxc_build, .from_value = container_from_value,
};

struct mg_context *mg_lxc(struct mg_router *r, const struct mg_lxc_opts *opts,
			  struct mg_error *err)
{
	struct mg_lxc_opts o;

	CTR_OPTS_COPY(o, opts);
	struct ctr_opts co = { .container = o.container, .path = o.lxc_attach_path };

	return container_factory(r, &lxc_transport, &co, o.local, err);
}
