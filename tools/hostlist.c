// SPDX-License-Identifier: MIT
/*
 * tools/hostlist.c — expanding pdsh's host ranges ("web[01-20]"). The
 * count is worked out before anything is made, so a typo such as
 * "[1-99999999]" fails at once instead of eating memory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/hostlist.h"

/* Digits in one number of a range: enough for any host numbering. */
#define NUM_DIGITS_MAX 9

/* One "LO-HI" or "N" of a group. */
struct span {
	unsigned long lo, hi;
	int width;		/* pad to this many digits (0: no padding) */
};

struct group {
	size_t start, end;	/* '[' and one past ']' in the text */
	struct span *spans;
	size_t nspans;
	size_t count;		/* numbers the group stands for */
};

static int why_set(char *why, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int why_set(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (why && size) {
		va_start(ap, fmt);
		vsnprintf(why, size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

size_t hostlist_item_len(const char *text, size_t len)
{
	int depth = 0;

	for (size_t i = 0; i < len; i++) {
		if (text[i] == '[')
			depth++;
		else if (text[i] == ']' && depth > 0)
			depth--;
		else if (text[i] == ',' && depth == 0)
			return i;
	}
	return len;
}

/* Is text[0..len) made only of digits, ',' and '-' (a range group)? */
static bool is_range(const char *text, size_t len)
{
	if (len == 0)
		return true;	/* "[]": a range with nothing in it */
	for (size_t i = 0; i < len; i++)
		if (!strchr("0123456789,-", text[i]))
			return false;
	return true;
}

/* Read one number of at most NUM_DIGITS_MAX digits at *p. */
static int read_num(const char **p, const char *end, unsigned long *v,
		    int *digits)
{
	const char *q = *p;

	*v = 0;
	while (q < end && *q >= '0' && *q <= '9' && q - *p < NUM_DIGITS_MAX + 1)
		*v = *v * 10 + (unsigned long)(*q++ - '0');
	*digits = (int)(q - *p);
	if (*digits == 0 || *digits > NUM_DIGITS_MAX)
		return -1;
	*p = q;
	return 0;
}

/* Parse the inside of a range group, text[0..len), into g->spans. */
static int group_parse(struct group *g, const char *text, size_t len,
		       const char *whole, size_t wlen, char *why,
		       size_t why_size)
{
	const char *p = text, *end = text + len;

	if (len == 0)
		return why_set(why, why_size, "'%.*s': empty range '[]'",
			       (int)wlen, whole);
	for (;;) {
		struct span s;
		int dlo, dhi;	/* digits written */
		struct span *grown;
		const char *lo_at = p;

		if (read_num(&p, end, &s.lo, &dlo) < 0)
			goto bad;
		s.hi = s.lo;
		if (p < end && *p == '-') {
			p++;
			if (read_num(&p, end, &s.hi, &dhi) < 0)
				goto bad;
		}
		if (s.hi < s.lo)
			return why_set(why, why_size,
				       "'%.*s': range %lu-%lu goes backwards",
				       (int)wlen, whole, s.lo, s.hi);
		/* "01-10" pads to 2; "1-10" does not pad */
		s.width = dlo > 1 && *lo_at == '0' ? dlo : 0;
		grown = reallocarray(g->spans, g->nspans + 1, sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		g->spans = grown;
		g->spans[g->nspans++] = s;
		g->count += s.hi - s.lo + 1;
		if (p == end)
			return 0;
		if (*p++ != ',' || p == end)
			goto bad;
	}
bad:
	return why_set(why, why_size,
		       "'%.*s': bad range '[%.*s]' (want numbers of at most %d digits: [1-5], [01-20], [1,3,5])",
		       (int)wlen, whole, (int)len, text, NUM_DIGITS_MAX);
}

static void groups_free(struct group *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(g[i].spans);
	free(g);
}

/* Find and parse every range group of text[0..len). */
static int groups_find(const char *text, size_t len, struct group **ret,
		       size_t *nret, char *why, size_t why_size)
{
	struct group *g = NULL, *grown;
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < len; i++) {
		const char *close;

		if (text[i] == ']') {
			rc = why_set(why, why_size, "'%.*s': ']' without '['",
				     (int)len, text);
			goto fail;
		}
		if (text[i] != '[')
			continue;
		close = memchr(text + i + 1, ']', len - i - 1);
		if (!close) {
			rc = why_set(why, why_size, "'%.*s': '[' without ']'",
				     (int)len, text);
			goto fail;
		}
		if (memchr(text + i + 1, '[', (size_t)(close - text) - i - 1)) {
			rc = why_set(why, why_size, "'%.*s': nested '['",
				     (int)len, text);
			goto fail;
		}
		if (is_range(text + i + 1, (size_t)(close - text) - i - 1)) {
			grown = reallocarray(g, n + 1, sizeof(*grown));
			if (!grown) {
				rc = -ENOMEM;
				goto fail;
			}
			g = grown;
			memset(&g[n], 0, sizeof(g[n]));
			g[n].start = i;
			g[n].end = (size_t)(close - text) + 1;
			n++;
			rc = group_parse(&g[n - 1], text + i + 1,
					 (size_t)(close - text) - i - 1, text,
					 len, why, why_size);
			if (rc < 0)
				goto fail;
		}
		i = (size_t)(close - text);
	}
	*ret = g;
	*nret = n;
	return 0;
fail:
	groups_free(g, n);
	return rc;
}

/* The idx-th number of group g, in order. */
static void group_nth(const struct group *g, size_t idx, unsigned long *v,
		      int *width)
{
	for (size_t i = 0; i < g->nspans; i++) {
		size_t c = g->spans[i].hi - g->spans[i].lo + 1;

		if (idx < c) {
			*v = g->spans[i].lo + idx;
			*width = g->spans[i].width;
			return;
		}
		idx -= c;
	}
}

/* Write name number k (mixed radix over the groups, last fastest). */
static char *name_make(const char *text, size_t len, const struct group *g,
		       size_t ng, size_t k, size_t size)
{
	char *name = malloc(size), *o = name;
	size_t at = 0, idx[ng ? ng : 1];

	if (!name)
		return NULL;
	for (size_t i = ng; i-- > 0;) {
		idx[i] = k % g[i].count;
		k /= g[i].count;
	}
	for (size_t i = 0; i < ng; i++) {
		unsigned long v = 0;
		int width = 0;

		memcpy(o, text + at, g[i].start - at);
		o += g[i].start - at;
		group_nth(&g[i], idx[i], &v, &width);
		o += sprintf(o, "%0*lu", width, v);
		at = g[i].end;
	}
	memcpy(o, text + at, len - at);
	o[len - at] = '\0';
	return name;
}

int hostlist_expand(const char *text, size_t len, size_t max, char ***ret,
		    char *why, size_t why_size)
{
	struct group *g = NULL;
	size_t ng = 0, total = 1;
	char **v;
	int rc;

	rc = groups_find(text, len, &g, &ng, why, why_size);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < ng; i++) {
		if (g[i].count > max || total > max / g[i].count) {
			groups_free(g, ng);
			why_set(why, why_size, "'%.*s' names more than %zu hosts",
				(int)len, text, max);
			return -E2BIG;
		}
		total *= g[i].count;
	}
	v = calloc(total, sizeof(*v));
	if (!v) {
		groups_free(g, ng);
		return -ENOMEM;
	}
	/* a number is never longer than its group's text: len + 1 is enough */
	for (size_t k = 0; k < total; k++) {
		v[k] = name_make(text, len, g, ng, k, len + 1);
		if (!v[k]) {
			hostlist_free(v, k);
			groups_free(g, ng);
			return -ENOMEM;
		}
	}
	groups_free(g, ng);
	*ret = v;
	return (int)total;
}

void hostlist_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* --- folding ------------------------------------------------------------ */

/* One name, split around its last run of digits. */
struct fold_item {
	const char *name;
	size_t pre;		/* bytes before the digits */
	size_t digits;		/* 0: no digits (or too many): kept whole */
	unsigned long num;
	int width;		/* zero-padded width, 0: not padded */
	size_t group;		/* index of its group */
};

struct fold_group {
	size_t first;		/* its first item */
	int width;
	unsigned long *nums;
	size_t n;
};

/* Same prefix and suffix around the digits? */
static bool fold_same_frame(const struct fold_item *a, const struct fold_item *b)
{
	size_t sa = strlen(a->name + a->pre + a->digits);
	size_t sb = strlen(b->name + b->pre + b->digits);

	return a->pre == b->pre && sa == sb &&
	       !memcmp(a->name, b->name, a->pre) &&
	       !memcmp(a->name + a->pre + a->digits, b->name + b->pre + b->digits, sa);
}

static void fold_split(struct fold_item *it, const char *name)
{
	size_t len = strlen(name), end = len, start;

	memset(it, 0, sizeof(*it));
	it->name = name;
	while (end > 0 && (name[end - 1] < '0' || name[end - 1] > '9'))
		end--;
	start = end;
	while (start > 0 && name[start - 1] >= '0' && name[start - 1] <= '9')
		start--;
	/* a '[' or ']' in the name would make the folded text ambiguous */
	if (end == start || end - start > NUM_DIGITS_MAX || strpbrk(name, "[],")) {
		it->pre = len;
		return;
	}
	it->pre = start;
	it->digits = end - start;
	for (size_t i = start; i < end; i++)
		it->num = it->num * 10 + (unsigned long)(name[i] - '0');
	it->width = it->digits > 1 && name[start] == '0' ? (int)it->digits : 0;
}

static int fold_cmp_ul(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;

	return x < y ? -1 : x > y;
}

/* Append text[0..len) to *buf (size *cap, *used bytes). */
static int fold_put(char **buf, size_t *used, size_t *cap, const char *text, size_t len)
{
	if (*used + len + 1 > *cap) {
		size_t c = (*cap ? *cap : 64);
		char *p;

		while (c < *used + len + 1)
			c *= 2;
		p = realloc(*buf, c);
		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = c;
	}
	memcpy(*buf + *used, text, len);
	*used += len;
	(*buf)[*used] = '\0';
	return 0;
}

/* Write group g ("web[01-03,05]" or "web01" for one number). */
static int fold_write_group(char **buf, size_t *used, size_t *cap,
			    const struct fold_item *first, const struct fold_group *g)
{
	const char *suffix = first->name + first->pre + first->digits;
	char num[2 * NUM_DIGITS_MAX + 8];
	bool ranged = g->n > 1;
	int rc;

	rc = fold_put(buf, used, cap, first->name, first->pre);
	if (!rc && ranged)
		rc = fold_put(buf, used, cap, "[", 1);
	for (size_t i = 0; !rc && i < g->n;) {
		size_t j = i;
		int n;

		while (j + 1 < g->n && g->nums[j + 1] == g->nums[j] + 1)
			j++;
		if (j == i)
			n = snprintf(num, sizeof(num), "%s%0*lu", i ? "," : "",
				     g->width, g->nums[i]);
		else
			n = snprintf(num, sizeof(num), "%s%0*lu-%0*lu", i ? "," : "",
				     g->width, g->nums[i], g->width, g->nums[j]);
		rc = fold_put(buf, used, cap, num, (size_t)n);
		i = j + 1;
	}
	if (!rc && ranged)
		rc = fold_put(buf, used, cap, "]", 1);
	if (!rc)
		rc = fold_put(buf, used, cap, suffix, strlen(suffix));
	return rc;
}

char *hostlist_fold(const char *const *names, size_t n)
{
	struct fold_item *it = NULL;
	struct fold_group *g = NULL;
	size_t ng = 0, used = 0, cap = 0;
	char *buf = NULL;
	int rc = 0;

	if (!names && n) {
		errno = EINVAL;
		return NULL;
	}
	it = calloc(n ? n : 1, sizeof(*it));
	g = calloc(n ? n : 1, sizeof(*g));
	if (!it || !g)
		goto nomem;
	for (size_t i = 0; i < n; i++)
		fold_split(&it[i], names[i]);
	/*
	 * Groups: padded widths first, so that an unpadded number as long
	 * as a padded group's width (web10 beside web01) joins that group.
	 */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			size_t k;

			if (!it[i].digits || (pass == 0) != (it[i].width > 0))
				continue;
			for (k = 0; k < ng; k++) {
				const struct fold_item *f = &it[g[k].first];

				if (!fold_same_frame(f, &it[i]))
					continue;
				if (g[k].width == it[i].width ||
				    (it[i].width == 0 && g[k].width == (int)it[i].digits))
					break;
			}
			if (k == ng) {
				g[ng].first = i;
				g[ng].width = it[i].width;
				ng++;
			}
			it[i].group = k;
			if (g[k].first > i)
				g[k].first = i;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct fold_group *gr = &g[it[i].group];

		if (!it[i].digits)
			continue;
		if (!gr->nums) {
			gr->nums = calloc(n, sizeof(*gr->nums));
			if (!gr->nums)
				goto nomem;
		}
		gr->nums[gr->n++] = it[i].num;
	}
	for (size_t k = 0; k < ng; k++) {
		size_t m = 0;

		qsort(g[k].nums, g[k].n, sizeof(*g[k].nums), fold_cmp_ul);
		for (size_t i = 0; i < g[k].n; i++)
			if (!m || g[k].nums[m - 1] != g[k].nums[i])
				g[k].nums[m++] = g[k].nums[i];
		g[k].n = m;
	}
	/* in the order of first appearance; each group at its first item */
	rc = fold_put(&buf, &used, &cap, "", 0);
	for (size_t i = 0; !rc && i < n; i++) {
		bool dup = false;

		if (it[i].digits && g[it[i].group].first != i)
			continue;
		if (!it[i].digits) {
			for (size_t j = 0; j < i && !dup; j++)
				dup = !it[j].digits && !strcmp(it[j].name, it[i].name);
			if (dup)
				continue;
		}
		if (used)
			rc = fold_put(&buf, &used, &cap, ",", 1);
		if (rc)
			break;
		if (it[i].digits)
			rc = fold_write_group(&buf, &used, &cap, &it[i], &g[it[i].group]);
		else
			rc = fold_put(&buf, &used, &cap, it[i].name, strlen(it[i].name));
	}
	if (rc)
		goto nomem;
	for (size_t k = 0; k < ng; k++)
		free(g[k].nums);
	free(g);
	free(it);
	return buf;
nomem:
	if (g)
		for (size_t k = 0; k < ng; k++)
			free(g[k].nums);
	free(g);
	free(it);
	free(buf);
	errno = ENOMEM;
	return NULL;
}
