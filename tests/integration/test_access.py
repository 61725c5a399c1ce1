# SPDX-License-Identifier: GPL-2.0-only
"""Access control: who may do what, decided from the peer's credentials.

A peer's credentials are taken when it connects, so a child process that
connects with another uid and hands the socket back to the test stands for a
client of that user."""
import grp
import os
import shutil
import socket
import subprocess
import tempfile

from harness import TARGET, Client, UtraceTest

USER = 4242          # no account needed: ids are what the kernel compares
OTHER = 4343
GROUP_NAME = "utrace-test-priv"


def connect_as(path, uid, gid, groups=()):
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            socket.send_fds(child, [b"x"], [s.fileno()])
            code = 0
        finally:
            os._exit(code)
    _, fds, _, _ = socket.recv_fds(parent, 1, 1)
    os.waitpid(pid, 0)
    parent.close()
    child.close()
    return Client(None, sock=socket.socket(fileno=fds[0]))


def as_user(uid, gid=None):
    return ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups"]


class Access(UtraceTest):
    def setUp(self):
        super().setUp()
        os.chmod(self.daemon.dir, 0o755)  # the socket inside is world-connectable

    def user(self, uid=USER, groups=()):
        c = connect_as(self.daemon.socket, uid, uid, groups)
        self.addCleanup(c.close)
        return c

    def own_fixture(self, uid=USER, path=TARGET):
        return self.fixture(path, prefix=as_user(uid))

    def test_read_only_methods(self):
        u = self.user()
        self.assertEqual(u.call("hello")["protocol"], 1)
        self.assertEqual(u.call("status")["probes"], 0)
        self.assertEqual(u.call("list")["probes"], [])

    def test_attach_needs_a_process_of_ones_own(self):
        u = self.user()
        e = self.assertRpcError("permission-denied", u.call, "attach",
                                {"spec": f"uprobe:{TARGET}:ut_add"})
        self.assertIn("pid", e.message)
        roots = self.fixture()  # runs as root
        e = self.assertRpcError("permission-denied", u.call, "attach",
                                {"spec": f"uprobe:{TARGET}:ut_add", "pid": roots.pid})
        self.assertIn("not yours", e.message)
        others = self.own_fixture(OTHER)
        self.assertRpcError("permission-denied", u.call, "attach",
                            {"spec": f"uprobe:{TARGET}:ut_add", "pid": others.pid})
        # a watched probe (a name, a glob, *) is system-wide: privileged only
        for spec in ("uprobe:libc.so.6:malloc", "usdt:*:simplehttp:file_transfer"):
            self.assertRpcError("permission-denied", u.call, "attach", {"spec": spec})
        # --exe would stat any path as root; a pid-scoped probe has no use for it
        mine = self.own_fixture()
        e = self.assertRpcError("permission-denied", u.call, "attach",
                                {"spec": f"uprobe:{TARGET}:ut_add", "pid": mine.pid,
                                 "exe": "/root/.bashrc"})
        self.assertIn("exe", e.message)
        self.assertEqual(self.c.call("list")["probes"], [])

    def test_own_probe_only_files_the_process_maps(self):
        u = self.user()
        f = self.own_fixture()
        e = self.assertRpcError("permission-denied", u.call, "attach",
                                {"spec": "uprobe:/usr/bin/bash:main", "pid": f.pid})
        self.assertIn("maps no /usr/bin/bash", e.message)
        p = u.call("attach", {"spec": f"uprobe:{TARGET}:ut_add", "pid": f.pid, "args": ["a=arg0"]})
        self.assertEqual(p["owner"], USER)
        q = u.call("attach", {"spec": "uprobe:libc.so.6:nanosleep", "pid": f.pid})
        self.assertIn("/map_files/", q["files"][0]["path"])
        u.call("subscribe")
        f.cmd("add 7 0 2")
        self.assertEqual([e["args"]["a"] for e in u.events(2)], [7, 7])

    def test_users_see_only_their_own(self):
        mine = self.own_fixture()
        u = self.user()
        p = u.call("attach", {"spec": f"uprobe:{TARGET}:ut_add", "pid": mine.pid})
        r = self.attach(f"uprobe:{TARGET}:ut_neg")  # root's, system-wide
        other = self.user(OTHER)
        for c, want in ((u, [p["id"]]), (other, []), (self.c, [p["id"], r["id"]])):
            self.assertEqual(sorted(x["id"] for x in c.call("list")["probes"]), want)
            self.assertEqual(sorted(x["id"] for x in c.call("stats")["probes"]), want)
        for method, params in (("detach", {"id": r["id"]}), ("stats", {"id": r["id"]}),
                               ("subscribe", {"ids": [r["id"]]})):
            self.assertRpcError("no-such-probe", u.call, method, params)
        self.assertRpcError("no-such-probe", other.call, "detach", {"id": p["id"]})
        self.assertEqual(other.call("detach", {"all": True})["detached"], [])
        # streams: everything a user subscribes to is its own
        u.call("subscribe")
        other.call("subscribe")
        root_fixture = self.fixture()
        root_fixture.cmd("neg 1")
        mine.cmd("add 1 1 1")
        self.assertEqual([e["probe"] for e in u.events(1)], [p["id"]])
        self.assertEqual(u.quiet(), [])
        self.assertEqual(other.quiet(), [])
        clients = other.call("stats")["clients"]
        self.assertEqual({c["uid"] for c in clients}, {OTHER})
        self.assertEqual(u.call("detach", {"all": True})["detached"], [p["id"]])
        self.assertEqual([x["id"] for x in self.c.call("list")["probes"]], [r["id"]])

    def test_setuid_exec_stops_an_unprivileged_probe_in_the_kernel(self):
        work = tempfile.mkdtemp(prefix="utrace-setuid-")
        self.addCleanup(shutil.rmtree, work)
        os.chmod(work, 0o755)
        plain = os.path.join(work, "plain")
        setuid = os.path.join(work, "setuid")
        shutil.copy(TARGET, plain)
        shutil.copy(TARGET, setuid)
        os.chmod(setuid, 0o4755)  # root's: whoever runs it runs with euid 0
        u = self.user()
        for image, seen in ((plain, True), (setuid, False)):
            f = self.own_fixture()
            p = u.call("attach", {"spec": "uprobe:libc.so.6:nanosleep", "pid": f.pid})
            u.call("subscribe", {"id": p["id"]})
            f.cmd("sleep 1")
            self.assertEqual(len(u.events(1)), 1)
            # the same process (same pid, same probe) now runs another program
            f.proc.stdin.write(f"exec {image}\n")
            f.proc.stdin.flush()
            self.assertEqual(f.proc.stdout.readline().split()[0], "ready")
            f.cmd("sleep 1")
            got = u.quiet(0.5)
            st = u.call("stats", {"id": p["id"]})["probes"][0]
            self.assertEqual(len(got), 1 if seen else 0, (image, got))
            self.assertEqual(st["hits"], 2)
            self.assertEqual(st["filtered"], 0 if seen else 1)
            u.call("detach", {"id": p["id"]})

    def test_listing_as_the_caller(self):
        work = tempfile.mkdtemp(prefix="utrace-listing-")
        self.addCleanup(shutil.rmtree, work)
        os.chmod(work, 0o755)
        secret = os.path.join(work, "secret")
        shutil.copy(TARGET, secret)
        os.chmod(secret, 0o600)
        u = self.user()
        self.assertTrue(u.call("probes", {"target": TARGET, "symbols": True})["objects"])
        self.assertRpcError("permission-denied", u.call, "probes",
                            {"target": secret, "symbols": True})
        self.assertTrue(self.c.call("probes", {"target": secret, "symbols": True})["objects"])
        mine = self.own_fixture()
        self.assertTrue(u.call("probes", {"pid": mine.pid, "symbols": True})["objects"])
        self.assertRpcError("permission-denied", u.call, "probes",
                            {"pid": self.fixture().pid, "symbols": True})

    def test_group_members_are_privileged(self):
        subprocess.run(["groupadd", "-f", GROUP_NAME], check=True)
        self.addCleanup(subprocess.run, ["groupdel", GROUP_NAME])
        gid = grp.getgrnam(GROUP_NAME).gr_gid
        self.daemon.stop()
        self.daemon.start("--group", GROUP_NAME)
        member = self.user(groups=[gid])
        p = member.call("attach", {"spec": f"uprobe:{TARGET}:ut_add"})  # system-wide
        self.assertEqual(p["owner"], USER)
        self.assertRpcError("permission-denied", self.user().call, "attach",
                            {"spec": f"uprobe:{TARGET}:ut_add"})

    def test_limits_per_user(self):
        f = self.own_fixture()
        u = self.user()
        for _ in range(64):
            u.call("attach", {"spec": f"uprobe:{TARGET}:ut_add", "pid": f.pid})
        e = self.assertRpcError("limit-exceeded", u.call, "attach",
                                {"spec": f"uprobe:{TARGET}:ut_add", "pid": f.pid})
        self.assertIn("64", e.message)
        conns = [self.user(OTHER) for _ in range(64)]
        extra = self.user(OTHER)
        msg = extra.message()
        self.assertEqual(msg["error"]["data"]["name"], "limit-exceeded")
        self.assertEqual(len(conns), 64)
        self.assertEqual(self.c.call("hello")["protocol"], 1)  # root is not limited
