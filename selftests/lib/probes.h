/* SPDX-License-Identifier: MIT */
/*
 * selftests/lib/probes.h: what the sandbox tests (selftests/sandbox/ and
 * selftests/transports/test_sudo_sandbox.c) share.
 *
 * Owns: the probes a sandboxed child runs, exported by name from
 * selftests/lib/probes.c (linked into every selftest, so every test's
 * children can run them; call them by name, e.g. mg_call(ctx,
 * "try_syscall", MG_LIST(mg_str("mount")), ...)):
 *
 *	try_syscall(name)   -> 0, or a CallError with errno and strerror;
 *	                       name: mount, ptrace_traceme, ptrace_attach,
 *	                       init_module, bpf
 *	open_many(n)        -> n (n <= 256 fds of /dev/null, then closed), or a
 *	                       CallError with the errno of the first failure
 *	bind_port(port)     -> the first port from port up (< 1024) it could
 *	                       bind on 127.0.0.1 (one in use is skipped)
 *	chown_file(path)    -> nil; gives path to uid/gid 1
 *	raw_socket()        -> nil, or the socket(SOCK_RAW) failure
 *	net_info()          -> [[interface names...], flags of lo]
 *	inet_socket()       -> nil, or the socket(AF_INET) failure
 *	my_cgroups()        -> text of /proc/self/cgroup
 *	fork_until_fail(max)-> [forks that worked, errno of the first failure]
 *
 * and what those tests do around them: expecting a CallError or a
 * seccomp refusal, starting and stopping a context, a scratch directory, and a few
 * checks of this machine for the tests' skips and sanity checks.
 * Must not touch: library internals (public API only).
 */
#ifndef MITOGEN_SELFTESTS_PROBES_H
#define MITOGEN_SELFTESTS_PROBES_H

#include <stdbool.h>
#include <stddef.h>

#include <mitogen/mitogen.h>

/*
 * Call fn(args) in ctx expecting a CallError: its errno (0 if the call
 * worked), its message in msg[n]. Any other failure fails the test.
 */
int mg_test_call_err(struct mg_context *ctx, const char *fn, struct mg_value *args,
		     char *msg, size_t n);

/*
 * Assert that try_syscall(what[i]) fails in ctx with EPERM and a message
 * "blocked by seccomp (profile PROFILE): NAME[i]", for i < n.
 */
void mg_test_assert_refused(struct mg_context *ctx, const char *profile,
			    const char *const what[], const char *const name[], size_t n);

/*
 * Can this process create the namespaces of flags (CLONE_NEW*) at all (not
 * in every container)? Tried once in a forked child per flags; prints
 * "# skip: ..." with the reason the first time it is missing.
 */
bool mg_test_ns_missing(int flags);

/* Is capability cap (CAP_*) in this process's effective set? */
bool mg_test_have_cap(int cap);

/* A local child of r with sandbox sb (NULL: none), through via (NULL:
 * directly), 20 s to connect: the context, or NULL with err set. */
struct mg_context *mg_test_start(struct mg_router *r, const struct mg_sandbox_opts *sb,
				 struct mg_context *via, struct mg_error *err);

/* The same, failing the test with the error's message if it does not start. */
struct mg_context *mg_test_start_ok(struct mg_router *r, const struct mg_sandbox_opts *sb,
				    struct mg_context *via);

/* Shut a context down cleanly (asserted) and drop it. */
void mg_test_stop(struct mg_context *ctx);

/* Make the directory $TMPDIR/NAME-XXXXXX (/tmp without TMPDIR), asserted;
 * its path in dir[n]. */
void mg_test_tmpdir(char *dir, size_t n, const char *name);

/* rm -rf dir: 0, or -1 if that failed. */
int mg_test_rm_rf(const char *dir);

/* Write text to path (created or truncated), asserting every step. */
void mg_test_write_text(const char *path, const char *text);

/* Run a shell command built like printf; fail the test if it fails. */
void mg_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
