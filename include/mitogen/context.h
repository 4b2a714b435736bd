/* SPDX-License-Identifier: MIT */
/*
 * Contexts: starting copies of this program and calling their exported
 * functions.
 *
 *	int main(int argc, char **argv)
 *	{
 *		mg_main(argc, argv);	// a child never returns from here
 *		...
 *	}
 */
#ifndef MITOGEN_CONTEXT_H
#define MITOGEN_CONTEXT_H

#include <sys/types.h>
#include <mitogen/common.h>
#include <mitogen/error.h>
#include <mitogen/value.h>
#include <mitogen/router.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mg_call;
struct mg_sandbox_opts;

/* --- exported functions ---------------------------------------------- */

/*
 * An exported function. args is the list the caller passed (borrowed, never
 * NULL). On success set *ret_result (NULL means nil) and return 0; on
 * failure return mg_call_fail(call, errno, "..."), which the caller sees as
 * a CallError naming this context and function.
 */
typedef int (*mg_export_fn)(struct mg_call *call, const struct mg_value *args,
			    struct mg_value **ret_result);

struct mg_export {
	const char *name;
	mg_export_fn fn;
};

#define MG_EXPORT_CAT2_(a, b) a##b
#define MG_EXPORT_CAT_(a, b) MG_EXPORT_CAT2_(a, b)
/* Make fn callable from other contexts under the name `name`. */
#define MG_EXPORT_AS(name, fn)						\
	static const struct mg_export					\
	MG_EXPORT_CAT_(mg_export_entry_, __LINE__)			\
	__attribute__((used, section("mg_exports"),			\
		       aligned(sizeof(void *)))) = { (name), (fn) }
/* Make fn callable from other contexts under its own name. */
#define MG_EXPORT(fn) MG_EXPORT_AS(#fn, fn)

/* Borrowed router of the context running the call. */
MG_API struct mg_router *mg_call_router(struct mg_call *call);
/* Id of the context whose authority the call runs under. */
MG_API uint32_t mg_call_auth_id(const struct mg_call *call);
/* Id of the context that sent the call. */
MG_API uint32_t mg_call_src_id(const struct mg_call *call);
/* Name of the function being run. */
MG_API const char *mg_call_function(const struct mg_call *call);
/*
 * Add key: value (value taken) to the audit record of the call being
 * served, when this context is audited (README, Audit; docs/audit.md):
 * the record gets a "detail" map of every pair added, after the digest of
 * the arguments. For what the digest cannot tell an auditor: the path a
 * method wrote or read, the command it ran. Secrets in value are written
 * "<secret>". In a context that is not audited value is freed and nothing
 * is kept. A key added twice keeps the last value. Returns 0, -EINVAL (no
 * call, key or value), -ENOMEM.
 */
MG_API int mg_call_audit_detail(struct mg_call *call, const char *key, struct mg_value *value);
/*
 * Record why the call failed (errnum may be 0) and return -errnum (-EIO
 * when 0): `return mg_call_fail(call, errno, "open %s", path);`
 */
MG_API int mg_call_fail(struct mg_call *call, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* --- process identity ------------------------------------------------ */

extern const struct mg_export __start_mg_exports[] __attribute__((weak, visibility("hidden")));
extern const struct mg_export __stop_mg_exports[] __attribute__((weak, visibility("hidden")));

/* Implementation of mg_main(); call the macro, which passes this
 * program's export table. */
MG_API int mg_main_(int argc, char **argv, const struct mg_export *start,
		    const struct mg_export *stop);
/*
 * First line of main(). In the master it returns 0 (or -errno when the
 * library cannot start). In a context started by libmitogen it never
 * returns: it serves calls and exits when told to or when its parent goes
 * away. Also registers this program's MG_EXPORT table.
 */
#define mg_main(argc, argv) mg_main_((argc), (argv), __start_mg_exports, __stop_mg_exports)

/* True in the master (a process not started by libmitogen). */
MG_API bool mg_is_master(void);
/* This process's context id (0 in the master). */
MG_API uint32_t mg_context_id(void);
/* Parent's id (0 in the master and its children). */
MG_API uint32_t mg_parent_id(void);
/* Copy up to n parent ids, nearest first, into ids. Returns how many there
 * are in all (may exceed n). */
MG_API size_t mg_parent_ids(uint32_t *ids, size_t n);
/* Name given to this context by its parent ("master" in the master). */
MG_API const char *mg_context_name_self(void);

/*
 * Run fn(router, arg) with a new router and its own broker, then shut both
 * down and wait for them. Returns fn's return value, or -errno when the
 * router cannot be made.
 */
MG_API int mg_run_with_router(int (*fn)(struct mg_router *r, void *arg), void *arg);

/* --- context factories ----------------------------------------------- */

struct mg_local_opts {
	size_t sz;
	/* The child's name: "mitogen:<remote_name>" is the argv[0] of a
	 * local, fork or setns child, and every agent's process name (comm:
	 * top, pgrep; 15 bytes). One the first stage started (ssh, sudo, su,
	 * doas, containers) keeps argv[0] /proc/self/fd/3, the image it
	 * checked. No '/'. Default "<user>@<host>:<parent pid>". */
	const char *remote_name;
	/* Seconds the child has to start and greet us (default 30). */
	double connect_timeout;
	/* The child writes a debug log (see mg_router_enable_debug). */
	bool debug;
	/* The child writes a profile on graceful exit. */
	bool profiling;
	/* Run this program image instead of ourselves (e.g. the stock agent). */
	const char *image;
	/* Start the context through this one (borrowed). NULL: from here. */
	struct mg_context *via;
	/* Sandbox the child (borrowed, read during the call; see
	 * mitogen/sandbox.h). NULL: no sandbox. */
	const struct mg_sandbox_opts *sandbox;
	/* Audit the child even if it is not privileged: every call it (or a
	 * context below it) serves is recorded (mg_router_audit_to_file).
	 * Privileged contexts are always audited; there is no opting out. */
	bool audit;
};

struct mg_fork_opts {
	size_t sz;
	/* Common options (remote_name, connect_timeout, debug...); may be NULL.
	 * `image` is ignored. */
	const struct mg_local_opts *local;
	/* Run in the child right after fork, before it serves calls. */
	void (*on_fork)(void *userdata);
	void *on_fork_data;
};

/*
 * Start a copy of this program (or opts->image) as a local subprocess,
 * connected over AF_UNIX SOCK_SEQPACKET, and wait until it greets us.
 * Returns a context reference (drop with mg_context_unref), or NULL with
 * errno set and err filled: MG_ERR_STREAM with the exec error or the last
 * lines the child printed, or MG_ERR_TIMEOUT after connect_timeout. A child
 * that failed to start has been reaped.
 */
MG_API struct mg_context *mg_local(struct mg_router *r, const struct mg_local_opts *opts,
				   struct mg_error *err);
/*
 * Fork this process into a new context. The child keeps only its channel
 * and stdio, runs opts->on_fork, and serves calls; it never returns here.
 * Errors as for mg_local.
 */
MG_API struct mg_context *mg_fork(struct mg_router *r, const struct mg_fork_opts *opts,
				  struct mg_error *err);

/* Take another reference (NULL-safe); returns ctx. Thread-safe. */
MG_API struct mg_context *mg_context_ref(struct mg_context *ctx);
/* NULL-safe; returns NULL. Does not shut the context down. */
MG_API struct mg_context *mg_context_unref(struct mg_context *ctx);
MG_API uint32_t mg_context_remote_id(const struct mg_context *ctx);
/* Borrowed; valid while ctx is. */
MG_API const char *mg_context_name(const struct mg_context *ctx);
MG_API struct mg_router *mg_context_router(const struct mg_context *ctx);
/* Process id of a child started from here, or 0. */
MG_API pid_t mg_context_pid(const struct mg_context *ctx);
/*
 * True when ctx is privileged: it was reached through sudo, su or doas
 * (at any hop of its via= chain), or runs as another uid than its parent
 * on the same host, or as root on another host (ssh). Privileged contexts
 * are always audited (mg_context_is_audited). False for NULL.
 */
MG_API bool mg_context_is_privileged(const struct mg_context *ctx);
/*
 * True when the calls ctx serves are recorded (README, Audit): it is
 * privileged, or was started with mg_local_opts.audit, or below (via=) an
 * audited context, or started from an audited context. False for NULL.
 */
MG_API bool mg_context_is_audited(const struct mg_context *ctx);

/*
 * Call fn in ctx with args (a list, taken; NULL for none) and wait for the
 * result, which the caller frees (*ret_result may be NULL: ret_result may be
 * NULL to discard it). Returns 0 or -errno with err filled: -EREMOTEIO
 * CallError, -EPIPE ChannelError (context gone, "message too large"),
 * -ETIMEDOUT never (use mg_call_async for deadlines).
 */
MG_API int mg_call(struct mg_context *ctx, const char *fn, struct mg_value *args,
		   struct mg_value **ret_result, struct mg_error *err);
/*
 * Start a call and return the receiver its result arrives on (caller frees);
 * read it with mg_receiver_get_data. NULL with errno and err on failure.
 */
MG_API struct mg_receiver *mg_call_async(struct mg_context *ctx, const char *fn,
					 struct mg_value *args, struct mg_error *err);
/* Send msg (taken) to ctx: sets dst_id and routes. Returns 0 or -errno. */
MG_API int mg_context_send(struct mg_context *ctx, struct mg_message *msg);
/* Send msg (taken) with a fresh reply receiver (caller frees) as reply_to. */
MG_API struct mg_receiver *mg_context_send_async(struct mg_context *ctx,
						 struct mg_message *msg, bool persist);
/* Send msg (taken) and wait up to deadline seconds for one reply (caller
 * frees). Returns 0, -ETIMEDOUT, -EPIPE; err filled on failure. */
MG_API int mg_context_send_await(struct mg_context *ctx, struct mg_message *msg,
				 double deadline, struct mg_message **ret_reply,
				 struct mg_error *err);
/*
 * Ask ctx to shut down. With wait, block until it has disconnected (and,
 * for a child of this process, been reaped). Returns 0 or -errno.
 */
MG_API int mg_context_shutdown(struct mg_context *ctx, bool wait);

#ifdef __cplusplus
}
#endif
#endif
