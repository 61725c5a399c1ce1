// SPDX-License-Identifier: GPL-2.0-only
#include "format.h"
#include "util.h"

void buf_free(struct buf *b)
{
        free(b->data);
        memset(b, 0, sizeof(*b));
}

void buf_reset(struct buf *b)
{
        b->len = 0;
        b->oom = false;
}

static bool reserve(struct buf *b, size_t n)
{
        if (b->len + n <= b->cap)
                return true;
        if (grow_array(&b->data, &b->cap, b->len + n, 1) < 0) {
                b->oom = true;
                return false;
        }
        return true;
}

void buf_put(struct buf *b, const char *s, size_t n)
{
        if (!reserve(b, n))
                return;
        memcpy(b->data + b->len, s, n);
        b->len += n;
}

void buf_puts(struct buf *b, const char *s)
{
        buf_put(b, s, strlen(s));
}

void buf_putc(struct buf *b, char c)
{
        if (!reserve(b, 1))
                return;
        b->data[b->len++] = c;
}

/*
 * The writers below put bytes at p, which the caller has reserved room for,
 * and return the new end: no bounds check, no call per piece.
 */
#define U64_MAX_DIGITS 20
#define JSON_STR_MAX(n) (6 * (n) + 2) /* every byte as \u00XX, and quotes */

static char *put_u64(char *p, uint64_t v)
{
        static const char pairs[] =
                "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                "8081828384858687888990919293949596979899";
        static const uint64_t pow10[U64_MAX_DIGITS] = {
                1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
                100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL,
                1000000000000ULL, 10000000000000ULL, 100000000000000ULL, 1000000000000000ULL,
                10000000000000000ULL, 100000000000000000ULL, 1000000000000000000ULL,
                10000000000000000000ULL,
        };
        /* digits first (log10 from the bit length, then one comparison), then
         * written in place from the end: no temporary to copy */
        unsigned t = (64 - __builtin_clzll(v | 1)) * 1233 >> 12;
        char *end = p + t + (v >= pow10[t]) + (v == 0);

        p = end;
        while (v >= 100000000) {
                /* eight digits at a time in 32-bit arithmetic */
                uint32_t lo = (uint32_t)(v % 100000000);

                v /= 100000000;
                for (int k = 0; k < 4; k++) {
                        p -= 2;
                        memcpy(p, pairs + (lo % 100) * 2, 2);
                        lo /= 100;
                }
        }
        while (v >= 100) {
                unsigned d = (unsigned)(v % 100) * 2;

                v /= 100;
                p -= 2;
                memcpy(p, pairs + d, 2);
        }
        if (v >= 10) {
                p -= 2;
                memcpy(p, pairs + v * 2, 2);
        } else {
                *--p = (char)('0' + v);
        }
        return end;
}

static char *put_s64(char *p, int64_t v)
{
        if (v >= 0)
                return put_u64(p, (uint64_t)v);
        *p++ = '-';
        return put_u64(p, (uint64_t)0 - (uint64_t)v);
}

size_t utf8_len(const unsigned char *s, size_t n)
{
        size_t len;
        uint32_t cp;

        if ((s[0] & 0xe0) == 0xc0) {
                len = 2;
                cp = s[0] & 0x1f;
        } else if ((s[0] & 0xf0) == 0xe0) {
                len = 3;
                cp = s[0] & 0x0f;
        } else if ((s[0] & 0xf8) == 0xf0) {
                len = 4;
                cp = s[0] & 0x07;
        } else {
                return 0;
        }
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

/* Bytes that a JSON string cannot hold as they are: controls, quote,
 * backslash, and (to be checked as UTF-8) everything above ASCII. */
static const bool special[256] = {
        [0x00 ... 0x1f] = true, ['"'] = true, ['\\'] = true, [0x80 ... 0xff] = true,
};

/* A JSON string literal of s: at most JSON_STR_MAX(n) bytes. */
static char *put_json_str(char *p, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *u = (const unsigned char *)s;
        size_t i = 0;

        *p++ = '"';
        while (i < n) {
                unsigned char c = u[i];
                size_t l;

                if (!special[c]) {
                        *p++ = (char)c;
                        i++;
                        continue;
                }
                if (c >= 0x80 && (l = utf8_len(u + i, n - i))) {
                        memcpy(p, s + i, l);
                        p += l;
                        i += l;
                        continue;
                }
                *p++ = '\\';
                switch (c) {
                case '"': *p++ = '"'; break;
                case '\\': *p++ = '\\'; break;
                case '\n': *p++ = 'n'; break;
                case '\t': *p++ = 't'; break;
                case '\r': *p++ = 'r'; break;
                default:
                        memcpy(p, "u00", 3);
                        p[3] = hex[c >> 4];
                        p[4] = hex[c & 15];
                        p += 5;
                }
                i++;
        }
        *p++ = '"';
        return p;
}

void buf_u64(struct buf *b, uint64_t v)
{
        if (reserve(b, U64_MAX_DIGITS))
                b->len = put_u64(b->data + b->len, v) - b->data;
}

void buf_s64(struct buf *b, int64_t v)
{
        if (reserve(b, U64_MAX_DIGITS + 1))
                b->len = put_s64(b->data + b->len, v) - b->data;
}

void buf_json_str(struct buf *b, const char *s, size_t n)
{
        if (reserve(b, JSON_STR_MAX(n)))
                b->len = put_json_str(b->data + b->len, s, n) - b->data;
}

void buf_consume(struct buf *b, size_t n)
{
        if (n >= b->len) {
                b->len = 0;
                return;
        }
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
}

#define LIT(p, s) (memcpy(p, s, sizeof(s) - 1), (p) += sizeof(s) - 1)

/* A field name: an identifier (the spec grammar checks), so nothing to escape. */
static char *put_name(char *p, const struct probe_field *f)
{
        size_t n = strnlen(f->name, sizeof(f->name));

        *p++ = '"';
        memcpy(p, f->name, n);
        p += n;
        *p++ = '"';
        return p;
}

bool format_decode(const struct probe *p, const void *rec, size_t size, struct event_view *v)
{
        const struct ut_event *e = rec;
        size_t off;

        memset(v, 0, sizeof(*v));
        if (size < sizeof(*e) || e->size > size || e->nvals > UT_MAX_VALS ||
            e->nstrs > UT_MAX_STRS || sizeof(*e) + 8u * e->nvals > e->size)
                return false;
        off = sizeof(*e) + 8u * e->nvals;
        for (int j = 0; j < e->nstrs; j++) {
                const struct ut_str *h = (const void *)((const char *)rec + off);

                if (off + sizeof(*h) > e->size || off + sizeof(*h) + h->len > e->size ||
                    h->slot >= UT_MAX_STRS)
                        return false;
                v->strs[h->slot] = h;
                off += sizeof(*h) + ((h->len + 3u) & ~3u);
        }
        v->e = e;
        v->vals = (const __u64 *)((const char *)rec + sizeof(*e));
        v->loc = probe_location(p, e->loc);
        return true;
}

const struct ut_str *format_string(const struct event_view *v, const struct probe_field *f)
{
        if (!f->is_str || f->index >= UT_MAX_STRS || !v->strs[f->index] ||
            (v->strs[f->index]->flags & UT_STR_FAULT))
                return NULL;
        return v->strs[f->index];
}

const char *format_location(const struct probe *p, const struct event_view *v)
{
        if (v->loc && (p->nlocs > 1 || p->spec.type == PROBE_USDT || spec_has_glob(p->spec.symbol)))
                return v->loc->name;
        return NULL;
}

static char *put_retval(char *w, const struct probe *p, const struct ut_event *e)
{
        uint64_t rv = ut_cast(e->retval, p->retval_cast);

        if (p->retval_cast && !(p->retval_cast & UT_CAST_SIGNED))
                return put_u64(w, rv);
        return put_s64(w, (int64_t)rv);
}

void format_retval(struct buf *b, const struct probe *p, const struct ut_event *e)
{
        if (reserve(b, U64_MAX_DIGITS + 1))
                b->len = put_retval(b->data + b->len, p, e) - b->data;
}

/* Integer field f as its type reads, or NULL when the event lacks it. */
static char *put_integer(char *w, const struct probe *p, const struct event_view *v,
                         const struct probe_field *f)
{
        if (f->is_str || f->index >= v->e->nvals)
                return NULL;
        if (probe_value_signed(p, f->index, v->loc))
                return put_s64(w, (int64_t)v->vals[f->index]);
        return put_u64(w, v->vals[f->index]);
}

bool format_integer(struct buf *b, const struct probe *p, const struct event_view *v,
                    const struct probe_field *f)
{
        char *w;

        if (!reserve(b, U64_MAX_DIGITS + 1))
                return false;
        w = put_integer(b->data + b->len, p, v, f);
        if (!w)
                return false;
        b->len = w - b->data;
        return true;
}

bool format_event(struct buf *b, const struct probe *p, const void *rec, size_t size,
                  uint64_t realtime_offset)
{
        struct event_view v;
        const struct ut_event *e;
        const char *loc;
        size_t loc_len = 0, bound;
        bool first = true;
        char *w, *x;

        if (!format_decode(p, rec, size, &v))
                return false;
        e = v.e;
        loc = format_location(p, &v);
        if (loc)
                loc_len = strlen(loc);

        /* room for the longest line this record can make: then no more checks */
        bound = 512 + 8 * U64_MAX_DIGITS + JSON_STR_MAX(UT_COMM_LEN) + JSON_STR_MAX(loc_len) +
                JSON_STR_MAX(e->size) +
                p->nfields * (3 * JSON_STR_MAX(SPEC_NAME_MAX) + U64_MAX_DIGITS + 8);
        if (!reserve(b, bound))
                return false;
        w = b->data + b->len;

        LIT(w, "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"probe\":");
        w = put_u64(w, p->id);
        LIT(w, ",\"ts\":");
        w = put_u64(w, e->ts + realtime_offset);
        LIT(w, ",\"pid\":");
        w = put_u64(w, e->pid);
        LIT(w, ",\"tid\":");
        w = put_u64(w, e->tid);
        LIT(w, ",\"uid\":");
        w = put_u64(w, e->uid);
        LIT(w, ",\"comm\":");
        w = put_json_str(w, e->comm, strnlen(e->comm, sizeof(e->comm)));
        if (loc) {
                LIT(w, ",\"location\":");
                w = put_json_str(w, loc, loc_len);
        }
        if (e->flags & UT_EV_RETURN) {
                LIT(w, ",\"retval\":");
                w = put_retval(w, p, e);
        }
        if (e->flags & UT_EV_LATENCY) {
                LIT(w, ",\"latency_ns\":");
                w = put_u64(w, e->latency_ns);
        }
        LIT(w, ",\"args\":{");
        for (int i = 0; i < p->nfields; i++) {
                const struct probe_field *f = &p->fields[i];
                const struct ut_str *str;

                if (f->hidden)
                        continue;
                if (!first)
                        *w++ = ',';
                first = false;
                w = put_name(w, f);
                *w++ = ':';
                if (!f->is_str) {
                        x = put_integer(w, p, &v, f);
                        if (x)
                                w = x;
                        else
                                LIT(w, "null");
                        continue;
                }
                str = format_string(&v, f);
                if (!str)
                        LIT(w, "null");
                else
                        w = put_json_str(w, (const char *)(str + 1), str->len);
        }
        *w++ = '}';
        /* strings that could not be read, or were cut, are named, never silent */
        for (int pass = 0; pass < 2 && e->nstrs; pass++) {
                const uint8_t flag = pass ? UT_STR_TRUNCATED : UT_STR_FAULT;
                bool any = false;

                for (int i = 0; i < p->nfields; i++) {
                        const struct probe_field *f = &p->fields[i];

                        if (f->hidden || !f->is_str || f->index >= UT_MAX_STRS ||
                            !v.strs[f->index] || !(v.strs[f->index]->flags & flag))
                                continue;
                        if (any)
                                *w++ = ',';
                        else if (pass)
                                LIT(w, ",\"truncated\":[");
                        else
                                LIT(w, ",\"unreadable\":[");
                        any = true;
                        w = put_name(w, f);
                }
                if (any)
                        *w++ = ']';
        }
        LIT(w, "}}\n");
        b->len = w - b->data;
        return true;
}
