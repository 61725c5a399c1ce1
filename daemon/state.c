// SPDX-License-Identifier: GPL-2.0-only
#include <json-c/json.h>
#include <limits.h>

#include "format.h"
#include "request.h"
#include "state.h"
#include "usdt.h"
#include "util.h"

#define STATE_VERSION 2

static json_object *probe_to_json(const struct probe *p)
{
        json_object *o = json_object_new_object();
        json_object *locs = json_object_new_array();
        json_object *atts = json_object_new_array();

        json_object_object_add(o, "id", json_object_new_int64((int64_t)p->id));
        json_object_object_add(o, "slot", json_object_new_int64(p->slot));
        json_object_object_add(o, "gen", json_object_new_int64(p->gen));
        json_object_object_add(o, "owner", json_object_new_int64(p->owner));
        json_object_object_add(o, "restricted", json_object_new_boolean(p->restricted));
        json_object_object_add(o, "created", json_object_new_int64((int64_t)p->created));
        json_object_object_add(o, "request", json_tokener_parse(p->request));
        if (p->config)
                json_object_object_add(o, "config", json_object_new_string(p->config));
        if (p->intent != PROBE_STEADY)
                json_object_object_add(o, "intent", json_object_new_string(
                                               p->intent == PROBE_ATTACHING ? "attaching" : "detaching"));
        json_object_object_add(o, "pins", json_object_new_int64(p->next_pin));
        if (p->have_shared_site)
                json_object_object_add(o, "shared_site", json_object_new_int64(p->shared_site));
        for (size_t i = 0; i < p->nlocs; i++) {
                const struct probe_location *l = &p->locs[i];
                json_object *lo = json_object_new_object();

                if (l->hole) {
                        json_object_object_add(lo, "hole", json_object_new_boolean(1));
                        json_object_array_add(locs, lo);
                        continue;
                }
                json_object_object_add(lo, "name", json_object_new_string(l->name));
                json_object_object_add(lo, "offset", json_object_new_int64((int64_t)l->offset));
                json_object_object_add(lo, "ref_ctr", json_object_new_int64((int64_t)l->ref_ctr));
                json_object_object_add(lo, "site", json_object_new_int64(l->site));
                if (l->args_text)
                        json_object_object_add(lo, "args", json_object_new_string(l->args_text));
                json_object_array_add(locs, lo);
        }
        for (size_t i = 0; i < p->natts; i++) {
                const struct attachment *a = &p->atts[i];
                json_object *ao = json_object_new_object();

                json_object_object_add(ao, "path", json_object_new_string(a->path));
                json_object_object_add(ao, "dev", json_object_new_int64((int64_t)a->dev));
                json_object_object_add(ao, "ino", json_object_new_int64((int64_t)a->ino));
                json_object_object_add(ao, "loc_first", json_object_new_int64((int64_t)a->loc_first));
                json_object_object_add(ao, "loc_count", json_object_new_int64((int64_t)a->loc_count));
                json_object_object_add(ao, "pin_first", json_object_new_int64(a->pin_first));
                json_object_object_add(ao, "pin_count", json_object_new_int64(a->pin_count));
                if (a->watched)
                        json_object_object_add(ao, "watched", json_object_new_boolean(1));
                json_object_object_add(ao, "kdev", json_object_new_int64((int64_t)a->kdev));
                json_object_object_add(ao, "kino", json_object_new_int64((int64_t)a->kino));
                json_object_array_add(atts, ao);
        }
        json_object_object_add(o, "locations", locs);
        json_object_object_add(o, "attachments", atts);
        return o;
}

int state_save(const char *path, struct probe *const *probes, size_t n, uint64_t next_id)
{
        struct buf b = { 0 };
        char head[64];
        int r;

        snprintf(head, sizeof(head), "{\"version\":%d,\"next_id\":%llu}\n", STATE_VERSION,
                 (unsigned long long)next_id);
        buf_puts(&b, head);
        for (size_t i = 0; i < n; i++) {
                json_object *o = probe_to_json(probes[i]);

                buf_puts(&b, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                    JSON_C_TO_STRING_NOSLASHESCAPE));
                buf_putc(&b, '\n');
                json_object_put(o);
        }
        r = b.oom ? -ENOMEM : write_file_atomic(path, b.data, b.len);
        buf_free(&b);
        return r;
}

static int get_u64(json_object *o, const char *key, uint64_t *ret)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EINVAL;
        *ret = (uint64_t)json_object_get_int64(v);
        return 0;
}

static int probe_from_json(json_object *o, struct probe **ret, struct error *err)
{
        struct probe *p = probe_new();
        json_object *req, *locs, *atts, *v;
        uint64_t x;
        int r = -EINVAL;

        if (!p)
                return -ENOMEM;
        if (get_u64(o, "id", &p->id) < 0 || get_u64(o, "slot", &x) < 0 || x >= UT_MAX_PROBES)
                goto bad;
        p->slot = (uint32_t)x;
        if (get_u64(o, "gen", &x) < 0)
                goto bad;
        p->gen = (uint32_t)x;
        if (get_u64(o, "owner", &x) < 0 || !json_object_object_get_ex(o, "restricted", &v))
                goto bad;
        p->owner = (uid_t)x;
        p->restricted = json_object_get_boolean(v);
        if (get_u64(o, "created", &p->created) < 0 || get_u64(o, "pins", &x) < 0)
                goto bad;
        p->next_pin = (unsigned)x;
        if (json_object_object_get_ex(o, "config", &v)) {
                if (!json_object_is_type(v, json_type_string))
                        goto bad;
                p->config = strdup(json_object_get_string(v));
                if (!p->config) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        if (json_object_object_get_ex(o, "intent", &v)) {
                const char *intent = json_object_get_string(v);

                if (streq(intent, "attaching"))
                        p->intent = PROBE_ATTACHING;
                else if (streq(intent, "detaching"))
                        p->intent = PROBE_DETACHING;
                else
                        goto bad;
        }
        if (get_u64(o, "shared_site", &x) == 0) {
                p->shared_site = (uint32_t)x;
                p->have_shared_site = true;
        }
        if (!json_object_object_get_ex(o, "request", &req) ||
            !json_object_object_get_ex(o, "locations", &locs) ||
            !json_object_object_get_ex(o, "attachments", &atts) ||
            !json_object_is_type(locs, json_type_array) || !json_object_is_type(atts, json_type_array))
                goto bad;
        p->request = strdup(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
        if (!p->request) {
                r = -ENOMEM;
                goto fail;
        }
        r = request_parse_attach(req, &p->spec, err);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < json_object_array_length(locs); i++) {
                json_object *lo = json_object_array_get_idx(locs, i);
                struct probe_location *l;

                if (grow_array(&p->locs, &p->locs_cap, p->nlocs + 1, sizeof(*p->locs)) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                l = &p->locs[p->nlocs];
                memset(l, 0, sizeof(*l));
                if (json_object_object_get_ex(lo, "hole", &v) && json_object_get_boolean(v)) {
                        l->hole = true;
                        p->nlocs++;
                        continue;
                }
                if (!json_object_object_get_ex(lo, "name", &v) || !json_object_is_type(v, json_type_string))
                        goto bad;
                l->name = strdup(json_object_get_string(v));
                p->nlocs++;
                if (!l->name || get_u64(lo, "offset", &l->offset) < 0 ||
                    get_u64(lo, "ref_ctr", &l->ref_ctr) < 0 || get_u64(lo, "site", &x) < 0 ||
                    x >= UT_MAX_SITES)
                        goto bad;
                l->site = (uint32_t)x;
                if (json_object_object_get_ex(lo, "args", &v)) {
                        l->args_text = strdup(json_object_get_string(v));
                        if (!l->args_text)
                                goto bad;
                        r = usdt_parse_args(l->args_text, l->args, UT_MAX_ARGS, err);
                        if (r < 0)
                                goto fail;
                        l->nargs = r;
                }
        }
        for (size_t i = 0; i < json_object_array_length(atts); i++) {
                json_object *ao = json_object_array_get_idx(atts, i);
                struct attachment *a;
                uint64_t dev, ino, lf, lc, pf, pc;

                if (!json_object_object_get_ex(ao, "path", &v) || !json_object_is_type(v, json_type_string) ||
                    get_u64(ao, "dev", &dev) < 0 || get_u64(ao, "ino", &ino) < 0 ||
                    get_u64(ao, "loc_first", &lf) < 0 || get_u64(ao, "loc_count", &lc) < 0 ||
                    get_u64(ao, "pin_first", &pf) < 0 || get_u64(ao, "pin_count", &pc) < 0 ||
                    lf + lc > p->nlocs || pf + pc > p->next_pin)
                        goto bad;
                if (grow_array(&p->atts, &p->atts_cap, p->natts + 1, sizeof(*p->atts)) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                a = &p->atts[p->natts];
                *a = (struct attachment){
                        .path = strdup(json_object_get_string(v)),
                        .fd = -1,
                        .dev = (dev_t)dev, .ino = (ino_t)ino,
                        .loc_first = lf, .loc_count = lc,
                        .pin_first = (unsigned)pf, .pin_count = (unsigned)pc,
                        .watched = json_object_object_get_ex(ao, "watched", &v) &&
                                   json_object_get_boolean(v),
                };
                if (get_u64(ao, "kdev", &a->kdev) < 0 || get_u64(ao, "kino", &a->kino) < 0) {
                        a->kdev = kernel_dev(a->dev);
                        a->kino = a->ino;
                }
                p->natts++;
                if (!a->path) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        r = probe_compile(p, err);
        if (r < 0)
                goto fail;
        *ret = p;
        return 0;
bad:
        r = error_set(err, E_INTERNAL, -EINVAL, "malformed probe entry");
fail:
        probe_free(p);
        return r;
}

/* A damaged file is kept for inspection next to the state file. */
static void keep_damaged(const char *path, const char *text, size_t len)
{
        char copy[PATH_MAX];

        snprintf(copy, sizeof(copy), "%s.corrupt", path);
        write_file_atomic(copy, text, len);
}

int state_load(const char *path, state_probe_cb cb, state_bad_cb bad, void *userdata,
               uint64_t *next_id, struct error *err)
{
        _cleanup_free_ char *text = NULL;
        char *line, *end;
        unsigned lineno = 1;
        size_t len, damaged = 0;
        uint64_t version;
        json_object *head;
        int r;

        r = read_file(path, &text, 256u << 20);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return error_set(err, E_INTERNAL, r, "cannot read %s: %s", path, strerror(-r));
        len = (size_t)r;
        *next_id = 0;
        end = memchr(text, '\n', len);
        if (end)
                *end = 0;
        head = json_tokener_parse(text);
        if (!head || get_u64(head, "version", &version) < 0 || version != STATE_VERSION ||
            get_u64(head, "next_id", next_id) < 0) {
                *next_id = 0;
                bad(0, "line 1 is not a state header", userdata);
                damaged++;
        }
        json_object_put(head);
        if (end)
                *end = '\n';
        for (line = end ? end + 1 : text + len; line < text + len; line = end + 1) {
                struct error perr = { 0 };
                struct probe *p = NULL;
                json_object *o;
                uint64_t id = 0;
                char reason[96];

                lineno++;
                end = memchr(line, '\n', (size_t)(text + len - line));
                if (!end) {
                        /* torn: the last line has no end */
                        snprintf(reason, sizeof(reason), "line %u is incomplete", lineno);
                        bad(0, reason, userdata);
                        damaged++;
                        break;
                }
                *end = 0;
                o = json_tokener_parse(line);
                if (!o || !json_object_is_type(o, json_type_object)) {
                        snprintf(reason, sizeof(reason), "line %u is not a JSON object", lineno);
                        bad(0, reason, userdata);
                        damaged++;
                        json_object_put(o);
                        *end = '\n';
                        continue;
                }
                get_u64(o, "id", &id);
                if (probe_from_json(o, &p, &perr) < 0) {
                        snprintf(reason, sizeof(reason), "line %u: %.64s", lineno,
                                 perr.msg[0] ? perr.msg : "cannot rebuild");
                        bad(id, reason, userdata);
                        damaged++;
                } else {
                        cb(p, userdata);
                }
                json_object_put(o);
                *end = '\n';
        }
        if (!damaged)
                return 0;
        keep_damaged(path, text, len);
        error_set(err, E_INTERNAL, -EINVAL, "%s is damaged (%zu line%s); it is kept as %s.corrupt "
                  "and what could be read is used", path, damaged, damaged == 1 ? "" : "s", path);
        return 1;
}
