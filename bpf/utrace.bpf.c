// SPDX-License-Identifier: GPL-2.0-only
/*
 * The generic probe handlers. Compiled once at build time; every probe is a
 * configuration slot, selected by the attachment's BPF cookie.
 *
 *   ut_entry / ut_entry_s     uprobes and USDT locations (the _s variants are
 *   ut_return / ut_return_s   sleepable, for probes that read strings)
 *
 * A hit runs: site and slot lookup -> (sleepable: fault in string pages) ->
 * claim the per-CPU scratch -> header, integer values, strings -> filters ->
 * store for the paired return (latency), or stream the record, or fold it
 * into an aggregation. Nothing is reserved in the ring buffer before the
 * filters have passed, and every hit that is dropped is counted.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "utrace.h"

char LICENSE[] SEC("license") = "GPL";

#define UT_REC_BUF 1024 /* scratch record: >= UT_REC_MAX, power of two */
#define PAGE_SZ 4096

_Static_assert(UT_REC_MAX <= UT_REC_BUF, "record fits the scratch buffer");
_Static_assert(__builtin_offsetof(struct pt_regs, di) == UT_REG_DI, "pt_regs layout");
_Static_assert(__builtin_offsetof(struct pt_regs, ax) == UT_REG_AX, "pt_regs layout");
_Static_assert(__builtin_offsetof(struct pt_regs, r15) == UT_REG_R15, "pt_regs layout");
_Static_assert(__builtin_offsetof(struct pt_regs, ip) == UT_REG_IP, "pt_regs layout");
_Static_assert(__builtin_offsetof(struct pt_regs, sp) == UT_REG_SP, "pt_regs layout");

/* A record as the ring buffer gets it (the lat map keeps entry records). Its
 * header is spelled out so that the BTF tells a later build whether records
 * left in a pinned ring buffer have its format. */
struct ut_rec {
        struct ut_event e;
        char rest[UT_REC_MAX - sizeof(struct ut_event)];
};

struct ut_scratch {
        __u32 busy;
        __u32 pad;
        char rec[UT_REC_BUF];
        struct ut_agg_val zero; /* never written: template for new keys */
};

struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, UT_MAX_PROBES);
        __type(key, __u32);
        __type(value, struct ut_probe);
} probes SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, UT_MAX_SITES);
        __type(key, __u32);
        __type(value, struct ut_site);
} sites SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, UT_MAX_PROBES);
        __type(key, __u32);
        __type(value, struct ut_stats);
} stats SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_RINGBUF);
        __uint(max_entries, 8 << 20); /* the daemon sets the configured size */
} events SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, UT_LAT_ENTRIES);
        __type(key, struct ut_lat_key);
        __type(value, struct ut_rec);
} lat SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, UT_AGG_KEYS);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct ut_agg_key);
        __type(value, struct ut_agg_val);
} aggs SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, UT_MAX_PROBES);
        __type(key, __u32);
        __type(value, __u32);
} agg_nkeys SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ut_global);
} globals SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ut_scratch);
} scratch SEC(".maps");

extern int bpf_copy_from_user_str(void *dst, __u32 dst__sz, const void *unsafe_ptr__ign,
                                  __u64 flags) __weak __ksym;

#define COUNT(st, field) __sync_fetch_and_add(&(st)->field, 1)

/*
 * The tests build a second daemon whose programs differ from these by one
 * instruction (other program tags): a changed build, to check how pinned
 * probes migrate to it (tests/meson.build).
 */
#ifdef UT_TEST_SALT
#define TEST_SALT() asm volatile("r0 = %[v]" ::[v] "i"(UT_TEST_SALT) : "r0")
#else
#define TEST_SALT()
#endif

/*
 * A register by its offset in pt_regs: direct context loads, the argument
 * registers first. The verifier allows only constant offsets into the
 * context, so each load is written out; as plain C, the compiler would merge
 * them into one load from ctx + off.
 */
#define CTX_REG(ctx, off)                                                      \
        ({                                                                     \
                __u64 __v;                                                     \
                asm volatile("%[v] = *(u64 *)(%[c] + %[o])"                    \
                             : [v] "=r"(__v) : [c] "r"(ctx), [o] "i"(off));     \
                __v;                                                           \
        })

static __always_inline __u64 reg_value(struct pt_regs *ctx, __u16 off)
{
        switch (off) {
        case UT_REG_DI: return CTX_REG(ctx, UT_REG_DI);
        case UT_REG_SI: return CTX_REG(ctx, UT_REG_SI);
        case UT_REG_DX: return CTX_REG(ctx, UT_REG_DX);
        case UT_REG_CX: return CTX_REG(ctx, UT_REG_CX);
        case UT_REG_R8: return CTX_REG(ctx, UT_REG_R8);
        case UT_REG_R9: return CTX_REG(ctx, UT_REG_R9);
        case UT_REG_SP: return CTX_REG(ctx, UT_REG_SP);
        case UT_REG_AX: return CTX_REG(ctx, UT_REG_AX);
        case UT_REG_BX: return CTX_REG(ctx, UT_REG_BX);
        case UT_REG_BP: return CTX_REG(ctx, UT_REG_BP);
        case UT_REG_R10: return CTX_REG(ctx, UT_REG_R10);
        case UT_REG_R11: return CTX_REG(ctx, UT_REG_R11);
        case UT_REG_R12: return CTX_REG(ctx, UT_REG_R12);
        case UT_REG_R13: return CTX_REG(ctx, UT_REG_R13);
        case UT_REG_R14: return CTX_REG(ctx, UT_REG_R14);
        case UT_REG_R15: return CTX_REG(ctx, UT_REG_R15);
        case UT_REG_IP: return CTX_REG(ctx, UT_REG_IP);
        }
        return 0;
}

/*
 * The non-static __noinline functions below are BPF global functions: the
 * verifier checks each once, on its own, instead of once per path through
 * the handler. Their pointer arguments may be NULL as far as it knows.
 */
__noinline __u64 ut_arg(struct pt_regs *ctx, const struct ut_site *site, __u32 i)
{
        const struct ut_arg_spec *a;
        __u64 v = 0, base = 0;

        if (!site || i >= UT_MAX_ARGS)
                return 0;
        a = &site->args[i];
        if (a->type == UT_ARG_CONST)
                return a->val_off;
        if (a->type != UT_ARG_REG && a->type != UT_ARG_REG_DEREF)
                return 0;
        base = reg_value(ctx, a->reg_off);
        if (a->type == UT_ARG_REG) {
                v = base;
        } else {
                void *p = (void *)(base + a->val_off);

                switch (a->size) {
                case 1: bpf_probe_read_user(&v, 1, p); break;
                case 2: bpf_probe_read_user(&v, 2, p); break;
                case 4: bpf_probe_read_user(&v, 4, p); break;
                default: bpf_probe_read_user(&v, 8, p); break;
                }
        }
        return ut_cast(v, (a->size & UT_CAST_SIZE) | (a->is_signed ? UT_CAST_SIGNED : 0));
}

static __always_inline __u64 str_ptr(struct pt_regs *ctx, const struct ut_site *site,
                                     const struct ut_strcap *sc)
{
        if (sc->src == UT_SRC_RETVAL)
                return PT_REGS_RC(ctx);
        return ut_arg(ctx, site, sc->idx);
}

/*
 * Sleepable programs only, before the scratch buffer is claimed (this may
 * sleep): make sure the pages of each string are present, so that the
 * non-faulting reads below succeed. A page is faulted in only when the cheap
 * probe of its first byte fails.
 */
static __always_inline void fault_in_strings(struct pt_regs *ctx, const struct ut_site *site,
                                             const struct ut_probe *p, bool is_ret,
                                             struct ut_stats *st)
{
        char tmp[2];

        for (int j = 0; j < UT_MAX_STRS; j++) {
                const struct ut_strcap *sc;
                __u64 ptr, next;
                char c;

                if (j >= p->nstrs)
                        break;
                sc = &p->strs[j];
                if ((sc->src == UT_SRC_RETVAL) != is_ret)
                        continue;
                ptr = str_ptr(ctx, site, sc);
                if (!ptr)
                        continue;
                if (bpf_probe_read_user(&c, 1, (void *)ptr)) {
                        if (bpf_copy_from_user_str(tmp, sizeof(tmp), (void *)ptr, 0) >= 0)
                                COUNT(st, str_faulted);
                }
                next = (ptr | (PAGE_SZ - 1)) + 1;
                if (next - ptr < sc->cap && bpf_probe_read_user(&c, 1, (void *)next))
                        bpf_copy_from_user_str(tmp, sizeof(tmp), (void *)next, 0);
        }
}

/* Append string j at offset off of the record; the new offset, or -1 when full. */
__noinline int ut_put_string(struct ut_scratch *s, __u32 off, __u32 j, __u64 ptr, __u32 cap)
{
        struct ut_str *h;
        char *rec;
        long n;

        if (!s || off > UT_REC_BUF - 4 - UT_STR_MAX)
                return -1;
        rec = s->rec;
        if (cap > UT_STR_MAX)
                cap = UT_STR_MAX;
        if (cap < 2)
                cap = 2;
        h = (void *)(rec + off);
        h->slot = j;
        h->flags = 0;
        h->len = 0;
        n = ptr ? bpf_probe_read_user_str(rec + off + 4, cap, (void *)ptr) : -1;
        if (n <= 0) {
                h->flags = UT_STR_FAULT;
        } else {
                h->len = n - 1;
                if (n == cap) {
                        char c = 0;

                        /* the buffer filled up: did the string go on? */
                        if (!bpf_probe_read_user(&c, 1, (void *)(ptr + cap - 1)) && c)
                                h->flags = UT_STR_TRUNCATED;
                }
        }
        return off + 4 + ((h->len + 3) & ~3u);
}

/* Offset of string slot j inside a record whose strings start at base. */
static __always_inline __u32 string_at(const char *rec, __u32 base, __u32 j)
{
        __u32 off = base;

        for (int i = 0; i < UT_MAX_STRS; i++) {
                const struct ut_str *h;

                if (i >= j || off > UT_REC_BUF - 4 - UT_STR_MAX)
                        break;
                h = (const void *)(rec + off);
                off += 4 + ((h->len + 3) & ~3u);
        }
        return off;
}

static __always_inline bool cmp_int(__u8 op, __u64 a, __u64 b)
{
        switch (op) {
        case UT_OP_EQ: return a == b;
        case UT_OP_NE: return a != b;
        case UT_OP_LT: return a < b;
        case UT_OP_LE: return a <= b;
        case UT_OP_GT: return a > b;
        case UT_OP_GE: return a >= b;
        case UT_OP_SLT: return (__s64)a < (__s64)b;
        case UT_OP_SLE: return (__s64)a <= (__s64)b;
        case UT_OP_SGT: return (__s64)a > (__s64)b;
        case UT_OP_SGE: return (__s64)a >= (__s64)b;
        }
        return false;
}

/*
 * Compare s (len bytes, not NUL-terminated) with the predicate's operand.
 * A truncated string goes on past len: it equals no operand of len bytes.
 */
static __always_inline bool cmp_str(const struct ut_pred *pr, const char *s, __u32 len,
                                    bool truncated)
{
        bool prefix = pr->op == UT_OP_STR_PREFIX || pr->op == UT_OP_STR_NPREFIX;
        bool negate = pr->op == UT_OP_STR_NE || pr->op == UT_OP_STR_NPREFIX;
        bool match = prefix ? len >= pr->len : len == pr->len && !truncated;

        for (int i = 0; i < UT_PRED_STR_MAX && match; i++) {
                if (i >= pr->len || i >= UT_STR_MAX)
                        break;
                if (s[i] != pr->str[i])
                        match = false;
        }
        return match != negate;
}

static __always_inline __u32 comm_len(const char *comm)
{
        __u32 n = 0;

        for (int i = 0; i < UT_COMM_LEN; i++) {
                if (!comm[i])
                        break;
                n++;
        }
        return n;
}

__noinline int ut_pred(struct pt_regs *ctx, const struct ut_site *site, const struct ut_pred *pr,
                       struct ut_scratch *s, __u32 sbase)
{
        const struct ut_event *e;
        const char *rec;
        __u64 v;

        if (!pr || !s)
                return 0;
        rec = s->rec;
        e = (const void *)rec;
        switch (pr->src) {
        case UT_SRC_PID: v = e->pid; break;
        case UT_SRC_TID: v = e->tid; break;
        case UT_SRC_UID: v = e->uid; break;
        case UT_SRC_RETVAL: v = ut_cast(e->retval, pr->cast); break;
        case UT_SRC_LATENCY: v = e->latency_ns; break;
        case UT_SRC_ARG:
                v = ut_cast(ut_arg(ctx, site, pr->idx), pr->cast);
                /* uncast, an argument a USDT location declares signed compares signed there */
                if (!pr->cast && site && pr->idx < UT_MAX_ARGS && site->args[pr->idx].is_signed &&
                    pr->op >= UT_OP_LT && pr->op <= UT_OP_GE)
                        return cmp_int(pr->op + (UT_OP_SLT - UT_OP_LT), v, pr->val);
                break;
        case UT_SRC_CGROUP:
                v = bpf_get_current_cgroup_id();
                if (!pr->idx)
                        break;
                /* in the cgroup or below it: is it among the ancestors? Levels are
                 * looked through, not computed: the daemon may sit in a cgroup
                 * namespace whose root is not the hierarchy's */
                v = 0;
                for (int l = 0; l < UT_CGROUP_LEVELS; l++) {
                        __u64 id = bpf_get_current_ancestor_cgroup_id(l);

                        if (!id)
                                break;
                        if (id == pr->val) {
                                v = id;
                                break;
                        }
                }
                break;
        case UT_SRC_COMM:
                return cmp_str(pr, e->comm, comm_len(e->comm), false);
        case UT_SRC_EXE: {
                struct task_struct *t = bpf_get_current_task_btf();
                struct inode *ino = BPF_CORE_READ(t, mm, exe_file, f_inode);
                __u64 dev;

                __builtin_memcpy(&dev, pr->str, sizeof(dev));
                v = BPF_CORE_READ(ino, i_ino) == pr->val &&
                    (__u64)BPF_CORE_READ(ino, i_sb, s_dev) == dev;
                return pr->op == UT_OP_EQ ? v : !v;
        }
        case UT_SRC_STR: {
                __u32 off = string_at(rec, sbase, pr->idx);
                const struct ut_str *h;

                if (off > UT_REC_BUF - 4 - UT_STR_MAX)
                        return 0;
                h = (const void *)(rec + off);
                if (h->flags & UT_STR_FAULT)
                        return 0; /* unknown is never a match */
                return cmp_str(pr, rec + off + 4, h->len, h->flags & UT_STR_TRUNCATED);
        }
        default:
                return 0;
        }
        return cmp_int(pr->op, v, pr->val);
}

static __always_inline __u32 log2_slot(__u64 v)
{
        __u32 r = 0;

        if (!v)
                return 0;
        if (v >> 32) { v >>= 32; r += 32; }
        if (v >> 16) { v >>= 16; r += 16; }
        if (v >> 8) { v >>= 8; r += 8; }
        if (v >> 4) { v >>= 4; r += 4; }
        if (v >> 2) { v >>= 2; r += 2; }
        if (v >> 1) r += 1;
        return r + 1;
}

__noinline int ut_aggregate(const struct ut_probe *p, __u32 slot, struct ut_scratch *s, __u32 sbase,
                            struct ut_stats *st)
{
        const struct ut_event *e;
        const __u64 *vals;
        struct ut_agg_key key = { .probe = slot };
        struct ut_agg_val *v;
        __u64 x = 0;

        if (!p || !s || !st)
                return 0;
        if (p->mode == UT_MODE_COUNT && p->key_src == UT_SRC_NONE) {
                COUNT(st, aggregated); /* kept in the per-CPU stats alone */
                return 0;
        }
        e = (const void *)s->rec;
        vals = (const void *)(s->rec + sizeof(*e));

        switch (p->key_src) {
        case UT_SRC_COMM:
                __builtin_memcpy(key.key, e->comm, UT_COMM_LEN);
                break;
        case UT_SRC_PID: *(__u32 *)key.key = e->pid; break;
        case UT_SRC_TID: *(__u32 *)key.key = e->tid; break;
        case UT_SRC_UID: *(__u32 *)key.key = e->uid; break;
        case UT_SRC_ARG:
                if (p->key_idx < UT_MAX_VALS)
                        *(__u64 *)key.key = vals[p->key_idx];
                break;
        case UT_SRC_STR: {
                __u32 off = string_at(s->rec, sbase, p->key_idx);
                const struct ut_str *h;

                if (off > UT_REC_BUF - 4 - UT_STR_MAX)
                        break;
                h = (const void *)(s->rec + off);
                __builtin_memcpy(key.key, s->rec + off + 4, UT_KEY_MAX);
                for (int i = 0; i < UT_KEY_MAX; i++)
                        if (i >= h->len)
                                key.key[i] = 0;
                break;
        }
        }

        v = bpf_map_lookup_elem(&aggs, &key);
        if (!v) {
                __u32 *nkeys = bpf_map_lookup_elem(&agg_nkeys, &slot);

                if (!nkeys)
                        return 0;
                if (*nkeys >= p->max_keys) {
                        __builtin_memset(key.key, 0, sizeof(key.key));
                        key.overflow = 1;
                        COUNT(st, key_overflow);
                } else if (!bpf_map_update_elem(&aggs, &key, &s->zero, BPF_NOEXIST)) {
                        __sync_fetch_and_add(nkeys, 1);
                }
                v = bpf_map_lookup_elem(&aggs, &key);
                if (!v) {
                        bpf_map_update_elem(&aggs, &key, &s->zero, BPF_NOEXIST);
                        v = bpf_map_lookup_elem(&aggs, &key);
                        if (!v) {
                                COUNT(st, lost); /* the map is full */
                                return 0;
                        }
                }
        }
        __sync_fetch_and_add(&v->count, 1);
        if (p->mode == UT_MODE_HIST) {
                if (p->agg_src == UT_SRC_LATENCY)
                        x = e->latency_ns;
                else if (p->agg_idx < UT_MAX_VALS)
                        x = vals[p->agg_idx];
                __sync_fetch_and_add(&v->sum, x);
                __u32 b = log2_slot(x);
                if (b < UT_HIST_SLOTS)
                        __sync_fetch_and_add(&v->slots[b], 1);
        }
        COUNT(st, aggregated);
        return 0;
}

#define MMF_DUMPABLE_MASK 3
#define SUID_DUMP_USER 1

/*
 * A probe of a user without privileges fires only in processes that user
 * controls right now: effective uid the owner's and dumpable. The process the
 * probe was scoped to may since have executed a set-uid program, which makes
 * it neither.
 */
static __always_inline bool owner_allows(const struct ut_probe *p)
{
        struct task_struct *t;
        struct mm_struct *mm;
        __u64 mmflags = 0;

        if (!(p->flags & UT_P_OWNED))
                return true;
        t = (struct task_struct *)bpf_get_current_task();
        if (BPF_CORE_READ(t, cred, euid.val) != p->owner_uid)
                return false;
        mm = BPF_CORE_READ(t, mm);
        if (!mm || bpf_core_read(&mmflags, sizeof(mmflags), &mm->flags))
                return false;
        return (mmflags & MMF_DUMPABLE_MASK) == SUID_DUMP_USER;
}

static __always_inline __u64 wake_flags(__u64 now)
{
        __u32 zero = 0;
        struct ut_global *g = bpf_map_lookup_elem(&globals, &zero);

        if (!g)
                return 0;
        if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= g->wake_bytes ||
            now - g->last_wake >= g->wake_ns) {
                g->last_wake = now;
                return BPF_RB_FORCE_WAKEUP;
        }
        return BPF_RB_NO_WAKEUP;
}

/* A hit dropped for want of room: counted for its probe, and globally so
 * that the daemon knows to tell the probe's subscribers. */
static __always_inline void count_drop(struct ut_stats *st, bool busy)
{
        __u32 zero = 0;
        struct ut_global *g = bpf_map_lookup_elem(&globals, &zero);

        if (busy)
                COUNT(st, busy);
        else
                COUNT(st, lost);
        if (g)
                __sync_fetch_and_add(&g->drops, 1);
}

static __always_inline void fill_values(struct pt_regs *ctx, const struct ut_site *site,
                                        const struct ut_probe *p, __u64 *vals, bool is_ret,
                                        __s64 retval)
{
        for (int i = 0; i < UT_MAX_VALS; i++) {
                const struct ut_capture *c;

                if (i >= p->nvals)
                        break;
                c = &p->vals[i];
                if (c->src == UT_SRC_RETVAL) {
                        if (is_ret)
                                vals[i] = ut_cast(retval, c->cast);
                        else
                                vals[i] = 0;
                } else if (!is_ret) {
                        vals[i] = ut_cast(ut_arg(ctx, site, c->idx), c->cast);
                }
        }
}

static __always_inline int handle(struct pt_regs *ctx, bool is_ret, bool sleepable)
{
        __u64 cookie = bpf_get_attach_cookie(ctx);
        __u32 site_id = (__u32)cookie, zero = 0, slot, off, sbase, nvals;
        const struct ut_site *site;
        const struct ut_probe *p;
        struct ut_scratch *s;
        struct ut_stats *st;
        struct ut_event *e;
        struct ut_lat_key lk;
        __u64 pid_tgid, now;
        bool latency;
        int r;

        site = bpf_map_lookup_elem(&sites, &site_id);
        if (!site)
                return 0;
        slot = site->probe;
        p = bpf_map_lookup_elem(&probes, &slot);
        st = bpf_map_lookup_elem(&stats, &slot);
        if (!p || !st || !(p->flags & UT_P_ENABLED))
                return 0;
        latency = p->flags & UT_P_LATENCY;
        if (!(is_ret && latency))
                COUNT(st, hits);
        if (!owner_allows(p)) {
                /* not the owner's to read: before any byte of the process is */
                if (!(is_ret && latency))
                        COUNT(st, filtered);
                return 0;
        }
        if (p->mode == UT_MODE_COUNT && p->key_src == UT_SRC_NONE && !p->npreds && !latency) {
                /* a count keyed by nothing and filtered by nothing: the hit itself */
                COUNT(st, aggregated);
                return 0;
        }

        pid_tgid = bpf_get_current_pid_tgid();
        /* the call in flight: the return finds it at SP - 8 (the return address is popped) */
        lk.tid = (__u32)pid_tgid;
        lk.probe = slot;
        lk.sp = PT_REGS_SP(ctx) - (is_ret ? 8 : 0);

        if (sleepable && !(is_ret && latency))
                fault_in_strings(ctx, site, p, is_ret, st);

        s = bpf_map_lookup_elem(&scratch, &zero);
        if (!s)
                return 0;
        if (__sync_lock_test_and_set(&s->busy, 1)) {
                count_drop(st, true);
                if (latency && !is_ret)
                        bpf_map_delete_elem(&lat, &lk); /* no stale entry for this return */
                return 0;
        }

        e = (void *)s->rec;
        nvals = p->nvals;
        if (nvals > UT_MAX_VALS)
                nvals = UT_MAX_VALS;
        sbase = sizeof(*e) + 8 * nvals;
        now = p->flags & UT_P_NO_HEADER ? 0 : bpf_ktime_get_ns();

        if (is_ret && latency) {
                void *stored = bpf_map_lookup_elem(&lat, &lk);

                if (!stored) {
                        COUNT(st, unpaired);
                        goto out;
                }
                bpf_probe_read_kernel(s->rec, UT_REC_MAX, stored);
                bpf_map_delete_elem(&lat, &lk);
                if (e->gen != p->gen) {
                        COUNT(st, unpaired);
                        goto out;
                }
                e->retval = PT_REGS_RC(ctx);
                e->latency_ns = now - e->ts;
                e->ts = now;
                e->flags |= UT_EV_RETURN | UT_EV_LATENCY;
                fill_values(ctx, site, p, (void *)(s->rec + sizeof(*e)), true, e->retval);
                off = e->size;
        } else {
                e->probe = slot;
                e->gen = p->gen;
                e->ts = now;
                e->latency_ns = 0;
                e->retval = is_ret ? PT_REGS_RC(ctx) : 0;
                e->pid = pid_tgid >> 32;
                e->tid = (__u32)pid_tgid;
                e->loc = cookie >> 32;
                e->nvals = nvals;
                e->nstrs = p->nstrs;
                e->flags = is_ret ? UT_EV_RETURN : 0;
                if (p->flags & UT_P_NO_HEADER) {
                        e->uid = 0;
                } else {
                        struct task_struct *task = bpf_get_current_task_btf();

                        e->uid = (__u32)bpf_get_current_uid_gid();
                        /* two loads instead of the helper's byte-wise copy */
                        __builtin_memcpy(e->comm, task->comm, sizeof(e->comm));
                }
                fill_values(ctx, site, p, (void *)(s->rec + sizeof(*e)), is_ret, e->retval);

                off = sbase;
                for (int j = 0; j < UT_MAX_STRS; j++) {
                        const struct ut_strcap *sc;
                        __u64 ptr;

                        if (j >= p->nstrs)
                                break;
                        sc = &p->strs[j];
                        ptr = str_ptr(ctx, site, sc);
                        r = ut_put_string(s, off, j, ptr, sc->cap);
                        if (r < 0)
                                break;
                        off = r;
                }
                e->size = off;
        }

        for (int i = 0; i < UT_MAX_PREDS; i++) {
                const struct ut_pred *pr;
                bool ret_field;

                if (i >= p->npreds)
                        break;
                pr = &p->preds[i];
                ret_field = pr->src == UT_SRC_RETVAL || pr->src == UT_SRC_LATENCY;
                if (latency && ret_field != is_ret)
                        continue; /* evaluated in the other half of the pair */
                if (latency && is_ret && pr->src == UT_SRC_ARG)
                        continue;
                if (!ut_pred(ctx, site, pr, s, sbase)) {
                        COUNT(st, filtered);
                        /* an entry a longjmp left behind at this stack
                         * pointer must not pair with this call's return */
                        if (latency && !is_ret)
                                bpf_map_delete_elem(&lat, &lk);
                        goto out;
                }
        }

        if (latency && !is_ret) {
                if (bpf_map_update_elem(&lat, &lk, s->rec, BPF_ANY))
                        count_drop(st, false);
                goto out;
        }

        if (p->mode == UT_MODE_EVENTS) {
                if (off > UT_REC_MAX)
                        off = UT_REC_MAX;
                if (off < sizeof(*e))
                        off = sizeof(*e);
                if (bpf_ringbuf_output(&events, s->rec, off, wake_flags(now)))
                        count_drop(st, false);
                else
                        COUNT(st, emitted);
        } else {
                ut_aggregate(p, slot, s, sbase, st);
        }
out:
        *(volatile __u32 *)&s->busy = 0;
        return 0;
}

SEC("uprobe")
int BPF_KPROBE(ut_entry)
{
        TEST_SALT();
        return handle(ctx, false, false);
}

SEC("uprobe.s")
int BPF_KPROBE(ut_entry_s)
{
        TEST_SALT();
        return handle(ctx, false, true);
}

SEC("uretprobe")
int BPF_KRETPROBE(ut_return)
{
        TEST_SALT();
        return handle(ctx, true, false);
}

SEC("uretprobe.s")
int BPF_KRETPROBE(ut_return_s)
{
        TEST_SALT();
        return handle(ctx, true, true);
}
