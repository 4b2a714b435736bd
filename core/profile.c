// SPDX-License-Identifier: MIT
/*
 * profile.c — the profiling switch: every broker and agent main thread of
 * a profiled context samples its own CPU time (a per-thread POSIX timer,
 * CLOCK_THREAD_CPUTIME_ID, 1 kHz, SIGPROF) and, on graceful exit, writes
 *
 *	<private directory>/mitogen.stats.<pid>.<thread>.folded
 *
 * (the debug log's directory, log_private_dir: $XDG_RUNTIME_DIR/mitogen-debug
 * or ${TMPDIR:-/tmp}/mitogen-debug-<uid>, ours and 0700, the file created
 * there O_EXCL|O_NOFOLLOW|O_NONBLOCK and checked) in the "folded stacks" format (one line per distinct stack, frames from
 * the outermost, separated by ';', then the sample count), which
 * flamegraph.pl, inferno-flamegraph and speedscope read directly. Frames
 * are named from the executable's own symbol table; frames elsewhere are
 * printed as addresses.
 *
 * The signal handler only calls backtrace() (primed beforehand, so it does
 * not allocate) and writes into a fixed per-thread table: no locks, no
 * malloc, async-signal-safe.
 */
#include <elf.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "core/log.h"
#include "core/profile.h"

#define PROFILE_DEPTH 32
#define PROFILE_SLOTS 4096	/* distinct stacks kept per thread */

struct stack_slot {
	uint64_t hash;
	uint32_t count;
	uint8_t depth;
	void *pc[PROFILE_DEPTH];
};

struct thread_profile {
	char name[32];
	timer_t timer;
	struct stack_slot *slots;
	uint64_t dropped;
};

static bool enabled;
static __thread struct thread_profile *self;

bool profile_enabled(void)
{
	return __atomic_load_n(&enabled, __ATOMIC_RELAXED);
}

void profile_set_enabled(bool on)
{
	__atomic_store_n(&enabled, on, __ATOMIC_RELAXED);
}

void profile_reset_after_fork(void)
{
	/* The parent's timer did not come along; its samples are not ours. */
	self = NULL;
}

void mg_profiling_enable(bool on)
{
	profile_set_enabled(on);
}

static void on_sigprof(int sig, siginfo_t *si, void *uc)
{
	struct thread_profile *p = self;
	void *pc[PROFILE_DEPTH + 2];
	uint64_t h = 1469598103934665603ull;
	int n, saved = errno;

	if (!p)
		return;
	/* Skip this handler and the signal trampoline. */
	n = backtrace(pc, PROFILE_DEPTH + 2) - 2;
	if (n <= 0)
		goto out;
	for (int i = 0; i < n; i++)
		h = (h ^ (uint64_t)(uintptr_t)pc[i + 2]) * 1099511628211ull;
	for (unsigned i = 0; i < PROFILE_SLOTS; i++) {
		struct stack_slot *s = &p->slots[(h + i) % PROFILE_SLOTS];

		if (s->count && s->hash == h && s->depth == n) {
			s->count++;
			goto out;
		}
		if (!s->count) {
			s->hash = h;
			s->depth = (uint8_t)n;
			memcpy(s->pc, pc + 2, (size_t)n * sizeof(void *));
			s->count = 1;
			goto out;
		}
	}
	p->dropped++;
out:
	errno = saved;
}

void profile_thread_start(const char *name)
{
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGPROF };
	struct itimerspec its = { .it_interval = { 0, 1000000 }, .it_value = { 0, 1000000 } };
	struct sigaction sa = { .sa_sigaction = on_sigprof, .sa_flags = SA_SIGINFO | SA_RESTART };
	struct thread_profile *p;
	void *prime[2];

	if (!profile_enabled() || self)
		return;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->slots = calloc(PROFILE_SLOTS, sizeof(*p->slots)))) {
		free(p);
		return;
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	backtrace(prime, 2);	/* loads the unwinder now, not in the handler */
	sigaction(SIGPROF, &sa, NULL);
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &p->timer) < 0) {
		LOG_WARN("profiling: timer_create: %s", strerror(errno));
		free(p->slots);
		free(p);
		return;
	}
	self = p;
	timer_settime(p->timer, 0, &its, NULL);
}

/* --- naming frames from the executable's symbol table ------------------- */

struct sym {
	uintptr_t addr;
	uintptr_t size;
	const char *name;
};

struct symtab {
	void *map;
	size_t maplen;
	struct sym *syms;
	size_t n;
	uintptr_t base;		/* load bias of the executable */
};

static int sym_cmp(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int find_base(struct dl_phdr_info *info, size_t size, void *data)
{
	*(uintptr_t *)data = info->dlpi_addr;
	return 1;	/* the first entry is the executable */
}

static void symtab_load(struct symtab *t)
{
	struct stat st;
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	const Elf64_Ehdr *eh;
	const Elf64_Shdr *sh;

	memset(t, 0, sizeof(*t));
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof(Elf64_Ehdr))
		t->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (!t->map || t->map == MAP_FAILED) {
		t->map = NULL;
		return;
	}
	t->maplen = (size_t)st.st_size;
	eh = t->map;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shoff + (size_t)eh->e_shnum * sizeof(*sh) > t->maplen)
		return;
	sh = (const Elf64_Shdr *)((const char *)t->map + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const Elf64_Sym *s;
		const char *str;
		size_t n;

		if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum ||
		    sh[i].sh_offset + sh[i].sh_size > t->maplen ||
		    sh[sh[i].sh_link].sh_offset + sh[sh[i].sh_link].sh_size > t->maplen)
			continue;
		s = (const Elf64_Sym *)((const char *)t->map + sh[i].sh_offset);
		str = (const char *)t->map + sh[sh[i].sh_link].sh_offset;
		n = sh[i].sh_size / sizeof(*s);
		t->syms = calloc(n, sizeof(*t->syms));
		if (!t->syms)
			return;
		for (size_t k = 0; k < n; k++) {
			if (ELF64_ST_TYPE(s[k].st_info) != STT_FUNC || !s[k].st_value ||
			    s[k].st_name >= sh[sh[i].sh_link].sh_size)
				continue;
			t->syms[t->n].addr = s[k].st_value;
			t->syms[t->n].size = s[k].st_size;
			t->syms[t->n].name = str + s[k].st_name;
			t->n++;
		}
		qsort(t->syms, t->n, sizeof(*t->syms), sym_cmp);
		break;
	}
	dl_iterate_phdr(find_base, &t->base);
}

static const char *symtab_name(const struct symtab *t, uintptr_t pc)
{
	size_t lo = 0, hi = t->n;

	pc -= t->base;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (t->syms[mid].addr <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo && pc < t->syms[lo - 1].addr + (t->syms[lo - 1].size ? t->syms[lo - 1].size
								    : 4096))
		return t->syms[lo - 1].name;
	return NULL;
}

void profile_thread_stop(void)
{
	struct thread_profile *p = self;
	struct symtab t;
	char dir[PATH_MAX], file[96], why[PATH_MAX + 128];
	FILE *f;
	int dfd, fd;

	if (!p)
		return;
	timer_delete(p->timer);
	self = NULL;
	snprintf(file, sizeof(file), "mitogen.stats.%d.%s.folded", (int)getpid(), p->name);
	dfd = log_private_dir(dir, sizeof(dir), why, sizeof(why));
	fd = dfd < 0 ? dfd : log_private_create(dfd, dir, file, why, sizeof(why));
	if (dfd >= 0)
		close(dfd);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0) {
			snprintf(why, sizeof(why), "%s/%s: %s", dir, file, strerror(errno));
			close(fd);
		}
		LOG_WARN("profiling: %s not written: %s", file, why);
		goto out;
	}
	symtab_load(&t);
	for (unsigned i = 0; i < PROFILE_SLOTS; i++) {
		struct stack_slot *s = &p->slots[i];

		if (!s->count)
			continue;
		fprintf(f, "%s", p->name);
		for (int d = s->depth - 1; d >= 0; d--) {
			const char *name = symtab_name(&t, (uintptr_t)s->pc[d]);

			if (name)
				fprintf(f, ";%s", name);
			else
				fprintf(f, ";%p", s->pc[d]);
		}
		fprintf(f, " %u\n", s->count);
	}
	if (p->dropped)
		fprintf(f, "%s;[stacks not kept] %llu\n", p->name, (unsigned long long)p->dropped);
	fclose(f);
	free(t.syms);
	if (t.map)
		munmap(t.map, t.maplen);
	LOG_DEBUG("profile written to %s/%s", dir, file);
out:
	free(p->slots);
	free(p);
}
