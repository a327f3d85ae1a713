"""Live update (docs/snapshot.md "Live update"): `vmmux ctl update
[--program PATH]` replaces the running vmmux program under the running
guest.

A guest printing a numbered sequence of running checksums over its memory
(snapseq_mid.elf, 2000 lines, at CPL3; and snapseq.elf, 600 lines, with 2
vCPUs and the in-kernel irqchip) is updated while it runs: it prints
exactly what an uninterrupted run prints (no line lost, repeated or
changed: its memory and vCPU state went across), with the same exit
status; the process id never changes; the control socket answers after
each update (the same listening socket, handed over). Then every refusal:
a program that is missing, one that is not vmmux, a vmmux that refuses the
state (another state version, a VMM added at run time that its command
line lacks, a program that says no), a parallel VMM that is not up: each
named in the reply, and the guest runs on undisturbed in the old program,
its parallel VMMs with the same pids.

With every VMM in its own process (--parallel), each update hands the
processes over running: the same pids and restart counts after each, the
output the uninterrupted run's, and a VMM killed after the updates is
restarted by the new program.

The placement of the VMMs is given by the tests, so the module is not run
again under --parallel.
"""
import fcntl
import gzip
import json
import os
import pty
import random
import signal
import socket
import subprocess
import stat
import termios
import threading
import time
import struct
import unittest
import zlib

import harness
from harness import ApiClient, VmmuxTest, guest, run_ctl, wait_for_socket, wait_until

HDR = 64
SECHDR = 24
SEC_HANDOVER = 11
ARGS = ["--cpu-mode", "user"]


def vmmux_path():
    return os.path.abspath(harness.VMMUX) if os.sep in harness.VMMUX else harness.VMMUX


# A program that gives vmmux's check a state of another HANDOVER version: it
# reads the state on descriptor 3, sets that section's version to 99 (the
# CRCs made right again, as another vmmux would write them), and runs the
# real vmmux on it.
BAD_VERSION = r'''#!/usr/bin/env python3
import os, struct, sys, zlib
data = bytearray(os.pread(3, os.fstat(3).st_size, 0))
nsec = struct.unpack_from("<I", data, 32)[0]
at = 64
for _ in range(nsec):
    typ, _crc, length, index = struct.unpack_from("<IIQI", data, at)
    if typ == %d:
        struct.pack_into("<I", data, at + 24, 99)
        struct.pack_into("<I", data, at + 4, zlib.crc32(bytes(data[at + 24:at + 24 + length])))
        struct.pack_into("<I", data, at + 20, zlib.crc32(bytes(data[at:at + 20])))
    at += 24 + ((length + 7) & ~7)
fd = os.memfd_create("state", 0)
os.write(fd, bytes(data))
os.dup2(fd, 3)
os.execv(%r, [%r] + sys.argv[1:])
'''


FIXTURES = os.path.join(harness.SRC, "tests", "fixtures")
# The guest image the fixtures' command lines name (tests/fixtures/generate.py).
FIXTURE_GUEST = "/tmp/vmmux-fixtures/snapseq.elf"


def handover(state):
    """The HANDOVER section of a state's bytes: (version, pieces as [(gpa,
    size, fd)], api_fd, client_fd)."""
    nsec = struct.unpack_from("<I", state, 32)[0]
    at = HDR
    for _ in range(nsec):
        typ, _crc, length, _index = struct.unpack_from("<IIQI", state, at)
        if typ == SEC_HANDOVER:
            p = at + SECHDR
            version = struct.unpack_from("<I", state, p)[0]
            if version != 1:
                raise AssertionError("HANDOVER version %d: teach handover() its layout "
                                     "(docs/snapshot.md)" % version)
            _v, npieces, _pause, api_fd, client_fd = struct.unpack_from("<IIQii", state, p)
            p += 24
            p += 4 + struct.unpack_from("<I", state, p)[0]
            pieces = [struct.unpack_from("<QQi", state, p + 24 * k) for k in range(npieces)]
            return version, pieces, api_fd, client_fd
        at += SECHDR + ((length + 7) & ~7)
    raise AssertionError("no HANDOVER section")


class OlderVmmux(VmmuxTest):
    """Live-update states that an older vmmux wrote (tests/fixtures/,
    docs/snapshot.md "Versions"), each update-vF-hH.state.gz with the guest
    RAM its memfds held: the check `run --update-check-fd 3` says ok (the
    descriptors the state names are not the check's to see: it is not given
    them), given the guest image at the path the state's command line names
    (in a mount namespace of its own), and refuses naming it without; `run --resume-from-fd N` given the descriptors at the numbers the
    state names (memfds holding that RAM, a listening control socket, the
    asking client's connection) answers the client and its guest prints
    exactly what the uninterrupted run printed after the update; without
    them it is refused naming the section and the descriptor, and nothing
    runs."""

    def fixtures(self):
        import glob
        names = sorted(glob.glob(os.path.join(FIXTURES, "update-v*-h*.state.gz")))
        self.assertGreater(len(names), 0, FIXTURES)
        for gz in names:
            base = gz[:-len(".state.gz")]
            state = self.path(os.path.basename(base) + ".state")
            with gzip.open(gz, "rb") as f:
                data = f.read()
            with open(state, "wb") as f:
                f.write(data)
            with gzip.open(base + ".ram.gz", "rb") as f:
                ram = f.read()
            with open(base + ".json") as f:
                want = json.load(f)
            yield os.path.basename(base), state, data, ram, want

    def resume(self, state, fds, *extra):
        """`vmmux run --resume-from-fd N` with STATE on N and FDS ({number in
        the new program: descriptor here}) at their numbers, nothing else
        open; (Popen, stdout path, stderr path)."""
        n = max([3] + list(fds)) + 1
        return self.spawn(["--resume-from-fd", str(n), *extra], fds, state, n)

    def spawn(self, args, fds, state, n, program=None):
        """`vmmux run ARGS` (or PROGRAM ARGS) with STATE on N and FDS at
        their numbers."""
        fds = dict(fds)
        fds[n] = os.open(state, os.O_RDONLY)
        high = {}
        for t, src in fds.items():
            high[t] = fcntl.fcntl(src, fcntl.F_DUPFD, 300)

        def place():
            for t, h in high.items():
                os.dup2(h, t)
            keep = sorted(high)
            os.closerange(3, keep[0])
            for a, b in zip(keep, keep[1:] + [65536]):
                os.closerange(a + 1, b)

        out, err = self.path("resumed.out"), self.path("resumed.err")
        with open(out, "w") as o, open(err, "w") as e:
            p = subprocess.Popen((program or [os.path.abspath(harness.VMMUX), "run"]) + args,
                                 stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                 close_fds=False, preexec_fn=place, cwd=self.tmp)
        for h in high.values():
            os.close(h)
        os.close(fds[n])
        return p, out, err

    def check(self, state, guest_there):
        """`vmmux run --update-check-fd 3` on STATE in a mount namespace of
        its own with a private directory for the fixture's guest image
        (FIXTURE_GUEST, generate.py), which is put there when GUEST_THERE;
        (status, stdout, stderr). Only that directory is private: the tree
        (the build's vmmux and guests) may live under /tmp itself."""
        where = os.path.dirname(FIXTURE_GUEST)
        put = ("cp %s %s && " % (guest("snapseq.elf"), FIXTURE_GUEST) if guest_there else "")
        script = ("mkdir -p %s && mount -t tmpfs tmpfs %s && %sexec %s run "
                  "--update-check-fd 3" % (where, where, put, os.path.abspath(harness.VMMUX)))
        userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        p, out, err = self.spawn(["sh", "-c", script], {}, state, 3,
                                 program=["unshare", *userns, "--mount",
                                          "--propagation", "private"])
        status = p.wait(timeout=60)
        with open(out) as f, open(err) as g:
            return status, f.read(), g.read()

    def test_check_says_ok(self):
        for name, state, _data, _ram, _want in self.fixtures():
            with self.subTest(fixture=name):
                status, printed, errs = self.check(state, True)
                self.assertEqual(printed, "vmmux update-check: ok\n", errs)
                self.assertEqual(status, 0, errs)
                # and the guest image gone: refused, naming it
                status, printed, errs = self.check(state, False)
                self.assertEqual(printed, "vmmux update-check: refused: the guest image "
                                 "%s: No such file or directory (the new program reads "
                                 "it as it starts)\n" % FIXTURE_GUEST, errs)
                self.assertNotEqual(status, 0)

    def test_resumed_with_its_descriptors(self):
        for name, state, data, ram, want in self.fixtures():
            with self.subTest(fixture=name):
                _v, pieces, api_fd, client_fd = handover(data)
                fds, keep, off = {}, [], 0
                for _gpa, size, fd in pieces:
                    m = os.memfd_create("guest-ram", 0)
                    os.pwrite(m, ram[off:off + size], 0)
                    os.ftruncate(m, size)
                    off += size
                    fds[fd] = m
                    keep.append(m)
                self.assertEqual(off, len(ram))
                sock = self.path("api.sock")
                if api_fd >= 0:
                    lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    lsn.bind(sock)
                    lsn.listen(8)
                    fds[api_fd] = lsn.fileno()
                    keep.append(lsn)
                mine = None
                if client_fd >= 0:
                    mine, theirs = socket.socketpair()
                    fds[client_fd] = theirs.fileno()
                    keep.append(theirs)
                p, out, err = self.resume(state, fds, "--kernel", guest("snapseq.elf"),
                                          "--api-sock", sock)
                for k in keep:
                    k.close() if hasattr(k, "close") else os.close(k)
                status = p.wait(timeout=120)
                with open(out) as f:
                    printed = f.read()
                with open(err) as f:
                    errs = f.read()
                self.assertEqual(status, want["status"], errs)
                self.assertEqual(printed, want["after"], errs)
                if mine is not None:
                    mine.settimeout(10)
                    reply = json.loads(mine.makefile().readline())
                    mine.close()
                    self.assertTrue(reply["ok"], reply)
                    self.assertEqual(reply["result"]["pid"], p.pid)
                if os.path.exists(sock):
                    os.unlink(sock)

    def test_resume_without_its_descriptors_refused(self):
        for name, state, data, _ram, _want in self.fixtures():
            with self.subTest(fixture=name):
                _v, pieces, _api, _client = handover(data)
                p, out, err = self.resume(state, {}, "--kernel", guest("snapseq.elf"),
                                          "--api-sock", self.path("api.sock"))
                self.assertEqual(p.wait(timeout=60), harness.EXIT_IMAGE)
                with open(err) as f:
                    errs = f.read()
                # refused before the new program opens anything of its own:
                # a number left free is never taken for one of its own
                self.assertEqual("vmmux: live update refused: section HANDOVER: piece 0: "
                                 "descriptor %d: Bad file descriptor\n" % pieces[0][2], errs)
                with open(out) as f:
                    self.assertEqual(f.read(), "")


class UpdateTest(VmmuxTest):
    _reference = {}

    def reference(self, args=(), kernel="snapseq_mid.elf"):
        """The uninterrupted run of KERNEL with ARGS (once for the module)."""
        key = (kernel,) + tuple(args)
        if key not in UpdateTest._reference:
            r = self.vmmux("run", "--kernel", guest(kernel), *ARGS, *args, timeout=240)
            self.assertTrue(r.out.endswith("snapseq done\n"), r.err)
            UpdateTest._reference[key] = r
        return UpdateTest._reference[key]

    def start_guest(self, *extra, kernel="snapseq_mid.elf"):
        sock = self.path("api.sock")
        bg = self.start("run", "--kernel", guest(kernel), *ARGS, "--api-sock", sock,
                        "--log-level", "info", *extra)
        wait_for_socket(sock, bg)
        return bg, sock

    def wait_lines(self, bg, n):
        wait_until("%d lines printed" % n,
                   lambda: bg.out().count("\n") >= n or not bg.running(), timeout=120)
        self.assertTrue(bg.running(), "the guest ended before line %d:\n%s" % (n, bg.err()))

    def assertSameAsReference(self, bg, args=(), kernel="snapseq_mid.elf", n=2000):
        ref = self.reference(args, kernel)
        r = bg.finish(timeout=240)
        self.assertEqual(r.status, ref.status, r.err)
        lines = r.out.splitlines()
        nums = [int(l.split()[1]) for l in lines if l.startswith("snap ")]
        self.assertEqual(nums, list(range(n)), "lines lost or repeated")
        self.assertEqual(r.out, ref.out)
        self.assertNotIn("went back", r.out)
        return r

    def assertRunsOn(self, bg, sock):
        """The old program still runs and answers, with the same pid."""
        self.assertTrue(bg.running(), bg.err())
        p = run_ctl(sock, "ping")
        self.assertStatus(p, 0)
        self.assertEqual(harness.proc_cmdline(bg.pid)[1:3], ["run", "--kernel"])

    def test_three_updates(self):
        bg, sock = self.start_guest()
        for k, (at, prog) in enumerate([(100, None), (500, vmmux_path()), (1000, None)]):
            self.wait_lines(bg, at)
            c = run_ctl(sock, "update", *(["--program", prog] if prog else []))
            self.assertStatus(c, 0)
            self.assertIn("pid: %d" % bg.pid, c.out)
            self.assertIn("pause_ns:", c.out)
            self.assertTrue(bg.running())
            # the same listening socket, served by the new program
            p = run_ctl(sock, "ping")
            self.assertStatus(p, 0)
            self.assertIn("--resume-from-fd", " ".join(harness.proc_cmdline(bg.pid)))
            self.assertEqual(bg.err().count("live update: the vCPUs resume"), k + 1)
            # nothing is left behind by an update: the state the program was
            # given is its only one (none leaks into the next program), and
            # guest RAM is the same memfds
            links = []
            for fd in os.listdir("/proc/%d/fd" % bg.pid):
                try:
                    links.append(os.readlink("/proc/%d/fd/%s" % (bg.pid, fd)))
                except OSError:
                    pass
            self.assertEqual(links.count("/memfd:vmmux-update-state (deleted)") +
                             links.count("/memfd:vmmux-update-state"), 1, links)
            ram = sorted(l for l in links if l.startswith("/memfd:") and "update" not in l)
            if k == 0:
                first = ram
            self.assertEqual(ram, first)
        r = self.assertSameAsReference(bg)
        self.assertEqual(r.err.count("control socket %s taken over" % sock), 3)
        # the socket's path is removed at the end, as by any run
        self.assertFalse(os.path.exists(sock))

    def test_two_vcpus_with_the_in_kernel_irqchip(self):
        # vCPU 1 runs ahead of vCPU 0, whose lines carry vCPU 1's checksums:
        # both vCPUs, the irqchip and the PIT go across
        # (snapseq.elf, 600 lines: two vCPUs take twice as long a line)
        smp = ("--cpus", "2", "--irqchip")
        bg, sock = self.start_guest(*smp, kernel="snapseq.elf")
        for at in (100, 300):
            self.wait_lines(bg, at)
            self.assertStatus(run_ctl(sock, "update"), 0)
        self.assertSameAsReference(bg, smp, kernel="snapseq.elf", n=600)

    def test_edges_of_a_parallel_vmm_during_updates(self):
        # irqecho.elf (CPL0) echoes the parallel UART's input from its
        # receive interrupt: IRQ 4, edge-triggered, which the UART pulses
        # through its irqfd when its receive buffer stops being empty, and
        # only then, so one edge lost stops the echo for good. Bytes come at
        # random moments (the UART pulses whenever one arrives, the guest
        # paused or not, the old VM's state taken or not) while vmmux is
        # updated 8 times: every byte echoed, in order.
        sock = self.path("api.sock")
        bg = self.start("run", "--kernel", guest("irqecho.elf"), "--irqchip", "--api-sock", sock,
                        "--log-level", "info", "--vmm",
                        "uart=uart16550,placement=parallel,input=stdin,output=stdout,"
                        "raise=irq:4:edge", stdin=subprocess.PIPE)
        wait_for_socket(sock, bg)
        wait_until("ready", lambda: "ready\n" in bg.out() or not bg.running())
        sent = []
        stop = threading.Event()
        seed = random.randrange(1 << 32)
        rng = random.Random(seed)

        def feed():
            while not stop.is_set():
                c = "abcdefghijklmnoprstuvwxyz"[len(sent) % 25]  # no q
                bg.proc.stdin.write(c.encode())
                bg.proc.stdin.flush()
                sent.append(c)
                time.sleep(rng.uniform(0, 0.008))
        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            for _ in range(8):
                c = run_ctl(sock, "update")
                self.assertEqual(c.status, 0, "%r\n%s" % (c, bg.err()))
        finally:
            stop.set()
            feeder.join()
        want = "ready\n" + "".join(sent)
        wait_until("every byte echoed (seed %d)" % seed,
                   lambda: bg.out().startswith(want) or not bg.running(), timeout=20)
        bg.proc.stdin.write(b"q")
        r = bg.finish(timeout=30)
        self.assertEqual(r.out, want + "\nirqecho: %d bytes\n" % len(sent), "seed %d" % seed)
        self.assertStatus(r, 1)
        self.assertEqual(r.err.count("live update: the vCPUs resume"), 8, r.err)

    def test_host_event_queued_during_the_pause(self):
        # The watchdog's expiry routed to a parallel monitor goes through
        # the dispatcher, which holds while the machine is paused: one that
        # comes during the update's last pause waits in its queue, is
        # handed over (HANDOVER version 3) and delivered by the new
        # program. The timing is made so: the new program's check sleeps 1 s
        # (a wrapper); the monitor, which takes the guest's port writes, is
        # stopped (SIGSTOP) meanwhile, so that the vCPU's write to it holds
        # the last pause until the monitor is continued, after the expiry.
        log = self.path("mon.jsonl")
        prog = self.path("slow-check")
        with open(prog, "w") as f:
            f.write('#!/bin/sh\n[ "$2" = --update-check-fd ] && sleep 1\nexec %s "$@"\n'
                    % vmmux_path())
        os.chmod(prog, stat.S_IRWXU)
        sock = self.path("api.sock")
        t0 = time.monotonic()
        bg = self.start("run", "--kernel", guest("portseq.elf"), "--api-sock", sock,
                        "--log-level", "info", "--watchdog", "3s",
                        "--vmm", "mon=monitor,placement=parallel,timeout=30s,output=%s" % log,
                        "--vmm", "gate=sink,placement=main",
                        "--route", "io:0x80-0x87=mon", "--route", "io:0x88=gate",
                        "--route", "platform:watchdog=mon")
        wait_for_socket(sock, bg)
        mon = self.parallel_vmms(sock)["mon"][0]

        def at(t):
            time.sleep(max(0.0, t0 + t - time.monotonic()))
        done = {}
        at(0.8)
        update = threading.Thread(
            target=lambda: done.setdefault("c", run_ctl(sock, "update", "--program", prog)))
        update.start()
        try:
            at(1.3)  # the check sleeps (until about 1.85 s)
            os.kill(mon, signal.SIGSTOP)
            at(4.0)  # the last pause waits for the monitor; the expiry came at about 3 s
        finally:
            os.kill(mon, signal.SIGCONT)
            update.join(60)
        self.assertStatus(done["c"], 0)
        wait_until("the watchdog's event at the monitor",
                   lambda: any(e["type"] == "platform" for e in self.read_log(log)), timeout=10)
        api = ApiClient(sock)
        api.call("routes.replace", {"spec": "io:0x88=main"})
        api.close()
        r = bg.finish(timeout=30)
        self.assertStatus(r, harness.exit_device_status(0))
        self.assertIn("live update: 1 event(s) the old program's dispatcher had queued, queued "
                      "again", r.err)
        self.assertEqual(r.err.count("live update: the vCPUs resume"), 1, r.err)
        log = self.read_log(log)
        plat = [e for e in log if e["type"] == "platform"]
        self.assertEqual([(e["key"], e["src"]) for e in plat], [(4, "host")], plat)
        # and the guest's writes reached the monitor once each, in order
        values = [int(e["value"], 16) for e in log if e["type"] == "io"]
        self.assertEqual(values, list(range(len(values))))
        self.assertEqual(r.out, "portseq %d\n" % len(values))

    def test_watchdog_keeps_its_expiry(self):
        # --watchdog 2s, its expiry routed to the main VMM (the run ends as
        # a guest crash): updated every 0.4 s, the run still ends at its
        # expiry (a new program that started the watchdog again would
        # never let it expire while the updates go on)
        bg, sock = self.start_guest("--watchdog", "2s")
        updates = 0
        end = time.monotonic() + 15
        while time.monotonic() < end:
            c = run_ctl(sock, "update")
            if c.status != 0:  # the run is ending, or ended (its socket gone)
                self.assertRegex(c.err, "update refused: the run is ending|cannot connect|"
                                 "closed", c.err)
                break
            updates += 1
            time.sleep(0.4)
        r = bg.finish(timeout=10)
        self.assertStatus(r, 8)
        self.assertIn("watchdog", r.err)
        self.assertGreaterEqual(updates, 2, r.err)

    def test_expired_watchdog_stays_expired(self):
        # --watchdog 1s routed to a monitor (the run goes on): once it has
        # expired, updates do not arm it again (it would expire again 1 s
        # after each)
        log = self.path("mon.jsonl")
        sock = self.path("api.sock")
        bg = self.start("run", "--kernel", guest("portseq.elf"), "--api-sock", sock,
                        "--log-level", "info", "--watchdog", "1s",
                        "--vmm", "mon=monitor,output=%s" % log, "--vmm", "s=sink",
                        "--vmm", "gate=sink,placement=main", "--route", "io:0x80-0x87=s",
                        "--route", "io:0x88=gate", "--route", "platform:watchdog=mon")
        wait_for_socket(sock, bg)

        def expiries():
            return [e for e in self.read_log(log) if e["type"] == "platform"]
        wait_until("the watchdog's expiry at the monitor", expiries, timeout=10)
        for _ in range(2):
            self.assertStatus(run_ctl(sock, "update"), 0)
        time.sleep(1.5)
        api = ApiClient(sock)
        api.call("routes.replace", {"spec": "io:0x88=main"})
        api.close()
        r = bg.finish(timeout=30)
        self.assertStatus(r, harness.exit_device_status(0))
        self.assertEqual(len(expiries()), 1, r.err)

    def test_gdb_stub_listens_again(self):
        # --gdb tcp::PORT: the new program binds the same port again, so
        # the old program's listening socket must be closed by the
        # execve (the address-space holder that outlives it keeps none of
        # its descriptors but the VM's); three updates in a row, then a
        # connection reaches the new program's stub
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        bg, sock = self.start_guest("--gdb", "tcp::%d" % port)
        for _ in range(3):
            c = run_ctl(sock, "update")
            self.assertEqual(c.status, 0, "%r\n%s" % (c, bg.err()))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"$?#3f")  # the stop reason: the stub answers (an ack, a packet)
            self.assertTrue(conn.recv(64))
        self.assertTrue(bg.running(), bg.err())
        bg.kill()

    def test_terminal_left_as_it_was(self):
        # the console's input is a terminal, which vmmux makes raw: across
        # an update, the new program must not take the raw mode for the
        # user's own, and the end of the run gives the user's settings back
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        before = termios.tcgetattr(slave)
        self.assertTrue(before[3] & termios.ECHO)
        sock = self.path("api.sock")
        bg = self.start("run", "--kernel", guest("snapseq_mid.elf"), *ARGS, "--api-sock", sock,
                        stdin=slave)
        wait_for_socket(sock, bg)
        self.wait_lines(bg, 100)
        self.assertFalse(termios.tcgetattr(slave)[3] & termios.ECHO)  # raw while it runs
        # two updates: raw again in each new program (it saves the user's
        # settings, given back before the execve), and the terminal, its
        # standard input, still there for the second
        for at in (100, 300):
            self.wait_lines(bg, at)
            self.assertStatus(run_ctl(sock, "update"), 0)
            self.assertTrue(bg.running(), bg.err())
            self.assertFalse(termios.tcgetattr(slave)[3] & termios.ECHO, "cooked after an update")
        self.assertSameAsReference(bg)
        self.assertEqual(termios.tcgetattr(slave), before)

    def test_client_hangs_up_during_the_update(self):
        # the client that asked goes away at once: the update goes on (its
        # reply has nobody to read it) and the guest with it, in the new
        # program; a descriptor number of the old program's would be closed
        # and refused, or reused for another connection
        bg, sock = self.start_guest()
        for k, at in enumerate((100, 400)):
            self.wait_lines(bg, at)
            c = ApiClient(sock)
            c.send(json.dumps({"id": 1, "cmd": "update"}) + "\n")
            c.sock.close()
            wait_until("update %d done" % (k + 1), lambda: bg.err().count(
                "live update: the vCPUs resume") > k or not bg.running(), timeout=30)
            self.assertTrue(bg.running(), bg.err())
            p = run_ctl(sock, "ping")
            self.assertStatus(p, 0)
        self.assertSameAsReference(bg)

    def test_a_restored_run(self):
        # a run restored from a snapshot maps guest RAM from the file
        # copy-on-write: the first update makes it memfds (the pages the
        # guest touched and those the file holds copied in), then hands
        # them over
        bg, sock = self.start_guest()
        self.wait_lines(bg, 170)
        snap = self.path("snap")
        self.assertStatus(run_ctl(sock, "snapshot", snap, "--stop"), 0)
        a = bg.finish(timeout=120)
        sock2 = self.path("api2.sock")
        b = self.start("run", "--restore", snap, "--api-sock", sock2)
        wait_for_socket(sock2, b)
        for at in (100, 500):
            self.wait_lines(b, at)
            c = run_ctl(sock2, "update")
            self.assertStatus(c, 0)
            self.assertIn("pid: %d" % b.pid, c.out)
        r = b.finish(timeout=240)
        ref = self.reference()
        self.assertEqual(r.status, ref.status, r.err)
        self.assertEqual(a.out + r.out, ref.out)

    def refused(self, bg, sock, args, why):
        c = run_ctl(sock, "update", *args)
        self.assertNotEqual(c.status, 0, c.out)
        self.assertIn("update refused: ", c.err)
        self.assertIn(why, c.err)
        self.assertRunsOn(bg, sock)
        return c

    def test_sigterm_during_the_check_ends_the_run(self):
        # a SIGTERM while the new program checks the state: the update is
        # given up at once (the check's wait ends with the run), not after
        # the check, and the run ends by the signal
        prog = self.path("slow-check")
        with open(prog, "w") as f:
            f.write('#!/bin/sh\n[ "$2" = --update-check-fd ] && sleep 3\nexec %s "$@"\n'
                    % vmmux_path())
        os.chmod(prog, stat.S_IRWXU)
        bg, sock = self.start_guest()
        self.wait_lines(bg, 100)
        c = ApiClient(sock)
        c.send(json.dumps({"id": 1, "cmd": "update", "args": {"program": prog}}) + "\n")
        wait_until("the check started", lambda: any(
            "slow-check" in " ".join(harness.proc_cmdline(int(p)))
            for p in os.listdir("/proc") if p.isdigit() and self._is_child(int(p), bg.pid)))
        bg.proc.send_signal(signal.SIGTERM)
        r = bg.finish(timeout=60)
        self.assertEqual(r.status, -signal.SIGTERM, r)
        self.assertIn("live update refused: the run is ending", r.err)

    @staticmethod
    def _is_child(pid, parent):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return int(f.read().rsplit(")", 1)[1].split()[1]) == parent
        except (OSError, ValueError, IndexError):
            return False

    def test_refusals_leave_the_old_program_running(self):
        bg, sock = self.start_guest()
        self.wait_lines(bg, 70)
        self.refused(bg, sock, ["--program", self.path("missing")],
                     "program %s: No such file or directory" % self.path("missing"))
        self.refused(bg, sock, ["--program", "/bin/true"],
                     "/bin/true is not a vmmux that takes a live update: "
                     "`/bin/true run --update-check-fd 3` printed '' and exited with status 0")
        self.refused(bg, sock, ["--program", "/bin/echo"],
                     "/bin/echo is not a vmmux that takes a live update: `/bin/echo run "
                     "--update-check-fd 3` printed 'run --update-check-fd 3'")
        wrapper = self.path("vmmux-v2")
        with open(wrapper, "w") as f:
            f.write(BAD_VERSION % (SEC_HANDOVER, vmmux_path(), vmmux_path()))
        os.chmod(wrapper, stat.S_IRWXU)
        self.refused(bg, sock, ["--program", wrapper],
                     "(HANDOVER): live-update state version 99; this vmmux reads versions 1 to 3")
        # a program that passes the check and is gone by the execve: the
        # execve fails after the last pause, the old program carries on,
        # and its address-space holder (update.c) is ended and reaped
        gone = self.path("vmmux-gone")
        with open(gone, "w") as f:
            f.write('#!/bin/sh\n%s "$@"; s=$?; rm -f "$0"; exit $s\n' % vmmux_path())
        os.chmod(gone, stat.S_IRWXU)
        self.refused(bg, sock, ["--program", gone], "update refused: execve %s: " % gone)
        self.assertEqual(harness.child_pids(bg.pid, zombies=True), [])
        self.assertNotIn("live update: the vCPUs resume", bg.err())
        # and after the refusals, an update that is taken
        c = run_ctl(sock, "update")
        self.assertStatus(c, 0)
        self.assertIn("pid: %d" % bg.pid, c.out)
        self.assertSameAsReference(bg)

    def test_guest_image_gone_refused(self):
        # the new program reads the guest image again as it starts: one
        # removed since the run started is refused by the check, before the
        # exec, and the guest runs on
        kernel = self.path("guest.elf")
        with open(guest("snapseq_mid.elf"), "rb") as f, open(kernel, "wb") as g:
            g.write(f.read())
        sock = self.path("api.sock")
        bg = self.start("run", "--kernel", kernel, *ARGS, "--api-sock", sock)
        wait_for_socket(sock, bg)
        self.wait_lines(bg, 70)
        os.unlink(kernel)
        self.refused(bg, sock, [], "refused the state: the guest image %s: No such file or "
                     "directory (the new program reads it as it starts)" % kernel)
        self.assertSameAsReference(bg)

    def test_vmm_added_at_run_time_refused(self):
        # the new program runs the command line, which does not have it: its
        # check says so before the exec
        bg, sock = self.start_guest()
        self.wait_lines(bg, 70)
        self.assertStatus(run_ctl(sock, "vmm", "add", "mon=monitor,output=%s" %
                                  self.path("mon.jsonl")), 0)
        self.refused(bg, sock, [], "('mon'): no VMM of that name in the run's "
                     "configuration")
        self.assertSameAsReference(bg)

    def parallel_vmms(self, sock):
        """{name: (pid, restarts, state)} of the parallel VMMs, from vmms.list."""
        c = run_ctl(sock, "--json", "vmms")
        self.assertStatus(c, 0)
        return {v["name"]: (v["pid"], v["restarts"], v["state"])
                for v in json.loads(c.out)["vmms"] if v["placement"] == "parallel"}

    def test_parallel_vmms_taken_over_running(self):
        # every VMM in its own process (5 of them: the uart the guest writes
        # its numbered lines to, the exit device, chipset, smm, fault
        # report): each update hands them over running, with the same pid,
        # restart count and transport region; the output is the
        # uninterrupted run's; a VMM killed after the updates is restarted
        # by the new program, and loses nothing either
        bg, sock = self.start_guest("--parallel")
        self.wait_lines(bg, 20)
        before = self.parallel_vmms(sock)
        self.assertGreaterEqual(len(before), 3, before)
        self.assertTrue(all(st == "up" and pid > 0 for pid, _, st in before.values()), before)
        self.assertEqual(sorted(p for p, _, _ in before.values()), harness.child_pids(bg.pid))
        for k, at in enumerate((100, 500, 900)):
            self.wait_lines(bg, at)
            c = run_ctl(sock, "update")
            self.assertStatus(c, 0)
            self.assertIn("pid: %d" % bg.pid, c.out)
            self.assertEqual(self.parallel_vmms(sock), before)
            # the VMMs, and nothing else once the old program's
            # address-space holder (update.c) has exited and been reaped
            vmm_pids = sorted(p for p, _, _ in before.values())
            wait_until("the old address space's holder reaped",
                       lambda: harness.child_pids(bg.pid, zombies=True) == vmm_pids, timeout=10)
            self.assertEqual(bg.err().count("taken over (0 restarts so far)"),
                             len(before) * (k + 1))
        self.assertNotIn("parallel VMM started", bg.err().split("live update")[1])
        # a VMM killed under the new program: its supervisor restarts it
        uart_pid = before["uart"][0]
        os.kill(uart_pid, signal.SIGKILL)
        wait_until("the uart restarted",
                   lambda: not bg.running() or self.parallel_vmms(sock)["uart"][1:] == (1, "up"))
        after = self.parallel_vmms(sock)
        self.assertEqual(after["uart"][2], "up")
        self.assertNotEqual(after["uart"][0], uart_pid)
        self.assertEqual({n: v for n, v in after.items() if n != "uart"},
                         {n: v for n, v in before.items() if n != "uart"})
        # and an update after the restart hands the successor over
        self.assertStatus(run_ctl(sock, "update"), 0)
        self.assertEqual(self.parallel_vmms(sock), after)
        self.assertSameAsReference(bg, ("--parallel",))

    def test_refused_update_leaves_parallel_vmms_running(self):
        # a new program that refuses the state: the old program carries on
        # with the same VMM processes, says why, and a later update is taken
        bg, sock = self.start_guest("--parallel")
        self.wait_lines(bg, 70)
        before = self.parallel_vmms(sock)
        kids = harness.child_pids(bg.pid)
        refuser = self.path("vmmux-refuses")
        with open(refuser, "w") as f:
            f.write("#!/bin/sh\necho 'vmmux update-check: refused: not today'\nexit 1\n")
        os.chmod(refuser, stat.S_IRWXU)
        self.refused(bg, sock, ["--program", refuser], "%s refused the state: not today" % refuser)
        self.assertEqual(self.parallel_vmms(sock), before)
        self.assertEqual(harness.child_pids(bg.pid), kids)
        # a parallel VMM that is not up is not handed over: refused, named
        self.assertStatus(run_ctl(sock, "vmm", "stop", "smm"), 0)
        self.refused(bg, sock, [], "parallel VMM 'smm' is stopped: a live update hands over "
                     "parallel VMMs whose process is up")
        self.assertStatus(run_ctl(sock, "vmm", "start", "smm"), 0)
        self.assertNotIn("live update: the vCPUs resume", bg.err())
        now = self.parallel_vmms(sock)
        c = run_ctl(sock, "update")
        self.assertStatus(c, 0)
        self.assertEqual(self.parallel_vmms(sock), now)
        self.assertSameAsReference(bg, ("--parallel",))

if __name__ == "__main__":
    unittest.main()
