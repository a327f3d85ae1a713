"""The control socket (vmmux run --api-sock PATH) and its client, vmmux ctl:
every command through both, every bad input (each answered, none disturbing
the guest), the socket's access rules and life, and routes changed and VMMs
swapped while the guest runs, with every event accounted for."""
import json
import os
import re
import signal
import socket
import stat
import threading

from harness import (EXIT_POWEROFF, EXIT_USAGE, ApiClient, VmmuxTest, exit_device_status,
                     guest, run_ctl, run_vmmux, wait_for_socket, wait_until)

API_LINE_MAX = 65536  # src/api/api.h
API_CLIENTS_MAX = 16
CTL_ERROR = 1  # src/cli/ctl.h
CTL_CONNECT = 6
NOBODY = 65534

COMMANDS = ["ping", "version", "routes.list", "routes.add", "routes.delete", "routes.replace",
            "routes.batch", "vmms.list", "vmm.add", "vmm.start", "vmm.stop", "vmm.restart",
            "vmm.swap", "platform.raise", "snapshot", "update", "stats.get", "metrics.get"]
DEFAULT_VMMS = ["main", "uart", "exit", "chipset", "smm", "fault"]


def count_lines(path):
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return f.read().count(b"\n")


class ApiTest(VmmuxTest):
    """A guest with a control socket, and ways to talk to it."""

    def start_idle(self, *extra, sock=None):
        """hlt.elf with the in-kernel irqchip: it prints 'before hlt', then
        its vCPU halts inside KVM and the guest idles until the test powers
        it off; a watchdog bounds the run."""
        self.sock = sock or self.path("api.sock")
        self.bg = self.start("run", "--kernel", guest("hlt.elf"), "--irqchip", "--watchdog",
                             "60s", "--api-sock", self.sock, *extra)
        wait_for_socket(self.sock, self.bg)
        wait_until("the guest halted", lambda: self.bg.out() == "before hlt\n")
        return self.bg

    def start_portseq(self, *extra, sock=None):
        """portseq.elf: numbered values over ports 0x80-0x87 (to the monitor
        mon1, logging to self.m1) until port 0x88 reads non-zero (the sink
        'gate' reads 0 until the test routes 0x88 to main)."""
        self.sock = sock or self.path("api.sock")
        self.m1 = self.path("m1.jsonl")
        self.bg = self.start("run", "--kernel", guest("portseq.elf"), "--watchdog", "120s",
                             "--api-sock", self.sock, "--vmm", "mon1=monitor,output=" + self.m1,
                             "--vmm", "gate=sink", "--route", "io:0x80-0x87=mon1", "--route",
                             "io:0x88=gate", *extra)
        wait_for_socket(self.sock, self.bg)
        return self.bg

    def end_portseq(self):
        """Open the gate: the guest stops, prints how many values it wrote
        and exits; returns that number."""
        ApiClient(self.sock).call("routes.replace", {"spec": "io:0x88=main"})
        r = self.bg.finish(timeout=60)
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        m = re.fullmatch(r"portseq (\d+)\n", r.out)
        self.assertIsNotNone(m, r)
        return int(m.group(1)), r

    def writes(self, log):
        """The port writes a monitor logged: [(value, port, generation)]."""
        return [(int(e["value"], 16), int(e["key"], 16), e["gen"]) for e in self.read_log(log)
                if e["type"] == "io" and e.get("write")]

    def assertSequence(self, logs, n):
        """The monitors' LOGS hold every value 0..N-1 exactly once, each on
        its port, in order, split between them in this order at one point
        each. Returns the values of each log."""
        parts = [self.writes(log) for log in logs]
        start = 0
        for log, part in zip(logs, parts):
            values = [v for v, _, _ in part]
            self.assertEqual(values, list(range(start, start + len(values))),
                             "%s does not continue the sequence at %d" % (log, start))
            for v, port, _ in part:
                self.assertEqual(port, 0x80 + v % 8, "value %d on port %#x" % (v, port))
            start += len(values)
        self.assertEqual(start, n, "the guest wrote %d values, the monitors saw %d" % (n, start))
        return parts

    def ctl(self, *args, sock=None, **kw):
        """vmmux ctl on this test's socket (or SOCK); it must not crash."""
        r = run_ctl(sock or self.sock, *args, **kw)
        self.assertNoCrash(r)
        return r

    def client(self):
        c = ApiClient(self.sock)
        self.addCleanup(c.close)
        return c

    def power_off(self, out="before hlt\n"):
        """End the idle guest through the socket: status 0, its output
        exactly OUT, the socket gone."""
        r = self.ctl("raise", "poweroff")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "event: poweroff\nvalue: 0\n")
        res = self.bg.finish()
        self.assertStatus(res, EXIT_POWEROFF)
        self.assertNoCrash(res)
        self.assertEqual(res.out, out)
        self.assertFalse(os.path.lexists(self.sock), "the socket was not removed at exit")
        return res

    def assertError(self, reply, code, fragment, rid=None):
        self.assertIs(reply["ok"], False, reply)
        self.assertEqual(reply["id"], rid, reply)
        self.assertEqual(reply["error"]["code"], code, reply)
        self.assertIn(fragment, reply["error"]["message"], reply)
        self.assertEqual(set(reply), {"id", "ok", "error"})


# ---- every command -----------------------------------------------------------

class Ctl(ApiTest):
    def test_every_command_through_ctl(self):
        self.start_idle("--log-level", "info")
        version = run_vmmux("--version").out.split()[1]

        r = self.ctl("ping")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "pong: true\n")
        r = self.ctl("version")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "version: %s\nprotocol: 1\ncommands: %s\n" %
                         (version, ", ".join(COMMANDS)))

        # The table as vmmux routes shows it: keyed routes, then type defaults.
        r = self.ctl("routes")
        self.assertStatus(r, 0)
        lines = r.out.splitlines()
        self.assertEqual(lines[0], "generation: 1")
        self.assertEqual(lines[1].split(), ["SPEC", "VMM", "KIND"])
        self.assertIn(["io:0x3f8-0x3ff=uart", "uart", "io"], [l.split() for l in lines])
        self.assertIn(["type:io=main", "main", "type", "default"], [l.split() for l in lines])
        self.assertEqual(lines[-1].split(), ["type:fault=main", "main", "type", "default"])
        self.assertEqual(self.ctl("routes", "list").out, r.out)
        j = json.loads(self.ctl("--json", "routes").out)
        self.assertEqual(j["generation"], 1)
        self.assertIn({"spec": "platform:smi=smm", "vmm": "smm", "kind": "platform",
                       "implicit": False}, j["routes"])

        r = self.ctl("vmms")
        self.assertStatus(r, 0)
        rows = [l.split() for l in r.out.splitlines()]
        self.assertEqual(rows[0][:6], ["ID", "NAME", "ROLE", "PLACEMENT", "STATE", "PID"])
        self.assertEqual([row[1] for row in rows[1:]], DEFAULT_VMMS)
        self.assertEqual(self.ctl("vmm", "list").out, r.out)

        # A VMM added at run time, routes to it, changed and deleted.
        log = self.path("mon.jsonl")
        r = self.ctl("vmm", "add", "mon=monitor,output=" + log)
        self.assertStatus(r, 0)
        self.assertRegex(r.out, r"^name: mon\nstate: (in-process|up)\nid: 6\n$")
        j = json.loads(self.ctl("--json", "vmms").out)
        self.assertEqual([v["name"] for v in j["vmms"]], DEFAULT_VMMS + ["mon"])
        r = self.ctl("routes", "add", "io:0x80-0x8f=mon")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "generation: 2\nchanges: 1\n")
        r = self.ctl("routes", "replace", "io:0x80-0x8f=main;from=mon")
        self.assertStatus(r, CTL_ERROR)  # a different source: not the same route
        r = self.ctl("routes", "replace", "io:0x80-0x8f=main")
        self.assertEqual(r.out, "generation: 3\nchanges: 1\n")
        r = self.ctl("routes", "batch", "add:io:0x90=mon", "delete:io:0x80-0x8f")
        self.assertEqual(r.out, "generation: 4\nchanges: 2\n")
        specs = [x["spec"] for x in json.loads(self.ctl("--json", "routes").out)["routes"]]
        self.assertIn("io:0x90=mon", specs)
        self.assertNotIn("io:0x80-0x8f=main", specs)
        with open(self.path("batch.json"), "w") as f:
            json.dump([{"op": "replace", "spec": "io:0x90=main"},
                       {"op": "add", "spec": "mmio:0xd0000000+0x1000=mon"}], f)
        with open(self.path("batch.json")) as f:
            r = self.ctl("routes", "batch", "-", stdin=f)
        self.assertEqual(r.out, "generation: 5\nchanges: 2\n", r)
        r = self.ctl("routes", "delete", "mmio:0xd0000000-0xd0000fff")
        self.assertEqual(r.out, "generation: 6\nchanges: 1\n", r)
        self.assertEqual(self.ctl("routes", "delete", "io:0x90=main").out,
                         "generation: 7\nchanges: 1\n")

        # Its life.
        r = self.ctl("vmm", "stop", "mon")
        self.assertEqual(r.out, "name: mon\nstate: stopped\n", r)
        r = self.ctl("vmm", "start", "mon")
        self.assertRegex(r.out, r"^name: mon\nstate: (in-process|up)\n$")
        r = self.ctl("vmm", "restart", "mon")
        self.assertStatus(r, 0)
        self.assertRegex(r.out, r"^name: mon\nstate: (in-process|up)\n$")
        log2 = self.path("mon2.jsonl")
        r = self.ctl("vmm", "swap", "mon", "mon=monitor,output=" + log2)
        self.assertStatus(r, 0)
        self.assertRegex(r.out, r"^name: mon\nstate: (in-process|up)\n$")
        with open(self.path("vmm.json"), "w") as f:
            json.dump({"role": "monitor", "output": self.path("mon3.jsonl")}, f)
        with open(self.path("vmm.json")) as f:
            r = self.ctl("vmm", "swap", "mon", "-", stdin=f)
        self.assertStatus(r, 0)
        with open(self.path("vmm.json"), "w") as f:
            json.dump({"name": "mon4", "role": "sink", "args": {"read": 7}}, f)
        with open(self.path("vmm.json")) as f:
            r = self.ctl("vmm", "add", "-", stdin=f)
        self.assertRegex(r.out, r"^name: mon4\nstate: (in-process|up)\nid: 7\n$")
        rows = [l.split() for l in self.ctl("vmms").out.splitlines()[1:]]
        self.assertEqual([row[1] for row in rows], DEFAULT_VMMS + ["mon", "mon4"])
        self.assertEqual(rows[6][:3], ["6", "mon", "monitor"])

        # Platform events, statistics.
        r = self.ctl("raise", "smi", "0x42")
        self.assertEqual(r.out, "event: smi\nvalue: 66\n", r)
        r = self.ctl("stats")
        self.assertStatus(r, 0)
        self.assertRegex(r.out, r"(?m)^types\.io\.count: \d+$")
        self.assertRegex(r.out, r"(?m)^vmms\[0\]\.name: ")
        st = json.loads(self.ctl("--json", "stats").out)
        self.assertEqual(set(st) >= {"types", "routes", "vmms"}, True, st)
        self.assertGreaterEqual(st["types"]["platform"]["count"], 1)  # the SMI
        self.assertGreaterEqual(self.route_count(st, "platform:smi=smm"), 1)
        r = self.ctl("metrics")
        self.assertStatus(r, 0)
        m = json.loads(self.ctl("--json", "metrics").out)
        self.assertIsInstance(m, dict)
        self.assertIn("vmms", m)
        self.assertStatus(self.ctl("call", "ping"), 0)
        self.assertEqual(json.loads(self.ctl("--json", "call", "routes.add",
                                             '{"spec": "io:0x70=mon4"}').out),
                         {"generation": 8, "changes": 1})

        res = self.power_off()
        self.assertIn("SMI 1 serviced: APM command 0x42", res.err)
        self.assertIn("vmm 'mon' swapped for a new instance", res.err)

    def test_every_command_through_a_raw_socket(self):
        self.start_idle()
        c = self.client()
        self.assertEqual(c.request("ping", rid="a"), {"id": "a", "ok": True,
                                                      "result": {"pong": True}})
        # any JSON scalar is an id, and comes back as it went
        for rid in (0, -3, 2.5, True, None, "x" * 100, "\u00e9\u6f22"):
            self.assertEqual(c.request("ping", rid=rid)["id"], rid)
        v = c.call("version")
        self.assertEqual(v["commands"], COMMANDS)
        self.assertEqual(v["protocol"], 1)

        routes = c.call("routes.list")
        self.assertEqual(routes["generation"], 1)
        self.assertIn({"spec": "type:hlt=main", "vmm": "main", "kind": "type",
                       "implicit": True}, routes["routes"])
        vmms = c.call("vmms.list")["vmms"]
        self.assertEqual([x["name"] for x in vmms], DEFAULT_VMMS)
        for x in vmms:
            self.assertTrue({"id", "name", "role", "placement", "state", "pid", "restarts",
                             "requests_inflight", "requests_total", "service_time_ewma_ns",
                             "cpu_time_ns", "healthy"} <= set(x), x)

        log = self.path("mon.jsonl")
        r = c.call("vmm.add", {"vmm": {"name": "mon", "role": "monitor", "output": log,
                                       "args": {"read": "0x5a"}}})
        self.assertEqual((r["name"], r["id"]), ("mon", 6))
        r = c.call("vmm.add", {"spec": "mon2=sink,read=1"})
        self.assertEqual((r["name"], r["id"]), ("mon2", 7))
        self.assertEqual(c.call("routes.add", {"spec": "io:0x80=mon"}),
                         {"generation": 2, "changes": 1})
        self.assertEqual(c.call("routes.replace", {"spec": "io:0x80=mon2"})["generation"], 3)
        self.assertEqual(c.call("routes.delete", {"spec": "io:0x80"})["generation"], 4)
        self.assertEqual(c.call("routes.batch", {"changes": [
            {"op": "add", "spec": "io:0x80-0x81=mon"},
            {"op": "add", "spec": "msr:0x40001000=mon2"},
            {"op": "replace", "spec": "io:0x80-0x81=mon2"}]}), {"generation": 5, "changes": 3})
        specs = [x["spec"] for x in c.call("routes.list")["routes"]]
        self.assertIn("io:0x80-0x81=mon2", specs)
        self.assertIn("msr:0x40001000=mon2", specs)
        self.assertEqual(c.call("vmm.stop", {"name": "mon"})["state"], "stopped")
        self.assertIn(c.call("vmm.start", {"name": "mon"})["state"], ("in-process", "up"))
        self.assertIn(c.call("vmm.restart", {"name": "mon"})["state"], ("in-process", "up"))
        self.assertEqual(c.call("vmm.swap", {"name": "mon", "spec": "mon=sink"})["name"], "mon")
        self.assertEqual(c.call("vmm.swap", {"name": "mon2", "vmm": {
            "name": "mon2", "role": "monitor", "output": log}})["name"], "mon2")
        roles = {x["name"]: x["role"] for x in c.call("vmms.list")["vmms"]}
        self.assertEqual((roles["mon"], roles["mon2"]), ("sink", "monitor"))

        self.assertEqual(c.call("platform.raise", {"event": "SMI", "value": 66}),
                         {"event": "smi", "value": 66})
        self.assertEqual(c.call("platform.raise", {"event": "smi", "value": "0x43"}),
                         {"event": "smi", "value": 67})
        st = c.call("stats.get")
        self.assertEqual(st["types"]["platform"]["count"], 2)
        self.assertIsInstance(c.call("metrics.get"), dict)
        # A reset: the guest boots again.
        self.assertEqual(c.call("platform.raise", {"event": "reset"}),
                         {"event": "reset", "value": 0})
        wait_until("the second boot", lambda: self.bg.out() == "before hlt\nbefore hlt\n")
        self.power_off(out="before hlt\nbefore hlt\n")

    def test_pipelined_requests(self):
        # Thousands of requests in one go (more than the input buffer holds):
        # answered in order, a few at a time, while another client is served.
        self.start_idle()
        a, b = self.client(), self.client()
        n = 6000
        a.send("".join('{"id": %d, "cmd": "ping"}\n' % i for i in range(n)))
        self.assertEqual(b.request("version")["ok"], True)
        for i in range(n):
            self.assertEqual(a.read_reply(), {"id": i, "ok": True, "result": {"pong": True}})
        self.assertEqual(a.request("ping", rid="last")["id"], "last")
        self.power_off()

    def test_help(self):
        r = run_vmmux("ctl", "--help")
        self.assertStatus(r, 0)
        for word in ("ping", "version", "routes [list]", "routes add SPEC", "routes delete SPEC",
                     "routes replace SPEC", "routes batch OP:SPEC", "vmms", "vmm add",
                     "vmm start NAME", "vmm stop NAME", "vmm restart NAME", "vmm swap NAME",
                     "raise EVENT [VALUE]", "stats", "metrics", "--json", "--api-sock PATH",
                     "--timeout", "VMMUX_API_SOCK", "Exit status"):
            self.assertIn(word, r.out)
        for cmd in COMMANDS:
            self.assertIn("[%s]" % cmd, r.out)
        self.assertEqual(run_vmmux("help", "ctl").out, r.out)
        self.assertEqual(run_vmmux("ctl", "-h").out, r.out)
        self.assertIn("--api-sock PATH", run_vmmux("run", "--help").out)
        self.assertIn("ctl", run_vmmux("--help").out)


class CtlErrors(ApiTest):
    def test_exit_statuses(self):
        missing = self.path("none.sock")
        r = self.ctl("ping", sock=missing)
        self.assertStatus(r, CTL_CONNECT)
        self.assertIn("cannot connect to the control socket %s: No such file or directory"
                      % missing, r.err)
        with open(self.path("file"), "w") as f:
            f.write("x")
        r = self.ctl("ping", sock=self.path("file"))
        self.assertStatus(r, CTL_CONNECT)
        self.assertIn("%s: Connection refused" % self.path("file"), r.err)

        for args, msg in [((), "no command given"),
                          (("frobnicate",), "unknown command 'frobnicate'"),
                          (("routes", "add"), "routes: missing argument (routes add SPEC)"),
                          (("routes", "add", "a", "b"), "unexpected argument 'b'"),
                          (("routes", "move", "x"), "unknown subcommand 'move'"),
                          (("routes", "batch"), "missing changes"),
                          (("routes", "batch", "io:0x80=main"), "is not OP:SPEC"),
                          (("vmm",), "missing subcommand"),
                          (("vmm", "swap", "a"), "vmm: missing argument"),
                          (("raise", "smi", "12X"), "raise: VALUE"),
                          (("ping", "extra"), "unexpected argument 'extra'"),
                          (("--timeout", "5", "ping"), "--timeout"),
                          (("--bogus", "ping"), "unknown option '--bogus'"),
                          (("call", "ping", "{bad"), "not valid JSON"),
                          (("--api-sock",), "needs an argument")]:
            r = self.ctl(*args, sock=missing)
            self.assertStatus(r, EXIT_USAGE)
            self.assertIn(msg, r.err, args)
            self.assertIn("Try 'vmmux ctl --help'", r.err)
        r = run_vmmux("ctl", "ping", env={"VMMUX_API_SOCK": ""})
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("give --api-sock PATH (or set VMMUX_API_SOCK)", r.err)

        self.start_idle()
        r = run_vmmux("ctl", "ping", env={"VMMUX_API_SOCK": self.sock})
        self.assertStatus(r, 0)
        for args, msg in [(("routes", "add", "io:0x3f8=main"),
                           "routes.add: route 'io:0x3f8=main' overlaps route "
                           "'io:0x3f8-0x3ff=uart' at port 0x3f8 (failed)"),
                          (("routes", "add", "io:0x80=nosuch"), "nosuch"),
                          (("routes", "delete", "io:0x1234"), "(failed)"),
                          (("vmm", "start", "nosuch"), "no VMM named 'nosuch' (failed)"),
                          (("vmm", "add", "uart=uart16550"), "(failed)"),
                          (("vmm", "add", "x=nosuchrole"), "unknown role 'nosuchrole'"),
                          (("raise", "explode"), "'explode' is not a platform event "
                           "(smi, reset, poweroff, powerbtn, watchdog) (bad_args)"),
                          (("call", "nosuch.cmd"), "unknown command 'nosuch.cmd'"),
                          (("call", "ping", "[1]"), "args: expected an object")]:
            r = self.ctl(*args)
            self.assertStatus(r, CTL_ERROR)
            self.assertIn(msg, r.err, args)
            self.assertEqual(r.out, "")
        self.assertEqual(json.loads(self.ctl("--json", "routes").out)["generation"], 1)
        self.power_off()

    def test_no_reply(self):
        # A socket that accepts and never answers: the timeout; one that
        # closes at once: the connection lost. Both status 6.
        def listener(name):
            path = self.path(name)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(path)
            srv.listen(4)
            self.addCleanup(srv.close)
            return path, srv
        path, srv = listener("mute.sock")
        r = self.ctl("--timeout", "200ms", "ping", sock=path)
        self.assertStatus(r, CTL_CONNECT)
        self.assertIn("%s: no reply within the timeout" % path, r.err)
        path, srv = listener("closing.sock")

        def close_at_once():
            conn, _ = srv.accept()
            conn.close()
        t = threading.Thread(target=close_at_once)
        t.start()
        r = self.ctl("ping", sock=path)
        t.join()
        self.assertStatus(r, CTL_CONNECT)
        self.assertIn("%s: the connection was closed before the reply" % path, r.err)


# ---- bad input: each answered, the connection and the guest unharmed ---------

class BadInput(ApiTest):
    def test_bad_json(self):
        self.start_idle()
        c = self.client()
        for line in (b"{not json", b"\xff\xfe", b'{"id":1,\x00"cmd":"ping"}',
                     b'{"id":1,"id":2,"cmd":"ping"}', b'{"id":1,"cmd":"ping"} x', b"{",
                     b'{"id":99999999999999999999999,"cmd":"ping"}'):
            c.send(line + b"\n")
            self.assertError(c.read_reply(), "bad_json", "the request line is not valid JSON")
            self.assertEqual(c.request("ping")["result"], {"pong": True})  # still served
        c.send(b'{"id":1,"id":2,"cmd":"ping"}\n')
        self.assertIn("duplicate", c.read_reply()["error"]["message"])
        # blank lines are not requests: no reply
        c.send(b"\n  \r\n\t\n")
        self.assertEqual(c.request("ping", rid="after blanks")["id"], "after blanks")
        self.power_off()

    def test_bad_requests(self):
        self.start_idle()
        c = self.client()
        for line, rid, msg in [
                ("[1, 2]", None, "the request is an array, not an object"),
                ('"ping"', None, "the request is the string \"ping\", not an object"),
                ("5", None, "the request is the number 5"),
                ("null", None, "the request is null"),
                ('{"cmd": "ping"}', None, "id: missing"),
                ('{"id": {"a": 1}, "cmd": "ping"}', None, "id: expected a string, a number"),
                ('{"id": [1], "cmd": "ping"}', None, "got an array"),
                ('{"id": 7}', 7, "cmd: missing"),
                ('{"id": 8, "cmd": 5}', 8, "cmd: expected a string, got the number 5"),
                ('{"id": 9, "cmd": "ping", "extra": 1}', 9,
                 "extra: unknown key (a request takes id, cmd and args)"),
                ('{"id": "s", "cmd": "ping", "args": [1]}', "s",
                 "args: expected an object, got an array")]:
            c.send(line + "\n")
            reply = c.read_reply()
            code = "bad_args" if "args:" in msg else "bad_request"
            self.assertError(reply, code, msg, rid)
        c.send('{"id": "u", "cmd": "reboot"}\n')
        r = c.read_reply()
        self.assertError(r, "unknown_command", "unknown command 'reboot' (commands: ", "u")
        for cmd in COMMANDS:
            self.assertIn(cmd, r["error"]["message"])
        self.assertEqual(c.request("ping")["ok"], True)
        self.power_off()

    def test_bad_args(self):
        self.start_idle()
        c = self.client()
        cases = [
            ("ping", {"x": 1}, "args.x: unknown argument (ping takes none)"),
            ("routes.add", {}, "args.spec: missing (routes.add needs a string)"),
            ("routes.add", {"spec": 5}, "args.spec: expected a string, got the number 5"),
            ("routes.add", {"spec": "io:0x80=main", "vmm": "x"},
             "args.vmm: unknown argument (routes.add takes spec)"),
            ("routes.add", {"spec": ""}, "args.spec: the route spec is empty"),
            ("routes.add", {"spec": "io:0x80=" + "m" * 300},
             "args.spec: route 'io:0x80=mmm"),
            ("routes.delete", {"spec": None}, "args.spec: expected a string, got null"),
            ("routes.batch", {"changes": []}, "args.changes: empty"),
            ("routes.batch", {"changes": "add"}, "args.changes: expected an array"),
            ("routes.batch", {"changes": [1]}, "args.changes[0]: expected an object"),
            ("routes.batch", {"changes": [{"op": "add", "spec": "io:0x80=main"},
                                          {"op": "move", "spec": "io:0x80=main"}]},
             "args.changes[1].op: 'move' is not an operation (add, delete, replace)"),
            ("routes.batch", {"changes": [{"op": "add"}]}, "args.changes[0].spec: missing"),
            ("routes.batch", {"changes": [{"op": "add", "spec": 1}]},
             "args.changes[0].spec: expected a string"),
            ("routes.batch", {"changes": [{"op": "add", "spec": "io:0x80=main", "x": 1}]},
             "args.changes[0].x: unknown key (a change takes op and spec)"),
            ("routes.batch", {"changes": [{"op": "add", "spec": "io:0x80=main"}] * 1025},
             "args.changes: 1025 changes, at most 1024"),
            ("vmm.add", {}, "args.vmm or args.spec: missing"),
            ("vmm.add", {"spec": "a=monitor", "vmm": {}}, "give one of them, not both"),
            ("vmm.add", {"vmm": []}, "args.vmm: expected an object, got an array"),
            ("vmm.add", {"vmm": {"name": "m2"}}, "args.vmm: role: missing"),
            ("vmm.add", {"vmm": {"role": "monitor"}}, "args.vmm: name: missing"),
            ("vmm.add", {"vmm": {"name": "m2", "role": "monitor", "colour": "red"}},
             "args.vmm: colour: unknown key (a VMM takes name, role"),
            ("vmm.add", {"vmm": {"name": "m2", "role": 5}},
             "args.vmm: role: expected a string"),
            ("vmm.add", {"vmm": {"name": "Bad Name", "role": "monitor"}},
             "args.vmm: name: 'Bad Name' is not valid"),
            ("vmm.add", {"vmm": {"name": "main", "role": "monitor"}}, "reserved"),
            ("vmm.add", {"spec": "noequals"}, "args.spec: 'noequals': expected NAME=ROLE"),
            ("vmm.add", {"spec": "m2=monitor,placement=far"}, "placement 'far' is not known"),
            ("vmm.start", {}, "args.name: missing"),
            ("vmm.stop", {"name": 1}, "args.name: expected a string, got the number 1"),
            ("vmm.swap", {"name": "uart"}, "args.vmm or args.spec: missing"),
            ("vmm.swap", {"name": "uart", "spec": "other=uart16550"},
             "args.spec: the VMM is named 'other', not 'uart'"),
            ("vmm.swap", {"name": "uart", "vmm": {"name": "other", "role": "uart16550"}},
             "args.vmm.name: the VMM is named 'other', not 'uart'"),
            ("platform.raise", {}, "args.event: missing"),
            ("platform.raise", {"event": "explode"},
             "args.event: 'explode' is not a platform event"),
            ("platform.raise", {"event": "smi", "value": -1}, "args.value: expected a number"),
            ("platform.raise", {"event": "smi", "value": 1.5}, "args.value: expected a number"),
            ("platform.raise", {"event": "smi", "value": "12X"}, "args.value: "),
        ]
        for cmd, args, msg in cases:
            r = c.request(cmd, args, rid=cmd)
            self.assertError(r, "bad_args", msg, cmd)
        # nothing changed
        self.assertEqual(c.call("routes.list")["generation"], 1)
        self.assertEqual([v["name"] for v in c.call("vmms.list")["vmms"]], DEFAULT_VMMS)
        self.power_off()

    def test_failures_change_nothing(self):
        self.start_idle()
        c = self.client()
        for cmd, args, msg in [
                ("routes.add", {"spec": "io:0x3f8=main"},
                 "route 'io:0x3f8=main' overlaps route 'io:0x3f8-0x3ff=uart' at port 0x3f8"),
                ("routes.add", {"spec": "io:0x3f8-0x3f0=main"}, "below its start"),
                ("routes.add", {"spec": "io:0x80=nosuch"}, "nosuch"),
                ("routes.add", {"spec": "type:hlt=uart"}, "in-kernel irqchip"),
                ("routes.delete", {"spec": "io:0x1234"}, "io:0x1234"),
                ("routes.replace", {"spec": "io:0x1234=main"}, "io:0x1234"),
                # a batch is all or nothing: its second change fails
                ("routes.batch", {"changes": [{"op": "add", "spec": "io:0x80=main"},
                                              {"op": "add", "spec": "io:0x3fa=main"}]},
                 "route 'io:0x3fa=main' overlaps route 'io:0x3f8-0x3ff=uart'"),
                ("routes.batch", {"changes": [{"op": "add", "spec": "io:0x80=main"},
                                              {"op": "delete", "spec": "io:0x1234"}]},
                 "change 1"),
                ("vmm.add", {"spec": "uart=uart16550"}, "uart"),
                ("vmm.add", {"spec": "x=nosuchrole"}, "unknown role 'nosuchrole'"),
                ("vmm.add", {"spec": "x=monitor,colour=red"}, "takes no argument 'colour'"),
                ("vmm.start", {"name": "nosuch"}, "no VMM named 'nosuch'"),
                ("vmm.stop", {"name": "main"}, "main VMM"),
                ("vmm.swap", {"name": "nosuch", "spec": "nosuch=monitor"}, "nosuch")]:
            self.assertError(c.request(cmd, args, rid=1), "failed", msg, 1)
        self.assertEqual(c.call("routes.list")["generation"], 1)
        self.assertNotIn("io:0x80=main", [r["spec"] for r in c.call("routes.list")["routes"]])
        self.assertEqual([v["name"] for v in c.call("vmms.list")["vmms"]], DEFAULT_VMMS)
        self.power_off()

    def test_line_too_long(self):
        self.start_idle()
        # exactly API_LINE_MAX bytes before the newline: a request
        c = self.client()
        req = '{"id": 1, "cmd": "ping"}'
        c.send(req + " " * (API_LINE_MAX - len(req)) + "\n")
        self.assertEqual(c.read_reply()["result"], {"pong": True})
        # one more: refused, and the connection closed
        for tail in ("\n", ""):
            d = self.client()
            try:
                d.send("x" * (API_LINE_MAX + 1) + tail)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertError(d.read_reply(), "too_long",
                             "the request line is longer than 65536 bytes; the connection "
                             "is closed")
            self.assertTrue(d.closed())
        # a client that keeps sending a huge line is cut off as well
        e = self.client()
        try:
            e.send(b"y" * (4 * API_LINE_MAX))
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assertEqual(e.read_reply()["error"]["code"], "too_long")
        self.assertEqual(c.request("ping")["ok"], True)  # the others are still served
        self.assertIn("a request line longer than 65536 bytes", self.bg.err())
        self.power_off()

    def test_disconnects(self):
        self.start_idle()
        # mid-request: half a line, then gone
        a = ApiClient(self.sock)
        a.send('{"id": 1, "cmd": "pi')
        a.close()
        # mid-reply: many requests, gone before reading any reply
        b = ApiClient(self.sock)
        b.send('{"id": 1, "cmd": "stats.get"}\n' * 500)
        b.close()
        # connected and gone at once
        ApiClient(self.sock).close()
        # half-closed: its requests are still answered
        d = self.client()
        d.send('{"id": "h", "cmd": "ping"}\n{"id": "i", "cmd": "version"}\n')
        d.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(d.read_reply()["id"], "h")
        self.assertEqual(d.read_reply()["id"], "i")
        self.assertIsNone(d.read_line())
        self.assertEqual(self.client().request("ping")["ok"], True)
        self.assertTrue(self.bg.running())
        res = self.power_off()
        self.assertEqual(res.err, "")

    def test_too_many_clients(self):
        self.start_idle()
        clients = [self.client() for _ in range(API_CLIENTS_MAX)]
        for c in clients:
            self.assertEqual(c.request("ping")["ok"], True)
        extra = self.client()
        self.assertError(extra.read_reply(), "busy",
                         "16 clients are connected already (at most 16); try again later")
        self.assertTrue(extra.closed())
        for c in clients:  # the others are unharmed
            self.assertEqual(c.request("ping")["ok"], True)
        clients[0].close()

        def served():
            c = ApiClient(self.sock)
            try:
                c.send('{"id": 1, "cmd": "ping"}\n')
                return c.read_reply()["ok"]
            finally:
                c.close()
        wait_until("a slot freed by a client that left", served)
        self.assertIn("16 clients are connected already", self.bg.err())
        self.power_off()

    def test_slow_client_dropped(self):
        self.start_idle()
        slow = self.client()
        n = 3000
        try:
            slow.send('{"id": 1, "cmd": "stats.get"}\n' * n)
        except (BrokenPipeError, ConnectionResetError):
            pass
        wait_until("the slow client dropped",
                   lambda: "left more than 1024 KiB of replies unread" in self.bg.err())
        got = 0
        while slow.read_line() is not None:
            got += 1
        self.assertLess(got, n)
        self.assertGreater(got, 0)
        self.assertEqual(self.client().request("ping")["ok"], True)
        self.power_off()


class BadInputWhileRunning(ApiTest):
    def test_guest_undisturbed(self):
        # portseq's every value reaches its monitor exactly once while the
        # socket gets every kind of bad input.
        self.start_portseq()
        wait_until("the guest running", lambda: count_lines(self.m1) >= 200)
        good = self.client()
        for _ in range(3):
            c = ApiClient(self.sock)
            c.send(b"{garbage\n\xff\n[1]\n{\"id\": 1}\n{\"id\": 2, \"cmd\": \"nope\"}\n"
                   b"{\"id\": 3, \"cmd\": \"routes.add\", \"args\": {\"spec\": 3}}\n")
            try:
                c.send("z" * (API_LINE_MAX + 10))
            except (BrokenPipeError, ConnectionResetError):
                pass
            c.close()
            crowd = [ApiClient(self.sock) for _ in range(API_CLIENTS_MAX + 2)]
            slow = ApiClient(self.sock)
            try:
                slow.send('{"id": 1, "cmd": "stats.get"}\n' * 3000)
            except (BrokenPipeError, ConnectionResetError):
                pass
            half = ApiClient(self.sock)
            half.send('{"id": 1, "cmd": "rout')
            for x in crowd + [slow, half]:
                x.close()
            self.assertEqual(good.request("ping")["ok"], True)
        before = count_lines(self.m1)
        wait_until("the guest still running", lambda: count_lines(self.m1) > before + 100)
        n, _ = self.end_portseq()
        self.assertSequence([self.m1], n)


# ---- the socket ------------------------------------------------------------

class Socket(ApiTest):
    def test_mode_whatever_the_umask(self):
        for mask in (0o000, 0o022, 0o277):
            old = os.umask(mask)
            try:
                self.start_idle(sock=self.path("u%o.sock" % mask))
            finally:
                os.umask(old)
            st = os.lstat(self.sock)
            self.assertTrue(stat.S_ISSOCK(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, "umask %o" % mask)
            self.assertEqual(st.st_uid, os.geteuid())
            self.assertEqual(self.client().request("ping")["ok"], True)
            # no private directory left behind
            self.assertEqual([f for f in os.listdir(self.tmp) if f.startswith(".vmmux")], [])
            self.power_off()

    def _connect_as_nobody(self, path):
        """Connect to PATH from a child running as uid/gid 65534; returns what
        it saw: 'EACCES', 'forbidden' (the server's reply naming both uids,
        then the end of the connection), or another text."""
        me = os.geteuid()
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            what = "?"
            try:
                os.close(rfd)
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                c = ApiClient(path, timeout=5)
                r = c.read_reply()  # refused at once, before any request
                what = r["error"]["code"] if not r["ok"] else "served"
                if what == "forbidden":
                    if not c.closed():
                        what = "forbidden but not closed"
                    elif "only uid %d may use this control socket (you are uid %d)" % (
                            me, NOBODY) not in r["error"]["message"]:
                        what = "forbidden: " + r["error"]["message"]
            except PermissionError:
                what = "EACCES"
            except BaseException as e:  # reported to the parent
                what = "%s: %s" % (type(e).__name__, e)
            finally:
                os.write(wfd, what.encode())
                os._exit(0)
        os.close(wfd)
        with os.fdopen(rfd, "rb") as f:
            what = f.read().decode()
        os.waitpid(pid, 0)
        return what

    def test_other_user_refused(self):
        if os.geteuid() != 0:
            raise AssertionError("this test changes to another uid: run it as root")
        os.chmod(self.tmp, 0o755)  # the directory lets others reach the socket
        self.start_idle()
        # the mode: another user cannot even connect
        self.assertEqual(self._connect_as_nobody(self.sock), "EACCES")
        # SO_PEERCRED: with the mode opened, vmmux still refuses that uid
        os.chmod(self.sock, 0o666)
        self.assertEqual(self._connect_as_nobody(self.sock), "forbidden")
        self.assertIn("refused a connection from uid %d" % NOBODY, self.bg.err())
        self.assertEqual(self.client().request("ping")["ok"], True)
        self.power_off()

    def test_stale_socket_replaced(self):
        path = self.path("stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()  # the file stays: nobody listens on it
        self.start_idle("--log-level", "info", sock=path)
        self.assertEqual(self.client().request("ping")["ok"], True)
        self.assertEqual(stat.S_IMODE(os.lstat(path).st_mode), 0o600)
        res = self.power_off()
        self.assertIn("control socket %s: replaced a stale socket" % path, res.err)

    def test_paths_refused(self):
        d = self.path("dir")
        os.mkdir(d)
        f = self.path("file")
        with open(f, "w") as fh:
            fh.write("keep me")
        link = self.path("link")
        os.symlink(f, link)
        dangling = self.path("dangling")
        os.symlink(self.path("nowhere"), dangling)
        long_path = self.path("x" * (108 - len(self.tmp)))
        for path, msg in [(f, "the path exists and is not a socket; refusing to replace it"),
                          (d, "the path exists and is not a socket"),
                          (link, "the path exists and is not a socket"),
                          (dangling, "the path exists and is not a socket"),
                          (self.path("nodir/api.sock"), "cannot create a directory in"),
                          (long_path, "at most 107 for a Unix socket")]:
            r = self.run_guest("hlt.elf", "--irqchip", "--watchdog", "20s", "--api-sock", path)
            self.assertStatus(r, EXIT_USAGE)
            self.assertNoCrash(r)
            self.assertIn("control socket %s" % path, r.err)
            self.assertIn(msg, r.err)
            self.assertEqual(r.out, "")
        with open(f) as fh:
            self.assertEqual(fh.read(), "keep me")
        self.assertTrue(os.path.islink(link) and os.path.islink(dangling))
        self.assertEqual(sorted(os.listdir(self.tmp)), ["dangling", "dir", "file", "link"])
        r = self.run_guest("hlt.elf", "--api-sock", "")
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("--api-sock: the value is empty", r.err)

    def test_live_socket_refused(self):
        first = self.start_idle()
        r = self.run_guest("hlt.elf", "--irqchip", "--watchdog", "20s", "--api-sock", self.sock)
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("control socket %s: a process is listening on it (another vmmux?); "
                      "refusing to take it over" % self.sock, r.err)
        self.assertTrue(os.path.exists(self.sock))  # the loser did not remove it
        self.assertTrue(first.running())
        self.assertEqual(self.client().request("ping")["ok"], True)
        self.power_off()

    def test_long_path_and_signal(self):
        # a path that fits a socket address while the private directory
        # beside it would not; and the socket removed when a signal ends
        # the run
        sub = self.path("d" * (95 - len(self.tmp)))
        os.mkdir(sub)
        path = os.path.join(sub, "a.sock")
        self.assertLess(len(path), 108)
        self.start_idle(sock=path)
        self.assertEqual(stat.S_IMODE(os.lstat(path).st_mode), 0o600)
        self.assertEqual(self.client().request("ping")["ok"], True)
        self.bg.proc.send_signal(signal.SIGTERM)
        r = self.bg.finish()
        self.assertEqual(r.status, -signal.SIGTERM)
        self.assertFalse(os.path.lexists(path))
        self.assertEqual(os.listdir(sub), [])

    def test_config_file(self):
        sub = self.path("conf")
        os.mkdir(sub)
        cfg = os.path.join(sub, "vm.json")
        with open(cfg, "w") as f:
            json.dump({"machine": {"irqchip": True}, "guest": {"kernel": guest("hlt.elf")},
                       "watchdog": "60s", "api_sock": "c.sock"}, f)
        self.sock = os.path.join(sub, "c.sock")  # relative to the config file
        self.bg = self.start("run", "--config", cfg)
        wait_for_socket(self.sock, self.bg)
        wait_until("the guest halted", lambda: self.bg.out() == "before hlt\n")
        self.assertEqual(self.client().request("ping")["ok"], True)
        self.power_off()
        # the command line overrides the file
        self.sock = self.path("cli.sock")
        self.bg = self.start("run", "--config", cfg, "--api-sock", self.sock)
        wait_for_socket(self.sock, self.bg)
        wait_until("the guest halted", lambda: self.bg.out() == "before hlt\n")
        self.assertFalse(os.path.exists(os.path.join(sub, "c.sock")))
        self.power_off()
        with open(cfg, "w") as f:
            json.dump({"guest": {"kernel": guest("hlt.elf")}, "api_sock": 5}, f)
        r = self.vmmux("run", "--config", cfg)
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("vm.json: api_sock: expected a string, got 5", r.err)


# ---- changing a running guest ------------------------------------------------

class Live(ApiTest):
    def test_port_range_moved_while_the_guest_writes(self):
        m2 = self.path("m2.jsonl")
        self.start_portseq("--vmm", "mon2=monitor,output=" + m2)
        wait_until("values at mon1", lambda: count_lines(self.m1) >= 300, timeout=30)
        c = self.client()
        gen = c.call("routes.replace", {"spec": "io:0x80-0x87=mon2"})["generation"]
        self.assertEqual(gen, 2)
        wait_until("values at mon2", lambda: count_lines(m2) >= 300, timeout=30)
        n, _ = self.end_portseq()
        one, two = self.assertSequence([self.m1, m2], n)
        self.assertGreaterEqual(len(one), 300)
        self.assertGreaterEqual(len(two), 300)
        # one point: every event of mon1 was routed by the old table, every
        # one of mon2 by the new one (or the next: the gate's change)
        self.assertEqual({g for _, _, g in one}, {1})
        self.assertLessEqual({g for _, _, g in two}, {2, 3})

    def test_batch_moves_and_ctl_while_the_guest_writes(self):
        # two halves of the range moved in one batch, through vmmux ctl
        m2 = self.path("m2.jsonl")
        self.start_portseq("--vmm", "mon2=monitor,output=" + m2)
        wait_until("values at mon1", lambda: count_lines(self.m1) >= 300, timeout=30)
        r = self.ctl("routes", "batch", "delete:io:0x80-0x87", "add:io:0x80-0x83=mon2",
                     "add:io:0x84-0x87=mon2")
        self.assertEqual(r.out, "generation: 2\nchanges: 3\n", r)
        wait_until("values at mon2", lambda: count_lines(m2) >= 300, timeout=30)
        n, _ = self.end_portseq()
        one, two = self.assertSequence([self.m1, m2], n)
        self.assertEqual({g for _, _, g in one}, {1})

    def test_vmm_swapped_while_the_guest_writes(self):
        m1b = self.path("m1b.jsonl")
        self.start_portseq()
        wait_until("values at mon1", lambda: count_lines(self.m1) >= 300, timeout=30)
        c = self.client()
        before = {v["name"]: v["id"] for v in c.call("vmms.list")["vmms"]}
        r = c.call("vmm.swap", {"name": "mon1", "vmm": {"role": "monitor", "output": m1b}})
        self.assertEqual(r["name"], "mon1")
        wait_until("values at the new mon1", lambda: count_lines(m1b) >= 300, timeout=30)
        after = {v["name"]: v["id"] for v in c.call("vmms.list")["vmms"]}
        self.assertEqual(after, before)  # same name, same id
        n, _ = self.end_portseq()
        self.assertSequence([self.m1, m1b], n)
        self.assertEqual({e["vmm"] for e in self.read_log(m1b)}, {"mon1"})
