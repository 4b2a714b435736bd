// SPDX-License-Identifier: MIT
/*
 * manifest.c — what a transfer carries: the entries of a file or tree
 * (type, relative path, mode, owner, mtime, size, symlink target, the
 * SHA-256 of each file and of each of its chunks), read from disk without
 * following a symlink, and checked when it comes from a peer: no path in
 * it may leave the destination root. Owns nothing else.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "files/files.h"

bool files_rel_ok(const char *rel)
{
	const char *p = rel;

	if (!rel)
		return false;
	if (!*rel)
		return true;
	if (strlen(rel) >= PATH_MAX)
		return false;
	for (;;) {
		const char *s = strchr(p, '/');
		size_t len = s ? (size_t)(s - p) : strlen(p);

		if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!s)
			return true;
		p = s + 1;
	}
}

void files_errmsg(char *buf, size_t n, int errnum, const char *what, const char *path)
{
	const char *s;

	switch (errnum) {
	case ENOSPC: s = "no space left on device"; break;
	case EDQUOT: s = "disk quota exceeded"; break;
	case EACCES: case EPERM: s = "permission denied"; break;
	case EISDIR: s = "is a directory"; break;
	case ENOENT: s = "no such file or directory"; break;
	case ENOTDIR: s = "not a directory"; break;
	case ELOOP: s = "is a symbolic link (not followed)"; break;
	default: s = strerror(errnum); break;
	}
	if (what && *what)
		snprintf(buf, n, "%s %s: %s", what, path, s);
	else
		snprintf(buf, n, "%s: %s", path, s);
}

static void fent_free(struct fent *e)
{
	free(e->rel);
	free(e->target);
	free(e->chunks);
}

void manifest_free(struct manifest *m)
{
	for (size_t i = 0; i < m->n; i++)
		fent_free(&m->e[i]);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

static struct fent *manifest_add(struct manifest *m)
{
	if (m->n % 64 == 0) {
		struct fent *e = realloc(m->e, (m->n + 64) * sizeof(*e));

		if (!e)
			return NULL;
		m->e = e;
	}
	memset(&m->e[m->n], 0, sizeof(m->e[0]));
	return &m->e[m->n++];
}

static void fent_stat(struct fent *e, const struct stat *st)
{
	e->mode = st->st_mode & 07777;
	e->mtime = st->st_mtim.tv_sec;
	e->mtime_ns = st->st_mtim.tv_nsec;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
}

/* Hash fd (size bytes) into e: the whole file and each chunk. */
static int fent_hash(struct fent *e, int fd)
{
	struct sha256_ctx all, c;
	uint8_t *buf = malloc(FILES_CHUNK);
	uint64_t off = 0;

	if (!buf)
		return -ENOMEM;
	e->nchunks = files_nchunks(e->size);
	e->chunks = malloc((size_t)e->nchunks * SHA256_DIGEST_SIZE + 1);
	if (!e->chunks) {
		free(buf);
		return -ENOMEM;
	}
	sha256_init(&all);
	for (uint32_t k = 0; k < e->nchunks; k++) {
		size_t want = e->size - off < FILES_CHUNK ? (size_t)(e->size - off) : FILES_CHUNK;
		size_t got = 0;

		while (got < want) {
			ssize_t r = pread(fd, buf + got, want - got, (off_t)(off + got));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				free(buf);
				return r < 0 ? -errno : -ESTALE;	/* shrank */
			}
			got += (size_t)r;
		}
		sha256_init(&c);
		sha256_update(&c, want, buf);
		sha256_digest(&c, SHA256_DIGEST_SIZE, e->chunks + (size_t)k * SHA256_DIGEST_SIZE);
		sha256_update(&all, want, buf);
		off += want;
	}
	sha256_digest(&all, SHA256_DIGEST_SIZE, e->sha);
	free(buf);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct walk {
	struct manifest *m;
	char *why;
	size_t n;
	const char *top;
};

/* Add the entry name in dirfd (rel its path from the root). */
static int walk_entry(struct walk *w, int atfd, const char *name, const char *rel, bool recursive)
{
	struct stat st;
	struct fent *e;
	int fd, ret;

	if (fstatat(atfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -errno;
		files_errmsg(w->why, w->n, errno, "", *rel ? rel : w->top);
		return ret;
	}
	if (w->m->n >= FILES_MAX_ENTRIES) {
		snprintf(w->why, w->n, "%s: more than %d entries", w->top, FILES_MAX_ENTRIES);
		return -E2BIG;
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
		/* Devices, sockets, fifos: not copied (said so at the root). */
		if (!*rel) {
			snprintf(w->why, w->n, "%s: not a regular file, directory or symlink", w->top);
			return -EINVAL;
		}
		return 0;
	}
	if (S_ISDIR(st.st_mode) && !recursive) {
		snprintf(w->why, w->n, "%s: is a directory (copy it with -r)", w->top);
		return -EISDIR;
	}
	e = manifest_add(w->m);
	if (!e || !(e->rel = strdup(rel)))
		return -ENOMEM;
	fent_stat(e, &st);
	if (S_ISLNK(st.st_mode)) {
		char buf[PATH_MAX];
		ssize_t len = readlinkat(atfd, name, buf, sizeof(buf) - 1);

		if (len < 0) {
			ret = -errno;
			files_errmsg(w->why, w->n, errno, "", *rel ? rel : w->top);
			return ret;
		}
		buf[len] = '\0';
		e->type = 'l';
		return (e->target = strdup(buf)) ? 0 : -ENOMEM;
	}
	fd = openat(atfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
		    (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
	if (fd < 0) {
		ret = -errno;
		files_errmsg(w->why, w->n, errno, "", *rel ? rel : w->top);
		return ret;
	}
	if (S_ISREG(st.st_mode)) {
		e->type = 'f';
		e->size = (uint64_t)st.st_size;
		w->m->total += e->size;
		ret = fent_hash(e, fd);
		close(fd);
		if (ret < 0)
			files_errmsg(w->why, w->n, -ret, "reading", *rel ? rel : w->top);
		return ret;
	}
	e->type = 'd';
	{
		DIR *d = fdopendir(fd);
		struct dirent *de;
		size_t nn = 0, cap = 0;
		char **list = NULL;

		if (!d) {
			close(fd);
			return -errno;
		}
		ret = 0;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (nn == cap) {
				char **l = realloc(list, (cap = cap ? 2 * cap : 32) * sizeof(*l));

				if (!l) {
					ret = -ENOMEM;
					break;
				}
				list = l;
			}
			if (!(list[nn] = strdup(de->d_name))) {
				ret = -ENOMEM;
				break;
			}
			nn++;
		}
		/* Sorted: the same tree gives the same manifest. */
		if (!ret && nn)
			qsort(list, nn, sizeof(*list), cmp_names);
		for (size_t i = 0; i < nn && !ret; i++) {
			char sub[PATH_MAX];

			if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "",
					     list[i]) >= sizeof(sub)) {
				snprintf(w->why, w->n, "%s: path too long", w->top);
				ret = -ENAMETOOLONG;
				break;
			}
			ret = walk_entry(w, dirfd(d), list[i], sub, true);
		}
		for (size_t i = 0; i < nn; i++)
			free(list[i]);
		free(list);
		closedir(d);
	}
	return ret;
}

int manifest_build(const char *path, bool recursive, struct manifest *m, char *why, size_t n)
{
	struct walk w = { .m = m, .why = why, .n = n, .top = path };
	int ret;

	memset(m, 0, sizeof(*m));
	ret = walk_entry(&w, AT_FDCWD, path, "", recursive);
	if (ret < 0)
		manifest_free(m);
	return ret;
}

struct mg_value *manifest_to_value(const struct manifest *m)
{
	struct mg_value *l = mg_list();

	for (size_t i = 0; i < m->n; i++) {
		const struct fent *e = &m->e[i];
		char t[2] = { e->type, 0 };

		mg_list_append(l, MG_LIST(mg_str(t), mg_str(e->rel), mg_int(e->mode),
					  mg_int(e->mtime), mg_int(e->mtime_ns), mg_int(e->uid),
					  mg_int(e->gid), mg_int((int64_t)e->size),
					  e->target ? mg_str(e->target) : mg_nil(),
					  e->type == 'f' ? mg_bytes(e->sha, sizeof(e->sha)) : mg_nil(),
					  e->type == 'f' ? mg_bytes(e->chunks, (size_t)e->nchunks *
								    SHA256_DIGEST_SIZE)
							 : mg_nil()));
	}
	return l;
}

int manifest_from_value(const struct mg_value *v, struct manifest *m, char *why, size_t n)
{
	memset(m, 0, sizeof(*m));
	if (!v || v->type != MG_LIST || v->len == 0 || v->len > FILES_MAX_ENTRIES) {
		snprintf(why, n, "malformed manifest");
		return -EINVAL;
	}
	for (size_t i = 0; i < v->len; i++) {
		const struct mg_value *it = &v->items[i], *f;
		struct fent *e;

		if (it->type != MG_LIST || it->len != 11)
			goto bad;
		f = it->items;
		if (f[0].type != MG_STR || f[0].len != 1 || f[1].type != MG_STR ||
		    f[2].type != MG_INT || f[3].type != MG_INT || f[4].type != MG_INT ||
		    f[5].type != MG_INT || f[6].type != MG_INT || f[7].type != MG_INT ||
		    f[7].i < 0)
			goto bad;
		if (!files_rel_ok(f[1].str) || (i == 0) != (f[1].len == 0)) {
			snprintf(why, n, "refused path '%.200s': it leaves the destination", f[1].str);
			manifest_free(m);
			return -EPERM;
		}
		e = manifest_add(m);
		if (!e || !(e->rel = strdup(f[1].str)))
			goto nomem;
		e->type = f[0].str[0];
		e->mode = (uint32_t)f[2].i & 07777;
		e->mtime = f[3].i;
		e->mtime_ns = f[4].i;
		e->uid = (uint32_t)f[5].i;
		e->gid = (uint32_t)f[6].i;
		switch (e->type) {
		case 'd':
			if (i && m->e[0].type != 'd')
				goto bad;
			break;
		case 'l':
			if (f[8].type != MG_STR || !f[8].len || !(e->target = strdup(f[8].str)))
				goto bad;
			break;
		case 'f':
			e->size = (uint64_t)f[7].i;
			e->nchunks = files_nchunks(e->size);
			if (f[9].type != MG_BYTES || f[9].len != SHA256_DIGEST_SIZE ||
			    f[10].type != MG_BYTES ||
			    f[10].len != (uint64_t)e->nchunks * SHA256_DIGEST_SIZE)
				goto bad;
			memcpy(e->sha, f[9].bytes, SHA256_DIGEST_SIZE);
			e->chunks = malloc(f[10].len + 1);
			if (!e->chunks)
				goto nomem;
			memcpy(e->chunks, f[10].bytes, f[10].len);
			m->total += e->size;
			break;
		default:
			goto bad;
		}
	}
	/* Only a directory root has entries below it. */
	if (m->n > 1 && m->e[0].type != 'd')
		goto bad;
	return 0;
bad:
	manifest_free(m);
	snprintf(why, n, "malformed manifest");
	return -EINVAL;
nomem:
	manifest_free(m);
	snprintf(why, n, "out of memory");
	return -ENOMEM;
}
