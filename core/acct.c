// SPDX-License-Identifier: MIT
/*
 * acct.c — the router's own accounting of its child channels, both ways,
 * by handle class, and the public stats API (mitogen/stats.h). Always on:
 * it is what mg_router_stats() answers when the kernel does not count (no
 * eBPF), and it is what this process really received when it does. Same
 * rules as bpf/channel.bpf.c: messages counted once, record bytes with
 * their headers, a reply is a message to a handle that a message the
 * other way named as its reply_to.
 *
 * Owns: struct router_acct (r->acct), the denial callback, the test-only
 * unchecked switch, and the memfd through which the counters are published
 * (core/acct.h). Must not touch: streams' fds or the router's tables.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>

#include <mitogen/stats.h>
#include "core/acct.h"
#include "core/hooks.h"
#include "core/idmap.h"
#include "core/log.h"
#include "core/router.h"
#include "core/stream.h"
#include "core/wire.h"

bool router_test_unchecked;
const struct router_hooks *router_hooks;

void hooks_register(const struct router_hooks *h)
{
	__atomic_store_n(&router_hooks, h, __ATOMIC_RELEASE);
}

/*
 * Reply handles remembered per channel and direction: direct-mapped, as
 * in bpf/channel.bpf.c (slot = handle mod this; handles are given out in
 * sequence, so the last this-many of one context never collide). A newer
 * handle evicts an older one in its slot, and the replies to an evicted
 * handle count as user data. 1 KiB, made on first use: a map that kept
 * every handle grew with every call (to 128 KiB a direction) and missed
 * the cache on every message.
 */
#define PENDING_SLOTS 256

struct acct_chan {
	uint32_t child_id;
	struct mg_stats_counts dir[2];
	struct acct_shm_row *row;	/* published copy, or NULL */
	struct idmap ctx;		/* context id -> struct mg_stats_counts[2] */
	uint32_t *pending[2];		/* PENDING_SLOTS reply handles, by direction */
};

struct router_acct {
	pthread_mutex_t lock;
	struct idmap chans;		/* child id -> struct acct_chan */
	struct mg_stats_counts closed[2];
	mg_denial_fn denial;
	void *denial_ud;
	int shm_fd;
	struct acct_shm *shm;		/* core/acct.h, or NULL */
};

/* The published table; none (NULL) when memfd or mmap fail. */
static void shm_open_(struct router_acct *a, uint32_t router_id)
{
	int fd = memfd_create(ACCT_SHM_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	struct acct_shm *m;

	a->shm_fd = -1;
	if (fd < 0)
		return;
	if (ftruncate(fd, sizeof(*m)) < 0 ||
	    (m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
	    MAP_FAILED) {
		close(fd);
		return;
	}
	/* Fixed size from now on. */
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	m->version = ACCT_SHM_VERSION;
	m->pid = (uint32_t)getpid();
	m->router_id = router_id;
	m->nrows = ACCT_SHM_ROWS;
	__atomic_store_n(&m->magic, ACCT_SHM_MAGIC, __ATOMIC_RELEASE);
	a->shm_fd = fd;
	a->shm = m;
}

static void shm_publish(struct acct_chan *c)
{
	if (c->row)
		memcpy(c->row->dir, c->dir, sizeof(c->dir));
}

static struct router_acct *acct_of(struct mg_router *r)
{
	struct router_acct *a = __atomic_load_n(&r->acct, __ATOMIC_ACQUIRE), *want = NULL;

	if (a)
		return a;
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	idmap_init(&a->chans);
	a->shm_fd = -1;
	if (!__atomic_compare_exchange_n(&r->acct, &want, a, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		idmap_free(&a->chans);
		pthread_mutex_destroy(&a->lock);
		free(a);
		return want;
	}
	pthread_mutex_lock(&a->lock);
	shm_open_(a, r->id);
	pthread_mutex_unlock(&a->lock);
	return a;
}

static void ctx_free(uint32_t key, void *val, void *arg)
{
	free(val);
}

static void chan_free(struct acct_chan *c)
{
	idmap_each(&c->ctx, ctx_free, NULL);
	idmap_free(&c->ctx);
	free(c->pending[0]);
	free(c->pending[1]);
	free(c);
}

/* With a->lock held. */
static struct acct_chan *chan_of(struct router_acct *a, uint32_t child_id)
{
	struct acct_chan *c = idmap_get(&a->chans, child_id);

	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->child_id = child_id;
	idmap_init(&c->ctx);
	if (idmap_put(&a->chans, child_id, c) < 0) {
		chan_free(c);
		return NULL;
	}
	for (int i = 0; a->shm && i < ACCT_SHM_ROWS; i++) {
		if (!a->shm->rows[i].used) {
			c->row = &a->shm->rows[i];
			memset(c->row, 0, sizeof(*c->row));
			c->row->child_id = child_id;
			__atomic_store_n(&c->row->used, 1, __ATOMIC_RELEASE);
			break;
		}
	}
	if (a->shm && !c->row)
		a->shm->overflow++;
	return c;
}

static struct mg_stats_counts *ctx_of(struct acct_chan *c, uint32_t id)
{
	struct mg_stats_counts *k = idmap_get(&c->ctx, id);

	if (k)
		return k;
	k = calloc(2, sizeof(*k));
	if (k && idmap_put(&c->ctx, id, k) < 0) {
		free(k);
		k = NULL;
	}
	return k;
}

static int class_of(struct acct_chan *c, int dir, const struct wire_meta *m)
{
	switch (m->handle) {
	case MG_HANDLE_CALL_FUNCTION:
	case MG_HANDLE_CALL_SERVICE:
	case MG_HANDLE_SHUTDOWN:
	case MG_HANDLE_BOOT:
		return MG_STATS_CALL;
	case MG_HANDLE_FORWARD_LOG:
	case MG_HANDLE_AUDIT:
		return MG_STATS_LOG;
	case MG_HANDLE_ADD_ROUTE:
	case MG_HANDLE_DEL_ROUTE:
	case MG_HANDLE_ALLOCATE_ID:
	case MG_HANDLE_DETACHING:
	case MG_HANDLE_HEARTBEAT:
		return MG_STATS_ROUTE;
	}
	/* Only handles >= MG_HANDLE_USER_MIN are stored (0 marks a free slot). */
	if (m->reply_to == MG_IS_DEAD ||
	    (m->handle >= MG_HANDLE_USER_MIN && c->pending[dir] &&
	     c->pending[dir][m->handle % PENDING_SLOTS] == m->handle))
		return MG_STATS_REPLY;
	return MG_STATS_DATA;
}

static void note_reply_to(struct acct_chan *c, int dir, const struct wire_meta *m)
{
	uint32_t **p = &c->pending[!dir];

	if (m->reply_to < MG_HANDLE_USER_MIN)
		return;
	if (!*p && !(*p = calloc(PENDING_SLOTS, sizeof(**p))))
		return;		/* not remembered: its replies count as data */
	(*p)[m->reply_to % PENDING_SLOTS] = m->reply_to;
}

/* One message (msgs 1, bytes) or more records of it (msgs 0). */
static void count(struct stream *s, int dir, uint32_t ctx, const struct wire_meta *m,
		  bool first, size_t bytes)
{
	struct router_acct *a = acct_of(s->router);
	struct acct_chan *c;
	struct mg_stats_counts *k;
	int cls;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	c = chan_of(a, s->remote_id);
	if (c) {
		cls = class_of(c, dir, m);
		/* Going down, acct_tx_note did it before the send. */
		if (first && dir == MG_STATS_UP)
			note_reply_to(c, dir, m);
		c->dir[dir].msgs[cls] += first;
		c->dir[dir].bytes[cls] += bytes;
		k = ctx_of(c, ctx);
		if (k) {
			k[dir].msgs[cls] += first;
			k[dir].bytes[cls] += bytes;
		}
		shm_publish(c);
	}
	pthread_mutex_unlock(&a->lock);
}

void acct_tx_note(struct stream *s, const struct wire_meta *meta)
{
	struct router_acct *a;
	struct acct_chan *c;

	if (s->role != STREAM_CHILD || !s->router || meta->reply_to < MG_HANDLE_USER_MIN ||
	    !(a = acct_of(s->router)))
		return;
	pthread_mutex_lock(&a->lock);
	c = chan_of(a, s->remote_id);
	if (c)
		note_reply_to(c, MG_STATS_DOWN, meta);
	pthread_mutex_unlock(&a->lock);
}

void acct_tx_record(struct stream *s, const struct wire_meta *meta, uint8_t flags,
		    size_t bytes)
{
	if (s->role != STREAM_CHILD || !s->router)
		return;
	count(s, MG_STATS_DOWN, meta->dst_id, meta, flags & WIRE_FLAG_FIRST, bytes);
}

void acct_rx(struct stream *s, const struct wire_meta *meta, size_t len)
{
	count(s, MG_STATS_UP, meta->src_id, meta, true,
	      len + WIRE_HDR_SIZE * wire_records(len));
}

void acct_rx_drop(struct stream *s, int reason)
{
	struct router_acct *a = acct_of(s->router);
	struct acct_chan *c;
	struct mg_stats_counts *k;

	if (!a || reason < 0 || reason >= MG_STATS_NDROP)
		return;
	pthread_mutex_lock(&a->lock);
	c = chan_of(a, s->remote_id);
	if (c) {
		c->dir[MG_STATS_UP].drops[reason]++;
		k = ctx_of(c, s->remote_id);
		if (k)
			k[MG_STATS_UP].drops[reason]++;
		shm_publish(c);
	}
	pthread_mutex_unlock(&a->lock);
}

static void counts_add(struct mg_stats_counts *to, const struct mg_stats_counts *from)
{
	for (int i = 0; i < MG_STATS_NCLASS; i++) {
		to->msgs[i] += from->msgs[i];
		to->bytes[i] += from->bytes[i];
	}
	for (int i = 0; i < MG_STATS_NDROP; i++)
		to->drops[i] += from->drops[i];
}

void acct_stream_closed(struct stream *s)
{
	struct router_acct *a;
	struct acct_chan *c;

	if (s->role != STREAM_CHILD || !s->router)
		return;
	a = __atomic_load_n(&s->router->acct, __ATOMIC_ACQUIRE);
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	c = idmap_del(&a->chans, s->remote_id);
	if (c) {
		counts_add(&a->closed[0], &c->dir[0]);
		counts_add(&a->closed[1], &c->dir[1]);
		if (a->shm) {
			memcpy(a->shm->closed.dir, a->closed, sizeof(a->closed));
			if (c->row)
				__atomic_store_n(&c->row->used, 0, __ATOMIC_RELEASE);
		}
		chan_free(c);
	}
	pthread_mutex_unlock(&a->lock);
}

static void chan_free_each(uint32_t key, void *val, void *arg)
{
	chan_free(val);
}

void acct_router_free(struct mg_router *r)
{
	struct router_acct *a = r->acct;

	hooks_router_free(r);
	if (!a)
		return;
	idmap_each(&a->chans, chan_free_each, NULL);
	idmap_free(&a->chans);
	if (a->shm)
		munmap(a->shm, sizeof(*a->shm));
	if (a->shm_fd >= 0)
		close(a->shm_fd);
	pthread_mutex_destroy(&a->lock);
	free(a);
	r->acct = NULL;
}

void acct_denial(struct mg_router *r, const struct mg_denial *denial)
{
	struct router_acct *a = acct_of(r);
	mg_denial_fn fn = NULL;
	void *ud = NULL;

	if (a) {
		pthread_mutex_lock(&a->lock);
		fn = a->denial;
		ud = a->denial_ud;
		pthread_mutex_unlock(&a->lock);
	}
	if (fn)
		fn(denial, ud);
}

/* --- public ------------------------------------------------------------ */

int mg_router_on_denial(struct mg_router *r, mg_denial_fn fn, void *userdata)
{
	struct router_acct *a;

	if (!r)
		return -EINVAL;
	a = acct_of(r);
	if (!a)
		return -ENOMEM;
	pthread_mutex_lock(&a->lock);
	a->denial = fn;
	a->denial_ud = userdata;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

struct rows {
	struct mg_router_stats *st;
	size_t cap;
	uint32_t chan;
	int fail;
};

static struct mg_stats_row *row_add(struct rows *rw)
{
	struct mg_router_stats *st = rw->st;

	if (st->nrows == rw->cap) {
		size_t cap = rw->cap ? rw->cap * 2 : 16;
		struct mg_stats_row *p = realloc(st->rows, cap * sizeof(*p));

		if (!p) {
			rw->fail = -ENOMEM;
			return NULL;
		}
		st->rows = p;
		rw->cap = cap;
	}
	memset(&st->rows[st->nrows], 0, sizeof(st->rows[0]));
	return &st->rows[st->nrows++];
}

static void chan_row(uint32_t key, void *val, void *arg)
{
	struct rows *rw = arg;
	struct acct_chan *c = val;
	struct mg_stats_row *row = row_add(rw);

	if (!row)
		return;
	/* User-space channels are numbered by their child's id. */
	row->channel = c->child_id;
	row->child_id = c->child_id;
	row->context_id = MG_STATS_CHANNEL;
	row->dir[0] = c->dir[0];
	row->dir[1] = c->dir[1];
}

struct ctx_rows {
	struct rows *rw;
	struct acct_chan *c;
};

static void ctx_row(uint32_t key, void *val, void *arg)
{
	struct ctx_rows *cr = arg;
	struct mg_stats_counts *k = val;
	struct mg_stats_row *row = row_add(cr->rw);

	if (!row)
		return;
	row->channel = cr->c->child_id;
	row->child_id = cr->c->child_id;
	row->context_id = key;
	row->dir[0] = k[0];
	row->dir[1] = k[1];
}

static void chan_ctx_rows(uint32_t key, void *val, void *arg)
{
	struct ctx_rows cr = { .rw = arg, .c = val };

	idmap_each(&cr.c->ctx, ctx_row, &cr);
}

/*
 * The kernel counts what it drops; replies from the wrong context that it
 * let through (to a handle that did go down the channel, from another
 * context behind it) are dropped by the router, which counts them here:
 * add those to the kernel's rows, channel and child, so that one
 * snapshot says how many forged replies each channel carried.
 */
static void add_router_drops(struct mg_router *r, struct mg_router_stats *st)
{
	struct router_acct *a = __atomic_load_n(&r->acct, __ATOMIC_ACQUIRE);

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < st->nrows; i++) {
		struct mg_stats_row *row = &st->rows[i];
		const struct mg_stats_counts *from;
		struct acct_chan *c;

		if (row->context_id != MG_STATS_CHANNEL && row->context_id != row->child_id)
			continue;
		if (row->channel == 0 && row->context_id == MG_STATS_CHANNEL) {
			from = &a->closed[MG_STATS_UP];
		} else {
			c = idmap_get(&a->chans, row->child_id);
			if (!c)
				continue;
			from = &c->dir[MG_STATS_UP];
		}
		row->dir[MG_STATS_UP].drops[MG_DROP_REPLY] += from->drops[MG_DROP_REPLY];
	}
	pthread_mutex_unlock(&a->lock);
}

int mg_router_stats(struct mg_router *r, struct mg_router_stats **ret_stats)
{
	const struct router_hooks *h = __atomic_load_n(&router_hooks, __ATOMIC_ACQUIRE);
	int ret;

	if (!r || !ret_stats)
		return -EINVAL;
	if (h && h->stats) {
		ret = h->stats(r, ret_stats);
		if (ret == 0)
			add_router_drops(r, *ret_stats);
		if (ret != -ENOENT)
			return ret;
	}
	return acct_snapshot(r, ret_stats);
}

int acct_snapshot(struct mg_router *r, struct mg_router_stats **ret_stats)
{
	struct router_acct *a;
	struct rows rw = { 0 };
	struct mg_stats_row *row;

	a = acct_of(r);
	rw.st = calloc(1, sizeof(*rw.st));
	if (!a || !rw.st) {
		free(rw.st);
		return -ENOMEM;
	}
	pthread_mutex_lock(&a->lock);
	row = row_add(&rw);
	if (row) {
		row->context_id = MG_STATS_CHANNEL;
		row->dir[0] = a->closed[0];
		row->dir[1] = a->closed[1];
	}
	idmap_each(&a->chans, chan_row, &rw);
	idmap_each(&a->chans, chan_ctx_rows, &rw);
	pthread_mutex_unlock(&a->lock);
	if (rw.fail) {
		mg_router_stats_free(rw.st);
		return rw.fail;
	}
	*ret_stats = rw.st;
	return 0;
}

void mg_router_stats_free(struct mg_router_stats *stats)
{
	if (!stats)
		return;
	free(stats->rows);
	free(stats);
}

const char *mg_stats_class_name(enum mg_stats_class c)
{
	static const char *const names[] = { "calls", "replies", "logs", "routes", "data" };

	return (unsigned)c < MG_STATS_NCLASS ? names[c] : "?";
}

const char *mg_stats_drop_name(enum mg_stats_drop d)
{
	static const char *const names[] = { "malformed", "src_id", "auth_id",
					     "privileged_up", "no_authority", "unknown",
					     "reply" };

	return (unsigned)d < MG_STATS_NDROP ? names[d] : "?";
}
