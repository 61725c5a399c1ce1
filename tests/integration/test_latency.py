# SPDX-License-Identifier: GPL-2.0-only
"""--latency: entry and return paired into one event with the entry's
arguments, retval and latency_ns, across recursion, threads and longjmp;
latency filters run before anything is emitted; the gethostlatency example
of the README."""
import collections
import subprocess
import time

from harness import TARGET, UTRACECTL, UtraceTest

MS = 1000000


class Latency(UtraceTest):
    def setUp(self):
        super().setUp()
        self.c.call("subscribe")

    def test_sleep_args_retval_and_a_lower_bound(self):
        p = self.attach(f"uprobe:{TARGET}:ut_sleep", latency=True, args=["ms=arg0"])
        f = self.fixture()
        f.cmd("sleep 20")
        f.cmd("sleep 0")
        ev = self.c.events(2)
        self.assertEqual(self.c.quiet(), [])
        self.assertEqual([(e["args"], e["retval"]) for e in ev], [({"ms": 20}, 20), ({"ms": 0}, 0)])
        self.assertGreaterEqual(ev[0]["latency_ns"], 20 * MS)
        self.assertGreater(ev[1]["latency_ns"], 0)
        for e in ev:
            self.assertEqual((e["pid"], e["tid"], e["comm"]), (f.pid, f.pid, "target"))
        st = self.stats(p["id"])
        self.assertEqual((st["hits"], st["events"], st["unpaired"]), (2, 2, 0))

    def test_recursion_pairs_each_level(self):
        p = self.attach(f"uprobe:{TARGET}:ut_recurse", latency=True, args=["d=arg0"])
        f = self.fixture()
        f.cmd("recurse 4")
        ev = self.c.events(5)
        self.assertEqual(self.c.quiet(), [])
        # the innermost call returns first; depth d returns d
        self.assertEqual([(e["args"]["d"], e["retval"]) for e in ev],
                         [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)])
        # each call encloses the one it makes
        lat = [e["latency_ns"] for e in ev]
        self.assertEqual(lat, sorted(lat))
        self.assertEqual(self.stats(p["id"])["unpaired"], 0)

    def test_concurrent_threads_pair_with_their_own_entries(self):
        threads, calls = 4, 25
        p = self.attach(f"uprobe:{TARGET}:ut_work", latency=True, args=["tag=arg0"])
        f = self.fixture()
        f.cmd(f"threads {threads} {calls}")
        ev = self.c.events(threads * calls, timeout=30)
        self.assertEqual(self.c.quiet(), [])
        by_tid = collections.defaultdict(list)
        for e in ev:
            self.assertEqual(e["retval"], 2 * e["args"]["tag"] + 1)
            self.assertGreaterEqual(e["latency_ns"], 100000)  # each call sleeps 100 us
            by_tid[e["tid"]].append(e["args"]["tag"])
        self.assertEqual(len(by_tid), threads)
        self.assertNotIn(f.pid, by_tid)  # the main thread only waits
        # each thread's events carry that thread's tags, in its order
        self.assertEqual(sorted(tags[0] // 1000 for tags in by_tid.values()), list(range(threads)))
        for tags in by_tid.values():
            t = tags[0] // 1000
            self.assertEqual(tags, [1000 * t + i for i in range(calls)])
        st = self.stats(p["id"])
        self.assertEqual((st["hits"], st["events"], st["unpaired"], st["lost"]),
                         (threads * calls, threads * calls, 0, 0))

    def test_longjmp_leaves_no_wrong_pairing(self):
        spec = f"uprobe:{TARGET}:ut_jump"
        plain = self.attach(spec, latency=True, args=["v=arg0"])["id"]
        filtered = self.attach(spec, latency=True, args=["v=arg0"], filter="arg0 > 5")["id"]
        f = self.fixture()
        f.cmd("jump 7 1")  # entry stored, the return never comes
        f.cmd("jump 2 0")  # same call site, same stack pointer
        f.cmd("jump 9 0")
        ev = self.c.events(3)
        self.assertEqual(self.c.quiet(), [])
        got = lambda probe: [(e["args"]["v"], e["retval"]) for e in ev if e["probe"] == probe]
        # the new entry replaced the abandoned one
        self.assertEqual(got(plain), [(2, 4), (9, 18)])
        # a filtered entry removed it: its return did not pair with v=7
        self.assertEqual(got(filtered), [(9, 18)])
        st = self.stats(filtered)
        self.assertEqual((st["hits"], st["filtered"], st["unpaired"], st["events"]), (3, 1, 1, 1))
        self.assertEqual(self.stats(plain)["unpaired"], 0)

    def test_latency_filters_run_before_emitting(self):
        spec = f"uprobe:{TARGET}:ut_sleep"
        slow = self.attach(spec, latency=True, args=["ms=arg0"], filter="latency_ns >= 30ms")["id"]
        fast = self.attach(spec, latency=True, filter="latency_ns < 30ms")["id"]
        mixed = self.attach(spec, latency=True, args=["ms=arg0"],
                            filter="arg0 == 31 && latency_ns >= 31000us && retval == 31")["id"]
        f = self.fixture()
        f.cmd("sleep 30")
        f.cmd("sleep 31")
        ev = self.c.events(3)
        self.assertEqual(self.c.quiet(), [])
        self.assertEqual([e["args"]["ms"] for e in ev if e["probe"] == slow], [30, 31])
        self.assertEqual([e["args"]["ms"] for e in ev if e["probe"] == mixed], [31])
        st = self.stats(fast)
        self.assertEqual((st["hits"], st["filtered"], st["events"]), (2, 2, 0))
        # the entry half of the filter dropped one call, the return half none
        st = self.stats(mixed)
        self.assertEqual((st["hits"], st["filtered"], st["events"]), (2, 1, 1))

    def wait_subscribers(self, n):
        for _ in range(500):
            if sum(c["subscribed"] for c in self.c.call("stats")["clients"]) >= n:
                return
            time.sleep(0.01)
        self.fail("the subscriber did not come")

    def test_gethostlatency_example(self):
        # the README's example: utracectl attach uprobe:libc.so.6:getaddrinfo
        #     --arg host=str(arg0) --latency
        p = self.daemon.ctl("attach", "uprobe:libc.so.6:getaddrinfo", "--arg", "host=str(arg0)",
                            "--latency")
        pid = int(p.stdout.split()[0])
        stream = subprocess.Popen([UTRACECTL, "--socket", self.daemon.socket, "stream", str(pid),
                                   "--timeout", "30"], stdout=subprocess.PIPE, text=True)
        self.addCleanup(stream.wait)
        self.addCleanup(stream.kill)
        self.wait_subscribers(2)
        getent = subprocess.Popen(["getent", "ahosts", "localhost"], stdout=subprocess.PIPE,
                                  text=True)
        out, _ = getent.communicate(timeout=30)
        self.assertIn("127.0.0.1", out)
        # other processes on the machine may resolve names too: find ours
        mine = None
        while mine is None:
            e = self.c.events(1, probe=pid, timeout=20)[0]
            if e["pid"] == getent.pid:
                mine = e
        self.assertEqual(mine["args"], {"host": "localhost"})
        self.assertEqual((mine["comm"], mine["retval"]), ("getent", 0))
        self.assertGreater(mine["latency_ns"], 0)
        # and utracectl stream shows it as the README does
        line = ""
        while f" getent          {getent.pid}/{getent.pid} " not in line:
            line = stream.stdout.readline()
            self.assertTrue(line, "utracectl stream ended")
        self.assertRegex(line, r' host="localhost" retval=0 latency=[0-9.]+(ns|us|ms)$')
