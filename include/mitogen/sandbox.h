/* SPDX-License-Identifier: MIT */
/*
 * Sandboxing a child context: seccomp, capabilities, no_new_privs and
 * rlimits, applied by the child after BOOT and before it serves its first
 * call. Point mg_local_opts.sandbox at one of these (mg_local, mg_fork, and
 * through via=, where the description travels with the start request, so
 * the child is sandboxed wherever it runs).
 *
 *	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default",
 *				      .caps = "cap_net_bind_service" };
 *	MG_OPTS(mg_local_opts, lo, .sandbox = &sb);
 *	ctx = mg_local(r, &lo, &err);
 *
 * Not yet here (issue 5): Landlock, namespaces, tenant cgroups, securebits.
 *
 * Errors at creation (mg_local/mg_fork return NULL, err is MG_ERR_STREAM):
 *  - a custom seccomp rule file that cannot be read or has a bad line:
 *    "FILE:LINE: reason", found in the parent before anything starts (and
 *    checked again in the child);
 *  - an unknown capability name: "unknown capability 'cap_foo'";
 *  - a part the child's kernel cannot provide (not marked best-effort):
 *    the child writes "mitogen agent: sandbox: <part>: <reason>" to stderr
 *    and exits with code 122 (AGENT_EXIT_SANDBOX); the StreamError carries
 *    that line.
 *
 * In a sandboxed child, a call that makes a syscall the seccomp profile
 * refuses gets -EPERM from that syscall, and the call's CallError message
 * says "blocked by seccomp (profile NAME): SYSCALL". Programs started by
 * mg.run inherit the filter and no_new_privs; there the SIGSYS handler is
 * gone (execve resets it), so a refused syscall kills that program with
 * SIGSYS, which mg.run reports as its exit status.
 */
#ifndef MITOGEN_SANDBOX_H
#define MITOGEN_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bits of mg_sandbox_opts.best_effort: parts that may be skipped (with a
 * warning in the log) when the kernel cannot do them. */
#define MG_SANDBOX_SECCOMP 0x1u	/* seccomp filter (kernel without seccomp) */
#define MG_SANDBOX_CAPS 0x2u	/* capability sets and bounding set */
#define MG_SANDBOX_RLIMITS 0x4u	/* setrlimit refused (raising a hard limit) */

struct mg_sandbox_opts {
	/* sizeof(struct mg_sandbox_opts), as for every options struct. */
	size_t sz;
	/*
	 * seccomp profile: "default" (allow all but module loading, kexec,
	 * reboot, mount, swap, ptrace, bpf, perf_event_open, keys,
	 * userfaultfd, namespaces, personality, chroot...), "strict" (only
	 * what the agent and the mg.* built-ins need), a path to a rule file
	 * (read by the process calling mg_local; one rule a line: `syscall
	 * action [argN OP VALUE]...`, actions allow, trap, kill, log,
	 * errno:N; `@default ACTION` sets the action for syscalls no rule
	 * names (default: allow); `#` starts a comment), or NULL for no
	 * filter.
	 */
	const char *seccomp;
	/*
	 * Capabilities to keep, comma-separated libcap names
	 * ("cap_net_bind_service,cap_chown"): the child's effective,
	 * permitted and inheritable sets become exactly these, everything
	 * else leaves the bounding set and the ambient set is cleared, in
	 * every thread. NULL: leave capabilities alone; "": drop them all.
	 */
	const char *caps;
	/* setrlimit() soft and hard limits; 0 leaves a limit unchanged. */
	struct {
		int64_t nofile;	/* RLIMIT_NOFILE: open files */
		int64_t nproc;	/* RLIMIT_NPROC: processes of this uid */
		int64_t as;	/* RLIMIT_AS: address space, bytes */
		int64_t cpu;	/* RLIMIT_CPU: CPU seconds */
		int64_t fsize;	/* RLIMIT_FSIZE: file size, bytes */
	} rlimits;
	/* MG_SANDBOX_* bits: parts that may be skipped if the kernel cannot
	 * do them. A bad description (file, capability name) is always an
	 * error. */
	unsigned best_effort;
};
/* PR_SET_NO_NEW_PRIVS is always set in a sandboxed child: no setuid or
 * file-capability program regains what was dropped. */

#ifdef __cplusplus
}
#endif
#endif
