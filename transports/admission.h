/* SPDX-License-Identifier: MIT */
/*
 * admission.h — bounding the ssh handshakes in flight per destination and
 * per process, and recognising a handshake the server dropped before
 * authentication (admission.c; docs/scale.md).
 */
#ifndef TRANSPORTS_ADMISSION_H
#define TRANSPORTS_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>

#include "transports/transport.h"

struct admit_key;

/* One start's place (on the caller's stack). */
struct admission {
	struct admit_key *key;
	unsigned gen;			/* the destination's window when admitted */
	bool held;			/* holds a slot */
	bool authenticated;		/* admission_authenticated was called */
	double t0;			/* mono_now() when admitted */
};

/*
 * Wait for a slot to start a handshake with host:port (port 0: ssh's
 * default, as the caller wrote it). Returns 0 (a filled, held) or -ENOMEM.
 */
int admission_enter(struct admission *a, const char *host, int port);
/*
 * The server took the login (the first stage said MGSTART): the slot goes
 * to the next start, the destination's window widens. arg: the struct
 * admission (a transport_req callback). Safe to call more than once.
 */
void admission_authenticated(void *arg);
/*
 * The start ended (either way). dropped: it failed as a dropped handshake
 * does (the destination's window is cut). Safe after
 * admission_authenticated.
 */
void admission_leave(struct admission *a, bool dropped);
/* Does an error message say the server dropped the connection before
 * the key exchange (kex_exchange_identification, "Connection closed by",
 * "Connection reset")? */
bool admission_dropped(const char *message);
/* How many times in all one start is tried (>= 1). */
unsigned admission_tries(void);
/* Seconds to wait before try attempt+1 (attempt >= 1): doubling from
 * 0.25 s up to 4 s, times a random factor in [0.5, 1.5). */
double admission_backoff(unsigned attempt);
/* Sleep seconds (restarted after signals). */
void admission_sleep(double seconds);
/*
 * transport_start(r, req, lo, id, sandbox, err) for an ssh start to
 * host:port, admitted (admission_enter) and tried again after a dropped
 * handshake (admission_dropped, before MGSTART only) with a backoff, at
 * most admission_tries() times and within lo's connect timeout counted
 * from the first admission. req->authenticated is ours while it runs.
 * Returns as transport_start.
 */
struct mg_context *admission_start(struct mg_router *r, struct transport_req *req,
				   const char *host, int port, const struct mg_local_opts *lo,
				   uint32_t id, const struct mg_value *sandbox,
				   struct mg_error *err);

#endif
