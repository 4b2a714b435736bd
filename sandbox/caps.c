// SPDX-License-Identifier: MIT
/*
 * caps.c — the capability and no_new_privs part of a sandbox: parse a keep
 * list, then make the effective/permitted/inheritable sets exactly that,
 * drop the rest from the bounding set, clear the ambient set, and set
 * PR_SET_NO_NEW_PRIVS, in every thread; optionally lock the securebits, and
 * enforce a Landlock ruleset (landlock.c builds it) in every thread after
 * no_new_privs. Must not touch seccomp or rlimits.
 *
 * Why every thread: capabilities and no_new_privs are per thread in the
 * kernel, and by the time BOOT arrives the agent already runs its broker
 * thread. libcap's cap_set_proc() changes only the calling thread (unless
 * the program is built around libpsx), so the other threads are told to do
 * the same with a signal whose handler makes the raw prctl/capset
 * syscalls (async-signal-safe), and we wait until each has answered.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <linux/securebits.h>

/* Root gets no capabilities from exec or setuid, keep-caps and ambient
 * raising are off, and all of it is locked. */
#define SECBITS_LOCKED (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | \
			SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED | \
			SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)

#include "core/spin.h"
#include "sandbox/sandbox.h"

int sb_caps_parse(const char *list, uint64_t *keep, char *why, size_t n)
{
	char *copy, *save = NULL;
	int ret = 0;

	*keep = 0;
	if (!list)
		return 0;
	copy = strdup(list);
	if (!copy) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		cap_value_t c;

		if (cap_from_name(t, &c) < 0 || c < 0 || c >= 64) {
			snprintf(why, n, "unknown capability '%s'", t);
			ret = -EINVAL;
			break;
		}
		*keep |= 1ull << c;
	}
	free(copy);
	return ret;
}

/*
 * Set once the early drop left exactly the keep set: the step after BOOT
 * then skips its per-thread check of ~40 capabilities (two system calls
 * each, in every thread) when it is asked for the same set. Every thread
 * was made after the drop and inherited it.
 */
static struct {
	bool done;
	uint64_t keep;
} bset_early;

/*
 * Dropping from the bounding set costs a credentials copy per capability
 * (PR_CAPBSET_DROP takes one at a time): ~40 of them, in every thread, were
 * most of a sandboxed start's capability step. The bounding set only
 * limits what exec and capset can grant later, not what the process holds
 * now, so a child can drop it as soon as it runs, while it is still the
 * only thread: its threads then inherit the smaller set, and the full
 * step after BOOT skips the bounding set (bset_early), or, when this drop
 * did not go through, checks each capability and drops what is left. The
 * keep set reaches an exec'd child as SANDBOX_BSET_ENV (hex), a forked
 * one as its sandbox map.
 */
static void bset_drop_early(uint64_t keep)
{
	bset_early.done = false;	/* a forked child's copy says nothing */
	for (unsigned c = 0; c < 64; c++) {
		int have = prctl(PR_CAPBSET_READ, c, 0, 0, 0);

		if (have < 0) {
			/* Past the kernel's last capability: all done. */
			bset_early.done = true;
			bset_early.keep = keep;
			return;
		}
		/* Not permitted (no CAP_SETPCAP): the step after BOOT says so. */
		if (have == 1 && !(keep & (1ull << c)) &&
		    prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			return;
	}
}

char *sandbox_early_env(const struct mg_value *sb)
{
	const struct mg_value *caps = sb ? mg_map_get(sb, "caps") : NULL;
	uint64_t keep;
	char why[8], *env;

	if (!caps || caps->type != MG_STR || sb_caps_parse(caps->str, &keep, why, sizeof(why)) < 0)
		return NULL;
	if (asprintf(&env, SANDBOX_BSET_ENV "=%llx", (unsigned long long)keep) < 0)
		return NULL;
	return env;
}

void sandbox_early_from_env(void)
{
	const char *env = getenv(SANDBOX_BSET_ENV);
	unsigned long long keep;
	char *end;

	if (!env)
		return;
	errno = 0;
	keep = strtoull(env, &end, 16);
	/* A bad value drops nothing: the step after BOOT does it all. */
	if (!errno && end != env && !*end)
		bset_drop_early((uint64_t)keep);
	unsetenv(SANDBOX_BSET_ENV);
}

void sandbox_early_caps(const struct mg_value *sb)
{
	const struct mg_value *caps = sb ? mg_map_get(sb, "caps") : NULL;
	uint64_t keep;
	char why[8];

	if (caps && caps->type == MG_STR && sb_caps_parse(caps->str, &keep, why, sizeof(why)) == 0)
		bset_drop_early(keep);
}

/* What every thread must end up with; written before the signals go out. */
static struct {
	bool have_caps;
	uint64_t keep;
	bool securebits;
	int landlock_fd;
	unsigned last;
	bool bset_done;		/* the early drop left exactly keep */
	struct __user_cap_header_struct hdr;
	struct __user_cap_data_struct data[2];
	atomic_int done, failed;
} want;

static int apply_self_raw(void)
{
	if (want.have_caps) {
		for (unsigned c = 0; !want.bset_done && c <= want.last; c++)
			if (!(want.keep & (1ull << c)) &&
			    syscall(SYS_prctl, PR_CAPBSET_READ, c, 0, 0, 0) == 1 &&
			    syscall(SYS_prctl, PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
				return -1;
		/* EINVAL before Linux 4.3 (no ambient set): nothing to clear. */
		if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			return -1;
	}
	if (want.securebits &&
	    syscall(SYS_prctl, PR_SET_SECUREBITS, SECBITS_LOCKED, 0, 0, 0) < 0)
		return -1;
	if (want.have_caps && syscall(SYS_capset, &want.hdr, want.data) < 0)
		return -1;
	if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	if (want.landlock_fd >= 0 &&
	    syscall(SYS_landlock_restrict_self, want.landlock_fd, 0) < 0)
		return -1;
	return 0;
}

static void on_sync_signal(int sig)
{
	int e = errno;

	(void)sig;
	if (apply_self_raw() < 0)
		atomic_fetch_add(&want.failed, 1);
	atomic_fetch_add(&want.done, 1);
	/* futex(2) is async-signal-safe: wake the thread waiting for us. */
	syscall(SYS_futex, (int *)&want.done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	errno = e;
}

#define SYNC_SIGNAL (SIGRTMIN + 4)

static int wait_threads(int sent, const struct sigaction *old, char *why, size_t n);

/* Tell every other thread of the process to run apply_self_raw(); *sent
 * is how many were told, *old the signal's previous action. */
static int signal_threads(int *sent, struct sigaction *old, char *why, size_t n)
{
	struct sigaction sa = { .sa_handler = on_sync_signal, .sa_flags = SA_RESTART };
	pid_t self = (pid_t)syscall(SYS_gettid), pid = getpid();
	/* Raw getdents64 into the stack: opendir's 32 KiB buffer is fresh
	 * heap in a new child, and faulting it in cost more than the rest. */
	char buf[4096] __attribute__((aligned(8)));
	long got;
	int fd;

	*sent = 0;
	atomic_store(&want.done, 0);
	atomic_store(&want.failed, 0);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SYNC_SIGNAL, &sa, old) < 0) {
		snprintf(why, n, "caps: sigaction: %s", strerror(errno));
		return -errno;
	}
	fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, n, "caps: /proc/self/task: %s", strerror(errno));
		sigaction(SYNC_SIGNAL, old, NULL);
		return -ENOENT;
	}
	while ((got = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < got;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			pid_t tid = (pid_t)atoi(de->d_name);

			off += de->d_reclen;
			if (tid <= 0 || tid == self)
				continue;
			if (syscall(SYS_tgkill, pid, tid, SYNC_SIGNAL) == 0)
				(*sent)++;
		}
	}
	close(fd);
	if (got < 0) {
		int e = errno;
		char why2[160];

		/* Some threads may have been told: let them finish first. */
		wait_threads(*sent, old, why2, sizeof(why2));
		snprintf(why, n, "caps: /proc/self/task: %s", strerror(e));
		return -EIO;
	}
	return 0;
}

/* spin_wait's check: have the threads told all said they are done? */
static bool threads_done(void *arg)
{
	return atomic_load(&want.done) >= *(int *)arg;
}

/*
 * Wait (at most 5 s in all) for the threads told to say they are done,
 * spinning first (spin.h): the broker thread's part takes microseconds,
 * and sleeping for it costs a wake-up across CPUs.
 */
static int wait_threads(int sent, const struct sigaction *old, char *why, size_t n)
{
	struct spin sp = { 0 };

	if (sent > 0)
		spin_wait(&sp, threads_done, &sent);
	for (int i = 0; i < 5000; i++) {
		struct timespec ts = { 0, 1000000 };
		int done = atomic_load(&want.done);

		if (done >= sent)
			break;
		syscall(SYS_futex, (int *)&want.done, FUTEX_WAIT_PRIVATE, done, &ts, NULL, 0);
	}
	sigaction(SYNC_SIGNAL, old, NULL);
	if (atomic_load(&want.done) < sent) {
		snprintf(why, n, "caps: %d of %d threads did not apply the sandbox",
			 sent - atomic_load(&want.done), sent);
		return -ETIMEDOUT;
	}
	if (atomic_load(&want.failed)) {
		snprintf(why, n, "caps: %d threads could not apply the sandbox",
			 atomic_load(&want.failed));
		return -EPERM;
	}
	return 0;
}

static int lock_securebits(char *why, size_t n)
{
	if (prctl(PR_SET_SECUREBITS, SECBITS_LOCKED, 0, 0, 0) < 0) {
		int e = errno;

		snprintf(why, n, "securebits: cannot lock: %s%s", strerror(e),
			 e == EPERM ? " (needs CAP_SETPCAP)" : "");
		return -e;
	}
	return 0;
}

/* This thread's part, through libcap (for clear errors). */
static int apply_main(const struct sb_caps_req *req, char *why, size_t n)
{
	bool have_caps = req->have_caps;
	uint64_t keep = req->keep;
	cap_t c;
	int ret;

	if (have_caps) {
		for (unsigned v = 0; v <= want.last && v < 64; v++) {
			if ((keep & (1ull << v)) || prctl(PR_CAPBSET_READ, v, 0, 0, 0) != 1)
				continue;
			if (cap_drop_bound((cap_value_t)v) < 0) {
				char *name = cap_to_name((cap_value_t)v);

				ret = -errno;
				snprintf(why, n, "caps: cannot drop %s from the bounding set: %s",
					 name ? name : "?", strerror(errno));
				cap_free(name);
				return ret;
			}
		}
		if (cap_reset_ambient() < 0 && errno != EINVAL) {
			ret = -errno;
			snprintf(why, n, "caps: cannot clear the ambient set: %s", strerror(errno));
			return ret;
		}
		if (req->securebits && (ret = lock_securebits(why, n)) < 0)
			return ret;
		c = cap_init();
		if (!c) {
			snprintf(why, n, "caps: out of memory");
			return -ENOMEM;
		}
		for (unsigned v = 0; v <= want.last && v < 64; v++) {
			cap_value_t cv = (cap_value_t)v;

			if (!(keep & (1ull << v)))
				continue;
			cap_set_flag(c, CAP_EFFECTIVE, 1, &cv, CAP_SET);
			cap_set_flag(c, CAP_PERMITTED, 1, &cv, CAP_SET);
			cap_set_flag(c, CAP_INHERITABLE, 1, &cv, CAP_SET);
		}
		ret = cap_set_proc(c);
		if (ret < 0) {
			char *text = cap_to_text(c, NULL);

			ret = -errno;
			snprintf(why, n, "caps: cannot set '%s': %s", text ? text : "?",
				 strerror(errno));
			cap_free(text);
			cap_free(c);
			return ret;
		}
		cap_free(c);
	} else if (req->securebits && (ret = lock_securebits(why, n)) < 0) {
		return ret;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(why, n, "no_new_privs: %s", strerror(errno));
		return -errno;
	}
	if (req->landlock_fd >= 0 && syscall(SYS_landlock_restrict_self, req->landlock_fd, 0) < 0) {
		ret = -errno;
		snprintf(why, n, "landlock: restrict_self: %s", strerror(errno));
		return ret;
	}
	return 0;
}

int sb_caps_apply(const struct sb_caps_req *req, char *why, size_t n)
{
	struct sigaction old;
	char why2[160];
	int ret, ret2, sent;

	memset(&want, 0, sizeof(want));
	want.have_caps = req->have_caps;
	want.keep = req->keep;
	want.securebits = req->securebits;
	want.landlock_fd = req->landlock_fd;
	want.last = (unsigned)cap_max_bits() - 1;
	want.bset_done = bset_early.done && bset_early.keep == req->keep;
	/* What every thread sets: exactly the keep set, in e, p and i. */
	want.hdr.version = _LINUX_CAPABILITY_VERSION_3;
	for (unsigned v = 0; v <= want.last && v < 64; v++) {
		if (!(req->keep & (1ull << v)))
			continue;
		want.data[v / 32].effective |= 1u << (v % 32);
		want.data[v / 32].permitted |= 1u << (v % 32);
		want.data[v / 32].inheritable |= 1u << (v % 32);
	}
	/* The other threads work on theirs while this one does its own (and
	 * are listed before the ruleset can hide /proc). */
	ret = signal_threads(&sent, &old, why, n);
	if (ret < 0)
		return ret;
	/* Raw syscalls first (quick); libcap's way only to say what failed. */
	ret = apply_self_raw() == 0 ? 0 : apply_main(req, why, n);
	ret2 = wait_threads(sent, &old, ret < 0 ? why2 : why, ret < 0 ? sizeof(why2) : n);
	return ret < 0 ? ret : ret2;
}
