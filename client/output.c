// SPDX-License-Identifier: GPL-2.0-only
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "output.h"

static json_object *get(json_object *o, const char *key)
{
        json_object *v = NULL;

        json_object_object_get_ex(o, key, &v);
        return v;
}

static long long get_int(json_object *o, const char *key)
{
        return (long long)json_object_get_int64(get(o, key));
}

static unsigned long long get_u64(json_object *o, const char *key)
{
        return (unsigned long long)json_object_get_uint64(get(o, key));
}

static const char *get_str(json_object *o, const char *key)
{
        json_object *v = get(o, key);

        return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

void output_duration(char *buf, size_t size, unsigned long long ns)
{
        if (ns < 10000)
                snprintf(buf, size, "%lluns", ns);
        else if (ns < 10000000)
                snprintf(buf, size, "%.2fus", ns / 1e3);
        else if (ns < 10000000000ULL)
                snprintf(buf, size, "%.2fms", ns / 1e6);
        else
                snprintf(buf, size, "%.2fs", ns / 1e9);
}

/* A value as the user would write it: strings quoted, null as <unreadable>. */
static void put_value(FILE *f, json_object *v)
{
        if (!v) {
                fputs("<unreadable>", f);
                return;
        }
        if (json_object_is_type(v, json_type_string))
                fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE), f);
        else
                fputs(json_object_to_json_string(v), f);
}

void output_event(FILE *f, json_object *p)
{
        unsigned long long ts = get_u64(p, "ts");
        time_t sec = (time_t)(ts / 1000000000ULL);
        struct tm tm;
        char when[32], dur[32];
        json_object *args = get(p, "args"), *v;
        const char *loc = get_str(p, "location");

        localtime_r(&sec, &tm);
        strftime(when, sizeof(when), "%H:%M:%S", &tm);
        fprintf(f, "%s.%06llu %3lld %-15s %lld/%lld", when, (ts % 1000000000ULL) / 1000,
                get_int(p, "probe"), get_str(p, "comm") ? get_str(p, "comm") : "?",
                get_int(p, "pid"), get_int(p, "tid"));
        if (loc)
                fprintf(f, " %s", loc);
        if (args) {
                json_object_object_foreach(args, k, val) {
                        fprintf(f, " %s=", k);
                        put_value(f, val);
                }
        }
        if ((v = get(p, "retval")))
                fprintf(f, " retval=%s", json_object_to_json_string(v));
        if ((v = get(p, "latency_ns"))) {
                output_duration(dur, sizeof(dur), (unsigned long long)json_object_get_int64(v));
                fprintf(f, " latency=%s", dur);
        }
        if ((v = get(p, "truncated")))
                fprintf(f, " (truncated: %s)", json_object_to_json_string(v));
        fputc('\n', f);
}

void output_probe_list(FILE *f, json_object *probes)
{
        size_t n = json_object_array_length(probes);

        if (!n) {
                fprintf(f, "no probes\n");
                return;
        }
        fprintf(f, "%4s  %-6s  %-5s  %-7s  %s\n", "ID", "MODE", "LOCS", "PID", "SPEC");
        for (size_t i = 0; i < n; i++) {
                json_object *p = json_object_array_get_idx(probes, i);
                json_object *files = get(p, "files");
                long long pid = get_int(p, "pid");
                char pidbuf[16];
                const char *filter = get_str(p, "filter");

                snprintf(pidbuf, sizeof(pidbuf), "%lld", pid);
                fprintf(f, "%4lld  %-6s  %5llu  %-7s  %s", get_int(p, "id"), get_str(p, "mode"),
                        get_u64(p, "locations"), pid ? pidbuf : "all", get_str(p, "spec"));
                if (json_object_get_boolean(get(p, "latency")))
                        fputs(" --latency", f);
                if (filter)
                        fprintf(f, " --filter '%s'", filter);
                if (json_object_get_boolean(get(p, "transient")))
                        fputs(" (transient)", f);
                if (get_str(p, "config"))
                        fprintf(f, " (configured: %s)", get_str(p, "config"));
                if (json_object_get_boolean(get(p, "watch")))
                        fputs(" (watched)", f);
                fputc('\n', f);
                for (size_t k = 0; files && k < json_object_array_length(files); k++) {
                        json_object *file = json_object_array_get_idx(files, k);
                        json_object *pids = get(file, "pids");
                        size_t np = pids ? json_object_array_length(pids) : 0;

                        fprintf(f, "      %s (%zu location%s", get_str(file, "path"),
                                json_object_array_length(get(file, "locations")),
                                json_object_array_length(get(file, "locations")) == 1 ? "" : "s");
                        if (pids)
                                fprintf(f, "; %zu process%s", np, np == 1 ? "" : "es");
                        for (size_t j = 0; j < np && j < 8; j++)
                                fprintf(f, "%s%d", j ? " " : ": ",
                                        json_object_get_int(json_object_array_get_idx(pids, j)));
                        fputs(np > 8 ? " ...)\n" : ")\n", f);
                }
        }
}

void output_stats(FILE *f, json_object *r)
{
        json_object *probes = get(r, "probes"), *clients = get(r, "clients");

        fprintf(f, "%4s  %12s  %12s  %12s  %12s  %10s\n", "ID", "HITS", "EVENTS", "AGGREGATED",
                "FILTERED", "LOST");
        for (size_t i = 0; probes && i < json_object_array_length(probes); i++) {
                json_object *p = json_object_array_get_idx(probes, i);

                fprintf(f, "%4lld  %12llu  %12llu  %12llu  %12llu  %10llu\n", get_int(p, "id"),
                        get_u64(p, "hits"), get_u64(p, "events"), get_u64(p, "aggregated"),
                        get_u64(p, "filtered"), get_u64(p, "lost"));
        }
        if (!clients || !json_object_array_length(clients))
                return;
        fprintf(f, "\n%6s  %8s  %6s  %12s  %10s\n", "CLIENT", "PID", "SUBS", "DELIVERED", "DROPPED");
        for (size_t i = 0; i < json_object_array_length(clients); i++) {
                json_object *c = json_object_array_get_idx(clients, i);

                fprintf(f, "%6lld  %8lld  %6s  %12llu  %10llu\n", get_int(c, "id"), get_int(c, "pid"),
                        json_object_get_boolean(get(c, "subscribed")) ? "yes" : "no",
                        get_u64(c, "delivered"), get_u64(c, "dropped"));
        }
}

static void key_text(json_object *k, char *buf, size_t size)
{
        json_object *key = get(k, "key");

        if (json_object_get_boolean(get(k, "overflow")))
                snprintf(buf, size, "[<other keys>]");
        else if (!key)
                buf[0] = 0;
        else if (json_object_is_type(key, json_type_string))
                snprintf(buf, size, "[%s]", json_object_get_string(key));
        else
                snprintf(buf, size, "[%s]", json_object_to_json_string(key));
}

/* 1K, 4M: a bucket bound the way bpftrace writes it. */
static void bound(char *buf, size_t size, unsigned long long v)
{
        static const char *const units[] = { "", "K", "M", "G", "T", "P", "E" };
        int u = 0;

        while (v >= 1024 && v % 1024 == 0 && u < 6) {
                v /= 1024;
                u++;
        }
        snprintf(buf, size, "%llu%s", v, units[u]);
}

/* A log2 histogram the way bpftrace prints hist(). */
static void print_hist(FILE *f, json_object *buckets)
{
        unsigned long long max = 0;
        size_t n = json_object_array_length(buckets);

        for (size_t i = 0; i < n; i++) {
                unsigned long long c = get_u64(json_object_array_get_idx(buckets, i), "count");

                if (c > max)
                        max = c;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *b = json_object_array_get_idx(buckets, i);
                unsigned long long lo = get_u64(b, "min"), hi = get_u64(b, "max"), c = get_u64(b, "count");
                char l[32], h[32], range[80], bar[53];
                int w = max ? (int)(c * 52 / max) : 0;

                bound(l, sizeof(l), lo);
                bound(h, sizeof(h), hi + 1);
                if (get_int(b, "min") < 0)
                        snprintf(range, sizeof(range), "(..., 0)");
                else if (lo == hi)
                        snprintf(range, sizeof(range), "[%s]", l);
                else if (hi == UINT64_MAX)
                        snprintf(range, sizeof(range), "[%s, ...)", l);
                else
                        snprintf(range, sizeof(range), "[%s, %s)", l, h);
                memset(bar, '@', w);
                bar[w] = 0;
                fprintf(f, "%-20s %8llu |%-52s|\n", range, c, bar);
        }
}

/* The daemon lists the biggest first; printed the other way round, as
 * bpftrace does, the biggest end up next to the prompt. The overflow key
 * stays last. */
void output_aggregations(FILE *f, json_object *r)
{
        json_object *keys = get(r, "keys");
        const char *mode = get_str(r, "mode");
        const char *value = get_str(r, "value");
        const char *by = get_str(r, "by");
        bool hist = mode && strcmp(mode, "hist") == 0;
        size_t n = keys ? json_object_array_length(keys) : 0, m = n;

        if (!n) {
                fprintf(f, "no hits yet\n");
                return;
        }
        if (m && json_object_get_boolean(get(json_object_array_get_idx(keys, n - 1), "overflow")))
                m--;
        if (hist)
                fprintf(f, "hist(%s)", value ? value : "");
        else
                fputs("count", f);
        fprintf(f, "%s%s:\n", by ? " by " : "", by ? by : "");
        for (size_t j = 0; j < n; j++) {
                size_t i = j < m ? m - 1 - j : j;
                json_object *k = json_object_array_get_idx(keys, i), *sum = get(k, "sum");
                unsigned long long count = get_u64(k, "count");
                char kt[256];

                key_text(k, kt, sizeof(kt));
                if (!hist) {
                        fprintf(f, "@%s: %llu\n", kt, count);
                        continue;
                }
                fprintf(f, "%s@%s: count %llu, average ", j ? "\n" : "", kt, count);
                if (!count) {
                        fputs("-\n", f); /* a key being created this instant */
                } else if (json_object_get_int64(sum) < 0) {
                        fprintf(f, "%lld\n", (long long)json_object_get_int64(sum) / (long long)count);
                } else if (value && strcmp(value, "latency_ns") == 0) {
                        char avg[32];

                        output_duration(avg, sizeof(avg), json_object_get_uint64(sum) / count);
                        fprintf(f, "%s\n", avg);
                } else {
                        fprintf(f, "%llu\n", (unsigned long long)json_object_get_uint64(sum) / count);
                }
                print_hist(f, get(k, "buckets"));
        }
}

void output_status(FILE *f, json_object *r)
{
        json_object *rb = get(r, "ringbuf"), *ev = get(r, "events");
        char up[32];

        output_duration(up, sizeof(up), get_u64(r, "uptime_ns"));
        fprintf(f, "utraced %s, pid %lld, up %s\n", get_str(r, "version"), get_int(r, "pid"), up);
        fprintf(f, "socket:      %s\n", get_str(r, "socket"));
        fprintf(f, "probes:      %llu\n", get_u64(r, "probes"));
        fprintf(f, "clients:     %llu (%llu subscribed)\n", get_u64(r, "clients"),
                get_u64(r, "subscribers"));
        fprintf(f, "links:       %s\n", json_object_get_boolean(get(r, "uprobe_multi"))
                                                ? "uprobe_multi" : "perf-event");
        if (rb)
                fprintf(f, "ring buffer: %llu bytes, %llu pending\n", get_u64(rb, "size"),
                        get_u64(rb, "pending"));
        if (ev)
                fprintf(f, "events:      %llu read, %llu without subscriber, %llu stale\n",
                        get_u64(ev, "read"), get_u64(ev, "unclaimed"), get_u64(ev, "stale"));
}

static void print_usdt_location(FILE *f, json_object *loc)
{
        json_object *args = get(loc, "args"), *sema = get(loc, "semaphore");
        const char *err = get_str(loc, "error");

        fprintf(f, "    location 0x%llx (file offset 0x%llx)", get_u64(loc, "address"),
                get_u64(loc, "offset"));
        if (sema)
                fprintf(f, " semaphore 0x%llx", (unsigned long long)json_object_get_uint64(sema));
        fputc('\n', f);
        for (size_t i = 0; args && i < json_object_array_length(args); i++) {
                json_object *a = json_object_array_get_idx(args, i);

                fprintf(f, "      arg%zu  %lld bytes %-8s %s\n", i, get_int(a, "size"),
                        json_object_get_boolean(get(a, "signed")) ? "signed" : "unsigned",
                        get_str(a, "location"));
        }
        if (err)
                fprintf(f, "      cannot be attached: %s\n", err);
}

static size_t print_usdt(FILE *f, json_object *probes, bool verbose)
{
        size_t n = probes ? json_object_array_length(probes) : 0;

        if (n && !verbose)
                fprintf(f, "  %-40s %5s %5s  %s\n", "PROBE", "LOCS", "ARGS", "SEMAPHORE");
        for (size_t i = 0; i < n; i++) {
                json_object *p = json_object_array_get_idx(probes, i);
                json_object *locs = get(p, "locations"), *sema = get(p, "semaphore");
                size_t nlocs = json_object_array_length(locs);
                char name[256], sem[32] = "-";

                snprintf(name, sizeof(name), "%s:%s", get_str(p, "provider"), get_str(p, "name"));
                if (sema)
                        snprintf(sem, sizeof(sem), "0x%llx",
                                 (unsigned long long)json_object_get_uint64(sema));
                if (!verbose) {
                        json_object *args = get(json_object_array_get_idx(locs, 0), "args");

                        fprintf(f, "  %-40s %5zu %5zu  %s\n", name, nlocs,
                                args ? json_object_array_length(args) : 0, sem);
                        continue;
                }
                fprintf(f, "  %s  (%zu location%s%s%s)\n", name, nlocs, nlocs == 1 ? "" : "s",
                        sema ? ", semaphore " : "", sema ? sem : "");
                for (size_t k = 0; k < nlocs; k++)
                        print_usdt_location(f, json_object_array_get_idx(locs, k));
        }
        return n;
}

static size_t print_symbols(FILE *f, json_object *syms)
{
        size_t n = syms ? json_object_array_length(syms) : 0;

        if (n)
                fprintf(f, "  %-18s %8s  %s\n", "ADDRESS", "SIZE", "NAME");
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_array_get_idx(syms, i);

                fprintf(f, "  0x%016llx %8llu  %s%s\n", get_u64(s, "address"), get_u64(s, "size"),
                        get_str(s, "name"),
                        json_object_get_boolean(get(s, "ifunc")) ? " (ifunc)" : "");
        }
        return n;
}

size_t output_probes(FILE *f, json_object *r, bool verbose)
{
        json_object *objects = get(r, "objects");
        size_t total = 0;

        for (size_t i = 0; objects && i < json_object_array_length(objects); i++) {
                json_object *o = json_object_array_get_idx(objects, i);
                json_object *usdt = get(o, "usdt"), *syms = get(o, "symbols");

                if ((!usdt || !json_object_array_length(usdt)) &&
                    (!syms || !json_object_array_length(syms)))
                        continue;
                fprintf(f, "%s\n", get_str(o, "path") ? get_str(o, "path") : "?");
                total += usdt ? print_usdt(f, usdt, verbose) : print_symbols(f, syms);
        }
        return total;
}
