// SPDX-License-Identifier: MIT
/*
 * stream.c — reading and writing records on one channel fd. Every record
 * is checked on its own (magic, version, flags, length); a violation closes
 * this stream only, with the reason logged, and the router fails whatever
 * depended on it. Runs on the broker thread.
 *
 * Memory a peer can make us hold (docs/limits.md): an unfinished message
 * grows with the records that arrived (core/wire.c), and what the child
 * streams of a router hold together is kept within the router's
 * reassembly budget by closing the stream that holds the most. A message
 * to a handle whose handler decodes it on the broker thread (log, audit,
 * routes: wire_handle_capped) is dropped record by record when it does
 * not fit in one, and the stream carries on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <mitogen/stats.h>

#include "core/hooks.h"
#include "core/log.h"
#include "core/message.h"
#include "core/router.h"
#include "core/spin.h"
#include "core/stream.h"
#include "core/value.h"

/* Records read per wake-up before yielding to other fds. */
#define STREAM_READ_BATCH 64

/* What a queued message holds: its payload, its struct and two glibc
 * chunk headers (a small reply's real cost is about twice its length). */
#define STREAM_HELD(m) ((m)->len + sizeof(struct mg_message) + 32)

static void stream_on_event(struct broker_source *src, uint32_t events);
static void stream_on_wevent(struct broker_source *src, uint32_t events);

struct stream *stream_new(int fd, enum stream_role role, uint32_t remote_id,
			  const char *name, size_t max_message_size)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (!s) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	s->src.fd = fd;
	s->wfd = fd;
	s->wsrc.fd = -1;
	s->src.on_event = stream_on_event;
	s->src.helpable = true;
	spin_mutex_init(&s->wlock);
	s->role = role;
	s->remote_id = remote_id;
	snprintf(s->name, sizeof(s->name), "%s", name ? name : "?");
	wire_rx_init(&s->rx, max_message_size);
	return s;
}

struct stream *stream_new_bytes(int rfd, int wfd, enum stream_role role, uint32_t remote_id,
				const char *name, size_t max_message_size)
{
	struct stream *s = stream_new(rfd, role, remote_id, name, max_message_size);
	struct stat st;

	if (!s) {
		if (wfd != rfd)
			close(wfd);
		return NULL;
	}
	s->bytes = true;
	s->wfd = wfd;
	fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
	fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);
	s->wsock = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
	if (wfd != rfd) {
		s->wsrc.fd = wfd;
		s->wsrc.on_event = stream_on_wevent;
	}
	s->bin = malloc(WIRE_RECORD_MAX);
	if (!s->bin) {
		stream_free(s);
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

int stream_start(struct mg_broker *b, struct stream *s)
{
	int ret = broker_add(b, &s->src, EPOLLIN);

	if (ret == 0 && s->wsrc.fd >= 0 && (ret = broker_add(b, &s->wsrc, 0)) < 0)
		broker_del(b, &s->src);
	if (ret == 0)
		s->registered = true;
	return ret;
}

/* Ask (or stop asking) to be told when the write side has room. Under
 * wlock. While the input is lent or paused, the broker watches only for
 * room. */
static void stream_want_out(struct stream *s, bool on)
{
	struct mg_broker *b = s->router->broker;
	uint32_t in = s->lent || s->paused || s->waiting ? 0 : EPOLLIN;

	if (s->wsrc.fd >= 0) {
		broker_mod(b, &s->wsrc, on ? EPOLLOUT : 0);
		broker_mod(b, &s->src, in);	/* nothing when unchanged */
	} else {
		broker_mod(b, &s->src, on ? in | EPOLLOUT : in);
	}
}

int stream_lend(struct stream *s, bool lend)
{
	int ret = -EPIPE;

	pthread_mutex_lock(&s->wlock);
	if (lend && (s->paused || s->waiting)) {
		ret = -EAGAIN;	/* not to be read now: the borrower waits instead */
	} else if (!s->closed && s->registered) {
		uint32_t out = s->wsrc.fd < 0 ? s->src.events & EPOLLOUT : 0;

		s->lent = lend;
		ret = broker_mod(s->router->broker, &s->src,
				 (lend || s->paused || s->waiting ? 0 : EPOLLIN) | out);
	}
	pthread_mutex_unlock(&s->wlock);
	return ret;
}

void stream_input(struct stream *s, uint32_t events)
{
	stream_on_event(&s->src, events & (EPOLLIN | EPOLLHUP | EPOLLERR));
}

void stream_free(struct stream *s)
{
	struct mg_message *m, *next;

	if (!s)
		return;
	for (m = s->out_head; m; m = next) {
		next = m->next;
		mg_message_free(m);
	}
	wire_rx_reset(&s->rx);	/* uncharged when it closed */
	free(s->bin);
	if (s->wfd >= 0 && s->wfd != s->src.fd)
		close(s->wfd);
	if (s->src.fd >= 0)
		close(s->src.fd);
	pthread_mutex_destroy(&s->wlock);
	free(s);
}

/* Count what s's unfinished message holds in its router's total. */
static void stream_rx_charge(struct stream *s)
{
	if (s->role != STREAM_CHILD)
		return;
	s->router->rx_held -= s->rx_charged;
	s->router->rx_held += s->rx.cap;
	s->rx_charged = s->rx.cap;
}

void stream_close(struct stream *s, const char *reason)
{
	struct mg_router *r = s->router;

	if (s->closed)
		return;
	s->closed = true;
	/* Nothing more will arrive: what was reassembled goes now, not when
	 * the stream is freed, and out of the router's total. */
	wire_rx_reset(&s->rx);
	stream_rx_charge(s);
	if (s->registered) {
		broker_del(r->broker, &s->src);
		if (s->wsrc.fd >= 0)
			broker_del(r->broker, &s->wsrc);
	}
	s->registered = false;
	/* Shut both directions now so the peer sees EOF at once. */
	shutdown(s->src.fd, SHUT_RDWR);
	if (s->wfd != s->src.fd)
		shutdown(s->wfd, SHUT_RDWR);
	if (s->on_close)
		s->on_close(s, reason, s->on_close_arg);
	router_stream_closed(r, s, reason);
}

/*
 * Byte stream: write (the rest of) one record of m. Returns the record's
 * payload bytes once all of it is written, -EAGAIN when the fd is full
 * (what was written is remembered), or -errno.
 */
static ssize_t write_record_bytes(struct stream *s, struct mg_message *m)
{
	size_t n = m->len - m->sent, off, pos, pre;
	struct iovec iov[3];
	int niov = 0;
	ssize_t w;

	if (n > WIRE_PAYLOAD_MAX)
		n = WIRE_PAYLOAD_MAX;
	if (!s->wrec_len) {
		uint8_t flags = (m->started ? 0 : WIRE_FLAG_FIRST) |
				(m->sent + n == m->len ? WIRE_FLAG_LAST : 0);

		if (!m->started)
			acct_tx_note(s, &m->meta);
		wire_hdr_pack(&s->whdr, &m->meta, flags, (uint32_t)n);
		s->wrec_len = sizeof(s->whdr) + n;
		s->wrec_off = 0;
	}
again:
	niov = 0;
	off = s->wrec_off;
	if (off < sizeof(s->whdr)) {
		iov[niov].iov_base = (uint8_t *)&s->whdr + off;
		iov[niov++].iov_len = sizeof(s->whdr) - off;
		off = 0;
	} else {
		off -= sizeof(s->whdr);
	}
	/* off: payload bytes of this record already written. */
	pos = m->sent + off;
	if (pos < m->prefix_len) {
		pre = m->prefix_len - pos;
		if (pre > n - off)
			pre = n - off;
		iov[niov].iov_base = m->prefix + pos;
		iov[niov++].iov_len = pre;
		pos += pre;
		off += pre;
	}
	if (off < n) {
		iov[niov].iov_base = m->data + (pos - m->prefix_len);
		iov[niov++].iov_len = n - off;
	}
	do {
		if (s->wsock) {
			struct msghdr mh = { .msg_iov = iov, .msg_iovlen = niov };

			w = sendmsg(s->wfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			w = writev(s->wfd, iov, niov);
		}
	} while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	s->wrec_off += (size_t)w;
	if (s->wrec_off < s->wrec_len)
		goto again;	/* partial: the next write says if it is full */
	acct_tx_record(s, &m->meta, m->started ? 0 : WIRE_FLAG_FIRST, s->wrec_len);
	s->wrec_len = 0;
	m->started = true;
	m->sent += n;
	return (ssize_t)n;
}

/* Write one record of m. Returns bytes of payload written or -errno. */
static ssize_t write_record(struct stream *s, struct mg_message *m)
{
	size_t n = m->len - m->sent, pre = 0;
	uint8_t flags = 0;
	struct wire_hdr hdr;
	struct iovec iov[3];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 1 };
	ssize_t w;

	if (s->bytes)
		return write_record_bytes(s, m);
	if (n > WIRE_PAYLOAD_MAX)
		n = WIRE_PAYLOAD_MAX;
	if (!m->started)
		flags |= WIRE_FLAG_FIRST;
	if (m->sent + n == m->len)
		flags |= WIRE_FLAG_LAST;
	if (!m->started)
		acct_tx_note(s, &m->meta);
	wire_hdr_pack(&hdr, &m->meta, flags, (uint32_t)n);
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	/* The payload is prefix (split messages) then data. */
	if (m->sent < m->prefix_len) {
		pre = m->prefix_len - m->sent;
		if (pre > n)
			pre = n;
		iov[mh.msg_iovlen].iov_base = m->prefix + m->sent;
		iov[mh.msg_iovlen++].iov_len = pre;
	}
	if (n > pre) {
		iov[mh.msg_iovlen].iov_base = m->data + (m->sent + pre - m->prefix_len);
		iov[mh.msg_iovlen++].iov_len = n - pre;
	}
	do
		w = sendmsg(s->src.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	m->started = true;
	m->sent += n;
	acct_tx_record(s, &m->meta, flags, (size_t)w);
	return (ssize_t)n;
}

/*
 * Under wlock: read a paused child again once its backlog is low. Returns
 * true when streams held back for that backlog (stream_hold) are to be
 * read again too: the caller does so once it has unlocked.
 */
static bool stream_unpause_locked(struct stream *s)
{
	if (s->out_held > STREAM_PAUSE_BYTES / 4)
		return false;
	if (s->paused)
		__atomic_store_n(&s->paused, false, __ATOMIC_RELAXED);
	if (!s->has_waiters)
		return false;
	s->has_waiters = false;
	return true;
}

/*
 * Write queued records until the socket is full. Called with wlock held;
 * returns 0, or -errno when the stream must be closed (after unlocking).
 * *release: streams held back for our backlog may be read again.
 */
static int stream_flush_locked(struct stream *s, bool *release)
{
	while (s->out_head) {
		struct mg_message *m = s->out_head;
		ssize_t n = write_record(s, m);

		if (n == -EAGAIN || n == -EWOULDBLOCK) {
			*release = stream_unpause_locked(s);
			stream_want_out(s, true);
			return 0;
		}
		if (n < 0)
			return (int)n;
		s->out_bytes -= (size_t)n;
		if (m->sent == m->len) {
			s->out_head = m->next;
			if (!s->out_head)
				s->out_tail = NULL;
			s->out_held -= STREAM_HELD(m);
			mg_message_free(m);
		}
	}
	*release = stream_unpause_locked(s);
	stream_want_out(s, false);
	return 0;
}

static bool stream_finish_failed(struct stream *s);

/* The peer is gone (op failed with err): remembered for
 * stream_finish_failed, the first reason kept. Under wlock. */
static void stream_mark_failed_locked(struct stream *s, const char *op, int err)
{
	if (s->io_failed)
		return;
	snprintf(s->io_failed_why, sizeof(s->io_failed_why), "%s: %s", op, strerror(err));
	__atomic_store_n(&s->io_failed, true, __ATOMIC_RELEASE);
	if (s->registered && !s->closed)
		stream_want_out(s, true);
}

/*
 * A read failed with ECONNRESET: the peer closed with our records unread
 * (a child that stopped reading, then died). The kernel reports that
 * before the records the peer sent us, which are still queued: read them
 * (its last words) before closing. Returns -1: s is closed.
 */
static int stream_reset(struct stream *s)
{
	bool again;

	pthread_mutex_lock(&s->wlock);
	again = s->io_failed;
	stream_mark_failed_locked(s, "read", ECONNRESET);
	pthread_mutex_unlock(&s->wlock);
	if (again)
		stream_close(s, s->io_failed_why);
	else
		stream_finish_failed(s);
	return -1;
}

/*
 * Write what is queued. A write that fails does not close s here: this
 * may be any thread, and what the peer sent before it went (a child's
 * last words: why it closed) may still wait to be read. s is marked, the
 * broker is woken (the fd is writable or hung up: either wakes it), and
 * stream_finish_failed closes s once that input is read.
 */
static void stream_flush(struct stream *s)
{
	bool release = false;
	int ret;

	pthread_mutex_lock(&s->wlock);
	ret = stream_flush_locked(s, &release);
	if (ret < 0)
		stream_mark_failed_locked(s, "write", -ret);
	pthread_mutex_unlock(&s->wlock);
	if (release)
		router_release_waiters(s->router, s);
}

static int stream_read_record(struct stream *s);
static int stream_read_bytes(struct stream *s);

/* Records a peer may still have queued when it went, read
 * before the stream closes: a bound, not a wait (reads never block). */
#define STREAM_LAST_READS 64

/* On the broker (or the input's borrower): s's peer is gone (a write
 * failed, or a read was reset). Read what it sent before (at most
 * STREAM_LAST_READS records), then close s with that error. Returns
 * true when it did. */
static bool stream_finish_failed(struct stream *s)
{
	if (!__atomic_load_n(&s->io_failed, __ATOMIC_ACQUIRE) || s->closed)
		return false;
	for (int i = 0; i < STREAM_LAST_READS && !s->closed; i++)
		if ((s->bytes ? stream_read_bytes(s) : stream_read_record(s)) <= 0)
			break;
	stream_close(s, s->io_failed_why);
	return true;
}

int stream_send_direct(struct stream *s, struct mg_message *msg)
{
	ssize_t n = -EAGAIN;

	if (msg->len > WIRE_PAYLOAD_MAX)
		return -EAGAIN;
	pthread_mutex_lock(&s->wlock);
	if (!s->closed && !s->out_head && !s->wrec_len) {
		msg->sent = 0;
		msg->started = false;
		n = write_record(s, msg);
		if (n < 0 && s->bytes && s->wrec_off) {
			/*
			 * A byte stream took part of the record: the rest must
			 * follow before anything else. Queue it as the head
			 * (its record state is the stream's) and let the broker
			 * finish it when there is room (every change of the
			 * stream's epoll events happens under wlock).
			 */
			msg->next = NULL;
			s->out_head = s->out_tail = msg;
			s->out_bytes += msg->len;
			s->out_held += STREAM_HELD(msg);
			stream_want_out(s, true);
			pthread_mutex_unlock(&s->wlock);
			return 0;
		}
		if (n < 0) {
			/* Unsent: the broker queues it and deals with errors. */
			msg->sent = 0;
			msg->started = false;
			s->wrec_len = 0;
		}
	}
	pthread_mutex_unlock(&s->wlock);
	if (n < 0)
		return -EAGAIN;
	mg_message_free(msg);
	return 0;
}

bool stream_send(struct stream *s, struct mg_message *msg)
{
	bool idle, too_big = false, full = false;

	msg->next = NULL;
	msg->sent = 0;
	msg->started = false;
	pthread_mutex_lock(&s->wlock);
	if (s->closed) {
		pthread_mutex_unlock(&s->wlock);
		mg_message_free(msg);
		return false;
	}
	if (s->out_bytes + msg->len > STREAM_OUT_MAX) {
		too_big = true;
	} else {
		idle = !s->out_head;
		if (s->out_tail)
			s->out_tail->next = msg;
		else
			s->out_head = msg;
		s->out_tail = msg;
		s->out_bytes += msg->len;
		s->out_held += STREAM_HELD(msg);
		if (s->out_held > STREAM_PAUSE_BYTES && s->role == STREAM_CHILD && !s->paused) {
			/* Stop reading it; an idle stream's flush does that. */
			__atomic_store_n(&s->paused, true, __ATOMIC_RELAXED);
			if (!idle && s->registered)
				stream_want_out(s, true);
		}
		/* The sender may be held back until this drains (stream_hold). */
		if (s->out_held > STREAM_PAUSE_BYTES)
			full = s->has_waiters = true;
	}
	pthread_mutex_unlock(&s->wlock);
	if (too_big) {
		LOG_ERROR("stream %s: output backlog over %zu bytes, closing", s->name,
			  (size_t)STREAM_OUT_MAX);
		mg_message_free(msg);
		stream_close(s, "output backlog too large");
		return false;
	}
	if (idle)
		stream_flush(s);
	return full;
}

void stream_hold(struct stream *in, struct stream *dst)
{
	bool full;

	pthread_mutex_lock(&in->wlock);
	if (in->closed) {
		pthread_mutex_unlock(&in->wlock);
		return;
	}
	__atomic_store_n(&in->waiting, true, __ATOMIC_RELAXED);
	in->waits_on = dst;
	if (in->registered)
		stream_want_out(in, in->out_head != NULL);
	pthread_mutex_unlock(&in->wlock);
	/*
	 * dst may have drained between its stream_send and here, and found
	 * no one waiting: look again, now that we are.
	 */
	pthread_mutex_lock(&dst->wlock);
	full = dst->has_waiters && !dst->closed;
	pthread_mutex_unlock(&dst->wlock);
	if (!full)
		stream_release(in, dst);
}

void stream_release(struct stream *s, const struct stream *dst)
{
	pthread_mutex_lock(&s->wlock);
	if (s->waiting && (!dst || s->waits_on == dst)) {
		__atomic_store_n(&s->waiting, false, __ATOMIC_RELAXED);
		s->waits_on = NULL;
		if (s->registered)
			stream_want_out(s, s->out_head != NULL);
	}
	pthread_mutex_unlock(&s->wlock);
}

/*
 * Close s after logging why: in a child the line is queued for the
 * parent, and s may be the channel that carries it. Send it while the
 * channel still can, and with it whatever s holds: another thread's
 * message appended between its send and its flush (stream_send) would
 * hold ours back behind it, and both would die at the shutdown.
 */
static void stream_close_last_words(struct stream *s, const char *reason)
{
	router_flush_queue(s->router);
	if (!s->closed)
		stream_flush(s);
	stream_close(s, reason);
}

static void stream_protocol_error(struct stream *s, const char *why)
{
	char reason[160];

	snprintf(reason, sizeof(reason), "protocol error: %s", why);
	LOG_ERROR("stream %s (context %u): %s; closing it", s->name, s->remote_id, reason);
	stream_close_last_words(s, reason);
}

static size_t stream_budget_of(const struct mg_router *r)
{
	return r->rx_budget ? r->rx_budget : MG_DEFAULT_REASSEMBLY_BUDGET;
}

/*
 * The router's child streams would hold more of their unfinished messages
 * than its reassembly budget once s holds `more` bytes more: close the
 * stream holding the most (s counted with `more`), and again, until they
 * fit. A peer that sends only part of a message costs us what it sent,
 * and together they cost at most the budget. Returns false when s itself
 * was closed.
 */
static bool stream_budget(struct stream *s, size_t more)
{
	struct mg_router *r = s->router;
	size_t budget = stream_budget_of(r);

	while (r->rx_held + more > budget) {
		struct stream *big = s, *t;
		size_t most = s->rx_charged + more, total = r->rx_held + more;
		char why[200];

		pthread_mutex_lock(&r->lock);
		for (t = r->streams; t; t = t->next) {
			if (!t->closed && t->rx_charged > most) {
				big = t;
				most = t->rx_charged;
			}
		}
		pthread_mutex_unlock(&r->lock);
		snprintf(why, sizeof(why), "holding %zu bytes of an unfinished message, "
			 "over the router's reassembly budget (%zu of %zu bytes)", most, total,
			 budget);
		LOG_ERROR("stream %s (context %u): %s; closing it (the stream holding the most)",
			  big->name, big->remote_id, why);
		stream_close_last_words(big, why);
		if (big == s)
			return false;
	}
	return true;
}

/*
 * Room for n more payload bytes of s's unfinished message, within the
 * router's budget. Returns 0, or -1 when s was closed.
 */
static int stream_rx_reserve(struct stream *s, size_t n)
{
	size_t cap = wire_rx_grow_size(&s->rx, n);
	int ret;

	if (cap > s->rx.cap && s->role == STREAM_CHILD &&
	    !stream_budget(s, cap - s->rx_charged))
		return -1;
	ret = wire_rx_reserve(&s->rx, n);
	if (ret < 0) {
		stream_protocol_error(s, ret == -EMSGSIZE ? "payload longer than its header says"
							  : "out of memory");
		return -1;
	}
	stream_rx_charge(s);
	return 0;
}

static const char *stream_handle_name(uint32_t handle)
{
	switch (handle) {
	case MG_HANDLE_FORWARD_LOG:
		return "FORWARD_LOG";
	case MG_HANDLE_ADD_ROUTE:
		return "ADD_ROUTE";
	case MG_HANDLE_DEL_ROUTE:
		return "DEL_ROUTE";
	case MG_HANDLE_ALLOCATE_ID:
		return "ALLOCATE_ID";
	case MG_HANDLE_SHUTDOWN:
		return "SHUTDOWN";
	case MG_HANDLE_DETACHING:
		return "DETACHING";
	case MG_HANDLE_AUDIT:
		return "AUDIT";
	default:
		return "?";
	}
}

/*
 * A record of a message refused as it arrives (rx.dropping: longer than
 * one record to a handle where one is the most). Counted as a drop; on its
 * first record, the refusal is logged (once a stream: each costs the peer
 * only two small records) and a request is answered with a CallError on
 * this stream. The stream stays open: a long log line is a bug, not a
 * broken channel, and dropping it costs nothing.
 */
static void stream_drop_record(struct stream *s, const struct wire_meta *meta, uint8_t flags)
{
	struct mg_message refused = { .meta = *meta };
	char why[96];

	acct_rx_drop(s, MG_DROP_MALFORMED);
	if (!(flags & WIRE_FLAG_FIRST))
		return;
	snprintf(why, sizeof(why), "a message to handle %u is at most one record", meta->handle);
	if (!s->drop_logged)
		LOG_ERROR("stream %s (context %u): refused a message to handle %u (%s) from %u "
			  "longer than one record (%u bytes): dropped as it arrives; the stream "
			  "stays open, further ones on it are counted only", s->name,
			  s->remote_id, meta->handle, stream_handle_name(meta->handle),
			  meta->src_id, (unsigned)WIRE_PAYLOAD_MAX);
	s->drop_logged = true;
	router_refuse(s->router, &refused, s, why);
}

static int stream_deliver(struct stream *s, const struct wire_meta *meta, uint8_t flags,
			  const uint8_t *payload, uint32_t length);

/* Read one record. Returns 1 when one was handled, 0 when drained, -1 closed. */
static int stream_read_record(struct stream *s)
{
	struct mg_router *r = s->router;
	struct wire_hdr hdr;
	struct wire_meta meta;
	struct iovec iov[2];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	const char *why = NULL;
	uint8_t flags, *payload;
	uint32_t length;
	ssize_t n;
	size_t room = WIRE_PAYLOAD_MAX;

	if (s->rx.in_msg && !s->rx.dropping) {
		if (s->rx.split) {
			/* Room for a record, but not past the body's declared end. */
			if (room > s->rx.body - s->rx.len)
				room = s->rx.body - s->rx.len;
			if (stream_rx_reserve(s, room) < 0)
				return -1;
		} else if (stream_rx_reserve(s, WIRE_PAYLOAD_MAX) < 0) {
			return -1;
		}
		payload = s->rx.buf + s->rx.len;
	} else {
		/* A message's first record, or one being dropped. */
		payload = r->scratch;
	}
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = payload;
	iov[1].iov_len = room;
	n = recvmsg(s->src.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		if (errno == ECONNRESET)
			return stream_reset(s);
		char reason[128];

		snprintf(reason, sizeof(reason), "read: %s", strerror(errno));
		stream_close(s, reason);
		return -1;
	}
	if (n == 0) {
		stream_close(s, "disconnected");
		return -1;
	}
	if (mh.msg_flags & MSG_TRUNC) {
		stream_protocol_error(s, room < WIRE_PAYLOAD_MAX ? "payload longer than its header says"
							      : "oversize record");
		return -1;
	}
	if ((size_t)n < sizeof(hdr)) {
		stream_protocol_error(s, "truncated record header");
		return -1;
	}
	if (wire_hdr_parse(&hdr, &meta, &flags, &length, &why) < 0) {
		stream_protocol_error(s, why);
		return -1;
	}
	if ((size_t)n - sizeof(hdr) != length) {
		stream_protocol_error(s, "truncated record");
		return -1;
	}
	return stream_deliver(s, &meta, flags, payload, length);
}

/*
 * A whole record arrived (its payload in place at rx.buf + rx.len inside a
 * message, else at payload): account for it, and route the message it
 * completes. Returns 1, or -1 when the stream closed.
 */
static int stream_deliver(struct stream *s, const struct wire_meta *meta, uint8_t flags,
			  const uint8_t *payload, uint32_t length)
{
	struct mg_router *r = s->router;
	const char *why = NULL;
	bool done;
	int ret;

	ret = wire_rx_record(&s->rx, meta, flags, payload, length, &done, &why);
	if (ret < 0) {
		stream_protocol_error(s, why);
		return -1;
	}
	if (s->rx.dropping) {
		stream_drop_record(s, meta, flags);
		return s->closed ? -1 : 1;
	}
	if (s->rx.in_msg && s->rx.cap != s->rx_charged) {
		/* A first record, stored: at most one record's worth. */
		stream_rx_charge(s);
		if (s->role == STREAM_CHILD && !stream_budget(s, 0))
			return -1;
	}
	if (done) {
		size_t len;
		uint8_t prefix[8], plen;
		uint8_t *buf = wire_rx_take(&s->rx, &len, prefix, &plen);
		struct mg_message *msg;

		if (s->rx_charged)
			stream_rx_charge(s);	/* the message has it now */

		if (plen ? value_split_check(prefix, plen, len) < 0 : value_check(buf, len) < 0) {
			free(buf);
			stream_protocol_error(s, "undecodable payload");
			return -1;
		}
		msg = plen ? message_new_split(meta, prefix, plen, buf, len)
			   : message_new_owned(meta, buf, len);

		if (!msg) {
			stream_protocol_error(s, "out of memory");
			return -1;
		}
		router_receive(r, s, msg);
		if (s->closed)
			return -1;
	}
	return 1;
}

/* Byte stream: one record complete at the start of bin; hand it over. */
static int stream_bytes_record(struct stream *s, const struct wire_meta *meta, uint8_t flags,
			       const uint8_t *payload, uint32_t length)
{
	if (s->rx.in_msg && !s->rx.dropping) {
		/* Continuations are expected in place, after what came before. */
		if (stream_rx_reserve(s, s->rx.split ? length : length ? length : 1) < 0)
			return -1;
		if (length)
			memcpy(s->rx.buf + s->rx.len, payload, length);
	}
	return stream_deliver(s, meta, flags, payload, length);
}

/* Byte stream: read what is there, hand over every complete record.
 * Returns 1 when bytes were read, 0 when none were there, -1 closed. */
static int stream_read_bytes(struct stream *s)
{
	const char *why = NULL;
	struct wire_meta meta;
	uint32_t length;
	uint8_t flags;
	size_t used = 0;
	ssize_t n;

	do
		n = read(s->src.fd, s->bin + s->bin_len, WIRE_RECORD_MAX - s->bin_len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		char reason[128];

		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == ECONNRESET)
			return stream_reset(s);
		snprintf(reason, sizeof(reason), "read: %s", strerror(errno));
		stream_close(s, reason);
		return -1;
	}
	if (n == 0) {
		stream_close(s, s->bin_len ? "disconnected inside a record" : "disconnected");
		return -1;
	}
	s->bin_len += (size_t)n;
	while (s->bin_len - used >= WIRE_HDR_SIZE) {
		const uint8_t *p = s->bin + used;

		if (wire_hdr_parse((const struct wire_hdr *)p, &meta, &flags, &length, &why) < 0) {
			stream_protocol_error(s, why);
			return -1;
		}
		if (s->bin_len - used < WIRE_HDR_SIZE + (size_t)length)
			break;
		if (stream_bytes_record(s, &meta, flags, p + WIRE_HDR_SIZE, length) < 0)
			return -1;
		used += WIRE_HDR_SIZE + length;
	}
	if (used) {
		memmove(s->bin, s->bin + used, s->bin_len - used);
		s->bin_len -= used;
	}
	return 1;
}

static void stream_on_wevent(struct broker_source *src, uint32_t events)
{
	struct stream *s = (struct stream *)((char *)src - offsetof(struct stream, wsrc));

	s->heard = true;	/* heartbeat: the peer reads (no clock read) */
	if (!s->closed)
		stream_flush(s);
	stream_finish_failed(s);
}

static bool stream_paused(struct stream *s)
{
	return __atomic_load_n(&s->paused, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&s->waiting, __ATOMIC_RELAXED);
}

/*
 * Input to read? Not while paused (an event from before the pause), but
 * a hang-up or error is read whatever: what is left, then the end.
 */
static bool stream_readable(struct stream *s, uint32_t events)
{
	if (events & (EPOLLHUP | EPOLLERR))
		return true;
	return (events & EPOLLIN) && !stream_paused(s);
}

static void stream_on_event(struct broker_source *src, uint32_t events)
{
	struct stream *s = (struct stream *)src;

	/* heartbeat.c: input, or the peer made room for our output. */
	s->heard = true;
	if (s->closed)
		return;
	if (events & EPOLLOUT)
		stream_flush(s);
	if (stream_finish_failed(s))
		return;
	if (s->bytes) {
		if (stream_readable(s, events))
			stream_read_bytes(s);
		return;
	}
	if (stream_readable(s, events)) {
		/*
		 * Keep reading while inside a multi-record message; otherwise one
		 * message per wake-up: epoll is level-triggered and will say if
		 * more is waiting, which saves a recvmsg() that would only return
		 * EAGAIN on the latency-bound path (one call, one reply).
		 */
		for (int i = 0; i < STREAM_READ_BATCH; i++) {
			int ret = stream_read_record(s);

			if (ret <= 0 || !s->rx.in_msg || stream_paused(s))
				return;
		}
	}
}
