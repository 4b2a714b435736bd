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

#include "audit/tlog.h"
#include "core/audit.h"
#include "core/context.h"
#include "core/log.h"
#include "core/message.h"
#include "core/router.h"

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

/*
 * A record (a map), or a batch of them in the order the agent served the
 * calls (a list of maps: its records 0, its calls, its checkpoints;
 * agent/audit.c writes them so, docs/audit.md 7). Each line is the
 * master's part (the same for the whole message: it arrived at once)
 * with the agent's map under "claimed", last: the JSON text of the
 * master's part is made once, and the lines of a message go into the
 * file in one write.
 */
static void on_audit(struct mg_message *msg, void *userdata)
{
	struct mg_router *r = userdata;
	struct mg_value *rec = NULL, *claimed = NULL;
	uint32_t id = msg->meta.src_id, n;
	char *head = NULL, **lines = NULL;
	size_t hlen;
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
	    (claimed->type != MG_MAP && claimed->type != MG_LIST)) {
		LOG_WARN("audit: malformed record from context %u: dropped", id);
		goto out;
	}
	head = mg_value_to_json_alloc(rec);
	n = claimed->type == MG_MAP ? 1 : claimed->len;
	lines = calloc(n ? n : 1, sizeof(*lines));
	if (!head || !lines) {
		LOG_ERROR("audit: out of memory: records from context %u lost", id);
		goto out;
	}
	/* {"context_id":..,"received":".."} -> {..,"received":"..","claimed":ITEM} */
	hlen = strlen(head) - 1;
	for (uint32_t i = 0; i < n; i++) {
		const struct mg_value *it = claimed->type == MG_MAP ? claimed : &claimed->items[i];
		char *js;
		size_t jl;

		if (it->type != MG_MAP) {
			LOG_WARN("audit: malformed record from context %u: dropped", id);
			continue;
		}
		js = mg_value_to_json_alloc(it);
		jl = js ? strlen(js) : 0;
		lines[i] = js ? malloc(hlen + jl + 16) : NULL;
		if (!lines[i]) {
			LOG_ERROR("audit: out of memory: record from context %u lost", id);
			free(js);
			continue;
		}
		memcpy(lines[i], head, hlen);
		memcpy(lines[i] + hlen, ",\"claimed\":", 11);
		memcpy(lines[i] + hlen + 11, js, jl);
		memcpy(lines[i] + hlen + 11 + jl, "}", 2);
		free(js);
	}
	pthread_mutex_lock(&r->lock);
	if (r->audit_fd >= 0) {
		for (uint32_t i = 0; i < n; i++)
			if (lines[i])
				audit_chain_put_locked(r, lines[i], strlen(lines[i]), &wb);
		audit_flush(r, &wb);
		pthread_mutex_unlock(&r->lock);
	} else {
		pthread_mutex_unlock(&r->lock);
		for (uint32_t i = 0; i < n; i++)
			if (lines[i])
				LOG_INFO("audit: %s", lines[i]);
	}
	for (uint32_t i = 0; i < n; i++)
		free(lines[i]);
out:
	free(wb.p);
	free(lines);
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
