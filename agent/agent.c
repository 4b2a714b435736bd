// SPDX-License-Identifier: MIT
/*
 * agent.c — what runs in a child context: mg_main(), the exported-function
 * table, BOOT, the CALL_FUNCTION loop on the main thread (one call at a
 * time, like Mitogen), SHUTDOWN, log forwarding, and exiting when the
 * parent goes away. However it is told to go (SHUTDOWN, its parent lost,
 * SIGTERM, SIGINT or SIGHUP), it ends its whole process tree first
 * (agent/tree.c) and says in its last log line how many processes that
 * ended.
 *
 * Why CALL_FUNCTION is safe to serve: it is registered with the
 * mg_has_parent_authority policy, and the router has already checked that
 * auth_id routes back through the stream the message came in on; so only
 * the parent chain can make this process run a function, and only a
 * function some program exported by name.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "agent/agent.h"
#include "agent/keeper.h"
#include "agent/tree.h"
#include "core/broker.h"
#include "core/context.h"
#include "core/heartbeat.h"
#include "core/receiver.h"
#include "core/log.h"
#include "core/router.h"
#include "core/spin.h"
#include "core/stream.h"
#include "core/profile.h"
#include "master/fakessh.h"
#include "master/master.h"
#include "sandbox/sandbox.h"

/* --- exported functions ------------------------------------------------ */

#define EXPORT_TABLES_MAX 8

static struct {
	const struct mg_export *start, *stop;
} export_tables[EXPORT_TABLES_MAX];
static size_t nexport_tables;

static void export_table_add(const struct mg_export *start, const struct mg_export *stop)
{
	if (!start || !stop || start >= stop)
		return;
	for (size_t i = 0; i < nexport_tables; i++)
		if (export_tables[i].start == start)
			return;
	if (nexport_tables < EXPORT_TABLES_MAX) {
		export_tables[nexport_tables].start = start;
		export_tables[nexport_tables].stop = stop;
		nexport_tables++;
	}
}

static mg_export_fn export_find(const char *name)
{
	for (size_t i = 0; i < nexport_tables; i++)
		for (const struct mg_export *e = export_tables[i].start;
		     e < export_tables[i].stop; e++)
			if (e->name && !strcmp(e->name, name))
				return e->fn;
	return NULL;
}

struct mg_router *mg_call_router(struct mg_call *call)
{
	return call ? call->router : NULL;
}

uint32_t mg_call_auth_id(const struct mg_call *call)
{
	return call ? call->msg->meta.auth_id : 0;
}

uint32_t mg_call_src_id(const struct mg_call *call)
{
	return call ? call->msg->meta.src_id : 0;
}

const char *mg_call_function(const struct mg_call *call)
{
	return call ? call->function : NULL;
}

bool agent_call_audited(const struct mg_call *call)
{
	return call && call->router && call->router->audited;
}

int mg_call_audit_detail(struct mg_call *call, const char *key, struct mg_value *value)
{
	if (!call || !key || !*key || !value) {
		mg_value_free(value);
		return -EINVAL;
	}
	/* Kept only where it will be written. */
	if (!agent_call_audited(call)) {
		mg_value_free(value);
		return 0;
	}
	if (!call->audit_detail)
		call->audit_detail = mg_map();
	if (!call->audit_detail || mg_map_set(call->audit_detail, key, value) < 0)
		return -ENOMEM;
	return 0;
}

int mg_call_fail(struct mg_call *call, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (!call)
		return -EINVAL;
	call->failed = true;
	call->errnum = errnum;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(call->message, sizeof(call->message), fmt, ap);
		va_end(ap);
	} else {
		snprintf(call->message, sizeof(call->message), "%s",
			 errnum ? strerror(errnum) : "failed");
	}
	return errnum > 0 ? -errnum : -EIO;
}

/* --- serving calls ----------------------------------------------------- */

/*
 * We got SIGTERM, SIGINT or SIGHUP. Set by the handler itself: one who
 * ends our tree from above signals us before the command it also ends
 * (tree.c walks down), so the main thread sees this before it would
 * answer the call that command was for.
 */
static volatile sig_atomic_t told_by_signal;

/*
 * A call that ends because we are going away (our tree is being ended, or
 * we were signalled) is not answered: whoever waits for it gets the
 * ChannelError of our going, as when we were killed outright, and a
 * master that gave up on it gets no answer it would have to warn about.
 */
static bool agent_answers(void)
{
	return !told_by_signal && !tree_ending();
}

static struct mg_value *call_error(const char *fn, int errnum, const char *text)
{
	return mg_error_value(MG_ERR_CALL, errnum, mg_context_name_self(), fn ? fn : "", text);
}

static void serve(struct mg_router *r, struct mg_message *msg)
{
	struct mg_value *req = NULL, *result = NULL;
	const struct mg_value *name, *args;
	struct mg_call call = { .router = r, .msg = msg };
	uint64_t start = r->audited ? agent_audit_now() : 0, end;
	bool failed;
	mg_export_fn fn;
	int ret;

	if (mg_message_value(msg, false, &req, NULL) < 0 || req->type != MG_LIST ||
	    req->len != 2 || req->items[0].type != MG_STR || req->items[1].type != MG_LIST) {
		result = call_error(NULL, EINVAL, "malformed CALL_FUNCTION message");
		goto reply;
	}
	name = &req->items[0];
	args = &req->items[1];
	call.function = name->str;
	fn = export_find(name->str);
	if (!fn) {
		char text[256];

		snprintf(text, sizeof(text), "no exported function named '%s'", name->str);
		result = call_error(name->str, ENOENT, text);
		goto reply;
	}
	LOG_DEBUG("call %s from context %u", name->str, msg->meta.src_id);
	sandbox_trap_clear();
	ret = fn(&call, args, &result);
	if (ret < 0) {
		char trap[160];

		mg_value_free(result);
		if (!call.failed)
			snprintf(call.message, sizeof(call.message), "%s", strerror(-ret));
		/* A syscall the seccomp filter refused: say which. */
		if (sandbox_trap_describe(trap, sizeof(trap))) {
			char text[MG_ERROR_MSG_MAX];
			size_t len = strlen(trap);

			memcpy(text, trap, len);
			snprintf(text + len, sizeof(text) - len, " (%.*s)",
				 (int)(sizeof(text) - len - 4), call.message);
			memcpy(call.message, text, sizeof(call.message));
		}
		result = call_error(name->str, call.failed ? call.errnum : -ret, call.message);
	} else if (!result) {
		result = mg_nil();
	}
reply:
	end = r->audited ? agent_audit_now() : 0;
	/* The error's text outlives the reply, which takes result. */
	failed = result && result->type == MG_ERROR;
	if (r->audited && failed)
		snprintf(call.message, sizeof(call.message), "%s", result->err.message);
	if (msg->meta.reply_to && agent_answers())
		mg_message_reply(msg, r, result);
	else
		mg_value_free(result);
	/* After the reply: the caller does not wait for the record. */
	if (r->audited)
		agent_audit_call(r, msg, call.function, req && req->type == MG_LIST && req->len == 2 ?
				 &req->items[1] : NULL, failed ? call.message : NULL, start, end,
				 call.audit_detail);
	else
		mg_value_free(call.audit_detail);
	mg_value_free(req);
}

/* --- the agent --------------------------------------------------------- */

static struct mg_receiver *call_rx;
static volatile bool main_busy;
static bool from_first_stage;
/*
 * No more forwarding: the parent is gone, or our broker is stopping. A
 * line would only be queued for a stream that is not there, and a line
 * saying so queued after it, and so on, while the broker drains its queue.
 */
static volatile bool forward_off;

/* --- ending: the tree first, then this process ------------------------- */

static struct broker_timer end_timer;
static bool end_requested;

/* Broker thread: the grace is over; whatever the main thread is doing,
 * nothing below us runs on. */
static void on_end_grace(void *arg)
{
	tree_kill_now();
}

/*
 * Broker thread: we are to go (why: for the log). No call is taken any
 * more, every descendant gets SIGTERM (the command mg.run waits for ends,
 * and mg.run returns), and after TREE_GRACE_S whatever is left SIGKILL.
 */
static void agent_end_request(struct mg_router *r, const char *why)
{
	bool first = !__atomic_exchange_n(&end_requested, true, __ATOMIC_ACQ_REL);

	if (first)
		LOG_DEBUG("%s: ending this context and every process below it", why);
	mg_receiver_close(call_rx);
	/* Nothing below us: no grace to keep. */
	if (tree_term_begin() > 0 && first)
		broker_timer_arm(r->broker, &end_timer, TREE_GRACE_S, on_end_grace, NULL);
}

static pthread_mutex_t end_lock = PTHREAD_MUTEX_INITIALIZER;
static bool end_done;

/* End the tree and confirm it is gone; then the log line that says so is
 * the last. Either thread; the second waits for the first. */
static void agent_end_tree(void)
{
	struct tree_result res;

	pthread_mutex_lock(&end_lock);
	if (!end_done) {
		end_done = true;
		tree_end(&res);
		if (res.left)
			LOG_WARN("exiting: %d process%s below us did not end, even after SIGKILL",
				 res.left, res.left == 1 ? "" : "es");
		if (res.ended)
			LOG_INFO("exiting: ended %d process%s (%d with SIGKILL, after %g s)",
				 res.ended, res.ended == 1 ? "" : "es", res.killed, TREE_GRACE_S);
		else
			LOG_DEBUG("exiting: ended 0 processes (none was left)");
	}
	pthread_mutex_unlock(&end_lock);
}

static void on_shutdown_msg(struct mg_message *msg, void *userdata)
{
	struct mg_router *r = userdata;

	LOG_DEBUG("SHUTDOWN from context %u", msg->meta.src_id);
	mg_message_free(msg);
	agent_end_request(r, "SHUTDOWN");
}

static void on_parent_lost(struct mg_router *r, void *arg)
{
	agent_end_request(r, "parent lost");
	forward_off = true;
	/* Nobody will reap us and remove our cgroup: we do. */
	tree_cgroup_remove_at_exit();
	mg_broker_shutdown(r->broker);
}

/* SIGTERM, SIGINT, SIGHUP: the handler writes the signal's number here,
 * the broker thread reads it (on_term_signal). */
static int sig_pipe[2] = { -1, -1 };
static struct broker_source sig_src;
static struct mg_router *sig_router;

/* The byte written for a signal our parent sent. */
#define SIG_FROM_PARENT 0x80

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	int e = errno;
	char c = (char)(sig | (si->si_pid == getppid() ? SIG_FROM_PARENT : 0));

	told_by_signal = 1;

	/* Full: one is pending already. */
	(void)!write(sig_pipe[1], &c, 1);
	errno = e;
}

static void on_term_signal(struct broker_source *src, uint32_t events)
{
	unsigned char buf[16];
	char why[64];
	ssize_t n = read(src->fd, buf, sizeof(buf));
	int sig = n > 0 ? buf[0] & ~SIG_FROM_PARENT : 0;
	const char *name = sigabbrev_np(sig);

	if (n <= 0)
		return;
	snprintf(why, sizeof(why), "signal %d (SIG%s) from %s", sig, name ? name : "?",
		 buf[0] & SIG_FROM_PARENT ? "our parent" : "elsewhere");
	agent_end_request(sig_router, why);
}

static void add_sig_source(void *arg)
{
	struct mg_broker *b = arg;

	if (broker_add(b, &sig_src, EPOLLIN) < 0)
		sig_src.fd = -1;
}

/* Catch SIGTERM, SIGINT, SIGHUP from now on: each ends us as SHUTDOWN does. */
static void agent_catch_signals(struct mg_router *r)
{
	struct sigaction sa = { .sa_sigaction = on_signal, .sa_flags = SA_RESTART | SA_SIGINFO };
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	sigset_t set;

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return;
	sig_router = r;
	sig_src.fd = sig_pipe[0];
	sig_src.on_event = on_term_signal;
	if (broker_call(r->broker, add_sig_source, r->broker, false) < 0 || sig_src.fd < 0)
		return;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaction(sigs[i], &sa, NULL);
		sigaddset(&set, sigs[i]);
	}
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/*
 * Broker thread, last thing (its parent is lost): the main thread ends
 * what it runs (mg.run's command within the grace: it was told), then ends
 * the tree and exits. One stuck in another call must not keep us here.
 */
static void on_broker_exit(void *arg)
{
	double until = mono_now() + (builtins_run_busy() ? TREE_GRACE_S + 1.0 : 0.5);

	while (main_busy && mono_now() < until)
		usleep(10000);
	if (main_busy) {
		agent_end_tree();
		_exit(0);
	}
}

static __thread bool in_forward;

/* Log callback of a child: every line goes up to the parent. */
static void forward_log(enum mg_log_level level, const char *source, const char *line,
			void *userdata)
{
	struct mg_router *r = userdata;
	struct mg_message *msg;
	uint32_t origin;

	if (in_forward || forward_off)
		return;
	in_forward = true;
	/* A line from below keeps the origin our router verified, and the
	 * source it claimed. */
	if (!router_log_origin(&origin, &source))
		origin = mg_context_id();
	msg = mg_message_new(mg_parent_id(), MG_HANDLE_FORWARD_LOG,
			     MG_LIST(mg_int(level), mg_str(source), mg_str(line),
				     mg_int(origin)));
	if (msg)
		router_route_later(r, msg);
	in_forward = false;
}

int agent_connect_parent(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	int fd;

	/* "@x": abstract name x; anything else: a path. */
	if (len < 2 || len >= sizeof(sa.sun_path)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void agent_after_fork(const char *name)
{
	log_reset_after_fork();
	profile_reset_after_fork();
	tree_reset_after_fork();
	mg_log_set_callback(NULL, NULL);
}

struct boot_info {
	uint32_t id;
	uint32_t parents[64];
	size_t nparents;
	const char *name;
	int64_t max;
	int64_t level;
	bool debug;
	bool profiling;
};

static int parse_boot(const struct mg_value *v, struct boot_info *bi)
{
	const struct mg_value *id, *parents, *name, *max, *level, *debug, *prof;

	if (v->type != MG_MAP)
		return -EINVAL;
	id = mg_map_get(v, "id");
	parents = mg_map_get(v, "parent_ids");
	name = mg_map_get(v, "name");
	max = mg_map_get(v, "max_message_size");
	level = mg_map_get(v, "log_level");
	debug = mg_map_get(v, "debug");
	bi->debug = debug && debug->type == MG_BOOL && debug->b;
	prof = mg_map_get(v, "profiling");
	bi->profiling = prof && prof->type == MG_BOOL && prof->b;
	if (!id || id->type != MG_INT || !parents || parents->type != MG_LIST ||
	    !name || name->type != MG_STR || !max || max->type != MG_INT ||
	    !level || level->type != MG_INT || parents->len == 0 || parents->len > 64)
		return -EINVAL;
	bi->id = (uint32_t)id->i;
	bi->nparents = parents->len;
	for (size_t i = 0; i < parents->len; i++) {
		if (parents->items[i].type != MG_INT)
			return -EINVAL;
		bi->parents[i] = (uint32_t)parents->items[i].i;
	}
	bi->name = name->str;
	bi->max = max->i;
	bi->level = level->i;
	return 0;
}

/*
 * Name this process "mitogen:NAME" where top, pgrep and `ps -o comm` look
 * (the kernel keeps 15 bytes). A local child has that from its argv[0]
 * already; one the first stage started (ssh, sudo, su, doas, containers)
 * was "3", the last part of /proc/self/fd/3, its argv[0]. That argv stays:
 * it is what shows the agent was exec'd from the image the first stage
 * checked (selftests/attacks/test_cache.c).
 */
static void agent_set_comm(const char *name)
{
	char comm[16];

	snprintf(comm, sizeof(comm), "mitogen:%s", name);
	prctl(PR_SET_NAME, comm, 0, 0, 0);
}

struct set_max {
	struct mg_router *r;
	size_t max;
	uint32_t parent_id;
};

static void set_max_deferred(void *arg)
{
	struct set_max *sm = arg;

	if (sm->r->parent) {
		sm->r->parent->rx.max = sm->max;
		sm->r->parent->remote_id = sm->parent_id;
	}
}

void agent_run(int fd)
{
	agent_run_fds(fd, fd, false);
}

void agent_run_fds(int fd, int wfd, bool bytes)
{
	MG_OPTS(mg_receiver_opts, boot_opts, .handle = MG_HANDLE_BOOT, .once = true);
	MG_OPTS(mg_receiver_opts, call_opts, .handle = MG_HANDLE_CALL_FUNCTION,
		.policy = mg_has_parent_authority);
	MG_OPTS(mg_handler_opts, shut_opts, .handle = MG_HANDLE_SHUTDOWN,
		.policy = mg_has_parent_authority);
	struct mg_receiver *boot_rx;
	struct mg_message *msg;
	struct mg_value *boot = NULL;
	struct boot_info bi;
	struct mg_broker *b;
	struct mg_router *r;
	struct stream *s;
	struct set_max sm;

	/* Own session, subreaper: before any thread or child (agent/tree.c). */
	tree_agent_init();
	builtins_init();
	via_init();
	service_agent_init();
	/*
	 * This process is ours: keep freed message buffers instead of giving
	 * them back to the kernel after each one, which turns every large
	 * message into hundreds of page faults (measured: stream throughput).
	 */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	fcntl(wfd, F_SETFD, FD_CLOEXEC);
	b = mg_broker_new(NULL);
	r = b ? router_new_child(b, MG_DEFAULT_MAX_MESSAGE_SIZE) : NULL;
	if (!r)
		_exit(AGENT_EXIT_SETUP);
	boot_rx = mg_receiver_new(r, &boot_opts);
	s = bytes ? stream_new_bytes(fd, wfd, STREAM_PARENT, 0, "parent",
				     MG_DEFAULT_MAX_MESSAGE_SIZE)
		  : stream_new(fd, STREAM_PARENT, 0, "parent", MG_DEFAULT_MAX_MESSAGE_SIZE);
	if (!boot_rx || !s)
		_exit(AGENT_EXIT_SETUP);
	r->on_parent_lost = on_parent_lost;
	if (router_add_stream(r, s) < 0)
		_exit(AGENT_EXIT_SETUP);

	if (mg_receiver_get(boot_rx, 60.0, &msg, NULL) < 0)
		_exit(AGENT_EXIT_BOOT);
	if (mg_message_value(msg, true, &boot, NULL) < 0 || parse_boot(boot, &bi) < 0) {
		fprintf(stderr, "mitogen agent: invalid BOOT message from parent\n");
		_exit(AGENT_EXIT_BOOT);
	}
	identity_set(bi.id, bi.parents, bi.nparents, bi.name);
	agent_set_comm(bi.name);
	router_set_id(r, bi.id);
	heartbeat_boot(r, boot);
	r->max_message_size = (size_t)bi.max;
	sm.r = r;
	sm.max = (size_t)bi.max;
	sm.parent_id = bi.parents[0];
	mg_broker_defer(b, set_max_deferred, &sm);
	mg_log_set_level((enum mg_log_level)bi.level);
	mg_log_set_callback(forward_log, r);
	if (bi.profiling) {
		/* Profile our threads, and our children inherit the switch. */
		profile_set_enabled(true);
		profile_thread_start("main");
		broker_profile(b);
	}
	/* Audited: decided now, syslog opened before the sandbox. */
	if (agent_audit_boot(r, boot))
		LOG_DEBUG("audited: every call served here is recorded");
	if (bi.debug) {
		/* Debug mode: our own log file, and our children get one too. */
		r->debug = true;
		log_debug_file();	/* says why itself when it cannot */
	}
	/*
	 * The sandbox, before the greeting: the parent never sees a ready
	 * context that is not sandboxed as asked. Failing closed: the reason
	 * goes to stderr (the parent's StreamError quotes it) and we exit
	 * with AGENT_EXIT_SANDBOX.
	 */
	{
		const struct mg_value *sb = mg_map_get(boot, "sandbox");
		char why[512];

		/* Started by a first stage: we say which namespaces we are in. */
		if (from_first_stage && sb && sb->type == MG_MAP)
			sandbox_ns_record_self((struct mg_value *)sb);
		/* Our cgroup, made when we first start a process: not for a
		 * tenant's child (the sandbox puts it in the tenant's); ours to
		 * remove unless our parent is a local one (local, fork). */
		tree_cgroup_config(!(sb && sb->type == MG_MAP && mg_map_get(sb, "tenant")),
				   from_first_stage);
		/* sandbox_apply checks what it uses (the parent checked it all). */
		if (sb && sb->type != MG_NIL && sandbox_apply(sb, why, sizeof(why)) < 0) {
			fprintf(stderr, "mitogen agent: sandbox: %s\n", why);
			fflush(stderr);
			_exit(AGENT_EXIT_SANDBOX);
		}
	}
	mg_value_free(boot);
	/*
	 * Not dumpable from here on: a program mg.run starts runs as our uid,
	 * and could otherwise take our channel (pidfd_getfd), write our memory
	 * (/proc/PID/mem) or ptrace us, and speak as this context; no core
	 * dump holds our secrets either. After the sandbox: a user namespace's
	 * uid_map is written while dumpable (sandbox/namespaces.c).
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		_exit(AGENT_EXIT_SETUP);

	call_rx = mg_receiver_new(r, &call_opts);
	if (!call_rx || mg_router_add_handler(r, on_shutdown_msg, r, &shut_opts) < 0 ||
	    service_start(r) < 0)
		_exit(AGENT_EXIT_SETUP);
	agent_catch_signals(r);
	/* Between calls this thread reads the parent stream itself (lend.c). */
	receiver_set_lend(call_rx, bi.parents[0]);
	broker_set_exit_hook(b, on_broker_exit, NULL);
	/* The greeting: we are ready to serve. */
	{
		struct mg_value *hello = mg_map();

		mg_map_set(hello, "pid", mg_int(getpid()));
		mg_map_set(hello, "uid", mg_int(getuid()));
		mg_message_reply(msg, r, hello);
	}
	mg_message_free(msg);
	mg_receiver_free(boot_rx);

	while (mg_receiver_get(call_rx, MG_FOREVER, &msg, NULL) == 0) {
		main_busy = true;
		serve(r, msg);
		mg_message_free(msg);
		main_busy = false;
	}
	LOG_DEBUG("shutting down");
	profile_thread_stop();
	if (r->audited) {
		service_audit_running(r);
		agent_audit_close(r);
	}
	/* While the broker runs: the log line goes up to the parent. */
	agent_end_tree();
	forward_off = true;
	mg_broker_shutdown(b);
	mg_broker_join(b);
	fflush(NULL);
	_exit(0);
}

/*
 * Started by a first stage (transports/firststage.c): stdin and stdout are
 * the channel (--mitogen-stdio, a byte stream), or we connect back to our
 * parent's private socket (--mitogen-connect NAME), or, on stdio, the
 * program handed us a socket of our parent's (podman: AGENT_CHAN_ENV),
 * used from MGREADY on. Either way stdin then
 * reads /dev/null and stdout goes where stderr goes, so nothing a function
 * prints can corrupt the channel. "--mitogen-ns BITS" (MG_NS_*, from the
 * sandbox) last: we unshare them once connected (an abstract socket name
 * belongs to a net namespace), before any thread exists.
 */
/*
 * fd 3 is the image a first stage ran us from (exec /proc/self/fd/3, the
 * fd it checked and hashed): mark it used, as `touch -c` in the first
 * stage did (its mtime is what the cache's prune keeps recent images by),
 * one process less per start; then close it, so that no command we run
 * inherits it. Only when fd 3 is the very file we run (an image from
 * before this change left nothing there).
 */
static void agent_image_used(void)
{
	struct stat fd3, self;

	if (fstat(3, &fd3) < 0 || stat("/proc/self/exe", &self) < 0 ||
	    fd3.st_dev != self.st_dev || fd3.st_ino != self.st_ino)
		return;
	futimens(3, NULL);
	close(3);
}

/*
 * The SEQPACKET socket a first stage's program handed us (AGENT_CHAN_ENV,
 * agent.h), made close-on-exec so that no command we run inherits it, or
 * -1: stay on stdio. The variable goes either way (our commands must not
 * see it).
 */
static int agent_passed_channel(void)
{
	const char *env = getenv(AGENT_CHAN_ENV);
	int fd = -1, type = 0, dom = 0, ret;
	socklen_t tl = sizeof(type), dl = sizeof(dom);
	char *end;
	long v;

	if (!env)
		return -1;
	errno = 0;
	v = strtol(env, &end, 10);
	if (!errno && *env && !*end && v > 3 && v < 1024)
		fd = (int)v;
	unsetenv(AGENT_CHAN_ENV);
	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) < 0 || type != SOCK_SEQPACKET ||
	    dom != AF_UNIX)
		return -1;
	ret = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return ret;
}

/*
 * The parent's answer to AGENT_CHAN_HELLO on fd: the same word with a
 * fresh SEQPACKET socket (SCM_RIGHTS), which becomes our channel (the
 * program that handed us fd keeps a copy of it: transports/container.c).
 * fd is closed; the new fd, or -1.
 */
static int agent_chan_renew(int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	char buf[8];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof(u.b) };
	struct cmsghdr *c;
	int nfd = -1, type = 0;
	socklen_t tl = sizeof(type);
	ssize_t n;

	do
		n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	close(fd);
	c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&nfd, CMSG_DATA(c), sizeof(int));
	if (nfd >= 0 && (n != (ssize_t)strlen(AGENT_CHAN_HELLO) ||
			 memcmp(buf, AGENT_CHAN_HELLO, (size_t)n) ||
			 getsockopt(nfd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
			 type != SOCK_SEQPACKET)) {
		close(nfd);
		nfd = -1;
	}
	if (nfd < 0 && n >= 0)
		errno = EPROTO;
	return nfd;
}

/*
 * A pipe's capacity for the channel from the parent: 1 MiB (the default
 * pipe-max-size, so no privilege is needed), where a pipe has 64 KiB.
 * Under ssh the pipe is sshd's, and sshd keeps what we have not read yet
 * (up to its 2 MiB channel window) in a buffer it grows by copying
 * (OpenSSH's sshbuf: recallocarray, then memmove to pack it): with 64 KiB
 * pipes, a push of 100 MiB to 8 hosts cost the 8 sshd 8.6-9.6 s of CPU,
 * most of it memmove, mmap and munmap; with 1 MiB pipes 2.0-2.3 s (256
 * KiB: 6.0 s; docs/files.md). The kernel refuses (EPERM) beyond the
 * user's pipe-user-pages-soft (64 MiB by default, some 60 such agents of
 * one user on a host), and a channel that is not a pipe refuses too:
 * either way the channel works as before.
 */
#define AGENT_PIPE_SIZE (1 << 20)

static void agent_pipe_grow(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
	    fcntl(fd, F_GETPIPE_SZ) < AGENT_PIPE_SIZE)
		(void)fcntl(fd, F_SETPIPE_SZ, AGENT_PIPE_SIZE);
}

static __attribute__((noreturn)) void agent_from_first_stage(int argc, char **argv)
{
	int rfd = -1, wfd = -1, devnull, kr, chan = -1;
	bool bytes = !strcmp(argv[1], "--mitogen-stdio");
	unsigned long ns = 0;

	agent_image_used();
	if (bytes)
		chan = agent_passed_channel();
	/*
	 * Our messages come through ssh, sudo, ...: far apart at first. No
	 * spinning until a wait shows it pays (core/spin.h): on an idle
	 * target, ~3 ms of CPU per start less (docs/scale.md).
	 */
	spin_start_cold();

	for (int i = 2; i + 1 < argc; i++) {
		char *end;

		if (strcmp(argv[i], "--mitogen-ns"))
			continue;
		errno = 0;
		ns = strtoul(argv[i + 1], &end, 0);
		if (errno || *end || ns > 0xff) {
			fprintf(stderr, "mitogen agent: bad --mitogen-ns '%s'\n", argv[i + 1]);
			_exit(AGENT_EXIT_SETUP);
		}
	}

	if (bytes) {
		rfd = fcntl(0, F_DUPFD_CLOEXEC, 3);
		wfd = fcntl(1, F_DUPFD_CLOEXEC, 3);
		if (rfd >= 0)
			agent_pipe_grow(rfd);
	} else if (argc >= 3 && strcmp(argv[2], "--mitogen-ns")) {
		rfd = wfd = agent_connect_parent(argv[2]);
	}
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (rfd < 0 || wfd < 0 || devnull < 0 || dup2(devnull, 0) < 0 || dup2(2, 1) < 0) {
		fprintf(stderr, "mitogen agent: cannot set up the channel to the parent: %s\n",
			strerror(errno));
		_exit(AGENT_EXIT_SETUP);
	}
	close(devnull);
	/* The packet first, then the line (agent.h): the parent decides on
	 * reading the line. A failed send leaves us on stdio. Then our
	 * channel is the fresh end the parent sends back. */
	if (chan >= 0 && send(chan, AGENT_CHAN_HELLO, strlen(AGENT_CHAN_HELLO),
			      MSG_NOSIGNAL) != (ssize_t)strlen(AGENT_CHAN_HELLO)) {
		close(chan);
		chan = -1;
	}
	if (chan >= 0) {
		if (write(wfd, AGENT_READY_LINE, strlen(AGENT_READY_LINE)) < 0)
			_exit(AGENT_EXIT_SETUP);
		chan = agent_chan_renew(chan);
		if (chan < 0) {
			fprintf(stderr, "mitogen agent: no channel from the parent: %s\n",
				strerror(errno));
			_exit(AGENT_EXIT_SETUP);
		}
		/* The stdio channel is done with: records go over chan. */
		close(rfd);
		close(wfd);
		rfd = wfd = chan;
		bytes = false;
	}
	/*
	 * No parent of ours holds a cgroup around us (ssh, sudo, su, doas,
	 * a container's exec): a keeper above us ends what we leave if we
	 * are killed, or stopped and dropped (agent/keeper.c). We go on as
	 * its child; without one (fork failed) as before.
	 */
	kr = keeper_start(rfd);
	if (kr < 0)
		fprintf(stderr, "mitogen agent: no keeper: %s\n", strerror(-kr));
	else if (kr > 0)
		tree_agent_keep_group();
	from_first_stage = true;
	sandbox_ns_enter_self((unsigned)ns);
	if (bytes && write(wfd, AGENT_READY_LINE, strlen(AGENT_READY_LINE)) < 0)
		_exit(AGENT_EXIT_SETUP);
	agent_run_fds(rfd, wfd, bytes);
}

/*
 * The master is not dumpable either (docs/security.md): its children, and
 * the commands they run, often share its uid, and a dumpable master's
 * memory is open to them through /proc/PID/mem (a sandboxed child wrote
 * it), as its fds are through pidfd_getfd, whatever seccomp allows; a
 * core dump would also hold the passwords it was given. Root, and
 * CAP_SYS_PTRACE, still can. MITOGEN_DUMPABLE=1 keeps it dumpable, for
 * a debugger run as the same user.
 */
static void master_not_dumpable(void)
{
	const char *keep = getenv("MITOGEN_DUMPABLE");

	if (keep && !strcmp(keep, "1"))
		return;
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int mg_main_(int argc, char **argv, const struct mg_export *start,
	     const struct mg_export *stop)
{
	const char *env;
	char *end;
	long fd;

	/* The `ssh` of a program mg_fakessh_run started (master/fakessh.c). */
	if (fakessh_stub_wanted(argc, argv))
		fakessh_stub_main(argc, argv);
	export_table_add(start, stop);
	export_table_add(__start_mg_exports, __stop_mg_exports);
	if (argc >= 2 && argv && argv[1] && (!strcmp(argv[1], "--mitogen-stdio") ||
					     !strcmp(argv[1], "--mitogen-connect")))
		agent_from_first_stage(argc, argv);
	env = getenv(AGENT_FD_ENV);
	if (!env) {
		master_not_dumpable();
		return 0;
	}
	errno = 0;
	fd = strtol(env, &end, 10);
	if (errno || *end || fd < 0 || fd > 1024)
		return -EINVAL;
	unsetenv(AGENT_FD_ENV);
	/* A sandboxed child's bounding set, before any thread (sandbox/caps.c). */
	sandbox_early_from_env();
	agent_run((int)fd);
}
