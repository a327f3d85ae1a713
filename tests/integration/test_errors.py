"""Bad input: each gives a clear message (naming the file, option or JSON path
and the problem) and its documented exit status, never a crash. These tests
also run in the ASan+UBSan build: assertNoCrash fails on a sanitizer report.

Malformed images are built here with struct from a minimal well-formed one
(checked to boot), so each case differs from a good image by its defect."""
import json
import os
import random
import re
import shutil
import struct

from harness import (EXIT_IMAGE, EXIT_USAGE, Result, VmmuxTest, exit_device_status, guest,
                     vmm_program)

# mov al, 0x2a; out 0xf4, al; hlt: the same bytes in 32- and 64-bit code.
EXIT_2A = bytes([0xb0, 0x2a, 0xe6, 0xf4, 0xf4])
STATUS_2A = exit_device_status(0x2a)

PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_W, PF_R = 1, 2, 4
MB_MAGIC = 0x1BADB002
MB_AOUT = 0x00010000


def seg(vaddr, offset, filesz, memsz=None, flags=PF_R | PF_X, ptype=PT_LOAD):
    return dict(type=ptype, flags=flags, offset=offset, vaddr=vaddr, filesz=filesz,
                memsz=filesz if memsz is None else memsz)


def elf64(segs, entry, size=0x2000, body=None, machine=62, etype=2, phoff=64):
    """An ELF64 executable of SIZE bytes: header, program headers SEGS at
    PHOFF, and BODY (default: EXIT_2A) at file offset 0x1000."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", etype, machine, 1, entry, phoff, 0, 0,
                              64, 56, len(segs), 64, 0, 0)
    ph = b"".join(struct.pack("<IIQQQQQQ", s["type"], s["flags"], s["offset"], s["vaddr"],
                              s["vaddr"], s["filesz"], s["memsz"], 0x1000) for s in segs)
    img = bytearray(max(size, 0x1000 + len(EXIT_2A)))
    img[0:len(hdr)] = hdr
    img[phoff:phoff + len(ph)] = ph
    b = EXIT_2A if body is None else body
    img[0x1000:0x1000 + len(b)] = b
    return bytes(img[:size])


def good_elf64(**kw):
    return elf64([seg(0x100000, 0x1000, 0x1000)], 0x100000, **kw)


def multiboot_aout(flags=MB_AOUT, checksum_delta=0, load_end=None):
    """A multiboot v1 kernel with the a.out kludge: the header at offset 0,
    the whole file loaded at 1 MiB, entry right after the header."""
    size = 0x1000
    base = 0x100000
    csum = (-(MB_MAGIC + flags) + checksum_delta) & 0xFFFFFFFF
    hdr = struct.pack("<IIIIIIII", MB_MAGIC, flags, csum, base, base,
                      base + size if load_end is None else load_end, 0, base + 32)
    img = bytearray(size)
    img[0:32] = hdr
    img[32:32 + len(EXIT_2A)] = EXIT_2A
    return bytes(img)


class BadImages(VmmuxTest):
    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def bad_image(self, path, *words, args=()):
        r = self.vmmux("run", "--kernel", path, *args)
        self.assertStatus(r, EXIT_IMAGE)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "")
        self.assertIn(path, r.err)
        for w in words:
            self.assertIn(w, r.err)
        return r

    # The builders make images that boot: the bad ones below differ by
    # their defect only.
    def test_builders_make_good_images(self):
        r = self.vmmux("run", "--kernel", self.write("good.elf", good_elf64()))
        self.assertStatus(r, STATUS_2A)
        r = self.vmmux("run", "--kernel", self.write("good.mb", multiboot_aout()))
        self.assertStatus(r, STATUS_2A)
        two = elf64([seg(0x100000, 0x1000, 0x1000), seg(0x200000, 0x1000, 0x1000, flags=PF_R)],
                    0x100000)
        r = self.vmmux("run", "--kernel", self.write("two.elf", two))
        self.assertStatus(r, STATUS_2A)

    def test_empty_file(self):
        self.bad_image(self.write("empty.elf", b""), "empty")

    def test_random_bytes(self):
        data = bytes(random.Random(1234).getrandbits(8) for _ in range(4096))
        self.assertNotEqual(data[:4], b"\x7fELF")
        self.bad_image(self.write("random.bin", data), "not a multiboot or ELF64 image")

    def test_truncated_elf64_header(self):
        self.bad_image(self.write("trunc.elf", good_elf64()[:40]), "truncated ELF header")

    def test_program_headers_beyond_file(self):
        img = elf64([seg(0x100000, 0x1000, 0x1000)], 0x100000, phoff=0x1ff0)
        self.bad_image(self.write("phdrs.elf", img), "program header table",
                       "beyond the end of the file")

    def test_segment_beyond_file(self):
        img = elf64([seg(0x100000, 0x1000, 0x2000)], 0x100000, size=0x1800)
        self.bad_image(self.write("short.elf", img), "program header 0",
                       "beyond the end of the file")

    def test_segment_outside_ram(self):
        img = elf64([seg(0x100000, 0x1000, 0x1000, memsz=0x200000)], 0x100000)
        p = self.write("big-bss.elf", img)
        self.bad_image(p, "program header 0", "beyond guest RAM", args=("--mem", "2M"))
        # The same image fits in 4 MiB.
        r = self.vmmux("run", "--kernel", p, "--mem", "4M")
        self.assertStatus(r, STATUS_2A)

    def test_segment_far_above_ram(self):
        img = elf64([seg(0x100000, 0x1000, 0x1000), seg(0x80000000, 0x1000, 0x10, flags=PF_R)],
                    0x100000)
        self.bad_image(self.write("high.elf", img), "program header 1", "beyond guest RAM")

    def test_segment_in_low_reserved_area(self):
        img = elf64([seg(0x1000, 0x1000, 0x1000)], 0x1000)
        self.bad_image(self.write("low.elf", img), "program header 0", "reserved")

    def test_overlapping_segments(self):
        img = elf64([seg(0x100000, 0x1000, 0x1000), seg(0x100800, 0x1000, 0x1000)], 0x100000)
        self.bad_image(self.write("overlap.elf", img), "overlaps", "program header 0",
                       "program header 1")

    def test_entry_outside_segments(self):
        img = elf64([seg(0x100000, 0x1000, 0x1000)], 0x300000)
        self.bad_image(self.write("entry.elf", img), "entry point 0x300000",
                       "outside every loaded segment")

    def test_entry_in_non_executable_segment(self):
        img = elf64([seg(0x100000, 0x1000, 0x1000, flags=PF_R | PF_W)], 0x100000)
        self.bad_image(self.write("noexec.elf", img), "entry point", "not executable")

    def test_no_load_segment(self):
        img = elf64([seg(0x100000, 0x1000, 0x1000, ptype=PT_NOTE)], 0x100000)
        self.bad_image(self.write("noload.elf", img), "no non-empty PT_LOAD")

    def test_filesz_above_memsz(self):
        img = elf64([seg(0x100000, 0x1000, 0x1000, memsz=0x10)], 0x100000)
        self.bad_image(self.write("filesz.elf", img), "p_filesz", "p_memsz")

    def test_wrong_machine(self):
        self.bad_image(self.write("arm.elf", good_elf64(machine=183)), "EM_X86_64")

    def test_position_independent(self):
        self.bad_image(self.write("dyn.elf", good_elf64(etype=3)), "ET_EXEC")

    def test_elf32_without_multiboot_header(self):
        img = bytearray(good_elf64())
        img[4] = 1  # ELFCLASS32
        self.bad_image(self.write("elf32.elf", bytes(img)), "ELF32", "multiboot")

    def test_multiboot_bad_checksum(self):
        self.bad_image(self.write("badsum.mb", multiboot_aout(checksum_delta=1)),
                       "0x1BADB002", "bad checksum")

    def test_multiboot_unsupported_flags(self):
        self.bad_image(self.write("flags.mb", multiboot_aout(flags=MB_AOUT | 0x8)),
                       "unsupported feature bits 0x8")

    def test_multiboot_load_range_beyond_ram(self):
        self.bad_image(self.write("mbram.mb", multiboot_aout()), "beyond guest RAM",
                       args=("--mem", "1M"))

    def test_directory(self):
        d = self.path("adir")
        os.mkdir(d)
        self.bad_image(d, "is a directory")

    def test_missing_file(self):
        self.bad_image(self.path("no-such-kernel.elf"), "No such file or directory")

    def test_file_bigger_than_ram(self):
        p = self.path("huge.bin")
        with open(p, "wb") as f:
            f.truncate(3 << 20)  # sparse: nothing is written
        self.bad_image(p, "larger than guest RAM", args=("--mem", "2M"))
        self.bad_image(p, "larger than guest RAM",
                       args=("--mem", "2M", "--format", "raw", "--load-addr", "0x100000"))

    def test_raw_image_beyond_ram(self):
        p = self.write("raw.bin", EXIT_2A)
        r = self.bad_image(p, args=("--format", "raw", "--load-addr", "0x8000000"))
        self.assertIn("0x8000000", r.err)

    def test_raw_long_mode_in_low_area(self):
        p = self.write("rawlow.bin", EXIT_2A)
        self.bad_image(p, "low area", args=("--format", "raw", "--load-addr", "0x7c00",
                                            "--cpu-mode", "long"))

    def test_mode_that_does_not_apply(self):
        self.bad_image(guest("hello.elf"), "--cpu-mode real", args=("--cpu-mode", "real"))
        self.bad_image(guest("mb_hello.mb"), "--cpu-mode long", args=("--cpu-mode", "long"))


class BadCommandLines(VmmuxTest):
    def bad(self, *args, words=(), kernel="hello.elf"):
        argv = ["run"] + (["--kernel", guest(kernel)] if kernel else []) + list(args)
        r = self.vmmux(*argv)
        self.assertStatus(r, EXIT_USAGE)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "")
        for w in words:
            self.assertIn(w, r.err)
        return r

    def test_unknown_option(self):
        self.bad("--bogus", words=("--bogus", "unknown"))

    def test_option_without_argument(self):
        self.bad("--mem", words=("--mem", "needs an argument"))

    def test_stray_argument(self):
        self.bad("extra", words=("'extra'", "--kernel"))

    def test_mem_bad_suffix(self):
        self.bad("--mem", "12X", words=("--mem", "12X", "suffix"))

    def test_mem_out_of_range(self):
        self.bad("--mem", "5G", words=("--mem", "5G", "maximum"))
        self.bad("--mem", "0", words=("--mem", "minimum"))
        self.bad("--mem", "3001K", words=("--mem", "3001K"))

    def test_cpus_zero(self):
        self.bad("--cpus", "0", words=("--cpus", "0", "1 to 64"))

    def test_cpus_too_many(self):
        self.bad("--cpus", "1000", words=("--cpus", "1000", "1 to 64"))

    def test_cpus_not_a_number(self):
        self.bad("--cpus", "2x", words=("--cpus", "'2x'", "not a number"))

    def test_bad_enums(self):
        self.bad("--cpu-mode", "turbo", words=("--cpu-mode", "turbo"))
        self.bad("--format", "elf", words=("--format", "'elf'"))
        self.bad("--log-level", "loud", words=("--log-level", "loud"))

    def test_route_garbage(self):
        self.bad("--route", "garbage", words=("--route", "garbage"))

    def test_route_unknown_kind(self):
        self.bad("--route", "bogus:1=main", words=("bogus:1=main", "unknown kind"))

    def test_route_key_out_of_domain(self):
        self.bad("--route", "io:0x10000=main", words=("io:0x10000=main", "0xffff"))

    def test_overlapping_routes_name_both(self):
        self.bad("--vmm", "a=monitor", "--vmm", "b=monitor", "--route", "io:0x80-0x8f=a",
                 "--route", "io:0x88=b",
                 words=("io:0x80-0x8f=a", "io:0x88=b", "overlaps"))

    def test_hypercall_overlaps_io(self):
        self.bad("--route", "io:0x500-0x5ff=main", "--route", "hypercall:3=main",
                 words=("io:0x500-0x5ff=main", "hypercall:3=main", "overlaps"))

    def test_route_to_unknown_vmm(self):
        self.bad("--route", "io:0x80=nosuch", words=("io:0x80=nosuch", "nosuch", "no VMM"))

    def test_vmm_unknown_role(self):
        self.bad("--vmm", "x=nosuchrole", words=("nosuchrole", "unknown role"))

    def test_vmm_unknown_arg(self):
        self.bad("--vmm", "u=uart16550,foo=1", "--route", "io:0x2f8-0x2ff=u",
                 words=("uart16550", "'foo'", "no argument"))

    def test_vmm_bad_arg_value(self):
        self.bad("--vmm", "m=monitor,read=abc", "--route", "io:0x80=m",
                 words=('"read"', '"abc"', "not a number"))
        self.bad("--vmm", "m=monitor,msr=maybe", "--route", "msr:0x10=m",
                 words=('"msr"', '"maybe"'))

    def test_vmm_malformed(self):
        self.bad("--vmm", "=monitor", words=("=monitor", "name"))
        self.bad("--vmm", "main=monitor", words=("main", "reserved"))
        self.bad("--vmm", "m=monitor,read", words=("'read'", "value"))

    def test_vmm_bad_output_path(self):
        self.bad("--vmm", "m=monitor,output=/nonexistent-dir/x.jsonl", "--route", "io:0x80=m",
                 words=("/nonexistent-dir/x.jsonl",))

    def test_hlt_route_with_irqchip(self):
        self.bad("--vmm", "m=monitor", "--route", "type:hlt=m", "--irqchip",
                 words=("type:hlt=m", "irqchip"))

    def test_break_beyond_ram(self):
        self.bad("--break", "0x4000000", words=("0x4000000", "outside the guest RAM"))

    def test_too_many_breakpoints(self):
        args = []
        for a in range(5):
            args += ["--break", hex(0x100000 + a)]
        self.bad(*args, words=("--break", "at most 4"))

    def test_watchdog_without_unit(self):
        self.bad("--watchdog", "5", words=("--watchdog", "'5'", "unit"))

    def test_watchdog_bad_unit(self):
        self.bad("--watchdog", "5parsecs", words=("--watchdog", "parsecs"))

    def test_raw_without_load_addr(self):
        self.bad("--format", "raw", kernel="raw64.bin", words=("raw", "--load-addr"))

    def test_no_kernel(self):
        self.bad(kernel=None, words=("--kernel",))
        self.bad("--mem", "64M", kernel=None, words=("--kernel",))

    def test_missing_config_file(self):
        p = self.path("none.json")
        self.bad("--config", p, kernel=None, words=(p, "No such file"))

    def test_stats_json_unwritable(self):
        # A statistics file that cannot be created is a bad command line, as
        # a VMM's output path is.
        p = "/nonexistent-dir/stats.json"
        r = self.vmmux("run", "--kernel", guest("hello.elf"), "--stats-json", p)
        self.assertStatus(r, EXIT_USAGE)
        self.assertNoCrash(r)
        self.assertIn(p, r.err)


class BadConfigs(VmmuxTest):
    def write(self, text, name="vm.json"):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def bad(self, cfg, *words, name="vm.json"):
        text = cfg if isinstance(cfg, str) else json.dumps(cfg)
        p = self.write(text, name)
        r = self.vmmux("run", "--config", p)
        self.assertStatus(r, EXIT_USAGE)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "")
        self.assertIn(name, r.err)
        for w in words:
            self.assertIn(w, r.err)
        return r

    def kernel(self):
        return {"kernel": guest("hello.elf")}

    def test_syntax_error_line_column(self):
        # The stray '}' is on line 2, column 28.
        self.bad('{\n  "machine": {"mem": "64M",}\n}\n', "line 2", "column 28", "syntax")

    def test_empty_file(self):
        self.bad("", "syntax")

    def test_not_an_object(self):
        self.bad("[1, 2]", "object", "array")

    def test_duplicate_key(self):
        self.bad('{"guest": {"kernel": "a", "kernel": "b"}}', "duplicate", '"kernel"')

    def test_unknown_key_with_path(self):
        self.bad({"guest": self.kernel(), "machine": {"mem": "64M", "memory": 5}},
                 "machine.memory", "unknown key")
        self.bad({"guest": self.kernel(), "extra": 1}, "extra", "unknown key")
        self.bad({"guest": self.kernel(), "vmms": [{"name": "a", "role": "monitor",
                                                    "colour": 1}]},
                 "vmms[0].colour", "unknown key")

    def test_wrong_type(self):
        self.bad({"guest": {"kernel": 5}}, "guest.kernel", "expected a string")
        self.bad({"guest": self.kernel(), "machine": {"cpus": True}}, "machine.cpus",
                 "expected an integer")
        self.bad({"guest": self.kernel(), "routes": "io:0x80=main"}, "routes",
                 "expected an array")
        self.bad({"guest": self.kernel(),
                  "vmms": [{"name": "a", "role": "monitor"},
                           {"name": "b", "role": "monitor", "args": {"read": [1]}}]},
                 "vmms[1].args.read", "array")

    def test_bad_values(self):
        self.bad({"guest": self.kernel(), "machine": {"cpus": "two"}}, "machine.cpus", "'two'")
        self.bad({"guest": self.kernel(), "machine": {"mem": "12X"}}, "machine.mem", "12X")
        self.bad({"guest": self.kernel(), "machine": {"cpus": 0}}, "machine.cpus")
        self.bad({"guest": self.kernel(), "debug": {"breakpoints": ["0x100", "zz"]}},
                 "debug.breakpoints[1]", "'zz'")
        self.bad({"guest": self.kernel(), "watchdog": "5"}, "watchdog", "unit")

    def test_bad_route_index(self):
        self.bad({"guest": self.kernel(), "vmms": [{"name": "mon", "role": "monitor"}],
                  "routes": ["io:0x80=mon", "io:0x81"]},
                 "routes[1]", "io:0x81", "=VMM")
        self.bad({"guest": self.kernel(), "routes": ["io:0x80=main", "nope:1=main"]},
                 "routes[1]", "nope")

    def test_route_to_unknown_vmm_in_file(self):
        p = self.write(json.dumps({"guest": self.kernel(), "routes": ["io:0x80=ghost"]}))
        r = self.vmmux("run", "--config", p)
        self.assertStatus(r, EXIT_USAGE)
        self.assertNoCrash(r)
        self.assertIn("io:0x80=ghost", r.err)
        self.assertIn("no VMM named 'ghost'", r.err)

    def test_unknown_role_in_file(self):
        p = self.write(json.dumps({"guest": self.kernel(),
                                   "vmms": [{"name": "a", "role": "nosuch"}]}))
        r = self.vmmux("run", "--config", p)
        self.assertStatus(r, EXIT_USAGE)
        self.assertNoCrash(r)
        self.assertIn("'a'", r.err)
        self.assertIn("unknown role 'nosuch'", r.err)

    def test_missing_kernel_from_file_is_an_image_error(self):
        p = self.write(json.dumps({"guest": {"kernel": "nothere.elf"}}))
        r = self.vmmux("run", "--config", p)
        self.assertStatus(r, EXIT_IMAGE)
        self.assertNoCrash(r)
        # Resolved against the config's directory.
        self.assertIn(self.path("nothere.elf"), r.err)


class Messages(VmmuxTest):
    """What vmmux says while a guest runs: true to what happens, VMMs named
    by their names, and the same words whatever the timing."""

    def test_unrouted_read_says_what_the_guest_gets(self):
        # A read has no value before it is answered: the warning gives the
        # value the guest reads (all ones of its size), not "value 0x0".
        r = self.run_guest("unrouted.elf")
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        lines = [x for x in r.err.splitlines() if "unrouted" in x]
        self.assertEqual(lines, [
            "vmmux: warn: unrouted vCPU 0: io read port 0x1234 size 1: the guest reads 0xff "
            "(all ones) (logged once per key)",
            "vmmux: warn: unrouted vCPU 0: mmio read at 0xe0000000 size 4: the guest reads "
            "0xffffffff (all ones) (logged once per key)"], r.err)
        self.assertIn("in8 0x1234: ff ok\n", r.out)

    def test_vmms_named_in_messages(self):
        # A parallel VMM that raises what it was not granted: the event's
        # source and the fault name the VMM, never its number.
        r = self.run_guest("io.elf", "--log-level", "info", "--vmm",
                           "r=external,program=%s" % vmm_program("vmm_raiser"),
                           "--route", "io:0x80-0x81=r", timeout=120)
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertIn("not granted: VMM 'r' (for vCPU 0): platform event reset", r.err)
        self.assertIn("vmmux: fault of VMM 'r': broke the protocol (reason 3): restarting it",
                      r.err)
        self.assertNotRegex(r.err, r"VMM #?\d")
        self.assertNotIn("fault key", r.err)

    def refused_program(self, *vmm):
        r = self.run_guest("io.elf", *vmm, "--route", "io:0x80-0x81=echo")
        self.assertStatus(r, EXIT_USAGE)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "")
        return r.err.strip().splitlines()[-1]

    def test_program_that_exits_at_once(self):
        # The program exits before it answers its set-up: its socket hangs
        # up a moment before it can be reaped. One message, whichever the
        # main VMM sees first, naming the program and its status.
        for program, status in (("true", 0), ("false", 1)):
            path = shutil.which(program)
            for _ in range(5):
                last = self.refused_program("--vmm", "echo=external,program=" + path)
                self.assertEqual(last, "vmmux: error: vmm 'echo': %s exited with status %d "
                                 "before it answered its set-up (is it a vmmux VMM "
                                 "program?)" % (path, status))

    def test_failing_program_among_parallel_vmms(self):
        # One of three parallel VMMs fails its set-up, first, in the middle
        # or last: it is named, the others (started or not yet) are
        # stopped, and the run ends at once without its guest.
        false = shutil.which("false")
        mon = "placement=parallel,output=/dev/null"
        for at in range(3):
            vmms = ["m%d=monitor,%s" % (i, mon) for i in range(3)]
            vmms[at] = "echo=external,program=" + false
            args = [a for v in vmms for a in ("--vmm", v)]
            r = self.run_guest("io.elf", *args, "--route", "io:0x80-0x81=echo", timeout=30)
            self.assertStatus(r, EXIT_USAGE)
            self.assertNoCrash(r)
            self.assertEqual(r.out, "")
            self.assertEqual(r.err.strip().splitlines()[-1],
                             "vmmux: error: vmm 'echo': %s exited with status 1 before it "
                             "answered its set-up (is it a vmmux VMM program?)" % false)

    def test_program_killed_at_once(self):
        # The same for a program that dies of a signal (here its own
        # SIGKILL, or the sandbox's SIGSYS first): the signal is named.
        cfg = {"guest": {"kernel": guest("io.elf")},
               "vmms": [{"name": "echo", "program": shutil.which("sh"),
                         "program_args": ["-c", "kill -9 $$"]}],
               "routes": ["io:0x80-0x81=echo"]}
        path = self.path("vm.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        for _ in range(5):
            r = self.vmmux("run", "--config", path)
            self.assertStatus(r, EXIT_USAGE)
            self.assertNoCrash(r)
            self.assertRegex(r.err.strip().splitlines()[-1],
                             r"^vmmux: error: vmm 'echo': %s died of signal \d+ \([A-Za-z ]+\) "
                             r"before it answered its set-up" % re.escape(shutil.which("sh")))


class SanitizerCheck(VmmuxTest):
    def test_reports_are_detected(self):
        # assertNoCrash, used by every test here, must catch what the
        # ASan+UBSan build would print, and a death by signal.
        reports = ["==12==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x1",
                   "src/x.c:3:5: runtime error: signed integer overflow",
                   "==12==ERROR: LeakSanitizer: detected memory leaks"]
        for err in reports:
            with self.assertRaises(AssertionError):
                self.assertNoCrash(Result(["run"], EXIT_USAGE, "", err))
        with self.assertRaises(AssertionError):
            self.assertNoCrash(Result(["run"], -11, "", ""))
        self.assertNoCrash(Result(["run"], EXIT_USAGE, "", "vmmux: --mem: '12X'"))

    def test_many_bad_inputs_in_one_go(self):
        # A run of bad inputs of every kind; in the sanitizer build any leak,
        # overflow or undefined behaviour on these error paths is reported
        # on stderr (and changes the status).
        cases = [
            (["run"], EXIT_USAGE),
            (["run", "--kernel", guest("hello.elf"), "--route", "io:0x1-0x0=main"], EXIT_USAGE),
            (["run", "--kernel", guest("hello.elf"), "--vmm", "a=monitor,x=1,x=2"], EXIT_USAGE),
            (["run", "--kernel", guest("hello.elf"), "--vmm", "a" * 100 + "=monitor"],
             EXIT_USAGE),
            (["run", "--kernel", guest("hello.elf"), "--route", "mmio:0x0+0=main"], EXIT_USAGE),
            (["run", "--kernel", guest("hello.elf"), "--route", "io:0x80=main;timeout=1h"],
             EXIT_USAGE),
            (["routes", "--route", "io:0x80=main;fallback=ghost"], EXIT_USAGE),
            (["run", "--kernel", self.path("missing.elf")], EXIT_IMAGE),
            (["run", "--kernel", guest("raw16.bin")], EXIT_IMAGE),
        ]
        for args, status in cases:
            r = self.vmmux(*args)
            self.assertStatus(r, status)
            self.assertNoCrash(r)
            self.assertTrue(r.err.strip(), "no message\n%r" % r)
