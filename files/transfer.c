// SPDX-License-Identifier: MIT
/*
 * transfer.c — moving files along the tree (docs/files.md): the fan-out
 * from one context to the next hop towards each destination, the sending
 * loop with its window, the "mg.files" service (recv: write and relay;
 * send: the source of a pull) and the caller's mg_files_push and
 * mg_files_pull.
 *
 * Why the service is safe to offer: both methods are MG_SERVICE_PARENTS
 * (only the parent chain may make us write or read files, as with
 * mg.write_file); data is taken only from the context that called recv
 * (its receiver has that respondent) and acknowledgements only from the
 * hops we called; every path a peer names is checked by the manifest
 * (files_rel_ok) and written by writer.c, which never follows a link.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "files/files.h"

enum hop_state { HOP_WAIT, HOP_READY, HOP_DONE, HOP_LOST };

struct hop {
	uint32_t id;
	struct mg_context *ctx;
	struct mg_receiver *call_rx;
	struct mg_value *ids;		/* destination ids behind it */
	uint32_t data_handle;
	struct mg_value *have;
	uint64_t acked;
	/* a source's: data bytes sent to it, its window, its next chunk */
	uint64_t sent, window;
	size_t next;
	enum hop_state state;
	struct mg_value *results;	/* [[id, errno, message, bytes], ...] */
	char why[512];
};

struct fanout {
	struct mg_router *r;
	struct mg_receiver *down_rx;	/* "r" and "a" from hops */
	struct mg_select *sel;
	struct hop *hops;
	size_t nhops;
	struct mg_value *results;	/* ids failed here */
	uint64_t sent;
	uint64_t window, window_max;
	uint64_t acked_min;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct mg_value *result_value(uint32_t id, int errnum, const char *why, uint64_t bytes)
{
	return MG_LIST(mg_int(id), mg_int(errnum), mg_str(why ? why : ""),
		       mg_int((int64_t)bytes));
}

static int send_to(struct mg_router *r, uint32_t dst, uint32_t handle, struct mg_value *v)
{
	struct mg_message *m = mg_message_new(dst, handle, v);

	return m ? mg_router_route(r, m) : -errno;
}

static int fanout_init(struct fanout *f, struct mg_router *r, struct mg_context *respondent,
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

static void fanout_free(struct fanout *f)
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

/*
 * Call recv in the next hop towards each of ids (plan: the map to send,
 * borrowed; each hop gets a copy with its own "ids" and our "ctl").
 */
static void fanout_start(struct fanout *f, const uint32_t *ids, size_t n,
			 const struct mg_value *plan)
{
	f->hops = calloc(n ? n : 1, sizeof(*f->hops));
	if (!f->hops) {
		for (size_t i = 0; i < n; i++)
			mg_list_append(f->results, result_value(ids[i], ENOMEM, "out of memory", 0));
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
			mg_list_append(f->results, result_value(ids[i], EHOSTUNREACH, why, 0));
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

static void fanout_update_acks(struct fanout *f)
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

static bool fanout_all(const struct fanout *f, bool (*pred)(const struct hop *))
{
	for (size_t i = 0; i < f->nhops; i++)
		if (!pred(&f->hops[i]))
			return false;
	return true;
}

static bool hop_not_waiting(const struct hop *h)
{
	return h->state != HOP_WAIT;
}

static bool hop_finished(const struct hop *h)
{
	return h->state == HOP_DONE || h->state == HOP_LOST;
}

/* Data (raw msgpack) to every ready hop. */
/*
 * An encoded data chunk that the messages carrying it to every hop share
 * (mg_message_new_shared) instead of a copy each: the source's cache
 * holds a reference, each message one; at a relay, the message it came
 * in is the chunk. Freed with its last reference, from whichever thread
 * drops it (the broker's, once a message is written).
 */
struct chunk_buf {
	unsigned refs;			/* atomic */
	void *raw;
	size_t len;
	struct mg_message *msg;		/* the chunk's own message, or NULL: raw is malloc'd */
};

static void chunk_buf_put(void *arg)
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

/* Data to every hop still live: shared from cb, else (cb NULL) a copy each. */
static void fanout_send_all(struct fanout *f, struct chunk_buf *cb, const void *data,
			    size_t len)
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

/* Tell every hop still waiting for data that there is none coming. */
static void fanout_kill(struct fanout *f, const char *why)
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

/* Every result behind us: theirs, lost hops' ids, ours. Taken. */
static struct mg_value *fanout_results(struct fanout *f)
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
			mg_list_append(all, result_value((uint32_t)h->ids->items[k].i,
							 h->state == HOP_LOST ? EPIPE : EIO,
							 h->why[0] ? h->why : "transfer did not finish",
							 0));
	}
	return all;
}

/* Min over ready hops of have[i] (in chunks). */
static uint32_t fanout_have(const struct fanout *f, size_t i, uint32_t mine)
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

/* Wait for one message and give it to the fan-out; other messages go
 * to other (NULL: dropped). Returns 0, -ETIMEDOUT. */
static int fanout_pump(struct fanout *f, double timeout, void (*other)(struct mg_message *, void *),
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

struct source {
	const char *root;
	const struct manifest *m;
	mg_files_progress_fn progress;
	void *progress_data;
	size_t ndest;
	double last_progress;
	char why[512];
};

static void source_progress(struct fanout *f, struct source *s, bool last)
{
	struct mg_files_progress p = { .bytes = f->sent, .total = s->m->total, .n = s->ndest };
	double t = now_s();

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

/*
 * Send every file of s->m from what the hops already have, then "e", to
 * each hop within its own window: it starts at FILES_WINDOW_START and
 * grows by what each of the hop's acknowledgements frees, up to
 * f->window_max, so a hop that is slower for a while holds back only
 * itself. A hop silent for FILES_IDLE_TIMEOUT while it has data
 * unacknowledged is given up (told with a dead message); the others
 * carry on. Returns 0, or -errno with s->why (the source could not be
 * read: every hop was told, with a dead message).
 */
static int source_run(struct fanout *f, struct source *s)
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

/* --- the service: recv --------------------------------------------------- */

struct relay {
	struct fanout *f;
	struct mg_receiver *up_rx;
	struct writer *w;		/* NULL: not a destination */
	bool eof, lost;
	uint64_t pos, acked_up;
	uint32_t parent, ctl;
	char why[512];
};

static void relay_ack(struct relay *rl)
{
	uint64_t a;

	fanout_update_acks(rl->f);
	a = rl->pos < rl->f->acked_min ? rl->pos : rl->f->acked_min;

	if (a > rl->acked_up || (rl->eof && a == rl->pos && rl->acked_up != a)) {
		rl->acked_up = a;
		send_to(rl->f->r, rl->parent, rl->ctl, MG_LIST(mg_str("a"), mg_int((int64_t)a)));
	}
}

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

/*
 * A data message, ["d", ENTRY, OFFSET, BYTES] as source_data_get encodes
 * it, read where it lies: the chunk's bytes are written from the message
 * itself. Decoding it would copy every 256 KiB chunk once more at every
 * hop (perf of a 32-host push: 3 % of all CPU, the agents' largest cost
 * after SHA-256). False for any other shape or encoding, trailing bytes
 * included; the caller then decodes the message whole, as before.
 */
static bool chunk_view(const void *raw, size_t len, uint32_t *entry, uint64_t *off,
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

/* A message from our parent (data), through fanout_pump. */
static void relay_up(struct mg_message *msg, void *arg)
{
	struct relay *rl = arg;
	struct mg_value *v = NULL;
	const void *raw, *data;
	size_t len, dlen;
	uint32_t entry;
	uint64_t off;

	if (mg_message_receiver(msg) != rl->up_rx) {
		mg_message_free(msg);
		return;
	}
	if (mg_message_is_dead(msg)) {
		rl->lost = true;
		if (mg_message_value(msg, false, &v, NULL) == 0 && v->type == MG_STR)
			snprintf(rl->why, sizeof(rl->why), "%s", v->str);
		else
			snprintf(rl->why, sizeof(rl->why), "the sending side went away");
		mg_value_free(v);
		mg_message_free(msg);
		return;
	}
	raw = mg_message_data(msg, &len);
	if (chunk_view(raw, len, &entry, &off, &data, &dlen)) {
		/* The message is the chunk every hop below gets. */
		struct chunk_buf *cb = calloc(1, sizeof(*cb));

		if (cb)
			*cb = (struct chunk_buf){ .refs = 1, .raw = (void *)raw, .len = len,
						  .msg = msg };
		fanout_send_all(rl->f, cb, raw, len);
		rl->f->sent += dlen;
		rl->pos += dlen;
		if (rl->w)
			writer_chunk(rl->w, entry, off, data, dlen);
		if (cb)
			chunk_buf_put(cb);
		else
			mg_message_free(msg);
		return;
	}
	if (mg_message_value(msg, false, &v, NULL) < 0 || v->type != MG_LIST || !v->len ||
	    v->items[0].type != MG_STR) {
		mg_value_free(v);
		mg_message_free(msg);
		return;
	}
	if (!strcmp(v->items[0].str, "d") && v->len == 4 && v->items[1].type == MG_INT &&
	    v->items[2].type == MG_INT && v->items[3].type == MG_BYTES && v->items[1].i >= 0 &&
	    v->items[2].i >= 0) {
		fanout_send_all(rl->f, NULL, raw, len);
		rl->f->sent += v->items[3].len;
		rl->pos += v->items[3].len;
		if (rl->w)
			writer_chunk(rl->w, (uint32_t)v->items[1].i, (uint64_t)v->items[2].i,
				     v->items[3].bytes, v->items[3].len);
	} else if (!strcmp(v->items[0].str, "e")) {
		fanout_send_all(rl->f, NULL, raw, len);
		if (rl->w)
			writer_end(rl->w);
		rl->eof = true;
	}
	mg_value_free(v);
	mg_message_free(msg);
}

/*
 * What an audited context's record of recv says beyond the digest of the
 * plan (docs/audit.md): the path written here, as the writer resolved it
 * (dest, or dest/NAME when dest is a directory), how many entries and
 * data bytes it wrote, and how many contexts below it relayed to.
 */
static void files_recv_audit(struct mg_call *call, const struct writer *w, bool dest_here,
			     const char *dest, size_t nbelow)
{
	if (dest_here) {
		char *path = NULL;

		if (w->into && w->rootname) {
			size_t n = strlen(dest);

			while (n > 0 && dest[n - 1] == '/')
				n--;
			if (asprintf(&path, "%.*s/%s", (int)n, dest, w->rootname) < 0)
				path = NULL;
		}
		mg_call_audit_detail(call, "path", mg_str(path ? path : dest));
		free(path);
		mg_call_audit_detail(call, "entries", mg_int(w->m ? (int64_t)w->m->n : 0));
		mg_call_audit_detail(call, "bytes", mg_int((int64_t)w->bytes));
	}
	if (nbelow)
		mg_call_audit_detail(call, "relayed_to", mg_int((int64_t)nbelow));
}

static int files_recv(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		      void *ud)
{
	const struct mg_value *plan = &args->items[0];
	const struct mg_value *ids = mg_map_get(plan, "ids"), *ctl = mg_map_get(plan, "ctl"),
			      *man = mg_map_get(plan, "manifest"), *dest = mg_map_get(plan, "dest"),
			      *name = mg_map_get(plan, "name"), *exact = mg_map_get(plan, "exact"),
			      *pres = mg_map_get(plan, "preserve"), *mode = mg_map_get(plan, "mode"),
			      *sync = mg_map_get(plan, "fsync");
	struct mg_router *r = mg_call_router(call);
	uint32_t self = mg_router_id(r);
	struct relay rl = { .parent = mg_call_src_id(call) };
	struct mg_context *pctx = NULL;
	struct manifest m = { 0 };
	struct writer w = { .rootdir = -1, .fd = -1, .dirfd = -1 };
	struct fanout f;
	uint32_t *below = NULL;
	size_t nbelow = 0;
	bool dest_here = false;
	struct mg_value *have = NULL, *res;
	char why[512];
	int ret_;

	if (!ids || ids->type != MG_LIST || !ctl || ctl->type != MG_INT || !dest ||
	    dest->type != MG_STR || !name || name->type != MG_STR || !man)
		return mg_call_fail(call, EINVAL, "malformed plan");
	ret_ = manifest_from_value(man, &m, why, sizeof(why));
	if (ret_ < 0)
		return mg_call_fail(call, -ret_, "%s", why);
	rl.ctl = (uint32_t)ctl->i;
	pctx = mg_router_context_by_id(r, rl.parent);
	below = calloc(ids->len ? ids->len : 1, sizeof(*below));
	if (!pctx || !below || fanout_init(&f, r, NULL, 0) < 0) {
		manifest_free(&m);
		free(below);
		mg_context_unref(pctx);
		return mg_call_fail(call, ENOMEM, "out of memory");
	}
	{
		MG_OPTS(mg_receiver_opts, ro, .respondent = pctx);

		rl.up_rx = mg_receiver_new(r, &ro);
		if (rl.up_rx)
			mg_select_add(f.sel, rl.up_rx);
	}
	rl.f = &f;
	for (size_t i = 0; i < ids->len; i++) {
		if (ids->items[i].type != MG_INT)
			continue;
		if ((uint32_t)ids->items[i].i == self)
			dest_here = true;
		else
			below[nbelow++] = (uint32_t)ids->items[i].i;
	}
	fanout_start(&f, below, nbelow, plan);
	free(below);
	if (dest_here) {
		rl.w = &w;
		writer_prepare(&w, &m, dest->str, name->str, exact && exact->type == MG_BOOL &&
			       exact->b, pres && pres->type == MG_BOOL && pres->b,
			       mode && mode->type == MG_INT ? (int)mode->i : 0);
		/* A sender that does not say (an older one): sync. */
		w.sync = !(sync && sync->type == MG_BOOL && !sync->b);
	}
	/* Ready once every hop is (or failed). */
	while (!fanout_all(&f, hop_not_waiting) && !rl.lost)
		if (fanout_pump(&f, FILES_IDLE_TIMEOUT, relay_up, &rl) < 0)
			break;
	have = mg_list();
	for (size_t i = 0; i < m.n; i++) {
		uint32_t mine = UINT32_MAX;

		if (rl.w && !w.error)
			mine = w.have[i];
		mg_list_append(have, mg_int(m.e[i].type == 'f' ? fanout_have(&f, i, mine) : 0));
	}
	if (!rl.up_rx || send_to(r, rl.parent, rl.ctl, MG_LIST(mg_str("r"),
			   mg_int(mg_receiver_handle(rl.up_rx)), have)) < 0)
		rl.lost = true;
	while (!rl.lost && !(rl.eof && fanout_all(&f, hop_finished))) {
		if (fanout_pump(&f, FILES_IDLE_TIMEOUT, relay_up, &rl) < 0) {
			snprintf(rl.why, sizeof(rl.why), "nothing heard for %g s", FILES_IDLE_TIMEOUT);
			rl.lost = true;
			break;
		}
		relay_ack(&rl);
	}
	if (rl.lost) {
		/* Interrupted: what we wrote stays under its temporary name. */
		fanout_kill(&f, rl.why);
		if (rl.w)
			writer_abort(&w);
		/* Our hops end their calls; their results are not waited for. */
	}
	relay_ack(&rl);
	files_recv_audit(call, &w, dest_here, dest->str, nbelow);
	res = fanout_results(&f);
	if (dest_here) {
		if (rl.lost && !w.error)
			mg_list_append(res, result_value(self, EPIPE, rl.why, w.bytes));
		else
			mg_list_append(res, result_value(self, -w.error, w.why, w.bytes));
	}
	writer_free(&w);
	mg_select_free(f.sel);
	f.sel = NULL;
	mg_receiver_free(rl.up_rx);
	fanout_free(&f);
	manifest_free(&m);
	mg_context_unref(pctx);
	*ret = res;
	return res ? 0 : mg_call_fail(call, ENOMEM, "out of memory");
}

/* --- the service: send (the source of a pull) ---------------------------- */

static int files_send(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		      void *ud)
{
	const char *path = args->items[0].str;
	struct mg_router *r = mg_call_router(call);
	uint32_t caller = mg_call_src_id(call), ctl = (uint32_t)args->items[2].i;
	struct mg_context *cctx = mg_router_context_by_id(r, caller);
	struct source s = { .root = path };
	struct manifest m;
	struct fanout f;
	char why[512];
	int ret_;

	/* An audited context's record says what was read (docs/audit.md). */
	mg_call_audit_detail(call, "path", mg_str(path));
	if (!cctx)
		return mg_call_fail(call, ENOMEM, "out of memory");
	ret_ = manifest_build(path, args->items[1].b, &m, why, sizeof(why));
	if (ret_ < 0) {
		mg_context_unref(cctx);
		return mg_call_fail(call, -ret_, "%s", why);
	}
	s.m = &m;
	if (fanout_init(&f, r, cctx, 0) < 0 || !(f.hops = calloc(1, sizeof(*f.hops)))) {
		fanout_free(&f);
		manifest_free(&m);
		mg_context_unref(cctx);
		return mg_call_fail(call, ENOMEM, "out of memory");
	}
	/* One peer: the caller, acknowledging on down_rx. */
	f.nhops = 1;
	f.hops[0].id = caller;
	f.hops[0].state = HOP_WAIT;
	send_to(r, caller, ctl, MG_LIST(mg_str("m"), mg_int(mg_receiver_handle(f.down_rx)),
					manifest_to_value(&m)));
	while (f.hops[0].state == HOP_WAIT)
		if (fanout_pump(&f, FILES_IDLE_TIMEOUT, NULL, NULL) < 0)
			break;
	if (f.hops[0].state == HOP_READY) {
		f.hops[0].data_handle = ctl;
		ret_ = source_run(&f, &s);
		/* Until everything was written there (or it went away). */
		while (ret_ == 0 && f.hops[0].state == HOP_READY && f.hops[0].acked < f.sent + 1)
			if (fanout_pump(&f, FILES_IDLE_TIMEOUT, NULL, NULL) < 0)
				break;
	} else {
		ret_ = -EPIPE;
		snprintf(s.why, sizeof(s.why), "%s", f.hops[0].why);
	}
	fanout_free(&f);
	manifest_free(&m);
	mg_context_unref(cctx);
	if (ret_ < 0)
		return mg_call_fail(call, -ret_, "%s", s.why);
	*ret = mg_nil();
	return 0;
}

static const struct mg_service_method files_methods[] = {
	/* Write (and relay below) what the caller sends: parents only, as
	 * mg.write_file. */
	{ "recv", files_recv, MG_SERVICE_PARENTS, "m" },
	/* Send a file or tree to the caller: parents only, as mg.read_file. */
	{ "send", files_send, MG_SERVICE_PARENTS, "sBi" },
};

void files_service_init(void)
{
	/* -EEXIST: a program offers its own (tests do). */
	mg_service_register("mg.files", files_methods,
			    sizeof(files_methods) / sizeof(files_methods[0]), NULL);
}

/* --- the caller's side ------------------------------------------------------- */

#define OPT(o, f, d) ((o) && (o)->sz >= offsetof(struct mg_files_opts, f) + sizeof((o)->f) ? \
		      (o)->f : (d))

static void result_set(struct mg_files_result *res, int errnum, const char *why, uint64_t bytes)
{
	res->error = errnum ? -errnum : 0;
	snprintf(res->message, sizeof(res->message), "%s", errnum ? why : "");
	res->bytes = bytes;
}

int mg_files_push(struct mg_router *r, const char *src, const char *dest,
		  struct mg_context *const *ctxs, size_t n, const struct mg_files_opts *opts,
		  struct mg_files_result *results, struct mg_error *err)
{
	struct source s = { .root = src, .ndest = n };
	struct manifest m;
	struct fanout f;
	struct mg_value *plan, *res = NULL;
	uint32_t *ids;
	char why[512], *b;
	int mode = OPT(opts, mode, 0), failed = 0, ret;

	if (!r || !src || !dest || !*dest || (!ctxs && n) || (n && !results) ||
	    mode < MG_FILES_MODE_KEEP || mode > 07777) {
		mg_error_clear(err);
		if (err) {
			err->kind = MG_ERR_CALL;
			err->errnum = EINVAL;
			snprintf(err->message, sizeof(err->message), "invalid arguments to mg_files_push");
		}
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		result_set(&results[i], EIO, "not attempted", 0);
	ret = manifest_build(src, OPT(opts, recursive, false), &m, why, sizeof(why));
	if (ret < 0) {
		if (err) {
			mg_error_clear(err);
			err->kind = MG_ERR_CALL;
			err->errnum = -ret;
			snprintf(err->message, sizeof(err->message), "%s", why);
		}
		return ret;
	}
	s.m = &m;
	s.progress = OPT(opts, progress, NULL);
	s.progress_data = OPT(opts, progress_data, NULL);
	ids = calloc(n ? n : 1, sizeof(*ids));
	b = strdup(src);
	plan = mg_map();
	if (!ids || !b || !plan || fanout_init(&f, r, NULL, OPT(opts, window, 0)) < 0) {
		free(ids);
		free(b);
		mg_value_free(plan);
		manifest_free(&m);
		fanout_free(&f);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		ids[i] = mg_context_remote_id(ctxs[i]);
	/* The same context twice is written once. */
	{
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			bool dup = false;

			for (size_t j = 0; j < k; j++)
				dup |= ids[j] == ids[i];
			if (!dup)
				ids[k++] = ids[i];
		}
		mg_map_set(plan, "dest", mg_str(dest));
		{
			char *bn = basename(b);
			size_t l = strlen(bn);

			/* "dir/" names "dir". */
			while (l > 1 && bn[l - 1] == '/')
				bn[--l] = '\0';
			mg_map_set(plan, "name", mg_str(bn));
		}
		mg_map_set(plan, "exact", mg_bool(OPT(opts, exact, false)));
		mg_map_set(plan, "preserve", mg_bool(OPT(opts, preserve, false)));
		mg_map_set(plan, "mode", mg_int(mode > 0 ? mode : 0));
		mg_map_set(plan, "fsync", mg_bool(!OPT(opts, no_fsync, false)));
		mg_map_set(plan, "manifest", manifest_to_value(&m));
		fanout_start(&f, ids, k, plan);
	}
	mg_value_free(plan);
	free(b);
	while (!fanout_all(&f, hop_not_waiting))
		if (fanout_pump(&f, FILES_IDLE_TIMEOUT, NULL, NULL) < 0)
			break;
	ret = source_run(&f, &s);
	while (!fanout_all(&f, hop_finished))
		if (fanout_pump(&f, FILES_IDLE_TIMEOUT, NULL, NULL) < 0)
			break;
	source_progress(&f, &s, true);
	res = fanout_results(&f);
	for (size_t i = 0; i < n; i++) {
		uint32_t id = mg_context_remote_id(ctxs[i]);

		for (size_t k = 0; res && k < res->len; k++) {
			const struct mg_value *it = &res->items[k];

			if (it->type != MG_LIST || it->len != 4 || it->items[0].type != MG_INT ||
			    (uint32_t)it->items[0].i != id)
				continue;
			result_set(&results[i], (int)it->items[1].i,
				   it->items[2].type == MG_STR ? it->items[2].str : "",
				   (uint64_t)it->items[3].i);
		}
		/* The source failed: that is every destination's reason. */
		if (ret < 0 && !results[i].error)
			result_set(&results[i], -ret, s.why, results[i].bytes);
		else if (ret < 0)
			snprintf(results[i].message, sizeof(results[i].message), "%s", s.why);
		failed += results[i].error != 0;
	}
	mg_value_free(res);
	fanout_free(&f);
	manifest_free(&m);
	free(ids);
	return failed;
}

/* --- pull ---------------------------------------------------------------- */

struct pull_src {
	struct mg_context *ctx;
	struct mg_receiver *ctl_rx, *call_rx;
	uint32_t ack_handle;
	struct manifest m;
	struct writer w;
	bool have_manifest, finished;
	uint64_t pos;
	int error;
	char why[512];
	char dir[PATH_MAX];
};

static void pull_fail(struct pull_src *p, struct mg_router *r, int errnum, const char *why)
{
	if (!p->error) {
		p->error = errnum;
		snprintf(p->why, sizeof(p->why), "%s", why);
	}
	/* Stop the sender: its acknowledgements never come. */
	if (p->ack_handle) {
		struct mg_message *m = mg_message_dead(mg_context_remote_id(p->ctx), p->ack_handle,
						       why);

		if (m)
			mg_router_route(r, m);
		p->ack_handle = 0;
	}
}

/* One chunk of data from the source: write it, acknowledge it. */
static void pull_chunk(struct pull_src *p, struct mg_router *r, uint32_t id, uint32_t entry,
		       uint64_t off, const void *data, size_t len)
{
	writer_chunk(&p->w, entry, off, data, len);
	p->pos += len;
	if (p->w.error) {
		pull_fail(p, r, -p->w.error, p->w.why);
		return;
	}
	send_to(r, id, p->ack_handle, MG_LIST(mg_str("a"), mg_int((int64_t)p->pos)));
}

static void pull_ctl(struct mg_router *r, struct pull_src *p, struct mg_message *msg,
		     const char *src, bool sync)
{
	struct mg_value *v = NULL;
	char why[512];
	uint32_t id = mg_context_remote_id(p->ctx);
	const void *raw, *data;
	size_t len, dlen;
	uint32_t entry;
	uint64_t off;

	if (mg_message_is_dead(msg) || p->error)
		goto out;
	raw = mg_message_data(msg, &len);
	if (p->have_manifest && chunk_view(raw, len, &entry, &off, &data, &dlen)) {
		pull_chunk(p, r, id, entry, off, data, dlen);
		goto out;
	}
	if (mg_message_value(msg, false, &v, NULL) < 0 || v->type != MG_LIST || !v->len ||
	    v->items[0].type != MG_STR) {
		pull_fail(p, r, EPROTO, "malformed message from the source");
		goto out;
	}
	if (!strcmp(v->items[0].str, "m") && v->len == 3 && v->items[1].type == MG_INT &&
	    !p->have_manifest) {
		char *b = strdup(src), *bn;
		struct mg_value *have;
		int ret;

		p->ack_handle = (uint32_t)v->items[1].i;
		ret = manifest_from_value(&v->items[2], &p->m, why, sizeof(why));
		if (ret < 0 || !b) {
			free(b);
			pull_fail(p, r, ret < 0 ? -ret : ENOMEM, why);
			goto out;
		}
		p->have_manifest = true;
		bn = basename(b);
		if (!*bn || !files_rel_ok(bn) || !strcmp(bn, "/")) {
			free(b);
			pull_fail(p, r, EINVAL, "source path has no name to copy to");
			goto out;
		}
		writer_prepare(&p->w, &p->m, p->dir, bn, false, true, 0);
		p->w.sync = sync;
		free(b);
		if (p->w.error) {
			pull_fail(p, r, -p->w.error, p->w.why);
			goto out;
		}
		have = mg_list();
		for (size_t i = 0; i < p->m.n; i++)
			mg_list_append(have, mg_int(p->w.have[i]));
		send_to(r, id, p->ack_handle, MG_LIST(mg_str("r"), mg_int(0), have));
	} else if (!strcmp(v->items[0].str, "d") && p->have_manifest && v->len == 4 &&
		   v->items[1].type == MG_INT && v->items[2].type == MG_INT &&
		   v->items[3].type == MG_BYTES && v->items[1].i >= 0 && v->items[2].i >= 0) {
		pull_chunk(p, r, id, (uint32_t)v->items[1].i, (uint64_t)v->items[2].i,
			   v->items[3].bytes, v->items[3].len);
	} else if (!strcmp(v->items[0].str, "e") && p->have_manifest) {
		writer_end(&p->w);
		if (p->w.error) {
			pull_fail(p, r, -p->w.error, p->w.why);
			goto out;
		}
		/* pos + 1: everything, "e" included, is written. */
		send_to(r, id, p->ack_handle, MG_LIST(mg_str("a"), mg_int((int64_t)p->pos + 1)));
	} else {
		pull_fail(p, r, EPROTO, "unexpected message from the source");
	}
out:
	mg_value_free(v);
	mg_message_free(msg);
}

int mg_files_pull(struct mg_router *r, const char *src, const char *destdir,
		  struct mg_context *const *ctxs, const char *const *names, size_t n,
		  const struct mg_files_opts *opts, struct mg_files_result *results,
		  struct mg_error *err)
{
	struct pull_src *ps;
	struct mg_select *sel;
	struct mg_files_progress prog = { .n = n };
	mg_files_progress_fn progress = OPT(opts, progress, NULL);
	double last = 0;
	int failed = 0;

	mg_error_clear(err);
	if (!r || !src || !*src || !destdir || (n && (!ctxs || !names || !results))) {
		if (err) {
			err->kind = MG_ERR_CALL;
			err->errnum = EINVAL;
			snprintf(err->message, sizeof(err->message), "invalid arguments to mg_files_pull");
		}
		return -EINVAL;
	}
	/* Names first: a collision is refused before anything is asked. */
	for (size_t i = 0; i < n; i++) {
		if (!names[i] || !*names[i] || strchr(names[i], '/') || !files_rel_ok(names[i])) {
			if (err) {
				err->kind = MG_ERR_CALL;
				err->errnum = EINVAL;
				snprintf(err->message, sizeof(err->message),
					 "'%s' cannot name a directory in %s", names[i] ? names[i] : "",
					 destdir);
			}
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(names[i], names[j])) {
				if (err) {
					err->kind = MG_ERR_CALL;
					err->errnum = EEXIST;
					snprintf(err->message, sizeof(err->message),
						 "targets %zu and %zu would both be fetched into %s/%s",
						 j + 1, i + 1, destdir, names[i]);
				}
				return -EEXIST;
			}
	}
	ps = calloc(n ? n : 1, sizeof(*ps));
	sel = mg_select_new(false);
	if (!ps || !sel) {
		free(ps);
		mg_select_free(sel);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		MG_OPTS(mg_receiver_opts, ro, .respondent = ctxs[i]);
		struct pull_src *p = &ps[i];
		struct mg_error e = MG_ERROR_INIT;

		p->ctx = ctxs[i];
		p->w.rootdir = p->w.fd = p->w.dirfd = -1;
		snprintf(p->dir, sizeof(p->dir), "%s/%s", destdir, names[i]);
		if (mkdir(p->dir, 0755) < 0 && errno != EEXIST) {
			char why[PATH_MAX + 64];

			files_errmsg(why, sizeof(why), errno, "creating", p->dir);
			pull_fail(p, r, errno, why);
			p->finished = true;
			continue;
		}
		p->ctl_rx = mg_receiver_new(r, &ro);
		if (p->ctl_rx)
			p->call_rx = mg_call_service_async(ctxs[i], "mg.files", "send",
							   MG_LIST(mg_str(src),
								   mg_bool(OPT(opts, recursive, false)),
								   mg_int(mg_receiver_handle(p->ctl_rx))),
							   &e);
		if (!p->call_rx || mg_select_add(sel, p->ctl_rx) < 0 ||
		    mg_select_add(sel, p->call_rx) < 0) {
			pull_fail(p, r, e.errnum ? e.errnum : ENOMEM,
				  e.message[0] ? e.message : "cannot start the call");
			p->finished = true;
		}
	}
	for (;;) {
		struct mg_message *msg = NULL;
		struct mg_receiver *rx;
		bool all = true;

		for (size_t i = 0; i < n; i++)
			all &= ps[i].finished;
		if (all)
			break;
		if (mg_select_get(sel, FILES_IDLE_TIMEOUT, &msg, NULL) < 0) {
			for (size_t i = 0; i < n; i++)
				if (!ps[i].finished) {
					pull_fail(&ps[i], r, ETIMEDOUT, "nothing heard from the source");
					ps[i].finished = true;
				}
			break;
		}
		rx = mg_message_receiver(msg);
		for (size_t i = 0; i < n; i++) {
			struct pull_src *p = &ps[i];

			if (rx == p->ctl_rx) {
				pull_ctl(r, p, msg, src, !OPT(opts, no_fsync, false));
				msg = NULL;
				break;
			}
			if (rx == p->call_rx) {
				struct mg_value *v = NULL;
				struct mg_error e = MG_ERROR_INIT;

				if (mg_message_value(msg, true, &v, &e) < 0) {
					char buf[MG_ERROR_MSG_MAX + 300];

					/* The source's own words (no such file...). */
					pull_fail(p, r, e.errnum ? e.errnum : EIO,
						  e.kind == MG_ERR_CALL ? e.message :
						  mg_error_str(&e, buf, sizeof(buf)));
				} else if (!p->w.error && (!p->have_manifest || p->w.started)) {
					pull_fail(p, r, EIO, "the source ended early");
				}
				mg_value_free(v);
				mg_select_remove(sel, p->call_rx);
				p->finished = true;
				break;
			}
		}
		mg_message_free(msg);
		if (progress && now_s() - last >= 0.1) {
			last = now_s();
			prog.bytes = prog.total = prog.done = prog.failed = 0;
			for (size_t i = 0; i < n; i++) {
				prog.bytes += ps[i].pos;
				prog.total += ps[i].m.total;
				prog.done += ps[i].finished && !ps[i].error;
				prog.failed += ps[i].finished && ps[i].error;
			}
			progress(&prog, OPT(opts, progress_data, NULL));
		}
	}
	prog.bytes = prog.total = prog.done = prog.failed = 0;
	for (size_t i = 0; i < n; i++) {
		struct pull_src *p = &ps[i];

		if (p->w.started)
			writer_abort(&p->w);
		result_set(&results[i], p->error, p->why, p->w.bytes);
		failed += p->error != 0;
		prog.bytes += p->pos;
		prog.total += p->m.total;
		prog.done += !p->error;
		prog.failed += !!p->error;
	}
	if (progress)
		progress(&prog, OPT(opts, progress_data, NULL));
	mg_select_free(sel);
	for (size_t i = 0; i < n; i++) {
		mg_receiver_free(ps[i].call_rx);
		mg_receiver_free(ps[i].ctl_rx);
		writer_free(&ps[i].w);
		manifest_free(&ps[i].m);
	}
	free(ps);
	return failed;
}
