// SPDX-License-Identifier: MIT
/*
 * kubectl.c — mg_kubectl(): a context in a Kubernetes pod,
 * `kubectl [ARGS] exec -i [-n NS] POD [-c CTR] -- /bin/sh -c SCRIPT`.
 * Never -t: a TTY would merge stderr into stdout and add '\r'
 * (kubernetes#38998). kubectl's exit status means nothing to us
 * (kubectl#1726): a lost connection is the channel closing.
 */
#include <string.h>

#include <mitogen/transport.h>

#include "transports/transport.h"

static int kubectl_build(const struct transport_req *req, const char *command,
			 const char *script, struct argv_buf *ab, char *why, size_t why_size)
{
	const struct ctr_opts *co = req->opts;

	argv_add(ab, "%s", co->path ? co->path : "kubectl");
	for (const char *const *a = co->args; a && *a; a++)
		argv_add(ab, "%s", *a);
	argv_add(ab, "exec");
	argv_add(ab, "-i");
	if (co->ns) {
		argv_add(ab, "-n");
		argv_add(ab, "%s", co->ns);
	}
	argv_add(ab, "%s", co->container);
	if (co->sub) {
		argv_add(ab, "-c");
		argv_add(ab, "%s", co->sub);
	}
	argv_add(ab, "--");
	container_argv_sh(ab, script);
	return 0;
}

static const char *const no_prompts[] = { NULL };

/* The kubectl row of the method table (transports/methods.c). */
const struct transport kubectl_transport = {
	.kind = "kubectl", .remote = true, .c_locale = true, .prompts = no_prompts,
	.build = kubectl_build, .from_value = container_from_value,
};

struct mg_context *mg_kubectl(struct mg_router *r, const struct mg_kubectl_opts *opts,
			      struct mg_error *err)
{
	struct mg_kubectl_opts o;

	CTR_OPTS_COPY(o, opts);
	struct ctr_opts co = { .container = o.pod, .sub = o.container, .ns = o.kubectl_namespace,
			       .path = o.kubectl_path, .args = o.kubectl_args };

	return container_factory(r, &kubectl_transport, &co, o.local, err);
}
