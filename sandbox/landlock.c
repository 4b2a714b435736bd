// SPDX-License-Identifier: MIT
/*
 * landlock.c — the Landlock part of a sandbox: read-only, read-write and
 * execute path lists turned into a Landlock ruleset. The ruleset is built
 * here (in the thread that applies the sandbox); caps.c makes every thread
 * enforce it (landlock_restrict_self is per thread), right after
 * no_new_privs. Owns nothing else.
 *
 * Rights: ro = read files, list directories; exec = ro + execute;
 * rw = everything but execute. The ruleset handles every file-system right
 * the kernel's ABI knows, so anything not listed is refused. /dev/null is
 * always readable and writable (the agent and mg.run need it). What the
 * kernel's ABI cannot restrict (refer before ABI 2, truncate before 3,
 * device ioctls before 5) is logged as a warning, once per child.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/landlock.h>

#include "core/log.h"
#include "sandbox/sandbox.h"

/* Newer than the Debian 12 kernel headers. */
#define LL_FS_TRUNCATE (1ULL << 14)	/* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15)	/* ABI 5 */

#define LL_FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_FS_FILE (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
		    LANDLOCK_ACCESS_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

static bool active;

bool sandbox_landlock_active(void)
{
	return active;
}

bool sandbox_landlock_denied(const char *path, int mode)
{
	/* Landlock does not hook access(2): if the file modes allow what
	 * failed with EACCES, Landlock (not DAC) refused it. */
	return active && faccessat(AT_FDCWD, path, mode, AT_EACCESS) == 0;
}

static uint64_t abi_rights(int abi)
{
	uint64_t r = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;	/* ABI 1 */

	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= LL_FS_TRUNCATE;
	if (abi >= 5)
		r |= LL_FS_IOCTL_DEV;
	return r;
}

/* Say what this kernel's ABI cannot restrict: never silently. */
static void log_gaps(int abi)
{
	char gaps[160] = "";

	if (abi < 2)
		strcat(gaps, ", rename/link across directories (refer, ABI 2)");
	if (abi < 3)
		strcat(gaps, ", truncate (ABI 3)");
	if (abi < 5)
		strcat(gaps, ", device ioctls (ABI 5)");
	if (*gaps)
		LOG_WARN("sandbox: landlock ABI %d cannot restrict%s", abi, gaps + 1);
	else
		LOG_DEBUG("sandbox: landlock ABI %d", abi);
}

static int add_path(int ruleset, const char *path, uint64_t rights, char *why, size_t n)
{
	struct landlock_path_beneath_attr pb = { .allowed_access = rights };
	struct stat st;
	int ret = 0;

	pb.parent_fd = open(path, O_PATH | O_CLOEXEC);
	if (pb.parent_fd < 0 || fstat(pb.parent_fd, &st) < 0) {
		ret = -errno;
		snprintf(why, n, "landlock: %s: %s", path, strerror(errno));
		goto out;
	}
	/* A file takes only the rights that apply to files. */
	if (!S_ISDIR(st.st_mode))
		pb.allowed_access &= LL_FS_FILE;
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0) {
		ret = -errno;
		snprintf(why, n, "landlock: rule for %s: %s", path, strerror(errno));
	}
out:
	if (pb.parent_fd >= 0)
		close(pb.parent_fd);
	return ret;
}

static int add_list(int ruleset, const struct mg_value *list, uint64_t rights, char *why,
		    size_t n)
{
	if (!list || list->type != MG_LIST)
		return 0;
	for (size_t i = 0; i < list->len; i++) {
		int ret;

		if (list->items[i].type != MG_STR) {
			snprintf(why, n, "landlock: a path is not a string");
			return -EINVAL;
		}
		ret = add_path(ruleset, list->items[i].str, rights, why, n);
		if (ret < 0)
			return ret;
	}
	return 0;
}

bool sb_landlock_wanted(const struct mg_value *v)
{
	return mg_map_get(v, "ro") || mg_map_get(v, "rw") || mg_map_get(v, "exec");
}

int sb_landlock_prepare(const struct mg_value *v, int *ret_fd, char *why, size_t n)
{
	struct landlock_ruleset_attr attr = { 0 };
	uint64_t all;
	int abi, fd, ret;

	*ret_fd = -1;
	if (!sb_landlock_wanted(v))
		return 0;
	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0,
			   LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 0) {
		ret = -errno;
		snprintf(why, n, "landlock: %s", errno == ENOSYS ? "not built into this kernel"
			 : errno == EOPNOTSUPP ? "disabled in this kernel (lsm= boot option)"
			 : strerror(errno));
		return ret;
	}
	log_gaps(abi);
	all = abi_rights(abi);
	attr.handled_access_fs = all;
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr.handled_access_fs), 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, n, "landlock: create ruleset: %s", strerror(errno));
		return ret;
	}
	ret = add_list(fd, mg_map_get(v, "ro"), LL_FS_READ, why, n);
	if (ret == 0)
		ret = add_list(fd, mg_map_get(v, "exec"),
			       LL_FS_READ | LANDLOCK_ACCESS_FS_EXECUTE, why, n);
	if (ret == 0)
		ret = add_list(fd, mg_map_get(v, "rw"), all & ~LANDLOCK_ACCESS_FS_EXECUTE, why, n);
	if (ret == 0)
		ret = add_path(fd, "/dev/null", LANDLOCK_ACCESS_FS_READ_FILE |
			       LANDLOCK_ACCESS_FS_WRITE_FILE, why, n);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	*ret_fd = fd;
	return 0;
}

void sb_landlock_done(int fd, bool enforced)
{
	if (fd >= 0)
		close(fd);
	if (enforced)
		active = true;
}
