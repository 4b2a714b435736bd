/* SPDX-License-Identifier: MIT */
/*
 * acct.h — where a process publishes its routers' own channel counters
 * (core/acct.c) for `mitogen stats` to read from outside when the kernel
 * does not count: one memfd named ACCT_SHM_NAME per router, shared-mapped,
 * found through /proc/<pid>/fd. Counters only, no names or payloads; the
 * reader needs the rights to open another process's fds (same user, or
 * root). Rows are copied under the writer's lock; a reader may see a row
 * mid-update (stats, not a ledger).
 */
#ifndef CORE_ACCT_H
#define CORE_ACCT_H

#include <stdint.h>
#include <mitogen/stats.h>

#define ACCT_SHM_NAME		"mitogen-stats"
#define ACCT_SHM_MAGIC		0x5453474du	/* "MGST" */
#define ACCT_SHM_VERSION	1
#define ACCT_SHM_ROWS		255

struct acct_shm_row {
	uint32_t used;
	uint32_t child_id;
	struct mg_stats_counts dir[2];
};

struct acct_shm {
	uint32_t magic;
	uint32_t version;
	uint32_t pid;
	uint32_t router_id;
	uint32_t nrows;			/* ACCT_SHM_ROWS */
	uint32_t overflow;		/* channels beyond the rows (not shown) */
	struct acct_shm_row closed;	/* channels closed so far */
	struct acct_shm_row rows[ACCT_SHM_ROWS];
};

#endif
