/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/*
 * The flow view (utracectl flow): events of a language's function entry and
 * return probes become calls and returns, indented by call depth per thread.
 * Each event carries the captures "file" (source file), "func" and "line".
 * A return whose call was not seen (it began before the probes were attached,
 * or the interpreter did not report it) is shown inside the innermost call
 * that was.
 */
struct flow;

/* pattern: a glob on module.function, or NULL; json: print the raw events. */
struct flow *flow_new(uint64_t entry_probe, uint64_t return_probe, const char *pattern, bool json);
void flow_free(struct flow *f);

/* The column header of the human output. */
void flow_header(FILE *out);

/* One message from the daemon; true when it printed a call or a return. */
bool flow_message(struct flow *f, FILE *out, const char *line, size_t len);
