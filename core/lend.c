// SPDX-License-Identifier: MIT
/*
 * lend.c — a thread that waits for a message reads it itself.
 *
 * A round trip through a dedicated I/O thread costs two wake-ups per
 * process where a plain ping-pong costs one: the broker thread wakes for
 * the input, then wakes the thread that waits for it. So a thread about to
 * sleep on a latch for a message from context N borrows the stream that
 * leads to N (stream_lend: the broker thread stops watching its input,
 * and goes on with every other fd and the stream's output), polls that fd
 * and its own eventfd, and handles the input in the broker's role
 * (broker_enter, so one thread at a time does what the broker thread
 * does), exactly as the broker thread would have. The message then goes
 * from the socket to the waiting thread with no hand-off. Anything that
 * arrives by another way (another stream, a dead message when the
 * context is lost, the latch closed) is put in the latch by whoever
 * handled it, and latch_arm_wake makes that write our eventfd.
 *
 * One borrower per stream: a second thread waiting on the same stream
 * sleeps on its latch as before, and the borrower hands its messages over.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "core/broker.h"
#include "core/latch.h"
#include "core/router.h"
#include "core/spin.h"
#include "core/stream.h"

static pthread_key_t evfd_key;
static pthread_once_t evfd_once = PTHREAD_ONCE_INIT;
static __thread int tls_evfd = -1;
static __thread struct spin tls_spin;

static void evfd_destroy(void *p)
{
	close((int)(intptr_t)p - 1);
}

/* A forked child's only thread must not share its parent's eventfd. */
static void evfd_atfork_child(void)
{
	if (tls_evfd >= 0) {
		close(tls_evfd);
		tls_evfd = -1;
		pthread_setspecific(evfd_key, NULL);
	}
}

static void evfd_init(void)
{
	pthread_key_create(&evfd_key, evfd_destroy);
	pthread_atfork(NULL, NULL, evfd_atfork_child);
}

/* This thread's eventfd, made on first use and closed when it exits. */
static int thread_evfd(void)
{
	if (tls_evfd < 0) {
		pthread_once(&evfd_once, evfd_init);
		tls_evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (tls_evfd >= 0)
			pthread_setspecific(evfd_key, (void *)(intptr_t)(tls_evfd + 1));
	}
	return tls_evfd;
}

/* spin_wait's check: has either fd something? */
static bool poll_ready(void *arg)
{
	return poll(arg, 2, 0) > 0;
}

/*
 * One turn: borrow the stream, spin (spin.h) or sleep until it or our
 * eventfd has something (at most ms milliseconds, -1: no limit), handle
 * the input, give the stream back. Returns 0, or -EAGAIN when the stream
 * cannot be borrowed (the caller sleeps on the latch instead).
 */
static int lent_turn(struct mg_router *r, uint32_t dst_id, struct mg_latch *l, int efd, int ms)
{
	struct mg_broker *b = r->broker;
	struct pollfd pfd[2];
	struct stream *s;
	bool armed;
	uint64_t v;

	if (!broker_enter(b))
		return -EAGAIN;
	s = router_next_hop(r, dst_id);
	if (!s || s->closed || s->lent || stream_lend(s, true) < 0) {
		broker_leave(b);
		return -EAGAIN;
	}
	pfd[0] = (struct pollfd){ .fd = s->src.fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = efd, .events = POLLIN };
	broker_leave(b);

	armed = latch_arm_wake(l, efd);
	if (armed) {
		if (!ms || !spin_wait_max(&tls_spin, poll_ready, pfd,
					  ms > 0 ? (uint64_t)ms * 1000000u : UINT64_MAX)) {
			while (poll(pfd, 2, ms) < 0 && errno == EINTR)
				;
		}
		latch_arm_wake(l, -1);
		if (pfd[1].revents && read(efd, &v, sizeof(v)) < 0)
			v = 0;
	} else {
		pfd[0].revents = 0;
	}

	if (!broker_enter(b))
		return 0;	/* stopped: every stream is closed */
	/* Closed (and perhaps freed) meanwhile: not ours to touch. */
	if (router_next_hop(r, dst_id) == s && !s->closed) {
		if (pfd[0].revents)
			stream_input(s, (uint32_t)pfd[0].revents);
		if (!s->closed)
			stream_lend(s, false);
	}
	broker_leave(b);
	/* Not armed with nothing to take: another thread waits on l. */
	if (!armed && !latch_count(l) && !latch_closed(l))
		return -EAGAIN;
	return 0;
}

int router_wait_lent(struct mg_router *r, uint32_t dst_id, struct mg_latch *l, double *timeout)
{
	/* The clock only for a wait with a timeout: an agent's wait for its
	 * next call has none, and a clock read right after a context switch
	 * costs ~0.35 us here (see spin.c). */
	double start = *timeout >= 0 ? mono_now() : 0, left = *timeout;
	int efd, ret = 0;

	if (mg_broker_on_thread(r->broker) || (efd = thread_evfd()) < 0)
		return -EAGAIN;
	while (!latch_count(l) && !latch_closed(l)) {
		int ms = -1;

		if (*timeout >= 0) {
			left = *timeout - (mono_now() - start);
			if (left <= 0) {
				ret = -ETIMEDOUT;
				break;
			}
			/* Past INT_MAX ms (24 days): no limit, as poll() has. */
			ms = left < INT_MAX / 1000.0 ? (int)(left * 1000) + 1 : -1;
		}
		ret = lent_turn(r, dst_id, l, efd, ms);
		if (ret < 0)
			break;
	}
	if (*timeout >= 0) {
		left = *timeout - (mono_now() - start);
		*timeout = left > 0 ? left : 0;
	}
	return ret;
}
