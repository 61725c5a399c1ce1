# SPDX-License-Identifier: GPL-2.0-only
"""utracectl flow: Python calls and returns, indented by depth per thread,
from the python:function__entry/function__return probes of Debian's
interpreter, attached for as long as the command runs."""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

from harness import FLOWDEMO, PYTHON, TARGET, UTRACECTL, UtraceTest

# main() of flowdemo.py, as (arrow, function, depth)
MAIN = [
    ("->", "flowdemo.main", 0),
    ("->", "flowdemo.outer", 1),
    ("->", "flowdemo.middle", 2),
    ("->", "flowdemo.leaf", 3),
    ("<-", "flowdemo.leaf", 3),
    ("<-", "flowdemo.middle", 2),
    ("->", "flowdemo.middle", 2),
    ("->", "flowdemo.leaf", 3),
    ("<-", "flowdemo.leaf", 3),
    ("<-", "flowdemo.middle", 2),
    ("<-", "flowdemo.outer", 1),
    ("->", "flowdemo.hello", 1),
    ("->", "flowdemo.leaf", 2),
    ("<-", "flowdemo.leaf", 2),
    ("<-", "flowdemo.hello", 1),
    ("<-", "flowdemo.main", 0),
]
# plain() without a profiler: CPython 3.11 reports the returns only, and
# they are shown inside the innermost call seen (none)
PLAIN = [
    ("<-", "flowdemo.leaf", 0),
    ("<-", "flowdemo.middle", 0),
    ("<-", "flowdemo.leaf", 0),
    ("<-", "flowdemo.plain", 0),
]


def source_line(text):
    """Line number of the first line of flowdemo.py that starts with text."""
    with open(FLOWDEMO) as f:
        for n, line in enumerate(f, 1):
            if line.strip().startswith(text):
                return n
    raise KeyError(text)


class Flow(UtraceTest):
    def flow(self, *args):
        """Start utracectl flow and wait until its probes are attached."""
        p = subprocess.Popen([UTRACECTL, "--socket", self.daemon.socket, "flow", *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(),
                                 p.stdout.close(), p.stderr.close()))
        r, _, _ = select.select([p.stderr], [], [], 20)
        self.assertTrue(r, "utracectl flow did not start")
        line = p.stderr.readline()
        self.assertTrue(line.startswith("following Python calls in "), line)
        return p, line

    def parse(self, out):
        """(arrow, function, depth) and pid/tid of each line of the human output."""
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["TIME", "PID/TID", "CALL"])
        col = lines[0].index("CALL")
        calls, who = [], set()
        for line in lines[1:]:
            at = min(i for i in (line.find("-> "), line.find("<- ")) if i >= 0)
            self.assertEqual((at - col) % 2, 0, line)
            calls.append((line[at:at + 2], line[at + 3:], (at - col) // 2))
            who.add(line.split()[1])
        return calls, who

    def test_follows_one_process(self):
        f = self.fixture(PYTHON, [FLOWDEMO])
        p, line = self.flow("--pid", str(f.pid), "flowdemo.*", "--count", str(len(MAIN + PLAIN)))
        self.assertIn(f"in process {f.pid} (probes ", line)
        self.assertEqual(len(self.c.call("list")["probes"]), 2)
        f.cmd("main")
        f.cmd("plain 1")
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, err)
        calls, who = self.parse(out)
        self.assertEqual(calls, MAIN + PLAIN)
        self.assertEqual(who, {f"{f.pid}/{f.pid}"})
        # the probes were tied to the command's connection
        self.assertEqual(self.c.call("list")["probes"], [])

    def test_json_gives_the_raw_events(self):
        f = self.fixture(PYTHON, [FLOWDEMO])
        p, _ = self.flow("--pid", str(f.pid), "--json", "*.leaf", "--count", "2")
        f.cmd("main")
        out, _ = p.communicate(timeout=30)
        ev = [json.loads(x) for x in out.splitlines()]
        self.assertEqual([(e["location"], e["pid"], e["args"]) for e in ev], [
            ("python:function__entry", f.pid,
             {"file": FLOWDEMO, "func": "leaf", "line": source_line("def leaf")}),
            ("python:function__return", f.pid,
             {"file": FLOWDEMO, "func": "leaf", "line": source_line("return x + 1")}),
        ])

    def test_follows_every_process_of_an_interpreter(self):
        # system-wide on a private copy of the interpreter: every process that
        # runs it, started after the probes were attached, and no other
        d = tempfile.mkdtemp(prefix="utrace-flow-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        python = os.path.join(d, "python3.11")
        shutil.copy2(PYTHON, python)
        p, line = self.flow(python, "flowdemo.*", "--count", str(1 + len(MAIN)))
        self.assertIn(f"in {python} (probes ", line)
        f = self.fixture(python, [FLOWDEMO])
        f.cmd("main")
        out, _ = p.communicate(timeout=30)
        calls, who = self.parse(out)
        # seen from its start, the program first ran the body of class Greeter
        self.assertEqual(calls, [("<-", "flowdemo.Greeter", 0)] + MAIN)
        self.assertEqual(who, {f"{f.pid}/{f.pid}"})

    def test_python_means_the_system_interpreter(self):
        want = next(os.path.join(d, "python3") for d in
                    ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin")
                    if os.path.isfile(os.path.join(d, "python3")))
        p, line = self.flow("python", "--timeout", "0.2")
        self.assertIn(f"in {want} (probes ", line)
        p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0)

    def test_returns_without_calls_are_explained(self):
        f = self.fixture(PYTHON, [FLOWDEMO])
        p, _ = self.flow("--pid", str(f.pid), "flowdemo.plain", "--count", "20")
        f.cmd("plain 20")
        out, err = p.communicate(timeout=30)
        calls, _ = self.parse(out)
        self.assertEqual(calls, [("<-", "flowdemo.plain", 0)] * 20)
        self.assertEqual(err.count("returns arrive without their calls"), 1, err)

    def test_errors(self):
        f = self.fixture(TARGET)
        p = self.daemon.ctl("flow", "--pid", str(f.pid), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"no USDT probe python:function__entry in any object of process {f.pid}",
                      p.stderr)
        p = self.daemon.ctl("flow", "/etc/hostname", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is not an ELF file", p.stderr)
        self.assertEqual(self.daemon.ctl("flow", check=False).returncode, 2)
        self.assertIn("Usage: utracectl flow", self.daemon.ctl("flow", "--help").stdout)
        self.assertEqual(self.daemon.ctl("flow", "--pid", "1", "a", "b", check=False).returncode, 2)
        self.assertEqual(self.c.call("list")["probes"], [])


class FlowLosses(UtraceTest):
    daemon_args = ("--queue-size", "64K")

    def test_a_slow_reader_is_told_what_it_lost(self):
        f = self.fixture(PYTHON, [FLOWDEMO])
        p = subprocess.Popen([UTRACECTL, "--socket", self.daemon.socket, "flow", "--pid",
                              str(f.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(),
                                 p.stdout.close(), p.stderr.close()))
        line = p.stderr.readline().decode()
        ids = [int(x) for x in re.search(r"\(probes (\d+), (\d+)\)", line).groups()]
        # nobody reads the command's output: it stops reading the daemon,
        # whose queue for it fills up
        f.cmd("plain 5000")
        emitted = sum(self.stats(i)["events"] for i in ids)
        self.assertGreaterEqual(emitted, 20000)
        lines, lost, err = 0, 0, b""
        deadline = time.monotonic() + 60
        while lines - 1 + lost < emitted and time.monotonic() < deadline:
            r, _, _ = select.select([p.stdout, p.stderr], [], [], 1)
            if p.stdout in r:
                lines += os.read(p.stdout.fileno(), 1 << 16).count(b"\n")
            if p.stderr in r:
                err += os.read(p.stderr.fileno(), 1 << 16)
                totals = re.findall(rb"events lost: this client read too slowly \((\d+) in all\)",
                                    err)
                lost = max(int(t) for t in totals) if totals else 0
        p.send_signal(signal.SIGINT)
        p.wait(10)
        # every event was either shown or counted as lost (less the header line)
        self.assertGreater(lost, 0, err)
        self.assertEqual(lines - 1 + lost, emitted)
