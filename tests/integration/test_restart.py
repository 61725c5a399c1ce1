# SPDX-License-Identifier: GPL-2.0-only
"""Probes outlive the daemon: a restart adopts what is pinned, attaches
nothing twice and leaks nothing."""
import json
import os
import random
import shutil
import signal
import threading
import time

from harness import TARGET, UTRACED, UTRACED_NEXT, UtraceTest


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


class Collector(threading.Thread):
    """Reads a subscribed connection until it closes: the i of each event of
    one probe, and the events its queue lost ("lost" notifications)."""

    def __init__(self, client, probe):
        super().__init__(daemon=True)
        self.client, self.probe = client, probe
        self.ticks, self.lost = [], 0

    def run(self):
        while True:
            try:
                msg = self.client.message(timeout=60)
            except (ConnectionError, TimeoutError, OSError, ValueError):
                return
            if msg.get("method") == "event" and msg["params"]["probe"] == self.probe:
                self.ticks.append(msg["params"]["args"]["i"])
            elif msg.get("method") == "lost" and msg["params"]["reason"] == "queue":
                self.lost += msg["params"]["count"]   # kernel losses are in the probe's stats


def wait_for(cond, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


class AlwaysOn(UtraceTest):
    def subscribe(self, probe):
        c = self.client()
        c.call("subscribe", {"id": probe})
        col = Collector(c, probe)
        col.start()
        return col

    def test_probe_firing_through_a_restart(self):
        p = self.attach(f"uprobe:{TARGET}:ut_tick", args=["i=arg0"])
        first = self.subscribe(p["id"])
        f = self.fixture()
        f.start("ticker 200")
        wait_for(lambda: len(first.ticks) >= 20, what="events before the restart")
        self.c.close()
        self.daemon.stop()
        first.join(30)
        time.sleep(0.2)  # the probe goes on firing while no daemon runs
        self.daemon.start()
        self.c = self.client()
        second = self.subscribe(p["id"])
        wait_for(lambda: len(second.ticks) >= 20, what="events after the restart")
        f.finish()

        def counted():
            st = self.stats(p["id"])
            ev = self.c.call("status")["events"]
            return st["hits"], st["lost"] + first.lost + second.lost + ev["unclaimed"] + ev["stale"]

        wait_for(lambda: len(first.ticks) + len(second.ticks) + counted()[1] == counted()[0],
                 what="every hit received or counted as lost")
        hits, lost = counted()
        ticks = first.ticks + second.ticks
        # no duplicate, nothing out of order, and every gap is a counted loss
        self.assertTrue(all(a < b for a, b in zip(ticks, ticks[1:])), "duplicates or disorder")
        self.assertEqual(len(ticks) + lost, hits)
        self.assertLess(ticks[-1], hits)
        self.assertGreater(self.c.call("status")["events"]["backlog"], 0)
        self.assertIn(f"probe {p['id']} adopted", self.daemon.log())

    def test_backlog_nobody_claims_is_counted(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
        f = self.fixture()
        self.c.close()
        self.daemon.stop()
        f.cmd("add 1 0 3")
        self.daemon.start()
        self.c = self.client()
        self.assertTrue(self.c.call("status")["ringbuf"]["held"])
        wait_for(lambda: not self.c.call("status")["ringbuf"]["held"], what="the end of the hold")
        ev = self.c.call("status")["events"]
        self.assertEqual((ev["backlog"], ev["unclaimed"]), (3, 3))
        self.assertEqual(self.stats(p["id"])["events"], 3)
        self.assertIn("no client subscribed within 5 s of the start", self.daemon.log())

    def test_aggregations_keep_their_values(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="hist(arg1)", by="arg0")
        f = self.fixture()
        f.cmd("add 1 100 3")
        self.restart(signal.SIGKILL)
        f.cmd("add 1 100 2")
        f.cmd("add 2 1000 1")
        agg = self.c.call("aggregations", {"id": p["id"]})
        got = {k["key"]: (k["count"], k["sum"], [(b["min"], b["count"]) for b in k["buckets"]])
               for k in agg["keys"]}
        self.assertEqual(got, {1: (5, 500, [(64, 5)]), 2: (1, 1000, [(512, 1)])})
        self.assertEqual(agg["stats"]["hits"], 6)

    def test_migration_to_a_changed_build(self):
        ev = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
        cnt = self.attach(f"uprobe:{TARGET}:ut_neg", aggregate="count")
        f = self.fixture()
        f.cmd("add 1 0 2")   # not received yet: waits in the ring buffer
        f.cmd("neg 1")
        for binary, expect_first in ((UTRACED_NEXT, [1, 1]), (UTRACED, [])):
            links = {i: self.daemon.links(i) for i in (ev["id"], cnt["id"])}
            self.daemon.binary = binary
            self.restart()
            log = self.daemon.log().split("received Terminated")[-1]
            for i in (ev["id"], cnt["id"]):
                self.assertIn(f"probe {i} (", log)
                self.assertIn("migrated to this build: 1 link of other BPF programs", log)
                new = self.daemon.links(i)
                self.assertEqual(len(new), len(links[i]))
                self.assertFalse(set(new) & set(links[i]), "the old links are gone")
            self.c.call("subscribe")
            f.cmd("add 2 0 3")
            got = [e["args"]["a"] for e in self.c.events(len(expect_first) + 3)]
            self.assertEqual(got, expect_first + [2, 2, 2])
            self.assertEqual(self.c.quiet(), [])   # attached once: the old links are gone
            f.cmd("neg 1")
            self.c.call("unsubscribe")
        # counters and aggregations went on through both migrations
        self.assertEqual(self.stats(ev["id"])["hits"], 8)
        self.assertEqual(self.c.call("aggregations", {"id": cnt["id"]})["keys"][0]["count"], 3)

    def test_ring_buffer_size_change(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
        f = self.fixture()
        self.c.close()
        self.daemon.stop()
        f.cmd("add 3 0 3")
        self.daemon.start("--ringbuf-size", "64K")
        self.c = self.client()
        log = self.daemon.log()
        self.assertIn("map events: the pinned ring buffer has 8388608 entries, this one 65536: "
                      "replaced; the ", log)
        self.assertIn(f"probe {p['id']} (uprobe:{TARGET}:ut_add) migrated to this build", log)
        self.assertEqual(self.c.call("status")["ringbuf"]["size"], 65536)
        self.c.call("subscribe")
        f.cmd("add 4 0 1")
        # what waited in the old ring buffer comes first
        self.assertEqual([e["args"]["a"] for e in self.c.events(4)], [3, 3, 3, 4])
        self.assertEqual(self.c.quiet(), [])
        self.assertEqual(self.stats(p["id"])["hits"], 4)

    def test_layout_change_within_the_same_size(self):
        """A build whose maps keep their sizes but change their layout: the
        digests recorded at the last start tell, and those maps are replaced."""
        p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
        f = self.fixture()
        f.cmd("add 1 0 2")   # waits in the ring buffer
        self.c.close()
        self.daemon.stop()
        layout = os.path.join(self.daemon.state, "layout")
        with open(layout) as lf:
            lines = dict(line.split() for line in lf.read().splitlines())
        self.assertEqual(sorted(lines), sorted(["probes", "sites", "stats", "events", "lat",
                                                "aggs", "agg_nkeys", "globals", "records"]))
        lines["stats"] = "%016x" % (int(lines["stats"], 16) ^ 1)
        lines["records"] = "%016x" % (int(lines["records"], 16) ^ 1)
        with open(layout, "w") as lf:
            lf.write("".join(f"{k} {v}\n" for k, v in lines.items()))
        self.daemon.start()
        self.c = self.client()
        log = self.daemon.log().split("received Terminated")[-1]
        self.assertIn("map stats: the pinned one has another layout: replaced; its contents "
                      "(every probe's counters) are not carried over", log)
        self.assertIn("map events: the pinned ring buffer holds records of another format: "
                      "replaced; the 176 bytes of events it held are dropped", log)
        self.assertNotIn("map probes:", log)
        self.assertIn(f"probe {p['id']} (uprobe:{TARGET}:ut_add) migrated to this build", log)
        self.assertEqual(self.stats(p["id"])["hits"], 0)   # a new stats map
        self.c.call("subscribe")
        f.cmd("add 2 0 2")
        self.assertEqual([e["args"]["a"] for e in self.c.events(2)], [2, 2])
        self.assertEqual(self.c.quiet(), [])
        self.assertEqual(self.stats(p["id"])["hits"], 2)

    def test_deleted_or_replaced_target(self):
        copy = os.path.join(self.daemon.dir, "target-copy")
        shutil.copy2(TARGET, copy)
        p = self.attach(f"uprobe:{copy}:ut_add", args=["a=arg0"])
        self.c.close()
        self.daemon.stop()
        os.unlink(copy)
        shutil.copy2(TARGET, copy)   # another file under the same name
        self.daemon.start()
        self.c = self.client()
        self.assertIn(f"probe {p['id']} (uprobe:{copy}:ut_add): {copy} is not the file the "
                      "probe was attached to (deleted or replaced since): re-attached",
                      self.daemon.log())
        lst = self.c.call("list")["probes"]
        self.assertEqual([x["id"] for x in lst], [p["id"]])
        self.assertEqual(lst[0]["files"][0]["inode"], os.stat(copy).st_ino)
        self.c.call("subscribe")
        f = self.fixture(copy)
        f.cmd("add 6 0 2")
        self.assertEqual([e["args"]["a"] for e in self.c.events(2)], [6, 6])
        self.assertEqual(self.c.quiet(), [])
        f.close()

        self.c.close()
        self.daemon.stop()
        os.unlink(copy)
        self.daemon.start()
        self.c = self.client()
        self.assertIn(f"{copy} is not the file the probe was attached to (deleted or replaced "
                      "since), and the probe cannot be attached again", self.daemon.log())
        self.assertEqual(self.c.call("list")["probes"], [])
        self.assertEqual(os.listdir(os.path.join(self.daemon.root, "links")), [])

    def edit_state(self, edit):
        with open(self.daemon.state_file()) as f:
            lines = f.read().split("\n")
        with open(self.daemon.state_file(), "w") as f:
            f.write(edit(lines))

    def test_interrupted_attach_and_detach_are_finished(self):
        a, b, c = (self.attach(f"uprobe:{TARGET}:{fn}")["id"] for fn in ("ut_add", "ut_neg", "ut_sleep"))
        self.c.close()
        self.daemon.stop()

        def mark(lines):
            for i, line in enumerate(lines[1:], 1):
                if not line:
                    continue
                o = json.loads(line)
                if o["id"] in (a, b):
                    o["intent"] = "attaching" if o["id"] == a else "detaching"
                lines[i] = json.dumps(o)
            return "\n".join(lines)

        self.edit_state(mark)
        self.daemon.start()
        self.c = self.client()
        log = self.daemon.log()
        self.assertIn(f"probe {a} (uprobe:{TARGET}:ut_add) was being attached when utraced "
                      "stopped: removed", log)
        self.assertIn(f"probe {b} (uprobe:{TARGET}:ut_neg) was being detached when utraced "
                      "stopped: removed", log)
        self.assertEqual([x["id"] for x in self.c.call("list")["probes"]], [c])
        self.assertEqual(os.listdir(os.path.join(self.daemon.root, "links")), [str(c)])

    def test_damaged_state_file(self):
        ids = [self.attach(f"uprobe:{TARGET}:{fn}", args=["a=arg0"])["id"]
               for fn in ("ut_add", "ut_neg", "ut_sleep")]
        self.c.close()
        self.daemon.stop()
        # the second probe's line is garbage, the third one torn halfway
        self.edit_state(lambda lines: "\n".join([lines[0], lines[1], "{garbage", lines[3][:40]]))
        self.daemon.start()
        self.c = self.client()
        log = self.daemon.log()
        self.assertIn("state file: line 3 is not a JSON object", log)
        self.assertIn("state file: line 4 is incomplete", log)
        self.assertIn(f"{self.daemon.state_file()} is damaged (2 lines); it is kept as "
                      f"{self.daemon.state_file()}.corrupt", log)
        self.assertTrue(os.path.exists(self.daemon.state_file() + ".corrupt"))
        for gone in ids[1:]:
            self.assertIn(f"removed pinned links of unknown probe {gone}", log)
        self.assertEqual([x["id"] for x in self.c.call("list")["probes"]], [ids[0]])
        self.assertEqual(os.listdir(os.path.join(self.daemon.root, "links")), [str(ids[0])])
        self.c.call("subscribe")
        f = self.fixture()
        f.cmd("add 9 0 1")
        f.cmd("neg 1")
        self.assertEqual([e["args"]["a"] for e in self.c.events(1)], [9])
        self.assertEqual(self.c.quiet(), [])
        self.assertGreater(self.attach(f"uprobe:{TARGET}:ut_neg")["id"], ids[2])

    def test_state_file_of_garbage(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add")
        self.c.close()
        self.daemon.stop()
        with open(self.daemon.state_file(), "wb") as f:
            f.write(b"\x00\xff garbage\n{\"id\": [}\n")
        self.daemon.start()
        self.c = self.client()
        self.assertIn("state file: line 1 is not a state header", self.daemon.log())
        self.assertEqual(self.c.call("list")["probes"], [])
        self.assertEqual(self.daemon.links(p["id"]), [])
        self.assertGreater(self.attach(f"uprobe:{TARGET}:ut_add")["id"], p["id"])

    def test_kill_during_a_burst_of_attaches_converges(self):
        seed = random.randrange(1 << 30)
        rng = random.Random(seed)
        f = self.fixture()
        for rnd in range(6):
            known = [x["id"] for x in self.c.call("list")["probes"]]
            conns = [self.daemon.client() for _ in range(3)]
            sent = {}
            for k in range(36):
                conn = conns[k % 3]
                if known and k % 6 == 5:
                    req = {"method": "detach", "params": {"id": known.pop()}}
                else:
                    req = {"method": "attach",
                           "params": {"spec": f"uprobe:{TARGET}:ut_add", "args": [f"a{k}=arg0"],
                                      **({"transient": True} if k % 4 == 3 else {})}}
                rid = 1000 * rnd + k
                sent[rid] = req
                conn.send_raw(json.dumps({"jsonrpc": "2.0", "id": rid, **req}).encode() + b"\n")
            time.sleep(rng.uniform(0, 0.12))  # a burst takes about that long
            self.daemon.proc.kill()
            self.daemon.proc.wait()
            attached, detached = set(), set()
            for conn in conns:
                conn.sock.settimeout(5)
                while True:
                    try:
                        msg = conn.message(5)
                    except (ConnectionError, TimeoutError, OSError):
                        break
                    req = sent[msg["id"]]
                    if "result" in msg and req["method"] == "attach" and \
                            not req["params"].get("transient"):
                        attached.add(msg["result"]["id"])
                    elif "result" in msg and req["method"] == "detach":
                        detached.add(req["params"]["id"])
                conn.close()
            self.daemon.start()
            self.c.close()
            self.c = self.client()
            self.check_consistent(f, attached, detached, f"seed {seed}, round {rnd}")

    def check_consistent(self, f, attached, detached, where):
        lst = self.c.call("list")["probes"]
        ids = {p["id"] for p in lst}
        # pins and state file exactly as the list says
        self.assertEqual({int(x) for x in os.listdir(os.path.join(self.daemon.root, "links"))},
                         ids, where)
        for p in lst:
            self.assertEqual(len(self.daemon.links(p["id"])),
                             sum(x["links"] for x in p["files"]), where)
            self.assertFalse(p["transient"], where)
        with open(self.daemon.state_file()) as sf:
            state = [json.loads(line) for line in sf.read().split("\n")[1:] if line]
        self.assertEqual({s["id"] for s in state}, ids, where)
        self.assertFalse([s for s in state if "intent" in s], where)
        # what a client was told happened did happen
        self.assertLessEqual(attached, ids, where)
        self.assertFalse(detached & ids, where)
        # each probe is attached exactly once
        before = {p["id"]: p["hits"] for p in self.c.call("stats")["probes"]}
        f.cmd("add 1 1 1")
        after = {p["id"]: p["hits"] for p in self.c.call("stats")["probes"]}
        self.assertEqual({i: after[i] - before[i] for i in ids}, {i: 1 for i in ids}, where)


class SmallRingBuffer(UtraceTest):
    daemon_args = ("--ringbuf-size", "4K")

    def test_what_does_not_fit_while_down_is_counted(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
        f = self.fixture()
        self.c.close()
        self.daemon.stop()
        f.cmd("add 1 0 200")
        self.daemon.start()
        self.c = self.client()
        self.c.call("subscribe")
        got = []
        while True:
            more = self.c.quiet(0.5)
            if not more:
                break
            got += more
        st = self.stats(p["id"])
        self.assertTrue(0 < len(got) < 200, len(got))
        self.assertEqual({e["args"]["a"] for e in got}, {1})
        self.assertEqual(len(got) + st["lost_ringbuf"], 200)
        self.assertEqual(self.c.call("status")["events"]["backlog"], len(got))
