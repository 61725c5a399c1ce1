// SPDX-License-Identifier: GPL-2.0-only
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usdt.h"
#include "util.h"

static const struct {
        const char *names[4]; /* 64-, 32-, 16- and 8-bit spellings */
        int off;
} regs[] = {
        { { "rax", "eax", "ax", "al" }, UT_REG_AX },
        { { "rbx", "ebx", "bx", "bl" }, UT_REG_BX },
        { { "rcx", "ecx", "cx", "cl" }, UT_REG_CX },
        { { "rdx", "edx", "dx", "dl" }, UT_REG_DX },
        { { "rsi", "esi", "si", "sil" }, UT_REG_SI },
        { { "rdi", "edi", "di", "dil" }, UT_REG_DI },
        { { "rbp", "ebp", "bp", "bpl" }, UT_REG_BP },
        { { "rsp", "esp", "sp", "spl" }, UT_REG_SP },
        { { "r8", "r8d", "r8w", "r8b" }, UT_REG_R8 },
        { { "r9", "r9d", "r9w", "r9b" }, UT_REG_R9 },
        { { "r10", "r10d", "r10w", "r10b" }, UT_REG_R10 },
        { { "r11", "r11d", "r11w", "r11b" }, UT_REG_R11 },
        { { "r12", "r12d", "r12w", "r12b" }, UT_REG_R12 },
        { { "r13", "r13d", "r13w", "r13b" }, UT_REG_R13 },
        { { "r14", "r14d", "r14w", "r14b" }, UT_REG_R14 },
        { { "r15", "r15d", "r15w", "r15b" }, UT_REG_R15 },
        { { "rip", "eip", "ip", NULL }, UT_REG_IP },
};

int usdt_reg_offset(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(regs); i++)
                for (int k = 0; k < 4; k++)
                        if (regs[i].names[k] && streq(regs[i].names[k], name))
                                return regs[i].off;
        return -ENOENT;
}

/* "%reg" at *p (up to the end of the token or ')'); advances *p. */
static int parse_reg(const char **p, int *off)
{
        char name[8];
        size_t n = 0;

        if (**p != '%')
                return -EINVAL;
        (*p)++;
        while (isalnum((unsigned char)**p) && n < sizeof(name) - 1)
                name[n++] = *(*p)++;
        name[n] = 0;
        *off = usdt_reg_offset(name);
        return *off < 0 ? -EINVAL : 0;
}

static int parse_one(const char *tok, struct ut_arg_spec *a)
{
        const char *p = tok;
        char *end;
        long size;
        int reg;

        memset(a, 0, sizeof(*a));
        size = strtol(p, &end, 10);
        if (end == p || *end != '@')
                return -EINVAL;
        a->is_signed = size < 0;
        size = labs(size);
        if (size != 1 && size != 2 && size != 4 && size != 8)
                return -EINVAL;
        a->size = size;
        p = end + 1;

        if (*p == '$') { /* constant */
                unsigned long long v;
                int bits = 8 * a->size;

                errno = 0;
                if (p[1] == '-')
                        v = (unsigned long long)strtoll(p + 1, &end, 0);
                else
                        v = strtoull(p + 1, &end, 0);
                if (end == p + 1 || *end || errno)
                        return -EINVAL;
                /* compilers write constants signed ("1@$-6" is 250): take the
                 * argument's bytes and extend them as its type says */
                if (bits < 64) {
                        v &= (1ULL << bits) - 1;
                        if (a->is_signed && (v >> (bits - 1)))
                                v |= ~0ULL << bits;
                }
                a->type = UT_ARG_CONST;
                a->val_off = v;
                return 0;
        }
        if (*p == '%') { /* register */
                if (parse_reg(&p, &reg) < 0 || *p || reg == UT_REG_IP)
                        return -EINVAL;
                a->type = UT_ARG_REG;
                a->reg_off = reg;
                return 0;
        }
        /* [disp](%reg): memory */
        if (*p != '(') {
                long long disp;

                errno = 0;
                disp = strtoll(p, &end, 0);
                if (end == p || errno)
                        return -EINVAL; /* symbolic displacement (sym(%rip)) */
                a->val_off = (__u64)disp;
                p = end;
        }
        if (*p != '(')
                return -EINVAL;
        p++;
        if (parse_reg(&p, &reg) < 0 || *p != ')' || p[1])
                return -EINVAL; /* index/scale forms are not supported */
        if (reg == UT_REG_IP)
                return -EINVAL; /* rip-relative needs the next instruction's address */
        a->type = UT_ARG_REG_DEREF;
        a->reg_off = reg;
        return 0;
}

/* The next space-separated argument of text at *p into tok; 0 at the end, 1, or -E2BIG. */
static int next_arg(const char **p, char *tok, size_t size)
{
        size_t len;

        while (**p == ' ')
                (*p)++;
        if (!**p)
                return 0;
        len = strcspn(*p, " ");
        if (len >= size)
                return -E2BIG;
        memcpy(tok, *p, len);
        tok[len] = 0;
        *p += len;
        return 1;
}

int usdt_parse_args(const char *text, struct ut_arg_spec *specs, int max, struct error *err)
{
        const char *p = text;
        char tok[USDT_ARG_MAX];
        int n = 0, r;

        while ((r = next_arg(&p, tok, sizeof(tok))) > 0) {
                if (n >= max)
                        return error_set(err, E_UNSUPPORTED, -E2BIG,
                                         "USDT probe has more than %d arguments", max);
                if (parse_one(tok, &specs[n]) < 0)
                        return error_set(err, E_UNSUPPORTED, -EINVAL,
                                         "cannot decode USDT argument %d \"%s\"", n, tok);
                n++;
        }
        if (r < 0)
                return error_set(err, E_UNSUPPORTED, -EINVAL, "USDT argument too long: %.32s...", p);
        return n;
}

int usdt_describe_args(const char *text, struct usdt_arg *args, int max)
{
        const char *p = text;
        char tok[USDT_ARG_MAX];
        int n = 0, r;

        while ((r = next_arg(&p, tok, sizeof(tok))) > 0) {
                char *end;
                long size;

                if (n >= max)
                        return -E2BIG;
                size = strtol(tok, &end, 10);
                if (end == tok || *end != '@' || !end[1])
                        return -EINVAL;
                args[n].is_signed = size < 0;
                args[n].size = (int)labs(size);
                snprintf(args[n].location, sizeof(args[n].location), "%s", end + 1);
                n++;
        }
        return r < 0 ? r : n;
}
