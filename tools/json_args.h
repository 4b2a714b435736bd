/* SPDX-License-Identifier: MIT */
/*
 * tools/json_args.h — turn one command-line argument of `mitogen call` into
 * an mg_value. Private to the tool.
 */
#ifndef MITOGEN_TOOLS_JSON_ARGS_H
#define MITOGEN_TOOLS_JSON_ARGS_H

#include <stdbool.h>
#include <mitogen/value.h>

/* Deepest nesting of arrays and objects accepted. */
#define JSON_ARGS_MAX_DEPTH 64

/*
 * Parse text as one strict JSON value (RFC 8259; surrounding whitespace
 * allowed): null, true, false, numbers (integers that fit int64 become
 * MG_INT, all others MG_FLOAT), strings (\uXXXX escapes, surrogate pairs,
 * UTF-8 checked; \u0000 is refused), arrays (MG_LIST) and objects (MG_MAP;
 * a repeated key keeps the last value). If text is not JSON it is taken
 * as a plain string, so `mitogen call mg.stat /etc/passwd` works.
 *
 * Returns a new value the caller frees with mg_value_free(), and sets
 * *ret_is_json (may be NULL) to whether text was JSON. Returns NULL with
 * errno ENOMEM, EINVAL (text is NULL) or E2BIG (arrays or objects nested
 * deeper than JSON_ARGS_MAX_DEPTH: clearly meant as JSON, so refused
 * rather than silently sent as a string); *ret_is_json is then left
 * untouched.
 */
struct mg_value *json_args_parse(const char *text, bool *ret_is_json);

#endif
