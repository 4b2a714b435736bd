// SPDX-License-Identifier: MIT
/*
 * rlimits.c — the rlimit part of a sandbox: setrlimit() of the limits the
 * BOOT sandbox map names. Owns nothing else.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "sandbox/sandbox.h"

static const struct {
	const char *key;
	int resource;
} limits[] = {
	{ "nofile", RLIMIT_NOFILE }, { "nproc", RLIMIT_NPROC }, { "as", RLIMIT_AS },
	{ "cpu", RLIMIT_CPU },       { "fsize", RLIMIT_FSIZE },
};

int sb_rlimits_apply(const struct mg_value *v, char *why, size_t n)
{
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		const struct mg_value *x = mg_map_get(v, limits[i].key);
		struct rlimit rl;

		if (!x || x->type != MG_INT || x->i <= 0)
			continue;
		rl.rlim_cur = rl.rlim_max = (rlim_t)x->i;
		if (setrlimit(limits[i].resource, &rl) < 0) {
			int e = errno;

			snprintf(why, n, "rlimits: %s=%lld: %s", limits[i].key,
				 (long long)x->i, strerror(e));
			return -e;
		}
	}
	return 0;
}
