# SPDX-License-Identifier: GPL-2.0-only
"""In-kernel aggregations: exact counts and log2 buckets, keys by comm, pid,
strings and casts, the bound on keys and its overflow key, counters that
survive a restart, and how utracectl prints them."""
import json
import signal
import subprocess
import time

from harness import TARGET, UTRACECTL, UtraceTest

MS = 1000000


def bucket(lo, hi, count):
    return {"min": lo, "max": hi, "count": count}


def log2_buckets(counts):
    """Buckets of slots 0.. for a list of counts, as the daemon lists them."""
    out = []
    for slot, n in enumerate(counts):
        lo = 0 if slot == 0 else 1 << (slot - 1)
        hi = 0 if slot == 0 else (1 << slot) - 1
        out.append(bucket(lo, hi, n))
    return out


class Aggregations(UtraceTest):
    def aggs(self, probe_id):
        return self.c.call("aggregations", {"id": probe_id})

    def keys(self, probe_id):
        return {k.get("key", "overflow" if k.get("overflow") else None): k["count"]
                for k in self.aggs(probe_id)["keys"]}

    def test_count_emits_no_events(self):
        self.c.call("subscribe")
        p = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count")["id"]
        f = self.fixture()
        f.cmd("add 1 2 7")
        a = self.aggs(p)
        self.assertEqual((a["mode"], a["by"]), ("count", None))
        self.assertEqual(a["keys"], [{"count": 7}])
        st = a["stats"]
        self.assertEqual((st["hits"], st["aggregated"], st["events"]), (7, 7, 0))
        self.assertEqual(self.c.quiet(), [])

    def test_hist_of_an_argument_exact_buckets(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="hist(arg0)")["id"]
        f = self.fixture()
        calls = [(0, 3), (1, 2), (2, 1), (3, 4), (1000, 1), (1024, 5)]
        for v, n in calls:
            f.cmd(f"add {v} 0 {n}")
        a = self.aggs(p)
        self.assertEqual(a["value"], "arg0")
        [k] = a["keys"]
        self.assertEqual(k["count"], 16)
        self.assertEqual(k["sum"], sum(v * n for v, n in calls))
        # [0] [1] [2,4) ... [512,1K) [1K,2K): empty buckets between are listed
        self.assertEqual(k["buckets"], log2_buckets([3, 2, 5, 0, 0, 0, 0, 0, 0, 0, 1, 5]))

    def test_hist_of_a_signed_cast_has_a_negative_bucket(self):
        p = self.attach(f"uretprobe:{TARGET}:ut_status", aggregate="hist((int)retval)",
                        by="(int)retval", max_keys=2)["id"]
        f = self.fixture()
        for v in (-2, -2, -100, 0, 5):
            f.cmd(f"status {v}")
        a = self.aggs(p)
        self.assertEqual((a["value"], a["by"]), ("(s32)retval", "(s32)retval"))
        keys = {k.get("key", "overflow"): k for k in a["keys"]}
        self.assertEqual(list(keys), [-2, -100, "overflow"])  # biggest first, overflow last
        self.assertEqual(keys[-2]["buckets"], [bucket(-(1 << 63), -1, 2)])
        self.assertEqual(keys[-2]["sum"], -4)
        # the overflow key has 0 and 5: [0], [1], [2,4), [4,8)
        self.assertEqual(keys["overflow"]["buckets"], log2_buckets([1, 0, 0, 1]))
        self.assertEqual(a["stats"]["key_overflow"], 2)

    def test_hist_of_latency(self):
        p = self.attach(f"uprobe:{TARGET}:ut_sleep", latency=True,
                        aggregate="hist(latency_ns)")["id"]
        f = self.fixture()
        for ms in (2, 2, 2, 10, 10):
            f.cmd(f"sleep {ms}")
        [k] = self.aggs(p)["keys"]
        self.assertEqual(k["count"], 5)
        self.assertEqual(sum(b["count"] for b in k["buckets"]), 5)
        # lower bounds only: a sleep may last longer, never shorter
        self.assertGreaterEqual(k["buckets"][0]["max"], 2 * MS)
        self.assertGreaterEqual(sum(b["count"] for b in k["buckets"] if b["max"] >= 10 * MS), 2)
        self.assertGreaterEqual(k["sum"], 26 * MS)
        self.assertNotEqual(k["buckets"][0]["count"], 0)
        self.assertNotEqual(k["buckets"][-1]["count"], 0)

    def test_by_comm_and_pid(self):
        spec = f"uprobe:{TARGET}:ut_add"
        by_comm = self.attach(spec, aggregate="count", by="comm")["id"]
        by_pid = self.attach(spec, aggregate="hist(arg0)", by="pid")["id"]
        one, two = self.fixture(), self.fixture()
        two.cmd("name other")
        one.cmd("add 4 0 3")
        two.cmd("add 1 0 5")
        self.assertEqual(self.keys(by_comm), {"target": 3, "other": 5})
        a = self.aggs(by_pid)
        self.assertEqual({k["key"]: k["count"] for k in a["keys"]}, {one.pid: 3, two.pid: 5})
        self.assertEqual({k["key"]: k["buckets"] for k in a["keys"]},
                         {one.pid: log2_buckets([0, 0, 0, 3])[3:],
                          two.pid: log2_buckets([0, 5])[1:]})
        # the overflow-free count of keys is what the stats say was aggregated
        self.assertEqual(self.stats(by_comm)["aggregated"], 8)

    def test_by_string_keys_on_their_first_32_bytes(self):
        p = self.attach(f"uprobe:{TARGET}:ut_greet", aggregate="count", by="str(arg0)",
                        filter='str(arg0) != "skip"')["id"]
        f = self.fixture()
        long_a, long_b = "x" * 32 + "-one", "x" * 32 + "-two"
        for name, n in (("a", 3), ("bb", 2), ("skip", 4), (long_a, 1), (long_b, 1)):
            f.cmd(f"greet {name} {n}")
        self.assertEqual(self.keys(p), {"a": 3, "bb": 2, "x" * 32: 2})
        st = self.stats(p)
        self.assertEqual((st["hits"], st["filtered"], st["aggregated"]), (11, 4, 7))
        # a key by a capture's name is the value as captured; str(arg0, LEN) sets its length
        q = self.attach(f"uprobe:{TARGET}:ut_greet", aggregate="count", by="s",
                        args=["s=str(arg0, 2)"])["id"]
        r = self.attach(f"uprobe:{TARGET}:ut_greet", aggregate="count", by="str(arg0, 3)",
                        args=["s=str(arg0, 2)"])["id"]
        f.cmd("greet abcd 2")
        f.cmd("greet abce 1")
        f.cmd("greet xbcd 1")
        self.assertEqual(self.keys(q), {"ab": 3, "xb": 1})
        self.assertEqual(self.keys(r), {"abc": 3, "xbc": 1})

    def test_max_keys_and_the_overflow_key(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count", by="arg0", max_keys=3)["id"]
        f = self.fixture()
        for v in (1, 2, 3, 4, 5, 6, 1, 6):
            f.cmd(f"add {v} 0 1")
        # the first three keys stay; the rest is folded into one, and counted
        self.assertEqual(self.keys(p), {1: 2, 2: 1, 3: 1, "overflow": 4})
        st = self.stats(p)
        self.assertEqual((st["key_overflow"], st["aggregated"], st["hits"]), (4, 8, 8))
        out = self.daemon.ctl("hist", str(p)).stdout
        self.assertEqual(out, "count by arg0:\n@[3]: 1\n@[2]: 1\n@[1]: 2\n@[<other keys>]: 4\n")

    def test_counts_survive_a_restart(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="hist(arg0)", by="comm")["id"]
        f = self.fixture()
        f.cmd("add 2 0 3")
        self.c.close()
        self.daemon.stop()
        f.cmd("add 2 0 4")        # counted in the pinned maps while the daemon is down
        self.daemon.start()
        self.c = self.daemon.client()
        self.addCleanup(self.c.close)
        f.cmd("add 8 0 1")
        [k] = self.aggs(p)["keys"]
        self.assertEqual((k["key"], k["count"]), ("target", 8))
        self.assertEqual(k["buckets"], log2_buckets([0, 0, 7, 0, 1])[2:])
        self.assertEqual(self.stats(p)["aggregated"], 8)

    def test_hist_command_prints_like_bpftrace(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="hist(arg0)")["id"]
        self.assertEqual(self.daemon.ctl("hist", str(p)).stdout, "no hits yet\n")
        f = self.fixture()
        for v, n in ((0, 1), (1, 2), (5, 4), (1536, 2)):
            f.cmd(f"add {v} 0 {n}")
        bar = lambda n: "|" + ("@" * n).ljust(52) + "|"
        want = ["hist(arg0):", "@: count 9, average 343",
                f"{'[0]':<20} {1:>8} {bar(13)}",
                f"{'[1]':<20} {2:>8} {bar(26)}",
                f"{'[2, 4)':<20} {0:>8} {bar(0)}",
                f"{'[4, 8)':<20} {4:>8} {bar(52)}"]
        want += [f"{f'[{1 << s}, {1 << (s + 1)})':<20} {0:>8} {bar(0)}" for s in range(3, 9)]
        want += [f"{'[512, 1K)':<20} {0:>8} {bar(0)}", f"{'[1K, 2K)':<20} {2:>8} {bar(26)}"]
        self.assertEqual(self.daemon.ctl("hist", str(p)).stdout.splitlines(), want)
        js = json.loads(self.daemon.ctl("hist", str(p), "--json").stdout)
        self.assertEqual(js["keys"], self.aggs(p)["keys"])
        self.assertEqual(js["keys"][0]["count"], 9)
        e = self.daemon.ctl("hist", "99", check=False)
        self.assertEqual((e.returncode, e.stderr.strip()), (1, "utracectl: error: no probe 99"))
        q = self.attach(f"uprobe:{TARGET}:ut_add")["id"]
        e = self.daemon.ctl("hist", str(q), check=False)
        self.assertIn("streams events; it keeps no aggregation", e.stderr)

    def test_trace_aggregate_prints_when_interrupted(self):
        t = subprocess.Popen([UTRACECTL, "--socket", self.daemon.socket, "trace",
                              f"uprobe:{TARGET}:ut_add", "--aggregate", "count", "--by", "comm"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(t.wait)
        self.addCleanup(t.kill)
        for _ in range(500):
            if self.c.call("list")["probes"]:
                break
            time.sleep(0.01)
        f = self.fixture()
        f.cmd("add 1 1 6")
        t.send_signal(signal.SIGINT)
        out, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 0, err)
        self.assertEqual(out, "count by comm:\n@[target]: 6\n")
        for _ in range(500):  # transient: gone with its client
            if not self.c.call("list")["probes"]:
                break
            time.sleep(0.01)
        self.assertEqual(self.c.call("list")["probes"], [])

    def test_bad_aggregations_are_refused(self):
        spec = f"uprobe:{TARGET}:ut_add"
        for params, words in (
                ({"aggregate": "sum(arg0)"}, "expected count or hist"),
                ({"aggregate": "hist(comm)"}, "integer"),
                ({"aggregate": "hist(str(arg0))"}, "integer"),
                ({"aggregate": "hist(latency_ns)"}, "needs --latency"),
                ({"aggregate": "count", "by": "cgroup"}, "--by: takes"),
                ({"by": "comm"}, "--by needs --aggregate"),
                ({"aggregate": "count", "max_keys": 0}, "max_keys must be"),
                ({"aggregate": "count", "max_keys": 100000}, "max_keys must be")):
            with self.subTest(params=params):
                e = self.assertRpcError("invalid-spec", self.attach, spec, **params)
                self.assertIn(words, e.message)
        self.assertEqual(self.c.call("list")["probes"], [])
