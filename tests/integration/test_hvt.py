"""vmmux hvt: Solo5 hvt unikernels (the project's hvt guests, guest/hvt/) as
solo5-hvt runs them: command line, console, exit and abort statuses, boot
information, walltime, poll, block devices at and beyond their capacity, a
net echo through a tap in a private network namespace, every guest fault
(bad pointers, writes to code, port accesses that are not hypercalls,
unknown hypercalls) and malformed executables, manifests and options.

The block and net VMMs run in vmmux's process in suite kvm
(--placement=main) and as sandboxed parallel VMMs in suite kvm-parallel
(VMMUX_TEST_PARALLEL=1: --placement=parallel, vmmux hvt's default).
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import unittest

from harness import PARALLEL, VMMUX, Result, VmmuxTest, guest, run_vmmux

HERE = os.path.dirname(os.path.abspath(__file__))
PLACEMENT = "--placement=" + ("parallel" if PARALLEL else "main")
HELLO, BLK, NET = "hvt/hvt_hello.hvt", "hvt/hvt_blk.hvt", "hvt/hvt_net.hvt"
MAXDEV = "hvt/hvt_maxdev.hvt"  # 63 devices: storage0-59 (block), service0-2 (net)


def hvt(*args, **kw):
    return run_vmmux("hvt", PLACEMENT, *args, **kw)


class HvtTest(VmmuxTest):
    def assertHvtFault(self, r, text):
        self.assertStatus(r, 1)
        self.assertNoCrash(r)
        self.assertIn(text, r.err)


class Basics(HvtTest):
    def test_hello_and_command_line(self):
        r = hvt("--mem=32", guest(HELLO), "hello", "a", "b c")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "Hello, world\narg 1: hello\narg 2: a\narg 3: b\narg 4: c\n")
        self.assertEqual(r.err, "")

    def test_puts_of_the_command_line_where_the_host_wrote_it(self):
        # Solo5's test_hello: puts on the boot information's cmdline
        # pointer, which lies in the low memory the host wrote (read-only
        # to the guest and to the console VMM)
        r = hvt("--mem=16", guest(HELLO), "cmdline", "x", "y")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "Hello, World\nCommand line is: 'cmdline x y'\n")
        self.assertEqual(r.err, "")

    def test_double_dash_and_default_memory(self):
        r = hvt("--", guest(HELLO), "bootinfo")
        self.assertStatus(r, 0)
        self.assertIn("mem_size=%d " % (512 << 20), r.out)
        self.assertIn("bootinfo ok", r.out)
        self.assertIn("features=0/0 net_ring=0", r.out)

    def test_memory_rounded_down_to_2mib(self):
        r = hvt("--mem=33", guest(HELLO), "bootinfo")
        self.assertStatus(r, 0)
        self.assertIn("mem_size=%d " % (32 << 20), r.out)

    def test_exit_statuses(self):
        for n in (0, 1, 7, 42, 254, 255):
            with self.subTest(n=n):
                self.assertStatus(hvt("--mem=16", guest(HELLO), "exit", str(n)), n)

    def test_abort_is_255(self):
        r = hvt("--mem=16", guest(HELLO), "abort")
        self.assertStatus(r, 255)
        self.assertEqual(r.out, "aborting\n")

    def test_walltime(self):
        r = hvt("--mem=16", guest(HELLO), "walltime")
        self.assertStatus(r, 0)
        self.assertIn(" ok", r.out)

    def test_poll_timeout_without_devices(self):
        t0 = time.monotonic()
        r = hvt("--mem=16", guest(HELLO), "poll", "300000000")
        self.assertStatus(r, 0)
        self.assertIn("poll ret=0 ready=0", r.out)
        waited = int(r.out.split("waited_ms=")[1])
        self.assertGreaterEqual(waited, 290)
        self.assertLess(waited, 5000)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)

    def test_hlt_ends_the_run(self):
        r = hvt("--mem=16", guest(HELLO), "hlt")
        self.assertStatus(r, 0)
        self.assertNotIn("hlt returned", r.out)

    def test_long_command_line(self):
        ok = hvt("--mem=16", guest(HELLO), "exit", "3", "x" * (8191 - 7))
        self.assertStatus(ok, 3)
        r = hvt("--mem=16", guest(HELLO), "exit", "3", "x" * (8192 - 7))
        self.assertHvtFault(r, "command line is 8192 characters; at most 8191 fit")

    def test_help_and_usage_errors(self):
        r = run_vmmux("hvt", "--help")
        self.assertStatus(r, 0)
        self.assertIn("--block:NAME=PATH", r.out)
        for args, text in ((["--bogus", guest(HELLO)], "Invalid option: '--bogus'"),
                           ([], "missing the unikernel"),
                           (["--mem=abc", guest(HELLO)], "--mem: 'abc' is not a number"),
                           (["--mem=1", guest(HELLO)], "outside 2-4096"),
                           (["--mem=8192", guest(HELLO)], "outside 2-4096"),
                           (["--net-mac:x=zz", guest(HELLO)], "malformed MAC"),
                           (["--block-sector-size:storage=512", guest(HELLO)],
                            "given without --block:NAME"),
                           (["/nonexistent/unikernel"], "/nonexistent/unikernel")):
            with self.subTest(args=args):
                self.assertHvtFault(hvt(*args), text)


class Faults(HvtTest):
    """Every guest fault ends the run with status 1 and a message."""

    def test_bad_pointers(self):
        cases = [(["badputs"], "puts: invalid guest access"),
                 # the string's first 4 KiB are in guest memory: still
                 # nothing of it is written (the whole is checked first)
                 (["badputs", "1"], "puts: invalid guest access"),
                 (["badarg", "1"], "walltime: invalid guest access"),
                 (["badarg", "2"], "puts: invalid guest access"),
                 (["badarg", "3"], "poll: invalid guest access"),
                 (["badarg", "8"], "halt: invalid guest access")]
        for args, text in cases:
            with self.subTest(args=args):
                r = hvt("--mem=16", guest(HELLO), *args)
                self.assertHvtFault(r, text)
                self.assertEqual(r.out, "")

    def test_write_to_code_is_a_translation_fault(self):
        for t in ("writecode", "writerodata"):
            with self.subTest(t=t):
                r = hvt("--mem=16", guest(HELLO), t)
                self.assertHvtFault(r, "host/guest translation fault")
                self.assertNotIn("returned", r.out)

    def test_port_access_that_is_not_a_hypercall(self):
        r = hvt("--mem=16", guest(HELLO), "port")
        self.assertHvtFault(r, "invalid guest port access: port=0x3f8")
        r = hvt("--mem=16", guest(HELLO), "out16")
        self.assertHvtFault(r, "invalid guest port access: port=0x501")

    def test_unknown_hypercalls(self):
        for nr in ("0", "9", "200"):
            with self.subTest(nr=nr):
                r = hvt("--mem=16", guest(HELLO), "badcall", nr)
                self.assertHvtFault(r, "invalid guest hypercall: num=%s" % nr)
        # block and net calls with no such device attached
        for nr in ("4", "5", "6", "7"):
            with self.subTest(nr=nr):
                self.assertHvtFault(hvt("--mem=16", guest(HELLO), "badcall", nr),
                                    "invalid guest hypercall: num=%s" % nr)


class DumpCore(HvtTest):
    """--dumpcore=DIR, as solo5-hvt-debug: an ELF core of the guest on an
    abort, read with Debian's gdb in batch mode."""

    def gdb(self, core, *cmds):
        gdb = shutil.which("gdb")
        self.assertIsNotNone(gdb, "the dumpcore tests need gdb (Debian package gdb)")
        args = [gdb, "-nx", "-batch"]
        for c in cmds:
            args += ["-ex", c]
        p = subprocess.run(args + [guest(HELLO), core], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def dump(self, test):
        d = self.path("cores-" + test)
        os.mkdir(d)
        r = hvt("--mem=16", "--dumpcore=" + d, guest(HELLO), test)
        self.assertStatus(r, 255)
        self.assertEqual(r.out, "aborting\n")
        cores = os.listdir(d)
        self.assertEqual(len(cores), 1, cores)
        self.assertRegex(cores[0], r"^core\.solo5-hvt\.[0-9]+$")
        self.assertIn("dumping guest core to: %s/%s" % (d, cores[0]), r.err)
        core = os.path.join(d, cores[0])
        self.assertEqual(os.stat(core).st_mode & 0o777, 0o600)
        return core

    def test_abort_with_a_trap_frame(self):
        core = self.dump("dumptrap")
        out = self.gdb(core, "info registers rip", "x/gx &dump_marker", "info registers cs")
        self.assertRegex(out, r"rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <trap_site>")
        self.assertIn("<dump_marker>:\t0x5eedc0de12345678", out)
        self.assertRegex(out, r"cs\s+0x8\s")

    def test_abort_without_a_trap_frame(self):
        core = self.dump("dumpabort")
        out = self.gdb(core, "info symbol $rip", "x/gx &dump_marker")
        self.assertIn("hvt_halt_cookie", out)  # the halt hypercall's registers
        self.assertIn("<dump_marker>:\t0x5eedc0de12345678", out)

    def test_no_core_without_an_abort_and_bad_directories(self):
        d = self.path("cores")
        os.mkdir(d)
        self.assertStatus(hvt("--mem=16", "--dumpcore=" + d, guest(HELLO), "exit", "3"), 3)
        self.assertEqual(os.listdir(d), [])
        r = hvt("--mem=16", "--dumpcore=" + self.path("missing"), guest(HELLO))
        self.assertHvtFault(r, "cannot open the directory")
        self.assertHvtFault(hvt("--dumpcore=", guest(HELLO)), "give the directory")


class Block(HvtTest):
    def image(self, size, name="disk.img"):
        p = self.path(name)
        with open(p, "wb") as f:
            f.truncate(size)
        return p

    def test_read_write_at_and_beyond_capacity(self):
        img = self.image(64 * 1024)
        r = hvt("--mem=16", "--block:storage=" + img, guest(BLK), "rw")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "rw ok\n")

    def test_data_reaches_the_image(self):
        img = self.image(16 * 1024)
        r = hvt("--mem=16", "--block:storage=" + img, guest(BLK), "pattern", "0xa5")
        self.assertStatus(r, 0)
        with open(img, "rb") as f:
            self.assertEqual(f.read(), b"\xa5" * 16 * 1024)
        with open(img, "r+b") as f:
            f.write(b"\x3c" * 16 * 1024)
        r = hvt("--mem=16", "--block:storage=" + img, guest(BLK), "check", "0x3c")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "check ok\n")

    def test_sector_size(self):
        img = self.image(64 * 1024)
        r = hvt("--mem=16", "--block:storage=" + img, "--block-sector-size:storage=4096",
                guest(BLK), "info")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "storage: handle 1 capacity 65536 block_size 4096\n")
        r = hvt("--mem=16", "--block:storage=" + img, "--block-sector-size:storage=4096",
                guest(BLK), "rw")
        self.assertEqual(r.out, "rw ok\n")
        for bad in ("1000", "256", "0", "x"):
            with self.subTest(bad=bad):
                r = hvt("--mem=16", "--block:storage=" + img,
                        "--block-sector-size:storage=" + bad, guest(BLK), "info")
                self.assertHvtFault(
                    r, "Block size must be a multiple of 2 greater than or equal 512")

    def test_image_not_block_aligned(self):
        img = self.image(1000)
        r = hvt("--mem=16", "--block:storage=" + img, guest(BLK), "info")
        self.assertHvtFault(r, "Backing storage size must be block aligned")

    def test_bad_buffer(self):
        img = self.image(4096)
        r = hvt("--mem=16", "--block:storage=" + img, guest(BLK), "badbuf")
        self.assertHvtFault(r, "block read: invalid guest access")
        self.assertNotIn("returned", r.out)

    def test_buffer_in_the_memory_the_host_wrote(self):
        # a write from the command line where the host wrote it: allowed
        # (read-only window); a read into the boot information: the guest's
        # fault, nothing written there
        img = self.image(4096)
        r = hvt("--mem=16", "--block:storage=" + img, guest(BLK), "lowbuf", "from-the-host")
        self.assertHvtFault(r, "block read: invalid guest access")
        self.assertIn("lowbuf write ok: lowbuf from-the-host\n", r.out)
        self.assertNotIn("returned", r.out)
        with open(img, "rb") as f:
            self.assertEqual(f.read(20), b"lowbuf from-the-host")

    def test_devices_must_match_the_manifest(self):
        img = self.image(4096)
        r = hvt("--mem=16", guest(BLK), "info")
        self.assertHvtFault(r, "declares block device 'storage', which is not attached")
        r = hvt("--mem=16", "--block:other=" + img, guest(BLK), "info")
        self.assertHvtFault(r, "declares no block device named 'other'")
        r = hvt("--mem=16", "--block:storage=" + img, guest(HELLO))
        self.assertHvtFault(r, "declares no block device named 'storage'")
        r = hvt("--mem=16", "--net:storage=lo", guest(BLK), "info")
        self.assertHvtFault(r, "declares no net device named 'storage'")
        r = hvt("--mem=16", "--block:storage=" + self.path("missing.img"), guest(BLK))
        self.assertHvtFault(r, "missing.img: No such file or directory")
        r = hvt("--mem=16", "--block:storage=" + img, "--block:storage=" + img, guest(BLK))
        self.assertHvtFault(r, "device given twice")


def _elf_phdrs(data):
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phnum, = struct.unpack_from("<H", data, 0x38)
    return [(phoff + i * 56,) + struct.unpack_from("<IIQQQQQQ", data, phoff + i * 56)
            for i in range(phnum)]


def _note_desc(data, ntype):
    """Offset of the descriptor of the Solo5 note of type NTYPE."""
    for ph in _elf_phdrs(data):
        off, p_type, p_offset = ph[0], ph[1], ph[3]
        if p_type == 4 and struct.unpack_from("<I", data, p_offset + 8)[0] == ntype:
            return p_offset + 20, off
    raise AssertionError("note %x not found" % ntype)


ABI, MFT = 0x31494241, 0x3154464D


class Malformed(HvtTest):
    """Executables and manifests patched from a good image: each refused with
    its reason and status 1, never a crash."""

    def patched(self, name, patch, src=HELLO):
        with open(guest(src), "rb") as f:
            data = bytearray(f.read())
        patch(data)
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def check(self, name, patch, text, src=HELLO):
        r = hvt("--mem=16", self.patched(name, patch, src))
        self.assertHvtFault(r, text)
        self.assertEqual(r.out, "")

    def test_elf_header(self):
        self.check("magic", lambda d: d.__setitem__(slice(0, 4), b"\x7fELG"), "bad ELF magic")
        self.check("class", lambda d: d.__setitem__(4, 1), "not a 64-bit little-endian")
        self.check("machine", lambda d: struct.pack_into("<H", d, 0x12, 3), "not EM_X86_64")
        self.check("type", lambda d: struct.pack_into("<H", d, 0x10, 3), "is not ET_EXEC")
        self.check("phoff", lambda d: struct.pack_into("<Q", d, 0x20, 1 << 40),
                   "program header table extends beyond")
        self.check("trunc", lambda d: d.__delitem__(slice(40, None)), "shorter than an ELF")

    def test_segments(self):
        def load_ph(d, flags):
            for ph in _elf_phdrs(d):
                if ph[1] == 1 and ph[2] == flags:
                    return ph[0]
            raise AssertionError("no such segment")

        # text segment made writable and executable
        self.check("wx", lambda d: struct.pack_into("<I", d, load_ph(d, 5) + 4, 7),
                   "writable and executable")
        # text moved below 1 MiB, misaligned, beyond RAM, file data beyond the file
        self.check("low", lambda d: struct.pack_into("<Q", d, load_ph(d, 5) + 16, 0x8000),
                   "not page aligned at or above 0x100000")
        self.check("unaligned",
                   lambda d: struct.pack_into("<Q", d, load_ph(d, 5) + 16, 0x100010),
                   "not page aligned")
        self.check("huge", lambda d: struct.pack_into("<Q", d, load_ph(d, 6) + 40, 1 << 63),
                   "does not fit in guest memory")
        self.check("filesz", lambda d: struct.pack_into("<Q", d, load_ph(d, 5) + 32, 1 << 40),
                   "file data lies outside the file")
        self.check("entry", lambda d: struct.pack_into("<Q", d, 0x18, 0x103000),
                   "entry point 0x103000 is not inside an executable segment")

    def test_abi_note(self):
        def abi(field, value):
            def p(d):
                desc, _ = _note_desc(d, ABI)
                struct.pack_into("<I", d, desc + 4 * field, value)
            return p

        self.check("target", abi(0, 2), "not hvt")
        self.check("version", abi(1, 1), "hvt ABI version 1; this host runs version 2")
        self.check("version3", abi(1, 3), "hvt ABI version 3")

        def no_abi(d):
            desc, _ = _note_desc(d, ABI)
            struct.pack_into("<I", d, desc - 12, 0x12345678)
        self.check("noabi", no_abi, "no Solo5 ABI note")

    def test_note_outside_its_segment(self):
        def p(d):
            _, ph = _note_desc(d, MFT)
            struct.pack_into("<Q", d, ph + 32, 8)  # p_filesz smaller than the note
        self.check("notesize", p, "note does not fall within valid size")

        def q(d):
            _, ph = _note_desc(d, MFT)
            struct.pack_into("<Q", d, ph + 8, len(d) - 4)  # p_offset at the file's end
        self.check("noteoff", q, "note does not fall within valid size")

        def r(d):
            desc, _ = _note_desc(d, MFT)
            struct.pack_into("<I", d, desc - 16, 1 << 31)  # n_descsz
        self.check("descsz", r, "note does not fall within valid size")

        def s(d):
            desc, _ = _note_desc(d, MFT)
            struct.pack_into("<I", d, desc - 20, 1 << 31)  # n_namesz
        self.check("namesz", s, "note does not fall within valid size")

    def test_manifest(self):
        # The guests' manifest notes are laid out as Solo5's toolchain lays
        # them out: n_descsz = 4 (padding) + 8 + 104 * entries, struct mft
        # 8-aligned from the start of the note.
        for src, entries in ((HELLO, 1), (BLK, 2)):
            with open(guest(src), "rb") as f:
                data = f.read()
            desc, _ = _note_desc(data, MFT)
            self.assertEqual(struct.unpack_from("<I", data, desc - 16)[0], 4 + 8 + 104 * entries)
            self.assertEqual(struct.unpack_from("<III", data, desc), (0, 1, entries))

        def mft(fn):
            def p(d):
                desc, _ = _note_desc(d, MFT)
                fn(d, desc + 4)  # struct mft, after the descriptor's padding
            return p

        self.check("mftver", mft(lambda d, o: struct.pack_into("<I", d, o, 2)),
                   "manifest version 2 is not 1")
        self.check("mft0", mft(lambda d, o: struct.pack_into("<I", d, o + 4, 0)),
                   "manifest has 0 entries")
        self.check("mft65", mft(lambda d, o: struct.pack_into("<I", d, o + 4, 65)),
                   "manifest has 65 entries")
        self.check("mftsize", mft(lambda d, o: struct.pack_into("<I", d, o + 4, 2)),
                   "but 2 entries need exactly", src=HELLO)
        e1 = 8 + 104  # the block device's entry in hvt_blk
        self.check("noname", mft(lambda d, o: d.__setitem__(slice(o + e1, o + e1 + 68),
                                                            b"x" * 68)),
                   "name is not NUL-terminated", src=BLK)
        self.check("attached", mft(lambda d, o: d.__setitem__(o + e1 + 96, 1)),
                   "is marked attached in the file", src=BLK)
        self.check("first", mft(lambda d, o: struct.pack_into("<I", d, o + 8 + 68, 1)),
                   "is not the reserved first entry", src=BLK)
        self.check("devtype", mft(lambda d, o: struct.pack_into("<I", d, o + e1 + 68, 7)),
                   "unknown device type 7", src=BLK)
        self.check("second", mft(lambda d, o: struct.pack_into("<I", d, o + e1 + 68, 1 << 30)),
                   "has the reserved-first type", src=BLK)


def netns_cmd(ns):
    """The command prefix that runs a program in network namespace NS (made
    with `ip netns add`). nsenter switches the network namespace only:
    `ip netns exec` also remounts / and /sys, which fails where / is not a
    mount point (a chroot)."""
    return ["nsenter", "--net=/run/netns/" + ns]


def _root_with_netns():
    return os.geteuid() == 0 and shutil.which("ip") is not None


class Net(HvtTest):
    """A tap in a private network namespace, made and removed here."""

    MAC = "02:00:5e:10:00:01"

    @classmethod
    def setUpClass(cls):
        if not _root_with_netns():
            raise AssertionError("the hvt net tests need root and iproute2 (ip)")
        if not os.path.exists("/dev/net/tun"):
            os.makedirs("/dev/net", exist_ok=True)
            subprocess.run(["mknod", "/dev/net/tun", "c", "10", "200"], check=True)
        cls.ns = "vmmux-hvt-%d" % os.getpid()
        subprocess.run(["ip", "netns", "add", cls.ns], check=True)
        cls.addClassCleanup(subprocess.run, ["ip", "netns", "del", cls.ns])
        # No IPv6 on the tap: its router solicitations would reach the guest.
        for tap in ("tap0", "tap1", "tap2"):
            for cmd in (["ip", "tuntap", "add", tap, "mode", "tap"],
                        ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6" % tap],
                        ["ip", "link", "set", tap, "up"]):
                subprocess.run(netns_cmd(cls.ns) + cmd, check=True)
        subprocess.run(netns_cmd(cls.ns) + ["ip", "link", "set", "lo", "up"], check=True)

    def hvt_ns(self, *args, timeout=120):
        """vmmux hvt ARGS inside the namespace."""
        args = list(args)
        p = subprocess.run(netns_cmd(self.ns) + [os.path.abspath(VMMUX), "hvt",
                            PLACEMENT] + args, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        return Result(args, p.returncode, p.stdout.decode(errors="replace"),
                      p.stderr.decode(errors="replace"))

    def test_info_mac_and_mtu(self):
        r = self.hvt_ns("--mem=16", "--net:service0=tap0", "--net-mac:service0=" + self.MAC,
                        guest(NET), "info")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "service0: handle 1 mac %s mtu 1500\n" % self.MAC)

    def test_random_mac_is_local_unicast(self):
        r = self.hvt_ns("--mem=16", "--net:service0=tap0", guest(NET), "info")
        self.assertStatus(r, 0)
        first = int(r.out.split(" mac ")[1][:2], 16)
        self.assertEqual(first & 3, 2)

    def test_read_with_nothing_is_again(self):
        r = self.hvt_ns("--mem=16", "--net:service0=tap0", guest(NET), "readempty")
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "read ret=1\n")

    def test_poll_timeout_with_an_idle_device(self):
        r = self.hvt_ns("--mem=16", "--net:service0=tap0", guest(NET), "pollto", "300000000")
        self.assertStatus(r, 0)
        self.assertIn("poll ret=0 ready=0", r.out)
        self.assertGreaterEqual(int(r.out.split("waited_ms=")[1]), 290)

    def test_echo(self):
        n = 40
        peer = subprocess.Popen(
            netns_cmd(self.ns) + [sys.executable,
             os.path.join(HERE, "test_hvt_peer.py"), "tap0", self.MAC, str(n), "90"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            r = self.hvt_ns("--mem=16", "--net:service0=tap0", "--net-mac:service0=" + self.MAC,
                            guest(NET), "echo", str(n))
            out, err = peer.communicate(timeout=120)
        finally:
            if peer.poll() is None:
                peer.kill()
                peer.wait()
        self.assertStatus(r, 0)
        # the guest counts what it echoed: the peer resends a frame whose
        # echo is 200 ms late (a loaded host), so more than N may come
        m = re.search(r"echo done (\d+)\n", r.out)
        self.assertTrue(m and int(m.group(1)) >= n, r.out)
        self.assertEqual(peer.returncode, 0, (out, err))
        self.assertIn(b"echoed %d of %d" % (n, n), out)

    def test_bad_buffer(self):
        r = self.hvt_ns("--mem=16", "--net:service0=tap0", guest(NET), "badbuf")
        self.assertHvtFault(r, "net write: invalid guest access")

    def maxdev_args(self):
        args = []
        for i in range(60):
            p = self.path("d%d.img" % i)
            with open(p, "wb") as f:
                f.truncate(4096 if i % 2 else 8192)
            args.append("--block:storage%d=%s" % (i, p))
            if i >= 50:
                args.append("--block-sector-size:storage%d=4096" % i)
        for i in range(3):
            args.append("--net:service%d=tap%d" % (i, i))
        return args

    def test_echo_through_a_vmm_of_several_net_devices(self):
        # service1 (manifest index 62) is served, with service0 and
        # service2, by one net VMM: frames and readiness reach the guest
        n = 20
        peer = subprocess.Popen(
            netns_cmd(self.ns) + [sys.executable,
             os.path.join(HERE, "test_hvt_peer.py"), "tap1", self.MAC, str(n), "90"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            r = self.hvt_ns("--mem=16", "--net-mac:service1=" + self.MAC, *self.maxdev_args(),
                            guest(MAXDEV), "echo", "62", str(n))
            out, err = peer.communicate(timeout=120)
        finally:
            if peer.poll() is None:
                peer.kill()
                peer.wait()
        self.assertStatus(r, 0)
        # the guest counts what it echoed: the peer resends a frame whose
        # echo is 200 ms late (a loaded host), so more than N may come
        m = re.search(r"echo done (\d+)\n", r.out)
        self.assertTrue(m and int(m.group(1)) >= n, r.out)
        self.assertEqual(peer.returncode, 0, (out, err))
        self.assertIn(b"echoed %d of %d" % (n, n), out)

    def test_maximum_devices(self):
        # A manifest with the most entries Solo5 allows (64: 63 devices),
        # all attached. A VMM per device does not fit (at most 63 VMMs, and
        # a chain of at most 9 VMMs of a kind, each handing on the requests
        # for the others' devices), so each VMM serves up to 8 devices of
        # one block size: 50 of 512 bytes in 7 VMMs, 10 of 4096 in 2, the
        # 3 net devices in one; each VMM still its own sandbox in
        # kvm-parallel.
        r = self.hvt_ns("--mem=16", "--stats", *self.maxdev_args(), guest(MAXDEV))
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "maxdev ok 60 3\n")
        for i in range(60):
            with open(self.path("d%d.img" % i), "rb") as f:
                bs = 4096 if i >= 50 else 512
                self.assertEqual(f.read(bs), bytes([i + 1]) * bs, i)
        vmms = [line.split()[0] for line in r.err.splitlines() if line.split()
                and line.split()[0].rstrip("0123456789") in ("block", "net")
                and line.split()[0][-1].isdigit()]
        self.assertEqual(sorted(set(v for v in vmms if v.startswith("block"))),
                         sorted("block%d" % i for i in range(9)), r.err)
        self.assertEqual(sorted(set(v for v in vmms if v.startswith("net"))), ["net0"], r.err)

    def test_attach_errors(self):
        r = self.hvt_ns("--mem=16", "--net:service0=nosuch0", guest(NET), "info")
        self.assertHvtFault(r, "no network interface 'nosuch0'")
        r = self.hvt_ns("--mem=16", "--net:service0=lo", guest(NET), "info")
        self.assertHvtFault(r, "attaching to tap 'lo'")
        r = self.hvt_ns("--mem=16", guest(NET), "info")
        self.assertHvtFault(r, "declares net device 'service0', which is not attached")


if __name__ == "__main__":
    unittest.main()
