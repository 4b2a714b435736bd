/* SPDX-License-Identifier: MIT */
/*
 * selftests/transports/fixture.h: the real sshd and test users of
 * selftests/fixtures/sshd.sh, for the transport tests (header-only: each
 * test program includes it once).
 */
#ifndef MITOGEN_SELFTESTS_TRANSPORT_FIXTURE_H
#define MITOGEN_SELFTESTS_TRANSPORT_FIXTURE_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "selftests/lib/harness.h"

struct sshd_fixture {
	char dir[64];
	char key[96];
	char known[128];	/* "UserKnownHostsFile=..." */
	int port;
	int pid;
	bool up;
	bool users;			/* test users exist */
	char skip[256];			/* why there is none */
};

static struct sshd_fixture fx;

static const char *fixture_script(void)
{
	static char path[PATH_MAX];
	const char *src = getenv("MG_TEST_SRC_DIR");

	snprintf(path, sizeof(path), "%s/selftests/fixtures/sshd.sh", src ? src : ".");
	return path;
}

/* Users always; sshd when want_sshd. Sets fx.skip when impossible. */
static int fixture_up(bool want_sshd)
{
	char cmd[PATH_MAX * 2 + 64], line[128];
	FILE *p;

	if (geteuid() != 0) {
		snprintf(fx.skip, sizeof(fx.skip), "needs root (test users, sshd)");
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "%s users >&2", fixture_script());
	if (system(cmd) != 0) {
		snprintf(fx.skip, sizeof(fx.skip), "cannot create the test users (%.200s)", cmd);
		return 0;
	}
	fx.users = true;
	if (!want_sshd)
		return 0;
	if (access("/usr/sbin/sshd", X_OK) < 0) {
		snprintf(fx.skip, sizeof(fx.skip), "no /usr/sbin/sshd (make deps)");
		return 0;
	}
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/mg-sshd.XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	snprintf(cmd, sizeof(cmd), "%s start %s", fixture_script(), fx.dir);
	p = popen(cmd, "r");
	if (!p || !fgets(line, sizeof(line), p) || sscanf(line, "%d %d", &fx.port, &fx.pid) != 2) {
		if (p)
			pclose(p);
		snprintf(fx.skip, sizeof(fx.skip), "sshd fixture did not start");
		return 0;
	}
	pclose(p);
	snprintf(fx.key, sizeof(fx.key), "%s/id_ed25519", fx.dir);
	snprintf(fx.known, sizeof(fx.known), "UserKnownHostsFile=%s/known_hosts", fx.dir);
	fx.up = true;
	return 0;
}

static void fixture_down(void)
{
	char cmd[PATH_MAX * 2 + 64];

	if (!fx.dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "%s stop %s", fixture_script(), fx.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# sshd fixture: stop failed\n");
	fx.dir[0] = '\0';
	fx.up = false;
}

#define NEED_SSHD()							\
	do {								\
		if (!fx.up) {						\
			fprintf(stderr, "# skip: %s\n", fx.skip);	\
			skip();						\
		}							\
	} while (0)

#endif
