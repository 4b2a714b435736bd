// SPDX-License-Identifier: MIT
/*
 * via.c — starting a context through another one (via=). The master (or
 * whoever asks) allocates the new id, then calls the service method
 * mg.via.start in the intermediate context, which runs the ordinary
 * factory there with that id. The intermediate's router announces the new
 * child upwards with ADD_ROUTE before the call's reply travels the same
 * path, so when the caller gets the reply every router on the way can
 * route to the child.
 *
 * Why a service and not an exported function: an agent serves
 * CALL_FUNCTION on its main thread, one call at a time, so every start
 * through a bastion waited for the one before it (and no other call to
 * the bastion was served while one ran). A service method runs on the
 * bounded worker pool (agent/service.c: MG_SERVICE_WORKERS threads,
 * MG_SERVICE_QUEUE_MAX waiting): up to that many starts run at once in an
 * intermediate, a start that hangs holds one worker until its connect
 * timeout, and the main thread stays free for calls. The exported
 * function mg._proxy_start is kept, unchanged: via_call falls back to it
 * where the intermediate lacks mg.via (an older agent image) or its
 * service queue is full, and a master from before mg.via calls it.
 *
 * Why it is safe to serve: mg.via.start has the MG_SERVICE_PARENTS
 * policy, which is mg_has_parent_authority, the very rule that guards
 * CALL_FUNCTION (and so mg._proxy_start): only an ancestor of the
 * intermediate (or the intermediate itself) can make it start contexts.
 * selftests/attacks/test_files.c asks for both from below.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <mitogen/service.h>

#include "core/context.h"
#include "core/log.h"
#include "core/message.h"
#include "core/router.h"
#include "master/master.h"
#include "sandbox/sandbox.h"

static const char *const kind_names[] = { [VIA_LOCAL] = "local", [VIA_FORK] = "fork" };

/*
 * mg.via.start and mg._proxy_start take the same arguments: (kind, id,
 * name, connect_timeout, debug, profiling [, image [, sandbox
 * [, transport [, audit]]]]) -> {pid, privileged, audited}. transport
 * (nil: none) is the option list of a method of the table
 * (transports/methods.c: ssh, sudo, podman, ...) whose first item is the
 * kind, found there by name. image "" means none; sandbox is the BOOT
 * "sandbox" map the caller built (sandbox_to_value: rule files already
 * read there), checked again here and handed to the child as is. Runs in
 * the intermediate, under its parent's authority (the service's and the
 * CALL_FUNCTION policy alike), so only an ancestor can make it start
 * contexts. The factories it calls are safe on several threads at once
 * (the master starts contexts from many threads too).
 */
static int proxy_start(struct mg_call *call, const struct mg_value *args,
		       struct mg_value **ret)
{
	struct mg_error err = MG_ERROR_INIT;
	const char *kind, *name, *image = NULL;
	const struct mg_value *sandbox = NULL, *topts = NULL;
	double timeout;
	bool debug, profiling, audit = false;
	int64_t id;
	struct mg_context *ctx;

	if (mg_value_unpack(args, &err, "slsdbb|svvb", &kind, &id, &name, &timeout, &debug,
			    &profiling, &image, &sandbox, &topts, &audit) < 0)
		return mg_call_fail(call, EINVAL, "%s", err.message);
	if (topts && topts->type == MG_NIL)
		topts = NULL;
	if (image && !*image)
		image = NULL;
	if (sandbox && sandbox->type == MG_NIL)
		sandbox = NULL;
	if (id <= 0 || id > UINT32_MAX)
		return mg_call_fail(call, EINVAL, "bad context id %lld", (long long)id);
	MG_OPTS(mg_local_opts, lo, .remote_name = name, .connect_timeout = timeout,
		.debug = debug, .profiling = profiling, .image = image, .audit = audit);
	if (!strcmp(kind, "local")) {
		ctx = local_start(mg_call_router(call), &lo, (uint32_t)id, sandbox, &err);
	} else if (!strcmp(kind, "fork")) {
		MG_OPTS(mg_fork_opts, fo, .local = &lo);
		ctx = fork_start(mg_call_router(call), &fo, (uint32_t)id, sandbox, &err);
	} else if (topts) {
		ctx = method_from_value(kind, mg_call_router(call), &lo, (uint32_t)id, sandbox,
					topts, &err);
	} else {
		return mg_call_fail(call, EINVAL, "unknown context kind '%s'", kind);
	}
	if (!ctx)
		return mg_call_fail(call, err.errnum, "[%s] %s", mg_error_kind_name(err.kind),
				    err.message);
	*ret = mg_map();
	mg_map_set(*ret, "pid", mg_int(mg_context_pid(ctx)));
	mg_map_set(*ret, "privileged", mg_bool(mg_context_is_privileged(ctx)));
	mg_map_set(*ret, "audited", mg_bool(mg_context_is_audited(ctx)));
	/* The router keeps the context; shutdown comes from above. */
	mg_context_unref(ctx);
	return 0;
}
/* Kept (CALL_FUNCTION: the main thread, one start at a time): a master
 * from before mg.via calls it, and via_call falls back to it. */
MG_EXPORT_AS("mg._proxy_start", proxy_start);

static int via_service_start(struct mg_call *call, const struct mg_value *args,
			     struct mg_value **ret, void *userdata)
{
	return proxy_start(call, args, ret);
}

/* Optional arguments: checked by proxy_start itself (no signature). */
static const struct mg_service_method via_methods[] = {
	{ "start", via_service_start, MG_SERVICE_PARENTS, NULL },
};

void via_init(void)
{
	int ret = mg_service_register("mg.via", via_methods,
				      sizeof(via_methods) / sizeof(via_methods[0]), NULL);

	if (ret < 0 && ret != -EEXIST)
		LOG_WARN("cannot offer mg.via: %s", strerror(-ret));
}

/* "[StreamError] ..." from proxy_start: the kind the factory failed with. */
static enum mg_error_kind remote_kind(const char **msg)
{
	static const enum mg_error_kind kinds[] = { MG_ERR_PASSWORD, MG_ERR_HOSTKEY,
						    MG_ERR_STREAM, MG_ERR_TIMEOUT };

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const char *name = mg_error_kind_name(kinds[i]);
		size_t n = strlen(name);

		if ((*msg)[0] == '[' && !strncmp(*msg + 1, name, n) && (*msg)[n + 1] == ']') {
			*msg += n + 2 + ((*msg)[n + 2] == ' ');
			return kinds[i];
		}
	}
	return MG_ERR_STREAM;
}

static struct mg_context *via_run(struct mg_router *r, const char *kind, const char *tname,
				  const struct mg_local_opts *o, struct mg_value *topts,
				  struct mg_error *err);

/*
 * mg.via.start in via; mg._proxy_start (same arguments, the main thread
 * there) where via has no such service (an agent from before it) or its
 * service queue is full (more than MG_SERVICE_WORKERS +
 * MG_SERVICE_QUEUE_MAX calls at once: they wait their turn there, as
 * every start did before, rather than fail). args taken.
 */
static int via_call(struct mg_context *via, struct mg_value *args, struct mg_value **res,
		    struct mg_error *err)
{
	struct mg_value *again = mg_value_copy(args);
	int ret = mg_call_service(via, "mg.via", "start", args, res, err);

	if (ret < 0 && err->kind == MG_ERR_CALL && again &&
	    ((err->errnum == ENOENT && !strcmp(err->message, "no service named 'mg.via'")) ||
	     (err->errnum == EBUSY && !strcmp(err->message, "service queue full")))) {
		mg_error_clear(err);
		ret = mg_call(via, "mg._proxy_start", again, res, err);
		again = NULL;
	}
	mg_value_free(again);
	return ret;
}

struct mg_context *via_start(struct mg_router *r, enum via_kind kind,
			     const struct mg_local_opts *o, struct mg_error *err)
{
	return via_run(r, kind_names[kind], NULL, o, NULL, err);
}

struct mg_context *via_start_opts(struct mg_router *r, const char *name,
				  const struct mg_local_opts *o, struct mg_value *topts,
				  struct mg_error *err)
{
	const struct mg_value *kind = mg_list_get(topts, 0);

	if (!kind || kind->type != MG_STR) {
		mg_value_free(topts);
		error_set(err, MG_ERR_STREAM, ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	return via_run(r, kind->str, name, o, topts, err);
}

static struct mg_context *via_run(struct mg_router *r, const char *kind, const char *tname,
				  const struct mg_local_opts *o, struct mg_value *topts,
				  struct mg_error *err)
{
	struct mg_context *via = o->via, *ctx;
	struct mg_error e2 = MG_ERROR_INIT;
	struct mg_value *args, *sandbox = NULL, *res = NULL;
	const struct mg_value *flag;
	const char *msg;
	char name[96];
	uint32_t id;
	bool audit;
	int ret;

	if (!r || via->router != r) {
		mg_value_free(topts);
		error_set(err, MG_ERR_STREAM, EINVAL, "via context belongs to another router");
		errno = EINVAL;
		return NULL;
	}
	/* Checked (and a rule file read) here, where the caller's files are. */
	if (o->sz > offsetof(struct mg_local_opts, sandbox) && o->sandbox) {
		char why[512];

		sandbox = sandbox_to_value(o->sandbox, why, sizeof(why));
		if (!sandbox) {
			mg_value_free(topts);
			error_set(err, MG_ERR_STREAM, EINVAL, "via %s: sandbox: %s", via->name,
				  why);
			errno = EINVAL;
			return NULL;
		}
	}
	id = router_alloc_id(r, via->id);
	if (!id) {
		mg_value_free(sandbox);
		mg_value_free(topts);
		error_set(err, MG_ERR_STREAM, EIO, "no context id from the master");
		errno = EIO;
		return NULL;
	}
	if (o->remote_name)
		snprintf(name, sizeof(name), "%s", o->remote_name);
	else if (tname)
		snprintf(name, sizeof(name), "%.60s/%.30s", via->name, tname);
	else
		snprintf(name, sizeof(name), "%.60s.%s%u", via->name, kind, id);
	for (char *p = name; *p; p++)
		if (*p == '/')
			*p = '.';
	args = mg_value_build("slsdbb", kind, (int64_t)id, name,
			      o->connect_timeout > 0 ? o->connect_timeout : 30.0,
			      (int)o->debug, (int)o->profiling);
	audit = o->sz > offsetof(struct mg_local_opts, audit) && o->audit;
	if (args && (o->image || sandbox || topts || audit))
		mg_list_append(args, mg_str(o->image ? o->image : ""));
	if (args && (sandbox || topts || audit))
		mg_list_append(args, sandbox ? sandbox : mg_nil());
	else
		mg_value_free(sandbox);
	if (args && (topts || audit))
		mg_list_append(args, topts ? topts : mg_nil());
	else
		mg_value_free(topts);
	if (args && audit)
		mg_list_append(args, mg_bool(true));
	ret = via_call(via, args, &res, &e2);
	if (ret < 0) {
		msg = e2.message;
		enum mg_error_kind k = e2.kind == MG_ERR_CALL ? remote_kind(&msg) : e2.kind;

		error_set(err, k, e2.errnum, "via %s: %s", via->name, msg);
		errno = e2.errnum ? e2.errnum : EIO;
		return NULL;
	}
	ctx = router_context(r, id, name);
	if (!ctx) {
		error_set(err, MG_ERR_STREAM, ENOMEM, "out of memory");
	} else {
		/* Below a privileged context, or privileged itself. */
		flag = res && res->type == MG_MAP ? mg_map_get(res, "privileged") : NULL;
		if (via->privileged || (flag && flag->type == MG_BOOL && flag->b))
			ctx->privileged = true;
		/* Below an audited context, or audited itself. */
		flag = res && res->type == MG_MAP ? mg_map_get(res, "audited") : NULL;
		if (mg_context_is_audited(via) || audit ||
		    (flag && flag->type == MG_BOOL && flag->b))
			ctx->audited = true;
	}
	mg_value_free(res);
	return ctx;
}
