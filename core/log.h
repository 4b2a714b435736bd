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
/* Open the debug log of this process, /tmp/mitogen.<pid>.log (0600). */
int log_debug_file(void);
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
