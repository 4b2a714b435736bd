/* SPDX-License-Identifier: MIT */
/*
 * mg_channel: a sender and a receiver in one, for two-way conversations
 * between contexts at any distance in the tree.
 *
 * Wiring both ends (the reference leaves it manual; this makes it short):
 *
 *	A: ch = mg_channel_new(router, NULL);          // receiver only
 *	   pass mg_channel_to_value(ch) to B (e.g. as a call argument)
 *	B: chb = mg_channel_from_value(router, v);     // sends to A already
 *	   mg_channel_send(chb, mg_channel_to_value(chb));  // tell A our end
 *	A: mg_channel_get_data(ch, ...) -> v2; mg_channel_set_peer(ch, v2);
 *
 * Thread-safety as for receivers and senders.
 */
#ifndef MITOGEN_CHANNEL_H
#define MITOGEN_CHANNEL_H

#include <mitogen/common.h>
#include <mitogen/error.h>
#include <mitogen/router.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mg_channel;

/*
 * A channel receiving on a new handle of r and sending to peer (a sender
 * value, MG_SENDER; borrowed) or to nobody yet (NULL: see set_peer).
 * Returns NULL with errno set.
 */
MG_API struct mg_channel *mg_channel_new(struct mg_router *r, const struct mg_value *peer);
/* The other end of a channel whose value was passed to us. */
MG_API struct mg_channel *mg_channel_from_value(struct mg_router *r, const struct mg_value *v);
/* A value naming this end (where the peer should send). NULL+errno. */
MG_API struct mg_value *mg_channel_to_value(const struct mg_channel *ch);
/* Send to this peer from now on. Returns 0 or -EINVAL. */
MG_API int mg_channel_set_peer(struct mg_channel *ch, const struct mg_value *peer);
/* Send value (taken). Returns 0, -ENOTCONN without a peer, or -errno. */
MG_API int mg_channel_send(struct mg_channel *ch, struct mg_value *value);
/* As mg_receiver_get / mg_receiver_get_data on this end. */
MG_API int mg_channel_get(struct mg_channel *ch, double timeout,
			  struct mg_message **ret_msg, struct mg_error *err);
MG_API int mg_channel_get_data(struct mg_channel *ch, double timeout,
			       struct mg_value **ret_value, struct mg_error *err);
/* The receiving end, borrowed (e.g. for mg_select_add). */
MG_API struct mg_receiver *mg_channel_receiver(struct mg_channel *ch);
/* Tell the peer we are done (dead message: its gets fail with
 * ChannelError) and close our receiving end. Returns 0 or -errno. */
MG_API int mg_channel_close(struct mg_channel *ch);
/* Free (does not close the peer: call mg_channel_close first). NULL-safe. */
MG_API void mg_channel_free(struct mg_channel *ch);

#ifdef __cplusplus
}
#endif
#endif
