/* SPDX-License-Identifier: MIT */
/*
 * transport.h — what the transports that start a context through another
 * program (ssh, sudo, su, doas) share: the image they ship, the first
 * stage (a short POSIX sh script), the pseudo-terminal where prompts
 * appear, and the conversation that runs until the agent is up.
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

/* Builder of a program's argv (strings kept inside). */
struct argv_buf {
	char *argv[128];
	int argc;
	char store[32768];
	size_t used;
	bool overflow;
};

void argv_add(struct argv_buf *ab, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What one transport is. */
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
	const char *const *prompts;	/* lowercase: a last line with one, ending in ':' */
	const char *const *pw_fail;	/* lowercase: the password was refused */
	const char *const *hostkey_fail;/* lowercase: host key not verified */
	const char *const *fatal;	/* lowercase: give up with StreamError */
};

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

/* ssh.c, sudo.c: the factories with a given id (via=), and their options
 * as the list mg._proxy_start gets (first item: the kind). */
struct mg_ssh_opts;
struct mg_context *ssh_start(struct mg_router *r, const struct mg_ssh_opts *o, uint32_t id,
			     const struct mg_value *sandbox, struct mg_error *err);
struct mg_value *ssh_opts_value(const struct mg_ssh_opts *o);
struct mg_context *ssh_from_value(struct mg_router *r, const struct mg_local_opts *lo,
				  uint32_t id, const struct mg_value *sandbox,
				  const struct mg_value *v, struct mg_error *err);
struct mg_context *become_from_value(struct mg_router *r, const struct mg_local_opts *lo,
				     uint32_t id, const struct mg_value *sandbox,
				     const struct mg_value *v, struct mg_error *err);

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
 * controlling terminal the pty slave, stderr errfd. Prompts (written to
 * /dev/tty) and what the program prints on stderr (for ssh: also the
 * remote side's stderr) thus arrive apart, and a remote cannot fake a
 * password prompt. Returns 0 or errno.
 */
int pty_spawn(const char *path, char *const argv[], int chan, const char *slave, int errfd,
	      bool c_locale, pid_t *ret_pid);

#endif
