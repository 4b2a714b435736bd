/* SPDX-License-Identifier: MIT */
/* libmitogen umbrella header: include this one. */
#ifndef MITOGEN_MITOGEN_H
#define MITOGEN_MITOGEN_H

#include <mitogen/common.h>
#include <mitogen/error.h>
#include <mitogen/log.h>
#include <mitogen/value.h>
#include <mitogen/router.h>
#include <mitogen/context.h>
#include <mitogen/select.h>
#include <mitogen/channel.h>
#include <mitogen/sandbox.h>
#include <mitogen/transport.h>
#include <mitogen/stats.h>
#include <mitogen/service.h>
#include <mitogen/files.h>
#include <mitogen/fakessh.h>

#endif
