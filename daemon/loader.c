// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdarg.h>
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

struct loader {
        struct utrace *skel;
        char *root;
        bool multi;
        size_t ringbuf_size;
        int map_fds[_MAP_MAX];
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
        r = utrace__load(l->skel);
        if (r < 0) {
                loader_free(l);
                return error_set(err, E_INTERNAL, r,
                                 "cannot load the BPF programs: %s (pinned maps under %s "
                                 "from an incompatible build or ring buffer size are "
                                 "removed by utraced --purge)", strerror(-r), root);
        }
        for (int m = 0; m < _MAP_MAX; m++)
                l->map_fds[m] = bpf_map__fd(map_of(l->skel, m));
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
