/* SPDX-License-Identifier: MIT */
/* agent.h — what a child context runs, as seen by the factories in master/. */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include <stdbool.h>
#include <stdint.h>

/* Environment variable naming the channel fd of an exec'd child. */
#define AGENT_FD_ENV "MITOGEN_AGENT_FD"

/* Exit codes of a child that failed before serving (documented in README). */
#define AGENT_EXIT_SETUP 120	/* setup between fork/exec and BOOT failed */
#define AGENT_EXIT_BOOT 121	/* no valid BOOT from the parent */
/* 122, AGENT_EXIT_SANDBOX (sandbox/sandbox.h): the sandbox BOOT asked for
 * could not be applied; the reason is on stderr. */

/* In a fork()ed child: reset state the parent's other threads held. */
void agent_after_fork(const char *name);
/* Become the agent on channel fd: serve calls until told to stop. */
__attribute__((noreturn)) void agent_run(int fd);
/* The same on a byte stream (bytes: read fd, write wfd) or a SEQPACKET fd. */
__attribute__((noreturn)) void agent_run_fds(int fd, int wfd, bool bytes);
/* Connect to a parent's SEQPACKET socket ("@abstract" or a path); fd or -1. */
int agent_connect_parent(const char *name);
/*
 * What an agent started with --mitogen-stdio writes on stdout before
 * anything else: the first stage is over, records follow (after BOOT).
 */
#define AGENT_READY_LINE "MGREADY\n"
/*
 * A first stage whose program handed us a SEQPACKET socket of our parent
 * (podman exec --preserve-fds: transports/podman.c) names its fd here.
 * The agent takes it as its channel when it is an AF_UNIX SEQPACKET
 * socket, says AGENT_CHAN_HELLO on it and then AGENT_READY_LINE on
 * stdout (in that order: the parent, reading the line, knows the packet
 * is there or never will be), and receives its channel, a fresh
 * socketpair's end, in the parent's AGENT_CHAN_HELLO back (SCM_RIGHTS);
 * otherwise it stays on stdio.
 */
#define AGENT_CHAN_ENV "MITOGEN_CHANNEL_FD"
#define AGENT_CHAN_HELLO "MGFD"

struct mg_router;
struct mg_message;
struct mg_value;

#include <mitogen/error.h>

/* A call being served (an exported function or a service method). */
struct mg_call {
	struct mg_router *router;
	const struct mg_message *msg;
	const char *function;
	bool failed;
	int errnum;
	char message[MG_ERROR_MSG_MAX];
	struct mg_value *audit_detail;	/* mg_call_audit_detail's map, or NULL */
};

/* Whether the call's record will be written (this context is audited):
 * for a caller that would build a detail value only to have it freed. */
bool agent_call_audited(const struct mg_call *call);

/* service.c: register the library's own services (files/) before BOOT. */
void service_agent_init(void);
/* service.c: serve CALL_SERVICE on r from now on. Returns 0 or -errno. */
int service_start(struct mg_router *r);
/* service.c, audited, at the end before agent_audit_close: a record for
 * each method still running ("still running when the context ended"),
 * so that what it did so far is in the trail. */
void service_audit_running(struct mg_router *r);

/* audit.c: decide from BOOT whether this context is audited (and if so
 * open syslog, before the sandbox); returns r->audited. */
bool agent_audit_boot(struct mg_router *r, const struct mg_value *boot);
/* CLOCK_MONOTONIC in ns: a call's start and end, for agent_audit_call. */
uint64_t agent_audit_now(void);
/* Record a served call (error: NULL when it succeeded; detail: the
 * call's mg_call_audit_detail map or NULL, taken). Thread-safe: exported
 * functions are recorded from the main thread, service methods from
 * their workers. */
void agent_audit_call(struct mg_router *r, const struct mg_message *msg, const char *function,
		      const struct mg_value *args, const char *error, uint64_t start_ns,
		      uint64_t end_ns, struct mg_value *detail);

/* audit.c: the agent is ending: a final checkpoint of its audit log,
 * written there and sent up while the parent stream is still open. */
void agent_audit_close(struct mg_router *r);

/* Keeps agent/builtins.o linked into static programs. */
void builtins_init(void);
/* mg.run is waiting for a program (it ends it within the grace once the
 * tree is being ended: agent/tree.h). */
bool builtins_run_busy(void);

#endif
