// SPDX-License-Identifier: MIT
/*
 * select.c — mg_select: a latch fed by its members' notify callbacks.
 * A member (receiver or nested select) that gets a message puts itself on
 * the select's latch (and a nested select puts itself on its parent's);
 * get() takes a member off the latch and then takes its message.
 *
 * Lock order: a receiver's lock (held while it notifies) before a select's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/select.h>
#include "core/broker.h"
#include "core/latch.h"
#include "core/message.h"
#include "core/receiver.h"
#include "core/spin.h"

enum member_kind { MEMBER_RX, MEMBER_SELECT };

struct member {
	enum member_kind kind;
	void *ptr;
	struct mg_select *owner;
	bool removed;
	struct member *next;
};

struct mg_select {
	pthread_mutex_t lock;
	struct mg_latch *latch;		/* of struct member * */
	bool oneshot;
	struct member *members;		/* every member ever added; freed with us */
	size_t count;			/* members not removed */
	struct member *as_member;	/* our membership in a parent select */
};

static void select_put(struct mg_select *sel, struct member *m)
{
	struct member *up;

	if (mg_latch_put(sel->latch, m) < 0)
		return;
	pthread_mutex_lock(&sel->lock);
	up = sel->as_member;
	pthread_mutex_unlock(&sel->lock);
	if (up)
		select_put(up->owner, up);
}

static void rx_notify(struct mg_receiver *rx, void *userdata)
{
	struct member *m = userdata;

	select_put(m->owner, m);
}

struct mg_select *mg_select_new(bool oneshot)
{
	struct mg_select *sel = calloc(1, sizeof(*sel));

	if (!sel)
		return NULL;
	sel->latch = mg_latch_new();
	if (!sel->latch) {
		free(sel);
		return NULL;
	}
	spin_mutex_init(&sel->lock);
	sel->oneshot = oneshot;
	return sel;
}

static struct member *member_new(struct mg_select *sel, enum member_kind kind, void *ptr)
{
	struct member *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->kind = kind;
	m->ptr = ptr;
	m->owner = sel;
	pthread_mutex_lock(&sel->lock);
	m->next = sel->members;
	sel->members = m;
	sel->count++;
	pthread_mutex_unlock(&sel->lock);
	return m;
}

int mg_select_add(struct mg_select *sel, struct mg_receiver *rx)
{
	struct member *m;

	if (!sel || !rx)
		return -EINVAL;
	if (receiver_has_notify(rx))
		return -EBUSY;
	m = member_new(sel, MEMBER_RX, rx);
	if (!m)
		return -ENOMEM;
	/* Messages that arrived before we were listening: one put each, as
	 * rx_notify does for the later ones (a get takes one message per
	 * put; a single put for several left all but one unseen). A get
	 * that finds the receiver drained already waits again. */
	for (size_t queued = receiver_set_notify_count(rx, rx_notify, m); queued; queued--)
		select_put(sel, m);
	return 0;
}

static bool select_contains(struct mg_select *sel, struct mg_select *needle)
{
	bool found = false;

	if (sel == needle)
		return true;
	pthread_mutex_lock(&sel->lock);
	for (struct member *m = sel->members; m && !found; m = m->next)
		if (!m->removed && m->kind == MEMBER_SELECT)
			found = select_contains(m->ptr, needle);
	pthread_mutex_unlock(&sel->lock);
	return found;
}

int mg_select_add_select(struct mg_select *sel, struct mg_select *sub)
{
	struct member *m;
	size_t queued;
	bool busy;

	if (!sel || !sub || select_contains(sub, sel))
		return -EINVAL;
	pthread_mutex_lock(&sub->lock);
	busy = sub->as_member != NULL;
	pthread_mutex_unlock(&sub->lock);
	if (busy)
		return -EBUSY;
	m = member_new(sel, MEMBER_SELECT, sub);
	if (!m)
		return -ENOMEM;
	pthread_mutex_lock(&sub->lock);
	sub->as_member = m;
	queued = latch_count(sub->latch);
	pthread_mutex_unlock(&sub->lock);
	/* What sub holds already: one put each, as for a receiver. */
	for (; queued; queued--)
		select_put(sel, m);
	return 0;
}

static void member_detach(struct member *m)
{
	if (m->kind == MEMBER_RX) {
		mg_receiver_set_notify(m->ptr, NULL, NULL);
	} else {
		struct mg_select *sub = m->ptr;

		pthread_mutex_lock(&sub->lock);
		if (sub->as_member == m)
			sub->as_member = NULL;
		pthread_mutex_unlock(&sub->lock);
	}
}

static int select_remove(struct mg_select *sel, void *ptr)
{
	struct member *m;

	if (!sel || !ptr)
		return -EINVAL;
	pthread_mutex_lock(&sel->lock);
	for (m = sel->members; m; m = m->next)
		if (m->ptr == ptr && !m->removed)
			break;
	if (m) {
		m->removed = true;
		sel->count--;
	}
	pthread_mutex_unlock(&sel->lock);
	if (!m)
		return -ENOENT;
	member_detach(m);
	return 0;
}

int mg_select_remove(struct mg_select *sel, struct mg_receiver *rx)
{
	return select_remove(sel, rx);
}

int mg_select_remove_select(struct mg_select *sel, struct mg_select *sub)
{
	return select_remove(sel, sub);
}

size_t mg_select_count(struct mg_select *sel)
{
	size_t n;

	if (!sel)
		return 0;
	pthread_mutex_lock(&sel->lock);
	n = sel->count;
	pthread_mutex_unlock(&sel->lock);
	return n;
}

bool mg_select_empty(struct mg_select *sel)
{
	return !sel || mg_latch_empty(sel->latch);
}

void mg_select_close(struct mg_select *sel)
{
	if (sel)
		mg_latch_close(sel->latch);
}

void mg_select_free(struct mg_select *sel)
{
	struct member *m, *next, *up;

	if (!sel)
		return;
	pthread_mutex_lock(&sel->lock);
	up = sel->as_member;
	pthread_mutex_unlock(&sel->lock);
	if (up)
		select_remove(up->owner, sel);
	for (m = sel->members; m; m = m->next)
		if (!m->removed)
			member_detach(m);
	mg_latch_close(sel->latch);
	mg_latch_free(sel->latch);
	for (m = sel->members; m; m = next) {
		next = m->next;
		free(m);
	}
	pthread_mutex_destroy(&sel->lock);
	free(sel);
}

/* This thread's history of select waits (spin.h). */
static __thread struct spin tls_spin;

struct help_check {
	struct mg_latch *latch;
	struct mg_broker *broker;
};

/* spin_wait's check: is there something to take, once we have handled
 * what was ready for the broker? */
static bool helped_ready(void *arg)
{
	struct help_check *h = arg;

	if (!mg_latch_empty(h->latch))
		return true;
	return broker_help(h->broker) > 0 && !mg_latch_empty(h->latch);
}

/* The broker of the first receiver among our members, or NULL. */
static struct mg_broker *select_broker(struct mg_select *sel)
{
	struct mg_broker *b = NULL;

	pthread_mutex_lock(&sel->lock);
	for (struct member *m = sel->members; m && !b; m = m->next)
		if (m->kind == MEMBER_RX && !m->removed)
			b = receiver_broker(m->ptr);
	pthread_mutex_unlock(&sel->lock);
	return b;
}

/*
 * Wait for an item like mg_latch_get, but spin first by helping the broker
 * (broker_help): on a select over many contexts, the replies then reach
 * the latch on this thread while the broker thread sleeps or does the
 * rest, instead of each crossing from it (measured: fan-out to 100
 * children, +25 % calls/s). Its receivers' broker is the one helped; a
 * select over receivers of several routers helps the first one's.
 */
static int select_wait(struct mg_select *sel, double timeout, void **item)
{
	struct help_check h = { sel->latch, NULL };
	double start;

	if (timeout == 0 || !mg_latch_empty(sel->latch))
		return mg_latch_get(sel->latch, timeout, item);
	h.broker = select_broker(sel);
	if (!h.broker || mg_broker_on_thread(h.broker))
		return mg_latch_get(sel->latch, timeout, item);
	start = timeout > 0 ? mono_now() : 0;	/* no clock read when not needed */
	/* The spin must not outlast the timeout. */
	spin_wait_max(&tls_spin, helped_ready, &h,
		      timeout > 0 && timeout < 1 ? (uint64_t)(timeout * 1e9) : UINT64_MAX);
	if (timeout > 0) {
		/* What the spin took counts against the timeout (0: no wait). */
		timeout -= mono_now() - start;
		if (timeout <= 0)
			timeout = 1e-9;
	}
	return latch_get_nospin(sel->latch, timeout, item);
}

int mg_select_get(struct mg_select *sel, double timeout, struct mg_message **ret_msg,
		  struct mg_error *err)
{
	struct timespec deadline, now;

	if (!sel || !ret_msg)
		return -EINVAL;
	if (timeout > 0)
		latch_deadline(&deadline, timeout);
	for (;;) {
		struct mg_message *msg = NULL;
		struct member *m;
		double left = timeout;
		void *item;
		bool gone;
		int ret;

		if (mg_select_count(sel) == 0 && mg_latch_empty(sel->latch)) {
			error_set(err, MG_ERR_NONE, ENOENT, "select has no members");
			return -ENOENT;
		}
		if (timeout > 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			left = (double)(deadline.tv_sec - now.tv_sec) +
			       (double)(deadline.tv_nsec - now.tv_nsec) * 1e-9;
			if (left < 0)
				left = 0;
		}
		ret = select_wait(sel, left, &item);
		if (ret == -ETIMEDOUT) {
			error_set(err, MG_ERR_TIMEOUT, ETIMEDOUT,
				  "timed out after %.3f s waiting on a select", timeout);
			return ret;
		}
		if (ret < 0) {
			error_set(err, MG_ERR_LATCH, EPIPE, "select closed");
			return -EPIPE;
		}
		m = item;
		/* A put left for a member removed since (a oneshot one that
		 * was returned, or mg_select_remove): its receiver is no longer
		 * ours to read, and may be freed. */
		pthread_mutex_lock(&sel->lock);
		gone = m->removed;
		pthread_mutex_unlock(&sel->lock);
		if (gone)
			continue;
		if (m->kind == MEMBER_RX)
			ret = receiver_take(m->ptr, &msg);
		else
			ret = mg_select_get(m->ptr, 0, &msg, NULL);
		if (ret < 0)
			continue;	/* drained meanwhile: wait again */
		if (sel->oneshot)
			select_remove(sel, m->ptr);
		*ret_msg = msg;
		return 0;
	}
}

int mg_select_all(struct mg_receiver *const *rxs, size_t n, double timeout,
		  struct mg_value **ret_values, size_t *ret_order, struct mg_error *err)
{
	struct mg_select *sel;
	size_t got = 0;
	int ret = 0;

	if ((!rxs || !ret_values) && n)
		return -EINVAL;
	sel = mg_select_new(true);
	if (!sel)
		return -ENOMEM;
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = mg_select_add(sel, rxs[i]);
	while (ret == 0 && got < n) {
		struct mg_message *msg;
		struct mg_value *v;
		size_t idx = 0;

		ret = mg_select_get(sel, timeout, &msg, err);
		if (ret < 0)
			break;
		while (idx < n && rxs[idx] != mg_message_receiver(msg))
			idx++;
		ret = message_take_value(msg, &v, err);
		mg_message_free(msg);
		if (ret < 0)
			break;
		ret_values[got] = v;
		if (ret_order)
			ret_order[got] = idx;
		got++;
	}
	mg_select_free(sel);
	if (ret < 0) {
		while (got)
			mg_value_free(ret_values[--got]);
		return ret;
	}
	return 0;
}
