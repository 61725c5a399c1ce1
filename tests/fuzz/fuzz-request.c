// SPDX-License-Identifier: GPL-2.0-only
/* Fuzz target: one request line through the protocol parser and, for attach
 * parameters, through the attach request parser and every grammar below it. */
#include <stdint.h>
#include <string.h>

#include "protocol.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct error err = { 0 };
        struct probe_spec spec;
        json_object *req, *params;

        req = protocol_parse((const char *)data, size, &err);
        if (!req)
                return 0;
        if (json_object_is_type(req, json_type_object) &&
            json_object_object_get_ex(req, "params", &params)) {
                memset(&err, 0, sizeof(err));
                request_parse_attach(params, &spec, &err);
                probe_spec_done(&spec);
        }
        json_object_put(req);
        return 0;
}
