#!/usr/bin/env python3
"""The cost of a transition to a VMM, in-process and parallel, side by side.

Runs iobench.elf at CPL3 (--cpu-mode user: guest code runs natively on PVM
hosts) with its two ports routed to a 'sink' VMM (a role that does nothing),
in each variant below, for ROUNDS rounds, and prints per variant and per
direction (OUT: port 0x90, IN: port 0x91):

  - vmmux's own handling latency per event, p50 and p99, from --stats-json
    (from the classified exit to the reply applied: the transition to the
    VMM and back, without KVM's exit itself), as the median over the rounds
    with the min-max spread, and its ratio to the in-process variant of the
    same run;
  - the wall-clock time per exit of the whole run (KVM's exit included).

Variants: in-process; a parallel VMM, synchronous or with posted writes,
its transport spinning (the default 50us) or blocking (spin=0s), placed by
the scheduler or pinned on the other CPU than vmmux or on the same one.
Usage: transition_bench.py VMMUX GUEST_DIR [ROUNDS]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

N = 5000  # events per direction (IOBENCH_N in guest/tests/iobench.c)

# (name, VMM option, options of the OUT route, CPU of vmmux or None). With a
# CPU, vmmux runs pinned there (taskset) and the VMM's cpu= says where the
# parallel VMM runs: the other CPU (cross) or the same one.
VARIANTS = [
    ("in-process", ["--vmm", "s=sink"], [], None),
    ("sync spin", ["--vmm", "s=sink,placement=parallel"], [], None),
    ("sync spin cross-CPU", ["--vmm", "s=sink,placement=parallel,cpu=1"], [], 0),
    ("sync spin same-CPU", ["--vmm", "s=sink,placement=parallel,cpu=0"], [], 0),
    ("sync block", ["--vmm", "s=sink,placement=parallel,spin=0s"], [], None),
    ("sync block cross-CPU", ["--vmm", "s=sink,placement=parallel,spin=0s,cpu=1"], [], 0),
    ("posted spin", ["--vmm", "s=sink,placement=parallel"], [";posted"], None),
    ("posted spin cross-CPU", ["--vmm", "s=sink,placement=parallel,cpu=1"], [";posted"], 0),
    ("posted block", ["--vmm", "s=sink,placement=parallel,spin=0s"], [";posted"], None),
]


def run(vmmux, guest, vmm_args, out_opt, cpu):
    with tempfile.TemporaryDirectory() as d:
        sj = os.path.join(d, "stats.json")
        route_out = "io:0x90=s" + "".join(out_opt)
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        cmd = pin + [vmmux, "run", "--kernel", guest, "--cpu-mode", "user", "--no-defaults",
               "--vmm", "exit=debug-exit", "--route", "io:0xf4-0xf7=exit",
               *vmm_args, "--route", route_out, "--route", "io:0x91=s",
               "--stats-json", sj]
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, timeout=300)
        wall = time.monotonic() - t0
        if p.returncode != 1:
            sys.exit("benchmark run failed (status %d): %s\n%s" % (
                p.returncode, " ".join(cmd), p.stderr.decode()))
        with open(sj) as f:
            st = json.load(f)
    routes = {r["spec"]: r for r in st["routes"]}
    out = routes[route_out]
    inn = routes["io:0x91=s"]
    return {"out": (out["p50_ns"], out["p99_ns"]), "in": (inn["p50_ns"], inn["p99_ns"]),
            "wall_us_per_exit": wall * 1e6 / (2 * N)}


def med(xs):
    return statistics.median(xs)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    vmmux, guest_dir = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    guest = os.path.join(guest_dir, "iobench.elf")
    res = {v[0]: [] for v in VARIANTS}
    for _ in range(rounds):  # interleaved, so that drift hits every variant
        for name, vmm_args, out_opt, cpu in VARIANTS:
            res[name].append(run(vmmux, guest, vmm_args, out_opt, cpu))
    base = res["in-process"]
    print("Transition to a VMM and back, vmmux's handling time per event "
          "(CPL3 guest, %d OUT + %d IN per run, %d rounds; median over rounds "
          "[min-max]; ratio to in-process p50)" % (N, N, rounds))
    print("%-24s %-4s %22s %22s %8s %16s" % ("variant", "dir", "p50 us", "p99 us",
                                             "ratio", "wall us/exit"))
    for name, _, _, _ in VARIANTS:
        rs = res[name]
        for d in ("out", "in"):
            p50 = [r[d][0] / 1000 for r in rs]
            p99 = [r[d][1] / 1000 for r in rs]
            b50 = med([r[d][0] / 1000 for r in base])
            wall = [r["wall_us_per_exit"] for r in rs]
            print("%-24s %-4s %8.2f [%5.2f-%6.2f] %8.2f [%5.2f-%6.2f] %7.1fx %8.1f [%.0f-%.0f]" % (
                name, d, med(p50), min(p50), max(p50), med(p99), min(p99), max(p99),
                med(p50) / b50 if b50 else 0, med(wall), min(wall), max(wall)))


if __name__ == "__main__":
    main()
