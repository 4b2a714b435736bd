/* SPDX-License-Identifier: MIT */
/* master.h — factories shared inside master/. */
#ifndef MASTER_MASTER_H
#define MASTER_MASTER_H

#include <mitogen/context.h>

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum via_kind { VIA_LOCAL, VIA_FORK };

/*
 * A child being started (master/local.c). Transports (transports/) fill
 * default_name, no_channel (they make their own channel), then call
 * start_prepare; once the child runs with its channel in sv[0] (bytes: a
 * byte stream) and its output in out[0], start_finish registers it, sends
 * BOOT and waits up to connect_timeout for the greeting.
 */
struct start {
	struct mg_router *r;
	const char *name;
	char namebuf[96];
	double connect_timeout;
	bool debug;
	bool profiling;
	const char *image;
	uint32_t id;
	struct mg_context *ctx;
	struct mg_value *sandbox;	/* BOOT "sandbox" map, or NULL */
	int sv[2];
	int out[2];
	const char *default_name;	/* instead of user@host:pid */
	bool no_channel;		/* the transport makes sv/out */
	bool bytes;			/* sv[0] is a byte stream */
	bool remote;			/* another host: uids are not ours */
	bool privileged;		/* mark the context privileged */
	bool audit;			/* audit it (mg_local_opts.audit) */
	int keep_fd;			/* held until the child is gone (a pty
					 * master: closing it would hang up the
					 * program); -1: none */
};

int start_prepare(struct start *st, struct mg_router *r, const struct mg_local_opts *o,
		  uint32_t id, const struct mg_value *sandbox, struct mg_error *err);
/* Returns the context, or NULL (err filled) with everything cleaned up. */
struct mg_context *start_finish(struct start *st, pid_t pid, struct mg_error *err);
void start_cleanup(struct start *st);

/*
 * Start a child from this process with a given id (0: allocate one).
 * sandbox: a BOOT sandbox map made elsewhere (mg._proxy_start), checked
 * and copied, used instead of opts->sandbox; NULL for the options'.
 */
struct mg_context *local_start(struct mg_router *r, const struct mg_local_opts *opts,
			       uint32_t id, const struct mg_value *sandbox,
			       struct mg_error *err);
struct mg_context *fork_start(struct mg_router *r, const struct mg_fork_opts *opts,
			      uint32_t id, const struct mg_value *sandbox,
			      struct mg_error *err);
/* Start a context through opts->via (mg.via.start there). */
struct mg_context *via_start(struct mg_router *r, enum via_kind kind,
			     const struct mg_local_opts *opts, struct mg_error *err);
/* Start a transport context (ssh, sudo...) through opts->via; topts (taken)
 * is its option list, first item the kind; name: its default name. */
struct mg_context *via_start_opts(struct mg_router *r, const char *name,
				  const struct mg_local_opts *opts, struct mg_value *topts,
				  struct mg_error *err);
/*
 * The method table (transports/methods.c): start the context whose
 * options v (a list, first item kind) came in a via= message, with id
 * and sandbox. master/ knows methods by name only; an unknown kind is
 * an EINVAL StreamError naming it.
 */
struct mg_context *method_from_value(const char *kind, struct mg_router *r,
				     const struct mg_local_opts *lo, uint32_t id,
				     const struct mg_value *sandbox, const struct mg_value *v,
				     struct mg_error *err);
/* Offers the service mg.via (its start method) in this process; also
 * keeps master/via.o (and its exported mg._proxy_start) linked. */
void via_init(void);

#endif
