/* SPDX-License-Identifier: MIT */
/* audit_cmd.h — `mitogen audit` (tools/audit_cmd.c, docs/audit.md). */
#ifndef TOOLS_AUDIT_CMD_H
#define TOOLS_AUDIT_CMD_H

/* argv[0] is "audit": verify, show, fetch or keys; the exit code. */
int tool_audit(int argc, char **argv);

/* What `mitogen audit --help` prints. */
extern const char tool_audit_help[];

#endif
