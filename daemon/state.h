/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdint.h>

#include "errors.h"
#include "probe.h"

/*
 * The state file (STATE_DIR/state.json): a header line {"version", "next_id"}
 * and one line per probe: its request, owner, slot, configuration name, what
 * it resolved to (locations, files, pinned links) and the change it was going
 * through when the file was written (intent). Written atomically (temporary
 * file and rename) after every change; read at start to adopt what is
 * pinned. One line per probe: a damaged line costs that probe only.
 */
int state_save(const char *path, struct probe *const *probes, size_t n, uint64_t next_id);

/*
 * Read the state file; for each probe line call cb with a rebuilt probe (its
 * spec parsed from the stored request, its locations and attachments
 * restored, compiled). A line that does not rebuild is reported through bad
 * with the probe's id (0 if unknown) and the reason. Returns 0, 1 when some
 * lines were damaged (err says so; a copy of the file is kept as
 * STATE.corrupt; *next_id is 0 if the header was lost), -ENOENT when there
 * is no file, or another negative errno (with err) when it cannot be read.
 */
typedef void (*state_probe_cb)(struct probe *p, void *userdata);
typedef void (*state_bad_cb)(uint64_t id, const char *reason, void *userdata);
int state_load(const char *path, state_probe_cb cb, state_bad_cb bad, void *userdata,
               uint64_t *next_id, struct error *err);
