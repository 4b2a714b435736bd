/* SPDX-License-Identifier: MIT */
/*
 * tree.h — process trees (docs/reliability.md): every context and every
 * command it runs can be found and ended, and is.
 *
 *  - An agent leads its own process group and is a child subreaper:
 *    whatever its commands leave behind (a double-forked daemon) stays
 *    below it, so its tree is exactly its descendants. Each command leads
 *    a session of its own.
 *  - Where a writable cgroup v2 is there, an agent moves into a cgroup of
 *    its own, <the cgroup it was born in>/mg.<pid>, before it starts its
 *    first process (a command, a child context): every process of its
 *    tree is born in it or below. A local or fork child's parent knows that
 *    name, so it can cgroup.kill the whole tree in one step even when the
 *    agent itself was killed, and removes the cgroup when it reaps the
 *    agent; an agent of ssh, sudo, su or doas removes its own. Made
 *    lazily: moving a process into a cgroup waits for an RCU grace period
 *    (milliseconds on a busy machine), which a context that never starts
 *    a process should not pay.
 *  - Ending a tree: SIGTERM to every descendant, TREE_GRACE_S for them to
 *    go, SIGKILL to whatever is left (and cgroup.kill), then wait until
 *    none is left. An agent does that before it exits, however it was told
 *    to go; its parent does it to what a dead child left in its cgroup.
 */
#ifndef AGENT_TREE_H
#define AGENT_TREE_H

#include <stdbool.h>
#include <sys/types.h>

/* Seconds between the SIGTERM and the SIGKILL that end a tree. */
#define TREE_GRACE_S 2.0
/* After the SIGKILL: how long an agent waits for its tree to be gone. */
#define TREE_KILL_WAIT_S 5.0

/* --- in an agent ---------------------------------------------------------- */

/*
 * First thing an agent does, while it has one thread: a process group of
 * its own (a session leader keeps its session), child subreaper, and the
 * eventfd that tree_wake_fd() returns.
 */
void tree_agent_init(void);
/*
 * Before tree_agent_init: stay in the process group we were started in
 * (our keeper left it, agent/keeper.h: what the program that started us
 * sends to that group is for us).
 */
void tree_agent_keep_group(void);
/* In a fork()ed child, before tree_agent_init: forget the parent's tree. */
void tree_reset_after_fork(void);
/*
 * From BOOT: may this agent have a cgroup of its own (not a tenant's
 * child: the sandbox puts it in the tenant's), and does it remove it at
 * exit (nobody else will: ssh, sudo, su, doas) or leave that to its
 * parent (local, fork)?
 */
void tree_cgroup_config(bool allowed, bool remove_at_exit);
/* Our parent is gone: nobody will remove our cgroup but us. */
void tree_cgroup_remove_at_exit(void);
/*
 * Before an agent starts a process: make <its cgroup>/mg.<pid> and move
 * in, once (later calls cost nothing), where it may and can. A process
 * that is not an agent never moves.
 */
void tree_cgroup_own(void);

/*
 * Start ending this process's tree: SIGTERM to every descendant, and the
 * grace starts. Once; later calls do nothing. Any thread (not a signal
 * handler). Returns how many processes got the SIGTERM.
 */
int tree_term_begin(void);
/* tree_term_begin has started (before its first SIGTERM). */
bool tree_ending(void);
/* tree_term_begin's SIGTERMs have gone out (tree_wake_fd is readable). */
bool tree_signalled(void);
/* When the grace ends (CLOCK_MONOTONIC seconds, mono_now()); 0: not ending. */
double tree_deadline(void);
/* Readable once tree_term_begin has run (never read: poll it). -1: none. */
int tree_wake_fd(void);
/* SIGKILL to every descendant and to what is in our own cgroup, now. */
void tree_kill_now(void);

struct tree_result {
	int ended;		/* processes that got our SIGTERM or SIGKILL */
	int killed;		/* of those, how many needed the SIGKILL */
	int left;		/* still there when we gave up waiting */
};

/*
 * End this process's tree and confirm it is gone: tree_term_begin, wait
 * until no descendant is left or the grace is over, then tree_kill_now and
 * wait again (TREE_KILL_WAIT_S); reaps every child, removes our own cgroup
 * and the files tree_tmpfile_add named. Blocks; one thread at a time.
 */
void tree_end(struct tree_result *ret);

/*
 * Reap children that exited and are nobody's business here: orphans that
 * came to us as subreaper. Children tree_child_watch named are left to
 * their owner. Cheap when there is nothing to reap (one waitid).
 */
void tree_reap_orphans(void);

/* --- in a parent (master or agent) --------------------------------------- */

/* pid is our child and its owner reaps it (tree_reap_orphans leaves it). */
void tree_child_watch(pid_t pid);
/*
 * Around starting a child that is in a session of its own from its first
 * instant (a pty's program) and may exit before its owner could watch it:
 * tree_reap_orphans waits from tree_spawn_begin until tree_spawn_end has
 * watched pid (<= 0: none was started), so it never reaps a child a
 * factory on another thread (mg.via.start) has just started.
 */
void tree_spawn_begin(void);
void tree_spawn_end(pid_t pid);
/* SIGKILL to the child and, in one step, to everything in its cgroup
 * (<our cgroup>/mg.<pid>, once it has made it). */
void tree_child_kill(pid_t pid);
/*
 * The child was reaped: forget it, and remove its cgroup. Returns 0 when
 * that is done (or there was none); 1 when processes were left in it: they
 * got SIGTERM, and tree_child_finish must follow after TREE_GRACE_S.
 */
int tree_child_reaped(pid_t pid);
/*
 * What a reaped child left: cgroup.kill, then remove its cgroup. Returns 0
 * when done, -EAGAIN when the processes have not gone yet (block: wait up to
 * TREE_KILL_WAIT_S for them; then leave the directory).
 */
int tree_child_finish(pid_t pid, bool block);

/* --- temporary files ------------------------------------------------------ */

/*
 * A temporary file that must not outlive this process: tree_end (the last
 * thing an agent does) removes it if it is still named here. Thread-safe;
 * at most a few at a time (-ENOSPC beyond).
 */
int tree_tmpfile_add(const char *path);
void tree_tmpfile_del(const char *path);

#endif
