/* SPDX-License-Identifier: MIT */
/*
 * sandbox.h — the sandbox module, private to libmitogen: turning
 * struct mg_sandbox_opts into the "sandbox" map of BOOT (parent side,
 * where rule files are read and checked), and applying that map in the
 * child (agent side). Parts: seccomp.c, caps.c, rlimits.c, profiles.c,
 * landlock.c, namespaces.c, cgroup.c.
 *
 * BOOT "sandbox" map: { "seccomp": profile name or rule file path,
 * "rules": rule text (rule files only), "caps": keep list,
 * "nofile"/"nproc"/"as"/"cpu"/"fsize": ints, "best_effort": int,
 * "ro"/"rw"/"exec": lists of paths (Landlock), "ns": MG_NS_* bits asked,
 * "ns_in": bits the child was started in (written by the starter),
 * "securebits": bool, "no_inet": bool, "tenant": str, "pids_max"/"memory_max": ints,
 * "bpf": the policy compiled by the parent, "bpf_arch": its AUDIT_ARCH,
 * "bpf_sum": SHA-256 binding it to the policy (sandbox.c) }.
 */
#ifndef SANDBOX_SANDBOX_H
#define SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <mitogen/sandbox.h>
#include <mitogen/value.h>

/* Exit code of a child whose sandbox could not be applied (after BOOT). */
#define AGENT_EXIT_SANDBOX 122

/* --- whole sandbox (sandbox.c) --- */

/* Parent: check o (reads and parses a rule file, resolves capability
 * names) and build the BOOT map. NULL with why filled on error. */
struct mg_value *sandbox_to_value(const struct mg_sandbox_opts *o, char *why, size_t n);
/* Check a map made by sandbox_to_value (in a via= intermediate, and in the
 * child before applying). 0 or -EINVAL with why filled. */
int sandbox_value_check(const struct mg_value *v, char *why, size_t n);
/* Child: apply the map to this process (every thread). 0 or -errno with
 * why filled ("seccomp: ...", "caps: ..."). */
int sandbox_apply(const struct mg_value *v, char *why, size_t n);

/* --- seccomp (seccomp.c) --- */


struct sb_rule {
	int nr;			/* syscall number, native arch */
	uint32_t action;	/* SCMP_ACT_* */
	unsigned line;
	unsigned ncond;
	struct {
		unsigned arg;
		int op;		/* enum scmp_compare */
		uint64_t a, b;
	} cond[6];
};

struct sb_policy {
	uint32_t def;		/* @default action */
	struct sb_rule *rules;
	size_t n;
};

/* Parse policy text; errors are "FILE:LINE: reason". Caller frees with
 * sb_policy_free. Also compiles it with libseccomp (without loading) so
 * that what libseccomp refuses is found here too. */
int sb_policy_parse(const char *text, const char *file, struct sb_policy *p, char *why,
		    size_t n);
void sb_policy_free(struct sb_policy *p);
/* Install the SIGSYS handler and load p for every thread (TSYNC).
 * profile names it in CallError messages. */
int sb_seccomp_load(const struct sb_policy *p, const char *profile, char *why, size_t n);
/* Parent: compile p to classic BPF (malloc'd, caller frees), so a child
 * can load it without compiling (saves most of a sandboxed start). */
int sb_seccomp_export(const struct sb_policy *p, const char *profile, void **ret_buf,
		      size_t *ret_len, char *why, size_t n);
/* Child: load a filter made by sb_seccomp_export, every thread (TSYNC);
 * no_new_privs must already be set. */
int sb_seccomp_load_bpf(const void *prog, size_t len, const char *profile, char *why,
			size_t n);
/* Child: stack a filter that traps socket() for AF_INET, AF_INET6 and
 * AF_PACKET, and fails io_uring (which opens sockets without socket())
 * with EPERM, every thread; no_new_privs must already be set. */
int sb_seccomp_no_inet(char *why, size_t n);
/* Forget a trapped syscall of this thread (before a call). */
void sandbox_trap_clear(void);
/* If a syscall of this thread was trapped since sandbox_trap_clear, write
 * "blocked by seccomp (profile P): NAME" into buf and return true. */
bool sandbox_trap_describe(char *buf, size_t n);

/* --- profiles (profiles.c) --- */

/* Text of a built-in profile ("default", "strict"), or NULL. */
const char *sb_profile_text(const char *name);

/* --- capabilities (caps.c) --- */

/* "a,b,c" -> bit mask of capability numbers. -EINVAL with why
 * "unknown capability 'x'". */
int sb_caps_parse(const char *list, uint64_t *keep, char *why, size_t n);

struct sb_caps_req {
	bool have_caps;		/* keep exactly `keep` */
	uint64_t keep;
	bool securebits;	/* lock the securebits */
	int landlock_fd;	/* ruleset to enforce after no_new_privs, or -1 */
};
/* Apply req and set no_new_privs, in every thread of the process. */
int sb_caps_apply(const struct sb_caps_req *req, char *why, size_t n);

/* Child environment variable: the capabilities to keep (hex mask), so an
 * exec'd child drops the rest from its bounding set before its threads. */
#define SANDBOX_BSET_ENV "MITOGEN_SANDBOX_BSET"
/* Parent, exec'd local contexts: "SANDBOX_BSET_ENV=MASK" (malloc'd) when
 * the map has a capability list, else NULL. Only saves time: the child
 * still applies (and checks) everything after BOOT. */
char *sandbox_early_env(const struct mg_value *sb);
/* Child, single-threaded, before BOOT: drop from the bounding set what
 * SANDBOX_BSET_ENV does not keep; unset it (programs we run never see it). */
void sandbox_early_from_env(void);
/* Forked child, single-threaded: the same from its sandbox map. */
void sandbox_early_caps(const struct mg_value *sb);

/* --- Landlock (landlock.c) --- */

/* Does the map ask for Landlock? */
bool sb_landlock_wanted(const struct mg_value *v);
/* Child: detect the ABI (logging what it cannot restrict) and build the
 * ruleset of the map's path lists; *ret_fd is -1 when none was asked.
 * -EOPNOTSUPP/-ENOSYS when the kernel has no Landlock. */
int sb_landlock_prepare(const struct mg_value *v, int *ret_fd, char *why, size_t n);
/* Close the ruleset; enforced: it is in force from now on. */
void sb_landlock_done(int fd, bool enforced);
/* Is a Landlock ruleset in force in this process? */
bool sandbox_landlock_active(void);
/* After EACCES on path: would the file modes have allowed `mode`
 * (access(2) flags)? Then Landlock refused it. */
bool sandbox_landlock_denied(const char *path, int mode);

/* --- namespaces (namespaces.c) --- */

/* Does the map ask for namespaces? */
bool sandbox_ns_wanted(const struct mg_value *sb);
/* Parent, local contexts: start image in the namespaces sb asks for
 * (clone; chan_fd becomes child_fd, out_fd stdout/stderr, /dev/null
 * stdin), and record them in sb's "ns_in". pid, or -errno with why. */
pid_t sandbox_spawn(struct mg_value *sb, const char *image, char *const argv[],
		    char *const env[], int chan_fd, int child_fd, int out_fd, char *why,
		    size_t n);
/* Parent, after sandbox_spawn: the child is up (or failed). The net
 * namespace pool refills only while no child is being started. */
void sandbox_spawn_done(void);
/* Parent, fork contexts, before fork(): refuse (or with best effort drop)
 * a pid namespace; record in "ns_in" what the child will unshare. */
int sandbox_ns_prepare_fork(struct mg_value *sb, char *why, size_t n);
/* Forked child, still single-threaded: unshare the namespaces. */
int sandbox_ns_unshare(const struct mg_value *sb, char *why, size_t n);
/* Parent, contexts a program starts (sudo, su, doas, ssh): refuse (or
 * with best effort drop) a pid namespace; *bits: what the agent is to
 * enter (--mitogen-ns). kind names the context in the message. */
int sandbox_ns_exec_bits(const struct mg_value *sb, const char *kind, unsigned *bits,
			 char *why, size_t n);
/* Agent started by a first stage, still single-threaded: unshare the
 * asked bits (plus a user namespace when not root); with best effort in
 * mind, what can be entered when not all can. Called with 0 too: then
 * the agent claims no namespace whatever BOOT says. */
void sandbox_ns_enter_self(unsigned asked);
/* Agent after BOOT: write what sandbox_ns_enter_self entered into sb's
 * "ns_in" (the parent's word is not taken); nothing if never called. */
void sandbox_ns_record_self(struct mg_value *sb);
/* Why sandbox_ns_enter_self could not enter all it was asked, or NULL. */
const char *sb_ns_self_why(void);
/* Child after BOOT: lo up, private /tmp and /proc, hostname. */
int sb_ns_setup(const struct mg_value *v, char *why, size_t n);

/* --- tenant cgroups (cgroup.c) --- */

/* Is t a valid tenant name? -EINVAL with why. */
int sb_tenant_check(const char *t, char *why, size_t n);
/*
 * Create (if missing) the tenant's cgroup2 directory,
 * "<cgroup2 mount>/mitogen/<tenant>", and write its path to path. Mounts
 * a cgroup2 at /run/mitogen/cgroup2 when none is mounted (and logs it).
 * 0, -EINVAL (bad name), -ENAMETOOLONG or -errno.
 */
int sandbox_tenant_cgroup(const char *tenant, char *path, size_t size);
/* Child: join the map's tenant cgroup, with its limits. */
int sb_cgroup_apply(const struct mg_value *v, char *why, size_t n);

/* --- rlimits (rlimits.c) --- */

/* setrlimit(resource, {v, v}) for each v > 0 in the map's rlimit keys. */
int sb_rlimits_apply(const struct mg_value *v, char *why, size_t n);

#endif
