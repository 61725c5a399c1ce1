/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

/*
 * The BPF object: programs and maps from the embedded skeleton, with maps
 * pinned under ROOT/maps and programs under ROOT/progs. A second start finds
 * the maps pinned and reuses them, so counters, configuration slots and
 * events queued in the ring buffer survive the daemon. A pinned map this
 * build cannot use (other layout, entries or ring buffer size) is replaced,
 * and the links made for it are then migrated by the manager. The programs
 * pinned by an earlier start are used as long as they are this build's, so
 * that every current link runs one of the programs in use.
 */
struct loader;

struct loader_opts {
        const char *layout_path;  /* the map layouts the pins were made for */
        size_t ringbuf_size;      /* bytes, power of two */
        bool no_multi;            /* never use uprobe_multi links */
        unsigned long long wake_bytes;
        unsigned long long wake_ns;
};

enum loader_map {
        MAP_PROBES, MAP_SITES, MAP_STATS, MAP_EVENTS, MAP_LAT, MAP_AGGS, MAP_AGG_NKEYS,
        MAP_GLOBALS, _MAP_MAX,
};

int loader_open(const char *root, const struct loader_opts *opts, struct loader **ret,
                struct error *err);
void loader_free(struct loader *l);
int loader_map_fd(const struct loader *l, enum loader_map m);
int loader_prog_fd(const struct loader *l, bool retprobe, bool sleepable);
bool loader_multi(const struct loader *l);

/*
 * Does the link pinned at pin run this build's programs on this instance's
 * maps? 1: yes, 0: no (it was made by another build, or its programs write
 * to maps that were replaced), or a negative errno (-ENOENT: no such pin).
 */
int loader_link_current(const struct loader *l, const char *pin);

/* The ring buffer replaced at load (another size) whose events are still to
 * be delivered, or -1; the caller takes the fd. */
int loader_take_retired_events(struct loader *l);
size_t loader_ringbuf_size(const struct loader *l);

/* Mount bpffs on /sys/fs/bpf when ROOT lies below it and it is not mounted. */
int loader_ensure_bpffs(const char *root, struct error *err);

/* Remove every pin below root (links, programs, maps) and root itself. */
int loader_purge(const char *root);
