// SPDX-License-Identifier: MIT
/*
 * audit.c — the master's end of the audit trail (README, Audit).
 *
 * An audited context records each call it serves (agent/audit.c) and
 * sends the record, a map, to context 0 on MG_HANDLE_AUDIT. Here the
 * master writes it as one JSON line. The record is the serving agent's
 * account, except its "context_id": that is set here from the message's
 * src_id, which every router on the way checked against the stream it
 * came in on, so a context cannot file records in another's name.
 * Anyone may send a record (a record grants nothing); what it claims is
 * signed by its verified context id.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include "core/audit.h"
#include "core/log.h"
#include "core/message.h"
#include "core/router.h"

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

static void on_audit(struct mg_message *msg, void *userdata)
{
	struct mg_router *r = userdata;
	struct mg_value *rec = NULL;
	char *json;
	size_t len;

	if (mg_message_is_dead(msg)) {
		mg_message_free(msg);
		return;
	}
	if (mg_message_value(msg, false, &rec, NULL) < 0 || rec->type != MG_MAP) {
		LOG_WARN("audit: malformed record from context %u: dropped", msg->meta.src_id);
		goto out;
	}
	mg_map_set(rec, "context_id", mg_int(msg->meta.src_id));
	/* No file, and the log would drop it: no text to make. (A file
	 * set meanwhile gets the next record.) */
	if (__atomic_load_n(&r->audit_fd, __ATOMIC_RELAXED) < 0 && mg_log_get_level() > MG_LOG_INFO)
		goto out;
	json = mg_value_to_json_alloc(rec);
	if (!json) {
		LOG_ERROR("audit: out of memory: record from context %u lost", msg->meta.src_id);
		goto out;
	}
	len = strlen(json);
	pthread_mutex_lock(&r->lock);
	if (r->audit_fd >= 0) {
		audit_write(r->audit_fd, json, len);
		pthread_mutex_unlock(&r->lock);
	} else {
		pthread_mutex_unlock(&r->lock);
		LOG_INFO("audit: %s", json);
	}
	free(json);
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
	if (r->audit_fd >= 0)
		close(r->audit_fd);
	r->audit_fd = -1;
}

int mg_router_audit_to_file(struct mg_router *r, const char *path, struct mg_error *err)
{
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
	pthread_mutex_lock(&r->lock);
	old = r->audit_fd;
	r->audit_fd = fd;
	pthread_mutex_unlock(&r->lock);
	if (old >= 0)
		close(old);
	return 0;
}
