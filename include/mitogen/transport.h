/* SPDX-License-Identifier: MIT */
/*
 * Contexts started through another program: ssh (another host), sudo, su
 * and doas (another user). Nothing needs to be installed on the target
 * beyond a POSIX sh, uname, id, sha256sum, head, gzip, mkdir, chmod and
 * mv: a short first stage receives this program's image (compressed, only
 * when the target does not have it cached), checks its SHA-256 and runs
 * it. See README.md ("ssh, sudo, su, doas") for the cache directories.
 *
 * Every factory takes the common options (remote_name, connect_timeout,
 * debug, profiling, image, via, sandbox) through ->local, and fails with:
 *   MG_ERR_PASSWORD  a password was asked for and none given, or refused;
 *   MG_ERR_HOSTKEY   (ssh) the host key is unknown or changed under
 *                    enforcement;
 *   MG_ERR_STREAM    anything else: the program could not start, the
 *                    connection was refused or lost, another CPU
 *                    architecture, no cache directory allows exec,
 *                    connect_timeout passed (errnum ETIMEDOUT); the
 *                    message quotes what the program printed.
 * connect_timeout (default 30 s) bounds the whole start.
 *
 * Passwords are typed at the program's prompt through a pseudo-terminal
 * (su: on its stdin); they never appear on a command line or in a log.
 */
#ifndef MITOGEN_TRANSPORT_H
#define MITOGEN_TRANSPORT_H

#include <mitogen/context.h>

#ifdef __cplusplus
extern "C" {
#endif

enum mg_host_key_check {
	/* Unknown or changed host keys fail (StrictHostKeyChecking=yes). */
	MG_HOST_KEYS_ENFORCE = 0,
	/* Unknown keys are added, changed keys fail (accept-new). */
	MG_HOST_KEYS_ACCEPT_NEW,
	/* No verification at all (no known_hosts read or written). */
	MG_HOST_KEYS_IGNORE,
};

struct mg_ssh_opts {
	size_t sz;
	/* Common options; may be NULL. */
	const struct mg_local_opts *local;
	/* Required: host name or address. */
	const char *hostname;
	/* NULL: ssh picks (~/.ssh/config, then the local user name). */
	const char *username;
	/* NULL: "ssh" from PATH. */
	const char *ssh_path;
	/* 0: ssh picks. */
	int port;
	enum mg_host_key_check check_host_keys;
	/* Typed when ssh asks for one; NULL: a prompt is a PasswordError. */
	const char *password;
	/* Use only this key: no agent, no default keys (IdentitiesOnly). */
	const char *identity_file;
	/* ssh -C is on by default (as in the reference); true turns it off. */
	bool no_compression;
	/* Extra ssh arguments, NULL-terminated (e.g. "-o", "X=y"), placed
	 * before the host name. ~/.ssh/config is read as usual, and what it
	 * sets for the host beats our defaults (check_host_keys' enforce,
	 * compression, the default connect timeout); explicit options and
	 * these arguments beat it (README: "ssh options"). */
	const char *const *ssh_args;
};

/*
 * Start a context on another host over ssh: its stdio is the channel (the
 * same records as local contexts, framed in a byte stream). Returns a
 * context reference or NULL with errno and err (see the top of this file).
 */
MG_API struct mg_context *mg_ssh(struct mg_router *r, const struct mg_ssh_opts *opts,
				 struct mg_error *err);

struct mg_sudo_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* Target user (-u); NULL: root. */
	const char *username;
	/* NULL: "sudo" from PATH. */
	const char *sudo_path;
	/* Typed at sudo's prompt (the caller's or the target's password,
	 * as sudoers says); NULL: a prompt is a PasswordError. */
	const char *password;
	/* sudo -H: HOME is the target user's. */
	bool set_home;
	/* sudo -E: keep the caller's environment. */
	bool preserve_env;
	/*
	 * sudo-style arguments, NULL-terminated, parsed here: -u USER,
	 * --user=USER, -H, --set-home, -E, --preserve-env. Anything else
	 * fails with MG_ERR_STREAM before sudo runs.
	 */
	const char *const *sudo_args;
};

/*
 * Start a context as another user through sudo on the host of `via` (or
 * here). After the first stage the child connects back to a private
 * AF_UNIX SOCK_SEQPACKET socket of its parent (random abstract name; the
 * peer's pid must descend from the sudo we started and its uid be the
 * target's) and its stdio channel is closed. The context is privileged
 * (mg_context_is_privileged).
 */
MG_API struct mg_context *mg_sudo(struct mg_router *r, const struct mg_sudo_opts *opts,
				  struct mg_error *err);

struct mg_su_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* NULL: root. */
	const char *username;
	/* NULL: "su" from PATH. */
	const char *su_path;
	/* The target user's password (su asks unless we are root). */
	const char *password;
};

/* Like mg_sudo, through su (`su USER -c CMD`). */
MG_API struct mg_context *mg_su(struct mg_router *r, const struct mg_su_opts *opts,
				struct mg_error *err);

struct mg_doas_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* NULL: root. */
	const char *username;
	/* NULL: "doas" from PATH. */
	const char *doas_path;
	/* Typed at doas's prompt (the caller's password). */
	const char *password;
};

/* Like mg_sudo, through doas (`doas -u USER sh -c SCRIPT`). */
MG_API struct mg_context *mg_doas(struct mg_router *r, const struct mg_doas_opts *opts,
				  struct mg_error *err);


/*
 * Containers and namespaces (docs/containers.md). Each factory runs the
 * container's CLI with our first stage as `/bin/sh -c SCRIPT` inside the
 * container (no TTY: stdin, stdout and stderr stay apart, and stdin's
 * end of file reaches the commands), over its stdio; the agent's records
 * then travel over that byte stream. Exit statuses and errors travel in
 * our protocol, never through the CLI's exit code. A container that is
 * missing or stopped fails with MG_ERR_STREAM quoting the CLI's own
 * words; one without /bin/sh likewise; a lost CLI is a ChannelError on
 * the calls in flight, naming the context. Every factory takes the
 * common options through ->local (via= included: any depth, below any
 * method).
 */

struct mg_podman_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* Required: the container's name or id. */
	const char *container;
	/* `podman exec --user`; NULL: the container's. */
	const char *username;
	/* NULL: "podman" from PATH. */
	const char *podman_path;
};

/* A context in a running podman container (`podman exec -i`). */
MG_API struct mg_context *mg_podman(struct mg_router *r, const struct mg_podman_opts *opts,
				    struct mg_error *err);

struct mg_docker_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* The container's name or id; or NULL and image set. */
	const char *container;
	/* Start a new container of this image (`docker run --rm -i
	 * --pull=never`: it must be present), gone with the context. */
	const char *image;
	/* `docker exec -u`; NULL: the container's. */
	const char *username;
	/* NULL: "docker" from PATH. */
	const char *docker_path;
};

/* A context in a docker container (`docker exec -i`, `docker run --rm -i`). */
MG_API struct mg_context *mg_docker(struct mg_router *r, const struct mg_docker_opts *opts,
				    struct mg_error *err);

struct mg_buildah_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* Required: the working container. */
	const char *container;
	/* `buildah run --user`; NULL: the container's. */
	const char *username;
	/* NULL: "buildah" from PATH. */
	const char *buildah_path;
};

/* A context in a buildah working container (`buildah run`). */
MG_API struct mg_context *mg_buildah(struct mg_router *r, const struct mg_buildah_opts *opts,
				     struct mg_error *err);

struct mg_lxc_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* Required: the container's name. */
	const char *container;
	/* NULL: "lxc-attach" from PATH. */
	const char *lxc_attach_path;
};

/* A context in a running LXC container (`lxc-attach --clear-env`). */
MG_API struct mg_context *mg_lxc(struct mg_router *r, const struct mg_lxc_opts *opts,
				 struct mg_error *err);

struct mg_lxd_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* Required: the instance's name ([REMOTE:]NAME). */
	const char *container;
	/* NULL: "lxc" (mg_lxd) or "incus" (mg_incus) from PATH. */
	const char *lxc_path;
};

/* A context in an LXD instance (`lxc exec --mode=non-interactive`). */
MG_API struct mg_context *mg_lxd(struct mg_router *r, const struct mg_lxd_opts *opts,
				 struct mg_error *err);
/* The same through Incus (`incus exec --mode=non-interactive`). */
MG_API struct mg_context *mg_incus(struct mg_router *r, const struct mg_lxd_opts *opts,
				   struct mg_error *err);

struct mg_kubectl_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* Required: the pod. */
	const char *pod;
	/* The container in the pod; NULL: kubectl's default. */
	const char *container;
	/* -n; NULL: the current context's. */
	const char *kubectl_namespace;
	/* NULL: "kubectl" from PATH. */
	const char *kubectl_path;
	/* Extra arguments before `exec`, NULL-terminated ("--context", "x"). */
	const char *const *kubectl_args;
};

/* A context in a Kubernetes pod (`kubectl exec -i`). */
MG_API struct mg_context *mg_kubectl(struct mg_router *r, const struct mg_kubectl_opts *opts,
				     struct mg_error *err);

struct mg_machinectl_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* Required: the machine (a systemd-nspawn container). */
	const char *machine;
	/* --uid; NULL: root. */
	const char *username;
	/* NULL: "machinectl" from PATH. */
	const char *machinectl_path;
};

/* A context in a systemd-nspawn machine (`machinectl shell`). */
MG_API struct mg_context *mg_machinectl(struct mg_router *r,
					const struct mg_machinectl_opts *opts,
					struct mg_error *err);

struct mg_setns_opts {
	size_t sz;
	const struct mg_local_opts *local;
	/* "podman", "docker" or "lxc" with container; NULL with pid. */
	const char *kind;
	/* The container's name, as its CLI knows it. */
	const char *container;
	/* Or a process on this host whose namespaces to enter. */
	int pid;
	/* The CLI that tells the container's pid (NULL: kind's name). */
	const char *cli_path;
};

/*
 * A context inside a container's (or a process's) namespaces on this
 * host, started without the container's CLI on the way: a copy of this
 * program joins the target's cgroup, enters its user, mount, pid, net,
 * uts, ipc, time and cgroup namespaces, its root and working directory,
 * and takes its uid, gid and groups; its channel is a SEQPACKET
 * socketpair with its parent (so the eBPF channel filter covers it). The
 * context's own sandbox (opts->local->sandbox) applies on top. Needs
 * root (CAP_SYS_ADMIN, CAP_SYS_CHROOT), and a program the container can
 * run (a static one, or its libraries in the container).
 */
MG_API struct mg_context *mg_setns(struct mg_router *r, const struct mg_setns_opts *opts,
				   struct mg_error *err);

#ifdef __cplusplus
}
#endif
#endif
