#!/usr/bin/env python3
"""ctl_latency: how long the control socket takes to answer live changes
while a guest loads vmmux.

The guest (hammer.elf, 2 vCPUs) writes to ports 0x90-0x91 as fast as it can,
through synchronous OUTs to a parallel monitor. Meanwhile the program times,
one request at a time over the control socket:
  - routes.replace, moving io:0x90-0x91 between two parallel monitors;
  - vmm.restart of the parallel monitor that does not take the route;
  - routes.list (a request with no live change, for reference);
and, at the end, how long vmmux takes to exit after SIGTERM. It prints the
p50, p99 and maximum of each, in ms.

    python3 bench/control/ctl_latency.py --build build [--replaces 300]
        [--restarts 30] [--lists 300]

A program, not a test: its figures depend on the host's load.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


class Api:
    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1

    def call(self, cmd, **args):
        rid = self.next_id
        self.next_id += 1
        req = {"id": rid, "cmd": cmd}
        if args:
            req["args"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("control socket closed during %s" % cmd)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        rep = json.loads(line)
        if not rep.get("ok"):
            raise RuntimeError("%s failed: %r" % (cmd, rep.get("error")))
        return rep.get("result")


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


def report(name, xs):
    ms = [x * 1000 for x in xs]
    print("%-16s n=%-4d p50 %8.3f ms  p99 %8.3f ms  max %8.3f ms" %
          (name, len(ms), pct(ms, 50), pct(ms, 99), max(ms)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--replaces", type=int, default=300)
    ap.add_argument("--restarts", type=int, default=30)
    ap.add_argument("--lists", type=int, default=300)
    a = ap.parse_args()
    vmmux = os.path.join(a.build, "vmmux")
    hammer = os.path.join(a.build, "guest", "hammer.elf")
    for f in (vmmux, hammer):
        if not os.path.exists(f):
            sys.exit("ctl_latency: %s is missing (build first)" % f)
    tmp = tempfile.mkdtemp(prefix="ctl-latency-")
    sock = os.path.join(tmp, "api.sock")
    cmd = [vmmux, "run", "--kernel", hammer, "--cpus", "2", "--api-sock", sock,
           "--watchdog", "600s",
           "--vmm", "mon1=monitor,placement=parallel,output=/dev/null",
           "--vmm", "mon2=monitor,placement=parallel,output=/dev/null",
           "--vmm", "stop0=sink",
           "--route", "io:0x90-0x91=mon1", "--route", "io:0x92=stop0"]
    vm = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(tmp, "stderr"), "w"))
    try:
        deadline = time.monotonic() + 20
        api = None
        while api is None:
            try:
                api = Api(sock)
            except OSError:
                if time.monotonic() > deadline or vm.poll() is not None:
                    sys.exit("ctl_latency: no control socket (see %s/stderr)" % tmp)
                time.sleep(0.05)
        time.sleep(1.0)  # the guest hammering
        lists, replaces, restarts = [], [], []
        for _ in range(a.lists):
            t = time.monotonic()
            api.call("routes.list")
            lists.append(time.monotonic() - t)
        for i in range(a.replaces):
            target = "mon2" if i % 2 == 0 else "mon1"
            t = time.monotonic()
            api.call("routes.replace", spec="io:0x90-0x91=%s" % target)
            replaces.append(time.monotonic() - t)
        # the route ends on mon1: restart mon2, which takes no events, and
        # mon1, which takes the guest's
        for i in range(a.restarts):
            t = time.monotonic()
            api.call("vmm.restart", name="mon2" if i % 2 == 0 else "mon1")
            restarts.append(time.monotonic() - t)
        t = time.monotonic()
        vm.send_signal(signal.SIGTERM)
        vm.wait(timeout=60)
        sigterm = time.monotonic() - t
        report("routes.list", lists)
        report("routes.replace", replaces)
        report("vmm.restart", restarts)
        print("%-16s %.3f ms" % ("SIGTERM to exit", sigterm * 1000))
    finally:
        if vm.poll() is None:
            vm.kill()
            vm.wait()


if __name__ == "__main__":
    main()
