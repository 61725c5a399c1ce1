/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <json-c/json.h>

#include "errors.h"
#include "spec.h"

/*
 * The parameters of an attach request (see utrace-protocol(7)) into a probe
 * spec. The same function rebuilds probes from the state file, so a probe
 * means after a restart exactly what it meant when it was attached.
 */
int request_parse_attach(json_object *params, struct probe_spec *s, struct error *err);
