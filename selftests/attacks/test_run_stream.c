// SPDX-License-Identifier: MIT
/*
 * selftests/attacks/test_run_stream.c — attacks on mg.run_stream's flow
 * control: a context that is not the caller sends acknowledgements to the
 * agent's end of the output channel, to make the agent pour a program's
 * output past the window (filling the caller's memory, the DoS the window
 * exists to stop). The agent must take acks only from the context that
 * made the call.
 *
 * Owns: its router and the two children it starts. Must not touch:
 * library internals.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/mitogen.h>

#include "selftests/lib/harness.h"

/* mg.run_stream's window and chunk (agent/builtins.c). */
#define WINDOW (256 << 10)
#define CHUNK (32 << 10)
/* The program's output: far more than a window. */
#define TOTAL (4 << 20)

/*
 * Run in the attacker: send acks for every offset up to TOTAL to the
 * sender value args[0] (the agent's end of the channel, which the caller
 * learnt from the channel's first message and leaked to us).
 */
static int forge_acks(struct mg_call *call, const struct mg_value *args,
		      struct mg_value **ret_result)
{
	const struct mg_value *to = mg_list_get(args, 0);
	struct mg_sender *tx;
	int sent = 0;

	if (!to || to->type != MG_SENDER)
		return mg_call_fail(call, EINVAL, "want a sender");
	tx = mg_sender_from_value(mg_call_router(call), to);
	if (!tx)
		return mg_call_fail(call, errno, "sender");
	for (int64_t n = CHUNK; n <= TOTAL; n += CHUNK) {
		struct mg_value *m = mg_map();

		mg_map_set(m, "ack", mg_int(n));
		if (mg_sender_send(tx, m) == 0)
			sent++;
	}
	mg_sender_free(tx);
	*ret_result = mg_int(sent);
	return 0;
}
MG_EXPORT_AS("attack.forge_acks", forge_acks);

static void test_forged_acks_ignored(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_router *r = mg_router_new(NULL);
	struct mg_context *victim, *attacker;
	struct mg_channel *ch;
	struct mg_receiver *rx;
	struct mg_value *v = NULL, *peer = NULL, *res = NULL;
	size_t got = 0;
	int rc;

	(void)state;
	assert_non_null(r);
	victim = mg_local(r, NULL, &err);
	attacker = mg_local(r, NULL, &err);
	assert_non_null(victim);
	assert_non_null(attacker);
	ch = mg_channel_new(r, NULL);
	assert_non_null(ch);
	rx = mg_call_async(victim, "mg.run_stream",
			   MG_LIST(mg_channel_to_value(ch),
				   MG_LIST(mg_str("sh"), mg_str("-c"),
					   mg_str("head -c 4194304 /dev/zero"))),
			   &err);
	assert_non_null(rx);
	/* the agent's end comes first */
	assert_int_equal(mg_channel_get_data(ch, 60, &peer, &err), 0);
	assert_int_equal(peer->type, MG_SENDER);

	/* we never acknowledge: a window's worth arrives, then it waits */
	while (got < WINDOW) {
		const struct mg_value *d;

		assert_int_equal(mg_channel_get_data(ch, 60, &v, &err), 0);
		d = mg_map_get(v, "data");
		assert_non_null(d);
		got += d->len;
		mg_value_free(v);
	}
	/* the attack: another context acks all of it */
	assert_int_equal(mg_call(attacker, "attack.forge_acks",
				 MG_LIST(mg_value_copy(peer)), &res, &err), 0);
	assert_int_equal(res->i, TOTAL / CHUNK);
	mg_value_free(res);
	/*
	 * Had the agent believed them it would now send the rest (4 MiB) at
	 * once. Nothing more may come: not one chunk within 5 s (an upper
	 * bound for a send that, when the attack works, takes milliseconds).
	 */
	rc = mg_channel_get_data(ch, 5, &v, &err);
	if (rc == 0) {
		const struct mg_value *d = mg_map_get(v, "data");

		fail_msg("forged acks made the agent send %zu bytes past the window "
			 "(%zu received, window %d)", d ? (size_t)d->len : 0, got, WINDOW);
	}
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true(got <= WINDOW + CHUNK);

	/* our own ack lets it go on, to the end */
	mg_channel_set_peer(ch, peer);
	for (;;) {
		struct mg_message *msg = NULL;
		const struct mg_value *d;
		struct mg_value *ack = mg_map();

		mg_map_set(ack, "ack", mg_int((int64_t)got));
		assert_int_equal(mg_channel_send(ch, ack), 0);
		if (got == TOTAL)
			break;
		rc = mg_channel_get(ch, 60, &msg, &err);
		assert_int_equal(rc, 0);
		assert_int_equal(mg_message_value(msg, true, &v, &err), 0);
		mg_message_free(msg);
		d = mg_map_get(v, "data");
		assert_non_null(d);
		got += d->len;
		mg_value_free(v);
	}
	assert_int_equal(mg_receiver_get_data(rx, 60, &res, &err), 0);
	assert_int_equal(mg_map_get(res, "status")->i, 0);
	assert_int_equal(mg_map_get(res, "stdout_bytes")->i, TOTAL);
	mg_value_free(res);
	mg_value_free(peer);
	mg_receiver_free(rx);
	mg_channel_free(ch);
	mg_context_shutdown(victim, true);
	mg_context_shutdown(attacker, true);
	mg_context_unref(victim);
	mg_context_unref(attacker);
	mg_router_unref(r);
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forged_acks_ignored),
	};
	return MG_TEST_RUN("attacks/run_stream", tests);
}
