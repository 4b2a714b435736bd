// SPDX-License-Identifier: MIT
/*
 * selftests/faults/test_faults_start.c — issue 19 §5: faults during
 * start-up (selftests/faults/faults.h has the rules and the assertions).
 *
 * Each hop is held at its stage by what it runs: a local, fork or via=
 * child by a program (or on_fork) that never greets (before BOOT); ssh by
 * a relay in front of the real ssh that says when the first byte of the
 * image went through (the target's cached copy of our image removed
 * first: during the image transfer); sudo by a stand-in that asks for
 * the password on its terminal, as sudo does, and keeps its prompt open
 * (the real sudo takes the typed password at once: no moment to hit).
 * The start must fail (StreamError or ChannelError; TimeoutError after
 * connect_timeout for a stopped hop: there is no heartbeat before BOOT),
 * what it started must be gone, and nothing leaked.
 */
#include "selftests/faults/faults.h"

#define S(h, f) { ST_START, h, f }

static const struct scenario table[] = {
	S(HOP_LOCAL, F_KILL), S(HOP_LOCAL, F_STOP), S(HOP_LOCAL, F_CUT),
	S(HOP_FORK, F_KILL), S(HOP_FORK, F_STOP), S(HOP_FORK, F_CUT),
	S(HOP_VIA_LOW, F_KILL), S(HOP_VIA_LOW, F_STOP), S(HOP_VIA_LOW, F_CUT),
	S(HOP_VIA_MID, F_KILL), S(HOP_VIA_MID, F_STOP), S(HOP_VIA_MID, F_CUT),
	S(HOP_SSH, F_KILL), S(HOP_SSH, F_STOP), S(HOP_SSH, F_TKILL), S(HOP_SSH, F_TSTOP),
	S(HOP_SUDO, F_KILL), S(HOP_SUDO, F_STOP),
};

int main(int argc, char **argv)
{
	return faults_main(argc, argv, "faults/start", table, sizeof(table) / sizeof(table[0]));
}
