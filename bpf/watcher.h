/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Structures shared by the watcher's BPF programs (bpf/watch.bpf.c) and the
 * daemon's watch module.
 *
 * The watcher reports processes that map a file it has not seen: at exec
 * (the executable) and at ld.so's _dl_debug_state in the consistent state
 * (after the initial load and after each dlopen, every object of the link
 * map). A file is a (device, inode) pair as the kernel's mappings hold it:
 * on overlayfs, the upper or lower file, which is also what a uprobe binds to.
 */
#ifndef UTRACE_WATCHER_H
#define UTRACE_WATCHER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define WATCH_KNOWN_MAX   16384 /* files remembered (LRU: a forgotten file is examined again) */
#define WATCH_HELD_MAX    4096  /* processes held at once */
#define WATCH_MAX_OBJECTS 512   /* link-map entries looked through per ld.so event */

/* A file: dev is the kernel's encoding (major << 20 | minor). */
struct watch_file {
        __u64 dev;
        __u64 ino;
};

/* Value of a known file. */
enum watch_known {
        WATCH_REPORTED = 1, /* a process was reported for it; not examined yet */
        WATCH_EXAMINED = 2, /* the daemon has looked at it */
};

enum watch_kind {
        WATCH_EXEC = 1,
        WATCH_LDSO = 2,
};

struct watch_report {
        __u32 pid;
        __u32 kind;   /* enum watch_kind */
        __u32 held;   /* the process was stopped until the daemon resumes it */
        __u32 pad;
        __u64 ts;     /* CLOCK_MONOTONIC ns of the event */
        struct watch_file file;
};

/* A record of the watch_vmas iterator: one executable file mapping of a process. */
struct watch_vma {
        __u32 pid;
        __u32 pad;
        __u64 start, end;
        struct watch_file file;
};

#endif
