# SPDX-License-Identifier: GPL-2.0-only
"""In-kernel aggregations: counts keyed by nothing, an argument, comm or
uid, with filters on comm and uid. Probes that need no comm, uid or
timestamp skip reading them; these tests check that the ones that do need
them still get them."""
from harness import TARGET, UtraceTest


class Aggregate(UtraceTest):
    def keys(self, probe_id):
        res = self.c.call("aggregations", {"id": probe_id})
        return {k.get("key"): k["count"] for k in res["keys"]}

    def test_counts_by_nothing_argument_comm_and_uid(self):
        plain = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count")["id"]
        by_arg = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count", by="arg0")["id"]
        by_comm = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count", by="comm")["id"]
        by_uid = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count", by="uid")["id"]
        f = self.fixture()
        f.cmd("add 1 0 3")
        f.cmd("add 2 0 5")
        self.assertEqual(self.keys(plain), {None: 8})
        self.assertEqual(self.keys(by_arg), {1: 3, 2: 5})
        self.assertEqual(self.keys(by_comm), {"target": 8})
        self.assertEqual(self.keys(by_uid), {0: 8})

    def test_filters_on_comm_and_uid(self):
        comm = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count",
                           filter='comm == "target"')["id"]
        other = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count",
                            filter='comm == "nobody"')["id"]
        uid = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count", by="pid",
                          filter="uid == 0")["id"]
        f = self.fixture()
        f.cmd("add 1 1 4")
        self.assertEqual(self.keys(comm), {None: 4})
        self.assertEqual(self.keys(other), {})
        self.assertEqual(self.stats(other)["filtered"], 4)
        self.assertEqual(self.keys(uid), {f.pid: 4})
