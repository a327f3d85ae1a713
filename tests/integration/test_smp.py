"""Several vCPUs routing at once: smp.elf with two vCPUs, each writing its
index 1000 times to its own port (vCPU 0 to 0x90, vCPU 1 to 0x91). Each
check runs several times to catch races."""
import os

from harness import VmmuxTest, exit_device_status

RUNS = 5
WRITES = 1000
CPUS = 2


class Smp(VmmuxTest):
    def run_smp(self, *args):
        for name in os.listdir(self.tmp):  # nothing from an earlier run
            os.remove(self.path(name))
        r, st = self.run_with_stats("smp.elf", "--cpus", str(CPUS), *args)
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "smp done %d\n" % CPUS)
        return r, st

    def check_events(self, events, vmm, cpu):
        """EVENTS are exactly vCPU CPU's writes of its index to 0x90 + CPU."""
        self.assertEqual(len(events), WRITES, "events of vCPU %d at %s" % (cpu, vmm))
        want = (vmm, "io", "%#x" % (0x90 + cpu), True, 1, 1, "%#x" % cpu, cpu, "vcpu", cpu,
                "done")
        bad = [e for e in events
               if (e["vmm"], e["type"], e["key"], e["write"], e["size"], e["count"], e["value"],
                   e["vcpu"], e["src"], e["src_id"], e["action"]) != want]
        self.assertEqual(bad, [], "expected %r" % (want,))

    def test_two_vcpus_one_monitor(self):
        for run in range(RUNS):
            with self.subTest(run=run):
                mon, log = self.monitor("mon")
                r, st = self.run_smp(*mon, "--route", "io:0x90-0x91=mon")
                events = self.read_log(log)
                self.assertEqual(len(events), CPUS * WRITES)
                for cpu in range(CPUS):
                    self.check_events([e for e in events if e["vcpu"] == cpu], "mon", cpu)
                self.assertEqual(self.route_count(st, "io:0x90-0x91=mon"), CPUS * WRITES)
                self.assertEqual(self.vmm_count(st, "mon"), CPUS * WRITES)
                self.assertEqual(st["types"]["io"]["unrouted"], 0)

    def test_two_vcpus_two_monitors(self):
        # The table sends each vCPU's port to a different monitor.
        for run in range(RUNS):
            with self.subTest(run=run):
                mon, log = self.monitor("mon")
                mon2, log2 = self.monitor("mon2")
                r, st = self.run_smp(*mon, *mon2, "--route", "io:0x90=mon",
                                     "--route", "io:0x91=mon2")
                self.check_events(self.read_log(log), "mon", 0)
                self.check_events(self.read_log(log2), "mon2", 1)
                self.assertEqual(self.route_count(st, "io:0x90=mon"), WRITES)
                self.assertEqual(self.route_count(st, "io:0x91=mon2"), WRITES)
                self.assertEqual(self.vmm_count(st, "mon"), WRITES)
                self.assertEqual(self.vmm_count(st, "mon2"), WRITES)

    def test_two_vcpus_swapped_table(self):
        # The same run with the table the other way round.
        mon, log = self.monitor("mon")
        mon2, log2 = self.monitor("mon2")
        r, st = self.run_smp(*mon, *mon2, "--route", "io:0x90=mon2", "--route", "io:0x91=mon")
        self.check_events(self.read_log(log2), "mon2", 0)
        self.check_events(self.read_log(log), "mon", 1)

    def test_two_vcpus_unrouted(self):
        # Without routes the writes are dropped; each port is logged once
        # although both vCPUs hit the default at once.
        for run in range(RUNS):
            with self.subTest(run=run):
                r, st = self.run_smp()
                self.assertEqual(st["types"]["io"]["unrouted"], CPUS * WRITES)
                self.assertEqual(self.route_count(st, "type:io=main"), CPUS * WRITES)
                lines = [x for x in r.err.splitlines() if "unrouted" in x]
                self.assertEqual(len(lines), 2, r.err)
                self.assertEqual(sorted("port 0x90" in x for x in lines), [False, True])
                self.assertEqual(sorted("port 0x91" in x for x in lines), [False, True])
