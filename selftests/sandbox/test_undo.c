// SPDX-License-Identifier: MIT
/*
 * test_undo.c — a sandboxed child cannot undo its sandbox: locked
 * securebits cannot be cleared and programs it runs as root get no
 * capabilities; a setuid-root program run after dropping to another uid
 * gains nothing (no_new_privs); installing a permissive seccomp filter
 * loosens nothing (filters stack) and under "strict" seccomp() itself is
 * refused; a second Landlock ruleset cannot widen the first. Each test
 * also shows the same step working without the sandbox part, so none can
 * pass by accident.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

#include "selftests/lib/harness.h"
#include "selftests/lib/probes.h"

/* --- functions the children run ------------------------------------------ */

/* securebits_undo() -> [securebits, errno of clearing them, errno of
 * raising cap_net_bind_service into the ambient set] */
static int securebits_undo(struct mg_call *call, const struct mg_value *args,
			   struct mg_value **ret)
{
	int bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0), e1 = 0, e2 = 0;

	if (prctl(PR_SET_SECUREBITS, 0, 0, 0, 0) < 0)
		e1 = errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 10 /* net_bind_service */, 0, 0) < 0)
		e2 = errno;
	*ret = mg_value_build("iii", bits, e1, e2);
	return 0;
}
MG_EXPORT(securebits_undo);

/* allow_all_filter() -> errno of installing an allow-everything filter, or 0 */
static int allow_all_filter(struct mg_call *call, const struct mg_value *args,
			    struct mg_value **ret)
{
	struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { .len = 1, .filter = &allow };
	int e = 0;

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		e = errno;
	*ret = mg_int(e);
	return e == EPERM ? mg_call_fail(call, e, "seccomp: %s", strerror(e)) : 0;
}
MG_EXPORT(allow_all_filter);

/* try_mount() -> 0 or the mount failure */
static int try_mount(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	if (mount("none", "/nonexistent-mg-undo", "mg-no-such-fs", 0, NULL) < 0)
		return mg_call_fail(call, errno, "mount: %s", strerror(errno));
	return 0;
}
MG_EXPORT(try_mount);

/* landlock_widen() -> errno of restricting with an allow-all ruleset, or 0 */
static int landlock_widen(struct mg_call *call, const struct mg_value *args,
			  struct mg_value **ret)
{
	struct landlock_ruleset_attr attr = {
		.handled_access_fs = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE,
	};
	struct landlock_path_beneath_attr pb = { .allowed_access = attr.handled_access_fs };
	int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0), e = 0;

	pb.parent_fd = open("/", O_PATH | O_CLOEXEC);
	if (fd < 0 || pb.parent_fd < 0 ||
	    syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0 ||
	    syscall(SYS_landlock_restrict_self, fd, 0) < 0)
		e = errno;
	if (pb.parent_fd >= 0)
		close(pb.parent_fd);
	if (fd >= 0)
		close(fd);
	*ret = mg_int(e);
	return 0;
}
MG_EXPORT(landlock_widen);

/* --- helpers ---------------------------------------------------------------- */

static struct mg_router *router;
static char tmpdir[PATH_MAX - 64];

static int setup(void **state)
{
	mg_test_tmpdir(tmpdir, sizeof(tmpdir), "mg-undo");
	assert_int_equal(chmod(tmpdir, 0755), 0);
	router = mg_router_new(NULL);
	assert_non_null(router);
	return 0;
}

static int teardown(void **state)
{
	mg_router_unref(router);
	return mg_test_rm_rf(tmpdir);
}

static bool root_with_caps(void)
{
	if (geteuid() == 0 && prctl(PR_CAPBSET_READ, 8 /* CAP_SETPCAP */, 0, 0, 0) == 1)
		return true;
	print_message("# skip: needs root with CAP_SETPCAP\n");
	return false;
}

/* Run argv in ctx; the value of "Key:" in its stdout (a status file). */
static void run_status(struct mg_context *ctx, struct mg_value *argv, char out[][64],
		       const char *const *keys, size_t nkeys)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;
	const struct mg_value *so;

	if (mg_call(ctx, "mg.run", MG_LIST(argv), &res, &err) < 0)
		fail_msg("mg.run: %s", err.message);
	so = mg_map_get(res, "stdout");
	if (mg_map_get(res, "status")->i != 0)
		fail_msg("mg.run: status %lld: %.*s", (long long)mg_map_get(res, "status")->i,
			 (int)mg_map_get(res, "stderr")->len,
			 (const char *)mg_map_get(res, "stderr")->bytes);
	for (size_t k = 0; k < nkeys; k++) {
		char needle[32];
		const char *p;

		snprintf(needle, sizeof(needle), "\n%s", keys[k]);
		p = memmem(so->bytes, so->len, needle, strlen(needle));
		assert_non_null(p);
		p += strlen(needle);
		sscanf(p, " %63[^\n]", out[k]);
	}
	mg_value_free(res);
}

/* --- tests -------------------------------------------------------------------- */

static void test_securebits_locked(void **state)
{
	static const char *const keys[] = { "CapPrm:", "CapEff:", "NoNewPrivs:" };
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .caps = "cap_net_bind_service",
				      .lock_securebits = true };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;
	struct mg_context *ctx;
	char out[3][64];

	if (!root_with_caps()) {
		skip();
		return;
	}
	ctx = mg_test_start_ok(router, &sb, NULL);
	assert_int_equal(mg_call(ctx, "securebits_undo", NULL, &res, &err), 0);
	assert_int_equal(res->items[0].i, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
			 SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED |
			 SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
			 SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED);
	assert_int_equal(res->items[1].i, EPERM);	/* cannot clear */
	assert_int_equal(res->items[2].i, EPERM);	/* no ambient raise */
	mg_value_free(res);
	/* A program it runs as root gets no capabilities (noroot). */
	run_status(ctx, MG_LIST(mg_str("/bin/cat"), mg_str("/proc/self/status")), out, keys, 3);
	assert_string_equal(out[0], "0000000000000000");
	assert_string_equal(out[1], "0000000000000000");
	assert_string_equal(out[2], "1");
	mg_test_stop(ctx);

	/* Without the lock, root's exec keeps what the bounding set allows. */
	sb.lock_securebits = false;
	ctx = mg_test_start_ok(router, &sb, NULL);
	run_status(ctx, MG_LIST(mg_str("/bin/cat"), mg_str("/proc/self/status")), out, keys, 3);
	assert_string_equal(out[0], "0000000000000400");	/* cap_net_bind_service */
	mg_test_stop(ctx);
}

static void test_setuid_gains_nothing(void **state)
{
	static const char *const keys[] = { "Uid:", "CapEff:" };
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .caps = "cap_setuid,cap_setgid" };
	char suid[PATH_MAX], cmd[PATH_MAX * 2 + 64], out[2][64];
	struct mg_context *ctx;
	struct mg_value *argv;

	if (!root_with_caps()) {
		skip();
		return;
	}
	/* A setuid-root cat. */
	snprintf(suid, sizeof(suid), "%s/suid-cat", tmpdir);
	snprintf(cmd, sizeof(cmd), "cp /bin/cat '%s' && chmod 4755 '%s'", suid, suid);
	assert_int_equal(system(cmd), 0);
	ctx = mg_test_start_ok(router, &sb, NULL);
	/* Become uid 65534, then exec the setuid-root program. */
	argv = MG_LIST(mg_str("/usr/bin/setpriv"), mg_str("--reuid=65534"),
		       mg_str("--regid=65534"), mg_str("--clear-groups"), mg_str(suid),
		       mg_str("/proc/self/status"));
	run_status(ctx, argv, out, keys, 2);
	assert_string_equal(out[0], "65534\t65534\t65534\t65534");	/* not root */
	assert_string_equal(out[1], "0000000000000000");
	mg_test_stop(ctx);

	/* Sanity: outside a sandbox the same exec does make it root (unless
	 * the directory is on a nosuid mount). */
	{
		struct statvfs vfs;

		if (statvfs(tmpdir, &vfs) == 0 && (vfs.f_flag & ST_NOSUID)) {
			print_message("# %s is nosuid: no unsandboxed comparison\n", tmpdir);
			return;
		}
	}
	ctx = mg_test_start_ok(router, NULL, NULL);
	argv = MG_LIST(mg_str("/usr/bin/setpriv"), mg_str("--reuid=65534"),
		       mg_str("--regid=65534"), mg_str("--clear-groups"), mg_str(suid),
		       mg_str("/proc/self/status"));
	{
		struct mg_error err = MG_ERROR_INIT;
		struct mg_value *res = NULL;
		const struct mg_value *so;

		assert_int_equal(mg_call(ctx, "mg.run", MG_LIST(argv), &res, &err), 0);
		so = mg_map_get(res, "stdout");
		/* "Uid: 65534 0 0 0": effective uid 0 */
		assert_non_null(memmem(so->bytes, so->len, "Uid:\t65534\t0\t", 13));
		mg_value_free(res);
	}
	mg_test_stop(ctx);
}

static void test_seccomp_reinstall(void **state)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = "default" };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;
	struct mg_context *ctx = mg_test_start_ok(router, &sb, NULL);

	/* The default profile lets it add a filter: that changes nothing. */
	assert_int_equal(mg_call(ctx, "allow_all_filter", NULL, &res, &err), 0);
	assert_int_equal(res->i, 0);
	mg_value_free(res);
	assert_int_equal(mg_call(ctx, "try_mount", NULL, NULL, &err), -EREMOTEIO);
	assert_non_null(strstr(err.message, "blocked by seccomp (profile default): mount"));
	mg_test_stop(ctx);

	/* strict: seccomp() itself is refused. */
	sb.seccomp = "strict";
	ctx = mg_test_start_ok(router, &sb, NULL);
	mg_error_clear(&err);
	assert_int_equal(mg_call(ctx, "allow_all_filter", NULL, NULL, &err), -EREMOTEIO);
	if (!strstr(err.message, "blocked by seccomp (profile strict): seccomp"))
		print_error("%s\n", err.message);
	assert_non_null(strstr(err.message, "blocked by seccomp (profile strict): seccomp"));
	mg_test_stop(ctx);
}

static void test_landlock_no_widen(void **state)
{
	const char *ro[] = { tmpdir, NULL };
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .ro = ro };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;
	struct mg_context *ctx;

	if (syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) < 0) {
		print_message("# skip: no Landlock in this kernel\n");
		skip();
		return;
	}
	ctx = mg_test_start_ok(router, &sb, NULL);
	assert_int_equal(mg_call(ctx, "landlock_widen", NULL, &res, &err), 0);
	assert_int_equal(res->i, 0);	/* allowed: it only adds a layer */
	mg_value_free(res);
	assert_int_equal(mg_call(ctx, "mg.read_file", MG_LIST(mg_str("/etc/hostname")), NULL,
				 &err), -EREMOTEIO);
	assert_non_null(strstr(err.message, "denied by landlock: /etc/hostname"));
	mg_test_stop(ctx);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_securebits_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setuid_gains_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seccomp_reinstall, setup, teardown),
		cmocka_unit_test_setup_teardown(test_landlock_no_widen, setup, teardown),
	};
	return MG_TEST_RUN("sandbox/undo", tests);
}
