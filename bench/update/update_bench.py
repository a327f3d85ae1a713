#!/usr/bin/env python3
"""update_bench: the guest's pause during a live update of vmmux.

For guests of 64 MiB and 1 GiB of RAM, snapseq_long.elf (CPL3, 1 vCPU)
runs with a control socket and is updated ROUNDS times in a row with
`update` (the same program): each update's pause as the new program
reports it (`pause_ns`: from the pause request in the old program to the
vCPUs' start in the new one, the longest time a vCPU could not run; the
first, short pause for the new program's check is not in it) and the
control command's round trip; with 0 parallel VMMs, and with 3 (the UART
the guest prints to, the exit device and the chipset, each in its own
process, handed over running: their pids are checked unchanged after each
update). Prints the median, minimum and maximum (ms) as a markdown
section.

    python3 bench/update/update_bench.py --build build [--rounds 5] [--smoke]

A program, not a test: its figures depend on the host's load.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib as bl  # noqa: E402



# 3 of the default VMMs placed in processes of their own
PARALLEL3 = ["--vmm", "uart=uart16550,placement=parallel,output=stdout",
             "--vmm", "exit=debug-exit,placement=parallel",
             "--vmm", "chipset=chipset,placement=parallel"]


def pvmm_pids(sock):
    return sorted(v["pid"] for v in bl.ctl_call(sock, "vmms.list")["vmms"]
                  if v["placement"] == "parallel")


def one_case(o, tmp, mem, rounds, npar):
    sock = os.path.join(tmp, "api.sock")
    out = os.path.join(tmp, "out")
    args = [o.vmmux, "run", "--kernel", os.path.join(o.build, "guest", "snapseq_long.elf"),
            "--cpu-mode", "user", "--mem", mem, "--api-sock", sock] + \
        (PARALLEL3 if npar else [])
    with open(out, "wb") as f:
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
    got = []
    try:
        if not bl.wait_for(lambda: os.path.exists(sock) and open(out, "rb").read().count(b"\n")
                        >= 20):
            raise RuntimeError("the guest did not print 20 lines")
        pids = pvmm_pids(sock)
        if len(pids) != npar:
            raise RuntimeError("%d parallel VMMs, not %d" % (len(pids), npar))
        for _ in range(rounds):
            t0 = time.monotonic()
            r = bl.ctl_call(sock, "update")
            rtt = time.monotonic() - t0
            if r["pid"] != p.pid:
                raise RuntimeError("the pid changed: %d, was %d" % (r["pid"], p.pid))
            got.append({"pause": r["pause_ns"] / 1e6, "ctl": rtt * 1e3})
            if pvmm_pids(sock) != pids:
                raise RuntimeError("the parallel VMMs' pids changed: %s, were %s" % (
                    pvmm_pids(sock), pids))
            time.sleep(0.05)
    finally:
        p.kill()
        p.wait()
    return got


def fmt(xs):
    return "%.2f / %.2f / %.2f" % (statistics.median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    o = ap.parse_args()
    o.build = os.path.abspath(o.build)
    o.vmmux = os.path.join(o.build, "vmmux")
    rounds = 1 if o.smoke else max(o.rounds, 3)
    cases = ["64M"] if o.smoke else ["64M", "1G"]
    rows = []
    failed = False
    for npar in (0, 3):
        for mem in cases:
            with tempfile.TemporaryDirectory(prefix="vmmux-updbench-") as tmp:
                try:
                    got = one_case(o, tmp, mem, rounds, npar)
                except Exception as e:  # noqa: BLE001 - reported in the table
                    print("update_bench: %s, %d parallel VMMs: %s" % (mem, npar, e),
                          file=sys.stderr)
                    got = []
            if not got:
                failed = True
                rows.append("| %s | %d | failed | |" % (mem, npar))
                continue
            rows.append("| %s | %d | %s | %s |" % (mem, npar, fmt([g["pause"] for g in got]),
                                                   fmt([g["ctl"] for g in got])))
    print("## Live update (update_bench.py)\n")
    print("snapseq_long.elf at CPL3, 1 vCPU, updated %d time(s) in a row while it runs "
          "(`vmmux ctl update`, the same program). Times in ms, median / minimum / maximum. "
          "*pause*: from the pause request in the old program to the vCPUs' start in the "
          "new one (`pause_ns`), the longest time a vCPU could not run; *ctl*: the control "
          "command's round trip (the new program's check of the state, while the guest "
          "runs, included).\n" % rounds)
    print("| RAM | parallel VMMs | pause | ctl |")
    print("|---|---|---|---|")
    for r in rows:
        print(r)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
