/* SPDX-License-Identifier: MIT */
/*
 * Files along the tree (docs/files.md): push a file or a directory tree
 * from this process to many contexts, every link carrying the data once
 * (each context relays to its children as chunks arrive), and pull a file
 * or tree from many contexts into one local directory.
 *
 * At every destination a file is written to a temporary name in its
 * directory, its SHA-256 checked, then renamed into place: an interrupted
 * transfer never leaves a file at the destination name, and the next
 * transfer of the same content resumes after the chunks already there.
 * Symlinks are copied as symlinks and never followed; no path a peer names
 * may leave the destination root.
 */
#ifndef MITOGEN_FILES_H
#define MITOGEN_FILES_H

#include <mitogen/common.h>
#include <mitogen/error.h>
#include <mitogen/router.h>
#include <mitogen/context.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Progress of a push or pull, given to mg_files_progress_fn. */
struct mg_files_progress {
	uint64_t bytes;		/* data bytes sent (push) or written (pull) */
	uint64_t total;		/* bytes to send (push) or announced (pull) */
	size_t done;		/* destinations (sources) finished well */
	size_t failed;		/* ... and failed */
	size_t n;		/* destinations (sources) in all */
};

/* Called on the caller's thread, at most every 100 ms and once at the
 * end. Borrowed progress. */
typedef void (*mg_files_progress_fn)(const struct mg_files_progress *p, void *userdata);

/* One destination's (push) or source's (pull) outcome. */
struct mg_files_result {
	int error;			/* 0 or -errno */
	char message[512];		/* why, when error != 0 */
	uint64_t bytes;			/* data bytes written there (push: at it) */
};

/* Largest window of unacknowledged bytes per link (mg_files_opts). */
#define MG_FILES_WINDOW_MAX ((size_t)32 << 20)

struct mg_files_opts {
	size_t sz;
	/* A directory source is copied as a tree (else EISDIR). */
	bool recursive;
	/* Push: dest is the name to give the copy, even when a directory is
	 * there (then EISDIR). Default: as cp(1), a copy into an existing
	 * directory dest takes the source's name inside it. */
	bool exact;
	/* The mode of copied regular files (1 to 07777); 0 or
	 * MG_FILES_MODE_KEEP: the source's. */
	int mode;
	/* Keep owner and group (where permitted) and modification times. */
	bool preserve;
	mg_files_progress_fn progress;
	void *progress_data;
	/* Most unacknowledged bytes in flight per link; the window starts
	 * at 1 MiB and grows by what each acknowledgement frees, up to this.
	 * 0: MG_FILES_WINDOW_MAX. */
	size_t window;
	/* Do not fsync(2). By default every destination fsyncs each file
	 * before renaming it into place and the directories after, so that a
	 * crash of the destination host never leaves an empty or partial file
	 * under the final name (docs/files.md has what it costs). */
	bool no_fsync;
};

#define MG_FILES_MODE_KEEP (-1)

/*
 * Push src (a local file, or a directory with opts->recursive) to dest in
 * each of the n contexts ctxs (borrowed; any depth, any mix). Contexts
 * that share a hop get the data through it once. results[i] (caller's
 * array of n) gets ctxs[i]'s outcome: "no space left" (the partial file
 * removed), "permission denied", "is a directory", a lost hop, a hash
 * mismatch... each naming the path as given.
 *
 * Returns the number of destinations that failed (0: all done), or -errno
 * when nothing was sent, with err filled: -EINVAL (bad arguments, opts
 * mode), -ENOENT / -EACCES / -EISDIR (src), -ENOMEM.
 */
MG_API int mg_files_push(struct mg_router *r, const char *src, const char *dest,
			 struct mg_context *const *ctxs, size_t n,
			 const struct mg_files_opts *opts, struct mg_files_result *results,
			 struct mg_error *err);

/*
 * Pull src (a path in each context) from the n contexts ctxs, in
 * parallel, into destdir/names[i]/<basename of src> here. names[i] name
 * the sources (the tool uses the target as written); they must be
 * distinct, non-empty, without "/" and not "." or "..": colliding names
 * are refused before anything is asked (-EEXIST, err names both). Same
 * integrity rules as a push; results[i] as for mg_files_push. A source
 * that sends a path leaving its directory fails with EPERM.
 *
 * Returns the number of sources that failed, or -errno as for push.
 */
MG_API int mg_files_pull(struct mg_router *r, const char *src, const char *destdir,
			 struct mg_context *const *ctxs, const char *const *names, size_t n,
			 const struct mg_files_opts *opts, struct mg_files_result *results,
			 struct mg_error *err);

#ifdef __cplusplus
}
#endif
#endif
