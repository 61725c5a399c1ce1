// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "attach.h"
#include "loader.h"
#include "log.h"
#include "util.h"
#include "utrace.h"
#include "utrace.skel.h"

#define UT_BPF_TRACE_UPROBE_MULTI 48

#define MAX_PROG_MAPS 32

/* A program some pinned link runs: does it belong to this instance? */
struct prog_verdict {
        __u32 id;
        bool current;
};

struct loader {
        struct utrace *skel;
        char *root;
        bool multi;
        size_t ringbuf_size;
        int map_fds[_MAP_MAX];
        __u32 map_ids[_MAP_MAX];
        __u32 prog_ids[4];
        __u8 prog_tags[4][BPF_TAG_SIZE];
        struct prog_verdict *verdicts;
        size_t nverdicts, verdicts_cap;
        int retired_events; /* the previous ring buffer, still to be drained, or -1 */
};

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
        char buf[1024];
        size_t n;

        if (level == LIBBPF_DEBUG)
                return 0;
        vsnprintf(buf, sizeof(buf), fmt, ap);
        n = strlen(buf);
        while (n && buf[n - 1] == '\n')
                buf[--n] = 0;
        log_msg(level == LIBBPF_WARN ? LOG_WARNING : LOG_DEBUG, "libbpf: %s", buf);
        return 0;
}

static bool is_bpffs(const char *path)
{
        struct statfs fs;

        return statfs(path, &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
}

int loader_ensure_bpffs(const char *root, struct error *err)
{
        char dir[PATH_MAX];
        char *slash;

        snprintf(dir, sizeof(dir), "%s", root);
        /* the nearest existing ancestor decides which filesystem root is on */
        while (access(dir, F_OK) < 0 && (slash = strrchr(dir, '/')) && slash != dir)
                *slash = 0;
        if (is_bpffs(dir))
                return 0;
        if (startswith(root, "/sys/fs/bpf/") && !is_bpffs("/sys/fs/bpf")) {
                if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") < 0)
                        return error_set(err, E_INTERNAL, -errno,
                                         "cannot mount bpffs on /sys/fs/bpf: %s", strerror(errno));
                log_notice("mounted bpffs on /sys/fs/bpf");
                return 0;
        }
        return error_set(err, E_INTERNAL, -ENOTSUP, "%s is not on a BPF filesystem (bpffs)", root);
}

static struct bpf_map *map_of(struct utrace *skel, enum loader_map m)
{
        switch (m) {
        case MAP_PROBES: return skel->maps.probes;
        case MAP_SITES: return skel->maps.sites;
        case MAP_STATS: return skel->maps.stats;
        case MAP_EVENTS: return skel->maps.events;
        case MAP_LAT: return skel->maps.lat;
        case MAP_AGGS: return skel->maps.aggs;
        case MAP_AGG_NKEYS: return skel->maps.agg_nkeys;
        case MAP_GLOBALS: return skel->maps.globals;
        default: return NULL;
        }
}

/* Same type, layout and names, member by member (BTF of two objects). */
static bool btf_same(const struct btf *a, __u32 ia, const struct btf *b, __u32 ib, int depth)
{
        const struct btf_type *ta = btf__type_by_id(a, ia), *tb = btf__type_by_id(b, ib);

        if (ia == 0 || ib == 0)
                return ia == ib; /* void */
        if (!ta || !tb || depth > 16 || btf_kind(ta) != btf_kind(tb) || btf_vlen(ta) != btf_vlen(tb) ||
            !streq(btf__name_by_offset(a, ta->name_off), btf__name_by_offset(b, tb->name_off)))
                return false;
        switch (btf_kind(ta)) {
        case BTF_KIND_INT:
                return ta->size == tb->size && btf_int_encoding(ta) == btf_int_encoding(tb) &&
                       btf_int_bits(ta) == btf_int_bits(tb) && btf_int_offset(ta) == btf_int_offset(tb);
        case BTF_KIND_PTR:
        case BTF_KIND_TYPEDEF:
        case BTF_KIND_VOLATILE:
        case BTF_KIND_CONST:
        case BTF_KIND_RESTRICT:
        case BTF_KIND_TYPE_TAG:
                return btf_same(a, ta->type, b, tb->type, depth + 1);
        case BTF_KIND_ARRAY:
                return btf_array(ta)->nelems == btf_array(tb)->nelems &&
                       btf_same(a, btf_array(ta)->type, b, btf_array(tb)->type, depth + 1);
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION:
                if (ta->size != tb->size)
                        return false;
                for (unsigned i = 0; i < btf_vlen(ta); i++) {
                        const struct btf_member *ma = btf_members(ta) + i, *mb = btf_members(tb) + i;

                        if (ma->offset != mb->offset ||
                            !streq(btf__name_by_offset(a, ma->name_off), btf__name_by_offset(b, mb->name_off)) ||
                            !btf_same(a, ma->type, b, mb->type, depth + 1))
                                return false;
                }
                return true;
        case BTF_KIND_ENUM:
                if (ta->size != tb->size)
                        return false;
                for (unsigned i = 0; i < btf_vlen(ta); i++)
                        if (btf_enum(ta)[i].val != btf_enum(tb)[i].val)
                                return false;
                return true;
        default:
                return ta->size == tb->size;
        }
}

static bool btf_same_named(const struct btf *a, const struct btf *b, const char *name)
{
        __s32 ia = btf__find_by_name_kind(a, name, BTF_KIND_STRUCT);
        __s32 ib = btf__find_by_name_kind(b, name, BTF_KIND_STRUCT);

        return ia > 0 && ib > 0 && btf_same(a, ia, b, ib, 0);
}

/* Bytes written to a ring buffer map and not yet consumed. */
static uint64_t ringbuf_pending(int fd)
{
        long page = sysconf(_SC_PAGESIZE);
        void *c = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
        void *p = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, page);
        uint64_t n = 0;

        if (c != MAP_FAILED && p != MAP_FAILED)
                n = *(volatile uint64_t *)p - *(volatile uint64_t *)c;
        if (c != MAP_FAILED)
                munmap(c, page);
        if (p != MAP_FAILED)
                munmap(p, page);
        return n;
}

/*
 * Why the pinned map fd cannot serve as map (NULL: it can). libbpf reuses a
 * pinned map when type, sizes, entries and flags agree; the BTF comparison
 * also catches a layout that changed within the same size.
 */
static const char *map_incompatible(struct bpf_map *map, int fd, const struct btf *btf, char *buf,
                                    size_t size)
{
        struct bpf_map_info info = { 0 };
        __u32 len = sizeof(info);
        const char *why = NULL;

        if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
                return "cannot be inspected";
        if (info.type != bpf_map__type(map))
                why = "is of another type";
        else if (info.key_size != bpf_map__key_size(map) || info.value_size != bpf_map__value_size(map))
                why = "has other key or value sizes";
        else if (info.max_entries != bpf_map__max_entries(map))
                snprintf(buf, size, "has %u entries, this one %u", info.max_entries,
                         bpf_map__max_entries(map)), why = buf;
        else if (info.map_flags != bpf_map__map_flags(map))
                why = "has other flags";
        if (!why && info.btf_id && bpf_map__btf_value_type_id(map)) {
                struct btf *old = btf__load_from_kernel_by_id(info.btf_id);

                if (!old || !btf_same(old, info.btf_key_type_id, btf, bpf_map__btf_key_type_id(map), 0) ||
                    !btf_same(old, info.btf_value_type_id, btf, bpf_map__btf_value_type_id(map), 0))
                        why = "has another layout";
                btf__free(old);
        }
        return why;
}

/* The BTF of the programs pinned by the previous instance, if any. */
static struct btf *pinned_prog_btf(const char *root)
{
        struct bpf_prog_info info = { 0 };
        __u32 len = sizeof(info);
        char path[PATH_MAX];
        _cleanup_close_ int fd = -1;

        snprintf(path, sizeof(path), "%s/progs/ut_entry", root);
        fd = bpf_obj_get(path);
        if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) < 0 || !info.btf_id)
                return NULL;
        return btf__load_from_kernel_by_id(info.btf_id);
}

/*
 * Pinned maps this build cannot use are unpinned, so that the load pins new
 * ones; links of the previous instance keep the old ones alive until they
 * are replaced. A ring buffer that only changed size is kept open to be
 * drained; one whose records have another format is dropped, and what it
 * held is logged.
 */
static void retire_incompatible_maps(struct loader *l, const char *root)
{
        const struct btf *btf = bpf_object__btf(l->skel->obj);
        struct btf *old_progs = pinned_prog_btf(root);
        bool same_records = !old_progs || btf_same_named(old_progs, btf, "ut_rec");

        for (int m = 0; m < _MAP_MAX; m++) {
                struct bpf_map *map = map_of(l->skel, m);
                const char *path = bpf_map__pin_path(map);
                char buf[96];
                const char *why;
                int fd = bpf_obj_get(path);

                if (fd < 0)
                        continue;
                why = map_incompatible(map, fd, btf, buf, sizeof(buf));
                if (!why && m == MAP_EVENTS && !same_records)
                        why = "holds records of another format";
                if (!why) {
                        close(fd);
                        continue;
                }
                if (unlink(path) < 0) {
                        log_error("map %s: the pinned one %s, and cannot be unpinned: %s",
                                  bpf_map__name(map), why, strerror(errno));
                        close(fd);
                        continue;
                }
                if (m == MAP_EVENTS && same_records && bpf_map__type(map) == BPF_MAP_TYPE_RINGBUF) {
                        log_notice("map events: the pinned ring buffer %s: replaced; the %llu "
                                   "bytes of events it holds are delivered first",
                                   why, (unsigned long long)ringbuf_pending(fd));
                        l->retired_events = fd;
                        continue;
                }
                if (m == MAP_EVENTS)
                        log_warning("map events: the pinned ring buffer %s: replaced; the %llu "
                                    "bytes of events it held are dropped", why,
                                    (unsigned long long)ringbuf_pending(fd));
                else
                        log_warning("map %s: the pinned one %s: replaced; its contents%s are "
                                    "not carried over", bpf_map__name(map), why,
                                    m == MAP_STATS ? " (every probe's counters)" :
                                    m == MAP_AGGS ? " (every aggregation)" : "");
                close(fd);
        }
        btf__free(old_progs);
}

static int pin_program(struct bpf_program *prog, const char *root)
{
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/progs/%s", root, bpf_program__name(prog));
        unlink(path);
        return bpf_program__pin(prog, path);
}

void loader_free(struct loader *l)
{
        if (!l)
                return;
        if (l->retired_events >= 0)
                close(l->retired_events);
        free(l->verdicts);
        utrace__destroy(l->skel);
        free(l->root);
        free(l);
}

int loader_open(const char *root, const struct loader_opts *opts, struct loader **ret,
                struct error *err)
{
        struct loader *l;
        char path[PATH_MAX];
        struct ut_global g = { .wake_bytes = opts->wake_bytes, .wake_ns = opts->wake_ns };
        __u32 zero = 0;
        int r;

        libbpf_set_print(libbpf_log);
        r = loader_ensure_bpffs(root, err);
        if (r < 0)
                return r;
        for (const char *sub = "maps\0progs\0links\0"; *sub; sub += strlen(sub) + 1) {
                snprintf(path, sizeof(path), "%s/%s", root, sub);
                r = mkdir_p(path, 0700);
                if (r < 0)
                        return error_set(err, E_INTERNAL, r, "cannot create %s: %s", path,
                                         strerror(-r));
        }
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->retired_events = -1;
        l->root = strdup(root);
        l->ringbuf_size = opts->ringbuf_size;
        l->skel = utrace__open();
        if (!l->root || !l->skel) {
                loader_free(l);
                return error_set(err, E_INTERNAL, -ENOMEM, "cannot open the BPF object");
        }
        l->multi = !opts->no_multi && attach_probe_multi();
        if (l->multi) {
                struct bpf_program *prog;

                bpf_object__for_each_program(prog, l->skel->obj)
                        bpf_program__set_expected_attach_type(prog, UT_BPF_TRACE_UPROBE_MULTI);
        }
        bpf_map__set_max_entries(l->skel->maps.events, (__u32)opts->ringbuf_size);
        for (int m = 0; m < _MAP_MAX; m++) {
                struct bpf_map *map = map_of(l->skel, m);

                snprintf(path, sizeof(path), "%s/maps/%s", root, bpf_map__name(map));
                bpf_map__set_pin_path(map, path);
        }
        retire_incompatible_maps(l, root);
        r = utrace__load(l->skel);
        if (r < 0) {
                loader_free(l);
                return error_set(err, E_INTERNAL, r, "cannot load the BPF programs: %s",
                                 strerror(-r));
        }
        for (int m = 0; m < _MAP_MAX; m++) {
                struct bpf_map_info info = { 0 };
                __u32 len = sizeof(info);

                l->map_fds[m] = bpf_map__fd(map_of(l->skel, m));
                if (bpf_obj_get_info_by_fd(l->map_fds[m], &info, &len) == 0)
                        l->map_ids[m] = info.id;
        }
        for (int i = 0; i < 4; i++) {
                struct bpf_prog_info info = { 0 };
                __u32 len = sizeof(info);

                if (bpf_obj_get_info_by_fd(loader_prog_fd(l, i & 1, i & 2), &info, &len) == 0) {
                        l->prog_ids[i] = info.id;
                        memcpy(l->prog_tags[i], info.tag, BPF_TAG_SIZE);
                }
        }
        {
                struct bpf_program *prog;

                bpf_object__for_each_program(prog, l->skel->obj) {
                        r = pin_program(prog, root);
                        if (r < 0)
                                log_warning("cannot pin program %s: %s", bpf_program__name(prog),
                                            strerror(-r));
                }
        }
        {
                struct ut_global old;

                if (bpf_map_lookup_elem(l->map_fds[MAP_GLOBALS], &zero, &old) == 0) {
                        g.last_wake = old.last_wake;
                        g.drops = old.drops;
                }
                bpf_map_update_elem(l->map_fds[MAP_GLOBALS], &zero, &g, BPF_ANY);
        }
        *ret = l;
        return 0;
}

int loader_map_fd(const struct loader *l, enum loader_map m)
{
        return l->map_fds[m];
}

int loader_prog_fd(const struct loader *l, bool retprobe, bool sleepable)
{
        if (retprobe)
                return bpf_program__fd(sleepable ? l->skel->progs.ut_return_s
                                                 : l->skel->progs.ut_return);
        return bpf_program__fd(sleepable ? l->skel->progs.ut_entry_s : l->skel->progs.ut_entry);
}

/* Does program id run this build's code on this instance's maps? */
static bool prog_current(const struct loader *l, __u32 id)
{
        __u32 map_ids[MAX_PROG_MAPS];
        struct bpf_prog_info info = { 0 };
        __u32 len = sizeof(info);
        _cleanup_close_ int fd = bpf_prog_get_fd_by_id(id);
        bool tag_ok = false;

        for (int i = 0; i < 4; i++)
                if (l->prog_ids[i] == id)
                        return true;
        info.nr_map_ids = MAX_PROG_MAPS;
        info.map_ids = (__u64)(uintptr_t)map_ids;
        if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) < 0 || info.nr_map_ids > MAX_PROG_MAPS)
                return false;
        for (int i = 0; i < 4; i++)
                tag_ok |= memcmp(l->prog_tags[i], info.tag, BPF_TAG_SIZE) == 0;
        if (!tag_ok)
                return false;
        /* every map it uses that bears the name of one of ours must be ours */
        for (__u32 k = 0; k < info.nr_map_ids; k++) {
                struct bpf_map_info mi = { 0 };
                __u32 mlen = sizeof(mi);
                _cleanup_close_ int mfd = -1;
                bool ours = false;

                for (int m = 0; m < _MAP_MAX; m++)
                        ours |= l->map_ids[m] == map_ids[k];
                if (ours)
                        continue;
                mfd = bpf_map_get_fd_by_id(map_ids[k]);
                if (mfd < 0 || bpf_obj_get_info_by_fd(mfd, &mi, &mlen) < 0)
                        return false;
                for (int m = 0; m < _MAP_MAX; m++)
                        if (streq(mi.name, bpf_map__name(map_of(l->skel, m))))
                                return false;
        }
        return true;
}

int loader_link_current(struct loader *l, const char *pin)
{
        struct bpf_link_info info = { 0 };
        __u32 len = sizeof(info);
        _cleanup_close_ int fd = bpf_obj_get(pin);
        struct prog_verdict *v;

        if (fd < 0)
                return -errno;
        if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
                return -errno;
        for (size_t i = 0; i < l->nverdicts; i++)
                if (l->verdicts[i].id == info.prog_id)
                        return l->verdicts[i].current;
        if (grow_array(&l->verdicts, &l->verdicts_cap, l->nverdicts + 1, sizeof(*l->verdicts)) < 0)
                return -ENOMEM;
        v = &l->verdicts[l->nverdicts++];
        v->id = info.prog_id;
        v->current = prog_current(l, info.prog_id);
        return v->current;
}

int loader_take_retired_events(struct loader *l)
{
        int fd = l->retired_events;

        l->retired_events = -1;
        return fd;
}

bool loader_multi(const struct loader *l)
{
        return l->multi;
}

size_t loader_ringbuf_size(const struct loader *l)
{
        return l->ringbuf_size;
}

static int purge_dir(int dfd, const char *name)
{
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (de->d_type == DT_DIR) {
                        int k = purge_dir(dirfd(d), de->d_name);

                        if (k < 0 && !r)
                                r = k;
                } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && !r) {
                        r = -errno;
                }
        }
        closedir(d);
        if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !r)
                r = -errno;
        return r;
}

int loader_purge(const char *root)
{
        return purge_dir(AT_FDCWD, root);
}
