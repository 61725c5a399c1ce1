# SPDX-License-Identifier: GPL-2.0-only
"""Probes outlive the daemon: a restart adopts what is pinned, attaches
nothing twice and leaks nothing."""
import os
import signal

from harness import TARGET, UtraceTest


class Restart(UtraceTest):
    def restart(self, sig=signal.SIGTERM):
        self.c.close()
        self.daemon.stop(sig)
        self.daemon.start()
        self.c = self.daemon.client()
        self.addCleanup(self.c.close)

    def test_restart_keeps_probe_exactly_once(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
        links = self.daemon.links(p["id"])
        f = self.fixture()
        self.c.call("subscribe")
        f.cmd("add 1 0 3")
        self.assertEqual(len(self.c.events(3)), 3)

        self.daemon.stop()
        self.assertEqual(self.daemon.links(p["id"]), links)  # pinned while down
        f.cmd("add 2 0 2")                                      # still counted
        self.daemon.start()
        self.c = self.daemon.client()
        self.addCleanup(self.c.close)

        lst = self.c.call("list")["probes"]
        self.assertEqual([x["id"] for x in lst], [p["id"]])
        self.assertEqual(lst[0]["fields"], ["a"])
        self.assertEqual(self.daemon.links(p["id"]), links)
        self.c.call("subscribe")
        f.cmd("add 3 0 4")
        ev = self.c.events(4, probe=p["id"])
        self.assertEqual([e["args"]["a"] for e in ev], [3] * 4)
        self.assertEqual(self.c.quiet(), [])        # once, not twice
        self.assertEqual(self.stats(p["id"])["hits"], 9)  # the pinned counters went on

        # a new probe after the restart gets a new id
        q = self.attach(f"uprobe:{TARGET}:ut_neg")
        self.assertGreater(q["id"], p["id"])
        self.assertIn("adopted", self.daemon.log())

    def test_restart_after_kill(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", latency=True, args=["a=arg0"])
        self.restart(signal.SIGKILL)
        self.assertEqual([x["id"] for x in self.c.call("list")["probes"]], [p["id"]])
        self.c.call("subscribe")
        f = self.fixture()
        f.cmd("add 5 5 1")
        ev = self.c.events(1)
        self.assertEqual((ev[0]["args"]["a"], ev[0]["retval"]), (5, 10))
        self.assertEqual(self.c.quiet(), [])

    def test_missing_pins_are_reattached(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add")
        self.daemon.stop()
        for name in self.daemon.links(p["id"]):
            os.unlink(os.path.join(self.daemon.root, "links", str(p["id"]), name))
        self.daemon.start()
        self.c = self.daemon.client()
        self.addCleanup(self.c.close)
        self.assertIn("re-attached", self.daemon.log())
        self.c.call("subscribe")
        f = self.fixture()
        f.cmd("add 1 1 2")
        self.assertEqual(len(self.c.events(2)), 2)
        self.assertEqual(self.c.quiet(), [])

    def test_orphaned_pins_are_removed(self):
        orphan = os.path.join(self.daemon.root, "links", "4242")
        os.mkdir(orphan)
        self.restart()
        self.assertFalse(os.path.exists(orphan))
        self.assertIn("unknown probe 4242", self.daemon.log())

    def test_transient_probe_dies_with_its_client(self):
        c = self.client()
        p = c.call("attach", {"spec": f"uprobe:{TARGET}:ut_add", "transient": True})
        self.assertTrue(self.c.call("list")["probes"][0]["transient"])
        c.close()
        for _ in range(100):
            if not self.c.call("list")["probes"]:
                break
        self.assertEqual(self.c.call("list")["probes"], [])
        self.assertEqual(self.daemon.links(p["id"]), [])

    def test_detach_of_many_in_one_request(self):
        ps = [self.attach(f"uprobe:{TARGET}:{fn}", aggregate="count")["id"]
              for fn in ("ut_add", "ut_neg", "ut_tick", "ut_greet")]
        keep = ps.pop()
        # an id given twice is detached once; the state file is written once
        # for the batch and then holds only the probe that stays
        done = self.c.call("detach", {"ids": ps + [ps[0]]})["detached"]
        self.assertEqual(done, ps)
        for pid in ps:
            self.assertEqual(self.daemon.links(pid), [])
        self.restart()
        self.assertEqual([x["id"] for x in self.c.call("list")["probes"]], [keep])
        self.assertTrue(self.daemon.links(keep))

    def test_client_gone_detaches_all_its_transient_probes(self):
        c = self.client()
        ps = [c.call("attach", {"spec": f"uprobe:{TARGET}:{fn}", "transient": True})["id"]
              for fn in ("ut_add", "ut_neg", "ut_tick")]
        keep = self.attach(f"uprobe:{TARGET}:ut_greet")["id"]
        c.close()
        for _ in range(100):
            if len(self.c.call("list")["probes"]) == 1:
                break
        self.assertEqual([x["id"] for x in self.c.call("list")["probes"]], [keep])
        for pid in ps:
            self.assertEqual(self.daemon.links(pid), [])
        self.restart()
        self.assertEqual([x["id"] for x in self.c.call("list")["probes"]], [keep])

    def test_purge_removes_everything(self):
        self.attach(f"uprobe:{TARGET}:ut_add")
        self.daemon.stop()
        self.daemon.purge()
        self.assertFalse(os.path.exists(self.daemon.root))
