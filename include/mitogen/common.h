/* SPDX-License-Identifier: MIT */
/*
 * libmitogen — common definitions shared by every public header: symbol
 * visibility, the options-struct convention and the version.
 */
#ifndef MITOGEN_COMMON_H
#define MITOGEN_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MG_VERSION_MAJOR 0
#define MG_VERSION_MINOR 1
#define MG_VERSION_PATCH 0

#ifndef MG_API
#define MG_API __attribute__((visibility("default")))
#endif

/*
 * Options structs follow libbpf's shape: the first field is `size_t sz`,
 * set by MG_OPTS to sizeof the caller's view of the struct, so the library
 * can grow a struct without breaking programs built against an older one.
 *
 *	MG_OPTS(mg_local_opts, opts, .remote_name = "web", .connect_timeout = 5);
 *	ctx = mg_local(router, &opts, &err);
 */
#define MG_OPTS(TYPE, NAME, ...)					\
	struct TYPE NAME = ({						\
		__builtin_memset(&NAME, 0, sizeof(struct TYPE));	\
		(struct TYPE){ .sz = sizeof(struct TYPE), __VA_ARGS__ };\
	})

/* Returns "major.minor.patch" of the library actually linked. */
MG_API const char *mg_version(void);

#ifdef __cplusplus
}
#endif
#endif
