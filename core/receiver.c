// SPDX-License-Identifier: MIT
/*
 * receiver.c — mg_receiver (a handler that queues messages on a latch for
 * user threads) and mg_sender (a (context, handle) pair to send to).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/latch.h"
#include "core/log.h"
#include "core/message.h"
#include "core/receiver.h"
#include "core/router.h"
#include "core/spin.h"

struct mg_receiver {
	int refs;
	struct mg_router *router;
	uint32_t handle;
	struct mg_latch *latch;
	pthread_mutex_t lock;
	mg_notify_fn notify;
	void *notify_data;
	bool registered;
	bool lend;		/* wait by reading the stream toward lend_id */
	uint32_t lend_id;	/* (lend.c) */
};

struct mg_sender {
	struct mg_router *router;
	uint32_t context_id;
	uint32_t handle;
	bool closed;
};

static void receiver_unref(struct mg_receiver *rx)
{
	if (!rx || __atomic_sub_fetch(&rx->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	mg_latch_free(rx->latch);
	pthread_mutex_destroy(&rx->lock);
	free(rx);
}

/*
 * The router let go of our handle: a once receiver after its message, a
 * receiver freed, or the router shut down (router_fail_handlers). Nothing
 * can reach the latch any more, so close it: what is queued is still
 * taken, then every wait fails with ChannelError at once instead of
 * sleeping until its timeout (or for ever).
 */
static void receiver_release(void *userdata)
{
	struct mg_receiver *rx = userdata;

	mg_latch_close(rx->latch);
	receiver_unref(rx);
}

static void msg_free(void *item)
{
	mg_message_free(item);
}

/* Broker thread: the router delivered msg to our handle. */
static void receiver_on_message(struct mg_message *msg, void *userdata)
{
	struct mg_receiver *rx = userdata;
	mg_notify_fn notify;
	void *nd;

	msg->receiver = rx;
	if (mg_latch_put(rx->latch, msg) < 0) {
		mg_message_free(msg);
		return;
	}
	/*
	 * Under the lock, so that once mg_receiver_set_notify(NULL) returns
	 * the old callback is no longer running (selects free their state).
	 * The select's waiter, woken by the callback, takes that lock next
	 * (a oneshot select drops the member): wake it once the lock is free.
	 */
	latch_defer_wakes(true);
	pthread_mutex_lock(&rx->lock);
	notify = rx->notify;
	nd = rx->notify_data;
	if (notify)
		notify(rx, nd);
	pthread_mutex_unlock(&rx->lock);
	latch_defer_wakes(false);
}

bool receiver_has_notify(struct mg_receiver *rx)
{
	bool has;

	pthread_mutex_lock(&rx->lock);
	has = rx->notify != NULL;
	pthread_mutex_unlock(&rx->lock);
	return has;
}

int receiver_take(struct mg_receiver *rx, struct mg_message **ret_msg)
{
	void *item;
	int ret = mg_latch_get(rx->latch, 0, &item);

	if (ret == 0)
		*ret_msg = item;
	return ret;
}

void receiver_set_lend(struct mg_receiver *rx, uint32_t id)
{
	rx->lend = true;
	rx->lend_id = id;
}

struct mg_receiver *mg_receiver_new(struct mg_router *r, const struct mg_receiver_opts *opts)
{
	struct mg_handler_opts hopts = { .sz = sizeof(hopts) };
	struct mg_receiver *rx;
	int ret;

	if (!r || (opts && opts->sz < sizeof(size_t))) {
		errno = EINVAL;
		return NULL;
	}
	rx = calloc(1, sizeof(*rx));
	if (!rx)
		return NULL;
	rx->latch = mg_latch_new();
	if (!rx->latch) {
		free(rx);
		return NULL;
	}
	mg_latch_set_free(rx->latch, msg_free);
	spin_mutex_init(&rx->lock);
	rx->router = mg_router_ref(r);
	rx->refs = 2;		/* caller + handler registration */
	if (opts) {
		hopts.handle = opts->handle;
		hopts.once = opts->once;
		hopts.respondent = opts->respondent;
		if (opts->respondent)
			receiver_set_lend(rx, opts->respondent->id);
		hopts.policy = opts->policy;
		hopts.policy_data = opts->policy_data;
	}
	ret = router_add_handler_release(r, receiver_on_message, rx, receiver_release, &hopts);
	if (ret < 0) {
		rx->refs = 1;
		mg_router_unref(rx->router);
		receiver_unref(rx);
		errno = -ret;
		return NULL;
	}
	rx->handle = (uint32_t)ret;
	rx->registered = true;
	return rx;
}

void mg_receiver_free(struct mg_receiver *rx)
{
	if (!rx)
		return;
	mg_latch_close(rx->latch);
	/* If the handler is already gone (once, delivered) this is -ENOENT
	 * and the registration's reference was dropped by the router. */
	mg_router_del_handler(rx->router, rx->handle);
	/*
	 * The user's reference to the router goes now, not when the broker
	 * has released the registration: so a program that frees its
	 * receivers and then its router shuts the router down right there.
	 */
	mg_router_unref(rx->router);
	receiver_unref(rx);
}

uint32_t mg_receiver_handle(const struct mg_receiver *rx)
{
	return rx ? rx->handle : 0;
}

int mg_receiver_get(struct mg_receiver *rx, double timeout, struct mg_message **ret_msg,
		    struct mg_error *err)
{
	double left = timeout;
	void *item;
	int ret;

	if (!rx || !ret_msg)
		return -EINVAL;
	/* The lent wait leaves in left what it did not use. */
	if (rx->lend && timeout != 0 &&
	    router_wait_lent(rx->router, rx->lend_id, rx->latch, &left) == -ETIMEDOUT)
		ret = -ETIMEDOUT;
	else
		ret = mg_latch_get(rx->latch, left, &item);
	if (ret == -ETIMEDOUT) {
		error_set(err, MG_ERR_TIMEOUT, ETIMEDOUT, "timed out after %.3f s waiting for a reply",
			  timeout);
		return ret;
	}
	if (ret < 0) {
		error_set(err, MG_ERR_CHANNEL, EPIPE, "receiver closed");
		return -EPIPE;
	}
	if (mg_message_is_dead(item)) {
		message_dead_error(item, err);
		mg_message_free(item);
		return -EPIPE;
	}
	*ret_msg = item;
	return 0;
}

int mg_receiver_get_data(struct mg_receiver *rx, double timeout, struct mg_value **ret_value,
			 struct mg_error *err)
{
	struct mg_message *msg;
	int ret;

	if (!ret_value)
		return -EINVAL;
	ret = mg_receiver_get(rx, timeout, &msg, err);
	if (ret < 0)
		return ret;
	ret = message_take_value(msg, ret_value, err);
	mg_message_free(msg);
	return ret;
}

int receiver_await_reply(struct mg_receiver *rx, struct mg_value **ret_result,
			 struct mg_error *err)
{
	struct mg_value *v = NULL;
	int ret;

	ret = mg_receiver_get_data(rx, MG_FOREVER, &v, err);
	mg_receiver_free(rx);
	if (ret < 0)
		return ret;
	if (ret_result)
		*ret_result = v;
	else
		mg_value_free(v);
	return 0;
}

bool mg_receiver_empty(struct mg_receiver *rx)
{
	return !rx || mg_latch_empty(rx->latch);
}

void mg_receiver_close(struct mg_receiver *rx)
{
	if (rx)
		mg_latch_close(rx->latch);
}

void mg_receiver_set_notify(struct mg_receiver *rx, mg_notify_fn fn, void *userdata)
{
	receiver_set_notify_count(rx, fn, userdata);
}

size_t receiver_set_notify_count(struct mg_receiver *rx, mg_notify_fn fn, void *userdata)
{
	size_t queued;

	if (!rx)
		return 0;
	pthread_mutex_lock(&rx->lock);
	rx->notify = fn;
	rx->notify_data = userdata;
	queued = latch_count(rx->latch);
	pthread_mutex_unlock(&rx->lock);
	return queued;
}

struct mg_sender *mg_receiver_to_sender(struct mg_receiver *rx)
{
	struct mg_sender *tx;

	if (!rx) {
		errno = EINVAL;
		return NULL;
	}
	tx = calloc(1, sizeof(*tx));
	if (!tx)
		return NULL;
	tx->router = mg_router_ref(rx->router);
	tx->context_id = rx->router->id;
	tx->handle = rx->handle;
	return tx;
}

/* --- sender ------------------------------------------------------------ */

static struct mg_sender *sender_new(struct mg_router *r, uint32_t id, uint32_t handle)
{
	struct mg_sender *tx = calloc(1, sizeof(*tx));

	if (!tx)
		return NULL;
	tx->router = mg_router_ref(r);
	tx->context_id = id;
	tx->handle = handle;
	return tx;
}

struct mg_sender *mg_sender_new(struct mg_context *ctx, uint32_t handle)
{
	if (!ctx || !ctx->router || !handle) {
		errno = EINVAL;
		return NULL;
	}
	return sender_new(ctx->router, ctx->id, handle);
}

struct mg_sender *mg_sender_from_value(struct mg_router *r, const struct mg_value *v)
{
	if (!r || !v || v->type != MG_SENDER) {
		errno = EINVAL;
		return NULL;
	}
	return sender_new(r, v->ref.context_id, v->ref.handle);
}

struct mg_value *mg_sender_to_value(const struct mg_sender *tx)
{
	if (!tx) {
		errno = EINVAL;
		return NULL;
	}
	return mg_sender_value(tx->context_id, tx->handle);
}

int mg_sender_send(struct mg_sender *tx, struct mg_value *value)
{
	struct mg_message *msg;

	if (!tx || tx->closed) {
		mg_value_free(value);
		return tx ? -EPIPE : -EINVAL;
	}
	msg = mg_message_new(tx->context_id, tx->handle, value);
	if (!msg)
		return -errno;
	msg->meta.src_id = msg->meta.auth_id = tx->router->id;
	return mg_router_route(tx->router, msg);
}

int mg_sender_close(struct mg_sender *tx)
{
	struct mg_message *msg;

	if (!tx)
		return -EINVAL;
	if (tx->closed)
		return 0;
	tx->closed = true;
	msg = mg_message_dead(tx->context_id, tx->handle, "sender closed");
	if (!msg)
		return -errno;
	msg->meta.src_id = msg->meta.auth_id = tx->router->id;
	return mg_router_route(tx->router, msg);
}

void mg_sender_free(struct mg_sender *tx)
{
	if (!tx)
		return;
	mg_router_unref(tx->router);
	free(tx);
}

struct mg_broker *receiver_broker(struct mg_receiver *rx)
{
	return rx->router->broker;
}
