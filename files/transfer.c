// SPDX-License-Identifier: MIT
/*
 * transfer.c — moving files along the tree (docs/files.md): the
 * "mg.files" service (recv: write and relay; send: the source of a pull)
 * and the caller's mg_files_push. The fan-out and the sending loop they
 * drive are in fanout.c; mg_files_pull, the caller's side of send, is in
 * pull.c.
 *
 * Why the service is safe to offer: both methods are MG_SERVICE_PARENTS
 * (only the parent chain may make us write or read files, as with
 * mg.write_file); data is taken only from the context that called recv
 * (its receiver has that respondent) and acknowledgements only from the
 * hops we called; every path a peer names is checked by the manifest
 * (files_rel_ok) and written by writer.c, which never follows a link.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files/fanout.h"

/* --- the service: recv --------------------------------------------------- */

struct relay {
	struct fanout *f;
	struct mg_receiver *up_rx;
	struct writer *w;		/* NULL: not a destination */
	bool eof, lost;
	uint64_t pos, acked_up;
	uint32_t parent, ctl;
	char why[512];
};

static void relay_ack(struct relay *rl)
{
	uint64_t a;

	fanout_update_acks(rl->f);
	a = rl->pos < rl->f->acked_min ? rl->pos : rl->f->acked_min;

	if (a > rl->acked_up || (rl->eof && a == rl->pos && rl->acked_up != a)) {
		rl->acked_up = a;
		files_send_to(rl->f->r, rl->parent, rl->ctl, MG_LIST(mg_str("a"), mg_int((int64_t)a)));
	}
}

/* A message from our parent (data), through fanout_pump. */
static void relay_up(struct mg_message *msg, void *arg)
{
	struct relay *rl = arg;
	struct mg_value *v = NULL;
	const void *raw, *data;
	size_t len, dlen;
	uint32_t entry;
	uint64_t off;

	if (mg_message_receiver(msg) != rl->up_rx) {
		mg_message_free(msg);
		return;
	}
	if (mg_message_is_dead(msg)) {
		rl->lost = true;
		if (mg_message_value(msg, false, &v, NULL) == 0 && v->type == MG_STR)
			snprintf(rl->why, sizeof(rl->why), "%s", v->str);
		else
			snprintf(rl->why, sizeof(rl->why), "the sending side went away");
		mg_value_free(v);
		mg_message_free(msg);
		return;
	}
	raw = mg_message_data(msg, &len);
	if (files_chunk_view(raw, len, &entry, &off, &data, &dlen)) {
		/* The message is the chunk every hop below gets. */
		struct chunk_buf *cb = calloc(1, sizeof(*cb));

		if (cb)
			*cb = (struct chunk_buf){ .refs = 1, .raw = (void *)raw, .len = len,
						  .msg = msg };
		fanout_send_all(rl->f, cb, raw, len);
		rl->f->sent += dlen;
		rl->pos += dlen;
		if (rl->w)
			writer_chunk(rl->w, entry, off, data, dlen);
		if (cb)
			chunk_buf_put(cb);
		else
			mg_message_free(msg);
		return;
	}
	if (mg_message_value(msg, false, &v, NULL) < 0 || v->type != MG_LIST || !v->len ||
	    v->items[0].type != MG_STR) {
		mg_value_free(v);
		mg_message_free(msg);
		return;
	}
	if (!strcmp(v->items[0].str, "d") && v->len == 4 && v->items[1].type == MG_INT &&
	    v->items[2].type == MG_INT && v->items[3].type == MG_BYTES && v->items[1].i >= 0 &&
	    v->items[2].i >= 0) {
		fanout_send_all(rl->f, NULL, raw, len);
		rl->f->sent += v->items[3].len;
		rl->pos += v->items[3].len;
		if (rl->w)
			writer_chunk(rl->w, (uint32_t)v->items[1].i, (uint64_t)v->items[2].i,
				     v->items[3].bytes, v->items[3].len);
	} else if (!strcmp(v->items[0].str, "e")) {
		fanout_send_all(rl->f, NULL, raw, len);
		if (rl->w)
			writer_end(rl->w);
		rl->eof = true;
	}
	mg_value_free(v);
	mg_message_free(msg);
}

/*
 * What an audited context's record of recv says beyond the digest of the
 * plan (docs/audit.md): the path written here, as the writer resolved it
 * (dest, or dest/NAME when dest is a directory), how many entries and
 * data bytes it wrote, and how many contexts below it relayed to.
 */
static void files_recv_audit(struct mg_call *call, const struct writer *w, bool dest_here,
			     const char *dest, size_t nbelow)
{
	if (dest_here) {
		char *path = NULL;

		if (w->into && w->rootname) {
			size_t n = strlen(dest);

			while (n > 0 && dest[n - 1] == '/')
				n--;
			if (asprintf(&path, "%.*s/%s", (int)n, dest, w->rootname) < 0)
				path = NULL;
		}
		mg_call_audit_detail(call, "path", mg_str(path ? path : dest));
		free(path);
		mg_call_audit_detail(call, "entries", mg_int(w->m ? (int64_t)w->m->n : 0));
		mg_call_audit_detail(call, "bytes", mg_int((int64_t)w->bytes));
	}
	if (nbelow)
		mg_call_audit_detail(call, "relayed_to", mg_int((int64_t)nbelow));
}

static int files_recv(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		      void *ud)
{
	const struct mg_value *plan = &args->items[0];
	const struct mg_value *ids = mg_map_get(plan, "ids"), *ctl = mg_map_get(plan, "ctl"),
			      *man = mg_map_get(plan, "manifest"), *dest = mg_map_get(plan, "dest"),
			      *name = mg_map_get(plan, "name"), *exact = mg_map_get(plan, "exact"),
			      *pres = mg_map_get(plan, "preserve"), *mode = mg_map_get(plan, "mode"),
			      *sync = mg_map_get(plan, "fsync");
	struct mg_router *r = mg_call_router(call);
	uint32_t self = mg_router_id(r);
	struct relay rl = { .parent = mg_call_src_id(call) };
	struct mg_context *pctx = NULL;
	struct manifest m = { 0 };
	struct writer w = { .rootdir = -1, .fd = -1, .dirfd = -1 };
	struct fanout f = { 0 };
	uint32_t *below = NULL;
	size_t nbelow = 0;
	bool dest_here = false;
	struct mg_value *have = NULL, *res;
	char why[512];
	int ret_;

	if (!ids || ids->type != MG_LIST || !ctl || ctl->type != MG_INT || !dest ||
	    dest->type != MG_STR || !name || name->type != MG_STR || !man)
		return mg_call_fail(call, EINVAL, "malformed plan");
	ret_ = manifest_from_value(man, &m, why, sizeof(why));
	if (ret_ < 0)
		return mg_call_fail(call, -ret_, "%s", why);
	rl.ctl = (uint32_t)ctl->i;
	pctx = mg_router_context_by_id(r, rl.parent);
	below = calloc(ids->len ? ids->len : 1, sizeof(*below));
	if (!pctx || !below || fanout_init(&f, r, NULL, 0) < 0) {
		fanout_free(&f);
		manifest_free(&m);
		free(below);
		mg_context_unref(pctx);
		return mg_call_fail(call, ENOMEM, "out of memory");
	}
	{
		MG_OPTS(mg_receiver_opts, ro, .respondent = pctx);

		rl.up_rx = mg_receiver_new(r, &ro);
		if (rl.up_rx)
			mg_select_add(f.sel, rl.up_rx);
	}
	rl.f = &f;
	for (size_t i = 0; i < ids->len; i++) {
		if (ids->items[i].type != MG_INT)
			continue;
		if ((uint32_t)ids->items[i].i == self)
			dest_here = true;
		else
			below[nbelow++] = (uint32_t)ids->items[i].i;
	}
	fanout_start(&f, below, nbelow, plan);
	free(below);
	if (dest_here) {
		rl.w = &w;
		writer_prepare(&w, &m, dest->str, name->str, exact && exact->type == MG_BOOL &&
			       exact->b, pres && pres->type == MG_BOOL && pres->b,
			       mode && mode->type == MG_INT ? (int)mode->i : 0);
		/* A sender that does not say (an older one): sync. */
		w.sync = !(sync && sync->type == MG_BOOL && !sync->b);
	}
	/* Ready once every hop is (or failed). */
	while (!fanout_all(&f, hop_not_waiting) && !rl.lost)
		if (fanout_pump(&f, FILES_IDLE_TIMEOUT, relay_up, &rl) < 0)
			break;
	have = mg_list();
	for (size_t i = 0; i < m.n; i++) {
		uint32_t mine = UINT32_MAX;

		if (rl.w && !w.error)
			mine = w.have[i];
		mg_list_append(have, mg_int(m.e[i].type == 'f' ? fanout_have(&f, i, mine) : 0));
	}
	if (!rl.up_rx || files_send_to(r, rl.parent, rl.ctl, MG_LIST(mg_str("r"),
			   mg_int(mg_receiver_handle(rl.up_rx)), have)) < 0)
		rl.lost = true;
	while (!rl.lost && !(rl.eof && fanout_all(&f, hop_finished))) {
		if (fanout_pump(&f, FILES_IDLE_TIMEOUT, relay_up, &rl) < 0) {
			snprintf(rl.why, sizeof(rl.why), "nothing heard for %g s", FILES_IDLE_TIMEOUT);
			rl.lost = true;
			break;
		}
		relay_ack(&rl);
	}
	if (rl.lost) {
		/* Interrupted: what we wrote stays under its temporary name. */
		fanout_kill(&f, rl.why);
		if (rl.w)
			writer_abort(&w);
		/* Our hops end their calls; their results are not waited for. */
	}
	relay_ack(&rl);
	files_recv_audit(call, &w, dest_here, dest->str, nbelow);
	res = fanout_results(&f);
	if (dest_here) {
		if (rl.lost && !w.error)
			mg_list_append(res, files_result_value(self, EPIPE, rl.why, w.bytes));
		else
			mg_list_append(res, files_result_value(self, -w.error, w.why, w.bytes));
	}
	writer_free(&w);
	mg_select_free(f.sel);
	f.sel = NULL;
	mg_receiver_free(rl.up_rx);
	fanout_free(&f);
	manifest_free(&m);
	mg_context_unref(pctx);
	*ret = res;
	return res ? 0 : mg_call_fail(call, ENOMEM, "out of memory");
}

/* --- the service: send (the source of a pull) ---------------------------- */

static int files_send(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
		      void *ud)
{
	const char *path = args->items[0].str;
	struct mg_router *r = mg_call_router(call);
	uint32_t caller = mg_call_src_id(call), ctl = (uint32_t)args->items[2].i;
	struct mg_context *cctx = mg_router_context_by_id(r, caller);
	struct source s = { .root = path };
	struct manifest m;
	struct fanout f = { 0 };
	char why[512];
	int ret_;

	/* An audited context's record says what was read (docs/audit.md). */
	mg_call_audit_detail(call, "path", mg_str(path));
	if (!cctx)
		return mg_call_fail(call, ENOMEM, "out of memory");
	ret_ = manifest_build(path, args->items[1].b, &m, why, sizeof(why));
	if (ret_ < 0) {
		mg_context_unref(cctx);
		return mg_call_fail(call, -ret_, "%s", why);
	}
	s.m = &m;
	if (fanout_init(&f, r, cctx, 0) < 0 || !(f.hops = calloc(1, sizeof(*f.hops)))) {
		fanout_free(&f);
		manifest_free(&m);
		mg_context_unref(cctx);
		return mg_call_fail(call, ENOMEM, "out of memory");
	}
	/* One peer: the caller, acknowledging on down_rx. */
	f.nhops = 1;
	f.hops[0].id = caller;
	f.hops[0].state = HOP_WAIT;
	files_send_to(r, caller, ctl, MG_LIST(mg_str("m"), mg_int(mg_receiver_handle(f.down_rx)),
					manifest_to_value(&m)));
	while (f.hops[0].state == HOP_WAIT)
		if (fanout_pump(&f, FILES_IDLE_TIMEOUT, NULL, NULL) < 0)
			break;
	if (f.hops[0].state == HOP_READY) {
		f.hops[0].data_handle = ctl;
		ret_ = source_run(&f, &s);
		/* Until everything was written there (or it went away). */
		while (ret_ == 0 && f.hops[0].state == HOP_READY && f.hops[0].acked < f.sent + 1)
			if (fanout_pump(&f, FILES_IDLE_TIMEOUT, NULL, NULL) < 0)
				break;
	} else {
		ret_ = -EPIPE;
		snprintf(s.why, sizeof(s.why), "%s", f.hops[0].why);
	}
	fanout_free(&f);
	manifest_free(&m);
	mg_context_unref(cctx);
	if (ret_ < 0)
		return mg_call_fail(call, -ret_, "%s", s.why);
	*ret = mg_nil();
	return 0;
}

static const struct mg_service_method files_methods[] = {
	/* Write (and relay below) what the caller sends: parents only, as
	 * mg.write_file. */
	{ "recv", files_recv, MG_SERVICE_PARENTS, "m" },
	/* Send a file or tree to the caller: parents only, as mg.read_file. */
	{ "send", files_send, MG_SERVICE_PARENTS, "sBi" },
};

void files_service_init(void)
{
	/* -EEXIST: a program offers its own (tests do). */
	mg_service_register("mg.files", files_methods,
			    sizeof(files_methods) / sizeof(files_methods[0]), NULL);
}

/* --- the caller's side ------------------------------------------------------- */

void files_result_set(struct mg_files_result *res, int errnum, const char *why, uint64_t bytes)
{
	res->error = errnum ? -errnum : 0;
	snprintf(res->message, sizeof(res->message), "%s", errnum ? why : "");
	res->bytes = bytes;
}

int mg_files_push(struct mg_router *r, const char *src, const char *dest,
		  struct mg_context *const *ctxs, size_t n, const struct mg_files_opts *opts,
		  struct mg_files_result *results, struct mg_error *err)
{
	struct source s = { .root = src, .ndest = n };
	struct manifest m;
	struct fanout f = { 0 };
	struct mg_value *plan, *res = NULL;
	uint32_t *ids;
	char why[512], *b;
	int mode = FILES_OPT(opts, mode, 0), failed = 0, ret;

	if (!r || !src || !dest || !*dest || (!ctxs && n) || (n && !results) ||
	    mode < MG_FILES_MODE_KEEP || mode > 07777) {
		mg_error_clear(err);
		if (err) {
			err->kind = MG_ERR_CALL;
			err->errnum = EINVAL;
			snprintf(err->message, sizeof(err->message), "invalid arguments to mg_files_push");
		}
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		files_result_set(&results[i], EIO, "not attempted", 0);
	ret = manifest_build(src, FILES_OPT(opts, recursive, false), &m, why, sizeof(why));
	if (ret < 0) {
		if (err) {
			mg_error_clear(err);
			err->kind = MG_ERR_CALL;
			err->errnum = -ret;
			snprintf(err->message, sizeof(err->message), "%s", why);
		}
		return ret;
	}
	s.m = &m;
	s.progress = FILES_OPT(opts, progress, NULL);
	s.progress_data = FILES_OPT(opts, progress_data, NULL);
	ids = calloc(n ? n : 1, sizeof(*ids));
	b = strdup(src);
	plan = mg_map();
	if (!ids || !b || !plan || fanout_init(&f, r, NULL, FILES_OPT(opts, window, 0)) < 0) {
		free(ids);
		free(b);
		mg_value_free(plan);
		manifest_free(&m);
		fanout_free(&f);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		ids[i] = mg_context_remote_id(ctxs[i]);
	/* The same context twice is written once. */
	{
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			bool dup = false;

			for (size_t j = 0; j < k; j++)
				dup |= ids[j] == ids[i];
			if (!dup)
				ids[k++] = ids[i];
		}
		mg_map_set(plan, "dest", mg_str(dest));
		{
			char *bn = basename(b);
			size_t l = strlen(bn);

			/* "dir/" names "dir". */
			while (l > 1 && bn[l - 1] == '/')
				bn[--l] = '\0';
			mg_map_set(plan, "name", mg_str(bn));
		}
		mg_map_set(plan, "exact", mg_bool(FILES_OPT(opts, exact, false)));
		mg_map_set(plan, "preserve", mg_bool(FILES_OPT(opts, preserve, false)));
		mg_map_set(plan, "mode", mg_int(mode > 0 ? mode : 0));
		mg_map_set(plan, "fsync", mg_bool(!FILES_OPT(opts, no_fsync, false)));
		mg_map_set(plan, "manifest", manifest_to_value(&m));
		fanout_start(&f, ids, k, plan);
	}
	mg_value_free(plan);
	free(b);
	while (!fanout_all(&f, hop_not_waiting))
		if (fanout_pump(&f, FILES_IDLE_TIMEOUT, NULL, NULL) < 0)
			break;
	ret = source_run(&f, &s);
	while (!fanout_all(&f, hop_finished))
		if (fanout_pump(&f, FILES_IDLE_TIMEOUT, NULL, NULL) < 0)
			break;
	source_progress(&f, &s, true);
	res = fanout_results(&f);
	for (size_t i = 0; i < n; i++) {
		uint32_t id = mg_context_remote_id(ctxs[i]);

		for (size_t k = 0; res && k < res->len; k++) {
			const struct mg_value *it = &res->items[k];

			if (it->type != MG_LIST || it->len != 4 || it->items[0].type != MG_INT ||
			    (uint32_t)it->items[0].i != id)
				continue;
			files_result_set(&results[i], (int)it->items[1].i,
				   it->items[2].type == MG_STR ? it->items[2].str : "",
				   (uint64_t)it->items[3].i);
		}
		/* The source failed: that is every destination's reason. */
		if (ret < 0 && !results[i].error)
			files_result_set(&results[i], -ret, s.why, results[i].bytes);
		else if (ret < 0)
			snprintf(results[i].message, sizeof(results[i].message), "%s", s.why);
		failed += results[i].error != 0;
	}
	mg_value_free(res);
	fanout_free(&f);
	manifest_free(&m);
	free(ids);
	return failed;
}
