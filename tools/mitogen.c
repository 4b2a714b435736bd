// SPDX-License-Identifier: MIT
/*
 * tools/mitogen.c — the `mitogen` command: run a command or call one
 * exported function on one or more targets at once (-t local/fork,local),
 * each target a chain of child contexts, and report the outcome. Children
 * of the tool are copies of the tool, so every built-in "mg." function is
 * there to call.
 *
 * Owns: argument parsing, the log callback of the tool (where library log
 * lines go: stderr), starting every target's call and gathering the
 * results as they arrive, relaying them to stdout/stderr (prefixed by
 * target when there are several) and the exit code; the syntax of -t and
 * the table of hop kinds (the one place that says which kinds exist, what
 * argument each takes and how it starts a context), remote names, and the
 * order contexts are started and stopped in.
 * Must not touch: library internals; it uses only the public headers.
 *
 * Exit status: `run` exits with the command's status (128+N when it was
 * killed by signal N), `call` with 0; on failure 1 CallError, 2 usage
 * error, 3 a context could not be started or a deadline passed
 * (StreamError, TimeoutError), 4 ChannelError. With several targets, the
 * highest of the targets' codes.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mitogen/mitogen.h>

#include "tools/json_args.h"
#include "tools/targets.h"
#include "tools/stats.h"

enum {
	TOOL_EXIT_CALL = 1,
	TOOL_EXIT_USAGE = 2,
	TOOL_EXIT_START = 3,
	TOOL_EXIT_CHANNEL = 4,
};

struct tool_opts {
	/* from -t (appended to by each -t); "local" when none was given */
	struct target_list targets;
	/* seconds for start-up and calls together; < 0: no limit */
	double timeout;
	bool verbose;
	/* --sandbox/--caps/--nofile: for the last hop of every target */
	struct mg_sandbox_opts sandbox;
	bool have_sandbox;
};

/* Room for "<Kind>: <context>: <function>: <message>". */
#define TOOL_ERRBUF (MG_ERROR_MSG_MAX + 2 * MG_ERROR_NAME_MAX + 64)

static const char tool_usage_text[] =
	"usage: mitogen [-v] COMMAND [OPTIONS] ...\n"
	"\n"
	"  mitogen run [-t TARGETS] [--timeout SECONDS] [-v] [--] CMD [ARGS...]\n"
	"      Run CMD on every target at once; relay its stdout and stderr and exit\n"
	"      with its status (128+N when killed by signal N). The tool's standard\n"
	"      input is not forwarded (CMD reads /dev/null).\n"
	"  mitogen call [-t TARGETS] [--timeout SECONDS] [-v] NAME [ARGS...]\n"
	"      Call the exported function NAME (e.g. mg.stat, mg.uname) on every\n"
	"      target at once and print each result as JSON. An ARG that parses as\n"
	"      JSON (42, -1.5, true, null, \"s\", [1,\"a\"], {\"k\":1}) is passed as\n"
	"      that value, any other ARG as a plain string.\n"
	"  mitogen --help | -h\n"
	"  mitogen --version\n"
	"\n"
	"Options:\n"
	"  -t, --target TARGETS    where to run (default: local); see Targets\n"
	"      --timeout SECONDS   give up after SECONDS (start-up and calls\n"
	"                          together); targets that have not answered by\n"
	"                          then fail with TimeoutError\n"
	"  -v, --verbose           also log DEBUG and INFO lines (default: WARNING+)\n"
	"      --sandbox PROFILE   run the last hop of each target under a seccomp\n"
	"                          profile: default, strict, or a rule file\n"
	"      --caps LIST         keep only these capabilities (comma-separated,\n"
	"                          e.g. cap_net_bind_service; '' drops all)\n"
	"      --nofile N          limit open files of the last hop to N\n"
	"                          (any of the three also sets no_new_privs)\n"
	"\n"
	"Targets:\n"
	"  TARGETS is a comma-separated list of targets, all run in parallel. A\n"
	"  target is a chain of hops separated by '/', each hop started through\n"
	"  the one before it; CMD or NAME runs in the last hop. Hop kinds: local\n"
	"  (a new process from the tool's image) and fork (a fork of its parent).\n"
	"      -t local                  a local child (the default)\n"
	"      -t local/fork/local       a local child, a fork inside it, and a\n"
	"                                local child of that fork\n"
	"      -t local,fork,local/local three targets\n"
	"  -t may be given more than once; the targets add up. With more than one\n"
	"  target every line of output is prefixed with the target and \": \"\n"
	"  (\"local/fork: hello\"; call prints \"TARGET: <json>\"), on stdout or\n"
	"  stderr as the target wrote it, and errors read \"mitogen: TARGET: ...\".\n"
	"\n"
	"Exit status: the command's own (run) or 0 (call) on success; 1 CallError,\n"
	"2 usage error, 3 the context could not start or the timeout passed,\n"
	"4 ChannelError (the context went away). With several targets, the\n"
	"worst (highest) of the targets' statuses.\n";

static int tool_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* Print "mitogen: <reason>" and a hint; returns the usage exit code. */
static int tool_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("mitogen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'mitogen --help'.\n", stderr);
	return TOOL_EXIT_USAGE;
}

static int tool_help(void)
{
	fputs(tool_usage_text, stdout);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int tool_version(void)
{
	printf("mitogen %d.%d.%d (libmitogen %s)\n", MG_VERSION_MAJOR,
	       MG_VERSION_MINOR, MG_VERSION_PATCH, mg_version());
	return fflush(stdout) == 0 ? 0 : 1;
}

/* Library log lines: "[source] LEVEL line" on stderr. */
static void tool_log(enum mg_log_level level, const char *source,
		     const char *line, void *userdata)
{
	const bool *verbose = userdata;

	if (level < MG_LOG_WARNING && !*verbose)
		return;
	fprintf(stderr, "[%s] %s %s\n", source ? source : "?",
		mg_log_level_name(level), line ? line : "");
}

/*
 * When a library call failed without saying why in err, say it from rc so
 * that the message and exit code are never empty.
 */
static void tool_error_fill(struct mg_error *err, int rc,
			    enum mg_error_kind kind, const char *what)
{
	if (err->kind != MG_ERR_NONE)
		return;
	err->kind = kind;
	err->errnum = -rc;
	snprintf(err->message, sizeof(err->message), "%s: %s", what,
		 strerror(-rc));
}

static int tool_exit_code(const struct mg_error *err)
{
	switch (err->kind) {
	case MG_ERR_CHANNEL:
	case MG_ERR_LATCH:
		return TOOL_EXIT_CHANNEL;
	case MG_ERR_STREAM:
	case MG_ERR_TIMEOUT:
	case MG_ERR_PASSWORD:
	case MG_ERR_HOSTKEY:
		return TOOL_EXIT_START;
	case MG_ERR_CALL:
	default:
		return TOOL_EXIT_CALL;
	}
}

/* The kind a bare -errno from a call most likely stands for. */
static enum mg_error_kind tool_kind_of(int rc)
{
	switch (rc) {
	case -ETIMEDOUT:
		return MG_ERR_TIMEOUT;
	case -EPIPE:
		return MG_ERR_CHANNEL;
	default:
		return MG_ERR_CALL;
	}
}

/*
 * Parse the options of a subcommand; on success *ret_first is the index in
 * argv of the first operand. Returns 0 or the exit code to leave with
 * (-1 for "help printed, exit 0").
 */
static int tool_parse_opts(int argc, char **argv, struct tool_opts *o,
			   int *ret_first)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "target", required_argument, NULL, 't' },
		/* the first version's name for it */
		{ "type", required_argument, NULL, 't' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "sandbox", required_argument, NULL, 'S' },
		{ "caps", required_argument, NULL, 'C' },
		{ "nofile", required_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	/* argv[0] is the subcommand; "+": stop at the first operand, so a
	 * command's own options and negative numbers pass through untouched */
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:ht:v", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			return tool_help() == 0 ? -1 : 1;
		case 't': {
			char why[512];
			int ret = target_list_parse(&o->targets, optarg, why,
						    sizeof(why));

			if (ret == -EINVAL)
				return tool_usage_error("%s", why);
			if (ret < 0) {
				fprintf(stderr, "mitogen: -t: %s\n",
					strerror(-ret));
				return TOOL_EXIT_START;
			}
			break;
		}
		case 'T': {
			char *end;

			errno = 0;
			o->timeout = strtod(optarg, &end);
			if (errno || end == optarg || *end ||
			    !isfinite(o->timeout) || o->timeout <= 0)
				return tool_usage_error(
					"--timeout wants a positive number of seconds, not '%s'",
					optarg);
			break;
		}
		case 'v':
			o->verbose = true;
			break;
		case 'S':
			o->sandbox.seccomp = optarg;
			o->have_sandbox = true;
			break;
		case 'C':
			o->sandbox.caps = optarg;
			o->have_sandbox = true;
			break;
		case 'N': {
			char *end;

			errno = 0;
			o->sandbox.rlimits.nofile = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end || o->sandbox.rlimits.nofile <= 0)
				return tool_usage_error(
					"--nofile wants a positive number, not '%s'", optarg);
			o->have_sandbox = true;
			break;
		}
		case ':':
			return tool_usage_error("option '%s' needs an argument",
						argv[optind - 1]);
		default:
			if (optopt)
				return tool_usage_error(
					"unknown option '-%c' for '%s'", optopt,
					argv[0]);
			return tool_usage_error("unknown option '%s' for '%s'",
						argv[optind - 1], argv[0]);
		}
	}
	if (o->targets.n == 0) {
		int ret = target_list_parse(&o->targets, "local", NULL, 0);

		if (ret < 0) {
			fprintf(stderr, "mitogen: -t: %s\n", strerror(-ret));
			return TOOL_EXIT_START;
		}
	}
	*ret_first = optind;
	return 0;
}

/* --- targets, calls and results ------------------------------------------ */

/* What the tool asks of every target. */
enum tool_mode {
	TOOL_RUN,	/* mg.run(cmd): relay output, exit with its status */
	TOOL_CALL,	/* any function: print its result as JSON */
};

/* One target's call. */
struct tool_task {
	struct target *target;
	struct mg_receiver *rx;	/* the call's result arrives here; owned */
	/* Sent and not answered when we gave up: its last hop may still be
	 * busy, so stopping it must not wait. */
	bool busy;
};

struct tool_session {
	enum tool_mode mode;
	const char *fn;
	struct mg_router *router;
	struct target_list *targets;
	struct tool_task *tasks;	/* one per target */
	/* target_clock() time the whole command must end by; < 0: none */
	double deadline;
	double timeout;			/* --timeout, for messages */
	/* more than one target: every line of output says whose it is */
	bool prefix;
	/* for the last hop of every target, or NULL */
	const struct mg_sandbox_opts *sandbox;
	/* the exit status: the worst (highest) code reported so far */
	int worst;
};

/* Seconds left before the deadline (MG_FOREVER when there is none). */
static double tool_remaining(const struct tool_session *s)
{
	double left;

	if (s->deadline < 0)
		return MG_FOREVER;
	left = s->deadline - target_clock();
	return left > 0 ? left : 0;
}

static void tool_worst(struct tool_session *s, int code)
{
	if (code > s->worst)
		s->worst = code;
}

static void tool_say(const struct tool_session *s, const struct tool_task *t,
		     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "mitogen: [TARGET: ]<text>" on stderr, in one write. */
static void tool_say(const struct tool_session *s, const struct tool_task *t,
		     const char *fmt, ...)
{
	char text[TOOL_ERRBUF];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (s->prefix && t)
		fprintf(stderr, "mitogen: %s: %s\n", t->target->spec, text);
	else
		fprintf(stderr, "mitogen: %s\n", text);
}

/* Report a failed target: print its error and count its exit code. */
static void tool_task_fail(struct tool_session *s, const struct tool_task *t,
			   const struct mg_error *err)
{
	char buf[TOOL_ERRBUF];

	tool_say(s, t, "%s", mg_error_str(err, buf, sizeof(buf)));
	tool_worst(s, tool_exit_code(err));
}

static int tool_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Write data to fd with "<prefix>: " before every line; a last line
 * without a newline gets one. Built in memory and written at once, so that
 * the lines of one target are not split by a library log line.
 */
static int tool_write_prefixed(int fd, const char *prefix, const char *data,
			       size_t len)
{
	size_t plen = strlen(prefix), lines = 0, used = 0;
	char *buf;
	int ret;

	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	if (data[len - 1] != '\n')
		lines++;
	buf = malloc(len + lines * (plen + 3));
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(data + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (data + i)) : len - i;

		memcpy(buf + used, prefix, plen);
		used += plen;
		buf[used++] = ':';
		buf[used++] = ' ';
		memcpy(buf + used, data + i, n);
		used += n;
		buf[used++] = '\n';
		i += n + 1;
	}
	ret = tool_write_all(fd, buf, used);
	free(buf);
	return ret;
}

/* A bytes (or str) field of a mg.run result. */
static bool tool_bytes_field(const struct mg_value *m, const char *key,
			     const void **ret_p, size_t *ret_len)
{
	const struct mg_value *v = mg_map_get(m, key);

	if (!v || (v->type != MG_BYTES && v->type != MG_STR))
		return false;
	*ret_p = v->bytes;
	*ret_len = v->len;
	return true;
}

/* Relay the result of mg.run (borrowed) and count the command's status. */
static void tool_run_result(struct tool_session *s, const struct tool_task *t,
			    const struct mg_value *result)
{
	const struct mg_value *status = mg_map_get(result, "status");
	const void *out = NULL, *err = NULL;
	size_t out_len = 0, err_len = 0;

	if (!result || result->type != MG_MAP || !status ||
	    status->type != MG_INT ||
	    !tool_bytes_field(result, "stdout", &out, &out_len) ||
	    !tool_bytes_field(result, "stderr", &err, &err_len)) {
		tool_say(s, t, "%s returned an unexpected result", s->fn);
		tool_worst(s, TOOL_EXIT_CALL);
		return;
	}
	/* Our own stdout may be closed or a broken pipe: that is not the
	 * command's failure, so its status still wins. */
	if (s->prefix) {
		if (tool_write_prefixed(STDOUT_FILENO, t->target->spec, out,
					out_len) == -ENOMEM ||
		    tool_write_prefixed(STDERR_FILENO, t->target->spec, err,
					err_len) == -ENOMEM) {
			tool_say(s, t, "cannot relay the output: %s",
				 strerror(ENOMEM));
			tool_worst(s, TOOL_EXIT_CALL);
		}
	} else {
		tool_write_all(STDOUT_FILENO, out, out_len);
		tool_write_all(STDERR_FILENO, err, err_len);
	}
	if (status->i < 0)
		tool_worst(s, 128 + (int)(-status->i & 0x7f));
	else
		tool_worst(s, (int)(status->i & 0xff));
}

/* Print a call's result (borrowed; NULL is nil) as one line of JSON. */
static void tool_call_result(struct tool_session *s, const struct tool_task *t,
			     const struct mg_value *result)
{
	char *json = result ? mg_value_to_json_alloc(result) : strdup("null");

	if (!json) {
		tool_say(s, t, "cannot format the result: %s", strerror(ENOMEM));
		tool_worst(s, TOOL_EXIT_CALL);
		return;
	}
	if (s->prefix)
		printf("%s: %s\n", t->target->spec, json);
	else
		printf("%s\n", json);
	free(json);
	if (fflush(stdout) != 0) {
		tool_say(s, t, "writing the result: %s", strerror(errno));
		tool_worst(s, TOOL_EXIT_CALL);
	}
}

/*
 * Start target t and send it the call (args taken). On failure the target
 * is reported at once; a target that answers is reported when its answer
 * is gathered.
 */
static void tool_task_start(struct tool_session *s, struct tool_task *t,
			    struct mg_select *sel, struct mg_value *args)
{
	struct mg_error err = MG_ERROR_INIT;
	int rc;

	rc = target_start(t->target, s->router, s->deadline, s->sandbox, &err);
	if (rc < 0) {
		mg_value_free(args);
		tool_error_fill(&err, rc, MG_ERR_STREAM,
				"cannot start a context");
		tool_task_fail(s, t, &err);
		return;
	}
	t->rx = mg_call_async(target_last(t->target), s->fn, args, &err);
	if (!t->rx) {
		rc = errno ? -errno : -EIO;
		tool_error_fill(&err, rc, tool_kind_of(rc),
				"cannot send the call");
		tool_task_fail(s, t, &err);
		return;
	}
	rc = mg_select_add(sel, t->rx);
	if (rc < 0) {
		tool_error_fill(&err, rc, MG_ERR_CALL, "cannot wait for the call");
		tool_task_fail(s, t, &err);
		return;
	}
	t->busy = true;
}

/* The task whose call answers on rx. */
static struct tool_task *tool_task_of(struct tool_session *s,
				      const struct mg_receiver *rx)
{
	for (size_t i = 0; i < s->targets->n; i++)
		if (s->tasks[i].rx && s->tasks[i].rx == rx)
			return &s->tasks[i];
	return NULL;
}

/* Report one answer (msg taken) as it arrives. */
static void tool_task_answer(struct tool_session *s, struct mg_message *msg)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *result = NULL;
	struct tool_task *t = tool_task_of(s, mg_message_receiver(msg));
	int rc;

	if (!t) {
		/* cannot happen: only the tasks' receivers are members */
		mg_message_free(msg);
		return;
	}
	t->busy = false;
	rc = mg_message_value(msg, true, &result, &err);
	mg_message_free(msg);
	if (rc < 0) {
		tool_error_fill(&err, rc, tool_kind_of(rc), s->fn);
		tool_task_fail(s, t, &err);
		return;
	}
	if (s->mode == TOOL_RUN)
		tool_run_result(s, t, result);
	else
		tool_call_result(s, t, result);
	mg_value_free(result);
}

/*
 * Wait for the answers of every busy task until the deadline, reporting
 * each as it arrives; then report the rest as timed out.
 */
static void tool_gather(struct tool_session *s, struct mg_select *sel)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_message *msg;
	int rc;

	for (;;) {
		mg_error_clear(&err);
		rc = mg_select_get(sel, tool_remaining(s), &msg, &err);
		if (rc == -ENOENT)
			return;
		if (rc < 0)
			break;
		tool_task_answer(s, msg);
	}
	for (size_t i = 0; i < s->targets->n; i++) {
		struct tool_task *t = &s->tasks[i];

		if (!t->busy)
			continue;
		mg_error_clear(&err);
		if (rc == -ETIMEDOUT) {
			err.kind = MG_ERR_TIMEOUT;
			err.errnum = ETIMEDOUT;
			snprintf(err.message, sizeof(err.message),
				 "no reply from %s within the timeout (%g s)",
				 s->fn, s->timeout);
		} else {
			tool_error_fill(&err, rc, tool_kind_of(rc), s->fn);
		}
		tool_task_fail(s, t, &err);
	}
}

/*
 * Start every target (in order, each chain hop by hop) and send each its
 * call as soon as it is up, so that the first targets work while the
 * others start; then gather the answers as they arrive. Stop every
 * context, deepest first, before returning. args is taken (each target
 * gets a copy). Returns the exit status.
 */
static int tool_go(struct tool_opts *o, enum tool_mode mode, const char *fn,
		   struct mg_value *args)
{
	struct tool_session s = {
		.mode = mode,
		.fn = fn,
		.targets = &o->targets,
		.timeout = o->timeout,
		.prefix = o->targets.n > 1,
		.sandbox = o->have_sandbox ? &o->sandbox : NULL,
	};
	struct mg_error err = MG_ERROR_INIT;
	struct mg_select *sel = NULL;

	mg_log_set_level(o->verbose ? MG_LOG_DEBUG : MG_LOG_WARNING);
	s.deadline = o->timeout > 0 ? target_clock() + o->timeout : -1;
	s.tasks = calloc(o->targets.n, sizeof(*s.tasks));
	s.router = mg_router_new(NULL);
	sel = mg_select_new(true);
	if (!s.tasks || !s.router || !sel) {
		tool_error_fill(&err, errno ? -errno : -ENOMEM, MG_ERR_STREAM,
				"cannot make a router");
		tool_task_fail(&s, NULL, &err);
		goto out;
	}

	for (size_t i = 0; i < o->targets.n; i++) {
		struct mg_value *a = i + 1 < o->targets.n ? mg_value_copy(args) :
							    args;

		s.tasks[i].target = &o->targets.v[i];
		/* a NULL copy (ENOMEM) makes the call fail with the reason */
		tool_task_start(&s, &s.tasks[i], sel, a);
	}
	args = NULL;
	tool_gather(&s, sel);

out:
	mg_value_free(args);
	/* a select must go before its members */
	mg_select_free(sel);
	for (size_t i = 0; s.tasks && i < o->targets.n; i++)
		mg_receiver_free(s.tasks[i].rx);
	/* A target still busy when we gave up would make us wait for its
	 * call: it is stopped by force. */
	for (size_t i = o->targets.n; i-- > 0;)
		target_stop(&o->targets.v[i], s.tasks && s.tasks[i].busy);
	free(s.tasks);
	mg_router_unref(s.router);
	return s.worst;
}

/* --- run ----------------------------------------------------------------- */

static int tool_run(int argc, char **argv, struct tool_opts *o)
{
	struct mg_value *cmd;
	int first, rc;

	rc = tool_parse_opts(argc, argv, o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first >= argc)
		return tool_usage_error(
			"run: no command given (mitogen run [OPTIONS] -- CMD [ARGS...])");

	cmd = mg_list();
	/* a NULL cmd or item (ENOMEM) makes the call fail below */
	for (int i = first; i < argc; i++)
		mg_list_append(cmd, mg_str(argv[i]));
	/* env, cwd and stdin left off: inherit, inherit, /dev/null */
	return tool_go(o, TOOL_RUN, "mg.run", MG_LIST(cmd));
}

/* --- call ---------------------------------------------------------------- */

static int tool_call_cmd(int argc, char **argv, struct tool_opts *o)
{
	struct mg_value *args;
	int first, rc;

	rc = tool_parse_opts(argc, argv, o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first >= argc)
		return tool_usage_error(
			"call: no function name given (mitogen call [OPTIONS] NAME [ARGS...])");

	args = mg_list();
	for (int i = first + 1; i < argc; i++) {
		struct mg_value *v = json_args_parse(argv[i], NULL);

		if (!v && errno == E2BIG) {
			mg_value_free(args);
			return tool_usage_error(
				"argument %d: JSON nested deeper than %d levels",
				i - first, JSON_ARGS_MAX_DEPTH);
		}
		/* NULL (ENOMEM) makes the call fail below */
		mg_list_append(args, v);
	}
	return tool_go(o, TOOL_CALL, argv[first], args);
}

int main(int argc, char **argv)
{
	struct tool_opts opts = { .timeout = -1,
				  .sandbox = { .sz = sizeof(struct mg_sandbox_opts) } };
	int rc, i = 1;

	/* In a child context started by the tool this never returns. */
	rc = mg_main(argc, argv);
	if (rc < 0) {
		fprintf(stderr, "mitogen: cannot start libmitogen: %s\n",
			strerror(-rc));
		return TOOL_EXIT_START;
	}

	/* Options before the subcommand: -v, --help, --version. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return tool_help();
		if (!strcmp(argv[i], "--version"))
			return tool_version();
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			opts.verbose = true;
		else
			return tool_usage_error("unknown option '%s'", argv[i]);
	}
	if (i >= argc)
		return tool_usage_error("no command given (run or call)");
	if (!strcmp(argv[i], "stats"))		/* tools/stats.c */
		return tool_stats(argc - i, argv + i);
	if (strcmp(argv[i], "run") && strcmp(argv[i], "call") &&
	    strcmp(argv[i], "help"))
		return tool_usage_error(
			"unknown command '%s' (expected run or call)", argv[i]);
	if (!strcmp(argv[i], "help"))
		return tool_help();

	/* The subcommand's -v is known only once its options are parsed:
	 * tool_go sets the level before anything can log. */
	mg_log_set_callback(tool_log, &opts.verbose);
	mg_log_set_level(opts.verbose ? MG_LOG_DEBUG : MG_LOG_WARNING);

	if (!strcmp(argv[i], "run"))
		rc = tool_run(argc - i, argv + i, &opts);
	else
		rc = tool_call_cmd(argc - i, argv + i, &opts);
	target_list_free(&opts.targets);
	fflush(stdout);
	return rc;
}
