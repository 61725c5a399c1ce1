/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <json-c/json.h>

#include "access.h"
#include "errors.h"

/*
 * What a file or a process offers to probe, read from its ELF files (the
 * `probes` method): USDT probes grouped by provider:name with every location,
 * its semaphore and its argument specs, or with "symbols" the function
 * symbols a uprobe can name.
 *
 * Callers who are not privileged (access.h) list files they can read and
 * processes they own.
 *
 * params: {"target": PATH-OR-NAME} or {"pid": PID}, and optionally
 * "pattern" (a glob on provider:name, name, or a symbol) and "symbols".
 */
int listing_probes(const struct caller *c, json_object *params, json_object **result,
                   struct error *err);

/* Symbols listed in one reply at most; the rest are counted in "more_symbols". */
#define LISTING_MAX_SYMBOLS 20000
