// SPDX-License-Identifier: MIT
/*
 * stream.c — reading and writing records on one channel fd. Every record
 * is checked on its own (magic, version, flags, length); a violation closes
 * this stream only, with the reason logged, and the router fails whatever
 * depended on it. Runs on the broker thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/hooks.h"
#include "core/log.h"
#include "core/message.h"
#include "core/router.h"
#include "core/stream.h"
#include "core/value.h"

/* Records read per wake-up before yielding to other fds. */
#define STREAM_READ_BATCH 64

static void stream_on_event(struct broker_source *src, uint32_t events);

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
	s->src.on_event = stream_on_event;
	pthread_mutex_init(&s->wlock, NULL);
	s->role = role;
	s->remote_id = remote_id;
	snprintf(s->name, sizeof(s->name), "%s", name ? name : "?");
	wire_rx_init(&s->rx, max_message_size);
	return s;
}

int stream_start(struct mg_broker *b, struct stream *s)
{
	int ret = broker_add(b, &s->src, EPOLLIN);

	if (ret == 0)
		s->registered = true;
	return ret;
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
	wire_rx_reset(&s->rx);
	if (s->src.fd >= 0)
		close(s->src.fd);
	pthread_mutex_destroy(&s->wlock);
	free(s);
}

void stream_close(struct stream *s, const char *reason)
{
	struct mg_router *r = s->router;

	if (s->closed)
		return;
	s->closed = true;
	if (s->registered)
		broker_del(r->broker, &s->src);
	s->registered = false;
	/* Shut both directions now so the peer sees EOF at once. */
	shutdown(s->src.fd, SHUT_RDWR);
	if (s->on_close)
		s->on_close(s, reason, s->on_close_arg);
	router_stream_closed(r, s, reason);
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

	if (n > WIRE_PAYLOAD_MAX)
		n = WIRE_PAYLOAD_MAX;
	if (!m->started)
		flags |= WIRE_FLAG_FIRST;
	if (m->sent + n == m->len)
		flags |= WIRE_FLAG_LAST;
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
 * Write queued records until the socket is full. Called with wlock held;
 * returns 0, or -errno when the stream must be closed (after unlocking).
 */
static int stream_flush_locked(struct stream *s)
{
	struct mg_router *r = s->router;

	while (s->out_head) {
		struct mg_message *m = s->out_head;
		ssize_t n = write_record(s, m);

		if (n == -EAGAIN || n == -EWOULDBLOCK) {
			broker_mod(r->broker, &s->src, EPOLLIN | EPOLLOUT);
			return 0;
		}
		if (n < 0)
			return (int)n;
		s->out_bytes -= (size_t)n;
		if (m->sent == m->len) {
			s->out_head = m->next;
			if (!s->out_head)
				s->out_tail = NULL;
			mg_message_free(m);
		}
	}
	broker_mod(r->broker, &s->src, EPOLLIN);
	return 0;
}

static void stream_flush(struct stream *s)
{
	char why[128];
	int ret;

	pthread_mutex_lock(&s->wlock);
	ret = stream_flush_locked(s);
	pthread_mutex_unlock(&s->wlock);
	if (ret < 0) {
		snprintf(why, sizeof(why), "write: %s", strerror(-ret));
		stream_close(s, why);
	}
}

int stream_send_direct(struct stream *s, struct mg_message *msg)
{
	ssize_t n = -EAGAIN;

	if (msg->len > WIRE_PAYLOAD_MAX)
		return -EAGAIN;
	pthread_mutex_lock(&s->wlock);
	if (!s->closed && !s->out_head) {
		msg->sent = 0;
		msg->started = false;
		n = write_record(s, msg);
		if (n < 0) {
			/* Unsent: the broker queues it and deals with errors. */
			msg->sent = 0;
			msg->started = false;
		}
	}
	pthread_mutex_unlock(&s->wlock);
	if (n < 0)
		return -EAGAIN;
	mg_message_free(msg);
	return 0;
}

void stream_send(struct stream *s, struct mg_message *msg)
{
	bool idle, too_big = false;

	msg->next = NULL;
	msg->sent = 0;
	msg->started = false;
	pthread_mutex_lock(&s->wlock);
	if (s->closed) {
		pthread_mutex_unlock(&s->wlock);
		mg_message_free(msg);
		return;
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
	}
	pthread_mutex_unlock(&s->wlock);
	if (too_big) {
		LOG_ERROR("stream %s: output backlog over %zu bytes, closing", s->name,
			  (size_t)STREAM_OUT_MAX);
		mg_message_free(msg);
		stream_close(s, "output backlog too large");
		return;
	}
	if (idle)
		stream_flush(s);
}

static void stream_protocol_error(struct stream *s, const char *why)
{
	char reason[160];

	snprintf(reason, sizeof(reason), "protocol error: %s", why);
	LOG_ERROR("stream %s (context %u): %s; closing it", s->name, s->remote_id, reason);
	/* In a child the line above is queued for the parent: send it while
	 * the channel can still carry it. */
	router_flush_queue(s->router);
	stream_close(s, reason);
}

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
	bool done;
	ssize_t n;
	int ret;

	size_t room = WIRE_PAYLOAD_MAX;

	if (s->rx.in_msg) {
		if (s->rx.split) {
			/* Exactly sized from the header: never grow (no copy). */
			room = s->rx.cap - 1 - s->rx.len;
			if (room > WIRE_PAYLOAD_MAX)
				room = WIRE_PAYLOAD_MAX;
		} else if (wire_rx_reserve(&s->rx, WIRE_PAYLOAD_MAX) < 0) {
			stream_protocol_error(s, "out of memory");
			return -1;
		}
		payload = s->rx.buf + s->rx.len;
	} else {
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
	ret = wire_rx_record(&s->rx, &meta, flags, payload, length, &done, &why);
	if (ret < 0) {
		stream_protocol_error(s, why);
		return -1;
	}
	if (done) {
		size_t len;
		uint8_t prefix[8], plen;
		uint8_t *buf = wire_rx_take(&s->rx, &len, prefix, &plen);
		struct mg_message *msg;

		if (plen ? value_split_check(prefix, plen, len) < 0 : value_check(buf, len) < 0) {
			free(buf);
			stream_protocol_error(s, "undecodable payload");
			return -1;
		}
		msg = plen ? message_new_split(&meta, prefix, plen, buf, len)
			   : message_new_owned(&meta, buf, len);

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

static void stream_on_event(struct broker_source *src, uint32_t events)
{
	struct stream *s = (struct stream *)src;

	if (s->closed)
		return;
	if (events & EPOLLOUT) {
		stream_flush(s);
		if (s->closed)
			return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		/*
		 * Keep reading while inside a multi-record message; otherwise one
		 * message per wake-up: epoll is level-triggered and will say if
		 * more is waiting, which saves a recvmsg() that would only return
		 * EAGAIN on the latency-bound path (one call, one reply).
		 */
		for (int i = 0; i < STREAM_READ_BATCH; i++) {
			int ret = stream_read_record(s);

			if (ret <= 0 || !s->rx.in_msg)
				return;
		}
	}
}
