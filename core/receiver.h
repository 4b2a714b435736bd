/* SPDX-License-Identifier: MIT */
/* receiver.h — receiver internals used by select.c. */
#ifndef CORE_RECEIVER_H
#define CORE_RECEIVER_H

#include <mitogen/router.h>

bool receiver_has_notify(struct mg_receiver *rx);
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

#endif
