/* SPDX-License-Identifier: MIT */
/* files.h — the files area (files/): the "mg.files" service and its
 * helpers, private to the library. */
#ifndef FILES_FILES_H
#define FILES_FILES_H

/* Register the "mg.files" service (agent start-up, agent/service.c). */
void files_service_init(void);

#endif
