// SPDX-License-Identifier: GPL-2.0-only
/*
 * The producer of the per-hit and streaming benchmarks, driven on stdin:
 *
 *   run FUNC N     call FUNC(i, i + 1) for i < N as fast as possible and
 *                  answer "ns TOTAL" (CLOCK_MONOTONIC, whole loop)
 *   quit
 *
 * FUNC is one of
 *   bench_nop      first instruction a one-byte nop: the kernel emulates it
 *                  (as at USDT sites), so a hit costs no single-step
 *   bench_step     first instruction a lea: the kernel single-steps it
 *   bench_nop_ref, bench_step_ref
 *                  identical twins that are never probed: the baseline,
 *                  measured in the same process next to every probed run
 *
 * The functions are written in assembly so that their first instruction is
 * exactly the one named, whatever the compiler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile long bench_sink;

#define FUNC(name, first)                                          \
        asm(".text\n"                                              \
            ".globl " #name "\n"                                   \
            ".type " #name ", @function\n"                         \
            ".p2align 4\n" #name ":\n"                             \
            first "\n"                                             \
            "lea (%rdi,%rsi), %rax\n"                              \
            "mov %rdi, bench_sink(%rip)\n"                         \
            "ret\n"                                                \
            ".size " #name ", . - " #name "\n")

FUNC(bench_nop, "nop");
FUNC(bench_nop_ref, "nop");
FUNC(bench_step, "lea (%rdi), %rax");
FUNC(bench_step_ref, "lea (%rdi), %rax");

long bench_nop(long a, long b);
long bench_nop_ref(long a, long b);
long bench_step(long a, long b);
long bench_step_ref(long a, long b);

static const struct {
        const char *name;
        long (*fn)(long, long);
} funcs[] = {
        { "bench_nop", bench_nop },
        { "bench_nop_ref", bench_nop_ref },
        { "bench_step", bench_step },
        { "bench_step_ref", bench_step_ref },
};

static unsigned long long now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

int main(void)
{
        char line[256], name[64];
        long n;

        setvbuf(stdout, NULL, _IOLBF, 0);
        printf("ready %d\n", (int)getpid());
        while (fgets(line, sizeof(line), stdin)) {
                long (*volatile fn)(long, long) = NULL;
                unsigned long long t0;

                if (strncmp(line, "quit", 4) == 0)
                        break;
                if (sscanf(line, "run %63s %ld", name, &n) != 2) {
                        printf("error: unknown command: %s", line);
                        continue;
                }
                for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
                        if (strcmp(funcs[i].name, name) == 0)
                                fn = funcs[i].fn;
                if (!fn) {
                        printf("error: unknown function %s\n", name);
                        continue;
                }
                t0 = now();
                for (long i = 0; i < n; i++)
                        fn(i, i + 1);
                printf("ns %llu\n", now() - t0);
        }
        return 0;
}
