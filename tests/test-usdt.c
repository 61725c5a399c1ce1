// SPDX-License-Identifier: GPL-2.0-only
#include "tap.h"
#include "usdt.h"

int main(void)
{
        struct ut_arg_spec a[UT_MAX_ARGS];
        struct error err = { 0 };
        int n;

        n = usdt_parse_args("-4@%eax 8@-8(%rbp) 4@$5 -1@$-3 2@(%r12) 8@%r9", a, UT_MAX_ARGS, &err);
        CHECK(n == 6, "six arguments (%d) %s", n, err.msg);
        CHECK(a[0].type == UT_ARG_REG && a[0].reg_off == UT_REG_AX && a[0].size == 4 &&
                      a[0].is_signed, "-4@%%eax");
        CHECK(a[1].type == UT_ARG_REG_DEREF && a[1].reg_off == UT_REG_BP &&
                      (long long)a[1].val_off == -8 && a[1].size == 8 && !a[1].is_signed,
              "8@-8(%%rbp)");
        CHECK(a[2].type == UT_ARG_CONST && a[2].val_off == 5 && a[2].size == 4, "4@$5");
        CHECK(a[3].type == UT_ARG_CONST && (long long)a[3].val_off == -3 && a[3].is_signed,
              "-1@$-3");
        CHECK(a[4].type == UT_ARG_REG_DEREF && a[4].reg_off == UT_REG_R12 && a[4].val_off == 0,
              "2@(%%r12)");
        CHECK(a[5].type == UT_ARG_REG && a[5].reg_off == UT_REG_R9, "8@%%r9");
        CHECK(usdt_parse_args("", a, UT_MAX_ARGS, &err) == 0, "no arguments");
        CHECK(usdt_parse_args("  8@%rdi  ", a, UT_MAX_ARGS, &err) == 1, "extra spaces");
        CHECK(usdt_reg_offset("sil") == UT_REG_SI && usdt_reg_offset("r15d") == UT_REG_R15,
              "8- and 32-bit register names");

        /* constants as compilers write them: signed, whatever the argument's type */
        n = usdt_parse_args("1@$-6 -1@$-8 2@$-536 -2@$65000 4@$-294967296 -4@$-100000 "
                            "8@$-446744073709551616 -8@$-5000000000 1@$0x1ff", a, UT_MAX_ARGS, &err);
        CHECK(n == 9, "nine constants (%d) %s", n, err.msg);
        CHECK(a[0].val_off == 250, "1@$-6 is 250 (%llu)", (unsigned long long)a[0].val_off);
        CHECK((long long)a[1].val_off == -8, "-1@$-8 is -8");
        CHECK(a[2].val_off == 65000, "2@$-536 is 65000");
        CHECK((long long)a[3].val_off == -536, "-2@$65000 is -536");
        CHECK(a[4].val_off == 4000000000ull, "4@$-294967296 is 4000000000");
        CHECK((long long)a[5].val_off == -100000, "-4@$-100000 is -100000");
        CHECK(a[6].val_off == 18000000000000000000ull, "8@$-446744073709551616 is 18e18");
        CHECK((long long)a[7].val_off == -5000000000ll, "-8@$-5000000000");
        CHECK(a[8].val_off == 0xff, "1@$0x1ff keeps its byte");

        memset(&err, 0, sizeof(err));
        CHECK(usdt_parse_args("8@-8(%rbp,%rax,8)", a, UT_MAX_ARGS, &err) < 0 &&
                      err.code == E_UNSUPPORTED, "index/scale is unsupported: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(usdt_parse_args("8@foo(%rip)", a, UT_MAX_ARGS, &err) < 0, "symbolic rip: %s",
              err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(usdt_parse_args("3@%eax", a, UT_MAX_ARGS, &err) < 0, "size 3: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(usdt_parse_args("8@%xyz", a, UT_MAX_ARGS, &err) < 0, "bad register: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(usdt_parse_args("8@%rax 8@%rax", a, 1, &err) < 0, "too many: %s", err.msg);

        {
                struct usdt_arg d[UT_MAX_ARGS];

                n = usdt_describe_args("-4@%eax 8@v_u64(%rip)  1@$-6", d, UT_MAX_ARGS);
                CHECK(n == 3, "described three arguments (%d)", n);
                CHECK(d[0].size == 4 && d[0].is_signed && streq(d[0].location, "%eax"),
                      "-4@%%eax: 4 bytes, signed, %%eax");
                CHECK(d[1].size == 8 && !d[1].is_signed && streq(d[1].location, "v_u64(%rip)"),
                      "an argument the program cannot decode is still described");
                CHECK(d[2].size == 1 && streq(d[2].location, "$-6"), "1@$-6");
                CHECK(usdt_describe_args("%eax", d, UT_MAX_ARGS) == -EINVAL, "no size");
                CHECK(usdt_describe_args("8@%rax 8@%rdi", d, 1) == -E2BIG, "too many");
        }
        return tap_done();
}
