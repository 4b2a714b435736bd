// SPDX-License-Identifier: MIT
/*
 * loader.c — the user-space half of the channel filter (DESIGN §6). Loads
 * channel.bpf.c (skeleton generated at build time) once per process on
 * the first child channel, pins its maps under MGB_PIN_ROOT/<pid>/,
 * attaches the filter to both ends of every channel and locks it there
 * (SO_LOCK_FILTER) before the child runs, mirrors the router's routes into
 * the routes map, folds a closed channel's counters into the closed row,
 * and reads the denial ring buffer on the broker thread.
 *
 * When the programs cannot be loaded (MITOGEN_BPF=0, no kernel BTF, no
 * CAP_BPF/CAP_SYS_ADMIN, ...) it says so once in the log and the router
 * carries on with its user-space checks, which always run.
 *
 * Owns: the skeleton, the pin directory, the channel table. Must not
 * touch: the router's own tables (it only hears about them, core/hooks.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <mitogen/context.h>
#include <mitogen/stats.h>
#include "bpf/loader.h"
#include "bpf/shared.h"
#include "core/audit.h"
#include "core/broker.h"
#include "core/hooks.h"
#include "core/log.h"
#include "core/router.h"
#include "core/stream.h"
#include "channel.skel.h"

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif
#ifndef SO_LOCK_FILTER
#define SO_LOCK_FILTER 44
#endif
#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

/* The kernel program and the public header count the same things. */
_Static_assert((int)MGB_NCLASS == (int)MG_STATS_NCLASS, "classes");
_Static_assert((int)MGB_NDROP == (int)MG_STATS_NDROP, "drop reasons");
_Static_assert((int)MGB_DROP_NO_AUTHORITY == (int)MG_DROP_NO_AUTHORITY, "drop reasons");
_Static_assert((int)MGB_DROP_REPLY == (int)MG_DROP_REPLY, "drop reasons");
_Static_assert((int)MGB_CLASS_DATA == (int)MG_STATS_DATA, "classes");
_Static_assert((int)MGB_DOWN == (int)MG_STATS_DOWN, "directions");
_Static_assert(MGB_CTX_TOTAL == MG_STATS_CHANNEL, "channel rows");
_Static_assert(sizeof(struct mgb_counts) == sizeof(struct mg_stats_counts), "counts");
_Static_assert(MG_HANDLE_CALL_FUNCTION == 101 && MG_HANDLE_FORWARD_LOG == 102 &&
	       MG_HANDLE_ADD_ROUTE == 103 && MG_HANDLE_DEL_ROUTE == 104 &&
	       MG_HANDLE_ALLOCATE_ID == 105 && MG_HANDLE_SHUTDOWN == 106 &&
	       MG_HANDLE_DETACHING == 109 && MG_HANDLE_CALL_SERVICE == 110 &&
	       MG_HANDLE_BOOT == 111 && MG_HANDLE_AUDIT == 112 &&
	       MG_HANDLE_HEARTBEAT == 113 && MG_IS_DEAD == 999 &&
	       MG_HANDLE_USER_MIN == 1000,
	       "handle numbers used by channel.bpf.c");

#define NBUCKETS 256

struct bl_chan {
	uint32_t chan;
	uint32_t child_id;
	uint64_t cookie_parent, cookie_child;
	struct bl_router *br;
	uint32_t *ids;			/* every id ever routed through it */
	size_t nids, cap;
	bool reply_logged;		/* a foreign reply was logged */
	struct bl_chan *next;		/* bucket by cookie_parent */
};

/* The ring buffer's epoll fd, watched once by each broker with routers. */
struct bl_broker {
	struct mg_broker *b;
	struct broker_source src;
	bool added;
	int users;			/* bl_routers on it */
	struct bl_broker *next;
};

struct bl_router {
	struct mg_router *r;
	uint32_t rkey;
	struct mg_stats_counts closed[2];	/* channels of r closed so far */
	struct bl_broker *bb;
	struct bl_router *next;
};

enum { BL_UNTRIED, BL_ON, BL_OFF };

static struct {
	pthread_mutex_t lock;
	pthread_mutex_t dispatch;	/* denial callbacks vs router_free */
	pid_t pid;
	int state;
	bool disabled;
	char off_reason[160];
	char pin[128];
	struct channel_bpf *skel;
	struct ring_buffer *rb;
	int prog_fd, chans_fd, routes_fd, counts_fd;
	uint32_t next_chan, next_rkey;
	struct bl_chan *buckets[NBUCKETS];
	struct bl_router *routers;
	struct bl_broker *brokers;
	/* Events read in one go, handed out after the lock is dropped. */
	struct mgb_event evq[64];
	size_t nev;
	/* After fork: what the parent process had, kept reachable. */
	struct channel_bpf *stale_skel;
	struct ring_buffer *stale_rb;
} bl = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.dispatch = PTHREAD_MUTEX_INITIALIZER,
	.prog_fd = -1,
};

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	if (level == LIBBPF_DEBUG || !log_enabled(MG_LOG_DEBUG))
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	LOG_DEBUG("libbpf: %s", line);
	return 0;
}

void bpfload_libbpf_log(void)
{
	libbpf_set_print(libbpf_log);
}

/* --- pins -------------------------------------------------------------- */

static int rm_pin_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[640];

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	return rmdir(dir) < 0 ? -errno : 0;
}

/* Pin directories of processes that are gone (killed, crashed). */
static void rm_stale_pins(void)
{
	DIR *d = opendir(MGB_PIN_ROOT);
	struct dirent *e;
	char p[640];

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;	/* still running */
		snprintf(p, sizeof(p), MGB_PIN_ROOT "/%s", e->d_name);
		rm_pin_dir(p);
	}
	closedir(d);
}

/* bpffs at /sys/fs/bpf, mounted if it is not (said in the log). */
static int ensure_bpffs(void)
{
	struct statfs sf;

	if (statfs("/sys/fs/bpf", &sf) == 0 && sf.f_type == BPF_FS_MAGIC)
		return 0;
	mkdir("/sys/fs/bpf", 0755);
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") < 0)
		return -errno;
	LOG_INFO("eBPF: mounted a bpf filesystem at /sys/fs/bpf (it was not mounted)");
	return 0;
}

static int pin_maps(void)
{
	struct bpf_map *maps[] = { bl.skel->maps.chans, bl.skel->maps.routes,
				   bl.skel->maps.counts, bl.skel->maps.events,
				   bl.skel->maps.pending, bl.skel->maps.recent };
	char p[192];
	int ret;

	ret = ensure_bpffs();
	if (ret < 0)
		return ret;
	mkdir(MGB_PIN_ROOT, 0700);
	rm_stale_pins();
	snprintf(bl.pin, sizeof(bl.pin), MGB_PIN_ROOT "/%d", (int)getpid());
	rm_pin_dir(bl.pin);		/* a previous process with our pid */
	if (mkdir(bl.pin, 0700) < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", bl.pin, bpf_map__name(maps[i]));
		ret = bpf_map__pin(maps[i], p);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* With bl.lock held, no router left. */
static void unload(void)
{
	if (bl.pin[0])
		rm_pin_dir(bl.pin);
	bl.pin[0] = '\0';
	ring_buffer__free(bl.rb);
	bl.rb = NULL;
	channel_bpf__destroy(bl.skel);
	bl.skel = NULL;
	bl.prog_fd = -1;
	bl.state = BL_UNTRIED;
}

static void unpin_at_exit(void)
{
	pthread_mutex_lock(&bl.lock);
	/* A forked child runs its parent's atexit handlers: not ours. */
	if (bl.state == BL_ON && bl.pid == getpid() && bl.pin[0]) {
		rm_pin_dir(bl.pin);
		bl.pin[0] = '\0';
	}
	pthread_mutex_unlock(&bl.lock);
}

/* --- loading ----------------------------------------------------------- */

/*
 * One event into bl.evq. A negative return stops ring_buffer__consume()
 * after this event (libbpf has already moved past it), so none is lost
 * when the queue fills: on_ringbuf() consumes again.
 */
static int on_event(void *ctx, void *data, size_t size)
{
	if (size >= sizeof(struct mgb_event))
		memcpy(&bl.evq[bl.nev++], data, sizeof(struct mgb_event));
	return bl.nev < sizeof(bl.evq) / sizeof(bl.evq[0]) ? 0 : -E2BIG;
}

static void go_off(enum mg_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Said once per process. An unprivileged process is expected to run
 * without eBPF: INFO (the tool does not show it by default); a privileged
 * one that cannot load the programs: WARNING.
 */
static void go_off(enum mg_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(bl.off_reason, sizeof(bl.off_reason), fmt, ap);
	va_end(ap);
	bl.state = BL_OFF;
	log_msg(level, "eBPF channel filters off: %s; the authority rules are enforced "
		"in user space only and the counters are not kernel-backed", bl.off_reason);
}

static void forget_after_fork(void)
{
	/* The parent's maps and programs are not ours: start again. */
	bl.stale_skel = bl.skel;
	bl.stale_rb = bl.rb;
	bl.skel = NULL;
	bl.rb = NULL;
	memset(bl.buckets, 0, sizeof(bl.buckets));
	bl.routers = NULL;
	bl.brokers = NULL;
	bl.pin[0] = '\0';
	if (bl.state == BL_ON)
		bl.state = BL_UNTRIED;
}

/* fork() (mg_fork) copies only the forking thread: never let the child
 * inherit these locks held by another thread. */
static void atfork_prepare(void)
{
	pthread_mutex_lock(&bl.dispatch);
	pthread_mutex_lock(&bl.lock);
}

static void atfork_release(void)
{
	pthread_mutex_unlock(&bl.lock);
	pthread_mutex_unlock(&bl.dispatch);
}

static void atfork_once(void)
{
	pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

/* With bl.lock held. */
static bool load(void)
{
	static bool atexit_set;
	int ret;

	if (bl.state != BL_UNTRIED && bl.pid != getpid())
		forget_after_fork();
	if (bl.state != BL_UNTRIED)
		return bl.state == BL_ON;
	bl.pid = getpid();
	if (bl.disabled || (getenv("MITOGEN_BPF") && !strcmp(getenv("MITOGEN_BPF"), "0"))) {
		bl.disabled = true;
		snprintf(bl.off_reason, sizeof(bl.off_reason), "turned off (MITOGEN_BPF=0)");
		bl.state = BL_OFF;
		LOG_DEBUG("eBPF channel filters %s", bl.off_reason);
		return false;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
		go_off(MG_LOG_WARNING, "no kernel BTF (/sys/kernel/btf/vmlinux: %s)",
		       strerror(errno));
		return false;
	}
	libbpf_set_print(libbpf_log);
	bl.skel = channel_bpf__open_and_load();
	if (!bl.skel) {
		int e = errno;

		if (e == EPERM || e == EACCES)
			go_off(MG_LOG_INFO, "no CAP_BPF/CAP_SYS_ADMIN to load programs (bpf: %s)",
			       strerror(e));
		else
			go_off(MG_LOG_WARNING, "cannot load bpf/channel.bpf.c: %s", strerror(e));
		return false;
	}
	bl.prog_fd = bpf_program__fd(bl.skel->progs.mg_channel);
	bl.chans_fd = bpf_map__fd(bl.skel->maps.chans);
	bl.routes_fd = bpf_map__fd(bl.skel->maps.routes);
	bl.counts_fd = bpf_map__fd(bl.skel->maps.counts);
	bl.rb = ring_buffer__new(bpf_map__fd(bl.skel->maps.events), on_event, NULL, NULL);
	if (!bl.rb) {
		go_off(MG_LOG_WARNING, "cannot read the denial ring buffer: %s", strerror(errno));
		channel_bpf__destroy(bl.skel);
		bl.skel = NULL;
		return false;
	}
	bl.state = BL_ON;
	ret = pin_maps();
	if (ret < 0) {
		LOG_WARN("eBPF: maps not pinned under %s: %s (mitogen stats cannot read "
			 "them from outside)", MGB_PIN_ROOT, strerror(-ret));
		if (bl.pin[0])
			rm_pin_dir(bl.pin);
		bl.pin[0] = '\0';
	}
	if (!atexit_set) {
		atexit(unpin_at_exit);
		atexit_set = true;
	}
	LOG_DEBUG("eBPF channel filters on, maps at %s", bl.pin[0] ? bl.pin : "(not pinned)");
	return true;
}

/* --- denial events (broker thread) ------------------------------------- */

static struct bl_chan *chan_by_number(uint32_t chan)
{
	for (size_t i = 0; i < NBUCKETS; i++)
		for (struct bl_chan *c = bl.buckets[i]; c; c = c->next)
			if (c->chan == chan)
				return c;
	return NULL;
}

/* The router's wording for the same refusal, plus where it happened. */
static void log_denial(const struct mg_denial *d)
{
	char what[160];

	switch (d->reason) {
	case MG_DROP_SRC_ID:
		snprintf(what, sizeof(what), "refused message with spoofed src_id %u "
			 "(context %u is not behind this channel)", d->src_id, d->src_id);
		break;
	case MG_DROP_AUTH_ID:
		snprintf(what, sizeof(what), "refused message from %u with forged auth_id %u",
			 d->src_id, d->auth_id);
		break;
	case MG_DROP_PRIV_UP:
		snprintf(what, sizeof(what), "refused handle %u from %u to its parent line "
			 "(context %u): children hold no authority over parents", d->handle,
			 d->src_id, d->dst_id);
		break;
	case MG_DROP_NO_AUTHORITY:
		snprintf(what, sizeof(what), "refused handle %u to context %u: auth_id %u "
			 "is not one of its parents", d->handle, d->dst_id, d->auth_id);
		break;
	case MG_DROP_REPLY:
		snprintf(what, sizeof(what), "dropped reply from unexpected context %u to "
			 "handle %u: no call to it went down this channel (further ones on "
			 "this channel are counted, not logged)", d->src_id, d->handle);
		break;
	default:
		snprintf(what, sizeof(what), "dropped a record: %s",
			 mg_stats_drop_name(d->reason));
		break;
	}
	LOG_ERROR("channel %u to context %u, %s: kernel %s (dst_id %u src_id %u auth_id %u "
		  "handle %u, %u bytes)", d->channel, d->child_id,
		  d->dir == MG_STATS_UP ? "up" : "down", what, d->dst_id, d->src_id, d->auth_id,
		  d->handle, d->len);
}

/*
 * Broker thread of r: answer a dropped request as the router answers one
 * it refuses (DESIGN §5): a CallError to its reply_to, sent down to the
 * child that really sent it (up), or routed to its sender (down).
 */
static void refuse_now(struct mg_router *r, const struct mg_denial *d)
{
	static const char *const why[MG_STATS_NDROP] = {
		[MG_DROP_SRC_ID] = "bad src_id",
		[MG_DROP_AUTH_ID] = "bad auth_id",
		[MG_DROP_PRIV_UP] = "caller lacks authority",
		[MG_DROP_NO_AUTHORITY] = "caller lacks authority",
	};
	struct stream *s = NULL;
	struct mg_message *m;

	if (!d->reply_to || d->reply_to == MG_IS_DEAD || (unsigned)d->reason >= MG_STATS_NDROP ||
	    !why[d->reason])
		return;
	m = mg_message_new(d->dst_id, d->handle, NULL);
	if (!m)
		return;
	m->meta.src_id = d->src_id;
	m->meta.auth_id = d->auth_id;
	m->meta.reply_to = d->reply_to;
	if (d->dir == MG_STATS_UP) {
		pthread_mutex_lock(&r->lock);
		s = idmap_get(&r->routes, d->child_id);
		pthread_mutex_unlock(&r->lock);
		if (!s || s->role != STREAM_CHILD || s->remote_id != d->child_id || s->closed) {
			mg_message_free(m);
			return;
		}
	}
	router_refuse(r, m, s, why[d->reason]);
	mg_message_free(m);
}

/*
 * Only on r's broker thread: a router on another broker (a process with
 * several) could be destroyed before work deferred to it runs. Its
 * callers then wait for no answer; the drop is logged and counted.
 */
static void refuse(struct mg_router *r, const struct mg_denial *d)
{
	if (mg_broker_on_thread(r->broker))
		refuse_now(r, d);
}

static void on_ringbuf(struct broker_source *src, uint32_t events)
{
	static const char *const audit_why[MG_STATS_NDROP] = {
		[MG_DROP_SRC_ID] = "spoofed src_id",
		[MG_DROP_AUTH_ID] = "forged auth_id",
		[MG_DROP_PRIV_UP] = "caller lacks authority",
		[MG_DROP_NO_AUTHORITY] = "caller lacks authority",
		[MG_DROP_REPLY] = "reply from a context that was not called",
		[MG_DROP_UNKNOWN] = "a socket with no channel entry",
	};
	struct mgb_event ev[64];
	struct mg_router *rs[64];
	bool quiet[64];
	size_t n;

	pthread_mutex_lock(&bl.dispatch);
	do {
		pthread_mutex_lock(&bl.lock);
		bl.nev = 0;
		if (bl.rb && bl.pid == getpid())
			ring_buffer__consume(bl.rb);
		n = bl.nev;
		memcpy(ev, bl.evq, n * sizeof(ev[0]));
		for (size_t i = 0; i < n; i++) {
			struct bl_chan *c = chan_by_number(ev[i].chan);

			rs[i] = c ? c->br->r : NULL;
			/* Foreign replies: one line a channel, as the router. */
			quiet[i] = false;
			if (c && ev[i].reason == MG_DROP_REPLY) {
				quiet[i] = c->reply_logged;
				c->reply_logged = true;
			}
		}
		pthread_mutex_unlock(&bl.lock);
		for (size_t i = 0; i < n; i++) {
			struct mg_denial d = {
				.time_ns = ev[i].time_ns, .channel = ev[i].chan,
				.child_id = ev[i].child_id, .dir = ev[i].dir,
				.reason = ev[i].reason, .dst_id = ev[i].dst_id,
				.src_id = ev[i].src_id, .auth_id = ev[i].auth_id,
				.handle = ev[i].handle, .reply_to = ev[i].reply_to,
				.len = ev[i].len,
			};

			if (!quiet[i])
				log_denial(&d);
			/* Into the master's audit trail (the router's words). */
			if (rs[i] && (unsigned)d.reason < MG_STATS_NDROP && audit_why[d.reason])
				audit_denial(rs[i], true, audit_why[d.reason], d.child_id,
					     d.src_id, d.auth_id, d.dst_id, d.handle);
			if (rs[i]) {
				refuse(rs[i], &d);
				acct_denial(rs[i], &d);
			}
		}
	} while (n == sizeof(ev) / sizeof(ev[0]));
	pthread_mutex_unlock(&bl.dispatch);
}

static void src_add_deferred(void *arg)
{
	struct bl_broker *bb = arg;

	if (broker_add(bb->b, &bb->src, EPOLLIN) == 0)
		bb->added = true;
}

static void src_del_deferred(void *arg)
{
	struct bl_broker *bb = arg;

	if (bb->added)
		broker_del(bb->b, &bb->src);
	bb->added = false;
}

/* With bl.lock held: the ring buffer watched by broker b (one more user). */
static struct bl_broker *broker_watch(struct mg_broker *b)
{
	struct bl_broker *bb;

	for (bb = bl.brokers; bb; bb = bb->next)
		if (bb->b == b)
			break;
	if (!bb) {
		bb = calloc(1, sizeof(*bb));
		if (!bb)
			return NULL;
		bb->b = b;
		bb->src.fd = ring_buffer__epoll_fd(bl.rb);
		bb->src.on_event = on_ringbuf;
		bb->next = bl.brokers;
		bl.brokers = bb;
		/* Runs before the router can go: router_destroy waits for
		 * deferred work. */
		mg_broker_defer(b, src_add_deferred, bb);
	}
	bb->users++;
	return bb;
}

/* With bl.lock held: one user less; the entry to free (unwatch first) when
 * it was the last. */
static struct bl_broker *broker_unwatch(struct bl_broker *bb)
{
	struct bl_broker **pp;

	if (!bb || --bb->users > 0)
		return NULL;
	for (pp = &bl.brokers; *pp; pp = &(*pp)->next) {
		if (*pp == bb) {
			*pp = bb->next;
			break;
		}
	}
	return bb;
}

/* With bl.lock held. */
static struct bl_router *router_of(struct mg_router *r, bool create)
{
	struct bl_router *br;

	for (br = bl.routers; br; br = br->next)
		if (br->r == r)
			return br;
	if (!create)
		return NULL;
	br = calloc(1, sizeof(*br));
	if (!br)
		return NULL;
	br->r = r;
	br->rkey = ++bl.next_rkey;
	br->bb = broker_watch(r->broker);
	if (!br->bb) {
		free(br);
		return NULL;
	}
	br->next = bl.routers;
	bl.routers = br;
	return br;
}

/* --- channels ---------------------------------------------------------- */

static uint64_t cookie_of(int fd)
{
	uint64_t c = 0;
	socklen_t len = sizeof(c);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len) < 0)
		return 0;
	return c;
}

static struct bl_chan *chan_by_fd(int fd)
{
	uint64_t cookie = cookie_of(fd);

	if (!cookie)
		return NULL;
	for (struct bl_chan *c = bl.buckets[cookie % NBUCKETS]; c; c = c->next)
		if (c->cookie_parent == cookie)
			return c;
	return NULL;
}

static void chan_note_id(struct bl_chan *c, uint32_t id)
{
	for (size_t i = 0; i < c->nids; i++)
		if (c->ids[i] == id)
			return;
	if (c->nids == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 8;
		uint32_t *p = realloc(c->ids, cap * sizeof(*p));

		if (!p)
			return;
		c->ids = p;
		c->cap = cap;
	}
	c->ids[c->nids++] = id;
}

static int attach_locked(int fd)
{
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &bl.prog_fd, sizeof(bl.prog_fd)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

/* The number of CPUs a per-CPU map holds a copy for, or -errno. */
static int ncpus(void)
{
	static int n;

	if (!n)
		n = libbpf_num_possible_cpus();
	return n;
}

/* With bl.lock held: every CPU's copy of chans[cookie] := e. 0 or -1 (errno). */
static int chan_write(__u64 cookie, const struct mgb_chan *e)
{
	int n = ncpus(), ret;
	struct mgb_chan *v;

	if (n <= 0) {
		errno = -n;
		return -1;
	}
	v = malloc((size_t)n * sizeof(*v));
	if (!v)
		return -1;
	for (int i = 0; i < n; i++)
		v[i] = *e;
	ret = bpf_map_update_elem(bl.chans_fd, &cookie, v, BPF_ANY);
	free(v);
	return ret;
}

static void counts_sum(struct mgb_counts *to, const struct mgb_counts *from)
{
	for (int i = 0; i < MGB_NCLASS; i++) {
		to->msgs[i] += from->msgs[i];
		to->bytes[i] += from->bytes[i];
	}
	for (int i = 0; i < MGB_NDROP; i++)
		to->drops[i] += from->drops[i];
}

int bpfload_chan_read(int fd, unsigned long long cookie, struct mgb_chan *ret)
{
	_Static_assert(sizeof(struct mgb_chan) % 8 == 0, "per-CPU values are 8-byte aligned");
	int n = ncpus();
	struct mgb_chan *v;
	__u64 key = cookie;

	if (n <= 0)
		return n ? n : -EINVAL;
	v = malloc((size_t)n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &key, v) < 0) {
		int e = -errno;

		free(v);
		return e;
	}
	*ret = v[0];
	for (int i = 1; i < n; i++) {
		counts_sum(&ret->total, &v[i].total);
		counts_sum(&ret->child, &v[i].child);
	}
	free(v);
	return 0;
}

static int hook_child_channel(struct mg_router *r, uint32_t child_id, int parent_fd,
			      int child_fd)
{
	struct mgb_chan up = { 0 }, down;
	struct mgb_route_key rk;
	uint32_t pids[64];
	struct bl_router *br;
	struct bl_chan *c;
	size_t np;
	int ret;

	pthread_mutex_lock(&bl.lock);
	if (bl.disabled || !load()) {
		pthread_mutex_unlock(&bl.lock);
		return -EOPNOTSUPP;
	}
	br = router_of(r, true);
	c = calloc(1, sizeof(*c));
	if (!br || !c) {
		free(c);
		ret = -ENOMEM;
		goto out;
	}
	c->chan = ++bl.next_chan;
	c->child_id = child_id;
	c->br = br;
	c->cookie_parent = cookie_of(parent_fd);
	c->cookie_child = child_fd >= 0 ? cookie_of(child_fd) : 0;
	if (!c->cookie_parent || (child_fd >= 0 && !c->cookie_child)) {
		free(c);
		ret = -errno;
		goto out;
	}
	up.chan = c->chan;
	up.rkey = br->rkey;
	up.child_id = child_id;
	up.auth[up.nauth++] = r->id;
	np = mg_parent_ids(pids, 64);
	for (size_t i = 0; i < np && i < 64 && up.nauth < MGB_MAX_AUTH; i++)
		up.auth[up.nauth++] = pids[i];
	if (child_fd >= 0)
		up.flags = MGB_CHAN_BOTH_ENDS;
	down = up;
	up.dir = MGB_UP;
	down.dir = MGB_DOWN;
	rk.rkey = br->rkey;
	rk.id = child_id;
	/*
	 * Keyed by the receiving socket: the filter's skb belongs to it when
	 * sk_filter() runs (checked on 6.18: a record the parent sends is
	 * seen with the child's end's cookie).
	 */
	if (chan_write(c->cookie_parent, &up) < 0 ||
	    (c->cookie_child && chan_write(c->cookie_child, &down) < 0) ||
	    bpf_map_update_elem(bl.routes_fd, &rk, &c->chan, BPF_ANY) < 0) {
		ret = -errno;
		bpf_map_delete_elem(bl.chans_fd, &c->cookie_child);
		bpf_map_delete_elem(bl.chans_fd, &c->cookie_parent);
		free(c);
		goto out;
	}
	chan_note_id(c, child_id);
	c->next = bl.buckets[c->cookie_parent % NBUCKETS];
	bl.buckets[c->cookie_parent % NBUCKETS] = c;
	/* Both ends, before the child exists: it can never see them bare. */
	ret = child_fd >= 0 ? attach_locked(child_fd) : 0;
	if (ret == 0)
		ret = attach_locked(parent_fd);
out:
	pthread_mutex_unlock(&bl.lock);
	if (ret < 0)
		LOG_ERROR("eBPF: no filter on the channel to context %u: %s", child_id,
			  strerror(-ret));
	return ret;
}

static void hook_route(struct mg_router *r, uint32_t id, int fd, bool add)
{
	struct bl_chan *c;
	struct mgb_route_key rk = { .id = id };
	uint32_t cur;

	pthread_mutex_lock(&bl.lock);
	if (bl.state != BL_ON || bl.pid != getpid() || !(c = chan_by_fd(fd)))
		goto out;
	rk.rkey = c->br->rkey;
	chan_note_id(c, id);
	if (add)
		bpf_map_update_elem(bl.routes_fd, &rk, &c->chan, BPF_ANY);
	else if (bpf_map_lookup_elem(bl.routes_fd, &rk, &cur) == 0 && cur == c->chan)
		bpf_map_delete_elem(bl.routes_fd, &rk);
out:
	pthread_mutex_unlock(&bl.lock);
}

static void hook_route_add(struct mg_router *r, uint32_t id, int fd)
{
	hook_route(r, id, fd, true);
}

static void hook_route_del(struct mg_router *r, uint32_t id, int fd)
{
	hook_route(r, id, fd, false);
}

static void counts_add(struct mg_stats_counts *to, const struct mgb_counts *from)
{
	for (int i = 0; i < MG_STATS_NCLASS; i++) {
		to->msgs[i] += from->msgs[i];
		to->bytes[i] += from->bytes[i];
	}
	for (int i = 0; i < MG_STATS_NDROP; i++)
		to->drops[i] += from->drops[i];
}

/*
 * With bl.lock held: the chans entry of the end that receives records
 * going dir (the parent's end for up, the child's for down), or false
 * when there is none (a connect-back channel has no filter at the child).
 */
static bool chan_entry(const struct bl_chan *c, int dir, struct mgb_chan *ret)
{
	__u64 cookie = dir == MGB_UP ? c->cookie_parent : c->cookie_child;

	return cookie && bpfload_chan_read(bl.chans_fd, cookie, ret) == 0;
}

/* With bl.lock held: the channel's totals join chan 0 (map) and its router's. */
static void fold_closed(struct bl_chan *c)
{
	struct mgb_count_key z = { .chan = MGB_CHAN_CLOSED, .ctx = MGB_CTX_TOTAL };
	struct mgb_counts tot;
	struct mgb_chan e;

	for (int dir = 0; dir < MGB_NDIR; dir++) {
		const struct mgb_counts *v = &e.total;

		if (!chan_entry(c, dir, &e))
			continue;
		counts_add(&c->br->closed[dir], v);
		z.dir = dir;
		memset(&tot, 0, sizeof(tot));
		bpf_map_lookup_elem(bl.counts_fd, &z, &tot);
		counts_sum(&tot, v);
		bpf_map_update_elem(bl.counts_fd, &z, &tot, BPF_ANY);
	}
}

/* With bl.lock held: every trace of c leaves the maps; c is freed. */
static void chan_drop(struct bl_chan *c)
{
	struct mgb_count_key k = { .chan = c->chan };
	struct mgb_route_key rk = { .rkey = c->br->rkey };
	uint32_t cur;

	fold_closed(c);
	if (c->cookie_child)
		bpf_map_delete_elem(bl.chans_fd, &c->cookie_child);
	bpf_map_delete_elem(bl.chans_fd, &c->cookie_parent);
	for (size_t i = 0; i <= c->nids; i++) {
		k.ctx = i < c->nids ? c->ids[i] : MGB_CTX_TOTAL;
		for (k.dir = 0; k.dir < MGB_NDIR; k.dir++)
			bpf_map_delete_elem(bl.counts_fd, &k);
		if (i == c->nids)
			break;
		rk.id = c->ids[i];
		if (bpf_map_lookup_elem(bl.routes_fd, &rk, &cur) == 0 && cur == c->chan)
			bpf_map_delete_elem(bl.routes_fd, &rk);
	}
	free(c->ids);
	free(c);
}

static void hook_channel_closed(struct mg_router *r, int parent_fd)
{
	struct bl_chan **pp, *c;
	uint64_t cookie;

	pthread_mutex_lock(&bl.lock);
	if (bl.state != BL_ON || bl.pid != getpid() || !(cookie = cookie_of(parent_fd)))
		goto out;
	for (pp = &bl.buckets[cookie % NBUCKETS]; (c = *pp); pp = &c->next) {
		if (c->cookie_parent == cookie) {
			*pp = c->next;
			chan_drop(c);
			break;
		}
	}
out:
	pthread_mutex_unlock(&bl.lock);
}

static void hook_router_free(struct mg_router *r)
{
	struct bl_router **pp, *br = NULL;
	struct bl_broker *bb = NULL;

	pthread_mutex_lock(&bl.dispatch);
	pthread_mutex_lock(&bl.lock);
	for (pp = &bl.routers; *pp; pp = &(*pp)->next) {
		if ((*pp)->r == r) {
			br = *pp;
			*pp = br->next;
			break;
		}
	}
	/* Channels of r still open (it never heard them close): forget them. */
	for (size_t i = 0; br && i < NBUCKETS; i++) {
		struct bl_chan **cp = &bl.buckets[i], *c;

		while ((c = *cp)) {
			if (c->br == br) {
				*cp = c->next;
				chan_drop(c);
			} else {
				cp = &c->next;
			}
		}
	}
	if (br)
		bb = broker_unwatch(br->bb);
	pthread_mutex_unlock(&bl.lock);
	pthread_mutex_unlock(&bl.dispatch);
	if (!br)
		return;
	if (bb) {
		if (bb->added && !broker_stopped(bb->b))
			broker_call(bb->b, src_del_deferred, bb, false);
		free(bb);
	}
	free(br);
	/* The last router is gone: programs, maps and pins go too (loaded
	 * again, in a few ms, with the next channel). */
	pthread_mutex_lock(&bl.lock);
	if (!bl.routers && bl.state == BL_ON && bl.pid == getpid())
		unload();
	pthread_mutex_unlock(&bl.lock);
}

/* --- stats ------------------------------------------------------------- */

static struct mg_stats_row *row_add(struct mg_router_stats *st, size_t *cap)
{
	if (st->nrows == *cap) {
		size_t n = *cap ? *cap * 2 : 16;
		struct mg_stats_row *p = realloc(st->rows, n * sizeof(*p));

		if (!p)
			return NULL;
		st->rows = p;
		*cap = n;
	}
	memset(&st->rows[st->nrows], 0, sizeof(st->rows[0]));
	return &st->rows[st->nrows++];
}

static struct mg_stats_row *row_find(struct mg_router_stats *st, uint32_t chan, uint32_t ctx)
{
	for (size_t i = 0; i < st->nrows; i++)
		if (st->rows[i].channel == chan && st->rows[i].context_id == ctx)
			return &st->rows[i];
	return NULL;
}

/* Counts of ctx through c going dir into st's row for them (made if new). */
static int row_put(struct mg_router_stats *st, size_t *cap, const struct bl_chan *c,
		   uint32_t ctx, int dir, const struct mgb_counts *v)
{
	struct mg_stats_row *row = row_find(st, c->chan, ctx);

	if (!row) {
		row = row_add(st, cap);
		if (!row)
			return -ENOMEM;
		row->channel = c->chan;
		row->child_id = c->child_id;
		row->context_id = ctx;
	}
	memcpy(&row->dir[dir], v, sizeof(*v));
	return 0;
}

/* c's row of totals (or of its child's counts) into st, both directions. */
static int chan_rows(struct mg_router_stats *st, size_t *cap, const struct bl_chan *c,
		     bool child)
{
	struct mgb_chan e;
	int err = 0;

	for (int dir = 0; dir < MGB_NDIR && !err; dir++)
		if (chan_entry(c, dir, &e))
			err = row_put(st, cap, c, child ? c->child_id : MGB_CTX_TOTAL, dir,
				      child ? &e.child : &e.total);
	return err;
}

static int hook_stats(struct mg_router *r, struct mg_router_stats **ret)
{
	struct mg_router_stats *st;
	struct mgb_count_key k, next, *prev = NULL;
	struct mgb_counts v;
	struct mg_stats_row *row;
	struct bl_router *br;
	size_t cap = 0;
	int err = 0;

	pthread_mutex_lock(&bl.lock);
	if (bl.state != BL_ON || bl.pid != getpid() || !(br = router_of(r, false))) {
		pthread_mutex_unlock(&bl.lock);
		return -ENOENT;
	}
	st = calloc(1, sizeof(*st));
	if (!st || !(row = row_add(st, &cap))) {
		err = -ENOMEM;
		goto out;
	}
	st->kernel = true;
	snprintf(st->pin_path, sizeof(st->pin_path), "%s", bl.pin);
	row->channel = MGB_CHAN_CLOSED;
	row->context_id = MG_STATS_CHANNEL;
	row->dir[0] = br->closed[0];
	row->dir[1] = br->closed[1];
	/* Channel rows first, then each channel's child (chans entries)... */
	for (int pass = 0; pass < 2 && !err; pass++)
		for (size_t i = 0; i < NBUCKETS && !err; i++)
			for (struct bl_chan *c = bl.buckets[i]; c && !err; c = c->next)
				if (c->br == br)
					err = chan_rows(st, &cap, c, pass == 1);
	/* ...then the other contexts behind them (counts). */
	while (!err && bpf_map_get_next_key(bl.counts_fd, prev, &next) == 0) {
		struct bl_chan *c;

		k = next;
		prev = &k;
		if (k.chan == MGB_CHAN_CLOSED || k.dir >= MGB_NDIR || k.ctx == MGB_CTX_TOTAL)
			continue;
		c = chan_by_number(k.chan);
		if (c && c->br == br && bpf_map_lookup_elem(bl.counts_fd, &k, &v) == 0)
			err = row_put(st, &cap, c, k.ctx, k.dir, &v);
	}
out:
	pthread_mutex_unlock(&bl.lock);
	if (err) {
		mg_router_stats_free(st);
		return err;
	}
	*ret = st;
	return 0;
}

/* --- public (inside the library) --------------------------------------- */

static const struct router_hooks hooks = {
	.child_channel = hook_child_channel,
	.channel_closed = hook_channel_closed,
	.route_add = hook_route_add,
	.route_del = hook_route_del,
	.stats = hook_stats,
	.router_free = hook_router_free,
};

void bpfload_register(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, atfork_once);
	hooks_register(&hooks);
}

void bpfload_set_enabled(bool on)
{
	pthread_mutex_lock(&bl.lock);
	bl.disabled = !on;
	if (on && bl.state == BL_OFF && !strncmp(bl.off_reason, "turned off", 10))
		bl.state = BL_UNTRIED;
	pthread_mutex_unlock(&bl.lock);
}

bool bpfload_active(void)
{
	bool on;

	pthread_mutex_lock(&bl.lock);
	on = bl.state == BL_ON && bl.pid == getpid() && !bl.disabled;
	pthread_mutex_unlock(&bl.lock);
	return on;
}

const char *bpfload_pin_path(void)
{
	return bl.pin;
}

const char *bpfload_off_reason(void)
{
	return bl.off_reason;
}
