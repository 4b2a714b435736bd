/* SPDX-License-Identifier: MIT */
/* message.h — the message struct, shared by router, stream and receiver. */
#ifndef CORE_MESSAGE_H
#define CORE_MESSAGE_H

#include <mitogen/router.h>
#include "core/wire.h"

struct mg_message {
	struct wire_meta meta;
	/*
	 * The msgpack payload is prefix[0..prefix_len) followed by data, len
	 * bytes in all. A large str/bytes travels split: prefix is its
	 * msgpack header and data its bytes, so they are neither copied into
	 * one buffer when sent nor when received. prefix_len 0: data is all.
	 */
	uint8_t prefix[8];
	uint8_t prefix_len;
	uint8_t *data;			/* owned, unless hold or release is set */
	size_t len;
	struct mg_value *hold;		/* owns data when set (sending a value) */
	/* data is shared (mg_message_new_shared): release(owner) when done */
	void (*release)(void *owner);
	void *owner;
	struct mg_router *router;	/* borrowed: valid while the router is; NULL when made here */
	struct mg_receiver *receiver;	/* borrowed */
	struct mg_message *next;	/* queue link (stream output, deferral) */
	size_t sent;			/* payload bytes already written */
	bool started;			/* FIRST record written */
};

/* A message taking ownership of data (malloc'd, len bytes). */
struct mg_message *message_new_owned(const struct wire_meta *meta, uint8_t *data, size_t len);
/* Make the payload one buffer (data, len). Returns 0 or -ENOMEM. */
int message_flatten(struct mg_message *msg);
/* A message whose payload is the split form of a str/bytes: header bytes
 * (prefix) and body (malloc'd, with one spare byte), both taken. */
struct mg_message *message_new_split(const struct wire_meta *meta, const uint8_t *prefix,
				     uint8_t prefix_len, uint8_t *body, size_t body_len);
/* Note the router that delivered msg (borrowed). */
void message_set_router(struct mg_message *msg, struct mg_router *r);
/* mg_message_value(msg, true, ...) that takes msg's payload buffer (the
 * message is left empty): saves a copy of large payloads. */
int message_take_value(struct mg_message *msg, struct mg_value **ret_value,
		       struct mg_error *err);
/* Fill err from a dead message's reason (ChannelError). */
void message_dead_error(const struct mg_message *msg, struct mg_error *err);
/* Set err fields (NULL-safe). */
void error_set(struct mg_error *err, enum mg_error_kind kind, int errnum,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
