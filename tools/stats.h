/* SPDX-License-Identifier: MIT */
/* tools/stats.h — `mitogen stats`: kernel channel accounting from outside. */
#ifndef TOOLS_STATS_H
#define TOOLS_STATS_H

/* argv[0] is "stats". Returns the tool's exit status. */
int tool_stats(int argc, char **argv);

#endif
