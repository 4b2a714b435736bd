// SPDX-License-Identifier: MIT
/*
 * audit.c — the serving end of the audit trail (README, Audit).
 *
 * An audited context records every CALL_FUNCTION it serves: when, which
 * context, on whose authority (src_id and auth_id as the routers checked
 * them), which function, a SHA-256 of its arguments with every secret
 * replaced by "<secret>" (the arguments' JSON text, hashed as it is
 * written, so a large upload costs no copy: equal arguments give equal
 * digests, and a digest cannot be used to guess a password), the
 * status, the error if any, and the duration. The record goes to syslog
 * on this host (facility authpriv; the connection is made at boot, before
 * the sandbox could forbid it) and, as a map, to the master
 * (MG_HANDLE_AUDIT to context 0, core/audit.c), which writes it as a JSON
 * line.
 *
 * Whether this context is audited is decided at boot, from the BOOT
 * message, by the same rule the parent applies to the greeting for
 * mg_context_is_privileged: the parent says so ("audit": asked for, below
 * an audited context, or reached through sudo/su/doas), or this process
 * runs as another uid than its parent on the same host
 * ("audit_unless_uid"), or as root on another ("audit_root").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paths.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <nettle/sha2.h>

#include "agent/agent.h"
#include "core/context.h"
#include "core/router.h"
#include "core/value.h"
#include "transports/transport.h"

/* syslog is there (at boot): otherwise glibc would try to connect again
 * on every record, two failing syscalls a call. */
static bool use_syslog;
static char host[256];		/* this host's name, read at boot */

static bool flag(const struct mg_value *boot, const char *key)
{
	const struct mg_value *v = mg_map_get(boot, key);

	return v && v->type == MG_BOOL && v->b;
}

bool agent_audit_boot(struct mg_router *r, const struct mg_value *boot)
{
	const struct mg_value *uid = mg_map_get(boot, "audit_unless_uid");

	r->audited = flag(boot, "audit") ||
		     (uid && uid->type == MG_INT && uid->i != (int64_t)getuid()) ||
		     (flag(boot, "audit_root") && getuid() == 0);
	if (r->audited)
		gethostname(host, sizeof(host) - 1);
	if (r->audited && access(_PATH_LOG, W_OK) == 0) {
		openlog("mitogen", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
		use_syslog = true;
	}
	return r->audited;
}

static void hash_piece(void *arg, const char *s, size_t n)
{
	sha256_update(arg, n, (const uint8_t *)s);
}

/* Hex SHA-256 of the JSON text of v, secrets redacted. */
static void args_digest(const struct mg_value *v, char out[65])
{
	struct sha256_ctx c;

	sha256_init(&c);
	value_json_stream(v, hash_piece, &c);
	sha256_hex_digest(&c, out);
}

/* s for a syslog line: at most size - 1 bytes, control characters (and
 * spaces, unless spaces) as '?': a name cannot forge a field, nor any
 * text a line. */
static const char *plain(const char *s, char *buf, size_t size, bool spaces)
{
	size_t i;

	for (i = 0; s && s[i] && i + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c < ' ' || c == 0x7f || (c == ' ' && !spaces) ? '?' : (char)c;
	}
	buf[i] = '\0';
	return buf;
}

uint64_t agent_audit_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Now less ago_ns, as "2026-12-03T15:40:01.123456Z". */
static void utc_stamp(char *buf, size_t size, uint64_t ago_ns)
{
	struct timespec ts;
	struct tm tm;
	char sec[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec -= (time_t)(ago_ns / 1000000000u);
	ts.tv_nsec -= (long)(ago_ns % 1000000000u);
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += 1000000000L;
		ts.tv_sec--;
	}
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%.20s.%06dZ", sec, (int)(ts.tv_nsec / 1000) % 1000000);
}

/* One line on this host's syslog; the error last: the rest of the line
 * is fields without spaces. */
static void to_syslog(const struct mg_message *msg, const char *function, const char *digest,
		      const char *error, uint64_t dur_us)
{
	char name[128], fn[128], why[256];

	syslog(LOG_NOTICE, "audit: context=%u name=%s src_id=%u auth_id=%u uid=%u function=%s "
	       "args_sha256=%s status=%s duration_us=%llu%s%s",
	       mg_context_id(), plain(mg_context_name_self(), name, sizeof(name), false),
	       msg->meta.src_id, msg->meta.auth_id, (unsigned)getuid(),
	       plain(function, fn, sizeof(fn), false), *digest ? digest : "-",
	       error ? "error" : "ok", (unsigned long long)dur_us, error ? " error=" : "",
	       error ? plain(error, why, sizeof(why), true) : "");
}

void agent_audit_call(struct mg_router *r, const struct mg_message *msg, const char *function,
		      const struct mg_value *args, const char *error, uint64_t start_ns,
		      uint64_t end_ns)
{
	uint64_t dur_us = (end_ns - start_ns) / 1000;
	char stamp[48], digest[65] = "";
	struct mg_value *rec;
	struct mg_message *up;

	if (args)
		args_digest(args, digest);
	/* When the call started. */
	utc_stamp(stamp, sizeof(stamp), agent_audit_now() - start_ns);
	if (use_syslog)
		to_syslog(msg, function, digest, error, dur_us);

	rec = mg_map();
	if (!rec)
		return;
	mg_map_set(rec, "time", mg_str(stamp));
	mg_map_set(rec, "context_id", mg_int(mg_context_id()));
	mg_map_set(rec, "context", mg_str(mg_context_name_self()));
	mg_map_set(rec, "host", mg_str(host));
	mg_map_set(rec, "pid", mg_int(getpid()));
	mg_map_set(rec, "uid", mg_int(getuid()));
	mg_map_set(rec, "src_id", mg_int(msg->meta.src_id));
	mg_map_set(rec, "auth_id", mg_int(msg->meta.auth_id));
	mg_map_set(rec, "function", mg_str(function ? function : ""));
	mg_map_set(rec, "args_sha256", *digest ? mg_str(digest) : mg_nil());
	mg_map_set(rec, "status", mg_str(error ? "error" : "ok"));
	if (error)
		mg_map_set(rec, "error", mg_str(error));
	mg_map_set(rec, "duration_us", mg_int((int64_t)dur_us));
	up = mg_message_new(0, MG_HANDLE_AUDIT, rec);
	if (!up)
		return;
	up->meta.src_id = up->meta.auth_id = r->id;
	mg_router_route(r, up);
}
