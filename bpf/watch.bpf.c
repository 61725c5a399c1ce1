// SPDX-License-Identifier: GPL-2.0-only
/*
 * The watcher: which processes map a file not seen before?
 *
 *   watch_exec    tp_btf/sched_process_exec: the new executable
 *   watch_vmas    iter/task_vma: every executable file mapping of every process
 *                 (or of one), with the file the mapping really holds
 *   watch_ldso    uprobe on ld.so's _dl_debug_state (cookie: the distance from
 *                 it to _r_debug): every object of the link map, once the map
 *                 is consistent (after the initial load, after each dlopen)
 *
 * A file already in `known` costs one hash lookup: a fork/exec storm of known
 * binaries never reaches the daemon. The first process that maps an unknown
 * file marks it reported (so that its siblings are not reported too) and is
 * reported; the daemon examines every file of that process. With hold_pids
 * set, that process is also stopped (SIGSTOP) until the daemon has attached
 * its probes and resumes it — never one with a controlling terminal (its
 * shell would see it stop) nor a traced one.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "watcher.h"

char LICENSE[] SEC("license") = "GPL";

#define SIGSTOP 19
#define RT_CONSISTENT 0

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, WATCH_KNOWN_MAX);
        __type(key, struct watch_file);
        __type(value, __u8);
} known SEC(".maps");

/* pid -> CLOCK_MONOTONIC ns it was stopped at; pinned, so that a restarted
 * daemon resumes what its predecessor held */
struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, WATCH_HELD_MAX);
        __type(key, __u32);
        __type(value, __u64);
} held SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_RINGBUF);
        __uint(max_entries, 256 * 1024);
} reports SEC(".maps");

__u32 hold_pids;     /* set by the daemon while a probe asks for --hold */
__u64 reports_lost;  /* ring buffer full: the file stays unknown */
__u64 hold_skipped;  /* not held: terminal, traced, or the held map full */

struct vma_ctx {
        struct watch_file file;
        int found;
};

static long vma_file(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
        struct vma_ctx *c = data;
        struct file *f = vma->vm_file;

        if (!f)
                return 0;
        c->file.ino = BPF_CORE_READ(f, f_inode, i_ino);
        c->file.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
        c->found = 1;
        return 0;
}

static bool may_hold(struct task_struct *task)
{
        if (BPF_CORE_READ(task, ptrace) || BPF_CORE_READ(task, signal, tty))
                return false;
        return true;
}

/* 1 if the file was unknown (and the process reported), else 0. */
static int check_file(struct task_struct *task, const struct watch_file *f, __u32 kind)
{
        struct watch_report *r;
        __u8 reported = WATCH_REPORTED;
        __u32 pid;

        if (bpf_map_lookup_elem(&known, f))
                return 0;
        if (bpf_map_update_elem(&known, f, &reported, BPF_NOEXIST))
                return 0; /* another process got there first */
        r = bpf_ringbuf_reserve(&reports, sizeof(*r), 0);
        if (!r) {
                __sync_fetch_and_add(&reports_lost, 1);
                bpf_map_delete_elem(&known, f); /* the next process tries again */
                return 0;
        }
        pid = bpf_get_current_pid_tgid() >> 32;
        r->pid = pid;
        r->kind = kind;
        r->held = 0;
        r->pad = 0;
        r->ts = bpf_ktime_get_ns();
        r->file = *f;
        if (hold_pids) {
                if (may_hold(task) && bpf_map_update_elem(&held, &pid, &r->ts, BPF_ANY) == 0 &&
                    bpf_send_signal(SIGSTOP) == 0)
                        r->held = 1;
                else
                        __sync_fetch_and_add(&hold_skipped, 1);
        }
        bpf_ringbuf_submit(r, 0);
        return 1;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(watch_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
        struct task_struct *task = bpf_get_current_task_btf();
        struct vma_ctx c = {};
        unsigned long code;

        code = BPF_CORE_READ(task, mm, start_code);
        if (bpf_find_vma(task, code, vma_file, &c, 0) || !c.found)
                return 0;
        check_file(task, &c.file, WATCH_EXEC);
        return 0;
}

/* glibc's struct r_debug and the public head of struct link_map */
struct r_debug_head {
        int r_version;
        void *r_map;
        unsigned long r_brk;
        int r_state;
};

struct link_map_head {
        unsigned long l_addr;
        char *l_name;
        void *l_ld;
        void *l_next;
};

SEC("uprobe")
int BPF_KPROBE(watch_ldso)
{
        struct task_struct *task = bpf_get_current_task_btf();
        unsigned long rdebug = PT_REGS_IP(ctx) + (long)bpf_get_attach_cookie(ctx);
        struct r_debug_head rd;
        struct link_map_head lm;
        void *cur;

        if (bpf_probe_read_user(&rd, sizeof(rd), (void *)rdebug) || rd.r_state != RT_CONSISTENT)
                return 0;
        cur = rd.r_map;
        for (int i = 0; i < WATCH_MAX_OBJECTS && cur; i++) {
                struct vma_ctx c = {};

                if (bpf_probe_read_user(&lm, sizeof(lm), cur))
                        break;
                cur = lm.l_next;
                if (bpf_find_vma(task, (unsigned long)lm.l_ld, vma_file, &c, 0) || !c.found)
                        continue;
                if (check_file(task, &c.file, WATCH_LDSO))
                        break; /* the daemon examines the whole process */
        }
        return 0;
}

#define VM_EXEC 0x4

SEC("iter/task_vma")
int watch_vmas(struct bpf_iter__task_vma *ctx)
{
        struct vm_area_struct *vma = ctx->vma;
        struct task_struct *task = ctx->task;
        struct watch_vma rec = {};
        struct file *f;

        if (!vma || !task || task->pid != task->tgid || !(vma->vm_flags & VM_EXEC))
                return 0;
        f = vma->vm_file;
        if (!f)
                return 0;
        rec.pid = task->tgid;
        rec.start = vma->vm_start;
        rec.end = vma->vm_end;
        rec.file.ino = BPF_CORE_READ(f, f_inode, i_ino);
        rec.file.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
        bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
        return 0;
}
