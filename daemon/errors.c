// SPDX-License-Identifier: GPL-2.0-only
#include <stdarg.h>
#include <stdio.h>

#include "errors.h"
#include "util.h"

int error_set(struct error *e, enum error_code code, int neg_errno, const char *fmt, ...)
{
        va_list ap;

        if (e && e->code == E_NONE) {
                e->code = code;
                va_start(ap, fmt);
                vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
                va_end(ap);
        }
        return neg_errno < 0 ? neg_errno : -EINVAL;
}

const char *error_code_name(enum error_code code)
{
        static const char *const names[] = {
                [E_NONE] = "ok",
                [E_INVALID_SPEC] = "invalid-spec",
                [E_NO_FILE] = "no-such-file",
                [E_NOT_ELF] = "not-elf",
                [E_NO_SYMBOL] = "no-such-symbol",
                [E_NO_USDT] = "no-such-usdt-probe",
                [E_NO_PROBE] = "no-such-probe",
                [E_NO_PROCESS] = "no-such-process",
                [E_ATTACH] = "attach-failed",
                [E_PERMISSION] = "permission-denied",
                [E_LIMIT] = "limit-exceeded",
                [E_UNSUPPORTED] = "unsupported",
                [E_INTERNAL] = "internal-error",
                [E_CONFIG] = "config-error",
        };

        switch (code) {
        case E_PARSE: return "parse-error";
        case E_INVALID_REQUEST: return "invalid-request";
        case E_METHOD_NOT_FOUND: return "method-not-found";
        case E_INVALID_PARAMS: return "invalid-params";
        default: break;
        }
        if ((unsigned)code < ARRAY_SIZE(names) && names[code])
                return names[code];
        return "unknown";
}
