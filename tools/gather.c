// SPDX-License-Identifier: MIT
/*
 * tools/gather.c — the tool's -b/--gather and --diff views: the targets'
 * results of each step grouped when identical (stdout, stderr, outcome),
 * each group named by its hosts folded into ranges ("web[01-03,05] (4)"),
 * and with --diff each group shown as a unified diff against the most
 * common one (out_diff, a line diff by the longest common subsequence).
 *
 * Owns: the memory of the grouping and the diff while they are made.
 * Must not touch: the library, targets, threads (output.c's rules).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/hostlist.h"
#include "tools/output.h"
#include "tools/output_int.h"

/* out_diff compares by a quadratic table of at most this many cells. */
#define OUT_DIFF_CELLS ((size_t)4 << 20)
/* Lines of context around a change in a diff. */
#define OUT_DIFF_CONTEXT 3

/* --- diff --------------------------------------------------------------- */

struct line {
	const char *p;
	size_t len;
};

static size_t split_lines(const char *s, size_t len, struct line **ret)
{
	size_t n = 0, k = 0;
	struct line *v;

	for (size_t i = 0; i < len; i++)
		n += s[i] == '\n';
	if (len && s[len - 1] != '\n')
		n++;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return (size_t)-1;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t m = nl ? (size_t)(nl - (s + i)) : len - i;

		v[k].p = s + i;
		v[k].len = m;
		k++;
		i += m + 1;
	}
	*ret = v;
	return n;
}

static bool line_eq(const struct line *a, const struct line *b)
{
	return a->len == b->len && !memcmp(a->p, b->p, a->len);
}

char *out_diff(const char *a, size_t alen, const char *b, size_t blen)
{
	struct line *la = NULL, *lb = NULL;
	size_t na, nb, nops = 0;
	uint32_t *tab = NULL;
	/* ops: ' ' same, '-' only in a, '+' only in b; with line indexes */
	struct op { char kind; size_t ai, bi; } *ops = NULL;
	struct obuf o = { 0 };

	na = split_lines(a, alen, &la);
	nb = split_lines(b, blen, &lb);
	if (na == (size_t)-1 || nb == (size_t)-1)
		goto fail;
	ops = calloc(na + nb + 1, sizeof(*ops));
	if (!ops)
		goto fail;
	if ((na + 1) * (nb + 1) <= OUT_DIFF_CELLS)
		tab = calloc((na + 1) * (nb + 1), sizeof(*tab));
	if (tab) {
		/* tab[i][j]: longest common subsequence of a[i..] and b[j..] */
#define T(i, j) tab[(i) * (nb + 1) + (j)]
		for (size_t i = na; i-- > 0;)
			for (size_t j = nb; j-- > 0;)
				T(i, j) = line_eq(&la[i], &lb[j]) ? T(i + 1, j + 1) + 1 :
					  T(i + 1, j) >= T(i, j + 1) ? T(i + 1, j) : T(i, j + 1);
		size_t i = 0, j = 0;

		while (i < na || j < nb) {
			if (i < na && j < nb && line_eq(&la[i], &lb[j])) {
				ops[nops++] = (struct op){ ' ', i++, j++ };
			} else if (j >= nb || (i < na && T(i + 1, j) >= T(i, j + 1))) {
				ops[nops++] = (struct op){ '-', i++, j };
			} else {
				ops[nops++] = (struct op){ '+', i, j++ };
			}
		}
#undef T
	} else {
		for (size_t i = 0; i < na; i++)
			ops[nops++] = (struct op){ '-', i, 0 };
		for (size_t j = 0; j < nb; j++)
			ops[nops++] = (struct op){ '+', na, j };
	}
	obuf_puts(&o, "");
	for (size_t k = 0; k < nops;) {
		size_t start, end, ac = 0, bc = 0, as, bs;

		if (ops[k].kind == ' ') {
			k++;
			continue;
		}
		/* a hunk: this change, and every change within 2 * context */
		start = k > OUT_DIFF_CONTEXT ? k - OUT_DIFF_CONTEXT : 0;
		end = k;
		for (size_t m = k; m < nops; m++) {
			if (ops[m].kind != ' ')
				end = m;
			else if (m - end > 2 * OUT_DIFF_CONTEXT)
				break;
		}
		end = end + OUT_DIFF_CONTEXT + 1 < nops ? end + OUT_DIFF_CONTEXT + 1 : nops;
		as = ops[start].ai;
		bs = ops[start].bi;
		for (size_t m = start; m < end; m++) {
			ac += ops[m].kind != '+';
			bc += ops[m].kind != '-';
		}
		obuf_printf(&o, "@@ -%zu,%zu +%zu,%zu @@\n", ac ? as + 1 : as, ac,
			    bc ? bs + 1 : bs, bc);
		for (size_t m = start; m < end; m++) {
			const struct line *l = ops[m].kind == '+' ? &lb[ops[m].bi] : &la[ops[m].ai];

			obuf_put(&o, &ops[m].kind, 1);
			obuf_put(&o, l->p, l->len);
			obuf_put(&o, "\n", 1);
		}
		k = end;
	}
	free(tab);
	free(ops);
	free(la);
	free(lb);
	if (o.failed) {
		obuf_free(&o);
		errno = ENOMEM;
	}
	return o.p;
fail:
	free(tab);
	free(ops);
	free(la);
	free(lb);
	errno = ENOMEM;
	return NULL;
}

/* --- groups and diffs ---------------------------------------------------- */

struct group {
	size_t first;		/* target holding the group's result */
	size_t *members;
	size_t n;
};

static bool same_result(const struct out_step *a, const struct out_step *b)
{
	if (a->outcome != b->outcome || a->status != b->status)
		return false;
	for (int f = 0; f < 2; f++)
		if (a->data[f].len != b->data[f].len ||
		    (a->data[f].len && memcmp(a->data[f].p, b->data[f].p, a->data[f].len)))
			return false;
	if (!a->error != !b->error)
		return false;
	return !a->error || !strcmp(a->error, b->error);
}

/* Group the targets' results of one step (targets whose step ran). */
static size_t group_step(struct output *out, size_t step, struct group *g)
{
	size_t ng = 0;

	for (size_t t = 0; t < out->n; t++) {
		const struct out_step *s = &out->t[t].steps[step];
		size_t k;

		if (s->outcome == OUT_PENDING)
			continue;
		for (k = 0; k < ng; k++)
			if (same_result(&out->t[g[k].first].steps[step], s))
				break;
		if (k == ng) {
			g[ng].first = t;
			g[ng].n = 0;
			ng++;
		}
		g[k].members[g[k].n++] = t;
	}
	return ng;
}

/* "web[01-03,05] (4)" for a group. */
static void group_name(struct output *out, struct obuf *b, const struct group *g)
{
	const char **names = calloc(g->n ? g->n : 1, sizeof(*names));
	char *folded;

	if (!names)
		return;
	for (size_t i = 0; i < g->n; i++)
		names[i] = out->labels[g->members[i]];
	folded = hostlist_fold(names, g->n);
	obuf_puts(b, folded ? folded : "?");
	obuf_printf(b, " (%zu)", g->n);
	free(folded);
	free(names);
}

static void gather_block(struct output *out, size_t step, const struct group *g)
{
	const struct out_step *s = &out->t[g->first].steps[step];
	struct obuf head = { 0 };
	static const char rule[] = "----------------\n";

	group_name(out, &head, g);
	if (s->outcome != OUT_OK) {
		obuf_puts(&head, ": ");
		if (s->error)
			obuf_puts(&head, s->error);
		else
			out_describe(&head, s, out_step_is_call(out, step));
	}
	obuf_put(&head, "\n", 1);
	for (int f = 0; f < 2; f++) {
		struct obuf b = { 0 };
		const struct obuf *d = &s->data[f];

		/* a group with nothing to show: its header only if it failed */
		if (!d->len && (f == 1 || s->outcome == OUT_OK))
			continue;
		obuf_puts(&b, rule);
		obuf_put(&b, head.p, head.len - 1);
		obuf_puts(&b, f ? " stderr\n" : "\n");
		obuf_puts(&b, rule);
		obuf_put(&b, d->p, d->len);
		if (d->len && d->p[d->len - 1] != '\n')
			obuf_put(&b, "\n", 1);
		out_emit_buf(out, f ? out->o.err_fd : out->o.out_fd, &b);
	}
	obuf_free(&head);
}

static void diff_block(struct output *out, size_t step, const struct group *ref,
		       const struct group *g)
{
	const struct out_step *r = &out->t[ref->first].steps[step];
	const struct out_step *s = &out->t[g->first].steps[step];

	for (int f = 0; f < 2; f++) {
		struct obuf b = { 0 };
		char *d;

		if (f == 1 && r->data[1].len == s->data[1].len &&
		    (!s->data[1].len || !memcmp(r->data[1].p, s->data[1].p, s->data[1].len)))
			continue;
		obuf_puts(&b, "--- ");
		group_name(out, &b, ref);
		obuf_puts(&b, f ? " stderr" : "");
		obuf_puts(&b, "\n+++ ");
		group_name(out, &b, g);
		obuf_puts(&b, f ? " stderr" : "");
		if (s->outcome != r->outcome || s->status != r->status ||
		    (s->error && (!r->error || strcmp(s->error, r->error)))) {
			obuf_puts(&b, ": ");
			if (s->error)
				obuf_puts(&b, s->error);
			else
				out_describe(&b, s, out_step_is_call(out, step));
		}
		obuf_put(&b, "\n", 1);
		d = out_diff(r->data[f].p ? r->data[f].p : "", r->data[f].len,
			     s->data[f].p ? s->data[f].p : "", s->data[f].len);
		if (d)
			obuf_puts(&b, d);
		free(d);
		out_emit_buf(out, f ? out->o.err_fd : out->o.out_fd, &b);
	}
}

void out_gather_all(struct output *out)
{
	struct group *g = calloc(out->n ? out->n : 1, sizeof(*g));
	size_t *pool = calloc(out->n ? out->n : 1, sizeof(*pool) * (out->n ? out->n : 1));

	if (!g || !pool) {
		free(g);
		free(pool);
		out_note(out, (size_t)-1, "out of memory: cannot group the results");
		return;
	}
	for (size_t i = 0; i < out->n; i++)
		g[i].members = pool + i * out->n;
	for (size_t step = 0; step < out->o.nsteps; step++) {
		size_t ng = group_step(out, step, g), ref = 0;

		if (out->o.nsteps > 1 && ng) {
			struct obuf b = { 0 };

			obuf_printf(&b, "== step %zu: %s ==\n", step + 1,
				    out->o.step_text ? out->o.step_text[step] : "");
			out_emit_buf(out, out->o.out_fd, &b);
		}
		if (!out->o.diff) {
			for (size_t k = 0; k < ng; k++)
				gather_block(out, step, &g[k]);
			continue;
		}
		/* --diff: the most common result is the reference */
		for (size_t k = 1; k < ng; k++)
			if (g[k].n > g[ref].n)
				ref = k;
		for (size_t k = 0; k < ng; k++)
			if (k != ref)
				diff_block(out, step, &g[ref], &g[k]);
	}
	free(pool);
	free(g);
}
