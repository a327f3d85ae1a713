#!/usr/bin/env python3
"""Memory and start-up: the resident memory of vmmux (the main VMM) and of
each parallel VMM process without the guest's RAM, and the time from
starting `vmmux run` to the guest's first instruction, against QEMU on the
same guest.

Memory: vmmux runs bench_hold.elf (CPL3, reads port 0xe0 forever, routed to
a `sink` VMM) with the PC-like default VMMs, once with every VMM in its
process and once with --parallel (each VMM its own process). After HOLD
seconds the benchmark reads /proc/PID/smaps of vmmux and of every process
under it: Rss of all mappings, minus the guest-RAM mappings (vmmux: the
memfd pieces "vmmux-ram@..."; QEMU: its anonymous mapping of the guest's
RAM size or larger); then it stops the run (SIGTERM, SIGKILL after 5 s).
QEMU (-m 64, the same RAM as vmmux's default) is sampled the same way while
its firmware boots bench_first.mb.

Start-up: bench_first.mb (multiboot) writes '!' to COM1 as its very first
instruction; the time from spawning the VMM to that byte on the VMM's
stdout (a pipe) is the time to the guest's first instruction, the console's
own path included; "total" is until the process has exited.

Usage: footprint_bench.py --vmmux VMMUX --guest-dir DIR [--rounds N] [--no-qemu]
Prints a markdown section on stdout.
"""
import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib as bl  # noqa: E402

QEMU = "qemu-system-x86_64"
QEMU_ARGS = ["-accel", "kvm", "-nodefaults", "-no-user-config", "-display", "none", "-m", "64",
             "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
GUEST_MIB = 64
HOLD = 1.0
failures = []


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    for c in list(out):
        out += children(c)
    return out


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def rss_kib(pid, qemu=False):
    """(total Rss, guest-RAM Rss) of PID in KiB, or None."""
    total = guest = 0
    try:
        with open("/proc/%d/smaps" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    is_guest = False
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if not parts[0].endswith(":") or "-" in parts[0]:
            # a mapping header: "start-end perms offset dev inode [name]"
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            name = parts[5] if len(parts) > 5 else ""
            size_mib = (hi - lo) / (1 << 20)
            if qemu:
                is_guest = name == "" and size_mib >= GUEST_MIB
            else:
                is_guest = "vmmux-ram@" in line
        elif parts[0] == "Rss:":
            kib = int(parts[1])
            total += kib
            if is_guest:
                guest += kib
    return total, guest


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def memory_vmmux(a, parallel):
    cmd = [a.vmmux, "run", "--kernel", os.path.join(a.guest_dir, "bench_hold.elf"),
           "--cpu-mode", "user", "--vmm", "s=sink", "--route", "io:0xe0-0xe3=s"]
    if parallel:
        cmd.append("--parallel")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        time.sleep(HOLD)
        if p.poll() is not None:
            failures.append("%s: ended early (status %d): %s" % (
                " ".join(cmd), p.returncode, p.stderr.read().decode(errors="replace")[-300:]))
            return None
        procs = [(p.pid, "vmmux (main VMM)")] + [(c, comm(c)) for c in children(p.pid)]
        res = []
        for pid, name in procs:
            r = rss_kib(pid)
            if r is not None:
                res.append((name, r[0], r[1]))
        return res
    finally:
        stop(p)


def first_byte(cmd, sample_qemu=False):
    """(seconds to the first byte, seconds to exit, memory sample or None)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    mem = None
    try:
        fd = p.stdout.fileno()
        t1 = None
        deadline = t0 + 120
        while t1 is None and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 1.0)
            if r:
                b = os.read(fd, 1)
                if b == b"!":
                    t1 = time.monotonic()
                elif not b:
                    break
            elif sample_qemu and mem is None:
                mem = rss_kib(p.pid, qemu=True)
        if t1 is None:
            failures.append("%s: no '!' on its console" % " ".join(cmd))
            return None
        p.stdout.read()
        p.wait(timeout=120)
        t2 = time.monotonic()
        if p.returncode != 1:
            failures.append("%s: status %d" % (" ".join(cmd), p.returncode))
            return None
        return t1 - t0, t2 - t0, mem
    finally:
        stop(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmmux", required=True)
    ap.add_argument("--guest-dir", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-qemu", action="store_true")
    a = ap.parse_args()
    qemu = not a.no_qemu and shutil.which(QEMU) is not None
    first = os.path.join(a.guest_dir, "bench_first.mb")
    # vmmux's QEMU front end: the same QEMU command line, vmmux started
    # through a symlink named qemu-system-x86_64 (src/cli/qemu.h)
    linkdir = tempfile.mkdtemp(prefix="vmmux-footprint-")
    link = os.path.join(linkdir, QEMU)
    os.symlink(os.path.abspath(a.vmmux), link)
    starts = [("vmmux, VMMs in its process", [a.vmmux, "run", "--kernel", first]),
              ("vmmux --parallel (6 parallel VMM processes)",
               [a.vmmux, "run", "--parallel", "--kernel", first]),
              ("vmmux's QEMU front end (qemu-system-x86_64 -> vmmux)",
               [link] + QEMU_ARGS + ["-kernel", first])]
    if qemu:
        starts.append(("QEMU 7.2 (SeaBIOS, multiboot option ROM)",
                       [QEMU] + QEMU_ARGS + ["-kernel", first]))
    st = {n: [] for n, _ in starts}
    mem_in, mem_par, mem_q = [], [], []
    for rnd in range(a.rounds):
        print("footprint: round %d/%d" % (rnd + 1, a.rounds), file=sys.stderr)
        for name, cmd in starts:
            r = first_byte(cmd, sample_qemu=cmd[0] == QEMU)
            if r is not None:
                st[name].append(r)
                if r[2] is not None:
                    mem_q.append(r[2])
        m = memory_vmmux(a, False)
        if m:
            mem_in.append(m)
        m = memory_vmmux(a, True)
        if m:
            mem_par.append(m)

    shutil.rmtree(linkdir, ignore_errors=True)
    out = ["## Memory and start-up", ""]
    out += ["Start-up: `bench_first.mb` writes '!' to COM1 as its first instruction; time "
            "from spawning the VMM to that byte on its stdout, and to its exit; %d rounds, "
            "median [min-max], ratio against vmmux in one process." % a.rounds, ""]
    rows = []
    base = bl.med([r[0] for r in st[starts[0][0]]]) if st[starts[0][0]] else None
    for name, _ in starts:
        rs = st[name]
        rows.append([name, bl.spread([r[0] * 1e3 for r in rs], "%.1f"),
                     bl.spread([r[1] * 1e3 for r in rs], "%.1f"),
                     bl.ratio(bl.med([r[0] for r in rs]), base) if rs else "-"])
    out += [bl.table(["VMM", "to first instruction, ms", "to exit, ms", "ratio"], rows), ""]

    out += ["Resident memory without guest RAM (Rss from /proc/PID/smaps minus the guest-RAM "
            "mappings), vmmux running `bench_hold.elf` at CPL3 for %.0f s with the PC-like "
            "default VMMs (uart, exit, chipset, smm, fault) and a `sink` on port 0xe0; "
            "%d rounds, median [min-max] in MiB. QEMU: sampled 1 s into its boot of the "
            "same 64 MiB guest (firmware running)." % (HOLD, a.rounds), ""]
    rows = []

    def add(label, samples, idx):
        vals = [s[idx] for s in samples if len(s) > idx]
        if vals:
            rows.append([label, vals[0][0],
                         bl.spread([(v[1] - v[2]) / 1024 for v in vals], "%.1f"),
                         bl.spread([v[2] / 1024 for v in vals], "%.1f")])

    add("vmmux, VMMs in its process", mem_in, 0)
    for i in range(max((len(s) for s in mem_par), default=0)):
        add("vmmux --parallel" + (": main VMM" if i == 0 else ": parallel VMM %d" % i),
            mem_par, i)
    if mem_q:
        rows.append(["QEMU 7.2", "qemu-system-x86_64",
                     bl.spread([(t - g) / 1024 for t, g in mem_q], "%.1f"),
                     bl.spread([g / 1024 for _, g in mem_q], "%.1f")])
    out += [bl.table(["process", "comm", "Rss without guest RAM, MiB",
                      "guest RAM resident, MiB"], rows), ""]
    # Targets set from what this host showed (see bench/README.md): start-up
    # is a few ms of vmmux's own work (KVM VM and vCPU creation, image load,
    # page tables) plus one process spawn per parallel VMM; memory is a
    # small C program's, with the routing table (128 KiB port array), the
    # statistics' histograms, libc, liburcu, jansson and libseccomp mapped,
    # and one transport region per parallel VMM: 3.6-4.0 MiB was seen for
    # the main VMM, hence 5 MiB (a quarter of room), and 2.0-2.2 MiB for a
    # parallel VMM, hence 3 MiB.
    t_in = bl.med([r[0] * 1e3 for r in st[starts[0][0]]])
    t_par = bl.med([r[0] * 1e3 for r in st[starts[1][0]]])
    m_main = [max((s[0][1] - s[0][2]) / 1024 for s in mem_par)] if mem_par else []
    m_vmm = [max((v[1] - v[2]) / 1024 for v in s[1:]) for s in mem_par if len(s) > 1]
    out += ["Targets (set from these measurements, with room for a loaded host): guest's "
            "first instruction within 10 ms of `vmmux run` with in-process VMMs "
            "(%.1f ms: %s) and within 25 ms with five parallel VMMs (%.1f ms: %s), "
            "where QEMU needs seconds for its emulated firmware; at most 5 MiB resident "
            "for the main VMM (worst %.1f MiB: %s) and 3 MiB per parallel VMM (worst "
            "%.1f MiB: %s), against QEMU's tens of MiB. The parallel VMMs' figures include "
            "their share of the transport region (shared memory, counted in both "
            "processes' Rss)." % (
                t_in, bl.verdict(t_in <= 10), t_par, bl.verdict(t_par <= 25),
                max(m_main or [0]), bl.verdict(max(m_main or [0]) <= 5),
                max(m_vmm or [0]), bl.verdict(max(m_vmm or [0]) <= 3)), ""]
    if failures:
        out += ["Failed runs:", ""] + ["- `%s`" % f for f in failures] + [""]
    print("\n".join(out))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
