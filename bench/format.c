// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench-format: nanoseconds per event of the JSON writer (daemon/format.c),
 * next to json-c building and printing the same notification (the baseline:
 * what a document-per-event daemon would do). Output, one line per case:
 *
 *   CASE writer_ns JSONC_NS bytes BYTES
 *
 * Cases: "2int" (two integer arguments, as the streaming benchmark) and
 * "6field" (four integers and two strings), each on top of the fixed header
 * (probe, ts, pid, tid, uid, comm). The best of ROUNDS rounds of N events is
 * reported, which is what a quiet machine would show.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format.h"
#include "probe.h"

static uint64_t now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static size_t put_str(char *rec, size_t off, int slot, const char *s)
{
        struct ut_str h = { .len = (uint16_t)strlen(s), .slot = (uint8_t)slot };

        memcpy(rec + off, &h, sizeof(h));
        memcpy(rec + off + sizeof(h), s, h.len);
        return off + sizeof(h) + ((h.len + 3u) & ~3u);
}

static json_object *jsonc_event(const struct probe *p, const struct ut_event *e)
{
        const __u64 *vals = (const __u64 *)(e + 1);
        const struct ut_str *s0 = (const void *)((const char *)(e + 1) + 8 * e->nvals);
        json_object *o = json_object_new_object(), *params = json_object_new_object();
        json_object *args = json_object_new_object();
        int nstr = 0;

        json_object_object_add(o, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(o, "method", json_object_new_string("event"));
        json_object_object_add(params, "probe", json_object_new_int64((int64_t)p->id));
        json_object_object_add(params, "ts", json_object_new_uint64(e->ts));
        json_object_object_add(params, "pid", json_object_new_int64(e->pid));
        json_object_object_add(params, "tid", json_object_new_int64(e->tid));
        json_object_object_add(params, "uid", json_object_new_int64(e->uid));
        json_object_object_add(params, "comm", json_object_new_string(e->comm));
        for (int i = 0; i < p->nfields; i++) {
                const struct probe_field *f = &p->fields[i];

                if (!f->is_str) {
                        json_object_object_add(args, f->name, json_object_new_uint64(vals[f->index]));
                } else {
                        const struct ut_str *s = s0;

                        for (int k = 0; k < nstr; k++)
                                s = (const void *)((const char *)(s + 1) + ((s->len + 3u) & ~3u));
                        json_object_object_add(args, f->name,
                                               json_object_new_string_len((const char *)(s + 1), s->len));
                        nstr++;
                }
        }
        json_object_object_add(params, "args", args);
        json_object_object_add(o, "params", params);
        return o;
}

static bool with_jsonc = true;

static void run(const char *name, const struct probe *p, const char *rec, size_t size, long n,
                int rounds)
{
        const struct ut_event *e = (const void *)rec;
        struct buf b = { 0 };
        uint64_t best_w = UINT64_MAX, best_j = UINT64_MAX;
        size_t bytes = 0, sink = 0;

        for (int r = 0; r < rounds; r++) {
                uint64_t t0 = now();

                for (long i = 0; i < n; i++) {
                        buf_reset(&b);
                        if (!format_event(&b, p, rec, size, 1700000000000000000ULL)) {
                                fprintf(stderr, "bench-format: the event does not format\n");
                                exit(1);
                        }
                }
                t0 = now() - t0;
                best_w = t0 < best_w ? t0 : best_w;
                bytes = b.len;
                t0 = now();
                for (long i = 0; i < n / 10 && with_jsonc; i++) {
                        json_object *o = jsonc_event(p, e);

                        sink += strlen(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                        json_object_put(o);
                }
                t0 = now() - t0;
                best_j = t0 < best_j ? t0 : best_j;
        }
        if (!sink && with_jsonc)
                exit(1);
        printf("%s writer_ns %.1f jsonc_ns %.1f bytes %zu\n", name, (double)best_w / n,
               (double)best_j / (n / 10), bytes);
        buf_free(&b);
}

int main(int argc, char **argv)
{
        long n = argc > 1 ? atol(argv[1]) : 1000000;
        int rounds = argc > 2 ? atoi(argv[2]) : 5;
        struct probe p = { 0 };
        char rec[512] = { 0 };
        struct ut_event *e = (void *)rec;
        __u64 *vals = (void *)(rec + sizeof(*e));
        size_t off;

        with_jsonc = argc <= 3; /* a third argument: the writer alone (for profiling) */
        p.id = 12;
        p.spec.type = PROBE_UPROBE;
        e->probe = 3;
        e->ts = 123456789012345ULL;
        e->pid = 48213;
        e->tid = 48215;
        e->uid = 1000;
        memcpy(e->comm, "bench-loop", 11);

        p.nfields = 2;
        p.fields[0] = (struct probe_field){ .name = "a", .index = 0 };
        p.fields[1] = (struct probe_field){ .name = "b", .index = 1 };
        e->nvals = 2;
        vals[0] = 1234567;
        vals[1] = 1234568;
        e->size = sizeof(*e) + 16;
        run("2int", &p, rec, e->size, n, rounds);

        p.nfields = 6;
        p.fields[0] = (struct probe_field){ .name = "fd", .index = 0 };
        p.fields[1] = (struct probe_field){ .name = "len", .index = 1 };
        p.fields[2] = (struct probe_field){ .name = "flags", .index = 2 };
        p.fields[3] = (struct probe_field){ .name = "ret", .index = 3 };
        p.cfg.nvals = 4;
        p.cfg.vals[3].src = UT_SRC_RETVAL; /* signed */
        p.fields[4] = (struct probe_field){ .name = "path", .index = 0, .is_str = true };
        p.fields[5] = (struct probe_field){ .name = "host", .index = 1, .is_str = true };
        e->nvals = 4;
        e->nstrs = 2;
        vals[0] = 7;
        vals[1] = 4096;
        vals[2] = 0x80002;
        vals[3] = (__u64)-11;
        off = sizeof(*e) + 32;
        off = put_str(rec, off, 0, "/etc/nsswitch.conf");
        off = put_str(rec, off, 1, "example.org");
        e->size = (uint16_t)off;
        run("6field", &p, rec, off, n, rounds);
        return 0;
}
