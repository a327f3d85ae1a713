"""Routes compiled into KVM: coalesced writes (KVM's coalesced ring, ports
and MMIO) reach their VMM with their values and in order, doorbells
(KVM_IOEVENTFD) with the right count, and vmmux's own exit counters show no
userspace exit for them; a live route change moves them to another VMM,
none lost and none at a third; the options are refused where KVM cannot
apply them. The guest runs at CPL3 (guest/tests/compiled.c). Run in both
placements (the kvm-parallel suite makes the VMMs parallel processes, which
then read their doorbells' eventfds themselves)."""
import json
import os

from harness import (EXIT_USAGE, PARALLEL, ApiClient, VmmuxTest, exit_device_status, guest,
                     start_vmmux, wait_for_socket, wait_until)

N = 100  # COMPILED_N in guest/tests/compiled.c
MISS = 3  # COMPILED_MISS
COMPILED = ["--route", "io:0x520-0x527=co;coalesced",
            "--route", "mmio:0xd0000000+0x1000=co;coalesced",
            "--route", "io:0x510=db;doorbell",
            "--route", "mmio:0xd0001000+4=db;doorbell=1"]
PLAIN = ["--route", "io:0x520-0x527=co", "--route", "mmio:0xd0000000+0x1000=co",
         "--route", "io:0x510=db", "--route", "mmio:0xd0001000+4=db"]


def route(stats, spec):
    for r in stats["routes"]:
        if r["spec"] == spec:
            return r
    return {"count": 0, "exits": 0, "compiled": 0}


class Compiled(VmmuxTest):
    def run_compiled(self, routes):
        co, co_log = self.monitor("co")
        db, db_log = self.monitor("db")
        r, stats = self.run_with_stats("compiled.elf", "--cpu-mode", "user", *co, *db, *routes)
        self.assertNoCrash(r)
        self.assertStatus(r, exit_device_status(0))
        self.assertIn("compiled done", r.out)
        return stats, self.read_log(co_log), self.read_log(db_log)

    def test_coalesced_values_and_order(self):
        stats, co, _ = self.run_compiled(COMPILED)
        io = [e for e in co if e["type"] == "io"]
        # the N writes, values and order kept, then the read that exited
        self.assertEqual([int(e["value"], 16) for e in io[:N]], list(range(N)))
        for e in io[:N]:
            self.assertTrue(e["write"])
            self.assertEqual((e["key"], e["size"], e["vcpu"]), ("0x520", 4, None), e)
        self.assertEqual(len(io), N + 1)
        self.assertFalse(io[N]["write"])
        self.assertEqual((io[N]["key"], io[N]["vcpu"]), ("0x524", 0))
        mmio = [e for e in co if e["type"] == "mmio"]
        self.assertEqual([(int(e["key"], 16), int(e["value"], 16)) for e in mmio[:N]],
                         [(0xd0000000 + 4 * (i % 8), 0x1000 + i) for i in range(N)])
        self.assertEqual(len(mmio), N + 1)
        self.assertEqual((mmio[N]["key"], mmio[N]["write"]), ("0xd0000800", False))
        # every write came out of the ring (no vCPU: no exit); the order of
        # the two routes' events is the guest's
        self.assertTrue(all(e["vcpu"] is None for e in io[:N] + mmio[:N]))
        self.assertEqual(co.index(io[N]), N)
        # vmmux's own counters: the read is the routes' only exit
        for spec in ("io:0x520-0x527=co;coalesced", "mmio:0xd0000000-0xd0000fff=co;coalesced"):
            r = route(stats, spec)
            self.assertEqual((r["count"], r["exits"], r["compiled"]), (N + 1, 1, N), spec)
        self.assertEqual(stats["compiled"]["coalesced"], 2 * N)

    def test_doorbell_counts(self):
        stats, _, db = self.run_compiled(COMPILED)
        io = [e for e in db if e["type"] == "io"]
        self.assertEqual(len(io), N)
        for e in io:
            # the value is lost: 0 and no vCPU, a write of the route's size
            self.assertEqual((e["key"], e["size"], e["value"], e["vcpu"], e["write"]),
                             ("0x510", 1, "0x0", None, True), e)
        mmio = [e for e in db if e["type"] == "mmio"]
        rings = [e for e in mmio if e["vcpu"] is None]
        misses = [e for e in mmio if e["vcpu"] is not None]
        # datamatch: the writes of 1 signal (the VMM sees 1), those of 2 exit
        self.assertEqual(len(rings), N)
        self.assertTrue(all(e["value"] == "0x1" and e["size"] == 4 for e in rings))
        self.assertEqual([e["value"] for e in misses], ["0x2"] * MISS)
        port = route(stats, "io:0x510=db;doorbell")
        mm = route(stats, "mmio:0xd0001000-0xd0001003=db;doorbell=0x1")
        self.assertEqual(port["exits"], 0)
        self.assertEqual(mm["exits"], MISS)
        if PARALLEL:
            # the VMM's process reads the eventfds itself: vmmux never sees
            # the rings, and counts what the VMM reported by the report's time
            self.assertEqual(stats["compiled"]["doorbell"], 0)
            self.assertEqual(port["count"], 0)
            self.assertLessEqual(port["compiled"], N)
            self.assertLessEqual(stats["compiled"]["doorbell_vmm"], 2 * N)
        else:
            self.assertEqual((port["count"], port["compiled"]), (N, N))
            self.assertEqual((mm["count"], mm["compiled"]), (N + MISS, N))
            self.assertEqual(stats["compiled"]["doorbell"], 2 * N)
        # N io writes exit nowhere: a handful of exits in all (console, reads)
        self.assertLess(stats["exits"]["reasons"]["io"], N)

    def test_without_compilation_every_write_exits(self):
        # the same guest on ordinary routes: the counters see every exit
        stats, co, db = self.run_compiled(PLAIN)
        self.assertEqual(route(stats, "io:0x520-0x527=co")["exits"], N + 1)
        self.assertEqual(route(stats, "io:0x510=db")["exits"], N)
        self.assertEqual(route(stats, "mmio:0xd0001000-0xd0001003=db")["exits"], N + MISS)
        self.assertEqual(route(stats, "io:0x520-0x527=co")["compiled"], 0)
        self.assertGreaterEqual(stats["exits"]["reasons"]["io"], 2 * N + 1)
        self.assertGreaterEqual(stats["exits"]["reasons"]["mmio"], 2 * N + MISS + 1)
        self.assertEqual(stats["compiled"], {"coalesced": 0, "doorbell": 0, "doorbell_vmm": 0})
        self.assertTrue(all(e["vcpu"] == 0 for e in co + db))
        # the doorbell's values arrive on the ordinary path
        self.assertEqual([int(e["value"], 16) for e in db if e["type"] == "io"],
                         [i & 0xff for i in range(N)])

    def test_routes_lists_the_options(self):
        r = self.vmmux("routes", "--no-defaults", "--vmm", "co=sink", "--vmm", "db=sink",
                       *COMPILED)
        self.assertStatus(r, 0)
        self.assertRegex(r.out, r"io:0x520-0x527=co;coalesced\s+co\s+coalesced")
        self.assertRegex(r.out, r"io:0x510=db;doorbell\s+db\s+doorbell")
        self.assertIn("mmio:0xd0001000-0xd0001003=db;doorbell=0x1", r.out)

    def test_bench_guest(self):
        # the benchmark's guest: its doorbell loop makes no userspace exit
        r, stats = self.run_with_stats("compiled_bench.elf", "--cpu-mode", "user",
                                       "--vmm", "s=sink", "--route", "io:0x510=s;doorbell",
                                       "--route", "io:0x90=s")
        self.assertNoCrash(r)
        self.assertStatus(r, exit_device_status(0))
        self.assertRegex(r.out, r"doorbell 20000 cycles \d+\nexit 20000 cycles \d+\n")
        self.assertEqual(route(stats, "io:0x510=s;doorbell")["exits"], 0)
        self.assertEqual(route(stats, "io:0x90=s")["exits"], 20000)


class Refused(VmmuxTest):
    def refused(self, route, what, *extra):
        r = self.run_guest("compiled.elf", "--cpu-mode", "user", "--vmm", "x=sink",
                           "--route", route, *extra)
        self.assertNoCrash(r)
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn(what, r.err)

    def test_grammar(self):
        self.refused("io:0x510-0x512=x;doorbell", "route 'io:0x510-0x512=x;doorbell': option "
                     "'doorbell' needs a key range of exactly one access: 1, 2 or 4 ports")
        self.refused("msr:0x10=x;coalesced", "applies to io and mmio routes only")
        self.refused("io:0x510=x;doorbell=0x100", "does not fit a 1-byte write")

    def test_ram(self):
        self.refused("mmio:0x1000+4=x;doorbell", "route 'mmio:0x1000-0x1003=x;doorbell': "
                     "option 'doorbell' on guest RAM")
        self.refused("mmio:0x100000+0x1000=x;coalesced", "the guest's accesses there never "
                     "leave it")

    def test_in_kernel_devices(self):
        self.refused("io:0x40-0x43=x;coalesced", "covers the in-kernel PIT (0x40-0x43), which "
                     "KVM handles itself with --irqchip", "--irqchip")
        self.refused("mmio:0xfee00000+4=x;doorbell", "the in-kernel LAPIC", "--irqchip")


class LiveChange(VmmuxTest):
    def test_route_change_moves_them(self):
        api_path = self.path("api.sock")
        logs = {m: self.path(m + ".jsonl") for m in ("mon1", "mon2")}
        sj = self.path("stats.json")
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("compiled_loop.elf"), "--cpu-mode", "user",
            "--api-sock", api_path, "--watchdog", "120s", "--stats-json", sj,
            "--vmm", "mon1=monitor,output=%s" % logs["mon1"],
            "--vmm", "mon2=monitor,output=%s" % logs["mon2"],
            "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--route", "io:0x520-0x527=mon1;coalesced", "--route", "io:0x510=mon1;doorbell",
            "--route", "io:0x92=stop0")
        try:
            wait_for_socket(api_path, vm)
            api = ApiClient(api_path)
            owner = {api.call("routes.list")["generation"]: "mon1"}

            def events(m):
                # both kinds: coalesced values (0x520) and doorbell rings
                # (0x510), which the compiled-routes thread reads on its
                # own time (a change moves unread rings to the new VMM)
                try:
                    keys = {e["key"] for e in self.read_log(logs[m])}
                except ValueError:  # a line being written
                    return False
                return {"0x520", "0x510"} <= keys

            wait_until("events of both kinds at mon1", lambda: events("mon1"), timeout=30)
            changes = [{"op": "replace", "spec": "io:0x520-0x527=mon2;coalesced"},
                       {"op": "replace", "spec": "io:0x510=mon2;doorbell"}]
            gen = api.call("routes.batch", {"changes": changes})["generation"]
            owner[gen] = "mon2"
            wait_until("events of both kinds at mon2", lambda: events("mon2"), timeout=30)
            # a change that touches neither registration keeps them: mon2 still
            gen = api.call("routes.replace", {"spec": "io:0x92=stop1"})["generation"]
            owner[gen] = "mon2"
            api.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        self.assertNoCrash(r)
        self.assertStatus(r, exit_device_status(0))
        self.assertTrue(r.out.startswith("compiled loop "), r)
        rounds = int(r.out.split()[2])
        values, rings = [], 0
        per_vmm = {"mon1": [0, 0], "mon2": [0, 0]}
        for m, path in logs.items():
            last = -1
            for e in self.read_log(path):
                # exactly the VMM that the table of this generation named
                self.assertIn(e["gen"], owner, e)
                self.assertEqual(owner[e["gen"]], m, e)
                if e["key"] == "0x520":
                    v = int(e["value"], 16)
                    self.assertGreater(v, last, "out of order at %s: %r" % (m, e))
                    last = v
                    values.append(v)
                    per_vmm[m][0] += 1
                else:
                    self.assertEqual(e["key"], "0x510", e)
                    rings += 1
                    per_vmm[m][1] += 1
        # none lost, none twice, none elsewhere
        self.assertEqual(sorted(values), list(range(rounds)))
        self.assertEqual(rings, rounds)
        # both VMMs had both kinds of events: the change moved them
        for m in ("mon1", "mon2"):
            self.assertGreater(per_vmm[m][0], 0, per_vmm)
            self.assertGreater(per_vmm[m][1], 0, per_vmm)
        with open(sj) as f:
            stats = json.load(f)
        # the coalesced writes went through the ring: exits on 0x520 are the
        # few (if any) of a full ring or of the change's instant
        exits = sum(x["exits"] for x in stats["routes"] if x["spec"].startswith("io:0x520"))
        self.assertLess(exits, rounds // 10 + 10, stats["routes"])
        self.assertGreater(stats["compiled"]["coalesced"], rounds // 2)
