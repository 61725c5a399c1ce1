// SPDX-License-Identifier: GPL-2.0-only
/*
 * Baselines of the benchmarks, not part of utrace:
 *   empty     a uprobe program that does nothing: the cost of the uprobe itself
 *   perfbuf   what a BCC tool does per hit: a fixed record with two integer
 *             arguments through a perf buffer (perf_submit), a wakeup per event
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct rec {
        __u64 ts;
        __u32 pid;
        __u32 tid;
        __u64 a;
        __u64 b;
        char comm[16];
};

struct {
        __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
        __uint(key_size, sizeof(__u32));
        __uint(value_size, sizeof(__u32));
} pb SEC(".maps");

SEC("uprobe")
int BPF_KPROBE(empty)
{
        return 0;
}

SEC("uprobe")
int BPF_KPROBE(perfbuf, long a, long b)
{
        struct rec r;
        __u64 id = bpf_get_current_pid_tgid();

        r.ts = bpf_ktime_get_ns();
        r.pid = id >> 32;
        r.tid = (__u32)id;
        r.a = a;
        r.b = b;
        bpf_get_current_comm(r.comm, sizeof(r.comm));
        bpf_perf_event_output(ctx, &pb, BPF_F_CURRENT_CPU, &r, sizeof(r));
        return 0;
}
