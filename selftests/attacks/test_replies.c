// SPDX-License-Identifier: MIT
/*
 * test_replies.c — a child forging replies to calls that went elsewhere.
 *
 * The attack (issue 15, item 1): a child writes raw records up its own
 * channel to reply handles of the master, hoping that one is the handle
 * of a call the master made to a sibling, whose caller would then get the
 * child's value. The child is told the real handle (the worst case: it
 * need not guess), and sprays the handles around it too. Against the old
 * code the master's call to the sibling returned the attacker's value.
 *
 * Now a reply is delivered only when it comes from the call's respondent
 * (or, when dead, from a router on the path to it): the forged records are
 * dropped, logged once with the verified sender, and counted as
 * MG_DROP_REPLY; the sibling's real answer still arrives. From a child in
 * the `default` and the `strict` sandbox, with eBPF on (where the kernel
 * filter drops the records before the router sees them) and off, and from
 * a sibling below the same intermediate context (via=), whose records pass
 * every source check on the way because it is behind the right stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "selftests/lib/harness.h"
#include <mitogen/stats.h>
#include "bpf/loader.h"
#include "core/hooks.h"
#include "core/message.h"
#include "core/wire.h"

#define CHANNEL_FD 3	/* an exec'd child's channel to its parent */

/* --- run in the children ----------------------------------------------- */

/*
 * spray(dst, first_handle, count, dead): write one record to each handle
 * first_handle .. first_handle+count-1 of context dst, claiming to be a
 * reply ("forged"), or a dead message when dead is true. Returns the
 * number of records written.
 */
static int spray(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int64_t dst, first, count;
	bool dead;
	int n = 0;

	if (mg_value_unpack(args, NULL, "lllb", &dst, &first, &count, &dead) < 0 || count < 1 ||
	    count > 4096)
		return mg_call_fail(call, EINVAL, "spray(dst, first_handle, count, dead)");
	for (int64_t h = first; h < first + count; h++) {
		struct mg_message *m = mg_message_new((uint32_t)dst, (uint32_t)h,
						      mg_str("forged"));
		uint8_t rec[WIRE_HDR_SIZE + 64];
		size_t len;

		if (!m || m->prefix_len || m->len > 64)
			return mg_call_fail(call, ENOMEM, "message");
		m->meta.src_id = m->meta.auth_id = mg_context_id();
		m->meta.reply_to = dead ? MG_IS_DEAD : 0;
		len = m->len;
		wire_hdr_pack((struct wire_hdr *)rec, &m->meta, WIRE_FLAG_FIRST | WIRE_FLAG_LAST,
			      (uint32_t)len);
		memcpy(rec + WIRE_HDR_SIZE, m->data, len);
		mg_message_free(m);
		if (send(CHANNEL_FD, rec, WIRE_HDR_SIZE + len, MSG_NOSIGNAL) < 0)
			return mg_call_fail(call, errno, "send");
		n++;
	}
	*ret = mg_int(n);
	return 0;
}
MG_EXPORT(spray);

/* wait_fifo(path): block until a byte arrives on the FIFO, then answer. */
static int wait_fifo(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const char *path;
	char c;
	int fd;

	if (mg_value_unpack(args, NULL, "s", &path) < 0)
		return mg_call_fail(call, EINVAL, "wait_fifo(path)");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mg_call_fail(call, errno, "open %s", path);
	if (read(fd, &c, 1) != 1) {
		close(fd);
		return mg_call_fail(call, EIO, "read %s", path);
	}
	close(fd);
	*ret = mg_str("genuine");
	return 0;
}
MG_EXPORT(wait_fifo);

/* --- fixtures ---------------------------------------------------------- */

static struct mg_router *router;
static char dir[64];
static int fifo_n;

/* What a test started, for cleanup when an assertion fails mid-test. */
static struct mg_context *started[8];
static size_t nstarted;
static char open_fifo[96];

/* Per test: release a victim still waiting, end what is left. */
static int cleanup(void **state)
{
	if (open_fifo[0]) {
		int fd = open(open_fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);

		if (fd >= 0) {
			(void)!write(fd, "x", 1);
			close(fd);
		}
		unlink(open_fifo);
		open_fifo[0] = '\0';
	}
	while (nstarted) {
		struct mg_context *c = started[--nstarted];

		mg_context_shutdown(c, true);
		mg_context_unref(c);
	}
	bpfload_set_enabled(true);
	return 0;
}

static int setup(void)
{
	mg_test_log_capture_start();
	snprintf(dir, sizeof(dir), "/tmp/mg-replies.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	router = mg_router_new(NULL);
	return router ? 0 : -1;
}

static void teardown(void)
{
	mg_router_unref(router);
	rmdir(dir);
	mg_test_log_capture_stop();
}

static struct mg_context *start(const char *name, const char *profile,
				struct mg_context *via)
{
	struct mg_sandbox_opts sb = { .sz = sizeof(sb), .seccomp = profile };
	MG_OPTS(mg_local_opts, lo, .remote_name = name, .via = via,
		.sandbox = profile ? &sb : NULL, .connect_timeout = 60);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_local(router, &lo, &err);

	if (!c)
		fail_msg("starting %s: %s", name, err.message);
	assert_true(nstarted < sizeof(started) / sizeof(started[0]));
	started[nstarted++] = c;
	return c;
}

/* Shut down every context started so far, last first (a killed one
 * is already gone). */
static void stop_all(void)
{
	while (nstarted) {
		struct mg_context *c = started[--nstarted];

		mg_context_shutdown(c, true);
		mg_context_unref(c);
	}
}

/* Replies dropped on every channel, as the kernel and the router counted
 * them (mg_router_stats), or as the router alone did (kernel off for the
 * attacker's channel: a snapshot has one source or the other). */
static uint64_t reply_drops(bool kernel)
{
	struct mg_router_stats *st = NULL;
	uint64_t n = 0;

	assert_int_equal(kernel ? mg_router_stats(router, &st) : acct_snapshot(router, &st), 0);
	for (size_t i = 0; i < st->nrows; i++)
		if (st->rows[i].context_id == MG_STATS_CHANNEL)
			n += st->rows[i].dir[MG_STATS_UP].drops[MG_DROP_REPLY];
	mg_router_stats_free(st);
	return n;
}

/*
 * The attack: `victim` is busy answering a call of ours (it waits on a
 * FIFO); `attacker` sprays `count` records around the call's reply handle,
 * the handle itself included, each claiming to be its reply (or a dead
 * message). The spray's own reply comes after its records on the same
 * channel, so when it is back every forged record has been handled here:
 * the victim's call must still be waiting, then get the victim's answer.
 */
static void attack(struct mg_context *attacker, struct mg_context *victim, bool dead, bool bpf)
{
	struct mg_error err = MG_ERROR_INIT, err2 = MG_ERROR_INIT;
	struct mg_value *v = NULL, *v2 = NULL;
	struct mg_receiver *rx;
	char fifo[96];
	uint32_t h;
	int64_t sent = 0;
	int ret;
	uint64_t drops0 = reply_drops(bpf);
	int fd;

	snprintf(fifo, sizeof(fifo), "%s/fifo.%d", dir, fifo_n++);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	snprintf(open_fifo, sizeof(open_fifo), "%s", fifo);
	rx = mg_call_async(victim, "wait_fifo", MG_LIST(mg_str(fifo)), &err);
	assert_non_null(rx);
	h = mg_receiver_handle(rx);

	ret = mg_call(attacker, "spray",
		      mg_value_build("lllb", (int64_t)mg_router_id(router), (int64_t)h - 32,
				     (int64_t)64, dead),
		      &v, &err);

	/* Nothing forged reached the victim's caller... */
	if (mg_receiver_get_data(rx, 0, &v2, &err2) != -ETIMEDOUT)
		fail_msg("a forged %s reached the call to the victim: %s",
			 dead ? "dead message" : "reply",
			 v2 && v2->type == MG_STR ? v2->str : err2.message);
	/* ...nor the spray's own (its reply handle was among those hit). */
	if (ret == 0 && v && v->type == MG_INT)
		sent = v->i;
	else
		fail_msg("the spray's own call got a forged answer: %s",
			 ret < 0 ? err.message : v && v->type == MG_STR ? v->str : "?");
	assert_int_equal(sent, 64);
	mg_value_free(v);
	v = NULL;

	/* ...and the real answer does. */
	fd = open(fifo, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	if (mg_receiver_get_data(rx, 60, &v, &err) < 0)
		fail_msg("the victim's call failed: %s", err.message);
	assert_non_null(v);
	assert_int_equal(v->type, MG_STR);
	assert_string_equal(v->str, "genuine");
	mg_value_free(v);
	mg_receiver_free(rx);
	unlink(fifo);
	open_fifo[0] = '\0';

	/* The forged record to the live handle was counted as a drop (the
	 * others went to handles nobody holds: dropped as invalid). */
	assert_true(reply_drops(bpf) > drops0);
}

static void attack_from(const char *profile, bool bpf, bool dead)
{
	struct mg_context *victim, *attacker;

	bpfload_set_enabled(bpf);
	victim = start("victim", NULL, NULL);
	attacker = start("attacker", profile, NULL);
	bpfload_set_enabled(true);
	attack(attacker, victim, dead, bpf);
	assert_true(mg_test_log_contains("reply from unexpected context", 60));
	stop_all();
}

static void test_forged_reply_plain(void **state)
{
	attack_from(NULL, true, false);
}

static void test_forged_reply_default_sandbox(void **state)
{
	attack_from("default", true, false);
}

static void test_forged_reply_strict_sandbox(void **state)
{
	attack_from("strict", true, false);
}

static void test_forged_reply_without_bpf(void **state)
{
	attack_from("strict", false, false);
}

/* A forged dead message must not fail the sibling's call either. */
static void test_forged_dead_reply(void **state)
{
	attack_from("default", true, true);
	attack_from("default", false, true);
}

/*
 * A sibling below the same intermediate: master -> mid -> {victim,
 * attacker}. The attacker's records come up mid's stream, from behind
 * which the victim's reply comes too, so no source check on the way can
 * stop them: only the binding of the reply to its respondent does.
 */
static void test_forged_reply_from_cousin_via(void **state)
{
	struct mg_context *mid = start("mid", NULL, NULL);
	struct mg_context *victim = start("victim", NULL, mid);
	struct mg_context *attacker = start("attacker", "strict", mid);

	attack(attacker, victim, false, true);
	attack(attacker, victim, true, true);
	stop_all();
}

/*
 * Control: dead messages that routers on the path send for a lost
 * respondent still arrive. The victim below mid is killed while it serves
 * our call: its caller gets ChannelError, not a hang.
 */
static void test_lost_respondent_still_reported(void **state)
{
	struct mg_context *mid = start("mid", NULL, NULL);
	struct mg_context *victim = start("victim", NULL, mid);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	struct mg_receiver *rx;
	char fifo[96];

	pid_t pid;

	/* Its pid first: it serves one call at a time. */
	assert_int_equal(mg_call(victim, "mg.getpid", NULL, &v, &err), 0);
	assert_int_equal(v->type, MG_INT);
	pid = (pid_t)v->i;
	mg_value_free(v);
	v = NULL;
	snprintf(fifo, sizeof(fifo), "%s/fifo.%d", dir, fifo_n++);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	snprintf(open_fifo, sizeof(open_fifo), "%s", fifo);
	rx = mg_call_async(victim, "wait_fifo", MG_LIST(mg_str(fifo)), &err);
	assert_non_null(rx);
	/* The victim dies: the dead message comes from mid, which routes
	 * it, not from the victim. */
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(mg_receiver_get_data(rx, 60, &v, &err), -EPIPE);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	mg_receiver_free(rx);
	unlink(fifo);
	open_fifo[0] = '\0';
	stop_all();
}

/* Reply handles are not a counter an attacker can predict. */
static void test_reply_handles_unpredictable(void **state)
{
	struct mg_context *c = start("plain", NULL, NULL);
	uint32_t h[64];
	int close_pairs = 0;

	for (int i = 0; i < 64; i++) {
		struct mg_error err = MG_ERROR_INIT;
		struct mg_receiver *rx = mg_call_async(c, "mg.getpid", NULL, &err);
		struct mg_value *v = NULL;

		assert_non_null(rx);
		h[i] = mg_receiver_handle(rx);
		assert_true(h[i] >= MG_HANDLE_USER_MIN);
		assert_int_equal(mg_receiver_get_data(rx, 60, &v, &err), 0);
		mg_value_free(v);
		mg_receiver_free(rx);
	}
	/* A counter gives neighbours; 64 random handles among ~2^30 almost
	 * never land within 1000 of the one before. */
	for (int i = 1; i < 64; i++)
		if (h[i] - h[i - 1] < 1000 || h[i - 1] - h[i] < 1000)
			close_pairs++;
	assert_true(close_pairs < 8);
	stop_all();
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_forged_reply_plain, cleanup),
		cmocka_unit_test_teardown(test_forged_reply_default_sandbox, cleanup),
		cmocka_unit_test_teardown(test_forged_reply_strict_sandbox, cleanup),
		cmocka_unit_test_teardown(test_forged_reply_without_bpf, cleanup),
		cmocka_unit_test_teardown(test_forged_dead_reply, cleanup),
		cmocka_unit_test_teardown(test_forged_reply_from_cousin_via, cleanup),
		cmocka_unit_test_teardown(test_lost_respondent_still_reported, cleanup),
		cmocka_unit_test_teardown(test_reply_handles_unpredictable, cleanup),
	};
	int failed;

	if (setup() < 0)
		return 1;
	failed = MG_TEST_RUN("attacks/replies", tests);
	teardown();
	return failed;
}
