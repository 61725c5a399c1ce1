/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "errors.h"
#include "loader.h"
#include "probe.h"

/*
 * The manager owns every probe: ids, configuration slots and sites in the
 * BPF maps, pinned links and the state file. All mutable daemon state that
 * outlives a request lives here.
 */
struct manager;

struct manager_opts {
        const char *bpffs_root;
        const char *state_dir;
        struct loader_opts loader;
};

int manager_new(const struct manager_opts *opts, struct manager **ret, struct error *err);
void manager_free(struct manager *m);

/* Attach a new probe described by spec (taken over, also on failure). */
int manager_attach(struct manager *m, struct probe_spec *spec, const char *request, uid_t owner,
                   void *client, struct probe **ret, struct error *err);
/* Detach and forget p. */
void manager_detach(struct manager *m, struct probe *p);
/* Detach n probes; the state file is written once for all of them. */
void manager_detach_many(struct manager *m, struct probe *const *ps, size_t n);
/* Detach every transient probe owned by client. */
void manager_client_gone(struct manager *m, void *client);

struct probe *manager_find(struct manager *m, uint64_t id);
struct probe *manager_by_slot(struct manager *m, uint32_t slot);
struct probe *const *manager_probes(struct manager *m, size_t *n);
struct loader *manager_loader(struct manager *m);

/* Per-probe counters summed over CPUs. */
int manager_stats(struct manager *m, const struct probe *p, struct ut_stats *ret);

/* Each aggregation key of p with its value. */
typedef void (*manager_agg_cb)(const struct ut_agg_key *key, const struct ut_agg_val *val,
                               void *userdata);
int manager_aggregations(struct manager *m, const struct probe *p, manager_agg_cb cb,
                         void *userdata);
