// SPDX-License-Identifier: MIT
/*
 * pull.c — the caller's mg_files_pull (docs/files.md): the same file or
 * tree fetched from each of several contexts, each under its own directory
 * destdir/NAME, by calling their "mg.files" send (transfer.c) and taking
 * its data as a destination of a push would: written by writer.c and
 * acknowledged chunk by chunk, so the source keeps to its window. No
 * fan-out: each source is the one peer of its own transfer.
 *
 * What a source sends is believed only as far as it is checked: its
 * manifest by manifest_from_value (no path may leave destdir/NAME), its
 * data by the writer (SHA-256 of every file; a link is never followed),
 * and only from the context we called (ctl_rx has that respondent).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "files/fanout.h"

/* --- pull ---------------------------------------------------------------- */

struct pull_src {
	struct mg_context *ctx;
	struct mg_receiver *ctl_rx, *call_rx;
	uint32_t ack_handle;
	struct manifest m;
	struct writer w;
	bool have_manifest, finished;
	uint64_t pos;
	int error;
	char why[512];
	char dir[PATH_MAX];
};

static void pull_fail(struct pull_src *p, struct mg_router *r, int errnum, const char *why)
{
	if (!p->error) {
		p->error = errnum;
		snprintf(p->why, sizeof(p->why), "%s", why);
	}
	/* Stop the sender: its acknowledgements never come. */
	if (p->ack_handle) {
		struct mg_message *m = mg_message_dead(mg_context_remote_id(p->ctx), p->ack_handle,
						       why);

		if (m)
			mg_router_route(r, m);
		p->ack_handle = 0;
	}
}

/* One chunk of data from the source: write it, acknowledge it. */
static void pull_chunk(struct pull_src *p, struct mg_router *r, uint32_t id, uint32_t entry,
		       uint64_t off, const void *data, size_t len)
{
	writer_chunk(&p->w, entry, off, data, len);
	p->pos += len;
	if (p->w.error) {
		pull_fail(p, r, -p->w.error, p->w.why);
		return;
	}
	files_send_to(r, id, p->ack_handle, MG_LIST(mg_str("a"), mg_int((int64_t)p->pos)));
}

static void pull_ctl(struct mg_router *r, struct pull_src *p, struct mg_message *msg,
		     const char *src, bool sync)
{
	struct mg_value *v = NULL;
	char why[512];
	uint32_t id = mg_context_remote_id(p->ctx);
	const void *raw, *data;
	size_t len, dlen;
	uint32_t entry;
	uint64_t off;

	if (mg_message_is_dead(msg) || p->error)
		goto out;
	raw = mg_message_data(msg, &len);
	if (p->have_manifest && files_chunk_view(raw, len, &entry, &off, &data, &dlen)) {
		pull_chunk(p, r, id, entry, off, data, dlen);
		goto out;
	}
	if (mg_message_value(msg, false, &v, NULL) < 0 || v->type != MG_LIST || !v->len ||
	    v->items[0].type != MG_STR) {
		pull_fail(p, r, EPROTO, "malformed message from the source");
		goto out;
	}
	if (!strcmp(v->items[0].str, "m") && v->len == 3 && v->items[1].type == MG_INT &&
	    !p->have_manifest) {
		char *b = strdup(src), *bn;
		struct mg_value *have;
		int ret;

		p->ack_handle = (uint32_t)v->items[1].i;
		ret = manifest_from_value(&v->items[2], &p->m, why, sizeof(why));
		if (ret < 0 || !b) {
			free(b);
			pull_fail(p, r, ret < 0 ? -ret : ENOMEM, why);
			goto out;
		}
		p->have_manifest = true;
		bn = basename(b);
		if (!*bn || !files_rel_ok(bn) || !strcmp(bn, "/")) {
			free(b);
			pull_fail(p, r, EINVAL, "source path has no name to copy to");
			goto out;
		}
		writer_prepare(&p->w, &p->m, p->dir, bn, false, true, 0);
		p->w.sync = sync;
		free(b);
		if (p->w.error) {
			pull_fail(p, r, -p->w.error, p->w.why);
			goto out;
		}
		have = mg_list();
		for (size_t i = 0; i < p->m.n; i++)
			mg_list_append(have, mg_int(p->w.have[i]));
		files_send_to(r, id, p->ack_handle, MG_LIST(mg_str("r"), mg_int(0), have));
	} else if (!strcmp(v->items[0].str, "d") && p->have_manifest && v->len == 4 &&
		   v->items[1].type == MG_INT && v->items[2].type == MG_INT &&
		   v->items[3].type == MG_BYTES && v->items[1].i >= 0 && v->items[2].i >= 0) {
		pull_chunk(p, r, id, (uint32_t)v->items[1].i, (uint64_t)v->items[2].i,
			   v->items[3].bytes, v->items[3].len);
	} else if (!strcmp(v->items[0].str, "e") && p->have_manifest) {
		writer_end(&p->w);
		if (p->w.error) {
			pull_fail(p, r, -p->w.error, p->w.why);
			goto out;
		}
		/* pos + 1: everything, "e" included, is written. */
		files_send_to(r, id, p->ack_handle, MG_LIST(mg_str("a"), mg_int((int64_t)p->pos + 1)));
	} else {
		pull_fail(p, r, EPROTO, "unexpected message from the source");
	}
out:
	mg_value_free(v);
	mg_message_free(msg);
}

int mg_files_pull(struct mg_router *r, const char *src, const char *destdir,
		  struct mg_context *const *ctxs, const char *const *names, size_t n,
		  const struct mg_files_opts *opts, struct mg_files_result *results,
		  struct mg_error *err)
{
	struct pull_src *ps;
	struct mg_select *sel;
	struct mg_files_progress prog = { .n = n };
	mg_files_progress_fn progress = FILES_OPT(opts, progress, NULL);
	double last = 0;
	int failed = 0;

	mg_error_clear(err);
	if (!r || !src || !*src || !destdir || (n && (!ctxs || !names || !results))) {
		if (err) {
			err->kind = MG_ERR_CALL;
			err->errnum = EINVAL;
			snprintf(err->message, sizeof(err->message), "invalid arguments to mg_files_pull");
		}
		return -EINVAL;
	}
	/* Names first: a collision is refused before anything is asked. */
	for (size_t i = 0; i < n; i++) {
		if (!names[i] || !*names[i] || strchr(names[i], '/') || !files_rel_ok(names[i])) {
			if (err) {
				err->kind = MG_ERR_CALL;
				err->errnum = EINVAL;
				snprintf(err->message, sizeof(err->message),
					 "'%s' cannot name a directory in %s", names[i] ? names[i] : "",
					 destdir);
			}
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(names[i], names[j])) {
				if (err) {
					err->kind = MG_ERR_CALL;
					err->errnum = EEXIST;
					snprintf(err->message, sizeof(err->message),
						 "targets %zu and %zu would both be fetched into %s/%s",
						 j + 1, i + 1, destdir, names[i]);
				}
				return -EEXIST;
			}
	}
	ps = calloc(n ? n : 1, sizeof(*ps));
	sel = mg_select_new(false);
	if (!ps || !sel) {
		free(ps);
		mg_select_free(sel);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		MG_OPTS(mg_receiver_opts, ro, .respondent = ctxs[i]);
		struct pull_src *p = &ps[i];
		struct mg_error e = MG_ERROR_INIT;

		p->ctx = ctxs[i];
		p->w.rootdir = p->w.fd = p->w.dirfd = -1;
		snprintf(p->dir, sizeof(p->dir), "%s/%s", destdir, names[i]);
		if (mkdir(p->dir, 0755) < 0 && errno != EEXIST) {
			char why[PATH_MAX + 64];

			files_errmsg(why, sizeof(why), errno, "creating", p->dir);
			pull_fail(p, r, errno, why);
			p->finished = true;
			continue;
		}
		p->ctl_rx = mg_receiver_new(r, &ro);
		if (p->ctl_rx)
			p->call_rx = mg_call_service_async(ctxs[i], "mg.files", "send",
							   MG_LIST(mg_str(src),
								   mg_bool(FILES_OPT(opts, recursive, false)),
								   mg_int(mg_receiver_handle(p->ctl_rx))),
							   &e);
		if (!p->call_rx || mg_select_add(sel, p->ctl_rx) < 0 ||
		    mg_select_add(sel, p->call_rx) < 0) {
			pull_fail(p, r, e.errnum ? e.errnum : ENOMEM,
				  e.message[0] ? e.message : "cannot start the call");
			p->finished = true;
		}
	}
	for (;;) {
		struct mg_message *msg = NULL;
		struct mg_receiver *rx;
		bool all = true;

		for (size_t i = 0; i < n; i++)
			all &= ps[i].finished;
		if (all)
			break;
		if (mg_select_get(sel, FILES_IDLE_TIMEOUT, &msg, NULL) < 0) {
			for (size_t i = 0; i < n; i++)
				if (!ps[i].finished) {
					pull_fail(&ps[i], r, ETIMEDOUT, "nothing heard from the source");
					ps[i].finished = true;
				}
			break;
		}
		rx = mg_message_receiver(msg);
		for (size_t i = 0; i < n; i++) {
			struct pull_src *p = &ps[i];

			if (rx == p->ctl_rx) {
				pull_ctl(r, p, msg, src, !FILES_OPT(opts, no_fsync, false));
				msg = NULL;
				break;
			}
			if (rx == p->call_rx) {
				struct mg_value *v = NULL;
				struct mg_error e = MG_ERROR_INIT;

				if (mg_message_value(msg, true, &v, &e) < 0) {
					char buf[MG_ERROR_MSG_MAX + 300];

					/* The source's own words (no such file...). */
					pull_fail(p, r, e.errnum ? e.errnum : EIO,
						  e.kind == MG_ERR_CALL ? e.message :
						  mg_error_str(&e, buf, sizeof(buf)));
				} else if (!p->w.error && (!p->have_manifest || p->w.started)) {
					pull_fail(p, r, EIO, "the source ended early");
				}
				mg_value_free(v);
				mg_select_remove(sel, p->call_rx);
				p->finished = true;
				break;
			}
		}
		mg_message_free(msg);
		if (progress && files_now() - last >= 0.1) {
			last = files_now();
			prog.bytes = prog.total = prog.done = prog.failed = 0;
			for (size_t i = 0; i < n; i++) {
				prog.bytes += ps[i].pos;
				prog.total += ps[i].m.total;
				prog.done += ps[i].finished && !ps[i].error;
				prog.failed += ps[i].finished && ps[i].error;
			}
			progress(&prog, FILES_OPT(opts, progress_data, NULL));
		}
	}
	prog.bytes = prog.total = prog.done = prog.failed = 0;
	for (size_t i = 0; i < n; i++) {
		struct pull_src *p = &ps[i];

		if (p->w.started)
			writer_abort(&p->w);
		files_result_set(&results[i], p->error, p->why, p->w.bytes);
		failed += p->error != 0;
		prog.bytes += p->pos;
		prog.total += p->m.total;
		prog.done += !p->error;
		prog.failed += !!p->error;
	}
	if (progress)
		progress(&prog, FILES_OPT(opts, progress_data, NULL));
	mg_select_free(sel);
	for (size_t i = 0; i < n; i++) {
		mg_receiver_free(ps[i].call_rx);
		mg_receiver_free(ps[i].ctl_rx);
		writer_free(&ps[i].w);
		manifest_free(&ps[i].m);
	}
	free(ps);
	return failed;
}
