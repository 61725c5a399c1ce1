# SPDX-License-Identifier: GPL-2.0-only
"""Watched probes: a target that is a library name, a glob or `*` (USDT),
without a pid, is attached to every matching file any process maps now and
later (at exec or dlopen): files created at run time (simplehttp copies its
USDT provider to a fresh file, as libstapsdt does), one attachment per real
inode however many processes map it (overlayfs too), other mount
namespaces, scoping by comm, executable and cgroup, holding a process until
its probes are attached, the release of files no process maps any more, and
restarts. A probe on the explicit path of a runtime-created file works
without the watcher."""
import os
import select
import shutil
import subprocess
import tempfile
import time

from harness import BUILD, TARGET, UTLIB, Fixture, RpcError, UtraceTest

SIMPLEHTTP = os.path.join(BUILD, "tests", "simplehttp")
PROVIDER = os.path.join(BUILD, "tests", "libsimplehttp-provider.so")
USDT_SPEC = "usdt:*:simplehttp:file_transfer"
USDT_ARGS = ["ip=str(arg0)", "path=str(arg1)", "size=arg2"]
# a library name resolved through the library directories (not ld.so.cache):
# a copy of libutlib.so installed there while a test runs
LIBNAME = "libutlib.so"
LIBDIR = "/usr/local/lib"


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


def proc_state(pid):
    """The State letter of /proc/PID/status (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1]
    except FileNotFoundError:
        return None
    return None


class Http(Fixture):
    """tests/fixtures/simplehttp: prints "ready PID PATH", PATH being the copy
    of the provider it dlopened (or the provider itself with --shared)."""

    def __init__(self, args=(), prefix=(), path=SIMPLEHTTP, timeout=30):
        self.proc = subprocess.Popen([*prefix, path, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        # a process held by the daemon and never resumed must not hang the test
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().split() if r else []
        if len(line) != 3 or line[0] != "ready":
            state = proc_state(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"simplehttp did not start: {line} (state {state})")
        self.pid = int(line[1])
        self.path = line[2]

    def close(self):
        # a stopped process (held and never resumed) cannot read "quit"
        if self.proc.poll() is None and proc_state(self.proc.pid) in ("T", "t"):
            self.proc.kill()
            self.proc.wait()
        super().close()


class WatchTest(UtraceTest):
    def setUp(self):
        super().setUp()
        self.c.call("subscribe")
        self.dir = tempfile.mkdtemp(prefix="utrace-watch-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def subdir(self, name):
        path = os.path.join(self.dir, name)
        os.makedirs(path, exist_ok=True)
        return path

    def http(self, *args, provider=PROVIDER, into=None, prefix=(), path=SIMPLEHTTP):
        """A simplehttp whose provider copy lands in into (default: the test's
        directory); args go before the provider (e.g. --shared, --early)."""
        f = Http([*args, provider, into or self.dir], prefix, path)
        self.addCleanup(f.close)
        return f

    def probe(self, probe_id):
        return next(p for p in self.c.call("list")["probes"] if p["id"] == probe_id)

    def files(self, probe_id):
        return self.probe(probe_id)["files"]

    def wait_files(self, probe_id, check, timeout=10):
        """The probe's files once check(files) holds; fails after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            files = self.files(probe_id)
            if check(files):
                return files
            if time.monotonic() > deadline:
                self.fail(f"probe {probe_id}: files never as expected: {files}")
            time.sleep(0.1)

    def ready(self, probe_id, *procs):
        """Wait until the probe is attached to a file each process maps: the
        watcher attaches asynchronously (only --hold stops a process for it)."""
        self.wait_files(probe_id, lambda files: all(
            any(f.pid in x.get("pids", []) for x in files) for f in procs))

    def transfer(self, f, ip, path, size, n=1):
        f.cmd(f"transfer {ip} {path} {size} {n}")

    def assertWatchedFile(self, entry, path, pids):
        """entry (of "files") is the watcher's attachment to path, mapped by pids."""
        st = os.stat(path)
        self.assertEqual((entry["inode"], entry["dev"]), (st.st_ino, st.st_dev), entry)
        self.assertEqual((entry["watched"], sorted(entry["pids"])), (True, sorted(pids)), entry)
        self.assertEqual((entry["links"], entry["locations"]), (1, ["simplehttp:file_transfer"]),
                         entry)


class ExplicitPath(WatchTest):
    """No watcher: the file simplehttp created, named by its path once it exists."""

    def test_runtime_provider_by_path(self):
        f = self.http()
        self.assertTrue(os.path.basename(f.path).startswith("simplehttp-"), f.path)
        self.assertTrue(f.path.endswith(".so"), f.path)
        p = self.attach(f"usdt:{f.path}:simplehttp:file_transfer", args=USDT_ARGS)
        self.assertEqual((p["locations"], [x["inode"] for x in p["files"]]),
                         (1, [os.stat(f.path).st_ino]))
        self.transfer(f, "192.168.10.20", "/srv/files/big.iso", 3000000000, 2)
        self.transfer(f, "::1", "/", 0)
        ev = self.c.events(3)
        self.assertEqual([(e["probe"], e["pid"], e["comm"]) for e in ev],
                         [(p["id"], f.pid, "simplehttp")] * 3)
        self.assertEqual([e["args"] for e in ev],
                         [{"ip": "192.168.10.20", "path": "/srv/files/big.iso",
                           "size": 3000000000}] * 2 + [{"ip": "::1", "path": "/", "size": 0}])
        self.assertEqual(self.c.quiet(), [])
        # another process, another copy: not this probe's file
        g = self.http()
        self.assertNotEqual(os.stat(g.path).st_ino, os.stat(f.path).st_ino)
        self.transfer(g, "10.0.0.1", "/x", 1)
        self.assertEqual(self.c.quiet(), [])
        f.close()
        self.assertFalse(os.path.exists(f.path))  # quit removes the copy


class Watch(WatchTest):
    def test_library_name_catches_a_later_process(self):
        os.makedirs(LIBDIR, exist_ok=True)
        installed = os.path.join(LIBDIR, LIBNAME)
        shutil.copyfile(UTLIB, installed)
        self.addCleanup(os.unlink, installed)
        # another file of that name (another inode), which only a process
        # started after the attach maps
        other = os.path.join(self.subdir("lib"), LIBNAME)
        shutil.copyfile(UTLIB, other)
        p = self.attach(f"uprobe:{LIBNAME}:utlib_call", args=["n=arg0"])
        self.assertTrue(self.probe(p["id"])["watch"])
        self.assertIn((installed, os.stat(installed).st_ino, False),
                      [(x["path"], x["inode"], x["watched"]) for x in p["files"]])
        f = self.http()
        f.cmd(f"dlopen {other}")
        self.ready(p["id"], f)
        f.cmd("lib 2")
        ev = self.c.events(2)
        self.assertEqual([(e["probe"], e["pid"], e["args"]) for e in ev],
                         [(p["id"], f.pid, {"n": 0}), (p["id"], f.pid, {"n": 1})])
        self.assertEqual(self.c.quiet(), [])
        mine = [x for x in self.files(p["id"]) if x["inode"] == os.stat(other).st_ino]
        self.assertEqual(len(mine), 1, self.files(p["id"]))
        self.assertEqual((mine[0]["watched"], mine[0]["pids"], mine[0]["dev"]),
                         (True, [f.pid], os.stat(other).st_dev))
        # a name that resolves to nothing is still an error
        self.assertRpcError("no-such-file", self.attach, "uprobe:libutrace-nothere.so.9:f")

    def test_every_runtime_provider(self):
        # attached before any simplehttp runs, from the command line
        out = self.daemon.ctl("attach", USDT_SPEC, "--arg", "ip=str(arg0)",
                              "--arg", "path=str(arg1)", "--arg", "size=arg2").stdout
        probe_id = int(out.split()[0])
        p = self.probe(probe_id)
        self.assertTrue(p["watch"])
        self.assertEqual((p["target"], p["files"]), ("*", []))
        f = self.http()
        self.ready(probe_id, f)
        self.transfer(f, "10.1.2.3", "/files/a.iso", 3000000000)
        ev = self.c.events(1)[0]
        self.assertEqual((ev["probe"], ev["pid"], ev["args"]),
                         (probe_id, f.pid, {"ip": "10.1.2.3", "path": "/files/a.iso",
                                            "size": 3000000000}))
        g = self.http()
        self.ready(probe_id, g)
        self.transfer(g, "10.9.9.9", "/b", 7, 3)
        self.transfer(f, "10.1.2.3", "/c", 8, 2)
        ev = self.c.events(5)
        self.assertEqual(sorted((e["pid"], e["args"]["path"], e["args"]["size"]) for e in ev),
                         sorted([(g.pid, "/b", 7)] * 3 + [(f.pid, "/c", 8)] * 2))
        self.assertEqual(self.c.quiet(), [])  # one event per call: each file attached once
        files = sorted(self.files(probe_id), key=lambda x: x["path"])
        self.assertEqual(sorted(x["path"] for x in files), sorted([f.path, g.path]))
        for x in files:
            self.assertWatchedFile(x, x["path"], [f.pid] if x["path"] == f.path else [g.pid])
        self.assertEqual(self.stats(probe_id)["hits"], 6)

    def test_glob_catches_a_dlopened_copy(self):
        glob = os.path.join(self.dir, "simplehttp-*.so")
        p = self.attach(f"uprobe:{glob}:simplehttp_file_transfer",
                        args=["ip=str(arg0)", "path=str(arg1)"])
        self.assertEqual((p["locations"], p["files"]), (0, []))  # nothing matches yet
        self.assertTrue(self.probe(p["id"])["watch"])
        # a copy made elsewhere does not match
        elsewhere = self.http(into=self.subdir("elsewhere"))
        f = self.http()
        self.wait_files(p["id"], lambda files: len(files) == 1)
        self.transfer(elsewhere, "10.0.0.2", "/no", 1)
        self.transfer(f, "10.0.0.1", "/yes", 1)
        ev = self.c.events(1)
        self.assertEqual([(e["pid"], e["args"]) for e in ev],
                         [(f.pid, {"ip": "10.0.0.1", "path": "/yes"})])
        self.assertEqual(self.c.quiet(), [])
        files = self.files(p["id"])
        self.assertEqual([(x["path"], x["inode"], x["watched"], x["pids"]) for x in files],
                         [(f.path, os.stat(f.path).st_ino, True, [f.pid])])

    def test_glob_catches_an_exec(self):
        p = self.attach(f"uprobe:{self.dir}/target-*:ut_add", args=["a=arg0", "b=arg1"])
        self.assertEqual(p["files"], [])
        copy = os.path.join(self.dir, "target-copy")
        shutil.copy2(TARGET, copy)
        f = self.fixture(copy)
        self.ready(p["id"], f)
        g = self.fixture()  # the original: not matched
        g.cmd("add 1 1 1")
        f.cmd("add 3 4 2")
        ev = self.c.events(2)
        self.assertEqual([(e["pid"], e["args"]) for e in ev], [(f.pid, {"a": 3, "b": 4})] * 2)
        self.assertEqual(self.c.quiet(), [])
        self.assertEqual([(x["inode"], x["pids"]) for x in self.files(p["id"])],
                         [(os.stat(copy).st_ino, [f.pid])])

    def test_one_attachment_for_many_processes(self):
        lib = os.path.join(self.subdir("shared"), "libsimplehttp-provider.so")
        shutil.copyfile(PROVIDER, lib)
        # five map it before the attach, five after
        procs = [self.http("--shared", provider=lib) for _ in range(5)]
        p = self.attach(USDT_SPEC, args=USDT_ARGS)
        self.assertEqual([x["inode"] for x in p["files"]], [os.stat(lib).st_ino])
        procs += [self.http("--shared", provider=lib) for _ in range(5)]
        for i, f in enumerate(procs):
            self.transfer(f, f"10.0.0.{i}", f"/f{i}", i)
        ev = self.c.events(10)
        self.assertEqual(sorted((e["pid"], e["args"]["ip"], e["args"]["size"]) for e in ev),
                         sorted((f.pid, f"10.0.0.{i}", i) for i, f in enumerate(procs)))
        self.assertEqual(self.c.quiet(), [])
        files = self.files(p["id"])
        self.assertEqual(len(files), 1, files)
        self.assertWatchedFile(files[0], lib, [f.pid for f in procs])
        self.assertEqual(self.stats(p["id"])["hits"], 10)

    def test_other_mount_namespace(self):
        # a private tmpfs over a directory of the test: the copy exists only
        # in the process's mount namespace
        hidden = self.subdir("hidden")
        prefix = ("unshare", "-m", "--propagation", "private", "sh", "-c",
                  f'mount -t tmpfs tmpfs {hidden} && exec "$0" "$@"')
        p = self.attach(USDT_SPEC, args=USDT_ARGS)
        f = self.http(into=hidden, prefix=prefix)
        self.assertTrue(f.path.startswith(hidden + "/"), f.path)
        self.assertFalse(os.path.exists(f.path))  # not from here
        self.ready(p["id"], f)
        self.transfer(f, "172.16.0.1", "/ns", 42)
        ev = self.c.events(1)
        self.assertEqual((ev[0]["pid"], ev[0]["args"]),
                         (f.pid, {"ip": "172.16.0.1", "path": "/ns", "size": 42}))
        self.assertEqual(self.c.quiet(), [])
        ino = os.stat(f"/proc/{f.pid}/root{f.path}").st_ino
        self.assertEqual([(x["inode"], x["watched"], x["pids"]) for x in self.files(p["id"])],
                         [(ino, True, [f.pid])])

    def mount_overlay(self, lower, name):
        upper, work, merged = (self.subdir(f"{name}-{x}") for x in ("upper", "work", "merged"))
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={upper},workdir={work}", merged], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", merged], check=False)
        return merged

    def test_overlayfs_shares_the_lower_file(self):
        lower = self.subdir("lower")
        lib = os.path.join(lower, "libsimplehttp-provider.so")
        shutil.copyfile(PROVIDER, lib)
        one, two = self.mount_overlay(lower, "one"), self.mount_overlay(lower, "two")
        p = self.attach(USDT_SPEC, args=USDT_ARGS)
        a = self.http("--shared", provider=os.path.join(one, "libsimplehttp-provider.so"))
        b = self.http("--shared", provider=os.path.join(two, "libsimplehttp-provider.so"))
        c = self.http("--shared", provider=os.path.join(one, "libsimplehttp-provider.so"))
        self.ready(p["id"], a, b, c)
        for i, f in enumerate((a, b, c)):
            self.transfer(f, "10.0.0.1", f"/ov{i}", i)
        ev = self.c.events(3)
        self.assertEqual(sorted((e["pid"], e["args"]["path"]) for e in ev),
                         sorted([(a.pid, "/ov0"), (b.pid, "/ov1"), (c.pid, "/ov2")]))
        self.assertEqual(self.c.quiet(), [])  # one attachment, not one per mount
        files = self.files(p["id"])
        self.assertEqual([(x["inode"], sorted(x["pids"])) for x in files],
                         [(os.stat(lib).st_ino, sorted([a.pid, b.pid, c.pid]))])

    def other_exe(self):
        """otherhttp: a copy of simplehttp (another comm, another executable)."""
        path = os.path.join(self.subdir("bin"), "otherhttp")
        if not os.path.exists(path):
            shutil.copy2(SIMPLEHTTP, path)
        return path

    def scoped(self, **params):
        """The watched USDT probe attached with params, then two processes: a
        plain simplehttp and an otherhttp. Returns the probe id and both."""
        p = self.attach(USDT_SPEC, args=USDT_ARGS, **params)
        plain = self.http()
        other = self.http(path=self.other_exe())
        self.ready(p["id"], plain, other)
        return p["id"], plain, other

    def events_of(self, procs):
        for i, f in enumerate(procs):
            self.transfer(f, "10.0.0.1", f"/s{i}", i, 2)

    def test_scope_comm(self):
        probe_id, plain, other = self.scoped(comm="otherhttp")
        self.events_of((plain, other))
        ev = self.c.events(2)
        self.assertEqual([(e["pid"], e["comm"], e["args"]["path"]) for e in ev],
                         [(other.pid, "otherhttp", "/s1")] * 2)
        self.assertEqual(self.c.quiet(), [])
        # and from the command line
        out = self.daemon.ctl("attach", USDT_SPEC, "--comm", "simplehttp").stdout
        cli = int(out.split()[0])
        self.events_of((plain, other))
        ev = self.c.events(4)
        self.assertEqual(sorted((e["probe"], e["pid"]) for e in ev),
                         sorted([(probe_id, other.pid)] * 2 + [(cli, plain.pid)] * 2))
        self.assertEqual(self.c.quiet(), [])

    def test_scope_exe(self):
        probe_id, plain, other = self.scoped(exe=self.other_exe())
        self.events_of((plain, other))
        ev = self.c.events(2)
        self.assertEqual([(e["probe"], e["pid"]) for e in ev], [(probe_id, other.pid)] * 2)
        self.assertEqual(self.c.quiet(), [])
        out = self.daemon.ctl("attach", USDT_SPEC, "--exe", SIMPLEHTTP).stdout
        cli = int(out.split()[0])
        self.events_of((plain, other))
        ev = self.c.events(4)
        self.assertEqual(sorted((e["probe"], e["pid"]) for e in ev),
                         sorted([(probe_id, other.pid)] * 2 + [(cli, plain.pid)] * 2))
        self.assertEqual(self.c.quiet(), [])

    def make_cgroup(self, parent, name):
        path = os.path.join(parent, name)
        os.mkdir(path)
        self.addCleanup(os.rmdir, path)
        return path

    def test_scope_cgroup(self):
        mount = cgroup2_mount()
        if not mount:
            self.skipTest("no cgroup v2 hierarchy mounted")
        name = f"utrace-test-{os.getpid()}-{os.path.basename(self.dir)[-8:]}"
        parent = self.make_cgroup(mount, name)
        child = self.make_cgroup(parent, "inner")
        p = self.attach(USDT_SPEC, args=USDT_ARGS, cgroup=parent)
        # started inside the child cgroup (below the one the probe names);
        # cleanup kills it before the cgroups are removed
        inside = self.http(prefix=("sh", "-c",
                                   f'echo $$ > {child}/cgroup.procs && exec "$0" "$@"'))
        outside = self.http()
        self.ready(p["id"], inside, outside)
        self.events_of((outside, inside))
        ev = self.c.events(2)
        self.assertEqual([(e["probe"], e["pid"], e["args"]["path"]) for e in ev],
                         [(p["id"], inside.pid, "/s1")] * 2)
        self.assertEqual(self.c.quiet(), [])
        out = self.daemon.ctl("attach", USDT_SPEC, "--cgroup", child).stdout
        cli = int(out.split()[0])
        self.events_of((outside, inside))
        ev = self.c.events(4)
        self.assertEqual(sorted((e["probe"], e["pid"]) for e in ev),
                         sorted([(p["id"], inside.pid)] * 2 + [(cli, inside.pid)] * 2))
        self.assertEqual(self.c.quiet(), [])

    def test_hold_catches_the_first_call(self):
        p = self.attach(USDT_SPEC, args=USDT_ARGS, hold=True)
        # setsid: a process with a controlling terminal is never held
        f = self.http("--early", "10.20.30.40", "/first", "1234", prefix=("setsid",))
        ev = self.c.events(1)
        self.assertEqual((ev[0]["probe"], ev[0]["pid"], ev[0]["args"]),
                         (p["id"], f.pid, {"ip": "10.20.30.40", "path": "/first", "size": 1234}))
        self.transfer(f, "10.20.30.40", "/second", 1)
        self.assertEqual(self.c.events(1)[0]["args"]["path"], "/second")
        self.assertEqual(self.c.quiet(), [])
        self.assertNotIn(proc_state(f.pid), ("T", "t"))
        # a second process, another copy: held and resumed too
        g = self.http("--early", "10.20.30.41", "/first", "1", prefix=("setsid",))
        self.assertEqual([(e["pid"], e["args"]["ip"]) for e in self.c.events(1)],
                         [(g.pid, "10.20.30.41")])
        self.assertNotIn(proc_state(g.pid), ("T", "t"))
        self.assertNotIn(proc_state(f.pid), ("T", "t"))
        self.assertEqual(self.probe(p["id"])["request"].get("hold"), True)

    def test_metrics(self):
        p = self.attach(USDT_SPEC, args=USDT_ARGS)
        f, g = self.http(), self.http()
        self.ready(p["id"], f, g)
        samples = {}
        for line in self.c.call("metrics")["text"].splitlines():
            if line.startswith("utrace_watch_"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        self.assertEqual(samples["utrace_watch_active"], 1)
        self.assertGreaterEqual(samples["utrace_watch_files_attached_total"], 2)
        self.assertGreaterEqual(samples["utrace_watch_reports_total"], 1)
        self.assertEqual(samples["utrace_watch_reports_lost_total"], 0)
        # a process reported and attached has its latency counted, below +Inf
        count = samples["utrace_watch_attach_latency_seconds_count"]
        self.assertGreaterEqual(count, 1)
        self.assertEqual(samples['utrace_watch_attach_latency_seconds_bucket{le="+Inf"}'], count)
        self.assertGreater(samples["utrace_watch_attach_latency_seconds_sum"], 0)
        self.c.call("detach", {"id": p["id"]})
        text = self.c.call("metrics")["text"]
        self.assertIn("utrace_watch_active 0", text)

    def test_restart(self):
        p = self.attach(USDT_SPEC, args=USDT_ARGS)
        f = self.http()
        self.ready(p["id"], f)
        self.transfer(f, "10.0.0.1", "/before", 1)
        self.assertEqual(self.c.events(1)[0]["pid"], f.pid)
        self.restart()
        self.c.call("subscribe")
        q = self.probe(p["id"])
        self.assertTrue(q["watch"])
        self.assertEqual([x["inode"] for x in q["files"]], [os.stat(f.path).st_ino])
        g = self.http()  # a new process, a new file: the watcher still runs
        self.ready(p["id"], g)
        self.transfer(g, "10.0.0.2", "/after", 2)
        self.transfer(f, "10.0.0.1", "/again", 3)
        ev = self.c.events(2)
        self.assertEqual([(e["probe"], e["pid"], e["args"]) for e in ev],
                         [(p["id"], g.pid, {"ip": "10.0.0.2", "path": "/after", "size": 2}),
                          (p["id"], f.pid, {"ip": "10.0.0.1", "path": "/again", "size": 3})])
        self.assertEqual(self.c.quiet(), [])
        self.assertEqual(sorted(x["inode"] for x in self.files(p["id"])),
                         sorted(os.stat(x.path).st_ino for x in (f, g)))

    def test_params(self):
        good = {"comm": "simplehttp", "exe": SIMPLEHTTP, "hold": True}
        if cgroup2_mount():
            good["cgroup"] = cgroup2_mount()
        p = self.attach(USDT_SPEC, **good)
        self.assertEqual({k: self.probe(p["id"])["request"].get(k) for k in good}, good)
        self.c.call("detach", {"id": p["id"]})
        for params in ({"comm": 5}, {"exe": 1}, {"cgroup": True}, {"hold": "yes"},
                       {"comm": "x" * 64}, {"exe": "relative/path"}):
            with self.subTest(params=params):
                self.assertRpcError("invalid-spec", self.attach, USDT_SPEC, **params)
        with self.assertRaises(RpcError) as cm:
            self.attach(USDT_SPEC, cgroup="/no/such/cgroup-utrace")
        self.assertIn(cm.exception.name, ("invalid-spec", "no-such-file"))
        self.assertEqual(self.c.call("list")["probes"], [])
        self.assertEqual(self.daemon.ctl("attach", USDT_SPEC, "--hold", "--nope",
                                         check=False).returncode, 2)


class Release(WatchTest):
    daemon_args = ("--watch-interval", "1")

    def test_unmapped_files_are_released(self):
        p = self.attach(USDT_SPEC, args=USDT_ARGS)
        f, g = self.http(), self.http()
        self.ready(p["id"], f, g)
        self.transfer(f, "10.0.0.1", "/f", 1)
        self.transfer(g, "10.0.0.2", "/g", 1)
        self.c.events(2)
        f_ino, g_ino = os.stat(f.path).st_ino, os.stat(g.path).st_ino
        self.assertEqual(sorted(x["inode"] for x in self.files(p["id"])), sorted([f_ino, g_ino]))
        f.close()
        self.wait_files(p["id"], lambda files: [x["inode"] for x in files] == [g_ino], timeout=8)
        self.transfer(g, "10.0.0.2", "/still", 1)
        self.assertEqual(self.c.events(1)[0]["args"]["path"], "/still")
        g.close()
        self.wait_files(p["id"], lambda files: files == [], timeout=8)
        # the probe stays, and catches the next process
        self.assertTrue(self.probe(p["id"])["watch"])
        h = self.http()
        self.ready(p["id"], h)
        self.transfer(h, "10.0.0.3", "/h", 1)
        self.assertEqual(self.c.events(1)[0]["pid"], h.pid)
        self.assertEqual(self.c.quiet(), [])
