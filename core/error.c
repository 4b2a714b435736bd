// SPDX-License-Identifier: MIT
/*
 * core/error.c: struct mg_error helpers (kind names, formatting, reset) and
 * mg_version(). Does not decide which error a failure becomes; the modules
 * that fail fill struct mg_error themselves.
 */
#include <stdio.h>
#include <string.h>

#include <mitogen/error.h>

#define ERROR_STR2(x) #x
#define ERROR_STR(x) ERROR_STR2(x)

const char *mg_version(void)
{
	return ERROR_STR(MG_VERSION_MAJOR) "." ERROR_STR(
		MG_VERSION_MINOR) "." ERROR_STR(MG_VERSION_PATCH);
}

const char *mg_error_kind_name(enum mg_error_kind kind)
{
	switch (kind) {
	case MG_ERR_CALL:
		return "CallError";
	case MG_ERR_CHANNEL:
		return "ChannelError";
	case MG_ERR_LATCH:
		return "LatchError";
	case MG_ERR_STREAM:
		return "StreamError";
	case MG_ERR_TIMEOUT:
		return "TimeoutError";
	case MG_ERR_PASSWORD:
		return "PasswordError";
	case MG_ERR_HOSTKEY:
		return "HostKeyError";
	case MG_ERR_NONE:
		break;
	}
	return "Error";
}

/*
 * With no room to write (buf NULL or size 0) this returns "" rather than
 * buf, so the result can always be handed to printf("%s").
 */
const char *mg_error_str(const struct mg_error *err, char *buf, size_t size)
{
	if (!buf || !size)
		return "";
	if (!err ||
	    (err->kind == MG_ERR_NONE && !err->errnum && !err->message[0])) {
		snprintf(buf, size, "no error");
		return buf;
	}
	/* The fields are caller-writable arrays: never read past their end. */
	snprintf(buf, size, "%s: %.*s%s%.*s%s%.*s",
		 mg_error_kind_name(err->kind),
		 (int)strnlen(err->context, sizeof(err->context)), err->context,
		 err->context[0] ? ": " : "",
		 (int)strnlen(err->function, sizeof(err->function)),
		 err->function, err->function[0] ? ": " : "",
		 (int)strnlen(err->message, sizeof(err->message)),
		 err->message);
	return buf;
}

void mg_error_clear(struct mg_error *err)
{
	if (err)
		*err = (struct mg_error)MG_ERROR_INIT;
}
