// SPDX-License-Identifier: MIT
/*
 * admission.c — how many ssh handshakes this process has in flight at
 * once, and what to do when a server drops one before authentication.
 *
 * An sshd counts connections that have not yet authenticated; beyond
 * MaxStartups' first number (OpenSSH's default 10:30:100: 10) it drops new
 * ones at random, and beyond the third all of them. A fan-out of 100 to
 * one sshd, or through one bastion, loses most of its starts that way. So:
 *  - per destination (host and port as written, what sshd sees as one
 *    server): at most ADMIT_PER_HOST handshakes in flight, below
 *    MaxStartups' default start; a drop there halves that destination's
 *    window (once per window: drops from starts admitted before the cut
 *    do not cut it again), each authenticated start widens it by one again
 *    up to the cap;
 *  - per process: at most ADMIT_PER_PROCESS in all. A process is the
 *    master, or a bastion's agent running via= starts for it (each
 *    bastion admits its own), so this is also the per-bastion bound;
 *  - a slot is held from before ssh starts until the first stage says
 *    MGSTART (authenticated: sshd no longer counts it), not during the
 *    image transfer;
 *  - a start that failed before authentication with what a dropped
 *    handshake looks like from the client (admission_dropped) is tried
 *    again after a jittered, doubling wait, at most ADMIT_TRIES times in
 *    all and never past the connect deadline. A refused login, a bad host
 *    key, a refused TCP connection are not drops: never tried again.
 * MITOGEN_SSH_ADMISSION="PER_HOST:PER_PROCESS:TRIES" replaces the three
 * numbers for this process (0: no bound; TRIES 1: no retry), for
 * measurements and tests. docs/scale.md says why these defaults.
 *
 * Owns: the table of destinations and its lock. Knows nothing of ssh but
 * the words of its drop messages.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

#include "core/broker.h"
#include "core/log.h"
#include "core/message.h"
#include "transports/admission.h"

#define ADMIT_PER_HOST 8
#define ADMIT_PER_PROCESS 64
#define ADMIT_TRIES 8
#define ADMIT_BACKOFF_FIRST 0.25	/* seconds, before jitter */
#define ADMIT_BACKOFF_MAX 4.0
#define ADMIT_KEYS_MAX 4096		/* destinations remembered at once */

struct admit_key {
	struct admit_key *next;
	unsigned inflight;
	unsigned waiters;		/* waiting for a slot: keep the key */
	unsigned window;		/* current bound, 1..per_host */
	unsigned gen;			/* bumped when the window is cut */
	char name[];
};

static pthread_mutex_t admit_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t admit_cond = PTHREAD_COND_INITIALIZER;
static struct admit_key *admit_keys;
static unsigned admit_nkeys, admit_total;
static bool admit_configured;
static unsigned admit_per_host = ADMIT_PER_HOST, admit_per_process = ADMIT_PER_PROCESS;
static unsigned admit_tries = ADMIT_TRIES;

/* The numbers, from MITOGEN_SSH_ADMISSION once (under admit_lock). */
static void admit_configure(void)
{
	const char *env = getenv("MITOGEN_SSH_ADMISSION");
	unsigned h, p, t;

	if (admit_configured)
		return;
	admit_configured = true;
	if (env && sscanf(env, "%u:%u:%u", &h, &p, &t) == 3 && t >= 1 && t <= 100) {
		admit_per_host = h;
		admit_per_process = p;
		admit_tries = t;
	}
}

unsigned admission_tries(void)
{
	unsigned t;

	pthread_mutex_lock(&admit_lock);
	admit_configure();
	t = admit_tries;
	pthread_mutex_unlock(&admit_lock);
	return t;
}

static struct admit_key *admit_find(const char *name)
{
	struct admit_key *k;
	size_t n;

	for (k = admit_keys; k; k = k->next)
		if (!strcmp(k->name, name))
			return k;
	/* Forget idle destinations rather than grow without bound. */
	if (admit_nkeys >= ADMIT_KEYS_MAX) {
		for (struct admit_key **pp = &admit_keys; *pp;) {
			struct admit_key *d = *pp;

			if (d->inflight || d->waiters) {
				pp = &d->next;
				continue;
			}
			*pp = d->next;
			free(d);
			admit_nkeys--;
		}
	}
	n = strlen(name);
	k = calloc(1, sizeof(*k) + n + 1);
	if (!k)
		return NULL;
	memcpy(k->name, name, n + 1);
	k->window = admit_per_host;
	k->next = admit_keys;
	admit_keys = k;
	admit_nkeys++;
	return k;
}

static bool admit_free_slot(const struct admit_key *k)
{
	return (!admit_per_process || admit_total < admit_per_process) &&
	       (!admit_per_host || k->inflight < k->window);
}

int admission_enter(struct admission *a, const char *host, int port)
{
	struct admit_key *k;
	char name[300];

	memset(a, 0, sizeof(*a));
	snprintf(name, sizeof(name), "%.280s:%d", host ? host : "", port);
	pthread_mutex_lock(&admit_lock);
	admit_configure();
	k = admit_find(name);
	if (!k) {
		pthread_mutex_unlock(&admit_lock);
		return -ENOMEM;
	}
	k->waiters++;
	while (!admit_free_slot(k))
		pthread_cond_wait(&admit_cond, &admit_lock);
	k->waiters--;
	k->inflight++;
	admit_total++;
	a->key = k;
	a->gen = k->gen;
	a->held = true;
	a->t0 = mono_now();
	pthread_mutex_unlock(&admit_lock);
	return 0;
}

/* Give the slot back (under admit_lock). */
static void admit_release(struct admission *a)
{
	struct admit_key *k = a->key;

	if (!a->held)
		return;
	a->held = false;
	k->inflight--;
	admit_total--;
	pthread_cond_broadcast(&admit_cond);
}

void admission_authenticated(void *arg)
{
	struct admission *a = arg;
	struct admit_key *k = a->key;

	pthread_mutex_lock(&admit_lock);
	if (a->held) {
		a->authenticated = true;
		if (admit_per_host && k->window < admit_per_host)
			k->window++;
		admit_release(a);
	}
	pthread_mutex_unlock(&admit_lock);
}

void admission_leave(struct admission *a, bool dropped)
{
	struct admit_key *k = a->key;

	if (!k)
		return;
	pthread_mutex_lock(&admit_lock);
	if (a->held && dropped && a->gen == k->gen && k->window > 1) {
		/* the server had more than it admits: halve, once per window */
		k->window /= 2;
		k->gen++;
	}
	admit_release(a);
	pthread_mutex_unlock(&admit_lock);
	a->key = NULL;
}

/*
 * What ssh prints when the server closed or reset the connection before
 * the key exchange finished (sshd's MaxStartups drop, its listen queue,
 * a server not yet up), lowercase: OpenSSH 8.x-9.x wording.
 */
static const char *const admit_drop_words[] = {
	"kex_exchange_identification",
	"ssh_exchange_identification",
	"connection closed by",
	"connection reset by",
	"connection reset",
	NULL,
};

bool admission_dropped(const char *message)
{
	char low[1024];
	size_t i;

	if (!message)
		return false;
	for (i = 0; message[i] && i < sizeof(low) - 1; i++)
		low[i] = (char)tolower((unsigned char)message[i]);
	low[i] = '\0';
	for (const char *const *w = admit_drop_words; *w; w++)
		if (strstr(low, *w))
			return true;
	return false;
}

double admission_backoff(unsigned attempt)
{
	double b = ADMIT_BACKOFF_FIRST;
	uint32_t r = 0;

	for (unsigned i = 1; i < attempt && b < ADMIT_BACKOFF_MAX; i++)
		b *= 2;
	if (b > ADMIT_BACKOFF_MAX)
		b = ADMIT_BACKOFF_MAX;
	/* jitter: starts dropped together must not come back together */
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)(mono_now() * 1e9);
	return b * (0.5 + (double)r / 4294967296.0);
}

void admission_sleep(double seconds)
{
	struct timespec ts;

	if (seconds <= 0)
		return;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct mg_context *admission_start(struct mg_router *r, struct transport_req *req,
				   const char *host, int port, const struct mg_local_opts *lo,
				   uint32_t id, const struct mg_value *sandbox,
				   struct mg_error *err)
{
	double timeout = lo && lo->connect_timeout > 0 ? lo->connect_timeout : 30.0;
	unsigned tries = admission_tries(), attempt;
	struct mg_context *ctx = NULL;
	struct mg_error e = MG_ERROR_INIT;
	double deadline = 0;
	int saved = EIO;

	for (attempt = 1;; attempt++) {
		struct mg_local_opts l2 = { .sz = sizeof(l2) };
		struct admission a;
		bool dropped;
		double wait;

		if (admission_enter(&a, host, port) < 0) {
			error_set(&e, MG_ERR_STREAM, ENOMEM, "%s: out of memory", req->default_name);
			saved = ENOMEM;
			break;
		}
		/* Waiting for a slot is not reaching the host: the connect
		 * timeout counts from the first admission. */
		if (attempt == 1)
			deadline = a.t0 + timeout;
		if (lo)
			memcpy(&l2, lo, lo->sz < sizeof(l2) ? lo->sz : sizeof(l2));
		l2.sz = sizeof(l2);
		l2.connect_timeout = deadline - mono_now();
		if (l2.connect_timeout < 0.5)
			l2.connect_timeout = 0.5;
		req->authenticated = admission_authenticated;
		req->authenticated_arg = &a;
		mg_error_clear(&e);
		errno = 0;
		ctx = transport_start(r, req, &l2, id, sandbox, &e);
		saved = errno ? errno : EIO;
		req->authenticated = NULL;
		req->authenticated_arg = NULL;
		dropped = !ctx && !a.authenticated && e.kind == MG_ERR_STREAM &&
			  admission_dropped(e.message);
		admission_leave(&a, dropped);
		if (ctx || !dropped || attempt >= tries)
			break;
		wait = admission_backoff(attempt);
		if (mono_now() + wait + 0.5 >= deadline)
			break;
		LOG_DEBUG("%s: the server dropped the connection before the login (try %u of "
			  "%u): again in %.2f s", req->default_name, attempt, tries, wait);
		admission_sleep(wait);
	}
	if (!ctx && attempt > 1 && e.message[0]) {
		size_t n = strlen(e.message);

		snprintf(e.message + n, sizeof(e.message) - n, " (dropped before the login; "
			 "tried %u times)", attempt);
	}
	if (err)
		*err = e;
	if (!ctx)
		errno = saved;
	return ctx;
}
