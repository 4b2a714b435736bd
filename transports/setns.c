// SPDX-License-Identifier: MIT
/*
 * setns.c — mg_setns(): a context inside another process's namespaces on
 * this host (a podman, docker or lxc container's init, or any pid),
 * started without the container's CLI on the way.
 *
 * Everything about the target is read and opened here first, in the
 * parent: its pid (asked of the container's CLI), its uid, gid and groups
 * (/proc/PID/status), its namespaces (/proc/PID/ns/), root and cwd,
 * environment, and the cgroup.procs file of each of its cgroups; and the
 * image (this program, or opts->image), opened before anything changes.
 * Then a forked child, single-threaded:
 *  1. joins the target's cgroups (in every hierarchy: this host may be
 *     hybrid), while it still sees the host's /sys/fs/cgroup;
 *  2. enters the user namespace when it differs from ours, then mount,
 *     pid, net, uts, ipc, time and cgroup (each only when different);
 *  3. takes the target's root (chroot) and cwd;
 *  4. starts the agent's process (a pid and a time namespace apply to
 *     children only) as a child of the parent's (CLONE_PARENT), sharing
 *     its own memory until the exec as posix_spawn's child does, says its
 *     pid to the parent and ends: the parent watches and reaps the agent
 *     itself, as it does a local child;
 *  5. the agent: takes the target's capability bounding and ambient sets,
 *     groups, gid and uid, then execs the image from the fd opened in the
 *     parent (execveat AT_EMPTY_PATH: no path inside the container decides
 *     what runs).
 * The agent is not dumpable from its exec on (setns_image_copy): until its
 * BOOT, after which it makes itself non-dumpable, it would otherwise be a
 * process of the container's uid that any process of that uid there may
 * ptrace or read through /proc/PID/mem (attacks/test_containers).
 * The channel is the SEQPACKET socketpair start_prepare makes, so the
 * eBPF channel filter (hooks_child_channel) covers it as a local child's.
 * The sandbox BOOT carries applies inside, on top of all this.
 *
 * Privilege boundary: this runs as root (it needs CAP_SYS_ADMIN and
 * CAP_SYS_CHROOT) and lands as the target's uid in the target's world.
 * Nothing the container controls is trusted before the child has
 * dropped to the target's credentials, except what the kernel gives
 * (the /proc/PID links and files, read here as root; the environment,
 * which only goes to a process running as the target anyway). The pid
 * comes from the container's CLI, run as we are.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <mitogen/transport.h>

#include "agent/agent.h"
#include "core/log.h"
#include "core/message.h"
#include "master/master.h"
#include "sandbox/sandbox.h"
#include "transports/transport.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

#define SETNS_FD_MIN 10		/* everything we carry sits above 0..3 */
#define SETNS_CG_MAX 16
#define SETNS_ENV_MAX 128
#define SETNS_GROUPS_MAX 64

static const char *const no_prompts[] = { NULL };

/* The setns row of the method table (transports/methods.c): no program,
 * no stdio; see setns_start. */
const struct transport setns_transport = {
	.kind = "setns", .no_stdio = true, .privileged = true, .prompts = no_prompts,
	.from_value = container_from_value,
};

static const struct {
	const char *name;
	int type;
} setns_kinds[] = {
	/* user first: the others are then entered with its capabilities */
	{ "user", CLONE_NEWUSER }, { "mnt", CLONE_NEWNS }, { "pid", CLONE_NEWPID },
	{ "net", CLONE_NEWNET }, { "uts", CLONE_NEWUTS }, { "ipc", CLONE_NEWIPC },
	{ "time", CLONE_NEWTIME }, { "cgroup", CLONE_NEWCGROUP },
};
#define SETNS_NS_N (sizeof(setns_kinds) / sizeof(setns_kinds[0]))

/* What the child needs, all ready before fork(). */
struct setns_plan {
	pid_t target;
	int ns[SETNS_NS_N];		/* -1: same as ours, not entered */
	int root, cwd, img;
	int cg[SETNS_CG_MAX];
	size_t ncg;
	uid_t uid;
	gid_t gid;
	gid_t groups[SETNS_GROUPS_MAX];
	int ngroups;
	uint64_t capbnd;		/* the target's bounding set */
	uint64_t capdrop;		/* ours minus it: what the agent drops */
	uint64_t capamb;		/* and ambient set */
	char *envbuf;
	char *env[SETNS_ENV_MAX + 3];
	char argv0[128];
};

static int fd_high(int fd)
{
	int h;

	if (fd < 0 || fd >= SETNS_FD_MIN)
		return fd;
	h = fcntl(fd, F_DUPFD_CLOEXEC, SETNS_FD_MIN);
	close(fd);
	return h;
}

static void plan_free(struct setns_plan *p)
{
	for (size_t i = 0; i < SETNS_NS_N; i++)
		if (p->ns[i] >= 0)
			close(p->ns[i]);
	for (size_t i = 0; i < p->ncg; i++)
		close(p->cg[i]);
	if (p->root >= 0)
		close(p->root);
	if (p->cwd >= 0)
		close(p->cwd);
	if (p->img >= 0)
		close(p->img);
	free(p->envbuf);
}

/*
 * The image the agent is exec'd from: a copy of path in a sealed memfd,
 * mode 0111 while a start is between its fork and the agent's hello
 * (setns_image_get/put), 0555 otherwise.
 *
 * Why: exec makes a process dumpable again (PR_SET_DUMPABLE does not
 * survive it), unless the image is one the process cannot read; then the
 * kernel (would_dump, begin_new_exec) leaves it at fs.suid_dumpable (0 or
 * 2: ptrace and /proc/PID/mem need CAP_SYS_PTRACE) and ties its mm to a
 * user namespace that owns the file (here the host's). Our own image is
 * readable by all, so the agent would be open to every process of its uid
 * in the container until its BOOT: the copy is not. The effective set of
 * a root target loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH for the
 * exec (setns_child), for the same reason; the exec gives root its
 * capabilities back. Sealed: nothing writes it after the copy. Returns
 * the fd (high, close-on-exec) or -errno with why.
 */
static int setns_image_copy(const char *path, char *why, size_t size)
{
	struct stat st;
	off_t left;
	int src, mfd;

	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0 || fstat(src, &st) < 0) {
		int e = errno;

		snprintf(why, size, "cannot open the image %s: %s", path, strerror(e));
		if (src >= 0)
			close(src);
		return -e;
	}
	mfd = memfd_create("mitogen", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (mfd < 0 && errno == EINVAL)	/* before Linux 6.3: no MFD_EXEC */
		mfd = memfd_create("mitogen", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0) {
		int e = errno;

		snprintf(why, size, "memfd_create: %s", strerror(e));
		close(src);
		return -e;
	}
	for (left = st.st_size; left > 0;) {
		ssize_t n = sendfile(mfd, src, NULL, (size_t)left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			snprintf(why, size, "copying the image %s: %s", path, strerror(e));
			close(src);
			close(mfd);
			return -e;
		}
		left -= n;
	}
	close(src);
	if (fchmod(mfd, 0111) < 0 ||
	    fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		int e = errno;

		snprintf(why, size, "sealing the image's copy: %s", strerror(e));
		close(mfd);
		return -e;
	}
	return fd_high(mfd);
}

/*
 * The copy is made once per process and image (4 MB: 1.4-2.4 ms a start
 * here), and shared by every setns start: it is sealed (nothing can
 * change it) and every agent runs the same bytes. Its mode is what
 * decides each agent's dumpability at its exec: 0111 from the first
 * start in flight until the last one's agent has said hello (busy), then
 * 0555, so that an agent can read its own image for the contexts it
 * starts. A new copy when the file at path is no longer the one copied
 * (another path, device, inode, size or mtime) or the target is in
 * another pid namespace (another container), and no start is in flight.
 *
 * Why per pid namespace: the copy is reachable from a container as
 * /proc/AGENT/exe by a process that may ptrace the agent (root of a
 * container with CAP_SYS_PTRACE; never the agent's own commands
 * otherwise: it is not dumpable), and root with CAP_FOWNER could chmod
 * it to 0555 while another start is in flight. Shared across containers,
 * that would make another container's agent dumpable before its BOOT;
 * shared within one pid namespace, it gives nothing the attacker had not
 * (CAP_SYS_PTRACE reaches that agent anyway).
 */
static struct {
	pthread_mutex_t lock;
	int fd;				/* the sealed copy, or -1 */
	char path[PATH_MAX];		/* of the file copied */
	struct stat st;			/* ...as it was then */
	dev_t ns_dev;			/* the targets' pid namespace */
	ino_t ns_ino;
	unsigned busy;			/* starts between fork and hello */
} setns_img = { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1 };

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* A copy of the image at path for one start, mode 0111 until
 * setns_image_put: an fd of its own (high, close-on-exec), or -errno
 * with why; *cached: it is the shared copy. */
static int setns_image_get(const char *path, pid_t target, bool *cached, char *why,
			   size_t size)
{
	struct stat st, ns;
	char nspath[64];
	int fd, ret;
	bool other;

	snprintf(nspath, sizeof(nspath), "/proc/%d/ns/pid", (int)target);
	if (stat(nspath, &ns) < 0) {
		snprintf(why, size, "%s: %s", nspath, strerror(errno));
		return -errno;
	}
	pthread_mutex_lock(&setns_img.lock);
	if (stat(path, &st) < 0) {
		ret = -errno;
		snprintf(why, size, "cannot open the image %s: %s", path, strerror(errno));
		goto out;
	}
	other = strcmp(setns_img.path, path) || ns.st_dev != setns_img.ns_dev ||
		ns.st_ino != setns_img.ns_ino;
	/* Another image or container while starts are in flight: a copy of
	 * its own, made and dropped as before (not cached). */
	if (setns_img.busy && other) {
		pthread_mutex_unlock(&setns_img.lock);
		*cached = false;
		return setns_image_copy(path, why, size);
	}
	*cached = true;
	/* Replaced only when no start is in flight: one copy's mode to
	 * keep right (those in flight meanwhile run what it was then). */
	if (setns_img.fd < 0 || (!setns_img.busy && (other || !same_file(&st, &setns_img.st)))) {
		fd = setns_image_copy(path, why, size);
		if (fd < 0) {
			ret = fd;
			goto out;
		}
		if (setns_img.fd >= 0)
			close(setns_img.fd);
		setns_img.fd = fd;
		snprintf(setns_img.path, sizeof(setns_img.path), "%s", path);
		setns_img.st = st;
		setns_img.ns_dev = ns.st_dev;
		setns_img.ns_ino = ns.st_ino;
	} else if (!setns_img.busy && fchmod(setns_img.fd, 0111) < 0) {
		ret = -errno;
		snprintf(why, size, "chmod of the image's copy: %s", strerror(errno));
		goto out;
	}
	ret = fcntl(setns_img.fd, F_DUPFD_CLOEXEC, SETNS_FD_MIN);
	if (ret < 0) {
		ret = -errno;
		snprintf(why, size, "dup: %s", strerror(errno));
		goto out;
	}
	setns_img.busy++;
out:
	pthread_mutex_unlock(&setns_img.lock);
	return ret;
}

/* A start that got fd is over: its agent has run the image (it said
 * hello) or is gone. The last one in flight makes the copy readable. */
static void setns_image_put(int fd, bool cached)
{
	if (!cached) {
		if (fchmod(fd, 0555) < 0)
			LOG_DEBUG("setns: chmod of the image's copy: %s", strerror(errno));
		close(fd);
		return;
	}
	pthread_mutex_lock(&setns_img.lock);
	if (!--setns_img.busy && fchmod(fd, 0555) < 0)
		LOG_DEBUG("setns: chmod of the image's copy: %s", strerror(errno));
	pthread_mutex_unlock(&setns_img.lock);
	close(fd);
}

/* In the child: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
 * effective set, so that the exec finds the image unreadable (see
 * setns_image_copy). Permitted and inheritable stay. */
static int setns_drop_dac(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	d[0].effective &= ~((1U << CAP_DAC_OVERRIDE) | (1U << CAP_DAC_READ_SEARCH));
	return syscall(SYS_capset, &h, d) < 0 ? -1 : 0;
}

/*
 * Ask the container's CLI for its main process: `podman|docker inspect
 * --format {{.State.Pid}} NAME`, `lxc-info -H -p -n NAME`. >0, or -errno
 * with why (the CLI's own words when it failed).
 */
static pid_t setns_ask_pid(const struct ctr_opts *co, char *why, size_t size)
{
	const char *kind = co->ns;
	const char *argv[8];
	char out[512] = "";
	size_t got = 0;
	posix_spawn_file_actions_t fa;
	int pfd[2], status = 0, ret;
	pid_t pid;
	long v;
	char *end;

	if (!strcmp(kind, "lxc")) {
		const char *a[] = { co->path ? co->path : "lxc-info", "-H", "-p", "-n",
				    co->container, NULL };

		memcpy(argv, a, sizeof(a));
	} else {
		const char *a[] = { co->path ? co->path : kind, "inspect", "--format",
				    "{{.State.Pid}}", co->container, NULL };

		memcpy(argv, a, sizeof(a));
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(why, size, "pipe: %s", strerror(errno));
		return -errno;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	ret = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (ret) {
		close(pfd[0]);
		snprintf(why, size, "cannot run %s: %s", argv[0], strerror(ret));
		return -ret;
	}
	for (;;) {
		ssize_t n = read(pfd[0], out + got, sizeof(out) - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(out) - 1)
			break;
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	out[got] = '\0';
	while (got && (out[got - 1] == '\n' || out[got - 1] == ' '))
		out[--got] = '\0';
	for (char *q = out; *q; q++)
		if (*q == '\n')
			*q = ' ';
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		snprintf(why, size, "%.100s said: %.380s", argv[0], *out ? out : "(nothing)");
		return -ENOENT;
	}
	errno = 0;
	v = strtol(out, &end, 10);
	if (errno || end == out || *end || v < 0) {
		snprintf(why, size, "%.100s said: %.380s", argv[0], out);
		return -EPROTO;
	}
	if (v == 0) {
		snprintf(why, size, "%s '%s' is not running", kind, co->container);
		return -ESRCH;
	}
	return (pid_t)v;
}

/* Uid:, Gid:, Groups: of /proc/PID/status (the effective ids). */
static int setns_read_ids(struct setns_plan *p, char *why, size_t size)
{
	char path[64], line[1024];
	bool have_uid = false, have_gid = false, have_bnd = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)p->target);
	f = fopen(path, "re");
	if (!f) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long r, e;

		if (sscanf(line, "Uid: %lu %lu", &r, &e) == 2) {
			p->uid = (uid_t)e;
			have_uid = true;
		} else if (sscanf(line, "Gid: %lu %lu", &r, &e) == 2) {
			p->gid = (gid_t)e;
			have_gid = true;
		} else if (!strncmp(line, "CapBnd:", 7)) {
			p->capbnd = strtoull(line + 7, NULL, 16);
			have_bnd = true;
		} else if (!strncmp(line, "CapAmb:", 7)) {
			p->capamb = strtoull(line + 7, NULL, 16);
		} else if (!strncmp(line, "Groups:", 7)) {
			char *q = line + 7, *end;

			for (;;) {
				unsigned long g = strtoul(q, &end, 10);

				if (end == q || p->ngroups == SETNS_GROUPS_MAX)
					break;
				p->groups[p->ngroups++] = (gid_t)g;
				q = end;
			}
		}
	}
	fclose(f);
	if (!have_uid || !have_gid || !have_bnd) {
		snprintf(why, size, "%s: no Uid:/Gid:/CapBnd: line", path);
		return -EPROTO;
	}
	return 0;
}

/*
 * Our bounding set, read once (it never grows: a cap dropped since is
 * dropped again harmlessly). The agent drops ours minus the target's,
 * not every cap the target lacks up to 63 (23 more prctl calls here,
 * each failing with EINVAL past the kernel's last cap).
 */
static uint64_t setns_our_bounding(void)
{
	static uint64_t ours;
	static bool known;
	uint64_t v = 0;

	if (__atomic_load_n(&known, __ATOMIC_ACQUIRE))
		return ours;
	for (int cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0)
			break;
		if (r)
			v |= 1ULL << cap;
	}
	ours = v;
	__atomic_store_n(&known, true, __ATOMIC_RELEASE);
	return v;
}

/* The target's namespaces that differ from ours, opened. */
static int setns_open_ns(struct setns_plan *p, char *why, size_t size)
{
	for (size_t i = 0; i < SETNS_NS_N; i++) {
		char path[64], self[64];
		struct stat a, b;
		int fd;

		p->ns[i] = -1;
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)p->target, setns_kinds[i].name);
		snprintf(self, sizeof(self), "/proc/self/ns/%s", setns_kinds[i].name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && access(self, F_OK) < 0)
			continue;	/* a kernel without it (time: before 5.6) */
		if (fd < 0) {
			snprintf(why, size, "%s: %s", path, strerror(errno));
			return -errno;
		}
		if (fstat(fd, &a) == 0 && stat(self, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			close(fd);	/* ours already */
			continue;
		}
		p->ns[i] = fd_high(fd);
	}
	return 0;
}

/* Where a hierarchy of /proc/PID/cgroup is mounted here: "0::" is the
 * unified one (/sys/fs/cgroup/unified on a hybrid host), "N:a,b:" a v1
 * one named by its controllers, "N:name=x:" a named one. */
static void cgroup_dir(const char *ctrl, const char *rel, char *buf, size_t size)
{
	if (!*ctrl) {
		if (access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) == 0)
			snprintf(buf, size, "/sys/fs/cgroup/unified%s", rel);
		else
			snprintf(buf, size, "/sys/fs/cgroup%s", rel);
	} else if (!strncmp(ctrl, "name=", 5)) {
		snprintf(buf, size, "/sys/fs/cgroup/%s%s", ctrl + 5, rel);
	} else {
		snprintf(buf, size, "/sys/fs/cgroup/%s%s", ctrl, rel);
	}
}

/* cgroup.procs of each of the target's cgroups, opened for writing. A
 * hierarchy not mounted here is skipped; one that is but refuses us
 * fails the start. */
static int setns_open_cgroups(struct setns_plan *p, char *why, size_t size)
{
	char path[64], line[1024];
	FILE *f;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)p->target);
	f = fopen(path, "re");
	if (!f) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return -errno;
	}
	while (!ret && fgets(line, sizeof(line), f) && p->ncg < SETNS_CG_MAX) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL, dir[1200];
		char procs[1300];
		int fd;

		if (!c2)
			continue;
		*c2 = '\0';
		c2[strcspn(c2 + 1, "\n") + 1] = '\0';
		if (strstr(c2 + 1, "/..") || c2[1] != '/')
			continue;
		cgroup_dir(c1 + 1, c2 + 1, dir, sizeof(dir));
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
		fd = open(procs, O_WRONLY | O_CLOEXEC);
		/* No such directory here (every cgroup has cgroup.procs). */
		if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) {
			LOG_DEBUG("setns: cgroup %s is not mounted here: not joined", dir);
			continue;
		}
		if (fd < 0) {
			snprintf(why, size, "cannot join cgroup %.300s: %s", dir, strerror(errno));
			ret = -errno;
			break;
		}
		p->cg[p->ncg++] = fd_high(fd);
	}
	fclose(f);
	return ret;
}

/* The target's environment (what its processes see: PATH, HOME), minus
 * ours (MITOGEN_*), plus the agent's fd and the sandbox's early word. */
static int setns_env(struct setns_plan *p, const char *sb_env, char *why, size_t size)
{
	char path[64];
	size_t len = 0, cap = 65536, n = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)p->target);
	p->envbuf = malloc(cap + 1);
	if (!p->envbuf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return -errno;
	}
	for (;;) {
		ssize_t r = read(fd, p->envbuf + len, cap - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == cap)
			break;
	}
	close(fd);
	p->envbuf[len] = '\0';
	for (size_t i = 0; i < len && n < SETNS_ENV_MAX; i += strlen(p->envbuf + i) + 1)
		if (p->envbuf[i] && strncmp(p->envbuf + i, "MITOGEN_", 8) &&
		    strchr(p->envbuf + i, '='))
			p->env[n++] = p->envbuf + i;
	p->env[n++] = (char *)AGENT_FD_ENV "=3";
	if (sb_env)
		p->env[n++] = (char *)sb_env;
	p->env[n] = NULL;
	return 0;
}

/* In the child: say what failed on stderr (the parent's log of it), go. */
static void __attribute__((noreturn)) child_die(const char *what, int e)
{
	const char *s = strerror(e);

	if (write(2, "setns: ", 7) < 0 || write(2, what, strlen(what)) < 0 ||
	    write(2, ": ", 2) < 0 || write(2, s, strlen(s)) < 0 || write(2, "\n", 1) < 0)
		_exit(127);
	_exit(127);
}

/*
 * Step 5, in the agent's process (async-signal-safe calls only): the
 * target's capabilities, groups and ids, then the exec. Never returns.
 * Runs in a child that shares the memory of the process that made it
 * (setns_child): it writes nothing there but its own stack, and that
 * process is suspended until the exec.
 */
static int __attribute__((noreturn)) setns_agent(void *arg)
{
	struct setns_plan *p = arg;
	sigset_t none;

	/*
	 * The target's capabilities, not ours: its bounding set (what root
	 * keeps across the exec below: the container's own limit) and its
	 * ambient set. Without this a command run in the context would have
	 * every capability of the host's root inside the container (mount,
	 * module loading...), which no process of the container has.
	 */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		child_die("clearing ambient capabilities", errno);
	for (int cap = 0; cap < 64; cap++)
		if ((p->capdrop & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			child_die("dropping a capability", errno);
	if (setgroups((size_t)p->ngroups, p->groups) < 0 && errno != EPERM)
		child_die("setgroups", errno);
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		child_die("setresgid", errno);
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		child_die("setresuid", errno);
	for (int cap = 0; cap < 64; cap++)
		if (p->capamb & (1ULL << cap))
			prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
	if (setns_drop_dac() < 0)
		child_die("dropping CAP_DAC_OVERRIDE for the exec", errno);
	/* Every signal was blocked for the clone (no handler of the master's
	 * runs here while we share that memory); the agent starts with none
	 * blocked, as before. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	syscall(SYS_execveat, p->img, "", (char *const[]){ p->argv0, NULL }, p->env,
		AT_EMPTY_PATH);
	child_die("exec", errno);
}

/* The agent's stack while it shares the forked child's memory (setns_agent). */
#define SETNS_AGENT_STACK (64 * 1024)

/* In the forked child (async-signal-safe calls only): steps 1-5 above;
 * the agent's pid to pidw. */
static void __attribute__((noreturn)) setns_child(struct setns_plan *p, int chan, int out,
						  int pidw)
{
	sigset_t none, all;
	pid_t pid;
	int devnull;
	void *stack;

	/* A copy of the master (its memory, its fds) about to enter the
	 * container: no process there may read it (the master is not
	 * dumpable either, unless MITOGEN_DUMPABLE=1 asked). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	sigemptyset(&none);
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &none, NULL);
	chan = fcntl(chan, F_DUPFD, SETNS_FD_MIN);
	out = fcntl(out, F_DUPFD, SETNS_FD_MIN);
	devnull = open("/dev/null", O_RDONLY);
	if (chan < 0 || out < 0 || devnull < 0 || dup2(devnull, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(out, 2) < 0 || dup2(chan, 3) < 0)
		_exit(127);
	/* Nothing of ours but fd 3 reaches the agent (ours above 3 are kept
	 * open until the exec, no longer). */
	syscall(SYS_close_range, 4U, ~0U, CLOSE_RANGE_CLOEXEC);
	for (size_t i = 0; i < p->ncg; i++)
		if (write(p->cg[i], "0", 1) != 1)
			child_die("joining the target's cgroup", errno);
	for (size_t i = 0; i < SETNS_NS_N; i++)
		if (p->ns[i] >= 0 && setns(p->ns[i], setns_kinds[i].type) < 0)
			child_die(setns_kinds[i].name, errno);
	if (fchdir(p->root) < 0 || chroot(".") < 0)
		child_die("chroot to the target's root", errno);
	if (fchdir(p->cwd) < 0 && chdir("/") < 0)
		child_die("chdir", errno);
	/*
	 * The agent's process: a child (a pid and a time namespace apply to
	 * children only), made the parent's child (CLONE_PARENT): the parent
	 * watches it, reaps it and has its status directly, as a local
	 * child's, and no waiter stands between them (one more process to
	 * wake and end at every context's end, holding a copy of the
	 * master's memory the while). It shares our memory until its exec, as
	 * posix_spawn's child does (CLONE_VM | CLONE_VFORK, on a stack of its
	 * own, every signal blocked so that no handler of the master's runs
	 * on it): no copy of the master's memory is made for it, none torn
	 * down at its exec, and we are suspended until it has exec'd or
	 * failed. A time namespace is then entered at the exec (Linux 6.0
	 * on); older kernels refuse CLONE_VM across one (EINVAL): a copy
	 * there. Our exit signal is the parent's SIGCHLD, and so is its.
	 */
	sigprocmask(SIG_SETMASK, &all, NULL);
	pid = -1;
	errno = EINVAL;
	stack = mmap(NULL, SETNS_AGENT_STACK, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack != MAP_FAILED) {
		pid = clone(setns_agent, (char *)stack + SETNS_AGENT_STACK,
			    CLONE_VM | CLONE_VFORK | CLONE_PARENT, p);
		if (pid < 0 && errno == EINVAL)
			pid = clone(setns_agent, (char *)stack + SETNS_AGENT_STACK, CLONE_PARENT,
				    p);
	}
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (pid < 0)
		child_die("starting the agent's process", errno);
	/* Its pid (as the parent sees it: we are in the parent's pid
	 * namespace) to the parent, which reaps us once the start is done. */
	if (write(pidw, &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
		_exit(127);
	_exit(0);
}

struct mg_context *setns_start(struct mg_router *r, const struct ctr_opts *co,
			       const struct mg_local_opts *lo, uint32_t id,
			       const struct mg_value *sandbox, struct mg_error *err)
{
	struct setns_plan p = { .root = -1, .cwd = -1, .img = -1 };
	struct mg_context *ctx;
	struct start st;
	char name[96], why[512], path[64], *sb_env = NULL;
	pid_t pid, agent = -1;
	int ret, img = -1, pidp[2] = { -1, -1 };
	bool cached = false;

	for (size_t i = 0; i < SETNS_NS_N; i++)
		p.ns[i] = -1;
	container_name(&setns_transport, co, name, sizeof(name));
	memset(&st, 0, sizeof(st));
	st.default_name = name;
	st.privileged = true;
	ret = start_prepare(&st, r, lo, id, sandbox, err);
	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	if (st.sandbox && sandbox_ns_wanted(st.sandbox)) {
		error_set(err, MG_ERR_STREAM, EINVAL,
			  "%s: sandbox: namespaces of its own cannot be combined with setns",
			  st.namebuf);
		goto fail;
	}
	if (st.sandbox)
		mg_map_set(st.sandbox, "ns_in", mg_int(0));
	if (co->pid) {
		p.target = (pid_t)co->pid;
	} else {
		pid_t t = setns_ask_pid(co, why, sizeof(why));

		if (t < 0) {
			error_set(err, MG_ERR_STREAM, (int)-t, "%s: %s:%s: %s", st.namebuf, co->ns,
				  co->container, why);
			goto fail;
		}
		p.target = t;
	}
	snprintf(path, sizeof(path), "/proc/%d/root", (int)p.target);
	p.root = fd_high(open(path, O_PATH | O_DIRECTORY | O_CLOEXEC));
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)p.target);
	p.cwd = fd_high(open(path, O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (p.root < 0 || p.cwd < 0) {
		error_set(err, MG_ERR_STREAM, errno == ENOENT ? ESRCH : errno,
			  "%s: process %d: %s", st.namebuf, (int)p.target,
			  errno == ENOENT ? "no such process" : strerror(errno));
		goto fail;
	}
	img = setns_image_get(st.image ? st.image : "/proc/self/exe", p.target, &cached, why,
			      sizeof(why));
	if (img < 0) {
		error_set(err, MG_ERR_STREAM, -img, "%s: %s", st.namebuf, why);
		img = -1;
		goto fail;
	}
	p.img = img;
	sb_env = sandbox_early_env(st.sandbox);
	if ((ret = setns_read_ids(&p, why, sizeof(why))) < 0 ||
	    (ret = setns_open_ns(&p, why, sizeof(why))) < 0 ||
	    (ret = setns_open_cgroups(&p, why, sizeof(why))) < 0 ||
	    (ret = setns_env(&p, sb_env, why, sizeof(why))) < 0) {
		error_set(err, MG_ERR_STREAM, -ret, "%s: process %d: %s", st.namebuf,
			  (int)p.target, ret == -ENOMEM ? "out of memory" : why);
		goto fail;
	}
	p.capdrop = setns_our_bounding() & ~p.capbnd;
	snprintf(p.argv0, sizeof(p.argv0), "mitogen:%s", st.namebuf);
	if (pipe2(pidp, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		error_set(err, MG_ERR_STREAM, errno, "%s: fork: %s", st.namebuf, strerror(errno));
		goto fail;
	}
	if (pid == 0)
		setns_child(&p, st.sv[1], st.out[1], fd_high(pidp[1]));
	close(pidp[1]);
	pidp[1] = -1;
	p.img = -1;
	plan_free(&p);
	free(sb_env);
	/*
	 * The agent is our child (setns_child): watch it from here on. The
	 * forked child says its pid once the agent has exec'd (or failed)
	 * and ends; when it ends without saying (it failed before: its
	 * status and stderr say why), it is the one watched.
	 */
	{
		/* Bounded as the greeting is: a container frozen (podman
		 * pause) while we join it must not hold us for ever. */
		struct pollfd pf = { .fd = pidp[0], .events = POLLIN };
		double limit = st.connect_timeout;
		int n;

		while ((n = poll(&pf, 1, (int)(limit * 1000))) < 0 && errno == EINTR)
			;
		if (n == 1)
			while (read(pidp[0], &agent, sizeof(agent)) < 0 && errno == EINTR)
				;
		close(pidp[0]);
		pidp[0] = -1;
		if (n == 0) {
			/* Not started: the forked child is killed and reaped
			 * as a start that did not answer (start_finish). */
			st.connect_timeout = 0.001;
			ctx = start_finish(&st, pid, err);
			mg_context_unref(ctx);
			error_set(err, MG_ERR_STREAM, ETIMEDOUT,
				  "%s: process %d: its namespaces and cgroups were not entered "
				  "within %.1f s (is the container frozen?)", st.namebuf,
				  (int)p.target, limit);
			setns_image_put(img, cached);
			errno = ETIMEDOUT;
			return NULL;
		}
	}
	ctx = start_finish(&st, agent > 0 ? agent : pid, err);
	/* It has ended by now (it ended right after saying the pid): reaped
	 * here, after the start rather than on its way. */
	if (agent > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	/* It has run the image (it said hello), or it is gone: it may read
	 * its own image now, for the contexts it starts; its dumpability
	 * was decided at the exec. */
	setns_image_put(img, cached);
	return ctx;
fail:
	if (pidp[0] >= 0)
		close(pidp[0]);
	if (pidp[1] >= 0)
		close(pidp[1]);
	if (img >= 0) {
		p.img = -1;
		setns_image_put(img, cached);
	}
	plan_free(&p);
	free(sb_env);
	start_cleanup(&st);
	errno = err && err->errnum ? err->errnum : EIO;
	return NULL;
}

struct mg_context *mg_setns(struct mg_router *r, const struct mg_setns_opts *opts,
			    struct mg_error *err)
{
	struct mg_setns_opts o;

	CTR_OPTS_COPY(o, opts);
	struct ctr_opts co = { .container = o.container, .ns = o.kind, .pid = o.pid,
			       .path = o.cli_path };

	return container_factory(r, &setns_transport, &co, o.local, err);
}
