// SPDX-License-Identifier: MIT
/*
 * selftests/tools/test_output.c — what the mitogen tool prints, from fixed
 * inputs fed straight to tools/output.c: prefixed lines, -b groups with
 * their hosts folded into ranges, --diff, the summary, the exit status
 * table, and --json events parsed back and checked against the schema of
 * docs/json-schema.md.
 *
 * Owns: its memfd outputs. Must not touch: the library beyond values.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <mitogen/mitogen.h>

#include "tools/json_args.h"
#include "tools/output.h"

/* cmocka.h needs these first. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "selftests/lib/harness.h"

/* An output under test and what it wrote. */
struct fixture {
	int out_fd, err_fd;
	struct output *o;
	char *out, *err;	/* after collect() */
};

static const char *const hosts6[] = { "host01", "host02", "host03",
				      "host04", "host05", "host06" };
static const char *const specs6[] = { "ssh:host01", "ssh:host02", "ssh:host03",
				      "ssh:host04", "ssh:host05", "ssh:host06" };

static void fx_open(struct fixture *f, enum out_mode mode, bool diff, bool summary,
		    size_t n, const char *const *labels, const char *const *specs,
		    size_t nsteps, const bool *is_call)
{
	static const char *const texts[] = { "step one", "step two", "step three" };
	struct out_opts o = {
		.mode = mode, .diff = diff, .summary = summary, .command = "run",
		.nsteps = nsteps, .step_is_call = is_call, .step_text = texts,
	};

	memset(f, 0, sizeof(*f));
	f->out_fd = memfd_create("out", MFD_CLOEXEC);
	f->err_fd = memfd_create("err", MFD_CLOEXEC);
	assert_true(f->out_fd >= 0 && f->err_fd >= 0);
	o.out_fd = f->out_fd;
	o.err_fd = f->err_fd;
	f->o = out_new(&o, n, labels, specs);
	assert_non_null(f->o);
}

static char *fd_text(int fd)
{
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = malloc((size_t)len + 1);

	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
	buf[len] = '\0';
	return buf;
}

/* Finish (returns the exit status) and read both outputs. */
static int fx_finish(struct fixture *f)
{
	int code = out_finish(f->o);

	f->out = fd_text(f->out_fd);
	f->err = fd_text(f->err_fd);
	return code;
}

static void fx_close(struct fixture *f)
{
	out_free(f->o);
	close(f->out_fd);
	close(f->err_fd);
	free(f->out);
	free(f->err);
}

static void say(struct output *o, size_t t, int fd, const char *text)
{
	out_data(o, t, 0, fd, text, strlen(text));
}

#define assert_text(got, want)                                               \
	do {                                                                 \
		if (strcmp((got), (want)))                                   \
			fail_msg("got:\n%s\n--- want:\n%s", (got), (want));  \
	} while (0)

/* --- prefixed lines --------------------------------------------------- */

static void test_prefix_lines(void **state)
{
	struct fixture f;

	(void)state;
	fx_open(&f, OUT_PREFIX, false, false, 2, hosts6, specs6, 1, NULL);
	out_start(f.o, 0, 0);
	out_start(f.o, 1, 0);
	/* a line in two chunks, interleaved with another target's */
	say(f.o, 0, 1, "hel");
	say(f.o, 1, 1, "other\nsec");
	say(f.o, 0, 1, "lo\nworld");
	say(f.o, 0, 2, "oops\n");
	out_exit(f.o, 0, 0, 0);		/* flushes "world" with a newline */
	say(f.o, 1, 1, "ond");
	out_exit(f.o, 1, 0, 3);
	assert_int_equal(fx_finish(&f), 3);
	assert_text(f.out, "host02: other\nhost01: hello\nhost01: world\nhost02: second\n");
	/* the failed host is named on stderr, as pdsh does */
	assert_text(f.err, "host01: oops\nmitogen: host02: exit status 3\n");
	fx_close(&f);
}

static void test_prefix_errors(void **state)
{
	struct fixture f;

	(void)state;
	fx_open(&f, OUT_PREFIX, false, false, 2, hosts6, specs6, 1, NULL);
	out_error(f.o, 0, OUT_NO_STEP, OUT_UNREACHABLE, "StreamError", 111,
		  "ssh said: Connection refused", 1, "host01");
	out_start(f.o, 1, 0);
	say(f.o, 1, 1, "partial");
	out_error(f.o, 1, 0, OUT_TIMEOUT, "TimeoutError", 110,
		  "the command did not finish", 1, "host02");
	assert_int_equal(fx_finish(&f), OUT_EXIT_UNREACHABLE);
	/* what the timed-out command printed is shown */
	assert_text(f.out, "host02: partial\n");
	assert_text(f.err,
		    "mitogen: host01: StreamError: ssh said: Connection refused\n"
		    "mitogen: host02: TimeoutError: the command did not finish\n");
	fx_close(&f);
}

/* --- gather, diff, summary ---------------------------------------------- */

/* host01-03 and 05 say the same; host04 differs; host06 is unreachable. */
static void feed_six(struct fixture *f)
{
	for (size_t t = 0; t < 6; t++) {
		if (t == 5) {
			out_error(f->o, t, OUT_NO_STEP, OUT_UNREACHABLE, "StreamError",
				  111, "connection refused", 1, "host06");
			out_target_done(f->o, t);
			continue;
		}
		out_start(f->o, t, 0);
		say(f->o, t, 1, "Linux\n");
		say(f->o, t, 1, t == 3 ? "6.1\nextra\n" : "6.18\n");
		out_exit(f->o, t, 0, t == 3 ? 1 : 0);
		out_target_done(f->o, t);
	}
}

static void test_gather_folds(void **state)
{
	struct fixture f;

	(void)state;
	fx_open(&f, OUT_GATHER, false, false, 6, hosts6, specs6, 1, NULL);
	feed_six(&f);
	/* nothing is written before the end */
	assert_int_equal(lseek(f.out_fd, 0, SEEK_END), 0);
	assert_int_equal(fx_finish(&f), OUT_EXIT_UNREACHABLE);
	assert_text(f.out,
		    "----------------\n"
		    "host[01-03,05] (4)\n"
		    "----------------\n"
		    "Linux\n6.18\n"
		    "----------------\n"
		    "host04 (1): exit status 1\n"
		    "----------------\n"
		    "Linux\n6.1\nextra\n"
		    "----------------\n"
		    "host06 (1): StreamError: connection refused\n"
		    "----------------\n");
	assert_text(f.err, "");
	fx_close(&f);
}

static void test_gather_diff(void **state)
{
	struct fixture f;

	(void)state;
	fx_open(&f, OUT_GATHER, true, false, 6, hosts6, specs6, 1, NULL);
	feed_six(&f);
	fx_finish(&f);
	assert_text(f.out,
		    "--- host[01-03,05] (4)\n"
		    "+++ host04 (1): exit status 1\n"
		    "@@ -1,2 +1,3 @@\n"
		    " Linux\n"
		    "-6.18\n"
		    "+6.1\n"
		    "+extra\n"
		    "--- host[01-03,05] (4)\n"
		    "+++ host06 (1): StreamError: connection refused\n"
		    "@@ -1,2 +0,0 @@\n"
		    "-Linux\n"
		    "-6.18\n");
	fx_close(&f);
}

static void test_diff_hunks(void **state)
{
	char a[512] = "", b[512] = "", *d;

	(void)state;
	/* 20 lines, line 3 and line 18 changed: two hunks, 3 lines of context */
	for (int i = 1; i <= 20; i++) {
		sprintf(a + strlen(a), "l%d\n", i);
		sprintf(b + strlen(b), i == 3 ? "X\n" : i == 18 ? "Y\n" : "l%d\n", i);
	}
	d = out_diff(a, strlen(a), b, strlen(b));
	assert_non_null(d);
	assert_text(d,
		    "@@ -1,6 +1,6 @@\n l1\n l2\n-l3\n+X\n l4\n l5\n l6\n"
		    "@@ -15,6 +15,6 @@\n l15\n l16\n l17\n-l18\n+Y\n l19\n l20\n");
	free(d);
	d = out_diff("same\n", 5, "same\n", 5);
	assert_text(d, "");
	free(d);
}

static void test_summary(void **state)
{
	static const char *const labels[] = { "web01", "web02", "web03", "web04",
					      "web05", "db1" };
	struct fixture f;

	(void)state;
	fx_open(&f, OUT_PREFIX, false, true, 6, labels, labels, 1, NULL);
	for (size_t t = 0; t < 6; t++) {
		out_start(f.o, t, 0);
		if (t == 1 || t == 3)
			out_exit(f.o, t, 0, 2);
		else if (t == 4)
			out_exit(f.o, t, 0, -9);
		else if (t == 5)
			out_error(f.o, t, OUT_NO_STEP, OUT_UNREACHABLE, "PasswordError",
				  13, "login refused", 1, "db1");
		else
			out_exit(f.o, t, 0, 0);
		out_target_done(f.o, t);
	}
	assert_int_equal(fx_finish(&f), 255);
	assert_non_null(strstr(f.err,
			       "mitogen: 6 targets: 2 ok, 4 failed (exit status 255)\n"
			       "mitogen:   web[02,04] (2): exit status 2\n"
			       "mitogen:   web05 (1): killed by signal 9 (SIGKILL)\n"
			       "mitogen:   db1 (1): unreachable (PasswordError)\n"));
	fx_close(&f);
}

/* --- exit status ------------------------------------------------------- */

static int code_of(bool is_call, enum out_outcome a, int sa, enum out_outcome b, int sb)
{
	struct fixture f;
	bool calls[1] = { is_call };
	int code;

	fx_open(&f, OUT_PREFIX, false, false, 2, hosts6, specs6, 1, calls);
	if (a == OUT_OK || a == OUT_FAILED)
		out_exit(f.o, 0, 0, sa);
	else
		out_error(f.o, 0, 0, a, "X", 0, "x", 0, NULL);
	if (b == OUT_OK || b == OUT_FAILED)
		out_exit(f.o, 1, 0, sb);
	else
		out_error(f.o, 1, 0, b, "X", 0, "x", 0, NULL);
	code = fx_finish(&f);
	fx_close(&f);
	return code;
}

static void test_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(code_of(false, OUT_OK, 0, OUT_OK, 0), 0);
	assert_int_equal(code_of(false, OUT_OK, 0, OUT_FAILED, 3), 3);
	assert_int_equal(code_of(false, OUT_FAILED, 5, OUT_FAILED, 3), 5);
	assert_int_equal(code_of(false, OUT_FAILED, -15, OUT_FAILED, 3), 128 + 15);
	/* the command exiting 3 is not "unreachable" */
	assert_int_equal(code_of(false, OUT_FAILED, 3, OUT_UNREACHABLE, 0), 255);
	assert_int_equal(code_of(false, OUT_CALLERR, 0, OUT_FAILED, 3), 252);
	assert_int_equal(code_of(true, OUT_CALLERR, 0, OUT_OK, 0), 1);
	assert_int_equal(code_of(false, OUT_TIMEOUT, 0, OUT_FAILED, 3), 253);
	assert_int_equal(code_of(false, OUT_TIMEOUT, 0, OUT_LOST, 0), 254);
	assert_int_equal(code_of(false, OUT_LOST, 0, OUT_UNREACHABLE, 0), 255);
}

/* --- JSON ------------------------------------------------------------- */

/* The schema of docs/json-schema.md: per event, each field and its type
 * ('s' str, 'i' int, 'n' int or null, 'S' str or null, 'f' number,
 * 'v' any); '?' after the type: may be left out. */
struct field {
	const char *name;
	const char *type;
};

static const struct {
	const char *event;
	struct field fields[12];
} schema[] = {
	{ "begin", { { "schema", "s" }, { "command", "s" }, { "targets", "i" },
		     { "steps", "i" } } },
	{ "start", { { "target", "s" }, { "spec", "s" }, { "index", "i" },
		     { "step", "i" } } },
	{ "stdout", { { "target", "s" }, { "spec", "s" }, { "index", "i" },
		      { "step", "i" }, { "data", "s?" }, { "data_base64", "s?" } } },
	{ "stderr", { { "target", "s" }, { "spec", "s" }, { "index", "i" },
		      { "step", "i" }, { "data", "s?" }, { "data_base64", "s?" } } },
	{ "exit", { { "target", "s" }, { "spec", "s" }, { "index", "i" },
		    { "step", "i" }, { "status", "n" }, { "signal", "n" } } },
	{ "result", { { "target", "s" }, { "spec", "s" }, { "index", "i" },
		      { "step", "i" }, { "value", "v" } } },
	{ "error", { { "target", "s" }, { "spec", "s" }, { "index", "i" },
		     { "step", "n" }, { "kind", "s" }, { "error", "s" },
		     { "errno", "i" }, { "message", "s" }, { "hop", "n" },
		     { "hop_spec", "S" } } },
	{ "done", { { "target", "s" }, { "spec", "s" }, { "index", "i" },
		    { "outcome", "s" }, { "code", "i" } } },
	{ "end", { { "targets", "i" }, { "ok", "i" }, { "failed", "i" },
		   { "not_run", "i" }, { "code", "i" } } },
};

static bool type_ok(const struct mg_value *v, char t)
{
	switch (t) {
	case 's': return v->type == MG_STR;
	case 'i': return v->type == MG_INT;
	case 'n': return v->type == MG_INT || v->type == MG_NIL;
	case 'S': return v->type == MG_STR || v->type == MG_NIL;
	case 'f': return v->type == MG_INT || v->type == MG_FLOAT;
	default: return true;
	}
}

/* Parse one line of NDJSON and check it against the schema; returns the
 * value (caller frees). */
static struct mg_value *check_event(const char *line)
{
	bool is_json = false;
	struct mg_value *v = json_args_parse(line, &is_json);
	const struct mg_value *ev, *ver, *t;
	size_t k, nfields = 0;

	if (!v || !is_json || v->type != MG_MAP)
		fail_msg("not a JSON object: %s", line);
	ver = mg_map_get(v, "v");
	ev = mg_map_get(v, "event");
	t = mg_map_get(v, "t");
	if (!ver || ver->type != MG_INT || ver->i != 1 || !ev || ev->type != MG_STR ||
	    !t || !type_ok(t, 'f'))
		fail_msg("no v:1, event, t in: %s", line);
	for (k = 0; k < sizeof(schema) / sizeof(schema[0]); k++)
		if (!strcmp(schema[k].event, ev->str))
			break;
	if (k == sizeof(schema) / sizeof(schema[0]))
		fail_msg("event '%s' is not in the schema", ev->str);
	for (const struct field *fl = schema[k].fields; fl->name; fl++, nfields++) {
		const struct mg_value *x = mg_map_get(v, fl->name);

		if (!x && fl->type[1] != '?')
			fail_msg("%s: no '%s' in: %s", ev->str, fl->name, line);
		if (x && !type_ok(x, fl->type[0]))
			fail_msg("%s: '%s' has the wrong type in: %s", ev->str, fl->name, line);
	}
	/* nothing the schema does not list: v, event, t and the fields */
	for (uint32_t i = 0; i < v->len; i++) {
		const char *key = v->items[2 * i].str;
		bool known = !strcmp(key, "v") || !strcmp(key, "event") || !strcmp(key, "t");

		for (const struct field *fl = schema[k].fields; fl->name && !known; fl++)
			known = !strcmp(key, fl->name);
		if (!known)
			fail_msg("%s: field '%s' is not in the schema: %s", ev->str, key, line);
	}
	/* stdout/stderr carry exactly one of data, data_base64 */
	if (!strncmp(ev->str, "std", 3) &&
	    !mg_map_get(v, "data") == !mg_map_get(v, "data_base64"))
		fail_msg("%s: want one of data, data_base64: %s", ev->str, line);
	return v;
}

static const char *str_of(const struct mg_value *v, const char *key)
{
	const struct mg_value *x = mg_map_get(v, key);

	return x && x->type == MG_STR ? x->str : "";
}

static void test_json_events(void **state)
{
	static const bool is_call[] = { false, true };
	struct fixture f;
	struct mg_value *ev[32];
	size_t n = 0;
	char *save = NULL, stdout_data[64] = "";

	(void)state;
	fx_open(&f, OUT_JSON, false, false, 3, hosts6, specs6, 2, is_call);
	out_start(f.o, 0, 0);
	/* "é" (c3 a9) cut between two chunks: one string event each side */
	say(f.o, 0, 1, "caf\xc3");
	say(f.o, 0, 1, "\xa9\n\"q\"\t\x01");
	/* not UTF-8 at all: base64 */
	out_data(f.o, 0, 0, 2, "\xff\xfe", 2);
	out_exit(f.o, 0, 0, 0);
	out_start(f.o, 0, 1);
	out_result(f.o, 0, 1, "{\"pid\":42}");
	out_target_done(f.o, 0);
	out_start(f.o, 1, 0);
	out_exit(f.o, 1, 0, -15);
	out_target_done(f.o, 1);
	out_error(f.o, 2, OUT_NO_STEP, OUT_UNREACHABLE, "HostKeyError", 13,
		  "host key \"verification\" failed", 2, "ssh:web3");
	out_target_done(f.o, 2);
	assert_int_equal(fx_finish(&f), 255);

	for (char *line = strtok_r(f.out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		assert_true(n < 32);
		ev[n++] = check_event(line);
	}
	assert_string_equal(str_of(ev[0], "event"), "begin");
	assert_string_equal(str_of(ev[0], "schema"), "mitogen-tool/1");
	assert_string_equal(str_of(ev[n - 1], "event"), "end");
	for (size_t i = 0; i < n; i++) {
		const char *e = str_of(ev[i], "event");

		if (!strcmp(e, "stdout"))
			strcat(stdout_data, str_of(ev[i], "data"));
		if (!strcmp(e, "stderr"))
			assert_string_equal(str_of(ev[i], "data_base64"), "//4=");
		if (!strcmp(e, "exit") && mg_map_get(ev[i], "index")->i == 1) {
			assert_int_equal(mg_map_get(ev[i], "signal")->i, 15);
			assert_int_equal(mg_map_get(ev[i], "status")->type, MG_NIL);
		}
		if (!strcmp(e, "result"))
			assert_int_equal(mg_map_get(mg_map_get(ev[i], "value"), "pid")->i, 42);
		if (!strcmp(e, "error")) {
			assert_string_equal(str_of(ev[i], "kind"), "unreachable");
			assert_string_equal(str_of(ev[i], "error"), "HostKeyError");
			assert_string_equal(str_of(ev[i], "message"),
					    "host key \"verification\" failed");
			assert_int_equal(mg_map_get(ev[i], "hop")->i, 2);
			assert_string_equal(str_of(ev[i], "hop_spec"), "ssh:web3");
			assert_int_equal(mg_map_get(ev[i], "step")->type, MG_NIL);
		}
		if (!strcmp(e, "done") && mg_map_get(ev[i], "index")->i == 1)
			assert_string_equal(str_of(ev[i], "outcome"), "failed");
	}
	assert_string_equal(stdout_data, "caf\xc3\xa9\n\"q\"\t\x01");
	assert_int_equal(mg_map_get(ev[n - 1], "code")->i, 255);
	assert_int_equal(mg_map_get(ev[n - 1], "ok")->i, 1);
	assert_int_equal(mg_map_get(ev[n - 1], "failed")->i, 2);
	for (size_t i = 0; i < n; i++)
		mg_value_free(ev[i]);
	fx_close(&f);
}

static void test_utf8(void **state)
{
	(void)state;
	assert_true(out_utf8_valid("plain", 5));
	assert_true(out_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
	assert_false(out_utf8_valid("\xc0\xaf", 2));		/* overlong */
	assert_false(out_utf8_valid("\xed\xa0\x80", 3));	/* surrogate */
	assert_false(out_utf8_valid("\xf4\x90\x80\x80", 4));	/* > U+10FFFF */
	assert_false(out_utf8_valid("\xe2\x82", 2));		/* cut short */
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix_lines),
		cmocka_unit_test(test_prefix_errors),
		cmocka_unit_test(test_gather_folds),
		cmocka_unit_test(test_gather_diff),
		cmocka_unit_test(test_diff_hunks),
		cmocka_unit_test(test_summary),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_json_events),
		cmocka_unit_test(test_utf8),
	};

	mg_main(argc, argv);
	return MG_TEST_RUN("tools/output", tests);
}
