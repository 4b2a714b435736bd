// SPDX-License-Identifier: MIT
/*
 * ssh.c — mg_ssh(): a context on another host through the ssh client. The
 * channel is ssh's stdin/stdout (a socketpair on our side, a byte stream);
 * ssh's controlling terminal and stderr are a pty where its prompts and
 * errors appear (transports/pty.c, firststage.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mitogen/transport.h>

#include "core/message.h"
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

static const struct transport ssh_transport = {
	.kind = "ssh",
	.remote = true,
	.prompts = ssh_prompts,
	.pw_fail = ssh_pw_fail,
	.hostkey_fail = ssh_hostkey_fail,
};

static int ssh_build(const struct transport_req *req, const char *command, const char *script,
		     struct argv_buf *ab, char *why, size_t why_size)
{
	const struct mg_ssh_opts *o = req->opts;
	double timeout = *(const double *)req->extra;

	argv_add(ab, "%s", o->ssh_path ? o->ssh_path : "ssh");
	argv_add(ab, "-T");
	argv_add(ab, "-o");
	argv_add(ab, "LogLevel=ERROR");
	argv_add(ab, "-o");
	argv_add(ab, "ConnectTimeout=%d", timeout < 1 ? 1 : (int)(timeout + 0.999));
	switch (o->check_host_keys) {
	case MG_HOST_KEYS_ENFORCE:
		argv_add(ab, "-o");
		argv_add(ab, "StrictHostKeyChecking=yes");
		break;
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
	if (!o->password) {
		/* Nothing to type: fail at once instead of prompting. */
		argv_add(ab, "-o");
		argv_add(ab, "NumberOfPasswordPrompts=1");
	}
	if (!o->no_compression)
		argv_add(ab, "-C");
	if (o->port) {
		argv_add(ab, "-p");
		argv_add(ab, "%d", o->port);
	}
	if (o->username) {
		argv_add(ab, "-l");
		argv_add(ab, "%s", o->username);
	}
	for (const char *const *a = o->ssh_args; a && *a; a++)
		argv_add(ab, "%s", *a);
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

struct mg_context *ssh_start(struct mg_router *r, const struct mg_ssh_opts *o,
			     uint32_t id, const struct mg_value *sandbox, struct mg_error *err)
{
	const struct mg_local_opts *lo = o->local;
	double timeout = lo && lo->connect_timeout > 0 ? lo->connect_timeout : 30.0;
	char name[96], why[256];
	struct transport_req req = {
		.t = &ssh_transport,
		.default_name = name,
		.password = o->password,
		.build = ssh_build,
		.opts = o,
		.extra = &timeout,
	};

	if (ssh_check(o, why, sizeof(why)) < 0) {
		error_set(err, MG_ERR_STREAM, EINVAL, "%s", why);
		errno = EINVAL;
		return NULL;
	}
	snprintf(name, sizeof(name), "ssh.%.80s", o->hostname);
	return transport_start(r, &req, lo, id, sandbox, err);
}

/* Options as they travel to mg._proxy_start (via=). */
struct mg_value *ssh_opts_value(const struct mg_ssh_opts *o)
{
	struct mg_value *args = mg_list();

	for (const char *const *a = o->ssh_args; args && a && *a; a++)
		mg_list_append(args, mg_str(*a));
	return mg_value_build("ssssiivsbv", "ssh", o->hostname, o->username, o->ssh_path,
			      o->port, (int)o->check_host_keys,
			      o->password ? mg_secret(o->password) : mg_nil(), o->identity_file,
			      (int)o->no_compression, args);
}

struct mg_context *ssh_from_value(struct mg_router *r, const struct mg_local_opts *lo,
				  uint32_t id, const struct mg_value *sandbox,
				  const struct mg_value *v, struct mg_error *err)
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
		return via_start_opts(r, name, lo, ssh_opts_value(opts), err);
	}
	return ssh_start(r, opts, 0, NULL, err);
}
