/* SPDX-License-Identifier: MIT */
/* context.h — the mg_context struct and the process identity. */
#ifndef CORE_CONTEXT_H
#define CORE_CONTEXT_H

#include <pthread.h>
#include <sys/types.h>
#include <mitogen/context.h>

struct mg_context {
	int refs;
	struct mg_router *router;	/* borrowed; NULL once the router is gone */
	uint32_t id;
	char name[96];
	pid_t pid;			/* child started from here, else 0 */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool disconnected;
	bool reaped;
	int status;			/* wait status once reaped */
	bool privileged;		/* see mg_context_is_privileged */
	bool audited;			/* see mg_context_is_audited */
	/* Transport hook: forcibly stop the process (SIGKILL). */
	void (*kill)(struct mg_context *ctx);
};

struct mg_context *context_new(struct mg_router *r, uint32_t id, const char *name);
void context_set_disconnected(struct mg_context *ctx);
void context_set_reaped(struct mg_context *ctx, int status);
/* Wait until disconnected (and reaped, when pid != 0). Returns 0 or -ETIMEDOUT. */
int context_wait_gone(struct mg_context *ctx, double timeout);

/* Process identity, set once by the agent at BOOT. */
void identity_set(uint32_t id, const uint32_t *parent_ids, size_t n, const char *name);

#endif
