// SPDX-License-Identifier: MIT
/*
 * test_wire.c — the record format: fixed offsets, byte order, header
 * checks, and reassembly of FIRST/LAST chunks with every way it can be
 * broken (stray continuation, FIRST inside a message, header changing
 * between chunks, over the size limit).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "selftests/lib/harness.h"
#include "core/wire.h"

static const struct wire_meta meta = {
	.dst_id = 0x01020304, .src_id = 5, .auth_id = 6, .handle = 101, .reply_to = 1000,
};

static void test_header_layout(void **state)
{
	struct wire_hdr h;
	const uint8_t *b = (const uint8_t *)&h;

	wire_hdr_pack(&h, &meta, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, 300);
	assert_int_equal(sizeof(h), 28);
	assert_int_equal(b[0], 'M');
	assert_int_equal(b[1], 'G');
	assert_int_equal(b[WIRE_OFF_VERSION], WIRE_VERSION);
	assert_int_equal(b[WIRE_OFF_FLAGS], 3);
	/* network byte order */
	assert_int_equal(b[WIRE_OFF_DST_ID], 1);
	assert_int_equal(b[WIRE_OFF_DST_ID + 3], 4);
	assert_int_equal(b[WIRE_OFF_HANDLE + 3], 101);
	assert_int_equal(b[WIRE_OFF_LENGTH + 2], 1);
	assert_int_equal(b[WIRE_OFF_LENGTH + 3], 300 - 256);
}

static void test_header_parse(void **state)
{
	struct wire_hdr h;
	struct wire_meta m;
	const char *why = NULL;
	uint8_t flags;
	uint32_t len;

	wire_hdr_pack(&h, &meta, WIRE_FLAG_FIRST, 77);
	assert_int_equal(wire_hdr_parse(&h, &m, &flags, &len, &why), 0);
	assert_memory_equal(&m, &meta, sizeof(m));
	assert_int_equal(flags, WIRE_FLAG_FIRST);
	assert_int_equal(len, 77);

	h.magic[1] = 'X';
	assert_int_equal(wire_hdr_parse(&h, &m, &flags, &len, &why), -EBADMSG);
	assert_string_equal(why, "bad magic");
	wire_hdr_pack(&h, &meta, 0, 1);
	h.version = 2;
	assert_int_equal(wire_hdr_parse(&h, &m, &flags, &len, &why), -EBADMSG);
	assert_string_equal(why, "bad version");
	wire_hdr_pack(&h, &meta, 0x10, 1);
	assert_int_equal(wire_hdr_parse(&h, &m, &flags, &len, &why), -EBADMSG);
	assert_string_equal(why, "unknown flags");
	wire_hdr_pack(&h, &meta, 0, WIRE_PAYLOAD_MAX + 1);
	assert_int_equal(wire_hdr_parse(&h, &m, &flags, &len, &why), -EBADMSG);
	assert_string_equal(why, "oversize record");
}

static void test_records_needed(void **state)
{
	assert_int_equal(wire_records(0), 1);
	assert_int_equal(wire_records(1), 1);
	assert_int_equal(wire_records(WIRE_PAYLOAD_MAX), 1);
	assert_int_equal(wire_records(WIRE_PAYLOAD_MAX + 1), 2);
	assert_int_equal(wire_records((size_t)1 << 20), 17);
}

/* Feed a payload through wire_rx in n-byte chunks as the stream does. */
static void test_reassembly(void **state)
{
	struct wire_rx rx;
	size_t total = 3 * WIRE_PAYLOAD_MAX + 123, off = 0, len;
	uint8_t *src = malloc(total), *out;
	const char *why;
	bool done = false;

	for (size_t i = 0; i < total; i++)
		src[i] = (uint8_t)(i * 13);
	wire_rx_init(&rx, total);
	while (off < total) {
		size_t n = total - off > WIRE_PAYLOAD_MAX ? WIRE_PAYLOAD_MAX : total - off;
		uint8_t flags = (off == 0 ? WIRE_FLAG_FIRST : 0) |
				(off + n == total ? WIRE_FLAG_LAST : 0);

		assert_false(done);
		if (rx.in_msg) {
			assert_int_equal(wire_rx_reserve(&rx, WIRE_PAYLOAD_MAX), 0);
			memcpy(rx.buf + rx.len, src + off, n);
		}
		assert_int_equal(wire_rx_record(&rx, &meta, flags, src + off, (uint32_t)n,
						&done, &why), 0);
		off += n;
	}
	assert_true(done);
	uint8_t prefix[8], plen;

	out = wire_rx_take(&rx, &len, prefix, &plen);
	assert_int_equal(plen, 0);
	assert_int_equal(len, total);
	assert_memory_equal(out, src, total);
	free(out);
	free(src);
	wire_rx_reset(&rx);
}

static void test_reassembly_errors(void **state)
{
	struct wire_rx rx;
	struct wire_meta other = meta;
	const char *why;
	uint8_t p[16] = { 0 };
	bool done;

	wire_rx_init(&rx, 20);
	assert_int_equal(wire_rx_record(&rx, &meta, WIRE_FLAG_LAST, p, 1, &done, &why), -EBADMSG);
	assert_string_equal(why, "continuation record without FIRST");

	assert_int_equal(wire_rx_record(&rx, &meta, WIRE_FLAG_FIRST, p, 10, &done, &why), 0);
	assert_false(done);
	assert_int_equal(wire_rx_record(&rx, &meta, WIRE_FLAG_FIRST, p, 1, &done, &why), -EBADMSG);
	assert_string_equal(why, "FIRST record inside a message");
	other.handle = 102;
	assert_int_equal(wire_rx_record(&rx, &other, 0, p, 1, &done, &why), -EBADMSG);
	assert_string_equal(why, "header changed inside a message");
	assert_int_equal(wire_rx_reserve(&rx, 16), 0);
	assert_int_equal(wire_rx_record(&rx, &meta, WIRE_FLAG_LAST, p, 11, &done, &why), -EMSGSIZE);
	assert_string_equal(why, "message too large");
	wire_rx_reset(&rx);

	wire_rx_init(&rx, 20);
	assert_int_equal(wire_rx_record(&rx, &meta, WIRE_FLAG_FIRST | WIRE_FLAG_LAST, p, 16,
					&done, &why), 0);
	assert_true(done);
	wire_rx_reset(&rx);
	wire_rx_init(&rx, 8);
	assert_int_equal(wire_rx_record(&rx, &meta, WIRE_FLAG_FIRST, p, 9, &done, &why), -EMSGSIZE);
	wire_rx_reset(&rx);
}

/* A message that is one large bin32 is reassembled split: header kept
 * apart, body in a buffer sized from the header. */
static void test_split_reassembly(void **state)
{
	size_t body = 2 * WIRE_PAYLOAD_MAX + 10, total = body + 5, off = 0, len;
	uint8_t *src = malloc(total), *out, prefix[8], plen;
	struct wire_rx rx;
	const char *why;
	bool done = false;

	src[0] = 0xc6;
	src[1] = (uint8_t)(body >> 24);
	src[2] = (uint8_t)(body >> 16);
	src[3] = (uint8_t)(body >> 8);
	src[4] = (uint8_t)body;
	for (size_t i = 5; i < total; i++)
		src[i] = (uint8_t)i;
	wire_rx_init(&rx, total);
	while (off < total) {
		size_t n = total - off > WIRE_PAYLOAD_MAX ? WIRE_PAYLOAD_MAX : total - off;
		uint8_t flags = (off == 0 ? WIRE_FLAG_FIRST : 0) |
				(off + n == total ? WIRE_FLAG_LAST : 0);

		if (rx.in_msg) {
			assert_true(rx.split);
			assert_int_equal(wire_rx_reserve(&rx, n), 0);
			memcpy(rx.buf + rx.len, src + off, n);
		}
		assert_int_equal(wire_rx_record(&rx, &meta, flags, src + off, (uint32_t)n,
						&done, &why), 0);
		off += n;
	}
	assert_true(done);
	out = wire_rx_take(&rx, &len, prefix, &plen);
	assert_int_equal(plen, 5);
	assert_memory_equal(prefix, src, 5);
	assert_int_equal(len, body);
	assert_memory_equal(out, src + 5, body);
	free(out);

	/* A body that ends early, or a header claiming more than the limit. */
	assert_int_equal(wire_rx_record(&rx, &meta, WIRE_FLAG_FIRST, src, WIRE_PAYLOAD_MAX,
					&done, &why), 0);
	assert_int_equal(wire_rx_record(&rx, &meta, WIRE_FLAG_LAST, src, 0, &done, &why),
			 -EBADMSG);
	assert_string_equal(why, "payload shorter than its header says");
	wire_rx_reset(&rx);
	wire_rx_init(&rx, 1000);
	assert_int_equal(wire_rx_record(&rx, &meta, WIRE_FLAG_FIRST, src, 100, &done, &why),
			 -EMSGSIZE);
	wire_rx_reset(&rx);
	free(src);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_layout),
		cmocka_unit_test(test_header_parse),
		cmocka_unit_test(test_records_needed),
		cmocka_unit_test(test_reassembly),
		cmocka_unit_test(test_reassembly_errors),
		cmocka_unit_test(test_split_reassembly),
	};

	mg_main(argc, argv);
	return MG_TEST_RUN("core/wire", tests);
}
