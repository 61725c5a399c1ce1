/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <linux/types.h>

#include "errors.h"
#include "utrace.h"

#define USDT_ARG_MAX 128 /* bytes of one argument as the note spells it */

/*
 * Parse the argument string of a .note.stapsdt entry ("-4@%eax 8@-8(%rbp)
 * 4@$5") into argument specs for the BPF program. Returns the number of
 * arguments, or a negative errno with err naming the argument it could not
 * decode.
 */
int usdt_parse_args(const char *text, struct ut_arg_spec *specs, int max, struct error *err);

/* Register name (without '%') to its offset in struct pt_regs; -ENOENT. */
int usdt_reg_offset(const char *name);
