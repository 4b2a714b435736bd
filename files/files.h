/* SPDX-License-Identifier: MIT */
/*
 * files.h — the files area (files/), private to the library: manifests
 * (what a transfer carries), the destination writer, the fan-out to child
 * hops (files/fanout.h), and the "mg.files" service. docs/files.md has the
 * protocol.
 *
 * Messages of a transfer (msgpack lists, first item a one-letter tag):
 *   ["r", up_handle, have]	ready: send data to up_handle; have[i] =
 *				chunks of entry i already verified below
 *   ["d", entry, offset, bytes] data, in order, file by file
 *   ["e"]			end of data
 *   ["a", pos]			acknowledged: pos data bytes are written
 *				(here and everywhere below)
 *   ["m", ack_handle, manifest] pull: what the source will send
 */
#ifndef FILES_FILES_H
#define FILES_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nettle/sha2.h>
#include <mitogen/mitogen.h>
#include <mitogen/files.h>
#include <mitogen/service.h>

/* Register the "mg.files" service (agent start-up, agent/service.c). */
void files_service_init(void);

/* Data chunk: the unit of transfer, of acknowledgement and of resume. */
#define FILES_CHUNK ((uint64_t)256 << 10)
/* Most entries in one manifest. */
#define FILES_MAX_ENTRIES 1000000
/* The window starts here and grows with acknowledgements. */
#define FILES_WINDOW_START ((uint64_t)1 << 20)
/* Seconds a peer may stay silent while we wait on it (a hop that is
 * alive but stuck; a lost one is noticed at once). */
#define FILES_IDLE_TIMEOUT 300.0

struct fent {
	char type;		/* 'f' file, 'd' directory, 'l' symlink */
	char *rel;		/* "" for the root, else "a/b" (checked) */
	uint32_t mode;
	int64_t mtime, mtime_ns;
	uint32_t uid, gid;
	uint64_t size;
	char *target;		/* 'l' */
	uint8_t sha[SHA256_DIGEST_SIZE];
	uint8_t *chunks;	/* 'f': 32 bytes per chunk */
	uint32_t nchunks;
};

struct manifest {
	struct fent *e;
	size_t n;
	uint64_t total;		/* data bytes of every file */
};

static inline uint32_t files_nchunks(uint64_t size)
{
	return (uint32_t)((size + FILES_CHUNK - 1) / FILES_CHUNK);
}

/* A relative path a peer may name: components not "", ".", "..", no NUL,
 * no leading "/". "" (the root) is fine. */
bool files_rel_ok(const char *rel);
/* Read path (lstat: a symlink is an entry, never followed) into m; a
 * directory needs recursive. Hashes every file. Returns 0 or -errno with
 * why. */
int manifest_build(const char *path, bool recursive, struct manifest *m, char *why, size_t n);
struct mg_value *manifest_to_value(const struct manifest *m);
/* Check and take v apart (copies). -EPERM: a path leaves the root;
 * -EINVAL: malformed. */
int manifest_from_value(const struct mg_value *v, struct manifest *m, char *why, size_t n);
void manifest_free(struct manifest *m);

/* --- the destination writer (files/writer.c) ---------------------------- */

struct writer {
	const struct manifest *m;
	int rootdir;		/* holds the root entry */
	char *rootname;
	bool into;		/* rootname is inside dest (dest a directory) */
	bool preserve;
	bool sync;		/* fsync each file before its rename, the directories after */
	int mode;		/* 0: the source's */
	uint32_t *have;		/* per entry: chunks verified at prepare */
	bool *present;		/* per entry: the final file is already right */
	bool *private_tmp;	/* per entry: another writer holds the shared tmp */
	/* the file being written */
	size_t cur;
	int fd, dirfd;
	char tmp[300];
	struct sha256_ctx sha;
	bool started;
	int error;		/* first failure: the destination failed */
	char why[512];
	uint64_t bytes;		/* data bytes written */
	const char *label;	/* dest as given, for messages */
};

/*
 * Prepare to write m at dest (cp semantics unless exact: into dest/name
 * when dest is a directory). Fills w->have. On failure w->error is set
 * (and returned as -errno); the writer then ignores data.
 */
int writer_prepare(struct writer *w, const struct manifest *m, const char *dest,
		   const char *name, bool exact, bool preserve, int mode);
/* A data chunk for entry i at off. */
void writer_chunk(struct writer *w, uint32_t i, uint64_t off, const void *p, size_t len);
/* End of data: symlinks, directory modes and times. */
void writer_end(struct writer *w);
/* Interrupted: the partial file stays under its temporary name (resume). */
void writer_abort(struct writer *w);
void writer_free(struct writer *w);

/* Format an errno for a destination: "no space left on device" etc. */
void files_errmsg(char *buf, size_t n, int errnum, const char *what, const char *path);

/* --- the caller's side (files/transfer.c, files/pull.c) --------------------- */

#define FILES_OPT(o, f, d) ((o) && (o)->sz >= offsetof(struct mg_files_opts, f) + sizeof((o)->f) ? \
		      (o)->f : (d))

/* Fill one destination's result: errnum 0 is success (no message), else
 * error -errnum with why. */
void files_result_set(struct mg_files_result *res, int errnum, const char *why, uint64_t bytes);

#endif
