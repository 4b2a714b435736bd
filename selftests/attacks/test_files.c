// SPDX-License-Identifier: MIT
/*
 * test_files.c — attacks on services and file transfers (issue 17).
 *
 *  - A context calls a parents-only service method in its sibling (no
 *    authority over it): refused, the method never runs.
 *  - A child asks the intermediate it was started through to start a
 *    context for it (mg.via.start, mg._proxy_start): refused.
 *  - A child asked to send a file (pull) answers with a path that escapes
 *    the destination root ("../"): refused, nothing written outside.
 *  - A symlink planted in a push's destination directory under the name a
 *    file is about to take: replaced as a name, never followed (the file
 *    it points at is unchanged).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <nettle/sha2.h>
#include <mitogen/mitogen.h>
#include <mitogen/service.h>

#include "selftests/lib/harness.h"

/* Paths here are a mkdtemp directory plus short names. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

/* --- run in the children ----------------------------------------------- */

static int64_t victim_value;

static int victim_set(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		      void *ud)
{
	__atomic_store_n(&victim_value, args->items[0].i, __ATOMIC_SEQ_CST);
	return 0;
}

static int victim_get(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		      void *ud)
{
	*ret = mg_int(__atomic_load_n(&victim_value, __ATOMIC_SEQ_CST));
	return 0;
}

static const struct mg_service_method victim_methods[] = {
	{ "set", victim_set, MG_SERVICE_PARENTS, "i" },
	{ "get", victim_get, MG_SERVICE_PARENTS, "" },
};

/* In the attacker: call victim.set(666) in context args[0]; returns the
 * error text, or "done" when the call went through. */
static int attack_sibling(struct mg_call *call, const struct mg_value *args,
			  struct mg_value **ret)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char buf[1400];
	int r;

	if (args->len != 1 || args->items[0].type != MG_INT)
		return mg_call_fail(call, EINVAL, "want an id");
	ctx = mg_router_context_by_id(mg_call_router(call), (uint32_t)args->items[0].i);
	if (!ctx)
		return mg_call_fail(call, errno, "context");
	r = mg_call_service(ctx, "victim", "set", MG_LIST(mg_int(666)), NULL, &err);
	mg_context_unref(ctx);
	*ret = r == 0 ? mg_str("done") : mg_str(mg_error_str(&err, buf, sizeof(buf)));
	return 0;
}
MG_EXPORT_AS("attack.sibling", attack_sibling);

/*
 * In the attacker, a context below args[0]: ask args[0] to start a
 * context for it, both ways the master asks an intermediate (the service
 * mg.via.start, the exported mg._proxy_start), with an id of its own.
 * Returns [service's answer, function's answer]: the error text, or
 * "done" when the start went through.
 */
static int attack_via_start(struct mg_call *call, const struct mg_value *args,
			    struct mg_value **ret)
{
	struct mg_router *r = mg_call_router(call);
	struct mg_context *ctx;
	char buf[1400];
	int id;

	if (args->len != 1 || args->items[0].type != MG_INT)
		return mg_call_fail(call, EINVAL, "want an id");
	ctx = mg_router_context_by_id(r, (uint32_t)args->items[0].i);
	id = mg_router_allocate_id(r);
	if (!ctx || id <= 0)
		return mg_call_fail(call, EIO, "context or id");
	*ret = mg_list();
	for (int way = 0; way < 2; way++) {
		struct mg_error err = MG_ERROR_INIT;
		struct mg_value *a = mg_value_build("slsdbb", "local", (int64_t)id,
						    way ? "evil-old" : "evil", 30.0, 0, 0);
		int rc = way ? mg_call(ctx, "mg._proxy_start", a, NULL, &err)
			     : mg_call_service(ctx, "mg.via", "start", a, NULL, &err);

		mg_list_append(*ret, mg_str(rc == 0 ? "done" : mg_error_str(&err, buf, sizeof(buf))));
	}
	mg_context_unref(ctx);
	return 0;
}
MG_EXPORT_AS("attack.via_start", attack_via_start);

/*
 * An evil "mg.files" (registered instead of the library's in a child
 * started with MG_TEST_EVIL_FILES=1): asked for a file, it announces a
 * tree whose second entry is "../../../escaped.txt" and sends its data.
 */
static const char evil_data[] = "written outside the destination\n";

static int evil_send(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		     void *ud)
{
	MG_OPTS(mg_receiver_opts, ro);
	struct mg_router *r = mg_call_router(call);
	uint32_t caller = mg_call_src_id(call), ctl = (uint32_t)args->items[2].i;
	struct mg_receiver *rx = mg_receiver_new(r, &ro);
	struct mg_value *man, *got = NULL;
	struct mg_message *m;
	struct sha256_ctx c;
	uint8_t sha[32];
	size_t len = sizeof(evil_data) - 1;

	sha256_init(&c);
	sha256_update(&c, len, (const uint8_t *)evil_data);
	sha256_digest(&c, 32, sha);
	man = MG_LIST(MG_LIST(mg_str("d"), mg_str(""), mg_int(0755), mg_int(0), mg_int(0),
			      mg_int(0), mg_int(0), mg_int(0), mg_nil(), mg_nil(), mg_nil()),
		      MG_LIST(mg_str("f"), mg_str("../../../escaped.txt"), mg_int(0644), mg_int(0),
			      mg_int(0), mg_int(0), mg_int(0), mg_int((int64_t)len), mg_nil(),
			      mg_bytes(sha, 32), mg_bytes(sha, 32)));
	m = mg_message_new(caller, ctl, MG_LIST(mg_str("m"), mg_int(mg_receiver_handle(rx)), man));
	mg_router_route(r, m);
	/* "r" (or a dead message: refused), then the data anyway. */
	if (mg_receiver_get_data(rx, 60, &got, NULL) == 0)
		mg_value_free(got);
	m = mg_message_new(caller, ctl, MG_LIST(mg_str("d"), mg_int(1), mg_int(0),
					       mg_bytes(evil_data, len)));
	mg_router_route(r, m);
	m = mg_message_new(caller, ctl, MG_LIST(mg_str("e")));
	mg_router_route(r, m);
	got = NULL;
	mg_receiver_get_data(rx, 5, &got, NULL);
	mg_value_free(got);
	mg_receiver_free(rx);
	return 0;
}

static const struct mg_service_method evil_methods[] = {
	{ "send", evil_send, MG_SERVICE_PARENTS, "sBi" },
};

/* --- tests --------------------------------------------------------------- */

static char tmpdir[PATH_MAX];

static struct mg_context *start(struct mg_router *r);

/* Deferred: the test's directory goes even when an assertion failed. */
static void remove_tmpdir(void *arg)
{
	char cmd[PATH_MAX + 16];

	if (!tmpdir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", tmpdir);
	tmpdir[0] = '\0';
}

static void make_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/mg-attack-files-XXXXXX", t && *t ? t : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
	mg_test_defer(remove_tmpdir, NULL);
}

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void read_text(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	buf[0] = '\0';
	if (fd < 0)
		return;
	r = read(fd, buf, n - 1);
	buf[r > 0 ? r : 0] = '\0';
	close(fd);
}

/* A source that names a path above its own directory in a pull. */
static void test_pull_escape(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = mg_router_new(NULL);
	const char *names[1] = { "evil" };
	struct mg_files_result res[1];
	struct mg_context *c;
	char destdir[PATH_MAX], p[PATH_MAX], buf[256];
	int ret;

	make_tmpdir();
	snprintf(destdir, sizeof(destdir), "%s/a/b/fetched", tmpdir);
	snprintf(p, sizeof(p), "%s/a", tmpdir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/a/b", tmpdir);
	mkdir(p, 0755);
	mkdir(destdir, 0755);
	setenv("MG_TEST_EVIL_FILES", "1", 1);
	c = start(r);
	unsetenv("MG_TEST_EVIL_FILES");
	ret = mg_files_pull(r, "tree", destdir, &c, names, 1, NULL, res, &err);
	print_message("# the pull: %s\n", res[0].error ? res[0].message : "done");
	/* Nothing above the destination. */
	for (int up = 0; up < 4; up++) {
		snprintf(p, sizeof(p), "%s/%sescaped.txt", up == 3 ? tmpdir : destdir,
			 up == 0 ? "evil/" : up == 1 ? "" : up == 2 ? "../" : "");
		read_text(p, buf, sizeof(buf));
		if (buf[0])
			print_message("# found %s: %s", p, buf);
		assert_int_equal(access(p, F_OK), -1);
	}
	snprintf(p, sizeof(p), "%s/a/escaped.txt", tmpdir);
	read_text(p, buf, sizeof(buf));
	if (buf[0])
		print_message("# found %s: %s", p, buf);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(ret, 1);
	assert_int_equal(res[0].error, -EPERM);
	assert_non_null(strstr(res[0].message, "leaves the destination"));
	mg_context_shutdown(c, true);
	mg_context_unref(c);
	mg_router_unref(r);
}

/*
 * Someone who can write the destination directory plants symlinks at
 * the name the file takes and at its temporary name (predictable from
 * the content's hash), both pointing at a file of the victim's.
 */
static void test_symlink_race(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = mg_router_new(NULL);
	static const char data[] = "the pushed file\n";
	struct mg_files_result res[1];
	struct mg_context *c;
	char src[PATH_MAX], victim[PATH_MAX], dir[PATH_MAX], p[PATH_MAX], buf[256], hex[17];
	uint8_t sha[32];
	struct sha256_ctx h;
	struct stat st;

	make_tmpdir();
	snprintf(src, sizeof(src), "%s/src.txt", tmpdir);
	snprintf(victim, sizeof(victim), "%s/victim.txt", tmpdir);
	snprintf(dir, sizeof(dir), "%s/shared", tmpdir);
	mkdir(dir, 01777);
	write_text(src, data);
	write_text(victim, "precious\n");
	sha256_init(&h);
	sha256_update(&h, strlen(data), (const uint8_t *)data);
	sha256_digest(&h, 32, sha);
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", sha[i]);
	snprintf(p, sizeof(p), "%s/.mgpart-%s-f.txt", dir, hex);
	assert_int_equal(symlink(victim, p), 0);
	snprintf(p, sizeof(p), "%s/f.txt", dir);
	assert_int_equal(symlink(victim, p), 0);

	c = start(r);
	snprintf(p, sizeof(p), "%s/f.txt", dir);
	mg_files_push(r, src, p, &c, 1, NULL, res, &err);
	print_message("# the push: %s\n", res[0].error ? res[0].message : "done");
	read_text(victim, buf, sizeof(buf));
	print_message("# victim now holds: %s", buf);
	assert_string_equal(buf, "precious\n");
	assert_int_equal(res[0].error, 0);
	/* The name now holds the pushed file itself. */
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	read_text(p, buf, sizeof(buf));
	assert_string_equal(buf, data);
	mg_context_shutdown(c, true);
	mg_context_unref(c);
	mg_router_unref(r);
}

static struct mg_context *start(struct mg_router *r)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_local(r, NULL, &err);
	char buf[1400];

	if (!c)
		fail_msg("mg_local: %s", mg_error_str(&err, buf, sizeof(buf)));
	return c;
}

/* attacker calls victim.set(666) in victim; then victim's value must be
 * 0 (read by the test, which holds authority over it). */
static void service_attack(struct mg_context *attacker, struct mg_context *victim)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	char buf[1400];

	assert_int_equal(mg_call(attacker, "attack.sibling",
				 MG_LIST(mg_int(mg_context_remote_id(victim))), &v, &err), 0);
	print_message("# the attacker's call: %s\n", v->str);
	assert_string_not_equal(v->str, "done");
	mg_value_free(v);
	v = NULL;
	if (mg_call_service(victim, "victim", "get", NULL, &v, &err) < 0)
		fail_msg("get: %s", mg_error_str(&err, buf, sizeof(buf)));
	print_message("# victim's value: %lld\n", (long long)v->i);
	assert_int_equal(v->i, 0);
	mg_value_free(v);
}

/* A sibling holds no authority over its sibling: refused (here by the
 * common parent's router already, as CALL_FUNCTION is). */
static void test_service_sibling(void **state)
{
	struct mg_router *r = mg_router_new(NULL);
	struct mg_context *a, *b;

	assert_non_null(r);
	a = start(r);
	b = start(r);
	service_attack(a, b);
	mg_context_shutdown(a, true);
	mg_context_shutdown(b, true);
	mg_context_unref(a);
	mg_context_unref(b);
	mg_router_unref(r);
}

/* A local child of a, started through it (via=). */
static struct mg_context *start_below(struct mg_router *r, struct mg_context *a)
{
	struct mg_error err = MG_ERROR_INIT;
	MG_OPTS(mg_local_opts, o, .via = a);
	struct mg_context *c = mg_local(r, &o, &err);
	char buf[1400];

	if (!c)
		fail_msg("mg_local via: %s", mg_error_str(&err, buf, sizeof(buf)));
	return c;
}

/* A child calls a parents-only method in its own parent (the message is
 * delivered there, and only the method's policy stands in the way). */
static void test_service_child_to_parent(void **state)
{
	struct mg_router *r = mg_router_new(NULL);
	struct mg_context *a, *c;

	assert_non_null(r);
	a = start(r);
	c = start_below(r, a);
	service_attack(c, a);
	mg_context_shutdown(c, true);
	mg_context_shutdown(a, true);
	mg_context_unref(c);
	mg_context_unref(a);
	mg_router_unref(r);
}

/*
 * A child asks its parent, an intermediate it was started through, to
 * start contexts for it (via=, as only an ancestor may): refused both
 * ways, by the policy CALL_FUNCTION has (mg_has_parent_authority).
 */
static void test_via_start_from_below(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = mg_router_new(NULL);
	struct mg_context *a, *c;
	struct mg_value *v = NULL;

	assert_non_null(r);
	a = start(r);
	c = start_below(r, a);
	assert_int_equal(mg_call(c, "attack.via_start", MG_LIST(mg_int(mg_context_remote_id(a))),
				 &v, &err), 0);
	print_message("# mg.via.start from below: %s\n", v->items[0].str);
	print_message("# mg._proxy_start from below: %s\n", v->items[1].str);
	assert_non_null(strstr(v->items[0].str, "refused by policy"));
	assert_non_null(strstr(v->items[1].str, "refused by policy"));
	mg_value_free(v);
	mg_context_shutdown(c, true);
	mg_context_shutdown(a, true);
	mg_context_unref(c);
	mg_context_unref(a);
	mg_router_unref(r);
}

int main(int argc, char **argv)
{
	/*
	 * Where the eBPF channel filter runs, it drops these calls in the
	 * kernel before any router sees them (privileged handle from a child
	 * without authority). The method's policy must hold on its own, as
	 * it does on a machine without eBPF: attack that layer.
	 */
	setenv("MITOGEN_BPF", "0", 1);
	mg_service_register("victim", victim_methods, 2, NULL);
	if (getenv("MG_TEST_EVIL_FILES"))
		mg_service_register("mg.files", evil_methods, 1, NULL);
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_service_sibling),
		cmocka_unit_test(test_service_child_to_parent),
		cmocka_unit_test(test_via_start_from_below),
		cmocka_unit_test(test_pull_escape),
		cmocka_unit_test(test_symlink_race),
	};
	return MG_TEST_RUN("attacks/files", tests);
}
