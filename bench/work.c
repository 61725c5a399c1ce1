// SPDX-License-Identifier: GPL-2.0-only
/*
 * Workloads of the real-workload and attach benchmarks, driven on stdin;
 * each command answers "ns TOTAL" (CLOCK_MONOTONIC) or "ok":
 *
 *   alloc N        N rounds of malloc/free of 16 blocks of mixed sizes
 *   gai N          N getaddrinfo("localhost") calls
 *   dlopen PATH    map a library and keep it mapped ("ok")
 *   quit
 */
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void *volatile keep;

static void alloc(long n)
{
        void *p[16];

        for (long i = 0; i < n; i++) {
                for (int k = 0; k < 16; k++)
                        p[k] = malloc(16 + (size_t)((i * 31 + k * 97) % 1000));
                keep = p[i % 16];
                for (int k = 0; k < 16; k++)
                        free(p[k]);
        }
}

static int gai(long n)
{
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };

        for (long i = 0; i < n; i++) {
                struct addrinfo *res;

                if (getaddrinfo("localhost", NULL, &hints, &res) != 0)
                        return -1;
                freeaddrinfo(res);
        }
        return 0;
}

int main(void)
{
        char line[4096], arg[4000];
        long n;

        setvbuf(stdout, NULL, _IOLBF, 0);
        printf("ready %d\n", (int)getpid());
        while (fgets(line, sizeof(line), stdin)) {
                unsigned long long t0 = now();

                if (strncmp(line, "quit", 4) == 0)
                        break;
                if (sscanf(line, "alloc %ld", &n) == 1) {
                        alloc(n);
                } else if (sscanf(line, "gai %ld", &n) == 1) {
                        if (gai(n) < 0) {
                                printf("error: getaddrinfo failed\n");
                                continue;
                        }
                } else if (sscanf(line, "dlopen %3999s", arg) == 1) {
                        if (!dlopen(arg, RTLD_NOW)) {
                                printf("error: %s\n", dlerror());
                                continue;
                        }
                        printf("ok\n");
                        continue;
                } else {
                        printf("error: unknown command: %s", line);
                        continue;
                }
                printf("ns %llu\n", now() - t0);
        }
        return 0;
}
