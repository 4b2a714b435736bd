// SPDX-License-Identifier: MIT
/*
 * tenant.c — a tenant's cgroup v2 programs (bpf/tenant.bpf.c): load one
 * instance with the tenant's deny mask, attach it to the tenant's cgroup
 * directory through bpf links (they go when the tenant is freed or this
 * process exits), pin its counters at MGB_PIN_ROOT/tenant-<name>/counts.
 * The directory itself (sandbox/cgroup.c: <cgroup2 root>/mitogen/<tenant>)
 * is made and filled by the caller.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/loader.h"
#include "bpf/shared.h"
#include "tenant.skel.h"

#define NPROGS 4

struct bpf_tenant {
	struct tenant_bpf *skel;
	struct bpf_link *links[NPROGS];
	char pin[160];
};

static void say(char *why, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (!why || !size)
		return;
	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
}

/* The tenant programs load without the LSM one: it alone is refused. */
static bool lsm_refused(void)
{
	struct tenant_bpf *s = tenant_bpf__open();
	bool ok;

	if (!s)
		return false;
	bpf_program__set_autoload(s->progs.mg_tenant_lsm, false);
	ok = tenant_bpf__load(s) == 0;
	tenant_bpf__destroy(s);
	return ok;
}

struct bpf_tenant *bpf_tenant_attach(const char *name, const char *cgdir, unsigned deny,
				     char *why, size_t why_size)
{
	struct bpf_program *progs[NPROGS];
	bool lsm = deny & (BPF_TENANT_NO_NETLINK | BPF_TENANT_NO_PACKET);
	struct bpf_tenant *t = NULL;
	struct statfs sf;
	char p[224];
	int cg = -1, e;

	if (!name || !*name || strchr(name, '/') || strlen(name) > 64 || !cgdir ||
	    (deny & ~(BPF_TENANT_NO_INET | BPF_TENANT_NO_NETLINK | BPF_TENANT_NO_PACKET))) {
		say(why, why_size, "invalid tenant name, cgroup directory or deny mask");
		errno = EINVAL;
		return NULL;
	}
	if (statfs(cgdir, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC) {
		e = errno ? errno : ENOTSUP;
		say(why, why_size, "no cgroup v2 at %s", cgdir);
		errno = e == ENOENT ? ENOENT : EOPNOTSUPP;
		return NULL;
	}
	cg = open(cgdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		e = errno;
		say(why, why_size, "%s: %s", cgdir, strerror(e));
		errno = e;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		e = ENOMEM;
		goto fail;
	}
	bpfload_libbpf_log();
	t->skel = tenant_bpf__open();
	if (!t->skel) {
		e = errno;
		say(why, why_size, "cannot open the tenant programs: %s", strerror(e));
		goto fail;
	}
	t->skel->rodata->deny_mask = deny;
	bpf_program__set_autoload(t->skel->progs.mg_tenant_lsm, lsm);
	if (tenant_bpf__load(t->skel) < 0) {
		e = errno;
		if (lsm && lsm_refused()) {
			/* Fail closed: the policy asked for cannot be enforced. */
			say(why, why_size, "the kernel refuses the BPF LSM program "
			    "lsm_cgroup/socket_create that refuses netlink and packet "
			    "sockets (%s; it needs kernel 6.0+ with bpf in lsm=, and no "
			    "lockdown of BPF LSM)", strerror(e));
		} else if (e == EPERM || e == EACCES)
			say(why, why_size, "no CAP_BPF/CAP_SYS_ADMIN to load the tenant "
			    "programs: %s", strerror(e));
		else
			say(why, why_size, "cannot load the tenant programs: %s", strerror(e));
		goto fail;
	}
	progs[0] = t->skel->progs.mg_tenant_sock;
	progs[1] = t->skel->progs.mg_tenant_in;
	progs[2] = t->skel->progs.mg_tenant_out;
	progs[3] = lsm ? t->skel->progs.mg_tenant_lsm : NULL;
	for (int i = 0; i < NPROGS; i++) {
		if (!progs[i])
			continue;
		t->links[i] = bpf_program__attach_cgroup(progs[i], cg);
		if (!t->links[i]) {
			e = errno;
			/* Fail closed: the policy asked for cannot be enforced. */
			say(why, why_size, "cannot attach %s to %s: %s%s",
			    bpf_program__section_name(progs[i]), cgdir, strerror(e),
			    i == 3 ? " (refusing netlink/packet sockets needs the BPF LSM: "
				     "kernel 6.0+ booted with bpf in lsm=)" : "");
			goto fail;
		}
	}
	close(cg);
	cg = -1;
	/* Pinned for bpftool and `mitogen stats`; not fatal when it fails. */
	mkdir("/sys/fs/bpf/mitogen", 0700);
	snprintf(t->pin, sizeof(t->pin), MGB_PIN_ROOT "/tenant-%s", name);
	mkdir(t->pin, 0700);
	snprintf(p, sizeof(p), "%s/counts", t->pin);
	unlink(p);
	if (bpf_map__pin(t->skel->maps.counts, p) < 0) {
		rmdir(t->pin);
		t->pin[0] = '\0';
	}
	return t;

fail:
	if (cg >= 0)
		close(cg);
	bpf_tenant_free(t);
	errno = e;
	return NULL;
}

int bpf_tenant_counts(struct bpf_tenant *t, unsigned long long bytes[2],
		      unsigned long long packets[2], unsigned long long *denied)
{
	struct mgb_tenant_counts c;
	int fd;

	if (!t)
		return -EINVAL;
	fd = bpf_map__fd(t->skel->maps.counts);
	for (__u32 k = 0; k < 2; k++) {
		if (bpf_map_lookup_elem(fd, &k, &c) < 0)
			return -errno;
		if (bytes)
			bytes[k] = c.bytes;
		if (packets)
			packets[k] = c.packets;
		if (denied && k == 0)
			*denied = c.denied_sockets;
	}
	return 0;
}

void bpf_tenant_free(struct bpf_tenant *t)
{
	char p[224];

	if (!t)
		return;
	for (int i = 0; i < NPROGS; i++)
		bpf_link__destroy(t->links[i]);
	if (t->pin[0]) {
		snprintf(p, sizeof(p), "%s/counts", t->pin);
		unlink(p);
		rmdir(t->pin);
	}
	tenant_bpf__destroy(t->skel);
	free(t);
}

/* Tenants this process attached, kept until it exits. */
static struct tenant_reg {
	char name[65];
	unsigned deny;
	struct bpf_tenant *t;
	struct tenant_reg *next;
} *tenants;
static pthread_mutex_t tenants_lock = PTHREAD_MUTEX_INITIALIZER;

static void tenants_free(void)
{
	struct tenant_reg *g, *next;

	pthread_mutex_lock(&tenants_lock);
	for (g = tenants; g; g = next) {
		next = g->next;
		bpf_tenant_free(g->t);
		free(g);
	}
	tenants = NULL;
	pthread_mutex_unlock(&tenants_lock);
}

int bpf_tenant_ensure(const char *name, const char *cgdir, unsigned deny, char *why,
		      size_t why_size)
{
	static bool atexit_set;
	struct tenant_reg *g;
	int ret = 0;

	pthread_mutex_lock(&tenants_lock);
	for (g = tenants; g; g = g->next)
		if (!strcmp(g->name, name))
			break;
	if (g) {
		if (g->deny != deny) {
			say(why, why_size, "tenant %s already refuses families 0x%x here, not 0x%x",
			    name, g->deny, deny);
			ret = -EEXIST;
		}
		goto out;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		ret = -ENOMEM;
		goto out;
	}
	g->t = bpf_tenant_attach(name, cgdir, deny, why, why_size);
	if (!g->t) {
		ret = errno ? -errno : -EIO;
		free(g);
		goto out;
	}
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->deny = deny;
	g->next = tenants;
	tenants = g;
	if (!atexit_set)
		atexit_set = atexit(tenants_free) == 0;
out:
	pthread_mutex_unlock(&tenants_lock);
	return ret;
}
