"""The demo: exactly what `make demo` runs,

    vmmux run --config configs/demo.json --kernel BUILD/guest/demo.elf --stats

checked for its status, its console lines (guest/README.md, demo/demo.c) and
the routing summary that --stats prints on stderr."""
import json
import os
import re
import subprocess

from harness import PARALLEL, SRC, VmmuxTest, guest, run_vmmux

# Every event type the demo raises (all but irq, request and fault).
RAISED_TYPES = ["io", "mmio", "msr", "hlt", "hypercall", "exception", "shutdown", "platform"]


def demo_lines(hc_addr):
    return [
        "demo boot 1: port I/O: this text goes out through the uart on 0x3f8",
        # 0x600d: the monitor's read= in configs/demo.json
        "mmio: wrote 0xcafef00d to 0xd0000000, read 0x600d",
        # its msr_read=
        "msr: wrote 0x1122334455667788 to 0x40001000, read 0x1122334455667788",
        "hypercall 1: argument at 0x%x sent" % hc_addr,
        "hlt: halted and resumed",
        "exception: breakpoint (#BP) reported through 0x4f0, resumed",
        "smi: command 0x42 on 0xb2, apm status 1",
        "unrouted: in 0x1234 gives 0xff",
        "reset: writing 0x06 to 0xcf9",
        "boot 2: triple fault",
        "boot 3: power off through 0x604",
    ]


def symbol(elf, name):
    """Address of symbol NAME in ELF (nm from binutils, which builds the
    guests)."""
    p = subprocess.run(["nm", elf], capture_output=True, timeout=30, check=True)
    for line in p.stdout.decode().splitlines():
        f = line.split()
        if len(f) == 3 and f[2] == name:
            return int(f[0], 16)
    raise AssertionError("no symbol %s in %s" % (name, elf))


# where each VMM ran, from the last parse_summary: "in-process" or "pid N"
where = {}


def parse_summary(err):
    """The --stats summary: ({type: (count, unrouted)}, {route: count},
    {vmm: count}); each table is found by its header line."""
    types, routes, vmms = {}, {}, {}
    where.clear()
    section = None
    for line in err.splitlines():
        f = line.split()
        if not f:
            section = None
            continue
        if f[0] == "type" and "count" in f:
            section = "type"
            continue
        if f[0] == "route" and "count" in f:
            section = "route"
            continue
        if f[0] == "vmm" and "count" in f:
            section = "vmm"
            continue
        if section == "type" and len(f) >= 7:
            types[f[0]] = (int(f[1]), int(f[6]))
        elif section == "route" and len(f) >= 2:
            routes[f[0]] = int(f[1])
        elif section == "vmm":
            m = re.match(r"^\s+(\S+) \(([^)]+)\)\s+(\d+)", line)
            if m:
                vmms[m.group(1)] = int(m.group(3))
                where[m.group(1)] = m.group(2)
    return types, routes, vmms


class Demo(VmmuxTest):
    @classmethod
    def setUpClass(cls):
        # The command line of `make demo`, run as make runs it: from the
        # source tree, with its config.
        cls.kernel = guest("demo.elf")
        cls.args = ["run", "--config", "configs/demo.json", "--kernel", cls.kernel, "--stats"]
        cls.r = run_vmmux(*cls.args, timeout=120, cwd=SRC)
        cls.types, cls.routes, cls.vmms = parse_summary(cls.r.err)

    def test_makefile_runs_this(self):
        # The command above is the Makefile's demo recipe.
        with open(os.path.join(SRC, "Makefile")) as f:
            mk = f.read()
        self.assertIn("./$(BUILD)/vmmux run --config configs/demo.json "
                      "--kernel $(BUILD)/guest/demo.elf --stats", mk)

    def test_status_poweroff(self):
        # Status 0 is the power-off's (EXIT_POWEROFF), and the run ended by
        # the guest's power-off: its last line, written at its third boot
        # just before the write to 0x604, is the last thing it printed; the
        # write reached the chipset (its route counted once), which raised
        # the power-off that the main VMM carried out (3 platform events:
        # the SMI, the reset, the power-off).
        self.assertStatus(self.r, 0)
        self.assertNoCrash(self.r)
        self.assertTrue(self.r.out.endswith("boot 3: power off through 0x604\n"), repr(self.r))
        self.assertEqual(self.routes.get("io:0x604-0x605=chipset"), 1, repr(self.r))
        self.assertEqual(self.types["platform"][0], 3, repr(self.r))
        self.assertEqual(self.types["shutdown"], (1, 0), repr(self.r))
        self.assertNotIn("guest crashed", self.r.err)
        self.assertNotIn("watchdog", self.r.err)

    def test_console(self):
        addr = symbol(self.kernel, "demo_hc_arg")
        self.assertEqual(self.r.out.splitlines(), demo_lines(addr), repr(self.r))
        self.assertEqual(self.r.out, "\n".join(demo_lines(addr)) + "\n")

    def test_monitor_log_on_stderr(self):
        # configs/demo.json sends the monitor's JSON lines to stderr.
        log = [json.loads(line) for line in self.r.err.splitlines() if line.startswith("{")]
        self.assertEqual([e["type"] for e in log],
                         ["mmio", "mmio", "msr", "msr", "hypercall", "hlt", "exception",
                          "shutdown"])
        self.assertEqual(int(log[4]["value"], 16), symbol(self.kernel, "demo_hc_arg"))
        self.assertEqual(log[6]["key"], 3)
        self.assertEqual(log[7]["action"], "reset")

    def test_summary_types(self):
        self.assertIn("vmmux statistics", self.r.err)
        for t in RAISED_TYPES:
            self.assertIn(t, self.types, "no %s row in the summary\n%r" % (t, self.r))
            self.assertGreater(self.types[t][0], 0, "%s count\n%r" % (t, self.r))
        # What demo.c raises, one by one: an MMIO write and read, an MSR
        # write and read, hypercall 1, one HLT, the #BP report, the triple
        # fault; platform: the SMI, the reset through 0xcf9, the power-off.
        self.assertEqual(self.types["mmio"], (2, 0))
        self.assertEqual(self.types["msr"], (2, 0))
        self.assertEqual(self.types["hlt"], (1, 0))
        self.assertEqual(self.types["hypercall"], (1, 0))
        self.assertEqual(self.types["exception"], (1, 0))
        self.assertEqual(self.types["shutdown"], (1, 0))
        self.assertEqual(self.types["platform"][0], 3)
        # The read of port 0x1234 is the one unrouted port access.
        self.assertEqual(self.types["io"][1], 1)

    def test_summary_where(self):
        # The main VMM is vmmux itself; the demo config runs the console, the
        # SMI handler and the monitor as parallel VMM processes, the others in
        # vmmux's process (all of them as processes with --parallel).
        parse_summary(self.r.err)
        self.assertEqual(where["main"], "in-process")
        pids = set()
        for v in ("uart", "mon", "smm", "chipset", "fault"):
            if PARALLEL or v in ("uart", "mon", "smm"):
                self.assertRegex(where[v], r"^pid \d+$")
                pids.add(where[v])
            else:
                self.assertEqual(where[v], "in-process")
        self.assertEqual(len(pids), 5 if PARALLEL else 3)

    def test_summary_vmms(self):
        for v in ("uart", "mon", "smm", "chipset", "fault", "main"):
            self.assertIn(v, self.vmms, "no %s row in the summary\n%r" % (v, self.r))
            self.assertGreater(self.vmms[v], 0)
        # mon: 2 mmio, 2 msr, hypercall, hlt, exception, shutdown.
        self.assertEqual(self.vmms["mon"], 8)
        # smm: OUT 0xb2, IN 0xb3, and the SMI it services.
        self.assertEqual(self.vmms["smm"], 3)
        # chipset: 0xcf9 (reset) and 0x604 (power-off).
        self.assertEqual(self.vmms["chipset"], 2)
        # fault: the breakpoint report on 0x4f0.
        self.assertEqual(self.vmms["fault"], 1)
        # main: the unrouted read of 0x1234, the reset and the power-off
        # (platform events without a route of their own).
        self.assertEqual(self.vmms["main"], 3)
        # uart: every console byte is an LSR poll and a THR write.
        self.assertEqual(self.vmms["uart"], 2 * len(self.r.out))

    def test_summary_routes(self):
        self.assertEqual(self.routes.get("mmio:0xd0000000-0xd0000fff=mon"), 2)
        self.assertEqual(self.routes.get("msr:0x40001000-0x400010ff=mon"), 2)
        self.assertEqual(self.routes.get("hypercall:1=mon"), 1)
        self.assertEqual(self.routes.get("type:hlt=mon"), 1)
        self.assertEqual(self.routes.get("exception:3=mon"), 1)
        self.assertEqual(self.routes.get("type:shutdown=mon"), 1)
        self.assertEqual(self.routes.get("platform:smi=smm"), 1)
        self.assertEqual(self.routes.get("io:0xcf9=chipset"), 1)
        self.assertEqual(self.routes.get("io:0x604-0x605=chipset"), 1)
        self.assertEqual(self.routes.get("io:0x4f0-0x4f3=fault"), 1)
        self.assertEqual(self.routes.get("io:0xb2-0xb3=smm"), 2)
        self.assertEqual(self.routes.get("io:0x3f8-0x3ff=uart"), 2 * len(self.r.out))

    def test_summary_parser(self):
        # The parser must find the three tables (and so can fail).
        t, r, v = parse_summary("vmmux statistics\n  type  count p50 p99 max events/s "
                                "unrouted\n  io  5 1us 1us 1us 1 0\n\n  route  count p50 "
                                "p99 max\n  io:0x80=mon  5 1 1 1\n\n  vmm (where)  count "
                                "p50\n  mon (in-process)  5 1us\n")
        self.assertEqual((t, r, v), ({"io": (5, 0)}, {"io:0x80=mon": 5}, {"mon": 5}))
