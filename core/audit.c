// SPDX-License-Identifier: MIT
/*
 * audit.c — the master's end of the audit trail (README, Audit).
 *
 * An audited context records each call it serves (agent/audit.c) and
 * sends the records, a map or a batch of them (a list of maps), to
 * context 0 on MG_HANDLE_AUDIT. Here the master writes each as one JSON
 * line.
 *
 * Records are taken only from contexts this master started and knows are
 * audited (mg_context_is_audited): any other context could otherwise fill
 * the trail with calls that never ran. The message's src_id is verified
 * (every router on the way checked it against the stream it came in on),
 * so the line opens with what the master knows itself: the context's id,
 * its name, the chain of contexts it was started through, whether it is
 * privileged, and when the record arrived. What the agent says (time,
 * host, uid, function, digest, status...) follows under "claimed": its
 * own account, which a compromised context could falsify for itself but
 * never put in another's name. Refusals are logged, not one line each: a
 * flood from a hostile child costs a line at every power of two.
 *
 * The file is chained (docs/audit.md): each router writes its own log
 * into it, every line ending in its log's name, its index and the RFC
 * 6962 tree hash so far (audit/tlog.c), and signed checkpoints of it
 * (the master's key: the first line, every TLOG_CHECKPOINT_RECORDS, the
 * first line TLOG_CHECKPOINT_SECONDS after the last checkpoint, and when
 * the file is closed). An agent's checkpoints arrive as records like any
 * other ("checkpoint" under "claimed"): written into this chain, they are
 * witnessed, and the agent's log can no longer be cut or rewritten below
 * them unnoticed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>

#include <nettle/sha2.h>

#include "audit/tlog.h"
#include "core/audit.h"
#include "core/context.h"
#include "core/log.h"
#include "core/message.h"
#include "core/router.h"
#include "core/value.h"

/*
 * Denials and refusals go into the chain at most this many at once, then
 * this many a second (a token bucket): a hostile child that sends
 * forged messages in a loop costs the disk about one line a second. The
 * ones not written are counted, and the count goes into the chain with
 * the next one written ("unrecorded_before") and when the file is closed
 * ({"denials_unrecorded": N}): a flood is itself on record.
 */
#define AUDIT_DENIAL_BURST 32
#define AUDIT_DENIAL_PER_S 1

/* A router's chain in its audit file. */
struct audit_chain {
	struct tlog_tree tree;
	struct tlog_key key;
	bool signing;			/* key loaded */
	char origin[TLOG_NAME_MAX + 1];
	uint64_t since_cp, ncp;
	struct timespec last_cp;
	/* Denials: the bucket, when it was last filled, what was not written. */
	double tokens;
	struct timespec refill;
	uint64_t unrecorded;
};

/* Append line and a newline in one writev: O_APPEND keeps lines whole. */
static void audit_write(int fd, char *line, size_t len)
{
	struct iovec iov[2] = { { line, len }, { "\n", 1 } };
	ssize_t n;

	do
		n = writev(fd, iov, 2);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		LOG_ERROR("audit: cannot write the audit file: %s", strerror(errno));
	else if ((size_t)n < len + 1)
		LOG_ERROR("audit: short write to the audit file (%zd of %zu bytes)", n, len + 1);
}

/*
 * The chain of names from the master down to ctx, "a/b/c": each id's
 * parent is the context its id was allocated for (r->allocations).
 * Caller holds r->lock.
 */
static struct mg_value *chain_locked(struct mg_router *r, uint32_t id)
{
	uint32_t ids[32];
	size_t n = 0;
	struct mg_value *list = mg_list();

	while (id && n < 32) {
		uintptr_t up = (uintptr_t)idmap_get(&r->allocations, id);

		ids[n++] = id;
		if (!up)
			break;
		id = (uint32_t)(up - 1);
	}
	while (list && n--) {
		struct mg_context *c = idmap_get(&r->contexts, ids[n]);
		char unknown[32];

		snprintf(unknown, sizeof(unknown), "context %u", ids[n]);
		mg_list_append(list, mg_str(c ? c->name : unknown));
	}
	return list;
}

/* The master's own part of a record from id, or NULL: not audited. */
static struct mg_value *known_locked(struct mg_router *r, uint32_t id)
{
	struct mg_context *ctx = idmap_get(&r->contexts, id);
	struct timespec ts;
	struct tm tm;
	char stamp[64];
	struct mg_value *rec;

	if (!mg_context_is_audited(ctx))
		return NULL;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, (long)(ts.tv_nsec / 1000) % 1000000);
	rec = mg_map();
	if (!rec)
		return NULL;
	mg_map_set(rec, "context_id", mg_int(id));
	mg_map_set(rec, "context", mg_str(ctx->name));
	mg_map_set(rec, "chain", chain_locked(r, id));
	mg_map_set(rec, "privileged", mg_bool(mg_context_is_privileged(ctx)));
	mg_map_set(rec, "received", mg_str(stamp));
	return rec;
}

/*
 * Lines gathered for one write (a batch of records from one agent: one
 * write under O_APPEND instead of one a line, docs/audit.md 7).
 */
struct wbuf {
	char *p;
	size_t n, cap;
	bool failed;
};

/* line and a newline into wb, or straight into the file when wb is NULL. */
static void audit_put(struct mg_router *r, struct wbuf *wb, char *line, size_t len)
{
	if (!wb) {
		audit_write(r->audit_fd, line, len);
		return;
	}
	if (wb->n + len + 1 > wb->cap) {
		size_t cap = (wb->n + len + 1) * 2;
		char *p = realloc(wb->p, cap);

		if (!p) {
			wb->failed = true;
			LOG_ERROR("audit: out of memory: a record lost");
			return;
		}
		wb->p = p;
		wb->cap = cap;
	}
	memcpy(wb->p + wb->n, line, len);
	wb->p[wb->n + len] = '\n';
	wb->n += len + 1;
}

/* Write what wb holds in one write (O_APPEND: whole, after the others'). */
static void audit_flush(struct mg_router *r, struct wbuf *wb)
{
	size_t off = 0;

	while (off < wb->n) {
		ssize_t k = write(r->audit_fd, wb->p + off, wb->n - off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			LOG_ERROR("audit: cannot write the audit file: %s",
				  k < 0 ? strerror(errno) : "short write");
			break;
		}
		off += (size_t)k;
	}
	wb->n = 0;
}

/* Sign a checkpoint of the router's chain into its file (or wb). Caller
 * holds r->lock. */
static void audit_checkpoint_wb_locked(struct mg_router *r, bool final, struct wbuf *wb)
{
	struct audit_chain *c = r->audit_chain;
	char note[TLOG_NOTE_MAX], *line;
	size_t len;

	if (!c || !c->signing || r->audit_fd < 0)
		return;
	len = tlog_checkpoint_sign(&c->key, c->origin, &c->tree, final, note);
	line = tlog_checkpoint_line(note, len);
	if (line)
		audit_put(r, wb, line, strlen(line));
	free(line);
	c->since_cp = 0;
	c->ncp++;
	clock_gettime(CLOCK_MONOTONIC, &c->last_cp);
}

static void audit_checkpoint_locked(struct mg_router *r, bool final)
{
	audit_checkpoint_wb_locked(r, final, NULL);
}

/* Chain json (a record) into the file (or wb), and sign when it is time.
 * Caller holds r->lock. */
static void audit_chain_put_locked(struct mg_router *r, char *json, size_t len, struct wbuf *wb)
{
	struct audit_chain *c = r->audit_chain;
	struct timespec now;
	char *line;

	if (!c) {
		audit_put(r, wb, json, len);
		return;
	}
	line = tlog_chain_line(&c->tree, c->origin, json, len);
	if (!line) {
		LOG_ERROR("audit: out of memory: a record lost");
		return;
	}
	audit_put(r, wb, line, strlen(line));
	free(line);
	c->since_cp++;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (c->ncp == 0 || c->since_cp >= TLOG_CHECKPOINT_RECORDS ||
	    now.tv_sec - c->last_cp.tv_sec >= TLOG_CHECKPOINT_SECONDS)
		audit_checkpoint_wb_locked(r, false, wb);
}

static void audit_chain_write_locked(struct mg_router *r, char *json, size_t len)
{
	audit_chain_put_locked(r, json, len, NULL);
}

/* Now, as the records' "received". */
static void audit_stamp(char stamp[64])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (long)(ts.tv_nsec / 1000) % 1000000);
}

/* The count of denials not written, as a record of its own (the file
 * closes). Caller holds r->lock. */
static void audit_unrecorded_locked(struct mg_router *r)
{
	struct audit_chain *c = r->audit_chain;
	char json[160], stamp[64];

	if (!c || !c->unrecorded || r->audit_fd < 0)
		return;
	audit_stamp(stamp);
	snprintf(json, sizeof(json), "{\"denials_unrecorded\":%llu,\"received\":\"%s\"}",
		 (unsigned long long)c->unrecorded, stamp);
	c->unrecorded = 0;
	audit_chain_write_locked(r, json, strlen(json));
}

void audit_denial(struct mg_router *r, bool kernel, const char *why, uint32_t from,
		  uint32_t src_id, uint32_t auth_id, uint32_t dst_id, uint32_t handle)
{
	struct audit_chain *c;
	struct mg_value *rec;
	struct timespec now;
	char stamp[64], *json;
	bool take;

	if (!r || r->id != 0 || __atomic_load_n(&r->audit_fd, __ATOMIC_RELAXED) < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&r->lock);
	c = r->audit_chain;
	if (!c || r->audit_fd < 0) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	c->tokens += ((double)(now.tv_sec - c->refill.tv_sec) +
		      (double)(now.tv_nsec - c->refill.tv_nsec) / 1e9) * AUDIT_DENIAL_PER_S;
	if (c->tokens > AUDIT_DENIAL_BURST)
		c->tokens = AUDIT_DENIAL_BURST;
	c->refill = now;
	take = c->tokens >= 1;
	if (!take) {
		c->unrecorded++;
		pthread_mutex_unlock(&r->lock);
		return;
	}
	c->tokens -= 1;
	audit_stamp(stamp);
	rec = mg_map();
	mg_map_set(rec, kernel ? "denied" : "refused", mg_str(why));
	mg_map_set(rec, "by", mg_str(kernel ? "kernel" : "router"));
	/* Who: the context behind the channel it came in on (verified),
	 * whatever ids it wrote into the message. */
	mg_map_set(rec, "context_id", mg_int(from));
	mg_map_set(rec, "chain", chain_locked(r, from));
	mg_map_set(rec, "received", mg_str(stamp));
	mg_map_set(rec, "src_id", mg_int(src_id));
	mg_map_set(rec, "auth_id", mg_int(auth_id));
	mg_map_set(rec, "dst_id", mg_int(dst_id));
	mg_map_set(rec, "handle", mg_int(handle));
	if (c->unrecorded)
		mg_map_set(rec, "unrecorded_before", mg_int((int64_t)c->unrecorded));
	json = rec ? mg_value_to_json_alloc(rec) : NULL;
	mg_value_free(rec);
	if (json) {
		c->unrecorded = 0;
		audit_chain_write_locked(r, json, strlen(json));
	} else {
		c->unrecorded++;
	}
	pthread_mutex_unlock(&r->lock);
	free(json);
}

/*
 * A record from a context that is not audited: logged, and chained into
 * the file as the master's own record (an auditor sees that something
 * tried), both at every power of two of the count so a flood costs a few
 * lines.
 */
static void refused(struct mg_router *r, uint32_t id)
{
	uint64_t n = __atomic_add_fetch(&r->audit_refused, 1, __ATOMIC_RELAXED);
	char json[256], stamp[64];
	struct timespec ts;
	struct tm tm;

	if ((n & (n - 1)) != 0)
		return;
	LOG_WARN("audit: refused a record from context %u: it is not an audited "
		 "context of this master (%llu refused so far)", id, (unsigned long long)n);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, (long)(ts.tv_nsec / 1000) % 1000000);
	snprintf(json, sizeof(json), "{\"refused\":\"a record from a context that is not "
		 "audited\",\"context_id\":%u,\"received\":\"%s\",\"refused_so_far\":%llu}",
		 id, stamp, (unsigned long long)n);
	pthread_mutex_lock(&r->lock);
	if (r->audit_fd >= 0)
		audit_chain_write_locked(r, json, strlen(json));
	pthread_mutex_unlock(&r->lock);
}

/* --- an agent's record text, taken as it is ----------------------------- */

/* Deepest nesting of an agent's record (its own are 2 deep). */
#define AUDIT_JSON_DEPTH 16

struct jscan {
	const unsigned char *p, *end;
};

static bool jscan_string(struct jscan *j)
{
	if (j->p >= j->end || *j->p != '"')
		return false;
	j->p++;
	while (j->p < j->end) {
		unsigned char c = *j->p;
		size_t k;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			j->p++;
			continue;
		}
		if (c == '"') {
			j->p++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			if (j->end - j->p < 2)
				return false;
			c = j->p[1];
			j->p += 2;
			if (c == 'u') {
				unsigned v = 0;

				if (j->end - j->p < 4)
					return false;
				for (int i = 0; i < 4; i++) {
					unsigned char h = j->p[i];

					v = v << 4 | (unsigned)(h >= '0' && h <= '9' ? h - '0' :
								h >= 'a' && h <= 'f' ? h - 'a' + 10 :
								h >= 'A' && h <= 'F' ? h - 'A' + 10 : 99);
					if (v > 0xffff)
						return false;
				}
				/* \u0000: the tool's reader refuses it. */
				if (!v)
					return false;
				j->p += 4;
			} else if (!c || !strchr("\"\\/bfnrt", c)) {
				return false;
			}
			continue;
		}
		k = value_utf8_len(j->p, (size_t)(j->end - j->p));
		if (!k)
			return false;
		j->p += k;
	}
	return false;
}

static bool jscan_digits(struct jscan *j)
{
	const unsigned char *p = j->p;

	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > p;
}

static bool jscan_number(struct jscan *j)
{
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (!(j->p < j->end && *j->p >= '1' && *j->p <= '9') || !jscan_digits(j))
		return false;
	if (j->p < j->end && *j->p == '.' && (j->p++, !jscan_digits(j)))
		return false;
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!jscan_digits(j))
			return false;
	}
	return true;
}

static bool jscan_word(struct jscan *j, const char *w, size_t n)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n))
		return false;
	j->p += n;
	return true;
}

static bool jscan_value(struct jscan *j, int depth)
{
	bool map;

	if (j->p >= j->end)
		return false;
	switch (*j->p) {
	case '"':
		return jscan_string(j);
	case 't':
		return jscan_word(j, "true", 4);
	case 'f':
		return jscan_word(j, "false", 5);
	case 'n':
		return jscan_word(j, "null", 4);
	case '{':
	case '[':
		break;
	default:
		return jscan_number(j);
	}
	if (depth >= AUDIT_JSON_DEPTH)
		return false;
	map = *j->p++ == '{';
	if (j->p < j->end && *j->p == (map ? '}' : ']')) {
		j->p++;
		return true;
	}
	for (;;) {
		if (map && !(jscan_string(j) && j->p < j->end && *j->p++ == ':'))
			return false;
		if (!jscan_value(j, depth + 1) || j->p >= j->end)
			return false;
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		return *j->p++ == (map ? '}' : ']');
	}
}

/*
 * Whether text[0, n) is exactly one JSON object (RFC 8259) and nothing
 * else: compact (no whitespace outside strings, so no newline anywhere),
 * strings valid UTF-8 without control characters or \u0000, at most
 * AUDIT_JSON_DEPTH deep. An agent's record goes into the master's line as
 * the bytes it sent, under "claimed": this is what keeps it there. It
 * cannot close "claimed" early and go on with members of the master's
 * part (a second "context", say, which a reader taking the last of two
 * would believe), nor end the line and start one of its own.
 */
static bool audit_json_object(const char *text, size_t n)
{
	struct jscan j = { (const unsigned char *)text, (const unsigned char *)text + n };

	return n >= 2 && text[0] == '{' && jscan_value(&j, 0) && j.p == j.end;
}

/* Room for more bytes in wb; false (and a record lost) without memory. */
static bool wb_room(struct wbuf *wb, size_t more)
{
	size_t cap;
	char *p;

	if (wb->n + more <= wb->cap)
		return true;
	cap = wb->cap ? wb->cap : 16384;
	while (cap < wb->n + more)
		cap *= 2;
	p = realloc(wb->p, cap);
	if (!p) {
		wb->failed = true;
		LOG_ERROR("audit: out of memory: a record lost");
		return false;
	}
	wb->p = p;
	wb->cap = cap;
	return true;
}

/*
 * One piece of a message: an agent's record (or checkpoint) as JSON text,
 * either the line it sent or the text of a map made here (old agents).
 */
struct piece {
	const char *p;
	size_t n;
	char *owned;
};

/*
 * The master's line for each piece, in wb: the master's part (head, its
 * closing brace left off), "claimed" and the agent's text, then (with a
 * chain) the suffix and a checkpoint when one is due. The leaf hash of
 * every line starts with the same bytes (0x00 and the master's part):
 * hashed once a message (pre), each line's hash goes on from a copy.
 * Caller holds r->lock; r->audit_fd >= 0.
 */
static void audit_lines_locked(struct mg_router *r, struct wbuf *wb, const char *head,
			       size_t hlen, const struct piece *pc, uint32_t n)
{
	static const char claimed[] = ",\"claimed\":";
	struct audit_chain *c = r->audit_chain;
	struct sha256_ctx pre;
	uint8_t zero = 0;

	sha256_init(&pre);
	sha256_update(&pre, 1, &zero);
	sha256_update(&pre, hlen, (const uint8_t *)head);
	sha256_update(&pre, sizeof(claimed) - 1, (const uint8_t *)claimed);
	for (uint32_t i = 0; i < n; i++) {
		size_t start = wb->n, len = hlen + sizeof(claimed) - 1 + pc[i].n + 1;
		struct timespec now;
		struct sha256_ctx h;
		uint8_t leaf[TLOG_HASH];

		if (!pc[i].p || !wb_room(wb, len + TLOG_SUFFIX_MAX + 1))
			continue;
		memcpy(wb->p + start, head, hlen);
		memcpy(wb->p + start + hlen, claimed, sizeof(claimed) - 1);
		memcpy(wb->p + start + hlen + sizeof(claimed) - 1, pc[i].p, pc[i].n);
		wb->p[start + len - 1] = '}';
		if (c) {
			h = pre;
			sha256_update(&h, pc[i].n, (const uint8_t *)pc[i].p);
			sha256_update(&h, 1, (const uint8_t *)"}");
			sha256_digest(&h, TLOG_HASH, leaf);
			len = tlog_chain_suffix(&c->tree, c->origin, leaf, wb->p + start, len);
		}
		wb->p[start + len] = '\n';
		wb->n = start + len + 1;
		if (!c)
			continue;
		c->since_cp++;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (c->ncp == 0 || c->since_cp >= TLOG_CHECKPOINT_RECORDS ||
		    now.tv_sec - c->last_cp.tv_sec >= TLOG_CHECKPOINT_SECONDS)
			audit_checkpoint_wb_locked(r, false, wb);
	}
}

/*
 * A record (a map), or a batch of them in the order the agent served the
 * calls: agent/audit.c sends one string of JSON lines (its records 0, its
 * calls, its checkpoints, docs/audit.md 7), older agents a list of maps.
 * Each line is the master's part (the same for the whole message: it
 * arrived at once) with the agent's record under "claimed", last: the
 * agent's own bytes, once they are checked to be one JSON object
 * (audit_json_object), or the JSON text of its map. The lines of a
 * message go into the file in one write.
 */
static void on_audit(struct mg_message *msg, void *userdata)
{
	struct mg_router *r = userdata;
	struct mg_value *rec = NULL, *claimed = NULL;
	uint32_t id = msg->meta.src_id, n = 0, items;
	char *head = NULL;
	struct piece *pc = NULL;
	size_t hlen, cap = 0;
	struct wbuf wb = { 0 };

	if (mg_message_is_dead(msg)) {
		mg_message_free(msg);
		return;
	}
	pthread_mutex_lock(&r->lock);
	rec = known_locked(r, id);
	pthread_mutex_unlock(&r->lock);
	if (!rec) {
		refused(r, id);
		goto out;
	}
	/* No file, and the log would drop it: no text to make. (A file
	 * set meanwhile gets the next record.) */
	if (__atomic_load_n(&r->audit_fd, __ATOMIC_RELAXED) < 0 && mg_log_get_level() > MG_LOG_INFO)
		goto out;
	if (mg_message_value(msg, false, &claimed, NULL) < 0 ||
	    (claimed->type != MG_MAP && claimed->type != MG_LIST && claimed->type != MG_STR)) {
		LOG_WARN("audit: malformed record from context %u: dropped", id);
		goto out;
	}
	head = mg_value_to_json_alloc(rec);
	if (!head) {
		LOG_ERROR("audit: out of memory: records from context %u lost", id);
		goto out;
	}
	/* {"context_id":..,"received":".."} -> {..,"received":"..","claimed":ITEM} */
	hlen = strlen(head) - 1;
	items = claimed->type == MG_LIST ? claimed->len : 1;
	for (uint32_t i = 0; i < items; i++) {
		const struct mg_value *it = claimed->type == MG_LIST ? &claimed->items[i] : claimed;
		const char *p = it->str, *end = it->str + it->len;

		if (it->type != MG_MAP && it->type != MG_STR) {
			LOG_WARN("audit: malformed record from context %u: dropped", id);
			continue;
		}
		do {
			const char *nl = it->type == MG_STR ? memchr(p, '\n', (size_t)(end - p)) : NULL;
			struct piece x = { 0 };

			if (it->type == MG_MAP) {
				x.owned = mg_value_to_json_alloc(it);
				if (!x.owned)
					LOG_ERROR("audit: out of memory: record from context %u lost", id);
				x.p = x.owned;
				x.n = x.owned ? strlen(x.owned) : 0;
			} else {
				x.p = p;
				x.n = (size_t)((nl ? nl : end) - p);
				if (!audit_json_object(x.p, x.n)) {
					LOG_WARN("audit: malformed record from context %u: dropped", id);
					x.p = NULL;
				}
				p = nl ? nl + 1 : end;
			}
			if (n == cap) {
				struct piece *more = realloc(pc, (cap = cap ? 2 * cap : 64) * sizeof(*pc));

				if (!more) {
					free(x.owned);
					LOG_ERROR("audit: out of memory: records from context %u lost", id);
					goto out;
				}
				pc = more;
			}
			pc[n++] = x;
		} while (it->type == MG_STR && p < end);
	}
	pthread_mutex_lock(&r->lock);
	if (r->audit_fd >= 0) {
		audit_lines_locked(r, &wb, head, hlen, pc, n);
		audit_flush(r, &wb);
		pthread_mutex_unlock(&r->lock);
	} else {
		pthread_mutex_unlock(&r->lock);
		for (uint32_t i = 0; i < n; i++)
			if (pc[i].p)
				LOG_INFO("audit: %.*s,\"claimed\":%.*s}", (int)hlen, head, (int)pc[i].n,
					 pc[i].p);
	}
out:
	for (uint32_t i = 0; i < n; i++)
		free(pc[i].owned);
	free(pc);
	free(wb.p);
	free(head);
	mg_value_free(claimed);
	mg_value_free(rec);
	mg_message_free(msg);
}

void audit_router_init(struct mg_router *r)
{
	MG_OPTS(mg_handler_opts, opts, .handle = MG_HANDLE_AUDIT);

	r->audit_fd = -1;
	mg_router_add_handler(r, on_audit, r, &opts);
}

void audit_router_env(struct mg_router *r)
{
	struct mg_error err = MG_ERROR_INIT;
	const char *path = getenv("MITOGEN_AUDIT_FILE");

	if (path && *path && mg_router_audit_to_file(r, path, &err) < 0)
		LOG_ERROR("MITOGEN_AUDIT_FILE: %s", err.message);
}

void audit_router_free(struct mg_router *r)
{
	audit_unrecorded_locked(r);
	if (r->audit_chain && r->audit_chain->since_cp)
		audit_checkpoint_locked(r, true);
	if (r->audit_fd >= 0)
		close(r->audit_fd);
	r->audit_fd = -1;
	if (r->audit_chain)
		explicit_bzero(&r->audit_chain->key, sizeof(r->audit_chain->key));
	free(r->audit_chain);
	r->audit_chain = NULL;
}

/*
 * A new chain for a file: this router's own log in it, named after this
 * host, uid, and when and by which process it was opened (several masters
 * may share a file: each chain is checked on its own). Without a key the
 * lines are still chained, but nothing is signed: said once.
 */
static struct audit_chain *audit_chain_new(void)
{
	static unsigned seq;
	struct audit_chain *c = calloc(1, sizeof(*c));
	char name[TLOG_NAME_MAX + 1], why[512];
	struct timespec ts;
	struct tm tm;

	if (!c)
		return NULL;
	tlog_key_name(name);
	c->tokens = AUDIT_DENIAL_BURST;
	clock_gettime(CLOCK_MONOTONIC, &c->refill);
	c->signing = tlog_key_load(&c->key, name, why, sizeof(why)) == 0;
	if (!c->signing)
		LOG_WARN("audit: the audit file's checkpoints cannot be signed: %s", why);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(c->origin, sizeof(c->origin), "%.130s/master-%04d%02d%02dT%02d%02d%02dZ-%d-%u",
		 name, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, (int)getpid(), __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
	return c;
}

int mg_router_audit_to_file(struct mg_router *r, const char *path, struct mg_error *err)
{
	struct audit_chain *chain;
	int fd, old;

	if (!r || !path || !*path) {
		error_set(err, MG_ERR_NONE, EINVAL, "audit file: no router or no path");
		return -EINVAL;
	}
	if (r->id != 0 || r->booting) {
		error_set(err, MG_ERR_NONE, EINVAL,
			  "audit file: records go to the master; this is context %u", r->id);
		return -EINVAL;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;

		error_set(err, MG_ERR_NONE, e, "audit file %s: %s", path, strerror(e));
		return -e;
	}
	chain = audit_chain_new();
	if (!chain) {
		close(fd);
		error_set(err, MG_ERR_NONE, ENOMEM, "audit file %s: %s", path, strerror(ENOMEM));
		return -ENOMEM;
	}
	pthread_mutex_lock(&r->lock);
	/* The old file's chain ends with a final checkpoint. */
	audit_unrecorded_locked(r);
	if (r->audit_chain && r->audit_chain->since_cp)
		audit_checkpoint_locked(r, true);
	old = r->audit_fd;
	r->audit_fd = fd;
	if (r->audit_chain)
		explicit_bzero(&r->audit_chain->key, sizeof(r->audit_chain->key));
	free(r->audit_chain);
	r->audit_chain = chain;
	pthread_mutex_unlock(&r->lock);
	if (old >= 0)
		close(old);
	return 0;
}
