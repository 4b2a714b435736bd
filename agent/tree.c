// SPDX-License-Identifier: MIT
/*
 * tree.c — process trees: finding and ending everything below a process
 * (tree.h; the decisions are in docs/reliability.md).
 *
 * Owns: an agent's session and subreaper set-up, the walk of this
 * process's descendants (/proc/<pid>/task/<tid>/children, or every
 * /proc/<pid>/stat where the kernel lacks those files), the signals that
 * end them, waiting until they are gone, the mg.<pid> cgroups (making,
 * moving into, cgroup.kill, removing), reaping orphans, and the temporary
 * files removed at exit.
 * Must not touch: the router, the broker, streams; any process that is
 * neither our descendant nor in a cgroup of ours.
 *
 * Why signalling is safe here: a process is signalled only through a
 * pidfd opened after it was found, and only when, with the pidfd held, it
 * is still the child of the process it was found under (or ours, as
 * subreaper): a number that was freed and reused meanwhile names another
 * process, which is left alone. In a cgroup, the same check is that it is
 * still in that cgroup. An agent whose /proc is not of its pid namespace
 * (a sandbox's new pid namespace) walks nothing: numbers read there would
 * not be its own; it is that namespace's init, and its tree ends with it.
 *
 * Why a parent's cgroup.kill on <its cgroup>/mg.<pid> is safe: only a
 * local or fork child (the parent's own uid) makes that name, and what it
 * can move into it (processes it may move out of the parent's cgroup) it
 * could kill itself. An ssh/sudo/su/doas agent, which may be more
 * privileged, makes mg.<its own pid>, not the pid its parent knows (ssh's
 * or sudo's): the parent never acts on its cgroup.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "agent/tree.h"
#include "core/broker.h"
#include "core/log.h"

#define TREE_TMPFILES 8

/* A set of processes, each with the parent it was found under. */
struct pidset {
	pid_t *pid;
	pid_t *parent;
	size_t n, cap;
};

static pthread_mutex_t tree_lock = PTHREAD_MUTEX_INITIALIZER;
/* tree_spawn_begin .. tree_spawn_end, and tree_reap_orphans: not at once. */
static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static bool term_begun;
static bool term_signalled;		/* the SIGTERMs of term_begin went out */
static double term_deadline;
static int wake_fd = -1;
static struct pidset ended;		/* got our SIGTERM or SIGKILL */
static struct pidset killedset;	/* of those, the ones that got the SIGKILL */
static struct pidset watched;		/* children their owner reaps */
static char tmpfiles[TREE_TMPFILES][PATH_MAX];

/* Our own cgroup (agents): 0 not made yet, 1 made and joined (own_cg),
 * -1 none (not allowed, or not possible here). */
static bool is_agent;
static bool keep_group;			/* tree_agent_keep_group */
static int own_state;
static bool own_remove;			/* we remove it at exit */
static char own_cg[PATH_MAX];

static bool pidset_has(const struct pidset *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->pid[i] == pid)
			return true;
	return false;
}

static void pidset_add(struct pidset *s, pid_t pid, pid_t parent)
{
	if (pidset_has(s, pid))
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		pid_t *p = realloc(s->pid, cap * sizeof(*p)), *q;

		if (!p)
			return;
		s->pid = p;
		q = realloc(s->parent, cap * sizeof(*q));
		if (!q)
			return;
		s->parent = q;
		s->cap = cap;
	}
	s->pid[s->n] = pid;
	s->parent[s->n] = parent;
	s->n++;
}

static void pidset_del(struct pidset *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->pid[i] != pid)
			continue;
		s->n--;
		s->pid[i] = s->pid[s->n];
		s->parent[i] = s->parent[s->n];
		return;
	}
}

static void pidset_free(struct pidset *s)
{
	free(s->pid);
	free(s->parent);
	memset(s, 0, sizeof(*s));
}

/* --- /proc ------------------------------------------------------------------ */

/* State, parent and session of pid (0: us). 0, or -1 when it is gone. */
static int proc_stat(pid_t pid, char *state, pid_t *ppid, pid_t *sid)
{
	char path[64], buf[512], *close_;
	int fd, p = 0, s = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	close_ = strrchr(buf, ')');
	if (!close_ || sscanf(close_ + 1, " %c %d %*d %d", state, &p, &s) != 3)
		return -1;
	*ppid = p;
	*sid = s;
	return 0;
}

/* Are /proc's process numbers ours (same pid namespace)? */
static bool proc_ours(void)
{
	char buf[32];
	ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);

	if (n <= 0)
		return false;
	buf[n] = '\0';
	return atoi(buf) == (int)getpid();
}

/* The children of every thread of pid (0: us), added to s. false when the
 * kernel has no children files (CONFIG_PROC_CHILDREN). */
static bool add_children(struct pidset *s, pid_t pid)
{
	pid_t parent = pid ? pid : getpid();
	char dir[64], path[384], buf[1024];
	struct dirent *e;
	bool have = false;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)parent);
	d = opendir(dir);
	if (!d)
		return true;	/* gone: no children */
	while ((e = readdir(d))) {
		long cur = -1;
		ssize_t n;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/children", dir, e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		have = true;
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			for (ssize_t i = 0; i < n; i++) {
				if (buf[i] >= '0' && buf[i] <= '9') {
					cur = (cur < 0 ? 0 : cur * 10) + (buf[i] - '0');
				} else if (cur >= 0) {
					pidset_add(s, (pid_t)cur, parent);
					cur = -1;
				}
			}
		}
		if (cur >= 0)
			pidset_add(s, (pid_t)cur, parent);
		close(fd);
	}
	closedir(d);
	return have || pid != 0;
}

/* Without children files: every process's parent, from its stat. */
static void scan_all(struct pidset *s)
{
	struct pidset all = { 0 };
	struct dirent *e;
	DIR *d = opendir("/proc");

	while (d && (e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name), ppid, sid;
		char state;

		if (pid > 0 && proc_stat(pid, &state, &ppid, &sid) == 0)
			pidset_add(&all, pid, ppid);
	}
	if (d)
		closedir(d);
	pidset_add(s, getpid(), 0);	/* the root, removed below */
	for (size_t i = 0; i < s->n; i++)
		for (size_t j = 0; j < all.n; j++)
			if (all.parent[j] == s->pid[i])
				pidset_add(s, all.pid[j], s->pid[i]);
	pidset_del(s, getpid());
	pidset_free(&all);
}

/* Have we any child, exited or not? As subreaper, none means no
 * descendant either: one syscall instead of a walk. */
static bool have_children(void)
{
	siginfo_t si;

	return waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT) == 0 ||
	       errno != ECHILD;
}

/* Every descendant of this process, into s (emptied first). */
static void descendants(struct pidset *s)
{
	s->n = 0;
	if (!have_children() || !proc_ours())
		return;
	if (!add_children(s, 0)) {
		scan_all(s);
		return;
	}
	for (size_t i = 0; i < s->n; i++)
		add_children(s, s->pid[i]);
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int fd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

/*
 * sig to pid, found as a child of parent: through a pidfd, once pid is
 * known to be that process still (see the head of this file). A zombie is
 * not signalled (it has ended). true: sent.
 */
static bool signal_child(pid_t pid, pid_t parent, int sig)
{
	pid_t ppid, sid;
	char state;
	bool ok;
	int fd = pidfd_open_(pid);

	if (fd < 0)
		return false;
	ok = proc_stat(pid, &state, &ppid, &sid) == 0 && state != 'Z' &&
	     (ppid == parent || ppid == getpid()) && pidfd_signal(fd, sig) == 0;
	close(fd);
	return ok;
}

/* --- cgroups ---------------------------------------------------------------- */

/* The cgroup2 mount point (cached), or NULL. */
static const char *cg_mount(void)
{
	static char mnt[PATH_MAX];
	static int state;	/* 0 unknown, 1 found, -1 none */
	char line[1024];
	FILE *f;

	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE))
		return state > 0 ? mnt : NULL;
	f = fopen("/proc/self/mountinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		char root[PATH_MAX], point[PATH_MAX], type[32];
		char *sep = strstr(line, " - ");

		/* root within the filesystem must be "/": paths in
		 * /proc/self/cgroup are from the hierarchy's root. */
		if (!sep || sscanf(line, "%*s %*s %*s %4095s %4095s", root, point) != 2 ||
		    sscanf(sep + 3, "%31s", type) != 1 || strcmp(type, "cgroup2") ||
		    strcmp(root, "/") || strchr(point, '\\'))
			continue;
		snprintf(mnt, sizeof(mnt), "%s", point);
		__atomic_store_n(&state, 1, __ATOMIC_RELEASE);
		break;
	}
	if (f)
		fclose(f);
	if (!__atomic_load_n(&state, __ATOMIC_ACQUIRE))
		__atomic_store_n(&state, -1, __ATOMIC_RELEASE);
	return state > 0 ? mnt : NULL;
}

/* Ours, as cg_of(0) read it last; "" when not known (we moved). */
static char self_cg[PATH_MAX];
static pthread_mutex_t self_cg_lock = PTHREAD_MUTEX_INITIALIZER;

/* The cgroup2 directory pid (0: us) is in. 0 or -1. */
static int cg_of(pid_t pid, char *out, size_t n)
{
	const char *mnt = cg_mount();
	char path[64], line[PATH_MAX];
	int ret = -1;
	FILE *f;

	if (!mnt)
		return -1;
	if (!pid) {
		/* Moved only by us (cg_move), which forgets it: read it once. */
		pthread_mutex_lock(&self_cg_lock);
		if (self_cg[0] && (size_t)snprintf(out, n, "%s", self_cg) < n)
			ret = 0;
		pthread_mutex_unlock(&self_cg_lock);
		if (ret == 0)
			return 0;
	}
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/cgroup");
	f = fopen(path, "re");
	while (f && ret && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::/", 4))
			continue;
		line[strcspn(line, "\n")] = '\0';
		if ((size_t)snprintf(out, n, "%s%s", mnt, strcmp(line + 3, "/") ? line + 3 : "") < n)
			ret = 0;
	}
	if (f)
		fclose(f);
	if (!pid && ret == 0) {
		pthread_mutex_lock(&self_cg_lock);
		snprintf(self_cg, sizeof(self_cg), "%s", out);
		pthread_mutex_unlock(&self_cg_lock);
	}
	return ret;
}

static void cg_forget_self(void)
{
	pthread_mutex_lock(&self_cg_lock);
	self_cg[0] = '\0';
	pthread_mutex_unlock(&self_cg_lock);
}

static int cg_write(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX + 32];
	size_t len = strlen(text);
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		ret = -errno;
	close(fd);
	return ret;
}

static int cg_move(const char *dir, pid_t pid)
{
	char text[24];

	if (pid == getpid())
		cg_forget_self();
	snprintf(text, sizeof(text), "%d", (int)pid);
	return cg_write(dir, "cgroup.procs", text);
}

/* SIGKILL to everything in dir and below, in one step (Linux 5.14+). */
static int cg_kill(const char *dir)
{
	return cg_write(dir, "cgroup.kill", "1");
}

/* Wait until nothing is in dir and below (cgroup.events). 0, -ETIMEDOUT,
 * or -errno (no such cgroup: 0). */
static int cg_wait_empty(const char *dir, double deadline)
{
	char path[PATH_MAX + 32], buf[256];
	int fd, ret = -ETIMEDOUT;

	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLPRI };
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		double left = deadline - mono_now();

		if (n < 0)
			break;
		buf[n] = '\0';
		if (strstr(buf, "populated 0")) {
			ret = 0;
			break;
		}
		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) < 0)
			break;
	}
	close(fd);
	return ret;
}

/* Remove dir and the cgroups below it, deepest first. 0 or -errno. */
static int cg_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char sub[PATH_MAX];

		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) < sizeof(sub))
			cg_remove(sub);
	}
	if (d)
		closedir(d);
	return rmdir(dir) == 0 || errno == ENOENT ? 0 : -errno;
}

/* sig to every process in dir and below that is still there. Returns how
 * many got it. */
static int cg_signal(const char *dir, int sig)
{
	char path[PATH_MAX + 32], in[PATH_MAX];
	size_t dlen = strlen(dir);
	struct dirent *e;
	int count = 0, pid;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	while (f && fscanf(f, "%d", &pid) == 1) {
		int fd = pidfd_open_(pid);

		if (fd < 0)
			continue;
		/* Still in there (not a number reused by someone else)? */
		if (cg_of(pid, in, sizeof(in)) == 0 && !strncmp(in, dir, dlen) &&
		    (in[dlen] == '\0' || in[dlen] == '/') && pidfd_signal(fd, sig) == 0)
			count++;
		close(fd);
	}
	if (f)
		fclose(f);
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(in, sizeof(in), "%s/%s", dir, e->d_name) < sizeof(in))
			count += cg_signal(in, sig);
	}
	if (d)
		closedir(d);
	return count;
}

/* <our cgroup>/mg.<pid>: where child pid lives. 0 or -1. */
static int cg_child_dir(pid_t pid, char *out, size_t n)
{
	char self[PATH_MAX];

	if (cg_of(0, self, sizeof(self)) < 0 ||
	    (size_t)snprintf(out, n, "%s/mg.%d", self, (int)pid) >= n)
		return -1;
	return 0;
}

/* Our own cgroup, if we made one. */
static bool cg_own(char *out, size_t n)
{
	if (__atomic_load_n(&own_state, __ATOMIC_ACQUIRE) <= 0)
		return false;
	snprintf(out, n, "%s", own_cg);
	return true;
}

/* Move us out of dir (into its parent) if we are in it: then cgroup.kill
 * on dir does not kill us. 0, or -errno (we are still in it). */
static int cg_leave(const char *dir)
{
	char cur[PATH_MAX], up[PATH_MAX];
	char *slash;

	if (cg_of(0, cur, sizeof(cur)) < 0)
		return -ENOENT;
	if (strcmp(cur, dir))
		return 0;
	snprintf(up, sizeof(up), "%s", dir);
	slash = strrchr(up, '/');
	if (!slash || slash == up)
		return -EINVAL;
	*slash = '\0';
	return cg_move(up, getpid());
}

/* Make dir as a cgroup of ours: created, with cgroup.kill (5.14+). */
static int cg_make(const char *dir)
{
	char path[PATH_MAX + 32];

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
	if (access(path, W_OK) < 0) {
		int e = errno;

		rmdir(dir);
		return -e;
	}
	return 0;
}

/* --- in an agent ------------------------------------------------------------- */

void tree_agent_init(void)
{
	/*
	 * A process group of our own (the tool's terminal signals go to its
	 * foreground group, not to us), not a session: with the scheduler's
	 * autogroups (CONFIG_SCHED_AUTOGROUP, on by default) every session is
	 * a scheduling group of its own, and creating a local context and
	 * calling it once took twice as long on a busy machine (focused
	 * measure: 7-12 ms against 3.7-3.9 without, load ~6). An agent that
	 * leads a session already (sshd made it one) keeps it. Commands lead
	 * sessions of their own (agent/builtins.c).
	 */
	if (getsid(0) != getpid() && !keep_group)
		setpgid(0, 0);
	/* Orphans below us come to us, not to init: the tree stays ours. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (wake_fd < 0)
		wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	is_agent = true;
}

void tree_agent_keep_group(void)
{
	keep_group = true;
}

void tree_reset_after_fork(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	memcpy(&tree_lock, &fresh, sizeof(fresh));
	memcpy(&spawn_lock, &fresh, sizeof(fresh));
	memcpy(&self_cg_lock, &fresh, sizeof(fresh));
	self_cg[0] = '\0';	/* our parent may move us before BOOT */
	term_begun = false;
	term_signalled = false;
	term_deadline = 0;
	/* Closed with every other inherited fd (master/local.c). */
	wake_fd = -1;
	pidset_free(&ended);
	pidset_free(&watched);
	pidset_free(&killedset);
	is_agent = false;
	keep_group = false;
	own_state = 0;
	own_remove = false;
	own_cg[0] = '\0';
	for (int i = 0; i < TREE_TMPFILES; i++)
		tmpfiles[i][0] = '\0';
}

void tree_cgroup_config(bool allowed, bool remove_at_exit)
{
	pthread_mutex_lock(&tree_lock);
	if (!allowed && own_state == 0)
		own_state = -1;
	own_remove = remove_at_exit;
	pthread_mutex_unlock(&tree_lock);
}

void tree_cgroup_remove_at_exit(void)
{
	pthread_mutex_lock(&tree_lock);
	own_remove = true;
	pthread_mutex_unlock(&tree_lock);
}

void tree_cgroup_own(void)
{
	char dir[PATH_MAX];

	if (!is_agent || __atomic_load_n(&own_state, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&tree_lock);
	if (own_state == 0) {
		own_state = -1;
		/* <our cgroup>/mg.<pid>: our parent finds it by that name. */
		if (cg_child_dir(getpid(), dir, sizeof(dir)) == 0 && cg_make(dir) == 0) {
			if (cg_move(dir, getpid()) == 0) {
				snprintf(own_cg, sizeof(own_cg), "%s", dir);
				__atomic_store_n(&own_state, 1, __ATOMIC_RELEASE);
			} else {
				rmdir(dir);
			}
		}
	}
	pthread_mutex_unlock(&tree_lock);
}

int tree_term_begin(void)
{
	struct pidset s = { 0 };
	int n = 0;

	pthread_mutex_lock(&tree_lock);
	if (term_begun) {
		pthread_mutex_unlock(&tree_lock);
		return 0;
	}
	term_deadline = mono_now() + TREE_GRACE_S;
	/* Before any SIGTERM: a call it cuts short sees it (agent.c). */
	__atomic_store_n(&term_begun, true, __ATOMIC_RELEASE);
	descendants(&s);
	for (size_t i = 0; i < s.n; i++)
		if (signal_child(s.pid[i], s.parent[i], SIGTERM)) {
			pidset_add(&ended, s.pid[i], s.parent[i]);
			n++;
		}
	/* Only now mg.run signals its command's group itself: the walk
	 * counted it first. */
	__atomic_store_n(&term_signalled, true, __ATOMIC_RELEASE);
	if (wake_fd >= 0) {
		uint64_t one = 1;

		if (write(wake_fd, &one, sizeof(one)) < 0)
			LOG_DEBUG("tree: cannot wake mg.run: %s", strerror(errno));
	}
	pthread_mutex_unlock(&tree_lock);
	pidset_free(&s);
	return n;
}

bool tree_ending(void)
{
	return __atomic_load_n(&term_begun, __ATOMIC_ACQUIRE);
}

bool tree_signalled(void)
{
	return __atomic_load_n(&term_signalled, __ATOMIC_ACQUIRE);
}

double tree_deadline(void)
{
	double d;

	pthread_mutex_lock(&tree_lock);
	d = term_deadline;
	pthread_mutex_unlock(&tree_lock);
	return d;
}

int tree_wake_fd(void)
{
	return wake_fd;
}

void tree_kill_now(void)
{
	struct pidset s = { 0 };
	char own[PATH_MAX];

	pthread_mutex_lock(&tree_lock);
	if (!term_begun) {
		term_deadline = mono_now();
		__atomic_store_n(&term_begun, true, __ATOMIC_RELEASE);
		__atomic_store_n(&term_signalled, true, __ATOMIC_RELEASE);
	}
	/* One step for what is in our cgroup, once we are out of it. */
	if (cg_own(own, sizeof(own)) && cg_leave(own) == 0)
		cg_kill(own);
	descendants(&s);
	for (size_t i = 0; i < s.n; i++) {
		if (!signal_child(s.pid[i], s.parent[i], SIGKILL))
			continue;
		pidset_add(&ended, s.pid[i], s.parent[i]);
		pidset_add(&killedset, s.pid[i], s.parent[i]);
	}
	pthread_mutex_unlock(&tree_lock);
	pidset_free(&s);
}

/*
 * Reap our children until none is left (true) or deadline passes (false).
 * As subreaper, no child left means no descendant left. Between looks we
 * sleep on our children's pidfds, at most 50 ms: a grandchild that is
 * reparented to us meanwhile is seen at the next look.
 */
static bool wait_gone(double deadline)
{
	struct pidset s = { 0 };
	bool gone = false;

	for (;;) {
		struct pollfd p[64];
		size_t np = 0;
		double left;
		pid_t r;

		while ((r = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (r < 0 && errno != EINTR) {
			gone = true;	/* ECHILD: none left */
			break;
		}
		left = deadline - mono_now();
		if (left <= 0)
			break;
		s.n = 0;
		if (proc_ours())
			add_children(&s, 0);
		for (size_t i = 0; i < s.n && np < 64; i++) {
			int fd = pidfd_open_(s.pid[i]);

			if (fd >= 0)
				p[np++] = (struct pollfd){ .fd = fd, .events = POLLIN };
		}
		poll(p, np, left < 0.05 ? (int)(left * 1000) + 1 : 50);
		for (size_t i = 0; i < np; i++)
			close(p[i].fd);
	}
	pidset_free(&s);
	return gone;
}

void tree_end(struct tree_result *ret)
{
	struct pidset s = { 0 };
	char own[PATH_MAX];

	tree_term_begin();
	if (!wait_gone(tree_deadline())) {
		tree_kill_now();
		wait_gone(mono_now() + TREE_KILL_WAIT_S);
	}
	descendants(&s);
	/* Our cgroup: where nobody else will (an agent of ssh, sudo, su,
	 * doas), we leave it and remove it, and what our children left below
	 * it; a local or fork child's parent removes it once it reaps us. */
	if (own_remove && cg_own(own, sizeof(own)) && cg_leave(own) == 0) {
		if (cg_wait_empty(own, mono_now() + 1.0) < 0)
			cg_kill(own);
		if (cg_wait_empty(own, mono_now() + 1.0) == 0)
			cg_remove(own);
	}
	pthread_mutex_lock(&tree_lock);
	for (int i = 0; i < TREE_TMPFILES; i++) {
		if (tmpfiles[i][0])
			unlink(tmpfiles[i]);
		tmpfiles[i][0] = '\0';
	}
	ret->ended = (int)ended.n;
	ret->killed = (int)killedset.n;
	ret->left = (int)s.n;
	pthread_mutex_unlock(&tree_lock);
	pidset_free(&s);
}

void tree_reap_orphans(void)
{
	pthread_mutex_lock(&spawn_lock);
	for (;;) {
		siginfo_t si = { 0 };
		pid_t ppid, sid, mysid = getsid(0);
		char state;
		bool theirs;

		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid <= 0)
			break;
		pthread_mutex_lock(&tree_lock);
		theirs = pidset_has(&watched, si.si_pid);
		pthread_mutex_unlock(&tree_lock);
		/*
		 * A child a context factory watches is its to reap; one in our
		 * own session is a child some function here forked and may
		 * still wait for. Orphans that came to us are in the session
		 * of the command they came from, or one of their own.
		 */
		if (theirs || proc_stat(si.si_pid, &state, &ppid, &sid) < 0 || sid == mysid)
			break;
		waitpid(si.si_pid, NULL, WNOHANG);
	}
	pthread_mutex_unlock(&spawn_lock);
}

/* --- in a parent --------------------------------------------------------------- */

void tree_child_watch(pid_t pid)
{
	pthread_mutex_lock(&tree_lock);
	pidset_add(&watched, pid, getpid());
	pthread_mutex_unlock(&tree_lock);
}

void tree_spawn_begin(void)
{
	pthread_mutex_lock(&spawn_lock);
}

void tree_spawn_end(pid_t pid)
{
	if (pid > 0)
		tree_child_watch(pid);
	pthread_mutex_unlock(&spawn_lock);
}

void tree_child_kill(pid_t pid)
{
	char dir[PATH_MAX];

	if (pid <= 0)
		return;
	/* Where it has made its cgroup (it ran something); else only it. */
	if (cg_mount() && cg_child_dir(pid, dir, sizeof(dir)) == 0)
		cg_kill(dir);
	kill(pid, SIGKILL);
}

int tree_child_reaped(pid_t pid)
{
	char dir[PATH_MAX];
	int n;

	pthread_mutex_lock(&tree_lock);
	pidset_del(&watched, pid);
	pthread_mutex_unlock(&tree_lock);
	if (!cg_mount() || cg_child_dir(pid, dir, sizeof(dir)) < 0)
		return 0;
	if (rmdir(dir) == 0 || errno != EBUSY)
		return 0;
	/* It went without ending its tree (killed?): what is left gets
	 * SIGTERM now and cgroup.kill after the grace. */
	n = cg_signal(dir, SIGTERM);
	if (n == 0 && cg_wait_empty(dir, mono_now()) == 0 && cg_remove(dir) == 0)
		return 0;
	LOG_INFO("child %d left %d process%s in %s: SIGTERM, SIGKILL after %g s", (int)pid, n,
		 n == 1 ? "" : "es", dir, TREE_GRACE_S);
	return 1;
}

int tree_child_finish(pid_t pid, bool block)
{
	char dir[PATH_MAX];

	if (cg_child_dir(pid, dir, sizeof(dir)) < 0)
		return 0;
	cg_kill(dir);
	if (cg_wait_empty(dir, block ? mono_now() + TREE_KILL_WAIT_S : mono_now()) < 0) {
		if (!block)
			return -EAGAIN;
		LOG_WARN("tree: processes in %s did not end after SIGKILL; left it", dir);
		return 0;
	}
	cg_remove(dir);
	return 0;
}

/* --- temporary files -------------------------------------------------------------- */

int tree_tmpfile_add(const char *path)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&tree_lock);
	for (int i = 0; i < TREE_TMPFILES && ret; i++) {
		if (tmpfiles[i][0])
			continue;
		snprintf(tmpfiles[i], sizeof(tmpfiles[i]), "%s", path);
		ret = 0;
	}
	pthread_mutex_unlock(&tree_lock);
	return ret;
}

void tree_tmpfile_del(const char *path)
{
	pthread_mutex_lock(&tree_lock);
	for (int i = 0; i < TREE_TMPFILES; i++)
		if (!strcmp(tmpfiles[i], path))
			tmpfiles[i][0] = '\0';
	pthread_mutex_unlock(&tree_lock);
}
