"""Interrupts: the UART's IRQ 4 reaches the guest through KVM's in-kernel 8259
PIC (--irqchip), edge- and level-triggered, whether the UART runs in the main
VMM (KVM_IRQ_LINE) or as a parallel VMM (KVM_IRQFD, with a resample fd for a
level grant); and it does not reach the guest without an irqchip, when the
table routes interrupt requests away from the main VMM, or when the UART's
grants do not include its line.

Guests (guest/README.md): irq.elf (edge-triggered IRQ 4: one interrupt per
rising edge; the path it took) and irq_level.elf (ELCR: level-triggered IRQ 4,
re-delivered after each EOI while the UART holds its line high). Every test
asserts exact counts. Tests that name no placement run in both suites (the
parallel suite adds --parallel); the others name theirs.
"""
import json
import re

from harness import PARALLEL, VmmuxTest, exit_device_status

IRQ_OK, IRQ_NONE, IRQ_BAD = 0x24, 0x25, 0x26  # the guests' exit codes

# What the guests print about the interrupt controllers KVM gives them: the
# PIC as programmed, the BSP's LAPIC with LINT0 in ExtINT mode (virtual wire,
# KVM's reset state), the IOAPIC's pin 4 masked (its reset state).
PROBE = ("pic: vectors 0x20-0x2f, imr 0xef\n"
         "lapic: base 0xfee00000, svr 0xff, lvt0 0x700 (extint, unmasked)\n"
         "ioapic: pin 4 entry 0x10000 (masked)\n")

# irq.elf: one interrupt for each rising edge, through the PIC (its ISR has
# IRQ 4, the LAPIC's ISR never has vector 0x24) and LINT0 (masking either the
# PIC's IMR bit or LINT0 holds it back).
EDGE = PROBE + (
    "edge: 1 interrupt(s): thr-empty 1, other cause 0, no cause 0; pic isr 1, lapic isr 0\n"
    "held: 1 interrupt(s) while the line stayed high\n"
    "imr: masked 0 interrupt(s), unmasked 1\n"
    "lvt0: masked 0 interrupt(s) with irr bit 4 = 1; unmasked (lvt0 0x700) 1\n"
    "irq: ok\n")

# irq_level.elf: the held request delivered again after each EOI until the
# handler clears its cause at the 4th delivery; then a request raised and
# withdrawn while interrupts are off is never delivered.
LEVEL_REDELIVERY = PROBE + (
    "elcr: 0x10\n"
    "level: 4 interrupt(s), the cause cleared at the 4th; pic isr 4, lapic isr 0\n")
LEVEL = LEVEL_REDELIVERY + (
    "off: irr bit 4 = 1 while raised; 0 interrupt(s) after the cause was cleared "
    "(no cause 0)\n"
    "irq: ok\n")

# irq.elf when no interrupt comes.
NONE = ("edge: 0 interrupt(s): thr-empty 0, other cause 0, no cause 0; pic isr 0, "
        "lapic isr 0\n"
        "irq: no interrupt within the bounded wait\n")

# A run whose UART misbehaves could hang a long time on the console; fail
# well before the suite's own timeout.
RUN_TIMEOUT = 30


def uart(*opts):
    """A --vmm replacing the default UART (console on stdout) with OPTS."""
    return ["--vmm", ",".join(["uart=uart16550", "output=stdout"] + list(opts))]


def lines_with(text, err):
    return [line for line in err.splitlines() if text in line]


class IrqTest(VmmuxTest):

    def run_irq(self, guest, *args, irqchip=True):
        r = self.run_guest(guest, *(["--irqchip"] if irqchip else []), *args,
                           timeout=RUN_TIMEOUT)
        self.assertNoCrash(r)
        return r

    def assertRun(self, r, out, code):
        self.assertEqual(r.out, out, "guest output\n%r" % r)
        self.assertStatus(r, exit_device_status(code))


class EdgeTriggered(IrqTest):
    """irq.elf: one interrupt per rising edge of IRQ 4."""

    def test_edge(self):
        # The UART's default grant (irq:4): KVM_IRQ_LINE from the main VMM,
        # or an irqfd pulse from the parallel UART (--parallel).
        self.assertRun(self.run_irq("irq.elf"), EDGE, IRQ_OK)

    def test_edge_main(self):
        self.assertRun(self.run_irq("irq.elf", *uart("placement=main")), EDGE, IRQ_OK)

    def test_edge_parallel_irqfd(self):
        self.assertRun(self.run_irq("irq.elf", *uart("placement=parallel", "raise=irq:4:edge")),
                       EDGE, IRQ_OK)

    def test_edge_with_level_grant_in_process(self):
        # An in-process VMM's requests always go through KVM_IRQ_LINE, which
        # follows the line: held high, one rising edge, one interrupt.
        self.assertRun(self.run_irq("irq.elf", *uart("placement=main", "raise=irq:4:level")),
                       EDGE, IRQ_OK)

    def test_edge_guest_with_level_irqfd(self):
        # The documented misconfiguration: an irqfd wired level-triggered on a
        # line the guest programs edge-triggered asserts the line again after
        # every EOI, and each assertion is a new edge: the guest sees the held
        # request more than once. The grant's trigger must match the guest's.
        r = self.run_irq("irq.elf", *uart("placement=parallel", "raise=irq:4:level"))
        m = re.search(r"held: (\d+) interrupt", r.out)
        self.assertIsNotNone(m, r)
        self.assertGreater(int(m.group(1)), 1, r)


class LevelTriggered(IrqTest):
    """irq_level.elf: IRQ 4 level-triggered in the PIC's ELCR."""

    def check_redelivery(self, r):
        """The held request came back after each EOI, exactly 4 times; the
        run's verdict (the withdrawn request) is checked elsewhere."""
        self.assertTrue(r.out.startswith(LEVEL_REDELIVERY), "guest output\n%r" % r)
        self.assertIn(r.status, (exit_device_status(IRQ_OK), exit_device_status(IRQ_BAD)),
                      "unexpected exit status\n%r" % r)

    def test_level_redelivery(self):
        self.check_redelivery(self.run_irq("irq_level.elf", *uart("raise=irq:4:level")))

    def test_level_withdrawn(self):
        # A request raised and withdrawn while the guest has interrupts off
        # is not delivered when it turns them on.
        self.assertRun(self.run_irq("irq_level.elf", *uart("raise=irq:4:level")), LEVEL,
                       IRQ_OK)

    def test_level_main(self):
        self.assertRun(self.run_irq("irq_level.elf", *uart("placement=main",
                                                          "raise=irq:4:level")),
                       LEVEL, IRQ_OK)

    def test_level_parallel_irqfd_redelivery(self):
        self.check_redelivery(self.run_irq("irq_level.elf", *uart("placement=parallel",
                                                                 "raise=irq:4:level")))

    def test_level_parallel_irqfd_withdrawn(self):
        self.assertRun(self.run_irq("irq_level.elf", *uart("placement=parallel",
                                                          "raise=irq:4:level")),
                       LEVEL, IRQ_OK)

    def test_level_with_default_grant(self):
        # The UART's own grant (irq:4): the guest's ELCR still decides how
        # the PIC samples the line the UART holds high.
        self.assertRun(self.run_irq("irq_level.elf"), LEVEL, IRQ_OK)


class NoInterrupt(IrqTest):
    """The UART raises IRQ 4 and the guest sees no interrupt."""

    def test_no_irqchip(self):
        r = self.run_irq("irq.elf", irqchip=False)
        self.assertRun(r, "pic: none (imr reads 0xff)\n" + NONE, IRQ_NONE)
        # Both requests (level 1, then 0) are dropped; one line says so.
        dropped = lines_with("there is no in-kernel irqchip", r.err)
        self.assertEqual(len(dropped), 1, r)
        self.assertIn("irq line 4 level 1", dropped[0])

    def test_routed_away(self):
        mon, log = self.monitor("mon")
        r = self.run_irq("irq.elf", *mon, "--route", "type:irq=mon")
        self.assertRun(r, PROBE + NONE, IRQ_NONE)
        events = self.read_log(log)
        # The UART raised its line when THR-empty was enabled and lowered it
        # when it was disabled: two events, both at the monitor.
        self.assertEqual([(e["type"], e["key"], e["value"], e["vcpu"], e["src"])
                          for e in events],
                         [("irq", 4, "0x1", None, "vmm"), ("irq", 4, "0x0", None, "vmm")])
        self.assertEqual(lines_with("irqchip", r.err), [])

    def test_not_granted(self):
        r = self.run_irq("irq.elf", *uart("raise=request:exit"))
        self.assertRun(r, PROBE + NONE, IRQ_NONE)
        if PARALLEL:
            self.check_refused_parallel(r)
        else:
            # In the main VMM's process: both requests (level 1, then 0)
            # dropped, one line for the event type.
            refused = lines_with("raised an event it was not granted", r.err)
            self.assertEqual(len(refused), 1, r)
            self.assertIn("irq line 4 level 1", refused[0])
            self.assertIn("dropped", refused[0])
        self.assertEqual(lines_with("irqchip", r.err), [])

    def check_refused_parallel(self, r):
        # A parallel VMM that raises what it was not granted is at fault:
        # killed, and restarted with its state, once for each request.
        refused = lines_with("raised an event it was not granted", r.err)
        self.assertEqual(len(refused), 2, r)
        self.assertIn("irq line 4 level 1", refused[0])
        self.assertIn("irq line 4 level 0", refused[1])
        for line in refused:
            self.assertIn("killed", line)

    def test_not_granted_parallel(self):
        r = self.run_irq("irq.elf", *uart("placement=parallel", "raise=request:exit"))
        self.assertRun(r, PROBE + NONE, IRQ_NONE)
        self.check_refused_parallel(r)


class IrqfdPath(IrqTest):
    """A parallel UART granted its line with a trigger raises IRQ 4 through
    its irqfd, straight into KVM's irqchip: the guest gets every interrupt
    while the main VMM sees none of its requests to raise the line (the
    event trace of the run shows each IRQ request the main VMM handled; the
    same UART in the main VMM's process makes all of them there, through
    KVM_IRQ_LINE)."""

    def irq_requests_at_main(self, guest, out, *opts):
        """The levels of the IRQ requests that the main VMM handled in a run
        of GUEST (its output OUT) with the UART given OPTS."""
        trace = self.path("trace.json")
        r = self.run_irq(guest, "--trace", trace, *uart(*opts))
        self.assertRun(r, out, IRQ_OK)
        with open(trace) as f:
            text = f.read()
        events = [json.loads(line.rstrip().rstrip(",")) for line in text.splitlines()
                  if '"cat":"irq"' in line]
        for e in events:
            self.assertEqual((e["name"], e["args"]["vmm"], e["args"]["src"]),
                             ("irq 4", "main", "vmm uart"), e)
        return [int(e["args"]["value"], 16) for e in events]

    def test_edge_irqfd_bypasses_the_main_vmm(self):
        self.assertEqual(self.irq_requests_at_main("irq.elf", EDGE, "placement=parallel",
                                                   "raise=irq:4:edge"), [])
        # the same guest and UART in the main VMM's process: each request
        # (line up, line down) reaches the main VMM
        levels = self.irq_requests_at_main("irq.elf", EDGE, "placement=main",
                                           "raise=irq:4:edge")
        self.assertIn(1, levels)
        self.assertIn(0, levels)

    def test_level_irqfd_bypasses_the_main_vmm(self):
        # level-triggered: the line goes up through the irqfd; lowering it
        # (withdrawing a request, pvmm_irq_withdraw) is the main VMM's
        levels = self.irq_requests_at_main("irq_level.elf", LEVEL, "placement=parallel",
                                           "raise=irq:4:level")
        self.assertNotIn(1, levels)
        self.assertEqual(self.irq_requests_at_main("irq_level.elf", LEVEL, "placement=main",
                                                   "raise=irq:4:level"), [1, 0] * len(levels))
