/* SPDX-License-Identifier: MIT */
/*
 * Services (the reference's mitogen.service, in C idiom): named groups of
 * methods a context offers, each method with its own policy (who may call
 * it) and argument check, run on a bounded pool of worker threads so that
 * a long call (a file transfer) never blocks the main thread's calls or
 * other services' calls. docs/files.md describes the protocol.
 *
 * A program registers its services before mg_main() (so a child started
 * from it offers them too); the library registers its own ("mg.files")
 * when an agent starts. Calls travel on CALL_SERVICE (110) as
 * [service, method, args]; the reply is the method's result or a
 * CallError naming the context and "service.method".
 */
#ifndef MITOGEN_SERVICE_H
#define MITOGEN_SERVICE_H

#include <mitogen/common.h>
#include <mitogen/error.h>
#include <mitogen/value.h>
#include <mitogen/router.h>
#include <mitogen/context.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Who may call a method (the reference's AllowParents / AllowAny). */
enum mg_service_policy {
	/* Only a context with parent authority over this one
	 * (mg_has_parent_authority): its parents, and itself. */
	MG_SERVICE_PARENTS = 0,
	/* Anyone whose message reaches this context (a sibling, a child).
	 * Where the eBPF channel filter runs, CALL_SERVICE from a child to
	 * its parent (or through it to a context the child has no authority
	 * over) is dropped in the kernel: ANY widens what this process
	 * accepts, never what the tree's filters let through. */
	MG_SERVICE_ANY = 1,
};

/*
 * Worker threads serving service calls in one process, and calls that may
 * wait for a worker; a call beyond both is refused with a CallError
 * ("service queue full"), never queued without bound.
 */
#define MG_SERVICE_WORKERS 8
#define MG_SERVICE_QUEUE_MAX 256

/*
 * A method. call: as for exported functions (mg_call_router, mg_call_fail,
 * mg_call_src_id ...); args: the checked argument list (borrowed); set
 * *ret_result (NULL: nil). Runs on a worker thread: it may block (on
 * receivers, on files), and must be thread-safe against the other workers.
 */
typedef int (*mg_service_fn)(struct mg_call *call, const struct mg_value *args,
			     struct mg_value **ret_result, void *userdata);

struct mg_service_method {
	const char *name;
	mg_service_fn fn;
	enum mg_service_policy policy;
	/*
	 * Argument check, one letter per argument, the count exact: 's' str,
	 * 'i' int, 'b' bytes, 'B' bool, 'l' list, 'm' map, 'n' int or nil,
	 * '?' anything. NULL: no check. A call that does not match is
	 * refused with a CallError (EINVAL) before the method runs.
	 */
	const char *args;
};

/*
 * Offer service `name` with n methods (the array and its strings are
 * borrowed: keep them for the life of the process, e.g. static). Returns
 * 0, -EEXIST (a service of that name exists), -EINVAL, -ENOSPC (too many
 * services: 32). Thread-safe.
 */
MG_API int mg_service_register(const char *name, const struct mg_service_method *methods,
			       size_t n, void *userdata);

/*
 * Call service.method in ctx with args (a list, taken; NULL: none) and
 * wait for its result (caller frees; ret_result may be NULL). Returns 0 or
 * -errno with err filled: -EREMOTEIO CallError (the method failed, no such
 * service or method, refused by policy, bad arguments, queue full),
 * -EPIPE ChannelError (ctx went away).
 */
MG_API int mg_call_service(struct mg_context *ctx, const char *service, const char *method,
			   struct mg_value *args, struct mg_value **ret_result,
			   struct mg_error *err);
/* Start the call; its result arrives on the returned receiver (caller
 * frees; read with mg_receiver_get_data). NULL with errno and err. */
MG_API struct mg_receiver *mg_call_service_async(struct mg_context *ctx, const char *service,
						 const char *method, struct mg_value *args,
						 struct mg_error *err);
/* Start the call and want no reply (call_no_reply): failures are only
 * logged where the method ran. Returns 0 or -errno. */
MG_API int mg_call_service_no_reply(struct mg_context *ctx, const char *service,
				    const char *method, struct mg_value *args);

#ifdef __cplusplus
}
#endif
#endif
