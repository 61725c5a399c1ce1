// SPDX-License-Identifier: GPL-2.0-only
#include <limits.h>

#include "request.h"
#include "utrace.h"
#include "util.h"

static int want_type(json_object *v, json_type t, const char *key, struct error *err)
{
        static const char *const names[] = {
                [json_type_boolean] = "a boolean", [json_type_int] = "an integer",
                [json_type_string] = "a string", [json_type_array] = "an array",
        };

        if (json_object_is_type(v, t))
                return 0;
        return error_set(err, E_INVALID_SPEC, -EINVAL, "attach: \"%s\" must be %s", key, names[t]);
}

static int scope_param(json_object *params, const char *key, char **ret, struct error *err)
{
        json_object *v;
        int r;

        if (!json_object_object_get_ex(params, key, &v))
                return 0;
        r = want_type(v, json_type_string, key, err);
        if (r < 0)
                return r;
        if (!*json_object_get_string(v))
                return error_set(err, E_INVALID_SPEC, -EINVAL, "attach: \"%s\" is empty", key);
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

int request_parse_attach(json_object *params, struct probe_spec *s, struct error *err)
{
        json_object *spec = NULL, *v;
        long long pid = 0;
        int r;

        memset(s, 0, sizeof(*s));
        if (!params || !json_object_is_type(params, json_type_object))
                return error_set(err, E_INVALID_SPEC, -EINVAL, "attach: params must be an object");
        json_object_object_foreach(params, key, val) {
                static const char *const known[] = {
                        "spec", "pid", "args", "filter", "latency", "aggregate", "by",
                        "max_keys", "transient", "comm", "exe", "cgroup", "hold",
                };
                bool ok = false;

                for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                        ok |= streq(key, known[i]);
                if (!ok)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "attach: unknown parameter \"%.64s\"", key);
                (void)val;
        }
        if (!json_object_object_get_ex(params, "spec", &spec))
                return error_set(err, E_INVALID_SPEC, -EINVAL, "attach: \"spec\" is missing");
        r = want_type(spec, json_type_string, "spec", err);
        if (r < 0)
                return r;
        if (json_object_object_get_ex(params, "pid", &v)) {
                r = want_type(v, json_type_int, "pid", err);
                if (r < 0)
                        return r;
                pid = json_object_get_int64(v);
                if (pid < 0 || pid > INT_MAX)
                        return error_set(err, E_INVALID_SPEC, -EINVAL, "attach: bad pid %lld", pid);
        }
        r = spec_parse_probe(json_object_get_string(spec), (pid_t)pid, s, err);
        if (r < 0)
                return r;

        s->default_caps = true;
        if (json_object_object_get_ex(params, "args", &v)) {
                size_t n;

                r = want_type(v, json_type_array, "args", err);
                if (r < 0)
                        return r;
                n = json_object_array_length(v);
                if (n > SPEC_MAX_CAPTURES)
                        return error_set(err, E_LIMIT, -E2BIG, "attach: more than %d --arg",
                                         SPEC_MAX_CAPTURES);
                for (size_t i = 0; i < n; i++) {
                        json_object *a = json_object_array_get_idx(v, i);

                        r = want_type(a, json_type_string, "args[]", err);
                        if (r < 0)
                                return r;
                        r = spec_parse_capture(json_object_get_string(a), &s->caps[i], err);
                        if (r < 0)
                                return r;
                }
                s->ncaps = (int)n;
                s->default_caps = false;
        }
        if (json_object_object_get_ex(params, "filter", &v)) {
                r = want_type(v, json_type_string, "filter", err);
                if (r < 0)
                        return r;
                s->filter = strdup(json_object_get_string(v));
                if (!s->filter)
                        return -ENOMEM;
                r = spec_parse_filter(s->filter, s->preds, SPEC_MAX_PREDS, err);
                if (r < 0)
                        return r;
                s->npreds = r;
        }
        if (json_object_object_get_ex(params, "latency", &v)) {
                r = want_type(v, json_type_boolean, "latency", err);
                if (r < 0)
                        return r;
                s->latency = json_object_get_boolean(v);
        }
        if (json_object_object_get_ex(params, "aggregate", &v)) {
                r = want_type(v, json_type_string, "aggregate", err);
                if (r < 0)
                        return r;
                r = spec_parse_aggregate(json_object_get_string(v), &s->agg, &s->agg_value, err);
                if (r < 0)
                        return r;
        }
        if (json_object_object_get_ex(params, "by", &v)) {
                r = want_type(v, json_type_string, "by", err);
                if (r < 0)
                        return r;
                r = spec_parse_field(json_object_get_string(v), &s->agg_key, err);
                if (r < 0)
                        return r;
        }
        if (json_object_object_get_ex(params, "max_keys", &v)) {
                long long k;

                r = want_type(v, json_type_int, "max_keys", err);
                if (r < 0)
                        return r;
                k = json_object_get_int64(v);
                if (k < 1 || k > UT_AGG_KEYS)
                        return error_set(err, E_INVALID_SPEC, -EINVAL,
                                         "attach: max_keys must be 1..%d", UT_AGG_KEYS);
                s->max_keys = (uint32_t)k;
        }
        if (json_object_object_get_ex(params, "transient", &v)) {
                r = want_type(v, json_type_boolean, "transient", err);
                if (r < 0)
                        return r;
                s->transient = json_object_get_boolean(v);
        }
        if (json_object_object_get_ex(params, "hold", &v)) {
                r = want_type(v, json_type_boolean, "hold", err);
                if (r < 0)
                        return r;
                s->hold = json_object_get_boolean(v);
        }
        r = scope_param(params, "comm", &s->comm, err);
        if (r >= 0)
                r = scope_param(params, "exe", &s->exe, err);
        if (r >= 0)
                r = scope_param(params, "cgroup", &s->cgroup, err);
        if (r < 0)
                return r;
        if (s->exe && s->exe[0] != '/')
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "attach: exe \"%s\" must be an absolute path", s->exe);
        if (s->comm && strlen(s->comm) >= UT_COMM_LEN)
                return error_set(err, E_INVALID_SPEC, -EINVAL,
                                 "attach: comm \"%s\" is longer than %d bytes: it never matches",
                                 s->comm, UT_COMM_LEN - 1);
        return 0;
}
