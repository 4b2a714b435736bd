/* SPDX-License-Identifier: MIT */
/* tools/targets.h — the -t syntax of the mitogen tool and starting targets. */
#ifndef TOOLS_TARGETS_H
#define TOOLS_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <mitogen/mitogen.h>

/*
 * -t SPEC is a comma-separated list of targets, each a '/'-separated chain
 * of hops, each hop started through the one before it:
 *
 *	-t local			one target, one hop
 *	-t local/fork/local		one target: a local child, forked inside it,
 *					and a local child of that
 *	-t local,fork,local/local	three targets
 *
 * A hop is "KIND" or "KIND:ARG". The kinds are the table hop_types in
 * targets.c: local, fork, ssh:[USER@]HOST[:PORT], sudo[:USER], su:USER,
 * doas[:USER], podman:NAME, docker:NAME, docker-image:IMAGE, buildah:NAME,
 * lxc:NAME, lxd:NAME, incus:NAME, kubectl:[NAMESPACE/]POD[:CONTAINER],
 * machinectl:NAME, setns:podman:NAME, setns:docker:NAME, setns:lxc:NAME,
 * setns:pid:N. A hop that names no kind is an ssh host, as pdsh reads
 * it: "web1" is "ssh:web1", "deploy@web1:2222" is "ssh:deploy@web1:2222".
 * In kubectl:NAMESPACE/POD the '/' is the namespace's unless what follows
 * names a kind of hop (kubectl:web/sudo is pod web, then sudo).
 */

/* Hard limits, so that a typo cannot start thousands of processes. */
#define TARGETS_MAX 1024
#define TARGET_HOPS_MAX 16

struct hop_type;
struct hop_share;

struct hop {
	const struct hop_type *type;	/* row of the kind table */
	char *arg;			/* text after "KIND:", or NULL; owned */
	char *text;			/* the hop as written ("host01", "sudo"); owned */
	char name[48];			/* remote name once started ("t0.ssh1") */
	struct mg_context *ctx;		/* once started; owned reference */
	/* Set by target_list_share when another target reaches this hop
	 * through the same hops before it (the bastion of -t
	 * bastion/web[01-32]): started once for all of them and stopped by
	 * target_list_stop_shared, never by target_stop. Borrowed. */
	struct hop_share *share;
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
	size_t nshares;
	struct hop_share *shares;	/* target_list_share's; owned */
};

/* Monotonic seconds, for deadlines. */
double target_clock(void);
/* Does starting t fork this process (its first hop is a fork)? */
bool target_forks_here(const struct target *t);
/* The deepest started hop's context (borrowed), or NULL. */
struct mg_context *target_last(const struct target *t);
void target_list_free(struct target_list *list);
/* Parse SPEC into list. Returns 0, or -EINVAL with a message in why. */
int target_list_parse(struct target_list *list, const char *spec, char *why, size_t why_size);
/* Start t's hops in order, each via the one before, before deadline
 * (monotonic seconds); the last hop gets sandbox (may be NULL). Returns 0
 * or -errno with err filled (naming hops as written, never by their
 * remote names) and *ret_hop (may be NULL) the index of the hop that
 * failed. */
int target_start(struct target *t, struct mg_router *r, double deadline,
		 const struct mg_sandbox_opts *sandbox, struct mg_error *err,
		 size_t *ret_hop);
/*
 * What t's output lines are prefixed with, as pdsh does: the host of its
 * last ssh hop ("ssh:deploy@web1:2222/sudo" -> "web1"), or the target
 * as written when it has no ssh hop. Caller frees; NULL on ENOMEM.
 */
char *target_host(const struct target *t);
/* Replace every remote name of t's started hops in text (size bytes,
 * NUL-terminated) by the hop as written ("t3.ssh1" -> "ssh:web1"). */
void target_scrub(const struct target *t, char *text, size_t size);
/* Give every hop of list its remote name ("t3.ssh1"), before any start:
 * then the names may be read from any thread while targets start. */
void target_list_name(struct target_list *list);
/*
 * After target_list_name: link every hop that two or more targets reach
 * the same way (the same hops before it, each of the same kind and
 * argument) and that at least one of them goes on past to one start,
 * so that -t bastion/web[01-32] opens one connection to the bastion, not
 * 32. target_start then starts such a hop for the first target that
 * needs it; the others wait for that start (bounded by its connect timeout)
 * and take a reference, or fail with its error. A target's last hop,
 * where its work runs, is shared only with last_too (copy: -t
 * bastion,bastion/web[01-32] sends the data to the bastion once), and
 * never with another target's last hop. Returns 0 or -ENOMEM (then
 * nothing is shared).
 */
int target_list_share(struct target_list *list, bool last_too);
/* Shut the shared hops down, deepest first, once no target uses them
 * (after target_stop of every target). */
void target_list_stop_shared(struct target_list *list);
/* The hop whose remote name is name, or NULL. */
const struct hop *target_hop_by_name(const struct target *t, const char *name);
/*
 * Drop from list every target whose spec or host (target_host) is one of
 * the names SPEC expands to (-x: a comma-separated list with ranges).
 * Returns the number dropped, or -EINVAL with a reason in why, -ENOMEM.
 */
int target_list_exclude(struct target_list *list, const char *spec, char *why,
			size_t why_size);
/*
 * Append the targets of FILE (--hostfile, -t ^FILE): one or more targets
 * a line as -t takes them; blank lines and '#' comments are skipped.
 * Returns 0, -EINVAL with a reason in why, -ENOENT etc. (why says which
 * file), -ENOMEM.
 */
int target_list_parse_file(struct target_list *list, const char *path,
			   char *why, size_t why_size);
/* -l USER, -i KEY, -p PORT: defaults for every ssh hop that does not say
 * (borrowed; NULL / 0: ssh's own). */
void target_set_ssh_defaults(const char *user, const char *identity, int port);
/* Was a password given (--password-file, MITOGEN_PASSWORD)? */
bool target_have_password(void);
#define TARGET_SSH_OPTIONS_MAX 32
/* Password typed at any hop's prompt (borrowed; NULL: none). */
void target_set_password(const char *password);
/* "-F PATH" (an ssh_config file) for every ssh hop (borrowed). 0 or -E2BIG. */
int target_add_ssh_config(const char *path);
/* One more "-o OPT" for every ssh hop (borrowed). 0 or -E2BIG. */
int target_add_ssh_option(const char *opt);
/*
 * Shut t's own hops down deepest first and drop its references to shared
 * ones (force: end a stuck chain at its first own hop at once: SIGTERM
 * when that is our child, else SHUTDOWN without waiting).
 */
void target_stop(struct target *t, bool force);

#endif
