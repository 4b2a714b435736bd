// SPDX-License-Identifier: MIT
/*
 * log.c — the process-wide log callback and level. The library never prints;
 * lines go to the callback the program installed (or nowhere).
 */
#include <errno.h>
#include <pthread.h>
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
