// SPDX-License-Identifier: MIT
/*
 * fakessh.c — mg_fakessh_run (include/mitogen/fakessh.h): a local program
 * whose `ssh` is this very image in stub mode, each of its sessions
 * carried over our channel to a context by the "mg.fakessh" service.
 *
 * Owns: the stub (argv[0] "ssh" with MITOGEN_FAKESSH_SOCK set: it parses
 * ssh's options, hands its three standard fds and the remote command to
 * the master over a private socket, and exits with the status it gets
 * back), the master's listener and sessions, and the service that runs
 * the command in the context.
 *
 * Why the socket is safe: it lives in a mkdtemp directory (mode 0700) of
 * the master's user, and a connection is served only when SO_PEERCRED
 * says it comes from that user; what a connection can do is what the
 * program we started can do anyway (run commands in dest). Why the
 * service is: "exec" is MG_SERVICE_PARENTS, the authority CALL_FUNCTION
 * (mg.run) already needs to run a command there.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <mitogen/mitogen.h>
#include <mitogen/fakessh.h>
#include <mitogen/service.h>

#include "master/fakessh.h"

extern char **environ;

#define FAKESSH_SOCK_ENV "MITOGEN_FAKESSH_SOCK"
#define FAKESSH_SSH_ENV "MITOGEN_FAKESSH_SSH"
/* Unacknowledged bytes in flight per direction of a session. */
#define FAKESSH_WINDOW ((uint64_t)1 << 20)
#define FAKESSH_READ 32768
/* The remote command of `ssh -s sftp`. */
#define FAKESSH_SFTP							\
	"for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server " \
	"/usr/lib/ssh/sftp-server /usr/libexec/sftp-server; do "	\
	"[ -x \"$p\" ] && exec \"$p\"; done; "				\
	"echo 'fakessh: no sftp-server on this host' >&2; exit 127"

/* All of it, even to a descriptor its program made non-blocking. */
static int write_all(int fd, const void *p, size_t len)
{
	while (len) {
		ssize_t r = write(fd, p, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			poll(&pf, 1, -1);
			continue;
		}
		if (r < 0)
			return -errno;
		p = (const char *)p + r;
		len -= (size_t)r;
	}
	return 0;
}

static int send_to(struct mg_router *r, uint32_t dst, uint32_t handle, struct mg_value *v)
{
	struct mg_message *m = mg_message_new(dst, handle, v);

	return m ? mg_router_route(r, m) : -errno;
}


/*
 * A writer thread per session end: the thread that takes messages never
 * blocks on a program's pipe (it also takes the acknowledgements that
 * let the other direction move on: blocking there deadlocks two rsyncs
 * writing to each other). What it queues is bounded by the peer's window.
 */
struct wq_item {
	struct wq_item *next;
	int fd;
	bool shut;		/* shutdown(fd, SHUT_WR) instead of data */
	size_t len;
	uint8_t data[];
};

struct wq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct wq_item *head, *tail;
	bool closing;
	uint64_t written;
	void (*done)(struct wq *q, uint64_t written, void *ud);
	void *ud;
	pthread_t th;
	bool started;
};

static void *wq_main(void *arg)
{
	struct wq *q = arg;
	sigset_t pipe_set;

	/* A program that closed its input: EPIPE here, not SIGPIPE. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	for (;;) {
		struct wq_item *it;

		pthread_mutex_lock(&q->lock);
		while (!q->head && !q->closing)
			pthread_cond_wait(&q->cond, &q->lock);
		it = q->head;
		if (it) {
			q->head = it->next;
			if (!q->head)
				q->tail = NULL;
		}
		pthread_mutex_unlock(&q->lock);
		if (!it)
			break;
		if (it->shut)
			shutdown(it->fd, SHUT_WR);
		else
			write_all(it->fd, it->data, it->len);
		q->written += it->len;
		if (!it->shut && q->done)
			q->done(q, q->written, q->ud);
		free(it);
	}
	return NULL;
}

static int wq_start(struct wq *q, void (*done)(struct wq *, uint64_t, void *), void *ud)
{
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->done = done;
	q->ud = ud;
	q->started = pthread_create(&q->th, NULL, wq_main, q) == 0;
	return q->started ? 0 : -EAGAIN;
}

static void wq_push(struct wq *q, int fd, bool shut, const void *p, size_t len)
{
	struct wq_item *it = malloc(sizeof(*it) + len);

	if (!it)
		return;
	it->next = NULL;
	it->fd = fd;
	it->shut = shut;
	it->len = len;
	if (len)
		memcpy(it->data, p, len);
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* Write what is queued, then stop the thread. */
static void wq_finish(struct wq *q)
{
	if (!q->started)
		return;
	pthread_mutex_lock(&q->lock);
	q->closing = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->th, NULL);
	q->started = false;
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
}

/* --- the stub -------------------------------------------------------------- */

/* ssh's options that take an argument (ssh(1)). */
static bool stub_takes_arg(char c)
{
	return c && strchr("BbcDEeFIiJLlmOoPpQRSWw", c);
}

void fakessh_stub_main(int argc, char **argv)
{
	const char *path = getenv(FAKESSH_SOCK_ENV);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char cmd[65536] = "";
	size_t len = 0;
	bool subsystem = false;
	int i = 1, fd;

	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		for (const char *p = argv[i] + 1; *p; p++) {
			if (*p == 's')
				subsystem = true;
			if (stub_takes_arg(*p)) {
				if (!p[1])
					i++;
				break;
			}
		}
	}
	if (i >= argc) {
		fprintf(stderr, "fakessh: no host given\n");
		_exit(255);
	}
	/* argv[i]: the host, ignored: the context was chosen by the caller. */
	for (i++; i < argc; i++) {
		int n = snprintf(cmd + len, sizeof(cmd) - len, "%s%s", len ? " " : "", argv[i]);

		if (n < 0 || (size_t)n >= sizeof(cmd) - len) {
			fprintf(stderr, "fakessh: command too long\n");
			_exit(255);
		}
		len += (size_t)n;
	}
	if (subsystem) {
		if (strcmp(cmd, "sftp")) {
			fprintf(stderr, "fakessh: subsystem '%s' not supported\n", cmd);
			_exit(255);
		}
		snprintf(cmd, sizeof(cmd), "%s", FAKESSH_SFTP);
		len = strlen(cmd);
	}
	if (!len) {
		fprintf(stderr, "fakessh: interactive sessions are not supported; give a command\n");
		_exit(255);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!path || strlen(path) >= sizeof(sa.sun_path) || fd < 0) {
		fprintf(stderr, "fakessh: no session socket\n");
		_exit(255);
	}
	memcpy(sa.sun_path, path, strlen(path));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "fakessh: %s: %s\n", path, strerror(errno));
		_exit(255);
	}
	{
		uint32_t l = (uint32_t)len;
		char cbuf[CMSG_SPACE(3 * sizeof(int))] = { 0 };
		struct iovec iov = { .iov_base = &l, .iov_len = sizeof(l) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int fds[3] = { 0, 1, 2 };
		uint32_t status;
		size_t got = 0;

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(c), fds, sizeof(fds));
		if (sendmsg(fd, &mh, MSG_NOSIGNAL) != sizeof(l) || write_all(fd, cmd, len) < 0) {
			fprintf(stderr, "fakessh: cannot start the session: %s\n", strerror(errno));
			_exit(255);
		}
		/* Our streams are the master's to serve now. */
		while (got < sizeof(status)) {
			ssize_t r = read(fd, (char *)&status + got, sizeof(status) - got);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				fprintf(stderr, "fakessh: session lost\n");
				_exit(255);
			}
			got += (size_t)r;
		}
		_exit((int)(status & 0xff));
	}
}

bool fakessh_stub_wanted(int argc, char **argv)
{
	const char *a0;

	if (argc < 1 || !argv || !argv[0] || !getenv(FAKESSH_SOCK_ENV))
		return false;
	a0 = strrchr(argv[0], '/');
	return !strcmp(a0 ? a0 + 1 : argv[0], "ssh");
}

/* --- the service: run the command here --------------------------------------- */

struct rexec {
	bool out_done;			/* the output thread is over */
	struct wq in;			/* to the command's stdin */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t sent, acked;
	bool stop;
	int out, err;
	struct mg_router *r;
	uint32_t caller, handle;
	struct mg_receiver *rx;
};

/* Output thread: stdout and stderr to the caller, within the window. */
static void *rexec_output(void *arg)
{
	struct rexec *x = arg;
	char *buf = malloc(FAKESSH_READ);
	struct pollfd p[2] = { { .fd = x->out, .events = POLLIN }, { .fd = x->err, .events = POLLIN } };

	while (buf && (p[0].fd >= 0 || p[1].fd >= 0)) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int k = 0; k < 2; k++) {
			ssize_t n;

			if (p[k].fd < 0 || !p[k].revents)
				continue;
			n = read(p[k].fd, buf, FAKESSH_READ);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				p[k].fd = -1;
				continue;
			}
			pthread_mutex_lock(&x->lock);
			while (!x->stop && x->sent - x->acked > FAKESSH_WINDOW)
				pthread_cond_wait(&x->cond, &x->lock);
			x->sent += (uint64_t)n;
			pthread_mutex_unlock(&x->lock);
			send_to(x->r, x->caller, x->handle,
				MG_LIST(mg_str(k ? "e" : "o"), mg_bytes(buf, (size_t)n)));
		}
		pthread_mutex_lock(&x->lock);
		if (x->stop)
			p[0].fd = p[1].fd = -1;
		pthread_mutex_unlock(&x->lock);
	}
	free(buf);
	/* The worker notices within its poll interval. */
	__atomic_store_n(&x->out_done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* Writer thread: stdin bytes written, acknowledged to the caller. */
static void rexec_in_done(struct wq *q, uint64_t written, void *ud)
{
	struct rexec *x = ud;

	send_to(x->r, x->caller, x->handle, MG_LIST(mg_str("a"), mg_int((int64_t)written)));
}

static int fakessh_exec(struct mg_call *call, const struct mg_value *args, struct mg_value **ret,
			void *ud)
{
	MG_OPTS(mg_receiver_opts, ro);
	struct rexec x = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
			   .r = mg_call_router(call), .caller = mg_call_src_id(call),
			   .handle = (uint32_t)args->items[1].i };
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, status = 0, code;
	char *const sh_argv[] = { "sh", "-c", (char *)args->items[0].str, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct mg_context *cctx;
	pthread_t th;
	pid_t pid;
	int e;

	cctx = mg_router_context_by_id(x.r, x.caller);
	ro.respondent = cctx;
	x.rx = cctx ? mg_receiver_new(x.r, &ro) : NULL;
	if (!x.rx) {
		mg_context_unref(cctx);
		return mg_call_fail(call, ENOMEM, "out of memory");
	}
	/* stdin a socket: a write after the command closed it is EPIPE, not
	 * SIGPIPE (MSG_NOSIGNAL). */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 ||
	    pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		e = errno;
		goto fail_fds;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[1], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	{
		sigset_t none, all;

		sigemptyset(&none);
		sigfillset(&all);
		posix_spawnattr_setsigmask(&at, &none);
		posix_spawnattr_setsigdefault(&at, &all);
	}
	e = posix_spawn(&pid, "/bin/sh", &fa, &at, sh_argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(in[1]);
	close(out[1]);
	close(err[1]);
	in[1] = out[1] = err[1] = -1;
	if (e)
		goto fail_fds;
	x.out = out[0];
	x.err = err[0];
	send_to(x.r, x.caller, x.handle, MG_LIST(mg_str("h"), mg_int(mg_receiver_handle(x.rx))));
	if (wq_start(&x.in, rexec_in_done, &x) < 0) {
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
		e = EAGAIN;
		goto fail_fds;
	}
	if (pthread_create(&th, NULL, rexec_output, &x) != 0) {
		wq_finish(&x.in);
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
		e = EAGAIN;
		goto fail_fds;
	}
	for (;;) {
		struct mg_message *m = NULL;
		struct mg_value *v = NULL;

		int g = mg_receiver_get(x.rx, 0.05, &m, NULL);

		if (g == -ETIMEDOUT && !__atomic_load_n(&x.out_done, __ATOMIC_ACQUIRE))
			continue;
		if (g < 0)
			break;	/* the output is over (or the router is going) */
		if (mg_message_is_dead(m)) {
			/* The caller went away: so does the command. */
			kill(-pid, SIGKILL);
			mg_message_free(m);
			pthread_mutex_lock(&x.lock);
			x.stop = true;
			pthread_cond_broadcast(&x.cond);
			pthread_mutex_unlock(&x.lock);
			break;
		}
		if (mg_message_value(m, false, &v, NULL) == 0 && v->type == MG_LIST && v->len >= 1 &&
		    v->items[0].type == MG_STR) {
			const char *t = v->items[0].str;

			if (!strcmp(t, "i") && v->len == 2 && v->items[1].type == MG_BYTES) {
				wq_push(&x.in, in[0], false, v->items[1].bytes, v->items[1].len);
			} else if (!strcmp(t, "I")) {
				wq_push(&x.in, in[0], true, NULL, 0);
			} else if (!strcmp(t, "a") && v->len == 2 && v->items[1].type == MG_INT) {
				pthread_mutex_lock(&x.lock);
				if ((uint64_t)v->items[1].i > x.acked &&
				    (uint64_t)v->items[1].i <= x.sent)
					x.acked = (uint64_t)v->items[1].i;
				pthread_cond_broadcast(&x.cond);
				pthread_mutex_unlock(&x.lock);
			}
		}
		mg_value_free(v);
		mg_message_free(m);
	}
	pthread_join(th, NULL);
	/* No more output: the caller stops acknowledging it. */
	send_to(x.r, x.caller, x.handle, MG_LIST(mg_str("x"), mg_int(0)));
	/* Until the caller's "X": what it sent before still has a handle to
	 * arrive at (no "invalid handle" for it). A caller gone ends it too. */
	for (;;) {
		struct mg_message *m = NULL;
		struct mg_value *v = NULL;
		bool last;

		if (mg_receiver_get(x.rx, 30.0, &m, NULL) < 0)
			break;
		last = mg_message_is_dead(m) ||
		       (mg_message_value(m, false, &v, NULL) == 0 && v->type == MG_LIST &&
			v->len >= 1 && v->items[0].type == MG_STR && !strcmp(v->items[0].str, "X"));
		mg_value_free(v);
		mg_message_free(m);
		if (last)
			break;
	}
	/* The command is done with its stdin (or gone): no more writes. */
	shutdown(in[0], SHUT_RDWR);
	wq_finish(&x.in);
	close(in[0]);
	close(out[0]);
	close(err[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	mg_receiver_free(x.rx);
	mg_context_unref(cctx);
	/* As ssh: the command's status; 255 when a signal ended it. */
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
	*ret = mg_int(code);
	return 0;
fail_fds:
	for (int k = 0; k < 2; k++) {
		if (in[k] >= 0)
			close(in[k]);
		if (out[k] >= 0)
			close(out[k]);
		if (err[k] >= 0)
			close(err[k]);
	}
	mg_receiver_free(x.rx);
	mg_context_unref(cctx);
	return mg_call_fail(call, e, "cannot run sh: %s", strerror(e));
}

static const struct mg_service_method fakessh_methods[] = {
	/* Run a command with its streams relayed: parents only, as mg.run. */
	{ "exec", fakessh_exec, MG_SERVICE_PARENTS, "si" },
};

void fakessh_service_init(void)
{
	mg_service_register("mg.fakessh", fakessh_methods, 1, NULL);
}

/* --- the master's side ----------------------------------------------------------- */

struct fk;

struct session {
	struct wq out;			/* to the program's stdout and stderr */
	struct fk *fk;
	int sock, fds[3];
	char *cmd;
	pthread_t th, pump;
	bool pump_started;
	int stop[2];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t in_sent, in_acked;
	uint32_t in_handle;
	bool done;
	bool out_over;		/* the command's output ended: no more acks */
	struct session *next;
};

struct fk {
	struct mg_router *r;
	struct mg_context *dest;
	int lsock;
	int stop[2];
	pthread_t th;
	pthread_mutex_t lock;
	struct session *sessions;
	uint32_t dest_id;
};

/* stdin of the program's ssh to the context, within the window. */
static void *session_pump(void *arg)
{
	struct session *s = arg;
	char *buf = malloc(FAKESSH_READ);
	struct pollfd p[2] = { { .fd = s->fds[0], .events = POLLIN },
			       { .fd = s->stop[0], .events = POLLIN } };

	while (buf) {
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		n = read(s->fds[0], buf, FAKESSH_READ);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			pthread_mutex_lock(&s->lock);
			if (!s->done)
				send_to(s->fk->r, s->fk->dest_id, s->in_handle, MG_LIST(mg_str("I")));
			pthread_mutex_unlock(&s->lock);
			break;
		}
		pthread_mutex_lock(&s->lock);
		while (!s->done && s->in_sent - s->in_acked > FAKESSH_WINDOW)
			pthread_cond_wait(&s->cond, &s->lock);
		s->in_sent += (uint64_t)n;
		if (s->done) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		/* Under the lock: nothing follows the "X" that ends the session. */
		send_to(s->fk->r, s->fk->dest_id, s->in_handle,
			MG_LIST(mg_str("i"), mg_bytes(buf, (size_t)n)));
		pthread_mutex_unlock(&s->lock);
	}
	free(buf);
	return NULL;
}

/* One message on the session's output receiver. false: the end. */
static bool session_out(struct session *s, struct mg_message *m, uint64_t *out_total)
{
	struct mg_value *v = NULL;
	bool more = true;

	if (mg_message_is_dead(m))
		return false;
	if (mg_message_value(m, false, &v, NULL) == 0 && v->type == MG_LIST && v->len == 2 &&
	    v->items[0].type == MG_STR) {
		const char *t = v->items[0].str;

		if (!strcmp(t, "h") && v->items[1].type == MG_INT && !s->pump_started) {
			s->in_handle = (uint32_t)v->items[1].i;
			s->pump_started = pthread_create(&s->pump, NULL, session_pump, s) == 0;
		} else if ((!strcmp(t, "o") || !strcmp(t, "e")) && v->items[1].type == MG_BYTES) {
			/* The program reads at its pace: our ack waits for it. */
			wq_push(&s->out, s->fds[t[0] == 'o' ? 1 : 2], false, v->items[1].bytes,
				v->items[1].len);
			*out_total += v->items[1].len;
		} else if (!strcmp(t, "x")) {
			/* And its input is not wanted any more. */
			pthread_mutex_lock(&s->lock);
			s->out_over = true;
			s->done = true;
			/* The last message it gets from us: it may let go. */
			send_to(s->fk->r, s->fk->dest_id, s->in_handle, MG_LIST(mg_str("X")));
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			if (s->pump_started)
				(void)!write(s->stop[1], "x", 1);
		} else if (!strcmp(t, "a") && v->items[1].type == MG_INT) {
			pthread_mutex_lock(&s->lock);
			if ((uint64_t)v->items[1].i > s->in_acked)
				s->in_acked = (uint64_t)v->items[1].i;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
		}
	}
	mg_value_free(v);
	return more;
}

static void session_out_done(struct wq *q, uint64_t written, void *ud)
{
	struct session *s = ud;
	bool over;

	pthread_mutex_lock(&s->lock);
	over = s->out_over;
	if (!over)
		send_to(s->fk->r, s->fk->dest_id, s->in_handle,
			MG_LIST(mg_str("a"), mg_int((int64_t)written)));
	pthread_mutex_unlock(&s->lock);
}

static void *session_main(void *arg)
{
	struct session *s = arg;
	MG_OPTS(mg_receiver_opts, ro, .respondent = s->fk->dest);
	struct mg_receiver *out_rx = mg_receiver_new(s->fk->r, &ro), *call_rx = NULL;
	struct mg_select *sel = mg_select_new(false);
	struct mg_error err = MG_ERROR_INIT;
	uint64_t out_total = 0;
	uint32_t status = 255;
	char text[MG_ERROR_MSG_MAX + 300];

	if (out_rx && sel && wq_start(&s->out, session_out_done, s) == 0)
		call_rx = mg_call_service_async(s->fk->dest, "mg.fakessh", "exec",
						MG_LIST(mg_str(s->cmd),
							mg_int(mg_receiver_handle(out_rx))), &err);
	if (!call_rx || mg_select_add(sel, out_rx) < 0 || mg_select_add(sel, call_rx) < 0) {
		snprintf(text, sizeof(text), "fakessh: cannot start the session: %s\n",
			 err.message[0] ? err.message : strerror(errno));
		write_all(s->fds[2], text, strlen(text));
		goto out;
	}
	for (;;) {
		struct mg_message *m = NULL;
		struct mg_value *v = NULL;

		if (mg_select_get(sel, MG_FOREVER, &m, NULL) < 0)
			break;
		if (mg_message_receiver(m) == out_rx) {
			if (!session_out(s, m, &out_total)) {
				mg_select_remove(sel, out_rx);
			}
			mg_message_free(m);
			continue;
		}
		/* The call's result: what output is still queued first. */
		{
			struct mg_message *q = NULL;

			while (mg_receiver_get(out_rx, 0, &q, NULL) == 0) {
				session_out(s, q, &out_total);
				mg_message_free(q);
			}
		}
		if (mg_message_value(m, true, &v, &err) == 0 && v->type == MG_INT) {
			status = (uint32_t)v->i;
		} else {
			char ebuf[MG_ERROR_MSG_MAX + 300];

			snprintf(text, sizeof(text), "fakessh: %.900s\n",
				 mg_error_str(&err, ebuf, sizeof(ebuf)));
			write_all(s->fds[2], text, strlen(text));
		}
		mg_value_free(v);
		mg_message_free(m);
		break;
	}
out:
	pthread_mutex_lock(&s->lock);
	s->done = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->pump_started) {
		(void)!write(s->stop[1], "x", 1);
		pthread_join(s->pump, NULL);
	}
	/* Everything the command wrote reaches the program first. */
	wq_finish(&s->out);
	mg_select_free(sel);
	mg_receiver_free(call_rx);
	mg_receiver_free(out_rx);
	for (int k = 0; k < 3; k++)
		close(s->fds[k]);
	/* The stub may be gone (its program killed it): no SIGPIPE. */
	(void)!send(s->sock, &status, sizeof(status), MSG_NOSIGNAL);
	close(s->sock);
	return NULL;
}

/* A connection from a stub: its command and its three fds. */
static void fk_accept(struct fk *fk)
{
	int c = accept4(fk->lsock, NULL, NULL, SOCK_CLOEXEC);
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	char cbuf[CMSG_SPACE(3 * sizeof(int))];
	uint32_t len = 0;
	struct iovec iov = { .iov_base = &len, .iov_len = sizeof(len) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	struct session *s;
	size_t got = 0;

	if (c < 0)
		return;
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != geteuid() ||
	    recvmsg(c, &mh, MSG_CMSG_CLOEXEC) != sizeof(len) || len == 0 || len > 65536) {
		close(c);
		return;
	}
	cm = CMSG_FIRSTHDR(&mh);
	s = calloc(1, sizeof(*s));
	if (!s || !cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(3 * sizeof(int)) ||
	    !(s->cmd = calloc(1, len + 1)) || pipe2(s->stop, O_CLOEXEC) < 0) {
		if (cm && cm->cmsg_type == SCM_RIGHTS) {
			int fds[3];

			memcpy(fds, CMSG_DATA(cm), sizeof(fds));
			for (int k = 0; k < 3 && cm->cmsg_len == CMSG_LEN(sizeof(fds)); k++)
				close(fds[k]);
		}
		if (s)
			free(s->cmd);
		free(s);
		close(c);
		return;
	}
	memcpy(s->fds, CMSG_DATA(cm), sizeof(s->fds));
	while (got < len) {
		ssize_t r = read(c, s->cmd + got, len - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	s->fk = fk;
	s->sock = c;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (got < len || pthread_create(&s->th, NULL, session_main, s) != 0) {
		for (int k = 0; k < 3; k++)
			close(s->fds[k]);
		close(s->stop[0]);
		close(s->stop[1]);
		close(c);
		free(s->cmd);
		free(s);
		return;
	}
	pthread_mutex_lock(&fk->lock);
	s->next = fk->sessions;
	fk->sessions = s;
	pthread_mutex_unlock(&fk->lock);
}

static void *fk_listen(void *arg)
{
	struct fk *fk = arg;
	struct pollfd p[2] = { { .fd = fk->lsock, .events = POLLIN },
			       { .fd = fk->stop[0], .events = POLLIN } };

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents)
			fk_accept(fk);
	}
	return NULL;
}

static void err_set(struct mg_error *err, int errnum, const char *fmt, const char *a)
{
	char what[300];

	if (!err)
		return;
	mg_error_clear(err);
	err->kind = MG_ERR_STREAM;
	err->errnum = errnum;
	snprintf(what, sizeof(what), "%s", a);
	snprintf(err->message, sizeof(err->message), fmt, what, strerror(errnum));
}

int mg_fakessh_run(struct mg_context *dest, struct mg_router *r, char *const argv[],
		   const struct mg_fakessh_opts *opts, int *ret_status, struct mg_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fk fk = { .r = r, .dest = dest, .lsock = -1, .stop = { -1, -1 },
			 .lock = PTHREAD_MUTEX_INITIALIZER };
	char dir[256], sock[PATH_MAX], ssh[PATH_MAX], exe[PATH_MAX];
	char *path_env = NULL, *sock_env = NULL, *ssh_env = NULL;
	const char *tmp = getenv("TMPDIR"), *path = getenv("PATH");
	double timeout = opts && opts->sz >= offsetof(struct mg_fakessh_opts, timeout) +
					    sizeof(opts->timeout) ? opts->timeout : 0;
	char **envp = NULL;
	size_t nenv = 0;
	ssize_t n;
	pid_t pid = -1;
	int status = 0, ret = 0, e, pidfd = -1;
	bool listening = false;

	if (!dest || !r || !argv || !argv[0]) {
		err_set(err, EINVAL, "invalid arguments to mg_fakessh_run%s: %s", "");
		return -EINVAL;
	}
	fk.dest_id = mg_context_remote_id(dest);
	if (snprintf(dir, sizeof(dir), "%s/mitogen-fakessh-XXXXXX", tmp && *tmp ? tmp : "/tmp") >=
	    (int)sizeof(dir))
		snprintf(dir, sizeof(dir), "/tmp/mitogen-fakessh-XXXXXX");
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0 || !mkdtemp(dir)) {
		e = errno;
		err_set(err, e, "fakessh: cannot make its directory %s: %s", dir);
		return -e;
	}
	exe[n] = '\0';
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	snprintf(ssh, sizeof(ssh), "%s/ssh", dir);
	if (strlen(sock) >= sizeof(sa.sun_path) || symlink(exe, ssh) < 0 ||
	    (fk.lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    pipe2(fk.stop, O_CLOEXEC) < 0) {
		e = errno ? errno : ENAMETOOLONG;
		err_set(err, e, "fakessh: cannot set up %s: %s", dir);
		ret = -e;
		goto out;
	}
	memcpy(sa.sun_path, sock, strlen(sock));
	if (bind(fk.lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fk.lsock, 64) < 0 ||
	    pthread_create(&fk.th, NULL, fk_listen, &fk) != 0) {
		e = errno;
		err_set(err, e, "fakessh: cannot listen on %s: %s", sock);
		ret = -e;
		goto out;
	}
	listening = true;
	/* The program's environment: ours, our ssh first on PATH. */
	while (environ[nenv])
		nenv++;
	envp = calloc(nenv + 4, sizeof(*envp));
	if (!envp || asprintf(&path_env, "PATH=%s%s%s", dir, path ? ":" : "", path ? path : "") < 0 ||
	    asprintf(&sock_env, "%s=%s", FAKESSH_SOCK_ENV, sock) < 0 ||
	    asprintf(&ssh_env, "%s=%s", FAKESSH_SSH_ENV, ssh) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	{
		size_t k = 0;

		for (size_t i = 0; i < nenv; i++)
			if (strncmp(environ[i], "PATH=", 5) &&
			    strncmp(environ[i], FAKESSH_SOCK_ENV "=", sizeof(FAKESSH_SOCK_ENV)) &&
			    strncmp(environ[i], FAKESSH_SSH_ENV "=", sizeof(FAKESSH_SSH_ENV)))
				envp[k++] = environ[i];
		envp[k++] = path_env;
		envp[k++] = sock_env;
		envp[k++] = ssh_env;
	}
	/* argv[0] found on the caller's PATH, not in our directory. */
	e = posix_spawnp(&pid, argv[0], NULL, NULL, argv, envp);
	if (e) {
		err_set(err, e, "fakessh: cannot run %s: %s", argv[0]);
		ret = -e;
		goto out;
	}
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (timeout > 0 && pidfd >= 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int pr;

		while ((pr = poll(&p, 1, (int)(timeout * 1000))) < 0 && errno == EINTR)
			;
		if (pr == 0) {
			kill(pid, SIGTERM);
			if (poll(&p, 1, 5000) == 0)
				kill(pid, SIGKILL);
			ret = -ETIMEDOUT;
			err_set(err, ETIMEDOUT, "fakessh: %s did not finish in time: %s", argv[0]);
			if (err)
				err->kind = MG_ERR_TIMEOUT;
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (ret_status)
		*ret_status = status;
out:
	if (pidfd >= 0)
		close(pidfd);
	if (listening) {
		(void)!write(fk.stop[1], "x", 1);
		pthread_join(fk.th, NULL);
	}
	/* Sessions end with their remote commands (the program is gone, so
	 * their stdin ends). */
	while (fk.sessions) {
		struct session *s = fk.sessions;

		fk.sessions = s->next;
		pthread_join(s->th, NULL);
		close(s->stop[0]);
		close(s->stop[1]);
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->cond);
		free(s->cmd);
		free(s);
	}
	if (fk.lsock >= 0)
		close(fk.lsock);
	if (fk.stop[0] >= 0) {
		close(fk.stop[0]);
		close(fk.stop[1]);
	}
	unlink(sock);
	unlink(ssh);
	rmdir(dir);
	free(path_env);
	free(sock_env);
	free(ssh_env);
	free(envp);
	return ret;
}
