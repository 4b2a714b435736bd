// SPDX-License-Identifier: MIT
/*
 * tools/runner.c — the engine of `mitogen run`, `call` and `script`: -f
 * workers each take the next target, start its chain (bounded by
 * --connect-timeout from that moment), run every step over the same
 * chain (each bounded by --command-timeout from when it started), report
 * each event to tools/output.c as it happens, and stop the chain before
 * taking another. Hops that targets share (-t bastion/web[01-32]: the
 * bastion) are started once, by whichever target needs them first, and
 * stopped when every target is done (tools/targets.c). A run step is mg.run_stream: its output comes in chunks
 * over a channel while the command runs and is acknowledged as it is
 * written out, so the tool holds at most a window per running target.
 *
 * Owns: the workers, the router, the fork lock, the progress timer and
 * the lock that serialises output. Must not touch: option parsing
 * (tools/mitogen.c), what output looks like (tools/output.c), how a hop
 * starts (tools/targets.c). Library calls are never made under the
 * output lock (the library logs, and the log callback writes).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <mitogen/mitogen.h>

#include "tools/runner.h"

struct session {
	const struct run_opts *o;
	struct mg_router *router;
	struct output *out;
	/* serialises every out_* call */
	pthread_mutex_t lock;
	/* the next target no worker has taken (under lock) */
	size_t next;
	/* held shared by workers, alone by one forking this process */
	pthread_rwlock_t forklock;
	/* the progress timer: stops when done is set */
	pthread_cond_t tick;
	bool done;
};

/* Seconds left before deadline (< 0: none, MG_FOREVER). */
static double remaining(double deadline)
{
	double left;

	if (deadline < 0)
		return MG_FOREVER;
	left = deadline - target_clock();
	return left > 0 ? left : 0;
}

/*
 * Report err for target ti (step, or OUT_NO_STEP at start-up) as outcome,
 * in words that name hops as the user wrote them.
 */
static void report(struct session *s, size_t ti, size_t step,
		   enum out_outcome outcome, struct mg_error *err, size_t hop)
{
	struct target *t = &s->o->targets->v[ti];
	char msg[MG_ERROR_MSG_MAX + 2 * MG_ERROR_NAME_MAX + 64];
	const struct hop *h = NULL;
	const char *fn = "";

	target_scrub(t, err->message, sizeof(err->message));
	if (err->kind == MG_ERR_CALL && err->context[0]) {
		h = target_hop_by_name(t, err->context);
		hop = h ? (size_t)(h - t->hops) : t->nhops - 1;
	}
	if (err->kind == MG_ERR_CALL && step != OUT_NO_STEP &&
	    s->o->steps[step].is_call && err->function[0])
		fn = err->function;
	snprintf(msg, sizeof(msg), "%s%s%s%s%s",
		 h && hop + 1 < t->nhops ? t->hops[hop].text : "",
		 h && hop + 1 < t->nhops ? ": " : "", fn, *fn ? ": " : "",
		 err->message);
	pthread_mutex_lock(&s->lock);
	out_error(s->out, ti, step, outcome, mg_error_kind_name(err->kind),
		  err->errnum, msg, hop < t->nhops ? (int)hop + 1 : 0,
		  hop < t->nhops ? t->hops[hop].text : NULL);
	pthread_mutex_unlock(&s->lock);
}

/* What an error in a running step means for the operator. */
static enum out_outcome step_outcome(const struct mg_error *err)
{
	switch (err->kind) {
	case MG_ERR_CALL:
		return OUT_CALLERR;
	case MG_ERR_TIMEOUT:
		return OUT_TIMEOUT;
	default:
		return OUT_LOST;
	}
}

/* When a library call failed without saying why, say it from rc. */
static void fill(struct mg_error *err, int rc, const char *what)
{
	if (err->kind != MG_ERR_NONE)
		return;
	err->kind = rc == -ETIMEDOUT ? MG_ERR_TIMEOUT :
		    rc == -EPIPE ? MG_ERR_CHANNEL : MG_ERR_CALL;
	err->errnum = -rc;
	snprintf(err->message, sizeof(err->message), "%s: %s", what, strerror(-rc));
}

static void timeout_error(struct session *s, struct mg_error *err)
{
	mg_error_clear(err);
	err->kind = MG_ERR_TIMEOUT;
	err->errnum = ETIMEDOUT;
	snprintf(err->message, sizeof(err->message),
		 "the command did not finish within --command-timeout (%g s)",
		 s->o->command_timeout);
}

/*
 * The next message of sel that comes from the target's last hop (from) or
 * from our own router (self: a dead message saying the hop is gone).
 * Why: a handle of ours is a number any context that can route to us may
 * send to, and the router does not bind a reply to the context the call
 * went to; without this a compromised target could answer, or end,
 * another target's step (selftests/attacks/test_tool_output.c).
 * Returns as mg_select_get.
 */
static int get_from(struct mg_select *sel, double timeout, uint32_t from,
		    uint32_t self, struct mg_message **ret_msg, struct mg_error *err)
{
	double deadline = timeout < 0 ? -1 : target_clock() + timeout;	/* MG_FOREVER is -1 */

	for (;;) {
		struct mg_message *msg = NULL;
		uint32_t src;
		int rc = mg_select_get(sel, deadline < 0 ? MG_FOREVER : remaining(deadline),
				       &msg, err);

		if (rc < 0)
			return rc;
		src = mg_message_src_id(msg);
		if (src == from || (src == self && mg_message_is_dead(msg))) {
			*ret_msg = msg;
			return 0;
		}
		mg_message_free(msg);
	}
}

/* A chunk message from the program (msg freed). Returns bytes consumed. */
static size_t run_chunk(struct session *s, size_t ti, size_t step,
			struct mg_channel *ch, struct mg_message *msg,
			uint32_t from)
{
	struct mg_value *v = NULL;
	const struct mg_value *fd, *data;
	size_t n = 0;

	/* only the target's own last hop speaks on this channel */
	if (mg_message_src_id(msg) != from || mg_message_is_dead(msg) ||
	    mg_message_value(msg, false, &v, NULL) < 0 || !v) {
		mg_message_free(msg);
		return 0;
	}
	mg_message_free(msg);
	if (v->type == MG_SENDER) {
		mg_channel_set_peer(ch, v);
	} else if (v->type == MG_MAP && (fd = mg_map_get(v, "fd")) &&
		   (data = mg_map_get(v, "data")) && fd->type == MG_INT &&
		   (fd->i == 1 || fd->i == 2) &&
		   (data->type == MG_BYTES || data->type == MG_STR)) {
		pthread_mutex_lock(&s->lock);
		out_data(s->out, ti, step, (int)fd->i, data->bytes, data->len);
		pthread_mutex_unlock(&s->lock);
		n = data->len;
	}
	mg_value_free(v);
	return n;
}

/* Seconds chunks may come after the reply that counted them (they never
 * should: the agent sends them first, and one stream keeps order). */
#define RUN_LATE_S 30.0

/* stdout_bytes + stderr_bytes of mg.run_stream's result (0 if absent). */
static size_t sent_bytes(const struct mg_value *result)
{
	size_t n = 0;

	for (int i = 0; i < 2; i++) {
		const struct mg_value *v = mg_map_get(result, i ? "stderr_bytes" : "stdout_bytes");

		if (v && v->type == MG_INT && v->i > 0)
			n += (size_t)v->i;
	}
	return n;
}

/*
 * One run step: mg.run_stream over a fresh channel; chunks are written out
 * as they come and acknowledged. Returns the outcome; *busy is set when
 * the target's last hop may still be inside the call.
 */
static enum out_outcome step_run(struct session *s, size_t ti, size_t step,
				 bool *busy)
{
	const struct run_opts *o = s->o;
	struct target *t = &o->targets->v[ti];
	struct mg_context *last = target_last(t);
	uint32_t from = mg_context_remote_id(last);
	struct mg_error err = MG_ERROR_INIT;
	struct mg_channel *ch = mg_channel_new(s->router, NULL);
	struct mg_select *sel = mg_select_new(false);
	struct mg_receiver *rx = NULL;
	struct mg_message *msg = NULL;
	struct mg_value *args = NULL, *result = NULL;
	size_t consumed = 0, acked = 0, expected = 0;
	enum out_outcome oc = OUT_LOST;
	double deadline;
	bool replied = false;
	int rc;

	if (!ch || !sel) {
		fill(&err, -ENOMEM, "cannot start the command");
		goto fail;
	}
	args = mg_list();
	/* a NULL item (ENOMEM) makes the call fail with the reason */
	mg_list_append(args, mg_channel_to_value(ch));
	mg_list_append(args, mg_value_copy(o->steps[step].args));
	if (o->has_stdin) {
		mg_list_append(args, mg_nil());
		mg_list_append(args, mg_nil());
		mg_list_append(args, mg_bytes(o->stdin_data, o->stdin_len));
	}
	rx = mg_call_async(last, "mg.run_stream", args, &err);
	if (!rx) {
		fill(&err, errno ? -errno : -EIO, "cannot send the command");
		goto fail;
	}
	*busy = true;
	pthread_mutex_lock(&s->lock);
	out_start(s->out, ti, step);
	pthread_mutex_unlock(&s->lock);
	deadline = o->command_timeout > 0 ? target_clock() + o->command_timeout : -1;
	if (mg_select_add(sel, rx) < 0 ||
	    mg_select_add(sel, mg_channel_receiver(ch)) < 0) {
		fill(&err, -ENOMEM, "cannot wait for the command");
		goto fail;
	}
	/*
	 * The reply comes after the last chunk: once it is in, take what is
	 * queued and stop. It says how many bytes were sent: should any not
	 * be here yet, they get RUN_LATE_S more, and a shortfall after that
	 * is an error, never output silently cut short.
	 */
	for (;;) {
		rc = get_from(sel, !replied ? remaining(deadline) :
			      consumed < expected ? RUN_LATE_S : 0, from,
			      mg_router_id(s->router), &msg, &err);
		if (rc == -ETIMEDOUT && replied && consumed < expected) {
			mg_error_clear(&err);
			err.kind = MG_ERR_STREAM;
			snprintf(err.message, sizeof(err.message),
				 "%zu of the %zu bytes of output the command wrote did not arrive",
				 expected - consumed, expected);
			goto fail;
		}
		if (rc == -ETIMEDOUT && replied)
			break;
		if (rc == -ETIMEDOUT) {
			timeout_error(s, &err);
			oc = OUT_TIMEOUT;
			goto fail;
		}
		if (rc < 0) {
			fill(&err, rc, "waiting for the command");
			goto fail;
		}
		if (mg_message_receiver(msg) != rx) {
			consumed += run_chunk(s, ti, step, ch, msg, from);
			if (consumed - acked >= RUN_ACK_EVERY) {
				struct mg_value *ack = mg_map();

				mg_map_set(ack, "ack", mg_int((int64_t)consumed));
				if (mg_channel_send(ch, ack) == 0)
					acked = consumed;
			}
			continue;
		}
		mg_error_clear(&err);
		rc = mg_message_value(msg, true, &result, &err);
		mg_message_free(msg);
		if (rc < 0) {
			fill(&err, rc, "the command");
			oc = step_outcome(&err);
			/* a CallError is an answer: the hop is free again */
			if (err.kind == MG_ERR_CALL)
				*busy = false;
			goto fail;
		}
		*busy = false;
		replied = true;
		expected = sent_bytes(result);
	}
	{
		const struct mg_value *st = mg_map_get(result, "status");

		if (!st || st->type != MG_INT) {
			mg_error_clear(&err);
			err.kind = MG_ERR_CALL;
			snprintf(err.message, sizeof(err.message),
				 "mg.run_stream returned an unexpected result");
			oc = OUT_CALLERR;
			goto fail;
		}
		pthread_mutex_lock(&s->lock);
		out_exit(s->out, ti, step, (int)st->i);
		pthread_mutex_unlock(&s->lock);
		oc = st->i == 0 ? OUT_OK : OUT_FAILED;
	}
	goto out;
fail:
	if (!rx) {
		pthread_mutex_lock(&s->lock);
		out_start(s->out, ti, step);
		pthread_mutex_unlock(&s->lock);
	}
	if (oc == OUT_LOST)
		oc = step_outcome(&err);
	report(s, ti, step, oc, &err, t->nhops - 1);
out:
	mg_value_free(result);
	mg_select_free(sel);
	mg_receiver_free(rx);
	mg_channel_free(ch);
	return oc;
}

/* One call step: print its result as JSON. */
static enum out_outcome step_call(struct session *s, size_t ti, size_t step,
				  bool *busy)
{
	const struct run_opts *o = s->o;
	struct target *t = &o->targets->v[ti];
	struct mg_error err = MG_ERROR_INIT;
	struct mg_message *msg = NULL;
	struct mg_value *result = NULL;
	struct mg_receiver *rx;
	struct mg_select *sel;
	enum out_outcome oc;
	char *json;
	int rc;

	pthread_mutex_lock(&s->lock);
	out_start(s->out, ti, step);
	pthread_mutex_unlock(&s->lock);
	/* a NULL copy (ENOMEM) makes the call fail with the reason */
	rx = mg_call_async(target_last(t), o->steps[step].fn,
			   mg_value_copy(o->steps[step].args), &err);
	if (!rx) {
		fill(&err, errno ? -errno : -EIO, "cannot send the call");
		oc = step_outcome(&err);
		goto fail;
	}
	*busy = true;
	sel = mg_select_new(false);
	rc = sel ? mg_select_add(sel, rx) : -ENOMEM;
	if (rc == 0)
		rc = get_from(sel, o->command_timeout > 0 ? o->command_timeout : MG_FOREVER,
			      mg_context_remote_id(target_last(t)), mg_router_id(s->router),
			      &msg, &err);
	mg_select_free(sel);
	mg_receiver_free(rx);
	if (rc == -ETIMEDOUT) {
		timeout_error(s, &err);
		snprintf(err.message, sizeof(err.message),
			 "no reply from %s within --command-timeout (%g s)",
			 o->steps[step].fn, o->command_timeout);
		oc = OUT_TIMEOUT;
		goto fail;
	}
	if (rc < 0) {
		fill(&err, rc, o->steps[step].fn);
		oc = step_outcome(&err);
		goto fail;
	}
	mg_error_clear(&err);
	rc = mg_message_value(msg, true, &result, &err);
	mg_message_free(msg);
	if (rc < 0) {
		fill(&err, rc, o->steps[step].fn);
		oc = step_outcome(&err);
		if (err.kind == MG_ERR_CALL)
			*busy = false;
		goto fail;
	}
	*busy = false;
	json = result ? mg_value_to_json_alloc(result) : strdup("null");
	mg_value_free(result);
	if (!json) {
		fill(&err, -ENOMEM, "cannot format the result");
		oc = OUT_CALLERR;
		goto fail;
	}
	pthread_mutex_lock(&s->lock);
	out_result(s->out, ti, step, json);
	pthread_mutex_unlock(&s->lock);
	free(json);
	return OUT_OK;
fail:
	report(s, ti, step, oc, &err, t->nhops - 1);
	return oc;
}

/*
 * One target from start to stop: start its chain, run its steps in order
 * (stopping at the first that fails unless --keep-going, and always when
 * the chain can no longer be used), stop the chain.
 */
static void task_run(struct session *s, size_t ti)
{
	const struct run_opts *o = s->o;
	struct target *t = &o->targets->v[ti];
	bool forks = target_forks_here(t), busy = false;
	struct mg_error err = MG_ERROR_INIT;
	size_t hop = 0;
	int rc;

	pthread_mutex_lock(&s->lock);
	out_target_begin(s->out, ti);
	pthread_mutex_unlock(&s->lock);
	/*
	 * fork() copies only the thread that calls it: a lock another worker
	 * holds at that instant (the allocator's, under the sanitizers,
	 * which do not lock it across fork) stays held in the child for
	 * ever. So a target that forks this process starts alone; the others
	 * hold the lock shared while they are not asleep.
	 */
	if (forks)
		pthread_rwlock_wrlock(&s->forklock);
	else
		pthread_rwlock_rdlock(&s->forklock);
	rc = target_start(t, s->router, target_clock() + o->connect_timeout,
			  o->sandbox, &err, &hop);
	if (forks) {
		pthread_rwlock_unlock(&s->forklock);
		pthread_rwlock_rdlock(&s->forklock);
	}
	if (rc < 0) {
		if (err.kind == MG_ERR_NONE) {
			err.kind = MG_ERR_STREAM;
			err.errnum = -rc;
			snprintf(err.message, sizeof(err.message),
				 "cannot start a context: %s", strerror(-rc));
		}
		report(s, ti, OUT_NO_STEP, OUT_UNREACHABLE, &err, hop);
		goto stop;
	}
	for (size_t k = 0; k < o->nsteps; k++) {
		enum out_outcome oc;

		/* asleep in a call: no fork may wait on us */
		pthread_rwlock_unlock(&s->forklock);
		oc = o->steps[k].is_call ? step_call(s, ti, k, &busy) :
					   step_run(s, ti, k, &busy);
		pthread_rwlock_rdlock(&s->forklock);
		if (busy || oc == OUT_LOST || oc == OUT_TIMEOUT)
			break;
		if (oc != OUT_OK && !o->keep_going)
			break;
	}
stop:
	/* still busy: its last hop may be stuck in the call, stop by force */
	target_stop(t, busy);
	pthread_rwlock_unlock(&s->forklock);
	pthread_mutex_lock(&s->lock);
	out_target_done(s->out, ti);
	pthread_mutex_unlock(&s->lock);
}

/* A worker: take the next target not yet taken until none is left. */
static void *worker(void *arg)
{
	struct session *s = arg;

	for (;;) {
		size_t i;

		pthread_mutex_lock(&s->lock);
		i = s->next++;
		pthread_mutex_unlock(&s->lock);
		if (i >= s->o->targets->n)
			return NULL;
		task_run(s, i);
	}
}

/* Redraw the progress line four times a second until the run is done. */
static void *ticker(void *arg)
{
	struct session *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->done) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->tick, &s->lock, &ts);
		if (!s->done)
			out_progress(s->out);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* --- SIGINT, SIGTERM, SIGHUP ---------------------------------------------- */

/*
 * Seconds after SIGINT, SIGTERM or SIGHUP before what is left of our
 * children gets SIGKILL: an agent's own grace (2 s, SIGTERM to SIGKILL for
 * what is below it) and time to confirm its tree is gone and exit.
 */
#define TOOL_SIG_GRACE 5.0

/* The handler writes the signal's number here; 0 from runner_go: done. */
static int tool_sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t tool_signal;

static void tool_on_signal(int sig)
{
	int e = errno;
	char c = (char)sig;

	if (!tool_signal)
		tool_signal = sig;
	(void)!write(tool_sig_pipe[1], &c, 1);
	errno = e;
}

/*
 * sig to each of our children: the first hop of every target (an agent,
 * or ssh, sudo, su, doas, which pass it on or hang up). Through a pidfd,
 * once the process is seen to be our child still. seen (n of them): who
 * had SIGTERM already; SIGTERM skips them and adds the others.
 */
static void tool_signal_children(int sig, pid_t *seen, size_t *n, size_t max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[300];
		FILE *f;
		int pid;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/children", e->d_name);
		f = fopen(path, "re");
		while (f && fscanf(f, "%d", &pid) == 1) {
			char stat[64], buf[256], *p;
			int fd, ppid = 0;
			bool again = false;
			FILE *sf;

			for (size_t i = 0; i < *n; i++)
				again |= seen[i] == pid;
			if (sig == SIGTERM && again)
				continue;
			fd = (int)syscall(SYS_pidfd_open, pid, 0);
			if (fd < 0)
				continue;
			snprintf(stat, sizeof(stat), "/proc/%d/stat", pid);
			sf = fopen(stat, "re");
			p = sf && fgets(buf, sizeof(buf), sf) ? strrchr(buf, ')') : NULL;
			if (sf)
				fclose(sf);
			if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == getpid())
				syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
			close(fd);
			if (!again && *n < max)
				seen[(*n)++] = pid;
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

/*
 * The watcher thread: on the first signal no target starts any more and
 * our children get SIGTERM (and any child a worker starts meanwhile);
 * TOOL_SIG_GRACE later, or at a second signal, whatever is left SIGKILL.
 * The workers see their targets end and finish; runner_go then writes 0.
 */
static void *tool_sig_watch(void *arg)
{
	struct session *s = arg;
	static pid_t seen[TARGETS_MAX * 2];
	size_t nseen = 0;
	double kill_at = -1;
	int got = 0;

	for (;;) {
		struct pollfd p = { .fd = tool_sig_pipe[0], .events = POLLIN };
		double now;
		char c = 1;

		/* Look again now and then: a worker may be starting a hop.
		 * The clock is read after the wait, which may have lasted the
		 * whole run: a grace counted from before it would have passed
		 * already, and the first signal would be SIGKILL. */
		if (poll(&p, 1, got ? 50 : -1) > 0 && read(tool_sig_pipe[0], &c, 1) == 1) {
			now = target_clock();
			if (c == 0)
				return NULL;
			if (got)
				kill_at = now;	/* a second one: at once */
			else {
				got = c;
				kill_at = now + TOOL_SIG_GRACE;
				fprintf(stderr, "mitogen: SIG%s: ending every target\n",
					sigabbrev_np(c) ? sigabbrev_np(c) : "?");
				pthread_mutex_lock(&s->lock);
				s->next = s->o->targets->n;
				pthread_mutex_unlock(&s->lock);
			}
		}
		if (got)
			tool_signal_children(target_clock() >= kill_at ? SIGKILL : SIGTERM, seen,
					     &nseen, sizeof(seen) / sizeof(seen[0]));
	}
}

/*
 * Catch SIGINT, SIGTERM, SIGHUP from now on (tool_sig_watch); one we were
 * started with ignored stays ignored (nohup, a shell's background job).
 * 0 or -1.
 */
static int tool_catch_signals(void)
{
	struct sigaction sa = { .sa_handler = tool_on_signal, .sa_flags = SA_RESTART }, old;
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };

	if (pipe2(tool_sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaction(sigs[i], &sa, NULL);
	return 0;
}

int runner_go(const struct run_opts *o)
{
	struct session s = { .o = o };
	size_t n = o->targets->n;
	size_t nworkers = o->fanout < n ? o->fanout : n, started = 0;
	const char **labels = calloc(n ? n : 1, sizeof(*labels));
	const char **specs = calloc(n ? n : 1, sizeof(*specs));
	bool *is_shared = calloc(n ? n : 1, sizeof(*is_shared));
	bool *is_call = calloc(o->nsteps, sizeof(*is_call));
	const char **texts = calloc(o->nsteps, sizeof(*texts));
	pthread_t *workers = calloc(nworkers ? nworkers : 1, sizeof(*workers));
	struct out_opts oo = o->out;
	pthread_rwlockattr_t rwa;
	pthread_t tick, watcher;
	bool watching = false;
	bool ticking = false;
	int code = OUT_EXIT_UNREACHABLE;

	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.tick, NULL);
	/* a forking worker must not wait behind a stream of shared takers */
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(&rwa,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s.forklock, &rwa);
	pthread_rwlockattr_destroy(&rwa);
	if (!labels || !specs || !is_shared || !is_call || !texts || !workers)
		goto nomem;
	/* labels: the last host, or the whole chain where hosts repeat */
	for (size_t i = 0; i < n; i++) {
		specs[i] = o->targets->v[i].spec;
		labels[i] = target_host(&o->targets->v[i]);
		if (!labels[i])
			goto nomem;
	}
	/* decided on the hosts alone, then replaced */
	for (size_t i = 0; i < n; i++) {
		bool shared = false;

		for (size_t j = 0; j < n && !shared; j++)
			shared = j != i && !strcmp(labels[i], labels[j]) &&
				 strcmp(specs[i], specs[j]);
		is_shared[i] = shared;
	}
	for (size_t i = 0; i < n; i++) {
		if (!is_shared[i])
			continue;
		free((char *)labels[i]);
		labels[i] = strdup(specs[i]);
		if (!labels[i])
			goto nomem;
	}
	for (size_t k = 0; k < o->nsteps; k++) {
		is_call[k] = o->steps[k].is_call;
		texts[k] = o->steps[k].text;
	}
	oo.nsteps = o->nsteps;
	oo.step_is_call = is_call;
	oo.step_text = texts;
	s.out = out_new(&oo, n, labels, specs);
	{
		MG_OPTS(mg_router_opts, rto, .heartbeat_interval = o->heartbeat_interval,
			.heartbeat_limit = o->heartbeat_limit);

		s.router = mg_router_new(&rto);
	}
	if (!s.out || !s.router)
		goto nomem;
	if (oo.progress && pthread_create(&tick, NULL, ticker, &s) == 0)
		ticking = true;
	/* SIGINT, SIGTERM, SIGHUP: every target's tree ends first */
	watching = tool_catch_signals() == 0 &&
		   pthread_create(&watcher, NULL, tool_sig_watch, &s) == 0;
	/* this thread is worker 0; a worker that cannot start leaves its
	 * share to the others */
	for (size_t i = 1; i < nworkers; i++)
		if (pthread_create(&workers[started], NULL, worker, &s) == 0)
			started++;
	worker(&s);
	for (size_t i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	/* every target is stopped: now the hops they shared (a bastion) */
	target_list_stop_shared(o->targets);
	if (watching) {
		(void)!write(tool_sig_pipe[1], "", 1);
		pthread_join(watcher, NULL);
	}
	pthread_mutex_lock(&s.lock);
	s.done = true;
	pthread_cond_signal(&s.tick);
	pthread_mutex_unlock(&s.lock);
	if (ticking)
		pthread_join(tick, NULL);
	code = out_finish(s.out);
	if (tool_signal)
		code = 128 + tool_signal;
	goto out;
nomem:
	fprintf(stderr, "mitogen: cannot start: %s\n", strerror(ENOMEM));
out:
	out_free(s.out);
	mg_router_unref(s.router);
	for (size_t i = 0; labels && i < n; i++)
		free((char *)labels[i]);
	free(labels);
	free(specs);
	free(is_shared);
	free(is_call);
	free(texts);
	free(workers);
	pthread_mutex_destroy(&s.lock);
	pthread_cond_destroy(&s.tick);
	pthread_rwlock_destroy(&s.forklock);
	return code;
}
