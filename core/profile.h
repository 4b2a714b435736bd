/* SPDX-License-Identifier: MIT */
/* profile.h — per-thread CPU sampling profiles (see core/profile.c). */
#ifndef CORE_PROFILE_H
#define CORE_PROFILE_H

#include <stdbool.h>

/* Is profiling on for this process (mg_profiling_enable or BOOT)? */
bool profile_enabled(void);
void profile_set_enabled(bool on);
/* Start sampling the calling thread; its profile is named `name`. */
void profile_thread_start(const char *name);
/* Stop sampling the calling thread and write its profile. */
void profile_thread_stop(void);

/* In a fork()ed child. */
void profile_reset_after_fork(void);

#endif
