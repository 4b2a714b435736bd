// SPDX-License-Identifier: MIT
/*
 * sudo.c — mg_sudo(), mg_su(), mg_doas(): a context as another user on the
 * host where the factory runs (here, or `via` any context). The program
 * gets a pty as controlling terminal and stderr (its prompts), a
 * socketpair as stdin/stdout for the first stage (the image, when not
 * cached for the target user), then the agent connects back to a private
 * SEQPACKET socket (firststage.c checks the peer) and stdio is closed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mitogen/transport.h>

#include "core/message.h"
#include "transports/transport.h"

static int become_build(const struct transport_req *req, const char *command,
			const char *script, struct argv_buf *ab, char *why, size_t why_size);
static struct mg_context *become_from_value(const struct transport *t, struct mg_router *r,
					    const struct mg_local_opts *lo, uint32_t id,
					    const struct mg_value *sandbox,
					    const struct mg_value *v, struct mg_error *err);

static const char *const become_prompts[] = { "password", NULL };

static const char *const sudo_pw_fail[] = {
	"sorry, try again", "incorrect password attempt", "a password is required", NULL,
};
static const char *const sudo_fatal[] = {
	"is not in the sudoers", "is not allowed to", "unknown user", "no tty present",
	"a terminal is required", NULL,
};
static const char *const su_pw_fail[] = { "authentication failure", "incorrect password", NULL };
static const char *const su_fatal[] = { "does not exist", "user unknown", NULL };
static const char *const doas_pw_fail[] = { "authentication failed", NULL };
static const char *const doas_fatal[] = { "not permitted", "unknown user", NULL };

const struct transport sudo_transport = {
	.kind = "sudo", .connect_back = true, .privileged = true, .c_locale = true,
	.solo_prompt = true,
	.prompts = become_prompts, .pw_fail = sudo_pw_fail, .fatal = sudo_fatal,
	.build = become_build, .from_value = become_from_value,
};
/* su has no prompt option: PAM asks "Password:" on stderr, where the
 * target side writes too; solo_prompt tells them apart (see
 * firststage.c, target_started). */
const struct transport su_transport = {
	.kind = "su", .connect_back = true, .privileged = true, .c_locale = true,
	.pw_on_stdin = true, .prompt_on_stderr = true, .solo_prompt = true,
	.prompts = become_prompts, .pw_fail = su_pw_fail, .fatal = su_fatal,
	.build = become_build, .from_value = become_from_value,
};
const struct transport doas_transport = {
	.kind = "doas", .connect_back = true, .privileged = true, .c_locale = true,
	.solo_prompt = true,
	.prompts = become_prompts, .pw_fail = doas_pw_fail, .fatal = doas_fatal,
	.build = become_build, .from_value = become_from_value,
};

/* Everything the three share, after options are checked. */
struct become {
	const struct transport *t;
	const char *path;
	const char *user;
	const char *password;
	bool set_home, preserve_env;
};

static int become_build(const struct transport_req *req, const char *command,
			const char *script, struct argv_buf *ab, char *why, size_t why_size)
{
	const struct become *b = req->opts;

	argv_add(ab, "%s", b->path);
	if (b->t == &sudo_transport) {
		argv_add(ab, "-u");
		argv_add(ab, "%s", b->user);
		if (b->set_home)
			argv_add(ab, "-H");
		if (b->preserve_env)
			argv_add(ab, "-E");
		argv_add(ab, "--");
		argv_add(ab, "/bin/sh");
		argv_add(ab, "-c");
		argv_add(ab, "%s", script);
	} else if (b->t == &su_transport) {
		argv_add(ab, "-c");
		argv_add(ab, "%s", command);
		argv_add(ab, "--");
		argv_add(ab, "%s", b->user);
	} else {
		argv_add(ab, "-u");
		argv_add(ab, "%s", b->user);
		argv_add(ab, "/bin/sh");
		argv_add(ab, "-c");
		argv_add(ab, "%s", script);
	}
	return 0;
}

static bool valid_user(const char *u)
{
	return u && *u && u[0] != '-' && strlen(u) < 64 && !strpbrk(u, " \t\n/:'\"");
}

static struct mg_context *become_start(struct mg_router *r, struct become *b,
				       const struct mg_local_opts *lo, uint32_t id,
				       const struct mg_value *sandbox, struct mg_error *err)
{
	char name[96];
	struct transport_req req = {
		.t = b->t, .default_name = name, .password = b->password,
		.target_user = b->user, .build = become_build, .opts = b,
	};

	if (!valid_user(b->user)) {
		error_set(err, MG_ERR_STREAM, EINVAL, "%s: username '%s' is invalid", b->t->kind,
			  b->user);
		errno = EINVAL;
		return NULL;
	}
	req.check_uid = passwd_uid(b->user, &req.want_uid) == 0;
	snprintf(name, sizeof(name), "%s.%s", b->t->kind, b->user);
	return transport_start(r, &req, lo, id, sandbox, err);
}

static struct mg_value *become_value(const struct become *b, struct mg_value *extra)
{
	return mg_value_build("ssssvbbv", b->t->kind, b->user, b->path, "",
			      b->password ? mg_secret(b->password) : mg_nil(),
			      (int)b->set_home, (int)b->preserve_env, extra ? extra : mg_nil());
}

static struct mg_context *become_from_value(const struct transport *t, struct mg_router *r,
					    const struct mg_local_opts *lo, uint32_t id,
					    const struct mg_value *sandbox,
					    const struct mg_value *v, struct mg_error *err)
{
	struct become b = { 0 };
	const char *kind, *unused;
	const struct mg_value *extra;

	if (mg_value_unpack(v, err, "ssssSbbv", &kind, &b.user, &b.path, &unused, &b.password,
			    &b.set_home, &b.preserve_env, &extra) < 0 || !b.user || !b.path) {
		error_set(err, MG_ERR_STREAM, EINVAL, "malformed sudo/su/doas options");
		errno = EINVAL;
		return NULL;
	}
	b.t = t;
	return become_start(r, &b, lo, id, sandbox, err);
}

static struct mg_context *become(struct mg_router *r, struct become *b,
				 const struct mg_local_opts *lo, struct mg_error *err)
{
	if (!r) {
		error_set(err, MG_ERR_STREAM, EINVAL, "no router");
		errno = EINVAL;
		return NULL;
	}
	if (lo && lo->sz > offsetof(struct mg_local_opts, via) && lo->via) {
		char name[96];

		snprintf(name, sizeof(name), "%s.%.60s", b->t->kind, b->user);
		return transport_factory(r, b->t, name, lo, become_value(b, NULL), err);
	}
	return become_start(r, b, lo, 0, NULL, err);
}

/* sudo_args: the options we know, in sudo's syntax; anything else fails. */
static int sudo_parse_args(struct become *b, const char *const *args, char *why, size_t size)
{
	for (size_t i = 0; args && args[i]; i++) {
		const char *a = args[i];

		if (!strcmp(a, "--set-home")) {
			b->set_home = true;
		} else if (!strcmp(a, "--preserve-env")) {
			b->preserve_env = true;
		} else if (!strncmp(a, "--user=", 7)) {
			b->user = a + 7;
		} else if (!strcmp(a, "--user")) {
			if (!args[i + 1])
				goto needs_arg;
			b->user = args[++i];
		} else if (a[0] == '-' && a[1] && a[1] != '-') {
			for (const char *p = a + 1; *p; p++) {
				if (*p == 'H') {
					b->set_home = true;
				} else if (*p == 'E') {
					b->preserve_env = true;
				} else if (*p == 'u') {
					if (p[1]) {
						b->user = p + 1;
					} else if (args[i + 1]) {
						b->user = args[++i];
					} else {
						goto needs_arg;
					}
					break;
				} else {
					snprintf(why, size, "sudo_args: unsupported option '-%c' in '%s'",
						 *p, a);
					return -EINVAL;
				}
			}
		} else {
			snprintf(why, size, "sudo_args: unsupported argument '%s'", a);
			return -EINVAL;
		}
	}
	return 0;
needs_arg:
	snprintf(why, size, "sudo_args: -u/--user needs a user name");
	return -EINVAL;
}

#define OPTS_COPY(TYPE, o, opts)						\
	do {									\
		if ((opts) && (opts)->sz >= sizeof(size_t)) {			\
			memcpy(&(o), (opts), (opts)->sz < sizeof(o) ? (opts)->sz : sizeof(o)); \
			(o).sz = sizeof(o);					\
		}								\
	} while (0)

struct mg_context *mg_sudo(struct mg_router *r, const struct mg_sudo_opts *opts,
			   struct mg_error *err)
{
	struct mg_sudo_opts o = { 0 };
	struct become b = { .t = &sudo_transport };
	char why[256];

	OPTS_COPY(mg_sudo_opts, o, opts);
	b.user = o.username ? o.username : "root";
	b.path = o.sudo_path ? o.sudo_path : "sudo";
	b.password = o.password;
	b.set_home = o.set_home;
	b.preserve_env = o.preserve_env;
	if (sudo_parse_args(&b, o.sudo_args, why, sizeof(why)) < 0) {
		error_set(err, MG_ERR_STREAM, EINVAL, "sudo: %s", why);
		errno = EINVAL;
		return NULL;
	}
	return become(r, &b, o.local, err);
}

struct mg_context *mg_su(struct mg_router *r, const struct mg_su_opts *opts,
			 struct mg_error *err)
{
	struct mg_su_opts o = { 0 };
	struct become b = { .t = &su_transport };

	OPTS_COPY(mg_su_opts, o, opts);
	b.user = o.username ? o.username : "root";
	b.path = o.su_path ? o.su_path : "su";
	b.password = o.password;
	return become(r, &b, o.local, err);
}

struct mg_context *mg_doas(struct mg_router *r, const struct mg_doas_opts *opts,
			   struct mg_error *err)
{
	struct mg_doas_opts o = { 0 };
	struct become b = { .t = &doas_transport };

	OPTS_COPY(mg_doas_opts, o, opts);
	b.user = o.username ? o.username : "root";
	b.path = o.doas_path ? o.doas_path : "doas";
	b.password = o.password;
	return become(r, &b, o.local, err);
}
