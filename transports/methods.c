// SPDX-License-Identifier: MIT
/*
 * methods.c — the method table: every way to start a context through a
 * program, one row each (struct transport, transports/transport.h), and
 * the one place that lists them. master/via.c (mg._proxy_start) and the
 * public factories find a method here by name and know nothing else
 * about it; adding a method is one file in transports/ defining its row
 * and one line below (docs/containers.md).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "core/message.h"
#include "master/master.h"
#include "transports/transport.h"

static const struct transport *const methods[] = {
	&ssh_transport,
	&sudo_transport,
	&su_transport,
	&doas_transport,
	&podman_transport,
	&docker_transport,
	&buildah_transport,
	&lxc_transport,
	&lxd_transport,
	&incus_transport,
	&kubectl_transport,
	&machinectl_transport,
	&setns_transport,
};

const struct transport *transport_find(const char *kind)
{
	for (size_t i = 0; kind && i < sizeof(methods) / sizeof(methods[0]); i++)
		if (!strcmp(methods[i]->kind, kind))
			return methods[i];
	return NULL;
}

struct mg_context *method_from_value(const char *kind, struct mg_router *r,
				     const struct mg_local_opts *lo, uint32_t id,
				     const struct mg_value *sandbox, const struct mg_value *v,
				     struct mg_error *err)
{
	const struct transport *t = transport_find(kind);
	const struct mg_value *k = mg_list_get(v, 0);

	if (!t || !t->from_value) {
		error_set(err, MG_ERR_STREAM, EINVAL, "unknown context kind '%s'", kind);
		errno = EINVAL;
		return NULL;
	}
	if (!k || k->type != MG_STR || strcmp(k->str, kind)) {
		error_set(err, MG_ERR_STREAM, EINVAL, "%s: malformed options", kind);
		errno = EINVAL;
		return NULL;
	}
	return t->from_value(t, r, lo, id, sandbox, v, err);
}

struct mg_context *transport_factory(struct mg_router *r, const struct transport *t,
				     const char *name, const struct mg_local_opts *lo,
				     struct mg_value *v, struct mg_error *err)
{
	struct mg_context *ctx;

	if (!v) {
		error_set(err, MG_ERR_STREAM, ENOMEM, "%s: out of memory", t->kind);
		errno = ENOMEM;
		return NULL;
	}
	if (lo && lo->sz > offsetof(struct mg_local_opts, via) && lo->via)
		return via_start_opts(r, name, lo, v, err);
	ctx = t->from_value(t, r, lo, 0, NULL, v, err);
	mg_value_free(v);
	return ctx;
}
