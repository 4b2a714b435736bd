// SPDX-License-Identifier: MIT
/*
 * tools/stats.c — `mitogen stats [--pid N] [--watch]`: the kernel's
 * accounting of every process that pins channel maps under
 * /sys/fs/bpf/mitogen/<pid>/ (bpf/loader.c), read from outside through
 * the pinned maps: per channel and per context, messages, bytes and drops
 * each way, then the last denials. Read-only: it never consumes the
 * denial ring buffer (that is the master's); it reads the `recent` map.
 * A process without pinned maps (eBPF off there) is shown from the
 * counters its routers publish in a memfd (core/acct.h), per channel,
 * marked as not kernel-backed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <mitogen/stats.h>
#include "bpf/loader.h"
#include "bpf/shared.h"
#include "core/acct.h"
#include "tools/stats.h"

#define EXIT_USAGE 2
#define EXIT_NONE 3

struct row {
	struct mgb_count_key key;
	struct mgb_counts c[2];
};

static const char stats_usage[] =
	"usage: mitogen stats [--pid N] [--watch]\n"
	"  Kernel-backed accounting of the child channels of every libmitogen\n"
	"  process that pinned its maps under " MGB_PIN_ROOT "/<pid>/ (or of\n"
	"  process N): messages, bytes and dropped records each way (up: from\n"
	"  the child; down: to it) per channel and per context, and the last\n"
	"  denials. --watch redraws every second until interrupted. A process\n"
	"  running without eBPF is shown from its routers' own counters, per\n"
	"  channel, marked as not kernel-backed (this needs the right to open\n"
	"  its fds: the same user, or root).\n";

static uint64_t sum(const __u64 *v, int n)
{
	uint64_t s = 0;

	for (int i = 0; i < n; i++)
		s += v[i];
	return s;
}

static uint64_t sum64(const uint64_t *v, int n)
{
	uint64_t s = 0;

	for (int i = 0; i < n; i++)
		s += v[i];
	return s;
}

/* Tables printed so far in this round: a blank line between two. */
static int tables;

static void table_start(void)
{
	if (tables++)
		putchar('\n');
}

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->key.chan != y->key.chan)
		return x->key.chan < y->key.chan ? -1 : 1;
	/* The channel's totals first, then its contexts by id. */
	if (x->key.ctx != y->key.ctx)
		return x->key.ctx == MGB_CTX_TOTAL ? -1 : y->key.ctx == MGB_CTX_TOTAL ? 1
		       : x->key.ctx < y->key.ctx ? -1 : 1;
	return 0;
}

struct rows {
	struct row *v;
	size_t n, cap;
};

/* The row of {chan, ctx}, made (zeroed) if new; NULL when out of memory. */
static struct row *row_of(struct rows *rs, __u32 chan, __u32 ctx)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->v[i].key.chan == chan && rs->v[i].key.ctx == ctx)
			return &rs->v[i];
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 32;
		struct row *p = realloc(rs->v, cap * sizeof(*p));

		if (!p)
			return NULL;
		rs->v = p;
		rs->cap = cap;
	}
	memset(&rs->v[rs->n], 0, sizeof(rs->v[0]));
	rs->v[rs->n].key.chan = chan;
	rs->v[rs->n].key.ctx = ctx;
	return &rs->v[rs->n++];
}

/* Rows from the counts map: closed channels, contexts behind a channel. */
static int read_counts(int fd, struct rows *rs)
{
	struct mgb_count_key k, next, *prev = NULL;
	struct mgb_counts v;
	struct row *r;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (k.dir >= MGB_NDIR || bpf_map_lookup_elem(fd, &k, &v) < 0)
			continue;
		if (!(r = row_of(rs, k.chan, k.ctx)))
			return -ENOMEM;
		r->c[k.dir] = v;
	}
	return 0;
}

/* Rows from the chans map: each channel's totals and its child's counts. */
static int read_chans(int fd, struct rows *rs)
{
	__u64 k, next, *prev = NULL;
	struct mgb_chan e;
	struct row *t, *c;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (bpfload_chan_read(fd, k, &e) < 0 || e.dir >= MGB_NDIR)
			continue;
		if (!(t = row_of(rs, e.chan, MGB_CTX_TOTAL)) || !(c = row_of(rs, e.chan, e.child_id)))
			return -ENOMEM;
		t->c[e.dir] = e.total;
		c->c[e.dir] = e.child;
	}
	return 0;
}

static void print_denials(const char *dir)
{
	struct mgb_event ev[MGB_RECENT];
	struct timespec now;
	char path[400];
	int fd, n = 0;

	snprintf(path, sizeof(path), "%s/recent", dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	for (__u32 i = 0; i < MGB_RECENT; i++)
		if (bpf_map_lookup_elem(fd, &i, &ev[n]) == 0 && ev[n].time_ns)
			n++;
	close(fd);
	/* Oldest first. */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && ev[j].time_ns < ev[j - 1].time_ns; j--) {
			struct mgb_event t = ev[j];

			ev[j] = ev[j - 1];
			ev[j - 1] = t;
		}
	printf("last denials: %s\n", n ? "" : "none");
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (int i = 0; i < n; i++) {
		double ago = (double)now.tv_sec + now.tv_nsec / 1e9 - ev[i].time_ns / 1e9;

		printf("  %8.1fs ago  chan %u ctx %u %-4s %-13s dst_id %u src_id %u auth_id %u "
		       "handle %u\n", ago, ev[i].chan, ev[i].child_id,
		       ev[i].dir == MGB_UP ? "up" : "down",
		       mg_stats_drop_name((enum mg_stats_drop)ev[i].reason), ev[i].dst_id,
		       ev[i].src_id, ev[i].auth_id, ev[i].handle);
	}
}

/* One process's table. Returns 0, or -errno when its maps are unreadable. */
static int print_pid(const char *dir, const char *pid)
{
	char path[400];
	struct rows rs = { 0 };
	struct row *rows;
	size_t n;
	int fd, fd2, ret;

	snprintf(path, sizeof(path), "%s/counts", dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/chans", dir);
	fd2 = bpf_obj_get(path);
	if (fd2 < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ret = read_chans(fd2, &rs);
	if (ret == 0)
		ret = read_counts(fd, &rs);
	close(fd2);
	close(fd);
	if (ret < 0) {
		free(rs.v);
		return ret;
	}
	qsort(rs.v, rs.n, sizeof(*rs.v), cmp_row);
	rows = rs.v;
	n = rs.n;
	table_start();
	printf("pid %s  (kernel-backed: %s)\n", pid, dir);
	printf("%-6s %-10s %10s %12s %8s %10s %12s %8s\n", "CHAN", "CONTEXT", "UP MSGS",
	       "UP BYTES", "UP DROPS", "DOWN MSGS", "DOWN BYTES", "DN DROPS");
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		char ctx[24];

		if (r->key.chan == MGB_CHAN_CLOSED)
			snprintf(ctx, sizeof(ctx), "closed");
		else if (r->key.ctx == MGB_CTX_TOTAL)
			snprintf(ctx, sizeof(ctx), "(channel)");
		else
			snprintf(ctx, sizeof(ctx), "  %u", r->key.ctx);
		printf("%-6u %-10s %10llu %12llu %8llu %10llu %12llu %8llu\n", r->key.chan, ctx,
		       (unsigned long long)sum(r->c[0].msgs, MGB_NCLASS),
		       (unsigned long long)sum(r->c[0].bytes, MGB_NCLASS),
		       (unsigned long long)sum(r->c[0].drops + 1, MGB_NDROP - 1),
		       (unsigned long long)sum(r->c[1].msgs, MGB_NCLASS),
		       (unsigned long long)sum(r->c[1].bytes, MGB_NCLASS),
		       (unsigned long long)sum(r->c[1].drops + 1, MGB_NDROP - 1));
	}
	free(rows);
	print_denials(dir);
	return 0;
}

static void print_user_row(const char *chan, const char *ctx,
			   const struct mg_stats_counts *c)
{
	printf("%-6s %-10s %10llu %12llu %8llu %10llu %12llu %8llu\n", chan, ctx,
	       (unsigned long long)sum64(c[0].msgs, MG_STATS_NCLASS),
	       (unsigned long long)sum64(c[0].bytes, MG_STATS_NCLASS),
	       (unsigned long long)sum64(c[0].drops + 1, MG_STATS_NDROP - 1),
	       (unsigned long long)sum64(c[1].msgs, MG_STATS_NCLASS),
	       (unsigned long long)sum64(c[1].bytes, MG_STATS_NCLASS),
	       (unsigned long long)sum64(c[1].drops + 1, MG_STATS_NDROP - 1));
}

/* Tables a process's routers publish (core/acct.h). Returns how many. */
static int print_user(const char *pid)
{
	char dir[64], path[320], link[256], id[16];
	struct acct_shm *m = malloc(sizeof(*m));
	struct dirent *e;
	int shown = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%s/fd", pid);
	d = m ? opendir(dir) : NULL;
	while (d && (e = readdir(d))) {
		ssize_t n;
		int fd;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strncmp(link, "/memfd:" ACCT_SHM_NAME " ", sizeof("/memfd:" ACCT_SHM_NAME)))
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = pread(fd, m, sizeof(*m), 0);
		close(fd);
		if (n != (ssize_t)sizeof(*m) || m->magic != ACCT_SHM_MAGIC ||
		    m->version != ACCT_SHM_VERSION || m->nrows != ACCT_SHM_ROWS)
			continue;
		shown++;
		table_start();
		printf("pid %s router %u  (user-space counters, not kernel-backed: eBPF is "
		       "off there)\n", pid, m->router_id);
		printf("%-6s %-10s %10s %12s %8s %10s %12s %8s\n", "CHAN", "CONTEXT",
		       "UP MSGS", "UP BYTES", "UP DROPS", "DOWN MSGS", "DOWN BYTES", "DN DROPS");
		print_user_row("0", "closed", m->closed.dir);
		for (int i = 0; i < ACCT_SHM_ROWS; i++) {
			if (!m->rows[i].used)
				continue;
			snprintf(id, sizeof(id), "%u", m->rows[i].child_id);
			print_user_row(id, "(channel)", m->rows[i].dir);
		}
		if (m->overflow)
			printf("(%u more channels not shown)\n", m->overflow);
	}
	if (d)
		closedir(d);
	free(m);
	return shown;
}

static bool pinned(const char *pid)
{
	char dir[300];

	snprintf(dir, sizeof(dir), MGB_PIN_ROOT "/%s/counts", pid);
	return access(dir, F_OK) == 0;
}

static int print_all(const char *only_pid)
{
	tables = 0;
	char dir[300];
	DIR *d;
	struct dirent *e;
	int shown = 0, ret;

	if (only_pid) {
		snprintf(dir, sizeof(dir), MGB_PIN_ROOT "/%s", only_pid);
		ret = print_pid(dir, only_pid);
		if (ret < 0 && print_user(only_pid) == 0) {
			fprintf(stderr, "mitogen: stats: no counters for pid %s (%s: %s, and no "
				"readable " ACCT_SHM_NAME " memfd): not a libmitogen process "
				"with child channels, or not ours to read\n", only_pid, dir,
				strerror(-ret));
			return EXIT_NONE;
		}
		return 0;
	}
	d = opendir(MGB_PIN_ROOT);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(dir, sizeof(dir), MGB_PIN_ROOT "/%s", e->d_name);
		if (print_pid(dir, e->d_name) == 0)
			shown++;
	}
	if (d)
		closedir(d);
	/* Processes without eBPF: their published counters. */
	d = opendir("/proc");
	while (d && (e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || pinned(e->d_name))
			continue;
		shown += print_user(e->d_name);
	}
	if (d)
		closedir(d);
	if (!shown) {
		fprintf(stderr, "mitogen: stats: no libmitogen process with child channels "
			"found (none pinned under %s, no readable " ACCT_SHM_NAME " memfd)\n",
			MGB_PIN_ROOT);
		return EXIT_NONE;
	}
	return 0;
}

static volatile sig_atomic_t stop;

static void on_sigint(int sig)
{
	stop = 1;
}

int tool_stats(int argc, char **argv)
{
	const char *pid = NULL;
	bool watch = false;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--watch") || !strcmp(argv[i], "-w")) {
			watch = true;
		} else if (!strcmp(argv[i], "--pid") || !strcmp(argv[i], "-p")) {
			char *end;

			if (++i >= argc || strtol(argv[i], &end, 10) <= 0 || *end) {
				fprintf(stderr, "mitogen: stats: --pid needs a process id\n%s",
					stats_usage);
				return EXIT_USAGE;
			}
			pid = argv[i];
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(stats_usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "mitogen: stats: unknown option '%s'\n%s", argv[i],
				stats_usage);
			return EXIT_USAGE;
		}
	}
	if (!watch)
		return print_all(pid);
	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	while (!stop) {
		/* Home and clear, then the table. */
		printf("\033[H\033[2J");
		rc = print_all(pid);
		fflush(stdout);
		if (rc && pid)
			return rc;
		for (int i = 0; i < 10 && !stop; i++)
			usleep(100000);
	}
	return 0;
}
