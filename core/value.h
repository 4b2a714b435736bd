/* SPDX-License-Identifier: MIT */
/* value.h — internal value helpers shared inside core/. */
#ifndef CORE_VALUE_H
#define CORE_VALUE_H

#include <stddef.h>

/* 0 when buf holds exactly one well-formed value, else -EBADMSG/-E2BIG. */
int value_check(const void *buf, size_t len);

#endif
