"""Event routing: each event type reaches the VMM that the routing table names,
a changed table changes where it goes, and every type's built-in default is
replaced when a route sends the type to a monitor."""
from harness import EXIT_GUEST_CRASH, VmmuxTest, exit_device_status, insn_after, symbol

IO_OUT = [(1, 0x12), (2, 0x1234), (4, 0x12345678)]  # io.elf's OUTs to 0x80
OUTSB = b"0123456789abcdef"                           # io.elf's rep outsb to 0x81
INSB_LEN = 8                                          # io.elf's rep insb from 0x81
MASK = {1: 0xff, 2: 0xffff, 4: 0xffffffff, 8: 0xffffffffffffffff}

# Platform event and request keys (include/vmmux/vmmux.h).
PLAT_SMI, PLAT_RESET, PLAT_POWEROFF = 0, 1, 2
REQ_EXIT = 0


def hx(v):
    return "%#x" % v


def string_bytes(events):
    """The bytes that port events carry, in order: a string event's data (the
    guest's bytes for OUTS, the filled bytes for INS), else the value written
    or the reply read (KVM may deliver a rep outsb as one event per byte)."""
    out = b""
    for e in events:
        if "data" in e:
            data = bytes.fromhex(e["data"])
            if e["data_len"] != e["size"] * e["count"] or len(data) != min(e["data_len"], 64):
                raise AssertionError("inconsistent string event %r" % e)
            out += data
        elif e["count"] == 1:
            out += int(e["value" if e["write"] else "reply"], 16).to_bytes(e["size"], "little")
        else:
            raise AssertionError("string event without data %r" % e)
    return out


class Routing(VmmuxTest):
    """Each event type reaches the VMM that the table names."""

    def check_io_log(self, log, vmm, read):
        """io.elf's events at VMM (a monitor answering READ), in order."""
        for e in log:
            self.assertEqual((e["vmm"], e["type"], e["vcpu"], e["src"], e["src_id"],
                              e["action"]), (vmm, "io", 0, "vcpu", 0, "done"), e)
        # OUT 8/16/32 to 0x80, then IN 8/16/32 from 0x80 answered with READ
        # truncated to the access's width.
        self.assertEqual([(e["key"], e["write"], e["size"], e["count"], e["value"])
                          for e in log[:3]],
                         [("0x80", True, s, 1, hx(v)) for s, v in IO_OUT])
        self.assertEqual([(e["key"], e["write"], e["size"], e["count"], e["reply"])
                          for e in log[3:6]],
                         [("0x80", False, s, 1, hx(read & MASK[s])) for s in (1, 2, 4)])
        # Then the rep outsb to 0x81 and the rep insb from 0x81, nothing else.
        rest = log[6:]
        outs = [e for e in rest if e["write"]]
        ins = [e for e in rest if not e["write"]]
        self.assertEqual(rest, outs + ins, "the OUTS events come before the INS events")
        self.assertEqual({(e["key"], e["size"]) for e in rest}, {("0x81", 1)})
        self.assertEqual(string_bytes(outs), OUTSB)
        self.assertEqual(sum(e["count"] for e in ins), INSB_LEN)
        self.assertEqual(string_bytes(ins), bytes([read & 0xff]) * INSB_LEN)
        for e in ins:
            self.assertEqual(e["reply"], hx(read & 0xff))

    def io_output(self, read):
        return "in 0x80: %x %x %x\ninsb 0x81: %s\n" % (
            read & 0xff, read & 0xffff, read & 0xffffffff,
            " ".join(["%02x" % (read & 0xff)] * INSB_LEN))

    def run_io(self, target):
        read = {"mon": 0xdeadbeef, "mon2": 0xa1b2c3d4}
        mon, log = self.monitor("mon", read=hx(read["mon"]))
        mon2, log2 = self.monitor("mon2", read=hx(read["mon2"]))
        r, st = self.run_with_stats("io.elf", *mon, *mon2,
                                    "--route", "io:0x80-0x81=%s" % target)
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertEqual(r.out, self.io_output(read[target]))
        logs = {"mon": self.read_log(log), "mon2": self.read_log(log2)}
        other = "mon2" if target == "mon" else "mon"
        self.check_io_log(logs[target], target, read[target])
        self.assertEqual(logs[other], [])
        n = len(logs[target])
        self.assertEqual(self.route_count(st, "io:0x80-0x81=%s" % target), n)
        self.assertEqual(self.vmm_count(st, target), n)
        self.assertEqual(self.vmm_count(st, other), 0)
        self.assertEqual(st["types"]["io"]["unrouted"], 0)
        # Every io event is counted on exactly one io route.
        self.assertEqual(st["types"]["io"]["count"],
                         sum(x["count"] for x in st["routes"] if x["spec"].startswith("io:")))

    def test_io_reaches_the_routed_monitor(self):
        self.run_io("mon")

    def test_io_changed_table_reaches_the_other_monitor(self):
        self.run_io("mon2")

    def test_string_io(self):
        mon, log = self.monitor("mon", read="0x5a")
        r = self.run_guest("io.elf", *mon, "--route", "io:0x80-0x81=mon")
        self.assertStatus(r, 1)
        self.assertEqual(r.out.splitlines()[1], "insb 0x81: " + " ".join(["5a"] * INSB_LEN))
        at81 = [e for e in self.read_log(log) if e["key"] == "0x81"]
        outs = [e for e in at81 if e["write"]]
        ins = [e for e in at81 if not e["write"]]
        # The bytes arrive in the guest's order, however KVM groups them.
        self.assertEqual(string_bytes(outs), OUTSB)
        for e in outs:
            self.assertEqual(e["size"], 1)
            if e["count"] > 1:
                self.assertIn("string", e["flags"])
        # The INS is filled with the monitor's value, each element.
        self.assertEqual(string_bytes(ins), b"\x5a" * INSB_LEN)
        for e in ins:
            self.assertIn("string", e["flags"])
            self.assertEqual(e["data"], "5a" * e["count"])

    def test_mmio(self):
        mon, log = self.monitor("mon", read="0x1122334455667788")
        r, st = self.run_with_stats("mmio.elf", *mon, "--route", "mmio:0xd0000000+0x1000=mon")
        self.assertStatus(r, 1)
        self.assertNoCrash(r)
        # A 32-bit read gets the monitor's value truncated to 32 bits.
        self.assertEqual(r.out, "mmio read 0xd0000004: 55667788\n")
        events = self.read_log(log)
        self.assertEqual([(e["type"], e["key"], e["write"], e["size"], e["value"]) for e in events],
                         [("mmio", "0xd0000000", True, 4, "0xcafef00d"),
                          ("mmio", "0xd0000ffc", True, 1, "0x5a"),
                          ("mmio", "0xd0000008", True, 8, "0x123456789abcdef"),
                          ("mmio", "0xd0000004", False, 4, "0x0")])
        self.assertEqual(events[3]["reply"], "0x55667788")
        self.assertEqual(self.route_count(st, "mmio:0xd0000000-0xd0000fff=mon"), 4)
        self.assertEqual(self.vmm_count(st, "mon"), 4)
        self.assertEqual(st["types"]["mmio"], dict(st["types"]["mmio"], count=4, unrouted=0))

    def test_msr_through_the_filter(self):
        mon, log = self.monitor("mon", msr_read="0x8877665544332211")
        r, st = self.run_with_stats("msr.elf", *mon, "--route", "msr:0x40001000-0x400010ff=mon")
        self.assertStatus(r, 1)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "msr 0x40001000: 8877665544332211\n"
                                "msr 0x400010ff: 8877665544332211\n"
                                "msr 0x40002000: gp\n")
        # Only the routed indices reach the monitor: 0x40002000 is answered
        # #GP by the main VMM.
        events = self.read_log(log)
        self.assertEqual([(e["type"], e["key"], e["write"], e["value"], e.get("reply"))
                          for e in events],
                         [("msr", "0x40001000", True, "0x1122334455667788", None),
                          ("msr", "0x40001000", False, "0x0", "0x8877665544332211"),
                          ("msr", "0x400010ff", False, "0x0", "0x8877665544332211")])
        self.assertEqual({e["action"] for e in events}, {"done"})
        self.assertEqual(self.route_count(st, "msr:0x40001000-0x400010ff=mon"), 3)
        self.assertEqual(self.route_count(st, "type:msr=main"), 1)
        self.assertEqual((st["types"]["msr"]["count"], st["types"]["msr"]["unrouted"]), (4, 1))
        self.assertEqual(r.err.count("unrouted"), 1, r.err)
        self.assertIn("rdmsr MSR 0x40002000", r.err)
        self.assertIn("#GP injected", r.err)

    def test_msr_kvm_emulates_stays_in_kvm(self):
        # IA32_PAT and IA32_MISC_ENABLE are MSRs that KVM emulates itself:
        # without a route neither leaves KVM (no MSR event at all) and the
        # guest reads back what it wrote and KVM's MISC_ENABLE.
        r, st = self.run_with_stats("msrkvm.elf")
        self.assertStatus(r, 1)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "pat: write ok, read 7040600070406\nmisc_enable: read 1\n")
        self.assertEqual(st["types"]["msr"]["count"], 0)

    def test_msr_kvm_emulates_routed_through_the_filter(self):
        # Routed, IA32_PAT leaves KVM through its MSR filter (the resource in
        # the processor) and reaches the monitor, write and read; its
        # neighbour IA32_MISC_ENABLE, not routed, stays in KVM.
        mon, log = self.monitor("mon", msr_read="0x1234")
        r = self.run_guest("msrkvm.elf", *mon, "--route", "msr:0x277=mon")
        self.assertStatus(r, 1)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "pat: write ok, read 1234\nmisc_enable: read 1\n")
        events = self.read_log(log)
        self.assertEqual([(e["type"], e["key"], e["write"], e["value"], e.get("reply"),
                           e["vcpu"], e["src"]) for e in events],
                         [("msr", "0x277", True, "0x7040600070406", None, 0, "vcpu"),
                          ("msr", "0x277", False, "0x0", "0x1234", 0, "vcpu")])
        # KVM knows the MSR: it exited for the filter, not as an unknown MSR
        for e in events:
            self.assertNotIn("unknown_msr", e["flags"], e)

    def test_mmio_range_ends(self):
        # Two adjacent ranges: the first and last byte of each reach that
        # range's VMM; the byte before the first and the byte after the last
        # are unrouted (the main VMM: writes dropped, reads all ones).
        mon, log = self.monitor("mon", read="0xa1")
        mon2, log2 = self.monitor("mon2", read="0xb2")
        r = self.run_guest("mmioends.elf", *mon, *mon2, "--route", "mmio:0xd0000000+0x1000=mon",
                           "--route", "mmio:0xd0001000-0xd0001fff=mon2")
        self.assertStatus(r, 1)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "mmio cfffffff: ff\n"
                                "mmio d0000000: a1\nmmio d0000fff: a1\n"
                                "mmio d0001000: b2\nmmio d0001fff: b2\n"
                                "mmio d0002000: ff\n")

        def seen(path):
            return [(e["type"], e["key"], e["write"], e["size"],
                     e["value"] if e["write"] else e["reply"]) for e in self.read_log(path)]

        self.assertEqual(seen(log), [("mmio", "0xd0000000", True, 1, "0x2"),
                                     ("mmio", "0xd0000000", False, 1, "0xa1"),
                                     ("mmio", "0xd0000fff", True, 1, "0x3"),
                                     ("mmio", "0xd0000fff", False, 1, "0xa1")])
        self.assertEqual(seen(log2), [("mmio", "0xd0001000", True, 1, "0x4"),
                                      ("mmio", "0xd0001000", False, 1, "0xb2"),
                                      ("mmio", "0xd0001fff", True, 1, "0x5"),
                                      ("mmio", "0xd0001fff", False, 1, "0xb2")])
        self.assertIn("unrouted vCPU 0: mmio write at 0xcfffffff", r.err)
        self.assertIn("unrouted vCPU 0: mmio write at 0xd0002000", r.err)

    def test_msr_route_answering_gp(self):
        # The monitor answers #GP: msr.elf's plain WRMSR faults, its runtime
        # reports the #GP, and the default for a reported fault ends the run.
        mon, log = self.monitor("mon", msr="gp")
        r = self.run_guest("msr.elf", *mon, "--route", "msr:0x40001000-0x400010ff=mon")
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "")
        events = self.read_log(log)
        self.assertEqual([(e["key"], e["write"], e["action"]) for e in events],
                         [("0x40001000", True, "gp")])
        wrmsr, _ = insn_after("msr.elf", "main", "wrmsr")
        self.assertIn("exception #GP (vector 13) at rip %#x" % wrmsr, r.err)

    def test_msr_route_gp_consumed(self):
        # The same #GP routed to a second monitor: the runtime ends with
        # 0x40 | 13 once the report is consumed.
        mon, log = self.monitor("mon", msr="gp")
        mon2, log2 = self.monitor("mon2")
        r = self.run_guest("msr.elf", *mon, *mon2, "--route", "msr:0x40001000-0x400010ff=mon",
                           "--route", "exception:13=mon2")
        self.assertStatus(r, exit_device_status(0x4d))
        self.assertEqual(r.out, "")
        wrmsr, _ = insn_after("msr.elf", "main", "wrmsr")
        self.assertEqual([(e["type"], e["key"], e["value"], e["aux"], e["flags"])
                          for e in self.read_log(log2)],
                         [("exception", 13, hx(wrmsr), "0x0", ["guest_reported"])])
        self.assertEqual(len(self.read_log(log)), 1)

    def test_hlt_routed(self):
        mon, log = self.monitor("mon")
        r, st = self.run_with_stats("hlt.elf", *mon, "--route", "type:hlt=mon")
        self.assertStatus(r, exit_device_status(0x11))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "before hlt\nafter hlt\n")
        self.assertEqual([(e["type"], e["vcpu"], e["src"], e["action"])
                          for e in self.read_log(log)], [("hlt", 0, "vcpu", "done")])
        self.assertEqual(self.route_count(st, "type:hlt=mon"), 1)
        self.assertEqual(st["types"]["hlt"]["unrouted"], 0)

    def test_hlt_default_stops_the_vcpu(self):
        r, st = self.run_with_stats("hlt.elf")
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "before hlt\n")
        self.assertIn("every vCPU executed HLT", r.err)
        self.assertEqual(self.route_count(st, "type:hlt=main"), 1)
        self.assertEqual((st["types"]["hlt"]["count"], st["types"]["hlt"]["unrouted"]), (1, 1))

    def test_hypercall(self):
        mon, log = self.monitor("mon")
        mon2, log2 = self.monitor("mon2")
        r, st = self.run_with_stats("hypercall.elf", *mon, *mon2, "--route", "hypercall:1=mon",
                                    "--route", "hypercall:2=mon2")
        self.assertStatus(r, 1)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "hypercalls done\n")
        arg = hx(symbol("hypercall.elf", "hc_arg"))
        for lg, nr in ((log, 1), (log2, 2)):
            self.assertEqual([(e["type"], e["key"], e["value"], e["size"], e["vcpu"])
                              for e in self.read_log(lg)], [("hypercall", nr, arg, 4, 0)])
        self.assertEqual(self.route_count(st, "hypercall:1=mon"), 1)
        self.assertEqual(self.route_count(st, "hypercall:2=mon2"), 1)
        self.assertEqual((st["types"]["hypercall"]["count"],
                          st["types"]["hypercall"]["unrouted"]), (2, 0))

    def test_unrouted_defaults(self):
        r, st = self.run_with_stats("unrouted.elf")
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "in8 0x1234: ff ok\n"
                                "in16 0x1234: ffff ok\n"
                                "in32 0x1234: ffffffff ok\n"
                                "mmio32 0xe0000000: ffffffff ok\n"
                                "out8 0x1234: done\n"
                                "mmio32 write 0xe0000000: done\n")
        # Each unrouted key is logged once, whatever the number of accesses.
        lines = [x for x in r.err.splitlines() if "unrouted" in x]
        self.assertEqual(len(lines), 2, r.err)
        self.assertIn("port 0x1234", lines[0])
        self.assertIn("0xe0000000", lines[1])
        self.assertEqual((st["types"]["io"]["unrouted"], st["types"]["mmio"]["unrouted"]),
                         (4, 2))
        self.assertEqual(self.route_count(st, "type:io=main"), 4)
        self.assertEqual(self.route_count(st, "type:mmio=main"), 2)

    def test_unrouted_hypercalls_ignored(self):
        r, st = self.run_with_stats("hypercall.elf")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, "hypercalls done\n")
        self.assertEqual(st["types"]["hypercall"]["unrouted"], 2)
        self.assertEqual(len([x for x in r.err.splitlines() if "unrouted" in x]), 2, r.err)


class DefaultsReplaced(VmmuxTest):
    """Every event type sent to a monitor: its built-in default does not
    happen."""

    def src_id(self, st, vmm):
        """The id of default VMM VMM in a run whose own VMM is the monitor
        "mon": from the config's order, checked against the statistics."""
        i = self.config_id(vmm, ["mon"])
        self.assertEqual(self.vmm_id(st, vmm), i)
        return i

    def test_type_io_to_monitor(self):
        # The monitor now answers the unrouted port: unrouted.elf's port reads
        # fail its check (code 1: the first failing read), the MMIO read keeps
        # its default.
        mon, log = self.monitor("mon", read="0x5a")
        r, st = self.run_with_stats("unrouted.elf", *mon, "--route", "type:io=mon")
        self.assertStatus(r, exit_device_status(1))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "in8 0x1234: 5a FAIL\n"
                                "in16 0x1234: 5a FAIL\n"
                                "in32 0x1234: 5a FAIL\n"
                                "mmio32 0xe0000000: ffffffff ok\n"
                                "out8 0x1234: done\n"
                                "mmio32 write 0xe0000000: done\n")
        events = self.read_log(log)
        self.assertEqual([(e["key"], e["write"], e["size"], e.get("reply", e["value"]))
                          for e in events],
                         [("0x1234", False, 1, "0x5a"), ("0x1234", False, 2, "0x5a"),
                          ("0x1234", False, 4, "0x5a"), ("0x1234", True, 1, "0x5a")])
        # A type: route names the events: they are not unrouted.
        for e in events:
            self.assertNotIn("unrouted", e)
            self.assertNotIn("unrouted", e["flags"])
        self.assertEqual(self.route_count(st, "type:io=mon"), 4)
        self.assertEqual((st["types"]["io"]["unrouted"], st["types"]["mmio"]["unrouted"]),
                         (0, 2))
        self.assertNotIn("port 0x1234", r.err)

    def test_type_mmio_to_monitor(self):
        mon, log = self.monitor("mon", read="0x5a")
        r = self.run_guest("unrouted.elf", *mon, "--route", "type:mmio=mon")
        self.assertStatus(r, exit_device_status(4))
        self.assertEqual(r.out.splitlines()[3], "mmio32 0xe0000000: 5a FAIL")
        self.assertEqual([(e["type"], e["key"], e["write"]) for e in self.read_log(log)],
                         [("mmio", "0xe0000000", False), ("mmio", "0xe0000000", True)])

    def test_type_msr_to_monitor(self):
        # Without an msr: route, MSRs that KVM does not know go to the type's
        # VMM: the monitor answers 0x40002000 instead of the #GP.
        mon, log = self.monitor("mon", msr_read="7")
        r = self.run_guest("msr.elf", *mon, "--route", "type:msr=mon")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, "msr 0x40001000: 7\nmsr 0x400010ff: 7\nmsr 0x40002000: 7\n")
        self.assertEqual([(e["key"], e["write"]) for e in self.read_log(log)],
                         [("0x40001000", True), ("0x40001000", False),
                          ("0x400010ff", False), ("0x40002000", False)])

    def test_type_hypercall_to_monitor(self):
        mon, log = self.monitor("mon")
        r = self.run_guest("hypercall.elf", *mon, "--route", "type:hypercall=mon")
        self.assertStatus(r, 1)
        self.assertEqual([(e["type"], e["key"]) for e in self.read_log(log)],
                         [("hypercall", 1), ("hypercall", 2)])
        self.assertNotIn("unrouted", r.err)

    def test_type_shutdown_to_monitor(self):
        # The monitor answers the triple fault with reset: the guest boots
        # again and ends with its boot count.
        mon, log = self.monitor("mon")
        r, st = self.run_with_stats("triple.elf", *mon, "--route", "type:shutdown=mon")
        self.assertStatus(r, exit_device_status(2))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "boot 1\nboot 2\n")
        self.assertEqual([(e["type"], e["vcpu"], e["action"]) for e in self.read_log(log)],
                         [("shutdown", 0, "reset")])
        self.assertEqual(self.route_count(st, "type:shutdown=mon"), 1)

    def test_platform_reset_to_monitor(self):
        # The reset does not happen; the guest's bounded wait ends with
        # 0x70 | boot.
        mon, log = self.monitor("mon")
        r, st = self.run_with_stats("reset.elf", *mon, "--route", "platform:reset=mon")
        self.assertStatus(r, exit_device_status(0x71))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "boot 1\nno reset\n")
        self.assertEqual([(e["type"], e["key"], e["vcpu"], e["src"], e["src_id"])
                          for e in self.read_log(log)],
                         [("platform", PLAT_RESET, 0, "vmm", self.src_id(st, "chipset"))])
        self.assertEqual(self.route_count(st, "platform:reset=mon"), 1)

    def test_platform_poweroff_to_monitor(self):
        mon, log = self.monitor("mon")
        r, st = self.run_with_stats("poweroff.elf", *mon, "--route", "platform:poweroff=mon")
        self.assertStatus(r, exit_device_status(0x7e))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "poweroff\n")
        self.assertEqual([(e["type"], e["key"], e["src"], e["src_id"])
                          for e in self.read_log(log)],
                         [("platform", PLAT_POWEROFF, "vmm", self.src_id(st, "chipset"))])

    def test_type_platform_to_monitor(self):
        mon, log = self.monitor("mon")
        r = self.run_guest("poweroff.elf", *mon, "--route", "type:platform=mon")
        self.assertStatus(r, exit_device_status(0x7e))
        self.assertEqual([(e["type"], e["key"]) for e in self.read_log(log)],
                         [("platform", PLAT_POWEROFF)])

    def test_platform_smi_to_monitor(self):
        # The monitor takes the SMI from smm: nobody services it, APM_STS
        # stays 0 and smi.elf exits with it.
        mon, log = self.monitor("mon")
        r, st = self.run_with_stats("smi.elf", *mon, "--route", "platform:smi=mon")
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "apm status 0\n")
        self.assertEqual([(e["type"], e["key"], e["value"], e["src"], e["src_id"])
                          for e in self.read_log(log)],
                         [("platform", PLAT_SMI, "0x42", "vmm", self.src_id(st, "smm"))])
        self.assertEqual(self.route_count(st, "platform:smi=mon"), 1)
        self.assertEqual(self.route_count(st, "platform:smi=smm"), 0)

    def test_request_exit_to_monitor(self):
        # The exit request is only logged; the runtime's exit() then executes
        # cli; hlt, and the HLT default stops the only vCPU: a guest crash.
        mon, log = self.monitor("mon")
        r, st = self.run_with_stats("hello.elf", *mon, "--route", "request:exit=mon")
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "hello from vmmux\n")
        self.assertEqual([(e["type"], e["key"], e["value"], e["src"], e["src_id"])
                          for e in self.read_log(log)],
                         [("request", REQ_EXIT, hx(exit_device_status(0)), "vmm",
                           self.src_id(st, "exit"))])
        self.assertIn("every vCPU executed HLT", r.err)
        self.assertEqual(self.route_count(st, "request:exit=mon"), 1)
        self.assertEqual(st["types"]["hlt"]["count"], 1)

    def test_exception_bp_to_monitor(self):
        _, ret = insn_after("bpreport.elf", "main", "<rt_report_breakpoint>")
        mon, log = self.monitor("mon")
        r = self.run_guest("bpreport.elf", *mon, "--route", "exception:3=mon")
        self.assertStatus(r, exit_device_status(0x34))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "bpreport\nresumed\n")
        self.assertEqual([(e["type"], e["key"], e["value"], e["flags"], e["action"])
                          for e in self.read_log(log)],
                         [("exception", 3, hx(ret), ["guest_reported"], "done")])

    def test_exception_bp_default(self):
        r, st = self.run_with_stats("bpreport.elf")
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "bpreport\n")
        _, ret = insn_after("bpreport.elf", "main", "<rt_report_breakpoint>")
        self.assertIn("exception #BP (vector 3) at rip %#x" % ret, r.err)
        self.assertEqual((st["types"]["exception"]["count"],
                          st["types"]["exception"]["unrouted"]), (1, 1))

    def test_type_exception_to_monitor(self):
        mon, log = self.monitor("mon")
        r = self.run_guest("ud.elf", *mon, "--route", "type:exception=mon")
        self.assertStatus(r, exit_device_status(0x46))
        self.assertEqual(r.out, "ud2\n")
        self.assertEqual([(e["type"], e["key"]) for e in self.read_log(log)],
                         [("exception", 6)])


class RaisedBySource(VmmuxTest):
    """Routes keyed by source (from=VMM): events a VMM raises or hands on."""

    def forward_run(self, *extra):
        mon, log1 = self.monitor("mon", read="0x5a", forward="yes", raise_="forward")
        mon2, log2 = self.monitor("mon2")
        r = self.run_guest("io.elf", *mon, *mon2, "--route", "io:0x80-0x81=mon", *extra)
        return r, self.read_log(log1), self.read_log(log2)

    def test_hand_on_to_source_route(self):
        r, first, second = self.forward_run("--route", "io:0x80-0x81=mon2;from=mon")
        self.assertStatus(r, exit_device_status(0))
        # the guest still gets mon's answers
        self.assertEqual(r.out, "in 0x80: 5a 5a 5a\ninsb 0x81: 5a 5a 5a 5a 5a 5a 5a 5a\n")
        # every non-string event mon saw reaches mon2 once, from mon, in order
        seen = [(e["key"], e["write"], e["size"], e["value"]) for e in first
                if "string" not in e["flags"]]
        got = [(e["key"], e["write"], e["size"], e["value"]) for e in second]
        self.assertEqual(got, seen)
        mon_id = None
        for e in second:
            self.assertEqual((e["src"], e["vcpu"]), ("vmm", 0))
            mon_id = mon_id if mon_id is not None else e["src_id"]
            self.assertEqual(e["src_id"], mon_id)
        self.assertGreater(len(second), 10)

    def test_hand_on_without_source_route_never_returns(self):
        # no from= route: the copies would go back to mon, so the main VMM's
        # built-in default takes them (writes dropped, logged once per port)
        r, first, second = self.forward_run()
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(second, [])
        self.assertEqual(len([e for e in first if e["src"] != "vcpu"]), 0)
        self.assertIn("unrouted VMM", r.err)

    def test_hand_on_needs_the_grant(self):
        # mon answers the HLT, then hands a copy on without the grant: the
        # copy is refused (in a parallel VMM, as a fault: it is restarted)
        mon, log1 = self.monitor("mon", forward="yes")
        mon2, log2 = self.monitor("mon2")
        r = self.run_guest("hlt.elf", *mon, *mon2, "--route", "type:hlt=mon",
                           "--route", "type:hlt=mon2;from=mon")
        self.assertStatus(r, exit_device_status(0x11))
        self.assertEqual(r.out, "before hlt\nafter hlt\n")
        self.assertEqual([e["type"] for e in self.read_log(log1)], ["hlt"])
        self.assertEqual(self.read_log(log2), [])
        self.assertIn("not granted", r.err)

    def test_platform_event_by_source(self):
        # a reset the chipset raises goes to mon; the guest is not reset
        mon, log = self.monitor("mon")
        r = self.run_guest("reset.elf", *mon, "--route", "platform:reset=mon;from=chipset")
        self.assertEqual(r.out.splitlines()[0], "boot 1")
        self.assertNotIn("boot 2", r.out)
        ev = self.read_log(log)
        self.assertEqual([(e["type"], e["key"], e["src"]) for e in ev][:1],
                         [("platform", 1, "vmm")])
