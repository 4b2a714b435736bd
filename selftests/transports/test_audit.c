// SPDX-License-Identifier: MIT
/*
 * selftests/transports/test_audit.c — the audit trail (README, Audit):
 * which contexts are audited (asked for, privileged through sudo, below an
 * audited context; not a plain child), what the master's JSON lines hold
 * (function, status, error, authority, a digest of the arguments with
 * secrets redacted, never the secret, exactly as README defines it, for
 * 4 MiB of arguments too), that a context cannot file a record
 * in another's name, that a malformed record is dropped, the syslog line
 * on the target host (a function name cannot forge a field or a line), MITOGEN_AUDIT_FILE, and bad audit file paths.
 * Uses the test users and the sshd of selftests/fixtures/sshd.sh.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <nettle/sha2.h>

#include <mitogen/sandbox.h>

#include "audit/tlog.h"
#include "selftests/tools/toolrun.h"
#include "selftests/transports/fixture.h"

static char audit_path[64];
/* Our own MITOGEN_AUDIT_DIR and MITOGEN_AUDIT_KEY (local children inherit them). */
static char state_dir[PATH_MAX];

static int audit_echo(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	*ret = mg_int(args ? args->len : 0);
	return 0;
}
MG_EXPORT(audit_echo);

static int audit_fails(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	return mg_call_fail(call, EACCES, "refused on purpose");
}
MG_EXPORT(audit_fails);

static int audit_sleep(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct timespec ts = { 0, 300 * 1000000L };

	nanosleep(&ts, NULL);
	*ret = mg_nil();
	return 0;
}
MG_EXPORT(audit_sleep);

/* Send the master a record claiming another context, then a malformed one. */
static int audit_forge(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_router *r = mg_call_router(call);
	struct mg_value *rec = mg_map();
	struct mg_message *m;

	mg_map_set(rec, "context_id", mg_int(4242));
	mg_map_set(rec, "function", mg_str("forged"));
	m = mg_message_new(0, MG_HANDLE_AUDIT, rec);
	if (!m || mg_router_route(r, m) < 0)
		return -EIO;
	m = mg_message_new(0, MG_HANDLE_AUDIT, MG_LIST(mg_str("not a map")));
	if (!m || mg_router_route(r, m) < 0)
		return -EIO;
	*ret = mg_nil();
	return 0;
}
MG_EXPORT(audit_forge);

/*
 * The calls recorded in an audit file: its lines that record a call
 * (they have a "function"), without the checkpoints, the checkpoints it
 * witnessed and the "log opened" records (docs/audit.md), which
 * test_audit_chain_fields looks at. Caller frees.
 */
static char *audit_calls(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = calloc(1, 1 << 17), *out = calloc(1, 1 << 17), *p, *o = out;
	size_t n;

	assert_non_null(buf);
	assert_non_null(out);
	if (!f) {
		free(buf);
		return out;	/* not created yet: nothing recorded */
	}
	n = fread(buf, 1, (1 << 17) - 1, f);
	buf[n] = '\0';
	fclose(f);
	for (p = buf; *p;) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);

		if (memmem(p, len, "\"function\":", 11)) {
			memcpy(o, p, len);
			o += len;
		}
		p += len;
	}
	free(buf);
	return out;
}

/* The calls recorded in this test's audit file; caller frees. */
static char *audit_text(void)
{
	return audit_calls(audit_path);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/*
 * Line i (0-based) of the file, in buf. An agent sends a call's record
 * right after its reply: wait for it up to 2 s.
 */
static void audit_line(size_t i, char *buf, size_t size)
{
	for (int tries = 0; tries < 200; tries++) {
		char *text = audit_text(), *p = text;

		if (count_lines(text) > i) {
			for (size_t k = 0; k < i; k++)
				p = strchr(p, '\n') + 1;
			snprintf(buf, size, "%.*s", (int)(strchr(p, '\n') - p), p);
			free(text);
			return;
		}
		free(text);
		usleep(10000);
	}
	fprintf(stderr, "# audit file has no line %zu\n", i);
	fail();
}

/* The value of "key" in a compact JSON line, as text, in out. */
static const char *field(const char *line, const char *key, char *out, size_t size)
{
	char pat[64];
	const char *p;
	size_t n = 0;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	if (!p) {
		snprintf(out, size, "(missing)");
		return out;
	}
	p += strlen(pat);
	if (*p == '"') {
		for (p++; p[n] && p[n] != '"' && n + 1 < size; n++)
			out[n] = p[n];
	} else {
		for (; p[n] && p[n] != ',' && p[n] != '}' && n + 1 < size; n++)
			out[n] = p[n];
	}
	out[n] = '\0';
	return out;
}

/* Line i of the file (into line) records ctx serving function. */
static void expect_record(size_t i, const char *function, const struct mg_context *ctx,
			  char *line, size_t size)
{
	char v[128], id[16];

	audit_line(i, line, size);
	snprintf(id, sizeof(id), "%u", mg_context_remote_id(ctx));
	assert_string_equal(field(line, "function", v, sizeof(v)), function);
	assert_string_equal(field(line, "context_id", v, sizeof(v)), id);
}

static void agent_log(struct mg_context *ctx, char *path, size_t size, char *vkey, size_t vsize);

static int audit_setup(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	if (fixture_setup(state) < 0)
		return -1;
	snprintf(audit_path, sizeof(audit_path), "/tmp/mg-audit.%d.jsonl", (int)getpid());
	unlink(audit_path);
	return mg_router_audit_to_file(router, audit_path, &err);
}

/* Remove every agent log our contexts wrote (the "file" of each witnessed
 * checkpoint: sudo's and ssh's are in their users' own places). */
static void remove_agent_logs(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[8192];

	while (f && fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "\"file\":\""), *end;

		if (!p)
			continue;
		p += 8;
		end = strchr(p, '"');
		if (!end)
			continue;
		*end = '\0';
		unlink(p);
	}
	if (f)
		fclose(f);
}

static int audit_teardown(void **state)
{
	int rc = fixture_teardown(state);	/* the contexts' last lines first */

	remove_agent_logs(audit_path);
	unlink(audit_path);
	return rc;
}

static void call_ok(struct mg_context *ctx, const char *fn, struct mg_value *args)
{
	struct mg_error err = MG_ERROR_INIT;

	if (mg_call(ctx, fn, args, NULL, &err) < 0) {
		fprintf(stderr, "# %s: %s\n", fn, err.message);
		fail();
	}
}

/* Asked for with mg_local_opts.audit: every call recorded, as it went. */
static void test_audit_requested(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char line[2048], v[128], id[16], d1[80], d2[80], d3[80], *text;
	struct mg_context *ctx;
	struct stat st;

	MG_OPTS(mg_local_opts, lo, .audit = true);
	ctx = must(mg_local(router, &lo, &err), &err);
	assert_true(mg_context_is_audited(ctx));
	assert_false(mg_context_is_privileged(ctx));
	snprintf(id, sizeof(id), "%u", mg_context_remote_id(ctx));

	call_ok(ctx, "audit_echo", MG_LIST(mg_str("x"), mg_secret("hunter2")));
	call_ok(ctx, "audit_echo", MG_LIST(mg_str("x"), mg_secret("other-secret")));
	call_ok(ctx, "audit_echo", MG_LIST(mg_str("y"), mg_secret("hunter2")));
	assert_int_equal(mg_call(ctx, "audit_fails", NULL, NULL, &err), -EREMOTEIO);
	assert_int_equal(mg_call(ctx, "audit_nope", NULL, NULL, &err), -EREMOTEIO);

	audit_line(0, line, sizeof(line));
	assert_string_equal(field(line, "function", v, sizeof(v)), "audit_echo");
	assert_string_equal(field(line, "status", v, sizeof(v)), "ok");
	assert_string_equal(field(line, "context_id", v, sizeof(v)), id);
	assert_string_equal(field(line, "src_id", v, sizeof(v)), "0");
	assert_string_equal(field(line, "auth_id", v, sizeof(v)), "0");
	assert_int_equal(atol(field(line, "uid", v, sizeof(v))), getuid());
	assert_true(atol(field(line, "duration_us", v, sizeof(v))) >= 0);
	field(line, "time", v, sizeof(v));
	assert_int_equal(strlen(v), strlen("2026-12-03T15:40:01.123456Z"));
	assert_int_equal(v[strlen(v) - 1], 'Z');
	field(line, "args_sha256", d1, sizeof(d1));
	assert_int_equal(strlen(d1), 64);
	/* Secrets are redacted before the digest: only "x" vs "y" counts. */
	audit_line(1, line, sizeof(line));
	field(line, "args_sha256", d2, sizeof(d2));
	audit_line(2, line, sizeof(line));
	field(line, "args_sha256", d3, sizeof(d3));
	assert_string_equal(d1, d2);
	assert_string_not_equal(d1, d3);

	audit_line(3, line, sizeof(line));
	assert_string_equal(field(line, "function", v, sizeof(v)), "audit_fails");
	assert_string_equal(field(line, "status", v, sizeof(v)), "error");
	assert_string_equal(field(line, "error", v, sizeof(v)), "refused on purpose");
	audit_line(4, line, sizeof(line));
	assert_string_equal(field(line, "function", v, sizeof(v)), "audit_nope");
	assert_string_equal(field(line, "status", v, sizeof(v)), "error");
	assert_non_null(strstr(line, "no exported function named 'audit_nope'"));

	text = audit_text();
	assert_null(strstr(text, "hunter2"));
	assert_null(strstr(text, "other-secret"));
	assert_int_equal(count_lines(text), 5);
	free(text);
	assert_int_equal(stat(audit_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	finish(ctx);
}

/*
 * The digest is SHA-256 of the arguments' JSON text with secrets as
 * "<secret>", as README says, whatever their size (4 MiB of bytes here:
 * hashed as it is written, no copy).
 */
static void test_audit_digest_definition(void **state)
{
	static const char hex[] = "0123456789abcdef";
	struct mg_error err = MG_ERROR_INIT;
	size_t big = 4 << 20;
	uint8_t *blob = malloc(big), d[SHA256_DIGEST_SIZE];
	char line[2048], got[80], want[65], *json;
	struct mg_value *args;
	struct mg_context *ctx;
	struct sha256_ctx c;

	assert_non_null(blob);
	for (size_t i = 0; i < big; i++)
		blob[i] = (uint8_t)(i * 7 + i / 251);
	args = MG_LIST(mg_str("x\n\"y\""), mg_bytes(blob, big), mg_secret("pw"), mg_float(0.5));
	free(blob);
	json = mg_value_to_json_alloc(args);
	assert_non_null(json);
	assert_null(strstr(json, "\"pw\""));
	sha256_init(&c);
	sha256_update(&c, strlen(json), (const uint8_t *)json);
	sha256_digest(&c, sizeof(d), d);
	free(json);
	for (size_t i = 0; i < sizeof(d); i++) {
		want[2 * i] = hex[d[i] >> 4];
		want[2 * i + 1] = hex[d[i] & 15];
	}
	want[64] = '\0';

	MG_OPTS(mg_local_opts, lo, .audit = true);
	ctx = must(mg_local(router, &lo, &err), &err);
	call_ok(ctx, "audit_echo", args);
	audit_line(0, line, sizeof(line));
	assert_string_equal(field(line, "args_sha256", got, sizeof(got)), want);
	finish(ctx);
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "time" is when the call started, "duration_us" how long it ran. */
static void test_audit_time_and_duration(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char line[2048], v[64];
	double before, after, t;
	struct mg_context *ctx;
	struct tm tm = { 0 };
	const char *rest;
	long dur;

	MG_OPTS(mg_local_opts, lo, .audit = true);
	ctx = must(mg_local(router, &lo, &err), &err);
	before = wall_now();
	call_ok(ctx, "audit_sleep", NULL);
	after = wall_now();
	audit_line(0, line, sizeof(line));
	dur = atol(field(line, "duration_us", v, sizeof(v)));
	/* no sooner than its 0.3 s sleep; the upper bound only a hang reaches */
	assert_true(dur >= 300000 && dur < 120000000);
	field(line, "time", v, sizeof(v));
	rest = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(rest);
	t = (double)timegm(&tm) + atof(rest);	/* rest: ".uuuuuuZ" */
	printf("# call started %.6f s after we sent it, ran %ld us; it returned %.6f s later\n",
	       t - before, dur, after - t);
	assert_true(t >= before - 0.001);
	assert_true(t + 0.3 <= after + 0.001);
	finish(ctx);
}

/* mg_fork takes the option too, and a fork of an audited context is
 * audited (it runs as the same uid: only the parent's mark says so). */
static void test_audit_fork(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx, *below;
	char line[2048], v[64], id[16];

	MG_OPTS(mg_local_opts, lo, .audit = true);
	MG_OPTS(mg_fork_opts, fo, .local = &lo);
	ctx = must(mg_fork(router, &fo, &err), &err);
	assert_true(mg_context_is_audited(ctx));
	call_ok(ctx, "audit_echo", NULL);
	audit_line(0, line, sizeof(line));
	snprintf(id, sizeof(id), "%u", mg_context_remote_id(ctx));
	assert_string_equal(field(line, "context_id", v, sizeof(v)), id);

	MG_OPTS(mg_local_opts, blo, .via = ctx);
	MG_OPTS(mg_fork_opts, bfo, .local = &blo);
	below = must(mg_fork(router, &bfo, &err), &err);
	assert_true(mg_context_is_audited(below));
	call_ok(below, "audit_echo", NULL);
	/* Lines 1 and 2: ctx serving mg.via.start (a service call) and
	 * below's call, in either order (ctx sends its record after its
	 * reply, and below's may pass it on the way up). */
	audit_line(2, line, sizeof(line));
	if (strcmp(field(line, "function", v, sizeof(v)), "audit_echo") != 0)
		audit_line(1, line, sizeof(line));
	snprintf(id, sizeof(id), "%u", mg_context_remote_id(below));
	assert_string_equal(field(line, "function", v, sizeof(v)), "audit_echo");
	assert_string_equal(field(line, "context_id", v, sizeof(v)), id);
	/* Each keeps a log of its own (the fork does not write its parent's),
	 * and the trail verifies. */
	{
		char p1[PATH_MAX], p2[PATH_MAX], vkey[TLOG_VKEY_MAX];
		struct toolrun r = { 0 };

		agent_log(ctx, p1, sizeof(p1), vkey, sizeof(vkey));
		agent_log(below, p2, sizeof(p2), vkey, sizeof(vkey));
		assert_string_not_equal(p1, p2);
		finish(below);
		finish(ctx);
		TOOLRUN(&r, "audit", "verify", "--key", vkey, audit_path, p1, p2);
		printf("# %s", r.out);
		assert_int_equal(r.exit_code, 0);
		toolrun_free(&r);
		unlink(p1);
		unlink(p2);
	}
}

/* A plain child is not audited: nothing recorded. */
static void test_audit_plain_child_not_recorded(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx = must(mg_local(router, NULL, &err), &err);
	char *text;

	assert_false(mg_context_is_audited(ctx));
	call_ok(ctx, "audit_echo", NULL);
	call_ok(ctx, "audit_echo", NULL);
	finish(ctx);
	text = audit_text();
	assert_string_equal(text, "");
	free(text);
}

/* A record filed in another's name opens with the sender's own id, the
 * claim kept under "claimed"; a malformed one is dropped. (A context that
 * is not audited files nothing at all: selftests/attacks/test_forgery.c.) */
static void test_audit_forged_context_id(void **state)
{
	MG_OPTS(mg_local_opts, lo, .audit = true);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx = must(mg_local(router, &lo, &err), &err);
	char line[2048], v[64], id[16], *text, *claimed;

	snprintf(id, sizeof(id), "%u", mg_context_remote_id(ctx));
	call_ok(ctx, "audit_forge", NULL);
	/* The forged record went up during the call, the call's own after. */
	audit_line(0, line, sizeof(line));
	assert_string_equal(field(line, "function", v, sizeof(v)), "forged");
	assert_string_equal(field(line, "context_id", v, sizeof(v)), id);
	claimed = strstr(line, "\"claimed\":");
	assert_non_null(claimed);
	assert_true(strstr(line, "4242") > claimed);
	expect_record(1, "audit_forge", ctx, line, sizeof(line));
	finish(ctx);
	text = audit_text();
	assert_int_equal(count_lines(text), 2);
	assert_null(strstr(text, "not a map"));
	free(text);
}

/* Privileged through sudo: audited without asking, and so is a context
 * started below it (same uid: not privileged on its own). */
static void test_audit_sudo_and_below(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *mid, *below;
	char line[2048], v[64], uid[16];

	NEED_ROOT();
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 20);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgsudo");
	mid = must(mg_sudo(router, &so, &err), &err);
	assert_true(mg_context_is_privileged(mid));
	assert_true(mg_context_is_audited(mid));
	assert_int_equal(call_int(mid, "mg.getuid"), user_uid("mgsudo"));
	expect_record(0, "mg.getuid", mid, line, sizeof(line));
	snprintf(uid, sizeof(uid), "%u", (unsigned)user_uid("mgsudo"));
	assert_string_equal(field(line, "uid", v, sizeof(v)), uid);

	MG_OPTS(mg_local_opts, blo, .via = mid, .connect_timeout = 20);
	below = must(mg_local(router, &blo, &err), &err);
	assert_true(mg_context_is_audited(below));
	assert_int_equal(call_int(below, "mg.getuid"), user_uid("mgsudo"));
	/* Line 1 is mid serving mg.via.start (it started `below`). */
	audit_line(1, line, sizeof(line));
	assert_string_equal(field(line, "function", v, sizeof(v)), "mg.via.start");
	expect_record(2, "mg.getuid", below, line, sizeof(line));
	finish(below);
	finish(mid);
}

/* Root on another host (ssh): privileged, so audited; its record comes
 * up the byte stream. And a strictly sandboxed child is audited as well:
 * syslog was opened before the sandbox. */
static void test_audit_ssh_root_and_sandboxed(void **state)
{
	static const char *const args[] = { "-o", fx.known, "-o",
					    "GlobalKnownHostsFile=/dev/null", NULL };
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "strict", .caps = "" };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char line[2048], v[64];

	NEED_SSHD();
	MG_OPTS(mg_local_opts, lo, .connect_timeout = 20);
	MG_OPTS(mg_ssh_opts, so, .local = &lo, .hostname = "127.0.0.1", .port = fx.port,
		.username = "root", .identity_file = fx.key, .ssh_args = args);
	ctx = must(mg_ssh(router, &so, &err), &err);
	assert_true(mg_context_is_audited(ctx));
	assert_int_equal(call_int(ctx, "mg.getuid"), 0);
	expect_record(0, "mg.getuid", ctx, line, sizeof(line));
	assert_string_equal(field(line, "uid", v, sizeof(v)), "0");
	finish(ctx);

	MG_OPTS(mg_local_opts, slo, .audit = true, .sandbox = &sb);
	ctx = must(mg_local(router, &slo, &err), &err);
	call_ok(ctx, "audit_echo", NULL);
	assert_int_equal(mg_call(ctx, "audit_fails", NULL, NULL, &err), -EREMOTEIO);
	audit_line(1, line, sizeof(line));
	assert_string_equal(field(line, "function", v, sizeof(v)), "audit_echo");
	audit_line(2, line, sizeof(line));
	assert_string_equal(field(line, "status", v, sizeof(v)), "error");
	finish(ctx);
}

/* The target host's syslog gets a line (facility authpriv, level notice). */
static void test_audit_syslog(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct pollfd pfd;
	char buf[2048], buf2[2048];
	ssize_t n = 0, n2 = 0;
	int fd;

	NEED_ROOT();
	if (access("/dev/log", F_OK) == 0) {
		fprintf(stderr, "# skip: /dev/log exists: a syslog daemon owns it\n");
		skip();
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	MG_OPTS(mg_local_opts, lo, .audit = true);
	ctx = mg_local(router, &lo, &err);
	if (ctx) {
		call_ok(ctx, "audit_echo", MG_LIST(mg_secret("hunter2")));
		pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 2000) == 1)
			n = recv(fd, buf, sizeof(buf) - 1, 0);
		/* A name that would forge a field, and a line in a text log. */
		mg_call(ctx, "audit_nope\nforged=1 x", NULL, NULL, &err);
		if (poll(&pfd, 1, 2000) == 1)
			n2 = recv(fd, buf2, sizeof(buf2) - 1, 0);
		finish(ctx);
	}
	close(fd);
	unlink("/dev/log");
	assert_non_null(ctx);
	assert_true(n > 0);
	buf[n] = '\0';
	/* <PRI>: LOG_AUTHPRIV (10 << 3) | LOG_NOTICE (5) */
	assert_memory_equal(buf, "<85>", 4);
	assert_non_null(strstr(buf, "mitogen["));
	assert_non_null(strstr(buf, "function=audit_echo"));
	assert_non_null(strstr(buf, "status=ok"));
	assert_non_null(strstr(buf, "args_sha256="));
	assert_null(strstr(buf, "hunter2"));
	assert_true(n2 > 0);
	buf2[n2] = '\0';
	assert_non_null(strstr(buf2, "function=audit_nope?forged=1?x args_sha256="));
	assert_non_null(strstr(buf2, "status=error"));
	assert_null(strchr(buf2, '\n'));
}

/* MITOGEN_AUDIT_FILE names the file for routers made afterwards. */
static void test_audit_file_from_environment(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r;
	struct mg_context *ctx;
	char path[64], *buf;

	snprintf(path, sizeof(path), "/tmp/mg-audit-env.%d.jsonl", (int)getpid());
	unlink(path);
	setenv("MITOGEN_AUDIT_FILE", path, 1);
	r = mg_router_new(NULL);
	unsetenv("MITOGEN_AUDIT_FILE");
	assert_non_null(r);
	MG_OPTS(mg_local_opts, lo, .audit = true);
	ctx = must(mg_local(r, &lo, &err), &err);
	call_ok(ctx, "audit_echo", NULL);
	finish(ctx);
	mg_router_unref(r);
	buf = audit_calls(path);
	unlink(path);
	assert_non_null(strstr(buf, "\"function\":\"audit_echo\""));
	assert_int_equal(count_lines(buf), 1);
	free(buf);
}

/* Bad paths: a clear error, the old file kept. */
static void test_audit_file_errors(void **state)
{
	struct mg_error err = MG_ERROR_INIT;

	assert_int_equal(mg_router_audit_to_file(router, "/nonexistent-dir/audit.jsonl", &err),
			 -ENOENT);
	assert_non_null(strstr(err.message, "/nonexistent-dir/audit.jsonl"));
	assert_int_equal(mg_router_audit_to_file(router, "", &err), -EINVAL);
	assert_int_equal(mg_router_audit_to_file(NULL, audit_path, &err), -EINVAL);
	/* Still writing to the first file. */
	{
		MG_OPTS(mg_local_opts, lo, .audit = true);
		struct mg_context *ctx = must(mg_local(router, &lo, &err), &err);
		char line[2048], v[64];

		call_ok(ctx, "audit_echo", NULL);
		audit_line(0, line, sizeof(line));
		assert_string_equal(field(line, "function", v, sizeof(v)), "audit_echo");
		finish(ctx);
	}
}


/* The log file an audited context keeps (mg.audit_checkpoint says), its
 * verifier key and its origin; the checkpoint is signed and sent up. */
static void agent_log(struct mg_context *ctx, char *path, size_t size, char *vkey, size_t vsize)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	const struct mg_value *f, *k;

	if (mg_call(ctx, "mg.audit_checkpoint", NULL, &v, &err) < 0) {
		fprintf(stderr, "# mg.audit_checkpoint: %s\n", err.message);
		fail();
	}
	f = mg_map_get(v, "file");
	k = mg_map_get(v, "vkey");
	assert_true(f && f->type == MG_STR && k && k->type == MG_STR);
	snprintf(path, size, "%s", f->str);
	snprintf(vkey, vsize, "%s", k->str);
	mg_value_free(v);
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = calloc(1, 1 << 17);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 17) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The number of lines of text that contain needle. */
static size_t lines_with(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = text; *p;) {
		size_t len = strcspn(p, "\n");

		n += memmem(p, len, needle, strlen(needle)) != NULL;
		p += len + (p[len] == '\n');
	}
	return n;
}

/*
 * docs/audit.md 7: records are written in batches, after the reply, but
 * none is waited for in vain: when mg.audit_checkpoint returns, every call
 * served before it is in the agent's log and covered by the checkpoint;
 * when mg_context_shutdown returns, every call is in the master's file.
 * Read at once, no polling: fewer calls than a batch, and more.
 */
static void test_audit_batch_arrival(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	const struct mg_value *note;
	char *text, *master;
	struct mg_context *ctx;
	const char *size;
	const int first = 5, more = 150;

	MG_OPTS(mg_local_opts, lo, .audit = true);
	ctx = must(mg_local(router, &lo, &err), &err);
	for (int i = 0; i < first; i++)
		call_ok(ctx, "audit_echo", MG_LIST(mg_int(i)));
	if (mg_call(ctx, "mg.audit_checkpoint", NULL, &v, &err) < 0) {
		fprintf(stderr, "# mg.audit_checkpoint: %s\n", err.message);
		fail();
	}
	/* The note's second line is the log's size: record 0 and the calls. */
	note = mg_map_get(v, "note");
	assert_true(note && note->type == MG_STR);
	size = strchr(note->str, '\n');
	assert_non_null(size);
	assert_int_equal(atoi(size + 1), 1 + first);
	text = read_all(mg_map_get(v, "file")->str);
	assert_int_equal(lines_with(text, "\"function\":\"audit_echo\""), first);
	free(text);
	mg_value_free(v);

	for (int i = 0; i < more; i++)
		call_ok(ctx, "audit_echo", MG_LIST(mg_int(i)));
	finish(ctx);
	master = audit_calls(audit_path);
	assert_int_equal(lines_with(master, "\"function\":\"audit_echo\""), first + more);
	assert_int_equal(lines_with(master, "\"function\":\"mg.audit_checkpoint\""), 1);
	free(master);
}

/*
 * docs/audit.md: the master's lines and the agent's log are chained
 * (every line ends in log, index, tree), the agent's log is ours alone
 * (0600, in our MITOGEN_AUDIT_DIR), it opens with a record naming its key,
 * checkpoints are in both, mg.run's command line is in clear but its
 * secret is not, and `mitogen audit verify` passes the untouched pair
 * with the keys `mitogen audit keys` and the agent give.
 */
static void test_audit_chain_fields(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX], vkey[TLOG_VKEY_MAX], line[4096], *text, *master;
	struct toolrun r = { 0 };
	struct mg_context *ctx;
	struct tlog_suffix sfx;
	struct stat st;

	MG_OPTS(mg_local_opts, lo, .audit = true);
	ctx = must(mg_local(router, &lo, &err), &err);
	call_ok(ctx, "mg.run", MG_LIST(MG_LIST(mg_str("/bin/echo"), mg_str("visible-arg"),
					       mg_secret("hidden-pw"))));
	call_ok(ctx, "audit_echo", NULL);
	agent_log(ctx, path, sizeof(path), vkey, sizeof(vkey));
	finish(ctx);
	assert_int_equal(strncmp(path, state_dir, strlen(state_dir)), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_uid, getuid());

	text = read_all(path);
	/* Record 0: whose log; then the calls; a checkpoint; the final one. */
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(text, "\n"), text);
	assert_non_null(strstr(line, "\"opened\":"));
	assert_non_null(strstr(line, vkey));
	assert_int_equal(tlog_line_split(line, strlen(line), &sfx), 0);
	assert_int_equal(sfx.index, 0);
	assert_non_null(strstr(text, "\"argv\":[\"/bin/echo\",\"visible-arg\",\"<secret>\"]"));
	assert_null(strstr(text, "hidden-pw"));
	assert_non_null(strstr(text, "{\"checkpoint\":\""));
	assert_non_null(strstr(text, "\\nfinal\\n"));
	free(text);

	master = read_all(audit_path);
	assert_non_null(strstr(master, "\"argv\":[\"/bin/echo\",\"visible-arg\",\"<secret>\"]"));
	assert_null(strstr(master, "hidden-pw"));
	assert_non_null(strstr(master, "{\"checkpoint\":\""));
	/* Every line of the master's file is chained or a checkpoint. */
	for (char *p = master; *p;) {
		size_t n = strcspn(p, "\n");

		snprintf(line, sizeof(line), "%.*s", (int)n, p);
		assert_true(!strncmp(line, "{\"checkpoint\":", 14) ||
			    tlog_line_split(line, strlen(line), &sfx) == 0);
		p += n + (p[n] == '\n');
	}
	free(master);

	TOOLRUN(&r, "audit", "keys");
	assert_int_equal(r.exit_code, 0);
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(r.out, "\n"), r.out);
	toolrun_free(&r);
	TOOLRUN(&r, "audit", "verify", "--key", line, "--key", vkey, audit_path, path);
	printf("# %s", r.out);
	assert_int_equal(r.exit_code, 0);
	assert_non_null(strstr(r.out, "ok: 2 logs"));
	toolrun_free(&r);
	/* With another key only (here both sides share ours: local children
	 * inherit MITOGEN_AUDIT_KEY), the checkpoints are refused. */
	{
		char kp[PATH_MAX + 16], why[256], other[TLOG_VKEY_MAX], name[TLOG_NAME_MAX + 1];
		struct tlog_key k;

		snprintf(kp, sizeof(kp), "%s/other.key", toolrun_dir());
		tlog_key_name(name);
		assert_int_equal(tlog_key_load_path(&k, kp, name, true, why, sizeof(why)), 0);
		tlog_key_vkey(&k, other);
		TOOLRUN(&r, "audit", "verify", "--key", other, audit_path, path);
		assert_int_equal(r.exit_code, 1);
		assert_non_null(strstr(r.out, "unknown key"));
		toolrun_free(&r);
		unlink(kp);
	}
	unlink(path);
}

/* `mitogen audit show`: a table by default, filters, --json. */
static void test_audit_show(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX], vkey[TLOG_VKEY_MAX];
	struct toolrun r = { 0 };
	struct mg_context *ctx;

	MG_OPTS(mg_local_opts, lo, .audit = true);
	ctx = must(mg_local(router, &lo, &err), &err);
	call_ok(ctx, "mg.run", MG_LIST(MG_LIST(mg_str("/bin/true"), mg_str("shown-arg"))));
	call_ok(ctx, "audit_echo", NULL);
	/* A function name that would clear the auditor's screen. */
	assert_int_equal(mg_call(ctx, "audit_x\x1b[2J\xc2\x9b" "31m", NULL, NULL, &err),
			 -EREMOTEIO);
	agent_log(ctx, path, sizeof(path), vkey, sizeof(vkey));
	finish(ctx);

	TOOLRUN(&r, "audit", "show", audit_path);
	assert_int_equal(r.exit_code, 0);
	assert_non_null(strstr(r.out, "audit_x?[2J?31m"));
	assert_null(strchr(r.out, '\x1b'));
	assert_null(strstr(r.out, "\xc2\x9b"));
	assert_non_null(strstr(r.out, "FUNCTION"));
	assert_non_null(strstr(r.out, "/bin/true shown-arg"));
	assert_non_null(strstr(r.out, "audit_echo"));
	toolrun_free(&r);
	TOOLRUN(&r, "audit", "show", "--function", "audit_echo", path);
	assert_int_equal(r.exit_code, 0);
	assert_null(strstr(r.out, "shown-arg"));
	assert_non_null(strstr(r.out, "audit_echo"));
	toolrun_free(&r);
	TOOLRUN(&r, "audit", "show", "--json", "--function", "mg.run", audit_path);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(toolrun_count_lines(r.out), 1);
	assert_non_null(strstr(r.out, "\"claimed\":"));
	toolrun_free(&r);
	TOOLRUN(&r, "audit", "show", "--since", "2999-01-01", audit_path);
	assert_int_equal(toolrun_count_lines(r.out), 1);	/* the heading */
	toolrun_free(&r);
	TOOLRUN(&r, "audit", "show", "--context", "no-such-context", audit_path);
	assert_int_equal(toolrun_count_lines(r.out), 1);
	toolrun_free(&r);
	TOOLRUN(&r, "audit", "show", "--bogus", audit_path);
	assert_int_equal(r.exit_code, 2);
	assert_non_null(strstr(r.err, "--bogus"));
	toolrun_free(&r);
	unlink(path);
}

/* `mitogen audit fetch -t local DIR` brings this uid's logs; verify takes
 * the directory. */
static void test_audit_fetch(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char path[PATH_MAX], vkey[TLOG_VKEY_MAX], dir[PATH_MAX], got[PATH_MAX * 2];
	char *want, *have, *name;
	struct toolrun r = { 0 };
	struct mg_context *ctx;

	MG_OPTS(mg_local_opts, lo, .audit = true);
	ctx = must(mg_local(router, &lo, &err), &err);
	call_ok(ctx, "audit_echo", NULL);
	agent_log(ctx, path, sizeof(path), vkey, sizeof(vkey));
	finish(ctx);
	snprintf(dir, sizeof(dir), "%s/fetched", toolrun_dir());
	TOOLRUN(&r, "audit", "fetch", "-t", "local", dir);
	assert_int_equal(r.exit_code, 0);
	toolrun_free(&r);
	name = strrchr(path, '/') + 1;
	snprintf(got, sizeof(got), "%s/local/%s", dir, name);
	want = read_all(path);
	have = read_all(got);
	assert_string_equal(want, have);
	free(have);
	TOOLRUN(&r, "audit", "verify", "--key", vkey, got);
	assert_int_equal(r.exit_code, 0);
	toolrun_free(&r);
	/* Two targets through one shared first hop: each its own copy. */
	TOOLRUN(&r, "audit", "fetch", "-t", "local/local,local/fork", dir);
	assert_int_equal(r.exit_code, 0);
	toolrun_free(&r);
	for (int k = 0; k < 2; k++) {
		char sub[PATH_MAX * 2 + 32];

		snprintf(sub, sizeof(sub), "%s/%s/%s", dir, k ? "local_fork" : "local_local", name);
		have = read_all(sub);
		assert_string_equal(want, have);
		free(have);
		unlink(sub);
	}
	free(want);
	TOOLRUN(&r, "audit", "fetch", "-t", "nosuchkind:x", dir);
	assert_int_equal(r.exit_code, 2);
	assert_non_null(strstr(r.err, "nosuchkind:x"));
	toolrun_free(&r);
	unlink(got);
	unlink(path);
}

/* A key others can read is refused (the context still serves, keeps no
 * log, and says why); `keys --rotate` makes a new key and keeps the old. */
static void test_audit_keys(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char kpath[PATH_MAX + 16], first[TLOG_VKEY_MAX], *old;
	struct toolrun r = { 0 };
	struct mg_context *ctx;
	struct mg_value *v = NULL;

	snprintf(kpath, sizeof(kpath), "%s/key", state_dir);
	TOOLRUN(&r, "audit", "keys");
	assert_int_equal(r.exit_code, 0);
	snprintf(first, sizeof(first), "%.*s", (int)strcspn(r.out, "\n"), r.out);
	toolrun_free(&r);
	TOOLRUN(&r, "audit", "keys", "--rotate");
	assert_int_equal(r.exit_code, 0);
	assert_true(strncmp(r.out, first, strlen(first)) != 0);	/* a new key first */
	old = strchr(r.out, '\n');
	assert_non_null(old);
	assert_int_equal(strncmp(old + 1, first, strlen(first)), 0);	/* the old one kept */
	toolrun_free(&r);

	assert_int_equal(chmod(kpath, 0644), 0);
	MG_OPTS(mg_local_opts, lo, .audit = true);
	ctx = must(mg_local(router, &lo, &err), &err);
	call_ok(ctx, "audit_echo", NULL);
	assert_int_equal(mg_call(ctx, "mg.audit_checkpoint", NULL, &v, &err), -EREMOTEIO);
	assert_non_null(strstr(err.message, "mode 0600"));
	finish(ctx);
	TOOLRUN(&r, "audit", "keys");
	assert_int_equal(r.exit_code, 1);
	assert_non_null(strstr(r.err, kpath));
	toolrun_free(&r);
	assert_int_equal(chmod(kpath, 0600), 0);
}

#define AUDIT_TEST(fn) cmocka_unit_test_setup_teardown(fn, audit_setup, audit_teardown)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		AUDIT_TEST(test_audit_requested),
		AUDIT_TEST(test_audit_digest_definition),
		AUDIT_TEST(test_audit_time_and_duration),
		AUDIT_TEST(test_audit_fork),
		AUDIT_TEST(test_audit_plain_child_not_recorded),
		AUDIT_TEST(test_audit_forged_context_id),
		AUDIT_TEST(test_audit_sudo_and_below),
		AUDIT_TEST(test_audit_ssh_root_and_sandboxed),
		AUDIT_TEST(test_audit_syslog),
		AUDIT_TEST(test_audit_file_from_environment),
		AUDIT_TEST(test_audit_file_errors),
		AUDIT_TEST(test_audit_chain_fields),
		AUDIT_TEST(test_audit_batch_arrival),
		AUDIT_TEST(test_audit_show),
		AUDIT_TEST(test_audit_fetch),
		AUDIT_TEST(test_audit_keys),
	};
	char env[PATH_MAX + 16];
	int ret;

	mg_main(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (toolrun_setup() < 0)
		return 1;
	/* Our master's key and our local children's logs in our directory. */
	snprintf(state_dir, sizeof(state_dir), "%s/state", toolrun_dir());
	if (mkdir(state_dir, 0700) < 0)
		return 1;
	snprintf(env, sizeof(env), "%s/key", state_dir);
	setenv("MITOGEN_AUDIT_KEY", env, 1);
	setenv("MITOGEN_AUDIT_DIR", state_dir, 1);
	if (fixture_up(true) < 0)
		return 1;
	ret = mg_test_run("transports/audit", tests, sizeof(tests) / sizeof(tests[0]));
	fixture_down();
	{
		char cmd[PATH_MAX + 32];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
		if (system(cmd) != 0)
			ret = 1;
	}
	toolrun_teardown();
	return ret;
}
