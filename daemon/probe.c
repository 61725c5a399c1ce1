// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <mntent.h>
#include <stdio.h>
#include <sys/stat.h>

#include "attach.h"
#include "elffile.h"
#include "loader.h"
#include "output.h"
#include "probe.h"
#include "target.h"
#include "usdt.h"
#include "util.h"

static const uint16_t abi_regs[] = {
        UT_REG_DI, UT_REG_SI, UT_REG_DX, UT_REG_CX, UT_REG_R8, UT_REG_R9,
};

struct probe *probe_new(void)
{
        return calloc(1, sizeof(struct probe));
}

void probe_free(struct probe *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->nlocs; i++) {
                free(p->locs[i].name);
                free(p->locs[i].args_text);
        }
        probe_release_files(p);
        for (size_t i = 0; i < p->natts; i++)
                free(p->atts[i].path);
        free(p->locs);
        free(p->atts);
        free(p->request);
        free(p->config);
        output_free(p->output);
        probe_spec_done(&p->spec);
        free(p);
}

const char *probe_type_name(enum probe_type t)
{
        switch (t) {
        case PROBE_UPROBE: return "uprobe";
        case PROBE_URETPROBE: return "uretprobe";
        case PROBE_USDT: return "usdt";
        }
        return "?";
}

const struct probe_location *probe_location(const struct probe *p, uint32_t loc)
{
        return loc < p->nlocs && !p->locs[loc].hole ? &p->locs[loc] : NULL;
}

static struct probe_location *add_location(struct probe *p, const char *name)
{
        struct probe_location *l;

        if (grow_array(&p->locs, &p->locs_cap, p->nlocs + 1, sizeof(*p->locs)) < 0)
                return NULL;
        l = &p->locs[p->nlocs];
        memset(l, 0, sizeof(*l));
        l->name = strdup(name);
        if (!l->name)
                return NULL;
        p->nlocs++;
        return l;
}

static struct attachment *add_attachment(struct probe *p, const char *path, dev_t dev, ino_t ino)
{
        struct attachment *a;

        if (grow_array(&p->atts, &p->atts_cap, p->natts + 1, sizeof(*p->atts)) < 0)
                return NULL;
        a = &p->atts[p->natts];
        memset(a, 0, sizeof(*a));
        a->fd = -1;
        a->path = strdup(path);
        if (!a->path)
                return NULL;
        a->dev = dev;
        a->ino = ino;
        a->kdev = kernel_dev(dev);
        a->kino = ino;
        a->loc_first = p->nlocs;
        p->natts++;
        return a;
}

static int resolve_symbols(struct probe *p, struct elf_file *ef, struct error *err)
{
        const struct probe_spec *s = &p->spec;
        const char *path = elf_file_path(ef);
        struct elf_symbol *syms = NULL;
        bool glob = spec_has_glob(s->symbol);
        int n, r = 0;

        n = elf_find_symbols(ef, s->symbol, glob, &syms);
        if (n < 0)
                return n;
        if (n == 0) {
                if (!elf_file_has_symtab(ef))
                        r = error_set(err, E_NO_SYMBOL, -ENOENT,
                                      "symbol %s not found in %s (the file is stripped: it has "
                                      "no .symtab; probe an address with %s:%s:0xADDR)",
                                      s->symbol, path, probe_type_name(s->type), s->target);
                else
                        r = error_set(err, E_NO_SYMBOL, -ENOENT, "symbol %s not found in %s",
                                      s->symbol, path);
                goto out;
        }
        for (int i = 0; i < n; i++) {
                struct probe_location *l;
                char name[PATH_MAX];

                if (syms[i].ifunc && !glob) {
                        r = error_set(err, E_UNSUPPORTED, -EOPNOTSUPP,
                                      "%s in %s is an indirect function (IFUNC): its address is "
                                      "the resolver, not the code that runs; probe the "
                                      "implementation (see utracectl probes --symbols %s '%s*')",
                                      syms[i].name, path, path, syms[i].name);
                        goto out;
                }
                if (syms[i].ifunc)
                        continue;
                if (s->offset && syms[i].size && s->offset >= syms[i].size) {
                        r = error_set(err, E_INVALID_SPEC, -EINVAL,
                                      "offset %llu is beyond %s (%llu bytes) in %s",
                                      (unsigned long long)s->offset, syms[i].name,
                                      (unsigned long long)syms[i].size, path);
                        goto out;
                }
                if (s->offset)
                        snprintf(name, sizeof(name), "%s+%llu", syms[i].name,
                                 (unsigned long long)s->offset);
                else
                        snprintf(name, sizeof(name), "%s", syms[i].name);
                l = add_location(p, name);
                if (!l) {
                        r = -ENOMEM;
                        goto out;
                }
                l->offset = syms[i].offset + s->offset;
        }
        if (p->nlocs == 0)
                r = error_set(err, E_NO_SYMBOL, -ENOENT, "%s matches only indirect functions in %s",
                              s->symbol, path);
out:
        elf_symbols_free(syms, n);
        return r;
}

static int resolve_address(struct probe *p, struct elf_file *ef, struct error *err)
{
        struct probe_location *l;
        uint64_t off;
        char name[32];

        if (elf_addr_to_offset(ef, p->spec.address, &off) < 0)
                return error_set(err, E_NO_SYMBOL, -ENOENT,
                                 "address 0x%llx is not in an executable segment of %s",
                                 (unsigned long long)p->spec.address, elf_file_path(ef));
        snprintf(name, sizeof(name), "0x%llx", (unsigned long long)p->spec.address);
        l = add_location(p, name);
        if (!l)
                return -ENOMEM;
        l->offset = off;
        return 0;
}

static bool usdt_matches(const struct probe_spec *s, const struct usdt_note *n)
{
        if (s->provider && fnmatch(s->provider, n->provider, 0) != 0)
                return false;
        return fnmatch(s->name, n->name, 0) == 0;
}

/* USDT locations of one file; returns how many matched. */
static int resolve_usdt_file(struct probe *p, struct elf_file *ef, const char *shown,
                             struct error *err)
{
        struct usdt_note *notes = NULL;
        int n, found = 0, r = 0;

        n = elf_usdt_notes(ef, &notes, err);
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++) {
                struct probe_location *l;
                char name[256];

                if (!usdt_matches(&p->spec, &notes[i]))
                        continue;
                snprintf(name, sizeof(name), "%s:%s", notes[i].provider, notes[i].name);
                l = add_location(p, name);
                if (!l) {
                        r = -ENOMEM;
                        break;
                }
                l->offset = notes[i].offset;
                l->ref_ctr = notes[i].sema_offset;
                l->args_text = strdup(notes[i].args);
                if (!l->args_text) {
                        r = -ENOMEM;
                        break;
                }
                r = usdt_parse_args(notes[i].args, l->args, UT_MAX_ARGS, err);
                if (r < 0) {
                        char prefix[300];

                        snprintf(prefix, sizeof(prefix), "%s in %s: ", name, shown);
                        if (strlen(prefix) + strlen(err->msg) < sizeof(err->msg)) {
                                memmove(err->msg + strlen(prefix), err->msg, strlen(err->msg) + 1);
                                memcpy(err->msg, prefix, strlen(prefix));
                        }
                        break;
                }
                l->nargs = r;
                r = 0;
                found++;
        }
        usdt_notes_free(notes, n);
        return r < 0 ? r : found;
}

/* Locations and attachments from index nlocs, natts on are dropped. */
static void truncate_resolution(struct probe *p, size_t nlocs, size_t natts)
{
        while (p->nlocs > nlocs) {
                p->nlocs--;
                free(p->locs[p->nlocs].name);
                free(p->locs[p->nlocs].args_text);
        }
        while (p->natts > natts) {
                struct attachment *a = &p->atts[--p->natts];

                if (a->fd >= 0)
                        close(a->fd);
                free(a->path);
        }
}

void probe_release_files(struct probe *p)
{
        for (size_t i = 0; i < p->natts; i++)
                if (p->atts[i].fd >= 0) {
                        close(p->atts[i].fd);
                        p->atts[i].fd = -1;
                }
}

/* The probe's locations in the file at path (named shown in messages). */
static int resolve_file(struct probe *p, const char *path, const char *shown, struct error *err)
{
        size_t nlocs = p->nlocs, natts = p->natts;
        struct elf_file *ef = NULL;
        struct attachment *a;
        dev_t dev;
        ino_t ino;
        int r;

        r = elf_file_open(path, &ef, err);
        if (r < 0)
                return r;
        elf_file_identity(ef, &dev, &ino);
        for (size_t i = 0; i < p->natts; i++)
                if (p->atts[i].dev == dev && p->atts[i].ino == ino) {
                        elf_file_free(ef);
                        return 0; /* the same file, mapped under two names */
                }
        a = add_attachment(p, path, dev, ino);
        if (!a) {
                elf_file_free(ef);
                return -ENOMEM;
        }
        if (p->spec.type == PROBE_USDT)
                r = resolve_usdt_file(p, ef, shown, err);
        else if (p->spec.symbol)
                r = resolve_symbols(p, ef, err);
        else
                r = resolve_address(p, ef, err);
        a = &p->atts[p->natts - 1];
        a->loc_count = p->nlocs - a->loc_first;
        /* the links go to this very file, even if the path is replaced meanwhile:
         * offsets computed from one file must never be applied to another */
        if (r >= 0 && a->loc_count) {
                a->fd = fcntl(elf_file_fd(ef), F_DUPFD_CLOEXEC, 3);
                if (a->fd < 0)
                        r = error_set(err, E_INTERNAL, -errno, "%s: %s", shown, strerror(errno));
        }
        if (r < 0 || a->loc_count == 0)
                truncate_resolution(p, nlocs, natts);
        elf_file_free(ef);
        return r;
}

int probe_resolve(struct probe *p, struct error *err)
{
        const struct probe_spec *s = &p->spec;
        _cleanup_free_ char *path = NULL;
        int r;

        if (s->type == PROBE_USDT && !s->target) {
                char **paths = NULL, **names = NULL;
                int n = target_process_objects(s->pid, &paths, &names, err);

                if (n < 0)
                        return n;
                r = 0;
                for (int i = 0; i < n && r >= 0; i++) {
                        struct error e = { 0 };

                        /* objects that are not ELF or have no such probe are passed
                         * over; one that has it but cannot be decoded is an error */
                        r = resolve_file(p, paths[i], names[i], &e);
                        if (r == -ENOMEM || (r < 0 && e.code == E_UNSUPPORTED))
                                r = error_set(err, e.code, r, "%s", e.msg);
                        else
                                r = 0;
                }
                strv_free(paths);
                strv_free(names);
                if (r < 0)
                        return r;
                if (p->nlocs == 0)
                        return error_set(err, E_NO_USDT, -ENOENT,
                                         "no USDT probe %s%s%s in any object of process %d",
                                         s->provider ? s->provider : "", s->provider ? ":" : "",
                                         s->name, (int)s->pid);
                return 0;
        }
        if (probe_watched(p) && spec_has_glob(s->target))
                return 0; /* the watcher finds the files, maybe later */
        r = p->restricted ? target_resolve_mapped(s->target, s->pid, &path, err)
                          : target_resolve(s->target, s->pid, &path, err);
        if (r < 0)
                return r;
        r = resolve_file(p, path, path, err);
        if (r < 0)
                return r;
        if (s->type == PROBE_USDT && p->nlocs == 0)
                return error_set(err, E_NO_USDT, -ENOENT, "no USDT probe %s%s%s in %s",
                                 s->provider ? s->provider : "", s->provider ? ":" : "",
                                 s->name, path);
        return 0;
}

bool probe_watched(const struct probe *p)
{
        const struct probe_spec *s = &p->spec;

        return !p->restricted && !s->pid && s->target &&
               (!strchr(s->target, '/') || spec_has_glob(s->target));
}

bool probe_watch_matches(const struct probe *p, const char *name)
{
        const char *t = p->spec.target, *base;
        char path[PATH_MAX];
        size_t len;

        if (streq(t, "*"))
                return true;
        snprintf(path, sizeof(path), "%s", name);
        len = strlen(path);
        if (len > 10 && streq(path + len - 10, " (deleted)"))
                path[len - 10] = 0;
        if (strchr(t, '/'))
                return fnmatch(t, path, 0) == 0;
        if (spec_has_glob(t)) {
                base = strrchr(path, '/');
                return fnmatch(t, base ? base + 1 : path, 0) == 0;
        }
        return target_name_matches(t, path);
}

/* Move the new attachment a's locations into a run of holes, if one fits. */
static void fill_hole(struct probe *p, struct attachment *a)
{
        size_t run = 0;

        if (!a->loc_count)
                return;
        for (size_t i = 0; i < a->loc_first; i++) {
                run = p->locs[i].hole ? run + 1 : 0;
                if (run < a->loc_count)
                        continue;
                memcpy(&p->locs[i + 1 - run], &p->locs[a->loc_first], run * sizeof(*p->locs));
                p->nlocs = a->loc_first; /* moved, not freed */
                a->loc_first = i + 1 - run;
                return;
        }
}

int probe_add_file(struct probe *p, const char *path, const char *shown, uint64_t kdev,
                   uint64_t kino, struct error *err)
{
        size_t natts = p->natts;
        int r = resolve_file(p, path, shown, err);

        if (r < 0)
                return r;
        if (p->natts == natts)
                return 0;
        p->atts[natts].watched = true;
        /* shown as the process sees it; the links are made through the open file */
        free(p->atts[natts].path);
        p->atts[natts].path = strdup(shown);
        if (!p->atts[natts].path) {
                truncate_resolution(p, p->nlocs - p->atts[natts].loc_count, natts);
                return -ENOMEM;
        }
        p->atts[natts].kdev = kdev;
        p->atts[natts].kino = kino;
        fill_hole(p, &p->atts[natts]);
        return 1;
}

void probe_remove_attachment(struct probe *p, size_t i, const char *root)
{
        struct attachment *a = &p->atts[i];
        char path[PATH_MAX];

        for (unsigned k = 0; k < a->pin_count; k++) {
                probe_pin_path(path, sizeof(path), root, p->id, a->pin_first + k);
                unlink(path);
        }
        for (size_t k = a->loc_first; k < a->loc_first + a->loc_count; k++) {
                struct probe_location *l = &p->locs[k];

                free(l->name);
                free(l->args_text);
                memset(l, 0, sizeof(*l));
                l->hole = true;
        }
        while (p->nlocs && p->locs[p->nlocs - 1].hole)
                p->nlocs--;
        if (a->fd >= 0)
                close(a->fd);
        free(a->path);
        memmove(a, a + 1, (p->natts - i - 1) * sizeof(*a));
        p->natts--;
}

size_t probe_nlocations(const struct probe *p)
{
        size_t n = 0;

        for (size_t i = 0; i < p->natts; i++)
                n += p->atts[i].loc_count;
        return n;
}

/* --- compile --------------------------------------------------------------- */

/* Arguments a probe has: every location of a USDT probe has at least these. */
static int usdt_nargs(const struct probe *p)
{
        int n = UT_MAX_ARGS;

        if (p->spec.type != PROBE_USDT)
                return n;
        for (size_t i = 0; i < p->nlocs; i++)
                if (!p->locs[i].hole)
                        n = MIN(n, p->locs[i].nargs);
        return n;
}

static struct probe_field *add_field(struct probe *p, const char *name, bool is_str, bool hidden)
{
        struct probe_field *f;

        if (p->nfields >= (int)ARRAY_SIZE(p->fields))
                return NULL;
        f = &p->fields[p->nfields++];
        memset(f, 0, sizeof(*f));
        snprintf(f->name, sizeof(f->name), "%s", name);
        f->is_str = is_str;
        f->hidden = hidden;
        return f;
}

/* Whether an integer value of ref reads as signed wherever it is read: its cast
 * says, else retval is. An uncast USDT argument is signed where its location's
 * note says so: that is decided per location (probe_value_signed, and the BPF
 * predicate code). */
static bool ref_signed(const struct fieldref *ref)
{
        if (ref->cast)
                return ref->cast & UT_CAST_SIGNED;
        return ref->field == FIELD_RETVAL;
}

/* Slot for an integer value of ref (ARG or RETVAL, maybe cast); reuses a capture. */
static int value_slot(struct probe *p, const struct fieldref *ref, const char *name, bool hidden,
                      struct error *err)
{
        struct ut_probe *c = &p->cfg;
        struct probe_field *f;
        uint8_t src = ref->field == FIELD_RETVAL ? UT_SRC_RETVAL : UT_SRC_ARG;

        if (hidden)
                for (int i = 0; i < c->nvals; i++)
                        if (c->vals[i].src == src && c->vals[i].cast == ref->cast &&
                            (src == UT_SRC_RETVAL || c->vals[i].idx == ref->idx))
                                return i;
        if (c->nvals >= UT_MAX_VALS)
                return error_set(err, E_LIMIT, -E2BIG, "more than %d integer values", UT_MAX_VALS);
        f = add_field(p, name, false, hidden);
        if (!f)
                return error_set(err, E_LIMIT, -E2BIG, "too many fields");
        f->index = c->nvals;
        c->vals[c->nvals] = (struct ut_capture){ .src = src, .idx = ref->idx, .cast = ref->cast };
        return c->nvals++;
}

bool probe_value_signed(const struct probe *p, unsigned idx, const struct probe_location *loc)
{
        const struct ut_capture *c;

        if (idx >= UT_MAX_VALS || idx >= p->cfg.nvals)
                return false;
        c = &p->cfg.vals[idx];
        if (c->cast)
                return c->cast & UT_CAST_SIGNED;
        if (c->src == UT_SRC_RETVAL)
                return true;
        /* an uncast USDT argument is what its location's note says; a value
         * aggregated over every location reads as the first location's */
        if (!loc && p->nlocs)
                loc = &p->locs[0];
        return loc && c->src == UT_SRC_ARG && c->idx < loc->nargs && loc->args[c->idx].is_signed;
}

/* Slot for a string of ref; a hidden one (a filter's, a key's) reuses a
 * capture that reads at least min_cap bytes (NUL included). */
static int string_slot(struct probe *p, const struct fieldref *ref, const char *name, bool hidden,
                       unsigned min_cap, struct error *err)
{
        struct ut_probe *c = &p->cfg;
        struct probe_field *f;
        uint8_t src = ref->field == FIELD_RETVAL ? UT_SRC_RETVAL : UT_SRC_ARG;
        unsigned cap = MAX((unsigned)(ref->len ? ref->len : SPEC_STR_DEFAULT) + 1, min_cap);
        unsigned total = cap;

        if (hidden)
                for (int i = 0; i < c->nstrs; i++)
                        if (c->strs[i].src == src && c->strs[i].cap >= min_cap &&
                            (src == UT_SRC_RETVAL || c->strs[i].idx == ref->idx))
                                return i;
        if (c->nstrs >= UT_MAX_STRS)
                return error_set(err, E_LIMIT, -E2BIG, "more than %d strings", UT_MAX_STRS);
        for (int i = 0; i < c->nstrs; i++)
                total += c->strs[i].cap;
        if (total > UT_STRS_MAX)
                return error_set(err, E_LIMIT, -E2BIG,
                                 "strings of one event may total %d bytes; shorten them with "
                                 "str(argN, LEN)", UT_STRS_MAX);
        f = add_field(p, name, true, hidden);
        if (!f)
                return error_set(err, E_LIMIT, -E2BIG, "too many fields");
        f->index = c->nstrs;
        c->strs[c->nstrs] = (struct ut_strcap){ .src = src, .idx = ref->idx, .cap = cap };
        return c->nstrs++;
}

/* A reference by capture name becomes the capture's own reference. */
static int deref_name(const struct probe *p, struct fieldref *ref, struct error *err)
{
        if (ref->field != FIELD_NAME)
                return 0;
        for (int i = 0; i < p->spec.ncaps; i++) {
                const struct fieldref *cap = &p->spec.caps[i].ref;
                bool is_str = ref->is_str || cap->is_str;
                uint8_t cast = ref->cast;

                if (!streq(p->spec.caps[i].name, ref->name))
                        continue;
                if (cast && cap->is_str)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "(%s)%s: %s is a string", spec_cast_name(cast),
                                         ref->name, ref->name);
                if (cast && cap->cast)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "(%s)%s: %s is already (%s)", spec_cast_name(cast),
                                         ref->name, ref->name, spec_cast_name(cap->cast));
                if (ref->is_str && cap->cast)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "str(%s): %s is a cast integer, not a pointer",
                                         ref->name, ref->name);
                *ref = *cap;
                ref->is_str = is_str;
                if (cast)
                        ref->cast = cast;
                return 0;
        }
        return error_set(err, E_INVALID_SPEC, -EINVAL, "unknown field \"%s\"", ref->name);
}

/* An event's retval shows the type the probe first casts retval to (in
 * --arg, --filter, hist() or --by, in that order). */
static void note_retval_cast(struct probe *p, const struct fieldref *ref)
{
        if (ref->field == FIELD_RETVAL && !ref->is_str && ref->cast && !p->retval_cast)
                p->retval_cast = ref->cast;
}

static int check_ref(const struct probe *p, const struct fieldref *ref, const char *what,
                     struct error *err)
{
        const struct probe_spec *s = &p->spec;
        bool ret_ok = s->type == PROBE_URETPROBE || s->latency;

        if (ref->field == FIELD_ARG) {
                if (s->type == PROBE_URETPROBE)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "%s: arguments are gone when a function returns; use "
                                         "a uprobe with --latency to see them with the return",
                                         what);
                if (ref->idx >= usdt_nargs(p))
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "%s: %s has only %d arguments", what, s->text,
                                         usdt_nargs(p));
        }
        if (ref->field == FIELD_RETVAL && !ret_ok)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "%s: retval needs a uretprobe or --latency", what);
        if (ref->field == FIELD_RETVAL && ref->is_str && s->latency)
                return error_set(err, E_UNSUPPORTED, -EINVAL,
                                 "%s: str(retval) is not available with --latency", what);
        if (ref->field == FIELD_LATENCY && !s->latency)
                return error_set(err, E_INVALID_SPEC, -EINVAL, "%s: latency_ns needs --latency",
                                 what);
        return 0;
}

/* Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or
 * /sys/fs/cgroup/unified on a hybrid system). */
static int cgroup2_mount(char *buf, size_t size)
{
        _cleanup_fclose_ FILE *f = setmntent("/proc/self/mounts", "re");
        struct mntent *me;

        if (!f)
                return -errno;
        while ((me = getmntent(f)))
                if (streq(me->mnt_type, "cgroup2")) {
                        snprintf(buf, size, "%s", me->mnt_dir);
                        return 0;
                }
        return -ENOENT;
}

/* A cgroup path as /proc/PID/cgroup shows it ("/a/b"), or the directory
 * under the cgroup2 mount, to the cgroup's id. */
static int cgroup_ref(const char *path, uint64_t *id, struct error *err)
{
        char mnt[PATH_MAX], full[PATH_MAX], real[PATH_MAX];
        size_t mlen;
        struct stat st;

        if (cgroup2_mount(mnt, sizeof(mnt)) < 0)
                return error_set(err, E_UNSUPPORTED, -ENOENT,
                                 "cgroup \"%s\": no cgroup v2 hierarchy is mounted", path);
        if (path[0] != '/')
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "cgroup \"%s\": give a path as /proc/PID/cgroup shows it "
                                 "(\"/system.slice/x.service\"), or a cgroup id", path);
        mlen = strlen(mnt);
        if (startswith(path, mnt) && (path[mlen] == '/' || !path[mlen]))
                snprintf(full, sizeof(full), "%s", path);
        else
                snprintf(full, sizeof(full), "%s%s", mnt, path);
        if (!realpath(full, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode) ||
            !startswith(real, mnt) || (real[mlen] != '/' && real[mlen]))
                return error_set(err, E_INVALID_SPEC, -ENOENT, "no cgroup %s", full);
        *id = st.st_ino; /* a cgroup v2 directory's inode number is the cgroup id */
        return 0;
}

/*
 * The operand must be a value the field can hold: (u8)arg0 == 300 or
 * (unsigned)retval < 0 would be decided before any hit. Uncast argN is a raw
 * register (a negative operand compares it signed); uncast retval is signed.
 */
static int check_operand(const struct probe *p, const struct fieldref *ref,
                         const struct predicate *in, struct error *err)
{
        unsigned size = ref->cast & UT_CAST_SIZE;
        bool is_signed = ref_signed(ref);
        long long v = in->ival;
        char name[64];

        if (!ref->cast && !is_signed)
                return 0;
        if (!size)
                size = 8;
        spec_format_field(ref, name, sizeof(name));
        if (!is_signed) {
                if (in->negative)
                        return error_set(err, E_INVALID_SPEC, -ERANGE,
                                         "--filter: %s is unsigned; it is never %lld", name, v);
                if (size < 8 && (unsigned long long)v >> (8 * size))
                        return error_set(err, E_INVALID_SPEC, -ERANGE,
                                         "--filter: %llu is out of range for %s (0..%llu)",
                                         (unsigned long long)v, name,
                                         (1ULL << (8 * size)) - 1);
                return 0;
        }
        if (!in->negative && v < 0) {
                struct fieldref plain = *ref;
                char pname[64];

                plain.cast = 0;
                spec_format_field(&plain, pname, sizeof(pname));
                return error_set(err, E_INVALID_SPEC, -ERANGE,
                                 "--filter: %llu is out of range for %s (signed 64 bits; "
                                 "compare (u64)%s)", (unsigned long long)v, name, pname);
        }
        if (size < 8 && (v < -(1LL << (8 * size - 1)) || v >= 1LL << (8 * size - 1)))
                return error_set(err, E_INVALID_SPEC, -ERANGE,
                                 "--filter: %lld is out of range for %s (%lld..%lld)", v, name,
                                 -(1LL << (8 * size - 1)), (1LL << (8 * size - 1)) - 1);
        return 0;
}

static int compile_pred(struct probe *p, const struct predicate *in, struct ut_pred *out,
                        struct error *err)
{
        struct fieldref ref = in->ref;
        static const uint8_t uops[] = { UT_OP_EQ, UT_OP_NE, UT_OP_LT, UT_OP_LE, UT_OP_GT, UT_OP_GE };
        static const uint8_t sops[] = { UT_OP_EQ, UT_OP_NE, UT_OP_SLT, UT_OP_SLE, UT_OP_SGT, UT_OP_SGE };
        bool want_str;
        int r;

        memset(out, 0, sizeof(*out));
        r = deref_name(p, &ref, err);
        if (r < 0)
                return r;
        r = check_ref(p, &ref, "--filter", err);
        if (r < 0)
                return r;
        note_retval_cast(p, &ref);
        want_str = ref.is_str || ref.field == FIELD_COMM ||
                   (ref.field == FIELD_CGROUP && in->is_str);
        if (want_str != in->is_str)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "--filter: %s compares with %s", ref.is_str || ref.field == FIELD_COMM
                                         ? "a string field" : "an integer field",
                                 in->is_str ? "a string" : "a number");
        if (in->is_str) {
                size_t len = strlen(in->sval);

                if (ref.field == FIELD_CGROUP) {
                        uint64_t id;

                        if (in->prefix || (in->op != OP_EQ && in->op != OP_NE))
                                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                                 "--filter: cgroup compares with == or != a path");
                        r = cgroup_ref(in->sval, &id, err);
                        if (r < 0)
                                return r;
                        out->src = UT_SRC_CGROUP;
                        out->op = in->op == OP_EQ ? UT_OP_EQ : UT_OP_NE;
                        out->idx = 1; /* the cgroup or below */
                        out->val = id;
                        return 0;
                }
                if (len >= UT_PRED_STR_MAX)
                        return error_set(err, E_INVALID_SPEC, -E2BIG,
                                         "--filter: string longer than %d bytes", UT_PRED_STR_MAX - 1);
                if (in->op == OP_EQ)
                        out->op = in->prefix ? UT_OP_STR_PREFIX : UT_OP_STR_EQ;
                else
                        out->op = in->prefix ? UT_OP_STR_NPREFIX : UT_OP_STR_NE;
                out->len = (uint8_t)len;
                memcpy(out->str, in->sval, len);
                if (ref.field == FIELD_COMM) {
                        if (len >= UT_COMM_LEN && !in->prefix)
                                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                                 "--filter: comm is at most %d bytes; \"%s\" "
                                                 "never matches", UT_COMM_LEN - 1, in->sval);
                        out->src = UT_SRC_COMM;
                        return 0;
                }
                /* one byte more than the operand: enough to see a longer string is not equal */
                r = string_slot(p, &ref, "", true, len + 1, err);
                if (r < 0)
                        return r;
                out->src = UT_SRC_STR;
                out->idx = (uint8_t)r;
                return 0;
        }
        out->val = (uint64_t)in->ival;
        out->cast = ref.cast;
        switch (ref.field) {
        case FIELD_PID: out->src = UT_SRC_PID; break;
        case FIELD_TID: out->src = UT_SRC_TID; break;
        case FIELD_UID: out->src = UT_SRC_UID; break;
        case FIELD_CGROUP: out->src = UT_SRC_CGROUP; out->idx = 0; break;
        case FIELD_RETVAL: out->src = UT_SRC_RETVAL; break;
        case FIELD_LATENCY: out->src = UT_SRC_LATENCY; break;
        case FIELD_ARG: out->src = UT_SRC_ARG; out->idx = ref.idx; break;
        default:
                return error_set(err, E_INVALID_SPEC, -EINVAL, "--filter: cannot compare that field");
        }
        if (ref.field == FIELD_CGROUP && in->op != OP_EQ && in->op != OP_NE)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "--filter: cgroup compares with == or != only");
        if (ref.field == FIELD_ARG || ref.field == FIELD_RETVAL) {
                r = check_operand(p, &ref, in, err);
                if (r < 0)
                        return r;
        }
        if ((in->negative && !ref.cast) || ((ref.field == FIELD_ARG || ref.field == FIELD_RETVAL) &&
                                            ref_signed(&ref)))
                out->op = sops[in->op];
        else
                out->op = uops[in->op];
        return 0;
}

/* --comm, --exe and --cgroup: predicates after those of --filter. */
static int compile_scope(struct probe *p, struct error *err)
{
        const struct probe_spec *s = &p->spec;
        struct ut_probe *c = &p->cfg;
        struct ut_pred *out;
        int r;

        if (c->npreds + !!s->comm + !!s->exe + !!s->cgroup > UT_MAX_PREDS)
                return error_set(err, E_LIMIT, -E2BIG,
                                 "--filter, --comm, --exe and --cgroup: more than %d conditions",
                                 UT_MAX_PREDS);
        if (s->comm) {
                out = &c->preds[c->npreds++];
                memset(out, 0, sizeof(*out));
                out->src = UT_SRC_COMM;
                out->op = UT_OP_STR_EQ;
                out->len = (uint8_t)strlen(s->comm);
                memcpy(out->str, s->comm, out->len);
        }
        if (s->cgroup) {
                uint64_t id;

                r = cgroup_ref(s->cgroup, &id, err);
                if (r < 0)
                        return r;
                out = &c->preds[c->npreds++];
                memset(out, 0, sizeof(*out));
                out->src = UT_SRC_CGROUP;
                out->op = UT_OP_EQ;
                out->idx = 1; /* the cgroup or below */
                out->val = id;
        }
        if (s->exe) {
                struct stat st;
                uint64_t dev;

                if (stat(s->exe, &st) < 0)
                        return error_set(err, E_NO_FILE, -errno, "--exe %s: %s", s->exe,
                                         strerror(errno));
                if (!S_ISREG(st.st_mode))
                        return error_set(err, E_NO_FILE, -EINVAL, "--exe %s: not a file", s->exe);
                out = &c->preds[c->npreds++];
                memset(out, 0, sizeof(*out));
                out->src = UT_SRC_EXE;
                out->op = UT_OP_EQ;
                out->val = st.st_ino;
                dev = kernel_dev(st.st_dev);
                memcpy(out->str, &dev, sizeof(dev));
        }
        return 0;
}

static int compile_aggregation(struct probe *p, struct error *err)
{
        struct probe_spec *s = &p->spec;
        struct ut_probe *c = &p->cfg;
        struct fieldref ref;
        int r;

        if (s->agg == AGG_NONE) {
                if (s->agg_key.field != FIELD_NONE)
                        return error_set(err, E_INVALID_SPEC, -EINVAL, "--by needs --aggregate");
                c->mode = UT_MODE_EVENTS;
                return 0;
        }
        c->mode = s->agg == AGG_COUNT ? UT_MODE_COUNT : UT_MODE_HIST;
        c->max_keys = s->max_keys ? s->max_keys : 1024;
        if (s->agg == AGG_HIST) {
                ref = s->agg_value;
                r = deref_name(p, &ref, err);
                if (r < 0)
                        return r;
                r = check_ref(p, &ref, "hist()", err);
                if (r < 0)
                        return r;
                note_retval_cast(p, &ref);
                switch (ref.field) {
                case FIELD_LATENCY:
                        c->agg_src = UT_SRC_LATENCY;
                        break;
                case FIELD_ARG:
                case FIELD_RETVAL:
                        if (ref.is_str)
                                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                                 "hist(): needs an integer value");
                        r = value_slot(p, &ref, "", true, err);
                        if (r < 0)
                                return r;
                        c->agg_src = UT_SRC_ARG;
                        c->agg_idx = r;
                        break;
                default:
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "hist(): takes latency_ns, argN or retval");
                }
        }
        ref = s->agg_key;
        r = deref_name(p, &ref, err);
        if (r < 0)
                return r;
        r = check_ref(p, &ref, "--by", err);
        if (r < 0)
                return r;
        note_retval_cast(p, &ref);
        switch (ref.field) {
        case FIELD_NONE: c->key_src = UT_SRC_NONE; break;
        case FIELD_COMM: c->key_src = UT_SRC_COMM; break;
        case FIELD_PID: c->key_src = UT_SRC_PID; break;
        case FIELD_TID: c->key_src = UT_SRC_TID; break;
        case FIELD_UID: c->key_src = UT_SRC_UID; break;
        case FIELD_ARG:
        case FIELD_RETVAL:
                if (ref.is_str) {
                        /* a key is the first UT_KEY_MAX bytes: no need to read more */
                        if (!ref.len || ref.len > UT_KEY_MAX)
                                ref.len = UT_KEY_MAX;
                        r = string_slot(p, &ref, "", true, ref.len + 1, err);
                        c->key_src = UT_SRC_STR;
                } else {
                        r = value_slot(p, &ref, "", true, err);
                        c->key_src = UT_SRC_ARG;
                }
                if (r < 0)
                        return r;
                c->key_idx = r;
                break;
        default:
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "--by: takes comm, pid, tid, uid, argN, retval or str(argN)");
        }
        return 0;
}

int probe_compile(struct probe *p, struct error *err)
{
        struct probe_spec *s = &p->spec;
        struct ut_probe *c = &p->cfg;
        int r;

        memset(c, 0, sizeof(*c));
        p->nfields = 0;
        p->retval_cast = 0;
        if (s->latency && s->type != PROBE_UPROBE)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "--latency pairs a uprobe with its return; %s is a %s",
                                 s->text, probe_type_name(s->type));
        if (s->default_caps && s->type == PROBE_USDT) {
                s->ncaps = 0;
                for (int i = 0; i < usdt_nargs(p) && i < UT_MAX_VALS; i++) {
                        struct capture *cap = &s->caps[s->ncaps++];

                        memset(cap, 0, sizeof(*cap));
                        snprintf(cap->name, sizeof(cap->name), "arg%d", i);
                        cap->ref.field = FIELD_ARG;
                        cap->ref.idx = i;
                }
        }
        for (int i = 0; i < s->ncaps; i++) {
                const struct capture *cap = &s->caps[i];
                char what[64];

                for (int k = 0; k < i; k++)
                        if (streq(s->caps[k].name, cap->name))
                                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                                 "--arg: the name %s is used twice", cap->name);
                snprintf(what, sizeof(what), "--arg %s", cap->name);
                r = check_ref(p, &cap->ref, what, err);
                if (r < 0)
                        return r;
                if (cap->ref.is_str)
                        r = string_slot(p, &cap->ref, cap->name, false, 0, err);
                else
                        r = value_slot(p, &cap->ref, cap->name, false, err);
                if (r < 0)
                        return r;
                note_retval_cast(p, &cap->ref);
        }
        for (int i = 0; i < s->npreds; i++) {
                r = compile_pred(p, &s->preds[i], &c->preds[i], err);
                if (r < 0)
                        return r;
        }
        c->npreds = s->npreds;
        r = compile_scope(p, err);
        if (r < 0)
                return r;
        r = compile_aggregation(p, err);
        if (r < 0)
                return r;
        c->flags = UT_P_ENABLED | (s->latency ? UT_P_LATENCY : 0) |
                   (p->restricted ? UT_P_OWNED : 0);
        c->owner_uid = p->owner;
        if (c->mode != UT_MODE_EVENTS && !s->latency && c->key_src != UT_SRC_COMM &&
            c->key_src != UT_SRC_UID) {
                bool header = false;

                for (int i = 0; i < c->npreds; i++)
                        header |= c->preds[i].src == UT_SRC_COMM || c->preds[i].src == UT_SRC_UID;
                if (!header)
                        c->flags |= UT_P_NO_HEADER; /* the hit skips three helper calls */
        }
        p->sleepable = c->nstrs > 0;
        return 0;
}

size_t probe_nsites(const struct probe *p)
{
        return p->spec.type == PROBE_USDT ? p->nlocs : 1;
}

void probe_site(const struct probe *p, size_t k, struct ut_site *site)
{
        memset(site, 0, sizeof(*site));
        site->probe = p->slot;
        if (p->spec.type == PROBE_USDT) {
                site->nargs = p->locs[k].nargs;
                memcpy(site->args, p->locs[k].args, sizeof(site->args));
                return;
        }
        /* System V x86-64: six registers, then the stack above the return address */
        site->nargs = UT_MAX_ARGS;
        for (int i = 0; i < UT_MAX_ARGS; i++) {
                struct ut_arg_spec *a = &site->args[i];

                a->size = 8;
                if (i < (int)ARRAY_SIZE(abi_regs)) {
                        a->type = UT_ARG_REG;
                        a->reg_off = abi_regs[i];
                } else {
                        a->type = UT_ARG_REG_DEREF;
                        a->reg_off = UT_REG_SP;
                        a->val_off = 8 * (i - ARRAY_SIZE(abi_regs) + 1);
                }
        }
}

void probe_pin_path(char *buf, size_t size, const char *root, uint64_t id, unsigned n)
{
        if (n == UINT_MAX)
                snprintf(buf, size, "%s/links/%llu", root, (unsigned long long)id);
        else
                snprintf(buf, size, "%s/links/%llu/%u", root, (unsigned long long)id, n);
}

static int attach_kind(struct probe *p, struct attachment *a, const struct loader *l,
                       const char *root, bool retprobe, struct error *err)
{
        _cleanup_free_ struct attach_loc *locs = calloc(a->loc_count, sizeof(*locs));
        _cleanup_free_ int *fds = NULL;
        char fdpath[64];
        int n, r = 0;

        if (!locs)
                return -ENOMEM;
        for (size_t i = 0; i < a->loc_count; i++) {
                const struct probe_location *pl = &p->locs[a->loc_first + i];

                locs[i].offset = pl->offset;
                locs[i].ref_ctr = pl->ref_ctr;
                locs[i].cookie = pl->site | (uint64_t)(a->loc_first + i) << 32;
        }
        if (a->fd >= 0)
                snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", a->fd);
        n = attach_links(loader_prog_fd(l, retprobe, p->sleepable), loader_multi(l), retprobe,
                         a->fd >= 0 ? fdpath : a->path, p->spec.pid, locs, a->loc_count, &fds,
                         err);
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++) {
                char path[PATH_MAX];

                if (r == 0) {
                        probe_pin_path(path, sizeof(path), root, p->id, p->next_pin);
                        int k = bpf_obj_pin(fds[i], path);

                        if (k < 0) {
                                r = error_set(err, E_INTERNAL, k, "cannot pin %s: %s", path,
                                              strerror(-k));
                        } else {
                                if (a->pin_count == 0)
                                        a->pin_first = p->next_pin;
                                a->pin_count++;
                                p->next_pin++;
                        }
                }
                close(fds[i]);
        }
        return r;
}

int probe_attach(struct probe *p, struct attachment *a, const struct loader *l, const char *root,
                 struct error *err)
{
        char dir[PATH_MAX];
        int r;

        if (a->fd < 0) {
                /* attached again from the state file: only to the very file whose
                 * offsets were computed, not to whatever now has its name */
                struct stat st;

                a->fd = open(a->path, O_RDONLY | O_CLOEXEC);
                if (a->fd < 0)
                        return error_set(err, E_NO_FILE, -errno, "%s: %s", a->path,
                                         strerror(errno));
                if (fstat(a->fd, &st) < 0 || st.st_dev != a->dev || st.st_ino != a->ino)
                        return error_set(err, E_NO_FILE, -ESTALE,
                                         "%s is not the file the probe was attached to "
                                         "(replaced since)", a->path);
        }
        probe_pin_path(dir, sizeof(dir), root, p->id, UINT_MAX);
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return error_set(err, E_INTERNAL, -errno, "cannot create %s: %s", dir,
                                 strerror(errno));
        r = attach_kind(p, a, l, root, p->spec.type == PROBE_URETPROBE, err);
        if (r >= 0 && p->spec.latency)
                r = attach_kind(p, a, l, root, true, err);
        if (r < 0) {
                for (unsigned i = 0; i < a->pin_count; i++) {
                        char path[PATH_MAX];

                        probe_pin_path(path, sizeof(path), root, p->id, a->pin_first + i);
                        unlink(path);
                }
                a->pin_count = 0;
        }
        return r;
}

void probe_unpin(const struct probe *p, const char *root)
{
        char path[PATH_MAX];

        for (unsigned n = 0; n < p->next_pin; n++) {
                probe_pin_path(path, sizeof(path), root, p->id, n);
                unlink(path);
        }
        probe_pin_path(path, sizeof(path), root, p->id, UINT_MAX);
        rmdir(path);
}
