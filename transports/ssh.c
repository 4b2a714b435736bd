// SPDX-License-Identifier: MIT
/*
 * ssh.c — mg_ssh(): a context on another host through the ssh client. The
 * channel is ssh's stdin/stdout (a socketpair on our side, a byte stream);
 * ssh's controlling terminal and stderr are a pty where its prompts and
 * errors appear (transports/pty.c, firststage.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <mitogen/transport.h>

#include "core/heartbeat.h"
#include "agent/tree.h"
#include "core/log.h"
#include "core/message.h"
#include "transports/admission.h"
#include "transports/transport.h"

static const char *const ssh_prompts[] = {
	"password", "passphrase", NULL,
};
static const char *const ssh_pw_fail[] = {
	"permission denied (", "permission denied, please try again",
	"too many authentication failures", NULL,
};
static const char *const ssh_hostkey_fail[] = {
	"host key verification failed", "remote host identification has changed",
	"are you sure you want to continue connecting", "no matching host key",
	NULL,
};

static int ssh_build(const struct transport_req *req, const char *command, const char *script,
		     struct argv_buf *ab, char *why, size_t why_size);
static struct mg_context *ssh_from_value(const struct transport *t, struct mg_router *r,
					 const struct mg_local_opts *lo, uint32_t id,
					 const struct mg_value *sandbox, const struct mg_value *v,
					 struct mg_error *err);

/* The ssh row of the method table (transports/methods.c). */
const struct transport ssh_transport = {
	.kind = "ssh",
	.remote = true,
	.prompts = ssh_prompts,
	.pw_fail = ssh_pw_fail,
	.hostkey_fail = ssh_hostkey_fail,
	.build = ssh_build,
	.from_value = ssh_from_value,
};

/*
 * Our options come in two kinds. What the caller asked for (identity_file,
 * port, username, check_host_keys other than the default, no_compression,
 * connect_timeout, ssh_args) goes on the command line, where it beats any
 * configuration. Our defaults (LogLevel, StrictHostKeyChecking=yes,
 * Compression, ConnectTimeout, NumberOfPasswordPrompts, and
 * ServerAliveInterval/ServerAliveCountMax from the router's heartbeat, so
 * that ssh itself gives up on a dead connection too) go last in a
 * configuration file of ours given with -F, after Include of the user's
 * ~/.ssh/config and /etc/ssh/ssh_config (what ssh reads without -F), so
 * that a value the user's configuration sets wins: ssh keeps the first
 * value it reads. A caller's own -F FILE (in ssh_args) is included
 * instead of those two ("-F none": nothing). When no such file can be
 * made (no writable $TMPDIR or /tmp, the table of temporary files full
 * (agent/tree.c: 8, so the 9th ssh a non-dumpable process starts at once),
 * a -F bundled with other flags), the defaults go on the command line
 * after the caller's ssh_args: they beat the configuration, never what
 * the caller said.
 * The file is a memfd where it can be (see ssh_write_conf): nothing on
 * disk, so nothing is left there however we are stopped.
 */
struct ssh_run {
	double timeout;
	bool timeout_set;		/* connect_timeout given by the caller */
	int alive_interval, alive_count; /* ServerAlive*, from the heartbeat; 0: none */
	const char *conf;		/* our -F file, or NULL */
	int conf_fd;			/* its memfd, kept open while ssh starts */
	bool conf_on_disk;		/* a file in $TMPDIR: unlink it */
	int skip_from, skip_n;		/* the caller's -F in ssh_args */
};

/* ssh options that take a value (ssh(1)). */
static const char ssh_valued[] = "BbcDEeFIiJLlmOoPpQRSWw";

/*
 * The caller's -F in args (the last one, as ssh): its index and how many
 * arguments it takes (1: "-Ffile", 2: "-F" "file"), its file in *file.
 * -1: none. -2: one bundled with other flags ("-vF"), which we cannot
 * take out.
 */
static int find_config_arg(const char *const *args, int *n, const char **file)
{
	int found = -1;

	for (int i = 0; args && args[i]; i++) {
		const char *a = args[i];

		if (a[0] != '-' || !a[1])
			continue;
		if (!strcmp(a, "--"))
			break;
		for (const char *p = a + 1; *p; p++) {
			if (!strchr(ssh_valued, *p))
				continue;
			if (*p == 'F') {
				if (p != a + 1)
					return -2;
				found = i;
				*n = p[1] ? 1 : 2;
				*file = p[1] ? p + 1 : args[i + 1];
			}
			if (!p[1] && args[i + 1])
				i++;
			break;
		}
	}
	if (found >= 0 && !*file)
		return -2;	/* "-F" at the end: let ssh say so */
	return found;
}

static void ssh_defaults_args(const struct mg_ssh_opts *o, const struct ssh_run *run,
			      struct argv_buf *ab)
{
	argv_add(ab, "-o");
	argv_add(ab, "LogLevel=ERROR");
	if (!run->timeout_set) {
		argv_add(ab, "-o");
		argv_add(ab, "ConnectTimeout=%d",
			 run->timeout < 1 ? 1 : (int)(run->timeout + 0.999));
	}
	if (o->check_host_keys == MG_HOST_KEYS_ENFORCE) {
		argv_add(ab, "-o");
		argv_add(ab, "StrictHostKeyChecking=yes");
	}
	/*
	 * Not -C: ssh sets compression outright for -C, wherever it stands,
	 * so it beat a caller's "-o Compression=no" (mitogen copy's, for
	 * bulk data); an -o counts only where nothing came before it.
	 */
	if (!o->no_compression) {
		argv_add(ab, "-o");
		argv_add(ab, "Compression=yes");
	}
	if (!o->password) {
		/* Nothing to type: fail at once instead of prompting. */
		argv_add(ab, "-o");
		argv_add(ab, "NumberOfPasswordPrompts=1");
	}
	if (run->alive_interval) {
		argv_add(ab, "-o");
		argv_add(ab, "ServerAliveInterval=%d", run->alive_interval);
		argv_add(ab, "-o");
		argv_add(ab, "ServerAliveCountMax=%d", run->alive_count);
	}
}

static int ssh_build(const struct transport_req *req, const char *command, const char *script,
		     struct argv_buf *ab, char *why, size_t why_size)
{
	const struct mg_ssh_opts *o = req->opts;
	const struct ssh_run *run = req->extra;

	argv_add(ab, "%s", o->ssh_path ? o->ssh_path : "ssh");
	argv_add(ab, "-T");
	if (run->conf) {
		argv_add(ab, "-F");
		argv_add(ab, "%s", run->conf);
	}
	if (run->timeout_set) {
		argv_add(ab, "-o");
		argv_add(ab, "ConnectTimeout=%d",
			 run->timeout < 1 ? 1 : (int)(run->timeout + 0.999));
	}
	switch (o->check_host_keys) {
	case MG_HOST_KEYS_ENFORCE:
		break;		/* the default: a default (see above) */
	case MG_HOST_KEYS_ACCEPT_NEW:
		argv_add(ab, "-o");
		argv_add(ab, "StrictHostKeyChecking=accept-new");
		break;
	case MG_HOST_KEYS_IGNORE:
		argv_add(ab, "-o");
		argv_add(ab, "StrictHostKeyChecking=no");
		argv_add(ab, "-o");
		argv_add(ab, "UserKnownHostsFile=/dev/null");
		argv_add(ab, "-o");
		argv_add(ab, "GlobalKnownHostsFile=/dev/null");
		break;
	default:
		snprintf(why, why_size, "check_host_keys: unknown value %d", (int)o->check_host_keys);
		return -EINVAL;
	}
	if (o->identity_file) {
		argv_add(ab, "-i");
		argv_add(ab, "%s", o->identity_file);
		argv_add(ab, "-o");
		argv_add(ab, "IdentitiesOnly=yes");
		argv_add(ab, "-o");
		argv_add(ab, "IdentityAgent=none");
	}
	if (o->no_compression) {
		argv_add(ab, "-o");
		argv_add(ab, "Compression=no");
	}
	if (o->port) {
		argv_add(ab, "-p");
		argv_add(ab, "%d", o->port);
	}
	if (o->username) {
		argv_add(ab, "-l");
		argv_add(ab, "%s", o->username);
	}
	for (int i = 0; o->ssh_args && o->ssh_args[i]; i++)
		if (i < run->skip_from || i >= run->skip_from + run->skip_n)
			argv_add(ab, "%s", o->ssh_args[i]);
	/* No -F file of ours: the defaults after everything the caller said
	 * (ssh keeps the first value of an -o), before any configuration. */
	if (!run->conf)
		ssh_defaults_args(o, run, ab);
	argv_add(ab, "%s", o->hostname);
	argv_add(ab, "%s", command);
	return 0;
}

static int ssh_check(const struct mg_ssh_opts *o, char *why, size_t size)
{
	if (!o || o->sz < sizeof(size_t)) {
		snprintf(why, size, "ssh: no options (hostname is required)");
		return -EINVAL;
	}
	if (!o->hostname || !*o->hostname || o->hostname[0] == '-' ||
	    strpbrk(o->hostname, " \t\n/'\"")) {
		snprintf(why, size, "ssh: hostname '%s' is missing or invalid",
			 o->hostname ? o->hostname : "");
		return -EINVAL;
	}
	if (o->username && (!*o->username || o->username[0] == '-' ||
			    strpbrk(o->username, " \t\n/'\"@"))) {
		snprintf(why, size, "ssh: username '%s' is invalid", o->username);
		return -EINVAL;
	}
	if (o->port < 0 || o->port > 65535) {
		snprintf(why, size, "ssh: port %d is out of range", o->port);
		return -EINVAL;
	}
	return 0;
}

/* An Include line for path, quoted (ssh's configuration syntax). */
static void conf_include(FILE *f, const char *path)
{
	char cwd[4096];

	if (path[0] == '/' || path[0] == '~' || !getcwd(cwd, sizeof(cwd)))
		fprintf(f, "Include \"%s\"\n", path);
	else	/* ssh takes a relative -F from the cwd, Include from ~/.ssh */
		fprintf(f, "Include \"%s/%s\"\n", cwd, path);
}

/*
 * Where our -F file goes: a memfd that ssh opens as /proc/<our pid>/fd/<n>
 * (one it inherited would not do: ssh closes every fd above 2 before it
 * reads its options, OpenSSH 9.2 included), kept open in run->conf_fd.
 * ssh may open that path only while it may read our /proc entry: the same
 * user (it is), and us dumpable. Otherwise (say, an agent made
 * non-dumpable) a file in $TMPDIR, which tree_end removes if we go before
 * ssh_start does. A stream to write it, or NULL (then no file).
 */
static FILE *ssh_conf_open(struct ssh_run *run, char *conf, size_t size)
{
	const char *tmp = getenv("TMPDIR");
	char self[32];
	ssize_t n;
	FILE *f;
	int fd;

	if (prctl(PR_GET_DUMPABLE) == 1 &&
	    (n = readlink("/proc/self", self, sizeof(self) - 1)) > 0 &&
	    (run->conf_fd = memfd_create("mitogen-ssh-config", MFD_CLOEXEC)) >= 0) {
		self[n] = '\0';
		snprintf(conf, size, "/proc/%s/fd/%d", self, run->conf_fd);
		fd = fcntl(run->conf_fd, F_DUPFD_CLOEXEC, 3);
	} else {
		snprintf(conf, size, "%s/mitogen-ssh-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp");
		fd = mkostemp(conf, O_CLOEXEC);
		if (fd >= 0 && tree_tmpfile_add(conf) < 0) {
			close(fd);
			unlink(conf);
			fd = -1;
		}
		run->conf_on_disk = fd >= 0;
	}
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f && fd >= 0)
		close(fd);
	return f;
}

/* Done with our -F file (ssh has read it, or will not). */
static void ssh_conf_close(struct ssh_run *run)
{
	if (run->conf_fd >= 0)
		close(run->conf_fd);
	run->conf_fd = -1;
	if (run->conf_on_disk) {
		unlink(run->conf);
		tree_tmpfile_del(run->conf);
	}
	run->conf_on_disk = false;
	run->conf = NULL;
}

/* Our -F file (see ssh_build) in conf, 0; or -1 (then no file). */
static int ssh_write_conf(const struct mg_ssh_opts *o, struct ssh_run *run, char *conf,
			  size_t size)
{
	const char *user = NULL;
	int n = 0, at = find_config_arg(o->ssh_args, &n, &user);
	FILE *f;

	if (at == -2)
		return -1;
	run->conf = conf;
	f = ssh_conf_open(run, conf, size);
	if (!f) {
		ssh_conf_close(run);
		return -1;
	}
	fprintf(f, "# libmitogen (transports/ssh.c): the configuration first, then our defaults\n");
	if (at < 0) {
		fprintf(f, "Include ~/.ssh/config\nInclude /etc/ssh/ssh_config\n");
	} else {
		if (strcmp(user, "none"))
			conf_include(f, user);
		run->skip_from = at;
		run->skip_n = n;
	}
	fprintf(f, "Match all\nLogLevel ERROR\n");
	if (!run->timeout_set)
		fprintf(f, "ConnectTimeout %d\n",
			run->timeout < 1 ? 1 : (int)(run->timeout + 0.999));
	if (o->check_host_keys == MG_HOST_KEYS_ENFORCE)
		fprintf(f, "StrictHostKeyChecking yes\n");
	if (!o->no_compression)
		fprintf(f, "Compression yes\n");
	if (!o->password)
		fprintf(f, "NumberOfPasswordPrompts 1\n");
	if (run->alive_interval)
		fprintf(f, "ServerAliveInterval %d\nServerAliveCountMax %d\n", run->alive_interval,
			run->alive_count);
	if (fclose(f) != 0) {
		ssh_conf_close(run);
		run->skip_from = run->skip_n = 0;
		return -1;
	}
	return 0;
}

static struct mg_context *ssh_start(struct mg_router *r, const struct mg_ssh_opts *o,
				    uint32_t id, const struct mg_value *sandbox, struct mg_error *err)
{
	const struct mg_local_opts *lo = o->local;
	struct ssh_run run = {
		.timeout = lo && lo->connect_timeout > 0 ? lo->connect_timeout : 30.0,
		.timeout_set = lo && lo->connect_timeout > 0,
		.conf_fd = -1,
	};
	char name[96], why[256], conf[4200];
	struct transport_req req = {
		.t = &ssh_transport,
		.default_name = name,
		.password = o->password,
		.build = ssh_build,
		.opts = o,
		.extra = &run,
	};
	struct mg_context *ctx;
	double hb_interval, hb_limit;
	int e;

	/* ssh counts whole seconds: at least 1, the count rounded up. */
	heartbeat_get(r, &hb_interval, &hb_limit);
	if (hb_interval > 0) {
		run.alive_interval = (int)ceil(hb_interval);
		run.alive_count = (int)ceil(hb_limit / run.alive_interval);
	}
	if (ssh_check(o, why, sizeof(why)) < 0) {
		error_set(err, MG_ERR_STREAM, EINVAL, "%s", why);
		errno = EINVAL;
		return NULL;
	}
	snprintf(name, sizeof(name), "ssh.%.80s", o->hostname);
	if (ssh_write_conf(o, &run, conf, sizeof(conf)) < 0)
		LOG_DEBUG("%s: no configuration file of ours: defaults on the command line", name);
	/* Admitted per host and per process, retried when dropped before
	 * the login (admission.c). */
	ctx = admission_start(r, &req, o->hostname, o->port, lo, id, sandbox, err);
	/* ssh has read it (and any ProxyJump ssh it started) by now. */
	e = errno;
	ssh_conf_close(&run);
	errno = e;
	return ctx;
}

/* Options as they travel to mg._proxy_start (via=). */
static struct mg_value *ssh_opts_value(const struct mg_ssh_opts *o)
{
	struct mg_value *args = mg_list();

	for (const char *const *a = o->ssh_args; args && a && *a; a++)
		mg_list_append(args, mg_str(*a));
	return mg_value_build("ssssiivsbv", "ssh", o->hostname, o->username, o->ssh_path,
			      o->port, (int)o->check_host_keys,
			      o->password ? mg_secret(o->password) : mg_nil(), o->identity_file,
			      (int)o->no_compression, args);
}

static struct mg_context *ssh_from_value(const struct transport *t, struct mg_router *r,
					 const struct mg_local_opts *lo, uint32_t id,
					 const struct mg_value *sandbox, const struct mg_value *v,
					 struct mg_error *err)
{
	const char *kind, *host = NULL, *user = NULL, *path = NULL, *pw = NULL, *ident = NULL;
	const struct mg_value *args = NULL;
	const char *argv[64];
	int port = 0, check = 0;
	bool nocomp = false;
	size_t n = 0;

	if (mg_value_unpack(v, err, "ssssiiSsbv", &kind, &host, &user, &path, &port, &check,
			    &pw, &ident, &nocomp, &args) < 0 || args->type != MG_LIST ||
	    args->len >= 64) {
		error_set(err, MG_ERR_STREAM, EINVAL, "ssh: malformed options");
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < args->len; i++) {
		if (args->items[i].type != MG_STR) {
			error_set(err, MG_ERR_STREAM, EINVAL, "ssh: malformed ssh_args");
			errno = EINVAL;
			return NULL;
		}
		argv[n++] = args->items[i].str;
	}
	argv[n] = NULL;
	MG_OPTS(mg_ssh_opts, o, .local = lo, .hostname = host, .username = user,
		.ssh_path = path, .port = port, .check_host_keys = (enum mg_host_key_check)check,
		.password = pw, .identity_file = ident, .no_compression = nocomp,
		.ssh_args = argv);
	return ssh_start(r, &o, id, sandbox, err);
}

struct mg_context *mg_ssh(struct mg_router *r, const struct mg_ssh_opts *opts,
			  struct mg_error *err)
{
	struct mg_ssh_opts o = { 0 };
	const struct mg_local_opts *lo;
	char why[256];

	/* Options from an older caller: the fields it lacks stay zero. */
	if (opts && opts->sz >= sizeof(size_t)) {
		memcpy(&o, opts, opts->sz < sizeof(o) ? opts->sz : sizeof(o));
		o.sz = sizeof(o);
		opts = &o;
	}
	lo = opts ? opts->local : NULL;
	if (!r || ssh_check(opts, why, sizeof(why)) < 0) {
		error_set(err, MG_ERR_STREAM, EINVAL, "%s", r ? why : "no router");
		errno = EINVAL;
		return NULL;
	}
	if (lo && lo->sz > offsetof(struct mg_local_opts, via) && lo->via) {
		char name[96];

		snprintf(name, sizeof(name), "ssh.%.80s", opts->hostname);
		return transport_factory(r, &ssh_transport, name, lo, ssh_opts_value(opts), err);
	}
	return ssh_start(r, opts, 0, NULL, err);
}
