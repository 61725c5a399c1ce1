/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "errors.h"

/*
 * Turn a probe TARGET into a path the kernel can open:
 *   - an absolute path: as is, or inside the process's root (/proc/PID/root)
 *     when scoped to a pid;
 *   - a name ("libc.so.6", "bash"): with a pid, the object of that basename
 *     mapped by the process; otherwise the dynamic linker's cache
 *     (/etc/ld.so.cache), then the standard library directories, then PATH.
 */
int target_resolve(const char *target, pid_t pid, char **ret, struct error *err);

/*
 * The same, but only among the files process pid maps (by path as the
 * process sees it, or by name), as a /proc/PID/map_files path: what a caller
 * without privileges may name.
 */
int target_resolve_mapped(const char *target, pid_t pid, char **ret, struct error *err);

/* Whether the file at path (as a process sees it) has the name name: its
 * base name, or name followed by a version (libc.so: libc.so.6). */
bool target_name_matches(const char *name, const char *path);

/* Look a library name up in an ld.so.cache file; 0, -ENOENT or -EINVAL. */
int target_ldcache_lookup(const char *cache_path, const char *name, char **ret);

/* 0 if /proc/PID exists, else an E_NO_PROCESS error. */
int target_check_pid(pid_t pid, struct error *err);

/* Every distinct file mapped executable by pid, as /proc/PID/map_files paths
 * (works across mount namespaces and for deleted files), with the original
 * path names beside them. Returns the count. */
int target_process_objects(pid_t pid, char ***paths, char ***names, struct error *err);
void strv_free(char **v);
