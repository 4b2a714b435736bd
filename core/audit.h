/* SPDX-License-Identifier: MIT */
/* audit.h — the master's end of the audit trail (core/audit.c). */
#ifndef CORE_AUDIT_H
#define CORE_AUDIT_H

struct mg_router;

/* router_alloc: no file yet, and the AUDIT handler registered. */
void audit_router_init(struct mg_router *r);
/* mg_router_new of a master: MITOGEN_AUDIT_FILE, when set. */
void audit_router_env(struct mg_router *r);
/* router_destroy: close the file. */
void audit_router_free(struct mg_router *r);

#endif
