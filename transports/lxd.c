// SPDX-License-Identifier: MIT
/*
 * lxd.c — mg_lxd() and mg_incus(): a context in an LXD or Incus instance,
 * `lxc exec --mode=non-interactive NAME -- /bin/sh -c SCRIPT` (incus: the
 * same with `incus`). non-interactive: no TTY even when ours is one.
 */
#include <string.h>

#include <mitogen/transport.h>

#include "transports/transport.h"

static int lxd_build(const struct transport_req *req, const char *command, const char *script,
		     struct argv_buf *ab, char *why, size_t why_size)
{
	const struct ctr_opts *co = req->opts;

	argv_add(ab, "%s", co->path ? co->path : req->t == &incus_transport ? "incus" : "lxc");
	argv_add(ab, "exec");
	argv_add(ab, "--mode=non-interactive");
	argv_add(ab, "%s", co->container);
	argv_add(ab, "--");
	container_argv_sh(ab, script);
	return 0;
}

static const char *const no_prompts[] = { NULL };

/* The lxd and incus rows of the method table (transports/methods.c). */
const struct transport lxd_transport = {
	.kind = "lxd", .remote = true, .c_locale = true, .prompts = no_prompts,
	.build = lxd_build, .from_value = container_from_value,
};
const struct transport incus_transport = {
	.kind = "incus", .remote = true, .c_locale = true, .prompts = no_prompts,
	.build = lxd_build, .from_value = container_from_value,
};

struct mg_context *mg_lxd(struct mg_router *r, const struct mg_lxd_opts *opts,
			  struct mg_error *err)
{
	struct mg_lxd_opts o;

	CTR_OPTS_COPY(o, opts);
	struct ctr_opts co = { .container = o.container, .path = o.lxc_path };

	return container_factory(r, &lxd_transport, &co, o.local, err);
}

struct mg_context *mg_incus(struct mg_router *r, const struct mg_lxd_opts *opts,
			    struct mg_error *err)
{
	struct mg_lxd_opts o;

	CTR_OPTS_COPY(o, opts);
	struct ctr_opts co = { .container = o.container, .path = o.lxc_path };

	return container_factory(r, &incus_transport, &co, o.local, err);
}
