# SPDX-License-Identifier: GPL-2.0-only
"""Loss accounting: a ring buffer overloaded on purpose (a small one, and a
daemon stopped so that it cannot drain) loses events, and every one of them
is counted where it was lost, per probe, shown in stats and told to the
subscribers: hits = delivered + lost, exactly."""
import os
import signal
import subprocess
import time

from harness import TARGET, UTRACECTL, UtraceTest


class Losses(UtraceTest):
    daemon_args = ("--ringbuf-size", "4096")

    def stop_daemon(self):
        """SIGSTOP the daemon until the returned function is called; it is
        continued at cleanup whatever happens."""
        pid = self.daemon.proc.pid

        def cont():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.addCleanup(cont)
        os.kill(pid, signal.SIGSTOP)
        for _ in range(1000):
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "T":
                    return cont
            time.sleep(0.005)
        self.fail("the daemon did not stop")

    def test_overloaded_ring_buffer_counts_every_loss(self):
        self.c.call("subscribe")
        tick = self.attach(f"uprobe:{TARGET}:ut_tick", args=["i=arg0"])["id"]
        add = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])["id"]
        cli = subprocess.Popen([UTRACECTL, "--socket", self.daemon.socket, "stream", "--json",
                                "--timeout", "60"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        self.addCleanup(cli.wait)
        self.addCleanup(cli.kill)
        for _ in range(500):
            if sum(c["subscribed"] for c in self.c.call("stats")["clients"]) == 2:
                break
            time.sleep(0.01)
        f = self.fixture()
        cont = self.stop_daemon()
        # 88 bytes a record: fewer than 50 fit in 4 KiB
        f.cmd("loop 500")
        f.cmd("add 7 0 300")
        f.cmd("loop 200")
        cont()

        got = {tick: [], add: []}
        lost = {tick: [], add: []}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = {p["id"]: p for p in self.c.call("stats")["probes"]}
            if all(len(got[p]) + sum(lost[p]) == st[p]["hits"] for p in got):
                break
            try:
                msg = self.c.message(timeout=1)
            except TimeoutError:
                continue
            if msg.get("method") == "event":
                e = msg["params"]
                got[e["probe"]].append(e["args"]["i"] if e["probe"] == tick else e["args"]["a"])
            elif msg.get("method") == "lost":
                self.assertEqual(msg["params"]["reason"], "kernel")
                lost[msg["params"]["probe"]].append(msg["params"]["count"])
        self.assertEqual(self.c.quiet(), [])

        st = {p["id"]: p for p in self.c.call("stats")["probes"]}
        self.assertEqual(st[tick]["hits"], 700)
        self.assertEqual(st[add]["hits"], 300)
        for p in (tick, add):
            s = st[p]
            # every hit is an event delivered or a loss counted and told
            self.assertEqual(s["hits"], len(got[p]) + s["lost"], s)
            self.assertEqual(s["events"], len(got[p]), s)
            self.assertEqual(s["lost"], s["lost_ringbuf"] + s["lost_busy"], s)
            self.assertEqual(sum(lost[p]), s["lost"], s)
            self.assertGreater(s["lost"], 0, s)
            self.assertEqual(s["filtered"], 0, s)
        # what came through came in order, nothing twice
        self.assertEqual(got[tick], sorted(got[tick]))
        self.assertEqual(len(set(got[tick])), len(got[tick]))
        self.assertEqual(set(got[add]) - {7}, set())
        self.assertLess(len(got[tick]) + len(got[add]), 50)
        clients = self.c.call("stats")["clients"]
        self.assertEqual([c["dropped"] for c in clients], [0] * len(clients))

        # utracectl stream warns on stderr and shows the rest
        time.sleep(0.3)
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=20)
        self.assertEqual(len(out.splitlines()), len(got[tick]) + len(got[add]))
        for p in (tick, add):
            self.assertRegex(err, f"utracectl: warning: [0-9]+ events of probe {p} were lost "
                                  f"in the kernel before utraced could read them "
                                  f"\\({st[p]['lost']} in all\\)")
        status = self.c.call("status")
        self.assertEqual(status["ringbuf"]["size"], 4096)
