// SPDX-License-Identifier: MIT
/*
 * namespaces.c — the namespace part of a sandbox, in two halves:
 *
 *  - entering (parent side, when the child is started): local contexts are
 *    started with clone() and the CLONE_NEW* flags (a vfork-like clone, as
 *    posix_spawn does), so the agent is pid 1 of a new pid namespace and
 *    every thread it ever has is in the new namespaces; fork contexts
 *    unshare() right after fork, while they are still single-threaded (a
 *    pid namespace is refused there: unshare would put only the fork's
 *    future children in it). A user namespace (implied when the master is
 *    not root) maps the master's uid and gid to 0, written by the child
 *    itself before exec so that it keeps its capabilities in there.
 *  - setting up (child side, after BOOT, before capabilities are dropped):
 *    lo up through libnl in a new net namespace, a private tmpfs on /tmp
 *    (and a fresh /proc with a pid namespace) in a new mount namespace, the
 *    hostname "mitogen" in a new UTS namespace.
 *
 * The BOOT map says what was asked ("ns") and, written by the starter,
 * what the child was actually started in ("ns_in"); the child sets up only
 * the latter.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include "core/log.h"
#include "sandbox/sandbox.h"

static const struct {
	unsigned bit;
	int flag;
	const char *name;
} ns_table[] = {
	{ MG_NS_USER, CLONE_NEWUSER, "user" }, { MG_NS_NET, CLONE_NEWNET, "net" },
	{ MG_NS_MOUNT, CLONE_NEWNS, "mount" }, { MG_NS_PID, CLONE_NEWPID, "pid" },
	{ MG_NS_UTS, CLONE_NEWUTS, "uts" },    { MG_NS_IPC, CLONE_NEWIPC, "ipc" },
};
#define NS_N (sizeof(ns_table) / sizeof(ns_table[0]))

static int ns_clone_flags(unsigned bits)
{
	int flags = 0;

	for (size_t i = 0; i < NS_N; i++)
		if (bits & ns_table[i].bit)
			flags |= ns_table[i].flag;
	return flags;
}

static void ns_names(unsigned bits, char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < NS_N && len < n; i++)
		if (bits & ns_table[i].bit)
			len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? "," : "",
						ns_table[i].name);
}

static unsigned map_uint(const struct mg_value *v, const char *key)
{
	const struct mg_value *x = mg_map_get(v, key);

	return x && x->type == MG_INT && x->i > 0 ? (unsigned)x->i : 0;
}

/* The namespaces asked for, plus a user namespace when we are not root. */
static unsigned ns_wanted(const struct mg_value *sb)
{
	unsigned bits = sb ? map_uint(sb, "ns") : 0;

	if (bits && geteuid() != 0)
		bits |= MG_NS_USER;
	return bits;
}

bool sandbox_ns_wanted(const struct mg_value *sb)
{
	return ns_wanted(sb) != 0;
}

/* --- entering ------------------------------------------------------------ */

struct spawn_req {
	unsigned bits;
	char uid_map[48], gid_map[48];
	const char *image;
	char *const *argv;
	char *const *env;
	int chan_fd, out_fd, child_fd;
	int netns_fd;		/* a ready net namespace to enter, or -1 */
	int err;		/* written by the child (shared memory) */
	const char *step;
};

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t len = (ssize_t)strlen(text), w;

	if (fd < 0)
		return -1;
	w = write(fd, text, (size_t)len);
	close(fd);
	return w == len ? 0 : -1;
}

/* In the new user namespace: be root there (async-signal-safe). */
static int map_ids(struct spawn_req *q)
{
	/* A process that changed uid is not dumpable: its /proc files are
	 * root's, uid_map included: dumpable while we write, as before after. */
	int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), ret = -1;

	q->step = "dumpable";
	if (dumpable < 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return -1;
	q->step = "uid_map";
	if (write_file("/proc/self/uid_map", q->uid_map) < 0)
		goto out;
	q->step = "setgroups";
	if (write_file("/proc/self/setgroups", "deny") < 0 && errno != ENOENT)
		goto out;
	q->step = "gid_map";
	ret = write_file("/proc/self/gid_map", q->gid_map);
out:
	if (dumpable != 1) {
		int e = errno;

		prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
		errno = e;
	}
	return ret;
}

static int spawn_child(void *arg)
{
	struct spawn_req *q = arg;
	int devnull;

	q->step = "setns";
	if (q->netns_fd >= 0 && setns(q->netns_fd, CLONE_NEWNET) < 0)
		goto fail;
	if ((q->bits & MG_NS_USER) && map_ids(q) < 0)
		goto fail;
	q->step = "stdio";
	devnull = open("/dev/null", O_RDONLY);
	/* As posix_spawn's dup2 action: a fd already in place loses CLOEXEC. */
	if (q->chan_fd == q->child_fd && fcntl(q->chan_fd, F_SETFD, 0) < 0)
		goto fail;
	if (devnull < 0 || dup2(q->chan_fd, q->child_fd) < 0 || dup2(q->out_fd, 1) < 0 ||
	    dup2(q->out_fd, 2) < 0 || dup2(devnull, 0) < 0)
		goto fail;
	syscall(SYS_close_range, q->child_fd + 1, ~0U, 0);
	q->step = "exec";
	execve(q->image, q->argv, q->env);
fail:
	q->err = errno ? errno : EIO;
	_exit(127);
}

static pid_t try_clone(struct spawn_req *q, void *stack_top)
{
	q->err = 0;
	q->step = "clone";
	return clone(spawn_child, stack_top, CLONE_VM | CLONE_VFORK | SIGCHLD |
		     ns_clone_flags(q->netns_fd >= 0 ? q->bits & ~MG_NS_NET : q->bits), q);
}

/* The namespaces among bits that this kernel lets us create, alone. */
static unsigned ns_probe(unsigned bits)
{
	unsigned ok = 0;

	for (size_t i = 0; i < NS_N; i++) {
		int flags = ns_table[i].flag | (bits & MG_NS_USER ? CLONE_NEWUSER : 0);
		pid_t pid;

		if (!(bits & ns_table[i].bit))
			continue;
		pid = (pid_t)syscall(SYS_clone, SIGCHLD | flags, NULL, NULL, NULL, NULL);
		if (pid == 0)
			_exit(0);
		if (pid > 0) {
			waitpid(pid, NULL, 0);
			ok |= ns_table[i].bit;
		}
	}
	return ok;
}

/*
 * The net namespace pool. Making a net namespace costs ~0.6 ms of kernel
 * time on this machine (sysctl tables, the loopback device, IPv6 set-up),
 * which a child would otherwise wait for in clone(). Threads of the
 * master make some ahead of time, each with lo up, and a child enters one
 * with setns(); each is used by exactly one child. The pool starts with
 * the first child that asks for a net namespace. It holds 4, doubled (up
 * to 16) each time a child finds it empty; MITOGEN_NETNS_POOL=N fixes it
 * at N (0: no pool).
 *
 * When it refills: making a namespace is one long system call that this
 * kernel does not preempt, so made while a child is being started it takes
 * a CPU from that child (on 2 CPUs, +0.1-0.3 ms per sandboxed start; and a
 * slowed start let more refills in). So the pool refills only when no
 * child is being started (sandbox_spawn until sandbox_spawn_done) and
 * none was for POOL_QUIET_NS; at once only when it is down to a quarter.
 */
#define POOL_MAX 16
#define POOL_QUIET_NS (1000 * 1000LL)

static struct {
	pthread_mutex_t lock;
	pthread_cond_t want;
	int fd[POOL_MAX];
	int n;
	int making;		/* namespaces being made now */
	int size;		/* target; -1: not read from the environment yet */
	bool fixed;		/* size set by MITOGEN_NETNS_POOL */
	bool started;
	int starting;		/* children being started (sandbox_spawn) */
	int64_t last_done;	/* when the last one was up, CLOCK_MONOTONIC ns */
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, .size = -1 };

static int lo_up(char *why, size_t n);

static int64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Called with the lock held: wait until the pool should make one. */
static void pool_wait_turn(void)
{
	for (;;) {
		int64_t now, until;
		struct timespec ts;

		if (pool.n + pool.making >= pool.size) {
			pthread_cond_wait(&pool.want, &pool.lock);
			continue;
		}
		if (pool.n + pool.making < (pool.size + 3) / 4)
			return;		/* running low: now */
		if (pool.starting > 0) {
			pthread_cond_wait(&pool.want, &pool.lock);
			continue;
		}
		now = mono_ns();
		until = pool.last_done + POOL_QUIET_NS;
		if (now >= until)
			return;		/* quiet */
		ts.tv_sec = (time_t)(until / 1000000000LL);
		ts.tv_nsec = (long)(until % 1000000000LL);
		pthread_cond_clockwait(&pool.want, &pool.lock, CLOCK_MONOTONIC, &ts);
	}
}

static void *pool_main(void *arg)
{
	char why[160] = "";
	int fd;

	(void)arg;
	/* Normal priority on purpose: making a namespace holds the RTNL lock,
	 * and a starved holder (SCHED_IDLE, nice 19) would stall every
	 * netlink user on the machine behind it. */
	for (;;) {
		pthread_mutex_lock(&pool.lock);
		pool_wait_turn();
		pool.making++;
		pthread_mutex_unlock(&pool.lock);
		/* This thread alone moves into a new net namespace. */
		fd = -1;
		if (unshare(CLONE_NEWNET) < 0)
			snprintf(why, sizeof(why), "unshare: %s", strerror(errno));
		else if (lo_up(why, sizeof(why)) == 0 &&
			 (fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
			snprintf(why, sizeof(why), "/proc/thread-self/ns/net: %s", strerror(errno));
		pthread_mutex_lock(&pool.lock);
		pool.making--;
		if (fd >= 0 && pool.n < POOL_MAX)
			pool.fd[pool.n++] = fd;
		else if (fd >= 0)
			close(fd);
		else
			break;
		pthread_mutex_unlock(&pool.lock);
	}
	pool.size = 0;
	pthread_mutex_unlock(&pool.lock);
	LOG_DEBUG("sandbox: no net namespace pool: %s", why);
	return NULL;
}

static void pool_prepare(void)
{
	pthread_mutex_lock(&pool.lock);
}

static void pool_parent(void)
{
	pthread_mutex_unlock(&pool.lock);
}

/* A forked child has no pool thread and must not share the namespaces. */
static void pool_child(void)
{
	for (int i = 0; i < pool.n; i++)
		close(pool.fd[i]);
	pool.n = 0;
	pool.making = 0;
	pool.starting = 0;
	pool.started = false;
	/* Held by pool_prepare in the parent: a fresh one, unlocked. */
	pthread_mutex_init(&pool.lock, NULL);
	pthread_cond_init(&pool.want, NULL);
}

static void pool_atfork(void)
{
	pthread_atfork(pool_prepare, pool_parent, pool_child);
}

/* Called with the lock held. */
static void pool_start(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const char *env = getenv("MITOGEN_NETNS_POOL");
	pthread_attr_t attr;
	pthread_t t;

	if (pool.size < 0) {
		pool.fixed = env != NULL;
		pool.size = env ? atoi(env) : 4;
	}
	if (pool.size < 0)
		pool.size = 0;
	if (pool.size > POOL_MAX)
		pool.size = POOL_MAX;
	if (pool.started || pool.size == 0)
		return;
	pthread_once(&once, pool_atfork);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 << 10);
	pool.started = pthread_create(&t, &attr, pool_main, NULL) == 0;
	pthread_attr_destroy(&attr);
	if (!pool.started)
		pool.size = 0;
}

/* A ready net namespace (the caller closes it), or -1 when none is. */
static int pool_take(void)
{
	int fd = -1;

	pthread_mutex_lock(&pool.lock);
	pool_start();
	if (pool.n > 0)
		fd = pool.fd[--pool.n];
	else if (!pool.fixed && pool.size > 0 && pool.size < POOL_MAX)
		/* Children come faster than the pool refills: keep more. */
		pool.size = pool.size * 2 > POOL_MAX ? POOL_MAX : pool.size * 2;
	pthread_mutex_unlock(&pool.lock);
	return fd;
}

/* After the child that took one has exec'd: the threads look again. */
static void pool_kick(void)
{
	pthread_mutex_lock(&pool.lock);
	pthread_cond_broadcast(&pool.want);
	pthread_mutex_unlock(&pool.lock);
}

void sandbox_spawn_done(void)
{
	pthread_mutex_lock(&pool.lock);
	if (pool.starting > 0)
		pool.starting--;
	pool.last_done = mono_ns();
	pthread_cond_broadcast(&pool.want);
	pthread_mutex_unlock(&pool.lock);
}

pid_t sandbox_spawn(struct mg_value *sb, const char *image, char *const argv[],
		    char *const env[], int chan_fd, int child_fd, int out_fd, char *why,
		    size_t n)
{
	struct spawn_req q = { .image = image, .argv = argv, .env = env, .chan_fd = chan_fd,
			       .child_fd = child_fd, .out_fd = out_fd, .netns_fd = -1 };
	size_t stack_size = 64 << 10;
	char *stack = malloc(stack_size);
	unsigned best = map_uint(sb, "best_effort");
	char names[64];
	pid_t pid;

	pthread_mutex_lock(&pool.lock);
	pool.starting++;	/* until sandbox_spawn_done() */
	pthread_mutex_unlock(&pool.lock);
	if (!stack) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	q.bits = ns_wanted(sb);
	snprintf(q.uid_map, sizeof(q.uid_map), "0 %u 1\n", (unsigned)geteuid());
	snprintf(q.gid_map, sizeof(q.gid_map), "0 %u 1\n", (unsigned)getegid());
	/* A net namespace made ahead of time, lo up, when one is ready (not
	 * across a user namespace: it would not be ours to enter). */
	if ((q.bits & (MG_NS_NET | MG_NS_USER)) == MG_NS_NET)
		q.netns_fd = pool_take();
	pid = try_clone(&q, stack + stack_size);
	if ((q.bits & (MG_NS_NET | MG_NS_USER)) == MG_NS_NET)
		pool_kick();
	mg_map_set(sb, "net_ready", mg_bool(q.netns_fd >= 0));
	if (q.netns_fd >= 0) {
		close(q.netns_fd);
		q.netns_fd = -1;
	}
	if (pid < 0 && (best & MG_SANDBOX_NAMESPACES)) {
		unsigned ok = ns_probe(q.bits);

		ns_names(q.bits & ~ok, names, sizeof(names));
		LOG_WARN("sandbox: skipped (best effort): namespaces %s: %s", names,
			 strerror(errno));
		q.bits = ok;
		pid = try_clone(&q, stack + stack_size);
	}
	if (pid < 0) {
		int e = errno;

		ns_names(q.bits, names, sizeof(names));
		snprintf(why, n, "namespaces: cannot create %s: %s", names, strerror(e));
		free(stack);
		return -e;
	}
	free(stack);
	if (q.err) {
		/* The child failed before exec: it has exited (vfork). */
		waitpid(pid, NULL, 0);
		ns_names(q.bits, names, sizeof(names));
		snprintf(why, n, "namespaces %s: %s: %s", names, q.step, strerror(q.err));
		return -q.err;
	}
	mg_map_set(sb, "ns_in", mg_int(q.bits));
	return pid;
}

/*
 * After unshare(CLONE_NEWPID) only this process's future children are in
 * the new pid namespace. So fork once more: the child, pid 1 in there,
 * returns 0 and goes on as the agent; this process stays outside as its
 * keeper and never returns. The keeper closes every fd (the channel is the
 * agent's alone: its EOF means the agent is gone), waits, and ends as the
 * agent ended (the same exit status, or the same signal), so whoever
 * started it (the master, sudo, sshd) sees the agent's fate; and the agent
 * gets SIGKILL when the keeper dies (PR_SET_PDEATHSIG), so killing the pid
 * the master knows kills the context. Single-threaded callers only.
 * Returns 0 in the agent, -errno when the fork fails.
 */
static int pid_ns_keeper(void)
{
	int alive[2], st;
	sigset_t none;
	pid_t pid;
	char c;

	if (pipe2(alive, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(alive[0]);
		close(alive[1]);
		return -e;
	}
	if (pid == 0) {
		close(alive[1]);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
		    fcntl(alive[0], F_SETFL, O_NONBLOCK) < 0)
			_exit(127);
		/* The keeper holds the other end while it lives: EOF now means
		 * it died before the prctl above could matter. */
		if (read(alive[0], &c, 1) == 0)
			_exit(127);
		close(alive[0]);
		return 0;
	}
	/* The keeper: nothing of the agent's stays open here, and none of
	 * the program's signal handlers run here. */
	if (dup2(alive[1], 3) < 0)
		_exit(127);
	syscall(SYS_close_range, 0, 2, 0);
	syscall(SYS_close_range, 4, ~0U, 0);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			_exit(127);
	if (WIFSIGNALED(st)) {
		raise(WTERMSIG(st));
		_exit(128 + WTERMSIG(st));
	}
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 127);
}

/* A forked child that had to leave some namespaces out (best effort):
 * what it entered, or -1. */
static int forked_bits = -1;

int sandbox_ns_prepare_fork(struct mg_value *sb, char *why, size_t n)
{
	mg_map_set(sb, "ns_in", mg_int(ns_wanted(sb)));
	return 0;
}

int sandbox_ns_unshare(const struct mg_value *sb, char *why, size_t n)
{
	struct spawn_req q = { 0 };
	char names[64];
	int ret;

	q.bits = ns_wanted(sb);
	if (!q.bits)
		return 0;
	snprintf(q.uid_map, sizeof(q.uid_map), "0 %u 1\n", (unsigned)geteuid());
	snprintf(q.gid_map, sizeof(q.gid_map), "0 %u 1\n", (unsigned)getegid());
	if (unshare(ns_clone_flags(q.bits)) < 0) {
		int e = errno;
		unsigned ok;

		if (!(map_uint(sb, "best_effort") & MG_SANDBOX_NAMESPACES)) {
			ns_names(q.bits, names, sizeof(names));
			snprintf(why, n, "namespaces: cannot create %s: %s", names, strerror(e));
			return -e;
		}
		ok = ns_probe(q.bits);
		ns_names(q.bits & ~ok, names, sizeof(names));
		LOG_WARN("sandbox: skipped (best effort): namespaces %s: %s", names,
			 strerror(e));
		q.bits = ok;
		forked_bits = (int)ok;
		if (q.bits && unshare(ns_clone_flags(q.bits)) < 0) {
			snprintf(why, n, "namespaces: unshare: %s", strerror(errno));
			return -errno;
		}
	}
	if ((q.bits & MG_NS_USER) && map_ids(&q) < 0) {
		snprintf(why, n, "namespaces: user: %s: %s", q.step, strerror(errno));
		return -errno;
	}
	if ((q.bits & MG_NS_PID) && (ret = pid_ns_keeper()) < 0) {
		snprintf(why, n, "namespaces: pid: fork: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

/*
 * Contexts started by a program (sudo, su, doas, ssh): the program starts
 * the agent, so the agent enters the namespaces itself. The master gives
 * the bits on the first stage's command line (--mitogen-ns); the agent
 * unshares them while it is still single-threaded, before its broker
 * thread, and after BOOT records in "ns_in" what it entered, whatever the
 * parent wrote there. No pid namespace: unshare would put only the
 * agent's future children in it (refused unless best effort, as for fork).
 */
static int self_bits = -1;	/* entered by sandbox_ns_enter_self, -1: not called */
static char self_why[160];

int sandbox_ns_exec_bits(const struct mg_value *sb, const char *kind, unsigned *bits,
			 char *why, size_t n)
{
	unsigned want = sb ? map_uint(sb, "ns") : 0;

	*bits = want;
	return 0;
}

void sandbox_ns_enter_self(unsigned asked)
{
	struct spawn_req q = { 0 };
	char names[64];
	int e;

	q.bits = asked & (MG_NS_NET | MG_NS_MOUNT | MG_NS_PID | MG_NS_UTS | MG_NS_IPC | MG_NS_USER);
	if (q.bits && geteuid() != 0)
		q.bits |= MG_NS_USER;
	self_bits = 0;
	if (!q.bits)
		return;
	snprintf(q.uid_map, sizeof(q.uid_map), "0 %u 1\n", (unsigned)geteuid());
	snprintf(q.gid_map, sizeof(q.gid_map), "0 %u 1\n", (unsigned)getegid());
	if (unshare(ns_clone_flags(q.bits)) < 0) {
		e = errno;
		ns_names(q.bits, names, sizeof(names));
		snprintf(self_why, sizeof(self_why), "cannot create %s: %s", names, strerror(e));
		/* What works alone, for a sandbox that marked namespaces best effort. */
		q.bits = ns_probe(q.bits);
		if ((asked & ~MG_NS_USER) && !(q.bits & ~MG_NS_USER))
			q.bits = 0;
		if (q.bits && unshare(ns_clone_flags(q.bits)) < 0)
			return;
	}
	if ((q.bits & MG_NS_USER) && map_ids(&q) < 0) {
		/* In a user namespace without our uid: claim none at all. */
		snprintf(self_why, sizeof(self_why), "user: %s: %s", q.step, strerror(errno));
		return;
	}
	if ((q.bits & MG_NS_PID) && (e = pid_ns_keeper()) < 0) {
		/* Not in it after all: the namespace is only our children's. */
		snprintf(self_why, sizeof(self_why), "pid: fork: %s", strerror(-e));
		q.bits &= ~MG_NS_PID;
	}
	self_bits = (int)q.bits;
}

void sandbox_ns_record_self(struct mg_value *sb)
{
	if (self_bits < 0 || !sb || sb->type != MG_MAP)
		return;
	mg_map_set(sb, "ns_in", mg_int(self_bits));
	mg_map_set(sb, "net_ready", mg_bool(false));
}

const char *sb_ns_self_why(void)
{
	return self_why[0] ? self_why : NULL;
}

/* --- setting up (child, after BOOT) -------------------------------------- */

/*
 * Bring lo up through rtnetlink (libnl): no `ip` program needed. One
 * RTM_NEWLINK naming "lo" with IFF_UP in the change mask: no RTM_GETLINK
 * first (its reply, lo's every attribute and statistic, was most of
 * libnl's part), the kernel finds the device by name and changes only
 * that flag.
 */
static int lo_up(char *why, size_t n)
{
	struct rtnl_link *orig = rtnl_link_alloc(), *change = rtnl_link_alloc();
	struct nl_sock *sk = nl_socket_alloc();
	int ret = -NLE_NOMEM;

	if (sk && orig && change) {
		rtnl_link_set_name(change, "lo");
		rtnl_link_set_flags(change, IFF_UP);
		ret = nl_connect(sk, NETLINK_ROUTE);
		if (ret == 0)
			ret = rtnl_link_change(sk, orig, change, 0);
	}
	if (ret < 0)
		snprintf(why, n, "namespaces: net: bringing lo up: %s", nl_geterror(ret));
	rtnl_link_put(change);
	rtnl_link_put(orig);
	if (sk)
		nl_socket_free(sk);
	return ret < 0 ? -EIO : 0;
}

static int mount_private(unsigned bits, char *why, size_t n)
{
	/* Nothing we mount may leak out to the parent's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		snprintf(why, n, "namespaces: mount: make / private: %s", strerror(errno));
		return -errno;
	}
	if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0) {
		snprintf(why, n, "namespaces: mount: private /tmp: %s", strerror(errno));
		return -errno;
	}
	if ((bits & MG_NS_PID) &&
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		snprintf(why, n, "namespaces: mount: /proc for the pid namespace: %s",
			 strerror(errno));
		return -errno;
	}
	return 0;
}

int sb_ns_setup(const struct mg_value *v, char *why, size_t n)
{
	unsigned bits = map_uint(v, "ns_in") & map_uint(v, "ns");
	int ret;

	if (forked_bits >= 0)
		bits &= (unsigned)forked_bits;
	const struct mg_value *ready = mg_map_get(v, "net_ready");

	/* A pooled namespace has lo up already. */
	if ((bits & MG_NS_NET) && !(ready && ready->type == MG_BOOL && ready->b) &&
	    (ret = lo_up(why, n)) < 0)
		return ret;
	if ((bits & MG_NS_MOUNT) && (ret = mount_private(bits, why, n)) < 0)
		return ret;
	if ((bits & MG_NS_UTS) && sethostname("mitogen", 7) < 0) {
		snprintf(why, n, "namespaces: uts: sethostname: %s", strerror(errno));
		return -errno;
	}
	return 0;
}
