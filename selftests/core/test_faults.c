// SPDX-License-Identifier: MIT
/*
 * test_faults.c — hostile and broken channels. Raw records written into a
 * child's and into a parent's end of a channel (bad magic, bad version,
 * truncated, oversize, undecodable, too large), spoofed src_id and forged
 * auth_id from a child, a child calling its sibling: each is refused or
 * closes only that stream, with a logged reason and ChannelError or
 * CallError to whoever waits; the process and other streams carry on.
 *
 * A child that sends bad records then stays busy for good (it cannot
 * reply before its parent drops it, however slow the machine); waits for
 * what must happen have a generous bound (WAIT_S); contexts and receivers
 * are freed through mg_test_defer, so a failed assertion leaks nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <signal.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "selftests/lib/harness.h"
#include "core/message.h"
#include "core/router.h"
#include "core/stream.h"
#include "core/wire.h"

#define CHANNEL_FD 3	/* an exec'd child's channel to its parent */

/* Reached only when what must happen does not. */
#define WAIT_S 60.0

/* --- run in the child -------------------------------------------------- */

/* Write raw records (a list of bytes) on our channel to the parent. */
static int raw_send(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const struct mg_value *list;

	if (mg_value_unpack(args, NULL, "v", &list) < 0 || list->type != MG_LIST)
		return mg_call_fail(call, EINVAL, "raw_send([bytes...])");
	for (uint32_t i = 0; i < list->len; i++)
		if (send(CHANNEL_FD, list->items[i].bytes, list->items[i].len, MSG_NOSIGNAL) < 0)
			return mg_call_fail(call, errno, "send");
	/* Stay busy: the parent drops us before we could reply. */
	sleep(600);
	return 0;
}
MG_EXPORT(raw_send);

/* Send one message of n records of size payload bytes, made here. */
static int raw_flood(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	static uint8_t rec[WIRE_RECORD_MAX];
	struct wire_meta meta = { .dst_id = 0, .src_id = mg_context_id(),
				  .auth_id = mg_context_id(), .handle = 4321 };
	int n, size;

	if (mg_value_unpack(args, NULL, "ii", &n, &size) < 0 || size > WIRE_PAYLOAD_MAX)
		return mg_call_fail(call, EINVAL, "raw_flood(n, size)");
	memset(rec + WIRE_HDR_SIZE, 0xc0, (size_t)size);
	for (int i = 0; i < n; i++) {
		wire_hdr_pack((struct wire_hdr *)rec, &meta,
			      (i == 0 ? WIRE_FLAG_FIRST : 0) | (i == n - 1 ? WIRE_FLAG_LAST : 0),
			      (uint32_t)size);
		if (send(CHANNEL_FD, rec, WIRE_HDR_SIZE + (size_t)size, MSG_NOSIGNAL) < 0)
			return mg_call_fail(call, errno, "send");
	}
	sleep(600);
	return 0;
}
MG_EXPORT(raw_flood);

/*
 * Send a message with the given dst_id, handle, src_id and auth_id, asking
 * for a reply; return what came back: the error text, or "ok".
 */
static int forge(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_router *r = mg_call_router(call);
	struct mg_receiver *rx = mg_receiver_new(r, NULL);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_message *msg;
	struct mg_value *v = NULL;
	int64_t dst, handle, src, auth;

	if (mg_value_unpack(args, NULL, "llll", &dst, &handle, &src, &auth) < 0)
		return mg_call_fail(call, EINVAL, "forge(dst, handle, src, auth)");
	msg = mg_message_new((uint32_t)dst, (uint32_t)handle,
			     MG_LIST(mg_str("mg.getpid"), mg_list()));
	msg->meta.src_id = (uint32_t)src;
	msg->meta.auth_id = (uint32_t)auth;
	msg->meta.reply_to = mg_receiver_handle(rx);
	mg_router_route(r, msg);
	if (mg_receiver_get_data(rx, WAIT_S, &v, &err) == 0)
		*ret = mg_str("ok");
	else
		*ret = mg_strf("%s: %s", mg_error_kind_name(err.kind), err.message);
	mg_value_free(v);
	mg_receiver_free(rx);
	return 0;
}
MG_EXPORT(forge);

/* --- fixtures ---------------------------------------------------------- */

static struct mg_router *router;
static struct mg_context *bystander;	/* must survive every test */

static int setup(void)
{
	MG_OPTS(mg_router_opts, ro, .max_message_size = 200000);
	MG_OPTS(mg_local_opts, lo, .remote_name = "bystander");

	mg_test_log_capture_start();
	router = mg_router_new(&ro);
	bystander = router ? mg_local(router, &lo, NULL) : NULL;
	return bystander ? 0 : -1;
}

static void teardown(void)
{
	mg_context_shutdown(bystander, true);
	mg_context_unref(bystander);
	mg_router_unref(router);
	mg_test_log_capture_stop();
}

static void bystander_still_works(void)
{
	struct mg_value *v = NULL;

	assert_int_equal(mg_call(bystander, "mg.getpid", NULL, &v, NULL), 0);
	assert_int_equal(v->i, mg_context_pid(bystander));
	mg_value_free(v);
}

static void stop_ctx(void *c)
{
	mg_context_shutdown(c, true);
	mg_context_unref(c);
}

static void free_rx(void *rx)
{
	mg_receiver_free(rx);
}

static void free_value(void *v)
{
	mg_value_free(v);
}

/* A local child, shut down after the test. */
static struct mg_context *start(const char *name)
{
	MG_OPTS(mg_local_opts, lo, .remote_name = name);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_local(router, &lo, &err);

	if (!c)
		fail_msg("mg_local: %s", err.message);
	return mg_test_defer(stop_ctx, c);
}

static size_t record(uint8_t *buf, uint32_t dst, uint32_t src, uint8_t flags,
		     const void *payload, uint32_t len)
{
	struct wire_meta meta = { .dst_id = dst, .src_id = src, .auth_id = src, .handle = 4321 };

	wire_hdr_pack((struct wire_hdr *)buf, &meta, flags, len);
	memcpy(buf + WIRE_HDR_SIZE, payload, len);
	return WIRE_HDR_SIZE + len;
}

/* --- child -> parent --------------------------------------------------- */

struct bad_record {
	const char *what;
	const char *reason;	/* expected in the log and the ChannelError */
	uint8_t data[70000];
	size_t len;
};

static void build_cases(struct bad_record *c, size_t *n, uint32_t self)
{
	uint8_t nil = 0xc0, junk = 0xc1;
	size_t i = 0;

	c[i].what = "bad magic";
	c[i].reason = "bad magic";
	c[i].len = record(c[i].data, 0, self, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, &nil, 1);
	c[i].data[0] = 'X';
	i++;
	c[i].what = "bad version";
	c[i].reason = "bad version";
	c[i].len = record(c[i].data, 0, self, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, &nil, 1);
	c[i].data[WIRE_OFF_VERSION] = 9;
	i++;
	c[i].what = "truncated header";
	c[i].reason = "truncated record header";
	c[i].len = record(c[i].data, 0, self, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, &nil, 1);
	c[i].len = 11;
	i++;
	c[i].what = "truncated record";
	c[i].reason = "truncated record";
	c[i].len = record(c[i].data, 0, self, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, &nil, 1);
	((struct wire_hdr *)c[i].data)->length = htonl(100);
	i++;
	c[i].what = "oversize record";
	c[i].reason = "oversize record";
	c[i].len = record(c[i].data, 0, self, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, &nil, 1);
	c[i].len = 70000;
	i++;
	c[i].what = "unknown flags";
	c[i].reason = "unknown flags";
	c[i].len = record(c[i].data, 0, self, 0x80 | WIRE_FLAG_FIRST | WIRE_FLAG_LAST, &nil, 1);
	i++;
	c[i].what = "continuation without FIRST";
	c[i].reason = "continuation record without FIRST";
	c[i].len = record(c[i].data, 0, self, WIRE_FLAG_LAST, &nil, 1);
	i++;
	c[i].what = "undecodable payload";
	c[i].reason = "undecodable payload";
	c[i].len = record(c[i].data, 0, self, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, &junk, 1);
	i++;
	*n = i;
}

static void test_bad_records_from_child(void **state)
{
	static struct bad_record cases[16];
	size_t n;

	build_cases(cases, &n, 0);
	for (size_t i = 0; i < n; i++) {
		struct mg_error err = MG_ERROR_INIT;
		struct mg_context *c;
		struct mg_receiver *rx;
		struct mg_value *v = NULL;
		char needle[160];

		mg_test_log_capture_start();	/* this case's lines only */
		c = start("victim");

		/* Records carry the child's real id as src_id. */
		build_cases(cases, &n, mg_context_remote_id(c));
		rx = mg_test_defer(free_rx, mg_call_async(c, "raw_send",
			MG_LIST(MG_LIST(mg_bytes(cases[i].data, cases[i].len))), NULL));
		if (mg_receiver_get_data(rx, WAIT_S, &v, &err) != -EPIPE)
			fail_msg("%s: call did not fail with ChannelError: %s", cases[i].what,
				 err.message);
		assert_int_equal(err.kind, MG_ERR_CHANNEL);
		if (!strstr(err.message, cases[i].reason))
			fail_msg("%s: ChannelError '%s' does not name '%s'", cases[i].what,
				 err.message, cases[i].reason);
		snprintf(needle, sizeof(needle), "protocol error: %s", cases[i].reason);
		assert_true(mg_test_log_contains(needle, WAIT_S));
		assert_int_equal(mg_context_shutdown(c, true), 0);
		mg_test_cleanup();
		bystander_still_works();
	}
}

static void test_message_over_limit_from_child(void **state)
{
	struct mg_context *c = start("bulky");
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	struct mg_receiver *rx;

	/* Four records of 60000 bytes: over the router's 200000 byte limit. */
	rx = mg_test_defer(free_rx, mg_call_async(c, "raw_flood",
						  mg_value_build("ii", 4, 60000), NULL));
	assert_int_equal(mg_receiver_get_data(rx, WAIT_S, &v, &err), -EPIPE);
	assert_non_null(strstr(err.message, "message too large"));
	assert_true(mg_test_log_contains("protocol error: message too large", WAIT_S));
	assert_int_equal(mg_context_shutdown(c, true), 0);
	bystander_still_works();
}

/* --- parent -> child --------------------------------------------------- */

static int parent_end_fd(struct mg_context *c)
{
	struct stream *s;

	pthread_mutex_lock(&router->lock);
	s = idmap_get(&router->routes, mg_context_remote_id(c));
	pthread_mutex_unlock(&router->lock);
	return s ? s->src.fd : -1;
}

static void test_bad_records_to_child(void **state)
{
	static struct bad_record cases[16];
	size_t n;

	build_cases(cases, &n, 0);
	for (size_t i = 0; i < n; i++) {
		struct mg_context *c;
		struct mg_error err = MG_ERROR_INIT;
		struct mg_receiver *rx;
		struct mg_value *v = NULL;
		char needle[200];
		int fd;

		if (i == 6)
			continue;	/* a lone LAST is tested from the child side */
		mg_test_log_capture_start();	/* this case's lines only */
		c = start("downstream");
		/* A command that outlasts the test: the child can never reply
		 * before it reads the bad record. */
		rx = mg_test_defer(free_rx, mg_call_async(c, "mg.run",
			mg_value_build("v", MG_LIST(mg_str("sleep"), mg_str("600"))), NULL));
		fd = parent_end_fd(c);
		assert_true(fd >= 0);
		/* A test may write into the broker's fd: records are atomic. */
		assert_true(send(fd, cases[i].data, cases[i].len, MSG_NOSIGNAL) > 0);
		if (mg_receiver_get_data(rx, WAIT_S, &v, &err) != -EPIPE)
			fail_msg("%s: call did not fail with ChannelError: %s", cases[i].what,
				 err.message);
		assert_int_equal(err.kind, MG_ERR_CHANNEL);
		/* The child logged why, as its last words. */
		snprintf(needle, sizeof(needle), "downstream: stream parent (context 0): "
			 "protocol error: %s", cases[i].reason);
		if (!mg_test_log_contains(needle, WAIT_S)) {
			mg_test_log_print();
			fail_msg("%s: no log line '%s'", cases[i].what, needle);
		}
		assert_int_equal(mg_context_shutdown(c, true), 0);
		mg_test_cleanup();
		bystander_still_works();
	}
}

/* Deferred to the broker: hold it (no stream read) until told. */
static void hold_broker(void *arg)
{
	int *p = arg;	/* [0]: read to go on; [1]: written once held */
	char c = 0;

	if (write(p[1], &c, 1) != 1 || read(p[0], &c, 1) != 1)
		abort();
}

/*
 * A child that stops at a bad record dies with what came after it unread.
 * The kernel then reports a reset to the parent before the records the
 * child sent: its last words, why it closed, must still be read. The
 * parent's broker is held until the child has exited, so that it reads
 * only then, as a busy parent would.
 */
static void test_last_words_with_records_unread(void **state)
{
	static uint8_t burst[9][WIRE_HDR_SIZE + 1];
	struct mg_context *c;
	struct mg_error err = MG_ERROR_INIT;
	struct mmsghdr mm[9] = { 0 };
	struct iovec iov[9];
	struct mg_receiver *rx;
	struct mg_value *v = NULL;
	int go[2], held[2], hold[2], fd, pidfd, sent, exited;
	struct pollfd pfd;
	uint8_t nil = 0xc0;
	char b = 0;

	mg_test_log_capture_start();
	c = start("last-words");
	rx = mg_test_defer(free_rx, mg_call_async(c, "mg.run",
		mg_value_build("v", MG_LIST(mg_str("sleep"), mg_str("600"))), NULL));
	for (size_t i = 0; i < 9; i++) {
		record(burst[i], mg_context_remote_id(c), 0, WIRE_FLAG_FIRST | WIRE_FLAG_LAST,
		       &nil, 1);
		iov[i] = (struct iovec){ burst[i], sizeof(burst[i]) };
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
	burst[0][0] = 'X';	/* bad magic; the eight behind it are never read */
	fd = parent_end_fd(c);
	assert_true(fd >= 0);
	pidfd = (int)syscall(SYS_pidfd_open, mg_context_pid(c), 0);
	assert_true(pidfd >= 0);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(held), 0);
	hold[0] = go[0];
	hold[1] = held[1];
	assert_int_equal(mg_broker_defer(router->broker, hold_broker, hold), 0);
	assert_int_equal(read(held[0], &b, 1), 1);
	/* The child stopped: it reads none until all nine are queued. Then
	 * the broker goes on only once the child has exited. */
	assert_int_equal(kill(mg_context_pid(c), SIGSTOP), 0);
	sent = sendmmsg(fd, mm, 9, MSG_NOSIGNAL);
	kill(mg_context_pid(c), SIGCONT);
	pfd = (struct pollfd){ .fd = pidfd, .events = POLLIN };
	exited = sent > 0 ? poll(&pfd, 1, (int)(WAIT_S * 1000)) : 0;
	assert_int_equal(write(go[1], &b, 1), 1);
	close(pidfd);
	close(go[0]);
	close(go[1]);
	close(held[0]);
	close(held[1]);
	assert_int_equal(sent, 9);
	assert_int_equal(exited, 1);
	assert_int_equal(mg_receiver_get_data(rx, WAIT_S, &v, &err), -EPIPE);
	assert_int_equal(err.kind, MG_ERR_CHANNEL);
	if (!mg_test_log_contains("last-words: stream parent (context 0): protocol error: "
				  "bad magic", WAIT_S)) {
		mg_test_log_print();
		fail_msg("the child's last words were lost (the call failed with: %s)",
			 err.message);
	}
	assert_int_equal(mg_context_shutdown(c, true), 0);
	bystander_still_works();
}

/* --- spoofing and authority -------------------------------------------- */

static void test_spoofed_src_id_refused(void **state)
{
	struct mg_context *c = start("spoofer");
	struct mg_value *v = NULL;
	uint32_t id = mg_context_remote_id(c);

	assert_int_equal(mg_call(c, "forge",
				 mg_value_build("llll", (int64_t)0, (int64_t)MG_HANDLE_CALL_FUNCTION,
						(int64_t)999, (int64_t)id), &v, NULL), 0);
	mg_test_defer(free_value, v);
	assert_string_equal(v->str, "CallError: refused by policy: bad src_id");
	assert_true(mg_test_log_contains("spoofed src_id 999", WAIT_S));

	/* The bystander's id is a real context, just not behind this stream. */
	assert_int_equal(mg_call(c, "forge",
				 mg_value_build("llll", (int64_t)0, (int64_t)4321,
						(int64_t)mg_context_remote_id(bystander),
						(int64_t)id), &v, NULL), 0);
	mg_test_defer(free_value, v);
	assert_string_equal(v->str, "CallError: refused by policy: bad src_id");
	bystander_still_works();
}

static void test_forged_auth_id_refused(void **state)
{
	struct mg_context *c = start("forger");
	struct mg_value *v = NULL;
	uint32_t id = mg_context_remote_id(c);
	char needle[96];

	/* Claim the master's authority to call into the bystander. */
	assert_int_equal(mg_call(c, "forge",
				 mg_value_build("llll", (int64_t)mg_context_remote_id(bystander),
						(int64_t)MG_HANDLE_CALL_FUNCTION, (int64_t)id,
						(int64_t)0), &v, NULL), 0);
	mg_test_defer(free_value, v);
	assert_string_equal(v->str, "CallError: refused by policy: bad auth_id");
	snprintf(needle, sizeof(needle), "from %u with forged auth_id 0", id);
	assert_true(mg_test_log_contains(needle, WAIT_S));
	bystander_still_works();
}

static void test_child_cannot_call_sibling(void **state)
{
	struct mg_context *c = start("sibling");
	struct mg_value *v = NULL;
	uint32_t id = mg_context_remote_id(c);

	/* Honest ids, but a sibling holds no authority over the bystander. */
	assert_int_equal(mg_call(c, "forge",
				 mg_value_build("llll", (int64_t)mg_context_remote_id(bystander),
						(int64_t)MG_HANDLE_CALL_FUNCTION, (int64_t)id,
						(int64_t)id), &v, NULL), 0);
	mg_test_defer(free_value, v);
	assert_string_equal(v->str, "CallError: refused by policy: caller lacks authority");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_records_from_child),
		cmocka_unit_test(test_message_over_limit_from_child),
		cmocka_unit_test(test_bad_records_to_child),
		cmocka_unit_test(test_last_words_with_records_unread),
		cmocka_unit_test(test_spoofed_src_id_refused),
		cmocka_unit_test(test_forged_auth_id_refused),
		cmocka_unit_test(test_child_cannot_call_sibling),
	};
	int ret;

	mg_main(argc, argv);
	if (setup() < 0) {
		printf("Bail out! cannot start a local context\n");
		return 1;
	}
	ret = MG_TEST_RUN("core/faults", tests);
	teardown();
	return ret;
}
