// SPDX-License-Identifier: MIT
/*
 * test_audit_chain.c — tampering with a written audit trail (issue 18,
 * docs/audit.md), checked by `mitogen audit verify`.
 *
 * One trail is written by real contexts: sudo:mgsudo, a local child below
 * it, and root over ssh (selftests/fixtures/sshd.sh), each keeping its own
 * chained log on its host and sending its records and signed checkpoints
 * up to the master, whose JSON file is chained and checkpointed too. Then
 * each attack works on a copy of it: one changed byte, a deleted record,
 * two records swapped, a tail cut after a checkpoint the master holds, a
 * forged checkpoint, the whole log rewritten with fresh hashes, a record
 * slipped in by a non-audited child of the same uid, and a master file
 * edited (rehashed and re-signed with the master's own key) to hide a
 * call. verify must fail, naming the file, the line, the record and why;
 * the untouched trail must verify. `audit keys -t` fetches the key that
 * signed a target's log. And a hostile child's forged messages and calls
 * up, dropped by the kernel filter or refused by the router, are in the
 * master's chain, a flood of them in bounded lines and a count.
 *
 * Against the old code the trail had no chain and there was no verify:
 * every one of these edits left a file that nothing could tell from the
 * original.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sys/socket.h>

#include "audit/tlog.h"
#include "bpf/loader.h"
#include "core/wire.h"
#include "selftests/tools/toolrun.h"
#include "selftests/transports/fixture.h"

/* --- run in the children ----------------------------------------------- */

/* A plain (not audited) child files a record of a root call that never ran. */
static int chain_forge_record(struct mg_call *call, const struct mg_value *args,
			      struct mg_value **ret)
{
	struct mg_value *rec = mg_map();
	struct mg_message *m;

	mg_map_set(rec, "function", mg_str("forged_by_plain_child"));
	mg_map_set(rec, "status", mg_str("ok"));
	m = mg_message_new(0, MG_HANDLE_AUDIT, rec);
	if (!m || mg_router_route(mg_call_router(call), m) < 0)
		return mg_call_fail(call, EIO, "route");
	*ret = mg_nil();
	return 0;
}
MG_EXPORT(chain_forge_record);

/*
 * chain_forge_raw(dst, src, auth, handle, count): count raw one-record
 * messages written straight onto the channel to the parent (fd 3 in a
 * local child), past this context's own router: what a hostile child
 * does. Returns how many the socket took.
 */
static int chain_forge_raw(struct mg_call *call, const struct mg_value *args,
			   struct mg_value **ret)
{
	int64_t dst, src, auth, handle, count, sent = 0;
	struct wire_meta m = { 0 };
	uint8_t rec[WIRE_HDR_SIZE + 1];

	if (mg_value_unpack(args, NULL, "lllll", &dst, &src, &auth, &handle, &count) < 0)
		return mg_call_fail(call, EINVAL, "chain_forge_raw(dst, src, auth, handle, count)");
	m.dst_id = (uint32_t)dst;
	m.src_id = (uint32_t)src;
	m.auth_id = (uint32_t)auth;
	m.handle = (uint32_t)handle;
	wire_hdr_pack((struct wire_hdr *)rec, &m, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, 1);
	rec[WIRE_HDR_SIZE] = 0xc0;	/* msgpack nil */
	for (int64_t i = 0; i < count; i++)
		if (send(3, rec, sizeof(rec), MSG_NOSIGNAL) == (ssize_t)sizeof(rec))
			sent++;
	*ret = mg_value_build("l", sent);
	return 0;
}
MG_EXPORT(chain_forge_raw);

/* chain_call_parent(): a call to the parent (children hold no authority
 * over their parents: refused). 0 if it ran. */
static int chain_call_parent(struct mg_call *call, const struct mg_value *args,
			     struct mg_value **ret)
{
	struct mg_context *p = mg_router_context_by_id(mg_call_router(call), mg_parent_id());
	struct mg_receiver *rx = mg_call_async(p, "mg.getpid", NULL, NULL);
	struct mg_value *v = NULL;
	/* Bounded: a refusal answers at once; only a lost one waits. */
	int rc = rx ? mg_receiver_get_data(rx, 60.0, &v, NULL) : -EIO;

	mg_value_free(v);
	mg_receiver_free(rx);
	mg_context_unref(p);
	*ret = mg_value_build("l", (int64_t)rc);
	return 0;
}
MG_EXPORT(chain_call_parent);

/*
 * chain_forge_text(): an audited agent (a compromised one) sends record
 * text that the master takes as it is (agent/audit.c sends its records as
 * JSON lines, core/audit.c puts them under "claimed" without re-encoding):
 * text that closes "claimed" early and goes on with members of the
 * master's own part (a reader keeping the last of two "context" keys
 * would believe the forged one), trailing bytes, a raw control character,
 * \u0000, overlong UTF-8, nesting past the limit, an unterminated object,
 * a bare word, a carriage return between two objects. Each carries
 * "FORGED"; then one honest record. All in one message, then one each.
 */
static const char *const forged_texts[] = {
	"{\"f\":\"a\"},\"context\":\"FORGED1\",\"privileged\":true,\"claimed\":{\"f\":\"b\"}",
	"{\"f\":\"a\"}},\"context\":\"FORGED2\"",
	"{\"f\":\"FORGED3\"} ",
	"{\"f\":\"FORGED4\\u0000\"}",
	"{\"f\":\"FORGED5\x01\"}",
	"{\"f\":\"FORGED6\xc0\xaf\"}",
	"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
	"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":\"FORGED7\"}}}}}}}}}}}}}}}}}",
	"{\"f\":\"FORGED8\"",
	"{\"f\":FORGED9}",
	"{\"f\":\"a\"}\r{\"context\":\"FORGED10\"}",
	"{\"f\" :\"FORGED11\"}",
};
#define HONEST_TEXT "{\"function\":\"honest_text\",\"n\":-1.5e3,\"l\":[true,false,null,{},[]]," \
		    "\"s\":\"\\u00e9\\\"\\\\/\xc3\xa9\"}"

static int chain_forge_text(struct mg_call *call, const struct mg_value *args,
			    struct mg_value **ret)
{
	struct mg_router *r = mg_call_router(call);
	size_t n = sizeof(forged_texts) / sizeof(forged_texts[0]), len = 0;
	char *all;

	for (size_t i = 0; i < n; i++)
		len += strlen(forged_texts[i]) + 1;
	all = malloc(len + sizeof(HONEST_TEXT));
	if (!all)
		return -ENOMEM;
	*all = '\0';
	for (size_t i = 0; i < n; i++) {
		struct mg_message *m = mg_message_new(0, MG_HANDLE_AUDIT, mg_str(forged_texts[i]));

		if (!m || mg_router_route(r, m) < 0) {
			free(all);
			return mg_call_fail(call, EIO, "route");
		}
		strcat(strcat(all, forged_texts[i]), "\n");
	}
	strcat(all, HONEST_TEXT);
	{
		struct mg_message *m = mg_message_new(0, MG_HANDLE_AUDIT, MG_LIST(mg_str(all)));

		free(all);
		if (!m || mg_router_route(r, m) < 0)
			return mg_call_fail(call, EIO, "route");
	}
	*ret = mg_nil();
	return 0;
}
MG_EXPORT(chain_forge_text);

/* --- the trail ---------------------------------------------------------- */

static char dir[PATH_MAX];
static char master_path[PATH_MAX + 32];

struct agent_log {
	const char *what;		/* "sudo", "below", "ssh" */
	char path[PATH_MAX + 32];	/* our copy */
	char vkey[TLOG_VKEY_MAX];
	char log[TLOG_NAME_MAX + 1];	/* its origin */
};

static struct agent_log agents[3];
static char master_vkey[TLOG_VKEY_MAX];
static bool have_trail;
static char trail_skip[256];

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n = 0, cap = 1 << 16;

	assert_non_null(f);
	buf = malloc(cap);
	assert_non_null(buf);
	for (size_t got; (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
		n += got;
		if (n + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	fclose(f);
	buf[n] = '\0';
	if (ret_len)
		*ret_len = n;
	return buf;
}

static void spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* mg.audit_checkpoint in ctx: its log's file, verifier key and origin. */
static void checkpoint(struct mg_context *ctx, struct agent_log *a, const char *src_copy)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	const struct mg_value *f, *k, *l;

	if (mg_call(ctx, "mg.audit_checkpoint", NULL, &v, &err) < 0) {
		fprintf(stderr, "# mg.audit_checkpoint: %s\n", err.message);
		fail();
	}
	assert_int_equal(v->type, MG_MAP);
	f = mg_map_get(v, "file");
	k = mg_map_get(v, "vkey");
	l = mg_map_get(v, "log");
	assert_true(f && f->type == MG_STR && k && k->type == MG_STR && l && l->type == MG_STR);
	snprintf(a->vkey, sizeof(a->vkey), "%s", k->str);
	snprintf(a->log, sizeof(a->log), "%s", l->str);
	/* src_copy: where we keep the path until the context is gone. */
	snprintf((char *)src_copy, PATH_MAX, "%s", f->str);
	mg_value_free(v);
}

static void call_ok(struct mg_context *ctx, const char *fn, struct mg_value *args)
{
	struct mg_error err = MG_ERROR_INIT;

	if (mg_call(ctx, fn, args, NULL, &err) < 0) {
		fprintf(stderr, "# %s: %s\n", fn, err.message);
		fail();
	}
}

/* Copy src to dst, then remove src (it is ours: our context wrote it). */
static void take(const char *src, const char *dst)
{
	char *text = slurp(src, NULL);

	spit(dst, text);
	free(text);
	assert_int_equal(unlink(src), 0);
}

/* The master file holds a line with needle (records come after replies). */
static void wait_master(const char *needle)
{
	double end = mg_test_now() + 60;

	while (mg_test_now() < end) {
		char *text = slurp(master_path, NULL);
		bool ok = strstr(text, needle) != NULL;

		free(text);
		if (ok)
			return;
		usleep(20000);
	}
	fprintf(stderr, "# the master file never got %s\n", needle);
	fail();
}

static void test_write_trail(void **state)
{
	static const char *const sargs[] = { "-o", fx.known, "-o",
					     "GlobalKnownHostsFile=/dev/null", NULL };
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *sudo, *below, *ssh, *plain;
	char src[3][PATH_MAX], path[PATH_MAX + 32], needle[TLOG_NAME_MAX + 64];
	struct toolrun r = { 0 };

	if (!fx.up) {
		snprintf(trail_skip, sizeof(trail_skip), "%s", fx.skip);
		fprintf(stderr, "# skip: %s\n", fx.skip);
		skip();
	}
	assert_int_equal(mg_router_audit_to_file(router, master_path, &err), 0);

	MG_OPTS(mg_local_opts, lo, .connect_timeout = 30);
	MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgsudo");
	sudo = must(mg_sudo(router, &so, &err), &err);
	MG_OPTS(mg_local_opts, blo, .via = sudo, .connect_timeout = 30);
	below = must(mg_local(router, &blo, &err), &err);
	MG_OPTS(mg_ssh_opts, sso, .local = &lo, .hostname = "127.0.0.1", .port = fx.port,
		.username = "root", .identity_file = fx.key, .ssh_args = sargs);
	ssh = must(mg_ssh(router, &sso, &err), &err);
	plain = must(mg_local(router, NULL, &err), &err);
	assert_false(mg_context_is_audited(plain));

	/* Records, a checkpoint each, then a tail after it. */
	call_ok(sudo, "mg.getuid", NULL);
	call_ok(sudo, "mg.run", MG_LIST(MG_LIST(mg_str("/bin/echo"), mg_str("in-clear"))));
	call_ok(sudo, "mg.run", MG_LIST(MG_LIST(mg_str("/bin/echo"), mg_secret("hunter2"))));
	call_ok(below, "mg.getpid", NULL);
	call_ok(ssh, "mg.getuid", NULL);
	checkpoint(sudo, &agents[0], src[0]);
	checkpoint(below, &agents[1], src[1]);
	checkpoint(ssh, &agents[2], src[2]);
	call_ok(sudo, "mg.getpid", NULL);
	call_ok(sudo, "mg.getuid", NULL);
	call_ok(below, "mg.getuid", NULL);
	call_ok(ssh, "mg.getpid", NULL);
	checkpoint(sudo, &agents[0], src[0]);
	checkpoint(below, &agents[1], src[1]);
	checkpoint(ssh, &agents[2], src[2]);
	call_ok(sudo, "mg.getuid", NULL);	/* after the last checkpoint */
	/* Not audited: its record is refused. */
	call_ok(plain, "chain_forge_record", NULL);
	finish(plain);
	finish(ssh);
	finish(below);
	finish(sudo);
	/* sudo's last record (the call after its checkpoint) is there. */
	snprintf(needle, sizeof(needle), "\"log\":\"%s\",\"index\":9,", agents[0].log);
	wait_master(needle);

	agents[0].what = "sudo";
	agents[1].what = "below";
	agents[2].what = "ssh";
	for (int i = 0; i < 3; i++) {
		snprintf(agents[i].path, sizeof(agents[i].path), "%s/%s.log", dir, agents[i].what);
		take(src[i], agents[i].path);
	}
	/* The master's own key: `mitogen audit keys` prints it. */
	TOOLRUN(&r, "audit", "keys");
	assert_int_equal(r.exit_code, 0);
	snprintf(master_vkey, sizeof(master_vkey), "%.*s", (int)strcspn(r.out, "\n"), r.out);
	assert_non_null(strstr(master_vkey, "/mitogen/"));
	toolrun_free(&r);
	{
		char *text = slurp(master_path, NULL);

		assert_null(strstr(text, "forged_by_plain_child"));
		/* The refusal itself is in the master's chain. */
		assert_non_null(strstr(text, "{\"refused\":"));
		assert_null(strstr(text, "hunter2"));
		assert_non_null(strstr(text, "in-clear"));
		free(text);
	}
	snprintf(path, sizeof(path), "%s/intact", dir);
	mkdir(path, 0700);
	have_trail = true;
}

/* --- verifying a copy --------------------------------------------------- */

/* A copy of the trail in dir/NAME: the four files, which the attack edits. */
struct copy {
	char master[PATH_MAX + 64];
	char agent[3][PATH_MAX + 64];
};

static void copy_trail(const char *name, struct copy *c)
{
	char d[PATH_MAX + 32];
	char *text;

	if (!have_trail) {
		fprintf(stderr, "# skip: no trail (%s)\n", trail_skip);
		skip();
	}
	snprintf(d, sizeof(d), "%s/%s", dir, name);
	mkdir(d, 0700);
	snprintf(c->master, sizeof(c->master), "%s/master.jsonl", d);
	text = slurp(master_path, NULL);
	spit(c->master, text);
	free(text);
	for (int i = 0; i < 3; i++) {
		snprintf(c->agent[i], sizeof(c->agent[i]), "%s/%s.log", d, agents[i].what);
		text = slurp(agents[i].path, NULL);
		spit(c->agent[i], text);
		free(text);
	}
}

/* Run verify on the copy with every genuine key. */
static void verify(const struct copy *c, struct toolrun *r)
{
	char keys[4][TLOG_VKEY_MAX + 8];

	for (int i = 0; i < 3; i++)
		snprintf(keys[i], sizeof(keys[i]), "%s", agents[i].vkey);
	snprintf(keys[3], sizeof(keys[3]), "%s", master_vkey);
	TOOLRUN(r, "audit", "verify", "--key", keys[0], "--key", keys[1], "--key", keys[2],
		"--key", keys[3], c->master, c->agent[0], c->agent[1], c->agent[2]);
	printf("# verify: exit %d: %.*s\n", r->exit_code, (int)strcspn(r->out, "\n"), r->out);
}

/* verify fails, and its first line says each of the words. */
static void expect_bad(const struct copy *c, const char *const *words)
{
	struct toolrun r = { 0 };
	size_t n;

	verify(c, &r);
	assert_int_equal(r.exit_code, 1);
	n = strcspn(r.out, "\n");
	for (; *words; words++) {
		if (!memmem(r.out, n, *words, strlen(*words))) {
			fprintf(stderr, "# the first line does not say '%s'\n", *words);
			fail();
		}
	}
	toolrun_free(&r);
}
#define EXPECT_BAD(c, ...) expect_bad((c), (const char *const[]){ __VA_ARGS__, NULL })

/* The lines of a file, editable; joined back with join_lines. */
struct lines {
	char *text;
	char *v[256];
	size_t n;
};

static void split_lines(const char *path, struct lines *l)
{
	l->text = slurp(path, NULL);
	l->n = 0;
	for (char *p = l->text; *p && l->n < 256;) {
		char *nl = strchr(p, '\n');

		l->v[l->n++] = p;
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
}

static void join_lines(const char *path, struct lines *l)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i])
			fprintf(f, "%s\n", l->v[i]);
	assert_int_equal(fclose(f), 0);
	free(l->text);
}

/* The line (0-based) of the record with this index, or -1. */
static int line_of(struct lines *l, unsigned index)
{
	char pat[32];

	snprintf(pat, sizeof(pat), ",\"index\":%u,", index);
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] && strstr(l->v[i], pat) && strncmp(l->v[i], "{\"checkpoint\"", 13))
			return (int)i;
	return -1;
}

/* Recompute every chained line's index and tree, in order, per log: what
 * an attacker with write access does after editing. Checkpoint lines are
 * dropped (the attacker cannot sign them, or re-signs with sign_key). */
static void rechain(const char *path, const struct tlog_key *sign_key)
{
	struct lines l;
	struct tlog_tree t = { 0 };
	char log[TLOG_NAME_MAX + 1] = "", *out[256];
	FILE *f;
	size_t n = 0;

	split_lines(path, &l);
	for (size_t i = 0; i < l.n; i++) {
		struct tlog_suffix s;
		char rec[8192];

		if (!l.v[i] || !strncmp(l.v[i], "{\"checkpoint\"", 13))
			continue;
		assert_int_equal(tlog_line_split(l.v[i], strlen(l.v[i]), &s), 0);
		/* One chain per file here except the master's multiplexed one:
		 * rechain the first log's lines only. */
		if (!*log)
			snprintf(log, sizeof(log), "%s", s.log);
		if (strcmp(log, s.log)) {
			out[n++] = strdup(l.v[i]);
			continue;
		}
		snprintf(rec, sizeof(rec), "%.*s}", (int)s.rec_len, l.v[i]);
		out[n++] = tlog_chain_line(&t, log, rec, strlen(rec));
	}
	if (sign_key) {
		char note[TLOG_NOTE_MAX];
		size_t len = tlog_checkpoint_sign(sign_key, log, &t, false, note);

		out[n++] = tlog_checkpoint_line(note, len);
	}
	free(l.text);
	f = fopen(path, "we");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s\n", out[i]);
		free(out[i]);
	}
	assert_int_equal(fclose(f), 0);
}

/* --- the attacks -------------------------------------------------------- */

static void test_intact_verifies(void **state)
{
	struct toolrun r = { 0 };
	struct copy c;

	copy_trail("intact", &c);
	verify(&c, &r);
	assert_int_equal(r.exit_code, 0);
	toolrun_free(&r);
}

/*
 * `mitogen audit keys -t sudo:mgsudo` fetches, from the target, the key
 * that signed sudo's log (the old tool printed only this host's own
 * keys); a target that cannot be reached is named, exit 1.
 */
static void test_keys_from_targets(void **state)
{
	struct toolrun r = { 0 };

	if (!have_trail) {
		fprintf(stderr, "# skip: no trail (%s)\n", trail_skip);
		skip();
	}
	TOOLRUN(&r, "audit", "keys", "-t", "sudo:mgsudo");
	if (r.exit_code != 0)
		fprintf(stderr, "# keys -t: %s%s", r.out, r.err);
	assert_int_equal(r.exit_code, 0);
	assert_non_null(strstr(r.out, "# sudo:mgsudo\n"));
	assert_non_null(strstr(r.out, agents[0].vkey));
	toolrun_free(&r);
	TOOLRUN(&r, "audit", "keys", "-t", "sudo:mg-no-such-user");
	assert_int_equal(r.exit_code, 1);
	assert_non_null(strstr(r.err, "sudo:mg-no-such-user: "));
	toolrun_free(&r);
	TOOLRUN(&r, "audit", "keys", "-t");
	assert_int_equal(r.exit_code, 2);
	toolrun_free(&r);
}

/* One byte of a record (its function's name) changed on the target. */
static void test_changed_byte(void **state)
{
	struct lines l;
	struct copy c;
	char *p;
	int i;

	copy_trail("changed", &c);
	split_lines(c.agent[0], &l);
	/* Record 1 is sudo serving mg.via.start (it started below). */
	i = line_of(&l, 2);
	assert_true(i >= 0);
	p = strstr(l.v[i], "mg.getuid");
	assert_non_null(p);
	p[3] = 'p';			/* mg.getuid -> mg.gptuid */
	join_lines(c.agent[0], &l);
	EXPECT_BAD(&c, "sudo.log:", "record 2", "changed");
}

/* A record deleted from the target's log. */
static void test_deleted_record(void **state)
{
	struct lines l;
	struct copy c;

	copy_trail("deleted", &c);
	split_lines(c.agent[0], &l);
	l.v[line_of(&l, 2)] = NULL;
	join_lines(c.agent[0], &l);
	EXPECT_BAD(&c, "sudo.log:", "record 2", "missing");
}

/* Two records swapped. */
static void test_swapped_records(void **state)
{
	struct lines l;
	struct copy c;
	char *tmp;
	int a, b;

	copy_trail("swapped", &c);
	split_lines(c.agent[0], &l);
	a = line_of(&l, 2);
	b = line_of(&l, 3);
	tmp = l.v[a];
	l.v[a] = l.v[b];
	l.v[b] = tmp;
	join_lines(c.agent[0], &l);
	EXPECT_BAD(&c, "sudo.log:", "record 3", "before record 2", "order");
}

/* The tail cut after a checkpoint the master holds (and the log's own
 * checkpoints after the cut removed, so the file is consistent). */
static void test_truncated_tail(void **state)
{
	struct lines l;
	struct copy c;
	int cut;

	copy_trail("truncated", &c);
	split_lines(c.agent[0], &l);
	cut = line_of(&l, 5);
	assert_true(cut > 0);
	for (size_t i = (size_t)cut; i < l.n; i++)
		l.v[i] = NULL;
	join_lines(c.agent[0], &l);
	EXPECT_BAD(&c, "sudo.log", "truncated after record 4", "master.jsonl:");
}

/* A checkpoint forged: the log rewritten and re-signed with a key of the
 * attacker's under the agent's key name; and one whose size was edited. */
static void test_forged_checkpoint(void **state)
{
	char why[256], kpath[PATH_MAX + 32], name[TLOG_NAME_MAX + 1];
	struct tlog_key k;
	struct lines l;
	struct copy c;
	char *p;

	copy_trail("forged", &c);
	snprintf(kpath, sizeof(kpath), "%s/attacker.key", dir);
	unlink(kpath);
	/* Same name as the genuine key: only the key id and signature differ. */
	snprintf(name, sizeof(name), "%.*s", (int)(strchr(agents[2].vkey, '+') - agents[2].vkey),
		 agents[2].vkey);
	assert_int_equal(tlog_key_load_path(&k, kpath, name, true, why, sizeof(why)), 0);
	rechain(c.agent[2], &k);
	EXPECT_BAD(&c, "ssh.log:", "checkpoint", "unknown key");

	copy_trail("forged2", &c);
	split_lines(c.agent[2], &l);
	for (size_t i = 0; i < l.n; i++) {
		if (strncmp(l.v[i], "{\"checkpoint\"", 13))
			continue;
		/* "origin\nSIZE\n": make the size one larger. */
		p = strstr(l.v[i], "\\n");
		assert_non_null(p);
		p += 2;
		(*p)++;
		break;
	}
	join_lines(c.agent[2], &l);
	EXPECT_BAD(&c, "ssh.log:", "checkpoint", "signature");
}

/* The whole target log rewritten with fresh hashes after an edit: the
 * chain holds, the checkpoints the master witnessed do not. */
static void test_rewritten_log(void **state)
{
	struct lines l;
	struct copy c;

	copy_trail("rewritten", &c);
	split_lines(c.agent[0], &l);
	l.v[line_of(&l, 2)] = NULL;
	join_lines(c.agent[0], &l);
	rechain(c.agent[0], NULL);
	EXPECT_BAD(&c, "sudo.log:", "record 2", "master");
}

/*
 * A non-audited child of the same uid slips a record into an audited
 * context's log, with the right index and tree (anyone can compute them):
 * the master's copy of that index says otherwise. (Its record sent up was
 * refused: test_write_trail checked the master file.)
 */
static void test_record_slipped_in(void **state)
{
	struct tlog_tree t = { 0 };
	struct lines l;
	struct copy c;
	char *forged;
	const char *rec = "{\"time\":\"2026-12-07T00:00:00.000000Z\",\"function\":\"mg.run\","
			  "\"argv\":[\"/bin/rm\",\"-rf\",\"/srv\"],\"status\":\"ok\"}";
	int at;

	copy_trail("slipped", &c);
	split_lines(c.agent[1], &l);
	/* Rebuild the tree up to record 1, then add ours as record 1. */
	at = line_of(&l, 1);
	for (int i = 0; i < at; i++) {
		struct tlog_suffix s;
		uint8_t leaf[TLOG_HASH];

		if (!strncmp(l.v[i], "{\"checkpoint\"", 13))
			continue;
		assert_int_equal(tlog_line_split(l.v[i], strlen(l.v[i]), &s), 0);
		tlog_line_leaf(l.v[i], s.rec_len, leaf);
		tlog_tree_append(&t, leaf);
	}
	forged = tlog_chain_line(&t, agents[1].log, rec, strlen(rec));
	l.v[at] = forged;
	join_lines(c.agent[1], &l);
	free(forged);
	EXPECT_BAD(&c, "below.log:", "record 1", "master");
}

/*
 * The master's file edited to hide a call, rehashed and re-signed with the
 * master's own key (the operator has it): the agent's checkpoints, signed
 * with a key only the target has, say the call was made.
 */
static void test_master_hides_call(void **state)
{
	char why[256], kpath[PATH_MAX + 32];
	struct tlog_key mk;
	struct lines l;
	struct copy c;

	copy_trail("hidden", &c);
	split_lines(c.master, &l);
	for (size_t i = 0; i < l.n; i++)
		if (strstr(l.v[i], "in-clear"))
			l.v[i] = NULL;
	join_lines(c.master, &l);
	snprintf(kpath, sizeof(kpath), "%s/master.key", dir);
	assert_int_equal(tlog_key_load_path(&mk, kpath, "x", false, why, sizeof(why)), 0);
	rechain(c.master, &mk);
	/* sudo's record 3: the first mg.run. */
	EXPECT_BAD(&c, "master.jsonl", "record 3", "sudo.log", "missing");
}

/* --- denials and refusals in the master's chain ------------------------ */

/* Denial events the router reported (mg_router_on_denial): after each is
 * audited. */
static unsigned long denials_seen;

static void count_denial(const struct mg_denial *d, void *userdata)
{
	(void)d;
	(void)userdata;
	__atomic_add_fetch(&denials_seen, 1, __ATOMIC_SEQ_CST);
}

/* Wait until the router has dispatched n denial events (the kernel's
 * ring buffer is read on the broker thread, after the forging call has
 * returned). */
static void wait_denials(unsigned long n)
{
	double end = mg_test_now() + 60;

	while (__atomic_load_n(&denials_seen, __ATOMIC_SEQ_CST) < n && mg_test_now() < end)
		usleep(10000);
	assert_true(__atomic_load_n(&denials_seen, __ATOMIC_SEQ_CST) >= n);
}

static int64_t forge_raw(struct mg_context *ctx, uint32_t src, uint32_t auth, uint32_t handle,
			 int n)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	int64_t sent;

	if (mg_call(ctx, "chain_forge_raw", mg_value_build("lllll", (int64_t)0, (int64_t)src,
				(int64_t)auth, (int64_t)handle, (int64_t)n), &v, &err) < 0) {
		fprintf(stderr, "# chain_forge_raw: %s\n", err.message);
		fail();
	}
	assert_int_equal(mg_value_unpack(v, NULL, "l", &sent), 0);
	mg_value_free(v);
	return sent;
}

static int count_of(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The sum of every "unrecorded_before" and "denials_unrecorded" count. */
static long unrecorded_of(const char *text)
{
	static const char *const keys[] = { "\"unrecorded_before\":", "\"denials_unrecorded\":" };
	long sum = 0;

	for (int k = 0; k < 2; k++)
		for (const char *p = text; (p = strstr(p, keys[k])); p += strlen(keys[k]))
			sum += strtol(p + strlen(keys[k]), NULL, 10);
	return sum;
}

/* End the router's audit file (its denial count and final checkpoint go
 * in): the router moves on to another. (One router in this process: the
 * ring buffer is read on its broker thread, which answers the refusals.) */
static void close_file(struct mg_router *r)
{
	struct mg_error err = MG_ERROR_INIT;
	char next[PATH_MAX + 32];

	snprintf(next, sizeof(next), "%s/after.jsonl", dir);
	assert_int_equal(mg_router_audit_to_file(r, next, &err), 0);
	assert_int_equal(mg_router_on_denial(r, NULL, NULL), 0);
}

/* verify with the master's own key (`mitogen audit keys`), then show. */
static void verify_and_show(const char *path, struct toolrun *show)
{
	struct toolrun r = { 0 };
	char vkey[TLOG_VKEY_MAX];

	TOOLRUN(&r, "audit", "keys");
	assert_int_equal(r.exit_code, 0);
	snprintf(vkey, sizeof(vkey), "%.*s", (int)strcspn(r.out, "\n"), r.out);
	toolrun_free(&r);
	TOOLRUN(&r, "audit", "verify", "--key", vkey, path);
	if (r.exit_code != 0)
		fprintf(stderr, "# verify: %s%s", r.out, r.err);
	assert_int_equal(r.exit_code, 0);
	assert_non_null(strstr(r.out, "ok: "));
	toolrun_free(&r);
	TOOLRUN(show, "audit", "show", path);
	assert_int_equal(show->exit_code, 0);
}

/*
 * A hostile child forges messages (a spoofed src_id) and calls its parent
 * (children hold no authority over parents). Each is dropped, by the
 * kernel filter (a child started with eBPF on: the denial ring buffer) or
 * by the router (a child started with it off); each must be in the
 * master's chained file, saying who (the context behind the channel),
 * what handle and why, and the file must still verify. Against the old
 * code the file held nothing of them: they were only logged.
 */
static void test_denials_in_master_chain(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = router;
	struct mg_context *kern, *user;
	char path[PATH_MAX + 32], *text;
	struct toolrun show = { 0 };
	bool bpf;
	int64_t rc;
	struct mg_value *v = NULL;

	assert_non_null(r);
	snprintf(path, sizeof(path), "%s/denials.jsonl", dir);
	assert_int_equal(mg_router_audit_to_file(r, path, &err), 0);
	denials_seen = 0;
	assert_int_equal(mg_router_on_denial(r, count_denial, NULL), 0);
	kern = must(mg_local(r, NULL, &err), &err);
	call_ok(kern, "mg.getpid", NULL);
	bpf = bpfload_active();
	bpfload_set_enabled(false);
	user = mg_local(r, NULL, &err);
	bpfload_set_enabled(true);
	must(user, &err);

	/* Through the kernel filter, when there is one. */
	assert_int_equal(forge_raw(kern, 4000, mg_context_remote_id(kern), 5000, 3), 3);
	assert_int_equal(mg_call(kern, "chain_call_parent", NULL, &v, &err), 0);
	assert_int_equal(mg_value_unpack(v, NULL, "l", &rc), 0);
	assert_int_not_equal(rc, 0);
	mg_value_free(v);
	if (bpf)
		wait_denials(4);
	/* Through the router's own checks (no filter on this channel): done
	 * before the reply to the forging call, which comes after them. */
	rc = forge_raw(user, 4001, mg_context_remote_id(user), 5001, 2);
	assert_int_equal(rc, 2);
	finish(kern);
	finish(user);
	close_file(r);

	text = slurp(path, NULL);
	if (bpf) {
		assert_int_equal(count_of(text, "{\"denied\":\"spoofed src_id\",\"by\":\"kernel\""), 3);
		assert_int_equal(count_of(text, "{\"denied\":\"caller lacks authority\",\"by\":\"kernel\""), 1);
		assert_non_null(strstr(text, "\"src_id\":4000,"));
		assert_non_null(strstr(text, "\"handle\":5000,"));
	} else {
		fprintf(stderr, "# eBPF off here (%s): router refusals only\n", bpfload_off_reason());
	}
	assert_int_equal(count_of(text, "{\"refused\":\"spoofed src_id\",\"by\":\"router\""),
			 bpf ? 2 : 5);
	assert_non_null(strstr(text, "\"src_id\":4001,"));
	free(text);
	verify_and_show(path, &show);
	assert_non_null(strstr(show.out, "(refused)"));
	assert_non_null(strstr(show.out, "spoofed src_id: handle 5001 src_id 4001"));
	if (bpf)
		assert_non_null(strstr(show.out, "(denied)"));
	toolrun_free(&show);
	unlink(path);
}

/*
 * A flood: a child forges 2000 messages as fast as its socket takes them.
 * The master's file gets at most AUDIT_DENIAL_BURST (32) of them plus one
 * a second, and the count of the rest: what is written plus what is
 * counted is exactly what was sent. Against the old code (nothing
 * recorded) the count was missing; without the limit the file grew by a
 * line a message.
 */
static void test_denial_flood_bounded(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = router;
	struct mg_context *ctx;
	char path[PATH_MAX + 32], *text;
	struct toolrun show = { 0 };
	double t0, secs;
	int written;
	bool bpf;

	assert_non_null(r);
	snprintf(path, sizeof(path), "%s/flood.jsonl", dir);
	assert_int_equal(mg_router_audit_to_file(r, path, &err), 0);
	denials_seen = 0;
	assert_int_equal(mg_router_on_denial(r, count_denial, NULL), 0);
	ctx = must(mg_local(r, NULL, &err), &err);
	call_ok(ctx, "mg.getpid", NULL);
	bpf = bpfload_active();
	t0 = mg_test_now();
	assert_int_equal(forge_raw(ctx, 4000, mg_context_remote_id(ctx), 5000, 2000), 2000);
	if (bpf)
		wait_denials(2000);
	secs = mg_test_now() - t0;
	finish(ctx);
	close_file(r);

	text = slurp(path, NULL);
	written = count_of(text, "\"spoofed src_id\",\"by\":");
	fprintf(stderr, "# %d of 2000 written in %.1f s, %ld counted\n", written, secs,
		unrecorded_of(text));
	assert_true(written >= 32);
	assert_true(written <= 32 + (int)secs + 2);
	assert_int_equal(written + unrecorded_of(text), 2000);
	assert_true(count_of(text, "{\"denials_unrecorded\":") <= 1);
	free(text);
	verify_and_show(path, &show);
	assert_non_null(strstr(show.out, "not recorded"));
	toolrun_free(&show);
	unlink(path);
}

/*
 * An audited agent's record text is chained into the master's file as the
 * bytes it sent (docs/audit.md 7), under "claimed": a compromised agent
 * must not get anything out of "claimed" (a second "context" or
 * "privileged" at the top of the master's line, a line of its own), nor
 * make a line the tool cannot read. Every malformed text is dropped, the
 * honest one is kept byte for byte, and the file verifies. With the check
 * (audit_json_object) taken out, FORGED1's line says "context":"FORGED1"
 * at the master's level and this test fails.
 */
static void test_claimed_text_stays_claimed(void **state)
{
	MG_OPTS(mg_local_opts, lo, .audit = true);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = router;
	struct mg_context *ctx;
	char path[PATH_MAX + 32], *text;
	struct toolrun show = { 0 };

	assert_non_null(r);
	snprintf(path, sizeof(path), "%s/claimed.jsonl", dir);
	assert_int_equal(mg_router_audit_to_file(r, path, &err), 0);
	ctx = must(mg_local(r, &lo, &err), &err);
	call_ok(ctx, "chain_forge_text", NULL);
	/* Every record is in when the context has ended. */
	finish(ctx);
	close_file(r);
	text = slurp(path, NULL);
	if (count_of(text, "FORGED"))
		fprintf(stderr, "# forged text in the master's file:\n%s", text);
	assert_int_equal(count_of(text, "FORGED"), 0);
	assert_int_equal(count_of(text, "\"claimed\":" HONEST_TEXT ",\"log\":"), 1);
	assert_int_equal(count_of(text, "\"function\":\"chain_forge_text\""), 1);
	free(text);
	verify_and_show(path, &show);
	toolrun_free(&show);
	unlink(path);
}

/* The string value of key (as "key":"...") in text, into buf. */
static void json_str_of(const char *text, const char *key, char *buf, size_t size)
{
	char pat[64];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(text, pat);
	assert_non_null(p);
	p += strlen(pat);
	n = strcspn(p, "\"");
	assert_true(n < size);
	snprintf(buf, size, "%.*s", (int)n, p);
}

/* verify LOG against MASTER with the agent's and the master's keys. */
static void verify_pair(const char *master, const char *log, const char *vkey,
			struct toolrun *r)
{
	struct toolrun k = { 0 };
	char mkey[TLOG_VKEY_MAX];

	TOOLRUN(&k, "audit", "keys");
	assert_int_equal(k.exit_code, 0);
	snprintf(mkey, sizeof(mkey), "%.*s", (int)strcspn(k.out, "\n"), k.out);
	toolrun_free(&k);
	TOOLRUN(r, "audit", "verify", "--key", vkey, "--key", mkey, master, log);
	printf("# verify: exit %d: %.*s\n", r->exit_code, (int)strcspn(r->out, "\n"), r->out);
}

/*
 * The last batch of a short-lived audited context: the records of its
 * calls still queued when it is told to end are written at its end,
 * together with its final checkpoint (agent/audit.c agent_audit_close:
 * the records, then the checkpoint that covers them, in one write to its
 * log and one message up; before, the writer wrote the batch with a
 * checkpoint of its own and the broker thread then signed the final one).
 * The attack: the target cuts those records from its log (with the
 * checkpoint after them, leaving a consistent prefix: as far as the log
 * says, the calls never ran), or rewrites one. The master holds the final
 * checkpoint, which must cover every record: verify says the log was
 * truncated after record 0 (only record 0, whose log it is, is left), or
 * names the record that changed. A final checkpoint signed before the
 * last records were chained, or not sent up, lets both through (checked
 * by moving the signature before the records: verify then passed both).
 */
static void test_last_batch_covered(void **state)
{
	MG_OPTS(mg_local_opts, lo, .audit = true);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = router;
	struct mg_context *ctx;
	char path[PATH_MAX + 32], log[PATH_MAX + 32], src[PATH_MAX], vkey[TLOG_VKEY_MAX];
	char *text, *p;
	struct toolrun v = { 0 };
	struct lines l;
	int i;

	assert_non_null(r);
	snprintf(path, sizeof(path), "%s/lastbatch.jsonl", dir);
	snprintf(log, sizeof(log), "%s/lastbatch.log", dir);
	assert_int_equal(mg_router_audit_to_file(r, path, &err), 0);
	ctx = must(mg_local(r, &lo, &err), &err);
	call_ok(ctx, "mg.getpid", NULL);
	call_ok(ctx, "mg.getuid", NULL);
	call_ok(ctx, "mg.getpid", NULL);
	/* At once: the three records are (most likely) still queued. */
	finish(ctx);
	close_file(r);
	text = slurp(path, NULL);
	/* Every record is in the master's file when the context has ended,
	 * and the agent's final checkpoint after them. */
	assert_int_equal(count_of(text, "\"function\":\"mg.getpid\""), 2);
	assert_int_equal(count_of(text, "\"function\":\"mg.getuid\""), 1);
	p = strstr(text, "\\nfinal\\n");
	assert_non_null(p);
	assert_true(p > strstr(text, ",\"index\":3,"));
	json_str_of(text, "file", src, sizeof(src));
	json_str_of(text, "vkey", vkey, sizeof(vkey));
	free(text);
	take(src, log);
	verify_pair(path, log, vkey, &v);
	assert_int_equal(v.exit_code, 0);
	toolrun_free(&v);

	/* Cut: records 1-3 and the final checkpoint gone from the log. */
	split_lines(log, &l);
	i = line_of(&l, 1);
	assert_true(i > 0);
	for (size_t k = (size_t)i; k < l.n; k++)
		l.v[k] = NULL;
	join_lines(log, &l);
	verify_pair(path, log, vkey, &v);
	assert_int_equal(v.exit_code, 1);
	assert_non_null(strstr(v.out, "truncated after record 0"));
	toolrun_free(&v);
}

static int group_setup(void **state)
{
	char env[PATH_MAX + 32];

	(void)state;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (toolrun_setup() < 0)
		return -1;
	snprintf(dir, sizeof(dir), "%s", toolrun_dir());
	snprintf(master_path, sizeof(master_path), "%s/master.jsonl", dir);
	/* The master's key and the local children's logs: ours, in our
	 * directory (sudo and ssh contexts use their own user's places). */
	snprintf(env, sizeof(env), "%s/master.key", dir);
	setenv("MITOGEN_AUDIT_KEY", env, 1);
	snprintf(env, sizeof(env), "%s/logs", dir);
	setenv("MITOGEN_AUDIT_DIR", env, 1);
	if (fixture_up(true) < 0)
		return -1;
	router = mg_router_new(NULL);
	return router ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	mg_router_unref(router);
	router = NULL;
	fixture_down();
	return toolrun_teardown();
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_trail),
		cmocka_unit_test(test_intact_verifies),
		cmocka_unit_test(test_keys_from_targets),
		cmocka_unit_test(test_changed_byte),
		cmocka_unit_test(test_deleted_record),
		cmocka_unit_test(test_swapped_records),
		cmocka_unit_test(test_truncated_tail),
		cmocka_unit_test(test_forged_checkpoint),
		cmocka_unit_test(test_rewritten_log),
		cmocka_unit_test(test_record_slipped_in),
		cmocka_unit_test(test_master_hides_call),
		cmocka_unit_test(test_denials_in_master_chain),
		cmocka_unit_test(test_denial_flood_bounded),
		cmocka_unit_test(test_claimed_text_stays_claimed),
		cmocka_unit_test(test_last_batch_covered),
	};

	mg_main(argc, argv);
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
