/* SPDX-License-Identifier: MIT */
/*
 * Sandboxing a child context: seccomp, capabilities (+ locked securebits),
 * no_new_privs, rlimits, Landlock, namespaces and a tenant cgroup, applied
 * by the child after BOOT and before it serves its first
 * call. Point mg_local_opts.sandbox at one of these (mg_local, mg_fork, and
 * through via=, where the description travels with the start request, so
 * the child is sandboxed wherever it runs).
 *
 *	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default",
 *				      .caps = "cap_net_bind_service" };
 *	MG_OPTS(mg_local_opts, lo, .sandbox = &sb);
 *	ctx = mg_local(r, &lo, &err);
 *
 * Namespaces are entered when the child is started (clone flags: the
 * agent of a new pid namespace is its pid 1) and set up by the child after
 * BOOT: lo up in a new net namespace (libnl), a private tmpfs /tmp and a
 * fresh /proc in a new mount namespace. A non-root master gets a user
 * namespace too (its uid and gid mapped to 0 inside).
 *
 * Errors at creation (mg_local/mg_fork return NULL, err is MG_ERR_STREAM):
 *  - a custom seccomp rule file that cannot be read or has a bad line:
 *    "FILE:LINE: reason", found in the parent before anything starts (and
 *    checked again in the child);
 *  - an unknown capability name: "unknown capability 'cap_foo'";
 *  - a part the child's kernel cannot provide (not marked best-effort):
 *    the child writes "mitogen agent: sandbox: <part>: <reason>" to stderr
 *    and exits with code 122 (AGENT_EXIT_SANDBOX); the StreamError carries
 *    that line (e.g. "landlock: not built into this kernel"; namespaces the
 *    starter cannot create: "sandbox: namespaces: cannot create net: ...");
 *  - a Landlock path that is not absolute, a bad tenant name, or
 *    pids_max/memory_max without a tenant: found in the parent.
 *
 * A file built-in (mg.read_file, mg.write_file) that Landlock stops fails
 * with EACCES and "denied by landlock: PATH".
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

#include <stdbool.h>
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
#define MG_SANDBOX_LANDLOCK 0x8u	/* no Landlock in the kernel */
#define MG_SANDBOX_NAMESPACES 0x10u	/* namespaces the kernel refuses are left out */
#define MG_SANDBOX_CGROUP 0x20u	/* no tenant cgroup, or no limit controller */
#define MG_SANDBOX_SECUREBITS 0x40u	/* securebits cannot be locked */

/* Bits of mg_sandbox_opts.namespaces. */
#define MG_NS_NET 0x1u		/* new network namespace, only lo, up */
#define MG_NS_MOUNT 0x2u	/* new mount namespace, private tmpfs /tmp (and /proc with MG_NS_PID) */
#define MG_NS_PID 0x4u		/* new pid namespace: the agent is its pid 1 */
#define MG_NS_UTS 0x8u		/* new UTS namespace (hostname "mitogen") */
#define MG_NS_IPC 0x10u		/* new IPC namespace */
#define MG_NS_USER 0x20u	/* new user namespace (implied when the master is not root) */

struct mg_sandbox_opts {
	/* sizeof(struct mg_sandbox_opts), as for every options struct. */
	size_t sz;
	/*
	 * seccomp profile: "default" (allow all but module loading, kexec,
	 * reboot, mount, swap, ptrace, bpf, perf_event_open, keys,
	 * userfaultfd, namespaces (clone3 fails with ENOSYS), personality,
	 * chroot, io_uring (EPERM), pidfd_getfd...), "strict" (only
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

	/* --- since the second part of issue 5 --- */

	/*
	 * Landlock path lists, each NULL-terminated (NULL: none). Any list
	 * given turns Landlock on and every file access outside the lists is
	 * refused: ro = read files and list directories, exec = ro + execute,
	 * rw = all but execute. Paths are opened in the child, where a missing
	 * one fails the creation ("landlock: PATH: No such file or
	 * directory"). /dev/null is always read-write.
	 */
	const char *const *ro;
	const char *const *rw;
	const char *const *exec;
	/* MG_NS_* bits: namespaces the child starts in. */
	unsigned namespaces;
	/* No AF_INET, AF_INET6 or AF_PACKET sockets: a second seccomp filter
	 * (stacked on any profile) traps socket() for them; the CallError
	 * says "blocked by seccomp (no-net: no inet sockets): socket". It
	 * also fails io_uring with EPERM (io_uring opens sockets without
	 * socket()). With MG_NS_NET this is the tool's --no-net. */
	bool no_inet;
	/* Lock the securebits (noroot, no_setuid_fixup, keep_caps off,
	 * no_cap_ambient_raise): needs CAP_SETPCAP when applied. */
	bool lock_securebits;
	/*
	 * Tenant cgroup: the child moves itself into
	 * <cgroup2 mount>/mitogen/<tenant> (letters, digits, '-', '_', '.';
	 * created when missing), with these limits where the pids and memory
	 * controllers exist (0: no limit). See README, "Tenant cgroups".
	 */
	const char *tenant;
	int64_t pids_max;
	int64_t memory_max;	/* bytes */
	/*
	 * Socket families the tenant's cgroup may not open (MG_TENANT_NO_*),
	 * enforced by a cgroup/sock_create eBPF program the starting process
	 * attaches to the tenant's cgroup (once per tenant, kept until that
	 * process exits), which also counts the tenant's network bytes
	 * (pinned, see README "eBPF"). Every context of the tenant is covered,
	 * whoever started it. Without eBPF, MG_TENANT_NO_INET falls back to
	 * the no_inet seccomp filter for this child (logged once); NETLINK and
	 * PACKET have no fallback and fail the creation. Needs tenant.
	 */
	unsigned tenant_deny;
};

#define MG_TENANT_NO_INET	0x1u	/* AF_INET, AF_INET6 */
#define MG_TENANT_NO_NETLINK	0x2u	/* AF_NETLINK */
#define MG_TENANT_NO_PACKET	0x4u	/* AF_PACKET */
/* PR_SET_NO_NEW_PRIVS is always set in a sandboxed child: no setuid or
 * file-capability program regains what was dropped. */

#ifdef __cplusplus
}
#endif
#endif
