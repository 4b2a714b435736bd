// SPDX-License-Identifier: MIT
/*
 * test_containers.c — attacks on the container methods (issue 21). Each
 * test performs the attack and asserts that it fails:
 *
 *  - a setns context holding the host's capabilities: a command run in a
 *    setns context inside a podman container mounts a tmpfs (CAP_SYS_ADMIN,
 *    which no process of the container has) and reads its bounding set.
 *    The context must have the container's capabilities, no more.
 *  - reading a setns agent before BOOT: between its exec and BOOT (after
 *    which it makes itself non-dumpable) a setns agent is a process of
 *    the container, with the container's uid. A process of the container
 *    with that uid (podman exec, as root and as nobody) reads the agent's
 *    memory through /proc/PID/mem and its environment while a test hook
 *    (hold_if_asked, in this binary, which is the agent's image) holds
 *    the agent at its start: the agent must not be dumpable from its
 *    exec on. A context into the same container started first makes the
 *    attacked start reuse the image's copy (setns.c shares it), which
 *    that first agent's hello made readable.
 *  - reaching a podman context's channel from the container: another
 *    process there (root) opens every socket it sees among the
 *    container's processes' fds through /proc/PID/fd and lists the named
 *    unix sockets it could connect to, while the agent serves. Its
 *    channel (a socketpair podman handed it, transports/podman.c) must
 *    be out of reach.
 *  - options through names: a container, user, pod or namespace name that
 *    the CLI would read as an option ("--privileged", "-uroot", "--env=X")
 *    is refused before the CLI runs (a stand-in CLI records any run).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "selftests/containers/ctr.h"

static char image[96];
static bool podman_up;

static void rm_container(void *name)
{
	ctr_fixture("podman-rm %s", (char *)name);
	free(name);
}

static void test_setns_has_only_the_containers_caps(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char name[96], want[256], path[64], line[256];
	FILE *f;
	pid_t init;

	NEED_CTR();
	if (!podman_up) {
		fprintf(stderr, "# skip: %s\n", ctr_skip[0] ? ctr_skip : "no podman");
		skip();
	}
	snprintf(name, sizeof(name), "mgtest-%d-caps", (int)getpid());
	assert_int_equal(ctr_fixture("podman-run %s %s", name, image), 0);
	mg_test_defer(rm_container, strdup(name));
	assert_int_equal(ctr_sh_line(line, sizeof(line),
				     "podman inspect --format '{{.State.Pid}}' %s", name), 0);
	init = (pid_t)atoi(line);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)init);
	f = fopen(path, "r");
	assert_non_null(f);
	want[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "CapBnd:", 7))
			memcpy(want, line, sizeof(want));
	fclose(f);
	assert_true(want[0]);

	MG_OPTS(mg_setns_opts, o, .kind = "podman", .container = name);
	ctx = must(mg_setns(router, &o, &err), &err);
	/* The attack: a mount only CAP_SYS_ADMIN may do. */
	ctr_run_sh(ctx, "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo MOUNTED; "
			"grep CapBnd /proc/self/status", NULL, &res);
	fprintf(stderr, "# in the setns context: %s%s", res.out, res.err);
	assert_null(strstr(res.out, "MOUNTED"));
	assert_string_equal(res.out, want);
	finish(ctx);
}

/*
 * The test hook: this binary is the setns agent's image. An agent of the
 * test_setns_agent_not_dumpable containers (argv[0]
 * "mitogen:setns.podman.mgtest-PID-dump...") says its pid, as its
 * container sees it, on the FIFO /tmp/mg-hold there and waits for a byte
 * on /tmp/mg-go before it goes on to BOOT: the window an attacker in the
 * container has, held open by an explicit hand-off.
 */
static void hold_if_asked(char **argv)
{
	char c;
	int fd;

	if (!argv[0] || strncmp(argv[0], "mitogen:setns.podman.mgtest-", 28) ||
	    !strstr(argv[0], "-dump"))
		return;
	fd = open("/tmp/mg-hold", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		dprintf(fd, "%d\n", (int)getpid());
		close(fd);
	}
	fd = open("/tmp/mg-go", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, &c, 1) < 0)
			c = 0;
		close(fd);
	}
}

/*
 * The attacker, in the container as uid: reads the held agent's pid, its
 * first mapping's first bytes through /proc/PID/mem (what PTRACE_ATTACH
 * and PTRACE_POKEDATA need too: mem is opened in ATTACH mode) and its
 * environ, prints what it got, lets the agent go.
 */
static const char attacker[] =
	"read pid </tmp/mg-hold; "
	"a=$(head -n 1 /proc/$pid/maps | cut -d- -f1); "
	"m=$(dd if=/proc/$pid/mem bs=1 skip=$((0x${a:-0})) count=4 2>/dev/null | tr -dc A-Z); "
	"e=$(tr '\\0' ' ' </proc/$pid/environ 2>/dev/null | grep -o MITOGEN_AGENT_FD); "
	"echo \"mem=${m:-denied} environ=${e:-denied}\"; echo go >/tmp/mg-go";

static void attack_held_agent(const char *what, const char *user)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	char name[96], line[256] = "", path[PATH_MAX], cmd[2048];
	struct ctr_run res;
	pid_t init;
	FILE *att, *f;
	int fd;

	snprintf(name, sizeof(name), "mgtest-%d-dump%s", (int)getpid(), what);
	snprintf(cmd, sizeof(cmd), "--user %s", user);
	assert_int_equal(ctr_fixture("podman-run %s %s %s", name, image, cmd), 0);
	mg_test_defer(rm_container, strdup(name));
	assert_int_equal(ctr_sh_line(line, sizeof(line),
				     "podman inspect --format '{{.State.Pid}}' %s", name), 0);
	init = (pid_t)atoi(line);
	/* the FIFOs, in the container's /tmp */
	snprintf(path, sizeof(path), "/proc/%d/root/tmp/mg-hold", (int)init);
	assert_int_equal(mkfifo(path, 0666), 0);
	assert_int_equal(chmod(path, 0666), 0);
	snprintf(path, sizeof(path), "/proc/%d/root/tmp/mg-go", (int)init);
	assert_int_equal(mkfifo(path, 0666), 0);
	assert_int_equal(chmod(path, 0666), 0);

	snprintf(path, sizeof(path), "/proc/%d/root/tmp/mg-attack", (int)init);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(attacker, f);
	assert_int_equal(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "podman exec --user %s %s /bin/sh /tmp/mg-attack", user, name);
	/* A first context into the same container, not held (its name has
	 * no "-dump"): the image's copy is shared by the starts of this
	 * process into this container, and readable (0555) once that agent
	 * said hello. The attacked start below reuses it. */
	{
		MG_OPTS(mg_local_opts, wl, .remote_name = "warm");
		MG_OPTS(mg_setns_opts, w, .local = &wl, .kind = "podman", .container = name);
		ctx = mg_setns(router, &w, &err);
		if (!ctx)
			fprintf(stderr, "# warm: %s: %s\n", mg_error_kind_name(err.kind), err.message);
		assert_non_null(ctx);
		finish(ctx);
	}
	att = popen(cmd, "r");
	assert_non_null(att);
	MG_OPTS(mg_setns_opts, o, .kind = "podman", .container = name);
	ctx = mg_setns(router, &o, &err);
	if (!ctx) {
		/* let a waiting attacker go, then fail */
		fprintf(stderr, "# %s: %s\n", mg_error_kind_name(err.kind), err.message);
		snprintf(path, sizeof(path), "/proc/%d/root/tmp/mg-hold", (int)init);
		fd = open(path, O_WRONLY | O_NONBLOCK);
		if (fd >= 0 && write(fd, "0\n", 2) == 2)
			close(fd);
	}
	line[0] = '\0';
	if (!fgets(line, sizeof(line), att))
		line[0] = '\0';
	pclose(att);
	fprintf(stderr, "# attacker as %s in the container: %s", user, line);
	assert_non_null(ctx);
	/* the hand-off happened: the attacker saw a pid and said something */
	assert_non_null(strstr(line, "mem="));
	assert_non_null(strstr(line, "mem=denied "));
	assert_non_null(strstr(line, "environ=denied"));
	/* and the agent works, as the container's uid */
	ctr_run_sh(ctx, "id -u", NULL, &res);
	snprintf(cmd, sizeof(cmd), "%.*s\n", (int)strcspn(user, ":"), user);
	assert_string_equal(res.out, cmd);
	finish(ctx);
}

static void test_setns_agent_not_dumpable(void **state)
{
	NEED_CTR();
	if (!podman_up) {
		fprintf(stderr, "# skip: %s\n", ctr_skip[0] ? ctr_skip : "no podman");
		skip();
	}
	attack_held_agent("nobody", "65534:65534");
	attack_held_agent("root", "0:0");
}

/*
 * The attacker, another process in the container (root, podman's default
 * capabilities): every socket it can see among the container's
 * processes' fds, opened for writing through /proc/PID/fd (how a pipe,
 * podman's stdio, could be reached), and every named unix socket of the
 * container's network namespace (one it could connect to).
 */
static const char chan_attacker[] =
	"n=0; for f in /proc/[0-9]*/fd/*; do l=$(readlink $f 2>/dev/null) || continue; "
	"case $l in socket:*) ;; *) continue;; esac; n=$((n+1)); "
	"if { exec 5>$f; } 2>/dev/null; then echo \"opened $f\"; exec 5>&-; fi; done; "
	"echo \"sockets seen: $n\"; awk 'NR > 1 && NF >= 8 { print \"named \" $8 }' /proc/net/unix";

/*
 * A podman context's channel is a socketpair handed to the agent (no
 * conmon on the way): nothing else in the container may reach it, while
 * the agent is serving.
 */
static void test_podman_channel_not_reachable(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *ctx;
	struct ctr_run res;
	char name[96], cmd[1024], out[4096];
	size_t n;
	FILE *p;

	NEED_CTR();
	if (!podman_up) {
		fprintf(stderr, "# skip: %s\n", ctr_skip[0] ? ctr_skip : "no podman");
		skip();
	}
	snprintf(name, sizeof(name), "mgtest-%d-chan", (int)getpid());
	assert_int_equal(ctr_fixture("podman-run %s %s", name, image), 0);
	mg_test_defer(rm_container, strdup(name));
	MG_OPTS(mg_podman_opts, o, .container = name);
	ctx = mg_podman(router, &o, &err);
	if (!ctx)
		fprintf(stderr, "# %s: %s\n", mg_error_kind_name(err.kind), err.message);
	assert_non_null(ctx);
	ctr_run_sh(ctx, "true", NULL, &res);
	snprintf(cmd, sizeof(cmd), "podman exec %s /bin/sh -c \"$(cat <<'EOF'\n%s\nEOF\n)\"",
		 name, chan_attacker);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	pclose(p);
	fprintf(stderr, "# attacker in the container: %s", out);
	assert_non_null(strstr(out, "sockets seen: "));
	assert_null(strstr(out, "opened "));
	assert_null(strstr(out, "named "));
	/* and the context still works */
	ctr_run_sh(ctx, "echo ok", NULL, &res);
	assert_string_equal(res.out, "ok\n");
	finish(ctx);
}

/* A stand-in CLI that records that it ran. */
static void test_names_are_not_options(void **state)
{
	struct mg_error err = MG_ERROR_INIT;
	char cli[PATH_MAX + 16], mark[PATH_MAX + 16], cmd[PATH_MAX * 4];
	const char *bad[] = { "--privileged", "-uroot", "--env=LD_PRELOAD=/x", "-", "a b",
			      "x;id", "$(id)", NULL };
	struct stat st;

	NEED_CTR();
	snprintf(cli, sizeof(cli), "%s/fakecli", ctr_tmp);
	snprintf(mark, sizeof(mark), "%s/ran", ctr_tmp);
	snprintf(cmd, sizeof(cmd), "printf '#!/bin/sh\\ntouch %s\\nexit 1\\n' >%s && chmod 755 %s",
		 mark, cli, cli);
	assert_int_equal(system(cmd), 0);
	for (const char *const *b = bad; *b; b++) {
		MG_OPTS(mg_podman_opts, p1, .container = *b, .podman_path = cli);
		assert_null(mg_podman(router, &p1, &err));
		assert_non_null(strstr(err.message, "is missing or invalid"));
		MG_OPTS(mg_podman_opts, p2, .container = "ok", .username = *b, .podman_path = cli);
		assert_null(mg_podman(router, &p2, &err));
		assert_non_null(strstr(err.message, "is invalid"));
		MG_OPTS(mg_docker_opts, d1, .image = *b, .docker_path = cli);
		assert_null(mg_docker(router, &d1, &err));
		MG_OPTS(mg_kubectl_opts, k1, .pod = "p", .kubectl_namespace = *b,
			.kubectl_path = cli);
		assert_null(mg_kubectl(router, &k1, &err));
		MG_OPTS(mg_kubectl_opts, k2, .pod = "p", .container = *b, .kubectl_path = cli);
		assert_null(mg_kubectl(router, &k2, &err));
		MG_OPTS(mg_lxc_opts, l1, .container = *b, .lxc_attach_path = cli);
		assert_null(mg_lxc(router, &l1, &err));
		MG_OPTS(mg_setns_opts, s1, .kind = "podman", .container = *b, .cli_path = cli);
		assert_null(mg_setns(router, &s1, &err));
		mg_error_clear(&err);
	}
	/* None of them ran the CLI. */
	assert_int_equal(stat(mark, &st), -1);
}

int main(int argc, char **argv)
{
	hold_if_asked(argv);
	mg_main(argc, argv);

	const struct CMUnitTest tests[] = {
		CTR_TEST(test_setns_has_only_the_containers_caps),
		CTR_TEST(test_setns_agent_not_dumpable),
		CTR_TEST(test_names_are_not_options),
		CTR_TEST(test_podman_channel_not_reachable),
	};
	int ret;

	if (ctr_tmp_up() == 0) {
		snprintf(image, sizeof(image), "localhost/mgtest-%d:latest", (int)getpid());
		if (ctr_have("podman") &&
		    ctr_fixture("podman-image %s/rootfs.tar %s", ctr_tmp, image) == 0)
			podman_up = true;
	}
	ret = mg_test_run("attacks/containers", tests, sizeof(tests) / sizeof(tests[0]));
	if (podman_up)
		ctr_fixture("podman-rmi %s", image);
	ctr_tmp_down();
	return ret;
}
