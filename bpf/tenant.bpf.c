// SPDX-License-Identifier: MIT
/*
 * tenant.bpf.c — programs for one tenant's cgroup v2 directory (DESIGN §6):
 * cgroup/sock_create refuses the inet families the tenant may not open
 * (socket() fails with EPERM), cgroup_skb ingress/egress count the
 * tenant's network bytes and packets. One instance per tenant: the deny
 * mask is read-only data set before loading (bpf/tenant.c).
 *
 * cgroup/sock_create only runs for AF_INET and AF_INET6 (inet_create,
 * inet6_create; checked on 6.18: a netlink socket passes it untouched).
 * Netlink and packet sockets are refused by lsm_cgroup/socket_create
 * instead: the BPF LSM attached per cgroup (kernel 6.0+, BPF LSM active),
 * which sees every family; bpf/tenant.c loads it only when the tenant's
 * mask needs it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/shared.h"

#define AF_INET		2
#define AF_INET6	10
#define AF_NETLINK	16
#define AF_PACKET	17

/* BPF_TENANT_NO_* of bpf/loader.h */
#define NO_INET		0x1
#define NO_NETLINK	0x2
#define NO_PACKET	0x4

const volatile __u32 deny_mask = 0;

/* [0] ingress, [1] egress (and denied sockets in [0]). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct mgb_tenant_counts);
} counts SEC(".maps");

static __always_inline bool denied(__u32 fam)
{
	return ((deny_mask & NO_INET) && (fam == AF_INET || fam == AF_INET6)) ||
	       ((deny_mask & NO_NETLINK) && fam == AF_NETLINK) ||
	       ((deny_mask & NO_PACKET) && fam == AF_PACKET);
}

SEC("cgroup/sock_create")
int mg_tenant_sock(struct bpf_sock *sk)
{
	__u32 fam = sk->family, key = 0;
	struct mgb_tenant_counts *c;

	if (denied(fam)) {
		c = bpf_map_lookup_elem(&counts, &key);
		if (c)
			__sync_fetch_and_add(&c->denied_sockets, 1);
		return 0;
	}
	return 1;
}

SEC("lsm_cgroup/socket_create")
int BPF_PROG(mg_tenant_lsm, int family, int type, int protocol, int kern)
{
	__u32 key = 0;
	struct mgb_tenant_counts *c;

	/* Sockets the kernel makes for itself are not the tenant's. */
	if (kern || !denied((__u32)family) || family == AF_INET || family == AF_INET6)
		return 1;
	c = bpf_map_lookup_elem(&counts, &key);
	if (c)
		__sync_fetch_and_add(&c->denied_sockets, 1);
	return 0;
}

static __always_inline int account(struct __sk_buff *skb, __u32 key)
{
	struct mgb_tenant_counts *c = bpf_map_lookup_elem(&counts, &key);

	if (c) {
		__sync_fetch_and_add(&c->bytes, skb->len);
		__sync_fetch_and_add(&c->packets, 1);
	}
	return 1;
}

SEC("cgroup_skb/ingress")
int mg_tenant_in(struct __sk_buff *skb)
{
	return account(skb, 0);
}

SEC("cgroup_skb/egress")
int mg_tenant_out(struct __sk_buff *skb)
{
	return account(skb, 1);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
