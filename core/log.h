/* SPDX-License-Identifier: MIT */
/* log.h — internal logging entry points (the public side is mitogen/log.h). */
#ifndef CORE_LOG_H
#define CORE_LOG_H

#include <mitogen/log.h>

/* Emit an already-formatted line from `source` (a forwarded child line). */
void log_emit(enum mg_log_level level, const char *source, const char *line);
/* Log from library code, with this context's name as source. */
void log_msg(enum mg_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool log_enabled(enum mg_log_level level);
/* True when mg_log_to_file asked for message-level I/O logs. */
bool log_io_enabled(void);
/*
 * Open the debug log of this process, mitogen.<pid>.log (0600) in this
 * user's private directory (log_private_dir), at level DEBUG; a second
 * call keeps the file already open. Returns 0 or -errno, after logging a
 * WARNING that names the path and the reason.
 */
int log_debug_file(void);
/*
 * This user's private directory for debug logs and profiles, opened
 * (close-on-exec; the caller closes it), its path in path:
 * $XDG_RUNTIME_DIR/mitogen-debug when XDG_RUNTIME_DIR is ours (owned by
 * our euid, no access for others), else ${TMPDIR:-/tmp}/mitogen-debug-EUID
 * (TMPDIR only when owned by us or root). Created 0700 when missing; used
 * only when it is a directory, not a symlink, owned by our euid, mode
 * 0700. Returns the fd or -errno with why filled ("refusing PATH: owned
 * by uid 1001, not 0 (remove it)").
 */
int log_private_dir(char *path, size_t size, char *why, size_t why_size);
/*
 * Create name in the private directory dirfd (whose path is dir, for
 * messages) for writing: O_EXCL (one of ours left by an earlier process
 * with our pid is replaced), O_NOFOLLOW, O_NONBLOCK, 0600, then checked
 * to be a regular file of ours with one link. Returns the fd or -errno
 * with why filled.
 */
int log_private_create(int dirfd, const char *dir, const char *name, char *why,
		       size_t why_size);
/* Name used as source for this process's own lines. */
void log_set_self_name(const char *name);
const char *log_self_name(void);
/* After fork(): the child's lock may be held by a thread that is gone. */
void log_reset_after_fork(void);

#define LOG_DEBUG(...) do { if (log_enabled(MG_LOG_DEBUG)) log_msg(MG_LOG_DEBUG, __VA_ARGS__); } while (0)
#define LOG_INFO(...) log_msg(MG_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) log_msg(MG_LOG_WARNING, __VA_ARGS__)
#define LOG_ERROR(...) log_msg(MG_LOG_ERROR, __VA_ARGS__)

#endif
