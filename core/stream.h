/* SPDX-License-Identifier: MIT */
/*
 * stream.h — one channel to another context: an fd carrying records
 * (AF_UNIX SOCK_SEQPACKET: one record per packet). Broker thread only,
 * except stream_new. How the fd was made is the transport's business.
 */
#ifndef CORE_STREAM_H
#define CORE_STREAM_H

#include <pthread.h>

#include "core/broker.h"
#include "core/wire.h"

enum stream_role {
	STREAM_PARENT,		/* upstream: towards the master */
	STREAM_CHILD,		/* downstream: a child we started */
};

struct stream {
	struct broker_source src;
	struct mg_router *router;	/* borrowed: the router owns streams */
	enum stream_role role;
	uint32_t remote_id;
	char name[96];
	struct wire_rx rx;
	/* What rx holds as counted in the router's rx_held (child streams
	 * only: the reassembly budget, docs/limits.md). */
	size_t rx_charged;
	/* routes.c, master: ids allocated for contexts behind this child
	 * stream and not yet released (at most ROUTES_MAX_IDS). */
	uint32_t ids_held;
	bool ids_refused_logged;
	bool drop_logged;		/* a refused oversize message was logged */
	pthread_mutex_t wlock;		/* output queue and writes to fd */
	struct mg_message *out_head, *out_tail;
	size_t out_bytes;
	size_t out_held;		/* what the queue holds (STREAM_HELD) */
	bool closed;
	bool registered;
	bool lent;			/* input handled by a waiting thread */
	bool reply_warned;		/* a foreign reply was logged (router.c) */
	bool paused;			/* child not read: its backlog is full (wlock) */
	/*
	 * Child not read either: it sent to a stream whose backlog is full
	 * (waits_on; wlock). The broker reads it again once that stream has
	 * drained or closed (stream_wake_waiters). waits_on is compared,
	 * never followed: it may be gone.
	 */
	bool waiting;
	const struct stream *waits_on;
	bool has_waiters;		/* someone waits for our backlog (wlock) */
	/*
	 * A write failed, or a read was reset (the peer closed or shut
	 * down): why. The stream is closed by the broker once it has read
	 * what the peer sent before, its last words among it
	 * (stream_finish_failed). The reason is written once, under wlock,
	 * before the flag is set.
	 */
	bool io_failed;
	char io_failed_why[64];
	/* heartbeat.c: the peer showed life since the last look (input, or
	 * room it made for our output); looks in a row it had not; it has
	 * spoken at all (a child is pinged only after its greeting) */
	bool heard, spoke;
	unsigned silent;
	struct stream *next;		/* router's list */
	/*
	 * Byte stream (ssh stdio, pipes): the same records, read from a
	 * stream of bytes (header then payload, in any number of reads) and
	 * written with partial writes resumed. wfd may differ from src.fd
	 * (a pipe pair); then wsrc watches it for EPOLLOUT.
	 */
	bool bytes;
	int wfd;
	bool wsock;			/* wfd is a socket: send(MSG_NOSIGNAL) */
	struct broker_source wsrc;
	uint8_t *bin;			/* read buffer, WIRE_RECORD_MAX */
	size_t bin_len;
	struct wire_hdr whdr;		/* record being written */
	size_t wrec_off, wrec_len;	/* bytes of it written, its size (0: none) */
	/* Transport hook: called once when the stream closes. */
	void (*on_close)(struct stream *s, const char *reason, void *arg);
	void *on_close_arg;
};

/*
 * Lend the stream's input to a thread that waits for a message from it
 * (the agent's main thread between calls): the broker thread stops
 * watching it for input (it still flushes output), and the borrower polls
 * src.fd itself and, holding the broker's role (broker_enter), passes
 * what it saw to stream_input. lend=false gives it back. Either way under
 * the broker's role. Returns 0, -EPIPE once closed, or -errno.
 */
int stream_lend(struct stream *s, bool lend);
void stream_input(struct stream *s, uint32_t events);

/* Largest output backlog before the stream is closed as stuck. */
#define STREAM_OUT_MAX ((size_t)1 << 30)
/*
 * Backpressure: while what we queued for a child and it has not read
 * holds more than this (payloads and message structs: out_held), the
 * child is not read (nor lent), until that is down to a quarter of it.
 * A child that never reads cannot make us queue more than this in
 * answers to what it sends (docs/limits.md). A parent stream is always
 * read: every context reads its parent, so streams paused along a tree
 * cannot wait on each other. The same bound holds back a child whose
 * messages go to a stream over it (stream_hold).
 */
#define STREAM_PAUSE_BYTES ((size_t)4 << 20)

/* A stream on fd (taken: closed with the stream). NULL+errno. */
struct stream *stream_new(int fd, enum stream_role role, uint32_t remote_id,
			  const char *name, size_t max_message_size);
/*
 * A byte-stream channel reading rfd and writing wfd (both taken; may be
 * the same fd). NULL+errno.
 */
struct stream *stream_new_bytes(int rfd, int wfd, enum stream_role role, uint32_t remote_id,
				const char *name, size_t max_message_size);
int stream_start(struct mg_broker *b, struct stream *s);
/*
 * Queue msg (taken) for sending. Returns true when what s has queued is
 * then over STREAM_PAUSE_BYTES: the child the message came from is to be
 * held back (stream_hold) until s drains.
 */
bool stream_send(struct stream *s, struct mg_message *msg);
/*
 * Backpressure between streams: in, a child, sent to dst, whose backlog
 * is over STREAM_PAUSE_BYTES (stream_send said so). Stop reading in until
 * dst has drained to a quarter of that or closed (router_release_waiters).
 * Without it a child could queue up to STREAM_OUT_MAX here in a sibling
 * (or a slow parent link) that does not read (docs/limits.md).
 */
void stream_hold(struct stream *in, struct stream *dst);
/* Read s again if it is held back for dst (NULL: for any stream). */
void stream_release(struct stream *s, const struct stream *dst);
/*
 * Any thread, with the router's life lock read-held (so s cannot be
 * freed; router.h): write a one-record msg straight to the socket when
 * nothing is queued ahead of it.
 * Returns 0 (msg taken) or -EAGAIN (msg untouched: queue it instead).
 */
int stream_send_direct(struct stream *s, struct mg_message *msg);
/* Close: unregister, fail what depends on it (via the router), free later. */
void stream_close(struct stream *s, const char *reason);
void stream_free(struct stream *s);

#endif
