/* SPDX-License-Identifier: MIT */
/* tools/files.h — copy, fetch, rsync and scp subcommands (tools/files.c). */
#ifndef TOOLS_FILES_H
#define TOOLS_FILES_H

/* Is cmd one of ours? */
#define TOOL_FILES_CMD(cmd) (!strcmp((cmd), "copy") || !strcmp((cmd), "fetch") || \
			     !strcmp((cmd), "rsync") || !strcmp((cmd), "scp") || \
			     !strcmp((cmd), "fakessh"))

/* Run subcommand argv[0] (copy, fetch, rsync, scp); the exit status. */
int tool_files(int argc, char **argv);
/* rsync and scp over fakessh (tools/files.c). */
int tool_fakessh_cmd(int argc, char **argv);
/* The subcommands' --help text. */
extern const char tool_files_help[];

#endif
