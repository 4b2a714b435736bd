// SPDX-License-Identifier: MIT
/*
 * podman.c — mg_podman(): a context in a running podman container,
 * `podman exec -i [--user U] CTR /bin/sh -c SCRIPT` (container.c).
 */
#include <string.h>

#include <mitogen/transport.h>

#include "transports/transport.h"

static int podman_build(const struct transport_req *req, const char *command,
			const char *script, struct argv_buf *ab, char *why, size_t why_size)
{
	const struct ctr_opts *co = req->opts;

	argv_add(ab, "%s", co->path ? co->path : "podman");
	argv_add(ab, "exec");
	argv_add(ab, "-i");
	if (co->user) {
		argv_add(ab, "--user");
		argv_add(ab, "%s", co->user);
	}
	argv_add(ab, "%s", co->container);
	container_argv_sh(ab, script);
	return 0;
}

static const char *const no_prompts[] = { NULL };

/* The podman row of the method table (transports/methods.c). */
const struct transport podman_transport = {
	.kind = "podman", .remote = true, .c_locale = true, .prompts = no_prompts,
	.build = podman_build, .from_value = container_from_value,
};

struct mg_context *mg_podman(struct mg_router *r, const struct mg_podman_opts *opts,
			     struct mg_error *err)
{
	struct mg_podman_opts o;

	CTR_OPTS_COPY(o, opts);
	struct ctr_opts co = { .container = o.container, .user = o.username, .path = o.podman_path };

	return container_factory(r, &podman_transport, &co, o.local, err);
}
