// SPDX-License-Identifier: GPL-2.0-only
/* Fuzz target: decoding ring buffer records into event JSON. The record
 * comes from the kernel, but a bug there must never make the daemon read
 * past a record: every length in it is checked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct probe p;
        struct buf b = { 0 };
        void *rec;

        if (!p.nfields) {
                p.id = 1;
                p.nfields = 6;
                p.cfg.nvals = 3;
                p.cfg.vals[1].cast = 4 | UT_CAST_SIGNED;
                p.cfg.vals[2].src = UT_SRC_RETVAL;
                for (int i = 0; i < 6; i++) {
                        p.fields[i].index = (uint8_t)(i % 4);
                        p.fields[i].is_str = i >= 3;
                        p.fields[i].name[0] = (char)('a' + i);
                }
        }
        rec = malloc(size ? size : 1); /* exact size: ASan sees any overread */
        if (!rec)
                return 0;
        memcpy(rec, data, size);
        format_event(&b, &p, rec, size, 0);
        buf_free(&b);
        free(rec);
        return 0;
}
