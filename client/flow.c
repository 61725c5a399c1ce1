// SPDX-License-Identifier: GPL-2.0-only
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow.h"

#define EVENT_PREFIX "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":"

/*
 * The calls of one thread whose entries were seen, innermost last, as hashes
 * of their names: a return pairs with the innermost call when the names agree.
 * A return that does not pair is of a call whose entry was not seen (it began
 * before we attached, or the interpreter did not report it): it is shown one
 * level inside the innermost call and leaves the stack as it is.
 */
struct thread {
        int64_t tid; /* 0: free slot */
        uint64_t *calls;
        size_t depth, cap;
};

struct flow {
        uint64_t entry, ret;
        char *pattern;
        bool json;
        struct thread *threads; /* open addressing by tid */
        size_t cap, used;
        uint64_t entries, unpaired; /* calls seen; returns of calls not seen */
        bool warned;
};

/* Returns of calls not seen, with no call seen at all, before we say why. */
#define FLOW_UNPAIRED_NOTE 64

struct flow *flow_new(uint64_t entry_probe, uint64_t return_probe, const char *pattern, bool json)
{
        struct flow *f = calloc(1, sizeof(*f));

        if (!f)
                return NULL;
        f->entry = entry_probe;
        f->ret = return_probe;
        f->json = json;
        f->cap = 64;
        f->threads = calloc(f->cap, sizeof(*f->threads));
        f->pattern = pattern ? strdup(pattern) : NULL;
        if (!f->threads || (pattern && !f->pattern)) {
                flow_free(f);
                return NULL;
        }
        return f;
}

void flow_free(struct flow *f)
{
        if (!f)
                return;
        for (size_t i = 0; f->threads && i < f->cap; i++)
                free(f->threads[i].calls);
        free(f->threads);
        free(f->pattern);
        free(f);
}

static struct thread *slot(struct thread *t, size_t cap, int64_t tid)
{
        size_t i = (size_t)tid * 2654435761u & (cap - 1);

        while (t[i].tid && t[i].tid != tid)
                i = (i + 1) & (cap - 1);
        return &t[i];
}

/* The thread tid; NULL when out of memory. */
static struct thread *thread(struct flow *f, int64_t tid)
{
        struct thread *t;

        if (2 * (f->used + 1) > f->cap) {
                size_t cap = 2 * f->cap;
                struct thread *n = calloc(cap, sizeof(*n));

                if (!n)
                        return NULL;
                for (size_t i = 0; i < f->cap; i++)
                        if (f->threads[i].tid)
                                *slot(n, cap, f->threads[i].tid) = f->threads[i];
                free(f->threads);
                f->threads = n;
                f->cap = cap;
        }
        t = slot(f->threads, f->cap, tid);
        if (!t->tid) {
                t->tid = tid;
                f->used++;
        }
        return t;
}

static uint64_t name_hash(const char *s)
{
        uint64_t h = 14695981039346656037ULL; /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

/* Depth at which the call or return of a function is shown; updates the stack. */
static int step(struct flow *f, struct thread *t, const char *file, const char *func, bool entry)
{
        uint64_t h = name_hash(func) ^ (name_hash(file) * 31);

        if (entry) {
                if (t->depth == t->cap) {
                        size_t cap = t->cap ? 2 * t->cap : 16;
                        uint64_t *c = realloc(t->calls, cap * sizeof(*c));

                        if (!c)
                                return (int)t->depth; /* shown, not tracked */
                        t->calls = c;
                        t->cap = cap;
                }
                t->calls[t->depth] = h;
                f->entries++;
                return (int)t->depth++;
        }
        if (t->depth && t->calls[t->depth - 1] == h)
                return (int)--t->depth;
        f->unpaired++;
        return (int)t->depth;
}

/* A source file's module: its base name without ".py"; a package's __init__.py is the package. */
static void module_name(const char *file, char *buf, size_t size)
{
        const char *base = strrchr(file, '/');
        size_t len;

        base = base ? base + 1 : file;
        if (strcmp(base, "__init__.py") == 0 && base > file + 1) {
                const char *end = base - 1, *start = end;

                while (start > file && start[-1] != '/')
                        start--;
                snprintf(buf, size, "%.*s", (int)(end - start), start);
                return;
        }
        len = strlen(base);
        if (len > 3 && strcmp(base + len - 3, ".py") == 0)
                len -= 3;
        snprintf(buf, size, "%.*s", (int)len, base);
}

static const char *str_arg(json_object *args, const char *key)
{
        json_object *v;

        if (!json_object_object_get_ex(args, key, &v) || !json_object_is_type(v, json_type_string))
                return "?"; /* unreadable: the daemon says which in "unreadable" */
        return json_object_get_string(v);
}

void flow_header(FILE *out)
{
        fprintf(out, "%-15s %-15s %s\n", "TIME", "PID/TID", "CALL");
}

bool flow_message(struct flow *f, FILE *out, const char *line, size_t len)
{
        static const size_t plen = sizeof(EVENT_PREFIX) - 1;
        json_object *msg, *p, *v, *args;
        char module[256], name[512], when[32], who[48];
        uint64_t probe, ts;
        int64_t tid, pid;
        bool entry, shown = false;
        struct thread *t;
        int depth;
        struct tm tm;
        time_t sec;

        if (len <= plen + 1 || memcmp(line, EVENT_PREFIX, plen) != 0)
                return false; /* not an event */
        msg = json_tokener_parse(line);
        if (!msg)
                return false;
        if (!json_object_object_get_ex(msg, "params", &p) ||
            !json_object_object_get_ex(p, "probe", &v))
                goto out;
        probe = json_object_get_uint64(v);
        if (probe != f->entry && probe != f->ret)
                goto out;
        entry = probe == f->entry;
        json_object_object_get_ex(p, "args", &args);
        module_name(str_arg(args, "file"), module, sizeof(module));
        snprintf(name, sizeof(name), "%s.%s", module, str_arg(args, "func"));
        json_object_object_get_ex(p, "tid", &v);
        tid = json_object_get_int64(v);
        json_object_object_get_ex(p, "pid", &v);
        pid = json_object_get_int64(v);
        t = thread(f, tid);
        if (!t)
                goto out;
        depth = step(f, t, str_arg(args, "file"), str_arg(args, "func"), entry);
        if (!f->warned && !f->entries && f->unpaired >= FLOW_UNPAIRED_NOTE) {
                f->warned = true;
                fflush(out);
                fprintf(stderr, "utracectl: note: returns arrive without their calls: CPython "
                        "3.11 reports function__entry only while a profiler or tracer is set "
                        "in the process; returns are shown inside the innermost call seen\n");
        }
        if (f->pattern && fnmatch(f->pattern, name, 0) != 0)
                goto out;
        shown = true;
        if (f->json) {
                fwrite(line + plen, 1, len - plen - 1, out);
                fputc('\n', out);
                goto out;
        }
        json_object_object_get_ex(p, "ts", &v);
        ts = json_object_get_uint64(v);
        sec = (time_t)(ts / 1000000000ULL);
        localtime_r(&sec, &tm);
        strftime(when, sizeof(when), "%H:%M:%S", &tm);
        snprintf(who, sizeof(who), "%lld/%lld", (long long)pid, (long long)tid);
        fprintf(out, "%s.%06llu %-15s %*s%s %s\n", when,
                (unsigned long long)(ts % 1000000000ULL) / 1000, who, 2 * depth, "",
                entry ? "->" : "<-", name);
out:
        json_object_put(msg);
        return shown;
}
