/* SPDX-License-Identifier: MIT */
/* receiver.h — receiver internals used by select.c. */
#ifndef CORE_RECEIVER_H
#define CORE_RECEIVER_H

#include <mitogen/router.h>

bool receiver_has_notify(struct mg_receiver *rx);
/* Take a queued message without waiting, dead ones included.
 * Returns 0, -ETIMEDOUT when empty, -EPIPE when closed. */
int receiver_take(struct mg_receiver *rx, struct mg_message **ret_msg);

#endif
