/* SPDX-License-Identifier: MIT */
/* handles.h — reply handles (core/handles.c). */
#ifndef CORE_HANDLES_H
#define CORE_HANDLES_H

#include <stdint.h>

/*
 * A reply handle (>= MG_HANDLE_REPLY_MIN) whose slot no other live reply
 * handle of this process holds, or 0 when every slot is live. Give it
 * back with handle_reply_put once its handler is gone. Thread-safe.
 */
uint32_t handle_reply_take(void);
/* Free handle's slot; handles below MG_HANDLE_REPLY_MIN are ignored. */
void handle_reply_put(uint32_t handle);

#endif
