// SPDX-License-Identifier: MIT
/*
 * broker.c — mg_broker: one epoll I/O thread per broker, woken by an
 * eventfd for deferred work, with a small timer list and graceful shutdown.
 * Owns the epoll set and the thread; the fds themselves belong to their
 * sources (streams), which register and unregister here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "core/broker.h"
#include "core/log.h"
#include "core/profile.h"
#include "core/spin.h"

struct defer {
	void (*fn)(void *arg);
	void *arg;
	struct defer *next;
};

struct mg_broker {
	int refs;
	int epfd;
	int evfd;
	pthread_t thread;
	bool thread_started;
	bool joined;
	pthread_mutex_t lock;		/* defer queue, clients, state */
	pthread_mutex_t inline_lock;	/* recursive: deferred work after stop */
	/*
	 * The broker's role: held by whoever handles events, deferred work
	 * and timers. That is the broker thread, except while another thread
	 * handles the input of a stream lent to it (broker_enter).
	 */
	pthread_mutex_t dispatch;
	double wait_until;		/* the thread's next timeout (monotonic) */
	pthread_cond_t stopped_cond;
	struct defer *dq_head, *dq_tail;
	bool wake_pending;
	bool shutdown_req;
	bool shutting_down;		/* broker thread's view */
	bool stopped;
	double shutdown_timeout;
	double shutdown_deadline;
	struct broker_timer *timers;	/* sorted by when */
	struct broker_client *clients;
	struct spin spin;		/* the thread's recent waits (spin.h) */
	void (*exit_hook)(void *arg);
	void *exit_arg;
};

static __thread struct mg_broker *tls_broker;

/* Events one turn of the thread takes at most, and one broker_help(): a
 * helper handles a few, then looks at its latch again. */
#define BROKER_EVENTS 64
#define BROKER_HELP_EVENTS 16

/*
 * Run the handlers of n ready events, in the broker's role; with
 * only_helpable, those of helpable sources only (the rest stay ready, the
 * registrations being level-triggered, for the broker thread). The
 * eventfd's events (no source) only wake the thread. Returns how many ran.
 */
static int handle_events(const struct epoll_event *evs, int n, bool only_helpable)
{
	int done = 0;

	for (int i = 0; i < n; i++) {
		struct broker_source *src = evs[i].data.ptr;

		if (src && (src->helpable || !only_helpable)) {
			src->on_event(src, evs[i].events);
			done++;
		}
	}
	return done;
}

double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool mg_broker_on_thread(const struct mg_broker *b)
{
	return b && tls_broker == b;
}

int broker_add(struct mg_broker *b, struct broker_source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	src->events = events;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, src->fd, &ev) < 0)
		return -errno;
	return 0;
}

int broker_mod(struct mg_broker *b, struct broker_source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (src->events == events)
		return 0;
	src->events = events;
	if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, src->fd, &ev) < 0)
		return -errno;
	return 0;
}

void broker_del(struct mg_broker *b, struct broker_source *src)
{
	epoll_ctl(b->epfd, EPOLL_CTL_DEL, src->fd, NULL);
}

void broker_timer_arm(struct mg_broker *b, struct broker_timer *t, double delay,
		      void (*fn)(void *arg), void *arg)
{
	struct broker_timer **pp;

	if (t->armed)
		broker_timer_cancel(b, t);
	t->when = mono_now() + delay;
	t->fn = fn;
	t->arg = arg;
	t->armed = true;
	for (pp = &b->timers; *pp && (*pp)->when <= t->when; pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
}

void broker_timer_cancel(struct mg_broker *b, struct broker_timer *t)
{
	struct broker_timer **pp;

	if (!t->armed)
		return;
	for (pp = &b->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->armed = false;
}

static void run_timers(struct mg_broker *b)
{
	double now;

	if (!b->timers)
		return;		/* and no clock read (see spin.c) */
	now = mono_now();
	while (b->timers && b->timers->when <= now) {
		struct broker_timer *t = b->timers;

		b->timers = t->next;
		t->armed = false;
		t->fn(t->arg);
	}
}

void broker_client_add(struct mg_broker *b, struct broker_client *c)
{
	pthread_mutex_lock(&b->lock);
	c->next = b->clients;
	b->clients = c;
	pthread_mutex_unlock(&b->lock);
}

void broker_client_del(struct mg_broker *b, struct broker_client *c)
{
	struct broker_client **pp;

	pthread_mutex_lock(&b->lock);
	for (pp = &b->clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&b->lock);
}

bool broker_stopped(struct mg_broker *b)
{
	bool s;

	pthread_mutex_lock(&b->lock);
	s = b->stopped;
	pthread_mutex_unlock(&b->lock);
	return s;
}

bool broker_shutting_down(struct mg_broker *b)
{
	return b->shutting_down;
}

void broker_set_exit_hook(struct mg_broker *b, void (*fn)(void *arg), void *arg)
{
	b->exit_hook = fn;
	b->exit_arg = arg;
}

static void wake(struct mg_broker *b)
{
	uint64_t one = 1;
	ssize_t n;

	do
		n = write(b->evfd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
}

static int defer(struct mg_broker *b, void (*fn)(void *arg), void *arg, bool now)
{
	struct defer *d;

	if (!b || !fn)
		return -EINVAL;
	if (now && tls_broker == b) {
		fn(arg);
		return 0;
	}
	d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->fn = fn;
	d->arg = arg;
	d->next = NULL;
	pthread_mutex_lock(&b->lock);
	if (b->stopped) {
		/*
		 * The thread is gone: run fn here, one caller at a time, so
		 * the resources it frees are still freed.
		 */
		pthread_mutex_unlock(&b->lock);
		free(d);
		pthread_mutex_lock(&b->inline_lock);
		fn(arg);
		pthread_mutex_unlock(&b->inline_lock);
		return 0;
	}
	if (b->dq_tail)
		b->dq_tail->next = d;
	else
		b->dq_head = d;
	b->dq_tail = d;
	if (!b->wake_pending) {
		b->wake_pending = true;
		wake(b);
	}
	pthread_mutex_unlock(&b->lock);
	return 0;
}

void broker_forked_child(void)
{
	tls_broker = NULL;
}

bool broker_enter(struct mg_broker *b)
{
	pthread_mutex_lock(&b->dispatch);
	if (b->stopped) {
		pthread_mutex_unlock(&b->dispatch);
		return false;
	}
	tls_broker = b;
	return true;
}

void broker_leave(struct mg_broker *b)
{
	/*
	 * The thread's wait is rounded up to whole milliseconds: a timer
	 * armed meanwhile within that of when it will look can wait too.
	 */
	bool wake_thread = b->timers && b->timers->when + 0.001 < b->wait_until;

	tls_broker = NULL;
	pthread_mutex_unlock(&b->dispatch);
	/* A timer armed meanwhile, earlier than the thread will look. */
	if (wake_thread) {
		pthread_mutex_lock(&b->lock);
		if (!b->wake_pending) {
			b->wake_pending = true;
			wake(b);
		}
		pthread_mutex_unlock(&b->lock);
	}
}

int broker_help(struct mg_broker *b)
{
	struct epoll_event evs[BROKER_HELP_EVENTS];
	int done;

	if (tls_broker == b || pthread_mutex_trylock(&b->dispatch))
		return 0;
	if (b->stopped) {
		pthread_mutex_unlock(&b->dispatch);
		return 0;
	}
	tls_broker = b;
	/* Child output, pidfds, the eventfd: left to the thread. */
	done = handle_events(evs, epoll_wait(b->epfd, evs, BROKER_HELP_EVENTS, 0), true);
	broker_leave(b);
	return done;
}

int mg_broker_defer(struct mg_broker *b, void (*fn)(void *arg), void *arg)
{
	return defer(b, fn, arg, true);
}

int broker_defer_later(struct mg_broker *b, void (*fn)(void *arg), void *arg)
{
	return defer(b, fn, arg, false);
}

struct broker_call_req {
	void (*fn)(void *arg);
	void *arg;
	struct mg_latch *done;
};

static void broker_call_run(void *arg)
{
	struct broker_call_req *req = arg;

	req->fn(req->arg);
	mg_latch_put(req->done, req);
}

int broker_call(struct mg_broker *b, void (*fn)(void *arg), void *arg, bool later)
{
	struct broker_call_req req = { .fn = fn, .arg = arg };
	void *item;
	int ret;

	if (!b || !fn)
		return -EINVAL;
	if (tls_broker == b && !later) {
		fn(arg);
		return 0;
	}
	if (tls_broker == b)
		return -EDEADLK;	/* a barrier cannot wait on itself */
	/* Run it here in the broker's role: no hand-off to its thread. */
	if (!later && broker_enter(b)) {
		fn(arg);
		broker_leave(b);
		return 0;
	}
	req.done = mg_latch_new();
	if (!req.done)
		return -ENOMEM;
	ret = defer(b, broker_call_run, &req, !later);
	if (ret == 0)
		mg_latch_get(req.done, MG_FOREVER, &item);
	mg_latch_free(req.done);
	return ret;
}

static void run_deferred(struct mg_broker *b)
{
	struct defer *d, *next;
	uint64_t v;

	pthread_mutex_lock(&b->lock);
	d = b->dq_head;
	b->dq_head = b->dq_tail = NULL;
	if (b->wake_pending) {
		b->wake_pending = false;
		if (read(b->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			LOG_ERROR("broker: eventfd read: %s", strerror(errno));
	}
	pthread_mutex_unlock(&b->lock);
	for (; d; d = next) {
		next = d->next;
		d->fn(d->arg);
		free(d);
	}
}

static bool clients_idle(struct mg_broker *b)
{
	bool idle = true;

	pthread_mutex_lock(&b->lock);
	for (struct broker_client *c = b->clients; c; c = c->next)
		if (c->idle && !c->idle(c->arg))
			idle = false;
	pthread_mutex_unlock(&b->lock);
	return idle;
}

static void for_each_client(struct mg_broker *b, size_t off)
{
	struct broker_client **list = NULL;
	size_t n = 0, cap = 0;

	/* Callbacks may add or remove clients: call them outside the lock. */
	pthread_mutex_lock(&b->lock);
	for (struct broker_client *c = b->clients; c; c = c->next) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct broker_client **p = realloc(list, ncap * sizeof(*p));

			if (!p)
				break;
			list = p;
			cap = ncap;
		}
		list[n++] = c;
	}
	pthread_mutex_unlock(&b->lock);
	for (size_t i = 0; i < n; i++) {
		void (*fn)(void *) = *(void (**)(void *))((char *)list[i] + off);

		if (fn)
			fn(list[i]->arg);
	}
	free(list);
}

static void broker_profile_start(void *arg)
{
	char name[32];

	snprintf(name, sizeof(name), "broker.%d", (int)syscall(SYS_gettid));
	profile_thread_start(name);
}

/* Start profiling this broker's thread now (after BOOT said so). */
void broker_profile(struct mg_broker *b)
{
	mg_broker_defer(b, broker_profile_start, b);
}

/*
 * The broker thread spins a tenth of the window (spin.h): what it waits
 * for when that pays (the next reply of a fan-out, the next record of a
 * relay) comes within microseconds, and a longer spin measurably slowed
 * what it does not wait for (mg_fork: 0.25 -> 0.5-0.7 ms a create + call
 * in 4 runs of 6, against none at a tenth, fan-outs unchanged).
 */
#define BROKER_SPIN_DIV 10

struct epoll_check {
	int epfd;
	struct epoll_event *evs;
	int n;
};

/* spin_wait's check: are there events? (kept for the loop) */
static bool epoll_ready(void *arg)
{
	struct epoll_check *c = arg;

	c->n = epoll_wait(c->epfd, c->evs, BROKER_EVENTS, 0);
	return c->n > 0;
}

static void *broker_main(void *arg)
{
	struct mg_broker *b = arg;
	struct epoll_event evs[BROKER_EVENTS];
	struct epoll_check ew;

	tls_broker = b;
	broker_profile_start(b);
	pthread_mutex_lock(&b->dispatch);
	for (;;) {
		int timeout = -1, n;

		if (b->timers) {
			double dt = b->timers->when - mono_now();

			timeout = dt <= 0 ? 0 : (int)(dt * 1000) + 1;
		}
		if (b->shutting_down) {
			double dt = b->shutdown_deadline - mono_now();
			int t = dt <= 0 ? 0 : (int)(dt * 1000) + 1;

			if (timeout < 0 || t < timeout)
				timeout = t;
		}
		b->wait_until = timeout < 0 ? 1e300 : mono_now() + timeout / 1000.0;
		pthread_mutex_unlock(&b->dispatch);
		ew = (struct epoll_check){ b->epfd, evs, 0 };
		if (timeout != 0 && spin_wait_for(&b->spin, epoll_ready, &ew, BROKER_SPIN_DIV)) {
			n = ew.n;
		} else {
			n = epoll_wait(b->epfd, evs, BROKER_EVENTS, timeout);
		}
		pthread_mutex_lock(&b->dispatch);
		if (n < 0 && errno != EINTR) {
			LOG_ERROR("broker: epoll_wait: %s", strerror(errno));
			break;
		}
		handle_events(evs, n, false);
		run_deferred(b);
		run_timers(b);

		pthread_mutex_lock(&b->lock);
		bool req = b->shutdown_req;
		pthread_mutex_unlock(&b->lock);
		if (req && !b->shutting_down) {
			b->shutting_down = true;
			b->shutdown_deadline = mono_now() + b->shutdown_timeout;
			for_each_client(b, offsetof(struct broker_client, on_shutdown));
		}
		if (b->shutting_down &&
		    (clients_idle(b) || mono_now() >= b->shutdown_deadline))
			break;
	}
	for_each_client(b, offsetof(struct broker_client, on_stop));
	run_deferred(b);
	pthread_mutex_lock(&b->lock);
	b->stopped = true;
	pthread_cond_broadcast(&b->stopped_cond);
	pthread_mutex_unlock(&b->lock);
	/* Work deferred after this point runs inline in mg_broker_defer. */
	run_deferred(b);
	pthread_mutex_unlock(&b->dispatch);
	tls_broker = NULL;
	profile_thread_stop();
	if (b->exit_hook)
		b->exit_hook(b->exit_arg);
	return NULL;
}

struct mg_broker *mg_broker_new(const struct mg_broker_opts *opts)
{
	struct mg_broker *b = calloc(1, sizeof(*b));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int ret;

	if (!b)
		return NULL;
	b->refs = 1;
	b->epfd = b->evfd = -1;
	b->shutdown_timeout = 5.0;
	if (opts && opts->sz >= offsetof(struct mg_broker_opts, shutdown_timeout) +
				sizeof(double) && opts->shutdown_timeout > 0)
		b->shutdown_timeout = opts->shutdown_timeout;
	pthread_mutexattr_t ma;

	spin_mutex_init(&b->lock);
	spin_mutex_init(&b->dispatch);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&b->inline_lock, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_cond_init(&b->stopped_cond, NULL);
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	b->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->epfd < 0 || b->evfd < 0 ||
	    epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->evfd, &ev) < 0)
		goto fail;
	ret = pthread_create(&b->thread, NULL, broker_main, b);
	if (ret) {
		errno = ret;
		goto fail;
	}
	b->thread_started = true;
	return b;
fail:
	ret = errno;
	if (b->epfd >= 0)
		close(b->epfd);
	if (b->evfd >= 0)
		close(b->evfd);
	free(b);
	errno = ret;
	return NULL;
}

struct mg_broker *mg_broker_ref(struct mg_broker *b)
{
	if (b)
		__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	return b;
}

void mg_broker_shutdown(struct mg_broker *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	if (!b->shutdown_req && !b->stopped) {
		b->shutdown_req = true;
		if (!b->wake_pending) {
			b->wake_pending = true;
			wake(b);
		}
	}
	pthread_mutex_unlock(&b->lock);
}

int mg_broker_join(struct mg_broker *b)
{
	if (!b)
		return -EINVAL;
	if (tls_broker == b)
		return -EDEADLK;
	pthread_mutex_lock(&b->lock);
	while (!b->stopped)
		pthread_cond_wait(&b->stopped_cond, &b->lock);
	if (!b->joined && b->thread_started) {
		b->joined = true;
		pthread_mutex_unlock(&b->lock);
		pthread_join(b->thread, NULL);
		return 0;
	}
	pthread_mutex_unlock(&b->lock);
	return 0;
}

bool mg_broker_keep_alive(struct mg_broker *b)
{
	bool alive = false;

	if (!b)
		return false;
	pthread_mutex_lock(&b->lock);
	for (struct broker_client *c = b->clients; c; c = c->next)
		if (c->keep_alive && c->keep_alive(c->arg))
			alive = true;
	pthread_mutex_unlock(&b->lock);
	return alive;
}

double mg_broker_shutdown_timeout(const struct mg_broker *b)
{
	return b ? b->shutdown_timeout : 0;
}

static void broker_destroy(struct mg_broker *b)
{
	close(b->epfd);
	close(b->evfd);
	pthread_cond_destroy(&b->stopped_cond);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->inline_lock);
	pthread_mutex_destroy(&b->dispatch);
	free(b);
}

static void *broker_reaper(void *arg)
{
	struct mg_broker *b = arg;

	mg_broker_join(b);
	broker_destroy(b);
	return NULL;
}

struct mg_broker *mg_broker_unref(struct mg_broker *b)
{
	pthread_t t;

	if (!b || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return NULL;
	mg_broker_shutdown(b);
	if (tls_broker == b) {
		/* Last reference dropped on the broker thread itself. */
		if (pthread_create(&t, NULL, broker_reaper, b) == 0)
			pthread_detach(t);
		return NULL;
	}
	mg_broker_join(b);
	broker_destroy(b);
	return NULL;
}
