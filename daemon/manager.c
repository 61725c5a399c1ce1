// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "manager.h"
#include "request.h"
#include "state.h"
#include "util.h"
#include "watch.h"

/* A slot or site freed by a detach stays unused this long: the kernel
 * releases unpinned links asynchronously, and a late hit must not land in a
 * probe that reused the slot. */
#define QUARANTINE_NS (3ULL * 1000000000ULL)

struct manager {
        struct loader *loader;
        char *root;
        char *state_path;
        struct probe **probes;
        size_t nprobes, probes_cap;
        struct probe *by_slot[UT_MAX_PROBES];
        uint64_t slot_freed[UT_MAX_PROBES];
        bool site_used[UT_MAX_SITES];
        uint64_t site_freed[UT_MAX_SITES];
        uint32_t site_hint;
        uint64_t next_id;
        int ncpus;
        struct ut_stats *percpu;
        struct config *config;
        struct watch *watch;
        bool readonly; /* the state file could not be read: never overwrite it */
        /* start-up: the probes of the state file, before they are reconciled */
        struct probe **loaded;
        size_t nloaded, loaded_cap;
};

static void save(struct manager *m)
{
        int r;

        if (m->readonly) {
                log_warning("%s is not written: it could not be read at start", m->state_path);
                return;
        }
        r = state_save(m->state_path, m->probes, m->nprobes, m->next_id);

        if (r < 0)
                log_error("cannot write %s: %s (probes stay attached; the file catches up with "
                          "the next change)", m->state_path, strerror(-r));
}

static int alloc_slot(struct manager *m, uint32_t *ret)
{
        uint64_t now = now_ns(CLOCK_MONOTONIC);

        for (uint32_t i = 0; i < UT_MAX_PROBES; i++)
                if (!m->by_slot[i] && (!m->slot_freed[i] || now - m->slot_freed[i] >= QUARANTINE_NS)) {
                        *ret = i;
                        return 0;
                }
        return -ENOSPC;
}

static int alloc_sites(struct manager *m, uint32_t *sites, size_t n)
{
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        size_t got = 0;

        if (!n)
                return 0; /* a watched USDT probe that has found no file yet */
        for (uint32_t k = 0; k < UT_MAX_SITES && got < n; k++) {
                uint32_t i = (m->site_hint + k) % UT_MAX_SITES;

                if (m->site_used[i] || (m->site_freed[i] && now - m->site_freed[i] < QUARANTINE_NS))
                        continue;
                sites[got++] = i;
        }
        if (got < n)
                return -ENOSPC;
        for (size_t i = 0; i < n; i++)
                m->site_used[sites[i]] = true;
        m->site_hint = (sites[n - 1] + 1) % UT_MAX_SITES;
        return 0;
}

static void for_each_site(struct probe *p, void (*fn)(struct manager *, uint32_t), struct manager *m)
{
        if (p->have_shared_site)
                fn(m, p->shared_site);
        else
                for (size_t i = 0; i < p->nlocs; i++)
                        if (!p->locs[i].hole)
                                fn(m, p->locs[i].site);
}

static void site_release(struct manager *m, uint32_t s)
{
        m->site_used[s] = false;
        m->site_freed[s] = now_ns(CLOCK_MONOTONIC);
}

static void site_claim(struct manager *m, uint32_t s)
{
        m->site_used[s] = true;
}

static int write_sites(struct manager *m, struct probe *p)
{
        int fd = loader_map_fd(m->loader, MAP_SITES);
        struct ut_site site;

        for (size_t k = 0; k < probe_nsites(p); k++) {
                uint32_t id = p->have_shared_site ? p->shared_site : p->locs[k].site;

                if (!p->have_shared_site && p->locs[k].hole)
                        continue;
                probe_site(p, k, &site);
                if (bpf_map_update_elem(fd, &id, &site, BPF_ANY) < 0)
                        return -errno;
        }
        return 0;
}

static int write_cfg(struct manager *m, struct probe *p, bool enabled)
{
        struct ut_probe cfg = p->cfg;

        cfg.gen = p->gen;
        if (!enabled)
                cfg.flags = 0;
        return bpf_map_update_elem(loader_map_fd(m->loader, MAP_PROBES), &p->slot, &cfg, BPF_ANY) < 0
                       ? -errno : 0;
}

/* Counters and aggregation keys of a slot start from zero for a new probe. */
static void reset_slot(struct manager *m, uint32_t slot)
{
        int afd = loader_map_fd(m->loader, MAP_AGGS);
        struct ut_agg_key key, next;
        bool have = false;
        uint32_t zero = 0;

        memset(m->percpu, 0, sizeof(*m->percpu) * m->ncpus);
        bpf_map_update_elem(loader_map_fd(m->loader, MAP_STATS), &slot, m->percpu, BPF_ANY);
        bpf_map_update_elem(loader_map_fd(m->loader, MAP_AGG_NKEYS), &slot, &zero, BPF_ANY);
        while (bpf_map_get_next_key(afd, have ? &key : NULL, &next) == 0) {
                if (next.probe == slot) {
                        bpf_map_delete_elem(afd, &next);
                        if (!have)
                                continue; /* restart from the beginning */
                } else {
                        key = next;
                        have = true;
                }
        }
}

static int register_probe(struct manager *m, struct probe *p)
{
        struct ut_stats st;

        if (grow_array(&m->probes, &m->probes_cap, m->nprobes + 1, sizeof(*m->probes)) < 0)
                return -ENOMEM;
        /* drops from before this instance adopted the probe are in its stats, not news */
        if (manager_stats(m, p, &st) == 0)
                p->drops_reported = st.lost + st.busy;
        m->probes[m->nprobes++] = p;
        m->by_slot[p->slot] = p;
        return 0;
}

static void unregister_probe(struct manager *m, struct probe *p)
{
        for (size_t i = 0; i < m->nprobes; i++)
                if (m->probes[i] == p) {
                        memmove(&m->probes[i], &m->probes[i + 1],
                                (m->nprobes - i - 1) * sizeof(*m->probes));
                        m->nprobes--;
                        break;
                }
        if (m->by_slot[p->slot] == p)
                m->by_slot[p->slot] = NULL;
}

/* Give p a slot and sites (reserved for it until released). */
static int alloc_probe(struct manager *m, struct probe *p, struct error *err)
{
        struct ut_probe old;
        size_t nsites = probe_nsites(p);
        _cleanup_free_ uint32_t *sites = calloc(nsites + 1, sizeof(uint32_t));

        if (!sites)
                return -ENOMEM;
        if (alloc_slot(m, &p->slot) < 0)
                return error_set(err, E_LIMIT, -ENOSPC, "all %d probe slots are in use",
                                 UT_MAX_PROBES);
        if (alloc_sites(m, sites, nsites) < 0)
                return error_set(err, E_LIMIT, -ENOSPC,
                                 "%s needs %zu argument sites; too few of %d are free",
                                 p->spec.text, nsites, UT_MAX_SITES);
        if (p->spec.type == PROBE_USDT) {
                p->have_shared_site = false;
                for (size_t i = 0; i < p->nlocs; i++)
                        p->locs[i].site = sites[i];
        } else {
                p->have_shared_site = true;
                p->shared_site = sites[0];
                for (size_t i = 0; i < p->nlocs; i++)
                        p->locs[i].site = sites[0];
        }
        p->gen = 1;
        if (bpf_map_lookup_elem(loader_map_fd(m->loader, MAP_PROBES), &p->slot, &old) == 0)
                p->gen = old.gen + 1;
        m->by_slot[p->slot] = p; /* reserved while attaching */
        return 0;
}

/* Give back what alloc_probe reserved; both stay unused for a while. */
static void release_probe(struct manager *m, struct probe *p)
{
        for_each_site(p, site_release, m);
        if (m->by_slot[p->slot] == p)
                m->by_slot[p->slot] = NULL;
        m->slot_freed[p->slot] = now_ns(CLOCK_MONOTONIC);
}

/* Write p's sites and slot, and create and pin the links of every attachment
 * (numbered from p->next_pin on). */
static int attach_all(struct manager *m, struct probe *p, struct error *err)
{
        int r = write_sites(m, p);

        if (r >= 0)
                r = write_cfg(m, p, true);
        if (r < 0)
                r = error_set(err, E_INTERNAL, r, "cannot configure probe slot: %s", strerror(-r));
        for (size_t i = 0; r >= 0 && i < p->natts; i++) {
                p->atts[i].pin_count = 0;
                r = probe_attach(p, &p->atts[i], m->loader, m->root, err);
        }
        probe_release_files(p); /* the links hold the files now */
        return r;
}

/* Give p a slot and sites, configure them and attach every attachment. */
static int setup_probe(struct manager *m, struct probe *p, struct error *err)
{
        int r = alloc_probe(m, p, err);

        if (r < 0)
                return r;
        reset_slot(m, p->slot);
        r = attach_all(m, p, err);
        if (r < 0) {
                write_cfg(m, p, false);
                probe_unpin(p, m->root);
                release_probe(m, p);
        }
        return r;
}

static int attach_probe(struct manager *m, struct probe_spec *spec, const char *request,
                        uid_t owner, bool restricted, void *client, const char *config,
                        struct probe **ret, struct error *err)
{
        struct probe *p = probe_new();
        int r;

        if (!p) {
                probe_spec_done(spec);
                return -ENOMEM;
        }
        p->spec = *spec;
        memset(spec, 0, sizeof(*spec));
        p->request = strdup(request);
        p->config = config ? strdup(config) : NULL;
        p->owner = owner;
        p->restricted = restricted;
        p->client = p->spec.transient ? client : NULL;
        p->created = now_ns(CLOCK_REALTIME);
        if (!p->request || (config && !p->config)) {
                r = -ENOMEM;
                goto fail;
        }
        r = probe_resolve(p, err);
        if (r < 0)
                goto fail;
        r = probe_compile(p, err);
        if (r < 0)
                goto fail;
        r = alloc_probe(m, p, err);
        if (r < 0)
                goto fail;
        p->id = m->next_id++;
        r = register_probe(m, p);
        if (r < 0) {
                release_probe(m, p);
                goto fail;
        }
        /* the intent first: a start after a crash from here on removes the probe */
        p->intent = PROBE_ATTACHING;
        save(m);
        reset_slot(m, p->slot);
        r = attach_all(m, p, err);
        if (r < 0) {
                write_cfg(m, p, false);
                probe_unpin(p, m->root);
                release_probe(m, p);
                unregister_probe(m, p);
                save(m);
                goto fail;
        }
        p->intent = PROBE_STEADY;
        save(m);
        if (probe_watched(p) && m->watch)
                watch_probe_added(m->watch, p); /* the files processes map now */
        log_info("probe %llu attached: %s (%zu location%s in %zu file%s)%s%s%s%s",
                 (unsigned long long)p->id, p->spec.text, probe_nlocations(p),
                 probe_nlocations(p) == 1 ? "" : "s", p->natts, p->natts == 1 ? "" : "s",
                 p->spec.pid ? " for one process" : "",
                 probe_watched(p) ? ", watching for more" : "",
                 p->config ? ", configured as " : "", p->config ? p->config : "");
        *ret = p;
        return 0;
fail:
        probe_free(p);
        return r;
}

int manager_attach(struct manager *m, struct probe_spec *spec, const char *request, uid_t owner,
                   bool restricted, void *client, struct probe **ret, struct error *err)
{
        return attach_probe(m, spec, request, owner, restricted, client, NULL, ret, err);
}

int manager_attach_config(struct manager *m, struct probe_spec *spec, const char *request,
                          const char *name, struct probe **ret, struct error *err)
{
        return attach_probe(m, spec, request, 0, false, NULL, name, ret, err);
}

void manager_detach_many(struct manager *m, struct probe *const *probes, size_t n)
{
        bool watched = false;

        if (!n)
                return;
        /* the intent first: a start after a crash from here on finishes the detach */
        for (size_t i = 0; i < n; i++)
                probes[i]->intent = PROBE_DETACHING;
        save(m);
        for (size_t i = 0; i < n; i++) {
                struct probe *p = probes[i];

                write_cfg(m, p, false);
                probe_unpin(p, m->root);
                release_probe(m, p);
                unregister_probe(m, p);
                log_info("probe %llu detached: %s", (unsigned long long)p->id, p->spec.text);
                watched |= probe_watched(p);
                probe_free(p);
        }
        save(m);
        if (watched && m->watch)
                watch_update(m->watch);
}

int manager_add_file(struct manager *m, struct probe *p, const char *path, const char *shown,
                     uint64_t kdev, uint64_t kino, struct error *err)
{
        struct attachment *a;
        size_t n;
        int r = probe_add_file(p, path, shown, kdev, kino, err);

        if (r <= 0)
                return r;
        a = &p->atts[p->natts - 1];
        n = a->loc_count;
        if (p->have_shared_site) {
                for (size_t i = 0; i < n; i++)
                        p->locs[a->loc_first + i].site = p->shared_site;
        } else {
                _cleanup_free_ uint32_t *sites = calloc(n, sizeof(uint32_t));
                int fd = loader_map_fd(m->loader, MAP_SITES);

                if (!sites || alloc_sites(m, sites, n) < 0) {
                        probe_remove_attachment(p, p->natts - 1, m->root);
                        return error_set(err, E_LIMIT, -ENOSPC,
                                         "%s in %s needs %zu argument sites; too few are free",
                                         p->spec.text, shown, n);
                }
                for (size_t i = 0; i < n; i++) {
                        struct ut_site site;

                        p->locs[a->loc_first + i].site = sites[i];
                        probe_site(p, a->loc_first + i, &site);
                        bpf_map_update_elem(fd, &sites[i], &site, BPF_ANY);
                }
        }
        r = probe_attach(p, a, m->loader, m->root, err);
        probe_release_files(p);
        if (r < 0) {
                if (!p->have_shared_site)
                        for (size_t i = 0; i < n; i++)
                                site_release(m, p->locs[a->loc_first + i].site);
                probe_remove_attachment(p, p->natts - 1, m->root);
                return r;
        }
        return 1;
}

void manager_release_files(struct manager *m, struct probe *p, const bool *drop)
{
        size_t n = p->natts;

        for (size_t i = n; i-- > 0;) {
                struct attachment *a = &p->atts[i];

                if (!drop[i])
                        continue;
                if (!p->have_shared_site)
                        for (size_t k = 0; k < a->loc_count; k++)
                                site_release(m, p->locs[a->loc_first + k].site);
                probe_remove_attachment(p, i, m->root);
        }
}

void manager_save(struct manager *m)
{
        save(m);
}

void manager_set_watch(struct manager *m, struct watch *w)
{
        m->watch = w;
}

struct watch *manager_watch(struct manager *m)
{
        return m->watch;
}

void manager_detach(struct manager *m, struct probe *p)
{
        manager_detach_many(m, &p, 1);
}

void manager_client_gone(struct manager *m, void *client)
{
        _cleanup_free_ struct probe **gone = calloc(m->nprobes + 1, sizeof(*gone));
        size_t n = 0;

        if (!gone)
                return;
        for (size_t i = 0; i < m->nprobes; i++)
                if (m->probes[i]->client == client)
                        gone[n++] = m->probes[i];
        manager_detach_many(m, gone, n);
}

unsigned manager_count_owned(struct manager *m, uid_t owner)
{
        unsigned n = 0;

        for (size_t i = 0; i < m->nprobes; i++)
                n += m->probes[i]->owner == owner;
        return n;
}

struct probe *manager_find(struct manager *m, uint64_t id)
{
        for (size_t i = 0; i < m->nprobes; i++)
                if (m->probes[i]->id == id)
                        return m->probes[i];
        return NULL;
}

struct probe *manager_by_slot(struct manager *m, uint32_t slot)
{
        return slot < UT_MAX_PROBES ? m->by_slot[slot] : NULL;
}

struct probe *const *manager_probes(struct manager *m, size_t *n)
{
        *n = m->nprobes;
        return m->probes;
}

struct loader *manager_loader(struct manager *m)
{
        return m->loader;
}

void manager_set_config(struct manager *m, struct config *c)
{
        m->config = c;
}

struct config *manager_config(struct manager *m)
{
        return m->config;
}

int manager_stats(struct manager *m, const struct probe *p, struct ut_stats *ret)
{
        memset(ret, 0, sizeof(*ret));
        if (bpf_map_lookup_elem(loader_map_fd(m->loader, MAP_STATS), &p->slot, m->percpu) < 0)
                return -errno;
        for (int c = 0; c < m->ncpus; c++) {
                const __u64 *src = (const __u64 *)&m->percpu[c];
                __u64 *dst = (__u64 *)ret;

                for (size_t k = 0; k < sizeof(*ret) / sizeof(__u64); k++)
                        dst[k] += src[k];
        }
        return 0;
}

/* Every key of the aggregation map, or those of slot only (slot < UT_MAX_PROBES). */
static void walk_aggregations(struct manager *m, uint32_t slot, manager_agg_cb cb, void *userdata)
{
        int fd = loader_map_fd(m->loader, MAP_AGGS);
        struct ut_agg_key key, next;
        struct ut_agg_val val;
        bool have = false;

        while (bpf_map_get_next_key(fd, have ? &key : NULL, &next) == 0) {
                key = next;
                have = true;
                if (slot < UT_MAX_PROBES && key.probe != slot)
                        continue;
                if (bpf_map_lookup_elem(fd, &key, &val) == 0)
                        cb(&key, &val, userdata);
        }
}

int manager_aggregations(struct manager *m, const struct probe *p, manager_agg_cb cb,
                         void *userdata)
{
        if (p->cfg.mode == UT_MODE_COUNT && p->cfg.key_src == UT_SRC_NONE) {
                /* counted per CPU in the stats, without a map entry (utrace.h) */
                struct ut_agg_key key = { .probe = p->slot };
                struct ut_agg_val val = { 0 };
                struct ut_stats st;
                int r = manager_stats(m, p, &st);

                if (r < 0)
                        return r;
                val.count = st.aggregated;
                if (val.count)
                        cb(&key, &val, userdata);
                return 0;
        }
        walk_aggregations(m, p->slot, cb, userdata);
        return 0;
}

void manager_aggregations_all(struct manager *m, manager_agg_cb cb, void *userdata)
{
        walk_aggregations(m, UT_MAX_PROBES, cb, userdata);
}

/* --- start-up: adopt what is pinned, finish what was interrupted ----------- */

/*
 * Every probe of the state file is brought to one of two ends: attached
 * exactly once by this build's programs (adopted as it is, or re-attached),
 * or cleanly gone (no pin, slot disabled). Pinned links nothing claims are
 * removed. Each step is idempotent, so a crash during the start itself
 * converges at the next one.
 */

static bool sites_free(const struct manager *m, const struct probe *p)
{
        if (p->have_shared_site)
                return !m->site_used[p->shared_site];
        for (size_t i = 0; i < p->nlocs; i++)
                if (!p->locs[i].hole && m->site_used[p->locs[i].site])
                        return false;
        return true;
}

static void quarantine(struct manager *m, struct probe *p)
{
        uint64_t now = now_ns(CLOCK_MONOTONIC);

        m->slot_freed[p->slot] = now;
        if (p->have_shared_site) {
                m->site_freed[p->shared_site] = now;
        } else {
                for (size_t i = 0; i < p->nlocs; i++)
                        if (!p->locs[i].hole)
                                m->site_freed[p->locs[i].site] = now;
        }
}

/* Remove a probe of the state file: links, slot configuration, the probe. */
static void drop(struct manager *m, struct probe *p)
{
        char dir[PATH_MAX];
        struct ut_probe cur;

        probe_pin_path(dir, sizeof(dir), m->root, p->id, UINT_MAX);
        loader_purge(dir);
        if ((!m->by_slot[p->slot] || m->by_slot[p->slot] == p) &&
            bpf_map_lookup_elem(loader_map_fd(m->loader, MAP_PROBES), &p->slot, &cur) == 0 &&
            cur.gen == p->gen)
                write_cfg(m, p, false);
        if (m->by_slot[p->slot] == p) {
                for_each_site(p, site_release, m);
                m->by_slot[p->slot] = NULL;
        }
        quarantine(m, p);
        probe_free(p);
}

/* Unlink the probe's pins numbered below `below` (those of an earlier attach). */
static void unpin_below(struct manager *m, const struct probe *p, unsigned below)
{
        char path[PATH_MAX];

        for (unsigned n = 0; n < below; n++) {
                probe_pin_path(path, sizeof(path), m->root, p->id, n);
                unlink(path);
        }
}

static bool pin_recorded(const struct probe *p, unsigned n)
{
        for (size_t i = 0; i < p->natts; i++)
                if (n >= p->atts[i].pin_first && n < p->atts[i].pin_first + p->atts[i].pin_count)
                        return true;
        return false;
}

/* Pins in the probe's directory that the state file does not list (a crash
 * between pinning and writing the file) are removed; returns how many. */
static unsigned remove_unrecorded_pins(struct manager *m, const struct probe *p)
{
        char dir[PATH_MAX], path[PATH_MAX + 256];
        unsigned removed = 0;
        struct dirent *de;
        DIR *d;

        probe_pin_path(dir, sizeof(dir), m->root, p->id, UINT_MAX);
        d = opendir(dir);
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                unsigned long long n;

                if (de->d_name[0] == '.')
                        continue;
                if (parse_u64(de->d_name, &n) == 0 && n < UINT_MAX && pin_recorded(p, (unsigned)n))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                if (unlink(path) == 0)
                        removed++;
        }
        closedir(d);
        return removed;
}

/* Recorded pins that are missing, and those made by another build or for
 * maps that were replaced. */
static void inspect_pins(struct manager *m, const struct probe *p, unsigned *missing,
                         unsigned *stale, unsigned *total)
{
        char path[PATH_MAX];

        *missing = *stale = *total = 0;
        for (size_t i = 0; i < p->natts; i++)
                for (unsigned k = 0; k < p->atts[i].pin_count; k++) {
                        int r;

                        probe_pin_path(path, sizeof(path), m->root, p->id, p->atts[i].pin_first + k);
                        r = loader_link_current(m->loader, path);
                        (*total)++;
                        if (r == -ENOENT)
                                (*missing)++;
                        else if (r <= 0)
                                (*stale)++;
                }
}

/* The first attachment whose file is gone or is now another file. */
static const struct attachment *dead_file(const struct probe *p)
{
        struct stat st;

        for (size_t i = 0; i < p->natts; i++)
                if (!p->atts[i].watched &&
                    (stat(p->atts[i].path, &st) < 0 || st.st_dev != p->atts[i].dev ||
                     st.st_ino != p->atts[i].ino))
                        return &p->atts[i];
        return NULL;
}

/* Watched attachments whose links are not all there and current are
 * released: the watcher attaches again what processes still map. */
static void prune_watched(struct manager *m, struct probe *p, const char *name)
{
        _cleanup_free_ bool *drop = calloc(p->natts + 1, sizeof(bool));
        unsigned n = 0;
        char path[PATH_MAX];

        if (!drop)
                return;
        for (size_t i = 0; i < p->natts; i++) {
                const struct attachment *a = &p->atts[i];

                for (unsigned k = 0; a->watched && k < a->pin_count && !drop[i]; k++) {
                        probe_pin_path(path, sizeof(path), m->root, p->id, a->pin_first + k);
                        drop[i] = loader_link_current(m->loader, path) <= 0;
                }
                drop[i] |= a->watched && !a->pin_count;
                n += drop[i];
        }
        if (!n)
                return;
        manager_release_files(m, p, drop);
        log_notice("%s: %u watched file%s released (links missing or of another build); "
                   "attached again where processes map them", name, n, n == 1 ? "" : "s");
}

/*
 * Attach p anew with the same id, slot and generation (its counters and
 * aggregations go on), then remove its earlier links. fresh, if given, is p
 * resolved again: it takes p's place and p is freed.
 */
static int reattach(struct manager *m, struct probe *p, struct probe *fresh, struct probe **ret,
                    struct error *err)
{
        unsigned old_pins = p->next_pin;
        struct probe *q = p;
        int r;

        if (fresh) {
                size_t nsites = probe_nsites(fresh);
                _cleanup_free_ uint32_t *sites = calloc(nsites + 1, sizeof(uint32_t));

                if (!sites)
                        return -ENOMEM;
                if (alloc_sites(m, sites, nsites) < 0)
                        return error_set(err, E_LIMIT, -ENOSPC, "too few argument sites are free");
                fresh->have_shared_site = fresh->spec.type != PROBE_USDT;
                fresh->shared_site = sites[0];
                for (size_t i = 0; i < fresh->nlocs; i++)
                        fresh->locs[i].site = fresh->have_shared_site ? sites[0] : sites[i];
                fresh->id = p->id;
                fresh->slot = p->slot;
                fresh->gen = p->gen;
                fresh->owner = p->owner;
                fresh->restricted = p->restricted;
                fresh->created = p->created;
                fresh->next_pin = p->next_pin;
                fresh->config = TAKE_PTR(p->config);
                for_each_site(p, site_release, m);
                m->by_slot[p->slot] = fresh;
                q = fresh;
        }
        r = attach_all(m, q, err);
        if (r < 0) {
                /* p as it was, for the caller to remove with every pin */
                if (fresh) {
                        for_each_site(fresh, site_release, m);
                        m->by_slot[p->slot] = p;
                        for_each_site(p, site_claim, m);
                        p->config = TAKE_PTR(fresh->config);
                }
                return r;
        }
        unpin_below(m, q, old_pins);
        if (fresh)
                probe_free(p);
        *ret = q;
        return 0;
}

/* p, resolved again from its request, with nothing attached yet. */
static int resolve_again(const struct probe *p, struct probe **ret, struct error *err)
{
        struct probe *q = probe_new();
        json_object *req = json_tokener_parse(p->request);
        int r;

        if (!q || !req) {
                json_object_put(req);
                probe_free(q);
                return error_set(err, E_INTERNAL, -ENOMEM, "cannot read the stored request");
        }
        r = request_parse_attach(req, &q->spec, err);
        json_object_put(req);
        q->request = strdup(p->request);
        if (r >= 0 && !q->request)
                r = -ENOMEM;
        if (r >= 0)
                r = probe_resolve(q, err);
        if (r >= 0)
                r = probe_compile(q, err);
        if (r < 0) {
                probe_free(q);
                return r;
        }
        *ret = q;
        return 0;
}

static const char *probe_name(const struct probe *p, char *buf, size_t size)
{
        if (p->config)
                snprintf(buf, size, "probe %llu (%s)", (unsigned long long)p->id, p->config);
        else
                snprintf(buf, size, "probe %llu", (unsigned long long)p->id);
        return buf;
}

/* Bring one probe of the state file to an end: registered, or removed. */
static void reconcile(struct manager *m, struct probe *p)
{
        const struct attachment *dead;
        struct error err = { 0 };
        unsigned missing, stale, total, extra;
        char name[128];
        struct ut_probe cur;
        int r;

        probe_name(p, name, sizeof(name));
        if (p->spec.pid && kill(p->spec.pid, 0) < 0 && errno == ESRCH) {
                log_notice("%s (%s): process %d is gone: removed", name, p->spec.text,
                           (int)p->spec.pid);
                drop(m, p);
                return;
        }
        if (probe_watched(p))
                prune_watched(m, p, name);
        extra = remove_unrecorded_pins(m, p);
        if (extra)
                log_notice("%s: %u pinned link%s not in the state file removed (a crash "
                           "while attaching)", name, extra, extra == 1 ? "" : "s");
        dead = dead_file(p);
        if (dead) {
                struct probe *fresh = NULL, *q = NULL;
                char file[PATH_MAX];

                snprintf(file, sizeof(file), "%s", dead->path);
                r = resolve_again(p, &fresh, &err);
                if (r >= 0)
                        r = reattach(m, p, fresh, &q, &err);
                if (r < 0) {
                        probe_free(fresh);
                        log_warning("%s (%s): %s is not the file the probe was attached to "
                                    "(deleted or replaced since), and the probe cannot be "
                                    "attached again (%s): removed", name, p->spec.text, file,
                                    err.msg[0] ? err.msg : strerror(-r));
                        drop(m, p);
                        return;
                }
                log_notice("%s (%s): %s is not the file the probe was attached to (deleted "
                           "or replaced since): re-attached to what the spec names now", name,
                           q->spec.text, file);
                register_probe(m, q);
                return;
        }
        inspect_pins(m, p, &missing, &stale, &total);
        if (missing || stale || (total == 0 && p->natts)) {
                struct probe *q = NULL;

                r = reattach(m, p, NULL, &q, &err);
                if (r < 0) {
                        log_error("%s (%s) could not be attached again: %s: removed", name,
                                  p->spec.text, err.msg[0] ? err.msg : strerror(-r));
                        drop(m, p);
                        return;
                }
                if (stale)
                        log_notice("%s (%s) migrated to this build: %u link%s of other BPF "
                                   "programs or replaced maps re-made", name, p->spec.text,
                                   stale, stale == 1 ? "" : "s");
                else
                        log_notice("%s (%s) re-attached: %u of %u pinned links were missing",
                                   name, p->spec.text, missing, total);
                register_probe(m, q);
                return;
        }
        if (bpf_map_lookup_elem(loader_map_fd(m->loader, MAP_PROBES), &p->slot, &cur) < 0 ||
            cur.gen != p->gen || cur.flags != p->cfg.flags ||
            memcmp(&cur.vals, &p->cfg.vals, sizeof(cur) - offsetof(struct ut_probe, vals)) != 0) {
                log_notice("%s: slot configuration restored", name);
                write_sites(m, p);
                write_cfg(m, p, true);
        }
        register_probe(m, p);
        log_info("%s adopted: %s", name, p->spec.text);
}

static void loaded(struct probe *p, void *userdata)
{
        struct manager *m = userdata;

        if (p->id >= m->next_id)
                m->next_id = p->id + 1;
        if (grow_array(&m->loaded, &m->loaded_cap, m->nloaded + 1, sizeof(*m->loaded)) < 0) {
                log_error("probe %llu: out of memory: left as it is", (unsigned long long)p->id);
                probe_free(p);
                return;
        }
        m->loaded[m->nloaded++] = p;
}

static void unreadable(uint64_t id, const char *reason, void *userdata)
{
        struct manager *m = userdata;
        char path[PATH_MAX];

        if (!id) {
                log_error("state file: %s; pinned links no line claims are removed", reason);
                return;
        }
        if (id >= m->next_id)
                m->next_id = id + 1;
        log_error("probe %llu in the state file cannot be restored (%s): its links are removed",
                  (unsigned long long)id, reason);
        probe_pin_path(path, sizeof(path), m->root, id, UINT_MAX);
        loader_purge(path);
}

/* Pinned link directories no probe claims: leftovers of a crash mid-attach,
 * or of a state file line that was lost. */
static void remove_orphans(struct manager *m)
{
        char path[PATH_MAX];
        struct dirent *de;
        DIR *d;

        snprintf(path, sizeof(path), "%s/links", m->root);
        d = opendir(path);
        if (!d)
                return;
        while ((de = readdir(d))) {
                unsigned long long id;
                char sub[PATH_MAX + 256];

                if (de->d_name[0] == '.')
                        continue;
                if (parse_u64(de->d_name, &id) == 0 && manager_find(m, id))
                        continue;
                snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                loader_purge(sub);
                log_warning("removed pinned links of unknown probe %s", de->d_name);
                if (parse_u64(de->d_name, &id) == 0 && id >= m->next_id)
                        m->next_id = id + 1;
        }
        closedir(d);
}

static void restore(struct manager *m)
{
        struct probe **list = TAKE_PTR(m->loaded);
        size_t n = m->nloaded;
        _cleanup_free_ bool *conflict = calloc(n + 1, sizeof(bool));

        m->nloaded = m->loaded_cap = 0;
        if (!conflict) {
                for (size_t i = 0; i < n; i++)
                        probe_free(list[i]);
                free(list);
                return;
        }
        /* first what was interrupted and what cannot stay, then claims */
        for (size_t i = 0; i < n; i++) {
                struct probe *p = list[i];
                bool dup = false;

                for (size_t k = 0; k < i; k++)
                        dup |= list[k] && list[k]->id == p->id;
                if (dup) {
                        log_error("probe %llu is in the state file twice: the second entry is "
                                  "ignored", (unsigned long long)p->id);
                        probe_free(p);
                        list[i] = NULL;
                } else if (p->intent != PROBE_STEADY) {
                        log_notice("probe %llu (%s) was being %s when utraced stopped: removed",
                                   (unsigned long long)p->id, p->spec.text,
                                   p->intent == PROBE_ATTACHING ? "attached" : "detached");
                        drop(m, p);
                        list[i] = NULL;
                } else if (p->spec.transient) {
                        log_info("probe %llu was tied to a client of the previous instance: "
                                 "detached", (unsigned long long)p->id);
                        drop(m, p);
                        list[i] = NULL;
                } else if (!m->by_slot[p->slot] && sites_free(m, p)) {
                        m->by_slot[p->slot] = p;
                        for_each_site(p, site_claim, m);
                } else {
                        conflict[i] = true;
                }
        }
        for (size_t i = 0; i < n; i++) {
                struct probe *p = list[i];
                struct error err = { 0 };

                if (!p)
                        continue;
                if (!conflict[i]) {
                        reconcile(m, p);
                        continue;
                }
                /* the state disagrees with itself: a new slot, counters from zero */
                probe_unpin(p, m->root);
                p->next_pin = 0;
                if (setup_probe(m, p, &err) < 0 || register_probe(m, p) < 0) {
                        log_error("probe %llu (%s) could not be restored: %s",
                                  (unsigned long long)p->id, p->spec.text,
                                  err.msg[0] ? err.msg : "out of memory");
                        probe_free(p);
                        continue;
                }
                log_notice("probe %llu re-attached in a new slot: its slot was claimed twice in "
                           "the state file", (unsigned long long)p->id);
        }
        free(list);
}

void manager_free(struct manager *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->nprobes; i++)
                probe_free(m->probes[i]);
        free(m->probes);
        free(m->loaded);
        loader_free(m->loader);
        free(m->percpu);
        free(m->root);
        free(m->state_path);
        free(m);
}

int manager_new(const struct manager_opts *opts, struct manager **ret, struct error *err)
{
        struct manager *m = calloc(1, sizeof(*m));
        char path[PATH_MAX];
        uint64_t next_id = 1;
        int r;

        if (!m)
                return -ENOMEM;
        m->next_id = 1;
        m->ncpus = libbpf_num_possible_cpus();
        m->root = strdup(opts->bpffs_root);
        snprintf(path, sizeof(path), "%s/state.json", opts->state_dir);
        m->state_path = strdup(path);
        m->percpu = calloc(m->ncpus > 0 ? m->ncpus : 1, sizeof(*m->percpu));
        if (!m->root || !m->state_path || !m->percpu || m->ncpus <= 0) {
                manager_free(m);
                return -ENOMEM;
        }
        r = mkdir_p(opts->state_dir, 0700);
        if (r < 0) {
                manager_free(m);
                return error_set(err, E_INTERNAL, r, "cannot create %s: %s", opts->state_dir,
                                 strerror(-r));
        }
        {
                struct loader_opts lo = opts->loader;

                snprintf(path, sizeof(path), "%s/layout", opts->state_dir);
                lo.layout_path = path;
                r = loader_open(opts->bpffs_root, &lo, &m->loader, err);
        }
        if (r < 0) {
                manager_free(m);
                return r;
        }
        {
                struct error serr = { 0 };

                r = state_load(m->state_path, loaded, unreadable, m, &next_id, &serr);
                if (r < 0 && r != -ENOENT) {
                        /* unreadable (not damaged): keep the pinned links firing, and the file */
                        log_error("%s: pinned probes stay attached but unknown to this instance; "
                                  "fix the file and restart, or remove everything with utraced "
                                  "--purge", serr.msg);
                        for (size_t i = 0; i < m->nloaded; i++)
                                probe_free(m->loaded[i]);
                        m->nloaded = 0;
                        m->readonly = true;
                        *ret = m;
                        return 0;
                }
                if (r > 0)
                        log_error("%s", serr.msg);
                if (next_id > m->next_id)
                        m->next_id = next_id;
        }
        restore(m);
        remove_orphans(m);
        save(m);
        *ret = m;
        return 0;
}
