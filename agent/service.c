// SPDX-License-Identifier: MIT
/*
 * service.c — services (include/mitogen/service.h): the registry of named
 * services and their methods, the CALL_SERVICE (110) handler, the bounded
 * worker pool that runs methods, and the caller's side
 * (mg_call_service*). It knows nothing about what a service does: the
 * library's own (files/) registers itself through service_agent_init().
 *
 * Why CALL_SERVICE is safe to serve: the handler itself accepts every
 * message the router delivers, but no method runs before its own policy
 * said yes on the broker thread, with the auth_id the router verified
 * (a message from below cannot carry authority it does not hold, DESIGN
 * §5): MG_SERVICE_PARENTS is mg_has_parent_authority, exactly the rule
 * that guards CALL_FUNCTION. A refused call gets a CallError saying only
 * that it was refused. Arguments are checked against the method's
 * signature before it runs, and the queue is bounded, so a peer allowed
 * to call cannot make us hold more than MG_SERVICE_QUEUE_MAX requests.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/mitogen.h>
#include <mitogen/service.h>

#include "agent/agent.h"
#include "core/context.h"
#include "core/log.h"
#include "core/message.h"
#include "core/receiver.h"
#include "core/router.h"
#include "files/files.h"
#include "master/fakessh.h"

#define SERVICE_MAX 32

struct service {
	const char *name;
	const struct mg_service_method *methods;
	size_t n;
	void *userdata;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct service services[SERVICE_MAX];
static size_t nservices;

int mg_service_register(const char *name, const struct mg_service_method *methods, size_t n,
			void *userdata)
{
	int ret = 0;

	if (!name || !*name || !methods || !n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!methods[i].name || !methods[i].fn ||
		    (methods[i].policy != MG_SERVICE_PARENTS && methods[i].policy != MG_SERVICE_ANY))
			return -EINVAL;
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < nservices; i++)
		if (!strcmp(services[i].name, name))
			ret = -EEXIST;
	if (!ret && nservices == SERVICE_MAX)
		ret = -ENOSPC;
	if (!ret)
		services[nservices++] = (struct service){ name, methods, n, userdata };
	pthread_mutex_unlock(&reg_lock);
	return ret;
}

static const struct mg_service_method *service_find(const char *name, const char *method,
						    void **ret_userdata, bool *ret_found_service)
{
	const struct mg_service_method *m = NULL;

	*ret_found_service = false;
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < nservices && !m; i++) {
		if (strcmp(services[i].name, name))
			continue;
		*ret_found_service = true;
		for (size_t j = 0; j < services[i].n; j++)
			if (!strcmp(services[i].methods[j].name, method)) {
				m = &services[i].methods[j];
				*ret_userdata = services[i].userdata;
				break;
			}
	}
	pthread_mutex_unlock(&reg_lock);
	return m;
}

/* args against the method's signature; NULL or a reason. */
static const char *service_check_args(const char *sig, const struct mg_value *args)
{
	if (!sig)
		return NULL;
	if (strlen(sig) != args->len)
		return "wrong number of arguments";
	for (size_t i = 0; i < args->len; i++) {
		enum mg_type t = args->items[i].type;
		bool ok;

		switch (sig[i]) {
		case 's': ok = t == MG_STR; break;
		case 'i': ok = t == MG_INT; break;
		case 'b': ok = t == MG_BYTES; break;
		case 'B': ok = t == MG_BOOL; break;
		case 'l': ok = t == MG_LIST; break;
		case 'm': ok = t == MG_MAP; break;
		case 'n': ok = t == MG_INT || t == MG_NIL; break;
		case '?': ok = true; break;
		default: ok = false; break;
		}
		if (!ok)
			return "argument of the wrong type";
	}
	return NULL;
}

/* --- the worker pool ---------------------------------------------------- */

struct job {
	struct job *next;
	struct mg_router *r;
	struct mg_message *msg;
	struct mg_value *req;		/* [service, method, args] */
	const struct mg_service_method *m;
	void *userdata;
	uint64_t start_ns;		/* audited: when its method started */
	bool recorded;			/* its audit record is queued (pool_lock) */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static struct job *queue_head, *queue_tail;
static size_t queued, idle, nworkers;
/* The job each worker is running (pool_lock): service_audit_running. */
static struct job *running[MG_SERVICE_WORKERS];

static void service_reply_error(struct mg_router *r, const struct mg_message *msg,
				const char *fn, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void service_reply_error(struct mg_router *r, const struct mg_message *msg,
				const char *fn, int errnum, const char *fmt, ...)
{
	char text[MG_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (!msg->meta.reply_to) {
		LOG_WARN("service call %s from context %u failed: %s", fn, msg->meta.src_id, text);
		return;
	}
	mg_message_reply(msg, r, mg_error_value(MG_ERR_CALL, errnum, mg_context_name_self(),
						fn, text));
}

/* Its record, once: by its worker or by service_audit_running. */
static bool job_take_record(struct job *j)
{
	bool mine;

	pthread_mutex_lock(&pool_lock);
	mine = !j->recorded;
	j->recorded = true;
	pthread_mutex_unlock(&pool_lock);
	return mine;
}

/*
 * Why every method is recorded in an audited context, as CALL_FUNCTION
 * is (agent.c): a method acts with this context's privileges (mg.files
 * writes and reads files, mg.fakessh runs a shell command), so a trail
 * that left them out would let a root file be written or a root command
 * run with no record (selftests/attacks/test_audit_services.c). Named
 * "SERVICE.METHOD". Queued just before the reply, not after as a
 * function's: a caller told it is done may end this context at once, and
 * the main thread closes the log at the end without waiting for us.
 * (Queued is not written: the caller still never waits for the record.)
 */
static void job_run(struct job *j)
{
	const struct mg_value *svc = &j->req->items[0], *meth = &j->req->items[1];
	struct mg_value *result = NULL;
	char fn[MG_ERROR_NAME_MAX];
	struct mg_call call = { .router = j->r, .msg = j->msg, .function = fn };
	bool audited = j->r->audited;
	int ret;

	snprintf(fn, sizeof(fn), "%s.%s", svc->str, meth->str);
	LOG_DEBUG("service call %s from context %u", fn, j->msg->meta.src_id);
	ret = j->m->fn(&call, &j->req->items[2], &result, j->userdata);
	if (ret < 0 && !call.failed)
		snprintf(call.message, sizeof(call.message), "%s", strerror(-ret));
	if (audited && job_take_record(j))
		agent_audit_call(j->r, j->msg, fn, &j->req->items[2], ret < 0 ? call.message : NULL,
				 j->start_ns, agent_audit_now(), call.audit_detail);
	else
		mg_value_free(call.audit_detail);
	if (ret < 0) {
		mg_value_free(result);
		service_reply_error(j->r, j->msg, fn, call.failed ? call.errnum : -ret, "%s",
				    call.message);
	} else if (j->msg->meta.reply_to) {
		mg_message_reply(j->msg, j->r, result ? result : mg_nil());
	} else {
		mg_value_free(result);
	}
}

void service_audit_running(struct mg_router *r)
{
	uint64_t now = agent_audit_now();

	pthread_mutex_lock(&pool_lock);
	for (size_t i = 0; i < MG_SERVICE_WORKERS; i++) {
		struct job *j = running[i];
		char fn[MG_ERROR_NAME_MAX];

		if (!j || j->recorded)
			continue;
		j->recorded = true;
		snprintf(fn, sizeof(fn), "%s.%s", j->req->items[0].str, j->req->items[1].str);
		agent_audit_call(r, j->msg, fn, &j->req->items[2],
				 "still running when the context ended", j->start_ns, now, NULL);
	}
	pthread_mutex_unlock(&pool_lock);
}

static void *worker_main(void *arg)
{
	size_t slot = (size_t)(uintptr_t)arg;

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&pool_lock);
		idle++;
		while (!queue_head)
			pthread_cond_wait(&pool_cond, &pool_lock);
		idle--;
		j = queue_head;
		queue_head = j->next;
		if (!queue_head)
			queue_tail = NULL;
		queued--;
		j->start_ns = j->r->audited ? agent_audit_now() : 0;
		running[slot] = j;
		pthread_mutex_unlock(&pool_lock);
		job_run(j);
		pthread_mutex_lock(&pool_lock);
		running[slot] = NULL;
		pthread_mutex_unlock(&pool_lock);
		mg_message_free(j->msg);
		mg_value_free(j->req);
		free(j);
	}
	return NULL;
}

/*
 * A fork's child (mg_fork, which may now run on a worker: mg.via.start)
 * has none of these threads: without this it would count the parent's
 * workers as its own and queue its calls for none. The parent's queued
 * jobs are the parent's; a lock another thread held stays held.
 */
static void pool_after_fork(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cfresh = PTHREAD_COND_INITIALIZER;

	memcpy(&pool_lock, &fresh, sizeof(fresh));
	memcpy(&pool_cond, &cfresh, sizeof(cfresh));
	queue_head = queue_tail = NULL;
	queued = idle = nworkers = 0;
	/* The parent's jobs, not ours: nothing for service_audit_running. */
	memset(running, 0, sizeof(running));
}

static void pool_after_fork_register(void)
{
	pthread_atfork(NULL, NULL, pool_after_fork);
}

/* Queue j; start a worker when none is idle and the pool is not full.
 * Returns 0 or -EBUSY (queue full), -ENOMEM. */
static int pool_push(struct job *j)
{
	int ret = 0;

	pthread_mutex_lock(&pool_lock);
	if (queued >= MG_SERVICE_QUEUE_MAX) {
		ret = -EBUSY;
		goto out;
	}
	if (idle <= queued && nworkers < MG_SERVICE_WORKERS) {
		pthread_attr_t a;
		pthread_t t;

		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, worker_main, (void *)(uintptr_t)nworkers) == 0)
			nworkers++;
		pthread_attr_destroy(&a);
		if (!nworkers) {
			ret = -ENOMEM;
			goto out;
		}
	}
	j->next = NULL;
	if (queue_tail)
		queue_tail->next = j;
	else
		queue_head = j;
	queue_tail = j;
	queued++;
	pthread_cond_signal(&pool_cond);
out:
	pthread_mutex_unlock(&pool_lock);
	return ret;
}

/* --- CALL_SERVICE ------------------------------------------------------- */

/* A call that ended on the broker thread, before any method ran: its
 * record, an error that took no time. */
static void service_audit_now(struct mg_router *r, const struct mg_message *msg,
			      const char *fn, const struct mg_value *args, const char *why)
{
	uint64_t now = agent_audit_now();

	agent_audit_call(r, msg, fn, args, why, now, now, NULL);
}

/* Broker thread: check the request and its policy, then queue it. */
static void on_call_service(struct mg_message *msg, void *userdata)
{
	struct mg_router *r = userdata;
	const struct mg_service_method *m;
	struct mg_value *req = NULL;
	const char *why;
	char fn[MG_ERROR_NAME_MAX];
	void *ud = NULL;
	bool found_service;
	struct job *j;
	int ret;

	if (mg_message_is_dead(msg))
		goto out;
	if (mg_message_value(msg, false, &req, NULL) < 0 || req->type != MG_LIST ||
	    req->len != 3 || req->items[0].type != MG_STR || req->items[1].type != MG_STR ||
	    req->items[2].type != MG_LIST) {
		service_reply_error(r, msg, "", EINVAL, "malformed CALL_SERVICE message");
		goto out;
	}
	snprintf(fn, sizeof(fn), "%s.%s", req->items[0].str, req->items[1].str);
	m = service_find(req->items[0].str, req->items[1].str, &ud, &found_service);
	if (!m) {
		char text[MG_ERROR_MSG_MAX];

		snprintf(text, sizeof(text), found_service ? "service '%s' has no method '%s'" :
			 "no service named '%s'%.0s", req->items[0].str, req->items[1].str);
		service_reply_error(r, msg, fn, ENOENT, "%s", text);
		/* Recorded as a function that is not there is (agent.c), for
		 * the callers a method would have served. */
		if (r->audited && mg_has_parent_authority(msg, NULL, NULL))
			service_audit_now(r, msg, fn, &req->items[2], text);
		goto out;
	}
	/* The method's own policy, on the auth_id the router verified. */
	if (m->policy == MG_SERVICE_PARENTS && !mg_has_parent_authority(msg, NULL, NULL)) {
		LOG_WARN("refused service call %s from context %u (auth %u): parents only",
			 fn, msg->meta.src_id, msg->meta.auth_id);
		service_reply_error(r, msg, fn, EPERM, "refused by policy");
		goto out;
	}
	why = service_check_args(m->args, &req->items[2]);
	if (why) {
		service_reply_error(r, msg, fn, EINVAL, "%s", why);
		if (r->audited)
			service_audit_now(r, msg, fn, &req->items[2], why);
		goto out;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		service_reply_error(r, msg, fn, ENOMEM, "out of memory");
		goto out;
	}
	*j = (struct job){ .r = r, .msg = msg, .req = req, .m = m, .userdata = ud };
	ret = pool_push(j);
	if (ret < 0) {
		why = ret == -EBUSY ? "service queue full" : "cannot start a worker";
		free(j);
		service_reply_error(r, msg, fn, -ret, "%s", why);
		if (r->audited)
			service_audit_now(r, msg, fn, &req->items[2], why);
		goto out;
	}
	return;
out:
	mg_value_free(req);
	mg_message_free(msg);
}

void service_agent_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, pool_after_fork_register);
	files_service_init();
	fakessh_service_init();
}

int service_start(struct mg_router *r)
{
	MG_OPTS(mg_handler_opts, opts, .handle = MG_HANDLE_CALL_SERVICE);
	int ret = mg_router_add_handler(r, on_call_service, r, &opts);

	return ret < 0 ? ret : 0;
}

/* --- calling ------------------------------------------------------------ */

static struct mg_message *service_request(struct mg_context *ctx, const char *service,
					  const char *method, struct mg_value *args,
					  struct mg_error *err)
{
	struct mg_message *msg;

	if (!ctx || !ctx->router || !service || !method || (args && args->type != MG_LIST)) {
		mg_value_free(args);
		error_set(err, MG_ERR_CALL, EINVAL, "invalid arguments to mg_call_service");
		errno = EINVAL;
		return NULL;
	}
	msg = mg_message_new(ctx->id, MG_HANDLE_CALL_SERVICE,
			     MG_LIST(mg_str(service), mg_str(method), args ? args : mg_list()));
	if (!msg)
		error_set(err, MG_ERR_CALL, errno, "cannot encode call to %s.%s: %s", service,
			  method, strerror(errno));
	return msg;
}

struct mg_receiver *mg_call_service_async(struct mg_context *ctx, const char *service,
					  const char *method, struct mg_value *args,
					  struct mg_error *err)
{
	struct mg_message *msg = service_request(ctx, service, method, args, err);
	struct mg_receiver *rx;

	if (!msg)
		return NULL;
	rx = mg_context_send_async(ctx, msg, false);
	if (!rx)
		error_set(err, MG_ERR_CHANNEL, errno, "cannot send call to %s.%s: %s", service,
			  method, strerror(errno));
	return rx;
}

int mg_call_service(struct mg_context *ctx, const char *service, const char *method,
		    struct mg_value *args, struct mg_value **ret_result, struct mg_error *err)
{
	struct mg_receiver *rx = mg_call_service_async(ctx, service, method, args, err);

	if (!rx)
		return -errno;
	return receiver_await_reply(rx, ret_result, err);
}

int mg_call_service_no_reply(struct mg_context *ctx, const char *service, const char *method,
			     struct mg_value *args)
{
	struct mg_message *msg = service_request(ctx, service, method, args, NULL);

	if (!msg)
		return -errno;
	return mg_context_send(ctx, msg);
}
