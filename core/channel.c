// SPDX-License-Identifier: MIT
/* channel.c — mg_channel: one receiver plus one sender to its peer. */
#include <errno.h>
#include <stdlib.h>

#include <mitogen/channel.h>
#include "core/router.h"

struct mg_channel {
	struct mg_router *router;	/* borrowed: the receiver holds a reference */
	struct mg_receiver *rx;
	struct mg_sender *tx;		/* NULL until the peer is known */
};

struct mg_channel *mg_channel_new(struct mg_router *r, const struct mg_value *peer)
{
	struct mg_channel *ch;

	if (!r || (peer && peer->type != MG_SENDER)) {
		errno = EINVAL;
		return NULL;
	}
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return NULL;
	ch->router = r;
	ch->rx = mg_receiver_new(r, NULL);
	if (!ch->rx || (peer && mg_channel_set_peer(ch, peer) < 0)) {
		mg_channel_free(ch);
		return NULL;
	}
	return ch;
}

struct mg_channel *mg_channel_from_value(struct mg_router *r, const struct mg_value *v)
{
	if (!v || v->type != MG_SENDER) {
		errno = EINVAL;
		return NULL;
	}
	return mg_channel_new(r, v);
}

struct mg_value *mg_channel_to_value(const struct mg_channel *ch)
{
	if (!ch) {
		errno = EINVAL;
		return NULL;
	}
	return mg_sender_value(ch->router->id, mg_receiver_handle(ch->rx));
}

int mg_channel_set_peer(struct mg_channel *ch, const struct mg_value *peer)
{
	struct mg_sender *tx;

	if (!ch || !peer || peer->type != MG_SENDER)
		return -EINVAL;
	tx = mg_sender_from_value(ch->router, peer);
	if (!tx)
		return -errno;
	mg_sender_free(ch->tx);
	ch->tx = tx;
	/*
	 * A peer that goes away ends the conversation: a waiter gets
	 * ChannelError, as the reference's Receiver.get raises it when
	 * communication is lost (it waited for ever: issue 19, found by
	 * selftests/faults). Not a respondent: what others send still
	 * arrives, as before.
	 */
	if (peer->ref.context_id != ch->router->id)
		router_watch(ch->router, mg_receiver_handle(ch->rx), peer->ref.context_id);
	return 0;
}

int mg_channel_send(struct mg_channel *ch, struct mg_value *value)
{
	if (!ch || !ch->tx) {
		mg_value_free(value);
		return ch ? -ENOTCONN : -EINVAL;
	}
	return mg_sender_send(ch->tx, value);
}

int mg_channel_get(struct mg_channel *ch, double timeout, struct mg_message **ret_msg,
		   struct mg_error *err)
{
	return ch ? mg_receiver_get(ch->rx, timeout, ret_msg, err) : -EINVAL;
}

int mg_channel_get_data(struct mg_channel *ch, double timeout, struct mg_value **ret_value,
			struct mg_error *err)
{
	return ch ? mg_receiver_get_data(ch->rx, timeout, ret_value, err) : -EINVAL;
}

struct mg_receiver *mg_channel_receiver(struct mg_channel *ch)
{
	return ch ? ch->rx : NULL;
}

int mg_channel_close(struct mg_channel *ch)
{
	int ret = 0;

	if (!ch)
		return -EINVAL;
	if (ch->tx)
		ret = mg_sender_close(ch->tx);
	mg_receiver_close(ch->rx);
	return ret;
}

void mg_channel_free(struct mg_channel *ch)
{
	if (!ch)
		return;
	mg_sender_free(ch->tx);
	mg_receiver_free(ch->rx);
	free(ch);
}
