// SPDX-License-Identifier: GPL-2.0-only
#include <json-c/json.h>

#include "request.h"
#include "state.h"
#include "usdt.h"
#include "util.h"

#define STATE_VERSION 1

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
        json_object_object_add(o, "pins", json_object_new_int64(p->next_pin));
        if (p->have_shared_site)
                json_object_object_add(o, "shared_site", json_object_new_int64(p->shared_site));
        for (size_t i = 0; i < p->nlocs; i++) {
                const struct probe_location *l = &p->locs[i];
                json_object *lo = json_object_new_object();

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
                json_object_array_add(atts, ao);
        }
        json_object_object_add(o, "locations", locs);
        json_object_object_add(o, "attachments", atts);
        return o;
}

int state_save(const char *path, struct probe *const *probes, size_t n, uint64_t next_id)
{
        json_object *root = json_object_new_object();
        json_object *arr = json_object_new_array();
        const char *text;
        int r;

        json_object_object_add(root, "version", json_object_new_int(STATE_VERSION));
        json_object_object_add(root, "next_id", json_object_new_int64((int64_t)next_id));
        for (size_t i = 0; i < n; i++)
                json_object_array_add(arr, probe_to_json(probes[i]));
        json_object_object_add(root, "probes", arr);
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE);
        r = write_file_atomic(path, text, strlen(text));
        json_object_put(root);
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
                };
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

int state_load(const char *path, state_probe_cb cb, state_bad_cb bad, void *userdata,
               uint64_t *next_id, struct error *err)
{
        _cleanup_free_ char *text = NULL;
        json_object *root, *probes;
        uint64_t version;
        int r;

        r = read_file(path, &text, 64u << 20);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return error_set(err, E_INTERNAL, r, "cannot read %s: %s", path, strerror(-r));
        root = json_tokener_parse(text);
        if (!root || get_u64(root, "version", &version) < 0 || get_u64(root, "next_id", next_id) < 0 ||
            !json_object_object_get_ex(root, "probes", &probes) ||
            !json_object_is_type(probes, json_type_array)) {
                json_object_put(root);
                return error_set(err, E_INTERNAL, -EINVAL, "%s is corrupt", path);
        }
        if (version != STATE_VERSION) {
                json_object_put(root);
                return error_set(err, E_INTERNAL, -EINVAL, "%s has unknown version %llu", path,
                                 (unsigned long long)version);
        }
        for (size_t i = 0; i < json_object_array_length(probes); i++) {
                json_object *o = json_object_array_get_idx(probes, i);
                struct error perr = { 0 };
                struct probe *p = NULL;
                uint64_t id = 0;

                get_u64(o, "id", &id);
                if (probe_from_json(o, &p, &perr) < 0)
                        bad(id, perr.msg[0] ? perr.msg : "cannot rebuild", userdata);
                else
                        cb(p, userdata);
        }
        json_object_put(root);
        return 0;
}
