// SPDX-License-Identifier: MIT
/*
 * log.c — the process-wide log callback and level. The library never prints;
 * lines go to the callback the program installed (or nowhere).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
static mg_log_fn log_fn;
static void *log_userdata;
static int log_level = MG_LOG_INFO;
static char log_self[128] = "master";
static int log_fd = -1;		/* mg_log_to_file sink */
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
	/* The parent's log file is the parent's. */
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
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
 * Open path for appending without following a symlink and only if it is a
 * regular file of ours: debug logs go to /tmp, where names are guessable.
 */
static int open_private(const char *path)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		close(fd);
		return -EPERM;
	}
	fchmod(fd, 0600);
	return fd;
}

int mg_log_to_file(const char *path, bool io, bool usec, const char *level)
{
	const char *env;
	int lvl = MG_LOG_INFO, fd;

	if ((env = getenv("MITOGEN_LOG_LEVEL")) && *env)
		level = env;
	if ((env = getenv("MITOGEN_LOG_USEC")) && *env)
		usec = strcmp(env, "0") != 0;
	if ((env = getenv("MITOGEN_LOG_IO")) && *env)
		io = strcmp(env, "0") != 0;
	if (level && (lvl = mg_log_level_parse(level)) < 0)
		return -EINVAL;
	fd = path ? open_private(path) : fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return path ? fd : -errno;
	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	log_usec = usec;
	pthread_mutex_unlock(&log_lock);
	__atomic_store_n(&log_io, io, __ATOMIC_RELAXED);
	mg_log_set_level((enum mg_log_level)lvl);
	return 0;
}

int log_debug_file(void)
{
	char path[64];

	snprintf(path, sizeof(path), "/tmp/mitogen.%d.log", (int)getpid());
	return mg_log_to_file(path, false, true, "DEBUG");
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
