// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench-bpf: the baselines utrace is compared with.
 *
 *   bench-bpf empty [--perf] PATH OFFSET
 *       an empty program on one uprobe: a uprobe_multi link (as utrace
 *       attaches), or with --perf a perf-event link (as bpftrace and BCC do)
 *   bench-bpf perfbuf PATH OFFSET [PID]
 *       a BCC-style tool: perf-event link, perf buffer, one line printed per
 *       event on stdout
 *
 * Prints "ready" once attached and runs until its stdin ends; then prints
 * "events N lost N" on stderr.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach.h"
#include "tool.skel.h"

struct rec {
        uint64_t ts;
        uint32_t pid;
        uint32_t tid;
        uint64_t a;
        uint64_t b;
        char comm[16];
};

static unsigned long long nevents, nlost;

static void on_sample(void *ctx, int cpu, void *data, __u32 size)
{
        const struct rec *r = data;

        (void)ctx;
        (void)cpu;
        (void)size;
        nevents++;
        printf("%" PRIu64 " %s %u/%u a=%" PRIu64 " b=%" PRIu64 "\n", r->ts, r->comm, r->pid,
               r->tid, r->a, r->b);
}

static void on_lost(void *ctx, int cpu, __u64 n)
{
        (void)ctx;
        (void)cpu;
        nlost += n;
}

static int usage(void)
{
        fprintf(stderr, "usage: bench-bpf empty [--perf] PATH OFFSET | perfbuf PATH OFFSET [PID]\n");
        return 2;
}

int main(int argc, char **argv)
{
        struct tool *skel = NULL;
        struct perf_buffer *pb = NULL;
        struct bpf_link *link = NULL;
        struct error err = { 0 };
        bool perf = false, empty;
        int *fds = NULL, nfds = 0, i = 1, pid = -1;
        const char *path;
        uint64_t offset;
        char buf[64];

        if (argc < 4)
                return usage();
        empty = strcmp(argv[i], "empty") == 0;
        if (!empty && strcmp(argv[i], "perfbuf") != 0)
                return usage();
        i++;
        if (strcmp(argv[i], "--perf") == 0) {
                perf = true;
                i++;
        }
        if (argc < i + 2)
                return usage();
        path = argv[i];
        offset = strtoull(argv[i + 1], NULL, 0);
        if (argc > i + 2)
                pid = atoi(argv[i + 2]);

        skel = tool__open();
        if (!skel)
                return 1;
        bpf_program__set_autoload(empty ? skel->progs.perfbuf : skel->progs.empty, false);
        if (empty && !perf)
                bpf_program__set_expected_attach_type(skel->progs.empty, 48 /* uprobe_multi */);
        if (tool__load(skel)) {
                fprintf(stderr, "bench-bpf: cannot load: %s\n", strerror(errno));
                return 1;
        }
        if (empty && !perf) {
                struct attach_loc loc = { .offset = offset };

                nfds = attach_links(bpf_program__fd(skel->progs.empty), true, false, path, 0,
                                    &loc, 1, &fds, &err);
                if (nfds < 0) {
                        fprintf(stderr, "bench-bpf: %s\n", err.msg);
                        return 1;
                }
        } else {
                link = bpf_program__attach_uprobe(empty ? skel->progs.empty : skel->progs.perfbuf,
                                                  false, pid, path, offset);
                if (!link) {
                        fprintf(stderr, "bench-bpf: cannot attach: %s\n", strerror(errno));
                        return 1;
                }
        }
        if (!empty) {
                pb = perf_buffer__new(bpf_map__fd(skel->maps.pb), 64, on_sample, on_lost, NULL,
                                      NULL);
                if (!pb) {
                        fprintf(stderr, "bench-bpf: perf buffer: %s\n", strerror(errno));
                        return 1;
                }
        }
        printf("ready\n");
        fflush(stdout);
        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = 0, .events = POLLIN },
                        { .fd = pb ? perf_buffer__epoll_fd(pb) : -1, .events = POLLIN },
                };

                if (poll(pfd, 2, -1) < 0)
                        continue;
                if (pfd[1].revents)
                        perf_buffer__consume(pb);
                if (pfd[0].revents && read(0, buf, sizeof(buf)) <= 0)
                        break;
        }
        if (pb)
                perf_buffer__consume(pb);
        fflush(stdout);
        fprintf(stderr, "events %llu lost %llu\n", nevents, nlost);
        for (int k = 0; k < nfds; k++)
                close(fds[k]);
        free(fds);
        bpf_link__destroy(link);
        perf_buffer__free(pb);
        tool__destroy(skel);
        return 0;
}
