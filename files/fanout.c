// SPDX-License-Identifier: MIT
/*
 * fanout.c — the fan-out of a transfer (docs/files.md): from one context
 * to the next hop towards each destination (calling recv there, taking
 * its "r" and "a" and, at the end, its results), the encoded data chunks
 * that the messages to every hop share, and the sending loop with its
 * window per hop, which reads the source's files once for all of them.
 * A push and the send service are its sources, recv a relay of it
 * (transfer.c). Owns no service and writes no file (writer.c does).
 *
 * Acknowledgements are taken only from the hops we called (down_rx, and
 * fanout_take looks the sender up among f->hops); what a hop sends is
 * checked for shape before it is believed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "files/fanout.h"

double files_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct mg_value *files_result_value(uint32_t id, int errnum, const char *why, uint64_t bytes)
{
	return MG_LIST(mg_int(id), mg_int(errnum), mg_str(why ? why : ""),
		       mg_int((int64_t)bytes));
}

int files_send_to(struct mg_router *r, uint32_t dst, uint32_t handle, struct mg_value *v)
{
	struct mg_message *m = mg_message_new(dst, handle, v);

	return m ? mg_router_route(r, m) : -errno;
}

int fanout_init(struct fanout *f, struct mg_router *r, struct mg_context *respondent,
		size_t window_max)
{
	MG_OPTS(mg_receiver_opts, ro, .respondent = respondent);

	memset(f, 0, sizeof(*f));
	f->r = r;
	f->window = FILES_WINDOW_START;
	f->window_max = window_max ? window_max : MG_FILES_WINDOW_MAX;
	f->results = mg_list();
	f->down_rx = mg_receiver_new(r, &ro);
	f->sel = mg_select_new(false);
	if (!f->results || !f->down_rx || !f->sel || mg_select_add(f->sel, f->down_rx) < 0)
		return -ENOMEM;
	return 0;
}

void fanout_free(struct fanout *f)
{
	mg_select_free(f->sel);
	for (size_t i = 0; i < f->nhops; i++) {
		mg_receiver_free(f->hops[i].call_rx);
		mg_context_unref(f->hops[i].ctx);
		mg_value_free(f->hops[i].ids);
		mg_value_free(f->hops[i].have);
		mg_value_free(f->hops[i].results);
	}
	free(f->hops);
	mg_receiver_free(f->down_rx);
	mg_value_free(f->results);
	memset(f, 0, sizeof(*f));
}

static struct hop *fanout_hop(struct fanout *f, uint32_t id)
{
	for (size_t i = 0; i < f->nhops; i++)
		if (f->hops[i].id == id)
			return &f->hops[i];
	return NULL;
}

void fanout_start(struct fanout *f, const uint32_t *ids, size_t n,
		  const struct mg_value *plan)
{
	f->hops = calloc(n ? n : 1, sizeof(*f->hops));
	if (!f->hops) {
		for (size_t i = 0; i < n; i++)
			mg_list_append(f->results, files_result_value(ids[i], ENOMEM, "out of memory", 0));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct mg_stream *s = mg_router_stream_by_id(f->r, ids[i]);
		uint32_t via = s ? mg_stream_remote_id(s) : 0;
		struct hop *h;

		if (!s || !via || (!mg_is_master() && via == mg_parent_id())) {
			char why[160];

			snprintf(why, sizeof(why), "context %u is not reachable below %s", ids[i],
				 mg_context_name_self());
			mg_list_append(f->results, files_result_value(ids[i], EHOSTUNREACH, why, 0));
			continue;
		}
		h = fanout_hop(f, via);
		if (!h) {
			h = &f->hops[f->nhops++];
			h->id = via;
			h->ids = mg_list();
			h->state = HOP_WAIT;
		}
		mg_list_append(h->ids, mg_int(ids[i]));
	}
	for (size_t i = 0; i < f->nhops; i++) {
		struct hop *h = &f->hops[i];
		struct mg_value *p = mg_value_copy(plan);
		struct mg_error err = MG_ERROR_INIT;

		mg_map_set(p, "ids", mg_value_copy(h->ids));
		mg_map_set(p, "ctl", mg_int(mg_receiver_handle(f->down_rx)));
		h->ctx = mg_router_context_by_id(f->r, h->id);
		h->call_rx = h->ctx ? mg_call_service_async(h->ctx, "mg.files", "recv",
							     MG_LIST(p), &err)
				    : (mg_value_free(p), NULL);
		if (!h->call_rx || mg_select_add(f->sel, h->call_rx) < 0) {
			h->state = HOP_LOST;
			snprintf(h->why, sizeof(h->why), "cannot reach context %u: %.400s", h->id,
				 err.message[0] ? err.message : strerror(errno));
		}
	}
}

static bool fanout_live(const struct hop *h)
{
	return h->state == HOP_READY;
}

void fanout_update_acks(struct fanout *f)
{
	uint64_t min = f->sent;

	for (size_t i = 0; i < f->nhops; i++)
		if (f->hops[i].state == HOP_READY && f->hops[i].acked < min)
			min = f->hops[i].acked;
	if (min > f->acked_min) {
		/* Slow start: each acknowledged byte lets two more go. */
		f->window += min - f->acked_min;
		if (f->window > f->window_max)
			f->window = f->window_max;
		f->acked_min = min;
	}
}

/*
 * One message from f->sel that is a hop's (down_rx or a call's reply).
 * Returns true when it was one (and took it).
 */
static bool fanout_take(struct fanout *f, struct mg_message *msg)
{
	struct mg_receiver *rx = mg_message_receiver(msg);
	struct mg_value *v = NULL;
	struct hop *h = NULL;

	if (rx == f->down_rx) {
		h = fanout_hop(f, mg_message_src_id(msg));
		if (!mg_message_is_dead(msg) && h && mg_message_value(msg, false, &v, NULL) == 0 &&
		    v->type == MG_LIST && v->len >= 2 && v->items[0].type == MG_STR &&
		    v->items[1].type == MG_INT) {
			if (!strcmp(v->items[0].str, "r") && v->len == 3 && h->state == HOP_WAIT &&
			    v->items[2].type == MG_LIST) {
				h->data_handle = (uint32_t)v->items[1].i;
				h->have = mg_value_copy(&v->items[2]);
				h->state = HOP_READY;
			} else if (!strcmp(v->items[0].str, "a") && (uint64_t)v->items[1].i > h->acked &&
				   (uint64_t)v->items[1].i <= (h->sent > f->sent ? h->sent : f->sent) + 1) {
				/* Slow start, per hop (a source's): each acknowledged
				 * byte lets two more go. */
				h->window += (uint64_t)v->items[1].i - h->acked;
				if (h->window > f->window_max)
					h->window = f->window_max;
				h->acked = (uint64_t)v->items[1].i;
			}
		} else if (mg_message_is_dead(msg) && f->nhops == 1 && !f->hops[0].call_rx) {
			/* pull: our only peer went away */
			h = &f->hops[0];
			h->state = HOP_LOST;
			snprintf(h->why, sizeof(h->why), "the receiving side went away");
		}
		mg_value_free(v);
		mg_message_free(msg);
		fanout_update_acks(f);
		return true;
	}
	for (size_t i = 0; i < f->nhops; i++) {
		struct mg_error err = MG_ERROR_INIT;

		h = &f->hops[i];
		if (!h->call_rx || rx != h->call_rx)
			continue;
		if (mg_message_value(msg, true, &v, &err) == 0 && v->type == MG_LIST) {
			h->results = v;
			h->state = HOP_DONE;
		} else {
			char buf[MG_ERROR_MSG_MAX + 300];

			mg_value_free(v);
			h->state = HOP_LOST;
			snprintf(h->why, sizeof(h->why), "lost on the way: %.480s",
				 mg_error_str(&err, buf, sizeof(buf)));
		}
		mg_select_remove(f->sel, h->call_rx);
		mg_message_free(msg);
		fanout_update_acks(f);
		return true;
	}
	return false;
}

bool fanout_all(const struct fanout *f, bool (*pred)(const struct hop *))
{
	for (size_t i = 0; i < f->nhops; i++)
		if (!pred(&f->hops[i]))
			return false;
	return true;
}

bool hop_not_waiting(const struct hop *h)
{
	return h->state != HOP_WAIT;
}

bool hop_finished(const struct hop *h)
{
	return h->state == HOP_DONE || h->state == HOP_LOST;
}

void chunk_buf_put(void *arg)
{
	struct chunk_buf *cb = arg;

	if (__atomic_sub_fetch(&cb->refs, 1, __ATOMIC_ACQ_REL))
		return;
	if (cb->msg)
		mg_message_free(cb->msg);
	else
		free(cb->raw);
	free(cb);
}

/* m (taken; NULL: it could not be made) to hop h, or h is lost. */
static void fanout_route(struct fanout *f, struct hop *h, struct mg_message *m)
{
	if (!m || mg_router_route(f->r, m) < 0) {
		h->state = HOP_LOST;
		snprintf(h->why, sizeof(h->why), "cannot send to context %u", h->id);
	}
}

/* Raw data to one hop (a copy). */
static void fanout_send_one(struct fanout *f, struct hop *h, const void *data, size_t len)
{
	fanout_route(f, h, mg_message_new_raw(h->id, h->data_handle, data, len));
}

/* cb's chunk to hop h: one reference more, no copy. */
static void fanout_send_shared(struct fanout *f, struct hop *h, struct chunk_buf *cb)
{
	struct mg_message *m;

	__atomic_add_fetch(&cb->refs, 1, __ATOMIC_RELAXED);
	m = mg_message_new_shared(h->id, h->data_handle, cb->raw, cb->len, chunk_buf_put, cb);
	if (!m)
		chunk_buf_put(cb);
	fanout_route(f, h, m);
}

void fanout_send_all(struct fanout *f, struct chunk_buf *cb, const void *data, size_t len)
{
	for (size_t i = 0; i < f->nhops; i++) {
		struct hop *h = &f->hops[i];

		if (!fanout_live(h))
			continue;
		if (cb)
			fanout_send_shared(f, h, cb);
		else
			fanout_send_one(f, h, data, len);
	}
}

void fanout_kill(struct fanout *f, const char *why)
{
	for (size_t i = 0; i < f->nhops; i++) {
		struct hop *h = &f->hops[i];

		if (h->state == HOP_READY) {
			struct mg_message *m = mg_message_dead(h->id, h->data_handle, why);

			if (m)
				mg_router_route(f->r, m);
		}
	}
}

struct mg_value *fanout_results(struct fanout *f)
{
	struct mg_value *all = f->results;

	f->results = NULL;
	for (size_t i = 0; i < f->nhops; i++) {
		struct hop *h = &f->hops[i];

		if (h->state == HOP_DONE && h->results) {
			for (size_t k = 0; k < h->results->len; k++)
				mg_list_append(all, mg_value_copy(&h->results->items[k]));
			continue;
		}
		for (size_t k = 0; h->ids && k < h->ids->len; k++)
			mg_list_append(all, files_result_value((uint32_t)h->ids->items[k].i,
							 h->state == HOP_LOST ? EPIPE : EIO,
							 h->why[0] ? h->why : "transfer did not finish",
							 0));
	}
	return all;
}

uint32_t fanout_have(const struct fanout *f, size_t i, uint32_t mine)
{
	uint32_t min = mine;

	for (size_t k = 0; k < f->nhops; k++) {
		const struct hop *h = &f->hops[k];

		if (h->state != HOP_READY)
			continue;
		if (!h->have || i >= h->have->len || h->have->items[i].type != MG_INT)
			return 0;
		if ((uint64_t)h->have->items[i].i < min)
			min = (uint32_t)h->have->items[i].i;
	}
	return min;
}

int fanout_pump(struct fanout *f, double timeout, void (*other)(struct mg_message *, void *),
		void *arg)
{
	struct mg_message *msg = NULL;
	int ret = mg_select_get(f->sel, timeout, &msg, NULL);

	if (ret < 0)
		return ret;
	if (!fanout_take(f, msg)) {
		if (other)
			other(msg, arg);
		else
			mg_message_free(msg);
	}
	return 0;
}

/* --- the sending loop ------------------------------------------------------ */

void source_progress(struct fanout *f, struct source *s, bool last)
{
	struct mg_files_progress p = { .bytes = f->sent, .total = s->m->total, .n = s->ndest };
	double t = files_now();

	if (!s->progress || (!last && t - s->last_progress < 0.1))
		return;
	s->last_progress = t;
	for (size_t i = 0; i < f->nhops; i++) {
		const struct hop *h = &f->hops[i];

		if (h->state == HOP_DONE && h->results)
			for (size_t k = 0; k < h->results->len; k++) {
				if (h->results->items[k].items[1].i)
					p.failed++;
				else
					p.done++;
			}
		else if (h->state == HOP_LOST)
			p.failed += h->ids ? h->ids->len : 1;
	}
	p.failed += f->results ? f->results->len : 0;
	s->progress(&p, s->progress_data);
}

/*
 * The source's data, read once: the chunks in the order every hop gets
 * them, and a cache of the last SOURCE_CACHE of them, encoded. Hops go
 * at their own pace (a window each); one that falls further behind than
 * the cache holds has its chunks read again from the file (pread), so it
 * neither stalls the others nor makes the source hold more.
 */
struct chunk_pos {
	uint32_t entry;
	uint32_t len;
	uint64_t off;
	uint64_t end;			/* data bytes up to its end, from the first chunk */
};

struct chunk_slot {
	size_t seq;			/* SIZE_MAX: empty */
	struct chunk_buf *cb;		/* a reference */
};

/* Chunks kept encoded for the hops behind the leader (64 MiB). */
#define SOURCE_CACHE 256

struct source_data {
	struct chunk_pos *pos;
	size_t n;
	struct chunk_slot slot[SOURCE_CACHE];
	uint8_t *buf;
	int fd;
	size_t fd_entry;
	uint64_t read_max;		/* data bytes read (the leader's): progress */
};

static void source_data_free(struct source_data *d)
{
	for (size_t i = 0; i < SOURCE_CACHE; i++)
		if (d->slot[i].cb)
			chunk_buf_put(d->slot[i].cb);
	if (d->fd >= 0)
		close(d->fd);
	free(d->pos);
	free(d->buf);
}

/* The chunk list from what every hop already has (fanout_have). */
static int source_data_init(struct source_data *d, struct fanout *f, const struct source *s)
{
	size_t cap = 0;
	uint64_t total = 0;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	for (size_t i = 0; i < SOURCE_CACHE; i++)
		d->slot[i].seq = SIZE_MAX;
	d->buf = malloc(FILES_CHUNK);
	if (!d->buf)
		return -ENOMEM;
	for (size_t i = 0; i < s->m->n; i++) {
		const struct fent *e = &s->m->e[i];
		uint64_t off;

		if (e->type != 'f')
			continue;
		off = (uint64_t)fanout_have(f, i, UINT32_MAX) * FILES_CHUNK;
		if (off > e->size)
			off = e->size;
		/* At least one message per file (an empty one, or one that is
		 * there already, gets a chunk of 0 bytes). */
		do {
			uint64_t want = e->size - off < FILES_CHUNK ? e->size - off : FILES_CHUNK;

			if (d->n == cap) {
				struct chunk_pos *p;

				cap = cap ? cap * 2 : 64;
				p = realloc(d->pos, cap * sizeof(*p));
				if (!p)
					return -ENOMEM;
				d->pos = p;
			}
			total += want;
			d->pos[d->n++] = (struct chunk_pos){ .entry = (uint32_t)i,
							    .len = (uint32_t)want, .off = off,
							    .end = total };
			off += want;
		} while (off < e->size);
	}
	return 0;
}

/* Chunk seq, encoded: from the cache, or read (again) from the file. */
static int source_data_get(struct source_data *d, const struct source *s, size_t seq,
			   struct chunk_buf **ret_cb, char *why, size_t whylen)
{
	struct chunk_slot *sl = &d->slot[seq % SOURCE_CACHE];
	const struct chunk_pos *p = &d->pos[seq];
	const struct fent *e = &s->m->e[p->entry];
	char path[PATH_MAX];
	struct mg_value *v;
	struct chunk_buf *cb;
	size_t got = 0;

	if (sl->seq == seq)
		goto out;
	snprintf(path, sizeof(path), "%s%s%s", s->root, *e->rel ? "/" : "", e->rel);
	/* (A file that is all there already: nothing to read.) */
	if ((p->len || !e->size) && (d->fd < 0 || d->fd_entry != p->entry)) {
		if (d->fd >= 0)
			close(d->fd);
		d->fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (d->fd < 0) {
			files_errmsg(why, whylen, errno, "source vanished:", path);
			return -errno;
		}
		d->fd_entry = p->entry;
	}
	while (got < p->len) {
		ssize_t r = pread(d->fd, d->buf + got, p->len - got, (off_t)(p->off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int errnum = r < 0 ? errno : ESTALE;

			files_errmsg(why, whylen, errnum, "source changed:", path);
			return -errnum;
		}
		got += (size_t)r;
	}
	if (sl->cb)
		chunk_buf_put(sl->cb);
	sl->cb = NULL;
	sl->seq = SIZE_MAX;
	v = MG_LIST(mg_str("d"), mg_int((int64_t)p->entry), mg_int((int64_t)p->off),
		    mg_bytes(d->buf, p->len));
	cb = calloc(1, sizeof(*cb));
	if (!cb || mg_value_encode(v, &cb->raw, &cb->len) < 0) {
		free(cb);
		mg_value_free(v);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	mg_value_free(v);
	cb->refs = 1;
	sl->cb = cb;
	sl->seq = seq;
	if (p->end > d->read_max)
		d->read_max = p->end;
out:
	*ret_cb = sl->cb;
	return 0;
}

int source_run(struct fanout *f, struct source *s)
{
	struct source_data d;
	void *eraw = NULL;
	size_t erawlen = 0;
	int ret;
	struct mg_value *ev = MG_LIST(mg_str("e"));

	ret = source_data_init(&d, f, s);
	if (ret == 0 && mg_value_encode(ev, &eraw, &erawlen) < 0)
		ret = -ENOMEM;
	mg_value_free(ev);
	if (ret < 0) {
		snprintf(s->why, sizeof(s->why), "out of memory");
		goto out;
	}
	for (size_t k = 0; k < f->nhops; k++) {
		f->hops[k].window = FILES_WINDOW_START;
		f->hops[k].next = 0;
	}
	for (;;) {
		bool pending = false;

		for (size_t k = 0; k < f->nhops && ret == 0; k++) {
			struct hop *h = &f->hops[k];

			while (fanout_live(h) && h->next < d.n &&
			       h->sent + d.pos[h->next].len <= h->acked + h->window) {
				struct chunk_buf *cb = NULL;

				ret = source_data_get(&d, s, h->next, &cb, s->why, sizeof(s->why));
				if (ret < 0)
					break;
				fanout_send_shared(f, h, cb);
				h->sent += d.pos[h->next].len;
				h->next++;
			}
			if (ret == 0 && fanout_live(h) && h->next == d.n) {
				fanout_send_one(f, h, eraw, erawlen);
				h->next++;
			}
			pending |= fanout_live(h) && h->next <= d.n;
		}
		f->sent = d.read_max;
		if (ret < 0 || !pending)
			break;
		source_progress(f, s, false);
		if (fanout_pump(f, FILES_IDLE_TIMEOUT, NULL, NULL) == -ETIMEDOUT) {
			/* The hops still waiting for data are stuck: they go, the
			 * others (done with the data) are not held by them. */
			for (size_t k = 0; k < f->nhops; k++) {
				struct hop *h = &f->hops[k];
				struct mg_message *m;

				if (!fanout_live(h) || h->next > d.n)
					continue;
				snprintf(h->why, sizeof(h->why), "no acknowledgement for %g s",
					 FILES_IDLE_TIMEOUT);
				m = mg_message_dead(h->id, h->data_handle, h->why);
				if (m)
					mg_router_route(f->r, m);
				h->state = HOP_LOST;
			}
		}
	}
out:
	free(eraw);
	source_data_free(&d);
	if (ret < 0)
		fanout_kill(f, s->why);
	return ret < 0 ? ret : 0;
}

/* --- a data message, read in place --------------------------------------- */

/* n bytes at p, big-endian. */
static uint64_t load_be(const uint8_t *p, size_t n)
{
	uint64_t x = 0;

	while (n--)
		x = x << 8 | *p++;
	return x;
}

/* A non-negative msgpack int at *p as our encoder writes one (positive
 * fixint, uint 8/16/32/64), moving *p past it; false for anything else. */
static bool take_uint(const uint8_t **p, const uint8_t *end, uint64_t *x)
{
	size_t n;

	if (*p >= end)
		return false;
	if (**p < 0x80) {
		*x = *(*p)++;
		return true;
	}
	if (**p < 0xcc || **p > 0xcf)
		return false;
	n = (size_t)1 << (**p - 0xcc);
	if ((size_t)(end - *p) < 1 + n)
		return false;
	*x = load_be(*p + 1, n);
	*p += 1 + n;
	return true;
}

bool files_chunk_view(const void *raw, size_t len, uint32_t *entry, uint64_t *off,
		const void **data, size_t *dlen)
{
	const uint8_t *p = raw, *end = p + len;
	uint64_t e, o, n;
	size_t h;

	if (!raw || len < 3 || p[0] != 0x94 || p[1] != 0xa1 || p[2] != 'd')
		return false;
	p += 3;
	if (!take_uint(&p, end, &e) || !take_uint(&p, end, &o) || e > UINT32_MAX ||
	    o > INT64_MAX || p >= end || *p < 0xc4 || *p > 0xc6)
		return false;
	h = (size_t)1 << (*p - 0xc4);	/* bin 8/16/32 */
	if ((size_t)(end - p) < 1 + h)
		return false;
	n = load_be(p + 1, h);
	p += 1 + h;
	if (n != (uint64_t)(end - p))
		return false;
	*entry = (uint32_t)e;
	*off = o;
	*data = p;
	*dlen = (size_t)n;
	return true;
}
