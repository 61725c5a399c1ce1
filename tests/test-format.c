// SPDX-License-Identifier: GPL-2.0-only
#include "format.h"
#include "probe.h"
#include "tap.h"

static void json_str(const char *in, size_t n, const char *want, const char *what)
{
        struct buf b = { 0 };

        buf_json_str(&b, in, n);
        buf_putc(&b, 0);
        CHECK_STR(b.data, want, what);
        buf_free(&b);
}

static size_t put_str(char *rec, size_t off, int slot, const char *s, uint8_t flags)
{
        struct ut_str h = { .len = (uint16_t)strlen(s), .flags = flags, .slot = (uint8_t)slot };

        memcpy(rec + off, &h, sizeof(h));
        memcpy(rec + off + sizeof(h), s, h.len);
        return off + sizeof(h) + ((h.len + 3u) & ~3u);
}

/* Integers at every digit-count boundary, against printf. */
static void numbers(void)
{
        uint64_t u[] = { 0, 9, 10, 99, 100, 999, 1000, 99999999, 100000000, 100000001,
                         9999999999999999999ULL, 10000000000000000000ULL, UINT64_MAX };
        int64_t s[] = { 0, -1, -10, INT64_MIN, INT64_MAX };
        bool ok = true;
        char want[32];

        for (size_t i = 0; i < ARRAY_SIZE(u); i++) {
                struct buf b = { 0 };

                buf_u64(&b, u[i]);
                buf_putc(&b, 0);
                snprintf(want, sizeof(want), "%llu", (unsigned long long)u[i]);
                if (strcmp(b.data, want) != 0) {
                        printf("# %s != %s\n", b.data, want);
                        ok = false;
                }
                buf_free(&b);
        }
        for (size_t i = 0; i < ARRAY_SIZE(s); i++) {
                struct buf b = { 0 };

                buf_s64(&b, s[i]);
                buf_putc(&b, 0);
                snprintf(want, sizeof(want), "%lld", (long long)s[i]);
                if (strcmp(b.data, want) != 0) {
                        printf("# %s != %s\n", b.data, want);
                        ok = false;
                }
                buf_free(&b);
        }
        CHECK(ok, "integers at every digit-count boundary");
}

int main(void)
{
        struct probe p = { 0 };
        char rec[512] = { 0 };
        struct ut_event *e = (void *)rec;
        __u64 *vals = (void *)(rec + sizeof(*e));
        struct buf b = { 0 };
        size_t off;
        bool ok;

        numbers();
        json_str("plain", 5, "\"plain\"", "plain string");
        json_str("a\"b\\c\n", 6, "\"a\\\"b\\\\c\\n\"", "escapes");
        json_str("\x01", 1, "\"\\u0001\"", "control character");
        json_str("caf\xc3\xa9", 5, "\"caf\xc3\xa9\"", "valid UTF-8 passes");
        json_str("\xff\xfe", 2, "\"\\u00ff\\u00fe\"", "invalid bytes are escaped");
        json_str("\xc3", 1, "\"\\u00c3\"", "truncated sequence is escaped");
        json_str("\xed\xa0\x80", 3, "\"\\u00ed\\u00a0\\u0080\"", "surrogates are invalid");

        p.id = 7;
        p.spec.type = PROBE_UPROBE;
        p.nfields = 4;
        p.fields[0] = (struct probe_field){ .name = "a", .index = 0 };
        p.fields[1] = (struct probe_field){ .name = "neg", .index = 1 };
        p.cfg.nvals = 2;
        p.cfg.vals[1].cast = 8 | UT_CAST_SIGNED; /* (s64) */
        p.fields[2] = (struct probe_field){ .name = "host", .index = 0, .is_str = true };
        p.fields[3] = (struct probe_field){ .name = "path", .index = 1, .is_str = true };
        e->probe = 3;
        e->ts = 1000;
        e->pid = 10;
        e->tid = 11;
        e->uid = 1000;
        e->nvals = 2;
        e->nstrs = 2;
        memcpy(e->comm, "getent", 7);
        vals[0] = 42;
        vals[1] = (__u64)-5;
        off = sizeof(*e) + 16;
        off = put_str(rec, off, 0, "localhost", 0);
        off = put_str(rec, off, 1, "/very/long/pa", UT_STR_TRUNCATED);
        e->size = (uint16_t)off;
        ok = format_event(&b, &p, rec, off, 5);
        buf_putc(&b, 0);
        CHECK(ok, "event formats");
        CHECK_STR(b.data,
                  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"probe\":7,\"ts\":1005,"
                  "\"pid\":10,\"tid\":11,\"uid\":1000,\"comm\":\"getent\",\"args\":{\"a\":42,"
                  "\"neg\":-5,\"host\":\"localhost\",\"path\":\"/very/long/pa\"},"
                  "\"truncated\":[\"path\"]}}\n",
                  "event JSON");

        /* an unreadable string is null and named, a return carries retval */
        buf_reset(&b);
        off = sizeof(*e) + 16;
        off = put_str(rec, off, 0, "", UT_STR_FAULT);
        off = put_str(rec, off, 1, "x", 0);
        e->size = (uint16_t)off;
        e->flags = UT_EV_RETURN | UT_EV_LATENCY;
        e->retval = -2;
        e->latency_ns = 1500;
        ok = format_event(&b, &p, rec, off, 0);
        buf_putc(&b, 0);
        CHECK(ok && strstr(b.data, "\"host\":null") && strstr(b.data, "\"unreadable\":[\"host\"]") &&
                      strstr(b.data, "\"retval\":-2,\"latency_ns\":1500"),
              "unreadable string and return fields: %s", b.data);

        /* malformed records are refused, never read past their end */
        buf_reset(&b);
        e->size = (uint16_t)(off + 100);
        CHECK(!format_event(&b, &p, rec, off, 0), "size beyond the record");
        e->size = (uint16_t)off;
        e->nstrs = 3;
        CHECK(!format_event(&b, &p, rec, off, 0), "more strings than bytes");
        e->nstrs = 2;
        CHECK(!format_event(&b, &p, rec, sizeof(*e) - 1, 0), "short record");
        e->nvals = 200;
        CHECK(!format_event(&b, &p, rec, off, 0), "absurd value count");
        buf_free(&b);
        return tap_done();
}
