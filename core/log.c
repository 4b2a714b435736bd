// SPDX-License-Identifier: MIT
/*
 * log.c — the process-wide log callback and level. The library never prints;
 * lines go to the callback the program installed (or nowhere), and to the
 * file mg_log_to_file or the debug switch opened.
 *
 * Also owns this user's private directory for debug logs and profiles
 * (log_private_dir; profile.c writes there too) and the rules for files
 * created in it: another local user must not be able to make a process of
 * ours block, write into a file of theirs, or write through a link.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held by log_debug_file throughout: two routers turning debug on at
 * once make one file, not one each (the second replacing the first). */
static pthread_mutex_t log_debug_lock = PTHREAD_MUTEX_INITIALIZER;
static mg_log_fn log_fn;
static void *log_userdata;
static int log_level = MG_LOG_INFO;
static char log_self[128] = "master";
static int log_fd = -1;		/* mg_log_to_file sink */
static pid_t log_fd_debug;	/* log_fd is the debug log of this pid */
static bool log_usec;
static bool log_io;

mg_log_fn mg_log_set_callback(mg_log_fn fn, void *userdata)
{
	mg_log_fn old;

	pthread_mutex_lock(&log_lock);
	old = log_fn;
	log_fn = fn;
	log_userdata = userdata;
	pthread_mutex_unlock(&log_lock);
	return old;
}

void mg_log_set_level(enum mg_log_level level)
{
	__atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

enum mg_log_level mg_log_get_level(void)
{
	return (enum mg_log_level)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

bool log_enabled(enum mg_log_level level)
{
	return (int)level >= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

const char *mg_log_level_name(enum mg_log_level level)
{
	if (level >= MG_LOG_ERROR)
		return "ERROR";
	if (level >= MG_LOG_WARNING)
		return "WARNING";
	if (level >= MG_LOG_INFO)
		return "INFO";
	return "DEBUG";
}

int mg_log_level_parse(const char *name)
{
	static const struct { const char *name; int level; } names[] = {
		{ "DEBUG", MG_LOG_DEBUG }, { "INFO", MG_LOG_INFO },
		{ "WARNING", MG_LOG_WARNING }, { "WARN", MG_LOG_WARNING },
		{ "ERROR", MG_LOG_ERROR },
	};

	if (!name)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(name, names[i].name))
			return names[i].level;
	return -EINVAL;
}

void log_set_self_name(const char *name)
{
	pthread_mutex_lock(&log_lock);
	snprintf(log_self, sizeof(log_self), "%s", name ? name : "");
	pthread_mutex_unlock(&log_lock);
}

const char *log_self_name(void)
{
	return log_self;
}

void log_reset_after_fork(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	memcpy(&log_lock, &fresh, sizeof(fresh));
	memcpy(&log_debug_lock, &fresh, sizeof(fresh));
	/* The parent's log file is the parent's. */
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	log_fd_debug = 0;
	log_io = false;
}

bool log_io_enabled(void)
{
	return __atomic_load_n(&log_io, __ATOMIC_RELAXED);
}

/* Called with log_lock held. */
static void file_write(enum mg_log_level level, const char *source, const char *line)
{
	char buf[2400], stamp[40];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	if (log_usec)
		n = snprintf(buf, sizeof(buf), "%s.%06ld %s %s: %s\n", stamp,
			     ts.tv_nsec / 1000, mg_log_level_name(level), source, line);
	else
		n = snprintf(buf, sizeof(buf), "%s %s %s: %s\n", stamp,
			     mg_log_level_name(level), source, line);
	if (n > (int)sizeof(buf) - 1) {
		n = sizeof(buf) - 1;
		buf[n - 1] = '\n';
	}
	if (write(log_fd, buf, (size_t)n) < 0) {
		/* Nowhere left to say so. */
	}
}

/*
 * fd, just opened for writing, is a regular file owned by our euid with a
 * single name (a hard link is a name for someone else's file); else it is
 * closed and -EPERM returned, why said. Link counts: a hard link to a
 * file the attacker cannot write (fs.protected_hardlinks=0) would have us
 * write into it; a FIFO or device is no log.
 */
static int log_check_file(int fd, const char *path, char *why, size_t why_size)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int e = errno;

		snprintf(why, why_size, "%s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode))
		snprintf(why, why_size, "refusing %s: not a regular file", path);
	else if (st.st_uid != geteuid())
		snprintf(why, why_size, "refusing %s: owned by uid %u, not %u", path,
			 (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_nlink != 1)
		snprintf(why, why_size, "refusing %s: %ju links to it", path,
			 (uintmax_t)st.st_nlink);
	else
		return fd;
	close(fd);
	return -EPERM;
}

/*
 * Open a path the program gave (mg_log_to_file) for appending: created
 * 0600 if missing, never through a symlink, never blocking (a FIFO with
 * no reader fails with ENXIO instead of hanging open()), and only if it
 * is a regular file of ours (log_check_file).
 */
static int open_private(const char *path)
{
	char why[PATH_MAX + 64];
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		      0600);

	if (fd < 0)
		return -errno;
	fd = log_check_file(fd, path, why, sizeof(why));
	if (fd < 0)
		return fd;
	fchmod(fd, 0600);
	return fd;
}

/*
 * Whether the directory dir (from the environment) may hold ours: an
 * absolute path to a directory owned by us or (root_ok) by root, and
 * (private) with no access for group or others. An environment can come
 * from another user (su keeps it; sudo -E passes it): their directories
 * are not used, so nothing of ours is made under their control.
 */
static bool log_base_ok(const char *dir, bool root_ok, bool private)
{
	struct stat st;

	if (!dir || dir[0] != '/' || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	if (st.st_uid != geteuid() && !(root_ok && st.st_uid == 0))
		return false;
	return !private || !(st.st_mode & 077);
}

int log_private_dir(char *path, size_t size, char *why, size_t why_size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR"), *tmp = getenv("TMPDIR");
	uid_t uid = geteuid();
	struct stat st;
	bool made;
	int n, fd;

	/*
	 * Privilege boundary: a root process writes here while other users
	 * share /tmp. Privacy comes from the directory itself, checked
	 * through the fd we then write under: ours, 0700, a real directory
	 * (O_NOFOLLOW). Whoever controls the parent can at most make us
	 * refuse (remove or replace it), never read or redirect what we
	 * write.
	 */
	if (log_base_ok(xdg, false, true))
		n = snprintf(path, size, "%s/mitogen-debug", xdg);
	else
		n = snprintf(path, size, "%s/mitogen-debug-%u",
			     log_base_ok(tmp, true, false) ? tmp : "/tmp", (unsigned)uid);
	if (n < 0 || (size_t)n >= size) {
		snprintf(why, why_size, "the private directory's path is too long");
		return -ENAMETOOLONG;
	}
	made = mkdir(path, 0700) == 0;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
			snprintf(why, why_size, "refusing %s: a symlink, not our directory (remove it)",
				 path);
		else if (e == ENOTDIR)
			snprintf(why, why_size, "refusing %s: not a directory (remove it)", path);
		else
			snprintf(why, why_size, "%s: %s", path, strerror(e));
		return -e;
	}
	if (made)
		fchmod(fd, 0700);	/* whatever the umask took away */
	if (fstat(fd, &st) < 0) {
		int e = errno;

		snprintf(why, why_size, "%s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	if (st.st_uid != uid) {
		snprintf(why, why_size, "refusing %s: owned by uid %u, not %u (remove it)", path,
			 (unsigned)st.st_uid, (unsigned)uid);
	} else if ((st.st_mode & 07777) != 0700) {
		snprintf(why, why_size, "refusing %s: mode %04o, not 0700", path,
			 (unsigned)(st.st_mode & 07777));
	} else {
		return fd;
	}
	close(fd);
	return -EPERM;
}

int log_private_create(int dirfd, const char *dir, const char *name, char *why,
		       size_t why_size)
{
	const int flags = O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK |
			  O_CLOEXEC;
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = openat(dirfd, name, flags, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* Left by an earlier process of ours with the same pid: only
		 * our uid can write in this directory. */
		if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
			fd = openat(dirfd, name, flags, 0600);
	}
	if (fd < 0) {
		int e = errno;

		snprintf(why, why_size, "%s: %s", path, strerror(e));
		return -e;
	}
	return log_check_file(fd, path, why, why_size);
}

/* The level, io and usec mg_log_to_file gets, after the environment's
 * overrides. Returns the level or -EINVAL. */
static int log_settings(bool *io, bool *usec, const char *level)
{
	const char *env;
	int lvl = MG_LOG_INFO;

	if ((env = getenv("MITOGEN_LOG_LEVEL")) && *env)
		level = env;
	if ((env = getenv("MITOGEN_LOG_USEC")) && *env)
		*usec = strcmp(env, "0") != 0;
	if ((env = getenv("MITOGEN_LOG_IO")) && *env)
		*io = strcmp(env, "0") != 0;
	if (level && (lvl = mg_log_level_parse(level)) < 0)
		return -EINVAL;
	return lvl;
}

/* Write lines to fd (taken) from now on, at level lvl. */
static void log_use_fd(int fd, bool debug, bool io, bool usec, int lvl)
{
	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	log_fd_debug = debug ? getpid() : 0;
	log_usec = usec;
	pthread_mutex_unlock(&log_lock);
	__atomic_store_n(&log_io, io, __ATOMIC_RELAXED);
	mg_log_set_level((enum mg_log_level)lvl);
}

int mg_log_to_file(const char *path, bool io, bool usec, const char *level)
{
	int lvl = log_settings(&io, &usec, level), fd;

	if (lvl < 0)
		return lvl;
	fd = path ? open_private(path) : fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return path ? fd : -errno;
	log_use_fd(fd, false, io, usec, lvl);
	return 0;
}

static int log_debug_open(void)
{
	char dir[PATH_MAX], name[64], why[PATH_MAX + 128];
	bool io = false, usec = true;
	int lvl = log_settings(&io, &usec, "DEBUG"), dfd, fd;
	bool open_already;

	if (lvl < 0)
		return lvl;
	pthread_mutex_lock(&log_lock);
	open_already = log_fd >= 0 && log_fd_debug == getpid();
	pthread_mutex_unlock(&log_lock);
	if (open_already)	/* a second router of this process: same file */
		return 0;
	dfd = log_private_dir(dir, sizeof(dir), why, sizeof(why));
	if (dfd < 0) {
		LOG_WARN("debug log: %s", why);
		return dfd;
	}
	snprintf(name, sizeof(name), "mitogen.%d.log", (int)getpid());
	fd = log_private_create(dfd, dir, name, why, sizeof(why));
	close(dfd);
	if (fd < 0) {
		LOG_WARN("debug log: %s", why);
		return fd;
	}
	log_use_fd(fd, true, io, usec, lvl);
	return 0;
}

int log_debug_file(void)
{
	int ret;

	pthread_mutex_lock(&log_debug_lock);
	ret = log_debug_open();
	pthread_mutex_unlock(&log_debug_lock);
	return ret;
}

void log_emit(enum mg_log_level level, const char *source, const char *line)
{
	mg_log_fn fn;
	void *ud;

	if (!log_enabled(level))
		return;
	pthread_mutex_lock(&log_lock);
	fn = log_fn;
	ud = log_userdata;
	if (log_fd >= 0)
		file_write(level, source ? source : log_self, line);
	pthread_mutex_unlock(&log_lock);
	if (fn)
		fn(level, source ? source : log_self, line, ud);
}

static void log_vmsg(enum mg_log_level level, const char *fmt, va_list ap)
{
	char line[2048];

	if (!log_enabled(level))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_emit(level, NULL, line);
}

void log_msg(enum mg_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void mg_log(enum mg_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!fmt)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
