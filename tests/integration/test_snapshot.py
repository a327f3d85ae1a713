"""Snapshot and restore (docs/snapshot.md): `vmmux ctl snapshot PATH
[--stop]` and `vmmux run --restore PATH`.

Each kind of guest the project runs (a multiboot kernel at CPL0, an ELF64
guest at CPL3, a Solo5 hvt unikernel with a block and a net device, a
2-vCPU guest with the in-kernel irqchip) is snapshotted while it prints a
numbered sequence of running checksums over its memory, and restored: what
the run printed before the snapshot and what the restored run prints make
exactly what an uninterrupted run prints, with the same exit status (the
guests also check that their TSC or clock never goes back). The VMMs run in
the main VMM's process, except where a test places them itself as parallel
VMM processes: the UART's state (one test mixes the placements), a monitor
whose saved state counts every write, the hvt unikernel's VMMs (vmmux hvt
places them by its own rule); the module has no separate parallel run.
Then every refusal: another format version, a truncated file, a corrupted
section, a machine that does not fit this host, a VMM program that is gone,
a command line that contradicts the snapshot: each named, and nothing runs.
"""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

import harness
from harness import (PARALLEL, VmmuxTest, exit_device_status, guest, run_ctl, start_vmmux, vmm_program,
                     wait_for_socket, wait_until)

HDR = 64
SECHDR = 24


def sections(data):
    """[(offset of the section header, type, index, payload length)] of a
    snapshot file's bytes."""
    nsec = struct.unpack_from("<I", data, 32)[0]
    at, out = HDR, []
    for _ in range(nsec):
        typ, _crc, length, index = struct.unpack_from("<IIQI", data, at)
        out.append((at, typ, index, length))
        at += SECHDR + ((length + 7) & ~7)
    return out


def reseal(data):
    """Recompute every CRC of a snapshot file's bytes (bytearray), as a
    writer of another vmmux would."""
    for at, _typ, _index, length in sections(data):
        payload = bytes(data[at + SECHDR:at + SECHDR + length])
        struct.pack_into("<I", data, at + 4, zlib.crc32(payload))
        struct.pack_into("<I", data, at + 20, zlib.crc32(bytes(data[at:at + 20])))
    struct.pack_into("<I", data, 36, 0)
    struct.pack_into("<I", data, 36, zlib.crc32(bytes(data[:HDR])))


class SnapshotTest(VmmuxTest):

    def snapshot_run(self, args, min_lines=30, stop=True):
        """Run ARGS uninterrupted, then again with a snapshot taken once it
        printed MIN_LINES lines (the run stopping with it when STOP), then
        restored. Returns (uninterrupted, snapshotted, restored) Results."""
        full = self.vmmux("run", *args, timeout=120)
        sock = self.path("api.sock")
        snap = self.path("snap")
        bg = self.start("run", *args, "--api-sock", sock)
        wait_for_socket(sock, bg)
        wait_until("%d lines printed" % min_lines,
                   lambda: bg.out().count("\n") >= min_lines or not bg.running(), timeout=60)
        c = run_ctl(sock, "snapshot", snap, *(["--stop"] if stop else []))
        self.assertStatus(c, 0)
        self.assertIn("file_bytes:", c.out)
        a = bg.finish(timeout=120)
        b = self.vmmux("run", "--restore", snap, timeout=120)
        return full, a, b

    def assertSameRun(self, full, a, b, stopped=True):
        """A (up to the snapshot) then B (restored) print what FULL printed."""
        self.assertEqual(b.status, full.status, b.err)
        self.assertNotIn("went back", full.out)
        if stopped:
            self.assertStatus(a, 0)
            self.assertGreater(len(a.out), 0)
            self.assertGreater(len(b.out), 0)
            self.assertEqual(a.out + b.out, full.out)
        else:
            self.assertEqual(a.status, full.status)
            self.assertEqual(a.out, full.out)
            # (the snapshot may fall in the middle of a line)
            self.assertTrue(full.out.endswith(b.out), "not a suffix:\n%s" % b.out[:300])
            self.assertLess(len(b.out), len(full.out))
        self.assertNotIn("went back", b.out)


class GuestKinds(SnapshotTest):

    def test_multiboot_cpl0(self):
        full, a, b = self.snapshot_run(["--kernel", guest("mb_snapseq.mb")], min_lines=20)
        self.assertStatus(full, exit_device_status(0))
        self.assertSameRun(full, a, b)
        self.assertTrue(full.out.endswith("snapseq done\n"))

    def test_elf64_cpl3_guest_continues(self):
        # without --stop the guest goes on undisturbed, and the restored run
        # goes on from the snapshot's line
        full, a, b = self.snapshot_run(["--kernel", guest("snapseq.elf"), "--cpu-mode", "user"],
                                       stop=False)
        self.assertSameRun(full, a, b, stopped=False)

    def test_elf64_cpl3_and_its_restored_run_again(self):
        # then the restored run is snapshotted to the same file: that
        # snapshot reads the pages of the file the run was restored from
        # (mapped, untouched) and those the guest wrote since, and replaces
        # that very file under the run that maps it
        args = ["--kernel", guest("snapseq.elf"), "--cpu-mode", "user"]
        full, a, b = self.snapshot_run(args)
        self.assertStatus(full, exit_device_status(0))
        self.assertSameRun(full, a, b)
        snap = self.path("snap")
        sock = self.path("api2.sock")
        bg = self.start("run", "--restore", snap, "--api-sock", sock)
        wait_for_socket(sock, bg)
        wait_until("30 more lines", lambda: bg.out().count("\n") >= 30 or not bg.running(),
                   timeout=60)
        self.assertStatus(run_ctl(sock, "snapshot", snap, "--stop"), 0)
        b2 = bg.finish(timeout=120)
        self.assertStatus(b2, 0)
        c = self.vmmux("run", "--restore", snap, timeout=120)
        self.assertStatus(c, full.status)
        self.assertGreater(len(c.out), 0)
        self.assertEqual(a.out + b2.out + c.out, full.out)

    def test_smp_with_the_in_kernel_irqchip(self):
        full, a, b = self.snapshot_run(["--kernel", guest("snapseq.elf"), "--cpu-mode", "user",
                                        "--cpus", "2", "--irqchip"], min_lines=20)
        self.assertStatus(full, exit_device_status(0))
        # vCPU 1's checksum on every line
        self.assertRegex(full.out.splitlines()[5], r"^snap 00005 [0-9a-f]{8} [0-9a-f]{8}$")
        self.assertSameRun(full, a, b)

    def test_uart_state_and_mixed_placements(self):
        # swapseq programs the UART's registers first and reads them back
        # last: the restored UART has them (its role's state); the UART as a
        # parallel VMM, the exit device in-process
        args = ["--kernel", guest("swapseq.elf"), "--cpu-mode", "user",
                "--vmm", "uart=uart16550,placement=parallel,output=stdout",
                "--vmm", "exit=debug-exit,placement=main"]
        full, a, b = self.snapshot_run(args, min_lines=40)
        self.assertIn("regs dll=0c dlm=00 lcr=03 ier=00 scr=5a", full.out)
        self.assertSameRun(full, a, b)

    def test_routes_and_generation_survive(self):
        sock = self.path("api.sock")
        snap = self.path("snap")
        bg = self.start("run", "--kernel", guest("snapseq.elf"), "--cpu-mode", "user",
                        "--api-sock", sock, "--vmm", "mon=monitor,output=" + self.path("m"))
        wait_for_socket(sock)
        self.assertStatus(run_ctl(sock, "routes", "add", "io:0x80=mon"), 0)
        self.assertStatus(run_ctl(sock, "routes", "add", "io:0x81=mon"), 0)
        self.assertStatus(run_ctl(sock, "snapshot", snap, "--stop"), 0)
        bg.finish(timeout=120)
        r = self.vmmux("run", "--restore", snap, "--log-level", "info", timeout=120)
        self.assertStatus(r, exit_device_status(0))
        self.assertIn("restore: the routing table of generation 3 (", r.err)
        sock2 = self.path("api2.sock")
        # the same table in a restored run that keeps running: the routes
        # listed there are the snapshot's
        bg = self.start("run", "--restore", snap, "--api-sock", sock2)
        wait_for_socket(sock2)
        lst = run_ctl(sock2, "--json", "routes")
        bg.finish(timeout=120)
        if lst.status == 0:  # the guest may have ended first
            self.assertIn("io:0x80=mon", lst.out)
            self.assertIn("io:0x81=mon", lst.out)
            self.assertIn('"generation": 3', lst.out)


FIXTURES = os.path.join(harness.SRC, "tests", "fixtures")


class OlderVmmux(VmmuxTest):
    """Snapshots that an older vmmux wrote (tests/fixtures/, docs/snapshot.md
    "Versions"): each committed snapshot-vN.snap.gz restores and its guest
    prints exactly what the uninterrupted run printed after the snapshot,
    with the same status. The stored command line names the writer's guest
    and control socket; the restored run is given this tree's (later
    options win)."""

    def test_every_committed_snapshot_restores(self):
        import glob
        import gzip
        names = sorted(glob.glob(os.path.join(FIXTURES, "snapshot-v*.snap.gz")))
        self.assertGreater(len(names), 0, FIXTURES)
        for gz in names:
            with self.subTest(fixture=os.path.basename(gz)):
                snap = self.path(os.path.basename(gz)[:-3])
                with gzip.open(gz, "rb") as f, open(snap, "wb") as g:
                    shutil.copyfileobj(f, g)
                with open(gz[:-len(".snap.gz")] + ".json") as f:
                    want = json.load(f)
                r = self.vmmux("run", "--restore", snap, "--kernel", guest("snapseq.elf"),
                               "--api-sock", self.path("api.sock"), timeout=120)
                self.assertEqual(r.status, want["status"], r.err)
                self.assertEqual(r.out, want["after"], r.err)
                self.assertTrue(want["after"].endswith("snapseq done\n"))
                self.assertNotIn("went back", r.out)


class CompiledRoutes(VmmuxTest):
    """The routes compiled into KVM (the coalesced ring, doorbell counts)
    across a snapshot: when `snapshot` answers, every value the guest wrote
    before the snapshot has reached the monitor (the pause drained the
    ring), and the restored run goes on from there: every value reaches the
    monitor exactly once, and the restored run's doorbell rings are its
    rounds'."""

    def test_coalesced_ring_and_doorbells_drained(self):
        sock = self.path("api.sock")
        log = self.path("mon.jsonl")
        args = ["run", "--kernel", guest("compiled_loop.elf"), "--cpu-mode", "user",
                "--vmm", "mon=monitor,output=" + log,
                "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
                "--route", "io:0x520-0x527=mon;coalesced", "--route", "io:0x510=mon;doorbell",
                "--route", "io:0x92=stop0"]
        bg = self.start(*args, "--api-sock", sock)
        wait_for_socket(sock, bg)
        wait_until("events at mon", lambda: os.path.exists(log) and os.path.getsize(log) > 8192,
                   timeout=30)
        # the guest goes on; the log as it is when the snapshot is answered
        self.assertStatus(run_ctl(sock, "snapshot", self.path("snap")), 0)
        before = self.read_log(log)
        bg.kill()
        # the restored run: the loop ends once io:0x92 reads 1
        sock2 = self.path("api2.sock")
        bg = self.start("run", "--restore", self.path("snap"), "--api-sock", sock2)
        wait_for_socket(sock2, bg)
        # the restored run has written (its output starts empty) before its
        # loop is told to end
        wait_until("events at mon after the restore",
                   lambda: os.path.exists(log) and os.path.getsize(log) > 1024, timeout=30)
        self.assertStatus(run_ctl(sock2, "routes", "replace", "io:0x92=stop1"), 0)
        b = bg.finish(timeout=120)
        self.assertStatus(b, exit_device_status(0))
        self.assertTrue(b.out.startswith("compiled loop "), b.out)
        rounds = int(b.out.split()[2])
        after = self.read_log(log)
        self.assertGreater(len(after), 0)
        first = min(int(e["value"], 16) for e in after if e["key"] == "0x520")
        self.assertGreater(first, 0)
        # before the snapshot: every value below the restored run's first
        # (an in-process monitor logs in its callback: exactly those; a
        # parallel one may log the last of them a little later)
        early = [int(e["value"], 16) for e in before if e["key"] == "0x520"]
        early = [v for v in early if v < first]
        if not PARALLEL:
            self.assertEqual(early, list(range(first)))
            # the restored run rings for its rounds (and for the round
            # whose value was written just before the snapshot, if its
            # ring came after it)
            rings = sum(1 for e in after if e["key"] == "0x510")
            self.assertIn(rings, (rounds - first, rounds - first + 1))
        # after it: the rest, each once, in order
        late = [int(e["value"], 16) for e in after if e["key"] == "0x520"]
        self.assertEqual(late, list(range(first, rounds)))

    def test_coalesced_writes_in_the_state_of_a_parallel_vmm(self):
        # vmm_worker counts the events it handled in its state: the state the
        # snapshot took counts every write the guest made before it (none
        # still in KVM's ring or in the VMM's posted ring)
        sock = self.path("api.sock")
        out = self.path("w.out")
        args = ["run", "--kernel", guest("compiled_loop.elf"), "--cpu-mode", "user",
                "--vmm", "w=external,program=%s,output=%s" % (vmm_program("vmm_worker"), out),
                "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
                "--route", "io:0x520-0x527=w;coalesced", "--route", "io:0x510=stop0",
                "--route", "io:0x92=stop0"]
        bg = self.start(*args, "--api-sock", sock)
        wait_for_socket(sock, bg)
        wait_until("events at w", lambda: os.path.exists(out) and os.path.getsize(out) > 4096,
                   timeout=30)
        self.assertStatus(run_ctl(sock, "snapshot", self.path("snap"), "--stop"), 0)
        bg.finish(timeout=120)
        sock2 = self.path("api2.sock")
        bg = self.start("run", "--restore", self.path("snap"), "--api-sock", sock2)
        wait_for_socket(sock2, bg)
        self.assertStatus(run_ctl(sock2, "routes", "replace", "io:0x92=stop1"), 0)
        b = bg.finish(timeout=120)
        self.assertStatus(b, exit_device_status(0))
        rounds = int(b.out.split()[2])
        with open(out) as f:
            lines = f.read().splitlines()
        restored = [int(x.split()[1]) for x in lines if x.startswith("restored ")]
        values = [int(x.split()[3], 16) for x in lines if x.startswith("w ")]
        self.assertEqual(len(restored), 1, lines[:5])
        self.assertGreater(len(values), 0)
        # the restored run's first write is the one after the last counted
        self.assertEqual(values[0], restored[0])
        self.assertEqual(values, list(range(restored[0], rounds)))


def _root_with_netns():
    return os.geteuid() == 0 and shutil.which("ip") is not None


class HvtWithBlockAndNet(SnapshotTest):
    """A Solo5 hvt unikernel with a block device and a tap in a private
    network namespace."""

    @classmethod
    def setUpClass(cls):
        if not _root_with_netns():
            raise AssertionError("the hvt snapshot test needs root and iproute2 (ip)")
        if not os.path.exists("/dev/net/tun"):
            os.makedirs("/dev/net", exist_ok=True)
            subprocess.run(["mknod", "/dev/net/tun", "c", "10", "200"], check=True)
        cls.ns = "vmmux-snap-%d" % os.getpid()
        subprocess.run(["ip", "netns", "add", cls.ns], check=True)
        cls.addClassCleanup(subprocess.run, ["ip", "netns", "del", cls.ns])
        cls.prefix = ["nsenter", "--net=/run/netns/" + cls.ns]
        for cmd in (["ip", "tuntap", "add", "tap0", "mode", "tap"],
                    ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6"],
                    ["ip", "link", "set", "tap0", "up"]):
            subprocess.run(cls.prefix + cmd, check=True)

    def setUp(self):
        super().setUp()
        # every vmmux of the test inside the namespace
        wrapper = self.path("vmmux-ns")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (" ".join(self.prefix),
                                                       os.path.abspath(harness.VMMUX)))
        os.chmod(wrapper, 0o755)
        self.saved_vmmux = harness.VMMUX
        harness.VMMUX = wrapper

    def tearDown(self):
        harness.VMMUX = self.saved_vmmux
        super().tearDown()

    def test_block_and_net(self):
        doc = {"machine": {"mem": "16M"},
               "guest": {"kernel": guest(os.path.join("hvt", "hvt_snapio.hvt")),
                         "format": "hvt", "args": ["300"]},
               "hvt": {"block": {"storage": {"path": "disk.img"}},
                       "net": {"service0": {"tap": "tap0"}}}}
        cfg = self.path("vm.json")
        with open(cfg, "w") as f:
            json.dump(doc, f)
        # each run on a zeroed disk; the restored run on the disk as the
        # snapshotted run left it (a snapshot does not copy disk images)
        disk = self.path("disk.img")

        def zero():
            with open(disk, "wb") as f:
                f.truncate(1 << 20)
        zero()
        full = self.vmmux("run", "--config", cfg, timeout=120)
        zero()
        sock = self.path("api.sock")
        bg = self.start("run", "--config", cfg, "--api-sock", sock)
        wait_for_socket(sock, bg)
        wait_until("30 lines printed", lambda: bg.out().count("\n") >= 30 or not bg.running(),
                   timeout=60)
        self.assertStatus(run_ctl(sock, "snapshot", self.path("snap"), "--stop"), 0)
        a = bg.finish(timeout=120)
        b = self.vmmux("run", "--restore", self.path("snap"), timeout=120)
        self.assertStatus(full, 0)
        self.assertTrue(full.out.endswith("snapio done\n"), full.out[-200:])
        self.assertSameRun(full, a, b)


class Refusals(VmmuxTest):
    """Every refusal names the section and the reason, and nothing runs."""

    @classmethod
    def setUpClass(cls):
        cls._dir = tempfile.TemporaryDirectory(prefix="vmmux-snap-")
        d = cls._dir.name
        cls.prog = os.path.join(d, "uart_ext")
        shutil.copy(vmm_program("uart_ext"), cls.prog)
        sock = os.path.join(d, "api.sock")
        cls.snap = os.path.join(d, "snap")
        b = start_vmmux(d, "run", "--kernel", guest("snapseq.elf"), "--cpu-mode", "user",
                        "--api-sock", sock, "--vmm",
                        "uart=external,program=%s,output=stdout" % cls.prog)
        try:
            wait_for_socket(sock, b)
            wait_until("a line", lambda: "snap 00001" in b.out() or not b.running())
            r = run_ctl(sock, "snapshot", cls.snap, "--stop")
            if r.status != 0:
                raise AssertionError("snapshot failed: %s %s" % (r.out, r.err))
            b.finish()
        except BaseException:
            b.kill()
            cls._dir.cleanup()  # tearDownClass does not run
            raise
        b.kill()
        with open(cls.snap, "rb") as f:
            cls.data = f.read()

    @classmethod
    def tearDownClass(cls):
        cls._dir.cleanup()

    def restore(self, data, *more):
        p = self.path("bad")
        with open(p, "wb") as f:
            f.write(data)
        return self.vmmux("run", "--restore", p, *more)

    def refused(self, r, status, *what):
        self.assertStatus(r, status)
        self.assertEqual(r.out, "")  # nothing ran
        for w in what:
            self.assertIn(w, r.err)

    def test_the_snapshot_itself_restores(self):
        r = self.restore(self.data)
        self.assertStatus(r, exit_device_status(0))
        self.assertTrue(r.out.endswith("snapseq done\n"))

    def test_another_format_version(self):
        d = bytearray(self.data)
        struct.pack_into("<I", d, 8, 2)
        reseal(d)
        self.refused(self.restore(bytes(d)), 4,
                     "restore refused:", "header: snapshot format version 2; this vmmux reads "
                     "version 1 only")

    def test_not_a_snapshot(self):
        self.refused(self.restore(b"\x7fELF" + bytes(100)), 4, "header: not a vmmux snapshot")

    def test_truncated(self):
        for n in (0, 10, 100, len(self.data) // 2, len(self.data) - 1):
            self.refused(self.restore(self.data[:n]), 4, "header:", "truncated")

    def test_corrupted_section(self):
        secs = sections(self.data)
        at, typ, index, length = [s for s in secs if s[1] == 2][0]  # VCPU 0
        d = bytearray(self.data)
        d[at + SECHDR + length // 2] ^= 0x10
        self.refused(self.restore(bytes(d)), 4,
                     "section %d (VCPU 0): CRC mismatch (the file is corrupted)" %
                     secs.index((at, typ, index, length)))

    def test_more_memory_than_allowed(self):
        d = bytearray(self.data)
        big = 8 << 30
        secs = sections(d)
        machine = secs[0][0] + SECHDR
        struct.pack_into("<Q", d, machine, big)
        mem = [s for s in secs if s[1] == 9][0][0] + SECHDR
        struct.pack_into("<Q", d, mem, big)
        data_offset = struct.unpack_from("<Q", d, mem + 8)[0]
        struct.pack_into("<Q", d, 16, data_offset + big)
        reseal(d)
        p = self.path("big")
        with open(p, "wb") as f:
            f.write(d[:data_offset])
            f.truncate(data_offset + big)  # sparse
        r = self.vmmux("run", "--restore", p)
        self.refused(r, 4, "section MACHINE: 8589934592 bytes of guest memory, outside what "
                     "vmmux allows")

    def test_vmm_program_gone(self):
        gone = self.prog + ".gone"
        os.rename(self.prog, gone)
        try:
            r = self.restore(self.data)
        finally:
            os.rename(gone, self.prog)
        self.refused(r, 4, "section VMM 1 ('uart'): its program %s is missing" % self.prog)

    def test_command_line_contradicting_the_snapshot(self):
        self.refused(self.restore(self.data, "--mem", "32M"), 2,
                     "section MACHINE: the snapshot has 67108864 bytes of guest memory, the "
                     "configuration 33554432")
        self.refused(self.restore(self.data, "--cpus", "2"), 2,
                     "section MACHINE: the snapshot has 1 vCPUs, the configuration 2")

    def test_snapshot_errors(self):
        sock = self.path("api.sock")
        b = self.start("run", "--kernel", guest("snapseq.elf"), "--cpu-mode", "user",
                       "--api-sock", sock)
        wait_for_socket(sock)
        r = run_ctl(sock, "snapshot", "/nonexistent-dir/snap")
        self.assertStatus(r, 1)
        self.assertIn("/nonexistent-dir/snap: cannot create a file beside it", r.err)
        r = run_ctl(sock, "snapshot", self.path("s"), "--halt")
        self.assertStatus(r, 2)
        r = run_ctl(sock, "call", "snapshot", '{"path": "x", "stop": 1}')
        self.assertStatus(r, 1)
        self.assertIn("args.stop: expected true or false", r.err)
        # refused snapshots leave the run alone: it ends as it would
        r = b.finish(timeout=120)
        self.assertStatus(r, exit_device_status(0))
        self.assertTrue(r.out.endswith("snapseq done\n"))
        self.assertFalse(os.path.exists(self.path("s")))
        self.assertEqual([f for f in os.listdir(self.tmp) if ".tmp." in f], [])


if __name__ == "__main__":
    unittest.main()

