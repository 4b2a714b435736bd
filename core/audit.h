/* SPDX-License-Identifier: MIT */
/* audit.h — the master's end of the audit trail (core/audit.c). */
#ifndef CORE_AUDIT_H
#define CORE_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

struct mg_router;

/* router_alloc: no file yet, and the AUDIT handler registered. */
void audit_router_init(struct mg_router *r);
/* mg_router_new of a master: MITOGEN_AUDIT_FILE, when set. */
void audit_router_env(struct mg_router *r);
/* router_destroy: close the file. */
void audit_router_free(struct mg_router *r);

/*
 * A message the kernel filter dropped (kernel: bpf/loader.c, from the
 * denial ring buffer) or the router refused (core/router.c: a forged
 * src_id or auth_id, a call without authority, a reply from a context
 * that was not called), from the context behind channel `from`: chained
 * into the master's audit file as {"denied"|"refused": why, ...},
 * rate-limited (docs/audit.md, 2). Nothing unless r is the master with an
 * audit file. Any thread; takes r->lock.
 */
void audit_denial(struct mg_router *r, bool kernel, const char *why, uint32_t from,
		  uint32_t src_id, uint32_t auth_id, uint32_t dst_id, uint32_t handle);

#endif
