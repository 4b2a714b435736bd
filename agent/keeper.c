// SPDX-License-Identifier: MIT
/*
 * keeper.c — the keeper: a tiny process above an agent that no parent
 * holds by a cgroup (keeper.h; docs/reliability.md, "The keeper").
 *
 * Owns: the split (fork: the parent keeps the pid ssh, sudo, su or doas
 * started and becomes the keeper, the child is the agent), forwarding
 * SIGTERM, SIGINT and SIGHUP to the agent, watching the agent's channel
 * for a hang-up, SIGKILL to an agent that is stopped (or still there
 * KEEPER_AGENT_WAIT_S after it should have gone), ending what the agent
 * left, and exiting with the agent's status.
 * Must not touch: the channel's data (it is polled with no events: only a
 * hang-up is seen), anything that is not its descendant.
 *
 * Kept minimal on purpose: one thread, no allocation, no stdio, no exec;
 * system calls only (open, read, getdents64, ppoll, waitpid, kill,
 * getpgid). It is not sandboxed (the agent applies its sandbox at BOOT,
 * after the split), so it must not be a way around the sandbox:
 *  - Why it is no way in: it is not dumpable (PR_SET_DUMPABLE 0, first
 *    thing), so the agent's tree, same uid or not, cannot ptrace it, read
 *    or write its memory (/proc/PID/mem) or take its fds (pidfd_getfd)
 *    without CAP_SYS_PTRACE; it reads nothing from anyone (not the
 *    channel, not a pipe) and runs no code but this.
 *  - What it can do, with the privileges the target user has: signal its
 *    own descendants (the agent's tree, which a sandboxed agent could at
 *    most have asked to be ended, by dying), and nothing else. Processes
 *    are signalled only as its children (a child's pid cannot be reused
 *    before the keeper reaps it) or as the process group of such a child
 *    (a group is in one session, all of it below us).
 *  - A sandboxed process may signal the keeper (same uid): SIGTERM,
 *    SIGINT or SIGHUP only end the agent, which it could kill itself;
 *    SIGKILL ends the keeper, and the agent runs on without one.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "agent/keeper.h"
#include "agent/tree.h"

#define KEEPER_TERMED_MAX 256

static volatile sig_atomic_t keeper_agent;	/* the agent's pid */
static volatile sig_atomic_t keeper_told;	/* a SIGTERM, SIGINT or SIGHUP came */

/* Passed on to the agent at once; remembered: the keeper is to go too. */
static void keeper_on_signal(int sig)
{
	int e = errno;

	keeper_told = sig;
	if (keeper_agent > 0)
		kill((pid_t)keeper_agent, sig);
	errno = e;
}

/* SIGCHLD: only wakes ppoll. */
static void keeper_on_child(int sig)
{
	(void)sig;
}

static double keeper_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Append text, then the number v when v >= 0, to buf (no stdio). */
static void keeper_append(char *buf, size_t n, const char *text, long v)
{
	size_t len = strlen(buf), k = 0;
	char digits[24];

	while (*text && len + 1 < n)
		buf[len++] = *text++;
	if (v >= 0) {
		do
			digits[k++] = (char)('0' + v % 10);
		while ((v /= 10) > 0 && k < sizeof(digits));
	}
	while (k > 0 && len + 1 < n)
		buf[len++] = digits[--k];
	buf[len] = '\0';
}

/* "/proc/<pid><tail>" into buf. */
static void keeper_proc_path(char *buf, size_t n, pid_t pid, const char *tail)
{
	buf[0] = '\0';
	keeper_append(buf, n, "/proc/", pid);
	keeper_append(buf, n, tail, -1);
}

/* /proc/<pid>/stat: its state letter and its parent; 0, or -1 (gone). */
static int keeper_stat(pid_t pid, char *state, pid_t *ppid)
{
	char path[48], buf[512], *p = NULL;
	ssize_t n;
	long v = 0;
	int fd;

	keeper_proc_path(path, sizeof(path), pid, "/stat");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == ')')
			p = buf + i;
	/* ") S 1234 " */
	if (!p || p + 4 >= buf + n)
		return -1;
	*state = p[2];
	for (p += 4; p < buf + n && *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (*p - '0');
	*ppid = (pid_t)v;
	return 0;
}

/* Stopped (SIGSTOP, job control or a tracer): it can act on nothing but
 * SIGKILL and SIGCONT. */
static bool keeper_stopped(pid_t pid)
{
	char state;
	pid_t ppid;

	return keeper_stat(pid, &state, &ppid) == 0 && (state == 'T' || state == 't');
}

/* Any child at all, exited or not? */
static bool keeper_have_children(void)
{
	siginfo_t si;

	return waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT) == 0 ||
	       errno != ECHILD;
}

struct keeper_end {
	int sig;
	pid_t termed[KEEPER_TERMED_MAX];	/* got SIGTERM already (pids, groups) */
	size_t ntermed;
};

static bool keeper_termed(struct keeper_end *e, pid_t pid, bool add)
{
	for (size_t i = 0; i < e->ntermed; i++)
		if (e->termed[i] == pid)
			return true;
	if (add && e->ntermed < KEEPER_TERMED_MAX)
		e->termed[e->ntermed++] = pid;
	return false;
}

/*
 * e->sig to child pid and to its process group (a command's session
 * leader: its pipeline and what it started in one step). A child is ours
 * until we reap it, and its group lives while it does: no number here can
 * name someone else's process. SIGTERM goes once to each (SIGCONT after
 * it: a stopped process would not see it); SIGKILL every time.
 */
static void keeper_signal(struct keeper_end *e, pid_t pid)
{
	bool again = e->sig == SIGKILL;
	pid_t pg = getpgid(pid);

	if (again || !keeper_termed(e, pid, true)) {
		kill(pid, e->sig);
		if (!again)
			kill(pid, SIGCONT);
	}
	/* Its group, unless it is ours (the keeper's, from the first stage). */
	if (pg > 0 && pg != getpgrp() && (again || !keeper_termed(e, -pg, true))) {
		kill(-pg, e->sig);
		if (!again)
			kill(-pg, SIGCONT);
	}
}

/* Without /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN): every
 * /proc/<pid>/stat whose parent is us. */
static void keeper_signal_scan(struct keeper_end *e)
{
	char buf[4096];
	pid_t self = getpid();
	int dfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long n;

	if (dfd < 0)
		return;
	while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			/* struct linux_dirent64: ino, off, reclen, type, name */
			unsigned short reclen;
			const char *name = buf + off + 19;
			pid_t pid = 0, ppid;
			char state;

			memcpy(&reclen, buf + off + 16, sizeof(reclen));
			for (; *name >= '0' && *name <= '9'; name++)
				pid = pid * 10 + (*name - '0');
			if (pid > 0 && !*name && keeper_stat(pid, &state, &ppid) == 0 &&
			    ppid == self && state != 'Z')
				keeper_signal(e, pid);
			off += reclen;
		}
	}
	close(dfd);
}

/* e->sig to every child we have now (orphans the agent left, reparented
 * to us as subreaper). */
static void keeper_signal_children(struct keeper_end *e)
{
	char path[64], buf[1024];
	pid_t cur = -1;
	ssize_t n;
	int fd;

	/* One thread: our children are our main task's. */
	keeper_proc_path(path, sizeof(path), getpid(), "/task/");
	keeper_append(path, sizeof(path), "", getpid());
	keeper_append(path, sizeof(path), "/children", -1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		keeper_signal_scan(e);
		return;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				cur = (cur < 0 ? 0 : cur * 10) + (buf[i] - '0');
			} else if (cur >= 0) {
				keeper_signal(e, cur);
				cur = -1;
			}
		}
	}
	if (cur >= 0)
		keeper_signal(e, cur);
	close(fd);
}

/* Reap what has exited; false when we have no child left. */
static bool keeper_reap(void)
{
	pid_t r;

	while ((r = waitpid(-1, NULL, WNOHANG)) > 0)
		;
	return !(r < 0 && errno == ECHILD);
}

static void keeper_sleep(double s, const sigset_t *mask)
{
	struct timespec ts = { .tv_sec = (time_t)s,
			       .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };

	ppoll(NULL, 0, &ts, mask);
}

/*
 * End everything the agent left (all of it is our children by now, or
 * becomes so as its parents die): SIGTERM, KEEPER_GRACE_S (half a second
 * once we are told to go: sudo's monitor SIGKILLs us 2 s after its
 * SIGTERM), SIGKILL, until no child is left or TREE_KILL_WAIT_S after the
 * SIGKILL (a process in uninterruptible sleep).
 */
static void keeper_end_orphans(const sigset_t *mask)
{
	struct keeper_end e = { .sig = SIGTERM };
	double grace_end, kill_end = 0;

	if (!keeper_have_children())
		return;
	grace_end = keeper_now() + KEEPER_GRACE_S;
	for (;;) {
		double now = keeper_now();

		if (!keeper_reap())
			return;
		if (e.sig == SIGTERM && keeper_told && grace_end > now + 0.5)
			grace_end = now + 0.5;
		if (e.sig == SIGTERM && now >= grace_end) {
			e.sig = SIGKILL;
			kill_end = now + TREE_KILL_WAIT_S;
		}
		if (e.sig == SIGKILL && now >= kill_end)
			return;
		keeper_signal_children(&e);
		/* SIGCHLD (or a signal to us) ends the sleep early. */
		keeper_sleep(0.05, mask);
	}
}

/* Exit as the agent did: its code, or its signal. */
static __attribute__((noreturn)) void keeper_exit(int status)
{
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		sigset_t set;

		/* Not the ones that would dump a core. */
		if (sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGHUP ||
		    sig == SIGPIPE) {
			signal(sig, SIG_DFL);
			sigemptyset(&set);
			sigaddset(&set, sig);
			sigprocmask(SIG_UNBLOCK, &set, NULL);
			kill(getpid(), sig);
		}
		_exit(128 + sig);
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

static __attribute__((noreturn)) void keeper_run(pid_t agent, int watch, const sigset_t *mask)
{
	static const int ends[] = { SIGTERM, SIGINT, SIGHUP };
	struct sigaction sa = { .sa_handler = keeper_on_signal };
	bool gone = false, hung = false;
	double end_at = 0;
	int status = 0;

	/* Before anything else: no one below us may ptrace us, read or write
	 * our memory or take our fds (see the head of this file). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	prctl(PR_SET_NAME, "mitogen-keeper", 0, 0, 0);
	/* Nothing of the agent's but the channel, watched: stdin is
	 * /dev/null already (agent.c); stdout and stderr (ssh's pipes) must
	 * not keep the session open once the agent has gone. */
	dup2(0, 1);
	dup2(0, 2);
	if (watch > 3)
		syscall(SYS_close_range, 3, watch - 1, 0);
	syscall(SYS_close_range, watch + 1, ~0U, 0);
	keeper_agent = agent;
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		sigaction(ends[i], &sa, NULL);
	sa.sa_handler = keeper_on_child;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTSTP, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	/* Signals to us are blocked but in ppoll, which they wake. */
	while (!gone) {
		struct pollfd p = { .fd = hung ? -1 : watch, .events = 0 };
		struct timespec tick = { .tv_nsec = 100 * 1000 * 1000 };
		pid_t r;
		int st;

		while ((r = waitpid(-1, &st, WNOHANG)) > 0)
			if (r == agent) {
				status = st;
				gone = true;
			}
		if (gone || (r < 0 && errno == ECHILD))
			break;
		/*
		 * The channel hung up (the master dropped it) or we were told
		 * to go (passed on): a running agent saw the same and ends its
		 * own tree; a stopped one cannot, nor can one still there
		 * long after: SIGKILL, and we end what it leaves.
		 */
		if (hung || keeper_told) {
			if (!end_at)
				end_at = keeper_now() + KEEPER_AGENT_WAIT_S;
			if (keeper_stopped(agent) || keeper_now() >= end_at)
				kill(agent, SIGKILL);
		}
		if (ppoll(&p, 1, hung || keeper_told ? &tick : NULL, mask) > 0 &&
		    (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
			hung = true;
	}
	/* The channel goes with the agent: its parent must see that now,
	 * not once the orphans are gone. */
	close(watch);
	keeper_end_orphans(mask);
	keeper_exit(status);
}

int keeper_start(int watch_fd)
{
	static const int ours[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD };
	sigset_t block, old, wake;
	pid_t pid, ppid = getppid(), ppg = getpgid(ppid);
	bool leave;
	int e;

	/*
	 * The keeper leaves the process group it was started in, for its
	 * parent's, where it may (not a session leader, its parent in the
	 * same session); the agent stays in it. A program that ends its
	 * command by its group (sudo with use_pty: SIGHUP, SIGTERM, then at
	 * once or 2 s later SIGKILL to the group, when sudo itself is gone)
	 * then reaches the agent, as it did before there was a keeper, and
	 * not the keeper, which is to outlive the agent. Decided before the
	 * split: the agent must know it before it would make a group of its
	 * own (agent/tree.c).
	 */
	leave = getsid(0) != getpid() && ppg > 0 && ppg != getpgrp() &&
		getsid(ppid) == getsid(0);
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		sigaddset(&block, ours[i]);
	/* Until the keeper has its handlers: none of these may end it. */
	if (sigprocmask(SIG_BLOCK, &block, &old) < 0)
		return -errno;
	/*
	 * Subreaper before the split: whatever the agent leaves, from its
	 * first instant, comes to us (a child does not inherit the flag: the
	 * agent sets its own, agent/tree.c).
	 */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		e = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		return -e;
	}
	pid = fork();
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return leave ? 1 : 0;
	}
	if (pid < 0) {
		e = errno;
		prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
		sigprocmask(SIG_SETMASK, &old, NULL);
		return -e;
	}
	if (leave)
		setpgid(0, ppg);
	wake = old;
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		sigdelset(&wake, ours[i]);
	keeper_run(pid, watch_fd, &wake);
}
