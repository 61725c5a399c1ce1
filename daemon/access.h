/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "errors.h"

/*
 * Who is asking, and what they may do (utraced(8), ACCESS CONTROL).
 *
 * root and members of the utraced group (primary or supplementary, as the
 * peer's credentials say when it connected) may do everything. Anyone else
 * may read hello and status, list the probes of files they can read and of
 * processes they own, and attach probes scoped to one process they own, on
 * files that process maps; they see, stream, count and detach only their own
 * probes. "Own" is ptrace's rule: every uid and gid of the process is the
 * caller's, and the process is dumpable.
 */
struct caller {
        uid_t uid;
        gid_t gid;
        pid_t pid;
        bool privileged;
        bool reads_metrics; /* privileged, or in the metrics group: every probe's metrics */
        int ngroups;
        gid_t groups[64];
};

/* The peer of a connected UNIX socket; privileged when root or in group,
 * reads every probe's metrics when privileged or in metrics_group. */
int access_identify(int fd, gid_t group, gid_t metrics_group, struct caller *c);

/* The gid of the group whose members are privileged, or (gid_t)-1. */
gid_t access_group(const char *name);

/* 0 if c may trace process pid (always for the privileged), else an error. */
int access_check_process(const struct caller *c, pid_t pid, struct error *err);

/* Open path for reading with c's credentials (file permissions, ACLs and
 * directory search rights apply as they would to c); an fd or an error. */
int access_open_as(const struct caller *c, const char *path, struct error *err);
