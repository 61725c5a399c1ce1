// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>

#include "elffile.h"
#include "log.h"
#include "target.h"
#include "util.h"
#include "watch.h"
#include "watcher.h"
#include "watch.skel.h"

#define MAX_LDSO 64 /* dynamic linkers hooked (one per distinct ld.so file) */
#define HOLD_CHECK_NS (500ULL * 1000000ULL)
/* Attachments made or released are written to the state file this long
 * after the first of them: one write for a burst of new files. */
#define SAVE_DELAY_NS (200ULL * 1000000ULL)

struct ldso_hook {
        struct watch_file file;
        struct bpf_link *link;
};

struct watch {
        sd_event *loop;
        struct manager *m;
        struct watch_opts opts;
        char *held_pin;
        struct watch_bpf *skel;
        struct bpf_link *exec_link;
        struct bpf_link *iter_link;
        struct ring_buffer *rb;
        sd_event_source *rb_src;
        sd_event_source *pass_timer;
        sd_event_source *hold_timer;
        sd_event_source *save_timer; /* armed while the state file is behind */
        struct ldso_hook ldso[MAX_LDSO];
        unsigned nldso;
        struct watch_counters c;
};

static int known_fd(const struct watch *w)
{
        return bpf_map__fd(w->skel->maps.known);
}

static int held_fd(const struct watch *w)
{
        return bpf_map__fd(w->skel->maps.held);
}

/* --- mappings, through the iterator ---------------------------------------- */

/* Every executable file mapping of process pid (0: of every process). */
static int read_vmas(struct watch *w, pid_t pid, struct watch_vma **ret)
{
        struct bpf_link *link = w->iter_link;
        struct watch_vma *v = NULL;
        size_t n = 0, cap = 0;
        int fd, r = 0;

        *ret = NULL;
        if (pid) {
                union bpf_iter_link_info info = { 0 };
                LIBBPF_OPTS(bpf_iter_attach_opts, o, .link_info = &info,
                            .link_info_len = sizeof(info));

                info.task.pid = (__u32)pid;
                link = bpf_program__attach_iter(w->skel->progs.watch_vmas, &o);
                if (!link)
                        return -errno;
        }
        fd = bpf_iter_create(bpf_link__fd(link));
        if (fd < 0) {
                r = -errno;
                goto out;
        }
        for (;;) {
                ssize_t k;

                if (grow_array(&v, &cap, n + 256, sizeof(*v)) < 0) {
                        r = -ENOMEM;
                        break;
                }
                k = read(fd, v + n, 256 * sizeof(*v));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        break;
                }
                if (k == 0)
                        break;
                n += (size_t)k / sizeof(*v);
        }
        close(fd);
out:
        if (pid)
                bpf_link__destroy(link);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        return (int)n;
}

static int file_cmp(const struct watch_file *a, const struct watch_file *b)
{
        if (a->dev != b->dev)
                return a->dev < b->dev ? -1 : 1;
        return a->ino < b->ino ? -1 : a->ino > b->ino;
}

/* Mappings by file, then by process. */
static int vma_cmp(const void *a, const void *b)
{
        const struct watch_vma *x = a, *y = b;
        int c = file_cmp(&x->file, &y->file);

        return c ? c : x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* bsearch(): a file (the key) among mappings sorted by vma_cmp. */
static int vma_file_cmp(const void *key, const void *elem)
{
        return file_cmp(key, &((const struct watch_vma *)elem)->file);
}

/* --- examining files -------------------------------------------------------- */

static bool is_ldso(const char *name)
{
        const char *base = strrchr(name, '/');

        base = base ? base + 1 : name;
        return startswith(base, "ld-linux") && strstr(base, ".so");
}

static void hook_ldso(struct watch *w, const char *path, const struct watch_file *f)
{
        LIBBPF_OPTS(bpf_uprobe_opts, o);
        struct elf_file *ef = NULL;
        struct elf_symbol *syms = NULL;
        struct error err = { 0 };
        struct bpf_link *link;
        uint64_t rdebug;
        int n;

        for (unsigned i = 0; i < w->nldso; i++)
                if (file_cmp(&w->ldso[i].file, f) == 0)
                        return;
        if (w->nldso == MAX_LDSO || elf_file_open(path, &ef, &err) < 0)
                return;
        n = elf_find_symbols(ef, "_dl_debug_state", false, &syms);
        if (n != 1 || elf_find_object(ef, "_r_debug", &rdebug) < 0) {
                log_warning("watch: %s has no _dl_debug_state or _r_debug: libraries its "
                            "processes load are found by the periodic pass only", path);
                goto out;
        }
        o.bpf_cookie = rdebug - syms[0].addr;
        link = bpf_program__attach_uprobe_opts(w->skel->progs.watch_ldso, -1, path,
                                               syms[0].offset, &o);
        if (!link) {
                log_warning("watch: cannot hook the dynamic linker %s: %s", path,
                            strerror(errno));
                goto out;
        }
        w->ldso[w->nldso++] = (struct ldso_hook){ .file = *f, .link = link };
        log_debug("watch: hooked the dynamic linker %s", path);
out:
        elf_symbols_free(syms, n);
        elf_file_free(ef);
}

static int on_save_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct watch *w = userdata;

        (void)usec;
        w->save_timer = sd_event_source_disable_unref(s);
        manager_save(w->m);
        return 0;
}

static void schedule_save(struct watch *w)
{
        if (w->save_timer)
                return;
        if (sd_event_add_time_relative(w->loop, &w->save_timer, CLOCK_MONOTONIC,
                                       SAVE_DELAY_NS / 1000, 0, on_save_timer, w) < 0)
                manager_save(w->m);
}

static void flush_save(struct watch *w)
{
        if (!w->save_timer)
                return;
        w->save_timer = sd_event_source_disable_unref(w->save_timer);
        manager_save(w->m);
}

static void note_latency(struct watch *w, uint64_t since)
{
        uint64_t ns = now_ns(CLOCK_MONOTONIC) - since, us = ns / 1000;
        unsigned k = 0;

        while (k < WATCH_LAT_BUCKETS && us > (1ULL << k))
                k++;
        w->c.latency[k]++;
        w->c.latency_sum_ns += ns;
}

static bool has_file(const struct probe *p, const struct watch_file *f)
{
        for (size_t i = 0; i < p->natts; i++)
                if (p->atts[i].kdev == f->dev && p->atts[i].kino == f->ino)
                        return true;
        return false;
}

/* Attach every watched probe that wants file v (mapped by v->pid); since:
 * when the process was reported (0: found by a pass). False if the mapping
 * is gone (the process exited): the file is not examined. */
static bool examine_file(struct watch *w, const struct watch_vma *v, uint64_t since)
{
        char map_path[64], name[PATH_MAX];
        struct probe *const *probes;
        size_t n;
        ssize_t len;

        snprintf(map_path, sizeof(map_path), "/proc/%u/map_files/%llx-%llx", v->pid,
                 (unsigned long long)v->start, (unsigned long long)v->end);
        len = readlink(map_path, name, sizeof(name) - 1);
        if (len < 0)
                return false;
        name[len] = 0;
        w->c.examined++;
        if (is_ldso(name))
                hook_ldso(w, map_path, &v->file);
        probes = manager_probes(w->m, &n);
        for (size_t i = 0; i < n; i++) {
                struct probe *p = probes[i];
                struct error err = { 0 };
                int r;

                if (!probe_watched(p) || has_file(p, &v->file) || !probe_watch_matches(p, name))
                        continue;
                r = manager_add_file(w->m, p, map_path, name, v->file.dev, v->file.ino, &err);
                if (r > 0) {
                        schedule_save(w);
                        w->c.attached++;
                        if (since)
                                note_latency(w, since);
                        log_info("probe %llu (%s) attached to %s (process %u)",
                                 (unsigned long long)p->id, p->spec.text, name, v->pid);
                } else if (r < 0 && (!streq(p->spec.target, "*") || err.code != E_NO_USDT)) {
                        /* a name or glob that matches a file without the symbol or probe */
                        w->c.failed++;
                        log_debug("probe %llu (%s): %s: %s", (unsigned long long)p->id,
                                  p->spec.text, name, err.msg[0] ? err.msg : strerror(-r));
                }
        }
        return true;
}

static uint8_t known_state(struct watch *w, const struct watch_file *f)
{
        uint8_t v = 0;

        bpf_map_lookup_elem(known_fd(w), f, &v);
        return v;
}

static void mark_examined(struct watch *w, const struct watch_file *f)
{
        uint8_t v = WATCH_EXAMINED;

        bpf_map_update_elem(known_fd(w), f, &v, BPF_ANY);
}

/* Sort mappings v by vma_cmp and examine each file not examined yet, through
 * the first of its processes that is still there. */
static void examine_files(struct watch *w, struct watch_vma *v, int n, uint64_t since)
{
        qsort(v, n, sizeof(*v), vma_cmp);
        for (int i = 0, done = 0; i < n; i++) {
                if (!i || file_cmp(&v[i].file, &v[i - 1].file) != 0)
                        done = known_state(w, &v[i].file) == WATCH_EXAMINED;
                if (done)
                        continue;
                done = examine_file(w, &v[i], since);
                if (done)
                        mark_examined(w, &v[i].file);
        }
}

/* Examine the files of process pid not examined yet. */
static void examine_process(struct watch *w, pid_t pid, uint64_t since)
{
        struct watch_vma *v = NULL;
        int n = read_vmas(w, pid, &v);

        if (n > 0)
                examine_files(w, v, n, since);
        free(v);
}

/* --- holding ---------------------------------------------------------------- */

static void resume(struct watch *w, pid_t pid)
{
        __u32 key = (__u32)pid;

        if (bpf_map_delete_elem(held_fd(w), &key) == 0)
                kill(pid, SIGCONT);
}

/* Resume the processes of the held map fd stopped before `before`
 * (UINT64_MAX: all; others are timeouts, counted in timeouts if given);
 * returns how many are still held. */
static unsigned resume_held_in(int fd, uint64_t before, uint64_t *timeouts)
{
        __u32 key, next;
        bool have = false;
        unsigned left = 0;

        while (bpf_map_get_next_key(fd, have ? &key : NULL, &next) == 0) {
                __u64 ts;

                key = next;
                have = true;
                if (bpf_map_lookup_elem(fd, &key, &ts) < 0)
                        continue;
                if (ts >= before) {
                        left++;
                        continue;
                }
                if (before != UINT64_MAX && timeouts) {
                        (*timeouts)++;
                        log_warning("watch: process %u held for %llu ms: resumed", key,
                                    (now_ns(CLOCK_MONOTONIC) - ts) / 1000000);
                }
                bpf_map_delete_elem(fd, &key);
                kill((pid_t)key, SIGCONT);
                have = false; /* restart: the walk's key is gone */
        }
        return left;
}

static unsigned resume_held(struct watch *w, uint64_t before)
{
        return resume_held_in(held_fd(w), before, &w->c.hold_timeouts);
}

static void arm(sd_event_source *s, uint64_t ns)
{
        sd_event_source_set_time_relative(s, ns / 1000);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_hold_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct watch *w = userdata;
        uint64_t now = now_ns(CLOCK_MONOTONIC);

        (void)usec;
        if (resume_held(w, now > w->opts.hold_max_ns ? now - w->opts.hold_max_ns : 0) ||
            w->skel->bss->hold_pids)
                arm(s, HOLD_CHECK_NS);
        return 0;
}

/* --- reports ---------------------------------------------------------------- */

static int on_report(void *ctx, void *data, size_t size)
{
        struct watch *w = ctx;
        const struct watch_report *r = data;

        if (size < sizeof(*r))
                return 0;
        w->c.reports++;
        examine_process(w, (pid_t)r->pid, r->ts);
        if (known_state(w, &r->file) != WATCH_EXAMINED)
                bpf_map_delete_elem(known_fd(w), &r->file); /* gone: the next mapper reports it */
        if (r->held) {
                w->c.held++;
                resume(w, (pid_t)r->pid);
        }
        return 0;
}

static int on_ring(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct watch *w = userdata;

        (void)s;
        (void)fd;
        (void)revents;
        ring_buffer__consume(w->rb);
        return 0;
}

/* --- passes over every mapping ---------------------------------------------- */

/*
 * Examine every file mapped now that is not known as examined; with
 * release, also release watched attachments of files nobody maps.
 */
static void pass(struct watch *w, bool release)
{
        struct watch_vma *v = NULL;
        struct probe *const *probes;
        size_t np;
        int n = read_vmas(w, 0, &v);

        if (n < 0) {
                log_error("watch: cannot read the processes' mappings: %s", strerror(-n));
                return;
        }
        w->c.passes++;
        examine_files(w, v, n, 0);
        probes = manager_probes(w->m, &np);
        for (size_t i = 0; release && i < np; i++) {
                struct probe *p = probes[i];
                _cleanup_free_ bool *drop = NULL;
                unsigned ndrop = 0;

                if (!probe_watched(p) || !p->natts)
                        continue;
                drop = calloc(p->natts, sizeof(bool));
                if (!drop)
                        break;
                for (size_t k = 0; k < p->natts; k++) {
                        struct watch_file f = { p->atts[k].kdev, p->atts[k].kino };

                        if (!p->atts[k].watched || bsearch(&f, v, n, sizeof(*v), vma_file_cmp))
                                continue;
                        drop[k] = true;
                        ndrop++;
                        log_info("probe %llu (%s): %s is mapped by no process any more: released",
                                 (unsigned long long)p->id, p->spec.text, p->atts[k].path);
                        /* mapped again later, it is examined again */
                        bpf_map_delete_elem(known_fd(w), &f);
                }
                if (ndrop) {
                        manager_release_files(w->m, p, drop);
                        schedule_save(w);
                        w->c.released += ndrop;
                }
        }
        free(v);
}

static int on_pass_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct watch *w = userdata;

        (void)usec;
        pass(w, true);
        arm(s, w->opts.interval_ns);
        return 0;
}

/* --- life cycle ------------------------------------------------------------- */

static void deactivate(struct watch *w)
{
        flush_save(w);
        if (!w->skel)
                return;
        resume_held(w, UINT64_MAX);
        for (unsigned i = 0; i < w->nldso; i++)
                bpf_link__destroy(w->ldso[i].link);
        w->nldso = 0;
        w->rb_src = sd_event_source_disable_unref(w->rb_src);
        w->pass_timer = sd_event_source_disable_unref(w->pass_timer);
        w->hold_timer = sd_event_source_disable_unref(w->hold_timer);
        ring_buffer__free(w->rb);
        w->rb = NULL;
        bpf_link__destroy(w->exec_link);
        bpf_link__destroy(w->iter_link);
        w->exec_link = w->iter_link = NULL;
        watch_bpf__destroy(w->skel);
        w->skel = NULL;
}

static int activate(struct watch *w)
{
        char *ldso = NULL;
        int r;

        w->skel = watch_bpf__open();
        if (!w->skel)
                return -errno;
        bpf_map__set_pin_path(w->skel->maps.held, w->held_pin);
        r = watch_bpf__load(w->skel);
        if (r < 0)
                goto fail;
        w->exec_link = bpf_program__attach(w->skel->progs.watch_exec);
        w->iter_link = bpf_program__attach_iter(w->skel->progs.watch_vmas, NULL);
        if (!w->exec_link || !w->iter_link) {
                r = -errno;
                goto fail;
        }
        w->rb = ring_buffer__new(bpf_map__fd(w->skel->maps.reports), on_report, w, NULL);
        if (!w->rb) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(w->loop, &w->rb_src, ring_buffer__epoll_fd(w->rb), EPOLLIN, on_ring, w);
        if (r >= 0)
                r = sd_event_add_time_relative(w->loop, &w->pass_timer, CLOCK_MONOTONIC,
                                               w->opts.interval_ns / 1000, 0, on_pass_timer, w);
        if (r >= 0)
                r = sd_event_add_time_relative(w->loop, &w->hold_timer, CLOCK_MONOTONIC,
                                               HOLD_CHECK_NS / 1000, 0, on_hold_timer, w);
        if (r < 0)
                goto fail;
        /* the host's dynamic linker first; others as processes map them */
        if (target_resolve("ld-linux-x86-64.so.2", 0, &ldso, NULL) == 0) {
                struct stat st;

                if (stat(ldso, &st) == 0)
                        hook_ldso(w, ldso, &(struct watch_file){ kernel_dev(st.st_dev), st.st_ino });
                free(ldso);
        }
        resume_held(w, UINT64_MAX); /* what an earlier instance left held */
        log_info("watch: watching for new files (exec and ld.so)");
        return 0;
fail:
        log_error("watch: cannot load the watcher: %s; watched probes attach only to what "
                  "is mapped when they are attached", strerror(-r));
        deactivate(w);
        return r;
}

static void set_holding(struct watch *w)
{
        struct probe *const *probes;
        bool hold = false;
        size_t n;

        probes = manager_probes(w->m, &n);
        for (size_t i = 0; i < n; i++)
                hold |= probe_watched(probes[i]) && probes[i]->spec.hold;
        w->skel->bss->hold_pids = hold;
        if (hold)
                arm(w->hold_timer, HOLD_CHECK_NS);
}

void watch_update(struct watch *w)
{
        struct probe *const *probes;
        bool want = false;
        size_t n;

        probes = manager_probes(w->m, &n);
        for (size_t i = 0; i < n; i++)
                want |= probe_watched(probes[i]);
        if (!want) {
                if (w->skel)
                        log_info("watch: no watched probe left: stopped watching");
                deactivate(w);
                return;
        }
        if (!w->skel) {
                if (activate(w) < 0)
                        return;
                pass(w, false);
        }
        set_holding(w);
}

void watch_probe_added(struct watch *w, struct probe *p)
{
        struct watch_file key, next;

        (void)p;
        if (!w->skel) {
                watch_update(w); /* the first pass finds p's files */
                return;
        }
        /* files seen before p existed may be p's when they are mapped again */
        while (bpf_map_get_next_key(known_fd(w), NULL, &next) == 0) {
                key = next;
                if (bpf_map_delete_elem(known_fd(w), &key) < 0)
                        break;
        }
        pass(w, false);
        set_holding(w);
}

int watch_file_users(struct watch *w, struct file_user **ret)
{
        struct watch_vma *v = NULL;
        struct file_user *u;
        int n;

        *ret = NULL;
        if (!w->skel)
                return 0;
        n = read_vmas(w, 0, &v);
        if (n <= 0)
                return n;
        qsort(v, n, sizeof(*v), vma_cmp);
        u = calloc(n, sizeof(*u));
        if (!u) {
                free(v);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++)
                u[i] = (struct file_user){ v[i].file.dev, v[i].file.ino, (pid_t)v[i].pid };
        free(v);
        *ret = u;
        return n;
}

void watch_counters(const struct watch *w, struct watch_counters *ret)
{
        *ret = w->c;
        if (w->skel) {
                ret->reports_lost += w->skel->bss->reports_lost;
                ret->hold_skipped += w->skel->bss->hold_skipped;
        }
}

bool watch_active(const struct watch *w)
{
        return w->skel != NULL;
}

void watch_resume_pinned(const char *bpffs_root)
{
        char path[PATH_MAX];
        int fd;

        snprintf(path, sizeof(path), "%s/watch_held", bpffs_root);
        fd = bpf_obj_get(path);
        if (fd < 0)
                return;
        resume_held_in(fd, UINT64_MAX, NULL);
        close(fd);
}

int watch_new(sd_event *loop, struct manager *m, const struct watch_opts *o, struct watch **ret)
{
        struct watch *w = calloc(1, sizeof(*w));
        char path[PATH_MAX];

        if (!w)
                return -ENOMEM;
        w->loop = sd_event_ref(loop);
        w->m = m;
        w->opts = *o;
        snprintf(path, sizeof(path), "%s/watch_held", o->bpffs_root);
        w->held_pin = strdup(path);
        if (!w->held_pin) {
                watch_free(w);
                return -ENOMEM;
        }
        manager_set_watch(m, w);
        watch_update(w);
        *ret = w;
        return 0;
}

void watch_free(struct watch *w)
{
        if (!w)
                return;
        manager_set_watch(w->m, NULL);
        deactivate(w);
        sd_event_unref(w->loop);
        free(w->held_pin);
        free(w);
}
