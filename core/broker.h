/* SPDX-License-Identifier: MIT */
/*
 * broker.h — internal interface of the I/O thread: fd sources, timers,
 * shutdown participants. Everything here except broker_wake-style entry
 * points must be called on the broker thread.
 */
#ifndef CORE_BROKER_H
#define CORE_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <mitogen/router.h>

struct broker_source {
	int fd;
	uint32_t events;
	void (*on_event)(struct broker_source *src, uint32_t events);
	/* on_event may also run on a thread that helps (broker_help). */
	bool helpable;
};

struct broker_timer {
	double when;			/* monotonic seconds */
	void (*fn)(void *arg);
	void *arg;
	struct broker_timer *next;
	bool armed;
};

/*
 * Something that owns streams on this broker (a router). on_shutdown starts
 * a graceful close; idle says whether it is done; on_stop force-closes what
 * is left when the broker stops; keep_alive answers mg_broker_keep_alive.
 */
struct broker_client {
	void (*on_shutdown)(void *arg);
	bool (*idle)(void *arg);
	void (*on_stop)(void *arg);
	bool (*keep_alive)(void *arg);
	void *arg;
	struct broker_client *next;
};

double mono_now(void);
/*
 * Run fn(arg) in the broker's role and wait for it to return: inline on
 * the broker thread, and on any other thread inline too, holding the role
 * (broker_enter), so it may run before work deferred earlier. With later,
 * it runs on the broker thread only after the work already queued (a
 * barrier). Returns 0, or -ENOMEM/-ESHUTDOWN/-EINVAL
 * when it could not be queued (fn did not run).
 */
int broker_call(struct mg_broker *b, void (*fn)(void *arg), void *arg, bool later);
/* Start profiling the broker thread (profile.c), e.g. once BOOT says so. */
void broker_profile(struct mg_broker *b);
/* Like mg_broker_defer, but on the broker thread too it runs fn only after
 * the current batch of events (so an object closed in this batch can be
 * freed safely). */
int broker_defer_later(struct mg_broker *b, void (*fn)(void *arg), void *arg);

/*
 * Take the broker's role on this thread (leader/follower): until
 * broker_leave, this thread may do what only the broker thread does, one
 * thread at a time; mg_broker_on_thread() says yes meanwhile. Used to
 * handle the input of a stream lent to a waiting thread (stream_lend), so
 * the message it waits for needs no hand-off between threads. Returns
 * false, without the role, once the broker thread has stopped.
 * Must not be held while waiting for anything the broker thread does.
 */
bool broker_enter(struct mg_broker *b);
void broker_leave(struct mg_broker *b);
/*
 * For a thread that waits on a select and spins (spin.h) before sleeping:
 * when nobody holds the broker's role, take it for a moment and handle
 * the events ready now on helpable sources (stream sockets) as the broker
 * thread would; anything else stays for the broker thread. The replies a
 * select waits for then reach its latch on the waiting thread, with no
 * hand-off from the broker thread (and one thread less busy per round).
 * Returns how many events it handled: 0 when none were ready, the role
 * was taken, the broker has stopped, or this thread holds the role.
 */
int broker_help(struct mg_broker *b);
/* In the child of a fork() made holding the role: we are not its broker. */
void broker_forked_child(void);

int broker_add(struct mg_broker *b, struct broker_source *src, uint32_t events);
int broker_mod(struct mg_broker *b, struct broker_source *src, uint32_t events);
void broker_del(struct mg_broker *b, struct broker_source *src);
void broker_timer_arm(struct mg_broker *b, struct broker_timer *t, double delay,
		      void (*fn)(void *arg), void *arg);
void broker_timer_cancel(struct mg_broker *b, struct broker_timer *t);
/* Any thread. */
void broker_client_add(struct mg_broker *b, struct broker_client *c);
void broker_client_del(struct mg_broker *b, struct broker_client *c);
bool broker_stopped(struct mg_broker *b);
bool broker_shutting_down(struct mg_broker *b);
/* Run at the very end of the broker thread (agent: exit the process). */
void broker_set_exit_hook(struct mg_broker *b, void (*fn)(void *arg), void *arg);

#endif
