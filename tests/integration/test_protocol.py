# SPDX-License-Identifier: GPL-2.0-only
"""The JSON-RPC protocol: every method, and bad input that must get a clear
error without harming the connection or the daemon."""
import json
import socket
import time

from harness import TARGET, UtraceTest


class Protocol(UtraceTest):
    def raw(self, data, c=None):
        c = c or self.c
        c.send_raw(data)
        return c.message()

    def assertUsable(self, c=None):
        c = c or self.c
        self.assertEqual(c.call("hello")["protocol"], 1)

    def test_hello_and_status(self):
        h = self.c.call("hello")
        self.assertEqual(h["protocol"], 1)
        self.assertIn("uprobe", h["features"])
        self.assertIn("uprobe_multi", h["features"])
        st = self.c.call("status")
        self.assertEqual(st["probes"], 0)
        self.assertEqual(st["socket"], self.daemon.socket)
        self.assertGreater(st["ringbuf"]["size"], 0)

    def test_malformed_json(self):
        for bad in [b"{", b"not json", b'{"jsonrpc":"2.0","id":1,"method":"hello"} trailing',
                    b'{"a":1,}']:
            msg = self.raw(bad + b"\n")
            self.assertEqual(msg["error"]["code"], -32700, bad)
            self.assertIsNone(msg["id"])
        self.assertUsable()

    def test_invalid_requests(self):
        cases = [
            (b'[1,2]', -32600),
            (b'{"jsonrpc":"1.0","id":1,"method":"hello"}', -32600),
            (b'{"jsonrpc":"2.0","id":1}', -32600),
            (b'{"jsonrpc":"2.0","id":{"x":1},"method":"hello"}', -32600),
            (b'{"jsonrpc":"2.0","id":1,"method":"hello","params":[1]}', -32602),
            (b'{"jsonrpc":"2.0","id":1,"method":"nope"}', -32601),
            (b'{"jsonrpc":"2.0","id":1,"method":"attach","params":{}}', 1),
            (b'{"jsonrpc":"2.0","id":1,"method":"attach","params":{"spec":5}}', 1),
            (b'{"jsonrpc":"2.0","id":1,"method":"attach","params":{"spec":"uprobe:/x:y","bogus":1}}', 1),
            (b'{"jsonrpc":"2.0","id":1,"method":"detach","params":{"id":-1}}', -32602),
            (b'{"jsonrpc":"2.0","id":1,"method":"detach","params":{}}', -32602),
            (b'{"jsonrpc":"2.0","id":1,"method":"stats","params":{"ids":"x"}}', -32602),
        ]
        for line, code in cases:
            msg = self.raw(line + b"\n")
            self.assertIn("error", msg, line)
            self.assertEqual(msg["error"]["code"], code, (line, msg))
            self.assertTrue(msg["error"]["message"])
        self.assertUsable()

    def test_unknown_method_names_it(self):
        msg = self.raw(b'{"jsonrpc":"2.0","id":"abc","method":"frobnicate"}\n')
        self.assertEqual(msg["id"], "abc")
        self.assertIn("frobnicate", msg["error"]["message"])
        self.assertEqual(msg["error"]["data"]["name"], "method-not-found")

    def test_notification_gets_no_reply(self):
        self.c.send_raw(b'{"jsonrpc":"2.0","method":"hello"}\n')
        self.assertUsable()
        self.assertEqual(self.c.pending, [])

    def test_bad_spec(self):
        for spec, name in [("kprobe:foo", "invalid-spec"), ("uprobe:/bin/sh", "invalid-spec"),
                           ("uprobe:relative/x:f", "invalid-spec")]:
            self.assertRpcError(name, self.attach, spec)
        self.assertRpcError("invalid-spec", self.attach, f"uprobe:{TARGET}:ut_add", args=["x=pid"])
        self.assertRpcError("invalid-spec", self.attach, f"uprobe:{TARGET}:ut_add",
                            filter="arg0 >")
        self.assertUsable()

    def test_nul_bytes_and_bad_utf8(self):
        msg = self.raw(b'{"jsonrpc":"2.0","id":1,"method":"hel\x00lo"}\n')
        self.assertEqual(msg["error"]["code"], -32700)
        msg = self.raw(b'{"jsonrpc":"2.0","id":2,"method":"\xff\xfe"}\n')
        self.assertEqual(msg["error"]["code"], -32700)
        self.assertUsable()

    def test_deep_nesting_and_huge_numbers(self):
        msg = self.raw(b'{"jsonrpc":"2.0","id":1,"method":"hello","params":{"a":'
                       + b"[" * 100 + b"]" * 100 + b"}}\n")
        self.assertEqual(msg["error"]["code"], -32700)
        self.assertIn("deep", msg["error"]["message"])
        msg = self.raw(b'{"jsonrpc":"2.0","id":1,"method":"detach","params":{"id":'
                       b'123456789012345678901234567890}}\n')
        self.assertIn("error", msg)
        self.assertUsable()

    def test_partial_lines_and_pipelining(self):
        self.c.send_raw(b'{"jsonrpc":"2.0","id":1,')
        time.sleep(0.1)
        self.c.send_raw(b'"method":"hello"}\n{"jsonrpc":"2.0","id":2,"method":"status"}\n')
        a, b = self.c.message(), self.c.message()
        self.assertEqual((a["id"], b["id"]), (1, 2))
        self.assertIn("result", a)
        self.assertIn("result", b)

    def test_request_too_large_closes_only_that_client(self):
        other = self.client()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.daemon.socket)
        try:
            chunk = b"x" * 65536
            for _ in range(20):  # 1.25 MiB without a newline
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(10)
        data = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except ConnectionResetError:
            pass
        s.close()
        reply = json.loads(data.split(b"\n")[0])
        self.assertEqual(reply["error"]["code"], -32600)
        self.assertIn("limit", reply["error"]["message"])
        self.assertUsable(other)
        self.assertUsable()

    def test_request_without_final_newline(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.daemon.socket)
        s.sendall(b'{"jsonrpc":"2.0","id":7,"method":"hello"}')
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        data = b""
        while not data.endswith(b"\n"):
            d = s.recv(4096)
            if not d:
                break
            data += d
        s.close()
        self.assertEqual(json.loads(data)["id"], 7)

    def test_list_and_stats_shapes(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", args=["a=arg0"])
        lst = self.c.call("list")["probes"]
        self.assertEqual(len(lst), 1)
        self.assertEqual(lst[0]["id"], p["id"])
        self.assertEqual(lst[0]["spec"], f"uprobe:{TARGET}:ut_add")
        self.assertEqual(lst[0]["fields"], ["a"])
        self.assertEqual(lst[0]["files"][0]["path"], TARGET)
        st = self.c.call("stats")
        self.assertEqual([s["id"] for s in st["probes"]], [p["id"]])
        for key in ("hits", "events", "lost", "filtered", "aggregated"):
            self.assertEqual(st["probes"][0][key], 0)
        self.assertRpcError("no-such-probe", self.c.call, "stats", {"id": 999})

    def test_client_gone_mid_request_leaves_nothing(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.daemon.socket)
        s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "attach",
                              "params": {"spec": f"uprobe:{TARGET}:ut_add",
                                         "transient": True}}).encode() + b"\n")
        s.close()
        deadline = time.time() + 5
        while time.time() < deadline and self.c.call("list")["probes"]:
            time.sleep(0.05)
        self.assertEqual(self.c.call("list")["probes"], [])
        self.assertUsable()
