# SPDX-License-Identifier: GPL-2.0-only
"""utraced as a system service under a real systemd.

A minimal Debian (debootstrap, cached under /var/cache/utrace-test and reused
by later runs) boots systemd in a container (systemd-nspawn -b), with the
project installed into it by `meson install` from a build configured with
--prefix=/usr. Inside: socket activation, attach and events, reload, restart
keeping the probe, a direct start, stop, and `systemd-analyze security`.

The container gets its own directory of the host's bpffs as /sys/fs/bpf, the
capabilities and system calls BPF needs, and a private overlay on the cached
root file system; all of it is torn down when the tests end, pass or fail.
"""
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from harness import BPFFS_PREFIX, BUILD, SANITIZED, Client, Fixture

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("UTRACE_ROOTFS_CACHE", "/var/cache/utrace-test")
SUITE = "bookworm"
# systemd to boot, the run-time libraries of utraced and utracectl, and
# /bin/kill (procps: not in a minimal system) for ExecReload=
PACKAGES = "systemd,systemd-sysv,dbus,libbpf1,libelf1,libjson-c5,libsystemd0,procps"
TARGET_IN = "/opt/utrace-test/target"
SOCKET_IN = "/run/utraced/utraced.sock"
LOG = os.path.join(BUILD, "systemd-test.log")


def run(cmd, timeout=300, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def base_rootfs():
    """The cached Debian root file system; made by debootstrap the first time."""
    base = os.path.join(CACHE, SUITE)
    stamp = os.path.join(base, ".utrace-packages")
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(stamp) as f:
                if f.read() == PACKAGES:
                    return base
        except FileNotFoundError:
            pass
        tmp = f"{base}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            p = run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, tmp],
                    timeout=900)
            if p.returncode != 0:
                raise RuntimeError(f"debootstrap failed ({p.returncode}):\n{p.stdout[-3000:]}"
                                   f"{p.stderr[-3000:]}")
            with open(os.path.join(tmp, ".utrace-packages"), "w") as f:
                f.write(PACKAGES)
            shutil.rmtree(base, ignore_errors=True)
            os.rename(tmp, base)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return base


def usr_build():
    """A build configured with --prefix=/usr (a Debian-like layout), next to the
    test build."""
    build = os.path.join(BUILD, "install-usr")
    if not os.path.exists(os.path.join(build, "build.ninja")):
        p = run(["meson", "setup", "--prefix=/usr", build, SRC])
        assert p.returncode == 0, p.stdout + p.stderr
    p = run(["ninja", "-C", build])
    assert p.returncode == 0, p.stdout + p.stderr
    return build


def meson_install(destdir):
    p = run(["meson", "install", "-C", usr_build(), "--no-rebuild", "--destdir", destdir])
    assert p.returncode == 0, p.stdout + p.stderr


class Container:
    """A booted systemd in an nspawn container on an overlay of the cached root."""

    def __init__(self, name="systemd"):
        self.dir = f"/var/tmp/utrace-{name}-test-{os.getpid()}"
        self.root = os.path.join(self.dir, "root")
        self.bpffs = f"{BPFFS_PREFIX}{os.getpid()}-{name}"
        self.mounted = False
        self.nspawn = None
        self.init = None
        self.log = None

    def setup(self):
        base = base_rootfs()
        for d in ("upper", "work", "root"):
            os.makedirs(os.path.join(self.dir, d))
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={base},upperdir={self.dir}/upper,workdir={self.dir}/work",
                        self.root], check=True)
        self.mounted = True
        self.install()
        os.makedirs(self.bpffs)
        self.boot()

    def install(self):
        meson_install(self.root)
        os.makedirs(self.root + os.path.dirname(TARGET_IN))
        shutil.copy(os.path.join(BUILD, "tests", "target"), self.root + TARGET_IN)
        # pings every 2.5 s: the test sees them, and a daemon that stops
        # pinging is killed while the test runs
        dropin = os.path.join(self.root, "etc/systemd/system/utraced.service.d")
        os.makedirs(dropin)
        with open(os.path.join(dropin, "watchdog.conf"), "w") as f:
            f.write("[Service]\nWatchdogSec=5s\n")

    def boot(self):
        self.log = open(os.path.join(self.dir, "console.log"), "w+")
        # --register=no --keep-unit: the host's PID 1 need not be systemd
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-D", self.root, "-b", "--register=no", "--keep-unit",
             "--machine=utrace-test", "--capability=all",
             "--system-call-filter=bpf perf_event_open", f"--bind={self.bpffs}:/sys/fs/bpf",
             "--console=passive"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 120
        state = ""
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited {self.nspawn.returncode}:\n"
                                   f"{self.console()}")
            if self.init is None:
                p = run(["pgrep", "-P", str(self.nspawn.pid)])
                if p.stdout.split():
                    self.init = int(p.stdout.split()[0])
            if self.init is not None:
                try:
                    # a PID 1 still starting may not answer yet: ask again
                    p = self.sh("systemctl", "is-system-running", check=False, timeout=10)
                except subprocess.TimeoutExpired:
                    continue
                state = p.stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the container did not boot (state {state!r}):\n{self.console()}")

    def console(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-5000:]

    def prefix(self):
        return ["nsenter", "-t", str(self.init), "-a"]

    def sh(self, *cmd, check=True, timeout=60):
        p = run([*self.prefix(), *cmd], timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout}{p.stderr}")
        return p

    def show(self, unit, prop):
        return self.sh("systemctl", "show", "-P", prop, unit).stdout.strip()

    def path(self, path):
        """A path inside the container, seen from the host."""
        return f"/proc/{self.init}/root{path}"

    def teardown(self):
        if self.nspawn and self.nspawn.poll() is None:
            if self.init:
                try:
                    run([*self.prefix(), "systemctl", "poweroff"], timeout=30)
                except subprocess.TimeoutExpired:
                    pass  # a container that does not answer is killed below
            try:
                self.nspawn.wait(60)
            except subprocess.TimeoutExpired:
                # PID 1 of the container gone takes every process in it along
                if self.init:
                    os.kill(self.init, signal.SIGKILL)
                try:
                    self.nspawn.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.nspawn.pid, signal.SIGKILL)
                    self.nspawn.wait()
        if self.log:
            self.log.close()
        if self.mounted:
            subprocess.run(["umount", self.root], check=False)
            self.mounted = False
        if not os.path.ismount(self.root):
            shutil.rmtree(self.dir, ignore_errors=True)
        # unpinning detaches whatever the tests left attached
        shutil.rmtree(self.bpffs, ignore_errors=True)


def load_tests(loader, tests, pattern):
    """The service and packaging are proven on the normal build, once: the
    container has no sanitizer runtime, and packaging does not depend on the
    build. The sanitized run does not load these tests at all."""
    return unittest.TestSuite() if SANITIZED else tests


class Install(unittest.TestCase):
    def test_meson_install_layout(self):
        dest = tempfile.mkdtemp(prefix="utrace-install-")
        self.addCleanup(shutil.rmtree, dest, ignore_errors=True)
        meson_install(dest)
        unitdir = run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"]).stdout.strip()
        files = {os.path.relpath(os.path.join(d, f), dest)
                 for d, _, fs in os.walk(dest) for f in fs}
        want = {"usr/sbin/utraced", "usr/bin/utracectl",
                f"{unitdir.lstrip('/')}/utraced.service", f"{unitdir.lstrip('/')}/utraced.socket",
                f"{unitdir.lstrip('/')}/utraced-metrics.socket",
                f"{unitdir.lstrip('/')}/utraced-metrics@.service",
                "usr/lib/sysusers.d/utraced.conf",
                "usr/share/bash-completion/completions/utracectl",
                "usr/share/man/man8/utraced.8", "usr/share/man/man8/utracectl.8",
                "usr/share/man/man5/utraced.conf.5", "usr/share/man/man7/utrace-protocol.7"}
        self.assertEqual(want - files, set())
        self.assertTrue(os.path.isdir(os.path.join(dest, "etc/utraced/probes.d")))
        with open(os.path.join(dest, unitdir.lstrip("/"), "utraced.service")) as f:
            self.assertIn("\nExecStart=/usr/sbin/utraced\n", f.read())


class Systemd(unittest.TestCase):
    """Steps in order (unittest sorts by name), on one booted container."""

    @classmethod
    def setUpClass(cls):
        cls.ct = Container()
        cls.addClassCleanup(cls.ct.teardown)
        cls.ct.setup()
        cls.probe = None

    def ctl(self, *args):
        return self.ct.sh("utracectl", *args)

    def wait_for(self, what, fn, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v or time.monotonic() > deadline:
                self.assertTrue(v, f"timed out waiting for {what}")
                return v
            time.sleep(0.1)

    def status_text(self, text):
        self.wait_for(f"STATUS={text}", lambda: self.ct.show("utraced.service", "StatusText") == text)

    def client(self):
        c = Client(self.ct.path(SOCKET_IN))
        self.addCleanup(c.close)
        return c

    def fixture(self):
        f = Fixture(TARGET_IN, prefix=self.ct.prefix())
        self.addCleanup(f.close)
        return f

    def links(self, probe_id):
        d = os.path.join(self.ct.bpffs, "utraced", "links", str(probe_id))
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def journal(self):
        out = self.ct.sh("journalctl", "-u", "utraced.service", "-o", "json", "--no-pager").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def test_0_units_verify(self):
        # as systemd reads them: no unknown or misspelt settings, commands exist
        p = self.ct.sh("systemd-analyze", "verify", "--man=no", "utraced.socket",
                       "utraced.service", check=False)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def test_1_socket_activation(self):
        self.assertEqual(self.ct.sh("getent", "group", "utraced").stdout.split(":")[0], "utraced")
        self.ct.sh("systemctl", "start", "utraced.socket")
        self.assertEqual(self.ct.show("utraced.service", "ActiveState"), "inactive")
        # anyone may connect; the daemon decides what each peer may do
        self.assertEqual(self.ct.sh("stat", "-c", "%a %U", SOCKET_IN).stdout.split(), ["666", "root"])
        p = self.ct.sh("utracectl", "--json", "status", check=False)   # this starts it
        if p.returncode != 0:
            log = self.ct.sh("journalctl", "-u", "utraced.service", "--no-pager").stdout
            if "cannot load the BPF programs" in log:
                self.skipTest(f"BPF unavailable: {log.strip().splitlines()[-1]}")
            self.fail(f"utracectl status: {p.stderr}\n{log}")
        st = json.loads(p.stdout)
        self.assertEqual(self.ct.show("utraced.service", "ActiveState"), "active")
        self.assertEqual(st["socket"], SOCKET_IN)
        self.assertEqual(st["probes"], 0)
        self.status_text("0 probes, 0 clients")

    def test_2_attach_and_events(self):
        p = self.ctl("attach", f"uprobe:{TARGET_IN}:ut_add", "--arg", "a=arg0", "--arg", "b=arg1")
        type(self).probe = int(p.stdout.split()[0])
        # a user without privileges, under the unit's sandbox: lists a file it can
        # read (opened with its identity: setfsuid), sees no probe of root's,
        # and may not attach one system-wide
        user = ["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "utracectl"]
        listed = self.ct.sh(*user, "probes", "--symbols", TARGET_IN, "ut_add").stdout
        self.assertIn("ut_add", listed)
        self.assertEqual(json.loads(self.ct.sh(*user, "list", "--json").stdout)["probes"], [])
        denied = self.ct.sh(*user, "attach", f"uprobe:{TARGET_IN}:ut_add", check=False)
        self.assertEqual(denied.returncode, 1)
        self.assertIn("pid", denied.stderr)
        self.assertTrue(self.links(self.probe))          # pinned in the host's bpffs
        c = self.client()
        c.call("subscribe")
        self.status_text("1 probe, 1 client")
        f = self.fixture()
        f.cmd("add 2 5 3")
        ev = c.events(3)
        self.assertEqual([(e["probe"], e["comm"], e["args"]) for e in ev],
                         [(self.probe, "target", {"a": 2, "b": 5})] * 3)
        self.assertEqual(c.quiet(), [])

    def test_3_reload(self):
        if "--check-config" not in self.ct.sh("utraced", "--help").stdout:
            self.skipTest("this utraced has no configuration to reload (no SIGHUP handling)")
        pid = self.ct.show("utraced.service", "MainPID")
        self.ct.sh("systemctl", "reload", "utraced.service")
        self.wait_for("the reload to finish",
                      lambda: self.ct.show("utraced.service", "ActiveState") == "active")
        self.assertEqual(self.ct.show("utraced.service", "MainPID"), pid)
        lst = json.loads(self.ctl("list", "--json").stdout)["probes"]
        self.assertEqual([x["id"] for x in lst], [self.probe])

    def test_4_restart_keeps_probe(self):
        links = self.links(self.probe)
        pid = self.ct.show("utraced.service", "MainPID")
        self.ct.sh("systemctl", "restart", "utraced.service")
        self.assertNotEqual(self.ct.show("utraced.service", "MainPID"), pid)
        self.assertEqual(self.ct.show("utraced.service", "ActiveState"), "active")
        lst = json.loads(self.ctl("list", "--json").stdout)["probes"]
        self.assertEqual([x["id"] for x in lst], [self.probe])
        self.assertEqual(self.links(self.probe), links)   # adopted, not attached again
        c = self.client()
        c.call("subscribe")
        f = self.fixture()
        f.cmd("add 4 0 2")
        self.assertEqual([e["args"]["a"] for e in c.events(2)], [4, 4])
        self.assertEqual(c.quiet(), [])                    # once, not twice
        self.assertIn("adopted", self.ct.sh("journalctl", "-u", "utraced.service", "-b",
                                            "--no-pager").stdout)

    def test_5_watchdog_pings(self):
        self.assertEqual(self.ct.show("utraced.service", "WatchdogUSec"), "5s")
        first = int(self.ct.show("utraced.service", "WatchdogTimestampMonotonic"))
        self.wait_for("a watchdog ping",
                      lambda: int(self.ct.show("utraced.service",
                                               "WatchdogTimestampMonotonic")) > first)
        self.assertEqual(self.ct.show("utraced.service", "NRestarts"), "0")

    def test_6_stop_and_direct_start(self):
        self.ct.sh("systemctl", "stop", "utraced.socket", "utraced.service")
        self.assertEqual(self.ct.show("utraced.service", "ActiveState"), "inactive")
        self.assertEqual(self.ct.show("utraced.service", "Result"), "success")
        self.assertFalse(os.path.exists(self.ct.path(SOCKET_IN)))   # RemoveOnStop=
        self.assertTrue(self.links(self.probe))                      # probes outlive it
        # started directly, without its socket unit: it binds the socket itself
        self.ct.sh("systemctl", "start", "utraced.service")
        self.assertEqual(self.ct.show("utraced.socket", "ActiveState"), "inactive")
        lst = json.loads(self.ctl("list", "--json").stdout)["probes"]
        self.assertEqual([x["id"] for x in lst], [self.probe])
        self.ctl("detach", str(self.probe))
        self.assertEqual(self.links(self.probe), [])
        self.ct.sh("systemctl", "stop", "utraced.service")
        self.assertEqual(self.ct.show("utraced.service", "Result"), "success")
        self.assertEqual(self.ct.show("utraced.service", "ExecMainStatus"), "0")

    def test_7_journal_and_security(self):
        entries = [e for e in self.journal() if e.get("SYSLOG_IDENTIFIER") == "utraced"]
        msgs = [(int(e["PRIORITY"]), e["MESSAGE"]) for e in entries]
        self.assertTrue(any(p == 6 and m.startswith("utraced ") and " ready on " in m
                            for p, m in msgs), msgs)
        self.assertEqual([m for p, m in msgs if p <= 4], [])     # no warnings or errors
        # one line per start, probe and exit: nothing per event or connection
        self.assertLessEqual(len(msgs), 12, msgs)
        out = self.ct.sh("systemd-analyze", "security", "utraced.service", "--no-pager").stdout
        with open(LOG, "w") as f:
            f.write(out)
        m = re.search(r"Overall exposure level for utraced.service: ([0-9.]+)", out)
        self.assertIsNotNone(m, out)
        # the settings that still expose something, and the rating
        print("\n".join(line for line in out.splitlines() if line.startswith("\u2717")))
        print(f"systemd-analyze security utraced.service: {m.group(1)} (full output in {LOG})")
        self.assertLessEqual(float(m.group(1)), 3.0, out)


    def test_8_metrics_over_http(self):
        # utraced-metrics.socket starts a sandboxed responder per connection
        p = self.ct.sh("systemd-analyze", "verify", "--man=no", "utraced-metrics.socket",
                       check=False)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))
        self.ct.sh("systemctl", "start", "utraced.service")
        probe = self.ctl("attach", f"uprobe:{TARGET_IN}:ut_add", "--aggregate", "count").stdout
        self.addCleanup(self.ct.sh, "utracectl", "detach", probe.split()[0], check=False)
        f = self.fixture()
        f.cmd("add 1 2 3")
        port = free_port()
        dropin = self.ct.path("/etc/systemd/system/utraced-metrics.socket.d")
        os.makedirs(dropin, exist_ok=True)
        with open(os.path.join(dropin, "port.conf"), "w") as fh:
            fh.write(f"[Socket]\nListenStream=\nListenStream=127.0.0.1:{port}\n")
        self.ct.sh("systemctl", "daemon-reload")
        self.ct.sh("systemctl", "start", "utraced-metrics.socket")
        self.addCleanup(self.ct.sh, "systemctl", "stop", "utraced-metrics.socket", check=False)
        # the container shares the host's network: scraped from here
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                status, body = r.status, r.read().decode()
        except OSError as e:
            log = self.ct.sh("journalctl", "-u", "utraced-metrics*", "--no-pager", check=False)
            self.fail(f"GET /metrics: {e}\n{log.stdout}")
        self.assertEqual(status, 200)
        p = run(["promtool", "check", "metrics"], input=body)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))
        # a dynamic user, in the metrics group: it sees root's probe
        line = f'utrace_aggregation_count_total{{probe="{probe.split()[0]}"}} 3'
        self.assertIn(line, body.splitlines())
        out = self.ct.sh("systemd-analyze", "security", "utraced-metrics@0.service",
                         "--no-pager").stdout
        m = re.search(r"Overall exposure level for utraced-metrics@0.service: ([0-9.]+)", out)
        self.assertIsNotNone(m, out)
        print(f"systemd-analyze security utraced-metrics@0.service: {m.group(1)}")
        self.assertLessEqual(float(m.group(1)), 2.0, out)

    def test_9_journal_and_file_outputs(self):
        conf = self.ct.path("/etc/utraced/probes.d/outputs.conf")
        with open(conf, "w") as fh:
            fh.write(f"""[Probe]
Name=greets
Spec=uprobe:{TARGET_IN}:ut_greet
Arg=name=str(arg0)
Arg=n=arg1
Journal=yes
JournalRateLimitBurst=5
JournalRateLimitIntervalSec=1h
File=/var/log/utraced/greets.ndjson
""")
        self.addCleanup(self.ct.sh, "systemctl", "reload", "utraced.service", check=False)
        self.addCleanup(os.unlink, conf)
        self.ct.sh("systemctl", "start", "utraced.service")
        self.ctl("reload")
        c = self.client()
        c.call("subscribe", {"ids": []})   # the first subscriber: no hold after the start
        f = self.fixture()
        f.cmd("greet hello 3")
        f.cmd("greet again 4")

        def entries():
            out = self.ct.sh("journalctl", "UTRACE_PROBE=greets", "-o", "json",
                             "--no-pager").stdout
            return [json.loads(x) for x in out.splitlines() if x.strip()]
        got = self.wait_for("5 journal entries", lambda: len(entries()) >= 5 and entries())
        self.assertEqual(len(got), 5)                       # the rate limit: 5 per hour
        self.assertEqual([(e["UTRACE_ARG_NAME"], e["UTRACE_ARG_N"]) for e in got],
                         [("hello", "0"), ("hello", "1"), ("hello", "2"), ("again", "0"),
                          ("again", "1")])
        path = self.ct.path("/var/log/utraced/greets.ndjson")
        self.wait_for("7 lines in the file", lambda: os.path.exists(path) and
                      len(open(path).read().splitlines()) == 7)
        with open(path) as fh:
            lines = [json.loads(x) for x in fh]
        self.assertEqual([(x["config"], x["args"]["name"], x["args"]["n"]) for x in lines],
                         [("greets", "hello", 0), ("greets", "hello", 1), ("greets", "hello", 2)] +
                         [("greets", "again", i) for i in range(4)])
        for e, x in zip(got, lines):
            self.assertEqual((e["UTRACE_PID"], e["UTRACE_TID"], e["UTRACE_COMM"],
                              e["UTRACE_TS_NS"]),
                             (str(x["pid"]), str(x["tid"]), "target", str(x["ts"])))
            self.assertEqual((e["PRIORITY"], e["SYSLOG_IDENTIFIER"], e["_SYSTEMD_UNIT"]),
                             ("6", "utraced", "utraced.service"))
            self.assertTrue(e["MESSAGE"].startswith(f"greets: target {x['pid']}/{x['tid']} name="))
            self.assertNotIn("OBJECT_PID", e)   # another PID namespace than the events'
        st = os.stat(path)
        self.assertEqual((oct(st.st_mode & 0o777), st.st_uid), ("0o640", 0))
        m = self.ctl("metrics").stdout.splitlines()
        pid = lines[0]["probe"]
        for want in ('output="journal"} 5', 'output="file"} 7'):
            self.assertIn(f'utrace_probe_delivered_total{{probe="{pid}",name="greets",{want}', m)
        self.assertIn(f'utrace_probe_dropped_total{{probe="{pid}",name="greets",output="journal",'
                      'cause="ratelimit"} 2', m)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DebianPackage(unittest.TestCase):
    """debian/ builds a package with dpkg-buildpackage; installed in a booted
    system it creates the group, enables and starts the units; an upgrade keeps
    the probes, removal detaches them, purge removes the state."""

    def test_build_install_upgrade_remove_purge(self):
        work = tempfile.mkdtemp(prefix="utrace-deb-")
        self.addCleanup(shutil.rmtree, work, ignore_errors=True)
        src = os.path.join(work, "utrace")
        os.mkdir(src)
        files = run(["git", "-C", SRC, "ls-files", "-co", "--exclude-standard"]).stdout
        for f in files.splitlines():
            if os.path.isfile(os.path.join(SRC, f)):
                os.makedirs(os.path.dirname(os.path.join(src, f)), exist_ok=True)
                shutil.copy2(os.path.join(SRC, f), os.path.join(src, f))
        p = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
        version = run(["dpkg-parsechangelog", "-S", "Version"], cwd=src).stdout.strip()
        deb = os.path.join(work, f"utrace_{version}_amd64.deb")

        ct = Container("deb")

        def install():      # the package only, into the container's /opt
            os.makedirs(ct.root + "/opt/deb")
            shutil.copy(deb, ct.root + "/opt/deb/")
        ct.install = install
        self.addCleanup(ct.teardown)
        ct.setup()
        inside = "/opt/deb/" + os.path.basename(deb)
        ct.sh("dpkg", "-i", inside)
        self.assertEqual(ct.sh("getent", "group", "utraced").stdout.split(":")[0], "utraced")
        self.assertEqual(ct.sh("systemctl", "is-enabled", "utraced.socket", "utraced.service")
                         .stdout.split(), ["enabled", "enabled"])
        self.assertEqual(ct.sh("systemctl", "is-active", "utraced.socket", "utraced.service")
                         .stdout.split(), ["active", "active"])
        probe = ct.sh("utracectl", "attach", "uprobe:libc.so.6:malloc").stdout.split()[0]
        pid = ct.show("utraced.service", "MainPID")
        ct.sh("dpkg", "-i", inside)                       # an upgrade restarts, keeps probes
        self.assertNotEqual(ct.show("utraced.service", "MainPID"), pid)
        lst = json.loads(ct.sh("utracectl", "list", "--json").stdout)["probes"]
        self.assertEqual([str(x["id"]) for x in lst], [probe])
        ct.sh("dpkg", "-r", "utrace")
        self.assertEqual(ct.sh("systemctl", "is-active", "utraced.socket", "utraced.service",
                               check=False).stdout.split(), ["inactive", "inactive"])
        self.assertFalse(os.path.exists(os.path.join(ct.bpffs, "utraced", "links", probe)))
        ct.sh("dpkg", "--purge", "utrace")
        self.assertFalse(os.path.exists(ct.path("/var/lib/utraced")))
        self.assertFalse(os.path.exists(ct.path("/etc/utraced")))
