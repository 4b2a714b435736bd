/* SPDX-License-Identifier: MIT */
/*
 * keeper.h — the keeper of an agent that has no cgroup its parent holds
 * (one started by a first stage: ssh, sudo, su, doas, containers; see
 * docs/reliability.md, "The keeper").
 *
 * The process a first stage execs splits in two before it does anything
 * else: the parent stays a tiny keeper, a child subreaper above the
 * agent; the child goes on as the agent. When the agent dies, even by
 * SIGKILL, everything it left is reparented to the keeper, which ends it
 * all (SIGTERM, KEEPER_GRACE_S, SIGKILL; until it has no child) and exits
 * with the agent's status. When the channel hangs up (the master dropped
 * it: ssh killed by the heartbeat) while the agent is stopped, the keeper
 * SIGKILLs the agent and does the same.
 */
#ifndef AGENT_KEEPER_H
#define AGENT_KEEPER_H

/* After SIGTERM, how long the keeper gives what the agent left. Shorter
 * than sudo's monitor gives its command (2 s) once sudo is gone. */
#define KEEPER_GRACE_S 1.0
/*
 * Once the channel hung up or the keeper was told to go, how long a
 * running agent has to end its own tree (it saw the same) before the
 * keeper SIGKILLs it: the agent's grace, its wait after SIGKILL, and a
 * margin.
 */
#define KEEPER_AGENT_WAIT_S 10.0

/*
 * Split this process: returns in the agent (the child), never in the
 * keeper. watch_fd is the agent's channel to its parent (the keeper
 * polls it for a hang-up, never reads it). Single-threaded callers only,
 * before the agent has started anything. Returns 1 when the keeper left
 * the process group for its parent's: the agent is to stay in it (call
 * tree_agent_keep_group); 0 when it did not. When the split cannot be
 * made (fork fails), returns -errno in this process, which is then the
 * agent with no keeper (as before the keeper existed).
 */
int keeper_start(int watch_fd);

#endif
