/* SPDX-License-Identifier: MIT */
/*
 * tools/script.h — the steps of one invocation: `mitogen run -- CMD1 \; CMD2`
 * and `mitogen script FILE` (one `run ...` or `call ...` a line). Private
 * to the tool.
 */
#ifndef TOOLS_SCRIPT_H
#define TOOLS_SCRIPT_H

#include <stddef.h>

#include "tools/runner.h"

/* At most this many steps in one invocation. */
#define SCRIPT_STEPS_MAX 256

/*
 * Split line into words as sh does for simple words: blanks separate,
 * '...' keeps everything, "..." keeps everything but \" \\ \$ \` (and a
 * backslash-newline), a backslash outside quotes keeps the next character,
 * and a '#' starting a word begins a comment. No expansion of any kind.
 * *ret is a NULL-terminated array (free with script_words_free), *ret_n
 * its length (0 for a blank or comment line). Returns 0, -EINVAL with a
 * reason in why (an unclosed quote), -ENOMEM.
 */
int script_words(const char *line, char ***ret, size_t *ret_n, char *why,
		 size_t why_size);
void script_words_free(char **words);

/* A run step of argv[0..n) (n >= 1). 0 or -ENOMEM. */
int script_run_step(char *const *argv, size_t n, struct run_step *ret);
/* A call step: fn with args[0..n), each JSON when it parses as JSON.
 * 0, -E2BIG (JSON nested too deep; why says which), -ENOMEM. */
int script_call_step(const char *fn, char *const *args, size_t n,
		     struct run_step *ret, char *why, size_t why_size);
/*
 * Split argv[0..n) at every ";" word into run steps, appended to
 * *steps (*nsteps of them). 0, -EINVAL (an empty step, too many; why
 * says so), -ENOMEM.
 */
int script_split_run(char *const *argv, size_t n, struct run_step **steps,
		     size_t *nsteps, char *why, size_t why_size);
/*
 * Read FILE ("-": standard input): each line a step, "run [--] CMD
 * [ARGS...]" or "call NAME [ARGS...]", blank lines and # comments
 * skipped. Steps are appended to *steps. 0, -EINVAL with "FILE:LINE:
 * reason" in why, -errno (why names the file), -ENOMEM.
 */
int script_load(const char *path, struct run_step **steps, size_t *nsteps,
		char *why, size_t why_size);
/* Free n steps and the array. */
void script_steps_free(struct run_step *steps, size_t n);

#endif
