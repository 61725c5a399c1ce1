# SPDX-License-Identifier: GPL-2.0-only
"""Configured probes (probes.d), --check-config, command-line overrides and
reload: only the difference is applied, a configuration with errors changes
nothing."""
import os
import signal
import subprocess

from harness import TARGET, UTRACED, Daemon, UtraceTest
from test_access import USER, connect_as

COUNT_ADD = f"""[Probe]
Name=add-count
Spec=uprobe:{TARGET}:ut_add
Aggregate=count
By=arg0
"""

NEG_EVENTS = f"""# a second probe in the same file
[Probe]
Name=neg
Spec=uprobe:{TARGET}:ut_neg
Arg=v=arg0
"""

GREET = f"""[Probe]
Name=greet
Spec=uprobe:{TARGET}:ut_greet
Arg=name=str(arg0)
"""


class CheckConfig(UtraceTest):
    def test_errors_name_file_and_line(self):
        d = self.daemon
        d.write_config("RingBufferSize=3M\nColour=blue\n")
        bad = d.write_probes("20-bad.conf", f"""[Probe]
Name=broken
Spec=uprobe:{TARGET}:ut_add
Filter=arg0 >
Aggregate=sum(arg0)

[Probe]
Name=missing
Spec=uprobe:{TARGET}:no_such_function
""")
        good = d.write_probes("10-good.conf", COUNT_ADD + NEG_EVENTS)
        p = d.check_config()
        self.assertEqual(p.returncode, 1, p.stderr)
        lines = p.stderr.splitlines()
        self.assertEqual([line.split(": ", 1)[0] for line in lines],
                         [f"{d.config}:3", f"{d.config}:4", f"{bad}:4", f"{bad}:5", f"{bad}:9"])
        self.assertIn("RingBufferSize=3M: need a power of two", lines[0])
        self.assertIn("unknown key Colour=", lines[1])
        self.assertIn("filter:", lines[2])
        self.assertIn("--aggregate sum(arg0): expected count or hist(FIELD)", lines[3])
        self.assertIn(f"symbol no_such_function not found in {TARGET}", lines[4])

        d.write_config()
        d.write_probes("20-bad.conf", None)
        p = d.check_config()
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertIn(f"2 probes in {d.probes_dir}", p.stdout)
        self.assertTrue(os.path.exists(good))

    def test_shipped_examples_resolve(self):
        examples = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "probes.d")
        with open(self.daemon.config, "w") as f:
            f.write(f"[Daemon]\nProbesDirectory={os.path.abspath(examples)}\n")
        p = self.daemon.check_config()
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertIn("4 probes in", p.stdout)

    def test_missing_file(self):
        p = subprocess.run([UTRACED, "--config", "/nonexistent/utraced.conf", "--check-config"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr.strip(),
                         "/nonexistent/utraced.conf: cannot read: No such file or directory")

    def test_errors_in_utraced_conf_prevent_the_start(self):
        d = Daemon()
        self.addCleanup(d.purge)
        d.write_config("QueueSize=12\n")
        with self.assertRaises(RuntimeError):
            d.start()
        self.assertIn(f"{d.config}:3: QueueSize=12: need a size of at least 4K", d.log())
        self.assertEqual(d.proc.returncode, 1)


class CommandLine(UtraceTest):
    def setUp(self):
        super().setUp()
        # the file names another socket and a ring buffer size; --socket wins
        self.daemon.write_config("Socket=/nonexistent/dir/utraced.sock\nRingBufferSize=64K\n")
        self.restart()

    def test_command_line_overrides_the_file(self):
        st = self.c.call("status")
        self.assertEqual(st["socket"], self.daemon.socket)
        self.assertEqual(st["ringbuf"]["size"], 65536)
        self.restart(signal.SIGTERM, "--ringbuf-size", "128K")
        self.assertEqual(self.c.call("status")["ringbuf"]["size"], 131072)


class Configured(UtraceTest):
    probe_files = {"10-add.conf": COUNT_ADD + NEG_EVENTS, "20-greet.conf": GREET}

    def configured(self):
        return {p["config"]: p for p in self.c.call("list")["probes"] if p["config"]}

    def test_configured_probes_come_up_marked(self):
        conf = self.configured()
        self.assertEqual(sorted(conf), ["add-count", "greet", "neg"])
        # in file order: 10-add.conf (two probes), then 20-greet.conf
        self.assertEqual([conf[n]["id"] for n in ("add-count", "neg", "greet")],
                         sorted(p["id"] for p in conf.values()))
        self.assertEqual(conf["add-count"]["mode"], "count")
        self.assertEqual(conf["neg"]["fields"], ["v"])
        self.assertEqual(conf["greet"]["request"],
                         {"spec": f"uprobe:{TARGET}:ut_greet", "args": ["name=str(arg0)"]})
        self.c.call("subscribe")
        f = self.fixture()
        f.cmd("neg 7")
        self.assertEqual([e["args"]["v"] for e in self.c.events(1)], [(1 << 64) - 7])  # unsigned
        f.cmd("add 4 0 3")
        keys = self.c.call("aggregations", {"id": conf["add-count"]["id"]})["keys"]
        self.assertEqual([(k["key"], k["count"]) for k in keys], [(4, 3)])

    def test_detach_refuses_configured_probes(self):
        conf = self.configured()
        mine = self.attach(f"uprobe:{TARGET}:ut_sleep")
        e = self.assertRpcError("permission-denied", self.c.call, "detach",
                                {"ids": [mine["id"], conf["neg"]["id"]]})
        self.assertIn(f"probe {conf['neg']['id']} is the configured probe neg", e.message)
        self.assertEqual(len(self.c.call("list")["probes"]), 4)  # nothing detached
        res = self.c.call("detach", {"all": True})
        self.assertEqual(res["detached"], [mine["id"]])
        self.assertEqual(sorted(res["configured"]), sorted(p["id"] for p in conf.values()))
        self.assertEqual(sorted(self.configured()), ["add-count", "greet", "neg"])
        p = self.daemon.ctl("detach", "--all")
        self.assertIn("kept 3 configured probes", p.stderr)
        self.assertIn("(configured: neg)", self.daemon.ctl("list").stdout)

    def test_reload_applies_only_the_difference(self):
        before = self.configured()
        add_id = before["add-count"]["id"]
        add_links = self.daemon.links(add_id)
        f = self.fixture()
        f.cmd("add 1 0 5")
        f.cmd("neg 1")
        # add-count unchanged, neg changed (a filter), greet removed, sleep added
        self.daemon.write_probes("10-add.conf", COUNT_ADD + NEG_EVENTS + "Filter=arg0 < 0\n")
        self.daemon.write_probes("20-greet.conf", None)
        self.daemon.write_probes("30-sleep.conf", f"[Probe]\nName=sleep\nSpec=uprobe:{TARGET}:ut_sleep\n")
        res = self.c.call("reload")
        self.assertEqual([x["name"] for x in res["unchanged"]], ["add-count"])
        self.assertEqual([x["name"] for x in res["changed"]], ["neg"])
        self.assertEqual([(x["name"], x["id"]) for x in res["removed"]],
                         [("greet", before["greet"]["id"])])
        self.assertEqual([x["name"] for x in res["added"]], ["sleep"])

        after = self.configured()
        self.assertEqual(sorted(after), ["add-count", "neg", "sleep"])
        # the unchanged probe kept its id, its links and its counters: no gap
        self.assertEqual(after["add-count"]["id"], add_id)
        self.assertEqual(self.daemon.links(add_id), add_links)
        self.assertEqual(self.stats(add_id)["hits"], 5)
        f.cmd("add 1 0 2")
        self.assertEqual(self.stats(add_id)["hits"], 7)
        keys = self.c.call("aggregations", {"id": add_id})["keys"]
        self.assertEqual([(k["key"], k["count"]) for k in keys], [(1, 7)])
        # the changed one is a new probe; the old and the removed ones are gone
        self.assertNotEqual(after["neg"]["id"], before["neg"]["id"])
        self.assertEqual(after["neg"]["filter"], "arg0 < 0")
        self.assertEqual(self.stats(after["neg"]["id"])["hits"], 0)
        for gone in (before["neg"]["id"], before["greet"]["id"]):
            self.assertEqual(self.daemon.links(gone), [])
        self.assertEqual(self.c.call("stats")["probes"][-1]["id"], after["sleep"]["id"])

        # the same configuration again: nothing to do
        res = self.c.call("reload")
        self.assertEqual((len(res["added"]), len(res["changed"]), len(res["removed"]),
                          len(res["unchanged"])), (0, 0, 0, 3))

    def test_reload_with_errors_changes_nothing(self):
        before = self.c.call("list")["probes"]
        bad = self.daemon.write_probes("30-bad.conf", "[Probe]\nName=x\nSpec=nonsense\n")
        self.daemon.write_probes("20-greet.conf", None)
        e = self.assertRpcError("config-error", self.c.call, "reload")
        self.assertIn("1 error, nothing was changed", e.message)
        self.assertIn(f"{bad}:3: probe nonsense:", e.message)
        self.assertEqual(self.c.call("list")["probes"], before)
        self.assertIn("reload refused", self.daemon.log())

        # valid, but one probe cannot attach: the new ones attached so far are undone
        self.daemon.write_probes("30-bad.conf", f"""[Probe]
Name=sleep
Spec=uprobe:{TARGET}:ut_sleep

[Probe]
Name=nope
Spec=uprobe:{TARGET}:no_such_function
""")
        e = self.assertRpcError("config-error", self.c.call, "reload")
        self.assertIn(f"probe nope ({bad}:5): symbol no_such_function not found", e.message)
        self.assertEqual(self.c.call("list")["probes"], before)
        self.assertEqual(sorted(os.listdir(os.path.join(self.daemon.root, "links"))),
                         sorted(str(p["id"]) for p in before))
        self.assertIn("reload refused", self.daemon.ctl("reload", check=False).stderr +
                      self.daemon.log())

    def test_sighup_and_utracectl_reload(self):
        self.daemon.write_probes("30-sleep.conf", f"[Probe]\nName=sleep\nSpec=uprobe:{TARGET}:ut_sleep\n")
        self.daemon.proc.send_signal(signal.SIGHUP)
        self.daemon.wait_log("configured probe sleep added")
        self.assertIn("sleep", self.configured())
        self.daemon.write_probes("30-sleep.conf", None)
        out = self.daemon.ctl("reload").stdout
        self.assertIn("reloaded: 0 added, 0 changed, 1 removed, 3 unchanged", out)
        self.assertIn("removed   sleep", out)
        self.assertNotIn("sleep", self.configured())

    def test_configured_probes_survive_restart_and_follow_the_files(self):
        before = self.configured()
        self.restart()
        self.assertEqual({n: p["id"] for n, p in self.configured().items()},
                         {n: p["id"] for n, p in before.items()})
        self.assertIn(f"probe {before['neg']['id']} (neg) adopted", self.daemon.log())
        # edited while the daemon is down: applied at the start
        self.daemon.stop()
        self.daemon.write_probes("20-greet.conf", None)
        self.daemon.start()
        self.c = self.client()
        self.assertEqual(sorted(self.configured()), ["add-count", "neg"])
        self.assertEqual(self.daemon.links(before["greet"]["id"]), [])

    def test_unprivileged_users_neither_see_nor_reload_the_configuration(self):
        os.chmod(self.daemon.dir, 0o755)  # the socket inside is world-connectable
        u = connect_as(self.daemon.socket, USER, USER)
        self.addCleanup(u.close)
        self.assertRpcError("permission-denied", u.call, "reload")
        self.assertEqual(u.call("list")["probes"], [])
        self.assertNotIn("config", u.call("status"))
        self.assertIn("config", self.c.call("status"))

    def test_probe_that_cannot_attach_at_start_is_reported(self):
        self.daemon.write_probes("30-bad.conf",
                                 f"[Probe]\nName=nope\nSpec=uprobe:{TARGET}:no_such_function\n")
        self.restart()
        self.assertEqual(sorted(self.configured()), ["add-count", "greet", "neg"])
        failed = self.c.call("status")["config"]["failed"]
        self.assertEqual([f["name"] for f in failed], ["nope"])
        self.assertIn("symbol no_such_function not found", failed[0]["error"])
