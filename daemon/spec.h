/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "errors.h"

#define SPEC_NAME_MAX 32
#define SPEC_MAX_CAPTURES 12
#define SPEC_MAX_PREDS 8
#define SPEC_STR_DEFAULT 64

enum probe_type {
        PROBE_UPROBE,
        PROBE_URETPROBE,
        PROBE_USDT,
};

/* A value named in --arg, --filter, hist() or --by. */
enum field {
        FIELD_NONE,
        FIELD_ARG,     /* argN */
        FIELD_RETVAL,
        FIELD_LATENCY, /* latency_ns */
        FIELD_PID,
        FIELD_TID,
        FIELD_UID,
        FIELD_COMM,
        FIELD_CGROUP,
        FIELD_NAME,    /* a capture's name, resolved against the captures */
};

struct fieldref {
        enum field field;
        bool is_str;   /* str(...) */
        uint8_t idx;   /* argument index */
        uint8_t cast;  /* (TYPE)FIELD, encoded as for ut_cast(); 0: none */
        uint16_t len;  /* str(argN, LEN): bytes to read, 0 = default */
        char name[SPEC_NAME_MAX];
};

struct capture {
        char name[SPEC_NAME_MAX];
        struct fieldref ref; /* FIELD_ARG or FIELD_RETVAL, maybe a string */
};

enum cmp_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

struct predicate {
        struct fieldref ref;
        enum cmp_op op;
        bool is_str;     /* the operand is a string */
        bool prefix;     /* string operand ended with '*' */
        bool negative;   /* the integer operand was written with a '-' */
        long long ival;  /* integer operand (above LLONG_MAX: its 64 bits) */
        char sval[64];   /* string operand (prefix without the '*') */
};

enum agg_mode { AGG_NONE, AGG_COUNT, AGG_HIST };

/* A parsed probe request: everything `utracectl attach` can say. */
struct probe_spec {
        char *text;     /* the spec as given */
        enum probe_type type;
        char *target;   /* path or library name; NULL: every object (usdt with pid) */
        char *symbol;   /* uprobe symbol (or glob); NULL with a raw address */
        uint64_t offset;/* SYMBOL+OFFSET */
        uint64_t address;
        char *provider; /* usdt; NULL: any provider */
        char *name;     /* usdt probe name */
        pid_t pid;      /* 0: system-wide */

        struct capture caps[SPEC_MAX_CAPTURES];
        int ncaps;
        bool default_caps; /* no --arg given: the type's default captures */
        char *filter;   /* as given */
        struct predicate preds[SPEC_MAX_PREDS];
        int npreds;
        bool latency;
        enum agg_mode agg;
        struct fieldref agg_value; /* hist(FIELD) */
        struct fieldref agg_key;   /* --by FIELD; FIELD_NONE: one total */
        uint32_t max_keys;
        bool transient; /* detach when the requesting client goes away */
        /* scope: hits count only in processes with this comm, executable file
         * or cgroup (or one below it) */
        char *comm;
        char *exe;
        char *cgroup;
        bool hold;      /* watched: stop a process meeting a new file until attached */
};

int spec_parse_probe(const char *text, pid_t pid, struct probe_spec *s, struct error *err);
int spec_parse_capture(const char *text, struct capture *c, struct error *err);
int spec_parse_filter(const char *text, struct predicate *preds, int max, struct error *err);
int spec_parse_aggregate(const char *text, enum agg_mode *mode, struct fieldref *value,
                         struct error *err);
int spec_parse_field(const char *text, struct fieldref *ref, struct error *err);
void spec_format_field(const struct fieldref *ref, char *buf, size_t size);
/* "s32" for a cast's encoding; NULL for 0. */
const char *spec_cast_name(uint8_t cast);
void probe_spec_done(struct probe_spec *s);
bool spec_has_glob(const char *s);
