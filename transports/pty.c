// SPDX-License-Identifier: MIT
/*
 * pty.c — pseudo-terminals for programs that prompt (ssh, sudo, su, doas):
 * open one, start a program with it as controlling terminal and stderr,
 * recognise what it prints.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "agent/agent.h"
#include "transports/transport.h"

extern char **environ;

int pty_open(int *ret_master, int *ret_slave, char *slave, size_t size)
{
	struct termios tio;
	int fd, sfd;

	fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (grantpt(fd) < 0 || unlockpt(fd) < 0 || ptsname_r(fd, slave, size) != 0)
		goto fail;
	/* No echo: what we type (a password) never comes back to us. */
	sfd = open(slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (sfd < 0)
		goto fail;
	if (tcgetattr(sfd, &tio) == 0) {
		tio.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
		tio.c_oflag &= ~(tcflag_t)ONLCR;
		tcsetattr(sfd, TCSANOW, &tio);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	*ret_master = fd;
	*ret_slave = sfd;
	return 0;
fail:
	{
		int e = errno;

		close(fd);
		return -e;
	}
}

bool pty_contains_any(const char *text, const char *const *list)
{
	for (; list && *list; list++)
		if (strstr(text, *list))
			return true;
	return false;
}

/*
 * A prompt: the last line so far (the program waits after it) mentions
 * one of words and ends with ':' ("[sudo] password for bob: ",
 * "Enter passphrase for key '/k': ", "Password: ").
 */
bool pty_is_prompt(const char *text, const char *const *words)
{
	const char *nl = strrchr(text, '\n');
	const char *line = nl ? nl + 1 : text;
	size_t n = strlen(line);

	while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	if (!n || line[n - 1] != ':')
		return false;
	for (; words && *words; words++)
		if (strstr(line, *words))
			return true;
	return false;
}

/*
 * The program's environment: ours without the agent's fd, without
 * MITOGEN_PASSWORD (the tool's password, should a program using the
 * library have it: sudo -E and su pass our environment on to the target
 * user), and with LC_ALL=C when asked.
 */
static char **spawn_env(bool c_locale)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = malloc((n + 2) * sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(environ[i], AGENT_FD_ENV "=", sizeof(AGENT_FD_ENV)) ||
		    !strncmp(environ[i], "MITOGEN_PASSWORD=", 17))
			continue;
		if (c_locale && !strncmp(environ[i], "LC_ALL=", 7))
			continue;
		env[k++] = environ[i];
	}
	if (c_locale)
		env[k++] = "LC_ALL=C";
	env[k] = NULL;
	return env;
}

int pty_spawn(const char *path, char *const argv[], int chan, const char *slave, int errfd,
	      int fd3, bool c_locale, pid_t *ret_pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	char **env = spawn_env(c_locale);
	int ret;

	if (!env)
		return ENOMEM;
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGHUP);
	posix_spawnattr_init(&at);
	/* setsid() first (glibc runs it before the file actions), so the
	 * slave opened below becomes the controlling terminal. */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, chan, 0);
	posix_spawn_file_actions_adddup2(&fa, chan, 1);
	/* Opened after setsid(): the controlling terminal. Then stderr is
	 * errfd: only what the program writes to /dev/tty reaches the pty. */
	posix_spawn_file_actions_addopen(&fa, 2, slave, O_RDWR, 0);
	posix_spawn_file_actions_adddup2(&fa, errfd, 2);
	if (fd3 >= 0)
		posix_spawn_file_actions_adddup2(&fa, fd3, 3);
	posix_spawn_file_actions_addclosefrom_np(&fa, fd3 >= 0 ? 4 : 3);
	ret = posix_spawnp(ret_pid, path, &fa, &at, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(env);
	return ret;
}
