// SPDX-License-Identifier: MIT
/*
 * test_forgery.c — a child forging the audit trail and the master's log.
 *
 * The attacks (issue 15, item 7): against the old code, a plain child (not
 * audited) sent the master an audit record claiming that another context
 * on another host ran a root call, and the master appended it with only
 * its context_id changed; and a child forwarded log lines naming
 * "master" as their source, with a newline and terminal escapes in them.
 *
 * Now the master takes audit records only from contexts it knows are
 * audited, puts what it knows itself (id, name, chain, privilege, arrival)
 * at the top of the line and what the agent claims under "claimed"; and a
 * forwarded line carries the name of the context it verifiably came from,
 * with control characters escaped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "selftests/lib/harness.h"

/* --- run in the children ----------------------------------------------- */

/* Send the master a record of a root call that never happened, on a host
 * this context is not on, in another context's name. */
static int forge_audit(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_value *rec = mg_map();
	struct mg_message *m;

	mg_map_set(rec, "context_id", mg_int(4242));
	mg_map_set(rec, "context", mg_str("t9.sudo.root"));
	mg_map_set(rec, "host", mg_str("db01.forged"));
	mg_map_set(rec, "uid", mg_int(0));
	mg_map_set(rec, "function", mg_str("forged_root_call"));
	mg_map_set(rec, "status", mg_str("ok"));
	m = mg_message_new(0, MG_HANDLE_AUDIT, rec);
	if (!m || mg_router_route(mg_call_router(call), m) < 0)
		return mg_call_fail(call, EIO, "route");
	*ret = mg_nil();
	return 0;
}
MG_EXPORT(forge_audit);

/* Send up a log line that claims to be the master's, and tries to start a
 * line of its own and to clear the operator's terminal. */
static int forge_log(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_message *m;

	/* As an old agent sends them: [level, source, line]. */
	m = mg_message_new(mg_parent_id(), MG_HANDLE_FORWARD_LOG,
			   MG_LIST(mg_int(MG_LOG_ERROR), mg_str("master"),
				   mg_str("all good\nmaster: root password changed\x1b[2J\xc2\x9b" "31m")));
	if (!m || mg_router_route(mg_call_router(call), m) < 0)
		return mg_call_fail(call, EIO, "route");
	/* With an origin, claiming to be the master's own line. */
	m = mg_message_new(mg_parent_id(), MG_HANDLE_FORWARD_LOG,
			   MG_LIST(mg_int(MG_LOG_ERROR), mg_str("master"), mg_str("also fine"),
				   mg_int(0)));
	if (!m || mg_router_route(mg_call_router(call), m) < 0)
		return mg_call_fail(call, EIO, "route");
	*ret = mg_nil();
	return 0;
}
MG_EXPORT(forge_log);

/* --- the master -------------------------------------------------------- */

static struct mg_router *router;
static char audit_path[96];

/* Every log line the master emits: "source|line\n". */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logged[1 << 16];
static size_t logged_len;

static void capture(enum mg_log_level level, const char *source, const char *line, void *ud)
{
	pthread_mutex_lock(&log_lock);
	logged_len += (size_t)snprintf(logged + logged_len, sizeof(logged) - logged_len,
				       "%s|%s\n", source, line);
	if (logged_len >= sizeof(logged))
		logged_len = sizeof(logged) - 1;
	pthread_mutex_unlock(&log_lock);
}

/* The line of the log that contains needle, copied into out; false if none. */
static bool log_line_with(const char *needle, char *out, size_t size)
{
	bool found = false;

	pthread_mutex_lock(&log_lock);
	for (char *p = logged; *p;) {
		char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (memmem(p, n, needle, strlen(needle))) {
			snprintf(out, size, "%.*s", (int)n, p);
			found = true;
			break;
		}
		p += n + (end != NULL);
	}
	pthread_mutex_unlock(&log_lock);
	return found;
}

static char *audit_text(void)
{
	FILE *f = fopen(audit_path, "re");
	char *buf = calloc(1, 1 << 16);
	size_t n;

	assert_non_null(buf);
	if (!f)
		return buf;
	n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The audit line that contains needle, waiting up to 30 s for it (the
 * agent sends its own record after its reply). Caller frees. */
static char *audit_line_with(const char *needle)
{
	double end = mg_test_now() + 30;

	do {
		char *text = audit_text(), *p = strstr(text, needle), *line;

		if (p) {
			while (p > text && p[-1] != '\n')
				p--;
			line = strndup(p, strcspn(p, "\n"));
			free(text);
			return line;
		}
		free(text);
		usleep(10000);
	} while (mg_test_now() < end);
	return NULL;
}

static struct mg_context *start(bool audit)
{
	MG_OPTS(mg_local_opts, lo, .audit = audit, .connect_timeout = 60,
		.remote_name = audit ? "audited" : "plain");
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_local(router, &lo, &err);

	if (!c)
		fail_msg("start: %s", err.message);
	return c;
}

static void stop(struct mg_context *c)
{
	assert_int_equal(mg_context_shutdown(c, true), 0);
	mg_context_unref(c);
}

/* A context that is not audited cannot put anything in the trail. */
static void test_unaudited_child_cannot_file_records(void **state)
{
	struct mg_context *c = start(false);
	struct mg_error err = MG_ERROR_INIT;
	char line[512], needle[96];
	char *text;

	assert_false(mg_context_is_audited(c));
	/* The record travels before the call's reply on one channel: when
	 * the call is back, the master has handled it. */
	assert_int_equal(mg_call(c, "forge_audit", NULL, NULL, &err), 0);
	text = audit_text();
	assert_null(strstr(text, "forged_root_call"));
	/* Nothing it claimed; the master's own note that it refused one
	 * (docs/audit.md). */
	assert_null(strstr(text, "\"claimed\""));
	assert_non_null(strstr(text, "{\"refused\":"));
	free(text);
	snprintf(needle, sizeof(needle), "refused a record from context %u",
		 mg_context_remote_id(c));
	assert_true(log_line_with(needle, line, sizeof(line)));
	stop(c);
}

/* An audited context's claims are kept apart from what the master knows:
 * it cannot file a record in another's name, or on another host. */
static void test_audited_child_claims_kept_apart(void **state)
{
	struct mg_context *c = start(true);
	struct mg_error err = MG_ERROR_INIT;
	char want[96], *line, *claimed;

	assert_true(mg_context_is_audited(c));
	assert_int_equal(mg_call(c, "forge_audit", NULL, NULL, &err), 0);
	line = audit_line_with("forged_root_call");
	assert_non_null(line);
	claimed = strstr(line, "\"claimed\":");
	assert_non_null(claimed);
	*claimed = '\0';
	/* What precedes "claimed" is the master's own knowledge. */
	snprintf(want, sizeof(want), "\"context_id\":%u,", mg_context_remote_id(c));
	assert_non_null(strstr(line, want));
	assert_non_null(strstr(line, "\"context\":\"audited\""));
	assert_non_null(strstr(line, "\"chain\":[\"audited\"]"));
	assert_null(strstr(line, "4242"));
	assert_null(strstr(line, "db01"));
	/* The claims are there, as claims. */
	*claimed = '"';
	assert_non_null(strstr(claimed, "\"context_id\":4242"));
	assert_non_null(strstr(claimed, "\"host\":\"db01.forged\""));
	free(line);
	stop(c);
}

/* Below an audited context, the chain names every hop. */
static void test_audited_chain_names_every_hop(void **state)
{
	struct mg_context *mid = start(true);
	MG_OPTS(mg_local_opts, lo, .via = mid, .remote_name = "below", .connect_timeout = 60);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *below = mg_local(router, &lo, &err);
	char *line;

	assert_non_null(below);
	assert_true(mg_context_is_audited(below));
	assert_int_equal(mg_call(below, "forge_audit", NULL, NULL, &err), 0);
	line = audit_line_with("\"context\":\"below\"");
	assert_non_null(line);
	assert_non_null(strstr(line, "\"chain\":[\"audited\",\"below\"]"));
	free(line);
	stop(below);
	stop(mid);
}

/* A child cannot speak as the master, nor write raw control characters
 * into the operator's log, directly or from below another context. */
static void check_forged_log(struct mg_context *c, const char *name)
{
	struct mg_error err = MG_ERROR_INIT;
	char line[1024], want[128];

	assert_int_equal(mg_call(c, "forge_log", NULL, NULL, &err), 0);
	/* Lines from below may cross two hops: wait for ours (bounded). */
	for (double end = mg_test_now() + 30;
	     !log_line_with("all good", line, sizeof(line)) && mg_test_now() < end;)
		usleep(10000);
	assert_true(log_line_with("all good", line, sizeof(line)));
	snprintf(want, sizeof(want), "%s (claims: master)|", name);
	if (strncmp(line, want, strlen(want)) != 0)
		fail_msg("forged line shown as '%s', expected source '%s...'", line, want);
	assert_null(strchr(line, '\x1b'));
	assert_null(strstr(line, "\xc2\x9b"));
	assert_non_null(strstr(line, "all good\\nmaster: root password changed\\x1b[2J\\u009b31m"));
	for (double end = mg_test_now() + 30;
	     !log_line_with("also fine", line, sizeof(line)) && mg_test_now() < end;)
		usleep(10000);
	snprintf(want, sizeof(want), "%s (claims: master)|also fine", name);
	if (!log_line_with("also fine", line, sizeof(line)) || strcmp(line, want) != 0)
		fail_msg("forged line shown as '%s', expected '%s'", line, want);
	/* ... and it is one line: nothing after it starts with "master|". */
	pthread_mutex_lock(&log_lock);
	assert_null(strstr(logged, "\nmaster: root password"));
	logged_len = 0;
	logged[0] = '\0';
	pthread_mutex_unlock(&log_lock);
}

static void test_forwarded_log_names_verified_source(void **state)
{
	struct mg_context *c = start(false);

	check_forged_log(c, "plain");
	stop(c);
}

static void test_forwarded_log_from_below(void **state)
{
	struct mg_context *mid = start(false);
	MG_OPTS(mg_local_opts, lo, .via = mid, .remote_name = "deep", .connect_timeout = 60);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *deep = mg_local(router, &lo, &err);

	assert_non_null(deep);
	check_forged_log(deep, "deep");
	stop(deep);
	stop(mid);
}

int main(int argc, char **argv)
{
	struct mg_error err = MG_ERROR_INIT;
	char dir[] = "/tmp/mg-forgery.XXXXXX";
	int failed;

	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unaudited_child_cannot_file_records),
		cmocka_unit_test(test_audited_child_claims_kept_apart),
		cmocka_unit_test(test_audited_chain_names_every_hop),
		cmocka_unit_test(test_forwarded_log_names_verified_source),
		cmocka_unit_test(test_forwarded_log_from_below),
	};
	if (!mkdtemp(dir))
		return 1;
	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", dir);
	router = mg_router_new(NULL);
	if (!router || mg_router_audit_to_file(router, audit_path, &err) < 0)
		return 1;
	mg_log_set_callback(capture, NULL);
	failed = MG_TEST_RUN("attacks/forgery", tests);
	mg_log_set_callback(NULL, NULL);
	mg_router_unref(router);
	unlink(audit_path);
	rmdir(dir);
	return failed;
}
