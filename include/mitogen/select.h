/* SPDX-License-Identifier: MIT */
/*
 * mg_select: wait on many receivers (and nested selects) at once, and
 * gather the results of parallel calls as they arrive.
 *
 *	struct mg_select *sel = mg_select_new(true);
 *	for (i = 0; i < n; i++)
 *		mg_select_add(sel, rx[i] = mg_call_async(ctx[i], "work", NULL, NULL));
 *	while (mg_select_get(sel, MG_FOREVER, &msg, &err) == 0) {
 *		... mg_message_receiver(msg) says which call answered ...
 *		mg_message_free(msg);
 *	}
 *	mg_select_free(sel);	// then free the receivers
 *
 * A select does not own its members: free it before freeing them. Safe to
 * use from any thread; one thread should consume a given select.
 */
#ifndef MITOGEN_SELECT_H
#define MITOGEN_SELECT_H

#include <mitogen/common.h>
#include <mitogen/error.h>
#include <mitogen/router.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mg_select;

/*
 * A new, empty select. With oneshot, each member is removed once it has
 * produced a message, so iteration ends when every member has answered.
 * Returns NULL with errno set.
 */
MG_API struct mg_select *mg_select_new(bool oneshot);
/* Remove itself from every member and from a parent select, close, free. */
MG_API void mg_select_free(struct mg_select *sel);
/* Add a receiver (borrowed; must outlive its membership). Messages already
 * queued on it are noticed at once, each of them. Returns 0, -EINVAL,
 * -EBUSY (already in a select), -ENOMEM. */
MG_API int mg_select_add(struct mg_select *sel, struct mg_receiver *rx);
/* Add a nested select (borrowed). Returns 0, -EINVAL (itself or a cycle),
 * -EBUSY, -ENOMEM. */
MG_API int mg_select_add_select(struct mg_select *sel, struct mg_select *sub);
/* Remove a member: the select never reads it again (it may be freed at
 * once); messages still queued on it stay there. Unlike the reference,
 * where a member that notified before removal may still be returned by
 * the next get. Returns 0 or -ENOENT. */
MG_API int mg_select_remove(struct mg_select *sel, struct mg_receiver *rx);
MG_API int mg_select_remove_select(struct mg_select *sel, struct mg_select *sub);
/*
 * The next message from any member (nested selects included), which the
 * caller frees; mg_message_receiver() says which receiver it came from.
 * A dead message (a closed sender, a lost context) is returned like any
 * other: test it with mg_message_is_dead(), or decode it with
 * mg_message_value(..., true, ...) to get the ChannelError.
 * Returns 0, -ETIMEDOUT (TimeoutError), -EPIPE after mg_select_close
 * (LatchError), or -ENOENT when the select has no members left (the end
 * of iteration).
 */
MG_API int mg_select_get(struct mg_select *sel, double timeout,
			 struct mg_message **ret_msg, struct mg_error *err);
/* True when get would block (advisory, as in the reference). */
MG_API bool mg_select_empty(struct mg_select *sel);
/* Number of members ("truthiness": the select is true while non-zero). */
MG_API size_t mg_select_count(struct mg_select *sel);
/* Wake every waiter with LatchError (-EPIPE); later gets fail too. */
MG_API void mg_select_close(struct mg_select *sel);

/*
 * Gather one result from each of n receivers as they arrive (Select.all).
 * ret_values[k] receives the k-th result to arrive (caller frees each) and,
 * when ret_order is not NULL, ret_order[k] the index of its receiver.
 * Stops at the first failure: returns -EREMOTEIO (CallError), -EPIPE
 * (ChannelError) or -ETIMEDOUT when timeout seconds pass without every
 * result, with err filled and the values gathered so far freed.
 * Returns 0 on success.
 */
MG_API int mg_select_all(struct mg_receiver *const *rxs, size_t n, double timeout,
			 struct mg_value **ret_values, size_t *ret_order,
			 struct mg_error *err);

#ifdef __cplusplus
}
#endif
#endif
