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

/* A router's chain in its audit file. */
struct audit_chain {
	struct tlog_tree tree;
	struct tlog_key key;
	bool signing;			/* key loaded */
	char origin[TLOG_NAME_MAX + 1];
	uint64_t since_cp, ncp;
	struct timespec last_cp;
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

/* Sign a checkpoint of the router's chain into its file. Caller holds r->lock. */
static void audit_checkpoint_locked(struct mg_router *r, bool final)
{
	struct audit_chain *c = r->audit_chain;
	char note[TLOG_NOTE_MAX], *line;
	size_t len;

	if (!c || !c->signing || r->audit_fd < 0)
		return;
	len = tlog_checkpoint_sign(&c->key, c->origin, &c->tree, final, note);
	line = tlog_checkpoint_line(note, len);
	if (line)
		audit_write(r->audit_fd, line, strlen(line));
	free(line);
	c->since_cp = 0;
	c->ncp++;
	clock_gettime(CLOCK_MONOTONIC, &c->last_cp);
}

/* Chain json (a record) into the file, and sign when it is time. Caller
 * holds r->lock. */
static void audit_chain_write_locked(struct mg_router *r, char *json, size_t len)
{
	struct audit_chain *c = r->audit_chain;
	struct timespec now;
	char *line;

	if (!c) {
		audit_write(r->audit_fd, json, len);
		return;
	}
	line = tlog_chain_line(&c->tree, c->origin, json, len);
	if (!line) {
		LOG_ERROR("audit: out of memory: a record lost");
		return;
	}
	audit_write(r->audit_fd, line, strlen(line));
	free(line);
	c->since_cp++;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (c->ncp == 0 || c->since_cp >= TLOG_CHECKPOINT_RECORDS ||
	    now.tv_sec - c->last_cp.tv_sec >= TLOG_CHECKPOINT_SECONDS)
		audit_checkpoint_locked(r, false);
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

/* One record (claimed, taken) from id, with rec the master's part
 * (taken): into the file, or the log at INFO. */
static void audit_one(struct mg_router *r, uint32_t id, struct mg_value *rec,
		      struct mg_value *claimed)
{
	char *json;
	size_t len;

	mg_map_set(rec, "claimed", claimed);
	json = rec ? mg_value_to_json_alloc(rec) : NULL;
	mg_value_free(rec);
	if (!json) {
		LOG_ERROR("audit: out of memory: record from context %u lost", id);
		return;
	}
	len = strlen(json);
	pthread_mutex_lock(&r->lock);
	if (r->audit_fd >= 0) {
		audit_chain_write_locked(r, json, len);
		pthread_mutex_unlock(&r->lock);
	} else {
		pthread_mutex_unlock(&r->lock);
		LOG_INFO("audit: %s", json);
	}
	free(json);
}

/*
 * A record (a map), or a batch of them in the order the agent served the
 * calls (a list of maps: its records 0, its calls, its checkpoints;
 * agent/audit.c writes them so, docs/audit.md 7).
 */
static void on_audit(struct mg_message *msg, void *userdata)
{
	struct mg_router *r = userdata;
	struct mg_value *rec = NULL, *claimed = NULL;
	uint32_t id = msg->meta.src_id;

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
		mg_value_free(claimed);
		goto out;
	}
	if (claimed->type == MG_MAP) {
		audit_one(r, id, rec, claimed);
		rec = NULL;
		goto out;
	}
	for (uint32_t i = 0; i < claimed->len; i++) {
		struct mg_value *mine;

		if (claimed->items[i].type != MG_MAP) {
			LOG_WARN("audit: malformed record from context %u: dropped", id);
			continue;
		}
		if (i + 1 < claimed->len) {
			pthread_mutex_lock(&r->lock);
			mine = known_locked(r, id);
			pthread_mutex_unlock(&r->lock);
		} else {
			mine = rec;
			rec = NULL;
		}
		audit_one(r, id, mine, mg_value_copy(&claimed->items[i]));
	}
	mg_value_free(claimed);
out:
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
