/* SPDX-License-Identifier: MIT */
/*
 * Broker, router, messages, handlers, latches, receivers and senders: the
 * routing core every context shares.
 *
 * Threads (DESIGN §7): each broker owns one I/O thread that owns every fd.
 * User threads never touch fds; they hand messages to the broker and sleep
 * on latches. Handlers run on the broker thread. Every function here is
 * safe to call from any thread unless its comment says otherwise.
 *
 * Timeouts are in seconds as a double; a negative timeout (MG_FOREVER)
 * waits forever.
 */
#ifndef MITOGEN_ROUTER_H
#define MITOGEN_ROUTER_H

#include <mitogen/common.h>
#include <mitogen/error.h>
#include <mitogen/value.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MG_FOREVER (-1.0)

/* Well-known handles (DESIGN §3); Mitogen's numbers where one exists. */
enum {
	MG_HANDLE_CALL_FUNCTION = 101,
	MG_HANDLE_FORWARD_LOG = 102,
	MG_HANDLE_ADD_ROUTE = 103,
	MG_HANDLE_DEL_ROUTE = 104,
	MG_HANDLE_ALLOCATE_ID = 105,
	MG_HANDLE_SHUTDOWN = 106,
	MG_HANDLE_DETACHING = 109,
	MG_HANDLE_CALL_SERVICE = 110,
	/* parent -> new child: id, parent ids, name, options */
	MG_HANDLE_BOOT = 111,
	/* an audited context -> the master: one record per call it served */
	MG_HANDLE_AUDIT = 112,
	/* liveness: a parent's ping to a child (reply_to HEARTBEAT) and the
	 * child's answer (mg_router_opts.heartbeat_interval) */
	MG_HANDLE_HEARTBEAT = 113,
	/* reply_to value marking a dead message */
	MG_IS_DEAD = 999,
	/* first handle handed out by mg_router_add_handler */
	MG_HANDLE_USER_MIN = 1000,
	/*
	 * Handles from here up (to 2^31 - 1) are reply handles: given to a
	 * receiver that has a respondent and takes one message (a call's
	 * reply), never in sequence (the low 13 bits name a slot free among
	 * this process's live reply handles, the rest are random), and only
	 * ever sent as the reply_to of messages to that respondent. Other
	 * handles count up from MG_HANDLE_USER_MIN, below this.
	 */
	MG_HANDLE_REPLY_MIN = 0x40000000,
};

/* Default for mg_router_opts.max_message_size: 128 MiB. */
#define MG_DEFAULT_MAX_MESSAGE_SIZE (128u << 20)
/* Default for mg_router_opts.reassembly_budget: 1 GiB. */
#define MG_DEFAULT_REASSEMBLY_BUDGET ((size_t)1 << 30)
/* Defaults for mg_router_opts.heartbeat_interval and heartbeat_limit. */
#define MG_DEFAULT_HEARTBEAT_INTERVAL 20.0
#define MG_DEFAULT_HEARTBEAT_LIMIT 60.0

struct mg_broker;
struct mg_router;
struct mg_message;
struct mg_receiver;
struct mg_sender;
struct mg_latch;
struct mg_stream;
struct mg_context;

/* --- broker ----------------------------------------------------------- */

struct mg_broker_opts {
	size_t sz;
	/* Seconds streams get to close gracefully in shutdown (default 5.0). */
	double shutdown_timeout;
};

/*
 * Start a broker and its I/O thread. Returns a reference the caller drops
 * with mg_broker_unref(), or NULL with errno set.
 */
MG_API struct mg_broker *mg_broker_new(const struct mg_broker_opts *opts);
MG_API struct mg_broker *mg_broker_ref(struct mg_broker *b);
/* NULL-safe; returns NULL. The last unref shuts down and joins. */
MG_API struct mg_broker *mg_broker_unref(struct mg_broker *b);
/*
 * Run fn(arg) on the broker thread (immediately if called from it).
 * Returns 0, -ESHUTDOWN once the broker stopped, or -ENOMEM.
 */
MG_API int mg_broker_defer(struct mg_broker *b, void (*fn)(void *arg), void *arg);
/*
 * Ask the broker to close every stream gracefully and stop. Returns at
 * once. Before its thread exits, every router on it delivers a dead
 * message to each handler still registered (see mg_handler_fn), so that
 * no thread stays asleep on a receiver.
 */
MG_API void mg_broker_shutdown(struct mg_broker *b);
/* Wait for the broker thread to stop (after mg_broker_shutdown). Returns 0
 * or -EDEADLK when called from the broker thread. */
MG_API int mg_broker_join(struct mg_broker *b);
/* True while a child context is still connected or a stream asked to be
 * kept alive (for example to drain logs). */
MG_API bool mg_broker_keep_alive(struct mg_broker *b);
MG_API double mg_broker_shutdown_timeout(const struct mg_broker *b);
/* True when called from this broker's I/O thread. */
MG_API bool mg_broker_on_thread(const struct mg_broker *b);

/* --- router ----------------------------------------------------------- */

struct mg_router_opts {
	size_t sz;
	/* Broker to use; NULL creates a private one, stopped with the router. */
	struct mg_broker *broker;
	/* Largest message accepted or sent; inherited by every descendant.
	 * 0 means MG_DEFAULT_MAX_MESSAGE_SIZE. */
	size_t max_message_size;
	/*
	 * Most bytes the router's child streams may hold together in
	 * messages still arriving (chunked, FIRST to LAST). Past it, the
	 * stream holding the most is closed as a protocol error, its reason
	 * logged and given to its pending calls as a ChannelError ("over the
	 * router's reassembly budget"). Each stream holds at most about twice
	 * what it has received of its message, whatever the message claims
	 * (docs/limits.md). Make it at least max_message_size, or a lone
	 * message of that size cannot arrive. Routers that children start
	 * use the default. 0 means MG_DEFAULT_REASSEMBLY_BUDGET.
	 */
	size_t reassembly_budget;
	/*
	 * Liveness (docs/reliability-liveness.md), inherited by every
	 * descendant: every stream to a child carries a heartbeat each
	 * heartbeat_interval seconds (0: MG_DEFAULT_HEARTBEAT_INTERVAL, 20;
	 * negative: no heartbeat at all; at least 0.05). A child nothing was
	 * heard from for heartbeat_limit seconds (0: 3 intervals; at least 2
	 * intervals) is treated as lost, within one interval more: its
	 * stream is closed and everything waiting on it fails with
	 * ChannelError ("no heartbeat for N s"). A child treats its parent
	 * the same way (within two limits) and exits. An idle child wakes
	 * once per interval and once per limit for this; ssh hops also get
	 * ServerAliveInterval = the interval (unless their configuration
	 * says otherwise).
	 */
	double heartbeat_interval;
	double heartbeat_limit;
};

/* Returns a new router reference, or NULL with errno set. */
MG_API struct mg_router *mg_router_new(const struct mg_router_opts *opts);
MG_API struct mg_router *mg_router_ref(struct mg_router *r);
/* NULL-safe; returns NULL. */
MG_API struct mg_router *mg_router_unref(struct mg_router *r);
/* Borrowed; valid while r is. */
MG_API struct mg_broker *mg_router_broker(struct mg_router *r);
MG_API size_t mg_router_max_message_size(const struct mg_router *r);
/*
 * Route msg (taken, even on failure) to its destination: a local handler,
 * a child stream, or upstream. src_id and auth_id are set to this
 * context's id when zero. Returns 0, or -EMSGSIZE when it is larger than
 * the router's maximum (a message with a reply_to also gets a dead reply
 * saying "message too large").
 */
MG_API int mg_router_route(struct mg_router *r, struct mg_message *msg);

/*
 * Policies decide whether a message may be delivered to a handler. stream
 * is the stream the message arrived on, NULL when it came from this
 * process. Refused messages are logged and, when they have a reply_to,
 * answered with a CallError saying they were refused.
 */
typedef bool (*mg_policy_fn)(const struct mg_message *msg,
			     const struct mg_stream *stream, void *userdata);
/* auth_id is this context's id or one of its parents' ids. */
MG_API bool mg_has_parent_authority(const struct mg_message *msg,
				    const struct mg_stream *stream, void *userdata);
/* The message came from the child connected directly on stream. */
MG_API bool mg_is_immediate_child(const struct mg_message *msg,
				  const struct mg_stream *stream, void *userdata);
/* Id of the context at the other end of stream; 0 for NULL. */
MG_API uint32_t mg_stream_remote_id(const struct mg_stream *stream);

/*
 * Handlers run on the broker thread, take msg (free with mg_message_free)
 * and must not block. A dead message is delivered when the respondent goes
 * away or the router shuts down: when its broker stops (before
 * mg_broker_join returns; reason "broker shut down") or the router is
 * freed on a shared broker ("router shut down"), every handler still
 * registered is removed and called once with a dead message, as the
 * reference's Router does on broker exit. A handler registered after that
 * gets its dead message at once.
 */
typedef void (*mg_handler_fn)(struct mg_message *msg, void *userdata);

struct mg_handler_opts {
	size_t sz;
	/* Explicit handle to register; 0 allocates one: from 1000 up, or a
	 * reply handle (MG_HANDLE_REPLY_MIN) when once and respondent are
	 * both set. */
	uint32_t handle;
	/* Unregister after the first message (persist=False). */
	bool once;
	/*
	 * Deliver only messages from this context (Borrowed). A message from
	 * another is dropped (logged once per stream with its verified
	 * sender, counted as MG_DROP_REPLY), except a dead message or a
	 * refusal from a router on the path to it, which could forge any
	 * source behind it anyway (README, Security). A dead message is
	 * delivered when it disconnects.
	 */
	struct mg_context *respondent;
	/* NULL: accept every message. */
	mg_policy_fn policy;
	void *policy_data;
};

/* Returns the handle (>= 1), -EEXIST when it is taken, -EINVAL, -ENOMEM. */
MG_API int mg_router_add_handler(struct mg_router *r, mg_handler_fn fn, void *userdata,
				 const struct mg_handler_opts *opts);
/* Returns 0 or -ENOENT. Never delivers to fn again once it returns,
 * unless called from the broker thread inside fn itself. */
MG_API int mg_router_del_handler(struct mg_router *r, uint32_t handle);

/* This context's id (0 in the master). */
MG_API uint32_t mg_router_id(const struct mg_router *r);
/*
 * Make this context, and every context started from it (or below it)
 * from now on, write a debug log, mitogen.<pid>.log (mode 0600,
 * microsecond timestamps, level DEBUG; see mg_log_to_file), in its user's
 * private directory: $XDG_RUNTIME_DIR/mitogen-debug or
 * ${TMPDIR:-/tmp}/mitogen-debug-<euid> (README, Logging). Returns 0 or
 * -errno from opening this process's log (a WARNING says why: e.g. the
 * directory belongs to another user).
 */
MG_API int mg_router_enable_debug(struct mg_router *r);
/*
 * The audit trail (README, Audit): every call served in an audited
 * context (mg_context_is_audited) is recorded where it ran (syslog,
 * facility authpriv) and sent to the master, whose router appends it to
 * path as one JSON line (opened O_APPEND, created mode 0600). Master only:
 * records are addressed to context 0. Replaces an earlier file. The
 * environment variable MITOGEN_AUDIT_FILE does the same for every router
 * a master creates (mg_router_new). Without a file, records go to the log
 * at INFO. Returns 0, -EINVAL (not the master, no path) or -errno from
 * open(2), with err filled.
 */
MG_API int mg_router_audit_to_file(struct mg_router *r, const char *path,
				   struct mg_error *err);
/*
 * A new context id, unique in the whole tree, with a route leading to this
 * context. The master counts; a child asks the master (ALLOCATE_ID) and
 * waits for the answer. Returns the id (> 0) or -errno.
 */
MG_API int mg_router_allocate_id(struct mg_router *r);
/*
 * Send messages for target_id through the stream that reaches via_id (a
 * directly connected child), and tell the parent (ADD_ROUTE). Normally
 * automatic. Returns 0, -ENOENT when via_id has no stream, -EINVAL.
 */
MG_API int mg_router_add_route(struct mg_router *r, uint32_t target_id, uint32_t via_id);
/*
 * The stream that messages for dst_id leave on: its own route, else the
 * parent's stream (unknown destinations go upstream); NULL in the master
 * for an unknown id. Borrowed: valid until that stream closes; use it with
 * mg_stream_remote_id().
 */
MG_API const struct mg_stream *mg_router_stream_by_id(struct mg_router *r, uint32_t dst_id);
/* A reference to the context with this id, created if unknown; NULL+errno. */
MG_API struct mg_context *mg_router_context_by_id(struct mg_router *r, uint32_t id);

/* --- message ---------------------------------------------------------- */

/*
 * A new message to handle in context dst_id carrying value (taken; NULL
 * sends nil). Returns NULL with errno ENOMEM/EINVAL (value unencodable).
 */
MG_API struct mg_message *mg_message_new(uint32_t dst_id, uint32_t handle,
					 struct mg_value *value);
/* A message with an already-encoded msgpack payload (copied). */
MG_API struct mg_message *mg_message_new_raw(uint32_t dst_id, uint32_t handle,
					     const void *data, size_t len);
/*
 * A message whose already-encoded payload is data, not copied: for one
 * payload sent to many contexts (a file's chunk to 32 hosts), each
 * message a reference the caller counts. data must stay as it is until
 * release(owner) is called, once, from whichever thread is done with the
 * message (freed once written, or its payload copied out where it is
 * delivered here). NULL with errno (ENOMEM, EINVAL) on failure, and then
 * release is not called: the caller still holds its reference.
 */
MG_API struct mg_message *mg_message_new_shared(uint32_t dst_id, uint32_t handle,
						const void *data, size_t len,
						void (*release)(void *owner), void *owner);
/* A dead message (reply_to = MG_IS_DEAD) saying why. */
MG_API struct mg_message *mg_message_dead(uint32_t dst_id, uint32_t handle,
					  const char *reason);
MG_API void mg_message_free(struct mg_message *msg);

/* Header fields (0 for a NULL message). */
MG_API uint32_t mg_message_dst_id(const struct mg_message *msg);
MG_API uint32_t mg_message_src_id(const struct mg_message *msg);
MG_API uint32_t mg_message_auth_id(const struct mg_message *msg);
MG_API uint32_t mg_message_handle(const struct mg_message *msg);
MG_API uint32_t mg_message_reply_to(const struct mg_message *msg);
/* Ask for replies at handle reply_to of this context (NULL-safe). */
MG_API void mg_message_set_reply_to(struct mg_message *msg, uint32_t reply_to);
/* reply_to is MG_IS_DEAD: the sender considers the channel dead. */
MG_API bool mg_message_is_dead(const struct mg_message *msg);
/* Raw msgpack payload, borrowed. */
MG_API const void *mg_message_data(const struct mg_message *msg, size_t *ret_len);
/* Receiver the message was delivered to (set by receivers and selects). */
MG_API struct mg_receiver *mg_message_receiver(const struct mg_message *msg);
/* Router that delivered it; NULL for messages made in this process. */
MG_API struct mg_router *mg_message_router(const struct mg_message *msg);

/*
 * Decode the payload ("unpickle"). With throw, a dead message fails with
 * MG_ERR_CHANNEL (-EPIPE) and an error value with its kind (-EREMOTEIO),
 * filling err; without throw, both come back as values. -EBADMSG when the
 * payload does not decode.
 */
MG_API int mg_message_value(const struct mg_message *msg, bool throw_,
			    struct mg_value **ret_value, struct mg_error *err);

/* Send value (taken) to msg's src_id/reply_to through msg's router (or r
 * when msg has none). Returns 0 or -errno; -EINVAL when no reply_to. */
MG_API int mg_message_reply(const struct mg_message *msg, struct mg_router *r,
			    struct mg_value *value);

/* --- latch ------------------------------------------------------------ */

/* A thread-safe queue that sleeps consumers. Returns NULL+errno. */
MG_API struct mg_latch *mg_latch_new(void);
/* Frees queued items with the free function given to mg_latch_set_free. */
MG_API void mg_latch_free(struct mg_latch *l);
MG_API void mg_latch_set_free(struct mg_latch *l, void (*free_fn)(void *item));
/* Returns 0, -EPIPE once closed (item not taken), -ENOMEM. */
MG_API int mg_latch_put(struct mg_latch *l, void *item);
/* Returns 0, -ETIMEDOUT, or -EPIPE once closed (LatchError). */
MG_API int mg_latch_get(struct mg_latch *l, double timeout, void **ret_item);
MG_API bool mg_latch_empty(struct mg_latch *l);
/* Wake every waiter with -EPIPE; later gets fail too. */
MG_API void mg_latch_close(struct mg_latch *l);

/* --- receiver --------------------------------------------------------- */

struct mg_receiver_opts {
	size_t sz;
	uint32_t handle;		/* 0 allocates */
	bool once;			/* unregister after one message */
	/* Only messages from this context are delivered (replies from
	 * anyone else are dropped, logged and counted as MG_DROP_REPLY; dead
	 * messages may also come from a router on the path to it); a dead
	 * message arrives when it goes away. */
	struct mg_context *respondent;
	mg_policy_fn policy;
	void *policy_data;
};

/* Returns a receiver the caller frees with mg_receiver_free, or NULL+errno. */
MG_API struct mg_receiver *mg_receiver_new(struct mg_router *r,
					   const struct mg_receiver_opts *opts);
/* Unregister, close and free; queued messages are dropped. NULL-safe. */
MG_API void mg_receiver_free(struct mg_receiver *rx);
MG_API uint32_t mg_receiver_handle(const struct mg_receiver *rx);
/*
 * Wait for the next message (caller frees). Returns 0, -ETIMEDOUT
 * (TimeoutError), or -EPIPE (ChannelError) when a dead message arrived,
 * the receiver was closed, the respondent went away, or the router shut
 * down (broker stopped: a waiter wakes then); err says which. Once its
 * handler is gone (a once receiver after its message, or the router shut
 * down) nothing more can arrive: what is queued is returned, then every
 * get fails with ChannelError at once.
 * Iterate with:  while (mg_receiver_get(rx, MG_FOREVER, &m, NULL) == 0) {...}
 */
MG_API int mg_receiver_get(struct mg_receiver *rx, double timeout,
			   struct mg_message **ret_msg, struct mg_error *err);
/* As mg_receiver_get, then decode with throw (CallError -> -EREMOTEIO). */
MG_API int mg_receiver_get_data(struct mg_receiver *rx, double timeout,
				struct mg_value **ret_value, struct mg_error *err);
MG_API bool mg_receiver_empty(struct mg_receiver *rx);
/* Make waiters (now and later) fail with ChannelError. */
MG_API void mg_receiver_close(struct mg_receiver *rx);
/* Called (on the broker thread) after each message is queued. Borrowed. */
typedef void (*mg_notify_fn)(struct mg_receiver *rx, void *userdata);
/* Install (fn) or remove (NULL) the notify callback; once this returns,
 * an old callback is no longer running. At most one per receiver. */
MG_API void mg_receiver_set_notify(struct mg_receiver *rx, mg_notify_fn fn, void *userdata);
/* A sender that delivers to this receiver; caller frees. NULL+errno. */
MG_API struct mg_sender *mg_receiver_to_sender(struct mg_receiver *rx);

/* --- sender ----------------------------------------------------------- */

/* Sends to handle in context ctx (borrowed, referenced). NULL+errno. */
MG_API struct mg_sender *mg_sender_new(struct mg_context *ctx, uint32_t handle);
/* Rebuild a sender received as a value (MG_SENDER) on router r. */
MG_API struct mg_sender *mg_sender_from_value(struct mg_router *r, const struct mg_value *v);
/* A value that serialises this sender (MG_SENDER). */
MG_API struct mg_value *mg_sender_to_value(const struct mg_sender *tx);
/* Send value (taken). Returns 0 or -errno (-EMSGSIZE, -EPIPE after close). */
MG_API int mg_sender_send(struct mg_sender *tx, struct mg_value *value);
/* Send a dead message: the receiver's waiters get ChannelError. */
MG_API int mg_sender_close(struct mg_sender *tx);
MG_API void mg_sender_free(struct mg_sender *tx);

#ifdef __cplusplus
}
#endif
#endif
