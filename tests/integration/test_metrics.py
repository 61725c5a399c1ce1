# SPDX-License-Identifier: GPL-2.0-only
"""Metrics for Prometheus: known fixture calls give exact values in the
scrape, checked by real parsers (promtool, the Prometheus and OpenMetrics
parsers of prometheus_client); who sees which probes; the HTTP responder
started per connection by systemd-socket-activate, as utraced-metrics.socket
starts it."""
import grp
import math
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from prometheus_client.openmetrics.parser import \
    text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

from harness import TARGET, UTRACECTL, UtraceTest
from test_access import USER, connect_as

PROMTOOL = "/usr/bin/promtool"
METRICS_GROUP = "utrace-test-metrics"


def samples(text, parser=parse_prometheus):
    """{(sample name, frozenset of labels): value}, every family parsed."""
    out = {}
    for fam in parser(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def series(all_samples, metric, **labels):
    """The samples of metric whose labels include labels: {other labels: value}."""
    want = set(labels.items())
    return {frozenset(set(k) - want): v for (n, k), v in all_samples.items()
            if n == metric and want <= set(k)}


def promtool(text):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).strip()


class Metrics(UtraceTest):
    def scrape(self, *args):
        return self.daemon.ctl("metrics", *args).stdout

    def test_exact_values_of_a_scrape(self):
        hist = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="hist(arg0)", by="comm")["id"]
        signed = self.attach(f"uretprobe:{TARGET}:ut_status", aggregate="hist((int)retval)")["id"]
        keyed = self.attach(f"uprobe:{TARGET}:ut_greet", aggregate="count", by="str(arg0)")["id"]
        total = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count")["id"]
        events = self.attach(f"uprobe:{TARGET}:ut_neg", args=["v=arg0"])["id"]
        self.c.call("subscribe", {"ids": [events]})
        f = self.fixture()
        for v, n in [(0, 3), (1, 2), (2, 1), (3, 4), (1000, 1), (1024, 5)]:
            f.cmd(f"add {v} 0 {n}")
        for v in (-2, -2, 0, 5):
            f.cmd(f"status {v}")
        for name, n in (('a"b\\c', 2), ("plain", 1)):
            f.cmd(f"greet {name} {n}")
        f.cmd("neg 1")
        f.cmd("neg 2")
        self.assertEqual(len(self.c.events(2, probe=events)), 2)

        text = self.scrape()
        self.assertEqual(promtool(text), (0, ""))
        s = samples(text)
        pid = frozenset()

        def one(name, probe, **labels):
            return series(s, name, probe=str(probe), **labels)

        # hist(arg0) by comm: cumulative buckets from the lowest used (le=0) to
        # the highest ([1024, 2048) ends at 2047), then +Inf; sum and count
        buckets = one("utrace_aggregation_value_bucket", hist, comm="target")
        self.assertEqual({dict(k)["le"]: v for k, v in buckets.items()},
                         {"0": 3, "1": 5, "3": 10, "7": 10, "15": 10, "31": 10, "63": 10,
                          "127": 10, "255": 10, "511": 10, "1023": 11, "2047": 16, "+Inf": 16})
        self.assertEqual(one("utrace_aggregation_value_count", hist, comm="target"), {pid: 16})
        self.assertEqual(one("utrace_aggregation_value_sum", hist, comm="target"),
                         {pid: 3 * 0 + 2 * 1 + 2 + 4 * 3 + 1000 + 5 * 1024})
        # a signed value: its negative values in a bucket of their own, le=-1
        buckets = one("utrace_aggregation_value_bucket", signed)
        self.assertEqual({dict(k)["le"]: v for k, v in buckets.items()},
                         {"-1": 2, "0": 3, "1": 3, "3": 3, "7": 4, "+Inf": 4})
        self.assertEqual(one("utrace_aggregation_value_sum", signed), {pid: 1})
        # string keys as labels, escaped; a count without a key has no key label
        self.assertEqual(one("utrace_aggregation_count_total", keyed),
                         {frozenset({("key", 'a"b\\c')}): 2, frozenset({("key", "plain")}): 1})
        self.assertEqual(one("utrace_aggregation_count_total", total), {pid: 16})
        self.assertIn('key="a\\"b\\\\c"', text)
        # per-probe counters and what became of the events
        self.assertEqual(one("utrace_probe_hits_total", hist), {pid: 16})
        self.assertEqual(one("utrace_probe_aggregated_total", signed), {pid: 4})
        self.assertEqual(one("utrace_probe_events_total", events), {pid: 2})
        self.assertEqual(one("utrace_probe_delivered_total", events),
                         {frozenset({("output", "subscribers")}): 2})
        self.assertEqual(one("utrace_probe_lost_total", events),
                         {frozenset({("cause", "ringbuf")}): 0, frozenset({("cause", "busy")}): 0})
        info = one("utrace_probe_info", hist)
        self.assertEqual(info, {frozenset({("spec", f"uprobe:{TARGET}:ut_add"), ("type", "uprobe"),
                                           ("mode", "hist"), ("value", "arg0"),
                                           ("by", "comm")}): 1})
        # the daemon's health
        self.assertEqual(s[("utrace_probes", frozenset())], 5)
        self.assertEqual(s[("utrace_subscribers", frozenset())], 1)
        self.assertEqual(s[("utrace_ringbuf_size_bytes", frozenset())], 8 << 20)
        self.assertEqual(s[("utrace_config_applied", frozenset())], 1)
        self.assertLessEqual(abs(s[("utrace_start_time_seconds", frozenset())] - time.time()),
                             3600)

    def test_latency_in_seconds(self):
        p = self.attach(f"uprobe:{TARGET}:ut_sleep", latency=True,
                        aggregate="hist(latency_ns)")["id"]
        f = self.fixture()
        for ms in (2, 2, 10):
            f.cmd(f"sleep {ms}")
        s = samples(self.scrape())
        b = series(s, "utrace_aggregation_latency_seconds_bucket", probe=str(p))
        les = sorted((float(dict(k)["le"]), v) for k, v in b.items())
        self.assertEqual(les[-1], (math.inf, 3))
        # bounds are 2^i - 1 ns in seconds; a sleep lasts at least what it asked
        self.assertTrue(all(round(le * 1e9 + 1) & round(le * 1e9) == 0 for le, _ in les[:-1]))
        below = {le: v for le, v in les[:-1]}
        self.assertEqual(sum(v for le, v in below.items() if le < 0.002), 0)
        self.assertGreaterEqual(series(s, "utrace_aggregation_latency_seconds_sum",
                                       probe=str(p))[frozenset()], 0.014)
        self.assertEqual(series(s, "utrace_aggregation_latency_seconds_count",
                                probe=str(p))[frozenset()], 3)

    def test_openmetrics(self):
        self.attach(f"uretprobe:{TARGET}:ut_status", aggregate="hist((int)retval)")
        p = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="hist(arg0)")["id"]
        f = self.fixture()
        f.cmd("status -1")
        f.cmd("add 6 0 2")
        text = self.scrape("--openmetrics")
        self.assertTrue(text.endswith("# EOF\n"))
        fams = {fam.name: fam for fam in parse_openmetrics(text)}
        self.assertEqual(fams["utrace_probe_hits"].type, "counter")
        self.assertEqual(fams["utrace_build"].type, "info")
        self.assertEqual(fams["utrace_aggregation_value"].type, "histogram")
        s = samples(text, parse_openmetrics)
        self.assertEqual(series(s, "utrace_aggregation_value_bucket", probe=str(p)),
                         {frozenset({("le", "7.0")}): 2, frozenset({("le", "+Inf")}): 2})
        self.assertEqual(series(s, "utrace_aggregation_value_sum", probe=str(p)),
                         {frozenset(): 12})
        # a histogram with negative values has no _sum in OpenMetrics
        self.assertNotIn("utrace_aggregation_value_sum{probe=\"1\"}", text)
        self.assertIn("utrace_aggregation_value_bucket{probe=\"1\",le=\"-1.0\"} 1", text)
        self.assertRpcError("invalid-params", self.c.call, "metrics", {"format": "json"})
        self.assertRpcError("invalid-params", self.c.call, "metrics", {"colour": 1})

    def test_overflow_key_is_its_own_series(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count", by="arg0",
                        max_keys=2)["id"]
        f = self.fixture()
        for v in (1, 2, 3, 4):
            f.cmd(f"add {v} 0 1")
        s = samples(self.scrape())
        self.assertEqual(series(s, "utrace_aggregation_count_total", probe=str(p)),
                         {frozenset({("key", "1")}): 1, frozenset({("key", "2")}): 1,
                          frozenset({("overflow", "true")}): 2})

    def test_configured_probes_are_named(self):
        self.daemon.write_probes("m.conf", f"""[Probe]
Name=adds
Spec=uprobe:{TARGET}:ut_add
Aggregate=count
""")
        self.c.call("reload")
        f = self.fixture()
        f.cmd("add 1 1 3")
        s = samples(self.scrape())
        [(labels, v)] = series(s, "utrace_aggregation_count_total", name="adds").items()
        self.assertEqual(v, 3)
        self.assertEqual(s[("utrace_config_probes", frozenset())], 1)
        self.assertEqual(s[("utrace_config_reloads_total", frozenset())], 1)
        self.assertEqual(s[("utrace_config_reloads_refused_total", frozenset())], 0)
        self.daemon.write_probes("m.conf", "[Probe]\nName=broken\n")
        self.assertRpcError("config-error", self.c.call, "reload")
        s = samples(self.scrape())
        self.assertEqual(s[("utrace_config_reloads_refused_total", frozenset())], 1)
        self.assertEqual(s[("utrace_config_applied", frozenset())], 0)


class Visibility(UtraceTest):
    def setUp(self):
        super().setUp()
        os.chmod(self.daemon.dir, 0o755)  # the socket inside is world-connectable

    def test_users_see_their_probes_and_the_metrics_group_every_probe(self):
        subprocess.run(["groupadd", "-f", METRICS_GROUP], check=True)
        self.addCleanup(subprocess.run, ["groupdel", METRICS_GROUP])
        gid = grp.getgrnam(METRICS_GROUP).gr_gid
        self.daemon.stop()
        self.daemon.start("--metrics-group", METRICS_GROUP)
        self.c = self.client()
        root_probe = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="count")["id"]
        mine = self.fixture(prefix=["setpriv", f"--reuid={USER}", f"--regid={USER}",
                                    "--clear-groups"])
        user = connect_as(self.daemon.socket, USER, USER)
        self.addCleanup(user.close)
        own = user.call("attach", {"spec": f"uprobe:{TARGET}:ut_add", "pid": mine.pid,
                                   "aggregate": "count"})["id"]

        def probes(client):
            text = client.call("metrics")["text"]
            return {dict(k)["probe"] for k in series(samples(text), "utrace_probe_info")}

        self.assertEqual(probes(self.c), {str(root_probe), str(own)})
        self.assertEqual(probes(user), {str(own)})
        self.assertNotIn("utrace_config_probes", user.call("metrics")["text"])
        reader = connect_as(self.daemon.socket, USER + 1, USER + 1, [gid])
        self.addCleanup(reader.close)
        self.assertEqual(probes(reader), {str(root_probe), str(own)})
        # reading metrics is all the group may do
        self.assertRpcError("permission-denied", reader.call, "attach",
                            {"spec": f"uprobe:{TARGET}:ut_add"})
        self.assertRpcError("permission-denied", reader.call, "reload")
        self.assertEqual(reader.call("list")["probes"], [])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Http(UtraceTest):
    """utracectl metrics --http behind an inetd-style listener: what
    utraced-metrics.socket (Accept=yes) does, here with systemd-socket-activate."""

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.listener = subprocess.Popen(
            ["systemd-socket-activate", "--inetd", "--accept", "-l", f"127.0.0.1:{self.port}",
             UTRACECTL, "--socket", self.daemon.socket, "metrics", "--http"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(self.stop_listener)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.listener.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop_listener(self):
        self.listener.send_signal(signal.SIGTERM)
        try:
            self.listener.wait(10)
        except subprocess.TimeoutExpired:
            self.listener.kill()
            self.listener.wait()
        self.listener.stderr.close()

    def get(self, path="/metrics", method="GET", accept=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        if accept:
            req.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def test_scrape_over_http(self):
        p = self.attach(f"uprobe:{TARGET}:ut_add", aggregate="hist(arg0)")["id"]
        f = self.fixture()
        f.cmd("add 5 0 3")
        status, headers, body = self.get()
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(int(headers["Content-Length"]), len(body.encode()))
        self.assertEqual(promtool(body), (0, ""))
        s = samples(body)
        self.assertEqual(series(s, "utrace_aggregation_value_bucket", probe=str(p)),
                         {frozenset({("le", "7")}): 3, frozenset({("le", "+Inf")}): 3})
        # what Prometheus asks for gets OpenMetrics
        status, headers, body = self.get(accept="application/openmetrics-text;version=1.0.0,"
                                                "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
        self.assertEqual((status, headers["Content-Type"]),
                         (200, "application/openmetrics-text; version=1.0.0; charset=utf-8"))
        self.assertTrue(body.endswith("# EOF\n"))
        self.assertIn("utrace_probe_hits", {fam.name for fam in parse_openmetrics(body)})
        status, headers, body = self.get(method="HEAD")
        self.assertEqual((status, body), (200, ""))
        self.assertGreater(int(headers["Content-Length"]), 0)
        self.assertEqual(self.get("/")[0], 404)
        status, headers, _ = self.get(method="POST")
        self.assertEqual((status, headers["Allow"]), (405, "GET, HEAD"))
        with socket.create_connection(("127.0.0.1", self.port), 10) as s:
            s.sendall(b"nonsense\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 400 Bad Request\r\n"))

    def test_daemon_down_is_a_503(self):
        self.daemon.stop()
        status, _, body = self.get()
        self.assertEqual(status, 503)
        self.assertIn("cannot connect to utraced", body)
