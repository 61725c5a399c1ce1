# SPDX-License-Identifier: GPL-2.0-only
"""uprobes and uretprobes on the fixture: symbols, offsets, raw addresses,
arguments, strings, pid scoping, detach."""
import os

from harness import (TARGET, TARGET_STRIPPED, UtraceTest, instruction_offsets,
                     symbol_address)


class Probes(UtraceTest):
    def setUp(self):
        super().setUp()
        self.c.call("subscribe")

    def test_symbol_args_and_return(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0", "b=arg1"])
        r = self.attach(f"uretprobe:{TARGET}:ut_add")
        f = self.fixture()
        f.cmd("add 3 4 2")
        ev = self.c.events(4)
        entries = [e for e in ev if e["probe"] == p["id"]]
        returns = [e for e in ev if e["probe"] == r["id"]]
        self.assertEqual([e["args"] for e in entries], [{"a": 3, "b": 4}] * 2)
        self.assertEqual([e["retval"] for e in returns], [7, 7])
        for e in ev:
            self.assertEqual((e["pid"], e["tid"], e["uid"], e["comm"]), (f.pid, f.pid, 0, "target"))
            self.assertGreater(e["ts"], 1.6e18)  # wall clock, ns
        self.assertEqual(self.c.quiet(), [])

    def test_negative_return_and_stack_arguments(self):
        r = self.attach(f"uretprobe:{TARGET}:ut_neg")
        p = self.attach(f"uprobe:{TARGET}:ut_args8", args=["arg0", "arg5", "arg6", "arg7"])
        f = self.fixture()
        f.cmd("neg 12")
        f.cmd("many 100 1")
        ev = self.c.events(2)
        self.assertEqual([e["retval"] for e in ev if e["probe"] == r["id"]], [-12])
        self.assertEqual([e["args"] for e in ev if e["probe"] == p["id"]],
                         [{"arg0": 100, "arg5": 105, "arg6": 106, "arg7": 107}])

    def test_symbol_plus_offset(self):
        offs = instruction_offsets(TARGET, "ut_add")
        self.assertGreater(len(offs), 1)
        p = self.attach(f"uprobe:{TARGET}:ut_add+{offs[1]}", args=["a=arg0"])
        self.assertEqual(p["files"][0]["locations"], [f"ut_add+{offs[1]}"])
        f = self.fixture()
        f.cmd("add 9 1 1")
        self.assertEqual(self.c.events(1)[0]["args"], {"a": 9})

    def test_raw_address_on_stripped_binary(self):
        addr = symbol_address(TARGET, "ut_add")
        p = self.attach(f"uprobe:{TARGET_STRIPPED}:{hex(addr)}", args=["a=arg0", "b=arg1"])
        f = self.fixture(TARGET_STRIPPED)
        f.cmd("add 5 6 1")
        ev = self.c.events(1)[0]
        self.assertEqual((ev["probe"], ev["args"]), (p["id"], {"a": 5, "b": 6}))

    def test_stripped_binary_symbol_error(self):
        e = self.assertRpcError("no-such-symbol", self.attach, f"uprobe:{TARGET_STRIPPED}:ut_add")
        self.assertIn("stripped", e.message)
        self.assertIn("0xADDR", e.message)

    def test_strings(self):
        p = self.attach(f"uprobe:{TARGET}:ut_greet", args=["name=str(arg0)", "n=arg1"])
        f = self.fixture()
        f.cmd("greet hello 2")
        ev = self.c.events(2)
        self.assertEqual([e["args"] for e in ev], [{"name": "hello", "n": 0}, {"name": "hello", "n": 1}])
        self.assertNotIn("truncated", ev[0])
        self.assertEqual(self.stats(p["id"])["str_errors"], 0)

    def test_string_in_untouched_page(self):
        p = self.attach(f"uprobe:{TARGET}:ut_greet", args=["name=str(arg0)"])
        f = self.fixture()
        f.cmd("untouched 2")
        ev = self.c.events(2)
        self.assertEqual([e["args"]["name"] for e in ev], ["never-touched-by-the-process"] * 2)
        st = self.stats(p["id"])
        # the first read had to fault the page in: proof the page was untouched
        self.assertGreaterEqual(st["str_faulted"], 1)
        self.assertEqual(st["str_errors"], 0)

    def test_truncated_string_is_flagged(self):
        self.attach(f"uprobe:{TARGET}:ut_greet", args=["name=str(arg0, 4)", "short=str(arg0, 5)"])
        f = self.fixture()
        f.cmd("greet hello 1")
        ev = self.c.events(1)[0]
        self.assertEqual(ev["args"], {"name": "hell", "short": "hello"})
        self.assertEqual(ev["truncated"], ["name"])

    def test_pid_scope(self):
        f1, f2 = self.fixture(), self.fixture()
        p = self.attach(f"uprobe:{TARGET}:ut_add", pid=f1.pid, args=["a=arg0"])
        f2.cmd("add 2 0 3")
        f1.cmd("add 1 0 2")
        f2.cmd("add 2 0 3")
        ev = self.c.events(2)
        self.assertEqual({e["pid"] for e in ev}, {f1.pid})
        self.assertEqual(self.c.quiet(), [])
        self.assertEqual(self.stats(p["id"])["hits"], 2)

    def test_detach_stops_events_and_removes_pins(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
        self.assertTrue(self.daemon.links(p["id"]))
        f = self.fixture()
        f.cmd("add 1 1 1")
        self.c.events(1)
        self.assertEqual(self.c.call("detach", {"id": p["id"]})["detached"], [p["id"]])
        self.assertEqual(self.daemon.links(p["id"]), [])
        self.assertFalse(os.path.exists(os.path.join(self.daemon.root, "links", str(p["id"]))))
        f.cmd("add 1 1 5")
        self.assertEqual(self.c.quiet(0.5), [])
        self.assertEqual(self.c.call("list")["probes"], [])
        self.assertRpcError("no-such-probe", self.c.call, "detach", {"id": p["id"]})

    def test_library_name_resolves_through_ldcache(self):
        p = self.attach("uprobe:libc.so.6:getpid")
        self.assertTrue(p["files"][0]["path"].startswith("/"))
        self.assertTrue(p["files"][0]["path"].endswith("libc.so.6"))

    def test_wildcard_symbol(self):
        p = self.attach(f"uprobe:{TARGET}:ut_a*", args=["arg0"])
        names = sorted(p["files"][0]["locations"])
        self.assertEqual(names, ["ut_add", "ut_args8"])
        f = self.fixture()
        f.cmd("add 4 0 1")
        f.cmd("many 8 1")
        ev = self.c.events(2)
        self.assertEqual([(e["location"], e["args"]["arg0"]) for e in ev],
                         [("ut_add", 4), ("ut_args8", 8)])

    def test_resolution_errors(self):
        self.assertRpcError("no-such-file", self.attach, "uprobe:/nonexistent/bin:main")
        self.assertRpcError("not-elf", self.attach, "uprobe:/etc/hostname:main")
        e = self.assertRpcError("no-such-symbol", self.attach, f"uprobe:{TARGET}:no_such_fn")
        self.assertIn("no_such_fn", e.message)
        self.assertIn(TARGET, e.message)
        self.assertRpcError("no-such-file", self.attach, "uprobe:libnothere.so.7:f")
        self.assertRpcError("no-such-process", self.attach, f"uprobe:{TARGET}:ut_add", pid=999999999)
        e = self.assertRpcError("unsupported", self.attach, "uprobe:libc.so.6:strlen")
        self.assertIn("IFUNC", e.message)
        self.assertRpcError("no-such-symbol", self.attach, f"uprobe:{TARGET}:0x10")
        self.assertRpcError("invalid-spec", self.attach, f"uprobe:{TARGET}:ut_add+100000")
        e = self.assertRpcError("invalid-spec", self.attach, f"uretprobe:{TARGET}:ut_add",
                                args=["arg0"])
        self.assertIn("--latency", e.message)
        # nothing of these failures is left behind
        self.assertEqual(self.c.call("list")["probes"], [])
        self.assertEqual(os.listdir(os.path.join(self.daemon.root, "links")), [])
