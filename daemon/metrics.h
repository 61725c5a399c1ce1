/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>

#include "format.h"

struct server;
struct client;

/*
 * The daemon's metrics in the Prometheus text exposition format (0.0.4) or
 * in OpenMetrics 1.0 (utraced(8), METRICS): its health (probes, clients,
 * the ring buffer, the configuration), per probe the BPF counters and what
 * became of its events, and every aggregation: counts as counters, log2
 * histograms as histograms (latency in seconds), aggregation keys as labels.
 *
 * A caller sees the per-probe series of the probes it may see (client_sees),
 * every probe's when all is true; the daemon-wide series are everyone's, as
 * in the status method.
 */
enum metrics_format {
        METRICS_PROMETHEUS,
        METRICS_OPENMETRICS,
};

/* Append the exposition to b (b->oom on failure). */
void metrics_write(struct buf *b, struct server *srv, const struct client *c, bool all,
                   enum metrics_format fmt);

/* "1.5" for 1500000000: nanoseconds as exact decimal seconds. */
void metrics_seconds(struct buf *b, uint64_t ns);
/* A label value: \ " and newline escaped; invalid UTF-8 bytes as \xNN, with
 * a backslash of the value doubled so that distinct values stay distinct. */
void metrics_label_value(struct buf *b, const char *s, size_t n);
