// SPDX-License-Identifier: MIT
/*
 * sha256.c — the name (and check) of the image the first stage caches:
 * SHA-256 from nettle, a well-kept packaged library, not our own code.
 */
#include <stdio.h>

#include <nettle/sha2.h>

#include "transports/transport.h"

void sha256_hex_digest(struct sha256_ctx *c, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t d[SHA256_DIGEST_SIZE];

	sha256_digest(c, sizeof(d), d);
	for (size_t i = 0; i < sizeof(d); i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}

void sha256_hex(const void *data, size_t len, char out[65])
{
	struct sha256_ctx c;

	sha256_init(&c);
	sha256_update(&c, len, data);
	sha256_hex_digest(&c, out);
}
