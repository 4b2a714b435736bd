/* SPDX-License-Identifier: MIT */
/*
 * tools/output.h — what the mitogen tool prints while targets run and at
 * the end: the four output modes, the summary, the progress line and the
 * exit status they add up to. Private to the tool; the runner (or a test
 * with fixed inputs) feeds it events, it decides how they look.
 *
 * Not thread-safe: the caller serialises every call (the runner holds
 * one lock around them), so one target's lines are never split by
 * another's.
 */
#ifndef TOOLS_OUTPUT_H
#define TOOLS_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

enum out_mode {
	OUT_RAW,	/* one target: its bytes as they come, no prefix */
	OUT_PREFIX,	/* "label: line", line-buffered per target and stream */
	OUT_GATHER,	/* -b: held to the end, identical results grouped */
	OUT_JSON,	/* --json: one JSON object per line, as things happen */
};

/*
 * How one step on one target ended, in rising order of severity: the
 * worst outcome over all targets and steps gives the exit status
 * (out_exit_code).
 */
enum out_outcome {
	OUT_PENDING = 0,	/* not ended (yet) */
	OUT_OK,			/* run: exit status 0; call: returned */
	OUT_FAILED,		/* run: non-zero exit status or killed by a signal */
	OUT_CALLERR,		/* CallError: the function failed, or run could not run the command */
	OUT_TIMEOUT,		/* --command-timeout passed */
	OUT_LOST,		/* the connection went away during the step */
	OUT_UNREACHABLE,	/* the chain could not be started (connect timeout included) */
};

/* Exit statuses of the tool (docs/tool.md and --help carry this table). */
enum {
	OUT_EXIT_OK = 0,
	OUT_EXIT_CALL = 1,		/* call: CallError on some target */
	OUT_EXIT_USAGE = 2,		/* bad options or targets; nothing started */
	OUT_EXIT_RUN_CALLERR = 252,	/* run: the command could not be run */
	OUT_EXIT_TIMEOUT = 253,		/* a step passed --command-timeout */
	OUT_EXIT_LOST = 254,		/* a connection went away during a step */
	OUT_EXIT_UNREACHABLE = 255,	/* a target could not be reached */
};

struct out_opts {
	enum out_mode mode;
	bool diff;		/* gather: diff each group against the most common */
	bool summary;		/* a summary on stderr at the end */
	bool progress;		/* a progress line on stderr, redrawn in place */
	int out_fd;		/* where stdout goes (1) */
	int err_fd;		/* where stderr, messages, summary and progress go (2) */
	const char *command;	/* "run", "call" or "script", for JSON */
	size_t nsteps;		/* >= 1 */
	/* per step: "run" steps have exit statuses, "call" steps results */
	const bool *step_is_call;
	/* per step: how it reads ("uname -a", "call mg.getpid"), for headers */
	const char *const *step_text;
};

struct output;

/*
 * A new output for n targets. labels[i] is what target i's lines are
 * prefixed with, specs[i] the target as the user wrote it (both borrowed,
 * valid until out_free). Returns NULL with errno ENOMEM or EINVAL.
 */
struct output *out_new(const struct out_opts *o, size_t n,
		       const char *const *labels, const char *const *specs);
void out_free(struct output *out);

/* Step `step` of target t started (its command is running). */
void out_start(struct output *out, size_t t, size_t step);
/* fd (1: stdout, 2: stderr) bytes of step `step` of target t. */
void out_data(struct output *out, size_t t, size_t step, int fd,
	      const void *data, size_t len);
/* A call step's result, as JSON text (borrowed). */
void out_result(struct output *out, size_t t, size_t step, const char *json);
/* A run step's command ended: status >= 0 its exit status, < 0 -signal. */
void out_exit(struct output *out, size_t t, size_t step, int status);
/*
 * A step (or, with step == OUT_NO_STEP, the start-up of the chain)
 * failed: outcome is one of OUT_CALLERR..OUT_UNREACHABLE, kind the
 * library's name for it ("StreamError"), errnum its errno or 0, message
 * the reason (naming nothing internal), hop the 1-based hop it happened
 * at and hop_spec that hop as written (0 and NULL when not known).
 */
#define OUT_NO_STEP ((size_t)-1)
void out_error(struct output *out, size_t t, size_t step,
	       enum out_outcome outcome, const char *kind, int errnum,
	       const char *message, int hop, const char *hop_spec);
/* Target t is finished (every step run, or stopped at a failure). */
void out_target_done(struct output *out, size_t t);
/* Note target t's chain is being started (progress: running). */
void out_target_begin(struct output *out, size_t t);
/* A message of the tool about target t (or none: t == (size_t)-1). */
void out_note(struct output *out, size_t t, const char *text);
/* Redraw the progress line (from a timer; no-op when it is off). */
void out_progress(struct output *out);
/*
 * The end: gathered groups (and diffs), the summary, the JSON "end"
 * event. Returns the exit status (out_exit_code).
 */
int out_finish(struct output *out);
/* The exit status the outcomes so far add up to (see the enum above). */
int out_exit_code(const struct output *out);

/* Unified diff of a[0..alen) against b[0..blen), by lines, into a new
 * NUL-terminated string (caller frees), or NULL (ENOMEM). Headers are
 * not written. Inputs larger than a quadratic table allows give one
 * hunk of everything. */
char *out_diff(const char *a, size_t alen, const char *b, size_t blen);

/* Is text[0..len) valid UTF-8 (no surrogates, no overlongs)? */
bool out_utf8_valid(const char *text, size_t len);

#endif
