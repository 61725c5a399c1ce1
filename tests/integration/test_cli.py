# SPDX-License-Identifier: GPL-2.0-only
"""utracectl as a user runs it."""
import json
import subprocess
import time

from harness import TARGET, UTRACECTL, UtraceTest


class Cli(UtraceTest):
    def test_attach_prints_id_first(self):
        p = self.daemon.ctl("attach", f"uprobe:{TARGET}:ut_add", "--arg", "a=arg0")
        self.assertEqual(p.stdout.splitlines()[0], "1")
        p = self.daemon.ctl("attach", f"uretprobe:{TARGET}:ut_add", "--json")
        self.assertEqual(json.loads(p.stdout)["id"], 2)
        out = self.daemon.ctl("list").stdout
        self.assertIn(f"uprobe:{TARGET}:ut_add", out)
        self.assertIn(f"uretprobe:{TARGET}:ut_add", out)
        lst = json.loads(self.daemon.ctl("list", "--json").stdout)
        self.assertEqual([x["id"] for x in lst["probes"]], [1, 2])

    def test_stream_human_and_json(self):
        self.daemon.ctl("attach", f"uprobe:{TARGET}:ut_greet", "--arg", "name=str(arg0)",
                        "--arg", "n=arg1")
        for fmt in ([], ["--json"]):
            s = subprocess.Popen([UTRACECTL, "--socket", self.daemon.socket, "stream", "--count",
                                  "2", "--timeout", "20", *fmt], stdout=subprocess.PIPE, text=True)
            self.addCleanup(s.kill)
            time.sleep(0.3)  # let it subscribe
            f = self.fixture()
            f.cmd("greet world 2")
            out, _ = s.communicate(timeout=20)
            lines = out.splitlines()
            self.assertEqual(len(lines), 2, out)
            if fmt:
                ev = [json.loads(x) for x in lines]
                self.assertEqual([e["args"] for e in ev],
                                 [{"name": "world", "n": 0}, {"name": "world", "n": 1}])
            else:
                self.assertIn('name="world" n=0', lines[0])
                self.assertIn("target", lines[0])

    def test_relative_target_is_made_absolute(self):
        import os
        rel = os.path.relpath(TARGET)
        p = self.daemon.ctl("attach", f"uprobe:{rel}:ut_add", "--json")
        self.assertEqual(json.loads(p.stdout)["spec"], f"uprobe:{TARGET}:ut_add")

    def test_errors_exit_nonzero_with_a_message(self):
        p = self.daemon.ctl("attach", f"uprobe:{TARGET}:nope", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("symbol nope not found", p.stderr)
        p = self.daemon.ctl("detach", "99", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no probe 99", p.stderr)
        p = self.daemon.ctl("frobnicate", check=False)
        self.assertEqual(p.returncode, 2)
        p = self.daemon.ctl("detach", check=False)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([UTRACECTL, "--socket", "/nonexistent.sock", "status"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot connect", p.stderr)

    def test_detach_all_stats_status(self):
        self.daemon.ctl("attach", f"uprobe:{TARGET}:ut_add")
        self.daemon.ctl("attach", f"uprobe:{TARGET}:ut_neg")
        f = self.fixture()
        f.cmd("add 1 1 3")
        st = json.loads(self.daemon.ctl("stats", "--json").stdout)
        self.assertEqual([p["hits"] for p in st["probes"]], [3, 0])
        self.assertIn("HITS", self.daemon.ctl("stats").stdout)
        self.assertIn("probes:      2", self.daemon.ctl("status").stdout)
        self.assertEqual(self.daemon.ctl("detach", "--all").stdout.split(),
                         ["detached", "1", "detached", "2"])
        self.assertIn("no probes", self.daemon.ctl("list").stdout)

    def test_environment_socket(self):
        import os
        env = dict(os.environ, UTRACED_SOCKET=self.daemon.socket)
        p = subprocess.run([UTRACECTL, "status", "--json"], capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["socket"], self.daemon.socket)

    def test_help(self):
        for cmd in ([], ["attach"], ["stream"], ["detach"], ["stats"], ["hist"], ["list"], ["status"]):
            p = subprocess.run([UTRACECTL, *cmd, "--help"], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, cmd)
            self.assertIn("Usage: utracectl", p.stdout)
