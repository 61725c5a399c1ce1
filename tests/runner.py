#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Runs every test of utrace and prints one line per test and a final
"N passed, N failed, N skipped".

  unit tests         BUILD/tests/test-* (TAP-like lines, one count per check)
  integration tests  tests/integration/test_*.py (a real daemon each)
  fuzz targets       tests/fuzz/run for each target (one test each)

Each --phase NAME=BUILD runs the unit and integration tests against one
build (e.g. asan=build-asan, a build with ASan and UBSan), in a process of its
own; test names get the prefix NAME/. --fuzz SECONDS runs every fuzz target
that long.

With UTRACE_REQUIRE_BPF=1 (as in CI) a test skipped because BPF is
unavailable counts as failed: on a machine that should have BPF, that skip
is a failure.
"""
import argparse
import glob
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class Counts:
    def __init__(self, prefix=""):
        self.passed = self.failed = self.skipped = 0
        self.failures = []
        self.prefix = prefix

    def add(self, status, name, detail=""):
        name = self.prefix + name
        if status == "PASS":
            self.passed += 1
        elif status == "SKIP":
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(name)
        print(f"{status} {name}{(' ' + detail) if detail else ''}", flush=True)


def run_unit(build, counts, only):
    args = {"test-elffile": [f"{build}/tests/target", f"{build}/tests/target-stripped"],
            "test-probe": [f"{build}/tests/libsimplehttp-provider.so"]}
    for exe in sorted(glob.glob(f"{build}/tests/test-*")):
        name = os.path.basename(exe)
        if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
            continue
        if only and not any(o in name for o in only):
            continue
        p = subprocess.run([exe, *args.get(name, [])], capture_output=True, text=True,
                           timeout=120)
        seen = 0
        for line in p.stdout.splitlines():
            if line.startswith("ok "):
                counts.add("PASS", f"unit/{name}: {line.split(' - ', 1)[-1]}")
                seen += 1
            elif line.startswith("not ok "):
                counts.add("FAIL", f"unit/{name}: {line.split(' - ', 1)[-1]}")
                seen += 1
        if p.returncode != 0 and seen == 0:
            counts.add("FAIL", f"unit/{name}", f"exited {p.returncode}: {p.stderr.strip()}")


class Result(unittest.TestResult):
    def __init__(self, counts, require_bpf):
        super().__init__()
        self.counts = counts
        self.require_bpf = require_bpf
        self.started = {}

    def _name(self, test):
        return f"integration/{test.id().split('.', 1)[-1]}"

    def startTest(self, test):
        super().startTest(test)
        self.started[test.id()] = time.monotonic()

    def _took(self, test):
        return f"({time.monotonic() - self.started.get(test.id(), time.monotonic()):.1f}s)"

    def addSuccess(self, test):
        self.counts.add("PASS", self._name(test), self._took(test))

    def addFailure(self, test, err):
        self.counts.add("FAIL", self._name(test), self._took(test))
        print(self._exc_info_to_string(err, test), flush=True)

    def addError(self, test, err):
        self.counts.add("FAIL", self._name(test), "(error) " + self._took(test))
        print(self._exc_info_to_string(err, test), flush=True)

    def addSubTest(self, test, subtest, err):
        # a failed subtest fails its test, which then reports no success
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.counts.add("FAIL", f"{self._name(test)} {subtest._subDescription()}",
                            self._took(test))
            print(self._exc_info_to_string(err, test), flush=True)

    def addSkip(self, test, reason):
        if self.require_bpf and reason.startswith("BPF unavailable"):
            self.counts.add("FAIL", self._name(test), f"(skipped, but BPF is required: {reason})")
        else:
            self.counts.add("SKIP", self._name(test), reason)

    def addExpectedFailure(self, test, err):
        self.counts.add("FAIL", self._name(test), "(expected failures are not allowed)")

    def addUnexpectedSuccess(self, test):
        self.counts.add("FAIL", self._name(test), "(unexpected success)")


def run_integration(build, counts, only, require_bpf):
    os.environ["UTRACE_BUILD"] = build
    sys.path.insert(0, os.path.join(HERE, "integration"))
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for path in sorted(glob.glob(os.path.join(HERE, "integration", "test_*.py"))):
        mod = importlib.import_module(os.path.basename(path)[:-3])
        for test in _flatten(loader.loadTestsFromModule(mod)):
            if only and not any(o in test.id() for o in only):
                continue
            suite.addTest(test)
    suite.run(Result(counts, require_bpf))


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t


def sweep():
    """Leftovers of this run's test instances (pins are named after the runner's
    pid, so runs side by side leave each other alone)."""
    for d in glob.glob(f"/sys/fs/bpf/utrace-test-{os.getpid()}-*"):
        shutil.rmtree(d, ignore_errors=True)


FUZZ_TARGETS = ["request", "spec", "elf", "format"]


def run_fuzz(seconds, counts, only):
    for t in FUZZ_TARGETS:
        name = f"fuzz/{t}"
        if only and not any(o in name for o in only):
            continue
        p = subprocess.run([os.path.join(HERE, "fuzz", "run"), str(seconds), t],
                           capture_output=True, text=True)
        out = (p.stdout + p.stderr).strip()
        detail = out.splitlines()[-1] if out else f"exited {p.returncode}"
        counts.add("PASS" if p.returncode == 0 else "FAIL", name, detail)
        if p.returncode != 0:
            print(p.stdout + p.stderr, flush=True)


def run_phase(name, build, only, counts):
    """One build's unit and integration tests, in a child process."""
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run([sys.executable, __file__, "--single", build, "--prefix", name,
                        "--report", report.name, *only])
        try:
            c = json.load(report)
        except ValueError:
            c = {"passed": 0, "failed": 1, "skipped": 0, "failures": [f"{name}: runner crashed"]}
    counts.passed += c["passed"]
    counts.failed += c["failed"]
    counts.skipped += c["skipped"]
    counts.failures += c["failures"]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phase", action="append", default=[], metavar="NAME=BUILD")
    ap.add_argument("--fuzz", type=int, default=0, metavar="SECONDS")
    ap.add_argument("--single", help=argparse.SUPPRESS)
    ap.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    ap.add_argument("--report", help=argparse.SUPPRESS)
    ap.add_argument("only", nargs="*", help="run only tests whose name contains one of these")
    a = ap.parse_args()
    counts = Counts(a.prefix)
    if a.single:
        require_bpf = os.environ.get("UTRACE_REQUIRE_BPF") == "1"
        try:
            run_unit(os.path.abspath(a.single), counts, a.only)
            run_integration(os.path.abspath(a.single), counts, a.only, require_bpf)
        finally:
            sweep()
            with open(a.report, "w") as f:
                json.dump(vars(counts), f)
        return 0
    start = time.monotonic()
    for phase in a.phase or ["=build"]:
        name, _, build = phase.rpartition("=")
        run_phase(f"{name}/" if name else "", os.path.abspath(os.path.join(HERE, "..", build)),
                  a.only, counts)
    if a.fuzz:
        run_fuzz(a.fuzz, counts, a.only)
    print(f"\n{len(counts.failures)} failures:" if counts.failures else "", flush=True)
    for f in counts.failures:
        print(f"  {f}")
    print(f"took {time.monotonic() - start:.0f}s")
    print(f"{counts.passed} passed, {counts.failed} failed, {counts.skipped} skipped")
    return 1 if counts.failed else 0


if __name__ == "__main__":
    sys.exit(main())
