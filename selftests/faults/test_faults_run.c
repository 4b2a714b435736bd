// SPDX-License-Identifier: MIT
/*
 * selftests/faults/test_faults_run.c — issue 19 §5: faults in a running
 * context, mid-call (mg.run of a command that outlives the test), mid-
 * stream (mg.run_stream of 200 MiB, hit once 1 MiB has arrived) and
 * during shutdown (mg_context_shutdown while the hop is ending a command
 * that outlives SIGTERM), for every kind of hop
 * (selftests/faults/faults.h has the rules and the assertions).
 */
#include "selftests/faults/faults.h"

#define HOPS(st)								\
	{ st, HOP_LOCAL, F_KILL }, { st, HOP_LOCAL, F_STOP }, { st, HOP_LOCAL, F_CUT },	\
	{ st, HOP_FORK, F_KILL }, { st, HOP_FORK, F_STOP }, { st, HOP_FORK, F_CUT },	\
	{ st, HOP_VIA_LOW, F_KILL }, { st, HOP_VIA_LOW, F_STOP },			\
	{ st, HOP_VIA_LOW, F_CUT },							\
	{ st, HOP_VIA_MID, F_KILL }, { st, HOP_VIA_MID, F_STOP },			\
	{ st, HOP_VIA_MID, F_CUT },							\
	{ st, HOP_SSH, F_KILL }, { st, HOP_SSH, F_STOP }, { st, HOP_SSH, F_TKILL },	\
	{ st, HOP_SSH, F_TSTOP },							\
	{ st, HOP_SUDO, F_KILL }, { st, HOP_SUDO, F_STOP }, { st, HOP_SUDO, F_CUT }

static const struct scenario table[] = {
	HOPS(ST_CALL), HOPS(ST_STREAM), HOPS(ST_SHUTDOWN),
};

int main(int argc, char **argv)
{
	return faults_main(argc, argv, "faults/run", table, sizeof(table) / sizeof(table[0]));
}
