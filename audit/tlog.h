/* SPDX-License-Identifier: MIT */
/*
 * tlog.h — the tamper-evident part of the audit trail (docs/audit.md):
 * an RFC 6962 Merkle tree over a log's records, the line suffix that
 * chains each record, C2SP tlog-checkpoints in C2SP signed notes signed
 * with ed25519 (nettle), and where a uid's signing key and logs live.
 * Shared by the agent (agent/audit.c), the master (core/audit.c) and the
 * `mitogen audit` tool (tools/audit_cmd.c).
 */
#ifndef AUDIT_TLOG_H
#define AUDIT_TLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLOG_HASH 32
/* Deepest tree: 2^64 leaves. */
#define TLOG_MAX_DEPTH 64
/* Origins and key names: "host/mitogen/uid[/log]", at most this long. */
#define TLOG_NAME_MAX 200
/* A signed note of one checkpoint, with one signature, fits this. */
#define TLOG_NOTE_MAX 512
/* "name+hhhhhhhh+base64(0x01||pub)" */
#define TLOG_VKEY_MAX (TLOG_NAME_MAX + 80)

/* Checkpoint defaults (docs/audit.md): every N records, or at the first
 * record T seconds after the last checkpoint, and when the log closes. */
#define TLOG_CHECKPOINT_RECORDS 64
#define TLOG_CHECKPOINT_SECONDS 5

/* A growing Merkle tree: the roots of its perfect subtrees, largest first. */
struct tlog_tree {
	uint64_t size;
	unsigned depth;			/* entries in stack */
	uint8_t stack[TLOG_MAX_DEPTH][TLOG_HASH];
};

/* SHA-256(0x00 || data): an RFC 6962 leaf hash. */
void tlog_leaf_hash(const void *data, size_t len, uint8_t out[TLOG_HASH]);
/* Append a leaf hash to t. */
void tlog_tree_append(struct tlog_tree *t, const uint8_t leaf[TLOG_HASH]);
/* The tree's root (RFC 6962 MTH; the empty tree is SHA-256("")). */
void tlog_tree_root(const struct tlog_tree *t, uint8_t out[TLOG_HASH]);
/* 64 lowercase hex digits and a NUL. */
void tlog_hex(const uint8_t h[TLOG_HASH], char out[2 * TLOG_HASH + 1]);

/*
 * A chained line: rec (a JSON object's text, "{...}", no newline) with
 * its log, index and the root after it as the last members:
 * {...,"log":"ORIGIN","index":N,"tree":"HEX"}. Appends the leaf to t.
 * Returns a malloc'd line (no newline) or NULL (ENOMEM, EINVAL).
 */
char *tlog_chain_line(struct tlog_tree *t, const char *origin, const char *rec, size_t len);

/* Room tlog_chain_suffix needs past a record's text (and a NUL). */
#define TLOG_SUFFIX_MAX (TLOG_NAME_MAX + 2 * TLOG_HASH + 64)

/*
 * tlog_chain_line in place, for a record whose leaf hash the caller made
 * (tlog_leaf_hash, or the same from a SHA-256 state it kept): appends leaf
 * to t and writes the suffix over the record's closing '}' at buf[len - 1]
 * (buf holds len + TLOG_SUFFIX_MAX bytes). Returns the line's length (a
 * NUL follows it). The line is the same bytes tlog_chain_line makes.
 */
size_t tlog_chain_suffix(struct tlog_tree *t, const char *origin, const uint8_t leaf[TLOG_HASH],
			 char *buf, size_t len);

/* What tlog_line_split finds at the end of a chained line. */
struct tlog_suffix {
	char log[TLOG_NAME_MAX + 1];
	uint64_t index;
	uint8_t tree[TLOG_HASH];
	size_t rec_len;			/* the record is line[0, rec_len) + "}" */
};

/* 0 when line (len bytes, no newline) ends in a chain suffix; -EINVAL if not. */
int tlog_line_split(const char *line, size_t len, struct tlog_suffix *ret);
/* The leaf hash of a chained line's record (line[0, rec_len) + "}"). */
void tlog_line_leaf(const char *line, size_t rec_len, uint8_t out[TLOG_HASH]);

/* An ed25519 signing key and its C2SP note key name. */
struct tlog_key {
	char name[TLOG_NAME_MAX + 1];
	uint8_t priv[32];
	uint8_t pub[32];
	uint8_t id[4];			/* SHA-256(name || "\n" || 0x01 || pub)[:4] */
};

/* A verifier key, parsed from "name+hex id+base64(0x01||pub)". */
struct tlog_vkey {
	char name[TLOG_NAME_MAX + 1];
	uint8_t pub[32];
	uint8_t id[4];
};

/*
 * This uid's signing key: $MITOGEN_AUDIT_KEY, else
 * /var/lib/mitogen/audit/key for root, else
 * $HOME/.local/state/mitogen/audit/key. Created on first use (the
 * directories 0700, the file 0600, O_EXCL, from getrandom); refused if it
 * is a symlink, not a regular file, not owned by this uid, or readable by
 * group or others. name is the key's name. 0 or -errno, why says what.
 */
int tlog_key_load(struct tlog_key *k, const char *name, char *why, size_t why_size);
/* Same, from an explicit path (create: make it when missing). */
int tlog_key_load_path(struct tlog_key *k, const char *path, const char *name, bool create,
		       char *why, size_t why_size);
/* The default key path for this uid into buf; 0 or -ENAMETOOLONG/-ENOENT. */
int tlog_key_path(char *buf, size_t size);
/* The default log directory for this uid ($MITOGEN_AUDIT_DIR, else
 * /var/log/mitogen/audit for root, else $HOME/.local/state/mitogen/audit). */
int tlog_log_dir(char *buf, size_t size);
/*
 * Make dir (and missing parents) 0700 and check it: a directory, not a
 * symlink, owned by this uid or root, not writable by group or others.
 * 0 or -errno with why.
 */
int tlog_dir_check(const char *dir, bool create, char *why, size_t why_size);
/*
 * This uid's verifier keys into out: the signing key's first (made when
 * missing, as tlog_key_load), then the retired ones kept next to it
 * (mitogen audit keys --rotate). Returns how many (at most max), or
 * -errno with why.
 */
int tlog_vkeys(char (*out)[TLOG_VKEY_MAX], size_t max, char *why, size_t why_size);
/* k's verifier key text. */
void tlog_key_vkey(const struct tlog_key *k, char out[TLOG_VKEY_MAX]);
/* Parse a verifier key; 0 or -EINVAL. */
int tlog_vkey_parse(const char *text, struct tlog_vkey *ret);
/* "host/mitogen/UID": this host's name (only [A-Za-z0-9._-]) and uid. */
void tlog_key_name(char out[TLOG_NAME_MAX + 1]);

/*
 * A signed checkpoint note of t under origin:
 * "origin\nsize\nbase64(root)\n[final\n]\n— name base64(id||sig)\n".
 * final marks the log closed (nothing may follow it). Returns its length.
 */
size_t tlog_checkpoint_sign(const struct tlog_key *k, const char *origin,
			    const struct tlog_tree *t, bool final, char out[TLOG_NOTE_MAX]);

/* What a checkpoint says. */
struct tlog_checkpoint {
	char origin[TLOG_NAME_MAX + 1];
	uint64_t size;
	uint8_t root[TLOG_HASH];
	bool final;
	char key_name[TLOG_NAME_MAX + 1];
	uint8_t key_id[4];
	uint8_t sig[64];
	size_t body_len;		/* signed text: note[0, body_len) */
};

/* Parse a signed note holding a checkpoint (its first signature); 0 or -EINVAL. */
int tlog_checkpoint_parse(const char *note, size_t len, struct tlog_checkpoint *ret);
/* Whether vk (name and id matching) signed note's body. */
bool tlog_checkpoint_verify(const struct tlog_checkpoint *c, const char *note,
			    const struct tlog_vkey *vk);

/* A checkpoint line: {"checkpoint":"<note, newlines as \n>"}; malloc'd. */
char *tlog_checkpoint_line(const char *note, size_t len);

#endif
