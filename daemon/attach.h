/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "errors.h"

/* One place in a file to attach to. */
struct attach_loc {
        uint64_t offset;  /* file offset of the instruction */
        uint64_t ref_ctr; /* file offset of a USDT semaphore, or 0 */
        uint64_t cookie;  /* site | location << 32 */
};

/*
 * Does the kernel have uprobe_multi links? Probed once with a throwaway
 * program; the answer decides how the programs are loaded and linked.
 */
bool attach_probe_multi(void);

/*
 * Create the links that attach prog_fd at every location of path (pid 0:
 * every process). With multi, one uprobe_multi link covers them all;
 * otherwise one perf-event link per location. Returns the number of link fds
 * stored in *fds (caller closes and frees them).
 */
int attach_links(int prog_fd, bool multi, bool retprobe, const char *path, pid_t pid,
                 const struct attach_loc *locs, size_t n, int **fds, struct error *err);
