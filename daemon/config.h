/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

struct manager;

/*
 * The configuration (see utraced.conf(5)): the [Daemon] settings of
 * utraced.conf and the always-on probes of the *.conf files in the probes
 * directory, in [Probe] sections; systemd style: [Section], Key=Value,
 * comment lines starting with '#' or ';'. Command-line options override the
 * file.
 *
 * Configured probes are attached at start and on reload; a reload applies
 * only the difference, and a configuration with any error is refused as a
 * whole.
 */

enum config_key {
        CONFIG_SOCKET = 1 << 0,
        CONFIG_BPFFS_ROOT = 1 << 1,
        CONFIG_STATE_DIR = 1 << 2,
        CONFIG_PROBES_DIR = 1 << 3,
        CONFIG_RINGBUF_SIZE = 1 << 4,
        CONFIG_QUEUE_SIZE = 1 << 5,
        CONFIG_UPROBE_MULTI = 1 << 6,
        CONFIG_LOG_LEVEL = 1 << 7,
        CONFIG_WATCH_INTERVAL = 1 << 8,
};

struct config_settings {
        unsigned set; /* CONFIG_* given explicitly */
        char socket_path[PATH_MAX];
        char bpffs_root[PATH_MAX];
        char state_dir[PATH_MAX];
        char probes_dir[PATH_MAX];
        size_t ringbuf_size;
        size_t queue_size;
        bool uprobe_multi;
        int log_level;
        uint64_t watch_interval_us; /* passes of the watcher over every mapping */
};

void config_settings_init(struct config_settings *s);
/* Parse value into setting key (used for the file and the command line). */
int config_parse_setting(struct config_settings *s, enum config_key key, const char *value,
                         struct error *err);

struct config;

/*
 * Read path (a missing file is an error only when required) and the probes
 * directory it names; cli overrides the file. Errors are kept, not logged:
 * see config_errors(). Fails only when out of memory.
 */
int config_new(const char *path, bool required, const struct config_settings *cli,
               struct config **ret);
void config_free(struct config *c);

const struct config_settings *config_settings(const struct config *c);
/* Every error of the last reading as "FILE:LINE: message"; *in_settings:
 * how many of them are in utraced.conf itself. */
size_t config_errors(const struct config *c, const char *const **lines, size_t *in_settings);

/* utraced --check-config: also resolve and compile every probe; print the
 * errors to stderr, a summary to stdout; 0 when there is none, else 1. */
int config_check(struct config *c);

/*
 * Attach the configured probes at start: the difference to what the state
 * file brought back is applied, probe by probe (a probe that cannot be
 * attached is logged and left out). With errors in the probes directory
 * the configured probes stay as they were.
 */
void config_start(struct config *c, struct manager *m);

/*
 * Re-read the files and apply the difference: unchanged probes stay as they
 * are (links, counters), removed ones are detached, new and changed ones
 * attached. With any error, nothing changes and err says why. result (may be
 * NULL) receives {"added": [...], "changed": [...], "removed": [...],
 * "unchanged": [...]}.
 */
int config_reload(struct config *c, json_object **result, struct error *err);

/* {"file", "probes", "failed": [{"name", "error"}]} for the status method. */
json_object *config_status(const struct config *c);

/* The configuration's health, for metrics. */
struct config_health {
        size_t probes;             /* configured probes */
        size_t failed;             /* of them, not attached at start */
        uint64_t reloads;          /* reloads asked for (SIGHUP, reload) */
        uint64_t reloads_refused;  /* of them, refused */
        bool applied;              /* the last reading (start or reload) was applied */
        uint64_t applied_ns;       /* when a reading was last applied (CLOCK_REALTIME) */
};
void config_health(const struct config *c, struct config_health *ret);
