/* SPDX-License-Identifier: MIT */
/*
 * Logging. The library never prints: every line goes to the callback the
 * program installs (the `mitogen` tool and the agent decide where it goes).
 * In a child context, lines are forwarded to the parent (FORWARD_LOG) and
 * reach the master's callback prefixed with the child's name, as do the
 * child's stdout and stderr.
 */
#ifndef MITOGEN_LOG_H
#define MITOGEN_LOG_H

#include <mitogen/common.h>

#ifdef __cplusplus
extern "C" {
#endif

enum mg_log_level {
	MG_LOG_DEBUG = 10,
	MG_LOG_INFO = 20,
	MG_LOG_WARNING = 30,
	MG_LOG_ERROR = 40,
};

/*
 * Called for every line at or above the current level. `source` names the
 * context that produced the line ("master" here, the child's name for
 * forwarded lines). May be called from any thread, including the broker
 * thread: it must not block for long and must not call back into the
 * library except mg_log_level_name().
 */
typedef void (*mg_log_fn)(enum mg_log_level level, const char *source,
			  const char *line, void *userdata);

/* Install fn (NULL: discard). Returns the previous one. Thread-safe. */
MG_API mg_log_fn mg_log_set_callback(mg_log_fn fn, void *userdata);
/* Lines below level are dropped early (default MG_LOG_INFO). */
MG_API void mg_log_set_level(enum mg_log_level level);
MG_API enum mg_log_level mg_log_get_level(void);
/* "DEBUG", "INFO", "WARNING", "ERROR". */
MG_API const char *mg_log_level_name(enum mg_log_level level);
/* Parse a level name (case-insensitive). Returns the level or -EINVAL. */
MG_API int mg_log_level_parse(const char *name);
/*
 * Also write every line (this context's and forwarded ones) to a file
 * (path, created mode 0600, appended; never through a symlink, never a
 * file another user owns, a FIFO or a file with other hard links; opening
 * never blocks), or to standard error when path is NULL, as
 * "YYYY-mm-dd HH:MM:SS[.uuuuuu] LEVEL source: line". With io, every
 * message routed is logged too (at DEBUG). level is a level name ("DEBUG",
 * "INFO", ...), NULL for INFO; it also becomes the process's level.
 * The environment overrides the arguments (the reference's names):
 *   MITOGEN_LOG_LEVEL=NAME, MITOGEN_LOG_USEC=1, MITOGEN_LOG_IO=1.
 * Returns 0, -EINVAL (bad level), -EPERM (not a regular file of ours
 * with one link), or -errno from opening the file (-ENXIO: a FIFO no one
 * reads). Thread-safe; a second call replaces the first file.
 */
MG_API int mg_log_to_file(const char *path, bool io, bool usec, const char *level);
/*
 * The profiling switch (the reference's Router.profiling). When on, every
 * broker thread started afterwards in this process, and the broker and
 * main threads of every context started from it (and below it), sample
 * their own CPU time and, on graceful exit, write
 * mitogen.stats.<pid>.<thread>.folded (mode 0600) in the user's private
 * directory (see mg_router_enable_debug): one line per
 * stack, "thread;outermost;...;innermost count", the folded-stacks format
 * that flamegraph.pl, inferno-flamegraph and speedscope read
 * (`flamegraph.pl /tmp/mitogen-debug-0/mitogen.stats.*.folded > profile.svg`). A single
 * context can be profiled with mg_local_opts.profiling instead.
 */
MG_API void mg_profiling_enable(bool on);
/* Log a line from the program itself. */
MG_API void mg_log(enum mg_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
