#!/usr/bin/env python3
"""The exit path end to end: a guest's port and MMIO accesses, each a KVM
exit, handled (a) by a minimal raw KVM loop (bench/rawkvm: this host's
physical limit), (b) by vmmux with the route in the main VMM's process,
(c) by vmmux with the route in a parallel VMM, synchronous, its transport
spinning or blocking, (d) the same with posted writes, (e) by vmmux with
the route compiled into KVM (doorbell routes: no userspace exit for a
write) when this build has them; and, with the same guest as a multiboot
image, by QEMU's in-process pc-testdev.

The guest (guest/tests/bench_io.c) times each access itself between two
RDTSCs and prints the median, p99 and minimum per phase: null (the timing
alone), out (OUTL port 0xe0), in (INL port 0xe0), mmiow / mmior (32-bit
write / read at 0xff000000). Start-up and teardown never count. Cycles are
turned into us with the TSC frequency that rawkvm --tsc-hz calibrates.

Every variant runs once per round, rounds interleaved so that the host's
drift hits every variant alike; figures are "median over the rounds
[min-max]". "net" is the access's p50 minus the null phase's p50 of the same
run (the timing's own cost removed); ratios compare net p50 medians with
the table's baseline, measured in the same run.

Usage: exitpath_bench.py --vmmux VMMUX --rawkvm RAWKVM --guest-dir DIR
                         [--rounds N] [--tiny] [--no-qemu]
Prints a markdown section on stdout; progress on stderr.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib as bl  # noqa: E402

PHASES = ["out", "in", "mmiow", "mmior"]
LINE = re.compile(r"^bench (\w+) n=(\d+) p50=(\d+) p99=(\d+) min=(\d+) total=(\d+)\s*$")
QEMU = "qemu-system-x86_64"
QEMU_ARGS = ["-accel", "kvm", "-nodefaults", "-no-user-config", "-display", "none",
             "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
             "-device", "pc-testdev"]
# Routes compiled into KVM (docs/routing.md): a doorbell (KVM_IOEVENTFD; one
# access, the value dropped) and a coalesced ring (values kept, no exit).
DOORBELL = (";doorbell", "0xff000000+4")
COALESCED = (";coalesced", "0xff000000+0x1000")
TIMEOUT = 300


def parse(out):
    res = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            res[m.group(1)] = tuple(int(m.group(i)) for i in range(3, 7))
    return res


class Bench:
    def __init__(self, a):
        self.a = a
        self.elf = os.path.join(a.guest_dir, "bench_io_tiny.elf" if a.tiny else "bench_io.elf")
        self.mb = os.path.join(a.guest_dir, "bench_io_mb_tiny.mb" if a.tiny else "bench_io_mb.mb")
        self.failures = []

    def run(self, cmd, want=1):
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.failures.append("%s: no result within %ds" % (" ".join(cmd), TIMEOUT))
            return None
        out = p.stdout.decode(errors="replace")
        res = parse(out)
        if p.returncode != want or "null" not in res or any(ph not in res for ph in PHASES):
            self.failures.append("%s: status %d, output %r, stderr %r" % (
                " ".join(cmd), p.returncode, out[-300:], p.stderr.decode(errors="replace")[-300:]))
            return None
        return res

    def vmmux_cmd(self, kernel, mode, vmm, opt="", pin=None, mmio_key="0xff000000+0x1000"):
        cmd = ["taskset", "-c", str(pin)] if pin is not None else []
        cmd += [self.a.vmmux, "run", "--kernel", kernel, "--no-defaults",
                "--vmm", "uart=uart16550,output=stdout", "--route", "io:0x3f8-0x3ff=uart",
                "--vmm", "exit=debug-exit", "--route", "io:0xf4-0xf7=exit",
                "--vmm", vmm, "--route", "io:0xe0-0xe3=s" + opt,
                "--route", "mmio:" + mmio_key + "=s" + opt]
        if mode is not None:
            cmd += ["--cpu-mode", mode]
        return cmd

    def compiled_available(self, opt, mmio_key):
        """Whether this vmmux runs bench_io with routes compiled into KVM (the
        route option OPT): None when it does, else the reason."""
        tiny = os.path.join(self.a.guest_dir, "bench_io_tiny.elf")
        cmd = self.vmmux_cmd(tiny, "user", "s=sink,placement=parallel", opt,
                             mmio_key=mmio_key)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if p.returncode == 1 and "mmior" in parse(p.stdout.decode(errors="replace")):
            return None
        err = p.stderr.decode(errors="replace").strip().splitlines()
        return "status %d: %s" % (p.returncode, err[0] if err else "no message")


def variants_elf(b, mode, doorbell, coalesced):
    v = [("(a) raw KVM loop", "base", ["%s" % b.a.rawkvm, "--cpu-mode", mode, b.elf]),
         ("(a) raw KVM loop + KVM_IOEVENTFD (writes stay in KVM)", "ref",
          [b.a.rawkvm, "--cpu-mode", mode, "--doorbell", b.elf]),
         ("(b) vmmux, route in the main VMM", "",
          b.vmmux_cmd(b.elf, mode, "s=sink")),
         ("(c) parallel VMM, sync, spin 50us", "",
          b.vmmux_cmd(b.elf, mode, "s=sink,placement=parallel")),
         ("(c) parallel VMM, sync, spin, pinned CPU 0/1", "",
          b.vmmux_cmd(b.elf, mode, "s=sink,placement=parallel,cpu=1", pin=0)),
         ("(c) parallel VMM, sync, block (spin=0s)", "",
          b.vmmux_cmd(b.elf, mode, "s=sink,placement=parallel,spin=0s")),
         ("(d) parallel VMM, posted, spin 50us", "",
          b.vmmux_cmd(b.elf, mode, "s=sink,placement=parallel", ";posted")),
         ("(d) parallel VMM, posted, spin, pinned CPU 0/1", "",
          b.vmmux_cmd(b.elf, mode, "s=sink,placement=parallel,cpu=1", ";posted", pin=0))]
    if doorbell:
        v.append(("(e) vmmux, doorbell routes (KVM_IOEVENTFD, value dropped)", "",
                  b.vmmux_cmd(b.elf, mode, "s=sink,placement=parallel", DOORBELL[0],
                              mmio_key=DOORBELL[1])))
    if coalesced:
        v.append(("(e) vmmux, coalesced routes (KVM's ring, values kept)", "",
                  b.vmmux_cmd(b.elf, mode, "s=sink,placement=parallel", COALESCED[0],
                              mmio_key=COALESCED[1])))
    return v


def variants_qemu(b):
    return [("QEMU 7.2, pc-testdev (in QEMU's process)", "base",
             [QEMU] + QEMU_ARGS + ["-kernel", b.mb]),
            ("(a) raw KVM loop", "", [b.a.rawkvm, b.mb]),
            ("(b) vmmux, route in the main VMM", "", b.vmmux_cmd(b.mb, None, "s=sink")),
            ("(c) vmmux, parallel VMM, sync, spin 50us", "",
             b.vmmux_cmd(b.mb, None, "s=sink,placement=parallel")),
            ("(c) vmmux, parallel VMM, sync, spin, pinned CPU 0/1", "",
             b.vmmux_cmd(b.mb, None, "s=sink,placement=parallel,cpu=1", pin=0)),
            ("(d) vmmux, parallel VMM, posted, spin 50us", "",
             b.vmmux_cmd(b.mb, None, "s=sink,placement=parallel", ";posted"))]


def summarise(results, variants, hz):
    """Per phase and variant: lists over rounds of p50, p99, net p50 (us)."""
    us = 1e6 / hz
    s = {}
    for name, _, _ in variants:
        for ph in PHASES:
            runs = [r for r in results[name] if r is not None]
            s[(name, ph)] = {
                "p50": [r[ph][0] * us for r in runs],
                "p99": [r[ph][1] * us for r in runs],
                "net": [(r[ph][0] - r["null"][0]) * us for r in runs],
            }
        runs = [r for r in results[name] if r is not None]
        s[(name, "null")] = {"p50": [r["null"][0] * us for r in runs]}
    return s


def render(title, variants, s, rounds):
    base = [n for n, k, _ in variants if k == "base"][0]
    lines = ["### " + title, ""]
    rows = []
    for ph in PHASES:
        b = bl.med(s[(base, ph)]["net"])
        for name, kind, _ in variants:
            d = s[(name, ph)]
            if not d["p50"]:
                rows.append([ph, name, "failed", "-", "-", "-"])
                continue
            rows.append([ph, name, bl.spread(d["p50"]), bl.spread(d["p99"]),
                         bl.spread(d["net"]),
                         "baseline" if name == base else bl.ratio(bl.med(d["net"]), b)])
    lines.append(bl.table(["access", "variant", "p50 us", "p99 us", "net p50 us",
                           "net ratio"], rows))
    nulls = ["%s %s" % (n.split(" ")[0], bl.spread(s[(n, "null")]["p50"]))
             for n, _, _ in variants if s[(n, "null")]["p50"]]
    lines += ["", "Timing cost (null phase p50, us, subtracted in \"net\"): " +
              "; ".join(nulls) + ".", ""]
    return lines


def net(s, name, ph):
    return bl.med(s[(name, ph)]["net"])


def targets_elf(s, v, mode_title):
    names = [n for n, _, _ in v]
    a, b_, c, cpin, d, dpin = names[0], names[2], names[3], names[4], names[6], names[7]
    out = []
    for ph in PHASES:
        na, nb, nc, ncp = (net(s, x, ph) for x in (a, b_, c, cpin))
        line = ("- %s, %s: (b) vs (a) %+.1f%% (target at most +5%%: %s); "
                "(c) spin vs (b) %+.1f%%, pinned %+.1f%% (target at most +10%%, best of the "
                "two: %s)" % (mode_title, ph, 100 * (nb / na - 1), bl.verdict(nb <= na * 1.05),
                              100 * (nc / nb - 1), 100 * (ncp / nb - 1),
                              bl.verdict(min(nc, ncp) <= nb * 1.10)))
        if ph in ("out", "mmiow"):  # posted only changes writes
            nd, ndp = net(s, d, ph), net(s, dpin, ph)
            line += ("; (d) posted vs (c) sync: %.2fx unpinned, %.2fx pinned (target below "
                     "1, pinned: %s)" % (nd / nc, ndp / ncp, bl.verdict(ndp < ncp)))
        out.append(line)
    for e in [n for n in names if n.startswith("(e)")]:
        for ph in ("out", "mmiow"):
            nb, ne = net(s, b_, ph), net(s, e, ph)
            exit_cost = net(s, a, ph) - net(s, names[1], ph)
            out.append("- %s, %s, %s: saves %.2f us against (b); a userspace exit costs "
                       "%.2f us here (raw loop minus raw loop with KVM_IOEVENTFD); target: "
                       "saves at least that (within 5%%): %s" % (
                           mode_title, ph, e.split(", ")[1].split(" (")[0], nb - ne,
                           exit_cost, bl.verdict(nb - ne >= exit_cost * 0.95)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmmux", required=True)
    ap.add_argument("--rawkvm", required=True)
    ap.add_argument("--guest-dir", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tiny", action="store_true", help="16 accesses per phase (smoke test)")
    ap.add_argument("--no-qemu", action="store_true")
    a = ap.parse_args()
    b = Bench(a)
    hz = float(subprocess.run([a.rawkvm, "--tsc-hz"], capture_output=True,
                              check=True).stdout)
    db_why = b.compiled_available(*DOORBELL)
    co_why = b.compiled_available(*COALESCED)
    doorbell, coalesced = db_why is None, co_why is None
    qemu = not a.no_qemu and shutil.which(QEMU) is not None
    tables = [("CPL3 (--cpu-mode user: guest code native)", "user",
               variants_elf(b, "user", doorbell, coalesced)),
              ("CPL0 (--cpu-mode long: guest code emulated)", "long",
               variants_elf(b, "long", doorbell, coalesced))]
    if qemu:
        tables.append(("Multiboot guest under QEMU and vmmux (32-bit CPL0, emulated)",
                       None, variants_qemu(b)))
    results = {(t[0], n): [] for t in tables for n, _, _ in t[2]}
    for rnd in range(a.rounds):
        print("exitpath: round %d/%d" % (rnd + 1, a.rounds), file=sys.stderr)
        for title, _, v in tables:
            for name, _, cmd in v:
                results[(title, name)].append(b.run(cmd))
    n = 16 if a.tiny else 2000
    out = ["## Exit path end to end", "",
           "Guest `bench_io` (%d accesses per phase, each timed by the guest with RDTSC; "
           "TSC %.3f GHz), %d rounds, variants interleaved. Port 0xe0 and MMIO page "
           "0xff000000 go to a `sink` VMM (answers 0, drops writes); the console (COM1) "
           "and the exit port stay in the main VMM. p50/p99: median over the rounds "
           "[min-max]; net: p50 minus the timing's own cost; ratio: net p50 against the "
           "table's baseline." % (n, hz / 1e9, a.rounds), ""]
    for ok, what, why in ((doorbell, "doorbell", db_why), (coalesced, "coalesced", co_why)):
        if not ok:
            out += ["(e) vmmux with %s routes compiled into KVM: **not available in this "
                    "build** (a run with `;%s` routes failed: %s). The row \"raw KVM loop "
                    "+ KVM_IOEVENTFD\" shows what it can reach." % (what, what, why), ""]
    checks = []
    for title, mode, v in tables:
        res = {name: results[(title, name)] for name, _, _ in v}
        s = summarise(res, v, hz)
        out += render(title, v, s, a.rounds)
        if mode is not None:
            checks += targets_elf(s, v, mode)
        else:
            q = v[0][0]
            for ph in PHASES:
                nq = net(s, q, ph)
                best = min(net(s, v[3][0], ph), net(s, v[4][0], ph))
                checks.append("- multiboot, %s: vmmux parallel VMM (sync, spin; best of "
                              "unpinned and pinned) %.2f us net against QEMU's pc-testdev "
                              "%.2f us (%+.1f%%; target: at least as fast: %s)" % (
                                  ph, best, nq, 100 * (best / nq - 1), bl.verdict(best <= nq)))
    if qemu:
        out += ["QEMU command line: `%s -kernel bench_io_mb.mb` (pc-testdev: port 0xe0 "
                "is its 4-byte \"pc-testdev-ioport\", a read returns the last value "
                "written; 0xff000000 its \"pc-testdev-iomem\"; both handled in QEMU's "
                "process). vmmux runs the same image file." % " ".join([QEMU] + QEMU_ARGS), ""]
    else:
        out += ["QEMU comparison: not run (%s)." % (
            "--no-qemu" if a.no_qemu else QEMU + " not installed"), ""]
    out += ["Targets:", ""] + checks + [""]
    if b.failures:
        out += ["Failed runs:", ""] + ["- `%s`" % f for f in b.failures] + [""]
    print("\n".join(out))
    return 1 if b.failures else 0


if __name__ == "__main__":
    sys.exit(main())
