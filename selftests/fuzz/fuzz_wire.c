// SPDX-License-Identifier: MIT
/*
 * fuzz_wire.c — libFuzzer target for what a peer controls on a channel:
 * a sequence of records (each: 2-byte length, then that many bytes) goes
 * through header checks and reassembly exactly as core/stream.c does, and
 * every completed message is decoded as a value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/value.h>
#include "core/value.h"
#include "core/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_rx rx;

	wire_rx_init(&rx, 1 << 20);
	while (size >= 2) {
		size_t n = (size_t)data[0] << 8 | data[1];
		struct wire_hdr hdr;
		struct wire_meta meta;
		const char *why;
		uint8_t flags;
		uint32_t length;
		bool done;

		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		if (n < sizeof(hdr))
			break;
		memcpy(&hdr, data, sizeof(hdr));
		if (wire_hdr_parse(&hdr, &meta, &flags, &length, &why) < 0 ||
		    length != n - sizeof(hdr))
			break;
		if (rx.in_msg && !rx.dropping) {
			if (wire_rx_reserve(&rx, length) < 0)
				break;
			memcpy(rx.buf + rx.len, data + sizeof(hdr), length);
		}
		if (wire_rx_record(&rx, &meta, flags, data + sizeof(hdr), length, &done, &why) < 0)
			break;
		/* Memory follows what arrived (wire.h). */
		if (rx.in_msg && rx.cap > 2 * rx.len + 2 * WIRE_PAYLOAD_MAX)
			__builtin_trap();
		if (done && !rx.dropping) {
			size_t len;
			uint8_t prefix[8], plen;
			uint8_t *buf = wire_rx_take(&rx, &len, prefix, &plen);
			struct mg_value *v = NULL;

			if (plen) {
				if (value_take_blob(prefix, plen, buf, len, &v) == 0)
					mg_value_free(v);
			} else {
				if (mg_value_decode(buf, len, &v) == 0)
					mg_value_free(v);
				free(buf);
			}
		}
		data += n;
		size -= n;
	}
	wire_rx_reset(&rx);
	return 0;
}
