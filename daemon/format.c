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

void buf_u64(struct buf *b, uint64_t v)
{
        char tmp[24];
        int i = sizeof(tmp);

        do {
                tmp[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        buf_put(b, tmp + i, sizeof(tmp) - i);
}

void buf_s64(struct buf *b, int64_t v)
{
        if (v < 0) {
                buf_putc(b, '-');
                buf_u64(b, (uint64_t)0 - (uint64_t)v);
        } else {
                buf_u64(b, (uint64_t)v);
        }
}

size_t utf8_len(const unsigned char *s, size_t n)
{
        size_t len;
        uint32_t cp;

        if (s[0] < 0x80)
                return 1;
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

void buf_json_str(struct buf *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *u = (const unsigned char *)s;
        size_t i = 0, run = 0;

        buf_putc(b, '"');
        while (i < n) {
                unsigned char c = u[i];
                size_t l;

                if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
                        i++;
                        run++;
                        continue;
                }
                buf_put(b, s + i - run, run);
                run = 0;
                if (c >= 0x80 && (l = utf8_len(u + i, n - i))) {
                        buf_put(b, s + i, l);
                        i += l;
                        continue;
                }
                switch (c) {
                case '"': buf_put(b, "\\\"", 2); break;
                case '\\': buf_put(b, "\\\\", 2); break;
                case '\n': buf_put(b, "\\n", 2); break;
                case '\t': buf_put(b, "\\t", 2); break;
                case '\r': buf_put(b, "\\r", 2); break;
                default: {
                        char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

                        buf_put(b, e, 6);
                }
                }
                i++;
        }
        buf_put(b, s + i - run, run);
        buf_putc(b, '"');
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

#define LIT(b, s) buf_put(b, s, sizeof(s) - 1)

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

void format_retval(struct buf *b, const struct probe *p, const struct ut_event *e)
{
        uint64_t rv = ut_cast(e->retval, p->retval_cast);

        if (p->retval_cast && !(p->retval_cast & UT_CAST_SIGNED))
                buf_u64(b, rv);
        else
                buf_s64(b, (int64_t)rv);
}

bool format_integer(struct buf *b, const struct probe *p, const struct event_view *v,
                    const struct probe_field *f)
{
        if (f->is_str || f->index >= v->e->nvals)
                return false;
        if (probe_value_signed(p, f->index, v->loc))
                buf_s64(b, (int64_t)v->vals[f->index]);
        else
                buf_u64(b, v->vals[f->index]);
        return true;
}

bool format_event(struct buf *b, const struct probe *p, const void *rec, size_t size,
                  uint64_t realtime_offset)
{
        struct event_view v;
        const struct ut_event *e;
        const struct ut_str *const *strs;
        const struct ut_str *str;
        size_t start = b->len;
        bool first = true;

        if (!format_decode(p, rec, size, &v))
                return false;
        e = v.e;
        strs = v.strs;

        LIT(b, "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"probe\":");
        buf_u64(b, p->id);
        LIT(b, ",\"ts\":");
        buf_u64(b, e->ts + realtime_offset);
        LIT(b, ",\"pid\":");
        buf_u64(b, e->pid);
        LIT(b, ",\"tid\":");
        buf_u64(b, e->tid);
        LIT(b, ",\"uid\":");
        buf_u64(b, e->uid);
        LIT(b, ",\"comm\":");
        buf_json_str(b, e->comm, strnlen(e->comm, sizeof(e->comm)));
        if (format_location(p, &v)) {
                LIT(b, ",\"location\":");
                buf_json_str(b, v.loc->name, strlen(v.loc->name));
        }
        if (e->flags & UT_EV_RETURN) {
                LIT(b, ",\"retval\":");
                format_retval(b, p, e);
        }
        if (e->flags & UT_EV_LATENCY) {
                LIT(b, ",\"latency_ns\":");
                buf_u64(b, e->latency_ns);
        }
        LIT(b, ",\"args\":{");
        for (int i = 0; i < p->nfields; i++) {
                const struct probe_field *f = &p->fields[i];

                if (f->hidden)
                        continue;
                if (!first)
                        buf_putc(b, ',');
                first = false;
                buf_json_str(b, f->name, strlen(f->name));
                buf_putc(b, ':');
                if (!f->is_str) {
                        if (!format_integer(b, p, &v, f))
                                LIT(b, "null");
                        continue;
                }
                str = format_string(&v, f);
                if (!str)
                        LIT(b, "null");
                else
                        buf_json_str(b, (const char *)(str + 1), str->len);
        }
        buf_putc(b, '}');
        /* strings that could not be read, or were cut, are named, never silent */
        for (int pass = 0; pass < 2; pass++) {
                const uint8_t flag = pass ? UT_STR_TRUNCATED : UT_STR_FAULT;
                bool any = false;

                for (int i = 0; i < p->nfields; i++) {
                        const struct probe_field *f = &p->fields[i];

                        if (f->hidden || !f->is_str || f->index >= UT_MAX_STRS ||
                            !strs[f->index] || !(strs[f->index]->flags & flag))
                                continue;
                        if (!any)
                                buf_puts(b, pass ? ",\"truncated\":[" : ",\"unreadable\":[");
                        else
                                buf_putc(b, ',');
                        any = true;
                        buf_json_str(b, f->name, strlen(f->name));
                }
                if (any)
                        buf_putc(b, ']');
        }
        LIT(b, "}}\n");
        if (b->oom) {
                b->len = start;
                return false;
        }
        return true;
}
