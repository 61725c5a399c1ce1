/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "server.h"

#define PROTOCOL_VERSION 1

/* Handle one request line of client c; the reply is queued on c. */
void protocol_handle(struct client *c, const char *line, size_t len);

/*
 * Parse one request line: strict JSON (valid UTF-8, no NUL bytes, nesting at
 * most 32 deep, nothing after the value). NULL with err set on failure.
 */
json_object *protocol_parse(const char *line, size_t len, struct error *err);

/* Queue an error reply with a null id (for lines that are not requests). */
void protocol_error_line(struct client *c, enum error_code code, const char *message);
