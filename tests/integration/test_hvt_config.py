"""vmmux run --config with a Solo5 hvt guest (guest.format "hvt", the hvt
section): the same set-up as vmmux hvt, with the config's VMMs and routes
deciding placement. The machine's hypercalls (walltime, poll, halt) are the
main VMM's; the block VMM runs in each placement; a route of the file takes
puts away from the console; every error names its JSON path.
"""
import json
import os

from harness import VmmuxTest, guest, run_vmmux

HELLO, BLK = "hvt/hvt_hello.hvt", "hvt/hvt_blk.hvt"


class HvtConfigTest(VmmuxTest):
    def config(self, doc, name="vm.json"):
        p = self.path(name)
        with open(p, "w") as f:
            json.dump(doc, f)
        return p

    def image(self, size, name="disk.img"):
        p = self.path(name)
        with open(p, "wb") as f:
            f.truncate(size)
        return p

    def run_config(self, doc, *extra):
        return run_vmmux("run", "--config", self.config(doc), *extra)

    def assertRefused(self, doc, text, status=1):
        r = self.run_config(doc)
        self.assertStatus(r, status)
        self.assertNoCrash(r)
        self.assertIn(text, r.err)


def hello(*args, **more):
    doc = {"machine": {"mem": "16M"},
           "guest": {"kernel": guest(HELLO), "format": "hvt", "args": list(args)},
           "stats": True}
    doc.update({k: v for k, v in more.items() if v is not None})
    return doc


def blk(*args, **more):
    doc = {"machine": {"mem": "16M"},
           "guest": {"kernel": guest(BLK), "format": "hvt", "args": list(args)},
           "hvt": {"block": {"storage": {"path": "disk.img"}}},
           "stats": True}
    doc.update({k: v for k, v in more.items() if v is not None})
    return doc


def stats_rows(err, first):
    """The rows of the statistics table whose header starts with FIRST."""
    lines = err.splitlines()
    for i, line in enumerate(lines):
        if line.split()[:len(first.split()) + 1] == first.split() + ["count"]:
            rows = []
            for row in lines[i + 1:]:
                if not row.strip():
                    break
                rows.append(row.split())
            return rows
    raise AssertionError("no %r table in:\n%s" % (first, err))


class Hello(HvtConfigTest):
    def test_hello_and_the_main_vmm_halts(self):
        r = self.run_config(hello("hello", "a"))
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "Hello, world\narg 1: hello\narg 2: a\n")
        routes = {row[0]: int(row[1]) for row in stats_rows(r.err, "route")}
        self.assertEqual(routes.get("hypercall:8=main"), 1)
        self.assertGreater(routes.get("hypercall:2=console", 0), 0)
        vmms = {row[0]: row for row in stats_rows(r.err, "vmm (where)")}
        self.assertIn("main", vmms)
        self.assertEqual(vmms["main"][2], "1")  # the halt
        self.assertNotIn("hvt", vmms)

    def test_walltime_poll_and_exit_status(self):
        r = self.run_config(hello("walltime"))
        self.assertStatus(r, 0)
        self.assertIn(" ok", r.out)
        routes = {row[0]: int(row[1]) for row in stats_rows(r.err, "route")}
        self.assertGreater(routes.get("hypercall:1=main", 0), 0)
        r = self.run_config(hello("poll", "100000000"))
        self.assertStatus(r, 0)
        self.assertIn("poll ret=0 ready=0", r.out)
        self.assertStatus(self.run_config(hello("exit", "7")), 7)
        self.assertStatus(self.run_config(hello("abort")), 255)

    def test_puts_routed_to_a_monitor(self):
        doc = hello("hello", vmms=[{"name": "mon", "role": "monitor", "output": "mon.log"}],
                    routes=["hypercall:2=mon"])
        r = self.run_config(doc)
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "")  # the console VMM no longer sees puts
        with open(self.path("mon.log")) as f:
            events = [json.loads(line) for line in f if line.strip()]
        self.assertGreater(len(events), 0)
        for ev in events:
            self.assertEqual((ev["vmm"], ev["type"], ev["key"]), ("mon", "hypercall", 2))
        routes = {row[0]: int(row[1]) for row in stats_rows(r.err, "route")}
        self.assertEqual(routes.get("hypercall:2=mon"), len(events))
        self.assertNotIn("hypercall:2=console", routes)

    def test_command_line_puts_in_each_placement(self):
        # the boot information's cmdline pointer (low memory the host wrote)
        # passed to puts: the console's read-only window, in-process and as
        # a sandboxed parallel VMM (whose mapping of it is read-only)
        for where in ("main", "parallel"):
            with self.subTest(where=where):
                doc = hello("cmdline", "z", vmms=[{"name": "console", "role": "hvt-console",
                                                   "placement": where}])
                r = self.run_config(doc)
                self.assertStatus(r, 0)
                self.assertEqual(r.out, "Hello, World\nCommand line is: 'cmdline z'\n")
                row = {row[0]: row for row in stats_rows(r.err, "vmm (where)")}["console"]
                self.assertEqual(" ".join(row[1:3]).startswith("(pid"), where == "parallel",
                                 row)

    def test_console_output_to_a_file(self):
        doc = hello("hello", vmms=[{"name": "console", "role": "hvt-console",
                                    "output": "console.txt"}])
        r = self.run_config(doc)
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "")
        with open(self.path("console.txt")) as f:
            self.assertEqual(f.read(), "Hello, world\narg 1: hello\n")


class Block(HvtConfigTest):
    def check_placement(self, vmms, where):
        img = self.image(64 * 1024)
        r = self.run_config(blk("rw", vmms=vmms))
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "rw ok\n")
        row = {row[0]: row for row in stats_rows(r.err, "vmm (where)")}["block0"]
        self.assertTrue(" ".join(row[1:3]).startswith(where), row)
        r = self.run_config(blk("pattern", "0x5a", vmms=vmms))
        self.assertStatus(r, 0)
        with open(img, "rb") as f:
            self.assertEqual(f.read(), b"\x5a" * 64 * 1024)

    def test_block_vmm_parallel_by_default(self):
        self.check_placement(None, "(pid")

    def test_block_vmm_placed_in_process(self):
        self.check_placement([{"name": "block0", "role": "hvt-block", "placement": "main"}],
                             "(in-process)")

    def test_block_vmm_placed_parallel_explicitly(self):
        self.check_placement([{"name": "block0", "role": "hvt-block",
                               "placement": "parallel", "timeout": "2s"}], "(pid")

    def test_sector_size_and_puts_to_a_monitor(self):
        self.image(64 * 1024)
        doc = blk("info", hvt={"block": {"storage": {"path": "disk.img",
                                                      "sector_size": 4096}}},
                  vmms=[{"name": "mon", "role": "monitor", "output": "mon.log"},
                        {"name": "block0", "role": "hvt-block", "placement": "main"}],
                  routes=["hypercall:2=mon"])
        r = self.run_config(doc)
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "")
        with open(self.path("mon.log")) as f:
            self.assertIn('"key":2', f.read())
        doc["routes"] = []
        r = self.run_config(doc)
        self.assertEqual(r.out, "storage: handle 1 capacity 65536 block_size 4096\n")


class Routes(HvtConfigTest):
    def test_routes_shows_the_hvt_table(self):
        # vmmux routes runs the hvt set-up (manifest, devices) and prints the
        # table the run would use: the file's route first, the defaults after
        self.image(1 << 20)
        doc = blk(vmms=[{"name": "mon", "role": "monitor", "output": "mon.log"}],
                  routes=["hypercall:2=mon"])
        r = run_vmmux("routes", "--config", self.config(doc))
        self.assertStatus(r, 0)
        rows = {line.split()[0]: line.split()[1] for line in r.out.splitlines() if line}
        self.assertEqual(rows["hypercall:2=mon"], "mon")
        self.assertEqual(rows["hypercall:4-5=block0"], "block0")
        for call in (1, 3, 8):
            self.assertEqual(rows["hypercall:%d=main" % call], "main")
        self.assertFalse(os.path.exists(self.path("mon.log")), "routes started a VMM")

    def test_routes_refuses_what_run_refuses(self):
        # a declared block device without its image: the same error as run
        r = run_vmmux("routes", "--config", self.config(blk(hvt=None)))
        self.assertStatus(r, 2)
        self.assertIn("hvt.block.storage", r.err)


class Errors(HvtConfigTest):
    def test_json_paths(self):
        self.image(4096)
        self.image(1000, "odd.img")
        cases = [
            (blk("info", guest={"kernel": guest(BLK)}),
             "vm.json: hvt: devices of a Solo5 hvt guest: give guest.format \"hvt\"", 2),
            (hello(guest={"kernel": guest(HELLO), "args": ["x"]}),
             "vm.json: guest.args: the command line of a Solo5 hvt guest", 2),
            (blk("info", hvt={"block": {"storage": {}}}),
             "vm.json: hvt.block.storage.path: missing", 2),
            (blk("info", hvt={"block": {"storage": {"path": "disk.img",
                                                    "sector_size": 1000}}}),
             "vm.json: hvt.block.storage.sector_size: 1000", 2),
            (blk("info", hvt={"net": {"service": {"tap": "t", "mac": "zz"}}}),
             "vm.json: hvt.net.service.mac: 'zz'", 2),
            (blk("info", hvt={"block": {"storage": {"path": "disk.img", "x": 1}}}),
             "vm.json: hvt.block.storage.x: unknown key", 2),
            (blk("info", hvt={"block": {"storage": {"path": "missing.img"}}}),
             "vm.json: hvt.block.storage.path: ", 1),
            (blk("info", hvt={"block": {"storage": {"path": "odd.img"}}}),
             "vm.json: hvt.block.storage.path: Backing storage size must be block aligned", 1),
            (blk("info", hvt={"block": {"other": {"path": "disk.img"}}}),
             "vm.json: hvt.block.other.path: the unikernel declares no block device", 1),
            (blk("info", hvt={}),
             "vm.json: hvt.block: the unikernel declares block device 'storage', which is "
             "not attached (give hvt.block.storage)", 1),
            (blk("info", vmms=[{"name": "block0", "role": "sink"}]),
             "vmms[0] ('block0'): the VMM of the hvt guest's block device 'storage' has role",
             1),
            (blk("info", vmms=[{"name": "block0", "role": "hvt-block", "input": "x"}]),
             "vmms[0] ('block0'): input: set by vmmux", 1),
            (hello("x", routes=["hypercall:2=nobody"]), "no VMM named 'nobody'", 1),
            (hello("x", machine={"cpus": 2}), "vm.json: machine.cpus: an hvt guest has", 1),
        ]
        for doc, text, status in cases:
            with self.subTest(text=text):
                self.assertRefused(doc, text, status)

    def test_fd_form_is_not_for_users(self):
        doc = {"guest": {"kernel": guest(HELLO), "format": "hvt"},
               "vmms": [{"name": "m", "role": "monitor", "output": "fd:1"}]}
        self.assertRefused(doc, "vmms[0].output: output 'fd:1': fd:N is reserved", 2)
        r = run_vmmux("run", "--kernel", guest(HELLO), "--vmm", "m=monitor,input=fd:0")
        self.assertStatus(r, 2)
        self.assertIn("fd:N is reserved", r.err)
