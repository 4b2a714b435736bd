// SPDX-License-Identifier: MIT
/*
 * router.c — mg_router: handler table, route table, source checks and the
 * delivery rules of DESIGN §5. Messages from user threads are queued and
 * handed to the broker thread; everything that touches a stream runs there.
 *
 * Why the checks are safe: a child stream may only carry messages whose
 * src_id and auth_id route back through that same stream (the child and
 * its descendants), so a child can neither pose as another context nor
 * borrow authority it does not hold. Handlers with a policy (CALL_FUNCTION
 * with mg_has_parent_authority) then decide on auth_id alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/stats.h>
#include "core/audit.h"
#include "core/context.h"
#include "core/handles.h"
#include "core/heartbeat.h"
#include "core/hooks.h"
#include "core/log.h"
#include "core/router.h"
#include "core/spin.h"
#include "core/stream.h"

struct handler {
	uint32_t handle;
	mg_handler_fn fn;
	void *userdata;
	void (*release)(void *userdata);
	bool once;
	bool has_respondent;
	bool reply_slot;		/* handle came from handle_reply_take */
	bool has_watch;			/* router_watch: dead message, no filter */
	uint32_t respondent_id;
	uint32_t watch_id;
	mg_policy_fn policy;
	void *policy_data;
};

static void handler_free(struct handler *h)
{
	if (h->release)
		h->release(h->userdata);
	if (h->reply_slot)
		handle_reply_put(h->handle);
	free(h);
}

static void router_on_shutdown(void *arg)
{
	struct mg_router *r = arg;
	struct stream *s;

	pthread_mutex_lock(&r->lock);
	r->shutting_down = true;
	pthread_mutex_unlock(&r->lock);
	/* Broker thread: only it changes the stream list, so walk it freely. */
	for (s = r->streams; s; s = s->next) {
		struct mg_message *m;

		if (s->role != STREAM_CHILD || s->closed)
			continue;
		m = mg_message_new(s->remote_id, MG_HANDLE_SHUTDOWN, NULL);
		if (m) {
			m->meta.src_id = m->meta.auth_id = r->id;
			stream_send(s, m);
		}
	}
}

static bool router_idle(void *arg);
static void router_on_stop(void *arg);
static bool router_keep_alive(void *arg);

/*
 * Forwarded log lines. A line names its source, and a context could name
 * any: "master", another context, a host it is not on. So the source
 * shown is the name this router knows for the context the line verifiably
 * came from, and a different claim is kept beside it, marked as claimed;
 * control characters (and C1 controls in UTF-8) are escaped, so that a
 * line can neither start a forged line of its own nor drive a terminal.
 *
 * The message is [level, source, line, origin]: origin is the context
 * that logged it, as the first router above it verified. A router takes
 * it from a stream only for a context behind that same stream (an
 * intermediate can speak for its own subtree, which it could anyway,
 * never for others); otherwise the origin is the message's src_id.
 */
static __thread uint32_t log_origin;	/* set while a forwarded line is emitted */
static __thread const char *log_claimed;	/* its source, as claimed */
static __thread bool log_forwarding;

bool router_log_origin(uint32_t *ret_id, const char **ret_source)
{
	if (!log_forwarding)
		return false;
	*ret_id = log_origin;
	*ret_source = log_claimed;
	return true;
}

/* s with control characters escaped (\n, \xNN); caller frees. */
static char *escape_controls(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n * 4 + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t') {
			*o++ = '\\';
			*o++ = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
		} else if (*p < 0x20 || *p == 0x7f) {
			o += sprintf(o, "\\x%02x", *p);
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			/* U+0080..U+009F: C1 controls (CSI is U+009B) */
			o += sprintf(o, "\\u%04x", p[1]);
			p++;
		} else {
			*o++ = (char)*p;
		}
	}
	*o = '\0';
	return out;
}

static void on_forward_log(struct mg_message *msg, void *userdata)
{
	struct mg_router *r = userdata;
	struct mg_value *v = NULL;
	uint32_t origin;
	char known[112], *source = NULL, *line = NULL, *shown = NULL;
	int64_t level;

	if (mg_message_is_dead(msg) || mg_message_value(msg, false, &v, NULL) < 0 ||
	    v->type != MG_LIST || v->len < 3 || v->items[0].type != MG_INT ||
	    v->items[1].type != MG_STR || v->items[2].type != MG_STR)
		goto out;
	origin = msg->meta.src_id;
	if (v->len >= 4 && v->items[3].type == MG_INT && v->items[3].i >= 0 &&
	    v->items[3].i <= UINT32_MAX && (uint32_t)v->items[3].i != origin) {
		uint32_t claimed = (uint32_t)v->items[3].i;
		struct stream *via, *of;

		pthread_mutex_lock(&r->lock);
		via = idmap_get(&r->routes, origin);
		of = idmap_get(&r->routes, claimed);
		pthread_mutex_unlock(&r->lock);
		if (via && via == of && via->role == STREAM_CHILD)
			origin = claimed;
	}
	pthread_mutex_lock(&r->lock);
	{
		struct mg_context *ctx = idmap_get(&r->contexts, origin);

		if (origin == r->id)
			snprintf(known, sizeof(known), "%s", log_self_name());
		else if (ctx)
			snprintf(known, sizeof(known), "%s", ctx->name);
		else
			snprintf(known, sizeof(known), "context %u", origin);
	}
	pthread_mutex_unlock(&r->lock);
	source = escape_controls(v->items[1].str);
	line = escape_controls(v->items[2].str);
	if (!source || !line)
		goto out;
	if (strcmp(source, known) != 0 && asprintf(&shown, "%s (claims: %s)", known, source) < 0)
		goto out;
	level = v->items[0].i;
	if (level < MG_LOG_DEBUG)
		level = MG_LOG_DEBUG;
	if (level > MG_LOG_ERROR)
		level = MG_LOG_ERROR;
	log_origin = origin;
	log_claimed = source;
	log_forwarding = true;
	log_emit((enum mg_log_level)level, shown ? shown : source, line);
	log_forwarding = false;
out:
	free(shown);
	free(source);
	free(line);
	mg_value_free(v);
	mg_message_free(msg);
}

static struct mg_router *router_alloc(struct mg_broker *b, bool own, size_t max)
{
	MG_OPTS(mg_handler_opts, log_opts, .handle = MG_HANDLE_FORWARD_LOG);

	struct mg_router *r = calloc(1, sizeof(*r));
	pthread_rwlockattr_t rwa;

	if (!r)
		return NULL;
	r->scratch = malloc(WIRE_PAYLOAD_MAX);
	if (!r->scratch) {
		free(r);
		return NULL;
	}
	r->refs = 1;
	r->broker = b;
	r->own_broker = own;
	r->max_message_size = max ? max : MG_DEFAULT_MAX_MESSAGE_SIZE;
	r->next_handle = MG_HANDLE_USER_MIN;
	r->next_id = 1;
	spin_mutex_init(&r->lock);
	spin_mutex_init(&r->qlock);
	/* The broker thread frees closed streams: it must not wait behind
	 * a steady flow of user threads' writes. No reader nests. */
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&r->life, &rwa);
	pthread_rwlockattr_destroy(&rwa);
	idmap_init(&r->handlers);
	idmap_init(&r->routes);
	idmap_init(&r->contexts);
	idmap_init(&r->allocations);
	r->client.on_shutdown = router_on_shutdown;
	r->client.idle = router_idle;
	r->client.on_stop = router_on_stop;
	r->client.keep_alive = router_keep_alive;
	r->client.arg = r;
	broker_client_add(b, &r->client);
	mg_router_add_handler(r, on_forward_log, r, &log_opts);
	audit_router_init(r);
	routes_init(r);
	heartbeat_init(r);
	return r;
}

struct mg_router *mg_router_new(const struct mg_router_opts *opts)
{
	struct mg_broker *b = NULL;
	size_t max = 0;
	bool own = false;
	struct mg_router *r;

	if (opts && opts->sz < sizeof(size_t)) {
		errno = EINVAL;
		return NULL;
	}
	if (opts && opts->sz >= offsetof(struct mg_router_opts, broker) + sizeof(void *))
		b = opts->broker;
	if (opts && opts->sz >= offsetof(struct mg_router_opts, max_message_size) + sizeof(size_t))
		max = opts->max_message_size;
	if (b) {
		mg_broker_ref(b);
	} else {
		b = mg_broker_new(NULL);
		if (!b)
			return NULL;
		own = true;
	}
	r = router_alloc(b, own, max);
	if (!r) {
		mg_broker_unref(b);
		errno = ENOMEM;
		return NULL;
	}
	if (opts && opts->sz >= offsetof(struct mg_router_opts, reassembly_budget) + sizeof(size_t))
		r->rx_budget = opts->reassembly_budget;
	heartbeat_set_opts(r, opts);
	r->id = mg_context_id();
	if (r->id == 0)
		audit_router_env(r);
	return r;
}

struct mg_router *router_new_child(struct mg_broker *b, size_t max)
{
	struct mg_router *r = router_alloc(mg_broker_ref(b), false, max);

	if (!r) {
		mg_broker_unref(b);
		return NULL;
	}
	r->booting = true;
	return r;
}

void router_set_id(struct mg_router *r, uint32_t id)
{
	pthread_mutex_lock(&r->lock);
	r->id = id;
	r->booting = false;
	pthread_mutex_unlock(&r->lock);
}

struct mg_router *mg_router_ref(struct mg_router *r)
{
	if (r)
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
	return r;
}

static void close_all_streams(struct mg_router *r)
{
	struct stream *s;

	for (;;) {
		pthread_mutex_lock(&r->lock);
		for (s = r->streams; s && s->closed; s = s->next)
			;
		pthread_mutex_unlock(&r->lock);
		if (!s)
			break;
		stream_close(s, "router shut down");
	}
	routes_stop(r);
	heartbeat_stop(r);
}

static void release_deferred(void *arg);

/*
 * The router shuts down (its broker stops, or it is destroyed): every
 * handler still registered is taken out of the table and called with a
 * dead message saying why, as the reference's Router._on_broker_exit
 * does, so that whoever waits on a receiver wakes with ChannelError
 * instead of sleeping on (for ever with MG_FOREVER). From then on a
 * handler registered late gets its dead message at once
 * (router_add_handler_release). Broker role, or after the broker stopped.
 */
static void router_fail_handlers(struct mg_router *r, const char *why)
{
	struct handler *hs[64];
	size_t n;

	do {
		/* Whoever takes a handler out of the table delivers to it. */
		pthread_mutex_lock(&r->lock);
		r->handlers_closed = true;
		n = idmap_values(&r->handlers, (void **)hs, 64);
		for (size_t i = 0; i < n; i++)
			idmap_del(&r->handlers, hs[i]->handle);
		pthread_mutex_unlock(&r->lock);
		for (size_t i = 0; i < n; i++) {
			struct mg_message *msg = mg_message_dead(r->id, hs[i]->handle, why);

			if (msg) {
				msg->meta.src_id = msg->meta.auth_id = r->id;
				message_set_router(msg, r);
				hs[i]->fn(msg, hs[i]->userdata);
			}
			release_deferred(hs[i]);
		}
	} while (n);
}

/* Deferred by a handler registered after router_fail_handlers ran. */
static void fail_late_handler(void *arg)
{
	struct mg_router *r = arg;

	router_fail_handlers(r, "router shut down");
}

static void close_deferred(void *arg)
{
	close_all_streams(arg);
	router_fail_handlers(arg, "router shut down");
}

static void barrier(void *arg)
{
}

static void free_dead_streams(struct mg_router *r);

static void router_destroy(struct mg_router *r)
{
	struct mg_context *ctxs[1024];
	size_t n;

	if (r->own_broker) {
		mg_broker_shutdown(r->broker);
		mg_broker_join(r->broker);
	} else if (!broker_stopped(r->broker)) {
		/* Close, then wait past whatever work the close queued. */
		if (broker_call(r->broker, close_deferred, r, false) == 0)
			broker_call(r->broker, barrier, NULL, true);
	} else {
		close_all_streams(r);
		router_fail_handlers(r, "router shut down");
	}
	broker_client_del(r->broker, &r->client);
	free_dead_streams(r);
	/* Handlers still registered: release them. */
	for (;;) {
		struct handler *hs[256];

		n = idmap_values(&r->handlers, (void **)hs, 256);
		if (!n)
			break;
		for (size_t i = 0; i < n; i++) {
			idmap_del(&r->handlers, hs[i]->handle);
			handler_free(hs[i]);
		}
	}
	for (;;) {
		n = idmap_values(&r->contexts, (void **)ctxs, 1024);
		if (!n)
			break;
		for (size_t i = 0; i < n; i++) {
			idmap_del(&r->contexts, ctxs[i]->id);
			ctxs[i]->router = NULL;
			mg_context_unref(ctxs[i]);
		}
	}
	idmap_free(&r->handlers);
	idmap_free(&r->routes);
	idmap_free(&r->contexts);
	idmap_free(&r->allocations);
	for (struct mg_message *m = r->q_head, *next; m; m = next) {
		next = m->next;
		mg_message_free(m);
	}
	acct_router_free(r);
	audit_router_free(r);
	free(r->down);
	mg_broker_unref(r->broker);
	pthread_mutex_destroy(&r->lock);
	pthread_rwlock_destroy(&r->life);
	pthread_mutex_destroy(&r->qlock);
	free(r->scratch);
	free(r);
}

static void *router_destroy_thread(void *arg)
{
	router_destroy(arg);
	return NULL;
}

struct mg_router *mg_router_unref(struct mg_router *r)
{
	/*
	 * Work the router queued on the broker holds no reference:
	 * router_destroy waits for it (join, or a barrier on a shared broker).
	 * `dying` makes sure a reference taken during destruction and dropped
	 * again cannot destroy twice.
	 */
	if (r && __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0 &&
	    !__atomic_exchange_n(&r->dying, true, __ATOMIC_ACQ_REL)) {
		pthread_t t;

		/* Destruction waits for the broker: never on its own thread. */
		if (mg_broker_on_thread(r->broker) &&
		    pthread_create(&t, NULL, router_destroy_thread, r) == 0)
			pthread_detach(t);
		else
			router_destroy(r);
	}
	return NULL;
}

struct mg_broker *mg_router_broker(struct mg_router *r)
{
	return r ? r->broker : NULL;
}

size_t mg_router_max_message_size(const struct mg_router *r)
{
	return r ? r->max_message_size : 0;
}

uint32_t mg_router_id(const struct mg_router *r)
{
	return r ? r->id : 0;
}

int mg_router_enable_debug(struct mg_router *r)
{
	if (!r)
		return -EINVAL;
	r->debug = true;
	return log_debug_file();
}

/* --- handlers ---------------------------------------------------------- */

static void release_deferred(void *arg)
{
	handler_free(arg);
}

static void deliver_dead_deferred(void *arg);

struct dead_delivery {
	struct mg_router *r;
	uint32_t handle;
	char reason[160];
};

int router_add_handler_release(struct mg_router *r, mg_handler_fn fn, void *userdata,
			       void (*release)(void *userdata),
			       const struct mg_handler_opts *opts)
{
	struct handler *h;
	struct mg_context *resp = NULL;
	uint32_t handle = 0;
	bool late;
	int ret;

	if (!r || !fn || (opts && opts->sz < sizeof(size_t)))
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fn = fn;
	h->userdata = userdata;
	h->release = release;
	if (opts) {
		handle = opts->handle;
		h->once = opts->once;
		resp = opts->respondent;
		h->policy = opts->policy;
		h->policy_data = opts->policy_data;
	}
	if (resp) {
		h->has_respondent = true;
		h->respondent_id = resp->id;
	}
	/* A call's reply: a handle nobody can guess, that the kernel can
	 * check (core/handles.c). Taken outside r->lock. */
	if (!handle && resp && h->once) {
		handle = handle_reply_take();
		h->reply_slot = handle != 0;
	}
	pthread_mutex_lock(&r->lock);
	if (handle) {
		if (idmap_get(&r->handlers, handle)) {
			pthread_mutex_unlock(&r->lock);
			if (h->reply_slot) {
				/* Taken by an explicit registration: the
				 * same slot comes back with other bits. */
				handle_reply_put(handle);
				free(h);
				return router_add_handler_release(r, fn, userdata, release, opts);
			}
			free(h);
			return -EEXIST;
		}
	} else {
		do {
			handle = r->next_handle++;
			if (r->next_handle >= MG_HANDLE_REPLY_MIN)
				r->next_handle = MG_HANDLE_USER_MIN;
		} while (idmap_get(&r->handlers, handle));
	}
	h->handle = handle;
	ret = idmap_put(&r->handlers, handle, h);
	late = r->handlers_closed;
	pthread_mutex_unlock(&r->lock);
	if (ret < 0) {
		if (h->reply_slot)
			handle_reply_put(handle);
		free(h);
		return ret;
	}
	if (late) {
		/* Shut down already: its dead message comes at once (after
		 * this batch on the broker thread; inline once it stopped). */
		broker_defer_later(r->broker, fail_late_handler, r);
		return (int)handle;
	}
	if (resp) {
		bool gone;

		pthread_mutex_lock(&resp->lock);
		gone = resp->disconnected;
		pthread_mutex_unlock(&resp->lock);
		if (gone) {
			struct dead_delivery *dd = calloc(1, sizeof(*dd));

			if (dd) {
				dd->r = r;	/* router_destroy waits for deferred work */
				dd->handle = handle;
				snprintf(dd->reason, sizeof(dd->reason),
					 "respondent context %u (%s) disconnected",
					 resp->id, resp->name);
				mg_broker_defer(r->broker, deliver_dead_deferred, dd);
			}
		}
	}
	return (int)handle;
}

int mg_router_add_handler(struct mg_router *r, mg_handler_fn fn, void *userdata,
			  const struct mg_handler_opts *opts)
{
	return router_add_handler_release(r, fn, userdata, NULL, opts);
}

int mg_router_del_handler(struct mg_router *r, uint32_t handle)
{
	struct handler *h;

	if (!r)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	h = idmap_del(&r->handlers, handle);
	pthread_mutex_unlock(&r->lock);
	if (!h)
		return -ENOENT;
	/* Release on the broker thread, after any delivery in progress. */
	if (mg_broker_defer(r->broker, release_deferred, h) < 0)
		release_deferred(h);
	return 0;
}

/* Deliver a dead message straight to a handler, bypassing its policy. */
static void deliver_dead(struct mg_router *r, uint32_t handle, const char *reason)
{
	struct handler *h;
	struct mg_message *msg;
	mg_handler_fn fn;
	void *ud;

	pthread_mutex_lock(&r->lock);
	h = idmap_get(&r->handlers, handle);
	if (h && h->once)
		idmap_del(&r->handlers, handle);
	pthread_mutex_unlock(&r->lock);
	if (!h)
		return;
	fn = h->fn;
	ud = h->userdata;
	msg = mg_message_dead(r->id, handle, reason);
	if (msg) {
		msg->meta.src_id = msg->meta.auth_id = r->id;
		message_set_router(msg, r);
		fn(msg, ud);
	}
	if (h->once)
		release_deferred(h);
}

static void deliver_dead_deferred(void *arg)
{
	struct dead_delivery *dd = arg;

	deliver_dead(dd->r, dd->handle, dd->reason);
	free(dd);
}

int router_watch(struct mg_router *r, uint32_t handle, uint32_t id)
{
	struct dead_delivery *dd = NULL;
	struct handler *h;

	pthread_mutex_lock(&r->lock);
	h = idmap_get(&r->handlers, handle);
	if (h) {
		h->has_watch = true;
		h->watch_id = id;
		/* Gone already (the master routes every context it can
		 * reach): no loss will be reported again. */
		if (!r->parent && id != r->id && !idmap_get(&r->routes, id))
			dd = calloc(1, sizeof(*dd));
	}
	pthread_mutex_unlock(&r->lock);
	if (!h)
		return -ENOENT;
	if (dd) {
		dd->r = r;	/* router_destroy waits for deferred work */
		dd->handle = handle;
		snprintf(dd->reason, sizeof(dd->reason), "context %u disconnected", id);
		mg_broker_defer(r->broker, deliver_dead_deferred, dd);
	}
	return 0;
}

/* --- policies ---------------------------------------------------------- */

bool mg_has_parent_authority(const struct mg_message *msg, const struct mg_stream *stream,
			     void *userdata)
{
	uint32_t ids[64];
	size_t n;
	uint32_t self;

	if (!msg)
		return false;
	self = msg->router ? msg->router->id : mg_context_id();
	if (msg->meta.auth_id == self)
		return true;
	n = mg_parent_ids(ids, 64);
	for (size_t i = 0; i < n && i < 64; i++)
		if (ids[i] == msg->meta.auth_id)
			return true;
	return false;
}

bool mg_is_immediate_child(const struct mg_message *msg, const struct mg_stream *stream,
			   void *userdata)
{
	const struct stream *s = (const struct stream *)stream;

	return msg && s && s->role == STREAM_CHILD && s->remote_id == msg->meta.src_id;
}

uint32_t mg_stream_remote_id(const struct mg_stream *stream)
{
	return stream ? ((const struct stream *)stream)->remote_id : 0;
}

/* --- routing ----------------------------------------------------------- */

static void send_dead_reply(struct mg_router *r, const struct mg_message *msg,
			    const char *reason)
{
	struct mg_message *reply;

	if (!msg->meta.reply_to || msg->meta.reply_to == MG_IS_DEAD)
		return;
	reply = mg_message_dead(msg->meta.src_id, msg->meta.reply_to, reason);
	if (!reply)
		return;
	reply->meta.src_id = reply->meta.auth_id = r->id;
	router_dispatch(r, reply, NULL);
}

void router_refuse(struct mg_router *r, struct mg_message *msg, struct stream *in,
		   const char *why)
{
	struct mg_value *v;
	struct mg_message *reply;
	char text[256];

	if (!msg->meta.reply_to || msg->meta.reply_to == MG_IS_DEAD)
		return;
	snprintf(text, sizeof(text), "refused by policy: %s", why);
	v = mg_error_value(MG_ERR_CALL, EACCES, log_self_name(), "", text);
	reply = mg_message_new(msg->meta.src_id, msg->meta.reply_to, v);
	if (!reply)
		return;
	reply->meta.src_id = reply->meta.auth_id = r->id;
	if (in) {
		/* The claimed source may be forged: answer whoever sent it. */
		reply->meta.dst_id = in->remote_id;
		stream_send(in, reply);
	} else {
		router_dispatch(r, reply, NULL);
	}
}

/*
 * Replies are bound to their respondent (README, Security): a message to a
 * handler that has one is delivered when it comes from the respondent, or
 * from a router on the path between here and the respondent. Those send
 * a dead message when they lose it ("no route", a channel closed) and a
 * CallError when they refuse the call (a policy, the kernel filter); they
 * could put any source behind them on a message anyway, since routers
 * check a source only against the stream it came in on, so admitting all
 * they send costs nothing. The path is: this router; the routers the ids
 * of contexts below us were allocated for (r->allocations: id -> its
 * parent + 1), from the respondent up to us; and our own parents, through
 * which everything outside our subtree is reached.
 */
static bool on_path_locked(struct mg_router *r, uint32_t respondent, uint32_t src)
{
	uint32_t ids[64], id = respondent;
	size_t n;

	if (src == r->id)
		return true;
	for (int hops = 0; hops < 64; hops++) {
		uintptr_t up = (uintptr_t)idmap_get(&r->allocations, id);

		if (!up || (id = (uint32_t)(up - 1)) == r->id)
			break;
		if (id == src)
			return true;
	}
	n = mg_parent_ids(ids, 64);
	for (size_t i = 0; i < n && i < 64; i++)
		if (ids[i] == src)
			return true;
	return false;
}

/* A reply from someone other than its respondent: drop it, say so once a
 * stream, count it. The sender is verified: router_receive checked that
 * it is behind `in` (a child stream), or it came from above. */
static void drop_foreign_reply(struct mg_router *r, struct mg_message *msg, struct stream *in,
			       uint32_t respondent)
{
	if (in && !in->reply_warned) {
		in->reply_warned = true;
		LOG_ERROR("stream %s: dropped reply from unexpected context %u to handle %u "
			  "(it waits for context %u); further ones on this stream are "
			  "counted, not logged", in->name, msg->meta.src_id, msg->meta.handle,
			  respondent);
	}
	if (in && in->role == STREAM_CHILD)
		acct_rx_drop(in, MG_DROP_REPLY);
	audit_denial(r, false, "reply from a context that was not called",
		     in ? in->remote_id : msg->meta.src_id, msg->meta.src_id, msg->meta.auth_id,
		     msg->meta.dst_id, msg->meta.handle);
	mg_message_free(msg);
}

static void deliver_local(struct mg_router *r, struct mg_message *msg, struct stream *in)
{
	struct handler *h;
	mg_policy_fn policy;
	void *policy_data;
	mg_handler_fn fn;
	void *ud;
	bool once;

	pthread_mutex_lock(&r->lock);
	h = idmap_get(&r->handlers, msg->meta.handle);
	if (h && h->has_respondent && msg->meta.src_id != h->respondent_id &&
	    !on_path_locked(r, h->respondent_id, msg->meta.src_id)) {
		uint32_t respondent = h->respondent_id;

		pthread_mutex_unlock(&r->lock);
		drop_foreign_reply(r, msg, in, respondent);
		return;
	}
	policy = h ? h->policy : NULL;
	policy_data = h ? h->policy_data : NULL;
	/* No policy to consult: take a one-shot handler out right away (one
	 * trip through the lock on the reply path instead of two). */
	if (h && !policy && h->once)
		idmap_del(&r->handlers, msg->meta.handle);
	pthread_mutex_unlock(&r->lock);
	if (!h) {
		if (!mg_message_is_dead(msg)) {
			LOG_WARN("message from context %u to invalid handle %u",
				 msg->meta.src_id, msg->meta.handle);
			send_dead_reply(r, msg, "invalid handle");
		}
		mg_message_free(msg);
		return;
	}
	if (!msg->router)
		message_set_router(msg, r);
	if (policy && !policy(msg, (const struct mg_stream *)in, policy_data)) {
		LOG_ERROR("refused message from context %u (auth_id %u) to handle %u: policy",
			  msg->meta.src_id, msg->meta.auth_id, msg->meta.handle);
		audit_denial(r, false, "caller lacks authority", in ? in->remote_id : msg->meta.src_id,
			     msg->meta.src_id, msg->meta.auth_id, msg->meta.dst_id,
			     msg->meta.handle);
		router_refuse(r, msg, NULL, "caller lacks authority");
		mg_message_free(msg);
		return;
	}
	if (policy) {
		/* The policy ran unlocked: the handler may have gone meanwhile. */
		pthread_mutex_lock(&r->lock);
		h = idmap_get(&r->handlers, msg->meta.handle);
		if (h && h->once)
			idmap_del(&r->handlers, msg->meta.handle);
		pthread_mutex_unlock(&r->lock);
		if (!h) {
			mg_message_free(msg);
			return;
		}
	}
	fn = h->fn;
	ud = h->userdata;
	once = h->once;
	fn(msg, ud);
	if (once)
		release_deferred(h);
}

/* Where a message to id leaves: its route, else up to the parent. */
static struct stream *next_hop_locked(struct mg_router *r, uint32_t id)
{
	struct stream *s = idmap_get(&r->routes, id);

	return s ? s : r->parent;
}

struct stream *router_next_hop(struct mg_router *r, uint32_t id)
{
	struct stream *s;

	pthread_mutex_lock(&r->lock);
	s = next_hop_locked(r, id);
	pthread_mutex_unlock(&r->lock);
	return s;
}

void router_dispatch(struct mg_router *r, struct mg_message *msg, struct stream *in)
{
	struct stream *s;
	char reason[64];

	if (log_io_enabled())
		LOG_DEBUG("io: %u -> %u handle %u reply_to %u, %zu bytes, from %s",
			  msg->meta.src_id, msg->meta.dst_id, msg->meta.handle,
			  msg->meta.reply_to, msg->len, in ? in->name : "here");

	if (msg->meta.dst_id == r->id ||
	    (r->booting && msg->meta.handle == MG_HANDLE_BOOT && in && in == r->parent)) {
		deliver_local(r, msg, in);
		return;
	}
	s = router_next_hop(r, msg->meta.dst_id);
	if (!s || s == in || s->closed) {
		if (!mg_message_is_dead(msg)) {
			LOG_DEBUG("no route to %u for message from %u", msg->meta.dst_id,
				  msg->meta.src_id);
			snprintf(reason, sizeof(reason), "no route to %u", msg->meta.dst_id);
			send_dead_reply(r, msg, reason);
		}
		mg_message_free(msg);
		return;
	}
	/* A child sending into a full backlog waits for it (docs/limits.md). */
	if (stream_send(s, msg) && in && in->role == STREAM_CHILD)
		stream_hold(in, s);
}

void router_release_waiters(struct mg_router *r, const struct stream *dst)
{
	struct stream *t;

	pthread_mutex_lock(&r->lock);
	for (t = r->streams; t; t = t->next)
		if (t != dst && __atomic_load_n(&t->waiting, __ATOMIC_RELAXED))
			stream_release(t, dst);
	pthread_mutex_unlock(&r->lock);
}

void router_receive(struct mg_router *r, struct stream *s, struct mg_message *msg)
{
	if (s->role == STREAM_CHILD && router_test_unchecked) {
		acct_rx(s, &msg->meta, msg->len);
	} else if (s->role == STREAM_CHILD) {
		struct stream *src, *auth;

		pthread_mutex_lock(&r->lock);
		src = idmap_get(&r->routes, msg->meta.src_id);
		auth = idmap_get(&r->routes, msg->meta.auth_id);
		pthread_mutex_unlock(&r->lock);
		if (src != s) {
			LOG_ERROR("stream %s: refused message with spoofed src_id %u "
				  "(context %u is not behind this stream)",
				  s->name, msg->meta.src_id, msg->meta.src_id);
			acct_rx_drop(s, MG_DROP_SRC_ID);
			audit_denial(r, false, "spoofed src_id", s->remote_id, msg->meta.src_id,
				     msg->meta.auth_id, msg->meta.dst_id, msg->meta.handle);
			router_refuse(r, msg, s, "bad src_id");
			mg_message_free(msg);
			return;
		}
		if (auth != s) {
			LOG_ERROR("stream %s: refused message from %u with forged auth_id %u",
				  s->name, msg->meta.src_id, msg->meta.auth_id);
			acct_rx_drop(s, MG_DROP_AUTH_ID);
			audit_denial(r, false, "forged auth_id", s->remote_id, msg->meta.src_id,
				     msg->meta.auth_id, msg->meta.dst_id, msg->meta.handle);
			router_refuse(r, msg, s, "bad auth_id");
			mg_message_free(msg);
			return;
		}
		acct_rx(s, &msg->meta, msg->len);
	}
	if (msg->meta.dst_id == r->id && (msg->meta.handle == MG_HANDLE_ADD_ROUTE ||
					  msg->meta.handle == MG_HANDLE_DEL_ROUTE)) {
		routes_on_message(r, s, msg);
		return;
	}
	/* the master's note of a new id, passing through to its owner */
	if (s->role == STREAM_PARENT && msg->meta.handle == MG_HANDLE_ADD_ROUTE)
		routes_note_allocation(r, msg);
	router_dispatch(r, msg, s);
}

void router_flush_queue(struct mg_router *r)
{
	struct mg_message *m, *next;

	pthread_mutex_lock(&r->qlock);
	m = r->q_head;
	r->q_head = r->q_tail = NULL;
	pthread_mutex_unlock(&r->qlock);
	for (; m; m = next) {
		next = m->next;
		m->next = NULL;
		router_dispatch(r, m, NULL);
	}
}

static void drain_queue(void *arg)
{
	struct mg_router *r = arg;
	struct mg_message *m, *next;

	/*
	 * q_scheduled stays set until everything taken is dispatched, so a
	 * user thread's direct write can never overtake its own queued
	 * messages (mg_router_route).
	 */
	for (;;) {
		pthread_mutex_lock(&r->qlock);
		m = r->q_head;
		r->q_head = r->q_tail = NULL;
		if (!m)
			r->q_scheduled = false;
		pthread_mutex_unlock(&r->qlock);
		if (!m)
			break;
		for (; m; m = next) {
			next = m->next;
			m->next = NULL;
			router_dispatch(r, m, NULL);
		}
	}
}

/*
 * The fast path for a user thread: a one-record message for another
 * context, with nothing of ours still queued for the broker, is written
 * straight to its stream (DESIGN §7 keeps every read, every registration
 * and every multi-record message on the broker thread). Saves two thread
 * hand-offs per call round trip. Returns 0 or -EAGAIN (not sent).
 */
static int route_direct(struct mg_router *r, struct mg_message *msg)
{
	struct stream *s;
	bool busy;
	int ret = -EAGAIN;

	if (msg->len > WIRE_PAYLOAD_MAX || msg->meta.dst_id == r->id)
		return -EAGAIN;
	pthread_mutex_lock(&r->qlock);
	busy = r->q_scheduled;
	pthread_mutex_unlock(&r->qlock);
	if (busy)
		return -EAGAIN;
	if (log_io_enabled())
		LOG_DEBUG("io: %u -> %u handle %u reply_to %u, %zu bytes, direct",
			  msg->meta.src_id, msg->meta.dst_id, msg->meta.handle,
			  msg->meta.reply_to, msg->len);
	pthread_mutex_lock(&r->lock);
	s = r->booting || r->shutting_down ? NULL : next_hop_locked(r, msg->meta.dst_id);
	if (s)
		pthread_rwlock_rdlock(&r->life);
	pthread_mutex_unlock(&r->lock);
	if (s) {
		ret = stream_send_direct(s, msg);
		pthread_rwlock_unlock(&r->life);
	}
	return ret;
}

static int router_enqueue(struct mg_router *r, struct mg_message *msg, bool later)
{
	bool schedule;

	msg->next = NULL;
	pthread_mutex_lock(&r->qlock);
	if (r->q_tail)
		r->q_tail->next = msg;
	else
		r->q_head = msg;
	r->q_tail = msg;
	schedule = !r->q_scheduled;
	r->q_scheduled = true;
	pthread_mutex_unlock(&r->qlock);
	if (schedule) {
		/* No reference: router_destroy waits for deferred work. */
		int ret = later ? broker_defer_later(r->broker, drain_queue, r)
				: mg_broker_defer(r->broker, drain_queue, r);

		if (ret < 0)
			return ret;
	}
	return 0;
}

int router_route_later(struct mg_router *r, struct mg_message *msg)
{
	if (msg->len > r->max_message_size) {
		mg_message_free(msg);
		return -EMSGSIZE;
	}
	return router_enqueue(r, msg, true);
}

int mg_router_route(struct mg_router *r, struct mg_message *msg)
{

	if (!r || !msg) {
		mg_message_free(msg);
		return -EINVAL;
	}
	if (msg->len > r->max_message_size) {
		LOG_ERROR("message to %u handle %u: %zu bytes is over the %zu byte limit",
			  msg->meta.dst_id, msg->meta.handle, msg->len, r->max_message_size);
		/*
		 * Tell whoever waits for this message: the sender's reply handle
		 * for a request, the intended receiver for a reply or a send.
		 */
		struct mg_message *dead = NULL;

		if (msg->meta.reply_to && msg->meta.reply_to != MG_IS_DEAD)
			dead = mg_message_dead(msg->meta.src_id, msg->meta.reply_to,
					       "message too large");
		else if (msg->meta.reply_to != MG_IS_DEAD)
			dead = mg_message_dead(msg->meta.dst_id, msg->meta.handle,
					       "message too large");
		if (dead) {
			dead->meta.src_id = dead->meta.auth_id = r->id;
			mg_router_route(r, dead);
		}
		mg_message_free(msg);
		return -EMSGSIZE;
	}
	if (mg_broker_on_thread(r->broker)) {
		router_dispatch(r, msg, NULL);
		return 0;
	}
	if (route_direct(r, msg) == 0)
		return 0;
	return router_enqueue(r, msg, false);
}

/* --- streams ----------------------------------------------------------- */

struct add_stream {
	struct mg_router *r;
	struct stream *s;
	int ret;
};

static void add_stream_deferred(void *arg)
{
	struct add_stream *as = arg;
	struct mg_router *r = as->r;
	struct stream *s = as->s;

	s->router = r;
	pthread_mutex_lock(&r->lock);
	if (r->shutting_down) {
		pthread_mutex_unlock(&r->lock);
		as->ret = -ESHUTDOWN;
		stream_free(s);		/* never registered: ours to free */
		return;
	}
	s->next = r->streams;
	r->streams = s;
	if (s->role == STREAM_PARENT) {
		r->parent = s;
	} else {
		r->nchildren++;
		as->ret = idmap_put(&r->routes, s->remote_id, s);
	}
	pthread_mutex_unlock(&r->lock);
	if (as->ret == 0)
		as->ret = stream_start(r->broker, s);
	if (as->ret < 0) {
		stream_close(s, "could not register stream");
	} else if (s->role == STREAM_CHILD) {
		routes_announce(r, s);
		heartbeat_child_added(r);
	}
}

int router_add_stream(struct mg_router *r, struct stream *s)
{
	struct add_stream as = { .r = r, .s = s };
	int ret = broker_call(r->broker, add_stream_deferred, &as, false);

	return ret < 0 ? ret : as.ret;
}

int router_route_add(struct mg_router *r, uint32_t id, struct stream *s)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = idmap_put(&r->routes, id, s);
	pthread_mutex_unlock(&r->lock);
	if (ret == 0 && s->role == STREAM_CHILD)
		hooks_route(r, id, s->src.fd, true);
	return ret;
}

struct lost_scan {
	struct mg_router *r;
	uint32_t *handles;
	size_t n, cap;
	uint32_t *ids;
	size_t nids;
	bool all_upstream;	/* parent lost: every id not routed below is lost */
};

static bool id_lost(struct lost_scan *ls, uint32_t id)
{
	for (size_t i = 0; i < ls->nids; i++)
		if (ls->ids[i] == id)
			return true;
	return ls->all_upstream && id != ls->r->id && !idmap_get(&ls->r->routes, id);
}

static void scan_handler(uint32_t key, void *val, void *arg)
{
	struct lost_scan *ls = arg;
	struct handler *h = val;

	if (!(h->has_respondent && id_lost(ls, h->respondent_id)) &&
	    !(h->has_watch && id_lost(ls, h->watch_id)))
		return;
	if (ls->n == ls->cap) {
		size_t cap = ls->cap ? ls->cap * 2 : 16;
		uint32_t *p = realloc(ls->handles, cap * sizeof(*p));

		if (!p)
			return;
		ls->handles = p;
		ls->cap = cap;
	}
	ls->handles[ls->n++] = key;
}

struct route_scan {
	struct stream *s;
	uint32_t *ids;
	size_t n, cap;
};

static void scan_route(uint32_t key, void *val, void *arg)
{
	struct route_scan *rs = arg;

	if (val != rs->s)
		return;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 8;
		uint32_t *p = realloc(rs->ids, cap * sizeof(*p));

		if (!p)
			return;
		rs->ids = p;
		rs->cap = cap;
	}
	rs->ids[rs->n++] = key;
}

static struct stream *dead_streams;
static pthread_mutex_t dead_lock = PTHREAD_MUTEX_INITIALIZER;

static void free_dead_streams(struct mg_router *r)
{
	struct stream **pp, *s;

	pthread_rwlock_wrlock(&r->life);
	pthread_mutex_lock(&dead_lock);
	for (pp = &dead_streams; (s = *pp);) {
		if (s->router == r) {
			*pp = s->next;
			stream_free(s);
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&dead_lock);
	pthread_rwlock_unlock(&r->life);
}

static void free_dead_timer(void *arg)
{
	free_dead_streams(arg);
}

void router_lost(struct mg_router *r, const uint32_t *ids, size_t n, bool all_upstream,
		 const char *why)
{
	struct lost_scan ls = { .r = r, .ids = (uint32_t *)ids, .nids = n,
				.all_upstream = all_upstream };

	pthread_mutex_lock(&r->lock);
	idmap_each(&r->handlers, scan_handler, &ls);
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < n; i++) {
		struct mg_context *ctx;

		pthread_mutex_lock(&r->lock);
		ctx = idmap_get(&r->contexts, ids[i]);
		pthread_mutex_unlock(&r->lock);
		if (ctx)
			context_set_disconnected(ctx);
	}
	for (size_t i = 0; i < ls.n; i++)
		deliver_dead(r, ls.handles[i], why);
	free(ls.handles);
}

void router_stream_closed(struct mg_router *r, struct stream *s, const char *reason)
{
	struct route_scan rs = { .s = s };
	struct stream **pp;
	bool parent_lost = false;
	char why[256];

	if (s->role == STREAM_CHILD) {
		hooks_channel_closed(r, s->src.fd);
		acct_stream_closed(s);
	}

	pthread_mutex_lock(&r->lock);
	idmap_each(&r->routes, scan_route, &rs);
	for (size_t i = 0; i < rs.n; i++)
		idmap_del(&r->routes, rs.ids[i]);
	for (pp = &r->streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	if (s->role == STREAM_CHILD)
		r->nchildren--;
	if (r->parent == s) {
		r->parent = NULL;
		parent_lost = true;
	}
	pthread_mutex_unlock(&r->lock);
	/* It will never drain: whoever waited for it is read again. */
	router_release_waiters(r, s);

	if (s->role == STREAM_CHILD)
		LOG_DEBUG("context %u (%s) disconnected: %s", s->remote_id, s->name, reason);
	snprintf(why, sizeof(why), "respondent context %u (%s) disconnected: %s",
		 s->remote_id, s->name, reason);
	router_lost(r, rs.ids, rs.n, parent_lost, why);
	/* Everyone else on the tree learns these ids are gone (DEL_ROUTE). */
	routes_propagate_lost(r, s, rs.ids, rs.n);
	free(rs.ids);

	/* Free the stream once the broker is past this event batch. */
	pthread_mutex_lock(&dead_lock);
	s->next = dead_streams;
	dead_streams = s;
	pthread_mutex_unlock(&dead_lock);
	if (mg_broker_on_thread(r->broker))
		broker_defer_later(r->broker, free_dead_timer, r);
	if (parent_lost && r->on_parent_lost)
		r->on_parent_lost(r, r->on_parent_lost_arg);
}

/* --- broker client ----------------------------------------------------- */

static bool router_idle(void *arg)
{
	struct mg_router *r = arg;
	bool idle;

	pthread_mutex_lock(&r->lock);
	idle = r->nchildren == 0;
	pthread_mutex_unlock(&r->lock);
	return idle;
}

static void router_on_stop(void *arg)
{
	struct mg_router *r = arg;

	pthread_mutex_lock(&r->lock);
	r->shutting_down = true;
	pthread_mutex_unlock(&r->lock);
	close_all_streams(r);
	/* Before the broker's thread exits (mg_broker_join returns after). */
	router_fail_handlers(r, "broker shut down");
}

static bool router_keep_alive(void *arg)
{
	return !router_idle(arg);
}

/* --- contexts ---------------------------------------------------------- */

struct mg_context *router_context(struct mg_router *r, uint32_t id, const char *name)
{
	struct mg_context *ctx;

	pthread_mutex_lock(&r->lock);
	ctx = idmap_get(&r->contexts, id);
	if (!ctx) {
		ctx = context_new(r, id, name);
		if (ctx && idmap_put(&r->contexts, id, ctx) < 0) {
			mg_context_unref(ctx);
			ctx = NULL;
		}
	}
	if (ctx)
		mg_context_ref(ctx);
	pthread_mutex_unlock(&r->lock);
	if (!ctx)
		errno = ENOMEM;
	return ctx;
}

struct mg_context *mg_router_context_by_id(struct mg_router *r, uint32_t id)
{
	char name[32];

	if (!r) {
		errno = EINVAL;
		return NULL;
	}
	snprintf(name, sizeof(name), "context%u", id);
	return router_context(r, id, name);
}
