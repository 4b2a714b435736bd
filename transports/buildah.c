// SPDX-License-Identifier: MIT
/*
 * buildah.c — mg_buildah(): a context in a buildah working container,
 * `buildah run [--user U] CTR -- /bin/sh -c SCRIPT` (container.c).
 */
#include <string.h>

#include <mitogen/transport.h>

#include "transports/transport.h"

static int buildah_build(const struct transport_req *req, const char *command,
			 const char *script, struct argv_buf *ab, char *why, size_t why_size)
{
	const struct ctr_opts *co = req->opts;

	argv_add(ab, "%s", co->path ? co->path : "buildah");
	argv_add(ab, "run");
	if (co->user) {
		argv_add(ab, "--user");
		argv_add(ab, "%s", co->user);
	}
	argv_add(ab, "%s", co->container);
	argv_add(ab, "--");
	container_argv_sh(ab, script);
	return 0;
}

static const char *const no_prompts[] = { NULL };

/* The buildah row of the method table (transports/methods.c). */
const struct transport buildah_transport = {
	.kind = "buildah", .remote = true, .c_locale = true, .prompts = no_prompts,
	.build = buildah_build, .from_value = container_from_value,
};

struct mg_context *mg_buildah(struct mg_router *r, const struct mg_buildah_opts *opts,
			      struct mg_error *err)
{
	struct mg_buildah_opts o;

	CTR_OPTS_COPY(o, opts);
	struct ctr_opts co = { .container = o.container, .user = o.username,
			       .path = o.buildah_path };

	return container_factory(r, &buildah_transport, &co, o.local, err);
}
