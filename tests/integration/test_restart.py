# SPDX-License-Identifier: GPL-2.0-only
"""Probes outlive the daemon: a restart adopts what is pinned, attaches
nothing twice and leaks nothing."""
import os
import signal

from harness import TARGET, UtraceTest


class Restart(UtraceTest):
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
        ev = self.c.events(6, probe=p["id"])
        # the calls made while no daemon ran come first, then the new ones
        self.assertEqual([e["args"]["a"] for e in ev], [2] * 2 + [3] * 4)
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

    def test_purge_removes_everything(self):
        self.attach(f"uprobe:{TARGET}:ut_add")
        self.daemon.stop()
        self.daemon.purge()
        self.assertFalse(os.path.exists(self.daemon.root))


class ReplacedFile(UtraceTest):
    def test_reattach_refuses_a_replaced_file(self):
        import shutil
        import tempfile
        work = tempfile.mkdtemp(prefix="utrace-replaced-")
        self.addCleanup(shutil.rmtree, work)
        path = os.path.join(work, "target")
        shutil.copy(TARGET, path)
        p = self.attach(f"uprobe:{path}:ut_add")
        self.daemon.stop()
        # its links are gone (as after a reboot) and the file was upgraded: a
        # new inode under the same name, its code elsewhere
        for name in self.daemon.links(p["id"]):
            os.unlink(os.path.join(self.daemon.root, "links", str(p["id"]), name))
        shutil.copy("/bin/true", path + ".new")
        os.rename(path + ".new", path)
        self.daemon.start()
        self.c = self.daemon.client()
        self.addCleanup(self.c.close)
        self.assertIn("is not the file the probe was attached to", self.daemon.log())
        self.assertEqual(self.c.call("list")["probes"], [])
        self.assertEqual(self.daemon.links(p["id"]), [])
