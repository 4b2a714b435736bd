// SPDX-License-Identifier: MIT
/*
 * tlog.c — what makes the audit trail tamper-evident (docs/audit.md): the
 * RFC 6962 Merkle tree over each log's records, the suffix that chains a
 * JSON line into its log, C2SP tlog-checkpoints as C2SP signed notes
 * (ed25519, nettle's hogweed), and this uid's signing key and log
 * directory, created on first use and refused when anyone else could
 * change them. No format here is ours: CT's tree, C2SP's note and
 * checkpoint, Go's note key encodings, so other tools can check them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <nettle/base64.h>
#include <nettle/eddsa.h>
#include <nettle/sha2.h>

#include "audit/tlog.h"

/* --- the tree (RFC 6962 §2.1) ------------------------------------------ */

void tlog_leaf_hash(const void *data, size_t len, uint8_t out[TLOG_HASH])
{
	struct sha256_ctx c;
	uint8_t zero = 0;

	sha256_init(&c);
	sha256_update(&c, 1, &zero);
	sha256_update(&c, len, data);
	sha256_digest(&c, TLOG_HASH, out);
}

static void tlog_node(const uint8_t l[TLOG_HASH], const uint8_t r[TLOG_HASH],
		      uint8_t out[TLOG_HASH])
{
	struct sha256_ctx c;
	uint8_t one = 1;

	sha256_init(&c);
	sha256_update(&c, 1, &one);
	sha256_update(&c, TLOG_HASH, l);
	sha256_update(&c, TLOG_HASH, r);
	sha256_digest(&c, TLOG_HASH, out);
}

/*
 * The stack holds one root per set bit of size, largest subtree first:
 * appending a leaf merges it with every complete subtree of its size, as
 * a binary counter carries.
 */
void tlog_tree_append(struct tlog_tree *t, const uint8_t leaf[TLOG_HASH])
{
	uint8_t h[TLOG_HASH];
	uint64_t s;

	memcpy(h, leaf, TLOG_HASH);
	for (s = t->size; s & 1; s >>= 1)
		tlog_node(t->stack[--t->depth], h, h);
	memcpy(t->stack[t->depth++], h, TLOG_HASH);
	t->size++;
}

/* MTH(D[n]) splits at the largest power of two below n: the subtrees on
 * the stack, folded from the right, are exactly those splits. */
void tlog_tree_root(const struct tlog_tree *t, uint8_t out[TLOG_HASH])
{
	uint8_t h[TLOG_HASH];

	if (!t->depth) {
		struct sha256_ctx c;

		sha256_init(&c);
		sha256_digest(&c, TLOG_HASH, out);
		return;
	}
	memcpy(h, t->stack[t->depth - 1], TLOG_HASH);
	for (unsigned i = t->depth - 1; i-- > 0;)
		tlog_node(t->stack[i], h, h);
	memcpy(out, h, TLOG_HASH);
}

void tlog_hex(const uint8_t h[TLOG_HASH], char out[2 * TLOG_HASH + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < TLOG_HASH; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 15];
	}
	out[2 * TLOG_HASH] = '\0';
}

static int tlog_unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (v < 0)
			return -EINVAL;
		if (i & 1)
			out[i / 2] |= (uint8_t)v;
		else
			out[i / 2] = (uint8_t)(v << 4);
	}
	return 0;
}

/* --- chained lines ----------------------------------------------------- */

/* u as decimal digits into out (at least 21 bytes); returns their count. */
static size_t tlog_u64(uint64_t u, char *out)
{
	char tmp[20];
	size_t n = 0, i;

	do
		tmp[n++] = (char)('0' + u % 10);
	while ((u /= 10));
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

size_t tlog_chain_suffix(struct tlog_tree *t, const char *origin, const uint8_t leaf[TLOG_HASH],
			 char *buf, size_t len)
{
	static const char log_key[] = "\"log\":\"", index_key[] = "\",\"index\":",
			  tree_key[] = ",\"tree\":\"";
	uint8_t root[TLOG_HASH];
	uint64_t index = t->size;
	size_t olen = strnlen(origin, TLOG_NAME_MAX), n = len - 1;

	tlog_tree_append(t, leaf);
	tlog_tree_root(t, root);
	/* An empty object takes no comma. */
	if (len > 2)
		buf[n++] = ',';
	memcpy(buf + n, log_key, sizeof(log_key) - 1);
	n += sizeof(log_key) - 1;
	memcpy(buf + n, origin, olen);
	n += olen;
	memcpy(buf + n, index_key, sizeof(index_key) - 1);
	n += sizeof(index_key) - 1;
	n += tlog_u64(index, buf + n);
	memcpy(buf + n, tree_key, sizeof(tree_key) - 1);
	n += sizeof(tree_key) - 1;
	tlog_hex(root, buf + n);
	n += 2 * TLOG_HASH;
	memcpy(buf + n, "\"}", 3);
	return n + 2;
}

char *tlog_chain_line(struct tlog_tree *t, const char *origin, const char *rec, size_t len)
{
	uint8_t leaf[TLOG_HASH];
	char *line;

	if (len < 2 || rec[0] != '{' || rec[len - 1] != '}' || strlen(origin) > TLOG_NAME_MAX) {
		errno = EINVAL;
		return NULL;
	}
	line = malloc(len + TLOG_SUFFIX_MAX);
	if (!line)
		return NULL;
	memcpy(line, rec, len);
	tlog_leaf_hash(rec, len, leaf);
	tlog_chain_suffix(t, origin, leaf, line, len);
	return line;
}

/*
 * Read the suffix from the end: "tree" (fixed length), "index" (digits),
 * "log" (no quote or backslash: tlog origins never have one). What comes
 * before is the record, whatever it holds.
 */
int tlog_line_split(const char *line, size_t len, struct tlog_suffix *ret)
{
	static const char tree_key[] = ",\"tree\":\"", index_key[] = ",\"index\":",
			  log_key[] = "\"log\":\"";
	size_t tail = strlen(tree_key) + 2 * TLOG_HASH + 2, p, q;
	uint64_t index = 0;

	if (len < tail + 16 || memcmp(line + len - 2, "\"}", 2) ||
	    memcmp(line + len - tail, tree_key, strlen(tree_key)))
		return -EINVAL;
	if (tlog_unhex(line + len - tail + strlen(tree_key), ret->tree, TLOG_HASH) < 0)
		return -EINVAL;
	p = len - tail;			/* after the index's digits */
	q = p;
	while (q > 0 && line[q - 1] >= '0' && line[q - 1] <= '9')
		q--;
	if (q == p || p - q > 19 || q < strlen(index_key) ||
	    memcmp(line + q - strlen(index_key), index_key, strlen(index_key)))
		return -EINVAL;
	for (size_t i = q; i < p; i++)
		index = index * 10 + (uint64_t)(line[i] - '0');
	if (p - q > 1 && line[q] == '0')
		return -EINVAL;
	p = q - strlen(index_key);	/* the closing quote of the log */
	if (p < 1 || line[p - 1] != '"')
		return -EINVAL;
	q = p - 1;
	while (q > 0 && line[q - 1] != '"' && line[q - 1] != '\\')
		q--;
	if (q < strlen(log_key) || memcmp(line + q - strlen(log_key), log_key, strlen(log_key)) ||
	    p - 1 - q > TLOG_NAME_MAX)
		return -EINVAL;
	memcpy(ret->log, line + q, p - 1 - q);
	ret->log[p - 1 - q] = '\0';
	ret->index = index;
	q -= strlen(log_key);		/* the member's start */
	if (q >= 1 && line[q - 1] == ',')
		q--;
	else if (q != 1)
		return -EINVAL;
	ret->rec_len = q;
	return 0;
}

void tlog_line_leaf(const char *line, size_t rec_len, uint8_t out[TLOG_HASH])
{
	struct sha256_ctx c;
	uint8_t zero = 0;

	sha256_init(&c);
	sha256_update(&c, 1, &zero);
	sha256_update(&c, rec_len, (const uint8_t *)line);
	sha256_update(&c, 1, (const uint8_t *)"}");
	sha256_digest(&c, TLOG_HASH, out);
}

/* --- keys (C2SP signed-note, Go's note key encodings) ------------------ */

static void tlog_key_id(const char *name, const uint8_t pub[32], uint8_t id[4])
{
	struct sha256_ctx c;
	uint8_t d[SHA256_DIGEST_SIZE], alg = 1;

	sha256_init(&c);
	sha256_update(&c, strlen(name), (const uint8_t *)name);
	sha256_update(&c, 1, (const uint8_t *)"\n");
	sha256_update(&c, 1, &alg);
	sha256_update(&c, 32, pub);
	sha256_digest(&c, sizeof(d), d);
	memcpy(id, d, 4);
}

static size_t tlog_b64(const uint8_t *src, size_t n, char *out)
{
	base64_encode_raw(out, n, src);
	out[BASE64_ENCODE_RAW_LENGTH(n)] = '\0';
	return BASE64_ENCODE_RAW_LENGTH(n);
}

/* Decode exactly want bytes of base64 (padded); 0 or -EINVAL. */
static int tlog_unb64(const char *s, size_t len, uint8_t *out, size_t want)
{
	struct base64_decode_ctx c;
	uint8_t buf[128];
	size_t n = sizeof(buf);

	if (len > 4 * ((want + 2) / 3) || BASE64_DECODE_LENGTH(len) > sizeof(buf))
		return -EINVAL;
	base64_decode_init(&c);
	if (!base64_decode_update(&c, &n, buf, len, s) || !base64_decode_final(&c) || n != want)
		return -EINVAL;
	memcpy(out, buf, want);
	return 0;
}

void tlog_key_name(char out[TLOG_NAME_MAX + 1])
{
	char host[128] = "";
	size_t i;

	gethostname(host, sizeof(host) - 1);
	for (i = 0; host[i]; i++) {
		char c = host[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			host[i] = '_';
	}
	snprintf(out, TLOG_NAME_MAX + 1, "%s/mitogen/%u", *host ? host : "localhost",
		 (unsigned)getuid());
}

static int tlog_home_state(char *buf, size_t size, const char *leaf)
{
	const char *home = getenv("HOME");

	/* Not getpwuid: static programs have no NSS. sudo sets HOME to the
	 * target's; tlog_dir_check refuses a home that is not ours. */
	if (!home || home[0] != '/')
		return -ENOENT;
	if ((size_t)snprintf(buf, size, "%s/.local/state/mitogen/audit%s", home, leaf) >= size)
		return -ENAMETOOLONG;
	return 0;
}

int tlog_key_path(char *buf, size_t size)
{
	const char *env = getenv("MITOGEN_AUDIT_KEY");

	if (env && *env) {
		if ((size_t)snprintf(buf, size, "%s", env) >= size)
			return -ENAMETOOLONG;
		return 0;
	}
	if (getuid() == 0) {
		snprintf(buf, size, "/var/lib/mitogen/audit/key");
		return 0;
	}
	return tlog_home_state(buf, size, "/key");
}

int tlog_log_dir(char *buf, size_t size)
{
	const char *env = getenv("MITOGEN_AUDIT_DIR");

	if (env && *env) {
		if ((size_t)snprintf(buf, size, "%s", env) >= size)
			return -ENAMETOOLONG;
		return 0;
	}
	if (getuid() == 0) {
		snprintf(buf, size, "/var/log/mitogen/audit");
		return 0;
	}
	return tlog_home_state(buf, size, "");
}

/*
 * Why the owner and mode are checked: a key or log directory another user
 * can write lets that user swap the key (and sign as us) or replace the
 * log. Root's directories may be made by root for a user; others' must
 * be their own.
 */
int tlog_dir_check(const char *dir, bool create, char *why, size_t why_size)
{
	char path[4096];
	struct stat st;
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path) || dir[0] != '/') {
		snprintf(why, why_size, "%s: not an absolute path", dir);
		return -EINVAL;
	}
	memcpy(path, dir, len + 1);
	if (create) {
		for (char *p = path + 1; ; p++) {
			if (*p == '/' || !*p) {
				char c = *p;

				*p = '\0';
				if (mkdir(path, 0700) < 0 && errno != EEXIST) {
					int e = errno;

					snprintf(why, why_size, "cannot make %s: %s", path, strerror(e));
					return -e;
				}
				*p = c;
				if (!c)
					break;
			}
		}
	}
	if (lstat(dir, &st) < 0) {
		int e = errno;

		snprintf(why, why_size, "%s: %s", dir, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, why_size, "%s: not a directory (or a symlink)", dir);
		return -ENOTDIR;
	}
	if ((st.st_uid != getuid() && st.st_uid != 0) || (st.st_mode & 022)) {
		snprintf(why, why_size, "%s: owned by uid %u, mode %03o: only uid %u or root may "
			 "own it, and no one else may write it", dir, (unsigned)st.st_uid,
			 (unsigned)(st.st_mode & 0777), (unsigned)getuid());
		return -EPERM;
	}
	return 0;
}

/* Name the key and derive its public half; -ENAMETOOLONG past
 * TLOG_NAME_MAX (never cut: the key id is a hash of the whole name). */
static int tlog_key_finish(struct tlog_key *k, const char *name)
{
	size_t n = strlen(name);

	if (n > TLOG_NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(k->name, name, n + 1);
	ed25519_sha512_public_key(k->pub, k->priv);
	tlog_key_id(k->name, k->pub, k->id);
	return 0;
}

/* "PRIVATE+KEY+name+hexid+base64(0x01||priv)" (Go's note.NewSigner form). */
static int tlog_key_write(int fd, const struct tlog_key *k)
{
	uint8_t raw[33] = { 1 };
	char b64[64], text[TLOG_NAME_MAX + 128];
	int n;

	memcpy(raw + 1, k->priv, 32);
	tlog_b64(raw, sizeof(raw), b64);
	n = snprintf(text, sizeof(text), "PRIVATE+KEY+%s+%02x%02x%02x%02x+%s\n", k->name,
		     k->id[0], k->id[1], k->id[2], k->id[3], b64);
	memset(raw, 0, sizeof(raw));
	if (write(fd, text, (size_t)n) != n)
		return -EIO;
	return fsync(fd) < 0 ? -errno : 0;
}

static int tlog_key_read(int fd, struct tlog_key *k, const char *path, char *why,
			 size_t why_size)
{
	char text[TLOG_NAME_MAX + 128], *name, *plus;
	uint8_t raw[33];
	ssize_t n = read(fd, text, sizeof(text) - 1);

	if (n <= 0) {
		snprintf(why, why_size, "%s: cannot read the key", path);
		return -EIO;
	}
	text[n] = '\0';
	text[strcspn(text, "\n")] = '\0';
	/* Names hold no '+'; base64 may: read from the left. */
	name = text + 12;
	plus = strncmp(text, "PRIVATE+KEY+", 12) ? NULL : strchr(name, '+');
	if (!plus || plus == name || strlen(plus) < 10 || plus[9] != '+' ||
	    tlog_unb64(plus + 10, strlen(plus + 10), raw, sizeof(raw)) < 0 || raw[0] != 1) {
		snprintf(why, why_size, "%s: not an ed25519 note signing key", path);
		return -EINVAL;
	}
	memcpy(k->priv, raw + 1, 32);
	memset(raw, 0, sizeof(raw));
	*plus = '\0';
	if (tlog_key_finish(k, name) < 0) {
		snprintf(why, why_size, "%s: the key's name is longer than %d bytes", path,
			 TLOG_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

int tlog_key_load_path(struct tlog_key *k, const char *path, const char *name, bool create,
		       char *why, size_t why_size)
{
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		/* Why O_EXCL: two agents starting at once make one key. */
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			if (getrandom(k->priv, 32, 0) != 32) {
				close(fd);
				unlink(path);
				snprintf(why, why_size, "getrandom: %s", strerror(errno));
				return -EIO;
			}
			rc = tlog_key_finish(k, name);
			if (rc == 0)
				rc = tlog_key_write(fd, k);
			close(fd);
			if (rc < 0) {
				unlink(path);
				snprintf(why, why_size, "%s: cannot write the key: %s", path,
					 strerror(-rc));
			}
			return rc;
		}
		if (errno == EEXIST)
			fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		int e = errno;

		snprintf(why, why_size, "%s: %s", path, strerror(e));
		return -e;
	}
	/* Why these checks: a key another user can read lets them sign
	 * checkpoints as us; one they could have written is not ours. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() ||
	    (st.st_mode & 077)) {
		snprintf(why, why_size, "%s: the key must be a regular file of uid %u, mode 0600 "
			 "(it is uid %u, mode %03o)", path, (unsigned)getuid(),
			 (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
		close(fd);
		return -EPERM;
	}
	rc = tlog_key_read(fd, k, path, why, why_size);
	close(fd);
	return rc;
}

int tlog_key_load(struct tlog_key *k, const char *name, char *why, size_t why_size)
{
	char path[4096], *slash;
	int rc = tlog_key_path(path, sizeof(path));

	if (rc < 0) {
		snprintf(why, why_size, "no place for the audit key (HOME unset or too long)");
		return rc;
	}
	slash = strrchr(path, '/');
	if (slash && slash != path) {
		*slash = '\0';
		rc = tlog_dir_check(path, true, why, why_size);
		*slash = '/';
		if (rc < 0)
			return rc;
	}
	return tlog_key_load_path(k, path, name, true, why, why_size);
}

void tlog_key_vkey(const struct tlog_key *k, char out[TLOG_VKEY_MAX])
{
	uint8_t raw[33] = { 1 };
	char b64[64];

	memcpy(raw + 1, k->pub, 32);
	tlog_b64(raw, sizeof(raw), b64);
	snprintf(out, TLOG_VKEY_MAX, "%s+%02x%02x%02x%02x+%s", k->name, k->id[0], k->id[1],
		 k->id[2], k->id[3], b64);
}

int tlog_vkey_parse(const char *text, struct tlog_vkey *ret)
{
	const char *h = strchr(text, '+');
	uint8_t raw[33], id[4];
	size_t len = strcspn(text, "\r\n");

	/* name+hhhhhhhh+base64: names hold no '+', base64 may. */
	if (!h || h == text || (size_t)(h - text) > TLOG_NAME_MAX || (size_t)(h - text) + 10 > len ||
	    h[9] != '+' || tlog_unhex(h + 1, id, 4) < 0 ||
	    tlog_unb64(h + 10, len - (size_t)(h + 10 - text), raw, sizeof(raw)) < 0 || raw[0] != 1)
		return -EINVAL;
	memcpy(ret->name, text, (size_t)(h - text));
	ret->name[h - text] = '\0';
	memcpy(ret->pub, raw + 1, 32);
	tlog_key_id(ret->name, ret->pub, ret->id);
	if (memcmp(ret->id, id, 4))
		return -EINVAL;
	return 0;
}

/* --- checkpoints (C2SP tlog-checkpoint in a signed note) ------------- */

#define TLOG_EM_DASH "\xe2\x80\x94"

size_t tlog_checkpoint_sign(const struct tlog_key *k, const char *origin,
			    const struct tlog_tree *t, bool final, char out[TLOG_NOTE_MAX])
{
	uint8_t root[TLOG_HASH], sig[4 + 64];
	char r64[64], s64[128];
	int body;

	tlog_tree_root(t, root);
	tlog_b64(root, TLOG_HASH, r64);
	body = snprintf(out, TLOG_NOTE_MAX, "%s\n%" PRIu64 "\n%s\n%s", origin, t->size, r64,
			final ? "final\n" : "");
	memcpy(sig, k->id, 4);
	ed25519_sha512_sign(k->pub, k->priv, (size_t)body, (const uint8_t *)out, sig + 4);
	tlog_b64(sig, sizeof(sig), s64);
	return (size_t)body + (size_t)snprintf(out + body, TLOG_NOTE_MAX - (size_t)body,
					       "\n" TLOG_EM_DASH " %s %s\n", k->name, s64);
}

int tlog_checkpoint_parse(const char *note, size_t len, struct tlog_checkpoint *ret)
{
	const char *p = note, *end = note + len, *nl, *sep = NULL, *sp;
	uint8_t sig[4 + 64];
	int line = 0;

	memset(ret, 0, sizeof(*ret));
	/* The body ends at the first blank line. */
	for (const char *q = note; q + 1 < end; q++)
		if (q[0] == '\n' && q[1] == '\n') {
			sep = q + 1;
			break;
		}
	if (!sep)
		return -EINVAL;
	ret->body_len = (size_t)(sep - note);
	for (; p < sep; p = nl + 1, line++) {
		nl = memchr(p, '\n', (size_t)(sep - p));
		if (!nl)
			return -EINVAL;
		if (line == 0) {
			if (nl == p || (size_t)(nl - p) > TLOG_NAME_MAX)
				return -EINVAL;
			memcpy(ret->origin, p, (size_t)(nl - p));
		} else if (line == 1) {
			char num[24];

			if (nl == p || nl - p > 20 || (nl - p > 1 && *p == '0'))
				return -EINVAL;
			memcpy(num, p, (size_t)(nl - p));
			num[nl - p] = '\0';
			if (strspn(num, "0123456789") != strlen(num))
				return -EINVAL;
			ret->size = strtoull(num, NULL, 10);
		} else if (line == 2) {
			if (tlog_unb64(p, (size_t)(nl - p), ret->root, TLOG_HASH) < 0)
				return -EINVAL;
		} else if (nl - p == 5 && !memcmp(p, "final", 5)) {
			ret->final = true;
		}
	}
	if (line < 3)
		return -EINVAL;
	/* "— name base64(id||sig)\n" */
	p = sep + 1;
	if ((size_t)(end - p) < 4 || memcmp(p, TLOG_EM_DASH " ", 4))
		return -EINVAL;
	p += 4;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return -EINVAL;
	sp = memchr(p, ' ', (size_t)(nl - p));
	if (!sp || sp == p || (size_t)(sp - p) > TLOG_NAME_MAX ||
	    tlog_unb64(sp + 1, (size_t)(nl - sp - 1), sig, sizeof(sig)) < 0)
		return -EINVAL;
	memcpy(ret->key_name, p, (size_t)(sp - p));
	memcpy(ret->key_id, sig, 4);
	memcpy(ret->sig, sig + 4, 64);
	return 0;
}

bool tlog_checkpoint_verify(const struct tlog_checkpoint *c, const char *note,
			    const struct tlog_vkey *vk)
{
	return !strcmp(c->key_name, vk->name) && !memcmp(c->key_id, vk->id, 4) &&
	       ed25519_sha512_verify(vk->pub, c->body_len, (const uint8_t *)note, c->sig);
}

char *tlog_checkpoint_line(const char *note, size_t len)
{
	char *line = malloc(2 * len + 32), *p;

	if (!line)
		return NULL;
	p = line + sprintf(line, "{\"checkpoint\":\"");
	for (size_t i = 0; i < len; i++) {
		if (note[i] == '\n') {
			*p++ = '\\';
			*p++ = 'n';
		} else {
			*p++ = note[i];
		}
	}
	strcpy(p, "\"}");
	return line;
}

int tlog_vkeys(char (*out)[TLOG_VKEY_MAX], size_t max, char *why, size_t why_size)
{
	char path[4096], name[TLOG_NAME_MAX + 1], *slash;
	struct tlog_key k;
	struct dirent *de;
	size_t n = 0;
	DIR *d;
	int rc;

	if (!max)
		return -EINVAL;
	if (tlog_key_path(path, sizeof(path)) < 0) {
		snprintf(why, why_size, "no place for this uid's audit key (HOME unset)");
		return -ENOENT;
	}
	tlog_key_name(name);
	rc = tlog_key_load(&k, name, why, why_size);
	if (rc < 0)
		return rc;
	tlog_key_vkey(&k, out[n++]);
	explicit_bzero(&k, sizeof(k));
	/* Retired ones: key.retired-STAMP next to it (mitogen audit keys
	 * --rotate). */
	slash = strrchr(path, '/');
	if (!slash)
		return (int)n;
	*slash = '\0';
	d = opendir(path);
	while (d && n < max && (de = readdir(d))) {
		char p2[4400], w[256];

		if (!strstr(de->d_name, ".retired-"))
			continue;
		snprintf(p2, sizeof(p2), "%s/%s", path, de->d_name);
		if (tlog_key_load_path(&k, p2, name, false, w, sizeof(w)) == 0)
			tlog_key_vkey(&k, out[n++]);
		explicit_bzero(&k, sizeof(k));
	}
	if (d)
		closedir(d);
	return (int)n;
}
