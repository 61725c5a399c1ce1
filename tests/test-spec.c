// SPDX-License-Identifier: GPL-2.0-only
#include "spec.h"
#include "tap.h"
#include "utrace.h"

static void test_probe_specs(void)
{
        struct probe_spec s = { 0 };
        struct error err = { 0 };
        int r;

        r = spec_parse_probe("uprobe:/usr/bin/bash:readline", 0, &s, &err);
        CHECK(r == 0 && s.type == PROBE_UPROBE, "uprobe parses");
        CHECK_STR(s.target, "/usr/bin/bash", "uprobe target");
        CHECK_STR(s.symbol, "readline", "uprobe symbol");
        probe_spec_done(&s);

        r = spec_parse_probe("uprobe:libc.so.6:malloc+4", 0, &s, &err);
        CHECK(r == 0 && s.offset == 4, "symbol+offset");
        CHECK_STR(s.symbol, "malloc", "symbol before +");
        probe_spec_done(&s);

        r = spec_parse_probe("uprobe:/bin/x:0x1234", 0, &s, &err);
        CHECK(r == 0 && s.address == 0x1234 && !s.symbol, "raw address");
        probe_spec_done(&s);

        r = spec_parse_probe("uprobe:/lib/libstdc++.so.6:std::foo::bar", 0, &s, &err);
        CHECK(r == 0, "C++ names keep their colons");
        CHECK_STR(s.symbol, "std::foo::bar", "C++ symbol");
        probe_spec_done(&s);

        r = spec_parse_probe("ur:/bin/x:f", 0, &s, &err);
        CHECK(r == 0 && s.type == PROBE_URETPROBE, "ur: alias");
        probe_spec_done(&s);

        r = spec_parse_probe("usdt:/usr/bin/python3.11:python:function__entry", 0, &s, &err);
        CHECK(r == 0 && s.type == PROBE_USDT, "usdt with provider");
        CHECK_STR(s.provider, "python", "usdt provider");
        CHECK_STR(s.name, "function__entry", "usdt name");
        probe_spec_done(&s);

        r = spec_parse_probe("usdt:python:function__entry", 42, &s, &err);
        CHECK(r == 0 && !s.target, "usdt without target with a pid");
        CHECK_STR(s.provider, "python", "usdt provider, pid form");
        probe_spec_done(&s);

        r = spec_parse_probe("usdt:/bin/x:probe", 0, &s, &err);
        CHECK(r == 0 && !s.provider, "usdt TARGET:NAME");
        CHECK_STR(s.name, "probe", "usdt name only");
        probe_spec_done(&s);

        memset(&err, 0, sizeof(err));
        r = spec_parse_probe("kprobe:do_sys_open", 0, &s, &err);
        CHECK(r < 0 && err.code == E_INVALID_SPEC && strstr(err.msg, "unknown probe type"),
              "kprobe is rejected: %s", err.msg);
        probe_spec_done(&s);

        memset(&err, 0, sizeof(err));
        r = spec_parse_probe("uprobe:/bin/x", 0, &s, &err);
        CHECK(r < 0 && err.code == E_INVALID_SPEC, "missing symbol: %s", err.msg);
        probe_spec_done(&s);

        memset(&err, 0, sizeof(err));
        r = spec_parse_probe("uretprobe:/bin/x:f+4", 0, &s, &err);
        CHECK(r < 0 && strstr(err.msg, "return probe"), "uretprobe with offset: %s", err.msg);
        probe_spec_done(&s);

        memset(&err, 0, sizeof(err));
        r = spec_parse_probe("uprobe:/bin/x:f*+4", 0, &s, &err);
        CHECK(r < 0, "glob with offset: %s", err.msg);
        probe_spec_done(&s);

        memset(&err, 0, sizeof(err));
        r = spec_parse_probe("usdt:probe_only", 0, &s, &err);
        CHECK(r < 0, "usdt without target: %s", err.msg);
        probe_spec_done(&s);
}

static void test_captures(void)
{
        struct capture c;
        struct error err = { 0 };

        CHECK(spec_parse_capture("host=str(arg0)", &c, &err) == 0 && c.ref.is_str &&
                      c.ref.field == FIELD_ARG && c.ref.idx == 0 && streq(c.name, "host"),
              "host=str(arg0)");
        CHECK(spec_parse_capture("str(arg2, 16)", &c, &err) == 0 && c.ref.len == 16 &&
                      c.ref.idx == 2 && streq(c.name, "arg2"),
              "str(arg2, 16) named arg2");
        CHECK(spec_parse_capture("arg11", &c, &err) == 0 && c.ref.idx == 11, "arg11");
        CHECK(spec_parse_capture("rv=retval", &c, &err) == 0 && c.ref.field == FIELD_RETVAL,
              "rv=retval");
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_capture("arg12", &c, &err) < 0, "arg12 is out of range: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_capture("1x=arg0", &c, &err) < 0, "bad name: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_capture("p=pid", &c, &err) < 0, "pid is not capturable: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_capture("s=str(arg0, 0)", &c, &err) < 0, "zero length: %s", err.msg);
}

static void test_filters(void)
{
        struct predicate p[SPEC_MAX_PREDS];
        struct error err = { 0 };
        int n;

        n = spec_parse_filter("arg0 > 10 && comm == \"bash\" && str(arg1) == \"GE*\"", p,
                              SPEC_MAX_PREDS, &err);
        CHECK(n == 3, "three conditions (%d) %s", n, err.msg);
        CHECK(p[0].ref.field == FIELD_ARG && p[0].op == OP_GT && p[0].ival == 10, "arg0 > 10");
        CHECK(p[1].ref.field == FIELD_COMM && p[1].is_str && !p[1].prefix &&
                      streq(p[1].sval, "bash"), "comm == \"bash\"");
        CHECK(p[2].ref.is_str && p[2].prefix && streq(p[2].sval, "GE"), "prefix match");

        n = spec_parse_filter("latency_ns >= 1ms", p, SPEC_MAX_PREDS, &err);
        CHECK(n == 1 && p[0].ival == 1000000 && p[0].op == OP_GE, "duration suffix");
        n = spec_parse_filter("retval != -1", p, SPEC_MAX_PREDS, &err);
        CHECK(n == 1 && p[0].ival == -1 && p[0].op == OP_NE, "negative operand");
        n = spec_parse_filter("str(arg0) == \"a\\\"b\\*\"", p, SPEC_MAX_PREDS, &err);
        CHECK(n == 1 && streq(p[0].sval, "a\"b*") && !p[0].prefix, "escapes, escaped star");
        n = spec_parse_filter("pid==0x10", p, SPEC_MAX_PREDS, &err);
        CHECK(n == 1 && p[0].ival == 16, "hex, no spaces");

        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_filter("arg0 > 1 || arg1 < 2", p, SPEC_MAX_PREDS, &err) < 0,
              "|| is rejected: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_filter("arg0", p, SPEC_MAX_PREDS, &err) < 0, "no operator: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_filter("arg0 > x", p, SPEC_MAX_PREDS, &err) < 0, "bad number: %s",
              err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_filter("comm == \"abc", p, SPEC_MAX_PREDS, &err) < 0,
              "unterminated string: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_filter("comm < \"abc\"", p, SPEC_MAX_PREDS, &err) < 0,
              "string ordering: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_filter("arg0 > 1 &&", p, SPEC_MAX_PREDS, &err) < 0, "dangling &&: %s",
              err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_filter("pid == 1 && pid == 2 && pid == 3", p, 2, &err) < 0,
              "too many conditions: %s", err.msg);
}

static void test_aggregate(void)
{
        enum agg_mode m;
        struct fieldref f;
        struct error err = { 0 };

        CHECK(spec_parse_aggregate("count", &m, &f, &err) == 0 && m == AGG_COUNT, "count");
        CHECK(spec_parse_aggregate("hist(latency_ns)", &m, &f, &err) == 0 && m == AGG_HIST &&
                      f.field == FIELD_LATENCY, "hist(latency_ns)");
        CHECK(spec_parse_aggregate("hist(arg2)", &m, &f, &err) == 0 && f.idx == 2, "hist(arg2)");
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_aggregate("hist(comm)", &m, &f, &err) < 0, "hist(comm): %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(spec_parse_aggregate("sum(arg0)", &m, &f, &err) < 0, "sum: %s", err.msg);
}

static void test_casts(void)
{
        struct fieldref f;
        struct capture c;
        struct predicate p[SPEC_MAX_PREDS];
        struct error err = { 0 };
        char buf[64];
        int n;

        CHECK(spec_parse_field("(int)retval", &f, &err) == 0 && f.field == FIELD_RETVAL &&
                      f.cast == (4 | UT_CAST_SIGNED), "(int)retval");
        CHECK(spec_parse_field(" ( unsigned   long ) arg3 ", &f, &err) == 0 && f.field == FIELD_ARG &&
                      f.idx == 3 && f.cast == 8, "(unsigned long) arg3, blanks anywhere");
        CHECK(spec_parse_field("(u8)arg1", &f, &err) == 0 && f.cast == 1, "(u8)arg1");
        CHECK(spec_parse_field("(char)arg1", &f, &err) == 0 && f.cast == (1 | UT_CAST_SIGNED),
              "(char) is signed");
        CHECK(spec_parse_field("(uint16)x", &f, &err) == 0 && f.field == FIELD_NAME && f.cast == 2,
              "a cast of a capture name");
        spec_parse_field("(int32_t)retval", &f, &err);
        spec_format_field(&f, buf, sizeof(buf));
        CHECK_STR(buf, "(s32)retval", "a cast prints with its canonical name");
        for (size_t i = 0; i < 5; i++) {
                static const char *const bad[] = {
                        "(float)arg0", "(int)comm", "(int)str(arg0)", "str((int)arg0)",
                        "(u8)(s8)arg0",
                };

                memset(&err, 0, sizeof(err));
                CHECK(spec_parse_field(bad[i], &f, &err) < 0 && err.code == E_INVALID_SPEC,
                      "%s is refused: %s", bad[i], err.msg);
        }
        CHECK(spec_parse_capture("(int)arg1", &c, &err) == 0 && streq(c.name, "arg1") &&
                      c.ref.cast == (4 | UT_CAST_SIGNED), "a bare cast capture is named arg1");
        CHECK(spec_parse_capture("st=(s16)retval", &c, &err) == 0 && streq(c.name, "st") &&
                      c.ref.cast == (2 | UT_CAST_SIGNED), "st=(s16)retval");
        n = spec_parse_filter("(int)retval < -1 && (u8)arg1 == 255", p, SPEC_MAX_PREDS, &err);
        CHECK(n == 2 && p[0].ref.cast == (4 | UT_CAST_SIGNED) && p[0].negative && p[0].ival == -1 &&
                      p[1].ref.cast == 1 && !p[1].negative, "casts in filters");
        n = spec_parse_filter("arg0 == 0xffffffffffffffff", p, SPEC_MAX_PREDS, &err);
        CHECK(n == 1 && (unsigned long long)p[0].ival == ~0ULL && !p[0].negative,
              "an operand above LLONG_MAX keeps its 64 bits");
        CHECK(ut_cast(0xfffffffeULL, 4 | UT_CAST_SIGNED) == (uint64_t)-2, "ut_cast sign-extends");
        CHECK(ut_cast(0x1ffULL, 1) == 0xff && ut_cast(0x1ffULL, 1 | UT_CAST_SIGNED) == (uint64_t)-1 &&
                      ut_cast(0x12345ULL, 2) == 0x2345 && ut_cast(~0ULL, 0) == ~0ULL,
              "ut_cast narrows");
}

int main(void)
{
        test_probe_specs();
        test_captures();
        test_filters();
        test_aggregate();
        test_casts();
        return tap_done();
}
