// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "attach.h"
#include "elffile.h"
#include "loader.h"
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
        for (size_t i = 0; i < p->natts; i++)
                free(p->atts[i].path);
        free(p->locs);
        free(p->atts);
        free(p->request);
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
        return loc < p->nlocs ? &p->locs[loc] : NULL;
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
        a->path = strdup(path);
        if (!a->path)
                return NULL;
        a->dev = dev;
        a->ino = ino;
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
static int resolve_usdt_file(struct probe *p, struct elf_file *ef, struct error *err)
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

                        snprintf(prefix, sizeof(prefix), "%s in %s: ", name, elf_file_path(ef));
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

static int resolve_file(struct probe *p, const char *path, bool quiet, struct error *err)
{
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
                r = resolve_usdt_file(p, ef, quiet ? NULL : err);
        else if (p->spec.symbol)
                r = resolve_symbols(p, ef, err);
        else
                r = resolve_address(p, ef, err);
        a = &p->atts[p->natts - 1];
        a->loc_count = p->nlocs - a->loc_first;
        if (r >= 0 && a->loc_count == 0) {
                free(a->path);
                p->natts--;
        }
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
                for (int i = 0; i < n; i++) {
                        struct error quiet = { 0 };

                        resolve_file(p, paths[i], true, &quiet);
                }
                strv_free(paths);
                strv_free(names);
                if (p->nlocs == 0)
                        return error_set(err, E_NO_USDT, -ENOENT,
                                         "no USDT probe %s%s%s in any object of process %d",
                                         s->provider ? s->provider : "", s->provider ? ":" : "",
                                         s->name, (int)s->pid);
                return 0;
        }
        r = target_resolve(s->target, s->pid, &path, err);
        if (r < 0)
                return r;
        r = resolve_file(p, path, false, err);
        if (r < 0)
                return r;
        if (s->type == PROBE_USDT && p->nlocs == 0)
                return error_set(err, E_NO_USDT, -ENOENT, "no USDT probe %s%s%s in %s",
                                 s->provider ? s->provider : "", s->provider ? ":" : "",
                                 s->name, path);
        return 0;
}

/* --- compile --------------------------------------------------------------- */

static bool arg_signed(const struct probe *p, unsigned idx)
{
        if (p->spec.type != PROBE_USDT || p->nlocs == 0)
                return false;
        return idx < (unsigned)p->locs[0].nargs && p->locs[0].args[idx].is_signed;
}

static int usdt_nargs(const struct probe *p)
{
        return p->spec.type == PROBE_USDT && p->nlocs ? p->locs[0].nargs : UT_MAX_ARGS;
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

/* Slot for an integer value of ref (ARG or RETVAL); reuses a capture. */
static int value_slot(struct probe *p, const struct fieldref *ref, const char *name, bool hidden,
                      struct error *err)
{
        struct ut_probe *c = &p->cfg;
        struct probe_field *f;
        uint8_t src = ref->field == FIELD_RETVAL ? UT_SRC_RETVAL : UT_SRC_ARG;

        if (hidden)
                for (int i = 0; i < c->nvals; i++)
                        if (c->vals[i].src == src && (src == UT_SRC_RETVAL || c->vals[i].idx == ref->idx))
                                return i;
        if (c->nvals >= UT_MAX_VALS)
                return error_set(err, E_LIMIT, -E2BIG, "more than %d integer values", UT_MAX_VALS);
        f = add_field(p, name, false, hidden);
        if (!f)
                return error_set(err, E_LIMIT, -E2BIG, "too many fields");
        f->index = c->nvals;
        f->is_signed = src == UT_SRC_RETVAL || arg_signed(p, ref->idx);
        c->vals[c->nvals] = (struct ut_capture){ .src = src, .idx = ref->idx };
        return c->nvals++;
}

static int string_slot(struct probe *p, const struct fieldref *ref, const char *name, bool hidden,
                       struct error *err)
{
        struct ut_probe *c = &p->cfg;
        struct probe_field *f;
        uint8_t src = ref->field == FIELD_RETVAL ? UT_SRC_RETVAL : UT_SRC_ARG;
        unsigned cap = (ref->len ? ref->len : SPEC_STR_DEFAULT) + 1;
        unsigned total = cap;

        if (hidden)
                for (int i = 0; i < c->nstrs; i++)
                        if (c->strs[i].src == src && (src == UT_SRC_RETVAL || c->strs[i].idx == ref->idx))
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
        for (int i = 0; i < p->spec.ncaps; i++)
                if (streq(p->spec.caps[i].name, ref->name)) {
                        bool is_str = ref->is_str || p->spec.caps[i].ref.is_str;

                        *ref = p->spec.caps[i].ref;
                        ref->is_str = is_str;
                        return 0;
                }
        return error_set(err, E_INVALID_SPEC, -EINVAL, "unknown field \"%s\"", ref->name);
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

static int cgroup_ref(const char *path, uint64_t *id, unsigned *level, struct error *err)
{
        char full[PATH_MAX];
        struct stat st;
        unsigned depth = 0;

        if (path[0] != '/')
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "cgroup \"%s\": give a path below /sys/fs/cgroup, or an id", path);
        snprintf(full, sizeof(full), "/sys/fs/cgroup%s", path);
        if (stat(full, &st) < 0 || !S_ISDIR(st.st_mode))
                return error_set(err, E_INVALID_SPEC, -ENOENT, "no cgroup %s", full);
        for (const char *c = path; *c; c++)
                if (*c == '/' && c[1] && c[1] != '/')
                        depth++;
        *id = st.st_ino;
        *level = depth;
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
                        unsigned level;

                        if (in->prefix || (in->op != OP_EQ && in->op != OP_NE))
                                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                                 "--filter: cgroup compares with == or != a path");
                        r = cgroup_ref(in->sval, &id, &level, err);
                        if (r < 0)
                                return r;
                        out->src = UT_SRC_CGROUP;
                        out->op = in->op == OP_EQ ? UT_OP_EQ : UT_OP_NE;
                        out->idx = level + 1;
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
                r = string_slot(p, &ref, "", true, err);
                if (r < 0)
                        return r;
                out->src = UT_SRC_STR;
                out->idx = (uint8_t)r;
                return 0;
        }
        out->val = (uint64_t)in->ival;
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
        if (in->ival < 0 || ref.field == FIELD_RETVAL ||
            (ref.field == FIELD_ARG && arg_signed(p, ref.idx)))
                out->op = sops[in->op];
        else
                out->op = uops[in->op];
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
        switch (ref.field) {
        case FIELD_NONE: c->key_src = UT_SRC_NONE; break;
        case FIELD_COMM: c->key_src = UT_SRC_COMM; break;
        case FIELD_PID: c->key_src = UT_SRC_PID; break;
        case FIELD_TID: c->key_src = UT_SRC_TID; break;
        case FIELD_UID: c->key_src = UT_SRC_UID; break;
        case FIELD_ARG:
        case FIELD_RETVAL:
                if (ref.is_str) {
                        r = string_slot(p, &ref, "", true, err);
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
                        r = string_slot(p, &cap->ref, cap->name, false, err);
                else
                        r = value_slot(p, &cap->ref, cap->name, false, err);
                if (r < 0)
                        return r;
        }
        for (int i = 0; i < s->npreds; i++) {
                r = compile_pred(p, &s->preds[i], &c->preds[i], err);
                if (r < 0)
                        return r;
        }
        c->npreds = s->npreds;
        r = compile_aggregation(p, err);
        if (r < 0)
                return r;
        c->flags = UT_P_ENABLED | (s->latency ? UT_P_LATENCY : 0);
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

static void pin_path(char *buf, size_t size, const char *root, uint64_t id, unsigned n)
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
        int n, r = 0;

        if (!locs)
                return -ENOMEM;
        for (size_t i = 0; i < a->loc_count; i++) {
                const struct probe_location *pl = &p->locs[a->loc_first + i];

                locs[i].offset = pl->offset;
                locs[i].ref_ctr = pl->ref_ctr;
                locs[i].cookie = pl->site | (uint64_t)(a->loc_first + i) << 32;
        }
        n = attach_links(loader_prog_fd(l, retprobe, p->sleepable), loader_multi(l), retprobe,
                         a->path, p->spec.pid, locs, a->loc_count, &fds, err);
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++) {
                char path[PATH_MAX];

                if (r == 0) {
                        pin_path(path, sizeof(path), root, p->id, p->next_pin);
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

        pin_path(dir, sizeof(dir), root, p->id, UINT_MAX);
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return error_set(err, E_INTERNAL, -errno, "cannot create %s: %s", dir,
                                 strerror(errno));
        r = attach_kind(p, a, l, root, p->spec.type == PROBE_URETPROBE, err);
        if (r >= 0 && p->spec.latency)
                r = attach_kind(p, a, l, root, true, err);
        if (r < 0) {
                for (unsigned i = 0; i < a->pin_count; i++) {
                        char path[PATH_MAX];

                        pin_path(path, sizeof(path), root, p->id, a->pin_first + i);
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
                pin_path(path, sizeof(path), root, p->id, n);
                unlink(path);
        }
        pin_path(path, sizeof(path), root, p->id, UINT_MAX);
        rmdir(path);
}
