#!/usr/bin/env python3
"""snapshot_bench: snapshot and restore times and snapshot file sizes.

For guests of 64 MiB and 1 GiB of RAM, with 0 and 3 parallel VMMs (three
monitors with no guest memory granted, beside the default in-process
devices), each round:
  - starts snapseq.elf (CPL3, 1 vCPU) with a control socket, waits for its
    20th line, and takes a snapshot with `vmmux ctl snapshot` while the
    guest runs on: the vCPUs' pause and the file's write as vmmux reports
    them, the round trip of the ctl command, the file's length and what it
    holds on disk (the guest's non-zero pages: the rest are holes);
  - restores it with `vmmux run --restore`: the time from the snapshot's
    opening (the start of `run --restore`, after exec and the dynamic
    loader) to the vCPU threads' start, as vmmux logs it ("restore: the
    vCPUs start N us after the snapshot was opened"), and the time from
    the process's spawn to that log line (exec, loader and logging
    included); the restored run is then killed.
Prints the median and minimum over the rounds (ms), as a markdown section.

    python3 bench/snapshot/snapshot_bench.py --build build [--rounds 5] [--smoke]

A program, not a test: its figures depend on the host's load.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib as bl  # noqa: E402

RESTORED = re.compile(rb"restore: the vCPUs start (\d+) us after the snapshot was opened")



def one_round(o, tmp, mem, nparallel):
    sock = os.path.join(tmp, "api.sock")
    snap = os.path.join(tmp, "snap")
    out = os.path.join(tmp, "out")
    args = [o.vmmux, "run", "--kernel", os.path.join(o.build, "guest", "snapseq.elf"),
            "--cpu-mode", "user", "--mem", mem, "--api-sock", sock]
    for i in range(nparallel):
        args += ["--vmm", "mon%d=monitor,placement=parallel,output=/dev/null" % i]
    with open(out, "wb") as f:
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
    try:
        if not bl.wait_for(lambda: os.path.exists(sock) and open(out, "rb").read().count(b"\n")
                        >= 20):
            raise RuntimeError("the guest did not print 20 lines")
        t0 = time.monotonic()
        r = bl.ctl_call(sock, "snapshot", path=snap)
        rtt = time.monotonic() - t0
    finally:
        p.kill()
        p.wait()
    st = os.stat(snap)
    res = {"pause": r["pause_ns"] / 1e6, "write": r["write_ns"] / 1e6, "ctl": rtt * 1e3,
           "size": st.st_size, "disk": st.st_blocks * 512}
    # restore
    t0 = time.monotonic()
    p = subprocess.Popen([o.vmmux, "run", "--restore", snap, "--log-level", "info"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, cwd=tmp)
    try:
        internal = None
        for line in p.stderr:
            m = RESTORED.search(line)
            if m:
                internal = int(m.group(1)) / 1e3
                res["spawn"] = (time.monotonic() - t0) * 1e3
                break
        if internal is None:
            raise RuntimeError("the restored run did not log its start")
        res["restore"] = internal
    finally:
        p.kill()
        p.wait()
    os.unlink(snap)
    return res


def fmt(xs):
    return "%.2f / %.2f" % (statistics.median(xs), min(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    o = ap.parse_args()
    o.build = os.path.abspath(o.build)
    o.vmmux = os.path.join(o.build, "vmmux")
    rounds = 1 if o.smoke else o.rounds
    cases = [("64M", 0), ("64M", 3), ("1G", 0), ("1G", 3)]
    if o.smoke:
        cases = [("64M", 0)]
    rows = []
    failed = False
    for mem, npar in cases:
        got = []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory(prefix="vmmux-snapbench-") as tmp:
                try:
                    got.append(one_round(o, tmp, mem, npar))
                except Exception as e:  # noqa: BLE001 - reported in the table
                    print("snapshot_bench: %s, %d parallel: %s" % (mem, npar, e),
                          file=sys.stderr)
        if not got:
            failed = True
            rows.append("| %s | %d | failed | | | | | | |" % (mem, npar))
            continue
        col = lambda k: [g[k] for g in got]  # noqa: E731
        rows.append("| %s | %d | %s | %s | %s | %d MiB | %d KiB | %s | %s |" % (
            mem, npar, fmt(col("pause")), fmt(col("write")), fmt(col("ctl")),
            got[0]["size"] >> 20, statistics.median(col("disk")) // 1024,
            fmt(col("restore")), fmt(col("spawn"))))
    print("## Snapshot and restore (snapshot_bench.py)\n")
    print("snapseq.elf at CPL3, 1 vCPU, snapshotted while it runs (`vmmux ctl snapshot`), "
          "then restored (`vmmux run --restore`). Parallel VMMs: monitors with no guest "
          "memory granted, so all of RAM is mapped from the file (MAP_PRIVATE) at restore. "
          "Times in ms, median / minimum of %d round(s). *pause*: the vCPUs held, "
          "snapshot written included; *write*: writing the file; *ctl*: the control "
          "command's round trip; *file*: the file's length; *on disk*: its allocated "
          "blocks (zero pages are holes); *restore*: from opening the snapshot to the "
          "vCPU threads' start (the first guest instruction follows at once); *spawn*: "
          "from the process's spawn to that point (exec, dynamic loader, logging).\n" %
          rounds)
    print("| RAM | parallel VMMs | pause | write | ctl | file | on disk | restore | spawn |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
