# SPDX-License-Identifier: GPL-2.0-only
"""In-kernel filters: every operator on integers and strings, hits that must
pass and hits that must not (the events and the `filtered` counter), comm,
uid, pid and cgroup filters with two processes, casts, and the filters the
kernel cannot run, refused with a clear error."""
import os
import shutil
import tempfile

from harness import TARGET, UtraceTest

OTHER_UID = 4242  # no user of that id is needed: setpriv takes numbers


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


class Filters(UtraceTest):
    def setUp(self):
        super().setUp()
        self.c.call("subscribe")

    def run_filters(self, spec, filters, commands, field, hits, **params):
        """Attach one probe per filter, run the fixture commands, and return
        {filter: [field of each event]}; checks the counters add up."""
        probes = {flt: self.attach(spec, filter=flt, **params)["id"] for flt in filters}
        f = self.fixture()
        for cmd in commands:
            f.cmd(cmd)
        got = {flt: [] for flt in filters}
        expected_total = None
        for flt, pid in probes.items():
            st = self.stats(pid)
            self.assertEqual(st["hits"], hits, flt)
            self.assertEqual(st["events"] + st["filtered"], hits, flt)
            self.assertEqual(st["lost"], 0, flt)
            expected_total = (expected_total or 0) + st["events"]
        for e in self.c.events(expected_total):
            flt = next(k for k, v in probes.items() if v == e["probe"])
            got[flt].append(e["args"][field])
        self.assertEqual(self.c.quiet(), [])
        for flt, pid in probes.items():
            self.assertEqual(self.stats(pid)["filtered"], hits - len(got[flt]), flt)
        return got

    def test_unsigned_integer_operators(self):
        values = [3, 4, 5, 6, 7]
        got = self.run_filters(f"uprobe:{TARGET}:ut_add",
                               ["arg0 == 5", "arg0 != 5", "arg0 < 5", "arg0 <= 5", "arg0 > 5",
                                "arg0 >= 5", "arg0 > 4 && arg0 < 7 && arg1 == 9"],
                               [f"add {v} 9 1" for v in values], "a", len(values),
                               args=["a=arg0"])
        self.assertEqual(got, {
            "arg0 == 5": [5], "arg0 != 5": [3, 4, 6, 7], "arg0 < 5": [3, 4],
            "arg0 <= 5": [3, 4, 5], "arg0 > 5": [6, 7], "arg0 >= 5": [5, 6, 7],
            "arg0 > 4 && arg0 < 7 && arg1 == 9": [5, 6],
        })

    def test_negative_operands_compare_signed(self):
        # argN is a raw register: a negative operand makes the comparison
        # signed; a positive one compares the 64 bits unsigned (-3 > 5)
        values = [-7, -6, -5, -4, 0, 3]
        got = self.run_filters(f"uprobe:{TARGET}:ut_add",
                               ["arg0 == -5", "arg0 != -5", "arg0 < -5", "arg0 <= -5",
                                "arg0 > -5", "arg0 >= -5", "arg0 > 5", "(s64)arg0 > 5",
                                "arg0 == 0xfffffffffffffffb"],
                               [f"add {v} 0 1" for v in values], "a", len(values),
                               args=["a=(s64)arg0"])
        self.assertEqual(got, {
            "arg0 == -5": [-5], "arg0 != -5": [-7, -6, -4, 0, 3], "arg0 < -5": [-7, -6],
            "arg0 <= -5": [-7, -6, -5], "arg0 > -5": [-4, 0, 3], "arg0 >= -5": [-5, -4, 0, 3],
            "arg0 > 5": [-7, -6, -5, -4], "(s64)arg0 > 5": [],
            "arg0 == 0xfffffffffffffffb": [-5],
        })

    def test_string_operators(self):
        names = ["hello", "help", "hello2", "he", "world"]
        got = self.run_filters(f"uprobe:{TARGET}:ut_greet",
                               ['str(arg0) == "hello"', 'str(arg0) != "hello"',
                                'str(arg0) == "hel*"', 'str(arg0) != "hel*"',
                                'name == "he"', 'str(arg0) == "*"', 'str(arg0) == ""'],
                               [f"greet {n} 1" for n in names], "name", len(names),
                               args=["name=str(arg0)"])
        self.assertEqual(got, {
            'str(arg0) == "hello"': ["hello"],
            'str(arg0) != "hello"': ["help", "hello2", "he", "world"],
            'str(arg0) == "hel*"': ["hello", "help", "hello2"],
            'str(arg0) != "hel*"': ["he", "world"],
            'name == "he"': ["he"],
            'str(arg0) == "*"': names,  # the empty prefix
            'str(arg0) == ""': [],
        })

    def test_string_filter_reads_past_a_short_capture(self):
        # the capture keeps 3 bytes; the filter still compares whole strings
        got = self.run_filters(f"uprobe:{TARGET}:ut_greet",
                               ['name == "hello"', 'name == "hel"', 'name == "hel*"'],
                               [f"greet {n} 1" for n in ["hel", "hello", "help"]], "name", 3,
                               args=["name=str(arg0, 3)"])
        self.assertEqual(got, {'name == "hello"': ["hel"], 'name == "hel"': ["hel"],
                               'name == "hel*"': ["hel", "hel", "hel"]})

    def test_comm_and_pid_with_two_processes(self):
        spec = f"uprobe:{TARGET}:ut_add"
        one, two = self.fixture(), self.fixture()
        two.cmd("name other")
        filters = ['comm == "target"', 'comm != "target"', 'comm == "oth*"',
                   f"pid == {one.pid}", f"pid != {one.pid}", f"tid == {two.pid}"]
        probes = {flt: self.attach(spec, filter=flt)["id"] for flt in filters}
        one.cmd("add 1 0 2")
        two.cmd("add 2 0 3")
        want = {'comm == "target"': [one.pid] * 2, 'comm != "target"': [two.pid] * 3,
                'comm == "oth*"': [two.pid] * 3, f"pid == {one.pid}": [one.pid] * 2,
                f"pid != {one.pid}": [two.pid] * 3, f"tid == {two.pid}": [two.pid] * 3}
        ev = self.c.events(sum(len(v) for v in want.values()))
        self.assertEqual(self.c.quiet(), [])
        for flt, pid in probes.items():
            self.assertEqual([e["pid"] for e in ev if e["probe"] == pid], want[flt], flt)
            st = self.stats(pid)
            self.assertEqual((st["hits"], st["filtered"]), (5, 5 - len(want[flt])), flt)
        comms = {e["pid"]: e["comm"] for e in ev}
        self.assertEqual(comms, {one.pid: "target", two.pid: "other"})

    def test_uid_with_two_processes(self):
        # run from a copy anyone may execute: the build tree may not be
        tmp = tempfile.mkdtemp(prefix="utrace-test-uid-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        exe = os.path.join(tmp, "target")
        shutil.copy(TARGET, exe)
        os.chmod(exe, 0o755)
        spec = f"uprobe:{exe}:ut_add"
        root = self.fixture(exe)
        other = self.fixture(exe, prefix=["setpriv", f"--reuid={OTHER_UID}",
                                          f"--regid={OTHER_UID}", "--clear-groups"])
        p_other = self.attach(spec, filter=f"uid == {OTHER_UID}")["id"]
        p_root = self.attach(spec, filter="uid < 1")["id"]
        root.cmd("add 1 0 2")
        other.cmd("add 2 0 3")
        ev = self.c.events(5)
        self.assertEqual(self.c.quiet(), [])
        self.assertEqual([(e["pid"], e["uid"]) for e in ev if e["probe"] == p_other],
                         [(other.pid, OTHER_UID)] * 3)
        self.assertEqual([(e["pid"], e["uid"]) for e in ev if e["probe"] == p_root],
                         [(root.pid, 0)] * 2)
        self.assertEqual(self.stats(p_other)["filtered"], 2)
        self.assertEqual(self.stats(p_root)["filtered"], 3)

    def make_cgroup(self, parent, name):
        path = os.path.join(parent, name)
        os.mkdir(path)
        self.addCleanup(os.rmdir, path)
        return path

    def move_to_cgroup(self, mount, pid, path):
        with open(f"/proc/{pid}/cgroup") as f:
            home = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))

        def move_back():
            if os.path.exists(f"/proc/{pid}"):
                with open(os.path.join(mount + home, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
        self.addCleanup(move_back)
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def test_cgroup_path_and_id(self):
        mount = cgroup2_mount()
        if not mount:
            self.skipTest("no cgroup v2 hierarchy mounted")
        one, two = self.fixture(), self.fixture()
        name = f"utrace-test-{os.getpid()}"
        parent = self.make_cgroup(mount, name)
        child = self.make_cgroup(parent, "inner")
        # the fixture sits in a cgroup below the one the filter names
        self.move_to_cgroup(mount, one.pid, child)
        spec = f"uprobe:{TARGET}:ut_add"
        inside = self.attach(spec, filter=f'cgroup == "/{name}"')["id"]
        outside = self.attach(spec, filter=f'cgroup != "/{name}"')["id"]
        by_mount_path = self.attach(spec, filter=f'cgroup == "{child}"')["id"]
        by_id = self.attach(spec, filter=f"cgroup == {os.stat(child).st_ino}")["id"]
        parent_id = self.attach(spec, filter=f"cgroup == {os.stat(parent).st_ino}")["id"]
        one.cmd("add 1 0 2")
        two.cmd("add 2 0 3")
        ev = self.c.events(2 + 3 + 2 + 2)
        self.assertEqual(self.c.quiet(), [])
        pids = lambda probe: [e["pid"] for e in ev if e["probe"] == probe]
        self.assertEqual(pids(inside), [one.pid] * 2)
        self.assertEqual(pids(outside), [two.pid] * 3)
        self.assertEqual(pids(by_mount_path), [one.pid] * 2)
        self.assertEqual(pids(by_id), [one.pid] * 2)
        self.assertEqual(pids(parent_id), [])  # an id is that cgroup exactly
        self.assertEqual(self.stats(parent_id)["filtered"], 5)

    def test_casts_in_filters_narrow_in_the_kernel(self):
        # 0x1_0000_0005: the low 32 bits are 5; 0x1_ffff_fffe: they are -2
        calls = [f"add {v} 0 1" for v in (0x100000005, 0x1fffffffe, 5, 0x1ff)]
        got = self.run_filters(f"uprobe:{TARGET}:ut_add",
                               ["(u32)arg0 == 5", "(int)arg0 < 0", "(u8)arg0 == 255",
                                "(s8)arg0 == -1", "(unsigned short)arg0 < 0x200"],
                               calls, "a", len(calls), args=["a=arg0"])
        self.assertEqual(got, {
            "(u32)arg0 == 5": [0x100000005, 5], "(int)arg0 < 0": [0x1fffffffe],
            "(u8)arg0 == 255": [0x1ff], "(s8)arg0 == -1": [0x1ff],
            "(unsigned short)arg0 < 0x200": [0x100000005, 5, 0x1ff],
        })

    def test_int_retval_cast(self):
        # ut_status returns an int with a 32-bit move: rax holds 0x00000000fffffffe
        spec = f"uretprobe:{TARGET}:ut_status"
        raw = self.attach(spec)["id"]
        cast = self.attach(spec, args=["st=(int)retval"])["id"]
        neg = self.attach(spec, filter="(int)retval < 0")["id"]
        uncast = self.attach(spec, filter="retval < 0")["id"]
        f = self.fixture()
        for v in (-2, 0, 7):
            f.cmd(f"status {v}")
        ev = self.c.events(3 + 3 + 1)
        self.assertEqual(self.c.quiet(), [])
        rv = lambda probe: [e["retval"] for e in ev if e["probe"] == probe]
        self.assertEqual(rv(raw), [4294967294, 0, 7])    # the raw register
        self.assertEqual(rv(cast), [-2, 0, 7])           # the type the probe gives it
        self.assertEqual([e["args"] for e in ev if e["probe"] == cast],
                         [{"st": -2}, {"st": 0}, {"st": 7}])
        self.assertEqual(rv(neg), [-2])
        self.assertEqual(self.stats(uncast)["filtered"], 3)
        # a later cast does not override the first
        both = self.attach(spec, args=["b=(u8)retval"], filter="(int)retval < 0")["id"]
        f.cmd("status -2")
        ev = self.c.events(4)
        self.assertEqual(self.c.quiet(), [])
        self.assertEqual([(e["retval"], e["args"]) for e in ev if e["probe"] == both],
                         [(254, {"b": 254})])

    def test_filters_the_kernel_cannot_run_are_refused(self):
        spec = f"uprobe:{TARGET}:ut_add"
        bad = [
            (spec, {"filter": "arg0 > 1 || arg1 < 2"}, "only conjunctions"),
            (spec, {"filter": "!(arg0 > 1)"}, "no negation"),
            (spec, {"filter": "arg0 == arg1"}, "not a number"),
            (spec, {"filter": "arg0 + 1 > 2"}, "unknown field"),
            (spec, {"filter": 'str(arg0) < "abc"'}, "== and != only"),
            (spec, {"filter": 'comm == "a-name-of-sixteen"'}, "at most 15"),
            (spec, {"filter": 'str(arg0) == "' + "x" * 64 + '"'}, "longer than"),
            (spec, {"filter": " && ".join(["pid > 0"] * 9)}, "more than 8"),
            (spec, {"filter": "latency_ns > 1ms"}, "needs --latency"),
            (spec, {"filter": "retval == 0"}, "needs a uretprobe or --latency"),
            (spec, {"filter": "str(arg0) == 5"}, "compares with a number"),
            (spec, {"filter": 'pid == "x"'}, "compares with a string"),
            (spec, {"filter": "(u8)arg0 == 300"}, "out of range for (u8)arg0 (0..255)"),
            (spec, {"filter": "(s8)arg0 < -129"}, "out of range for (s8)arg0"),
            (spec, {"filter": "(unsigned)arg0 != -1"}, "unsigned; it is never -1"),
            (spec, {"filter": "(float)arg0 == 1"}, "a cast names an integer type"),
            (spec, {"filter": '(u8)comm == "x"'}, "a cast applies to argN"),
            (spec, {"filter": "(u8)(s32)arg0 == 1"}, "one cast per value"),
            (spec, {"filter": 'cgroup == "/no/such/cgroup"'}, "no cgroup"),
            (spec, {"filter": "cgroup > 5"}, "== or != only"),
            (spec, {"filter": "nosuch == 1"}, "unknown field"),
            (spec, {"filter": "arg0 == 1", "args": ["a=str(arg0)"],
                    "aggregate": "hist(a)"}, "integer"),
            (spec, {"filter": 'str(retval) == "x"', "latency": True}, "not available"),
            (f"uretprobe:{TARGET}:ut_add", {"filter": "arg0 == 1"}, "arguments are gone"),
        ]
        for s, params, words in bad:
            with self.subTest(params=params):
                try:
                    self.attach(s, **params)
                except Exception as e:
                    self.assertIn(getattr(e, "name", None), ("invalid-spec", "unsupported"),
                                  str(e))
                    self.assertIn(words, e.message)
                else:
                    self.fail(f"{params} was accepted")
        self.assertEqual(self.c.call("list")["probes"], [])
