// SPDX-License-Identifier: GPL-2.0-only
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "target.h"
#include "util.h"

#define LDCACHE_OLD "ld.so-1.7.0"
#define LDCACHE_NEW "glibc-ld.so.cache1.1"
#define FLAG_ELF_LIBC6 0x0003
#define FLAG_X8664_LIB64 0x0300

struct cache_new_header {
        char magic[17];
        char version[3];
        uint32_t nlibs;
        uint32_t len_strings;
        uint8_t flags;
        uint8_t pad[3];
        uint32_t extension_offset;
        uint32_t unused[3];
};

struct cache_new_entry {
        int32_t flags;
        uint32_t key;
        uint32_t value;
        uint32_t osversion;
        uint64_t hwcap;
};

struct cache_old_entry {
        int32_t flags;
        uint32_t key;
        uint32_t value;
};

_Static_assert(sizeof(struct cache_new_header) == 48, "ld.so.cache header");
_Static_assert(sizeof(struct cache_new_entry) == 24, "ld.so.cache entry");

void strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

int target_ldcache_lookup(const char *cache_path, const char *name, char **ret)
{
        _cleanup_close_ int fd = open(cache_path, O_RDONLY | O_CLOEXEC);
        const struct cache_new_header *h;
        const char *base;
        struct stat st;
        size_t size, off = 0;
        int r = -ENOENT;
        void *map;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        size = st.st_size;
        if (size < sizeof(*h) || size > (64u << 20))
                return -EINVAL;
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
                return -errno;
        base = map;
        if (memcmp(base, LDCACHE_OLD, strlen(LDCACHE_OLD)) == 0) {
                uint32_t nold;

                memcpy(&nold, base + 12, sizeof(nold));
                off = 16 + (size_t)nold * sizeof(struct cache_old_entry);
                off = (off + 7) & ~(size_t)7;
        }
        if (off + sizeof(*h) > size || memcmp(base + off, LDCACHE_NEW, strlen(LDCACHE_NEW)) != 0) {
                r = -EINVAL;
                goto out;
        }
        h = (const void *)(base + off);
        if (h->nlibs > (size - off - sizeof(*h)) / sizeof(struct cache_new_entry)) {
                r = -EINVAL;
                goto out;
        }
        for (uint32_t i = 0; i < h->nlibs; i++) {
                const struct cache_new_entry *e =
                        (const void *)(base + off + sizeof(*h) + i * sizeof(*e));
                const char *key, *value;

                if ((e->flags & 0xff) != FLAG_ELF_LIBC6 || (e->flags & 0xff00) != FLAG_X8664_LIB64)
                        continue;
                if (off + e->key >= size || off + e->value >= size)
                        continue;
                key = base + off + e->key;
                value = base + off + e->value;
                if (!memchr(key, 0, size - off - e->key) || !memchr(value, 0, size - off - e->value))
                        continue;
                if (streq(key, name)) {
                        *ret = strdup(value);
                        r = *ret ? 0 : -ENOMEM;
                        break;
                }
        }
out:
        munmap(map, size);
        return r;
}

int target_check_pid(pid_t pid, struct error *err)
{
        char path[64];

        if (pid <= 0)
                return error_set(err, E_NO_PROCESS, -ESRCH, "invalid pid %d", (int)pid);
        snprintf(path, sizeof(path), "/proc/%d", (int)pid);
        if (access(path, F_OK) < 0)
                return error_set(err, E_NO_PROCESS, -ESRCH, "no process with pid %d", (int)pid);
        return 0;
}

static bool is_file(const char *path)
{
        struct stat st;

        return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Parse one /proc/PID/maps line: range, executable, path (or NULL). */
static bool maps_line(char *line, char range[64], const char **path)
{
        char perms[8];
        int pos = 0;

        if (sscanf(line, "%63s %7s %*s %*s %*s %n", range, perms, &pos) < 2 || !pos)
                return false;
        if (perms[2] != 'x')
                return false;
        line[strcspn(line, "\n")] = 0;
        *path = line + pos;
        return **path == '/';
}

int target_process_objects(pid_t pid, char ***paths, char ***names, struct error *err)
{
        _cleanup_fclose_ FILE *f = NULL;
        char mpath[64], *line = NULL;
        char **p = NULL, **nm = NULL;
        size_t n = 0, cap = 0, len = 0, ncap = 0;
        int r;

        r = target_check_pid(pid, err);
        if (r < 0)
                return r;
        snprintf(mpath, sizeof(mpath), "/proc/%d/maps", (int)pid);
        f = fopen(mpath, "re");
        if (!f)
                return error_set(err, E_NO_PROCESS, -errno, "cannot read %s: %s", mpath,
                                 strerror(errno));
        while (getline(&line, &len, f) > 0) {
                char range[64], buf[128];
                unsigned long start, end;
                const char *path;
                bool dup = false;

                if (!maps_line(line, range, &path) || sscanf(range, "%lx-%lx", &start, &end) != 2)
                        continue;
                for (size_t i = 0; i < n; i++)
                        if (streq(nm[i], path))
                                dup = true;
                if (dup)
                        continue;
                if (grow_array(&p, &cap, n + 2, sizeof(*p)) < 0 ||
                    grow_array(&nm, &ncap, n + 2, sizeof(*nm)) < 0)
                        goto nomem;
                /* maps pads addresses with zeros, map_files does not */
                snprintf(buf, sizeof(buf), "/proc/%d/map_files/%lx-%lx", (int)pid, start, end);
                p[n] = strdup(buf);
                nm[n] = strdup(path);
                p[n + 1] = nm[n + 1] = NULL;
                if (!p[n] || !nm[n]) {
                        n++;
                        goto nomem;
                }
                n++;
        }
        free(line);
        if (!n) {
                *paths = *names = NULL;
                return 0;
        }
        *paths = p;
        *names = nm;
        return (int)n;
nomem:
        free(line);
        strv_free(p);
        strv_free(nm);
        return -ENOMEM;
}

bool target_name_matches(const char *name, const char *path)
{
        const char *base = strrchr(path, '/');

        base = base ? base + 1 : path;
        if (streq(base, name))
                return true;
        /* "libc.so" is libc.so.6 (a version suffix: .N[.N...]) */
        if (!startswith(base, name) || !strstr(name, ".so") || base[strlen(name)] != '.')
                return false;
        for (const char *v = base + strlen(name); *v;) {
                if (v[0] != '.' || !isdigit((unsigned char)v[1]))
                        return false;
                for (v++; isdigit((unsigned char)*v); v++)
                        ;
        }
        return true;
}

static int resolve_in_process(const char *name, pid_t pid, char **ret)
{
        char **paths = NULL, **names = NULL;
        int n, r = -ENOENT;

        n = target_process_objects(pid, &paths, &names, NULL);
        for (int i = 0; i < n; i++) {
                if (target_name_matches(name, names[i])) {
                        *ret = strdup(paths[i]);
                        r = *ret ? 0 : -ENOMEM;
                        break;
                }
        }
        strv_free(paths);
        strv_free(names);
        return r;
}

static int search_dirs(const char *name, const char *dirs, char **ret)
{
        const char *d = dirs;

        while (d && *d) {
                size_t len = strcspn(d, ":");
                char buf[PATH_MAX];

                if (len && snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, d, name) <
                                   (int)sizeof(buf) &&
                    is_file(buf)) {
                        *ret = strdup(buf);
                        return *ret ? 0 : -ENOMEM;
                }
                d += len;
                if (*d == ':')
                        d++;
        }
        return -ENOENT;
}

int target_resolve_mapped(const char *target, pid_t pid, char **ret, struct error *err)
{
        char **paths = NULL, **names = NULL;
        int n, r;

        if (!target || !*target)
                return error_set(err, E_INVALID_SPEC, -EINVAL, "empty target");
        if (target[0] != '/')
                r = resolve_in_process(target, pid, ret);
        else {
                n = target_process_objects(pid, &paths, &names, err);
                if (n < 0)
                        return n;
                r = -ENOENT;
                for (int i = 0; i < n; i++)
                        if (streq(names[i], target)) {
                                *ret = strdup(paths[i]);
                                r = *ret ? 0 : -ENOMEM;
                                break;
                        }
                strv_free(paths);
                strv_free(names);
        }
        if (r == -ENOENT)
                return error_set(err, E_PERMISSION, -EPERM,
                                 "process %d maps no %s: without privileges a probe may only "
                                 "name a file its process maps", (int)pid, target);
        return r;
}

int target_resolve(const char *target, pid_t pid, char **ret, struct error *err)
{
        char buf[PATH_MAX];
        int r;

        if (!target || !*target)
                return error_set(err, E_INVALID_SPEC, -EINVAL, "empty target");
        if (pid) {
                r = target_check_pid(pid, err);
                if (r < 0)
                        return r;
        }
        if (target[0] == '/') {
                if (pid) {
                        snprintf(buf, sizeof(buf), "/proc/%d/root%s", (int)pid, target);
                        target = buf;
                }
                if (access(target, F_OK) < 0)
                        return error_set(err, E_NO_FILE, -errno, "%s: %s", target, strerror(errno));
                *ret = strdup(target);
                return *ret ? 0 : -ENOMEM;
        }
        if (strchr(target, '/'))
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "target %s: use an absolute path or a bare name", target);
        if (pid && resolve_in_process(target, pid, ret) == 0)
                return 0;
        if (pid)
                return error_set(err, E_NO_FILE, -ENOENT, "process %d maps no object named %s",
                                 (int)pid, target);
        r = target_ldcache_lookup("/etc/ld.so.cache", target, ret);
        if (r == 0 || r == -ENOMEM)
                return r;
        r = search_dirs(target, "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64:"
                                "/usr/lib64:/lib:/usr/lib:/usr/local/lib", ret);
        if (r == 0 || r == -ENOMEM)
                return r;
        r = search_dirs(target, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        ret);
        if (r == 0 || r == -ENOMEM)
                return r;
        return error_set(err, E_NO_FILE, -ENOENT,
                         "%s: no such library or program (not in ld.so.cache, the library "
                         "directories or PATH)", target);
}
