// SPDX-License-Identifier: MIT
/*
 * service.c — the "mg.files" service: the receiving and relaying side of
 * pushes and the sending side of pulls (docs/files.md).
 */
#include "files/files.h"

void files_service_init(void)
{
}
