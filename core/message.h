/* SPDX-License-Identifier: MIT */
/* message.h — the message struct, shared by router, stream and receiver. */
#ifndef CORE_MESSAGE_H
#define CORE_MESSAGE_H

#include <mitogen/router.h>
#include "core/wire.h"

struct mg_message {
	struct wire_meta meta;
	uint8_t *data;			/* msgpack payload, owned */
	size_t len;
	struct mg_router *router;	/* borrowed: valid while the router is; NULL when made here */
	struct mg_receiver *receiver;	/* borrowed */
	struct mg_message *next;	/* queue link (stream output, deferral) */
	size_t sent;			/* payload bytes already written */
	bool started;			/* FIRST record written */
};

/* A message taking ownership of data (malloc'd, len bytes). */
struct mg_message *message_new_owned(const struct wire_meta *meta, uint8_t *data, size_t len);
/* Note the router that delivered msg (borrowed). */
void message_set_router(struct mg_message *msg, struct mg_router *r);
/* Fill err from a dead message's reason (ChannelError). */
void message_dead_error(const struct mg_message *msg, struct mg_error *err);
/* Set err fields (NULL-safe). */
void error_set(struct mg_error *err, enum mg_error_kind kind, int errnum,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
