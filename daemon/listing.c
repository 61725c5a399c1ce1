// SPDX-License-Identifier: GPL-2.0-only
#include <fnmatch.h>
#include <limits.h>
#include <sys/stat.h>

#include "access.h"
#include "elffile.h"
#include "listing.h"
#include "target.h"
#include "usdt.h"
#include "util.h"

struct listing {
        const char *pattern; /* NULL: everything */
        bool symbols;
        size_t nsymbols;     /* listed so far, over every object */
        size_t more;         /* left out past LISTING_MAX_SYMBOLS */
        json_object *objects;
};

static void add(json_object *o, const char *key, json_object *v)
{
        json_object_object_add(o, key, v);
}

static json_object *addr(uint64_t v)
{
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

static bool usdt_matches(const char *pattern, const struct usdt_note *n)
{
        char full[512];

        if (!pattern)
                return true;
        snprintf(full, sizeof(full), "%s:%s", n->provider, n->name);
        return fnmatch(pattern, full, 0) == 0 || fnmatch(pattern, n->name, 0) == 0;
}

static int note_cmp(const void *a, const void *b)
{
        const struct usdt_note *x = a, *y = b;
        int c = strcmp(x->provider, y->provider);

        if (!c)
                c = strcmp(x->name, y->name);
        if (!c && x->addr != y->addr)
                c = x->addr < y->addr ? -1 : 1;
        return c;
}

static json_object *location_json(const struct usdt_note *n)
{
        json_object *o = json_object_new_object();
        json_object *args = json_object_new_array();
        struct usdt_arg a[UT_MAX_ARGS];
        struct ut_arg_spec specs[UT_MAX_ARGS];
        struct error err = { 0 };
        int nargs;

        add(o, "address", addr(n->addr));
        add(o, "offset", addr(n->offset));
        add(o, "semaphore", n->sema_addr ? addr(n->sema_addr) : NULL);
        nargs = usdt_describe_args(n->args, a, UT_MAX_ARGS);
        for (int i = 0; i < nargs; i++) {
                json_object *arg = json_object_new_object();

                add(arg, "size", json_object_new_int(a[i].size));
                add(arg, "signed", json_object_new_boolean(a[i].is_signed));
                add(arg, "location", json_object_new_string(a[i].location));
                json_object_array_add(args, arg);
        }
        add(o, "args", args);
        /* what attaching would refuse, said before anyone tries */
        if (usdt_parse_args(n->args, specs, UT_MAX_ARGS, &err) < 0)
                add(o, "error", json_object_new_string(err.msg));
        return o;
}

/* The USDT probes of one file, grouped by provider:name; how many matched. */
static int list_usdt(struct listing *l, const struct elf_file *ef, json_object *obj,
                     struct error *err)
{
        struct usdt_note *notes = NULL;
        json_object *probes, *probe = NULL, *locs = NULL;
        int n, found = 0;

        n = elf_usdt_notes(ef, &notes, err);
        if (n < 0)
                return n;
        if (n)
                qsort(notes, n, sizeof(*notes), note_cmp);
        probes = json_object_new_array();
        for (int i = 0; i < n; i++) {
                const struct usdt_note *nt = &notes[i];

                if (!usdt_matches(l->pattern, nt))
                        continue;
                if (!probe || !streq(nt->provider, notes[i - 1].provider) ||
                    !streq(nt->name, notes[i - 1].name)) {
                        probe = json_object_new_object();
                        locs = json_object_new_array();
                        add(probe, "provider", json_object_new_string(nt->provider));
                        add(probe, "name", json_object_new_string(nt->name));
                        add(probe, "semaphore", nt->sema_addr ? addr(nt->sema_addr) : NULL);
                        add(probe, "locations", locs);
                        json_object_array_add(probes, probe);
                        found++;
                }
                json_object_array_add(locs, location_json(nt));
        }
        usdt_notes_free(notes, n);
        add(obj, "usdt", probes);
        return found;
}

/* The function symbols of one file; how many matched. */
static int list_symbols(struct listing *l, const struct elf_file *ef, json_object *obj)
{
        struct elf_symbol *syms = NULL;
        json_object *arr;
        int n;

        n = elf_list_symbols(ef, l->pattern, &syms);
        if (n < 0)
                return n;
        arr = json_object_new_array();
        for (int i = 0; i < n; i++) {
                json_object *o;

                if (l->nsymbols >= LISTING_MAX_SYMBOLS) {
                        l->more += n - i;
                        break;
                }
                o = json_object_new_object();
                add(o, "name", json_object_new_string(syms[i].name));
                add(o, "address", addr(syms[i].addr));
                add(o, "size", addr(syms[i].size));
                add(o, "ifunc", json_object_new_boolean(syms[i].ifunc));
                json_object_array_add(arr, o);
                l->nsymbols++;
        }
        elf_symbols_free(syms, n);
        add(obj, "symbols", arr);
        return n;
}

/*
 * One object: opened at path, shown as name. Objects of a process are
 * listed quietly: those that are not ELF or offer nothing are left out.
 */
static int list_object(struct listing *l, const char *path, const char *name, bool quiet,
                       struct error *err)
{
        struct elf_file *ef = NULL;
        json_object *obj;
        int r;

        r = elf_file_open(path, &ef, quiet ? NULL : err);
        if (r < 0)
                return quiet ? 0 : r;
        obj = json_object_new_object();
        add(obj, "path", json_object_new_string(name));
        if (l->symbols)
                r = list_symbols(l, ef, obj);
        else
                r = list_usdt(l, ef, obj, quiet ? NULL : err);
        elf_file_free(ef);
        if (r < 0 || (quiet && r == 0)) {
                json_object_put(obj);
                return quiet && r != -ENOMEM ? 0 : r;
        }
        json_object_array_add(l->objects, obj);
        return 0;
}

static int list_process(struct listing *l, pid_t pid, struct error *err)
{
        char **paths = NULL, **names = NULL;
        struct stat *seen;
        int n, r = 0, nseen = 0;

        n = target_process_objects(pid, &paths, &names, err);
        if (n <= 0)
                return n;
        seen = calloc(n, sizeof(*seen));
        if (!seen) {
                r = -ENOMEM;
                goto out;
        }
        for (int i = 0; i < n && r >= 0; i++) {
                struct stat st;
                bool dup = false;

                if (stat(paths[i], &st) < 0)
                        continue;
                for (int k = 0; k < nseen; k++)
                        dup |= seen[k].st_dev == st.st_dev && seen[k].st_ino == st.st_ino;
                if (dup)
                        continue; /* one file mapped under two names */
                seen[nseen++] = st;
                r = list_object(l, paths[i], names[i], true, err);
        }
        free(seen);
out:
        strv_free(paths);
        strv_free(names);
        return r;
}

static int want(json_object *params, const char *key, json_type t, json_object **v,
                struct error *err)
{
        static const char *const names[] = {
                [json_type_boolean] = "a boolean", [json_type_int] = "an integer",
                [json_type_string] = "a string",
        };

        if (!json_object_object_get_ex(params, key, v))
                return 0;
        if (!json_object_is_type(*v, t))
                return error_set(err, E_INVALID_PARAMS, -EINVAL, "probes: \"%s\" must be %s",
                                 key, names[t]);
        return 1;
}

int listing_probes(const struct caller *c, json_object *params, json_object **result,
                   struct error *err)
{
        struct listing l = { 0 };
        _cleanup_free_ char *path = NULL;
        json_object *target = NULL, *pid = NULL, *v;
        long long p = 0;
        int r;

        if (!params)
                return error_set(err, E_INVALID_PARAMS, -EINVAL,
                                 "probes: give \"target\" (a file or name) or \"pid\"");
        json_object_object_foreach(params, key, val) {
                (void)val;
                if (!streq(key, "target") && !streq(key, "pid") && !streq(key, "pattern") &&
                    !streq(key, "symbols"))
                        return error_set(err, E_INVALID_PARAMS, -EINVAL,
                                         "probes: unknown parameter \"%.64s\"", key);
        }
        if ((r = want(params, "target", json_type_string, &target, err)) < 0 ||
            (r = want(params, "pid", json_type_int, &pid, err)) < 0)
                return r;
        if (!target == !pid)
                return error_set(err, E_INVALID_PARAMS, -EINVAL,
                                 "probes: give either \"target\" (a file or name) or \"pid\"");
        r = want(params, "pattern", json_type_string, &v, err);
        if (r < 0)
                return r;
        if (r)
                l.pattern = json_object_get_string(v);
        r = want(params, "symbols", json_type_boolean, &v, err);
        if (r < 0)
                return r;
        l.symbols = r && json_object_get_boolean(v);
        if (pid) {
                p = json_object_get_int64(pid);
                if (p <= 0 || p > INT_MAX)
                        return error_set(err, E_INVALID_PARAMS, -EINVAL, "probes: bad pid %lld", p);
        }

        if (pid) {
                r = access_check_process(c, (pid_t)p, err);
                if (r < 0)
                        return r;
        }
        l.objects = json_object_new_array();
        if (target) {
                r = target_resolve(json_object_get_string(target), 0, &path, err);
                if (r >= 0) {
                        /* read it as the caller could: through a file opened with
                         * the caller's credentials */
                        _cleanup_close_ int fd = access_open_as(c, path, err);
                        char fdpath[64];

                        r = fd;
                        if (fd >= 0) {
                                snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
                                r = list_object(&l, c->privileged ? path : fdpath, path, false, err);
                        }
                }
        } else {
                r = list_process(&l, (pid_t)p, err);
        }
        if (r < 0) {
                json_object_put(l.objects);
                return r;
        }
        *result = json_object_new_object();
        add(*result, "objects", l.objects);
        if (l.symbols)
                add(*result, "more_symbols", addr(l.more));
        return 0;
}
