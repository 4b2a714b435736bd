/* SPDX-License-Identifier: MIT */
/*
 * fakessh (the reference's mitogen.fakessh): run a local program (rsync,
 * scp, sftp, git...) with an `ssh` first on its PATH that carries each
 * session it opens over our own channel to a context, at any depth and
 * through sudo, with no new ssh connection. docs/files.md.
 */
#ifndef MITOGEN_FAKESSH_H
#define MITOGEN_FAKESSH_H

#include <mitogen/common.h>
#include <mitogen/error.h>
#include <mitogen/context.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mg_fakessh_opts {
	size_t sz;
	/* Seconds the program may run; <= 0: no limit. Then it gets SIGTERM
	 * (SIGKILL 5 s later) and mg_fakessh_run returns -ETIMEDOUT. */
	double timeout;
};

/*
 * Run argv (argv[0] looked up in PATH) with our stdin, stdout and stderr,
 * and an `ssh` on its PATH (and in $MITOGEN_FAKESSH_SSH, for programs
 * that want it by path, as `scp -S`). Each `ssh HOST CMD...` it runs
 * executes `sh -c CMD` in dest (the host name is ignored), its standard
 * streams relayed both ways with flow control, and exits with CMD's exit
 * status (255 when CMD was killed by a signal, or the context was lost,
 * as ssh does); several sessions may run at once. `ssh -s sftp` starts
 * the context's sftp-server. A program that needs this program's own
 * image ships it: mg_main() must be the first line of main(), as always.
 *
 * *ret_status gets the program's wait status. Returns 0, or -errno with
 * err filled: -EINVAL, -ENOENT (no such program), -ETIMEDOUT.
 */
MG_API int mg_fakessh_run(struct mg_context *dest, struct mg_router *r, char *const argv[],
			  const struct mg_fakessh_opts *opts, int *ret_status,
			  struct mg_error *err);

#ifdef __cplusplus
}
#endif
#endif
