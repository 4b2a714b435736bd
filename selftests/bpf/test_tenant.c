// SPDX-License-Identifier: MIT
/*
 * selftests/bpf/test_tenant.c: tenant cgroup programs in the kernel. Two
 * tenant directories under <cgroup2>/mitogen/ (the sandbox's convention):
 * a process of the no-inet tenant cannot open AF_INET or AF_INET6 sockets
 * (EPERM) but can open AF_UNIX; a process of the other tenant can, and its
 * UDP traffic over 127.0.0.1 moves that tenant's byte and packet counters,
 * in and out, and not the first tenant's. A third tenant denied netlink
 * and packet sockets needs the BPF LSM (lsm_cgroup): where the kernel
 * refuses it, attaching fails closed with the reason, and the test skips.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "selftests/lib/harness.h"
#include "bpf/loader.h"

static char root[256];
static char dir_a[320], dir_b[320];
static struct bpf_tenant *ta, *tb;

static bool find_cgroup2(void)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char dev[64], mnt[256], type[64];
	bool found = false;

	if (!f)
		return false;
	while (!found && fscanf(f, "%63s %255s %63s %*[^\n]", dev, mnt, type) == 3)
		if (!strcmp(type, "cgroup2")) {
			snprintf(root, sizeof(root), "%s", mnt);
			found = true;
		}
	fclose(f);
	return found;
}

static int setup(void **state)
{
	char why[256], base[300];

	if (!find_cgroup2()) {
		fprintf(stderr, "# no cgroup v2 mounted\n");
		return 0;
	}
	snprintf(base, sizeof(base), "%s/mitogen", root);
	mkdir(base, 0755);
	snprintf(dir_a, sizeof(dir_a), "%s/bpft-a-%d", base, (int)getpid());
	snprintf(dir_b, sizeof(dir_b), "%s/bpft-b-%d", base, (int)getpid());
	if (mkdir(dir_a, 0755) < 0 || mkdir(dir_b, 0755) < 0) {
		fprintf(stderr, "# mkdir %s: %s\n", dir_a, strerror(errno));
		return 0;
	}
	ta = bpf_tenant_attach("bpft-a", dir_a, BPF_TENANT_NO_INET, why, sizeof(why));
	if (!ta)
		fprintf(stderr, "# tenant a: %s\n", why);
	tb = bpf_tenant_attach("bpft-b", dir_b, 0, why, sizeof(why));
	if (!tb)
		fprintf(stderr, "# tenant b: %s\n", why);
	return 0;
}

static int teardown(void **state)
{
	bpf_tenant_free(ta);
	bpf_tenant_free(tb);
	if (dir_a[0])
		rmdir(dir_a);
	if (dir_b[0])
		rmdir(dir_b);
	return 0;
}

static void need_tenants(void)
{
	if (!ta || !tb) {
		fprintf(stderr, "# SKIP: tenant programs could not be attached (see above)\n");
		skip();
	}
}

static void enter(const char *dir)
{
	char p[400];
	FILE *f;

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	f = fopen(p, "w");
	if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
		abort();
}

static int sock_errno(int family, int type)
{
	int fd = socket(family, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* In a child context: errno of socket(AF_INET, SOCK_DGRAM) (0: it worked). */
static int inet_errno(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	*ret = mg_int(sock_errno(AF_INET, SOCK_DGRAM));
	return 0;
}
MG_EXPORT(inet_errno);

static void in_tenant_a(void *arg)
{
	enter(dir_a);
	assert_int_equal(sock_errno(AF_INET, SOCK_DGRAM), EPERM);
	assert_int_equal(sock_errno(AF_INET6, SOCK_STREAM), EPERM);
	assert_int_equal(sock_errno(AF_UNIX, SOCK_STREAM), 0);
	assert_int_equal(sock_errno(AF_NETLINK, SOCK_RAW), 0);
}

static char dir_c[320];

static void in_tenant_c(void *arg)
{
	enter(dir_c);
	assert_int_equal(sock_errno(AF_NETLINK, SOCK_RAW), EPERM);
	assert_int_equal(sock_errno(AF_PACKET, SOCK_DGRAM), EPERM);
	assert_int_equal(sock_errno(AF_INET, SOCK_DGRAM), 0);
	assert_int_equal(sock_errno(AF_UNIX, SOCK_STREAM), 0);
}

static void test_no_netlink_no_packet_tenant(void **state)
{
	struct bpf_tenant *tc;
	unsigned long long denied = 0;
	char why[256] = "";
	int status = 0;

	need_tenants();
	snprintf(dir_c, sizeof(dir_c), "%s/mitogen/bpft-c-%d", root, (int)getpid());
	assert_int_equal(mkdir(dir_c, 0755), 0);
	tc = bpf_tenant_attach("bpft-c", dir_c, BPF_TENANT_NO_NETLINK | BPF_TENANT_NO_PACKET,
			       why, sizeof(why));
	if (!tc) {
		rmdir(dir_c);
		/* Fails closed, saying why (here: the kernel refuses BPF LSM programs). */
		assert_non_null(strstr(why, "lsm_cgroup/socket_create"));
		fprintf(stderr, "# SKIP: %s\n", why);
		skip();
	}
	assert_int_equal(mg_test_in_child(in_tenant_c, NULL, 10, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(bpf_tenant_counts(tc, NULL, NULL, &denied), 0);
	assert_int_equal(denied, 2);
	bpf_tenant_free(tc);
	rmdir(dir_c);
}

/* 20 datagrams of 1000 bytes to ourselves over 127.0.0.1. */
static void in_tenant_b(void *arg)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	char buf[1000] = { 0 };
	int fd;

	enter(dir_b);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(sendto(fd, buf, sizeof(buf), 0, (struct sockaddr *)&a, len),
				 (ssize_t)sizeof(buf));
		assert_int_equal(recv(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	}
	close(fd);
}

static void test_no_inet_tenant_refused_other_allowed(void **state)
{
	unsigned long long denied = 0;
	int status = 0;

	need_tenants();
	assert_int_equal(mg_test_in_child(in_tenant_a, NULL, 10, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(bpf_tenant_counts(ta, NULL, NULL, &denied), 0);
	assert_int_equal(denied, 2);
	/* The other tenant may (in_tenant_b fails on any refused socket). */
	assert_int_equal(mg_test_in_child(in_tenant_b, NULL, 10, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(bpf_tenant_counts(tb, NULL, NULL, &denied), 0);
	assert_int_equal(denied, 0);
}

static void test_tenant_byte_counters_move(void **state)
{
	unsigned long long b0[2], p0[2], b1[2], p1[2], a0[2], a1[2];
	int status = 0;

	need_tenants();
	assert_int_equal(bpf_tenant_counts(tb, b0, p0, NULL), 0);
	assert_int_equal(bpf_tenant_counts(ta, a0, NULL, NULL), 0);
	assert_int_equal(mg_test_in_child(in_tenant_b, NULL, 10, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(bpf_tenant_counts(tb, b1, p1, NULL), 0);
	assert_int_equal(bpf_tenant_counts(ta, a1, NULL, NULL), 0);
	for (int d = 0; d < 2; d++) {
		/* 20 x (1000 bytes + UDP and IP headers), each way. */
		assert_true(b1[d] - b0[d] >= 20 * 1028);
		assert_true(b1[d] - b0[d] < 20 * 1028 + 4096);
		assert_true(p1[d] - p0[d] >= 20);
		assert_int_equal(a1[d], a0[d]);
	}
}

/*
 * The sandbox option end to end: a child of a tenant with tenant_deny =
 * MG_TENANT_NO_INET gets EPERM from the kernel's cgroup program (not a
 * seccomp trap: the call itself succeeds), a child of another tenant
 * opens its socket, and a second child of the first tenant is covered by
 * the policy already attached.
 */
static void test_sandbox_tenant_deny(void **state)
{
	struct mg_router *r = mg_router_new(NULL);
	struct mg_error err = MG_ERROR_INIT;
	char deny[32], allow[32];
	struct mg_value *v = NULL;

	need_tenants();
	snprintf(deny, sizeof(deny), "bpft-deny-%d", (int)getpid());
	snprintf(allow, sizeof(allow), "bpft-allow-%d", (int)getpid());
	for (int i = 0; i < 3; i++) {
		MG_OPTS(mg_sandbox_opts, sb, .tenant = i < 2 ? deny : allow,
			.tenant_deny = i < 2 ? MG_TENANT_NO_INET : 0);
		MG_OPTS(mg_local_opts, lo, .sandbox = &sb);
		struct mg_context *c = mg_local(r, &lo, &err);

		if (!c)
			fail_msg("start: %s", err.message);
		assert_int_equal(mg_call(c, "inet_errno", NULL, &v, &err), 0);
		assert_int_equal(v->i, i < 2 ? EPERM : 0);
		mg_value_free(v);
		v = NULL;
		mg_context_shutdown(c, true);
		mg_context_unref(c);
	}
	/* tenant_deny without a tenant is refused before anything starts */
	{
		MG_OPTS(mg_sandbox_opts, sb, .tenant_deny = MG_TENANT_NO_INET);
		MG_OPTS(mg_local_opts, lo, .sandbox = &sb);

		assert_null(mg_local(r, &lo, &err));
		assert_non_null(strstr(err.message, "tenant_deny needs a tenant"));
	}
	mg_router_unref(r);
}

static void test_bad_arguments(void **state)
{
	char why[128] = "";

	assert_null(bpf_tenant_attach("x/y", "/tmp", 0, why, sizeof(why)));
	assert_int_equal(errno, EINVAL);
	assert_null(bpf_tenant_attach("x", "/tmp", 0, why, sizeof(why)));
	assert_int_equal(errno, EOPNOTSUPP);
	assert_non_null(strstr(why, "no cgroup v2 at /tmp"));
	assert_null(bpf_tenant_attach("x", "/nonexistent/dir", 0, why, sizeof(why)));
	assert_int_equal(errno, ENOENT);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_inet_tenant_refused_other_allowed),
		cmocka_unit_test(test_tenant_byte_counters_move),
		cmocka_unit_test(test_no_netlink_no_packet_tenant),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_sandbox_tenant_deny),
	};
	int failed;

	setup(NULL);
	failed = MG_TEST_RUN("bpf/tenant", tests);
	teardown(NULL);
	return failed;
}
