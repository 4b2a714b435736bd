// SPDX-License-Identifier: MIT
/*
 * tools/targets.c — parsing -t SPEC into targets and hops (the table of hop
 * kinds is the one place that says which kinds exist, what argument each
 * takes and how it starts a context), starting each target's chain with
 * via= and stopping it deepest first. Uses only the public headers.
 */
#include <errno.h>
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

#include "tools/hostlist.h"
#include "tools/targets.h"

static void err_setf(struct mg_error *err, enum mg_error_kind kind,
		     int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

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

/* --password-file / MITOGEN_PASSWORD, --ssh-option: for every hop. */
static const char *hop_password;
/* -l USER, -i KEY, -p PORT: for ssh hops that do not say. */
static const char *hop_ssh_user;
static const char *hop_ssh_identity;
static int hop_ssh_port;

void target_set_ssh_defaults(const char *user, const char *identity, int port)
{
	hop_ssh_user = user;
	hop_ssh_identity = identity;
	hop_ssh_port = port;
}

bool target_have_password(void)
{
	return hop_password != NULL;
}
static const char *hop_ssh_args[2 * TARGET_SSH_OPTIONS_MAX + 1];
static size_t hop_ssh_nargs;

void target_set_password(const char *password)
{
	hop_password = password;
}

int target_add_ssh_config(const char *path)
{
	if (hop_ssh_nargs + 2 >= sizeof(hop_ssh_args) / sizeof(hop_ssh_args[0]))
		return -E2BIG;
	hop_ssh_args[hop_ssh_nargs++] = "-F";
	hop_ssh_args[hop_ssh_nargs++] = path;
	return 0;
}

int target_add_ssh_option(const char *opt)
{
	if (hop_ssh_nargs + 2 >= sizeof(hop_ssh_args) / sizeof(hop_ssh_args[0]))
		return -E2BIG;
	hop_ssh_args[hop_ssh_nargs++] = "-o";
	hop_ssh_args[hop_ssh_nargs++] = opt;
	return 0;
}

/* ssh:[USER@]HOST[:PORT]; HOST may be an IPv6 literal in brackets
 * ([::1], [::1]:2222), as ssh and URLs write it. */
static struct mg_context *hop_start_ssh(struct mg_router *r, const struct hop *h,
					const struct mg_local_opts *lo, struct mg_error *err)
{
	char buf[256], *host = buf, *user = NULL, *colon, *end;
	long port = 0;

	if (snprintf(buf, sizeof(buf), "%s", h->arg) >= (int)sizeof(buf)) {
		err_setf(err, MG_ERR_STREAM, EINVAL, "ssh:%.40s...: too long", h->arg);
		errno = EINVAL;
		return NULL;
	}
	if ((colon = strrchr(buf, '@'))) {
		*colon = '\0';
		user = buf;
		host = colon + 1;
	}
	if (host[0] == '[') {
		char *close = strchr(host, ']');

		if (!close || close == host + 1 || (close[1] && close[1] != ':')) {
			err_setf(err, MG_ERR_STREAM, EINVAL,
				 "ssh:%s: an IPv6 address is written [ADDR] or [ADDR]:PORT",
				 h->arg);
			errno = EINVAL;
			return NULL;
		}
		*close = '\0';
		host++;
		colon = close[1] ? close + 1 : NULL;
	} else {
		colon = strchr(host, ':');
	}
	if (colon) {
		*colon = '\0';
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (errno || end == colon + 1 || *end || port <= 0 || port > 65535) {
			err_setf(err, MG_ERR_STREAM, EINVAL,
				 "ssh:%s: the port must be a number from 1 to 65535", h->arg);
			errno = EINVAL;
			return NULL;
		}
	}
	MG_OPTS(mg_ssh_opts, o, .local = lo, .hostname = host,
		.username = user ? user : hop_ssh_user,
		.port = port ? (int)port : hop_ssh_port, .password = hop_password,
		.identity_file = hop_ssh_identity,
		.ssh_args = hop_ssh_nargs ? hop_ssh_args : NULL);
	return mg_ssh(r, &o, err);
}

/* sudo[:USER], su:USER, doas[:USER] */
static struct mg_context *hop_start_sudo(struct mg_router *r, const struct hop *h,
					 const struct mg_local_opts *lo, struct mg_error *err)
{
	MG_OPTS(mg_sudo_opts, o, .local = lo, .username = h->arg, .password = hop_password);
	return mg_sudo(r, &o, err);
}

static struct mg_context *hop_start_su(struct mg_router *r, const struct hop *h,
				       const struct mg_local_opts *lo, struct mg_error *err)
{
	MG_OPTS(mg_su_opts, o, .local = lo, .username = h->arg, .password = hop_password);
	return mg_su(r, &o, err);
}

static struct mg_context *hop_start_doas(struct mg_router *r, const struct hop *h,
					 const struct mg_local_opts *lo, struct mg_error *err)
{
	MG_OPTS(mg_doas_opts, o, .local = lo, .username = h->arg, .password = hop_password);
	return mg_doas(r, &o, err);
}

/* Containers (docs/containers.md): podman:NAME, docker:NAME,
 * docker-image:IMAGE, buildah:NAME, lxc:NAME, lxd:NAME, incus:NAME,
 * kubectl:[NAMESPACE/]POD[:CONTAINER], machinectl:NAME. The library checks the names
 * (and says which is wrong, as written). */
static struct mg_context *hop_start_podman(struct mg_router *r, const struct hop *h,
					   const struct mg_local_opts *lo, struct mg_error *err)
{
	MG_OPTS(mg_podman_opts, o, .local = lo, .container = h->arg);
	return mg_podman(r, &o, err);
}

static struct mg_context *hop_start_docker(struct mg_router *r, const struct hop *h,
					   const struct mg_local_opts *lo, struct mg_error *err)
{
	MG_OPTS(mg_docker_opts, o, .local = lo, .container = h->arg);
	return mg_docker(r, &o, err);
}

static struct mg_context *hop_start_docker_image(struct mg_router *r, const struct hop *h,
						 const struct mg_local_opts *lo,
						 struct mg_error *err)
{
	MG_OPTS(mg_docker_opts, o, .local = lo, .image = h->arg);
	return mg_docker(r, &o, err);
}

static struct mg_context *hop_start_buildah(struct mg_router *r, const struct hop *h,
					    const struct mg_local_opts *lo, struct mg_error *err)
{
	MG_OPTS(mg_buildah_opts, o, .local = lo, .container = h->arg);
	return mg_buildah(r, &o, err);
}

static struct mg_context *hop_start_lxc(struct mg_router *r, const struct hop *h,
					const struct mg_local_opts *lo, struct mg_error *err)
{
	MG_OPTS(mg_lxc_opts, o, .local = lo, .container = h->arg);
	return mg_lxc(r, &o, err);
}

static struct mg_context *hop_start_lxd(struct mg_router *r, const struct hop *h,
					const struct mg_local_opts *lo, struct mg_error *err)
{
	MG_OPTS(mg_lxd_opts, o, .local = lo, .container = h->arg);
	return mg_lxd(r, &o, err);
}

static struct mg_context *hop_start_incus(struct mg_router *r, const struct hop *h,
					  const struct mg_local_opts *lo, struct mg_error *err)
{
	MG_OPTS(mg_lxd_opts, o, .local = lo, .container = h->arg);
	return mg_incus(r, &o, err);
}

/* kubectl:[NAMESPACE/]POD[:CONTAINER]; hop_kubectl_check has checked the
 * shape (target_parse kept NAMESPACE/POD as one hop). */
static struct mg_context *hop_start_kubectl(struct mg_router *r, const struct hop *h,
					    const struct mg_local_opts *lo, struct mg_error *err)
{
	char buf[256], *pod = buf, *ns = NULL, *colon, *slash;

	if (snprintf(buf, sizeof(buf), "%s", h->arg) >= (int)sizeof(buf)) {
		err_setf(err, MG_ERR_STREAM, EINVAL, "kubectl:%.40s...: too long", h->arg);
		errno = EINVAL;
		return NULL;
	}
	slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
		ns = buf;
		pod = slash + 1;
	}
	colon = strchr(pod, ':');
	if (colon)
		*colon++ = '\0';
	MG_OPTS(mg_kubectl_opts, o, .local = lo, .pod = pod, .container = colon,
		.kubectl_namespace = ns);
	return mg_kubectl(r, &o, err);
}

static struct mg_context *hop_start_machinectl(struct mg_router *r, const struct hop *h,
					       const struct mg_local_opts *lo,
					       struct mg_error *err)
{
	MG_OPTS(mg_machinectl_opts, o, .local = lo, .machine = h->arg);
	return mg_machinectl(r, &o, err);
}

/* setns:podman:NAME, setns:docker:NAME, setns:lxc:NAME, setns:pid:N */
static struct mg_context *hop_start_setns(struct mg_router *r, const struct hop *h,
					  const struct mg_local_opts *lo, struct mg_error *err)
{
	char buf[256], *colon, *end;
	long pid;

	snprintf(buf, sizeof(buf), "%s", h->arg);
	colon = strchr(buf, ':');
	if (!colon || !colon[1]) {
		err_setf(err, MG_ERR_STREAM, EINVAL,
			 "setns:%s: write setns:podman:NAME, setns:docker:NAME, setns:lxc:NAME "
			 "or setns:pid:N", h->arg);
		errno = EINVAL;
		return NULL;
	}
	*colon++ = '\0';
	if (!strcmp(buf, "pid")) {
		errno = 0;
		pid = strtol(colon, &end, 10);
		if (errno || *end || pid <= 0 || pid > 0x3fffffff) {
			err_setf(err, MG_ERR_STREAM, EINVAL, "setns:%s: '%s' is not a process id",
				 h->arg, colon);
			errno = EINVAL;
			return NULL;
		}
		MG_OPTS(mg_setns_opts, o, .local = lo, .pid = (int)pid);
		return mg_setns(r, &o, err);
	}
	MG_OPTS(mg_setns_opts, o, .local = lo, .kind = buf, .container = colon);
	return mg_setns(r, &o, err);
}

/*
 * Every kind a hop may name. A new transport is one row here: for
 * example { "ssh", HOP_ARG_REQUIRED, "[USER@]HOST[:PORT]", hop_start_ssh }
 * or { "sudo", HOP_ARG_OPTIONAL, "USER", hop_start_sudo }. Names must not
 * contain ',', '/' or ':' (the separators) and become part of remote
 * names, which must not contain '/'.
 */
enum { HOP_SSH = 2 };	/* the ssh row of hop_types: plain hosts are ssh */

static const struct hop_type hop_types[] = {
	{ "local", HOP_ARG_NONE, NULL, hop_start_local },
	{ "fork", HOP_ARG_NONE, NULL, hop_start_fork },
	{ "ssh", HOP_ARG_REQUIRED, "[USER@]HOST[:PORT]", hop_start_ssh },
	{ "sudo", HOP_ARG_OPTIONAL, "USER", hop_start_sudo },
	{ "su", HOP_ARG_REQUIRED, "USER", hop_start_su },
	{ "doas", HOP_ARG_OPTIONAL, "USER", hop_start_doas },
	{ "podman", HOP_ARG_REQUIRED, "CONTAINER", hop_start_podman },
	{ "docker", HOP_ARG_REQUIRED, "CONTAINER", hop_start_docker },
	{ "docker-image", HOP_ARG_REQUIRED, "IMAGE", hop_start_docker_image },
	{ "buildah", HOP_ARG_REQUIRED, "CONTAINER", hop_start_buildah },
	{ "lxc", HOP_ARG_REQUIRED, "CONTAINER", hop_start_lxc },
	{ "lxd", HOP_ARG_REQUIRED, "INSTANCE", hop_start_lxd },
	{ "incus", HOP_ARG_REQUIRED, "INSTANCE", hop_start_incus },
	{ "kubectl", HOP_ARG_REQUIRED, "[NAMESPACE/]POD[:CONTAINER]", hop_start_kubectl },
	{ "machinectl", HOP_ARG_REQUIRED, "MACHINE", hop_start_machinectl },
	{ "setns", HOP_ARG_REQUIRED, "podman:NAME|docker:NAME|lxc:NAME|pid:N",
	  hop_start_setns },
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
 * Does a hop that names no kind read as an ssh host? "web1",
 * "deploy@web1", "web1:2222", "[::1]:22": no ':' before the host part
 * ends, or only a port after it. Anything else with a ':' ("telnet:x")
 * is an unknown kind, so that a misspelt kind is not sent to ssh.
 */
static bool hop_is_host(const char *text, size_t len, size_t klen)
{
	const char *at = memchr(text, '@', len);

	if (len == 0 || text[0] == '-')
		return false;
	if (text[0] == '[' || (at && at < text + klen))
		return true;
	if (klen == len)
		return true;
	for (size_t i = klen + 1; i < len; i++)
		if (text[i] < '0' || text[i] > '9')
			return false;
	return klen + 1 < len;
}

/* Does text[0..len) begin a hop that names a kind ("sudo", "ssh:h")? */
static bool hop_names_kind(const char *text, size_t len)
{
	const char *colon = memchr(text, ':', len);
	size_t klen = colon ? (size_t)(colon - text) : len;

	for (size_t i = 0; i < HOP_TYPES_N; i++)
		if (strlen(hop_types[i].name) == klen && !memcmp(hop_types[i].name, text, klen))
			return true;
	return false;
}

/*
 * Length of the hop that starts at text (end: the target's end). A hop
 * ends at the next '/', except kubectl:NAMESPACE/POD: the '/' after
 * "kubectl:NAMESPACE" is the namespace's unless what follows it names a
 * kind of hop ("kubectl:web/sudo" is pod web, then sudo; a plain host
 * after a pod is written ssh:HOST). An empty part stays in the hop, for
 * hop_kubectl_check to refuse as written.
 */
static size_t hop_len(const char *text, const char *end)
{
	const char *slash = memchr(text, '/', (size_t)(end - text)), *next, *nend;

	if (!slash)
		return (size_t)(end - text);
	if ((size_t)(slash - text) < 8 || memcmp(text, "kubectl:", 8) ||
	    memchr(text + 8, ':', (size_t)(slash - text - 8)))
		return (size_t)(slash - text);
	next = slash + 1;
	nend = memchr(next, '/', (size_t)(end - next));
	if (!nend)
		nend = end;
	if (nend > next && hop_names_kind(next, (size_t)(nend - next)))
		return (size_t)(slash - text);
	return (size_t)(nend - text);
}

/* Is s[0..n) a kubectl name we pass on (not empty, no leading '-')? */
static bool hop_kubectl_word(const char *s, size_t n)
{
	return n > 0 && s[0] != '-';
}

/*
 * arg[0..alen) of hop text[0..len) is [NAMESPACE/]POD[:CONTAINER]: refuse
 * an empty part or one that kubectl would read as an option, naming the
 * hop as written. The library checks the characters.
 */
static int hop_kubectl_check(const char *arg, size_t alen, const char *spec,
			     const char *text, size_t len, const char *tspec, int tlen,
			     char *why, size_t why_size)
{
	const char *slash = memchr(arg, '/', alen), *pod = slash ? slash + 1 : arg;
	const char *colon = memchr(pod, ':', alen - (size_t)(pod - arg));
	size_t plen = colon ? (size_t)(colon - pod) : alen - (size_t)(pod - arg);
	const char *what = NULL;

	if (slash && !hop_kubectl_word(arg, (size_t)(slash - arg)))
		what = slash == arg ? "the namespace is empty" : "the namespace starts with '-'";
	else if (!hop_kubectl_word(pod, plen))
		what = plen ? "the pod starts with '-'" : "the pod is empty";
	else if (colon && !hop_kubectl_word(colon + 1, alen - (size_t)(colon + 1 - arg)))
		what = colon + 1 == arg + alen ? "the container is empty"
					       : "the container starts with '-'";
	if (!what)
		return 0;
	return why_set(why, why_size,
		       "-t '%s': hop '%.*s' in target '%.*s': %s (kubectl:[NAMESPACE/]POD[:CONTAINER])",
		       spec, (int)len, text, tlen, tspec, what);
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
	char kinds[512];

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
	if (!type && hop_is_host(text, len, klen)) {
		/* a plain host, as pdsh takes it: "web1" is "ssh:web1" */
		ret->type = &hop_types[HOP_SSH];
		ret->ctx = NULL;
		ret->arg = strndup(text, len);
		ret->text = strndup(text, len);
		if (!ret->arg || !ret->text) {
			free(ret->arg);
			free(ret->text);
			return -ENOMEM;
		}
		return 0;
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

	if (type->start == hop_start_kubectl) {
		int r = hop_kubectl_check(colon + 1, len - klen - 1, spec, text, len, tspec, tlen,
					  why, why_size);

		if (r < 0)
			return r;
	}

	ret->type = type;
	ret->ctx = NULL;
	ret->arg = NULL;
	ret->text = strndup(text, len);
	if (!ret->text)
		return -ENOMEM;
	if (colon) {
		ret->arg = strndup(colon + 1, len - klen - 1);
		if (!ret->arg) {
			free(ret->text);
			return -ENOMEM;
		}
	}
	return 0;
}

static void target_clear(struct target *t)
{
	for (size_t i = 0; i < t->nhops; i++) {
		free(t->hops[i].arg);
		free(t->hops[i].text);
	}
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
	for (const char *q = text + hop_len(text, end); q < end; q += 1 + hop_len(q + 1, end))
		n++;
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
		const char *hend = p + hop_len(p, end);

		ret = hop_parse(p, (size_t)(hend - p), spec, text, (int)len,
				&t->hops[t->nhops], why, why_size);
		if (ret < 0) {
			target_clear(t);
			return ret;
		}
		t->nhops++;
		if (hend == end)
			break;
		p = hend + 1;
	}
	return 0;
}

/*
 * Expand one target of -t, text[0..len), by its host ranges and append
 * each name's target to v[0..*n) (capacity *cap). list->n targets were
 * there before this -t.
 */
static int targets_add_item(const struct target_list *list, const char *text,
			    size_t len, const char *spec, struct target **v,
			    size_t *n, size_t *cap, char *why, size_t why_size)
{
	char **names = NULL;
	int nnames, ret = 0;

	nnames = hostlist_expand(text, len, TARGETS_MAX, &names, why,
				 why_size);
	if (nnames < 0)
		return nnames == -ENOMEM ? -ENOMEM : -EINVAL;
	for (int k = 0; k < nnames; k++) {
		if (list->n + *n >= TARGETS_MAX) {
			ret = why_set(why, why_size,
				      "-t '%s': too many targets (at most %d)",
				      spec, TARGETS_MAX);
			break;
		}
		if (*n == *cap) {
			size_t c = *cap ? 2 * *cap : 4;
			struct target *grown = reallocarray(*v, c, sizeof(**v));

			if (!grown) {
				ret = -ENOMEM;
				break;
			}
			*v = grown;
			*cap = c;
		}
		ret = target_parse(names[k], strlen(names[k]), spec, &(*v)[*n],
				   why, why_size);
		if (ret < 0)
			break;
		(*v)[*n].index = list->n + *n;
		(*n)++;
	}
	hostlist_free(names, (size_t)nnames);
	return ret;
}

/*
 * Parse SPEC and append its targets to list (which may already hold some,
 * for a repeated -t). Returns 0, or -EINVAL with a one-line reason in
 * why (which names the offending target or hop and what is accepted), or
 * -ENOMEM. On failure list is left as it was.
 */
int target_list_parse(struct target_list *list, const char *spec,
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
	/* Targets are split at every ',' outside brackets ("db[1,3]"), and
	 * each is expanded by its host ranges. */
	for (;;) {
		size_t tlen = hostlist_item_len(p, (size_t)(end - p));

		if (tlen == 0) {
			ret = why_set(why, why_size,
				      "-t '%s': empty target (targets are separated by ',', e.g. local,fork)",
				      spec);
			goto fail;
		}
		ret = targets_add_item(list, p, tlen, spec, &v, &n, &cap, why,
				       why_size);
		if (ret < 0)
			goto fail;
		if (p + tlen == end)
			break;
		p += tlen + 1;
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
void target_list_free(struct target_list *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->n; i++)
		target_clear(&list->v[i]);
	free(list->v);
	list->v = NULL;
	list->n = 0;
	target_list_stop_shared(list);	/* nothing left to stop, normally */
	free(list->shares);
	list->shares = NULL;
	list->nshares = 0;
}

/* starting and stopping */

/* CLOCK_MONOTONIC seconds: the clock the deadlines below are on. */
double target_clock(void)
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

static void hop_explain(const struct hop *h, struct mg_error *e);

/* "t0.local", "t0.fork1": the remote name of hop i of t (its process's
 * argv[0] on the target); no '/', unique in the tool's tree. */
static void hop_name(struct target *t, size_t i)
{
	struct hop *h = &t->hops[i];

	if (i == 0)
		snprintf(h->name, sizeof(h->name), "t%zu.%s", t->index, h->type->name);
	else
		snprintf(h->name, sizeof(h->name), "t%zu.%s%zu", t->index, h->type->name, i);
}

/* Does starting t fork this process (its first hop is a fork)? */
bool target_forks_here(const struct target *t)
{
	return t->nhops > 0 && t->hops[0].type->start == hop_start_fork;
}

/* Last hop of a started target (borrowed), or NULL. */
struct mg_context *target_last(const struct target *t)
{
	if (!t || t->nstarted == 0 || t->nstarted < t->nhops)
		return NULL;
	return t->hops[t->nhops - 1].ctx;
}

/* --- hops several targets share --------------------------------------------- */

enum share_state { SHARE_IDLE, SHARE_STARTING, SHARE_UP, SHARE_FAILED };

struct hop_share {
	size_t depth;			/* 1 + the hop's index in its targets */
	enum share_state state;		/* under share_lock */
	struct mg_context *ctx;		/* SHARE_UP: owned reference */
	bool has_last;			/* some target's last hop */
	int ret;			/* SHARE_FAILED: -errno */
	struct mg_error err;		/* SHARE_FAILED: as the library said it */
};

/* One lock and one condition for every share: a start is seconds, a
 * hand-off microseconds, and a run holds at most a few hundred shares. */
static pthread_mutex_t share_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t share_cond = PTHREAD_COND_INITIALIZER;

/* The same hop: same kind and argument ("web1" is "ssh:web1"). */
static bool hop_same(const struct hop *a, const struct hop *b)
{
	return a->type == b->type &&
	       (a->arg && b->arg ? !strcmp(a->arg, b->arg) : a->arg == b->arg);
}

/* Do a and b reach their hop n - 1 the same way? */
static bool share_prefix(const struct target *a, const struct target *b, size_t n)
{
	if (a->nhops < n || b->nhops < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!hop_same(&a->hops[i], &b->hops[i]))
			return false;
	return true;
}

int target_list_share(struct target_list *list, bool last_too)
{
	size_t max = 0, n = 0;

	for (size_t k = 0; k < list->n; k++)
		max += list->v[k].nhops;
	if (list->n < 2 || max == 0)
		return 0;
	list->shares = calloc(max, sizeof(*list->shares));
	if (!list->shares)
		return -ENOMEM;
	/*
	 * Target k's hop i joins the first earlier target that reaches it
	 * the same way, where at least one of the two goes on past it (and,
	 * for a last hop, with last_too, where no other target ends there:
	 * two targets written alike stay two). Hops before a shared one are
	 * shared too (the same earlier target matches them), so a target's
	 * shared hops are always its first ones.
	 */
	for (size_t k = 1; k < list->n; k++) {
		struct target *t = &list->v[k];

		for (size_t i = 0; i < t->nhops; i++) {
			bool t_last = i + 1 == t->nhops;

			if (t_last && !last_too)
				break;
			for (size_t j = 0; j < k; j++) {
				const struct target *o = &list->v[j];
				struct hop *h = &o->hops[i];
				bool o_last = i + 1 == o->nhops;

				if (!share_prefix(o, t, i + 1) || (o_last && !last_too) ||
				    (t_last && (o_last || (h->share && h->share->has_last))))
					continue;
				if (!h->share) {
					h->share = &list->shares[n++];
					h->share->depth = i + 1;
					h->share->has_last = o_last;
				}
				h->share->has_last |= t_last;
				t->hops[i].share = h->share;
				/* one process, one name (target_scrub, report) */
				memcpy(t->hops[i].name, h->name, sizeof(h->name));
				break;
			}
			if (!t->hops[i].share)
				break;
		}
	}
	list->nshares = n;
	return 0;
}

/*
 * Before starting a shared hop: start it (false: the caller starts it and
 * then calls share_publish), or take the outcome of the start another
 * target made (true: *ret_ctx a reference, or NULL with *ret and err as
 * that start failed). Waits for a start in progress however long it
 * takes: it is bounded by its target's connect timeout, which began no
 * later than the caller's (a target is taken before it starts), and so
 * every target behind a bastion that did not start says the same.
 */
static bool share_claim(struct hop_share *sh, struct mg_context **ret_ctx, int *ret,
			struct mg_error *err)
{
	bool taken = true;

	pthread_mutex_lock(&share_lock);
	while (sh->state == SHARE_STARTING)
		pthread_cond_wait(&share_cond, &share_lock);
	*ret_ctx = NULL;
	if (sh->state == SHARE_IDLE) {
		sh->state = SHARE_STARTING;
		taken = false;
	} else if (sh->state == SHARE_UP) {
		*ret_ctx = mg_context_ref(sh->ctx);
	} else {
		*ret = sh->ret;
		*err = sh->err;
	}
	pthread_mutex_unlock(&share_lock);
	return taken;
}

/* The start share_claim gave the caller is over: ctx, or ret and err. */
static void share_publish(struct hop_share *sh, struct mg_context *ctx, int ret,
			  const struct mg_error *err)
{
	pthread_mutex_lock(&share_lock);
	if (ctx) {
		sh->state = SHARE_UP;
		sh->ctx = mg_context_ref(ctx);
	} else {
		sh->state = SHARE_FAILED;
		sh->ret = ret;
		sh->err = *err;
	}
	pthread_cond_broadcast(&share_cond);
	pthread_mutex_unlock(&share_lock);
}

void target_list_stop_shared(struct target_list *list)
{
	size_t depth = 0;

	for (size_t k = 0; k < list->nshares; k++)
		if (list->shares[k].depth > depth)
			depth = list->shares[k].depth;
	/* deepest first: a hop's children go before it */
	for (; depth > 0; depth--) {
		for (size_t k = 0; k < list->nshares; k++) {
			struct hop_share *sh = &list->shares[k];

			if (sh->depth != depth || !sh->ctx)
				continue;
			mg_context_shutdown(sh->ctx, true);
			sh->ctx = mg_context_unref(sh->ctx);
		}
	}
}

/*
 * Start t's hops in order, the first from r, each next one through the one
 * before, so that each is up before the next is asked for. Each gets the
 * remote name "t<index>.<kind>" (first hop) or "t<index>.<kind><hop>"
 * (the argv[0] of its process; messages name the hop as written instead).
 * deadline (on target_clock; < 0: none) bounds the whole chain. Returns 0,
 * or -errno with err filled: MG_ERR_TIMEOUT when the deadline passed,
 * MG_ERR_PASSWORD / MG_ERR_HOSTKEY as the library said, MG_ERR_STREAM
 * otherwise; for a chain of more than one hop the message says which hop
 * failed. Hops started before the failure stay in t->hops[0..t->nstarted)
 * for target_stop. A hop shared with other targets (target_list_share)
 * is started by the first of them to need it, under that target's name;
 * the others take it, or its failure, in words naming their own hops.
 */
int target_start(struct target *t, struct mg_router *r,
			double deadline, const struct mg_sandbox_opts *sandbox,
			struct mg_error *err, size_t *ret_hop)
{
	for (size_t i = t->nstarted; i < t->nhops; i++) {
		struct mg_error e = MG_ERROR_INIT;
		struct hop *h = &t->hops[i];
		char where[160] = "";
		double left = 0;	/* connect_timeout 0: the default */
		int ret = 0;

		if (!h->name[0])	/* else target_list_name did */
			hop_name(t, i);
		if (t->nhops > 1)
			snprintf(where, sizeof(where), "hop %zu of %zu (%s): ",
				 i + 1, t->nhops, h->text);
		if (ret_hop)
			*ret_hop = i;

		if (deadline >= 0) {
			left = deadline - target_clock();
			if (left <= 0) {
				err_setf(err, MG_ERR_TIMEOUT, ETIMEDOUT,
					 "%sthe connect timeout passed before it could start",
					 where);
				return -ETIMEDOUT;
			}
		}

		MG_OPTS(mg_local_opts, lo, .remote_name = h->name,
			.connect_timeout = left,
			.via = i ? t->hops[i - 1].ctx : NULL,
			.sandbox = i == t->nhops - 1 ? sandbox : NULL);
		errno = 0;
		if (!h->share || !share_claim(h->share, &h->ctx, &ret, &e)) {
			h->ctx = h->type->start(r, h, &lo, &e);
			/* whatever else the library said, this failed to start */
			ret = h->ctx ? 0 : errno ? -errno : -EIO;
			if (h->share)
				share_publish(h->share, h->ctx, ret, &e);
		}
		if (!h->ctx) {
			/* PasswordError and HostKeyError say more than
			 * "could not start": keep them */
			enum mg_error_kind kind = e.kind == MG_ERR_TIMEOUT ||
						  e.kind == MG_ERR_PASSWORD ||
						  e.kind == MG_ERR_HOSTKEY ? e.kind : MG_ERR_STREAM;

			hop_explain(h, &e);
			/* "t3.ssh1: ..." says which hop: `where` does, as written */
			if (!strncmp(e.message, h->name, strlen(h->name)) &&
			    !strncmp(e.message + strlen(h->name), ": ", 2))
				memmove(e.message, e.message + strlen(h->name) + 2,
					strlen(e.message + strlen(h->name) + 2) + 1);
			if (e.message[0])
				err_setf(err, kind, e.errnum ? e.errnum : -ret,
					 "%s%s", where, e.message);
			else
				err_setf(err, kind, -ret,
					 "%scannot start a context: %s", where,
					 strerror(-ret));
			/* the library names the hop by its remote name */
			target_scrub(t, err->message, sizeof(err->message));
			return ret;
		}
		t->nstarted++;
	}
	return 0;
}

/*
 * A key login refused by sshd ends at a password prompt, so the library
 * says "no password was given" -- true, but the operator who logs in by
 * key needs to hear that the key was refused, most often because the
 * user does not exist there or has not got the key.
 */
static void hop_explain(const struct hop *h, struct mg_error *e)
{
	char user[128] = "", host[160];
	const char *at, *arg = h->arg ? h->arg : "";

	if (h->type != &hop_types[HOP_SSH] || e->kind != MG_ERR_PASSWORD ||
	    hop_password)
		return;
	at = strrchr(arg, '@');
	if (at)
		snprintf(user, sizeof(user), "%.*s", (int)(at - arg), arg);
	else if (hop_ssh_user)
		snprintf(user, sizeof(user), "%s", hop_ssh_user);
	snprintf(host, sizeof(host), "%s", at ? at + 1 : arg);
	err_setf(e, MG_ERR_PASSWORD, e->errnum ? e->errnum : EACCES,
		 "%s: login%s%s refused: the key was not accepted (no such user on "
		 "the host, or the key is not in its authorized_keys)%s%s; no "
		 "password to try (--password-file)",
		 h->text, user[0] ? " as " : "", user,
		 hop_ssh_identity ? ", key " : "",
		 hop_ssh_identity ? hop_ssh_identity : "");
}

const struct hop *target_hop_by_name(const struct target *t, const char *name)
{
	for (size_t i = 0; t && name && i < t->nhops; i++)
		if (t->hops[i].name[0] && !strcmp(t->hops[i].name, name))
			return &t->hops[i];
	return NULL;
}

void target_list_name(struct target_list *list)
{
	for (size_t k = 0; k < list->n; k++)
		for (size_t i = 0; i < list->v[k].nhops; i++)
			hop_name(&list->v[k], i);
}

void target_scrub(const struct target *t, char *text, size_t size)
{
	/* deepest first: "t1.local1" before a shorter name it starts with */
	for (size_t i = t->nhops; i-- > 0;) {
		const struct hop *h = &t->hops[i];
		size_t nlen = strlen(h->name), tlen = strlen(h->text);
		char *p = text;

		if (!nlen)
			continue;
		while ((p = strstr(p, h->name))) {
			size_t rest = strlen(p + nlen);
			char c = p[nlen];

			/* a longer name ("t1.ssh12") is not this one */
			if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) {
				p += nlen;
				continue;
			}
			if ((size_t)(p - text) + tlen + rest + 1 > size)
				break;
			memmove(p + tlen, p + nlen, rest + 1);
			memcpy(p, h->text, tlen);
			p += tlen;
		}
	}
}

char *target_host(const struct target *t)
{
	for (size_t i = t->nhops; i-- > 0;) {
		const struct hop *h = &t->hops[i];
		const char *host, *at, *end;

		if (h->type != &hop_types[HOP_SSH] || !h->arg)
			continue;
		at = strrchr(h->arg, '@');
		host = at ? at + 1 : h->arg;
		if (host[0] == '[') {
			end = strchr(host, ']');
			return end ? strndup(host + 1, (size_t)(end - host - 1)) : strdup(host);
		}
		end = strchr(host, ':');
		return end ? strndup(host, (size_t)(end - host)) : strdup(host);
	}
	return strdup(t->spec);
}

int target_list_exclude(struct target_list *list, const char *spec, char *why,
			size_t why_size)
{
	const char *p = spec, *end = spec + strlen(spec);
	char **names = NULL;
	size_t nnames = 0, kept = 0;
	int dropped = 0, ret = 0;

	if (p == end)
		return why_set(why, why_size, "-x '': nothing to exclude");
	for (;;) {
		size_t len = hostlist_item_len(p, (size_t)(end - p));
		char **v = NULL, **grown;
		int n;

		if (len == 0) {
			ret = why_set(why, why_size, "-x '%s': empty name", spec);
			goto out;
		}
		n = hostlist_expand(p, len, TARGETS_MAX, &v, why, why_size);
		if (n < 0) {
			ret = n == -ENOMEM ? -ENOMEM : -EINVAL;
			goto out;
		}
		grown = reallocarray(names, nnames + (size_t)n, sizeof(*names));
		if (!grown) {
			hostlist_free(v, (size_t)n);
			ret = -ENOMEM;
			goto out;
		}
		names = grown;
		memcpy(names + nnames, v, (size_t)n * sizeof(*v));
		nnames += (size_t)n;
		free(v);
		if (p + len == end)
			break;
		p += len + 1;
	}
	for (size_t i = 0; i < list->n; i++) {
		struct target *t = &list->v[i];
		char *host = target_host(t);
		bool drop = false;

		if (!host) {
			ret = -ENOMEM;
			goto out;
		}
		/* "web1" and "ssh:web1" name one target */
		for (size_t k = 0; k < nnames && !drop; k++)
			drop = !strcmp(names[k], t->spec) || !strcmp(names[k], host) ||
			       (!strncmp(names[k], "ssh:", 4) && !strcmp(names[k] + 4, t->spec)) ||
			       (!strncmp(t->spec, "ssh:", 4) && !strcmp(t->spec + 4, names[k]));
		free(host);
		if (drop) {
			target_clear(t);
			dropped++;
			continue;
		}
		list->v[kept] = *t;
		list->v[kept].index = kept;
		kept++;
	}
	list->n = kept;
	ret = dropped;
out:
	hostlist_free(names, nnames);
	return ret;
}

int target_list_parse_file(struct target_list *list, const char *path,
			   char *why, size_t why_size)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0, lineno = 0, before = list->n;
	ssize_t n;
	int ret = 0;

	if (!f) {
		ret = -errno;
		why_set(why, why_size, "hostfile %s: %s", path, strerror(-ret));
		return ret;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *p = line, *e;

		lineno++;
		if ((e = strchr(p, '#')))
			*e = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		e = p + strlen(p);
		while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		/* blanks separate nothing a target can hold: "a, b" is "a,b" */
		e = p;
		for (char *q = p; *q; q++)
			if (*q != ' ' && *q != '\t')
				*e++ = *q;
		*e = '\0';
		if (!*p)
			continue;
		ret = target_list_parse(list, p, why, why_size);
		if (ret < 0) {
			char inner[512];

			if (why && why_size) {
				snprintf(inner, sizeof(inner), "%s", why);
				snprintf(why, why_size, "%s:%zu: %s", path, lineno, inner);
			}
			break;
		}
	}
	free(line);
	fclose(f);
	if (ret == 0 && list->n == before)
		ret = why_set(why, why_size, "hostfile %s names no target", path);
	if (ret < 0) {
		/* leave the list as it was */
		while (list->n > before)
			target_clear(&list->v[--list->n]);
	}
	return ret;
}

/*
 * Shut t's started hops down, deepest first, and drop them. Without force,
 * wait for each to go (the library's shutdown grace, then it is killed).
 * With force (a target whose last hop is still busy with a call we gave
 * up on), SIGTERM the first hop's process at once: it ends its whole tree
 * (the hops below it and what they run) before it goes, and our broker
 * waits for that when the tool stops.
 */
void target_stop(struct target *t, bool force)
{
	pid_t pid;

	if (!t || t->nstarted == 0)
		return;
	/*
	 * Why kill: a hop busy with a call acts on SHUTDOWN only when the
	 * call ends; each hop above it waits the library's shutdown grace for
	 * its child before going, and our broker then waits for each direct
	 * child in turn. That would keep the tool seconds per target past
	 * --timeout. So SIGTERM the first (our own child): an agent ends its
	 * tree on SIGTERM (SIGKILL after a grace) before it exits, and one
	 * its parent stopped that way does not answer the call it gave up on
	 * (SHUTDOWN would bring that answer after we stopped waiting).
	 * SIGKILL would leave its tree to the library's cgroup clean-up, and
	 * where there are no cgroups, running.
	 */
	for (size_t i = t->nstarted; i-- > 0 && !force;)
		if (!t->hops[i].share)
			mg_context_shutdown(t->hops[i].ctx, true);
	/*
	 * The first hop has not gone (a busy hop below keeps it), so its pid
	 * is still our unreaped child: the broker reaps only children that
	 * have exited.
	 */
	pid = force && !t->hops[0].share ? mg_context_pid(t->hops[0].ctx) : 0;
	if (pid > 0)
		kill(pid, SIGTERM);
	/*
	 * Below a shared hop our SIGTERM cannot reach, and that hop goes on
	 * serving the other targets: SHUTDOWN the first hop of our own, which
	 * ends the tree below it (the busy hop's command included) as SIGTERM
	 * would. Should it not go, the shared hop's own end at the end of the
	 * run takes it down.
	 */
	for (size_t i = 0; force && i < t->nstarted; i++)
		if (!t->hops[i].share) {
			mg_context_shutdown(t->hops[i].ctx, false);
			break;
		}
	while (t->nstarted > 0) {
		struct hop *h = &t->hops[--t->nstarted];

		h->ctx = mg_context_unref(h->ctx);
	}
}

