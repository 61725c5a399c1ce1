/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdint.h>

#include "errors.h"
#include "probe.h"

/*
 * The state file (STATE_DIR/state.json): every probe's request, owner, slot
 * and what it resolved to (locations, files, pinned links). Written
 * atomically after every change; read at start to adopt what is pinned.
 */
int state_save(const char *path, struct probe *const *probes, size_t n, uint64_t next_id);

/*
 * Read the state file; for each probe entry call cb with a rebuilt probe (its
 * spec parsed from the stored request, its locations and attachments
 * restored, compiled). A probe entry that does not rebuild is reported
 * through bad with its id and the reason. Returns the next id, -ENOENT when
 * there is no file, or -EINVAL (with err) when the file is corrupt.
 */
typedef void (*state_probe_cb)(struct probe *p, void *userdata);
typedef void (*state_bad_cb)(uint64_t id, const char *reason, void *userdata);
int state_load(const char *path, state_probe_cb cb, state_bad_cb bad, void *userdata,
               uint64_t *next_id, struct error *err);
