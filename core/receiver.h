/* SPDX-License-Identifier: MIT */
/* receiver.h — receiver internals used by select.c and the call paths. */
#ifndef CORE_RECEIVER_H
#define CORE_RECEIVER_H

#include <mitogen/router.h>

bool receiver_has_notify(struct mg_receiver *rx);
/* mg_receiver_set_notify, and how many messages were queued when fn was
 * set: fn is called for every one that comes after (a message put as fn
 * was set may be counted and notified both). */
size_t receiver_set_notify_count(struct mg_receiver *rx, mg_notify_fn fn, void *userdata);
/* Take a queued message without waiting, dead ones included.
 * Returns 0, -ETIMEDOUT when empty, -EPIPE when closed. */
int receiver_take(struct mg_receiver *rx, struct mg_message **ret_msg);
/* The broker of rx's router (alive as long as rx is). */
struct mg_broker *receiver_broker(struct mg_receiver *rx);
/*
 * mg_receiver_get waits by reading the stream toward context id itself
 * (router_wait_lent). Receivers with a respondent do so for it already;
 * the agent sets it for its call receiver (the parent).
 */
void receiver_set_lend(struct mg_receiver *rx, uint32_t id);
/*
 * The synchronous half of a call (mg_call, mg_call_service): wait for the
 * one reply on rx, free rx, and store the result in *ret_result (freed
 * when ret_result is NULL). Returns 0 or -errno with err set.
 */
int receiver_await_reply(struct mg_receiver *rx, struct mg_value **ret_result,
			 struct mg_error *err);

#endif
