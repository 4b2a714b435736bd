/* SPDX-License-Identifier: MIT */
/*
 * Errors that cross contexts or start them.
 *
 * Convention (STYLE.md): an int function returns >= 0 or -errno; a function
 * returning a pointer returns NULL and sets errno. Functions that talk to
 * another context also fill an optional caller-owned struct mg_error, which
 * says what went wrong in words: which kind, which remote context and
 * function, and the remote errno where there is one.
 */
#ifndef MITOGEN_ERROR_H
#define MITOGEN_ERROR_H

#include <mitogen/common.h>

#ifdef __cplusplus
extern "C" {
#endif

enum mg_error_kind {
	MG_ERR_NONE = 0,
	/* The remote function failed, or the call was refused by policy. */
	MG_ERR_CALL,
	/* The channel died or was closed: the context went away, a record was
	 * malformed, or a message was too large. */
	MG_ERR_CHANNEL,
	/* The latch (receiver, select) was closed while waiting on it. */
	MG_ERR_LATCH,
	/* A context could not be started. */
	MG_ERR_STREAM,
	/* A deadline passed. */
	MG_ERR_TIMEOUT,
	/* A password was needed and missing, or was wrong. */
	MG_ERR_PASSWORD,
	/* The remote host key could not be verified. */
	MG_ERR_HOSTKEY,
};

#define MG_ERROR_MSG_MAX 1024
#define MG_ERROR_NAME_MAX 128

struct mg_error {
	enum mg_error_kind kind;
	/* errno the failure came from (remote errno for MG_ERR_CALL), or 0. */
	int errnum;
	/* MG_ERR_CALL: name of the context where the call failed. */
	char context[MG_ERROR_NAME_MAX];
	/* MG_ERR_CALL: exported function that failed. */
	char function[MG_ERROR_NAME_MAX];
	/* Human-readable reason, never containing secrets. */
	char message[MG_ERROR_MSG_MAX];
};

#define MG_ERROR_INIT { .kind = MG_ERR_NONE }

/* "CallError", "ChannelError", ... (the reference names); never NULL. */
MG_API const char *mg_error_kind_name(enum mg_error_kind kind);

/*
 * Format "<Kind>: [<context>: <function>: ]<message>" into buf.
 * Returns buf. Safe on a NULL or cleared error ("no error").
 */
MG_API const char *mg_error_str(const struct mg_error *err, char *buf, size_t size);

/* Reset err to MG_ERROR_INIT. NULL-safe. */
MG_API void mg_error_clear(struct mg_error *err);

#ifdef __cplusplus
}
#endif
#endif
