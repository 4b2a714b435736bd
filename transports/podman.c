// SPDX-License-Identifier: MIT
/*
 * podman.c — mg_podman(): a context in a running podman container,
 * `podman exec -i [--user U] CTR /bin/sh -c SCRIPT` (container.c).
 *
 * A local podman also gets `--preserve-fds 1`: fd 3 of ours, one end of
 * a SEQPACKET socketpair (transport_start), reaches the first stage as
 * its fd 3; a prefix moves it to fd 4 (the first stage uses 3) and names
 * it to the agent (AGENT_CHAN_ENV), which takes it as its channel after
 * the first stage (and gets a fresh pair's end over it: conmon keeps a
 * copy of the first, container_chan_take): calls then go straight between
 * us and the agent, not through podman's and conmon's relay (100-200 us a
 * round trip here). The fd
 * is the channel the agent would have had on stdio, handed to the same
 * process; podman-remote (the fd would be the client's, not the
 * server's) and an old podman without the option stay on stdio.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/transport.h>

#include "agent/agent.h"
#include "core/log.h"
#include "transports/transport.h"

/* This podman said it has no --preserve-fds: not asked again. */
static atomic_bool podman_no_preserve;

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
	if (req->pass_chan) {
		argv_add(ab, "--preserve-fds");
		argv_add(ab, "1");
	}
	argv_add(ab, "%s", co->container);
	if (!req->pass_chan) {
		container_argv_sh(ab, script);
		return 0;
	}
	/* fd 3 to 4, named for the agent; when it is not there (it did not
	 * arrive), nothing: the agent stays on stdio. The first stage's
	 * commands see fd 4 as they would see stdio. */
	argv_add(ab, "/bin/sh");
	argv_add(ab, "-c");
	argv_add(ab, "{ command exec 4<&3 3<&-;} 2>/dev/null&&export %s=4;%s", AGENT_CHAN_ENV,
		 script);
	return 0;
}

/* A local podman (not podman-remote, nor podman sent to a service by
 * CONTAINER_HOST or CONTAINER_CONNECTION) that has not refused it. */
static bool podman_pass_chan(const void *opts)
{
	const struct ctr_opts *co = opts;
	const char *path = co->path ? co->path : "podman";
	const char *base = strrchr(path, '/');
	const char *h = getenv("CONTAINER_HOST"), *c = getenv("CONTAINER_CONNECTION");
	static atomic_bool said;

	base = base ? base + 1 : path;
	if (atomic_load(&podman_no_preserve))
		return false;
	if (!strstr(base, "remote") && !(h && *h) && !(c && *c))
		return true;
	if (!atomic_exchange(&said, true))
		LOG_INFO("podman: %s is remote (it cannot hand a process our fd): calls go "
			 "through podman's stdio (said once)", path);
	return false;
}

/* "Error: unknown flag: --preserve-fds" (an old podman, or a remote one):
 * once more without it, and never again in this process. */
static bool podman_pass_chan_refused(const char *message)
{
	if (!strstr(message, "preserve-fds"))
		return false;
	if (!atomic_exchange(&podman_no_preserve, true))
		LOG_INFO("podman: it has no --preserve-fds (%.200s): calls go through podman's "
			 "stdio (said once)", message);
	return true;
}

static const char *const no_prompts[] = { NULL };

/* The podman row of the method table (transports/methods.c). */
const struct transport podman_transport = {
	.kind = "podman", .remote = true, .c_locale = true, .prompts = no_prompts,
	.build = podman_build, .from_value = container_from_value,
	.pass_chan = podman_pass_chan, .pass_chan_refused = podman_pass_chan_refused,
};

struct mg_context *mg_podman(struct mg_router *r, const struct mg_podman_opts *opts,
			     struct mg_error *err)
{
	struct mg_podman_opts o;

	CTR_OPTS_COPY(o, opts);
	struct ctr_opts co = { .container = o.container, .user = o.username, .path = o.podman_path };

	return container_factory(r, &podman_transport, &co, o.local, err);
}
