// SPDX-License-Identifier: MIT
/*
 * sandbox.c — a sandbox as a whole: mg_sandbox_opts -> the BOOT "sandbox"
 * map in the parent (where a rule file is read and every name checked, so
 * mistakes fail mg_local before a child starts), the same checks again
 * where the map is received, and applying it in the child in a fixed
 * order: rlimits, namespace set-up (lo, /tmp: needs capabilities), the
 * tenant cgroup, the Landlock ruleset, capabilities + securebits +
 * no_new_privs + Landlock enforced in every thread, seccomp last (the
 * filter may refuse what the earlier steps need). Must not touch the agent's
 * state: the agent calls sandbox_apply once, after BOOT, before its
 * greeting.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/sha2.h>
#include <seccomp.h>

#include "core/log.h"
#include "sandbox/sandbox.h"

#define RULE_FILE_MAX (256 << 10)

static char *read_text(const char *path, char *why, size_t n)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t len;

	if (!f) {
		snprintf(why, n, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(RULE_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		snprintf(why, n, "out of memory");
		return NULL;
	}
	len = fread(buf, 1, RULE_FILE_MAX + 1, f);
	if (ferror(f) || len > RULE_FILE_MAX || memchr(buf, '\0', len)) {
		snprintf(why, n, "%s: %s", path, ferror(f) ? strerror(errno)
				 : len > RULE_FILE_MAX ? "larger than 256 KiB" : "not text");
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static const char *map_str(const struct mg_value *v, const char *key)
{
	const struct mg_value *x = mg_map_get(v, key);

	return x && x->type == MG_STR ? x->str : NULL;
}

/* The policy the map names: a built-in profile or the rules it carries. */
static int policy_of(const struct mg_value *v, struct sb_policy *p, const char **ret_name,
		     char *why, size_t n)
{
	const char *name = map_str(v, "seccomp"), *text = map_str(v, "rules");

	*ret_name = name;
	if (!name)
		return 0;
	if (!text)
		text = sb_profile_text(name);
	if (!text) {
		snprintf(why, n, "seccomp: no profile '%s'", name);
		return -EINVAL;
	}
	return sb_policy_parse(text, name, p, why, n) < 0 ? -EINVAL : 1;
}

/*
 * The compiled filter is bound to the policy it was made from: "bpf_sum"
 * is SHA-256 over a tag, the profile name, the policy text, the
 * architecture and the program. A child loads "bpf" only when the sum it
 * computes from its own copy of the policy (its built-in profile, or the
 * map's rule text) matches; otherwise the filter is stale (made from
 * another policy or another build's profile) or damaged, and the child
 * compiles the policy itself, saying so.
 */
#define BPF_SUM_LEN SHA256_DIGEST_SIZE

static void bpf_sum(const char *name, const char *text, int64_t arch, const void *prog,
		    size_t len, uint8_t out[BPF_SUM_LEN])
{
	static const char tag[] = "mitogen seccomp filter v1";
	uint8_t a[8];
	struct sha256_ctx c;

	for (int i = 0; i < 8; i++)
		a[i] = (uint8_t)((uint64_t)arch >> (8 * i));
	sha256_init(&c);
	sha256_update(&c, sizeof(tag), (const uint8_t *)tag);
	sha256_update(&c, strlen(name) + 1, (const uint8_t *)name);
	sha256_update(&c, strlen(text) + 1, (const uint8_t *)text);
	sha256_update(&c, sizeof(a), a);
	sha256_update(&c, len, prog);
	sha256_digest(&c, BPF_SUM_LEN, out);
}

/* Does the map carry a compiled filter for this policy and architecture? */
static bool bpf_matches(const struct mg_value *v)
{
	const struct mg_value *bpf = mg_map_get(v, "bpf"), *arch = mg_map_get(v, "bpf_arch");
	const struct mg_value *sum = mg_map_get(v, "bpf_sum");
	const char *name = map_str(v, "seccomp"), *text = map_str(v, "rules");
	uint8_t want[BPF_SUM_LEN];

	if (!name || !bpf || bpf->type != MG_BYTES || !arch || arch->type != MG_INT ||
	    arch->i != (int64_t)seccomp_arch_native() || !sum || sum->type != MG_BYTES ||
	    sum->len != BPF_SUM_LEN)
		return false;
	if (!text)
		text = sb_profile_text(name);
	if (!text)
		return false;
	bpf_sum(name, text, arch->i, bpf->bytes, bpf->len, want);
	return !memcmp(want, sum->bytes, BPF_SUM_LEN);
}

/*
 * The last policy compiled, kept: starting many children with the same
 * sandbox compiles it once. Keyed by profile name and rule text.
 */
static pthread_mutex_t bpf_lock = PTHREAD_MUTEX_INITIALIZER;
static char *bpf_key;
static void *bpf_prog;
static size_t bpf_len;
static uint8_t bpf_cached_sum[BPF_SUM_LEN];

static void bpf_attach(struct mg_value *v, char *why, size_t n)
{
	const char *name = map_str(v, "seccomp"), *rules = map_str(v, "rules");
	struct sb_policy p;
	void *prog = NULL;
	size_t len = 0;
	char *key;

	if (!name || asprintf(&key, "%s%c%s", name, 0, rules ? rules : "") < 0)
		return;
	pthread_mutex_lock(&bpf_lock);
	if (bpf_key && !strcmp(bpf_key, key) &&
	    !strcmp(bpf_key + strlen(bpf_key) + 1, key + strlen(key) + 1)) {
		prog = bpf_prog;
		len = bpf_len;
	} else if (policy_of(v, &p, &name, why, n) > 0) {
		if (sb_seccomp_export(&p, name, &prog, &len, why, n) == 0) {
			free(bpf_key);
			free(bpf_prog);
			bpf_key = key;
			key = NULL;
			bpf_prog = prog;
			bpf_len = len;
			bpf_sum(name, rules ? rules : sb_profile_text(name),
				(int64_t)seccomp_arch_native(), prog, len, bpf_cached_sum);
		}
		sb_policy_free(&p);
	}
	if (prog) {
		mg_map_set(v, "bpf", mg_bytes(prog, len));
		mg_map_set(v, "bpf_arch", mg_int(seccomp_arch_native()));
		mg_map_set(v, "bpf_sum", mg_bytes(bpf_cached_sum, BPF_SUM_LEN));
	}
	pthread_mutex_unlock(&bpf_lock);
	free(key);
}

/* Size of the first version of the struct (up to best_effort). */
#define SB_SZ_V1 (offsetof(struct mg_sandbox_opts, best_effort) + sizeof(unsigned))
#define SB_HAS(o, f) ((o)->sz >= offsetof(struct mg_sandbox_opts, f) + sizeof((o)->f))

static int add_paths(struct mg_value *v, const char *key, const char *const *paths,
		     char *why, size_t n)
{
	struct mg_value *l;

	if (!paths)
		return 0;
	l = mg_list();
	for (size_t i = 0; l && paths[i]; i++) {
		if (paths[i][0] != '/') {
			snprintf(why, n, "landlock: %s path '%s' is not absolute", key, paths[i]);
			mg_value_free(l);
			return -EINVAL;
		}
		if (i >= 1024) {
			snprintf(why, n, "landlock: more than 1024 %s paths", key);
			mg_value_free(l);
			return -EINVAL;
		}
		mg_list_append(l, mg_str(paths[i]));
	}
	if (!l || mg_map_set(v, key, l) < 0) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* The fields added in the second part of issue 5, if the caller's struct
 * has them. */
static int add_v2(struct mg_value *v, const struct mg_sandbox_opts *o, char *why, size_t n)
{
	if (SB_HAS(o, exec) && (add_paths(v, "ro", o->ro, why, n) < 0 ||
				add_paths(v, "rw", o->rw, why, n) < 0 ||
				add_paths(v, "exec", o->exec, why, n) < 0))
		return -EINVAL;
	if (SB_HAS(o, namespaces) && o->namespaces)
		mg_map_set(v, "ns", mg_int(o->namespaces));
	if (SB_HAS(o, no_inet) && o->no_inet)
		mg_map_set(v, "no_inet", mg_bool(true));
	if (SB_HAS(o, lock_securebits) && o->lock_securebits)
		mg_map_set(v, "securebits", mg_bool(true));
	if (SB_HAS(o, memory_max)) {
		if (o->tenant)
			mg_map_set(v, "tenant", mg_str(o->tenant));
		if ((o->pids_max || o->memory_max) && !o->tenant) {
			snprintf(why, n, "cgroup: pids_max and memory_max need a tenant");
			return -EINVAL;
		}
		mg_map_set(v, "pids_max", mg_int(o->pids_max));
		mg_map_set(v, "memory_max", mg_int(o->memory_max));
	}
	if (SB_HAS(o, tenant_deny) && o->tenant_deny) {
		if (!o->tenant) {
			snprintf(why, n, "cgroup: tenant_deny needs a tenant");
			return -EINVAL;
		}
		mg_map_set(v, "tenant_deny", mg_int(o->tenant_deny));
	}
	return 0;
}

struct mg_value *sandbox_to_value(const struct mg_sandbox_opts *o, char *why, size_t n)
{
	struct mg_value *v;
	uint64_t keep;
	char *text = NULL;

	if (!o || o->sz < sizeof(size_t)) {
		snprintf(why, n, "sandbox options struct has no size");
		return NULL;
	}
	if (o->sz < SB_SZ_V1) {
		snprintf(why, n, "sandbox options struct too small");
		return NULL;
	}
	if (sb_caps_parse(o->caps, &keep, why, n) < 0)
		return NULL;
	if (o->seccomp && !sb_profile_text(o->seccomp)) {
		text = read_text(o->seccomp, why, n);
		if (!text)
			return NULL;
	}
	v = mg_map();
	if (!v) {
		free(text);
		snprintf(why, n, "out of memory");
		return NULL;
	}
	if (o->seccomp)
		mg_map_set(v, "seccomp", mg_str(o->seccomp));
	if (text)
		mg_map_set(v, "rules", mg_str(text));
	free(text);
	if (o->caps)
		mg_map_set(v, "caps", mg_str(o->caps));
	mg_map_set(v, "nofile", mg_int(o->rlimits.nofile));
	mg_map_set(v, "nproc", mg_int(o->rlimits.nproc));
	mg_map_set(v, "as", mg_int(o->rlimits.as));
	mg_map_set(v, "cpu", mg_int(o->rlimits.cpu));
	mg_map_set(v, "fsize", mg_int(o->rlimits.fsize));
	mg_map_set(v, "best_effort", mg_int(o->best_effort));
	if (add_v2(v, o, why, n) < 0 || sandbox_value_check(v, why, n) < 0) {
		mg_value_free(v);
		return NULL;
	}
	/* Compile the filter here (once per policy) for the child to load. */
	bpf_attach(v, why, n);
	return v;
}

static int check_v2(const struct mg_value *v, char *why, size_t n)
{
	static const char *const lists[] = { "ro", "rw", "exec" };
	const struct mg_value *x;

	for (size_t k = 0; k < 3; k++) {
		x = mg_map_get(v, lists[k]);
		if (!x)
			continue;
		if (x->type != MG_LIST) {
			snprintf(why, n, "landlock: %s is not a list", lists[k]);
			return -EINVAL;
		}
		for (size_t i = 0; i < x->len; i++)
			if (x->items[i].type != MG_STR || x->items[i].str[0] != '/') {
				snprintf(why, n, "landlock: a %s path is not absolute", lists[k]);
				return -EINVAL;
			}
	}
	x = mg_map_get(v, "ns");
	if (x && (x->type != MG_INT || x->i < 0 || x->i > 0x3f)) {
		snprintf(why, n, "namespaces: unknown namespace bits");
		return -EINVAL;
	}
	x = mg_map_get(v, "tenant");
	if (x && (x->type != MG_STR || sb_tenant_check(x->str, why, n) < 0)) {
		if (x->type != MG_STR)
			snprintf(why, n, "cgroup: tenant is not a string");
		return -EINVAL;
	}
	x = mg_map_get(v, "tenant_deny");
	if (x && (x->type != MG_INT || x->i < 0 || x->i > 7 || !mg_map_get(v, "tenant"))) {
		snprintf(why, n, "cgroup: tenant_deny wants MG_TENANT_NO_* bits and a tenant");
		return -EINVAL;
	}
	for (const char *const *k = (const char *const[]){ "pids_max", "memory_max", NULL }; *k;
	     k++) {
		x = mg_map_get(v, *k);
		if (x && (x->type != MG_INT || x->i < 0)) {
			snprintf(why, n, "cgroup: %s must be >= 0", *k);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Was this policy (profile name + rule text) the last one that parsed and
 * compiled? Then checking it again is ~90 us per child for nothing.
 * remember: it just did.
 */
static bool policy_checked(const struct mg_value *v, bool remember)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static char *last;
	const char *name = map_str(v, "seccomp"), *rules = map_str(v, "rules");
	bool same = false;
	char *key;

	if (!name || asprintf(&key, "%s%c%s", name, 0, rules ? rules : "") < 0)
		return false;
	pthread_mutex_lock(&lock);
	if (remember) {
		free(last);
		last = key;
		key = NULL;
	} else {
		same = last && !strcmp(last, key) &&
		       !strcmp(last + strlen(last) + 1, key + strlen(key) + 1);
	}
	pthread_mutex_unlock(&lock);
	free(key);
	return same;
}

int sandbox_value_check(const struct mg_value *v, char *why, size_t n)
{
	struct sb_policy p;
	const char *name;
	uint64_t keep;
	int ret;

	if (!v || v->type != MG_MAP) {
		snprintf(why, n, "sandbox description is not a map");
		return -EINVAL;
	}
	if (sb_caps_parse(map_str(v, "caps"), &keep, why, n) < 0)
		return -EINVAL;
	ret = check_v2(v, why, n);
	if (ret < 0)
		return ret;
	if (policy_checked(v, false))
		return 0;
	ret = policy_of(v, &p, &name, why, n);
	if (ret < 0)
		return ret;
	if (ret > 0) {
		sb_policy_free(&p);
		policy_checked(v, true);
	}
	return 0;
}

/* Skip a failed part the caller marked best effort (with a warning). */
static int best_effort(int ret, unsigned best, unsigned part, const char *why)
{
	if (ret < 0 && (best & part)) {
		LOG_WARN("sandbox: skipped (best effort): %s", why);
		return 0;
	}
	return ret;
}

/* Were we started in the namespaces asked for? (A starter that does not
 * know namespaces leaves "ns_in" out: fail closed.) */
static int ns_check(const struct mg_value *v, unsigned best, char *why, size_t n)
{
	const struct mg_value *ns = mg_map_get(v, "ns"), *in = mg_map_get(v, "ns_in");
	unsigned want = ns && ns->type == MG_INT ? (unsigned)ns->i : 0;
	unsigned got = in && in->type == MG_INT ? (unsigned)in->i : 0;

	if ((want & ~got & ~MG_NS_USER) && !(best & MG_SANDBOX_NAMESPACES)) {
		const char *self = sb_ns_self_why();

		if (self)
			snprintf(why, n, "namespaces: %s", self);
		else
			snprintf(why, n, "namespaces: this context was started without them "
				 "(asked %#x, got %#x)", want, got);
		return -EOPNOTSUPP;
	}
	if ((want & ~got & ~MG_NS_USER) && sb_ns_self_why())
		LOG_WARN("sandbox: skipped (best effort): namespaces: %s", sb_ns_self_why());
	return 0;
}

int sandbox_apply(const struct mg_value *v, char *why, size_t n)
{
	const struct mg_value *be = mg_map_get(v, "best_effort");
	const struct mg_value *sbits = mg_map_get(v, "securebits");
	const struct mg_value *noinet = mg_map_get(v, "no_inet");
	unsigned best = be && be->type == MG_INT ? (unsigned)be->i : 0;
	const char *caps = map_str(v, "caps"), *name;
	struct sb_caps_req req = { .landlock_fd = -1 };
	struct sb_policy p;
	int ret, have_policy;

	const struct mg_value *bpf = mg_map_get(v, "bpf");
	bool compiled = bpf_matches(v);

	if (sb_caps_parse(caps, &req.keep, why, n) < 0)
		return -EINVAL;
	req.have_caps = caps != NULL;
	req.securebits = sbits && sbits->type == MG_BOOL && sbits->b;
	if (bpf && !compiled)
		LOG_WARN("sandbox: seccomp: the compiled filter does not match policy '%s' "
			 "(stale or damaged): compiling the policy here", map_str(v, "seccomp"));
	if (compiled) {
		/* The parent parsed and compiled it: nothing to parse here. */
		name = map_str(v, "seccomp");
		have_policy = name ? 2 : 0;
	} else {
		have_policy = policy_of(v, &p, &name, why, n);
		if (have_policy < 0)
			return have_policy;
	}

	ret = best_effort(sb_rlimits_apply(v, why, n), best, MG_SANDBOX_RLIMITS, why);
	if (ret == 0)
		ret = ns_check(v, best, why, n);
	if (ret == 0)
		ret = sb_ns_setup(v, why, n);
	if (ret == 0)
		ret = best_effort(sb_cgroup_apply(v, why, n), best, MG_SANDBOX_CGROUP, why);
	if (ret == 0)
		ret = best_effort(sb_landlock_prepare(v, &req.landlock_fd, why, n), best,
				  MG_SANDBOX_LANDLOCK, why);
	if (ret == 0) {
		ret = sb_caps_apply(&req, why, n);
		if (ret < 0 && req.securebits && (best & MG_SANDBOX_SECUREBITS) &&
		    !strncmp(why, "securebits", 10)) {
			LOG_WARN("sandbox: skipped (best effort): %s", why);
			req.securebits = false;
			ret = sb_caps_apply(&req, why, n);
		}
		if (ret < 0 && caps && (best & MG_SANDBOX_CAPS)) {
			LOG_WARN("sandbox: skipped (best effort): %s", why);
			/* no_new_privs and Landlock are never optional. */
			req.have_caps = req.securebits = false;
			ret = sb_caps_apply(&req, why, n);
		}
		sb_landlock_done(req.landlock_fd, ret == 0 && req.landlock_fd >= 0);
	}
	if (ret == 0 && noinet && noinet->type == MG_BOOL && noinet->b)
		ret = best_effort(sb_seccomp_no_inet(why, n), best, MG_SANDBOX_SECCOMP, why);
	if (ret == 0 && have_policy > 0) {
		/* Compiled by the parent for this architecture: load as is. */
		if (compiled)
			ret = sb_seccomp_load_bpf(bpf->bytes, bpf->len, name, why, n);
		else
			ret = sb_seccomp_load(&p, name, why, n);
		ret = best_effort(ret, best, MG_SANDBOX_SECCOMP, why);
	}
	if (have_policy == 1)
		sb_policy_free(&p);
	return ret;
}
