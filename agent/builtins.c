// SPDX-License-Identifier: MIT
/*
 * agent/builtins.c — the functions the library exports under "mg." names,
 * so that a stock agent (or any program linked with libmitogen) is useful
 * with no user code at all.
 *
 * Owns: the built-in exported functions below and their argument checks.
 * Must not touch: the call dispatch (agent/agent.c), the router, the
 * broker or any fd it did not open itself. Every function runs on the
 * agent's main thread, one call at a time, under the parent's authority.
 *
 * Built-in functions
 * ==================
 *
 * Arguments are positional (the call's argument list); "optional" ones may
 * be left off the end. A failure is a CallError whose errnum is the errno
 * that caused it and whose message names the program or path involved.
 * Bad arguments (wrong count or type) fail with EINVAL.
 *
 * mg.run(argv, env = nil, cwd = nil, stdin = nil) -> map
 *	Run a program and wait for it. argv is a non-empty list of str; argv[0]
 *	is looked up in the agent's PATH (posix_spawnp) unless it contains a
 *	'/'. env is nil (inherit the agent's environment) or a map str -> str
 *	that REPLACES the environment. cwd is nil (the agent's) or a directory.
 *	stdin is nil (the program reads /dev/null), or str/bytes/secret fed to
 *	its standard input. Standard output and error are captured, at most
 *	256 MiB each, and together no more than fits in the reply (the
 *	router's maximum message size, 128 MiB by default): beyond that the
 *	program is killed and the call fails with EFBIG. Returns
 *	    {"status": int, "stdout": bytes, "stderr": bytes}
 *	where status is the exit code, or -N when the program was killed by
 *	signal N. A program that cannot be started fails with the exec errno
 *	(ENOENT, EACCES, ...) and a message naming it. The program gets every
 *	signal at its default disposition, an empty signal mask and only fds
 *	0, 1 and 2. It leads a session (and process group) of its own, in
 *	the agent's cgroup, below the agent, which is a child subreaper: what
 *	it leaves running is still the agent's (agent/tree.h). When the
 *	context is told to go (SHUTDOWN, its parent lost, SIGTERM), the
 *	program and everything it started get SIGTERM, and SIGKILL
 *	TREE_GRACE_S (2 s) later; mg.run then returns what it has, without
 *	waiting for pipes a leftover still holds.
 *
 * mg.read_file(path) -> bytes
 *	The whole content of the file. Fails with EFBIG when it is larger
 *	than a reply can carry (the router's maximum message size).
 *
 * mg.write_file(path, data, mode = 0644) -> nil
 *	Replace path with data (bytes or str), atomically: the data goes to a
 *	temporary file in the same directory, which is fsync'ed, given exactly
 *	`mode` (the umask does not apply) and renamed over path; the directory
 *	is then fsync'ed. Readers see the old content or the new, never a mix.
 *	The temporary file has no name until just before the rename
 *	(O_TMPFILE, where the filesystem has it), so an agent that goes away
 *	mid-write leaves nothing behind.
 *	A symlink at path is replaced, not followed; the new file is owned by
 *	the agent's user.
 *
 * mg.stat(path) -> map
 *	lstat(2) of path: {"size": int, "mode": int (permission bits, st_mode
 *	& 07777), "uid": int, "gid": int, "mtime": float (seconds since the
 *	epoch), "type": "file" | "dir" | "symlink" | "other"}.
 *
 * mg.unlink(path) -> nil
 *	Remove a file (not a directory).
 *
 * mg.getpid() -> int		the agent's process id.
 * mg.getuid() -> int		the agent's real user id.
 * mg.uname() -> map		{"sysname", "nodename", "release", "version",
 *				 "machine"}: uname(2), all str.
 * mg.environ() -> map		the agent's environment, str -> str (entries
 *				without '=' are skipped).
 * mg.noop() -> nil		does nothing (used by benchmarks).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <mitogen/mitogen.h>

#include "agent/agent.h"
#include "agent/tree.h"
#include "core/broker.h"
#include "sandbox/sandbox.h"

extern char **environ;

/* Largest stdout (and, separately, stderr) mg.run keeps. */
#define BUILTIN_RUN_OUTPUT_MAX ((size_t)256 << 20)
/* Room left in a reply message for everything but the data itself. */
#define BUILTIN_REPLY_OVERHEAD 4096
/* Bytes moved per read/write in the mg.run loop. */
#define BUILTIN_RUN_CHUNK ((size_t)64 << 10)

/*
 * Largest payload a result may carry: the router's maximum message size
 * less room for the rest of the reply. Failing here with a clear EFBIG
 * beats a ChannelError "message too large" after all the work is done.
 */
static size_t builtin_reply_max(struct mg_call *call)
{
	size_t max = mg_router_max_message_size(mg_call_router(call));

	if (max == 0)
		max = MG_DEFAULT_MAX_MESSAGE_SIZE;
	if (max <= 2 * BUILTIN_REPLY_OVERHEAD)
		return max / 2;
	return max - BUILTIN_REPLY_OVERHEAD;
}

/* Fail the call with EINVAL and the message mg_value_unpack left in err. */
static int builtin_fail_args(struct mg_call *call, const struct mg_error *err)
{
	return mg_call_fail(call, EINVAL, "%s",
			    err->message[0] ? err->message : "bad arguments");
}

/* A str value without an embedded NUL, usable as a C string. */
static bool builtin_is_cstr(const struct mg_value *v)
{
	return v && (v->type == MG_STR || v->type == MG_SECRET) &&
	       strlen(v->str) == v->len;
}

/* An int result, or ENOMEM. */
static int builtin_ret_int(struct mg_call *call, int64_t i,
			   struct mg_value **ret_result)
{
	struct mg_value *v = mg_int(i);

	if (!v)
		return mg_call_fail(call, ENOMEM, "out of memory");
	*ret_result = v;
	return 0;
}

/* A bytes value owning p (may be NULL when n == 0). */
static struct mg_value *builtin_bytes_take(void *p, size_t n)
{
	if (n == 0) {
		free(p);
		return mg_bytes("", 0);
	}
	return mg_bytes_take(p, n);
}

/*
 * A file call failed with err on path. EACCES where the file modes allow
 * the access (checked on `check`: the path, or the directory a file is
 * made in) was Landlock's doing: say so, naming the path.
 */
static int builtin_file_fail(struct mg_call *call, int err, const char *step,
			     const char *path, const char *check, int mode)
{
	if (err == EACCES && sandbox_landlock_denied(check ? check : path, mode))
		return mg_call_fail(call, err, "denied by landlock: %s (%s: %s)",
				    path, step, strerror(err));
	return mg_call_fail(call, err, "%s \"%s\": %s", step, path,
			    strerror(err));
}

/* --- mg.run ------------------------------------------------------------ */

struct builtin_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

/*
 * Read what fd has into b. Returns bytes read (> 0), 0 at EOF, -EAGAIN when
 * nothing is ready, -EFBIG when b already holds BUILTIN_RUN_OUTPUT_MAX and
 * more arrived, or -errno.
 */
static ssize_t builtin_buf_fill(struct builtin_buf *b, int fd)
{
	ssize_t n;

	if (b->cap - b->len < BUILTIN_RUN_CHUNK &&
	    b->cap < BUILTIN_RUN_OUTPUT_MAX) {
		size_t ncap = b->cap ? b->cap * 2 : BUILTIN_RUN_CHUNK;
		uint8_t *p;

		if (ncap > BUILTIN_RUN_OUTPUT_MAX)
			ncap = BUILTIN_RUN_OUTPUT_MAX;
		p = realloc(b->p, ncap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = ncap;
	}
	if (b->len == b->cap) {
		/* Full: one more byte means the output is too large. */
		uint8_t c;

		n = read(fd, &c, 1);
		if (n > 0)
			return -EFBIG;
	} else {
		n = read(fd, b->p + b->len, b->cap - b->len);
		if (n > 0)
			b->len += n;
	}
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

/*
 * pipe2(O_CLOEXEC) whose two fds are both above 2, so that the dup2 file
 * actions onto 0, 1 and 2 never meet one of our own pipe ends (an agent
 * may run with some standard fds closed).
 */
static int builtin_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		if (fds[i] > 2)
			continue;
		int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

		if (fd < 0) {
			int e = errno;

			close(fds[0]);
			close(fds[1]);
			return -e;
		}
		close(fds[i]);
		fds[i] = fd;
	}
	return 0;
}

static void builtin_close(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void builtin_free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/*
 * Turn an env map into a NULL-terminated "k=v" array (caller frees with
 * builtin_free_strv). Returns 0, -EINVAL with a reason in *why, or -ENOMEM.
 */
static int builtin_env_build(const struct mg_value *env, char ***ret_envp,
			     const char **why)
{
	char **envp = calloc((size_t)env->len + 1, sizeof(*envp));

	if (!envp)
		return -ENOMEM;
	for (uint32_t i = 0; i < env->len; i++) {
		const struct mg_value *k = &env->items[2 * i];
		const struct mg_value *v = &env->items[2 * i + 1];

		if (!builtin_is_cstr(k) || k->len == 0 || strchr(k->str, '=')) {
			*why = "env: keys must be non-empty strings without '=' or NUL";
			builtin_free_strv(envp);
			return -EINVAL;
		}
		if (!builtin_is_cstr(v)) {
			*why = "env: values must be strings without NUL";
			builtin_free_strv(envp);
			return -EINVAL;
		}
		if (asprintf(&envp[i], "%s=%s", k->str, v->str) < 0) {
			envp[i] = NULL;
			builtin_free_strv(envp);
			return -ENOMEM;
		}
	}
	*ret_envp = envp;
	return 0;
}

struct builtin_run {
	pid_t pid;
	int in_fd; /* write end of the program's stdin, or -1 */
	int out_fd; /* read end of its stdout */
	int err_fd; /* read end of its stderr */
	const uint8_t *in; /* stdin data still to write */
	size_t in_len;
	struct builtin_buf out;
	struct builtin_buf err;
	/* stdout + stderr may not grow past this (the reply must fit) */
	size_t reply_max;
};

/*
 * Feed stdin and drain stdout and stderr until both reach EOF. Returns 0,
 * or -errno with *which naming the stream that failed: -EFBIG when one
 * stream passed BUILTIN_RUN_OUTPUT_MAX, -EMSGSIZE when both together
 * passed r->reply_max.
 *
 * SIGPIPE: a program that exits (or closes its stdin) before reading all
 * its input makes our write fail with EPIPE, which also raises SIGPIPE in
 * this thread. We block it here and consume one we caused, so the agent's
 * own disposition of SIGPIPE does not matter; feeding simply stops, as
 * Python's communicate() does.
 */
/* The program mg.run is waiting for, if any (see builtins_run_busy). */
static pid_t run_pid;

bool builtins_run_busy(void)
{
	return __atomic_load_n(&run_pid, __ATOMIC_ACQUIRE) > 0;
}

/* Whatever is in fd now, without waiting (the program has exited). */
static int builtin_run_drain(struct builtin_buf *b, int *fd)
{
	ssize_t n;

	while (*fd >= 0 && (n = builtin_buf_fill(b, *fd)) != -EAGAIN) {
		if (n == 0)
			builtin_close(fd);
		else if (n < 0)
			return (int)n;
	}
	return 0;
}

/*
 * The tree is being ended (tree_term_begin sent the program SIGTERM): from
 * now on wait for the program itself (a pidfd), not for EOF, which a
 * leftover holding a pipe would put off; SIGKILL at the tree's deadline.
 * Its session (process group) is signalled by number too: an agent that
 * may not read /proc (a Landlock sandbox) cannot walk its tree.
 */
struct builtin_run_end {
	bool ending;
	bool killed;
	int pidfd;
};


/*
 * One write of the program's standard input (at most BUILTIN_RUN_CHUNK),
 * for mg.run and mg.run_stream: stdin is closed once all is written, or
 * when the program closed its end (*caused_sigpipe: our SIGPIPE, not its
 * own). Returns 0, or -errno when the write failed otherwise.
 */
static int run_feed_stdin(struct builtin_run *r, bool *caused_sigpipe)
{
	size_t n = r->in_len > BUILTIN_RUN_CHUNK ? BUILTIN_RUN_CHUNK : r->in_len;
	ssize_t w = write(r->in_fd, r->in, n);

	if (w > 0) {
		r->in += w;
		r->in_len -= (size_t)w;
		if (r->in_len == 0)
			builtin_close(&r->in_fd);
	} else if (w < 0 && errno == EPIPE) {
		*caused_sigpipe = true;
		builtin_close(&r->in_fd);
	} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
		return -errno;
	}
	return 0;
}

/* poll's timeout for where the end is; SIGKILL once it is due. */
static int builtin_run_end_timeout(struct builtin_run_end *e, pid_t pid)
{
	double left;

	if (!e->ending && tree_signalled()) {
		e->ending = true;
		e->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		kill(-pid, SIGTERM);
	}
	if (!e->ending || e->killed)
		return -1;
	left = tree_deadline() - mono_now();
	if (left > 0)
		return (int)(left * 1000) + 1;
	kill(-pid, SIGKILL);
	tree_kill_now();
	e->killed = true;
	return -1;
}

static int builtin_run_loop(struct builtin_run *r, const char **which)
{
	sigset_t pipe_set, old_set, pending;
	bool sigpipe_was_pending, caused_sigpipe = false;
	struct builtin_run_end end = { .pidfd = -1 };
	int rc = 0;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
	sigpending(&pending);
	sigpipe_was_pending = sigismember(&pending, SIGPIPE);

	if (r->in_fd >= 0 && r->in_len == 0)
		builtin_close(&r->in_fd);

	while (r->in_fd >= 0 || r->out_fd >= 0 || r->err_fd >= 0) {
		int timeout = builtin_run_end_timeout(&end, r->pid);
		struct pollfd pfd[5] = {
			{ .fd = r->in_fd, .events = POLLOUT },
			{ .fd = r->out_fd, .events = POLLIN },
			{ .fd = r->err_fd, .events = POLLIN },
			/* readable once the tree is being ended */
			{ .fd = end.ending ? -1 : tree_wake_fd(), .events = POLLIN },
			{ .fd = end.pidfd, .events = POLLIN },
		};

		if (poll(pfd, 5, timeout) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			*which = "poll";
			break;
		}
		if (pfd[4].revents) {
			/* Ended: what it wrote is in the pipes now. */
			builtin_close(&r->in_fd);
			rc = builtin_run_drain(&r->out, &r->out_fd);
			*which = "stdout";
			if (rc == 0) {
				rc = builtin_run_drain(&r->err, &r->err_fd);
				*which = "stderr";
			}
			break;
		}

		if (pfd[0].revents && (rc = run_feed_stdin(r, &caused_sigpipe)) < 0) {
			*which = "stdin";
			break;
		}

		for (int i = 1; i < 3; i++) {
			int *fd = i == 1 ? &r->out_fd : &r->err_fd;
			struct builtin_buf *b = i == 1 ? &r->out : &r->err;
			ssize_t n;

			if (!pfd[i].revents)
				continue;
			n = builtin_buf_fill(b, *fd);
			if (n == 0) {
				builtin_close(fd);
			} else if (n < 0 && n != -EAGAIN && n != -EINTR) {
				rc = n;
				*which = i == 1 ? "stdout" : "stderr";
				goto out;
			}
			if (r->out.len + r->err.len > r->reply_max) {
				rc = -EMSGSIZE;
				goto out;
			}
		}
	}
out:
	if (end.pidfd >= 0)
		close(end.pidfd);
	if (caused_sigpipe && !sigpipe_was_pending) {
		static const struct timespec zero;

		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 &&
		       errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	return rc;
}

static int builtin_waitpid(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/*
 * Start argv with stdio on fresh pipes (stdin on /dev/null when there is
 * no input). Returns 0 or -errno (the exec errno when the program cannot
 * be started: posix_spawnp reports it).
 */
static int builtin_run_spawn(struct builtin_run *r, char **argv, char **envp,
			     const char *cwd, bool has_stdin)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	sigset_t none, all;
	int rc;

	/* The agent's own cgroup, once: the program is born in it. */
	tree_cgroup_own();
	rc = builtin_pipe(out);
	if (rc == 0)
		rc = builtin_pipe(err);
	if (rc == 0 && has_stdin)
		rc = builtin_pipe(in);
	if (rc < 0)
		goto close_pipes;

	rc = -posix_spawn_file_actions_init(&fa);
	if (rc < 0)
		goto close_pipes;
	rc = -posix_spawnattr_init(&attr);
	if (rc < 0) {
		posix_spawn_file_actions_destroy(&fa);
		goto close_pipes;
	}

	/* Default dispositions and an empty mask: the agent may ignore or
	 * block signals (SIGPIPE...) that the program expects to get. */
	sigemptyset(&none);
	sigfillset(&all);
	/* A session of its own: its whole tree is found and ended as one
	 * (agent/tree.h), and no terminal's signals reach it. */
	rc = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
						      POSIX_SPAWN_SETSIGDEF |
						      POSIX_SPAWN_SETSID);
	if (rc == 0)
		rc = -posix_spawnattr_setsigmask(&attr, &none);
	if (rc == 0)
		rc = -posix_spawnattr_setsigdefault(&attr, &all);

	if (rc == 0 && has_stdin)
		rc = -posix_spawn_file_actions_adddup2(&fa, in[0],
						       STDIN_FILENO);
	else if (rc == 0)
		rc = -posix_spawn_file_actions_addopen(
			&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if (rc == 0)
		rc = -posix_spawn_file_actions_adddup2(&fa, out[1],
						       STDOUT_FILENO);
	if (rc == 0)
		rc = -posix_spawn_file_actions_adddup2(&fa, err[1],
						       STDERR_FILENO);
#if defined(__GLIBC__) && \
	(__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	/* Every fd of ours is close-on-exec already; this makes sure of it
	 * for fds a user function may have leaked. */
	if (rc == 0)
		rc = -posix_spawn_file_actions_addclosefrom_np(
			&fa, STDERR_FILENO + 1);
#endif
	if (rc == 0 && cwd)
		rc = -posix_spawn_file_actions_addchdir_np(&fa, cwd);
	if (rc == 0)
		rc = -posix_spawnp(&r->pid, argv[0], &fa, &attr, argv,
				   envp ? envp : environ);

	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (rc < 0)
		goto close_pipes;

	close(out[1]);
	close(err[1]);
	builtin_close(&in[0]);
	r->out_fd = out[0];
	r->err_fd = err[0];
	r->in_fd = in[1];
	fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(r->err_fd, F_SETFL, O_NONBLOCK);
	if (r->in_fd >= 0)
		fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
	return 0;

close_pipes:
	for (int i = 0; i < 2; i++) {
		builtin_close(&in[i]);
		builtin_close(&out[i]);
		builtin_close(&err[i]);
	}
	return rc;
}

static int builtin_run(struct mg_call *call, const struct mg_value *args,
		       struct mg_value **ret_result)
{
	struct mg_error uerr = MG_ERROR_INIT;
	const struct mg_value *argv_v = NULL, *env_v = NULL, *stdin_v = NULL;
	const char *cwd = NULL, *why = NULL, *which = NULL;
	struct builtin_run r = {
		.pid = -1,
		.in_fd = -1,
		.out_fd = -1,
		.err_fd = -1,
		.reply_max = builtin_reply_max(call),
	};
	struct mg_value *result = NULL;
	char **argv = NULL, **envp = NULL;
	int rc, status = 0;

	if (mg_value_unpack(args, &uerr, "v|vsv", &argv_v, &env_v, &cwd,
			    &stdin_v) < 0)
		return builtin_fail_args(call, &uerr);

	if (argv_v->type != MG_LIST || argv_v->len == 0)
		return mg_call_fail(call, EINVAL,
				    "argv must be a non-empty list of strings");
	for (uint32_t i = 0; i < argv_v->len; i++) {
		if (!builtin_is_cstr(&argv_v->items[i]))
			return mg_call_fail(
				call, EINVAL,
				"argv[%u] must be a string without NUL", i);
	}
	if (env_v && env_v->type != MG_NIL && env_v->type != MG_MAP)
		return mg_call_fail(call, EINVAL,
				    "env must be a map or nil, not %s",
				    mg_type_name(env_v->type));
	if (stdin_v && stdin_v->type != MG_NIL && stdin_v->type != MG_STR &&
	    stdin_v->type != MG_BYTES && stdin_v->type != MG_SECRET)
		return mg_call_fail(call, EINVAL,
				    "stdin must be bytes, str or nil, not %s",
				    mg_type_name(stdin_v->type));

	argv = calloc((size_t)argv_v->len + 1, sizeof(*argv));
	if (!argv)
		return mg_call_fail(call, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < argv_v->len; i++)
		argv[i] = (char *)argv_v->items[i].str;

	if (env_v && env_v->type == MG_MAP) {
		rc = builtin_env_build(env_v, &envp, &why);
		if (rc < 0) {
			rc = mg_call_fail(call, -rc, "%s",
					  why ? why : "out of memory");
			goto out;
		}
	}

	if (stdin_v && stdin_v->type != MG_NIL) {
		/* str, secret and bytes share the pointer; len counts bytes */
		r.in = stdin_v->bytes;
		r.in_len = stdin_v->len;
	}

	rc = builtin_run_spawn(&r, argv, envp, cwd,
			       stdin_v && stdin_v->type != MG_NIL);
	if (rc < 0) {
		if (rc == -EACCES && !cwd && strchr(argv[0], '/'))
			rc = builtin_file_fail(call, EACCES, "cannot run",
					       argv[0], NULL, X_OK);
		else if (cwd)
			rc = mg_call_fail(call, -rc,
					  "cannot run \"%s\" in \"%s\": %s",
					  argv[0], cwd, strerror(-rc));
		else
			rc = mg_call_fail(call, -rc, "cannot run \"%s\": %s",
					  argv[0], strerror(-rc));
		goto out;
	}

	__atomic_store_n(&run_pid, r.pid, __ATOMIC_RELEASE);
	rc = builtin_run_loop(&r, &which);
	if (rc < 0)
		kill(-r.pid, SIGKILL);	/* its process group */
	builtin_close(&r.in_fd);
	builtin_close(&r.out_fd);
	builtin_close(&r.err_fd);
	if (builtin_waitpid(r.pid, &status) < 0 && rc == 0)
		rc = -errno;
	__atomic_store_n(&run_pid, 0, __ATOMIC_RELEASE);
	/* What its double-forked daemons left when they exited. */
	tree_reap_orphans();

	if (rc == -EFBIG) {
		rc = mg_call_fail(
			call, EFBIG,
			"\"%s\" wrote more than %zu MiB on %s; it was killed",
			argv[0], BUILTIN_RUN_OUTPUT_MAX >> 20, which);
		goto out;
	} else if (rc == -EMSGSIZE) {
		rc = mg_call_fail(
			call, EFBIG,
			"\"%s\" wrote more than the %zu bytes a reply can carry; it was killed",
			argv[0], r.reply_max);
		goto out;
	} else if (rc < 0) {
		rc = mg_call_fail(call, -rc, "running \"%s\": %s: %s", argv[0],
				  which ? which : "waitpid", strerror(-rc));
		goto out;
	}

	if (WIFSIGNALED(status))
		status = -WTERMSIG(status);
	else
		status = WEXITSTATUS(status);
	result = mg_map();
	rc = mg_map_set(result, "status", mg_int(status));
	if (rc == 0)
		rc = mg_map_set(result, "stdout",
				builtin_bytes_take(r.out.p, r.out.len));
	else
		free(r.out.p);
	r.out.p = NULL;
	if (rc == 0)
		rc = mg_map_set(result, "stderr",
				builtin_bytes_take(r.err.p, r.err.len));
	else
		free(r.err.p);
	r.err.p = NULL;
	if (rc < 0) {
		mg_value_free(result);
		rc = mg_call_fail(call, ENOMEM, "out of memory");
		goto out;
	}
	*ret_result = result;
	rc = 0;
out:
	free(r.out.p);
	free(r.err.p);
	builtin_free_strv(envp);
	free(argv);
	return rc;
}
MG_EXPORT_AS("mg.run", builtin_run);

/* --- mg.run_stream ------------------------------------------------------ */
/*
 * mg.run_stream(channel, argv, env = nil, cwd = nil, stdin = nil) -> map
 *	mg.run for output that must not wait for the end, nor be held whole:
 *	argv, env, cwd and stdin as for mg.run; the program's stdout and
 *	stderr go to the caller as they come, over `channel` (the value of
 *	the caller's mg_channel_new end, MG_SENDER), and only counts come
 *	back in the result:
 *	    {"status": int, "stdout_bytes": int, "stderr_bytes": int}
 *	Messages on the channel: first this end's own channel value (for
 *	mg_channel_set_peer), then {"fd": 1|2, "data": bytes} chunks of at
 *	most RUN_STREAM_CHUNK bytes in the order they were read, all sent
 *	before the reply. The caller acknowledges with {"ack": N}, N the
 *	bytes it has consumed so far; while RUN_STREAM_WINDOW bytes are
 *	unacknowledged the pipes are not read, so a slow reader slows the
 *	program (it blocks writing) instead of filling memory on either side.
 *	Acks are taken only from the context that made the call. A program
 *	that cannot be started fails as for mg.run; a channel that goes dead
 *	kills the program and fails with EPIPE.
 *
 * Kept apart from mg.run (whose contract stays "everything in the
 * reply"); shares its spawn, environment and the running pid that an
 * agent's shutdown kills.
 */

/* Bytes read from a pipe per chunk message (one 64 KiB record with its header). */
#define RUN_STREAM_CHUNK ((size_t)32 << 10)
/* Bytes sent and not yet acknowledged before the pipes are left unread. */
#define RUN_STREAM_WINDOW ((uint64_t)256 << 10)

struct run_stream {
	struct builtin_run r;
	struct mg_channel *ch;
	uint32_t caller;	/* src id of the call: the only one that acks */
	uint64_t sent[2];	/* stdout, stderr bytes sent */
	uint64_t acked;
};

/* Take one ack message (msg freed); 0, or -EPIPE for a dead channel. */
static int run_stream_ack(struct run_stream *s, struct mg_message *msg)
{
	struct mg_value *v = NULL;
	const struct mg_value *n;

	if (mg_message_is_dead(msg)) {
		mg_message_free(msg);
		return -EPIPE;
	}
	if (mg_message_src_id(msg) == s->caller &&
	    mg_message_value(msg, false, &v, NULL) == 0 && v &&
	    (n = mg_map_get(v, "ack")) && n->type == MG_INT && n->i > 0 &&
	    (uint64_t)n->i > s->acked && (uint64_t)n->i <= s->sent[0] + s->sent[1])
		s->acked = (uint64_t)n->i;
	mg_value_free(v);
	mg_message_free(msg);
	return 0;
}

/* Read a chunk of fd (1 or 2) and send it. > 0 sent, 0 EOF, -EAGAIN, -errno. */
static ssize_t run_stream_relay(struct run_stream *s, int which, int fd)
{
	uint8_t *buf = malloc(RUN_STREAM_CHUNK);
	struct mg_value *m;
	ssize_t n;
	int rc;

	if (!buf)
		return -ENOMEM;
	n = read(fd, buf, RUN_STREAM_CHUNK);
	if (n <= 0) {
		free(buf);
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		return 0;
	}
	m = mg_map();
	rc = mg_map_set(m, "fd", mg_int(which));
	if (rc == 0)
		rc = mg_map_set(m, "data", mg_bytes_take(buf, (size_t)n));
	else
		free(buf);
	if (rc == 0)
		rc = mg_channel_send(s->ch, m);
	else
		mg_value_free(m);
	if (rc < 0)
		return rc;
	s->sent[which - 1] += (uint64_t)n;
	return n;
}

/* Feed stdin, relay stdout and stderr until both reach EOF. SIGPIPE as in
 * builtin_run_loop. Returns 0 or -errno with *which naming the stream. */
static int run_stream_loop(struct run_stream *s, const char **which)
{
	struct builtin_run *r = &s->r;
	sigset_t pipe_set, old_set, pending;
	bool sigpipe_was_pending, caused_sigpipe = false;
	int rc = 0;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
	sigpending(&pending);
	sigpipe_was_pending = sigismember(&pending, SIGPIPE);
	if (r->in_fd >= 0 && r->in_len == 0)
		builtin_close(&r->in_fd);

	while (r->in_fd >= 0 || r->out_fd >= 0 || r->err_fd >= 0) {
		bool full = s->sent[0] + s->sent[1] - s->acked >= RUN_STREAM_WINDOW;
		struct pollfd pfd[3] = {
			{ .fd = r->in_fd, .events = POLLOUT },
			{ .fd = full ? -1 : r->out_fd, .events = POLLIN },
			{ .fd = full ? -1 : r->err_fd, .events = POLLIN },
		};
		struct mg_message *msg = NULL;

		/* acks already here cost nothing to take */
		while (!mg_receiver_empty(mg_channel_receiver(s->ch)) &&
		       mg_channel_get(s->ch, 0, &msg, NULL) == 0) {
			if (run_stream_ack(s, msg) < 0) {
				rc = -EPIPE;
				*which = "channel";
				goto out;
			}
		}
		if (full && s->sent[0] + s->sent[1] - s->acked >= RUN_STREAM_WINDOW &&
		    r->in_fd < 0) {
			/* nothing to do but wait for the reader */
			rc = mg_channel_get(s->ch, MG_FOREVER, &msg, NULL);
			if (rc == 0)
				rc = run_stream_ack(s, msg);
			if (rc < 0) {
				rc = -EPIPE;
				*which = "channel";
				goto out;
			}
			continue;
		}
		if (poll(pfd, 3, full ? 50 : -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			*which = "poll";
			break;
		}
		if (pfd[0].revents && (rc = run_feed_stdin(r, &caused_sigpipe)) < 0) {
			*which = "stdin";
			break;
		}
		for (int i = 1; i < 3; i++) {
			int *fd = i == 1 ? &r->out_fd : &r->err_fd;
			ssize_t n;

			if (!pfd[i].revents)
				continue;
			n = run_stream_relay(s, i, *fd);
			if (n == 0) {
				builtin_close(fd);
			} else if (n < 0 && n != -EAGAIN && n != -EINTR) {
				rc = (int)n;
				*which = i == 1 ? "stdout" : "stderr";
				goto out;
			}
		}
	}
out:
	if (caused_sigpipe && !sigpipe_was_pending) {
		static const struct timespec zero;

		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	return rc;
}

static int builtin_run_stream(struct mg_call *call, const struct mg_value *args,
			      struct mg_value **ret_result)
{
	struct mg_error uerr = MG_ERROR_INIT;
	const struct mg_value *ch_v = NULL, *argv_v = NULL, *env_v = NULL, *stdin_v = NULL;
	const char *cwd = NULL, *why = NULL, *which = NULL;
	struct run_stream s = {
		.r = { .pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1 },
		.caller = mg_call_src_id(call),
	};
	struct mg_value *result = NULL;
	char **argv = NULL, **envp = NULL;
	int rc, status = 0;

	if (mg_value_unpack(args, &uerr, "vv|vsv", &ch_v, &argv_v, &env_v, &cwd,
			    &stdin_v) < 0)
		return builtin_fail_args(call, &uerr);
	if (ch_v->type != MG_SENDER)
		return mg_call_fail(call, EINVAL, "channel must be a sender, not %s",
				    mg_type_name(ch_v->type));
	if (argv_v->type != MG_LIST || argv_v->len == 0)
		return mg_call_fail(call, EINVAL,
				    "argv must be a non-empty list of strings");
	for (uint32_t i = 0; i < argv_v->len; i++)
		if (!builtin_is_cstr(&argv_v->items[i]))
			return mg_call_fail(call, EINVAL,
					    "argv[%u] must be a string without NUL", i);
	if (env_v && env_v->type != MG_NIL && env_v->type != MG_MAP)
		return mg_call_fail(call, EINVAL, "env must be a map or nil, not %s",
				    mg_type_name(env_v->type));
	if (stdin_v && stdin_v->type != MG_NIL && stdin_v->type != MG_STR &&
	    stdin_v->type != MG_BYTES && stdin_v->type != MG_SECRET)
		return mg_call_fail(call, EINVAL, "stdin must be bytes, str or nil, not %s",
				    mg_type_name(stdin_v->type));

	s.ch = mg_channel_from_value(mg_call_router(call), ch_v);
	argv = calloc((size_t)argv_v->len + 1, sizeof(*argv));
	if (!s.ch || !argv) {
		rc = mg_call_fail(call, ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < argv_v->len; i++)
		argv[i] = (char *)argv_v->items[i].str;
	if (env_v && env_v->type == MG_MAP) {
		rc = builtin_env_build(env_v, &envp, &why);
		if (rc < 0) {
			rc = mg_call_fail(call, -rc, "%s", why ? why : "out of memory");
			goto out;
		}
	}
	if (stdin_v && stdin_v->type != MG_NIL) {
		s.r.in = stdin_v->bytes;
		s.r.in_len = stdin_v->len;
	}
	/* the caller learns where to send acks before any output */
	rc = mg_channel_send(s.ch, mg_channel_to_value(s.ch));
	if (rc < 0) {
		rc = mg_call_fail(call, -rc, "cannot answer on the channel: %s",
				  strerror(-rc));
		goto out;
	}
	rc = builtin_run_spawn(&s.r, argv, envp, cwd, stdin_v && stdin_v->type != MG_NIL);
	if (rc < 0) {
		if (cwd)
			rc = mg_call_fail(call, -rc, "cannot run \"%s\" in \"%s\": %s",
					  argv[0], cwd, strerror(-rc));
		else
			rc = mg_call_fail(call, -rc, "cannot run \"%s\": %s", argv[0],
					  strerror(-rc));
		goto out;
	}
	__atomic_store_n(&run_pid, s.r.pid, __ATOMIC_RELEASE);
	rc = run_stream_loop(&s, &which);
	if (rc < 0)
		kill(s.r.pid, SIGKILL);
	builtin_close(&s.r.in_fd);
	builtin_close(&s.r.out_fd);
	builtin_close(&s.r.err_fd);
	if (builtin_waitpid(s.r.pid, &status) < 0 && rc == 0)
		rc = -errno;
	__atomic_store_n(&run_pid, 0, __ATOMIC_RELEASE);
	if (rc < 0) {
		rc = mg_call_fail(call, -rc, "running \"%s\": %s: %s", argv[0],
				  which ? which : "waitpid", strerror(-rc));
		goto out;
	}
	status = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
	result = mg_map();
	rc = mg_map_set(result, "status", mg_int(status));
	if (rc == 0)
		rc = mg_map_set(result, "stdout_bytes", mg_int((int64_t)s.sent[0]));
	if (rc == 0)
		rc = mg_map_set(result, "stderr_bytes", mg_int((int64_t)s.sent[1]));
	if (rc < 0) {
		mg_value_free(result);
		rc = mg_call_fail(call, ENOMEM, "out of memory");
		goto out;
	}
	*ret_result = result;
	rc = 0;
out:
	mg_channel_free(s.ch);
	builtin_free_strv(envp);
	free(argv);
	return rc;
}
MG_EXPORT_AS("mg.run_stream", builtin_run_stream);

/* --- files ------------------------------------------------------------- */

/* Unpack a single path argument (a string). */
static int builtin_path_arg(struct mg_call *call, const struct mg_value *args,
			    const char **ret_path)
{
	struct mg_error uerr = MG_ERROR_INIT;
	const char *path = NULL;

	if (mg_value_unpack(args, &uerr, "s", &path) < 0)
		return builtin_fail_args(call, &uerr);
	if (!path || !*path)
		return mg_call_fail(call, EINVAL,
				    "path must be a non-empty string");
	/* An audited context's record names the path (docs/audit.md); a
	 * context that is not audited makes no copy of it. */
	if (agent_call_audited(call))
		mg_call_audit_detail(call, "path", mg_str(path));
	*ret_path = path;
	return 0;
}

static int builtin_read_file(struct mg_call *call, const struct mg_value *args,
			     struct mg_value **ret_result)
{
	size_t max = builtin_reply_max(call);
	struct builtin_buf b = { 0 };
	struct mg_value *v;
	const char *path;
	struct stat st;
	int fd, rc;

	rc = builtin_path_arg(call, args, &path);
	if (rc < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return builtin_file_fail(call, errno, "open", path, NULL, R_OK);
	if (fstat(fd, &st) < 0) {
		rc = errno;
		close(fd);
		return mg_call_fail(call, rc, "stat \"%s\": %s", path,
				    strerror(rc));
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return mg_call_fail(call, EISDIR, "read \"%s\": %s", path,
				    strerror(EISDIR));
	}
	/* /proc files report size 0: read until EOF, whatever st_size says */
	for (;;) {
		ssize_t n;

		if (b.len == b.cap) {
			size_t ncap = b.cap ? b.cap * 2 : 65536;
			uint8_t *p;

			/* a regular file: its size + 1, to see EOF at once */
			if (S_ISREG(st.st_mode) && b.cap == 0 &&
			    st.st_size > 0 && (uint64_t)st.st_size < max)
				ncap = (size_t)st.st_size + 1;
			if (b.cap >= max + 1) {
				rc = EFBIG;
				break;
			}
			if (ncap > max + 1)
				ncap = max + 1;
			p = realloc(b.p, ncap);
			if (!p) {
				rc = ENOMEM;
				break;
			}
			b.p = p;
			b.cap = ncap;
		}
		n = read(fd, b.p + b.len, b.cap - b.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errno;
			break;
		}
		if (n == 0) {
			rc = 0;
			break;
		}
		b.len += n;
		if (b.len > max) {
			rc = EFBIG;
			break;
		}
	}
	close(fd);
	if (rc == EFBIG) {
		free(b.p);
		return mg_call_fail(
			call, EFBIG,
			"read \"%s\": larger than the %zu bytes a reply can carry",
			path, max);
	} else if (rc) {
		free(b.p);
		return mg_call_fail(call, rc, "read \"%s\": %s", path,
				    strerror(rc));
	}
	v = builtin_bytes_take(b.p, b.len);
	if (!v)
		return mg_call_fail(call, ENOMEM, "out of memory");
	*ret_result = v;
	return 0;
}
MG_EXPORT_AS("mg.read_file", builtin_read_file);

static int builtin_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= w;
	}
	return 0;
}

/*
 * The temporary file of write_file, in dir: nameless (O_TMPFILE) where the
 * filesystem allows, *ret_named false; else made with mkostemp at the
 * template tmp, *ret_named true. fd or -errno.
 */
static int builtin_tmp_open(const char *dir, char *tmp, bool *ret_named)
{
	int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);

	*ret_named = false;
	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR)
		return -errno;
	*ret_named = true;
	fd = mkostemp(tmp, O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Give the nameless file fd the name tmp (its XXXXXX filled in). 0/-errno. */
static int builtin_tmp_link(int fd, char *tmp)
{
	size_t len = strlen(tmp);
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (int tries = 0; tries < 100; tries++) {
		uint32_t rnd;

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			return -EIO;
		snprintf(tmp + len - 6, 7, "%06x", (unsigned)(rnd & 0xffffff));
		if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/*
 * Why a temporary file + rename: a crash or a full disk in the middle of
 * the write must never leave path half-written. fsync before rename makes
 * the data durable before the name points at it; fsync of the directory
 * makes the rename itself durable. The temporary file is named only for
 * the instant before the rename: nothing is left behind to remove when the
 * agent is stopped mid-write.
 */
static int builtin_write_file(struct mg_call *call, const struct mg_value *args,
			      struct mg_value **ret_result)
{
	struct mg_error uerr = MG_ERROR_INIT;
	const char *path = NULL, *slash;
	const void *data = NULL;
	size_t len = 0, dirlen;
	int mode = 0644, fd = -1, dfd, rc;
	const char *step;
	char *tmp = NULL, *dir = NULL;
	bool named = false;

	(void)ret_result;
	if (mg_value_unpack(args, &uerr, "sy|i", &path, &data, &len, &mode) < 0)
		return builtin_fail_args(call, &uerr);
	if (!path || !*path)
		return mg_call_fail(call, EINVAL,
				    "path must be a non-empty string");
	if (agent_call_audited(call))
		mg_call_audit_detail(call, "path", mg_str(path));
	if (mode < 0 || mode > 07777)
		return mg_call_fail(call, EINVAL,
				    "mode %#o is not a permission mode", mode);

	slash = strrchr(path, '/');
	if (slash && slash[1] == '\0')
		return mg_call_fail(call, EISDIR, "write \"%s\": %s", path,
				    strerror(EISDIR));
	dirlen = slash ? (size_t)(slash - path) + 1 : 0;
	/* "<dir>/.<name>.mg-XXXXXX": same directory, so rename stays atomic */
	if (asprintf(&tmp, "%.*s.%s.mg-XXXXXX", (int)dirlen, path,
		     slash ? slash + 1 : path) < 0)
		return mg_call_fail(call, ENOMEM, "out of memory");
	if (asprintf(&dir, "%.*s", dirlen ? (int)dirlen : 1,
		     dirlen ? path : ".") < 0) {
		free(tmp);
		return mg_call_fail(call, ENOMEM, "out of memory");
	}

	step = "create a temporary file for";
	fd = builtin_tmp_open(dir, tmp, &named);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	step = "write";
	rc = builtin_write_all(fd, data, len);
	if (rc == 0 && fchmod(fd, (mode_t)mode) < 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc == 0 && !named) {
		step = "name the temporary file for";
		rc = builtin_tmp_link(fd, tmp);
		named = rc == 0;
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	fd = -1;
	if (rc < 0)
		goto unlink_tmp;
	step = "rename into place";
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto unlink_tmp;
	}

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		/* Some filesystems cannot fsync a directory (EINVAL): the data
		 * is safe already, so that is not worth failing for. */
		if (fsync(dfd) < 0 && errno != EINVAL && errno != EROFS) {
			rc = -errno;
			close(dfd);
			step = "fsync the directory of";
			goto fail;
		}
		close(dfd);
	}
	free(tmp);
	free(dir);
	return 0;

unlink_tmp:
	if (named)
		unlink(tmp);
fail:
	rc = builtin_file_fail(call, -rc, step, path, dir, W_OK | X_OK);
	free(tmp);
	free(dir);
	return rc;
}
MG_EXPORT_AS("mg.write_file", builtin_write_file);

static int builtin_stat(struct mg_call *call, const struct mg_value *args,
			struct mg_value **ret_result)
{
	struct mg_value *m;
	const char *path, *type;
	struct stat st;
	int rc;

	rc = builtin_path_arg(call, args, &path);
	if (rc < 0)
		return rc;
	if (lstat(path, &st) < 0)
		return mg_call_fail(call, errno, "stat \"%s\": %s", path,
				    strerror(errno));

	if (S_ISREG(st.st_mode))
		type = "file";
	else if (S_ISDIR(st.st_mode))
		type = "dir";
	else if (S_ISLNK(st.st_mode))
		type = "symlink";
	else
		type = "other";

	m = mg_map();
	rc = mg_map_set(m, "size", mg_int(st.st_size));
	if (rc == 0)
		rc = mg_map_set(m, "mode", mg_int(st.st_mode & 07777));
	if (rc == 0)
		rc = mg_map_set(m, "uid", mg_int(st.st_uid));
	if (rc == 0)
		rc = mg_map_set(m, "gid", mg_int(st.st_gid));
	if (rc == 0)
		rc = mg_map_set(m, "mtime",
				mg_float((double)st.st_mtim.tv_sec +
					 st.st_mtim.tv_nsec / 1e9));
	if (rc == 0)
		rc = mg_map_set(m, "type", mg_str(type));
	if (rc < 0) {
		mg_value_free(m);
		return mg_call_fail(call, ENOMEM, "out of memory");
	}
	*ret_result = m;
	return 0;
}
MG_EXPORT_AS("mg.stat", builtin_stat);

static int builtin_unlink(struct mg_call *call, const struct mg_value *args,
			  struct mg_value **ret_result)
{
	const char *path;
	int rc;

	(void)ret_result;
	rc = builtin_path_arg(call, args, &path);
	if (rc < 0)
		return rc;
	if (unlink(path) < 0)
		return mg_call_fail(call, errno, "unlink \"%s\": %s", path,
				    strerror(errno));
	return 0;
}
MG_EXPORT_AS("mg.unlink", builtin_unlink);

/* --- process identity -------------------------------------------------- */

/* Check that a function taking no arguments got none. */
static int builtin_no_args(struct mg_call *call, const struct mg_value *args)
{
	struct mg_error uerr = MG_ERROR_INIT;

	if (mg_value_unpack(args, &uerr, "") < 0)
		return builtin_fail_args(call, &uerr);
	return 0;
}

static int builtin_getpid(struct mg_call *call, const struct mg_value *args,
			  struct mg_value **ret_result)
{
	int rc = builtin_no_args(call, args);

	return rc < 0 ? rc : builtin_ret_int(call, getpid(), ret_result);
}
MG_EXPORT_AS("mg.getpid", builtin_getpid);

static int builtin_getuid(struct mg_call *call, const struct mg_value *args,
			  struct mg_value **ret_result)
{
	int rc = builtin_no_args(call, args);

	return rc < 0 ? rc : builtin_ret_int(call, getuid(), ret_result);
}
MG_EXPORT_AS("mg.getuid", builtin_getuid);

static int builtin_uname(struct mg_call *call, const struct mg_value *args,
			 struct mg_value **ret_result)
{
	struct utsname u;
	struct mg_value *m;
	int rc = builtin_no_args(call, args);

	if (rc < 0)
		return rc;
	if (uname(&u) < 0)
		return mg_call_fail(call, errno, "uname: %s", strerror(errno));
	m = mg_map();
	rc = mg_map_set(m, "sysname", mg_str(u.sysname));
	if (rc == 0)
		rc = mg_map_set(m, "nodename", mg_str(u.nodename));
	if (rc == 0)
		rc = mg_map_set(m, "release", mg_str(u.release));
	if (rc == 0)
		rc = mg_map_set(m, "version", mg_str(u.version));
	if (rc == 0)
		rc = mg_map_set(m, "machine", mg_str(u.machine));
	if (rc < 0) {
		mg_value_free(m);
		return mg_call_fail(call, ENOMEM, "out of memory");
	}
	*ret_result = m;
	return 0;
}
MG_EXPORT_AS("mg.uname", builtin_uname);

static int builtin_environ(struct mg_call *call, const struct mg_value *args,
			   struct mg_value **ret_result)
{
	struct mg_value *m;
	int rc = builtin_no_args(call, args);

	if (rc < 0)
		return rc;
	m = mg_map();
	for (char **e = environ; m && e && *e; e++) {
		const char *eq = strchr(*e, '=');
		char *key;

		if (!eq || eq == *e)
			continue;
		key = strndup(*e, eq - *e);
		rc = mg_map_set(m, key, mg_str(eq + 1));
		free(key);
		if (rc < 0)
			break;
	}
	if (!m || rc < 0) {
		mg_value_free(m);
		return mg_call_fail(call, ENOMEM, "out of memory");
	}
	*ret_result = m;
	return 0;
}
MG_EXPORT_AS("mg.environ", builtin_environ);

static int builtin_noop(struct mg_call *call, const struct mg_value *args,
			struct mg_value **ret_result)
{
	(void)ret_result;
	return builtin_no_args(call, args);
}
MG_EXPORT_AS("mg.noop", builtin_noop);

/*
 * agent_run() calls this. It does nothing: the reference is what makes a
 * static link against libmitogen.a pull in this object, and with it the
 * mg_exports section entries above, which nothing else refers to.
 */
void builtins_init(void)
{
}
