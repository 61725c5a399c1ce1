/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Minimal test harness: each CHECK prints "ok N - what" or "not ok N - what"
 * (with the location), and tap_done() prints the plan and returns the exit
 * status. tests/runner.py counts the lines.
 */
#pragma once

#include <stdio.h>
#include <string.h>

#include "util.h"

static int tap_n, tap_failed;

#define CHECK(cond, ...)                                                                   \
        do {                                                                               \
                tap_n++;                                                                   \
                if (cond) {                                                                \
                        printf("ok %d - ", tap_n);                                         \
                } else {                                                                   \
                        tap_failed++;                                                      \
                        printf("not ok %d - %s:%d: ", tap_n, __FILE__, __LINE__);          \
                }                                                                          \
                printf(__VA_ARGS__);                                                       \
                putchar('\n');                                                             \
        } while (0)

#define CHECK_STR(a, b, what)                                                              \
        do {                                                                               \
                const char *_a = (a), *_b = (b);                                           \
                CHECK(_a && _b && strcmp(_a, _b) == 0, "%s: \"%s\" == \"%s\"", what,         \
                      _a ? _a : "(null)", _b ? _b : "(null)");                             \
        } while (0)

static inline int tap_done(void)
{
        printf("1..%d\n", tap_n);
        return tap_failed ? 1 : 0;
}
