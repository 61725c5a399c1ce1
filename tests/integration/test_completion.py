# SPDX-License-Identifier: GPL-2.0-only
"""The bash completion of utracectl, run by bash as completion would run it."""
import os
import subprocess

from harness import TARGET, TARGET_STRIPPED, UTRACECTL, UtraceTest

COMPLETION = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                          "completion", "utracectl"))


class Completion(UtraceTest):
    def complete(self, *words):
        """COMPREPLY for the command line `utracectl WORDS`, the cursor at the end."""
        script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
                  '_utracectl; printf "%s\\n" "${COMPREPLY[@]}"')
        p = subprocess.run(["bash", "-c", script, "bash", COMPLETION, UTRACECTL, *words],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, UTRACED_SOCKET=self.daemon.socket))
        self.assertEqual(p.stderr, "")
        return [w for w in p.stdout.splitlines() if w]

    def test_commands_and_options(self):
        out = subprocess.run([UTRACECTL, "--help"], capture_output=True, text=True).stdout
        block = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
        commands = sorted(line.split()[0] for line in block.splitlines() if line.strip())
        self.assertEqual(sorted(self.complete("")), commands)
        self.assertEqual(self.complete("at"), ["attach"])
        self.assertEqual(sorted(self.complete("--")), ["--help", "--json", "--socket", "--version"])
        self.assertEqual(self.complete("attach", "--l"), ["--latency"])
        self.assertEqual(sorted(self.complete("detach", "-")), ["--all", "--help", "--json", "-h",
                                                               "-j"])
        self.assertEqual(sorted(self.complete("--socket", "/x", "stream", "--c")), ["--count"])

    def test_specs_and_probe_ids(self):
        self.assertEqual(sorted(self.complete("trace", "u")), ["uprobe:", "uretprobe:", "usdt:"])
        self.assertEqual(self.complete("attach", f"uprobe:{TARGET_STRIPPED[:-1]}"),
                         [f"uprobe:{TARGET_STRIPPED}"])
        ids = [str(self.attach(f"uprobe:{TARGET}:ut_add")["id"]),
               str(self.attach(f"uprobe:{TARGET}:ut_neg")["id"])]
        self.assertEqual(sorted(self.complete("detach", "")), sorted(ids))
