# SPDX-License-Identifier: GPL-2.0-only
"""Helpers for integration tests: a real utraced per test, real fixtures.

Every test gets its own daemon instance (socket, bpffs root and state
directory of its own), so tests never see each other's probes. Cleanup is
registered before anything is started: daemons are stopped, their pins
purged and fixture processes killed even when a test fails.
"""
import collections
import itertools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BUILD = os.environ.get("UTRACE_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
BUILD = os.path.abspath(BUILD)
UTRACED = os.path.join(BUILD, "daemon", "utraced")
UTRACECTL = os.path.join(BUILD, "client", "utracectl")
UTRACED_NEXT = os.path.join(BUILD, "tests", "utraced-next")  # a build with other BPF programs
TARGET = os.path.join(BUILD, "tests", "target")
TARGET_STRIPPED = os.path.join(BUILD, "tests", "target-stripped")
USDT = os.path.join(BUILD, "tests", "usdt")
USDT_NONOTES = os.path.join(BUILD, "tests", "usdt-nonotes")
UTLIB = os.path.join(BUILD, "tests", "libutlib.so")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
FLOWDEMO = os.path.abspath(os.path.join(FIXTURES, "flowdemo.py"))
# Debian's interpreter, which has the python:* USDT probes (a python3 found on
# PATH may be another build without them)
PYTHON = "/usr/bin/python3.11"
BPFFS_PREFIX = "/sys/fs/bpf/utrace-test-"


def _sanitized():
    try:
        with open(UTRACED, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# A build with ASan/UBSan (tests/run's second phase): memory figures mean
# nothing there (ASan keeps freed memory in quarantine), everything is slower,
# and its binaries need the sanitizer runtime wherever they run.
SANITIZED = _sanitized()

_counter = itertools.count()


class BpfUnavailable(Exception):
    pass


class RpcError(Exception):
    def __init__(self, code, message, name=None):
        super().__init__(f"{code} {name}: {message}")
        self.code = code
        self.message = message
        self.name = name


def symbol_address(path, name):
    """The ELF virtual address of a function, read with nm."""
    out = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise KeyError(name)


def instruction_offsets(path, name):
    """Offsets of the instructions of a function, from objdump."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                         capture_output=True, text=True, check=True).stdout
    start, offs, inside = None, [], False
    for line in out.splitlines():
        if line.endswith(f"<{name}>:"):
            start = int(line.split()[0], 16)
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            addr = line.split(":")[0].strip()
            offs.append(int(addr, 16) - start)
    return offs


class Client:
    """A raw JSON-RPC connection to the daemon."""

    def __init__(self, path, sock=None):
        """Connect to path, or use sock, a connected socket (e.g. one opened with
        other credentials)."""
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
        self.sock = sock
        self.buf = b""
        self.lines = collections.deque()
        self.ids = itertools.count(1)
        self.pending = []  # notifications read while waiting for replies

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.lines:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from utraced")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("utraced closed the connection")
            parts = (self.buf + chunk).split(b"\n")
            self.buf = parts.pop()
            self.lines.extend(parts)
        return self.lines.popleft()

    def message(self, timeout=10):
        if self.pending:
            return self.pending.pop(0)
        return json.loads(self._line(timeout))

    def reply(self, rid, timeout=10):
        while True:
            msg = json.loads(self._line(timeout))
            if "id" not in msg:
                self.pending.append(msg)
                continue
            if msg["id"] == rid:
                return msg

    def call(self, method, params=None, timeout=10):
        rid = next(self.ids)
        req = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            req["params"] = params
        self.send_raw(json.dumps(req).encode() + b"\n")
        msg = self.reply(rid, timeout)
        if "error" in msg:
            e = msg["error"]
            raise RpcError(e["code"], e["message"], e.get("data", {}).get("name"))
        return msg["result"]

    def events(self, n, timeout=10, probe=None):
        """Exactly n events (of probe, if given); fails on timeout."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            msg = self.message(max(0.01, deadline - time.monotonic()))
            if msg.get("method") == "event":
                if probe is None or msg["params"]["probe"] == probe:
                    out.append(msg["params"])
        return out

    def quiet(self, seconds=0.3):
        """Events that arrive within the next moment (expected: none)."""
        out = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                msg = self.message(left)
            except TimeoutError:
                return out
            if msg.get("method") == "event":
                out.append(msg["params"])


class Fixture:
    """tests/fixtures/target, driven over stdin; prefix runs it through another
    command (e.g. nsenter into a container)."""

    def __init__(self, path=TARGET, args=(), prefix=()):
        # prefix: a command that runs the fixture (e.g. setpriv to change its uid,
        # nsenter to run it in a container)
        self.proc = subprocess.Popen([*prefix, path, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "ready", f"fixture did not start: {line}"
        self.pid = int(line[1])

    def ask(self, line, timeout=30):
        """Send a command; its answer line."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            raise TimeoutError(f"fixture did not finish {line!r}")
        return self.proc.stdout.readline().strip()

    def cmd(self, line, timeout=30):
        out = self.ask(line, timeout)
        assert out == "ok", f"fixture answered {out!r} to {line!r}"

    def start(self, line):
        """Send a command that runs until the next line (e.g. ticker)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, line="stop", timeout=30):
        """End a command sent with start(): send line, wait for its "ok"."""
        self.cmd(line, timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass


class Daemon:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="utrace-test-")
        self.socket = os.path.join(self.dir, "utraced.sock")
        self.state = os.path.join(self.dir, "state")
        self.root = f"{BPFFS_PREFIX}{os.getpid()}-{next(_counter)}"
        self.extra = list(extra)
        self.proc = None
        self.logs = []
        self.purged = False
        self.binary = UTRACED
        # a configuration of its own: never the machine's
        self.config = os.path.join(self.dir, "utraced.conf")
        self.probes_dir = os.path.join(self.dir, "probes.d")
        os.mkdir(self.probes_dir)
        self.write_config()

    def args(self):
        return ["--config", self.config, "--socket", self.socket, "--bpffs-root", self.root,
                "--state-dir", self.state]

    def write_config(self, daemon=""):
        """utraced.conf: ProbesDirectory (this instance's) and daemon's lines."""
        with open(self.config, "w") as f:
            f.write(f"[Daemon]\nProbesDirectory={self.probes_dir}\n{daemon}")

    def write_probes(self, name, text):
        """A file of the probes directory; text None removes it."""
        path = os.path.join(self.probes_dir, name)
        if text is None:
            os.unlink(path)
        else:
            with open(path, "w") as f:
                f.write(text)
        return path

    def check_config(self):
        return subprocess.run([self.binary, "--config", self.config, "--check-config"],
                              capture_output=True, text=True, timeout=30)

    def state_file(self):
        return os.path.join(self.state, "state.json")

    def wait_log(self, text, timeout=10):
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in the log:\n{self.log()}")
            time.sleep(0.02)

    def start(self, *extra, timeout=20):
        log = open(os.path.join(self.dir, f"log{len(self.logs)}"), "w+")
        self.logs.append(log)
        self.proc = subprocess.Popen([self.binary, *self.args(), "--log-level", "debug",
                                      *self.extra, *extra], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log()
                if "cannot load the BPF programs" in text and (
                        "Operation not permitted" in text or "Function not implemented" in text):
                    raise BpfUnavailable(text.strip().splitlines()[-1])
                raise RuntimeError(f"utraced exited with {self.proc.returncode}:\n{text}")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.socket)
                s.close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"utraced did not come up:\n{self.log()}")

    def log(self):
        # read through a file description of our own: seeking the one the
        # daemon writes through would move where its next line lands
        text = ""
        for f in self.logs:
            with open(f.name) as mine:
                text += mine.read()
        return text

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def purge(self):
        if self.purged:
            return
        self.purged = True
        self.stop(signal.SIGKILL if self.proc and self.proc.poll() is None else signal.SIGTERM)
        subprocess.run([UTRACED, *self.args(), "--purge"], capture_output=True)
        if os.path.exists(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        for f in self.logs:
            f.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self):
        return Client(self.socket)

    def ctl(self, *args, check=True, timeout=30, input=None):
        p = subprocess.run([UTRACECTL, "--socket", self.socket, *args], capture_output=True,
                           text=True, timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"utracectl {' '.join(args)} failed ({p.returncode}): "
                                 f"{p.stderr}{p.stdout}")
        return p

    def links(self, probe_id):
        d = os.path.join(self.root, "links", str(probe_id))
        return sorted(os.listdir(d)) if os.path.isdir(d) else []


class UtraceTest(unittest.TestCase):
    """A test with its own running daemon (self.daemon) and a client (self.c)."""

    daemon_args = ()
    probe_files = {}  # files of the probes directory at start: name -> text

    def setUp(self):
        self.daemon = Daemon(*self.daemon_args)
        self.addCleanup(self.daemon.purge)
        self.addCleanup(self.check_daemon_exit)
        for name, text in self.probe_files.items():
            self.daemon.write_probes(name, text)
        try:
            self.daemon.start()
        except BpfUnavailable as e:
            self.skipTest(f"BPF unavailable: {e}")
        self.c = self.daemon.client()
        self.addCleanup(self.c.close)

    def check_daemon_exit(self):
        """The daemon must exit cleanly on SIGTERM, with nothing reported by
        the sanitizers (ASan, UBSan, LeakSanitizer) of a --sanitize build."""
        if self.daemon.purged:
            return
        rc = self.daemon.stop()
        text = self.daemon.log()
        reports = [line for line in text.splitlines()
                   if "Sanitizer" in line or "runtime error:" in line]
        if reports:
            self.fail("utraced: sanitizer report:\n" + text[-4000:])
        if rc not in (0, None, -signal.SIGKILL):
            self.fail(f"utraced exited with {rc}:\n{text[-2000:]}")

    def fixture(self, path=TARGET, args=(), prefix=()):
        f = Fixture(path, args, prefix)
        self.addCleanup(f.close)
        return f

    def client(self):
        c = self.daemon.client()
        self.addCleanup(c.close)
        return c

    def restart(self, sig=signal.SIGTERM, *extra):
        """Stop the daemon (with sig), start it again; self.c is a new client."""
        self.c.close()
        self.daemon.stop(sig)
        self.daemon.start(*extra)
        self.c = self.client()

    def attach(self, spec, **params):
        params["spec"] = spec
        return self.c.call("attach", params)

    def stats(self, probe_id):
        return self.c.call("stats", {"id": probe_id})["probes"][0]

    def wait_stats(self, probe_id, key, value, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats(probe_id)
            if st[key] >= value or time.monotonic() > deadline:
                return st
            time.sleep(0.02)

    def assertRpcError(self, name, fn, *args, **kw):
        with self.assertRaises(RpcError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.name, name, cm.exception.message)
        return cm.exception
