// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "manager.h"
#include "state.h"
#include "util.h"

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
};

static void save(struct manager *m)
{
        int r = state_save(m->state_path, m->probes, m->nprobes, m->next_id);

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
        if (grow_array(&m->probes, &m->probes_cap, m->nprobes + 1, sizeof(*m->probes)) < 0)
                return -ENOMEM;
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

/* Give p a slot and sites, configure them and attach every attachment. */
static int setup_probe(struct manager *m, struct probe *p, struct error *err)
{
        struct ut_probe old;
        size_t nsites = probe_nsites(p);
        _cleanup_free_ uint32_t *sites = calloc(nsites, sizeof(uint32_t));
        size_t attached = 0;
        int r;

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
        reset_slot(m, p->slot);
        r = write_sites(m, p);
        if (r >= 0)
                r = write_cfg(m, p, true);
        if (r < 0) {
                r = error_set(err, E_INTERNAL, r, "cannot configure probe slot: %s", strerror(-r));
                goto fail;
        }
        for (; attached < p->natts; attached++) {
                r = probe_attach(p, &p->atts[attached], m->loader, m->root, err);
                if (r < 0)
                        goto fail;
        }
        return 0;
fail:
        write_cfg(m, p, false);
        probe_unpin(p, m->root);
        for_each_site(p, site_release, m);
        m->by_slot[p->slot] = NULL;
        m->slot_freed[p->slot] = now_ns(CLOCK_MONOTONIC);
        return r;
}

int manager_attach(struct manager *m, struct probe_spec *spec, const char *request, uid_t owner,
                   void *client, struct probe **ret, struct error *err)
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
        p->owner = owner;
        p->client = p->spec.transient ? client : NULL;
        p->created = now_ns(CLOCK_REALTIME);
        if (!p->request) {
                r = -ENOMEM;
                goto fail;
        }
        r = probe_resolve(p, err);
        if (r < 0)
                goto fail;
        r = probe_compile(p, err);
        if (r < 0)
                goto fail;
        p->id = m->next_id++;
        r = setup_probe(m, p, err);
        if (r < 0)
                goto fail;
        r = register_probe(m, p);
        if (r < 0) {
                manager_detach(m, p);
                return r;
        }
        save(m);
        log_info("probe %llu attached: %s (%zu location%s in %zu file%s)%s",
                 (unsigned long long)p->id, p->spec.text, p->nlocs, p->nlocs == 1 ? "" : "s",
                 p->natts, p->natts == 1 ? "" : "s", p->spec.pid ? " for one process" : "");
        *ret = p;
        return 0;
fail:
        probe_free(p);
        return r;
}

/* Detach without writing the state file: callers write it once per batch. */
static void detach_one(struct manager *m, struct probe *p)
{
        write_cfg(m, p, false);
        probe_unpin(p, m->root);
        for_each_site(p, site_release, m);
        m->slot_freed[p->slot] = now_ns(CLOCK_MONOTONIC);
        unregister_probe(m, p);
        log_info("probe %llu detached: %s", (unsigned long long)p->id, p->spec.text);
        probe_free(p);
}

void manager_detach(struct manager *m, struct probe *p)
{
        manager_detach_many(m, &p, 1);
}

void manager_detach_many(struct manager *m, struct probe *const *ps, size_t n)
{
        for (size_t i = 0; i < n; i++)
                detach_one(m, ps[i]);
        if (n)
                save(m);
}

void manager_client_gone(struct manager *m, void *client)
{
        size_t n = 0;

        for (size_t i = m->nprobes; i > 0; i--)
                if (m->probes[i - 1]->client == client) {
                        detach_one(m, m->probes[i - 1]);
                        n++;
                }
        if (n)
                save(m);
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

int manager_aggregations(struct manager *m, const struct probe *p, manager_agg_cb cb,
                         void *userdata)
{
        int fd = loader_map_fd(m->loader, MAP_AGGS);
        struct ut_agg_key key, next;
        struct ut_agg_val val;
        bool have = false;

        if (p->cfg.mode == UT_MODE_COUNT && p->cfg.key_src == UT_SRC_NONE) {
                /* counted per CPU in the stats, without a map entry (utrace.h) */
                struct ut_stats st;
                int r = manager_stats(m, p, &st);

                if (r < 0)
                        return r;
                memset(&key, 0, sizeof(key));
                memset(&val, 0, sizeof(val));
                key.probe = p->slot;
                val.count = st.aggregated;
                if (val.count)
                        cb(&key, &val, userdata);
                return 0;
        }

        while (bpf_map_get_next_key(fd, have ? &key : NULL, &next) == 0) {
                key = next;
                have = true;
                if (key.probe != p->slot)
                        continue;
                if (bpf_map_lookup_elem(fd, &key, &val) == 0)
                        cb(&key, &val, userdata);
        }
        return 0;
}

/* --- start-up: adopt what is pinned ---------------------------------------- */

static bool pins_present(const struct manager *m, const struct probe *p)
{
        char path[PATH_MAX];

        for (size_t i = 0; i < p->natts; i++)
                for (unsigned k = 0; k < p->atts[i].pin_count; k++) {
                        snprintf(path, sizeof(path), "%s/links/%llu/%u", m->root,
                                 (unsigned long long)p->id, p->atts[i].pin_first + k);
                        if (access(path, F_OK) < 0)
                                return false;
                }
        return p->natts > 0;
}

static bool sites_free(const struct manager *m, const struct probe *p)
{
        if (p->have_shared_site)
                return !m->site_used[p->shared_site];
        for (size_t i = 0; i < p->nlocs; i++)
                if (m->site_used[p->locs[i].site])
                        return false;
        return true;
}

static void adopt(struct probe *p, void *userdata)
{
        struct manager *m = userdata;
        struct error err = { 0 };
        struct ut_probe cur;

        if (p->id >= m->next_id)
                m->next_id = p->id + 1;
        if (p->spec.transient) {
                log_info("probe %llu was tied to a client of the previous instance: detached",
                         (unsigned long long)p->id);
                probe_unpin(p, m->root);
                probe_free(p);
                return;
        }
        if (pins_present(m, p) && !m->by_slot[p->slot] && sites_free(m, p)) {
                for_each_site(p, site_claim, m);
                if (bpf_map_lookup_elem(loader_map_fd(m->loader, MAP_PROBES), &p->slot, &cur) < 0 ||
                    cur.gen != p->gen || memcmp(&cur.vals, &p->cfg.vals,
                                                sizeof(cur) - offsetof(struct ut_probe, vals)) != 0 ||
                    cur.flags != p->cfg.flags) {
                        log_notice("probe %llu: slot configuration restored", (unsigned long long)p->id);
                        write_sites(m, p);
                        write_cfg(m, p, true);
                }
                if (register_probe(m, p) < 0) {
                        probe_free(p);
                        return;
                }
                log_info("probe %llu adopted: %s", (unsigned long long)p->id, p->spec.text);
                return;
        }
        /* some links are gone (or the state disagrees with itself): attach anew */
        probe_unpin(p, m->root);
        for (size_t i = 0; i < p->natts; i++)
                p->atts[i].pin_count = 0;
        p->next_pin = 0;
        if (setup_probe(m, p, &err) < 0 || register_probe(m, p) < 0) {
                log_error("probe %llu (%s) could not be restored: %s", (unsigned long long)p->id,
                          p->spec.text, err.msg[0] ? err.msg : "out of memory");
                probe_free(p);
                return;
        }
        log_notice("probe %llu re-attached: its pinned links were incomplete",
                   (unsigned long long)p->id);
}

static void adopt_failed(uint64_t id, const char *reason, void *userdata)
{
        struct manager *m = userdata;
        char path[PATH_MAX];

        if (id >= m->next_id)
                m->next_id = id + 1;
        log_error("probe %llu in the state file cannot be restored (%s): its links are removed",
                  (unsigned long long)id, reason);
        snprintf(path, sizeof(path), "%s/links/%llu", m->root, (unsigned long long)id);
        loader_purge(path);
}

/* Pinned link directories no probe claims: leftovers of a crash mid-attach. */
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

void manager_free(struct manager *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->nprobes; i++)
                probe_free(m->probes[i]);
        free(m->probes);
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
        r = loader_open(opts->bpffs_root, &opts->loader, &m->loader, err);
        if (r < 0) {
                manager_free(m);
                return r;
        }
        {
                struct error serr = { 0 };

                r = state_load(m->state_path, adopt, adopt_failed, m, &next_id, &serr);
                if (r < 0 && r != -ENOENT) {
                        /* keep the pinned links firing; do not overwrite the evidence */
                        log_error("%s: pinned probes stay attached but unknown to this instance; "
                                  "inspect the file, or remove everything with utraced --purge",
                                  serr.msg);
                        *ret = m;
                        return 0;
                }
                if (r == 0 && next_id > m->next_id)
                        m->next_id = next_id;
        }
        remove_orphans(m);
        save(m);
        *ret = m;
        return 0;
}
