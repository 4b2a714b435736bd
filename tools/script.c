// SPDX-License-Identifier: MIT
/*
 * tools/script.c — turning words into the steps of one invocation: run
 * steps split at ";" words, and script files of run/call lines, split
 * into words with sh's quoting (and nothing else of sh: no variables, no
 * globs, no redirections; a step that wants them runs `sh -c '...'`).
 *
 * Owns: the step list it builds (the caller frees it). Must not touch:
 * targets, output, the library beyond building values.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/mitogen.h>

#include "tools/json_args.h"
#include "tools/script.h"

static int why_set(char *why, size_t size, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int why_set(char *why, size_t size, int rc, const char *fmt, ...)
{
	va_list ap;

	if (why && size) {
		va_start(ap, fmt);
		vsnprintf(why, size, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void run_step_clear(struct run_step *s)
{
	if (!s)
		return;
	free(s->fn);
	free(s->text);
	mg_value_free(s->args);
	memset(s, 0, sizeof(*s));
}

void script_words_free(char **words)
{
	if (!words)
		return;
	for (char **w = words; *w; w++)
		free(*w);
	free(words);
}

int script_words(const char *line, char ***ret, size_t *ret_n, char *why,
		 size_t why_size)
{
	size_t len = strlen(line), n = 0;
	char **words = calloc(len / 2 + 2, sizeof(*words));
	char *word = malloc(len + 1);
	const char *p = line;
	int rc = 0;

	if (!words || !word) {
		rc = -ENOMEM;
		goto fail;
	}
	for (;;) {
		size_t w = 0;
		bool have = false;

		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p || *p == '#')
			break;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			have = true;
			if (*p == '\'') {
				const char *close = strchr(p + 1, '\'');

				if (!close) {
					rc = why_set(why, why_size, -EINVAL, "unclosed ' quote");
					goto fail;
				}
				memcpy(word + w, p + 1, (size_t)(close - p - 1));
				w += (size_t)(close - p - 1);
				p = close + 1;
			} else if (*p == '"') {
				p++;
				while (*p && *p != '"') {
					if (*p == '\\' && p[1] && strchr("\"\\$`\n", p[1])) {
						if (p[1] != '\n')
							word[w++] = p[1];
						p += 2;
						continue;
					}
					word[w++] = *p++;
				}
				if (*p != '"') {
					rc = why_set(why, why_size, -EINVAL, "unclosed \" quote");
					goto fail;
				}
				p++;
			} else if (*p == '\\') {
				if (p[1] && p[1] != '\n')
					word[w++] = p[1];
				p += p[1] ? 2 : 1;
			} else {
				word[w++] = *p++;
			}
		}
		if (!have)
			break;
		words[n] = strndup(word, w);
		if (!words[n]) {
			rc = -ENOMEM;
			goto fail;
		}
		n++;
	}
	free(word);
	*ret = words;
	*ret_n = n;
	return 0;
fail:
	free(word);
	script_words_free(words);
	return rc;
}

/* "a b c" from words[0..n), each quoted when it holds a blank or quote. */
static char *words_text(const char *first, char *const *words, size_t n)
{
	size_t len = (first ? strlen(first) + 1 : 0) + 1;
	char *text, *o;

	for (size_t i = 0; i < n; i++)
		len += 2 * strlen(words[i]) + 3;
	text = malloc(len);
	if (!text)
		return NULL;
	o = text;
	if (first)
		o += sprintf(o, "%s%s", first, n ? " " : "");
	for (size_t i = 0; i < n; i++) {
		bool quote = !words[i][0] || strpbrk(words[i], " \t'\"\\;#");

		if (i)
			*o++ = ' ';
		if (quote)
			*o++ = '\'';
		for (const char *c = words[i]; *c; c++) {
			if (*c == '\'' && quote) {
				memcpy(o, "'\\''", 4);
				o += 4;
			} else {
				*o++ = *c;
			}
		}
		if (quote)
			*o++ = '\'';
	}
	*o = '\0';
	return text;
}

int script_run_step(char *const *argv, size_t n, struct run_step *ret)
{
	struct mg_value *list = mg_list();

	memset(ret, 0, sizeof(*ret));
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (mg_list_append(list, mg_str(argv[i])) < 0) {
			mg_value_free(list);
			return -ENOMEM;
		}
	ret->args = list;
	ret->text = words_text(NULL, argv, n);
	if (!ret->text) {
		run_step_clear(ret);
		return -ENOMEM;
	}
	return 0;
}

int script_call_step(const char *fn, char *const *args, size_t n,
		     struct run_step *ret, char *why, size_t why_size)
{
	struct mg_value *list = mg_list();

	memset(ret, 0, sizeof(*ret));
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct mg_value *v = json_args_parse(args[i], NULL);

		if (!v) {
			int e = errno;

			mg_value_free(list);
			if (e == E2BIG)
				return why_set(why, why_size, -E2BIG,
					       "argument %zu: JSON nested deeper than %d levels",
					       i + 1, JSON_ARGS_MAX_DEPTH);
			return -ENOMEM;
		}
		if (mg_list_append(list, v) < 0) {
			mg_value_free(list);
			return -ENOMEM;
		}
	}
	ret->is_call = true;
	ret->args = list;
	ret->fn = strdup(fn);
	ret->text = words_text("call", (char *const[]){ (char *)fn }, 1);
	if (ret->text && n) {
		char *rest = words_text(ret->text, args, n);

		free(ret->text);
		ret->text = rest;
	}
	if (!ret->fn || !ret->text) {
		run_step_clear(ret);
		return -ENOMEM;
	}
	return 0;
}

/* Make room for one more step. */
static int steps_grow(struct run_step **steps, size_t n, char *why, size_t why_size)
{
	struct run_step *grown;

	if (n >= SCRIPT_STEPS_MAX)
		return why_set(why, why_size, -EINVAL, "more than %d steps",
			       SCRIPT_STEPS_MAX);
	grown = reallocarray(*steps, n + 1, sizeof(**steps));
	if (!grown)
		return -ENOMEM;
	*steps = grown;
	return 0;
}

int script_split_run(char *const *argv, size_t n, struct run_step **steps,
		     size_t *nsteps, char *why, size_t why_size)
{
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		int rc;

		if (i < n && strcmp(argv[i], ";"))
			continue;
		if (i == start)
			return why_set(why, why_size, -EINVAL,
				       "run: empty step (steps are separated by a ';' word: "
				       "CMD1 \\; CMD2)");
		rc = steps_grow(steps, *nsteps, why, why_size);
		if (rc == 0)
			rc = script_run_step(argv + start, i - start, &(*steps)[*nsteps]);
		if (rc < 0)
			return rc;
		(*nsteps)++;
		start = i + 1;
	}
	return 0;
}

/* One line's words into a step. */
static int script_line_step(char **w, size_t n, struct run_step **steps,
			    size_t *nsteps, char *why, size_t why_size)
{
	int rc = steps_grow(steps, *nsteps, why, why_size);

	if (rc < 0)
		return rc;
	if (!strcmp(w[0], "run")) {
		size_t skip = n > 1 && !strcmp(w[1], "--") ? 2 : 1;

		if (skip >= n)
			return why_set(why, why_size, -EINVAL, "run: no command given");
		rc = script_run_step(w + skip, n - skip, &(*steps)[*nsteps]);
	} else if (!strcmp(w[0], "call")) {
		if (n < 2)
			return why_set(why, why_size, -EINVAL, "call: no function name given");
		rc = script_call_step(w[1], w + 2, n - 2, &(*steps)[*nsteps], why,
				      why_size);
		if (rc == -E2BIG)
			rc = -EINVAL;
	} else {
		return why_set(why, why_size, -EINVAL,
			       "unknown step '%s' (expected run or call)", w[0]);
	}
	if (rc == 0)
		(*nsteps)++;
	return rc;
}

int script_load(const char *path, struct run_step **steps, size_t *nsteps,
		char *why, size_t why_size)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	char *line = NULL, inner[512] = "";
	size_t cap = 0, lineno = 0, before = *nsteps;
	int rc = 0;

	if (!f)
		return why_set(why, why_size, -errno, "%s: %s", path, strerror(errno));
	while (getline(&line, &cap, f) >= 0) {
		char **w = NULL;
		size_t n = 0;

		lineno++;
		rc = script_words(line, &w, &n, inner, sizeof(inner));
		if (rc == 0 && n)
			rc = script_line_step(w, n, steps, nsteps, inner, sizeof(inner));
		script_words_free(w);
		if (rc == -EINVAL) {
			why_set(why, why_size, rc, "%s:%zu: %s", path, lineno, inner);
			break;
		}
		if (rc < 0)
			break;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	if (rc == 0 && *nsteps == before)
		rc = why_set(why, why_size, -EINVAL, "%s: no steps (lines of run ... or call ...)",
			     path);
	return rc;
}

void script_steps_free(struct run_step *steps, size_t n)
{
	for (size_t i = 0; steps && i < n; i++)
		run_step_clear(&steps[i]);
	free(steps);
}
