// SPDX-License-Identifier: MIT
/*
 * tools/output.c — how the mitogen tool shows what its targets did: raw
 * bytes for one target, "label: line" for several (pdsh's form, so that
 * dshbak and clubak read it), -b groups of identical results with their
 * hosts folded into ranges (and --diff against the most common one:
 * tools/gather.c), --json NDJSON events (docs/json-schema.md), the summary, the progress
 * line, and the exit status the outcomes add up to.
 *
 * Owns: every byte the tool writes about its targets once they run, and
 * the memory it holds for that: a partial line per target and stream
 * (prefixed mode; a line longer than OUT_LINE_MAX is cut), up to 3 bytes
 * of a split UTF-8 sequence (JSON), and whole outputs only with -b, which
 * must see every result before it can group them.
 * Must not touch: the library, targets, threads; the caller serialises.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/hostlist.h"
#include "tools/output.h"
#include "tools/output_int.h"

/* A partial line longer than this is written as a line of its own. */
#define OUT_LINE_MAX ((size_t)64 << 10)
/* The progress line is redrawn at most this often by events (seconds). */
#define OUT_PROGRESS_EVERY 0.1

static double out_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- buffers ------------------------------------------------------------ */

void obuf_put(struct obuf *b, const void *p, size_t len)
{
	if (b->failed)
		return;
	if (!p)
		p = "";		/* len is 0: memcpy wants a pointer all the same */
	if (b->len + len + 1 > b->cap) {
		size_t c = b->cap ? b->cap : 256;
		char *np;

		while (c < b->len + len + 1)
			c *= 2;
		np = realloc(b->p, c);
		if (!np) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = c;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void obuf_puts(struct obuf *b, const char *s)
{
	obuf_put(b, s, strlen(s));
}

void obuf_printf(struct obuf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		obuf_put(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);

	if (!big) {
		b->failed = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	obuf_put(b, big, (size_t)n);
	free(big);
}

void obuf_free(struct obuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* --- writing ------------------------------------------------------------ */

/* Write all of buf; errors (a closed pipe) are not the targets' fault
 * and change nothing else, so they are dropped. */
static void out_write(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		len -= (size_t)w;
	}
}

/* Take the progress line off the screen before anything else is written. */
static void out_unprogress(struct output *out)
{
	if (out->progress_shown) {
		out_write(out->o.err_fd, "\r\033[K", 4);
		out->progress_shown = false;
	}
}

static void out_emit(struct output *out, int fd, const void *buf, size_t len)
{
	if (len == 0)
		return;
	out_unprogress(out);
	out_write(fd, buf, len);
}

void out_emit_buf(struct output *out, int fd, struct obuf *b)
{
	out_emit(out, fd, b->p, b->len);
	obuf_free(b);
}

static void out_draw(struct output *out, double now)
{
	char line[160];
	double el = now - out->t0;
	int n;

	n = snprintf(line, sizeof(line),
		     "\r\033[K[%zu/%zu done, %zu running, %zu failed, %.1f s, %.1f/s]",
		     out->done, out->n, out->running, out->failed, el,
		     el > 0 ? (double)out->done / el : 0.0);
	out_write(out->o.err_fd, line, (size_t)n);
	out->progress_shown = true;
	out->drawn_at = now;
}

void out_progress(struct output *out)
{
	if (!out || !out->o.progress || out->finished)
		return;
	out_draw(out, out_now());
}

/* After an event: redraw, but not more often than OUT_PROGRESS_EVERY. */
static void out_progress_soon(struct output *out)
{
	double now;

	if (!out->o.progress || out->finished)
		return;
	now = out_now();
	if (!out->progress_shown || now - out->drawn_at >= OUT_PROGRESS_EVERY)
		out_draw(out, now);
}

/* --- JSON --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..len), 0 if invalid, or
 * -(needed) when s is a valid but cut-short prefix of one. */
static int utf8_seq(const unsigned char *s, size_t len)
{
	unsigned c = s[0];
	int need;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (int i = 1; i < need; i++) {
		if ((size_t)i >= len)
			return -need;
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
		/* overlong 3- and 4-byte forms, surrogates, > U+10FFFF:
		 * decided once the second byte is in */
		if (i == 1 && ((need == 3 && cp < 0x20) ||
			       (need == 3 && cp >= 0x360 && cp < 0x380) ||
			       (need == 4 && cp < 0x10) ||
			       (need == 4 && cp > 0x10f)))
			return 0;
	}
	return need;
}

bool out_utf8_valid(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;

	for (size_t i = 0; i < len;) {
		int k = utf8_seq(s + i, len - i);

		if (k <= 0)
			return false;
		i += (size_t)k;
	}
	return true;
}

/* A JSON string of s[0..len); invalid UTF-8 becomes U+FFFD. */
static void obuf_json_str(struct obuf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	obuf_put(b, "\"", 1);
	for (size_t i = 0; i < len;) {
		unsigned c = u[i];
		int k;

		if (c == '"' || c == '\\') {
			obuf_put(b, "\\", 1);
			obuf_put(b, s + i, 1);
			i++;
			continue;
		}
		if (c < 0x20) {
			static const char *const esc[] = { ['\n'] = "\\n", ['\t'] = "\\t",
							   ['\r'] = "\\r", ['\b'] = "\\b",
							   ['\f'] = "\\f" };

			if (esc[c])
				obuf_puts(b, esc[c]);
			else
				obuf_printf(b, "\\u%04x", c);
			i++;
			continue;
		}
		k = utf8_seq(u + i, len - i);
		if (k <= 0) {
			obuf_puts(b, "\xef\xbf\xbd");
			i++;
			continue;
		}
		obuf_put(b, s + i, (size_t)k);
		i += (size_t)k;
	}
	obuf_put(b, "\"", 1);
}

static void obuf_json_cstr(struct obuf *b, const char *s)
{
	if (!s)
		obuf_puts(b, "null");
	else
		obuf_json_str(b, s, strlen(s));
}

static void obuf_base64(struct obuf *b, const unsigned char *p, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	obuf_put(b, "\"", 1);
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		char q[4];

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		q[0] = tab[(v >> 18) & 63];
		q[1] = tab[(v >> 12) & 63];
		q[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		q[3] = i + 2 < len ? tab[v & 63] : '=';
		obuf_put(b, q, 4);
	}
	obuf_put(b, "\"", 1);
}

/* '{"v":1,"event":"E","t":S' and, for a target, its identity. */
static void json_open(struct output *out, struct obuf *b, const char *event,
		      size_t t, size_t step)
{
	obuf_printf(b, "{\"v\":1,\"event\":\"%s\",\"t\":%.3f", event,
		    out_now() - out->t0);
	if (t == (size_t)-1)
		return;
	obuf_puts(b, ",\"target\":");
	obuf_json_cstr(b, out->labels[t]);
	obuf_puts(b, ",\"spec\":");
	obuf_json_cstr(b, out->specs[t]);
	obuf_printf(b, ",\"index\":%zu", t);
	if (step != (size_t)-2) {
		if (step == OUT_NO_STEP)
			obuf_puts(b, ",\"step\":null");
		else
			obuf_printf(b, ",\"step\":%zu", step);
	}
}

static void json_close(struct output *out, struct obuf *b)
{
	obuf_puts(b, "}\n");
	out_emit_buf(out, out->o.out_fd, b);
}

/* --- outcomes and exit status ------------------------------------------- */

static int step_code(const struct output *out, size_t step,
		     const struct out_step *s)
{
	switch (s->outcome) {
	case OUT_PENDING:
	case OUT_OK:
		return OUT_EXIT_OK;
	case OUT_FAILED:
		return s->status < 0 ? 128 + (-s->status & 0x7f) : s->status & 0xff;
	case OUT_CALLERR:
		return out->o.step_is_call && out->o.step_is_call[step] ?
			       OUT_EXIT_CALL : OUT_EXIT_RUN_CALLERR;
	case OUT_TIMEOUT:
		return OUT_EXIT_TIMEOUT;
	case OUT_LOST:
		return OUT_EXIT_LOST;
	case OUT_UNREACHABLE:
	default:
		return OUT_EXIT_UNREACHABLE;
	}
}

int out_exit_code(const struct output *out)
{
	int worst = 0;

	for (size_t t = 0; t < out->n; t++)
		for (size_t s = 0; s < out->o.nsteps; s++) {
			int c = step_code(out, s, &out->t[t].steps[s]);

			if (c > worst)
				worst = c;
		}
	return worst;
}

/* The step that tells how target t ended: its worst, else its last. */
static size_t target_worst_step(const struct output *out, size_t t)
{
	size_t w = 0;

	for (size_t s = 1; s < out->o.nsteps; s++)
		if (out->t[t].steps[s].outcome > out->t[t].steps[w].outcome)
			w = s;
	return w;
}

static bool target_failed(const struct output *out, size_t t)
{
	return out->t[t].steps[target_worst_step(out, t)].outcome > OUT_OK;
}

static const char *const outcome_names[] = {
	[OUT_PENDING] = "pending", [OUT_OK] = "ok", [OUT_FAILED] = "failed",
	[OUT_CALLERR] = "call", [OUT_TIMEOUT] = "timeout", [OUT_LOST] = "lost",
	[OUT_UNREACHABLE] = "unreachable",
};

/* "exit status 3", "killed by signal 15 (SIGTERM)", "unreachable (StreamError)" */
void out_describe(struct obuf *b, const struct out_step *s, bool is_call)
{
	switch (s->outcome) {
	case OUT_PENDING:
		obuf_puts(b, "not run");
		break;
	case OUT_OK:
		obuf_puts(b, is_call ? "returned" : "exit status 0");
		break;
	case OUT_FAILED:
		if (s->status < 0)
			obuf_printf(b, "killed by signal %d (SIG%s)", -s->status,
				    sigabbrev_np(-s->status) ? sigabbrev_np(-s->status) : "?");
		else
			obuf_printf(b, "exit status %d", s->status);
		break;
	case OUT_CALLERR:
		obuf_printf(b, "%s (%s)", is_call ? "call failed" : "could not run",
			    s->kind);
		break;
	case OUT_TIMEOUT:
		obuf_printf(b, "timed out (%s)", s->kind);
		break;
	case OUT_LOST:
		obuf_printf(b, "connection lost (%s)", s->kind);
		break;
	case OUT_UNREACHABLE:
		obuf_printf(b, "unreachable (%s)", s->kind);
		break;
	}
}

bool out_step_is_call(const struct output *out, size_t step)
{
	return out->o.step_is_call && step < out->o.nsteps && out->o.step_is_call[step];
}

/* --- life cycle --------------------------------------------------------- */

struct output *out_new(const struct out_opts *o, size_t n,
		       const char *const *labels, const char *const *specs)
{
	struct output *out;

	if (!o || !labels || !specs || o->nsteps == 0) {
		errno = EINVAL;
		return NULL;
	}
	out = calloc(1, sizeof(*out));
	if (!out)
		return NULL;
	out->o = *o;
	out->n = n;
	out->labels = labels;
	out->specs = specs;
	out->t0 = out_now();
	out->t = calloc(n ? n : 1, sizeof(*out->t));
	if (!out->t) {
		free(out);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		out->t[i].steps = calloc(o->nsteps, sizeof(*out->t[i].steps));
		if (!out->t[i].steps) {
			out_free(out);
			errno = ENOMEM;
			return NULL;
		}
	}
	if (o->mode == OUT_JSON) {
		struct obuf b = { 0 };

		json_open(out, &b, "begin", (size_t)-1, 0);
		obuf_puts(&b, ",\"schema\":\"mitogen-tool/1\",\"command\":");
		obuf_json_cstr(&b, o->command ? o->command : "run");
		obuf_printf(&b, ",\"targets\":%zu,\"steps\":%zu", n, o->nsteps);
		json_close(out, &b);
	}
	return out;
}

void out_free(struct output *out)
{
	if (!out)
		return;
	for (size_t i = 0; i < out->n && out->t; i++) {
		for (int f = 0; f < 2; f++)
			obuf_free(&out->t[i].line[f]);
		for (size_t s = 0; out->t[i].steps && s < out->o.nsteps; s++) {
			obuf_free(&out->t[i].steps[s].data[0]);
			obuf_free(&out->t[i].steps[s].data[1]);
			free(out->t[i].steps[s].error);
		}
		free(out->t[i].steps);
	}
	free(out->t);
	free(out);
}

void out_target_begin(struct output *out, size_t t)
{
	if (t >= out->n || out->t[t].begun)
		return;
	out->t[t].begun = true;
	out->running++;
	out_progress_soon(out);
}

void out_start(struct output *out, size_t t, size_t step)
{
	struct obuf b = { 0 };

	if (t >= out->n || step >= out->o.nsteps)
		return;
	out_target_begin(out, t);
	if (out->o.mode == OUT_JSON) {
		json_open(out, &b, "start", t, step);
		json_close(out, &b);
	}
}

/* Prefixed mode: write the complete lines of the partial line buffer plus
 * data; keep the rest. flush: the rest too, with a '\n'. */
static void prefix_lines(struct output *out, size_t t, int fd,
			 const char *data, size_t len, bool flush)
{
	struct obuf *line = &out->t[t].line[fd - 1];
	const char *label = out->labels[t];
	struct obuf b = { 0 };
	const char *p = data, *end = data + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (!nl && line->len + n < OUT_LINE_MAX) {
			obuf_put(line, p, n);
			break;
		}
		if (!nl)	/* too long: cut here */
			n = OUT_LINE_MAX > line->len ? OUT_LINE_MAX - line->len : 0;
		obuf_puts(&b, label);
		obuf_put(&b, ": ", 2);
		obuf_put(&b, line->p ? line->p : "", line->len);
		obuf_put(&b, p, n);
		obuf_put(&b, "\n", 1);
		line->len = 0;
		p += n + (nl ? 1 : 0);
	}
	if (flush && line->len) {
		obuf_puts(&b, label);
		obuf_put(&b, ": ", 2);
		obuf_put(&b, line->p, line->len);
		obuf_put(&b, "\n", 1);
	}
	if (flush)
		obuf_free(line);
	out_emit_buf(out, fd == 1 ? out->o.out_fd : out->o.err_fd, &b);
}

static void json_data(struct output *out, size_t t, size_t step, int fd,
		      const unsigned char *data, size_t len, bool flush)
{
	struct out_target *tg = &out->t[t];
	unsigned char *buf = NULL;
	size_t have = tg->nutf8[fd - 1], keep = 0;
	struct obuf b = { 0 };

	if (have + len == 0)
		return;
	buf = malloc(have + len);
	if (!buf)
		return;
	memcpy(buf, tg->utf8[fd - 1], have);
	if (len)
		memcpy(buf + have, data, len);
	len += have;
	tg->nutf8[fd - 1] = 0;
	/* hold back a UTF-8 sequence the chunk cut in two */
	if (!flush) {
		for (size_t k = 1; k <= 3 && k <= len; k++) {
			unsigned c = buf[len - k];

			if ((c & 0xc0) == 0x80)
				continue;
			if (c >= 0xc0 && utf8_seq(buf + len - k, k) < 0)
				keep = k;
			break;
		}
	}
	if (keep) {
		memcpy(tg->utf8[fd - 1], buf + len - keep, keep);
		tg->nutf8[fd - 1] = keep;
		len -= keep;
	}
	if (len) {
		json_open(out, &b, fd == 1 ? "stdout" : "stderr", t, step);
		if (out_utf8_valid((const char *)buf, len)) {
			obuf_puts(&b, ",\"data\":");
			obuf_json_str(&b, (const char *)buf, len);
		} else {
			obuf_puts(&b, ",\"data_base64\":");
			obuf_base64(&b, buf, len);
		}
		json_close(out, &b);
	}
	free(buf);
}

void out_data(struct output *out, size_t t, size_t step, int fd,
	      const void *data, size_t len)
{
	if (t >= out->n || step >= out->o.nsteps || (fd != 1 && fd != 2) || !len)
		return;
	switch (out->o.mode) {
	case OUT_RAW:
		out_emit(out, fd == 1 ? out->o.out_fd : out->o.err_fd, data, len);
		break;
	case OUT_PREFIX:
		prefix_lines(out, t, fd, data, len, false);
		break;
	case OUT_GATHER:
		obuf_put(&out->t[t].steps[step].data[fd - 1], data, len);
		break;
	case OUT_JSON:
		json_data(out, t, step, fd, data, len, false);
		break;
	}
	out_progress_soon(out);
}

/* The streams of a step are over: flush what was held back. */
static void out_flush(struct output *out, size_t t, size_t step)
{
	for (int fd = 1; fd <= 2; fd++) {
		if (out->o.mode == OUT_PREFIX)
			prefix_lines(out, t, fd, "", 0, true);
		else if (out->o.mode == OUT_JSON)
			json_data(out, t, step, fd, NULL, 0, true);
	}
}

void out_result(struct output *out, size_t t, size_t step, const char *json)
{
	struct obuf b = { 0 };

	if (t >= out->n || step >= out->o.nsteps)
		return;
	out->t[t].steps[step].outcome = OUT_OK;
	switch (out->o.mode) {
	case OUT_RAW:
		obuf_puts(&b, json);
		obuf_put(&b, "\n", 1);
		out_emit_buf(out, out->o.out_fd, &b);
		break;
	case OUT_PREFIX:
		prefix_lines(out, t, 1, json, strlen(json), false);
		prefix_lines(out, t, 1, "\n", 1, true);
		break;
	case OUT_GATHER:
		obuf_puts(&out->t[t].steps[step].data[0], json);
		obuf_put(&out->t[t].steps[step].data[0], "\n", 1);
		break;
	case OUT_JSON:
		json_open(out, &b, "result", t, step);
		obuf_puts(&b, ",\"value\":");
		obuf_puts(&b, json);
		json_close(out, &b);
		break;
	}
}

void out_exit(struct output *out, size_t t, size_t step, int status)
{
	struct out_step *s;
	struct obuf b = { 0 };

	if (t >= out->n || step >= out->o.nsteps)
		return;
	s = &out->t[t].steps[step];
	s->status = status;
	s->outcome = status == 0 ? OUT_OK : OUT_FAILED;
	out_flush(out, t, step);
	if (out->o.mode == OUT_JSON) {
		json_open(out, &b, "exit", t, step);
		if (status < 0)
			obuf_printf(&b, ",\"status\":null,\"signal\":%d", -status);
		else
			obuf_printf(&b, ",\"status\":%d,\"signal\":null", status);
		json_close(out, &b);
	} else if (out->o.mode == OUT_PREFIX && status != 0) {
		/* pdsh says which hosts failed as it goes: so do we */
		obuf_printf(&b, "mitogen: %s: ", out->labels[t]);
		out_describe(&b, s, false);
		obuf_put(&b, "\n", 1);
		out_emit_buf(out, out->o.err_fd, &b);
	}
}

void out_error(struct output *out, size_t t, size_t step,
	       enum out_outcome outcome, const char *kind, int errnum,
	       const char *message, int hop, const char *hop_spec)
{
	struct out_step *s;
	struct obuf b = { 0 };
	size_t st = step == OUT_NO_STEP ? 0 : step;

	if (t >= out->n || st >= out->o.nsteps)
		return;
	if (outcome < OUT_CALLERR)
		outcome = OUT_CALLERR;
	s = &out->t[t].steps[st];
	s->outcome = outcome;
	snprintf(s->kind, sizeof(s->kind), "%s", kind ? kind : "Error");
	free(s->error);
	s->error = NULL;
	if (asprintf(&s->error, "%s: %s", s->kind, message ? message : "") < 0)
		s->error = NULL;
	if (step != OUT_NO_STEP)
		out_flush(out, t, step);
	switch (out->o.mode) {
	case OUT_JSON:
		json_open(out, &b, "error", t, step);
		obuf_printf(&b, ",\"kind\":\"%s\",\"error\":", outcome_names[outcome]);
		obuf_json_cstr(&b, s->kind);
		obuf_printf(&b, ",\"errno\":%d,\"message\":", errnum);
		obuf_json_cstr(&b, message ? message : "");
		if (hop > 0)
			obuf_printf(&b, ",\"hop\":%d,\"hop_spec\":", hop);
		else
			obuf_puts(&b, ",\"hop\":null,\"hop_spec\":");
		obuf_json_cstr(&b, hop > 0 ? hop_spec : NULL);
		json_close(out, &b);
		break;
	case OUT_GATHER:
		break;	/* shown with its group */
	case OUT_RAW:
		obuf_printf(&b, "mitogen: %s\n", s->error ? s->error : s->kind);
		out_emit_buf(out, out->o.err_fd, &b);
		break;
	case OUT_PREFIX:
		obuf_printf(&b, "mitogen: %s: %s\n", out->labels[t],
			    s->error ? s->error : s->kind);
		out_emit_buf(out, out->o.err_fd, &b);
		break;
	}
}

void out_target_done(struct output *out, size_t t)
{
	struct obuf b = { 0 };
	size_t w;

	if (t >= out->n || out->t[t].done)
		return;
	if (!out->t[t].begun)
		out_target_begin(out, t);
	out->t[t].done = true;
	out->running--;
	out->done++;
	w = target_worst_step(out, t);
	if (target_failed(out, t))
		out->failed++;
	if (out->o.mode == OUT_JSON) {
		json_open(out, &b, "done", t, (size_t)-2);
		obuf_printf(&b, ",\"outcome\":\"%s\",\"code\":%d",
			    outcome_names[out->t[t].steps[w].outcome],
			    step_code(out, w, &out->t[t].steps[w]));
		json_close(out, &b);
	}
	out_progress_soon(out);
}

void out_note(struct output *out, size_t t, const char *text)
{
	struct obuf b = { 0 };

	if (out->o.mode == OUT_JSON)
		return;
	if (t < out->n && out->n > 1)
		obuf_printf(&b, "mitogen: %s: %s\n", out->labels[t], text);
	else
		obuf_printf(&b, "mitogen: %s\n", text);
	out_emit_buf(out, out->o.err_fd, &b);
}

/* "N targets: A ok, B failed" and one line per kind of failure. */
static void summary(struct output *out, int code)
{
	struct obuf b = { 0 };
	size_t nfail = 0, npend = 0;
	bool *seen = calloc(out->n ? out->n : 1, sizeof(*seen));
	const char **names = calloc(out->n ? out->n : 1, sizeof(*names));

	if (!seen || !names)
		goto out;
	for (size_t t = 0; t < out->n; t++) {
		nfail += target_failed(out, t);
		npend += out->t[t].steps[target_worst_step(out, t)].outcome == OUT_PENDING;
	}
	obuf_printf(&b, "mitogen: %zu target%s: %zu ok, %zu failed", out->n,
		    out->n == 1 ? "" : "s", out->n - nfail - npend, nfail);
	if (npend)
		obuf_printf(&b, ", %zu not run", npend);
	obuf_printf(&b, " (exit status %d)\n", code);
	/* one line per (step, outcome, status or error kind) */
	for (size_t t = 0; t < out->n; t++) {
		size_t ws = target_worst_step(out, t), k = 0;
		const struct out_step *w = &out->t[t].steps[ws];
		struct obuf how = { 0 };
		char *folded;

		if (seen[t] || w->outcome <= OUT_OK)
			continue;
		for (size_t u = t; u < out->n; u++) {
			size_t us = target_worst_step(out, u);
			const struct out_step *x = &out->t[u].steps[us];

			if (seen[u] || us != ws || x->outcome != w->outcome)
				continue;
			if (w->outcome == OUT_FAILED ? x->status != w->status
						     : strcmp(x->kind, w->kind))
				continue;
			seen[u] = true;
			names[k++] = out->labels[u];
		}
		folded = hostlist_fold(names, k);
		out_describe(&how, w, out_step_is_call(out, ws));
		if (out->o.nsteps > 1)
			obuf_printf(&b, "mitogen:   %s (%zu): step %zu: %s\n",
				    folded ? folded : "?", k, ws + 1, how.p ? how.p : "");
		else
			obuf_printf(&b, "mitogen:   %s (%zu): %s\n", folded ? folded : "?",
				    k, how.p ? how.p : "");
		free(folded);
		obuf_free(&how);
	}
	out_emit_buf(out, out->o.err_fd, &b);
out:
	free(seen);
	free(names);
}

int out_finish(struct output *out)
{
	int code = out_exit_code(out);
	struct obuf b = { 0 };

	if (out->o.mode == OUT_GATHER)
		out_gather_all(out);
	out_unprogress(out);
	out->finished = true;
	if (out->o.mode == OUT_JSON) {
		size_t nfail = 0, nok = 0;

		for (size_t t = 0; t < out->n; t++) {
			nfail += target_failed(out, t);
			nok += out->t[t].steps[target_worst_step(out, t)].outcome == OUT_OK;
		}
		json_open(out, &b, "end", (size_t)-1, 0);
		obuf_printf(&b, ",\"targets\":%zu,\"ok\":%zu,\"failed\":%zu,\"not_run\":%zu,\"code\":%d",
			    out->n, nok, nfail, out->n - nok - nfail, code);
		json_close(out, &b);
	} else if (out->o.summary) {
		summary(out, code);
	}
	return code;
}
