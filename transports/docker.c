// SPDX-License-Identifier: MIT
/*
 * docker.c — mg_docker(): a context in a running docker container
 * (`docker exec -i [-u U] CTR /bin/sh -c SCRIPT`) or in a new one of an
 * image (`docker run --rm --pull=never -i [-u U] IMAGE /bin/sh -c SCRIPT`:
 * the container goes with the context; the image must be present, we
 * never pull). See container.c.
 */
#include <string.h>

#include <mitogen/transport.h>

#include "transports/transport.h"

static int docker_build(const struct transport_req *req, const char *command,
			const char *script, struct argv_buf *ab, char *why, size_t why_size)
{
	const struct ctr_opts *co = req->opts;

	argv_add(ab, "%s", co->path ? co->path : "docker");
	if (co->image) {
		argv_add(ab, "run");
		argv_add(ab, "--rm");
		/* Never a registry behind the caller's back: the image must be here. */
		argv_add(ab, "--pull=never");
	} else {
		argv_add(ab, "exec");
	}
	argv_add(ab, "-i");
	if (co->user) {
		argv_add(ab, "-u");
		argv_add(ab, "%s", co->user);
	}
	argv_add(ab, "%s", co->image ? co->image : co->container);
	container_argv_sh(ab, script);
	return 0;
}

static const char *const no_prompts[] = { NULL };

/* The docker row of the method table (transports/methods.c). */
const struct transport docker_transport = {
	.kind = "docker", .remote = true, .c_locale = true, .prompts = no_prompts,
	.build = docker_build, .from_value = container_from_value,
};

struct mg_context *mg_docker(struct mg_router *r, const struct mg_docker_opts *opts,
			     struct mg_error *err)
{
	struct mg_docker_opts o;

	CTR_OPTS_COPY(o, opts);
	struct ctr_opts co = { .container = o.container, .image = o.image, .user = o.username,
			       .path = o.docker_path };

	return container_factory(r, &docker_transport, &co, o.local, err);
}
