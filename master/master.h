/* SPDX-License-Identifier: MIT */
/* master.h — factories shared inside master/. */
#ifndef MASTER_MASTER_H
#define MASTER_MASTER_H

#include <mitogen/context.h>

enum via_kind { VIA_LOCAL, VIA_FORK };

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
/* Start a context through opts->via (mg._proxy_start there). */
struct mg_context *via_start(struct mg_router *r, enum via_kind kind,
			     const struct mg_local_opts *opts, struct mg_error *err);
/* Keeps master/via.o (and its exported mg._proxy_start) linked. */
void via_init(void);

#endif
