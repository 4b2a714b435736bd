/* SPDX-License-Identifier: MIT */
/* value.h — internal value helpers shared inside core/. */
#ifndef CORE_VALUE_H
#define CORE_VALUE_H

#include <stddef.h>
#include <stdint.h>

struct mg_value;

/* 0 when buf holds exactly one well-formed value, else -EBADMSG/-E2BIG. */
int value_check(const void *buf, size_t len);

/* Decode buf, taking it (see value.c). Same errors as mg_value_decode. */
int value_decode_owned(void *buf, size_t len, struct mg_value **ret_value);

/*
 * The split form of a large str/bytes payload (core/message.h): prefix is
 * its 5-byte msgpack str32/bin32 header, body its bytes. Check that the
 * header declares exactly body_len bytes: 0 or -EBADMSG.
 */
int value_split_check(const uint8_t *prefix, size_t prefix_len, size_t body_len);
/* Make a value of the split form, taking body (malloc'd, body_len + 1
 * bytes); body is freed on failure. */
int value_take_blob(const uint8_t *prefix, size_t prefix_len, void *body, size_t body_len,
		    struct mg_value **ret_value);

#endif
