/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

/*
 * A user-facing failure: a stable code (sent on the wire, see
 * utrace-protocol(7)) and a message that names the probe, file or symbol.
 * Functions that can fail for reasons a user must see take a struct error *
 * and return error_set(...), which yields the negative errno given.
 */
enum error_code {
        /* JSON-RPC 2.0's own */
        E_PARSE = -32700,
        E_INVALID_REQUEST = -32600,
        E_METHOD_NOT_FOUND = -32601,
        E_INVALID_PARAMS = -32602,
        E_NONE = 0,
        E_INVALID_SPEC = 1,  /* probe spec, argument or filter does not parse */
        E_NO_FILE = 2,       /* target file missing or unreadable */
        E_NOT_ELF = 3,       /* not an ELF file we can probe */
        E_NO_SYMBOL = 4,     /* symbol not found */
        E_NO_USDT = 5,       /* USDT probe not found */
        E_NO_PROBE = 6,      /* no probe with that id */
        E_NO_PROCESS = 7,    /* pid does not exist */
        E_ATTACH = 8,        /* the kernel refused the attachment */
        E_PERMISSION = 9,    /* the caller may not do this */
        E_LIMIT = 10,        /* a limit was reached */
        E_UNSUPPORTED = 11,  /* valid, but this kernel or build cannot do it */
        E_INTERNAL = 12,     /* daemon-side failure (I/O, memory) */
        E_CONFIG = 13,       /* the configuration has errors (reload refused) */
};

struct error {
        enum error_code code;
        char msg[512];
};

int error_set(struct error *e, enum error_code code, int neg_errno, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

const char *error_code_name(enum error_code code);
