// SPDX-License-Identifier: MIT
/*
 * audit_cmd.c — `mitogen audit`: check, read and gather audit trails
 * (docs/audit.md).
 *
 *   mitogen audit verify [--key VKEY|FILE]... FILE|DIR...
 *	every chain in the files (agents' logs, masters' files) checked
 *	record by record, every checkpoint's signature checked, every chain
 *	against every checkpoint of it (its own and those a master
 *	witnessed), every master's copy of an agent's record against the
 *	agent's log, and no master copy missing below a signed checkpoint.
 *	Exit 0 when intact; 1 with the first fault as "FILE:LINE: what"
 *	(changed, missing, out of order, truncated, forged); 2 on bad use.
 *   mitogen audit show [--since T] [--context C] [--function F] [--json] FILE...
 *   mitogen audit fetch -t TARGETS DIR
 *   mitogen audit keys [--rotate]
 *   mitogen audit keys -t TARGETS
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <mitogen/mitogen.h>

#include "audit/tlog.h"
#include "tools/audit_cmd.h"
#include "tools/json_args.h"
#include "tools/targets.h"

#define AUDIT_EXIT_BAD 1
#define AUDIT_EXIT_USAGE 2

const char tool_audit_help[] =
	"mitogen audit verify [--key VKEY|FILE]... FILE|DIR...\n"
	"    Check audit trails (agents' logs, masters' files): every chain, every\n"
	"    checkpoint's signature, every master copy against the agent's log.\n"
	"    Exit 0 intact; 1 with the first fault as FILE:LINE: what; 2 usage.\n"
	"mitogen audit show [--since T] [--context C] [--function F] [--json] FILE...\n"
	"    The records as a table (or NDJSON), filtered.\n"
	"mitogen audit fetch -t TARGETS DIR\n"
	"    Pull every target's logs and verifier key into DIR/<target>/.\n"
	"mitogen audit keys [--rotate]\n"
	"    Print this user's verifier key (and retired ones); --rotate makes a\n"
	"    new signing key and keeps the old one as retired.\n"
	"mitogen audit keys -t TARGETS\n"
	"    Print each target's verifier keys (its user on its host), after a\n"
	"    '# TARGET' line: a file for verify --key.\n"
	"See docs/audit.md.\n";

static int audit_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "mitogen audit: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n\n%s", tool_audit_help);
	return AUDIT_EXIT_USAGE;
}

/*
 * Print s with every control character (C0, DEL, and C1 as UTF-8) as '?':
 * a record's strings are what an audited context or whoever edited the
 * file chose, and must not drive the auditor's terminal.
 */
static void put_clean(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			putchar('?');
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			putchar('?');
			p++;
		} else {
			putchar(*p);
		}
	}
}

static void printf_clean(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void printf_clean(const char *fmt, ...)
{
	char buf[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	put_clean(buf);
}

/* --- reading trails ----------------------------------------------------- */

struct ent {
	const char *file;		/* as the user named it */
	unsigned line;			/* 1-based */
	char *text;
	size_t len;
	bool chained;
	struct tlog_suffix s;
	struct mg_value *v;		/* the parsed line, or NULL */
};

struct trail {
	struct ent *e;
	size_t n, cap;
	char **files;
	size_t nfiles;
};

static char *audit_slurp(const char *path, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0, cap = 1 << 16;
	char *buf;

	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	for (ssize_t got; buf && (got = read(fd, buf + n, cap - n - 1)) > 0;) {
		n += (size_t)got;
		if (n + 1 == cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	close(fd);
	if (buf)
		buf[n] = '\0';
	*ret_len = n;
	return buf;
}

static int trail_add_file(struct trail *t, const char *path)
{
	size_t len;
	char *text = audit_slurp(path, &len), *p;
	unsigned line = 0;
	char *name;

	if (!text) {
		fprintf(stderr, "mitogen audit: %s: %s\n", path, strerror(errno));
		return -1;
	}
	name = strdup(path);
	t->files = realloc(t->files, (t->nfiles + 1) * sizeof(*t->files));
	t->files[t->nfiles++] = name;
	for (p = text; *p;) {
		char *nl = strchr(p, '\n');
		struct ent *e;

		line++;
		if (nl)
			*nl = '\0';
		if (*p) {
			if (t->n == t->cap) {
				t->cap = t->cap ? 2 * t->cap : 256;
				t->e = realloc(t->e, t->cap * sizeof(*t->e));
			}
			e = &t->e[t->n++];
			memset(e, 0, sizeof(*e));
			e->file = name;
			e->line = line;
			e->text = strdup(p);
			e->len = strlen(p);
			e->chained = tlog_line_split(e->text, e->len, &e->s) == 0;
			e->v = json_args_parse(e->text, NULL);
			if (e->v && e->v->type != MG_MAP) {
				mg_value_free(e->v);
				e->v = NULL;
			}
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	free(text);
	return 0;
}

/* FILE, or every *.log / *.jsonl in DIR and its subdirectories (fetch's layout). */
static int trail_add(struct trail *t, const char *path)
{
	struct dirent **names;
	struct stat st;
	int n, rc = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "mitogen audit: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return trail_add_file(t, path);
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		const char *d = names[i]->d_name;
		size_t len = strlen(d);
		char sub[4096];

		if (d[0] != '.') {
			snprintf(sub, sizeof(sub), "%s/%s", path, d);
			if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
				rc |= trail_add(t, sub);
			else if ((len > 4 && !strcmp(d + len - 4, ".log")) ||
				 (len > 6 && !strcmp(d + len - 6, ".jsonl")))
				rc |= trail_add_file(t, sub);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

static void trail_free(struct trail *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].text);
		mg_value_free(t->e[i].v);
	}
	free(t->e);
	for (size_t i = 0; i < t->nfiles; i++)
		free(t->files[i]);
	free(t->files);
}

static const char *str_of(const struct mg_value *map, const char *key)
{
	const struct mg_value *v = map ? mg_map_get(map, key) : NULL;

	return v && v->type == MG_STR ? v->str : NULL;
}

static const struct mg_value *claimed_of(const struct ent *e)
{
	const struct mg_value *c = e->v ? mg_map_get(e->v, "claimed") : NULL;

	return c && c->type == MG_MAP ? c : NULL;
}

/* --- verify ------------------------------------------------------------- */

struct cp {
	struct tlog_checkpoint c;
	char note[TLOG_NOTE_MAX];
	const struct ent *where;
	bool witnessed;			/* a master's record of it */
};

/* A master's copy of an agent's record. */
struct copy {
	const char *log;
	uint64_t index;
	const char *tree;		/* hex */
	const struct ent *where;
};

struct verify {
	struct trail t;
	struct tlog_vkey *keys;
	size_t nkeys;
	bool keys_given;
	struct cp *cps;
	size_t ncps;
	struct copy *copies;
	size_t ncopies;
	unsigned long records, checkpoints, logs;
};

static int copy_cmp(const void *a, const void *b)
{
	const struct copy *x = a, *y = b;
	int c = strcmp(x->log, y->log);

	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

static const struct copy *copy_find(const struct verify *v, const char *log, uint64_t index)
{
	struct copy key = { .log = log, .index = index };

	return v->ncopies ? bsearch(&key, v->copies, v->ncopies, sizeof(key), copy_cmp) : NULL;
}

static void add_key(struct verify *v, const char *text)
{
	struct tlog_vkey k;

	if (tlog_vkey_parse(text, &k) < 0)
		return;
	for (size_t i = 0; i < v->nkeys; i++)
		if (!memcmp(v->keys[i].id, k.id, 4) && !strcmp(v->keys[i].name, k.name))
			return;
	v->keys = realloc(v->keys, (v->nkeys + 1) * sizeof(*v->keys));
	v->keys[v->nkeys++] = k;
}

/* --key VKEY, or a file of them (one a line). */
static int add_key_arg(struct verify *v, const char *arg)
{
	struct tlog_vkey k;
	size_t len;
	char *text;
	int before = (int)v->nkeys;

	if (tlog_vkey_parse(arg, &k) == 0) {
		add_key(v, arg);
		return 0;
	}
	text = audit_slurp(arg, &len);
	if (!text) {
		fprintf(stderr, "mitogen audit: --key %s: neither a verifier key nor a readable "
			"file (%s)\n", arg, strerror(errno));
		return -1;
	}
	for (char *p = strtok(text, "\n"); p; p = strtok(NULL, "\n"))
		if (*p != '#')
			add_key(v, p);
	free(text);
	if ((int)v->nkeys == before) {
		fprintf(stderr, "mitogen audit: --key %s: no verifier key in it\n", arg);
		return -1;
	}
	return 0;
}

static int bad(const struct ent *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(const struct ent *e, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf_clean("%s:%u: %s", e->file, e->line, buf);
	printf("\n");
	return AUDIT_EXIT_BAD;
}

/* Collect checkpoints, copies and (without --key) the trail's own keys. */
static int verify_collect(struct verify *v)
{
	for (size_t i = 0; i < v->t.n; i++) {
		const struct ent *e = &v->t.e[i];
		const struct mg_value *cl = claimed_of(e);
		const char *note = NULL;
		struct cp cp = { .where = e };

		if (!e->chained) {
			note = str_of(e->v, "checkpoint");
			if (!note)
				return bad(e, "neither a chained record nor a checkpoint");
		} else if (cl) {
			const struct mg_value *idx = mg_map_get(cl, "index");
			const char *log = str_of(cl, "log"), *tree = str_of(cl, "tree");

			note = str_of(cl, "checkpoint");
			cp.witnessed = note != NULL;
			if (!note && log && tree && idx && idx->type == MG_INT && idx->i >= 0) {
				v->copies = realloc(v->copies, (v->ncopies + 1) * sizeof(*v->copies));
				v->copies[v->ncopies++] = (struct copy){ log, (uint64_t)idx->i, tree, e };
			}
			if (!v->keys_given && str_of(cl, "vkey"))
				add_key(v, str_of(cl, "vkey"));
		} else if (!v->keys_given && str_of(e->v, "vkey")) {
			add_key(v, str_of(e->v, "vkey"));
		}
		if (!note)
			continue;
		if (strlen(note) >= TLOG_NOTE_MAX ||
		    tlog_checkpoint_parse(note, strlen(note), &cp.c) < 0)
			return bad(e, "a malformed checkpoint");
		memcpy(cp.note, note, strlen(note) + 1);
		v->cps = realloc(v->cps, (v->ncps + 1) * sizeof(*v->cps));
		v->cps[v->ncps++] = cp;
	}
	if (v->ncopies)
		qsort(v->copies, v->ncopies, sizeof(*v->copies), copy_cmp);
	return 0;
}

/* A checkpoint's signature, by a key we trust. */
static int verify_signature(const struct verify *v, const struct cp *cp)
{
	const struct tlog_vkey *k = NULL;

	for (size_t i = 0; i < v->nkeys && !k; i++)
		if (!strcmp(v->keys[i].name, cp->c.key_name) && !memcmp(v->keys[i].id, cp->c.key_id, 4))
			k = &v->keys[i];
	if (!k)
		return bad(cp->where, "checkpoint of %s (size %llu) signed by an unknown key %s+%02x%02x%02x%02x%s",
			   cp->c.origin, (unsigned long long)cp->c.size, cp->c.key_name,
			   cp->c.key_id[0], cp->c.key_id[1], cp->c.key_id[2], cp->c.key_id[3],
			   v->keys_given ? " (not one given with --key): forged" : "");
	if (!tlog_checkpoint_verify(&cp->c, cp->note, k))
		return bad(cp->where, "checkpoint of %s (size %llu): the signature does not verify: "
			   "forged or edited", cp->c.origin, (unsigned long long)cp->c.size);
	return 0;
}

/* One chain, its entries in file order; *ret_maxcp: the largest size a
 * good checkpoint of it covers. */
static int verify_chain(struct verify *v, const char *log, uint64_t *ret_maxcp)
{
	struct tlog_tree tree = { 0 };
	uint8_t (*roots)[TLOG_HASH] = NULL, root[TLOG_HASH];
	const struct ent *last = NULL, *first = NULL;
	uint64_t maxcp = 0;
	int rc = 0;

	for (size_t i = 0; i < v->t.n && !rc; i++) {
		const struct ent *e = &v->t.e[i];
		uint8_t leaf[TLOG_HASH];
		const struct copy *c;
		char hex[2 * TLOG_HASH + 1];

		if (!e->chained || strcmp(e->s.log, log))
			continue;
		if (!first)
			first = e;
		if (e->s.index > tree.size) {
			bool later = false;

			for (size_t k = i + 1; k < v->t.n && !later; k++)
				later = v->t.e[k].chained && !strcmp(v->t.e[k].s.log, log) &&
					v->t.e[k].s.index == tree.size;
			if (later)
				rc = bad(e, "%s: record %llu comes before record %llu: records out of order",
					 log, (unsigned long long)e->s.index,
					 (unsigned long long)tree.size);
			else
				rc = bad(e, "%s: record %llu missing (this line is record %llu)", log,
					 (unsigned long long)tree.size, (unsigned long long)e->s.index);
			break;
		}
		if (e->s.index < tree.size) {
			rc = bad(e, "%s: record %llu appears again, after record %llu: a record was "
				 "inserted, or records reordered", log, (unsigned long long)e->s.index,
				 (unsigned long long)tree.size - 1);
			break;
		}
		tlog_line_leaf(e->text, e->s.rec_len, leaf);
		tlog_tree_append(&tree, leaf);
		tlog_tree_root(&tree, root);
		if (memcmp(root, e->s.tree, TLOG_HASH)) {
			rc = bad(e, "%s: record %llu changed: its hash does not match the chain", log,
				 (unsigned long long)e->s.index);
			break;
		}
		tlog_hex(root, hex);
		c = copy_find(v, log, e->s.index);
		if (c && strcmp(c->tree, hex)) {
			rc = bad(e, "%s: record %llu differs from the master's copy at %s:%u: changed, "
				 "inserted or reordered", log, (unsigned long long)e->s.index,
				 c->where->file, c->where->line);
			break;
		}
		roots = realloc(roots, tree.size * sizeof(*roots));
		memcpy(roots[tree.size - 1], root, TLOG_HASH);
		last = e;
		v->records++;
	}
	for (size_t i = 0; i < v->ncps && !rc && last; i++) {
		const struct cp *cp = &v->cps[i];

		if (strcmp(cp->c.origin, log))
			continue;
		rc = verify_signature(v, cp);
		if (rc)
			break;
		if (cp->c.size > tree.size) {
			rc = bad(last, "%s: truncated after record %llu: the checkpoint at %s:%u covers "
				 "%llu records", log, (unsigned long long)tree.size - 1,
				 cp->where->file, cp->where->line, (unsigned long long)cp->c.size);
			break;
		}
		if (cp->c.size && memcmp(roots[cp->c.size - 1], cp->c.root, TLOG_HASH)) {
			rc = bad(first, "%s: records 0 to %llu do not match the checkpoint at %s:%u: "
				 "the log was rewritten", log, (unsigned long long)cp->c.size - 1,
				 cp->where->file, cp->where->line);
			break;
		}
		if (cp->c.final && tree.size > cp->c.size) {
			for (size_t k = 0; k < v->t.n; k++) {
				const struct ent *e = &v->t.e[k];

				if (e->chained && !strcmp(e->s.log, log) && e->s.index == cp->c.size) {
					rc = bad(e, "%s: record %llu follows the final checkpoint at %s:%u: "
						 "appended after the log was closed", log,
						 (unsigned long long)cp->c.size, cp->where->file,
						 cp->where->line);
					break;
				}
			}
			break;
		}
		if (cp->c.size > maxcp)
			maxcp = cp->c.size;
		v->checkpoints++;
	}
	free(roots);
	*ret_maxcp = maxcp;
	return rc;
}

/*
 * A master's file that holds copies of an agent's log must hold every
 * record a good checkpoint of that log covers: a hole is a record the
 * master's file lost or someone removed from it.
 */
static int verify_copies(struct verify *v, const char *log, uint64_t maxcp)
{
	const struct copy *any = NULL, *prev = NULL;
	const struct cp *why = NULL;

	for (size_t i = 0; i < v->ncopies && !any; i++)
		if (!strcmp(v->copies[i].log, log))
			any = &v->copies[i];
	if (!any)
		return 0;
	for (size_t i = 0; i < v->ncps; i++)
		if (!strcmp(v->cps[i].c.origin, log) && v->cps[i].c.size == maxcp)
			why = &v->cps[i];
	for (uint64_t k = 0; k < maxcp; k++) {
		const struct copy *c = copy_find(v, log, k);

		if (c) {
			prev = c;
			continue;
		}
		return bad(prev ? prev->where : any->where,
			   "the master's file lacks record %llu of %s: the agent's checkpoint at "
			   "%s:%u covers it: the master's file is missing a record",
			   (unsigned long long)k, log, why ? why->where->file : "?",
			   why ? why->where->line : 0);
	}
	return 0;
}

static int audit_verify(int argc, char **argv)
{
	struct verify v = { 0 };
	const char **logs = NULL;
	size_t nlogs = 0;
	int rc = 0, nfiles = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--key")) {
			if (++i >= argc)
				return audit_usage("--key needs a verifier key or a file of them%s", "");
			if (add_key_arg(&v, argv[i]) < 0)
				return AUDIT_EXIT_USAGE;
			v.keys_given = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return audit_usage("verify: unknown option '%s'", argv[i]);
		} else {
			if (trail_add(&v.t, argv[i]) < 0) {
				trail_free(&v.t);
				return AUDIT_EXIT_USAGE;
			}
			nfiles++;
		}
	}
	if (!nfiles)
		return audit_usage("verify: no file given%s", "");
	if (!v.keys_given)
		fprintf(stderr, "mitogen audit: no --key: checkpoints are checked against the keys "
			"the trail names itself, which whoever wrote it could have chosen\n");
	rc = verify_collect(&v);
	for (size_t i = 0; i < v.t.n && !rc; i++) {
		const struct ent *e = &v.t.e[i];
		bool seen = false;

		if (!e->chained)
			continue;
		for (size_t k = 0; k < nlogs && !seen; k++)
			seen = !strcmp(logs[k], e->s.log);
		if (!seen) {
			logs = realloc(logs, (nlogs + 1) * sizeof(*logs));
			logs[nlogs++] = e->s.log;
		}
	}
	{
		uint64_t *maxcp = calloc(nlogs + 1, sizeof(*maxcp));

		for (size_t k = 0; k < nlogs && !rc; k++) {
			rc = verify_chain(&v, logs[k], &maxcp[k]);
			v.logs++;
		}
		for (size_t k = 0; k < nlogs && !rc; k++)
			rc = verify_copies(&v, logs[k], maxcp[k]);
		free(maxcp);
	}
	/* A checkpoint of a log not given: its signature at least. */
	for (size_t i = 0; i < v.ncps && !rc; i++) {
		bool have = false;

		for (size_t k = 0; k < nlogs && !have; k++)
			have = !strcmp(logs[k], v.cps[i].c.origin);
		if (!have)
			rc = verify_signature(&v, &v.cps[i]);
	}
	if (!rc)
		printf("ok: %lu logs, %lu records, %lu checkpoints verified\n", v.logs, v.records,
		       v.checkpoints);
	free(logs);
	free(v.keys);
	free(v.cps);
	free(v.copies);
	trail_free(&v.t);
	return rc;
}

/* --- show --------------------------------------------------------------- */

static void show_chain(const struct mg_value *list, char *out, size_t size)
{
	size_t n = 0;

	out[0] = '\0';
	for (uint32_t i = 0; list && list->type == MG_LIST && i < list->len; i++)
		if (list->items[i].type == MG_STR)
			n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s", i ? "/" : "",
					      list->items[i].str);
}

static int audit_show(int argc, char **argv)
{
	const char *since = NULL, *context = NULL, *function = NULL;
	bool json = false;
	struct trail t = { 0 };
	int nfiles = 0;

	for (int i = 1; i < argc; i++) {
		const char **opt = !strcmp(argv[i], "--since") ? &since
				   : !strcmp(argv[i], "--context") ? &context
				   : !strcmp(argv[i], "--function") ? &function : NULL;

		if (opt) {
			if (++i >= argc)
				return audit_usage("show: %s needs a value", argv[i - 1]);
			*opt = argv[i];
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return audit_usage("show: unknown option '%s'", argv[i]);
		} else {
			if (trail_add(&t, argv[i]) < 0) {
				trail_free(&t);
				return AUDIT_EXIT_USAGE;
			}
			nfiles++;
		}
	}
	if (!nfiles)
		return audit_usage("show: no file given%s", "");
	if (!json)
		printf("%-27s %-24s %-20s %-6s %10s  %s\n", "TIME", "CONTEXT", "FUNCTION", "STATUS",
		       "US", "COMMAND / ARGS SHA-256");
	for (size_t i = 0; i < t.n; i++) {
		const struct ent *e = &t.e[i];
		const struct mg_value *cl = claimed_of(e), *rec = cl ? cl : e->v, *a, *d;
		const char *time, *fn, *deny, *status;
		const char *ctx;
		char chain[256], what[512];
		size_t n = 0;

		if (!rec || !e->chained)
			continue;
		time = str_of(rec, "time");
		if (!time)
			time = str_of(rec, "opened");
		if (!time)
			time = str_of(e->v, "received");
		fn = str_of(rec, "function");
		deny = str_of(rec, "denied") ? str_of(rec, "denied") : str_of(rec, "by") ?
		       str_of(rec, "refused") : NULL;
		if (!fn)
			fn = str_of(rec, "checkpoint") ? "(checkpoint)" : str_of(rec, "opened") ?
			     "(log opened)" : deny && str_of(rec, "denied") ? "(denied)" :
			     deny ? "(refused)" : str_of(rec, "refused") ? "(refused record)" :
			     mg_map_get(rec, "denials_unrecorded") ? "(denials unrecorded)" : "";
		show_chain(e->v ? mg_map_get(e->v, "chain") : NULL, chain, sizeof(chain));
		ctx = *chain ? chain : str_of(rec, "context") ? str_of(rec, "context") : "";
		if (since && (!time || strcmp(time, since) < 0))
			continue;
		if (context && !strstr(ctx, context))
			continue;
		if (function && strcmp(fn, function))
			continue;
		if (json) {
			put_clean(e->text);
			printf("\n");
			continue;
		}
		what[0] = '\0';
		status = str_of(rec, "status");
		a = mg_map_get(rec, "argv");
		if (deny) {
			/* A denial: why, and what the message said it was. */
			const struct mg_value *h = mg_map_get(rec, "handle"),
					      *s = mg_map_get(rec, "src_id"),
					      *u = mg_map_get(rec, "unrecorded_before");

			status = str_of(rec, "denied") ? "denied" : "refused";
			snprintf(what, sizeof(what), "%s: handle %lld src_id %lld%s%.0lld%s", deny,
				 h && h->type == MG_INT ? (long long)h->i : -1LL,
				 s && s->type == MG_INT ? (long long)s->i : -1LL,
				 u && u->type == MG_INT ? " (" : "",
				 u && u->type == MG_INT ? (long long)u->i : 0LL,
				 u && u->type == MG_INT ? " before it not recorded)" : "");
		} else if ((d = mg_map_get(rec, "denials_unrecorded")) && d->type == MG_INT) {
			snprintf(what, sizeof(what), "%lld denials not recorded (rate limit)",
				 (long long)d->i);
		} else if (a && a->type == MG_LIST) {
			for (uint32_t k = 0; k < a->len && n < sizeof(what); k++)
				n += (size_t)snprintf(what + n, sizeof(what) - n, "%s%s", k ? " " : "",
						      a->items[k].type == MG_STR ? a->items[k].str : "?");
		} else if ((d = mg_map_get(rec, "detail")) && d->type == MG_MAP && d->len) {
			/* What the method said it did: path=/etc/x bytes=6 */
			for (uint32_t k = 0; k < d->len && n < sizeof(what); k++) {
				const struct mg_value *kv = &d->items[2 * k], *vv = &d->items[2 * k + 1];

				if (vv->type == MG_INT)
					n += (size_t)snprintf(what + n, sizeof(what) - n, "%s%s=%lld",
							      k ? " " : "", kv->type == MG_STR ?
							      kv->str : "?", (long long)vv->i);
				else
					n += (size_t)snprintf(what + n, sizeof(what) - n, "%s%s=%s",
							      k ? " " : "", kv->type == MG_STR ?
							      kv->str : "?", vv->type == MG_STR ?
							      vv->str : "?");
			}
		} else if ((d = mg_map_get(rec, "args_sha256")) && d->type == MG_STR) {
			snprintf(what, sizeof(what), "%.16s...", d->str);
		}
		d = mg_map_get(rec, "duration_us");
		/* json_args decoded \u001b and the like: put_clean keeps them
		 * off the terminal. */
		printf_clean("%-27s %-24s %-20s %-6s %10lld  %s", time ? time : "-", ctx, fn,
			     status ? status : "-",
			     d && d->type == MG_INT ? (long long)d->i : 0LL, what);
		printf("\n");
	}
	trail_free(&t);
	return 0;
}

/* --- keys, fetch -------------------------------------------------------- */

/* Most keys printed for one host and uid (the current one, retired ones). */
#define AUDIT_KEYS_MAX 64

/* Targets behind one bastion (-t bastion/web[01-20]) reach it over one
 * connection, as for run (docs/tool.md); ENOMEM: each its own. */
static void audit_targets_share(struct target_list *list)
{
	target_list_name(list);
	(void)target_list_share(list, false);
}

/*
 * keys -t TARGETS: each target's verifier keys (mg.audit_keys, as the
 * target's uid on its host), a "# TARGET" line before them: the output
 * is a --key file for verify.
 */
static int audit_keys_remote(const char *spec)
{
	struct target_list list = { 0 };
	struct mg_router *r;
	char why[256];
	int rc = 0;

	if (target_list_parse(&list, spec, why, sizeof(why)) < 0) {
		fprintf(stderr, "mitogen audit: -t %s: %s\n", spec, why);
		return AUDIT_EXIT_USAGE;
	}
	r = mg_router_new(NULL);
	if (!r) {
		fprintf(stderr, "mitogen audit: %s\n", strerror(errno));
		target_list_free(&list);
		return AUDIT_EXIT_BAD;
	}
	audit_targets_share(&list);
	for (size_t i = 0; i < list.n; i++) {
		struct target *t = &list.v[i];
		struct mg_error err = MG_ERROR_INIT;
		struct mg_value *res = NULL;
		uint32_t n = 0;

		if (target_start(t, r, target_clock() + 60, NULL, &err, NULL) < 0 ||
		    mg_call(target_last(t), "mg.audit_keys", NULL, &res, &err) < 0) {
			fprintf(stderr, "mitogen audit: %s: %s\n", t->spec, err.message);
			rc = AUDIT_EXIT_BAD;
			target_stop(t, true);
			continue;
		}
		printf("# ");
		put_clean(t->spec);
		printf("\n");
		for (uint32_t k = 0; res && res->type == MG_LIST && k < res->len; k++) {
			struct tlog_vkey vk;

			/* Only what parses as a verifier key: the target chose
			 * these strings. */
			if (res->items[k].type != MG_STR || tlog_vkey_parse(res->items[k].str, &vk) < 0)
				continue;
			printf("%s\n", res->items[k].str);
			n++;
		}
		if (!n) {
			fprintf(stderr, "mitogen audit: %s: no verifier key in its answer\n", t->spec);
			rc = AUDIT_EXIT_BAD;
		}
		mg_value_free(res);
		target_stop(t, false);
	}
	target_list_stop_shared(&list);
	mg_router_unref(r);
	target_list_free(&list);
	return rc;
}

static int audit_keys(int argc, char **argv)
{
	char path[4096], why[512], name[TLOG_NAME_MAX + 1], (*keys)[TLOG_VKEY_MAX];
	const char *spec = NULL;
	struct tlog_key k;
	bool rotate = false;
	int n;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rotate"))
			rotate = true;
		else if (!strcmp(argv[i], "-t") && i + 1 < argc)
			spec = argv[++i];
		else if (!strcmp(argv[i], "-t"))
			return audit_usage("keys: -t needs TARGETS%s", "");
		else
			return audit_usage("keys: unknown argument '%s'", argv[i]);
	}
	if (spec && rotate)
		return audit_usage("keys: --rotate acts on this host's key, not with -t%s", "");
	if (spec)
		return audit_keys_remote(spec);
	if (tlog_key_path(path, sizeof(path)) < 0) {
		fprintf(stderr, "mitogen audit: no place for this uid's audit key (HOME unset)\n");
		return AUDIT_EXIT_BAD;
	}
	tlog_key_name(name);
	if (rotate && access(path, F_OK) == 0) {
		char old[4200], stamp[32], oldvkey[TLOG_VKEY_MAX];
		time_t now = time(NULL);
		struct tm tm;

		/* The retired key stays next to the new one: its logs still
		 * verify, and `keys` keeps printing it. */
		if (tlog_key_load_path(&k, path, name, false, why, sizeof(why)) < 0) {
			fprintf(stderr, "mitogen audit: %s\n", why);
			return AUDIT_EXIT_BAD;
		}
		tlog_key_vkey(&k, oldvkey);
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
		snprintf(old, sizeof(old), "%s.retired-%s", path, stamp);
		if (rename(path, old) < 0) {
			fprintf(stderr, "mitogen audit: %s: %s\n", path, strerror(errno));
			return AUDIT_EXIT_BAD;
		}
		fprintf(stderr, "mitogen audit: retired %s (kept as %s)\n", oldvkey, old);
	}
	/* The current key (made when missing), then the retired ones. */
	keys = calloc(AUDIT_KEYS_MAX, TLOG_VKEY_MAX);
	if (!keys) {
		fprintf(stderr, "mitogen audit: %s\n", strerror(ENOMEM));
		return AUDIT_EXIT_BAD;
	}
	n = tlog_vkeys(keys, AUDIT_KEYS_MAX, why, sizeof(why));
	if (n < 0)
		fprintf(stderr, "mitogen audit: %s\n", why);
	for (int i = 0; i < n; i++)
		printf("%s\n", keys[i]);
	free(keys);
	return n < 0 ? AUDIT_EXIT_BAD : 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	ssize_t n = fd >= 0 ? write(fd, data, len) : -1;

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static int audit_fetch(int argc, char **argv)
{
	struct target_list list = { 0 };
	const char *spec = NULL, *dir = NULL;
	char why[256];
	struct mg_router *r;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-t") && i + 1 < argc)
			spec = argv[++i];
		else if (argv[i][0] == '-')
			return audit_usage("fetch: unknown option '%s'", argv[i]);
		else if (!dir)
			dir = argv[i];
		else
			return audit_usage("fetch: one directory, not also '%s'", argv[i]);
	}
	if (!spec || !dir)
		return audit_usage("fetch: needs -t TARGETS and a directory%s", "");
	if (target_list_parse(&list, spec, why, sizeof(why)) < 0) {
		fprintf(stderr, "mitogen audit: -t %s: %s\n", spec, why);
		return AUDIT_EXIT_USAGE;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "mitogen audit: %s: %s\n", dir, strerror(errno));
		target_list_free(&list);
		return AUDIT_EXIT_USAGE;
	}
	r = mg_router_new(NULL);
	audit_targets_share(&list);
	for (size_t i = 0; r && i < list.n; i++) {
		struct target *t = &list.v[i];
		struct mg_error err = MG_ERROR_INIT;
		struct mg_value *res = NULL;
		const struct mg_value *files;
		char sub[4200], safe[128];
		size_t k;

		if (target_start(t, r, target_clock() + 60, NULL, &err, NULL) < 0 ||
		    mg_call(target_last(t), "mg.audit_files", NULL, &res, &err) < 0) {
			fprintf(stderr, "mitogen audit: %s: %s\n", t->spec, err.message);
			rc = AUDIT_EXIT_BAD;
			target_stop(t, true);
			continue;
		}
		/* The target as written, made a file name. */
		for (k = 0; t->spec[k] && k + 1 < sizeof(safe); k++)
			safe[k] = strchr("/:@ ", t->spec[k]) || (t->spec[k] == '.' && k == 0) ?
				  '_' : t->spec[k];
		safe[k] = '\0';
		snprintf(sub, sizeof(sub), "%s/%s", dir, safe);
		mkdir(sub, 0700);
		files = res && res->type == MG_MAP ? mg_map_get(res, "files") : NULL;
		for (uint32_t f = 0; files && files->type == MG_LIST && f < files->len; f++) {
			const char *name = str_of(&files->items[f], "name");
			const struct mg_value *data = mg_map_get(&files->items[f], "data");
			char path[8400];

			if (!name || strchr(name, '/') || name[0] == '.' || !data ||
			    data->type != MG_BYTES)
				continue;
			snprintf(path, sizeof(path), "%s/%s", sub, name);
			if (write_file(path, data->bytes, data->len) < 0) {
				fprintf(stderr, "mitogen audit: %s: %s\n", path, strerror(errno));
				rc = AUDIT_EXIT_BAD;
			}
		}
		if (str_of(res, "vkey")) {
			char path[8400], line[TLOG_VKEY_MAX + 2];

			snprintf(path, sizeof(path), "%s/vkey", sub);
			snprintf(line, sizeof(line), "%s\n", str_of(res, "vkey"));
			write_file(path, line, strlen(line));
		}
		printf("%s: %u files into %s\n", t->spec,
		       files && files->type == MG_LIST ? files->len : 0, sub);
		mg_value_free(res);
		target_stop(t, false);
	}
	target_list_stop_shared(&list);
	mg_router_unref(r);
	target_list_free(&list);
	return rc;
}

int tool_audit(int argc, char **argv)
{
	if (argc < 2)
		return audit_usage("no subcommand (verify, show, fetch or keys)%s", "");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(tool_audit_help, stdout);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (!strcmp(argv[1], "verify"))
		return audit_verify(argc - 1, argv + 1);
	if (!strcmp(argv[1], "show"))
		return audit_show(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fetch"))
		return audit_fetch(argc - 1, argv + 1);
	if (!strcmp(argv[1], "keys"))
		return audit_keys(argc - 1, argv + 1);
	return audit_usage("unknown subcommand '%s' (verify, show, fetch or keys)", argv[1]);
}
