// SPDX-License-Identifier: MIT
/*
 * via.c — starting a context through another one (via=). The master (or
 * whoever asks) allocates the new id, then calls mg._proxy_start in the
 * intermediate context, which runs the ordinary factory there with that
 * id. The intermediate's router announces the new child upwards with
 * ADD_ROUTE before the call's reply travels the same path, so when the
 * caller gets the reply every router on the way can route to the child.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/context.h"
#include "core/message.h"
#include "core/router.h"
#include "master/master.h"
#include "sandbox/sandbox.h"

static const char *const kind_names[] = { [VIA_LOCAL] = "local", [VIA_FORK] = "fork" };

/*
 * mg._proxy_start(kind, id, name, connect_timeout, debug, profiling
 * [, image [, sandbox [, transport [, audit]]]]) -> {pid, privileged,
 * audited}. transport (nil: none) is the option list of a method of the
 * table (transports/methods.c: ssh, sudo, podman, ...) whose first item
 * is the kind, found there by name. image "" means none; sandbox is the
 * BOOT "sandbox" map the caller built (sandbox_to_value: rule files already
 * read there), checked again here and handed to the child as is. Runs in
 * the intermediate, under its parent's authority (the CALL_FUNCTION
 * policy), so only an ancestor can make it start contexts.
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
MG_EXPORT_AS("mg._proxy_start", proxy_start);

void via_init(void)
{
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
	ret = mg_call(via, "mg._proxy_start", args, &res, &e2);
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
