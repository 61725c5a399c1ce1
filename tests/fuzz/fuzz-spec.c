// SPDX-License-Identifier: GPL-2.0-only
/* Fuzz target: the probe spec, capture, filter, aggregation and field
 * grammars. The input is split at the first newline into a probe spec and an
 * expression that every expression parser gets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1), *expr;
        struct probe_spec s = { 0 };
        struct predicate preds[SPEC_MAX_PREDS];
        struct capture c;
        struct fieldref f;
        enum agg_mode m;
        struct error err = { 0 };
        char buf[64];

        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;
        expr = strchr(text, '\n');
        if (expr)
                *expr++ = 0;
        else
                expr = text;
        spec_parse_probe(text, size & 1 ? 42 : 0, &s, &err);
        probe_spec_done(&s);
        memset(&err, 0, sizeof(err));
        if (spec_parse_capture(expr, &c, &err) == 0)
                spec_format_field(&c.ref, buf, sizeof(buf));
        memset(&err, 0, sizeof(err));
        spec_parse_filter(expr, preds, SPEC_MAX_PREDS, &err);
        memset(&err, 0, sizeof(err));
        spec_parse_aggregate(expr, &m, &f, &err);
        memset(&err, 0, sizeof(err));
        if (spec_parse_field(expr, &f, &err) == 0)
                spec_format_field(&f, buf, sizeof(buf));
        free(text);
        return 0;
}
