/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct probe;

/*
 * Where the events of a configured probe go besides subscribers
 * (utraced.conf(5), OUTPUTS): the journal, an NDJSON file, or both.
 *
 * Neither may block the event loop. Journal entries are datagrams sent with
 * MSG_DONTWAIT in journald's native protocol, rate-limited per probe; an
 * entry journald has no room for is dropped and counted. The file is written
 * by a writer process of its own, fed through a pipe (QueueSize= bytes, up
 * to 1M): while the pipe is full the daemon queues up to QueueSize= bytes of
 * lines more and drops, counting, what does not fit. The writer rotates at line boundaries (every event in exactly one
 * file), reports what it wrote, and on a write error (full disk, read-only or
 * missing directory) says so and retries the same bytes until they go.
 */
struct output_config {
        bool journal;
        unsigned journal_burst;       /* entries per interval, per probe */
        uint64_t journal_interval_us;
        char *file;                   /* absolute path, or NULL */
        uint64_t file_max_size;       /* rotate before a line would pass it */
        unsigned file_keep;           /* rotated files kept: FILE.1 .. FILE.N */
};

/* What became of the events given to an output. */
struct output_counters {
        bool journal, file;            /* configured */
        uint64_t journal_sent;
        uint64_t journal_ratelimited;  /* past JournalRateLimitBurst= */
        uint64_t journal_busy;         /* journald had no room (EAGAIN) */
        uint64_t journal_errors;       /* could not be sent (no journald, too big) */
        bool journal_failing;          /* the last entry could not be sent */
        uint64_t file_written;         /* lines the writer wrote */
        uint64_t file_queue_dropped;   /* did not fit the daemon's queue */
        uint64_t file_writer_lost;     /* with a writer that died */
        uint64_t file_rotations;
        bool file_failing;             /* the writer cannot write now */
};

struct output;

/* Defaults: journal off, 1000 entries per 10 s; file size 64M, 5 kept. */
void output_config_init(struct output_config *oc);
void output_config_done(struct output_config *oc);
bool output_config_equal(const struct output_config *a, const struct output_config *b);
bool output_config_any(const struct output_config *oc);

/* Start the outputs of configured probe name (the writer process of a file,
 * fed by a queue of queue_max bytes). */
int output_new(const char *name, const struct output_config *oc, size_t queue_max,
               struct output **ret, struct error *err);
/* Stop: what the writer received it writes; what is still queued here is
 * counted as dropped and logged. */
void output_free(struct output *o);
const struct output_config *output_config(const struct output *o);

/* One event: rec/size the ring buffer record, line/len its JSON-RPC line.
 * True when an output took it. */
bool output_event(struct output *o, const struct probe *p, const void *rec, size_t size,
                  const char *line, size_t len, uint64_t realtime_offset);

void output_counters(const struct output *o, struct output_counters *ret);
