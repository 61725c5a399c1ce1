// SPDX-License-Identifier: GPL-2.0-only
/*
 * Exec churn for the watch benchmark:
 *
 *   bench-spawn N PROG [ARG...]
 *
 * runs PROG N times, one after another (posix_spawn, then waitpid), with
 * standard input and output on /dev/null and in a session of its own, and
 * prints
 *
 *   ns WALL cpu CHILDREN_CPU_NS failed F
 *
 * WALL: CLOCK_MONOTONIC for the whole loop; CHILDREN_CPU_NS: user + system
 * time of the children (what the kernel charged them, uprobes included);
 * F: children that did not exit with status 0.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long ns_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long tv_ns(struct timeval tv)
{
        return tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
}

int main(int argc, char **argv)
{
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        struct rusage ru;
        long n, failed = 0;
        long long t0, t1;

        if (argc < 3 || (n = strtol(argv[1], NULL, 10)) <= 0) {
                fprintf(stderr, "usage: bench-spawn N PROG [ARG...]\n");
                return 2;
        }
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
        t0 = ns_now();
        for (long i = 0; i < n; i++) {
                pid_t pid;
                int st, r;

                r = posix_spawn(&pid, argv[2], &fa, &attr, argv + 2, environ);
                if (r != 0) {
                        fprintf(stderr, "bench-spawn: %s: %s\n", argv[2], strerror(r));
                        return 1;
                }
                while (waitpid(pid, &st, 0) < 0)
                        ;
                failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
        }
        t1 = ns_now();
        getrusage(RUSAGE_CHILDREN, &ru);
        printf("ns %lld cpu %lld failed %ld\n", t1 - t0, tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime),
               failed);
        return 0;
}
