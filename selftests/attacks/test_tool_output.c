// SPDX-License-Identifier: MIT
/*
 * selftests/attacks/test_tool_output.c — a target forging another
 * target's output in the mitogen tool. The tool receives each run step's
 * output on a channel (a receiver on its router, handle allocated from
 * 1000 up); any context that can route to the tool can send to that
 * handle. A compromised target sprays {"fd": 1, "data": ...} at every
 * handle, hoping its text is printed under another host's name
 * ("web02: all good"), or as another target's answer (the router does
 * not bind a reply to the context a call went to). The tool must take a
 * step's output and its answer only from the last hop of that step's
 * own target.
 *
 * The tool's engine (tools/runner.c, tools/output.c) runs in this
 * process, so its children are copies of this program and the attacker
 * is an exported function here. Owns: its directory, its memfd.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <mitogen/mitogen.h>

#include "tools/output.h"
#include "tools/runner.h"
#include "tools/script.h"
#include "tools/targets.h"

#include "selftests/lib/harness.h"

static char dir[PATH_MAX];

/*
 * Step 0 on every target. In the attacker (t1, a fork of the master):
 * wait until the victim's command runs (it makes the file args[0]), then
 * send forged output to handles 1000..4999 of the master (id 0).
 */
static int spray(struct mg_call *call, const struct mg_value *args,
		 struct mg_value **ret_result)
{
	const char *ready = NULL;
	int sent = 0;

	if (mg_value_unpack(args, NULL, "s", &ready) < 0)
		return mg_call_fail(call, EINVAL, "want a path");
	if (strcmp(mg_context_name_self(), "t1.fork")) {
		*ret_result = mg_int(0);
		return 0;
	}
	/* a hand-off: the victim makes this file once its command runs */
	for (int i = 0; i < 6000 && access(ready, F_OK) < 0; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	for (uint32_t h = 1000; h < 5000; h++) {
		struct mg_value *m = mg_map();
		struct mg_message *msg;

		mg_map_set(m, "fd", mg_int(1));
		mg_map_set(m, "data", mg_bytes("FORGED\n", 7));
		msg = mg_message_new(0, h, m);
		if (msg && mg_router_route(mg_call_router(call), msg) == 0)
			sent++;
	}
	*ret_result = mg_int(sent);
	return 0;
}
MG_EXPORT_AS("attack.spray", spray);

static void test_forged_output_dropped(void **state)
{
	struct target_list targets = { 0 };
	struct run_step steps[2];
	char ready[PATH_MAX + 16], cmd[PATH_MAX + 256], *ready_arg = ready, *out;
	int fd = memfd_create("out", MFD_CLOEXEC), code;
	off_t len;

	(void)state;
	assert_true(fd >= 0);
	snprintf(ready, sizeof(ready), "%s/ready", dir);
	assert_int_equal(target_list_parse(&targets, "local,fork", NULL, 0), 0);
	target_list_name(&targets);
	assert_int_equal(script_call_step("attack.spray", &ready_arg, 1, &steps[0],
					  NULL, 0), 0);
	/* the victim (t0) runs until its timeout; the attacker's step is quick */
	snprintf(cmd, sizeof(cmd),
		 "case $(tr -d '[:cntrl:]' </proc/$PPID/cmdline) in mitogen:t0.*) "
		 "echo victim; touch %s; exec tail --pid=$PPID -f /dev/null;; esac", ready);
	assert_int_equal(script_run_step((char *const[]){ "sh", "-c", cmd }, 3,
					 &steps[1]), 0);
	struct run_opts o = {
		.targets = &targets,
		.steps = steps,
		.nsteps = 2,
		.fanout = 2,
		.connect_timeout = 60,
		/* the victim's command ends here: time for the spray to land */
		.command_timeout = 10,
		.out = { .mode = OUT_PREFIX, .out_fd = fd, .err_fd = fd, .command = "run" },
	};

	code = runner_go(&o);
	len = lseek(fd, 0, SEEK_END);
	out = calloc(1, (size_t)len + 1);
	assert_non_null(out);
	assert_int_equal(pread(fd, out, (size_t)len, 0), len);
	print_message("# tool output:\n%s", out);
	/* the attack ran while the victim's command did */
	assert_non_null(strstr(out, "local: victim\n"));
	/* nothing it sent was printed as the victim's, nor taken as the
	 * victim's answer: its step ended by its own timeout */
	if (strstr(out, "local: FORGED") || strstr(out, "mitogen: local: CallError"))
		fail_msg("the attacker spoke for local:\n%s", out);
	assert_non_null(strstr(out, "mitogen: local: TimeoutError: "));
	assert_int_equal(code, OUT_EXIT_TIMEOUT);
	free(out);
	close(fd);
	run_step_clear(&steps[0]);
	run_step_clear(&steps[1]);
	target_list_free(&targets);
}

static int group_setup(void **state)
{
	(void)state;
	/* no TAP line may sit in a buffer a fork target copies */
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(dir, sizeof(dir), "%s/mg-attack-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char path[PATH_MAX + 16];

	(void)state;
	snprintf(path, sizeof(path), "%s/ready", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

int main(int argc, char **argv)
{
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forged_output_dropped),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
