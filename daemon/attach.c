// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <sys/syscall.h>

#include "attach.h"
#include "util.h"

/* Debian's uapi headers predate uprobe_multi: the kernel's layout, by hand. */
#define UT_BPF_TRACE_UPROBE_MULTI 48
#define UT_BPF_F_UPROBE_MULTI_RETURN 1

struct link_create_uprobe_multi {
        uint32_t prog_fd;
        uint32_t target_fd;
        uint32_t attach_type;
        uint32_t flags;
        uint64_t path;
        uint64_t offsets;
        uint64_t ref_ctr_offsets;
        uint64_t cookies;
        uint32_t cnt;
        uint32_t um_flags;
        uint32_t pid;
        uint32_t pad;
};

_Static_assert(__builtin_offsetof(struct link_create_uprobe_multi, path) == 16, "bpf_attr");
_Static_assert(__builtin_offsetof(struct link_create_uprobe_multi, pid) == 56, "bpf_attr");

static int link_create_multi(int prog_fd, const char *path, const uint64_t *offsets,
                             const uint64_t *ref_ctrs, const uint64_t *cookies, uint32_t cnt,
                             bool retprobe, pid_t pid)
{
        struct link_create_uprobe_multi attr = {
                .prog_fd = prog_fd,
                .attach_type = UT_BPF_TRACE_UPROBE_MULTI,
                .path = (uint64_t)(uintptr_t)path,
                .offsets = (uint64_t)(uintptr_t)offsets,
                .ref_ctr_offsets = (uint64_t)(uintptr_t)ref_ctrs,
                .cookies = (uint64_t)(uintptr_t)cookies,
                .cnt = cnt,
                .um_flags = retprobe ? UT_BPF_F_UPROBE_MULTI_RETURN : 0,
                .pid = pid > 0 ? (uint32_t)pid : 0,
        };
        int fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));

        return fd < 0 ? -errno : fd;
}

bool attach_probe_multi(void)
{
        static int cached = -1;
        const struct bpf_insn insns[] = {
                { .code = 0xb7, .dst_reg = 0, .imm = 0 }, /* r0 = 0 */
                { .code = 0x95 },                         /* exit */
        };
        LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = UT_BPF_TRACE_UPROBE_MULTI);
        uint64_t offset = 0;
        int prog, link;

        if (cached >= 0)
                return cached;
        prog = bpf_prog_load(BPF_PROG_TYPE_KPROBE, NULL, "GPL", insns, ARRAY_SIZE(insns), &opts);
        if (prog < 0)
                return (cached = 0);
        /* a directory is not a file to probe: EBADF proves the link type exists */
        link = link_create_multi(prog, "/", &offset, NULL, NULL, 1, false, 0);
        cached = link == -EBADF;
        if (link >= 0)
                close(link);
        close(prog);
        return cached;
}

static int perf_uprobe_type(int *type, int *retbit)
{
        static int cached_type = -1, cached_bit = -1;
        char *s = NULL;

        if (cached_type < 0) {
                if (read_file("/sys/bus/event_source/devices/uprobe/type", &s, 64) < 0)
                        return -ENOSYS;
                cached_type = atoi(s);
                free(s);
                s = NULL;
                if (read_file("/sys/bus/event_source/devices/uprobe/format/retprobe", &s, 64) < 0 ||
                    sscanf(s, "config:%d", &cached_bit) != 1)
                        cached_bit = 0;
                free(s);
        }
        *type = cached_type;
        *retbit = cached_bit;
        return 0;
}

static int link_create_perf(int prog_fd, const char *path, const struct attach_loc *loc,
                            bool retprobe, pid_t pid)
{
        struct perf_event_attr attr = { .size = sizeof(attr) };
        LIBBPF_OPTS(bpf_link_create_opts, opts, .perf_event.bpf_cookie = loc->cookie);
        int type, retbit, pfd, fd, r;

        r = perf_uprobe_type(&type, &retbit);
        if (r < 0)
                return r;
        attr.type = type;
        attr.config = (retprobe ? 1ULL << retbit : 0) | (loc->ref_ctr << 32);
        attr.config1 = (uint64_t)(uintptr_t)path;
        attr.config2 = loc->offset;
        pfd = (int)syscall(__NR_perf_event_open, &attr, pid > 0 ? pid : -1, pid > 0 ? -1 : 0, -1,
                           PERF_FLAG_FD_CLOEXEC);
        if (pfd < 0)
                return -errno;
        fd = bpf_link_create(prog_fd, pfd, BPF_PERF_EVENT, &opts);
        r = fd < 0 ? -errno : fd;
        close(pfd); /* the link holds the event */
        return r;
}

int attach_links(int prog_fd, bool multi, bool retprobe, const char *path, pid_t pid,
                 const struct attach_loc *locs, size_t n, int **fds, struct error *err)
{
        _cleanup_free_ int *out = NULL;
        size_t nout = 0;
        int r;

        if (n == 0)
                return error_set(err, E_INTERNAL, -EINVAL, "%s: nothing to attach", path);
        out = calloc(multi ? 1 : n, sizeof(int));
        if (!out)
                return -ENOMEM;
        if (multi) {
                _cleanup_free_ uint64_t *offs = calloc(n, sizeof(uint64_t));
                _cleanup_free_ uint64_t *refs = calloc(n, sizeof(uint64_t));
                _cleanup_free_ uint64_t *cookies = calloc(n, sizeof(uint64_t));
                bool any_ref = false;

                if (!offs || !refs || !cookies)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        offs[i] = locs[i].offset;
                        refs[i] = locs[i].ref_ctr;
                        cookies[i] = locs[i].cookie;
                        any_ref |= locs[i].ref_ctr != 0;
                }
                r = link_create_multi(prog_fd, path, offs, any_ref ? refs : NULL, cookies,
                                      (uint32_t)n, retprobe, pid);
                if (r < 0)
                        goto fail;
                out[nout++] = r;
        } else {
                for (size_t i = 0; i < n; i++) {
                        r = link_create_perf(prog_fd, path, &locs[i], retprobe, pid);
                        if (r < 0) {
                                for (size_t k = 0; k < nout; k++)
                                        close(out[k]);
                                nout = 0;
                                goto fail;
                        }
                        out[nout++] = r;
                }
        }
        *fds = TAKE_PTR(out);
        return (int)nout;
fail:
        if (r == -ESRCH)
                return error_set(err, E_NO_PROCESS, r, "process %d is gone", (int)pid);
        return error_set(err, E_ATTACH, r, "cannot attach %s to %s: %s",
                         retprobe ? "uretprobe" : "uprobe", path, strerror(-r));
}
