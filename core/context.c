// SPDX-License-Identifier: MIT
/*
 * context.c — mg_context and calling into contexts: call, call_async,
 * send, send_async, send_await, shutdown; the process identity
 * (mg_context_id, mg_parent_ids); mg_run_with_router. How a context is
 * started is master/'s business.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/latch.h"
#include "core/log.h"
#include "core/receiver.h"
#include "core/router.h"

#define IDENTITY_MAX_PARENTS 64

static uint32_t self_id;
static uint32_t parent_ids[IDENTITY_MAX_PARENTS];
static size_t nparents;
static char self_name[96] = "master";

void identity_set(uint32_t id, const uint32_t *ids, size_t n, const char *name)
{
	self_id = id;
	nparents = n < IDENTITY_MAX_PARENTS ? n : IDENTITY_MAX_PARENTS;
	memcpy(parent_ids, ids, nparents * sizeof(*ids));
	snprintf(self_name, sizeof(self_name), "%s", name ? name : "");
	log_set_self_name(self_name);
}

bool mg_is_master(void) { return self_id == 0; }
uint32_t mg_context_id(void) { return self_id; }
uint32_t mg_parent_id(void) { return nparents ? parent_ids[0] : 0; }
const char *mg_context_name_self(void) { return self_name; }

size_t mg_parent_ids(uint32_t *ids, size_t n)
{
	for (size_t i = 0; ids && i < n && i < nparents; i++)
		ids[i] = parent_ids[i];
	return nparents;
}

/* --- mg_context -------------------------------------------------------- */

struct mg_context *context_new(struct mg_router *r, uint32_t id, const char *name)
{
	struct mg_context *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	ctx->refs = 1;
	ctx->router = r;
	ctx->id = id;
	snprintf(ctx->name, sizeof(ctx->name), "%s", name ? name : "");
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_cond_init(&ctx->cond, NULL);
	return ctx;
}

struct mg_context *mg_context_ref(struct mg_context *ctx)
{
	if (ctx)
		__atomic_add_fetch(&ctx->refs, 1, __ATOMIC_RELAXED);
	return ctx;
}

struct mg_context *mg_context_unref(struct mg_context *ctx)
{
	if (ctx && __atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		pthread_cond_destroy(&ctx->cond);
		pthread_mutex_destroy(&ctx->lock);
		free(ctx);
	}
	return NULL;
}

uint32_t mg_context_remote_id(const struct mg_context *ctx) { return ctx ? ctx->id : 0; }
const char *mg_context_name(const struct mg_context *ctx) { return ctx ? ctx->name : NULL; }
struct mg_router *mg_context_router(const struct mg_context *ctx) { return ctx ? ctx->router : NULL; }
pid_t mg_context_pid(const struct mg_context *ctx) { return ctx ? ctx->pid : 0; }

bool mg_context_is_privileged(const struct mg_context *ctx)
{
	return ctx && ctx->privileged;
}

bool mg_context_is_audited(const struct mg_context *ctx)
{
	return ctx && (ctx->audited || ctx->privileged);
}

void context_set_disconnected(struct mg_context *ctx)
{
	pthread_mutex_lock(&ctx->lock);
	ctx->disconnected = true;
	pthread_cond_broadcast(&ctx->cond);
	pthread_mutex_unlock(&ctx->lock);
}

void context_set_reaped(struct mg_context *ctx, int status)
{
	pthread_mutex_lock(&ctx->lock);
	ctx->reaped = true;
	ctx->status = status;
	pthread_cond_broadcast(&ctx->cond);
	pthread_mutex_unlock(&ctx->lock);
}

int context_wait_gone(struct mg_context *ctx, double timeout)
{
	struct timespec deadline;
	struct timespec now;
	int ret = 0;

	/* ctx->cond uses CLOCK_REALTIME (default attr). */
	clock_gettime(CLOCK_REALTIME, &now);
	deadline = now;
	deadline.tv_sec += (time_t)timeout;
	deadline.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ctx->lock);
	while (!(ctx->disconnected && (!ctx->pid || ctx->reaped)) && ret == 0)
		ret = pthread_cond_timedwait(&ctx->cond, &ctx->lock, &deadline);
	ret = ctx->disconnected && (!ctx->pid || ctx->reaped) ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&ctx->lock);
	return ret;
}

/* --- sending ----------------------------------------------------------- */

int mg_context_send(struct mg_context *ctx, struct mg_message *msg)
{
	if (!ctx || !msg || !ctx->router) {
		mg_message_free(msg);
		return -EINVAL;
	}
	msg->meta.dst_id = ctx->id;
	return mg_router_route(ctx->router, msg);
}

struct mg_receiver *mg_context_send_async(struct mg_context *ctx, struct mg_message *msg,
					  bool persist)
{
	MG_OPTS(mg_receiver_opts, ro, .once = !persist, .respondent = ctx);
	struct mg_receiver *rx;
	int ret;

	if (!ctx || !msg || !ctx->router) {
		mg_message_free(msg);
		errno = EINVAL;
		return NULL;
	}
	rx = mg_receiver_new(ctx->router, &ro);
	if (!rx) {
		mg_message_free(msg);
		return NULL;
	}
	msg->meta.reply_to = mg_receiver_handle(rx);
	ret = mg_context_send(ctx, msg);
	if (ret < 0 && ret != -EMSGSIZE) {
		/* -EMSGSIZE already delivered a dead reply to rx. */
		mg_receiver_free(rx);
		errno = -ret;
		return NULL;
	}
	return rx;
}

int mg_context_send_await(struct mg_context *ctx, struct mg_message *msg, double deadline,
			  struct mg_message **ret_reply, struct mg_error *err)
{
	struct mg_receiver *rx;
	int ret;

	if (!ret_reply) {
		mg_message_free(msg);
		return -EINVAL;
	}
	rx = mg_context_send_async(ctx, msg, false);
	if (!rx) {
		error_set(err, MG_ERR_CHANNEL, errno, "send: %s", strerror(errno));
		return -errno;
	}
	ret = mg_receiver_get(rx, deadline, ret_reply, err);
	mg_receiver_free(rx);
	return ret;
}

/* --- calls ------------------------------------------------------------- */

struct mg_receiver *mg_call_async(struct mg_context *ctx, const char *fn,
				  struct mg_value *args, struct mg_error *err)
{
	struct mg_message *msg;
	struct mg_receiver *rx;
	struct mg_value *req;

	if (!ctx || !fn || !ctx->router || (args && args->type != MG_LIST)) {
		mg_value_free(args);
		error_set(err, MG_ERR_CALL, EINVAL, "invalid arguments to mg_call_async");
		errno = EINVAL;
		return NULL;
	}
	req = MG_LIST(mg_str(fn), args ? args : mg_list());
	if (!req) {
		error_set(err, MG_ERR_CALL, ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	msg = mg_message_new(ctx->id, MG_HANDLE_CALL_FUNCTION, req);
	if (!msg) {
		error_set(err, MG_ERR_CALL, errno, "cannot encode call to %s: %s", fn,
			  strerror(errno));
		return NULL;
	}
	rx = mg_context_send_async(ctx, msg, false);
	if (!rx)
		error_set(err, MG_ERR_CHANNEL, errno, "cannot send call to %s: %s", fn,
			  strerror(errno));
	return rx;
}

int mg_call(struct mg_context *ctx, const char *fn, struct mg_value *args,
	    struct mg_value **ret_result, struct mg_error *err)
{
	struct mg_receiver *rx = mg_call_async(ctx, fn, args, err);

	if (!rx)
		return -errno;
	return receiver_await_reply(rx, ret_result, err);
}

int mg_context_shutdown(struct mg_context *ctx, bool wait)
{
	struct mg_message *msg;
	double grace;
	int ret;

	if (!ctx || !ctx->router)
		return -EINVAL;
	msg = mg_message_new(ctx->id, MG_HANDLE_SHUTDOWN, NULL);
	if (!msg)
		return -errno;
	ret = mg_router_route(ctx->router, msg);
	if (ret < 0 || !wait)
		return ret;
	grace = mg_broker_shutdown_timeout(ctx->router->broker);
	if (context_wait_gone(ctx, grace) == 0)
		return 0;
	/* Did not go in time: stop it if we started it. */
	LOG_WARN("context %u (%s) did not shut down within %.1f s; killing it",
		 ctx->id, ctx->name, grace);
	if (ctx->kill)
		ctx->kill(ctx);
	return context_wait_gone(ctx, grace);
}

int mg_run_with_router(int (*fn)(struct mg_router *r, void *arg), void *arg)
{
	struct mg_router *r;
	struct mg_broker *b;
	int ret;

	if (!fn)
		return -EINVAL;
	r = mg_router_new(NULL);
	if (!r)
		return -errno;
	b = mg_broker_ref(mg_router_broker(r));
	ret = fn(r, arg);
	mg_broker_shutdown(b);
	mg_broker_join(b);
	mg_router_unref(r);
	mg_broker_unref(b);
	return ret;
}
