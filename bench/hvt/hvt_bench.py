#!/usr/bin/env python3
"""hvt_bench.py: vmmux hvt, measured: block read and write throughput (4 KiB
and 64 KiB requests), net echo round trips per second, and the start-up
time of a hello unikernel, with the block and net VMMs in vmmux's process
(--placement=main) and as sandboxed parallel VMMs (--placement=parallel).

Usage: python3 bench/hvt/hvt_bench.py [--build DIR] [--rounds N] [--smoke]
  --build DIR  the meson build directory (default: build); uses DIR/vmmux and
               DIR/guest/hvt/*.hvt
  --rounds N   rounds per measurement (default 5): median [min-max] reported
  --smoke      tiny N, one round (checks that everything runs)

Prints a markdown section on stdout (bench/README.md); progress on stderr. The placements alternate within each
round, so that the ratio parallel/main compares runs made at the same time
on a noisy machine. The net echo needs root and iproute2: it makes a
network namespace with a tap, runs the guest's echo and the peer
(tests/integration/test_hvt_peer.py) there, and removes it; without root
that row says so. Guest code runs at CPL0 (emulated on PVM hosts), so the
guest's own per-request work is part of every number.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
PEER = os.path.join(SRC, "tests", "integration", "test_hvt_peer.py")
PLACEMENTS = ("main", "parallel")



def netns_cmd(ns):
    """The command prefix that runs a program in network namespace NS (made
    with `ip netns add`). nsenter switches the network namespace only:
    `ip netns exec` also remounts / and /sys, which fails where / is not a
    mount point (a chroot)."""
    return ["nsenter", "--net=/run/netns/" + ns]

def run(args, timeout=600):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("%s -> %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p.stdout


def block(vmmux, g, img, size, n, rounds):
    res = {(pl, op): [] for pl in PLACEMENTS for op in ("write", "read")}
    for _ in range(rounds):
        for pl in PLACEMENTS:
            out = run([vmmux, "hvt", "--mem=64", "--placement=" + pl, "--block:storage=" + img,
                       os.path.join(g, "hvt_blk.hvt"), "bench", str(size), str(n)])
            for line in out.splitlines():
                f = dict(x.split("=") for x in line.split()[2:])
                mib = size * n / (1 << 20) / (int(f["ns"]) / 1e9)
                res[(pl, line.split()[1])].append(mib)
    return res


def startup(vmmux, g, img, rounds):
    res = {}
    for what, args in (("hello, no device", ["hvt_hello.hvt"]),
                       ("one block device", ["--block:storage=" + img, "hvt_blk.hvt", "info"])):
        for pl in PLACEMENTS:
            res[(what, pl)] = []
        for _ in range(rounds):
            for pl in PLACEMENTS:
                a = [vmmux, "hvt", "--mem=64", "--placement=" + pl] + \
                    [os.path.join(g, x) if x.endswith(".hvt") else x for x in args]
                t0 = time.monotonic()
                run(a)
                res[(what, pl)].append((time.monotonic() - t0) * 1000)
    return res


def net(vmmux, g, n, rounds):
    if os.geteuid() != 0:
        return None
    ns = "vmmux-hvtbench-%d" % os.getpid()
    mac = "02:00:5e:10:00:02"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["ip", "tuntap", "add", "tap0", "mode", "tap"],
                    ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6"],
                    ["ip", "link", "set", "tap0", "up"]):
            subprocess.run(netns_cmd(ns) + cmd, check=True)
        res = {pl: [] for pl in PLACEMENTS}
        for _ in range(rounds):
            for pl in PLACEMENTS:
                peer = subprocess.Popen(netns_cmd(ns) + [sys.executable, PEER,
                                         "tap0", mac, str(n), "120"],
                                        stdout=subprocess.PIPE, text=True)
                run(netns_cmd(ns) + [vmmux, "hvt", "--mem=64", "--placement=" + pl,
                     "--net:service0=tap0", "--net-mac:service0=" + mac,
                     os.path.join(g, "hvt_net.hvt"), "echo", str(n)])
                out = peer.communicate(timeout=200)[0]
                f = dict(x.split("=") for x in out.split()[4:])
                res[pl].append((float(f["per_s"]), float(f["rtt_us_p50"])))
        return {pl: ([x[0] for x in v], [x[1] for x in v]) for pl, v in res.items()}
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def fmt(v, digits):
    return "%.*f [%.*f-%.*f]" % (digits, statistics.median(v), digits, min(v), digits, max(v))


def ratio(p, m):
    mm = statistics.median(m)
    return "%.2f" % (statistics.median(p) / mm) if mm else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    o = ap.parse_args()
    rounds = 1 if o.smoke else o.rounds
    vmmux = os.path.abspath(os.path.join(o.build, "vmmux"))
    g = os.path.abspath(os.path.join(o.build, "guest", "hvt"))
    n4, n64, nnet = (20, 10, 5) if o.smoke else (2000, 400, 300)
    with tempfile.TemporaryDirectory(prefix="hvtbench-") as tmp:
        img = os.path.join(tmp, "disk.img")
        with open(img, "wb") as f:
            f.truncate(16 << 20)
        print("hvt_bench: block", file=sys.stderr)
        b4 = block(vmmux, g, img, 4096, n4, rounds)
        b64 = block(vmmux, g, img, 65536, n64, rounds)
        print("hvt_bench: start-up", file=sys.stderr)
        st = startup(vmmux, g, img, rounds if o.smoke else max(rounds, 5))
        print("hvt_bench: net", file=sys.stderr)
        nt = net(vmmux, g, nnet, rounds)
    print("## Solo5 hvt guests (vmmux hvt)\n")
    print("`bench/hvt/hvt_bench.py`: median [min-max] of %d rounds, the two placements of "
          "the block and net VMMs alternating within each round; the ratio is parallel over "
          "in-process. The guests run at CPL0 (emulated on PVM hosts): their own "
          "per-request work is in every number. Block: %d (4 KiB) and %d (64 KiB) sequential "
          "requests on a 16 MiB image (page cache), timed by the guest with the walltime "
          "hypercall. Net: %d frames echoed by the guest to a Python AF_PACKET peer in a "
          "network namespace, one at a time (the peer's own latency included). Start-up: "
          "wall time of the whole `vmmux hvt` process.\n" % (rounds, n4, n64, nnet))
    print("| measurement | in-process VMMs | parallel VMMs | parallel / in-process |")
    print("|---|---|---|---|")
    for name, b in (("4 KiB", b4), ("64 KiB", b64)):
        for op in ("write", "read"):
            m, p = b[("main", op)], b[("parallel", op)]
            print("| block %s, %s requests (MiB/s) | %s | %s | %s |" % (
                op, name, fmt(m, 1), fmt(p, 1), ratio(p, m)))
    if nt is None:
        print("| net echo (round trips/s) | needs root | needs root | - |")
    else:
        (mr, ml), (pr, plat) = nt["main"], nt["parallel"]
        print("| net echo (round trips/s) | %s | %s | %s |" % (fmt(mr, 0), fmt(pr, 0),
                                                             ratio(pr, mr)))
        print("| net echo round trip, p50 (us) | %s | %s | %s |" % (fmt(ml, 0), fmt(plat, 0),
                                                                  ratio(plat, ml)))
    for what in ("hello, no device", "one block device"):
        m, p = st[(what, "main")], st[(what, "parallel")]
        print("| start-up to exit, %s (ms) | %s | %s | %s |" % (what, fmt(m, 1), fmt(p, 1),
                                                              ratio(p, m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
