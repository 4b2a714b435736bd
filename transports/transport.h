/* SPDX-License-Identifier: MIT */
/*
 * transport.h — what the transports that start a context through another
 * program (ssh, sudo, su, doas, podman, docker, ...) share: the method
 * table (every way to start a context is one struct transport, listed
 * once in transports/methods.c), the image they ship, the first stage (a
 * short POSIX sh script), the pseudo-terminal where prompts appear, and
 * the conversation that runs until the agent is up. docs/containers.md
 * says how to add a method.
 *
 * One start, in order (transport_start):
 *  1. the image: this program (or opts->image), its SHA-256 (names it in
 *     the remote cache) and, only when a target asks for it, gzip bytes;
 *  2. a socketpair (SOCK_STREAM) becomes the program's stdin and stdout, a
 *     new pty its controlling terminal and stderr (prompts, errors);
 *  3. the transport builds argv around the first-stage script;
 *  4. the conversation: password prompts answered from the pty (su:
 *     stderr), at most once and only before the target side runs (no
 *     MGSTART from the first stage yet; sudo, su, doas: the program has
 *     no child and has not exec'd), host-key and password failures
 *     recognised, the first stage's requests ("MGSEND": send the image;
 *     "MGPRIVATE why": log it; "MGARCH m", "MGNODIR why", "MGERR": fail)
 *     served, until the agent says MGREADY (byte stream) or connects back
 *     to our private SEQPACKET socket (sudo, su, doas);
 *  5. start_finish (master/local.c): BOOT, greeting.
 * The connect timeout bounds reaching the target and authenticating (until
 * MGSTART); from then on it is a bound on no progress: each line from the
 * first stage and each part of the image sent gives it that long again, so
 * that many transfers sharing one slow link do not fail for being slow.
 */
#ifndef TRANSPORTS_TRANSPORT_H
#define TRANSPORTS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <mitogen/context.h>

#include "master/master.h"

/* sha256.c */
struct sha256_ctx;
void sha256_hex(const void *data, size_t len, char out[65]);
/* Finish c (nettle's, fed by the caller) as 64 hex digits. */
void sha256_hex_digest(struct sha256_ctx *c, char out[65]);

/* The image a first stage receives. */
struct image {
	uint8_t *data;
	size_t len;
	char sha[65];
	uint8_t *gz;		/* gzip of data, made on first need */
	size_t gzlen;
};

/*
 * firststage.c: drop the debug sections of the ELF image d[len] in place
 * (what runs is unchanged); the new length. Not an ELF image of ours, or
 * nothing to drop: len, d untouched.
 */
size_t image_strip_debug(uint8_t *d, size_t len);

/* Builder of a program's argv (strings kept inside). */
struct argv_buf {
	char *argv[128];
	int argc;
	char store[32768];
	size_t used;
	bool overflow;
};

void argv_add(struct argv_buf *ab, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct transport_req;
struct argv_buf;

/*
 * What one method is: one row of the method table (transports/methods.c).
 * Everything master/via.c and the tool need to know about a method is
 * here; a new method is a new file in transports/ defining one of these
 * and one line in the table.
 */
struct transport {
	const char *kind;		/* "ssh", "sudo", ... for messages and names */
	bool connect_back;		/* switch to SEQPACKET after the first stage */
	bool remote;			/* another host (uids are not comparable) */
	bool privileged;		/* contexts are privileged */
	bool pw_on_stdin;		/* type the password on stdin (su), not the pty */
	bool prompt_on_stderr;		/* its prompt comes on stderr (su: PAM) */
	bool c_locale;			/* run the program with LC_ALL=C */
	bool solo_prompt;		/* prompts only while it has started
					 * nothing: no child, not exec'd (sudo,
					 * su, doas authenticate first) */
	bool no_stdio;			/* no first stage over stdio at all (setns:
					 * the agent is spawned here, SEQPACKET) */
	/*
	 * Can the program hand the agent a SEQPACKET end of ours as fd 3
	 * (podman exec --preserve-fds 1) for these options (struct ctr_opts)?
	 * Then calls do not cross the program's stdio relay; NULL: never.
	 */
	bool (*pass_chan)(const void *opts);
	/* The start failed with this message because the program does not
	 * know how to pass the fd (an old or remote CLI): start it again
	 * without. NULL: never. */
	bool (*pass_chan_refused)(const char *message);
	const char *const *prompts;	/* lowercase: a last line with one, ending in ':' */
	const char *const *pw_fail;	/* lowercase: the password was refused */
	const char *const *hostkey_fail;/* lowercase: host key not verified */
	const char *const *fatal;	/* lowercase: give up with StreamError */
	/* Its command line (see transport_req.build); NULL: the start gives one. */
	int (*build)(const struct transport_req *req, const char *command, const char *script,
		     struct argv_buf *ab, char *why, size_t why_size);
	/*
	 * Start from its options as they travel in a via= message (a list
	 * whose first item is kind, made by the method's own *_value()), with
	 * a given id and sandbox (mg._proxy_start). NULL with err on failure.
	 */
	struct mg_context *(*from_value)(const struct transport *t, struct mg_router *r,
					 const struct mg_local_opts *lo, uint32_t id,
					 const struct mg_value *sandbox, const struct mg_value *v,
					 struct mg_error *err);
};

/* methods.c: the table. The row named kind, or NULL. */
const struct transport *transport_find(const char *kind);

/* The rows (each defined in its method's file). */
extern const struct transport ssh_transport, sudo_transport, su_transport, doas_transport;
extern const struct transport podman_transport, docker_transport, buildah_transport;
extern const struct transport lxc_transport, lxd_transport, incus_transport;
extern const struct transport kubectl_transport, machinectl_transport, setns_transport;

/*
 * Start a method's context: here (through its from_value) or, when
 * lo->via is set, inside via (mg._proxy_start there). v (taken) is its
 * option list, first item the kind; name: the default context name.
 */
struct mg_context *transport_factory(struct mg_router *r, const struct transport *t,
				     const char *name, const struct mg_local_opts *lo,
				     struct mg_value *v, struct mg_error *err);

/* A start through a transport. */
struct transport_req {
	const struct transport *t;
	const char *default_name;
	const char *password;		/* NULL: none (a prompt is a PasswordError) */
	const char *program;		/* ssh_path, sudo_path: for messages */
	const char *target_user;	/* sudo, su, doas: whose home holds the cache */
	uid_t want_uid;			/* connect_back: peer's uid must be this... */
	bool check_uid;			/* ...when known */
	/* Fill ab with argv running `command` (a shell command line) or, for
	 * argv-style programs, `sh -c script`. Returns 0 or -EINVAL with why. */
	int (*build)(const struct transport_req *req, const char *command, const char *script,
		     struct argv_buf *ab, char *why, size_t why_size);
	bool pass_chan;			/* build hands the agent fd 3 (t->pass_chan) */
	const void *opts;		/* the transport's own options, for build */
	const void *extra;		/* more for build */
	/* Called (may be NULL) once the first stage says MGSTART: the
	 * program has authenticated and the target side runs (ssh: the
	 * handshake's admission slot is given back, admission.c). */
	void (*authenticated)(void *arg);
	void *authenticated_arg;
};

/*
 * Start a context. lo: common options (may be NULL); id/sandbox as for
 * local_start (via= path). Returns a context reference or NULL with err.
 */
struct mg_context *transport_start(struct mg_router *r, const struct transport_req *req,
				   const struct mg_local_opts *lo, uint32_t id,
				   const struct mg_value *sandbox, struct mg_error *err);

/*
 * container.c: what the container methods (podman, docker, buildah, lxc,
 * lxd, incus, kubectl, machinectl, setns) share. One shape of options
 * for all of them, so that one list carries them in a via= message.
 */
struct ctr_opts {
	const char *container;		/* container, pod, machine */
	const char *image;		/* docker: `run --rm -i IMAGE` instead */
	const char *user;		/* --user / -u inside it */
	const char *path;		/* the CLI (NULL: its name from PATH) */
	const char *ns;			/* kubectl: namespace; setns: kind */
	const char *sub;		/* kubectl: container in the pod */
	const char *const *args;	/* kubectl: extra arguments */
	int64_t pid;			/* setns: a process, instead of a name */
};

/* Check co for t (names, paths): 0, or -EINVAL with why. */
int container_check(const struct transport *t, const struct ctr_opts *co, char *why,
		    size_t size);
/* The public factories' common body: check, then here or via=. */
struct mg_context *container_factory(struct mg_router *r, const struct transport *t,
				     const struct ctr_opts *co, const struct mg_local_opts *lo,
				     struct mg_error *err);
/* from_value of every container row. */
struct mg_context *container_from_value(const struct transport *t, struct mg_router *r,
					const struct mg_local_opts *lo, uint32_t id,
					const struct mg_value *sandbox, const struct mg_value *v,
					struct mg_error *err);
/* setns.c: a start with these options (no first stage: see setns.c). */
struct mg_context *setns_start(struct mg_router *r, const struct ctr_opts *co,
			       const struct mg_local_opts *lo, uint32_t id,
			       const struct mg_value *sandbox, struct mg_error *err);
/* A caller's opts struct into o (zeroed): the fields an older caller's
 * struct lacks (its sz is smaller) stay zero. */
#define CTR_OPTS_COPY(o, opts)							\
	do {									\
		memset(&(o), 0, sizeof(o));					\
		if ((opts) && (opts)->sz >= sizeof(size_t)) {			\
			memcpy(&(o), (opts), (opts)->sz < sizeof(o) ? (opts)->sz : sizeof(o)); \
			(o).sz = sizeof(o);					\
		}								\
	} while (0)

/* The common tail of a CLI's command line: `/bin/sh -c SCRIPT`. */
void container_argv_sh(struct argv_buf *ab, const char *script);
/*
 * After the first stage of a start with req->pass_chan: did the agent
 * take fd (our end of the socketpair its program was handed) as its
 * channel (it said AGENT_CHAN_HELLO there before MGREADY)? Then it gets
 * a fresh socketpair's end over fd, and ours is returned (eBPF filter on
 * both ends, for context id); fd is closed. -1 when it did not (the
 * fall-back to stdio said once in the log) or the exchange failed.
 */
int container_chan_take(struct mg_router *r, uint32_t id, const char *name, int fd);
/* "podman.web": a context's default name from its method and options. */
void container_name(const struct transport *t, const struct ctr_opts *co, char *buf,
		    size_t size);

/* Uid of user in /etc/passwd (static programs have no NSS). 0 or -ENOENT. */
int passwd_uid(const char *user, uid_t *ret);

/* pty.c */
/* A new pty: master fd (O_CLOEXEC|O_NONBLOCK), an open slave fd (keep it
 * while the program may open /dev/tty, so the master never sees a hangup)
 * and the slave path; echo off. */
int pty_open(int *ret_master, int *ret_slave, char *slave, size_t size);
/* Does text (lowercase) contain one of list? */
bool pty_contains_any(const char *text, const char *const *list);
/* Is the last line of text a prompt: has one of words, ends with ':'? */
bool pty_is_prompt(const char *text, const char *const *words);
/*
 * posix_spawnp path with argv in a new session: stdin and stdout chan,
 * controlling terminal the pty slave, stderr errfd, fd 3 fd3 (-1: none;
 * podman's --preserve-fds). Prompts (written to
 * /dev/tty) and what the program prints on stderr (for ssh: also the
 * remote side's stderr) thus arrive apart, and a remote cannot fake a
 * password prompt. Returns 0 or errno.
 */
int pty_spawn(const char *path, char *const argv[], int chan, const char *slave, int errfd,
	      int fd3, bool c_locale, pid_t *ret_pid);

#endif
