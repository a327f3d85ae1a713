"""The GDB stub (vmmux run --gdb, role gdbstub; docs/debugging.md): Debian's
gdb in batch mode against the project's guest gdbt in each CPU mode the host
can debug (gdbt.elf: long mode at CPL0; mb_gdbt.mb: 32-bit protected mode,
multiboot), and a raw remote-protocol client for what batch gdb cannot do
(the interrupt, Ctrl-C).

gdbt adds 1..5 to its global counter in tick(i), spins in spin_wait() while
its global spin is set, and exits with counter + poke: status 31 untouched.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time

from harness import VmmuxTest, guest, symbol

GDB = shutil.which("gdb")
UNTOUCHED = 31  # ((15 << 1) | 1)
KILLED = 137  # the run's status after gdb's kill


FILES = {"gdbt": "gdbt.elf", "mb_gdbt": "mb_gdbt.mb", "gdbt_spin": "gdbt_spin.elf"}
HVT_HELLO = "hvt/hvt_hello.hvt"


def status_of(v):
    return ((v << 1) | 1) & 0xFF


class Rsp:
    """A minimal GDB remote-protocol client (acknowledged mode)."""

    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def close(self):
        self.s.close()

    def _byte(self):
        while not self.buf:
            d = self.s.recv(4096)
            if not d:
                raise AssertionError("the stub closed the connection")
            self.buf += d
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def send(self, payload):
        data = payload.encode() if isinstance(payload, str) else payload
        cs = sum(data) & 0xFF
        self.s.sendall(b"$" + data + b"#%02x" % cs)
        ack = self._byte()
        if ack != b"+":
            raise AssertionError("no ack for %r: %r" % (payload, ack))

    def recv(self):
        while self._byte() != b"$":
            pass
        raw = b""
        while True:
            c = self._byte()
            if c == b"#":
                break
            raw += c
        cs = int(self._byte() + self._byte(), 16)
        if cs != sum(raw) & 0xFF:
            raise AssertionError("bad checksum on %r" % raw)
        self.s.sendall(b"+")
        out, i = b"", 0
        while i < len(raw):  # escapes and run-length encoding
            c = raw[i:i + 1]
            if c == b"}":
                out += bytes([raw[i + 1] ^ 0x20])
                i += 2
            elif c == b"*":
                out += out[-1:] * (raw[i + 1] - 29)
                i += 2
            else:
                out += c
                i += 1
        return out.decode(errors="replace")

    def cmd(self, payload):
        self.send(payload)
        return self.recv()


class GdbTest(VmmuxTest):

    def setUp(self):
        super().setUp()
        if GDB is None:
            raise AssertionError("gdb is not installed (Makefile DEB_ packages)")

    def start_stub(self, name, *extra, wait=True):
        """vmmux running guest NAME with the stub on a Unix socket; returns
        (Background, socket path) once the socket is there."""
        sock = self.path("gdb.sock")
        args = ["run", "--kernel", guest(FILES[name]), "--gdb", "unix:" + sock]
        if wait:
            args.append("--gdb-wait")
        b = self.start(*(args + list(extra)))
        for _ in range(600):
            if os.path.exists(sock) or not b.running():
                break
            time.sleep(0.05)
        self.assertTrue(os.path.exists(sock), "no socket\n%s" % b.err())
        return b, sock

    def gdb(self, elf, target, *cmds, timeout=120):
        """gdb -batch with the guest's ELF for symbols; returns its output."""
        args = [GDB, "-batch", "-nx", "-ex", "set confirm off", "-ex", "set pagination off",
                "-ex", "target remote " + target]
        for c in cmds:
            args += ["-ex", c]
        args.append(guest(FILES[elf]))
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        return p.stdout + p.stderr

    def session(self, name, *cmds, extra=()):
        b, sock = self.start_stub(name, *extra)
        out = self.gdb(name, sock, *cmds)
        r = b.finish(timeout=60)
        self.assertNoCrash(r)
        return out, r

    # ---- long mode, CPL0 ----------------------------------------------------

    def test_long_mode_session(self):
        """hbreak on a symbol, continue, registers and a variable, stepi and
        next, a hardware watchpoint, detach: the guest ends as it would."""
        out, r = self.session(
            "gdbt",
            "hbreak tick", "continue",
            "info registers rip rdi cs cr0 efer",
            "print counter",
            "print/x $eflags",
            "stepi", "print $pc == tick",
            "watch counter", "continue",
            "print counter",
            "delete",
            "hbreak tick", "continue",
            "print i", "bt",
            "detach")
        self.assertStatus(r, UNTOUCHED)
        self.assertIn("Hardware assisted breakpoint 1 at", out)
        self.assertRegex(out, r"Breakpoint 1, tick \(i=i@entry=1\) at .*gdbt\.c")
        self.assertRegex(out, r"rip\s+0x%x\s" % symbol("gdbt.elf", "tick"))
        self.assertRegex(out, r"rdi\s+0x1\s")
        self.assertRegex(out, r"cs\s+0x8\s")
        # CR0.PG and PE set, EFER.LMA set: long mode
        m = re.search(r"cr0\s+(0x[0-9a-f]+)", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1), 16) & 0x80000001, 0x80000001, out)
        m = re.search(r"efer\s+(0x[0-9a-f]+)", out)
        self.assertIsNotNone(m, out)
        self.assertTrue(int(m.group(1), 16) & 0x400, out)
        self.assertIn("$1 = 0", out)  # counter before the first tick
        self.assertIn("$3 = 0", out)  # stepi moved on from tick's first instruction
        self.assertRegex(out, r"Hardware watchpoint 2: counter\s+Old value = 0\s+New value = 1")
        self.assertIn("$4 = 1", out)
        self.assertRegex(out, r"Breakpoint 3, tick \(i=i@entry=2\)")
        self.assertIn("$5 = 2", out)
        self.assertRegex(out, r"#1 .* in main ")
        self.assertIn("Inferior 1 (Remote target) detached", out)
        self.assertNotIn("Remote communication error", out)

    def test_continue_to_the_end(self):
        """Continuing without breakpoints: gdb sees the run's end as the
        process's exit, with vmmux's status."""
        out, r = self.session("gdbt", "continue")
        self.assertStatus(r, UNTOUCHED)
        self.assertIn("exited with code 0%o" % UNTOUCHED, out)

    def test_register_and_memory_write(self):
        """set var writes guest memory through the page tables, a register
        write changes tick's argument: the exit status shows both."""
        out, r = self.session(
            "gdbt",
            "hbreak tick", "continue",
            "set var poke = 16", "set var $rdi = 7",
            "print poke", "print $rdi",
            "x/2xw &counter",
            "detach")
        # counter = 7 + 2 + 3 + 4 + 5 = 21, + poke 16
        self.assertStatus(r, status_of(21 + 16))
        self.assertIn("$1 = 16", out)
        self.assertIn("$2 = 7", out)

    def test_kill(self):
        out, r = self.session("gdbt", "hbreak tick", "continue", "kill",
                              extra=("--log-level", "info"))
        self.assertStatus(r, KILLED)
        self.assertIn("killed by the debugger", r.err)
        self.assertIn("[Inferior 1 (Remote target) killed]", out)

    def test_software_breakpoint_refused(self):
        """break (Z0) needs int3 reported by KVM, which this host cannot:
        refused with a message naming hbreak; the guest is unharmed."""
        out, r = self.session("gdbt", "break spin_wait", "continue", "detach")
        self.assertStatus(r, UNTOUCHED)
        self.assertIn("Cannot insert breakpoint 1", out)
        self.assertIn("software breakpoints (gdb's break) are off", r.err)
        self.assertIn("use hbreak", r.err)

    def test_vcpus_as_threads(self):
        """Two vCPUs are two threads; the second, halted for good in the
        machine, is held like the first and its registers read."""
        out, r = self.session(
            "gdbt",
            "info threads",
            "hbreak tick", "continue",
            "thread 2", "info registers rip",
            "thread 1", "info registers rip",
            "detach",
            extra=("--cpus", "2"))
        self.assertStatus(r, UNTOUCHED)
        self.assertRegex(out, r"1\s+Thread 1 \(vCPU 0\)")
        self.assertRegex(out, r"2\s+Thread 2 \(vCPU 1\)")
        self.assertIn("Switching to thread 2", out)
        self.assertRegex(out, r"rip\s+0x%x\s" % symbol("gdbt.elf", "tick"))

    def test_stop_on_second_vcpu(self):
        """A breakpoint hit by vCPU 1 stops the guest on thread 2, while
        vCPU 0 runs its own code; both run on to the usual end."""
        out, r = self.session(
            "gdbt",
            "hbreak other", "continue",
            "info threads",
            "print cpu", "print others",
            "delete", "continue",
            extra=("--cpus", "2"))
        self.assertStatus(r, UNTOUCHED)
        self.assertIn("[Switching to Thread 2]", out)
        self.assertIn("Thread 2 hit Breakpoint 1, other (cpu=1)", out)
        self.assertRegex(out, r"\* 2\s+Thread 2 \(vCPU 1\)")
        self.assertIn("$1 = 1", out)
        self.assertIn("$2 = 0", out)
        self.assertIn("exited with code 0%o" % UNTOUCHED, out)

    def test_simultaneous_stops(self):
        """Three vCPUs hit breakpoints at about the same time: every hit is
        reported once, each on its own thread, a vCPU's stop only when gdb
        resumes that vCPU (gdb steps one thread over its breakpoint while
        the others stay stopped)."""
        out, r = self.session(
            "gdbt",
            "hbreak tick", "hbreak other",
            *(["continue"] * 8),
            extra=("--cpus", "3"))
        self.assertStatus(r, UNTOUCHED)
        self.assertNotIn("internal-error", out)
        self.assertEqual(out.count("hit Breakpoint"), 7, out)  # tick 1..5, other 1, 2
        for i in range(1, 6):
            self.assertIn("Thread 1 hit Breakpoint 1, tick (i=i@entry=%d)" % i, out)
        self.assertIn("Thread 2 hit Breakpoint 2, other (cpu=1)", out)
        self.assertIn("Thread 3 hit Breakpoint 2, other (cpu=2)", out)
        self.assertIn("exited with code 0%o" % UNTOUCHED, out)

    def test_tcp(self):
        """--gdb tcp::PORT listens on 127.0.0.1."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        b = self.start("run", "--kernel", guest("gdbt.elf"), "--gdb", "tcp::%d" % port,
                       "--gdb-wait")
        out = None
        for _ in range(100):
            out = self.gdb("gdbt", "127.0.0.1:%d" % port, "hbreak tick", "continue",
                           "print i", "detach")
            if "Connection refused" not in out:
                break
            time.sleep(0.1)  # not listening yet
        r = b.finish(timeout=60)
        self.assertStatus(r, UNTOUCHED)
        self.assertIn("$1 = 1", out)

    # ---- 32-bit protected mode, CPL0 (multiboot) ------------------------------

    def test_protected_mode_session(self):
        out, r = self.session(
            "mb_gdbt",
            "show architecture",
            "hbreak tick", "continue",
            "info registers eip cs cr0",
            "print counter", "print i",
            "watch counter", "continue",
            "delete", "stepi", "next",
            "print $st0", "print $xmm0.uint128",
            "detach")
        self.assertStatus(r, UNTOUCHED)
        self.assertIn("i386", out)
        self.assertNotIn("x86-64", out)
        self.assertRegex(out, r"Breakpoint 1, tick \(i=i@entry=1\) at .*gdbt\.c")
        self.assertRegex(out, r"eip\s+0x%x\s" % symbol("mb_gdbt.mb", "tick"))
        m = re.search(r"cr0\s+(0x[0-9a-f]+)", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1), 16) & 0x80000001, 1, out)  # PE, no paging
        self.assertIn("$1 = 0", out)
        self.assertIn("$2 = 1", out)
        self.assertRegex(out, r"Hardware watchpoint 2: counter\s+Old value = 0\s+New value = 1")
        self.assertIn("Inferior 1 (Remote target) detached", out)

    def test_protected_mode_memory_write(self):
        out, r = self.session("mb_gdbt", "hbreak tick", "continue", "set var poke = 3",
                              "print poke", "detach")
        self.assertStatus(r, status_of(15 + 3))
        self.assertIn("$1 = 3", out)

    # ---- a Solo5 hvt unikernel, from a config file ------------------------------

    def test_hvt_config(self):
        """debug.gdb and debug.gdb_wait in a config file, with an hvt guest
        (vmmux run --config): stopped before its first instruction, a
        breakpoint on its halt, detach, its normal end."""
        sock = self.path("h.sock")
        cfg = self.path("vm.json")
        with open(cfg, "w") as f:
            json.dump({"guest": {"kernel": guest(HVT_HELLO), "format": "hvt", "args": []},
                       "debug": {"gdb": "unix:" + sock, "gdb_wait": True}}, f)
        b = self.start("run", "--config", cfg)
        for _ in range(600):
            if os.path.exists(sock) or not b.running():
                break
            time.sleep(0.05)
        args = [GDB, "-batch", "-nx", "-ex", "target remote " + sock, "-ex", "hbreak hvt_halt",
                "-ex", "continue", "-ex", "bt", "-ex", "detach", guest(HVT_HELLO)]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
        r = b.finish(timeout=60)
        self.assertNoCrash(r)
        self.assertStatus(r, 0)
        self.assertIn("Hello, world", r.out)
        self.assertIn("in _start ()", out)
        self.assertIn("Breakpoint 1, 0x%016x in hvt_halt ()" % symbol(HVT_HELLO, "hvt_halt"), out)
        self.assertIn("in hvt_rt_start ()", out)

    def test_hvt_gdb_port(self):
        """vmmux hvt --gdb=PORT, as solo5-hvt-debug: the unikernel waits for
        the debugger on TCP PORT before its first instruction; a breakpoint
        on its halt, detach, its normal end."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        b = self.start("hvt", "--gdb=%d" % port, guest(HVT_HELLO))
        out = ""
        for _ in range(100):
            args = [GDB, "-batch", "-nx", "-ex", "target remote 127.0.0.1:%d" % port,
                    "-ex", "hbreak hvt_halt", "-ex", "continue", "-ex", "bt", "-ex", "detach",
                    guest(HVT_HELLO)]
            out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
            if "in _start ()" in out or not b.running():
                break
            time.sleep(0.1)  # not listening yet
        r = b.finish(timeout=60)
        self.assertNoCrash(r)
        self.assertStatus(r, 0)
        self.assertIn("Hello, world", r.out)
        self.assertIn("in _start ()", out)
        self.assertIn("Breakpoint 1, 0x%016x in hvt_halt ()" % symbol(HVT_HELLO, "hvt_halt"), out)

    def test_hvt_gdb_bad_port(self):
        r = self.vmmux("hvt", "--gdb=70000", guest(HVT_HELLO))
        self.assertStatus(r, 1)
        self.assertIn("'--gdb=70000': not a TCP port", r.err)

    # ---- the interrupt (Ctrl-C), through the raw protocol ---------------------

    def test_interrupt(self):
        """0x03 while the guest spins stops it (SIGINT, thread 1); it stays
        stopped; memory written then lets it finish after detach."""
        b, sock = self.start_stub("gdbt")
        c = Rsp(sock)
        self.addCleanup(c.close)
        self.assertEqual(c.cmd("?"), "T05thread:1;")
        self.assertIn("PacketSize=", c.cmd("qSupported:swbreak+;hwbreak+"))
        spin = symbol("gdbt.elf", "spin")
        tick = symbol("gdbt.elf", "tick")
        # at tick, after the runtime cleared .bss: spin = 1
        self.assertEqual(c.cmd("Z1,%x,1" % tick), "OK")
        self.assertEqual(c.cmd("vCont?"), "vCont;c;C;s;S")
        self.assertEqual(c.cmd("vCont;c"), "T05thread:1;hwbreak:;")
        self.assertEqual(c.cmd("z1,%x,1" % tick), "OK")
        self.assertEqual(c.cmd("M%x,4:01000000" % spin), "OK")
        self.assertEqual(c.cmd("m%x,4" % spin), "01000000")
        c.send("vCont;c")
        time.sleep(0.3)  # let it run (any point of its run will do)
        c.s.sendall(b"\x03")
        self.assertEqual(c.recv(), "T02thread:1;")
        self.assertEqual(c.cmd("qC"), "QC1")
        self.assertEqual(c.cmd("qfThreadInfo"), "m1")
        self.assertEqual(c.cmd("qsThreadInfo"), "l")
        # held: the instruction pointer (register 16) does not move
        rip1 = c.cmd("p10")
        time.sleep(0.2)
        self.assertEqual(c.cmd("p10"), rip1)
        self.assertEqual(len(rip1), 16)
        self.assertEqual(c.cmd("M%x,4:00000000" % spin), "OK")
        self.assertEqual(c.cmd("D"), "OK")
        r = b.finish(timeout=60)
        self.assertNoCrash(r)
        self.assertStatus(r, UNTOUCHED)

    def test_attach_to_running_guest(self):
        """Without --gdb-wait the guest runs at once; a debugger that
        connects later stops it, and lets it finish after a memory write."""
        b, sock = self.start_stub("gdbt_spin", wait=False)
        c = Rsp(sock)
        self.addCleanup(c.close)
        self.assertEqual(c.cmd("?"), "T05thread:1;")
        spin = symbol("gdbt_spin.elf", "spin")
        self.assertEqual(c.cmd("m%x,4" % spin), "01000000")
        self.assertTrue(b.running())
        self.assertEqual(c.cmd("M%x,4:00000000" % spin), "OK")
        self.assertEqual(c.cmd("D"), "OK")
        r = b.finish(timeout=60)
        self.assertNoCrash(r)
        self.assertStatus(r, UNTOUCHED)

    def test_protocol_errors(self):
        """Bad requests get errors, unknown ones the empty reply, a bad
        checksum a '-'; the stub stays usable."""
        b, sock = self.start_stub("gdbt")
        c = Rsp(sock)
        self.addCleanup(c.close)
        c.s.sendall(b"$g#00")
        self.assertEqual(c._byte(), b"-")
        self.assertEqual(c.cmd("vFoo"), "")
        self.assertEqual(c.cmd("m0"), "E16")
        self.assertEqual(c.cmd("Hg99"), "E16")  # no vCPU 0x98
        self.assertEqual(c.cmd("m0000800000000000,4"), "E0e")  # not canonical
        self.assertEqual(c.cmd("Z2,1001,4"), "E16")  # unaligned watchpoint
        for i in range(4):
            self.assertEqual(c.cmd("Z1,%x,1" % (0x100000 + i)), "OK")
        self.assertEqual(c.cmd("Z1,100010,1"), "E1c")  # DR0-DR3 are taken
        for i in range(4):
            self.assertEqual(c.cmd("z1,%x,1" % (0x100000 + i)), "OK")
        regs = c.cmd("g")
        self.assertTrue(re.fullmatch(r"[0-9a-fx]+", regs), regs)
        self.assertEqual(c.cmd("G" + regs), "OK")  # written back unchanged
        self.assertEqual(c.cmd("D"), "OK")
        r = b.finish(timeout=60)
        self.assertNoCrash(r)
        self.assertStatus(r, UNTOUCHED)

    # ---- refusals ---------------------------------------------------------------

    def test_refused_options(self):
        sock = self.path("x.sock")
        for args, msg in [
                (["--gdb-wait"], "--gdb-wait needs --gdb"),
                (["--gdb", "unix:" + sock, "--break", "0x100000"], "--gdb cannot be given with --break"),
                (["--gdb", "unix:" + sock, "--single-step"], "with --single-step"),
                (["--vmm", "g=gdbstub,listen=unix:%s,placement=parallel" % sock],
                 "role gdbstub runs in the main VMM's process only"),
                (["--gdb", "udp::1234"], "not tcp::PORT, tcp:HOST:PORT or unix:PATH"),
                (["--gdb", "tcp::99999"], "not tcp::PORT"),
                (["--gdb", "unix:" + sock, "--route", "exception:1=main"],
                 "--gdb needs the route exception:1=gdb")]:
            r = self.run_guest("gdbt.elf", *args)
            self.assertStatus(r, 2)
            self.assertIn(msg, r.err)

    def test_without_debugger(self):
        """--gdb without --gdb-wait: nobody attaches, the guest runs as
        usual."""
        r = self.run_guest("gdbt.elf", "--gdb", "unix:" + self.path("g.sock"))
        self.assertStatus(r, UNTOUCHED)

    # ---- CPL3: a host limit ------------------------------------------------------

    def test_cpl3(self):
        """At CPL3 KVM on this host reports no #DB: a hardware breakpoint on
        user code never stops the guest (docs/host-limits.md, gdb-cpl3)."""
        out, r = self.session("gdbt", "hbreak tick", "continue", "print counter",
                              extra=("--cpu-mode", "user"))
        if "exited with code 0%o" % UNTOUCHED in out:
            self.assertStatus(r, UNTOUCHED)
            self.host_limit("gdb-cpl3", "the hardware breakpoint on CPL3 code never fired")
        self.assertRegex(out, r"Breakpoint 1, tick")
