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

#define N_TABLE (sizeof(table) / sizeof(table[0]))

static void test_local(void **state) { run_table(table, N_TABLE, HOP_LOCAL); }
static void test_fork(void **state) { run_table(table, N_TABLE, HOP_FORK); }
static void test_via_lower(void **state) { run_table(table, N_TABLE, HOP_VIA_LOW); }
static void test_via_upper(void **state) { run_table(table, N_TABLE, HOP_VIA_MID); }
static void test_ssh(void **state) { run_table(table, N_TABLE, HOP_SSH); }
static void test_sudo(void **state) { run_table(table, N_TABLE, HOP_SUDO); }

int main(int argc, char **argv)
{
	faults_main_hook(argc, argv);
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_via_lower),
		cmocka_unit_test(test_via_upper),
		cmocka_unit_test(test_ssh),
		cmocka_unit_test(test_sudo),
	};
	int ret;

	if (faults_setup() < 0) {
		printf("Bail out! cannot set up\n");
		return 1;
	}
	ret = MG_TEST_RUN("faults/run", tests);
	faults_teardown();
	return ret;
}
