/* SPDX-License-Identifier: MIT */
/*
 * fanout.h — the fan-out of a transfer (files/fanout.c), private to
 * files/: the hops a context sends to, the data chunks the messages to
 * every hop share, and the sending loop. transfer.c drives it for a push,
 * for the send service (one hop: the caller) and for a relay (recv);
 * pull.c borrows its small helpers (files_now, files_send_to, files_chunk_view).
 */
#ifndef FILES_FANOUT_H
#define FILES_FANOUT_H

#include "files/files.h"

enum hop_state { HOP_WAIT, HOP_READY, HOP_DONE, HOP_LOST };

struct hop {
	uint32_t id;
	struct mg_context *ctx;
	struct mg_receiver *call_rx;
	struct mg_value *ids;		/* destination ids behind it */
	uint32_t data_handle;
	struct mg_value *have;
	uint64_t acked;
	/* a source's: data bytes sent to it, its window, its next chunk */
	uint64_t sent, window;
	size_t next;
	enum hop_state state;
	struct mg_value *results;	/* [[id, errno, message, bytes], ...] */
	char why[512];
};

struct fanout {
	struct mg_router *r;
	struct mg_receiver *down_rx;	/* "r" and "a" from hops */
	struct mg_select *sel;
	struct hop *hops;
	size_t nhops;
	struct mg_value *results;	/* ids failed here */
	uint64_t sent;
	uint64_t window, window_max;
	uint64_t acked_min;
};

/* Seconds on the monotonic clock. */
double files_now(void);
/* One destination's result, [id, errno, message, bytes] (why NULL: ""). */
struct mg_value *files_result_value(uint32_t id, int errnum, const char *why, uint64_t bytes);
/* v (taken) to handle in context dst. Returns 0 or -errno. */
int files_send_to(struct mg_router *r, uint32_t dst, uint32_t handle, struct mg_value *v);

/* An empty fan-out whose down_rx takes messages from respondent only
 * (NULL: from any context); window_max 0: MG_FILES_WINDOW_MAX. Returns 0
 * or -ENOMEM (what was made is freed by fanout_free). */
int fanout_init(struct fanout *f, struct mg_router *r, struct mg_context *respondent,
		size_t window_max);
/* Free what f holds (after fanout_init, a failed one too) and clear it. */
void fanout_free(struct fanout *f);
/*
 * Call recv in the next hop towards each of ids (plan: the map to send,
 * borrowed; each hop gets a copy with its own "ids" and our "ctl").
 */
void fanout_start(struct fanout *f, const uint32_t *ids, size_t n,
		  const struct mg_value *plan);
/* Move f->acked_min up to the least a ready hop acknowledged (f->sent
 * when none is ready), growing the window, up to window_max, by as much. */
void fanout_update_acks(struct fanout *f);
/* Whether pred holds for every hop. */
bool fanout_all(const struct fanout *f, bool (*pred)(const struct hop *));
/* A hop that said it is ready, or finished, or was lost. */
bool hop_not_waiting(const struct hop *h);
/* A hop whose call returned its results, or that was lost. */
bool hop_finished(const struct hop *h);

/* Data (raw msgpack) to every ready hop. */
/*
 * An encoded data chunk that the messages carrying it to every hop share
 * (mg_message_new_shared) instead of a copy each: the source's cache
 * holds a reference, each message one; at a relay, the message it came
 * in is the chunk. Freed with its last reference, from whichever thread
 * drops it (the broker's, once a message is written).
 */
struct chunk_buf {
	unsigned refs;			/* atomic */
	void *raw;
	size_t len;
	struct mg_message *msg;		/* the chunk's own message, or NULL: raw is malloc'd */
};

/* Drop a reference to a struct chunk_buf (arg), freeing it with the last
 * (mg_message_new_shared's release callback). */
void chunk_buf_put(void *arg);
/* Data to every hop still live: shared from cb, else (cb NULL) a copy each. */
void fanout_send_all(struct fanout *f, struct chunk_buf *cb, const void *data, size_t len);
/* Tell every hop still waiting for data that there is none coming. */
void fanout_kill(struct fanout *f, const char *why);
/* Every result behind us: theirs, lost hops' ids, ours. Taken. */
struct mg_value *fanout_results(struct fanout *f);
/* Min over ready hops of have[i] (in chunks). */
uint32_t fanout_have(const struct fanout *f, size_t i, uint32_t mine);
/* Wait for one message and give it to the fan-out; other messages go
 * to other (NULL: dropped). Returns 0, -ETIMEDOUT. */
int fanout_pump(struct fanout *f, double timeout, void (*other)(struct mg_message *, void *),
		void *arg);

/* --- the sending loop ------------------------------------------------------ */

struct source {
	const char *root;
	const struct manifest *m;
	mg_files_progress_fn progress;
	void *progress_data;
	size_t ndest;
	double last_progress;
	char why[512];
};

/* Tell s->progress (if set) how far the transfer is: at most every 0.1 s,
 * unless last. */
void source_progress(struct fanout *f, struct source *s, bool last);
/*
 * Send every file of s->m from what the hops already have, then "e", to
 * each hop within its own window: it starts at FILES_WINDOW_START and
 * grows by what each of the hop's acknowledgements frees, up to
 * f->window_max, so a hop that is slower for a while holds back only
 * itself. A hop silent for FILES_IDLE_TIMEOUT while it has data
 * unacknowledged is given up (told with a dead message); the others
 * carry on. Returns 0, or -errno with s->why (the source could not be
 * read: every hop was told, with a dead message).
 */
int source_run(struct fanout *f, struct source *s);

/*
 * A data message, ["d", ENTRY, OFFSET, BYTES] as source_data_get encodes
 * it, read where it lies: the chunk's bytes are written from the message
 * itself. Decoding it would copy every 256 KiB chunk once more at every
 * hop (perf of a 32-host push: 3 % of all CPU, the agents' largest cost
 * after SHA-256). False for any other shape or encoding, trailing bytes
 * included; the caller then decodes the message whole, as before.
 */
bool files_chunk_view(const void *raw, size_t len, uint32_t *entry, uint64_t *off,
		const void **data, size_t *dlen);

#endif
