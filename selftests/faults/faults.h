/* SPDX-License-Identifier: MIT */
/*
 * selftests/faults/faults.h — issue 19 §5, the fault-injection suite
 * (docs/reliability.md, "Faults, injected and counted"). Header-only: each
 * test program (test_faults_start.c, test_faults_run.c) includes it once
 * and runs the scenarios of its stages.
 *
 * Owns: the scenario table (a hop kind x a fault x a stage), the hand-offs
 * that put a fault at its stage, and what every scenario asserts:
 *
 *   - every waiter (the factory for a start, the call's receiver, the
 *     stream's channel, mg_context_shutdown) gets its error, or its
 *     result, within a generous bound (never a lower speed);
 *   - the master leaked nothing: its fds (/proc/self/fd), threads
 *     (/proc/self/task) and children are back to what they were before,
 *     and the hop's agent and the command it ran are gone (memory:
 *     ASan/LSan in the asan tree);
 *   - the master goes on serving: a call on a bystander context (and, for
 *     a via= chain whose lower hop was hit, on the hop above) succeeds.
 *
 * Faults: KILL (SIGKILL the hop's agent, or the program standing in for
 * it before it exists), STOP (SIGSTOP it: found by the heartbeat, or by
 * connect_timeout before BOOT), CUT (the channel closed under a living
 * process: the parent's end shut down), TKILL and TSTOP (SIGKILL, SIGSTOP
 * the transport program: ssh, sudo). Every stage is reached by a hand-off
 * (a line the hop writes into a FIFO of this test), never by a sleep.
 *
 * The heartbeat is short here (HB_INTERVAL, HB_LIMIT) so that a stopped
 * hop is found in seconds; the bounds below are far above it.
 */
#ifndef MITOGEN_SELFTESTS_FAULTS_H
#define MITOGEN_SELFTESTS_FAULTS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "selftests/transports/fixture.h"
#include "core/router.h"
#include "core/stream.h"
#include "transports/transport.h"

#define HB_INTERVAL 0.25
#define HB_LIMIT 5.0	/* not 3: a loaded machine must not starve the bystander past it */
/* A stopped start-up is bounded by this (no heartbeat before BOOT). */
#define START_TIMEOUT 6.0
/* Upper bounds only a broken guarantee reaches (a loaded machine, ASan). */
#define WAIT_S 120.0
#define GONE_S 60.0

enum hop { HOP_LOCAL, HOP_FORK, HOP_VIA_LOW, HOP_VIA_MID, HOP_SSH, HOP_SUDO };
enum fault { F_KILL, F_STOP, F_CUT, F_TKILL, F_TSTOP };
enum stage { ST_START, ST_CALL, ST_STREAM, ST_SHUTDOWN };

static const char *const hop_names[] = { "local", "fork", "local/local (lower hop)",
					 "local/local (upper hop)", "ssh", "sudo" };
static const char *const fault_names[] = { "kill", "stop", "cut", "kill transport",
					   "stop transport" };
static const char *const stage_names[] = { "start-up", "mid-call", "mid-stream", "shutdown" };

struct scenario {
	enum stage stage;
	enum hop hop;
	enum fault fault;
};

/* --- this test's own things ---------------------------------------------- */

static char workdir[64];
static struct mg_context *bystander;
static unsigned seq;
static int n_run, n_passed, n_skipped;

/* A FIFO in workdir (mode 0666: agents of test users write it), opened
 * here read-write and non-blocking, so that a writer never waits. */
static int fifo_new(char *path, size_t n)
{
	int fd;

	snprintf(path, n, "%s/f%u", workdir, ++seq);
	assert_int_equal(mkfifo(path, 0666), 0);
	assert_int_equal(chmod(path, 0666), 0);
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* The hand-off: one line from the FIFO (its newline dropped), within
 * max_s. */
static bool fifo_line(int fd, char *buf, size_t n, double max_s)
{
	double until = mg_test_now() + max_s;
	size_t len = 0;

	while (len + 1 < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = until - mg_test_now();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			break;
		r = read(fd, buf + len, 1);
		if (r == 1 && buf[len] == '\n') {
			buf[len] = '\0';
			return true;
		}
		if (r == 1)
			len++;
	}
	buf[len] = '\0';
	return false;
}

static void write_script(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", text);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
}

/* Read /proc/PID/FILE (NULs kept); bytes, or -1. */
static ssize_t proc_file(pid_t pid, const char *file, char *buf, size_t size)
{
	char path[96];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* The process whose argv[0] is "mitogen:NAME" (an agent), or 0. */
static pid_t find_agent(const char *name)
{
	char want[96], buf[256];
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	snprintf(want, sizeof(want), "mitogen:%s", name);
	while (d && !found && (e = readdir(d)))
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
		    proc_file(atoi(e->d_name), "cmdline", buf, sizeof(buf)) > 0 &&
		    !strcmp(buf, want) && !mg_test_pid_gone(atoi(e->d_name)))
			found = atoi(e->d_name);
	if (d)
		closedir(d);
	return found;
}

/* A child of parent whose comm is comm, or 0. */
static pid_t find_child(pid_t parent, const char *comm)
{
	char buf[512], *p;
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	while (d && !found && (e = readdir(d))) {
		int ppid;

		if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
		    proc_file(atoi(e->d_name), "stat", buf, sizeof(buf)) <= 0 ||
		    !(p = strrchr(buf, ')')) || sscanf(p + 4, "%d", &ppid) != 1 || ppid != parent)
			continue;
		if (proc_file(atoi(e->d_name), "comm", buf, sizeof(buf)) > 0 &&
		    !strncmp(buf, comm, strlen(comm)) && buf[strlen(comm)] == '\n')
			found = atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

/* A process of uid whose command line holds needle, or 0. */
static pid_t find_by_uid_cmdline(uid_t uid, const char *needle)
{
	char buf[8192];
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	while (d && !found && (e = readdir(d))) {
		struct stat st;
		char path[300];
		ssize_t n;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s", e->d_name);
		if (stat(path, &st) < 0 || st.st_uid != uid ||
		    (n = proc_file(atoi(e->d_name), "cmdline", buf, sizeof(buf))) <= 0)
			continue;
		for (ssize_t i = 0; i < n; i++)
			if (!buf[i])
				buf[i] = ' ';
		if (strstr(buf, needle) && !mg_test_pid_gone(atoi(e->d_name)))
			found = atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

static bool gone_within(pid_t pid, double max_s)
{
	double until = mg_test_now() + max_s;

	while (pid > 0 && !mg_test_pid_gone(pid)) {
		if (mg_test_now() > until)
			return false;
		poll(NULL, 0, 20);
	}
	return true;
}

/* --- what the master holds ----------------------------------------------- */

struct counts {
	int fds, tasks, children;
};

static int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static struct counts counts_now(void)
{
	struct counts c = { mg_test_count_fds(), count_tasks(), mg_test_count_children(0) };

	return c;
}

/* Back to before within GONE_S: a child is reaped, and its stream freed,
 * on the broker thread, a moment after the waiter heard of it. */
static void assert_counts(const struct counts *before, const char *what)
{
	double until = mg_test_now() + GONE_S;
	struct counts now;

	do {
		now = counts_now();
		if (now.fds == before->fds && now.tasks == before->tasks &&
		    now.children == before->children)
			return;
		poll(NULL, 0, 20);
	} while (mg_test_now() < until);
	fail_msg("%s: leaked: fds %d -> %d, threads %d -> %d, children %d -> %d", what,
		 before->fds, now.fds, before->tasks, now.tasks, before->children, now.children);
}

static void bystander_serves(struct mg_context *c, const char *what)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *v = NULL;

	if (mg_call(c, "mg.getpid", NULL, &v, &err) < 0)
		fail_msg("%s: a call on a bystander failed: %s", what, err.message);
	assert_int_equal(v->type, MG_INT);
	mg_value_free(v);
}

/* --- cutting a channel ----------------------------------------------------- */

/* Shut down r's end of the stream to context id: the channel is cut under
 * a living process (shutdown, not close: the broker still owns the fd). */
static int cut_stream(struct mg_router *r, uint32_t id)
{
	struct stream *s;
	int rc = -ENOENT;

	pthread_mutex_lock(&r->lock);
	s = idmap_get(&r->routes, id);
	if (s && s->src.fd >= 0)
		rc = shutdown(s->src.fd, SHUT_RDWR) < 0 ? -errno : 0;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Run in the upper hop of a via= chain: cut its stream to the lower. */
static int faults_cut(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	int64_t id;
	int rc;

	if (mg_value_unpack(args, NULL, "l", &id) < 0)
		return mg_call_fail(call, EINVAL, "faults.cut(id)");
	rc = cut_stream(mg_call_router(call), (uint32_t)id);
	if (rc < 0)
		return mg_call_fail(call, -rc, "no stream to %lld", (long long)id);
	*ret = mg_int(0);
	return 0;
}
MG_EXPORT_AS("faults.cut", faults_cut);

/* --- one scenario's contexts ------------------------------------------------ */

struct victim {
	const struct scenario *sc;
	char name[32], upname[32];
	struct mg_context *ctx;	/* the hop the stage works through */
	struct mg_context *up;	/* via=: the upper hop */
	pid_t agent;		/* the hit hop's agent */
	pid_t transport;	/* ssh, sudo */
	pid_t cmd;		/* the command a stage ran */
	pid_t hit;		/* what the fault went to */
};

static struct mg_context *must_start(struct mg_context *c, const struct mg_error *err,
				     const char *what)
{
	if (!c)
		fail_msg("%s: start: %s: %s", what, mg_error_kind_name(err->kind), err->message);
	return c;
}

static void ssh_opts_init(struct mg_ssh_opts *so, const struct mg_local_opts *lo)
{
	static const char *args[3];
	static char known[160];

	snprintf(known, sizeof(known), "%s", fx.known);
	args[0] = "-o";
	args[1] = known;
	args[2] = NULL;
	so->local = lo;
	so->hostname = "127.0.0.1";
	so->username = "mgtest";
	so->port = fx.port;
	so->identity_file = fx.key;
	so->ssh_args = args;
}

/* Start the scenario's hop (after the start-up stage, which has its own). */
static void victim_start(struct victim *v)
{
	struct mg_error err = MG_ERROR_INIT;

	snprintf(v->name, sizeof(v->name), "fv%d-%u", (int)getpid(), ++seq);
	snprintf(v->upname, sizeof(v->upname), "fu%d-%u", (int)getpid(), seq);
	switch (v->sc->hop) {
	case HOP_LOCAL: {
		MG_OPTS(mg_local_opts, lo, .remote_name = v->name);
		v->ctx = must_start(mg_local(router, &lo, &err), &err, v->name);
		break;
	}
	case HOP_FORK: {
		MG_OPTS(mg_local_opts, lo, .remote_name = v->name);
		MG_OPTS(mg_fork_opts, fo, .local = &lo);
		v->ctx = must_start(mg_fork(router, &fo, &err), &err, v->name);
		break;
	}
	case HOP_VIA_LOW:
	case HOP_VIA_MID: {
		MG_OPTS(mg_local_opts, uo, .remote_name = v->upname);
		v->up = must_start(mg_local(router, &uo, &err), &err, v->upname);
		MG_OPTS(mg_local_opts, lo, .remote_name = v->name, .via = v->up);
		v->ctx = must_start(mg_local(router, &lo, &err), &err, v->name);
		break;
	}
	case HOP_SSH: {
		MG_OPTS(mg_local_opts, lo, .remote_name = v->name);
		MG_OPTS(mg_ssh_opts, so);
		ssh_opts_init(&so, &lo);
		v->ctx = must_start(mg_ssh(router, &so, &err), &err, v->name);
		v->transport = mg_context_pid(v->ctx);
		break;
	}
	case HOP_SUDO: {
		MG_OPTS(mg_local_opts, lo, .remote_name = v->name);
		MG_OPTS(mg_sudo_opts, so, .local = &lo, .username = "mgsudo");
		v->ctx = must_start(mg_sudo(router, &so, &err), &err, v->name);
		v->transport = mg_context_pid(v->ctx);
		break;
	}
	}
	/* Every hop runs on this host: its agent says its pid. */
	v->agent = (pid_t)call_int(v->sc->hop == HOP_VIA_MID ? v->up : v->ctx, "mg.getpid");
}

/* The fault, to a hop that has started (stages after start-up). */
static void victim_fault(struct victim *v)
{
	const struct scenario *sc = v->sc;
	int rc = 0;

	switch (sc->fault) {
	case F_KILL:
	case F_STOP:
		v->hit = v->agent;
		rc = kill(v->agent, sc->fault == F_KILL ? SIGKILL : SIGSTOP);
		break;
	case F_TKILL:
	case F_TSTOP:
		v->hit = v->transport;
		assert_true(v->transport > 0);
		rc = kill(v->transport, sc->fault == F_TKILL ? SIGKILL : SIGSTOP);
		break;
	case F_CUT:
		if (sc->hop == HOP_VIA_LOW) {
			struct mg_error err = MG_ERROR_INIT;

			rc = mg_call(v->up, "faults.cut",
				     MG_LIST(mg_int(mg_context_remote_id(v->ctx))), NULL, &err);
			if (rc < 0)
				fail_msg("faults.cut: %s", err.message);
		} else {
			rc = cut_stream(router, mg_context_remote_id(sc->hop == HOP_VIA_MID ?
								     v->up : v->ctx));
		}
		break;
	}
	assert_int_equal(rc, 0);
}

/*
 * The end of every scenario: the contexts shut down and dropped (what a
 * user does after an error; a stopped process must go all the same).
 */
static void victim_shut(struct victim *v, const char *what)
{
	if (v->ctx) {
		mg_context_shutdown(v->ctx, true);
		v->ctx = mg_context_unref(v->ctx);
	}
	if (v->up) {
		if (v->sc->hop == HOP_VIA_LOW)
			bystander_serves(v->up, what);	/* the hop above goes on */
		mg_context_shutdown(v->up, true);
		v->up = mg_context_unref(v->up);
	}
}

/* What a failed scenario left (mg_test_defer; v itself is freed after). */
static void victim_free(void *p)
{
	struct victim *v = p;

	if (v->hit > 0 && v->sc->fault != F_KILL && v->sc->fault != F_TKILL)
		kill(v->hit, SIGCONT);
	if (v->ctx) {
		mg_context_shutdown(v->ctx, true);
		v->ctx = mg_context_unref(v->ctx);
	}
	if (v->up) {
		mg_context_shutdown(v->up, true);
		v->up = mg_context_unref(v->up);
	}
}

static void close_fd(void *p)
{
	close((int)(intptr_t)p);
}

static void free_rx(void *rx)
{
	mg_receiver_free(rx);
}

static void free_channel(void *ch)
{
	mg_channel_free(ch);
}

/* Waiter's ChannelError: rc and err of a wait that must have failed. */
static void assert_channel_error(int rc, const struct mg_error *err, const char *what,
				 const char *waiter, double waited)
{
	if (rc == -ETIMEDOUT)
		fail_msg("%s: %s still waits after %.0f s", what, waiter, WAIT_S);
	if (rc >= 0)
		fail_msg("%s: %s got a result, not an error", what, waiter);
	fprintf(stderr, "#   %s: %s after %.2f s: %s: %s\n", what, waiter, waited,
		mg_error_kind_name(err->kind), err->message);
	assert_int_equal(err->kind, MG_ERR_CHANNEL);
}

/* --- the stages after start-up -------------------------------------------- */

/* mg.run of `sh -c SCRIPT`; SCRIPT gets the FIFO as $F. */
static struct mg_receiver *run_async(struct mg_context *c, const char *fifo, const char *script)
{
	char cmd[512];
	struct mg_error err = MG_ERROR_INIT;
	struct mg_receiver *rx;

	snprintf(cmd, sizeof(cmd), "F=%s; %s", fifo, script);
	rx = mg_call_async(c, "mg.run", MG_LIST(MG_LIST(mg_str("sh"), mg_str("-c"), mg_str(cmd))),
			   &err);
	if (!rx)
		fail_msg("mg.run: %s", err.message);
	return mg_test_defer(free_rx, rx);
}

static void stage_call(struct victim *v, const char *what)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *res = NULL;
	struct mg_receiver *rx;
	char fifo[128], line[64];
	double t0;
	int fd, rc;

	fd = fifo_new(fifo, sizeof(fifo));
	mg_test_defer(close_fd, (void *)(intptr_t)fd);
	rx = run_async(v->ctx, fifo, "echo $$ >$F; exec sleep 3600");
	/* The hand-off: the command runs. */
	if (!fifo_line(fd, line, sizeof(line), WAIT_S))
		fail_msg("%s: the command did not start", what);
	v->cmd = atoi(line);
	victim_fault(v);
	t0 = mg_test_now();
	rc = mg_receiver_get_data(rx, WAIT_S, &res, &err);
	mg_value_free(res);
	assert_channel_error(rc, &err, what, "the call", mg_test_now() - t0);
}

/* 200 MiB through mg.run_stream; the fault comes once 1 MiB has arrived. */
#define STREAM_TOTAL (200 << 20)
#define STREAM_BEFORE (1 << 20)

static void stage_stream(struct victim *v, const char *what)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_value *peer = NULL, *res = NULL, *m = NULL;
	struct mg_channel *ch = mg_test_defer(free_channel, mg_channel_new(router, NULL));
	struct mg_receiver *rx;
	char cmd[96];
	int64_t got = 0;
	double t0;
	int rc;

	assert_non_null(ch);
	snprintf(cmd, sizeof(cmd), "exec head -c %d /dev/zero", STREAM_TOTAL);
	rx = mg_call_async(v->ctx, "mg.run_stream",
			   MG_LIST(mg_channel_to_value(ch),
				   MG_LIST(mg_str("sh"), mg_str("-c"), mg_str(cmd))), &err);
	assert_non_null(rx);
	mg_test_defer(free_rx, rx);
	assert_int_equal(mg_channel_get_data(ch, WAIT_S, &peer, &err), 0);
	assert_int_equal(mg_channel_set_peer(ch, peer), 0);
	mg_value_free(peer);
	/* The hand-off: data flows (and is acknowledged as it comes). */
	while (got < STREAM_BEFORE) {
		const struct mg_value *d;
		struct mg_value *ack;

		if (mg_channel_get_data(ch, WAIT_S, &m, &err) < 0)
			fail_msg("%s: stream: %s", what, err.message);
		d = mg_map_get(m, "data");
		assert_non_null(d);
		got += d->len;
		mg_value_free(m);
		m = NULL;
		ack = mg_map();
		mg_map_set(ack, "ack", mg_int(got));
		assert_int_equal(mg_channel_send(ch, ack), 0);
	}
	v->cmd = find_child(v->agent, "head");
	if (v->sc->hop == HOP_VIA_MID)
		v->cmd = 0;	/* the agent below runs it */
	victim_fault(v);
	t0 = mg_test_now();
	/* The channel: what was under way may still come, then the error. */
	do {
		mg_value_free(m);
		m = NULL;
		rc = mg_channel_get_data(ch, WAIT_S, &m, &err);
	} while (rc == 0 && mg_map_get(m, "data"));
	mg_value_free(m);
	if (rc == 0)
		fail_msg("%s: the stream's channel got something else than data", what);
	assert_channel_error(rc, &err, what, "the stream's channel", mg_test_now() - t0);
	err = (struct mg_error)MG_ERROR_INIT;
	rc = mg_receiver_get_data(rx, WAIT_S, &res, &err);
	mg_value_free(res);
	assert_channel_error(rc, &err, what, "the call", mg_test_now() - t0);
}

struct shut {
	struct mg_context *ctx;
	int rc;
	bool done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void *shut_thread(void *p)
{
	struct shut *s = p;
	int rc = mg_context_shutdown(s->ctx, true);

	pthread_mutex_lock(&s->lock);
	s->rc = rc;
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/*
 * The hop is ending a command's tree when the fault comes: the command
 * says when SIGTERM reached it (and outlives it, for the grace), and
 * mg_context_shutdown must still return.
 */
static void stage_shutdown(struct victim *v, const char *what)
{
	struct shut s = { .ctx = v->ctx, .lock = PTHREAD_MUTEX_INITIALIZER,
			  .cond = PTHREAD_COND_INITIALIZER };
	char fifo[128], line[64];
	struct timespec until;
	pthread_t th;
	double t0;
	int fd;

	fd = fifo_new(fifo, sizeof(fifo));
	mg_test_defer(close_fd, (void *)(intptr_t)fd);
	run_async(v->ctx, fifo,
		  "trap 'echo term >$F' TERM; echo $$ >$F; while :; do sleep 1 & wait; done");
	if (!fifo_line(fd, line, sizeof(line), WAIT_S))
		fail_msg("%s: the command did not start", what);
	v->cmd = atoi(line);
	assert_int_equal(pthread_create(&th, NULL, shut_thread, &s), 0);
	/* The hand-off: the hop's SIGTERM reached the command. */
	if (!fifo_line(fd, line, sizeof(line), WAIT_S) || strcmp(line, "term")) {
		pthread_join(th, NULL);
		fail_msg("%s: the command was not told to end ('%s')", what, line);
	}
	victim_fault(v);
	t0 = mg_test_now();
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)WAIT_S;
	pthread_mutex_lock(&s.lock);
	while (!s.done && pthread_cond_timedwait(&s.cond, &s.lock, &until) == 0)
		;
	pthread_mutex_unlock(&s.lock);
	if (!s.done) {
		kill(v->hit, SIGCONT);
		pthread_join(th, NULL);
		fail_msg("%s: mg_context_shutdown still waits after %.0f s", what, WAIT_S);
	}
	pthread_join(th, NULL);
	fprintf(stderr, "#   %s: mg_context_shutdown returned %d after %.2f s\n", what, s.rc,
		mg_test_now() - t0);
}

/* --- the start-up stage ----------------------------------------------------- */

struct starter {
	const struct scenario *sc;
	struct victim *v;
	char fifo[128];
	char script[160];
	struct mg_context *ctx;
	struct mg_error err;
	double t_end, connect_timeout;
	bool done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

/* mg_fork's on_fork: the child, before it greets, says it is there and
 * waits (having closed its channel first, for CUT). */
static void fork_stall(void *p)
{
	struct starter *s = p;
	char line[24];
	int fd, n;

	if (s->sc->fault == F_CUT)
		close(3);	/* the channel (master/local.c CHILD_FD) */
	fd = open(s->fifo, O_WRONLY | O_CLOEXEC);
	n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	if (fd >= 0 && write(fd, line, (size_t)n) == n)
		close(fd);
	for (;;)
		pause();
}

static void *start_thread(void *p)
{
	struct starter *s = p;
	struct victim *v = s->v;
	struct mg_context *c = NULL;
	char path[200];

	MG_OPTS(mg_local_opts, lo, .remote_name = v->name, .connect_timeout = s->connect_timeout);
	switch (s->sc->hop) {
	case HOP_LOCAL:
		lo.image = s->script;
		c = mg_local(router, &lo, &s->err);
		break;
	case HOP_FORK: {
		MG_OPTS(mg_fork_opts, fo, .local = &lo, .on_fork = fork_stall, .on_fork_data = s);
		c = mg_fork(router, &fo, &s->err);
		break;
	}
	case HOP_VIA_LOW:
	case HOP_VIA_MID:
		lo.image = s->script;
		lo.via = v->up;
		c = mg_local(router, &lo, &s->err);
		break;
	case HOP_SSH: {
		MG_OPTS(mg_ssh_opts, so);
		ssh_opts_init(&so, &lo);
		so.ssh_path = s->script;
		c = mg_ssh(router, &so, &s->err);
		break;
	}
	case HOP_SUDO: {
		snprintf(path, sizeof(path), "%s", s->script);
		MG_OPTS(mg_sudo_opts, so, .local = &lo, .sudo_path = path, .password = "s3cret");
		c = mg_sudo(router, &so, &s->err);
		break;
	}
	}
	pthread_mutex_lock(&s->lock);
	s->ctx = c;
	s->t_end = mg_test_now();
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/*
 * The relay in front of the real ssh (this program, run as
 * `PROG --faults-relay FIFO SSH ARGS...` by the ssh transport in place of
 * ssh): the first bytes on its stdin (the image: the master writes
 * nothing else before the agent greets) go through to ssh, then it says
 * its pid into FIFO and holds the rest back until ssh exits: the transfer
 * stays under way for the fault. Its stdin is the master's non-blocking
 * socket: poll, not a blocking read.
 */
static int faults_relay(char **argv)
{
	char buf[4096], line[24];
	int p[2], status = 0, fd, n;
	struct pollfd pf = { .fd = 0, .events = POLLIN };
	ssize_t r;
	pid_t pid;

	if (pipe(p) < 0)
		return 126;
	pid = fork();
	if (pid < 0)
		return 126;
	if (pid == 0) {
		dup2(p[0], 0);
		close(p[0]);
		close(p[1]);
		execv(argv[1], argv + 1);
		_exit(127);
	}
	close(p[0]);
	for (;;) {
		if (poll(&pf, 1, -1) < 0 && errno != EINTR)
			break;
		r = read(0, buf, sizeof(buf));
		if (r > 0) {
			if (write(p[1], buf, (size_t)r) != r)
				break;
			fd = open(argv[0], O_WRONLY | O_CLOEXEC);
			n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
			if (fd >= 0 && write(fd, line, (size_t)n) == n)
				close(fd);
			break;
		}
		if (r == 0 || (errno != EAGAIN && errno != EINTR))
			break;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* First thing in main(), before mg_main: the relay, when this is one. */
static void faults_main_hook(int argc, char **argv)
{
	if (argc > 3 && !strcmp(argv[1], "--faults-relay"))
		exit(faults_relay(argv + 2));
}

/* The name (sha256) of the image the first stage caches: this program
 * without its debug sections (image_strip_debug), as the master sends it. */
static void self_sha(char *out, size_t n)
{
	FILE *f = fopen("/proc/self/exe", "rb");
	struct stat st;
	uint8_t *d;

	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	d = malloc((size_t)st.st_size);
	assert_non_null(d);
	assert_int_equal(fread(d, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	sha256_hex(d, image_strip_debug(d, (size_t)st.st_size), out);
	free(d);
	(void)n;
}

/* Forget mgtest's cached copy of our image: the next ssh start sends it. */
static void uncache_image(void)
{
	char sha[65], cmd[512];
	uid_t uid = user_uid("mgtest");

	self_sha(sha, sizeof(sha));
	snprintf(cmd, sizeof(cmd),
		 "rm -f ~mgtest/.cache/mitogen/%s /run/user/%u/mitogen/%s /dev/shm/mitogen-%u/%s "
		 "/var/tmp/mitogen-%u/%s /tmp/mitogen-%u/%s",
		 sha, uid, sha, uid, sha, uid, sha, uid, sha);
	assert_int_equal(system(cmd), 0);
}

/*
 * Start the hop, put the fault at its stage, see the start fail. A stopped
 * start ends only by connect_timeout, short for those; false when the
 * start timed out before it reached its stage at all (a loaded machine):
 * the caller tries again with a longer one.
 */
static bool stage_start(struct victim *v, const char *what, double connect_timeout)
{
	const struct scenario *sc = v->sc;
	struct starter *s = calloc(1, sizeof(*s));
	char line[64], text[512];
	struct timespec until;
	pthread_t th;
	double t0;
	int fd;

	assert_non_null(s);
	mg_test_defer(free, s);
	s->sc = sc;
	s->v = v;
	s->connect_timeout = sc->fault == F_STOP || sc->fault == F_TSTOP ? connect_timeout
									 : WAIT_S / 2;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	snprintf(v->name, sizeof(v->name), "fv%d-%u", (int)getpid(), ++seq);
	fd = fifo_new(s->fifo, sizeof(s->fifo));
	mg_test_defer(close_fd, (void *)(intptr_t)fd);
	snprintf(s->script, sizeof(s->script), "%s/prog%u", workdir, ++seq);
	switch (sc->hop) {
	case HOP_LOCAL:
	case HOP_VIA_LOW:
	case HOP_VIA_MID:
		/* The program in place of the agent: it never greets. */
		snprintf(text, sizeof(text), "%secho $$ >%s; exec sleep 3600",
			 sc->hop != HOP_VIA_MID && sc->fault == F_CUT ? "exec 3>&-; " : "",
			 s->fifo);
		write_script(s->script, text);
		break;
	case HOP_SSH:
		/* The real ssh behind our relay (faults_relay): once the
		 * first bytes of the image went through, the transfer is under
		 * way and held there. */
		snprintf(text, sizeof(text), "exec /proc/%d/exe --faults-relay %s /usr/bin/ssh \"$@\"",
			 (int)getpid(), s->fifo);
		write_script(s->script, text);
		uncache_image();
		break;
	case HOP_SUDO:
		/* sudo holds its prompt open: a stand-in that asks on the
		 * terminal as sudo does, then waits (the real one answers the
		 * typed password at once: there would be no moment to hit). */
		snprintf(text, sizeof(text),
			 "printf '[sudo] password for mgsudopw: ' >/dev/tty; echo $$ >%s; "
			 "exec sleep 3600", s->fifo);
		write_script(s->script, text);
		break;
	case HOP_FORK:
		break;
	}
	if (sc->hop == HOP_VIA_LOW || sc->hop == HOP_VIA_MID) {
		struct mg_error err = MG_ERROR_INIT;

		snprintf(v->upname, sizeof(v->upname), "fu%d-%u", (int)getpid(), seq);
		MG_OPTS(mg_local_opts, uo, .remote_name = v->upname);
		v->up = must_start(mg_local(router, &uo, &err), &err, v->upname);
	}
	assert_int_equal(pthread_create(&th, NULL, start_thread, s), 0);
	/* The hand-off: the stage is reached. */
	if (!fifo_line(fd, line, sizeof(line), WAIT_S)) {
		pthread_join(th, NULL);
		if (s->ctx)
			v->ctx = s->ctx;
		if (!s->ctx && s->err.errnum == ETIMEDOUT && connect_timeout < 48) {
			fprintf(stderr, "#   %s: not at its stage within connect_timeout %.0f s "
				"(%s); again, longer\n", what, connect_timeout, s->err.message);
			victim_free(v);
			return false;
		}
		fail_msg("%s: the start never reached its stage: %s", what, s->err.message);
	}
	v->cmd = atoi(line);	/* the stand-in (ssh: the relaying shell) */
	switch (sc->hop) {
	case HOP_VIA_MID:
		v->agent = find_agent(v->upname);
		assert_true(v->agent > 0);
		if (sc->fault == F_CUT)
			assert_int_equal(cut_stream(router, mg_context_remote_id(v->up)), 0);
		else
			assert_int_equal(kill(v->agent, sc->fault == F_KILL ? SIGKILL : SIGSTOP), 0);
		v->hit = v->agent;
		break;
	case HOP_SSH:
		if (sc->fault == F_TKILL || sc->fault == F_TSTOP) {
			v->hit = find_child(v->cmd, "ssh");
		} else {
			/* the first stage on the target, reading the image */
			double limit = mg_test_now() + WAIT_S;

			while (!(v->hit = find_by_uid_cmdline(user_uid("mgtest"), "MGSEND")) &&
			       mg_test_now() < limit)
				poll(NULL, 0, 20);
		}
		assert_true(v->hit > 0);
		assert_int_equal(kill(v->hit, sc->fault == F_KILL || sc->fault == F_TKILL ?
					      SIGKILL : SIGSTOP), 0);
		break;
	default:
		v->hit = v->cmd;
		if (sc->fault != F_CUT)
			assert_int_equal(kill(v->hit, sc->fault == F_KILL ? SIGKILL : SIGSTOP), 0);
		break;
	}
	t0 = mg_test_now();
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)WAIT_S;
	pthread_mutex_lock(&s->lock);
	while (!s->done && pthread_cond_timedwait(&s->cond, &s->lock, &until) == 0)
		;
	pthread_mutex_unlock(&s->lock);
	if (!s->done) {
		kill(v->hit, SIGCONT);
		kill(v->hit, SIGKILL);
		pthread_join(th, NULL);
		fail_msg("%s: the start still waits after %.0f s", what, WAIT_S);
	}
	pthread_join(th, NULL);
	if (s->ctx) {
		v->ctx = s->ctx;
		fail_msg("%s: the start succeeded", what);
	}
	fprintf(stderr, "#   %s: the start failed after %.2f s: %s: %s\n", what, s->t_end - t0,
		mg_error_kind_name(s->err.kind), s->err.message);
	if (sc->fault == F_STOP || sc->fault == F_TSTOP)
		assert_true(s->err.kind == MG_ERR_TIMEOUT || s->err.kind == MG_ERR_STREAM ||
			    s->err.kind == MG_ERR_CHANNEL);
	else
		assert_true(s->err.kind == MG_ERR_STREAM || s->err.kind == MG_ERR_CHANNEL);
	v->agent = sc->hop == HOP_VIA_MID ? v->agent : 0;
	return true;
}

/* --- running the table ------------------------------------------------------ */

static bool hop_needs_ok(enum hop h)
{
	if ((h == HOP_SSH && !fx.up) || (h == HOP_SUDO && !fx.users)) {
		n_skipped++;
		return false;
	}
	return true;
}

static void run_scenario(const struct scenario *sc)
{
	struct victim *v = calloc(1, sizeof(*v));
	struct counts before;
	pid_t agent, cmd, hit;
	char what[160];

	assert_non_null(v);
	v->sc = sc;
	snprintf(what, sizeof(what), "%s, %s, %s", stage_names[sc->stage], hop_names[sc->hop],
		 fault_names[sc->fault]);
	/* MG_FAULTS_ONLY=text: only the scenarios whose name holds it (to
	 * look at one by hand; make check never sets it). */
	if (getenv("MG_FAULTS_ONLY") && !strstr(what, getenv("MG_FAULTS_ONLY"))) {
		free(v);
		return;
	}
	fprintf(stderr, "# scenario %d: %s\n", n_run + 1, what);
	n_run++;
	before = counts_now();
	mg_test_defer(free, v);
	mg_test_defer(victim_free, v);
	switch (sc->stage) {
	case ST_START:
		for (double t = START_TIMEOUT; !stage_start(v, what, t); t *= 2)
			;
		break;
	case ST_CALL:
		victim_start(v);
		stage_call(v, what);
		break;
	case ST_STREAM:
		victim_start(v);
		stage_stream(v, what);
		break;
	case ST_SHUTDOWN:
		victim_start(v);
		stage_shutdown(v, what);
		break;
	}
	victim_shut(v, what);
	agent = v->agent;
	cmd = v->cmd;
	hit = v->hit;
	mg_test_cleanup();	/* the FIFOs, receivers, channels, v */
	if (!gone_within(agent, GONE_S))
		fail_msg("%s: the agent (pid %d) is still there", what, (int)agent);
	/*
	 * Nothing is left, for any hop: an agent without a cgroup of its own
	 * (ssh, sudo to a user who may write none) has its keeper above it
	 * (agent/keeper.c), which ends what the agent could not, killed or
	 * stopped (docs/reliability.md, "The keeper").
	 */
	if (!gone_within(cmd, GONE_S)) {
		kill(cmd, SIGKILL);	/* not left running: the failure says it */
		fail_msg("%s: the command (pid %d) is still there %.0f s after its %s agent",
			 what, (int)cmd, GONE_S, fault_names[sc->fault]);
	}
	if (!gone_within(hit, GONE_S))
		fail_msg("%s: pid %d, which the fault hit, is still there", what, (int)hit);
	assert_counts(&before, what);
	bystander_serves(bystander, what);
	n_passed++;
}

static void run_table(const struct scenario *table, size_t n, enum hop only)
{
	for (size_t i = 0; i < n; i++)
		if (table[i].hop == only && hop_needs_ok(only))
			run_scenario(&table[i]);
}

/* --- the group ---------------------------------------------------------------- */

static int faults_setup(void)
{
	struct mg_error err = MG_ERROR_INIT;
	MG_OPTS(mg_router_opts, ro, .heartbeat_interval = HB_INTERVAL,
		.heartbeat_limit = HB_LIMIT);
	MG_OPTS(mg_local_opts, lo, .remote_name = "faults-bystander");

	snprintf(workdir, sizeof(workdir), "/tmp/mg-faults.XXXXXX");
	if (!mkdtemp(workdir) || chmod(workdir, 0755) < 0)
		return -1;
	if (fixture_up(true) < 0)
		return -1;
	router = mg_router_new(&ro);
	bystander = router ? mg_local(router, &lo, &err) : NULL;
	if (!bystander) {
		fprintf(stderr, "# bystander: %s\n", err.message);
		return -1;
	}
	return 0;
}

static void faults_teardown(void)
{
	char cmd[128];

	fprintf(stderr, "# faults: %d scenarios run, %d passed, %d skipped (no sshd or no "
		"test users)\n", n_run, n_passed, n_skipped);
	mg_context_shutdown(bystander, true);
	mg_context_unref(bystander);
	mg_router_unref(router);
	fixture_down();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", workdir);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", workdir);
}

/*
 * The whole main() of a fault program: one cmocka test per kind of hop,
 * each running the rows of the table for that hop.
 */
static const struct scenario *faults_table;
static size_t faults_ntable;

static void test_local(void **state) { run_table(faults_table, faults_ntable, HOP_LOCAL); }
static void test_fork(void **state) { run_table(faults_table, faults_ntable, HOP_FORK); }
static void test_via_lower(void **state)
{
	run_table(faults_table, faults_ntable, HOP_VIA_LOW);
}
static void test_via_upper(void **state)
{
	run_table(faults_table, faults_ntable, HOP_VIA_MID);
}
static void test_ssh(void **state) { run_table(faults_table, faults_ntable, HOP_SSH); }
static void test_sudo(void **state) { run_table(faults_table, faults_ntable, HOP_SUDO); }

static int faults_main(int argc, char **argv, const char *name, const struct scenario *table,
		       size_t n)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_via_lower),
		cmocka_unit_test(test_via_upper),
		cmocka_unit_test(test_ssh),
		cmocka_unit_test(test_sudo),
	};
	int ret;

	faults_main_hook(argc, argv);
	mg_main(argc, argv);
	faults_table = table;
	faults_ntable = n;
	if (faults_setup() < 0) {
		printf("Bail out! cannot set up\n");
		return 1;
	}
	ret = MG_TEST_RUN(name, tests);
	faults_teardown();
	return ret;
}

#endif
