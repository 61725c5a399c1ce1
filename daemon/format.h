/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probe.h"

/*
 * A growable output buffer with a hand-written JSON writer: events are
 * serialized once, straight into bytes, without building a document.
 */
struct buf {
        char *data;
        size_t len, cap;
        bool oom; /* an allocation failed: the content is incomplete */
};

void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_put(struct buf *b, const char *s, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_u64(struct buf *b, uint64_t v);
void buf_s64(struct buf *b, int64_t v);
/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
size_t utf8_len(const unsigned char *s, size_t n);
/* A JSON string literal: quotes, escapes, and invalid UTF-8 bytes as \u00XX. */
void buf_json_str(struct buf *b, const char *s, size_t n);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);

/* A ring buffer record, checked: its header, integer values, strings by
 * slot and the location it was produced at (NULL if unknown). */
struct event_view {
        const struct ut_event *e;
        const __u64 *vals;
        const struct ut_str *strs[UT_MAX_STRS];
        const struct probe_location *loc;
};

/* False for a malformed record. */
bool format_decode(const struct probe *p, const void *rec, size_t size, struct event_view *v);
/* The string of string field f, its bytes following it; NULL if unreadable. */
const struct ut_str *format_string(const struct event_view *v, const struct probe_field *f);
/* Integer field f in decimal, as its type reads; false if the event lacks it. */
bool format_integer(struct buf *b, const struct probe *p, const struct event_view *v,
                    const struct probe_field *f);
/* The location to show (a probe of several locations), or NULL. */
const char *format_location(const struct probe *p, const struct event_view *v);
/* The return value as the probe's first cast of retval reads it. */
void format_retval(struct buf *b, const struct probe *p, const struct ut_event *e);

/*
 * One event as a JSON-RPC notification line:
 * {"jsonrpc":"2.0","method":"event","params":{...}}\n
 * rec/size is the ring buffer record; realtime_offset converts its
 * CLOCK_MONOTONIC stamp to the epoch. Returns false for a malformed record.
 */
bool format_event(struct buf *b, const struct probe *p, const void *rec, size_t size,
                  uint64_t realtime_offset);
