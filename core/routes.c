// SPDX-License-Identifier: MIT
/*
 * routes.c — keeping every router on the tree up to date: ADD_ROUTE goes
 * up from the router that started a context, DEL_ROUTE goes up and down
 * from the router that lost one, ALLOCATE_ID asks the master for an id.
 *
 * Why an ADD_ROUTE is believed: it must come up a child stream (the
 * router has already checked its src_id and auth_id belong behind that
 * stream), may not claim this context or one of its parents, nor an id
 * already routed elsewhere; and the id must have been allocated for a
 * context behind that stream. The master allocates every id; when it
 * allocates one for a context other than itself it first sends an
 * ADD_ROUTE *down* the path to that context ([id, nil, owner], from the
 * master only), and every router on the path notes it, so that an
 * intermediate too can tell that a child claiming, say, a sibling's id
 * is lying (instead of drawing that id's traffic). A DEL_ROUTE from below
 * only removes a route that points at that stream.
 *
 * Why ALLOCATE_ID is capped: every id the master hands out is remembered
 * until its context is lost, so a child asking in a loop would grow the
 * master without end (200,000 requests: +8 MiB, never given back). The
 * ids held by the contexts behind one child stream of the master count
 * against that stream (the child can make up any context below it, so
 * it answers for all of them), at most ROUTES_MAX_IDS at once; they go
 * back as their contexts are lost, and all at once when the stream closes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/context.h"
#include "core/hooks.h"
#include "core/log.h"
#include "core/router.h"
#include "core/stream.h"

static void send_on(struct mg_router *r, struct stream *s, uint32_t handle,
		    struct mg_value *v)
{
	struct mg_message *m = mg_message_new(s->remote_id, handle, v);

	if (!m)
		return;
	m->meta.src_id = m->meta.auth_id = r->id;
	stream_send(s, m);
}

void routes_announce(struct mg_router *r, struct stream *s)
{
	if (r->parent)
		send_on(r, r->parent, MG_HANDLE_ADD_ROUTE,
			MG_LIST(mg_int(s->remote_id), mg_str(s->name)));
}

/*
 * DEL_ROUTE down. Every child is told of every lost context (a child may
 * watch any context as a respondent without ever having talked to it), so
 * children leaving one by one cost n^2 messages: shutting 1,000 down one
 * after another, each waited for, took 5 s, nearly all of it the master
 * sending DEL_ROUTEs. So the ids lost within DOWN_BATCH_S of the first go
 * to each child in one DEL_ROUTE, [id, id, ...], at most DOWN_MAX_IDS a
 * message; a child is not told of itself nor of what it told us.
 */
#define DOWN_BATCH_S 0.02
#define DOWN_MAX_IDS 1024

struct lost_id {
	uint32_t id;
	uint32_t from;		/* remote id of the stream that told us */
};

/* Tell child s of the ids in lost[n] it does not know of already. */
static void send_down(struct mg_router *r, struct stream *s, const struct lost_id *lost,
		      size_t n)
{
	struct mg_value *v = NULL;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (lost[i].from == s->remote_id || lost[i].id == s->remote_id)
			continue;
		if (!v && !(v = mg_list()))
			return;
		if (mg_list_append(v, mg_int(lost[i].id)) < 0) {
			mg_value_free(v);	/* out of memory: this child is not told */
			return;
		}
		if (++k == DOWN_MAX_IDS) {
			send_on(r, s, MG_HANDLE_DEL_ROUTE, v);
			v = NULL;
			k = 0;
		}
	}
	if (v)
		send_on(r, s, MG_HANDLE_DEL_ROUTE, v);
}

static void tell_children(struct mg_router *r, const struct lost_id *lost, size_t n)
{
	for (struct stream *s = r->streams; s; s = s->next)
		if (s->role == STREAM_CHILD && !s->closed)
			send_down(r, s, lost, n);
}

static void flush_down(void *arg)
{
	struct mg_router *r = arg;

	if (!r->shutting_down)
		tell_children(r, r->down, r->ndown);
	r->ndown = 0;
}

static bool queue_down(struct mg_router *r, uint32_t id, uint32_t from)
{
	if (r->ndown == r->down_cap) {
		size_t cap = r->down_cap ? r->down_cap * 2 : 64;
		struct lost_id *d = realloc(r->down, cap * sizeof(*d));

		if (!d)
			return false;
		r->down = d;
		r->down_cap = cap;
	}
	r->down[r->ndown++] = (struct lost_id){ id, from };
	return true;
}

static void release_ids(struct mg_router *r, struct stream *from, const uint32_t *ids,
			size_t n);

void routes_propagate_lost(struct mg_router *r, struct stream *from, const uint32_t *ids,
			   size_t n)
{
	/* Shutting down, every child is going too: telling each of them about
	 * each other would cost n^2 messages for nothing. Being destroyed, no
	 * timer may outlive us. */
	bool down = !r->shutting_down && !__atomic_load_n(&r->dying, __ATOMIC_ACQUIRE);

	for (size_t i = 0; i < n; i++) {
		struct lost_id one = { ids[i], from->remote_id };

		if (r->parent && r->parent != from)
			send_on(r, r->parent, MG_HANDLE_DEL_ROUTE, MG_LIST(mg_int(ids[i])));
		/* Out of memory to queue it: told at once, on its own. */
		if (down && !queue_down(r, one.id, one.from))
			tell_children(r, &one, 1);
	}
	if (r->ndown && !r->down_timer.armed)
		broker_timer_arm(r->broker, &r->down_timer, DOWN_BATCH_S, flush_down, r);
	release_ids(r, from, ids, n);
}

void routes_stop(struct mg_router *r)
{
	broker_timer_cancel(r->broker, &r->down_timer);
	free(r->down);
	r->down = NULL;
	r->ndown = r->down_cap = 0;
	pthread_mutex_lock(&r->lock);
	idmap_free(&r->alloc_charge);
	pthread_mutex_unlock(&r->lock);
}

static bool is_self_or_parent(struct mg_router *r, uint32_t id)
{
	uint32_t ids[64];
	size_t n;

	if (id == r->id)
		return true;
	n = mg_parent_ids(ids, 64);
	for (size_t i = 0; i < n && i < 64; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static void on_add_route(struct mg_router *r, struct stream *s, uint32_t id, const char *name)
{
	struct stream *cur;
	const char *why = NULL;
	int ret;

	pthread_mutex_lock(&r->lock);
	cur = idmap_get(&r->routes, id);
	if (is_self_or_parent(r, id))
		why = "it names this context or a parent";
	else if (cur && cur != s)
		why = "it is routed through another stream";
	else {
		/* Only the stream the id's owner lives behind may add it. */
		uint32_t owner = (uint32_t)(uintptr_t)idmap_get(&r->allocations, id);

		if (!owner || idmap_get(&r->routes, owner - 1) != s)
			why = "it was not allocated to a context behind this stream";
	}
	if (!why)
		ret = idmap_put(&r->routes, id, s);
	pthread_mutex_unlock(&r->lock);
	if (why) {
		LOG_ERROR("stream %s: refused ADD_ROUTE for context %u: %s", s->name, id, why);
		/* The kernel may have learnt it from the record: unlearn. */
		if (cur != s)
			hooks_route(r, id, s->src.fd, false);
		return;
	}
	if (ret < 0)
		return;
	hooks_route(r, id, s->src.fd, true);
	LOG_DEBUG("ADD_ROUTE %u (%s) via %s", id, name, s->name);
	if (name) {
		struct mg_context *ctx = router_context(r, id, name);

		mg_context_unref(ctx);
	}
	if (r->parent)
		send_on(r, r->parent, MG_HANDLE_ADD_ROUTE, MG_LIST(mg_int(id), mg_str(name)));
}

static void on_del_route(struct mg_router *r, struct stream *s, uint32_t id)
{
	struct stream *cur;
	char why[96];

	pthread_mutex_lock(&r->lock);
	cur = idmap_get(&r->routes, id);
	if (s->role == STREAM_CHILD) {
		if (cur != s) {
			pthread_mutex_unlock(&r->lock);
			LOG_WARN("stream %s: ignored DEL_ROUTE for %u: not routed there",
				 s->name, id);
			return;
		}
		idmap_del(&r->routes, id);
		idmap_del(&r->allocations, id);
		hooks_route(r, id, s->src.fd, false);
	} else if (cur) {
		/* From above, about a context below us: we know better. */
		pthread_mutex_unlock(&r->lock);
		return;
	}
	pthread_mutex_unlock(&r->lock);
	LOG_DEBUG("DEL_ROUTE %u from %s", id, s->name);
	snprintf(why, sizeof(why), "respondent context %u disconnected", id);
	router_lost(r, &id, 1, false, why);
	routes_propagate_lost(r, s, &id, 1);
}

/* Are the first n items of list v context ids? */
static bool ids_valid(const struct mg_value *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v->items[i].type != MG_INT || v->items[i].i <= 0 || v->items[i].i > UINT32_MAX)
			return false;
	return true;
}

void routes_on_message(struct mg_router *r, struct stream *s, struct mg_message *msg)
{
	struct mg_value *v = NULL;

	/*
	 * From above, only the parent line speaks about routes: a sibling's
	 * DEL_ROUTE relayed down by the parent would otherwise mark contexts
	 * lost here (the kernel filter drops it at this end too).
	 */
	if (s->role == STREAM_PARENT && !mg_has_parent_authority(msg, NULL, NULL)) {
		LOG_ERROR("stream %s: refused %s from %u: auth_id %u is not a parent's",
			  s->name, msg->meta.handle == MG_HANDLE_ADD_ROUTE ? "ADD_ROUTE"
			  : "DEL_ROUTE", msg->meta.src_id, msg->meta.auth_id);
		mg_message_free(msg);
		return;
	}
	if (mg_message_value(msg, false, &v, NULL) < 0 || v->type != MG_LIST || v->len < 1 ||
	    !ids_valid(v, msg->meta.handle == MG_HANDLE_ADD_ROUTE ? 1 : v->len)) {
		LOG_ERROR("stream %s: malformed route message", s->name);
	} else if (msg->meta.handle == MG_HANDLE_ADD_ROUTE) {
		if (s->role == STREAM_CHILD)
			on_add_route(r, s, (uint32_t)v->items[0].i,
				     v->len > 1 && v->items[1].type == MG_STR ? v->items[1].str
									      : NULL);
		else
			routes_note_allocation(r, msg);
	} else {
		/* [id, ...]: from a child one, from the parent a batch (above). */
		for (size_t i = 0; i < v->len; i++)
			on_del_route(r, s, (uint32_t)v->items[i].i);
	}
	mg_value_free(v);
	mg_message_free(msg);
}

/* --- ids --------------------------------------------------------------- */

void routes_note_allocation(struct mg_router *r, struct mg_message *msg)
{
	struct mg_value *v = NULL;

	/* Only the master allocates; anything else claiming to is ignored. */
	if (msg->meta.src_id != 0 || msg->meta.auth_id != 0 ||
	    mg_message_value(msg, false, &v, NULL) < 0)
		return;
	if (v->type == MG_LIST && v->len == 3 && v->items[0].type == MG_INT &&
	    v->items[0].i > 0 && v->items[0].i <= UINT32_MAX &&
	    v->items[2].type == MG_INT && v->items[2].i > 0 &&
	    v->items[2].i < UINT32_MAX) {
		pthread_mutex_lock(&r->lock);
		idmap_put(&r->allocations, (uint32_t)v->items[0].i,
			  (void *)(uintptr_t)(v->items[2].i + 1));
		pthread_mutex_unlock(&r->lock);
	}
	mg_value_free(v);
}

/*
 * Master: the allocation goes down the path to its owner before anything
 * else can name the id there (the reply to ALLOCATE_ID, a _proxy_start),
 * since both travel the same streams in order.
 */
static void announce_allocation(struct mg_router *r, uint32_t id, uint32_t owner)
{
	struct mg_message *m;

	if (owner == r->id)
		return;
	m = mg_message_new(owner, MG_HANDLE_ADD_ROUTE,
			   MG_LIST(mg_int(id), mg_nil(), mg_int(owner)));
	if (!m)
		return;
	m->meta.src_id = m->meta.auth_id = r->id;
	mg_router_route(r, m);
}

/* An id for owner, charged to child stream `charge` (NULL: to nobody). */
static uint32_t alloc_local(struct mg_router *r, uint32_t owner, struct stream *charge)
{
	uint32_t id;

	pthread_mutex_lock(&r->lock);
	id = r->next_id++;
	/* Stored +1 so that owner 0 (the master itself) is not NULL. */
	if (idmap_put(&r->allocations, id, (void *)(uintptr_t)(owner + 1)) < 0) {
		id = 0;
	} else if (charge) {
		if (idmap_put(&r->alloc_charge, id,
			      (void *)(uintptr_t)(charge->remote_id + 1)) < 0) {
			idmap_del(&r->allocations, id);
			id = 0;
		} else {
			charge->ids_held++;
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (id)
		announce_allocation(r, id, owner);
	return id;
}

/* The ids charged to one stream (idmap_each over alloc_charge). */
struct charged {
	uintptr_t charge;
	uint32_t *ids;
	size_t n, max;
};

static void collect_charged(uint32_t key, void *val, void *arg)
{
	struct charged *c = arg;

	if ((uintptr_t)val == c->charge && c->n < c->max)
		c->ids[c->n++] = key;
}

/*
 * Broker thread: ids were lost (or their stream `from` closed): forget
 * their allocations and give them back to the stream they were charged
 * to. When `from` is a closed child stream, whatever is still charged to
 * it goes too (ids allocated below it and never announced).
 */
static void release_ids(struct mg_router *r, struct stream *from, const uint32_t *ids,
			size_t n)
{
	uint32_t *left = NULL;
	size_t nleft = 0;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < n; i++) {
		uintptr_t c = (uintptr_t)idmap_del(&r->alloc_charge, ids[i]);
		struct stream *s;

		idmap_del(&r->allocations, ids[i]);
		if (!c)
			continue;
		s = c - 1 == from->remote_id ? from : idmap_get(&r->routes, (uint32_t)(c - 1));
		if (s && s->remote_id == c - 1 && s->ids_held)
			s->ids_held--;
	}
	if (from->closed && from->role == STREAM_CHILD && from->ids_held &&
	    (left = malloc(from->ids_held * sizeof(*left)))) {
		struct charged ch = { from->remote_id + 1, left, 0, from->ids_held };

		idmap_each(&r->alloc_charge, collect_charged, &ch);
		nleft = ch.n;
		for (size_t i = 0; i < nleft; i++) {
			idmap_del(&r->alloc_charge, left[i]);
			idmap_del(&r->allocations, left[i]);
		}
		from->ids_held = 0;
	}
	pthread_mutex_unlock(&r->lock);
	free(left);
}

/* The child stream that context id is behind (NULL: none, or it is us). */
static struct stream *child_stream_of(struct mg_router *r, uint32_t id)
{
	struct stream *s;

	pthread_mutex_lock(&r->lock);
	s = idmap_get(&r->routes, id);
	pthread_mutex_unlock(&r->lock);
	return s && s->role == STREAM_CHILD ? s : NULL;
}

/* Master: ALLOCATE_ID from a descendant; the router has checked src_id. */
static void on_allocate_id(struct mg_message *msg, void *userdata)
{
	struct mg_router *r = userdata;
	struct stream *s;
	char why[160];
	uint32_t id;

	if (!mg_message_is_dead(msg) && msg->meta.reply_to) {
		if (r->parent) {
			router_refuse(r, msg, NULL, "ALLOCATE_ID must go to the master");
		} else if ((s = child_stream_of(r, msg->meta.src_id)) &&
			   s->ids_held >= ROUTES_MAX_IDS) {
			snprintf(why, sizeof(why), "the contexts behind stream %s hold %u ids, "
				 "the most allowed", s->name, (unsigned)ROUTES_MAX_IDS);
			if (!s->ids_refused_logged)
				LOG_ERROR("refused ALLOCATE_ID from context %u: %s (further "
					  "refusals on this stream are not logged)",
					  msg->meta.src_id, why);
			s->ids_refused_logged = true;
			mg_message_reply(msg, r, mg_error_value(MG_ERR_CALL, EDQUOT,
								log_self_name(), "", why));
		} else {
			id = alloc_local(r, msg->meta.src_id, s);
			LOG_DEBUG("allocated id %u for context %u", id, msg->meta.src_id);
			mg_message_reply(msg, r, id ? mg_int(id) : mg_nil());
		}
	}
	mg_message_free(msg);
}

void routes_init(struct mg_router *r)
{
	MG_OPTS(mg_handler_opts, o, .handle = MG_HANDLE_ALLOCATE_ID);

	router_add_handler_release(r, on_allocate_id, r, NULL, &o);
}

uint32_t router_alloc_id(struct mg_router *r, uint32_t owner)
{
	struct mg_context *master;
	struct mg_message *reply = NULL;
	struct mg_value *v = NULL;
	struct mg_error err = MG_ERROR_INIT;
	uint32_t id = 0;
	int ret;

	if (!r->parent && !r->booting)
		return alloc_local(r, owner, NULL);
	master = router_context(r, 0, "master");
	if (!master)
		return 0;
	ret = mg_context_send_await(master, mg_message_new(0, MG_HANDLE_ALLOCATE_ID, mg_nil()),
				    30.0, &reply, &err);
	if (ret == 0 && mg_message_value(reply, true, &v, &err) == 0 && v->type == MG_INT)
		id = (uint32_t)v->i;
	if (!id) {
		LOG_ERROR("ALLOCATE_ID failed: %s", err.message);
		errno = EIO;
	}
	mg_value_free(v);
	mg_message_free(reply);
	mg_context_unref(master);
	return id;
}

/* --- public ------------------------------------------------------------ */

int mg_router_allocate_id(struct mg_router *r)
{
	uint32_t id;

	if (!r)
		return -EINVAL;
	id = router_alloc_id(r, r->id);
	return id ? (int)id : -errno;
}

struct add_route {
	struct mg_router *r;
	uint32_t target, via;
	int ret;
};

static void add_route_deferred(void *arg)
{
	struct add_route *ar = arg;
	struct mg_router *r = ar->r;
	struct stream *s;

	pthread_mutex_lock(&r->lock);
	s = idmap_get(&r->routes, ar->via);
	ar->ret = s ? idmap_put(&r->routes, ar->target, s) : -ENOENT;
	pthread_mutex_unlock(&r->lock);
	if (ar->ret == 0 && s->role == STREAM_CHILD)
		hooks_route(r, ar->target, s->src.fd, true);
	if (ar->ret == 0 && r->parent)
		send_on(r, r->parent, MG_HANDLE_ADD_ROUTE, MG_LIST(mg_int(ar->target), mg_nil()));
}

int mg_router_add_route(struct mg_router *r, uint32_t target_id, uint32_t via_id)
{
	struct add_route ar = { .r = r, .target = target_id, .via = via_id };
	int ret;

	if (!r || !target_id || target_id == r->id)
		return -EINVAL;
	ret = broker_call(r->broker, add_route_deferred, &ar, false);
	return ret < 0 ? ret : ar.ret;
}

const struct mg_stream *mg_router_stream_by_id(struct mg_router *r, uint32_t id)
{
	struct stream *s;

	if (!r)
		return NULL;
	pthread_mutex_lock(&r->lock);
	s = idmap_get(&r->routes, id);
	if (!s)
		s = r->parent;
	pthread_mutex_unlock(&r->lock);
	return (const struct mg_stream *)s;
}
