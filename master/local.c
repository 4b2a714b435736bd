// SPDX-License-Identifier: MIT
/*
 * local.c — the local() and fork() factories: start a copy of this program
 * (or another image) on this machine, connected over AF_UNIX SOCK_SEQPACKET,
 * hand it its identity (BOOT) and wait for its greeting. Also watches the
 * child process: relays its stdout/stderr lines to the log with its name,
 * keeps the last lines for error messages, and reaps it (pidfd).
 *
 * Its tree (agent/tree.h): a child that has started processes has a cgroup
 * of its own, <ours>/mg.<pid>; killing it kills that cgroup in one step;
 * once it is reaped, its cgroup is removed, and whatever it left running
 * there (it was killed before it could end its tree) gets SIGTERM and,
 * TREE_GRACE_S later, SIGKILL. An agent moves into its own cgroup before
 * it starts a child (start_prepare), so its children are born in it.
 *
 * Everything between fork() and the agent taking over fails closed: the
 * child _exit()s with MG_EXIT_SETUP and says why on its output pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "agent/agent.h"
#include "agent/tree.h"
#include "bpf/loader.h"
#include "core/hooks.h"
#include "core/context.h"
#include "core/heartbeat.h"
#include "core/latch.h"
#include "core/log.h"
#include "core/router.h"
#include "core/stream.h"
#include "core/profile.h"
#include "master/master.h"
#include "sandbox/sandbox.h"

#define CHILD_FD 3
#define TAIL_MAX 2048
#define LINE_MAX_ 1024

extern char **environ;

struct child_proc {
	struct mg_broker *b;		/* borrowed: frees us before it stops */
	struct mg_context *ctx;		/* reference */
	pid_t pid;
	struct broker_source pidsrc;
	struct broker_source outsrc;
	struct broker_client client;
	char line[LINE_MAX_];
	size_t linelen;
	pthread_mutex_t lock;		/* tail: read by the starting thread */
	char tail[TAIL_MAX];
	size_t taillen;
	bool out_open;
	bool reaped;
	bool registered;
	bool done;			/* broker side finished with it */
	bool cg_pending;		/* its cgroup still holds what it left */
	int cg_tries;
	struct broker_timer cg_timer;
	int keep_fd;			/* closed with us (struct start) */
	int refs;			/* broker side + the starting thread */
};

/* --- watching the process (broker thread) ------------------------------ */

static void tail_add(struct child_proc *cp, const char *line, size_t n)
{
	pthread_mutex_lock(&cp->lock);
	if (n + 1 > TAIL_MAX) {
		line += n + 1 - TAIL_MAX;
		n = TAIL_MAX - 1;
	}
	if (cp->taillen + n + 1 > TAIL_MAX) {
		size_t drop = cp->taillen + n + 1 - TAIL_MAX;
		char *nl = memchr(cp->tail + drop, '\n', cp->taillen - drop);

		if (nl)
			drop = (size_t)(nl + 1 - cp->tail);
		if (drop > cp->taillen)
			drop = cp->taillen;
		memmove(cp->tail, cp->tail + drop, cp->taillen - drop);
		cp->taillen -= drop;
	}
	memcpy(cp->tail + cp->taillen, line, n);
	cp->taillen += n;
	cp->tail[cp->taillen++] = '\n';
	pthread_mutex_unlock(&cp->lock);
}

static void emit_line(struct child_proc *cp)
{
	cp->line[cp->linelen] = '\0';
	tail_add(cp, cp->line, cp->linelen);
	log_emit(MG_LOG_INFO, cp->ctx->name, cp->line);
	cp->linelen = 0;
}

static void child_proc_maybe_free(struct child_proc *cp);

/* Broker thread: the grace of what a dead child left is over. */
static void child_proc_cg_timer(void *arg)
{
	struct child_proc *cp = arg;

	if (tree_child_finish(cp->pid, false) == -EAGAIN && ++cp->cg_tries < 100) {
		broker_timer_arm(cp->b, &cp->cg_timer, 0.05, child_proc_cg_timer, cp);
		return;
	}
	cp->cg_pending = false;
	child_proc_maybe_free(cp);
}

static void out_close(struct child_proc *cp)
{
	if (!cp->out_open)
		return;
	if (cp->linelen)
		emit_line(cp);
	broker_del(cp->b, &cp->outsrc);
	close(cp->outsrc.fd);
	cp->outsrc.fd = -1;
	cp->out_open = false;
}

/* Read once what the child printed. Returns the bytes read, 0 when the
 * pipe closed (or failed), -1 when nothing is there now. */
static ssize_t out_read(struct child_proc *cp)
{
	char buf[4096];
	ssize_t n = read(cp->outsrc.fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (n <= 0) {
		out_close(cp);
		child_proc_maybe_free(cp);
		return 0;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || cp->linelen == LINE_MAX_ - 1) {
			emit_line(cp);
			if (buf[i] == '\n')
				continue;
		}
		cp->line[cp->linelen++] = buf[i];
	}
	return n;
}

static void on_output(struct broker_source *src, uint32_t events)
{
	out_read((struct child_proc *)((char *)src - offsetof(struct child_proc, outsrc)));
}

static void describe_status(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, size, "wait status %#x", status);
}

static void reap(struct child_proc *cp, bool block)
{
	int status;
	pid_t p;

	if (cp->reaped)
		return;
	do
		p = waitpid(cp->pid, &status, block ? 0 : WNOHANG);
	while (p < 0 && errno == EINTR);
	if (p == 0)
		return;
	if (p < 0)
		status = 0;
	/*
	 * It exited: what it printed is in the pipe now (the pipe's own event
	 * may come later). Take it before saying so, so that a start-up error
	 * can quote its last lines. At most 64 KiB here: a process it left
	 * behind may keep writing.
	 */
	for (int i = 0; i < 16 && cp->out_open && out_read(cp) > 0; i++)
		;
	cp->reaped = true;
	if (cp->pidsrc.fd >= 0) {
		broker_del(cp->b, &cp->pidsrc);
		close(cp->pidsrc.fd);
		cp->pidsrc.fd = -1;
	}
	if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		char why[96];

		describe_status(status, why, sizeof(why));
		LOG_DEBUG("context %u (%s) pid %d %s", cp->ctx->id, cp->ctx->name, cp->pid, why);
	}
	context_set_reaped(cp->ctx, status);
	/* What it left running in its cgroup: SIGTERM now, SIGKILL later. */
	if (tree_child_reaped(cp->pid) > 0) {
		if (broker_stopped(cp->b)) {
			tree_child_finish(cp->pid, true);
		} else {
			cp->cg_pending = true;
			broker_timer_arm(cp->b, &cp->cg_timer, TREE_GRACE_S, child_proc_cg_timer,
					 cp);
		}
	}
	/* The drain above may have seen the output's end: nothing else will. */
	child_proc_maybe_free(cp);
}

static void on_pidfd(struct broker_source *src, uint32_t events)
{
	struct child_proc *cp = (struct child_proc *)((char *)src -
						       offsetof(struct child_proc, pidsrc));

	reap(cp, false);
	/* Output may still be buffered: drain it before freeing. */
	child_proc_maybe_free(cp);
}

static void child_proc_unref(struct child_proc *cp)
{
	if (!cp || __atomic_sub_fetch(&cp->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	broker_client_del(cp->b, &cp->client);
	if (cp->pidsrc.fd >= 0)
		close(cp->pidsrc.fd);
	if (cp->outsrc.fd >= 0)
		close(cp->outsrc.fd);
	if (cp->keep_fd >= 0)
		close(cp->keep_fd);
	pthread_mutex_destroy(&cp->lock);
	cp->ctx->kill = NULL;
	mg_context_unref(cp->ctx);
	free(cp);
}

static void child_proc_unref_deferred(void *arg)
{
	child_proc_unref(arg);
}

static void child_proc_maybe_free(struct child_proc *cp)
{
	if (cp->reaped && !cp->out_open && !cp->done && !cp->cg_pending) {
		cp->done = true;
		broker_defer_later(cp->b, child_proc_unref_deferred, cp);
	}
}

/* Broker stopping: give the child a moment to exit, then make sure. */
/* One grace period per broker stop, shared by all its children. */
static __thread double stop_deadline;
static __thread struct mg_broker *stop_broker;

static void child_proc_on_stop(void *arg)
{
	struct child_proc *cp = arg;

	if (stop_broker != cp->b) {
		stop_broker = cp->b;
		stop_deadline = mono_now() + 1.0;
	}
	while (!cp->reaped) {
		reap(cp, false);
		if (cp->reaped || mono_now() >= stop_deadline)
			break;
		usleep(5000);
	}
	if (!cp->reaped) {
		LOG_WARN("context %u (%s) pid %d still running at shutdown; killing it",
			 cp->ctx->id, cp->ctx->name, cp->pid);
		tree_child_kill(cp->pid);
		reap(cp, true);
	}
	if (cp->cg_pending) {
		/* No more timers: what it left goes now. */
		broker_timer_cancel(cp->b, &cp->cg_timer);
		tree_child_finish(cp->pid, true);
		cp->cg_pending = false;
	}
	if (cp->out_open) {
		/* Collect what it printed last. */
		on_output(&cp->outsrc, EPOLLIN);
		out_close(cp);
	}
	child_proc_maybe_free(cp);
}

/* Its whole tree, in one step where it has a cgroup (agent/tree.h). */
static void child_kill(struct mg_context *ctx)
{
	if (ctx->pid > 0)
		tree_child_kill(ctx->pid);
}

struct watch_req {
	struct child_proc *cp;
	struct mg_router *r;
	struct stream *s;	/* registered in the same trip to the broker */
	int ret;
	int stream_ret;
};

static void watch_deferred(void *arg)
{
	struct watch_req *wr = arg;
	struct child_proc *cp = wr->cp;
	struct mg_broker *b = cp->b;

	wr->ret = 0;
	if (broker_add(b, &cp->outsrc, EPOLLIN) < 0)
		wr->ret = -errno;
	if (cp->pidsrc.fd >= 0 && broker_add(b, &cp->pidsrc, EPOLLIN) < 0 && !wr->ret)
		wr->ret = -errno;
	broker_client_add(b, &cp->client);
	cp->registered = true;
	/* It may already be gone. */
	reap(cp, false);
	/* On the broker thread this registers at once: one trip, not two. */
	wr->stream_ret = wr->s ? router_add_stream(wr->r, wr->s) : -ENOMEM;
}

static struct child_proc *child_proc_new(struct mg_router *r, struct mg_context *ctx,
					 pid_t pid, int outfd)
{
	struct child_proc *cp = calloc(1, sizeof(*cp));

	if (!cp)
		return NULL;
	cp->refs = 2;
	cp->keep_fd = -1;
	cp->b = r->broker;
	cp->ctx = mg_context_ref(ctx);
	cp->pid = pid;
	cp->outsrc.fd = outfd;
	cp->outsrc.on_event = on_output;
	cp->out_open = true;
	cp->pidsrc.fd = (int)syscall(SYS_pidfd_open, pid, 0);
	cp->pidsrc.on_event = on_pidfd;
	cp->client.on_stop = child_proc_on_stop;
	cp->client.arg = cp;
	pthread_mutex_init(&cp->lock, NULL);
	fcntl(outfd, F_SETFL, O_NONBLOCK);
	if (cp->pidsrc.fd >= 0)
		fcntl(cp->pidsrc.fd, F_SETFD, FD_CLOEXEC);
	ctx->pid = pid;
	ctx->kill = child_kill;
	/* Ours to reap: not an orphan for tree_reap_orphans. */
	tree_child_watch(pid);
	return cp;
}

/* --- starting ---------------------------------------------------------- */

void start_cleanup(struct start *st)
{
	mg_value_free(st->sandbox);
	st->sandbox = NULL;
	if (st->keep_fd >= 0)
		close(st->keep_fd);
	st->keep_fd = -1;
	if (st->sv[0] >= 0 && st->id)
		hooks_channel_closed(st->r, st->sv[0]);
	for (int i = 0; i < 2; i++) {
		if (st->sv[i] >= 0)
			close(st->sv[i]);
		if (st->out[i] >= 0)
			close(st->out[i]);
	}
}

_Static_assert(MG_TENANT_NO_INET == BPF_TENANT_NO_INET &&
	       MG_TENANT_NO_NETLINK == BPF_TENANT_NO_NETLINK &&
	       MG_TENANT_NO_PACKET == BPF_TENANT_NO_PACKET, "tenant deny bits");

/*
 * The sandbox's tenant_deny: the starter (privileged, and on the child's
 * host) attaches the tenant's eBPF socket policy to its cgroup. Without
 * eBPF, or for a child on another host, MG_TENANT_NO_INET falls back to
 * the child's own no_inet seccomp filter (said once); netlink and packet
 * have no fallback: the creation fails with the reason.
 */
static int start_tenant_policy(struct start *st, struct mg_error *err)
{
	static bool said;
	const struct mg_value *t, *d;
	char dir[256], why[256] = "";
	int ret = -EOPNOTSUPP;

	if (!st->sandbox || !(d = mg_map_get(st->sandbox, "tenant_deny")) ||
	    !(t = mg_map_get(st->sandbox, "tenant")))
		return 0;
	if (st->remote)
		snprintf(why, sizeof(why), "the child is on another host");
	else if ((ret = sandbox_tenant_cgroup(t->str, dir, sizeof(dir))) < 0)
		snprintf(why, sizeof(why), "no tenant cgroup: %s", strerror(-ret));
	else
		ret = bpf_tenant_ensure(t->str, dir, (unsigned)d->i, why, sizeof(why));
	if (ret == 0)
		return 0;
	if ((unsigned)d->i == MG_TENANT_NO_INET) {
		if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED))
			LOG_WARN("tenant %s: no eBPF socket policy (%s); inet sockets are "
				 "refused by a seccomp filter in each child instead", t->str, why);
		mg_map_set(st->sandbox, "no_inet", mg_bool(true));
		return 0;
	}
	error_set(err, MG_ERR_STREAM, -ret,
		  "%s: tenant %s: cannot refuse netlink/packet sockets: %s", st->namebuf,
		  t->str, why);
	return ret;
}

int start_prepare(struct start *st, struct mg_router *r,
		  const struct mg_local_opts *o, uint32_t id,
		  const struct mg_value *sandbox, struct mg_error *err)
{
	/* In an agent: its cgroup first, so the child is born in it. */
	tree_cgroup_own();
	st->r = r;
	st->sv[0] = st->sv[1] = st->out[0] = st->out[1] = -1;
	st->keep_fd = -1;
	st->connect_timeout = 30.0;
	if (o) {
		if (o->sz < sizeof(size_t)) {
			error_set(err, MG_ERR_STREAM, EINVAL, "options struct has no size");
			return -EINVAL;
		}
		st->name = o->remote_name;
		if (o->connect_timeout > 0)
			st->connect_timeout = o->connect_timeout;
		st->debug = o->debug;
		st->profiling = o->profiling;
		st->image = o->image;
		st->audit = o->sz > offsetof(struct mg_local_opts, audit) && o->audit;
	}
	/* Below an audited context: audited too. */
	if (r->audited)
		st->audit = true;
	if (st->name && (strchr(st->name, '/') || !*st->name)) {
		error_set(err, MG_ERR_STREAM, EINVAL,
			  "remote_name must be non-empty and contain no '/'");
		return -EINVAL;
	}
	if (!st->name && st->default_name) {
		snprintf(st->namebuf, sizeof(st->namebuf), "%s", st->default_name);
	} else if (!st->name) {
		/* No getpwuid(): static programs cannot use NSS. */
		const char *user = getenv("USER");
		char host[64] = "localhost";

		gethostname(host, sizeof(host) - 1);
		if (user && *user && !strchr(user, '/'))
			snprintf(st->namebuf, sizeof(st->namebuf), "%s@%s:%d", user, host,
				 (int)getpid());
		else
			snprintf(st->namebuf, sizeof(st->namebuf), "%u@%s:%d",
				 (unsigned)getuid(), host, (int)getpid());
	} else {
		snprintf(st->namebuf, sizeof(st->namebuf), "%s", st->name);
	}
	/* The sandbox is checked here, before anything starts: a bad rule
	 * file or capability name fails now, with its reason. */
	if (sandbox || (o && o->sz > offsetof(struct mg_local_opts, sandbox) && o->sandbox)) {
		char why[512];

		if (sandbox)
			st->sandbox = sandbox_value_check(sandbox, why, sizeof(why)) < 0
				      ? NULL : mg_value_copy(sandbox);
		else
			st->sandbox = sandbox_to_value(o->sandbox, why, sizeof(why));
		if (!st->sandbox) {
			error_set(err, MG_ERR_STREAM, EINVAL, "%s: sandbox: %s", st->namebuf, why);
			return -EINVAL;
		}
	}
	if (!st->no_channel &&
	    (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, st->sv) < 0 ||
	     pipe2(st->out, O_CLOEXEC) < 0)) {
		int e = errno;

		error_set(err, MG_ERR_STREAM, e, "cannot make channel: %s", strerror(e));
		start_cleanup(st);
		return -e;
	}
	st->id = id ? id : router_alloc_id(r, r->id);
	if (!st->id) {
		error_set(err, MG_ERR_STREAM, EIO, "%s: no context id from the master",
			  st->namebuf);
		start_cleanup(st);
		return -EIO;
	}
	{
		int ret = start_tenant_policy(st, err);

		if (ret < 0) {
			start_cleanup(st);
			return ret;
		}
	}
	/* Kernel checks on both ends (bpf/loader.c) before the child runs. */
	bpfload_register();
	if (!st->no_channel)
		hooks_child_channel(r, st->id, st->sv[0], st->sv[1]);
	return 0;
}

static void start_fail_tail(struct child_proc *cp, char *buf, size_t size)
{
	pthread_mutex_lock(&cp->lock);
	/* Last few lines only. */
	size_t n = cp->taillen, start = 0, lines = 0;

	for (size_t i = n; i > 0; i--) {
		if (cp->tail[i - 1] == '\n' && ++lines > 5) {
			start = i;
			break;
		}
	}
	snprintf(buf, size, "%.*s", (int)(n - start), cp->tail + start);
	pthread_mutex_unlock(&cp->lock);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
}

/*
 * The child is running with its end of the channel: register the stream
 * and the watcher, send BOOT and wait for the greeting.
 */
struct mg_context *start_finish(struct start *st, pid_t pid, struct mg_error *err)
{
	struct mg_router *r = st->r;
	struct mg_context *ctx = NULL;
	struct child_proc *cp = NULL;
	struct stream *s = NULL;
	struct watch_req wr = { 0 };
	struct mg_receiver *rx = NULL;
	struct mg_message *msg = NULL;
	struct mg_value *boot, *parents;
	struct mg_error e2 = MG_ERROR_INIT;
	char tail[1200], status[96];
	uint32_t pids[64];
	size_t np;
	int ret;

	if (st->sv[1] >= 0)
		close(st->sv[1]);
	if (st->out[1] >= 0)
		close(st->out[1]);
	st->sv[1] = st->out[1] = -1;

	ctx = router_context(r, st->id, st->namebuf);
	if (!ctx)
		goto oom;
	cp = child_proc_new(r, ctx, pid, st->out[0]);
	if (!cp)
		goto oom;
	cp->keep_fd = st->keep_fd;
	st->keep_fd = -1;
	st->out[0] = -1;
	s = st->bytes ? stream_new_bytes(st->sv[0], st->sv[0], STREAM_CHILD, st->id, st->namebuf,
					 r->max_message_size)
		      : stream_new(st->sv[0], STREAM_CHILD, st->id, st->namebuf,
				   r->max_message_size);
	st->sv[0] = -1;
	wr.cp = cp;
	wr.r = r;
	wr.s = s;
	if (broker_call(r->broker, watch_deferred, &wr, false) < 0) {
		stream_free(s);
		goto oom;
	}
	if (wr.stream_ret < 0) {
		error_set(err, MG_ERR_STREAM, -wr.stream_ret, "cannot register channel");
		goto kill;
	}

	MG_OPTS(mg_receiver_opts, ro, .once = true, .respondent = ctx);
	rx = mg_receiver_new(r, &ro);
	parents = mg_list();
	mg_list_append(parents, mg_int(r->id));
	np = mg_parent_ids(pids, 64);
	for (size_t i = 0; i < np && i < 64; i++)
		mg_list_append(parents, mg_int(pids[i]));
	boot = mg_map();
	mg_map_set(boot, "id", mg_int(st->id));
	mg_map_set(boot, "parent_ids", parents);
	mg_map_set(boot, "name", mg_str(st->namebuf));
	mg_map_set(boot, "max_message_size", mg_int((int64_t)r->max_message_size));
	heartbeat_boot_args(r, boot);
	mg_map_set(boot, "log_level", mg_int(st->debug || r->debug ? MG_LOG_DEBUG
								      : mg_log_get_level()));
	mg_map_set(boot, "debug", mg_bool(st->debug || r->debug));
	mg_map_set(boot, "profiling", mg_bool(st->profiling || profile_enabled()));
	/*
	 * Audited (README, Audit): asked for, below an audited context, or
	 * privileged as far as we know yet. The child applies the rest of
	 * the privileged rule to itself, as we do to its greeting below:
	 * another uid than ours on this host, root on another.
	 */
	mg_map_set(boot, "audit", mg_bool(st->audit || st->privileged));
	if (st->remote)
		mg_map_set(boot, "audit_root", mg_bool(true));
	else
		mg_map_set(boot, "audit_unless_uid", mg_int((int64_t)getuid()));
	if (st->sandbox) {
		mg_map_set(boot, "sandbox", st->sandbox);
		st->sandbox = NULL;
	}
	msg = mg_message_new(st->id, MG_HANDLE_BOOT, boot);
	if (!rx || !msg) {
		mg_message_free(msg);
		error_set(err, MG_ERR_STREAM, ENOMEM, "out of memory");
		goto kill;
	}
	msg->meta.src_id = msg->meta.auth_id = r->id;
	msg->meta.reply_to = mg_receiver_handle(rx);
	mg_router_route(r, msg);

	ret = mg_receiver_get(rx, st->connect_timeout, &msg, &e2);
	if (ret == 0) {
		struct mg_value *hello = NULL;
		const struct mg_value *uid;

		/* Privileged: reached through sudo/su/doas, or running as
		 * another user than us on this host, or as root elsewhere. */
		if (mg_message_value(msg, false, &hello, NULL) == 0 &&
		    (uid = mg_map_get(hello, "uid")) && uid->type == MG_INT &&
		    (st->remote ? uid->i == 0 : uid->i != (int64_t)getuid()))
			st->privileged = true;
		mg_value_free(hello);
		ctx->privileged = st->privileged;
		ctx->audited = st->audit || st->privileged;
		mg_message_free(msg);
		mg_receiver_free(rx);
		child_proc_unref(cp);
		return ctx;
	}
	if (ret == -ETIMEDOUT) {
		tree_child_kill(pid);
		context_wait_gone(ctx, 5.0);
		start_fail_tail(cp, tail, sizeof(tail));
		error_set(err, MG_ERR_STREAM, ETIMEDOUT,
			  "%s: connect timeout: no greeting within %.1f s%s%s", st->namebuf,
			  st->connect_timeout, *tail ? "; last output: " : "", tail);
		goto fail;
	}
	/* The channel closed before the greeting: wait for the exit status. */
	if (context_wait_gone(ctx, 2.0) < 0)
		tree_child_kill(pid);
	context_wait_gone(ctx, 5.0);
	start_fail_tail(cp, tail, sizeof(tail));
	pthread_mutex_lock(&ctx->lock);
	if (ctx->reaped)
		describe_status(ctx->status, status, sizeof(status));
	else
		snprintf(status, sizeof(status), "closed its channel");
	pthread_mutex_unlock(&ctx->lock);
	{
		/* "... disconnected: protocol error: bad magic": say why. */
		const char *p = strstr(e2.message, "protocol error");
		char why[160] = "";

		if (p)
			snprintf(why, sizeof(why), " (%.140s)", p);
		error_set(err, MG_ERR_STREAM, ECONNRESET, "%s: child %s before it started%s%s%s",
			  st->namebuf, status, why, *tail ? "; last output: " : "", tail);
	}
	goto fail;

oom:
	error_set(err, MG_ERR_STREAM, ENOMEM, "out of memory");
kill:
	tree_child_kill(pid);
	if (!cp)
		waitpid(pid, NULL, 0);
	else
		context_wait_gone(ctx, 5.0);
fail:
	mg_receiver_free(rx);
	/* The stream, once handed to router_add_stream, is the router's. */
	if (cp && !cp->registered)
		child_proc_unref(cp);	/* the broker never saw it */
	child_proc_unref(cp);
	pthread_mutex_lock(&r->lock);
	if (idmap_del(&r->contexts, st->id))
		mg_context_unref(ctx);
	pthread_mutex_unlock(&r->lock);
	mg_context_unref(ctx);
	start_cleanup(st);
	errno = err && err->errnum ? err->errnum : EIO;
	return NULL;
}

/* Our environment, with the agent's fd and (sb_env, sandbox/caps.c) the
 * capabilities a sandboxed child keeps; any of ours of those names left
 * out, and MITOGEN_PASSWORD (the tool's password: a child and the
 * commands it runs have no use for it). */
static char **child_env(char *sb_env)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = malloc((n + 3) * sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], AGENT_FD_ENV "=", sizeof(AGENT_FD_ENV)) &&
		    strncmp(environ[i], SANDBOX_BSET_ENV "=", sizeof(SANDBOX_BSET_ENV)) &&
		    strncmp(environ[i], "MITOGEN_PASSWORD=", 17))
			env[k++] = environ[i];
	env[k++] = AGENT_FD_ENV "=3";
	if (sb_env)
		env[k++] = sb_env;
	env[k] = NULL;
	return env;
}

struct mg_context *local_start(struct mg_router *r, const struct mg_local_opts *opts,
			       uint32_t id, const struct mg_value *sandbox,
			       struct mg_error *err)
{
	struct start st;
	posix_spawn_file_actions_t fa;
	char argv0[128];
	char *argv[2] = { argv0, NULL };
	const char *image;
	char **env, *sb_env;
	struct mg_context *ctx;
	bool ns_spawn = false;
	pid_t pid;
	int ret;

	if (!r) {
		error_set(err, MG_ERR_STREAM, EINVAL, "no router");
		errno = EINVAL;
		return NULL;
	}
	memset(&st, 0, sizeof(st));
	ret = start_prepare(&st, r, opts, id, sandbox, err);
	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	image = st.image ? st.image : "/proc/self/exe";
	snprintf(argv0, sizeof(argv0), "mitogen:%s", st.namebuf);
	sb_env = sandbox_early_env(st.sandbox);
	env = child_env(sb_env);
	posix_spawn_file_actions_init(&fa);
	/* dup2 clears FD_CLOEXEC on the target; sources may not be 0..3. */
	posix_spawn_file_actions_adddup2(&fa, st.sv[1], CHILD_FD);
	posix_spawn_file_actions_adddup2(&fa, st.out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, st.out[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addclosefrom_np(&fa, CHILD_FD + 1);
	if (st.sandbox && sandbox_ns_wanted(st.sandbox)) {
		/* Namespaces: clone() with CLONE_NEW* (sandbox/namespaces.c). */
		char why[256];

		ns_spawn = env != NULL;
		pid = env ? sandbox_spawn(st.sandbox, image, argv, env, st.sv[1], CHILD_FD,
					  st.out[1], why, sizeof(why)) : -ENOMEM;
		ret = pid < 0 ? (int)-pid : 0;
		if (ret && env) {
			error_set(err, MG_ERR_STREAM, ret, "%s: sandbox: %s", st.namebuf, why);
			ret = -1;
		}
	} else {
		if (st.sandbox)
			mg_map_set(st.sandbox, "ns_in", mg_int(0));
		ret = env ? posix_spawn(&pid, image, &fa, NULL, argv, env) : ENOMEM;
	}
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	free(sb_env);
	if (ret < 0) {
		if (ns_spawn)
			sandbox_spawn_done();
		start_cleanup(&st);
		errno = err && err->errnum ? err->errnum : EPERM;
		return NULL;
	}
	if (ret) {
		error_set(err, MG_ERR_STREAM, ret, "%s: cannot start %s: %s", st.namebuf,
			  image, strerror(ret));
		start_cleanup(&st);
		errno = ret;
		return NULL;
	}
	ctx = start_finish(&st, pid, err);
	if (ns_spawn)
		sandbox_spawn_done();	/* up or gone: the pool may refill */
	return ctx;
}

struct mg_context *fork_start(struct mg_router *r, const struct mg_fork_opts *opts,
			      uint32_t id, const struct mg_value *sandbox,
			      struct mg_error *err)
{
	bool parked;
	const struct mg_local_opts *lo = NULL;
	void (*on_fork)(void *) = NULL;
	void *on_fork_data = NULL;
	struct start st;
	pid_t pid;
	int ret;

	if (!r || (opts && opts->sz < sizeof(size_t))) {
		error_set(err, MG_ERR_STREAM, EINVAL, "invalid arguments");
		errno = EINVAL;
		return NULL;
	}
	if (opts) {
		lo = opts->local;
		on_fork = opts->on_fork;
		on_fork_data = opts->on_fork_data;
	}
	memset(&st, 0, sizeof(st));
	ret = start_prepare(&st, r, lo, id, sandbox, err);
	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	/* Namespaces a fork can enter (not a pid one), before forking. */
	if (st.sandbox) {
		char why[256];

		if (sandbox_ns_prepare_fork(st.sandbox, why, sizeof(why)) < 0) {
			error_set(err, MG_ERR_STREAM, EINVAL, "%s: sandbox: %s", st.namebuf, why);
			start_cleanup(&st);
			errno = EINVAL;
			return NULL;
		}
	}
	/*
	 * fork() copies only this thread; a lock another thread holds at that
	 * instant stays held forever in the child (malloc's under ASan, our
	 * own). Hold the broker's role across the fork: its thread then waits
	 * in epoll_wait or for the role, holding nothing (nor does any thread
	 * reading a lent stream). Not possible once the broker has stopped,
	 * and then not needed.
	 */
	if (mg_broker_on_thread(r->broker)) {
		error_set(err, MG_ERR_STREAM, EDEADLK, "%s: mg_fork from the broker thread",
			  st.namebuf);
		start_cleanup(&st);
		errno = EDEADLK;
		return NULL;
	}
	parked = broker_enter(r->broker);
	pid = fork();
	if (pid == 0)
		broker_forked_child();
	else if (parked)
		broker_leave(r->broker);
	if (pid < 0) {
		int e = errno;

		error_set(err, MG_ERR_STREAM, e, "%s: fork: %s", st.namebuf, strerror(e));
		start_cleanup(&st);
		errno = e;
		return NULL;
	}
	if (pid == 0) {
		/* Child: only this thread exists. Keep the channel and stdio. */
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(st.out[1], 1) < 0 ||
		    dup2(st.out[1], 2) < 0 || dup2(st.sv[1], CHILD_FD) < 0)
			_exit(AGENT_EXIT_SETUP);
		syscall(SYS_close_range, CHILD_FD + 1, ~0U, 0);
		if (st.sandbox) {
			/* Namespaces now, while this is the only thread. */
			char why[256];

			if (sandbox_ns_unshare(st.sandbox, why, sizeof(why)) < 0) {
				dprintf(2, "mitogen agent: sandbox: %s\n", why);
				_exit(AGENT_EXIT_SANDBOX);
			}
			/* Before the agent's threads: see sandbox/caps.c. */
			sandbox_early_caps(st.sandbox);
		}
		agent_after_fork(st.namebuf);
		if (on_fork)
			on_fork(on_fork_data);
		agent_run(CHILD_FD);
		_exit(AGENT_EXIT_SETUP);
	}
	return start_finish(&st, pid, err);
}

struct mg_context *mg_local(struct mg_router *r, const struct mg_local_opts *opts,
			    struct mg_error *err)
{
	if (opts && opts->sz > offsetof(struct mg_local_opts, via) && opts->via)
		return via_start(r, VIA_LOCAL, opts, err);
	return local_start(r, opts, 0, NULL, err);
}

struct mg_context *mg_fork(struct mg_router *r, const struct mg_fork_opts *opts,
			   struct mg_error *err)
{
	const struct mg_local_opts *lo = opts && opts->sz > offsetof(struct mg_fork_opts, local)
					 ? opts->local : NULL;

	if (lo && lo->sz > offsetof(struct mg_local_opts, via) && lo->via) {
		if (opts->on_fork) {
			error_set(err, MG_ERR_STREAM, EINVAL,
				  "on_fork cannot cross contexts: not allowed with via");
			errno = EINVAL;
			return NULL;
		}
		return via_start(r, VIA_FORK, lo, err);
	}
	return fork_start(r, opts, 0, NULL, err);
}
