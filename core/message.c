// SPDX-License-Identifier: MIT
/*
 * message.c — mg_message: construction, accessors, decoding ("unpickle")
 * and replies. Routing lives in router.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/context.h>
#include <mitogen/router.h>
#include "core/message.h"
#include "core/router.h"
#include "core/value.h"

void error_set(struct mg_error *err, enum mg_error_kind kind, int errnum,
	       const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	err->kind = kind;
	err->errnum = errnum;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

struct mg_message *message_new_owned(const struct wire_meta *meta, uint8_t *data, size_t len)
{
	struct mg_message *msg = calloc(1, sizeof(*msg));

	if (!msg) {
		free(data);
		errno = ENOMEM;
		return NULL;
	}
	msg->meta = *meta;
	msg->data = data;
	msg->len = len;
	return msg;
}

void message_set_router(struct mg_message *msg, struct mg_router *r)
{
	msg->router = r;
}

struct mg_message *message_new_split(const struct wire_meta *meta, const uint8_t *prefix,
				     uint8_t prefix_len, uint8_t *body, size_t body_len)
{
	struct mg_message *msg = message_new_owned(meta, body, body_len + prefix_len);

	if (msg) {
		memcpy(msg->prefix, prefix, prefix_len);
		msg->prefix_len = prefix_len;
	}
	return msg;
}

int message_flatten(struct mg_message *msg)
{
	uint8_t *buf;
	size_t body;

	if (!msg->prefix_len)
		return 0;
	body = msg->len - msg->prefix_len;
	buf = malloc(msg->len + 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, msg->prefix, msg->prefix_len);
	if (body)
		memcpy(buf + msg->prefix_len, msg->data, body);
	if (msg->release)
		msg->release(msg->owner);
	else if (msg->hold)
		mg_value_free(msg->hold);
	else
		free(msg->data);
	msg->release = NULL;
	msg->owner = NULL;
	msg->hold = NULL;
	msg->data = buf;
	msg->prefix_len = 0;
	return 0;
}

/* msgpack header of a str/bytes of n bytes; returns its length. */
static uint8_t blob_header(enum mg_type type, uint32_t n, uint8_t *h)
{
	uint8_t code = type == MG_BYTES ? 0xc6 : 0xdb;	/* bin 32, str 32 */

	h[0] = code;
	h[1] = (uint8_t)(n >> 24);
	h[2] = (uint8_t)(n >> 16);
	h[3] = (uint8_t)(n >> 8);
	h[4] = (uint8_t)n;
	return 5;
}

/* Large str/bytes payloads go out split: no encode copy. */
#define SPLIT_MIN (64u << 10)

struct mg_message *mg_message_new(uint32_t dst_id, uint32_t handle, struct mg_value *value)
{
	struct wire_meta meta = { .dst_id = dst_id, .handle = handle,
				  .src_id = mg_context_id(), .auth_id = mg_context_id() };
	void *buf;
	size_t len;
	int ret;

	if (!value)
		value = mg_nil();
	if (!value) {
		errno = ENOMEM;
		return NULL;
	}
	if ((value->type == MG_BYTES || value->type == MG_STR) && value->len >= SPLIT_MIN) {
		struct mg_message *msg = message_new_owned(&meta, NULL, 0);

		if (!msg) {
			mg_value_free(value);
			return NULL;
		}
		msg->prefix_len = blob_header(value->type, value->len, msg->prefix);
		msg->data = (uint8_t *)value->bytes;
		msg->hold = value;
		msg->len = msg->prefix_len + (size_t)value->len;
		return msg;
	}
	ret = mg_value_encode(value, &buf, &len);
	mg_value_free(value);
	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	return message_new_owned(&meta, buf, len);
}

struct mg_message *mg_message_new_raw(uint32_t dst_id, uint32_t handle,
				      const void *data, size_t len)
{
	struct wire_meta meta = { .dst_id = dst_id, .handle = handle,
				  .src_id = mg_context_id(), .auth_id = mg_context_id() };
	uint8_t *buf;

	if (!data && len) {
		errno = EINVAL;
		return NULL;
	}
	buf = malloc(len ? len : 1);
	if (!buf) {
		errno = ENOMEM;
		return NULL;
	}
	if (len)
		memcpy(buf, data, len);
	return message_new_owned(&meta, buf, len);
}

struct mg_message *mg_message_new_shared(uint32_t dst_id, uint32_t handle,
					 const void *data, size_t len,
					 void (*release)(void *owner), void *owner)
{
	struct wire_meta meta = { .dst_id = dst_id, .handle = handle,
				  .src_id = mg_context_id(), .auth_id = mg_context_id() };
	struct mg_message *msg;

	if ((!data && len) || !release) {
		errno = EINVAL;
		return NULL;
	}
	msg = message_new_owned(&meta, NULL, 0);
	if (!msg)
		return NULL;
	msg->data = (uint8_t *)data;
	msg->len = len;
	msg->release = release;
	msg->owner = owner;
	return msg;
}

/* Make a shared payload this message's own (a copy), releasing the
 * share. Returns 0 or -ENOMEM. */
static int message_own(struct mg_message *msg)
{
	uint8_t *buf;

	if (!msg->release)
		return 0;
	buf = malloc(msg->len + 1);	/* + 1: value_decode_owned's NUL */
	if (!buf)
		return -ENOMEM;
	if (msg->len)
		memcpy(buf, msg->data, msg->len);
	msg->release(msg->owner);
	msg->release = NULL;
	msg->owner = NULL;
	msg->data = buf;
	return 0;
}

struct mg_message *mg_message_dead(uint32_t dst_id, uint32_t handle, const char *reason)
{
	struct mg_message *msg = mg_message_new(dst_id, handle, mg_str(reason ? reason : "dead"));

	if (msg)
		msg->meta.reply_to = MG_IS_DEAD;
	return msg;
}

void mg_message_free(struct mg_message *msg)
{
	if (!msg)
		return;
	if (msg->release)
		msg->release(msg->owner);
	else if (msg->hold)
		mg_value_free(msg->hold);
	else
		free(msg->data);
	free(msg);
}

uint32_t mg_message_dst_id(const struct mg_message *msg) { return msg ? msg->meta.dst_id : 0; }
uint32_t mg_message_src_id(const struct mg_message *msg) { return msg ? msg->meta.src_id : 0; }
uint32_t mg_message_auth_id(const struct mg_message *msg) { return msg ? msg->meta.auth_id : 0; }
uint32_t mg_message_handle(const struct mg_message *msg) { return msg ? msg->meta.handle : 0; }
uint32_t mg_message_reply_to(const struct mg_message *msg) { return msg ? msg->meta.reply_to : 0; }

void mg_message_set_reply_to(struct mg_message *msg, uint32_t reply_to)
{
	if (msg)
		msg->meta.reply_to = reply_to;
}

bool mg_message_is_dead(const struct mg_message *msg)
{
	return msg && msg->meta.reply_to == MG_IS_DEAD;
}

const void *mg_message_data(const struct mg_message *msg, size_t *ret_len)
{
	if (!msg || message_flatten((struct mg_message *)msg) < 0) {
		if (ret_len)
			*ret_len = 0;
		return NULL;
	}
	if (ret_len)
		*ret_len = msg->len;
	return msg->data;
}

struct mg_receiver *mg_message_receiver(const struct mg_message *msg)
{
	return msg ? msg->receiver : NULL;
}

struct mg_router *mg_message_router(const struct mg_message *msg)
{
	return msg ? msg->router : NULL;
}

void message_dead_error(const struct mg_message *msg, struct mg_error *err)
{
	struct mg_value *v = NULL;

	if (msg && msg->len && !msg->prefix_len &&
	    mg_value_decode(msg->data, msg->len, &v) == 0 &&
	    v->type == MG_STR)
		error_set(err, MG_ERR_CHANNEL, EPIPE, "%s", v->str);
	else
		error_set(err, MG_ERR_CHANNEL, EPIPE, "channel closed");
	mg_value_free(v);
}

int mg_message_value(const struct mg_message *msg, bool throw_,
		     struct mg_value **ret_value, struct mg_error *err)
{
	struct mg_value *v;
	int ret;

	if (!msg || !ret_value)
		return -EINVAL;
	if (throw_ && mg_message_is_dead(msg)) {
		message_dead_error(msg, err);
		return -EPIPE;
	}
	if (msg->prefix_len) {
		/* Split: one copy of the body, no reassembly of the payload. */
		size_t body = msg->len - msg->prefix_len;

		if (value_split_check(msg->prefix, msg->prefix_len, body) < 0)
			ret = -EBADMSG;
		else if (!(v = msg->prefix[0] == 0xc6 ? mg_bytes(msg->data, body)
						       : mg_strn((const char *)msg->data, body)))
			return -ENOMEM;
		else
			ret = 0;
	} else {
		ret = mg_value_decode(msg->data, msg->len, &v);
	}
	if (ret < 0) {
		error_set(err, MG_ERR_CHANNEL, EBADMSG, "undecodable payload from context %u",
			  msg->meta.src_id);
		return -EBADMSG;
	}
	if (throw_ && v->type == MG_ERROR) {
		if (err)
			mg_value_to_error(v, err);
		mg_value_free(v);
		return -EREMOTEIO;
	}
	*ret_value = v;
	return 0;
}

int message_take_value(struct mg_message *msg, struct mg_value **ret_value,
		       struct mg_error *err)
{
	struct mg_value *v;
	uint8_t *data = msg->data;
	int ret;

	if (mg_message_is_dead(msg)) {
		message_dead_error(msg, err);
		return -EPIPE;
	}
	if (msg->prefix_len && !msg->hold) {
		/* Split on receipt: the body is already the value's bytes. */
		ret = value_take_blob(msg->prefix, msg->prefix_len, data,
				      msg->len - msg->prefix_len, &v);
		msg->data = NULL;
		msg->len = msg->prefix_len = 0;
	} else {
		if (message_flatten(msg) < 0 || message_own(msg) < 0)
			return -ENOMEM;
		data = msg->data;
		msg->data = NULL;
		ret = value_decode_owned(data, msg->len, &v);
		msg->len = 0;
	}
	if (ret < 0) {
		error_set(err, MG_ERR_CHANNEL, EBADMSG, "undecodable payload from context %u",
			  msg->meta.src_id);
		return -EBADMSG;
	}
	if (v->type == MG_ERROR) {
		if (err)
			mg_value_to_error(v, err);
		mg_value_free(v);
		return -EREMOTEIO;
	}
	*ret_value = v;
	return 0;
}

int mg_message_reply(const struct mg_message *msg, struct mg_router *r, struct mg_value *value)
{
	struct mg_message *reply;

	if (!msg || (!msg->router && !r) || !msg->meta.reply_to ||
	    msg->meta.reply_to == MG_IS_DEAD) {
		mg_value_free(value);
		return -EINVAL;
	}
	reply = mg_message_new(msg->meta.src_id, msg->meta.reply_to, value);
	if (!reply)
		return -errno;
	return mg_router_route(msg->router ? msg->router : r, reply);
}
