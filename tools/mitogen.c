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
 * highest of the targets' codes. Stopped by SIGINT, SIGTERM or SIGHUP:
 * 128+N, once every target's tree has ended (tool_sig_watch).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

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

/* --ro, --rw, --exec: at most this many of each. */
#define TOOL_PATHS_MAX 64

struct tool_opts {
	/* from -t (appended to by each -t); "local" when none was given */
	struct target_list targets;
	/* seconds for start-up and calls together; < 0: no limit */
	double timeout;
	bool verbose;
	/* --sandbox/--caps/--nofile: for the last hop of every target */
	struct mg_sandbox_opts sandbox;
	bool have_sandbox;
	/* -f: targets worked on at once */
	size_t fanout;
	/* --ro/--rw/--exec: NULL-terminated path lists for sandbox */
	const char *paths[3][TOOL_PATHS_MAX + 1];
	int npaths[3];
};

/* -f when none is given: pdsh's default width. */
#define TOOL_FANOUT_DEFAULT 32

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
	"  mitogen stats [--pid N] [--watch]\n"
	"      Show every context's messages, bytes and drops each way, and the\n"
	"      last denials, of this user's (root: any) libmitogen processes.\n"
	"  mitogen --help | -h\n"
	"  mitogen --version\n"
	"\n"
	"Options:\n"
	"  -t, --target TARGETS    where to run (default: local); see Targets\n"
	"  -f, --fanout N          work on at most N targets at once (default 32);\n"
	"                          each is started, called and stopped in turn\n"
	"      --timeout SECONDS   give up after SECONDS (start-up and calls\n"
	"                          together); targets that have not answered by\n"
	"                          then fail with TimeoutError\n"
	"  -v, --verbose           also log DEBUG and INFO lines (default: WARNING+)\n"
	"      --sandbox PROFILE   run the last hop of each target under a seccomp\n"
	"                          profile: default, strict, or a rule file\n"
	"      --caps LIST         keep only these capabilities (comma-separated,\n"
	"                          e.g. cap_net_bind_service; '' drops all)\n"
	"      --nofile N          limit open files of the last hop to N\n"
	"      --no-net            new network namespace (only lo, up) and no\n"
	"                          AF_INET/AF_INET6/AF_PACKET sockets\n"
	"      --ro PATH, --rw PATH, --exec PATH (each repeatable)\n"
	"                          Landlock: read / read-write / read+execute only\n"
	"                          these; with --ro or --rw and no --exec, run may\n"
	"                          execute from /usr /bin /sbin /lib /lib64\n"
	"      --tenant NAME       join the tenant cgroup mitogen/NAME\n"
	"      --pids-max N        at most N tasks in the tenant cgroup\n"
	"      --tenant-deny LIST  the tenant's cgroup may not open these socket\n"
	"                          families (inet,netlink,packet): eBPF, or for\n"
	"                          inet a seccomp filter where eBPF is missing\n"
	"                          (any sandbox option also sets no_new_privs)\n"
	"      --password-file F   type the first line of F at password prompts\n"
	"                          (ssh, sudo, su, doas); MITOGEN_PASSWORD in the\n"
	"                          environment does the same\n"
	"      --ssh-option OPT    pass -o OPT to every ssh hop (repeatable)\n"
	"\n"
	"Targets:\n"
	"  TARGETS is a comma-separated list of targets, run in parallel (see -f). A\n"
	"  target is a chain of hops separated by '/', each hop started through\n"
	"  the one before it; CMD or NAME runs in the last hop. Hop kinds: local\n"
	"  (a new process from the tool's image), fork (a fork of its parent),\n"
	"  ssh:[USER@]HOST[:PORT], sudo[:USER] (root), su:USER, doas[:USER].\n"
	"      -t local                  a local child (the default)\n"
	"      -t local/fork/local       a local child, a fork inside it, and a\n"
	"                                local child of that fork\n"
	"      -t local,fork,local/local three targets\n"
	"  Host ranges as pdsh writes them make one target per name:\n"
	"  web[01-20] is web01 to web20, db[1,3,5] is db1, db3 and db5; a bracket\n"
	"  group with anything but digits, ',' and '-' ([::1]) is kept as is.\n"
	"      -t ssh:deploy@web1/sudo   root on web1, through sudo\n"
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

/* --- sandbox options (issue 5, second part) ----------------------------- */

enum {
	TOOL_OPT_NO_NET = 256,
	TOOL_OPT_RO,		/* TOOL_OPT_RO + i: paths[i] */
	TOOL_OPT_RW,
	TOOL_OPT_EXEC,
	TOOL_OPT_TENANT,
	TOOL_OPT_TENANT_DENY,
	TOOL_OPT_PIDS_MAX,
};

/* --tenant-deny inet,netlink,packet: MG_TENANT_NO_* bits, or -1. */
static int tool_tenant_deny(const char *arg)
{
	static const struct { const char *name; unsigned bit; } fam[] = {
		{ "inet", MG_TENANT_NO_INET },
		{ "netlink", MG_TENANT_NO_NETLINK },
		{ "packet", MG_TENANT_NO_PACKET },
	};
	unsigned bits = 0;

	if (!*arg || arg[strlen(arg) - 1] == ',')
		return -1;
	for (const char *p = arg; *p;) {
		size_t n = strcspn(p, ","), i;

		for (i = 0; i < 3; i++)
			if (strlen(fam[i].name) == n && !strncmp(fam[i].name, p, n))
				break;
		if (i == 3)
			return -1;
		bits |= fam[i].bit;
		p += n + (p[n] == ',');
	}
	return bits ? (int)bits : -1;
}

static int tool_sandbox_opt(struct tool_opts *o, int c, const char *arg)
{
	struct mg_sandbox_opts *sb = &o->sandbox;
	char *end;

	o->have_sandbox = true;
	switch (c) {
	case TOOL_OPT_NO_NET:
		sb->namespaces |= MG_NS_NET;
		sb->no_inet = true;
		return 0;
	case TOOL_OPT_RO:
	case TOOL_OPT_RW:
	case TOOL_OPT_EXEC: {
		int i = c - TOOL_OPT_RO;

		if (arg[0] != '/')
			return tool_usage_error("--%s wants an absolute path, not '%s'",
						(const char *[]){ "ro", "rw", "exec" }[i], arg);
		if (o->npaths[i] == TOOL_PATHS_MAX)
			return tool_usage_error("more than %d paths for one of --ro/--rw/--exec",
						TOOL_PATHS_MAX);
		o->paths[i][o->npaths[i]++] = arg;
		return 0;
	}
	case TOOL_OPT_TENANT:
		sb->tenant = arg;
		return 0;
	case TOOL_OPT_TENANT_DENY: {
		int bits = tool_tenant_deny(arg);

		if (bits < 0)
			return tool_usage_error("--tenant-deny wants a list of inet, netlink, "
						"packet, not '%s'", arg);
		sb->tenant_deny = (unsigned)bits;
		return 0;
	}
	default:
		errno = 0;
		sb->pids_max = strtoll(arg, &end, 10);
		if (errno || end == arg || *end || sb->pids_max <= 0)
			return tool_usage_error("--pids-max wants a positive number, not '%s'", arg);
		return 0;
	}
}

/* Point the sandbox at the path lists; a Landlock sandbox without --exec
 * may execute the system's programs (else run could start nothing). */
static void tool_sandbox_paths(struct tool_opts *o)
{
	static const char *const sys_exec[] = { "/usr", "/bin", "/sbin", "/lib", "/lib64" };

	if ((o->npaths[0] || o->npaths[1]) && !o->npaths[2])
		for (size_t i = 0; i < sizeof(sys_exec) / sizeof(sys_exec[0]); i++)
			if (access(sys_exec[i], F_OK) == 0)
				o->paths[2][o->npaths[2]++] = sys_exec[i];
	o->sandbox.ro = o->npaths[0] ? o->paths[0] : NULL;
	o->sandbox.rw = o->npaths[1] ? o->paths[1] : NULL;
	o->sandbox.exec = o->npaths[2] ? o->paths[2] : NULL;
}

/* Passwords for ssh/sudo/su/doas prompts: never from the command line. */
static char tool_password[1024];

/* --password-file FILE: its first line. Returns 0 or -1 (said why). */
static int tool_read_password(const char *path)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f) {
		fprintf(stderr, "mitogen: --password-file %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!fgets(tool_password, sizeof(tool_password), f))
		tool_password[0] = '\0';
	fclose(f);
	n = strcspn(tool_password, "\r\n");
	tool_password[n] = '\0';
	target_set_password(tool_password);
	return 0;
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
		{ "fanout", required_argument, NULL, 'f' },
		{ "no-net", no_argument, NULL, TOOL_OPT_NO_NET },
		{ "ro", required_argument, NULL, TOOL_OPT_RO },
		{ "rw", required_argument, NULL, TOOL_OPT_RW },
		{ "exec", required_argument, NULL, TOOL_OPT_EXEC },
		{ "tenant", required_argument, NULL, TOOL_OPT_TENANT },
		{ "tenant-deny", required_argument, NULL, TOOL_OPT_TENANT_DENY },
		{ "pids-max", required_argument, NULL, TOOL_OPT_PIDS_MAX },
		{ "password-file", required_argument, NULL, 'P' },
		{ "ssh-option", required_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	/* argv[0] is the subcommand; "+": stop at the first operand, so a
	 * command's own options and negative numbers pass through untouched */
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:hf:t:v", longopts, NULL)) != -1) {
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
		case 'f': {
			char *end;
			long long n;

			errno = 0;
			n = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end || n <= 0 ||
			    n > TARGETS_MAX)
				return tool_usage_error(
					"-f wants a number of targets from 1 to %d, not '%s'",
					TARGETS_MAX, optarg);
			o->fanout = (size_t)n;
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
		case TOOL_OPT_NO_NET ... TOOL_OPT_PIDS_MAX: {
			int ret = tool_sandbox_opt(o, c, optarg);

			if (ret)
				return ret;
			break;
		}
		case 'P':
			if (tool_read_password(optarg) < 0)
				return TOOL_EXIT_USAGE;
			break;
		case 'O':
			if (target_add_ssh_option(optarg) < 0)
				return tool_usage_error("too many --ssh-option (at most %d)",
							TARGET_SSH_OPTIONS_MAX);
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
	tool_sandbox_paths(o);
	if (!tool_password[0] && getenv("MITOGEN_PASSWORD")) {
		snprintf(tool_password, sizeof(tool_password), "%s", getenv("MITOGEN_PASSWORD"));
		target_set_password(tool_password);
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
	/* the call's arguments, copied for each target */
	const struct mg_value *args;
	/* output, worst and next */
	pthread_mutex_t lock;
	/* the next target no worker has taken */
	size_t next;
	/* held shared by workers, alone by one forking this process */
	pthread_rwlock_t forklock;
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
 * Report an answer (msg taken; NULL: none came, rc says why) for task t.
 * Called with s->lock held, so that one target's output is never split
 * by another's.
 */
static void tool_task_report(struct tool_session *s, struct tool_task *t,
			     struct mg_message *msg, int rc,
			     struct mg_error *err)
{
	struct mg_value *result = NULL;

	if (!msg) {
		if (rc == -ETIMEDOUT) {
			mg_error_clear(err);
			err->kind = MG_ERR_TIMEOUT;
			err->errnum = ETIMEDOUT;
			snprintf(err->message, sizeof(err->message),
				 "no reply from %s within the timeout (%g s)",
				 s->fn, s->timeout);
		} else {
			tool_error_fill(err, rc, tool_kind_of(rc), s->fn);
		}
		tool_task_fail(s, t, err);
		return;
	}
	t->busy = false;
	mg_error_clear(err);
	rc = mg_message_value(msg, true, &result, err);
	mg_message_free(msg);
	if (rc < 0) {
		tool_error_fill(err, rc, tool_kind_of(rc), s->fn);
		tool_task_fail(s, t, err);
		return;
	}
	if (s->mode == TOOL_RUN)
		tool_run_result(s, t, result);
	else
		tool_call_result(s, t, result);
	mg_value_free(result);
}

/*
 * One target from start to stop: start its chain, send the call (args
 * taken), wait for the answer until the deadline, report it, and stop the
 * chain, so that a worker holds one target's contexts at a time.
 */
static void tool_task_run(struct tool_session *s, struct tool_task *t,
			  struct mg_value *args)
{
	bool forks = target_forks_here(t->target);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_message *msg = NULL;
	struct mg_receiver *rx;
	int rc;

	/*
	 * fork() copies only the thread that calls it: a lock another worker
	 * holds at that instant (the allocator's, under the sanitizers,
	 * which do not lock it across fork) stays held in the child for
	 * ever. So a target that forks this process starts alone; the others
	 * hold the lock shared while they are not asleep.
	 */
	if (forks)
		pthread_rwlock_wrlock(&s->forklock);
	else
		pthread_rwlock_rdlock(&s->forklock);
	rc = target_start(t->target, s->router, s->deadline, s->sandbox, &err);
	if (forks) {
		pthread_rwlock_unlock(&s->forklock);
		pthread_rwlock_rdlock(&s->forklock);
	}
	if (rc < 0) {
		mg_value_free(args);
		tool_error_fill(&err, rc, MG_ERR_STREAM,
				"cannot start a context");
		goto report;
	}
	/* a NULL args (ENOMEM) makes the call fail with the reason */
	rx = mg_call_async(target_last(t->target), s->fn, args, &err);
	if (!rx) {
		rc = errno ? -errno : -EIO;
		tool_error_fill(&err, rc, tool_kind_of(rc),
				"cannot send the call");
		goto report;
	}
	t->busy = true;
	pthread_rwlock_unlock(&s->forklock);
	rc = mg_receiver_get(rx, tool_remaining(s), &msg, &err);
	pthread_rwlock_rdlock(&s->forklock);
	pthread_mutex_lock(&s->lock);
	tool_task_report(s, t, msg, rc, &err);
	pthread_mutex_unlock(&s->lock);
	mg_receiver_free(rx);
	/* still busy: its last hop may be stuck in the call, stop by force */
	target_stop(t->target, t->busy);
	pthread_rwlock_unlock(&s->forklock);
	return;
report:
	pthread_mutex_lock(&s->lock);
	tool_task_fail(s, t, &err);
	pthread_mutex_unlock(&s->lock);
	target_stop(t->target, false);
	pthread_rwlock_unlock(&s->forklock);
}

/* A worker: take the next target not yet taken until none is left. */
static void *tool_worker(void *arg)
{
	struct tool_session *s = arg;

	for (;;) {
		struct mg_value *a;
		size_t i;

		pthread_mutex_lock(&s->lock);
		i = s->next++;
		a = i < s->targets->n ? mg_value_copy(s->args) : NULL;
		pthread_mutex_unlock(&s->lock);
		if (i >= s->targets->n)
			return NULL;
		s->tasks[i].target = &s->targets->v[i];
		tool_task_run(s, &s->tasks[i], a);
	}
}

/* --- SIGINT, SIGTERM, SIGHUP ---------------------------------------------- */

/*
 * Seconds after SIGINT, SIGTERM or SIGHUP before what is left of our
 * children gets SIGKILL: an agent's own grace (2 s, SIGTERM to SIGKILL for
 * what is below it) and time to confirm its tree is gone and exit.
 */
#define TOOL_SIG_GRACE 5.0

/* The handler writes the signal's number here; 0 from tool_go: done. */
static int tool_sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t tool_signal;

static void tool_on_signal(int sig)
{
	int e = errno;
	char c = (char)sig;

	if (!tool_signal)
		tool_signal = sig;
	(void)!write(tool_sig_pipe[1], &c, 1);
	errno = e;
}

/*
 * sig to each of our children: the first hop of every target (an agent,
 * or ssh, sudo, su, doas, which pass it on or hang up). Through a pidfd,
 * once the process is seen to be our child still. seen (n of them): who
 * had SIGTERM already; SIGTERM skips them and adds the others.
 */
static void tool_signal_children(int sig, pid_t *seen, size_t *n, size_t max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[300];
		FILE *f;
		int pid;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/children", e->d_name);
		f = fopen(path, "re");
		while (f && fscanf(f, "%d", &pid) == 1) {
			char stat[64], buf[256], *p;
			int fd, ppid = 0;
			bool again = false;
			FILE *sf;

			for (size_t i = 0; i < *n; i++)
				again |= seen[i] == pid;
			if (sig == SIGTERM && again)
				continue;
			fd = (int)syscall(SYS_pidfd_open, pid, 0);
			if (fd < 0)
				continue;
			snprintf(stat, sizeof(stat), "/proc/%d/stat", pid);
			sf = fopen(stat, "re");
			p = sf && fgets(buf, sizeof(buf), sf) ? strrchr(buf, ')') : NULL;
			if (sf)
				fclose(sf);
			if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == getpid())
				syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
			close(fd);
			if (!again && *n < max)
				seen[(*n)++] = pid;
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

/*
 * The watcher thread: on the first signal no target starts any more and
 * our children get SIGTERM (and any child a worker starts meanwhile);
 * TOOL_SIG_GRACE later, or at a second signal, whatever is left SIGKILL.
 * The workers see their targets end and finish; tool_go then writes 0.
 */
static void *tool_sig_watch(void *arg)
{
	struct tool_session *s = arg;
	static pid_t seen[TARGETS_MAX * 2];
	size_t nseen = 0;
	double kill_at = -1;
	int got = 0;

	for (;;) {
		struct pollfd p = { .fd = tool_sig_pipe[0], .events = POLLIN };
		double now = target_clock();
		char c = 1;

		/* Look again now and then: a worker may be starting a hop. */
		if (poll(&p, 1, got ? 50 : -1) > 0 && read(tool_sig_pipe[0], &c, 1) == 1) {
			if (c == 0)
				return NULL;
			if (got)
				kill_at = now;	/* a second one: at once */
			else {
				got = c;
				kill_at = now + TOOL_SIG_GRACE;
				fprintf(stderr, "mitogen: SIG%s: ending every target\n",
					sigabbrev_np(c) ? sigabbrev_np(c) : "?");
				pthread_mutex_lock(&s->lock);
				s->next = s->targets->n;
				pthread_mutex_unlock(&s->lock);
			}
		}
		if (got)
			tool_signal_children(target_clock() >= kill_at ? SIGKILL : SIGTERM, seen,
					     &nseen, sizeof(seen) / sizeof(seen[0]));
	}
}

/*
 * Catch SIGINT, SIGTERM, SIGHUP from now on (tool_sig_watch); one we were
 * started with ignored stays ignored (nohup, a shell's background job).
 * 0 or -1.
 */
static int tool_catch_signals(void)
{
	struct sigaction sa = { .sa_handler = tool_on_signal, .sa_flags = SA_RESTART }, old;
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };

	if (pipe2(tool_sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaction(sigs[i], &sa, NULL);
	return 0;
}

/*
 * Run every target, at most o->fanout at once, each from start to stop in
 * one worker, reporting each answer as it arrives. args is taken (each
 * target gets a copy). Returns the exit status: the worst of them.
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
		.args = args,
	};
	size_t nworkers = o->fanout < o->targets.n ? o->fanout : o->targets.n;
	pthread_t *workers = NULL, watcher;
	pthread_rwlockattr_t rwa;
	size_t started = 0;
	bool watching = false;

	mg_log_set_level(o->verbose ? MG_LOG_DEBUG : MG_LOG_WARNING);
	pthread_mutex_init(&s.lock, NULL);
	/* a forking worker must not wait behind a stream of shared takers */
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(&rwa,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s.forklock, &rwa);
	pthread_rwlockattr_destroy(&rwa);
	s.deadline = o->timeout > 0 ? target_clock() + o->timeout : -1;
	s.tasks = calloc(o->targets.n, sizeof(*s.tasks));
	workers = calloc(nworkers, sizeof(*workers));
	s.router = mg_router_new(NULL);
	if (!s.tasks || !workers || !s.router) {
		struct mg_error err = MG_ERROR_INIT;

		tool_error_fill(&err, errno ? -errno : -ENOMEM, MG_ERR_STREAM,
				"cannot make a router");
		tool_task_fail(&s, NULL, &err);
		goto out;
	}
	/* SIGINT, SIGTERM, SIGHUP: every target's tree ends first */
	watching = tool_catch_signals() == 0 &&
		   pthread_create(&watcher, NULL, tool_sig_watch, &s) == 0;
	/* this thread is worker 0; a worker that cannot start leaves its
	 * share to the others */
	for (size_t i = 1; i < nworkers; i++)
		if (pthread_create(&workers[started], NULL, tool_worker, &s) == 0)
			started++;
	tool_worker(&s);
	for (size_t i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	if (watching) {
		(void)!write(tool_sig_pipe[1], "", 1);
		pthread_join(watcher, NULL);
	}
	if (tool_signal)
		s.worst = 128 + tool_signal;
out:
	mg_value_free(args);
	free(workers);
	free(s.tasks);
	mg_router_unref(s.router);
	pthread_mutex_destroy(&s.lock);
	pthread_rwlock_destroy(&s.forklock);
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
	struct tool_opts opts = { .timeout = -1, .fanout = TOOL_FANOUT_DEFAULT,
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
