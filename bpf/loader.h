/* SPDX-License-Identifier: MIT */
/*
 * loader.h — kernel assistance for child channels (bpf/loader.c): loads
 * bpf/channel.bpf.c once per process, pins its maps, attaches and locks
 * the filter on both ends of each new channel, keeps the maps in step
 * with the router's routes, reads denial events on the broker thread.
 */
#ifndef BPF_LOADER_H
#define BPF_LOADER_H

#include <stdbool.h>
#include <stddef.h>

/* Install the router hooks (core/hooks.h). Idempotent, any thread. */
void bpfload_register(void);
/*
 * Turn the filters off (or on again) for channels made from now on; the
 * environment variable MITOGEN_BPF=0 starts with them off. For tests and
 * the bench (eBPF on and off in one run).
 */
void bpfload_set_enabled(bool on);
/* True once the programs are loaded in this process. */
bool bpfload_active(void);
/* Where this process pins its maps ("" when nowhere). */
const char *bpfload_pin_path(void);
/* Why the filters are off ("" when on or never tried). */
const char *bpfload_off_reason(void);

struct mgb_chan;
/*
 * Read the chans entry (bpf/shared.h) of the socket whose SO_COOKIE is
 * cookie from map fd (this process's or a pinned one): the settings, and
 * the counts summed over every CPU's copy. 0 or -errno (-ENOENT: none).
 */
int bpfload_chan_read(int fd, unsigned long long cookie, struct mgb_chan *ret);

/* libbpf's messages go to the library's log (debug), not stderr. */
void bpfload_libbpf_log(void);

/* Per-tenant cgroup programs (bpf/tenant.c). */
struct bpf_tenant;

/* Socket families a tenant may not open (mask of these bits). */
#define BPF_TENANT_NO_INET	0x1	/* AF_INET, AF_INET6 */
#define BPF_TENANT_NO_NETLINK	0x2	/* AF_NETLINK */
#define BPF_TENANT_NO_PACKET	0x4	/* AF_PACKET */

/*
 * Attach the tenant programs to the cgroup v2 directory cgdir: a
 * cgroup/sock_create program refusing the families in deny (EPERM to the
 * caller of socket()), and cgroup_skb ingress/egress byte counters. The
 * counters map is pinned at MGB_PIN_ROOT/tenant/<name>/counts. Returns the
 * tenant (freed with bpf_tenant_free(), which detaches), or NULL with
 * errno set and why[] filled (no cgroup v2, no CAP_BPF, ...).
 */
struct bpf_tenant *bpf_tenant_attach(const char *name, const char *cgdir, unsigned deny,
				     char *why, size_t why_size);
/* Bytes and packets [0] in, [1] out; sockets refused. 0 or -errno. */
int bpf_tenant_counts(struct bpf_tenant *t, unsigned long long bytes[2],
		      unsigned long long packets[2], unsigned long long *denied);
void bpf_tenant_free(struct bpf_tenant *t);
/*
 * The sandbox's tenant_deny: attach the tenant programs to cgdir once per
 * tenant name for this process's life (the same name again is a no-op;
 * with another deny mask, -EEXIST). 0 or -errno with why[] filled.
 */
int bpf_tenant_ensure(const char *name, const char *cgdir, unsigned deny, char *why,
		      size_t why_size);

#endif
