// SPDX-License-Identifier: MIT
/*
 * container.c — what the container methods share (podman.c, docker.c,
 * buildah.c, lxc.c, lxd.c, kubectl.c, machinectl.c, setns.c): one shape of
 * options (struct ctr_opts), their checks, the list they travel as in a
 * via= message, and the start through the first stage. Each method's own
 * file says only how its CLI's command line looks.
 *
 * Every CLI runs the first stage as `/bin/sh -c SCRIPT` in the container,
 * without a TTY (one would merge stderr into stdout and add '\r'), over
 * its stdin/stdout: a byte stream, as ssh's. The container is another
 * machine to us (transport.remote: its uids, files and pids are not
 * ours): its cache is under $HOME there, or the first stage's fallbacks
 * (a read-only root, no writable home). What the CLI prints when it
 * fails (no such container, not running, no /bin/sh) is quoted in the
 * StreamError (firststage.c).
 *
 * Where the CLI can hand the agent an fd (podman exec --preserve-fds:
 * transport.pass_chan), the channel is a SEQPACKET socketpair instead,
 * made here (wherever the CLI runs: on the host an ssh hop reaches, in
 * the agent there): after the first stage the agent talks over it and
 * no call crosses the CLI's relay (conmon's), and the eBPF channel
 * filter covers it as a local child's. When that cannot work (an old or
 * remote CLI, the fd not arriving) the start stays on stdio and says so
 * once in the log.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <mitogen/transport.h>

#include "agent/agent.h"
#include "core/hooks.h"
#include "core/log.h"
#include "core/message.h"
#include "transports/transport.h"

/* Container, pod, machine and user names: letters, digits and "_.:@-",
 * not starting with '-' (it would be read as an option). */
static bool ctr_word_ok(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > max || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("_.:@-", c)))
			return false;
	}
	return true;
}

int container_check(const struct transport *t, const struct ctr_opts *co, char *why,
		    size_t size)
{
	bool setns = t == &setns_transport;

	if (setns && co->pid) {
		if (co->pid < 1 || co->pid > 0x3fffffff) {
			snprintf(why, size, "setns: pid %lld is out of range", (long long)co->pid);
			return -EINVAL;
		}
		if (co->container || co->ns) {
			snprintf(why, size, "setns: give a pid or a kind and container, not both");
			return -EINVAL;
		}
		return 0;
	}
	if (setns && (!co->ns || (strcmp(co->ns, "podman") && strcmp(co->ns, "docker") &&
				  strcmp(co->ns, "lxc")))) {
		snprintf(why, size, "setns: kind '%s' is not podman, docker or lxc (or give a pid)",
			 co->ns ? co->ns : "");
		return -EINVAL;
	}
	if (t == &docker_transport && co->image) {
		if (co->container) {
			snprintf(why, size, "docker: give a container or an image, not both");
			return -EINVAL;
		}
		if (!ctr_word_ok(co->image, 255) && !strchr(co->image, '/')) {
			snprintf(why, size, "docker: image '%s' is invalid", co->image);
			return -EINVAL;
		}
		if (co->image[0] == '-' || strpbrk(co->image, " \t\n'\"")) {
			snprintf(why, size, "docker: image '%s' is invalid", co->image);
			return -EINVAL;
		}
	} else if (!ctr_word_ok(co->container, 253)) {
		snprintf(why, size, "%s: %s '%s' is missing or invalid", t->kind,
			 t == &kubectl_transport ? "pod" : t == &machinectl_transport ? "machine"
			 : "container", co->container ? co->container : "");
		return -EINVAL;
	}
	if (co->user && !ctr_word_ok(co->user, 64)) {
		snprintf(why, size, "%s: username '%s' is invalid", t->kind, co->user);
		return -EINVAL;
	}
	if (co->sub && !ctr_word_ok(co->sub, 253)) {
		snprintf(why, size, "%s: container '%s' is invalid", t->kind, co->sub);
		return -EINVAL;
	}
	if (!setns && co->ns && !ctr_word_ok(co->ns, 253)) {
		snprintf(why, size, "%s: namespace '%s' is invalid", t->kind, co->ns);
		return -EINVAL;
	}
	if (co->path && !*co->path) {
		snprintf(why, size, "%s: the program's path is empty", t->kind);
		return -EINVAL;
	}
	return 0;
}

void container_name(const struct transport *t, const struct ctr_opts *co, char *buf,
		    size_t size)
{
	if (t == &setns_transport && co->pid)
		snprintf(buf, size, "setns.pid%lld", (long long)co->pid);
	else if (t == &setns_transport)
		snprintf(buf, size, "setns.%s.%.60s", co->ns, co->container);
	else
		snprintf(buf, size, "%s.%.70s", t->kind, co->container ? co->container : co->image);
	for (char *p = buf; *p; p++)
		if (*p == '/')
			*p = '.';
}

static struct mg_value *container_value(const struct transport *t, const struct ctr_opts *co)
{
	struct mg_value *args = mg_list();

	for (const char *const *a = co->args; args && a && *a; a++)
		mg_list_append(args, mg_str(*a));
	if (!args)
		return NULL;
	return mg_value_build("sssssssvl", t->kind, co->container, co->image, co->user, co->path,
			      co->ns, co->sub, args, co->pid);
}

static struct mg_context *container_start(const struct transport *t, struct mg_router *r,
					  const struct ctr_opts *co,
					  const struct mg_local_opts *lo, uint32_t id,
					  const struct mg_value *sandbox, struct mg_error *err)
{
	char name[96], why[256];
	struct transport_req req = {
		.t = t,
		.default_name = name,
		.program = co->path,
		.build = t->build,
		.opts = co,
	};

	if (container_check(t, co, why, sizeof(why)) < 0) {
		error_set(err, MG_ERR_STREAM, EINVAL, "%s", why);
		errno = EINVAL;
		return NULL;
	}
	if (t == &setns_transport)
		return setns_start(r, co, lo, id, sandbox, err);
	container_name(t, co, name, sizeof(name));
	req.pass_chan = t->pass_chan && t->pass_chan(co);
	if (req.pass_chan) {
		struct mg_error e = MG_ERROR_INIT;
		struct mg_context *ctx = transport_start(r, &req, lo, id, sandbox, &e);

		if (ctx || !t->pass_chan_refused || !t->pass_chan_refused(e.message)) {
			if (err)
				*err = e;
			return ctx;
		}
		/* The CLI refused the option: once more, on its stdio. */
		req.pass_chan = false;
	}
	return transport_start(r, &req, lo, id, sandbox, err);
}

/*
 * Why a fresh pair: the CLI's helpers keep their copy of the fd they
 * handed over (podman's conmon, until it exits, after its exit command),
 * so the agent's death would reach us only when they are gone (1-1.6 s
 * after `podman kill` here, against 0.2-0.4 s on stdio). The fresh end
 * goes to the agent alone; the filter is on both ends before it is sent.
 */
static int chan_renew(struct mg_router *r, uint32_t id, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = (void *)AGENT_CHAN_HELLO,
			     .iov_len = strlen(AGENT_CHAN_HELLO) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof(u.b) };
	struct cmsghdr *c;
	int sv[2];
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	hooks_child_channel(r, id, sv[0], sv[1]);
	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &sv[1], sizeof(int));
	do
		n = sendmsg(fd, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)iov.iov_len) {
		int e = n < 0 ? errno : EPROTO;

		close(sv[1]);
		hooks_channel_closed(r, sv[0]);
		close(sv[0]);
		errno = e;
		return -1;
	}
	close(sv[1]);
	return sv[0];
}

int container_chan_take(struct mg_router *r, uint32_t id, const char *name, int fd)
{
	static bool said;
	char buf[8];
	ssize_t n;
	int ret;

	do
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)strlen(AGENT_CHAN_HELLO) && !memcmp(buf, AGENT_CHAN_HELLO, (size_t)n)) {
		/* It waits for its fresh end: without one (our fd closed) it
		 * ends, and the start fails as any whose agent went away. */
		ret = chan_renew(r, id, fd);
		if (ret < 0)
			LOG_ERROR("%s: cannot hand the agent its channel: %s", name,
				  strerror(errno));
		close(fd);
		return ret;
	}
	if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED))
		LOG_INFO("%s: the agent did not get the socket its CLI was to hand it: calls go "
			 "through the CLI's stdio (said once)", name);
	close(fd);
	return -1;
}

struct mg_context *container_from_value(const struct transport *t, struct mg_router *r,
					const struct mg_local_opts *lo, uint32_t id,
					const struct mg_value *sandbox, const struct mg_value *v,
					struct mg_error *err)
{
	struct ctr_opts co = { 0 };
	const struct mg_value *args = NULL;
	const char *kind, *argv[64];
	size_t n = 0;

	if (mg_value_unpack(v, err, "sssssssvl", &kind, &co.container, &co.image, &co.user,
			    &co.path, &co.ns, &co.sub, &args, &co.pid) < 0 ||
	    args->type != MG_LIST || args->len >= 64) {
		error_set(err, MG_ERR_STREAM, EINVAL, "%s: malformed options", t->kind);
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < args->len; i++) {
		if (args->items[i].type != MG_STR) {
			error_set(err, MG_ERR_STREAM, EINVAL, "%s: malformed arguments", t->kind);
			errno = EINVAL;
			return NULL;
		}
		argv[n++] = args->items[i].str;
	}
	argv[n] = NULL;
	co.args = n ? argv : NULL;
	return container_start(t, r, &co, lo, id, sandbox, err);
}

struct mg_context *container_factory(struct mg_router *r, const struct transport *t,
				     const struct ctr_opts *co, const struct mg_local_opts *lo,
				     struct mg_error *err)
{
	char name[96], why[256];

	if (!r || container_check(t, co, why, sizeof(why)) < 0) {
		error_set(err, MG_ERR_STREAM, EINVAL, "%s", r ? why : "no router");
		errno = EINVAL;
		return NULL;
	}
	if (lo && lo->sz < sizeof(size_t)) {
		error_set(err, MG_ERR_STREAM, EINVAL, "options struct has no size");
		errno = EINVAL;
		return NULL;
	}
	container_name(t, co, name, sizeof(name));
	return transport_factory(r, t, name, lo, container_value(t, co), err);
}

/* The common tail of a CLI's command line: `/bin/sh -c SCRIPT`. */
void container_argv_sh(struct argv_buf *ab, const char *script)
{
	argv_add(ab, "/bin/sh");
	argv_add(ab, "-c");
	argv_add(ab, "%s", script);
}
