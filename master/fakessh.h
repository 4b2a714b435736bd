/* SPDX-License-Identifier: MIT */
/* fakessh.h — fakessh's stub and service, for mg_main and the agent
 * (master/fakessh.c). */
#ifndef MASTER_FAKESSH_H
#define MASTER_FAKESSH_H

#include <stdbool.h>

/* Started as `ssh` by a program mg_fakessh_run runs? */
bool fakessh_stub_wanted(int argc, char **argv);
/* Be that ssh: hand the session to the master, exit with its status. */
__attribute__((noreturn)) void fakessh_stub_main(int argc, char **argv);
/* Register the "mg.fakessh" service (agent start-up). */
void fakessh_service_init(void);

#endif
