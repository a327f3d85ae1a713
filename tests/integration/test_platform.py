"""Platform events and the ends of a run: triple fault, reset through 0xcf9
and the i8042, ACPI power-off, SMIs, the exit device's statuses and the
watchdog."""
import os
import signal
import subprocess
import time

from harness import (EXIT_GUEST_CRASH, EXIT_POWEROFF, VMMUX, VmmuxTest, exit_device_status,
                     guest)

PLAT_WATCHDOG = 4  # include/vmmux/vmmux.h


class Shutdown(VmmuxTest):
    def test_triple_fault_default(self):
        r, st = self.run_with_stats("triple.elf")
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "boot 1\n")
        self.assertIn("shutdown (triple fault)", r.err)
        self.assertIn("guest crashed", r.err)
        self.assertEqual(self.route_count(st, "type:shutdown=main"), 1)
        self.assertEqual(st["types"]["shutdown"]["count"], 1)

    def test_triple_fault_monitor_ends_the_run(self):
        mon, log = self.monitor("mon", shutdown="end")
        r = self.run_guest("triple.elf", *mon, "--route", "type:shutdown=mon")
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertEqual(r.out, "boot 1\n")
        self.assertEqual([(e["type"], e["action"]) for e in self.read_log(log)],
                         [("shutdown", "end")])
        self.assertIn("vmm 'mon' ended the run", r.err)


class Reset(VmmuxTest):
    def test_reset_through_cf9_and_i8042(self):
        # Boot 1 resets through 0xcf9, boot 2 through the i8042's 0xFE, boot 3
        # exits with code 3. RAM is not cleared: the boot count survives.
        r, st = self.run_with_stats("reset.elf", "--log-level", "info")
        self.assertStatus(r, exit_device_status(3))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "boot 1\nboot 2\nboot 3\n")
        self.assertEqual(self.route_count(st, "io:0xcf9=chipset"), 1)
        self.assertEqual(self.route_count(st, "io:0x64=chipset"), 1)
        self.assertEqual(self.route_count(st, "type:platform=main"), 2)
        self.assertEqual(st["types"]["platform"]["count"], 2)
        self.assertEqual(r.err.count("resetting the VM"), 2, r.err)
        self.assertIn("reset control register", r.err)
        self.assertIn("i8042 command 0xfe", r.err)


class PowerOff(VmmuxTest):
    def test_poweroff(self):
        r, st = self.run_with_stats("poweroff.elf")
        self.assertStatus(r, EXIT_POWEROFF)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "poweroff\n")
        self.assertEqual(self.route_count(st, "io:0x604-0x605=chipset"), 1)
        self.assertEqual(self.route_count(st, "type:platform=main"), 1)
        self.assertEqual(r.err, "")


class Smi(VmmuxTest):
    def test_smi_handled_by_smm(self):
        r, st = self.run_with_stats("smi.elf", "--log-level", "info")
        self.assertStatus(r, exit_device_status(1))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "apm status 1\n")
        self.assertIn("SMI 1 serviced: APM command 0x42", r.err)
        self.assertEqual(self.route_count(st, "platform:smi=smm"), 1)
        self.assertEqual(self.route_count(st, "io:0xb2-0xb3=smm"), 2)
        # smm takes the OUT to 0xb2, the IN from 0xb3 and the SMI it raised.
        self.assertEqual(self.vmm_count(st, "smm"), 3)

    def test_smi_without_a_handler(self):
        # Routed to main, which has no SMI handler: ignored and logged once.
        r, st = self.run_with_stats("smi.elf", "--route", "platform:smi=main")
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "apm status 0\n")
        self.assertIn("SMI (command 0x42) with no SMI handler", r.err)
        self.assertEqual(self.route_count(st, "platform:smi=main"), 1)
        self.assertEqual(self.route_count(st, "platform:smi=smm"), 0)


class ExitDevice(VmmuxTest):
    # (guest and its options, output, code the guest writes to port 0xf4)
    CASES = [
        (("hello.elf",), "hello from vmmux\n", 0),
        (("mb_hello.mb",), None, 0x2a),
        (("raw16.bin", "--format", "raw", "--load-addr", "0x7c00", "--cpu-mode", "real"),
         "real mode\n", 0x05),
        (("raw64.bin", "--format", "raw", "--load-addr", "0x200000", "--cpu-mode", "long"),
         "raw long\n", 0x06),
        (("smi.elf",), "apm status 1\n", 1),
        (("user.elf", "--cpu-mode", "user"), "cpl3 ok\n", 0),
        (("reset.elf",), "boot 1\nboot 2\nboot 3\n", 3),
    ]

    def test_exit_statuses(self):
        for args, out, code in self.CASES:
            with self.subTest(guest=args[0], code=code):
                r, st = self.run_with_stats(*args)
                self.assertStatus(r, exit_device_status(code))
                if out is not None:
                    self.assertEqual(r.out, out)
                self.assertEqual(self.route_count(st, "io:0xf4-0xf7=exit"), 1)
                self.assertEqual(self.route_count(st, "type:request=main"), 1)


class Watchdog(VmmuxTest):
    """A guest that never ends: hlt.elf with the in-kernel irqchip halts in
    KVM with interrupts off."""

    def test_watchdog_ends_the_run(self):
        r, st = self.run_with_stats("hlt.elf", "--irqchip", "--watchdog", "1s", timeout=60)
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "before hlt\n")
        self.assertIn("watchdog expired", r.err)
        self.assertEqual(self.route_count(st, "type:platform=main"), 1)
        self.assertEqual(st["types"]["hlt"]["count"], 0, "HLT stays in KVM")

    def test_watchdog_not_fired_by_a_guest_that_ends(self):
        r = self.run_guest("hello.elf", "--watchdog", "60s")
        self.assertStatus(r, exit_device_status(0))
        self.assertNotIn("watchdog", r.err)

    def test_watchdog_routed_to_monitor_does_not_end_the_run(self):
        # The monitor only logs the watchdog event, so the run goes on; once
        # the event is in the log, SIGTERM ends it. Had the watchdog ended the
        # run, its status (8) would have won over the signal.
        mon, log = self.monitor("mon")
        p = subprocess.Popen([VMMUX, "run", "--kernel", guest("hlt.elf"), "--irqchip",
                              "--watchdog", "1s", *mon, "--route", "platform:watchdog=mon"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not self.read_log_prefix(log) and p.poll() is None:
                if time.monotonic() > deadline:
                    self.fail("no watchdog event within 60 s")
                time.sleep(0.02)
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        err = err.decode(errors="replace")
        self.assertEqual(p.returncode, -signal.SIGTERM, err)
        self.assertEqual(out.decode(), "before hlt\n")
        self.assertNotIn("watchdog expired", err)
        self.assertEqual([(e["type"], e["key"], e["vcpu"], e["src"], e["action"])
                          for e in self.read_log(log)],
                         [("platform", PLAT_WATCHDOG, None, "host", "done")])

    @staticmethod
    def read_log_prefix(path):
        """True once PATH holds a complete line."""
        if not os.path.exists(path):
            return False
        with open(path) as f:
            return f.read().endswith("\n")
