// SPDX-License-Identifier: MIT
/*
 * tools/mitogen.c — the `mitogen` command: run commands or call exported
 * functions on one or more targets at once (-t local/fork,local,web[01-20]),
 * each target a chain of child contexts, and report the outcome. Children
 * of the tool are copies of the tool, so every built-in "mg." function is
 * there to call.
 *
 * Owns: the command line (subcommands, options, --help, which is the
 * reference for every option), the log callback of the tool (where
 * library log lines go: stderr, hops named as written), reading -I's
 * standard input, and handing the targets and steps to tools/runner.c.
 * The syntax of -t and the table of hop kinds are tools/targets.c's, how
 * output looks tools/output.c's, steps and scripts tools/script.c's.
 * Must not touch: library internals; it uses only the public headers.
 *
 * Exit status: the table in tool_usage_text (and docs/tool.md).
 * Stopped by SIGINT, SIGTERM or SIGHUP: 128+N, once every target's tree
 * has ended (runner.c, sig_watch).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mitogen/mitogen.h>

#include "tools/files.h"
#include "tools/json_args.h"
#include "tools/output.h"
#include "tools/runner.h"
#include "tools/script.h"
#include "tools/targets.h"
#include "tools/stats.h"
#include "tools/audit_cmd.h"

enum {
	TOOL_EXIT_USAGE = OUT_EXIT_USAGE,
	TOOL_EXIT_START = OUT_EXIT_UNREACHABLE,
};

/* --ro, --rw, --exec: at most this many of each. */
#define TOOL_PATHS_MAX 64

/* -I: at most this much standard input (it goes in every call). */
#define TOOL_STDIN_MAX ((size_t)64 << 20)

struct tool_opts {
	/* from -t (appended to by each -t); "local" when none was given */
	struct target_list targets;
	/* -x: applied once every -t is read; NULL-terminated */
	const char *exclude[TOOL_PATHS_MAX + 1];
	int nexclude;
	/* --connect-timeout, --command-timeout (seconds; <= 0: not given) */
	double connect_timeout;
	double command_timeout;
	/* --heartbeat: mg_router_opts.heartbeat_interval and _limit (0: default) */
	double heartbeat_interval, heartbeat_limit;
	bool verbose;
	/* --sandbox/--caps/--nofile: for the last hop of every target */
	struct mg_sandbox_opts sandbox;
	bool have_sandbox;
	/* -f: targets worked on at once */
	size_t fanout;
	/* --ro/--rw/--exec: NULL-terminated path lists for sandbox */
	const char *paths[3][TOOL_PATHS_MAX + 1];
	int npaths[3];
	/* -l, -i, -p: for ssh hops that do not say */
	const char *user;
	const char *identity;
	int port;
	/* output: -b, --diff, --json, -q, --summary */
	bool gather, diff, json, quiet, summary;
	/* -I: every target's command reads the tool's standard input */
	bool stdin_all;
	/* -k: a target goes on after a failed step */
	bool keep_going;
};

/* -f when none is given: pdsh's default width. */
#define TOOL_FANOUT_DEFAULT 32

static const char tool_usage_text[] =
	"usage: mitogen [-v] COMMAND [OPTIONS] ...\n"
	"\n"
	"  mitogen run [OPTIONS] [--] CMD [ARGS...] [\\; CMD2 [ARGS...] ...]\n"
	"      Run CMD on every target; relay its output as it comes and exit with\n"
	"      its status (128+N when killed by signal N). Words ';' (written \\; in\n"
	"      a shell) separate steps, run in order over one connection per target.\n"
	"      CMD reads /dev/null unless -I is given.\n"
	"  mitogen call [OPTIONS] NAME [ARGS...]\n"
	"      Call the exported function NAME (e.g. mg.stat, mg.uname) on every\n"
	"      target and print each result as JSON. An ARG that parses as JSON\n"
	"      (42, -1.5, true, null, \"s\", [1,\"a\"], {\"k\":1}) is passed as that\n"
	"      value, any other ARG as a plain string.\n"
	"  mitogen script [OPTIONS] FILE\n"
	"      Run the steps of FILE ('-': standard input), one a line: \"run [--] CMD\n"
	"      [ARGS...]\" or \"call NAME [ARGS...]\", words quoted as sh quotes them\n"
	"      (no expansions); blank lines and # comments are skipped. Each target\n"
	"      is connected once for all its steps.\n"
	"  mitogen stats [--pid N] [--watch]\n"
	"      Show every context's messages, bytes and drops each way, and the\n"
	"      last denials, of this user's (root: any) libmitogen processes.\n"
	"  mitogen copy|fetch|rsync|scp|fakessh -t TARGETS ...\n"
	"      Push files to every target, pull them from every target, or run\n"
	"      rsync, scp or another program over mitogen's own channel; their\n"
	"      options: mitogen copy --help (docs/files.md).\n"
	"  mitogen audit verify|show|fetch|keys ...\n"
	"      Check, read and gather the chained audit trails; their options:\n"
	"      mitogen audit --help (docs/audit.md).\n"
	"  mitogen --help | -h\n"
	"  mitogen --version\n"
	"\n"
	"Selecting targets:\n"
	"  -t, -w, --target TARGETS  where to run (default: local); see Targets.\n"
	"                          -t ^FILE reads targets from FILE (as --hostfile);\n"
	"                          --type is an old name of --target\n"
	"      --hostfile FILE     targets from FILE: one or more a line, as -t\n"
	"                          takes them; # comments and blank lines skipped\n"
	"  -x, --exclude NAMES     leave out the targets (or hosts) NAMES names:\n"
	"                          a comma-separated list with ranges (web[03-05])\n"
	"  -l, --user USER         log in as USER on ssh hops that name no user\n"
	"  -i, --identity KEY      log in with this key only (ssh -i, IdentitiesOnly)\n"
	"  -p, --port PORT         ssh port for ssh hops that name none\n"
	"      --ssh-option OPT    pass -o OPT to every ssh hop (repeatable)\n"
	"      --ssh-config FILE   ssh -F FILE for every ssh hop: host names, users,\n"
	"                          keys and ports from FILE instead of ~/.ssh/config\n"
	"      --password-file F   type the first line of F at password prompts\n"
	"                          (ssh, sudo, su, doas); MITOGEN_PASSWORD in the\n"
	"                          environment does the same\n"
	"\n"
	"Running:\n"
	"  -f, --fanout N          work on at most N targets at once (default 32);\n"
	"                          each is started, run and stopped in turn\n"
	"      --connect-timeout S give each target S seconds to start its whole\n"
	"                          chain, from when its turn comes (default 30)\n"
	"      --command-timeout S give each step S seconds on each target, from\n"
	"                          when it started there (default: no limit); what\n"
	"                          it printed until then is shown\n"
	"      --timeout S         both of the above, S each (per target, not for\n"
	"                          the whole run)\n"
	"  -I, --stdin             read the tool's standard input (up to 64 MiB)\n"
	"                          and give all of it to CMD on every target\n"
	"  -k, --keep-going        run a target's later steps after one failed\n"
	"                          (default: a target stops at its first failed step)\n"
	"      --heartbeat S[,L]   ping every hop every S seconds (default 20) and\n"
	"                          treat one silent for L seconds (default 3 S) as\n"
	"                          lost (ChannelError); 'off': never\n"
	"\n"
	"Output:\n"
	"  -b, --gather            hold the output to the end, then show identical\n"
	"                          results (stdout, stderr, status) once, under\n"
	"                          their hosts folded into ranges (web[01-20,22])\n"
	"      --diff              with -b: show each result as a diff against the\n"
	"                          most common one\n"
	"      --json              one JSON object per line as things happen (start,\n"
	"                          stdout/stderr chunks, exit, result, error, done,\n"
	"                          end); schema mitogen-tool/1, docs/json-schema.md\n"
	"      --summary           print the summary (counts, failed hosts and how)\n"
	"                          even when stderr is not a terminal\n"
	"  -q, --quiet             no progress line and no summary\n"
	"  -v, --verbose           also log DEBUG and INFO lines (default: WARNING+)\n"
	"  With more than one target every line is prefixed with the target's host\n"
	"  and \": \" as pdsh does (\"web01: hello\"; the whole chain, \"ssh:web01/sudo\",\n"
	"  where two targets share a host), so dshbak and clubak read it; a target\n"
	"  that fails says so on stderr (\"mitogen: web01: exit status 3\"). On a\n"
	"  terminal, with more than one target, a progress line (done/total,\n"
	"  running, failed, elapsed, rate) is redrawn on stderr while they run and\n"
	"  a summary printed at the end.\n"
	"\n"
	"Sandbox (the last hop of every target):\n"
	"      --sandbox PROFILE   a seccomp profile: default, strict, or a rule file\n"
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
	"\n"
	"Targets:\n"
	"  TARGETS is a comma-separated list of targets. A target is a chain of\n"
	"  hops separated by '/', each hop started through the one before it; CMD\n"
	"  or NAME runs in the last hop. Hop kinds: local (a new process from the\n"
	"  tool's image), fork (a fork of its parent), ssh:[USER@]HOST[:PORT],\n"
	"  sudo[:USER] (root), su:USER, doas[:USER]; a hop that names no kind is an\n"
	"  ssh host: web01 is ssh:web01, deploy@web01:2222 ssh:deploy@web01:2222.\n"
	"  Containers: podman:NAME, docker:NAME, docker-image:IMAGE, buildah:NAME,\n"
	"  lxc:NAME, lxd:NAME, incus:NAME, kubectl:[NAMESPACE/]POD[:CONTAINER]\n"
	"  (kubectl:web-0/sudo is pod web-0, then sudo), machinectl:NAME,\n"
	"  setns:podman:NAME, setns:docker:NAME, setns:lxc:NAME, setns:pid:N.\n"
	"      -t local                  a local child (the default)\n"
	"      -t local/fork/local       a local child, a fork inside it, and a\n"
	"                                local child of that fork\n"
	"      -t web01,web02/sudo       two hosts, root on the second\n"
	"  Host ranges as pdsh writes them make one target per name:\n"
	"  web[01-20] is web01 to web20, db[1,3,5] is db1, db3 and db5; a bracket\n"
	"  group with anything but digits, ',' and '-' ([::1]) is kept as is.\n"
	"      -t bastion/web[1-9]/sudo  root on web1..web9, through bastion\n"
	"  Hops that targets reach the same way (the bastion above) are started\n"
	"  once and shared; a target's last hop is its own.\n"
	"  -t may be given more than once; the targets add up. Errors name the\n"
	"  target and the hop as written (\"mitogen: web03: StreamError: ...\").\n"
	"\n"
	"Exit status (the worst over all targets and steps, highest wins):\n"
	"  0        every step succeeded on every target\n"
	"  1-251    run: the command's own exit status (128+N: killed by signal N)\n"
	"  1        call: the function failed (CallError)\n"
	"  2        usage error: bad options or targets; nothing was started\n"
	"  252      run: the command could not be run (not found, not executable)\n"
	"  253      a step did not finish within --command-timeout\n"
	"  254      a connection went away while a step ran (ChannelError)\n"
	"  255      a target could not be reached: its chain did not start\n"
	"           (refused, unknown host, login or host key failed, or\n"
	"           --connect-timeout passed)\n";

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

/* The targets, for naming log sources as written; set once parsed. */
static const struct target_list *tool_log_targets;

/*
 * Library log lines: "[source] LEVEL line" on stderr. A source that is one
 * of our hops ("t3.ssh1") is shown as its chain as written, up to that hop
 * ("web03/sudo").
 */
static void tool_log(enum mg_log_level level, const char *source,
		     const char *line, void *userdata)
{
	const bool *verbose = userdata;
	const struct target_list *tl = tool_log_targets;
	char shown[256];
	unsigned long ti;
	char *end;

	if (level < MG_LOG_WARNING && !*verbose)
		return;
	snprintf(shown, sizeof(shown), "%s", source ? source : "?");
	if (tl && source && source[0] == 't' &&
	    (ti = strtoul(source + 1, &end, 10), end != source + 1 && *end == '.') &&
	    ti < tl->n) {
		const struct target *t = &tl->v[ti];
		const struct hop *h = target_hop_by_name(t, source);

		if (h) {
			size_t used = 0;

			for (const struct hop *x = t->hops; x <= h && used < sizeof(shown); x++)
				used += (size_t)snprintf(shown + used, sizeof(shown) - used,
							 "%s%s", x == t->hops ? "" : "/",
							 x->text);
		}
	}
	fprintf(stderr, "[%s] %s %s\n", shown, mg_log_level_name(level),
		line ? line : "");
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

/* Passwords for ssh/sudo/su/doas prompts: never from the command line.
 * Zeroed when the tool exits (tool_password_forget). */
static char tool_password[1024];

static void tool_password_forget(void)
{
	explicit_bzero(tool_password, sizeof(tool_password));
}

/* --password-file FILE: its first line. Returns 0 or -1 (said why). Read
 * with read(2): no stdio buffer keeps a copy in freed memory. */
static int tool_read_password(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t k;

	if (fd < 0) {
		fprintf(stderr, "mitogen: --password-file %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (n < sizeof(tool_password) - 1 &&
	       (k = read(fd, tool_password + n, sizeof(tool_password) - 1 - n)) > 0)
		n += (size_t)k;
	close(fd);
	tool_password[n] = '\0';
	n = strcspn(tool_password, "\r\n");
	explicit_bzero(tool_password + n, sizeof(tool_password) - n);
	target_set_password(tool_password);
	return 0;
}

/*
 * MITOGEN_PASSWORD: taken when no --password-file gave a password, and in
 * every case gone from the environment before anything starts: unset, so
 * that no child, su target (su keeps its caller's environment) or command
 * run by mg.run inherits it, and its value zeroed where execve put it,
 * which unsetenv() leaves alone and /proc/PID/environ shows to every
 * process of our uid.
 */
static void tool_take_env_password(void)
{
	static const char name[] = "MITOGEN_PASSWORD=";
	const size_t len = sizeof(name) - 1;

	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, name, len))
			continue;
		if (!tool_password[0]) {
			snprintf(tool_password, sizeof(tool_password), "%s", *e + len);
			target_set_password(tool_password);
		}
		explicit_bzero(*e + len, strlen(*e + len));
	}
	unsetenv("MITOGEN_PASSWORD");
}

/*
 * Parse the options of a subcommand; on success *ret_first is the index in
 * argv of the first operand. Returns 0 or the exit code to leave with
 * (-1 for "help printed, exit 0").
 */

/* A positive number of seconds, or -1 (said why). */
static double tool_seconds(const char *opt, const char *arg)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(v) || v <= 0) {
		tool_usage_error("%s wants a positive number of seconds, not '%s'",
				 opt, arg);
		return -1;
	}
	return v;
}

/* -t TARGETS or -t ^FILE, --hostfile FILE. 0 or the exit code. */
static int tool_add_targets(struct tool_opts *o, const char *arg, bool file)
{
	char why[1024];
	int ret;

	if (!file && arg[0] == '^') {
		file = true;
		arg++;
	}
	ret = file ? target_list_parse_file(&o->targets, arg, why, sizeof(why))
		   : target_list_parse(&o->targets, arg, why, sizeof(why));
	if (ret == -ENOMEM) {
		fprintf(stderr, "mitogen: -t: %s\n", strerror(-ret));
		return TOOL_EXIT_START;
	}
	if (ret < 0)
		return tool_usage_error("%s", why);
	return 0;
}

enum {
	TOOL_OPT_CONNECT_TIMEOUT = 300,
	TOOL_OPT_COMMAND_TIMEOUT,
	TOOL_OPT_HOSTFILE,
	TOOL_OPT_DIFF,
	TOOL_OPT_JSON,
	TOOL_OPT_SUMMARY,
};

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
		{ "hostfile", required_argument, NULL, TOOL_OPT_HOSTFILE },
		{ "exclude", required_argument, NULL, 'x' },
		{ "user", required_argument, NULL, 'l' },
		{ "identity", required_argument, NULL, 'i' },
		{ "port", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "connect-timeout", required_argument, NULL, TOOL_OPT_CONNECT_TIMEOUT },
		{ "command-timeout", required_argument, NULL, TOOL_OPT_COMMAND_TIMEOUT },
		{ "stdin", no_argument, NULL, 'I' },
		{ "keep-going", no_argument, NULL, 'k' },
		{ "gather", no_argument, NULL, 'b' },
		{ "diff", no_argument, NULL, TOOL_OPT_DIFF },
		{ "json", no_argument, NULL, TOOL_OPT_JSON },
		{ "summary", no_argument, NULL, TOOL_OPT_SUMMARY },
		{ "quiet", no_argument, NULL, 'q' },
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
		{ "ssh-config", required_argument, NULL, 'F' },
		{ "heartbeat", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	int c, ret;

	/* argv[0] is the subcommand; "+": stop at the first operand, so a
	 * command's own options and negative numbers pass through untouched */
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:hf:t:w:x:l:i:p:Ikbqv", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'h':
			return tool_help() == 0 ? -1 : 1;
		case 't':
		case 'w':
			ret = tool_add_targets(o, optarg, false);
			if (ret)
				return ret;
			break;
		case TOOL_OPT_HOSTFILE:
			ret = tool_add_targets(o, optarg, true);
			if (ret)
				return ret;
			break;
		case 'x':
			if (o->nexclude == TOOL_PATHS_MAX)
				return tool_usage_error("more than %d -x", TOOL_PATHS_MAX);
			o->exclude[o->nexclude++] = optarg;
			break;
		case 'l':
			if (!optarg[0] || optarg[0] == '-')
				return tool_usage_error("-l wants a user name, not '%s'", optarg);
			o->user = optarg;
			break;
		case 'i':
			if (access(optarg, R_OK) < 0)
				return tool_usage_error("-i %s: %s", optarg, strerror(errno));
			o->identity = optarg;
			break;
		case 'p': {
			char *end;
			long port;

			errno = 0;
			port = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || port <= 0 || port > 65535)
				return tool_usage_error(
					"-p wants a port from 1 to 65535, not '%s'", optarg);
			o->port = (int)port;
			break;
		}
		case 'T':
		case TOOL_OPT_CONNECT_TIMEOUT:
		case TOOL_OPT_COMMAND_TIMEOUT: {
			const char *name = c == 'T' ? "--timeout" :
					   c == TOOL_OPT_CONNECT_TIMEOUT ? "--connect-timeout" :
									   "--command-timeout";
			double v = tool_seconds(name, optarg);

			if (v < 0)
				return TOOL_EXIT_USAGE;
			if (c != TOOL_OPT_COMMAND_TIMEOUT)
				o->connect_timeout = v;
			if (c != TOOL_OPT_CONNECT_TIMEOUT)
				o->command_timeout = v;
			break;
		}
		case 'I':
			o->stdin_all = true;
			break;
		case 'k':
			o->keep_going = true;
			break;
		case 'b':
			o->gather = true;
			break;
		case TOOL_OPT_DIFF:
			o->gather = o->diff = true;
			break;
		case TOOL_OPT_JSON:
			o->json = true;
			break;
		case TOOL_OPT_SUMMARY:
			o->summary = true;
			break;
		case 'q':
			o->quiet = true;
			break;
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
			ret = tool_sandbox_opt(o, c, optarg);
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
		case 'F':
			if (access(optarg, R_OK) < 0)
				return tool_usage_error("--ssh-config %s: %s", optarg,
							strerror(errno));
			if (target_add_ssh_config(optarg) < 0)
				return tool_usage_error("too many --ssh-option and --ssh-config");
			break;
		case 'H': {
			char *end = optarg;

			if (strcmp(optarg, "off") == 0) {
				o->heartbeat_interval = -1;
				break;
			}
			errno = 0;
			o->heartbeat_interval = strtod(optarg, &end);
			if (!errno && end != optarg && *end == ',') {
				char *l = end + 1;

				o->heartbeat_limit = strtod(l, &end);
				if (end == l || !isfinite(o->heartbeat_limit) ||
				    o->heartbeat_limit <= 0)
					end = optarg;	/* bad */
			}
			if (errno || end == optarg || *end || !isfinite(o->heartbeat_interval) ||
			    o->heartbeat_interval <= 0)
				return tool_usage_error(
					"--heartbeat wants SECONDS[,LIMIT] (positive numbers) or "
					"'off', not '%s'", optarg);
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
	if (o->json && o->gather)
		return tool_usage_error("--json and -b/--diff do not go together");
	tool_sandbox_paths(o);
	tool_take_env_password();
	atexit(tool_password_forget);
	target_set_ssh_defaults(o->user, o->identity, o->port);
	if (o->targets.n == 0 && o->nexclude == 0) {
		ret = target_list_parse(&o->targets, "local", NULL, 0);
		if (ret < 0) {
			fprintf(stderr, "mitogen: -t: %s\n", strerror(-ret));
			return TOOL_EXIT_START;
		}
	}
	for (int i = 0; i < o->nexclude; i++) {
		char why[512];

		ret = target_list_exclude(&o->targets, o->exclude[i], why, sizeof(why));
		if (ret == -ENOMEM) {
			fprintf(stderr, "mitogen: -x: %s\n", strerror(-ret));
			return TOOL_EXIT_START;
		}
		if (ret < 0)
			return tool_usage_error("-x: %s", why);
	}
	if (o->targets.n == 0)
		return tool_usage_error("no target left (every one was excluded by -x)");
	*ret_first = optind;
	return 0;
}

/* -I: all of standard input, at most TOOL_STDIN_MAX. 0 or exit code. */
static int tool_read_stdin(char **ret, size_t *ret_len)
{
	size_t len = 0, cap = 0;
	char *buf = NULL;

	for (;;) {
		ssize_t n;

		if (cap - len < 65536) {
			char *p;

			cap = cap ? 2 * cap : 65536;
			if (cap > TOOL_STDIN_MAX + 1)
				cap = TOOL_STDIN_MAX + 1;
			p = realloc(buf, cap);
			if (!p) {
				free(buf);
				fprintf(stderr, "mitogen: -I: %s\n", strerror(ENOMEM));
				return TOOL_EXIT_START;
			}
			buf = p;
		}
		n = read(STDIN_FILENO, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return tool_usage_error("-I: reading standard input: %s",
						strerror(errno));
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > TOOL_STDIN_MAX) {
			free(buf);
			return tool_usage_error("-I: standard input is larger than %zu MiB",
						TOOL_STDIN_MAX >> 20);
		}
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* Run steps on every target with the options in o. Takes the steps. */
static int tool_go(struct tool_opts *o, const char *command,
		   struct run_step *steps, size_t nsteps)
{
	bool tty = isatty(STDERR_FILENO) == 1, several = o->targets.n > 1;
	struct run_opts ro = {
		.targets = &o->targets,
		.steps = steps,
		.nsteps = nsteps,
		.fanout = o->fanout,
		.connect_timeout = o->connect_timeout > 0 ? o->connect_timeout :
							    RUN_CONNECT_TIMEOUT_DEFAULT,
		.command_timeout = o->command_timeout,
		.heartbeat_interval = o->heartbeat_interval,
		.heartbeat_limit = o->heartbeat_limit,
		.keep_going = o->keep_going,
		.sandbox = o->have_sandbox ? &o->sandbox : NULL,
		.out = {
			.mode = o->json ? OUT_JSON : o->gather ? OUT_GATHER :
				several ? OUT_PREFIX : OUT_RAW,
			.diff = o->diff,
			.summary = !o->json && (o->summary || (tty && several && !o->quiet)),
			.progress = !o->json && tty && several && !o->quiet,
			.out_fd = STDOUT_FILENO,
			.err_fd = STDERR_FILENO,
			.command = command,
		},
	};
	char *in = NULL;
	int rc;

	mg_log_set_level(o->verbose ? MG_LOG_DEBUG : MG_LOG_WARNING);
	if (o->stdin_all) {
		rc = tool_read_stdin(&in, &ro.stdin_len);
		if (rc) {
			script_steps_free(steps, nsteps);
			return rc;
		}
		ro.has_stdin = true;
		ro.stdin_data = in ? in : "";
	}
	fflush(stdout);
	target_list_name(&o->targets);
	/* ENOMEM: every target starts its own chain, which works too */
	(void)target_list_share(&o->targets, false);
	tool_log_targets = &o->targets;
	rc = runner_go(&ro);
	tool_log_targets = NULL;
	free(in);
	script_steps_free(steps, nsteps);
	return rc;
}

/* --- run, call, script ---------------------------------------------------- */

static int tool_run(int argc, char **argv, struct tool_opts *o)
{
	struct run_step *steps = NULL;
	size_t nsteps = 0;
	char why[256];
	int first, rc;

	rc = tool_parse_opts(argc, argv, o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first >= argc)
		return tool_usage_error(
			"run: no command given (mitogen run [OPTIONS] -- CMD [ARGS...])");
	rc = script_split_run(argv + first, (size_t)(argc - first), &steps, &nsteps,
			      why, sizeof(why));
	if (rc < 0) {
		script_steps_free(steps, nsteps);
		if (rc == -ENOMEM) {
			fprintf(stderr, "mitogen: run: %s\n", strerror(ENOMEM));
			return TOOL_EXIT_START;
		}
		return tool_usage_error("%s", why);
	}
	return tool_go(o, "run", steps, nsteps);
}

static int tool_call_cmd(int argc, char **argv, struct tool_opts *o)
{
	struct run_step *step = calloc(1, sizeof(*step));
	char why[256];
	int first, rc;

	if (!step) {
		fprintf(stderr, "mitogen: call: %s\n", strerror(ENOMEM));
		return TOOL_EXIT_START;
	}
	rc = tool_parse_opts(argc, argv, o, &first);
	if (rc) {
		free(step);
		return rc < 0 ? 0 : rc;
	}
	if (first >= argc) {
		free(step);
		return tool_usage_error(
			"call: no function name given (mitogen call [OPTIONS] NAME [ARGS...])");
	}
	rc = script_call_step(argv[first], argv + first + 1, (size_t)(argc - first - 1),
			      step, why, sizeof(why));
	if (rc < 0) {
		free(step);
		if (rc == -E2BIG)
			return tool_usage_error("%s", why);
		fprintf(stderr, "mitogen: call: %s\n", strerror(-rc));
		return TOOL_EXIT_START;
	}
	return tool_go(o, "call", step, 1);
}

static int tool_script(int argc, char **argv, struct tool_opts *o)
{
	struct run_step *steps = NULL;
	size_t nsteps = 0;
	char why[1024];
	int first, rc;

	rc = tool_parse_opts(argc, argv, o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first + 1 != argc)
		return tool_usage_error("script: give one FILE (mitogen script [OPTIONS] FILE)");
	if (o->stdin_all && !strcmp(argv[first], "-"))
		return tool_usage_error("script: -I and a script on standard input do not go together");
	rc = script_load(argv[first], &steps, &nsteps, why, sizeof(why));
	if (rc < 0) {
		script_steps_free(steps, nsteps);
		if (rc == -ENOMEM) {
			fprintf(stderr, "mitogen: script: %s\n", strerror(ENOMEM));
			return TOOL_EXIT_START;
		}
		return tool_usage_error("script %s", why);
	}
	return tool_go(o, "script", steps, nsteps);
}

int main(int argc, char **argv)
{
	struct tool_opts opts = { .fanout = TOOL_FANOUT_DEFAULT,
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
		return tool_usage_error("no command given (run, call, script, stats, copy, fetch, "
					"rsync, scp, fakessh or audit)");
	if (!strcmp(argv[i], "audit"))		/* tools/audit_cmd.c */
		return tool_audit(argc - i, argv + i);
	if (!strcmp(argv[i], "stats"))		/* tools/stats.c */
		return tool_stats(argc - i, argv + i);
	if (TOOL_FILES_CMD(argv[i]))		/* tools/files.c */
		return tool_files(argc - i, argv + i);
	if (!strcmp(argv[i], "help"))
		return tool_help();
	if (strcmp(argv[i], "run") && strcmp(argv[i], "call") &&
	    strcmp(argv[i], "script"))
		return tool_usage_error(
			"unknown command '%s' (expected run, call, script, stats, copy, fetch, "
			"rsync, scp, fakessh or audit)", argv[i]);

	/* The subcommand's -v is known only once its options are parsed:
	 * tool_go sets the level before anything can log. */
	mg_log_set_callback(tool_log, &opts.verbose);
	mg_log_set_level(opts.verbose ? MG_LOG_DEBUG : MG_LOG_WARNING);

	if (!strcmp(argv[i], "run"))
		rc = tool_run(argc - i, argv + i, &opts);
	else if (!strcmp(argv[i], "call"))
		rc = tool_call_cmd(argc - i, argv + i, &opts);
	else
		rc = tool_script(argc - i, argv + i, &opts);
	target_list_free(&opts.targets);
	fflush(stdout);
	return rc;
}
