/* SPDX-License-Identifier: MIT */
/*
 * tools/runner.h — running the steps of `mitogen run`, `call` and
 * `script` on every target: -f workers, each taking one target at a time,
 * starting its chain once, running every step over it, stopping it.
 * Private to the tool.
 */
#ifndef TOOLS_RUNNER_H
#define TOOLS_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <mitogen/mitogen.h>

#include "tools/output.h"
#include "tools/targets.h"

/* One step: run a command (streamed) or call a function. */
struct run_step {
	bool is_call;
	char *fn;		/* call: the function's name; owned */
	struct mg_value *args;	/* call: its arguments; run: argv (list of str); owned */
	char *text;		/* how the step reads ("uname -a"); owned */
};

/* Free what a step owns (not the step itself); in tools/script.c. */
void run_step_clear(struct run_step *s);

/* --connect-timeout when none is given: the library's own default. */
#define RUN_CONNECT_TIMEOUT_DEFAULT 30.0

struct run_opts {
	struct target_list *targets;	/* started and stopped here */
	const struct run_step *steps;
	size_t nsteps;
	size_t fanout;			/* >= 1 */
	/* per target: start-up of its chain, from when its worker took it */
	double connect_timeout;		/* > 0 */
	/* per target and step: from when the step started; <= 0: none */
	double command_timeout;
	/* --heartbeat: mg_router_opts.heartbeat_interval and _limit */
	double heartbeat_interval, heartbeat_limit;
	/* go on with a target's later steps after one failed */
	bool keep_going;
	const struct mg_sandbox_opts *sandbox;	/* last hop; may be NULL */
	/* -I: the same standard input for every run step of every target */
	bool has_stdin;
	const void *stdin_data;
	size_t stdin_len;
	/* how output looks; nsteps, step_is_call and step_text are filled in */
	struct out_opts out;
};

/* Run every step on every target; returns the tool's exit status. */
int runner_go(const struct run_opts *o);

/* Bytes in flight from one target before its program is made to wait:
 * what the tool holds per running target, at most (mg.run_stream's
 * window; the tool acknowledges every RUN_ACK_EVERY bytes). */
#define RUN_ACK_EVERY ((size_t)64 << 10)

#endif
