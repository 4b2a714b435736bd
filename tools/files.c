// SPDX-License-Identifier: MIT
/*
 * tools/files.c — `mitogen copy`, `mitogen fetch`, `mitogen rsync` and
 * `mitogen scp` (docs/files.md, docs/tool.md): files to and from every
 * target, and rsync/scp over fakessh to one.
 *
 * Owns: these subcommands' options, starting the targets with their
 * shared hops started once (-t bastion/web[01-32] starts one bastion, so
 * a push crosses that link once), the progress line (on a terminal
 * only), the failure summary and the exit status (as for run: 0, 1 a
 * destination failed, 2 usage, 254 a connection lost, 255 unreachable).
 * Must not touch: library internals (public headers only), the other
 * subcommands' files.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <mitogen/mitogen.h>

#include "tools/files.h"
#include "tools/output.h"
#include "tools/targets.h"

struct files_opts {
	struct target_list targets;
	bool have_targets;
	bool recursive, preserve, verbose, quiet, no_fsync;
	int mode;
	size_t fanout;
	double connect_timeout;
	/* ssh hops that do not say: -l, -i, --port (as run's -l, -i, -p;
	 * -p is --preserve here, as in scp and pdcp) */
	const char *user, *identity;
	int port;
	/* -o Compression=...: the user chose; else we add Compression=no */
	bool compression_said;
};

static int files_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int files_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mitogen: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see mitogen --help)\n");
	return OUT_EXIT_USAGE;
}

static void files_log(enum mg_log_level level, const char *source, const char *line,
		      void *userdata)
{
	bool verbose = *(bool *)userdata;

	if (level < MG_LOG_WARNING && !verbose)
		return;
	fprintf(stderr, "mitogen: %s: %s\n", source, line);
}

/* --- starting targets, shared hops once ------------------------------------ */

struct start_pool {
	struct target_list *list;
	struct mg_router *r;
	double timeout;
	int *failed;
	char (*why)[1024];
	pthread_mutex_t lock;
	size_t next;		/* the next target no thread has taken */
};

/* A starter: take the next target and start its chain until none is left. */
static void *start_some(void *arg)
{
	struct start_pool *p = arg;

	for (;;) {
		struct mg_error err = MG_ERROR_INIT;
		size_t i;
		int ret;

		pthread_mutex_lock(&p->lock);
		i = p->next++;
		pthread_mutex_unlock(&p->lock);
		if (i >= p->list->n)
			return NULL;
		ret = target_start(&p->list->v[i], p->r, target_clock() + p->timeout, NULL,
				   &err, NULL);
		if (ret < 0) {
			p->failed[i] = ret;
			snprintf(p->why[i], sizeof(p->why[i]), "%s", err.message);
		}
	}
}

/*
 * Start every target, fanout at a time, each within timeout of when it
 * was taken; a hop that several targets reach through the same hops
 * before it (the bastion) is started once (target_list_share), so that a
 * push crosses that link once. failed[i] (0 or -errno) and why[i] say how
 * target i fared.
 */
static void files_start(struct target_list *list, struct mg_router *r, size_t fanout,
			double timeout, int *failed, char (*why)[1024])
{
	struct start_pool p = { .list = list, .r = r, .timeout = timeout,
				.failed = failed, .why = why };
	pthread_t th[256];
	size_t n = 0;

	if (fanout > 256)
		fanout = 256;
	if (fanout > list->n)
		fanout = list->n;
	target_list_name(list);
	if (target_list_share(list, true) < 0) {
		/* without sharing a push would cross the first link once per
		 * target: say so rather than start that */
		for (size_t i = 0; i < list->n; i++) {
			failed[i] = -ENOMEM;
			snprintf(why[i], sizeof(why[i]), "out of memory");
		}
		return;
	}
	pthread_mutex_init(&p.lock, NULL);
	/* this thread is one starter; one that cannot be made leaves its
	 * share to the others */
	for (size_t k = 1; k < fanout; k++)
		if (pthread_create(&th[n], NULL, start_some, &p) == 0)
			n++;
	start_some(&p);
	for (size_t k = 0; k < n; k++)
		pthread_join(th[k], NULL);
	pthread_mutex_destroy(&p.lock);
}

/* Stop every target, then the hops they shared. */
static void files_stop(struct target_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		target_stop(&list->v[i], false);
	target_list_stop_shared(list);
}

/* --- progress ---------------------------------------------------------------- */

struct progress {
	const char *cmd;
	double t0;
	bool on;
	bool shown;
};

static void human(char *buf, size_t n, double b)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int k = 0;

	while (b >= 1024 && k < 4) {
		b /= 1024;
		k++;
	}
	snprintf(buf, n, k ? "%.1f %s" : "%.0f %s", b, u[k]);
}

static void on_progress(const struct mg_files_progress *p, void *ud)
{
	struct progress *pr = ud;
	char a[32], b[32], c[32];
	double dt = target_clock() - pr->t0;

	if (!pr->on)
		return;
	human(a, sizeof(a), (double)p->bytes);
	human(b, sizeof(b), (double)p->total);
	human(c, sizeof(c), dt > 0 ? (double)p->bytes / dt : 0);
	fprintf(stderr, "\r\033[K%s: %s of %s, %s/s, %zu done, %zu failed of %zu", pr->cmd, a, b,
		c, p->done, p->failed, p->n);
	pr->shown = true;
}

static void progress_clear(struct progress *pr)
{
	if (pr->shown)
		fprintf(stderr, "\r\033[K");
	pr->shown = false;
}

/* --- options ------------------------------------------------------------------ */

enum { OPT_MODE = 1000, OPT_PRESERVE, OPT_CONNECT_TIMEOUT, OPT_PORT, OPT_SSH_OPTION,
       OPT_SSH_CONFIG, OPT_NO_FSYNC };

static int files_parse(int argc, char **argv, struct files_opts *o, bool copyish, int *ret_first)
{
	static const struct option lopts[] = {
		{ "target", required_argument, NULL, 't' },
		{ "recursive", no_argument, NULL, 'r' },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "preserve", no_argument, NULL, OPT_PRESERVE },
		{ "no-fsync", no_argument, NULL, OPT_NO_FSYNC },
		{ "fanout", required_argument, NULL, 'f' },
		{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
		{ "user", required_argument, NULL, 'l' },
		{ "identity", required_argument, NULL, 'i' },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "ssh-option", required_argument, NULL, OPT_SSH_OPTION },
		{ "ssh-config", required_argument, NULL, OPT_SSH_CONFIG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argv[0];
	char why[1024], *end;
	int c;

	o->fanout = 32;
	o->connect_timeout = 30;
	o->mode = 0;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+t:rf:vqhpl:i:o:", lopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (target_list_parse(&o->targets, optarg, why, sizeof(why)) < 0)
				return files_usage(cmd, "-t: %s", why);
			o->have_targets = true;
			break;
		case 'r':
			o->recursive = true;
			break;
		case 'p':
		case OPT_PRESERVE:
			o->preserve = true;
			break;
		case OPT_NO_FSYNC:
			o->no_fsync = true;
			break;
		case OPT_MODE: {
			long m;

			errno = 0;
			m = strtol(optarg, &end, 8);
			if (errno || *end || end == optarg || m <= 0 || m > 07777)
				return files_usage(cmd, "--mode wants an octal mode (644), not '%s'",
						   optarg);
			o->mode = (int)m;
			break;
		}
		case 'f': {
			long f;

			errno = 0;
			f = strtol(optarg, &end, 10);
			if (errno || *end || f < 1 || f > 1024)
				return files_usage(cmd, "-f wants 1 to 1024, not '%s'", optarg);
			o->fanout = (size_t)f;
			break;
		}
		case OPT_CONNECT_TIMEOUT:
			o->connect_timeout = strtod(optarg, &end);
			if (*end || !isfinite(o->connect_timeout) || o->connect_timeout <= 0)
				return files_usage(cmd, "--connect-timeout wants seconds, not '%s'",
						   optarg);
			break;
		case 'l':
			o->user = optarg;
			break;
		case 'i':
			if (access(optarg, R_OK) < 0)
				return files_usage(cmd, "-i %s: %s", optarg, strerror(errno));
			o->identity = optarg;
			break;
		case OPT_PORT: {
			long pn;

			errno = 0;
			pn = strtol(optarg, &end, 10);
			if (errno || *end || pn < 1 || pn > 65535)
				return files_usage(cmd, "--port wants 1 to 65535, not '%s'", optarg);
			o->port = (int)pn;
			break;
		}
		case 'o':
		case OPT_SSH_OPTION:
			if (target_add_ssh_option(optarg) < 0)
				return files_usage(cmd, "too many -o");
			if (!strncasecmp(optarg, "compression", 11) &&
			    (optarg[11] == '=' || optarg[11] == ' ' || optarg[11] == '\t'))
				o->compression_said = true;
			break;
		case OPT_SSH_CONFIG:
			/* as run's --ssh-config: ssh -F FILE for every ssh hop */
			if (access(optarg, R_OK) < 0)
				return files_usage(cmd, "--ssh-config %s: %s", optarg, strerror(errno));
			if (target_add_ssh_config(optarg) < 0)
				return files_usage(cmd, "too many -o and --ssh-config");
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			printf("%s", tool_files_help);
			return -1;
		default:
			return files_usage(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	(void)copyish;
	/*
	 * Bulk data: no ssh compression unless -o Compression=yes (the ssh
	 * transport's default is on, as in Mitogen, which suits small RPC
	 * messages). zlib at level 6 runs at some 20-40 MB/s per core, below
	 * a LAN or loopback link: 100 MiB of random data to one host took
	 * 5.5-6.3 s with it, 2.5-3.1 s without (scp -O: 1.8-2.7 s); scp,
	 * pdcp and clush leave ssh's default (off). docs/files.md.
	 */
	if (!o->compression_said && target_add_ssh_option("Compression=no") < 0)
		return files_usage(cmd, "too many -o");
	target_set_ssh_defaults(o->user, o->identity, o->port);
	if (!o->have_targets && target_list_parse(&o->targets, "local", why, sizeof(why)) < 0)
		return OUT_EXIT_UNREACHABLE;
	*ret_first = optind;
	return 0;
}

const char tool_files_help[] =
	"mitogen copy [-t TARGETS] [-r] [--mode M] [--preserve] [--no-fsync] SRC... DEST\n"
	"    Push SRC to DEST on every target; targets that share hops get the\n"
	"    data through them once (-t bastion/web[01-32]: one copy to bastion).\n"
	"    Into DEST/<name> when DEST is a directory there (as cp). -r copies a\n"
	"    directory; symlinks are copied as links. --mode M sets the files'\n"
	"    mode (octal); -p/--preserve keeps owner (where permitted) and times.\n"
	"    Each file is fsynced before its rename, and its directory after, so\n"
	"    a crash leaves the old file or the new one; --no-fsync skips that.\n"
	"mitogen fetch [-t TARGETS] [-r] [--no-fsync] SRC DESTDIR\n"
	"    Pull SRC from every target into DESTDIR/<host>/<name> (as rpdcp);\n"
	"    two targets that would use the same directory are refused.\n"
	"mitogen rsync -t TARGET -- RSYNC-ARGS   (remote paths written :PATH)\n"
	"mitogen scp -t TARGET -- SCP-ARGS       (remote paths written :PATH)\n"
	"mitogen fakessh -t TARGET -- PROGRAM ARGS...\n"
	"    Run rsync or scp with an ssh that reaches TARGET over mitogen's own\n"
	"    channel (fakessh): any chain, sudo included, no new ssh connection.\n"
	"    fakessh runs any PROGRAM so (its `ssh HOST CMD` runs CMD on TARGET).\n"
	"  -l USER, -i KEY, --port N, -o OPT   for ssh hops that do not say\n"
	"  --ssh-config FILE   ssh -F FILE for every ssh hop (as for run)\n"
	"  -f N                 start N targets at once (32)\n"
	"  --connect-timeout S  per target start-up (30)\n"
	"  -q                   no progress line; -v: debug log\n"
	"Exit status: 0 all done; 1 a destination failed; 2 usage; 254 a\n"
	"connection was lost; 255 a target could not be reached. rsync and scp:\n"
	"their own exit status.\n";

/* --- copy and fetch ---------------------------------------------------------- */

static int result_code(const struct mg_files_result *res)
{
	if (!res->error)
		return OUT_EXIT_OK;
	return res->error == -EPIPE ? OUT_EXIT_LOST : OUT_EXIT_CALL;
}

static int files_copy_fetch(int argc, char **argv, bool fetch)
{
	struct files_opts o = { 0 };
	MG_OPTS(mg_files_opts, fo);
	struct progress pr = { .cmd = argv[0] };
	struct mg_router *r = NULL;
	struct mg_context **ctxs = NULL;
	struct mg_files_result *res = NULL;
	char **names = NULL, **hosts = NULL;
	size_t *which = NULL, n = 0, nfailed = 0;
	int *failed = NULL, rc, first = 0, worst = OUT_EXIT_OK;
	char (*why)[1024] = NULL;

	mg_log_set_callback(files_log, &o.verbose);
	rc = files_parse(argc, argv, &o, true, &first);
	if (rc)
		goto out_parsed;
	mg_log_set_level(o.verbose ? MG_LOG_DEBUG : MG_LOG_WARNING);
	if (fetch ? argc - first != 2 : argc - first < 2) {
		rc = files_usage(argv[0], fetch ? "give SRC and DESTDIR" : "give SRC... and DEST");
		goto out_parsed;
	}
	fo.recursive = o.recursive;
	fo.preserve = o.preserve;
	fo.no_fsync = o.no_fsync;
	fo.mode = o.mode;
	pr.on = isatty(STDERR_FILENO) == 1 && !o.quiet;
	fo.progress = on_progress;
	fo.progress_data = &pr;
	failed = calloc(o.targets.n, sizeof(*failed));
	why = calloc(o.targets.n, sizeof(*why));
	ctxs = calloc(o.targets.n, sizeof(*ctxs));
	names = calloc(o.targets.n, sizeof(*names));
	hosts = calloc(o.targets.n, sizeof(*hosts));
	which = calloc(o.targets.n, sizeof(*which));
	res = calloc(o.targets.n, sizeof(*res));
	if (!failed || !why || !ctxs || !names || !hosts || !which || !res) {
		rc = OUT_EXIT_UNREACHABLE;
		goto out_parsed;
	}
	/* fetch: DESTDIR/<host>; colliding names refused before anything starts. */
	if (fetch) {
		for (size_t i = 0; i < o.targets.n; i++) {
			names[i] = hosts[i] = target_host(&o.targets.v[i]);
			if (!hosts[i]) {
				rc = OUT_EXIT_UNREACHABLE;
				goto out_parsed;
			}
			for (char *p = hosts[i]; *p; p++)
				if (*p == '/')
					*p = '_';
			for (size_t j = 0; j < i; j++)
				if (!strcmp(hosts[i], hosts[j])) {
					rc = files_usage(argv[0], "targets %s and %s would both be "
							 "fetched into %s/%s", o.targets.v[j].spec,
							 o.targets.v[i].spec, argv[first + 1],
							 hosts[i]);
					goto out_parsed;
				}
		}
	}
	r = mg_router_new(NULL);
	if (!r) {
		fprintf(stderr, "mitogen: %s: %s\n", argv[0], strerror(errno));
		rc = OUT_EXIT_UNREACHABLE;
		goto out_parsed;
	}
	files_start(&o.targets, r, o.fanout, o.connect_timeout, failed, why);
	for (size_t i = 0; i < o.targets.n; i++) {
		if (failed[i]) {
			fprintf(stderr, "mitogen: %s: %s\n", o.targets.v[i].spec, why[i]);
			worst = OUT_EXIT_UNREACHABLE;
			nfailed++;
			continue;
		}
		ctxs[n] = target_last(&o.targets.v[i]);
		names[n] = names[i];
		which[n++] = i;
	}
	pr.t0 = target_clock();
	if (n && fetch) {
		struct mg_error err = MG_ERROR_INIT;

		rc = mg_files_pull(r, argv[first], argv[first + 1], ctxs, (const char *const *)names,
				   n, &fo, res, &err);
		progress_clear(&pr);
		if (rc < 0) {
			fprintf(stderr, "mitogen: fetch: %s\n", err.message);
			worst = rc == -EEXIST || rc == -EINVAL ? OUT_EXIT_USAGE : OUT_EXIT_CALL;
		}
		for (size_t k = 0; rc >= 0 && k < n; k++) {
			if (!res[k].error)
				continue;
			fprintf(stderr, "mitogen: %s: %s\n", o.targets.v[which[k]].spec,
				res[k].message);
			nfailed++;
			if (result_code(&res[k]) > worst)
				worst = result_code(&res[k]);
		}
	}
	for (int s = first; n && !fetch && s < argc - 1; s++) {
		struct mg_error err = MG_ERROR_INIT;

		rc = mg_files_push(r, argv[s], argv[argc - 1], ctxs, n, &fo, res, &err);
		progress_clear(&pr);
		if (rc < 0) {
			fprintf(stderr, "mitogen: copy: %s\n", err.message);
			worst = worst > OUT_EXIT_CALL ? worst : OUT_EXIT_CALL;
			continue;
		}
		for (size_t k = 0; k < n; k++) {
			if (!res[k].error)
				continue;
			fprintf(stderr, "mitogen: %s: %s\n", o.targets.v[which[k]].spec,
				res[k].message);
			nfailed++;
			if (result_code(&res[k]) > worst)
				worst = result_code(&res[k]);
		}
	}
	if (nfailed && o.targets.n > 1)
		fprintf(stderr, "mitogen: %s: %zu of %zu target%s failed\n", argv[0], nfailed,
			o.targets.n, o.targets.n == 1 ? "" : "s");
	rc = worst;
	files_stop(&o.targets);
out_parsed:
	if (rc == -1)
		rc = 0;
	for (size_t i = 0; hosts && i < o.targets.n; i++)
		free(hosts[i]);
	free(hosts);
	target_list_free(&o.targets);
	mg_router_unref(r);
	free(failed);
	free(why);
	free(ctxs);
	free(names);
	free(which);
	free(res);
	return rc;
}

int tool_files(int argc, char **argv)
{
	if (!strcmp(argv[0], "copy"))
		return files_copy_fetch(argc, argv, false);
	if (!strcmp(argv[0], "fetch"))
		return files_copy_fetch(argc, argv, true);
	return tool_fakessh_cmd(argc, argv);
}

/* --- rsync and scp over fakessh ---------------------------------------------- */

int tool_fakessh_cmd(int argc, char **argv)
{
	struct files_opts o = { 0 };
	struct mg_router *r = NULL;
	struct mg_error err = MG_ERROR_INIT;
	bool scp = !strcmp(argv[0], "scp"), any = !strcmp(argv[0], "fakessh");
	char **pargv = NULL;
	int failed = 0, rc, first = 0, status = 0;
	char (*why)[1024] = NULL;
	size_t k = 0;

	mg_log_set_callback(files_log, &o.verbose);
	rc = files_parse(argc, argv, &o, false, &first);
	if (rc)
		goto out;
	mg_log_set_level(o.verbose ? MG_LOG_DEBUG : MG_LOG_WARNING);
	if (o.targets.n != 1) {
		rc = files_usage(argv[0], "give one target (-t TARGET), not %zu", o.targets.n);
		goto out;
	}
	if (first >= argc) {
		rc = files_usage(argv[0], "give %s's arguments after --", argv[0]);
		goto out;
	}
	why = calloc(1, sizeof(*why));
	/* rsync/scp, [-S ssh,] then the arguments, ":PATH" as "mitogen:PATH". */
	pargv = calloc((size_t)(argc - first) + 4, sizeof(*pargv));
	if (!why || !pargv) {
		rc = OUT_EXIT_UNREACHABLE;
		goto out;
	}
	if (!any)
		pargv[k++] = scp ? "scp" : "rsync";
	if (scp) {
		/* scp runs /usr/bin/ssh unless told; "ssh" is looked up in PATH. */
		pargv[k++] = "-S";
		pargv[k++] = "ssh";
	}
	for (int i = first; i < argc; i++) {
		if (argv[i][0] == ':') {
			if (asprintf(&pargv[k], "mitogen%s", argv[i]) < 0) {
				rc = OUT_EXIT_UNREACHABLE;
				goto out;
			}
		} else {
			pargv[k] = strdup(argv[i]);
		}
		if (!pargv[k++]) {
			rc = OUT_EXIT_UNREACHABLE;
			goto out;
		}
	}
	r = mg_router_new(NULL);
	if (!r) {
		rc = OUT_EXIT_UNREACHABLE;
		goto out;
	}
	files_start(&o.targets, r, 1, o.connect_timeout, &failed, why);
	if (failed) {
		fprintf(stderr, "mitogen: %s: %s\n", o.targets.v[0].spec, why[0]);
		rc = OUT_EXIT_UNREACHABLE;
		goto stop;
	}
	if (mg_fakessh_run(target_last(&o.targets.v[0]), r, pargv, NULL, &status, &err) < 0) {
		fprintf(stderr, "mitogen: %s: %s\n", argv[0], err.message);
		rc = err.errnum == ENOENT ? 127 : OUT_EXIT_CALL;
		goto stop;
	}
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
stop:
	files_stop(&o.targets);
out:
	if (rc == -1)
		rc = 0;
	for (size_t i = scp ? 3 : any ? 0 : 1; pargv && i < k; i++)
		free(pargv[i]);
	free(pargv);
	free(why);
	target_list_free(&o.targets);
	mg_router_unref(r);
	return rc;
}
