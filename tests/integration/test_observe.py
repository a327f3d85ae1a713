"""Seeing a running VM: the event trace (run --trace, Chrome/Perfetto JSON
trace format), the live metrics (metrics.get on the control socket) and
vmmux top. docs/observability.md describes all three.

Every trace is checked as a trace viewer reads it (json module, then the
structure of the JSON trace format) and against the run's --stats-json:
without overwriting, the trace holds exactly the events the statistics
count, per type, per route and per VMM."""
import collections
import json
import os
import re
import signal
import socket
import subprocess
import time

from harness import (EXIT_HOST, EXIT_IMAGE, EXIT_USAGE, PARALLEL, VMMUX, VmmuxTest,
                     exit_device_status, guest, wait_until)

TID_MAIN = 1000           # the main loop's track (src/stats/trace.h)
EVENTS_DEFAULT = 65536    # records per track by default
X_FIELDS = {"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"}
X_ARGS = {"vmm", "route", "generation", "write", "value", "result", "src", "size", "count",
          "depth"}
X_ARGS_OPTIONAL = {"unrouted", "failed"}
TYPES = ["io", "mmio", "msr", "hlt", "hypercall", "exception", "shutdown", "platform", "irq",
         "request", "fault"]
NAME_RE = re.compile(r"^(io|mmio|msr) 0x[0-9a-f]+$|^(hlt|shutdown)$|"
                     r"^(hypercall|exception|irq|fault) [0-9]+$|"
                     r"^platform (smi|reset|poweroff|powerbtn|watchdog)$|^request exit$")

SMP_WRITES = 1000         # smp.elf: writes of each vCPU to its port


def load_trace(test, path):
    """Read the trace at PATH as a viewer would and check its structure;
    returns (document, {tid: [X events in file order]})."""
    test.assertTrue(os.path.exists(path), "no trace written at %s" % path)
    with open(path) as f:
        doc = json.load(f)
    test.assertIsInstance(doc, dict)
    test.assertEqual(doc.get("displayTimeUnit"), "ns")
    events = doc["traceEvents"]
    test.assertIsInstance(events, list)
    meta = [e for e in events if e.get("ph") == "M"]
    xs = [e for e in events if e.get("ph") == "X"]
    test.assertEqual(len(meta) + len(xs), len(events), "only M and X events")
    names = {}
    for m in meta:
        test.assertEqual(m["pid"], 1)
        if m["name"] == "process_name":
            test.assertEqual(m["args"], {"name": "vmmux"})
        elif m["name"] == "thread_name":
            names[m["tid"]] = m["args"]["name"]
        else:
            test.assertEqual(m["name"], "thread_sort_index")
    tracks = collections.defaultdict(list)
    for e in xs:
        test.assertEqual(set(e), X_FIELDS, e)
        test.assertEqual((e["ph"], e["pid"]), ("X", 1), e)
        test.assertRegex(e["name"], NAME_RE)
        test.assertEqual(e["cat"], e["name"].split()[0], e)
        for k in ("ts", "dur"):
            test.assertIsInstance(e[k], (int, float), e)
            test.assertGreaterEqual(e[k], 0, e)
        a = e["args"]
        test.assertTrue(X_ARGS <= set(a) <= X_ARGS | X_ARGS_OPTIONAL, e)
        test.assertIsInstance(a["generation"], int)
        test.assertIsInstance(a["write"], bool)
        test.assertIn(a["result"], ("done", "gp", "reinject", "reset", "end"))
        test.assertTrue(a["value"] is None or re.match(r"^0x[0-9a-f]+$", a["value"]), e)
        test.assertIn(e["tid"], names, "an X event on a track without a thread_name")
        tracks[e["tid"]].append(e)
    for tid, evs in tracks.items():
        ts = [e["ts"] for e in evs]
        test.assertEqual(ts, sorted(ts), "ts not monotonic on track %d" % tid)
    # The tracks the trace announces: one per vCPU, then the main loop.
    od = doc["otherData"]
    tids = [t["tid"] for t in od["tracks"]]
    test.assertEqual(tids[-1], TID_MAIN)
    test.assertEqual(tids[:-1], list(range(len(tids) - 1)))
    for t in od["tracks"]:
        test.assertEqual(names[t["tid"]],
                         "main loop" if t["tid"] == TID_MAIN else "vCPU %d" % t["tid"])
        test.assertEqual(t["written"], len(tracks.get(t["tid"], [])))
        test.assertEqual(t["written"], min(t["recorded"], od["events_per_track"]))
        test.assertEqual(t["overwritten"], t["recorded"] - t["written"])
    return doc, tracks


def all_events(tracks):
    return [e for evs in tracks.values() for e in evs]


def api(sock, cmd, args=None, timeout=10):
    """One request on the control socket at SOCK; the reply object."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        req = {"id": 1, "cmd": cmd}
        if args is not None:
            req["args"] = args
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("%s closed the connection without a reply to %s" %
                                     (sock, cmd))
            buf += chunk
    finally:
        s.close()
    return json.loads(buf.split(b"\n", 1)[0])


def api_ok(test, sock, cmd, args=None):
    r = api(sock, cmd, args)
    test.assertTrue(r.get("ok"), "%s failed: %r" % (cmd, r))
    return r["result"]


class Trace(VmmuxTest):
    def trace_run(self, name, *args, **kw):
        """Run guest NAME with --trace and --stats-json: (Result, stats, doc,
        tracks)."""
        tp = self.path("trace.json")
        r, st = self.run_with_stats(name, "--trace", tp, *args, **kw)
        self.assertNoCrash(r)
        doc, tracks = load_trace(self, tp)
        return r, st, doc, tracks

    def assertMatchesStats(self, tracks, st):
        """The trace holds exactly the events the statistics count."""
        xs = all_events(tracks)
        per_type = collections.Counter(e["cat"] for e in xs)
        self.assertEqual({t: per_type.get(t, 0) for t in TYPES},
                         {t: st["types"][t]["count"] for t in TYPES})
        self.assertEqual(dict(collections.Counter(e["args"]["route"] for e in xs)),
                         {r["spec"]: r["count"] for r in st["routes"]})
        self.assertEqual(dict(collections.Counter(e["args"]["vmm"] for e in xs)),
                         {v["name"]: v["count"] for v in st["vmms"]})
        unrouted = collections.Counter(e["cat"] for e in xs if e["args"].get("unrouted"))
        self.assertEqual({t: unrouted.get(t, 0) for t in TYPES},
                         {t: st["types"][t]["unrouted"] for t in TYPES})

    def test_io_guest(self):
        # io.elf on one vCPU, its ports 0x80-0x81 routed to a monitor that
        # answers reads with 0xdeadbeef.
        read = 0xDEADBEEF
        mon, log = self.monitor("mon", read=hex(read))
        r, st, doc, tracks = self.trace_run("io.elf", *mon, "--route", "io:0x80-0x81=mon")
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(doc["otherData"]["events_per_track"], EVENTS_DEFAULT)
        self.assertEqual(sorted(tracks), [0], "only vCPU 0 saw events")
        self.assertEqual(doc["otherData"]["tracks"][1]["recorded"], 0)
        evs = tracks[0]
        names = collections.Counter(e["name"] for e in evs)
        mlog = self.read_log(log)
        uart = self.route_count(st, "io:0x3f8-0x3ff=uart")
        self.assertGreater(uart, 0)
        self.assertEqual(names, {
            "io 0x80": 6,                   # OUT 8/16/32, IN 8/16/32
            "io 0x81": len(mlog) - 6,       # the string I/O, as KVM delivered it
            "io 0x3f8": uart // 2,          # each byte printed: THR write ...
            "io 0x3fd": uart // 2,          # ... after an LSR poll
            "io 0xf4": 1,                   # the exit device
            "request exit": 1,              # which it raises
        })
        p80 = [e for e in evs if e["name"] == "io 0x80"]
        self.assertEqual([(e["args"]["write"], e["args"]["size"], e["args"]["value"])
                          for e in p80],
                         [(True, 1, "0x12"), (True, 2, "0x1234"), (True, 4, "0x12345678"),
                          (False, 1, "0xef"), (False, 2, "0xbeef"), (False, 4, "0xdeadbeef")])
        for e in evs:
            a = e["args"]
            self.assertEqual(a["generation"], 1)
            if e["name"] in ("io 0x80", "io 0x81"):
                self.assertEqual((e["cat"], a["vmm"], a["route"], a["src"], a["result"],
                                  a["depth"]),
                                 ("io", "mon", "io:0x80-0x81=mon", "vcpu 0", "done", 0))
            if e["name"] == "io 0x81" and a["count"] > 1:
                self.assertIsNone(a["value"], "string I/O carries no value")
        # The exit request is raised by the exit device while it handles the
        # OUT to 0xf4: one level deeper, inside the OUT's slice.
        out = next(e for e in evs if e["name"] == "io 0xf4")
        req = next(e for e in evs if e["name"] == "request exit")
        self.assertEqual((out["args"]["vmm"], out["args"]["depth"]), ("exit", 0))
        self.assertEqual((req["args"]["vmm"], req["args"]["src"], req["args"]["depth"],
                          req["args"]["route"], req["args"]["value"]),
                         ("main", "vmm exit", 1, "type:request=main", "0x1"))
        self.assertGreaterEqual(req["ts"], out["ts"])
        self.assertLessEqual(req["ts"] + req["dur"], out["ts"] + out["dur"] + 0.001)
        self.assertMatchesStats(tracks, st)

    def test_smp_tracks(self):
        # smp.elf on two vCPUs: each writes its index 1000 times to its port;
        # each vCPU's writes are on its own track.
        mon, log = self.monitor("mon")
        r, st, doc, tracks = self.trace_run("smp.elf", "--cpus", "2", *mon,
                                            "--route", "io:0x90-0x91=mon")
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual([t["name"] for t in doc["otherData"]["tracks"]],
                         ["vCPU 0", "vCPU 1", "main loop"])
        for cpu in (0, 1):
            mine = [e for e in tracks[cpu] if e["name"] == "io 0x%x" % (0x90 + cpu)]
            other = [e for e in tracks[cpu] if e["name"] == "io 0x%x" % (0x91 - cpu)]
            self.assertEqual(len(mine), SMP_WRITES, "vCPU %d" % cpu)
            self.assertEqual(other, [], "vCPU %d has the other vCPU's writes" % cpu)
            self.assertEqual({(e["args"]["vmm"], e["args"]["write"], e["args"]["value"],
                               e["args"]["src"]) for e in mine},
                             {("mon", True, "0x%x" % cpu, "vcpu %d" % cpu)})
        self.assertEqual(len(tracks[1]), SMP_WRITES, "vCPU 1 does nothing else")
        self.assertEqual(self.route_count(st, "io:0x90-0x91=mon"), 2 * SMP_WRITES)
        self.assertMatchesStats(tracks, st)

    def test_ring_bound(self):
        # A ring of 100 events per track, and 1000+ events on each vCPU: each
        # track holds its last 100.
        keep = 100
        r, st, doc, tracks = self.trace_run("smp.elf", "--cpus", "2", "--trace-events",
                                            str(keep), "--vmm", "w=sink",
                                            "--route", "io:0x90-0x91=w")
        self.assertStatus(r, exit_device_status(0))
        od = doc["otherData"]
        self.assertEqual(od["events_per_track"], keep)
        t0, t1, tm = od["tracks"]
        total = sum(st["types"][t]["count"] for t in TYPES)
        self.assertEqual(t0["recorded"] + t1["recorded"] + tm["recorded"], total)
        self.assertEqual(t1["recorded"], SMP_WRITES)
        self.assertGreater(t0["recorded"], SMP_WRITES)
        for t in (t0, t1):
            self.assertEqual(t["written"], keep)
            self.assertEqual(t["overwritten"], t["recorded"] - keep)
            self.assertEqual(len(tracks[t["tid"]]), keep)
        # vCPU 1's last 100 events are writes to its port; vCPU 0's are the
        # end of its writes, then what it printed (UART), then the exit.
        self.assertEqual({e["name"] for e in tracks[1]}, {"io 0x91"})
        uart = self.route_count(st, "io:0x3f8-0x3ff=uart")
        names0 = [e["name"] for e in tracks[0]]
        self.assertEqual(collections.Counter(names0), {
            "io 0x90": keep - uart - 2, "io 0x3f8": uart // 2, "io 0x3fd": uart // 2,
            "io 0xf4": 1, "request exit": 1})
        self.assertEqual(names0[:keep - uart - 2], ["io 0x90"] * (keep - uart - 2))
        self.assertEqual(names0[-2:], ["io 0xf4", "request exit"])

    def test_config_file(self):
        # "trace" and "trace_events" in the config file; the path is relative
        # to the file's directory.
        os.makedirs(self.path("cfg"))
        cfg = self.path("cfg/vm.json")
        with open(cfg, "w") as f:
            json.dump({"guest": {"kernel": guest("hello.elf")}, "trace": "t.json",
                       "trace_events": 7, "defaults": True}, f)
        r = self.vmmux("run", "--config", cfg)
        self.assertNoCrash(r)
        self.assertStatus(r, exit_device_status(0))
        doc, tracks = load_trace(self, self.path("cfg/t.json"))
        self.assertEqual(doc["otherData"]["events_per_track"], 7)
        self.assertEqual(len(tracks[0]), 7)
        self.assertEqual([e["name"] for e in tracks[0]][-2:], ["io 0xf4", "request exit"])
        # The command line overrides the file.
        r = self.vmmux("run", "--config", cfg, "--trace-events", "9", "--trace",
                       self.path("t2.json"))
        self.assertStatus(r, exit_device_status(0))
        doc, tracks = load_trace(self, self.path("t2.json"))
        self.assertEqual(doc["otherData"]["events_per_track"], 9)

    def test_bad_options(self):
        hello = guest("hello.elf")
        cases = [
            (["--trace", self.path("no/such/dir/t.json")], "no/such/dir/t.json"),
            (["--trace", ""], "--trace: the value is empty"),
            (["--trace-events", "0"], "--trace-events: 0 is not a valid number"),
            (["--trace-events", "1048577"], "--trace-events: 1048577 is not a valid number"),
            (["--trace-events", "many"], "--trace-events"),
            (["--trace-events"], "'--trace-events' needs an argument"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                r = self.vmmux("run", "--kernel", hello, *args)
                self.assertNoCrash(r)
                self.assertStatus(r, EXIT_USAGE)
                self.assertIn(msg, r.err)
        for value, msg in ((0, "trace_events: 0 is not a valid number"),
                           ("x", "trace_events"), (True, "trace_events"),
                           (12, "trace: expected")):
            with self.subTest(config=value):
                cfg = self.path("bad.json")
                doc = {"guest": {"kernel": hello}, "trace_events": value}
                if msg.startswith("trace:"):
                    doc = {"guest": {"kernel": hello}, "trace": value}
                with open(cfg, "w") as f:
                    json.dump(doc, f)
                r = self.vmmux("run", "--config", cfg)
                self.assertNoCrash(r)
                self.assertStatus(r, EXIT_USAGE)
                self.assertIn(msg, r.err)

    def test_run_that_fails_to_start(self):
        # A bad image: the run ends before the guest starts, and the trace is
        # still a valid (empty) document.
        bad = self.path("bad.elf")
        with open(bad, "wb") as f:
            f.write(b"\x7fELF" + bytes(60))
        tp = self.path("t.json")
        r = self.vmmux("run", "--kernel", bad, "--trace", tp)
        self.assertNoCrash(r)
        self.assertStatus(r, EXIT_IMAGE)
        doc, tracks = load_trace(self, tp)
        self.assertEqual(dict(tracks), {})


class Live(VmmuxTest):
    """A running VM watched through its control socket: hammer.elf on two
    vCPUs writes to ports 0x90 and 0x91 until a read of 0x92 gives non-zero;
    a sink VMM takes all three (reads 0), so it runs until a test ends it."""

    def start_hammer(self, *extra):
        sock = self.path("api.sock")
        b = self.start("run", "--kernel", guest("hammer.elf"), "--cpus", "2",
                       "--api-sock", sock, "--vmm", "w=sink", "--route", "io:0x90-0x91=w",
                       "--route", "io:0x92=w", *extra)
        wait_until("the control socket", lambda: os.path.exists(sock) or not b.running())
        self.assertTrue(b.running(), "vmmux ended at start: %s" % b.err())
        return b, sock

    def end_hammer(self, b, sock):
        """Let the guest finish: 0x92 now reads 1."""
        api_ok(self, sock, "vmm.add", {"spec": "stop=sink,read=1"})
        api_ok(self, sock, "routes.replace", {"spec": "io:0x92=stop"})
        r = b.finish()
        self.assertNoCrash(r)
        self.assertStatus(r, exit_device_status(0))
        self.assertRegex(r.out, r"hammer done \d+ \d+")
        return r

    def wait_events(self, sock, n=1000):
        """Wait until the guest has made N events (so that rates are set)."""
        wait_until("%d events" % n,
                   lambda: api_ok(self, sock, "metrics.get")["events_total"] >= n,
                   interval=0.05)

    def top(self, *args, env=None):
        return self.vmmux("top", *args, env=env, timeout=30)

    def test_metrics_get(self):
        b, sock = self.start_hammer()
        self.wait_events(sock)
        m1 = api_ok(self, sock, "metrics.get")
        time.sleep(0.3)
        m2 = api_ok(self, sock, "metrics.get")
        for m in (m1, m2):
            self.assertEqual(set(m), {"uptime_s", "interval_s", "generation", "events_total",
                                      "events_rate_per_s", "unrouted_total", "types",
                                      "routes", "vmms"})
            self.assertEqual(set(m["types"]), set(TYPES))
            for t in m["types"].values():
                self.assertEqual(set(t), {"count", "rate_per_s", "latency_p50_ns",
                                          "latency_p99_ns", "latency_max_ns", "unrouted"})
                self.assertGreaterEqual(t["rate_per_s"], 0)
                self.assertLessEqual(t["latency_p50_ns"], t["latency_p99_ns"])
                self.assertLessEqual(t["latency_p99_ns"], t["latency_max_ns"])
            for r in m["routes"]:
                self.assertEqual(set(r), {"spec", "vmm", "implicit", "count", "rate_per_s",
                                          "latency_p50_ns", "latency_p99_ns",
                                          "latency_max_ns"})
                self.assertGreaterEqual(r["rate_per_s"], 0)
            for v in m["vmms"]:
                self.assertEqual(set(v), {"id", "name", "placement", "where", "requests_total",
                                          "rate_per_s", "requests_inflight",
                                          "service_time_ewma_ns", "cpu_time_ns",
                                          "cpu_permille", "healthy", "restarts",
                                          "latency_p50_ns", "latency_p99_ns",
                                          "latency_max_ns"})
                self.assertGreaterEqual(v["rate_per_s"], 0)
            self.assertEqual(m["generation"], 1)
        self.assertGreater(m2["uptime_s"], m1["uptime_s"])
        self.assertGreaterEqual(m2["interval_s"], 0.3)
        self.assertLess(m2["interval_s"], 10)
        # The guest's writes: counts grow between the samples, at a positive
        # rate that is the growth over the interval.
        io1, io2 = m1["types"]["io"], m2["types"]["io"]
        self.assertGreater(io2["count"], io1["count"])
        self.assertAlmostEqual(io2["rate_per_s"],
                               (io2["count"] - io1["count"]) / m2["interval_s"],
                               delta=0.01 * io2["rate_per_s"] + 1)
        self.assertGreater(io2["latency_p50_ns"], 0)
        route = {r["spec"]: r for r in m2["routes"]}
        self.assertEqual(route["io:0x90-0x91=w"]["vmm"], "w")
        self.assertFalse(route["io:0x90-0x91=w"]["implicit"])
        self.assertTrue(route["type:io=main"]["implicit"])
        self.assertGreater(route["io:0x90-0x91=w"]["rate_per_s"], 0)
        r1 = {r["spec"]: r["count"] for r in m1["routes"]}
        self.assertGreater(route["io:0x90-0x91=w"]["count"], r1["io:0x90-0x91=w"])
        vmm = {v["name"]: v for v in m2["vmms"]}
        self.assertEqual(vmm["main"]["id"], 0)
        w = vmm["w"]
        self.assertGreater(w["requests_total"], 0)
        self.assertGreater(w["rate_per_s"], 0)
        self.assertTrue(w["healthy"])
        self.assertGreater(w["service_time_ewma_ns"], 0)
        self.assertEqual(w["placement"], "parallel" if PARALLEL else "in-process")
        if PARALLEL:
            self.assertEqual(w["where"], "pid %d" % w_pid(b.pid))
        else:
            self.assertEqual((w["where"], w["cpu_time_ns"], w["cpu_permille"]),
                             ("in-process", 0, 0))
        self.assertEqual(m2["events_total"],
                         sum(t["count"] for t in m2["types"].values()))
        self.end_hammer(b, sock)

    def test_top_once(self):
        b, sock = self.start_hammer()
        self.wait_events(sock)
        screens = []
        for _ in range(2):
            r = self.top("--api-sock", sock, "--once")
            self.assertNoCrash(r)
            self.assertStatus(r, 0)
            self.assertNotIn("\x1b", r.out, "--once prints no escape codes")
            screens.append(parse_top(self, r.out))
            time.sleep(0.2)
        for s in screens:
            self.assertIn("io", s["TYPE"])
            self.assertIn("io:0x90-0x91=w", s["ROUTE"])
            self.assertIn("w", s["VMM"])
            self.assertIn("main", s["VMM"])
            self.assertEqual(s["ROUTE"]["io:0x90-0x91=w"][0], "w")
        a, c = screens
        self.assertGreater(int(c["TYPE"]["io"][1]), int(a["TYPE"]["io"][1]))
        self.assertGreater(int(c["ROUTE"]["io:0x90-0x91=w"][2]),
                           int(a["ROUTE"]["io:0x90-0x91=w"][2]))
        self.assertGreater(int(c["VMM"]["w"][2]), int(a["VMM"]["w"][2]))
        self.assertGreater(float(c["TYPE"]["io"][0]), 0)
        where = c["VMM"]["w"][0]
        self.assertEqual(where, "pid %d" % w_pid(b.pid) if PARALLEL else "in-process")
        # Sorted by rate: io is the busiest type.
        self.assertEqual(next(iter(c["TYPE"])), "io")
        self.end_hammer(b, sock)

    def test_top_screens(self):
        # Without --once, on a pipe: screen after screen, plain text; the
        # socket also comes from the environment.
        b, sock = self.start_hammer()
        r = self.top("--count", "3", "--interval", "0.1", env={"VMMUX_API_SOCK": sock})
        self.assertNoCrash(r)
        self.assertStatus(r, 0)
        self.assertEqual(r.out.count("vmmux top - %s" % sock), 3)
        self.assertNotIn("\x1b", r.out)
        self.end_hammer(b, sock)

    def test_top_sees_the_end(self):
        # top watches until the run ends, then says so and exits 0.
        b, sock = self.start_hammer()
        top = subprocess.Popen([VMMUX, "top", "--api-sock", sock, "--interval", "0.05"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(0.5)
            self.assertIsNone(top.poll(), "top ended early")
            self.end_hammer(b, sock)
            out, err = top.communicate(timeout=30)
        finally:
            if top.poll() is None:
                top.kill()
                top.wait()
        self.assertEqual(top.returncode, 0, err)
        self.assertIn(b"the run ended", err)
        self.assertIn(b"vmmux top - ", out)

    def test_main_loop_track(self):
        # An event the host raises through the control API is handled on the
        # main loop: it goes to the main loop's track.
        tp = self.path("t.json")
        b, sock = self.start_hammer("--trace", tp, "--trace-events", "1000")
        self.wait_events(sock)
        api_ok(self, sock, "platform.raise", {"event": "smi", "value": "0x42"})
        self.end_hammer(b, sock)
        doc, tracks = load_trace(self, tp)
        main = tracks[TID_MAIN]
        self.assertEqual([(e["name"], e["args"]["src"], e["args"]["vmm"], e["args"]["value"],
                           e["args"]["depth"]) for e in main],
                         [("platform smi", "host", "smm", "0x42", 0)])
        self.assertEqual(tracks[0][-1]["name"], "request exit")
        # The read of 0x92 that ended each vCPU's loop went to the VMM of the
        # replaced route, through a later generation of the table than the
        # writes before it.
        for cpu in (0, 1):
            last = [e for e in tracks[cpu] if e["name"] == "io 0x92"][-1]
            self.assertEqual((last["args"]["vmm"], last["args"]["value"]), ("stop", "0x1"))
            self.assertGreater(last["args"]["generation"], 1)
            first = tracks[cpu][0]
            self.assertLessEqual(first["args"]["generation"], last["args"]["generation"])

    def test_top_errors(self):
        nowhere = self.path("nowhere.sock")
        r = self.top("--api-sock", nowhere, "--once")
        self.assertNoCrash(r)
        self.assertStatus(r, EXIT_HOST)
        self.assertIn("cannot connect to the control socket %s" % nowhere, r.err)
        # A path that is not a socket.
        plain = self.path("plain")
        open(plain, "w").close()
        r = self.top("--api-sock", plain, "--once")
        self.assertStatus(r, EXIT_HOST)
        self.assertIn(plain, r.err)
        env = {"VMMUX_API_SOCK": ""}
        for args, msg in (([], "--api-sock PATH is required"),
                          (["--api-sock", nowhere, "--interval", "0"], "--interval: '0'"),
                          (["--api-sock", nowhere, "--interval", "soon"], "--interval"),
                          (["--api-sock", nowhere, "--interval", "2h"], "--interval"),
                          (["--api-sock", nowhere, "--count", "0"], "--count"),
                          (["--api-sock", nowhere, "--bogus"], "unknown option '--bogus'"),
                          (["--api-sock", nowhere, "extra"], "unexpected argument 'extra'"),
                          (["--api-sock"], "needs an argument"),
                          (["--api-sock", "x" * 200], "longer than 107 bytes")):
            with self.subTest(args=args):
                r = self.top(*args, env=env)
                self.assertNoCrash(r)
                self.assertStatus(r, EXIT_USAGE)
                self.assertIn(msg, r.err)
                self.assertIn("Try 'vmmux top --help'", r.err)
        a, h = self.vmmux("help", "top"), self.vmmux("top", "--help")
        self.assertStatus(a, 0)
        self.assertEqual(a.out, h.out)
        for o in ("--api-sock", "--once", "--interval", "--count"):
            self.assertIn(o, a.out)
        self.assertIn("top", self.vmmux("--help").out)


def w_pid(vmmux_pid):
    """The pid of the parallel VMM 'w' of the vmmux process VMMUX_PID."""
    from harness import vmm_pids
    return vmm_pids(vmmux_pid)["w"]


def parse_top(test, text):
    """The tables of a top screen: {"TYPE"|"ROUTE"|"VMM": {label: [columns
    after the label]}} in screen order."""
    tables = {}
    cur = None
    lines = text.splitlines()
    test.assertTrue(lines[0].startswith("vmmux top - "), text)
    test.assertRegex(lines[1], r"^events \d+ total, [0-9.]+/s   unrouted \d+$")
    for line in lines[2:]:
        f = line.split()
        if not f:
            cur = None
            continue
        if f[0] in ("TYPE", "ROUTE", "VMM") and cur is None:
            cur = tables.setdefault(f[0], {})
            continue
        test.assertIsNotNone(cur, "a row outside a table: %r" % line)
        if f[0] == "main" or cur is tables.get("VMM"):
            # VMM rows: name, where (may be "pid N"), then the numbers
            if len(f) > 1 and f[1] == "pid":
                f = [f[0], "pid " + f[2]] + f[3:]
        cur[f[0]] = f[1:]
    return tables
