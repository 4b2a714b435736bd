// SPDX-License-Identifier: MIT
/*
 * test_memory.c — memory a child can make its parent spend (issue 15,
 * item 9; docs/limits.md). Each test is an attack: a child writes raw
 * records on its own channel (fd 3, beside its broker) and the master —
 * this process — must spend at most the documented multiple of what was
 * sent, keep serving a sibling promptly, and refuse or close the offending
 * stream with a logged reason:
 *
 *   test_capped_handles       16 MiB of nils to FORWARD_LOG, AUDIT and
 *                             DEL_ROUTE (each decoded on the broker thread)
 *   test_claimed_length       8 records of 34 bytes, each the first of a
 *                             message claiming 128 MiB
 *   test_partial_budget       4 children holding unfinished messages of
 *                             40 MiB each against a 64 MiB budget
 *   test_allocate_id_flood    200,000 ALLOCATE_ID requests from one child
 *   test_decode_budget        16 MiB of nils sent to a receiver of ours
 *   test_unread_replies       200,000 answered requests from a child that
 *                             never reads its channel
 *   test_sibling_flood        128 MiB sent by one child to a sibling that
 *                             reads nothing (queued here, on the way)
 *
 * Memory is read from this process: the live heap (mallinfo2, or ASan's
 * own count in the sanitizer tree, whose quarantine keeps freed blocks
 * resident) for what stays held, and the peak RSS (VmHWM, reset through
 * /proc/self/clear_refs) for what a decode costs on its way.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/socket.h>
#include <sys/stat.h>

#if defined(__SANITIZE_ADDRESS__)
/* <sanitizer/allocator_interface.h>, which gcc does not install here */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#include "selftests/lib/harness.h"
#include "core/hooks.h"
#include "core/router.h"
#include "core/stream.h"
#include "core/wire.h"

#define CHANNEL_FD 3	/* an exec'd child's channel to its parent */
#define MiB ((size_t)1 << 20)

/* Generous: a sibling's call takes well under 1 ms here, under 100 ms
 * on a loaded machine; a 16 MiB log of nils stalled the broker 3-13 s. */
#define PROMPT_S 5.0

/* --- run in the child -------------------------------------------------- */

/* Write one record on our channel, waiting for room (the fd is nonblocking). */
static int put_record(const void *rec, size_t len)
{
	for (;;) {
		struct pollfd p = { .fd = CHANNEL_FD, .events = POLLOUT };

		if (send(CHANNEL_FD, rec, len, MSG_NOSIGNAL) >= 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		poll(&p, 1, 1000);
	}
}

/*
 * Send `total` payload bytes to (dst, handle) as records of the most a
 * record holds: hdr[hlen] first, then `fill` bytes. With last false the
 * final LAST flag is never sent: the message stays unfinished.
 */
static int put_message_to(uint32_t dst, uint32_t handle, uint32_t reply_to, const uint8_t *hdr,
			  size_t hlen, uint8_t fill, size_t total, bool last)
{
	static uint8_t rec[WIRE_RECORD_MAX];
	struct wire_meta meta = { .dst_id = dst, .src_id = mg_context_id(),
				  .auth_id = mg_context_id(), .handle = handle,
				  .reply_to = reply_to };
	size_t off = 0;
	int ret;

	do {
		size_t n = total - off > WIRE_PAYLOAD_MAX ? WIRE_PAYLOAD_MAX : total - off;
		uint8_t flags = (off == 0 ? WIRE_FLAG_FIRST : 0) |
				(last && off + n == total ? WIRE_FLAG_LAST : 0);
		uint8_t *p = rec + WIRE_HDR_SIZE;

		memset(p, fill, n);
		if (off < hlen)
			memcpy(p, hdr + off, hlen - off < n ? hlen - off : n);
		wire_hdr_pack((struct wire_hdr *)rec, &meta, flags, (uint32_t)n);
		ret = put_record(rec, WIRE_HDR_SIZE + n);
		if (ret < 0)
			return ret;
		off += n;
	} while (off < total);
	return 0;
}

/* The same to the master (id 0). */
static int put_message(uint32_t handle, uint32_t reply_to, const uint8_t *hdr, size_t hlen,
		       uint8_t fill, size_t total, bool last)
{
	return put_message_to(0, handle, reply_to, hdr, hlen, fill, total, last);
}

/* One byte down the FIFO at path: the parent's hand-off (it times out
 * if the byte never comes). */
static void fifo_signal(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, "x", 1) != 1) {
		/* the parent then times out */
	}
	close(fd);
}

static void be32(uint8_t *p, uint32_t x)
{
	p[0] = x >> 24;
	p[1] = x >> 16;
	p[2] = x >> 8;
	p[3] = x;
}

/* A msgpack array32 of (bytes - 5) nils: bytes bytes of payload. */
static void nils_header(uint8_t hdr[5], size_t bytes)
{
	hdr[0] = 0xdd;
	be32(hdr + 1, (uint32_t)(bytes - 5));
}

/* mem_nils(handle, bytes): one whole message of nils to (0, handle). */
static int mem_nils(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int64_t handle, bytes;
	uint8_t hdr[5];
	int err;

	if (mg_value_unpack(args, NULL, "ll", &handle, &bytes) < 0 || bytes < 5)
		return mg_call_fail(call, EINVAL, "mem_nils(handle, bytes)");
	nils_header(hdr, (size_t)bytes);
	err = put_message((uint32_t)handle, 0, hdr, 5, 0xc0, (size_t)bytes, true);
	if (err < 0)
		return mg_call_fail(call, -err, "send");
	*ret = mg_str("sent");
	return 0;
}
MG_EXPORT(mem_nils);

/*
 * mem_partial(kind, claim, bytes, fifo): the first `bytes` bytes of a
 * message that never ends — kind "nils": an array of nils (reassembled
 * as it comes), kind "bin": a bin32 claiming `claim` bytes (the form a
 * receiver may size from its header) — then one byte down the FIFO at
 * path fifo (the hand-off: everything is in the socket), then wait to be
 * dropped. A send that fails (the parent closed us) still signals.
 */
static int mem_partial(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	const char *kind, *fifo;
	int64_t claim, bytes;
	uint8_t hdr[5];
	int err;

	if (mg_value_unpack(args, NULL, "slls", &kind, &claim, &bytes, &fifo) < 0)
		return mg_call_fail(call, EINVAL, "mem_partial(kind, claim, bytes, fifo)");
	if (!strcmp(kind, "bin")) {
		hdr[0] = 0xc6;
		be32(hdr + 1, (uint32_t)claim);
	} else {
		nils_header(hdr, (size_t)claim);
	}
	err = put_message(4321, 0, hdr, 5, 0xc0, (size_t)bytes, false);
	fifo_signal(fifo);
	if (err < 0)
		return mg_call_fail(call, -err, "send");
	/* Dropped with our channel: the agent exits when the parent goes. */
	sleep(60);
	return 0;
}
MG_EXPORT(mem_partial);

/*
 * mem_alloc_ids(n): n ALLOCATE_ID requests, written as fast as the
 * channel takes them, each asking for its reply at one receiver; then
 * count the answers: [ids granted, requests refused].
 */
static int mem_alloc_ids(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	struct mg_receiver *rx = mg_receiver_new(mg_call_router(call), NULL);
	int64_t n, granted = 0, refused = 0;
	struct mg_error err = MG_ERROR_INIT;
	uint8_t nil = 0xc0;
	int e;

	if (!rx || mg_value_unpack(args, NULL, "l", &n) < 0) {
		mg_receiver_free(rx);
		return mg_call_fail(call, EINVAL, "mem_alloc_ids(n)");
	}
	for (int64_t i = 0; i < n; i++) {
		e = put_message(MG_HANDLE_ALLOCATE_ID, mg_receiver_handle(rx), &nil, 1, 0xc0, 1,
				true);
		if (e < 0) {
			mg_receiver_free(rx);
			return mg_call_fail(call, -e, "send");
		}
	}
	for (int64_t i = 0; i < n; i++) {
		struct mg_value *v = NULL;

		e = mg_receiver_get_data(rx, 60, &v, &err);
		if (e == 0 && v->type == MG_INT)
			granted++;
		else if (e == -EREMOTEIO)
			refused++;
		else
			break;
		mg_value_free(v);
	}
	mg_receiver_free(rx);
	*ret = mg_value_build("ll", granted, refused);
	return 0;
}
MG_EXPORT(mem_alloc_ids);

static void mem_sleeper(void *arg)
{
	sleep(120);
}

/*
 * mem_unread(n, done, stop): stop reading our channel (our broker thread
 * is put to sleep), then write up to n ALLOCATE_ID requests, so that
 * every answer stays queued at the parent, until the FIFO at path stop
 * has a byte; then one byte down the FIFO at path done, and wait to be
 * killed.
 */
static int mem_unread(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	static uint8_t rec[WIRE_HDR_SIZE + 1];
	struct wire_meta meta = { .dst_id = 0, .src_id = mg_context_id(),
				  .auth_id = mg_context_id(),
				  .handle = MG_HANDLE_ALLOCATE_ID, .reply_to = 5000 };
	const char *done, *stop;
	int64_t n;
	int fd;

	if (mg_value_unpack(args, NULL, "lss", &n, &done, &stop) < 0)
		return mg_call_fail(call, EINVAL, "mem_unread(n, done, stop)");
	fd = open(stop, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return mg_call_fail(call, errno, "%s", stop);
	mg_broker_defer(mg_router_broker(mg_call_router(call)), mem_sleeper, NULL);
	wire_hdr_pack((struct wire_hdr *)rec, &meta, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, 1);
	rec[WIRE_HDR_SIZE] = 0xc0;
	for (int64_t i = 0; i < n;) {
		struct pollfd p[2] = { { .fd = CHANNEL_FD, .events = POLLOUT },
				       { .fd = fd, .events = POLLIN } };

		if (poll(p, 2, 1000) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN)
			break;		/* the parent has stopped reading us */
		if ((p[0].revents & POLLOUT) &&
		    send(CHANNEL_FD, rec, sizeof(rec), MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof(rec))
			i++;
	}
	close(fd);
	fifo_signal(done);
	sleep(120);
	return 0;
}
MG_EXPORT(mem_unread);

/*
 * mem_flood(dst, n, bytes, done): n whole messages of `bytes` nils each to
 * (dst, a user handle): a sibling's id, routed through the parent. Then
 * one byte down the FIFO at path done.
 */
static int mem_flood(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int64_t dst, n, bytes;
	const char *done;
	uint8_t hdr[5];
	int err = 0;

	if (mg_value_unpack(args, NULL, "llls", &dst, &n, &bytes, &done) < 0 || bytes < 5)
		return mg_call_fail(call, EINVAL, "mem_flood(dst, n, bytes, done)");
	nils_header(hdr, (size_t)bytes);
	for (int64_t i = 0; i < n && !err; i++)
		err = put_message_to((uint32_t)dst, MG_HANDLE_USER_MIN + 7, 0, hdr, 5, 0xc0,
				     (size_t)bytes, true);
	fifo_signal(done);
	if (err < 0)
		return mg_call_fail(call, -err, "send");
	*ret = mg_str("sent");
	return 0;
}
MG_EXPORT(mem_flood);

/* --- fixtures ---------------------------------------------------------- */

static struct mg_router *router;
static struct mg_context *bystander;	/* a sibling that must be served throughout */
static char tmpdir[] = "/tmp/mg-test-memory.XXXXXX";
static char fifo_path[sizeof(tmpdir) + 16];
static int fifo_rd = -1, fifo_wr = -1;

/* The reassembly budget of the test's router (the default is larger). */
#define TEST_BUDGET (64 * MiB)

static int setup(void)
{
	MG_OPTS(mg_router_opts, ro, .reassembly_budget = TEST_BUDGET);
	MG_OPTS(mg_local_opts, lo, .remote_name = "bystander");

	mg_test_log_capture_start();
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(fifo_path, sizeof(fifo_path), "%s/fifo", tmpdir);
	if (mkfifo(fifo_path, 0600) < 0)
		return -1;
	/* Our own writer end keeps the FIFO from ever reading as hung up. */
	fifo_rd = open(fifo_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	fifo_wr = open(fifo_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fifo_rd < 0 || fifo_wr < 0)
		return -1;
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
	close(fifo_rd);
	close(fifo_wr);
	unlink(fifo_path);
	rmdir(tmpdir);
}

static struct mg_context *start(const char *name)
{
	MG_OPTS(mg_local_opts, lo, .remote_name = name);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c = mg_local(router, &lo, &err);

	if (!c)
		fail_msg("mg_local: %s", err.message);
	return c;
}

static void stop(struct mg_context *c)
{
	mg_context_shutdown(c, true);
	mg_context_unref(c);
}

/* A child that sent part of a message is stuck in it: no shutting it
 * down gracefully (its parent would wait the shutdown timeout). */
static void kill_child(struct mg_context *c)
{
	kill(mg_context_pid(c), SIGKILL);
	stop(c);
}

/* Seconds one call to the sibling takes. */
static double sibling_call_s(void)
{
	struct mg_value *v = NULL;
	double t0 = mg_test_now();

	assert_int_equal(mg_call(bystander, "mg.getpid", NULL, &v, NULL), 0);
	assert_int_equal(v->i, mg_context_pid(bystander));
	mg_value_free(v);
	return mg_test_now() - t0;
}

static void sibling_prompt(const char *after)
{
	double s = sibling_call_s();

	printf("# %s: a call to the sibling took %.1f ms\n", after, s * 1e3);
	if (s > PROMPT_S)
		fail_msg("%s: a call to the sibling took %.1f s", after, s);
}

/* --- measuring --------------------------------------------------------- */

/* A "Vm...:  N kB" field of /proc/self/status, in bytes. */
static size_t status_bytes(const char *field)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	size_t n = strlen(field), kb = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			kb = strtoul(line + n + 1, NULL, 10);
	fclose(f);
	return kb * 1024;
}

/* Start a new peak: VmHWM drops to the present VmRSS. */
static size_t peak_reset(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "5", 1), 1);
	close(fd);
	return status_bytes("VmRSS");
}

/* Bytes the heap holds now (allocated and not freed). */
static size_t heap_live(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#endif
}

static double mib(ssize_t n)
{
	return (double)n / MiB;
}

/* Our end of c's channel (-1 once it closed). */
static int parent_end_fd(struct mg_context *c)
{
	struct stream *s;
	int fd;

	pthread_mutex_lock(&router->lock);
	s = idmap_get(&router->routes, mg_context_remote_id(c));
	fd = s && !s->closed ? s->src.fd : -1;
	pthread_mutex_unlock(&router->lock);
	return fd;
}

/* Wait for n bytes down the FIFO: n children have sent all they will. */
static void fifo_wait(int n)
{
	double end = mg_test_now() + 120;
	char buf[16];

	while (n > 0) {
		struct pollfd p = { .fd = fifo_rd, .events = POLLIN };
		ssize_t got;

		if (mg_test_now() > end)
			fail_msg("children did not signal within 120 s (%d left)", n);
		if (poll(&p, 1, 1000) <= 0)
			continue;
		got = read(fifo_rd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
		if (got > 0)
			n -= (int)got;
	}
}

/* Wait until we have read everything c wrote (or its channel closed). */
static void drained(struct mg_context *c)
{
	double end = mg_test_now() + 120;
	int fd, pending = 1;

	while ((fd = parent_end_fd(c)) >= 0) {
		if (ioctl(fd, SIOCINQ, &pending) == 0 && pending == 0)
			break;
		if (mg_test_now() > end)
			fail_msg("the broker did not read %s's records in 120 s", mg_context_name(c));
		usleep(1000);	/* polling the broker's progress, not a hand-off */
	}
}

/* Drops the router itself counted on c's channel (its own counters,
 * whatever the kernel counts). */
static uint64_t drops_of(struct mg_context *c, enum mg_stats_drop why)
{
	struct mg_router_stats *st = NULL;
	uint64_t n = 0;

	assert_int_equal(acct_snapshot(router, &st), 0);
	for (size_t i = 0; i < st->nrows; i++)
		if (st->rows[i].child_id == mg_context_remote_id(c) &&
		    st->rows[i].context_id == MG_STATS_CHANNEL)
			n += st->rows[i].dir[MG_STATS_UP].drops[why];
	mg_router_stats_free(st);
	return n;
}

/* --- the attacks --------------------------------------------------------- */

/*
 * Log lines, audit records and route updates are decoded on the broker
 * thread. 16 MiB of nils to each: refused as it arrives, before anything
 * is decoded (one record is the most they may take), counted as drops;
 * the stream stays open; the sibling is served meanwhile.
 */
static void test_capped_handles(void **state)
{
	static const struct { uint32_t handle; const char *name; } to[] = {
		{ MG_HANDLE_FORWARD_LOG, "FORWARD_LOG" },
		{ MG_HANDLE_AUDIT, "AUDIT" },
		{ MG_HANDLE_DEL_ROUTE, "DEL_ROUTE" },
	};
	const size_t bytes = 16 * MiB;
	int failed = 0;

	for (size_t i = 0; i < sizeof(to) / sizeof(to[0]); i++) {
		struct mg_context *c = start("logger");
		struct mg_error err = MG_ERROR_INIT;
		struct mg_receiver *rx;
		struct mg_value *v = NULL;
		double worst = 0, t0;
		size_t rss0, peak;
		char needle[128];

		rss0 = peak_reset();
		t0 = mg_test_now();
		rx = mg_call_async(c, "mem_nils", mg_value_build("ll", (int64_t)to[i].handle,
								 (int64_t)bytes), NULL);
		/* The sibling is called all the while the attack goes on. */
		while (mg_receiver_empty(rx)) {
			double s = sibling_call_s();

			if (s > worst)
				worst = s;
		}
		if (mg_receiver_get_data(rx, 120, &v, &err) != 0)
			fail_msg("%s: the attacker's stream did not stay open: %s", to[i].name,
				 err.message);
		assert_string_equal(v->str, "sent");
		mg_value_free(v);
		mg_receiver_free(rx);
		peak = status_bytes("VmHWM");
		printf("# %s, 16 MiB of nils: peak RSS +%.1f MiB, %.2f s, slowest sibling "
		       "call %.1f ms\n", to[i].name, mib((ssize_t)(peak - rss0)),
		       mg_test_now() - t0, worst * 1e3);
		/* Every handle is tried, and its figures printed, before failing. */
		if (peak - rss0 > 16 * MiB) {
			printf("# %s: sending 16 MiB cost %.1f MiB of peak RSS\n", to[i].name,
			       mib((ssize_t)(peak - rss0)));
			failed++;
		}
		if (worst > PROMPT_S) {
			printf("# %s: a call to the sibling took %.1f s\n", to[i].name, worst);
			failed++;
		}
		snprintf(needle, sizeof(needle), "refused a message to handle %u (%s)",
			 to[i].handle, to[i].name);
		if (!mg_test_log_contains(needle, failed ? 0 : 5)) {
			printf("# %s: no log line '%s'\n", to[i].name, needle);
			failed++;
		}
		/* Every record of it counted as a drop. */
		if (drops_of(c, MG_DROP_MALFORMED) < bytes / WIRE_PAYLOAD_MAX) {
			printf("# %s: its records were not counted as drops\n", to[i].name);
			failed++;
		}
		/* Still served: a too long log line is not a reason to hang up. */
		assert_int_equal(mg_call(c, "mg.getpid", NULL, &v, NULL), 0);
		mg_value_free(v);
		stop(c);
	}
	assert_int_equal(failed, 0);
}

/*
 * 8 children each write one 34-byte record: the first of a bin message
 * claiming 128 MiB (just under the maximum message), and never more.
 * Nothing is reserved beyond what arrived.
 */
static void test_claimed_length(void **state)
{
	enum { N = 8 };
	struct mg_context *c[N];
	struct mg_receiver *rx[N];
	const size_t claim = MG_DEFAULT_MAX_MESSAGE_SIZE - 5;
	size_t heap0, vm0, heap, vm;

	for (int i = 0; i < N; i++)
		c[i] = start("claimer");
	heap0 = heap_live();
	vm0 = status_bytes("VmSize");
	for (int i = 0; i < N; i++)
		rx[i] = mg_call_async(c[i], "mem_partial",
				      mg_value_build("slls", "bin", (int64_t)claim, (int64_t)6,
						     fifo_path), NULL);
	fifo_wait(N);
	for (int i = 0; i < N; i++)
		drained(c[i]);
	heap = heap_live();
	vm = status_bytes("VmSize");
	printf("# %d records of 34 bytes claiming 128 MiB each: heap +%.1f MiB, "
	       "address space +%.1f MiB\n", N, mib((ssize_t)(heap - heap0)),
	       mib((ssize_t)(vm - vm0)));
	/* What arrived was 6 bytes each: one record's room each is generous. */
	if (heap - heap0 > N * 2 * (size_t)WIRE_RECORD_MAX + 4 * MiB)
		fail_msg("%d claims of 128 MiB made us hold %.1f MiB", N,
			 mib((ssize_t)(heap - heap0)));
	sibling_prompt("claims");
	for (int i = 0; i < N; i++) {
		mg_receiver_free(rx[i]);
		kill_child(c[i]);
	}
}

/*
 * 4 children each hold an unfinished message of 40 MiB: 160 MiB in all
 * against the router's 64 MiB budget. The streams holding the most are
 * closed, with the reason logged and given to their callers, until the
 * rest fit.
 */
static void test_partial_budget(void **state)
{
	enum { N = 4 };
	const size_t each = 40 * MiB;
	struct mg_context *c[N];
	struct mg_receiver *rx[N];
	size_t heap0, heap;
	int closed = 0;

	for (int i = 0; i < N; i++)
		c[i] = start("holder");
	heap0 = heap_live();
	for (int i = 0; i < N; i++)
		rx[i] = mg_call_async(c[i], "mem_partial",
				      mg_value_build("slls", "nils", (int64_t)(100 * MiB),
						     (int64_t)each, fifo_path), NULL);
	fifo_wait(N);
	for (int i = 0; i < N; i++)
		drained(c[i]);
	heap = heap_live();
	for (int i = 0; i < N; i++)
		closed += parent_end_fd(c[i]) < 0;
	printf("# %d unfinished messages of 40 MiB, 64 MiB budget: heap +%.1f MiB, "
	       "%d streams closed\n", N, mib((ssize_t)(heap - heap0)), closed);
	/* The budget, one record of room a stream, and the slack of doubling. */
	if (heap - heap0 > TEST_BUDGET + N * 2 * (size_t)WIRE_RECORD_MAX + 8 * MiB)
		fail_msg("unfinished messages held %.1f MiB (budget %.0f MiB)",
			 mib((ssize_t)(heap - heap0)), mib(TEST_BUDGET));
	assert_true(closed >= N - 1);
	if (!mg_test_log_contains("over the router's reassembly budget", 60)) {
		mg_test_log_print();
		fail_msg("no log line naming the reassembly budget");
	}
	for (int i = 0; i < N; i++) {
		struct mg_error err = MG_ERROR_INIT;
		struct mg_value *v = NULL;

		if (parent_end_fd(c[i]) >= 0)
			continue;
		assert_int_equal(mg_receiver_get_data(rx[i], 30, &v, &err), -EPIPE);
		if (!strstr(err.message, "reassembly budget"))
			fail_msg("ChannelError '%s' does not name the budget", err.message);
	}
	sibling_prompt("unfinished messages");
	for (int i = 0; i < N; i++) {
		mg_receiver_free(rx[i]);
		kill_child(c[i]);
	}
}

/*
 * 200,000 ALLOCATE_ID requests from one child: the master keeps at most
 * ROUTES_MAX_IDS for it and refuses the rest, saying why.
 */
static void test_allocate_id_flood(void **state)
{
	const int64_t n = 200000;
	struct mg_context *c = start("allocator");
	struct mg_value *v = NULL;
	size_t heap0, heap, rss0, peak;
	int64_t granted, refused;

	heap0 = heap_live();
	rss0 = peak_reset();
	assert_int_equal(mg_call(c, "mem_alloc_ids", mg_value_build("l", n), &v, NULL), 0);
	heap = heap_live();
	peak = status_bytes("VmHWM");
	assert_int_equal(mg_value_unpack(v, NULL, "ll", &granted, &refused), 0);
	mg_value_free(v);
	printf("# %lld ALLOCATE_ID requests (%.1f MiB sent): %lld granted, %lld refused, "
	       "heap +%.1f MiB, peak RSS +%.1f MiB\n", (long long)n,
	       mib((ssize_t)(n * (WIRE_HDR_SIZE + 1))), (long long)granted, (long long)refused,
	       mib((ssize_t)(heap - heap0)), mib((ssize_t)(peak - rss0)));
	assert_int_equal(granted + refused, n);
	assert_int_equal(granted, ROUTES_MAX_IDS);
	if (heap - heap0 > 8 * MiB)
		fail_msg("200,000 requests made us hold %.1f MiB", mib((ssize_t)(heap - heap0)));
	if (!mg_test_log_contains("refused ALLOCATE_ID", 60)) {
		mg_test_log_print();
		fail_msg("no log line for the refused requests");
	}
	sibling_prompt("ALLOCATE_ID flood");
	stop(c);
	/* Its ids went with it: a new child gets its own share. */
	c = start("allocator");
	assert_int_equal(mg_call(c, "mem_alloc_ids", mg_value_build("l", (int64_t)10), &v,
				 NULL), 0);
	assert_int_equal(mg_value_unpack(v, NULL, "ll", &granted, &refused), 0);
	assert_int_equal(granted, 10);
	mg_value_free(v);
	stop(c);
}

/*
 * 16 MiB of nils sent to a receiver of ours, then decoded by us (as a
 * reply would be): a tree of 16 Mi nodes costs 48 bytes a node. The
 * decode is refused before it allocates, past VALUE_DECODE_FACTOR times
 * the payload plus VALUE_DECODE_SLACK.
 */
static void test_decode_budget(void **state)
{
	static const uint8_t lie[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
	const size_t bytes = 16 * MiB;
	struct mg_context *c = start("sender");
	struct mg_receiver *rx = mg_receiver_new(router, NULL);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;
	size_t rss0, peak, heap0;
	int ret;

	assert_non_null(rx);
	rss0 = peak_reset();
	assert_int_equal(mg_call(c, "mem_nils",
				 mg_value_build("ll", (int64_t)mg_receiver_handle(rx),
						(int64_t)bytes), &v, NULL), 0);
	mg_value_free(v);
	v = NULL;
	ret = mg_receiver_get_data(rx, 60, &v, &err);
	peak = status_bytes("VmHWM");
	printf("# decoding 16 MiB of nils: %s, peak RSS +%.1f MiB\n",
	       ret == 0 ? "decoded" : err.message, mib((ssize_t)(peak - rss0)));
	mg_value_free(v);
	assert_int_not_equal(ret, 0);
	/* The message itself, and its buffer's growth on the way in. */
	if (peak - rss0 > 3 * bytes + 16 * MiB)
		fail_msg("decoding 16 MiB cost %.1f MiB of peak RSS", mib((ssize_t)(peak - rss0)));
	mg_receiver_free(rx);
	stop(c);

	/* What honest senders send still decodes: a million small ints
	 * (48 MiB of nodes, within the slack). */
	{
		const uint32_t n = 1000000;
		uint8_t *p = malloc(5 + n);

		assert_non_null(p);
		p[0] = 0xdd;
		p[1] = (uint8_t)(n >> 24);
		p[2] = (uint8_t)(n >> 16);
		p[3] = (uint8_t)(n >> 8);
		p[4] = (uint8_t)n;
		memset(p + 5, 0x07, n);
		v = NULL;
		assert_int_equal(mg_value_decode(p, 5 + n, &v), 0);
		assert_int_equal(v->len, n);
		assert_int_equal(v->items[n - 1].i, 7);
		mg_value_free(v);
		free(p);
	}

	/* A count larger than the bytes present: refused before allocating. */
	heap0 = heap_live();
	v = NULL;
	assert_int_equal(mg_value_decode(lie, sizeof(lie), &v), -EBADMSG);
	assert_null(v);
	assert_true(heap_live() - heap0 < 4096);
	sibling_prompt("decode");
}

/*
 * Has the router stopped reading c? paused: its own answers are backed
 * up (backpressure); waiting: it sent into another stream's full backlog
 * (stream_hold).
 */
static bool not_read(struct mg_context *c, bool waiting)
{
	struct stream *s;
	bool held;

	pthread_mutex_lock(&router->lock);
	s = idmap_get(&router->routes, mg_context_remote_id(c));
	held = s && __atomic_load_n(waiting ? &s->waiting : &s->paused, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&router->lock);
	return held;
}

/*
 * Wait until c has sent all it will (a byte down the FIFO) or the router
 * stops reading it (not_read); then until we read what it wrote. Returns
 * whether it was held back.
 */
static bool sent_or_held(struct mg_context *c, bool waiting)
{
	double end = mg_test_now() + 120;
	bool held;

	for (;;) {
		struct pollfd p = { .fd = fifo_rd, .events = POLLIN };

		if ((held = not_read(c, waiting)))
			break;
		if (poll(&p, 1, 1) > 0)
			break;
		if (mg_test_now() > end)
			fail_msg("%s neither finished nor was held back in 120 s", mg_context_name(c));
	}
	if (!held)
		drained(c);
	return held;
}

/*
 * A child that never reads its channel sends 200,000 requests, each
 * answered: the answers queue here. Once they hold STREAM_PAUSE_BYTES
 * the child is not read any more, and the rest of its requests wait in
 * its own socket.
 */
static void test_unread_replies(void **state)
{
	const int64_t n = 200000;
	struct mg_context *c = start("deaf");
	char stop_path[sizeof(tmpdir) + 16];
	struct mg_receiver *rx;
	size_t heap0, heap;
	bool paused;
	int stop;

	snprintf(stop_path, sizeof(stop_path), "%s/stop", tmpdir);
	assert_int_equal(mkfifo(stop_path, 0600), 0);
	heap0 = heap_live();
	rx = mg_call_async(c, "mem_unread", mg_value_build("lss", n, fifo_path, stop_path), NULL);
	paused = sent_or_held(c, false);
	heap = heap_live();
	printf("# up to %lld requests from a child that reads nothing: %s, heap +%.1f MiB\n",
	       (long long)n, paused ? "it is no longer read" : "all were read",
	       mib((ssize_t)(heap - heap0)));
	if (paused) {
		/* Tell it to stop (it has: we are not reading it). */
		stop = open(stop_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		assert_true(stop >= 0);
		assert_int_equal(write(stop, "x", 1), 1);
		close(stop);
	}
	fifo_wait(1);
	unlink(stop_path);
	if (heap - heap0 > STREAM_PAUSE_BYTES + 4 * MiB)
		fail_msg("answers to a child that does not read held %.1f MiB",
			 mib((ssize_t)(heap - heap0)));
	sibling_prompt("unread replies");
	mg_receiver_free(rx);
	kill_child(c);
}

/*
 * A child sends 128 MiB, in messages of 1 MiB, to a sibling that reads
 * nothing (stopped). Every message is routed through us and waits in the
 * sibling's output queue here. Once that queue holds STREAM_PAUSE_BYTES
 * the sender is not read any more until it drains: what it sends next
 * waits in its own socket, not in our heap. Once the sibling reads again,
 * the sender is read again and gets to the end.
 */
static void test_sibling_flood(void **state)
{
	const int64_t n = 128, each = (int64_t)MiB;
	struct mg_context *deaf = start("deaf"), *flooder = start("flooder");
	struct mg_receiver *rx;
	size_t heap0, heap;
	bool held;

	heap0 = heap_live();
	assert_int_equal(kill(mg_context_pid(deaf), SIGSTOP), 0);
	rx = mg_call_async(flooder, "mem_flood",
			   mg_value_build("llls", (int64_t)mg_context_remote_id(deaf), n, each,
					  fifo_path),
			   NULL);
	held = sent_or_held(flooder, true);
	heap = heap_live();
	printf("# %lld MiB to a sibling that reads nothing: %s, heap +%.1f MiB\n",
	       (long long)(n * each / (int64_t)MiB),
	       held ? "the sender is held back" : "all of it was queued here",
	       mib((ssize_t)(heap - heap0)));
	sibling_prompt("sibling flood");
	/* The sibling reads again: its backlog drains, and the flooder is
	 * read again and sends the rest (held back again as often as the
	 * backlog fills): it must get to the end. */
	assert_int_equal(kill(mg_context_pid(deaf), SIGCONT), 0);
	fifo_wait(1);
	mg_receiver_free(rx);
	stop(flooder);
	stop(deaf);
	if (heap - heap0 > STREAM_PAUSE_BYTES + 8 * MiB)
		fail_msg("a sibling's unread queue held %.1f MiB of another child's messages",
			 mib((ssize_t)(heap - heap0)));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capped_handles),
		cmocka_unit_test(test_claimed_length),
		cmocka_unit_test(test_partial_budget),
		cmocka_unit_test(test_allocate_id_flood),
		cmocka_unit_test(test_decode_budget),
		cmocka_unit_test(test_unread_replies),
		cmocka_unit_test(test_sibling_flood),
	};
	int ret;

	mg_main(argc, argv);
	if (setup() < 0) {
		printf("Bail out! cannot start a local context\n");
		return 1;
	}
	ret = MG_TEST_RUN("attacks/memory", tests);
	teardown();
	return ret;
}
