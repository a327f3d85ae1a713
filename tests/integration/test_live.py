"""Live routing while the guest runs: a route swapped a thousand times under
two vCPUs' load, every event handled by the VMM the published table named;
a VMM hot-swapped for another executable with nothing lost and its state
kept. Talks to the control socket with raw newline-delimited JSON."""
import json
import os
import socket
import time

from harness import (VmmuxTest, exit_device_status, start_vmmux, vmm_program, wait_until,
                     guest)

SWAPS = 1000


class Api:
    """A control-socket client: one request at a time."""

    def __init__(self, path, timeout=10.0):
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
                raise AssertionError("control socket closed during %s" % cmd)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        rep = json.loads(line)
        if rep.get("id") != rid:
            raise AssertionError("reply id %r for request %d" % (rep.get("id"), rid))
        if not rep.get("ok"):
            raise AssertionError("%s failed: %r" % (cmd, rep.get("error")))
        return rep.get("result")

    def close(self):
        self.sock.close()


def connect(path):
    return wait_until("the control socket at %s" % path,
                      lambda: os.path.exists(path) and Api(path), timeout=10)


class RouteSwapUnderLoad(VmmuxTest):
    def test_thousand_swaps_two_vcpus(self):
        api_path = self.path("api.sock")
        logs = {m: self.path(m + ".jsonl") for m in ("mon1", "mon2")}
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("hammer.elf"), "--cpus", "2",
            "--api-sock", api_path, "--watchdog", "120s",
            "--vmm", "mon1=monitor,placement=parallel,output=%s" % logs["mon1"],
            "--vmm", "mon2=monitor,placement=parallel,output=%s" % logs["mon2"],
            "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--route", "io:0x90-0x91=mon1", "--route", "io:0x92=stop0")
        try:
            api = connect(api_path)
            owner = {api.call("routes.list")["generation"]: "mon1"}
            # wait until the guest is hammering
            wait_until("events at mon1", lambda: os.path.exists(logs["mon1"]) and
                       os.path.getsize(logs["mon1"]) > 0, timeout=20)
            for i in range(SWAPS):
                target = "mon2" if i % 2 == 0 else "mon1"
                gen = api.call("routes.replace", spec="io:0x90-0x91=%s" % target)["generation"]
                owner[gen] = target
            gen = api.call("routes.replace", spec="io:0x92=stop1")["generation"]
            owner[gen] = owner[max(g for g in owner if g < gen)]
            api.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        self.assertStatus(r, exit_device_status(0))
        self.assertTrue(r.out.startswith("hammer done "), r)
        written = [int(x) for x in r.out.split()[2:4]]
        seen = {0: [], 1: []}
        per_vmm = {"mon1": 0, "mon2": 0}
        for m, path in logs.items():
            for e in self.read_log(path):
                self.assertEqual(e["type"], "io")
                # exactly the VMM that the table of this generation named
                self.assertIn(e["gen"], owner, e)
                self.assertEqual(owner[e["gen"]], m, e)
                seen[e["vcpu"]].append(int(e["value"], 16))
                self.assertEqual(int(e["key"], 16), 0x90 + e["vcpu"])
                per_vmm[m] += 1
        for cpu in (0, 1):
            # none lost, none twice, in the order written
            self.assertEqual(sorted(seen[cpu]), list(range(written[cpu])),
                             "vCPU %d: %d values seen of %d" % (cpu, len(seen[cpu]),
                                                                written[cpu]))
        # the swaps happened while events flowed: both VMMs got a share, and
        # events were routed by many generations
        self.assertGreater(per_vmm["mon1"], 0)
        self.assertGreater(per_vmm["mon2"], 0)
        gens = set()
        for path in logs.values():
            gens.update(e["gen"] for e in self.read_log(path))
        self.assertGreater(len(gens), SWAPS // 10, "only %d generations used" % len(gens))


class HotSwap(VmmuxTest):
    def swap_console(self, placement, program_args):
        api_path = self.path("api.sock")
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("swapseq.elf"), "--api-sock", api_path,
            "--watchdog", "120s", "--no-defaults",
            "--vmm", "uart=uart16550,placement=%s,output=stdout" % placement,
            "--vmm", "exit=debug-exit", "--route", "io:0x3f8-0x3ff=uart",
            "--route", "io:0xf4-0xf7=exit")
        try:
            api = connect(api_path)
            # swap while the numbered lines are being printed
            wait_until("the guest printing", lambda: vm.out().count("\n") > 50, timeout=20)
            before = [v for v in api.call("vmms.list")["vmms"] if v["name"] == "uart"][0]
            api.call("vmm.swap", name="uart", spec=program_args)
            printed = vm.out().count("\n")
            after = [v for v in api.call("vmms.list")["vmms"] if v["name"] == "uart"][0]
            api.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        self.assertStatus(r, exit_device_status(0))
        text = r.out
        expected = "ready\n" + "".join("swap %05d\n" % i for i in range(2000)) + \
            "regs dll=0c dlm=00 lcr=03 ier=00 scr=5a\n"
        self.assertEqual(text, expected)
        # it happened while the guest printed (before its last line)
        self.assertLess(printed, 2002)
        return before, after, text

    def test_swap_for_another_executable(self):
        # the built-in console as a parallel VMM, swapped for the same role
        # built as a separate program (a new program version)
        prog = vmm_program("uart_ext")
        before, after, _ = self.swap_console(
            "parallel", "uart=external,program=%s,output=stdout" % prog)
        self.assertEqual(before["role"], "uart16550")
        self.assertEqual(after["role"], "external")
        self.assertEqual(after["id"], before["id"])
        self.assertNotEqual(after["pid"], before["pid"])
        self.assertEqual(after["state"], "up")

    def test_swap_in_process_for_parallel(self):
        before, after, _ = self.swap_console(
            "main", "uart=uart16550,placement=parallel,output=stdout")
        self.assertEqual(before["placement"], "main")
        self.assertEqual(after["placement"], "parallel")
        self.assertGreater(after["pid"], 0)


class HotSwapUnderLoad(VmmuxTest):
    SWAPS = 5
    RESTORE_MS = 50

    def test_swaps_hold_back_and_deliver_every_event(self):
        # Two vCPUs write numbered values to 0x90 and 0x91, both routed to
        # one VMM (vmm_worker, which records each value it handles), while
        # that VMM is hot-swapped five times for a new instance. Each new
        # instance takes 50 ms to take over the state: meanwhile vmmux holds
        # the VMM's events back, and both vCPUs, writing without pause, have
        # events held in every swap. Counted at the instances: every value
        # written reached exactly one of them, in order, and each instance
        # took over the count of events its predecessors handled.
        prog = vmm_program("vmm_worker")
        api_path = self.path("api.sock")
        outs = [self.path("w%d.txt" % k) for k in range(self.SWAPS + 1)]

        def worker(k):
            return "w=external,program=%s,output=%s,restore_ms=%d" % (prog, outs[k],
                                                                      self.RESTORE_MS)

        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("hammer.elf"), "--cpus", "2",
            "--api-sock", api_path, "--watchdog", "120s", "--vmm", worker(0),
            "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--route", "io:0x90-0x91=w", "--route", "io:0x92=stop0")
        try:
            api = connect(api_path)
            for k in range(1, self.SWAPS + 1):
                # the guest writing to the instance in place
                wait_until("events at instance %d" % (k - 1),
                           lambda: os.path.exists(outs[k - 1]) and
                           os.path.getsize(outs[k - 1]) > 4096, timeout=30)
                t0 = time.monotonic()
                api.call("vmm.swap", name="w", spec=worker(k))
                # the swap's window, while events were held back
                self.assertGreaterEqual(time.monotonic() - t0, self.RESTORE_MS / 1000)
            wait_until("events at the last instance",
                       lambda: os.path.exists(outs[-1]) and os.path.getsize(outs[-1]) > 4096,
                       timeout=30)
            api.call("routes.replace", spec="io:0x92=stop1")
            api.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        self.assertStatus(r, exit_device_status(0))
        self.assertTrue(r.out.startswith("hammer done "), r)
        written = [int(x) for x in r.out.split()[2:4]]
        seen = {0: [], 1: []}
        handled = 0
        for k, path in enumerate(outs):
            with open(path) as f:
                lines = f.read().splitlines()
            events = [ln.split() for ln in lines if ln.startswith("w ")]
            # each instance handled events, and took over its predecessors'
            # count (its state) before its first one
            self.assertGreater(len(events), 0, "instance %d" % k)
            if k > 0:
                self.assertEqual(lines[0], "restored %d" % handled, "instance %d" % k)
            self.assertEqual(lines[-1], "done %d" % (handled + len(events)), "instance %d" % k)
            handled += len(events)
            for _, vcpu, port, value, _ in events:
                self.assertEqual(int(port, 16), 0x90 + int(vcpu))
                seen[int(vcpu)].append(int(value, 16))
        for cpu in (0, 1):
            # none lost, none twice, in the order written
            self.assertEqual(seen[cpu], list(range(written[cpu])),
                             "vCPU %d: %d values seen of %d" % (cpu, len(seen[cpu]),
                                                                written[cpu]))
