/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <linux/types.h>
#include <stdbool.h>

#include "errors.h"
#include "utrace.h"

#define USDT_ARG_MAX 128 /* bytes of one argument as the note spells it */

/* One argument as the note writes it: "-4@%eax" is 4 bytes, signed, at "%eax". */
struct usdt_arg {
        int size;
        bool is_signed;
        char location[USDT_ARG_MAX];
};

/*
 * Parse the argument string of a .note.stapsdt entry ("-4@%eax 8@-8(%rbp)
 * 4@$5") into argument specs for the BPF program. Returns the number of
 * arguments, or a negative errno with err naming the argument it could not
 * decode.
 */
int usdt_parse_args(const char *text, struct ut_arg_spec *specs, int max, struct error *err);

/*
 * Split the argument string into its arguments as written, whether or not
 * the BPF program can decode them. Returns the number of arguments, -EINVAL
 * for an argument without a size, or -E2BIG for more than max.
 */
int usdt_describe_args(const char *text, struct usdt_arg *args, int max);

/* Register name (without '%') to its offset in struct pt_regs; -ENOENT. */
int usdt_reg_offset(const char *name);
