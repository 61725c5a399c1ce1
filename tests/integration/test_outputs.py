# SPDX-License-Identifier: GPL-2.0-only
"""Outputs of configured probes: the NDJSON file, rotated at line boundaries
with every event in exactly one file; a full disk and a directory that cannot
be made are reported, cost only counted events and are recovered from.
(The journal output is tested under a booted systemd: test_systemd.)"""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time

from prometheus_client.parser import text_string_to_metric_families

from harness import TARGET, UtraceTest


def ticks(path, extra=""):
    return f"""[Probe]
Name=ticks
Spec=uprobe:{TARGET}:ut_tick
Arg=i=arg0
File={path}
{extra}"""


def lines_of(path):
    """Every line of path and of its rotated files, oldest file first."""
    files = sorted(glob.glob(glob.escape(path) + ".*"), key=lambda f: -int(f.rsplit(".", 1)[1]))
    out = []
    for f in files + ([path] if os.path.exists(path) else []):
        with open(f) as fh:
            out += fh.read().splitlines()
    return out


class FileOutput(UtraceTest):
    def setUp(self):
        super().setUp()
        self.out = tempfile.mkdtemp(prefix="utrace-out-")
        self.addCleanup(shutil.rmtree, self.out, ignore_errors=True)
        # a first subscriber ends the hold of events after the start: they flow at once
        idle = self.attach(f"uprobe:{TARGET}:ut_sleep")["id"]
        self.client().call("subscribe", {"ids": [idle]})

    def metric(self, metric, **labels):
        text = self.c.call("metrics")["text"]
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == metric and labels.items() <= s.labels.items():
                    return s.value
        return None

    def wait_metric(self, metric, value, timeout=30, **labels):
        deadline = time.monotonic() + timeout
        while True:
            v = self.metric(metric, **labels)
            if v == value or time.monotonic() > deadline:
                self.assertEqual(v, value, f"{metric} {labels}")
                return
            time.sleep(0.05)

    def configure(self, text, daemon=""):
        if daemon:
            self.daemon.write_config(daemon)
        self.daemon.write_probes("out.conf", text)
        self.c.call("reload")

    def test_rotation_keeps_every_event_once(self):
        path = os.path.join(self.out, "ticks.ndjson")
        self.configure(ticks(path, "FileMaxSize=4K\nFileKeep=1000\n"))
        f = self.fixture()
        f.cmd("loop 2000")
        self.wait_metric("utrace_probe_delivered_total", 2000, name="ticks", output="file")
        lines = lines_of(path)
        events = [json.loads(line) for line in lines]
        self.assertEqual(sorted(e["args"]["i"] for e in events), list(range(2000)))
        self.assertEqual([e["args"]["i"] for e in events], list(range(2000)))  # in order
        self.assertEqual({(e["config"], e["comm"], e["pid"]) for e in events},
                         {("ticks", "target", f.pid)})
        rotated = glob.glob(glob.escape(path) + ".*")
        self.assertGreater(len(rotated), 10)
        for name in rotated + [path]:
            self.assertLessEqual(os.path.getsize(name), 4096)
        self.assertEqual(self.metric("utrace_probe_file_rotations_total", name="ticks"),
                         len(rotated))
        self.assertEqual(self.metric("utrace_probe_dropped_total", name="ticks", output="file",
                                     cause="queue"), 0)
        self.assertEqual(self.metric("utrace_probe_output_failing", name="ticks", output="file"),
                         0)
        self.assertEqual(oct(os.stat(path).st_mode & 0o777), "0o640")

    def test_keep_bounds_the_files(self):
        path = os.path.join(self.out, "ticks.ndjson")
        self.configure(ticks(path, "FileMaxSize=4K\nFileKeep=2\n"))
        self.fixture().cmd("loop 500")
        self.wait_metric("utrace_probe_delivered_total", 500, name="ticks", output="file")
        self.assertEqual(sorted(os.listdir(self.out)),
                         ["ticks.ndjson", "ticks.ndjson.1", "ticks.ndjson.2"])
        # what is kept is the newest events, each once, in order
        values = [json.loads(line)["args"]["i"] for line in lines_of(path)]
        self.assertEqual(values, list(range(500 - len(values), 500)))

    def test_full_disk_is_counted_and_recovered_from(self):
        disk = os.path.join(self.out, "disk")
        os.mkdir(disk)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", disk], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", disk])
        filler = os.path.join(disk, "filler")
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
        path = os.path.join(disk, "ticks.ndjson")
        # small queues: a stuck writer soon costs events, which are counted
        self.configure(ticks(path), daemon="QueueSize=4K\n")
        f = self.fixture()
        f.cmd("loop 3000")
        self.wait_metric("utrace_probe_events_total", 3000, name="ticks")
        self.wait_metric("utrace_ringbuf_pending_bytes", 0)  # all of them handled
        self.wait_metric("utrace_probe_output_failing", 1, name="ticks", output="file")
        self.daemon.wait_log(f"probe ticks: cannot write {path}: No space left on device")
        dropped = self.metric("utrace_probe_dropped_total", name="ticks", output="file",
                              cause="queue")
        self.assertGreater(dropped, 0)
        os.unlink(filler)
        self.wait_metric("utrace_probe_output_failing", 0, name="ticks", output="file")
        self.daemon.wait_log(f"probe ticks: {path} is written again")
        self.wait_metric("utrace_probe_delivered_total", 3000 - dropped, name="ticks",
                         output="file")
        # every event written once or counted as dropped; nothing else
        first = [json.loads(line) for line in lines_of(path)]
        self.assertEqual(len(first), 3000 - dropped)
        values = [e["args"]["i"] for e in first]
        self.assertEqual(values, sorted(set(values)))
        # and it goes on: each event of the next round written once or counted
        f.cmd("loop 20")
        self.wait_metric("utrace_probe_events_total", 3020, name="ticks")
        self.wait_metric("utrace_ringbuf_pending_bytes", 0)
        deadline = time.monotonic() + 30
        while True:
            written = self.metric("utrace_probe_delivered_total", name="ticks", output="file")
            dropped = self.metric("utrace_probe_dropped_total", name="ticks", output="file",
                                  cause="queue")
            if written + dropped == 3020 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(written + dropped, 3020)
        lines = [json.loads(line)["args"]["i"] for line in lines_of(path)]
        self.assertEqual(len(lines), written)
        later = lines[len(first):]
        self.assertEqual(later, sorted(set(later)))
        self.assertTrue(later and set(later) <= set(range(20)))

    def test_a_directory_that_cannot_be_made(self):
        blocker = os.path.join(self.out, "logs")
        with open(blocker, "w") as fh:
            fh.write("a file where the directory should be\n")
        path = os.path.join(blocker, "sub", "ticks.ndjson")
        self.configure(ticks(path))
        f = self.fixture()
        f.cmd("loop 10")
        self.daemon.wait_log(f"probe ticks: cannot write {path}: Not a directory")
        self.wait_metric("utrace_probe_output_failing", 1, name="ticks", output="file")
        os.unlink(blocker)
        self.wait_metric("utrace_probe_delivered_total", 10, name="ticks", output="file")
        self.assertEqual([json.loads(line)["args"]["i"] for line in lines_of(path)],
                         list(range(10)))
        self.assertEqual(self.metric("utrace_probe_output_failing", name="ticks", output="file"),
                         0)

    def test_reload_moves_the_file_and_keeps_the_probe(self):
        one, two = os.path.join(self.out, "one.ndjson"), os.path.join(self.out, "two.ndjson")
        self.configure(ticks(one))
        [probe] = [p for p in self.c.call("list")["probes"] if p["config"]]
        f = self.fixture()
        f.cmd("loop 5")
        self.wait_metric("utrace_probe_delivered_total", 5, name="ticks", output="file")
        self.daemon.write_probes("out.conf", ticks(two))
        res = self.c.call("reload")
        self.assertEqual(res["unchanged"], [{"name": "ticks", "id": probe["id"]}])
        f.cmd("loop 3")
        self.wait_metric("utrace_probe_delivered_total", 3, name="ticks", output="file")
        self.assertEqual(len(lines_of(one)), 5)
        self.assertEqual([json.loads(line)["args"]["i"] for line in lines_of(two)], [0, 1, 2])
