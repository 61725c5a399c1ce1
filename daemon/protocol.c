// SPDX-License-Identifier: GPL-2.0-only
#include <json-c/json.h>
#include <limits.h>
#include <time.h>

#include "config-build.h"
#include "config.h"
#include "listing.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "request.h"
#include "util.h"
#include "watch.h"

#define MAX_DEPTH 32
#define MAX_USER_PROBES 64 /* probes of one unprivileged user */

typedef int (*method_fn)(struct client *c, json_object *params, json_object **result,
                         struct error *err);

/* --- output ---------------------------------------------------------------- */

/* json-c values out through the project's writer, so every string is valid
 * UTF-8 JSON whatever bytes a file or a process handed us. */
static void put_json(struct buf *b, json_object *o)
{
        switch (json_object_get_type(o)) {
        case json_type_null:
                buf_puts(b, "null");
                break;
        case json_type_boolean:
                buf_puts(b, json_object_get_boolean(o) ? "true" : "false");
                break;
        case json_type_int:
                if (json_object_get_int64(o) == INT64_MAX && json_object_get_uint64(o) > INT64_MAX)
                        buf_u64(b, json_object_get_uint64(o));
                else
                        buf_s64(b, json_object_get_int64(o));
                break;
        case json_type_double: {
                char tmp[64];

                snprintf(tmp, sizeof(tmp), "%.17g", json_object_get_double(o));
                buf_puts(b, tmp);
                break;
        }
        case json_type_string:
                buf_json_str(b, json_object_get_string(o), json_object_get_string_len(o));
                break;
        case json_type_array:
                buf_putc(b, '[');
                for (size_t i = 0; i < json_object_array_length(o); i++) {
                        if (i)
                                buf_putc(b, ',');
                        put_json(b, json_object_array_get_idx(o, i));
                }
                buf_putc(b, ']');
                break;
        case json_type_object: {
                bool first = true;

                buf_putc(b, '{');
                json_object_object_foreach(o, k, v) {
                        if (!first)
                                buf_putc(b, ',');
                        first = false;
                        buf_json_str(b, k, strlen(k));
                        buf_putc(b, ':');
                        put_json(b, v);
                }
                buf_putc(b, '}');
                break;
        }
        }
}

static void reply(struct client *c, json_object *id, json_object *result)
{
        struct buf b = { 0 };

        buf_puts(&b, "{\"jsonrpc\":\"2.0\",\"id\":");
        put_json(&b, id);
        buf_puts(&b, ",\"result\":");
        put_json(&b, result);
        buf_puts(&b, "}\n");
        if (!b.oom)
                client_send(c, b.data, b.len);
        buf_free(&b);
}

static void reply_error(struct client *c, json_object *id, const struct error *err)
{
        struct buf b = { 0 };

        buf_puts(&b, "{\"jsonrpc\":\"2.0\",\"id\":");
        put_json(&b, id);
        buf_puts(&b, ",\"error\":{\"code\":");
        buf_s64(&b, err->code);
        buf_puts(&b, ",\"message\":");
        buf_json_str(&b, err->msg, strlen(err->msg));
        buf_puts(&b, ",\"data\":{\"name\":");
        buf_puts(&b, "\"");
        buf_puts(&b, error_code_name(err->code));
        buf_puts(&b, "\"}}}\n");
        if (!b.oom)
                client_send(c, b.data, b.len);
        buf_free(&b);
}

void protocol_error_line(struct client *c, enum error_code code, const char *message)
{
        struct error err = { .code = code };

        snprintf(err.msg, sizeof(err.msg), "%s", message);
        reply_error(c, NULL, &err);
}

/* --- helpers --------------------------------------------------------------- */

static void add(json_object *o, const char *key, json_object *v)
{
        json_object_object_add(o, key, v);
}

static json_object *u64(uint64_t v)
{
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

static json_object *str_or_null(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

/* Optional integer parameter "key" into *ret. */
static int param_u64(json_object *params, const char *key, uint64_t *ret, bool *present,
                     struct error *err)
{
        json_object *v;

        *present = false;
        if (!params || !json_object_object_get_ex(params, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
                return error_set(err, E_INVALID_PARAMS, -EINVAL,
                                 "\"%s\" must be a non-negative integer", key);
        *ret = (uint64_t)json_object_get_int64(v);
        *present = true;
        return 0;
}

/* "ids": [1, 2] or "id": 1; returns the count. */
static int param_ids(json_object *params, uint64_t **ret, struct error *err)
{
        json_object *v;
        uint64_t one;
        bool present;
        size_t n;
        int r;

        *ret = NULL;
        r = param_u64(params, "id", &one, &present, err);
        if (r < 0)
                return r;
        if (present) {
                *ret = malloc(sizeof(uint64_t));
                if (!*ret)
                        return -ENOMEM;
                **ret = one;
                return 1;
        }
        if (!params || !json_object_object_get_ex(params, "ids", &v))
                return 0;
        if (!json_object_is_type(v, json_type_array))
                return error_set(err, E_INVALID_PARAMS, -EINVAL, "\"ids\" must be an array");
        n = json_object_array_length(v);
        if (n > UT_MAX_PROBES)
                return error_set(err, E_LIMIT, -E2BIG, "too many ids");
        *ret = calloc(n ? n : 1, sizeof(uint64_t));
        if (!*ret)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);

                if (!json_object_is_type(e, json_type_int) || json_object_get_int64(e) <= 0) {
                        free(*ret);
                        *ret = NULL;
                        return error_set(err, E_INVALID_PARAMS, -EINVAL,
                                         "\"ids\" must hold probe ids (positive integers)");
                }
                (*ret)[i] = (uint64_t)json_object_get_int64(e);
        }
        return (int)n;
}

/* A probe the client may see; another user's probe does not exist for it. */
static struct probe *find_probe(struct client *c, uint64_t id, struct error *err)
{
        struct probe *p = manager_find(server_manager(c->srv), id);

        if (!p || !client_sees(c, p)) {
                error_set(err, E_NO_PROBE, -ENOENT, "no probe %llu", (unsigned long long)id);
                return NULL;
        }
        return p;
}

static const char *mode_name(const struct probe *p)
{
        switch (p->cfg.mode) {
        case UT_MODE_COUNT: return "count";
        case UT_MODE_HIST: return "hist";
        default: return "events";
        }
}

/* Processes mapping files now (watch.h), for the files of watched probes. */
struct users {
        struct file_user *v;
        int n;
};

static json_object *file_pids(const struct users *u, const struct attachment *a)
{
        json_object *arr = json_object_new_array();
        int lo = 0, hi = u->n;

        while (lo < hi) { /* the first entry of the file */
                int mid = (lo + hi) / 2;
                const struct file_user *f = &u->v[mid];

                if (f->dev < a->kdev || (f->dev == a->kdev && f->ino < a->kino))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (int i = lo; i < u->n && u->v[i].dev == a->kdev && u->v[i].ino == a->kino; i++)
                json_object_array_add(arr, json_object_new_int(u->v[i].pid));
        return arr;
}

static json_object *probe_json(const struct probe *p, const struct users *users)
{
        json_object *o = json_object_new_object();
        json_object *files = json_object_new_array();
        json_object *fields = json_object_new_array();
        json_object *req = json_tokener_parse(p->request);

        add(o, "id", u64(p->id));
        add(o, "spec", json_object_new_string(p->spec.text));
        add(o, "type", json_object_new_string(probe_type_name(p->spec.type)));
        add(o, "target", str_or_null(p->spec.target));
        add(o, "pid", json_object_new_int(p->spec.pid));
        add(o, "mode", json_object_new_string(mode_name(p)));
        add(o, "latency", json_object_new_boolean(p->spec.latency));
        add(o, "filter", str_or_null(p->spec.filter));
        add(o, "transient", json_object_new_boolean(p->spec.transient));
        add(o, "config", str_or_null(p->config));
        add(o, "owner", json_object_new_int64(p->owner));
        add(o, "created", u64(p->created));
        for (int i = 0; i < p->nfields; i++)
                if (!p->fields[i].hidden)
                        json_object_array_add(fields, json_object_new_string(p->fields[i].name));
        add(o, "fields", fields);
        add(o, "locations", u64(probe_nlocations(p)));
        add(o, "watch", json_object_new_boolean(probe_watched(p)));
        for (size_t i = 0; i < p->natts; i++) {
                const struct attachment *a = &p->atts[i];
                json_object *f = json_object_new_object();
                json_object *locs = json_object_new_array();

                add(f, "path", json_object_new_string(a->path));
                add(f, "dev", u64(a->dev));
                add(f, "inode", u64(a->ino));
                add(f, "watched", json_object_new_boolean(a->watched));
                if (users && probe_watched(p))
                        add(f, "pids", file_pids(users, a));
                add(f, "links", u64(a->pin_count));
                for (size_t k = 0; k < a->loc_count && k < 64; k++)
                        json_object_array_add(locs,
                                              json_object_new_string(p->locs[a->loc_first + k].name));
                add(f, "locations", locs);
                if (a->loc_count > 64)
                        add(f, "more_locations", u64(a->loc_count - 64));
                json_object_array_add(files, f);
        }
        add(o, "files", files);
        add(o, "request", req);
        return o;
}

/* --- methods --------------------------------------------------------------- */

static int m_hello(struct client *c, json_object *params, json_object **result, struct error *err)
{
        static const char *const features[] = {
                "uprobe", "uretprobe", "usdt", "strings", "filter", "latency", "aggregate",
                "transient", "probes", "config", "metrics", "watch",
        };
        json_object *o = json_object_new_object();
        json_object *f = json_object_new_array();

        (void)params;
        (void)err;
        for (size_t i = 0; i < ARRAY_SIZE(features); i++)
                json_object_array_add(f, json_object_new_string(features[i]));
        if (loader_multi(manager_loader(server_manager(c->srv))))
                json_object_array_add(f, json_object_new_string("uprobe_multi"));
        add(o, "protocol", json_object_new_int(PROTOCOL_VERSION));
        add(o, "version", json_object_new_string(UTRACE_VERSION));
        add(o, "features", f);
        *result = o;
        return 0;
}

static int m_status(struct client *c, json_object *params, json_object **result, struct error *err)
{
        struct manager *m = server_manager(c->srv);
        struct events *ev = server_events(c->srv);
        const struct events_counters *ec = events_counters(ev);
        json_object *o = json_object_new_object();
        json_object *e = json_object_new_object();
        json_object *rb = json_object_new_object();
        size_t nprobes, nclients = 0, nsubs = 0;

        (void)params;
        (void)err;
        manager_probes(m, &nprobes);
        for (struct client *k = server_clients(c->srv); k; k = k->next) {
                nclients++;
                nsubs += k->subscribed;
        }
        add(o, "version", json_object_new_string(UTRACE_VERSION));
        add(o, "pid", json_object_new_int(getpid()));
        add(o, "uptime_ns", u64(now_ns(CLOCK_MONOTONIC) - server_started(c->srv)));
        add(o, "socket", json_object_new_string(server_socket_path(c->srv)));
        add(o, "probes", u64(nprobes));
        add(o, "clients", u64(nclients));
        add(o, "subscribers", u64(nsubs));
        add(o, "uprobe_multi", json_object_new_boolean(loader_multi(manager_loader(m))));
        add(rb, "size", u64(loader_ringbuf_size(manager_loader(m))));
        add(rb, "pending", u64(events_pending(ev)));
        add(o, "ringbuf", rb);
        add(e, "read", u64(ec->read));
        add(e, "stale", u64(ec->stale));
        add(e, "malformed", u64(ec->malformed));
        add(e, "unclaimed", u64(ec->unclaimed));
        add(e, "wakeups", u64(ec->wakeups));
        add(e, "backlog", u64(ec->backlog));
        add(o, "events", e);
        add(rb, "held", json_object_new_boolean(events_held(ev)));
        if (c->who.privileged) /* file names and errors of the configuration */
                add(o, "config", config_status(manager_config(m)));
        *result = o;
        return 0;
}

static int m_attach(struct client *c, json_object *params, json_object **result, struct error *err)
{
        struct probe_spec spec;
        struct probe *p;
        int r;

        r = request_parse_attach(params, &spec, err);
        if (r >= 0 && !c->who.privileged) {
                if (!spec.pid)
                        r = error_set(err, E_PERMISSION, -EPERM,
                                      "without privileges a probe must be scoped to a process "
                                      "you own (\"pid\"; utracectl --pid)");
                else if (spec.exe)
                        r = error_set(err, E_PERMISSION, -EPERM,
                                      "without privileges a probe is scoped to one process "
                                      "already: \"exe\" is for privileged callers");
                else
                        r = access_check_process(&c->who, spec.pid, err);
                if (r >= 0 && manager_count_owned(server_manager(c->srv), c->who.uid) >=
                                      MAX_USER_PROBES)
                        r = error_set(err, E_LIMIT, -EUSERS,
                                      "you have %d probes, the most an unprivileged user may have",
                                      MAX_USER_PROBES);
        }
        if (r < 0) {
                probe_spec_done(&spec);
                return r;
        }
        r = manager_attach(server_manager(c->srv), &spec,
                           json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN),
                           c->who.uid, !c->who.privileged, c, &p, err);
        if (r < 0)
                return r;
        *result = probe_json(p, NULL);
        return 0;
}

static int m_detach(struct client *c, json_object *params, json_object **result, struct error *err)
{
        struct manager *m = server_manager(c->srv);
        _cleanup_free_ uint64_t *ids = NULL;
        _cleanup_free_ struct probe **gone = NULL;
        bool seen[UT_MAX_PROBES] = { false };
        json_object *all, *done, *kept;
        size_t ngone = 0;
        bool everything = false;
        int n;

        if (params && json_object_object_get_ex(params, "all", &all) &&
            json_object_get_boolean(all)) {
                size_t np;
                struct probe *const *all_probes = manager_probes(m, &np);

                ids = calloc(np ? np : 1, sizeof(uint64_t));
                if (!ids)
                        return -ENOMEM;
                n = 0;
                for (size_t i = 0; i < np; i++)
                        if (client_sees(c, all_probes[i]))
                                ids[n++] = all_probes[i]->id;
                everything = true;
        } else {
                n = param_ids(params, &ids, err);
                if (n < 0)
                        return n;
                if (n == 0)
                        return error_set(err, E_INVALID_PARAMS, -EINVAL,
                                         "detach: give \"id\", \"ids\" or \"all\": true");
                for (int i = 0; i < n; i++) {
                        struct probe *p = find_probe(c, ids[i], err);

                        if (!p)
                                return -ENOENT; /* nothing is detached unless all exist */
                        if (p->config)
                                return error_set(err, E_PERMISSION, -EPERM,
                                                 "probe %llu is the configured probe %s: remove it "
                                                 "from the configuration and reload",
                                                 (unsigned long long)p->id, p->config);
                }
        }
        gone = calloc(n ? n : 1, sizeof(*gone));
        if (!gone)
                return -ENOMEM;
        done = json_object_new_array();
        kept = json_object_new_array();
        for (int i = 0; i < n; i++) {
                struct probe *p = manager_find(m, ids[i]);

                if (!p || seen[p->slot])
                        continue; /* an id given twice is detached once */
                seen[p->slot] = true;
                if (p->config) {
                        json_object_array_add(kept, u64(ids[i]));
                        continue;
                }
                gone[ngone++] = p;
                json_object_array_add(done, u64(ids[i]));
        }
        manager_detach_many(m, gone, ngone);
        *result = json_object_new_object();
        add(*result, "detached", done);
        if (everything)
                add(*result, "configured", kept); /* --all leaves configured probes */
        else
                json_object_put(kept);
        return 0;
}

static int m_list(struct client *c, json_object *params, json_object **result, struct error *err)
{
        size_t n;
        struct probe *const *probes = manager_probes(server_manager(c->srv), &n);
        json_object *arr = json_object_new_array();

        (void)params;
        (void)err;
        struct watch *w = manager_watch(server_manager(c->srv));
        struct users users = { 0 };
        bool watched = false;

        for (size_t i = 0; i < n; i++)
                watched |= client_sees(c, probes[i]) && probe_watched(probes[i]);
        users.n = w && watched ? watch_file_users(w, &users.v) : 0;
        if (users.n < 0)
                users.n = 0;
        for (size_t i = 0; i < n; i++)
                if (client_sees(c, probes[i]))
                        json_object_array_add(arr, probe_json(probes[i], &users));
        free(users.v);
        *result = json_object_new_object();
        add(*result, "probes", arr);
        return 0;
}

static int m_subscribe(struct client *c, json_object *params, json_object **result,
                       struct error *err)
{
        _cleanup_free_ uint64_t *ids = NULL;
        json_object *arr = json_object_new_array();
        int n, r;

        n = param_ids(params, &ids, err);
        if (n < 0) {
                json_object_put(arr);
                return n;
        }
        for (int i = 0; i < n; i++)
                if (!find_probe(c, ids[i], err)) {
                        json_object_put(arr);
                        return -ENOENT;
                }
        r = client_subscribe(c, ids, n);
        if (r < 0) {
                json_object_put(arr);
                return r;
        }
        for (int i = 0; i < n; i++)
                json_object_array_add(arr, u64(ids[i]));
        *result = json_object_new_object();
        add(*result, "probes", n ? arr : (json_object_put(arr), json_object_new_string("all")));
        return 0;
}

static int m_unsubscribe(struct client *c, json_object *params, json_object **result,
                         struct error *err)
{
        (void)params;
        (void)err;
        client_unsubscribe(c);
        *result = json_object_new_object();
        return 0;
}

static json_object *stats_json(struct manager *m, const struct probe *p)
{
        struct ut_stats st;
        json_object *o = json_object_new_object();

        manager_stats(m, p, &st);
        add(o, "id", u64(p->id));
        add(o, "hits", u64(st.hits));
        add(o, "filtered", u64(st.filtered));
        add(o, "events", u64(st.emitted));
        add(o, "aggregated", u64(st.aggregated));
        add(o, "lost", u64(st.lost + st.busy));
        add(o, "lost_ringbuf", u64(st.lost));
        add(o, "lost_busy", u64(st.busy));
        add(o, "unpaired", u64(st.unpaired));
        add(o, "str_faulted", u64(st.str_faulted));
        add(o, "str_errors", u64(st.str_errors));
        add(o, "key_overflow", u64(st.key_overflow));
        return o;
}

static int m_stats(struct client *c, json_object *params, json_object **result, struct error *err)
{
        struct manager *m = server_manager(c->srv);
        _cleanup_free_ uint64_t *ids = NULL;
        json_object *arr, *clients;
        int n;

        n = param_ids(params, &ids, err);
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++)
                if (!find_probe(c, ids[i], err))
                        return -ENOENT;
        arr = json_object_new_array();
        if (n) {
                for (int i = 0; i < n; i++)
                        json_object_array_add(arr, stats_json(m, manager_find(m, ids[i])));
        } else {
                size_t np;
                struct probe *const *probes = manager_probes(m, &np);

                for (size_t i = 0; i < np; i++)
                        if (client_sees(c, probes[i]))
                                json_object_array_add(arr, stats_json(m, probes[i]));
        }
        clients = json_object_new_array();
        for (struct client *k = server_clients(c->srv); k; k = k->next) {
                json_object *o;

                if (!c->who.privileged && k->who.uid != c->who.uid)
                        continue; /* others' connections are theirs */
                o = json_object_new_object();
                add(o, "id", u64(k->id));
                add(o, "pid", json_object_new_int(k->who.pid));
                add(o, "uid", json_object_new_int64(k->who.uid));
                add(o, "subscribed", json_object_new_boolean(k->subscribed));
                add(o, "delivered", u64(k->delivered));
                add(o, "dropped", u64(k->dropped));
                add(o, "queued_bytes", u64(client_queued(k)));
                json_object_array_add(clients, o);
        }
        *result = json_object_new_object();
        add(*result, "probes", arr);
        add(*result, "clients", clients);
        return 0;
}

struct agg_ctx {
        const struct probe *p;
        json_object *keys;
};

static void agg_key_json(const struct probe *p, const struct ut_agg_key *k, json_object *o)
{
        const struct ut_probe *cfg = &p->cfg;
        __u32 u32v;
        __u64 u64v;

        if (k->overflow) {
                add(o, "overflow", json_object_new_boolean(true));
                return;
        }
        switch (cfg->key_src) {
        case UT_SRC_COMM:
        case UT_SRC_STR: {
                struct buf b = { 0 };
                json_object *s;

                /* strings are keyed on their first bytes; the key may not be terminated */
                buf_put(&b, k->key, strnlen(k->key, sizeof(k->key)));
                buf_putc(&b, 0);
                s = json_object_new_string_len(b.data ? b.data : "", b.len ? (int)b.len - 1 : 0);
                add(o, "key", s);
                buf_free(&b);
                break;
        }
        case UT_SRC_PID:
        case UT_SRC_TID:
        case UT_SRC_UID:
                memcpy(&u32v, k->key, sizeof(u32v));
                add(o, "key", u64(u32v));
                break;
        case UT_SRC_ARG:
                memcpy(&u64v, k->key, sizeof(u64v));
                if (probe_value_signed(p, cfg->key_idx, NULL))
                        add(o, "key", json_object_new_int64((int64_t)u64v));
                else
                        add(o, "key", u64(u64v));
                break;
        default:
                break;
        }
}

/*
 * Log2 buckets, as bpftrace's hist(): slot 0 holds 0, slot i holds
 * [2^(i-1), 2^i). For a signed value slot 64 holds the negative values and
 * comes first. Every bucket from the lowest to the highest one used is
 * listed, empty ones too.
 */
static json_object *hist_json(const struct ut_agg_val *v, bool is_signed)
{
        json_object *b = json_object_new_array();
        int order[UT_HIST_SLOTS], first = -1, last = -1;

        for (int i = 0; i < UT_HIST_SLOTS; i++)
                order[i] = is_signed ? (i + UT_HIST_SLOTS - 1) % UT_HIST_SLOTS : i;
        for (int i = 0; i < UT_HIST_SLOTS; i++)
                if (v->slots[order[i]]) {
                        if (first < 0)
                                first = i;
                        last = i;
                }
        for (int i = first; first >= 0 && i <= last; i++) {
                int slot = order[i];
                json_object *bucket = json_object_new_object();

                if (is_signed && slot == 64) {
                        add(bucket, "min", json_object_new_int64(INT64_MIN));
                        add(bucket, "max", json_object_new_int64(-1));
                } else {
                        add(bucket, "min", u64(slot ? 1ULL << (slot - 1) : 0));
                        add(bucket, "max", u64(slot == 0 ? 0 : slot == 64 ? UINT64_MAX
                                                                         : (1ULL << slot) - 1));
                }
                add(bucket, "count", u64(v->slots[slot]));
                json_object_array_add(b, bucket);
        }
        return b;
}

static void agg_cb(const struct ut_agg_key *k, const struct ut_agg_val *v, void *userdata)
{
        struct agg_ctx *ctx = userdata;
        const struct ut_probe *cfg = &ctx->p->cfg;
        json_object *o = json_object_new_object();

        agg_key_json(ctx->p, k, o);
        add(o, "count", u64(v->count));
        if (cfg->mode == UT_MODE_HIST) {
                bool is_signed = cfg->agg_src == UT_SRC_ARG &&
                                 probe_value_signed(ctx->p, cfg->agg_idx, NULL);

                add(o, "sum", is_signed ? json_object_new_int64((int64_t)v->sum) : u64(v->sum));
                add(o, "buckets", hist_json(v, is_signed));
        }
        json_object_array_add(ctx->keys, o);
}

/* The biggest counts first; the overflow key last. */
static int agg_order(const void *a, const void *b)
{
        json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b, *v;
        bool ox = json_object_object_get_ex(x, "overflow", &v);
        bool oy = json_object_object_get_ex(y, "overflow", &v);
        uint64_t cx, cy;

        if (ox != oy)
                return ox ? 1 : -1;
        json_object_object_get_ex(x, "count", &v);
        cx = json_object_get_uint64(v);
        json_object_object_get_ex(y, "count", &v);
        cy = json_object_get_uint64(v);
        if (cx != cy)
                return cx > cy ? -1 : 1;
        return strcmp(json_object_to_json_string(x), json_object_to_json_string(y));
}

static int m_aggregations(struct client *c, json_object *params, json_object **result,
                          struct error *err)
{
        struct manager *m = server_manager(c->srv);
        uint64_t id;
        bool present;
        struct probe *p;
        struct agg_ctx ctx;
        char by[64];
        int r;

        r = param_u64(params, "id", &id, &present, err);
        if (r < 0)
                return r;
        if (!present)
                return error_set(err, E_INVALID_PARAMS, -EINVAL, "aggregations: \"id\" is missing");
        p = find_probe(c, id, err);
        if (!p)
                return -ENOENT;
        if (p->cfg.mode == UT_MODE_EVENTS)
                return error_set(err, E_INVALID_PARAMS, -EINVAL,
                                 "probe %llu streams events; it keeps no aggregation",
                                 (unsigned long long)id);
        ctx.p = p;
        ctx.keys = json_object_new_array();
        manager_aggregations(m, p, agg_cb, &ctx);
        json_object_array_sort(ctx.keys, agg_order);
        *result = json_object_new_object();
        add(*result, "id", u64(p->id));
        add(*result, "mode", json_object_new_string(mode_name(p)));
        if (p->spec.agg == AGG_HIST) {
                spec_format_field(&p->spec.agg_value, by, sizeof(by));
                add(*result, "value", json_object_new_string(by));
        }
        spec_format_field(&p->spec.agg_key, by, sizeof(by));
        add(*result, "by", p->spec.agg_key.field == FIELD_NONE ? NULL : json_object_new_string(by));
        add(*result, "keys", ctx.keys);
        add(*result, "stats", stats_json(m, p));
        return 0;
}

static int m_probes(struct client *c, json_object *params, json_object **result, struct error *err)
{
        return listing_probes(&c->who, params, result, err);
}

/* Who may call a method at all; what it then shows or changes is the
 * caller's own (find_probe, client_sees) unless the caller is privileged. */
enum method_access {
        ANYONE,
        PRIVILEGED,
};

static int m_reload(struct client *c, json_object *params, json_object **result,
                    struct error *err)
{
        (void)params;
        return config_reload(manager_config(server_manager(c->srv)), result, err);
}

static int m_metrics(struct client *c, json_object *params, json_object **result,
                     struct error *err)
{
        enum metrics_format fmt = METRICS_PROMETHEUS;
        struct buf b = { 0 };

        if (params) {
                json_object_object_foreach(params, k, v) {
                        if (!streq(k, "format"))
                                return error_set(err, E_INVALID_PARAMS, -EINVAL,
                                                 "metrics: unknown parameter \"%.64s\"", k);
                        if (json_object_is_type(v, json_type_string) &&
                            streq(json_object_get_string(v), "openmetrics"))
                                fmt = METRICS_OPENMETRICS;
                        else if (!json_object_is_type(v, json_type_string) ||
                                 !streq(json_object_get_string(v), "prometheus"))
                                return error_set(err, E_INVALID_PARAMS, -EINVAL,
                                                 "metrics: \"format\" is \"prometheus\" or "
                                                 "\"openmetrics\"");
                }
        }
        metrics_write(&b, c->srv, c, c->who.reads_metrics, fmt);
        if (b.oom || b.len > INT_MAX) {
                buf_free(&b);
                return -ENOMEM;
        }
        *result = json_object_new_object();
        add(*result, "format", json_object_new_string(fmt == METRICS_OPENMETRICS ? "openmetrics"
                                                                                 : "prometheus"));
        add(*result, "content_type",
            json_object_new_string(fmt == METRICS_OPENMETRICS
                                           ? "application/openmetrics-text; version=1.0.0; "
                                             "charset=utf-8"
                                           : "text/plain; version=0.0.4; charset=utf-8"));
        add(*result, "text", json_object_new_string_len(b.data, (int)b.len));
        buf_free(&b);
        return 0;
}

static const struct {
        const char *name;
        method_fn fn;
        enum method_access access;
} methods[] = {
        { "hello", m_hello, ANYONE },
        { "status", m_status, ANYONE },
        { "attach", m_attach, ANYONE },
        { "detach", m_detach, ANYONE },
        { "list", m_list, ANYONE },
        { "subscribe", m_subscribe, ANYONE },
        { "unsubscribe", m_unsubscribe, ANYONE },
        { "stats", m_stats, ANYONE },
        { "aggregations", m_aggregations, ANYONE },
        { "probes", m_probes, ANYONE },
        { "reload", m_reload, PRIVILEGED },
        { "metrics", m_metrics, ANYONE },
};

/* --- dispatch -------------------------------------------------------------- */

json_object *protocol_parse(const char *line, size_t len, struct error *err)
{
        json_tokener *tok;
        json_object *o;
        enum json_tokener_error jerr;

        if (memchr(line, 0, len)) {
                error_set(err, E_PARSE, -EINVAL, "parse error: NUL byte in request");
                return NULL;
        }
        if (len > INT_MAX) {
                error_set(err, E_PARSE, -EINVAL, "parse error: request too long");
                return NULL;
        }
        tok = json_tokener_new_ex(MAX_DEPTH);
        if (!tok) {
                error_set(err, E_INTERNAL, -ENOMEM, "out of memory");
                return NULL;
        }
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, line, (int)len);
        jerr = json_tokener_get_error(tok);
        if (jerr == json_tokener_continue) {
                /* the line ended inside a value: feed the terminator */
                o = json_tokener_parse_ex(tok, "", 1);
                jerr = json_tokener_get_error(tok);
        }
        if (!o || jerr != json_tokener_success) {
                error_set(err, E_PARSE, -EINVAL, "parse error: %s",
                          jerr == json_tokener_error_depth ? "nesting too deep"
                                                           : json_tokener_error_desc(jerr));
                json_object_put(o);
                o = NULL;
        } else if (json_tokener_get_parse_end(tok) < len) {
                size_t end = json_tokener_get_parse_end(tok);

                while (end < len && (line[end] == ' ' || line[end] == '\t'))
                        end++;
                if (end < len) {
                        error_set(err, E_PARSE, -EINVAL, "parse error: trailing data after the request");
                        json_object_put(o);
                        o = NULL;
                }
        }
        json_tokener_free(tok);
        return o;
}

void protocol_handle(struct client *c, const char *line, size_t len)
{
        struct error err = { 0 };
        json_object *req, *v, *id = NULL, *params = NULL, *result = NULL;
        const char *method;
        method_fn fn = NULL;
        enum method_access access = ANYONE;
        bool notification;
        int r;

        req = protocol_parse(line, len, &err);
        if (!req) {
                reply_error(c, NULL, &err);
                return;
        }
        if (!json_object_is_type(req, json_type_object)) {
                error_set(&err, E_INVALID_REQUEST, -EINVAL, "invalid request: not an object");
                reply_error(c, NULL, &err);
                goto out;
        }
        notification = !json_object_object_get_ex(req, "id", &id);
        if (id && !json_object_is_type(id, json_type_int) &&
            !json_object_is_type(id, json_type_string) && !json_object_is_type(id, json_type_null)) {
                error_set(&err, E_INVALID_REQUEST, -EINVAL,
                          "invalid request: \"id\" must be a number, a string or null");
                reply_error(c, NULL, &err);
                goto out;
        }
        if (!json_object_object_get_ex(req, "jsonrpc", &v) || !json_object_is_type(v, json_type_string) ||
            !streq(json_object_get_string(v), "2.0")) {
                error_set(&err, E_INVALID_REQUEST, -EINVAL, "invalid request: \"jsonrpc\" must be \"2.0\"");
                reply_error(c, id, &err);
                goto out;
        }
        if (!json_object_object_get_ex(req, "method", &v) || !json_object_is_type(v, json_type_string)) {
                error_set(&err, E_INVALID_REQUEST, -EINVAL, "invalid request: \"method\" must be a string");
                reply_error(c, id, &err);
                goto out;
        }
        method = json_object_get_string(v);
        if (json_object_object_get_ex(req, "params", &params) && params &&
            !json_object_is_type(params, json_type_object)) {
                error_set(&err, E_INVALID_PARAMS, -EINVAL, "\"params\" must be an object");
                reply_error(c, id, &err);
                goto out;
        }
        for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
                if (streq(methods[i].name, method)) {
                        fn = methods[i].fn;
                        access = methods[i].access;
                }
        if (!fn) {
                error_set(&err, E_METHOD_NOT_FOUND, -ENOENT, "unknown method \"%.64s\"", method);
                if (!notification)
                        reply_error(c, id, &err);
                goto out;
        }
        if (access == PRIVILEGED && !c->who.privileged) {
                error_set(&err, E_PERMISSION, -EPERM,
                          "%s is for root and the utraced group only", method);
                if (!notification)
                        reply_error(c, id, &err);
                goto out;
        }
        r = fn(c, params, &result, &err);
        if (notification) {
                json_object_put(result);
                goto out;
        }
        if (r < 0) {
                if (err.code == E_NONE)
                        error_set(&err, E_INTERNAL, r, "%s: %s", method, strerror(-r));
                reply_error(c, id, &err);
        } else {
                reply(c, id, result);
        }
        json_object_put(result);
out:
        json_object_put(req);
}
