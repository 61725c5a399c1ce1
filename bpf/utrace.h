/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Structures shared by the BPF programs (bpf/utrace.bpf.c) and the daemon.
 *
 * A probe is data, not code: each attachment carries a BPF cookie whose low
 * 32 bits name a *site* (where the arguments live: ABI registers for a
 * uprobe, the note's argument specs for one USDT location) and whose high 32
 * bits name the location inside the probe (which symbol of a wildcard). The
 * site names a *probe slot*: what to capture, which filters to run and
 * whether to stream events or aggregate in maps.
 *
 * Every size is checked with _Static_assert on both sides, so a change here
 * that the other side does not see fails the build.
 */
#ifndef UTRACE_H
#define UTRACE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define UT_MAX_PROBES     4096  /* probe slots */
#define UT_MAX_SITES      16384 /* argument-location sets */
#define UT_MAX_ARGS       12    /* arguments a site can describe (sdt.h's limit) */
#define UT_MAX_VALS       8     /* integer values per event */
#define UT_MAX_STRS       4     /* strings read per hit (captured or filtered) */
#define UT_STR_MAX        256   /* bytes of one string, NUL included */
#define UT_STRS_MAX       512   /* bytes of all strings of one event */
#define UT_MAX_PREDS      8     /* filter predicates per probe */
#define UT_PRED_STR_MAX   64    /* bytes of a string predicate's operand */
#define UT_KEY_MAX        32    /* bytes of an aggregation key */
#define UT_HIST_SLOTS     65    /* log2 buckets: 0, [1,2), [2,4), ... [2^63,2^64) */
#define UT_LAT_ENTRIES    8192  /* in-flight calls of latency probes */
#define UT_AGG_KEYS       16384 /* keys of all aggregations */
#define UT_COMM_LEN       16
#define UT_CGROUP_LEVELS  32    /* cgroup nesting a cgroup filter looks through */

/* Where an argument lives (UT_MAX_ARGS of these per site). */
enum ut_arg_type {
        UT_ARG_NONE = 0,
        UT_ARG_CONST,     /* value = val_off */
        UT_ARG_REG,       /* value = register at reg_off in pt_regs */
        UT_ARG_REG_DEREF, /* value = *(register + val_off), user memory */
};

struct ut_arg_spec {
        __u64 val_off;  /* constant, or displacement for UT_ARG_REG_DEREF */
        __u16 reg_off;  /* byte offset of the register in struct pt_regs */
        __u8 type;      /* enum ut_arg_type */
        __u8 size;      /* 1, 2, 4 or 8 bytes */
        __u8 is_signed; /* sign-extend to 64 bits */
        __u8 pad[3];
};

struct ut_site {
        __u32 probe; /* probe slot */
        __u32 nargs;
        struct ut_arg_spec args[UT_MAX_ARGS];
};

/* Byte offsets in the kernel's x86-64 struct pt_regs (asserted in BPF). */
enum ut_reg_off {
        UT_REG_R15 = 0, UT_REG_R14 = 8, UT_REG_R13 = 16, UT_REG_R12 = 24,
        UT_REG_BP = 32, UT_REG_BX = 40, UT_REG_R11 = 48, UT_REG_R10 = 56,
        UT_REG_R9 = 64, UT_REG_R8 = 72, UT_REG_AX = 80, UT_REG_CX = 88,
        UT_REG_DX = 96, UT_REG_SI = 104, UT_REG_DI = 112, UT_REG_IP = 128,
        UT_REG_SP = 152,
};

/* What a value is taken from. */
enum ut_src {
        UT_SRC_ARG = 0,  /* argument idx of the site */
        UT_SRC_RETVAL,   /* return value (returns only) */
        UT_SRC_LATENCY,  /* ns since the paired entry (latency probes) */
        UT_SRC_PID,
        UT_SRC_TID,
        UT_SRC_UID,
        UT_SRC_COMM,     /* key only */
        UT_SRC_STR,      /* string slot idx */
        UT_SRC_CGROUP,   /* cgroup id; predicates: idx 1 = the cgroup or one below it, 0 = exactly */
        UT_SRC_EXE,      /* predicates: the executable is the file val (inode), str (device) */
        UT_SRC_NONE = 0xff,
};

/*
 * A cast narrows an integer to its low bytes, then sign- or zero-extends it
 * back to 64 bits: the low nibble is the size in bytes (1, 2, 4; 0 or 8 keep
 * all 64 bits), UT_CAST_SIGNED sign-extends. USDT arguments are narrowed
 * to the sizes their notes give with it too.
 */
#define UT_CAST_SIZE   0x0f
#define UT_CAST_SIGNED 0x10

static inline __u64 ut_cast(__u64 v, __u8 cast)
{
        switch (cast) {
        case 1: return (__u8)v;
        case 2: return (__u16)v;
        case 4: return (__u32)v;
        case 1 | UT_CAST_SIGNED: return (__u64)(__s64)(__s8)v;
        case 2 | UT_CAST_SIGNED: return (__u64)(__s64)(__s16)v;
        case 4 | UT_CAST_SIGNED: return (__u64)(__s64)(__s32)v;
        default: return v;
        }
}

struct ut_capture {
        __u8 src;  /* UT_SRC_ARG or UT_SRC_RETVAL */
        __u8 idx;
        __u8 cast; /* applied to the value before it is recorded */
        __u8 pad;
};

struct ut_strcap {
        __u8 src;  /* UT_SRC_ARG or UT_SRC_RETVAL */
        __u8 idx;
        __u16 cap; /* bytes read at most, NUL included (<= UT_STR_MAX) */
};

enum ut_op {
        UT_OP_EQ = 0, UT_OP_NE, UT_OP_LT, UT_OP_LE, UT_OP_GT, UT_OP_GE, /* unsigned */
        UT_OP_SLT, UT_OP_SLE, UT_OP_SGT, UT_OP_SGE,                      /* signed */
        UT_OP_STR_EQ, UT_OP_STR_NE, UT_OP_STR_PREFIX, UT_OP_STR_NPREFIX,
};

struct ut_pred {
        __u8 src;   /* enum ut_src: PID, TID, UID, COMM, CGROUP, ARG, RETVAL, LATENCY, STR */
        __u8 op;    /* enum ut_op */
        __u8 idx;   /* argument index, string slot or cgroup level */
        __u8 len;   /* operand length for string ops, NUL excluded */
        __u8 cast;  /* applied to an ARG or RETVAL value before comparing */
        __u8 pad[3];
        __u64 val;  /* integer operand */
        char str[UT_PRED_STR_MAX];
};

enum ut_mode {
        UT_MODE_EVENTS = 0, /* stream every hit that passes the filters */
        UT_MODE_COUNT,      /* count hits per key, no events */
        UT_MODE_HIST,       /* log2 histogram of a value per key, no events */
};

enum ut_probe_flags {
        UT_P_ENABLED = 1 << 0,
        UT_P_LATENCY = 1 << 1, /* entry stores, return emits with latency */
        UT_P_OWNED = 1 << 2,   /* hits count only in dumpable processes whose
                                * effective uid is owner_uid; others are filtered */
        UT_P_NO_HEADER = 1 << 3, /* an aggregation that needs no ts, uid or comm */
};

struct ut_probe {
        __u32 flags;     /* enum ut_probe_flags */
        __u32 gen;       /* generation of this slot: events carry it */
        __u8 mode;       /* enum ut_mode */
        __u8 nvals;
        __u8 nstrs;
        __u8 npreds;
        __u8 agg_src;    /* value of a histogram: UT_SRC_ARG/RETVAL/LATENCY */
        __u8 agg_idx;
        __u8 key_src;    /* aggregation key: UT_SRC_NONE/COMM/PID/TID/UID/ARG/STR */
        __u8 key_idx;
        __u32 max_keys;  /* distinct keys before the overflow key takes over */
        __u32 owner_uid; /* with UT_P_OWNED */
        struct ut_capture vals[UT_MAX_VALS];
        struct ut_strcap strs[UT_MAX_STRS];
        struct ut_pred preds[UT_MAX_PREDS];
};

/* Per-probe counters, per CPU; the daemon sums them. A count aggregation
 * keyed by nothing lives in aggregated alone, with no entry in aggs. */
struct ut_stats {
        __u64 hits;        /* invocations (entries for latency probes) */
        __u64 filtered;    /* dropped by a filter */
        __u64 emitted;     /* records written to the ring buffer */
        __u64 aggregated;  /* hits counted into an aggregation */
        __u64 lost;        /* ring buffer full: record dropped */
        __u64 busy;        /* scratch buffer in use on this CPU: dropped */
        __u64 unpaired;    /* return without a stored entry */
        __u64 str_faulted; /* strings read only after faulting the page in */
        __u64 str_errors;  /* strings that could not be read at all */
        __u64 key_overflow;/* aggregation hits folded into the overflow key */
};

/* Event record header; followed by nvals __u64 values and nstrs strings. */
struct ut_event {
        __u32 probe;      /* slot */
        __u32 gen;        /* slot generation at the time of the hit */
        __u64 ts;         /* CLOCK_MONOTONIC ns */
        __u64 latency_ns;
        __s64 retval;
        __u32 pid;
        __u32 tid;
        __u32 uid;
        __u32 loc;        /* location index within the probe */
        __u16 size;       /* bytes of the record, header included */
        __u8 nvals;
        __u8 nstrs;
        __u8 flags;       /* enum ut_event_flags */
        __u8 pad[3];
        char comm[UT_COMM_LEN];
};

enum ut_event_flags {
        UT_EV_RETURN = 1 << 0,  /* produced by a return probe */
        UT_EV_LATENCY = 1 << 1, /* latency_ns is valid */
};

/* One string in a record: header, then len bytes (NUL excluded), padded to 4. */
struct ut_str {
        __u16 len;
        __u8 flags; /* enum ut_str_flags */
        __u8 slot;
};

enum ut_str_flags {
        UT_STR_TRUNCATED = 1 << 0, /* the string went on past cap */
        UT_STR_FAULT = 1 << 1,     /* unreadable; no bytes follow */
};

#define UT_REC_MAX (sizeof(struct ut_event) + 8 * UT_MAX_VALS + \
                    UT_STRS_MAX + 4 * UT_MAX_STRS)

struct ut_lat_key {
        __u32 tid;
        __u32 probe;
        __u64 sp; /* stack pointer at entry: pairs recursion exactly */
};

struct ut_agg_key {
        __u32 probe;
        __u32 overflow; /* 1: the catch-all key once max_keys is reached */
        char key[UT_KEY_MAX];
};

struct ut_agg_val {
        __u64 count;
        __u64 sum;
        __u64 slots[UT_HIST_SLOTS];
};

/* Tunables and state of the ring buffer wakeup policy. */
struct ut_global {
        __u64 wake_bytes; /* wake the daemon once this much is pending */
        __u64 wake_ns;    /* or when the last wakeup is older than this */
        __u64 last_wake;
        __u64 drops;      /* hits of any probe dropped for want of room (ring buffer
                           * full, scratch busy): the daemon looks for whose */
};

_Static_assert(sizeof(struct ut_arg_spec) == 16, "ut_arg_spec layout");
_Static_assert(sizeof(struct ut_site) == 8 + 16 * UT_MAX_ARGS, "ut_site layout");
_Static_assert(sizeof(struct ut_pred) == 16 + UT_PRED_STR_MAX, "ut_pred layout");
_Static_assert(sizeof(struct ut_probe) == 24 + 4 * UT_MAX_VALS + 4 * UT_MAX_STRS +
               (16 + UT_PRED_STR_MAX) * UT_MAX_PREDS, "ut_probe layout");
_Static_assert(sizeof(struct ut_stats) == 80, "ut_stats layout");
_Static_assert(sizeof(struct ut_event) == 72, "ut_event layout");
_Static_assert(sizeof(struct ut_str) == 4, "ut_str layout");
_Static_assert(sizeof(struct ut_lat_key) == 16, "ut_lat_key layout");
_Static_assert(sizeof(struct ut_agg_key) == 8 + UT_KEY_MAX, "ut_agg_key layout");
_Static_assert(sizeof(struct ut_agg_val) == 16 + 8 * UT_HIST_SLOTS, "ut_agg_val layout");
_Static_assert(sizeof(struct ut_global) == 32, "ut_global layout");

#endif
