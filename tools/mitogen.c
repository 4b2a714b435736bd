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

enum {
	TOOL_EXIT_CALL = 1,
	TOOL_EXIT_USAGE = 2,
	TOOL_EXIT_START = 3,
	TOOL_EXIT_CHANNEL = 4,
};

/* --- targets: -t SPEC ----------------------------------------------------- */

/*
 * -t SPEC is a comma-separated list of targets, each a '/'-separated chain
 * of hops, each hop started through the one before it:
 *
 *	-t local			one target, one hop
 *	-t local/fork/local		one target: a local child, forked inside it,
 *					and a local child of that
 *	-t local,fork,local/local	three targets
 *
 * A hop is "KIND" or "KIND:ARG". The kinds are the table hop_types below
 * (today local and fork); a kind that needs an argument (ssh:user@host,
 * sudo:root) is one more row there.
 */

/* Hard limits, so that a typo cannot start thousands of processes. */
#define TARGETS_MAX 1024
#define TARGET_HOPS_MAX 16

struct hop_type;

struct hop {
	const struct hop_type *type;	/* row of the kind table */
	char *arg;			/* text after "KIND:", or NULL; owned */
	struct mg_context *ctx;		/* once started; owned reference */
};

struct target {
	char *spec;			/* the target as written ("local/fork"); owned */
	size_t index;			/* position in the list, for remote names */
	size_t nhops;
	struct hop *hops;		/* nhops entries; owned */
	size_t nstarted;		/* hops[0..nstarted) are running */
};

struct target_list {
	size_t n;
	struct target *v;		/* n entries; owned */
};

/* the kinds of hop */

enum hop_arg {
	HOP_ARG_NONE,		/* "KIND" only */
	HOP_ARG_OPTIONAL,	/* "KIND" or "KIND:ARG" */
	HOP_ARG_REQUIRED,	/* "KIND:ARG" only */
};

struct hop_type {
	const char *name;
	enum hop_arg arg;
	/* What ARG looks like, for messages ("[USER@]HOST[:PORT]"). */
	const char *arg_hint;
	/*
	 * Start the context for h with the common options lo (remote_name,
	 * connect_timeout and via already set). A kind with options of its
	 * own builds them from h->arg and points their .local at lo.
	 * Returns a reference, or NULL with errno set and err filled.
	 */
	struct mg_context *(*start)(struct mg_router *r, const struct hop *h,
				    const struct mg_local_opts *lo,
				    struct mg_error *err);
};

static struct mg_context *hop_start_local(struct mg_router *r,
					  const struct hop *h,
					  const struct mg_local_opts *lo,
					  struct mg_error *err)
{
	return mg_local(r, lo, err);
}

static struct mg_context *hop_start_fork(struct mg_router *r,
					 const struct hop *h,
					 const struct mg_local_opts *lo,
					 struct mg_error *err)
{
	MG_OPTS(mg_fork_opts, fo, .local = lo);

	return mg_fork(r, &fo, err);
}

/*
 * Every kind a hop may name. A new transport is one row here: for
 * example { "ssh", HOP_ARG_REQUIRED, "[USER@]HOST[:PORT]", hop_start_ssh }
 * or { "sudo", HOP_ARG_OPTIONAL, "USER", hop_start_sudo }. Names must not
 * contain ',', '/' or ':' (the separators) and become part of remote
 * names, which must not contain '/'.
 */
static const struct hop_type hop_types[] = {
	{ "local", HOP_ARG_NONE, NULL, hop_start_local },
	{ "fork", HOP_ARG_NONE, NULL, hop_start_fork },
};

#define HOP_TYPES_N (sizeof(hop_types) / sizeof(hop_types[0]))

/* parsing */

static int why_set(char *why, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Write a reason into why (if any) and return -EINVAL. */
static int why_set(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (why && size) {
		va_start(ap, fmt);
		vsnprintf(why, size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* "local, fork": the kinds of the table, for messages. */
static void hop_kinds(char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < HOP_TYPES_N && used < size; i++) {
		int n = snprintf(buf + used, size - used, "%s%s",
				 i ? ", " : "", hop_types[i].name);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/*
 * Parse one hop, text[0..len) of target tspec in -t spec, into *ret (whose
 * arg the caller frees). This is the only place that reads hop syntax:
 * "KIND" or "KIND:ARG", KIND a row of hop_types.
 */
static int hop_parse(const char *text, size_t len, const char *spec,
		     const char *tspec, int tlen, struct hop *ret, char *why,
		     size_t why_size)
{
	const char *colon = memchr(text, ':', len);
	size_t klen = colon ? (size_t)(colon - text) : len;
	const struct hop_type *type = NULL;
	char kinds[128];

	if (len == 0)
		return why_set(why, why_size,
			       "-t '%s': empty hop in target '%.*s' (hops are separated by '/', e.g. local/fork)",
			       spec, tlen, tspec);
	for (size_t i = 0; i < HOP_TYPES_N; i++) {
		if (strlen(hop_types[i].name) == klen &&
		    !memcmp(hop_types[i].name, text, klen)) {
			type = &hop_types[i];
			break;
		}
	}
	if (!type) {
		hop_kinds(kinds, sizeof(kinds));
		return why_set(why, why_size,
			       "-t '%s': unsupported hop kind '%.*s' in target '%.*s' (supported: %s)",
			       spec, (int)klen, text, tlen, tspec, kinds);
	}
	if (colon && type->arg == HOP_ARG_NONE)
		return why_set(why, why_size,
			       "-t '%s': hop '%.*s' in target '%.*s': '%s' takes no argument",
			       spec, (int)len, text, tlen, tspec, type->name);
	if ((colon && colon + 1 == text + len) ||
	    (!colon && type->arg == HOP_ARG_REQUIRED))
		return why_set(why, why_size,
			       "-t '%s': hop '%.*s' in target '%.*s' needs an argument (%s:%s)",
			       spec, (int)len, text, tlen, tspec, type->name,
			       type->arg_hint ? type->arg_hint : "ARG");

	ret->type = type;
	ret->ctx = NULL;
	ret->arg = NULL;
	if (colon) {
		ret->arg = strndup(colon + 1, len - klen - 1);
		if (!ret->arg)
			return -ENOMEM;
	}
	return 0;
}

static void target_clear(struct target *t)
{
	for (size_t i = 0; i < t->nhops; i++)
		free(t->hops[i].arg);
	free(t->hops);
	free(t->spec);
	memset(t, 0, sizeof(*t));
}

/* Parse one target, text[0..len), into *t. */
static int target_parse(const char *text, size_t len, const char *spec,
			struct target *t, char *why, size_t why_size)
{
	const char *p = text, *end = text + len;
	size_t n = 1;
	int ret;

	memset(t, 0, sizeof(*t));
	for (const char *q = text; q < end; q++)
		n += *q == '/';
	if (n > TARGET_HOPS_MAX)
		return why_set(why, why_size,
			       "-t '%s': target '%.*s' has %zu hops (at most %d)",
			       spec, (int)len, text, n, TARGET_HOPS_MAX);
	t->spec = strndup(text, len);
	t->hops = calloc(n, sizeof(*t->hops));
	if (!t->spec || !t->hops) {
		target_clear(t);
		return -ENOMEM;
	}
	for (;;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *hend = slash ? slash : end;

		ret = hop_parse(p, (size_t)(hend - p), spec, text, (int)len,
				&t->hops[t->nhops], why, why_size);
		if (ret < 0) {
			target_clear(t);
			return ret;
		}
		t->nhops++;
		if (!slash)
			break;
		p = slash + 1;
	}
	return 0;
}

/*
 * Parse SPEC and append its targets to list (which may already hold some,
 * for a repeated -t). Returns 0, or -EINVAL with a one-line reason in
 * why (which names the offending target or hop and what is accepted), or
 * -ENOMEM. On failure list is left as it was.
 */
static int target_list_parse(struct target_list *list, const char *spec,
			     char *why, size_t why_size)
{
	const char *p = spec, *end;
	struct target *v = NULL, *grown;
	size_t n = 0, cap = 0;
	char shown[80];
	int ret = 0;

	if (!list || !spec)
		return -EINVAL;
	end = spec + strlen(spec);
	/* messages quote the spec: keep them to one readable line */
	if (end - spec > 64) {
		snprintf(shown, sizeof(shown), "%.60s...", spec);
		spec = shown;
	}
	if (p == end)
		return why_set(why, why_size,
			       "-t '': no target given (e.g. -t local, -t local/fork, -t local,fork)");
	/*
	 * Targets are split at every ','. When a kind's ARG may itself hold
	 * a ',' (host ranges such as web[01,03]) this must learn to skip
	 * brackets.
	 */
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *tend = comma ? comma : end;

		if (tend == p) {
			ret = why_set(why, why_size,
				      "-t '%s': empty target (targets are separated by ',', e.g. local,fork)",
				      spec);
			goto fail;
		}
		if (list->n + n >= TARGETS_MAX) {
			ret = why_set(why, why_size,
				      "-t '%s': too many targets (at most %d)",
				      spec, TARGETS_MAX);
			goto fail;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 4;
			grown = reallocarray(v, cap, sizeof(*v));
			if (!grown) {
				ret = -ENOMEM;
				goto fail;
			}
			v = grown;
		}
		ret = target_parse(p, (size_t)(tend - p), spec, &v[n], why,
				   why_size);
		if (ret < 0)
			goto fail;
		v[n].index = list->n + n;
		n++;
		if (!comma)
			break;
		p = comma + 1;
	}

	grown = reallocarray(list->v, list->n + n, sizeof(*v));
	if (!grown) {
		ret = -ENOMEM;
		goto fail;
	}
	memcpy(grown + list->n, v, n * sizeof(*v));
	list->v = grown;
	list->n += n;
	free(v);
	return 0;
fail:
	while (n > 0)
		target_clear(&v[--n]);
	free(v);
	return ret;
}

/* Free what the list owns; stop its contexts first with target_stop.
 * NULL-safe. */
static void target_list_free(struct target_list *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->n; i++)
		target_clear(&list->v[i]);
	free(list->v);
	list->v = NULL;
	list->n = 0;
}

/* starting and stopping */

/* CLOCK_MONOTONIC seconds: the clock the deadlines below are on. */
static double target_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void err_setf(struct mg_error *err, enum mg_error_kind kind,
		     int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void err_setf(struct mg_error *err, enum mg_error_kind kind,
		     int errnum, const char *fmt, ...)
{
	va_list ap;

	mg_error_clear(err);
	err->kind = kind;
	err->errnum = errnum;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* Last hop of a started target (borrowed), or NULL. */
static struct mg_context *target_last(const struct target *t)
{
	if (!t || t->nstarted == 0 || t->nstarted < t->nhops)
		return NULL;
	return t->hops[t->nhops - 1].ctx;
}

/*
 * Start t's hops in order, the first from r, each next one through the one
 * before, so that each is up before the next is asked for. Each gets the
 * remote name "t<index>.<kind>" (first hop) or "t<index>.<kind><hop>".
 * deadline (on target_clock; < 0: none) bounds the whole chain. Returns 0,
 * or -errno with err filled: MG_ERR_TIMEOUT when the deadline passed,
 * MG_ERR_STREAM otherwise; for a chain of more than one hop the message
 * says which hop failed. Hops started before the failure stay in
 * t->hops[0..t->nstarted) for target_stop.
 */
static int target_start(struct target *t, struct mg_router *r,
			double deadline, struct mg_error *err)
{
	for (size_t i = t->nstarted; i < t->nhops; i++) {
		struct mg_error e = MG_ERROR_INIT;
		struct hop *h = &t->hops[i];
		char name[64], where[128] = "";
		double left = 0;	/* connect_timeout 0: the default */
		int ret;

		/* "t0.local", "t0.fork1": no '/', unique in the tool's tree */
		if (i == 0)
			snprintf(name, sizeof(name), "t%zu.%s", t->index,
				 h->type->name);
		else
			snprintf(name, sizeof(name), "t%zu.%s%zu", t->index,
				 h->type->name, i);
		if (t->nhops > 1)
			snprintf(where, sizeof(where), "hop %zu of %zu (%s, %s): ",
				 i + 1, t->nhops, h->type->name, name);

		if (deadline >= 0) {
			left = deadline - target_clock();
			if (left <= 0) {
				err_setf(err, MG_ERR_TIMEOUT, ETIMEDOUT,
					 "%sthe timeout passed before it could start",
					 where);
				return -ETIMEDOUT;
			}
		}

		MG_OPTS(mg_local_opts, lo, .remote_name = name,
			.connect_timeout = left,
			.via = i ? t->hops[i - 1].ctx : NULL);
		errno = 0;
		h->ctx = h->type->start(r, h, &lo, &e);
		if (!h->ctx) {
			enum mg_error_kind kind = e.kind == MG_ERR_TIMEOUT ?
							  MG_ERR_TIMEOUT :
							  MG_ERR_STREAM;

			/* whatever else the library said, this failed to start */
			ret = errno ? -errno : -EIO;
			if (e.message[0])
				err_setf(err, kind, e.errnum ? e.errnum : -ret,
					 "%s%s", where, e.message);
			else
				err_setf(err, kind, -ret,
					 "%scannot start a context: %s", where,
					 strerror(-ret));
			return ret;
		}
		t->nstarted++;
	}
	return 0;
}

/*
 * Shut t's started hops down, deepest first, and drop them. Without force,
 * wait for each to go (the library's shutdown grace, then it is killed).
 * With force (a target whose last hop is still busy with a call we gave
 * up on), only ask each hop, then kill the first hop's process at once;
 * the hops below it go when they see their parent gone.
 */
static void target_stop(struct target *t, bool force)
{
	pid_t pid;

	if (!t || t->nstarted == 0)
		return;
	/*
	 * Why kill: a hop busy with a call acts on SHUTDOWN only when the
	 * call ends; each hop above it waits the library's shutdown grace for
	 * its child before going, and our broker then waits for each direct
	 * child in turn. That would keep the tool seconds per target past
	 * --timeout. So ask every hop, then kill the first (our own child);
	 * the hops below see their parent gone and exit by themselves.
	 */
	for (size_t i = t->nstarted; i-- > 0;)
		mg_context_shutdown(t->hops[i].ctx, !force);
	/*
	 * The first hop has not gone (a busy hop below keeps it), so its pid
	 * is still our unreaped child: the broker reaps only children that
	 * have exited.
	 */
	pid = force ? mg_context_pid(t->hops[0].ctx) : 0;
	if (pid > 0)
		kill(pid, SIGKILL);
	while (t->nstarted > 0) {
		struct hop *h = &t->hops[--t->nstarted];

		h->ctx = mg_context_unref(h->ctx);
	}
}

struct tool_opts {
	/* from -t (appended to by each -t); "local" when none was given */
	struct target_list targets;
	/* seconds for start-up and calls together; < 0: no limit */
	double timeout;
	bool verbose;
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

	rc = target_start(t->target, s->router, s->deadline, &err);
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
	struct tool_opts opts = { .timeout = -1 };
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
