/* SPDX-License-Identifier: MIT */
/*
 * tools/output_int.h — what tools/output.c shares with tools/gather.c:
 * the state of one run's output and the growing buffers both write with.
 * Not for the rest of the tool (tools/output.h is).
 */
#ifndef TOOLS_OUTPUT_INT_H
#define TOOLS_OUTPUT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "tools/output.h"

struct obuf {
	char *p;
	size_t len, cap;
	bool failed;		/* an allocation failed: contents are short */
};

/* One step of one target. */
struct out_step {
	enum out_outcome outcome;
	int status;		/* run: exit status, or -signal */
	struct obuf data[2];	/* gather: stdout, stderr, whole */
	char *error;		/* "Kind: message" */
	char kind[32];		/* "StreamError" */
};

struct out_target {
	struct obuf line[2];		/* prefixed: the partial line */
	unsigned char utf8[2][4];	/* JSON: a split UTF-8 sequence */
	size_t nutf8[2];
	struct out_step *steps;
	bool begun, done;
};

struct output {
	struct out_opts o;
	size_t n;
	const char *const *labels;
	const char *const *specs;
	struct out_target *t;
	double t0, drawn_at;
	size_t running, done, failed;
	bool progress_shown;
	bool finished;
};

/* A growing NUL-terminated buffer; on allocation failure it stays short
 * and says so (failed). */
void obuf_put(struct obuf *b, const void *p, size_t len);
void obuf_puts(struct obuf *b, const char *s);
void obuf_printf(struct obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void obuf_free(struct obuf *b);

/* Write b to fd (the progress line erased first) and free it. */
void out_emit_buf(struct output *out, int fd, struct obuf *b);
/* "exit status 3", "killed by signal 15 (SIGTERM)", "unreachable (StreamError)" */
void out_describe(struct obuf *b, const struct out_step *s, bool is_call);
/* Is step a call (mg.* function) rather than a command? */
bool out_step_is_call(const struct output *out, size_t step);
/* -b/--gather and --diff: every step's groups, once all targets ended. */
void out_gather_all(struct output *out);

#endif
