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
/* A JSON string literal: quotes, escapes, and invalid UTF-8 bytes as \u00XX. */
void buf_json_str(struct buf *b, const char *s, size_t n);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);

/*
 * One event as a JSON-RPC notification line:
 * {"jsonrpc":"2.0","method":"event","params":{...}}\n
 * rec/size is the ring buffer record; realtime_offset converts its
 * CLOCK_MONOTONIC stamp to the epoch. Returns false for a malformed record.
 */
bool format_event(struct buf *b, const struct probe *p, const void *rec, size_t size,
                  uint64_t realtime_offset);
