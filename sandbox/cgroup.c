// SPDX-License-Identifier: MIT
/*
 * cgroup.c — tenant cgroups: a sandboxed child moves itself (all its
 * threads) into <cgroup2 mount>/mitogen/<tenant>, creating it when missing,
 * and its pids/memory limits go where those controllers are:
 *
 *  - in the cgroup2 tenant directory when the cgroup2 hierarchy offers the
 *    controller (enabled on the way down through cgroup.subtree_control);
 *  - otherwise, on hybrid machines, in a cgroup v1 hierarchy of that
 *    controller, in a group of the same name, "mitogen/<tenant>", under the
 *    cgroup this process is in there (so a limit set on us from outside
 *    still holds for the tenant), and the child joins that group too.
 *
 * With no cgroup2 mounted at all, one is mounted at /run/mitogen/cgroup2
 * and the log says so. The cgroup2 directory's path is fixed
 * (sandbox_tenant_cgroup): eBPF cgroup programs are attached there.
 * Tenant groups are never removed by the library.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "core/log.h"
#include "sandbox/sandbox.h"

#define CG2_FALLBACK "/run/mitogen/cgroup2"

int sb_tenant_check(const char *t, char *why, size_t n)
{
	size_t len = t ? strlen(t) : 0;

	if (!len || len > 64 || !strcmp(t, ".") || !strcmp(t, "..") ||
	    strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != len) {
		snprintf(why, n, "cgroup: tenant name '%s' is not 1-64 letters, digits, '-', '_', '.'",
			 t ? t : "");
		return -EINVAL;
	}
	return 0;
}

/* Does the comma-separated list contain word? */
static bool has_word(const char *list, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, word, wl) && (p[wl] == ',' || p[wl] == '\0' || p[wl] == ' ' ||
					      p[wl] == '\n'))
			return true;
	return false;
}

/*
 * Mount point of the first mount of fstype (with option opt among its
 * super options, when opt is not NULL). 0, or -ENOENT.
 */
static int find_mount(const char *fstype, const char *opt, char *path, size_t n)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024];
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (ret && fgets(line, sizeof(line), f)) {
		char mnt[512], type[64], opts[512];
		char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %511s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %*s %511s", type, opts) != 2)
			continue;
		if (strcmp(type, fstype) || (opt && !has_word(opts, opt)))
			continue;
		snprintf(path, n, "%s", mnt);
		ret = 0;
	}
	fclose(f);
	return ret;
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static int write_text(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX];
	ssize_t len = (ssize_t)strlen(text);
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, (size_t)len) != len)
		ret = -errno;
	close(fd);
	return ret;
}

static int cgroup2_root(char *path, size_t n)
{
	int ret = find_mount("cgroup2", NULL, path, n);

	if (ret != -ENOENT)
		return ret;
	ret = mkdir_p(CG2_FALLBACK);
	if (ret == 0 && mount("cgroup2", CG2_FALLBACK, "cgroup2", MS_NOSUID | MS_NODEV |
			      MS_NOEXEC, NULL) < 0)
		ret = -errno;
	if (ret < 0)
		return ret;
	LOG_INFO("sandbox: no cgroup2 was mounted; mounted one at " CG2_FALLBACK);
	snprintf(path, n, "%s", CG2_FALLBACK);
	return 0;
}

int sandbox_tenant_cgroup(const char *tenant, char *path, size_t size)
{
	char root[PATH_MAX], why[160];
	int ret;

	if (!path || size == 0 || sb_tenant_check(tenant, why, sizeof(why)) < 0)
		return -EINVAL;
	ret = cgroup2_root(root, sizeof(root));
	if (ret < 0)
		return ret;
	if ((size_t)snprintf(path, size, "%s/mitogen/%s", root, tenant) >= size)
		return -ENAMETOOLONG;
	return mkdir_p(path);
}

/* Is controller ctl available to the tenant in the cgroup2 hierarchy? If
 * so, enable it from the root down to mitogen/. */
static bool v2_controller(const char *root, const char *ctl)
{
	char path[PATH_MAX], buf[512] = "", plus[32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	for (char *p = buf; *p; p++)
		if (*p == ' ')
			*p = ',';
	if (!has_word(buf, ctl))
		return false;
	snprintf(plus, sizeof(plus), "+%s", ctl);
	snprintf(path, sizeof(path), "%s/mitogen", root);
	return write_text(root, "cgroup.subtree_control", plus) == 0 &&
	       write_text(path, "cgroup.subtree_control", plus) == 0;
}

/* This process's group in the v1 hierarchy of ctl ("/" when unknown). */
static void v1_own_group(const char *ctl, char *out, size_t n)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[1024];

	snprintf(out, n, "/");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;

		if (!b)
			continue;
		*b = '\0';
		if (has_word(a + 1, ctl)) {
			b[1 + strcspn(b + 1, "\n")] = '\0';
			snprintf(out, n, "%s", b + 1);
			break;
		}
	}
	fclose(f);
}

/* Limit ctl (file = value) for the tenant in cgroup v2 or v1; join it. */
static int set_limit(const char *root2, const char *dir2, const char *tenant, const char *ctl,
		     const char *file2, const char *file1, int64_t value, char *why, size_t n)
{
	char mnt[PATH_MAX], own[PATH_MAX], dir[PATH_MAX], text[32];
	int ret;

	snprintf(text, sizeof(text), "%lld", (long long)value);
	if (v2_controller(root2, ctl)) {
		ret = write_text(dir2, file2, text);
		if (ret < 0)
			snprintf(why, n, "cgroup: %s/%s = %s: %s", dir2, file2, text,
				 strerror(-ret));
		return ret;
	}
	if (find_mount("cgroup", ctl, mnt, sizeof(mnt)) < 0) {
		snprintf(why, n, "cgroup: no %s controller (neither in cgroup2 nor v1)", ctl);
		return -EOPNOTSUPP;
	}
	v1_own_group(ctl, own, sizeof(own));
	if ((size_t)snprintf(dir, sizeof(dir), "%s%s/mitogen/%s", mnt,
			     strcmp(own, "/") ? own : "", tenant) >= sizeof(dir)) {
		snprintf(why, n, "cgroup: %s: path too long", ctl);
		return -ENAMETOOLONG;
	}
	ret = mkdir_p(dir);
	if (ret == 0 && (ret = write_text(dir, file1, text)) < 0)
		snprintf(why, n, "cgroup: %s/%s = %s: %s", dir, file1, text, strerror(-ret));
	else if (ret == 0 && (ret = write_text(dir, "cgroup.procs", "0")) < 0)
		snprintf(why, n, "cgroup: joining %s: %s", dir, strerror(-ret));
	else if (ret < 0)
		snprintf(why, n, "cgroup: %s: %s", dir, strerror(-ret));
	if (ret == 0)
		LOG_DEBUG("sandbox: tenant %s: %s limit in cgroup v1 %s", tenant, ctl, dir);
	return ret;
}

static int64_t map_i64(const struct mg_value *v, const char *key)
{
	const struct mg_value *x = mg_map_get(v, key);

	return x && x->type == MG_INT ? x->i : 0;
}

int sb_cgroup_apply(const struct mg_value *v, char *why, size_t n)
{
	const struct mg_value *t = mg_map_get(v, "tenant");
	unsigned best = (unsigned)map_i64(v, "best_effort");
	int64_t pids = map_i64(v, "pids_max"), mem = map_i64(v, "memory_max");
	char dir[PATH_MAX], root[PATH_MAX];
	int ret;

	if (!t || t->type != MG_STR)
		return 0;
	if (sb_tenant_check(t->str, why, n) < 0)
		return -EINVAL;
	ret = sandbox_tenant_cgroup(t->str, dir, sizeof(dir));
	if (ret < 0) {
		snprintf(why, n, "cgroup: tenant %s: %s", t->str, strerror(-ret));
		return ret;
	}
	/* dir is <root>/mitogen/<tenant>. */
	snprintf(root, sizeof(root), "%.*s", (int)(strlen(dir) - strlen(t->str) - 9), dir);
	if (pids > 0) {
		ret = set_limit(root, dir, t->str, "pids", "pids.max", "pids.max", pids, why, n);
		if (ret < 0 && !(best & MG_SANDBOX_CGROUP))
			return ret;
		if (ret < 0)
			LOG_WARN("sandbox: skipped (best effort): %s", why);
	}
	if (mem > 0) {
		ret = set_limit(root, dir, t->str, "memory", "memory.max",
				"memory.limit_in_bytes", mem, why, n);
		if (ret < 0 && !(best & MG_SANDBOX_CGROUP))
			return ret;
		if (ret < 0)
			LOG_WARN("sandbox: skipped (best effort): %s", why);
	}
	/* Last: the cgroup2 group, where the tenant's eBPF programs hang. */
	ret = write_text(dir, "cgroup.procs", "0");
	if (ret < 0) {
		snprintf(why, n, "cgroup: joining %s: %s", dir, strerror(-ret));
		return ret;
	}
	return 0;
}
