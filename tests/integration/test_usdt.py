# SPDX-License-Identifier: GPL-2.0-only
"""USDT probes: the listing (against readelf and tplist), attaching with
decoded arguments of every size and signedness, strings, semaphores, several
locations, a dlopen'd library with its own provider, filters, restarts."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

from harness import PYTHON, TARGET, USDT, USDT_NONOTES, UTLIB, UtraceTest, symbol_address

# the value of every argument of utfix:ints, utfix:ints_mem and utfix:ints_const
INTS = {"arg0": -8, "arg1": 250, "arg2": -1600, "arg3": 65000, "arg4": -100000,
        "arg5": 4000000000, "arg6": -5000000000, "arg7": 18000000000000000000}
INT_TYPES = [(1, True), (1, False), (2, True), (2, False), (4, True), (4, False),
             (8, True), (8, False)]
TPLIST = shutil.which("tplist-bpfcc") or shutil.which("tplist")


def readelf_notes(path):
    """The USDT notes of a file as readelf prints them."""
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True,
                         check=True).stdout
    notes, cur = [], None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Provider:"):
            cur = {"provider": line.split(": ", 1)[1]}
            notes.append(cur)
        elif line.startswith("Name:") and cur is not None:
            cur["name"] = line.split(": ", 1)[1]
        elif line.startswith("Location:") and cur is not None:
            f = dict(x.split(": ") for x in line.split(", "))
            cur["address"] = int(f["Location"], 16)
            cur["semaphore"] = int(f["Semaphore"], 16) or None
        elif line.startswith("Arguments:") and cur is not None:
            cur["args"] = line.split(":", 1)[1].strip()
    return notes


def tplist(path):
    """{provider:name: (semaphore, [(address, [(size, signed)])])} from tplist -vv."""
    out = subprocess.run([TPLIST, "-vv", "-l", path], capture_output=True, text=True,
                         check=True).stdout
    probes, locs = {}, None
    for line in out.splitlines():
        m = re.match(r"^(\S+) \[sema (0x[0-9a-f]+)\]$", line)
        if m:
            locs = []
            probes[m.group(1)] = (int(m.group(2), 16) or None, locs)
            continue
        m = re.match(r"^  location #\d+ \S+ (0x[0-9a-f]+)$", line)
        if m:
            locs.append((int(m.group(1), 16), []))
            continue
        m = re.match(r"^    argument #\d+ (\d+) (signed|unsigned) +bytes", line)
        if m:
            locs[-1][1].append((int(m.group(1)), m.group(2) == "signed"))
    return probes


def arg_types(loc):
    return [(a["size"], a["signed"]) for a in loc["args"]]


def spelled(loc):
    """A location's arguments spelled as in the note."""
    return " ".join(f"{'-' if a['signed'] else ''}{a['size']}@{a['location']}" for a in loc["args"])


class UsdtListing(UtraceTest):
    def probes(self, **params):
        return self.c.call("probes", params)

    def usdt(self, path, pattern=None):
        params = {"target": path}
        if pattern:
            params["pattern"] = pattern
        objs = self.probes(**params)["objects"]
        self.assertEqual([o["path"] for o in objs], [path])
        return {f"{p['provider']}:{p['name']}": p for p in objs[0]["usdt"]}

    def test_listing_agrees_with_readelf(self):
        for path in (USDT, UTLIB, PYTHON):
            with self.subTest(path=path):
                got = self.usdt(path)
                notes = readelf_notes(path)
                want = {}
                for n in notes:
                    want.setdefault(f"{n['provider']}:{n['name']}", []).append(n)
                self.assertEqual(sorted(got), sorted(want))
                for name, p in got.items():
                    ns = sorted(want[name], key=lambda n: n["address"])
                    self.assertEqual([(loc["address"], loc["semaphore"], spelled(loc))
                                      for loc in p["locations"]],
                                     [(n["address"], n["semaphore"], n["args"]) for n in ns])
                    self.assertEqual(p["semaphore"], ns[0]["semaphore"])

    def test_listing_agrees_with_tplist(self):
        if not TPLIST:
            self.skipTest("tplist-bpfcc is not installed")
        for path in (USDT, UTLIB, PYTHON):
            with self.subTest(path=path):
                got = {name: (p["semaphore"],
                              [(loc["address"], arg_types(loc)) for loc in p["locations"]])
                       for name, p in self.usdt(path).items()}
                want = {name: (sema, sorted(locs)) for name, (sema, locs) in tplist(path).items()}
                self.assertEqual(got, want)

    def test_listing_exact_metadata(self):
        got = self.usdt(USDT)
        self.assertEqual(sorted(got), ["utfix:global", "utfix:guarded", "utfix:hop", "utfix:ints",
                                       "utfix:ints_const", "utfix:ints_mem", "utfix:mixed",
                                       "utfix:request"])
        self.assertEqual({n: len(p["locations"]) for n, p in got.items()},
                         {"utfix:global": 1, "utfix:guarded": 1, "utfix:hop": 2, "utfix:ints": 1,
                          "utfix:ints_const": 1, "utfix:ints_mem": 1, "utfix:mixed": 2,
                          "utfix:request": 1})
        sema = symbol_address(USDT, "utfix_guarded_semaphore")
        self.assertEqual({n: p["semaphore"] for n, p in got.items() if p["semaphore"]},
                         {"utfix:guarded": sema})
        self.assertEqual(got["utfix:guarded"]["locations"][0]["semaphore"], sema)
        for name in ("utfix:ints", "utfix:ints_mem", "utfix:ints_const"):
            self.assertEqual(arg_types(got[name]["locations"][0]), INT_TYPES, name)
        # the three ways an argument is given: registers, memory, constants
        where = {n: [a["location"] for a in got[n]["locations"][0]["args"]]
                 for n in ("utfix:ints", "utfix:ints_mem", "utfix:ints_const")}
        self.assertTrue(all(re.fullmatch(r"%[a-z0-9]+", x) for x in where["utfix:ints"]), where)
        self.assertTrue(all(re.fullmatch(r"-\d+\(%rbp\)", x) for x in where["utfix:ints_mem"]),
                        where)
        self.assertEqual(where["utfix:ints_const"], ["$-8", "$-6", "$-1600", "$-536", "$-100000",
                                                     "$-294967296", "$-5000000000",
                                                     "$-446744073709551616"])
        self.assertEqual([arg_types(loc) for loc in got["utfix:mixed"]["locations"]],
                         [[(4, True)], [(4, False)]])
        self.assertEqual([arg_types(loc) for loc in got["utfix:hop"]["locations"]],
                         [[(8, True)], [(8, True)]])
        self.assertEqual(arg_types(got["utfix:request"]["locations"][0]),
                         [(8, True), (8, False), (8, False)])
        # what attaching would refuse is said in the listing
        errors = {n: loc["error"] for n, p in got.items() for loc in p["locations"] if "error" in loc}
        self.assertEqual(errors, {"utfix:global": 'cannot decode USDT argument 0 "8@v_u64(%rip)"'})

    def test_listing_patterns(self):
        self.assertEqual(sorted(self.usdt(USDT, "utfix:i*")),
                         ["utfix:ints", "utfix:ints_const", "utfix:ints_mem"])
        self.assertEqual(sorted(self.usdt(USDT, "hop")), ["utfix:hop"])
        self.assertEqual(sorted(self.usdt(USDT, "*:m*")), ["utfix:mixed"])
        self.assertEqual(sorted(self.usdt(PYTHON, "python:function__*")),
                         ["python:function__entry", "python:function__return"])
        self.assertEqual(self.usdt(USDT, "nomatch"), {})

    def test_listing_cli(self):
        got = self.usdt(USDT)
        guarded = got["utfix:guarded"]["locations"][0]
        p = self.daemon.ctl("probes", USDT, "utfix:[gh]*")
        self.assertEqual([line.split() for line in p.stdout.splitlines()], [
            [USDT],
            ["PROBE", "LOCS", "ARGS", "SEMAPHORE"],
            ["utfix:global", "1", "1", "-"],
            ["utfix:guarded", "1", "1", hex(guarded["semaphore"])],
            ["utfix:hop", "2", "1", "-"],
        ])
        p = self.daemon.ctl("probes", "-v", USDT, "utfix:g*")
        glob = got["utfix:global"]["locations"][0]
        self.assertEqual(p.stdout.splitlines(), [
            USDT,
            "  utfix:global  (1 location)",
            f"    location {hex(glob['address'])} (file offset {hex(glob['offset'])})",
            "      arg0  8 bytes unsigned v_u64(%rip)",
            '      cannot be attached: cannot decode USDT argument 0 "8@v_u64(%rip)"',
            f"  utfix:guarded  (1 location, semaphore {hex(guarded['semaphore'])})",
            f"    location {hex(guarded['address'])} (file offset {hex(guarded['offset'])}) "
            f"semaphore {hex(guarded['semaphore'])}",
            "      arg0  8 bytes signed   %rax",
        ])
        p = self.daemon.ctl("probes", "--json", USDT, "hop")
        self.assertEqual(json.loads(p.stdout), self.probes(target=USDT, pattern="hop"))
        # a relative path is made absolute by the client
        rel = os.path.relpath(USDT)
        p = self.daemon.ctl("probes", rel, "hop")
        self.assertEqual(p.stdout.splitlines()[0], USDT)
        p = self.daemon.ctl("probes", USDT, "nomatch")
        self.assertEqual((p.stdout, p.stderr),
                         ("", f"utracectl: no USDT probes match 'nomatch' in {USDT}\n"))

    def test_listing_errors(self):
        for target, name, text in (
                ("/nonexistent/file", "no-such-file", "/nonexistent/file"),
                ("/etc/hostname", "not-elf", "is not an ELF file"),
                ("libnothere.so.3", "no-such-file", "no such library"),
                (TARGET, "no-such-usdt-probe",
                 f"{TARGET} has no USDT probes (no .note.stapsdt section)"),
                (USDT_NONOTES, "no-such-usdt-probe",
                 f"{USDT_NONOTES} was built with USDT probes (it has .stapsdt.base), but its "
                 ".note.stapsdt section was stripped")):
            with self.subTest(target=target):
                e = self.assertRpcError(name, self.probes, target=target)
                self.assertIn(text, e.message)
                p = self.daemon.ctl("probes", target, check=False)
                self.assertEqual(p.returncode, 1)
                self.assertIn(text, p.stderr)
        self.assertRpcError("no-such-process", self.probes, pid=999999999)
        for params in ({}, {"target": USDT, "pid": 1}, {"target": USDT, "what": 1},
                       {"target": 5}, {"target": USDT, "pattern": 1},
                       {"target": USDT, "symbols": "yes"}, {"pid": -3}):
            with self.subTest(params=params):
                self.assertRpcError("invalid-params", self.probes, **params)
        self.assertEqual(self.daemon.ctl("probes", check=False).returncode, 2)
        self.assertIn("Usage: utracectl probes", self.daemon.ctl("probes", "--help").stdout)
        self.assertEqual(self.daemon.ctl("probes", "--pid", "1", "a", "b",
                                         check=False).returncode, 2)
        self.assertEqual(self.daemon.ctl("probes", "a", "b", "c", check=False).returncode, 2)

    def test_listing_a_process(self):
        f = self.fixture(USDT)
        objs = self.probes(pid=f.pid)["objects"]
        self.assertEqual([o["path"] for o in objs], [USDT])
        f.cmd("dlopen")
        objs = self.probes(pid=f.pid)["objects"]
        self.assertEqual([o["path"] for o in objs], [USDT, UTLIB])
        self.assertEqual([p["name"] for p in objs[1]["usdt"]], ["call"])
        self.assertEqual(objs[1]["usdt"][0]["semaphore"],
                         symbol_address(UTLIB, "utlib_call_semaphore"))
        objs = self.probes(pid=f.pid, pattern="utlib:*")["objects"]
        self.assertEqual([o["path"] for o in objs], [UTLIB])
        p = self.daemon.ctl("probes", "--pid", str(f.pid), "utlib:*")
        self.assertEqual([line.split() for line in p.stdout.splitlines()][::2],
                         [[UTLIB], ["utlib:call", "1", "2",
                                    hex(symbol_address(UTLIB, "utlib_call_semaphore"))]])
        p = self.daemon.ctl("probes", "--pid", str(f.pid), "nothing*")
        self.assertEqual(p.stderr, f"utracectl: no USDT probes match 'nothing*' in process {f.pid}\n")

    def test_symbols(self):
        objs = self.probes(target=TARGET, pattern="ut_a*", symbols=True)["objects"]
        self.assertEqual(objs[0]["symbols"], [
            {"name": "ut_add", "address": symbol_address(TARGET, "ut_add"),
             "size": objs[0]["symbols"][0]["size"], "ifunc": False},
            {"name": "ut_args8", "address": symbol_address(TARGET, "ut_args8"),
             "size": objs[0]["symbols"][1]["size"], "ifunc": False},
        ])
        self.assertTrue(all(s["size"] > 0 for s in objs[0]["symbols"]))
        res = self.probes(target="libc.so.6", pattern="memcpy*", symbols=True)
        syms = {s["name"]: s["ifunc"] for s in res["objects"][0]["symbols"]}
        self.assertEqual({n: syms[n] for n in ("memcpy@@GLIBC_2.14", "memcpy@GLIBC_2.2.5")},
                         {"memcpy@@GLIBC_2.14": True, "memcpy@GLIBC_2.2.5": False})
        self.assertEqual(res["more_symbols"], 0)
        p = self.daemon.ctl("probes", "--symbols", "libc.so.6", "memcpy")
        lines = [line.split() for line in p.stdout.splitlines()]
        self.assertEqual([x[2:] for x in lines[2:]], [["memcpy@@GLIBC_2.14", "(ifunc)"],
                                                      ["memcpy@GLIBC_2.2.5"]])
        # a stripped file still offers its dynamic symbols; none match here
        p = self.daemon.ctl("probes", "--symbols", TARGET + "-stripped", "ut_*")
        self.assertIn("no function symbols match 'ut_*'", p.stderr)
        # every symbol a process maps, bounded
        f = self.fixture()
        res = self.probes(pid=f.pid, symbols=True)
        n = sum(len(o["symbols"]) for o in res["objects"])
        self.assertGreater(n, 2000)
        self.assertLessEqual(n, 20000)
        self.assertEqual(n + res["more_symbols"],
                         sum(len(self.probes(target=o["path"], symbols=True)["objects"][0]["symbols"])
                             for o in res["objects"]))


class UsdtAttach(UtraceTest):
    def setUp(self):
        super().setUp()
        self.c.call("subscribe")

    def test_integers_of_every_size_and_sign(self):
        ids = [self.attach(f"usdt:{USDT}:utfix:{n}")["id"] for n in ("ints", "ints_mem",
                                                                       "ints_const")]
        f = self.fixture(USDT)
        f.cmd("ints 2")
        ev = self.c.events(6)
        self.assertEqual([(e["probe"], e["location"]) for e in ev],
                         [(ids[0], "utfix:ints"), (ids[1], "utfix:ints_mem"),
                          (ids[2], "utfix:ints_const")] * 2)
        for e in ev:
            self.assertEqual(e["args"], INTS)
            self.assertEqual((e["pid"], e["comm"]), (f.pid, "usdt"))
        # named captures with the note's types, and filters that compare by them
        p = self.attach(f"usdt:{USDT}:utfix:ints_mem", args=["s8=arg0", "u32=arg5", "s64=arg6"],
                        filter="s8 < 0 && arg6 <= -5000000000 && arg1 > 200")
        q = self.attach(f"usdt:{USDT}:utfix:ints", filter="arg0 > 0")
        f.cmd("ints 1")
        ev = [e for e in self.c.events(4) if e["probe"] == p["id"]]
        self.assertEqual([e["args"] for e in ev],
                         [{"s8": -8, "u32": 4000000000, "s64": -5000000000}])
        self.assertEqual(self.c.quiet(), [])
        st = self.stats(q["id"])
        self.assertEqual((st["hits"], st["filtered"], st["events"]), (1, 1, 0))

    def test_several_locations_with_their_own_signedness(self):
        hop = self.attach(f"usdt:{USDT}:utfix:hop")
        self.assertEqual((hop["locations"], hop["files"][0]["locations"]),
                         (2, ["utfix:hop", "utfix:hop"]))
        mixed = self.attach(f"usdt:{USDT}:utfix:mixed", args=["v=arg0"])
        neg = self.attach(f"usdt:{USDT}:utfix:mixed", args=["v=arg0"], filter="v < 0")
        f = self.fixture(USDT)
        f.cmd("hop 5")
        f.cmd("mixed -1")
        ev = self.c.events(5)
        self.assertEqual([e["args"]["arg0"] for e in ev if e["probe"] == hop["id"]], [5, 6])
        # the same bits, signed at one location and unsigned at the other
        self.assertEqual([e["args"]["v"] for e in ev if e["probe"] == mixed["id"]],
                         [-1, 4294967295])
        # and compared that way in the kernel
        self.assertEqual([e["args"]["v"] for e in ev if e["probe"] == neg["id"]], [-1])
        st = self.stats(neg["id"])
        self.assertEqual((st["hits"], st["filtered"], st["events"]), (2, 1, 1))
        self.assertEqual(self.c.quiet(), [])

    def test_semaphore_is_set_while_attached(self):
        f = self.fixture(USDT)
        self.assertEqual(f.ask("sema"), "sema 0")
        f.cmd("guarded 2")  # not enabled: the probe is skipped by the program itself
        p = self.attach(f"usdt:{USDT}:utfix:guarded", args=["i=arg0"])
        self.assertEqual(f.ask("sema"), "sema 1")
        f.cmd("guarded 3")
        self.assertEqual([e["args"]["i"] for e in self.c.events(3)], [0, 1, 2])
        self.assertEqual(self.stats(p["id"])["hits"], 3)
        self.c.call("detach", {"id": p["id"]})
        deadline = time.monotonic() + 10  # the kernel releases the link asynchronously
        while f.ask("sema") != "sema 0" and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(f.ask("sema"), "sema 0")

    def test_string_arguments_and_string_filters(self):
        every = self.attach(f"usdt:{USDT}:utfix:request",
                            args=["id=arg0", "method=str(arg1)", "path=str(arg2)"])
        get = self.attach(f"usdt:{USDT}:utfix:request", args=["id=arg0"],
                          filter='str(arg1) == "GET"')
        ge = self.attach(f"usdt:{USDT}:utfix:request", args=["id=arg0", "method=str(arg1)"],
                         filter='method == "GE*"')
        f = self.fixture(USDT)
        for line in ("1 GET /a", "2 POST /b", "3 GETX /c", "4 GET /d"):
            f.cmd(f"request {line}")
        ev = self.c.events(4 + 2 + 3)
        self.assertEqual([e["args"] for e in ev if e["probe"] == every["id"]],
                         [{"id": 1, "method": "GET", "path": "/a"},
                          {"id": 2, "method": "POST", "path": "/b"},
                          {"id": 3, "method": "GETX", "path": "/c"},
                          {"id": 4, "method": "GET", "path": "/d"}])
        self.assertEqual([e["args"]["id"] for e in ev if e["probe"] == get["id"]], [1, 4])
        self.assertEqual([e["args"] for e in ev if e["probe"] == ge["id"]],
                         [{"id": 1, "method": "GET"}, {"id": 3, "method": "GETX"},
                          {"id": 4, "method": "GET"}])
        self.assertEqual(self.c.quiet(), [])
        # non-matching hits produced no events: dropped in the kernel, counted
        for probe, filtered in ((every, 0), (get, 2), (ge, 1)):
            st = self.stats(probe["id"])
            self.assertEqual((st["hits"], st["filtered"], st["events"]),
                             (4, filtered, 4 - filtered))

    def test_library_with_its_own_provider(self):
        # attached before any process maps the library: the kernel places the
        # probe, and sets its semaphore, when the library is loaded
        lib = self.attach(f"usdt:{UTLIB}:utlib:call", args=["n=arg0", "s=str(arg1)"])
        f = self.fixture(USDT)
        self.assertRpcError("no-such-usdt-probe", self.attach, "usdt:utlib:call", pid=f.pid)
        f.cmd("dlopen")
        f.cmd("lib 2")
        self.assertEqual([e["args"] for e in self.c.events(2)],
                         [{"n": 0, "s": "from-the-library"}, {"n": 1, "s": "from-the-library"}])
        # with a pid and no target: every object the process maps
        own = self.attach("usdt:utlib:call", pid=f.pid)
        self.assertEqual((own["locations"], len(own["files"])), (1, 1))
        self.assertEqual(own["files"][0]["inode"], os.stat(UTLIB).st_ino)
        f.cmd("lib 1")
        ev = self.c.events(2)
        self.assertEqual([e["args"]["n"] for e in ev if e["probe"] == lib["id"]], [0])
        # default captures: every argument, as an integer (arg1 is a pointer)
        self.assertEqual([sorted(e["args"]) for e in ev if e["probe"] == own["id"]],
                         [["arg0", "arg1"]])
        self.assertEqual([e["args"]["arg0"] for e in ev if e["probe"] == own["id"]], [0])

    def test_pid_scoped_probe_without_target(self):
        f1, f2 = self.fixture(USDT), self.fixture(USDT)
        p = self.attach("usdt:utfix:request", pid=f1.pid, args=["id=arg0", "m=str(arg1)"])
        self.assertEqual(p["files"][0]["inode"], os.stat(USDT).st_ino)
        f2.cmd("request 1 GET /")
        f1.cmd("request 2 PUT /")
        f2.cmd("request 3 GET /")
        ev = self.c.events(1)
        self.assertEqual((ev[0]["pid"], ev[0]["args"]), (f1.pid, {"id": 2, "m": "PUT"}))
        self.assertEqual(self.c.quiet(), [])
        self.assertRpcError("no-such-usdt-probe", self.attach, "usdt:utfix:nope", pid=f1.pid)

    def test_attach_errors(self):
        for spec, name, text in (
                (f"usdt:{TARGET}:utfix:ints", "no-such-usdt-probe", "no .note.stapsdt"),
                (f"usdt:{USDT_NONOTES}:utfix:ints", "no-such-usdt-probe", "was stripped"),
                (f"usdt:{USDT}:utfix:nope", "no-such-usdt-probe",
                 f"no USDT probe utfix:nope in {USDT}"),
                (f"usdt:{USDT}:utfix:global", "unsupported",
                 f'utfix:global in {USDT}: cannot decode USDT argument 0 "8@v_u64(%rip)"')):
            with self.subTest(spec=spec):
                e = self.assertRpcError(name, self.attach, spec)
                self.assertIn(text, e.message)
        e = self.assertRpcError("invalid-spec", self.attach, f"usdt:{USDT}:utfix:hop",
                                args=["arg1"])
        self.assertIn("has only 1 arguments", e.message)
        self.assertRpcError("invalid-spec", self.attach, f"usdt:{USDT}:utfix:hop", latency=True)
        self.assertEqual(self.c.call("list")["probes"], [])
        self.assertEqual(os.listdir(os.path.join(self.daemon.root, "links")), [])

    def test_probe_survives_a_restart(self):
        p = self.attach(f"usdt:{USDT}:utfix:ints_const")
        g = self.attach(f"usdt:{USDT}:utfix:guarded", args=["i=arg0"])
        f = self.fixture(USDT)
        self.assertEqual(f.ask("sema"), "sema 1")
        self.c.close()
        self.daemon.stop(signal.SIGKILL)
        self.assertEqual(f.ask("sema"), "sema 1")  # the pinned link keeps it
        self.daemon.start()
        self.c = self.client()
        self.c.call("subscribe")
        self.assertEqual([x["id"] for x in self.c.call("list")["probes"]], [p["id"], g["id"]])
        f.cmd("ints 1")
        f.cmd("guarded 1")
        ev = self.c.events(2)
        self.assertEqual([(e["probe"], e["args"]) for e in ev],
                         [(p["id"], INTS), (g["id"], {"i": 0})])
        self.assertEqual(self.c.quiet(), [])

    def test_attach_from_the_cli(self):
        p = self.daemon.ctl("attach", f"usdt:{USDT}:utfix:request", "--arg", "m=str(arg1)",
                            "--filter", 'm == "GET"')
        pid = int(p.stdout.split()[0])
        f = self.fixture(USDT)
        f.cmd("request 9 POST /x")
        f.cmd("request 10 GET /y")
        ev = self.c.events(1)
        self.assertEqual((ev[0]["probe"], ev[0]["args"]), (pid, {"m": "GET"}))
        out = self.daemon.ctl("list").stdout
        self.assertIn(f"usdt:{USDT}:utfix:request --filter 'm == \"GET\"'", out)
