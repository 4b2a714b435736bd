// SPDX-License-Identifier: MIT
/*
 * audit.c — the serving end of the audit trail (README, Audit).
 *
 * An audited context records every CALL_FUNCTION it serves: when, which
 * context, on whose authority (src_id and auth_id as the routers checked
 * them), which function, a SHA-256 of its arguments with every secret
 * replaced by "<secret>" (the arguments' JSON text, hashed as it is
 * written, so a large upload costs no copy: equal arguments give equal
 * digests, and a digest cannot be used to guess a password), the
 * status, the error if any, and the duration. The record goes to syslog
 * on this host (facility authpriv; the connection is made at boot, before
 * the sandbox could forbid it) and, as a map, to the master
 * (MG_HANDLE_AUDIT to context 0, core/audit.c), which writes it as a JSON
 * line. After the reply, and in batches written by a thread of their own
 * (docs/audit.md, 7): one writev and one message up a batch.
 *
 * The record is also chained into this context's own log on this host
 * (docs/audit.md): one file per agent process under this uid's log
 * directory (audit/tlog.c: /var/log/mitogen/audit for root,
 * ~/.local/state/mitogen/audit otherwise, $MITOGEN_AUDIT_DIR), opened at
 * boot before the sandbox, each line with its index and the RFC 6962
 * tree hash of the log so far; a checkpoint of it, signed with this
 * uid's key, goes into the log and up to the master, which witnesses it,
 * at the first record, every TLOG_CHECKPOINT_RECORDS records or at the
 * first record TLOG_CHECKPOINT_SECONDS after the last one, when asked
 * (mg.audit_checkpoint), and, marked final, when the agent ends. Every
 * record sent up carries its log, index and tree hash, so the master's
 * copy can be checked against the log and the log against the copy.
 *
 * Whether this context is audited is decided at boot, from the BOOT
 * message, by the same rule the parent applies to the greeting for
 * mg_context_is_privileged: the parent says so ("audit": asked for, below
 * an audited context, or reached through sudo/su/doas), or this process
 * runs as another uid than its parent on the same host
 * ("audit_unless_uid"), or as root on another ("audit_root").
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paths.h>

/* syslog.h names levels LOG_INFO and LOG_DEBUG too: ours go first. */
#include "core/log.h"
#undef LOG_DEBUG
#undef LOG_INFO
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <nettle/sha2.h>

#include "agent/agent.h"
#include "audit/tlog.h"
#include "core/broker.h"
#include "core/context.h"
#include "core/router.h"
#include "core/value.h"
#include "transports/transport.h"

/*
 * This host's syslog (docs/audit.md, 7): our own datagram socket to
 * /dev/log, made at boot (before the sandbox, which may forbid socket()),
 * and one sendmmsg() a batch, a datagram a record, in the format glibc's
 * syslog(3) writes. Not syslog(3): it sends one line a call, and where
 * /dev/log exists but nothing reads it (a container, a host whose daemon
 * is down) it makes a socket, fails to connect and closes it again on
 * every line: three syscalls a record. Here an unanswered /dev/log costs
 * one connect() a batch. A /dev/log that is a stream socket (rare:
 * syslog-ng's unix-stream) gets glibc's syslog(3), a line a call, as
 * before (slog_glibc).
 */
static bool use_syslog;
static int slog_fd = -1;
static bool slog_connected, slog_glibc;
static char host[256];		/* this host's name, read at boot */
/* Ours, read at the first record (after the sandbox, which may put us in
 * a user namespace; a fork boots again): two syscalls a record less. */
static bool self_known;
static int self_pid;
static unsigned self_uid;
static char ident[32];		/* "mitogen[PID]": as LOG_PID says, without its getpid() */

/* This context's chained log (docs/audit.md); fd -1: none (why says why). */
static struct {
	pthread_mutex_t lock;
	int fd;
	char path[4000];
	char origin[TLOG_NAME_MAX + 1];
	char why[4200];
	struct tlog_key key;
	char vkey[TLOG_VKEY_MAX];
	struct tlog_tree tree;
	uint64_t since_cp;		/* records since the last checkpoint */
	uint64_t ncp;			/* checkpoints made */
	uint64_t last_cp_ns;
	char *header;			/* record 0's line, sent up with the first batch */
} alog = { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1 };

/* A record on its way to syslog, the log and the master: what the call
 * left (the main thread), written as JSON text by the writer (rec_json). */
struct audit_pending {
	struct audit_pending *next;
	struct mg_value *argv;		/* mg.run's, redacted, or NULL */
	struct mg_value *detail;	/* mg_call_audit_detail's map, or NULL */
	struct timespec queued;		/* CLOCK_REALTIME, when queued */
	uint64_t queued_ns, start_ns, end_ns;
	uint32_t src_id, auth_id;
	char digest[65];
	char *error;			/* NULL: ok; else in text, after function */
	char text[];			/* function '\0' error '\0' */
};

/*
 * The records served but not yet written (docs/audit.md, 7): the main
 * thread queues each after its reply; a thread of their own (started at
 * the first record, so after the sandbox, which it inherits) writes them
 * in batches: when AUDIT_BATCH_RECORDS are queued or AUDIT_BATCH_SECONDS
 * after the first of a batch, and all of them before a checkpoint is made
 * on request and before the final one (audit_sync). Not the broker
 * thread: between calls the main thread holds the broker's role to read
 * the next call itself, and would run the batch first.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t more;		/* the writer waits: records, a sync, the end */
	pthread_cond_t done;		/* audit_sync waits: all written */
	struct audit_pending *head, **tail;
	unsigned n;
	unsigned syncs;			/* audit_sync callers waiting */
	bool running, busy, stop;
	pthread_t thread;
} pend = { .lock = PTHREAD_MUTEX_INITIALIZER, .more = PTHREAD_COND_INITIALIZER,
	   .done = PTHREAD_COND_INITIALIZER, .tail = &pend.head };

static bool flag(const struct mg_value *boot, const char *key)
{
	const struct mg_value *v = mg_map_get(boot, key);

	return v && v->type == MG_BOOL && v->b;
}

static void utc_stamp(char *buf, size_t size, const struct timespec *now, uint64_t ago_ns);
static void slog_open(void);
static void alog_open(void);
static void audit_batch(struct mg_router *r, struct audit_pending *list, bool final);
static void audit_sync(struct mg_router *r);
static struct audit_pending *pend_take_locked(void);

/*
 * Records are written and sent up in batches (docs/audit.md, 7): at most
 * this many, and at most this long after the first of a batch was served.
 * What a crash of the agent can lose beyond what was written: one batch.
 */
#define AUDIT_BATCH_RECORDS 64
#define AUDIT_BATCH_SECONDS 0.05

bool agent_audit_boot(struct mg_router *r, const struct mg_value *boot)
{
	const struct mg_value *uid = mg_map_get(boot, "audit_unless_uid");

	r->audited = flag(boot, "audit") ||
		     (uid && uid->type == MG_INT && uid->i != (int64_t)getuid()) ||
		     (flag(boot, "audit_root") && getuid() == 0);
	if (r->audited) {
		gethostname(host, sizeof(host) - 1);
		self_known = false;
		snprintf(ident, sizeof(ident), "mitogen[%d]", (int)getpid());
	}
	if (r->audited)
		slog_open();
	/* Before the sandbox: the key and the directory may need making. */
	if (r->audited)
		alog_open();
	return r->audited;
}

static void hash_piece(void *arg, const char *s, size_t n)
{
	sha256_update(arg, n, (const uint8_t *)s);
}

/* Hex SHA-256 of the JSON text of v, secrets redacted. */
static void args_digest(const struct mg_value *v, char out[65])
{
	struct sha256_ctx c;

	sha256_init(&c);
	value_json_stream(v, hash_piece, &c);
	sha256_hex_digest(&c, out);
}

/* s for a syslog line: at most size - 1 bytes, control characters (and
 * spaces, unless spaces) as '?': a name cannot forge a field, nor any
 * text a line. */
static const char *plain(const char *s, char *buf, size_t size, bool spaces)
{
	size_t i;

	for (i = 0; s && s[i] && i + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c < ' ' || c == 0x7f || (c == ' ' && !spaces) ? '?' : (char)c;
	}
	buf[i] = '\0';
	return buf;
}

uint64_t agent_audit_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Now less ago_ns, as "2026-12-03T15:40:01.123456Z". The date and time to
 * the second are kept per thread: the records of a batch mostly share it
 * (gmtime_r and strftime cost more than the rest of a record's text).
 */
static void utc_stamp(char *buf, size_t size, const struct timespec *now, uint64_t ago_ns)
{
	static __thread time_t last = -1;
	static __thread char sec[32];
	struct timespec ts;
	unsigned us;

	if (now)
		ts = *now;
	else
		clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec -= (time_t)(ago_ns / 1000000000u);
	ts.tv_nsec -= (long)(ago_ns % 1000000000u);
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += 1000000000L;
		ts.tv_sec--;
	}
	if (ts.tv_sec != last) {
		struct tm tm;

		gmtime_r(&ts.tv_sec, &tm);
		strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
		last = ts.tv_sec;
	}
	us = (unsigned)(ts.tv_nsec / 1000) % 1000000;
	snprintf(buf, size, "%.20s.%06uZ", sec, us);
}

/* --- a batch's text ---------------------------------------------------- */

/*
 * A growing buffer of JSON text. The writer writes a record's line here
 * directly from what the call left (no map, no second encoding): the same
 * bytes mg_value_to_json_alloc wrote for the map before (core/value_json.c:
 * compact, keys in the same order, strings escaped the same way).
 */
struct jbuf {
	char *p;
	size_t n, cap;
	bool nomem;
};

static bool jb_room(struct jbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->nomem)
		return false;
	if (b->n + more <= b->cap)
		return true;
	cap = b->cap ? b->cap : 16384;
	while (cap < b->n + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->nomem = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
	if (jb_room(b, n)) {
		memcpy(b->p + b->n, s, n);
		b->n += n;
	}
}

#define JB_LIT(b, lit) jb_put(b, lit, sizeof(lit) - 1)

/* A JSON string as core/value_json.c writes one (NULL: null). */
static void jb_str(struct jbuf *b, const char *s)
{
	size_t n, i;

	if (!s) {
		JB_LIT(b, "null");
		return;
	}
	n = strlen(s);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			break;
	}
	if (i == n) {
		if (jb_room(b, n + 2)) {
			b->p[b->n] = '"';
			memcpy(b->p + b->n + 1, s, n);
			b->p[b->n + n + 1] = '"';
			b->n += n + 2;
		}
		return;
	}
	/* Anything to escape: the library's own escaping, into place. */
	{
		struct mg_value v = { .type = MG_STR, .len = (uint32_t)n, .str = s };
		int len = mg_value_to_json(&v, NULL, 0);

		if (len < 0 || !jb_room(b, (size_t)len + 1)) {
			b->nomem = true;
			return;
		}
		mg_value_to_json(&v, b->p + b->n, (size_t)len + 1);
		b->n += (size_t)len;
	}
}

static void jb_int(struct jbuf *b, int64_t i)
{
	char tmp[24];
	size_t n = sizeof(tmp);
	uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;

	do
		tmp[--n] = (char)('0' + u % 10);
	while ((u /= 10));
	if (i < 0)
		tmp[--n] = '-';
	jb_put(b, tmp + n, sizeof(tmp) - n);
}

/* Any value, through the library's encoder (mg.run's argv: rare). */
static void jb_value(struct jbuf *b, const struct mg_value *v)
{
	int len = mg_value_to_json(v, NULL, 0);

	if (len < 0 || !jb_room(b, (size_t)len + 1)) {
		b->nomem = true;
		return;
	}
	mg_value_to_json(v, b->p + b->n, (size_t)len + 1);
	b->n += (size_t)len;
}

/*
 * p's record as JSON text, appended to b: the members README's Audit
 * section lists, in the order the map had them. false: no memory.
 */
static bool rec_json(struct jbuf *b, struct audit_pending *p)
{
	char stamp[48];

	/* When the call started. */
	utc_stamp(stamp, sizeof(stamp), &p->queued, p->queued_ns - p->start_ns);
	JB_LIT(b, "{\"time\":");
	jb_str(b, stamp);
	JB_LIT(b, ",\"context_id\":");
	jb_int(b, mg_context_id());
	JB_LIT(b, ",\"context\":");
	jb_str(b, mg_context_name_self());
	JB_LIT(b, ",\"host\":");
	jb_str(b, host);
	JB_LIT(b, ",\"pid\":");
	jb_int(b, self_pid);
	JB_LIT(b, ",\"uid\":");
	jb_int(b, self_uid);
	JB_LIT(b, ",\"src_id\":");
	jb_int(b, p->src_id);
	JB_LIT(b, ",\"auth_id\":");
	jb_int(b, p->auth_id);
	JB_LIT(b, ",\"function\":");
	jb_str(b, p->text);
	JB_LIT(b, ",\"args_sha256\":");
	jb_str(b, *p->digest ? p->digest : NULL);
	if (p->argv) {
		JB_LIT(b, ",\"argv\":");
		jb_value(b, p->argv);
	}
	if (p->detail) {
		JB_LIT(b, ",\"detail\":");
		jb_value(b, p->detail);
	}
	JB_LIT(b, ",\"status\":");
	jb_str(b, p->error ? "error" : "ok");
	if (p->error) {
		JB_LIT(b, ",\"error\":");
		jb_str(b, p->error);
	}
	JB_LIT(b, ",\"duration_us\":");
	jb_int(b, (int64_t)((p->end_ns - p->start_ns) / 1000));
	JB_LIT(b, "}");
	mg_value_free(p->argv);
	p->argv = NULL;
	mg_value_free(p->detail);
	p->detail = NULL;
	return !b->nomem;
}

/* Connect slog_fd to /dev/log; errno kept for the caller. */
static bool slog_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", _PATH_LOG);
	slog_connected = connect(slog_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	return slog_connected;
}

/* At boot: the socket, connected if something reads /dev/log. A fork
 * boots again and makes its own. */
static void slog_open(void)
{
	if (slog_fd >= 0)
		close(slog_fd);
	slog_fd = -1;
	slog_connected = slog_glibc = use_syslog = false;
	if (access(_PATH_LOG, W_OK) < 0)
		return;
	slog_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (slog_fd < 0)
		return;
	use_syslog = true;
	if (!slog_connect() && errno == EPROTOTYPE) {
		close(slog_fd);
		slog_fd = -1;
		openlog(ident, LOG_NDELAY, LOG_AUTHPRIV);
		slog_glibc = true;
	}
}

/*
 * A record's syslog message into buf (README's format; the error last:
 * the rest of the line is fields without spaces). Returns its length.
 */
static size_t slog_message(const struct audit_pending *p, char *buf, size_t size)
{
	char name[128], fn[128], why[256];
	int n;

	n = snprintf(buf, size, "audit: context=%u name=%s src_id=%u auth_id=%u uid=%u "
		     "function=%s args_sha256=%s status=%s duration_us=%llu%s%s",
		     mg_context_id(), plain(mg_context_name_self(), name, sizeof(name), false),
		     (unsigned)p->src_id, (unsigned)p->auth_id, self_uid,
		     plain(p->text, fn, sizeof(fn), false), *p->digest ? p->digest : "-",
		     p->error ? "error" : "ok",
		     (unsigned long long)((p->end_ns - p->start_ns) / 1000),
		     p->error ? " error=" : "", p->error ? plain(p->error, why, sizeof(why), true) : "");
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* Datagrams sent in one sendmmsg(), and the room for one. */
#define SLOG_CHUNK 64
#define SLOG_LINE 1024

/* Send n datagrams; a daemon that went away (or was not there at boot)
 * gets one connect() again a batch (*retried: it had it). */
static void slog_send(struct mmsghdr *mm, unsigned n, bool *retried)
{
	unsigned done = 0;

	if (!slog_connected) {
		if (*retried || !slog_connect())
			return;
		*retried = true;
	}
	while (done < n) {
		int k = sendmmsg(slog_fd, mm + done, n - done, MSG_NOSIGNAL);

		if (k > 0) {
			done += (unsigned)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && !*retried &&
		    (errno == ECONNREFUSED || errno == ENOTCONN || errno == ECONNRESET)) {
			*retried = true;
			if (slog_connect())
				continue;
		}
		slog_connected = slog_connected && !(k < 0 && errno == ECONNREFUSED);
		return;
	}
}

/*
 * The batch's syslog lines: a datagram a record, in one sendmmsg() per
 * SLOG_CHUNK records, stamped as syslog(3) would stamp them now. Where
 * nothing reads /dev/log (the one connect() a batch is refused), the
 * lines are not made: no one would receive them.
 */
static void slog_batch(struct audit_pending *list)
{
	char (*lines)[SLOG_LINE];
	struct mmsghdr mm[SLOG_CHUNK];
	struct iovec iov[SLOG_CHUNK];
	char head[96], stamp[32];
	size_t hlen;
	unsigned n = 0;
	time_t now;
	struct tm tm;
	bool retried = false;

	if (slog_glibc) {
		for (struct audit_pending *p = list; p; p = p->next) {
			char msg[SLOG_LINE];

			slog_message(p, msg, sizeof(msg));
			syslog(LOG_NOTICE, "%s", msg);
		}
		return;
	}
	if (!slog_connected) {
		retried = true;
		if (!slog_connect())
			return;
	}
	now = time(NULL);
	lines = malloc(SLOG_CHUNK * sizeof(*lines));
	if (!lines)
		return;
	/* glibc's header: "<PRI>Mmm dd hh:mm:ss TAG: " (TAG is mitogen[PID]). */
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%h %e %T", &tm);
	hlen = (size_t)snprintf(head, sizeof(head), "<%d>%s %s: ", LOG_AUTHPRIV | LOG_NOTICE,
				stamp, ident);
	for (struct audit_pending *p = list; p; p = p->next) {
		memcpy(lines[n], head, hlen);
		iov[n] = (struct iovec){ lines[n],
					 hlen + slog_message(p, lines[n] + hlen, SLOG_LINE - hlen) };
		mm[n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[n], .msg_iovlen = 1 } };
		if (++n == SLOG_CHUNK) {
			slog_send(mm, n, &retried);
			n = 0;
		}
	}
	if (n)
		slog_send(mm, n, &retried);
	free(lines);
}

/* --- the chained log on this host -------------------------------------- */

/* One line and its newline in one write (O_APPEND: whole lines). */
static int alog_write(const char *line)
{
	struct iovec iov[2] = { { (void *)line, strlen(line) }, { "\n", 1 } };
	ssize_t n;

	do
		n = writev(alog.fd, iov, 2);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)(iov[0].iov_len + 1) ? 0 : -EIO;
}

/*
 * Open this process's log and write record 0, which says whose log it is.
 * Why here, as this uid, and refusing a directory or key others can
 * write: only this uid (and root) may be able to change what is in it.
 * Fails open: a context whose log cannot be made still serves, its
 * records still go up (without a chain), and why is logged.
 */
static void alog_open(void)
{
	char dir[3900], stem[64], stamp[48], name[TLOG_NAME_MAX + 1], *json, *line;
	struct timespec ts;
	struct tm tm;
	struct mg_value *h;

	/*
	 * A fork of an audited agent (mg_fork) has a copy of its parent's
	 * state: the parent's log (whose fd it must not write), tree and key,
	 * and a lock another thread may have held at the fork. Single-threaded
	 * here as far as the log goes: start afresh.
	 */
	pthread_mutex_init(&alog.lock, NULL);
	pthread_mutex_init(&pend.lock, NULL);
	pthread_cond_init(&pend.more, NULL);
	pthread_cond_init(&pend.done, NULL);
	pend.running = pend.busy = pend.stop = false;
	pend.syncs = 0;
	while (pend.head) {
		struct audit_pending *next = pend.head->next;

		mg_value_free(pend.head->argv);
		mg_value_free(pend.head->detail);
		free(pend.head);
		pend.head = next;
	}
	pend.tail = &pend.head;
	pend.n = 0;
	if (alog.fd >= 0)
		close(alog.fd);
	free(alog.header);
	alog.fd = -1;
	alog.header = NULL;
	alog.since_cp = alog.ncp = alog.last_cp_ns = 0;
	memset(&alog.tree, 0, sizeof(alog.tree));
	explicit_bzero(&alog.key, sizeof(alog.key));
	if (tlog_log_dir(dir, sizeof(dir)) < 0) {
		snprintf(alog.why, sizeof(alog.why), "no log directory (HOME unset)");
		goto fail;
	}
	if (tlog_dir_check(dir, true, alog.why, sizeof(alog.why)) < 0)
		goto fail;
	tlog_key_name(name);
	if (tlog_key_load(&alog.key, name, alog.why, sizeof(alog.why)) < 0)
		goto fail;
	tlog_key_vkey(&alog.key, alog.vkey);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stem, sizeof(stem), "%04d%02d%02dT%02d%02d%02dZ-%d", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)getpid());
	snprintf(alog.path, sizeof(alog.path), "%s/%.60s.log", dir, stem);
	snprintf(alog.origin, sizeof(alog.origin), "%.130s/%.60s", name, stem);
	alog.fd = open(alog.path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
		       0600);
	if (alog.fd < 0) {
		snprintf(alog.why, sizeof(alog.why), "%s: %s", alog.path, strerror(errno));
		goto fail;
	}
	utc_stamp(stamp, sizeof(stamp), NULL, 0);
	h = mg_map();
	mg_map_set(h, "opened", mg_str(stamp));
	mg_map_set(h, "context_id", mg_int(mg_context_id()));
	mg_map_set(h, "context", mg_str(mg_context_name_self()));
	mg_map_set(h, "host", mg_str(host));
	mg_map_set(h, "pid", mg_int(getpid()));
	mg_map_set(h, "uid", mg_int(getuid()));
	mg_map_set(h, "vkey", mg_str(alog.vkey));
	json = h ? mg_value_to_json_alloc(h) : NULL;
	line = json ? tlog_chain_line(&alog.tree, alog.origin, json, strlen(json)) : NULL;
	if (!line || alog_write(line) < 0) {
		snprintf(alog.why, sizeof(alog.why), "%s: cannot write", alog.path);
		close(alog.fd);
		alog.fd = -1;
		free(json);
		free(line);
		mg_value_free(h);
		goto fail;
	}
	free(json);
	mg_value_free(h);
	alog.header = line;
	return;
fail:
	log_msg(MG_LOG_WARNING, "audit: no audit log on this host: %s", alog.why);
}

static void alog_send(struct mg_router *r, struct mg_value *v)
{
	struct mg_message *up = v ? mg_message_new(0, MG_HANDLE_AUDIT, v) : NULL;

	if (!up) {
		log_msg(MG_LOG_ERROR, "audit: out of memory: records not sent to the master");
		return;
	}
	up->meta.src_id = up->meta.auth_id = r->id;
	mg_router_route(r, up);
}

/*
 * Up to the master in one message: the batch's lines (records and
 * checkpoints, JSON text, in order), newline-separated in one string,
 * kept under one wire record (the AUDIT handle takes no more). The master
 * chains these bytes as they are, after checking each is one JSON object
 * (core/audit.c).
 */
#define AUDIT_UP_BYTES 32768

static void up_send(struct mg_router *r, struct jbuf *up)
{
	if (up->nomem)
		log_msg(MG_LOG_ERROR, "audit: out of memory: records not sent to the master");
	else if (up->n)
		alog_send(r, mg_strn(up->p, up->n - 1));
	up->n = 0;
	up->nomem = false;
}

static void up_line(struct mg_router *r, struct jbuf *up, const char *line, size_t len)
{
	if (up->n && up->n + len + 1 > AUDIT_UP_BYTES)
		up_send(r, up);
	jb_put(up, line, len);
	jb_put(up, "\n", 1);
}

/* Sign a checkpoint of the log, write it there (or, with lines, append its
 * line to the batch's lines, which the caller writes in the same write
 * after the records it covers) and send it up (a line of up, or alone);
 * the note into out (may be NULL). Lock held. */
static void alog_checkpoint_locked(struct mg_router *r, bool final, char out[TLOG_NOTE_MAX],
				   struct jbuf *up, struct jbuf *lines)
{
	char note[TLOG_NOTE_MAX], *line;
	size_t len = tlog_checkpoint_sign(&alog.key, alog.origin, &alog.tree, final, note);
	struct mg_value *cp;

	line = tlog_checkpoint_line(note, len);
	if (line && lines && jb_room(lines, strlen(line) + 1)) {
		jb_put(lines, line, strlen(line));
		jb_put(lines, "\n", 1);
	} else if (!line || alog_write(line) < 0) {
		log_msg(MG_LOG_ERROR, "audit: cannot write a checkpoint to %s", alog.path);
	}
	free(line);
	alog.since_cp = 0;
	alog.ncp++;
	alog.last_cp_ns = agent_audit_now();
	if (out)
		memcpy(out, note, len + 1);
	cp = mg_map();
	mg_map_set(cp, "checkpoint", mg_str(note));
	mg_map_set(cp, "log", mg_str(alog.origin));
	mg_map_set(cp, "vkey", mg_str(alog.vkey));
	mg_map_set(cp, "file", mg_str(alog.path));
	if (cp && up) {
		char *json = mg_value_to_json_alloc(cp);

		if (json)
			up_line(r, up, json, strlen(json));
		else
			log_msg(MG_LOG_ERROR, "audit: out of memory: a checkpoint not sent up");
		free(json);
		mg_value_free(cp);
	} else if (cp) {
		alog_send(r, cp);
	}
}

/* The log's end: its final checkpoint (unless the last batch carried it:
 * signed), the file closed, the key forgotten. Lock held. */
static void alog_close_locked(struct mg_router *r, bool signed_final)
{
	if (alog.fd >= 0) {
		if (!signed_final)
			alog_checkpoint_locked(r, true, NULL, NULL, NULL);
		close(alog.fd);
		alog.fd = -1;
	}
	free(alog.header);
	alog.header = NULL;
	explicit_bzero(&alog.key, sizeof(alog.key));
}

/*
 * At the agent's end, on its main thread: every record still queued, then
 * the final checkpoint, in one batch (docs/audit.md, 7): one write to the
 * log (the records, then the checkpoint that covers them) and one message
 * up. Before, the writer thread wrote that batch (with a checkpoint of its
 * own when it was the first) and the broker thread then signed the final
 * one: two signatures, two writes, two messages and three hand-offs
 * between threads on the way to the end of every short-lived audited
 * context. The writer, if busy with a batch, finishes it first (the log
 * keeps the order the calls were served in); it is joined after ours.
 */
void agent_audit_close(struct mg_router *r)
{
	struct audit_pending *list;
	bool running;

	pthread_mutex_lock(&pend.lock);
	pend.stop = true;
	while (pend.busy)
		pthread_cond_wait(&pend.done, &pend.lock);
	list = pend_take_locked();
	running = pend.running;
	pthread_cond_signal(&pend.more);
	pthread_mutex_unlock(&pend.lock);
	if (list) {
		audit_batch(r, list, true);
	} else {
		pthread_mutex_lock(&alog.lock);
		alog_close_locked(r, false);
		pthread_mutex_unlock(&alog.lock);
	}
	if (running)
		pthread_join(pend.thread, NULL);
	pend.running = false;
	/* A record queued after this (none is: calls are served on the
	 * main thread, which is here) goes up unchained, as before. */
	audit_sync(r);
}

struct audit_cp_req {
	struct mg_router *r;
	char note[TLOG_NOTE_MAX];
	int rc;
};

static void audit_cp_run(void *arg)
{
	struct audit_cp_req *q = arg;

	pthread_mutex_lock(&alog.lock);
	q->rc = alog.fd >= 0 ? 0 : -ENOENT;
	if (alog.fd >= 0)
		alog_checkpoint_locked(q->r, false, q->note, NULL, NULL);
	pthread_mutex_unlock(&alog.lock);
}

/*
 * mg.audit_checkpoint() -> {note, log, file, vkey}: sign a checkpoint of
 * this context's log now (it is sent up and witnessed like the others).
 */
static int audit_checkpoint_fn(struct mg_call *call, const struct mg_value *args,
			       struct mg_value **ret)
{
	struct audit_cp_req *q;
	struct mg_router *r = mg_call_router(call);
	int rc;

	if (!r->audited)
		return mg_call_fail(call, EPERM, "this context is not audited");
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->r = r;
	/* Every record served before this call first: the checkpoint
	 * covers them. (Here: only this thread queues records.) */
	audit_sync(r);
	if (broker_call(r->broker, audit_cp_run, q, true) < 0)
		audit_cp_run(q);
	if (q->rc < 0) {
		free(q);
		pthread_mutex_lock(&alog.lock);
		rc = mg_call_fail(call, ENOENT, "this context keeps no audit log: %s", alog.why);
		pthread_mutex_unlock(&alog.lock);
		return rc;
	}
	*ret = mg_map();
	mg_map_set(*ret, "note", mg_str(q->note));
	pthread_mutex_lock(&alog.lock);
	mg_map_set(*ret, "log", mg_str(alog.origin));
	mg_map_set(*ret, "file", mg_str(alog.path));
	mg_map_set(*ret, "vkey", mg_str(alog.vkey));
	pthread_mutex_unlock(&alog.lock);
	free(q);
	return *ret ? 0 : -ENOMEM;
}
MG_EXPORT_AS("mg.audit_checkpoint", audit_checkpoint_fn);

/* Most verifier keys mg.audit_keys returns (the current one, retired ones). */
#define AUDIT_KEYS_MAX 64

/*
 * mg.audit_keys() -> [VKEY...]: this uid's verifier keys on this host,
 * the signing key's first (made when missing: the first to ask makes it,
 * docs/audit.md 4), then the retired ones: `mitogen audit keys -t`.
 */
static int audit_keys_fn(struct mg_call *call, const struct mg_value *args, struct mg_value **ret)
{
	char (*keys)[TLOG_VKEY_MAX] = calloc(AUDIT_KEYS_MAX, TLOG_VKEY_MAX), why[512];
	int n;

	if (!keys)
		return -ENOMEM;
	n = tlog_vkeys(keys, AUDIT_KEYS_MAX, why, sizeof(why));
	if (n < 0) {
		free(keys);
		return mg_call_fail(call, -n, "no audit key here: %s", why);
	}
	*ret = mg_list();
	for (int i = 0; *ret && i < n; i++)
		mg_list_append(*ret, mg_str(keys[i]));
	free(keys);
	return *ret ? 0 : -ENOMEM;
}
MG_EXPORT_AS("mg.audit_keys", audit_keys_fn);

/* Logs larger than this together are not fetched in one call. */
#define AUDIT_FETCH_MAX ((size_t)96 << 20)

/*
 * mg.audit_files() -> {vkey, dir, files: [{name, data}]}: this uid's audit
 * logs on this host, for `mitogen audit fetch`. Only *.log files of the
 * directory, read without following links.
 */
static int audit_files_fn(struct mg_call *call, const struct mg_value *args,
			  struct mg_value **ret)
{
	char dir[4096], why[512], path[4400];
	struct mg_value *files;
	struct dirent *de;
	size_t total = 0;
	DIR *d;

	if (tlog_log_dir(dir, sizeof(dir)) < 0 || tlog_dir_check(dir, false, why, sizeof(why)) < 0)
		return mg_call_fail(call, ENOENT, "no audit log directory here: %s", why);
	d = opendir(dir);
	if (!d)
		return mg_call_fail(call, errno, "%s: %s", dir, strerror(errno));
	files = mg_list();
	while (files && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		struct stat st;
		char *buf;
		int fd;

		if (n < 5 || strcmp(de->d_name + n - 4, ".log"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    total + (size_t)st.st_size > AUDIT_FETCH_MAX ||
		    !(buf = malloc((size_t)st.st_size + 1))) {
			close(fd);
			continue;
		}
		n = 0;
		for (ssize_t got; n < (size_t)st.st_size &&
				  (got = read(fd, buf + n, (size_t)st.st_size - n)) > 0;)
			n += (size_t)got;
		close(fd);
		total += n;
		{
			struct mg_value *f = mg_map();

			mg_map_set(f, "name", mg_str(de->d_name));
			mg_map_set(f, "data", mg_bytes(buf, n));
			mg_list_append(files, f);
		}
		free(buf);
	}
	closedir(d);
	*ret = mg_map();
	mg_map_set(*ret, "dir", mg_str(dir));
	pthread_mutex_lock(&alog.lock);
	mg_map_set(*ret, "vkey", alog.fd >= 0 ? mg_str(alog.vkey) : mg_nil());
	pthread_mutex_unlock(&alog.lock);
	mg_map_set(*ret, "files", files);
	return *ret ? 0 : -ENOMEM;
}
MG_EXPORT_AS("mg.audit_files", audit_files_fn);

/* argv of mg.run/mg.run_stream for the record: in clear, but every
 * element the caller sent as a secret written "<secret>". */
static struct mg_value *argv_redacted(const struct mg_value *v)
{
	struct mg_value *list;

	if (!v || v->type != MG_LIST)
		return mg_nil();
	list = mg_list();
	for (uint32_t i = 0; list && i < v->len; i++) {
		const struct mg_value *it = &v->items[i];

		mg_list_append(list, it->type == MG_STR ? mg_str(it->str)
				     : mg_str(it->type == MG_SECRET ? "<secret>" : "<not a string>"));
	}
	return list;
}

/* All of buf into the log (O_APPEND: one write, whole lines). */
static int alog_write_all(const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(alog.fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EIO;
		/* Short (a full disk): go on from where it stopped. */
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Write a batch, in the order the calls were served: a syslog line each,
 * the chained lines in one write, a checkpoint when one is due, and one
 * message up (record 0 when it is the first batch, the records, the
 * checkpoint: the same lines, as text). Each record's line is written
 * once, straight from what the call left, hashed once for the log, and
 * sent up as these bytes (docs/audit.md, 7). The checkpoint's line goes
 * into the same write as the records it covers. final: the agent's last
 * batch; its checkpoint is the final one, and the log is closed.
 */
static void audit_batch(struct mg_router *r, struct audit_pending *list, bool final)
{
	struct jbuf lines = { 0 }, up = { 0 };
	uint64_t first, last_end = 0;

	if (use_syslog)
		slog_batch(list);
	pthread_mutex_lock(&alog.lock);
	/* Record 0 goes up with the first batch: by then the master knows
	 * this context is audited. */
	if (alog.fd >= 0 && alog.header) {
		up_line(r, &up, alog.header, strlen(alog.header));
		free(alog.header);
		alog.header = NULL;
	}
	first = alog.tree.size;
	for (struct audit_pending *p = list; p; p = p->next) {
		size_t start = lines.n, len;

		last_end = p->end_ns;
		if (!rec_json(&lines, p) ||
		    (alog.fd >= 0 && !jb_room(&lines, TLOG_SUFFIX_MAX))) {
			log_msg(MG_LOG_ERROR, "audit: out of memory: a record lost");
			lines.n = start;
			lines.nomem = false;
			continue;
		}
		len = lines.n - start;
		if (alog.fd >= 0) {
			uint8_t leaf[TLOG_HASH];

			tlog_leaf_hash(lines.p + start, len, leaf);
			len = tlog_chain_suffix(&alog.tree, alog.origin, leaf, lines.p + start, len);
			alog.since_cp++;
		}
		up_line(r, &up, lines.p + start, len);
		lines.n = start + len;
		jb_put(&lines, "\n", 1);
	}
	/* The first batch, every N records, the first batch T seconds after
	 * the last checkpoint, and the last batch (its checkpoint final). */
	if (alog.fd >= 0 && (final || alog.ncp == 0 || alog.since_cp >= TLOG_CHECKPOINT_RECORDS ||
			     last_end - alog.last_cp_ns >= TLOG_CHECKPOINT_SECONDS * 1000000000ull))
		alog_checkpoint_locked(r, final, NULL, &up, &lines);
	if (alog.fd >= 0 && lines.n && alog_write_all(lines.p, lines.n) < 0)
		log_msg(MG_LOG_ERROR, "audit: cannot write records %llu-%llu to %s",
			(unsigned long long)first, (unsigned long long)alog.tree.size - 1, alog.path);
	free(lines.p);
	up_send(r, &up);
	if (final)
		alog_close_locked(r, true);
	pthread_mutex_unlock(&alog.lock);
	free(up.p);
	while (list) {
		struct audit_pending *next = list->next;

		free(list);
		list = next;
	}
}

/* Take the queued records. pend.lock held. */
static struct audit_pending *pend_take_locked(void)
{
	struct audit_pending *list = pend.head;

	pend.head = NULL;
	pend.tail = &pend.head;
	pend.n = 0;
	return list;
}

static void *audit_writer(void *arg)
{
	struct mg_router *r = arg;

	pthread_mutex_lock(&pend.lock);
	for (;;) {
		struct audit_pending *list;

		while (!pend.head && !pend.stop)
			pthread_cond_wait(&pend.more, &pend.lock);
		if (pend.head && pend.n < AUDIT_BATCH_RECORDS && !pend.syncs && !pend.stop) {
			struct timespec until;

			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_nsec += (long)(AUDIT_BATCH_SECONDS * 1e9);
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			while (pend.n < AUDIT_BATCH_RECORDS && !pend.syncs && !pend.stop &&
			       pthread_cond_timedwait(&pend.more, &pend.lock, &until) != ETIMEDOUT)
				;
		}
		list = pend_take_locked();
		pend.busy = true;
		pthread_mutex_unlock(&pend.lock);
		if (list)
			audit_batch(r, list, false);
		pthread_mutex_lock(&pend.lock);
		pend.busy = false;
		pthread_cond_broadcast(&pend.done);
		if (pend.stop && !pend.head)
			break;
	}
	pthread_mutex_unlock(&pend.lock);
	return NULL;
}

/* Return once every record queued so far is written and sent up. */
static void audit_sync(struct mg_router *r)
{
	struct audit_pending *list = NULL;

	pthread_mutex_lock(&pend.lock);
	if (pend.running) {
		pend.syncs++;
		pthread_cond_signal(&pend.more);
		while (pend.head || pend.busy)
			pthread_cond_wait(&pend.done, &pend.lock);
		pend.syncs--;
	} else {
		list = pend_take_locked();
	}
	pthread_mutex_unlock(&pend.lock);
	if (list)
		audit_batch(r, list, false);
}

void agent_audit_call(struct mg_router *r, const struct mg_message *msg, const char *function,
		      const struct mg_value *args, const char *error, uint64_t start_ns,
		      uint64_t end_ns, struct mg_value *detail)
{
	size_t flen = strlen(function ? function : ""), elen = error ? strlen(error) : 0;
	struct audit_pending *p;
	bool running;
	unsigned n;

	if (!self_known) {
		self_pid = (int)getpid();
		self_uid = (unsigned)getuid();
		self_known = true;
	}
	/* Only what the call leaves, here: the map is the writer's work. */
	p = malloc(sizeof(*p) + flen + 1 + elen + 1);
	if (!p) {
		mg_value_free(detail);
		return;
	}
	*p = (struct audit_pending){ .start_ns = start_ns, .end_ns = end_ns,
				     .src_id = msg->meta.src_id, .auth_id = msg->meta.auth_id,
				     .detail = detail };
	memcpy(p->text, function ? function : "", flen + 1);
	if (error) {
		p->error = p->text + flen + 1;
		memcpy(p->error, error, elen + 1);
	}
	/* Here: the arguments are freed when we return. */
	if (args)
		args_digest(args, p->digest);
	/* The command line in clear (docs/audit.md), secrets redacted. */
	if (function && args && args->type == MG_LIST) {
		if (!strcmp(function, "mg.run") && args->len >= 1)
			p->argv = argv_redacted(&args->items[0]);
		else if (!strcmp(function, "mg.run_stream") && args->len >= 2)
			p->argv = argv_redacted(&args->items[1]);
		/* A command run through fakessh is a command line as mg.run's:
		 * the shell's argv, as the service ran it. */
		else if (!strcmp(function, "mg.fakessh.exec") && args->len >= 1 &&
			 args->items[0].type == MG_STR)
			p->argv = MG_LIST(mg_str("sh"), mg_str("-c"), mg_str(args->items[0].str));
	}
	clock_gettime(CLOCK_REALTIME, &p->queued);
	p->queued_ns = agent_audit_now();
	pthread_mutex_lock(&pend.lock);
	*pend.tail = p;
	pend.tail = &p->next;
	n = ++pend.n;
	if (!pend.running && !pend.stop) {
		pthread_condattr_t ca;

		/* The batch's deadline on the monotonic clock. */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&pend.more, &ca);
		pthread_condattr_destroy(&ca);
		pend.running = pthread_create(&pend.thread, NULL, audit_writer, r) == 0;
	}
	/* One wake-up a batch (none when the writer is not waiting). */
	if (pend.running && (n == 1 || n == AUDIT_BATCH_RECORDS))
		pthread_cond_signal(&pend.more);
	running = pend.running;
	pthread_mutex_unlock(&pend.lock);
	/* No thread for it: write it here. */
	if (!running)
		audit_sync(r);
}
