// SPDX-License-Identifier: MIT
/*
 * selftests/fuzz/fuzz_value.c: libFuzzer target for mg_value_decode().
 *
 * value_check() must give the decoder's answer on every input.
 * Whatever decodes must survive the rest of the value API: it re-encodes to
 * the same canonical bytes every time, decodes again to an equal value,
 * copies to an equal value, and prints as JSON (both ways agree, and no
 * raw control character reaches the text). And a decode allocates at most
 * VALUE_DECODE_FACTOR times its input (checked with no slack, against what
 * ASan counts as allocated).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/value.h>
#include <sanitizer/allocator_interface.h>

#include "core/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Trap, so the fuzzer records the input, on a broken invariant. */
#define FUZZ_CHECK(cond)                  \
	do {                              \
		if (!(cond))              \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mg_value *v = NULL, *again = NULL, *copy = NULL;
	void *enc = NULL, *enc2 = NULL;
	size_t len = 0, len2 = 0;
	char *json, small[16];
	size_t i;
	int r, n;

	r = mg_value_decode(data ? (const void *)data : "", size, &v);
	/* A stream's check on receipt agrees with the decoder. */
	if (r != -ENOMEM)
		FUZZ_CHECK(value_check(data ? (const void *)data : "", size) == r);
	if (r < 0)
		return 0;

	/* What a decode costs is within the factor, the slack aside (which
	 * also covers the root node: a one-byte int is a 48-byte node). */
	{
		size_t before = __sanitizer_get_current_allocated_bytes();
		struct mg_value *w = NULL;

		r = value_decode_limited(data ? (const void *)data : "", size, 0, &w);
		FUZZ_CHECK(r == 0 || r == -E2BIG || r == -ENOMEM);
		if (r == 0)
			FUZZ_CHECK(__sanitizer_get_current_allocated_bytes() - before <=
				   VALUE_DECODE_FACTOR * size + sizeof(struct mg_value) + 32);
		mg_value_free(w);
	}

	r = mg_value_encode(v, &enc, &len);
	FUZZ_CHECK(r == 0);
	r = mg_value_decode(enc, len, &again);
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(mg_value_equal(v, again));
	/* The encoding is canonical: encoding the decoded copy repeats it. */
	r = mg_value_encode(again, &enc2, &len2);
	FUZZ_CHECK(r == 0 && len2 == len && !memcmp(enc, enc2, len));

	copy = mg_value_copy(v);
	FUZZ_CHECK(copy && mg_value_equal(copy, v));

	json = mg_value_to_json_alloc(v);
	FUZZ_CHECK(json);
	n = mg_value_to_json(v, small, sizeof(small));
	FUZZ_CHECK(n >= 0 && (size_t)n == strlen(json));
	FUZZ_CHECK(!strncmp(small, json, sizeof(small) - 1));
	for (i = 0; json[i]; i++)
		FUZZ_CHECK((unsigned char)json[i] >= 0x20);
	free(json);

	mg_value_free(copy);
	mg_value_free(again);
	mg_value_free(v);
	free(enc);
	free(enc2);
	return 0;
}
