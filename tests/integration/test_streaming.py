# SPDX-License-Identifier: GPL-2.0-only
"""Fan-out to subscribers: every subscriber gets every event; a client that
does not read loses events, counted and told, without slowing the others."""
import time

from harness import TARGET, UtraceTest


class Streaming(UtraceTest):
    daemon_args = ("--queue-size", "64K")

    def test_two_subscribers_get_every_event(self):
        a, b = self.client(), self.client()
        a.call("subscribe")
        b.call("subscribe")
        p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
        f = self.fixture()
        f.cmd("add 1 0 50")
        for c in (a, b):
            ev = c.events(50)
            self.assertEqual({e["probe"] for e in ev}, {p["id"]})
            self.assertEqual(len(ev), 50)
        self.assertEqual(a.quiet(), [])

    def test_subscribe_to_some_probes(self):
        p1 = self.attach(f"uprobe:{TARGET}:ut_add")
        p2 = self.attach(f"uprobe:{TARGET}:ut_neg")
        c = self.client()
        self.assertEqual(c.call("subscribe", {"ids": [p2["id"]]})["probes"], [p2["id"]])
        f = self.fixture()
        f.cmd("add 1 1 3")
        f.cmd("neg 1")
        self.assertEqual([e["probe"] for e in c.events(1)], [p2["id"]])
        self.assertEqual(c.quiet(), [])
        c.call("unsubscribe")
        f.cmd("neg 2")
        self.assertEqual(c.quiet(), [])
        self.assertRpcError("no-such-probe", c.call, "subscribe", {"ids": [p1["id"], 999]})

    def test_slow_client_loses_counted_events_others_get_all(self):
        # a batch (~26 KB of events) must fit the reader's 64K queue even when
        # the machine is too busy to let it read while the fixture runs
        batches, per_batch = 100, 200
        total = batches * per_batch
        sleeper = self.client()
        sleeper.call("subscribe")  # and then never reads until the end
        reader = self.client()
        reader.call("subscribe")
        p = self.attach(f"uprobe:{TARGET}:ut_tick", args=["i=arg0"])
        f = self.fixture()
        got = []
        for _ in range(batches):
            f.cmd(f"loop {per_batch}")
            got += reader.events(per_batch, timeout=20)
        self.assertEqual(len(got), total)
        self.assertEqual(reader.quiet(), [])
        st = self.c.call("stats")
        self.assertEqual(st["probes"][0]["hits"], total)
        self.assertEqual(st["probes"][0]["events"], total)
        self.assertEqual(st["probes"][0]["lost"], 0)
        clients = {c["id"]: c for c in st["clients"]}
        slow = [c for c in clients.values() if c["dropped"]]
        self.assertEqual(len(slow), 1, st["clients"])
        dropped = slow[0]["dropped"]
        self.assertGreater(dropped, 0)
        # the sleeper wakes up: it gets what fit, then is told what it lost
        received, lost = 0, None
        deadline = time.monotonic() + 20
        while lost is None and time.monotonic() < deadline:
            msg = sleeper.message(timeout=10)
            if msg.get("method") == "event":
                received += 1
            elif msg.get("method") == "lost":
                lost = msg["params"]
        self.assertIsNotNone(lost)
        self.assertEqual(lost["count"], dropped)
        self.assertEqual(lost["total"], dropped)
        self.assertEqual(received + lost["count"], total)
        self.assertEqual(slow[0]["delivered"] + dropped, total)
        self.assertEqual(p["id"], st["probes"][0]["id"])
