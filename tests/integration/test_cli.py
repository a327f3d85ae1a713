"""The command line: help texts, version, roles, the routes command, usage
errors, and the statistics options (--stats, --stats-json)."""
import json
import re
import subprocess

from harness import EXIT_USAGE, SRC, VmmuxTest, guest, run_vmmux, wait_for_socket

HELLO = "hello from vmmux\n"

RUN_OPTIONS = ["--kernel", "--mem", "--cpus", "--cpu-mode", "--route", "--vmm", "--config",
               "--stats", "--stats-json", "--break", "--single-step", "--sw-breakpoints",
               "--watchdog", "--log-level", "--append", "--format", "--load-addr", "--entry",
               "--irqchip", "--no-irqchip", "--no-defaults", "--gdb", "--gdb-wait"]

ROLES = ["uart16550", "debug-exit", "chipset", "smm", "monitor", "fault-report", "sink",
         "fwcfg", "hvt-console", "hvt-block", "hvt-net", "gdbstub"]

DEFAULT_ROUTES = {
    "io:0x3f8-0x3ff": "uart",
    "io:0xf4-0xf7": "exit",
    "io:0x64": "chipset",
    "io:0xcf9": "chipset",
    "io:0x604-0x605": "chipset",
    "io:0xb2-0xb3": "smm",
    "platform:smi": "smm",
    "io:0x4f0-0x4f3": "fault",
}
TYPES = ["io", "mmio", "msr", "hlt", "hypercall", "exception", "shutdown", "platform", "irq",
         "request", "fault"]


def help_options(text):
    """The options an option list documents: the first --word of each line
    that starts (after indentation) with an option."""
    opts = set()
    for line in text.splitlines():
        m = re.match(r"^\s+(?:-h, )?(--[a-z][a-z-]*)", line)
        if m:
            opts.add(m.group(1))
    return opts


def exit_status_section(text):
    """{status: description} of the EXIT STATUS section."""
    m = re.search(r"^EXIT STATUS\n((?:  .*\n?)+)", text, re.M)
    if not m:
        return {}
    out = {}
    for line in m.group(1).splitlines():
        mm = re.match(r"^  (\S+)\s+(.*)$", line)
        if mm:
            out[mm.group(1)] = mm.group(2)
    return out


def route_examples(text):
    """The route specs under 'Examples:' in the ROUTES section."""
    m = re.search(r"^  Examples:\n((?:    .*\n|\s*\n)+)", text, re.M)
    if not m:
        return []
    return [line.split()[0] for line in m.group(1).splitlines()
            if re.match(r"^    [a-z]+:", line)]


ROUTE_JSON_KEYS = {"spec", "kind", "vmm", "implicit", "group", "posted", "coalesced",
                   "doorbell", "fallback", "from", "timeout_ns"}


def table(out):
    """`vmmux routes` output as [(spec, vmm, rest)], after its header row."""
    rows = []
    lines = out.splitlines()
    assert lines and lines[0].split() == ["SPEC", "VMM", "OPTIONS"], out
    for line in lines[1:]:
        f = line.split(None, 2)
        rows.append((f[0], f[1] if len(f) > 1 else "", f[2] if len(f) > 2 else ""))
    return rows


class Help(VmmuxTest):
    def test_top_level_help(self):
        for args in (["--help"], ["-h"], ["help"]):
            r = self.vmmux(*args)
            self.assertStatus(r, 0)
            self.assertTrue(r.out.startswith("Usage: vmmux COMMAND"), r)
            for cmd in ("run", "routes", "roles", "help"):
                self.assertRegex(r.out, r"(?m)^  %s\b" % cmd)
            self.assertIn("--version", r.out)
            self.assertEqual(r.err, "")
        self.assertEqual(self.vmmux("--help").out, self.vmmux("help").out)

    def test_exit_statuses_documented(self):
        for args in (["--help"], ["run", "--help"]):
            r = self.vmmux(*args)
            st = exit_status_section(r.out)
            self.assertEqual(sorted(st), sorted(["0", "odd", "2", "4", "6", "8"]), r)
            self.assertIn("powered off", st["0"])
            self.assertIn("((V << 1) | 1) & 0xff", st["odd"])
            self.assertIn("command line", st["2"])
            self.assertIn("image", st["4"])
            self.assertIn("KVM", st["6"])
            self.assertIn("crash", st["8"])

    def test_run_help_lists_every_option(self):
        r = self.vmmux("run", "--help")
        self.assertStatus(r, 0)
        self.assertTrue(r.out.startswith("Usage: vmmux run"), r)
        opts = help_options(r.out)
        for o in RUN_OPTIONS:
            self.assertIn(o, opts)
        # Every documented option is one the parser knows.
        for o in sorted(opts):
            rr = self.vmmux("run", o, "1")
            self.assertNotIn("unknown or ambiguous option", rr.err, "%s: %r" % (o, rr))
        rr = self.vmmux("run", "--not-an-option", "1")
        self.assertIn("unknown or ambiguous option", rr.err)

    def test_help_command_equals_option(self):
        for cmd in ("run", "routes", "roles"):
            a = self.vmmux("help", cmd)
            b = self.vmmux(cmd, "--help")
            self.assertStatus(a, 0)
            self.assertStatus(b, 0)
            self.assertEqual(a.out, b.out)
            self.assertTrue(a.out.startswith("Usage: vmmux %s" % cmd), a)

    def test_routes_help(self):
        r = self.vmmux("routes", "--help")
        self.assertStatus(r, 0)
        self.assertTrue(r.out.startswith("Usage: vmmux routes"), r)
        opts = help_options(r.out)
        for o in ("--config", "--route", "--vmm", "--no-defaults", "--irqchip", "--no-irqchip"):
            self.assertIn(o, opts)

    def test_route_grammar_and_examples(self):
        r = self.vmmux("run", "--help")
        self.assertIn("KIND:KEY=VMM[;OPTION...]", r.out)
        for word in ("posted", "fallback=VMM", "timeout=DURATION", "A-B", "A+N"):
            self.assertIn(word, r.out)
        examples = route_examples(r.out)
        self.assertIn("io:0x3f8-0x3ff=uart", examples)
        self.assertIn("mmio:0xd0000000+0x1000=mon", examples)
        self.assertIn("type:hlt=mon", examples)
        self.assertGreaterEqual(len(examples), 7)
        # Each documented example is a valid route.
        for ex in examples:
            rr = self.vmmux("routes", "--vmm", "mon=monitor", "--route", ex)
            self.assertStatus(rr, 0)
            kind, vmm = re.match(r"^([a-z]+):[^=]*=([a-z0-9_-]+)", ex).groups()
            self.assertTrue(any(row[0].startswith(kind + ":") and row[1] == vmm
                                for row in table(rr.out)), "%s: %r" % (ex, rr))

    def test_every_listed_command_has_help(self):
        # Each command that 'vmmux help' lists: 'vmmux help CMD' shows its
        # usage, the same text as 'vmmux CMD --help'.
        main = self.vmmux("help").out
        section = re.search(r"^Commands:\n((?:  .*\n)+)", main, re.M).group(1)
        listed = [m.group(1) for m in re.finditer(r"(?m)^  ([a-z]+)\b", section)]
        self.assertIn("hvt", listed)
        self.assertGreaterEqual(len(listed), 8, listed)
        for cmd in listed:
            a = self.vmmux("help", cmd)
            self.assertStatus(a, 0)
            self.assertEqual(a.err, "")
            self.assertTrue(a.out.startswith("Usage: vmmux %s" % cmd), a)
            if cmd != "help":
                b = self.vmmux(cmd, "--help")
                self.assertStatus(b, 0)
                if cmd == "qemu":  # QEMU's own -help shape, which runners probe
                    self.assertTrue(b.out.startswith("QEMU emulator version"), b)
                    self.assertIn(b.out, a.out)
                else:
                    self.assertEqual(a.out, b.out, cmd)

    def test_help_unknown_command(self):
        r = self.vmmux("help", "bogus")
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("bogus", r.err)


class Version(VmmuxTest):
    def test_version(self):
        # The version and the commit vmmux was built from: git describe
        # --always --dirty at build time, "unknown" outside git.
        r = self.vmmux("--version")
        self.assertStatus(r, 0)
        self.assertEqual(r.err, "")
        m = re.match(r"^vmmux 0\.1\.0 \(commit (\S+)\)\n$", r.out)
        self.assertTrue(m, r)
        git = subprocess.run(["git", "-C", SRC, "describe", "--always"],
                             capture_output=True, text=True)
        if git.returncode == 0:
            # built from this checkout (a commit since the build is rebuilt
            # by meson test before it runs)
            self.assertEqual(re.sub(r"-dirty$", "", m.group(1)), git.stdout.strip())
        else:
            self.assertEqual(m.group(1), "unknown")


class Usage(VmmuxTest):
    def test_no_command(self):
        r = self.vmmux()
        self.assertStatus(r, EXIT_USAGE)
        self.assertEqual(r.out, "")
        self.assertIn("Usage: vmmux COMMAND", r.err)
        self.assertIn("Commands: run, routes, roles, top, ctl, hvt, qemu, help.", r.err)

    def test_unknown_command(self):
        r = self.vmmux("bogus")
        self.assertStatus(r, EXIT_USAGE)
        self.assertEqual(r.out, "")
        self.assertIn("unknown command 'bogus'", r.err)
        self.assertIn("Commands: run, routes, roles, top, ctl, hvt, qemu, help.", r.err)

    def test_unknown_top_level_option(self):
        r = self.vmmux("--bogus")
        self.assertStatus(r, EXIT_USAGE)
        self.assertEqual(r.out, "")
        self.assertIn("--bogus", r.err)

    def test_roles_takes_no_argument(self):
        r = self.vmmux("roles", "extra")
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("'extra'", r.err)


class Roles(VmmuxTest):
    def test_roles_json(self):
        r = self.vmmux("roles", "--json")
        self.assertStatus(r, 0)
        j = json.loads(r.out)
        self.assertEqual(set(j), {"roles"})
        self.assertEqual([x["name"] for x in j["roles"]], ROLES)
        for x in j["roles"]:
            self.assertEqual(set(x), {"name", "summary", "args", "raises"})
            self.assertTrue(x["summary"], x)
        by = {x["name"]: x for x in j["roles"]}
        self.assertEqual(by["uart16550"]["raises"], ["irq:4"])
        self.assertIn("iobase", by["debug-exit"]["args"])
        text = {l.split(None, 1)[0]: l.split(None, 1)[1] for l in self.vmmux("roles").out.splitlines()}
        self.assertEqual({x["name"]: x["summary"] for x in j["roles"]}, text)

    def test_roles(self):
        r = self.vmmux("roles")
        self.assertStatus(r, 0)
        names = [line.split()[0] for line in r.out.splitlines() if line.strip()]
        self.assertEqual(names, ROLES)
        for line in r.out.splitlines():
            self.assertGreater(len(line.split()), 1, "role without a description: %r" % line)


class Routes(VmmuxTest):
    def test_default_table(self):
        r = self.vmmux("routes")
        self.assertStatus(r, 0)
        self.assertEqual(r.err, "")
        rows = table(r.out)
        keyed = [(s, v) for s, v, _ in rows if not s.startswith("type:")]
        self.assertEqual(sorted(keyed),
                         sorted(("%s=%s" % (k, v), v) for k, v in DEFAULT_ROUTES.items()))
        # io routes in port order, the type defaults last, one per type.
        io = [s for s, _ in keyed if s.startswith("io:")]
        port = [int(re.match(r"io:(0x[0-9a-f]+)", s).group(1), 16) for s in io]
        self.assertEqual(port, sorted(port))
        types = [s for s, _, _ in rows if s.startswith("type:")]
        self.assertEqual(types, [s for s, _, _ in rows][len(keyed):])
        self.assertEqual(sorted(types), sorted("type:%s=main" % t for t in TYPES))
        for s, v, rest in rows:
            if s.startswith("type:"):
                self.assertEqual((v, rest), ("main", "default"))

    def test_user_routes(self):
        r = self.vmmux("routes", "--vmm", "mon=monitor", "--route", "io:0x80=mon",
                       "--route", "type:hlt=mon", "--route", "msr:0x40001000-0x400010ff=mon",
                       "--route", "io:0x90-0x9f=mon;fallback=main;timeout=50ms")
        self.assertStatus(r, 0)
        rows = {s: (v, rest) for s, v, rest in table(r.out)}
        self.assertEqual(rows["io:0x80=mon"][0], "mon")
        self.assertEqual(rows["type:hlt=mon"][0], "mon")
        self.assertNotIn("type:hlt=main", rows)
        self.assertEqual(rows["msr:0x40001000-0x400010ff=mon"][0], "mon")
        self.assertEqual(rows["io:0x90-0x9f=mon;fallback=main;timeout=50ms"],
                         ("mon", "fallback=main timeout=50ms"))
        # The defaults are still there.
        for k, v in DEFAULT_ROUTES.items():
            self.assertEqual(rows["%s=%s" % (k, v)][0], v)

    def test_user_route_splits_overlapping_default(self):
        # A route of the user's replaces only what it covers of a default
        # range: the rest keeps its VMM.
        r = self.vmmux("routes", "--route", "io:0x3f8=main")
        self.assertStatus(r, 0)
        self.assertEqual(r.err, "")
        rows = {s: v for s, v, _ in table(r.out)}
        self.assertEqual(rows["io:0x3f8=main"], "main")
        self.assertEqual(rows["io:0x3f9-0x3ff=uart"], "uart")
        self.assertNotIn("io:0x3f8-0x3ff=uart", rows)
        self.assertEqual(rows["io:0xf4-0xf7=exit"], "exit")
        # In the middle: two pieces; covered whole by several: none, and
        # the default VMM is not added.
        r = self.vmmux("routes", "--vmm", "mon=monitor", "--route", "io:0x3fa-0x3fb=mon",
                       "--route", "io:0xf4-0xf5=main", "--route", "io:0xf6-0xf7=mon")
        self.assertStatus(r, 0)
        specs = [s for s, _, _ in table(r.out)]
        self.assertIn("io:0x3f8-0x3f9=uart", specs)
        self.assertIn("io:0x3fc-0x3ff=uart", specs)
        self.assertFalse([s for s in specs if s.endswith("=exit")], specs)
        j = json.loads(self.vmmux("routes", "--json", "--route", "io:0xf4-0xf7=main").out)
        self.assertNotIn("exit", [x["vmm"] for x in j["routes"]])

    def test_split_default_serves_the_guest(self):
        # With COM1's data port taken by a monitor, the UART keeps its line
        # status register: hello.elf polls LSR (0x3fd) at the UART, and its
        # bytes go to the monitor.
        opt, log = self.monitor()
        r = self.run_guest("hello.elf", *opt, "--route", "io:0x3f8=mon", "--stats-json",
                           self.path("s.json"))
        self.assertStatus(r, 1)
        self.assertEqual(r.out, "")
        self.assertNotIn("unrouted", r.err)
        with open(self.path("s.json")) as f:
            st = json.load(f)
        self.assertEqual(st["types"]["io"]["unrouted"], 0)
        self.assertGreater(self.route_count(st, "io:0x3f9-0x3ff=uart"), 0)
        data = "".join(chr(int(e["value"], 16)) for e in self.read_log(log)
                       if e["type"] == "io" and e["key"] == "0x3f8")
        self.assertEqual(data, HELLO)

    def test_config_file_routes_add_to_defaults(self):
        # One rule for the command line and the config file: vmms and routes
        # of either add to the defaults, and `vmmux routes` shows the same.
        cfg = self.path("vm.json")
        with open(cfg, "w") as f:
            json.dump({"vmms": [{"name": "mon", "role": "monitor"}],
                       "routes": ["io:0x80=mon", "io:0x3f8=main"]}, f)
        a = self.vmmux("routes", "--config", cfg)
        b = self.vmmux("routes", "--vmm", "mon=monitor", "--route", "io:0x80=mon",
                       "--route", "io:0x3f8=main")
        self.assertStatus(a, 0)
        self.assertEqual(a.out, b.out)
        rows = {s: v for s, v, _ in table(a.out)}
        self.assertEqual(rows["io:0x3f9-0x3ff=uart"], "uart")
        for k, v in DEFAULT_ROUTES.items():
            if v != "uart":
                self.assertEqual(rows["%s=%s" % (k, v)], v)
        # "defaults": false in the file is --no-defaults.
        with open(cfg, "w") as f:
            json.dump({"vmms": [{"name": "mon", "role": "monitor"}],
                       "routes": ["io:0x80=mon"], "defaults": False}, f)
        a = self.vmmux("routes", "--config", cfg)
        b = self.vmmux("routes", "--no-defaults", "--vmm", "mon=monitor", "--route",
                       "io:0x80=mon")
        self.assertEqual(a.out, b.out)
        self.assertEqual([s for s, _, _ in table(a.out) if not s.startswith("type:")],
                         ["io:0x80=mon"])

    def test_demo_config_means_what_it_meant(self):
        # configs/demo.json lists the defaults itself: no default is added.
        demo = SRC + "/configs/demo.json"
        a = self.vmmux("routes", "--config", demo)
        self.assertStatus(a, 0)
        self.assertEqual(a.out, self.vmmux("routes", "--config", demo, "--no-defaults").out)

    def test_routes_json(self):
        r = self.vmmux("routes", "--json", "--vmm", "a=sink", "--vmm", "b=sink", "--route",
                       "io:0x90=group(weighted:a*3,b);fallback=main;timeout=50ms",
                       "--route", "io:0x80=a;posted", "--route", "io:0x3f8=main")
        self.assertStatus(r, 0)
        self.assertEqual(r.err, "")
        j = json.loads(r.out)
        self.assertEqual(set(j), {"routes"})
        for x in j["routes"]:
            self.assertEqual(set(x), ROUTE_JSON_KEYS, x)
        # the text table's rows, in its order
        text = self.vmmux("routes", "--vmm", "a=sink", "--vmm", "b=sink", "--route",
                          "io:0x90=group(weighted:a*3,b);fallback=main;timeout=50ms",
                          "--route", "io:0x80=a;posted", "--route", "io:0x3f8=main")
        self.assertEqual([x["spec"] for x in j["routes"]], [s for s, _, _ in table(text.out)])
        by = {x["spec"]: x for x in j["routes"]}
        g = by["io:0x90=group(weighted:a*3,b);fallback=main;timeout=50ms"]
        self.assertEqual(g["group"], {"policy": "weighted",
                                      "members": [{"vmm": "a", "weight": 3},
                                                  {"vmm": "b", "weight": 1}]})
        self.assertEqual((g["kind"], g["vmm"], g["fallback"], g["timeout_ns"], g["from"]),
                         ("io", "a,b", "main", 50000000, None))
        p = by["io:0x80=a;posted"]
        self.assertEqual((p["vmm"], p["posted"], p["coalesced"], p["doorbell"], p["group"],
                          p["implicit"]), ("a", True, False, False, None, False))
        self.assertEqual(by["io:0x3f9-0x3ff=uart"]["vmm"], "uart")
        t = by["type:io=main"]
        self.assertEqual((t["kind"], t["vmm"], t["implicit"]), ("type", "main", True))
        # errors stay on stderr, nothing on stdout
        r = self.vmmux("routes", "--json", "--route", "io:0x80=ghost")
        self.assertStatus(r, EXIT_USAGE)
        self.assertEqual(r.out, "")

    def test_no_defaults(self):
        r = self.vmmux("routes", "--no-defaults", "--vmm", "mon=monitor", "--route",
                       "mmio:0xd0000000+0x1000=mon")
        self.assertStatus(r, 0)
        keyed = [(s, v) for s, v, _ in table(r.out) if not s.startswith("type:")]
        self.assertEqual(keyed, [("mmio:0xd0000000-0xd0000fff=mon", "mon")])

    def test_overlap_refused_naming_both(self):
        r = self.vmmux("routes", "--vmm", "a=monitor", "--route", "io:0x80-0x8f=a",
                       "--route", "io:0x88=main")
        self.assertStatus(r, EXIT_USAGE)
        self.assertEqual(r.out, "")
        self.assertIn("io:0x80-0x8f=a", r.err)
        self.assertIn("io:0x88=main", r.err)
        self.assertIn("overlaps", r.err)

    def test_unknown_vmm_refused(self):
        r = self.vmmux("routes", "--route", "io:0x80=ghost")
        self.assertStatus(r, EXIT_USAGE)
        self.assertEqual(r.out, "")
        self.assertIn("ghost", r.err)

    def test_checks_what_run_checks(self):
        # vmmux routes refuses what vmmux run would refuse before the guest
        # starts: unknown roles, arguments a role does not take, MSR routes
        # that do not fit KVM's filter or that KVM never lets exit.
        cases = [
            (["--vmm", "x=nosuch"], "unknown role 'nosuch'"),
            (["--vmm", "x=uart16550,foo=1"], "takes no argument 'foo'"),
            (["--route", "msr:0x800=main"], "x2APIC"),
            (["--route", "msr:0x4b564d01=main"], "KVM's own"),
        ]
        for args, msg in cases:
            r = self.vmmux("routes", *args)
            self.assertStatus(r, EXIT_USAGE)
            self.assertEqual(r.out, "")
            self.assertIn(msg, r.err)
            run = self.run_guest("hello.elf", *args)
            self.assertStatus(run, EXIT_USAGE)
            self.assertIn(msg, run.err)

    def test_hlt_route_with_irqchip_refused(self):
        r = self.vmmux("routes", "--vmm", "m=monitor", "--route", "type:hlt=m", "--irqchip")
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("type:hlt=m", r.err)


class Stats(VmmuxTest):
    def test_stats_on_stderr_only(self):
        r = self.run_guest("hello.elf", "--stats")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, HELLO)
        self.assertIn("vmmux statistics", r.err)
        rows = {}
        for line in r.err.splitlines():
            f = line.split()
            if len(f) >= 2 and f[1].isdigit():
                rows.setdefault(f[0], int(f[1]))
        # hello's 17 bytes: an LSR poll and a THR write each, then the exit.
        self.assertEqual(rows["io"], 35)
        self.assertEqual(rows["request"], 1)
        self.assertEqual(rows["mmio"], 0)
        self.assertEqual(rows["io:0x3f8-0x3ff=uart"], 34)
        self.assertEqual(rows["io:0xf4-0xf7=exit"], 1)
        vmms = {m.group(1): int(m.group(2)) for m in
                re.finditer(r"(?m)^\s+(\S+) \((?:in-process|pid \d+)\)\s+(\d+)", r.err)}
        self.assertEqual(vmms, {"main": 1, "uart": 34, "exit": 1})

    def test_no_stats_without_option(self):
        r = self.run_guest("hello.elf")
        self.assertNotIn("statistics", r.err)

    def test_stats_json(self):
        r, stats = self.run_with_stats("hello.elf")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, HELLO)
        self.assertNotIn("statistics", r.err)
        self.assertIsNotNone(stats, "no statistics file\n%r" % r)
        for key in ("types", "routes", "vmms"):
            self.assertIn(key, stats)
        self.assertEqual(sorted(stats["types"]), sorted(TYPES))
        for name, t in stats["types"].items():
            for k in ("count", "p50_ns", "p99_ns", "max_ns", "unrouted"):
                self.assertIsInstance(t[k], int, "%s.%s" % (name, k))
            self.assertLessEqual(t["p50_ns"], t["p99_ns"])
            self.assertLessEqual(t["p99_ns"], t["max_ns"])
        self.assertEqual(stats["types"]["io"]["count"], 35)
        self.assertEqual(stats["types"]["request"]["count"], 1)
        self.assertEqual(stats["types"]["request"]["unrouted"], 1)
        routes = {x["spec"]: x["count"] for x in stats["routes"]}
        self.assertEqual(routes["io:0x3f8-0x3ff=uart"], 34)
        self.assertEqual(routes["io:0xf4-0xf7=exit"], 1)
        self.assertEqual(self.vmm_count(stats, "uart"), 34)
        self.assertEqual(self.vmm_count(stats, "exit"), 1)
        self.assertEqual(self.vmm_count(stats, "main"), 1)
        for v in stats["vmms"]:
            self.assertIn("where", v)
            self.assertIsInstance(v["id"], int)

    def test_stats_and_json_together(self):
        sj = self.path("s.json")
        r = self.vmmux("run", "--kernel", guest("mb_hello.mb"), "--stats", "--stats-json", sj)
        self.assertStatus(r, 85)
        self.assertTrue(r.out.startswith("multiboot ok\n"), r)
        self.assertIn("vmmux statistics", r.err)
        with open(sj) as f:
            stats = json.load(f)
        self.assertEqual(self.vmm_count(stats, "exit"), 1)


class TopJson(VmmuxTest):
    def test_top_once_json(self):
        # A guest that halts for good, watched through its control socket:
        # top --once --json prints metrics.get's object, one line.
        sock = self.path("api.sock")
        b = self.start("run", "--kernel", guest("hlt.elf"), "--irqchip", "--api-sock", sock,
                       "--watchdog", "60s")
        wait_for_socket(sock, b)
        r = run_vmmux("top", "--api-sock", sock, "--once", "--json")
        self.assertStatus(r, 0)
        self.assertEqual(r.err, "")
        self.assertEqual(len(r.out.splitlines()), 1, r)
        m = json.loads(r.out)
        self.assertEqual(set(m), {"uptime_s", "interval_s", "generation", "events_total",
                                  "events_rate_per_s", "unrouted_total", "types", "routes",
                                  "vmms"})
        self.assertIn("uart", [v["name"] for v in m["vmms"]])
        self.assertIn("io:0x3f8-0x3ff=uart", [x["spec"] for x in m["routes"]])
        r = run_vmmux("top", "--api-sock", sock, "--json", "--count", "2", "--interval",
                      "0.05")
        self.assertStatus(r, 0)
        self.assertEqual([set(json.loads(l)) >= {"uptime_s", "vmms"} for l in r.out.splitlines()],
                         [True, True])
        self.assertNotIn("\x1b", r.out)
        b.kill()


class LogTimestamps(VmmuxTest):
    STAMP = r"^\[ *(\d+)\.(\d{6})\] vmmux: (error|warn|info|debug): "

    def check_stamped(self, err):
        lines = [l for l in err.splitlines() if l]
        self.assertGreaterEqual(len(lines), 2, err)
        times = []
        for line in lines:
            m = re.match(self.STAMP, line)
            self.assertTrue(m, "no timestamp: %r" % line)
            times.append(int(m.group(1)) * 1000000 + int(m.group(2)))
        # seconds since vmmux started (lines of two threads or processes
        # may reach stderr in either order: no order is checked)
        self.assertLess(max(times), 60 * 1000000)

    def test_option(self):
        r = self.run_guest("hello.elf", "--log-level", "info", "--log-timestamps")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, HELLO)
        self.check_stamped(r.err)
        self.assertRegex(r.err, r"(?m)^\[ +0\.\d{6}\] vmmux: info: ")
        # without the option, no timestamps
        r = self.run_guest("hello.elf", "--log-level", "info")
        self.assertTrue(r.err.startswith("vmmux: info: "), r)
        # parallel VMM processes stamp their own lines on vmmux's clock (the
        # exit device's line comes from its process)
        r = self.run_guest("hello.elf", "--log-level", "info", "--log-timestamps",
                           "--parallel")
        self.assertStatus(r, 1)
        self.check_stamped(r.err)
        self.assertRegex(r.err, r"(?m)^\[ +0\.\d{6}\] vmmux: info: vmm 'exit': guest wrote")

    def test_config_key(self):
        cfg = self.path("vm.json")
        with open(cfg, "w") as f:
            json.dump({"guest": {"kernel": guest("hello.elf")}, "log_level": "info",
                       "log_timestamps": True}, f)
        r = self.vmmux("run", "--config", cfg)
        self.assertStatus(r, 1)
        self.check_stamped(r.err)
