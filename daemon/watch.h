/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "manager.h"

/*
 * The watcher: attaches watched probes (probe_watched) to every file that
 * matches them, in every process, now and later.
 *
 * A uprobe on a file reaches every process that maps it, so the watcher
 * looks for new *files*, not new processes. Its BPF programs (loaded only
 * while a watched probe exists) report a process when it maps a file that is
 * not in the set of known files: at exec, and at ld.so's _dl_debug_state
 * once the link map is consistent (initial load, each dlopen), before
 * constructors and main. The daemon then reads that process's executable
 * mappings through a BPF iterator, which gives the file each mapping really
 * holds (on overlayfs the upper or lower file, which is what a uprobe binds
 * to: two containers of one image share one attachment), examines the files
 * it has not seen, attaches the probes that match through
 * /proc/PID/map_files (other mount namespaces, deleted files), and marks them
 * known. A fork/exec storm of known binaries never reaches the daemon.
 *
 * Every interval, one pass over all mappings examines what was missed
 * (statically linked programs, a report the ring buffer had no room for) and
 * releases attachments of files no process maps any more.
 *
 * With a probe that asks for --hold, a reported process is stopped (SIGSTOP
 * from BPF) until the daemon has examined it; held pids are in a pinned map,
 * so that a restarted daemon resumes them, and none stays held longer than
 * hold_max_ns.
 */
struct watch;

struct watch_opts {
        const char *bpffs_root; /* the held-process map is pinned here */
        uint64_t interval_ns;   /* between passes over all mappings */
        uint64_t hold_max_ns;   /* a held process is resumed after this at the latest */
};

#define WATCH_LAT_BUCKETS 24 /* attach latency: <= 2^k microseconds, k < 24 */

struct watch_counters {
        uint64_t reports;        /* processes reported by BPF */
        uint64_t reports_lost;   /* reports the ring buffer had no room for */
        uint64_t examined;       /* files looked at */
        uint64_t attached;       /* files attached to a watched probe */
        uint64_t released;       /* ... released: no process maps them any more */
        uint64_t failed;         /* matching files that could not be attached */
        uint64_t held;           /* processes stopped until attached */
        uint64_t hold_timeouts;  /* ... resumed by the timeout */
        uint64_t hold_skipped;   /* not held: a terminal, traced, or too many held */
        uint64_t passes;         /* passes over all mappings */
        uint64_t latency[WATCH_LAT_BUCKETS + 1]; /* report to attached; last: longer */
        uint64_t latency_sum_ns;
};

int watch_new(sd_event *loop, struct manager *m, const struct watch_opts *o, struct watch **ret);
void watch_free(struct watch *w);

/* A watched probe was attached: attach it to what processes map now (and
 * forget which files were seen, so that those mapped later are examined). */
void watch_probe_added(struct watch *w, struct probe *p);
/* Watched probes changed: load or unload the programs, set holding. */
void watch_update(struct watch *w);

/* The counters, those of the BPF side included (lost reports and the
 * reports_lost/hold_skipped of a previous activation are not kept). */
void watch_counters(const struct watch *w, struct watch_counters *ret);
bool watch_active(const struct watch *w);

/* One process mapping one file (dev in the kernel's encoding, util.h). */
struct file_user {
        uint64_t dev, ino;
        pid_t pid;
};
/* Every process mapping every executable file, sorted by file then pid;
 * returns the count. */
int watch_file_users(struct watch *w, struct file_user **ret);

/* Resume the processes held by the instance pinned under bpffs_root (for
 * --purge, which removes the map that lists them). */
void watch_resume_pinned(const char *bpffs_root);
