// SPDX-License-Identifier: GPL-2.0-only
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "config-build.h"
#include "config.h"
#include "metrics.h"
#include "output.h"
#include "server.h"
#include "util.h"
#include "watch.h"

enum kind { GAUGE, COUNTER, HISTOGRAM, INFO };

struct writer {
        struct buf *b;
        enum metrics_format fmt;
};

/* One key of an aggregation: its label and its value. */
struct series {
        char *label; /* ,comm="bash" or ,overflow="true"; "" without a key */
        uint64_t count, sum;
        uint64_t slots[UT_HIST_SLOTS];
};

/* A probe the caller sees, with everything read for it. */
struct probe_view {
        struct probe *p;
        char *labels; /* probe="3",name="dns" */
        struct ut_stats st;
        struct output_counters oc;
        struct series *keys;
        size_t nkeys, keys_cap;
        bool is_signed; /* the histogram's value */
        int first, last; /* the buckets any key uses, in bucket order; -1: none */
};

struct collection {
        struct probe_view *v;
        size_t n;
        int by_slot[UT_MAX_PROBES]; /* index in v, or -1 */
        bool oom;
};

/* --- text ------------------------------------------------------------------ */

void metrics_seconds(struct buf *b, uint64_t ns)
{
        char frac[16];
        int n;

        buf_u64(b, ns / 1000000000);
        if (!(ns % 1000000000))
                return;
        n = snprintf(frac, sizeof(frac), "%09llu", (unsigned long long)(ns % 1000000000));
        while (n > 0 && frac[n - 1] == '0')
                n--;
        buf_putc(b, '.');
        buf_put(b, frac, n);
}

void metrics_label_value(struct buf *b, const char *s, size_t n)
{
        const unsigned char *u = (const unsigned char *)s;
        size_t l;

        for (size_t i = 0; i < n; i += l) {
                l = 1;
                switch (u[i]) {
                case '\\': buf_put(b, "\\\\", 2); continue;
                case '"': buf_put(b, "\\\"", 2); continue;
                case '\n': buf_put(b, "\\n", 2); continue;
                }
                if (u[i] < 0x80) {
                        buf_putc(b, s[i]);
                        continue;
                }
                l = utf8_len(u + i, n - i);
                if (l) {
                        buf_put(b, s + i, l);
                } else {
                        buf_put(b, "\xef\xbf\xbd", 3); /* U+FFFD */
                        l = 1;
                }
        }
}

static void label(struct buf *b, const char *name, const char *value, size_t n)
{
        if (b->len)
                buf_putc(b, ',');
        buf_puts(b, name);
        buf_put(b, "=\"", 2);
        metrics_label_value(b, value, n);
        buf_putc(b, '"');
}

static void label_str(struct buf *b, const char *name, const char *value)
{
        label(b, name, value, strlen(value));
}

static void label_u64(struct buf *b, const char *name, uint64_t v)
{
        char tmp[24];

        label(b, name, tmp, snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v));
}

/* The metadata of a family. A counter's samples end in _total and an info's
 * in _info; the Prometheus format names the family by its samples. */
static void family(struct writer *w, const char *name, enum kind kind, const char *unit,
                   const char *help)
{
        static const char *const types[] = { "gauge", "counter", "histogram", "info" };
        const char *suffix = kind == COUNTER ? "_total" : kind == INFO ? "_info" : "";
        bool om = w->fmt == METRICS_OPENMETRICS;

        buf_puts(w->b, "# HELP ");
        buf_puts(w->b, name);
        if (!om)
                buf_puts(w->b, suffix);
        buf_putc(w->b, ' ');
        buf_puts(w->b, help);
        buf_puts(w->b, "\n# TYPE ");
        buf_puts(w->b, name);
        if (!om)
                buf_puts(w->b, suffix);
        buf_putc(w->b, ' ');
        buf_puts(w->b, kind == INFO && !om ? "gauge" : types[kind]);
        buf_putc(w->b, '\n');
        if (om && unit) {
                buf_puts(w->b, "# UNIT ");
                buf_puts(w->b, name);
                buf_putc(w->b, ' ');
                buf_puts(w->b, unit);
                buf_putc(w->b, '\n');
        }
}

/* "name_suffix{labels,extra} " */
static void sample_start(struct writer *w, const char *name, const char *suffix,
                         const char *labels, const char *extra)
{
        bool any = labels && *labels, more = extra && *extra;

        buf_puts(w->b, name);
        buf_puts(w->b, suffix);
        if (any || more) {
                buf_putc(w->b, '{');
                if (any)
                        buf_puts(w->b, labels);
                if (any && more)
                        buf_putc(w->b, ',');
                if (more)
                        buf_puts(w->b, extra);
                buf_putc(w->b, '}');
        }
        buf_putc(w->b, ' ');
}

static void sample(struct writer *w, const char *name, const char *suffix, const char *labels,
                   const char *extra, uint64_t v)
{
        sample_start(w, name, suffix, labels, extra);
        buf_u64(w->b, v);
        buf_putc(w->b, '\n');
}

/* A family with one sample. */
static void single(struct writer *w, const char *name, enum kind kind, const char *unit,
                   const char *help, uint64_t v)
{
        family(w, name, kind, unit, help);
        sample(w, name, kind == COUNTER ? "_total" : "", NULL, NULL, v);
}

/* --- collecting ------------------------------------------------------------ */

static const char *mode_name(const struct probe *p)
{
        switch (p->cfg.mode) {
        case UT_MODE_COUNT: return "count";
        case UT_MODE_HIST: return "hist";
        default: return "events";
        }
}

/* The label of an aggregation key, as the aggregations method shows it. */
static void key_label(struct buf *b, const struct probe *p, const struct ut_agg_key *k)
{
        const struct ut_probe *cfg = &p->cfg;
        char tmp[24];
        __u32 u32v;
        __u64 u64v;

        if (k->overflow) {
                label_str(b, "overflow", "true");
                return;
        }
        switch (cfg->key_src) {
        case UT_SRC_COMM:
                label(b, "comm", k->key, strnlen(k->key, sizeof(k->key)));
                break;
        case UT_SRC_STR:
                label(b, "key", k->key, strnlen(k->key, sizeof(k->key)));
                break;
        case UT_SRC_PID:
        case UT_SRC_TID:
        case UT_SRC_UID:
                memcpy(&u32v, k->key, sizeof(u32v));
                label_u64(b, cfg->key_src == UT_SRC_PID ? "pid" : cfg->key_src == UT_SRC_TID ? "tid"
                                                                                       : "uid",
                          u32v);
                break;
        case UT_SRC_ARG:
                memcpy(&u64v, k->key, sizeof(u64v));
                if (probe_value_signed(p, cfg->key_idx, NULL))
                        snprintf(tmp, sizeof(tmp), "%lld", (long long)u64v);
                else
                        snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)u64v);
                label_str(b, "key", tmp);
                break;
        default:
                break;
        }
}

static void add_key(const struct ut_agg_key *k, const struct ut_agg_val *val, void *userdata)
{
        struct collection *col = userdata;
        struct probe_view *v;
        struct series *s;
        struct buf key = { 0 }, lb = { 0 };

        if (k->probe >= UT_MAX_PROBES || col->by_slot[k->probe] < 0)
                return;
        v = &col->v[col->by_slot[k->probe]];
        if (v->p->cfg.mode == UT_MODE_COUNT && v->p->cfg.key_src == UT_SRC_NONE)
                return; /* the probe's aggregated counter says it all */
        if (grow_array(&v->keys, &v->keys_cap, v->nkeys + 1, sizeof(*v->keys)) < 0) {
                col->oom = true;
                return;
        }
        key_label(&key, v->p, k);
        if (key.len) { /* it follows the probe's labels */
                buf_putc(&lb, ',');
                buf_put(&lb, key.data, key.len);
        }
        buf_putc(&lb, 0);
        lb.oom |= key.oom;
        buf_free(&key);
        if (lb.oom) {
                buf_free(&lb);
                col->oom = true;
                return;
        }
        s = &v->keys[v->nkeys++];
        s->label = lb.data;
        s->count = val->count;
        s->sum = val->sum;
        memcpy(s->slots, val->slots, sizeof(s->slots));
}

static int by_label(const void *a, const void *b)
{
        const struct series *x = a, *y = b;
        bool ox = strstr(x->label, "overflow=") != NULL, oy = strstr(y->label, "overflow=") != NULL;

        if (ox != oy)
                return ox ? 1 : -1;
        return strcmp(x->label, y->label);
}

/* Bucket i of the order in which buckets are listed: for a signed value the
 * negative values (slot 64) come first. */
static int slot_at(const struct probe_view *v, int i)
{
        return v->is_signed ? (i + UT_HIST_SLOTS - 1) % UT_HIST_SLOTS : i;
}

/* Keys are sorted by label; two keys that read the same once made valid
 * UTF-8 are one series (their counts added). The probe's buckets are those
 * from the lowest to the highest any key uses, so that sums over keys by
 * "le" are right. */
static void finish_view(struct probe_view *v)
{
        size_t n = 0;

        if (v->nkeys)
                qsort(v->keys, v->nkeys, sizeof(*v->keys), by_label);
        for (size_t i = 0; i < v->nkeys; i++) {
                struct series *s = &v->keys[i];

                if (n && streq(v->keys[n - 1].label, s->label)) {
                        struct series *d = &v->keys[n - 1];

                        d->count += s->count;
                        d->sum += s->sum;
                        for (int k = 0; k < UT_HIST_SLOTS; k++)
                                d->slots[k] += s->slots[k];
                        free(s->label);
                        continue;
                }
                v->keys[n++] = *s;
        }
        v->nkeys = n;
        v->first = v->last = -1;
        for (size_t i = 0; i < v->nkeys; i++)
                for (int k = 0; k < UT_HIST_SLOTS; k++)
                        if (v->keys[i].slots[slot_at(v, k)]) {
                                if (v->first < 0 || k < v->first)
                                        v->first = k;
                                if (k > v->last)
                                        v->last = k;
                        }
}

static void collection_done(struct collection *col)
{
        for (size_t i = 0; i < col->n; i++) {
                for (size_t k = 0; k < col->v[i].nkeys; k++)
                        free(col->v[i].keys[k].label);
                free(col->v[i].keys);
                free(col->v[i].labels);
        }
        free(col->v);
}

static int collect(struct collection *col, struct manager *m, const struct client *c, bool all)
{
        size_t np;
        struct probe *const *probes = manager_probes(m, &np);

        memset(col, 0, sizeof(*col));
        for (size_t i = 0; i < UT_MAX_PROBES; i++)
                col->by_slot[i] = -1;
        col->v = calloc(np ? np : 1, sizeof(*col->v));
        if (!col->v)
                return -ENOMEM;
        for (size_t i = 0; i < np; i++) {
                struct probe *p = probes[i];
                struct probe_view *v;
                struct buf lb = { 0 };

                if (!all && !client_sees(c, p))
                        continue;
                v = &col->v[col->n];
                v->p = p;
                label_u64(&lb, "probe", p->id);
                if (p->config)
                        label_str(&lb, "name", p->config);
                buf_putc(&lb, 0);
                if (lb.oom) {
                        buf_free(&lb);
                        return -ENOMEM;
                }
                v->labels = lb.data;
                manager_stats(m, p, &v->st);
                if (p->output)
                        output_counters(p->output, &v->oc);
                v->is_signed = p->cfg.mode == UT_MODE_HIST && p->cfg.agg_src == UT_SRC_ARG &&
                               probe_value_signed(p, p->cfg.agg_idx, NULL);
                if (p->slot < UT_MAX_PROBES)
                        col->by_slot[p->slot] = (int)col->n;
                col->n++;
        }
        manager_aggregations_all(m, add_key, col);
        if (col->oom)
                return -ENOMEM;
        for (size_t i = 0; i < col->n; i++)
                finish_view(&col->v[i]);
        return 0;
}

/* --- families -------------------------------------------------------------- */

static void daemon_families(struct writer *w, struct server *srv, bool all)
{
        struct manager *m = server_manager(srv);
        struct events *ev = server_events(srv);
        const struct events_counters *ec = events_counters(ev);
        uint64_t mono = now_ns(CLOCK_MONOTONIC), rt = now_ns(CLOCK_REALTIME);
        uint64_t nclients = 0, nsubs = 0, queued = 0;
        size_t nprobes;

        manager_probes(m, &nprobes);
        for (struct client *k = server_clients(srv); k; k = k->next) {
                nclients++;
                nsubs += k->subscribed;
                queued += k->out.len;
        }
        family(w, "utrace_build", INFO, NULL, "The version of utraced.");
        sample_start(w, "utrace_build", "_info", "version=\"" UTRACE_VERSION "\"", NULL);
        buf_puts(w->b, "1\n");
        family(w, "utrace_start_time_seconds", GAUGE, "seconds",
               "When utraced started, in seconds since the epoch.");
        sample_start(w, "utrace_start_time_seconds", "", NULL, NULL);
        metrics_seconds(w->b, rt - (mono - server_started(srv)));
        buf_putc(w->b, '\n');
        single(w, "utrace_probes", GAUGE, NULL, "Probes attached, of every user.", nprobes);
        single(w, "utrace_clients", GAUGE, NULL, "Connections to the control socket.", nclients);
        single(w, "utrace_subscribers", GAUGE, NULL, "Connections subscribed to events.", nsubs);
        single(w, "utrace_client_queued_bytes", GAUGE, "bytes",
               "Bytes of events and replies waiting to be written to clients.", queued);
        single(w, "utrace_ringbuf_size_bytes", GAUGE, "bytes", "Size of the event ring buffer.",
               loader_ringbuf_size(manager_loader(m)));
        single(w, "utrace_ringbuf_pending_bytes", GAUGE, "bytes",
               "Bytes of events waiting in the ring buffer.", events_pending(ev));
        single(w, "utrace_ringbuf_held", GAUGE, NULL,
               "1 while the ring buffer is held for the first subscriber after a start.",
               events_held(ev));
        single(w, "utrace_ringbuf_records", COUNTER, NULL,
               "Records read from the ring buffer.", ec->read);
        family(w, "utrace_ringbuf_records_discarded", COUNTER, NULL,
               "Records read from the ring buffer and discarded: of a probe detached since "
               "(stale), or undecodable (malformed).");
        sample(w, "utrace_ringbuf_records_discarded", "_total", "cause=\"stale\"", NULL, ec->stale);
        sample(w, "utrace_ringbuf_records_discarded", "_total", "cause=\"malformed\"", NULL,
               ec->malformed);
        single(w, "utrace_ringbuf_backlog_records", COUNTER, NULL,
               "Records produced before this start of the daemon.", ec->backlog);
        single(w, "utrace_ringbuf_wakeups", COUNTER, NULL, "Drains of the ring buffer.",
               ec->wakeups);
        single(w, "utrace_events_unclaimed", COUNTER, NULL,
               "Events no subscriber or output took.", ec->unclaimed);
        if (all) {
                struct config_health h;

                config_health(manager_config(m), &h);
                single(w, "utrace_config_probes", GAUGE, NULL, "Configured probes.", h.probes);
                single(w, "utrace_config_probes_failed", GAUGE, NULL,
                       "Configured probes that could not be attached at start.", h.failed);
                single(w, "utrace_config_reloads", COUNTER, NULL,
                       "Reloads of the configuration asked for.", h.reloads);
                single(w, "utrace_config_reloads_refused", COUNTER, NULL,
                       "Reloads refused (errors, or a probe that could not be attached).",
                       h.reloads_refused);
                single(w, "utrace_config_applied", GAUGE, NULL,
                       "1 if the last reading of the configuration was applied.", h.applied);
                family(w, "utrace_config_applied_timestamp_seconds", GAUGE, "seconds",
                       "When a reading of the configuration was last applied.");
                sample_start(w, "utrace_config_applied_timestamp_seconds", "", NULL, NULL);
                metrics_seconds(w->b, h.applied_ns);
                buf_putc(w->b, '\n');
        }
}

/* The watcher (watch.h): what it examined and attached, and how fast. */
static void watch_families(struct writer *w, struct manager *m)
{
        struct watch *wt = manager_watch(m);
        struct watch_counters c;
        uint64_t cum = 0, count = 0;
        char le[32];

        if (!wt)
                return;
        watch_counters(wt, &c);
        const struct {
                const char *name, *help;
                uint64_t value;
        } counters[] = {
                { "utrace_watch_reports",
                  "Processes the watcher reported for mapping a file not seen before.", c.reports },
                { "utrace_watch_reports_lost",
                  "Reports lost for want of room (the file is reported again by the next "
                  "process, or found by the periodic pass).", c.reports_lost },
                { "utrace_watch_files_examined", "Files the watcher examined.", c.examined },
                { "utrace_watch_files_attached", "Files a watched probe was attached to.",
                  c.attached },
                { "utrace_watch_files_released",
                  "Files released because no process maps them any more.", c.released },
                { "utrace_watch_files_failed",
                  "Matching files a watched probe could not be attached to.", c.failed },
                { "utrace_watch_passes", "Passes over every process's mappings.", c.passes },
                { "utrace_watch_processes_held",
                  "Processes stopped until their probes were attached (--hold).", c.held },
                { "utrace_watch_hold_timeouts", "Held processes resumed by the timeout.",
                  c.hold_timeouts },
                { "utrace_watch_hold_skipped",
                  "Processes not held: a terminal, traced, or too many held.", c.hold_skipped },
        };

        single(w, "utrace_watch_active", GAUGE, NULL,
               "1 while watched probes exist and the watcher runs.", watch_active(wt));
        for (size_t i = 0; i < ARRAY_SIZE(counters); i++)
                single(w, counters[i].name, COUNTER, NULL, counters[i].help, counters[i].value);
        family(w, "utrace_watch_attach_latency_seconds", HISTOGRAM, "seconds",
               "From a process mapping a new file to a watched probe attached to it.");
        for (unsigned k = 0; k <= WATCH_LAT_BUCKETS; k++)
                count += c.latency[k];
        for (unsigned k = 0; k < WATCH_LAT_BUCKETS; k++) {
                cum += c.latency[k];
                snprintf(le, sizeof(le), "le=\"%.6f\"", (double)(1ULL << k) / 1e6);
                sample(w, "utrace_watch_attach_latency_seconds", "_bucket", NULL, le, cum);
        }
        sample(w, "utrace_watch_attach_latency_seconds", "_bucket", NULL, "le=\"+Inf\"", count);
        sample(w, "utrace_watch_attach_latency_seconds", "_count", NULL, NULL, count);
        sample_start(w, "utrace_watch_attach_latency_seconds", "_sum", NULL, NULL);
        metrics_seconds(w->b, c.latency_sum_ns);
        buf_putc(w->b, '\n');
}

static void probe_info(struct writer *w, const struct collection *col)
{
        family(w, "utrace_probe", INFO, NULL,
               "A probe: its spec, type and mode, and what it aggregates.");
        for (size_t i = 0; i < col->n; i++) {
                const struct probe_view *v = &col->v[i];
                const struct probe *p = v->p;
                struct buf lb = { 0 };
                char field[64];

                buf_puts(&lb, v->labels);
                label_str(&lb, "spec", p->spec.text);
                label_str(&lb, "type", probe_type_name(p->spec.type));
                label_str(&lb, "mode", mode_name(p));
                if (p->spec.agg == AGG_HIST) {
                        spec_format_field(&p->spec.agg_value, field, sizeof(field));
                        label_str(&lb, "value", field);
                }
                if (p->spec.agg != AGG_NONE && p->spec.agg_key.field != FIELD_NONE) {
                        spec_format_field(&p->spec.agg_key, field, sizeof(field));
                        label_str(&lb, "by", field);
                }
                buf_putc(&lb, 0);
                if (!lb.oom)
                        sample(w, "utrace_probe", "_info", lb.data, NULL, 1);
                w->b->oom |= lb.oom;
                buf_free(&lb);
        }
}

/* A per-probe counter of struct ut_stats. */
static void stat_family(struct writer *w, const struct collection *col, const char *name,
                        const char *help, size_t offset)
{
        family(w, name, COUNTER, NULL, help);
        for (size_t i = 0; i < col->n; i++) {
                uint64_t v;

                memcpy(&v, (const char *)&col->v[i].st + offset, sizeof(v));
                sample(w, name, "_total", col->v[i].labels, NULL, v);
        }
}

#define STAT(w, col, name, field, help) stat_family(w, col, name, help, offsetof(struct ut_stats, field))

static void probe_families(struct writer *w, const struct collection *col)
{
        probe_info(w, col);
        family(w, "utrace_probe_locations", GAUGE, NULL, "Locations a probe is attached at.");
        for (size_t i = 0; i < col->n; i++)
                sample(w, "utrace_probe_locations", "", col->v[i].labels, NULL, col->v[i].p->nlocs);
        STAT(w, col, "utrace_probe_hits", hits,
             "Times a probe fired (entries, for latency probes).");
        STAT(w, col, "utrace_probe_filtered", filtered, "Hits dropped by the probe's filter.");
        STAT(w, col, "utrace_probe_events", emitted, "Events written to the ring buffer.");
        STAT(w, col, "utrace_probe_aggregated", aggregated, "Hits folded into the aggregation.");
        family(w, "utrace_probe_lost", COUNTER, NULL,
               "Hits dropped in the kernel: the ring buffer was full (ringbuf), or the CPU "
               "was already handling a hit (busy).");
        for (size_t i = 0; i < col->n; i++) {
                sample(w, "utrace_probe_lost", "_total", col->v[i].labels, "cause=\"ringbuf\"",
                       col->v[i].st.lost);
                sample(w, "utrace_probe_lost", "_total", col->v[i].labels, "cause=\"busy\"",
                       col->v[i].st.busy);
        }
        STAT(w, col, "utrace_probe_unpaired", unpaired, "Returns whose entry was not seen.");
        STAT(w, col, "utrace_probe_strings_faulted", str_faulted,
             "Strings read after faulting their page in.");
        STAT(w, col, "utrace_probe_string_errors", str_errors, "Strings that could not be read.");
        STAT(w, col, "utrace_probe_key_overflow", key_overflow,
             "Hits folded into the overflow key of an aggregation.");

        family(w, "utrace_probe_delivered", COUNTER, NULL,
               "Events delivered: copies queued for subscribers, entries sent to the journal, "
               "lines written to the file.");
        for (size_t i = 0; i < col->n; i++) {
                const struct probe_view *v = &col->v[i];

                if (v->p->cfg.mode != UT_MODE_EVENTS)
                        continue;
                sample(w, "utrace_probe_delivered", "_total", v->labels,
                       "output=\"subscribers\"", v->p->delivered);
                if (v->oc.journal)
                        sample(w, "utrace_probe_delivered", "_total", v->labels,
                               "output=\"journal\"", v->oc.journal_sent);
                if (v->oc.file)
                        sample(w, "utrace_probe_delivered", "_total", v->labels,
                               "output=\"file\"", v->oc.file_written);
        }
        family(w, "utrace_probe_dropped", COUNTER, NULL,
               "Events dropped on the way out: a subscriber's queue was full (queue), the "
               "journal's rate limit (ratelimit), journald had no room (busy) or could not be "
               "reached (error), the file's queue was full (queue) or its writer died (writer).");
        for (size_t i = 0; i < col->n; i++) {
                const struct probe_view *v = &col->v[i];

                if (v->p->cfg.mode != UT_MODE_EVENTS)
                        continue;
                sample(w, "utrace_probe_dropped", "_total", v->labels,
                       "output=\"subscribers\",cause=\"queue\"", v->p->queue_dropped);
                if (v->oc.journal) {
                        sample(w, "utrace_probe_dropped", "_total", v->labels,
                               "output=\"journal\",cause=\"ratelimit\"", v->oc.journal_ratelimited);
                        sample(w, "utrace_probe_dropped", "_total", v->labels,
                               "output=\"journal\",cause=\"busy\"", v->oc.journal_busy);
                        sample(w, "utrace_probe_dropped", "_total", v->labels,
                               "output=\"journal\",cause=\"error\"", v->oc.journal_errors);
                }
                if (v->oc.file) {
                        sample(w, "utrace_probe_dropped", "_total", v->labels,
                               "output=\"file\",cause=\"queue\"", v->oc.file_queue_dropped);
                        sample(w, "utrace_probe_dropped", "_total", v->labels,
                               "output=\"file\",cause=\"writer\"", v->oc.file_writer_lost);
                }
        }
        family(w, "utrace_probe_events_unclaimed", COUNTER, NULL,
               "Events of a probe that no subscriber or output took.");
        for (size_t i = 0; i < col->n; i++)
                if (col->v[i].p->cfg.mode == UT_MODE_EVENTS)
                        sample(w, "utrace_probe_events_unclaimed", "_total", col->v[i].labels, NULL,
                               col->v[i].p->unclaimed);
        family(w, "utrace_probe_output_failing", GAUGE, NULL,
               "1 while a probe's output cannot write (the log says why).");
        for (size_t i = 0; i < col->n; i++) {
                const struct probe_view *v = &col->v[i];

                if (v->oc.journal)
                        sample(w, "utrace_probe_output_failing", "", v->labels,
                               "output=\"journal\"", v->oc.journal_failing);
                if (v->oc.file)
                        sample(w, "utrace_probe_output_failing", "", v->labels, "output=\"file\"",
                               v->oc.file_failing);
        }
        family(w, "utrace_probe_file_rotations", COUNTER, NULL,
               "Rotations of a probe's output file.");
        for (size_t i = 0; i < col->n; i++)
                if (col->v[i].oc.file)
                        sample(w, "utrace_probe_file_rotations", "_total", col->v[i].labels, NULL,
                               col->v[i].oc.file_rotations);
}

/* The labels of one key: the probe's, then the key's. */
static const char *key_labels(struct buf *tmp, const struct probe_view *v, const struct series *s)
{
        buf_reset(tmp);
        buf_puts(tmp, v->labels);
        buf_puts(tmp, s->label);
        buf_putc(tmp, 0);
        return tmp->oom ? "" : tmp->data;
}

static void count_family(struct writer *w, const struct collection *col)
{
        struct buf tmp = { 0 };

        family(w, "utrace_aggregation_count", COUNTER, NULL,
               "Hits counted by a count aggregation, per key.");
        for (size_t i = 0; i < col->n; i++) {
                const struct probe_view *v = &col->v[i];

                if (v->p->cfg.mode != UT_MODE_COUNT)
                        continue;
                if (v->p->cfg.key_src == UT_SRC_NONE)
                        sample(w, "utrace_aggregation_count", "_total", v->labels, NULL,
                               v->st.aggregated);
                for (size_t k = 0; k < v->nkeys; k++)
                        sample(w, "utrace_aggregation_count", "_total",
                               key_labels(&tmp, v, &v->keys[k]), NULL, v->keys[k].count);
        }
        w->b->oom |= tmp.oom;
        buf_free(&tmp);
}

/* The inclusive upper bound of bucket slot: 0, 2^slot - 1, or -1 for the
 * negative values of a signed value. OpenMetrics writes it as a float. */
static void bucket_bound(struct buf *b, int slot, bool is_signed, bool seconds, bool om)
{
        uint64_t hi = slot == 0 ? 0 : slot == 64 ? UINT64_MAX : (1ULL << slot) - 1;
        size_t start = b->len;

        if (is_signed && slot == 64)
                buf_puts(b, "-1");
        else if (seconds)
                metrics_seconds(b, hi);
        else
                buf_u64(b, hi);
        if (om && !b->oom && !memchr(b->data + start, '.', b->len - start))
                buf_puts(b, ".0");
}

static void hist_family(struct writer *w, const struct collection *col, bool latency)
{
        const char *name = latency ? "utrace_aggregation_latency_seconds" : "utrace_aggregation_value";
        struct buf tmp = { 0 }, le = { 0 };

        family(w, name, HISTOGRAM, latency ? "seconds" : NULL,
               latency ? "Latency of the calls of a hist(latency_ns) aggregation, per key."
                       : "Values of a hist(argN) or hist(retval) aggregation, per key.");
        for (size_t i = 0; i < col->n; i++) {
                const struct probe_view *v = &col->v[i];

                if (v->p->cfg.mode != UT_MODE_HIST ||
                    (v->p->cfg.agg_src == UT_SRC_LATENCY) != latency)
                        continue;
                for (size_t k = 0; k < v->nkeys; k++) {
                        const struct series *s = &v->keys[k];
                        const char *labels = key_labels(&tmp, v, s);
                        bool negative = v->is_signed && v->first == 0;
                        uint64_t cum = 0;

                        for (int j = v->first; j >= 0 && j <= v->last; j++) {
                                int slot = slot_at(v, j);

                                cum += s->slots[slot];
                                if (slot == 64 && !v->is_signed)
                                        break; /* the top bucket ends at +Inf */
                                buf_reset(&le);
                                buf_puts(&le, "le=\"");
                                bucket_bound(&le, slot, v->is_signed, latency, w->fmt == METRICS_OPENMETRICS);
                                buf_putc(&le, '"');
                                buf_putc(&le, 0);
                                sample(w, name, "_bucket", labels, le.oom ? "" : le.data, cum);
                        }
                        sample(w, name, "_bucket", labels, "le=\"+Inf\"", s->count);
                        /* OpenMetrics: a histogram with a negative bucket has no _sum
                         * (nor _count, which asks for one) */
                        if (negative && w->fmt == METRICS_OPENMETRICS)
                                continue;
                        sample(w, name, "_count", labels, NULL, s->count);
                        sample_start(w, name, "_sum", labels, NULL);
                        if (latency)
                                metrics_seconds(w->b, s->sum);
                        else if (v->is_signed)
                                buf_s64(w->b, (int64_t)s->sum);
                        else
                                buf_u64(w->b, s->sum);
                        buf_putc(w->b, '\n');
                }
        }
        w->b->oom |= tmp.oom | le.oom;
        buf_free(&tmp);
        buf_free(&le);
}

void metrics_write(struct buf *b, struct server *srv, const struct client *c, bool all,
                   enum metrics_format fmt)
{
        struct writer w = { .b = b, .fmt = fmt };
        struct collection col;

        if (collect(&col, server_manager(srv), c, all) < 0) {
                collection_done(&col);
                b->oom = true;
                return;
        }
        daemon_families(&w, srv, all);
        if (all)
                watch_families(&w, server_manager(srv));
        probe_families(&w, &col);
        count_family(&w, &col);
        hist_family(&w, &col, true);
        hist_family(&w, &col, false);
        if (fmt == METRICS_OPENMETRICS)
                buf_puts(b, "# EOF\n");
        collection_done(&col);
}
