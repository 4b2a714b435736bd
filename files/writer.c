// SPDX-License-Identifier: MIT
/*
 * writer.c — the destination side of a transfer: creating the tree a
 * manifest describes under one root, each file through a temporary name
 * in its own directory (".mgpart-<sha>-<name>"), checked against its
 * SHA-256 and renamed into place; resuming from the chunks of an earlier
 * temporary file that still match; symlinks created as symlinks.
 *
 * Why it is safe in a directory others can write to: every path below the
 * root is walked one component at a time with O_NOFOLLOW (a symlink
 * planted in the tree is never followed, so nothing is written outside
 * it); files are created O_NOFOLLOW with mode 0600 and only reach their
 * name by rename(2), which replaces whatever is there as a name; a
 * temporary name holding anything but our regular file is removed, not
 * used. The root itself is the operator's path and is resolved as given.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "files/files.h"

static void writer_fail(struct writer *w, int errnum, const char *what, const char *rel)
{
	char path[PATH_MAX + 64];

	if (w->error)
		return;
	w->error = -errnum;
	snprintf(path, sizeof(path), "%s%s%s", w->label, *rel ? "/" : "", rel);
	files_errmsg(w->why, sizeof(w->why), errnum, what, path);
}

/* The directory holding entry rel (a new fd, or -errno) and its name. */
static int writer_parent(struct writer *w, const char *rel, char *base, size_t n)
{
	const char *p = rel, *s;
	int fd, next;

	if (!*rel) {
		snprintf(base, n, "%s", w->rootname);
		fd = fcntl(w->rootdir, F_DUPFD_CLOEXEC, 3);
		return fd < 0 ? -errno : fd;
	}
	fd = openat(w->rootdir, w->rootname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((s = strchr(p, '/'))) {
		char comp[NAME_MAX + 1];
		size_t len = (size_t)(s - p);

		if (len > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return -errno;
		fd = next;
		p = s + 1;
	}
	snprintf(base, n, "%s", p);
	return fd;
}

/*
 * The temporary name of e: one per content, so that a later transfer
 * finds what an interrupted one wrote; or, when another writer holds
 * that one (two contexts on one file system), one of our own.
 */
static void writer_tmpname(const struct fent *e, const char *base, char *tmp, size_t n,
			   bool private)
{
	static const char hex[] = "0123456789abcdef";
	char h[17];

	for (int i = 0; i < 8; i++) {
		h[2 * i] = hex[e->sha[i] >> 4];
		h[2 * i + 1] = hex[e->sha[i] & 15];
	}
	h[16] = '\0';
	if (private)
		snprintf(tmp, n, ".mgpart-%s-%d.%lx-%.200s", h, (int)getpid(),
			 (unsigned long)(uintptr_t)tmp & 0xffffff, base);
	else
		snprintf(tmp, n, ".mgpart-%s-%.200s", h, base);
}

/* Chunks of fd (a partial file) matching e's chunk hashes, in order. */
static uint32_t writer_verified(const struct fent *e, int fd, uint64_t fsize)
{
	uint8_t *buf = malloc(FILES_CHUNK);
	uint32_t k = 0;

	if (!buf)
		return 0;
	for (; k < e->nchunks; k++) {
		uint64_t off = (uint64_t)k * FILES_CHUNK;
		size_t want = e->size - off < FILES_CHUNK ? (size_t)(e->size - off) : FILES_CHUNK;
		uint8_t d[SHA256_DIGEST_SIZE];
		struct sha256_ctx c;

		if (off + want > fsize || pread(fd, buf, want, (off_t)off) != (ssize_t)want)
			break;
		sha256_init(&c);
		sha256_update(&c, want, buf);
		sha256_digest(&c, sizeof(d), d);
		if (memcmp(d, e->chunks + (size_t)k * SHA256_DIGEST_SIZE, sizeof(d)))
			break;
	}
	free(buf);
	return k;
}

/* Does the file at base already hold e's content? */
static bool writer_same(const struct fent *e, int dirfd, const char *base)
{
	struct stat st;
	int fd = openat(dirfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	bool same = false;

	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == e->size)
		same = writer_verified(e, fd, e->size) == e->nchunks;
	/* Chunks match; the whole hash is the chunks' in order, checked
	 * again by the sender's side when it built them. */
	close(fd);
	return same;
}

static void writer_prepare_entry(struct writer *w, size_t i)
{
	const struct fent *e = &w->m->e[i];
	char base[NAME_MAX + 1], tmp[300];
	struct stat st;
	int dirfd, fd;

	dirfd = writer_parent(w, e->rel, base, sizeof(base));
	if (dirfd < 0) {
		writer_fail(w, -dirfd, "", e->rel);
		return;
	}
	switch (e->type) {
	case 'd':
		if (mkdirat(dirfd, base, 0700) < 0 && errno != EEXIST) {
			writer_fail(w, errno, "creating", e->rel);
		} else if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			writer_fail(w, errno, "", e->rel);
		} else if (!S_ISDIR(st.st_mode)) {
			writer_fail(w, S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR, "", e->rel);
		}
		break;
	case 'f':
		if (writer_same(e, dirfd, base)) {
			w->have[i] = e->nchunks;
			w->present[i] = true;
			break;
		}
		writer_tmpname(e, base, tmp, sizeof(tmp), false);
		fd = openat(dirfd, tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0) {
			/* Being written by another transfer: not ours to resume. */
			if (flock(fd, LOCK_EX | LOCK_NB) < 0)
				w->private_tmp[i] = true;
			else if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
				w->have[i] = writer_verified(e, fd, (uint64_t)st.st_size);
			close(fd);
		}
		break;
	}
	close(dirfd);
}

int writer_prepare(struct writer *w, const struct manifest *m, const char *dest,
		   const char *name, bool exact, bool preserve, int mode)
{
	struct stat st;
	char *d1 = NULL, *d2 = NULL;
	bool into;

	memset(w, 0, sizeof(*w));
	w->m = m;
	w->rootdir = w->fd = w->dirfd = -1;
	w->label = dest;
	w->preserve = preserve;
	w->mode = mode;
	w->have = calloc(m->n ? m->n : 1, sizeof(*w->have));
	w->present = calloc(m->n ? m->n : 1, sizeof(*w->present));
	w->private_tmp = calloc(m->n ? m->n : 1, sizeof(*w->private_tmp));
	if (!w->have || !w->present || !w->private_tmp) {
		writer_fail(w, ENOMEM, "", "");
		return w->error;
	}
	into = !exact && stat(dest, &st) == 0 && S_ISDIR(st.st_mode);
	w->into = into;
	if (into) {
		w->rootdir = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		w->rootname = strdup(name);
	} else {
		d1 = strdup(dest);
		d2 = strdup(dest);
		if (d1 && d2) {
			w->rootdir = open(dirname(d1), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			w->rootname = strdup(basename(d2));
		}
		free(d1);
		free(d2);
	}
	if (w->rootdir < 0) {
		writer_fail(w, errno, "", "");
		return w->error;
	}
	if (!w->rootname || !files_rel_ok(w->rootname) || !*w->rootname) {
		writer_fail(w, w->rootname ? EINVAL : ENOMEM, "", "");
		return w->error;
	}
	/* A file where a directory is: refused, never replaced. */
	if (m->e[0].type != 'd' &&
	    fstatat(w->rootdir, w->rootname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode)) {
		writer_fail(w, EISDIR, "", "");
		return w->error;
	}
	for (size_t i = 0; i < m->n && !w->error; i++)
		writer_prepare_entry(w, i);
	w->cur = (size_t)-1;
	return w->error;
}

static void writer_close_cur(struct writer *w, bool remove_tmp)
{
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	if (w->dirfd >= 0) {
		if (remove_tmp && w->tmp[0])
			unlinkat(w->dirfd, w->tmp, 0);
		close(w->dirfd);
		w->dirfd = -1;
	}
	w->tmp[0] = '\0';
	w->started = false;
}

static void writer_meta(struct writer *w, const struct fent *e, int fd)
{
	uint32_t mode = w->mode > 0 && e->type == 'f' ? (uint32_t)w->mode : e->mode;

	if (!w->preserve)
		mode &= ~(uint32_t)(S_ISUID | S_ISGID);
	if (w->preserve && fchown(fd, e->uid, e->gid) < 0 && errno != EPERM)
		writer_fail(w, errno, "chown", e->rel);
	if (fchmod(fd, mode) < 0)
		writer_fail(w, errno, "chmod", e->rel);
	if (w->preserve) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
					  { .tv_sec = e->mtime, .tv_nsec = e->mtime_ns } };

		if (futimens(fd, ts) < 0)
			writer_fail(w, errno, "setting times of", e->rel);
	}
}

static void writer_start(struct writer *w, uint32_t i)
{
	const struct fent *e = &w->m->e[i];
	char base[NAME_MAX + 1];
	uint64_t keep = (uint64_t)w->have[i] * FILES_CHUNK;
	struct stat st;

	w->cur = i;
	w->started = true;
	sha256_init(&w->sha);
	if (keep > e->size)
		keep = e->size;
	w->dirfd = writer_parent(w, e->rel, base, sizeof(base));
	if (w->dirfd < 0) {
		writer_fail(w, -w->dirfd, "", e->rel);
		return;
	}
	if (w->present[i])
		return;
	writer_tmpname(e, base, w->tmp, sizeof(w->tmp), w->private_tmp[i]);
	w->fd = openat(w->dirfd, w->tmp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
		       0600);
	if (w->fd >= 0 && (fstat(w->fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)) {
		close(w->fd);
		w->fd = -1;
		errno = ELOOP;
	}
	/* Another writer took it since prepare: no resume, our own name. */
	if (w->fd >= 0 && flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
		close(w->fd);
		if (keep) {
			writer_fail(w, EBUSY, "another transfer is writing", e->rel);
			return;
		}
		writer_tmpname(e, base, w->tmp, sizeof(w->tmp), true);
		w->fd = openat(w->dirfd, w->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
			       O_CLOEXEC, 0600);
		if (w->fd < 0) {
			w->tmp[0] = '\0';
			writer_fail(w, errno, "creating", e->rel);
			return;
		}
	}
	if (w->fd < 0) {
		/* Not ours (a symlink, a fifo, a hard link, another user's
		 * temporary file): removed as a name. When we may not remove it
		 * (a directory we cannot write), that is the error to report,
		 * not the EEXIST of creating it again. */
		keep = 0;
		/* Another writer may make the name again between the unlink
		 * and the create (seen: root's and mgtest's copies of one file
		 * into a directory only root may write, "creating ...: File
		 * exists"): try again, so that the unlink says why. */
		for (int tries = 0; tries < 3; tries++) {
			int unlink_err = 0;

			if (unlinkat(w->dirfd, w->tmp, 0) < 0 && errno != ENOENT)
				unlink_err = errno;
			w->fd = openat(w->dirfd, w->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
				       O_CLOEXEC, 0600);
			if (w->fd >= 0) {
				flock(w->fd, LOCK_EX | LOCK_NB);
				break;
			}
			if (errno != EEXIST)
				break;
			if (unlink_err) {
				errno = unlink_err;
				break;
			}
		}
	}
	if (w->fd < 0) {
		w->tmp[0] = '\0';
		writer_fail(w, errno, "creating", e->rel);
		return;
	}
	fcntl(w->fd, F_SETFL, 0);
	if (ftruncate(w->fd, (off_t)keep) < 0) {
		writer_fail(w, errno, "", e->rel);
		writer_close_cur(w, true);
		return;
	}
	/* The verified prefix counts towards the whole file's hash. */
	if (keep) {
		uint8_t *buf = malloc(FILES_CHUNK);

		for (uint64_t off = 0; buf && off < keep; off += FILES_CHUNK) {
			size_t want = keep - off < FILES_CHUNK ? (size_t)(keep - off) : FILES_CHUNK;

			if (pread(w->fd, buf, want, (off_t)off) != (ssize_t)want) {
				writer_fail(w, EIO, "re-reading", e->rel);
				break;
			}
			sha256_update(&w->sha, want, buf);
		}
		if (!buf)
			writer_fail(w, ENOMEM, "", e->rel);
		free(buf);
	}
	w->have[i] = (uint32_t)(keep / FILES_CHUNK) + (keep % FILES_CHUNK ? 1 : 0);
}

static void writer_finish(struct writer *w)
{
	const struct fent *e = &w->m->e[w->cur];
	char base[NAME_MAX + 1];
	uint8_t d[SHA256_DIGEST_SIZE];
	const char *slash = strrchr(e->rel, '/');

	snprintf(base, sizeof(base), "%s", *e->rel ? (slash ? slash + 1 : e->rel) : w->rootname);
	if (w->present[w->cur]) {
		int fd = openat(w->dirfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

		if (fd >= 0) {
			writer_meta(w, e, fd);
			close(fd);
		}
		writer_close_cur(w, false);
		return;
	}
	sha256_digest(&w->sha, sizeof(d), d);
	if (memcmp(d, e->sha, sizeof(d))) {
		writer_fail(w, EIO, "SHA-256 mismatch for", e->rel);
		writer_close_cur(w, true);
		return;
	}
	writer_meta(w, e, w->fd);
	/* The data reaches the disk before the name does (a crash must not
	 * leave an empty or partial file under the final name); the
	 * directories are synced in writer_end, once each. */
	if (!w->error && w->sync && fsync(w->fd) < 0) {
		writer_fail(w, errno, "syncing", e->rel);
		writer_close_cur(w, true);
		return;
	}
	if (!w->error && renameat(w->dirfd, w->tmp, w->dirfd, base) < 0)
		writer_fail(w, errno == ENOTEMPTY || errno == EEXIST ? EISDIR : errno, "", e->rel);
	writer_close_cur(w, !!w->error);
}

void writer_chunk(struct writer *w, uint32_t i, uint64_t off, const void *p, size_t len)
{
	const struct fent *e;
	uint64_t keep;

	if (w->error || i >= w->m->n || w->m->e[i].type != 'f')
		return;
	e = &w->m->e[i];
	if (!w->started || w->cur != i) {
		if (w->started) {
			writer_fail(w, EIO, "incomplete data for", w->m->e[w->cur].rel);
			writer_close_cur(w, false);
			return;
		}
		writer_start(w, i);
		if (w->error)
			return;
	}
	keep = (uint64_t)w->have[i] * FILES_CHUNK;
	if (!w->present[i] && off + len > keep && len) {
		if (off < keep || off != (uint64_t)lseek(w->fd, 0, SEEK_END) ||
		    off + len > e->size) {
			writer_fail(w, EIO, "out-of-order data for", e->rel);
			writer_close_cur(w, false);
			return;
		}
		for (size_t done = 0; done < len;) {
			ssize_t r = pwrite(w->fd, (const char *)p + done, len - done,
					   (off_t)(off + done));

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				/* No space, quota...: the partial file goes. */
				writer_fail(w, errno, "writing", e->rel);
				writer_close_cur(w, true);
				return;
			}
			done += (size_t)r;
		}
		sha256_update(&w->sha, len, p);
		w->bytes += len;
		w->have[i] = files_nchunks(off + len);
	}
	if (off + len >= e->size)
		writer_finish(w);
}

void writer_end(struct writer *w)
{
	if (w->error)
		return;
	if (w->started) {
		writer_fail(w, EIO, "incomplete data for", w->m->e[w->cur].rel);
		writer_close_cur(w, false);
		return;
	}
	/* Symlinks: created under a temporary name, renamed into place. */
	for (size_t i = 0; i < w->m->n && !w->error; i++) {
		const struct fent *e = &w->m->e[i];
		char base[NAME_MAX + 1], tmp[300];
		int dirfd;

		if (e->type != 'l')
			continue;
		dirfd = writer_parent(w, e->rel, base, sizeof(base));
		if (dirfd < 0) {
			writer_fail(w, -dirfd, "", e->rel);
			break;
		}
		snprintf(tmp, sizeof(tmp), ".mgpart-link-%.200s", base);
		unlinkat(dirfd, tmp, 0);
		if (symlinkat(e->target, dirfd, tmp) < 0) {
			writer_fail(w, errno, "creating link", e->rel);
		} else {
			if (w->preserve) {
				struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
							  { .tv_sec = e->mtime,
							    .tv_nsec = e->mtime_ns } };

				if (fchownat(dirfd, tmp, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0 &&
				    errno != EPERM)
					writer_fail(w, errno, "chown", e->rel);
				utimensat(dirfd, tmp, ts, AT_SYMLINK_NOFOLLOW);
			}
			if (renameat(dirfd, tmp, dirfd, base) < 0) {
				writer_fail(w, errno == ENOTEMPTY || errno == EEXIST ? EISDIR : errno,
					    "", e->rel);
				unlinkat(dirfd, tmp, 0);
			}
		}
		close(dirfd);
	}
	/* Files never sent (cannot happen with an honest sender). */
	for (size_t i = 0; i < w->m->n && !w->error; i++)
		if (w->m->e[i].type == 'f' && w->have[i] < w->m->e[i].nchunks && !w->present[i])
			writer_fail(w, EIO, "incomplete data for", w->m->e[i].rel);
	/* Directories last (deepest first): their modes and times. */
	for (size_t i = w->m->n; i-- > 0 && !w->error;) {
		const struct fent *e = &w->m->e[i];
		char base[NAME_MAX + 1];
		int dirfd, fd;

		if (e->type != 'd')
			continue;
		dirfd = writer_parent(w, e->rel, base, sizeof(base));
		if (dirfd < 0) {
			writer_fail(w, -dirfd, "", e->rel);
			break;
		}
		fd = openat(dirfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			writer_meta(w, e, fd);
			/* The names renamed into it, its new entries. */
			if (!w->error && w->sync && fsync(fd) < 0)
				writer_fail(w, errno, "syncing directory", e->rel);
			close(fd);
		} else {
			writer_fail(w, errno, "", e->rel);
		}
		close(dirfd);
	}
	/* The root's own name (a file, a link or the tree's directory). */
	if (!w->error && w->sync && w->rootdir >= 0 && fsync(w->rootdir) < 0)
		writer_fail(w, errno, "syncing the directory of", "");
}

void writer_abort(struct writer *w)
{
	writer_close_cur(w, false);
}

void writer_free(struct writer *w)
{
	writer_close_cur(w, false);
	if (w->rootdir >= 0)
		close(w->rootdir);
	free(w->rootname);
	free(w->have);
	free(w->present);
	free(w->private_tmp);
	memset(w, 0, sizeof(*w));
	w->rootdir = w->fd = w->dirfd = -1;
}
