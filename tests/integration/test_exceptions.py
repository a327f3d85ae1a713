"""Exceptions: #DB from hardware breakpoints and single-step of a CPL0 guest
(KVM guest debug), exceptions the guest reports through the fault-report
port, and the #BP paths that these hosts cannot deliver (counted host-limit
skips when exactly that is observed)."""
import re

from harness import (EXIT_GUEST_CRASH, EXIT_HOST, VmmuxTest, disassemble, exit_device_status,
                     insn_after, symbol)

DR6_BS = 1 << 14  # DR6: single-step
RAW16 = ("raw16.bin", "--format", "raw", "--load-addr", "0x7c00", "--cpu-mode", "real")
RAW64 = ("raw64.bin", "--format", "raw", "--load-addr", "0x200000", "--cpu-mode", "long")
JUMPS = ("jmp", "call")  # control transfers that never fall through
ANYWHERE = ("ret", "retq", "iret", "iretq", "lret")


def hx(v):
    return "%#x" % v


def successors(insns, a):
    """Where the instruction at A may leave the vCPU after one step: a set of
    addresses, or None when it cannot be told statically (ret, indirect
    jumps)."""
    n, text = insns[a]
    op = text.split()
    mnem = op[0]
    if mnem.startswith("rep") and len(op) > 1:
        return {a, a + n}  # a string instruction steps per iteration
    if mnem in ANYWHERE or (len(op) > 1 and op[1].startswith("*")):
        return None
    target = None
    if len(op) > 1 and re.fullmatch(r"[0-9a-f]+", op[1]):
        target = int(op[1], 16)
    if mnem in JUMPS and target is not None:
        return {target}
    if (mnem.startswith("j") or mnem.startswith("loop")) and target is not None:
        return {a + n, target}
    return {a + n}


class HardwareBreakpoint(VmmuxTest):
    """--break: a DR0-DR3 breakpoint gives KVM_EXIT_DEBUG, vector 1."""

    def test_db_routed_to_monitor(self):
        target = symbol("bp.elf", "bp_target")
        mon, log = self.monitor("mon")
        r, st = self.run_with_stats("bp.elf", "--break", hx(target), *mon,
                                    "--route", "exception:1=mon")
        # bp_target ran exactly once (else exit code 0x23): vmmux stepped
        # over the breakpoint after the monitor consumed it.
        self.assertStatus(r, exit_device_status(0x22))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "bp done\n")
        events = self.read_log(log)
        self.assertEqual([(e["type"], e["key"], e["value"], e["flags"], e["vcpu"], e["src"],
                           e["action"]) for e in events],
                         [("exception", 1, hx(target), ["hostdebug"], 0, "vcpu", "done")])
        self.assertEqual(int(events[0]["aux"], 16) & 0xf, 1, "DR6.B0")
        self.assertEqual(self.route_count(st, "exception:1=mon"), 1)
        self.assertEqual((st["types"]["exception"]["count"],
                          st["types"]["exception"]["unrouted"]), (1, 0))

    def test_db_default_resumes(self):
        target = symbol("bp.elf", "bp_target")
        r, st = self.run_with_stats("bp.elf", "--break", hx(target))
        self.assertStatus(r, exit_device_status(0x22))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "bp done\n")
        self.assertNotIn("crash", r.err)
        self.assertEqual(self.route_count(st, "type:exception=main"), 1)
        self.assertEqual((st["types"]["exception"]["count"],
                          st["types"]["exception"]["unrouted"]), (1, 1))

    def test_db_two_breakpoints_in_order(self):
        main, target = symbol("bp.elf", "main"), symbol("bp.elf", "bp_target")
        mon, log = self.monitor("mon")
        r = self.run_guest("bp.elf", "--break", hx(main), "--break", hx(target), *mon,
                           "--route", "exception:1=mon")
        self.assertStatus(r, exit_device_status(0x22))
        self.assertEqual(r.out, "bp done\n")
        # main runs first (DR0, DR6.B0), then bp_target (DR1, DR6.B1).
        self.assertEqual([(e["key"], e["value"], int(e["aux"], 16) & 0xf)
                          for e in self.read_log(log)], [(1, hx(main), 1), (1, hx(target), 2)])

    def test_db_breakpoint_never_reached(self):
        # A breakpoint on code that never runs raises nothing.
        mon, log = self.monitor("mon")
        r = self.run_guest("bp.elf", "--break", hx(symbol("bp.elf", "park")), *mon,
                           "--route", "exception:1=mon")
        self.assertStatus(r, exit_device_status(0x22))
        self.assertEqual(self.read_log(log), [])


class SingleStep(VmmuxTest):
    """--single-step: one #DB per instruction, at a monitor or resumed by
    main."""

    def step(self, image, *more):
        mon, log = self.monitor("mon")
        r, st = self.run_with_stats(image[0], *image[1:], "--single-step", *mon,
                                    "--route", "exception:1=mon", *more)
        return r, st, self.read_log(log)

    def check_trace(self, events, insns, entry):
        """Each #DB is at an instruction the previous one can lead to."""
        self.assertGreater(len(events), 0)
        for e in events:
            self.assertEqual((e["type"], e["key"], e["flags"], e["vcpu"], e["action"]),
                             ("exception", 1, ["hostdebug"], 0, "done"))
            self.assertTrue(int(e["aux"], 16) & DR6_BS, "DR6.BS in %r" % e)
        rips = [int(e["value"], 16) for e in events]
        prev = entry
        for i, rip in enumerate(rips):
            self.assertIn(rip, insns, "step %d: %#x is not an instruction" % (i, rip))
            ok = successors(insns, prev)
            # KVM's emulator drops the single-step trap of an OUT that exits
            # to userspace: the next #DB is one instruction later.
            if insns[prev][1].startswith("out"):
                after = successors(insns, prev + insns[prev][0])
                ok = None if after is None else ok | after
            if ok is not None:
                self.assertIn(rip, ok, "step %d: %#x cannot follow %#x (%s)" % (
                    i, rip, prev, insns[prev][1]))
            prev = rip
        # The last instruction is the OUT to the exit device.
        self.assertTrue(insns[rips[-1]][1].startswith("out"), insns[rips[-1]])
        return rips

    def test_single_step_real_mode_at_monitor(self):
        r, st, events = self.step(RAW16)
        self.assertStatus(r, exit_device_status(5))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "real mode\n")
        msg = symbol("raw16.bin", "msg")
        insns = {a: (n, t) for a, n, t in disassemble("raw16.bin", "-m", "i8086") if a < msg}
        rips = self.check_trace(events, insns, 0x7c00)
        self.assertEqual(rips[0], 0x7c01, "the first #DB follows the first instruction")
        # The print loop runs once per character of "real mode\n" and once for
        # its terminating NUL.
        self.assertEqual(rips.count(symbol("raw16.bin", "next")), len("real mode\n") + 1)
        self.assertEqual(self.route_count(st, "exception:1=mon"), len(events))
        self.assertEqual((st["types"]["exception"]["count"],
                          st["types"]["exception"]["unrouted"]), (len(events), 0))

    def test_single_step_long_mode_at_monitor(self):
        r, st, events = self.step(RAW64)
        self.assertStatus(r, exit_device_status(6))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "raw long\n")
        insns = {a: (n, t) for a, n, t in disassemble("raw64.bin")}
        rips = self.check_trace(events, insns, 0x200000)
        self.assertIn(rips[0], successors(insns, 0x200000))

    def test_single_step_default_resumes(self):
        # Without a route main resumes each step: the same number of #DB.
        _, _, events = self.step(RAW16)
        r, st = self.run_with_stats(*RAW16, "--single-step")
        self.assertStatus(r, exit_device_status(5))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "real mode\n")
        self.assertEqual((st["types"]["exception"]["count"],
                          st["types"]["exception"]["unrouted"]), (len(events), len(events)))
        self.assertEqual(self.route_count(st, "type:exception=main"), len(events))

    def test_single_step_over_hardware_breakpoint(self):
        # With both, vmmux's own step over the breakpoint is also a user step:
        # the breakpoint's #DB and then single steps, bp_target once.
        target = symbol("bp.elf", "bp_target")
        mon, log = self.monitor("mon")
        r = self.run_guest("bp.elf", "--single-step", "--break", hx(target), *mon,
                           "--route", "exception:1=mon", timeout=120)
        self.assertStatus(r, exit_device_status(0x22))
        self.assertEqual(r.out, "bp done\n")
        at_target = [e for e in self.read_log(log) if e["value"] == hx(target)]
        self.assertEqual(len(at_target), 2, "one step onto bp_target, one breakpoint hit")
        self.assertEqual(sorted(int(e["aux"], 16) & (DR6_BS | 0xf) for e in at_target),
                         sorted([DR6_BS, 1]))


class GuestReported(VmmuxTest):
    """Exceptions the guest runtime reports through the fault-report port."""

    def test_bp_report_consumed(self):
        _, ret = insn_after("bpreport.elf", "main", "<rt_report_breakpoint>")
        mon, log = self.monitor("mon")
        r, st = self.run_with_stats("bpreport.elf", *mon, "--route", "exception:3=mon")
        self.assertStatus(r, exit_device_status(0x34))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "bpreport\nresumed\n")
        self.assertEqual([(e["type"], e["key"], e["value"], e["aux"], e["flags"], e["vcpu"],
                           e["src"], e["src_id"], e["action"]) for e in self.read_log(log)],
                         [("exception", 3, hx(ret), "0x0", ["guest_reported"], 0, "vmm",
                           self.config_id("fault", ["mon"]), "done")])
        self.assertEqual(self.route_count(st, "io:0x4f0-0x4f3=fault"), 1)
        self.assertEqual(self.route_count(st, "exception:3=mon"), 1)

    def test_bp_report_default_crash(self):
        _, ret = insn_after("bpreport.elf", "main", "<rt_report_breakpoint>")
        r = self.run_guest("bpreport.elf")
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "bpreport\n")
        self.assertIn("exception #BP (vector 3) at rip %#x" % ret, r.err)
        self.assertIn("reported by the guest", r.err)

    def test_ud_default_crash(self):
        ud2, _ = insn_after("ud.elf", "main", "ud2")
        r = self.run_guest("ud.elf")
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "ud2\n")
        self.assertIn("exception #UD (vector 6) at rip %#x" % ud2, r.err)

    def test_ud_consumed(self):
        # A fault whose report is consumed ends the guest with 0x40 | vector.
        ud2, _ = insn_after("ud.elf", "main", "ud2")
        mon, log = self.monitor("mon")
        r = self.run_guest("ud.elf", *mon, "--route", "exception:6=mon")
        self.assertStatus(r, exit_device_status(0x46))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "ud2\n")
        self.assertEqual([(e["type"], e["key"], e["value"], e["aux"], e["flags"], e["action"])
                          for e in self.read_log(log)],
                         [("exception", 6, hx(ud2), "0x0", ["guest_reported"], "done")])

    def test_ud_reinject_reply_still_consumes(self):
        # Only KVM-caught exceptions can be reinjected: the monitor consumes
        # a guest-reported one instead.
        mon, log = self.monitor("mon", exception="reinject")
        r = self.run_guest("ud.elf", *mon, "--route", "exception:6=mon")
        self.assertStatus(r, exit_device_status(0x46))
        self.assertEqual([e["action"] for e in self.read_log(log)], ["done"])

    def test_ud_monitor_ends_the_run(self):
        mon, log = self.monitor("mon", exception="end")
        r = self.run_guest("ud.elf", *mon, "--route", "exception:6=mon")
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertEqual(r.out, "ud2\n")
        self.assertEqual([e["action"] for e in self.read_log(log)], ["end"])
        self.assertIn("vmm 'mon' ended the run", r.err)


class Int3(VmmuxTest):
    """A real INT3 at CPL0. On PVM hosts KVM's emulator cannot execute it
    (docs/host-limits.md): the run ends in KVM_EXIT_INTERNAL_ERROR."""

    def internal_error(self, r):
        return r.status == EXIT_HOST and "KVM_EXIT_INTERNAL_ERROR" in r.err

    def test_int3_reported_through_the_idt(self):
        int3, after = insn_after("int3.elf", "main", "int3")
        mon, log = self.monitor("mon")
        r = self.run_guest("int3.elf", *mon, "--route", "exception:3=mon")
        self.assertNoCrash(r)
        if self.internal_error(r):
            self.assertIn("rip=%016x" % int3, r.err, "the registers are dumped")
            self.assertEqual(r.out, "int3\n")
            self.host_limit("int3-emulated", "int3 at CPL0 ended in KVM_EXIT_INTERNAL_ERROR")
        self.assertStatus(r, exit_device_status(0x33))
        self.assertEqual(r.out, "int3\nresumed\n")
        self.assertEqual([(e["type"], e["key"], e["value"], e["flags"])
                          for e in self.read_log(log)],
                         [("exception", 3, hx(after), ["guest_reported"])])

    def test_bp_guest_debug(self):
        # --sw-breakpoints: KVM reports the int3 (KVM_EXIT_DEBUG, vector 3);
        # the monitor hands it back to the guest, whose IDT stub reports it.
        int3, after = insn_after("int3.elf", "main", "int3")
        mon, log = self.monitor("mon", exception="reinject")
        r = self.run_guest("int3.elf", "--sw-breakpoints", *mon, "--route", "exception:3=mon")
        self.assertNoCrash(r)
        if self.internal_error(r):
            self.assertIn("rip=%016x" % int3, r.err, "the registers are dumped")
            self.host_limit("bp-guest-debug",
                            "int3 with KVM_GUESTDBG_USE_SW_BP ended in KVM_EXIT_INTERNAL_ERROR")
        self.assertStatus(r, exit_device_status(0x33))
        self.assertEqual(r.out, "int3\nresumed\n")
        self.assertEqual([(e["key"], e["value"], e["flags"], e["action"])
                          for e in self.read_log(log)],
                         [(3, hx(int3), ["hostdebug"], "reinject"),
                          (3, hx(after), ["guest_reported"], "done")])
