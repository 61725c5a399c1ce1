/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>

/* Human-readable renderings of daemon replies. */
void output_event(FILE *f, json_object *params);
void output_probe_list(FILE *f, json_object *probes);
void output_stats(FILE *f, json_object *result);
void output_aggregations(FILE *f, json_object *result);
void output_status(FILE *f, json_object *result);
/* The reply of "probes": USDT probes (verbose: every location and argument)
 * or symbols, per object. Returns the number of probes or symbols shown. */
size_t output_probes(FILE *f, json_object *result, bool verbose);
/* 1234567 -> "1.23ms" */
void output_duration(char *buf, size_t size, unsigned long long ns);
