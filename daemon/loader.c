// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <assert.h>
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
#define NPROGS 4 /* entry, return, and their sleepable twins */

struct loader {
        struct utrace *skel;
        char *root;
        char *layout_path;
        bool multi;
        size_t ringbuf_size;
        int map_fds[_MAP_MAX];
        __u32 map_ids[_MAP_MAX];
        int prog_fds[NPROGS];    /* what links are made with */
        __u32 prog_ids[NPROGS];
        bool prog_pinned[NPROGS]; /* prog_fds[i] is the pinned program's, ours to close */
        int retired_events;       /* the previous ring buffer, still to be drained, or -1 */
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

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
        const unsigned char *p = data;

        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * 0x100000001b3ULL;
        return h;
}

/* A digest of a BTF type: kinds, names, sizes, offsets, member by member. */
static uint64_t btf_digest(const struct btf *btf, __u32 id, uint64_t h, int depth)
{
        const struct btf_type *t = id ? btf__type_by_id(btf, id) : NULL;
        const char *name;
        __u32 v[3];

        if (!t || depth > 16)
                return fnv(h, "-", 1);
        name = btf__name_by_offset(btf, t->name_off);
        h = fnv(h, name ? name : "", name ? strlen(name) + 1 : 1);
        v[0] = btf_kind(t);
        v[1] = btf_vlen(t);
        v[2] = 0;
        switch (btf_kind(t)) {
        case BTF_KIND_INT:
                v[2] = t->size << 16 ^ btf_int_encoding(t) << 8 ^ btf_int_bits(t) ^
                       btf_int_offset(t) << 24;
                return fnv(h, v, sizeof(v));
        case BTF_KIND_PTR:
        case BTF_KIND_TYPEDEF:
        case BTF_KIND_VOLATILE:
        case BTF_KIND_CONST:
        case BTF_KIND_RESTRICT:
        case BTF_KIND_TYPE_TAG:
                return btf_digest(btf, t->type, fnv(h, v, sizeof(v)), depth + 1);
        case BTF_KIND_ARRAY:
                v[2] = btf_array(t)->nelems;
                return btf_digest(btf, btf_array(t)->type, fnv(h, v, sizeof(v)), depth + 1);
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION:
                v[2] = t->size;
                h = fnv(h, v, sizeof(v));
                for (unsigned i = 0; i < btf_vlen(t); i++) {
                        const struct btf_member *m = btf_members(t) + i;
                        const char *mname = btf__name_by_offset(btf, m->name_off);

                        h = fnv(h, mname ? mname : "", mname ? strlen(mname) + 1 : 1);
                        h = fnv(h, &m->offset, sizeof(m->offset));
                        h = btf_digest(btf, m->type, h, depth + 1);
                }
                return h;
        case BTF_KIND_ENUM:
                v[2] = t->size;
                h = fnv(h, v, sizeof(v));
                for (unsigned i = 0; i < btf_vlen(t); i++)
                        h = fnv(h, &btf_enum(t)[i].val, sizeof(btf_enum(t)[i].val));
                return h;
        default:
                v[2] = t->size;
                return fnv(h, v, sizeof(v));
        }
}

#define LAYOUT_RECORDS _MAP_MAX /* the digest of the ring buffer's record format */

/* Digests of the key and value layout of every map, and of the records. */
static void layout_digests(const struct loader *l, uint64_t d[_MAP_MAX + 1])
{
        const struct btf *btf = bpf_object__btf(l->skel->obj);
        __s32 rec = btf__find_by_name_kind(btf, "ut_rec", BTF_KIND_STRUCT);

        for (int m = 0; m < _MAP_MAX; m++) {
                struct bpf_map *map = map_of(l->skel, m);

                d[m] = btf_digest(btf, bpf_map__btf_key_type_id(map), 0xcbf29ce484222325ULL, 0);
                d[m] = btf_digest(btf, bpf_map__btf_value_type_id(map), d[m], 0);
        }
        d[LAYOUT_RECORDS] = btf_digest(btf, rec > 0 ? (__u32)rec : 0, 0xcbf29ce484222325ULL, 0);
}

static const char *layout_name(int i)
{
        return i == LAYOUT_RECORDS ? "records" : NULL;
}

/*
 * The layouts the pinned maps were made for, as the previous start recorded
 * them (LAYOUT_PATH: "NAME DIGEST" lines); 0 where unknown. Reading the
 * pinned maps' own BTF would take CAP_SYS_ADMIN, which the service lacks.
 */
static void layout_read(const struct loader *l, uint64_t d[_MAP_MAX + 1])
{
        _cleanup_free_ char *text = NULL;

        memset(d, 0, sizeof(uint64_t) * (_MAP_MAX + 1));
        if (read_file(l->layout_path, &text, 1 << 16) < 0)
                return;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
                char name[64];
                unsigned long long v;

                if (sscanf(line, "%63s %llx", name, &v) != 2)
                        continue;
                for (int i = 0; i <= _MAP_MAX; i++) {
                        const char *n = layout_name(i) ?: bpf_map__name(map_of(l->skel, i));

                        if (streq(n, name))
                                d[i] = v;
                }
        }
}

static void layout_write(const struct loader *l, const uint64_t d[_MAP_MAX + 1])
{
        char text[64 * (_MAP_MAX + 1)];
        size_t len = 0;
        int r;

        for (int i = 0; i <= _MAP_MAX; i++)
                len += snprintf(text + len, sizeof(text) - len, "%s %016llx\n",
                                layout_name(i) ?: bpf_map__name(map_of(l->skel, i)),
                                (unsigned long long)d[i]);
        r = write_file_atomic(l->layout_path, text, len);
        if (r < 0)
                log_warning("cannot write %s: %s (map layouts are then checked by size only)",
                            l->layout_path, strerror(-r));
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
 * Why the pinned map fd cannot serve as map (NULL: it can): libbpf's own
 * check (type, sizes, entries, flags), and the layout recorded for it, which
 * also catches a change within the same size.
 */
static const char *map_incompatible(struct bpf_map *map, int fd, uint64_t was, uint64_t now,
                                    char *buf, size_t size)
{
        struct bpf_map_info info = { 0 };
        __u32 len = sizeof(info);

        if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
                return "cannot be inspected";
        if (info.type != bpf_map__type(map))
                return "is of another type";
        if (info.key_size != bpf_map__key_size(map) || info.value_size != bpf_map__value_size(map))
                return "has other key or value sizes";
        if (info.max_entries != bpf_map__max_entries(map)) {
                snprintf(buf, size, "has %u entries, this one %u", info.max_entries,
                         bpf_map__max_entries(map));
                return buf;
        }
        if (info.map_flags != bpf_map__map_flags(map))
                return "has other flags";
        if (was && was != now)
                return "has another layout";
        return NULL;
}

/*
 * Pinned maps this build cannot use are unpinned, so that the load pins new
 * ones; links of the previous instance keep the old ones alive until they
 * are replaced. A ring buffer that only changed size is kept open to be
 * drained; one whose records have another format is dropped, and what it
 * held is logged.
 */
static void retire_incompatible_maps(struct loader *l, const uint64_t was[_MAP_MAX + 1],
                                     const uint64_t now[_MAP_MAX + 1])
{
        bool same_records = !was[LAYOUT_RECORDS] || was[LAYOUT_RECORDS] == now[LAYOUT_RECORDS];

        for (int m = 0; m < _MAP_MAX; m++) {
                struct bpf_map *map = map_of(l->skel, m);
                const char *path = bpf_map__pin_path(map);
                char buf[96];
                const char *why;
                int fd = bpf_obj_get(path);

                if (fd < 0)
                        continue;
                why = map_incompatible(map, fd, was[m], now[m], buf, sizeof(buf));
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
}

static struct bpf_program *prog_of(struct utrace *skel, int i)
{
        static_assert(NPROGS == 4, "entry, return, and their sleepable twins");
        switch (i) {
        case 0: return skel->progs.ut_entry;
        case 1: return skel->progs.ut_return;
        case 2: return skel->progs.ut_entry_s;
        default: return skel->progs.ut_return_s;
        }
}

/* How many maps the program uses besides this instance's pinned ones. */
static int prog_unpinned_maps(const struct loader *l, int fd, __u32 *id, __u8 tag[BPF_TAG_SIZE])
{
        __u32 map_ids[MAX_PROG_MAPS];
        struct bpf_prog_info info = { 0 };
        __u32 len = sizeof(info);
        int n = 0;

        info.nr_map_ids = MAX_PROG_MAPS;
        info.map_ids = (__u64)(uintptr_t)map_ids;
        if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0 || info.nr_map_ids > MAX_PROG_MAPS)
                return -1;
        for (__u32 k = 0; k < info.nr_map_ids; k++) {
                bool ours = false;

                for (int m = 0; m < _MAP_MAX; m++)
                        ours |= l->map_ids[m] == map_ids[k];
                n += !ours;
        }
        *id = info.id;
        memcpy(tag, info.tag, BPF_TAG_SIZE);
        return n;
}

/*
 * The programs links are made with. Those pinned by an earlier start are
 * kept when they are this build's (same tag) and use this instance's maps
 * (no more other maps than the ones just loaded use: their scratch), so that
 * links made at any earlier start run exactly the programs in use, which is
 * how a link is known to be current without the privileges it would take to
 * look its program up by id. Otherwise the programs just loaded are pinned in
 * their place, and the links of earlier starts are migrated.
 */
static void choose_programs(struct loader *l)
{
        for (int i = 0; i < NPROGS; i++) {
                struct bpf_program *prog = prog_of(l->skel, i);
                char path[PATH_MAX];
                __u8 tag[BPF_TAG_SIZE], pinned_tag[BPF_TAG_SIZE];
                __u32 id = 0, pinned_id = 0;
                int n, pinned_n, fd;

                snprintf(path, sizeof(path), "%s/progs/%s%s", l->root, bpf_program__name(prog),
                         l->multi ? "" : "_perf");
                l->prog_fds[i] = bpf_program__fd(prog);
                n = prog_unpinned_maps(l, l->prog_fds[i], &id, tag);
                l->prog_ids[i] = id;
                fd = bpf_obj_get(path);
                if (fd >= 0) {
                        pinned_n = prog_unpinned_maps(l, fd, &pinned_id, pinned_tag);
                        if (n >= 0 && pinned_n == n && memcmp(tag, pinned_tag, BPF_TAG_SIZE) == 0) {
                                l->prog_fds[i] = fd;
                                l->prog_ids[i] = pinned_id;
                                l->prog_pinned[i] = true;
                                continue;
                        }
                        close(fd);
                        unlink(path);
                }
                if (bpf_obj_pin(l->prog_fds[i], path) < 0)
                        log_warning("cannot pin program %s: %s", bpf_program__name(prog),
                                    strerror(errno));
        }
}

void loader_free(struct loader *l)
{
        if (!l)
                return;
        if (l->retired_events >= 0)
                close(l->retired_events);
        for (int i = 0; i < NPROGS; i++)
                if (l->prog_pinned[i])
                        close(l->prog_fds[i]);
        utrace__destroy(l->skel);
        free(l->root);
        free(l->layout_path);
        free(l);
}

int loader_open(const char *root, const struct loader_opts *opts, struct loader **ret,
                struct error *err)
{
        struct loader *l;
        char path[PATH_MAX];
        struct ut_global g = { .wake_bytes = opts->wake_bytes, .wake_ns = opts->wake_ns };
        uint64_t was[_MAP_MAX + 1], now[_MAP_MAX + 1];
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
        l->layout_path = strdup(opts->layout_path);
        l->ringbuf_size = opts->ringbuf_size;
        l->skel = utrace__open();
        if (!l->root || !l->layout_path || !l->skel) {
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
        layout_read(l, was);
        layout_digests(l, now);
        retire_incompatible_maps(l, was, now);
        r = utrace__load(l->skel);
        if (r < 0) {
                loader_free(l);
                return error_set(err, E_INTERNAL, r, "cannot load the BPF programs: %s",
                                 strerror(-r));
        }
        layout_write(l, now);
        for (int m = 0; m < _MAP_MAX; m++) {
                struct bpf_map_info info = { 0 };
                __u32 len = sizeof(info);

                l->map_fds[m] = bpf_map__fd(map_of(l->skel, m));
                if (bpf_obj_get_info_by_fd(l->map_fds[m], &info, &len) == 0)
                        l->map_ids[m] = info.id;
        }
        choose_programs(l);
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
        return l->prog_fds[(retprobe ? 1 : 0) + (sleepable ? 2 : 0)];
}

int loader_link_current(const struct loader *l, const char *pin)
{
        struct bpf_link_info info = { 0 };
        __u32 len = sizeof(info);
        _cleanup_close_ int fd = bpf_obj_get(pin);

        if (fd < 0)
                return -errno;
        if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
                return -errno;
        for (int i = 0; i < NPROGS; i++)
                if (l->prog_ids[i] == info.prog_id)
                        return 1;
        return 0;
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
