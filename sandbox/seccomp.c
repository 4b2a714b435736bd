// SPDX-License-Identifier: MIT
/*
 * seccomp.c — the seccomp part of a sandbox: parsing policy text (built-in
 * profiles and rule files, same format), compiling it with libseccomp,
 * loading it in every thread, and the SIGSYS handler that turns a trapped
 * syscall into EPERM plus a note for the CallError. Owns the per-thread
 * "trapped syscall" record. Must not touch capabilities or rlimits.
 *
 * Policy format, one rule a line, '#' starts a comment:
 *	@default ACTION				(before any rule; default allow)
 *	SYSCALL ACTION [argN OP VALUE]...	OP: == != < <= > >= &MASK==
 * ACTION: allow, trap, kill, log, errno:N. VALUE/MASK: C integer syntax.
 * A rule whose action is the @default one is an error (it would do
 * nothing; libseccomp refuses it too).
 *
 * Why trap and not errno: SECCOMP_RET_TRAP lets the agent learn which
 * syscall was refused (si_syscall) and name it in the CallError, while
 * the call still sees a plain EPERM.
 */
#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <linux/seccomp.h>
#include <linux/filter.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <seccomp.h>

#include "sandbox/sandbox.h"

void sb_policy_free(struct sb_policy *p)
{
	free(p->rules);
	p->rules = NULL;
	p->n = 0;
}

static int parse_action(const char *s, uint32_t *act)
{
	char *end;
	long e;

	if (!strcmp(s, "allow"))
		*act = SCMP_ACT_ALLOW;
	else if (!strcmp(s, "trap"))
		*act = SCMP_ACT_TRAP;
	else if (!strcmp(s, "kill"))
		*act = SCMP_ACT_KILL_PROCESS;
	else if (!strcmp(s, "log"))
		*act = SCMP_ACT_LOG;
	else if (!strncmp(s, "errno:", 6)) {
		errno = 0;
		e = strtol(s + 6, &end, 0);
		if (errno || end == s + 6 || *end || e < 0 || e > 4095)
			return -EINVAL;
		*act = SCMP_ACT_ERRNO((uint32_t)e);
	} else {
		return -EINVAL;
	}
	return 0;
}

static int parse_u64(const char *s, const char *stop, uint64_t *v)
{
	char buf[32];
	char *end;
	size_t len = stop ? (size_t)(stop - s) : strlen(s);

	if (!len || len >= sizeof(buf) || *s == '-')
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*v = strtoull(buf, &end, 0);
	return errno || *end ? -EINVAL : 0;
}

/* "argN==V" and friends. */
static int parse_cond(const char *s, struct sb_rule *r)
{
	static const struct {
		const char *op;
		int cmp;
	} ops[] = {	/* two-character operators first */
		{ "==", SCMP_CMP_EQ }, { "!=", SCMP_CMP_NE }, { "<=", SCMP_CMP_LE },
		{ ">=", SCMP_CMP_GE }, { "<", SCMP_CMP_LT },  { ">", SCMP_CMP_GT },
	};
	unsigned arg;

	if (strncmp(s, "arg", 3) || s[3] < '0' || s[3] > '5' || r->ncond >= 6)
		return -EINVAL;
	arg = (unsigned)(s[3] - '0');
	s += 4;
	r->cond[r->ncond].arg = arg;
	r->cond[r->ncond].b = 0;
	if (*s == '&') {
		const char *eq = strstr(s, "==");

		if (!eq || parse_u64(s + 1, eq, &r->cond[r->ncond].a) < 0 ||
		    parse_u64(eq + 2, NULL, &r->cond[r->ncond].b) < 0)
			return -EINVAL;
		r->cond[r->ncond].op = SCMP_CMP_MASKED_EQ;
		r->ncond++;
		return 0;
	}
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		size_t l = strlen(ops[i].op);

		if (!strncmp(s, ops[i].op, l)) {
			if (parse_u64(s + l, NULL, &r->cond[r->ncond].a) < 0)
				return -EINVAL;
			r->cond[r->ncond].op = ops[i].cmp;
			r->ncond++;
			return 0;
		}
	}
	return -EINVAL;
}

static int rule_add(scmp_filter_ctx ctx, const struct sb_rule *r)
{
	struct scmp_arg_cmp c[6];

	for (unsigned i = 0; i < r->ncond; i++) {
		c[i].arg = r->cond[i].arg;
		c[i].op = (enum scmp_compare)r->cond[i].op;
		c[i].datum_a = r->cond[i].a;
		c[i].datum_b = r->cond[i].b;
	}
	return seccomp_rule_add_array(ctx, r->action, r->nr, r->ncond, c);
}

/* Build the libseccomp filter of p; NULL with why filled. */
static scmp_filter_ctx compile(const struct sb_policy *p, const char *file, char *why, size_t n)
{
	scmp_filter_ctx ctx = seccomp_init(p->def);
	int ret;

	if (!ctx) {
		snprintf(why, n, "seccomp_init failed");
		return NULL;
	}
	/* A binary tree of syscall numbers, not a list: fewer instructions
	 * per syscall, and loading is quicker too (the kernel runs the filter
	 * for every syscall number to fill its action cache). */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; i < p->n; i++) {
		ret = rule_add(ctx, &p->rules[i]);
		if (ret < 0) {
			snprintf(why, n, "%s:%u: libseccomp refuses the rule: %s", file,
				 p->rules[i].line, strerror(-ret));
			seccomp_release(ctx);
			return NULL;
		}
	}
	return ctx;
}

static void __attribute__((format(printf, 5, 6)))
failf(char *why, size_t n, const char *file, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int len = snprintf(why, n, "%s:%u: ", file, line);

	if (len < 0 || (size_t)len >= n)
		return;
	va_start(ap, fmt);
	vsnprintf(why + len, n - (size_t)len, fmt, ap);
	va_end(ap);
}

#define FAIL(...)						\
	do {							\
		failf(why, n, file, line, __VA_ARGS__);		\
		goto fail;					\
	} while (0)

int sb_policy_parse(const char *text, const char *file, struct sb_policy *p, char *why,
		    size_t n)
{
	const char *s = text;
	unsigned line = 0;
	size_t cap = 0;
	scmp_filter_ctx ctx;

	memset(p, 0, sizeof(*p));
	p->def = SCMP_ACT_ALLOW;
	while (*s) {
		const char *eol = strchrnul(s, '\n');
		char buf[512], *tok[10], *save = NULL, *hash;
		size_t len = (size_t)(eol - s), ntok = 0;
		struct sb_rule *r;

		line++;
		if (len >= sizeof(buf))
			FAIL("line too long");
		memcpy(buf, s, len);
		buf[len] = '\0';
		s = *eol ? eol + 1 : eol;
		hash = strchr(buf, '#');
		if (hash)
			*hash = '\0';
		for (char *t = strtok_r(buf, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
			if (ntok == sizeof(tok) / sizeof(tok[0]))
				FAIL("too many fields");
			tok[ntok++] = t;
		}
		if (!ntok)
			continue;
		if (!strcmp(tok[0], "@default")) {
			if (ntok != 2 || parse_action(tok[1], &p->def) < 0)
				FAIL("expected '@default ACTION' (allow, trap, kill, log, errno:N)");
			if (p->n)
				FAIL("@default must come before the first rule");
			continue;
		}
		if (tok[0][0] == '@')
			FAIL("unknown directive '%s'", tok[0]);
		if (ntok < 2)
			FAIL("expected 'SYSCALL ACTION [argN OP VALUE]...'");
		if (p->n == cap) {
			struct sb_rule *nr = realloc(p->rules, (cap ? cap * 2 : 64) * sizeof(*nr));

			if (!nr)
				FAIL("out of memory");
			p->rules = nr;
			cap = cap ? cap * 2 : 64;
		}
		r = &p->rules[p->n];
		memset(r, 0, sizeof(*r));
		r->line = line;
		r->nr = seccomp_syscall_resolve_name(tok[0]);
		if (r->nr == __NR_SCMP_ERROR)
			FAIL("unknown syscall '%s'", tok[0]);
		if (parse_action(tok[1], &r->action) < 0)
			FAIL("unknown action '%s' (allow, trap, kill, log, errno:N)", tok[1]);
		if (r->action == p->def)
			FAIL("action '%s' is the @default action", tok[1]);
		for (size_t i = 2; i < ntok; i++)
			if (parse_cond(tok[i], r) < 0)
				FAIL("bad argument condition '%s' (argN OP VALUE, N 0-5, OP == != < <= > >= &MASK==)",
				     tok[i]);
		p->n++;
	}
	ctx = compile(p, file, why, n);
	if (!ctx) {
		sb_policy_free(p);
		return -EINVAL;
	}
	seccomp_release(ctx);
	return 0;
fail:
	sb_policy_free(p);
	return -EINVAL;
}

/* --- trapping ------------------------------------------------------------ */

static __thread int trapped_nr = -1;
static bool no_inet;
static char trap_profile[128];

/*
 * SIGSYS from the filter (si_code SYS_SECCOMP): note the syscall for this
 * thread's current call and make the syscall return -EPERM. Only touches
 * a thread-local and the saved registers: async-signal-safe.
 */
static void on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;

	(void)sig;
	if (si->si_code != 1 /* SYS_SECCOMP */)
		return;
	if (trapped_nr < 0)
		trapped_nr = si->si_syscall;
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
#elif defined(__aarch64__)
	uc->uc_mcontext.regs[0] = (unsigned long long)-EPERM;
#else
#error "sandbox/seccomp.c: set the syscall return register for this architecture"
#endif
}

void sandbox_trap_clear(void)
{
	trapped_nr = -1;
}

bool sandbox_trap_describe(char *buf, size_t n)
{
	char *name;

	if (trapped_nr < 0)
		return false;
	name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, trapped_nr);
	if (name && no_inet && trapped_nr == SYS_socket)
		snprintf(buf, n, "blocked by seccomp (no-net: no inet sockets): %s", name);
	else if (name)
		snprintf(buf, n, "blocked by seccomp (profile %s): %s", trap_profile, name);
	else
		snprintf(buf, n, "blocked by seccomp (profile %s): syscall %d", trap_profile,
			 trapped_nr);
	free(name);
	trapped_nr = -1;
	return true;
}

int sb_seccomp_load(const struct sb_policy *p, const char *profile, char *why, size_t n)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	scmp_filter_ctx ctx;
	int ret;

	snprintf(trap_profile, sizeof(trap_profile), "%s", profile);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		snprintf(why, n, "seccomp: sigaction(SIGSYS): %s", strerror(errno));
		return -errno;
	}
	ctx = compile(p, profile, why, n);
	if (!ctx)
		return -EINVAL;
	/* Every thread (the broker's too) gets the filter, and no_new_privs. */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (ret == 0)
		ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
	if (ret == 0)
		ret = seccomp_load(ctx);
	seccomp_release(ctx);
	if (ret < 0) {
		snprintf(why, n, "seccomp: cannot load the filter: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

int sb_seccomp_export(const struct sb_policy *p, const char *profile, void **ret_buf,
		      size_t *ret_len, char *why, size_t n)
{
	scmp_filter_ctx ctx = compile(p, profile, why, n);
	struct stat st;
	void *buf = NULL;
	int fd, ret;

	if (!ctx)
		return -EINVAL;
	fd = memfd_create("mitogen-seccomp", MFD_CLOEXEC);
	ret = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (ret == 0 && fstat(fd, &st) < 0)
		ret = -errno;
	if (ret == 0 && (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter)))
		ret = -EINVAL;
	if (ret == 0 && !(buf = malloc((size_t)st.st_size)))
		ret = -ENOMEM;
	if (ret == 0 && pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		ret = -EIO;
	if (fd >= 0)
		close(fd);
	if (ret < 0) {
		free(buf);
		snprintf(why, n, "seccomp: cannot export the filter: %s", strerror(-ret));
		return ret;
	}
	*ret_buf = buf;
	*ret_len = (size_t)st.st_size;
	return 0;
}

int sb_seccomp_load_bpf(const void *prog, size_t len, const char *profile, char *why,
			size_t n)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	struct sock_fprog fprog = {
		.len = (unsigned short)(len / sizeof(struct sock_filter)),
		.filter = (struct sock_filter *)prog,
	};
	long ret;

	if (!len || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > 0xffff) {
		snprintf(why, n, "seccomp: bad compiled filter (%zu bytes)", len);
		return -EINVAL;
	}
	snprintf(trap_profile, sizeof(trap_profile), "%s", profile);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		snprintf(why, n, "seccomp: sigaction(SIGSYS): %s", strerror(errno));
		return -errno;
	}
	/* no_new_privs is already set (caps step); every thread at once. */
	ret = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
	if (ret != 0) {
		int e = ret > 0 ? ESRCH : errno;

		snprintf(why, n, "seccomp: cannot load the filter: %s", strerror(e));
		return -e;
	}
	return 0;
}

/* --- no_inet: a second, stacked filter ------------------------------------ */

/*
 * Why io_uring too: its IORING_OP_SOCKET (Linux 5.19) opens a socket, and
 * its connect/accept/... operations use it, without the socket syscall
 * this filter checks; seccomp cannot see inside the rings. This filter is
 * what stands for a tenant's eBPF socket policy where that cannot be
 * attached (master/local.c), and the eBPF program does see io_uring's
 * sockets: without io_uring the two refuse the same thing. EPERM rather
 * than a trap, as in the default profile: programs that probe io_uring
 * fall back to plain syscalls on an error, a trap would kill them.
 */
int sb_seccomp_no_inet(char *why, size_t n)
{
	static const int families[] = { AF_INET, AF_INET6, AF_PACKET };
	static const int uring[] = { SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter),
				     SCMP_SYS(io_uring_register) };
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int ret = ctx ? 0 : -ENOMEM;

	for (size_t i = 0; ret == 0 && i < sizeof(families) / sizeof(families[0]); i++)
		ret = seccomp_rule_add(ctx, SCMP_ACT_TRAP, SCMP_SYS(socket), 1,
				       SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));
	for (size_t i = 0; ret == 0 && i < sizeof(uring) / sizeof(uring[0]); i++)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), uring[i], 0);
	if (ret == 0)
		ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	sigemptyset(&sa.sa_mask);
	if (ret == 0 && sigaction(SIGSYS, &sa, NULL) < 0)
		ret = -errno;
	if (ret == 0)
		ret = seccomp_load(ctx);
	if (ctx)
		seccomp_release(ctx);
	if (ret < 0) {
		snprintf(why, n, "seccomp: cannot load the no-net filter: %s", strerror(-ret));
		return ret;
	}
	no_inet = true;
	return 0;
}
