// SPDX-License-Identifier: MIT
/*
 * tools/mitogen.c — the `mitogen` command, first version: run a command or
 * call one exported function in a fresh child context (local or fork) and
 * report the outcome. Children of the tool are copies of the tool, so every
 * built-in "mg." function is there to call.
 *
 * Owns: argument parsing, the log callback of the tool (where library log
 * lines go: stderr), relaying results to stdout/stderr and exit codes.
 * Must not touch: library internals; it uses only the public headers.
 *
 * Exit status: `run` exits with the command's status (128+N when it was
 * killed by signal N), `call` with 0; on failure 1 CallError, 2 usage
 * error, 3 a context could not be started or a deadline passed
 * (StreamError, TimeoutError), 4 ChannelError.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mitogen/mitogen.h>

#include "tools/json_args.h"

enum {
	TOOL_EXIT_CALL = 1,
	TOOL_EXIT_USAGE = 2,
	TOOL_EXIT_START = 3,
	TOOL_EXIT_CHANNEL = 4,
};

enum tool_ctx_type {
	TOOL_LOCAL,
	TOOL_FORK,
};

struct tool_opts {
	enum tool_ctx_type type;
	/* seconds for start-up and call together; < 0: no limit */
	double timeout;
	bool verbose;
};

/* Room for "<Kind>: <context>: <function>: <message>". */
#define TOOL_ERRBUF (MG_ERROR_MSG_MAX + 2 * MG_ERROR_NAME_MAX + 64)

static const char tool_usage_text[] =
	"usage: mitogen [-v] COMMAND [OPTIONS] ...\n"
	"\n"
	"  mitogen run [-t local|fork] [--timeout SECONDS] [-v] [--] CMD [ARGS...]\n"
	"      Run CMD in a new child context; relay its stdout and stderr and exit\n"
	"      with its status (128+N when killed by signal N). The tool's standard\n"
	"      input is not forwarded (CMD reads /dev/null).\n"
	"  mitogen call [-t local|fork] [--timeout SECONDS] [-v] NAME [ARGS...]\n"
	"      Call the exported function NAME (e.g. mg.stat, mg.uname) in a new\n"
	"      child context and print its result as JSON. An ARG that parses as\n"
	"      JSON (42, -1.5, true, null, \"s\", [1,\"a\"], {\"k\":1}) is passed as\n"
	"      that value, any other ARG as a plain string.\n"
	"  mitogen --help | -h\n"
	"  mitogen --version\n"
	"\n"
	"Options:\n"
	"  -t, --type local|fork   how to start the child context (default: local)\n"
	"      --timeout SECONDS   give up after SECONDS (start-up and call together)\n"
	"  -v, --verbose           also log DEBUG and INFO lines (default: WARNING+)\n"
	"\n"
	"Exit status: the command's own (run) or 0 (call) on success; 1 CallError,\n"
	"2 usage error, 3 the context could not start or the timeout passed,\n"
	"4 ChannelError (the context went away).\n";

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

static double tool_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
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

/* Print "mitogen: <error>" and return the exit code for it. */
static int tool_fail(const struct mg_error *err)
{
	char buf[TOOL_ERRBUF];

	fprintf(stderr, "mitogen: %s\n", mg_error_str(err, buf, sizeof(buf)));
	return tool_exit_code(err);
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
		{ "type", required_argument, NULL, 't' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
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
		case 't':
			if (strcmp(optarg, "local") == 0)
				o->type = TOOL_LOCAL;
			else if (strcmp(optarg, "fork") == 0)
				o->type = TOOL_FORK;
			else
				return tool_usage_error(
					"unknown context type '%s' (expected local or fork)",
					optarg);
			break;
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
	*ret_first = optind;
	return 0;
}

/* --- contexts and calls ------------------------------------------------- */

struct tool_session {
	struct mg_router *router;
	struct mg_context *ctx;
	/* CLOCK_MONOTONIC time the whole command must end by; < 0: none */
	double deadline;
	bool timed_out;
};

/* Seconds left before the deadline (MG_FOREVER when there is none). */
static double tool_remaining(const struct tool_session *s)
{
	double left;

	if (s->deadline < 0)
		return MG_FOREVER;
	left = s->deadline - tool_now();
	return left > 0 ? left : 0;
}

/* Make the router and start the child. Returns 0 or an exit code. */
static int tool_start(struct tool_session *s, const struct tool_opts *o)
{
	struct mg_error err = MG_ERROR_INIT;

	mg_log_set_level(o->verbose ? MG_LOG_DEBUG : MG_LOG_WARNING);
	s->deadline = o->timeout > 0 ? tool_now() + o->timeout : -1;
	s->router = mg_router_new(NULL);
	if (!s->router) {
		tool_error_fill(&err, -errno, MG_ERR_STREAM,
				"cannot make a router");
		return tool_fail(&err);
	}

	/* connect_timeout 0 is the library's default */
	MG_OPTS(mg_local_opts, lopts,
		.connect_timeout = o->timeout > 0 ? o->timeout : 0);
	if (o->type == TOOL_FORK) {
		MG_OPTS(mg_fork_opts, fopts, .local = &lopts);
		s->ctx = mg_fork(s->router, &fopts, &err);
	} else {
		s->ctx = mg_local(s->router, &lopts, &err);
	}
	if (!s->ctx) {
		tool_error_fill(&err, errno ? -errno : -EIO, MG_ERR_STREAM,
				"cannot start a context");
		/* whatever the library said, this failed to start a context */
		if (err.kind != MG_ERR_TIMEOUT)
			err.kind = MG_ERR_STREAM;
		return tool_fail(&err);
	}
	return 0;
}

/*
 * Call fn(args) (args taken) in the session's context, within the
 * deadline. Returns 0 with *ret_result (may be NULL for nil) or an exit code.
 */
static int tool_call(struct tool_session *s, const char *fn,
		     struct mg_value *args, struct mg_value **ret_result)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_receiver *rx;
	int rc;

	rx = mg_call_async(s->ctx, fn, args, &err);
	if (!rx) {
		rc = errno ? -errno : -EIO;
		tool_error_fill(&err, rc, tool_kind_of(rc),
				"cannot send the call");
		return tool_fail(&err);
	}
	rc = mg_receiver_get_data(rx, tool_remaining(s), ret_result, &err);
	mg_receiver_free(rx);
	if (rc == -ETIMEDOUT) {
		s->timed_out = true;
		if (err.kind == MG_ERR_NONE) {
			err.kind = MG_ERR_TIMEOUT;
			err.errnum = ETIMEDOUT;
			snprintf(err.message, sizeof(err.message),
				 "no result from %s within the timeout", fn);
		}
	}
	if (rc < 0) {
		tool_error_fill(&err, rc, tool_kind_of(rc), fn);
		return tool_fail(&err);
	}
	return 0;
}

/*
 * Shut the child down and drop the router. After a timeout we do not wait:
 * the child is still busy with the call and would make us wait for it.
 */
static void tool_stop(struct tool_session *s)
{
	if (s->ctx) {
		mg_context_shutdown(s->ctx, !s->timed_out);
		s->ctx = mg_context_unref(s->ctx);
	}
	s->router = mg_router_unref(s->router);
}

/* --- run ----------------------------------------------------------------- */

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

static int tool_run(int argc, char **argv, struct tool_opts *o)
{
	struct tool_session s = { 0 };
	struct mg_value *cmd, *result = NULL;
	const struct mg_value *status;
	const void *out = NULL, *err = NULL;
	size_t out_len = 0, err_len = 0;
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

	rc = tool_start(&s, o);
	if (rc) {
		mg_value_free(cmd);
		goto out;
	}
	/* env, cwd and stdin left off: inherit, inherit, /dev/null */
	rc = tool_call(&s, "mg.run", MG_LIST(cmd), &result);
	if (rc)
		goto out;

	status = mg_map_get(result, "status");
	if (!result || result->type != MG_MAP || !status ||
	    status->type != MG_INT ||
	    !tool_bytes_field(result, "stdout", &out, &out_len) ||
	    !tool_bytes_field(result, "stderr", &err, &err_len)) {
		fprintf(stderr,
			"mitogen: mg.run returned an unexpected result\n");
		rc = TOOL_EXIT_CALL;
		goto out;
	}
	/* Our own stdout may be closed or a broken pipe: that is not the
	 * command's failure, so its status still wins. */
	tool_write_all(STDOUT_FILENO, out, out_len);
	tool_write_all(STDERR_FILENO, err, err_len);
	if (status->i < 0)
		rc = 128 + (int)(-status->i & 0x7f);
	else
		rc = (int)(status->i & 0xff);
out:
	mg_value_free(result);
	tool_stop(&s);
	return rc;
}

/* --- call ---------------------------------------------------------------- */

static int tool_call_cmd(int argc, char **argv, struct tool_opts *o)
{
	struct tool_session s = { 0 };
	struct mg_value *args, *result = NULL;
	const char *fn;
	char *json;
	int first, rc;

	rc = tool_parse_opts(argc, argv, o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first >= argc)
		return tool_usage_error(
			"call: no function name given (mitogen call [OPTIONS] NAME [ARGS...])");
	fn = argv[first];

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

	rc = tool_start(&s, o);
	if (rc) {
		mg_value_free(args);
		goto out;
	}
	rc = tool_call(&s, fn, args, &result);
	if (rc)
		goto out;

	if (!result)
		json = strdup("null");
	else
		json = mg_value_to_json_alloc(result);
	if (!json) {
		fprintf(stderr, "mitogen: cannot format the result: %s\n",
			strerror(ENOMEM));
		rc = TOOL_EXIT_CALL;
		goto out;
	}
	printf("%s\n", json);
	free(json);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "mitogen: writing the result: %s\n",
			strerror(errno));
		rc = TOOL_EXIT_CALL;
	}
out:
	mg_value_free(result);
	tool_stop(&s);
	return rc;
}

int main(int argc, char **argv)
{
	struct tool_opts opts = { .type = TOOL_LOCAL, .timeout = -1 };
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
	if (strcmp(argv[i], "run") && strcmp(argv[i], "call") &&
	    strcmp(argv[i], "help"))
		return tool_usage_error(
			"unknown command '%s' (expected run or call)", argv[i]);
	if (!strcmp(argv[i], "help"))
		return tool_help();

	/* The subcommand's -v is known only once its options are parsed:
	 * tool_start sets the level before anything can log. */
	mg_log_set_callback(tool_log, &opts.verbose);
	mg_log_set_level(opts.verbose ? MG_LOG_DEBUG : MG_LOG_WARNING);

	if (!strcmp(argv[i], "run"))
		rc = tool_run(argc - i, argv + i, &opts);
	else
		rc = tool_call_cmd(argc - i, argv + i, &opts);
	fflush(stdout);
	return rc;
}
