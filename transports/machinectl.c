// SPDX-License-Identifier: MIT
/*
 * machinectl.c — mg_machinectl(): a context in a systemd-nspawn machine,
 * `machinectl shell -q [--uid U] MACHINE /bin/sh -c SCRIPT`.
 */
#include <string.h>

#include <mitogen/transport.h>

#include "transports/transport.h"

static int machinectl_build(const struct transport_req *req, const char *command,
			    const char *script, struct argv_buf *ab, char *why, size_t why_size)
{
	const struct ctr_opts *co = req->opts;

	argv_add(ab, "%s", co->path ? co->path : "machinectl");
	argv_add(ab, "shell");
	argv_add(ab, "-q");
	if (co->user) {
		argv_add(ab, "--uid");
		argv_add(ab, "%s", co->user);
	}
	argv_add(ab, "%s", co->container);
	container_argv_sh(ab, script);
	return 0;
}

static const char *const no_prompts[] = { NULL };

/* The machinectl row of the method table (transports/methods.c). */
const struct transport machinectl_transport = {
	.kind = "machinectl", .remote = true, .c_locale = true, .prompts = no_prompts,
	.build = machinectl_build, .from_value = container_from_value,
};

struct mg_context *mg_machinectl(struct mg_router *r, const struct mg_machinectl_opts *opts,
				 struct mg_error *err)
{
	struct mg_machinectl_opts o;

	CTR_OPTS_COPY(o, opts);
	struct ctr_opts co = { .container = o.machine, .user = o.username,
			       .path = o.machinectl_path };

	return container_factory(r, &machinectl_transport, &co, o.local, err);
}
