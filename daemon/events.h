/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "manager.h"

/*
 * Drains the ring buffer. A busy probe wakes the daemon once per watermark
 * (the BPF side sets BPF_RB_NO_WAKEUP below it); a short one-shot timer,
 * armed only after a drain that found records, picks up the tail. An idle
 * daemon has no timer running. The ring buffer is watched edge-triggered, so
 * that other work of the loop does not turn into a drain per turn.
 *
 * Each record is formatted once and handed to deliver(); flush() runs after
 * each drain so that sockets see one write per batch. When the BPF side
 * dropped hits for want of room since the last drain, dropped() runs before
 * flush(), to find whose and tell their subscribers.
 *
 * At start the ring buffer is held, not drained: events produced while no
 * daemon ran wait there until the first client subscribes (events_release)
 * or, if none does, for a few seconds; then they are delivered first, and
 * what nobody receives is counted as unclaimed. A ring buffer the loader
 * replaced (another size) is drained once before the new one.
 */
struct events;

struct events_ops {
        /* Returns true when at least one receiver took the event. */
        bool (*deliver)(struct probe *p, const char *line, size_t len, void *userdata);
        void (*dropped)(void *userdata);
        void (*flush)(void *userdata);
};

struct events_counters {
        uint64_t read;      /* records taken from the ring buffer */
        uint64_t stale;     /* of a probe that is gone (slot reused or freed) */
        uint64_t malformed; /* could not be decoded */
        uint64_t unclaimed; /* no receiver */
        uint64_t wakeups;   /* drains */
        uint64_t backlog;   /* produced before this start */
};

int events_new(sd_event *loop, struct manager *m, uint64_t flush_ns, const struct events_ops *ops,
               void *userdata, struct events **ret);
void events_free(struct events *ev);
const struct events_counters *events_counters(const struct events *ev);
/* Bytes waiting in the ring buffer. */
uint64_t events_pending(const struct events *ev);
/* Start draining, if still held (after the reply at hand is sent). */
void events_release(struct events *ev);
bool events_held(const struct events *ev);
