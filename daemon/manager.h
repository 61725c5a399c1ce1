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
 *
 * Changes are crash-safe: the state file records an attach or a detach
 * before the links are touched, so a start after a crash at any moment
 * removes a probe that was half attached or half detached; at start every
 * probe of the state file is adopted as it is pinned, re-attached (links
 * missing, made by another build, or files replaced) or removed, and pinned
 * links nothing claims are removed.
 */
struct manager;
struct config;
struct watch;

struct manager_opts {
        const char *bpffs_root;
        const char *state_dir;
        struct loader_opts loader;
};

int manager_new(const struct manager_opts *opts, struct manager **ret, struct error *err);
void manager_free(struct manager *m);

/* Attach a new probe described by spec (taken over, also on failure), owned
 * by uid owner; restricted: the owner is not privileged (probe.h). */
int manager_attach(struct manager *m, struct probe_spec *spec, const char *request, uid_t owner,
                   bool restricted, void *client, struct probe **ret, struct error *err);
/* Attach a configured probe, named name in the configuration. */
int manager_attach_config(struct manager *m, struct probe_spec *spec, const char *request,
                          const char *name, struct probe **ret, struct error *err);
/* Detach and forget p. */
void manager_detach(struct manager *m, struct probe *p);
/* Detach and forget n probes, recording the change once. */
void manager_detach_many(struct manager *m, struct probe *const *probes, size_t n);
/* Detach every transient probe owned by client. */
void manager_client_gone(struct manager *m, void *client);

/* Watched probes: attach p to one more file (probe_add_file: 1 if attached,
 * 0 if the file has nothing of p), and release the attachments marked in drop
 * (indexes of p->atts). Neither writes the state file: the caller does, with
 * manager_save(), once for a batch (until then, a start after a crash removes
 * the links the file does not list, and the watcher attaches again what
 * processes map). */
int manager_add_file(struct manager *m, struct probe *p, const char *path, const char *shown,
                     uint64_t kdev, uint64_t kino, struct error *err);
void manager_release_files(struct manager *m, struct probe *p, const bool *drop);
void manager_save(struct manager *m);
/* The watcher to tell when watched probes come and go. */
void manager_set_watch(struct manager *m, struct watch *w);
struct watch *manager_watch(struct manager *m);

struct probe *manager_find(struct manager *m, uint64_t id);
unsigned manager_count_owned(struct manager *m, uid_t owner);
struct probe *manager_by_slot(struct manager *m, uint32_t slot);
struct probe *const *manager_probes(struct manager *m, size_t *n);
struct loader *manager_loader(struct manager *m);
/* The configuration the daemon runs with (configured probes, reload). */
void manager_set_config(struct manager *m, struct config *c);
struct config *manager_config(struct manager *m);

/* Per-probe counters summed over CPUs. */
int manager_stats(struct manager *m, const struct probe *p, struct ut_stats *ret);

/* Each aggregation key of p with its value. */
typedef void (*manager_agg_cb)(const struct ut_agg_key *key, const struct ut_agg_val *val,
                               void *userdata);
int manager_aggregations(struct manager *m, const struct probe *p, manager_agg_cb cb,
                         void *userdata);
/* Every key of every probe's aggregation, in one pass over the map (key->probe
 * is the slot; manager_by_slot() finds the probe). */
void manager_aggregations_all(struct manager *m, manager_agg_cb cb, void *userdata);
