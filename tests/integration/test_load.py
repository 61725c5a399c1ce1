# SPDX-License-Identifier: GPL-2.0-only
"""Load and faults: many clients, clients that never read or vanish, long
attach/detach churn and many short-lived traced processes. The daemon's
file descriptors, memory and pins must stay flat."""
import json
import os
import socket
import subprocess
import time

from harness import SANITIZED, TARGET, UtraceTest


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid):
    d = f"/proc/{pid}/fd"
    return sorted(os.readlink(os.path.join(d, n)) for n in os.listdir(d))


def npins(root):
    return sum(len(files) for _, _, files in os.walk(os.path.join(root, "links")))


class Load(UtraceTest):
    daemon_args = ("--queue-size", "64K")

    def test_hundred_clients_ten_never_read(self):
        pid = self.daemon.proc.pid
        p = self.attach(f"uprobe:{TARGET}:ut_tick", args=["i=arg0"])
        readers = [self.client() for _ in range(90)]
        sleepers = [self.client() for _ in range(10)]
        for c in readers + sleepers:
            c.call("subscribe")
        base = rss_kib(pid)
        f = self.fixture()
        # batches small enough that a reader's socket and queue hold one even
        # when it is scheduled late on a loaded machine
        batches, per_batch = 100, 200
        for _ in range(batches):
            f.cmd(f"loop {per_batch}")
            for c in readers:
                c.events(per_batch, timeout=30)
        for c in readers:
            self.assertEqual(c.quiet(0.05), [])
        st = self.c.call("stats")
        self.assertEqual(st["probes"][0]["events"], batches * per_batch)
        by_pid = [c for c in st["clients"] if c["subscribed"]]
        dropped = sorted(c["dropped"] for c in by_pid)
        self.assertEqual(dropped[:90], [0] * 90)
        self.assertTrue(all(d > 0 for d in dropped[90:]), dropped[90:])
        for c in by_pid:
            self.assertEqual(c["delivered"] + c["dropped"], batches * per_batch)
        # 10 clients hold at most their queue each (64 KiB), plus slack for the rest
        grown = rss_kib(pid) - base
        if not SANITIZED:
            self.assertLess(grown, 10 * 64 + 16 * 1024, f"RSS grew by {grown} KiB")
        self.assertEqual(p["id"], st["probes"][0]["id"])

    def test_clients_vanishing_leak_nothing(self):
        pid = self.daemon.proc.pid
        self.attach(f"uprobe:{TARGET}:ut_add")  # persistent: must stay
        f = self.fixture()
        self.c.call("subscribe")
        f.cmd("add 1 1 1")  # warm up: the first drain creates sd-event's timerfd
        self.c.events(1)
        fds = nfds(pid)
        for i in range(50):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.daemon.socket)
            kind = i % 4
            if kind == 0:    # mid-request
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"att')
            elif kind == 1:  # mid-stream
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"subscribe"}\n')
                f.cmd("add 1 1 20")
            elif kind == 2:  # during a transient attach
                s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "attach", "params": {
                    "spec": f"uprobe:{TARGET}:ut_neg", "transient": True}}).encode() + b"\n")
            else:            # right after a persistent-probe query
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"list"}\n')
            s.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(self.c.call("list")["probes"]) == 1 and nfds(pid) == fds:
                break
            time.sleep(0.05)
        self.assertEqual(len(self.c.call("list")["probes"]), 1)
        self.assertEqual(nfds(pid), fds, fd_targets(pid))
        self.assertEqual(self.c.call("status")["clients"], 1)

    def test_attach_detach_churn_is_flat(self):
        pid = self.daemon.proc.pid
        cycles = 2000 if SANITIZED else 10000
        # warm up: allocator and maps reach their steady state
        for _ in range(50):
            p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
            self.c.call("detach", {"id": p["id"]})
        fds, rss, pins = nfds(pid), rss_kib(pid), npins(self.daemon.root)
        for i in range(cycles):
            p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
            self.c.call("detach", {"id": p["id"]})
        self.assertEqual(nfds(pid), fds)
        self.assertEqual(npins(self.daemon.root), pins)
        if not SANITIZED:
            self.assertLess(rss_kib(pid) - rss, 2048, f"RSS grew over {cycles} cycles")
        # slots and sites were recycled, not exhausted: a probe still attaches and fires
        p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
        self.c.call("subscribe")
        self.fixture().cmd("add 3 3 1")
        self.assertEqual(self.c.events(1)[0]["args"], {"a": 3})

    def test_many_short_lived_processes(self):
        pid = self.daemon.proc.pid
        p = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count")
        fds, rss = nfds(pid), rss_kib(pid)
        procs = 1000 if SANITIZED else 10000
        # one shell starts them all: 10,000 exec'd fixtures, each calling ut_add twice
        script = f'for i in $(seq {procs}); do printf "add 1 2 2\\nquit\\n" | {TARGET} >/dev/null; done'
        subprocess.run(["sh", "-c", script], check=True, timeout=600)
        agg = self.c.call("aggregations", {"id": p["id"]})
        self.assertEqual(agg["keys"][0]["count"], 2 * procs)
        self.assertEqual(nfds(pid), fds)
        if not SANITIZED:
            self.assertLess(rss_kib(pid) - rss, 1024)
