// SPDX-License-Identifier: GPL-2.0-only
#include <ctype.h>
#include <limits.h>
#include <stdio.h>

#include "spec.h"
#include "utrace.h"
#include "util.h"

void probe_spec_done(struct probe_spec *s)
{
        free(s->text);
        free(s->target);
        free(s->symbol);
        free(s->provider);
        free(s->name);
        free(s->filter);
        free(s->comm);
        free(s->exe);
        free(s->cgroup);
        memset(s, 0, sizeof(*s));
}

bool spec_has_glob(const char *s)
{
        return s && strpbrk(s, "*?[") != NULL;
}

static char *strndup_or_null(const char *s, size_t n)
{
        return n ? strndup(s, n) : NULL;
}

static const struct {
        const char *name;
        enum probe_type type;
} probe_types[] = {
        { "uprobe", PROBE_UPROBE }, { "u", PROBE_UPROBE },
        { "uretprobe", PROBE_URETPROBE }, { "ur", PROBE_URETPROBE },
        { "usdt", PROBE_USDT }, { "U", PROBE_USDT },
};

static int parse_uprobe_location(const char *loc, struct probe_spec *s, struct error *err)
{
        const char *plus;
        unsigned long long v;

        if (!*loc)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "probe %s: missing symbol or address", s->text);
        if (startswith(loc, "0x") || isdigit((unsigned char)*loc)) {
                if (parse_u64(loc, &v) < 0 || v == 0)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "probe %s: bad address \"%s\"", s->text, loc);
                s->address = v;
                return 0;
        }
        plus = strrchr(loc, '+');
        if (plus) {
                if (parse_u64(plus + 1, &v) < 0)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "probe %s: bad offset \"%s\"", s->text, plus + 1);
                s->offset = v;
                if (spec_has_glob(loc))
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "probe %s: an offset cannot follow a wildcard",
                                         s->text);
        }
        s->symbol = strndup(loc, plus ? (size_t)(plus - loc) : strlen(loc));
        if (!s->symbol)
                return -ENOMEM;
        if (!*s->symbol)
                return error_set(err, E_INVALID_SPEC, -EINVAL, "probe %s: empty symbol",
                                 s->text);
        return 0;
}

int spec_parse_probe(const char *text, pid_t pid, struct probe_spec *s, struct error *err)
{
        const char *p, *c1, *c2, *c3;
        size_t tlen;
        bool found = false;
        int r;

        s->text = strdup(text);
        if (!s->text)
                return -ENOMEM;
        s->pid = pid;
        c1 = strchr(text, ':');
        if (!c1)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "probe %s: expected TYPE:TARGET:..., e.g. "
                                 "uprobe:/usr/bin/bash:readline", text);
        tlen = c1 - text;
        for (size_t i = 0; i < ARRAY_SIZE(probe_types); i++)
                if (strlen(probe_types[i].name) == tlen &&
                    strncmp(probe_types[i].name, text, tlen) == 0) {
                        s->type = probe_types[i].type;
                        found = true;
                }
        if (!found)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "probe %s: unknown probe type \"%.*s\" (uprobe, uretprobe, usdt)",
                                 text, (int)tlen, text);
        p = c1 + 1;
        c2 = strchr(p, ':');

        if (s->type != PROBE_USDT) {
                if (!c2)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "probe %s: expected %.*s:TARGET:SYMBOL", text,
                                         (int)tlen, text);
                s->target = strndup_or_null(p, c2 - p);
                if (!s->target)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "probe %s: missing target", text);
                r = parse_uprobe_location(c2 + 1, s, err);
                if (r < 0)
                        return r;
                if (s->type == PROBE_URETPROBE && (s->offset || s->address))
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "probe %s: a return probe takes a function symbol",
                                         text);
                return 0;
        }

        /* usdt:TARGET:PROVIDER:NAME, usdt:TARGET:NAME, or (with a pid) usdt:PROVIDER:NAME */
        if (!c2)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "probe %s: expected usdt:TARGET:PROVIDER:NAME", text);
        c3 = strchr(c2 + 1, ':');
        if (c3) {
                if (strchr(c3 + 1, ':'))
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "probe %s: too many fields", text);
                s->target = strndup_or_null(p, c2 - p);
                s->provider = strndup_or_null(c2 + 1, c3 - c2 - 1);
                s->name = strndup_or_null(c3 + 1, strlen(c3 + 1));
        } else if (pid && !memchr(p, '/', c2 - p) && !memmem(p, c2 - p, ".so", 3)) {
                s->provider = strndup_or_null(p, c2 - p);
                s->name = strndup_or_null(c2 + 1, strlen(c2 + 1));
        } else {
                s->target = strndup_or_null(p, c2 - p);
                s->name = strndup_or_null(c2 + 1, strlen(c2 + 1));
        }
        if (!s->name)
                return error_set(err, E_INVALID_SPEC, -EINVAL, "probe %s: missing probe name",
                                 text);
        if (!s->target && !pid)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "probe %s: missing target (a path, a library name, or --pid)",
                                 text);
        return 0;
}

static bool valid_name(const char *s, size_t n)
{
        if (n == 0 || n >= SPEC_NAME_MAX || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '_')
                        return false;
        return true;
}

/* argN (0 <= N < UT_MAX_ARGS) */
static bool parse_argn(const char *s, size_t n, uint8_t *idx)
{
        unsigned v = 0;

        if (n < 4 || n > 5 || strncmp(s, "arg", 3) != 0)
                return false;
        for (size_t i = 3; i < n; i++) {
                if (!isdigit((unsigned char)s[i]))
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        if (n == 5 && s[3] == '0')
                return false;
        if (v >= UT_MAX_ARGS)
                return false;
        *idx = v;
        return true;
}

static const struct {
        const char *name;
        enum field field;
} fields[] = {
        { "retval", FIELD_RETVAL }, { "latency_ns", FIELD_LATENCY }, { "latency", FIELD_LATENCY },
        { "pid", FIELD_PID }, { "tid", FIELD_TID }, { "uid", FIELD_UID },
        { "comm", FIELD_COMM }, { "cgroup", FIELD_CGROUP },
};

#define S UT_CAST_SIGNED
static const struct {
        const char *name;
        uint8_t cast;
} cast_types[] = {
        /* the canonical names first: spec_cast_name() returns these */
        { "s8", 1 | S }, { "s16", 2 | S }, { "s32", 4 | S }, { "s64", 8 | S },
        { "u8", 1 }, { "u16", 2 }, { "u32", 4 }, { "u64", 8 },
        { "int8", 1 | S }, { "int16", 2 | S }, { "int32", 4 | S }, { "int64", 8 | S },
        { "uint8", 1 }, { "uint16", 2 }, { "uint32", 4 }, { "uint64", 8 },
        { "int8_t", 1 | S }, { "int16_t", 2 | S }, { "int32_t", 4 | S }, { "int64_t", 8 | S },
        { "uint8_t", 1 }, { "uint16_t", 2 }, { "uint32_t", 4 }, { "uint64_t", 8 },
        { "char", 1 | S }, { "signed char", 1 | S }, { "unsigned char", 1 },
        { "short", 2 | S }, { "short int", 2 | S }, { "signed short", 2 | S },
        { "unsigned short", 2 }, { "unsigned short int", 2 },
        { "int", 4 | S }, { "signed", 4 | S }, { "signed int", 4 | S },
        { "unsigned", 4 }, { "unsigned int", 4 },
        { "long", 8 | S }, { "long int", 8 | S }, { "signed long", 8 | S },
        { "long long", 8 | S }, { "unsigned long", 8 }, { "unsigned long int", 8 },
        { "unsigned long long", 8 }, { "size_t", 8 }, { "ssize_t", 8 | S },
};
#undef S

const char *spec_cast_name(uint8_t cast)
{
        for (size_t i = 0; cast && i < ARRAY_SIZE(cast_types); i++)
                if (cast_types[i].cast == cast)
                        return cast_types[i].name;
        return NULL;
}

/* The type between the parentheses of a cast, words separated by any blanks. */
static bool parse_cast_type(const char *s, size_t n, uint8_t *cast)
{
        char norm[32];
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                if (isspace((unsigned char)s[i])) {
                        if (k && norm[k - 1] != ' ' && k < sizeof(norm) - 1)
                                norm[k++] = ' ';
                        continue;
                }
                if (k >= sizeof(norm) - 1)
                        return false;
                norm[k++] = s[i];
        }
        if (k && norm[k - 1] == ' ')
                k--;
        norm[k] = 0;
        for (size_t i = 0; i < ARRAY_SIZE(cast_types); i++)
                if (streq(cast_types[i].name, norm)) {
                        *cast = cast_types[i].cast;
                        return true;
                }
        return false;
}

static int parse_field_n(const char *s, size_t n, struct fieldref *ref, struct error *err)
{
        memset(ref, 0, sizeof(*ref));
        while (n && isspace((unsigned char)*s))
                s++, n--;
        while (n && isspace((unsigned char)s[n - 1]))
                n--;
        if (n && s[0] == '(') {
                const char *close = memchr(s, ')', n);
                uint8_t cast;
                int r;

                if (!close || !parse_cast_type(s + 1, close - s - 1, &cast))
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "\"%.*s\": a cast names an integer type: (s8), (u16), "
                                         "(int), (unsigned long), ... (s8 s16 s32 s64 u8 u16 u32 "
                                         "u64 and their C names)", (int)MIN(n, 64), s);
                r = parse_field_n(close + 1, n - (close + 1 - s), ref, err);
                if (r < 0)
                        return r;
                if (ref->cast)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "\"%.*s\": one cast per value", (int)MIN(n, 64), s);
                if (ref->is_str || (ref->field != FIELD_ARG && ref->field != FIELD_RETVAL &&
                                    ref->field != FIELD_NAME))
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "\"%.*s\": a cast applies to argN, retval or the name "
                                         "of an integer --arg", (int)MIN(n, 64), s);
                ref->cast = cast;
                return 0;
        }
        if (n > 5 && strncmp(s, "str(", 4) == 0 && s[n - 1] == ')') {
                const char *in = s + 4, *comma;
                size_t inlen = n - 5;
                uint16_t len16 = 0;
                int r;

                comma = memchr(in, ',', inlen);
                if (comma) {
                        const char *num = comma + 1;
                        size_t nl = inlen - (num - in);
                        char buf[16];
                        unsigned long long len;

                        while (nl && isspace((unsigned char)*num))
                                num++, nl--;
                        if (nl == 0 || nl >= sizeof(buf))
                                goto bad;
                        memcpy(buf, num, nl);
                        buf[nl] = 0;
                        if (parse_u64(buf, &len) < 0 || len == 0 || len >= UT_STR_MAX)
                                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                                 "str(): length must be 1..%d", UT_STR_MAX - 1);
                        inlen = comma - in;
                        len16 = (uint16_t)len;
                }
                r = parse_field_n(in, inlen, ref, err);
                if (r < 0)
                        return r;
                if (ref->field != FIELD_ARG && ref->field != FIELD_RETVAL && ref->field != FIELD_NAME)
                        goto bad;
                if (ref->cast)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "str(): takes a pointer, not a cast value");
                ref->is_str = true;
                ref->len = len16;
                return 0;
        }
        if (parse_argn(s, n, &ref->idx)) {
                ref->field = FIELD_ARG;
                return 0;
        }
        for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
                if (strlen(fields[i].name) == n && strncmp(fields[i].name, s, n) == 0) {
                        ref->field = fields[i].field;
                        return 0;
                }
        if (valid_name(s, n)) {
                ref->field = FIELD_NAME;
                memcpy(ref->name, s, n);
                ref->name[n] = 0;
                return 0;
        }
bad:
        return error_set(err, E_INVALID_SPEC, -EINVAL,
                         "unknown field \"%.*s\" (argN, str(argN), retval, latency_ns, pid, "
                         "tid, uid, comm, cgroup, or an --arg name)", (int)MIN(n, 64), s);
}

int spec_parse_field(const char *text, struct fieldref *ref, struct error *err)
{
        return parse_field_n(text, strlen(text), ref, err);
}

void spec_format_field(const struct fieldref *ref, char *buf, size_t size)
{
        char inner[48];

        switch (ref->field) {
        case FIELD_ARG: snprintf(inner, sizeof(inner), "arg%u", ref->idx); break;
        case FIELD_NAME: snprintf(inner, sizeof(inner), "%s", ref->name); break;
        default:
                for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
                        if (fields[i].field == ref->field) {
                                snprintf(inner, sizeof(inner), "%s", fields[i].name);
                                break;
                        }
                if (ref->field == FIELD_NONE)
                        snprintf(inner, sizeof(inner), "none");
        }
        if (ref->cast)
                snprintf(buf, size, "(%s)%s", spec_cast_name(ref->cast), inner);
        else if (!ref->is_str)
                snprintf(buf, size, "%s", inner);
        else if (ref->len)
                snprintf(buf, size, "str(%s, %u)", inner, ref->len);
        else
                snprintf(buf, size, "str(%s)", inner);
}

int spec_parse_capture(const char *text, struct capture *c, struct error *err)
{
        const char *eq = strchr(text, '=');
        const char *expr = eq ? eq + 1 : text;
        int r;

        memset(c, 0, sizeof(*c));
        r = spec_parse_field(expr, &c->ref, err);
        if (r < 0)
                return r;
        if (c->ref.field != FIELD_ARG && c->ref.field != FIELD_RETVAL)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "--arg %s: only argN, retval, str(argN) and str(retval) "
                                 "can be captured", text);
        if (eq) {
                if (!valid_name(text, eq - text))
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "--arg %s: \"%.*s\" is not a valid name", text,
                                         (int)MIN(eq - text, 64), text);
                memcpy(c->name, text, eq - text);
                c->name[eq - text] = 0;
        } else {
                /* a bare expression names itself: str(arg1) and (int)arg1 are "arg1" */
                struct fieldref plain = c->ref;

                plain.is_str = false;
                plain.cast = 0;
                spec_format_field(&plain, c->name, sizeof(c->name));
        }
        return 0;
}

/* A quoted string with C escapes at *p; advances past the closing quote. */
static int parse_quoted(const char **p, char *out, size_t size, bool *star)
{
        const char *s = *p + 1;
        size_t n = 0;

        *star = false;
        for (;;) {
                char ch = *s++;

                if (!ch)
                        return -EINVAL;
                if (ch == '"')
                        break;
                if (ch == '*' && *s == '"') {
                        *star = true;
                        continue;
                }
                if (ch == '\\') {
                        ch = *s++;
                        switch (ch) {
                        case 'n': ch = '\n'; break;
                        case 't': ch = '\t'; break;
                        case '\\': case '"': case '*': break;
                        case 'x': {
                                char hex[3] = { s[0], s[0] ? s[1] : 0, 0 };
                                char *end;
                                long v = strtol(hex, &end, 16);

                                if (end != hex + 2 || v == 0)
                                        return -EINVAL;
                                ch = (char)v;
                                s += 2;
                                break;
                        }
                        default: return -EINVAL;
                        }
                }
                if (n + 1 >= size)
                        return -E2BIG;
                out[n++] = ch;
        }
        out[n] = 0;
        *p = s;
        return 0;
}

static const char *const op_names[] = { "==", "!=", "<", "<=", ">", ">=" };

/* 10ms, 5us, 3s: durations for latency comparisons. Numbers above LLONG_MAX
 * come back as their 64 bits. */
static int parse_number(const char *s, size_t n, long long *ret, bool *negative)
{
        static const struct { const char *sfx; long long mul; } units[] = {
                { "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", 1000000000 },
        };
        char buf[32];
        long long mul = 1, v;

        if (n == 0 || n >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, n);
        buf[n] = 0;
        for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
                size_t sl = strlen(units[i].sfx);

                if (n > sl && streq(buf + n - sl, units[i].sfx) &&
                    isdigit((unsigned char)buf[n - sl - 1]) && !startswith(buf, "0x")) {
                        buf[n - sl] = 0;
                        mul = units[i].mul;
                        break;
                }
        }
        *negative = buf[0] == '-';
        if (*negative) {
                if (parse_s64(buf, &v) < 0)
                        return -EINVAL;
        } else {
                unsigned long long u;

                if (parse_u64(buf, &u) < 0)
                        return -EINVAL;
                v = (long long)u;
        }
        if (mul > 1 && (v < 0 || v > LLONG_MAX / mul))
                return -ERANGE;
        *ret = v * mul;
        return 0;
}

int spec_parse_filter(const char *text, struct predicate *preds, int max, struct error *err)
{
        const char *p = text;
        int n = 0;

        for (;;) {
                struct predicate *pr;
                const char *start, *opp = NULL;
                size_t oplen = 0;
                int r, depth = 0;

                while (isspace((unsigned char)*p))
                        p++;
                if (!*p)
                        break;
                if (n >= max)
                        return error_set(err, E_INVALID_SPEC, -E2BIG,
                                         "filter: more than %d conditions", max);
                pr = &preds[n];
                memset(pr, 0, sizeof(*pr));
                /* the field runs up to the comparison operator */
                start = p;
                for (; *p; p++) {
                        if (*p == '(')
                                depth++;
                        else if (*p == ')')
                                depth--;
                        else if (depth == 0 && strchr("=!<>", *p))
                                break;
                }
                if (!*p)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "filter: \"%.64s\" has no comparison (==, !=, <, <=, >, >=)",
                                         start);
                if (p == start)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "filter: expected FIELD OP VALUE at \"%.16s\" (there is "
                                         "no negation: write the opposite comparison)", start);
                r = parse_field_n(start, p - start, &pr->ref, err);
                if (r < 0)
                        return r;
                for (int i = ARRAY_SIZE(op_names) - 1; i >= 0; i--)
                        if (startswith(p, op_names[i]) && strlen(op_names[i]) > oplen) {
                                pr->op = (enum cmp_op)i;
                                opp = p;
                                oplen = strlen(op_names[i]);
                        }
                if (!opp)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "filter: bad operator at \"%.16s\"", p);
                p += oplen;
                while (isspace((unsigned char)*p))
                        p++;
                if (*p == '"') {
                        r = parse_quoted(&p, pr->sval, sizeof(pr->sval), &pr->prefix);
                        if (r == -E2BIG)
                                return error_set(err, E_INVALID_SPEC, r,
                                                 "filter: string longer than %zu bytes",
                                                 sizeof(pr->sval) - 1);
                        if (r < 0)
                                return error_set(err, E_INVALID_SPEC, r,
                                                 "filter: unterminated or badly escaped string");
                        pr->is_str = true;
                        if (pr->op != OP_EQ && pr->op != OP_NE)
                                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                                 "filter: strings compare with == and != only");
                } else {
                        const char *v = p;

                        while (*p && !isspace((unsigned char)*p) && *p != '&')
                                p++;
                        if (parse_number(v, p - v, &pr->ival, &pr->negative) < 0)
                                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                                 "filter: \"%.*s\" is not a number or a quoted string",
                                                 (int)MIN(p - v, 64), v);
                }
                n++;
                while (isspace((unsigned char)*p))
                        p++;
                if (!*p)
                        break;
                if (!startswith(p, "&&"))
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "filter: expected && before \"%.16s\" (only "
                                         "conjunctions are supported)", p);
                p += 2;
                while (isspace((unsigned char)*p))
                        p++;
                if (!*p)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "filter: dangling &&");
        }
        return n;
}

int spec_parse_aggregate(const char *text, enum agg_mode *mode, struct fieldref *value,
                         struct error *err)
{
        size_t n = strlen(text);

        memset(value, 0, sizeof(*value));
        if (streq(text, "count")) {
                *mode = AGG_COUNT;
                return 0;
        }
        if (n > 6 && startswith(text, "hist(") && text[n - 1] == ')') {
                int r = parse_field_n(text + 5, n - 6, value, err);

                if (r < 0)
                        return r;
                if (value->is_str || value->field == FIELD_COMM || value->field == FIELD_CGROUP)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "--aggregate %s: a histogram needs an integer value",
                                         text);
                *mode = AGG_HIST;
                return 0;
        }
        return error_set(err, E_INVALID_SPEC, -EINVAL,
                         "--aggregate %s: expected count or hist(FIELD)", text);
}
